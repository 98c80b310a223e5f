//! Targets (os/arch/variant/distros): pack's `--target` grammar, distro expansion, the RFC 0128 platform root folder and `--split` naming.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs;
use std::io;
use std::path::{Component, Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, IoResultExt, Result};

/// A distribution (`[[targets.distros]]`): `name` and `version`, both optional in pack's JSON.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Distro {
    /// Distribution name (`ubuntu`); empty for Windows by the spec's recommendation.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// Distribution version (`22.04`; the `os.version` for Windows).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub version: String,
}

impl Distro {
    /// `name@version`, as pack formats a distro folder (a missing version gives `name@`).
    pub fn folder_name(&self) -> String {
        format!("{}@{}", self.name, self.version)
    }
}

/// One `[[targets]]` entry or `--target` value. Serializes like pack's `dist.Target` (the
/// `path` is an input for packaging only and never appears in labels).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Target {
    /// Operating system (`linux`, `windows`).
    #[serde(default)]
    pub os: String,
    /// Architecture (`amd64`, `arm64`); always emitted in JSON, even empty.
    #[serde(default)]
    pub arch: String,
    /// Architecture variant (`v7`); omitted from JSON when empty.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub variant: String,
    /// Distributions; omitted from JSON when empty.
    #[serde(default, rename = "distros", skip_serializing_if = "Vec::is_empty")]
    pub distros: Vec<Distro>,
    /// RFC 0128 `targets.path`: the platform root folder, relative to the buildpack root.
    #[serde(skip)]
    pub path: Option<String>,
}

impl Target {
    /// The target as `os/arch/variant:name@version;name@version` (empty parts left out), for messages.
    pub fn display(&self) -> String {
        let mut s = join_platform(&self.os, &self.arch, &self.variant);
        if !self.distros.is_empty() {
            s.push(':');
            let ds: Vec<String> = self.distros.iter().map(distro_display).collect();
            s.push_str(&ds.join(";"));
        }
        s
    }
}

/// A target after distro expansion: at most one distro (pack's `ExpandTargetsDistributions`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct ExpandedTarget {
    /// Operating system.
    pub os: String,
    /// Architecture.
    pub arch: String,
    /// Architecture variant.
    pub variant: String,
    /// The single distro of this platform, if any.
    pub distro: Option<Distro>,
    /// RFC 0128 `targets.path`, inherited from the target.
    pub path: Option<String>,
}

impl ExpandedTarget {
    /// The target as `os/arch/variant:name@version`, for messages.
    pub fn display(&self) -> String {
        let mut s = join_platform(&self.os, &self.arch, &self.variant);
        if let Some(d) = &self.distro {
            s.push(':');
            s.push_str(&distro_display(d));
        }
        s
    }

    /// pack's `ValuesAsSlice`: `[os, arch, variant, "name@version"]` with empty values left out.
    pub fn values_as_slice(&self) -> Vec<String> {
        let mut v = Vec::new();
        for part in [&self.os, &self.arch, &self.variant] {
            if !part.is_empty() {
                v.push(part.clone());
            }
        }
        if let Some(d) = &self.distro {
            v.push(d.folder_name());
        }
        v
    }

    /// Back to a [`Target`] with zero or one distro.
    pub fn to_target(&self) -> Target {
        Target {
            os: self.os.clone(),
            arch: self.arch.clone(),
            variant: self.variant.clone(),
            distros: self.distro.iter().cloned().collect(),
            path: self.path.clone(),
        }
    }
}

fn join_platform(os: &str, arch: &str, variant: &str) -> String {
    let parts: Vec<&str> = [os, arch, variant]
        .into_iter()
        .filter(|p| !p.is_empty())
        .collect();
    parts.join("/")
}

fn distro_display(d: &Distro) -> String {
    if d.version.is_empty() {
        d.name.clone()
    } else {
        format!("{}@{}", d.name, d.version)
    }
}

/// Expand every target with more than one distro into one target per distro, in order.
#[doc(hidden)] // pack-compatibility tables in the tests call it
pub fn expand_distros(targets: &[Target]) -> Vec<ExpandedTarget> {
    let mut out = Vec::new();
    for t in targets {
        let base = |distro: Option<Distro>| ExpandedTarget {
            os: t.os.clone(),
            arch: t.arch.clone(),
            variant: t.variant.clone(),
            distro,
            path: t.path.clone(),
        };
        if t.distros.is_empty() {
            out.push(base(None));
        } else {
            for d in &t.distros {
                out.push(base(Some(d.clone())));
            }
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// --target parsing (pack:internal/target/parse.go, platform.go)

const OS_ARCHS: &[(&str, &[&str])] = &[
    ("aix", &["ppc64"]),
    ("android", &["386", "amd64", "arm", "arm64"]),
    ("darwin", &["amd64", "arm64"]),
    ("dragonfly", &["amd64"]),
    ("freebsd", &["386", "amd64", "arm"]),
    ("illumos", &["amd64"]),
    ("ios", &["arm64"]),
    ("js", &["wasm"]),
    (
        "linux",
        &[
            "386", "amd64", "arm", "arm64", "loong64", "mips", "mipsle", "mips64", "mips64le",
            "ppc64", "ppc64le", "riscv64", "s390x",
        ],
    ),
    ("netbsd", &["386", "amd64", "arm"]),
    ("openbsd", &["386", "amd64", "arm", "arm64"]),
    ("plan9", &["386", "amd64", "arm"]),
    ("solaris", &["amd64"]),
    ("wasip1", &["wasm"]),
    ("windows", &["386", "amd64", "arm", "arm64"]),
];

const ARCH_VARIANTS: &[(&str, &[&str])] = &[
    ("386", &["softfloat", "sse2"]),
    ("arm", &["v5", "v6", "v7"]),
    ("amd64", &["v1", "v2", "v3", "v4"]),
    ("mips", &["hardfloat", "softfloat"]),
    ("mipsle", &["hardfloat", "softfloat"]),
    ("mips64", &["hardfloat", "softfloat"]),
    ("mips64le", &["hardfloat", "softfloat"]),
    ("ppc64", &["power8", "power9"]),
    ("ppc64le", &["power8", "power9"]),
    ("wasm", &["satconv", "signext"]),
];

/// Whether `os` is in pack's table of operating systems.
pub(crate) fn supports_os(os: &str) -> bool {
    OS_ARCHS.iter().any(|(o, _)| *o == os)
}

fn supports_arch(os: &str, arch: &str) -> bool {
    OS_ARCHS
        .iter()
        .any(|(o, archs)| *o == os && archs.contains(&arch))
}

fn supports_variant(arch: &str, variant: &str) -> bool {
    variant.is_empty()
        || ARCH_VARIANTS
            .iter()
            .any(|(a, vs)| *a == arch && vs.contains(&variant))
}

/// Whether pack's table accepts `os/arch/variant` (an arch is required).
pub(crate) fn supports_platform(os: &str, arch: &str, variant: &str) -> bool {
    supports_arch(os, arch) && supports_variant(arch, variant)
}

/// Split one flag value the way pflag's `StringSlice` does (a CSV record: commas separate
/// values, double quotes quote them; an empty flag value gives no values). The error is encoding/csv's
/// text, for the caller to put after the flag's name.
pub fn split_list(value: &str) -> std::result::Result<Vec<String>, String> {
    if value.is_empty() {
        return Ok(Vec::new());
    }
    let mut fields = Vec::new();
    let mut chars = value.chars().peekable();
    let mut field = String::new();
    let mut col = 0usize;
    loop {
        // Start of a field.
        if chars.peek() == Some(&'"') {
            chars.next();
            col += 1;
            loop {
                match chars.next() {
                    None => return Err(QUOTE_ERROR.to_string()),
                    Some('"') => {
                        col += 1;
                        if chars.peek() == Some(&'"') {
                            chars.next();
                            col += 1;
                            field.push('"');
                        } else {
                            break;
                        }
                    }
                    Some(c) => {
                        col += 1;
                        field.push(c);
                    }
                }
            }
            match chars.next() {
                None => {
                    fields.push(std::mem::take(&mut field));
                    break;
                }
                Some(',') => {
                    col += 1;
                    fields.push(std::mem::take(&mut field));
                }
                Some('\n') | Some('\r') => {
                    fields.push(std::mem::take(&mut field));
                    break;
                }
                Some(_) => return Err(QUOTE_ERROR.to_string()),
            }
        } else {
            loop {
                match chars.next() {
                    None | Some('\n') => {
                        fields.push(
                            std::mem::take(&mut field)
                                .trim_end_matches('\r')
                                .to_string(),
                        );
                        return Ok(fields);
                    }
                    Some(',') => {
                        col += 1;
                        fields.push(std::mem::take(&mut field));
                        break;
                    }
                    Some('"') => {
                        return Err(format!(
                            "parse error on line 1, column {}: bare \" in non-quoted field",
                            col + 1
                        ))
                    }
                    Some(c) => {
                        col += 1;
                        field.push(c);
                    }
                }
            }
        }
    }
    Ok(fields)
}

/// encoding/csv's text for a quote that does not open or close a field.
const QUOTE_ERROR: &str = "extraneous or missing \" in quoted-field";

/// Parse `--target` flag values with pack's grammar: each value is split on commas (pflag
/// `StringSlice`), then each `os[/arch[/variant]][:name@version[;name@version]...]` is checked
/// against pack's OS/arch/variant tables. Warnings (pack's texts, without the `Warning: ` prefix)
/// are returned; errors are [`Error::Usage`] with pack's texts. Warnings printed by pack before
/// an error are lost here; use [`parse_target_flags_into`] to keep them.
pub fn parse_target_flags(values: &[String]) -> Result<(Vec<Target>, Vec<String>)> {
    let mut warnings = Vec::new();
    let targets = parse_target_flags_into(values, &mut warnings)?;
    Ok((targets, warnings))
}

/// Like [`parse_target_flags`], but pushes warnings into `warnings` even when it fails.
#[doc(hidden)] // pack-compatibility tables in the tests call it
pub fn parse_target_flags_into(
    values: &[String],
    warnings: &mut Vec<String>,
) -> Result<Vec<Target>> {
    let mut targets = Vec::new();
    for value in values {
        let list = split_list(value)
            .map_err(|e| Error::usage(format!("invalid target list {value:?}: {e}")))?;
        for one in list {
            targets.push(parse_target(&one, warnings)?);
        }
    }
    Ok(targets)
}

/// Parse one target string (pack's `ParseTarget`), pushing warnings into `warnings`.
pub fn parse_target(t: &str, warnings: &mut Vec<String>) -> Result<Target> {
    // getTarget
    let parts: Vec<&str> = t.split(':').collect();
    let mut non_distro: Vec<&str> = Vec::new();
    let mut target_err = None;
    if parts.len() == 1 && parts[0].is_empty() {
        target_err = Some(Error::usage(format!(
            "invalid target {t}, atleast one of [os][/arch][/archVariant] must be specified"
        )));
    } else if parts.len() == 2 && parts[0].is_empty() {
        warnings.push(format!(
            "adding distros {} without [os][/arch][/variant]",
            parts[1]
        ));
    } else {
        non_distro = parts[0].split('/').collect();
    }
    let distros = parts.get(1).copied().unwrap_or("");
    if non_distro.len() <= 1 && non_distro.first().copied().unwrap_or("").is_empty() {
        warnings.push("os/arch must be defined".to_string());
    }
    if let Some(e) = target_err {
        return Err(e);
    }
    // getPlatform
    let os = non_distro.first().copied().unwrap_or("");
    let arch = non_distro.get(1).copied().unwrap_or("");
    let variant = non_distro.get(2).copied().unwrap_or("");
    if !supports_os(os) && supports_variant(arch, variant) {
        warnings.push(format!("unknown os {os}, is this a typo"));
    }
    if supports_arch(os, arch) && !supports_variant(arch, variant) {
        warnings.push(format!("unknown variant {variant}"));
    }
    if supports_os(os) && !supports_arch(os, arch) && supports_variant(arch, variant) {
        warnings.push(format!("unknown arch {arch}"));
    }
    if !supports_platform(os, arch, variant) {
        return Err(Error::usage(format!(
            "unknown target: '{}'",
            non_distro.join("/")
        )));
    }
    let distros = if os == "windows" {
        parse_windows_distros(distros, warnings)?
    } else {
        parse_distros(distros, warnings)?
    };
    let target = Target {
        os: os.into(),
        arch: arch.into(),
        variant: variant.into(),
        distros,
        path: None,
    };
    // The same rules as targets from configuration files (distro values become folder names).
    check_configured_target(&target)
        .map_err(|e| Error::usage(format!("invalid target {t}: {e}")))?;
    Ok(target)
}

/// Check a target from buildpack.toml or package.toml against what a `--target` value can
/// say: os, arch and variant are plain names (letters, digits, `.`, `_`, `-`; not `.` or `..`),
/// distro names and versions have no control characters, path separators or the `--target`
/// delimiters `:;@,"`. These values become folder names, file name suffixes and annotations.
pub(crate) fn check_configured_target(t: &Target) -> std::result::Result<(), String> {
    for (what, v) in [("os", &t.os), ("arch", &t.arch), ("variant", &t.variant)] {
        let plain = v
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '_' || c == '-');
        if !v.is_empty() && (!plain || v == "." || v == "..") {
            return Err(format!(
                "{what} {v:?} is not a valid value (letters, digits, '.', '_' and '-' only)"
            ));
        }
    }
    for d in &t.distros {
        for (what, v) in [("name", &d.name), ("version", &d.version)] {
            let bad = v
                .chars()
                .any(|c| c.is_control() || matches!(c, '/' | '\\' | ':' | ';' | '@' | ',' | '"'));
            if bad || v == "." || v == ".." {
                return Err(format!(
                    "distro {what} {v:?} is not a valid value (no control characters, '/', '\\', ':', ';', '@', ',' or '\"')"
                ));
            }
        }
    }
    Ok(())
}

/// pack's `ParseDistros`: `name@version` entries separated by `;`.
pub(crate) fn parse_distros(s: &str, warnings: &mut Vec<String>) -> Result<Vec<Distro>> {
    if s.is_empty() {
        return Ok(Vec::new());
    }
    s.split(';').map(|d| parse_distro(d, warnings)).collect()
}

/// Windows distros as [`parse_distros`], but `@version` (no name) is accepted: the spec wants
/// Windows distros without a name, their version being the `os.version`, and that is how such a
/// platform is displayed.
fn parse_windows_distros(s: &str, warnings: &mut Vec<String>) -> Result<Vec<Distro>> {
    if s.is_empty() {
        return Ok(Vec::new());
    }
    s.split(';')
        .map(|d| match d.strip_prefix('@') {
            Some(version) if !version.is_empty() && !version.contains('@') => Ok(Distro {
                name: String::new(),
                version: version.to_string(),
            }),
            _ => parse_distro(d, warnings),
        })
        .collect()
}

fn parse_distro(s: &str, warnings: &mut Vec<String>) -> Result<Distro> {
    let d: Vec<&str> = s.split('@').collect();
    if d[0].is_empty() {
        return Err(Error::usage(format!(
            "distro's versions '@{}' cannot be specified without distro's name",
            d[1..].join("@")
        )));
    }
    if d.len() < 2 {
        warnings.push(format!(
            "distro with name '{}' has no specific version!",
            d[0]
        ));
        return Ok(Distro {
            name: d[0].into(),
            version: String::new(),
        });
    }
    if d.len() > 2 {
        return Err(Error::usage(format!("invalid distro: {s}")));
    }
    Ok(Distro {
        name: d[0].into(),
        version: d[1].into(),
    })
}

// ---------------------------------------------------------------------------------------------
// Platform root folder (pack:pkg/buildpack/multi_architecture_helper.go + RFC 0128 targets.path)

/// Where a target's files come from.
#[derive(Debug, Clone, PartialEq, Eq)]
#[doc(hidden)]
pub struct PlatformRoot {
    /// The folder: `<root>/<os>/<arch>/...` as deep as it exists, `<root>/<targets.path>`, or the root.
    pub dir: PathBuf,
    /// Whether `dir` is the buildpack root itself (no platform folder applies).
    pub is_root: bool,
}

fn is_eloop(e: &io::Error) -> bool {
    e.raw_os_error() == Some(libc::ELOOP)
}

/// Whether `seg` is a single ordinary path component (not empty, `.`, `..`, nor containing a separator).
fn plain_component(seg: &str) -> bool {
    let mut comps = Path::new(seg).components();
    matches!(comps.next(), Some(Component::Normal(_)))
        && comps.next().is_none()
        && !seg.contains(['/', '\\'])
}

fn canonical_root(root: &Path) -> Result<PathBuf> {
    fs::canonicalize(root).at(root)
}

/// Find the platform root folder of `t` below `buildpack_root`.
///
/// With `targets.path`, that folder (relative to the root) is used; it must exist, be a
/// directory and stay inside the root after resolving symbolic links. Otherwise pack's rule
/// applies: descend `os/arch/variant/name@version` (empty values skipped) while each folder
/// exists; the deepest match is used if at least the OS folder matched, else the root. A symbolic
/// link loop on the way is an error, and so is a folder that leaves the root through a link.
#[doc(hidden)] // pack-compatibility tables in the tests call it
pub fn platform_root(buildpack_root: &Path, t: &ExpandedTarget) -> Result<PlatformRoot> {
    if let Some(p) = &t.path {
        return targets_path_root(buildpack_root, t, p);
    }
    let mut cur = buildpack_root.to_path_buf();
    let mut found = false;
    for seg in t.values_as_slice() {
        if !plain_component(&seg) {
            break;
        }
        let candidate = cur.join(&seg);
        match fs::metadata(&candidate) {
            Ok(m) if m.is_dir() => {
                cur = candidate;
                found = true;
            }
            Ok(_) => break,
            Err(e) if is_eloop(&e) => {
                return Err(Error::invalid(
                    candidate,
                    format!(
                        "symbolic link loop while looking for the platform folder of target '{}'",
                        t.display()
                    ),
                ))
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
                ) =>
            {
                break
            }
            Err(e) => return Err(Error::io(candidate, e)),
        }
    }
    if !found {
        return Ok(PlatformRoot {
            dir: buildpack_root.to_path_buf(),
            is_root: true,
        });
    }
    let real_root = canonical_root(buildpack_root)?;
    let real = fs::canonicalize(&cur).at(&cur)?;
    if !real.starts_with(&real_root) {
        return Err(Error::invalid(
            cur,
            format!(
                "the platform folder of target '{}' resolves outside the buildpack root through a symbolic link",
                t.display()
            ),
        ));
    }
    let is_root = real == real_root;
    Ok(PlatformRoot { dir: cur, is_root })
}

fn targets_path_root(root: &Path, t: &ExpandedTarget, p: &str) -> Result<PlatformRoot> {
    let candidate = root.join(p);
    let real_root = canonical_root(root)?;
    let real = match fs::canonicalize(&candidate) {
        Ok(r) => r,
        Err(e) if is_eloop(&e) => {
            return Err(Error::invalid(
                candidate,
                format!(
                    "targets.path '{p}' of target '{}' is a symbolic link loop",
                    t.display()
                ),
            ))
        }
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
            ) =>
        {
            return Err(Error::invalid(
                candidate,
                format!(
                    "targets.path '{p}' of target '{}' does not exist",
                    t.display()
                ),
            ))
        }
        Err(e) => return Err(Error::io(candidate, e)),
    };
    if !real.starts_with(&real_root) {
        return Err(Error::invalid(
            candidate,
            format!(
                "targets.path '{p}' of target '{}' points outside the buildpack root",
                t.display()
            ),
        ));
    }
    if !real.is_dir() {
        return Err(Error::invalid(
            candidate,
            format!(
                "targets.path '{p}' of target '{}' is not a directory",
                t.display()
            ),
        ));
    }
    let is_root = real == real_root;
    Ok(PlatformRoot {
        dir: if is_root {
            root.to_path_buf()
        } else {
            candidate
        },
        is_root,
    })
}

// ---------------------------------------------------------------------------------------------
// --split naming

fn name_part(s: &str) -> String {
    s.replace(['/', '\\'], "_")
}

/// The RFC 0128 file name suffix of a platform: `-<os>[-<arch>][-<variant>][-<name>@<version>]`
/// (empty values left out; path separators in values become `_`).
#[doc(hidden)] // pack-compatibility tables in the tests call it
pub fn split_suffix(t: &ExpandedTarget) -> String {
    let mut s = String::new();
    for part in [&t.os, &t.arch, &t.variant] {
        if !part.is_empty() {
            let _ = write!(s, "-{}", name_part(part));
        }
    }
    if let Some(d) = &t.distro {
        if !d.name.is_empty() || !d.version.is_empty() {
            let _ = write!(s, "-{}@{}", name_part(&d.name), name_part(&d.version));
        }
    }
    s
}

/// Apply [`split_suffix`] to an output path: `out/x.cnb` → `out/x-linux-arm64-v8.cnb`. The
/// extension is Go's `filepath.Ext` of the file name (from the last dot); without one the suffix
/// is appended.
#[doc(hidden)] // pack-compatibility tables in the tests call it
pub fn split_output_path(output: &Path, t: &ExpandedTarget) -> PathBuf {
    let file = output
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_default();
    let (base, ext) = match file.rfind('.') {
        Some(i) => (&file[..i], &file[i..]),
        None => (file.as_str(), ""),
    };
    let name = format!("{base}{}{ext}", split_suffix(t));
    output.with_file_name(name)
}

/// Check that no two platforms are the same and that no two would get the same `--split` file
/// name (compared without regard to case, for case-insensitive file systems).
#[doc(hidden)] // pack-compatibility tables in the tests call it
pub fn validate_unique(targets: &[ExpandedTarget]) -> Result<()> {
    let mut seen: BTreeMap<String, &ExpandedTarget> = BTreeMap::new();
    let mut platforms: BTreeMap<(String, String, String, Option<Distro>), &ExpandedTarget> =
        BTreeMap::new();
    for t in targets {
        let key = (
            t.os.clone(),
            t.arch.clone(),
            t.variant.clone(),
            t.distro.clone(),
        );
        if let Some(prev) = platforms.insert(key, t) {
            return Err(Error::other(format!(
                "target '{}' is given more than once (also as '{}')",
                t.display(),
                prev.display()
            )));
        }
        let suffix = split_suffix(t);
        if let Some(prev) = seen.insert(suffix.to_lowercase(), t) {
            return Err(Error::other(format!(
                "targets '{}' and '{}' would both be written with the file name suffix '{}'",
                prev.display(),
                t.display(),
                suffix
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(v: &str) -> (Result<Target>, Vec<String>) {
        let mut w = Vec::new();
        (parse_target(v, &mut w), w)
    }

    #[test]
    fn parses_full_target() {
        let (t, w) = p("linux/arm/v6:ubuntu@18.01;ubuntu@21.01");
        let t = t.unwrap();
        assert!(w.is_empty());
        assert_eq!(t.display(), "linux/arm/v6:ubuntu@18.01;ubuntu@21.01");
        assert_eq!(expand_distros(&[t]).len(), 2);
    }

    #[test]
    fn csv_splitting() {
        assert_eq!(split_list("a,b").unwrap(), vec!["a", "b"]);
        assert_eq!(split_list("\"a,b\",c").unwrap(), vec!["a,b", "c"]);
        assert_eq!(split_list("a,").unwrap(), vec!["a", ""]);
        assert!(split_list("").unwrap().is_empty());
        assert!(split_list("a\"b").is_err());
    }

    #[test]
    fn suffix() {
        let t = ExpandedTarget {
            os: "linux".into(),
            arch: "arm64".into(),
            variant: "v8".into(),
            ..Default::default()
        };
        assert_eq!(
            split_output_path(Path::new("d/x.cnb"), &t),
            PathBuf::from("d/x-linux-arm64-v8.cnb")
        );
    }

    /// One `--target` item → its display (or the error) and pack's warnings.
    #[test]
    fn parse_target_table() {
        let ok: &[(&str, &str, &[&str])] = &[
            ("linux/amd64", "linux/amd64", &[]),
            ("linux/arm/v7", "linux/arm/v7", &[]),
            ("linux/arm64:ubuntu@22.04", "linux/arm64:ubuntu@22.04", &[]),
            (
                "linux/amd64:ubuntu@22.04;alpine@3.19",
                "linux/amd64:ubuntu@22.04;alpine@3.19",
                &[],
            ),
            (
                "linux/amd64:ubuntu",
                "linux/amd64:ubuntu",
                &["distro with name 'ubuntu' has no specific version!"],
            ),
            (
                "windows/amd64:@10.0.20348",
                "windows/amd64:@10.0.20348",
                &[],
            ),
            (
                "windows/amd64:windows@10.0.20348",
                "windows/amd64:windows@10.0.20348",
                &[],
            ),
        ];
        for (input, display, warnings) in ok {
            let (t, w) = p(input);
            let t = t.unwrap_or_else(|e| panic!("{input}: {e}"));
            assert_eq!(t.display(), *display, "{input}");
            assert_eq!(w, *warnings, "{input}");
            assert!(t.path.is_none(), "{input}");
        }
        let bad: &[(&str, &str)] = &[
            (
                "",
                "invalid target , atleast one of [os][/arch][/archVariant] must be specified",
            ),
            ("linux", "unknown target: 'linux'"),
            ("linux/amd65", "unknown target: 'linux/amd65'"),
            ("lnux/amd64", "unknown target: 'lnux/amd64'"),
            ("linux/arm/v9", "unknown target: 'linux/arm/v9'"),
            (
                "linux/amd64:@22.04",
                "distro's versions '@22.04' cannot be specified without distro's name",
            ),
            ("linux/amd64:a@b@c", "invalid distro: a@b@c"),
        ];
        for (input, message) in bad {
            let (t, _) = p(input);
            let e = t.expect_err(input);
            assert!(e.is_usage(), "{input}");
            assert_eq!(e.to_string(), *message, "{input}");
        }
    }

    /// One flag value → its items, or encoding/csv's error (without a flag name: the caller
    /// names the flag).
    #[test]
    fn split_list_table() {
        let table: &[(&str, Result<&[&str], &str>)] = &[
            ("", Ok(&[])),
            ("a", Ok(&["a"])),
            ("a,b", Ok(&["a", "b"])),
            ("a,", Ok(&["a", ""])),
            (",a", Ok(&["", "a"])),
            ("\"a,b\",c", Ok(&["a,b", "c"])),
            ("\"a\"\"b\"", Ok(&["a\"b"])),
            ("a\r", Ok(&["a"])),
            ("a\nb", Ok(&["a"])),
            ("\"a", Err("extraneous or missing \" in quoted-field")),
            ("\"a\"b", Err("extraneous or missing \" in quoted-field")),
            (
                "ab\"c",
                Err("parse error on line 1, column 3: bare \" in non-quoted field"),
            ),
        ];
        for (input, expected) in table {
            let got = split_list(input);
            match expected {
                Ok(items) => assert_eq!(got.unwrap(), *items, "{input:?}"),
                Err(message) => assert_eq!(got, Err(message.to_string()), "{input:?}"),
            }
        }
    }

    /// The CSV step's error names no flag; bad items fail with pack's texts.
    #[test]
    fn flag_values_parse_without_naming_a_flag() {
        let mut w = Vec::new();
        let e = parse_target_flags_into(&["\"linux".into()], &mut w).unwrap_err();
        assert!(!e.to_string().contains("--target"), "{e}");
        let ts = parse_target_flags_into(&["linux/amd64,linux/arm64".into()], &mut w).unwrap();
        assert_eq!(ts.len(), 2);
        assert!(parse_target_flags_into(&["".into()], &mut w)
            .unwrap()
            .is_empty());
    }

    fn expanded(
        os: &str,
        arch: &str,
        variant: &str,
        distro: Option<(&str, &str)>,
    ) -> ExpandedTarget {
        ExpandedTarget {
            os: os.into(),
            arch: arch.into(),
            variant: variant.into(),
            distro: distro.map(|(name, version)| Distro {
                name: name.into(),
                version: version.into(),
            }),
            path: None,
        }
    }

    /// Targets → the platforms packaged (one per distro, in order).
    #[test]
    fn expand_distros_table() {
        let (t, _) = p("linux/arm/v7:ubuntu@22.04;ubuntu@24.04");
        let mut with_path = p("linux/amd64").0.unwrap();
        with_path.path = Some("amd".into());
        let got = expand_distros(&[t.unwrap(), with_path]);
        assert_eq!(
            got.iter().map(ExpandedTarget::display).collect::<Vec<_>>(),
            [
                "linux/arm/v7:ubuntu@22.04",
                "linux/arm/v7:ubuntu@24.04",
                "linux/amd64"
            ]
        );
        assert_eq!(got[2].path.as_deref(), Some("amd"));
        assert!(expand_distros(&[]).is_empty());
    }

    /// `--split` names: `<stem>-<os>-<arch>[-<variant>][-<distro>@<version>]<ext>`.
    #[test]
    fn split_output_path_table() {
        let table: &[(&str, ExpandedTarget, &str)] = &[
            (
                "x.cnb",
                expanded("linux", "amd64", "", None),
                "x-linux-amd64.cnb",
            ),
            (
                "d/x.cnb",
                expanded("linux", "arm64", "v8", None),
                "d/x-linux-arm64-v8.cnb",
            ),
            (
                "x.cnb",
                expanded("linux", "arm", "v7", Some(("ubuntu", "22.04"))),
                "x-linux-arm-v7-ubuntu@22.04.cnb",
            ),
            (
                "x.cnb",
                expanded("windows", "amd64", "", Some(("", "10.0.20348"))),
                "x-windows-amd64-@10.0.20348.cnb",
            ),
            ("x.cnb", expanded("linux", "", "", None), "x-linux.cnb"),
            ("x", expanded("linux", "amd64", "", None), "x-linux-amd64"),
            (
                "out-layout",
                expanded("linux", "amd64", "", None),
                "out-layout-linux-amd64",
            ),
            (
                "x.tar.gz",
                expanded("linux", "amd64", "", None),
                "x.tar-linux-amd64.gz",
            ),
            (
                "x.cnb",
                expanded("linux", "amd64", "", Some(("a/b", "1\\2"))),
                "x-linux-amd64-a_b@1_2.cnb",
            ),
        ];
        for (output, t, expected) in table {
            assert_eq!(
                split_output_path(Path::new(output), t),
                PathBuf::from(expected),
                "{output} {}",
                t.display()
            );
        }
    }

    /// Platforms given twice, or names equal but for case, are refused.
    #[test]
    fn validate_unique_table() {
        let amd = expanded("linux", "amd64", "", None);
        let arm = expanded("linux", "arm64", "", None);
        assert!(validate_unique(&[amd.clone(), arm.clone()]).is_ok());
        assert_eq!(
            validate_unique(&[amd.clone(), arm, amd.clone()])
                .unwrap_err()
                .to_string(),
            "target 'linux/amd64' is given more than once (also as 'linux/amd64')"
        );
        let upper = expanded("linux", "amd64", "", Some(("Ubuntu", "1")));
        let lower = expanded("linux", "amd64", "", Some(("ubuntu", "1")));
        assert_eq!(
            validate_unique(&[upper, lower]).unwrap_err().to_string(),
            "targets 'linux/amd64:Ubuntu@1' and 'linux/amd64:ubuntu@1' would both be written with the file name suffix '-linux-amd64-ubuntu@1'"
        );
    }
}
