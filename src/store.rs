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

use crate::atomic::AtomicFile;
use crate::digest::{Digest, HashingReader};
use crate::error::{Error, IoResultExt, Result};
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
