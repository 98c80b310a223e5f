//! Buildpack URIs that name something that is not on this machine (images, Buildpack Registry
//! ids, downloads), recognised by pack's rules (`pkg/buildpack/locator_type.go`, with
//! go-containerregistry's `name.ParseReference` for image references), and what to run to
//! fetch each one: cnbpkg never touches the network while packaging.

use std::path::{Path, PathBuf};

/// What a remote URI names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum RemoteKind {
    /// An image reference (`docker://REF`, `image = "REF"`, or a bare reference).
    Image(String),
    /// A `docker://` URI that is not a valid image reference (why not).
    BadImage(String),
    /// A Buildpack Registry id (`urn:cnb:registry:NS/NAME[@VERSION]` or bare `NS/NAME[@VERSION]`).
    Registry(String),
    /// An `http://` or `https://` download.
    Download(String),
    /// Any other URI scheme.
    Other,
}

/// One buildpack URI that cannot be read from disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Remote {
    /// The URI as written.
    pub uri: String,
    /// What it names.
    pub kind: RemoteKind,
    /// Whether it is a dependency (the main buildpack cannot be an image).
    pub dependency: bool,
}

/// What a buildpack URI names, or `None` for a local path (existing or not).
///
/// Explicit schemes are remote for the main buildpack and for dependencies. For dependencies,
/// a bare string that is not on disk is, as pack reads it, a Buildpack Registry id when it
/// looks like `NS/NAME[@VERSION]` and otherwise an image when it parses as an image reference;
/// a string that reads as a path (`./x`, `../x`, `/x`, `x.cnb`, `x.tgz`…) stays a path, so that
/// a missing directory is reported as missing rather than as an image.
pub(crate) fn classify(uri: &str, base: &Path, dependency: bool) -> Option<RemoteKind> {
    if uri.starts_with("file://") {
        return None;
    }
    if let Some(id) = uri.strip_prefix("urn:cnb:registry:") {
        return Some(RemoteKind::Registry(id.to_string()));
    }
    if uri.starts_with("urn:cnb:") {
        return Some(RemoteKind::Other);
    }
    if let Some(reference) = uri
        .strip_prefix("docker://")
        .or_else(|| uri.strip_prefix("docker:/"))
    {
        return Some(RemoteKind::Image(reference.to_string()));
    }
    if uri.starts_with("http://") || uri.starts_with("https://") {
        return Some(RemoteKind::Download(uri.to_string()));
    }
    if uri.contains("://") {
        return Some(RemoteKind::Other);
    }
    if !dependency || reads_as_path(uri) {
        return None;
    }
    let on_disk = Path::new(uri);
    let on_disk = if on_disk.is_absolute() {
        on_disk.to_path_buf()
    } else {
        base.join(on_disk)
    };
    if std::fs::symlink_metadata(&on_disk).is_ok() {
        return None;
    }
    if is_registry_id(uri) {
        Some(RemoteKind::Registry(uri.to_string()))
    } else if is_image_reference(uri) {
        Some(RemoteKind::Image(uri.to_string()))
    } else {
        None
    }
}

/// Strings no one writes for an image or a registry id.
fn reads_as_path(s: &str) -> bool {
    let lower = s.to_ascii_lowercase();
    s.starts_with('/')
        || s.starts_with('~')
        || s == "."
        || s == ".."
        || s.starts_with("./")
        || s.starts_with("../")
        || s.contains("/./")
        || s.contains("/../")
        || s.ends_with("/.")
        || s.ends_with("/..")
        || s.ends_with('/')
        || [".cnb", ".tgz", ".tar", ".gz", ".zst", ".zip"]
            .iter()
            .any(|ext| lower.ends_with(ext))
}

/// pack's Buildpack Registry pattern:
/// `^[a-z0-9\-\.]+(?::[0-9]+)?\/[a-z0-9\-\.]+(?:@<semver>)?$`.
fn is_registry_id(s: &str) -> bool {
    let name_chars = |p: &str| {
        !p.is_empty()
            && p.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
    };
    let Some((namespace, rest)) = s.split_once('/') else {
        return false;
    };
    let namespace_ok = match namespace.split_once(':') {
        Some((ns, port)) => {
            name_chars(ns) && !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit())
        }
        None => name_chars(namespace),
    };
    let (name, version) = match rest.split_once('@') {
        Some((n, v)) => (n, Some(v)),
        None => (rest, None),
    };
    namespace_ok && name_chars(name) && version.is_none_or(is_semver)
}

/// semver.org's `MAJOR.MINOR.PATCH[-PRERELEASE][+BUILD]`.
fn is_semver(v: &str) -> bool {
    let (rest, build) = match v.split_once('+') {
        Some((r, b)) => (r, Some(b)),
        None => (v, None),
    };
    let (core, pre) = match rest.split_once('-') {
        Some((c, p)) => (c, Some(p)),
        None => (rest, None),
    };
    let numeric = |p: &str| {
        !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) && (p == "0" || !p.starts_with('0'))
    };
    let ident =
        |p: &str| !p.is_empty() && p.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
    let core: Vec<&str> = core.split('.').collect();
    core.len() == 3
        && core.iter().all(|p| numeric(p))
        && pre.is_none_or(|p| {
            p.split('.')
                .all(|id| ident(id) && (!id.bytes().all(|b| b.is_ascii_digit()) || numeric(id)))
        })
        && build.is_none_or(|b| b.split('.').all(ident))
}

/// go-containerregistry's `name.ParseReference` (default, non-strict options): a tag
/// reference or a digest reference.
pub(crate) fn is_image_reference(s: &str) -> bool {
    if s.starts_with("http://") || s.starts_with("https://") {
        return false;
    }
    tag_base(s).is_some_and(is_repository) || is_digest_reference(s)
}

/// `NewTag`: the repository part of `s` when its tag (after the last `:` not followed by a
/// `/`) is valid or absent.
fn tag_base(s: &str) -> Option<&str> {
    match s.rfind(':') {
        Some(i) if !s[i + 1..].contains('/') => {
            let tag = &s[i + 1..];
            // An empty tag is not checked (ggcr only checks a tag it got).
            let tag_ok = tag.is_empty()
                || (tag.chars().count() <= 127
                    && tag
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.'));
            tag_ok.then_some(&s[..i])
        }
        _ => Some(s),
    }
}

/// `NewDigest`: `REPO[:TAG]@sha256:<64 hex>`.
fn is_digest_reference(s: &str) -> bool {
    let parts: Vec<&str> = s.split('@').collect();
    let [base, digest] = parts[..] else {
        return false;
    };
    let digest_ok =
        digest.len() == 71 && digest.bytes().all(|b| b"sh:0123456789abcdef".contains(&b));
    if !digest_ok {
        return false;
    }
    let repo = match tag_base(base) {
        Some(r) if is_repository(r) => r,
        _ => base,
    };
    is_repository(repo)
}

/// `NewRepository`: `[REGISTRY/]REPO`, the first part being a registry when it holds a `.` or
/// a `:`.
fn is_repository(name: &str) -> bool {
    if name.is_empty() {
        return false;
    }
    let (registry, repo) = match name.split_once('/') {
        Some((first, rest)) if first.contains('.') || first.contains(':') => (first, rest),
        _ => ("", name),
    };
    let repo_ok = |r: &str| {
        let n = r.chars().count();
        (2..=255).contains(&n)
            && r.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"_-./".contains(&b))
    };
    if !repo_ok(repo) || !is_registry(registry) {
        return false;
    }
    // Docker Hub names without a namespace get `library/`, which must still fit.
    let docker_hub = matches!(registry, "" | "docker.io" | "index.docker.io");
    !docker_hub || repo.contains('/') || repo_ok(&format!("library/{repo}"))
}

/// `checkRegistry`: a valid URI authority (`host[:port]`, no user info).
fn is_registry(name: &str) -> bool {
    if name.is_empty() {
        return true;
    }
    let port_ok = |p: &str| p.bytes().all(|b| b.is_ascii_digit());
    if let Some(rest) = name.strip_prefix('[') {
        // An IPv6 literal, then an optional port.
        let Some((inside, after)) = rest.split_once(']') else {
            return false;
        };
        let literal_ok = !inside.is_empty()
            && inside
                .bytes()
                .all(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.');
        let after_ok = after.is_empty() || after.strip_prefix(':').is_some_and(port_ok);
        return literal_ok && after_ok;
    }
    let (host, port) = match name.rfind(':') {
        Some(i) => (&name[..i], &name[i + 1..]),
        None => (name, ""),
    };
    !host.is_empty()
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=".contains(&b))
        && port_ok(port)
}

/// The URI for messages: as written, with control characters escaped.
fn shown(uri: &str) -> String {
    if uri.chars().any(char::is_control) {
        uri.escape_debug().to_string()
    } else {
        uri.to_string()
    }
}

/// A shell word: as is when it is made of safe characters, single-quoted otherwise.
fn shell_word(s: &str) -> String {
    if !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"@%+=:,./_-".contains(&b))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

/// A file name made of the safe characters of `s` (others become `-`).
fn file_stem(s: &str) -> String {
    let cleaned: String = s
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '_' || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect();
    let cleaned = cleaned.trim_matches(|c| c == '-' || c == '.').to_string();
    if cleaned.is_empty() {
        "buildpack".to_string()
    } else {
        cleaned
    }
}

/// The file an image is fetched into: its last path component and tag, `.cnb`.
fn image_file(reference: &str) -> String {
    let no_digest = reference.split('@').next().unwrap_or(reference);
    let last = no_digest.rsplit('/').next().unwrap_or(no_digest);
    let stem = match last.split_once(':') {
        Some((name, tag)) => format!("{name}-{tag}"),
        None => last.to_string(),
    };
    format!("{}.cnb", file_stem(&stem))
}

/// The file a download is saved as: the last path segment of the URL.
fn download_file(url: &str) -> String {
    let path = url.split(['?', '#']).next().unwrap_or(url);
    let after_host = path.splitn(4, '/').nth(3).unwrap_or("");
    let last = after_host.rsplit('/').next().unwrap_or("");
    if last.is_empty() {
        "buildpack.tgz".to_string()
    } else {
        file_stem(last)
    }
}

/// The store packaging reads images from, as a `cnbpkg pull` command names it.
#[derive(Debug, Clone)]
pub(crate) enum StoreArg {
    /// The default store (at this path, when there is one to name).
    Default(Option<PathBuf>),
    /// A store directory given with `--store` (existing or not).
    Dir(PathBuf),
    /// A layout archive given with `--store`: read-only, a new one is made by `pull --output`.
    Archive(PathBuf),
}

impl StoreArg {
    /// The store named by `--store` (`None`: the default one).
    pub(crate) fn of(store: Option<&Path>) -> StoreArg {
        match store {
            None => StoreArg::Default(crate::store::default_store().ok()),
            Some(p) if p.is_file() => StoreArg::Archive(p.to_path_buf()),
            Some(p) => StoreArg::Dir(p.to_path_buf()),
        }
    }

    /// Where the store is, when it can be named.
    pub(crate) fn path(&self) -> Option<&Path> {
        match self {
            StoreArg::Default(p) => p.as_deref(),
            StoreArg::Dir(p) | StoreArg::Archive(p) => Some(p),
        }
    }

    /// The one `cnbpkg pull` command that puts `references` into this store (for an archive,
    /// a new archive holding them).
    pub(crate) fn pull_command(&self, references: &[String]) -> String {
        let mut words = vec!["cnbpkg".to_string(), "pull".to_string()];
        match self {
            StoreArg::Default(_) => {}
            StoreArg::Dir(p) => {
                words.push("--store".into());
                words.push(shell_word(&p.display().to_string()));
            }
            StoreArg::Archive(p) => {
                words.push("--output".into());
                words.push(shell_word(&p.display().to_string()));
            }
        }
        words.extend(references.iter().map(|r| shell_word(r)));
        words.join(" ")
    }
}

/// An image dependency the store does not hold.
#[derive(Debug, Clone)]
pub(crate) struct MissingImage {
    /// The URI as written.
    pub uri: String,
    /// The reference, normalized.
    pub reference: String,
}

/// The image dependencies the store does not hold, and every image reference of the package
/// (an archive store is made anew with all of them).
#[derive(Debug, Clone)]
pub(crate) struct MissingImages<'a> {
    pub missing: &'a [MissingImage],
    pub all: &'a [String],
    pub store: &'a StoreArg,
    /// Whether the store exists.
    pub exists: bool,
    /// Whether it exists and names no image (a package given as the store, say).
    pub unnamed: bool,
}

impl MissingImages<'_> {
    /// One line per missing image, then the one command that fetches them all.
    fn details(&self) -> Vec<String> {
        let mut lines: Vec<String> = self
            .missing
            .iter()
            .map(|m| {
                format!(
                    "dependency '{}' is image {}, not in the store",
                    shown(&m.uri),
                    m.reference
                )
            })
            .collect();
        let mut wanted: Vec<String> = Vec::new();
        for m in self.missing {
            if !wanted.contains(&m.reference) {
                wanted.push(m.reference.clone());
            }
        }
        if let (true, Some(p)) = (self.unnamed, self.store.path()) {
            lines.push(format!(
                "the store {} names no image (a package is a dependency of its own: uri = \"{}\")",
                p.display(),
                p.display()
            ));
        }
        let them = if wanted.len() == 1 { "it" } else { "them" };
        let place = match self.store.path() {
            Some(p) if self.exists => format!(" (the store is {})", p.display()),
            Some(p) if p.exists() => format!(" (nothing is in the store {} yet)", p.display()),
            Some(p) => format!(" (the store {} does not exist yet)", p.display()),
            None => String::new(),
        };
        lines.push(match self.store {
            // Not a store at all (a package, say): the new archive must not replace it.
            StoreArg::Archive(_) if self.unnamed => format!(
                "fetch {them} into a new archive with `{}` and package with --store IMAGES.tar",
                StoreArg::Archive(PathBuf::from("IMAGES.tar")).pull_command(&wanted)
            ),
            StoreArg::Archive(p) => format!(
                "the store {} is an archive, read-only: make a new one holding every image with `{}` where the registries can be reached, then package again",
                p.display(),
                self.store.pull_command(self.all)
            ),
            _ => format!(
                "fetch {them} with `{}`{place}, then package again",
                self.store.pull_command(&wanted)
            ),
        });
        lines
    }
}

/// The one place that says how to fetch a remote buildpack for cnbpkg: the command to run and
/// the `uri` (or `--path`) to give instead. `base` is the directory relative URIs are resolved
/// against; `from_config` says whether the URI was read from package.toml; `store` is where
/// `cnbpkg pull` puts images for packaging to find.
pub(crate) fn fetch_instructions(
    remote: &Remote,
    base: &Path,
    from_config: bool,
    store: &StoreArg,
) -> String {
    // Where the fetched file goes, and how to name it instead of the URI.
    let place = |file: &str| -> (String, String) {
        let path: PathBuf = base.join(file);
        let give = match (remote.dependency, from_config) {
            (true, _) => format!("uri = \"{file}\""),
            (false, true) => format!("[buildpack] uri = \"{file}\""),
            (false, false) => format!("--path {}", shell_word(&path.display().to_string())),
        };
        (path.display().to_string(), give)
    };
    let what = if remote.dependency {
        format!("dependency '{}'", shown(&remote.uri))
    } else {
        format!("buildpack '{}'", shown(&remote.uri))
    };
    let has_control = remote.uri.chars().any(char::is_control);
    match &remote.kind {
        RemoteKind::Image(_) | RemoteKind::Registry(_) if !remote.dependency => format!(
            "{what} is {}; the buildpack itself must be a directory or a .tgz/.tar archive (an image can only be a dependency)",
            if matches!(remote.kind, RemoteKind::Image(_)) { "an image" } else { "a Buildpack Registry id" }
        ),
        RemoteKind::BadImage(why) => format!("{what} is not a valid image reference: {why}"),
        _ if has_control => format!("{what} names no local file; fetch it into a file and give its path"),
        RemoteKind::Image(reference) => {
            let (path, uri) = place(&image_file(reference));
            format!(
                "{what} is an image: fetch it into the store with `{}` and package again, or into a file with `cnbpkg pull --output {} {}` and give {uri}",
                store.pull_command(std::slice::from_ref(reference)),
                shell_word(&path),
                shell_word(reference),
            )
        }
        RemoteKind::Registry(_) => format!(
            "{what} is a Buildpack Registry id: look up the image it stands for (the registry index at https://github.com/buildpacks/registry-index), run `{}` and give uri = \"docker://IMAGE\"",
            store.pull_command(&["IMAGE".to_string()]),
        ),
        RemoteKind::Download(url) => {
            let (path, uri) = place(&download_file(url));
            format!(
                "{what} is a download: run `curl -fL -o {} {}` and give {uri}",
                shell_word(&path),
                shell_word(url),
            )
        }
        RemoteKind::Other => format!(
            "{what} is not a local file or directory; fetch it into a file and give its path"
        ),
    }
}

/// One error for every remote buildpack of a package: what each is and how to fetch it, and
/// for the images the store does not hold, the one command that fetches them all.
pub(crate) fn remote_error(
    remotes: &[Remote],
    images: Option<&MissingImages<'_>>,
    base: &Path,
    from_config: bool,
    path: Option<&Path>,
) -> crate::error::Error {
    let count = remotes.len() + images.map_or(0, |m| m.missing.len());
    let headline = if count == 1 {
        "a buildpack is not on this machine and cnbpkg never downloads while packaging:".to_string()
    } else {
        format!(
            "{} buildpacks are not on this machine and cnbpkg never downloads while packaging:",
            count
        )
    };
    let store = images
        .map(|m| m.store.clone())
        .unwrap_or_else(|| StoreArg::of(None));
    let mut details: Vec<String> = remotes
        .iter()
        .map(|r| fetch_instructions(r, base, from_config, &store))
        .collect();
    if let Some(images) = images.filter(|m| !m.missing.is_empty()) {
        details.extend(images.details());
    }
    crate::error::Error::Listed {
        path: path.map(Path::to_path_buf),
        headline,
        details,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_references_follow_ggcr() {
        for ok in [
            "gcr.io/paketo-buildpacks/node-engine:1.2.3",
            "docker.io/heroku/procfile",
            "ubuntu",
            "localhost:5000/bp:1",
            "127.0.0.1:5000/a/b@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
            "a/b:1@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
        ] {
            assert!(is_image_reference(ok), "{ok}");
        }
        for bad in [
            "",
            "a",
            "Upper/Case",
            "https://x.io/a",
            "a b",
            "x:bad tag",
            "a@sha256:12",
            "user@host.io/x",
        ] {
            assert!(!is_image_reference(bad), "{bad}");
        }
    }

    #[test]
    fn registry_ids_follow_pack() {
        assert!(is_registry_id("heroku/procfile"));
        assert!(is_registry_id("heroku/procfile@1.2.3-rc.1+b.2"));
        assert!(!is_registry_id("heroku/procfile@1.2"));
        assert!(!is_registry_id("gcr.io/a/b"));
        assert!(!is_registry_id("procfile"));
    }

    #[test]
    fn classification() {
        let base = Path::new("/nonexistent-base");
        let dep = |u: &str| classify(u, base, true);
        assert_eq!(
            dep("docker://gcr.io/a/b:1"),
            Some(RemoteKind::Image("gcr.io/a/b:1".into()))
        );
        assert_eq!(
            dep("urn:cnb:registry:heroku/procfile@1.0.0"),
            Some(RemoteKind::Registry("heroku/procfile@1.0.0".into()))
        );
        assert_eq!(
            dep("heroku/procfile"),
            Some(RemoteKind::Registry("heroku/procfile".into()))
        );
        assert_eq!(
            dep("gcr.io/a/b:1"),
            Some(RemoteKind::Image("gcr.io/a/b:1".into()))
        );
        for path in [
            "../missing",
            "./x",
            "dep.cnb",
            "bp.tgz",
            "/abs",
            "file:///x",
        ] {
            assert_eq!(dep(path), None, "{path}");
        }
        // The main buildpack is a path unless it has a scheme.
        assert_eq!(classify("gcr.io/a/b:1", base, false), None);
        assert!(classify("https://x.io/bp.tgz", base, false).is_some());
    }

    #[test]
    fn missing_images_are_fetched_by_one_command() {
        let missing = [
            MissingImage {
                uri: "docker://r.io/a:1".into(),
                reference: "r.io/a:1".into(),
            },
            MissingImage {
                uri: "busybox".into(),
                reference: "docker.io/library/busybox:latest".into(),
            },
            MissingImage {
                uri: "r.io/a:1".into(),
                reference: "r.io/a:1".into(),
            },
        ];
        let all = [
            "r.io/a:1".to_string(),
            "docker.io/library/busybox:latest".into(),
        ];
        let details = |store: &StoreArg, exists: bool| {
            MissingImages {
                missing: &missing,
                all: &all,
                store,
                exists,
                unnamed: false,
            }
            .details()
        };
        let dir = details(&StoreArg::Dir(PathBuf::from("my store")), true);
        assert_eq!(dir.len(), 4, "{dir:?}");
        assert_eq!(
            dir[1],
            "dependency 'busybox' is image docker.io/library/busybox:latest, not in the store"
        );
        assert_eq!(
            dir[3],
            "fetch them with `cnbpkg pull --store 'my store' r.io/a:1 docker.io/library/busybox:latest` (the store is my store), then package again"
        );
        let default = details(&StoreArg::Default(Some(PathBuf::from("/c/store"))), false);
        assert!(
            default[3].starts_with("fetch them with `cnbpkg pull r.io/a:1 docker.io"),
            "{default:?}"
        );
        assert!(
            default[3].contains("(the store /c/store does not exist yet)"),
            "{default:?}"
        );
        let archive = details(&StoreArg::Archive(PathBuf::from("d.tar")), true);
        assert!(
            archive[3]
                .contains("`cnbpkg pull --output d.tar r.io/a:1 docker.io/library/busybox:latest`"),
            "{archive:?}"
        );
    }

    #[test]
    fn file_names() {
        assert_eq!(
            image_file("gcr.io/paketo-buildpacks/node-engine:1.2.3"),
            "node-engine-1.2.3.cnb"
        );
        assert_eq!(image_file("a/b@sha256:00"), "b.cnb");
        assert_eq!(
            download_file("https://x.io/r/bp-1.0.tgz?token=1"),
            "bp-1.0.tgz"
        );
        assert_eq!(download_file("https://x.io/"), "buildpack.tgz");
        assert_eq!(shell_word("https://x.io/a?b=1&c"), "'https://x.io/a?b=1&c'");
    }
}
