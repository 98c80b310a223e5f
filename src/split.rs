//! `split`: one single-platform package per platform of a package, named as `--split` names
//! them, each holding the very manifest (same digest) the package's index lists.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::cancel::Cancel;
use crate::cnb::PlatformFilter;
use crate::compress::Compression;
use crate::error::{Error, Result};
use crate::events::{Events, EventsExt};
use crate::image::{index_entries, ImageWriter};
use crate::layout::OutputFormat;
use crate::merge::{copy_image, open_package, output_report, written_images, ListedImage};
use crate::package::{OutputReport, MAX_PACKAGED_TARGETS};
use crate::target::{self, Distro, ExpandedTarget};
use crate::ui::human_size;

/// What to split, and where to. Made with [`SplitOptions::new`], then set field by field.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct SplitOptions {
    /// The package: a `.cnb`/tar file or a layout directory (the outputs have its form).
    pub package: PathBuf,
    /// Only the platforms these pick (none: every platform); each must pick one.
    pub platforms: Vec<PlatformFilter>,
    /// Where the outputs go (`None`: next to the package).
    pub output_dir: Option<PathBuf>,
    /// Stops the split at its next step once cancelled; nothing is left behind.
    pub cancel: Cancel,
}

impl SplitOptions {
    /// Options for splitting `package` into one package per platform, next to it.
    pub fn new(package: impl Into<PathBuf>) -> Self {
        SplitOptions {
            package: package.into(),
            platforms: Vec::new(),
            output_dir: None,
            cancel: Cancel::new(),
        }
    }
}

/// What `split` wrote.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct SplitReport {
    /// The buildpack `id@version`.
    pub buildpack: String,
    /// One single-platform package per platform, in index order.
    pub outputs: Vec<OutputReport>,
}

/// Split `opts.package` into one package per platform (one per distro an image serves), all
/// put in place together once all are complete; progress goes to `events`.
pub fn split(opts: &SplitOptions, events: &dyn Events) -> Result<SplitReport> {
    opts.cancel.operation(|| split_checked(opts, events))
}

/// One output: an image and the distro it is written for.
struct Part<'a> {
    image: &'a ListedImage,
    distro: &'a Option<Distro>,
    target: ExpandedTarget,
}

fn split_checked(opts: &SplitOptions, events: &dyn Events) -> Result<SplitReport> {
    let path = &opts.package;
    let format = if path.is_dir() {
        OutputFormat::Layout
    } else {
        OutputFormat::File
    };
    let base = output_base(path, opts.output_dir.as_deref())?;
    let package = open_package(path, &opts.cancel, events)?;
    let parts = chosen_parts(path, &package.images, &opts.platforms)?;
    // An index entry may claim any number of distros, each one more package written.
    if parts.len() > MAX_PACKAGED_TARGETS {
        return Err(Error::invalid(
            path,
            format!(
                "would be split into {} packages (platforms times distros), more than the {MAX_PACKAGED_TARGETS} cnbpkg writes at once; nothing was written",
                parts.len()
            ),
        ));
    }
    let targets: Vec<ExpandedTarget> = parts.iter().map(|p| p.target.clone()).collect();
    if targets.iter().any(|t| target::split_suffix(t).is_empty()) {
        return Err(Error::invalid(
            path,
            "has an image that names no platform, so no split package could be named after it; nothing was written",
        ));
    }
    for t in &targets {
        check_nameable(path, t)?;
    }
    let outputs: Vec<PathBuf> = targets
        .iter()
        .map(|t| target::split_output_path(&base, t))
        .collect();
    check_distinct_names(path, &parts, &outputs)?;
    let input = [crate::package::outputs::Input {
        path: path.clone(),
        role: "the package",
        tree_dir: false,
    }];
    for out in &outputs {
        crate::package::outputs::check_output_against_inputs(out, format, &input)?;
    }
    events.status(
        "Splitting",
        &format!(
            "{}: {} into {} single-platform package{}",
            package.buildpack,
            path.display(),
            outputs.len(),
            if outputs.len() == 1 { "" } else { "s" }
        ),
    );
    let mut writer = ImageWriter::create(&outputs, format, Compression::DEFAULT, 1, events)?;
    let mut entries = Vec::new();
    let mut reports = Vec::new();
    for (out, part) in parts.iter().enumerate() {
        copy_image(&mut writer, out, &package, part.image, &mut HashSet::new())?;
        let mut written: Vec<_> = written_images(&[part.image])
            .into_iter()
            .filter(|w| w.target.distro == *part.distro)
            .collect();
        written.truncate(1);
        entries.push(index_entries(&written)?);
        reports.push(written.into_iter().map(|w| w.report).collect::<Vec<_>>());
    }
    // Every output is complete before any is moved into place, and they are moved all or none.
    let finished = writer.finish(entries)?;
    let mut out_reports = Vec::new();
    for (output, images) in finished.into_iter().zip(reports) {
        events.status(
            "Finished",
            &format!(
                "{} ({} blob{}, {}) {}",
                output.path.display(),
                output.blobs,
                if output.blobs == 1 { "" } else { "s" },
                human_size(output.blob_bytes),
                output.root.digest
            ),
        );
        out_reports.push(output_report(output, images));
    }
    Ok(SplitReport {
        buildpack: package.buildpack,
        outputs: out_reports,
    })
}

/// The (image, distro) pairs to write, in index order: all of them, or those the filters
/// pick, each filter picking at least one.
fn chosen_parts<'a>(
    path: &Path,
    images: &'a [ListedImage],
    filters: &[PlatformFilter],
) -> Result<Vec<Part<'a>>> {
    let all: Vec<Part<'a>> = images
        .iter()
        .flat_map(|image| {
            image.served.iter().map(move |distro| Part {
                image,
                distro,
                target: image.target(distro),
            })
        })
        .collect();
    if filters.is_empty() {
        return Ok(all);
    }
    let platform = |p: &Part<'_>| p.image.platform();
    let unmatched: Vec<String> = filters
        .iter()
        .filter(|f| !all.iter().any(|p| f.matches(&platform(p))))
        .map(|f| f.to_string())
        .collect();
    if !unmatched.is_empty() {
        return Err(Error::NoPlatformMatch {
            path: path.to_path_buf(),
            requested: unmatched,
            available: all.iter().map(|p| p.target.display()).collect(),
        });
    }
    Ok(all
        .into_iter()
        .filter(|p| filters.iter().any(|f| f.matches(&platform(p))))
        .collect())
}

/// The path the outputs' names are made from (`x.cnb` → `x-linux-amd64.cnb`): the package's
/// own, or its name in `output_dir`.
fn output_base(package: &Path, output_dir: Option<&Path>) -> Result<PathBuf> {
    let Some(dir) = output_dir else {
        return Ok(package.to_path_buf());
    };
    let name = package
        .file_name()
        .ok_or_else(|| Error::usage(format!("{}: not a package name", package.display())))?;
    // A file or a missing directory fails as a `--split` output placed there does.
    std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))?;
    Ok(dir.join(name))
}

/// The platform values of a hostile package's index become file names: they must be what a
/// `--target` could say (no control characters or path separators), as `--split` names only
/// such targets.
fn check_nameable(path: &Path, t: &ExpandedTarget) -> Result<()> {
    let as_target = target::Target {
        os: t.os.clone(),
        arch: t.arch.clone(),
        variant: t.variant.clone(),
        distros: t.distro.iter().cloned().collect(),
        path: None,
    };
    target::check_configured_target(&as_target).map_err(|e| {
        Error::invalid(
            path,
            format!(
                "its image for {} cannot name a split package: {e}; nothing was written",
                t.display()
            ),
        )
    })
}

/// No two outputs get one name (compared without regard to case, for case-insensitive file
/// systems): images that differ only in what no name says (os.version, case) cannot be split.
fn check_distinct_names(path: &Path, parts: &[Part<'_>], outputs: &[PathBuf]) -> Result<()> {
    let shown = |p: &Part<'_>| match p.image.platform().os_version {
        v if v.is_empty() => p.target.display(),
        v => format!("{} (os.version {v})", p.target.display()),
    };
    let mut seen: BTreeMap<String, &Part<'_>> = BTreeMap::new();
    for (part, out) in parts.iter().zip(outputs) {
        let name = out.to_string_lossy().to_lowercase();
        if let Some(prev) = seen.insert(name, part) {
            return Err(Error::invalid(
                path,
                format!(
                    "its images for '{}' and '{}' would both be written as {}: no split package name tells them apart; nothing was written",
                    shown(prev),
                    shown(part),
                    out.display()
                ),
            ));
        }
    }
    Ok(())
}
