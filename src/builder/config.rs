//! `builder.toml` as pack reads it: keys, stack merging, validation and warnings with pack's
//! texts, and the exact bytes of the files and labels pack derives from it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::descriptor::{
    classify_info, classify_targets, reject_unknown_keys, toml_error, Class, ModuleInfo,
    ModuleKind, RawInfo, RawTarget, IMAGE_KEY_DEPRECATED,
};
use crate::error::{Error, Result};
use crate::json::go_marshal;
use crate::target::Target;

pub use crate::descriptor::ModuleRef;

/// An `[[order]]` entry: one group of module references (pack's `dist.OrderEntry`).
pub type OrderGroup = crate::descriptor::OrderEntry;

/// A decoded, merged and validated `builder.toml`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct BuilderConfig {
    /// `builder.toml` as given.
    pub path: PathBuf,
    /// Its directory: relative paths in it resolve against this.
    pub base_dir: PathBuf,
    /// `description`.
    pub description: String,
    /// `[[buildpacks]]`.
    pub buildpacks: Vec<ModuleSource>,
    /// `[[extensions]]`.
    pub extensions: Vec<ModuleSource>,
    /// `[[order]]`, as written (versions may be missing; see [`resolve_order`]).
    pub order: Vec<OrderGroup>,
    /// `[[order-extensions]]`, as written, with `optional` cleared as pack clears it.
    pub order_extensions: Vec<OrderGroup>,
    /// `[build] image`, after pack's merge with `[stack] build-image`.
    pub build_image: String,
    /// `[[build.env]]`.
    pub build_env: Vec<BuildEnvVar>,
    /// `[[run.images]]`, after pack's merge with `[stack]`; at least one.
    pub run_images: Vec<RunImage>,
    /// The deprecated `[stack]` table when given, after the merge.
    pub stack: Option<StackConfig>,
    /// `[lifecycle]`.
    pub lifecycle: LifecycleSpec,
    /// `[system]`, when it names any buildpack.
    pub system: Option<SystemConfig>,
    /// `[[targets]]` (or the `--target` values that replace them).
    pub targets: Vec<Target>,
    /// pack's warnings, without its `Warning: ` prefix (empty order, `image` key, ...).
    pub warnings: Vec<String>,
}

/// A `[[buildpacks]]` or `[[extensions]]` entry (pack's `ModuleConfig`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ModuleSource {
    /// `uri`, or `docker://<image>` for the deprecated `image` key.
    pub uri: String,
    /// Whether `uri` came from the deprecated `image` key.
    pub from_image_key: bool,
    /// `id`, when given (non-empty): the module found must have it.
    pub id: Option<String>,
    /// `version`, when given (non-empty): the module found must have it.
    pub version: Option<String>,
    /// The whole entry's module keys (`id`, `version`, `name`, ...), as pack keeps them.
    pub info: crate::descriptor::ModuleInfo,
}

/// A run image (`[[run.images]]`): its name and mirrors, recorded by name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunImage {
    /// The image reference.
    pub image: String,
    /// Mirrors of it (empty means none, `null` in pack's labels).
    pub mirrors: Vec<String>,
}

/// The deprecated `[stack]` table, after pack's merge with `[build]` and `[[run.images]]`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StackConfig {
    /// `id`.
    pub id: String,
    /// `build-image` (the merged build image).
    pub build_image: String,
    /// `run-image` (the first run image after the merge).
    pub run_image: String,
    /// `run-image-mirrors`.
    pub run_image_mirrors: Vec<String>,
}

/// Where the lifecycle comes from (`[lifecycle]`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum LifecycleSpec {
    /// Neither key: pack's default version (see [`crate::builder::lifecycle::DEFAULT_VERSION`]).
    #[default]
    Default,
    /// `version = "X"`: `docker.io/buildpacksio/lifecycle:X` from the store.
    Version(String),
    /// `uri = "..."`: a `.tgz` (with `{arch}` replaced per target), a lifecycle image path, or
    /// a reference in the store (`docker://` or bare, as for the build image).
    Uri(String),
}

/// `[system]`: buildpacks run before (`pre`) and after (`post`) the order's groups.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SystemConfig {
    /// `[[system.pre.buildpacks]]`.
    pub pre: Vec<ModuleRef>,
    /// `[[system.post.buildpacks]]`.
    pub post: Vec<ModuleRef>,
}

/// How a build-config variable applies (`suffix`), which names its file.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum EnvSuffix {
    /// No suffix: the file is `NAME` (a default, by the Platform spec).
    #[default]
    None,
    /// `default`: `NAME.default`.
    Default,
    /// `override`: `NAME.override`.
    Override,
    /// `append`: `NAME.append` (needs a `delim`).
    Append,
    /// `prepend`: `NAME.prepend` (needs a `delim`).
    Prepend,
}

/// A `[[build.env]]` entry.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct BuildEnvVar {
    /// `name` (a file name under `/cnb/build-config/env`, checked).
    pub name: String,
    /// `value`.
    pub value: String,
    /// `suffix`.
    pub suffix: EnvSuffix,
    /// `delim`, when given (non-empty): written to `NAME.delim`.
    pub delim: Option<String>,
    /// `exec-env` (parsed, unused, as in pack).
    pub exec_env: Vec<String>,
}

impl EnvSuffix {
    /// The file name suffix (`.append`, ...; empty for [`EnvSuffix::None`]).
    pub fn file_suffix(self) -> &'static str {
        match self {
            EnvSuffix::None => "",
            EnvSuffix::Default => ".default",
            EnvSuffix::Override => ".override",
            EnvSuffix::Append => ".append",
            EnvSuffix::Prepend => ".prepend",
        }
    }

    /// The `suffix` value as written in `builder.toml`.
    pub fn as_str(self) -> &'static str {
        self.file_suffix().trim_start_matches('.')
    }
}

// ---------------------------------------------------------------------------------------------
// Bounds: a real builder.toml is a few kilobytes; these only stop crafted ones.

/// The largest `builder.toml` read.
pub const MAX_CONFIG_BYTES: u64 = 1 << 20;
/// The most `[[buildpacks]]` plus `[[extensions]]` entries.
pub const MAX_MODULES: usize = 1024;
/// The most module references in all order groups and `[system]` together.
pub const MAX_REFS: usize = 16 * 1024;
/// The most run images, and mirrors of each.
pub const MAX_RUN_IMAGES: usize = 256;
/// The most `[[build.env]]` entries.
pub const MAX_ENV: usize = 1024;
/// The most targets (from `[[targets]]` or the `--target` values).
pub const MAX_TARGETS: usize = 64;
/// The longest file name a build-config variable may give (Linux `NAME_MAX`).
const MAX_FILE_NAME: usize = 255;

// ---------------------------------------------------------------------------------------------
// Decoding

#[derive(Deserialize)]
struct RawConfig {
    description: Option<String>,
    buildpacks: Option<Vec<RawModuleConfig>>,
    extensions: Option<Vec<RawModuleConfig>>,
    order: Option<Vec<RawOrder>>,
    #[serde(rename = "order-extensions")]
    order_extensions: Option<Vec<RawOrder>>,
    stack: Option<RawStack>,
    lifecycle: Option<RawLifecycle>,
    run: Option<RawRun>,
    build: Option<RawBuild>,
    targets: Option<Vec<RawTarget>>,
    system: Option<RawSystem>,
}

#[derive(Deserialize)]
struct RawModuleConfig {
    uri: Option<String>,
    image: Option<String>,
    #[serde(flatten)]
    info: RawInfo,
}

#[derive(Deserialize)]
struct RawOrder {
    group: Option<Vec<RawInfo>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "kebab-case")]
struct RawStack {
    id: Option<String>,
    build_image: Option<String>,
    run_image: Option<String>,
    run_image_mirrors: Option<Vec<String>>,
}

#[derive(Deserialize)]
struct RawLifecycle {
    uri: Option<String>,
    version: Option<String>,
}

#[derive(Deserialize)]
struct RawRun {
    images: Option<Vec<RawRunImage>>,
}

#[derive(Deserialize)]
struct RawRunImage {
    image: Option<String>,
    mirrors: Option<Vec<String>>,
}

#[derive(Deserialize)]
struct RawBuild {
    image: Option<String>,
    env: Option<Vec<RawEnv>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "kebab-case")]
struct RawEnv {
    name: Option<String>,
    value: Option<String>,
    suffix: Option<String>,
    delim: Option<String>,
    exec_env: Option<Vec<String>>,
}

#[derive(Deserialize)]
struct RawSystem {
    pre: Option<RawSystemBuildpacks>,
    post: Option<RawSystemBuildpacks>,
}

#[derive(Deserialize)]
struct RawSystemBuildpacks {
    buildpacks: Option<Vec<RawInfo>>,
}

/// The keys pack's `builder.Config` decodes (anything else is refused, as pack refuses it).
fn classify_builder(path: &[String]) -> Class {
    let Some(first) = path.first() else {
        return Class::Table;
    };
    let rest: Vec<&str> = path[1..].iter().map(String::as_str).collect();
    match (first.as_str(), rest.as_slice()) {
        ("description", []) => Class::Leaf,
        ("buildpacks" | "extensions", []) => Class::Table,
        ("buildpacks" | "extensions", ["uri" | "image"]) => Class::Leaf,
        ("buildpacks" | "extensions", _) => classify_info(&path[1..], false),
        ("order" | "order-extensions", [] | ["group"]) => Class::Table,
        ("order" | "order-extensions", ["group", ..]) => classify_info(&path[2..], true),
        ("stack", []) => Class::Table,
        ("stack", ["id" | "build-image" | "run-image" | "run-image-mirrors"]) => Class::Leaf,
        ("lifecycle", []) => Class::Table,
        ("lifecycle", ["uri" | "version"]) => Class::Leaf,
        ("run", [] | ["images"]) => Class::Table,
        ("run", ["images", "image" | "mirrors"]) => Class::Leaf,
        ("build", [] | ["env"]) => Class::Table,
        ("build", ["image"]) => Class::Leaf,
        ("build", ["env", "name" | "value" | "suffix" | "delim" | "exec-env"]) => Class::Leaf,
        ("targets", _) => classify_targets(&path[1..], false),
        ("system", [] | ["pre" | "post"] | ["pre" | "post", "buildpacks"]) => Class::Table,
        ("system", ["pre" | "post", "buildpacks", ..]) => classify_info(&path[3..], true),
        _ => Class::Unknown,
    }
}

/// Read, merge and validate `builder.toml` with pack's rules and messages (see [`parse`]).
pub fn read(path: &Path) -> Result<BuilderConfig> {
    let bytes = crate::input::read_bytes(path, MAX_CONFIG_BYTES)?;
    let text = String::from_utf8(bytes)
        .map_err(|_| Error::invalid(path, "decoding toml contents: the file is not UTF-8"))?;
    parse(path, &text)
}

/// [`read`] on text already read; `path` names the file in messages and gives `base_dir`.
///
/// pack's rules (`ReadConfig`, `ValidateConfig`, `ParseBuildConfigEnv`, `fetchLifecycle`):
/// unknown keys are an error; an empty order only warns; `[stack]` is merged with `[build]`
/// and `[[run.images]]`; a build image and a run image are required; `[lifecycle]` takes
/// `version` (semver) or `uri`, not both; `[[build.env]]` names and suffixes are checked.
/// Beyond pack: names that become files are checked, counts are bounded, and Windows targets
/// are refused (the lifecycle no longer ships Windows builds).
pub fn parse(path: &Path, text: &str) -> Result<BuilderConfig> {
    let decode_err = |msg: String| Error::invalid(path, format!("decoding toml contents: {msg}"));
    let doc = toml::de::DeTable::parse(text).map_err(|e| decode_err(toml_error(text, &e)))?;
    reject_unknown_keys(doc.get_ref(), classify_builder, path)?;
    let raw: RawConfig = toml::from_str(text).map_err(|e| decode_err(toml_error(text, &e)))?;

    let mut warnings = Vec::new();
    let base_dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let buildpacks = module_sources(path, "buildpacks", raw.buildpacks, &mut warnings)?;
    let extensions = module_sources(path, "extensions", raw.extensions, &mut warnings)?;
    if buildpacks.len() + extensions.len() > MAX_MODULES {
        return Err(Error::invalid(
            path,
            format!("more than {MAX_MODULES} [[buildpacks]] and [[extensions]] entries"),
        ));
    }
    let order = order_groups(raw.order, false);
    let order_extensions = order_groups(raw.order_extensions, true);
    if order.is_empty() {
        warnings.push("builder configuration: empty 'order' definition".to_string());
    }
    let system = raw.system.map(|s| SystemConfig {
        pre: system_refs(s.pre),
        post: system_refs(s.post),
    });
    let system = system.filter(|s| !s.pre.is_empty() || !s.post.is_empty());
    let refs = order.iter().map(|g| g.group.len()).sum::<usize>()
        + order_extensions
            .iter()
            .map(|g| g.group.len())
            .sum::<usize>()
        + system.as_ref().map_or(0, |s| s.pre.len() + s.post.len());
    if refs > MAX_REFS {
        return Err(Error::invalid(
            path,
            format!("more than {MAX_REFS} module references in [[order]], [[order-extensions]] and [system]"),
        ));
    }

    let (build_image, run_images, stack) = merge_stack(raw.build.as_ref(), raw.run, raw.stack);
    let build_env = build_env(path, raw.build.and_then(|b| b.env), &mut warnings)?;
    let lifecycle = lifecycle_spec(raw.lifecycle)?;
    let mut cfg = BuilderConfig {
        path: path.to_path_buf(),
        base_dir,
        description: raw.description.unwrap_or_default(),
        buildpacks,
        extensions,
        order,
        order_extensions,
        build_image,
        build_env,
        run_images,
        stack,
        lifecycle,
        system,
        targets: Vec::new(),
        warnings,
    };
    validate(&cfg)?;
    let targets: Vec<Target> = raw
        .targets
        .unwrap_or_default()
        .into_iter()
        .map(RawTarget::into_target)
        .collect();
    for t in &targets {
        crate::target::check_configured_target(t)
            .map_err(|e| Error::invalid(path, format!("[[targets]]: {e}")))?;
    }
    cfg.set_targets(targets)?;
    Ok(cfg)
}

/// `[[buildpacks]]`/`[[extensions]]` entries; the deprecated `image` key becomes a `docker://`
/// URI with pack's warning (pack uses `image` only when `uri` is empty).
fn module_sources(
    path: &Path,
    table: &str,
    raw: Option<Vec<RawModuleConfig>>,
    warnings: &mut Vec<String>,
) -> Result<Vec<ModuleSource>> {
    let mut out = Vec::new();
    for (i, m) in raw.unwrap_or_default().into_iter().enumerate() {
        let uri = m.uri.unwrap_or_default();
        let image = m.image.unwrap_or_default();
        let (uri, from_image_key) = if !uri.is_empty() {
            (uri, false)
        } else if !image.is_empty() {
            // pack warns as it downloads each such module.
            warnings.push(IMAGE_KEY_DEPRECATED.to_string());
            (format!("docker://{image}"), true)
        } else {
            return Err(Error::invalid(
                path,
                format!("[[{table}]] entry {} has no 'uri'", i + 1),
            ));
        };
        let (info, _) = m.info.into_info();
        let given = |s: &str| (!s.is_empty()).then(|| s.to_string());
        out.push(ModuleSource {
            uri,
            from_image_key,
            id: given(&info.id),
            version: given(&info.version),
            info,
        });
    }
    Ok(out)
}

fn module_ref(raw: RawInfo) -> ModuleRef {
    let (info, optional) = raw.into_info();
    ModuleRef { info, optional }
}

/// Order groups; for extensions `optional` is cleared, as pack's `SetOrderExtensions` does
/// (extensions are always optional), which its label then shows too.
fn order_groups(raw: Option<Vec<RawOrder>>, extensions: bool) -> Vec<OrderGroup> {
    raw.unwrap_or_default()
        .into_iter()
        .map(|o| OrderGroup {
            group: o
                .group
                .unwrap_or_default()
                .into_iter()
                .map(|r| {
                    let mut r = module_ref(r);
                    if extensions {
                        r.optional = false;
                    }
                    r
                })
                .collect(),
        })
        .collect()
}

fn system_refs(raw: Option<RawSystemBuildpacks>) -> Vec<ModuleRef> {
    raw.and_then(|b| b.buildpacks)
        .unwrap_or_default()
        .into_iter()
        .map(module_ref)
        .collect()
}

/// pack's `mergeStackWithImages` (RFC 0096): `build.image` wins over `stack.build-image` and
/// fills it; the first run image fills `stack.run-image`, or `stack.run-image` becomes the one
/// run image.
fn merge_stack(
    build: Option<&RawBuild>,
    run: Option<RawRun>,
    stack: Option<RawStack>,
) -> (String, Vec<RunImage>, Option<StackConfig>) {
    let mut stack_cfg = stack.map(|s| StackConfig {
        id: s.id.unwrap_or_default(),
        build_image: s.build_image.unwrap_or_default(),
        run_image: s.run_image.unwrap_or_default(),
        run_image_mirrors: s.run_image_mirrors.unwrap_or_default(),
    });
    let mut build_image = build.and_then(|b| b.image.clone()).unwrap_or_default();
    let mut run_images: Vec<RunImage> = run
        .and_then(|r| r.images)
        .unwrap_or_default()
        .into_iter()
        .map(|r| RunImage {
            image: r.image.unwrap_or_default(),
            mirrors: r.mirrors.unwrap_or_default(),
        })
        .collect();
    if let Some(s) = stack_cfg.as_mut() {
        if !build_image.is_empty() {
            s.build_image = build_image.clone();
        } else {
            build_image = s.build_image.clone();
        }
        if let Some(first) = run_images.first() {
            s.run_image = first.image.clone();
            s.run_image_mirrors = first.mirrors.clone();
        } else if !s.run_image.is_empty() {
            run_images.push(RunImage {
                image: s.run_image.clone(),
                mirrors: s.run_image_mirrors.clone(),
            });
        }
    }
    (build_image, run_images, stack_cfg)
}

/// pack's `ValidateConfig` (after the merge), plus bounds; messages wrapped as pack's
/// `validateConfig` wraps them.
fn validate(cfg: &BuilderConfig) -> Result<()> {
    let invalid = |m: &str| Error::invalid(&cfg.path, format!("invalid builder config: {m}"));
    if cfg.build_image.is_empty() {
        return Err(invalid("build.image is required"));
    }
    if let Some(s) = &cfg.stack {
        if !s.build_image.is_empty() && s.build_image != cfg.build_image {
            return Err(invalid("build.image and stack.build-image do not match"));
        }
    }
    if cfg.run_images.is_empty() {
        return Err(invalid("run.images are required"));
    }
    if cfg.run_images.iter().any(|r| r.image.is_empty()) {
        return Err(invalid("run.images.image is required"));
    }
    if let Some(s) = &cfg.stack {
        if !s.run_image.is_empty() && cfg.run_images[0].image != s.run_image {
            return Err(invalid("run.images and stack.run-image do not match"));
        }
    }
    if cfg.run_images.len() > MAX_RUN_IMAGES
        || cfg
            .run_images
            .iter()
            .any(|r| r.mirrors.len() > MAX_RUN_IMAGES)
    {
        return Err(Error::invalid(
            &cfg.path,
            format!("more than {MAX_RUN_IMAGES} run images, or mirrors of one"),
        ));
    }
    Ok(())
}

/// `[lifecycle]`: `version` or `uri`, not both (pack's `fetchLifecycle` messages); a version
/// must be semver.
fn lifecycle_spec(raw: Option<RawLifecycle>) -> Result<LifecycleSpec> {
    let Some(raw) = raw else {
        return Ok(LifecycleSpec::Default);
    };
    let uri = raw.uri.unwrap_or_default();
    let version = raw.version.unwrap_or_default();
    match (version.is_empty(), uri.is_empty()) {
        (false, false) => Err(Error::other(
            "'lifecycle' can only declare 'version' or 'uri', not both",
        )),
        (false, true) => {
            if !is_semver(&version) {
                return Err(Error::other(
                    "'lifecycle.version' must be a valid semver: Invalid Semantic Version",
                ));
            }
            Ok(LifecycleSpec::Version(version))
        }
        (true, false) => Ok(LifecycleSpec::Uri(uri)),
        (true, true) => Ok(LifecycleSpec::Default),
    }
}

/// Whether `v` parses as Masterminds' `semver.NewVersion` accepts it (pack's check): `v`
/// optional, one to three numeric parts, then `-prerelease` and `+metadata` of dot-separated
/// `[0-9A-Za-z-]` identifiers.
pub(crate) fn is_semver(v: &str) -> bool {
    let v = v.strip_prefix('v').unwrap_or(v);
    let (rest, meta) = match v.split_once('+') {
        Some((r, m)) => (r, Some(m)),
        None => (v, None),
    };
    let (core, pre) = match rest.split_once('-') {
        Some((c, p)) => (c, Some(p)),
        None => (rest, None),
    };
    let idents = |s: &str| {
        s.split('.')
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'))
    };
    let parts: Vec<&str> = core.split('.').collect();
    (1..=3).contains(&parts.len())
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
        && pre.is_none_or(idents)
        && meta.is_none_or(idents)
}

// ---------------------------------------------------------------------------------------------
// [[build.env]]

/// Why a build-config variable name cannot name a file under `/cnb/build-config/env`.
fn env_name_problem(name: &str) -> Option<&'static str> {
    if name == "." || name == ".." {
        Some("is '.' or '..'")
    } else if name.contains('/') {
        Some("contains '/'")
    } else if name.contains('\0') {
        Some("contains a NUL character")
    } else if name.chars().any(char::is_control) {
        Some("contains a control character")
    } else if name.starts_with(".wh.") {
        // In a layer, `.wh.X` is no file: it deletes `X` (`.wh..wh..opq`, the whole
        // directory) of the layers below.
        Some("starts with '.wh.', which makes a whiteout in an image layer")
    } else if name.len() + ".override".len() > MAX_FILE_NAME {
        Some("is too long for a file name")
    } else {
        None
    }
}

fn env_suffix(s: &str) -> Option<EnvSuffix> {
    Some(match s {
        "" => EnvSuffix::None,
        "default" => EnvSuffix::Default,
        "override" => EnvSuffix::Override,
        "append" => EnvSuffix::Append,
        "prepend" => EnvSuffix::Prepend,
        _ => return None,
    })
}

/// pack's `ParseBuildConfigEnv`: its errors and warnings, with names checked as file names.
fn build_env(
    path: &Path,
    raw: Option<Vec<RawEnv>>,
    warnings: &mut Vec<String>,
) -> Result<Vec<BuildEnvVar>> {
    let raw = raw.unwrap_or_default();
    if raw.len() > MAX_ENV {
        return Err(Error::invalid(
            path,
            format!("more than {MAX_ENV} [[build.env]] entries"),
        ));
    }
    let context = format!("parse contents of '{}'", path.display());
    let mut vars = Vec::new();
    for e in raw {
        let name = e.name.unwrap_or_default();
        if name.is_empty() {
            return Err(Error::other(format!(
                "{context}: env name should not be empty"
            )));
        }
        if let Some(why) = env_name_problem(&name) {
            return Err(Error::invalid(
                path,
                format!(
                    "[[build.env]] name '{}' {why}: it names a file in /cnb/build-config/env",
                    crate::ui::quote_name(&name)
                ),
            ));
        }
        let suffix_text = e.suffix.unwrap_or_default();
        let Some(suffix) = env_suffix(&suffix_text) else {
            return Err(Error::other(format!(
                "unknown action type '{}'",
                crate::ui::quote_name(&suffix_text)
            )));
        };
        let value = e.value.unwrap_or_default();
        if value.is_empty() {
            warnings.push(format!("empty value for key/name '{name}'"));
        }
        vars.push(BuildEnvVar {
            name,
            value,
            suffix,
            delim: e.delim.filter(|d| !d.is_empty()),
            exec_env: e.exec_env.unwrap_or_default(),
        });
    }
    let files = env_file_map(&vars, Some((&context, warnings)));
    let mut missing_delim = false;
    for v in &vars {
        let needs = matches!(v.suffix, EnvSuffix::Append | EnvSuffix::Prepend);
        if needs && !files.contains_key(&format!("{}.delim", v.name)) {
            warnings.push(format!(
                "{context}: env with name/key '{}' with suffix '{}' must to have a 'delim' value",
                v.name,
                v.suffix.as_str()
            ));
            missing_delim = true;
        }
    }
    if missing_delim {
        return Err(Error::other(format!(
            "error parsing [[build.env]] in file '{}'",
            path.display()
        )));
    }
    Ok(vars)
}

/// The env files, later entries overriding earlier ones as in pack's map; with `warn`, pack's
/// override warnings.
fn env_file_map(
    vars: &[BuildEnvVar],
    mut warn: Option<(&str, &mut Vec<String>)>,
) -> BTreeMap<String, String> {
    let mut files: BTreeMap<String, String> = BTreeMap::new();
    for v in vars {
        let file = format!("{}{}", v.name, v.suffix.file_suffix());
        let delim_file = format!("{}.delim", v.name);
        if let Some((context, warnings)) = warn.as_mut() {
            if let Some(old) = files.get(&file) {
                warnings.push(format!(
                    "{context}: overriding env with name: '{}' and suffix: '{}' from '{old}' to '{}'",
                    v.name,
                    v.suffix.as_str(),
                    v.value
                ));
            }
            if let Some(old) = files.get(&delim_file) {
                warnings.push(format!(
                    "{context}: overriding env with name: '{}' and delim: '{}' from '{old}' to '{}'",
                    v.name,
                    v.delim.as_deref().unwrap_or(""),
                    v.value
                ));
            }
        }
        if let Some(d) = &v.delim {
            files.insert(delim_file, d.clone());
        }
        files.insert(file, v.value.clone());
    }
    files
}

impl BuilderConfig {
    /// `[[build.env]]` as `/cnb/build-config/env/` files: (file name, contents), sorted by name
    /// (pack writes them in Go map order).
    pub fn build_env_files(&self) -> Result<Vec<(String, Vec<u8>)>> {
        Ok(env_file_map(&self.build_env, None)
            .into_iter()
            .map(|(k, v)| (k, v.into_bytes()))
            .collect())
    }

    /// Whether the builder has image extensions (`[[extensions]]` or `[[order-extensions]]`).
    pub fn has_extensions(&self) -> bool {
        !self.extensions.is_empty() || !self.order_extensions.is_empty()
    }

    /// Replace the targets with `targets` (the `--target` values: pack replaces, never merges).
    /// Windows targets are refused: the lifecycle no longer publishes Windows builds.
    pub fn set_targets(&mut self, targets: Vec<Target>) -> Result<()> {
        if targets.len() > MAX_TARGETS {
            return Err(Error::usage(format!(
                "more than {MAX_TARGETS} targets for one builder"
            )));
        }
        if let Some(t) = targets.iter().find(|t| t.os == "windows") {
            return Err(Error::other(format!(
                "target {}: Windows builders are not supported (the lifecycle removed Windows support in v0.20.6)",
                t.display()
            )));
        }
        self.targets = targets;
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// Order resolution

/// pack's `resolveRef` over the modules placed on the builder (`available`: (id, version)
/// pairs): fills missing versions, with pack's messages (`processing buildpacks order: ...`).
pub fn resolve_order(
    order: &[OrderGroup],
    available: &[(String, String)],
    kind: ModuleKind,
) -> Result<Vec<OrderGroup>> {
    let what = match kind {
        ModuleKind::Buildpack => "buildpacks order",
        ModuleKind::Extension => "extensions order",
    };
    order
        .iter()
        .map(|g| {
            let group = g
                .group
                .iter()
                .map(|r| resolve_ref(available, r, kind))
                .collect::<std::result::Result<Vec<_>, String>>()
                .map_err(|e| Error::other(format!("processing {what}: {e}")))?;
            Ok(OrderGroup { group })
        })
        .collect()
}

/// [`resolve_order`] for `[system]` (`processing system buildpacks: ...`).
pub fn resolve_system(
    system: &SystemConfig,
    available: &[(String, String)],
) -> Result<SystemConfig> {
    let resolve = |refs: &[ModuleRef]| {
        refs.iter()
            .map(|r| resolve_ref(available, r, ModuleKind::Buildpack))
            .collect::<std::result::Result<Vec<_>, String>>()
            .map_err(|e| Error::other(format!("processing system buildpacks: {e}")))
    };
    Ok(SystemConfig {
        pre: resolve(&system.pre)?,
        post: resolve(&system.post)?,
    })
}

fn resolve_ref(
    available: &[(String, String)],
    r: &ModuleRef,
    kind: ModuleKind,
) -> std::result::Result<ModuleRef, String> {
    let kind = kind.table();
    let id = &r.info.id;
    let matching: Vec<&String> = available
        .iter()
        .filter(|(i, _)| i == id)
        .map(|(_, v)| v)
        .collect();
    let Some(first) = matching.first() else {
        return Err(format!(
            "no versions of {kind} '{id}' were found on the builder"
        ));
    };
    let mut resolved = r.clone();
    if resolved.info.version.is_empty() {
        if matching.iter().any(|v| v != first) {
            return Err(format!(
                "unable to resolve version: multiple versions of '{id}' - must specify an explicit version"
            ));
        }
        resolved.info.version = first.to_string();
    }
    if !matching.iter().any(|v| **v == resolved.info.version) {
        return Err(format!(
            "{kind} '{id}' with version '{}' was not found on the builder",
            resolved.info.version
        ));
    }
    Ok(resolved)
}

// ---------------------------------------------------------------------------------------------
// TOML files, as BurntSushi's encoder (v1.3.2, which pack pins) lays them out

/// A minimal BurntSushi-layout writer: two-space indentation per key depth, a newline before
/// every array-of-tables header and top-level table once anything is written.
#[derive(Default)]
struct TomlOut {
    out: String,
}

impl TomlOut {
    fn newline(&mut self) {
        if !self.out.is_empty() {
            self.out.push('\n');
        }
    }

    fn indent(&mut self, depth: usize) {
        for _ in 1..depth {
            self.out.push_str("  ");
        }
    }

    /// `[[a.b]]` for the key path `key`.
    fn array_table(&mut self, key: &[&str]) {
        self.newline();
        self.indent(key.len());
        self.out.push_str(&format!("[[{}]]", key.join(".")));
        self.newline();
    }

    /// `[a.b]`; a top-level table gets a newline before it.
    fn table(&mut self, key: &[&str]) {
        if key.len() == 1 {
            self.newline();
        }
        self.indent(key.len());
        self.out.push_str(&format!("[{}]", key.join(".")));
        self.newline();
    }

    /// `name = <value>` at depth `depth` (the key path's length with `name`).
    fn key_value(&mut self, depth: usize, name: &str, value: &str) {
        self.indent(depth);
        self.out.push_str(name);
        self.out.push_str(" = ");
        self.out.push_str(value);
        self.newline();
    }

    fn string(&mut self, depth: usize, name: &str, value: &str) {
        self.key_value(depth, name, &toml_quote(value));
    }

    fn strings(&mut self, depth: usize, name: &str, values: &[String]) {
        let items: Vec<String> = values.iter().map(|v| toml_quote(v)).collect();
        self.key_value(depth, name, &format!("[{}]", items.join(", ")));
    }

    /// A `dist.ModuleRef` table's fields (omitempty everywhere): direct keys in struct order,
    /// then `licenses` as an array of tables.
    fn module_ref(&mut self, key: &[&str], r: &ModuleRef) {
        let d = key.len() + 1;
        let i: &ModuleInfo = &r.info;
        for (name, value) in [
            ("id", &i.id),
            ("name", &i.name),
            ("version", &i.version),
            ("description", &i.description),
            ("homepage", &i.homepage),
        ] {
            if !value.is_empty() {
                self.string(d, name, value);
            }
        }
        if !i.keywords.is_empty() {
            self.strings(d, "keywords", &i.keywords);
        }
        if !i.exec_env.is_empty() {
            self.strings(d, "exec-env", &i.exec_env);
        }
        if i.clear_env {
            self.key_value(d, "clear-env", "true");
        }
        if r.optional {
            self.key_value(d, "optional", "true");
        }
        let mut lkey = key.to_vec();
        lkey.push("licenses");
        for l in &i.licenses {
            self.array_table(&lkey);
            self.string(d + 1, "type", &l.kind);
            self.string(d + 1, "uri", &l.uri);
        }
    }

    fn refs(&mut self, key: &[&str], refs: &[ModuleRef]) {
        for r in refs {
            self.array_table(key);
            self.module_ref(key, r);
        }
    }

    fn order(&mut self, name: &str, order: &[OrderGroup]) {
        for g in order {
            self.array_table(&[name]);
            self.refs(&[name, "group"], &g.group);
        }
    }

    fn run_image_fields(&mut self, depth: usize, r: &RunImage) {
        self.string(depth, "image", &r.image);
        if !r.mirrors.is_empty() {
            self.strings(depth, "mirrors", &r.mirrors);
        }
    }
}

/// BurntSushi's basic-string quoting (`dblQuotedReplacer`).
fn toml_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{8}' => out.push_str("\\b"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\u{c}' => out.push_str("\\f"),
            '\r' => out.push_str("\\r"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                out.push_str(&format!("\\u{:04x}", c as u32))
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// `/cnb/order.toml`, the bytes pack writes (`orderTOML`: `[[order]]`, then
/// `[[order-extensions]]`, each left out when empty). Give it the resolved orders.
pub fn order_toml(order: &[OrderGroup], order_extensions: &[OrderGroup]) -> Vec<u8> {
    let mut t = TomlOut::default();
    t.order("order", order);
    t.order("order-extensions", order_extensions);
    t.out.into_bytes()
}

/// `/cnb/stack.toml`: `[run-image]` with the given run image (the `[stack]` run image, which
/// after the merge is the first run image).
pub fn stack_toml(run_image: &RunImage) -> Vec<u8> {
    let mut t = TomlOut::default();
    t.table(&["run-image"]);
    t.run_image_fields(2, run_image);
    t.out.into_bytes()
}

/// `/cnb/run.toml`: one `[[images]]` per run image.
pub fn run_toml(run_images: &[RunImage]) -> Vec<u8> {
    let mut t = TomlOut::default();
    for r in run_images {
        t.array_table(&["images"]);
        t.run_image_fields(2, r);
    }
    t.out.into_bytes()
}

/// `/cnb/system.toml` (`systemTOML`): `[system]`, then `[system.pre]` and `[system.post]`
/// with their `[[...buildpacks]]`, each left out when empty. Give it the resolved system.
pub fn system_toml(system: &SystemConfig) -> Vec<u8> {
    let mut t = TomlOut::default();
    t.table(&["system"]);
    for (name, refs) in [("pre", &system.pre), ("post", &system.post)] {
        if !refs.is_empty() {
            t.table(&["system", name]);
            t.refs(&["system", name, "buildpacks"], refs);
        }
    }
    t.out.into_bytes()
}

// ---------------------------------------------------------------------------------------------
// Labels, as Go's encoding/json writes pack's structs

#[derive(Serialize)]
struct GroupJson<'a> {
    /// A group with no entries is a nil slice in pack: `null`.
    group: Option<&'a [ModuleRef]>,
}

/// Go `encoding/json` bytes of an order label (`io.buildpacks.buildpack.order` or
/// `...order-extensions`), unresolved; `null` when there is none, as pack writes it.
pub fn order_label(order: &[OrderGroup]) -> String {
    if order.is_empty() {
        return "null".into();
    }
    let groups: Vec<GroupJson> = order
        .iter()
        .map(|g| GroupJson {
            group: (!g.group.is_empty()).then_some(g.group.as_slice()),
        })
        .collect();
    go_marshal(&groups)
}

#[derive(Serialize)]
struct SystemJson<'a> {
    pre: SystemBuildpacksJson<'a>,
    post: SystemBuildpacksJson<'a>,
}

#[derive(Serialize)]
struct SystemBuildpacksJson<'a> {
    #[serde(skip_serializing_if = "<[ModuleRef]>::is_empty")]
    buildpacks: &'a [ModuleRef],
}

/// Go `encoding/json` bytes of the `io.buildpacks.buildpack.system` label, unresolved
/// (`{"pre":{"buildpacks":[...]},"post":{...}}`; Go never omits the two structs).
pub fn system_label(system: &SystemConfig) -> String {
    go_marshal(&SystemJson {
        pre: SystemBuildpacksJson {
            buildpacks: &system.pre,
        },
        post: SystemBuildpacksJson {
            buildpacks: &system.post,
        },
    })
}

/// pack's `RunImageMetadata` JSON: `{"image":...,"mirrors":[...]}`, `null` mirrors when none.
impl Serialize for RunImage {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut st = s.serialize_struct("RunImage", 2)?;
        st.serialize_field("image", &self.image)?;
        let mirrors = (!self.mirrors.is_empty()).then_some(&self.mirrors);
        st.serialize_field("mirrors", &mirrors)?;
        st.end()
    }
}

/// Go `encoding/json` bytes of the builder metadata's `images` list (`null` when empty).
pub fn run_images_json(run_images: &[RunImage]) -> String {
    if run_images.is_empty() {
        return "null".into();
    }
    go_marshal(run_images)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(text: &str) -> Result<BuilderConfig> {
        parse(Path::new("dir/builder.toml"), text)
    }

    const MINIMAL: &str = "[build]\nimage = \"b\"\n[[run.images]]\nimage = \"r\"\n";

    fn message(r: Result<BuilderConfig>) -> String {
        r.expect_err("must fail").to_string()
    }

    #[test]
    fn every_key_of_the_table_is_read() {
        let c = cfg(r#"
description = "d"
[[buildpacks]]
uri = "bp"
id = "a/b"
version = "1"
name = "A"
keywords = ["k"]
clear-env = true
[[buildpacks.licenses]]
type = "MIT"
[[extensions]]
image = "ext:1"
[[order]]
[[order.group]]
id = "a/b"
optional = true
[[order-extensions]]
[[order-extensions.group]]
id = "e"
optional = true
[build]
image = "b"
[[build.env]]
name = "N"
value = "v"
suffix = "append"
delim = ":"
exec-env = ["production"]
[[run.images]]
image = "r"
mirrors = ["m1", "m2"]
[lifecycle]
version = "0.20.5"
[system]
[[system.pre.buildpacks]]
id = "p"
[[system.post.buildpacks]]
id = "q"
version = "2"
[[targets]]
os = "linux"
arch = "arm64"
variant = "v8"
[[targets.distros]]
name = "ubuntu"
version = "22.04"
"#)
        .unwrap();
        assert_eq!(c.description, "d");
        assert_eq!(c.base_dir, Path::new("dir"));
        assert_eq!(c.buildpacks[0].uri, "bp");
        assert_eq!(c.buildpacks[0].id.as_deref(), Some("a/b"));
        assert_eq!(c.buildpacks[0].version.as_deref(), Some("1"));
        assert_eq!(c.buildpacks[0].info.name, "A");
        assert_eq!(c.buildpacks[0].info.licenses[0].kind, "MIT");
        assert!(c.buildpacks[0].info.clear_env);
        assert_eq!(c.extensions[0].uri, "docker://ext:1");
        assert!(c.extensions[0].from_image_key);
        assert_eq!(c.warnings, vec![IMAGE_KEY_DEPRECATED.to_string()]);
        assert!(c.order[0].group[0].optional);
        assert!(!c.order_extensions[0].group[0].optional, "pack clears it");
        assert_eq!(c.build_image, "b");
        assert_eq!(c.build_env[0].suffix, EnvSuffix::Append);
        assert_eq!(c.build_env[0].exec_env, vec!["production".to_string()]);
        assert_eq!(c.run_images[0].mirrors, vec!["m1", "m2"]);
        assert_eq!(c.lifecycle, LifecycleSpec::Version("0.20.5".into()));
        let s = c.system.as_ref().unwrap();
        assert_eq!(
            (s.pre[0].info.id.as_str(), s.post[0].info.version.as_str()),
            ("p", "2")
        );
        assert_eq!(c.targets[0].display(), "linux/arm64/v8:ubuntu@22.04");
        assert!(c.stack.is_none());
    }

    #[test]
    fn unknown_keys_are_refused_with_packs_message() {
        let m = message(cfg(&format!(
            "colour = 1\n{MINIMAL}[lifecycle]\nurl = \"x\"\n"
        )));
        assert!(
            m.contains(
                "unknown configuration elements 'colour', 'lifecycle.url' in 'dir/builder.toml'"
            ),
            "{m}"
        );
        let m = message(cfg(&format!(
            "{MINIMAL}[[buildpacks]]\nuri = \"x\"\noptional = true\n"
        )));
        assert!(
            m.contains("unknown configuration element 'buildpacks.optional'"),
            "{m}"
        );
        let m = message(cfg(&format!(
            "{MINIMAL}[[targets]]\nos = \"linux\"\npath = \"x\"\n"
        )));
        assert!(m.contains("'targets.path'"), "{m}");
        // Known keys at every depth pass.
        cfg(&format!(
            "{MINIMAL}[[order]]\n[[order.group]]\nid = \"a\"\n[[order.group.licenses]]\ntype = \"MIT\"\n"
        ))
        .unwrap();
    }

    #[test]
    fn stack_is_merged_as_pack_merges_it() {
        let c = cfg("[stack]\nid = \"s\"\nbuild-image = \"sb\"\nrun-image = \"sr\"\nrun-image-mirrors = [\"m\"]\n").unwrap();
        assert_eq!(c.build_image, "sb");
        assert_eq!(
            c.run_images,
            vec![RunImage {
                image: "sr".into(),
                mirrors: vec!["m".into()]
            }]
        );
        let c = cfg(&format!(
            "{MINIMAL}[stack]\nid = \"s\"\nbuild-image = \"sb\"\nrun-image = \"sr\"\n"
        ))
        .unwrap();
        assert_eq!(c.build_image, "b", "build.image wins");
        let s = c.stack.unwrap();
        assert_eq!((s.build_image.as_str(), s.run_image.as_str()), ("b", "r"));
        assert_eq!(c.run_images.len(), 1);
    }

    #[test]
    fn validation_messages_are_packs() {
        let m = message(cfg("[[run.images]]\nimage = \"r\"\n"));
        assert_eq!(
            m,
            "dir/builder.toml: invalid builder config: build.image is required"
        );
        let m = message(cfg("[build]\nimage = \"b\"\n"));
        assert!(
            m.ends_with("invalid builder config: run.images are required"),
            "{m}"
        );
        let m = message(cfg(
            "[build]\nimage = \"b\"\n[[run.images]]\nmirrors = [\"m\"]\n",
        ));
        assert!(
            m.ends_with("invalid builder config: run.images.image is required"),
            "{m}"
        );
        let m = message(cfg(&format!(
            "{MINIMAL}[lifecycle]\nversion = \"1.0.0\"\nuri = \"x\"\n"
        )));
        assert_eq!(
            m,
            "'lifecycle' can only declare 'version' or 'uri', not both"
        );
        let m = message(cfg(&format!(
            "{MINIMAL}[lifecycle]\nversion = \"latest\"\n"
        )));
        assert!(
            m.starts_with("'lifecycle.version' must be a valid semver"),
            "{m}"
        );
        let c = cfg(MINIMAL).unwrap();
        assert_eq!(
            c.warnings,
            vec!["builder configuration: empty 'order' definition"]
        );
        assert_eq!(c.lifecycle, LifecycleSpec::Default);
        let c = cfg(&format!("{MINIMAL}[lifecycle]\nuri = \"l.tgz\"\n")).unwrap();
        assert_eq!(c.lifecycle, LifecycleSpec::Uri("l.tgz".into()));
        let m = message(cfg("description = 1\n"));
        assert!(m.contains("decoding toml contents"), "{m}");
    }

    #[test]
    fn semver_as_masterminds_reads_it() {
        for ok in [
            "0.20.5",
            "v1",
            "1.2",
            "1.2.3-rc.1",
            "1.2.3+build.5",
            "1.2.3-rc-1+x",
        ] {
            assert!(is_semver(ok), "{ok}");
        }
        for bad in [
            "",
            "latest",
            "1.2.3.4",
            "1..2",
            "1.2.3-",
            "1.2.3+",
            "1.2.3-a..b",
            "a1",
        ] {
            assert!(!is_semver(bad), "{bad}");
        }
    }

    #[test]
    fn build_env_rules_warnings_and_files() {
        let env = |body: &str| cfg(&format!("{MINIMAL}{body}"));
        let m = message(env("[[build.env]]\nvalue = \"v\"\n"));
        assert_eq!(
            m,
            "parse contents of 'dir/builder.toml': env name should not be empty"
        );
        let m = message(env("[[build.env]]\nname = \"N\"\nsuffix = \"after\"\n"));
        assert_eq!(m, "unknown action type 'after'");
        let m = message(env(
            "[[build.env]]\nname = \"N\"\nvalue = \"v\"\nsuffix = \"prepend\"\n",
        ));
        assert_eq!(m, "error parsing [[build.env]] in file 'dir/builder.toml'");
        for hostile in ["../x", "a/b", "..", ".", "a\u{0}b", "a\nb", "a\u{1b}b"] {
            let text = format!(
                "[[build.env]]\nname = {}\nvalue = \"v\"\n",
                toml_quote(hostile)
            );
            let m = message(env(&text));
            assert!(m.contains("/cnb/build-config/env"), "{hostile:?}: {m}");
        }
        let m = message(env(&format!(
            "[[build.env]]\nname = \"{}\"\n",
            "a".repeat(250)
        )));
        assert!(m.contains("too long"), "{m}");

        let c = env("[[build.env]]\nname = \"B\"\nvalue = \"\"\n[[build.env]]\nname = \"A\"\nvalue = \"x\"\nsuffix = \"append\"\ndelim = \":\"\n[[build.env]]\nname = \"B\"\nvalue = \"2\"\n").unwrap();
        assert!(c
            .warnings
            .contains(&"empty value for key/name 'B'".to_string()));
        assert!(c
            .warnings
            .iter()
            .any(|w| w.ends_with("overriding env with name: 'B' and suffix: '' from '' to '2'")));
        let files = c.build_env_files().unwrap();
        let files: Vec<(&str, &[u8])> = files
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_slice()))
            .collect();
        assert_eq!(
            files,
            vec![("A.append", &b"x"[..]), ("A.delim", b":"), ("B", b"2")]
        );
    }

    #[test]
    fn targets_replace_and_windows_is_refused() {
        let mut c = cfg(&format!(
            "{MINIMAL}[[targets]]\nos = \"linux\"\narch = \"amd64\"\n"
        ))
        .unwrap();
        let (flags, _) = crate::target::parse_target_flags(&["linux/arm64".into()]).unwrap();
        c.set_targets(flags).unwrap();
        assert_eq!(c.targets.len(), 1);
        assert_eq!(c.targets[0].arch, "arm64");
        let m = message(cfg(&format!(
            "{MINIMAL}[[targets]]\nos = \"windows\"\narch = \"amd64\"\n"
        )));
        assert!(m.contains("Windows builders are not supported"), "{m}");
        let m = message(cfg(&format!(
            "{MINIMAL}[[targets]]\nos = \"linux\"\narch = \"../x\"\n"
        )));
        assert!(m.contains("[[targets]]"), "{m}");
        let many = "[[targets]]\nos = \"linux\"\n".repeat(MAX_TARGETS + 1);
        assert!(cfg(&format!("{MINIMAL}{many}")).is_err());
    }

    fn r(id: &str, version: &str, optional: bool) -> ModuleRef {
        ModuleRef {
            info: ModuleInfo {
                id: id.into(),
                version: version.into(),
                ..Default::default()
            },
            optional,
        }
    }

    #[test]
    fn order_versions_resolve_with_packs_messages() {
        let avail = vec![
            ("a".to_string(), "1".to_string()),
            ("b".to_string(), "1".to_string()),
            ("b".to_string(), "2".to_string()),
        ];
        let order = vec![OrderGroup {
            group: vec![r("a", "", true), r("b", "2", false)],
        }];
        let got = resolve_order(&order, &avail, ModuleKind::Buildpack).unwrap();
        assert_eq!(got[0].group[0], r("a", "1", true));
        let fail = |r: ModuleRef, kind| {
            resolve_order(&[OrderGroup { group: vec![r] }], &avail, kind)
                .unwrap_err()
                .to_string()
        };
        assert_eq!(
            fail(r("c", "", false), ModuleKind::Buildpack),
            "processing buildpacks order: no versions of buildpack 'c' were found on the builder"
        );
        assert_eq!(
            fail(r("b", "", false), ModuleKind::Buildpack),
            "processing buildpacks order: unable to resolve version: multiple versions of 'b' - must specify an explicit version"
        );
        assert_eq!(
            fail(r("a", "9", false), ModuleKind::Extension),
            "processing extensions order: extension 'a' with version '9' was not found on the builder"
        );
        let sys = SystemConfig {
            pre: vec![r("a", "", false)],
            post: vec![r("x", "", false)],
        };
        assert_eq!(
            resolve_system(&sys, &avail).unwrap_err().to_string(),
            "processing system buildpacks: no versions of buildpack 'x' were found on the builder"
        );
    }

    fn text(b: Vec<u8>) -> String {
        String::from_utf8(b).unwrap()
    }

    #[test]
    fn toml_files_have_packs_bytes() {
        // builder_test.go's expectations.
        let order = vec![OrderGroup {
            group: vec![r("buildpack-1-id", "buildpack-1-version-1", false)],
        }];
        assert_eq!(
            text(order_toml(&order, &[])),
            "[[order]]\n\n  [[order.group]]\n    id = \"buildpack-1-id\"\n    version = \"buildpack-1-version-1\"\n"
        );
        let run = RunImage {
            image: "some/run".into(),
            mirrors: vec!["some/mirror".into(), "other/mirror".into()],
        };
        assert_eq!(
            text(stack_toml(&run)),
            "[run-image]\n  image = \"some/run\"\n  mirrors = [\"some/mirror\", \"other/mirror\"]\n"
        );
        assert_eq!(
            text(run_toml(std::slice::from_ref(&run))),
            "[[images]]\n  image = \"some/run\"\n  mirrors = [\"some/mirror\", \"other/mirror\"]\n"
        );
        let plain = RunImage {
            image: "r\"\\\u{1}".into(),
            mirrors: vec![],
        };
        assert_eq!(
            text(run_toml(&[run.clone(), plain])),
            "[[images]]\n  image = \"some/run\"\n  mirrors = [\"some/mirror\", \"other/mirror\"]\n\n[[images]]\n  image = \"r\\\"\\\\\\u0001\"\n"
        );
        // Two groups, two entries, optional, extensions in the same file.
        let order = vec![
            OrderGroup {
                group: vec![r("a", "1", true), r("b", "2", false)],
            },
            OrderGroup {
                group: vec![r("c", "3", false)],
            },
        ];
        let ext = vec![OrderGroup {
            group: vec![r("e", "1", false)],
        }];
        assert_eq!(
            text(order_toml(&order, &ext)),
            "[[order]]\n\n  [[order.group]]\n    id = \"a\"\n    version = \"1\"\n    optional = true\n\n  [[order.group]]\n    id = \"b\"\n    version = \"2\"\n\n[[order]]\n\n  [[order.group]]\n    id = \"c\"\n    version = \"3\"\n\n[[order-extensions]]\n\n  [[order-extensions.group]]\n    id = \"e\"\n    version = \"1\"\n"
        );
        assert_eq!(
            text(order_toml(&[], &ext)).lines().next(),
            Some("[[order-extensions]]")
        );
        let sys = SystemConfig {
            pre: vec![r("p", "1", false)],
            post: vec![r("q", "2", true)],
        };
        assert_eq!(
            text(system_toml(&sys)),
            "[system]\n  [system.pre]\n\n    [[system.pre.buildpacks]]\n      id = \"p\"\n      version = \"1\"\n  [system.post]\n\n    [[system.post.buildpacks]]\n      id = \"q\"\n      version = \"2\"\n      optional = true\n"
        );
        // What pack writes parses back to the same values.
        let back: toml::Value = toml::from_str(&text(system_toml(&sys))).unwrap();
        assert_eq!(
            back["system"]["post"]["buildpacks"][0]["optional"].as_bool(),
            Some(true)
        );
    }

    #[test]
    fn module_ref_fields_in_struct_order() {
        let mut m = r("a", "1", true);
        m.info.name = "A".into();
        m.info.keywords = vec!["k".into()];
        m.info.clear_env = true;
        m.info.licenses = vec![crate::descriptor::License {
            kind: "MIT".into(),
            uri: String::new(),
        }];
        let order = vec![OrderGroup { group: vec![m] }];
        assert_eq!(
            text(order_toml(&order, &[])),
            "[[order]]\n\n  [[order.group]]\n    id = \"a\"\n    name = \"A\"\n    version = \"1\"\n    keywords = [\"k\"]\n    clear-env = true\n    optional = true\n\n    [[order.group.licenses]]\n      type = \"MIT\"\n      uri = \"\"\n"
        );
        assert_eq!(
            order_label(&order),
            r#"[{"group":[{"id":"a","name":"A","version":"1","keywords":["k"],"licenses":[{"Type":"MIT","URI":""}],"clear-env":true,"optional":true}]}]"#
        );
    }

    #[test]
    fn labels_are_go_json() {
        assert_eq!(order_label(&[]), "null");
        let order = vec![
            OrderGroup {
                group: vec![r("read/env", "read-env-version", true), r("x", "", false)],
            },
            OrderGroup { group: vec![] },
        ];
        assert_eq!(
            order_label(&order),
            r#"[{"group":[{"id":"read/env","version":"read-env-version","optional":true},{"id":"x"}]},{"group":null}]"#
        );
        let sys = SystemConfig {
            pre: vec![r("p", "<1>", false)],
            post: vec![],
        };
        assert_eq!(
            system_label(&sys),
            r#"{"pre":{"buildpacks":[{"id":"p","version":"\u003c1\u003e"}]},"post":{}}"#
        );
        let run = vec![
            RunImage {
                image: "r".into(),
                mirrors: vec!["m".into()],
            },
            RunImage {
                image: "s".into(),
                mirrors: vec![],
            },
        ];
        assert_eq!(
            run_images_json(&run),
            r#"[{"image":"r","mirrors":["m"]},{"image":"s","mirrors":null}]"#
        );
        assert_eq!(run_images_json(&[]), "null");
    }

    #[test]
    fn config_is_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("builder.toml");
        std::fs::write(&p, vec![b'#'; MAX_CONFIG_BYTES as usize + 1]).unwrap();
        assert!(read(&p).unwrap_err().to_string().contains("larger than"));
        let many = "[[buildpacks]]\nuri = \"x\"\n".repeat(MAX_MODULES + 1);
        assert!(message(cfg(&format!("{MINIMAL}{many}"))).contains("more than"));
        let m = message(cfg(&format!("{MINIMAL}[[buildpacks]]\nid = \"x\"\n")));
        assert!(m.contains("has no 'uri'"), "{m}");
    }
}
