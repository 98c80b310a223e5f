//! Opening input files without trusting what is at the path: a FIFO must not block us, a device
//! must not be read, and a file walked earlier must still be the same file when it is read.

use std::fs::{self, File, OpenOptions};
use std::io::Read;
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::Path;

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
    let (file, meta) = open_checked(path, libc::O_NOFOLLOW).map_err(|e| match e {
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

    #[test]
    fn walked_file_swapped_for_symlink_or_fifo_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, b"walked").unwrap();
        let id = FileIdentity::of(&std::fs::symlink_metadata(&path).unwrap());
        assert!(open_walked(&path, Some(&id)).is_ok());

        // Swapped for a symlink to another file: not followed. The walked file stays alive
        // under another name, so no later file can reuse its inode number.
        let secret = dir.path().join("secret");
        std::fs::write(&secret, b"secret").unwrap();
        std::fs::rename(&path, dir.path().join("walked-original")).unwrap();
        std::os::unix::fs::symlink(&secret, &path).unwrap();
        let e = open_walked(&path, Some(&id)).unwrap_err().to_string();
        assert!(e.contains("replaced by a symlink"), "{e}");

        // Swapped for a FIFO: refused at once, without waiting for a writer.
        std::fs::remove_file(&path).unwrap();
        mkfifo(&path);
        let e = open_walked(&path, Some(&id)).unwrap_err().to_string();
        assert!(e.contains("FIFO"), "{e}");

        // Swapped for another regular file, or grown.
        let other = dir.path().join("other");
        std::fs::write(&other, b"walked").unwrap();
        std::fs::rename(&other, &path).unwrap();
        let e = open_walked(&path, Some(&id)).unwrap_err().to_string();
        assert!(e.contains("replaced by another file"), "{e}");
        let id = FileIdentity::of(&std::fs::symlink_metadata(&path).unwrap());
        std::fs::write(&path, b"walked and grown").unwrap();
        let e = open_walked(&path, Some(&id)).unwrap_err().to_string();
        assert!(e.contains("changed size"), "{e}");
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
