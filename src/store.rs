//! The local image store: an OCI image layout directory (blobs by digest, `index.json` entries
//! named by `org.opencontainers.image.ref.name` = the full reference, as skopeo's `oci:DIR:REF`
//! writes them), filled by `pull`, safe under concurrent writers.
//!
//! Every blob is written to a temporary file beside its place, verified (size and digest),
//! flushed and renamed: a blob path holds the right bytes or nothing. `index.json` is
//! rewritten the same way while an exclusive `flock` on `index.json.lock` is held, so two
//! processes adding references at once never lose one.
//!
//! Downloads land in `downloads/<hex>` first, named by the blob's digest and locked by the
//! process writing them (`flock`): a download that stops halfway (a dropped connection, an
//! interrupt, a killed process) keeps its bytes there, and the next attempt re-hashes them
//! and asks the registry only for the rest. Only a file holding the blob's full size and
//! digest is renamed to `blobs/sha256/<hex>`, so a blob file of the right size is trusted
//! ([`Store::has_blob`]); whoever reads one out of the store verifies it as it reads.
//!
//! # Garbage collection and pulls
//!
//! A pull writes blobs first and names its reference last, so for a while its blobs are
//! reachable from nothing. `store.lock` keeps [`Store::gc`] from removing them: every pull
//! holds a shared `flock` on it from its first look at the store until its references are
//! set ([`Store::lock_shared`]); gc takes it exclusively ([`Store::lock_exclusive`]), so it
//! runs only while no pull is under way and no pull starts while it runs. Removing a
//! reference needs only `index.json`'s lock: it only makes blobs unreachable. Writers that
//! do not know the protocol (skopeo filling the store with `oci:DIR:REF`) must not run
//! during a gc.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write as _};
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::atomic::AtomicFile;
use crate::digest::{Digest, HashingReader};
use crate::error::{Error, IoResultExt, Result};
use crate::layout::{ImageRef, PackageReader};
use crate::oci::{Descriptor, Index, MAX_JSON_BLOB};

/// The environment variable naming the store (before `$XDG_CACHE_HOME/cnbpkg/store`).
pub const STORE_ENV: &str = "CNBPKG_STORE";
/// The annotation naming an `index.json` entry (OCI image layout, as skopeo and umoci use it).
pub const REF_NAME: &str = "org.opencontainers.image.ref.name";

const OCI_LAYOUT: &[u8] = br#"{"imageLayoutVersion":"1.0.0"}"#;
const INDEX_MEDIA_TYPE: &str = "application/vnd.oci.image.index.v1+json";

/// The store used when none is named: `$CNBPKG_STORE`, else `$XDG_CACHE_HOME/cnbpkg/store`,
/// else `~/.cache/cnbpkg/store`.
pub fn default_store() -> Result<PathBuf> {
    let var = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty());
    if let Some(p) = var(STORE_ENV) {
        return Ok(PathBuf::from(p));
    }
    if let Some(p) = var("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
    {
        return Ok(p.join("cnbpkg").join("store"));
    }
    match var("HOME") {
        Some(h) => Ok(PathBuf::from(h).join(".cache").join("cnbpkg").join("store")),
        None => Err(Error::usage(format!(
            "no store: set {STORE_ENV} or HOME, or name one with --store"
        ))),
    }
}

// ---------------------------------------------------------------------------------------
// Reading a store: a store directory, or a `.cnb`/tar of a layout whose entries carry ref
// names, looked up by reference (what packaging and builders resolve dependencies from).
// ---------------------------------------------------------------------------------------

/// A store opened for reading: a store directory, or a `.cnb`/tar of a layout (read-only).
/// Every blob is read through [`PackageReader`], verified.
pub struct StoreReader {
    path: PathBuf,
    reader: Arc<PackageReader>,
    /// The store-wide lock, shared, while the store is read: `store gc` waits for it.
    _lease: Option<StoreLock>,
    /// What each index read for a digest lookup lists: every lookup of a package's
    /// dependencies reads an index once, not once per lookup.
    listed: std::sync::Mutex<std::collections::BTreeMap<Digest, Arc<Vec<Descriptor>>>>,
}

/// An image found in a store by [`StoreReader::resolve`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ResolvedImage {
    /// The reference asked for, normalized (`docker.io/library/x:tag`, `REPO@sha256:…`,
    /// `REPO:tag@sha256:…`).
    pub reference: String,
    /// The `index.json` entry's ref name the image was found under.
    pub entry_name: String,
    /// The entry (an index or a manifest), or the manifest an entry's index lists when the
    /// reference names that manifest by digest; its digest is verified.
    pub descriptor: Descriptor,
    /// Every image under it, with its platform, manifest and config (all verified).
    pub images: Vec<ImageRef>,
}

impl std::fmt::Debug for StoreReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreReader")
            .field("path", &self.path)
            .finish()
    }
}

impl StoreReader {
    /// Open the store at `path`: a store directory (one nothing has been pulled into yet has
    /// no entries) or a `.cnb`/tar of a layout.
    pub fn open(path: &Path) -> Result<StoreReader> {
        // Taken before index.json is read: no blob it names is collected while it is used.
        let lease = read_lease(path)?;
        Ok(StoreReader {
            path: path.to_path_buf(),
            reader: Arc::new(PackageReader::open_with(path, true)?),
            _lease: lease,
            listed: Default::default(),
        })
    }

    /// The default store ([`default_store`]) when it exists, else `None`.
    pub fn open_default() -> Result<Option<StoreReader>> {
        let Ok(path) = default_store() else {
            return Ok(None);
        };
        match fs::symlink_metadata(&path) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::io(&path, e)),
            // Made, but nothing pulled into it yet (a pull interrupted at its start).
            Ok(_) if unfilled(&path) => Ok(None),
            Ok(_) => Self::open(&path).map(Some),
        }
    }

    /// Where the store is.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The store's layout, for reading blobs (verified with [`PackageReader::read_verified`],
    /// or streamed with [`PackageReader::open_blob`] and checked by the caller).
    pub fn reader(&self) -> &PackageReader {
        &self.reader
    }

    /// The layout, shared with what outlives this reader (packaging's dependencies).
    pub(crate) fn shared_reader(&self) -> Arc<PackageReader> {
        Arc::clone(&self.reader)
    }

    /// The ref names of the store's entries, in `index.json` order.
    pub fn names(&self) -> Vec<&str> {
        self.reader
            .index()
            .manifests
            .iter()
            .filter_map(|d| d.annotations.get(REF_NAME).map(String::as_str))
            .collect()
    }

    /// The image `reference` names: `REF` by its normalized ref name (as `pull` names it),
    /// `REF@sha256:…` by digest (an entry with that digest, or a manifest an entry's index
    /// lists), `REF:TAG@sha256:…` by both, which must agree. `None` when the store does not
    /// hold it; an error when the reference is invalid, tag and digest disagree, or a blob
    /// of the image is missing or damaged.
    pub fn resolve(&self, reference: &str) -> Result<Option<ResolvedImage>> {
        let wanted = Wanted::parse(reference)?;
        let found = match (&wanted.tag_name, &wanted.digest) {
            (Some(name), None) => self.named(name)?.map(|d| (name.clone(), d.clone())),
            (Some(name), Some(digest)) => match self.named(name)? {
                Some(entry) => match self.within(entry, digest)? {
                    Some(d) => Some((name.clone(), d)),
                    None => {
                        return Err(Error::other(format!(
                            "{}: the store's {name} is {}, not {digest} (pull the tag again, or name the image by its digest alone)",
                            wanted.normalized, entry.digest
                        )))
                    }
                },
                None => self.by_digest(&wanted, digest)?,
            },
            (None, Some(digest)) => self.by_digest(&wanted, digest)?,
            (None, None) => unreachable!("a reference names a tag or a digest"),
        };
        let Some((entry_name, descriptor)) = found else {
            return Ok(None);
        };
        let images = self.reader.images_from(std::slice::from_ref(&descriptor))?;
        if images.is_empty() {
            return Err(Error::invalid(
                &self.path,
                format!("{entry_name} ({}) holds no image", descriptor.digest),
            ));
        }
        Ok(Some(ResolvedImage {
            reference: wanted.normalized,
            entry_name,
            descriptor,
            images,
        }))
    }

    /// The entry named `name`. A store listing the name for two different images is refused:
    /// which one it means is unknown (skopeo and `pull` replace a name, never add it twice).
    fn named(&self, name: &str) -> Result<Option<&Descriptor>> {
        let mut named = self
            .reader
            .index()
            .manifests
            .iter()
            .filter(|d| d.annotations.get(REF_NAME).is_some_and(|n| n == name));
        let Some(first) = named.next() else {
            return Ok(None);
        };
        if let Some(other) = named.find(|d| d.digest != first.digest) {
            return Err(Error::invalid(
                &self.path,
                format!(
                    "index.json names {name} for two images, {} and {}; remove the wrong one (cnbpkg store remove {name}, then pull it again)",
                    first.digest, other.digest
                ),
            ));
        }
        Ok(Some(first))
    }

    /// The entry with `digest`, or the manifest with `digest` an entry's index lists: an entry
    /// of the wanted repository first (its name is the better one to report), then any.
    fn by_digest(&self, wanted: &Wanted, digest: &Digest) -> Result<Option<(String, Descriptor)>> {
        let mut entries: Vec<(&str, &Descriptor)> = self
            .reader
            .index()
            .manifests
            .iter()
            .filter_map(|d| d.annotations.get(REF_NAME).map(|n| (n.as_str(), d)))
            .collect();
        // Stable: index.json order within each group.
        entries.sort_by_key(|(name, _)| !wanted.same_repository(name));
        for (name, entry) in &entries {
            if entry.digest == *digest {
                return Ok(Some((name.to_string(), (*entry).clone())));
            }
        }
        // Each index read once, and all of them within the bound the walker keeps: a hostile
        // index.json may list one large index many times.
        let mut seen = std::collections::BTreeSet::new();
        let mut read = 0u64;
        for (name, entry) in &entries {
            if !crate::oci::is_index(&entry.media_type) || !seen.insert(entry.digest) {
                continue;
            }
            read = read.saturating_add(entry.size);
            if read > crate::layout::MAX_IMAGES_BYTES {
                return Err(Error::invalid(
                    &self.path,
                    format!(
                        "the indexes its entries name hold more than {} MiB; looking up {digest} stopped",
                        crate::layout::MAX_IMAGES_BYTES >> 20
                    ),
                ));
            }
            if let Some(d) = self.within(entry, digest)? {
                return Ok(Some((name.to_string(), d)));
            }
        }
        Ok(None)
    }

    /// `entry` itself when it has `digest`, else the manifest with `digest` that `entry` (an
    /// index) lists; `None` when neither.
    fn within(&self, entry: &Descriptor, digest: &Digest) -> Result<Option<Descriptor>> {
        if entry.digest == *digest {
            return Ok(Some(entry.clone()));
        }
        if !crate::oci::is_index(&entry.media_type) {
            return Ok(None);
        }
        let cached = self
            .listed
            .lock()
            .ok()
            .and_then(|m| m.get(&entry.digest).cloned());
        let manifests = match cached {
            Some(m) => m,
            None => {
                let (index, _) = self.reader.read_json::<Index>(entry, "image index")?;
                let m = Arc::new(index.manifests);
                if let Ok(mut listed) = self.listed.lock() {
                    listed.insert(entry.digest, Arc::clone(&m));
                }
                m
            }
        };
        Ok(manifests.iter().find(|d| d.digest == *digest).cloned())
    }
}

/// The shared store-wide lock of a store directory that has one (every store `pull` has
/// filled); nothing for an archive, or a layout nothing of cnbpkg's has written to (which is
/// not created: a reader writes nothing).
fn read_lease(path: &Path) -> Result<Option<StoreLock>> {
    let lock = path.join(STORE_LOCK);
    if !fs::symlink_metadata(path).is_ok_and(|m| m.is_dir()) {
        return Ok(None);
    }
    let file = match open_lock_file(&lock, false) {
        Ok(f) => f,
        // Another user's store, read with the rights to read its blobs only: no gc of ours.
        Err(Error::Io { source, .. })
            if matches!(
                source.kind(),
                io::ErrorKind::NotFound | io::ErrorKind::PermissionDenied
            ) =>
        {
            return Ok(None)
        }
        Err(e) => return Err(e),
    };
    flock_waiting(
        &file,
        &lock,
        libc::LOCK_SH,
        "a garbage collection (cnbpkg store gc)",
    )?;
    Ok(Some(StoreLock { _file: file }))
}

/// Open the lock file `path` (made when `create`; for writing then, else for reading), never
/// through a link, and never blocking on what is not a regular file (a FIFO there would hang
/// every command reading the store).
fn open_lock_file(path: &Path, create: bool) -> Result<File> {
    let file = OpenOptions::new()
        .read(!create)
        .write(create)
        .create(create)
        .truncate(false)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC | libc::O_NONBLOCK)
        .open(path)
        .at(path)?;
    if !file.metadata().at(path)?.is_file() {
        return Err(Error::invalid(
            path,
            "is not a regular file; the store locks it",
        ));
    }
    Ok(file)
}

/// `reference` as [`StoreReader::resolve`] reports it: normalized as `pull` names it
/// (`docker.io/library/x:latest`), a tag written before a digest kept.
pub(crate) fn normalized_reference(reference: &str) -> Result<String> {
    Wanted::parse(reference).map(|w| w.normalized)
}

/// A reference as [`StoreReader::resolve`] looks it up.
struct Wanted {
    /// `REGISTRY/REPO`, normalized.
    repository: String,
    /// `REGISTRY/REPO:TAG` when a tag is given or implied (no digest: `latest`).
    tag_name: Option<String>,
    /// The digest, when given.
    digest: Option<Digest>,
    /// The whole reference, normalized.
    normalized: String,
}

impl Wanted {
    fn parse(reference: &str) -> Result<Wanted> {
        use crate::reference::{Reference, Target};
        let parsed = Reference::parse(reference)?;
        let repository = format!("{}/{}", parsed.registry, parsed.repository);
        Ok(match parsed.target {
            Target::Tag(tag) => Wanted {
                tag_name: Some(format!("{repository}:{tag}")),
                normalized: format!("{repository}:{tag}"),
                repository,
                digest: None,
            },
            Target::Digest(digest) => {
                // `Reference::parse` drops a tag written before the digest; it is checked here.
                let name = reference.split_once('@').map_or(reference, |(n, _)| n);
                let tag = match name.rsplit_once(':') {
                    Some((_, tag)) if !tag.contains('/') => Some(tag),
                    _ => None,
                };
                match tag {
                    Some(tag) => {
                        if !crate::reference::valid_tag(tag) {
                            return Err(Error::usage(format!(
                                "invalid reference '{}': '{tag}' is not a valid tag",
                                crate::reference::shown(reference)
                            )));
                        }
                        Wanted {
                            tag_name: Some(format!("{repository}:{tag}")),
                            normalized: format!("{repository}:{tag}@{digest}"),
                            repository,
                            digest: Some(digest),
                        }
                    }
                    None => Wanted {
                        tag_name: None,
                        normalized: format!("{repository}@{digest}"),
                        repository,
                        digest: Some(digest),
                    },
                }
            }
        })
    }

    /// Whether the ref name `name` is of this repository (`REPO:TAG` or `REPO@…`).
    fn same_repository(&self, name: &str) -> bool {
        name.strip_prefix(self.repository.as_str())
            .is_some_and(|rest| rest.starts_with(':') || rest.starts_with('@'))
    }
}

/// An image store directory, open for reading and filling.
#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
}

impl Store {
    /// Open the store at `root`, creating it (an empty layout) when it does not exist. A
    /// directory that holds other things and no `oci-layout` is refused: it is not a store,
    /// and filling it would mix images into someone's files.
    pub fn open_or_create(root: &Path) -> Result<Self> {
        refuse_read_only(root)?;
        if !root.join("oci-layout").exists() {
            let occupied = match fs::read_dir(root) {
                // What another process creating the store at the same moment has made so far
                // does not count.
                Ok(entries) => entries
                    .filter_map(|e| e.ok())
                    .any(|e| !is_store_beginning(&e.file_name().to_string_lossy())),
                Err(e) if e.kind() == io::ErrorKind::NotFound => false,
                Err(e) => return Err(Error::io(root, e)),
            };
            // Looked at again: another process may have finished creating it meanwhile.
            if occupied && !root.join("oci-layout").exists() {
                return Err(Error::invalid(
                    root,
                    "is not an image store (a directory with other files and no oci-layout)",
                ));
            }
        }
        fs::create_dir_all(root.join("blobs").join("sha256")).at(root)?;
        let store = Store {
            root: root.to_path_buf(),
        };
        let layout = root.join("oci-layout");
        if !layout.exists() {
            match store.write_small(&layout, OCI_LAYOUT) {
                // Another process creating the store wrote it first.
                Err(_) if layout.is_file() => {}
                r => r?,
            }
        }
        Ok(store)
    }

    /// The store's directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.root.join(digest.blob_path())
    }

    /// Whether the store holds `desc`'s blob: a regular file of its size at its digest's name
    /// (a truncated file, or anything else there, counts as absent and is replaced by the
    /// next write). Its content is not hashed again: only a verified file is ever renamed to
    /// that name, and every reader of a stored blob verifies it as it reads.
    pub fn has_blob(&self, desc: &Descriptor) -> Result<bool> {
        let path = self.blob_path(&desc.digest);
        match fs::symlink_metadata(&path) {
            Ok(m) => Ok(m.is_file() && m.len() == desc.size),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(Error::io(&path, e)),
        }
    }

    /// Whether the store holds `desc`'s blob with its size and digest, read and hashed.
    pub fn verify_blob(&self, desc: &Descriptor) -> Result<bool> {
        if !self.has_blob(desc)? {
            return Ok(false);
        }
        let path = self.blob_path(&desc.digest);
        let file = crate::input::open_walked(&path, None)?;
        let mut hashing = HashingReader::new(file.take(desc.size.saturating_add(1)));
        io::copy(&mut hashing, &mut io::sink()).at(&path)?;
        let (_, digest, len) = hashing.finish();
        Ok(digest == desc.digest && len == desc.size)
    }

    /// Write a blob from `content`, which must hold `desc.size` bytes with `desc.digest`:
    /// `verify` reads it into the (emptied) download file and checks it, returning an error
    /// when it is not right; only then is it renamed into place.
    pub fn write_blob(
        &self,
        desc: &Descriptor,
        verify: impl FnOnce(&mut File) -> Result<()>,
    ) -> Result<()> {
        if let Some(mut download) = self.download(desc)? {
            download.restart()?;
            if let Err(e) = verify(download.file()) {
                // Not known to be the blob's beginning: nothing is continued from it.
                let _ = download.restart();
                return Err(e);
            }
            return download.commit();
        }
        // Another process is downloading this blob: a copy of our own, beside its place.
        let path = self.blob_path(&desc.digest);
        let mut file = AtomicFile::create(&path)?;
        verify(file.file())?;
        let len = file.file_ref().metadata().at(&path)?.len();
        if len != desc.size {
            return Err(Error::SizeMismatch {
                path: self.root.clone(),
                digest: desc.digest,
                expected: desc.size,
                actual: len,
            });
        }
        match file.commit() {
            // Another writer put the same content there first (its name is its digest).
            Err(e) if !self.verify_blob(desc)? => Err(e),
            _ => Ok(()),
        }
    }

    /// Write a blob held in memory (a manifest or index), after checking its digest.
    pub fn write_blob_bytes(&self, digest: &Digest, bytes: &[u8]) -> Result<()> {
        let actual = Digest::of(bytes);
        if actual != *digest {
            return Err(Error::DigestMismatch {
                path: self.root.clone(),
                expected: *digest,
                actual,
            });
        }
        let desc = Descriptor {
            media_type: String::new(),
            digest: *digest,
            size: bytes.len() as u64,
            platform: None,
            annotations: Default::default(),
            artifact_type: None,
            urls: Vec::new(),
        };
        if self.has_blob(&desc)? {
            return Ok(());
        }
        self.write_blob(&desc, |f| f.write_all(bytes).at(&self.blob_path(digest)))
    }

    /// The entries of `index.json` (none when it does not exist yet).
    pub fn entries(&self) -> Result<Vec<Descriptor>> {
        Ok(self.read_index()?.map(|i| i.manifests).unwrap_or_default())
    }

    /// The entry named `name`, if any.
    pub fn lookup(&self, name: &str) -> Result<Option<Descriptor>> {
        Ok(self
            .entries()?
            .into_iter()
            .find(|d| d.annotations.get(REF_NAME).is_some_and(|n| n == name)))
    }

    /// Name `desc` (whose blobs are all in the store already) `name` in `index.json`,
    /// replacing an entry of that name, under the store's lock.
    pub fn set_ref(&self, name: &str, desc: &Descriptor) -> Result<()> {
        let _lock = self.lock()?;
        let mut index = self.read_index()?.unwrap_or_else(|| Index {
            schema_version: 2,
            media_type: Some(INDEX_MEDIA_TYPE.to_string()),
            manifests: Vec::new(),
            artifact_type: None,
            annotations: Default::default(),
        });
        index
            .manifests
            .retain(|d| d.annotations.get(REF_NAME).is_none_or(|n| n != name));
        let mut entry = desc.clone();
        entry
            .annotations
            .insert(REF_NAME.to_string(), name.to_string());
        index.manifests.push(entry);
        let bytes = serde_json::to_vec(&index)
            .map_err(|e| Error::other(format!("cannot write the store's index.json: {e}")))?;
        self.write_small(&self.root.join("index.json"), &bytes)
    }

    fn read_index(&self) -> Result<Option<Index>> {
        let path = self.root.join("index.json");
        // Never through a link, never blocking on a FIFO (as the store's readers open it).
        let file = match OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC)
            .open(&path)
        {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::io(&path, e)),
        };
        if !file.metadata().at(&path)?.is_file() {
            return Err(Error::invalid(&path, "is not a regular file"));
        }
        let mut bytes = Vec::new();
        file.take(MAX_JSON_BLOB + 1)
            .read_to_end(&mut bytes)
            .at(&path)?;
        if bytes.len() as u64 > MAX_JSON_BLOB {
            return Err(Error::invalid(&path, "larger than 32 MiB"));
        }
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| Error::invalid(&path, format!("not a valid image index: {e}")))
    }

    /// The store's exclusive lock (held by whoever rewrites `index.json`), released on drop.
    fn lock(&self) -> Result<File> {
        let path = self.root.join("index.json.lock");
        let file = open_lock_file(&path, true)?;
        loop {
            // SAFETY: flock on a descriptor this function owns; no memory is involved.
            if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) } == 0 {
                return Ok(file);
            }
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(Error::io(&path, e));
            }
        }
    }

    fn write_small(&self, path: &Path, bytes: &[u8]) -> Result<()> {
        let mut file = AtomicFile::create(path)?;
        file.file().write_all(bytes).at(path)?;
        file.commit()
    }
}

// ---------------------------------------------------------------------------------------------
// Maintenance: downloads that resume, the store-wide lock, and `store list|remove|gc`.

/// The store-wide lock file (see the module documentation).
const STORE_LOCK: &str = "store.lock";
/// The directory of downloads under way or interrupted, one file per blob, named by its hex.
const DOWNLOADS: &str = "downloads";
/// How long a pull or gc waits for the store-wide lock before it gives up.
const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(600);
/// How often a waiting pull or gc tries the lock again.
const LOCK_POLL: std::time::Duration = std::time::Duration::from_millis(50);

/// Whether `name`, in a directory without `oci-layout`, is what a store being created (or
/// whose creation was interrupted) holds already.
fn is_store_beginning(name: &str) -> bool {
    matches!(
        name,
        "blobs" | "index.json.lock" | "oci-layout" | STORE_LOCK | DOWNLOADS
    ) || crate::atomic::is_temp_of("oci-layout", name)
}

/// Whether `path` is a directory a store is to be made in, nothing pulled into it yet: empty,
/// or holding only what a store's creation makes before `oci-layout` (an interrupted pull).
pub(crate) fn unfilled(path: &Path) -> bool {
    if !fs::symlink_metadata(path).is_ok_and(|m| m.is_dir())
        || fs::symlink_metadata(path.join("oci-layout")).is_ok()
    {
        return false;
    }
    let Ok(entries) = fs::read_dir(path) else {
        return false;
    };
    // A handful of names at most: a directory holding more is something else.
    let mut seen = 0;
    for entry in entries {
        seen += 1;
        if seen > 64 || !entry.is_ok_and(|e| is_store_beginning(&e.file_name().to_string_lossy())) {
            return false;
        }
    }
    true
}

/// A `.cnb` or tar named as a store is a read-only one: nothing is written into it.
fn refuse_read_only(root: &Path) -> Result<()> {
    match fs::metadata(root) {
        Ok(m) if !m.is_dir() => Err(Error::usage(format!(
            "{}: is a file, which serves only as a read-only store (a package or layout archive); a store that is filled or changed is a directory",
            root.display()
        ))),
        _ => Ok(()),
    }
}

/// Whether `name` is a blob file name of this store (`<64 lowercase hex digits>`).
fn is_blob_name(name: &str) -> bool {
    name.len() == 64
        && name
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Take `flock` `operation` on `file` without blocking, retrying every [`LOCK_POLL`] for up
/// to [`LOCK_WAIT`] (an interrupt ends the wait). `what` says who holds it, for the error.
fn flock_waiting(file: &File, path: &Path, operation: libc::c_int, what: &str) -> Result<()> {
    let started = std::time::Instant::now();
    loop {
        // SAFETY: flock on a descriptor the caller owns; no memory is involved.
        if unsafe { libc::flock(file.as_raw_fd(), operation | libc::LOCK_NB) } == 0 {
            return Ok(());
        }
        let e = io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EWOULDBLOCK) && e.kind() != io::ErrorKind::Interrupted {
            return Err(Error::io(path, e));
        }
        if started.elapsed() >= LOCK_WAIT {
            return Err(Error::other(format!(
                "{}: {what} kept the store busy for {} minutes; try again later",
                path.display(),
                LOCK_WAIT.as_secs() / 60
            )));
        }
        crate::cancel::sleep(LOCK_POLL)?;
    }
}

/// Try an exclusive `flock` on `file` without waiting.
fn try_lock_exclusive(file: &File) -> bool {
    // SAFETY: flock on a descriptor the caller owns; no memory is involved.
    unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) == 0 }
}

/// Whether `path` still names the open `file` (not removed or replaced since it was opened).
fn still_names(path: &Path, file: &File) -> bool {
    use std::os::unix::fs::MetadataExt as _;
    match (fs::symlink_metadata(path), file.metadata()) {
        (Ok(a), Ok(b)) => a.is_file() && a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

/// A hold on the store-wide lock (shared by pulls, exclusive for gc), released on drop.
#[derive(Debug)]
pub struct StoreLock {
    _file: File,
}

/// One blob's file in the store's download area, locked by this process: bytes an earlier
/// attempt wrote stay there, and [`Download::commit`] renames the complete blob into place.
/// Dropped uncommitted, the bytes stay for the next attempt to continue from.
#[derive(Debug)]
pub(crate) struct Download {
    path: PathBuf,
    dest: PathBuf,
    file: File,
    size: u64,
    digest: Digest,
}

impl Download {
    /// The open file.
    pub(crate) fn file(&mut self) -> &mut File {
        &mut self.file
    }

    /// The file's path, for messages.
    pub(crate) fn file_path(&self) -> &Path {
        &self.path
    }

    /// Empty the file: the next bytes written are the blob's first.
    pub(crate) fn restart(&mut self) -> Result<()> {
        use std::io::Seek as _;
        self.file.set_len(0).at(&self.path)?;
        self.file.rewind().at(&self.path)?;
        Ok(())
    }

    /// The bytes held so far, hashed again (a file longer than the blob is emptied: it cannot
    /// be the blob's beginning), with the file positioned after them.
    pub(crate) fn resume(&mut self) -> Result<crate::digest::Hasher> {
        use std::io::{Seek as _, SeekFrom};
        let held = self.file.metadata().at(&self.path)?.len();
        let mut hasher = crate::digest::Hasher::new();
        if held > self.size {
            self.restart()?;
            return Ok(hasher);
        }
        self.file.rewind().at(&self.path)?;
        let mut buf = vec![0u8; 256 * 1024];
        let mut reader = (&self.file).take(held);
        loop {
            crate::cancel::check()?;
            let n = reader.read(&mut buf).at(&self.path)?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
        }
        let at = hasher.fed();
        self.file.seek(SeekFrom::Start(at)).at(&self.path)?;
        // Bytes past what could be read (a file shrunk meanwhile) are not kept.
        self.file.set_len(at).at(&self.path)?;
        Ok(hasher)
    }

    /// The file holds the whole blob, verified by the caller: flush it and rename it into
    /// place. Its size is checked once more here.
    pub(crate) fn commit(mut self) -> Result<()> {
        let len = self.file.metadata().at(&self.path)?.len();
        if len != self.size {
            // Not the blob: the next attempt starts from the first byte.
            let _ = self.restart();
            return Err(Error::SizeMismatch {
                path: self.path.clone(),
                digest: self.digest,
                expected: self.size,
                actual: len,
            });
        }
        self.file.sync_all().at(&self.path)?;
        // Renamed while locked and still ours: no other process can have replaced the name.
        fs::rename(&self.path, &self.dest).at(&self.dest)?;
        if let Some(dir) = self.dest.parent() {
            let _ = File::open(dir).and_then(|d| d.sync_all());
        }
        Ok(())
    }
}

impl Store {
    /// The store-wide lock, shared: what a pull holds from its first look at the store until
    /// its references are set, so that [`Store::gc`] never removes a blob it wrote or found.
    pub fn lock_shared(&self) -> Result<StoreLock> {
        self.store_lock(libc::LOCK_SH, "a garbage collection (cnbpkg store gc)")
    }

    /// The store-wide lock, exclusive: held by [`Store::gc`], waiting for running pulls.
    pub fn lock_exclusive(&self) -> Result<StoreLock> {
        self.store_lock(libc::LOCK_EX, "a pull (cnbpkg pull)")
    }

    fn store_lock(&self, operation: libc::c_int, holder: &str) -> Result<StoreLock> {
        let path = self.root.join(STORE_LOCK);
        let file = open_lock_file(&path, true)?;
        flock_waiting(&file, &path, operation, holder)?;
        Ok(StoreLock { _file: file })
    }

    /// The download area's file for `desc`, locked; `None` when another process holds it (it
    /// is downloading the same blob: the caller writes a copy of its own).
    pub(crate) fn download(&self, desc: &Descriptor) -> Result<Option<Download>> {
        let dir = self.root.join(DOWNLOADS);
        match fs::symlink_metadata(&dir) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => {
                return Err(Error::invalid(
                    &dir,
                    "is not a directory; the store keeps its downloads there",
                ))
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => match fs::create_dir(&dir) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(Error::io(&dir, e)),
            },
            Err(e) => return Err(Error::io(&dir, e)),
        }
        let path = dir.join(desc.digest.hex());
        // A few tries: the name may be renamed into place or removed between open and lock.
        for _ in 0..8 {
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC | libc::O_NONBLOCK)
                .open(&path)
                .at(&path)?;
            if !file.metadata().at(&path)?.is_file() {
                return Err(Error::invalid(&path, "is not a regular file"));
            }
            if !try_lock_exclusive(&file) {
                return Ok(None);
            }
            if still_names(&path, &file) {
                return Ok(Some(Download {
                    path,
                    dest: self.blob_path(&desc.digest),
                    file,
                    size: desc.size,
                    digest: desc.digest,
                }));
            }
        }
        Ok(None)
    }

    /// Remove the blob of `digest` when its content is not what its name says (a damaged
    /// file: the next pull downloads it again); `true` when it was removed.
    pub fn discard_damaged(&self, desc: &Descriptor) -> Result<bool> {
        if !self.has_blob(desc)? || self.verify_blob(desc)? {
            return Ok(false);
        }
        let path = self.blob_path(&desc.digest);
        fs::remove_file(&path).at(&path)?;
        Ok(true)
    }

    /// Every named image: its reference, digest, media type, platforms and size, in reference
    /// order. An entry whose tree cannot be read is listed with what its descriptor says and
    /// the problem.
    pub fn list(&self) -> Result<Vec<StoredImage>> {
        let Some(reader) = self.reader()? else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        // Entries listing the same image (under other names) are walked once: a store naming
        // one large index thousands of times would otherwise be read thousands of times.
        let mut walked: std::collections::BTreeMap<String, std::result::Result<Reached, String>> =
            Default::default();
        for entry in &reader.index().manifests {
            crate::cancel::check()?;
            let reference = entry.annotations.get(REF_NAME).cloned().unwrap_or_default();
            let mut image = StoredImage {
                reference,
                digest: entry.digest,
                media_type: entry.media_type.clone(),
                platforms: Vec::new(),
                size: 0,
                problem: None,
            };
            let mut listed = entry.clone();
            listed.annotations.clear();
            let key = serde_json::to_string(&listed).unwrap_or_default();
            let tree = walked.entry(key).or_insert_with(|| {
                reachable(&reader, std::slice::from_ref(&listed)).map_err(|e| e.to_string())
            });
            match tree {
                Ok(tree) => {
                    image.size = tree.blobs.values().sum();
                    image.platforms = tree.platforms.clone();
                }
                Err(e) => image.problem = Some(e.clone()),
            }
            out.push(image);
        }
        out.sort_by(|a, b| a.reference.cmp(&b.reference));
        Ok(out)
    }

    /// Remove the entries named `names` (full normalized references) from `index.json`, under
    /// its lock, all or none: a name the store does not hold is an error naming it, and
    /// nothing is removed. Blobs stay until [`Store::gc`].
    pub fn remove_refs(&self, names: &[String]) -> Result<Vec<Descriptor>> {
        let _lock = self.lock()?;
        let Some(mut index) = self.read_index()? else {
            return Err(Error::usage(format!(
                "{}: the store holds no image named {}",
                self.root.display(),
                names.join(", ")
            )));
        };
        let named = |d: &Descriptor, n: &str| d.annotations.get(REF_NAME).is_some_and(|r| r == n);
        let missing: Vec<&str> = names
            .iter()
            .filter(|n| !index.manifests.iter().any(|d| named(d, n)))
            .map(String::as_str)
            .collect();
        if !missing.is_empty() {
            return Err(Error::usage(format!(
                "{}: the store holds no image named {} (cnbpkg store list shows what it holds)",
                self.root.display(),
                missing.join(", ")
            )));
        }
        let (removed, kept): (Vec<_>, Vec<_>) = index
            .manifests
            .into_iter()
            .partition(|d| names.iter().any(|n| named(d, n)));
        index.manifests = kept;
        let bytes = serde_json::to_vec(&index)
            .map_err(|e| Error::other(format!("cannot write the store's index.json: {e}")))?;
        self.write_small(&self.root.join("index.json"), &bytes)?;
        Ok(removed)
    }

    /// Remove every blob no entry of `index.json` reaches, the downloads no pull is
    /// continuing, and the temporary files of processes that are gone, holding the store-wide
    /// lock exclusively (waiting for running pulls to finish). Only regular files named
    /// `blobs/sha256/<64 hex digits>` are ever removed as blobs; anything else in the store
    /// (links, other files, directories) is left alone. An entry whose tree cannot be read
    /// stops the collection before anything is removed: what it reaches is unknown.
    pub fn gc(&self) -> Result<GcReport> {
        let _store = self.lock_exclusive()?;
        let mut tree = Reached {
            blobs: Default::default(),
            platforms: Vec::new(),
        };
        if let Some(reader) = self.reader()? {
            // Entry by entry, each within the walker's bounds (as `list` reads them): a store
            // is many images, not one package, and the limits of one package do not bound it.
            let mut walked = std::collections::BTreeSet::new();
            for entry in &reader.index().manifests {
                crate::cancel::check()?;
                let mut listed = entry.clone();
                listed.annotations.clear();
                if !walked.insert(serde_json::to_string(&listed).unwrap_or_default()) {
                    continue;
                }
                let reached = reachable(&reader, std::slice::from_ref(&listed)).map_err(|e| {
                    Error::other(format!(
                        "{e}; nothing was removed (cnbpkg store remove the entry that cannot be read)"
                    ))
                })?;
                tree.blobs.extend(reached.blobs);
            }
        }
        let blobs = self.root.join("blobs").join("sha256");
        // Files are removed only from the store's own directories: a link there would have
        // them removed from wherever it points.
        for dir in [self.root.join("blobs"), blobs.clone()] {
            match fs::symlink_metadata(&dir) {
                Ok(m) if !m.is_dir() => {
                    return Err(Error::invalid(
                        &dir,
                        "is not a directory (a link?); nothing was removed",
                    ))
                }
                _ => {}
            }
        }
        crate::atomic::reap_stale_temps(&blobs);
        let mut report = GcReport {
            kept: 0,
            removed: Vec::new(),
            bytes_removed: 0,
            downloads_removed: 0,
        };
        let entries = match fs::read_dir(&blobs) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(report),
            Err(e) => return Err(Error::io(&blobs, e)),
        };
        for entry in entries {
            crate::cancel::check()?;
            let entry = entry.at(&blobs)?;
            let name = entry.file_name();
            let Some(name) = name.to_str().filter(|n| is_blob_name(n)) else {
                continue;
            };
            // The entry's own type: a symlink is not followed, and is not a blob.
            if !entry.file_type().at(&entry.path())?.is_file() {
                continue;
            }
            let digest: Digest = match format!("sha256:{name}").parse() {
                Ok(d) => d,
                Err(_) => continue,
            };
            if tree.blobs.contains_key(&digest) {
                report.kept += 1;
                continue;
            }
            let size = entry.metadata().map(|m| m.len()).unwrap_or(0);
            match fs::remove_file(entry.path()) {
                Ok(()) => {
                    report.removed.push(digest);
                    report.bytes_removed += size;
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(Error::io(entry.path(), e)),
            }
        }
        report.removed.sort();
        report.downloads_removed = self.drop_downloads()?;
        Ok(report)
    }

    /// The store as a layout reader (the tree walker's source), `None` before anything was
    /// named in it.
    fn reader(&self) -> Result<Option<crate::layout::PackageReader>> {
        if self.read_index()?.is_none() {
            return Ok(None);
        }
        crate::layout::PackageReader::open(&self.root).map(Some)
    }

    /// Remove the downloads no process holds (every pull is stopped while gc runs).
    fn drop_downloads(&self) -> Result<usize> {
        let dir = self.root.join(DOWNLOADS);
        if !fs::symlink_metadata(&dir).is_ok_and(|m| m.is_dir()) {
            return Ok(0);
        }
        let mut removed = 0;
        for entry in fs::read_dir(&dir).at(&dir)? {
            let entry = entry.at(&dir)?;
            let name = entry.file_name();
            if !name.to_str().is_some_and(is_blob_name) {
                continue;
            }
            let path = entry.path();
            let Ok(file) = OpenOptions::new()
                .read(true)
                .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC | libc::O_NONBLOCK)
                .open(&path)
            else {
                continue;
            };
            if file.metadata().is_ok_and(|m| m.is_file())
                && try_lock_exclusive(&file)
                && still_names(&path, &file)
                && fs::remove_file(&path).is_ok()
            {
                removed += 1;
            }
        }
        Ok(removed)
    }
}

/// What a tree of the store reaches: every blob (by digest, with its size) and the platforms
/// of its images.
struct Reached {
    blobs: std::collections::BTreeMap<Digest, u64>,
    platforms: Vec<crate::oci::Platform>,
}

/// Walk the trees of `entries` in `reader` (the one tree walker, its limits and checks):
/// every index, manifest, config and layer they list, and every other descriptor an index
/// lists (artifacts it does not descend into are kept too).
fn reachable(reader: &crate::layout::PackageReader, entries: &[Descriptor]) -> Result<Reached> {
    use crate::layout::tree::{self, Configs, OnFailure, Others, Policy, Style};
    let policy = Policy {
        others: Others::Skip,
        configs: Configs::WhenUnplaced,
        style: Style::Reader,
        failures: OnFailure::Stop,
    };
    let top = tree::walk(reader, entries, policy)?;
    let mut reached = Reached {
        blobs: Default::default(),
        platforms: Vec::new(),
    };
    let mut stack: Vec<&tree::Child> = top.iter().collect();
    let mut seen = std::collections::BTreeSet::new();
    while let Some(child) = stack.pop() {
        let d = &child.descriptor;
        reached.blobs.insert(d.digest, d.size);
        let Some(node) = &child.node else { continue };
        if !seen.insert(node.descriptor.digest) {
            continue;
        }
        if let Some(m) = node.manifest() {
            for blob in std::iter::once(&m.config).chain(&m.layers) {
                reached.blobs.insert(blob.digest, blob.size);
            }
        } else {
            stack.extend(node.children());
        }
    }
    for (listing, node) in tree::image_listings(&top) {
        if let Some(p) = node.platform_for(listing) {
            if !reached.platforms.contains(&p) {
                reached.platforms.push(p);
            }
        }
    }
    Ok(reached)
}

/// One image the store names ([`Store::list`]).
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct StoredImage {
    /// The full reference it is named by.
    pub reference: String,
    /// Digest of its manifest or index.
    pub digest: Digest,
    /// Its media type.
    pub media_type: String,
    /// The platforms of its images (listed, else their configs'), in listing order.
    pub platforms: Vec<crate::oci::Platform>,
    /// The bytes of every distinct blob it reaches (indexes, manifests, configs, layers).
    pub size: u64,
    /// Why its tree could not be read, if it could not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
}

/// What [`Store::gc`] did.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct GcReport {
    /// Blobs kept (reached by an entry).
    pub kept: usize,
    /// Blobs removed, by digest.
    pub removed: Vec<Digest>,
    /// Their bytes.
    pub bytes_removed: u64,
    /// Interrupted downloads removed.
    pub downloads_removed: usize,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn desc(bytes: &[u8]) -> Descriptor {
        Descriptor {
            media_type: "application/vnd.oci.image.manifest.v1+json".into(),
            digest: Digest::of(bytes),
            size: bytes.len() as u64,
            platform: None,
            annotations: Default::default(),
            artifact_type: None,
            urls: Vec::new(),
        }
    }

    /// One process holds a blob's download file at a time; what it wrote stays for the next
    /// holder, who continues after it.
    #[test]
    fn a_download_is_held_once_and_its_bytes_kept() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open_or_create(&dir.path().join("s")).unwrap();
        let d = desc(b"0123456789");
        let mut first = store.download(&d).unwrap().expect("free");
        first.file().write_all(b"0123").unwrap();
        // Another open file description (another process, as flock sees it) gets none.
        assert!(store.download(&d).unwrap().is_none());
        drop(first);
        let mut again = store.download(&d).unwrap().expect("released");
        let held = again.resume().unwrap();
        assert_eq!(held.fed(), 4);
        again.file().write_all(b"456789").unwrap();
        again.commit().unwrap();
        assert!(store.verify_blob(&d).unwrap());
        assert!(!store.root().join(DOWNLOADS).join(d.digest.hex()).exists());
    }

    /// gc stops before removing anything when an entry's tree cannot be read.
    #[test]
    fn gc_with_an_unreadable_entry_removes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open_or_create(&dir.path().join("s")).unwrap();
        store.write_blob_bytes(&Digest::of(b"{}"), b"{}").unwrap();
        store.set_ref("r.example/a:1", &desc(b"missing")).unwrap();
        assert!(store.gc().is_err());
        assert!(store.root().join(Digest::of(b"{}").blob_path()).exists());
        store.remove_refs(&["r.example/a:1".to_string()]).unwrap();
        assert_eq!(store.gc().unwrap().removed, [Digest::of(b"{}")]);
        assert!(store.remove_refs(&["r.example/a:1".to_string()]).is_err());
    }

    /// A store holding `r.example/a:1` (an index of an amd64 and an arm64 image) and
    /// `r.example/b:1` (the arm64 image alone); returns the store and the digests
    /// (index, amd64 manifest, arm64 manifest).
    fn store_with_images(root: &Path) -> (Store, [Digest; 3]) {
        let store = Store::open_or_create(root).unwrap();
        let mut manifests = Vec::new();
        for arch in ["amd64", "arm64"] {
            let config = format!(
                r#"{{"architecture":"{arch}","os":"linux","rootfs":{{"type":"layers","diff_ids":[]}}}}"#
            );
            let config_desc = Descriptor::new(
                "application/vnd.oci.image.config.v1+json",
                Digest::of(config.as_bytes()),
                config.len() as u64,
            );
            store
                .write_blob_bytes(&config_desc.digest, config.as_bytes())
                .unwrap();
            let manifest = serde_json::json!({
                "schemaVersion": 2,
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": config_desc,
                "layers": [],
            })
            .to_string();
            let mut d = desc(manifest.as_bytes());
            store
                .write_blob_bytes(&d.digest, manifest.as_bytes())
                .unwrap();
            d.platform = Some(crate::oci::Platform {
                architecture: arch.into(),
                os: "linux".into(),
                ..Default::default()
            });
            manifests.push(d);
        }
        let index = serde_json::to_vec(&Index::new(manifests.clone())).unwrap();
        let index_desc = Descriptor::new(INDEX_MEDIA_TYPE, Digest::of(&index), index.len() as u64);
        store.write_blob_bytes(&index_desc.digest, &index).unwrap();
        store.set_ref("r.example/a:1", &index_desc).unwrap();
        let mut arm = manifests[1].clone();
        arm.platform = None;
        store.set_ref("r.example/b:1", &arm).unwrap();
        (
            store,
            [index_desc.digest, manifests[0].digest, manifests[1].digest],
        )
    }

    #[test]
    fn references_resolve_by_name_and_by_digest() {
        let dir = tempfile::tempdir().unwrap();
        let (store, [index, amd, arm]) = store_with_images(&dir.path().join("s"));
        let reader = StoreReader::open(store.root()).unwrap();
        assert_eq!(reader.names(), ["r.example/a:1", "r.example/b:1"]);

        let a = reader.resolve("r.example/a:1").unwrap().unwrap();
        assert_eq!(a.reference, "r.example/a:1");
        assert_eq!(a.descriptor.digest, index);
        let arches: Vec<String> = a.images.iter().map(|i| i.platform().architecture).collect();
        assert_eq!(arches, ["amd64", "arm64"]);
        assert!(reader.resolve("r.example/a:2").unwrap().is_none());
        assert!(reader.resolve("r.example/a").unwrap().is_none(), "latest");

        // By digest: an entry, or a manifest an entry's index lists.
        let by_index = reader
            .resolve(&format!("r.example/a@{index}"))
            .unwrap()
            .unwrap();
        assert_eq!(by_index.entry_name, "r.example/a:1");
        assert_eq!(by_index.images.len(), 2);
        let by_amd = reader
            .resolve(&format!("r.example/a@{amd}"))
            .unwrap()
            .unwrap();
        assert_eq!(by_amd.descriptor.digest, amd);
        assert_eq!(by_amd.images.len(), 1);
        assert_eq!(by_amd.images[0].platform().architecture, "amd64");
        // The entry of the repository asked for is preferred.
        let by_arm = reader
            .resolve(&format!("r.example/b@{arm}"))
            .unwrap()
            .unwrap();
        assert_eq!(by_arm.entry_name, "r.example/b:1");
        assert_eq!(by_arm.reference, format!("r.example/b@{arm}"));
        assert!(reader
            .resolve(&format!("r.example/a@{}", Digest::of(b"none")))
            .unwrap()
            .is_none());

        // Tag and digest must agree.
        let both = reader
            .resolve(&format!("r.example/a:1@{amd}"))
            .unwrap()
            .unwrap();
        assert_eq!(both.reference, format!("r.example/a:1@{amd}"));
        let e = reader
            .resolve(&format!("r.example/b:1@{amd}"))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains(&arm.to_string()) && e.contains(&amd.to_string()),
            "{e}"
        );
        // An absent tag with a digest found elsewhere: the digest decides.
        assert!(reader
            .resolve(&format!("r.example/a:9@{arm}"))
            .unwrap()
            .is_some());
        assert!(reader.resolve("r.example/A:1").is_err());
    }

    #[test]
    fn docker_hub_names_are_normalized_and_damage_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let (store, [index, _, arm]) = store_with_images(&dir.path().join("s"));
        store
            .set_ref(
                "docker.io/library/busybox:latest",
                &store.lookup("r.example/a:1").unwrap().unwrap(),
            )
            .unwrap();
        let reader = StoreReader::open(store.root()).unwrap();
        for name in [
            "busybox",
            "docker.io/busybox:latest",
            "index.docker.io/library/busybox",
        ] {
            let found = reader.resolve(name).unwrap().unwrap();
            assert_eq!(found.reference, "docker.io/library/busybox:latest");
            assert_eq!(found.descriptor.digest, index);
        }
        // A damaged manifest is named in the error, never used.
        fs::write(store.root().join(arm.blob_path()), b"{\"schemaVersion\":2}").unwrap();
        let e = reader.resolve("r.example/b:1").unwrap_err().to_string();
        assert!(e.contains(&arm.to_string()), "{e}");
        let e = reader.resolve("busybox").unwrap_err().to_string();
        assert!(e.contains(&arm.to_string()), "{e}");
    }

    #[test]
    fn a_layout_archive_serves_as_a_store() {
        let dir = tempfile::tempdir().unwrap();
        let (store, [_, amd, _]) = store_with_images(&dir.path().join("s"));
        let tar_path = dir.path().join("deps.tar");
        let mut builder = tar::Builder::new(File::create(&tar_path).unwrap());
        for name in ["oci-layout", "index.json"] {
            builder
                .append_path_with_name(store.root().join(name), name)
                .unwrap();
        }
        builder
            .append_dir_all("blobs", store.root().join("blobs"))
            .unwrap();
        builder.into_inner().unwrap();
        let reader = StoreReader::open(&tar_path).unwrap();
        assert_eq!(reader.path(), tar_path);
        let found = reader
            .resolve(&format!("r.example/a:1@{amd}"))
            .unwrap()
            .unwrap();
        assert_eq!(found.images[0].platform().architecture, "amd64");
        assert!(reader.reader().has_blob(&amd));
    }

    #[test]
    fn a_reader_holds_the_store_lock_shared_and_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let (store, _) = store_with_images(&dir.path().join("s"));
        // A layout no pull has locked yet: read without a lock file, and none is made.
        let reader = StoreReader::open(store.root()).unwrap();
        assert!(!store.root().join(STORE_LOCK).exists());
        drop(reader);
        drop(store.lock_shared().unwrap());
        let reader = StoreReader::open(store.root()).unwrap();
        let lock = File::open(store.root().join(STORE_LOCK)).unwrap();
        assert!(!try_lock_exclusive(&lock), "gc must wait for the reader");
        drop(reader);
        assert!(try_lock_exclusive(&lock));
    }

    #[test]
    fn an_empty_or_absent_store() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open_or_create(&dir.path().join("s")).unwrap();
        let reader = StoreReader::open(store.root()).unwrap();
        assert!(reader.names().is_empty());
        assert!(reader.resolve("r.example/a:1").unwrap().is_none());
        assert!(StoreReader::open(&dir.path().join("none")).is_err());
        // Not a layout at all.
        let plain = dir.path().join("plain");
        fs::create_dir_all(&plain).unwrap();
        assert!(StoreReader::open(&plain).is_err());
    }

    #[test]
    fn blobs_are_verified_and_refs_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open_or_create(&dir.path().join("s")).unwrap();
        let d = desc(b"{}");
        assert!(!store.has_blob(&d).unwrap());
        assert!(store.write_blob_bytes(&Digest::of(b"x"), b"{}").is_err());
        store.write_blob_bytes(&d.digest, b"{}").unwrap();
        assert!(store.has_blob(&d).unwrap());
        // A blob cut short is refused and leaves nothing.
        let long = desc(b"0123456789");
        assert!(store
            .write_blob(&long, |f| f.write_all(b"0123").at(Path::new("x")))
            .is_err());
        assert!(!store.root().join(long.digest.blob_path()).exists());
        store.set_ref("r.example/a:1", &d).unwrap();
        store.set_ref("r.example/a:2", &d).unwrap();
        store.set_ref("r.example/a:1", &d).unwrap();
        assert_eq!(store.entries().unwrap().len(), 2);
        assert!(store.lookup("r.example/a:2").unwrap().is_some());
        let other = dir.path().join("other");
        fs::create_dir_all(&other).unwrap();
        fs::write(other.join("notes.txt"), "mine").unwrap();
        assert!(Store::open_or_create(&other).is_err());
        assert!(Store::open_or_create(store.root()).is_ok());
        let blobs: Vec<_> = fs::read_dir(store.root().join("blobs/sha256"))
            .unwrap()
            .collect();
        assert_eq!(blobs.len(), 1, "no temporary file is left");
    }
}
