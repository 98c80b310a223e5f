//! Reading packages: `.cnb` archives (ours, pack's, with or without leading `/`) and layout
//! directories, trusting no size, name or digest until it has been checked.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{self, Read};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;

use crate::digest::{Digest, HashingReader};
use crate::error::{Error, IoResultExt, Result};
use crate::oci::{self, Descriptor, ImageConfig, Index, Manifest};
use crate::tar_guard::TarGuard;

use super::limits::{MAX_ENTRIES, MAX_ENTRY_NAME, MAX_IMAGES_BYTES, MAX_JSON_BLOB};
use super::tree::{
    image_listings, walk, BlobSource, ConfigBlob, Configs, Exceeded, LayerLookup, LayerMiss,
    OnFailure, Others, Policy, Style,
};

/// A `.cnb` file or an OCI layout directory, opened for reading.
pub struct PackageReader {
    path: PathBuf,
    source: Source,
    index: Index,
    index_bytes: Vec<u8>,
}

enum Source {
    /// Regular-file entries of the archive by normalized name: (data offset, size).
    Archive {
        file: File,
        entries: BTreeMap<String, (u64, u64)>,
    },
    Dir {
        root: PathBuf,
    },
}

/// One image (manifest) found in a package, with its config.
#[derive(Debug, Clone)]
pub struct ImageRef {
    /// The descriptor that points at the manifest (platform and annotations as written).
    pub descriptor: Descriptor,
    /// The manifest.
    pub manifest: Manifest,
    /// The config.
    pub config: ImageConfig,
    /// The raw config bytes (for labels and verification).
    pub config_bytes: Vec<u8>,
}

impl ImageRef {
    /// The platform of this image: the descriptor's when present, else the config's.
    pub fn platform(&self) -> oci::Platform {
        match &self.descriptor.platform {
            Some(p) => p.clone(),
            None => self.config.platform(),
        }
    }

    /// The layer whose uncompressed digest is `diff_id`: its position and descriptor (the
    /// first, when the config lists one diffID twice).
    pub fn layer_by_diff_id(
        &self,
        diff_id: &Digest,
    ) -> std::result::Result<(usize, &Descriptor), LayerMiss> {
        LayerLookup::new(&self.config).layer(&self.manifest, diff_id)
    }
}

impl PackageReader {
    /// Open a `.cnb` file or a layout directory and parse its `index.json`.
    pub fn open(path: &Path) -> Result<Self> {
        Self::open_with(path, false)
    }

    /// [`Self::open`], reading a layout directory without `index.json` (an image store no
    /// image has been put into yet) as one with no entries when `empty_ok`.
    pub(crate) fn open_with(path: &Path, empty_ok: bool) -> Result<Self> {
        let meta = fs::metadata(path).at(path)?;
        let source = if meta.is_dir() {
            if !path.join("oci-layout").is_file() {
                return Err(Error::invalid(
                    path,
                    "not an OCI layout: no oci-layout file",
                ));
            }
            // Blobs are never read through a symlink (each blob file is checked when opened);
            // the directories holding them must not be symlinks either, or every blob would
            // come from somewhere else.
            for dir in ["blobs", "blobs/sha256"] {
                if fs::symlink_metadata(path.join(dir)).is_ok_and(|m| m.file_type().is_symlink()) {
                    return Err(Error::invalid(
                        path.join(dir),
                        "is a symbolic link; a layout's blob directories must be real directories",
                    ));
                }
            }
            Source::Dir {
                root: path.to_path_buf(),
            }
        } else {
            scan_archive(path)?
        };
        let mut reader = PackageReader {
            path: path.to_path_buf(),
            source,
            index: Index::new(vec![]),
            index_bytes: vec![],
        };
        let no_index = matches!(&reader.source, Source::Dir { root }
            if fs::symlink_metadata(root.join("index.json")).is_err());
        if empty_ok && no_index {
            return Ok(reader);
        }
        let bytes = reader.read_file("index.json", MAX_JSON_BLOB)?;
        reader.index = serde_json::from_slice(&bytes).map_err(|e| {
            Error::invalid(path, format!("index.json is not a valid image index: {e}"))
        })?;
        if reader.index.schema_version != 2 {
            return Err(Error::invalid(
                path,
                format!(
                    "index.json has schemaVersion {}, expected 2",
                    reader.index.schema_version
                ),
            ));
        }
        reader.index_bytes = bytes;
        Ok(reader)
    }

    /// The package's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The parsed `index.json`.
    pub fn index(&self) -> &Index {
        &self.index
    }

    /// The raw `index.json` bytes.
    pub fn index_bytes(&self) -> &[u8] {
        &self.index_bytes
    }

    /// Every regular file of the layout by normalized name, with its size.
    pub fn files(&self) -> Result<BTreeMap<String, u64>> {
        match &self.source {
            Source::Archive { entries, .. } => {
                Ok(entries.iter().map(|(k, (_, s))| (k.clone(), *s)).collect())
            }
            Source::Dir { root } => {
                let mut out = BTreeMap::new();
                for name in ["oci-layout", "index.json"] {
                    if let Ok(m) = fs::symlink_metadata(root.join(name)) {
                        out.insert(name.to_string(), m.len());
                    }
                }
                let blobs = root.join("blobs");
                // As many entries as an archive may hold: a directory is as hostile as a tar.
                let mut count = 0usize;
                let mut counted = |dir: &Path| {
                    count += 1;
                    if count > MAX_ENTRIES {
                        Err(Error::invalid(
                            dir,
                            format!("more than {MAX_ENTRIES} entries"),
                        ))
                    } else {
                        Ok(())
                    }
                };
                if let Ok(algs) = fs::read_dir(&blobs) {
                    for alg in algs {
                        let alg = alg.at(&blobs)?;
                        counted(&blobs)?;
                        // A symlinked algorithm directory is not descended into: its files
                        // are somewhere else.
                        if !alg.file_type().at(&alg.path())?.is_dir() {
                            continue;
                        }
                        let alg_name = alg.file_name().to_string_lossy().into_owned();
                        if let Ok(files) = fs::read_dir(alg.path()) {
                            for f in files {
                                let f = f.at(&alg.path())?;
                                counted(&alg.path())?;
                                let m = f.metadata().at(&f.path())?;
                                out.insert(
                                    format!("blobs/{alg_name}/{}", f.file_name().to_string_lossy()),
                                    m.len(),
                                );
                            }
                        }
                    }
                }
                Ok(out)
            }
        }
    }

    /// The size of the stored blob, if present.
    pub fn blob_size(&self, digest: &Digest) -> Option<u64> {
        match &self.source {
            Source::Archive { entries, .. } => entries.get(&digest.blob_path()).map(|e| e.1),
            Source::Dir { root } => {
                let m = fs::symlink_metadata(root.join(digest.blob_path())).ok()?;
                m.is_file().then_some(m.len())
            }
        }
    }

    /// Whether the blob is present.
    pub fn has_blob(&self, digest: &Digest) -> bool {
        self.blob_size(digest).is_some()
    }

    /// A streaming reader over a blob's stored bytes (not verified; see [`Self::read_verified`]).
    pub fn open_blob(&self, digest: &Digest) -> Result<BlobReader> {
        self.open_named(&digest.blob_path()).map_err(|e| match e {
            Error::Io { source, .. } if source.kind() == io::ErrorKind::NotFound => {
                Error::invalid(&self.path, format!("blob {digest} is missing"))
            }
            e => e,
        })
    }

    fn open_named(&self, name: &str) -> Result<BlobReader> {
        match &self.source {
            Source::Archive { file, entries } => {
                let (offset, size) = *entries.get(name).ok_or_else(|| {
                    Error::io(
                        &self.path,
                        io::Error::new(io::ErrorKind::NotFound, format!("{name} not found")),
                    )
                })?;
                Ok(BlobReader::new(
                    file.try_clone().at(&self.path)?,
                    offset,
                    size,
                ))
            }
            Source::Dir { root } => {
                let p = root.join(name);
                let m = fs::symlink_metadata(&p).at(&p)?;
                if !m.is_file() {
                    return Err(Error::invalid(&p, "is not a regular file"));
                }
                // Still the regular file just checked: not a symlink or FIFO swapped in since.
                let identity = crate::input::FileIdentity::of(&m);
                let file = crate::input::open_walked(&p, Some(&identity))?;
                Ok(BlobReader::new(file, 0, m.len()))
            }
        }
    }

    /// Read a (small) file of the layout by its normalized name, e.g. `oci-layout`.
    pub fn read_file(&self, name: &str, limit: u64) -> Result<Vec<u8>> {
        let mut r = self.open_named(name).map_err(|e| match e {
            Error::Io { source, .. } if source.kind() == io::ErrorKind::NotFound => {
                Error::invalid(&self.path, format!("not an OCI layout: no {name}"))
            }
            e => e,
        })?;
        if r.len() > limit {
            return Err(Error::invalid(
                &self.path,
                format!("{name} is {} bytes, over the {limit}-byte limit", r.len()),
            ));
        }
        let mut buf = Vec::with_capacity(r.len() as usize);
        r.read_to_end(&mut buf).at(&self.path)?;
        Ok(buf)
    }

    /// Read a small blob into memory, checking its size and digest against `desc`.
    pub fn read_verified(&self, desc: &Descriptor) -> Result<Vec<u8>> {
        if desc.size > MAX_JSON_BLOB {
            return Err(Error::invalid(
                &self.path,
                format!(
                    "blob {} claims {} bytes, over the {MAX_JSON_BLOB}-byte limit",
                    desc.digest, desc.size
                ),
            ));
        }
        let stored = self.blob_size(&desc.digest).ok_or_else(|| {
            Error::invalid(&self.path, format!("blob {} is missing", desc.digest))
        })?;
        if stored != desc.size {
            return Err(Error::invalid(
                &self.path,
                format!(
                    "blob {} is {stored} bytes, descriptor says {}",
                    desc.digest, desc.size
                ),
            ));
        }
        let mut r = HashingReader::new(self.open_blob(&desc.digest)?);
        let mut buf = Vec::with_capacity(desc.size as usize);
        r.read_to_end(&mut buf).at(&self.path)?;
        let (_, digest, _) = r.finish();
        if digest != desc.digest {
            return Err(Error::invalid(
                &self.path,
                format!("blob {} has digest {digest}", desc.digest),
            ));
        }
        Ok(buf)
    }

    /// Read and parse a JSON blob, verified.
    pub fn read_json<T: DeserializeOwned>(
        &self,
        desc: &Descriptor,
        what: &str,
    ) -> Result<(T, Vec<u8>)> {
        let bytes = self.read_verified(desc)?;
        let value = serde_json::from_slice(&bytes).map_err(|e| {
            Error::invalid(
                &self.path,
                format!("{what} {} is not valid JSON for its type: {e}", desc.digest),
            )
        })?;
        Ok((value, bytes))
    }

    /// Every image reachable from `index.json`, following nested indexes, in index order:
    /// one per listing of a manifest (each with the descriptor it is listed with).
    pub fn images(&self) -> Result<Vec<ImageRef>> {
        self.images_from(&self.index.manifests)
    }

    /// Every image reachable from the descriptors `listed` (some of `index.json`'s entries, or
    /// a manifest an entry's index lists), as [`Self::images`] finds them below `index.json`.
    pub fn images_from(&self, listed: &[Descriptor]) -> Result<Vec<ImageRef>> {
        let policy = Policy {
            others: Others::Skip,
            configs: Configs::Always,
            style: Style::Reader,
            failures: OnFailure::Stop,
        };
        let top = walk(self, listed, policy)?;
        let mut out: Vec<ImageRef> = Vec::new();
        // Each image holds its own copy of its manifest and config: bound them together.
        let mut kept = 0u64;
        for (listing, node) in image_listings(&top) {
            let (
                Some(manifest),
                Some(ConfigBlob {
                    bytes,
                    config: Some(config),
                }),
            ) = (node.manifest(), node.config_blob())
            else {
                continue; // the walk reads and parses every config of the policy above
            };
            kept += listing.size + bytes.len() as u64;
            if kept > MAX_IMAGES_BYTES {
                return Err(Error::invalid(&self.path, Exceeded::Bytes.to_string()));
            }
            out.push(ImageRef {
                descriptor: listing.clone(),
                manifest: manifest.clone(),
                config: config.clone(),
                config_bytes: bytes.clone(),
            });
        }
        Ok(out)
    }
}

/// Scan an outer archive once, recording where each regular file's data is.
fn scan_archive(path: &Path) -> Result<Source> {
    let file = crate::input::open_regular(path)?;
    let len = file.metadata().at(path)?.len();
    let mut magic = [0u8; 2];
    if file.read_at(&mut magic, 0).at(path)? == 2 && magic == [0x1f, 0x8b] {
        return Err(Error::invalid(
            path,
            "is gzip-compressed; a .cnb must be an uncompressed tar archive",
        ));
    }
    if len < 1024 {
        return Err(Error::invalid(
            path,
            "not a .cnb: too short to be a tar archive",
        ));
    }
    // The guard bounds PAX and long-name headers, which the tar reader would hold whole.
    let mut archive = tar::Archive::new(TarGuard::new(file.try_clone().at(path)?));
    let corrupt = |e: io::Error| Error::invalid(path, format!("corrupt or truncated archive: {e}"));
    let mut entries = BTreeMap::new();
    let mut count = 0usize;
    // Where the last entry's data, padded to a whole block, ends.
    let mut data_end = 0u64;
    for entry in archive.entries_with_seek().map_err(corrupt)? {
        let entry = entry.map_err(corrupt)?;
        count += 1;
        if count > MAX_ENTRIES {
            return Err(Error::invalid(
                path,
                format!("more than {MAX_ENTRIES} entries"),
            ));
        }
        let raw_name = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        if raw_name.len() > MAX_ENTRY_NAME {
            return Err(Error::invalid(
                path,
                format!(
                    "entry name '{}' is longer than {MAX_ENTRY_NAME} bytes; a layout's names are short",
                    crate::ui::quote_name(&raw_name)
                ),
            ));
        }
        let size = entry.size();
        let offset = entry.raw_file_position();
        data_end = offset.saturating_add(size.div_ceil(512).saturating_mul(512));
        let is_dir = entry.header().entry_type() == tar::EntryType::Directory;
        // `tar -C layout -cf x.cnb .` starts with the root itself, `./`.
        if is_dir && is_root_name(&raw_name) {
            continue;
        }
        let name = normalize_entry_name(&raw_name).ok_or_else(|| {
            Error::invalid(
                path,
                format!("unsafe entry name '{}'", crate::ui::quote_name(&raw_name)),
            )
        })?;
        let shown = crate::ui::quote_name(&name);
        match entry.header().entry_type() {
            tar::EntryType::Directory => {}
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                if offset.checked_add(size).is_none_or(|end| end > len) {
                    return Err(Error::invalid(
                        path,
                        format!("truncated: entry {shown} runs past the end of the file"),
                    ));
                }
                if entries.insert(name.clone(), (offset, size)).is_some() {
                    return Err(Error::invalid(path, format!("duplicate entry {shown}")));
                }
            }
            other => {
                return Err(Error::invalid(path, format!("entry {shown} has unsupported type {other:?}; only files and directories belong in a .cnb")));
            }
        }
    }
    if entries.is_empty() {
        return Err(Error::invalid(path, "not a .cnb: the archive has no files"));
    }
    // The reader stops quietly at the end of the file, so a file cut after an entry's data (or
    // inside its padding) would pass; a complete archive ends with two zero blocks.
    let mut trailer = [0u8; 1024];
    let complete = data_end.checked_add(1024).is_some_and(|end| end <= len)
        && file.read_exact_at(&mut trailer, data_end).is_ok()
        && trailer.iter().all(|b| *b == 0);
    if !complete {
        return Err(Error::invalid(
            path,
            "truncated: the archive has no end-of-archive marker",
        ));
    }
    if !entries.contains_key("oci-layout") {
        return Err(Error::invalid(
            path,
            "not an OCI layout archive: no oci-layout entry",
        ));
    }
    Ok(Source::Archive { file, entries })
}

/// Whether a name stands for the archive's root directory (`.`, `./`; GNU tar writes `./` for
/// `tar -C dir -cf x.tar .`).
fn is_root_name(raw: &str) -> bool {
    !raw.is_empty() && raw.split('/').all(|p| p.is_empty() || p == ".")
}

/// `/blobs/x`, `./blobs/x`, `blobs/x/` → `blobs/x`; `None` for names with `..` or nothing left.
pub(crate) fn normalize_entry_name(raw: &str) -> Option<String> {
    let parts = crate::tar::name_parts(raw, false)?;
    if parts.is_empty() || raw.contains('\0') {
        return None;
    }
    Some(parts.join("/"))
}

/// A reader over a byte range of a file, using positioned reads (so several can share a file).
pub struct BlobReader {
    file: File,
    pos: u64,
    end: u64,
}

impl BlobReader {
    pub(crate) fn new(file: File, offset: u64, size: u64) -> Self {
        BlobReader {
            file,
            pos: offset,
            end: offset + size,
        }
    }

    /// Bytes left to read.
    pub fn len(&self) -> u64 {
        self.end - self.pos
    }

    /// Whether nothing is left.
    pub fn is_empty(&self) -> bool {
        self.pos == self.end
    }
}

impl Read for BlobReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let want = (buf.len() as u64).min(self.end - self.pos) as usize;
        if want == 0 {
            return Ok(0);
        }
        // Every reader of a package (verify, inspect, push, composites) stops here once its
        // operation is cancelled.
        if crate::cancel::cancelled() {
            return Err(crate::atomic::interrupted_io_error());
        }
        let n = self.file.read_at(&mut buf[..want], self.pos)?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "file shrank while reading",
            ));
        }
        self.pos += n as u64;
        Ok(n)
    }
}

impl BlobSource for PackageReader {
    fn fetch_verified(&self, desc: &Descriptor) -> Result<Vec<u8>> {
        self.read_verified(desc)
    }

    fn origin(&self) -> &Path {
        self.path()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_names_are_normalized_and_traversal_rejected() {
        assert_eq!(
            normalize_entry_name("/blobs/sha256/ab").as_deref(),
            Some("blobs/sha256/ab")
        );
        assert_eq!(
            normalize_entry_name("./index.json").as_deref(),
            Some("index.json")
        );
        assert_eq!(normalize_entry_name("blobs/").as_deref(), Some("blobs"));
        assert_eq!(normalize_entry_name("blobs/../../etc"), None);
        assert_eq!(normalize_entry_name("/"), None);
    }
}
