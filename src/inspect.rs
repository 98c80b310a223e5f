//! `inspect`: what a package or builder holds — platforms, manifests, configs, buildpacks, layers
//! with their sizes, labels, shared blobs and, for a builder, its lifecycle, run images and order
//! — for people and, as stable JSON, for scripts.

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
    /// Whether its images are builders (they carry pack's builder metadata label).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub builder: bool,
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
    /// Labels other than the two buildpack labels (and, for a builder, its JSON labels).
    pub labels: BTreeMap<String, String>,
    /// For a builder image: what its labels and config say of it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub builder: Option<BuilderInfo>,
}

/// What a builder image says of itself: pack's builder labels and its build image's config.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct BuilderInfo {
    /// The `description` of builder.toml.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub description: String,
    /// What wrote it (`name version`), from the metadata label's `createdBy`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created_by: Option<String>,
    /// The lifecycle it holds.
    pub lifecycle: LifecycleInfo,
    /// Its run images (`[[run.images]]`; else the deprecated `[stack]` run image).
    pub run_images: Vec<RunImageInfo>,
    /// The order label (as written in builder.toml: versions may be missing).
    pub order: Vec<Vec<OrderRef>>,
    /// The order-extensions label.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub order_extensions: Vec<Vec<OrderRef>>,
    /// Image extensions in the extension layers label.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub extensions: Vec<BuildpackInfo>,
    /// The build image's user (`User`, and `CNB_USER_ID:CNB_GROUP_ID` from its Env).
    pub build_user: BuildUser,
    /// `io.buildpacks.stack.id`, when set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stack_id: Option<String>,
    /// The build image's distro (`name@version` of `io.buildpacks.base.distro.*`), when set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub distro: Option<String>,
    /// Builder labels that could not be read, one line each.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub problems: Vec<String>,
}

/// A builder's lifecycle, from its metadata label.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct LifecycleInfo {
    /// Its version.
    pub version: String,
    /// Buildpack APIs it supports.
    pub buildpack_apis: Vec<String>,
    /// Buildpack APIs it supports, deprecated.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub buildpack_apis_deprecated: Vec<String>,
    /// Platform APIs it supports.
    pub platform_apis: Vec<String>,
    /// Platform APIs it supports, deprecated.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub platform_apis_deprecated: Vec<String>,
}

/// A run image of a builder.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct RunImageInfo {
    /// The image name.
    pub image: String,
    /// Its mirrors.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub mirrors: Vec<String>,
}

/// One entry of an order group.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct OrderRef {
    /// Module ID.
    pub id: String,
    /// Version, when the order gives one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Whether the entry is optional.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub optional: bool,
}

impl OrderRef {
    /// `id@version` (`id` without a version), ` (optional)` appended when it is.
    pub fn display(&self) -> String {
        let mut s = match &self.version {
            Some(v) => format!("{}@{v}", self.id),
            None => self.id.clone(),
        };
        if self.optional {
            s.push_str(" (optional)");
        }
        s
    }
}

/// The user a builder's build runs as.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct BuildUser {
    /// The config's `User`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// `CNB_USER_ID` of its Env.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uid: Option<String>,
    /// `CNB_GROUP_ID` of its Env.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gid: Option<String>,
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
        let builder = builder_info(labels, &img.config_bytes);
        let other_labels = labels
            .iter()
            .filter(|(k, _)| {
                k.as_str() != LABEL_LAYERS
                    && k.as_str() != LABEL_METADATA
                    && k.as_str() != LABEL_EXTENSION_LAYERS
                    && !(builder.is_some() && BUILDER_JSON_LABELS.contains(&k.as_str()))
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
            builder,
        });
    }
    let builder = images.iter().any(|i| i.builder.is_some());
    let buildpack = all
        .first()
        .filter(|_| !builder)
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
        builder,
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
    let what = if r.builder {
        "Builder:  "
    } else {
        "Package:  "
    };
    put!(s, "{what} {}", r.path.display());
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
        if let Some(b) = &img.builder {
            render_builder(&mut s, b);
        }
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

/// A builder's own facts: lifecycle, build user and base, run images, order, extensions.
fn render_builder(s: &mut String, b: &BuilderInfo) {
    if !b.description.is_empty() {
        put!(s, "  description  {}", b.description);
    }
    if let Some(by) = &b.created_by {
        put!(s, "  created by   {by}");
    }
    let l = &b.lifecycle;
    let version = if l.version.is_empty() {
        "?"
    } else {
        &l.version
    };
    put!(s, "  lifecycle    {version}");
    put!(
        s,
        "    buildpack APIs {}",
        api_line(&l.buildpack_apis, &l.buildpack_apis_deprecated)
    );
    put!(
        s,
        "    platform APIs  {}",
        api_line(&l.platform_apis, &l.platform_apis_deprecated)
    );
    let u = &b.build_user;
    let or_unset = |v: &Option<String>| v.clone().unwrap_or_else(|| "unset".into());
    put!(
        s,
        "  build user   {} (CNB_USER_ID {}, CNB_GROUP_ID {})",
        or_unset(&u.user),
        or_unset(&u.uid),
        or_unset(&u.gid)
    );
    if let Some(d) = &b.distro {
        put!(s, "  distro       {d}");
    }
    if let Some(id) = &b.stack_id {
        put!(s, "  stack        {id}");
    }
    put!(s, "  run images:");
    for r in b.run_images.iter().take(MAX_LISTED) {
        if r.mirrors.is_empty() {
            put!(s, "    {}", r.image);
        } else {
            put!(s, "    {}  mirrors: {}", r.image, r.mirrors.join(", "));
        }
    }
    more(s, "    ", b.run_images.len(), "run images");
    for (title, order) in [
        ("order", &b.order),
        ("order-extensions", &b.order_extensions),
    ] {
        if order.is_empty() && title != "order" {
            continue;
        }
        put!(s, "  {title}:");
        for (i, group) in order.iter().take(MAX_LISTED).enumerate() {
            let refs: Vec<String> = group
                .iter()
                .take(MAX_LISTED)
                .map(OrderRef::display)
                .collect();
            put!(s, "    {}. {}", i + 1, refs.join(", "));
        }
        more(s, "    ", order.len(), "groups");
    }
    if !b.extensions.is_empty() {
        put!(s, "  extensions:");
        for e in b.extensions.iter().take(MAX_LISTED) {
            put!(
                s,
                "    {}@{}  api {}",
                e.id,
                e.version,
                e.api.as_deref().unwrap_or("?")
            );
            put!(s, "      layer {}", e.layer_diff_id);
        }
        more(s, "    ", b.extensions.len(), "extensions");
    }
    for p in b.problems.iter().take(MAX_LISTED) {
        put!(s, "  unreadable   {p}");
    }
}

/// `0.7, 0.8 (deprecated: 0.6)`, or `none`.
fn api_line(supported: &[String], deprecated: &[String]) -> String {
    let mut line = if supported.is_empty() {
        "none".to_string()
    } else {
        supported
            .iter()
            .take(MAX_LISTED)
            .cloned()
            .collect::<Vec<_>>()
            .join(", ")
    };
    if !deprecated.is_empty() {
        let old: Vec<String> = deprecated.iter().take(MAX_LISTED).cloned().collect();
        line.push_str(&format!(" (deprecated: {})", old.join(", ")));
    }
    line
}

fn short_media_type(mt: &str) -> &str {
    match oci::layer_compression_of(mt) {
        Some(oci::LayerEncoding::Gzip) => "gzip",
        Some(oci::LayerEncoding::Zstd) => "zstd",
        Some(oci::LayerEncoding::Tar) => "tar",
        None => mt,
    }
}

// ---------------------------------------------------------------------------------------------
// Builders: pack's builder labels read back (for inspect, and for verify's checks)

/// pack's builder metadata label (`io.buildpacks.builder.metadata`): what marks an image as a
/// builder.
pub(crate) const LABEL_BUILDER_METADATA: &str = "io.buildpacks.builder.metadata";
/// The builder's order, as written in builder.toml.
pub(crate) const LABEL_ORDER: &str = "io.buildpacks.buildpack.order";
/// The builder's order of image extensions.
pub(crate) const LABEL_ORDER_EXTENSIONS: &str = "io.buildpacks.buildpack.order-extensions";
/// The builder's system buildpacks.
const LABEL_SYSTEM: &str = "io.buildpacks.buildpack.system";
/// The (deprecated) stack of a build image.
const LABEL_STACK_ID: &str = "io.buildpacks.stack.id";

/// The JSON labels of a builder: shown parsed, not as label text.
const BUILDER_JSON_LABELS: [&str; 4] = [
    LABEL_BUILDER_METADATA,
    LABEL_ORDER,
    LABEL_ORDER_EXTENSIONS,
    LABEL_SYSTEM,
];

/// `io.buildpacks.builder.metadata` as pack writes it (`internal/builder/metadata.go`); every
/// list may be `null`.
#[derive(Debug, Default, serde::Deserialize)]
struct BuilderMetadata {
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    stack: Option<StackMetadata>,
    #[serde(default)]
    lifecycle: Option<LifecycleMetadata>,
    #[serde(default, rename = "createdBy")]
    created_by: Option<CreatedBy>,
    #[serde(default)]
    images: Option<Vec<RunImageMetadata>>,
}

#[derive(Debug, Default, serde::Deserialize)]
struct StackMetadata {
    #[serde(default, rename = "runImage")]
    run_image: Option<RunImageMetadata>,
}

#[derive(Debug, Default, serde::Deserialize)]
struct RunImageMetadata {
    #[serde(default)]
    image: Option<String>,
    #[serde(default)]
    mirrors: Option<Vec<String>>,
}

#[derive(Debug, Default, serde::Deserialize)]
struct CreatedBy {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    version: Option<String>,
}

#[derive(Debug, Default, serde::Deserialize)]
struct LifecycleMetadata {
    #[serde(default)]
    version: Option<String>,
    /// The legacy single APIs (RFC 0011), read when `apis` is missing (pack's CompatDescriptor).
    #[serde(default)]
    api: Option<LegacyApis>,
    #[serde(default)]
    apis: Option<LifecycleApis>,
}

#[derive(Debug, Default, serde::Deserialize)]
struct LegacyApis {
    #[serde(default)]
    buildpack: Option<String>,
    #[serde(default)]
    platform: Option<String>,
}

#[derive(Debug, Default, serde::Deserialize)]
struct LifecycleApis {
    #[serde(default)]
    buildpack: Option<ApiSet>,
    #[serde(default)]
    platform: Option<ApiSet>,
}

#[derive(Debug, Default, serde::Deserialize)]
struct ApiSet {
    #[serde(default)]
    deprecated: Option<Vec<String>>,
    #[serde(default)]
    supported: Option<Vec<String>>,
}

/// One group of an order label (`[{"group":[{"id":…,"version":…,"optional":…}]}]`).
#[derive(Debug, serde::Deserialize)]
struct OrderGroupLabel {
    #[serde(default)]
    group: Option<Vec<OrderRefLabel>>,
}

#[derive(Debug, serde::Deserialize)]
struct OrderRefLabel {
    id: String,
    #[serde(default)]
    version: Option<String>,
    #[serde(default)]
    optional: bool,
}

/// The runtime part of a config that describes a builder's build user.
#[derive(Debug, Default, serde::Deserialize)]
struct UserConfig {
    #[serde(default)]
    config: Option<UserRuntime>,
}

#[derive(Debug, Default, serde::Deserialize)]
struct UserRuntime {
    #[serde(default, rename = "User")]
    user: Option<String>,
    #[serde(default, rename = "Env")]
    env: Option<Vec<String>>,
}

/// Read what a builder image says of itself from its labels and config bytes (already read and
/// bounded); `None` when the image is no builder: no builder metadata label, or a package's
/// metadata label as well (an image carrying both is a package, held to a package's rules by
/// verify: a builder label must not excuse a package's layers from them). A label that does not
/// parse is named in [`BuilderInfo::problems`] and the rest still read.
pub(crate) fn builder_info(
    labels: &BTreeMap<String, String>,
    config_bytes: &[u8],
) -> Option<BuilderInfo> {
    if labels.contains_key(LABEL_METADATA) {
        return None;
    }
    let raw = labels.get(LABEL_BUILDER_METADATA)?;
    let mut info = BuilderInfo::default();
    let metadata = match serde_json::from_str::<BuilderMetadata>(raw) {
        Ok(m) => m,
        Err(e) => {
            info.problems
                .push(format!("{LABEL_BUILDER_METADATA}: invalid JSON: {e}"));
            BuilderMetadata::default()
        }
    };
    info.description = metadata.description.unwrap_or_default();
    info.created_by = metadata.created_by.map(|c| {
        let name = c.name.unwrap_or_default();
        match c.version {
            Some(v) if !v.is_empty() => format!("{name} {v}"),
            _ => name,
        }
    });
    info.lifecycle = lifecycle_info(metadata.lifecycle.unwrap_or_default());
    info.run_images = run_images(metadata.images, metadata.stack);
    info.order = order_of(labels, LABEL_ORDER, &mut info.problems);
    info.order_extensions = order_of(labels, LABEL_ORDER_EXTENSIONS, &mut info.problems);
    info.extensions = match labels.get(LABEL_EXTENSION_LAYERS) {
        Some(v) => match LayersLabel::parse(v) {
            Ok(l) => buildpacks_of(l),
            Err(e) => {
                info.problems.push(format!("{LABEL_EXTENSION_LAYERS}: {e}"));
                Vec::new()
            }
        },
        None => Vec::new(),
    };
    let runtime = serde_json::from_slice::<UserConfig>(config_bytes)
        .ok()
        .and_then(|c| c.config)
        .unwrap_or_default();
    let env = |name: &str| {
        runtime.env.iter().flatten().find_map(|e| {
            e.strip_prefix(name)
                .and_then(|rest| rest.strip_prefix('='))
                .map(str::to_string)
        })
    };
    info.build_user = BuildUser {
        user: runtime.user.clone().filter(|u| !u.is_empty()),
        uid: env("CNB_USER_ID"),
        gid: env("CNB_GROUP_ID"),
    };
    info.stack_id = labels.get(LABEL_STACK_ID).cloned();
    info.distro = match (
        labels.get(crate::cnb::ANNOTATION_DISTRO_NAME),
        labels.get(crate::cnb::ANNOTATION_DISTRO_VERSION),
    ) {
        (Some(n), Some(v)) => Some(format!("{n}@{v}")),
        (Some(n), None) => Some(n.clone()),
        _ => None,
    };
    Some(info)
}

/// The lifecycle's version and APIs; the legacy single APIs stand in when `apis` is missing.
fn lifecycle_info(m: LifecycleMetadata) -> LifecycleInfo {
    let legacy = m.api.unwrap_or_default();
    let apis = m.apis.unwrap_or_default();
    let (bp, bp_old) = api_lists(apis.buildpack, legacy.buildpack);
    let (pf, pf_old) = api_lists(apis.platform, legacy.platform);
    LifecycleInfo {
        version: m.version.unwrap_or_default(),
        buildpack_apis: bp,
        buildpack_apis_deprecated: bp_old,
        platform_apis: pf,
        platform_apis_deprecated: pf_old,
    }
}

fn api_lists(set: Option<ApiSet>, legacy: Option<String>) -> (Vec<String>, Vec<String>) {
    match set {
        Some(s) => (
            s.supported.unwrap_or_default(),
            s.deprecated.unwrap_or_default(),
        ),
        None => (legacy.into_iter().collect(), Vec::new()),
    }
}

/// `images`, else the deprecated stack run image (pack's `DefaultRunImage`).
fn run_images(
    images: Option<Vec<RunImageMetadata>>,
    stack: Option<StackMetadata>,
) -> Vec<RunImageInfo> {
    let of = |r: RunImageMetadata| {
        r.image.filter(|i| !i.is_empty()).map(|image| RunImageInfo {
            image,
            mirrors: r.mirrors.unwrap_or_default(),
        })
    };
    let listed: Vec<RunImageInfo> = images.into_iter().flatten().filter_map(of).collect();
    if !listed.is_empty() {
        return listed;
    }
    stack
        .and_then(|s| s.run_image)
        .and_then(of)
        .into_iter()
        .collect()
}

/// An order label's groups (`null` or absent: none).
fn order_of(
    labels: &BTreeMap<String, String>,
    name: &str,
    problems: &mut Vec<String>,
) -> Vec<Vec<OrderRef>> {
    let Some(raw) = labels.get(name) else {
        return Vec::new();
    };
    match serde_json::from_str::<Option<Vec<OrderGroupLabel>>>(raw) {
        Ok(groups) => groups
            .into_iter()
            .flatten()
            .map(|g| {
                g.group
                    .into_iter()
                    .flatten()
                    .map(|r| OrderRef {
                        id: r.id,
                        version: r.version.filter(|v| !v.is_empty()),
                        optional: r.optional,
                    })
                    .collect()
            })
            .collect(),
        Err(e) => {
            problems.push(format!("{name}: invalid JSON: {e}"));
            Vec::new()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn an_image_without_builder_metadata_is_no_builder() {
        assert!(builder_info(&labels(&[(LABEL_METADATA, "{}")]), b"{}").is_none());
        // Nor one that also carries a package's label: it stays a package.
        let both = labels(&[(LABEL_METADATA, "{}"), (LABEL_BUILDER_METADATA, "{}")]);
        assert!(builder_info(&both, b"{}").is_none());
        assert!(builder_info(&labels(&[(LABEL_BUILDER_METADATA, "{}")]), b"{}").is_some());
    }

    #[test]
    fn pack_era_metadata_reads_with_its_fallbacks() {
        // An older builder: legacy single APIs, the run image only in `stack`, null lists.
        let meta = r#"{"description":"old","buildpacks":null,"stack":{"runImage":{"image":"r","mirrors":["m"]}},"lifecycle":{"version":"0.9.0","api":{"buildpack":"0.2","platform":"0.3"}},"createdBy":{"name":"Pack CLI","version":"0.20.0"},"images":null}"#;
        let l = labels(&[
            (LABEL_BUILDER_METADATA, meta),
            (LABEL_ORDER, "null"),
            (LABEL_STACK_ID, "io.buildpacks.stacks.bionic"),
        ]);
        let config = br#"{"config":{"User":"cnb","Env":["PATH=/bin","CNB_USER_ID=1000","CNB_GROUP_ID=1001"]}}"#;
        let b = builder_info(&l, config).unwrap();
        assert!(b.problems.is_empty(), "{:?}", b.problems);
        assert_eq!(b.lifecycle.version, "0.9.0");
        assert_eq!(b.lifecycle.buildpack_apis, ["0.2"]);
        assert_eq!(b.lifecycle.platform_apis, ["0.3"]);
        assert_eq!(b.run_images.len(), 1);
        assert_eq!(b.run_images[0].image, "r");
        assert_eq!(b.run_images[0].mirrors, ["m"]);
        assert!(b.order.is_empty());
        assert_eq!(b.created_by.as_deref(), Some("Pack CLI 0.20.0"));
        assert_eq!(b.stack_id.as_deref(), Some("io.buildpacks.stacks.bionic"));
        assert_eq!(b.build_user.user.as_deref(), Some("cnb"));
        assert_eq!(b.build_user.uid.as_deref(), Some("1000"));
        assert_eq!(b.build_user.gid.as_deref(), Some("1001"));
    }

    #[test]
    fn images_win_over_the_stack_run_image_and_empty_names_are_dropped() {
        let meta = r#"{"stack":{"runImage":{"image":"old"}},"lifecycle":{"version":"0.20.0","apis":{"buildpack":{"deprecated":null,"supported":["0.10"]},"platform":{"deprecated":["0.3"],"supported":["0.13"]}}},"images":[{"image":""},{"image":"new","mirrors":null}]}"#;
        let b = builder_info(&labels(&[(LABEL_BUILDER_METADATA, meta)]), b"").unwrap();
        assert_eq!(b.run_images.len(), 1);
        assert_eq!(b.run_images[0].image, "new");
        assert_eq!(b.lifecycle.platform_apis_deprecated, ["0.3"]);
        assert_eq!(b.lifecycle.buildpack_apis, ["0.10"]);
        assert_eq!(b.build_user.uid, None);
    }

    #[test]
    fn unreadable_labels_are_named_and_the_rest_still_read() {
        let l = labels(&[
            (LABEL_BUILDER_METADATA, "[1,2"),
            (
                LABEL_ORDER,
                r#"[{"group":[{"id":"a","version":"1","optional":true},{"id":"b"}]}]"#,
            ),
            (LABEL_ORDER_EXTENSIONS, "{"),
            (LABEL_EXTENSION_LAYERS, "nope"),
        ]);
        let b = builder_info(&l, b"").unwrap();
        assert_eq!(b.problems.len(), 3, "{:?}", b.problems);
        assert!(b.problems[0].starts_with(LABEL_BUILDER_METADATA));
        assert_eq!(b.order.len(), 1);
        let shown: Vec<String> = b.order[0].iter().map(OrderRef::display).collect();
        assert_eq!(shown, ["a@1 (optional)", "b"]);
    }

    #[test]
    fn builder_text_escapes_and_bounds_what_the_labels_say() {
        let groups: Vec<String> = (0..MAX_LISTED + 5)
            .map(|i| format!(r#"{{"group":[{{"id":"bp{i}"}}]}}"#))
            .collect();
        let order = format!("[{}]", groups.join(","));
        let meta = r#"{"description":"evil\u001b[31m\nline","lifecycle":{"version":"1"}}"#;
        let l = labels(&[(LABEL_BUILDER_METADATA, meta), (LABEL_ORDER, &order)]);
        let b = builder_info(&l, b"").unwrap();
        let mut s = String::new();
        render_builder(&mut s, &b);
        assert!(!s.contains('\u{1b}'), "{s}");
        assert!(s.contains("description  evil\\x1b[31m\\nline"), "{s}");
        assert!(s.contains("… and 5 more groups"), "{s}");
        assert!(!s.contains(&format!("bp{}", MAX_LISTED)), "{s}");
        assert!(s.contains("buildpack APIs none"), "{s}");
    }
}
