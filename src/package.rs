//! Building packages: resolve the buildpack and its targets, build each distinct layer once,
//! and write per-target images, the index and the archive.

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::atomic::{check_interrupt, ScratchDir};
use crate::compress::{self, Compression};
use crate::descriptor::{self, BuildpackDescriptor, PackageConfig};
use crate::digest::{Digest, HashingWriter};
use crate::error::{Error, IoResultExt, Result};
use crate::json::canonical;
use crate::layer::{self, LayerFormat, LayerSpec};
use crate::layout::{LayoutWriter, OutputFormat};
use crate::oci::{self, Descriptor, History, ImageConfig, Index, Manifest, Platform, RootFs, RuntimeConfig};
use crate::target::{self, ExpandedTarget, Target};
use crate::ui::{human_size, Printer};

/// The `created` time of every config and history entry: the same instant as the layers'
/// modification times, so nothing in a package depends on when it was built.
pub const CREATED: &str = "1980-01-01T00:00:01Z";

/// Label holding the package's main buildpack (pack's name and shape).
pub const LABEL_METADATA: &str = "io.buildpacks.buildpackage.metadata";
/// Label mapping every buildpack in the package to its layer (pack's name and shape).
pub const LABEL_LAYERS: &str = "io.buildpacks.buildpack.layers";
/// Descriptor annotation naming a target's distribution (targets that differ only by distro).
pub const ANNOTATION_DISTRO_NAME: &str = "io.buildpacks.base.distro.name";
/// Descriptor annotation with a target's distribution version.
pub const ANNOTATION_DISTRO_VERSION: &str = "io.buildpacks.base.distro.version";

/// What to package and how.
#[derive(Debug, Clone)]
pub struct PackageOptions {
    /// The output: a `.cnb` file (`.cnb` is added when there is no extension) or a directory.
    pub output: PathBuf,
    /// `package.toml`, if any.
    pub config: Option<PathBuf>,
    /// The buildpack directory or archive when there is no `package.toml` (default: `.`).
    pub path: Option<PathBuf>,
    /// Raw `--target` values; they replace the targets of the configuration.
    pub targets: Vec<String>,
    /// `.cnb` file or layout directory.
    pub format: OutputFormat,
    /// One single-platform output per target instead of one multi-platform output.
    pub split: bool,
    /// Layer compression.
    pub compression: Compression,
    /// Extra labels for every image config (the buildpack labels win on a clash).
    pub labels: BTreeMap<String, String>,
    /// Threads for compression.
    pub jobs: usize,
}

impl PackageOptions {
    /// Options for packaging the buildpack at `path` into `output` with the defaults.
    pub fn new(output: impl Into<PathBuf>) -> Self {
        PackageOptions {
            output: output.into(),
            config: None,
            path: None,
            targets: Vec::new(),
            format: OutputFormat::File,
            split: false,
            compression: Compression::DEFAULT,
            labels: BTreeMap::new(),
            jobs: std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        }
    }
}

/// What was written.
#[derive(Debug, Clone, Serialize)]
pub struct PackageReport {
    /// The buildpack `id@version`.
    pub buildpack: String,
    /// One entry per written file or directory.
    pub outputs: Vec<OutputReport>,
}

/// One written package.
#[derive(Debug, Clone, Serialize)]
pub struct OutputReport {
    /// Where it was written.
    pub path: PathBuf,
    /// The digest `index.json` points at (the image index or the single manifest).
    pub digest: Digest,
    /// Media type of that digest.
    #[serde(rename = "mediaType")]
    pub media_type: String,
    /// Total size of the stored blobs.
    pub blob_bytes: u64,
    /// Number of stored blobs.
    pub blobs: usize,
    /// The images, one per target.
    pub images: Vec<ImageReport>,
}

/// One per-target image.
#[derive(Debug, Clone, Serialize)]
pub struct ImageReport {
    /// The target in `os/arch/variant:distro@version` form.
    pub target: String,
    /// The manifest digest.
    pub manifest: Digest,
    /// The config digest.
    pub config: Digest,
    /// The layers, base first.
    pub layers: Vec<LayerReport>,
}

/// One layer.
#[derive(Debug, Clone, Serialize)]
pub struct LayerReport {
    /// What it holds: `id@version`, or `windows base layer`.
    pub content: String,
    /// Digest of the stored (compressed) blob.
    pub digest: Digest,
    /// Digest of the uncompressed tar.
    pub diff_id: Digest,
    /// Stored size.
    pub size: u64,
    /// Uncompressed size.
    pub uncompressed_size: u64,
}

/// The buildpack being packaged, read from disk.
struct Source {
    root: PathBuf,
    descriptor: BuildpackDescriptor,
    descriptor_path: PathBuf,
    /// Keeps an extracted archive alive while packaging.
    _scratch: Option<ScratchDir>,
}

/// A layer that has been built into one of the outputs.
#[derive(Clone)]
struct BuiltLayer {
    descriptor: Descriptor,
    diff_id: Digest,
    uncompressed_size: u64,
    /// Index of the output that holds its bytes.
    home: usize,
}

/// Identity of a layer's inputs: the same key means the same bytes, so it is built once.
#[derive(Clone, PartialEq, Eq, Hash)]
enum LayerKey {
    WindowsBase,
    Module { root: PathBuf, format: LayerFormatKey, overlay: Option<PathBuf> },
}

#[derive(Clone, Copy, PartialEq, Eq, Hash)]
enum LayerFormatKey {
    Linux,
    Windows,
}

/// Package a buildpack as `opts` says; progress goes to `ui`.
pub fn package_buildpack(opts: &PackageOptions, ui: &Printer) -> Result<PackageReport> {
    if opts.config.is_some() && opts.path.is_some() {
        return Err(Error::usage(
            "--config and --path cannot be used together. Please specify the relative path to the Buildpack directory in the package config file.",
        ));
    }
    let (config, base_dir) = load_config(opts, ui)?;
    let source = load_source(&config, &base_dir, opts, ui)?;
    if !source.descriptor.order.is_empty() {
        return Err(Error::invalid(
            &source.descriptor_path,
            "composite buildpacks ([[order]]) are packaged from a package.toml with [[dependencies]]",
        ));
    }
    let targets = resolve_targets(opts, &config, &source, ui)?;
    let output = output_path(opts, ui);
    let id_version = format!("{}@{}", source.descriptor.info.id, source.descriptor.info.version);
    ui.status(
        "Packaging",
        format!("{id_version} for {}", targets.iter().map(display_target).collect::<Vec<_>>().join(", ")),
    );

    let plans = targets
        .iter()
        .map(|t| plan_image(&source, t))
        .collect::<Result<Vec<_>>>()?;

    let outputs: Vec<(PathBuf, Vec<usize>)> = if opts.split && plans.len() > 1 {
        plans
            .iter()
            .enumerate()
            .map(|(i, p)| (target::split_output_path(&output, &p.target), vec![i]))
            .collect()
    } else {
        vec![(output.clone(), (0..plans.len()).collect())]
    };

    let mut writers = outputs
        .iter()
        .map(|(path, _)| LayoutWriter::create(path, opts.format))
        .collect::<Result<Vec<_>>>()?;
    let mut cache: HashMap<LayerKey, BuiltLayer> = HashMap::new();
    let mut reports: Vec<(PathBuf, Vec<WrittenImage>)> = Vec::new();
    for (out_idx, (path, members)) in outputs.iter().enumerate() {
        let mut images = Vec::new();
        for &i in members {
            let plan = &plans[i];
            let image = write_image(&source, plan, opts, out_idx, &mut writers, &mut cache, ui)?;
            images.push(image);
        }
        reports.push((path.clone(), images));
    }

    let mut out_reports = Vec::new();
    for ((path, images), writer) in reports.into_iter().zip(writers) {
        check_interrupt()?;
        let (written, root_desc, blobs, blob_bytes) = finish_index(writer, &images)?;
        debug_assert_eq!(written, path);
        ui.status(
            "Finished",
            format!(
                "{} ({} target{}, {} blob{}, {}) {}",
                written.display(),
                images.len(),
                plural(images.len()),
                blobs,
                plural(blobs),
                human_size(blob_bytes),
                root_desc.digest
            ),
        );
        out_reports.push(OutputReport {
            path: written,
            digest: root_desc.digest,
            media_type: root_desc.media_type,
            blob_bytes,
            blobs,
            images: images.into_iter().map(|i| i.report).collect(),
        });
    }
    Ok(PackageReport { buildpack: id_version, outputs: out_reports })
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

/// Read `package.toml` (or make the default one) and return it with the directory its relative
/// URIs are resolved against.
fn load_config(opts: &PackageOptions, ui: &Printer) -> Result<(PackageConfig, PathBuf)> {
    match &opts.config {
        Some(path) => {
            let (config, warnings) = descriptor::read_package_toml(path)?;
            warnings.iter().for_each(|w| ui.warn(w));
            let base = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new(".")).to_path_buf();
            Ok((config, base))
        }
        None => {
            Ok((PackageConfig::default_for_path(opts.path.as_deref()), PathBuf::from(".")))
        }
    }
}

/// Turn a buildpack URI into a local path: relative paths against `base`, `file://` decoded;
/// anything remote is refused (cnbpkg never touches the network while packaging).
pub fn resolve_uri(uri: &str, base: &Path) -> Result<PathBuf> {
    let path = if let Some(rest) = uri.strip_prefix("file://") {
        PathBuf::from(percent_decode(rest))
    } else if uri.contains("://") || uri.starts_with("urn:cnb:") {
        return Err(Error::usage(format!(
            "'{uri}' is not a local file or directory; cnbpkg packages offline: download it first and give its path"
        )));
    } else {
        PathBuf::from(uri)
    };
    Ok(if path.is_absolute() { path } else { base.join(path) })
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let Ok(v) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Locate the buildpack (directory or archive) and read its `buildpack.toml`.
fn load_source(config: &PackageConfig, base: &Path, _opts: &PackageOptions, ui: &Printer) -> Result<Source> {
    let location = resolve_uri(&config.buildpack_uri, base)?;
    let meta = fs::metadata(&location).at(&location)?;
    let (root, scratch) = if meta.is_dir() {
        (location.clone(), None)
    } else {
        let scratch = ScratchDir::new()?;
        crate::source::extract_archive(&location, scratch.path())?;
        (scratch.path().to_path_buf(), Some(scratch))
    };
    let descriptor_path = root.join("buildpack.toml");
    if !descriptor_path.exists() {
        return Err(Error::invalid(&location, "no buildpack.toml at the root of the buildpack"));
    }
    let (descriptor, warnings) = descriptor::read_buildpack_toml(&descriptor_path)?;
    // Messages about an extracted archive name the archive, not the scratch directory.
    let shown = if scratch.is_some() { location.join("buildpack.toml") } else { descriptor_path.clone() };
    warnings.iter().for_each(|w| ui.warn(w));
    Ok(Source { root, descriptor, descriptor_path: shown, _scratch: scratch })
}

/// The targets to build: `--target` values, else the configuration's, else one default target.
fn resolve_targets(opts: &PackageOptions, config: &PackageConfig, source: &Source, ui: &Printer) -> Result<Vec<ExpandedTarget>> {
    let (flag_targets, warnings) = target::parse_target_flags(&opts.targets)?;
    warnings.iter().for_each(|w| ui.warn(w));
    descriptor::check_platform_os_with_targets(config, !opts.targets.is_empty())?;
    let configured: &[Target] = &source.descriptor.targets;
    let mut targets: Vec<Target> = if !flag_targets.is_empty() {
        flag_targets.into_iter().map(|t| with_configured_path(t, configured)).collect()
    } else {
        configured.to_vec()
    };
    if targets.is_empty() {
        let os = config.platform_os.clone().unwrap_or_else(|| infer_os(&source.root));
        ui.note(format!(
            "Pro tip: use --target flag OR [[targets]] in buildpack.toml to specify the desired platform (os/arch/variant); using os '{os}'"
        ));
        targets.push(Target { os, ..Default::default() });
    }
    let expanded = target::expand_distros(&targets);
    target::validate_unique(&expanded)?;
    Ok(expanded)
}

/// A `--target` keeps the `path` of the configured target it names.
fn with_configured_path(mut t: Target, configured: &[Target]) -> Target {
    if t.path.is_none() {
        if let Some(c) = configured.iter().find(|c| c.os == t.os && c.arch == t.arch && c.variant == t.variant) {
            t.path = c.path.clone();
        }
    }
    t
}

/// With no target anywhere, the OS follows the entry points, as the buildpack spec says.
fn infer_os(root: &Path) -> String {
    let has = |name: &str| fs::symlink_metadata(root.join("bin").join(name)).is_ok();
    if !has("build") && (has("build.bat") || has("build.exe")) {
        "windows".into()
    } else {
        "linux".into()
    }
}

fn display_target(t: &ExpandedTarget) -> String {
    t.display()
}

/// What one target's image is made of.
struct ImagePlan {
    target: ExpandedTarget,
    root: PathBuf,
    overlay: Option<PathBuf>,
    windows: bool,
}

fn plan_image(source: &Source, t: &ExpandedTarget) -> Result<ImagePlan> {
    let resolved = target::platform_root(&source.root, t)?;
    let root = resolved.dir;
    let windows = t.os == "windows";
    check_entry_points(&root, windows, &source.descriptor_path, t)?;
    let overlay = (root != source.root).then(|| source.root.join("buildpack.toml"));
    Ok(ImagePlan { target: t.clone(), root, overlay, windows })
}

/// A target's folder must hold the buildpack's executables.
fn check_entry_points(root: &Path, windows: bool, descriptor_path: &Path, t: &ExpandedTarget) -> Result<()> {
    for exe in ["build", "detect"] {
        let candidates: Vec<String> = if windows {
            vec![format!("bin/{exe}.bat"), format!("bin/{exe}.exe"), format!("bin/{exe}")]
        } else {
            vec![format!("bin/{exe}")]
        };
        let found = candidates.iter().any(|c| fs::symlink_metadata(root.join(c)).is_ok());
        if !found {
            let wanted = if windows { format!("bin/{exe}.bat or bin/{exe}.exe") } else { format!("bin/{exe}") };
            let dir = root.strip_prefix(descriptor_path.parent().unwrap_or(Path::new(""))).unwrap_or(root);
            let shown = if dir.as_os_str().is_empty() { ".".to_string() } else { dir.display().to_string() };
            return Err(Error::invalid(
                descriptor_path.parent().unwrap_or(Path::new(".")),
                format!("target {} uses folder {shown}, which has no {wanted}", t.display()),
            ));
        }
    }
    Ok(())
}

/// An image written into an output, with what its index entry needs.
struct WrittenImage {
    descriptor: Descriptor,
    report: ImageReport,
}

#[allow(clippy::too_many_arguments)]
fn write_image(
    source: &Source,
    plan: &ImagePlan,
    opts: &PackageOptions,
    out_idx: usize,
    writers: &mut [LayoutWriter],
    cache: &mut HashMap<LayerKey, BuiltLayer>,
    ui: &Printer,
) -> Result<WrittenImage> {
    let info = &source.descriptor.info;
    let id_version = format!("{}@{}", info.id, info.version);
    let mut layers = Vec::new();
    if plan.windows {
        let base = obtain_layer(LayerKey::WindowsBase, out_idx, writers, cache, opts, ui, "windows base layer", |w| {
            layer::write_windows_base_layer(w).map_err(|e| Error::other(format!("writing the Windows base layer: {e}")))?;
            Ok(())
        })?;
        layers.push(("windows base layer".to_string(), base));
    }
    let key = LayerKey::Module {
        root: plan.root.clone(),
        format: if plan.windows { LayerFormatKey::Windows } else { LayerFormatKey::Linux },
        overlay: plan.overlay.clone(),
    };
    let overlays: Vec<(String, PathBuf)> = plan.overlay.iter().map(|p| ("buildpack.toml".to_string(), p.clone())).collect();
    let spec = LayerSpec {
        dist_dir: "buildpacks",
        id: &info.id,
        version: &info.version,
        format: if plan.windows { LayerFormat::Windows } else { LayerFormat::Linux },
        root: &plan.root,
        overlays: &overlays,
    };
    let built = obtain_layer(key, out_idx, writers, cache, opts, ui, &id_version, |w| {
        layer::write_module_layer(&spec, w)?;
        Ok(())
    })?;
    let module_diff_id = built.diff_id;
    layers.push((id_version.clone(), built));

    let labels = image_labels(source, module_diff_id, &opts.labels);
    let t = &plan.target;
    let os_version = if plan.windows { t.distro.as_ref().map(|d| d.version.clone()).unwrap_or_default() } else { String::new() };
    let config = ImageConfig {
        architecture: t.arch.clone(),
        created: Some(CREATED.to_string()),
        history: layers.iter().map(|_| History { created: Some(CREATED.to_string()), ..Default::default() }).collect(),
        os: t.os.clone(),
        os_version: os_version.clone(),
        os_features: Vec::new(),
        variant: t.variant.clone(),
        rootfs: RootFs { typ: "layers".into(), diff_ids: layers.iter().map(|(_, l)| l.diff_id).collect() },
        config: Some(RuntimeConfig { labels }),
    };
    let writer = &mut writers[out_idx];
    let config_desc = writer.put_bytes(oci::MEDIA_TYPE_CONFIG, &canonical(&config))?;
    let manifest = Manifest {
        schema_version: 2,
        media_type: Some(oci::MEDIA_TYPE_MANIFEST.into()),
        artifact_type: None,
        config: config_desc.clone(),
        layers: layers.iter().map(|(_, l)| l.descriptor.clone()).collect(),
        annotations: BTreeMap::new(),
    };
    let mut manifest_desc = writer.put_bytes(oci::MEDIA_TYPE_MANIFEST, &canonical(&manifest))?;
    manifest_desc.platform = Some(Platform {
        architecture: t.arch.clone(),
        os: t.os.clone(),
        os_version,
        os_features: Vec::new(),
        variant: t.variant.clone(),
    });
    if let Some(d) = &t.distro {
        manifest_desc.annotations.insert(ANNOTATION_DISTRO_NAME.into(), d.name.clone());
        manifest_desc.annotations.insert(ANNOTATION_DISTRO_VERSION.into(), d.version.clone());
    }
    ui.detail("Image", format!("{} manifest {}", t.display(), manifest_desc.digest));
    let report = ImageReport {
        target: t.display(),
        manifest: manifest_desc.digest,
        config: config_desc.digest,
        layers: layers
            .into_iter()
            .map(|(content, l)| LayerReport {
                content,
                digest: l.descriptor.digest,
                diff_id: l.diff_id,
                size: l.descriptor.size,
                uncompressed_size: l.uncompressed_size,
            })
            .collect(),
    };
    Ok(WrittenImage { descriptor: manifest_desc, report })
}

/// Return the layer for `key`, building it only the first time; a layer built into another
/// output is copied from there instead of being rebuilt.
#[allow(clippy::too_many_arguments)]
fn obtain_layer(
    key: LayerKey,
    out_idx: usize,
    writers: &mut [LayoutWriter],
    cache: &mut HashMap<LayerKey, BuiltLayer>,
    opts: &PackageOptions,
    ui: &Printer,
    what: &str,
    write_tar: impl FnOnce(&mut dyn std::io::Write) -> Result<()>,
) -> Result<BuiltLayer> {
    check_interrupt()?;
    if let Some(built) = cache.get(&key) {
        if built.home != out_idx && !writers[out_idx].contains(&built.descriptor.digest) {
            let mut reader = writers[built.home].open_blob(&built.descriptor.digest)?;
            let home_path = writers[built.home].dest().to_path_buf();
            writers[out_idx].copy_blob(&built.descriptor, &mut reader, &home_path)?;
        }
        ui.detail("Reusing", format!("layer {what} {}", built.descriptor.digest.short()));
        return Ok(built.clone());
    }
    let compression = opts.compression;
    let jobs = opts.jobs.max(1);
    let (descriptor, (diff_id, uncompressed_size)) =
        writers[out_idx].put_stream(compression.media_type(), |out| {
            let encoder = compress::encoder(compression, jobs, out);
            let mut tar = HashingWriter::new(encoder);
            write_tar(&mut tar)?;
            let (encoder, diff_id, size) = tar.finish();
            encoder.finish().map_err(|e| Error::other(format!("compressing layer {what}: {e}")))?;
            Ok((diff_id, size))
        })?;
    ui.status(
        "Built",
        format!("layer {what} ({} → {}) {}", human_size(uncompressed_size), human_size(descriptor.size), diff_id.short()),
    );
    let built = BuiltLayer { descriptor, diff_id, uncompressed_size, home: out_idx };
    cache.insert(key, built.clone());
    Ok(built)
}

/// The config labels: the user's, then pack's two buildpack labels (which win on a clash).
fn image_labels(source: &Source, diff_id: Digest, user: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    let d = &source.descriptor;
    let stacks = descriptor::resolve_stacks(d, &[]);
    let mut labels = user.clone();
    labels.insert(LABEL_METADATA.into(), descriptor::buildpackage_metadata_label(&d.info, Some(&stacks)));
    let mut layers = descriptor::LayersLabel::default();
    layers.insert(d, &diff_id.to_string());
    labels.insert(LABEL_LAYERS.into(), layers.to_json());
    labels
}

/// Write `index.json` for an output and close it. Several images get an image index between
/// `index.json` and the manifests (the shape skopeo and other OCI tools read); one image is
/// referenced directly, as pack does.
fn finish_index(mut writer: LayoutWriter, images: &[WrittenImage]) -> Result<(PathBuf, Descriptor, usize, u64)> {
    let root = if images.len() == 1 {
        images[0].descriptor.clone()
    } else {
        let index = Index::new(images.iter().map(|i| i.descriptor.clone()).collect());
        writer.put_bytes(oci::MEDIA_TYPE_INDEX, &canonical(&index))?
    };
    let (blobs, blob_bytes) = writer.stored();
    let written = writer.finish(&Index::new(vec![root.clone()]))?;
    Ok((written, root, blobs, blob_bytes))
}

/// The output path: `.cnb` added to a file name without extension; a warning for another one.
fn output_path(opts: &PackageOptions, ui: &Printer) -> PathBuf {
    let out = &opts.output;
    if opts.format == OutputFormat::Layout {
        return out.clone();
    }
    match out.extension().and_then(|e| e.to_str()) {
        None => {
            let mut s = out.clone().into_os_string();
            s.push(".cnb");
            PathBuf::from(s)
        }
        Some("cnb") => out.clone(),
        Some(other) => {
            ui.warn(format!(
                "'.{other}' is not a valid extension for a packaged buildpack. Packaged buildpacks must have a '.cnb' extension"
            ));
            out.clone()
        }
    }
}
