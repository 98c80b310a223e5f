//! The push flow: destinations, blob uploads in parallel, then manifests and tags.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use crate::cancel::Cancel;
use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::events::{Events, EventsExt as _};
use crate::layout::PackageReader;
use crate::oci::{Descriptor, Platform};

use super::auth::{Credential, Secret};
use super::client::Deadlines;
use super::client::{Access, Client, Connection, RetryPolicy, Transport};
use super::plan::{Node, Plan};
use super::upload::{BlobOutcome, UploadTuning};
use super::{auth, read, upload};
use crate::cnb::PlatformFilter;
use crate::reference;
use crate::reference::{Reference, Target};

/// What to push where. Build with [`PushOptions::new`], then set the fields wanted.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
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
    /// The platforms to push (an image matching any of them); empty pushes every platform.
    pub platforms: Vec<PlatformFilter>,
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
    /// Parallel blob uploads; 0 means [`DEFAULT_JOBS`](super::DEFAULT_JOBS).
    pub jobs: usize,
    /// Stops the push before its next request once cancelled (what was sent stays sent).
    pub cancel: Cancel,
}

impl PushOptions {
    /// Push `package` to `reference`, with every other option at its default.
    pub fn new(package: impl Into<PathBuf>, reference: impl Into<String>) -> Self {
        PushOptions {
            package: package.into(),
            reference: reference.into(),
            ..Default::default()
        }
    }
}

/// What a push did.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
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
    pub manifests: Vec<PushedManifest>,
    /// The warnings given while pushing (also sent as [`crate::events::Event::Warning`]).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

/// One image manifest a push sent (or found present).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct PushedManifest {
    /// Its platform, when the index or its config names one.
    pub platform: Option<Platform>,
    /// Its digest.
    pub digest: Digest,
}

/// Tuning knobs beyond the command line (tests use them to exercise rare paths). Start from
/// [`PushSettings::default`] or [`PushSettings::from_env`] and set the fields wanted.
#[derive(Debug, Clone)]
#[non_exhaustive]
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
    /// [`super::certs::default_certs_d`].
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
    /// How the client for each registry connects and retries under these settings.
    pub(super) fn connection<'a>(&self, transport: &'a Transport<'a>) -> Connection<'a> {
        Connection {
            transport,
            retry: RetryPolicy {
                attempts: self.attempts.max(1),
                initial_backoff: self.initial_backoff,
                max_backoff: self.max_backoff,
            },
            deadlines: self.deadlines,
        }
    }

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
/// [`RETRY_BACKOFF_ENV`] or [`REQUEST_TIMEOUT_ENV`] is set), reporting to `events`.
pub fn push(opts: &PushOptions, events: &dyn Events) -> Result<PushReport> {
    push_with(opts, &PushSettings::from_env(), events)
}

/// One repository pushed to, with every tag or digest it gets.
struct Destination {
    /// The first reference naming this repository (registry, api host, repository).
    reference: Reference,
    targets: Vec<Target>,
}

/// Push a package, reporting to `events`: status lines (`Credentials`, `Trusting`, `Pushing`,
/// `Retrying`, `Exists`, `Mounted`, `Uploaded`, `Pushed`), warnings (listed in the report
/// too) and each blob upload's progress as [`crate::events::Event::Transfer`].
pub fn push_with(
    opts: &PushOptions,
    settings: &PushSettings,
    events: &dyn Events,
) -> Result<PushReport> {
    opts.cancel
        .operation(|| push_checked(opts, settings, events))
}

fn push_checked(
    opts: &PushOptions,
    settings: &PushSettings,
    events: &dyn Events,
) -> Result<PushReport> {
    let mut references = vec![Reference::parse(&opts.reference)?];
    for r in &opts.more_references {
        references.push(Reference::parse(r)?);
    }
    for t in &opts.tags {
        if !reference::valid_tag(t) {
            return Err(Error::usage(format!("invalid tag '{t}'")));
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
    let credential = match (&opts.username, &opts.password) {
        (Some(u), Some(p)) => Some(Credential::Basic {
            username: u.clone(),
            password: Secret::new(p.clone()),
        }),
        (Some(_), None) => return Err(Error::usage("a user name needs a password")),
        (None, Some(_)) => return Err(Error::usage("a password needs a user name")),
        (None, None) => None,
    };

    let reader = PackageReader::open(&opts.package)?;
    let digest_target = destinations
        .iter()
        .flat_map(|d| d.targets.iter())
        .find(|t| matches!(t, Target::Digest(_)))
        .cloned()
        .unwrap_or_else(|| Target::Tag(String::new()));
    let plan = Plan::build(&reader, &opts.package, &opts.platforms, &digest_target)?;
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
            .map(|l| PushedManifest {
                platform: l.platform.clone(),
                digest: l.digest,
            })
            .collect(),
        warnings: Vec::new(),
    };
    // The user name given applies to the first reference's registry only.
    let mut credentials = auth::Credentials::new(
        credential.map(|c| (first.registry.clone(), c)),
        settings.credential_files.clone(),
        events,
    );
    for (i, dest) in destinations.iter().enumerate() {
        let reference = &dest.reference;
        let credential = credentials.for_registry(&reference.registry)?;
        // Mount from a repository of this registry pushed to already, else from `from`.
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
            events,
            &mut report.warnings,
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
    events: &dyn Events,
    warnings: &mut Vec<String>,
) -> Result<Counts> {
    let reference = &dest.reference;
    if opts.insecure && !reference::is_loopback(&reference.registry) {
        let warning = format!(
            "pushing to {} over plain HTTP: content and credentials are not encrypted",
            reference.registry
        );
        events.warning(&warning);
        warnings.push(warning);
    }
    let transport = Transport {
        insecure: opts.insecure,
        ca_cert: opts.ca_cert.as_deref(),
        certs_d: settings.certs_d.clone(),
    };
    let client = Client::new(
        reference,
        Access::Push { mount_from: from },
        credential,
        &settings.connection(&transport),
        events,
    )?;
    client.connect()?;
    let shown = Reference {
        target: dest.targets[0].clone(),
        ..reference.clone()
    };
    events.status(
        "Pushing",
        &format!(
            "{} ({} blobs, {} manifests) to {shown}",
            opts.package.display(),
            plan.blobs.len(),
            plan.leaves.len()
        ),
    );

    let tuning = UploadTuning {
        chunk_threshold: settings.chunk_threshold,
        chunk_size: settings.chunk_size.max(1),
    };
    let counts = upload_blobs(&client, reader, &plan.blobs, from, &tuning, opts.jobs)?;

    // Manifests below the top, children before parents, each once.
    let mut pushed = BTreeSet::new();
    for child in &plan.top.children {
        push_manifests(&client, child, &mut pushed)?;
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
                upload::put_manifest(&client, tag, &top.bytes, &top.media_type, &top.digest)?;
                events.status("Pushed", &format!("{kind} {} to {at}", top.digest));
            }
            Target::Digest(d) => {
                if read::manifest_exists(&client, d)? {
                    events.status("Exists", &format!("{kind} {d}"));
                } else {
                    upload::put_manifest(&client, &d.to_string(), &top.bytes, &top.media_type, d)?;
                    events.status("Pushed", &format!("{kind} {d} to {at}"));
                }
            }
        }
    }
    Ok(counts)
}

/// The repository to mount blobs from, given as [`PushOptions::from`]: one on the same
/// registry as `reference`, with or without the registry prefix (a tag or digest after it is
/// ignored). `None` when it is `reference`'s own repository. Errors name `from` first, so a
/// caller can say which option it came from.
pub fn parse_from(from: &str, reference: &Reference) -> Result<Option<String>> {
    let shown = crate::reference::shown(from);
    let repo = match from.split_once('/') {
        Some((first, rest))
            if first.contains('.') || first.contains(':') || first == "localhost" =>
        {
            if first != reference.registry {
                return Err(Error::usage(format!(
                    "{shown}: blobs can only be mounted from a repository on {}",
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
            "{shown}: not a valid repository name"
        )));
    }
    Ok((repo != reference.repository).then_some(repo))
}

fn push_manifests(client: &Client, node: &Node, pushed: &mut BTreeSet<Digest>) -> Result<()> {
    // Checked before the children: a shared subtree is walked once, not once per listing.
    if pushed.contains(&node.digest) {
        return Ok(());
    }
    for c in &node.children {
        push_manifests(client, c, pushed)?;
    }
    pushed.insert(node.digest);
    let kind = if node.is_index { "index" } else { "manifest" };
    let what = match &node.platform {
        Some(p) => format!("{kind} {} ({p})", node.digest),
        None => format!("{kind} {}", node.digest),
    };
    if read::manifest_exists(client, &node.digest)? {
        client.events().status("Exists", &what);
    } else {
        upload::put_manifest(
            client,
            &node.digest.to_string(),
            &node.bytes,
            &node.media_type,
            &node.digest,
        )?;
        client.events().status("Pushed", &what);
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

/// HEAD, then mount or upload every blob, `jobs` at a time ([`DEFAULT_JOBS`](super::DEFAULT_JOBS) when 0); each
/// outcome is reported from the thread that got it, as it comes. The first failure stops
/// the other threads before their next blob.
fn upload_blobs(
    client: &Client,
    reader: &PackageReader,
    blobs: &[Descriptor],
    from: Option<&str>,
    tuning: &UploadTuning,
    jobs: usize,
) -> Result<Counts> {
    let sent = AtomicU64::new(0);
    let counts = Mutex::new(Counts::default());
    super::parallel::for_each_blob(blobs, jobs, |desc| {
        let outcome = one_blob(client, reader, desc, from, tuning, &sent)?;
        announce(client.events(), desc, outcome, from);
        let mut c = counts.lock().unwrap_or_else(|p| p.into_inner());
        match outcome {
            BlobOutcome::Exists => c.skipped += 1,
            BlobOutcome::Mounted => c.mounted += 1,
            BlobOutcome::Uploaded => c.uploaded += 1,
        }
        Ok(())
    })?;
    let mut counts = counts.into_inner().unwrap_or_else(|p| p.into_inner());
    counts.bytes_sent = sent.load(Ordering::Relaxed);
    Ok(counts)
}

/// `Exists`, `Mounted` or `Uploaded`, with the blob's size.
fn announce(events: &dyn Events, d: &Descriptor, outcome: BlobOutcome, from: Option<&str>) {
    let size = human_size(d.size);
    match outcome {
        BlobOutcome::Exists => events.status("Exists", &format!("{} ({size})", d.digest)),
        BlobOutcome::Mounted => events.status(
            "Mounted",
            &format!("{} ({size}) from {}", d.digest, from.unwrap_or("?")),
        ),
        BlobOutcome::Uploaded => events.status("Uploaded", &format!("{} ({size})", d.digest)),
    }
}

fn one_blob(
    client: &Client,
    reader: &PackageReader,
    desc: &Descriptor,
    from: Option<&str>,
    tuning: &UploadTuning,
    sent: &AtomicU64,
) -> Result<BlobOutcome> {
    if read::blob_exists(client, &desc.digest)? {
        return Ok(BlobOutcome::Exists);
    }
    let digest = desc.digest;
    upload::push_blob(
        client,
        reader.path(),
        &digest,
        desc.size,
        &|| reader.open_blob(&digest),
        from,
        tuning,
        sent,
    )
}

pub(super) fn human_size(n: u64) -> String {
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
