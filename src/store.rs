//! The local image store: an OCI image layout directory (blobs by digest, `index.json` entries
//! named by `org.opencontainers.image.ref.name` = the full reference, as skopeo's `oci:DIR:REF`
//! writes them), filled by `pull`, safe under concurrent writers.
//!
//! Every blob is written to a temporary file beside its place, verified (size and digest),
//! flushed and renamed: a blob path holds the right bytes or nothing. `index.json` is
//! rewritten the same way while an exclusive `flock` on `index.json.lock` is held, so two
//! processes adding references at once never lose one.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write as _};
use std::os::fd::AsRawFd;
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
}

/// An image found in a store by [`StoreReader::resolve`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct StoredImage {
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
        Ok(StoreReader {
            path: path.to_path_buf(),
            reader: Arc::new(PackageReader::open_with(path, true)?),
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
    pub fn resolve(&self, reference: &str) -> Result<Option<StoredImage>> {
        let wanted = Wanted::parse(reference)?;
        let entries = &self.reader.index().manifests;
        let named = |name: &str| {
            entries
                .iter()
                .find(|d| d.annotations.get(REF_NAME).is_some_and(|n| n == name))
        };
        let found = match (&wanted.tag_name, &wanted.digest) {
            (Some(name), None) => named(name).map(|d| (name.clone(), d.clone())),
            (Some(name), Some(digest)) => match named(name) {
                Some(entry) => match self.within(entry, digest)? {
                    Some(d) => Some((name.clone(), d)),
                    None => {
                        return Err(Error::usage(format!(
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
        Ok(Some(StoredImage {
            reference: wanted.normalized,
            entry_name,
            descriptor,
            images,
        }))
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
        for (name, entry) in &entries {
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
        let (index, _) = self.reader.read_json::<Index>(entry, "image index")?;
        Ok(index.manifests.into_iter().find(|d| d.digest == *digest))
    }
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
        use crate::registry::reference::{Reference, Target};
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
                        if !crate::registry::reference::valid_tag(tag) {
                            return Err(Error::usage(format!(
                                "invalid reference '{}': '{tag}' is not a valid tag",
                                crate::registry::reference::shown(reference)
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
        if !root.join("oci-layout").exists() {
            let occupied = match fs::read_dir(root) {
                // What another process creating the store at the same moment has made so far
                // does not count.
                Ok(entries) => entries.filter_map(|e| e.ok()).any(|e| {
                    let name = e.file_name().to_string_lossy().into_owned();
                    !matches!(name.as_str(), "blobs" | "index.json.lock" | "oci-layout")
                        && !crate::atomic::is_temp_of("oci-layout", &name)
                }),
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

    /// Whether the store holds `desc`'s blob with its size and digest (a damaged or truncated
    /// file counts as absent, and is replaced by the next write).
    pub fn has_blob(&self, desc: &Descriptor) -> Result<bool> {
        let path = self.blob_path(&desc.digest);
        let file = match File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(Error::io(&path, e)),
        };
        if file.metadata().at(&path)?.len() != desc.size {
            return Ok(false);
        }
        let mut hashing = HashingReader::new(file);
        io::copy(&mut hashing, &mut io::sink()).at(&path)?;
        let (_, digest, _) = hashing.finish();
        Ok(digest == desc.digest)
    }

    /// Write a blob from `content`, which must hold `desc.size` bytes with `desc.digest`:
    /// `verify` reads it into the temporary file and checks it (returning an error when it is
    /// not right, and the file is then dropped); only then is it renamed into place.
    pub fn write_blob(
        &self,
        desc: &Descriptor,
        verify: impl FnOnce(&mut File) -> Result<()>,
    ) -> Result<()> {
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
            Err(e) if !self.has_blob(desc)? => Err(e),
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
        let file = match File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::io(&path, e)),
        };
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
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .at(&path)?;
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
