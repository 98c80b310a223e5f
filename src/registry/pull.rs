//! The pull flow: images and indexes copied byte for byte from registries into the store,
//! every digest and size verified while streaming, and with `--output` from the store into one
//! archive.
//!
//! A blob download that stops halfway keeps its bytes in the store's download area; the next
//! attempt (a retry, or the next pull) hashes them again and asks for the rest with a `Range`
//! request. A registry that answers with the whole blob (200) instead of the rest (206) is
//! read from the first byte again. Only the complete blob, its size and digest verified, is
//! renamed into place.

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
use super::stream::{Counting, Progress, Verdict, Verified};
use crate::reference::{self, Reference, Target};

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
    /// Also write the images pulled into this archive, once all are stored: with one
    /// reference a package-shaped file (`index.json` listing its manifest or index, readable as
    /// a `.cnb`), with several a layout whose `index.json` names each by its reference. The
    /// store is filled (and read from) as without it.
    pub output: Option<PathBuf>,
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
    /// The archive written (`--output`), if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output: Option<PathBuf>,
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
        .operation(|| pull_checked(opts, settings, events))
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
    if let Some(out) = &opts.output {
        check_output(out, &root)?;
    }
    let store = Store::open_or_create(&root)?;
    // Held until every reference is set (and the archive written): no gc removes what this
    // pull stores before it is named.
    let _lease = store.lock_shared()?;
    let mut report = PullReport {
        store: root,
        output: None,
        images: Vec::new(),
        downloaded: 0,
        present: 0,
        bytes_received: 0,
        warnings: Vec::new(),
    };
    let mut trees = Vec::new();
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
        let (image, tree) = pull_one(&client, &store, reference, opts, &mut report)?;
        report.images.push(image);
        trees.push(tree);
    }
    if let Some(out) = &opts.output {
        report.output = Some(write_output(&store, &trees, out, events)?);
    }
    Ok(report)
}

/// What an archive needs of one pulled image: its name, the descriptor `index.json` lists it
/// with, its manifests and indexes (held), and its other blobs (in the store).
struct PulledTree {
    name: String,
    entry: Descriptor,
    top: Arc<Node>,
    blobs: Vec<Descriptor>,
}

/// `--output` must name a file outside the store (the store holds only its own files).
fn check_output(out: &Path, store: &Path) -> Result<()> {
    let canonical = |p: &Path| {
        std::fs::canonicalize(p).ok().or_else(|| {
            let dir = std::fs::canonicalize(crate::atomic::parent_of(p)).ok()?;
            Some(dir.join(p.file_name()?))
        })
    };
    if let (Some(o), Some(s)) = (canonical(out), canonical(store)) {
        if o.starts_with(&s) {
            return Err(Error::usage(format!(
                "--output {}: lies inside the store {}; write the archive somewhere else",
                out.display(),
                store.display()
            )));
        }
    }
    Ok(())
}

/// Write the pulled images from the store into one archive at `out` (atomic; blobs in digest
/// order, each once, verified as they are copied): one image as a package (`index.json`
/// listing its manifest or index, named by its reference), several as a layout naming each.
fn write_output(
    store: &Store,
    trees: &[PulledTree],
    out: &Path,
    events: &dyn Events,
) -> Result<PathBuf> {
    use crate::layout::{LayoutWriter, OutputFormat};
    use std::collections::BTreeMap;
    // Manifests and indexes are held in memory (bounded by the walk's limits); the other
    // blobs are streamed from the store.
    let mut held: BTreeMap<Digest, (Descriptor, &[u8])> = BTreeMap::new();
    let mut stored: BTreeMap<Digest, &Descriptor> = BTreeMap::new();
    let mut entries: BTreeMap<&str, Descriptor> = BTreeMap::new();
    for tree in trees {
        let mut stack = vec![&tree.top];
        while let Some(node) = stack.pop() {
            let desc = descriptor_of(node);
            if held.insert(node.digest, (desc, &node.bytes)).is_none() {
                stack.extend(&node.children);
            }
        }
        for b in &tree.blobs {
            stored.entry(b.digest).or_insert(b);
        }
        entries.insert(&tree.name, tree.entry.clone());
    }
    let mut blobs: BTreeMap<Digest, Blob<'_>> = BTreeMap::new();
    for (d, (desc, bytes)) in &held {
        blobs.insert(*d, Blob::Held(desc, bytes));
    }
    for (d, desc) in stored {
        blobs.entry(d).or_insert(Blob::Stored(desc));
    }
    events.status(
        "Writing",
        &format!("{} ({} blobs)", out.display(), blobs.len()),
    );
    let mut writer = LayoutWriter::create(out, OutputFormat::File)?;
    for blob in blobs.values() {
        crate::cancel::check()?;
        match blob {
            Blob::Held(desc, bytes) => writer.copy_blob(desc, &mut &bytes[..], out)?,
            Blob::Stored(desc) => {
                let path = store.root().join(desc.digest.blob_path());
                let mut file = crate::input::open_walked(&path, None)?;
                if let Err(e) = writer.copy_blob(desc, &mut file, &path) {
                    if store.discard_damaged(desc).unwrap_or(false) {
                        return Err(Error::other(format!(
                            "{}: the stored blob {} was damaged and is removed; pull again to download it ({e})",
                            store.root().display(),
                            desc.digest
                        )));
                    }
                    return Err(e);
                }
            }
        }
    }
    let index = crate::oci::Index::new(entries.into_values().collect());
    let dest = writer.finish(&index)?;
    events.status("Wrote", &dest.display().to_string());
    Ok(dest)
}

/// One blob of an archive: held in memory, or read from the store.
enum Blob<'a> {
    Held(&'a Descriptor, &'a [u8]),
    Stored(&'a Descriptor),
}

/// One reference: its tree read and verified, its blobs downloaded, its manifests stored,
/// then its name set.
fn pull_one(
    client: &Client,
    store: &Store,
    reference: &Reference,
    opts: &PullOptions,
    report: &mut PullReport,
) -> Result<(PulledImage, PulledTree)> {
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
    let entry = descriptor_of(&plan.top);
    store.set_ref(&name, &entry)?;
    let kind = if plan.top.is_index {
        "index"
    } else {
        "manifest"
    };
    events.status("Pulled", &format!("{kind} {} as {name}", plan.top.digest));
    let image = PulledImage {
        reference: name.clone(),
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
    };
    let mut entry = entry;
    if entry.platform.is_none() && !plan.top.is_index {
        // A package lists its one manifest with its platform, as `buildpack package` does.
        entry.platform = plan
            .leaves
            .first()
            .and_then(|l| l.platform.clone())
            .filter(|p| !p.architecture.is_empty());
    }
    entry
        .annotations
        .insert(crate::store::REF_NAME.to_string(), name.clone());
    let tree = PulledTree {
        name,
        entry,
        top: plan.top.clone(),
        blobs: plan.blobs.clone(),
    };
    Ok((image, tree))
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
            // Bounded by the listed size: the file may change after the size check above.
            let mut bytes = Vec::new();
            let file = crate::input::open_walked(&path, None)?;
            io::Read::read_to_end(&mut io::Read::take(file, desc.size + 1), &mut bytes)
                .map_err(|e| Error::io(&path, e))?;
            if Digest::of(&bytes) == desc.digest {
                return self.size_checked(desc, bytes);
            }
            // Damaged in the store: fetched again below, and stored again by the download.
            self.store.discard_damaged(desc)?;
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

/// GET blob `desc` into the store's download file `partial`, continuing after the bytes it
/// holds (each attempt hashes them again and asks for the rest with `Range`), verified as a
/// whole while streaming. A 200 answer to a range request is the whole blob: the file is
/// emptied and written from the first byte. Content that turns out not to be the blob empties
/// the file, so nothing wrong is continued from.
fn download_resuming(
    client: &Client,
    desc: &Descriptor,
    origin: &Path,
    progress: &Progress<'_>,
    partial: &mut crate::store::Download,
) -> Result<()> {
    use std::cell::RefCell;
    let url = client.url(&format!("blobs/{}", desc.digest));
    let held = partial.resume()?;
    if held.fed() == desc.size {
        // All of it arrived before (the process stopped before the rename): no request.
        if held.clone().finish().0 == desc.digest {
            progress.resume_at(desc.size);
            return Ok(());
        }
        partial.restart()?;
    }
    let mut held = Some(held).filter(|h| h.fed() < desc.size);
    let partial = RefCell::new(partial);
    let prefix = RefCell::new(crate::digest::Hasher::new());
    let start = || -> std::result::Result<u64, Failure> {
        // The first attempt continues from what was hashed above; a retry hashes again.
        let hasher = match held.take() {
            Some(h) => h,
            None => partial.borrow_mut().resume().map_err(Failure::from)?,
        };
        let from = hasher.fed();
        progress.resume_at(from);
        *prefix.borrow_mut() = hasher;
        Ok(from)
    };
    client.get_resumable(&url, &[], Some(desc.size), start, |resp, body| {
        read::check_digest(client, resp, &desc.digest)?;
        let mut partial = partial.borrow_mut();
        let mut hasher = std::mem::take(&mut *prefix.borrow_mut());
        let from = hasher.fed();
        if resp.status == 206 {
            if !range_continues(resp.header("content-range"), from, desc.size) {
                partial.restart()?;
                return Err(Failure::transient(Error::other(format!(
                    "{}: the registry answered the range request for {} with another range ({})",
                    client.registry,
                    desc.digest,
                    crate::ui::sanitize(resp.header("content-range").unwrap_or("none"), 80)
                ))));
            }
        } else if from > 0 {
            // The whole blob, not the rest: written from its first byte.
            partial.restart()?;
            hasher = crate::digest::Hasher::new();
            progress.restart();
        }
        let at = hasher.fed();
        let verdict = Verdict::default();
        let mut v = Verified::resumed(
            Counting::new(body, progress),
            desc.size,
            desc.digest,
            &verdict,
            hasher,
        );
        let path = partial.file_path().to_path_buf();
        // The disk writes while the network delivers: the flush before the rename is short.
        let early = crate::layout::writer::EarlyWriteback::new(partial.file(), at);
        let mut w = io::BufWriter::with_capacity(1 << 20, early);
        let copied = io::copy(&mut v, &mut w);
        // What arrived is kept for the next attempt (its digest is checked with the rest).
        let flushed = io::Write::flush(&mut w);
        drop(w);
        if let Err(e) = flushed {
            return Err(Failure::from(Error::io(&path, e)));
        }
        match copied.map(|_| v.finish(origin)) {
            Ok(Ok(())) => Ok(()),
            Ok(Err(Error::SizeMismatch {
                expected, actual, ..
            })) if actual < expected => Err(Failure::transient(Error::other(format!(
                "{}: the download of {} ended after {actual} of {expected} bytes",
                client.registry, desc.digest
            )))),
            Ok(Err(e)) => {
                partial.restart()?;
                Err(Failure::from(e))
            }
            Err(_) if verdict.mismatch().is_some() => {
                partial.restart()?;
                Err(Failure::from(Error::DigestMismatch {
                    path: origin.to_path_buf(),
                    expected: desc.digest,
                    actual: verdict.mismatch().expect("checked"),
                }))
            }
            Err(e) if e.kind() == io::ErrorKind::InvalidData => {
                partial.restart()?;
                Err(Failure::from(Error::io(origin, e)))
            }
            Err(e) => Err(client.body_failure(&ureq::http::Method::GET, &url, &e)),
        }
    })
}

/// Whether a 206 answer's `Content-Range` (`bytes FROM-LAST/SIZE`) is the rest of a blob of
/// `size` bytes after `from` (the size may be `*`).
fn range_continues(header: Option<&str>, from: u64, size: u64) -> bool {
    let Some(range) = header.and_then(|h| h.trim().strip_prefix("bytes ")) else {
        return false;
    };
    let Some((span, total)) = range.split_once('/') else {
        return false;
    };
    let Some((first, last)) = span.split_once('-') else {
        return false;
    };
    let number = |s: &str| s.trim().parse::<u64>().ok();
    number(first) == Some(from)
        && size.checked_sub(1).is_some_and(|l| number(last) == Some(l))
        && (total.trim() == "*" || number(total) == Some(size))
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
        if let Some(mut partial) = store.download(desc)? {
            download_resuming(client, desc, origin, &progress, &mut partial)?;
            partial.commit()?;
        } else {
            // Another process is downloading it: a copy of our own, from the first byte.
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
    }
    events.status("Downloaded", &format!("{} ({size})", desc.digest));
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::range_continues;

    /// `Content-Range` of a 206 answer → whether it is the rest of a 100-byte blob after 40.
    #[test]
    fn only_the_rest_asked_for_continues_a_download() {
        let table: &[(Option<&str>, bool)] = &[
            (Some("bytes 40-99/100"), true),
            (Some("bytes 40-99/*"), true),
            (Some(" bytes 40-99/100 "), true),
            (Some("bytes 0-99/100"), false),
            (Some("bytes 40-98/100"), false),
            (Some("bytes 40-99/101"), false),
            (Some("bytes 40-99"), false),
            (Some("items 40-99/100"), false),
            (Some("bytes -40-99/100"), false),
            (None, false),
        ];
        for (header, continues) in table {
            assert_eq!(range_continues(*header, 40, 100), *continues, "{header:?}");
        }
        assert!(!range_continues(Some("bytes 0--1/0"), 0, 0));
    }
}
