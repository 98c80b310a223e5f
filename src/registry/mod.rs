//! Pushing finished packages to OCI registries over the distribution API, byte for byte.
//!
//! [`push`] reads a `.cnb` file or layout directory and copies it, never repackaging: blobs,
//! manifests and indexes land in the registry with the package's digests and bytes (except
//! that a `--platform` subset of several manifests gets a new index listing just them; one
//! chosen platform is pushed as its own manifest, the digest the package lists).
//!
//! Order, per repository pushed to: every blob is checked with HEAD and then mounted
//! (`--from`, or the repository of the same registry pushed to just before) or uploaded, in
//! parallel (`jobs` threads, [`DEFAULT_JOBS`] when 0, at most [`MAX_JOBS`]), streamed straight
//! from the package (monolithic POST + PUT, chunked PATCH above
//! [`PushSettings::chunk_threshold`] or after a 413); then platform manifests by digest
//! (skipped when present), then the top manifest or index at every tag. Several references
//! and `tags` share one plan: the package is read once; blobs and manifests go to each
//! repository once; each registry gets its own client and credentials.
//!
//! Transient failures (5xx, 408, 429, dropped connections, deadlines) are retried with
//! exponential backoff (longer when `Retry-After` asks, at most 30 s); a retried blob upload
//! starts a new upload session; each retry is announced as it starts. Every request has an
//! overall deadline ([`Deadlines`]: 60 s; a blob upload 120 s plus one second per 64 KiB),
//! however slowly the server sends. PUT, POST and PATCH follow no redirect (a manifest PUT
//! must answer 201); GET and HEAD follow a few, never with credentials.
//!
//! [`push`] (what the CLI uses) takes [`PushSettings::from_env`]: the defaults, except that the
//! hidden environment variables [`RETRY_BACKOFF_ENV`] (`CNBPKG_RETRY_BACKOFF_MS`, the first
//! retry delay) and [`REQUEST_TIMEOUT_ENV`] (`CNBPKG_REQUEST_TIMEOUT_MS`, the request deadline
//! and the blob upload floor) take milliseconds. They exist so tests of the binary can fail
//! fast against unreachable or hostile registries; they are not supported options.
//!
//! Credentials, in order: `username`/`password` from the options (for the first reference's
//! registry only), then the first of [`auth::default_credential_files`] with an entry or
//! helper for the registry (Docker's `config.json` format: `auths` with `auth`,
//! `username`/`password` or `identitytoken`, `credHelpers`, `credsStore`). They are sent only
//! to the registry's own scheme, host and port (an upload `Location` elsewhere gets none) and
//! to the token server its challenge names. Secrets never appear in status lines or errors:
//! a malformed credentials file is reported by line and column, never by content.
//!
//! TLS: the system's roots, plus `ca_cert` and the registry's `certs.d` files
//! ([`certs::default_certs_d`]); a server certificate that is exactly one of those is
//! accepted even when it is a CA certificate (self-signed, as Docker's documentation makes
//! them), its name and dates still checked.
//!
//! Status lines passed to the `status` callback start with a verb: `Pushing`, `Exists`,
//! `Mounted`, `Uploaded`, `Pushed`, `Retrying`, `Credentials`, `Trusting`, or `warning:`.

pub mod auth;
pub mod certs;
pub(crate) mod client;
pub mod reference;
mod tls;
pub(crate) mod upload;

use std::collections::{BTreeSet, HashMap};
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::json::canonical;
use crate::layout::PackageReader;
use crate::layout::{MAX_ENTRIES, MAX_IMAGES, MAX_IMAGES_BYTES, MAX_INDEX_DEPTH};
use crate::oci::{self, Descriptor, ImageConfig, Index, Manifest, Platform};

use self::auth::{Credential, Secret};
pub use self::client::Deadlines;
use self::client::{Client, RetryPolicy, Transport};
use self::reference::{Reference, Target};
use self::upload::{BlobOutcome, SentFn, UploadTuning};

/// Parallel blob uploads when [`PushOptions::jobs`] is 0: uploads wait on the network, not on
/// the CPU, so this is more than the core count but stays polite to registries.
pub const DEFAULT_JOBS: usize = 4;
/// The most parallel uploads accepted.
pub const MAX_JOBS: usize = 32;

/// What to push where.
#[derive(Debug, Clone, Default)]
pub struct PushOptions {
    /// A `.cnb` file or an OCI layout directory.
    pub package: PathBuf,
    /// `REGISTRY/REPO[:TAG]` (tag `latest` by default) or `REGISTRY/REPO@sha256:…`.
    pub reference: String,
    /// More references to set in the same push (same or other repositories and registries);
    /// blobs and manifests go to each repository once.
    pub more_references: Vec<String>,
    /// More tags to set in every repository pushed to.
    pub tags: Vec<String>,
    /// `os[/arch[/variant]]` filters; empty pushes every platform.
    pub platforms: Vec<String>,
    /// A repository on the same registry to mount blobs from.
    pub from: Option<String>,
    /// Plain HTTP instead of HTTPS.
    pub insecure: bool,
    /// A PEM file with CA certificates to trust in addition to the system's.
    pub ca_cert: Option<PathBuf>,
    /// User name for basic or token authentication.
    pub username: Option<String>,
    /// Password or access token (never printed).
    pub password: Option<String>,
    /// Parallel blob uploads; 0 means [`DEFAULT_JOBS`].
    pub jobs: usize,
    /// Progress bars (only drawn when stderr is a terminal).
    pub progress: bool,
}

/// What a push did.
#[derive(Debug, Clone)]
pub struct PushReport {
    /// Where it went: `REGISTRY/REPO:TAG` or `REGISTRY/REPO@DIGEST` (the first reference).
    pub reference: String,
    /// Every reference set, in order.
    pub references: Vec<String>,
    /// Digest of the pushed top-level manifest or index.
    pub digest: Digest,
    /// Its media type.
    pub media_type: String,
    /// Blobs uploaded.
    pub uploaded: usize,
    /// Blobs mounted from [`PushOptions::from`].
    pub mounted: usize,
    /// Blobs the registry had already.
    pub skipped: usize,
    /// Blob bytes sent (manifests not counted; retried uploads count again).
    pub bytes_sent: u64,
    /// Every image manifest pushed, with its platform.
    pub manifests: Vec<(Option<Platform>, Digest)>,
}

/// Tuning knobs beyond the command line (tests use them to exercise rare paths).
#[derive(Debug, Clone)]
pub struct PushSettings {
    /// Blobs larger than this are uploaded in chunks (64 MiB).
    pub chunk_threshold: u64,
    /// Chunk size (4 MiB; GHCR refuses larger PATCH bodies).
    pub chunk_size: u64,
    /// Attempts per request or blob upload (5).
    pub attempts: u32,
    /// First retry delay (250 ms), doubled after each failure.
    pub initial_backoff: Duration,
    /// Largest retry delay (4 s).
    pub max_backoff: Duration,
    /// Credential files to consult instead of [`auth::default_credential_files`].
    pub credential_files: Option<Vec<PathBuf>>,
    /// Overall deadline of each request (see [`Deadlines`]).
    pub deadlines: Deadlines,
    /// `certs.d` directories to read per-registry CA certificates from instead of
    /// [`certs::default_certs_d`].
    pub certs_d: Option<Vec<PathBuf>>,
}

impl Default for PushSettings {
    fn default() -> Self {
        PushSettings {
            chunk_threshold: 64 << 20,
            chunk_size: 4 << 20,
            attempts: 5,
            initial_backoff: Duration::from_millis(250),
            max_backoff: Duration::from_secs(4),
            credential_files: None,
            deadlines: Deadlines::default(),
            certs_d: None,
        }
    }
}

/// Hidden environment variable read by [`PushSettings::from_env`]: the overall deadline of
/// each request, and the least time each blob upload gets, in milliseconds (defaults: 60 s
/// and 120 s, a blob upload getting one more second per 64 KiB). Meant for tests of hostile
/// servers; invalid values are ignored.
pub const REQUEST_TIMEOUT_ENV: &str = "CNBPKG_REQUEST_TIMEOUT_MS";

/// Hidden environment variable read by [`PushSettings::from_env`]: the first retry delay in
/// milliseconds (default 250; still doubled after each failure and capped at
/// [`PushSettings::max_backoff`]). Meant for tests; invalid values are ignored.
pub const RETRY_BACKOFF_ENV: &str = "CNBPKG_RETRY_BACKOFF_MS";

impl PushSettings {
    /// The defaults, with [`RETRY_BACKOFF_ENV`] applied when set to a number.
    pub fn from_env() -> Self {
        let mut s = PushSettings::default();
        if let Some(ms) = std::env::var(RETRY_BACKOFF_ENV)
            .ok()
            .and_then(|v| v.trim().parse::<u64>().ok())
        {
            s.initial_backoff = Duration::from_millis(ms);
        }
        if let Some(ms) = std::env::var(REQUEST_TIMEOUT_ENV)
            .ok()
            .and_then(|v| v.trim().parse::<u64>().ok())
            .filter(|ms| *ms > 0)
        {
            s.deadlines.request = Duration::from_millis(ms);
            s.deadlines.blob_floor = Duration::from_millis(ms);
        }
        s
    }
}

/// Push a package with [`PushSettings::from_env`] (the defaults unless
/// [`RETRY_BACKOFF_ENV`] or [`REQUEST_TIMEOUT_ENV`] is set).
pub fn push(opts: &PushOptions, status: &mut dyn FnMut(&str)) -> Result<PushReport> {
    push_with(opts, &PushSettings::from_env(), status)
}

/// One repository pushed to, with every tag or digest it gets.
struct Destination {
    /// The first reference naming this repository (registry, api host, repository).
    reference: Reference,
    targets: Vec<Target>,
}

/// Push a package.
pub fn push_with(
    opts: &PushOptions,
    settings: &PushSettings,
    status: &mut dyn FnMut(&str),
) -> Result<PushReport> {
    let mut references = vec![Reference::parse(&opts.reference)?];
    for r in &opts.more_references {
        references.push(Reference::parse(r)?);
    }
    for t in &opts.tags {
        if !reference::valid_tag(t) {
            return Err(Error::usage(format!(
                "invalid --tag '{t}': not a valid tag"
            )));
        }
    }
    // Several references to one repository share one client: blobs and manifests go once.
    let mut destinations: Vec<Destination> = Vec::new();
    for r in references {
        let target = r.target.clone();
        let dest = match destinations
            .iter_mut()
            .find(|d| d.reference.registry == r.registry && d.reference.repository == r.repository)
        {
            Some(d) => d,
            None => {
                destinations.push(Destination {
                    reference: r,
                    targets: Vec::new(),
                });
                destinations.last_mut().expect("just pushed")
            }
        };
        if !dest.targets.contains(&target) {
            dest.targets.push(target);
        }
    }
    for dest in &mut destinations {
        for t in &opts.tags {
            let target = Target::Tag(t.clone());
            if !dest.targets.contains(&target) {
                dest.targets.push(target);
            }
        }
    }
    let first = destinations[0].reference.clone();
    let from = match &opts.from {
        Some(f) => parse_from(f, &first)?,
        None => None,
    };
    let filters = opts
        .platforms
        .iter()
        .map(|p| PlatformFilter::parse(p))
        .collect::<Result<Vec<_>>>()?;
    let credential = match (&opts.username, &opts.password) {
        (Some(u), Some(p)) => Some(Credential::Basic {
            username: u.clone(),
            password: Secret::new(p.clone()),
        }),
        (Some(_), None) => return Err(Error::usage("--username needs a password")),
        (None, Some(_)) => return Err(Error::usage("a password needs --username")),
        (None, None) => None,
    };

    let reader = PackageReader::open(&opts.package)?;
    let digest_target = destinations
        .iter()
        .flat_map(|d| d.targets.iter())
        .find(|t| matches!(t, Target::Digest(_)))
        .cloned()
        .unwrap_or_else(|| Target::Tag(String::new()));
    let plan = Plan::build(&reader, &opts.package, &filters, &digest_target)?;
    for d in &destinations {
        for t in &d.targets {
            if let Target::Digest(d) = t {
                if *d != plan.top.digest {
                    return Err(Error::usage(format!(
                        "{} has no manifest or index with digest {d} to push (its top-level digest is {})",
                        opts.package.display(),
                        plan.top.digest
                    )));
                }
            }
        }
    }

    let mut report = PushReport {
        reference: String::new(),
        references: Vec::new(),
        digest: plan.top.digest,
        media_type: plan.top.media_type.clone(),
        uploaded: 0,
        mounted: 0,
        skipped: 0,
        bytes_sent: 0,
        manifests: plan
            .leaves
            .iter()
            .map(|l| (l.platform.clone(), l.digest))
            .collect(),
    };
    // Credentials are looked up once per registry; --username applies to the first
    // reference's registry only, so it is never sent to another.
    let mut credentials: Vec<(String, Option<Credential>)> = Vec::new();
    for (i, dest) in destinations.iter().enumerate() {
        let reference = &dest.reference;
        let credential = match credentials.iter().find(|(r, _)| *r == reference.registry) {
            Some((_, c)) => c.clone(),
            None => {
                let c = match &credential {
                    Some(c) if reference.registry == first.registry => Some(c.clone()),
                    _ => {
                        let files = settings
                            .credential_files
                            .clone()
                            .unwrap_or_else(auth::default_credential_files);
                        match auth::lookup(&reference.registry, &files)? {
                            Some(found) => {
                                status(&format!(
                                    "Credentials for {} from {}",
                                    reference.registry, found.source
                                ));
                                Some(found.credential)
                            }
                            None => None,
                        }
                    }
                };
                credentials.push((reference.registry.clone(), c.clone()));
                c
            }
        };
        // Mount from a repository of this registry pushed to already, else from --from.
        let mount_from = destinations[..i]
            .iter()
            .rev()
            .find(|d| d.reference.registry == reference.registry)
            .map(|d| d.reference.repository.clone())
            .or_else(|| {
                from.clone()
                    .filter(|_| reference.registry == first.registry)
                    .filter(|f| *f != reference.repository)
            });
        let counts = push_destination(
            opts,
            settings,
            &reader,
            &plan,
            dest,
            credential,
            mount_from.as_deref(),
            status,
        )?;
        report.uploaded += counts.uploaded;
        report.mounted += counts.mounted;
        report.skipped += counts.skipped;
        report.bytes_sent += counts.bytes_sent;
        for t in &dest.targets {
            let r = Reference {
                target: t.clone(),
                ..reference.clone()
            };
            report.references.push(r.to_string());
        }
    }
    report.reference = report.references[0].clone();
    Ok(report)
}

/// Run `work` on another thread while this one passes the client's notes ("Retrying …") to
/// `status` as they are made: a retry is announced when it starts, not once all is over.
fn reporting<T: Send>(
    client: &Client,
    status: &mut dyn FnMut(&str),
    work: impl FnOnce() -> T + Send,
) -> T {
    std::thread::scope(|scope| {
        let handle = scope.spawn(work);
        while !handle.is_finished() {
            for note in client.take_notes() {
                status(&note);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        for note in client.take_notes() {
            status(&note);
        }
        handle
            .join()
            .unwrap_or_else(|p| std::panic::resume_unwind(p))
    })
}

/// Blobs, manifests and every tag of one repository.
#[allow(clippy::too_many_arguments)]
fn push_destination(
    opts: &PushOptions,
    settings: &PushSettings,
    reader: &PackageReader,
    plan: &Plan,
    dest: &Destination,
    credential: Option<Credential>,
    from: Option<&str>,
    status: &mut dyn FnMut(&str),
) -> Result<Counts> {
    let reference = &dest.reference;
    if opts.insecure && !reference::is_loopback(&reference.registry) {
        status(&format!(
            "warning: pushing to {} over plain HTTP (--insecure): content and credentials are not encrypted",
            reference.registry
        ));
    }
    let client = Client::new(
        &reference.registry,
        reference.api_host(),
        &reference.repository,
        from,
        credential,
        &Transport {
            insecure: opts.insecure,
            ca_cert: opts.ca_cert.as_deref(),
            certs_d: settings.certs_d.clone(),
        },
        RetryPolicy {
            attempts: settings.attempts.max(1),
            initial_backoff: settings.initial_backoff,
            max_backoff: settings.max_backoff,
        },
        settings.deadlines,
    )?;
    for note in client.take_notes() {
        status(&note);
    }
    reporting(&client, status, || client.connect())?;
    let shown = Reference {
        target: dest.targets[0].clone(),
        ..reference.clone()
    };
    status(&format!(
        "Pushing {} ({} blobs, {} manifests) to {shown}",
        opts.package.display(),
        plan.blobs.len(),
        plan.leaves.len()
    ));

    let tuning = UploadTuning {
        chunk_threshold: settings.chunk_threshold,
        chunk_size: settings.chunk_size.max(1),
    };
    let counts = upload_blobs(&client, reader, &plan.blobs, from, &tuning, opts, status)?;

    // Manifests below the top, children before parents, each once.
    let mut pushed = BTreeSet::new();
    for child in &plan.top.children {
        push_manifests(&client, child, &mut pushed, status)?;
    }
    let top = &plan.top;
    let kind = if top.is_index { "index" } else { "manifest" };
    for target in &dest.targets {
        let at = Reference {
            target: target.clone(),
            ..reference.clone()
        };
        match target {
            Target::Tag(tag) => {
                reporting(&client, status, || {
                    upload::put_manifest(&client, tag, &top.bytes, &top.media_type, &top.digest)
                })?;
                status(&format!("Pushed {kind} {} to {at}", top.digest));
            }
            Target::Digest(d) => {
                if reporting(&client, status, || upload::manifest_exists(&client, d))? {
                    status(&format!("Exists {kind} {d}"));
                } else {
                    reporting(&client, status, || {
                        upload::put_manifest(
                            &client,
                            &d.to_string(),
                            &top.bytes,
                            &top.media_type,
                            d,
                        )
                    })?;
                    status(&format!("Pushed {kind} {d} to {at}"));
                }
            }
        }
    }
    Ok(counts)
}

/// `--from`: a repository on the same registry, with or without the registry prefix.
fn parse_from(from: &str, reference: &Reference) -> Result<Option<String>> {
    let repo = match from.split_once('/') {
        Some((first, rest))
            if first.contains('.') || first.contains(':') || first == "localhost" =>
        {
            if first != reference.registry {
                return Err(Error::usage(format!(
                    "--from {from}: blobs can only be mounted from a repository on {}",
                    reference.registry
                )));
            }
            rest.to_string()
        }
        _ => from.to_string(),
    };
    let repo = repo.split([':', '@']).next().unwrap_or("").to_string();
    if !reference::valid_repository(&repo) {
        return Err(Error::usage(format!(
            "--from {from}: not a valid repository name"
        )));
    }
    Ok((repo != reference.repository).then_some(repo))
}

/// An `os[/arch[/variant]]` filter.
#[derive(Debug, Clone)]
struct PlatformFilter {
    text: String,
    os: String,
    arch: Option<String>,
    variant: Option<String>,
}

impl PlatformFilter {
    fn parse(text: &str) -> Result<Self> {
        let parts: Vec<&str> = text.split('/').collect();
        if parts.len() > 3 || parts.iter().any(|p| p.is_empty()) {
            return Err(Error::usage(format!(
                "invalid --platform '{text}': expected os[/arch[/variant]]"
            )));
        }
        Ok(PlatformFilter {
            text: text.to_string(),
            os: parts[0].to_string(),
            arch: parts.get(1).map(|s| s.to_string()),
            variant: parts.get(2).map(|s| s.to_string()),
        })
    }

    fn matches(&self, p: &Platform) -> bool {
        p.os == self.os
            && self.arch.as_ref().is_none_or(|a| *a == p.architecture)
            && self.variant.as_ref().is_none_or(|v| *v == p.variant)
    }
}

fn platform_text(p: &Platform) -> String {
    let mut s = format!("{}/{}", p.os, p.architecture);
    if !p.variant.is_empty() {
        s.push('/');
        s.push_str(&p.variant);
    }
    if !p.os_version.is_empty() {
        s.push_str(&format!(" ({})", p.os_version));
    }
    s
}

/// A manifest or index to push, with its raw bytes. Nodes are shared by digest: a package
/// whose nested indexes list the same things many times holds each of them once.
#[derive(Debug, Clone)]
struct Node {
    /// The descriptor that points at it in the package.
    desc: Descriptor,
    digest: Digest,
    media_type: String,
    bytes: Vec<u8>,
    is_index: bool,
    platform: Option<Platform>,
    children: Vec<Arc<Node>>,
}

#[derive(Debug, Clone)]
struct Leaf {
    digest: Digest,
    platform: Option<Platform>,
}

struct Plan {
    top: Arc<Node>,
    leaves: Vec<Leaf>,
    blobs: Vec<Descriptor>,
}

impl Plan {
    fn build(
        reader: &PackageReader,
        path: &Path,
        filters: &[PlatformFilter],
        target: &Target,
    ) -> Result<Plan> {
        let tops: Vec<&Descriptor> = reader
            .index()
            .manifests
            .iter()
            .filter(|d| {
                d.media_type.is_empty()
                    || oci::is_manifest(&d.media_type)
                    || oci::is_index(&d.media_type)
            })
            .collect();
        let mut loader = Loader {
            reader,
            path,
            nodes: HashMap::new(),
            listed: 0,
            kept_bytes: 0,
            blobs: Vec::new(),
        };
        let mut top = match (tops.as_slice(), target) {
            ([], _) => return Err(Error::invalid(path, "the package holds no image")),
            (_, Target::Digest(d)) if tops.iter().any(|t| t.digest == *d) => {
                let desc = tops.iter().find(|t| t.digest == *d).expect("checked");
                loader.load(desc, 0)?
            }
            ([one], _) => loader.load(one, 0)?,
            (many, _) => {
                // A flat layout with several images: push an index over them.
                let children = many
                    .iter()
                    .map(|d| loader.load(d, 1))
                    .collect::<Result<Vec<_>>>()?;
                let descs = children.iter().map(|c| descriptor_of(c)).collect();
                Arc::new(synthesize_index(descs, children, false))
            }
        };
        let mut blobs = std::mem::take(&mut loader.blobs);
        let leaves = unique_leaves(&top);
        if !filters.is_empty() {
            let chosen: Vec<&Arc<Node>> = leaves
                .iter()
                .filter(|n| {
                    let p = n.platform.clone().unwrap_or_default();
                    filters.iter().any(|f| f.matches(&p))
                })
                .collect();
            if chosen.is_empty() {
                let have: Vec<String> = leaves
                    .iter()
                    .map(|n| {
                        n.platform
                            .as_ref()
                            .map(platform_text)
                            .unwrap_or_else(|| "unknown".into())
                    })
                    .collect();
                let want: Vec<&str> = filters.iter().map(|f| f.text.as_str()).collect();
                return Err(Error::usage(format!(
                    "no image in {} matches --platform {}; it has {}",
                    path.display(),
                    want.join(", "),
                    have.join(", ")
                )));
            }
            if chosen.len() == 1 && top.is_index {
                // One platform: its own manifest (the digest the package lists) goes at the
                // tag, as per-architecture tags are plain manifests elsewhere too.
                let one = chosen[0].clone();
                blobs = manifest_blobs(path, &one)?;
                top = one;
            } else if chosen.len() != leaves.len() {
                let docker = top.media_type == oci::DOCKER_MANIFEST_LIST;
                let chosen: Vec<Arc<Node>> = chosen.into_iter().cloned().collect();
                let descs = chosen.iter().map(|n| descriptor_of(n)).collect();
                // Only the chosen manifests' blobs are pushed.
                blobs.clear();
                for n in &chosen {
                    blobs.extend(manifest_blobs(path, n)?);
                }
                top = Arc::new(synthesize_index(descs, chosen, docker));
            }
        }
        if let Target::Digest(d) = target {
            if top.digest != *d {
                return Err(Error::usage(format!(
                    "{} has no manifest or index with digest {d} to push (its top-level digest is {})",
                    path.display(),
                    top.digest
                )));
            }
        }
        let mut seen = BTreeSet::new();
        let mut unique = Vec::new();
        for b in blobs {
            if !seen.insert(b.digest) {
                continue;
            }
            if !b.urls.is_empty() && !reader.has_blob(&b.digest) {
                // A foreign (non-distributable) layer that lives at its URLs.
                continue;
            }
            unique.push(b);
        }
        // Largest first, so the long uploads start early.
        unique.sort_by(|a, b| b.size.cmp(&a.size).then(a.digest.cmp(&b.digest)));
        let leaves = unique_leaves(&top)
            .iter()
            .map(|n| Leaf {
                digest: n.digest,
                platform: n.platform.clone(),
            })
            .collect();
        Ok(Plan {
            top,
            leaves,
            blobs: unique,
        })
    }
}

/// The config and layers of an image manifest node.
fn manifest_blobs(path: &Path, n: &Node) -> Result<Vec<Descriptor>> {
    let m: Manifest = serde_json::from_slice(&n.bytes).map_err(|e| {
        Error::invalid(
            path,
            format!(
                "manifest {}: {}",
                n.digest,
                crate::ui::sanitize(&e.to_string(), 200)
            ),
        )
    })?;
    let mut out = vec![m.config.clone()];
    out.extend(m.layers.iter().cloned());
    Ok(out)
}

/// The descriptor as the package has it (media type filled in when the package left it out).
fn descriptor_of(n: &Node) -> Descriptor {
    let mut d = n.desc.clone();
    if d.media_type.is_empty() {
        d.media_type = n.media_type.clone();
    }
    // The image spec requires `architecture` wherever `platform` appears.
    if d.platform
        .as_ref()
        .is_some_and(|p| p.architecture.is_empty())
    {
        d.platform = None;
    }
    d
}

fn synthesize_index(descs: Vec<Descriptor>, children: Vec<Arc<Node>>, docker: bool) -> Node {
    let mut index = Index::new(descs);
    if docker {
        index.media_type = Some(oci::DOCKER_MANIFEST_LIST.to_string());
    }
    let bytes = canonical(&index);
    let digest = Digest::of(&bytes);
    let media_type = index.media_type.clone().unwrap_or_default();
    Node {
        desc: Descriptor::new(media_type.clone(), digest, bytes.len() as u64),
        digest,
        media_type,
        bytes,
        is_index: true,
        platform: None,
        children,
    }
}

/// The image manifests below `top` (or `top` itself), each digest once, in listing order.
fn unique_leaves(top: &Arc<Node>) -> Vec<Arc<Node>> {
    fn walk(n: &Arc<Node>, seen: &mut BTreeSet<Digest>, out: &mut Vec<Arc<Node>>) {
        if !seen.insert(n.digest) {
            return;
        }
        if n.is_index {
            for c in &n.children {
                walk(c, seen, out);
            }
        } else {
            out.push(n.clone());
        }
    }
    let mut out = Vec::new();
    walk(top, &mut BTreeSet::new(), &mut out);
    out
}

/// The media type a JSON document declares, or what its shape says.
pub(crate) fn sniff_media_type(bytes: &[u8]) -> Option<String> {
    let v: serde_json::Value = serde_json::from_slice(bytes).ok()?;
    if let Some(mt) = v.get("mediaType").and_then(|m| m.as_str()) {
        return Some(mt.to_string());
    }
    if v.get("manifests").is_some() {
        Some(oci::MEDIA_TYPE_INDEX.to_string())
    } else if v.get("config").is_some() {
        Some(oci::MEDIA_TYPE_MANIFEST.to_string())
    } else {
        None
    }
}

/// Reads the manifests and indexes to push, each digest once, within the reader's limits.
struct Loader<'a> {
    reader: &'a PackageReader,
    path: &'a Path,
    nodes: HashMap<Digest, Arc<Node>>,
    /// Descriptors of manifests and indexes met so far, repeats included.
    listed: usize,
    /// Manifest, index and config bytes held.
    kept_bytes: u64,
    /// Configs and layers of every image read.
    blobs: Vec<Descriptor>,
}

impl Loader<'_> {
    fn keep(&mut self, n: u64) -> Result<()> {
        self.kept_bytes += n;
        if self.kept_bytes > MAX_IMAGES_BYTES {
            return Err(Error::invalid(
                self.path,
                format!(
                    "image manifests and configs exceed {} MiB in total",
                    MAX_IMAGES_BYTES >> 20
                ),
            ));
        }
        Ok(())
    }

    fn load(&mut self, desc: &Descriptor, depth: usize) -> Result<Arc<Node>> {
        let path = self.path;
        if depth > MAX_INDEX_DEPTH {
            return Err(Error::invalid(path, "image indexes nested too deeply"));
        }
        self.listed += 1;
        if self.listed > MAX_IMAGES {
            return Err(Error::invalid(
                path,
                format!("lists more than {MAX_IMAGES} images"),
            ));
        }
        if let Some(n) = self.nodes.get(&desc.digest) {
            return Ok(n.clone());
        }
        let bytes = self.reader.read_verified(desc)?;
        self.keep(bytes.len() as u64)?;
        let media_type = if desc.media_type.is_empty() {
            sniff_media_type(&bytes).ok_or_else(|| {
                Error::invalid(
                    path,
                    format!("{} is neither an image manifest nor an index", desc.digest),
                )
            })?
        } else {
            desc.media_type.clone()
        };
        let node = if oci::is_index(&media_type) {
            let index: Index = serde_json::from_slice(&bytes).map_err(|e| {
                Error::invalid(
                    path,
                    format!(
                        "index {}: {}",
                        desc.digest,
                        crate::ui::sanitize(&e.to_string(), 200)
                    ),
                )
            })?;
            let mut children = Vec::new();
            for d in &index.manifests {
                if !(oci::is_manifest(&d.media_type) || oci::is_index(&d.media_type)) {
                    return Err(Error::invalid(
                        path,
                        format!(
                            "index {} references {} of media type '{}', which cnbpkg cannot push",
                            desc.digest,
                            d.digest,
                            crate::ui::sanitize(&d.media_type, 100)
                        ),
                    ));
                }
                children.push(self.load(d, depth + 1)?);
            }
            Node {
                desc: desc.clone(),
                digest: desc.digest,
                media_type,
                bytes,
                is_index: true,
                platform: desc.platform.clone(),
                children,
            }
        } else if oci::is_manifest(&media_type) {
            let manifest: Manifest = serde_json::from_slice(&bytes).map_err(|e| {
                Error::invalid(
                    path,
                    format!(
                        "manifest {}: {}",
                        desc.digest,
                        crate::ui::sanitize(&e.to_string(), 200)
                    ),
                )
            })?;
            let platform = match &desc.platform {
                Some(p) => Some(p.clone()),
                None => {
                    let cfg = self.reader.read_verified(&manifest.config)?;
                    self.keep(cfg.len() as u64)?;
                    serde_json::from_slice::<ImageConfig>(&cfg)
                        .ok()
                        .filter(|c| !c.os.is_empty())
                        .map(|c| Platform {
                            architecture: c.architecture,
                            os: c.os,
                            os_version: c.os_version,
                            os_features: c.os_features,
                            variant: c.variant,
                        })
                }
            };
            self.blobs.push(manifest.config.clone());
            self.blobs.extend(manifest.layers.iter().cloned());
            if self.blobs.len() > MAX_ENTRIES {
                return Err(Error::invalid(
                    path,
                    format!("its images list more than {MAX_ENTRIES} blobs"),
                ));
            }
            Node {
                desc: desc.clone(),
                digest: desc.digest,
                media_type,
                bytes,
                is_index: false,
                platform,
                children: Vec::new(),
            }
        } else {
            return Err(Error::invalid(
                path,
                format!(
                    "{} has media type '{}', not an image manifest or index",
                    desc.digest,
                    crate::ui::sanitize(&media_type, 100)
                ),
            ));
        };
        let node = Arc::new(node);
        self.nodes.insert(desc.digest, node.clone());
        Ok(node)
    }
}

fn push_manifests(
    client: &Client,
    node: &Node,
    pushed: &mut BTreeSet<Digest>,
    status: &mut dyn FnMut(&str),
) -> Result<()> {
    // Checked before the children: a shared subtree is walked once, not once per listing.
    if pushed.contains(&node.digest) {
        return Ok(());
    }
    for c in &node.children {
        push_manifests(client, c, pushed, status)?;
    }
    pushed.insert(node.digest);
    let kind = if node.is_index { "index" } else { "manifest" };
    let what = match &node.platform {
        Some(p) => format!("{kind} {} ({})", node.digest, platform_text(p)),
        None => format!("{kind} {}", node.digest),
    };
    if reporting(client, status, || {
        upload::manifest_exists(client, &node.digest)
    })? {
        status(&format!("Exists {what}"));
    } else {
        reporting(client, status, || {
            upload::put_manifest(
                client,
                &node.digest.to_string(),
                &node.bytes,
                &node.media_type,
                &node.digest,
            )
        })?;
        status(&format!("Pushed {what}"));
    }
    Ok(())
}

#[derive(Default)]
struct Counts {
    uploaded: usize,
    mounted: usize,
    skipped: usize,
    bytes_sent: u64,
}

enum Event {
    Done(usize, BlobOutcome),
    Failed(Error),
}

/// HEAD, then mount or upload every blob, `jobs` at a time; status lines from this thread.
fn upload_blobs(
    client: &Client,
    reader: &PackageReader,
    blobs: &[Descriptor],
    from: Option<&str>,
    tuning: &UploadTuning,
    opts: &PushOptions,
    status: &mut dyn FnMut(&str),
) -> Result<Counts> {
    let jobs = match opts.jobs {
        0 => DEFAULT_JOBS,
        n => n,
    }
    .clamp(1, MAX_JOBS)
    .min(blobs.len().max(1));
    let bars =
        (opts.progress && std::io::stderr().is_terminal()).then(indicatif::MultiProgress::new);
    let next = AtomicUsize::new(0);
    let abort = AtomicBool::new(false);
    let sent_total = Arc::new(AtomicU64::new(0));
    let mut counts = Counts::default();
    let mut first_error = None;
    std::thread::scope(|scope| {
        let (tx, rx) = mpsc::channel::<Event>();
        for _ in 0..jobs {
            let tx = tx.clone();
            let (next, abort, sent_total, bars) = (&next, &abort, &sent_total, &bars);
            scope.spawn(move || loop {
                if abort.load(Ordering::Relaxed) {
                    break;
                }
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(desc) = blobs.get(i) else { break };
                let result = one_blob(
                    client,
                    reader,
                    desc,
                    from,
                    tuning,
                    sent_total,
                    bars.as_ref(),
                );
                let event = match result {
                    Ok(o) => Event::Done(i, o),
                    Err(e) => Event::Failed(e),
                };
                if tx.send(event).is_err() {
                    break;
                }
            });
        }
        drop(tx);
        let mut say = |line: &str| match &bars {
            Some(mp) => mp.suspend(|| status(line)),
            None => status(line),
        };
        loop {
            let event = match rx.recv_timeout(Duration::from_millis(200)) {
                Ok(e) => Some(e),
                Err(mpsc::RecvTimeoutError::Timeout) => None,
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            };
            for note in client.take_notes() {
                say(&note);
            }
            let Some(event) = event else { continue };
            match event {
                Event::Done(i, outcome) => {
                    let d = &blobs[i];
                    let size = human_size(d.size);
                    match outcome {
                        BlobOutcome::Exists => {
                            counts.skipped += 1;
                            say(&format!("Exists {} ({size})", d.digest));
                        }
                        BlobOutcome::Mounted => {
                            counts.mounted += 1;
                            say(&format!(
                                "Mounted {} ({size}) from {}",
                                d.digest,
                                from.unwrap_or("?")
                            ));
                        }
                        BlobOutcome::Uploaded => {
                            counts.uploaded += 1;
                            say(&format!("Uploaded {} ({size})", d.digest));
                        }
                    }
                }
                Event::Failed(e) => {
                    abort.store(true, Ordering::Relaxed);
                    if first_error.is_none() {
                        first_error = Some(e);
                    }
                }
            }
        }
    });
    if let Some(mp) = &bars {
        let _ = mp.clear();
    }
    for note in client.take_notes() {
        status(&note);
    }
    if let Some(e) = first_error {
        return Err(e);
    }
    counts.bytes_sent = sent_total.load(Ordering::Relaxed);
    Ok(counts)
}

fn one_blob(
    client: &Client,
    reader: &PackageReader,
    desc: &Descriptor,
    from: Option<&str>,
    tuning: &UploadTuning,
    sent_total: &Arc<AtomicU64>,
    bars: Option<&indicatif::MultiProgress>,
) -> Result<BlobOutcome> {
    if upload::blob_exists(client, &desc.digest)? {
        return Ok(BlobOutcome::Exists);
    }
    let bar = bars.map(|mp| {
        let bar = mp.add(indicatif::ProgressBar::new(desc.size));
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{prefix:>12} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
            .progress_chars("=> "),
        );
        bar.set_prefix(desc.digest.short());
        bar
    });
    let total = sent_total.clone();
    let bar2 = bar.clone();
    let sent: SentFn = Arc::new(move |n| {
        total.fetch_add(n, Ordering::Relaxed);
        if let Some(b) = &bar2 {
            b.inc(n);
        }
    });
    let digest = desc.digest;
    let open = || {
        if let Some(b) = &bar {
            b.set_position(0);
        }
        reader.open_blob(&digest)
    };
    let result = upload::push_blob(
        client,
        reader.path(),
        &digest,
        desc.size,
        &open,
        from,
        tuning,
        &sent,
    );
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    result
}

fn human_size(n: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut v = n as f64 / 1024.0;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    format!("{v:.1} {}", UNITS[u])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn platform_filters() {
        let p = Platform {
            os: "linux".into(),
            architecture: "arm".into(),
            variant: "v7".into(),
            ..Default::default()
        };
        assert!(PlatformFilter::parse("linux").unwrap().matches(&p));
        assert!(PlatformFilter::parse("linux/arm").unwrap().matches(&p));
        assert!(PlatformFilter::parse("linux/arm/v7").unwrap().matches(&p));
        assert!(!PlatformFilter::parse("linux/arm/v6").unwrap().matches(&p));
        assert!(!PlatformFilter::parse("windows").unwrap().matches(&p));
        assert!(PlatformFilter::parse("linux//v7").is_err());
        assert!(PlatformFilter::parse("a/b/c/d").is_err());
    }

    #[test]
    fn from_repository_forms() {
        let r = Reference::parse("127.0.0.1:5000/a/b:t").unwrap();
        assert_eq!(parse_from("x/y", &r).unwrap().as_deref(), Some("x/y"));
        assert_eq!(
            parse_from("127.0.0.1:5000/x/y:tag", &r).unwrap().as_deref(),
            Some("x/y")
        );
        assert_eq!(parse_from("a/b", &r).unwrap(), None);
        assert!(parse_from("ghcr.io/x/y", &r).is_err());
    }

    #[test]
    fn sizes_read_well() {
        assert_eq!(human_size(10), "10 B");
        assert_eq!(human_size(1536), "1.5 KiB");
        assert_eq!(human_size(5 << 20), "5.0 MiB");
    }
}
