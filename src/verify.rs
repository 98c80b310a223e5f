//! `verify`: every check a careful reader makes on a package, reported as one line per defect.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{self, Read};
use std::path::Path;

use crate::compress;
use crate::descriptor::{LayersLabel, PackageMetadata};
use crate::digest::{Digest, HashingReader};
use crate::error::{Error, Result};
use crate::layout::PackageReader;
use crate::oci::{self, Descriptor, ImageConfig, Index, Manifest};
use crate::package::{LABEL_LAYERS, LABEL_METADATA};
use crate::tar_guard::TarGuard;

/// The largest `buildpack.toml` read out of a layer.
const MAX_DESCRIPTOR: u64 = 1 << 20;
/// The most module descriptors remembered per layer (a layer holds one module; a crafted one
/// could hold millions).
const MAX_MODULES_PER_LAYER: usize = 1024;
/// How deep nested indexes may go.
const MAX_DEPTH: usize = 8;
/// The most descriptors (in all indexes) checked before giving up.
const MAX_DESCRIPTORS: usize = 100_000;

/// What `verify` found.
#[derive(Debug, Clone, Default, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct VerifyReport {
    /// One line per defect; empty when the package is sound.
    pub defects: Vec<String>,
    /// Images checked.
    pub images: usize,
    /// Blobs checked.
    pub blobs: usize,
    /// Bytes of blobs read and hashed.
    pub bytes: u64,
}

impl VerifyReport {
    /// Whether no defect was found.
    pub fn is_ok(&self) -> bool {
        self.defects.is_empty()
    }
}

/// What reading one layer showed.
#[derive(Debug, Clone, Default)]
pub(crate) struct LayerFacts {
    pub(crate) diff_id: Option<Digest>,
    /// Size of the uncompressed tar.
    pub(crate) uncompressed_size: u64,
    /// `buildpack.toml` (or `extension.toml`) files found, by their module directory
    /// (`cnb/buildpacks/<id>/<version>`), parsed as (id, version).
    modules: BTreeMap<String, Option<(String, String)>>,
}

/// Check a `.cnb` file or layout directory. Structural failures that stop reading (an archive
/// that cannot be opened) are reported as defects too; `Err` is for failures of the machine
/// (unreadable file), not of the package.
pub fn verify(path: &Path) -> Result<VerifyReport> {
    let mut report = VerifyReport::default();
    let reader = match PackageReader::open(path) {
        Ok(r) => r,
        Err(e) => {
            // Defect lines are printed after the package's name: do not repeat it.
            let line = match e {
                Error::Invalid { path: p, message } if p == path => message,
                e => e.to_string(),
            };
            report.defects.push(line);
            return Ok(report);
        }
    };
    let mut v = Verifier {
        reader: &reader,
        report,
        referenced: BTreeSet::new(),
        layers: BTreeMap::new(),
        checked: BTreeMap::new(),
        visited: BTreeSet::new(),
        descriptors: 0,
        manifests_done: BTreeMap::new(),
    };
    v.check_layout_file();
    let index = reader.index().clone();
    if let Some(mt) = &index.media_type {
        if !oci::is_index(mt) {
            v.defect(format!("index.json: mediaType {mt} is not an image index"));
        }
    }
    if index.manifests.is_empty() {
        v.defect("index.json: no manifests".to_string());
    }
    v.check_descriptors(&index.manifests, "index.json", 0);
    v.check_unreferenced();
    Ok(v.report)
}

struct Verifier<'a> {
    reader: &'a PackageReader,
    report: VerifyReport,
    referenced: BTreeSet<Digest>,
    layers: BTreeMap<Digest, LayerFacts>,
    /// Blobs whose digest and size were checked, with the outcome.
    checked: BTreeMap<Digest, bool>,
    /// Indexes descended into, and images checked (by manifest and the platform it is listed
    /// with): each is read once however often it is listed.
    visited: BTreeSet<(Digest, String)>,
    /// Descriptors seen in indexes.
    descriptors: usize,
    /// Manifests fully checked, with their config's (os, architecture, variant, os.version)
    /// when it could be read: a manifest listed again (under another platform) is compared, not
    /// re-read, so a crafted index cannot make us hash one large blob thousands of times.
    manifests_done: BTreeMap<Digest, Option<PlatformKey>>,
}

type PlatformKey = (String, String, String, String);

impl Verifier<'_> {
    fn defect(&mut self, line: String) {
        self.report.defects.push(line);
    }

    fn check_layout_file(&mut self) {
        let desc_free = self
            .reader
            .files()
            .ok()
            .and_then(|f| f.get("oci-layout").copied());
        match desc_free {
            None => self.defect("oci-layout: missing".into()),
            Some(_) => {
                // Read through the same path as blobs: a tiny bounded file.
                let ok = self
                    .read_named_json("oci-layout")
                    .and_then(|v: serde_json::Value| {
                        v.get("imageLayoutVersion")
                            .and_then(|s| s.as_str())
                            .map(|s| s.to_string())
                    });
                match ok {
                    Some(v) if v.starts_with("1.") => {}
                    Some(v) => {
                        self.defect(format!("oci-layout: unsupported imageLayoutVersion {v}"))
                    }
                    None => {
                        self.defect("oci-layout: not valid JSON with imageLayoutVersion".into())
                    }
                }
            }
        }
    }

    fn read_named_json<T: serde::de::DeserializeOwned>(&self, name: &str) -> Option<T> {
        let files = self.reader.files().ok()?;
        let size = *files.get(name)?;
        if size > 64 * 1024 {
            return None;
        }
        // oci-layout is not content-addressed; read it as an unverified small file.
        let bytes = self.reader.read_file(name, size).ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    /// Check a blob's presence, size and digest once; returns whether it is sound.
    fn check_blob(&mut self, desc: &Descriptor, referrer: &str) -> bool {
        self.referenced.insert(desc.digest);
        if let Some(ok) = self.checked.get(&desc.digest) {
            return *ok;
        }
        let ok = match self.reader.blob_size(&desc.digest) {
            None => {
                self.defect(format!("{referrer}: blob {} is missing", desc.digest));
                false
            }
            Some(stored) if stored != desc.size => {
                self.defect(format!(
                    "{referrer}: blob {} is {stored} bytes but its descriptor says {}",
                    desc.digest, desc.size
                ));
                false
            }
            Some(_) => true,
        };
        self.checked.insert(desc.digest, ok);
        ok
    }

    fn check_descriptors(&mut self, descs: &[Descriptor], referrer: &str, depth: usize) {
        if depth > MAX_DEPTH {
            self.defect(format!("{referrer}: image indexes nested too deeply"));
            return;
        }
        let mut seen_platforms = BTreeMap::new();
        for d in descs {
            self.descriptors += 1;
            if self.descriptors > MAX_DESCRIPTORS {
                return self.defect(format!(
                    "{referrer}: more than {MAX_DESCRIPTORS} descriptors in the package's indexes"
                ));
            }
            let platform = serde_json::to_string(&d.platform).unwrap_or_default();
            if !self
                .visited
                .insert((d.digest, format!("{}\0{platform}", d.media_type)))
            {
                // Listed before with the same media type and platform: its blobs were checked.
                self.referenced.insert(d.digest);
                continue;
            }
            if oci::is_manifest(&d.media_type) {
                if let Some(p) = &d.platform {
                    let key = (
                        p.os.clone(),
                        p.architecture.clone(),
                        p.variant.clone(),
                        p.os_version.clone(),
                        d.annotations.clone(),
                    );
                    if let Some(prev) = seen_platforms.insert(key, d.digest) {
                        if prev != d.digest {
                            self.defect(format!(
                                "{referrer}: two manifests ({prev} and {}) claim the same platform",
                                d.digest
                            ));
                        }
                    }
                }
                self.check_image(d, referrer);
            } else if oci::is_index(&d.media_type) {
                if !self.check_blob(d, referrer) {
                    continue;
                }
                match self.reader.read_json::<Index>(d, "index") {
                    Ok((index, _)) => {
                        if let Some(mt) = &index.media_type {
                            if mt != &d.media_type {
                                self.defect(format!(
                                    "index {}: mediaType {mt} differs from its descriptor's {}",
                                    d.digest, d.media_type
                                ));
                            }
                        }
                        let name = format!("index {}", d.digest.short());
                        self.check_descriptors(&index.manifests, &name, depth + 1);
                    }
                    Err(e) => self.defect(e.to_string()),
                }
            } else {
                self.check_blob(d, referrer);
                self.defect(format!(
                    "{referrer}: descriptor {} has unexpected media type '{}'",
                    d.digest, d.media_type
                ));
            }
        }
    }

    fn check_image(&mut self, d: &Descriptor, referrer: &str) {
        self.report.images += 1;
        if let Some(done) = self.manifests_done.get(&d.digest).cloned() {
            self.referenced.insert(d.digest);
            if let Some(cfg) = done {
                self.check_platform(d, &cfg);
            }
            return;
        }
        self.manifests_done.insert(d.digest, None);
        if !self.check_blob(d, referrer) {
            return;
        }
        let manifest: Manifest = match self.reader.read_json(d, "manifest") {
            Ok((m, _)) => m,
            Err(e) => return self.defect(e.to_string()),
        };
        let name = format!("manifest {}", d.digest.short());
        if let Some(mt) = &manifest.media_type {
            if mt != &d.media_type {
                self.defect(format!(
                    "{name}: mediaType {mt} differs from its descriptor's {}",
                    d.media_type
                ));
            }
        }
        if !oci::is_config(&manifest.config.media_type) {
            self.defect(format!(
                "{name}: config has unexpected media type '{}'",
                manifest.config.media_type
            ));
        }
        if !self.check_blob(&manifest.config, &name) {
            return;
        }
        let (config, _): (ImageConfig, _) = match self.reader.read_json(&manifest.config, "config")
        {
            Ok(c) => c,
            Err(e) => return self.defect(e.to_string()),
        };
        let cfg: PlatformKey = (
            config.os.clone(),
            config.architecture.clone(),
            config.variant.clone(),
            config.os_version.clone(),
        );
        self.check_platform(d, &cfg);
        self.manifests_done.insert(d.digest, Some(cfg));
        if config.rootfs.diff_ids.len() != manifest.layers.len() {
            self.defect(format!(
                "{name}: {} layers but the config lists {} diffIDs",
                manifest.layers.len(),
                config.rootfs.diff_ids.len()
            ));
        }
        for (i, layer) in manifest.layers.iter().enumerate() {
            let facts = self.check_layer(layer, &name);
            if let (Some(actual), Some(expected)) =
                (facts.and_then(|f| f.diff_id), config.rootfs.diff_ids.get(i))
            {
                if actual != *expected {
                    self.defect(format!(
                        "{name}: layer {i} ({}) has diffID {actual}, the config says {expected}",
                        layer.digest.short()
                    ));
                }
            }
        }
        self.check_labels(&name, &manifest, &config);
    }

    /// The config's platform must be the one the index lists the manifest under.
    fn check_platform(&mut self, d: &Descriptor, cfg: &PlatformKey) {
        let Some(p) = &d.platform else { return };
        let desc = (&p.os, &p.architecture, &p.variant, &p.os_version);
        if (&cfg.0, &cfg.1, &cfg.2, &cfg.3) != desc {
            self.defect(format!(
                "manifest {}: config platform {}/{}/{}/{} differs from the index's {}/{}/{}/{}",
                d.digest.short(),
                cfg.0,
                cfg.1,
                cfg.2,
                cfg.3,
                desc.0,
                desc.1,
                desc.2,
                desc.3
            ));
        }
    }

    /// Read a layer once: compressed digest, decompressed diffID, and the buildpacks it holds.
    fn check_layer(&mut self, layer: &Descriptor, referrer: &str) -> Option<LayerFacts> {
        let encoding = match oci::layer_compression_of(&layer.media_type) {
            Some(e) => e,
            None => {
                self.check_blob(layer, referrer);
                self.defect(format!(
                    "{referrer}: layer {} has unexpected media type '{}'",
                    layer.digest, layer.media_type
                ));
                return None;
            }
        };
        if !self.check_blob(layer, referrer) {
            return None;
        }
        if let Some(f) = self.layers.get(&layer.digest) {
            return Some(f.clone());
        }
        let facts = match read_layer(self.reader, layer, encoding) {
            Ok((digest, facts, bytes)) => {
                self.report.bytes += bytes;
                if digest != layer.digest {
                    self.defect(format!(
                        "{referrer}: layer blob {} has digest {digest}",
                        layer.digest
                    ));
                    self.checked.insert(layer.digest, false);
                }
                facts
            }
            Err(e) => {
                self.defect(format!("{referrer}: layer {}: {e}", layer.digest));
                LayerFacts::default()
            }
        };
        self.layers.insert(layer.digest, facts.clone());
        Some(facts)
    }

    fn check_labels(&mut self, name: &str, manifest: &Manifest, config: &ImageConfig) {
        let labels = config.labels();
        let meta = match labels.get(LABEL_METADATA) {
            Some(m) => m,
            None => return self.defect(format!("{name}: no {LABEL_METADATA} label")),
        };
        if let Err(e) = PackageMetadata::parse(meta) {
            self.defect(format!("{name}: {LABEL_METADATA}: {e}"));
        }
        let (label_name, value) = match labels.get(LABEL_LAYERS) {
            Some(v) => (LABEL_LAYERS, v),
            None => match labels.get("io.buildpacks.extension.layers") {
                Some(v) => ("io.buildpacks.extension.layers", v),
                None => return self.defect(format!("{name}: no {LABEL_LAYERS} label")),
            },
        };
        let layers = match LayersLabel::parse(value) {
            Ok(l) => l,
            Err(e) => return self.defect(format!("{name}: {label_name}: {e}")),
        };
        let windows = config.os == "windows";
        for (id, versions) in &layers.0 {
            for (version, info) in versions {
                let diff_id: Option<Digest> = info.layer_diff_id.parse().ok();
                let Some(diff_id) = diff_id else {
                    self.defect(format!(
                        "{name}: {label_name}: {id}@{version} has invalid layerDiffID '{}'",
                        info.layer_diff_id
                    ));
                    continue;
                };
                let Some(pos) = config.rootfs.diff_ids.iter().position(|d| *d == diff_id) else {
                    self.defect(format!("{name}: {label_name}: {id}@{version} points at {diff_id}, which is not a layer of this image"));
                    continue;
                };
                let Some(layer) = manifest.layers.get(pos) else {
                    continue;
                };
                let Some(facts) = self.layers.get(&layer.digest) else {
                    continue;
                };
                let dir = module_dir(label_name, id, version, windows);
                match facts.modules.get(&dir) {
                    None => self.defect(format!("{name}: layer {} does not hold {id}@{version} (no {dir}/)", layer.digest.short())),
                    Some(Some((fid, fver))) if fid != id || fver != version => self.defect(format!(
                        "{name}: layer {} holds {fid}@{fver} at {dir}, its label says {id}@{version}",
                        layer.digest.short()
                    )),
                    Some(_) => {}
                }
            }
        }
    }

    fn check_unreferenced(&mut self) {
        let files = match self.reader.files() {
            Ok(f) => f,
            Err(e) => return self.defect(e.to_string()),
        };
        self.report.blobs = self.referenced.len();
        for name in files.keys() {
            if let Some(hex) = name.strip_prefix("blobs/sha256/") {
                match format!("sha256:{hex}").parse::<Digest>() {
                    Ok(d) if self.referenced.contains(&d) => {}
                    Ok(d) => self.defect(format!(
                        "blob {d} is not referenced by any index or manifest"
                    )),
                    Err(_) => self.defect(format!("{name}: not a sha256 blob name")),
                }
            } else if name.starts_with("blobs/") {
                self.defect(format!("{name}: unexpected file under blobs/"));
            } else if name != "oci-layout" && name != "index.json" {
                self.defect(format!("{name}: unexpected file in the layout"));
            }
        }
    }
}

/// The directory a module's files sit in inside a layer.
fn module_dir(label_name: &str, id: &str, version: &str, windows: bool) -> String {
    let kind = if label_name.contains("extension") {
        "extensions"
    } else {
        "buildpacks"
    };
    let prefix = if windows { "Files/" } else { "" };
    format!("{prefix}cnb/{kind}/{}/{version}", id.replace('/', "_"))
}

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
    let mut stored = HashingReader::new(blob);
    let mut facts = LayerFacts::default();
    {
        let decoded = compress::decoder(encoding, &mut stored);
        let mut tar_stream = HashingReader::new(decoded);
        {
            // The guard bounds extended headers, which the tar reader would hold whole.
            let mut guarded = TarGuard::new(&mut tar_stream);
            let mut archive = tar::Archive::new(&mut guarded);
            for entry in archive.entries()? {
                let mut entry = entry?;
                let path = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
                let path = path
                    .trim_start_matches('/')
                    .trim_start_matches("./")
                    .trim_end_matches('/')
                    .to_string();
                if let Some(dir) = path
                    .strip_suffix("/buildpack.toml")
                    .or_else(|| path.strip_suffix("/extension.toml"))
                {
                    if is_module_dir(dir)
                        && facts.modules.len() < MAX_MODULES_PER_LAYER
                        && entry.header().entry_type().is_file()
                        && entry.size() <= MAX_DESCRIPTOR
                    {
                        let mut text = String::new();
                        let parsed = entry
                            .read_to_string(&mut text)
                            .ok()
                            .and_then(|_| id_version_of(&text));
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

fn is_module_dir(dir: &str) -> bool {
    let d = dir.strip_prefix("Files/").unwrap_or(dir);
    let parts: Vec<&str> = d.split('/').collect();
    parts.len() == 4 && parts[0] == "cnb" && (parts[1] == "buildpacks" || parts[1] == "extensions")
}

/// `(id, version)` from a buildpack.toml or extension.toml text.
fn id_version_of(text: &str) -> Option<(String, String)> {
    let value: toml::Table = text.parse().ok()?;
    let table = value
        .get("buildpack")
        .or_else(|| value.get("extension"))?
        .as_table()?;
    Some((
        table.get("id")?.as_str()?.to_string(),
        table.get("version")?.as_str()?.to_string(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn module_dirs() {
        assert!(is_module_dir("cnb/buildpacks/a_b/1.0"));
        assert!(is_module_dir("Files/cnb/buildpacks/a/1.0"));
        assert!(!is_module_dir("cnb/buildpacks/a"));
        assert_eq!(
            module_dir(LABEL_LAYERS, "a/b", "1", false),
            "cnb/buildpacks/a_b/1"
        );
    }
}
