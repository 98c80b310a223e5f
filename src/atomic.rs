//! Atomic outputs: temporary files and directories beside the destination, renamed into place on
//! success and removed on failure or interrupt, so no partial output or stray temp file remains.

use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use crate::error::{Error, IoResultExt, Result};

/// Paths that must be removed if the process is interrupted.
static PENDING: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// Remember `path` for removal on interrupt.
pub fn register(path: &Path) {
    PENDING
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(path.to_path_buf());
}

/// Forget `path` (it was renamed into place or removed).
pub fn unregister(path: &Path) {
    PENDING
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .retain(|p| p != path);
}

/// Remove every registered temporary path. Called from the interrupt handler; safe to call
/// more than once.
pub fn cleanup_pending() {
    INTERRUPTED.store(true, Ordering::SeqCst);
    let paths = std::mem::take(&mut *PENDING.lock().unwrap_or_else(|e| e.into_inner()));
    for p in paths {
        let _ = remove_any(&p);
    }
}

/// Whether an interrupt was received.
pub fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}

/// Return `Err(Error::Interrupted)` once an interrupt was received.
pub fn check_interrupt() -> Result<()> {
    if interrupted() {
        Err(Error::Interrupted)
    } else {
        Ok(())
    }
}

fn remove_any(p: &Path) -> std::io::Result<()> {
    match fs::symlink_metadata(p) {
        Ok(m) if m.is_dir() => fs::remove_dir_all(p),
        Ok(_) => fs::remove_file(p),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// The directory an output lands in (`.` for a bare file name).
fn parent_of(dest: &Path) -> PathBuf {
    match dest.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

fn temp_name(dest: &Path, what: &str) -> PathBuf {
    let base = dest
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "out".into());
    let unique = format!(
        "{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    );
    parent_of(dest).join(format!(".{base}.{what}-{unique}.tmp"))
}

static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// A file being written beside its destination; removed on drop unless committed.
pub struct AtomicFile {
    temp: PathBuf,
    dest: PathBuf,
    file: Option<File>,
}

impl AtomicFile {
    /// Create a temporary file beside `dest`.
    pub fn create(dest: &Path) -> Result<Self> {
        check_writable_dir(dest)?;
        let temp = temp_name(dest, "partial");
        register(&temp);
        let file = fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&temp);
        let file = match file {
            Ok(f) => f,
            Err(e) => {
                unregister(&temp);
                return Err(Error::io(dest, e));
            }
        };
        Ok(AtomicFile {
            temp,
            dest: dest.to_path_buf(),
            file: Some(file),
        })
    }

    /// The open temporary file.
    pub fn file(&mut self) -> &mut File {
        self.file.as_mut().expect("file present until commit")
    }

    /// The open temporary file, shared.
    pub fn file_ref(&self) -> &File {
        self.file.as_ref().expect("file present until commit")
    }

    /// The destination path.
    pub fn dest(&self) -> &Path {
        &self.dest
    }

    /// Flush to disk and rename over the destination.
    pub fn commit(mut self) -> Result<()> {
        check_interrupt()?;
        let file = self.file.take().expect("file present until commit");
        file.sync_all().at(&self.dest)?;
        drop(file);
        fs::rename(&self.temp, &self.dest).at(&self.dest)?;
        unregister(&self.temp);
        Ok(())
    }
}

impl Drop for AtomicFile {
    fn drop(&mut self) {
        if self.file.is_some() {
            self.file = None;
            let _ = fs::remove_file(&self.temp);
            unregister(&self.temp);
        }
    }
}

/// A directory being filled beside its destination; removed on drop unless committed.
pub struct AtomicDir {
    temp: PathBuf,
    dest: PathBuf,
    done: bool,
}

impl AtomicDir {
    /// Create an empty temporary directory beside `dest`.
    pub fn create(dest: &Path) -> Result<Self> {
        check_writable_dir(dest)?;
        let temp = temp_name(dest, "partial");
        register(&temp);
        if let Err(e) = fs::create_dir(&temp) {
            unregister(&temp);
            return Err(Error::io(dest, e));
        }
        Ok(AtomicDir {
            temp,
            dest: dest.to_path_buf(),
            done: false,
        })
    }

    /// The temporary directory to fill.
    pub fn path(&self) -> &Path {
        &self.temp
    }

    /// The destination path.
    pub fn dest(&self) -> &Path {
        &self.dest
    }

    /// Move the directory into place, replacing an existing destination directory only now that
    /// the new one is complete.
    pub fn commit(mut self) -> Result<()> {
        check_interrupt()?;
        let old = match fs::symlink_metadata(&self.dest) {
            Ok(m) if m.is_dir() => {
                let old = temp_name(&self.dest, "old");
                register(&old);
                fs::rename(&self.dest, &old).at(&self.dest)?;
                Some(old)
            }
            Ok(_) => return Err(Error::invalid(&self.dest, "exists and is not a directory")),
            Err(_) => None,
        };
        if let Err(e) = fs::rename(&self.temp, &self.dest) {
            if let Some(old) = &old {
                let _ = fs::rename(old, &self.dest);
                unregister(old);
            }
            return Err(Error::io(&self.dest, e));
        }
        unregister(&self.temp);
        self.done = true;
        if let Some(old) = old {
            let _ = fs::remove_dir_all(&old);
            unregister(&old);
        }
        Ok(())
    }
}

impl Drop for AtomicDir {
    fn drop(&mut self) {
        if !self.done {
            let _ = fs::remove_dir_all(&self.temp);
            unregister(&self.temp);
        }
    }
}

/// A scratch directory (e.g. an extracted archive) that is removed on drop and on interrupt.
pub struct ScratchDir {
    dir: tempfile::TempDir,
}

impl ScratchDir {
    /// Create a scratch directory in the system temp directory.
    pub fn new() -> Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix(".cnbpkg-")
            .tempdir()
            .map_err(|e| Error::io(std::env::temp_dir(), e))?;
        register(dir.path());
        Ok(ScratchDir { dir })
    }

    /// Its path.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        unregister(self.dir.path());
    }
}

/// Fail early, with the output's name, when its directory is missing or not writable.
fn check_writable_dir(dest: &Path) -> Result<()> {
    let parent = parent_of(dest);
    let meta = fs::metadata(&parent).map_err(|e| Error::io(dest, e))?;
    if !meta.is_dir() {
        return Err(Error::invalid(
            dest,
            format!("{} is not a directory", parent.display()),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn uncommitted_file_leaves_nothing() {
        let d = tempfile::tempdir().unwrap();
        let dest = d.path().join("out.cnb");
        {
            let mut f = AtomicFile::create(&dest).unwrap();
            f.file().write_all(b"partial").unwrap();
        }
        assert_eq!(fs::read_dir(d.path()).unwrap().count(), 0);
    }

    #[test]
    fn committed_file_replaces_destination() {
        let d = tempfile::tempdir().unwrap();
        let dest = d.path().join("out.cnb");
        fs::write(&dest, b"old").unwrap();
        let mut f = AtomicFile::create(&dest).unwrap();
        f.file().write_all(b"new").unwrap();
        f.commit().unwrap();
        assert_eq!(fs::read(&dest).unwrap(), b"new");
        assert_eq!(fs::read_dir(d.path()).unwrap().count(), 1);
    }

    #[test]
    fn committed_dir_replaces_destination_dir() {
        let d = tempfile::tempdir().unwrap();
        let dest = d.path().join("layout");
        fs::create_dir(&dest).unwrap();
        fs::write(dest.join("stale"), b"x").unwrap();
        let a = AtomicDir::create(&dest).unwrap();
        fs::write(a.path().join("fresh"), b"y").unwrap();
        a.commit().unwrap();
        assert!(dest.join("fresh").exists());
        assert!(!dest.join("stale").exists());
        assert_eq!(fs::read_dir(d.path()).unwrap().count(), 1);
    }
}
