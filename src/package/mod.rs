//! Building packages: resolve the buildpack and its targets, build each distinct layer once,
//! and write per-target images, the index and the archive.

use std::collections::{BTreeMap, HashSet};
use std::fs;
use std::path::{Path, PathBuf};

use serde::Serialize;

mod remote;
mod select;
mod sources;

pub use sources::resolve_uri;

use crate::compress::{self, Compression};
use crate::descriptor::{self, ModuleKind, PackageConfig};
use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::layer::{self, LayerFormat, LayerSpec};
use crate::layout::{OutputFormat, MAX_IMAGES};
use crate::oci::{Descriptor, RuntimeConfig};
use crate::source::Exclusions;
use crate::target::{self, ExpandedTarget, Target};

use crate::events::{Events, EventsExt};
use crate::image::{
    check_json_size, index_entries, read_layer_blob, BuiltLayer, FinishedOutput, ImageSpec,
    ImageWriter, LayerBlob, LayerExecutables, LayerKey, WrittenImage,
};
use crate::ui::human_size;
use select::{LayerSource, ModulePlan};
use sources::{Dependency, Tree};

pub use crate::image::{ImageReport, LayerReport, CREATED};

pub use crate::cnb::{
    annotated_distros, ANNOTATION_DISTROS, ANNOTATION_DISTRO_NAME, ANNOTATION_DISTRO_VERSION,
    LABEL_LAYERS, LABEL_METADATA,
};

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
    /// Put every buildpack into one layer (pack's `--flatten`).
    pub flatten: bool,
    /// `id@version` of buildpacks that keep their own layer when flattening.
    pub flatten_exclude: Vec<String>,
    /// Fail, instead of warning, when an executable in a layer is built for another
    /// architecture than the target's.
    pub strict: bool,
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
            flatten: false,
            flatten_exclude: Vec::new(),
            strict: false,
            jobs: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)
                .min(compress::MAX_THREADS),
        }
    }
}

/// What was written.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PackageReport {
    /// The buildpack `id@version`.
    pub buildpack: String,
    /// One entry per written file or directory.
    pub outputs: Vec<OutputReport>,
    /// The warnings given while packaging, each once, in order.
    pub warnings: Vec<String>,
}

/// A sink that passes each warning on only the first time (a buildpack read twice, as the main
/// buildpack and as a dependency, warns once) and keeps them for the report.
struct WarningsOnce<'a> {
    sink: &'a dyn Events,
    seen: std::sync::Mutex<Vec<String>>,
}

impl<'a> WarningsOnce<'a> {
    fn new(sink: &'a dyn Events) -> Self {
        WarningsOnce {
            sink,
            seen: Default::default(),
        }
    }

    fn into_warnings(self) -> Vec<String> {
        self.seen.into_inner().unwrap_or_else(|e| e.into_inner())
    }
}

impl Events for WarningsOnce<'_> {
    fn event(&self, event: &crate::events::Event<'_>) {
        if let crate::events::Event::Warning { message } = event {
            let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
            if seen.iter().any(|w| w == message) {
                return;
            }
            seen.push(message.to_string());
        }
        self.sink.event(event)
    }
}

/// One written package.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OutputReport {
    /// Where it was written.
    pub path: PathBuf,
    /// The digest `index.json` points at (the image index or the single manifest).
    pub digest: Digest,
    /// Media type of that digest.
    pub media_type: String,
    /// Total size of the stored blobs.
    pub blob_bytes: u64,
    /// Number of stored blobs.
    pub blobs: usize,
    /// The images, one per target.
    pub images: Vec<ImageReport>,
}

/// The `platform.os` deprecation for a composite buildpack, whose targets are set in
/// package.toml (pack's text points at buildpack.toml, right only for other buildpacks).
const PLATFORM_OS_DEPRECATED_COMPOSITE: &str = "'platform.os' field in package.toml will be deprecated, use new '--target' flag or [[targets]] in package.toml to set the platforms of a composite buildpack.";

/// `platform.os` together with `--target`, for a composite buildpack.
const PLATFORM_OS_WITH_TARGET_COMPOSITE: &str = "'platform.os' and '--target' flag can not be used in conjunction, please remove 'platform.os' from package.toml, use new '--target' flag or [[targets]] in package.toml to set the platforms of a composite buildpack";

/// Package a buildpack as `opts` says; progress and warnings go to `events` (the warnings, each
/// once, are in the report too).
pub fn package_buildpack(opts: &PackageOptions, events: &dyn Events) -> Result<PackageReport> {
    let collected = WarningsOnce::new(events);
    let mut report = package_with(opts, &collected)?;
    report.warnings = collected.into_warnings();
    Ok(report)
}

/// [`package_buildpack`] reporting to `events`, which keeps the warnings.
fn package_with(opts: &PackageOptions, events: &dyn Events) -> Result<PackageReport> {
    if opts.config.is_some() && opts.path.is_some() {
        return Err(Error::usage(
            "--config and --path cannot be used together. Please specify the relative path to the Buildpack directory in the package config file.",
        ));
    }
    check_flatten_options(opts, events)?;
    let (config, base_dir) = load_config(opts, events)?;
    let (main_path, dependency_paths) =
        sources::locate(&config, &base_dir, opts.config.as_deref())?;
    let main = sources::load_tree(&main_path, events)?;
    let mut inputs: Vec<Input> = Vec::new();
    if let Some(c) = &opts.config {
        inputs.push(Input {
            path: c.clone(),
            role: "package.toml",
            tree_dir: false,
        });
    }
    inputs.push(Input {
        path: main_path.clone(),
        role: "the buildpack",
        tree_dir: main.is_directory(),
    });
    let dependencies = dependency_paths
        .iter()
        .map(|location| {
            let dependency = sources::load_dependency(location, events)?;
            let tree_dir = matches!(&dependency, Dependency::Tree(t) if t.is_directory());
            inputs.push(Input {
                path: location.clone(),
                role: "the dependency",
                tree_dir,
            });
            Ok(dependency)
        })
        .collect::<Result<Vec<_>>>()?;
    let targets = resolve_targets(opts, &config, &main, events)?;
    let output = output_path(opts, events);
    let id_version = main.descriptor.info.full_name();
    let names: Vec<String> = targets
        .iter()
        .map(|t| format!("'{}'", t.display()))
        .collect();
    if targets.len() > 1 && opts.split {
        events.status(
            "Packaging",
            &format!(
                "{id_version}: one single-platform buildpack package per target will be created for target platforms: {}",
                names.join(", ")
            ),
        );
    } else if targets.len() > 1 {
        // RFC 0128's announcement, which says "multi-arch" for what can differ by OS or distro too.
        events.status(
            "Packaging",
            &format!(
                "{id_version}: a multi-platform buildpack package will be created for target platforms: {}",
                names.join(", ")
            ),
        );
    } else {
        events.status(
            "Packaging",
            &format!("{id_version} for {}", names.join(", ")),
        );
    }

    let plans = targets
        .iter()
        .map(|t| plan_image(&main, &dependencies, t))
        .collect::<Result<Vec<_>>>()?;
    check_flatten_exclude_known(opts, &plans)?;
    for plan in &plans {
        check_labels_fit(opts, &main, plan)?;
    }

    let outputs: Vec<(PathBuf, Vec<usize>)> = if opts.split && plans.len() > 1 {
        plans
            .iter()
            .enumerate()
            .map(|(i, p)| (target::split_output_path(&output, &p.target), vec![i]))
            .collect()
    } else {
        vec![(output.clone(), (0..plans.len()).collect())]
    };

    let mut exclusions = Exclusions::default();
    exclusions.add_scratch_dirs();
    for (path, _) in &outputs {
        check_output_against_inputs(path, opts.format, &inputs)?;
        exclusions.add_output(path);
    }
    // Every destination is checked before anything is built.
    let paths: Vec<PathBuf> = outputs.iter().map(|(path, _)| path.clone()).collect();
    let images = ImageWriter::create(&paths, opts.format, opts.compression, opts.jobs, events)?;
    let mut ctx = BuildContext {
        opts,
        events,
        dependencies: &dependencies,
        images,
        checked_executables: HashSet::new(),
        exclusions,
    };
    let mut written: Vec<Vec<WrittenImage>> = Vec::new();
    for (out_idx, (_, members)) in outputs.iter().enumerate() {
        let mut images = Vec::new();
        for &i in members {
            images.push(ctx.write_image(&main, &plans[i], out_idx)?);
        }
        written.push(images);
    }

    // Every output's index is settled before any output is put in place.
    let entries = written
        .iter()
        .map(|images| index_entries(images))
        .collect::<Result<Vec<_>>>()?;
    // Every output is complete before any is moved into place, and they are moved all or none.
    let finished = ctx.images.finish(entries)?;
    let mut out_reports = Vec::new();
    for (output, images) in finished.into_iter().zip(written) {
        let FinishedOutput {
            path,
            root,
            blobs,
            blob_bytes,
        } = output;
        events.status(
            "Finished",
            &format!(
                "{} ({} target{}, {} blob{}, {}) {}",
                path.display(),
                images.len(),
                plural(images.len()),
                blobs,
                plural(blobs),
                human_size(blob_bytes),
                root.digest
            ),
        );
        out_reports.push(OutputReport {
            path,
            digest: root.digest,
            media_type: root.media_type,
            blob_bytes,
            blobs,
            images: images.into_iter().map(|i| i.report).collect(),
        });
    }
    Ok(PackageReport {
        buildpack: id_version,
        outputs: out_reports,
        warnings: Vec::new(),
    })
}

/// A buildpack's own executables, `bin/<name>`, which the lifecycle runs directly.
fn is_entry_point(path: &str) -> bool {
    path.strip_prefix("bin/")
        .is_some_and(|name| !name.is_empty() && !name.contains('/'))
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

/// `--flatten-exclude` values are `id@version` and need `--flatten`.
fn check_flatten_options(opts: &PackageOptions, events: &dyn Events) -> Result<()> {
    if !opts.flatten && !opts.flatten_exclude.is_empty() {
        return Err(Error::usage("--flatten-exclude requires --flatten"));
    }
    for value in &opts.flatten_exclude {
        if !value
            .split_once('@')
            .is_some_and(|(id, v)| !id.is_empty() && !v.is_empty())
        {
            return Err(Error::usage(format!(
                "invalid format {value}; please use '<buildpack-id>@<buildpack-version>' to exclude buildpack from flattening"
            )));
        }
    }
    if opts.flatten {
        events.warning(&"Flattening a buildpack package could break the distribution specification. Please use it with caution.");
    }
    Ok(())
}

/// Every `--flatten-exclude` value must name a buildpack of the package: a typo would
/// otherwise flatten the buildpack the user meant to keep apart.
fn check_flatten_exclude_known(opts: &PackageOptions, plans: &[ImagePlan]) -> Result<()> {
    let known: std::collections::BTreeSet<String> = plans
        .iter()
        .flat_map(|p| p.modules.iter().map(ModulePlan::key))
        .collect();
    let unknown: Vec<&String> = opts
        .flatten_exclude
        .iter()
        .filter(|v| !known.contains(*v))
        .collect();
    if unknown.is_empty() {
        return Ok(());
    }
    let quoted = |v: &[&String]| {
        v.iter()
            .map(|s| format!("'{s}'"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let known: Vec<&String> = known.iter().collect();
    Err(Error::usage(format!(
        "--flatten-exclude {}: no such buildpack in this package; its buildpacks are {}",
        quoted(&unknown),
        quoted(&known)
    )))
}

/// Read `package.toml` (or make the default one) and return it with the directory its relative
/// URIs are resolved against.
fn load_config(opts: &PackageOptions, events: &dyn Events) -> Result<(PackageConfig, PathBuf)> {
    match &opts.config {
        Some(path) => {
            let (config, warnings) = descriptor::read_package_toml(path)?;
            // The `platform.os` advice depends on whether the buildpack is a composite; it is
            // given once that is known (see `resolve_targets`). pack's advice for `image` keys
            // (use `docker://`) does not hold here: such dependencies are refused with what to
            // run instead (see `sources::locate`).
            warnings
                .iter()
                .filter(|w| {
                    w.as_str() != descriptor::PLATFORM_OS_DEPRECATED
                        && w.as_str() != descriptor::IMAGE_KEY_DEPRECATED
                })
                .for_each(|w| events.warning(&w));
            // Relative to the current directory, the base is empty rather than `.`, so that paths
            // in messages read as the user wrote them (`../x`, not `./../x`).
            let base = path.parent().unwrap_or(Path::new("")).to_path_buf();
            Ok((config, base))
        }
        None => Ok((
            PackageConfig::default_for_path(opts.path.as_deref()),
            PathBuf::new(),
        )),
    }
}

/// The most targets (after distro expansion) packaged in one run.
const MAX_PACKAGED_TARGETS: usize = 1024;

/// The targets to build: `--target` values, else the configuration's (buildpack.toml, or
/// package.toml for a composite), else one default target.
fn resolve_targets(
    opts: &PackageOptions,
    config: &PackageConfig,
    main: &Tree,
    events: &dyn Events,
) -> Result<Vec<ExpandedTarget>> {
    let mut warnings = Vec::new();
    let parsed = target::parse_target_flags_into(&opts.targets, &mut warnings);
    warnings.iter().for_each(|w| events.warning(&w));
    // A bad target value is bad input like a bad buildpack.toml (exit 1), not a misuse of flags.
    let flag_targets = parsed.map_err(Error::into_failure)?;
    let composite = main.descriptor.is_composite();
    // A composite's targets live in package.toml, not in its buildpack.toml.
    if config.platform_os.is_some() {
        events.warning(&if composite {
            PLATFORM_OS_DEPRECATED_COMPOSITE
        } else {
            descriptor::PLATFORM_OS_DEPRECATED
        });
    }
    descriptor::check_platform_os_with_targets(config, !opts.targets.is_empty()).map_err(|e| {
        match composite {
            true => Error::other(PLATFORM_OS_WITH_TARGET_COMPOSITE),
            false => e.into_failure(),
        }
    })?;
    let configured: &[Target] = if composite {
        &config.targets
    } else {
        &main.descriptor.targets
    };
    let mut targets: Vec<Target> = if !flag_targets.is_empty() {
        flag_targets
            .into_iter()
            .map(|t| with_configured_path(t, configured))
            .collect()
    } else {
        configured.to_vec()
    };
    if targets.is_empty() {
        let os = config
            .platform_os
            .clone()
            .unwrap_or_else(|| infer_os(&main.root));
        let file = if composite {
            "package.toml"
        } else {
            "buildpack.toml"
        };
        events.note(&format!(
            "Pro tip: use --target flag OR [[targets]] in {file} to specify the desired platform (os/arch/variant); using os '{os}'"
        ));
        targets.push(Target {
            os,
            ..Default::default()
        });
    }
    let expanded = target::expand_distros(&targets);
    if expanded.len() > MAX_IMAGES {
        return Err(Error::other(format!(
            "{} targets, more than the {MAX_IMAGES} images a package reader accepts",
            expanded.len()
        )));
    }
    // Every image's label lists every target of the buildpack (as pack's does), so the work and
    // memory grow with the square of the target count: a 150 KB buildpack.toml listing 4096
    // distros would cost gigabytes. Real buildpacks have a handful of targets.
    if expanded.len() > MAX_PACKAGED_TARGETS {
        let file = if composite {
            "package.toml"
        } else {
            "buildpack.toml"
        };
        let source = if opts.targets.is_empty() {
            file
        } else {
            "--target"
        };
        return Err(Error::other(format!(
            "{source}: {} targets (platforms times distros), more than the {MAX_PACKAGED_TARGETS} cnbpkg packages at once",
            expanded.len()
        )));
    }
    target::validate_unique(&expanded)?;
    Ok(expanded)
}

/// A `--target` keeps the `path` of the configured target it names.
fn with_configured_path(mut t: Target, configured: &[Target]) -> Target {
    if t.path.is_none() {
        if let Some(c) = configured
            .iter()
            .find(|c| c.os == t.os && c.arch == t.arch && c.variant == t.variant)
        {
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

/// What one target's image is made of.
struct ImagePlan {
    target: ExpandedTarget,
    /// Modules sorted by `id@version`.
    modules: Vec<ModulePlan>,
    /// Stacks for the metadata label (`None` for extensions).
    stacks: Option<Vec<descriptor::Stack>>,
}

fn plan_image(main: &Tree, dependencies: &[Dependency], t: &ExpandedTarget) -> Result<ImagePlan> {
    let mut modules = vec![select::tree_module(main, t, true)?];
    for (i, dep) in dependencies.iter().enumerate() {
        modules.extend(select::dependency_modules(dep, i, t)?);
    }
    let modules = select::dedup_modules(modules, t.os == "windows")?;
    let others: Vec<_> = modules
        .iter()
        .filter(|m| m.key() != main.descriptor.info.full_name())
        .map(|m| m.descriptor.clone())
        .collect();
    let stacks = descriptor::validate_package(&main.descriptor, &others)
        .map_err(|e| Error::invalid(&main.descriptor_path, e.to_string()))?;
    Ok(ImagePlan {
        target: t.clone(),
        modules,
        stacks,
    })
}

/// What makes an image's JSON too large for a package reader comes from buildpack.toml (or
/// `--label`): the error names that file, and says this.
const TOO_LARGE_HINT: &str = "shorten the values of buildpack.toml or the labels";

/// Before any layer is built: the labels of an image alone must fit into a config the package
/// reader accepts (diffIDs are not known yet, but always have the same length).
fn check_labels_fit(opts: &PackageOptions, main: &Tree, plan: &ImagePlan) -> Result<()> {
    const DIFF_ID_PLACEHOLDER: &str =
        "sha256:0000000000000000000000000000000000000000000000000000000000000000";
    let mut label = descriptor::LayersLabel::new();
    for module in &plan.modules {
        let mut info = module.label.clone();
        info.layer_diff_id = DIFF_ID_PLACEHOLDER.into();
        label.insert_info(
            &module.descriptor.info.id,
            &module.descriptor.info.version,
            info,
        );
    }
    let metadata =
        descriptor::buildpackage_metadata_label(&main.descriptor.info, plan.stacks.as_deref());
    let extra: usize = opts.labels.iter().map(|(k, v)| k.len() + v.len()).sum();
    let size = label.to_json().len() + metadata.len() + extra;
    check_json_size(
        &main.descriptor_path,
        &plan.target,
        "image config",
        size as u64,
        TOO_LARGE_HINT,
    )
}

/// State shared while writing every image of every output.
struct BuildContext<'a> {
    opts: &'a PackageOptions,
    events: &'a dyn Events,
    dependencies: &'a [Dependency],
    /// Every output's images, and the layers they share.
    images: ImageWriter<'a>,
    /// (layer, os, arch) whose executables were checked already: a layer shared by several
    /// distros of one platform is reported once.
    checked_executables: HashSet<(Digest, String, &'static str)>,
    /// The outputs, left out of every walked tree they lie in.
    exclusions: Exclusions,
}

impl BuildContext<'_> {
    fn write_image(
        &mut self,
        main: &Tree,
        plan: &ImagePlan,
        out_idx: usize,
    ) -> Result<WrittenImage> {
        let t = &plan.target;
        let windows = t.os == "windows";
        let mut layers: Vec<(String, BuiltLayer)> = Vec::new();
        if windows {
            let base = self.images.build_layer(
                LayerKey::WindowsBase,
                out_idx,
                "windows base layer",
                |w| {
                    layer::write_windows_base_layer(w).map_err(|e| {
                        Error::other(format!("writing the Windows base layer: {e}"))
                    })?;
                    Ok(LayerExecutables::default())
                },
            )?;
            layers.push(("windows base layer".to_string(), base));
        }
        let mut label = descriptor::LayersLabel::new();
        let flattened: Vec<&ModulePlan> = if self.opts.flatten {
            plan.modules
                .iter()
                .filter(|m| !self.opts.flatten_exclude.contains(&m.key()))
                .collect()
        } else {
            Vec::new()
        };
        let flat_layer = match flattened.is_empty() {
            true => None,
            false => Some(self.flattened_layer(&flattened, windows, out_idx)?),
        };
        for module in &plan.modules {
            let built = match &flat_layer {
                Some(flat) if flattened.iter().any(|m| m.key() == module.key()) => flat.clone(),
                _ => self.module_layer(module, windows, out_idx)?,
            };
            let mut info = module.label.clone();
            info.layer_diff_id = built.diff_id.to_string();
            label.insert_info(
                &module.descriptor.info.id,
                &module.descriptor.info.version,
                info,
            );
            // Flattened dependencies share one layer between several modules: list it once.
            if !layers.iter().any(|(_, l)| l.diff_id == built.diff_id) {
                layers.push((module.key(), built));
            }
        }

        self.check_executables(t, &layers)?;

        let mut labels = self.opts.labels.clone();
        labels.insert(
            LABEL_METADATA.into(),
            descriptor::buildpackage_metadata_label(&main.descriptor.info, plan.stacks.as_deref()),
        );
        labels.insert(main.descriptor.kind.layers_label().into(), label.to_json());
        self.images.write_image(
            out_idx,
            ImageSpec {
                target: t,
                layers,
                config: RuntimeConfig { labels },
                origin: &main.descriptor_path,
                too_large_hint: TOO_LARGE_HINT,
            },
        )
    }

    /// Warn (fail with `--strict`) when a layer of `t`'s image holds executables built for
    /// another architecture. Entry points (`bin/*`) must always match; other executables only
    /// count when none in the layer matches, since a tree may carry binaries for several
    /// architectures and pick one at run time.
    fn check_executables(
        &mut self,
        t: &ExpandedTarget,
        layers: &[(String, BuiltLayer)],
    ) -> Result<()> {
        let Some(arch) = crate::machine::checked_arch(&t.arch) else {
            return Ok(());
        };
        let format = crate::machine::format_for_os(&t.os);
        for (_, built) in layers {
            let found = &built.executables;
            if found.recorded.is_empty()
                || !self
                    .checked_executables
                    .insert((built.diff_id, t.os.clone(), arch))
            {
                continue;
            }
            let runnable: Vec<&layer::Executable> = found
                .recorded
                .iter()
                .filter(|e| e.machine.format == format)
                .collect();
            let any_match = runnable.iter().any(|e| e.machine.arch == Some(arch));
            let foreign: Vec<&layer::Executable> = runnable
                .into_iter()
                .filter(|e| e.machine.arch != Some(arch) && (!any_match || is_entry_point(&e.path)))
                .collect();
            if foreign.is_empty() {
                continue;
            }
            const SHOWN: usize = 5;
            let mut named: Vec<String> = foreign
                .iter()
                .take(SHOWN)
                .map(|e| {
                    format!(
                        "'{}' of {} is built for {}",
                        e.path.escape_debug(),
                        e.module.escape_debug(),
                        e.machine.describe()
                    )
                })
                .collect();
            let more = foreign.len().saturating_sub(SHOWN);
            if more > 0 {
                named.push(format!("and {more} more"));
            }
            if found.seen > found.recorded.len() {
                named.push(format!(
                    "only the first {} of its {} executables were checked",
                    found.recorded.len(),
                    found.seen
                ));
            }
            let message = format!(
                "target '{}' runs {arch} {} executables, but {}",
                t.display(),
                format.name(),
                named.join("; ")
            );
            if self.opts.strict {
                return Err(Error::other(format!("{message} (--strict)")));
            }
            self.events.warning(&message);
        }
        Ok(())
    }

    /// The layer of one module: built from its folder, or taken from its dependency package.
    fn module_layer(
        &mut self,
        module: &ModulePlan,
        windows: bool,
        out_idx: usize,
    ) -> Result<BuiltLayer> {
        let what = module.key();
        match &module.layer {
            LayerSource::Build { root, overlay } => {
                let overlays = overlays_of(overlay);
                let spec = layer_spec(module, root, &overlays, windows);
                let exclusions = self.exclusions.clone();
                self.images
                    .build_layer(layer_key(module, windows), out_idx, &what, |w| {
                        let mut builder =
                            layer::LayerBuilder::new(w, spec.format).excluding(exclusions);
                        builder.add_module(&spec)?;
                        let executables = LayerExecutables::of(&builder);
                        builder.finish()?;
                        Ok(executables)
                    })
            }
            LayerSource::Import {
                dependency,
                blob,
                diff_id,
                allowed,
            } => self.import(*dependency, blob, *diff_id, allowed, out_idx, &what),
        }
    }

    /// One layer holding several modules (`--flatten`): folders walked and dependency layers'
    /// entries copied unchanged, in `id@version` order.
    fn flattened_layer(
        &mut self,
        modules: &[&ModulePlan],
        windows: bool,
        out_idx: usize,
    ) -> Result<BuiltLayer> {
        let key = LayerKey::Flattened(modules.iter().map(|m| layer_key(m, windows)).collect());
        let what = format!(
            "flattened ({})",
            modules
                .iter()
                .map(|m| m.key())
                .collect::<Vec<_>>()
                .join(", ")
        );
        let dependencies = self.dependencies;
        let format = if windows {
            LayerFormat::Windows
        } else {
            LayerFormat::Linux
        };
        let exclusions = self.exclusions.clone();
        self.images.build_layer(key, out_idx, &what, |w| {
            let mut builder = layer::LayerBuilder::new(w, format).excluding(exclusions);
            for module in modules {
                match &module.layer {
                    LayerSource::Build { root, overlay } => {
                        let overlays = overlays_of(overlay);
                        builder.add_module(&layer_spec(module, root, &overlays, windows))?;
                    }
                    LayerSource::Import {
                        dependency,
                        blob,
                        diff_id,
                        allowed,
                    } => {
                        let Dependency::Package { reader, origin, .. } = &dependencies[*dependency]
                        else {
                            unreachable!("imported layers come from package dependencies")
                        };
                        let stream = reader.open_blob(&blob.digest)?;
                        read_layer_blob(stream, blob, *diff_id, origin, |tar| {
                            builder.add_layer_entries(tar, origin, allowed)
                        })?;
                    }
                }
            }
            let executables = LayerExecutables::of(&builder);
            builder.finish()?;
            Ok(executables)
        })
    }

    /// Take a layer from a dependency package: copied as it is when it is already compressed
    /// the way this package's layers are, recompressed (same diffID) otherwise; its entries
    /// must all lie in the directories of the modules it holds.
    fn import(
        &mut self,
        dependency: usize,
        blob: &Descriptor,
        diff_id: Digest,
        allowed: &layer::ModuleDirs,
        out_idx: usize,
        what: &str,
    ) -> Result<BuiltLayer> {
        let Dependency::Package { reader, origin, .. } = &self.dependencies[dependency] else {
            unreachable!("imported layers come from package dependencies")
        };
        let source = LayerBlob {
            reader,
            origin,
            blob,
            diff_id,
        };
        self.images.copy_layer(&source, out_idx, what, |tar| {
            layer::check_module_layer(tar, allowed)
                .map_err(|m| Error::invalid(origin, format!("layer {}: {m}", blob.digest)))
        })
    }
}

/// What decides a module layer's bytes.
fn layer_key(module: &ModulePlan, windows: bool) -> LayerKey {
    match &module.layer {
        LayerSource::Build { root, overlay } => LayerKey::Tree {
            root: root.clone(),
            windows,
            overlay: overlay.clone(),
        },
        LayerSource::Import { diff_id, .. } => LayerKey::Import { diff_id: *diff_id },
    }
}

/// The descriptor file placed into a platform folder's layer, by its name.
fn overlays_of(overlay: &Option<PathBuf>) -> Vec<(String, PathBuf)> {
    overlay
        .iter()
        .map(|p| {
            let name = p.file_name().expect("descriptor file name");
            (name.to_string_lossy().into_owned(), p.clone())
        })
        .collect()
}

fn layer_spec<'a>(
    module: &'a ModulePlan,
    root: &'a Path,
    overlays: &'a [(String, PathBuf)],
    windows: bool,
) -> LayerSpec<'a> {
    let info = &module.descriptor.info;
    LayerSpec {
        dist_dir: match module.descriptor.kind {
            ModuleKind::Buildpack => "buildpacks",
            ModuleKind::Extension => "extensions",
        },
        id: &info.id,
        version: &info.version,
        format: if windows {
            LayerFormat::Windows
        } else {
            LayerFormat::Linux
        },
        root,
        overlays,
    }
}

/// Something a package is made from, which no output may replace.
struct Input {
    path: PathBuf,
    /// What it is, for messages.
    role: &'static str,
    /// A buildpack directory tree (outputs may lie inside it: walks leave them out).
    tree_dir: bool,
}

/// An output must not replace or hold what is being read: it is none of the inputs (the buildpack,
/// `package.toml`, the dependencies) and contains none of them, and a layout directory does not
/// lie inside a package being read. An output may lie inside a buildpack directory (the usual
/// `cnbpkg buildpack package out.cnb` run in the buildpack): walks leave it out. Paths are
/// compared canonicalized; an output that does not exist yet is known by its canonical directory.
fn check_output_against_inputs(
    output: &Path,
    format: OutputFormat,
    inputs: &[Input],
) -> Result<()> {
    let Some(out) = canonical_output(output) else {
        return Ok(()); // no such directory: creating the output fails with that message
    };
    for input in inputs {
        let Ok(canonical) = fs::canonicalize(&input.path) else {
            continue;
        };
        let problem = if canonical == out {
            "is also an input"
        } else if canonical.starts_with(&out) {
            "contains an input"
        } else if format == OutputFormat::Layout
            && !input.tree_dir
            && canonical.is_dir()
            && out.starts_with(&canonical)
        {
            "lies inside an input"
        } else {
            continue;
        };
        return Err(Error::invalid(
            output,
            format!(
                "{problem} ({} {}); nothing was written: choose another output",
                input.role,
                canonical.display()
            ),
        ));
    }
    Ok(())
}

/// The canonical path of an output that may not exist yet: its canonical directory and its name
/// (the whole path canonicalized when something is there already).
fn canonical_output(output: &Path) -> Option<PathBuf> {
    if let Ok(p) = fs::canonicalize(output) {
        return Some(p);
    }
    let name = output.file_name()?;
    let dir = fs::canonicalize(crate::atomic::parent_of(output)).ok()?;
    Some(dir.join(name))
}

/// The output path: `.cnb` added to a file name without extension; a warning for another one.
fn output_path(opts: &PackageOptions, events: &dyn Events) -> PathBuf {
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
            events.warning(&format!(
                "'.{other}' is not a valid extension for a packaged buildpack. Packaged buildpacks must have a '.cnb' extension"
            ));
            out.clone()
        }
    }
}
