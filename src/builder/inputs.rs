//! A builder's inputs, per target: the build image (a file, a layout or a store reference) and
//! the image of it that serves the target, its build user, distro and stack, the images of the
//! store, and pack's checks of each buildpack and extension against the build image and the
//! lifecycle (the modules themselves are loaded and chosen by packaging's machinery).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::config::ModuleSource;
use crate::cnb::{platform_fit, platform_name, PlatformRequest, LABEL_STACK_ID};
use crate::descriptor::BuildpackDescriptor;
use crate::error::{Error, Result};
use crate::events::{Events, EventsExt};
use crate::layout::{ImageRef, PackageReader};
use crate::oci::Platform;
use crate::package::select::ModulePlan;
use crate::package::sources::{self, Dependency};
use crate::target::Target;

// The distro labels of a base image (`lifecycle/platform/run_image.go`) have the names of the
// index entries' distro annotations.
use crate::cnb::{
    ANNOTATION_DISTRO_NAME as LABEL_DISTRO_NAME, ANNOTATION_DISTRO_VERSION as LABEL_DISTRO_VERSION,
};

/// The local image store, when there is one: where references are looked up.
pub(crate) struct ImageStore {
    inner: crate::store::StoreReader,
}

impl ImageStore {
    /// The store at `path`, or the default one when it exists; `None` without one.
    pub(crate) fn open(path: Option<&Path>) -> Result<Option<ImageStore>> {
        let inner = match path {
            // A store not made yet holds nothing (what is missing says how to fill it).
            Some(p) if !p.exists() => None,
            Some(p) => Some(crate::store::StoreReader::open(p)?),
            None => crate::store::StoreReader::open_default()?,
        };
        Ok(inner.map(|inner| ImageStore { inner }))
    }

    /// The images stored under `reference`, with a reader of their blobs; `None` when the
    /// store does not hold it.
    pub(crate) fn lookup(&self, reference: &str) -> Result<Option<ImageSource>> {
        let Some(stored) = self.inner.resolve(reference)? else {
            return Ok(None);
        };
        Ok(Some(ImageSource {
            reader: self.inner.shared_reader(),
            images: stored.images,
            origin: PathBuf::from(stored.reference),
            digest: Some(stored.descriptor.digest),
        }))
    }

    /// The store's directory, for messages.
    pub(crate) fn path(&self) -> &Path {
        self.inner.path()
    }
}

/// An image (one platform or several) and the reader of its blobs.
pub(crate) struct ImageSource {
    /// A package's own reader, or the store's (shared by every image read from it).
    pub(crate) reader: Arc<PackageReader>,
    /// Its images, manifests and configs verified.
    pub(crate) images: Vec<ImageRef>,
    /// What to call it in messages: its path or its reference.
    pub(crate) origin: PathBuf,
    /// The digest the store holds it under (`None` for a file or directory).
    pub(crate) digest: Option<crate::digest::Digest>,
}

/// Whether `name` names something on disk (relative to `base_dir`), rather than a reference.
fn local(name: &str, base_dir: &Path) -> Option<PathBuf> {
    let path = sources::local_path(name, base_dir);
    std::fs::symlink_metadata(&path).is_ok().then_some(path)
}

/// Open an image named in builder.toml: a `.cnb`/tar or layout directory (relative to
/// builder.toml), else a reference looked up in the store (`store`, opened from `store_dir`,
/// the `--store` given). `role` names it in messages.
pub(crate) fn open_image(
    name: &str,
    base_dir: &Path,
    store: Option<&ImageStore>,
    store_dir: Option<&Path>,
    role: &str,
) -> Result<ImageSource> {
    if let Some(path) = local(name, base_dir) {
        let reader = PackageReader::open(&path)?;
        let images = reader.images()?;
        return Ok(ImageSource {
            reader: Arc::new(reader),
            images,
            origin: path,
            digest: None,
        });
    }
    if looks_like_path(name) {
        return Err(Error::invalid(
            sources::local_path(name, base_dir),
            format!("{role} '{name}': no such file or directory"),
        ));
    }
    let reference = name.strip_prefix("docker://").unwrap_or(name);
    let pull = pull_command(store_dir, reference);
    match store {
        Some(store) => store.lookup(reference)?.ok_or_else(|| {
            Error::other(format!(
                "{role} '{name}' is neither a file nor a directory, and the store {} does not hold it; run `{pull}` first",
                store.path().display()
            ))
        }),
        None => Err(Error::other(format!(
            "{role} '{name}' is neither a file nor a directory, and there is no store to find it in; run `{pull}` first"
        ))),
    }
}

/// The `cnbpkg pull` command that puts `reference` into the store given (`--store`; `None`:
/// the default store), its words shell-quoted.
pub(crate) fn pull_command(store_dir: Option<&Path>, reference: &str) -> String {
    crate::package::StoreArg::of(store_dir).pull_command(&[reference.to_string()])
}

/// Whether a name that is not on disk was meant as a path, not a reference: `file://`,
/// absolute or `./`-relative, or a file name a package or archive has.
pub(crate) fn looks_like_path(name: &str) -> bool {
    name.starts_with("file://")
        || name.starts_with('/')
        || name.starts_with("./")
        || name.starts_with("../")
        || [".cnb", ".tgz", ".tar", ".tar.gz"]
            .iter()
            .any(|ext| name.ends_with(ext))
}

/// The platforms of an image source, for messages.
fn platforms_of(source: &ImageSource) -> String {
    let names: Vec<String> = source
        .images
        .iter()
        .map(|i| platform_name(&i.platform(), &i.descriptor.annotations))
        .collect();
    if names.is_empty() {
        "no image".into()
    } else {
        names.join(", ")
    }
}

/// What a builder target asks of an image.
fn request(t: &Target) -> PlatformRequest<'_> {
    PlatformRequest {
        os: &t.os,
        arch: &t.arch,
        variant: &t.variant,
        distro: None,
        blank_serves_any: true,
    }
}

/// The one image of `source` that serves target `t` (its index in `source.images`); an error
/// naming what it has otherwise.
pub(crate) fn select_image(source: &ImageSource, t: &Target, role: &str) -> Result<usize> {
    let want = request(t);
    let scored = source
        .images
        .iter()
        .enumerate()
        .filter_map(|(n, i)| {
            platform_fit(&i.platform(), None, &want).map(|s| (s, n, i.descriptor.digest))
        })
        .collect();
    match crate::cnb::best_fits(scored).as_slice() {
        [n] => Ok(*n),
        [] => Err(Error::other(format!(
            "{role} {} has no image for target {} (it has {})",
            source.origin.display(),
            t.display(),
            platforms_of(source)
        ))),
        _ => Err(Error::other(format!(
            "{role} {} has several images that fit target {} ({}); name the architecture in the target",
            source.origin.display(),
            t.display(),
            platforms_of(source)
        ))),
    }
}

/// Whether `source` has an image for target `t`.
pub(crate) fn serves(source: &ImageSource, t: &Target) -> bool {
    let want = request(t);
    source
        .images
        .iter()
        .any(|i| platform_fit(&i.platform(), None, &want).is_some())
}

/// The build image's config, as read: its `config` object (Env, User, ...) and platform.
pub(crate) struct BuildImage {
    /// The `config` object of its config.
    pub(crate) runtime: serde_json::Map<String, serde_json::Value>,
    /// Its config's other top-level fields (`author`, ...), which the builder keeps; those the
    /// image writer sets, and the build container's (`container`, `container_config`, which
    /// imgutil clears), left out.
    pub(crate) other: serde_json::Map<String, serde_json::Value>,
    /// Its platform.
    pub(crate) platform: Platform,
    /// `CNB_USER_ID`.
    pub(crate) uid: u32,
    /// `CNB_GROUP_ID`.
    pub(crate) gid: u32,
}

/// Read what a builder needs from the build image `image` of `source`: the build user (pack's
/// messages when it is missing or not an integer) and its runtime config.
pub(crate) fn build_image(source: &ImageSource, image: &ImageRef) -> Result<BuildImage> {
    let bad = |m: &str| Error::invalid(&source.origin, m.to_string());
    let config: serde_json::Value =
        serde_json::from_slice(&image.config_bytes).map_err(|e| bad(&e.to_string()))?;
    let runtime = match config.get("config") {
        Some(serde_json::Value::Object(m)) => m.clone(),
        Some(serde_json::Value::Null) | None => serde_json::Map::new(),
        Some(_) => return Err(bad("the image config's 'config' is not an object")),
    };
    let env: Vec<&str> = match runtime.get("Env") {
        Some(serde_json::Value::Array(list)) => list.iter().filter_map(|v| v.as_str()).collect(),
        _ => Vec::new(),
    };
    let name = source.origin.display().to_string();
    let id = |key: &str| -> Result<u32> {
        // The last definition wins, as in a container's environment.
        let value = env
            .iter()
            .rev()
            .find_map(|e| e.strip_prefix(key).and_then(|r| r.strip_prefix('=')))
            .unwrap_or_default();
        if value.is_empty() {
            // pack's exact text (compatibility).
            return Err(Error::other(format!(
                "image '{name}' missing required env var '{key}'"
            )));
        }
        value.parse::<u32>().map_err(|_| {
            Error::other(format!(
                "failed to parse '{key}', value '{value}' should be an integer"
            ))
        })
    };
    check_platform_agrees(source, image)?;
    let mut other = match config {
        serde_json::Value::Object(m) => m,
        _ => return Err(bad("the image config is not an object")),
    };
    const SET_HERE: [&str; 11] = [
        "architecture",
        "os",
        "os.version",
        "os.features",
        "variant",
        "rootfs",
        "history",
        "created",
        "config",
        "container",
        "container_config",
    ];
    // Go readers match keys without regard to case: a kept key that differs from another (or
    // from one the builder sets) only in case would stand for it.
    let clash = case_clash(other.keys(), &SET_HERE)
        .map(|c| (c, ""))
        .or_else(|| case_clash(runtime.keys(), &["WorkingDir", "Labels"]).map(|c| (c, "config.")));
    if let Some(((a, b), within)) = clash {
        return Err(bad(&format!(
            "the image config's keys '{within}{a}' and '{within}{b}' differ only in case, and Go readers take one for the other",
            a = crate::ui::quote_name(&a),
            b = crate::ui::quote_name(&b),
        )));
    }
    for key in SET_HERE {
        other.remove(key);
    }
    Ok(BuildImage {
        other,
        uid: id("CNB_USER_ID")?,
        gid: id("CNB_GROUP_ID")?,
        runtime,
        platform: image.platform(),
    })
}

/// Two of `keys` (or one of them and one of `set`, the keys the builder writes) that differ
/// only in case.
fn case_clash<'a>(
    keys: impl Iterator<Item = &'a String>,
    set: &[&str],
) -> Option<(String, String)> {
    let mut seen: BTreeMap<String, String> = set
        .iter()
        .map(|k| (k.to_lowercase(), k.to_string()))
        .collect();
    for key in keys {
        match seen.get(&key.to_lowercase()) {
            Some(prev) if prev != key => return Some((prev.clone(), key.clone())),
            Some(_) => {}
            None => {
                seen.insert(key.to_lowercase(), key.clone());
            }
        }
    }
    None
}

/// The platform an index gives an image must be its config's: the builder is made for the one
/// and holds the other's binaries.
fn check_platform_agrees(source: &ImageSource, image: &ImageRef) -> Result<()> {
    let Some(listed) = &image.descriptor.platform else {
        return Ok(());
    };
    let config = image.config.platform();
    let variants_agree =
        listed.variant.is_empty() || config.variant.is_empty() || listed.variant == config.variant;
    if listed.os == config.os && listed.architecture == config.architecture && variants_agree {
        return Ok(());
    }
    Err(Error::invalid(
        &source.origin,
        format!(
            "the build image's index lists an image {} as {}, but its config says {}",
            image.descriptor.digest,
            platform_name(listed, &Default::default()),
            platform_name(&config, &Default::default())
        ),
    ))
}

/// The build image's distro (its `io.buildpacks.base.distro.*` labels), when it names one.
pub(crate) fn image_distro(image: &ImageRef) -> Option<(String, String)> {
    let labels = image.config.labels();
    Some((
        labels.get(LABEL_DISTRO_NAME)?.clone(),
        labels
            .get(LABEL_DISTRO_VERSION)
            .cloned()
            .unwrap_or_default(),
    ))
}

/// When both the target and the build image name distros, the image's must be one of the
/// target's.
pub(crate) fn check_distro(source: &ImageSource, image: &ImageRef, t: &Target) -> Result<()> {
    let Some((name, version)) = image_distro(image) else {
        return Ok(());
    };
    if t.distros.is_empty()
        || t.distros
            .iter()
            .any(|d| d.name == name && (d.version.is_empty() || d.version == version))
    {
        return Ok(());
    }
    let wanted: Vec<String> = t.distros.iter().map(|d| d.folder_name()).collect();
    Err(Error::other(format!(
        "build image {} for target {} is {name}@{version}, which is none of the target's distros ({})",
        source.origin.display(),
        t.display(),
        wanted.join(", ")
    )))
}

/// The id and version of what a source holds (a tree's descriptor, a package's main
/// buildpack), for the `id`/`version` check.
fn main_module_of(dep: &Dependency) -> Option<(String, String)> {
    match dep {
        Dependency::Tree(t) => Some((
            t.descriptor.info.id.clone(),
            t.descriptor.info.version.clone(),
        )),
        Dependency::Package { images, .. } => images
            .first()
            .and_then(|i| crate::cnb::image_buildpack_key(&i.config)),
    }
}

/// `id` and `version` given in builder.toml must be the module's (pack's messages).
pub(crate) fn check_declared(m: &ModuleSource, dep: &Dependency) -> Result<()> {
    let Some((id, version)) = main_module_of(dep) else {
        return Ok(());
    };
    if let Some(want) = m.id.as_deref().filter(|s| !s.is_empty()) {
        if want != id {
            return Err(Error::other(format!(
                "buildpack from URI '{}' has ID '{id}' which does not match ID '{want}' from builder config",
                m.uri
            )));
        }
    }
    if let Some(want) = m.version.as_deref().filter(|s| !s.is_empty()) {
        if want != version {
            return Err(Error::other(format!(
                "buildpack from URI '{}' has version '{version}' which does not match version '{want}' from builder config",
                m.uri
            )));
        }
    }
    Ok(())
}

/// What the build image offers a buildpack's `[[stacks]]`: its `io.buildpacks.stack.id` and
/// `io.buildpacks.stack.mixins`.
pub(crate) struct ImageStack {
    pub(crate) id: String,
    pub(crate) mixins: Vec<String>,
}

impl ImageStack {
    /// The stack of `image` (its labels; none: an empty id and no mixins).
    pub(crate) fn of(image: &ImageRef) -> ImageStack {
        let labels = image.config.labels();
        ImageStack {
            id: labels.get(LABEL_STACK_ID).cloned().unwrap_or_default(),
            mixins: labels
                .get(crate::cnb::LABEL_MIXINS)
                .and_then(|m| serde_json::from_str::<Option<Vec<String>>>(m).ok())
                .flatten()
                .unwrap_or_default(),
        }
    }
}

/// pack's `EnsureStackSupport` at builder creation: a buildpack declaring stacks must name the
/// build image's (or `*`), and the image must provide its mixins (`run:` ones are not checked).
fn ensure_stack_support(d: &BuildpackDescriptor, stack: &ImageStack) -> Result<()> {
    if d.stacks.is_empty() {
        return Ok(());
    }
    let name = d.info.full_name();
    let Some(found) = d.stacks.iter().find(|s| s.id == stack.id || s.id == "*") else {
        // pack's exact text (compatibility).
        return Err(Error::other(format!(
            "buildpack '{name}' does not support stack '{}'",
            stack.id
        )));
    };
    let mut missing: Vec<&str> = found
        .mixins
        .iter()
        .filter(|m| !m.starts_with("run:") && !stack.mixins.contains(m))
        .map(String::as_str)
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    missing.sort_unstable();
    missing.dedup();
    Err(Error::other(format!(
        "buildpack '{name}' requires missing mixin(s): {}",
        missing.join(", ")
    )))
}

/// The lifecycle's Buildpack APIs, for [`check_module`].
pub(crate) struct LifecycleApis<'a> {
    pub(crate) version: &'a str,
    pub(crate) supported: &'a [String],
    pub(crate) deprecated: &'a [String],
}

/// The build image as [`check_module`] sees it.
pub(crate) struct ImageFacts<'a> {
    pub(crate) platform: &'a Platform,
    pub(crate) distro: Option<&'a (String, String)>,
    pub(crate) stack: &'a ImageStack,
}

/// pack's checks of one module against the builder (`validateBuildpacks`): its Buildpack API
/// among the lifecycle's, a composite's group members on the builder, and otherwise its stacks
/// and mixins (`EnsureStackSupport`) and targets (`EnsureTargetSupport`) supported by the
/// build image. Deprecated APIs warn.
pub(crate) fn check_module(
    module: &ModulePlan,
    on_builder: &BTreeSet<String>,
    lifecycle: &LifecycleApis<'_>,
    image: &ImageFacts<'_>,
    events: &dyn Events,
) -> Result<()> {
    let d = &module.descriptor;
    let name = d.info.full_name();
    let kind = match d.kind {
        crate::descriptor::ModuleKind::Buildpack => "buildpack",
        crate::descriptor::ModuleKind::Extension => "extension",
    };
    if lifecycle.deprecated.contains(&d.api) {
        let title = match d.kind {
            crate::descriptor::ModuleKind::Buildpack => "Buildpack",
            crate::descriptor::ModuleKind::Extension => "Extension",
        };
        // pack's exact text (compatibility).
        events.warning(&format!(
            "{title} '{name}' is using deprecated Buildpacks API version '{}'",
            d.api
        ));
    } else if !lifecycle.supported.contains(&d.api) {
        // pack's exact text (compatibility).
        return Err(Error::other(format!(
            "{kind} '{name}' (Buildpack API {}) is incompatible with lifecycle '{}' (Buildpack API(s) {})",
            d.api,
            lifecycle.version,
            lifecycle.supported.join(", ")
        )));
    }
    if d.is_composite() {
        for entry in &d.order {
            for r in &entry.group {
                let member = format!("{}@{}", r.info.id, r.info.version);
                if !on_builder.contains(&member) {
                    return Err(Error::other(format!(
                        "buildpack '{member}' not found on the builder"
                    )));
                }
            }
        }
        return Ok(());
    }
    if d.kind == crate::descriptor::ModuleKind::Extension {
        return Ok(());
    }
    ensure_stack_support(d, image.stack)?;
    ensure_target_support(d, image.platform, image.distro)
}

/// pack's `EnsureTargetSupport`: a module declaring targets must have one for the build
/// image's os and architecture (an empty architecture on either side serves any) and distro.
pub(crate) fn ensure_target_support(
    d: &BuildpackDescriptor,
    image: &Platform,
    distro: Option<&(String, String)>,
) -> Result<()> {
    if d.targets.is_empty() {
        return Ok(());
    }
    let (distro_name, distro_version) = distro.cloned().unwrap_or_default();
    let fits = d.targets.iter().any(|bt| {
        bt.os == image.os
            && (bt.arch.is_empty()
                || image.architecture.is_empty()
                || bt.arch == image.architecture)
            && (bt.distros.is_empty()
                || distro_name.is_empty()
                || distro_version.is_empty()
                || bt
                    .distros
                    .iter()
                    .any(|x| x.name == distro_name && x.version == distro_version))
    });
    if fits {
        return Ok(());
    }
    #[derive(serde::Serialize)]
    struct OsDistribution<'a> {
        #[serde(skip_serializing_if = "str::is_empty")]
        name: &'a str,
        #[serde(skip_serializing_if = "str::is_empty")]
        version: &'a str,
    }
    #[derive(serde::Serialize)]
    struct ImageTarget<'a> {
        os: &'a str,
        arch: &'a str,
        distribution: OsDistribution<'a>,
    }
    let image_json = crate::json::go_marshal(&ImageTarget {
        os: &image.os,
        arch: &image.architecture,
        distribution: OsDistribution {
            name: &distro_name,
            version: &distro_version,
        },
    });
    // pack's exact text (compatibility).
    Err(Error::other(format!(
        "unable to satisfy target os/arch constraints; build image: {image_json}, buildpack '{}': {}",
        d.info.full_name(),
        crate::json::go_marshal(&d.targets)
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::descriptor::Stack;

    fn descriptor(targets: &[(&str, &str)], stacks: &[(&str, &[&str])]) -> BuildpackDescriptor {
        let mut d = BuildpackDescriptor::default();
        d.info.id = "acme/a".into();
        d.info.version = "1".into();
        d.targets = targets
            .iter()
            .map(|(os, arch)| crate::target::Target {
                os: os.to_string(),
                arch: arch.to_string(),
                ..Default::default()
            })
            .collect();
        d.stacks = stacks
            .iter()
            .map(|(id, mixins)| Stack {
                id: id.to_string(),
                mixins: mixins.iter().map(|m| m.to_string()).collect(),
            })
            .collect();
        d
    }

    fn platform(arch: &str) -> Platform {
        Platform {
            os: "linux".into(),
            architecture: arch.into(),
            ..Default::default()
        }
    }

    /// pack's `EnsureTargetSupport`: no targets serve all; os must match, an empty arch on
    /// either side serves any; the message is pack's.
    #[test]
    fn target_support_table() {
        type Row<'a> = (&'a [(&'a str, &'a str)], &'a str, bool);
        let table: &[Row<'_>] = &[
            (&[], "arm64", true),
            (&[("linux", "amd64")], "amd64", true),
            (&[("linux", "")], "arm64", true),
            (&[("linux", "amd64")], "", true),
            (&[("linux", "amd64")], "arm64", false),
            (&[("windows", "amd64")], "amd64", false),
        ];
        for (targets, arch, fits) in table {
            let got = ensure_target_support(&descriptor(targets, &[]), &platform(arch), None);
            assert_eq!(got.is_ok(), *fits, "{targets:?} on {arch}");
        }
        let e = ensure_target_support(
            &descriptor(&[("linux", "arm64")], &[]),
            &platform("amd64"),
            Some(&("ubuntu".into(), "22.04".into())),
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("unable to satisfy target os/arch constraints; build image: {\"os\":\"linux\",\"arch\":\"amd64\",\"distribution\":{\"name\":\"ubuntu\",\"version\":\"22.04\"}}, buildpack 'acme/a@1': [{\"os\":\"linux\",\"arch\":\"arm64\"}]"),
            "{e}"
        );
    }

    /// pack's `EnsureStackSupport`: the image's stack (or `*`), its mixins present (`run:`
    /// ones ignored), with pack's messages.
    #[test]
    fn stack_support_table() {
        let image = ImageStack {
            id: "io.x".into(),
            mixins: vec!["a".into(), "build:b".into()],
        };
        type Row<'a> = (&'a [(&'a str, &'a [&'a str])], Option<&'a str>);
        let table: &[Row<'_>] = &[
            (&[], None),
            (&[("io.x", &["a", "run:z"])], None),
            (&[("*", &["build:b"])], None),
            (
                &[("io.y", &[])],
                Some("buildpack 'acme/a@1' does not support stack 'io.x'"),
            ),
            (
                &[("io.x", &["c", "a", "build:d"])],
                Some("buildpack 'acme/a@1' requires missing mixin(s): build:d, c"),
            ),
        ];
        for (stacks, expected) in table {
            let got = ensure_stack_support(&descriptor(&[], stacks), &image);
            match expected {
                None => assert!(got.is_ok(), "{stacks:?}: {got:?}"),
                Some(m) => assert_eq!(got.unwrap_err().to_string(), *m, "{stacks:?}"),
            }
        }
    }

    /// Names meant as paths are not references.
    #[test]
    fn path_like_names() {
        for name in [
            "./x",
            "../x",
            "/x",
            "file:///x",
            "x.cnb",
            "x.tgz",
            "a/b.tar",
        ] {
            assert!(looks_like_path(name), "{name}");
        }
        for name in ["example.com/run:1", "paketobuildpacks/go", "docker://x/y:1"] {
            assert!(!looks_like_path(name), "{name}");
        }
    }
}
