//! Where a package is written: the output names (`.cnb` added, `--split` names) and the rule
//! that no output replaces or holds an input.

use std::fs;
use std::path::{Path, PathBuf};

use super::PackageOptions;
use crate::error::{Error, Result};
use crate::events::{Events, EventsExt};
use crate::layout::OutputFormat;
use crate::target::{self, ExpandedTarget};

/// Something a package is made from, which no output may replace.
pub(super) struct Input {
    pub(super) path: PathBuf,
    /// What it is, for messages.
    pub(super) role: &'static str,
    /// A buildpack directory tree (outputs may lie inside it: walks leave them out).
    pub(super) tree_dir: bool,
}

/// An output must not replace or hold what is being read: it is none of the inputs (the buildpack,
/// `package.toml`, the dependencies) and contains none of them, and a layout directory does not
/// lie inside a package being read. An output may lie inside a buildpack directory (the usual
/// `cnbpkg buildpack package out.cnb` run in the buildpack): walks leave it out. Paths are
/// compared canonicalized; an output that does not exist yet is known by its canonical directory.
pub(super) fn check_output_against_inputs(
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
pub(super) fn outputs_of(
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
