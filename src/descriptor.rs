//! `buildpack.toml` and `package.toml` as pack reads them (plus RFC 0128), the two package labels byte-equal to pack's, stack merging and composite checks.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::json::go_marshal;
use crate::target::{Distro, Target};

/// Label holding the main module's info and resolved stacks.
pub const METADATA_LABEL: &str = "io.buildpacks.buildpackage.metadata";
/// Label listing every buildpack's layer.
pub const BUILDPACK_LAYERS_LABEL: &str = "io.buildpacks.buildpack.layers";
/// Label listing every extension's layer.
pub const EXTENSION_LAYERS_LABEL: &str = "io.buildpacks.extension.layers";
/// API version pack assumes when `api` is missing (`dist.AssumedBuildpackAPIVersion`).
pub const ASSUMED_API: &str = "0.1";

/// Whether a module is a buildpack (`[buildpack]`) or an image extension (`[extension]`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum ModuleKind {
    /// `[buildpack]`, layers under `/cnb/buildpacks`.
    #[default]
    Buildpack,
    /// `[extension]`, layers under `/cnb/extensions`.
    Extension,
}

impl ModuleKind {
    /// The TOML table name: `buildpack` or `extension`.
    pub fn table(self) -> &'static str {
        match self {
            ModuleKind::Buildpack => "buildpack",
            ModuleKind::Extension => "extension",
        }
    }

    /// The layers label of this kind of module.
    pub fn layers_label(self) -> &'static str {
        match self {
            ModuleKind::Buildpack => BUILDPACK_LAYERS_LABEL,
            ModuleKind::Extension => EXTENSION_LAYERS_LABEL,
        }
    }
}

/// A license (`[[buildpack.licenses]]`). Go has no JSON tags on it, so JSON uses `Type`/`URI`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct License {
    /// License type (SPDX identifier).
    #[serde(rename = "Type", default)]
    pub kind: String,
    /// License URI.
    #[serde(rename = "URI", default)]
    pub uri: String,
}

/// The `[buildpack]`/`[extension]` table or an order group entry (pack's `dist.ModuleInfo`).
///
/// Serializes like Go's `omitempty` struct: empty strings, empty lists and `false` are left out
/// (Go's omitempty looks at values, so `name = ""` is omitted too). [`ModuleInfo::present`]
/// records which TOML keys were written, for callers that need to know.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModuleInfo {
    /// Module ID.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub id: String,
    /// Human-readable name.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// Version.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub version: String,
    /// Description.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    /// Homepage URL.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub homepage: String,
    /// Keywords.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub keywords: Vec<String>,
    /// `exec-env`: a list of strings in pack.
    #[serde(default, rename = "exec-env", skip_serializing_if = "Vec::is_empty")]
    pub exec_env: Vec<String>,
    /// Licenses.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub licenses: Vec<License>,
    /// `clear-env`.
    #[serde(default, rename = "clear-env", skip_serializing_if = "is_false")]
    pub clear_env: bool,
    /// TOML keys present in the source table (`id`, `exec-env`, ...); empty for JSON input.
    #[serde(skip)]
    pub present: BTreeSet<String>,
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// A module id as a directory name: `/` replaced by `_` (`paketo-buildpacks/node` →
/// `paketo-buildpacks_node`); see [`crate::cnb::module_dir`].
pub(crate) fn escape_id(id: &str) -> String {
    id.replace('/', "_")
}

impl ModuleInfo {
    /// `id@version`, or `id` without a version (pack's `FullName`).
    pub fn full_name(&self) -> String {
        if self.version.is_empty() {
            self.id.clone()
        } else {
            format!("{}@{}", self.id, self.version)
        }
    }

    /// The ID with `/` replaced by `_`, as used in layer paths and messages.
    pub fn escaped_id(&self) -> String {
        escape_id(&self.id)
    }

    /// Whether the TOML table had `key`.
    pub fn has(&self, key: &str) -> bool {
        self.present.contains(key)
    }
}

/// Why `id` cannot name a module, or `None`. The id becomes a directory of every layer
/// (`/cnb/buildpacks/<id with / as _>`), so each `/`-separated part must be a plain name.
pub(crate) fn id_problem(id: &str) -> Option<String> {
    if id.is_empty() {
        return Some("is empty".into());
    }
    if let Some(c) = id.chars().find(|c| c.is_control()) {
        return Some(format!("contains the control character {:?}", c));
    }
    if id.contains('\\') {
        return Some("contains '\\', a path separator on Windows".into());
    }
    if id.split('/').any(|p| p.is_empty() || p == "." || p == "..") {
        return Some("has an empty, '.' or '..' part between its '/'s".into());
    }
    None
}

/// Why `version` cannot be a module's version, or `None`: it is one directory name of every
/// layer (`/cnb/buildpacks/<id>/<version>`).
pub(crate) fn version_problem(version: &str) -> Option<String> {
    if version.is_empty() {
        return Some("is empty".into());
    }
    if let Some(c) = version.chars().find(|c| c.is_control()) {
        return Some(format!("contains the control character {:?}", c));
    }
    if version == "." || version == ".." || version.contains(['/', '\\']) {
        return Some("must be a single path component (no '/', '\\', '.' or '..')".into());
    }
    None
}

/// Why `name` (a module's escaped id or its version, each one folder name of every layer)
/// cannot be a file name on Windows, or `None`: a package for a Windows target with such a
/// folder cannot be extracted there.
pub(crate) fn windows_name_problem(name: &str) -> Option<String> {
    if let Some(c) = name.chars().find(|c| "<>:\"|?*".contains(*c)) {
        return Some(format!(
            "contains '{c}', which Windows file names cannot hold"
        ));
    }
    if name.ends_with([' ', '.']) {
        return Some("ends with a space or a dot, which Windows drops from file names".into());
    }
    // Reserved device names, with or without an extension (`NUL.txt` is the device too).
    let stem = name.split('.').next().unwrap_or(name).trim_end_matches(' ');
    let reserved = ["CON", "PRN", "AUX", "NUL"]
        .iter()
        .any(|r| stem.eq_ignore_ascii_case(r))
        || (stem.len() == 4
            && (stem[..3].eq_ignore_ascii_case("COM") || stem[..3].eq_ignore_ascii_case("LPT"))
            && matches!(stem.as_bytes()[3], b'1'..=b'9'));
    if reserved {
        return Some(format!("is the reserved Windows device name {stem}"));
    }
    None
}

/// [`windows_name_problem`] for a module's id (as its folder, `/` written `_`) and version: an
/// error text naming the key.
pub(crate) fn check_windows_id_version(
    table: &str,
    id: &str,
    version: &str,
) -> std::result::Result<(), String> {
    if let Some(p) = windows_name_problem(&escape_id(id)) {
        return Err(format!("'{table}.id' {id:?} {p}"));
    }
    if let Some(p) = windows_name_problem(version) {
        return Err(format!("'{table}.version' {version:?} of {id} {p}"));
    }
    Ok(())
}

/// What the buildpack spec forbids in an id but pack accepts: warned about, not refused, so
/// existing buildpacks keep packaging.
pub(crate) fn id_warning(id: &str) -> Option<String> {
    if id == "app" || id == "config" {
        return Some(format!(
            "id '{id}' is reserved by the buildpack specification"
        ));
    }
    if !id
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '/' || c == '-')
    {
        return Some(format!(
            "id '{id}' has characters the buildpack specification does not allow (only letters, digits, '.', '/' and '-')"
        ));
    }
    None
}

/// Check a module's id and version (from a descriptor or a package's label): an error text
/// naming the key, or the warnings to show.
pub(crate) fn check_id_version(
    table: &str,
    id: &str,
    version: &str,
) -> std::result::Result<Option<String>, String> {
    if let Some(p) = id_problem(id) {
        return Err(format!("'{table}.id' {:?} {p}", id));
    }
    if let Some(p) = version_problem(version) {
        return Err(format!("'{table}.version' {:?} of {id} {p}", version));
    }
    Ok(id_warning(id))
}

/// A `[[stacks]]` entry (deprecated).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stack {
    /// Stack ID; `*` means any.
    #[serde(default)]
    pub id: String,
    /// Required mixins.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mixins: Vec<String>,
}

/// An order group entry (pack's `dist.ModuleRef`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModuleRef {
    /// The referenced module.
    #[serde(flatten)]
    pub info: ModuleInfo,
    /// Whether the entry is optional.
    #[serde(default, skip_serializing_if = "is_false")]
    pub optional: bool,
}

/// An `[[order]]` entry.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderEntry {
    /// The group.
    #[serde(default)]
    pub group: Vec<ModuleRef>,
}

/// A decoded `buildpack.toml` (or an `[extension]` descriptor).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BuildpackDescriptor {
    /// Buildpack API, normalized to `%d.%d` (`"0.1"` when missing).
    pub api: String,
    /// Buildpack or extension, by the table present.
    pub kind: ModuleKind,
    /// The `[buildpack]`/`[extension]` table.
    pub info: ModuleInfo,
    /// Deprecated `[[stacks]]` (always empty for extensions).
    pub stacks: Vec<Stack>,
    /// `[[targets]]`, including RFC 0128 `path`.
    pub targets: Vec<Target>,
    /// `[[order]]` (always empty for extensions).
    pub order: Vec<OrderEntry>,
    /// The legacy untagged key `WithWindowsBuild` (older `pack buildpack new` wrote it).
    pub with_windows_build: bool,
    /// The legacy untagged key `WithLinuxBuild`.
    pub with_linux_build: bool,
}

impl BuildpackDescriptor {
    /// Whether this is a composite (order) buildpack.
    pub fn is_composite(&self) -> bool {
        !self.order.is_empty()
    }
}

// ---------------------------------------------------------------------------------------------
// TOML helpers

/// One-line text of a TOML error, with line and column when known.
pub(crate) fn toml_error(text: &str, e: &toml::de::Error) -> String {
    let msg = e.message().trim().replace('\n', " ");
    match e.span() {
        Some(span) => {
            let (line, col) = line_col(text, span.start);
            format!("{msg} at line {line}, column {col}")
        }
        None => msg,
    }
}

fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before
        .rsplit('\n')
        .next()
        .map(|l| l.chars().count())
        .unwrap_or(0)
        + 1;
    (line, col)
}

/// BurntSushi's `Key.String()` quoting of one key part.
fn quote_key(k: &str) -> String {
    if k.is_empty() {
        return "\"\"".into();
    }
    if k.chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        return k.into();
    }
    let mut s = String::from("\"");
    for c in k.chars() {
        match c {
            '"' => s.push_str("\\\""),
            '\\' => s.push_str("\\\\"),
            '\n' => s.push_str("\\n"),
            '\t' => s.push_str("\\t"),
            '\r' => s.push_str("\\r"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => s.push_str(&format!("\\u{:04X}", c as u32)),
            c => s.push(c),
        }
    }
    s.push('"');
    s
}

/// How a key path is treated when listing keys pack would not decode.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Class {
    /// A known table: look at its children.
    Table,
    /// A known value: decoded whole.
    Leaf,
    /// Free-form (`metadata`): never reported.
    Exempt,
    /// Not decoded: reported with all its children.
    Unknown,
}

pub(crate) type Classifier = fn(&[String]) -> Class;

/// Walk a parsed document and return the key paths `classify` does not know, in document order
/// (the first occurrence of each), formatted as BurntSushi's `Key.String()`.
fn undecoded_keys(doc: &toml::de::DeTable<'_>, classify: Classifier) -> Vec<String> {
    fn walk_value(
        v: &toml::de::DeValue<'_>,
        path: &mut Vec<String>,
        unknown: bool,
        classify: Classifier,
        out: &mut Vec<(usize, String)>,
    ) {
        match v {
            toml::de::DeValue::Table(t) => walk_table(t, path, unknown, classify, out),
            toml::de::DeValue::Array(a) => {
                for item in a {
                    walk_value(item.get_ref(), path, unknown, classify, out);
                }
            }
            _ => {}
        }
    }
    fn walk_table(
        t: &toml::de::DeTable<'_>,
        path: &mut Vec<String>,
        unknown: bool,
        classify: Classifier,
        out: &mut Vec<(usize, String)>,
    ) {
        for (k, v) in t.iter() {
            path.push(k.get_ref().to_string());
            let class = if unknown {
                Class::Unknown
            } else {
                classify(path)
            };
            match class {
                Class::Exempt | Class::Leaf => {}
                Class::Table => walk_value(v.get_ref(), path, false, classify, out),
                Class::Unknown => {
                    let s: Vec<String> = path.iter().map(|p| quote_key(p)).collect();
                    out.push((k.span().start, s.join(".")));
                    walk_value(v.get_ref(), path, true, classify, out);
                }
            }
            path.pop();
        }
    }
    let mut out = Vec::new();
    walk_table(doc, &mut Vec::new(), false, classify, &mut out);
    out.sort_by_key(|(pos, _)| *pos);
    let mut seen = BTreeSet::new();
    out.into_iter()
        .filter(|(_, k)| seen.insert(k.clone()))
        .map(|(_, k)| k)
        .collect()
}

/// pack's error for keys a configuration file (`package.toml`, `builder.toml`) may not have:
/// `unknown configuration element(s) 'k', ... in '<path>'` (`FormatUndecodedKeys`: a key is
/// left out when its first part was already listed).
pub(crate) fn reject_unknown_keys(
    doc: &toml::de::DeTable<'_>,
    classify: Classifier,
    path: &Path,
) -> Result<()> {
    let unknown = undecoded_keys(doc, classify);
    if unknown.is_empty() {
        return Ok(());
    }
    let mut listed: Vec<String> = Vec::new();
    for k in unknown {
        let parent = k.split('.').next().unwrap_or("").to_string();
        if !listed.contains(&parent) {
            listed.push(k);
        }
    }
    let quoted: Vec<String> = listed.iter().map(|k| format!("'{k}'")).collect();
    let plural = if quoted.len() > 1 {
        "elements"
    } else {
        "element"
    };
    Err(Error::other(format!(
        "unknown configuration {plural} {} in '{}'",
        quoted.join(", "),
        path.display()
    )))
}

const INFO_KEYS: &[&str] = &[
    "id",
    "name",
    "version",
    "description",
    "homepage",
    "keywords",
    "exec-env",
    "licenses",
    "clear-env",
];

/// Classify a path below a ModuleInfo table (`rest` excludes the table itself).
pub(crate) fn classify_info(rest: &[String], with_optional: bool) -> Class {
    match rest {
        [k] if k == "licenses" => Class::Table,
        [k] if INFO_KEYS.contains(&k.as_str()) => Class::Leaf,
        [k] if with_optional && k == "optional" => Class::Leaf,
        [l, k] if l == "licenses" && (k == "type" || k == "uri") => Class::Leaf,
        _ => Class::Unknown,
    }
}

pub(crate) fn classify_targets(rest: &[String], with_path: bool) -> Class {
    match rest {
        [] => Class::Table,
        [k] if k == "os" || k == "arch" || k == "variant" => Class::Leaf,
        [k] if with_path && k == "path" => Class::Leaf,
        [k] if k == "distros" => Class::Table,
        [d, k] if d == "distros" && (k == "name" || k == "version") => Class::Leaf,
        _ => Class::Unknown,
    }
}

fn classify_module(path: &[String], kind: ModuleKind) -> Class {
    let Some(first) = path.first() else {
        return Class::Table;
    };
    let rest = &path[1..];
    match first.as_str() {
        "metadata" => Class::Exempt,
        "api" if rest.is_empty() => Class::Leaf,
        "targets" => classify_targets(rest, true),
        t if t == kind.table() => {
            if rest.is_empty() {
                Class::Table
            } else if kind == ModuleKind::Buildpack && rest.len() == 1 && rest[0] == "sbom-formats"
            {
                Class::Exempt
            } else {
                classify_info(rest, false)
            }
        }
        _ if kind == ModuleKind::Extension => Class::Unknown,
        "WithWindowsBuild" | "WithLinuxBuild" if rest.is_empty() => Class::Leaf,
        "stacks" => match rest {
            [] => Class::Table,
            [k] if k == "id" || k == "mixins" => Class::Leaf,
            _ => Class::Unknown,
        },
        "order" => match rest {
            [] => Class::Table,
            [g] if g == "group" => Class::Table,
            [g, more @ ..] if g == "group" => classify_info(more, true),
            _ => Class::Unknown,
        },
        _ => Class::Unknown,
    }
}

fn classify_buildpack(path: &[String]) -> Class {
    classify_module(path, ModuleKind::Buildpack)
}

fn classify_extension(path: &[String]) -> Class {
    classify_module(path, ModuleKind::Extension)
}

fn classify_package(path: &[String]) -> Class {
    let Some(first) = path.first() else {
        return Class::Table;
    };
    let rest = &path[1..];
    match (first.as_str(), rest) {
        ("buildpack" | "extension" | "platform" | "dependencies", []) => Class::Table,
        ("buildpack" | "extension", [k]) if k == "uri" => Class::Leaf,
        ("platform", [k]) if k == "os" => Class::Leaf,
        ("dependencies", [k]) if k == "uri" || k == "image" => Class::Leaf,
        ("targets", rest) => classify_targets(rest, false),
        _ => Class::Unknown,
    }
}

// ---------------------------------------------------------------------------------------------
// buildpack.toml

#[derive(Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub(crate) struct RawInfo {
    id: Option<String>,
    name: Option<String>,
    version: Option<String>,
    description: Option<String>,
    homepage: Option<String>,
    keywords: Option<Vec<String>>,
    exec_env: Option<Vec<String>>,
    licenses: Option<Vec<RawLicense>>,
    clear_env: Option<bool>,
    optional: Option<bool>,
}

#[derive(Deserialize)]
pub(crate) struct RawLicense {
    #[serde(rename = "type")]
    kind: Option<String>,
    uri: Option<String>,
}

impl RawInfo {
    pub(crate) fn into_info(self) -> (ModuleInfo, bool) {
        let mut present = BTreeSet::new();
        let mut mark = |k: &str, yes: bool| {
            if yes {
                present.insert(k.to_string());
            }
        };
        mark("id", self.id.is_some());
        mark("name", self.name.is_some());
        mark("version", self.version.is_some());
        mark("description", self.description.is_some());
        mark("homepage", self.homepage.is_some());
        mark("keywords", self.keywords.is_some());
        mark("exec-env", self.exec_env.is_some());
        mark("licenses", self.licenses.is_some());
        mark("clear-env", self.clear_env.is_some());
        let info = ModuleInfo {
            id: self.id.unwrap_or_default(),
            name: self.name.unwrap_or_default(),
            version: self.version.unwrap_or_default(),
            description: self.description.unwrap_or_default(),
            homepage: self.homepage.unwrap_or_default(),
            keywords: self.keywords.unwrap_or_default(),
            exec_env: self.exec_env.unwrap_or_default(),
            licenses: self
                .licenses
                .unwrap_or_default()
                .into_iter()
                .map(|l| License {
                    kind: l.kind.unwrap_or_default(),
                    uri: l.uri.unwrap_or_default(),
                })
                .collect(),
            clear_env: self.clear_env.unwrap_or(false),
            present,
        };
        (info, self.optional.unwrap_or(false))
    }
}

#[derive(Deserialize)]
struct RawStack {
    id: Option<String>,
    mixins: Option<Vec<String>>,
}

#[derive(Deserialize)]
pub(crate) struct RawDistro {
    name: Option<String>,
    version: Option<String>,
}

#[derive(Deserialize)]
pub(crate) struct RawTarget {
    os: Option<String>,
    arch: Option<String>,
    variant: Option<String>,
    distros: Option<Vec<RawDistro>>,
    path: Option<String>,
}

impl RawTarget {
    pub(crate) fn into_target(self) -> Target {
        Target {
            os: self.os.unwrap_or_default(),
            arch: self.arch.unwrap_or_default(),
            variant: self.variant.unwrap_or_default(),
            distros: self
                .distros
                .unwrap_or_default()
                .into_iter()
                .map(|d| Distro {
                    name: d.name.unwrap_or_default(),
                    version: d.version.unwrap_or_default(),
                })
                .collect(),
            path: self.path,
        }
    }
}

#[derive(Deserialize)]
struct RawOrder {
    group: Option<Vec<RawInfo>>,
}

#[derive(Deserialize)]
struct RawModule {
    api: Option<String>,
    buildpack: Option<RawInfo>,
    extension: Option<RawInfo>,
    stacks: Option<Vec<RawStack>>,
    targets: Option<Vec<RawTarget>>,
    order: Option<Vec<RawOrder>>,
    #[serde(rename = "WithWindowsBuild")]
    with_windows_build: Option<bool>,
    #[serde(rename = "WithLinuxBuild")]
    with_linux_build: Option<bool>,
}

/// Parse a Buildpack API version like lifecycle's `api.NewVersion` (`^v?(\d+)\.(\d*)$`) and
/// normalize it to `%d.%d`. The error text is lifecycle's.
pub(crate) fn normalize_api(v: &str) -> std::result::Result<String, String> {
    let body = v.strip_prefix('v').unwrap_or(v);
    let Some((major, minor)) = body.split_once('.') else {
        return Err(format!(
            "invalid api version '{v}': could not parse '{v}' as version"
        ));
    };
    if major.is_empty()
        || !major.bytes().all(|b| b.is_ascii_digit())
        || !minor.bytes().all(|b| b.is_ascii_digit())
    {
        return Err(format!(
            "invalid api version '{v}': could not parse '{v}' as version"
        ));
    }
    let parse = |what: &str, s: &str| {
        s.parse::<u64>().map_err(|_| {
            let why = if s.is_empty() { "invalid syntax" } else { "value out of range" };
            format!("invalid api version '{v}': parsing {what} '{s}': strconv.ParseUint: parsing \"{s}\": {why}")
        })
    };
    let major = parse("major", major)?;
    let minor = parse("minor", minor)?;
    Ok(format!("{major}.{minor}"))
}

/// Whether a normalized API version (`major.minor`) is at least `major.minor`.
fn api_at_least(api: &str, major: u64, minor: u64) -> bool {
    let mut parts = api.split('.').map(|p| p.parse::<u64>().unwrap_or(0));
    let have = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    have >= (major, minor)
}

/// Read and check `buildpack.toml` (or a descriptor with an `[extension]` table).
/// Returns the descriptor and warnings (without pack's `Warning: ` prefix).
pub fn read_buildpack_toml(path: &Path) -> Result<(BuildpackDescriptor, Vec<String>)> {
    let text = crate::input::read_text(path, path)?;
    parse_buildpack_toml(path, &text)
}

/// Parse and check descriptor text; `path` is only used in error messages.
///
/// pack's rules: `api` normalized (assumed `0.1` when missing); unknown keys only warn
/// (`metadata`, `metadata.*` and `buildpack.sbom-formats` exempt); `'buildpack.id' is required`,
/// `'buildpack.version' is required`; `order` excludes `stacks`/`targets`. RFC 0128 additions:
/// `targets.path` is read; deprecated `[[stacks]]` and the old `[[targets.distributions]]` /
/// `versions` keys warn. The kind is [`ModuleKind::Extension`] when the file has an
/// `[extension]` table and no `[buildpack]` table.
pub fn parse_buildpack_toml(path: &Path, text: &str) -> Result<(BuildpackDescriptor, Vec<String>)> {
    let file = path
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_else(|| "buildpack.toml".into());
    let decode_err = |msg: String| Error::invalid(path, format!("decoding {file}: {msg}"));
    let doc = toml::de::DeTable::parse(text).map_err(|e| decode_err(toml_error(text, &e)))?;
    let raw: RawModule = toml::from_str(text).map_err(|e| decode_err(toml_error(text, &e)))?;

    let kind = if raw.buildpack.is_none() && raw.extension.is_some() {
        ModuleKind::Extension
    } else {
        ModuleKind::Buildpack
    };
    let api = match &raw.api {
        Some(v) => normalize_api(v).map_err(decode_err)?,
        None => ASSUMED_API.to_string(),
    };
    let info_raw = match kind {
        ModuleKind::Buildpack => raw.buildpack,
        ModuleKind::Extension => raw.extension,
    };
    let (info, _) = info_raw.unwrap_or_default().into_info();
    let mut d = BuildpackDescriptor {
        api,
        kind,
        info,
        targets: raw
            .targets
            .unwrap_or_default()
            .into_iter()
            .map(RawTarget::into_target)
            .collect(),
        ..Default::default()
    };
    if kind == ModuleKind::Buildpack {
        d.stacks = raw
            .stacks
            .unwrap_or_default()
            .into_iter()
            .map(|s| Stack {
                id: s.id.unwrap_or_default(),
                mixins: s.mixins.unwrap_or_default(),
            })
            .collect();
        d.order = raw
            .order
            .unwrap_or_default()
            .into_iter()
            .map(|o| OrderEntry {
                group: o
                    .group
                    .unwrap_or_default()
                    .into_iter()
                    .map(|g| {
                        let (info, optional) = g.into_info();
                        ModuleRef { info, optional }
                    })
                    .collect(),
            })
            .collect();
        d.with_windows_build = raw.with_windows_build.unwrap_or(false);
        d.with_linux_build = raw.with_linux_build.unwrap_or(false);
    }

    let mut warnings = Vec::new();
    let classify = match kind {
        ModuleKind::Buildpack => classify_buildpack as Classifier,
        ModuleKind::Extension => classify_extension as Classifier,
    };
    let unknown = undecoded_keys(doc.get_ref(), classify);
    if !unknown.is_empty() {
        warnings.push(format!(
            "Ignoring unexpected key(s) in descriptor for {} {}: {}",
            kind.table(),
            d.info.escaped_id(),
            unknown.join(", ")
        ));
    }
    if unknown.iter().any(|k| k == "targets.distributions") {
        warnings.push(format!(
            "{file}: [[targets.distributions]] is not read; use [[targets.distros]] with 'name' and 'version'"
        ));
    }
    if unknown.iter().any(|k| k == "targets.distros.versions") {
        warnings.push(format!(
            "{file}: 'versions' in [[targets.distros]] is not read; use one [[targets.distros]] entry per 'version'"
        ));
    }
    // `[[stacks]]` is deprecated from Buildpack API 0.10 on; below that it is the only way to
    // declare platforms, and next to `[[targets]]` it serves platforms that predate targets.
    if !d.stacks.is_empty() && d.targets.is_empty() && api_at_least(&d.api, 0, 10) {
        warnings.push(format!(
            "{file}: [[stacks]] is deprecated since Buildpack API 0.10 (buildpack {} uses API {}); declare its platforms with [[targets]]",
            d.info.id, d.api
        ));
    }

    let t = kind.table();
    if d.info.id.is_empty() {
        return Err(Error::invalid(path, format!("'{t}.id' is required")));
    }
    if d.info.version.is_empty() {
        return Err(Error::invalid(path, format!("'{t}.version' is required")));
    }
    match check_id_version(t, &d.info.id, &d.info.version) {
        Err(msg) => return Err(Error::invalid(path, msg)),
        Ok(Some(w)) => warnings.push(format!("{file}: {w}")),
        Ok(None) => {}
    }
    for target in &d.targets {
        crate::target::check_configured_target(target)
            .map_err(|e| Error::invalid(path, format!("[[targets]]: {e}")))?;
    }
    if !d.order.is_empty() && (!d.stacks.is_empty() || !d.targets.is_empty()) {
        return Err(Error::invalid(
            path,
            format!(
                "buildpack '{}': cannot have both 'targets'/'stacks' and an 'order' defined",
                d.info.full_name()
            ),
        ));
    }
    Ok((d, warnings))
}

// ---------------------------------------------------------------------------------------------
// package.toml

/// A `[[dependencies]]` entry. A deprecated `image = "ref"` becomes `uri = "docker://ref"`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Dependency {
    /// The dependency's URI or path (relative paths are relative to package.toml).
    pub uri: String,
}

/// A decoded `package.toml`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PackageConfig {
    /// `[buildpack] uri` (or `[extension] uri`).
    pub buildpack_uri: String,
    /// `[[dependencies]]`.
    pub dependencies: Vec<Dependency>,
    /// `[[targets]]` (used for composite buildpacks).
    pub targets: Vec<Target>,
    /// Deprecated `[platform] os`, when given (and not empty).
    pub platform_os: Option<String>,
    /// Buildpack or extension, by the table holding the uri.
    pub kind: ModuleKind,
}

#[derive(Deserialize)]
struct RawUri {
    uri: Option<String>,
}

#[derive(Deserialize)]
struct RawDependency {
    uri: Option<String>,
    image: Option<String>,
}

#[derive(Deserialize)]
struct RawPlatform {
    os: Option<String>,
}

#[derive(Deserialize)]
struct RawPackage {
    buildpack: Option<RawUri>,
    extension: Option<RawUri>,
    dependencies: Option<Vec<RawDependency>>,
    platform: Option<RawPlatform>,
    targets: Option<Vec<RawTarget>>,
}

/// pack's `'platform.os'` deprecation warning text (RFC 0128).
/// Verbatim pack text (compatibility), hence the flag name in a library message.
pub(crate) const PLATFORM_OS_DEPRECATED: &str = "'platform.os' field in package.toml will be deprecated, use new '--target' flag or `targets` field in buildpack.toml to set the platform.";

/// pack's warning for a dependency's `image` key.
pub(crate) const IMAGE_KEY_DEPRECATED: &str =
    "The 'image' key is deprecated. Use 'uri=\"docker://...\"' instead.";

impl PackageConfig {
    /// The configuration pack uses without `--config`: `uri` is `path` (from `--path`) or `"."`.
    pub fn default_for_path(path: Option<&Path>) -> PackageConfig {
        PackageConfig {
            buildpack_uri: path
                .map(|p| p.to_string_lossy().into_owned())
                .unwrap_or_else(|| ".".into()),
            ..Default::default()
        }
    }

    /// The operating system pack would use without targets (`platform.os`, default `linux`).
    pub fn os(&self) -> &str {
        self.platform_os.as_deref().unwrap_or("linux")
    }
}

/// Read and check `package.toml`. Returns the configuration and warnings.
pub fn read_package_toml(path: &Path) -> Result<(PackageConfig, Vec<String>)> {
    let text = crate::input::read_text(path, path)?;
    parse_package_toml(path, &text)
}

/// Parse and check package.toml text; `path` appears in messages.
///
/// pack's rules: unknown keys are an error (`unknown configuration element(s) ... in '<path>'`),
/// `missing 'buildpack.uri' configuration`, `platform.os` only `linux` or `windows`,
/// `dependency configured with both 'uri' and 'image'`, and a warning for `image`. RFC 0128: a
/// deprecation warning for `platform.os`.
pub fn parse_package_toml(path: &Path, text: &str) -> Result<(PackageConfig, Vec<String>)> {
    let decode_err = |msg: String| Error::invalid(path, format!("decoding toml: {msg}"));
    let doc = toml::de::DeTable::parse(text).map_err(|e| decode_err(toml_error(text, &e)))?;
    let raw: RawPackage = toml::from_str(text).map_err(|e| decode_err(toml_error(text, &e)))?;

    reject_unknown_keys(doc.get_ref(), classify_package, path)?;

    let bp_uri = raw.buildpack.and_then(|b| b.uri).unwrap_or_default();
    let ext_uri = raw.extension.and_then(|b| b.uri).unwrap_or_default();
    let (uri, kind) = match (bp_uri.is_empty(), ext_uri.is_empty()) {
        (true, true) => {
            return Err(Error::invalid(
                path,
                "missing 'buildpack.uri' configuration",
            ))
        }
        (false, true) => (bp_uri, ModuleKind::Buildpack),
        (true, false) => (ext_uri, ModuleKind::Extension),
        (false, false) => {
            return Err(Error::invalid(
                path,
                "cannot have both 'buildpack.uri' and 'extension.uri'",
            ))
        }
    };

    let mut warnings = Vec::new();
    let platform_os = raw.platform.and_then(|p| p.os).filter(|os| !os.is_empty());
    if let Some(os) = &platform_os {
        if os != "linux" && os != "windows" {
            return Err(Error::invalid(
                path,
                format!("invalid 'platform.os' configuration: only ['linux', 'windows'] is permitted, found '{os}'"),
            ));
        }
        warnings.push(PLATFORM_OS_DEPRECATED.to_string());
    }

    let mut dependencies = Vec::new();
    for dep in raw.dependencies.unwrap_or_default() {
        let uri = dep.uri.unwrap_or_default();
        let image = dep.image.unwrap_or_default();
        match (uri.is_empty(), image.is_empty()) {
            (false, false) => {
                return Err(Error::invalid(
                    path,
                    "dependency configured with both 'uri' and 'image'",
                ))
            }
            (false, true) => dependencies.push(Dependency { uri }),
            (true, false) => {
                warnings.push(IMAGE_KEY_DEPRECATED.to_string());
                dependencies.push(Dependency {
                    uri: format!("docker://{image}"),
                });
            }
            (true, true) => {
                return Err(Error::invalid(
                    path,
                    "dependency configured with neither 'uri' nor 'image'",
                ))
            }
        }
    }

    let targets: Vec<Target> = raw
        .targets
        .unwrap_or_default()
        .into_iter()
        .map(RawTarget::into_target)
        .collect();
    for target in &targets {
        crate::target::check_configured_target(target)
            .map_err(|e| Error::invalid(path, format!("[[targets]]: {e}")))?;
    }
    let cfg = PackageConfig {
        buildpack_uri: uri,
        dependencies,
        targets,
        platform_os,
        kind,
    };
    Ok((cfg, warnings))
}

/// pack's error text (RFC 0128) for `platform.os` together with `--target`.
/// Verbatim pack text (compatibility), hence the flag name in a library message.
pub(crate) const PLATFORM_OS_WITH_TARGET: &str = "'platform.os' and '--target' flag can not be used in conjunction, please remove 'platform.os' from package.toml, use new '--target' flag or `targets` field in buildpack.toml to set the platform";

/// RFC 0128: `[platform] os` and `--target` may not be used together (a usage error).
#[doc(hidden)] // pack-compatibility tables in the tests call it
pub fn check_platform_os_with_targets(cfg: &PackageConfig, have_target_flags: bool) -> Result<()> {
    if cfg.platform_os.is_some() && have_target_flags {
        return Err(Error::usage(PLATFORM_OS_WITH_TARGET));
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Labels

#[derive(Serialize)]
struct MetadataLabel<'a> {
    #[serde(flatten)]
    info: &'a ModuleInfo,
    stacks: Option<&'a [Stack]>,
}

/// The `io.buildpacks.buildpackage.metadata` label: the main module's info, then `stacks`
/// (always present; `null` when `None`, as for extensions). Byte-equal to pack's Go output.
#[doc(hidden)] // pack-compatibility tables in the tests call it
pub fn buildpackage_metadata_label(info: &ModuleInfo, stacks: Option<&[Stack]>) -> String {
    go_marshal(&MetadataLabel { info, stacks })
}

/// One module's entry in the layers label (pack's `dist.ModuleLayerInfo`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModuleLayerInfo {
    /// Buildpack API (`null` only if unknown).
    pub api: Option<String>,
    /// Stacks.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stacks: Vec<Stack>,
    /// Targets as written in buildpack.toml (`path` is never serialized).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub targets: Vec<Target>,
    /// Order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub order: Vec<OrderEntry>,
    /// `sha256:<hex>` of the uncompressed layer.
    #[serde(rename = "layerDiffID", default)]
    pub layer_diff_id: String,
    /// Homepage.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub homepage: String,
    /// Name.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
}

impl ModuleLayerInfo {
    /// The entry pack writes for `d` with layer `diff_id` (`AddToLayersMD`).
    pub fn from_descriptor(d: &BuildpackDescriptor, diff_id: &str) -> ModuleLayerInfo {
        ModuleLayerInfo {
            api: Some(d.api.clone()),
            stacks: d.stacks.clone(),
            targets: d.targets.clone(),
            order: d.order.clone(),
            layer_diff_id: diff_id.to_string(),
            homepage: d.info.homepage.clone(),
            name: d.info.name.clone(),
        }
    }
}

/// The `io.buildpacks.buildpack.layers` (or `.extension.layers`) label: id → version → entry,
/// keys sorted bytewise as Go does.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct LayersLabel(pub BTreeMap<String, BTreeMap<String, ModuleLayerInfo>>);

impl LayersLabel {
    /// An empty label.
    pub fn new() -> LayersLabel {
        LayersLabel::default()
    }

    /// Add (or replace) the entry of descriptor `d` with layer `diff_id`.
    pub fn insert(&mut self, d: &BuildpackDescriptor, diff_id: &str) {
        self.insert_info(
            &d.info.id,
            &d.info.version,
            ModuleLayerInfo::from_descriptor(d, diff_id),
        );
    }

    /// Add (or replace) an entry (for example one read from a dependency package's label).
    pub fn insert_info(&mut self, id: &str, version: &str, info: ModuleLayerInfo) {
        self.0
            .entry(id.to_string())
            .or_default()
            .insert(version.to_string(), info);
    }

    /// Look an entry up.
    pub fn get(&self, id: &str, version: &str) -> Option<&ModuleLayerInfo> {
        self.0.get(id)?.get(version)
    }

    /// Whether there are no entries.
    pub fn is_empty(&self) -> bool {
        self.0.values().all(|v| v.is_empty())
    }

    /// The label value, byte-equal to pack's.
    pub fn to_json(&self) -> String {
        go_marshal(self)
    }

    /// Read a label value written by pack (or by us).
    pub fn parse(s: &str) -> Result<LayersLabel> {
        serde_json::from_str(s).map_err(|e| Error::other(format!("invalid layers label: {e}")))
    }
}

/// The label value of `io.buildpacks.buildpackage.metadata` read back.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct PackageMetadata {
    /// The main module.
    #[serde(flatten)]
    pub info: ModuleInfo,
    /// Resolved stacks (`None` for `null`).
    #[serde(default)]
    pub stacks: Option<Vec<Stack>>,
}

impl PackageMetadata {
    /// Parse the metadata label.
    pub fn parse(s: &str) -> Result<PackageMetadata> {
        serde_json::from_str(s).map_err(|e| Error::other(format!("invalid metadata label: {e}")))
    }

    /// Serialize again (byte-equal to pack's for pack's labels).
    pub fn to_json(&self) -> String {
        buildpackage_metadata_label(&self.info, self.stacks.as_deref())
    }
}

// ---------------------------------------------------------------------------------------------
// Stacks and composite validation

/// pack's `MergeCompatible`: stacks both lists support (mixins unioned and sorted); a `*` on one
/// side yields the other side, on both sides `[{"id":"*"}]`.
#[doc(hidden)] // pack-compatibility tables in the tests call it
pub fn merge_compatible(a: &[Stack], b: &[Stack]) -> Vec<Stack> {
    let a_wild = a.iter().any(|s| s.id == "*");
    let b_wild = b.iter().any(|s| s.id == "*");
    if a_wild && b_wild {
        return vec![Stack {
            id: "*".into(),
            mixins: Vec::new(),
        }];
    }
    if a_wild {
        return b.to_vec();
    }
    if b_wild {
        return a.to_vec();
    }
    // Go's map: a later duplicate ID in `a` wins.
    let mut set: BTreeMap<&str, &[String]> = BTreeMap::new();
    for s in a {
        set.insert(&s.id, &s.mixins);
    }
    let mut out = Vec::new();
    for s in b {
        if let Some(m) = set.get(s.id.as_str()) {
            let mixins: BTreeSet<String> = m.iter().chain(s.mixins.iter()).cloned().collect();
            out.push(Stack {
                id: s.id.clone(),
                mixins: mixins.into_iter().collect(),
            });
        }
    }
    out
}

fn effective_stacks(d: &BuildpackDescriptor) -> Vec<Stack> {
    if d.stacks.is_empty() && d.order.is_empty() {
        vec![Stack {
            id: "*".into(),
            mixins: Vec::new(),
        }]
    } else {
        d.stacks.clone()
    }
}

/// pack's `resolvedStacks`: start from the main buildpack's stacks and merge every module's
/// (`modules` = all dependency modules); non-composite buildpacks without stacks count as `*`,
/// composites are skipped.
#[doc(hidden)] // pack-compatibility tables in the tests call it
pub fn resolve_stacks(main: &BuildpackDescriptor, modules: &[BuildpackDescriptor]) -> Vec<Stack> {
    let mut stacks = effective_stacks(main);
    for m in modules {
        let s = effective_stacks(m);
        if stacks.is_empty() {
            stacks = s;
        } else if !s.is_empty() {
            stacks = merge_compatible(&stacks, &s);
        }
    }
    stacks
}

/// pack's `validateBuildpacks`: every order entry names a version, every referenced module is
/// among `modules`, every module in `modules` is referenced by some order. Messages are pack's.
#[doc(hidden)] // pack-compatibility tables in the tests call it
pub fn validate_composite(
    main: &BuildpackDescriptor,
    modules: &[BuildpackDescriptor],
) -> Result<()> {
    let mut refs: BTreeMap<String, usize> = BTreeMap::new();
    let mut dep_names: Vec<String> = Vec::new();
    for m in modules {
        let n = m.info.full_name();
        if !refs.contains_key(&n) {
            dep_names.push(n.clone());
        }
        refs.insert(n, 0);
    }
    for d in std::iter::once(main).chain(modules.iter()) {
        for entry in &d.order {
            for g in &entry.group {
                let full = g.info.full_name();
                if g.info.version.is_empty() {
                    return Err(Error::other(format!(
                        "buildpack '{}' must specify a version when referencing buildpack '{}': buildpack '{}' does not have a version defined",
                        d.info.full_name(),
                        full,
                        g.info.id
                    )));
                }
                match refs.get_mut(&full) {
                    Some(n) => *n += 1,
                    None => {
                        return Err(Error::other(format!(
                            "buildpack '{}' references buildpack '{}' which is not present",
                            d.info.full_name(),
                            full
                        )))
                    }
                }
            }
        }
    }
    for n in dep_names {
        if refs[&n] == 0 {
            return Err(Error::other(format!(
                "buildpack '{}' is not used by buildpack '{}'",
                n,
                main.info.full_name()
            )));
        }
    }
    Ok(())
}

/// pack's package validation for a buildpack: [`validate_composite`], then the resolved stacks,
/// which must not be empty (`no compatible stacks among provided buildpacks`). Extensions have
/// no stacks: `Ok(None)` (their metadata label says `"stacks":null`).
#[doc(hidden)] // pack-compatibility tables in the tests call it
pub fn validate_package(
    main: &BuildpackDescriptor,
    modules: &[BuildpackDescriptor],
) -> Result<Option<Vec<Stack>>> {
    if main.kind == ModuleKind::Extension {
        return Ok(None);
    }
    validate_composite(main, modules)?;
    let stacks = resolve_stacks(main, modules);
    if stacks.is_empty() {
        return Err(Error::other(
            "no compatible stacks among provided buildpacks",
        ));
    }
    Ok(Some(stacks))
}

/// `(id, version)` from a buildpack.toml or extension.toml text, read leniently (a layer's
/// descriptor, checked against the label that names it).
pub(crate) fn id_version_of(text: &str) -> Option<(String, String)> {
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
    fn api_normalization() {
        assert_eq!(normalize_api("v0.10").unwrap(), "0.10");
        assert_eq!(normalize_api("0.02").unwrap(), "0.2");
        assert_eq!(
            normalize_api("1").unwrap_err(),
            "invalid api version '1': could not parse '1' as version"
        );
        assert!(normalize_api("0.")
            .unwrap_err()
            .contains("parsing minor ''"));
    }

    #[test]
    fn ids_and_versions_that_become_paths() {
        for id in ["a", "a/b", "io.buildpacks.x-y", "A_b+c", "app"] {
            assert_eq!(id_problem(id), None, "{id}");
        }
        for id in [
            "", ".", "..", "a/../b", "a//b", "/a", "a/", "a\\b", "a\0b", "a\u{1b}",
        ] {
            assert!(id_problem(id).is_some(), "{id:?}");
        }
        for v in ["1.0.0", "1.0.0-rc.1+build", "v2"] {
            assert_eq!(version_problem(v), None, "{v}");
        }
        for v in ["", ".", "..", "../../etc", "1.0/x", "1\\x", "1\0", "1\n"] {
            assert!(version_problem(v).is_some(), "{v:?}");
        }
        assert!(id_warning("app").is_some());
        assert!(id_warning("config").is_some());
        assert!(id_warning("A_b").is_some());
        assert!(id_warning("a/b.c-d").is_none());
    }

    #[test]
    fn key_quoting() {
        assert_eq!(quote_key("a-b_c"), "a-b_c");
        assert_eq!(quote_key("a.b"), "\"a.b\"");
        assert_eq!(quote_key(""), "\"\"");
    }
}
