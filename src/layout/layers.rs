//! Reading a stored layer once: the digest of its bytes, the diffID of its tar, and the module
//! directories and descriptors it holds (what `verify` checks and `inspect` sizes).

use std::collections::{BTreeMap, BTreeSet};
use std::io::{self, Read};

use crate::compress;
use crate::digest::{Digest, HashingReader};
use crate::oci::{self, Descriptor};
use crate::tar_guard::TarGuard;

use super::PackageReader;

/// The largest `buildpack.toml` read out of a layer (one at a time, not kept: the limit of the
/// configs that carry its values).
pub(crate) const MAX_DESCRIPTOR: u64 = super::MAX_JSON_BLOB;
/// The most module descriptors remembered per layer (a layer holds one module; a crafted one
/// could hold millions).
const MAX_MODULES_PER_LAYER: usize = 1024;
/// How many misplaced entries of one layer are reported by name.
pub(crate) const MAX_VIOLATIONS_PER_LAYER: usize = 16;

/// What reading one layer showed.
#[derive(Debug, Clone, Default)]
pub(crate) struct LayerFacts {
    pub(crate) diff_id: Option<Digest>,
    /// Size of the uncompressed tar.
    pub(crate) uncompressed_size: u64,
    /// `buildpack.toml` (or `extension.toml`) files found, by their module directory
    /// (`cnb/buildpacks/<id>/<version>`), parsed as (id, version).
    pub(crate) modules: BTreeMap<String, Option<(String, String)>>,
    /// The module directories the layer's entries lie in (see
    /// [`crate::layer::module_dir_of_entry`]).
    pub(crate) dirs: BTreeSet<String>,
    /// Entries that lie outside every module directory, or links leaving theirs (the first
    /// [`MAX_VIOLATIONS_PER_LAYER`]).
    pub(crate) violations: Vec<String>,
    /// How many such entries there were in all.
    pub(crate) violation_count: usize,
    /// For a layer with entries in `/cnb/lifecycle` (a builder's lifecycle layer): which of the
    /// lifecycle binaries a builder needs ([`LIFECYCLE_BINARIES`], or their `.exe` forms) it
    /// holds; `None` for any other layer.
    pub(crate) lifecycle: Option<BTreeSet<String>>,
    /// The module directories this layer hides with an OCI whiteout
    /// (`cnb/buildpacks/<id>/.wh.<version>`), as a builder does for a module of its base that
    /// it replaces (the first [`MAX_MODULES_PER_LAYER`]).
    pub(crate) whiteouts: BTreeSet<String>,
}

/// The lifecycle binaries pack requires of a builder (`validateBinaries`).
pub(crate) const LIFECYCLE_BINARIES: [&str; 7] = [
    "analyzer", "builder", "creator", "detector", "exporter", "launcher", "restorer",
];

/// Read a layer blob once: digest of the stored bytes, diffID of the decompressed tar, and the
/// module descriptors it holds. Returns (stored digest, facts, stored bytes read).
pub(crate) fn read_layer(
    reader: &PackageReader,
    layer: &Descriptor,
    encoding: oci::LayerEncoding,
) -> io::Result<(Digest, LayerFacts, u64)> {
    let blob = reader
        .open_blob(&layer.digest)
        .map_err(|e| io::Error::other(e.to_string()))?;
    read_layer_stream(blob, encoding)
}

/// [`read_layer`] over a blob's stored bytes (the fuzz targets feed it arbitrary ones).
pub(crate) fn read_layer_stream(
    blob: impl Read,
    encoding: oci::LayerEncoding,
) -> io::Result<(Digest, LayerFacts, u64)> {
    let mut stored = HashingReader::new(blob);
    let mut facts = LayerFacts::default();
    {
        let decoded = compress::decoder(encoding, &mut stored);
        let mut tar_stream = HashingReader::new(decoded);
        {
            // The guard bounds extended headers, which the tar reader would hold whole.
            let mut guarded = TarGuard::new(&mut tar_stream);
            let mut archive = tar::Archive::new(&mut guarded);
            let mut watch = crate::layer::LinkWatch::default();
            for entry in archive.entries()? {
                let mut entry = entry?;
                let path = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
                let link = entry
                    .link_name_bytes()
                    .map(|l| String::from_utf8_lossy(&l).into_owned());
                let typ = entry.header().entry_type();
                let placed = watch
                    .check(&path, typ, link.as_deref())
                    .and_then(|()| crate::layer::module_dir_of_entry(&path, typ, link.as_deref()));
                match placed {
                    Ok(Some(dir)) => {
                        if facts.dirs.len() < MAX_MODULES_PER_LAYER {
                            facts.dirs.insert(dir);
                        } else if !facts.dirs.contains(&dir) {
                            facts.violation_count += 1;
                        }
                    }
                    Ok(None) => {}
                    Err(why) => {
                        facts.violation_count += 1;
                        if facts.violations.len() < MAX_VIOLATIONS_PER_LAYER {
                            facts
                                .violations
                                .push(format!("entry '{}' {why}", crate::layer::shown_name(&path)));
                        }
                    }
                }
                let path = crate::tar::name_parts(&path, false)
                    .map(|parts| parts.join("/"))
                    .unwrap_or_default();
                note_lifecycle_entry(&path, &mut facts);
                if let Some(dir) = whited_out_module(&path) {
                    if facts.whiteouts.len() < MAX_MODULES_PER_LAYER {
                        facts.whiteouts.insert(dir);
                    }
                }
                if let Some(dir) = path
                    .strip_suffix("/buildpack.toml")
                    .or_else(|| path.strip_suffix("/extension.toml"))
                {
                    if is_module_dir(dir) && facts.modules.len() < MAX_MODULES_PER_LAYER {
                        // A link, an oversized file or text naming no module is no descriptor
                        // the lifecycle can use (`None`).
                        let mut parsed = None;
                        if entry.header().entry_type().is_file() && entry.size() <= MAX_DESCRIPTOR {
                            let mut text = String::new();
                            parsed = entry
                                .read_to_string(&mut text)
                                .ok()
                                .and_then(|_| crate::descriptor::id_version_of(&text));
                        }
                        facts.modules.insert(dir.to_string(), parsed);
                    }
                }
            }
        }
        // The tar reader stops at the end-of-archive marker; the diffID covers every byte.
        io::copy(&mut tar_stream, &mut io::sink())?;
        let (_, diff_id, size) = tar_stream.finish();
        facts.diff_id = Some(diff_id);
        facts.uncompressed_size = size;
    }
    io::copy(&mut stored, &mut io::sink())?;
    let (_, digest, n) = stored.finish();
    Ok((digest, facts, n))
}

/// Record an entry of `/cnb/lifecycle` (`name` cleaned, without a leading `/`): the layer is a
/// lifecycle layer, and which required binary it is, if one (a fixed set: bounded).
fn note_lifecycle_entry(name: &str, facts: &mut LayerFacts) {
    let name = name.strip_prefix("Files/").unwrap_or(name);
    let Some(rest) = name.strip_prefix("cnb/lifecycle") else {
        return;
    };
    let file = match rest.strip_prefix('/') {
        Some(file) => file,
        None if rest.is_empty() => "",
        None => return, // `cnb/lifecycle.toml`, `cnb/lifecycleX`
    };
    let found = facts.lifecycle.get_or_insert_with(BTreeSet::new);
    let bare = file.strip_suffix(".exe").unwrap_or(file);
    if LIFECYCLE_BINARIES.contains(&bare) {
        found.insert(bare.to_string());
    }
}

fn is_module_dir(dir: &str) -> bool {
    let d = dir.strip_prefix("Files/").unwrap_or(dir);
    let parts: Vec<&str> = d.split('/').collect();
    parts.len() == 4 && parts[0] == "cnb" && (parts[1] == "buildpacks" || parts[1] == "extensions")
}

/// The module directory a whiteout entry hides: `cnb/buildpacks/<id>/.wh.<version>` (or under
/// `cnb/extensions`) names `cnb/buildpacks/<id>/<version>`.
fn whited_out_module(path: &str) -> Option<String> {
    let parts: Vec<&str> = path.split('/').collect();
    match parts.as_slice() {
        ["cnb", dist @ ("buildpacks" | "extensions"), id, entry] => {
            let version = entry.strip_prefix(".wh.")?;
            let hidden = format!("cnb/{dist}/{id}/{version}");
            (!version.is_empty() && !version.starts_with(".wh.") && is_module_dir(&hidden))
                .then_some(hidden)
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn module_dirs() {
        assert!(is_module_dir("cnb/buildpacks/a_b/1.0"));
        assert!(is_module_dir("Files/cnb/buildpacks/a/1.0"));
        assert!(!is_module_dir("cnb/buildpacks/a"));
    }

    #[test]
    fn lifecycle_entries() {
        let mut facts = LayerFacts::default();
        for name in [
            "cnb/lifecycle.toml",
            "cnb/lifecycles/detector",
            "etc/detector",
        ] {
            note_lifecycle_entry(name, &mut facts);
        }
        assert_eq!(facts.lifecycle, None);
        for name in [
            "cnb/lifecycle",
            "cnb/lifecycle/detector",
            "Files/cnb/lifecycle/builder.exe",
            "cnb/lifecycle/lifecycle",
            "cnb/lifecycle/sub/exporter",
        ] {
            note_lifecycle_entry(name, &mut facts);
        }
        let found: Vec<&str> = facts
            .lifecycle
            .iter()
            .flatten()
            .map(|s| s.as_str())
            .collect();
        assert_eq!(found, ["builder", "detector"]);
    }
}
