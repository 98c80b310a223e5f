//! Opening input files without trusting what is at the path: a FIFO must not block us, a device
//! must not be read, and a file walked earlier must still be the same file when it is read.

use std::ffi::CString;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read};
use std::os::fd::{AsRawFd, FromRawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::Path;
use std::sync::Arc;

use crate::error::{Error, IoResultExt, Result};

/// What a walked regular file was: a later open must find the same file, unchanged in size.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FileIdentity {
    /// Device of the file system holding it.
    pub dev: u64,
    /// Inode number.
    pub ino: u64,
    /// Size in bytes.
    pub size: u64,
}

impl FileIdentity {
    /// The identity recorded in `meta`.
    pub fn of(meta: &std::fs::Metadata) -> Self {
        FileIdentity {
            dev: meta.dev(),
            ino: meta.ino(),
            size: meta.len(),
        }
    }
}

/// The kind of a non-regular file, for messages.
fn kind_of(ft: std::fs::FileType) -> &'static str {
    if ft.is_fifo() {
        "a FIFO (named pipe)"
    } else if ft.is_socket() {
        "a socket"
    } else if ft.is_char_device() || ft.is_block_device() {
        "a device"
    } else if ft.is_dir() {
        "a directory"
    } else if ft.is_symlink() {
        "a symlink"
    } else {
        "not a regular file"
    }
}

/// Open `path` (a symlink the user named is followed) for reading, refusing anything but a
/// regular file. `O_NONBLOCK` makes opening a FIFO return at once instead of waiting for a
/// writer; the handle's own metadata then decides, so nothing swapped in after a check is read.
pub fn open_regular(path: &Path) -> Result<File> {
    open_checked(path, 0).map(|(file, _)| file)
}

/// The largest text file (`buildpack.toml`, `package.toml`) read into memory. Real descriptors
/// are kilobytes (Paketo's longest, with every dependency listed, is under 1 MiB); without a
/// bound a sparse multi-gigabyte file would be read whole. Twice the largest config a reader
/// accepts, so a descriptor too large for that limit is still refused with the config's message.
pub const MAX_TEXT_FILE: u64 = 64 << 20;

/// Read a text file named by the user (or found in an input) after [`open_regular`]'s checks,
/// at most [`MAX_TEXT_FILE`] bytes; errors name `shown`.
pub fn read_text(path: &Path, shown: &Path) -> Result<String> {
    let (file, _) = open_checked(path, 0).map_err(|e| rename(e, path, shown))?;
    let mut text = String::new();
    file.take(MAX_TEXT_FILE + 1)
        .read_to_string(&mut text)
        .at(shown)?;
    if text.len() as u64 > MAX_TEXT_FILE {
        return Err(Error::invalid(
            shown,
            format!(
                "is larger than the {} MiB limit for descriptor files; refusing to read it",
                MAX_TEXT_FILE >> 20
            ),
        ));
    }
    Ok(text)
}

/// Read a whole (small) file named by the user or found by convention (a CA certificate, a
/// credentials file) after [`open_regular`]'s checks; more than `limit` bytes is an error.
pub fn read_bytes(path: &Path, limit: u64) -> Result<Vec<u8>> {
    let (file, _) = open_checked(path, 0)?;
    let mut bytes = Vec::new();
    file.take(limit.saturating_add(1))
        .read_to_end(&mut bytes)
        .at(path)?;
    if bytes.len() as u64 > limit {
        return Err(Error::invalid(
            path,
            format!("is larger than {limit} bytes; refusing to read it"),
        ));
    }
    Ok(bytes)
}

/// Open a file found by a directory walk for reading: never through a symlink (`O_NOFOLLOW`),
/// never blocking (`O_NONBLOCK`), and only if the handle is the very regular file the walk saw
/// (same device, inode and size, when the walk recorded them); anything else means the tree
/// changed under us.
pub fn open_walked(path: &Path, expected: Option<&FileIdentity>) -> Result<File> {
    check_walked(open_checked(path, libc::O_NOFOLLOW), path, expected)
}

/// How many files the process may have open (the soft `RLIMIT_NOFILE`), if it can be read: a
/// walk sizes what it holds open ahead by it.
pub(crate) fn open_files_limit() -> Option<u64> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit only writes the struct it is given.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return None;
    }
    Some(limit.rlim_cur)
}

/// A directory a walk holds open, in which the files it lists are opened by name
/// ([`open_walked_in`]): the kernel looks up one name instead of every component of the path
/// again, and the file opened is the one in that very directory, whatever happens to the path
/// above it.
#[derive(Clone, Debug)]
pub(crate) struct OpenDir(Arc<File>);

impl OpenDir {
    /// Hold the directory `path` open for lookups only (`O_PATH`: nothing can be read through
    /// the handle itself); through a symlink only if `follow` (a walk's root, which the walk
    /// follows too).
    pub(crate) fn open(path: &Path, follow: bool) -> io::Result<OpenDir> {
        let nofollow = if follow { 0 } else { libc::O_NOFOLLOW };
        let dir = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC | nofollow)
            .open(path)?;
        Ok(OpenDir(Arc::new(dir)))
    }

    /// The directory `path` found in this one, opened by its last name and held like this one,
    /// if it is still the directory the walk saw there (`seen`): the files of a directory
    /// reached this way from the walk's root are the walked ones, whatever happens to the paths
    /// above them. `None` when the process may open no more files (the walk goes on by path).
    pub(crate) fn open_child(&self, path: &Path, seen: &fs::Metadata) -> Result<Option<OpenDir>> {
        let flags = libc::O_PATH | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC;
        let dir = match open_at(self, path, flags) {
            Ok(dir) => dir,
            Err(Error::Io { source, .. })
                if matches!(source.raw_os_error(), Some(libc::EMFILE | libc::ENFILE)) =>
            {
                return Ok(None);
            }
            Err(Error::Io { source, .. })
                if matches!(source.raw_os_error(), Some(libc::ENOTDIR | libc::ELOOP)) =>
            {
                return Err(Error::invalid(
                    path,
                    "was replaced by a symlink or a file after the tree was read; refusing to follow it",
                ));
            }
            Err(e) => return Err(e),
        };
        let meta = dir.metadata().at(path)?;
        if (meta.dev(), meta.ino()) != (seen.dev(), seen.ino()) {
            return Err(Error::invalid(
                path,
                "was replaced by another directory after the tree was read",
            ));
        }
        Ok(Some(OpenDir(Arc::new(dir))))
    }
}

/// [`open_walked`] for the file at `path`, found in `dir`: opened by its last name relative to
/// the held directory, with the same checks.
pub(crate) fn open_walked_in(
    dir: &OpenDir,
    path: &Path,
    expected: Option<&FileIdentity>,
) -> Result<File> {
    let flags = libc::O_RDONLY | libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC;
    let opened = open_at(dir, path, flags).and_then(|file| {
        let meta = file.metadata().at(path)?;
        regular(file, meta, path)
    });
    check_walked(opened, path, expected)
}

/// `openat(dir, <last name of path>, flags)`.
fn open_at(dir: &OpenDir, path: &Path, flags: i32) -> Result<File> {
    let name = path
        .file_name()
        .ok_or_else(|| Error::invalid(path, "has no file name to open"))?;
    let name = CString::new(name.as_bytes())
        .map_err(|_| Error::invalid(path, "file name contains NUL"))?;
    loop {
        // SAFETY: the directory handle is open for the call (the Arc holds it) and `name` is a
        // NUL-terminated string that outlives it.
        let fd = unsafe { libc::openat(dir.0.as_raw_fd(), name.as_ptr(), flags) };
        if fd >= 0 {
            // SAFETY: `fd` was just returned by openat and is owned by nothing else.
            return Ok(unsafe { File::from_raw_fd(fd) });
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(Error::io(path, e));
        }
    }
}

/// The checks of [`open_walked`] on a file just opened (or the failure to open it).
fn check_walked(
    opened: Result<(File, fs::Metadata)>,
    path: &Path,
    expected: Option<&FileIdentity>,
) -> Result<File> {
    let (file, meta) = opened.map_err(|e| match e {
        Error::Io { source, .. } if source.raw_os_error() == Some(libc::ELOOP) => Error::invalid(
            path,
            "was replaced by a symlink after the tree was read; refusing to follow it",
        ),
        Error::Invalid { message, .. } => Error::invalid(
            path,
            format!("was replaced after the tree was read: it is now {message}"),
        ),
        e => e,
    })?;
    let Some(expected) = expected else {
        return Ok(file);
    };
    let found = FileIdentity::of(&meta);
    if (found.dev, found.ino) != (expected.dev, expected.ino) {
        return Err(Error::invalid(
            path,
            "was replaced by another file after the tree was read",
        ));
    }
    if found.size != expected.size {
        return Err(Error::invalid(
            path,
            format!(
                "changed size after the tree was read ({} bytes, now {})",
                expected.size, found.size
            ),
        ));
    }
    Ok(file)
}

/// Open `path` and check it is a regular file; the file and what its handle says of it.
fn open_checked(path: &Path, extra_flags: i32) -> Result<(File, fs::Metadata)> {
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC | extra_flags)
        .open(path)
        .at(path)?;
    let meta = file.metadata().at(path)?;
    regular(file, meta, path)
}

/// `file` and its metadata if it is a regular file; an error naming `path` otherwise.
fn regular(file: File, meta: fs::Metadata, path: &Path) -> Result<(File, fs::Metadata)> {
    if !meta.is_file() {
        let kind = kind_of(meta.file_type());
        return Err(Error::invalid(
            path,
            format!("{kind}, not a regular file; only regular files can be read"),
        ));
    }
    Ok((file, meta))
}

fn rename(e: Error, from: &Path, to: &Path) -> Error {
    match e {
        Error::Io { path, source } if path == from => Error::io(to, source),
        Error::Invalid { path, message } if path == from => Error::invalid(to, message),
        e => e,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::CString;
    use std::os::unix::ffi::OsStrExt;

    fn mkfifo(path: &Path) {
        let c = CString::new(path.as_os_str().as_bytes()).unwrap();
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0);
    }

    /// The swaps a walked file may suffer before it is read, through `open` (by path, or by
    /// name in its held directory).
    fn refuses_swapped_files(open: &dyn Fn(&Path, &Path, &FileIdentity) -> Result<File>) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, b"walked").unwrap();
        let id = FileIdentity::of(&std::fs::symlink_metadata(&path).unwrap());
        assert!(open(dir.path(), &path, &id).is_ok());

        // Swapped for a symlink to another file: not followed. The walked file stays alive
        // under another name, so no later file can reuse its inode number.
        let secret = dir.path().join("secret");
        std::fs::write(&secret, b"secret").unwrap();
        std::fs::rename(&path, dir.path().join("walked-original")).unwrap();
        std::os::unix::fs::symlink(&secret, &path).unwrap();
        let e = open(dir.path(), &path, &id).unwrap_err().to_string();
        assert!(e.contains("replaced by a symlink"), "{e}");

        // Swapped for a FIFO: refused at once, without waiting for a writer.
        std::fs::remove_file(&path).unwrap();
        mkfifo(&path);
        let e = open(dir.path(), &path, &id).unwrap_err().to_string();
        assert!(e.contains("FIFO"), "{e}");

        // Swapped for a directory.
        std::fs::remove_file(&path).unwrap();
        std::fs::create_dir(&path).unwrap();
        let e = open(dir.path(), &path, &id).unwrap_err().to_string();
        assert!(e.contains("it is now a directory"), "{e}");
        std::fs::remove_dir(&path).unwrap();

        // Swapped for another regular file, or grown.
        let other = dir.path().join("other");
        std::fs::write(&other, b"walked").unwrap();
        std::fs::rename(&other, &path).unwrap();
        let e = open(dir.path(), &path, &id).unwrap_err().to_string();
        assert!(e.contains("replaced by another file"), "{e}");
        let id = FileIdentity::of(&std::fs::symlink_metadata(&path).unwrap());
        std::fs::write(&path, b"walked and grown").unwrap();
        let e = open(dir.path(), &path, &id).unwrap_err().to_string();
        assert!(e.contains("changed size"), "{e}");
        assert!(e.starts_with(&path.display().to_string()), "{e}");
    }

    #[test]
    fn walked_file_swapped_for_symlink_or_fifo_is_refused() {
        refuses_swapped_files(&|_, path, id| open_walked(path, Some(id)));
    }

    #[test]
    fn walked_file_opened_in_its_directory_is_refused_when_swapped() {
        refuses_swapped_files(&|dir, path, id| {
            open_walked_in(&OpenDir::open(dir, false).unwrap(), path, Some(id))
        });
    }

    /// A file opened by name in its held directory is the one in that directory, even when the
    /// directory's path is made to lead elsewhere afterwards.
    #[test]
    fn walked_file_is_opened_in_the_directory_the_walk_listed() {
        let root = tempfile::tempdir().unwrap();
        let listed = root.path().join("d");
        std::fs::create_dir(&listed).unwrap();
        let path = listed.join("f");
        std::fs::write(&path, b"listed").unwrap();
        let id = FileIdentity::of(&std::fs::symlink_metadata(&path).unwrap());
        let held = OpenDir::open(&listed, false).unwrap();
        // The directory's path now leads to another directory with a file of the same name.
        let elsewhere = root.path().join("elsewhere");
        std::fs::create_dir(&elsewhere).unwrap();
        std::fs::write(elsewhere.join("f"), b"planted").unwrap();
        std::fs::rename(&listed, root.path().join("moved")).unwrap();
        std::os::unix::fs::symlink(&elsewhere, &listed).unwrap();
        let mut text = String::new();
        open_walked_in(&held, &path, Some(&id))
            .unwrap()
            .read_to_string(&mut text)
            .unwrap();
        assert_eq!(text, "listed");
        // By path, the planted file is found, and refused as another file.
        let e = open_walked(&path, Some(&id)).unwrap_err().to_string();
        assert!(e.contains("replaced by another file"), "{e}");
        // A held directory is never reached through a symlink unless asked to follow one.
        assert!(OpenDir::open(&listed, false).is_err());
        assert!(OpenDir::open(&listed, true).is_ok());
    }

    #[test]
    fn fifo_input_is_refused_without_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p");
        mkfifo(&path);
        let e = open_regular(&path).unwrap_err().to_string();
        assert!(e.contains("FIFO"), "{e}");
        let e = read_text(&path, Path::new("shown"))
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("shown: "), "{e}");
    }
}
