//! Where a package is written: the output names (`.cnb` added, `--split` names), the rule
//! that no output replaces or holds an input, and putting the finished outputs in place.

use std::fs;
use std::path::{Path, PathBuf};

use super::{plural, OutputReport, PackageOptions};
use crate::error::{Error, Result};
use crate::events::{Events, EventsExt};
use crate::image::{index_entries, FinishedOutput, ImageWriter, WrittenImage};
use crate::layout::OutputFormat;
use crate::target::{self, ExpandedTarget};
use crate::ui::human_size;

/// Something a package is made from, which no output may replace.
pub(crate) struct Input {
    pub(crate) path: PathBuf,
    /// What it is, for messages.
    pub(crate) role: &'static str,
    /// A buildpack directory tree (outputs may lie inside it: walks leave them out).
    pub(crate) tree_dir: bool,
}

/// An output must not replace or hold what is being read: it is none of the inputs (the buildpack,
/// `package.toml`, the dependencies) and contains none of them, and a layout directory does not
/// lie inside a package being read. An output may lie inside a buildpack directory (the usual
/// `cnbpkg buildpack package out.cnb` run in the buildpack): walks leave it out. Paths are
/// compared canonicalized; an output that does not exist yet is known by its canonical directory.
pub(crate) fn check_output_against_inputs(
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

/// The outputs and the images (indexes into `targets`) each holds: one per target with
/// `--split` and several targets (named by [`target::split_output_path`]), else one with all.
pub(crate) fn outputs_of(
    output: &Path,
    split: bool,
    targets: &[&ExpandedTarget],
) -> Vec<(PathBuf, Vec<usize>)> {
    if split && targets.len() > 1 {
        targets
            .iter()
            .enumerate()
            .map(|(i, t)| (target::split_output_path(output, t), vec![i]))
            .collect()
    } else {
        vec![(output.to_path_buf(), (0..targets.len()).collect())]
    }
}

/// The output path: `.cnb` added to a file name without extension; a warning for another one.
pub(super) fn output_path(opts: &PackageOptions, events: &dyn Events) -> PathBuf {
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

/// [`output_path`] for an output of another command (`merge`): `.cnb` added to a file name
/// without extension, a warning for another one.
pub(crate) fn output_path_for(output: &Path, format: OutputFormat, events: &dyn Events) -> PathBuf {
    let mut opts = PackageOptions::new(output);
    opts.format = format;
    output_path(&opts, events)
}

/// Put every output in place with its index (each index settled and every output complete
/// before any is moved, all or none), and report each.
pub(crate) fn finish_outputs(
    images: ImageWriter<'_>,
    written: Vec<Vec<WrittenImage>>,
    events: &dyn Events,
) -> Result<Vec<OutputReport>> {
    let entries = written
        .iter()
        .map(|images| index_entries(images))
        .collect::<Result<Vec<_>>>()?;
    let finished = images.finish(entries)?;
    let mut reports = Vec::new();
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
        reports.push(OutputReport {
            path,
            digest: root.digest,
            media_type: root.media_type,
            blob_bytes,
            blobs,
            images: images.into_iter().map(|i| i.report).collect(),
        });
    }
    Ok(reports)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::Event;
    use std::sync::Mutex;

    fn named(output: &str, format: OutputFormat) -> (PathBuf, Vec<String>) {
        let mut opts = PackageOptions::new(output);
        opts.format = format;
        let warnings = Mutex::new(Vec::new());
        let sink = |e: &Event<'_>| {
            if let Event::Warning { message } = e {
                warnings.lock().unwrap().push(message.to_string());
            }
        };
        let path = output_path(&opts, &sink);
        (path, warnings.into_inner().unwrap())
    }

    /// The output as given → the path written and the warning, if any: `.cnb` is added to a
    /// file name without extension, another extension is kept with pack's warning, and a layout
    /// directory keeps its name.
    #[test]
    fn output_path_table() {
        let warn = |ext: &str| {
            format!("'.{ext}' is not a valid extension for a packaged buildpack. Packaged buildpacks must have a '.cnb' extension")
        };
        let table: &[(&str, OutputFormat, &str, Option<String>)] = &[
            ("x", OutputFormat::File, "x.cnb", None),
            ("d/x", OutputFormat::File, "d/x.cnb", None),
            ("x.cnb", OutputFormat::File, "x.cnb", None),
            ("x.tgz", OutputFormat::File, "x.tgz", Some(warn("tgz"))),
            ("x.CNB", OutputFormat::File, "x.CNB", Some(warn("CNB"))),
            (".cnb", OutputFormat::File, ".cnb.cnb", None),
            ("v1.2", OutputFormat::File, "v1.2", Some(warn("2"))),
            ("x", OutputFormat::Layout, "x", None),
            ("x.tgz", OutputFormat::Layout, "x.tgz", None),
            ("x.cnb", OutputFormat::Layout, "x.cnb", None),
        ];
        for (output, format, expected, warning) in table {
            let (path, warnings) = named(output, *format);
            assert_eq!(path, PathBuf::from(expected), "{output}");
            assert_eq!(
                warnings,
                warning.iter().cloned().collect::<Vec<_>>(),
                "{output}"
            );
        }
    }

    fn platform(os: &str, arch: &str) -> ExpandedTarget {
        ExpandedTarget {
            os: os.into(),
            arch: arch.into(),
            ..Default::default()
        }
    }

    /// Targets → outputs: one holding every image, or with `--split` one per target named by
    /// its platform (a single target is never split).
    #[test]
    fn outputs_of_table() {
        let amd = platform("linux", "amd64");
        let arm = platform("linux", "arm64");
        let out = Path::new("d/x.cnb");
        type Row<'a> = (bool, &'a [&'a ExpandedTarget], &'a [(&'a str, &'a [usize])]);
        let table: &[Row<'_>] = &[
            (false, &[&amd], &[("d/x.cnb", &[0])]),
            (false, &[&amd, &arm], &[("d/x.cnb", &[0, 1])]),
            (true, &[&amd], &[("d/x.cnb", &[0])]),
            (
                true,
                &[&amd, &arm],
                &[("d/x-linux-amd64.cnb", &[0]), ("d/x-linux-arm64.cnb", &[1])],
            ),
        ];
        for (split, targets, expected) in table {
            let got = outputs_of(out, *split, targets);
            let expected: Vec<(PathBuf, Vec<usize>)> = expected
                .iter()
                .map(|(p, i)| (PathBuf::from(p), i.to_vec()))
                .collect();
            assert_eq!(got, expected, "split {split}, {} targets", targets.len());
        }
    }
}
