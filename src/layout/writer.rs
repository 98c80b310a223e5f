//! Writing layouts: blobs stream into the output once, are hashed on the way and stored once per
//! digest; `index.json` and `oci-layout` close the layout.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{self, BufWriter, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::path::{Component, Path, PathBuf};

use crate::atomic::{self, AtomicDir, AtomicFile, Staged};
use crate::digest::{Digest, HashingWriter};
use crate::error::{Error, IoResultExt, Result};
use crate::json::canonical;
use crate::oci::{Descriptor, Index, OCI_LAYOUT_FILE};

/// Buffer between the compressor and the file: large enough that writes are cheap syscalls.
const WRITE_BUFFER: usize = 256 * 1024;

/// The two output forms of a package.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputFormat {
    /// A `.cnb` file: an uncompressed tar of the layout.
    File,
    /// An OCI layout directory.
    Layout,
}

/// Where a stored blob's bytes are.
#[derive(Debug, Clone, Copy)]
struct BlobLocation {
    /// Offset of the data in the archive (0 for directory layouts).
    offset: u64,
    size: u64,
}

/// A layout being written. Nothing is visible at the destination until [`LayoutWriter::finish`].
pub struct LayoutWriter {
    target: Target,
    blobs: BTreeMap<Digest, BlobLocation>,
}

enum Target {
    Archive { out: AtomicFile, end: u64 },
    Dir { dir: AtomicDir, seq: u64 },
}

impl LayoutWriter {
    /// Start a layout for `dest`, which must be free to write (see [`check_destination`]).
    pub fn create(dest: &Path, format: OutputFormat) -> Result<Self> {
        check_destination(dest, format)?;
        let target = match format {
            OutputFormat::File => {
                let mut out = AtomicFile::create(dest)?;
                let mut end = 0;
                for dir in ["blobs/", "blobs/sha256/"] {
                    let h = outer_header(dir, 0, tar::EntryType::Directory)?;
                    out.file().write_all_at(h.as_bytes(), end).at(dest)?;
                    end += 512;
                }
                Target::Archive { out, end }
            }
            OutputFormat::Layout => {
                let dir = AtomicDir::create(dest)?;
                fs::create_dir_all(dir.path().join("blobs/sha256")).at(dest)?;
                Target::Dir { dir, seq: 0 }
            }
        };
        Ok(LayoutWriter {
            target,
            blobs: BTreeMap::new(),
        })
    }

    /// The destination path.
    pub fn dest(&self) -> &Path {
        match &self.target {
            Target::Archive { out, .. } => out.dest(),
            Target::Dir { dir, .. } => dir.dest(),
        }
    }

    /// Whether a blob with this digest is stored already.
    pub fn contains(&self, digest: &Digest) -> bool {
        self.blobs.contains_key(digest)
    }

    /// How many blobs are stored and their total size.
    pub fn stored(&self) -> (usize, u64) {
        (self.blobs.len(), self.blobs.values().map(|b| b.size).sum())
    }

    /// Store a small blob held in memory.
    pub fn put_bytes(&mut self, media_type: &str, bytes: &[u8]) -> Result<Descriptor> {
        let (desc, ()) = self.put_stream(media_type, |w| {
            w.write_all(bytes).map_err(Error::from_io_unnamed)
        })?;
        Ok(desc)
    }

    /// Store a blob produced by `produce`, which writes the blob's bytes into the given writer.
    /// The bytes are hashed while they stream to disk; a blob whose digest is stored already is
    /// dropped again, so every blob is stored once.
    pub fn put_stream<T>(
        &mut self,
        media_type: &str,
        produce: impl FnOnce(&mut dyn Write) -> Result<T>,
    ) -> Result<(Descriptor, T)> {
        match &mut self.target {
            Target::Archive { out, end } => {
                let dest = out.dest().to_path_buf();
                let header_at = *end;
                let file = out.file();
                file.seek(SeekFrom::Start(header_at + 512)).at(&dest)?;
                let early = EarlyWriteback::new(&mut *file, header_at + 512);
                let mut w = HashingWriter::new(BufWriter::with_capacity(WRITE_BUFFER, early));
                let value = produce(&mut w)?;
                let (buf, digest, size) = w.finish();
                buf.into_inner()
                    .map_err(|e| Error::io(&dest, e.into_error()))?;
                if let std::collections::btree_map::Entry::Vacant(slot) = self.blobs.entry(digest) {
                    let h = outer_header(&digest.blob_path(), size, tar::EntryType::Regular)?;
                    file.write_all_at(h.as_bytes(), header_at).at(&dest)?;
                    let padded = size.div_ceil(512) * 512;
                    if padded > size {
                        let zeros = vec![0u8; (padded - size) as usize];
                        file.write_all_at(&zeros, header_at + 512 + size)
                            .at(&dest)?;
                    }
                    *end = header_at + 512 + padded;
                    slot.insert(BlobLocation {
                        offset: header_at + 512,
                        size,
                    });
                } else {
                    // Stored already: forget the copy just written.
                    file.set_len(header_at).at(&dest)?;
                }
                Ok((Descriptor::new(media_type, digest, size), value))
            }
            Target::Dir { dir, seq } => {
                // Errors name the output: the temporary names inside it are gone afterwards.
                let dest = dir.dest().to_path_buf();
                *seq += 1;
                let blobs = dir.path().join("blobs/sha256");
                let temp = blobs.join(format!(".incoming-{seq}"));
                let mut file = File::create(&temp).at(&dest)?;
                let early = EarlyWriteback::new(&mut file, 0);
                let mut w = HashingWriter::new(BufWriter::with_capacity(WRITE_BUFFER, early));
                let value = match produce(&mut w) {
                    Ok(v) => v,
                    Err(e) => {
                        let _ = fs::remove_file(&temp);
                        return Err(e);
                    }
                };
                let (buf, digest, size) = w.finish();
                buf.into_inner()
                    .map_err(|e| Error::io(&dest, e.into_error()))?;
                if let std::collections::btree_map::Entry::Vacant(slot) = self.blobs.entry(digest) {
                    // Durable before the layout is renamed into place, as a .cnb file is.
                    file.sync_all().at(&dest)?;
                    fs::rename(&temp, blobs.join(digest.hex())).at(&dest)?;
                    slot.insert(BlobLocation { offset: 0, size });
                } else {
                    fs::remove_file(&temp).at(&dest)?;
                }
                Ok((Descriptor::new(media_type, digest, size), value))
            }
        }
    }

    /// Copy a blob whose descriptor is known (from another package or another output),
    /// verifying its digest and size on the way. Does nothing when it is stored already.
    pub fn copy_blob(
        &mut self,
        desc: &Descriptor,
        source: &mut dyn Read,
        source_name: &Path,
    ) -> Result<()> {
        if self.contains(&desc.digest) {
            return Ok(());
        }
        let media_type = desc.media_type.clone();
        let (got, ()) = self.put_stream(&media_type, |w| {
            io::copy(&mut source.take(desc.size.saturating_add(1)), w)
                .map_err(|e| Error::io(source_name, e))?;
            Ok(())
        })?;
        if got.size != desc.size {
            self.forget(&got.digest);
            return Err(Error::SizeMismatch {
                path: source_name.to_path_buf(),
                digest: desc.digest,
                expected: desc.size,
                actual: got.size,
            });
        }
        if got.digest != desc.digest {
            self.forget(&got.digest);
            return Err(Error::DigestMismatch {
                path: source_name.to_path_buf(),
                expected: desc.digest,
                actual: got.digest,
            });
        }
        Ok(())
    }

    /// Remove a blob just written (used when a copied blob fails verification).
    fn forget(&mut self, digest: &Digest) {
        if let Some(loc) = self.blobs.remove(digest) {
            match &mut self.target {
                Target::Archive { out, end } => {
                    let header_at = loc.offset - 512;
                    if header_at + 512 + loc.size.div_ceil(512) * 512 == *end {
                        let _ = out.file().set_len(header_at);
                        *end = header_at;
                    }
                }
                Target::Dir { dir, .. } => {
                    let _ = fs::remove_file(dir.path().join("blobs/sha256").join(digest.hex()));
                }
            }
        }
    }

    /// A reader over a blob stored in this output (to copy it into another output without
    /// rebuilding it).
    pub fn open_blob(&mut self, digest: &Digest) -> Result<Box<dyn Read + Send>> {
        let loc = *self
            .blobs
            .get(digest)
            .ok_or_else(|| Error::other(format!("blob {digest} is not stored")))?;
        match &mut self.target {
            Target::Archive { out, .. } => {
                let dest = out.dest().to_path_buf();
                let file = out.file().try_clone().at(&dest)?;
                Ok(Box::new(super::reader::BlobReader::new(
                    file, loc.offset, loc.size,
                )))
            }
            Target::Dir { dir, .. } => {
                let p = dir.path().join("blobs/sha256").join(digest.hex());
                Ok(Box::new(File::open(&p).at(&p)?))
            }
        }
    }

    /// Write `index.json` and `oci-layout`, close the archive and move the output into place
    /// (one output on its own; several outputs of one run are staged, then committed together).
    #[allow(dead_code)] // only the tests' package builder (through `internals`) uses it
    pub fn finish(self, index: &Index) -> Result<PathBuf> {
        let staged = self.stage(index)?;
        let dest = staged.dest().to_path_buf();
        commit_outputs(vec![staged])?;
        Ok(dest)
    }

    /// Write `index.json` and `oci-layout` and close the archive: the output is complete, and
    /// [`commit_outputs`] moves it into place (together with the other outputs of one run).
    pub fn stage(self, index: &Index) -> Result<Staged> {
        let index_json = canonical(index);
        match self.target {
            Target::Archive { mut out, end } => {
                let dest = out.dest().to_path_buf();
                let mut at = end;
                for (name, bytes) in [
                    ("index.json", &index_json[..]),
                    ("oci-layout", OCI_LAYOUT_FILE),
                ] {
                    let h = outer_header(name, bytes.len() as u64, tar::EntryType::Regular)?;
                    out.file().write_all_at(h.as_bytes(), at).at(&dest)?;
                    out.file().write_all_at(bytes, at + 512).at(&dest)?;
                    at += 512 + (bytes.len() as u64).div_ceil(512) * 512;
                }
                // End-of-archive: two zero blocks (this also zero-fills the last padding).
                out.file().set_len(at + 1024).at(&dest)?;
                out.stage()
            }
            Target::Dir { dir, .. } => {
                let dest = dir.dest().to_path_buf();
                for (name, bytes) in [
                    ("index.json", &index_json[..]),
                    ("oci-layout", OCI_LAYOUT_FILE),
                ] {
                    let mut f = File::create(dir.path().join(name)).at(&dest)?;
                    f.write_all(bytes).at(&dest)?;
                    f.sync_all().at(&dest)?;
                }
                for d in [
                    dir.path().join("blobs/sha256"),
                    dir.path().join("blobs"),
                    dir.path().to_path_buf(),
                ] {
                    File::open(&d).and_then(|f| f.sync_all()).at(&dest)?;
                }
                dir.stage()
            }
        }
    }
}

/// Move complete outputs into place, all or none, after checking again that every destination
/// is still free to write.
pub fn commit_outputs(staged: Vec<Staged>) -> Result<()> {
    for s in &staged {
        let format = if s.is_dir() {
            OutputFormat::Layout
        } else {
            OutputFormat::File
        };
        check_destination(s.dest(), format)?;
    }
    atomic::commit_all(staged)
}

/// Check that an output may be written at `dest`: it names a file or directory, and nothing is
/// there, or a package cnbpkg can read (which the output replaces), or, for a layout, an empty
/// directory. Anything else is left untouched and refused: cnbpkg never replaces what it cannot
/// tell is a package.
pub fn check_destination(dest: &Path, format: OutputFormat) -> Result<()> {
    if !matches!(dest.components().next_back(), Some(Component::Normal(_))) {
        return Err(Error::invalid(
            dest,
            "the output must name a file or directory",
        ));
    }
    let meta = match fs::symlink_metadata(dest) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(Error::io(dest, e)),
        Ok(m) => m,
    };
    let refuse = |what: &str| {
        Err(Error::invalid(
            dest,
            format!("{what}; cnbpkg replaces only a package it can read: remove it or choose another output"),
        ))
    };
    let ft = meta.file_type();
    if ft.is_symlink() {
        return refuse("is a symbolic link");
    }
    match format {
        OutputFormat::File if ft.is_dir() => return refuse("is a directory"),
        OutputFormat::File if !ft.is_file() => return refuse("is not a regular file"),
        OutputFormat::Layout if !ft.is_dir() => return refuse("exists and is not a directory"),
        OutputFormat::Layout => {
            if fs::read_dir(dest).at(dest)?.next().is_none() {
                return Ok(());
            }
        }
        OutputFormat::File => {}
    }
    let reader = match super::PackageReader::open(dest) {
        Ok(r) => r,
        Err(_) => return refuse("exists and is not a package"),
    };
    // A readable index is not enough: a directory (or archive) that also holds other files
    // is more than a package, and replacing it would delete them.
    let only_layout = match format {
        OutputFormat::Layout => holds_only_layout(dest),
        OutputFormat::File => reader
            .files()
            .is_ok_and(|files| files.keys().all(|name| is_layout_name(name))),
    };
    if !only_layout {
        return refuse("holds files that are not part of a package");
    }
    Ok(())
}

/// Whether `name` (normalized, relative) is one of the files an OCI layout consists of.
fn is_layout_name(name: &str) -> bool {
    match name.split('/').collect::<Vec<_>>().as_slice() {
        ["oci-layout"] | ["index.json"] => true,
        ["blobs", alg, hex] => !alg.is_empty() && !hex.is_empty(),
        _ => false,
    }
}

/// Whether the layout directory `dir` holds nothing but `oci-layout`, `index.json` and regular
/// files in `blobs/ALG/` (no symlinks, no other files or directories, bounded in count).
fn holds_only_layout(dir: &Path) -> bool {
    let mut seen = 0usize;
    let mut entries_of = |d: &Path| -> Option<Vec<(String, fs::FileType)>> {
        let mut out = Vec::new();
        for e in fs::read_dir(d).ok()? {
            seen += 1;
            if seen > super::MAX_ENTRIES {
                return None;
            }
            let e = e.ok()?;
            out.push((e.file_name().into_string().ok()?, e.file_type().ok()?));
        }
        Some(out)
    };
    let Some(top) = entries_of(dir) else {
        return false;
    };
    for (name, ft) in top {
        let fine = match name.as_str() {
            "oci-layout" | "index.json" => ft.is_file(),
            "blobs" if ft.is_dir() => {
                let Some(algs) = entries_of(&dir.join("blobs")) else {
                    return false;
                };
                algs.into_iter().all(|(alg, ft)| {
                    ft.is_dir()
                        && entries_of(&dir.join("blobs").join(alg))
                            .is_some_and(|blobs| blobs.iter().all(|(_, ft)| ft.is_file()))
                })
            }
            _ => false,
        };
        if !fine {
            return false;
        }
    }
    true
}

/// How much written data may wait in the page cache before its writeback is started.
const WRITEBACK_STEP: u64 = 16 << 20;

/// A file writer that starts the kernel's writeback of what it wrote every
/// [`WRITEBACK_STEP`] bytes, so the disk works while we compress and the `fsync` that makes
/// the output durable before it is renamed into place has little left to wait for.
pub(crate) struct EarlyWriteback<'a> {
    file: &'a mut File,
    /// File offset up to which writeback was started.
    started: u64,
    /// File offset of the next byte written.
    pos: u64,
}

impl<'a> EarlyWriteback<'a> {
    pub(crate) fn new(file: &'a mut File, pos: u64) -> Self {
        EarlyWriteback {
            file,
            started: pos,
            pos,
        }
    }
}

impl Write for EarlyWriteback<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        // Every byte of an output passes here: the place to stop a long build on an interrupt.
        if atomic::interrupted() {
            return Err(atomic::interrupted_io_error());
        }
        let n = self.file.write(buf)?;
        self.pos += n as u64;
        if self.pos - self.started >= WRITEBACK_STEP {
            start_writeback(self.file, self.started, self.pos - self.started);
            self.started = self.pos;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

/// Ask the kernel to start writing a range to disk without waiting for it (a hint: failures
/// are ignored, `fsync` at the end is what guarantees durability).
#[cfg(target_os = "linux")]
fn start_writeback(file: &File, offset: u64, len: u64) {
    use std::os::fd::AsRawFd;
    // SAFETY: plain syscall on a valid, open file descriptor; no memory is passed.
    unsafe {
        libc::sync_file_range(
            file.as_raw_fd(),
            offset as libc::off64_t,
            len as libc::off64_t,
            libc::SYNC_FILE_RANGE_WRITE,
        );
    }
}

#[cfg(not(target_os = "linux"))]
fn start_writeback(_file: &File, _offset: u64, _len: u64) {}

/// A USTAR header for an entry of the outer archive: fixed owner, time and modes.
fn outer_header(name: &str, size: u64, kind: tar::EntryType) -> Result<tar::Header> {
    let mut h = tar::Header::new_ustar();
    h.set_path(name)
        .map_err(|e| Error::other(format!("cannot encode archive entry {name}: {e}")))?;
    h.set_entry_type(kind);
    h.set_size(size);
    h.set_mode(if kind == tar::EntryType::Directory {
        0o755
    } else {
        0o644
    });
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(crate::cnb::NORMALIZED_SECONDS);
    h.set_cksum();
    Ok(h)
}

impl Error {
    /// An I/O error with no better name than the output being written.
    pub(crate) fn from_io_unnamed(e: io::Error) -> Error {
        Error::other(e.to_string())
    }
}
