//! The lifecycle per target platform: from a release `.tgz` (its architecture read from the ELF
//! header of `lifecycle/lifecycle`), a lifecycle image, or a version from the store; its
//! `lifecycle.toml`, and the `/cnb/lifecycle` layer pack writes from it.
//!
//! A lifecycle is read twice at most: once to check every entry and parse `lifecycle.toml`
//! ([`lifecycle_for`]), once to write the layer ([`Lifecycle::write_layer`]), both through the
//! same checks, streaming; the second read must see the bytes the first one saw.

use std::collections::BTreeMap;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::builder::config::LifecycleSpec;
use crate::digest::{Digest, HashingReader};
use crate::error::{Error, IoResultExt, Result};
use crate::json::go_marshal;
use crate::layout::{ImageRef, PackageReader};
use crate::machine::{self, Machine};
use crate::oci::{self, Descriptor, LayerEncoding};
use crate::store::StoreReader;
use crate::tar::{EntryType, Header, TarWriter, NORMALIZED_MTIME};
use crate::tar_guard::TarGuard;

/// The lifecycle version pack 0.40 uses when `[lifecycle]` names none (`DefaultLifecycleVersion`).
pub const DEFAULT_VERSION: &str = "0.21.0";

/// The repository lifecycle images are published to; `version = "X"` means its tag `X`.
pub const IMAGE_REPOSITORY: &str = "docker.io/buildpacksio/lifecycle";

/// The binaries pack requires in a lifecycle (`validateBinaries`; the `.exe` forms count too).
pub const REQUIRED_BINARIES: [&str; 7] = [
    "detector", "restorer", "analyzer", "builder", "exporter", "launcher", "creator",
];

/// Where the lifecycle lies in a builder.
pub const LIFECYCLE_DIR: &str = "/cnb/lifecycle";

/// The most entries a lifecycle archive may have (a release has 17).
pub const MAX_ENTRIES: u64 = 10_000;
/// The most file data a lifecycle archive may hold (a release holds about 40 MB).
pub const MAX_DATA: u64 = 1 << 30;
/// The largest `lifecycle.toml` read.
const MAX_DESCRIPTOR: u64 = 64 << 10;
/// The most API versions one list of `lifecycle.toml` may give.
const MAX_APIS: usize = 256;
/// The longest entry name or link target (Linux `PATH_MAX`).
const MAX_NAME: usize = 4096;

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
    /// Whether the APIs came from the legacy `[api]` table only (no `[apis]`): pack's metadata
    /// then has `null` deprecated lists.
    pub legacy: bool,
    /// The deprecated single Buildpack API (`api.buildpack`): the earliest of deprecated and
    /// supported when those are given; empty when unknown.
    pub api_buildpack: String,
    /// The deprecated single Platform API (`api.platform`), likewise.
    pub api_platform: String,
}

/// A lifecycle that serves one target platform.
#[derive(Debug, Clone)]
pub struct Lifecycle {
    /// Its `lifecycle.toml`.
    pub descriptor: LifecycleDescriptor,
    /// The GOARCH of its binaries (`amd64`, `arm64`, ...).
    pub arch: String,
    /// Where it comes from (the `.tgz`, or the image layout or store), for messages.
    pub origin: PathBuf,
    source: Source,
}

/// Where a lifecycle's files are read from, and what the first read saw.
#[derive(Debug, Clone)]
enum Source {
    /// A release `.tgz` (or plain tar) with entries `lifecycle/<name>`; `digest` is of its
    /// bytes as first read.
    Tarball { path: PathBuf, digest: Digest },
    /// The last layer of a lifecycle image (entries `/cnb/lifecycle/<name>`), in a layout or
    /// store at `path`.
    Image {
        path: PathBuf,
        store: bool,
        layer: Box<Descriptor>,
        encoding: LayerEncoding,
    },
}

// ---------------------------------------------------------------------------------------------
// Choosing the lifecycle

/// The release archives' name of a GOARCH (`lifecycle-v<V>+linux.<name>.tgz`), `None` when the
/// lifecycle publishes none for it.
pub fn release_arch(os: &str, arch: &str) -> Option<&'static str> {
    Some(match (os, arch) {
        ("linux", "amd64") => "x86-64",
        ("linux", "arm64") => "arm64",
        ("linux", "ppc64le") => "ppc64le",
        ("linux", "s390x") => "s390x",
        ("freebsd", "amd64") => "amd64",
        ("freebsd", "arm64") => "arm64",
        _ => return None,
    })
}

/// The lifecycle serving `platform` (os/arch/variant of one target), with pack's messages:
/// a `.tgz` path or `file://` URI (relative to `base_dir`; `{arch}` replaced by the release's
/// name of the architecture), a lifecycle image (layout path, or a reference in the store:
/// `docker://`, or a bare name that is not a file), or `version`/default → `docker.io/buildpacksio/lifecycle:X` from the store (`store`:
/// a store directory; `None` for the default store). A target no lifecycle serves is an error
/// naming what there is.
pub fn lifecycle_for(
    spec: &LifecycleSpec,
    base_dir: &Path,
    platform: &oci::Platform,
    store: Option<&Path>,
) -> Result<Lifecycle> {
    let target = crate::cnb::platform_name(platform, &Default::default());
    match platform.os.as_str() {
        "linux" | "freebsd" => {}
        "windows" => {
            return Err(Error::other(format!(
                "target {target}: Windows builders are not supported (the lifecycle removed Windows support in v0.20.6)"
            )))
        }
        os => {
            return Err(Error::other(format!(
                "target {target}: the lifecycle is published for linux and freebsd, not for {os:?}"
            )))
        }
    }
    if platform.architecture.is_empty() {
        return Err(Error::other(format!(
            "target {target}: no architecture, so no lifecycle can be chosen for it"
        )));
    }
    let version_ref = |v: &str| format!("{IMAGE_REPOSITORY}:{v}");
    let lifecycle = match spec {
        LifecycleSpec::Default => from_store(&version_ref(DEFAULT_VERSION), platform, store, true)?,
        LifecycleSpec::Version(given) => {
            // pack names the release by the version as semver prints it (`v0.20` → `0.20.0`).
            let v = semver_text(given);
            if !v
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
                || v.len() > 127
            {
                return Err(Error::other(format!(
                    "'lifecycle.version' {given:?} cannot be an image tag ({IMAGE_REPOSITORY}:<version>)"
                )));
            }
            from_store(&version_ref(&v), platform, store, false)?
        }
        LifecycleSpec::Uri(uri) => {
            let text = uri_text(uri, platform)?;
            let path = crate::package::sources::local_path(&text, base_dir);
            if let Some(reference) = text.strip_prefix("docker://") {
                from_store(reference, platform, store, false)?
            } else if path.symlink_metadata().is_ok()
                || crate::builder::inputs::looks_like_path(&text)
            {
                from_path(&path, platform)?
            } else {
                // A bare name that is no file: a reference, as for the build image.
                from_store(&text, platform, store, false)?
            }
        }
    };
    if lifecycle.arch != platform.architecture {
        return Err(Error::invalid(
            &lifecycle.origin,
            format!(
                "the lifecycle is built for {}, but target {target} is {}",
                lifecycle.arch, platform.architecture
            ),
        ));
    }
    Ok(lifecycle)
}

/// A semver as Masterminds' `Version.String()` prints it: no `v`, three numbers without
/// leading zeros, then the prerelease and metadata as given. `v` must pass
/// [`crate::builder::config::is_semver`].
fn semver_text(v: &str) -> String {
    let v = v.strip_prefix('v').unwrap_or(v);
    let (rest, meta) = match v.split_once('+') {
        Some((r, m)) => (r, Some(m)),
        None => (v, None),
    };
    let (core, pre) = match rest.split_once('-') {
        Some((c, p)) => (c, Some(p)),
        None => (rest, None),
    };
    let mut nums: Vec<String> = core
        .split('.')
        .map(|n| n.trim_start_matches('0'))
        .map(|n| {
            if n.is_empty() {
                "0".to_string()
            } else {
                n.to_string()
            }
        })
        .collect();
    nums.resize(3, "0".to_string());
    let mut out = nums.join(".");
    if let Some(p) = pre {
        out = format!("{out}-{p}");
    }
    if let Some(m) = meta {
        out = format!("{out}+{m}");
    }
    out
}

/// A `uri` with `{arch}` replaced by the release's name of the target's architecture.
fn uri_text(uri: &str, platform: &oci::Platform) -> Result<String> {
    let mut text = uri.to_string();
    if text.contains("{arch}") {
        let Some(name) = release_arch(&platform.os, &platform.architecture) else {
            return Err(Error::other(format!(
                "[lifecycle] uri {uri:?}: the lifecycle publishes no release for {}/{} to put in place of {{arch}}",
                platform.os, platform.architecture
            )));
        };
        text = text.replace("{arch}", name);
    }
    if text.starts_with("http://") || text.starts_with("https://") {
        return Err(Error::other(format!(
            "[lifecycle] uri {text:?}: lifecycles are read offline; download it and name the file"
        )));
    }
    Ok(text)
}

/// A lifecycle `.tgz`/`.tar`, or a lifecycle image in a layout directory or archive.
fn from_path(path: &Path, platform: &oci::Platform) -> Result<Lifecycle> {
    let meta = std::fs::metadata(path).at(path)?;
    if meta.is_dir() {
        if !path.join("index.json").exists() {
            return Err(Error::invalid(
                path,
                "is a directory but not an OCI layout of a lifecycle image; name the lifecycle's release .tgz instead",
            ));
        }
        let reader = PackageReader::open(path)?;
        return from_image(&reader, path, false, &path.display().to_string(), platform);
    }
    let mut head = BufReader::new(crate::input::open_regular(path)?);
    let gzip = head.fill_buf().at(path)?.starts_with(&[0x1f, 0x8b]);
    if !gzip {
        // A plain tar is either a layout archive (a lifecycle image) or a lifecycle tar.
        if let Ok(reader) = PackageReader::open(path) {
            return from_image(&reader, path, false, &path.display().to_string(), platform);
        }
    }
    let key = TarballKey::of(path, &meta);
    if let Some(known) = checked_tarballs()
        .lock()
        .ok()
        .and_then(|m| m.iter().find(|(k, _)| *k == key).map(|(_, l)| l.clone()))
    {
        return Ok(known);
    }
    let (found, digest) = read_tarball(path, None)?;
    let lifecycle = finish(
        path,
        found,
        Source::Tarball {
            path: path.to_path_buf(),
            digest,
        },
    )?;
    if let Ok(mut m) = checked_tarballs().lock() {
        if m.len() >= MAX_REMEMBERED {
            m.remove(0);
        }
        m.push((key, lifecycle.clone()));
    }
    Ok(lifecycle)
}

/// How many checked `.tgz` files are remembered.
const MAX_REMEMBERED: usize = 16;

/// A `.tgz` as the file system describes it: the same path and the same file, unchanged
/// (inode, size, modification and change times).
#[derive(Debug, Clone, PartialEq, Eq)]
struct TarballKey {
    path: PathBuf,
    stat: [i64; 7],
}

impl TarballKey {
    fn of(path: &Path, meta: &std::fs::Metadata) -> Self {
        use std::os::unix::fs::MetadataExt;
        TarballKey {
            path: path.to_path_buf(),
            stat: [
                meta.dev() as i64,
                meta.ino() as i64,
                meta.size() as i64,
                meta.mtime(),
                meta.mtime_nsec(),
                meta.ctime(),
                meta.ctime_nsec(),
            ],
        }
    }
}

/// The `.tgz` files checked in this process: one that serves several targets (a target per
/// distro, say) is read once to check it and once to write its layer, not once per target.
/// The write still checks the bytes are the ones checked.
fn checked_tarballs() -> &'static std::sync::Mutex<Vec<(TarballKey, Lifecycle)>> {
    static CHECKED: std::sync::OnceLock<std::sync::Mutex<Vec<(TarballKey, Lifecycle)>>> =
        std::sync::OnceLock::new();
    CHECKED.get_or_init(Default::default)
}

/// `reference` from the store, one platform per target.
fn from_store(
    reference: &str,
    platform: &oci::Platform,
    store: Option<&Path>,
    default: bool,
) -> Result<Lifecycle> {
    let platform_text = crate::cnb::platform_name(platform, &Default::default());
    let pull = format!(
        "{} --platform {platform_text}",
        crate::builder::inputs::pull_command(store, reference)
    );
    let why = if default {
        format!(" ([lifecycle] names no version or uri, so pack's default lifecycle {DEFAULT_VERSION} is used)")
    } else {
        String::new()
    };
    let no_store = || {
        Error::other(format!(
            "lifecycle image {reference} is needed{why}, and there is no store; run `{pull}` first, or name a lifecycle .tgz in [lifecycle] uri"
        ))
    };
    let reader = match store {
        // A store not made yet holds nothing (as for the build image).
        Some(p) if !p.exists() => return Err(no_store()),
        Some(p) => StoreReader::open(p)?,
        None => StoreReader::open_default()?.ok_or_else(no_store)?,
    };
    let Some(found) = reader.resolve(reference)? else {
        return Err(Error::other(format!(
            "lifecycle image {reference} is not in the store {}{why}; run `{pull}` first, or name a lifecycle .tgz in [lifecycle] uri",
            reader.path().display()
        )));
    };
    pick_image(
        &found.images,
        reader.reader(),
        reader.path(),
        true,
        &found.reference,
        platform,
    )
}

/// A lifecycle image in a layout: the image for `platform`.
fn from_image(
    reader: &PackageReader,
    path: &Path,
    store: bool,
    shown: &str,
    platform: &oci::Platform,
) -> Result<Lifecycle> {
    let images = reader.images()?;
    pick_image(&images, reader, path, store, shown, platform)
}

fn pick_image(
    images: &[ImageRef],
    reader: &PackageReader,
    path: &Path,
    store: bool,
    shown: &str,
    platform: &oci::Platform,
) -> Result<Lifecycle> {
    let fits = |p: &oci::Platform| {
        p.os == platform.os
            && p.architecture == platform.architecture
            && (p.variant.is_empty()
                || platform.variant.is_empty()
                || p.variant == platform.variant)
    };
    let Some(image) = images.iter().find(|i| fits(&i.platform())) else {
        let have: Vec<String> = images
            .iter()
            .map(|i| crate::cnb::platform_name(&i.platform(), &Default::default()))
            .collect();
        return Err(Error::invalid(
            path,
            format!(
                "lifecycle image {shown} has no image for {}; it has {}",
                crate::cnb::platform_name(platform, &Default::default()),
                if have.is_empty() {
                    "none".to_string()
                } else {
                    have.join(", ")
                }
            ),
        ));
    };
    // pack takes the image's last layer: the lifecycle image's own.
    let Some(layer) = image.manifest.layers.last() else {
        return Err(Error::invalid(
            path,
            format!("lifecycle image {shown} has no layers"),
        ));
    };
    let Some(encoding) = oci::layer_compression_of(&layer.media_type) else {
        return Err(Error::invalid(
            path,
            format!(
                "lifecycle image {shown}: unknown layer media type {:?}",
                layer.media_type
            ),
        ));
    };
    let found = read_layer(reader, path, layer, encoding, None)?;
    let origin = PathBuf::from(format!("{} ({shown})", path.display()));
    finish(
        &origin,
        found,
        Source::Image {
            path: path.to_path_buf(),
            store,
            layer: Box::new(layer.clone()),
            encoding,
        },
    )
}

/// Check what the first read found (descriptor, binaries, architecture) and make the lifecycle.
fn finish(origin: &Path, found: Found, source: Source) -> Result<Lifecycle> {
    let invalid = |m: String| Error::invalid(origin, format!("invalid lifecycle: {m}"));
    let Some(text) = found.descriptor else {
        return Err(invalid("could not find entry path 'lifecycle.toml'".into()));
    };
    let descriptor = parse_descriptor(&text).map_err(invalid)?;
    for b in REQUIRED_BINARIES {
        // A directory of that name is no binary (pack counts any entry).
        let binary = |n: &str| found.kinds.get(n).is_some_and(|k| *k != Kind::Dir);
        if !binary(b) && !binary(&format!("{b}.exe")) {
            return Err(invalid(format!(
                "validating binaries: did not find '{b}' in tar"
            )));
        }
    }
    let file_of = |p: &str| {
        Path::new(p)
            .file_name()
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_default()
    };
    // Links by the file they are placed as, to the file they name.
    let link_of: BTreeMap<String, String> = found
        .links
        .iter()
        .map(|(name, target)| (file_of(name), file_of(target)))
        .collect();
    for (name, target) in &found.links {
        // Followed link by link, a link must end at a file (a cycle never does).
        let mut resolved = file_of(target);
        let mut hops = 0;
        while let Some(next) = link_of.get(&resolved).filter(|_| hops <= link_of.len()) {
            resolved = next.clone();
            hops += 1;
        }
        if link_of.contains_key(&resolved) {
            return Err(invalid(format!(
                "'{}' links to '{}', a cycle of links that ends at no file",
                shown(name),
                shown(target)
            )));
        }
        if !found.kinds.contains_key(&resolved) {
            return Err(invalid(format!(
                "'{}' links to '{}', which the lifecycle does not hold",
                shown(name),
                shown(target)
            )));
        }
    }
    let arch = lifecycle_arch(&found.machines).map_err(invalid)?;
    Ok(Lifecycle {
        descriptor,
        arch,
        origin: origin.to_path_buf(),
        source,
    })
}

/// The architecture of the lifecycle's binaries: `lifecycle` (the multicall binary) decides,
/// else the first binary; every binary must agree.
fn lifecycle_arch(machines: &[(String, Machine)]) -> std::result::Result<String, String> {
    let main = machines
        .iter()
        .find(|(n, _)| n == "lifecycle")
        .or_else(|| machines.first());
    let Some((main_name, main)) = main else {
        return Err("no ELF binary to tell its architecture by".into());
    };
    let Some(arch) = main.arch else {
        return Err(format!(
            "'{main_name}' is built for {}, which cnbpkg does not know",
            main.describe()
        ));
    };
    if let Some((other, m)) = machines.iter().find(|(_, m)| m.arch != Some(arch)) {
        return Err(format!(
            "'{other}' is built for {} but '{main_name}' for {arch}",
            m.describe()
        ));
    }
    Ok(arch.to_string())
}

// ---------------------------------------------------------------------------------------------
// lifecycle.toml

#[derive(Deserialize)]
struct RawDescriptor {
    apis: Option<RawApis>,
    api: Option<RawApi>,
    lifecycle: Option<RawInfo>,
}

#[derive(Deserialize)]
struct RawApis {
    buildpack: Option<RawApiSet>,
    platform: Option<RawApiSet>,
}

#[derive(Deserialize)]
struct RawApiSet {
    deprecated: Option<Vec<String>>,
    supported: Option<Vec<String>>,
}

#[derive(Deserialize)]
struct RawApi {
    buildpack: Option<String>,
    platform: Option<String>,
}

#[derive(Deserialize)]
struct RawInfo {
    version: Option<String>,
}

/// Parse `lifecycle.toml` (pack's `ParseDescriptor`, then `CompatDescriptor`).
pub fn parse_descriptor(text: &str) -> std::result::Result<LifecycleDescriptor, String> {
    let raw: RawDescriptor = toml::from_str(text).map_err(|e| {
        format!(
            "decoding descriptor: {}",
            e.message().trim().replace('\n', " ")
        )
    })?;
    let version = raw.lifecycle.and_then(|l| l.version).unwrap_or_default();
    if version.is_empty() {
        return Err("lifecycle.toml gives no [lifecycle] version".into());
    }
    if !crate::builder::config::is_semver(&version) {
        return Err(format!(
            "decoding descriptor: invalid semantic version {version}: Invalid Semantic Version"
        ));
    }
    let list = |v: Option<Vec<String>>| -> std::result::Result<Vec<String>, String> {
        let v = v.unwrap_or_default();
        if v.len() > MAX_APIS {
            return Err(format!(
                "decoding descriptor: more than {MAX_APIS} API versions in one list"
            ));
        }
        v.iter()
            .map(|a| {
                crate::descriptor::normalize_api(a).map_err(|e| format!("decoding descriptor: {e}"))
            })
            .collect()
    };
    let set = |s: Option<RawApiSet>| -> std::result::Result<ApiSet, String> {
        let s = s.unwrap_or(RawApiSet {
            deprecated: None,
            supported: None,
        });
        Ok(ApiSet {
            deprecated: list(s.deprecated)?,
            supported: list(s.supported)?,
        })
    };
    let apis = raw.apis.unwrap_or(RawApis {
        buildpack: None,
        platform: None,
    });
    let one = |v: Option<String>| -> std::result::Result<String, String> {
        match v {
            Some(a) => crate::descriptor::normalize_api(&a)
                .map_err(|e| format!("decoding descriptor: {e}")),
            None => Ok(String::new()),
        }
    };
    let api = raw.api.unwrap_or(RawApi {
        buildpack: None,
        platform: None,
    });
    let mut d = LifecycleDescriptor {
        version,
        buildpack: set(apis.buildpack)?,
        platform: set(apis.platform)?,
        legacy: false,
        api_buildpack: one(api.buildpack)?,
        api_platform: one(api.platform)?,
    };
    // CompatDescriptor: the deprecated single APIs are the earliest listed, or, with no lists,
    // the lists are the single APIs.
    if !d.buildpack.supported.is_empty() || !d.platform.supported.is_empty() {
        if let Some(e) = earliest(&d.buildpack) {
            d.api_buildpack = e;
        }
        if let Some(e) = earliest(&d.platform) {
            d.api_platform = e;
        }
    } else if !d.api_buildpack.is_empty() && !d.api_platform.is_empty() {
        d.buildpack = ApiSet {
            deprecated: Vec::new(),
            supported: vec![d.api_buildpack.clone()],
        };
        d.platform = ApiSet {
            deprecated: Vec::new(),
            supported: vec![d.api_platform.clone()],
        };
        d.legacy = true;
    }
    Ok(d)
}

/// The earliest of a set's deprecated and supported versions, when it has supported ones.
fn earliest(s: &ApiSet) -> Option<String> {
    if s.supported.is_empty() {
        return None;
    }
    let key = |v: &String| {
        let (a, b) = v.split_once('.').unwrap_or((v, "0"));
        (a.parse::<u64>().unwrap_or(0), b.parse::<u64>().unwrap_or(0))
    };
    s.deprecated
        .iter()
        .chain(&s.supported)
        .min_by_key(|v| key(v))
        .cloned()
}

#[derive(Serialize)]
struct MetadataJson<'a> {
    version: &'a str,
    api: ApiJson<'a>,
    apis: ApisJson<'a>,
}

#[derive(Serialize)]
struct ApiJson<'a> {
    buildpack: Option<&'a str>,
    platform: Option<&'a str>,
}

#[derive(Serialize)]
struct ApisJson<'a> {
    buildpack: ApiSetJson<'a>,
    platform: ApiSetJson<'a>,
}

#[derive(Serialize)]
struct ApiSetJson<'a> {
    deprecated: Option<&'a [String]>,
    supported: &'a [String],
}

/// The builder metadata's `lifecycle` object, Go-exact JSON (pack's `LifecycleMetadata`:
/// `version`, the deprecated `api`, `apis`).
pub fn metadata_json(d: &LifecycleDescriptor) -> String {
    fn set(s: &ApiSet, legacy: bool) -> ApiSetJson<'_> {
        ApiSetJson {
            deprecated: (!legacy).then_some(s.deprecated.as_slice()),
            supported: &s.supported,
        }
    }
    fn one(s: &str) -> Option<&str> {
        (!s.is_empty()).then_some(s)
    }
    go_marshal(&MetadataJson {
        version: &d.version,
        api: ApiJson {
            buildpack: one(&d.api_buildpack),
            platform: one(&d.api_platform),
        },
        apis: ApisJson {
            buildpack: set(&d.buildpack, d.legacy),
            platform: set(&d.platform, d.legacy),
        },
    })
}

/// pack's `validateLifecycleVersion`: a builder with extensions (`has_extensions`: any
/// `[[extensions]]` or `[[order-extensions]]`) needs a lifecycle whose latest Platform API is
/// 0.13 or later (pack allows older ones only in its experimental mode).
pub fn check_extensions_supported(d: &LifecycleDescriptor, has_extensions: bool) -> Result<()> {
    let key = |v: &String| {
        let (a, b) = v.split_once('.').unwrap_or((v, "0"));
        (a.parse::<u64>().unwrap_or(0), b.parse::<u64>().unwrap_or(0))
    };
    let Some(latest) = d.platform.supported.iter().max_by_key(|v| key(v)) else {
        return Ok(());
    };
    if has_extensions && key(latest) < (0, 13) {
        return Err(Error::other(format!(
            "builder config contains image extensions, but the lifecycle Platform API version ({latest}) is older than 0.13; support for image extensions with Platform API < 0.13 is currently experimental"
        )));
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Reading the entries (both reads)

/// What kind of entry a lifecycle file is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    File,
    Dir,
    Symlink,
}

/// What one read of the entries found.
#[derive(Default)]
struct Found {
    /// `lifecycle.toml`.
    descriptor: Option<String>,
    /// The files placed in `/cnb/lifecycle`, by name.
    kinds: BTreeMap<String, Kind>,
    /// Symbolic links among them, with their targets.
    links: Vec<(String, String)>,
    /// Machines of the executables among them.
    machines: Vec<(String, Machine)>,
}

/// An entry name for messages.
fn shown(name: &str) -> String {
    crate::layer::shown_name(name)
}

/// Read a release `.tgz`/`.tar` through the checks; with `out`, write the layer entries. The
/// digest is of the file's bytes (the second read must match the first's `expect`).
fn read_tarball(
    path: &Path,
    out: Option<&mut TarWriter<&mut dyn Write>>,
) -> Result<(Found, Digest)> {
    let file = crate::input::open_regular(path)?;
    let mut hashed = HashingReader::new(crate::atomic::InterruptibleReader(file));
    let found = {
        let mut buffered = BufReader::new(&mut hashed);
        let gzip = buffered.fill_buf().at(path)?.starts_with(&[0x1f, 0x8b]);
        let tar: Box<dyn Read + '_> = if gzip {
            Box::new(crate::compress::GzipMembers::new(buffered))
        } else {
            Box::new(buffered)
        };
        walk(tar, path, false, out)?
    };
    // The digest covers the whole file, whatever follows the archive.
    io::copy(&mut (&mut hashed).take(MAX_DATA), &mut io::sink()).at(path)?;
    let (_, digest, _) = hashed.finish();
    Ok((found, digest))
}

/// Read the lifecycle layer of an image, its digest verified; with `out`, write the entries.
fn read_layer(
    reader: &PackageReader,
    path: &Path,
    layer: &Descriptor,
    encoding: LayerEncoding,
    out: Option<&mut TarWriter<&mut dyn Write>>,
) -> Result<Found> {
    let blob = reader.open_blob(&layer.digest)?;
    let mut hashed = HashingReader::new(crate::atomic::InterruptibleReader(blob));
    let found = walk(
        crate::compress::decoder(encoding, &mut hashed),
        path,
        true,
        out,
    )?;
    io::copy(&mut hashed, &mut io::sink()).at(path)?;
    let (_, actual, size) = hashed.finish();
    if actual != layer.digest {
        return Err(Error::DigestMismatch {
            path: path.to_path_buf(),
            expected: layer.digest,
            actual,
        });
    }
    if size != layer.size {
        return Err(Error::SizeMismatch {
            path: path.to_path_buf(),
            digest: layer.digest,
            expected: layer.size,
            actual: size,
        });
    }
    Ok(found)
}

/// Go through a lifecycle tar: `lifecycle.toml` is parsed, entries one level below a top
/// directory (`lifecycle/<name>`; `cnb/lifecycle/<name>` in an image, `strip_cnb`) go to
/// `/cnb/lifecycle/<name>` with their headers (pack's `embedLifecycleTar`), everything else is
/// left out. Refused anywhere: `..` names, device, FIFO and sparse entries, names that are not
/// UTF-8 or too long, more than [`MAX_ENTRIES`] entries or [`MAX_DATA`] bytes; among the entries
/// placed: duplicates, links pointing out of `/cnb/lifecycle`, hard links to anything but an
/// earlier file. Setuid/setgid/sticky bits and extended records (xattrs) are dropped.
fn walk(
    tar: impl Read,
    origin: &Path,
    strip_cnb: bool,
    mut out: Option<&mut TarWriter<&mut dyn Write>>,
) -> Result<Found> {
    let bad = |name: &str, m: &str| {
        if name.is_empty() {
            Error::invalid(origin, format!("invalid lifecycle: {m}"))
        } else {
            Error::invalid(
                origin,
                format!("invalid lifecycle: entry '{}' {m}", shown(name)),
            )
        }
    };
    let io_bad = |e: io::Error| bad("", &format!("corrupt archive: {e}"));
    let mut guard = TarGuard::new(Bounded {
        inner: tar,
        left: MAX_TAR_BYTES,
    });
    let mut found = Found::default();
    {
        let mut archive = ::tar::Archive::new(&mut guard);
        let (mut count, mut data) = (0u64, 0u64);
        for entry in archive.entries().map_err(io_bad)? {
            crate::cancel::check()?;
            let mut entry = entry.map_err(io_bad)?;
            let et = entry.header().entry_type();
            if et.is_pax_global_extensions() {
                continue;
            }
            let raw = entry.path_bytes().into_owned();
            let name = String::from_utf8(raw).map_err(|e| {
                bad(
                    &String::from_utf8_lossy(e.as_bytes()),
                    "has a name that is not UTF-8",
                )
            })?;
            count += 1;
            if count > MAX_ENTRIES {
                return Err(bad("", &format!("more than {MAX_ENTRIES} entries")));
            }
            if name.len() > MAX_NAME {
                return Err(bad(&name, "has a name that is too long"));
            }
            use ::tar::EntryType as T;
            let kind = match et {
                T::Regular | T::Continuous => Kind::File,
                T::Directory => Kind::Dir,
                T::Symlink | T::Link => Kind::Symlink,
                T::Char | T::Block => {
                    return Err(bad(&name, "is a device; device entries are not allowed"))
                }
                T::Fifo => return Err(bad(&name, "is a FIFO; FIFO entries are not allowed")),
                T::GNUSparse => {
                    return Err(bad(
                        &name,
                        "is a sparse file; sparse files are not supported",
                    ))
                }
                other => {
                    return Err(bad(
                        &name,
                        &format!(
                            "has the unsupported entry type '{}'",
                            other.as_byte() as char
                        ),
                    ))
                }
            };
            // Whatever the entry (a directory may declare data too), its data is read.
            data = data.saturating_add(entry.size());
            if data > MAX_DATA {
                return Err(bad(
                    &name,
                    &format!("takes the archive over {} MiB", MAX_DATA >> 20),
                ));
            }

            let Some(parts) = crate::tar::name_parts(&name, false) else {
                return Err(bad(&name, "has a '..' path component"));
            };
            let parts: &[&str] = match (strip_cnb, parts.split_first()) {
                (false, _) => &parts,
                (true, Some((&"cnb", rest))) => rest,
                (true, _) => continue, // not the lifecycle's (pack strips the `/cnb/` prefix)
            };
            if parts == ["lifecycle.toml"] {
                found.descriptor =
                    Some(read_descriptor(&mut entry, kind).map_err(|m| bad(&name, &m))?);
                continue;
            }
            let [_, file] = parts else {
                continue; // the top directory, or deeper than pack takes
            };
            place(
                &mut entry,
                &name,
                file,
                kind,
                &mut found,
                out.as_deref_mut(),
            )
            .map_err(|m| {
                if m.starts_with("writing: ") {
                    Error::other(format!("{}: {m}", origin.display()))
                } else {
                    bad(&name, &m)
                }
            })?;
        }
    }
    guard.drain(MAX_DATA).map_err(io_bad)?;
    if !guard.saw_end_marker() {
        return Err(bad(
            "",
            "truncated archive: it ends without the end-of-archive marker",
        ));
    }
    Ok(found)
}

/// The most bytes a lifecycle tar may expand to: its data, and room for headers.
const MAX_TAR_BYTES: u64 = MAX_DATA + (64 << 20);

/// A tar stream cut off with an error past [`MAX_TAR_BYTES`], so that a small compressed file
/// cannot keep the reader busy with endless headers.
struct Bounded<R> {
    inner: R,
    left: u64,
}

impl<R: Read> Read for Bounded<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.left == 0 {
            return Err(io::Error::other(format!(
                "the archive expands to more than {} MiB",
                MAX_TAR_BYTES >> 20
            )));
        }
        let want = buf
            .len()
            .min(usize::try_from(self.left).unwrap_or(usize::MAX));
        let n = self.inner.read(&mut buf[..want])?;
        self.left -= n as u64;
        Ok(n)
    }
}

fn read_descriptor<R: Read>(
    entry: &mut ::tar::Entry<'_, R>,
    kind: Kind,
) -> std::result::Result<String, String> {
    if kind != Kind::File || entry.header().entry_type() == ::tar::EntryType::Link {
        return Err("is not a regular file where lifecycle.toml belongs".into());
    }
    if entry.size() > MAX_DESCRIPTOR {
        return Err(format!(
            "is over {} KiB, too large for lifecycle.toml",
            MAX_DESCRIPTOR >> 10
        ));
    }
    let mut text = String::new();
    entry
        .take(MAX_DESCRIPTOR)
        .read_to_string(&mut text)
        .map_err(|e| format!("cannot be read: {e}"))?;
    Ok(text)
}

/// One entry placed at `/cnb/lifecycle/<file>`: checked, recorded, and written when `out` is
/// given. Errors are the entry's problem, or `writing: ...` for the output's.
fn place<R: Read>(
    entry: &mut ::tar::Entry<'_, R>,
    name: &str,
    file: &str,
    kind: Kind,
    found: &mut Found,
    out: Option<&mut TarWriter<&mut dyn Write>>,
) -> std::result::Result<(), String> {
    if found.kinds.contains_key(file) {
        return Err(format!("is a second '{}' in the lifecycle", shown(file)));
    }
    if file.starts_with(".wh.") {
        // In a layer, `.wh.X` is no file: it deletes `X` of the layers below.
        return Err("is a whiteout ('.wh.' name), which no lifecycle holds".into());
    }
    let mut header = crate::layer::copied_header(entry)?;
    header.name = format!("{LIFECYCLE_DIR}/{file}");
    header.mode &= 0o777;
    header.pax.clear();
    match header.typ {
        EntryType::Symlink => {
            check_symlink(&header.linkname)?;
            found
                .links
                .push((name.to_string(), header.linkname.clone()));
        }
        EntryType::Hardlink => {
            let target = hardlink_target(&header.linkname)
                .filter(|t| found.kinds.get(t) == Some(&Kind::File))
                .ok_or_else(|| {
                    format!(
                        "is a hard link to '{}', which is not a lifecycle file before it",
                        shown(&header.linkname)
                    )
                })?;
            header.linkname = format!("{LIFECYCLE_DIR}/{target}");
        }
        _ => {}
    }
    let kind = if header.typ == EntryType::Hardlink {
        Kind::File
    } else {
        kind
    };
    found.kinds.insert(file.to_string(), kind);
    if header.typ == EntryType::File {
        // The first bytes tell the machine; they are kept and written before the rest.
        let mut head = Vec::new();
        (&mut *entry)
            .take(machine::HEAD_LEN as u64)
            .read_to_end(&mut head)
            .map_err(|e| format!("cannot be read: {e}"))?;
        if let Some(m) = machine::machine_of(&head) {
            found.machines.push((file.to_string(), m));
        }
        if let Some(tw) = out {
            let mut data = head.as_slice().chain(entry);
            tw.append(&header, &mut data).map_err(|e| {
                if e.kind() == io::ErrorKind::UnexpectedEof {
                    format!("is cut short: {e}")
                } else {
                    format!("writing: {e}")
                }
            })?;
        }
    } else if let Some(tw) = out {
        tw.append(&header, &mut io::empty())
            .map_err(|e| format!("writing: {e}"))?;
    }
    Ok(())
}

/// A link placed in `/cnb/lifecycle` must point at a sibling (`lifecycle`), by a relative or
/// an absolute (`/cnb/lifecycle/lifecycle`) name.
fn check_symlink(target: &str) -> std::result::Result<(), String> {
    let parts = crate::tar::name_parts(target, false);
    let ok = match parts.as_deref() {
        _ if target.is_empty() || target.len() > MAX_NAME => false,
        Some([_]) => !target.starts_with('/'),
        Some(["cnb", "lifecycle", _]) => target.starts_with('/'),
        _ => false,
    };
    if ok {
        Ok(())
    } else {
        Err(format!(
            "is a symbolic link to '{}', outside {LIFECYCLE_DIR}",
            shown(target)
        ))
    }
}

/// The lifecycle file a hard link's target names (`lifecycle/<name>`, as the tar names it).
fn hardlink_target(target: &str) -> Option<String> {
    let parts = crate::tar::name_parts(target, false)?;
    let parts: &[&str] = match parts.split_first() {
        Some((&"cnb", rest)) if rest.len() == 2 => rest,
        _ => &parts,
    };
    match parts {
        [_, file] => Some(file.to_string()),
        _ => None,
    }
}

// ---------------------------------------------------------------------------------------------
// The layer

impl Lifecycle {
    /// Write the whole lifecycle layer as pack does: `/cnb/lifecycle` directory, the entries
    /// (`lifecycle.toml` dropped, headers kept), the `/lifecycle` → `/cnb/lifecycle` symlink,
    /// and the end of archive. Streams; deterministic. The input must still hold the bytes
    /// [`lifecycle_for`] read.
    pub fn write_layer(&self, out: &mut dyn Write) -> Result<()> {
        let write_err = |e: io::Error| Error::other(format!("writing the lifecycle layer: {e}"));
        let mut tw = TarWriter::new(out);
        tw.append(&Header::dir(LIFECYCLE_DIR), &mut io::empty())
            .map_err(write_err)?;
        match &self.source {
            Source::Tarball { path, digest } => {
                let (_, again) = read_tarball(path, Some(&mut tw))?;
                if again != *digest {
                    return Err(Error::invalid(path, "changed while cnbpkg was reading it"));
                }
            }
            Source::Image {
                path,
                store,
                layer,
                encoding,
            } => {
                let store_reader;
                let layout_reader;
                let reader = if *store {
                    store_reader = StoreReader::open(path)?;
                    store_reader.reader()
                } else {
                    layout_reader = PackageReader::open(path)?;
                    &layout_reader
                };
                read_layer(reader, path, layer, *encoding, Some(&mut tw))?;
            }
        }
        let link = Header {
            name: "/lifecycle".into(),
            typ: EntryType::Symlink,
            mode: 0o644,
            linkname: LIFECYCLE_DIR.into(),
            mtime: NORMALIZED_MTIME,
            ..Header::default()
        };
        tw.append(&link, &mut io::empty()).map_err(write_err)?;
        tw.finish().map_err(write_err)?;
        Ok(())
    }

    /// The file or directory its bytes are read from (the `.tgz`, the image's layout or
    /// store): what no output may replace ([`Lifecycle::origin`] is for messages only).
    pub(crate) fn input_path(&self) -> &Path {
        match &self.source {
            Source::Tarball { path, .. } | Source::Image { path, .. } => path,
        }
    }

    /// A key equal for two targets served by the same lifecycle bytes (the layer is built once):
    /// the digest of the `.tgz`, or of the image layer.
    pub fn cache_key(&self) -> String {
        match &self.source {
            Source::Tarball { digest, .. } => format!("tgz {digest}"),
            Source::Image { layer, .. } => format!("layer {}", layer.digest),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    const MTIME: u64 = 1_700_000_000;

    /// An executable header for `machine` (ELF64 unless `class32`), then `body`.
    fn elf(machine: u16, little: bool, class32: bool, body: &[u8]) -> Vec<u8> {
        let u16b = |v: u16| {
            if little {
                v.to_le_bytes()
            } else {
                v.to_be_bytes()
            }
        };
        let mut h = vec![
            0x7f,
            b'E',
            b'L',
            b'F',
            if class32 { 1 } else { 2 },
            if little { 1 } else { 2 },
            1,
        ];
        h.extend_from_slice(&[0; 9]);
        h.extend_from_slice(&u16b(2));
        h.extend_from_slice(&u16b(machine));
        h.extend_from_slice(&[1, 0, 0, 0]);
        h.resize(if class32 { 52 } else { 64 }, 0);
        h.extend_from_slice(body);
        h
    }

    fn elf_for(arch: &str) -> Vec<u8> {
        let (m, little) = match arch {
            "amd64" => (62, true),
            "arm64" => (183, true),
            "ppc64le" => (21, true),
            "s390x" => (22, false),
            "riscv64" => (243, true),
            _ => panic!("{arch}"),
        };
        elf(m, little, false, format!("binary for {arch}").as_bytes())
    }

    #[derive(Clone)]
    enum E {
        Dir,
        File(u32, Vec<u8>),
        Link(&'static str),
        Hard(&'static str),
        Raw(::tar::EntryType),
    }

    const TOML: &str = "[apis]\n[apis.buildpack]\n  deprecated = []\n  supported = [\"0.7\", \"0.8\", \"0.9\", \"0.10\", \"0.11\", \"0.12\"]\n[apis.platform]\n  deprecated = []\n  supported = [\"0.7\", \"0.8\", \"0.9\", \"0.10\", \"0.11\", \"0.12\", \"0.13\", \"0.14\", \"0.15\"]\n[api]\n  platform = \"0.7\"\n  buildpack = \"0.7\"\n[lifecycle]\n  version = \"0.20.5\"\n  sbom-formats = [\"application/vnd.cyclonedx+json\"]\n";

    /// The release's entries (top dir `prefix`, `lifecycle` for a release).
    fn release(arch: &str, prefix: &str) -> Vec<(String, E)> {
        let mut v = vec![
            (
                format!("{prefix}lifecycle.toml"),
                E::File(0o644, TOML.into()),
            ),
            (format!("{prefix}lifecycle/"), E::Dir),
        ];
        for phase in [
            "analyzer", "builder", "creator", "detector", "exporter", "extender",
        ] {
            v.push((format!("{prefix}lifecycle/{phase}"), E::Link("lifecycle")));
        }
        v.push((
            format!("{prefix}lifecycle/launcher"),
            E::File(0o755, elf_for(arch)),
        ));
        v.push((
            format!("{prefix}lifecycle/launcher.sbom.cdx.json"),
            E::File(0o644, b"{}".to_vec()),
        ));
        v.push((
            format!("{prefix}lifecycle/lifecycle"),
            E::File(0o755, elf_for(arch)),
        ));
        for phase in ["rebaser", "restorer"] {
            v.push((format!("{prefix}lifecycle/{phase}"), E::Link("lifecycle")));
        }
        v
    }

    /// A tar of `entries`; names are written raw (hostile ones too).
    fn tar_of(entries: &[(String, E)]) -> Vec<u8> {
        let mut b = ::tar::Builder::new(Vec::new());
        for (name, e) in entries {
            let mut h = ::tar::Header::new_gnu();
            h.set_mtime(MTIME);
            h.set_size(0);
            h.set_uid(0);
            h.set_gid(0);
            h.set_mode(0o755);
            let (typ, data, link): (::tar::EntryType, Vec<u8>, &str) = match e {
                E::Dir => (::tar::EntryType::Directory, vec![], ""),
                E::File(mode, d) => {
                    h.set_mode(*mode);
                    (::tar::EntryType::Regular, d.clone(), "")
                }
                E::Link(t) => (::tar::EntryType::Symlink, vec![], t),
                E::Hard(t) => (::tar::EntryType::Link, vec![], t),
                E::Raw(t) => (*t, vec![], ""),
            };
            h.set_entry_type(typ);
            h.set_size(data.len() as u64);
            let raw = h.as_old_mut();
            raw.name = [0; 100];
            raw.name[..name.len()].copy_from_slice(name.as_bytes());
            raw.linkname = [0; 100];
            raw.linkname[..link.len()].copy_from_slice(link.as_bytes());
            h.set_cksum();
            b.append(&h, data.as_slice()).unwrap();
        }
        b.into_inner().unwrap()
    }

    fn gz(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    fn platform(arch: &str) -> oci::Platform {
        oci::Platform {
            os: "linux".into(),
            architecture: arch.into(),
            ..Default::default()
        }
    }

    fn write_tgz(dir: &Path, name: &str, entries: &[(String, E)]) -> PathBuf {
        let p = dir.join(name);
        fs::write(&p, gz(&tar_of(entries))).unwrap();
        p
    }

    fn uri(u: &str) -> LifecycleSpec {
        LifecycleSpec::Uri(u.into())
    }

    fn error(r: Result<Lifecycle>) -> String {
        r.expect_err("must fail").to_string()
    }

    /// The error of taking the lifecycle `name` in `dir` for the architecture `arch`.
    fn fails(dir: &Path, name: &str, arch: &str) -> String {
        error(lifecycle_for(&uri(name), dir, &platform(arch), None))
    }

    /// (name, type, mode, mtime, link) of each entry of a layer.
    fn entries(layer: &[u8]) -> Vec<(String, char, u32, u64, String)> {
        let mut a = ::tar::Archive::new(layer);
        a.entries()
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                let h = e.header();
                (
                    String::from_utf8(e.path_bytes().into_owned()).unwrap(),
                    h.entry_type().as_byte() as char,
                    h.mode().unwrap(),
                    h.mtime().unwrap(),
                    e.link_name_bytes()
                        .map(|l| String::from_utf8_lossy(&l).into_owned())
                        .unwrap_or_default(),
                )
            })
            .collect()
    }

    fn layer_of(l: &Lifecycle) -> Vec<u8> {
        let mut out = Vec::new();
        l.write_layer(&mut out).unwrap();
        out
    }

    #[test]
    fn a_release_tgz_becomes_packs_lifecycle_layer() {
        let dir = tempfile::tempdir().unwrap();
        write_tgz(
            dir.path(),
            "lifecycle-v0.20.5+linux.x86-64.tgz",
            &release("amd64", ""),
        );
        let l = lifecycle_for(
            &uri("lifecycle-v0.20.5+linux.x86-64.tgz"),
            dir.path(),
            &platform("amd64"),
            None,
        )
        .unwrap();
        assert_eq!(l.arch, "amd64");
        assert_eq!(l.descriptor.version, "0.20.5");
        assert_eq!(l.descriptor.buildpack.supported.len(), 6);
        assert_eq!(
            l.descriptor.platform.supported.last().map(String::as_str),
            Some("0.15")
        );
        let layer = layer_of(&l);
        assert_eq!(layer, layer_of(&l), "deterministic");
        let got = entries(&layer);
        let names: Vec<&str> = got.iter().map(|e| e.0.as_str()).collect();
        assert_eq!(
            names,
            [
                "/cnb/lifecycle",
                "/cnb/lifecycle/analyzer",
                "/cnb/lifecycle/builder",
                "/cnb/lifecycle/creator",
                "/cnb/lifecycle/detector",
                "/cnb/lifecycle/exporter",
                "/cnb/lifecycle/extender",
                "/cnb/lifecycle/launcher",
                "/cnb/lifecycle/launcher.sbom.cdx.json",
                "/cnb/lifecycle/lifecycle",
                "/cnb/lifecycle/rebaser",
                "/cnb/lifecycle/restorer",
                "/lifecycle",
            ]
        );
        let normalized = crate::cnb::NORMALIZED_SECONDS;
        assert_eq!(
            got[0],
            (
                "/cnb/lifecycle".into(),
                '5',
                0o755,
                normalized,
                String::new()
            )
        );
        assert_eq!(
            got[1],
            (
                "/cnb/lifecycle/analyzer".into(),
                '2',
                0o755,
                MTIME,
                "lifecycle".into()
            )
        );
        assert_eq!(got[8].2, 0o644);
        assert_eq!(
            (got[9].1, got[9].2, got[9].3),
            ('0', 0o755, MTIME),
            "headers kept as in the release"
        );
        assert_eq!(
            got[12],
            (
                "/lifecycle".into(),
                '2',
                0o644,
                normalized,
                "/cnb/lifecycle".into()
            )
        );
        // The content is the release's, streamed.
        let mut a = ::tar::Archive::new(layer.as_slice());
        let mut e = a.entries().unwrap().nth(9).unwrap().unwrap();
        let mut content = Vec::new();
        e.read_to_end(&mut content).unwrap();
        assert_eq!(content, elf_for("amd64"));
        // `./` prefixes and a plain tar read alike.
        let plain = dir.path().join("plain.tar");
        let dotted: Vec<(String, E)> = release("amd64", "./");
        fs::write(&plain, tar_of(&dotted)).unwrap();
        let p = lifecycle_for(
            &uri("file://plain.tar"),
            dir.path(),
            &platform("amd64"),
            None,
        )
        .unwrap();
        assert_eq!(layer_of(&p), layer);
    }

    #[test]
    fn the_elf_header_tells_the_architecture() {
        let dir = tempfile::tempdir().unwrap();
        for arch in ["amd64", "arm64", "ppc64le", "s390x", "riscv64"] {
            let name = format!("{arch}.tgz");
            write_tgz(dir.path(), &name, &release(arch, ""));
            let l = lifecycle_for(&uri(&name), dir.path(), &platform(arch), None).unwrap();
            assert_eq!(l.arch, arch);
        }
        let m = fails(dir.path(), "arm64.tgz", "amd64");
        assert!(
            m.contains("the lifecycle is built for arm64, but target linux/amd64 is amd64"),
            "{m}"
        );
        assert!(m.contains("arm64.tgz"), "{m}");
        // Binaries that disagree, and none that tells.
        let mut mixed = release("amd64", "");
        mixed[8].1 = E::File(0o755, elf_for("arm64"));
        write_tgz(dir.path(), "mixed.tgz", &mixed);
        let m = fails(dir.path(), "mixed.tgz", "amd64");
        assert!(
            m.contains("'launcher' is built for arm64 but 'lifecycle' for amd64"),
            "{m}"
        );
        let scripts: Vec<(String, E)> = release("amd64", "")
            .into_iter()
            .map(|(n, e)| match e {
                E::File(mode, _) if n != "lifecycle.toml" => {
                    (n, E::File(mode, b"#!/bin/sh\n".to_vec()))
                }
                e => (n, e),
            })
            .collect();
        write_tgz(dir.path(), "scripts.tgz", &scripts);
        let m = fails(dir.path(), "scripts.tgz", "amd64");
        assert!(m.contains("no ELF binary"), "{m}");
        // A 32-bit machine cnbpkg names, one it does not.
        assert_eq!(
            machine::machine_of(&elf(40, true, true, b"")).unwrap().arch,
            Some("arm")
        );
        assert_eq!(
            machine::machine_of(&elf(0x1234, true, false, b""))
                .unwrap()
                .arch,
            None
        );
    }

    #[test]
    fn arch_in_the_uri_names_one_file_per_target() {
        let dir = tempfile::tempdir().unwrap();
        for arch in ["amd64", "arm64", "ppc64le", "s390x"] {
            let name = format!(
                "lifecycle-v0.20.5+linux.{}.tgz",
                release_arch("linux", arch).unwrap()
            );
            write_tgz(dir.path(), &name, &release(arch, ""));
        }
        let spec = uri("lifecycle-v0.20.5+linux.{arch}.tgz");
        let mut keys = Vec::new();
        for arch in ["amd64", "arm64", "ppc64le", "s390x"] {
            let l = lifecycle_for(&spec, dir.path(), &platform(arch), None).unwrap();
            assert_eq!(l.arch, arch);
            keys.push(l.cache_key());
        }
        keys.dedup();
        assert_eq!(keys.len(), 4);
        let m = error(lifecycle_for(&spec, dir.path(), &platform("riscv64"), None));
        assert!(m.contains("no release for linux/riscv64"), "{m}");
        // Two targets served by one file share the layer.
        let a = lifecycle_for(
            &uri("lifecycle-v0.20.5+linux.arm64.tgz"),
            dir.path(),
            &platform("arm64"),
            None,
        )
        .unwrap();
        let abs = dir.path().join("lifecycle-v0.20.5+linux.arm64.tgz");
        let b = lifecycle_for(
            &uri(&format!("file://{}", abs.display())),
            Path::new("/elsewhere"),
            &platform("arm64"),
            None,
        )
        .unwrap();
        assert_eq!(a.cache_key(), b.cache_key());
        let m = fails(dir.path(), "https://github.com/x.tgz", "arm64");
        assert!(m.contains("offline"), "{m}");
        let v = oci::Platform {
            os: "windows".into(),
            architecture: "amd64".into(),
            ..Default::default()
        };
        let m = error(lifecycle_for(&spec, dir.path(), &v, None));
        assert!(m.contains("Windows builders are not supported"), "{m}");
    }

    #[test]
    fn missing_parts_are_packs_messages() {
        let dir = tempfile::tempdir().unwrap();
        let without = |name: &str| -> Vec<(String, E)> {
            release("amd64", "")
                .into_iter()
                .filter(|(n, _)| n != name)
                .collect()
        };
        write_tgz(dir.path(), "a.tgz", &without("lifecycle/creator"));
        let m = fails(dir.path(), "a.tgz", "amd64");
        assert!(
            m.ends_with("invalid lifecycle: validating binaries: did not find 'creator' in tar"),
            "{m}"
        );
        let mut dir_creator = without("lifecycle/creator");
        dir_creator.push(("lifecycle/creator/".into(), E::Dir));
        write_tgz(dir.path(), "dirs.tgz", &dir_creator);
        let m = fails(dir.path(), "dirs.tgz", "amd64");
        assert!(m.contains("did not find 'creator'"), "{m}");
        let m = fails(dir.path(), "a.tgz", "");
        assert!(m.contains("no architecture"), "{m}");
        write_tgz(dir.path(), "b.tgz", &without("lifecycle.toml"));
        let m = fails(dir.path(), "b.tgz", "amd64");
        assert!(
            m.contains("could not find entry path 'lifecycle.toml'"),
            "{m}"
        );
        write_tgz(dir.path(), "c.tgz", &without("lifecycle/lifecycle"));
        let m = fails(dir.path(), "c.tgz", "amd64");
        assert!(
            m.contains(
                "'lifecycle/analyzer' links to 'lifecycle', which the lifecycle does not hold"
            ),
            "{m}"
        );
        // A binary one level deeper or with a leading top directory other than lifecycle: pack's rule
        // is one level below any top directory.
        let mut other_top = release("amd64", "");
        for (n, _) in other_top.iter_mut() {
            if let Some(rest) = n.strip_prefix("lifecycle/") {
                *n = format!("bin/{rest}");
            }
        }
        write_tgz(dir.path(), "d.tgz", &other_top);
        lifecycle_for(&uri("d.tgz"), dir.path(), &platform("amd64"), None).unwrap();
        let m = fails(dir.path(), "none.tgz", "amd64");
        assert!(m.contains("none.tgz"), "{m}");
        let m = fails(dir.path(), "./", "amd64");
        assert!(m.contains("not an OCI layout"), "{m}");
    }

    #[test]
    fn hostile_entries_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let cases: Vec<((String, E), &str)> = vec![
            (
                ("lifecycle/../../etc/x".into(), E::File(0o644, vec![])),
                "'..' path component",
            ),
            (
                ("lifecycle/dev".into(), E::Raw(::tar::EntryType::Char)),
                "device entries are not allowed",
            ),
            (
                ("lifecycle/fifo".into(), E::Raw(::tar::EntryType::Fifo)),
                "FIFO entries are not allowed",
            ),
            (
                ("lifecycle/x".into(), E::Link("/etc/passwd")),
                "outside /cnb/lifecycle",
            ),
            (
                ("lifecycle/x".into(), E::Link("../../bin/sh")),
                "outside /cnb/lifecycle",
            ),
            (
                ("lifecycle/x".into(), E::Link("sub/lifecycle")),
                "outside /cnb/lifecycle",
            ),
            (
                ("lifecycle/x".into(), E::Hard("/etc/shadow")),
                "hard link to '/etc/shadow'",
            ),
            (
                ("lifecycle/x".into(), E::Hard("lifecycle/restorer")),
                "hard link to 'lifecycle/restorer'",
            ),
            (
                ("lifecycle/creator".into(), E::File(0o755, vec![])),
                "second 'creator'",
            ),
            (
                (
                    "lifecycle/lifecycle.toml\u{1}".into(),
                    E::File(0o644, vec![]),
                ),
                "",
            ),
        ];
        for (i, (extra, want)) in cases.into_iter().enumerate() {
            let mut entries = release("amd64", "");
            entries.push(extra.clone());
            let name = format!("h{i}.tgz");
            write_tgz(dir.path(), &name, &entries);
            let r = lifecycle_for(&uri(&name), dir.path(), &platform("amd64"), None);
            if want.is_empty() {
                // A control character in a name is data, placed as it is.
                r.unwrap();
                continue;
            }
            let m = error(r);
            assert!(m.contains(want), "{}: {m}", extra.0);
        }
        // A hard link to an earlier lifecycle file is placed, renamed.
        let mut entries = release("amd64", "");
        entries.push(("lifecycle/again".into(), E::Hard("lifecycle/lifecycle")));
        write_tgz(dir.path(), "hard.tgz", &entries);
        let l = lifecycle_for(&uri("hard.tgz"), dir.path(), &platform("amd64"), None).unwrap();
        let got = entries_of(&l);
        assert!(got.contains(&(
            "/cnb/lifecycle/again".into(),
            '1',
            0o755,
            MTIME,
            "/cnb/lifecycle/lifecycle".into()
        )));
        // Setuid bits are dropped.
        let mut entries = release("amd64", "");
        entries[9].1 = E::File(0o4755, elf_for("amd64"));
        write_tgz(dir.path(), "suid.tgz", &entries);
        let l = lifecycle_for(&uri("suid.tgz"), dir.path(), &platform("amd64"), None).unwrap();
        assert!(entries_of(&l).iter().all(|e| e.2 & 0o7000 == 0));
    }

    fn entries_of(l: &Lifecycle) -> Vec<(String, char, u32, u64, String)> {
        entries(&layer_of(l))
    }

    #[test]
    fn broken_archives_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let tar = tar_of(&release("amd64", ""));
        // Cut at an entry boundary: no end-of-archive marker.
        fs::write(dir.path().join("cut.tgz"), gz(&tar[..tar.len() - 1024])).unwrap();
        let m = fails(dir.path(), "cut.tgz", "amd64");
        assert!(m.contains("truncated archive"), "{m}");
        // A PAX header over the bound is refused before it is read.
        let mut big = Vec::new();
        let mut h = ::tar::Header::new_ustar();
        h.set_entry_type(::tar::EntryType::XHeader);
        h.set_size(2 << 20);
        h.set_path("PaxHeaders/x").unwrap();
        h.set_cksum();
        big.extend_from_slice(h.as_bytes());
        big.extend(std::iter::repeat_n(b'a', 2 << 20));
        big.extend_from_slice(&tar);
        fs::write(dir.path().join("pax.tgz"), gz(&big)).unwrap();
        let m = fails(dir.path(), "pax.tgz", "amd64");
        assert!(m.contains("corrupt archive"), "{m}");
        // Garbage, and a gzip stream with trailing data.
        fs::write(dir.path().join("junk.tgz"), b"\x1f\x8b\x08junk").unwrap();
        assert!(lifecycle_for(&uri("junk.tgz"), dir.path(), &platform("amd64"), None).is_err());
        let mut trailing = gz(&tar);
        trailing.extend_from_slice(b"more");
        fs::write(dir.path().join("trail.tgz"), trailing).unwrap();
        assert!(lifecycle_for(&uri("trail.tgz"), dir.path(), &platform("amd64"), None).is_err());
        // A file that changes between the two reads.
        let p = write_tgz(dir.path(), "moving.tgz", &release("amd64", ""));
        let l = lifecycle_for(&uri("moving.tgz"), dir.path(), &platform("amd64"), None).unwrap();
        let mut other = release("amd64", "");
        other[8].1 = E::File(0o755, elf_for("amd64").repeat(2));
        fs::write(&p, gz(&tar_of(&other))).unwrap();
        let mut out = Vec::new();
        let m = l.write_layer(&mut out).unwrap_err().to_string();
        assert!(m.contains("changed while cnbpkg was reading it"), "{m}");
    }

    #[test]
    fn an_expanding_stream_is_cut_off() {
        let mut b = Bounded {
            inner: &[7u8; 10][..],
            left: 4,
        };
        let mut buf = [0u8; 8];
        assert_eq!(b.read(&mut buf).unwrap(), 4);
        let e = b.read(&mut buf).unwrap_err().to_string();
        assert!(e.contains("expands to more than"), "{e}");
    }

    #[test]
    fn descriptor_parsing_and_metadata_json() {
        let d = parse_descriptor(TOML).unwrap();
        assert_eq!(
            metadata_json(&d),
            r#"{"version":"0.20.5","api":{"buildpack":"0.7","platform":"0.7"},"apis":{"buildpack":{"deprecated":[],"supported":["0.7","0.8","0.9","0.10","0.11","0.12"]},"platform":{"deprecated":[],"supported":["0.7","0.8","0.9","0.10","0.11","0.12","0.13","0.14","0.15"]}}}"#
        );
        // CompatDescriptor: `api` is the earliest of deprecated and supported, whatever [api] says.
        let d = parse_descriptor("[apis.buildpack]\ndeprecated = [\"0.2\"]\nsupported = [\"0.10\", \"0.9\"]\n[apis.platform]\nsupported = [\"0.12\"]\n[api]\nbuildpack = \"0.7\"\n[lifecycle]\nversion = \"0.17.0\"\n").unwrap();
        assert_eq!(
            (d.api_buildpack.as_str(), d.api_platform.as_str()),
            ("0.2", "0.12")
        );
        // The older form: only [api].
        let d = parse_descriptor(
            "[api]\nplatform = \"0.3\"\nbuildpack = \"v0.2\"\n[lifecycle]\nversion = \"0.9.0\"\n",
        )
        .unwrap();
        assert!(d.legacy);
        assert_eq!(
            metadata_json(&d),
            r#"{"version":"0.9.0","api":{"buildpack":"0.2","platform":"0.3"},"apis":{"buildpack":{"deprecated":null,"supported":["0.2"]},"platform":{"deprecated":null,"supported":["0.3"]}}}"#
        );
        for (bad, want) in [
            (
                "[lifecycle]\nversion = \"x\"\n",
                "invalid semantic version x",
            ),
            ("[api]\nplatform = \"0.3\"\n", "no [lifecycle] version"),
            (
                "[apis.platform]\nsupported = [\"zero\"]\n[lifecycle]\nversion = \"1.0.0\"\n",
                "invalid api version 'zero'",
            ),
            ("[lifecycle\n", "decoding descriptor"),
        ] {
            let m = parse_descriptor(bad).unwrap_err();
            assert!(m.contains(want), "{bad}: {m}");
        }
    }

    /// Write an OCI layout holding one lifecycle image per `(arch, layer tar)`, named `name`.
    fn layout(dir: &Path, name: &str, images: &[(&str, Vec<u8>)]) {
        let blobs = dir.join("blobs/sha256");
        fs::create_dir_all(&blobs).unwrap();
        let put = |bytes: &[u8]| {
            let d = Digest::of(bytes);
            fs::write(blobs.join(d.hex()), bytes).unwrap();
            (d, bytes.len())
        };
        let mut manifests = Vec::new();
        for (arch, layer) in images {
            let (ld, ls) = put(layer);
            let config = format!(
                r#"{{"architecture":"{arch}","os":"linux","config":{{}},"rootfs":{{"type":"layers","diff_ids":["{ld}"]}}}}"#
            );
            let (cd, cs) = put(config.as_bytes());
            let manifest = format!(
                r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{cd}","size":{cs}}},"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"{ld}","size":{ls}}}]}}"#
            );
            let (md, ms) = put(manifest.as_bytes());
            manifests.push(format!(
                r#"{{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"{md}","size":{ms},"platform":{{"architecture":"{arch}","os":"linux"}}}}"#
            ));
        }
        let index = format!(
            r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{}]}}"#,
            manifests.join(",")
        );
        let (id, is) = put(index.as_bytes());
        fs::write(
            dir.join("index.json"),
            format!(
                r#"{{"schemaVersion":2,"manifests":[{{"mediaType":"application/vnd.oci.image.index.v1+json","digest":"{id}","size":{is},"annotations":{{"org.opencontainers.image.ref.name":"{name}"}}}}]}}"#
            ),
        )
        .unwrap();
        fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    }

    /// A lifecycle image layer as the lifecycle project builds it: `/cnb`, `/cnb/lifecycle.toml`,
    /// `/cnb/lifecycle/...`.
    fn image_layer(arch: &str) -> Vec<u8> {
        let mut e = vec![("/cnb/".to_string(), E::Dir)];
        e.extend(release(arch, "/cnb/"));
        tar_of(&e)
    }

    #[test]
    fn lifecycle_images_from_a_layout_and_the_store() {
        let dir = tempfile::tempdir().unwrap();
        let store = dir.path().join("store");
        let name = format!("{IMAGE_REPOSITORY}:0.20.5");
        layout(
            &store,
            &name,
            &[
                ("amd64", image_layer("amd64")),
                ("arm64", image_layer("arm64")),
            ],
        );
        let spec = LifecycleSpec::Version("0.20.5".into());
        assert_eq!(semver_text("v0.20"), "0.20.0");
        assert_eq!(semver_text("00.020.5-rc.1+b"), "0.20.5-rc.1+b");
        let short = LifecycleSpec::Version("v0.20.5".into());
        lifecycle_for(&short, dir.path(), &platform("amd64"), Some(&store)).unwrap();
        let plus = LifecycleSpec::Version("0.20.5+b1".into());
        let m = error(lifecycle_for(
            &plus,
            dir.path(),
            &platform("amd64"),
            Some(&store),
        ));
        assert!(m.contains("cannot be an image tag"), "{m}");
        let amd = lifecycle_for(&spec, dir.path(), &platform("amd64"), Some(&store)).unwrap();
        let arm = lifecycle_for(&spec, dir.path(), &platform("arm64"), Some(&store)).unwrap();
        assert_eq!((amd.arch.as_str(), arm.arch.as_str()), ("amd64", "arm64"));
        assert_ne!(amd.cache_key(), arm.cache_key());
        assert_eq!(amd.descriptor.version, "0.20.5");
        let got = entries_of(&amd);
        assert_eq!(got.first().map(|e| e.0.as_str()), Some("/cnb/lifecycle"));
        assert!(got.iter().any(|e| e.0 == "/cnb/lifecycle/creator"));
        assert!(!got.iter().any(|e| e.0.ends_with("lifecycle.toml")));
        // The same image named by docker:// and as a layout path.
        let by_ref = lifecycle_for(
            &uri(&format!("docker://{name}")),
            dir.path(),
            &platform("arm64"),
            Some(&store),
        )
        .unwrap();
        assert_eq!(layer_of(&by_ref), layer_of(&arm));
        let bare = lifecycle_for(
            &uri("buildpacksio/lifecycle:0.20.5"),
            dir.path(),
            &platform("arm64"),
            Some(&store),
        )
        .unwrap();
        assert_eq!(bare.cache_key(), arm.cache_key());
        let m = error(lifecycle_for(
            &uri("missing.tgz"),
            dir.path(),
            &platform("arm64"),
            Some(&store),
        ));
        assert!(m.contains("missing.tgz"), "{m}");
        let by_path = lifecycle_for(&uri("store"), dir.path(), &platform("arm64"), None).unwrap();
        assert_eq!(layer_of(&by_path), layer_of(&arm));
        // A platform the image lacks, a version the store lacks.
        let m = error(lifecycle_for(
            &spec,
            dir.path(),
            &platform("s390x"),
            Some(&store),
        ));
        assert!(
            m.contains("has no image for linux/s390x; it has linux/amd64, linux/arm64"),
            "{m}"
        );
        let m = error(lifecycle_for(
            &LifecycleSpec::Default,
            dir.path(),
            &platform("amd64"),
            Some(&store),
        ));
        assert!(
            m.contains("docker.io/buildpacksio/lifecycle:0.21.0 is not in the store"),
            "{m}"
        );
        assert!(
            m.contains(&format!(
                "cnbpkg pull --store {} docker.io/buildpacksio/lifecycle:0.21.0 --platform linux/amd64",
                store.display()
            )),
            "{m}"
        );
        assert!(m.contains("pack's default lifecycle 0.21.0"), "{m}");
        // A damaged layer blob is refused on read.
        let layer = image_layer("amd64");
        let blob = store.join("blobs/sha256").join(Digest::of(&layer).hex());
        let mut damaged = layer.clone();
        damaged[600] ^= 1;
        fs::write(&blob, damaged).unwrap();
        assert!(lifecycle_for(&spec, dir.path(), &platform("amd64"), Some(&store)).is_err());
    }
}
