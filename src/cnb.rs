//! CNB vocabulary shared by every writer and reader: label and annotation names, the distros
//! an index entry serves, and how a platform is shown (in `--target` grammar).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::oci::Platform;
use crate::target::Distro;

/// Label holding the package's main buildpack (pack's name and shape).
pub const LABEL_METADATA: &str = "io.buildpacks.buildpackage.metadata";
/// Label mapping every buildpack in the package to its layer (pack's name and shape).
pub const LABEL_LAYERS: &str = "io.buildpacks.buildpack.layers";
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
