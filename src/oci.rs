//! OCI image-spec data types (descriptor, platform, manifest, index, config) with correct field
//! names (`os.version`), ordered maps and Go-style omission of empty fields.
//!
//! We keep our own small types rather than oci-spec's: oci-spec 0.10 writes `os_version` for
//! `Platform.os_version` and keeps annotations and labels in `HashMap`s (random order).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::digest::Digest;

/// The largest JSON document (index, manifest, config, or a descriptor read from a layer) any
/// reader holds in memory: 32 MiB, far above what real images need.
pub const MAX_JSON_BLOB: u64 = 32 << 20;

/// `application/vnd.oci.image.index.v1+json`
pub const MEDIA_TYPE_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// `application/vnd.oci.image.manifest.v1+json`
pub const MEDIA_TYPE_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// `application/vnd.oci.image.config.v1+json`
pub const MEDIA_TYPE_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
/// `application/vnd.oci.image.layer.v1.tar`
pub const MEDIA_TYPE_LAYER_TAR: &str = "application/vnd.oci.image.layer.v1.tar";
/// `application/vnd.oci.image.layer.v1.tar+gzip`
pub const MEDIA_TYPE_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
/// `application/vnd.oci.image.layer.v1.tar+zstd`
pub const MEDIA_TYPE_LAYER_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";
/// Docker schema 2 manifest list (read only).
pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
/// Docker schema 2 manifest (pack writes these; read only).
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// Docker image config (read only).
pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
/// Docker gzip layer (read only).
pub const DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
/// Docker foreign (non-distributable) gzip layer; read only.
pub const DOCKER_FOREIGN_LAYER_GZIP: &str =
    "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip";

/// The `org.opencontainers.image.ref.name` annotation.
pub const ANNOTATION_REF_NAME: &str = "org.opencontainers.image.ref.name";

/// Whether `media_type` names an image manifest (OCI or Docker schema 2).
pub fn is_manifest(media_type: &str) -> bool {
    media_type == MEDIA_TYPE_MANIFEST || media_type == DOCKER_MANIFEST
}

/// Whether `media_type` names an image index (OCI index or Docker manifest list).
pub fn is_index(media_type: &str) -> bool {
    media_type == MEDIA_TYPE_INDEX || media_type == DOCKER_MANIFEST_LIST
}

/// Whether `media_type` names an image config (OCI or Docker).
pub fn is_config(media_type: &str) -> bool {
    media_type == MEDIA_TYPE_CONFIG || media_type == DOCKER_CONFIG
}

/// How a layer's bytes are compressed, judged from its media type; `None` for an unknown type.
pub fn layer_compression_of(media_type: &str) -> Option<LayerEncoding> {
    match media_type {
        MEDIA_TYPE_LAYER_TAR | "application/vnd.docker.image.rootfs.diff.tar" => {
            Some(LayerEncoding::Tar)
        }
        MEDIA_TYPE_LAYER_GZIP
        | DOCKER_LAYER_GZIP
        | DOCKER_FOREIGN_LAYER_GZIP
        | "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip" => {
            Some(LayerEncoding::Gzip)
        }
        MEDIA_TYPE_LAYER_ZSTD | "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd" => {
            Some(LayerEncoding::Zstd)
        }
        _ => None,
    }
}

/// The encoding of a layer blob.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum LayerEncoding {
    /// Uncompressed tar.
    Tar,
    /// gzip-compressed tar.
    Gzip,
    /// zstd-compressed tar.
    Zstd,
}

/// An OCI content descriptor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Descriptor {
    /// Media type of the referenced content.
    #[serde(rename = "mediaType", default)]
    pub media_type: String,
    /// Digest of the referenced content.
    pub digest: Digest,
    /// Size in bytes of the referenced content.
    pub size: u64,
    /// Platform of a manifest referenced from an index.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub platform: Option<Platform>,
    /// Annotations.
    #[serde(skip_serializing_if = "BTreeMap::is_empty", default)]
    pub annotations: BTreeMap<String, String>,
    /// Artifact type (OCI 1.1).
    #[serde(
        rename = "artifactType",
        skip_serializing_if = "Option::is_none",
        default
    )]
    pub artifact_type: Option<String>,
    /// Alternate download locations.
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub urls: Vec<String>,
}

impl Descriptor {
    /// A plain descriptor.
    pub fn new(media_type: impl Into<String>, digest: Digest, size: u64) -> Self {
        Descriptor {
            media_type: media_type.into(),
            digest,
            size,
            platform: None,
            annotations: BTreeMap::new(),
            artifact_type: None,
            urls: Vec::new(),
        }
    }
}

/// The platform an image runs on.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Platform {
    /// CPU architecture (`amd64`, `arm64`, …). Empty means any.
    #[serde(default)]
    pub architecture: String,
    /// Operating system (`linux`, `windows`).
    #[serde(default)]
    pub os: String,
    /// OS version (Windows build number).
    #[serde(
        rename = "os.version",
        skip_serializing_if = "String::is_empty",
        default
    )]
    pub os_version: String,
    /// OS features.
    #[serde(rename = "os.features", skip_serializing_if = "Vec::is_empty", default)]
    pub os_features: Vec<String>,
    /// CPU variant (`v7`, `v8`, …).
    #[serde(skip_serializing_if = "String::is_empty", default)]
    pub variant: String,
}

/// `os/arch[/variant]`, then ` (os.version)` when there is one: `windows/amd64 (10.0.20348.1970)`.
/// The form `push` shows; [`crate::cnb::platform_name`] is the `--target` form packages show.
impl std::fmt::Display for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if !self.variant.is_empty() {
            write!(f, "/{}", self.variant)?;
        }
        if !self.os_version.is_empty() {
            write!(f, " ({})", self.os_version)?;
        }
        Ok(())
    }
}

/// An OCI image manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// Always 2.
    #[serde(rename = "schemaVersion")]
    pub schema_version: u32,
    /// Media type of the manifest itself.
    #[serde(rename = "mediaType", skip_serializing_if = "Option::is_none", default)]
    pub media_type: Option<String>,
    /// Artifact type (OCI 1.1).
    #[serde(
        rename = "artifactType",
        skip_serializing_if = "Option::is_none",
        default
    )]
    pub artifact_type: Option<String>,
    /// The config blob.
    pub config: Descriptor,
    /// Layer blobs, base first.
    #[serde(default)]
    pub layers: Vec<Descriptor>,
    /// Annotations.
    #[serde(skip_serializing_if = "BTreeMap::is_empty", default)]
    pub annotations: BTreeMap<String, String>,
}

/// An OCI image index (also `index.json` of a layout).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Index {
    /// Always 2.
    #[serde(rename = "schemaVersion")]
    pub schema_version: u32,
    /// Media type of the index itself (absent in older pack files).
    #[serde(rename = "mediaType", skip_serializing_if = "Option::is_none", default)]
    pub media_type: Option<String>,
    /// Artifact type (OCI 1.1).
    #[serde(
        rename = "artifactType",
        skip_serializing_if = "Option::is_none",
        default
    )]
    pub artifact_type: Option<String>,
    /// The referenced manifests or indexes.
    #[serde(default)]
    pub manifests: Vec<Descriptor>,
    /// Annotations.
    #[serde(skip_serializing_if = "BTreeMap::is_empty", default)]
    pub annotations: BTreeMap<String, String>,
}

impl Index {
    /// An OCI index over `manifests`.
    pub fn new(manifests: Vec<Descriptor>) -> Self {
        Index {
            schema_version: 2,
            media_type: Some(MEDIA_TYPE_INDEX.to_string()),
            artifact_type: None,
            manifests,
            annotations: BTreeMap::new(),
        }
    }
}

/// An image config as buildpack packages use it: platform, rootfs, history and labels.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageConfig {
    /// CPU architecture; always present, possibly empty (pack writes `""` with no target arch).
    #[serde(default)]
    pub architecture: String,
    /// Creation time, RFC 3339.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub created: Option<String>,
    /// One entry per layer.
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub history: Vec<History>,
    /// Operating system.
    #[serde(default)]
    pub os: String,
    /// OS version.
    #[serde(
        rename = "os.version",
        skip_serializing_if = "String::is_empty",
        default
    )]
    pub os_version: String,
    /// OS features.
    #[serde(rename = "os.features", skip_serializing_if = "Vec::is_empty", default)]
    pub os_features: Vec<String>,
    /// CPU variant.
    #[serde(skip_serializing_if = "String::is_empty", default)]
    pub variant: String,
    /// Layer diffIDs.
    pub rootfs: RootFs,
    /// Runtime config; only labels are used by buildpack packages.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub config: Option<RuntimeConfig>,
}

impl ImageConfig {
    /// The platform the config describes (os, architecture, variant, os.version, os.features).
    pub fn platform(&self) -> Platform {
        Platform {
            architecture: self.architecture.clone(),
            os: self.os.clone(),
            os_version: self.os_version.clone(),
            os_features: self.os_features.clone(),
            variant: self.variant.clone(),
        }
    }

    /// The labels, empty when there are none.
    pub fn labels(&self) -> &BTreeMap<String, String> {
        static EMPTY: BTreeMap<String, String> = BTreeMap::new();
        self.config.as_ref().map(|c| &c.labels).unwrap_or(&EMPTY)
    }
}

/// `rootfs` of an image config.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RootFs {
    /// Always `layers`.
    #[serde(rename = "type")]
    pub typ: String,
    /// Uncompressed layer digests, base first.
    #[serde(default)]
    pub diff_ids: Vec<Digest>,
}

/// One history entry.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct History {
    /// Creation time.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub created: Option<String>,
    /// What created the layer.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub created_by: Option<String>,
    /// Whether the entry has no layer.
    #[serde(skip_serializing_if = "std::ops::Not::not", default)]
    pub empty_layer: bool,
}

/// The `config` member of an image config (only labels are used here).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuntimeConfig {
    /// Image labels.
    #[serde(
        rename = "Labels",
        skip_serializing_if = "BTreeMap::is_empty",
        default,
        deserialize_with = "null_as_default"
    )]
    pub labels: BTreeMap<String, String>,
}

fn null_as_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// The `oci-layout` file content we write (the bytes ggcr and pack write: 4-space indent).
pub const OCI_LAYOUT_FILE: &[u8] = b"{\n    \"imageLayoutVersion\": \"1.0.0\"\n}";

#[cfg(test)]
mod tests {
    use super::*;
    use crate::json::canonical;

    #[test]
    fn platform_uses_os_version_key_and_omits_empty_fields() {
        let p = Platform {
            architecture: "amd64".into(),
            os: "windows".into(),
            os_version: "10.0.20348.1970".into(),
            ..Default::default()
        };
        assert_eq!(
            String::from_utf8(canonical(&p)).unwrap(),
            r#"{"architecture":"amd64","os":"windows","os.version":"10.0.20348.1970"}"#
        );
    }

    #[test]
    fn platform_display() {
        let mut p = Platform {
            architecture: "arm".into(),
            os: "linux".into(),
            variant: "v7".into(),
            ..Default::default()
        };
        assert_eq!(p.to_string(), "linux/arm/v7");
        p.variant.clear();
        p.os_version = "10.0.1".into();
        assert_eq!(p.to_string(), "linux/arm (10.0.1)");
    }

    #[test]
    fn reads_pack_style_index_without_media_type() {
        let text = r#"{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.docker.distribution.manifest.v2+json","size":746,"digest":"sha256:c6ad3554e1625ed7328f08d9ea1f05ea985a15834dba69c12ef4aafb444f4507"}]}"#;
        let idx: Index = serde_json::from_str(text).unwrap();
        assert_eq!(idx.media_type, None);
        assert_eq!(idx.manifests[0].size, 746);
        assert!(is_manifest(&idx.manifests[0].media_type));
    }
}
