//! Which targets a package is built for: `--target` values, else the configuration's, else one
//! inferred from the buildpack.

use std::fs;
use std::path::Path;

use super::sources::Tree;
use super::PackageOptions;
use crate::descriptor::{self, PackageConfig};
use crate::error::{Error, Result};
use crate::events::{Events, EventsExt};
use crate::layout::MAX_IMAGES;
use crate::target::{self, ExpandedTarget, Target};

/// The `platform.os` deprecation for a composite buildpack, whose targets are set in
/// package.toml (pack's text points at buildpack.toml, right only for other buildpacks).
/// pack's text (compatibility) but for the file, hence the flag name in a library message.
const PLATFORM_OS_DEPRECATED_COMPOSITE: &str = "'platform.os' field in package.toml will be deprecated, use new '--target' flag or [[targets]] in package.toml to set the platforms of a composite buildpack.";

/// `platform.os` together with `--target`, for a composite buildpack.
/// pack's text (compatibility) but for the file, hence the flag name in a library message.
const PLATFORM_OS_WITH_TARGET_COMPOSITE: &str = "'platform.os' and '--target' flag can not be used in conjunction, please remove 'platform.os' from package.toml, use new '--target' flag or [[targets]] in package.toml to set the platforms of a composite buildpack";

/// The most targets (after distro expansion) packaged in one run.
pub(crate) const MAX_PACKAGED_TARGETS: usize = 1024;

/// The targets to build: `--target` values, else the configuration's (buildpack.toml, or
/// package.toml for a composite), else one default target.
pub(super) fn resolve_targets(
    opts: &PackageOptions,
    config: &PackageConfig,
    main: &Tree,
    events: &dyn Events,
) -> Result<Vec<ExpandedTarget>> {
    opts.target_warnings.iter().for_each(|w| events.warning(w));
    let flag_targets = &opts.targets;
    let composite = main.descriptor.is_composite();
    // A composite's targets live in package.toml, not in its buildpack.toml.
    if config.platform_os.is_some() {
        events.warning(if composite {
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
            .iter()
            .map(|t| with_configured_path(t.clone(), configured))
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
        // pack's exact text (compatibility), flag name included.
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

#[cfg(test)]
mod tests {
    use super::*;

    fn target(os: &str, arch: &str, variant: &str, path: Option<&str>) -> Target {
        Target {
            os: os.into(),
            arch: arch.into(),
            variant: variant.into(),
            distros: Vec::new(),
            path: path.map(String::from),
        }
    }

    /// A `--target` takes the `path` of the configured target with its os/arch/variant, and
    /// keeps its own when it has one.
    #[test]
    fn configured_path_table() {
        let configured = [
            target("linux", "amd64", "", Some("amd")),
            target("linux", "arm", "v7", Some("arm7")),
        ];
        let table: &[(Target, Option<&str>)] = &[
            (target("linux", "amd64", "", None), Some("amd")),
            (target("linux", "arm", "v7", None), Some("arm7")),
            (target("linux", "arm", "v6", None), None),
            (target("linux", "arm64", "", None), None),
            (target("windows", "amd64", "", None), None),
            (target("linux", "amd64", "", Some("own")), Some("own")),
        ];
        for (given, path) in table {
            let got = with_configured_path(given.clone(), &configured);
            assert_eq!(got.path.as_deref(), *path, "{}", given.display());
        }
    }

    /// With no target anywhere: Windows when the entry points are only `.bat`/`.exe`.
    #[test]
    fn inferred_os_table() {
        let table: &[(&[&str], &str)] = &[
            (&[], "linux"),
            (&["build", "detect"], "linux"),
            (&["build.bat"], "windows"),
            (&["build.exe", "detect.exe"], "windows"),
            (&["build", "build.exe"], "linux"),
        ];
        for (files, os) in table {
            let dir = tempfile::tempdir().unwrap();
            fs::create_dir(dir.path().join("bin")).unwrap();
            for f in *files {
                fs::write(dir.path().join("bin").join(f), "").unwrap();
            }
            assert_eq!(infer_os(dir.path()), *os, "{files:?}");
        }
    }
}
