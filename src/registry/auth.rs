//! Credentials (options, Docker `config.json`, podman `auth.json`, credential helpers) and
//! `WWW-Authenticate` challenge parsing. Secrets never reach `Debug`, `Display` or errors.

use std::collections::BTreeMap;
use std::fmt;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use base64::Engine as _;
use serde::Deserialize;

use crate::error::{Error, Result};
use crate::events::{Events, EventsExt as _};

use crate::reference::DOCKER_HUB;

/// How long a credential helper may take before it is killed.
const HELPER_TIMEOUT: Duration = Duration::from_secs(60);

/// A secret that prints as `<redacted>`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wrap a secret string.
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }

    /// The secret itself (only for building request headers and bodies).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Credentials for one registry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Credential {
    /// User name and password (or personal access token).
    Basic {
        /// User name (not secret, may appear in messages).
        username: String,
        /// Password or token.
        password: Secret,
    },
    /// An OAuth2 refresh token (`identitytoken` in Docker's config).
    IdentityToken(Secret),
}

impl Credential {
    /// The `Authorization: Basic …` value, for basic credentials.
    pub fn basic_header(&self) -> Option<String> {
        match self {
            Credential::Basic { username, password } => Some(format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD
                    .encode(format!("{username}:{}", password.expose()))
            )),
            Credential::IdentityToken(_) => None,
        }
    }
}

/// Where credentials came from (for a status line; never the secret).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Found {
    /// The credentials.
    pub credential: Credential,
    /// A short description of the source: a file path or a helper name.
    pub source: String,
}

/// The credential files consulted, in order, when none are given explicitly:
/// `$REGISTRY_AUTH_FILE`, Docker's `$DOCKER_CONFIG/config.json` (or `~/.docker/config.json`),
/// then podman's `$XDG_RUNTIME_DIR/containers/auth.json` and `~/.config/containers/auth.json`.
/// The first file with an entry (or helper) for the registry wins.
pub fn default_credential_files() -> Vec<PathBuf> {
    let mut out = Vec::new();
    let env = |k: &str| {
        std::env::var_os(k)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    if let Some(p) = env("REGISTRY_AUTH_FILE") {
        out.push(p);
    }
    let home = env("HOME");
    match env("DOCKER_CONFIG") {
        Some(d) => out.push(d.join("config.json")),
        None => {
            if let Some(h) = &home {
                out.push(h.join(".docker/config.json"));
            }
        }
    }
    if let Some(d) = env("XDG_RUNTIME_DIR") {
        out.push(d.join("containers/auth.json"));
    }
    if let Some(h) = &home {
        out.push(h.join(".config/containers/auth.json"));
    }
    out
}

#[derive(Deserialize, Default)]
pub(crate) struct ConfigFile {
    #[serde(default)]
    auths: BTreeMap<String, AuthEntry>,
    #[serde(default, rename = "credHelpers")]
    pub(crate) cred_helpers: BTreeMap<String, String>,
    #[serde(default, rename = "credsStore")]
    pub(crate) creds_store: Option<String>,
}

#[derive(Deserialize, Default)]
struct AuthEntry {
    #[serde(default)]
    auth: Option<String>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<String>,
    #[serde(default)]
    identitytoken: Option<String>,
}

/// `https://host:5000/v1/` → `host:5000`, the way Docker matches `auths` keys.
fn key_host(key: &str) -> &str {
    let k = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
        .unwrap_or(key);
    k.split('/').next().unwrap_or(k)
}

fn matches_registry(key: &str, registry: &str) -> bool {
    let h = key_host(key);
    if registry == DOCKER_HUB {
        matches!(h, "docker.io" | "index.docker.io" | "registry-1.docker.io")
    } else {
        h == registry
    }
}

/// The server URL a credential helper is asked about.
fn helper_server(registry: &str) -> String {
    if registry == DOCKER_HUB {
        "https://index.docker.io/v1/".to_string()
    } else {
        registry.to_string()
    }
}

/// The credentials of each registry an operation talks to, looked up once per registry: those
/// given, for their registry only (so they are never sent to another), else the first
/// credential file with an entry or helper for it ([`default_credential_files`] unless a list
/// is given), announced as `Credentials for REGISTRY from SOURCE`.
pub(crate) struct Credentials<'e> {
    given: Option<(String, Credential)>,
    files: Option<Vec<PathBuf>>,
    known: Vec<(String, Option<Credential>)>,
    events: &'e dyn Events,
}

impl<'e> Credentials<'e> {
    /// `given`: a registry and the credentials the caller named for it.
    pub(crate) fn new(
        given: Option<(String, Credential)>,
        files: Option<Vec<PathBuf>>,
        events: &'e dyn Events,
    ) -> Self {
        Credentials {
            given,
            files,
            known: Vec::new(),
            events,
        }
    }

    /// The credentials for `registry`, `None` for anonymous access.
    pub(crate) fn for_registry(&mut self, registry: &str) -> Result<Option<Credential>> {
        if let Some((_, c)) = self.known.iter().find(|(r, _)| r == registry) {
            return Ok(c.clone());
        }
        let credential = match &self.given {
            Some((r, c)) if r == registry => Some(c.clone()),
            _ => {
                let files = self
                    .files
                    .get_or_insert_with(default_credential_files)
                    .clone();
                lookup(registry, &files)?.map(|found| {
                    self.events.status(
                        "Credentials",
                        &format!("for {registry} from {}", found.source),
                    );
                    found.credential
                })
            }
        };
        self.known.push((registry.to_string(), credential.clone()));
        Ok(credential)
    }
}

/// Look up credentials for `registry` (`host[:port]`, `docker.io` for Docker Hub) in `files`.
pub fn lookup(registry: &str, files: &[PathBuf]) -> Result<Option<Found>> {
    for path in files {
        let text = match read_credential_file(path) {
            Ok(Some(t)) => t,
            Ok(None) => continue,
            Err(e) => return Err(e),
        };
        let cfg: ConfigFile = serde_json::from_slice(&text).map_err(|e| {
            // serde_json's own message quotes the offending value ("invalid type: string
            // \"dXNlcjpwYXNz\"…"), which here is a secret: say only where and what kind.
            Error::invalid(
                path,
                format!("not a valid credentials file: {}", json_error_position(&e)),
            )
        })?;
        if let Some(found) = lookup_in(&cfg, path, registry)? {
            return Ok(Some(found));
        }
    }
    Ok(None)
}

/// Largest credentials file read (real ones are a few KiB).
const MAX_CREDENTIAL_FILE: u64 = 4 << 20;

/// The file's bytes, `None` when it does not exist. Opened without blocking (a FIFO named by
/// `REGISTRY_AUTH_FILE` must not hang the push) and read up to [`MAX_CREDENTIAL_FILE`].
fn read_credential_file(path: &Path) -> Result<Option<Vec<u8>>> {
    // Opened without blocking: a FIFO at a credentials path is refused, not waited on.
    match crate::input::read_bytes(path, MAX_CREDENTIAL_FILE) {
        Ok(text) => Ok(Some(text)),
        Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Where a JSON document is malformed and what kind of fault it is, without quoting any of
/// its content (serde_json's messages quote values, and credential files hold secrets).
pub(crate) fn json_error_position(e: &serde_json::Error) -> String {
    let what = match e.classify() {
        serde_json::error::Category::Io => "read error",
        serde_json::error::Category::Syntax => "syntax error",
        serde_json::error::Category::Data => "unexpected value (wrong type or shape)",
        serde_json::error::Category::Eof => "unexpected end of file",
    };
    format!("{what} at line {}, column {}", e.line(), e.column())
}

pub(crate) fn lookup_in(cfg: &ConfigFile, path: &Path, registry: &str) -> Result<Option<Found>> {
    if let Some((_, helper)) = cfg
        .cred_helpers
        .iter()
        .find(|(k, _)| matches_registry(k, registry))
    {
        return run_helper(helper, registry);
    }
    // Exact keys first, then scheme/path variants (Docker Hub's `https://index.docker.io/v1/`).
    let mut entries: Vec<(&String, &AuthEntry)> = cfg
        .auths
        .iter()
        .filter(|(k, _)| matches_registry(k, registry))
        .collect();
    entries.sort_by_key(|(k, _)| k.as_str() != registry);
    for (_, entry) in entries {
        if let Some(c) = decode_entry(entry, path, registry)? {
            return Ok(Some(Found {
                credential: c,
                source: path.display().to_string(),
            }));
        }
    }
    if let Some(store) = cfg.creds_store.as_deref().filter(|s| !s.is_empty()) {
        return run_helper(store, registry);
    }
    Ok(None)
}

fn decode_entry(e: &AuthEntry, path: &Path, registry: &str) -> Result<Option<Credential>> {
    if let Some(tok) = e.identitytoken.as_deref().filter(|t| !t.is_empty()) {
        return Ok(Some(Credential::IdentityToken(Secret::new(tok))));
    }
    if let Some(auth) = e.auth.as_deref().filter(|a| !a.is_empty()) {
        let bad = || {
            Error::invalid(
                path,
                format!("the auth entry for {registry} is not base64 of user:password"),
            )
        };
        let raw = base64::engine::general_purpose::STANDARD
            .decode(auth.trim())
            .map_err(|_| bad())?;
        let text = String::from_utf8(raw).map_err(|_| bad())?;
        let (user, pass) = text.split_once(':').ok_or_else(bad)?;
        return Ok(Some(Credential::Basic {
            username: user.to_string(),
            password: Secret::new(pass),
        }));
    }
    match (&e.username, &e.password) {
        (Some(u), Some(p)) if !u.is_empty() => Ok(Some(Credential::Basic {
            username: u.clone(),
            password: Secret::new(p.clone()),
        })),
        _ => Ok(None),
    }
}

#[derive(Deserialize)]
struct HelperOutput {
    #[serde(rename = "Username", default)]
    username: String,
    #[serde(rename = "Secret", default)]
    secret: String,
}

/// Run `docker-credential-<helper> get` with the server on stdin, bounded in time.
fn run_helper(helper: &str, registry: &str) -> Result<Option<Found>> {
    let program = format!("docker-credential-{helper}");
    // The helper's name comes from the config file: shown escaped and cut short.
    let shown = crate::ui::sanitize(&program, 100);
    // A program name looked up on PATH, as docker does: a name with a path separator would
    // run whatever file the config file points at, relative to the current directory.
    if helper.is_empty() || helper.contains(['/', '\\', '\0']) {
        return Err(Error::other(format!(
            "credential helper {shown} (configured for {registry}) is not a program name"
        )));
    }
    let mut child = Command::new(&program)
        .arg("get")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| {
            Error::other(format!(
                "credential helper {shown} (configured for {registry}) cannot be run: {e}"
            ))
        })?;
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(helper_server(registry).as_bytes());
    }
    let pid = child.id();
    // Both pipes are read at once, and past their limits to the end (discarding the rest): a
    // helper that fills one pipe while nobody reads it would block until it is killed.
    fn drain(pipe: Option<impl Read + Send + 'static>, keep: u64) -> mpsc::Receiver<Vec<u8>> {
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut kept = Vec::new();
            if let Some(mut p) = pipe {
                let _ = (&mut p).take(keep).read_to_end(&mut kept);
                let _ = std::io::copy(&mut p, &mut std::io::sink());
            }
            let _ = tx.send(kept);
        });
        rx
    }
    let stdout = drain(child.stdout.take(), 1 << 20);
    let stderr = drain(child.stderr.take(), 1 << 16);
    let deadline = std::time::Instant::now() + HELPER_TIMEOUT;
    let both = stdout.recv_timeout(HELPER_TIMEOUT).ok().and_then(|out| {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        stderr.recv_timeout(left).ok().map(|err| (out, err))
    });
    let (out, err) = match both {
        Some(v) => v,
        None => {
            let _ = child.kill();
            let _ = child.wait();
            return Err(Error::other(format!(
                "credential helper {shown} (pid {pid}) did not answer within {}s",
                HELPER_TIMEOUT.as_secs()
            )));
        }
    };
    let status = child
        .wait()
        .map_err(|e| Error::other(format!("credential helper {shown}: {e}")))?;
    let out_text = String::from_utf8_lossy(&out);
    if !status.success() {
        // Helpers say "credentials not found in native keychain" on stdout.
        let said = format!("{out_text} {}", String::from_utf8_lossy(&err));
        if said.to_lowercase().contains("not found") {
            return Ok(None);
        }
        // What it printed is not shown: a failing helper may still have printed the secret
        // (a half-written answer, a debug line), and errors end up in CI logs.
        return Err(Error::other(format!(
            "credential helper {shown} failed for {registry} ({status}); its output is not shown as it may hold secrets"
        )));
    }
    let parsed: HelperOutput = serde_json::from_slice(&out).map_err(|_| {
        Error::other(format!(
            "credential helper {shown} printed something that is not its JSON answer"
        ))
    })?;
    if parsed.secret.is_empty() {
        return Ok(None);
    }
    let credential = if parsed.username == "<token>" {
        Credential::IdentityToken(Secret::new(parsed.secret))
    } else {
        Credential::Basic {
            username: parsed.username,
            password: Secret::new(parsed.secret),
        }
    };
    Ok(Some(Found {
        credential,
        source: shown,
    }))
}

/// One parsed `WWW-Authenticate` challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    /// `basic` or `bearer` (lower case).
    pub scheme: String,
    /// Parameters with lower-case names.
    pub params: BTreeMap<String, String>,
}

impl Challenge {
    /// A parameter by (lower-case) name.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params.get(name).map(String::as_str)
    }
}

/// Parse a `WWW-Authenticate` value into its challenges (`Bearer realm="…",service="…"`).
pub fn parse_challenges(header: &str) -> Vec<Challenge> {
    let mut out: Vec<Challenge> = Vec::new();
    let s = header.as_bytes();
    let mut i = 0;
    let skip_ws = |i: &mut usize| {
        while *i < s.len() && (s[*i] == b' ' || s[*i] == b'\t' || s[*i] == b',') {
            *i += 1;
        }
    };
    let token = |i: &mut usize| {
        let start = *i;
        while *i < s.len() && !b" \t,=\"".contains(&s[*i]) {
            *i += 1;
        }
        header[start..*i].to_string()
    };
    loop {
        skip_ws(&mut i);
        if i >= s.len() {
            break;
        }
        let word = token(&mut i);
        if word.is_empty() {
            i += 1;
            continue;
        }
        // `name=` continues the current challenge; a bare word starts a new one.
        let mut j = i;
        while j < s.len() && (s[j] == b' ' || s[j] == b'\t') {
            j += 1;
        }
        if j < s.len() && s[j] == b'=' && !out.is_empty() {
            i = j + 1;
            while i < s.len() && (s[i] == b' ' || s[i] == b'\t') {
                i += 1;
            }
            let value = if i < s.len() && s[i] == b'"' {
                i += 1;
                let mut v = String::new();
                let mut chars = header[i..].char_indices();
                let mut end = header.len();
                while let Some((k, c)) = chars.next() {
                    match c {
                        '\\' => {
                            if let Some((_, n)) = chars.next() {
                                v.push(n);
                            }
                        }
                        '"' => {
                            end = i + k + 1;
                            break;
                        }
                        c => v.push(c),
                    }
                }
                i = end;
                v
            } else {
                token(&mut i)
            };
            if let Some(last) = out.last_mut() {
                last.params.insert(word.to_ascii_lowercase(), value);
            }
        } else {
            out.push(Challenge {
                scheme: word.to_ascii_lowercase(),
                params: BTreeMap::new(),
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_bearer_and_basic_challenges() {
        let c = parse_challenges(
            r#"Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull,push""#,
        );
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].scheme, "bearer");
        assert_eq!(c[0].param("realm"), Some("https://auth.example/token"));
        assert_eq!(c[0].param("scope"), Some("repository:a/b:pull,push"));
        let c = parse_challenges(r#"Basic realm="Registry Realm", Bearer realm="x\"y""#);
        assert_eq!(c.len(), 2);
        assert_eq!(c[0].param("realm"), Some("Registry Realm"));
        assert_eq!(c[1].param("realm"), Some("x\"y"));
    }

    #[test]
    fn reads_docker_config_entries_without_leaking() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("config.json");
        let auth = base64::engine::general_purpose::STANDARD.encode("bob:s3cr3t-pw");
        std::fs::write(
            &p,
            format!(
                r#"{{"auths":{{"https://index.docker.io/v1/":{{"auth":"{auth}"}},"reg.example:5000":{{"identitytoken":"rt-123"}}}}}}"#
            ),
        )
        .unwrap();
        let hub = lookup("docker.io", std::slice::from_ref(&p))
            .unwrap()
            .unwrap();
        assert_eq!(
            hub.credential,
            Credential::Basic {
                username: "bob".into(),
                password: Secret::new("s3cr3t-pw")
            }
        );
        assert!(!format!("{hub:?}").contains("s3cr3t"));
        let other = lookup("reg.example:5000", std::slice::from_ref(&p))
            .unwrap()
            .unwrap();
        assert_eq!(
            other.credential,
            Credential::IdentityToken(Secret::new("rt-123"))
        );
        assert!(lookup("nothere.example", &[p]).unwrap().is_none());
    }
}
