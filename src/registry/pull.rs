//! The pull flow: images and indexes copied byte for byte from registries into the store,
//! every digest and size verified while streaming.

use std::cell::Cell;
use std::collections::{BTreeSet, HashMap};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crate::cancel::Cancel;
use crate::cnb::PlatformFilter;
use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::events::{Events, EventsExt as _};
use crate::layout::tree::BlobSource;
use crate::oci::{self, Descriptor, Platform, MAX_JSON_BLOB};
use crate::store::Store;

use super::auth::{self, Credential, Secret};
use super::client::{Access, Client, Failure, Transport};
use super::plan::{descriptor_of, Node, Plan};
use super::push::{human_size, PushSettings};
use super::read::{self, Fetched};
use super::reference::{self, Reference, Target};
use super::stream::{Counting, Progress, Verdict, Verified};

/// What to pull, and into which store. Build with [`PullOptions::new`], then set the fields
/// wanted.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct PullOptions {
    /// `REGISTRY/REPO[:TAG]` or `REGISTRY/REPO@sha256:…` (Docker Hub's rules for short
    /// names), each pulled in turn.
    pub references: Vec<String>,
    /// The store to fill; `None` is [`crate::store::default_store`].
    pub store: Option<PathBuf>,
    /// The platforms to pull (an image matching any of them); empty pulls every platform.
    /// One platform of an index stores that platform's manifest under the reference; several
    /// (not all) store a new index listing just them.
    pub platforms: Vec<PlatformFilter>,
    /// Plain HTTP instead of HTTPS.
    pub insecure: bool,
    /// A PEM file with CA certificates to trust in addition to the system's.
    pub ca_cert: Option<PathBuf>,
    /// User name for basic or token authentication (the first reference's registry only).
    pub username: Option<String>,
    /// Password or access token (never printed).
    pub password: Option<String>,
    /// Parallel blob downloads; 0 means [`DEFAULT_JOBS`](super::DEFAULT_JOBS).
    pub jobs: usize,
    /// Stops the pull before its next request once cancelled (what was stored stays stored).
    pub cancel: Cancel,
}

impl PullOptions {
    /// Pull `references` into the default store, every other option at its default.
    pub fn new<S: Into<String>>(references: impl IntoIterator<Item = S>) -> Self {
        PullOptions {
            references: references.into_iter().map(Into::into).collect(),
            ..Default::default()
        }
    }
}

/// What a pull did.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct PullReport {
    /// The store filled.
    pub store: PathBuf,
    /// Every reference pulled, in order.
    pub images: Vec<PulledImage>,
    /// Blobs downloaded (configs and layers).
    pub downloaded: usize,
    /// Blobs the store held already (not downloaded).
    pub present: usize,
    /// Blob bytes streamed into the store (manifests and the configs read with them not
    /// counted; retried downloads count again).
    pub bytes_received: u64,
    /// The warnings given while pulling (also sent as [`crate::events::Event::Warning`]).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

/// One reference pulled.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct PulledImage {
    /// The full normalized reference, as the store names it (`docker.io/library/x:1`).
    pub reference: String,
    /// Digest of the manifest or index stored under it.
    pub digest: Digest,
    /// Its media type, as the registry served it.
    pub media_type: String,
    /// Every image manifest stored, with its platform.
    pub manifests: Vec<PulledManifest>,
}

/// One image manifest a pull stored.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct PulledManifest {
    /// Its platform, when the index or its config names one.
    pub platform: Option<Platform>,
    /// Its digest.
    pub digest: Digest,
}

/// Pull with [`PushSettings::from_env`] (the same retries, deadlines and hidden test
/// variables as push), reporting to `events`.
pub fn pull(opts: &PullOptions, events: &dyn Events) -> Result<PullReport> {
    pull_with(opts, &PushSettings::from_env(), events)
}

/// Pull every reference into the store, reporting status lines (`Credentials`, `Trusting`,
/// `Pulling`, `Retrying`, `Exists`, `Downloaded`, `Pulled`), warnings and each blob
/// download's progress as [`crate::events::Event::Transfer`]. A reference is named in the
/// store only once every blob it needs is there, verified.
pub fn pull_with(
    opts: &PullOptions,
    settings: &PushSettings,
    events: &dyn Events,
) -> Result<PullReport> {
    opts.cancel
        .scope(|| pull_checked(opts, settings, events))
        .map_err(|e| {
            if opts.cancel.is_cancelled() {
                Error::Interrupted
            } else {
                e
            }
        })
}

fn pull_checked(
    opts: &PullOptions,
    settings: &PushSettings,
    events: &dyn Events,
) -> Result<PullReport> {
    if opts.references.is_empty() {
        return Err(Error::usage("nothing to pull: name at least one reference"));
    }
    let references = opts
        .references
        .iter()
        .map(|r| Reference::parse(r))
        .collect::<Result<Vec<_>>>()?;
    let credential = match (&opts.username, &opts.password) {
        (Some(u), Some(p)) => Some(Credential::Basic {
            username: u.clone(),
            password: Secret::new(p.clone()),
        }),
        (Some(_), None) => return Err(Error::usage("a user name needs a password")),
        (None, Some(_)) => return Err(Error::usage("a password needs a user name")),
        (None, None) => None,
    };
    let root = match &opts.store {
        Some(p) => p.clone(),
        None => crate::store::default_store()?,
    };
    let store = Store::open_or_create(&root)?;
    let mut report = PullReport {
        store: root,
        images: Vec::new(),
        downloaded: 0,
        present: 0,
        bytes_received: 0,
        warnings: Vec::new(),
    };
    let mut credentials = auth::Credentials::new(
        credential.map(|c| (references[0].registry.clone(), c)),
        settings.credential_files.clone(),
        events,
    );
    for reference in &references {
        if opts.insecure && !reference::is_loopback(&reference.registry) {
            let warning = format!(
                "pulling from {} over plain HTTP: content and credentials are not encrypted",
                reference.registry
            );
            events.warning(&warning);
            report.warnings.push(warning);
        }
        let credential = credentials.for_registry(&reference.registry)?;
        let transport = Transport {
            insecure: opts.insecure,
            ca_cert: opts.ca_cert.as_deref(),
            certs_d: settings.certs_d.clone(),
        };
        let client = Client::new(
            reference,
            Access::Pull,
            credential,
            &settings.connection(&transport),
            events,
        )?;
        client.connect()?;
        let image = pull_one(&client, &store, reference, opts, &mut report)?;
        report.images.push(image);
    }
    Ok(report)
}

/// One reference: its tree read and verified, its blobs downloaded, its manifests stored,
/// then its name set.
fn pull_one(
    client: &Client,
    store: &Store,
    reference: &Reference,
    opts: &PullOptions,
    report: &mut PullReport,
) -> Result<PulledImage> {
    let name = reference.to_string();
    let events = client.events();
    let top = read::fetch_manifest(client, &reference.target)?;
    let media_type = crate::layout::tree::sniff_media_type(&top.bytes)
        .or_else(|| top.content_type.clone())
        .unwrap_or_default();
    if !oci::is_manifest(&media_type) && !oci::is_index(&media_type) {
        return Err(Error::other(format!(
            "{name}: the registry serves '{}', which is neither an image manifest nor an index",
            crate::ui::sanitize(&media_type, 100)
        )));
    }
    let origin = PathBuf::from(&name);
    let source = RegistryBlobs {
        client,
        store,
        top: &top,
        origin: origin.clone(),
        held: Mutex::new(HashMap::new()),
    };
    let listed = [Descriptor::new(
        media_type.clone(),
        top.digest,
        top.bytes.len() as u64,
    )];
    let plan = Plan::build_from(
        &source,
        &listed,
        None,
        &origin,
        &opts.platforms,
        &Target::Tag(String::new()),
    )?;
    if let Target::Digest(d) = &reference.target {
        if plan.top.digest != *d {
            return Err(Error::usage(format!(
                "{name} names one image by its digest: a subset of its platforms would be another one (pull it by tag instead)"
            )));
        }
    }
    events.status(
        "Pulling",
        &format!(
            "{name} ({} blobs, {} manifests)",
            plan.blobs.len(),
            plan.leaves.len()
        ),
    );
    let held = source.held.into_inner().unwrap_or_else(|p| p.into_inner());
    let counts = download_blobs(client, store, &plan.blobs, &held, &origin, opts.jobs)?;
    report.downloaded += counts.downloaded;
    report.present += counts.present;
    report.bytes_received += counts.received;
    // Children before parents: a manifest is stored only once everything it lists is.
    store_nodes(store, &plan.top, &mut BTreeSet::new())?;
    store.set_ref(&name, &descriptor_of(&plan.top))?;
    let kind = if plan.top.is_index {
        "index"
    } else {
        "manifest"
    };
    events.status("Pulled", &format!("{kind} {} as {name}", plan.top.digest));
    Ok(PulledImage {
        reference: name,
        digest: plan.top.digest,
        media_type: plan.top.media_type.clone(),
        manifests: plan
            .leaves
            .iter()
            .map(|l| PulledManifest {
                platform: l.platform.clone(),
                digest: l.digest,
            })
            .collect(),
    })
}

/// Every manifest and index of the tree into the store, children first, each once.
fn store_nodes(store: &Store, node: &Arc<Node>, stored: &mut BTreeSet<Digest>) -> Result<()> {
    if !stored.insert(node.digest) {
        return Ok(());
    }
    for child in &node.children {
        store_nodes(store, child, stored)?;
    }
    store.write_blob_bytes(&node.digest, &node.bytes)
}

/// The registry as the tree walker's source: the manifest served at the reference, then
/// manifests, indexes and configs by digest (read from the store when it holds them), each at
/// most [`MAX_JSON_BLOB`], verified against its descriptor. Configs fetched are kept for the
/// download step, so they are not fetched twice.
struct RegistryBlobs<'a> {
    client: &'a Client<'a>,
    store: &'a Store,
    top: &'a Fetched,
    origin: PathBuf,
    held: Mutex<HashMap<Digest, Vec<u8>>>,
}

impl RegistryBlobs<'_> {
    fn size_checked(&self, desc: &Descriptor, bytes: Vec<u8>) -> Result<Vec<u8>> {
        if bytes.len() as u64 != desc.size {
            return Err(Error::SizeMismatch {
                path: self.origin.clone(),
                digest: desc.digest,
                expected: desc.size,
                actual: bytes.len() as u64,
            });
        }
        Ok(bytes)
    }

    fn fetch(&self, desc: &Descriptor) -> Result<Vec<u8>> {
        if desc.size > MAX_JSON_BLOB {
            return Err(Error::invalid(
                &self.origin,
                format!(
                    "{} is listed as {} bytes, more than a manifest or config may have ({} MiB)",
                    desc.digest,
                    desc.size,
                    MAX_JSON_BLOB >> 20
                ),
            ));
        }
        if desc.digest == self.top.digest {
            return self.size_checked(desc, self.top.bytes.clone());
        }
        if self.store.has_blob(desc)? {
            let path = self.store.root().join(desc.digest.blob_path());
            let bytes = std::fs::read(&path).map_err(|e| Error::io(&path, e))?;
            if Digest::of(&bytes) == desc.digest {
                return self.size_checked(desc, bytes);
            }
        }
        if oci::is_manifest(&desc.media_type) || oci::is_index(&desc.media_type) {
            let fetched = read::fetch_manifest(self.client, &Target::Digest(desc.digest))?;
            return self.size_checked(desc, fetched.bytes);
        }
        let mut bytes = Vec::new();
        download(self.client, desc, &self.origin, None, &mut bytes, |b| {
            b.clear();
            Ok(())
        })?;
        self.held
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(desc.digest, bytes.clone());
        Ok(bytes)
    }
}

impl BlobSource for RegistryBlobs<'_> {
    fn fetch_verified(&self, desc: &Descriptor) -> Result<Vec<u8>> {
        self.fetch(desc)
    }

    fn origin(&self) -> &Path {
        &self.origin
    }
}

/// GET blob `desc` into `out`, verified while streaming (a body that is not the blob fails
/// before its last bytes are handed on; one cut short is fetched again, `reset` emptying `out`
/// before each attempt). Progress goes to `progress` when given.
fn download<W: io::Write>(
    client: &Client,
    desc: &Descriptor,
    origin: &Path,
    progress: Option<&Progress<'_>>,
    out: &mut W,
    reset: impl Fn(&mut W) -> Result<()>,
) -> Result<()> {
    let url = client.url(&format!("blobs/{}", desc.digest));
    let attempts = Cell::new(0u32);
    client.get_streamed(&url, &[], Some(desc.size), |resp, body| {
        if attempts.replace(attempts.get() + 1) > 0 {
            if let Some(p) = progress {
                p.restart();
            }
        }
        read::check_digest(client, resp, &desc.digest)?;
        reset(out)?;
        let verdict = Verdict::default();
        let copied = match progress {
            Some(p) => {
                let mut v = Verified::new(Counting::new(body, p), desc.size, desc.digest, &verdict);
                io::copy(&mut v, out).map(|_| v.finish(origin))
            }
            None => {
                let mut v = Verified::new(body, desc.size, desc.digest, &verdict);
                io::copy(&mut v, out).map(|_| v.finish(origin))
            }
        };
        match copied {
            Ok(Ok(())) => Ok(()),
            // Fewer bytes than listed: the connection ended early, worth another attempt.
            Ok(Err(Error::SizeMismatch {
                expected, actual, ..
            })) if actual < expected => Err(Failure::transient(Error::other(format!(
                "{}: the download of {} ended after {actual} of {expected} bytes",
                client.registry, desc.digest
            )))),
            Ok(Err(e)) => Err(Failure::from(e)),
            Err(_) if verdict.mismatch().is_some() => Err(Failure::from(Error::DigestMismatch {
                path: origin.to_path_buf(),
                expected: desc.digest,
                actual: verdict.mismatch().expect("checked"),
            })),
            Err(e) if e.kind() == io::ErrorKind::InvalidData => {
                Err(Failure::from(Error::io(origin, e)))
            }
            Err(e) => Err(client.body_failure(&ureq::http::Method::GET, &url, &e)),
        }
    })
}

#[derive(Debug, Default)]
struct Counts {
    downloaded: usize,
    present: usize,
    received: u64,
}

/// Every blob not in the store yet, downloaded into it `jobs` at a time ([`DEFAULT_JOBS`](super::DEFAULT_JOBS)
/// when 0); `held` are blobs read already (configs). The first failure stops the other
/// threads before their next blob.
fn download_blobs(
    client: &Client,
    store: &Store,
    blobs: &[Descriptor],
    held: &HashMap<Digest, Vec<u8>>,
    origin: &Path,
    jobs: usize,
) -> Result<Counts> {
    let received = AtomicU64::new(0);
    let counts = Mutex::new(Counts::default());
    super::parallel::for_each_blob(blobs, jobs, |desc| {
        let downloaded = one_blob(client, store, desc, held, origin, &received)?;
        let mut c = counts.lock().unwrap_or_else(|p| p.into_inner());
        if downloaded {
            c.downloaded += 1;
        } else {
            c.present += 1;
        }
        Ok(())
    })?;
    let mut counts = counts.into_inner().unwrap_or_else(|p| p.into_inner());
    counts.received = received.load(Ordering::Relaxed);
    Ok(counts)
}

/// One blob into the store: `false` when it was there already.
fn one_blob(
    client: &Client,
    store: &Store,
    desc: &Descriptor,
    held: &HashMap<Digest, Vec<u8>>,
    origin: &Path,
    received: &AtomicU64,
) -> Result<bool> {
    let events = client.events();
    let size = human_size(desc.size);
    if store.has_blob(desc)? {
        events.status("Exists", &format!("{} ({size})", desc.digest));
        return Ok(false);
    }
    if let Some(bytes) = held.get(&desc.digest) {
        store.write_blob_bytes(&desc.digest, bytes)?;
    } else {
        let progress = Progress::start(events, &desc.digest, Some(desc.size), received);
        store.write_blob(desc, |file| {
            use std::io::Seek as _;
            let path = store.root().join(desc.digest.blob_path());
            download(client, desc, origin, Some(&progress), file, |f| {
                // Each attempt writes the blob from its first byte.
                f.set_len(0).map_err(|e| Error::io(&path, e))?;
                f.rewind().map_err(|e| Error::io(&path, e))
            })
        })?;
    }
    events.status("Downloaded", &format!("{} ({size})", desc.digest));
    Ok(true)
}
