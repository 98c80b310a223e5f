//! `inspect`: what a package holds — platforms, manifests, configs, buildpacks, layers with
//! their sizes, labels and shared blobs — for people and, as stable JSON, for scripts.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::cnb::{
    LayersLabel, PackageMetadata, LABEL_EXTENSION_LAYERS, LABEL_LAYERS, LABEL_METADATA,
};
use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::layout::layers::read_layer;
use crate::layout::PackageReader;
use crate::oci::{self, Platform};
use crate::ui::human_size;

/// Everything `inspect` reports.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct InspectReport {
    /// The package inspected.
    #[serde(serialize_with = "crate::json::lossy_path")]
    pub path: PathBuf,
    /// What `index.json` points at: its digest and media type.
    pub digest: Digest,
    /// Media type of that digest.
    pub media_type: String,
    /// The main buildpack (`id@version`) from the metadata label of the first image.
    pub buildpack: Option<String>,
    /// One entry per image.
    pub images: Vec<ImageInfo>,
    /// Blobs referenced by more than one image (stored once).
    pub shared_blobs: Vec<SharedBlob>,
    /// Total size of all distinct blobs.
    pub total_blob_bytes: u64,
}

/// One image of a package.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct ImageInfo {
    /// Its platform.
    pub platform: Platform,
    /// Descriptor annotations (distro names and versions).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    /// The distros the image serves (`name@version`), from its annotations; empty: any.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub distros: Vec<String>,
    /// Manifest digest.
    pub manifest: Digest,
    /// Manifest media type.
    pub manifest_media_type: String,
    /// Config digest.
    pub config: Digest,
    /// Buildpacks (and extensions) in the layers label.
    pub buildpacks: Vec<BuildpackInfo>,
    /// Layers, base first.
    pub layers: Vec<LayerInfo>,
    /// Labels other than the two buildpack labels.
    pub labels: BTreeMap<String, String>,
}

/// One buildpack of an image.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct BuildpackInfo {
    /// Buildpack ID.
    pub id: String,
    /// Version.
    pub version: String,
    /// Buildpack API.
    pub api: Option<String>,
    /// Targets, as `os/arch/variant` strings.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub targets: Vec<String>,
    /// For composites: the order groups as `id@version` lists.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub order: Vec<Vec<String>>,
    /// The layer holding it.
    #[serde(rename = "layerDiffID")]
    pub layer_diff_id: String,
}

/// One layer of an image.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct LayerInfo {
    /// Stored digest.
    pub digest: Digest,
    /// Media type.
    pub media_type: String,
    /// Stored size.
    pub size: u64,
    /// Uncompressed digest (from the config).
    pub diff_id: Option<Digest>,
    /// Uncompressed size.
    pub uncompressed_size: Option<u64>,
}

/// A blob referenced by several images.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct SharedBlob {
    /// Its digest.
    pub digest: Digest,
    /// Its size.
    pub size: u64,
    /// The platforms of the images that reference it.
    pub used_by: Vec<String>,
}

/// Describe a `.cnb` file or layout directory.
pub fn inspect(path: &Path) -> Result<InspectReport> {
    let reader = PackageReader::open(path)?;
    let root = reader
        .index()
        .manifests
        .first()
        .cloned()
        .ok_or_else(|| Error::invalid(path, "index.json lists no manifests"))?;
    let mut images = Vec::new();
    let mut uncompressed: BTreeMap<Digest, Option<u64>> = BTreeMap::new();
    let mut users: BTreeMap<Digest, (u64, Vec<String>)> = BTreeMap::new();
    let all = reader.images()?;
    for img in &all {
        let platform = img.platform();
        let pname = platform_name(&platform, &img.descriptor.annotations);
        let mut layers = Vec::new();
        for (i, l) in img.manifest.layers.iter().enumerate() {
            let diff_id = img.config.rootfs.diff_ids.get(i).copied();
            let size = *uncompressed.entry(l.digest).or_insert_with(|| {
                let enc = oci::layer_compression_of(&l.media_type)?;
                // A size is only shown for a layer whose digest and diffID check out.
                read_layer(&reader, l, enc)
                    .ok()
                    .filter(|(digest, facts, stored)| {
                        *digest == l.digest && *stored == l.size && facts.diff_id == diff_id
                    })
                    .map(|(_, facts, _)| facts.uncompressed_size)
            });
            layers.push(LayerInfo {
                digest: l.digest,
                media_type: l.media_type.clone(),
                size: l.size,
                diff_id: img.config.rootfs.diff_ids.get(i).copied(),
                uncompressed_size: size,
            });
            users
                .entry(l.digest)
                .or_insert((l.size, Vec::new()))
                .1
                .push(pname.clone());
        }
        users
            .entry(img.manifest.config.digest)
            .or_insert((img.manifest.config.size, Vec::new()))
            .1
            .push(pname.clone());
        let labels = img.config.labels();
        let buildpacks = labels
            .get(LABEL_LAYERS)
            .or_else(|| labels.get(LABEL_EXTENSION_LAYERS))
            .and_then(|v| LayersLabel::parse(v).ok())
            .map(buildpacks_of)
            .unwrap_or_default();
        let other_labels = labels
            .iter()
            .filter(|(k, _)| {
                k.as_str() != LABEL_LAYERS
                    && k.as_str() != LABEL_METADATA
                    && k.as_str() != LABEL_EXTENSION_LAYERS
            })
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        images.push(ImageInfo {
            platform,
            annotations: img.descriptor.annotations.clone(),
            distros: crate::cnb::annotated_distros(&img.descriptor.annotations)
                .unwrap_or_default()
                .iter()
                .map(|d| d.folder_name())
                .collect(),
            manifest: img.descriptor.digest,
            manifest_media_type: img.descriptor.media_type.clone(),
            config: img.manifest.config.digest,
            buildpacks,
            layers,
            labels: other_labels,
        });
    }
    let buildpack = all
        .first()
        .and_then(|i| i.config.labels().get(LABEL_METADATA).cloned())
        .and_then(|m| PackageMetadata::parse(&m).ok())
        .map(|m| format!("{}@{}", m.info.id, m.info.version));
    let shared_blobs = users
        .into_iter()
        .filter(|(_, (_, u))| u.len() > 1)
        .map(|(digest, (size, used_by))| SharedBlob {
            digest,
            size,
            used_by,
        })
        .collect();
    let total_blob_bytes = reader
        .files()?
        .iter()
        .filter(|(k, _)| k.starts_with("blobs/"))
        .map(|(_, s)| s)
        .sum();
    Ok(InspectReport {
        path: path.to_path_buf(),
        digest: root.digest,
        media_type: root.media_type,
        buildpack,
        images,
        shared_blobs,
        total_blob_bytes,
    })
}

fn buildpacks_of(label: LayersLabel) -> Vec<BuildpackInfo> {
    let mut out = Vec::new();
    for (id, versions) in label.0 {
        for (version, info) in versions {
            out.push(BuildpackInfo {
                id: id.clone(),
                version,
                api: info.api,
                targets: info.targets.iter().map(|t| t.display()).collect(),
                order: info
                    .order
                    .iter()
                    .map(|o| {
                        o.group
                            .iter()
                            .map(|g| format!("{}@{}", g.info.id, g.info.version))
                            .collect()
                    })
                    .collect(),
                layer_diff_id: info.layer_diff_id,
            });
        }
    }
    out
}

pub use crate::cnb::platform_name;

/// One line of human output; text from the package (labels, ids, platforms) has its control
/// characters escaped, so it cannot forge lines or drive the terminal.
macro_rules! put {
    ($s:expr, $($arg:tt)*) => {{
        $s.push_str(&crate::ui::escape_controls(&format!($($arg)*)));
        $s.push('\n');
    }};
}

/// The most lines `render` prints for one list (buildpacks, layers or labels of an image, shared
/// blobs): a crafted package can hold a hundred thousand; the JSON report has them all.
pub const MAX_LISTED: usize = 200;

/// The line after a list cut at [`MAX_LISTED`], if it was.
fn more(s: &mut String, indent: &str, total: usize, what: &str) {
    if total > MAX_LISTED {
        put!(s, "{indent}… and {} more {what}", total - MAX_LISTED);
    }
}

/// The report as text for a terminal.
pub fn render(r: &InspectReport) -> String {
    let mut s = String::new();
    put!(s, "Package:   {}", r.path.display());
    if let Some(bp) = &r.buildpack {
        put!(s, "Buildpack: {bp}");
    }
    let kind = if oci::is_index(&r.media_type) {
        "image index"
    } else {
        "image manifest"
    };
    put!(s, "Digest:    {} ({kind})", r.digest);
    put!(s, "Blobs:     {} in total", human_size(r.total_blob_bytes));
    for img in &r.images {
        s.push('\n');
        put!(
            s,
            "Platform {}",
            platform_name(&img.platform, &img.annotations)
        );
        put!(s, "  manifest  {}", img.manifest);
        put!(s, "  config    {}", img.config);
        if !img.buildpacks.is_empty() {
            put!(s, "  buildpacks:");
            for bp in img.buildpacks.iter().take(MAX_LISTED) {
                let api = bp.api.as_deref().unwrap_or("?");
                let what = if !bp.order.is_empty() {
                    format!(
                        "order: {}",
                        bp.order
                            .iter()
                            .map(|g| g.join(", "))
                            .collect::<Vec<_>>()
                            .join(" | ")
                    )
                } else if !bp.targets.is_empty() {
                    format!("targets: {}", bp.targets.join(", "))
                } else {
                    String::new()
                };
                put!(s, "    {}@{}  api {api}  {what}", bp.id, bp.version);
                put!(s, "      layer {}", bp.layer_diff_id);
            }
            more(&mut s, "    ", img.buildpacks.len(), "buildpacks");
        }
        put!(s, "  layers:");
        for l in img.layers.iter().take(MAX_LISTED) {
            let unc = l
                .uncompressed_size
                .map(human_size)
                .unwrap_or_else(|| "?".into());
            put!(
                s,
                "    {}  {:>10} → {:>10}  {}",
                l.digest.short(),
                human_size(l.size),
                unc,
                short_media_type(&l.media_type)
            );
        }
        more(&mut s, "    ", img.layers.len(), "layers");
        for (k, v) in img.labels.iter().take(MAX_LISTED) {
            put!(s, "  label {k}={v}");
        }
        more(&mut s, "  ", img.labels.len(), "labels");
    }
    if !r.shared_blobs.is_empty() {
        s.push('\n');
        put!(s, "Shared blobs (stored once):");
        for b in r.shared_blobs.iter().take(MAX_LISTED) {
            put!(
                s,
                "  {}  {:>10}  used by {}",
                b.digest.short(),
                human_size(b.size),
                b.used_by.join(", ")
            );
        }
        more(&mut s, "  ", r.shared_blobs.len(), "shared blobs");
    }
    s
}

fn short_media_type(mt: &str) -> &str {
    match oci::layer_compression_of(mt) {
        Some(oci::LayerEncoding::Gzip) => "gzip",
        Some(oci::LayerEncoding::Zstd) => "zstd",
        Some(oci::LayerEncoding::Tar) => "tar",
        None => mt,
    }
}
