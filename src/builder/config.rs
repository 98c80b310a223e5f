//! `builder.toml` as pack reads it: keys, stack merging, validation and warnings with pack's
//! texts, and the exact bytes of the files and labels pack derives from it.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
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
    /// a `docker://` reference.
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

/// Read, merge and validate `builder.toml` with pack's rules and messages.
pub fn read(path: &Path) -> Result<BuilderConfig> {
    let text = crate::input::read_text(path, path)?;
    parse(path, &text)
}

/// [`read`] on text already read; `path` names the file in messages and gives `base_dir`.
pub fn parse(path: &Path, _text: &str) -> Result<BuilderConfig> {
    Err(Error::invalid(
        path,
        "builder.toml parsing is not implemented yet",
    ))
}

impl BuilderConfig {
    /// `[[build.env]]` as `/cnb/build-config/env/` files: (file name, contents), sorted by name.
    pub fn build_env_files(&self) -> Result<Vec<(String, Vec<u8>)>> {
        Ok(Vec::new())
    }

    /// Replace the configured targets with `--target` values (pack: flags replace, never merge).
    pub fn set_targets(&mut self, targets: Vec<Target>) -> Result<()> {
        self.targets = targets;
        Ok(())
    }
}

/// pack's `resolveRef` over the modules placed on the builder (`available`: (id, version)
/// pairs): fills missing versions, with pack's messages. `kind` is `buildpack` or `extension`.
pub fn resolve_order(
    order: &[OrderGroup],
    available: &[(String, String)],
    kind: crate::descriptor::ModuleKind,
) -> Result<Vec<OrderGroup>> {
    let _ = (available, kind);
    Ok(order.to_vec())
}

/// [`resolve_order`] for `[system]`.
pub fn resolve_system(
    system: &SystemConfig,
    available: &[(String, String)],
) -> Result<SystemConfig> {
    let _ = available;
    Ok(system.clone())
}

/// `/cnb/order.toml`, the bytes pack writes (BurntSushi TOML encoder layout).
pub fn order_toml(order: &[OrderGroup], order_extensions: &[OrderGroup]) -> Vec<u8> {
    let _ = (order, order_extensions);
    Vec::new()
}

/// `/cnb/stack.toml`: `[run-image]` with the given run image.
pub fn stack_toml(run_image: &RunImage) -> Vec<u8> {
    let _ = run_image;
    Vec::new()
}

/// `/cnb/run.toml`: one `[[images]]` per run image.
pub fn run_toml(run_images: &[RunImage]) -> Vec<u8> {
    let _ = run_images;
    Vec::new()
}

/// `/cnb/system.toml`.
pub fn system_toml(system: &SystemConfig) -> Vec<u8> {
    let _ = system;
    Vec::new()
}

/// Go `encoding/json` bytes of an order label (`io.buildpacks.buildpack.order` or
/// `...order-extensions`), unresolved; `null` when there is none, as pack writes it.
pub fn order_label(order: &[OrderGroup]) -> String {
    let _ = order;
    "null".into()
}

/// Go `encoding/json` bytes of the `io.buildpacks.buildpack.system` label, unresolved.
pub fn system_label(system: &SystemConfig) -> String {
    let _ = system;
    String::new()
}

/// Go `encoding/json` bytes of the builder metadata's `images` list.
pub fn run_images_json(run_images: &[RunImage]) -> String {
    let _ = run_images;
    "null".into()
}
