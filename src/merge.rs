//! `merge`: packages of one buildpack (one platform or several each) joined into one
//! multi-platform package, every manifest, config and layer copied byte for byte.
//!
//! `split` reads and copies packages with the same pieces: a package verified and its images
//! listed as index entries, an image copied blob for blob.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::cancel::Cancel;
use crate::cnb::{
    annotated_distros, image_buildpack_key, BuildpackKey, LayersLabel, ANNOTATION_DISTROS,
    ANNOTATION_DISTRO_NAME, ANNOTATION_DISTRO_VERSION, LABEL_LAYERS, LABEL_METADATA,
};
use crate::compress::Compression;
use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::events::{Events, EventsExt};
use crate::image::{
    index_entries, FinishedOutput, ImageReport, ImageWriter, LayerReport, WrittenImage,
};
use crate::layout::{OutputFormat, PackageReader, MAX_IMAGES, MAX_IMAGES_BYTES, MAX_JSON_BLOB};
use crate::oci::{self, Descriptor, ImageConfig, Manifest};
use crate::package::{OutputReport, MAX_PACKAGED_TARGETS};
use crate::target::{Distro, ExpandedTarget};
use crate::ui::human_size;
use crate::verify::{VerifyOptions, VerifyReport};

/// What to merge, and into what. Made with [`MergeOptions::new`], then set field by field.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct MergeOptions {
    /// The output: a `.cnb` file (`.cnb` is added when there is no extension) or a directory.
    pub output: PathBuf,
    /// The packages (`.cnb`/tar files or layout directories), their images listed in this order.
    pub inputs: Vec<PathBuf>,
    /// `.cnb` file or layout directory.
    pub format: OutputFormat,
    /// Stops the merge at its next step once cancelled; nothing is left behind.
    pub cancel: Cancel,
}

impl MergeOptions {
    /// Options for merging `inputs` into the `.cnb` file `output`.
    pub fn new(output: impl Into<PathBuf>, inputs: Vec<PathBuf>) -> Self {
        MergeOptions {
            output: output.into(),
            inputs,
            format: OutputFormat::File,
            cancel: Cancel::new(),
        }
    }
}

/// What `merge` wrote.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct MergeReport {
    /// The buildpack `id@version`.
    pub buildpack: String,
    /// The packages merged, in order.
    #[serde(serialize_with = "crate::json::lossy_paths")]
    pub inputs: Vec<PathBuf>,
    /// The package written (its images in index order).
    pub output: OutputReport,
}

/// One image of a package, as an index of a package made by `buildpack package` lists it.
pub(crate) struct ListedImage {
    /// Its index entry: the platform (the config's when the listing gives none, as for a
    /// package pack or skopeo wrote), the annotations but a layout's tag.
    pub(crate) descriptor: Descriptor,
    /// The manifest.
    pub(crate) manifest: Manifest,
    /// The config.
    pub(crate) config: ImageConfig,
    /// The distros the entry serves (`None`: any), one platform each.
    pub(crate) served: Vec<Option<Distro>>,
}

impl ListedImage {
    /// The platform its index entry gives, else its config's (an entry without an
    /// architecture has no platform).
    pub(crate) fn platform(&self) -> oci::Platform {
        self.descriptor
            .platform
            .clone()
            .unwrap_or_else(|| self.config.platform())
    }

    /// The platform of one served distro as a target (what `--target` would name it).
    pub(crate) fn target(&self, distro: &Option<Distro>) -> ExpandedTarget {
        let p = self.platform();
        ExpandedTarget {
            os: p.os,
            arch: p.architecture,
            variant: p.variant,
            distro: distro.clone(),
            path: None,
        }
    }

    /// The index entry for one served distro, annotated as `buildpack package` annotates the
    /// image of that one target.
    pub(crate) fn entry_for(&self, distro: &Option<Distro>) -> Descriptor {
        let mut d = self.descriptor.clone();
        d.annotations.remove(ANNOTATION_DISTROS);
        d.annotations.remove(ANNOTATION_DISTRO_NAME);
        d.annotations.remove(ANNOTATION_DISTRO_VERSION);
        if let Some(distro) = distro {
            d.annotations
                .insert(ANNOTATION_DISTRO_NAME.into(), distro.name.clone());
            d.annotations
                .insert(ANNOTATION_DISTRO_VERSION.into(), distro.version.clone());
        }
        d
    }

    /// The platforms it serves, distinct from every other image's in a package: os, arch,
    /// variant, os.version and distro.
    fn platform_keys(&self) -> Vec<PlatformKey> {
        let p = self.platform();
        self.served
            .iter()
            .map(|d| {
                (
                    p.os.clone(),
                    p.architecture.clone(),
                    p.variant.clone(),
                    p.os_version.clone(),
                    d.clone(),
                )
            })
            .collect()
    }
}

type PlatformKey = (String, String, String, String, Option<Distro>);

/// A package opened for copying: verified, of one buildpack, its images listed.
pub(crate) struct OpenedPackage {
    /// The path as given.
    pub(crate) path: PathBuf,
    pub(crate) reader: PackageReader,
    /// The buildpack `id@version` of its metadata label.
    pub(crate) buildpack: String,
    /// The buildpack id and version, compared as a pair.
    key: BuildpackKey,
    /// Its images, in index order.
    pub(crate) images: Vec<ListedImage>,
}

/// Open `path`, refuse it unless it passes verification and all its images are of one
/// buildpack, and list its images.
pub(crate) fn open_package(
    path: &Path,
    cancel: &Cancel,
    events: &dyn Events,
) -> Result<OpenedPackage> {
    let (reader, verified) = open_verified(path, cancel)?;
    list_package(path, reader, &verified, events)
}

/// A package opened and verified.
type Verified = (PackageReader, VerifyReport);

/// Open `path` and verify it through that one reader (so what is listed and copied next is
/// what was verified); refused unless it passes.
fn open_verified(path: &Path, cancel: &Cancel) -> Result<Verified> {
    // A path that is not there is that, not a package failing verification.
    std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
    let reader = PackageReader::open(path)?;
    let opts = VerifyOptions {
        cancel: cancel.clone(),
        ..Default::default()
    };
    let verified = crate::verify::verify_reader(&reader, &opts)?;
    if !verified.is_ok() {
        return Err(Error::invalid(
            path,
            format!(
                "fails verification ({} defect{}, the first: {}); nothing was written: run `cnbpkg verify` on it",
                verified.defect_count,
                if verified.defect_count == 1 { "" } else { "s" },
                verified.defects.first().map(String::as_str).unwrap_or("unknown")
            ),
        ));
    }
    Ok((reader, verified))
}

/// Every input opened and verified, on all cores (verifying reads and decompresses every
/// layer), the results in input order: the first failing input in that order is reported.
fn open_all_verified(inputs: &[PathBuf], cancel: &Cancel) -> Vec<Result<Verified>> {
    let workers = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(inputs.len())
        .max(1);
    let next = std::sync::atomic::AtomicUsize::new(0);
    let results: Vec<std::sync::Mutex<Option<Result<Verified>>>> =
        inputs.iter().map(|_| std::sync::Mutex::new(None)).collect();
    std::thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some(path) = inputs.get(i) else { break };
                let opened = open_verified(path, cancel);
                *results[i].lock().unwrap_or_else(|p| p.into_inner()) = Some(opened);
            });
        }
    });
    results
        .into_iter()
        .map(|r| {
            r.into_inner()
                .unwrap_or_else(|p| p.into_inner())
                .unwrap_or(Err(Error::Interrupted))
        })
        .collect()
}

/// The images of a verified package, refused unless all are of one buildpack.
fn list_package(
    path: &Path,
    reader: PackageReader,
    verified: &VerifyReport,
    events: &dyn Events,
) -> Result<OpenedPackage> {
    events.status(
        "Verified",
        &format!(
            "{} ({} image{}, {})",
            path.display(),
            verified.images,
            if verified.images == 1 { "" } else { "s" },
            human_size(verified.bytes)
        ),
    );
    let mut buildpack: Option<BuildpackKey> = None;
    let mut images = Vec::new();
    for image in reader.images()? {
        let mut descriptor = image.descriptor.clone();
        let platform_shown = crate::cnb::platform_name(&image.platform(), &descriptor.annotations);
        let this = image_buildpack_key(&image.config).ok_or_else(|| {
            Error::invalid(
                path,
                format!(
                    "its image for {platform_shown} has no valid {LABEL_METADATA} label: not a buildpack package"
                ),
            )
        })?;
        match &buildpack {
            Some(b) if *b != this => {
                return Err(Error::invalid(
                    path,
                    format!(
                        "holds images of two buildpacks, {}@{} and {}@{}",
                        b.0, b.1, this.0, this.1
                    ),
                ))
            }
            Some(_) => {}
            None => buildpack = Some(this),
        }
        // skopeo's and umoci's tag of the image names it in that layout, not in this package.
        descriptor.annotations.remove(oci::ANNOTATION_REF_NAME);
        if descriptor.platform.is_none() && !image.config.architecture.is_empty() {
            descriptor.platform = Some(image.config.platform());
        }
        if descriptor.media_type.is_empty() {
            descriptor.media_type = image
                .manifest
                .media_type
                .clone()
                .unwrap_or_else(|| oci::MEDIA_TYPE_MANIFEST.to_string());
        }
        let served = match annotated_distros(&descriptor.annotations) {
            Some(list) if !list.is_empty() => list.into_iter().map(Some).collect(),
            _ => vec![None],
        };
        images.push(ListedImage {
            descriptor,
            manifest: image.manifest,
            config: image.config,
            served,
        });
    }
    let key =
        buildpack.ok_or_else(|| Error::invalid(path, "holds no image: not a buildpack package"))?;
    Ok(OpenedPackage {
        path: path.to_path_buf(),
        reader,
        buildpack: format!("{}@{}", key.0, key.1),
        key,
        images,
    })
}

/// Copy one image of `from` into output `out` of `writer`, layers base first, then the config,
/// then the manifest (the order `buildpack package` stores them in), each blob once: `copied`
/// holds what the output has already.
pub(crate) fn copy_image(
    writer: &mut ImageWriter<'_>,
    out: usize,
    from: &OpenedPackage,
    image: &ListedImage,
    copied: &mut HashSet<Digest>,
) -> Result<()> {
    let blobs = image
        .manifest
        .layers
        .iter()
        .chain([&image.manifest.config, &image.descriptor]);
    for blob in blobs {
        crate::atomic::check_interrupt()?;
        if copied.insert(blob.digest) {
            writer.copy_blob(&from.reader, &from.path, blob, out)?;
        }
    }
    Ok(())
}

/// What the report says about one image: its platform, manifest, config and layers (each
/// named by the module the layers label gives it).
pub(crate) fn image_report(image: &ListedImage, target: &ExpandedTarget) -> ImageReport {
    let label = image
        .config
        .labels()
        .get(LABEL_LAYERS)
        .and_then(|l| LayersLabel::parse(l).ok());
    let module_of = |diff_id: &Digest| -> String {
        let wanted = diff_id.to_string();
        label
            .iter()
            .flat_map(|l| l.0.iter())
            .flat_map(|(id, versions)| versions.iter().map(move |(v, info)| (id, v, info)))
            .find(|(_, _, info)| info.layer_diff_id == wanted)
            .map(|(id, v, _)| format!("{id}@{v}"))
            .unwrap_or_else(|| "layer".to_string())
    };
    ImageReport {
        target: target.display(),
        manifest: image.descriptor.digest,
        config: image.manifest.config.digest,
        layers: image
            .manifest
            .layers
            .iter()
            .zip(&image.config.rootfs.diff_ids)
            .map(|(l, diff_id)| LayerReport {
                content: module_of(diff_id),
                digest: l.digest,
                diff_id: *diff_id,
                size: l.size,
                uncompressed_size: None,
            })
            .collect(),
    }
}

/// The images of one output, as index entries grouped the way `buildpack package` groups
/// them (targets that differ only by distro and give one image share an entry).
pub(crate) fn written_images(images: &[&ListedImage]) -> Vec<WrittenImage> {
    images
        .iter()
        .flat_map(|image| {
            image.served.iter().map(move |distro| {
                let target = image.target(distro);
                WrittenImage {
                    descriptor: image.entry_for(distro),
                    report: image_report(image, &target),
                    target,
                }
            })
        })
        .collect()
}

/// The output report of a finished output holding `images`.
pub(crate) fn output_report(output: FinishedOutput, images: Vec<ImageReport>) -> OutputReport {
    OutputReport {
        path: output.path,
        digest: output.root.digest,
        media_type: output.root.media_type,
        blob_bytes: output.blob_bytes,
        blobs: output.blobs,
        images,
    }
}

/// Merge `opts.inputs` into `opts.output`; progress goes to `events`. Refused, with nothing
/// written: a package that fails verification, packages of different buildpacks (id or
/// version), a platform that two packages (or one, twice) hold.
pub fn merge(opts: &MergeOptions, events: &dyn Events) -> Result<MergeReport> {
    opts.cancel.operation(|| merge_checked(opts, events))
}

fn merge_checked(opts: &MergeOptions, events: &dyn Events) -> Result<MergeReport> {
    if opts.inputs.is_empty() {
        return Err(Error::usage("merge needs at least one package"));
    }
    // Every input serves a platform at least: more than that many are refused before any is
    // opened (they are all verified, and held, before the merge is written).
    if opts.inputs.len() > MAX_PACKAGED_TARGETS {
        return Err(Error::usage(format!(
            "{} packages given; a merged package serves at most {MAX_PACKAGED_TARGETS} platforms",
            opts.inputs.len()
        )));
    }
    let output = crate::package::outputs::output_path_for(&opts.output, opts.format, events);
    let inputs: Vec<crate::package::outputs::Input> = opts
        .inputs
        .iter()
        .map(|p| crate::package::outputs::Input {
            path: p.clone(),
            role: "the package",
            tree_dir: false,
        })
        .collect();
    crate::package::outputs::check_output_against_inputs(&output, opts.format, &inputs)?;
    // Refused before anything is read: a destination that is not free to write.
    crate::layout::writer::check_destination(&output, opts.format)?;
    let mut packages = Vec::new();
    let mut held = Held::default();
    let opened = open_all_verified(&opts.inputs, &opts.cancel);
    for (path, opened) in opts.inputs.iter().zip(opened) {
        let (reader, verified) = opened?;
        let package = list_package(path, reader, &verified, events)?;
        held.add(&package)?;
        packages.push(package);
    }
    check_one_buildpack(&packages)?;
    check_distinct_platforms(&packages)?;
    let listed: Vec<&ListedImage> = packages.iter().flat_map(|p| &p.images).collect();
    if listed.len() > 1 {
        check_every_platform_named(&packages)?;
    }
    let buildpack = packages[0].buildpack.clone();
    events.status(
        "Merging",
        &format!(
            "{buildpack}: {} package{} into {}",
            packages.len(),
            if packages.len() == 1 { "" } else { "s" },
            output.display()
        ),
    );
    let written = written_images(&listed);
    let entries = index_entries(&written)?;
    check_index_size(&output, &entries)?;
    let mut writer = ImageWriter::create(
        std::slice::from_ref(&output),
        opts.format,
        Compression::DEFAULT,
        1,
        events,
    )?;
    let mut copied = HashSet::new();
    for package in &packages {
        for image in &package.images {
            copy_image(&mut writer, 0, package, image, &mut copied)?;
            events.detail(
                "Copied",
                &format!(
                    "{} manifest {} from {}",
                    crate::cnb::platform_name(
                        image
                            .descriptor
                            .platform
                            .as_ref()
                            .unwrap_or(&Default::default()),
                        &image.descriptor.annotations
                    ),
                    image.descriptor.digest,
                    package.path.display()
                ),
            );
        }
    }
    let finished = writer
        .finish(vec![entries])?
        .pop()
        .expect("one output, one result");
    events.status(
        "Finished",
        &format!(
            "{} ({} image{}, {} blob{}, {}) {}",
            finished.path.display(),
            listed.len(),
            if listed.len() == 1 { "" } else { "s" },
            finished.blobs,
            if finished.blobs == 1 { "" } else { "s" },
            human_size(finished.blob_bytes),
            finished.root.digest
        ),
    );
    let reports = written.into_iter().map(|w| w.report).collect();
    Ok(MergeReport {
        buildpack,
        inputs: opts.inputs.clone(),
        output: output_report(finished, reports),
    })
}

/// What the packages opened so far hold in memory, and what the output would list: within
/// what a package reader accepts of one package, or the output could not be read (checked as
/// each package is opened, so that many inputs cannot exhaust memory first).
#[derive(Default)]
struct Held {
    images: usize,
    /// Platforms (platforms times distros): an index entry may claim any number of distros.
    platforms: usize,
    json_bytes: u64,
}

impl Held {
    fn add(&mut self, package: &OpenedPackage) -> Result<()> {
        self.images += package.images.len();
        self.platforms += package.images.iter().map(|i| i.served.len()).sum::<usize>();
        self.json_bytes += package
            .images
            .iter()
            .map(|i| i.descriptor.size.saturating_add(i.manifest.config.size))
            .fold(0u64, u64::saturating_add);
        if self.images > MAX_IMAGES {
            return Err(Error::invalid(
                &package.path,
                format!(
                    "with the packages before it, the merged package would list more than {MAX_IMAGES} images, more than a package reader accepts; nothing was written"
                ),
            ));
        }
        if self.platforms > MAX_PACKAGED_TARGETS {
            return Err(Error::invalid(
                &package.path,
                format!(
                    "with the packages before it, the merged package would serve {} platforms (platforms times distros), more than the {MAX_PACKAGED_TARGETS} cnbpkg packages at once; nothing was written",
                    self.platforms
                ),
            ));
        }
        if self.json_bytes > MAX_IMAGES_BYTES {
            return Err(Error::invalid(
                &package.path,
                format!(
                    "with the packages before it, the merged package's manifests and configs would exceed {} MiB, more than a package reader accepts; nothing was written",
                    MAX_IMAGES_BYTES >> 20
                ),
            ));
        }
        Ok(())
    }
}

/// The merged image index must be one a package reader accepts.
fn check_index_size(output: &Path, entries: &[Descriptor]) -> Result<()> {
    let size = crate::json::canonical(&oci::Index::new(entries.to_vec())).len() as u64;
    if size > MAX_JSON_BLOB {
        return Err(Error::invalid(
            output,
            format!(
                "the merged image index would be {size} bytes, over the {MAX_JSON_BLOB}-byte limit packages are read with; merge fewer packages; nothing was written"
            ),
        ));
    }
    Ok(())
}

/// Every package holds the buildpack the first one holds (same id and version).
fn check_one_buildpack(packages: &[OpenedPackage]) -> Result<()> {
    let first = &packages[0];
    for p in &packages[1..] {
        if p.key != first.key {
            // Joined alike, they are told apart by their parts.
            let (a, b) = if p.buildpack == first.buildpack {
                let parts = |(id, v): &(String, String)| format!("id '{id}' version '{v}'");
                (parts(&first.key), parts(&p.key))
            } else {
                (first.buildpack.clone(), p.buildpack.clone())
            };
            let what = if p.key.0 == first.key.0 {
                "versions"
            } else {
                "buildpacks"
            };
            return Err(Error::other(format!(
                "{} holds {a} and {} holds {b}: different {what}; merge joins packages of one buildpack (same id and version); nothing was written",
                first.path.display(),
                p.path.display()
            )));
        }
    }
    Ok(())
}

/// No platform (os, arch, variant, os.version, distro) is held twice.
fn check_distinct_platforms(packages: &[OpenedPackage]) -> Result<()> {
    let mut seen: BTreeMap<PlatformKey, usize> = BTreeMap::new();
    for (i, p) in packages.iter().enumerate() {
        for image in &p.images {
            for (key, distro) in image.platform_keys().into_iter().zip(&image.served) {
                if let Some(prev) = seen.insert(key, i) {
                    let shown = image.target(distro).display();
                    let place = if prev == i {
                        format!("{} lists it twice", p.path.display())
                    } else {
                        format!(
                            "both {} and {} hold it",
                            packages[prev].path.display(),
                            p.path.display()
                        )
                    };
                    return Err(Error::other(format!(
                        "platform '{shown}' is given twice: {place}; each platform must come from one package; nothing was written"
                    )));
                }
            }
        }
    }
    Ok(())
}

/// Several images each need an architecture, or no reader could choose among them.
fn check_every_platform_named(packages: &[OpenedPackage]) -> Result<()> {
    for p in packages {
        if p.images.iter().any(|i| i.descriptor.platform.is_none()) {
            return Err(Error::invalid(
                &p.path,
                "has an image with no architecture, and a package with several images needs one for each (readers choose an image by its platform); nothing was written",
            ));
        }
    }
    Ok(())
}
