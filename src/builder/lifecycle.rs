//! The lifecycle per target platform: from a release `.tgz` (its architecture read from the ELF
//! header of `lifecycle/lifecycle`), a lifecycle image, or a version from the store; its
//! `lifecycle.toml`, and the `/cnb/lifecycle` layer pack writes from it.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::builder::config::LifecycleSpec;
use crate::error::{Error, Result};
use crate::oci;

/// The lifecycle version pack 0.40 uses when `[lifecycle]` names none (`DefaultLifecycleVersion`).
pub const DEFAULT_VERSION: &str = "0.21.0";

/// The repository lifecycle images are published to; `version = "X"` means its tag `X`.
pub const IMAGE_REPOSITORY: &str = "docker.io/buildpacksio/lifecycle";

/// The binaries pack requires in a lifecycle (`validateBinaries`).
pub const REQUIRED_BINARIES: [&str; 7] = [
    "detector", "restorer", "analyzer", "builder", "exporter", "launcher", "creator",
];

/// API versions of one specification a lifecycle implements (`[apis.buildpack]`, ...).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ApiSet {
    /// Deprecated versions, normalized `major.minor`.
    pub deprecated: Vec<String>,
    /// Supported versions, normalized `major.minor`.
    pub supported: Vec<String>,
}

/// `lifecycle.toml`, after pack's `CompatDescriptor`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct LifecycleDescriptor {
    /// `[lifecycle] version`, as written.
    pub version: String,
    /// Buildpack APIs.
    pub buildpack: ApiSet,
    /// Platform APIs.
    pub platform: ApiSet,
    /// Whether the APIs came from the legacy `[api]` table only (no `[apis]`).
    pub legacy: bool,
}

/// A lifecycle that serves one target platform.
#[derive(Debug, Clone)]
pub struct Lifecycle {
    /// Its `lifecycle.toml`.
    pub descriptor: LifecycleDescriptor,
    /// The GOARCH of its binaries (`amd64`, `arm64`, ...).
    pub arch: String,
    /// Where it comes from (the `.tgz`, or the image layout/store), for messages.
    pub origin: PathBuf,
    source: Source,
}

/// Where a lifecycle's files are read from.
#[derive(Debug, Clone)]
enum Source {
    /// A release `.tgz` (or plain tar): entries `lifecycle/<name>`.
    Tarball { path: PathBuf },
}

/// The lifecycle serving `platform` (os/arch/variant of one target), with pack's messages:
/// a `.tgz` path or `file://` URI (relative to `base_dir`; `{arch}` replaced by the release's
/// name of the architecture), a lifecycle image (layout path or store reference, one platform
/// per target), or `version`/default → `docker.io/buildpacksio/lifecycle:X` from the store
/// (`store`: a store directory; `None` for the default store). A target no lifecycle serves is
/// an error naming what it has.
pub fn lifecycle_for(
    spec: &LifecycleSpec,
    base_dir: &Path,
    platform: &oci::Platform,
    store: Option<&Path>,
) -> Result<Lifecycle> {
    let _ = (spec, base_dir, platform, store);
    Err(Error::other("lifecycle: not implemented yet"))
}

impl Lifecycle {
    /// Write the whole lifecycle layer as pack does: `/cnb/lifecycle` directory, the entries
    /// (`lifecycle.toml` dropped, headers kept), the `/lifecycle` → `/cnb/lifecycle` symlink,
    /// and the end of archive. Streams; deterministic.
    pub fn write_layer(&self, out: &mut dyn Write) -> Result<()> {
        let _ = out;
        Err(Error::invalid(&self.origin, "not implemented yet"))
    }

    /// A key equal for two targets served by the same lifecycle bytes (the layer is built once).
    pub fn cache_key(&self) -> String {
        match &self.source {
            Source::Tarball { path } => format!("lifecycle:{}", path.display()),
        }
    }
}

/// The builder metadata's `lifecycle` object, Go-exact JSON (`version`, deprecated `api` = the
/// earliest of deprecated and supported, `apis`).
pub fn metadata_json(d: &LifecycleDescriptor) -> String {
    let _ = d;
    String::new()
}
