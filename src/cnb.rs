//! CNB vocabulary shared by every writer and reader: label and annotation names and types, the
//! module directory, the normalized instant, the distros an index entry serves, how a platform
//! is shown (in `--target` grammar) and how a platform serves a requested one.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::oci::Platform;
use crate::target::Distro;

// The label types and names are defined with the descriptor types they carry, and named here.
pub use crate::descriptor::{LayersLabel, ModuleKind, ModuleLayerInfo, PackageMetadata};

/// The instant every packaged file and config carries, 1980-01-01T00:00:01Z (pack's), in
/// seconds since the Unix epoch.
pub const NORMALIZED_SECONDS: u64 = 315_532_801;
/// [`NORMALIZED_SECONDS`] in RFC 3339, as image configs give it.
pub const NORMALIZED_RFC3339: &str = "1980-01-01T00:00:01Z";

/// Label holding the package's main buildpack (pack's name and shape).
pub const LABEL_METADATA: &str = crate::descriptor::METADATA_LABEL;
/// Label mapping every buildpack in the package to its layer (pack's name and shape).
pub const LABEL_LAYERS: &str = crate::descriptor::BUILDPACK_LAYERS_LABEL;
/// Label mapping every extension in the package to its layer.
pub const LABEL_EXTENSION_LAYERS: &str = crate::descriptor::EXTENSION_LAYERS_LABEL;
/// Label of a builder image: its description, buildpacks, lifecycle, creator and run images
/// (pack's name and shape). What marks an image as a builder.
pub const LABEL_BUILDER_METADATA: &str = "io.buildpacks.builder.metadata";
/// Label of a builder image: its order, as builder.toml writes it (unresolved).
pub const LABEL_ORDER: &str = "io.buildpacks.buildpack.order";
/// Label of a builder image: its order of image extensions (unresolved).
pub const LABEL_ORDER_EXTENSIONS: &str = "io.buildpacks.buildpack.order-extensions";
/// Label of a builder image: its system buildpacks (unresolved).
pub const LABEL_SYSTEM: &str = "io.buildpacks.buildpack.system";
/// Label of a build image (and its builder): the deprecated stack id.
pub const LABEL_STACK_ID: &str = "io.buildpacks.stack.id";
/// Label of a build image (and its builder): the deprecated stack's mixins.
pub const LABEL_MIXINS: &str = "io.buildpacks.stack.mixins";
/// Descriptor annotation naming a target's distribution (targets that differ only by distro).
pub const ANNOTATION_DISTRO_NAME: &str = "io.buildpacks.base.distro.name";
/// Descriptor annotation with a target's distribution version.
pub const ANNOTATION_DISTRO_VERSION: &str = "io.buildpacks.base.distro.version";
/// Descriptor annotation listing the distributions one image serves when several targets that
/// differ only by distro give the same image: `name@version` entries joined by `;`, as in
/// `--target` (`ubuntu@22.04;ubuntu@24.04`). A single distro keeps the two annotations above.
pub const ANNOTATION_DISTROS: &str = "io.buildpacks.base.distros";

/// The distributions an index entry says it serves: from [`ANNOTATION_DISTROS`], else from
/// [`ANNOTATION_DISTRO_NAME`] (with [`ANNOTATION_DISTRO_VERSION`]); `None` when it names none
/// (it serves any distribution).
pub fn annotated_distros(annotations: &BTreeMap<String, String>) -> Option<Vec<Distro>> {
    if let Some(list) = annotations.get(ANNOTATION_DISTROS) {
        return Some(
            list.split(';')
                .filter(|d| !d.is_empty())
                .map(|d| match d.split_once('@') {
                    Some((name, version)) => Distro {
                        name: name.to_string(),
                        version: version.to_string(),
                    },
                    None => Distro {
                        name: d.to_string(),
                        version: String::new(),
                    },
                })
                .collect(),
        );
    }
    let name = annotations.get(ANNOTATION_DISTRO_NAME)?;
    Some(vec![Distro {
        name: name.clone(),
        version: annotations
            .get(ANNOTATION_DISTRO_VERSION)
            .cloned()
            .unwrap_or_default(),
    }])
}

/// `linux/arm/v7`, `windows/amd64 (10.0.20348.1970)`, with a distro annotation when present.
pub fn platform_name(p: &Platform, annotations: &BTreeMap<String, String>) -> String {
    let mut s = if p.os.is_empty() {
        "any".to_string()
    } else {
        p.os.clone()
    };
    for part in [&p.architecture, &p.variant] {
        if !part.is_empty() {
            s.push('/');
            s.push_str(part);
        }
    }
    // In `--target` grammar, so that the name shown selects this platform when given back.
    if let (Some(n), Some(v)) = (
        annotations.get(ANNOTATION_DISTRO_NAME),
        annotations.get(ANNOTATION_DISTRO_VERSION),
    ) {
        let _ = write!(s, ":{n}@{v}");
    } else if annotations.contains_key(ANNOTATION_DISTROS) {
        let served = annotated_distros(annotations).unwrap_or_default();
        let served: Vec<String> = served.iter().map(|d| d.folder_name()).collect();
        let _ = write!(s, ":{}", served.join(";"));
    } else if !p.os_version.is_empty() {
        // A Windows `os.version` without a distro: the distro name Windows targets use.
        let _ = write!(s, ":{}@{}", p.os, p.os_version);
    }
    s
}

/// The directory of a module's files inside its layer, without a leading `/`:
/// `cnb/buildpacks/<id, / as _>/<version>` (`extensions` for extensions), under `Files/` in a
/// Windows image.
pub fn module_dir(kind: ModuleKind, id: &str, version: &str, windows: bool) -> String {
    let prefix = if windows { "Files/" } else { "" };
    format!("{prefix}{}/{version}", module_id_dir(kind, id))
}

/// The directory holding every version of a module: `cnb/buildpacks/<id, / as _>`.
pub fn module_id_dir(kind: ModuleKind, id: &str) -> String {
    let kind = match kind {
        ModuleKind::Buildpack => "buildpacks",
        ModuleKind::Extension => "extensions",
    };
    format!("cnb/{kind}/{}", crate::descriptor::escape_id(id))
}

/// An `os[/arch[/variant]]` filter (which images a push copies): it picks an image whose os,
/// and architecture and variant where the filter names them, are exactly those (an image that
/// gives no architecture is picked only by a filter that names none).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlatformFilter {
    os: String,
    arch: Option<String>,
    variant: Option<String>,
}

impl PlatformFilter {
    /// Parse `os[/arch[/variant]]`, each part not empty; the error names the text and the
    /// grammar (a caller names its flag).
    pub fn parse(text: &str) -> crate::error::Result<Self> {
        let parts: Vec<&str> = text.split('/').collect();
        if parts.len() > 3 || parts.iter().any(|p| p.is_empty()) {
            return Err(crate::error::Error::usage(format!(
                "invalid platform '{text}': expected os[/arch[/variant]]"
            )));
        }
        Ok(PlatformFilter {
            os: parts[0].to_string(),
            arch: parts.get(1).map(|s| s.to_string()),
            variant: parts.get(2).map(|s| s.to_string()),
        })
    }

    /// Whether an image of platform `p` is one the filter picks.
    pub fn matches(&self, p: &Platform) -> bool {
        let want = PlatformRequest {
            os: &self.os,
            arch: self.arch.as_deref().unwrap_or_default(),
            variant: self.variant.as_deref().unwrap_or_default(),
            distro: None,
            blank_serves_any: false,
        };
        platform_fit(p, None, &want).is_some()
    }
}

impl std::str::FromStr for PlatformFilter {
    type Err = crate::error::Error;

    fn from_str(text: &str) -> crate::error::Result<Self> {
        PlatformFilter::parse(text)
    }
}

/// The filter as it was written: `os[/arch[/variant]]`.
impl std::fmt::Display for PlatformFilter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.os)?;
        for part in [&self.arch, &self.variant].into_iter().flatten() {
            write!(f, "/{part}")?;
        }
        Ok(())
    }
}

/// A requested platform; an empty field asks for any value.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct PlatformRequest<'a> {
    /// Operating system (always asked: an empty one asks for a candidate without one).
    pub(crate) os: &'a str,
    /// Architecture.
    pub(crate) arch: &'a str,
    /// Architecture variant.
    pub(crate) variant: &'a str,
    /// The distribution (for Windows, the `os.version`).
    pub(crate) distro: Option<&'a Distro>,
    /// Whether a candidate's empty field serves every value (an image or buildpack target that
    /// names no architecture runs on all); when false, an empty field serves only a request
    /// that leaves it empty too (a `--platform` filter picks what images say they are).
    pub(crate) blank_serves_any: bool,
}

/// Of images scored by [`platform_fit`] (`(score, image, its manifest's digest)`), those that
/// fit best: every one sharing the top score, or one when they are all the same manifest (an
/// image listed twice is no ambiguity).
pub(crate) fn best_fits<T>(mut scored: Vec<(u32, T, crate::digest::Digest)>) -> Vec<T> {
    let top = scored.iter().map(|(s, _, _)| *s).max();
    scored.retain(|(s, _, _)| Some(*s) == top);
    if scored.windows(2).all(|w| w[0].2 == w[1].2) {
        scored.truncate(1);
    }
    scored.into_iter().map(|(_, item, _)| item).collect()
}

/// How well a candidate platform `have` (serving `distros`, `None`: any distro) fits `want`:
/// `None` when it cannot serve it, else a score that grows with each field the candidate names
/// and matches (os 8, architecture 4, variant 2, distro 1), so the most specific one wins.
pub(crate) fn platform_fit(
    have: &Platform,
    distros: Option<&[Distro]>,
    want: &PlatformRequest,
) -> Option<u32> {
    let mut score = 0;
    if have.os.is_empty() {
        if !want.blank_serves_any && !want.os.is_empty() {
            return None;
        }
    } else {
        if have.os != want.os {
            return None;
        }
        score += 8;
    }
    for (have, want_value, points) in [
        (&have.architecture, want.arch, 4),
        (&have.variant, want.variant, 2),
    ] {
        if want_value.is_empty() {
            continue;
        }
        if have.is_empty() {
            if !want.blank_serves_any {
                return None;
            }
            continue;
        }
        if have != want_value {
            return None;
        }
        score += points;
    }
    if let Some(d) = want.distro {
        match distros {
            Some(served) if served.contains(d) => score += 1,
            Some(_) => return None,
            None => {
                if want.os == "windows" && !have.os_version.is_empty() {
                    if have.os_version != d.version {
                        return None;
                    }
                    score += 1;
                }
            }
        }
    }
    Some(score)
}

/// The `id@version` of an image's metadata label.
pub(crate) fn image_buildpack(config: &crate::oci::ImageConfig) -> Option<String> {
    image_buildpack_key(config).map(|(id, version)| format!("{id}@{version}"))
}

/// A buildpack's id and version.
pub(crate) type BuildpackKey = (String, String);

/// The id and version of an image's metadata label, to compare buildpacks by: as a pair, for
/// a label's id or version may hold an `@` (`x/y@1` `0` and `x/y` `1@0` read alike joined).
pub(crate) fn image_buildpack_key(config: &crate::oci::ImageConfig) -> Option<BuildpackKey> {
    let label = config.labels().get(LABEL_METADATA)?;
    let metadata = PackageMetadata::parse(label).ok()?;
    (!metadata.info.id.is_empty()).then_some((metadata.info.id, metadata.info.version))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn platform(os: &str, arch: &str, variant: &str, os_version: &str) -> Platform {
        Platform {
            os: os.into(),
            architecture: arch.into(),
            variant: variant.into(),
            os_version: os_version.into(),
            ..Default::default()
        }
    }

    fn distro(name: &str, version: &str) -> Distro {
        Distro {
            name: name.into(),
            version: version.into(),
        }
    }

    #[test]
    fn platform_fit_table() {
        let jammy = distro("ubuntu", "22.04");
        let noble = distro("ubuntu", "24.04");
        let ltsc = distro("", "10.0.20348.1970");
        let served = [jammy.clone()];
        let none: Option<&[Distro]> = None;
        // (candidate, distros it serves, request (os, arch, variant, distro), blank serves any, fit)
        #[allow(clippy::type_complexity)]
        let table: Vec<(
            Platform,
            Option<&[Distro]>,
            (&str, &str, &str, Option<&Distro>),
            bool,
            Option<u32>,
        )> = vec![
            (
                platform("linux", "amd64", "", ""),
                none,
                ("linux", "amd64", "", None),
                true,
                Some(12),
            ),
            (
                platform("linux", "amd64", "", ""),
                none,
                ("linux", "arm64", "", None),
                true,
                None,
            ),
            (
                platform("linux", "amd64", "", ""),
                none,
                ("windows", "amd64", "", None),
                true,
                None,
            ),
            (
                platform("linux", "amd64", "", ""),
                none,
                ("linux", "", "", None),
                true,
                Some(8),
            ),
            (
                platform("", "", "", ""),
                none,
                ("linux", "amd64", "v8", None),
                true,
                Some(0),
            ),
            (
                platform("", "", "", ""),
                none,
                ("linux", "amd64", "", None),
                false,
                None,
            ),
            (
                platform("linux", "", "", ""),
                none,
                ("linux", "amd64", "", None),
                true,
                Some(8),
            ),
            (
                platform("linux", "", "", ""),
                none,
                ("linux", "amd64", "", None),
                false,
                None,
            ),
            (
                platform("linux", "arm", "v7", ""),
                none,
                ("linux", "arm", "v7", None),
                true,
                Some(14),
            ),
            (
                platform("linux", "arm", "v7", ""),
                none,
                ("linux", "arm", "v6", None),
                true,
                None,
            ),
            (
                platform("linux", "arm", "v7", ""),
                none,
                ("linux", "arm", "", None),
                false,
                Some(12),
            ),
            (
                platform("linux", "arm", "", ""),
                none,
                ("linux", "arm", "v7", None),
                true,
                Some(12),
            ),
            (
                platform("linux", "arm", "", ""),
                none,
                ("linux", "arm", "v7", None),
                false,
                None,
            ),
            (
                platform("linux", "amd64", "", ""),
                Some(&served),
                ("linux", "amd64", "", Some(&jammy)),
                true,
                Some(13),
            ),
            (
                platform("linux", "amd64", "", ""),
                Some(&served),
                ("linux", "amd64", "", Some(&noble)),
                true,
                None,
            ),
            (
                platform("linux", "amd64", "", ""),
                none,
                ("linux", "amd64", "", Some(&noble)),
                true,
                Some(12),
            ),
            (
                platform("windows", "amd64", "", "10.0.20348.1970"),
                none,
                ("windows", "amd64", "", Some(&ltsc)),
                true,
                Some(13),
            ),
            (
                platform("windows", "amd64", "", "10.0.17763.1"),
                none,
                ("windows", "amd64", "", Some(&ltsc)),
                true,
                None,
            ),
            (
                platform("windows", "amd64", "", ""),
                none,
                ("windows", "amd64", "", Some(&ltsc)),
                true,
                Some(12),
            ),
            (
                platform("linux", "amd64", "", "5.1"),
                none,
                ("linux", "amd64", "", Some(&jammy)),
                true,
                Some(12),
            ),
        ];
        for (i, (have, distros, (os, arch, variant, distro), blank_serves_any, fit)) in
            table.into_iter().enumerate()
        {
            let want = PlatformRequest {
                os,
                arch,
                variant,
                distro,
                blank_serves_any,
            };
            assert_eq!(
                platform_fit(&have, distros, &want),
                fit,
                "row {i}: {have} for {want:?}"
            );
        }
    }

    #[test]
    fn module_dirs() {
        assert_eq!(
            module_dir(ModuleKind::Buildpack, "a/b", "1", false),
            "cnb/buildpacks/a_b/1"
        );
        assert_eq!(
            module_dir(ModuleKind::Extension, "x", "2", true),
            "Files/cnb/extensions/x/2"
        );
    }
}
