//! Buildpack sources: walking a directory tree in pack's order, and extracting `.tgz`/`.tar` archives safely.
//!
//! [`walk`] lists a tree the way Go's `filepath.Walk` visits it inside pack's `WriteDirToTar`
//! (pre-order, siblings sorted bytewise), so layers built from the list match pack's. Archives are
//! first extracted with [`extract_archive`] and then walked like any directory, which gives them
//! the same normalization (and platform folders) as directory sources.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs::{self, OpenOptions};
use std::io::{self, BufRead, BufReader, Read};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::error::{Error, IoResultExt, Result};
use crate::input::{FileIdentity, OpenDir};
use crate::tar_guard::TarGuard;

/// One entry of a source tree.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SourceEntry {
    /// Path relative to the walked root, `/`-separated, no leading `./`.
    pub rel: String,
    /// Where the entry is on disk (for overlays, the overlay file).
    pub path: PathBuf,
    /// What the entry is.
    pub kind: SourceKind,
    /// Permission bits from the file system (`st_mode & 0o7777`).
    pub mode: u32,
    /// For regular files, the file the walk saw: it is opened again only if it is still that
    /// file (see [`crate::input::open_walked`]).
    pub identity: Option<FileIdentity>,
}

/// The kind of a source entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SourceKind {
    /// A directory.
    Dir,
    /// A regular file of `size` bytes (as seen when walked).
    File { size: u64 },
    /// A symbolic link, never followed; `target` is verbatim.
    Symlink { target: String },
    /// A later path of a multiply-linked file; `first` is the `rel` of the first path seen.
    Hardlink { first: String },
}

/// What a directory listing slot holds: something on disk, or an overlay file.
enum Child {
    Disk(DiskChild),
    Overlay {
        file: PathBuf,
        replaces: Option<PathBuf>,
    },
}

/// Directories shallower than this (the root is at depth 0) keep their children's listing
/// entries, so that each child is looked at relative to its open directory, and its file opened
/// there by name (see [`OpenDir`]), instead of by its full path, which makes the kernel walk
/// every path component again for every entry. An entry keeps its directory's two handles (the
/// listing's and the one files are opened in) until the last pending sibling is visited, so a
/// walk holds two handles per directory on the current path that still has children pending.
/// A tree (maybe hostile) can be thousands of levels deep: below this depth its children keep
/// only their paths, so between two entries a walk never holds more than twice this many
/// handles, far below the usual limit of 1024 open files.
const MAX_HELD_DIR_DEPTH: usize = 32;

/// How deep a walk holds directories open: [`MAX_HELD_DIR_DEPTH`], less under a small limit of
/// open files, so that the walk's handles (two per level) take at most an eighth of what the
/// process may open (the rest is for the files being read and the outputs being written; a
/// process limited to a handful of files walks by path, as if nothing were held).
fn held_dir_depth() -> usize {
    let limit = crate::input::open_files_limit().unwrap_or(0);
    usize::try_from(limit / 16)
        .unwrap_or(usize::MAX)
        .min(MAX_HELD_DIR_DEPTH)
}

/// A child on disk: its listing entry while its directory is held open (with a handle to open
/// its file by name, see [`OpenDir`]), else only its path.
enum DiskChild {
    Entry(fs::DirEntry, Option<OpenDir>),
    Path(PathBuf),
}

impl DiskChild {
    fn into_path(self) -> PathBuf {
        match self {
            DiskChild::Entry(entry, _) => entry.path(),
            DiskChild::Path(path) => path,
        }
    }

    /// The child's path and its own metadata, never following a symlink; an error names the
    /// path. A held entry is looked up relative to its open directory (on Linux,
    /// `DirEntry::metadata` is `statx`/`fstatat` on the directory's descriptor with
    /// `AT_SYMLINK_NOFOLLOW`), and is dropped here: the last pending sibling closes the directory.
    fn look(self) -> Result<(PathBuf, fs::Metadata, Option<OpenDir>)> {
        match self {
            DiskChild::Entry(entry, dir) => {
                let path = entry.path();
                let meta = entry.metadata().at(&path)?;
                Ok((path, meta, dir))
            }
            DiskChild::Path(path) => {
                let meta = fs::symlink_metadata(&path).at(&path)?;
                Ok((path, meta, None))
            }
        }
    }
}

/// List `root`'s entries in Go `filepath.Walk` order (root excluded), with `overlays` —
/// (relative path, disk file) pairs — replacing or adding files at their sorted positions.
///
/// Sockets and FIFOs are skipped (pack skips sockets and cannot package FIFOs); device files,
/// symlink loops and names that are not UTF-8 are errors naming the file.
pub fn walk(root: &Path, overlays: &[(String, PathBuf)]) -> Result<Vec<SourceEntry>> {
    walk_excluding(root, overlays, &Exclusions::default())
}

/// Names a walk leaves out: the outputs being written (and their temporary names), which may lie
/// inside the tree being packaged. Each is a name within a directory, and the directory is known
/// by its device and inode, so any spelling of the path that reaches it matches.
#[derive(Clone, Debug, Default)]
pub struct Exclusions {
    outputs: Vec<(u64, u64, String)>,
    /// The system temp directory, where cnbpkg's scratch directories (extracted archives) are.
    scratch_root: Option<(u64, u64)>,
}

impl Exclusions {
    /// Leave out `output` and the temporary names written beside it. An output whose directory
    /// does not exist cannot be inside any tree and is not recorded.
    pub fn add_output(&mut self, output: &Path) {
        let (Some(name), Ok(meta)) = (
            output.file_name().and_then(|n| n.to_str()),
            fs::metadata(crate::atomic::parent_of(output)),
        ) else {
            return;
        };
        self.outputs
            .push((meta.dev(), meta.ino(), name.to_string()));
    }

    /// Leave out cnbpkg's scratch directories (see [`crate::atomic::ScratchDir`]): `TMPDIR`
    /// may lie inside a tree being packaged, and an extracted dependency must not be packaged
    /// a second time inside it.
    pub fn add_scratch_dirs(&mut self) {
        if let Ok(meta) = fs::metadata(std::env::temp_dir()) {
            self.scratch_root = Some((meta.dev(), meta.ino()));
        }
    }

    fn is_empty(&self) -> bool {
        self.outputs.is_empty() && self.scratch_root.is_none()
    }

    /// Whether `name` in the directory `(dev, ino)` is left out.
    fn excludes(&self, dir: (u64, u64), name: &[u8]) -> bool {
        let Ok(name) = std::str::from_utf8(name) else {
            return false;
        };
        (self.scratch_root == Some(dir) && crate::atomic::is_scratch_name(name))
            || self.outputs.iter().any(|(dev, ino, base)| {
                (*dev, *ino) == dir && (name == base || crate::atomic::is_temp_of(base, name))
            })
    }
}

/// [`walk`], leaving out what `exclusions` names.
pub fn walk_excluding(
    root: &Path,
    overlays: &[(String, PathBuf)],
    exclusions: &Exclusions,
) -> Result<Vec<SourceEntry>> {
    Walk::new(root, overlays, exclusions.clone())?.collect()
}

/// The entries of [`walk_excluding`], one at a time, so that reading and writing them can start
/// before the whole tree is listed. Only the directories still to be listed are held: their
/// pending children, never the entries already given. The first error ends the walk; an overlay
/// whose directory is missing is the error after the last entry.
pub struct Walk {
    root: PathBuf,
    overlays: BTreeMap<String, BTreeMap<Vec<u8>, PathBuf>>,
    exclusions: Exclusions,
    hardlinks: HashMap<(u64, u64), String>,
    /// Children still to visit, pushed in reverse so that they pop in pre-order; an explicit
    /// stack, so deep trees cannot overflow the thread's stack.
    stack: Vec<(String, Child)>,
    /// Overlay directories (relative, not the root) not yet met in the walk.
    missing_overlay_dirs: BTreeSet<String>,
    /// Directories shallower than this keep their entries (see [`MAX_HELD_DIR_DEPTH`]).
    held_dir_depth: usize,
    done: bool,
}

impl Walk {
    /// Start walking `root`; the root itself and the overlays are checked here, before any entry.
    pub fn new(
        root: &Path,
        overlays: &[(String, PathBuf)],
        exclusions: Exclusions,
    ) -> Result<Walk> {
        Walk::holding(root, overlays, exclusions, held_dir_depth())
    }

    /// [`Walk::new`], keeping entries for directories shallower than `held_dir_depth`.
    fn holding(
        root: &Path,
        overlays: &[(String, PathBuf)],
        exclusions: Exclusions,
        held_dir_depth: usize,
    ) -> Result<Walk> {
        let meta = fs::metadata(root).at(root)?;
        if !meta.is_dir() {
            return Err(Error::invalid(root, "not a directory"));
        }
        let overlays = group_overlays(overlays)?;
        let missing_overlay_dirs = overlays
            .keys()
            .filter(|dir| !dir.is_empty())
            .cloned()
            .collect();
        let mut stack = Vec::new();
        let listing = Listing {
            dir: root,
            rel: "",
            keep_entries: held_dir_depth > 0,
            opened: None,
        };
        push_children(&mut stack, &listing, &overlays, &exclusions)?;
        Ok(Walk {
            root: root.to_path_buf(),
            overlays,
            exclusions,
            hardlinks: HashMap::new(),
            stack,
            missing_overlay_dirs,
            held_dir_depth,
            done: false,
        })
    }

    /// The next entry (with the directory it is in while the walk holds that open, for a
    /// regular file), `None` once the tree is done.
    fn step(&mut self) -> Result<Option<(SourceEntry, Option<OpenDir>)>> {
        while let Some((rel, child)) = self.stack.pop() {
            crate::atomic::check_interrupt()?;
            let (entry, dir) = match child {
                Child::Overlay { file, replaces } => {
                    (overlay_entry(rel, file, replaces.as_deref())?, None)
                }
                Child::Disk(child) => {
                    let depth = rel.bytes().filter(|b| *b == b'/').count() + 1;
                    let holds = depth < self.held_dir_depth;
                    match disk_entry(rel, child, holds, &mut self.hardlinks)? {
                        Some(found) => found,
                        None => continue,
                    }
                }
            };
            let dir = match entry.kind {
                SourceKind::Dir => {
                    let depth = entry.rel.bytes().filter(|b| *b == b'/').count() + 1;
                    let listing = Listing {
                        dir: &entry.path,
                        rel: &entry.rel,
                        keep_entries: depth < self.held_dir_depth,
                        opened: dir,
                    };
                    push_children(&mut self.stack, &listing, &self.overlays, &self.exclusions)?;
                    None
                }
                _ => dir,
            };
            self.missing_overlay_dirs.remove(&entry.rel);
            return Ok(Some((entry, dir)));
        }
        if let Some(dir) = self.missing_overlay_dirs.first() {
            return Err(Error::invalid(
                &self.root,
                format!("overlay directory '{dir}' does not exist in the tree"),
            ));
        }
        Ok(None)
    }
}

#[cfg(test)]
impl Walk {
    /// The directories whose handles the pending children hold open.
    fn held_dirs(&self) -> usize {
        let held: BTreeSet<PathBuf> = self
            .stack
            .iter()
            .filter_map(|(_, child)| match child {
                Child::Disk(DiskChild::Entry(entry, _)) => {
                    entry.path().parent().map(Path::to_path_buf)
                }
                _ => None,
            })
            .collect();
        held.len()
    }
}

impl Walk {
    /// The entries with, for a regular file, the directory it is in while the walk holds that
    /// open: the file is best opened there, by name ([`crate::input::open_walked_in`]), before
    /// the next entry is taken (the handle is the walk's, and bounded with it).
    pub(crate) fn in_dirs(self) -> InDirs {
        InDirs(self)
    }

    fn next_in_dir(&mut self) -> Option<Result<(SourceEntry, Option<OpenDir>)>> {
        if self.done {
            return None;
        }
        let next = self.step();
        self.done = !matches!(next, Ok(Some(_)));
        next.transpose()
    }
}

impl Iterator for Walk {
    type Item = Result<SourceEntry>;

    fn next(&mut self) -> Option<Result<SourceEntry>> {
        self.next_in_dir()
            .map(|found| found.map(|(entry, _)| entry))
    }
}

/// The iterator of [`Walk::in_dirs`].
pub(crate) struct InDirs(Walk);

impl Iterator for InDirs {
    type Item = Result<(SourceEntry, Option<OpenDir>)>;

    fn next(&mut self) -> Option<Self::Item> {
        self.0.next_in_dir()
    }
}

/// Overlays keyed by parent directory (relative, `""` for the root), then by file name.
fn group_overlays(
    overlays: &[(String, PathBuf)],
) -> Result<BTreeMap<String, BTreeMap<Vec<u8>, PathBuf>>> {
    let mut map: BTreeMap<String, BTreeMap<Vec<u8>, PathBuf>> = BTreeMap::new();
    for (rel, file) in overlays {
        let clean = rel
            .split('/')
            .all(|c| !c.is_empty() && c != "." && c != "..");
        if !clean {
            return Err(Error::invalid(
                file,
                format!("invalid overlay path '{rel}'"),
            ));
        }
        let (dir, name) = rel.rsplit_once('/').unwrap_or(("", rel));
        map.entry(dir.to_string())
            .or_default()
            .insert(name.as_bytes().to_vec(), file.clone());
    }
    Ok(map)
}

/// A directory about to be listed.
struct Listing<'a> {
    dir: &'a Path,
    /// Relative to the walked root, `""` for the root.
    rel: &'a str,
    /// Whether its children keep their entries (and so the directory's handle).
    keep_entries: bool,
    /// The directory, opened by name in its held parent (see [`OpenDir::open_child`]).
    opened: Option<OpenDir>,
}

/// Push the listing's children (merged with its overlays) so that they pop in bytewise name
/// order.
fn push_children(
    stack: &mut Vec<(String, Child)>,
    listing: &Listing<'_>,
    overlays: &BTreeMap<String, BTreeMap<Vec<u8>, PathBuf>>,
    exclusions: &Exclusions,
) -> Result<()> {
    let (dir, rel) = (listing.dir, listing.rel);
    let mut names: BTreeMap<Vec<u8>, Child> = BTreeMap::new();
    let dir_id = match exclusions.is_empty() {
        true => None,
        false => {
            let m = fs::metadata(dir).at(dir)?;
            Some((m.dev(), m.ino()))
        }
    };
    // Held beside the listing's own handle, for opening the files by name; without it (it
    // cannot be opened) they are opened by path. A directory whose parent is held was opened
    // in it; others (the root, which is followed as the walk follows it) by path.
    let held = match (listing.keep_entries, &listing.opened) {
        (true, Some(opened)) => Some(opened.clone()),
        (true, None) => OpenDir::open(dir, rel.is_empty()).ok(),
        (false, _) => None,
    };
    for item in fs::read_dir(dir).at(dir)? {
        let item = item.at(dir)?;
        if dir_id.is_some_and(|id| exclusions.excludes(id, item.file_name().as_bytes())) {
            continue;
        }
        let name = item.file_name().as_bytes().to_vec();
        let child = match listing.keep_entries {
            true => DiskChild::Entry(item, held.clone()),
            false => DiskChild::Path(item.path()),
        };
        names.insert(name, Child::Disk(child));
    }
    if let Some(extra) = overlays.get(rel) {
        for (name, file) in extra {
            let replaces = match names.remove(name) {
                Some(Child::Disk(child)) => Some(child.into_path()),
                _ => None,
            };
            names.insert(
                name.clone(),
                Child::Overlay {
                    file: file.clone(),
                    replaces,
                },
            );
        }
    }
    for (name, child) in names.into_iter().rev() {
        let name = String::from_utf8(name).map_err(|e| {
            let bad = dir.join(std::ffi::OsStr::from_bytes(e.as_bytes()));
            Error::invalid(
                bad,
                "file name is not valid UTF-8 and cannot be stored in a layer",
            )
        })?;
        let child_rel = if rel.is_empty() {
            name
        } else {
            format!("{rel}/{name}")
        };
        stack.push((child_rel, child));
    }
    Ok(())
}

/// The entry for an overlay file. Its mode is that of the file it replaces, else 0644, because
/// pack copies the file with `os.Create` (which keeps an existing file's mode and otherwise
/// creates 0666 minus umask, never executable).
fn overlay_entry(rel: String, file: PathBuf, replaces: Option<&Path>) -> Result<SourceEntry> {
    let meta = fs::symlink_metadata(&file).at(&file)?;
    if !meta.is_file() {
        return Err(Error::invalid(&file, "overlay is not a regular file"));
    }
    let mode = match replaces.map(fs::symlink_metadata) {
        Some(Ok(m)) if m.is_file() => m.mode() & 0o7777,
        Some(Ok(_)) => {
            return Err(Error::invalid(
                replaces.unwrap_or(&file),
                "overlay would replace something that is not a regular file",
            ))
        }
        _ => 0o644,
    };
    Ok(SourceEntry {
        rel,
        path: file,
        kind: SourceKind::File { size: meta.len() },
        mode,
        identity: Some(FileIdentity::of(&meta)),
    })
}

/// The entry for a child on disk, or `None` for sockets and FIFOs; with, for a regular file,
/// the held directory it is in, and for a directory that `holds` its children's entries, itself
/// opened in its held parent.
fn disk_entry(
    rel: String,
    child: DiskChild,
    holds: bool,
    hardlinks: &mut HashMap<(u64, u64), String>,
) -> Result<Option<(SourceEntry, Option<OpenDir>)>> {
    let (path, meta, dir) = child.look()?;
    let ft = meta.file_type();
    let mode = meta.mode() & 0o7777;
    let kind = if ft.is_symlink() {
        SourceKind::Symlink {
            target: symlink_target(&path)?,
        }
    } else if ft.is_dir() {
        SourceKind::Dir
    } else if ft.is_file() {
        file_kind(&rel, &meta, hardlinks)
    } else if ft.is_socket() || ft.is_fifo() {
        return Ok(None);
    } else {
        return Err(Error::invalid(&path, "device files cannot be packaged"));
    };
    let regular = matches!(kind, SourceKind::File { .. });
    let identity = regular.then(|| FileIdentity::of(&meta));
    let entry = SourceEntry {
        rel,
        path,
        kind,
        mode,
        identity,
    };
    let dir = match (&entry.kind, dir) {
        (SourceKind::File { .. }, dir) => dir,
        (SourceKind::Dir, Some(parent)) if holds => parent.open_child(&entry.path, &meta)?,
        _ => None,
    };
    Ok(Some((entry, dir)))
}

/// A regular file, or a hardlink to the first path seen with the same (device, inode).
fn file_kind(
    rel: &str,
    meta: &fs::Metadata,
    hardlinks: &mut HashMap<(u64, u64), String>,
) -> SourceKind {
    if meta.nlink() > 1 {
        let key = (meta.dev(), meta.ino());
        if let Some(first) = hardlinks.get(&key) {
            return SourceKind::Hardlink {
                first: first.clone(),
            };
        }
        hardlinks.insert(key, rel.to_string());
    }
    SourceKind::File { size: meta.len() }
}

/// A symlink's target, verbatim; a link whose resolution loops is an error.
fn symlink_target(path: &Path) -> Result<String> {
    let target = fs::read_link(path).map_err(|e| {
        if e.raw_os_error() == Some(libc::EINVAL) {
            Error::invalid(
                path,
                "changed while the tree was read: it is no longer a symlink",
            )
        } else {
            Error::io(path, e)
        }
    })?;
    if let Err(e) = fs::metadata(path) {
        if e.raw_os_error() == Some(libc::ELOOP) {
            return Err(Error::invalid(path, "symlink loop"));
        }
    }
    target.into_os_string().into_string().map_err(|_| {
        Error::invalid(
            path,
            "symlink target is not valid UTF-8 and cannot be stored in a layer",
        )
    })
}

// ---------------------------------------------------------------------------------------------
// Archive extraction
// ---------------------------------------------------------------------------------------------

/// Extraction stops once file data exceeds this, so a crafted archive cannot fill the disk.
pub const MAX_EXTRACT_BYTES: u64 = 64 << 30;
/// Extraction stops after this many entries.
pub const MAX_EXTRACT_ENTRIES: u64 = 1_000_000;
/// Longest accepted entry name or link target (Linux `PATH_MAX`).
pub const MAX_PATH_LEN: usize = 4096;
/// Bound on all names kept in memory together (entry count × name length could be gigabytes).
const MAX_NAME_BYTES: u64 = 256 << 20;
/// Bound on one PAX or GNU long-name header, which must be held in memory (Go uses 1 MiB too).
const MAX_META_SIZE: u64 = 1 << 20;
/// Symlink hops followed when checking where a link resolves (Linux's limit).
const MAX_SYMLINK_HOPS: usize = 40;

/// What has been extracted at a relative path.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Extracted {
    Dir,
    File,
    Symlink(String),
}

/// Extract a `.tgz` or `.tar` buildpack archive (gzip is recognized by its magic bytes) into
/// `dest`, which must be missing or empty.
///
/// Rejected with a one-line error naming the archive and the entry: absolute names, `..`
/// components, hardlinks that point outside the root, symlink loops, entries written through
/// an extracted symlink (a symlink itself may point anywhere: its target is data), device and FIFO entries, conflicting duplicates, and archives beyond
/// `MAX_EXTRACT_BYTES`, [`MAX_EXTRACT_ENTRIES`] or `MAX_PATH_LEN`. Permissions are set
/// explicitly (umask-independent), always with owner access so that the tree can be walked and
/// removed; setuid, setgid and sticky bits are dropped since layers drop them anyway. On error,
/// `dest` may hold a partial tree; nothing is written outside it.
pub fn extract_archive(archive: &Path, dest: &Path) -> Result<()> {
    let mut reader = BufReader::new(crate::input::open_regular(archive)?);
    let is_gzip = reader.fill_buf().at(archive)?.starts_with(&[0x1f, 0x8b]);
    // Every byte of the archive passes the interrupt check, so an interrupt stops a long
    // extraction at once and the caller removes the partial tree.
    let reader = crate::atomic::InterruptibleReader(reader);
    let input: Box<dyn Read> = if is_gzip {
        Box::new(crate::compress::GzipMembers::new(BufReader::new(reader)))
    } else {
        Box::new(reader)
    };
    prepare_dest(dest)?;
    let mut ex = Extractor::new(archive, dest);
    // The guard turns an end of input inside an entry into an error and tells whether the
    // end-of-archive marker came; `apply_pax` refuses the size records raw mode cannot honour.
    let mut guard = TarGuard::raw(input);
    let mut ar = ::tar::Archive::new(&mut guard);
    // Raw mode: we read PAX and GNU long-name headers ourselves, with a size bound, instead of
    // letting the reader buffer them whole.
    let entries = ar
        .entries()
        .map_err(|e| ex.fail("", format!("not a tar archive: {e}")))?
        .raw(true);
    let mut meta = PendingMeta::default();
    for entry in entries {
        let entry = entry.map_err(|e| ex.fail("", format!("corrupt archive: {e}")))?;
        ex.entry(entry, &mut meta)?;
    }
    // Read what follows the marker (record padding) to the end of the input, so a gzip
    // member's CRC and length are checked: content that fails them must not be packaged.
    let left = MAX_EXTRACT_BYTES - ex.data_bytes;
    guard
        .drain(left)
        .map_err(|e| ex.fail("", format!("corrupt archive: {e}")))?;
    if !guard.saw_end_marker() {
        // Without the marker a file cut at an entry boundary reads as a shorter archive.
        return Err(ex.fail(
            "",
            "truncated archive: it ends without the end-of-archive marker (zero blocks)",
        ));
    }
    ex.finish()
}

/// `dest` must be an empty directory; a missing one is created.
fn prepare_dest(dest: &Path) -> Result<()> {
    match fs::read_dir(dest) {
        Ok(mut it) => match it.next() {
            None => Ok(()),
            Some(_) => Err(Error::invalid(dest, "extraction directory is not empty")),
        },
        Err(e) if e.kind() == io::ErrorKind::NotFound => fs::create_dir_all(dest).at(dest),
        Err(e) => Err(Error::io(dest, e)),
    }
}

/// Name overrides from PAX (`path`, `linkpath`) or GNU long-name headers for the next entry.
#[derive(Default)]
struct PendingMeta {
    path: Option<Vec<u8>>,
    link: Option<Vec<u8>>,
}

/// State of one extraction: what exists where, and the running totals that bound it.
struct Extractor<'a> {
    archive: &'a Path,
    dest: &'a Path,
    seen: HashMap<String, Extracted>,
    /// Final mode of every directory by relative path (a map: an archive may list the same
    /// directory many times, and a list searched per entry would make extraction quadratic).
    dir_modes: HashMap<String, u32>,
    entries: u64,
    data_bytes: u64,
    name_bytes: u64,
}

impl<'a> Extractor<'a> {
    fn new(archive: &'a Path, dest: &'a Path) -> Self {
        Extractor {
            archive,
            dest,
            seen: HashMap::new(),
            dir_modes: HashMap::new(),
            entries: 0,
            data_bytes: 0,
            name_bytes: 0,
        }
    }

    /// An error naming the archive and the entry.
    fn fail(&self, entry: &str, problem: impl std::fmt::Display) -> Error {
        if entry.is_empty() {
            Error::invalid(self.archive, problem.to_string())
        } else {
            Error::invalid(
                self.archive,
                format!("entry '{}': {problem}", crate::ui::quote_name(entry)),
            )
        }
    }

    fn entry<R: Read>(
        &mut self,
        mut entry: ::tar::Entry<'_, R>,
        meta: &mut PendingMeta,
    ) -> Result<()> {
        let header_name = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let et = entry.header().entry_type();
        if et.is_pax_local_extensions() || et.is_gnu_longname() || et.is_gnu_longlink() {
            let data = self.read_meta(&mut entry, &header_name)?;
            if et.is_pax_local_extensions() {
                self.apply_pax(&data, &header_name, meta)?;
            } else {
                let value = data.strip_suffix(&[0]).unwrap_or(&data).to_vec();
                *(if et.is_gnu_longname() {
                    &mut meta.path
                } else {
                    &mut meta.link
                }) = Some(value);
            }
            return Ok(());
        }
        let pending = std::mem::take(meta);
        if et.is_pax_global_extensions() {
            return Ok(());
        }
        let raw_name = pending
            .path
            .unwrap_or_else(|| entry.path_bytes().into_owned());
        let name = String::from_utf8(raw_name)
            .map_err(|_| self.fail(&header_name, "name is not valid UTF-8"))?;
        self.entries += 1;
        if self.entries > MAX_EXTRACT_ENTRIES {
            return Err(self.fail(
                &name,
                format!("archive has more than {MAX_EXTRACT_ENTRIES} entries"),
            ));
        }
        self.name_bytes += name.len() as u64;
        if self.name_bytes > MAX_NAME_BYTES {
            return Err(self.fail(&name, "archive names are too long in total"));
        }
        let Some(rel) = self.clean_name(&name)? else {
            return Ok(()); // the root itself ("./")
        };
        let mode = entry.header().mode().map_err(|e| self.fail(&name, e))? & 0o777;
        let link = || -> Result<String> {
            let raw = pending
                .link
                .clone()
                .or_else(|| entry.link_name_bytes().map(|b| b.into_owned()))
                .unwrap_or_default();
            let s = String::from_utf8(raw)
                .map_err(|_| self.fail(&name, "link target is not valid UTF-8"))?;
            if s.len() > MAX_PATH_LEN {
                return Err(self.fail(&name, "link target is too long"));
            }
            Ok(s)
        };
        use ::tar::EntryType as T;
        match et {
            T::Directory => self.make_dir(&rel, &name, mode),
            T::Regular | T::Continuous if name.ends_with('/') => self.make_dir(&rel, &name, mode),
            T::Regular | T::Continuous => {
                let declared = entry.size();
                self.make_file(&rel, &name, mode, declared, &mut entry)
            }
            T::Symlink => {
                let target = link()?;
                self.make_symlink(&rel, &name, target)
            }
            T::Link => {
                let target = link()?;
                self.make_hardlink(&rel, &name, &target)
            }
            T::Char | T::Block => Err(self.fail(&name, "device entries are not allowed")),
            T::Fifo => Err(self.fail(&name, "FIFO entries are not allowed")),
            T::GNUSparse => Err(self.fail(&name, "sparse files are not supported")),
            other => Err(self.fail(
                &name,
                format!("unsupported entry type '{}'", other.as_byte() as char),
            )),
        }
    }

    /// Read a PAX or GNU long-name header's data, bounded.
    fn read_meta<R: Read>(&self, entry: &mut ::tar::Entry<'_, R>, name: &str) -> Result<Vec<u8>> {
        if entry.size() > MAX_META_SIZE {
            return Err(self.fail(name, "extended header is larger than 1 MiB"));
        }
        let mut data = Vec::new();
        entry
            .read_to_end(&mut data)
            .map_err(|e| self.fail(name, format!("corrupt archive: {e}")))?;
        Ok(data)
    }

    /// Take `path` and `linkpath` from PAX records; a `size` record cannot be honoured in raw
    /// reading (the data framing would be wrong), so it is rejected rather than misread.
    fn apply_pax(&self, data: &[u8], name: &str, meta: &mut PendingMeta) -> Result<()> {
        for ext in ::tar::PaxExtensions::new(data) {
            let ext = ext.map_err(|_| self.fail(name, "malformed PAX header"))?;
            match ext.key_bytes() {
                b"path" => meta.path = Some(ext.value_bytes().to_vec()),
                b"linkpath" => meta.link = Some(ext.value_bytes().to_vec()),
                b"size" => {
                    return Err(self.fail(
                        name,
                        "PAX size records (files of 8 GiB or more) are not supported",
                    ))
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// Normalize an entry name to a relative `a/b/c`; `None` for the root. Absolute names and
    /// `..` components are rejected.
    fn clean_name(&self, name: &str) -> Result<Option<String>> {
        if name.len() > MAX_PATH_LEN {
            return Err(self.fail(name, "name is too long"));
        }
        if name.starts_with('/') {
            return Err(self.fail(name, "absolute path"));
        }
        let mut parts = Vec::new();
        for c in name.split('/') {
            match c {
                "" | "." => {}
                ".." => return Err(self.fail(name, "path contains a '..' component")),
                c => parts.push(c),
            }
        }
        Ok(if parts.is_empty() {
            None
        } else {
            Some(parts.join("/"))
        })
    }

    /// Make sure every ancestor of `rel` is a real directory we created, creating missing ones;
    /// an ancestor that is an extracted symlink or file is an error.
    fn ensure_parents(&mut self, rel: &str, name: &str) -> Result<()> {
        let mut end = 0;
        while let Some(i) = rel[end..].find('/') {
            let parent = &rel[..end + i];
            match self.seen.get(parent) {
                Some(Extracted::Dir) => {}
                Some(Extracted::Symlink(_)) => {
                    return Err(self.fail(
                        name,
                        format!("would be written through the symlink '{parent}'"),
                    ))
                }
                Some(Extracted::File) => {
                    return Err(self.fail(name, format!("parent '{parent}' is not a directory")))
                }
                None => {
                    self.create_dir(parent)?;
                    self.dir_modes.insert(parent.to_string(), 0o755);
                }
            }
            end += i + 1;
        }
        Ok(())
    }

    /// Create a directory we can fill (0700 for now; final modes are applied in `finish`).
    fn create_dir(&mut self, rel: &str) -> Result<()> {
        let path = self.dest.join(rel);
        fs::create_dir(&path).at(&path)?;
        fs::set_permissions(&path, fs::Permissions::from_mode(0o700)).at(&path)?;
        self.seen.insert(rel.to_string(), Extracted::Dir);
        Ok(())
    }

    /// Whether `rel` is free; a repeated directory (or identical symlink) is fine, other repeats
    /// conflict.
    fn claim(&self, rel: &str, name: &str, what: &Extracted) -> Result<bool> {
        match self.seen.get(rel) {
            None => Ok(true),
            Some(prev) if prev == what && !matches!(what, Extracted::File) => Ok(false),
            Some(_) => Err(self.fail(name, "duplicate entry conflicts with an earlier one")),
        }
    }

    fn make_dir(&mut self, rel: &str, name: &str, mode: u32) -> Result<()> {
        self.ensure_parents(rel, name)?;
        if self.claim(rel, name, &Extracted::Dir)? {
            self.create_dir(rel)?;
        }
        self.dir_modes.insert(rel.to_string(), mode);
        Ok(())
    }

    fn make_file<R: Read>(
        &mut self,
        rel: &str,
        name: &str,
        mode: u32,
        declared: u64,
        data: &mut R,
    ) -> Result<()> {
        let budget = MAX_EXTRACT_BYTES - self.data_bytes;
        if declared > budget {
            return Err(self.fail(
                name,
                format!(
                    "declares {declared} bytes; the archive may expand to at most {} GiB",
                    MAX_EXTRACT_BYTES >> 30
                ),
            ));
        }
        self.ensure_parents(rel, name)?;
        self.claim(rel, name, &Extracted::File)?;
        let path = self.dest.join(rel);
        // O_NOFOLLOW + create_new: never write through or over anything already there.
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&path)
            .at(&path)?;
        let copied =
            io::copy(&mut data.take(budget + 1), &mut file).map_err(|e| self.fail(name, e))?;
        if copied < declared {
            // The reader stops quietly at the end of the input: a header claiming more than the
            // archive holds is a truncated (or crafted) archive.
            return Err(self.fail(
                name,
                format!("truncated archive: the entry declares {declared} bytes but only {copied} follow"),
            ));
        }
        if copied > budget {
            return Err(self.fail(
                name,
                format!(
                    "archive expands to more than {} GiB",
                    MAX_EXTRACT_BYTES >> 30
                ),
            ));
        }
        self.data_bytes += copied;
        // Owner read/write always: the walk must read the file and the scratch tree must be
        // removable; a layer keeps only whether some execute bit is set.
        fs::set_permissions(&path, fs::Permissions::from_mode(mode | 0o600)).at(&path)?;
        self.seen.insert(rel.to_string(), Extracted::File);
        Ok(())
    }

    fn make_symlink(&mut self, rel: &str, name: &str, target: String) -> Result<()> {
        self.ensure_parents(rel, name)?;
        if target.is_empty() {
            return Err(self.fail(name, "symlink has an empty target"));
        }
        // Where a link points is not checked: the target is data for the container that runs
        // the buildpack (`bin/env -> /usr/bin/env` is common), and this tree is only walked,
        // never followed. What is refused is writing anything through a link
        // (`ensure_parents`), so nothing lands outside `dest`.
        let what = Extracted::Symlink(target.clone());
        if self.claim(rel, name, &what)? {
            let path = self.dest.join(rel);
            std::os::unix::fs::symlink(&target, &path).at(&path)?;
            self.seen.insert(rel.to_string(), what);
        }
        Ok(())
    }

    fn make_hardlink(&mut self, rel: &str, name: &str, target: &str) -> Result<()> {
        self.ensure_parents(rel, name)?;
        let target_rel = match self.clean_name(target) {
            Ok(Some(t)) => t,
            _ => {
                return Err(self.fail(
                    name,
                    format!("hardlink target '{target}' escapes the archive root"),
                ))
            }
        };
        if self.seen.get(&target_rel) != Some(&Extracted::File) {
            return Err(self.fail(
                name,
                format!("hardlink target '{target}' is not a file extracted earlier"),
            ));
        }
        self.claim(rel, name, &Extracted::File)?;
        let (from, to) = (self.dest.join(&target_rel), self.dest.join(rel));
        fs::hard_link(&from, &to).at(&to)?;
        self.seen.insert(rel.to_string(), Extracted::File);
        Ok(())
    }

    /// Check every symlink again with the whole tree known (a later link can close a loop), then apply directory modes, deepest first so parents stay writable until the end.
    fn finish(mut self) -> Result<()> {
        let mut links: Vec<(&String, &String)> = self
            .seen
            .iter()
            .filter_map(|(rel, e)| match e {
                Extracted::Symlink(t) => Some((rel, t)),
                _ => None,
            })
            .collect();
        links.sort();
        for (rel, target) in links {
            match resolve_in_tree(&self.seen, rel, target) {
                // A link leaving the root is data (see `make_symlink`); a loop is refused as the
                // directory walk refuses one.
                Resolution::Inside | Resolution::Escapes => {}
                Resolution::Loop => return Err(self.fail(rel, "symlink loop")),
            }
        }
        let mut dir_modes: Vec<(String, u32)> =
            std::mem::take(&mut self.dir_modes).into_iter().collect();
        dir_modes.sort_by(|a, b| {
            b.0.matches('/')
                .count()
                .cmp(&a.0.matches('/').count())
                .then(a.0.cmp(&b.0))
        });
        for (rel, mode) in dir_modes {
            let path = self.dest.join(&rel);
            // Owner access always, so the tree can be walked and removed by a user who is not
            // root; a layer's directory modes are normalized and do not depend on these.
            fs::set_permissions(&path, fs::Permissions::from_mode(mode | 0o700)).at(&path)?;
        }
        Ok(())
    }
}

enum Resolution {
    Inside,
    Escapes,
    Loop,
}

/// Resolve `target` (of the link at `rel`) component by component, expanding extracted symlinks
/// met on the way, and report whether it ever climbs above the root.
fn resolve_in_tree(seen: &HashMap<String, Extracted>, rel: &str, target: &str) -> Resolution {
    let mut stack: Vec<String> = rel.split('/').map(str::to_string).collect();
    stack.pop();
    let mut pending: Vec<String> = target.split('/').rev().map(str::to_string).collect();
    let mut hops = 0;
    while let Some(c) = pending.pop() {
        match c.as_str() {
            "" | "." => {}
            ".." => {
                if stack.pop().is_none() {
                    return Resolution::Escapes;
                }
            }
            _ => {
                stack.push(c);
                if let Some(Extracted::Symlink(t)) = seen.get(&stack.join("/")) {
                    hops += 1;
                    if hops > MAX_SYMLINK_HOPS {
                        return Resolution::Loop;
                    }
                    if t.starts_with('/') {
                        return Resolution::Escapes;
                    }
                    stack.pop();
                    pending.extend(t.split('/').rev().map(str::to_string));
                }
            }
        }
    }
    Resolution::Inside
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rels(entries: &[SourceEntry]) -> Vec<&str> {
        entries.iter().map(|e| e.rel.as_str()).collect()
    }

    #[test]
    fn streaming_walk_gives_pre_order_with_overlays_and_exclusions() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path().join("root");
        for dir in ["b", "b/z", "a.d"] {
            fs::create_dir_all(root.join(dir)).unwrap();
        }
        for file in ["b/z/1", "b/y", "a", "a.d/x", "out.cnb", "c"] {
            fs::write(root.join(file), file).unwrap();
        }
        let extra = d.path().join("extra");
        fs::write(&extra, "overlay").unwrap();
        let overlays = vec![
            ("b/new".to_string(), extra.clone()),
            ("c".to_string(), extra),
        ];
        let mut exclusions = Exclusions::default();
        exclusions.add_output(&root.join("out.cnb"));
        let walk = Walk::new(&root, &overlays, exclusions).unwrap();
        let entries: Vec<SourceEntry> = walk.collect::<Result<_>>().unwrap();
        // Bytewise order: "a" < "a.d" < "b"; "b/new" < "b/y" < "b/z".
        assert_eq!(
            rels(&entries),
            ["a", "a.d", "a.d/x", "b", "b/new", "b/y", "b/z", "b/z/1", "c"]
        );
        assert_eq!(entries[8].kind, SourceKind::File { size: 7 });
        // Stopping early leaves nothing behind and needs nothing more.
        let mut walk = Walk::new(&root, &[], Exclusions::default()).unwrap();
        assert_eq!(walk.next().unwrap().unwrap().rel, "a");
        drop(walk);
    }

    #[test]
    fn streaming_walk_ends_at_its_first_error() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path();
        fs::write(root.join("a"), "a").unwrap();
        fs::create_dir(root.join("b")).unwrap();
        fs::write(
            root.join("b").join(std::ffi::OsStr::from_bytes(b"\xff")),
            "x",
        )
        .unwrap();
        fs::write(root.join("c"), "c").unwrap();
        let mut walk = Walk::new(root, &[], Exclusions::default()).unwrap();
        assert_eq!(walk.next().unwrap().unwrap().rel, "a");
        let err = walk.next().unwrap().unwrap_err().to_string();
        assert!(err.contains("not valid UTF-8"), "{err}");
        assert!(walk.next().is_none(), "nothing after the error");

        // An overlay whose directory is missing: every entry, then the error.
        let extra = root.join("c");
        let overlays = vec![("nowhere/x".to_string(), extra)];
        let ok = tempfile::tempdir().unwrap();
        fs::write(ok.path().join("f"), "f").unwrap();
        let items: Vec<Result<SourceEntry>> =
            Walk::new(ok.path(), &overlays, Exclusions::default())
                .unwrap()
                .collect();
        assert_eq!(items.len(), 2);
        assert_eq!(items[0].as_ref().unwrap().rel, "f");
        let err = items[1].as_ref().unwrap_err().to_string();
        assert!(err.contains("overlay directory 'nowhere'"), "{err}");

        // A root that is not a directory fails before any entry.
        assert!(Walk::new(&root.join("a"), &[], Exclusions::default()).is_err());
    }

    /// Every entry of a walk that holds entries for directories shallower than `held`.
    fn walk_holding(root: &Path, overlays: &[(String, PathBuf)], held: usize) -> Vec<SourceEntry> {
        let mut exclusions = Exclusions::default();
        exclusions.add_output(&root.join("out.cnb"));
        Walk::holding(root, overlays, exclusions, held)
            .unwrap()
            .collect::<Result<_>>()
            .unwrap()
    }

    #[test]
    fn held_entries_walk_exactly_like_paths() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path().join("root");
        for dir in ["b/z", "a.d/deep/er", "c"] {
            fs::create_dir_all(root.join(dir)).unwrap();
        }
        for file in ["a", "a.d/x", "b/y", "b/z/1", "a.d/deep/er/f", "out.cnb"] {
            fs::write(root.join(file), file).unwrap();
        }
        fs::set_permissions(root.join("b/y"), fs::Permissions::from_mode(0o750)).unwrap();
        fs::hard_link(root.join("b/z/1"), root.join("a.d/link")).unwrap();
        fs::hard_link(root.join("b/z/1"), root.join("c/link")).unwrap();
        std::os::unix::fs::symlink("../a", root.join("c/to-file")).unwrap();
        std::os::unix::fs::symlink("b/z", root.join("to-dir")).unwrap();
        std::os::unix::fs::symlink("nowhere", root.join("c/dangling")).unwrap();
        let fifo = std::ffi::CString::new(root.join("b/fifo").as_os_str().as_bytes()).unwrap();
        assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o644) }, 0);
        let extra = d.path().join("extra");
        fs::write(&extra, "overlay").unwrap();
        let overlays = vec![
            ("b/y".to_string(), extra.clone()),
            ("a.d/deep/new".to_string(), extra.clone()),
            ("zz".to_string(), extra),
        ];

        let by_path = walk_holding(&root, &overlays, 0);
        assert_eq!(
            rels(&by_path),
            [
                "a",
                "a.d",
                "a.d/deep",
                "a.d/deep/er",
                "a.d/deep/er/f",
                "a.d/deep/new",
                "a.d/link",
                "a.d/x",
                "b",
                "b/y",
                "b/z",
                "b/z/1",
                "c",
                "c/dangling",
                "c/link",
                "c/to-file",
                "to-dir",
                "zz"
            ]
        );
        let kind = |rel: &str| &by_path.iter().find(|e| e.rel == rel).unwrap().kind;
        assert_eq!(kind("a.d/link"), &SourceKind::File { size: 5 });
        let first = "a.d/link".to_string();
        assert_eq!(
            kind("b/z/1"),
            &SourceKind::Hardlink {
                first: first.clone()
            }
        );
        assert_eq!(kind("c/link"), &SourceKind::Hardlink { first });
        let target = "b/z".to_string();
        assert_eq!(kind("to-dir"), &SourceKind::Symlink { target });
        let y = by_path.iter().find(|e| e.rel == "b/y").unwrap();
        assert_eq!(
            (y.path.as_path(), y.mode),
            (d.path().join("extra").as_path(), 0o750)
        );
        // Held everywhere, held only at the top, and by path give the same entries.
        assert_eq!(walk_holding(&root, &overlays, MAX_HELD_DIR_DEPTH), by_path);
        assert_eq!(walk_holding(&root, &overlays, 1), by_path);
    }

    #[test]
    fn deep_tree_holds_a_bounded_number_of_directories() {
        let d = tempfile::tempdir().unwrap();
        let levels = MAX_HELD_DIR_DEPTH * 3;
        // Each level has a directory "d" and a file "f" that is still pending while "d" is walked.
        let mut dir = d.path().to_path_buf();
        for _ in 0..levels {
            fs::write(dir.join("f"), "f").unwrap();
            dir.push("d");
            fs::create_dir(&dir).unwrap();
        }
        let mut walk =
            Walk::holding(d.path(), &[], Exclusions::default(), MAX_HELD_DIR_DEPTH).unwrap();
        let (mut entries, mut most_held) = (Vec::new(), 0);
        while let Some(entry) = walk.next() {
            entries.push(entry.unwrap());
            most_held = most_held.max(walk.held_dirs());
        }
        assert_eq!(most_held, MAX_HELD_DIR_DEPTH);
        assert_eq!(entries.len(), 2 * levels);
        assert_eq!(
            entries[levels - 1].rel,
            ["d"; 3 * MAX_HELD_DIR_DEPTH].join("/")
        );
        assert_eq!(entries, walk_holding(d.path(), &[], 0));
    }

    #[test]
    fn held_entry_gone_before_it_is_visited_names_its_path() {
        let d = tempfile::tempdir().unwrap();
        fs::write(d.path().join("a"), "a").unwrap();
        fs::write(d.path().join("b"), "b").unwrap();
        let mut walk = Walk::new(d.path(), &[], Exclusions::default()).unwrap();
        assert_eq!(walk.next().unwrap().unwrap().rel, "a");
        fs::remove_file(d.path().join("b")).unwrap();
        let err = walk.next().unwrap().unwrap_err().to_string();
        let gone = d.path().join("b").display().to_string();
        assert!(err.starts_with(&format!("{gone}: ")), "{err}");
    }

    #[test]
    fn chained_links_that_escape_are_found() {
        let mut seen = HashMap::new();
        seen.insert("a".to_string(), Extracted::Dir);
        seen.insert("a/b".to_string(), Extracted::Symlink("..".into()));
        seen.insert("c".to_string(), Extracted::Symlink("a/b/..".into()));
        assert!(matches!(
            resolve_in_tree(&seen, "a/b", ".."),
            Resolution::Inside
        ));
        assert!(matches!(
            resolve_in_tree(&seen, "c", "a/b/.."),
            Resolution::Escapes
        ));
        seen.insert("x".to_string(), Extracted::Symlink("y".into()));
        seen.insert("y".to_string(), Extracted::Symlink("x".into()));
        assert!(matches!(resolve_in_tree(&seen, "x", "y"), Resolution::Loop));
    }

    /// A directory above pending ones swapped for a symlink to a directory outside the tree,
    /// after it was listed: the pending directories are reached through the symlink if looked
    /// up by their paths. Nothing from outside the tree may be read: each file, and each
    /// directory below, is refused as replaced, naming its path in the tree.
    #[test]
    fn ancestor_swapped_for_a_symlink_mid_walk_reads_nothing_from_elsewhere() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path().join("root");
        let outside = d.path().join("outside");
        for tree in [&root.join("a"), &outside] {
            fs::create_dir_all(tree.join("b/z")).unwrap();
        }
        fs::write(root.join("a/b/f"), "walked").unwrap();
        fs::write(root.join("a/b/z/g"), "walked").unwrap();
        fs::write(outside.join("b/f"), "secret").unwrap();
        fs::write(outside.join("b/z/g"), "secret").unwrap();
        let mut walk = Walk::new(&root, &[], Exclusions::default())
            .unwrap()
            .in_dirs();
        let (a, _) = walk.next().unwrap().unwrap();
        assert_eq!(a.rel, "a");
        // "a" is listed (its child "b" pending); now its path leads outside.
        fs::rename(root.join("a"), d.path().join("moved")).unwrap();
        std::os::unix::fs::symlink(&outside, root.join("a")).unwrap();
        let (mut read, mut refused) = (Vec::new(), Vec::new());
        for found in walk {
            let (entry, dir) = match found {
                Ok(found) => found,
                Err(e) => {
                    refused.push(e.to_string());
                    break;
                }
            };
            if let SourceKind::File { .. } = entry.kind {
                let expected = entry.identity.as_ref();
                let opened = match &dir {
                    Some(dir) => crate::input::open_walked_in(dir, &entry.path, expected),
                    None => crate::input::open_walked(&entry.path, expected),
                };
                match opened {
                    Ok(mut file) => {
                        let mut text = String::new();
                        std::io::Read::read_to_string(&mut file, &mut text).unwrap();
                        read.push(text);
                    }
                    Err(e) => refused.push(e.to_string()),
                }
            }
        }
        assert!(!read.iter().any(|t| t == "secret"), "{read:?}");
        let file = format!("{}: ", root.join("a/b/f").display());
        let dir = format!("{}: ", root.join("a/b/z").display());
        assert!(refused[0].starts_with(&file), "{refused:?}");
        assert!(
            refused[0].contains("replaced by another file"),
            "{refused:?}"
        );
        assert!(refused[1].starts_with(&dir), "{refused:?}");
        assert!(
            refused[1].contains("replaced by another directory"),
            "{refused:?}"
        );
    }
}
