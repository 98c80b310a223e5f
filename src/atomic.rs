//! Atomic outputs: temporary files and directories beside the destination, renamed into place on
//! success and removed on failure or interrupt, so no partial output or stray temp file remains.
//!
//! # Interrupts
//!
//! Every step that writes an output checks the operation's [`crate::cancel::Cancel`] token;
//! once it is cancelled the step fails with [`Error::Interrupted`] and the temporary files and
//! scratch directories are dropped on the way out. Each temporary path is also registered here,
//! process-wide, so that a signal handler can remove them itself when the process must exit at
//! once ([`on_signal`]: nothing being written, or a second signal).
//!
//! # Temporary files of killed processes
//!
//! A process killed by `SIGKILL` (or `SIGXFSZ`, or a crash) cannot clean up. Its temporary
//! names carry its PID (`.NAME.partial-PID-RANDOM.tmp` beside the output, `.cnbpkg-PID-RANDOM` in
//! the system temp directory), and every new output or scratch directory first reaps those of
//! processes that are gone. `O_TMPFILE` + `linkat` would keep a file invisible, but it exists
//! only for files: an OCI layout output is a directory and needs a visible temporary name
//! anyway, and some file systems (NFS, FUSE, older overlayfs) lack `O_TMPFILE`. One mechanism
//! that works for both is simpler to trust. A name is reaped only if it matches this module's
//! pattern exactly, belongs to the current user, its PID does not exist, and an exclusive `flock`
//! on it succeeds: every owner holds that lock for its whole life, so a live owner in another
//! PID namespace (a container sharing the directory) or on another host keeps its files.

use std::collections::hash_map::RandomState;
use std::fs::{self, File};
use std::hash::{BuildHasher, Hasher};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;

use crate::error::{Error, IoResultExt, Result};

/// Paths that must be removed if the process is interrupted.
static PENDING: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());
/// Whether a signal was received already: a second one exits at once.
static SIGNALLED: AtomicBool = AtomicBool::new(false);

/// Remember `path` for removal on interrupt. Refused once an interrupt was received, so nothing
/// new is created while the process winds down.
pub fn register(path: &Path) -> Result<()> {
    let mut pending = PENDING.lock().unwrap_or_else(|e| e.into_inner());
    if interrupted() {
        return Err(Error::Interrupted);
    }
    pending.push(path.to_path_buf());
    Ok(())
}

/// Forget `path` (it was renamed into place or removed).
pub fn unregister(path: &Path) {
    PENDING
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .retain(|p| p != path);
}

/// For a binary's handler of `SIGINT`, `SIGTERM` and `SIGHUP`: cancel `token` (the one given
/// to the operation), and return `true` when the process should exit now because nothing is
/// being written or this is a repeated signal; every temporary path registered for removal has
/// then been removed. Otherwise the working thread stops at its next check and cleans up as it
/// returns.
pub fn on_signal(token: &crate::cancel::Cancel) -> bool {
    token.cancel();
    let mut pending = PENDING.lock().unwrap_or_else(|e| e.into_inner());
    let repeated = SIGNALLED.swap(true, Ordering::SeqCst);
    if pending.is_empty() || repeated {
        for p in std::mem::take(&mut *pending) {
            let _ = remove_any(&p);
        }
        return true;
    }
    false
}

/// Whether the operation running on this thread was cancelled.
pub fn interrupted() -> bool {
    crate::cancel::cancelled()
}

/// Return `Err(Error::Interrupted)` once the operation running on this thread was cancelled.
pub fn check_interrupt() -> Result<()> {
    crate::cancel::check()
}

/// The I/O error a long read or write returns once an interrupt was received. Not
/// `ErrorKind::Interrupted`, which `read_exact`/`write_all` would retry forever.
pub fn interrupted_io_error() -> io::Error {
    io::Error::other("interrupted")
}

/// A reader that fails as soon as an interrupt was received, so a long copy stops promptly.
pub struct InterruptibleReader<R>(pub R);

impl<R: io::Read> io::Read for InterruptibleReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if interrupted() {
            return Err(interrupted_io_error());
        }
        self.0.read(buf)
    }
}

/// Remove a file or a directory tree.
fn remove_any(p: &Path) -> io::Result<()> {
    match fs::symlink_metadata(p) {
        Ok(m) if m.is_dir() => fs::remove_dir_all(p),
        Ok(_) => fs::remove_file(p),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// The directory an output lands in (`.` for a bare file name).
pub(crate) fn parent_of(dest: &Path) -> PathBuf {
    match dest.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

static NEXT: AtomicU64 = AtomicU64::new(0);

/// 64 random bits for a temporary name (std's per-process random hash keys, mixed with a
/// counter), so a name never collides with a stale one left by an earlier process of the same
/// PID.
fn random_u64() -> u64 {
    let mut h = RandomState::new().build_hasher();
    h.write_u64(NEXT.fetch_add(1, Ordering::Relaxed));
    h.write_u32(std::process::id());
    h.finish()
}

/// Fresh random names tried before giving up (a collision is already astronomically unlikely).
const MAX_ATTEMPTS: u32 = 16;

/// What a temporary name beside an output holds.
const TEMP_KINDS: [&str; 2] = ["partial", "old"];

fn temp_name(dest: &Path, what: &str) -> PathBuf {
    let base = dest
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "out".into());
    parent_of(dest).join(format!(
        ".{base}.{what}-{}-{:016x}.tmp",
        std::process::id(),
        random_u64()
    ))
}

/// The PID of a `PID-RANDOM` name part: a decimal PID, then 16 lowercase hex digits (or, in the
/// names cnbpkg 0.1.0 made, a decimal counter, so that its leftovers are reaped too).
fn parse_pid_random(pid: &str, random: &str, legacy_counter: bool) -> Option<u32> {
    let hex = random.len() == 16
        && random
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    let counter = legacy_counter
        && !random.is_empty()
        && random.len() <= 20
        && random.bytes().all(|b| b.is_ascii_digit());
    let random_ok = hex || counter;
    let pid_ok = !pid.is_empty() && pid.len() <= 10 && pid.bytes().all(|b| b.is_ascii_digit());
    if random_ok && pid_ok {
        pid.parse().ok()
    } else {
        None
    }
}

/// If `name` is a temporary name made by this module (`.BASE.KIND-PID-RANDOM.tmp`), its base
/// name and PID.
fn parse_temp_name(name: &str) -> Option<(&str, u32)> {
    let inner = name.strip_prefix('.')?.strip_suffix(".tmp")?;
    let (rest, random) = inner.rsplit_once('-')?;
    let (head, pid) = rest.rsplit_once('-')?;
    let pid = parse_pid_random(pid, random, true)?;
    let (base, kind) = head.rsplit_once('.')?;
    if base.is_empty() || !TEMP_KINDS.contains(&kind) {
        return None;
    }
    Some((base, pid))
}

/// Whether `name` is one of the temporary names this module makes beside an output named `base`.
pub fn is_temp_of(base: &str, name: &str) -> bool {
    parse_temp_name(name).is_some_and(|(b, _)| b == base)
}

/// Prefix of scratch directories in the system temp directory.
const SCRATCH_PREFIX: &str = ".cnbpkg-";

/// Whether `name` is the name of a scratch directory made by [`ScratchDir`].
pub fn is_scratch_name(name: &str) -> bool {
    parse_scratch_name(name).is_some()
}

fn parse_scratch_name(name: &str) -> Option<u32> {
    let (pid, random) = name.strip_prefix(SCRATCH_PREFIX)?.split_once('-')?;
    parse_pid_random(pid, random, false)
}

/// Whether a process with this PID exists (in this PID namespace). Unknown counts as alive.
fn pid_alive(pid: u32) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return true;
    };
    if pid <= 0 {
        return true;
    }
    // SAFETY: signal 0 only checks whether the process exists; nothing is sent.
    let r = unsafe { libc::kill(pid, 0) };
    r == 0 || io::Error::last_os_error().raw_os_error() != Some(libc::ESRCH)
}

/// Take an exclusive lock on an open file or directory without waiting.
fn try_lock(f: &File) -> bool {
    // SAFETY: plain syscall on a valid, open file descriptor.
    unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) == 0 }
}

/// Remove the temporary files and directories in `dir` that processes which no longer exist
/// left behind; `pid_of` recognises this module's names. Anything else is left alone, and every
/// failure is ignored (reaping is housekeeping, never a reason to fail).
fn reap_stale(dir: &Path, pid_of: impl Fn(&str) -> Option<u32>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    // SAFETY: geteuid has no preconditions.
    let uid = unsafe { libc::geteuid() };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(&pid_of) else {
            continue;
        };
        if pid_alive(pid) {
            continue;
        }
        let path = entry.path();
        let Ok(handle) = fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC)
            .open(&path)
        else {
            continue;
        };
        let Ok(meta) = handle.metadata() else {
            continue;
        };
        if !(meta.is_file() || meta.is_dir()) || meta.uid() != uid || !try_lock(&handle) {
            continue;
        }
        // Still the same file at that name (not replaced between the checks)?
        let same = fs::symlink_metadata(&path)
            .is_ok_and(|m| m.dev() == meta.dev() && m.ino() == meta.ino());
        if same {
            let _ = remove_any(&path);
        }
    }
}

/// Remove the temporary files this module made in `dir` for processes that are gone (what
/// a new output there does first; a store's garbage collection does it for its blobs).
pub(crate) fn reap_stale_temps(dir: &Path) {
    reap_stale(dir, |n| parse_temp_name(n).map(|(_, pid)| pid));
}

/// Create a new temporary file or directory beside `dest`, locked, registered for removal on
/// interrupt, after reaping stale ones of dead processes.
fn create_temp(dest: &Path, dir: bool) -> Result<(PathBuf, File)> {
    let parent = parent_of(dest);
    reap_stale(&parent, |n| parse_temp_name(n).map(|(_, pid)| pid));
    let mut attempts = 0;
    loop {
        attempts += 1;
        let temp = temp_name(dest, "partial");
        register(&temp)?;
        let made = if dir {
            fs::DirBuilder::new()
                .mode(0o755)
                .create(&temp)
                .and_then(|()| File::open(&temp))
        } else {
            fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create_new(true)
                .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
                .open(&temp)
        };
        match made {
            Ok(handle) => {
                // The lock tells a reaper that this temporary name has a live owner.
                try_lock(&handle);
                return Ok((temp, handle));
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists && attempts < MAX_ATTEMPTS => {
                unregister(&temp)
            }
            Err(e) => {
                if dir && e.kind() != io::ErrorKind::AlreadyExists {
                    let _ = fs::remove_dir(&temp);
                }
                unregister(&temp);
                return Err(Error::io(dest, e));
            }
        }
    }
}

/// A file being written beside its destination; removed on drop unless committed.
pub struct AtomicFile {
    temp: PathBuf,
    dest: PathBuf,
    file: File,
    done: bool,
}

impl AtomicFile {
    /// Create a temporary file beside `dest`.
    pub fn create(dest: &Path) -> Result<Self> {
        check_writable_dir(dest)?;
        let (temp, file) = create_temp(dest, false)?;
        Ok(AtomicFile {
            temp,
            dest: dest.to_path_buf(),
            file,
            done: false,
        })
    }

    /// The open temporary file.
    pub fn file(&mut self) -> &mut File {
        &mut self.file
    }

    /// The open temporary file, shared.
    pub fn file_ref(&self) -> &File {
        &self.file
    }

    /// The destination path.
    pub fn dest(&self) -> &Path {
        &self.dest
    }

    /// Flush to disk; the file is complete and waits to be moved into place by `commit_all`.
    pub fn stage(mut self) -> Result<Staged> {
        check_interrupt()?;
        self.file.sync_all().at(&self.dest)?;
        let lock = self.file.try_clone().at(&self.dest)?;
        self.done = true;
        Ok(Staged {
            temp: self.temp.clone(),
            dest: self.dest.clone(),
            dir: false,
            _lock: lock,
            installed: false,
        })
    }

    /// Flush to disk and rename over the destination.
    pub fn commit(self) -> Result<()> {
        commit_all(vec![self.stage()?])
    }
}

impl Drop for AtomicFile {
    fn drop(&mut self) {
        if !self.done {
            let _ = fs::remove_file(&self.temp);
            unregister(&self.temp);
        }
    }
}

/// A directory being filled beside its destination; removed on drop unless committed.
pub struct AtomicDir {
    temp: PathBuf,
    dest: PathBuf,
    lock: File,
    done: bool,
}

impl AtomicDir {
    /// Create an empty temporary directory beside `dest`.
    pub fn create(dest: &Path) -> Result<Self> {
        check_writable_dir(dest)?;
        let (temp, lock) = create_temp(dest, true)?;
        Ok(AtomicDir {
            temp,
            dest: dest.to_path_buf(),
            lock,
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

    /// The directory is complete and waits to be moved into place by [`commit_all`].
    pub fn stage(mut self) -> Result<Staged> {
        check_interrupt()?;
        let lock = self.lock.try_clone().at(&self.dest)?;
        self.done = true;
        Ok(Staged {
            temp: self.temp.clone(),
            dest: self.dest.clone(),
            dir: true,
            _lock: lock,
            installed: false,
        })
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

/// A complete output waiting beside its destination; removed on drop unless installed.
pub struct Staged {
    temp: PathBuf,
    dest: PathBuf,
    dir: bool,
    /// Keeps the temporary name locked (see the module documentation on reaping).
    _lock: File,
    installed: bool,
}

impl Staged {
    /// The destination path.
    pub fn dest(&self) -> &Path {
        &self.dest
    }

    /// Whether the output is a directory.
    pub fn is_dir(&self) -> bool {
        self.dir
    }

    /// Put the output in place; what undoing it takes.
    fn install(&mut self) -> io::Result<Undo> {
        let meta = match fs::symlink_metadata(&self.dest) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                rename_noreplace(&self.temp, &self.dest)?;
                self.installed = true;
                return Ok(Undo::Remove);
            }
            Err(e) => return Err(e),
            Ok(meta) => meta,
        };
        if meta.is_dir() != self.dir || meta.file_type().is_symlink() {
            return Err(io::Error::other(if meta.is_dir() {
                "is a directory"
            } else {
                "exists and is not a directory"
            }));
        }
        // Swapped atomically: the destination is never missing, and the previous output ends up
        // at the temporary name, which is removed (or swapped back) later.
        match rename_exchange(&self.temp, &self.dest) {
            Ok(()) => {
                self.installed = true;
                return Ok(Undo::Exchange);
            }
            Err(e) if !exchange_unsupported(&e) => return Err(e),
            Err(_) => {}
        }
        let old = temp_name(&self.dest, "old");
        register(&old).map_err(|_| interrupted_io_error())?;
        let moved = if self.dir {
            fs::rename(&self.dest, &old).and_then(|()| {
                fs::rename(&self.temp, &self.dest)
                    .inspect_err(|_| drop(fs::rename(&old, &self.dest)))
            })
        } else {
            // A second name keeps the previous file while the rename replaces it atomically.
            match fs::hard_link(&self.dest, &old) {
                Ok(()) => {
                    fs::rename(&self.temp, &self.dest).inspect_err(|_| drop(fs::remove_file(&old)))
                }
                Err(_) => {
                    // No hard links here either: replaced for good, as a plain rename does.
                    unregister(&old);
                    fs::rename(&self.temp, &self.dest)?;
                    self.installed = true;
                    return Ok(Undo::Nothing);
                }
            }
        };
        match moved {
            Ok(()) => {
                self.installed = true;
                Ok(Undo::Restore(old))
            }
            Err(e) => {
                unregister(&old);
                Err(e)
            }
        }
    }

    /// Undo [`Staged::install`]: the previous destination back in place (or none), the new
    /// output removed.
    fn uninstall(&mut self, undo: &Undo) {
        match undo {
            Undo::Exchange => {
                let _ = rename_exchange(&self.temp, &self.dest);
            }
            Undo::Restore(old) => {
                if self.dir {
                    let _ = fs::rename(&self.dest, &self.temp);
                }
                let _ = fs::rename(old, &self.dest);
                unregister(old);
            }
            Undo::Remove => {
                let _ = fs::rename(&self.dest, &self.temp);
            }
            Undo::Nothing => return,
        }
        self.installed = false;
    }

    /// Remove what installing left: the previous output.
    fn finish(&self, undo: Undo) {
        let old = match &undo {
            Undo::Exchange => &self.temp,
            Undo::Restore(old) => old,
            Undo::Remove | Undo::Nothing => return,
        };
        let _ = remove_any(old);
        unregister(old);
    }
}

/// How to undo installing one output.
enum Undo {
    /// Nothing was at the destination: move the new output away.
    Remove,
    /// The previous output is at the temporary name: swap back.
    Exchange,
    /// The previous output is at this name: move it back.
    Restore(PathBuf),
    /// The previous output is gone (no exchange, no hard links on this file system).
    Nothing,
}

impl Drop for Staged {
    fn drop(&mut self) {
        if !self.installed {
            let _ = remove_any(&self.temp);
        }
        unregister(&self.temp);
    }
}

/// Move complete outputs into place, all or none: destinations are checked first, and if one
/// cannot be installed, those already installed are put back as they were.
pub fn commit_all(mut staged: Vec<Staged>) -> Result<()> {
    check_interrupt()?;
    for s in &staged {
        check_writable_dir(&s.dest)?;
    }
    let mut undos: Vec<Undo> = Vec::with_capacity(staged.len());
    for i in 0..staged.len() {
        match staged[i].install() {
            Ok(undo) => undos.push(undo),
            Err(e) => {
                let dest = staged[i].dest.clone();
                for (s, undo) in staged.iter_mut().zip(&undos).rev() {
                    s.uninstall(undo);
                }
                return Err(Error::io(dest, e));
            }
        }
    }
    for (s, undo) in staged.iter().zip(undos) {
        s.finish(undo);
        unregister(&s.temp);
        // Make the rename itself durable. Best effort: some file systems cannot sync a
        // directory, and the output is in place either way.
        let _ = File::open(parent_of(&s.dest)).and_then(|d| d.sync_all());
    }
    Ok(())
}

#[cfg(target_os = "linux")]
fn renameat2(from: &Path, to: &Path, flags: libc::c_uint) -> io::Result<()> {
    use std::ffi::CString;
    use std::os::unix::ffi::OsStrExt;
    let from = CString::new(from.as_os_str().as_bytes()).map_err(io::Error::other)?;
    let to = CString::new(to.as_os_str().as_bytes()).map_err(io::Error::other)?;
    // SAFETY: both paths are valid NUL-terminated strings that outlive the call.
    let r = unsafe {
        libc::syscall(
            libc::SYS_renameat2,
            libc::AT_FDCWD,
            from.as_ptr(),
            libc::AT_FDCWD,
            to.as_ptr(),
            flags,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Swap two paths atomically.
#[cfg(target_os = "linux")]
fn rename_exchange(a: &Path, b: &Path) -> io::Result<()> {
    renameat2(a, b, libc::RENAME_EXCHANGE)
}

#[cfg(not(target_os = "linux"))]
fn rename_exchange(_a: &Path, _b: &Path) -> io::Result<()> {
    Err(io::Error::from(io::ErrorKind::Unsupported))
}

/// Whether a failed exchange means the file system (or kernel) cannot exchange at all.
fn exchange_unsupported(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::Unsupported
        || matches!(
            e.raw_os_error(),
            Some(libc::EINVAL) | Some(libc::ENOSYS) | Some(libc::EOPNOTSUPP)
        )
}

/// Rename without replacing anything that appeared at `to` since it was checked.
fn rename_noreplace(from: &Path, to: &Path) -> io::Result<()> {
    #[cfg(target_os = "linux")]
    match renameat2(from, to, libc::RENAME_NOREPLACE) {
        Err(e) if exchange_unsupported(&e) => {}
        other => return other,
    }
    fs::rename(from, to)
}

/// A scratch directory (e.g. an extracted archive) that is removed on drop and on interrupt.
pub struct ScratchDir {
    path: PathBuf,
    _lock: File,
}

impl ScratchDir {
    /// Create a scratch directory in the system temp directory, after reaping those that
    /// processes which no longer exist left there.
    pub fn new() -> Result<Self> {
        let base = std::env::temp_dir();
        reap_stale(&base, parse_scratch_name);
        let mut attempts = 0;
        loop {
            attempts += 1;
            let path = base.join(format!(
                "{SCRATCH_PREFIX}{}-{:016x}",
                std::process::id(),
                random_u64()
            ));
            register(&path)?;
            match fs::DirBuilder::new()
                .mode(0o700)
                .create(&path)
                .and_then(|()| File::open(&path))
            {
                Ok(lock) => {
                    try_lock(&lock);
                    return Ok(ScratchDir { path, _lock: lock });
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists && attempts < MAX_ATTEMPTS => {
                    unregister(&path)
                }
                Err(e) => {
                    if e.kind() != io::ErrorKind::AlreadyExists {
                        let _ = fs::remove_dir(&path);
                    }
                    unregister(&path);
                    return Err(Error::io(base, e));
                }
            }
        }
    }

    /// Its path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        // Removed before it is forgotten, so a second interrupt meanwhile still finds it.
        let _ = fs::remove_dir_all(&self.path);
        unregister(&self.path);
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
        commit_all(vec![a.stage().unwrap()]).unwrap();
        assert!(dest.join("fresh").exists());
        assert!(!dest.join("stale").exists());
        assert_eq!(fs::read_dir(d.path()).unwrap().count(), 1);
    }

    #[test]
    fn failed_commit_leaves_nothing_and_puts_earlier_outputs_back() {
        let d = tempfile::tempdir().unwrap();
        let first = d.path().join("a.cnb");
        fs::write(&first, b"previous").unwrap();
        let second = d.path().join("b.cnb");
        let mut a = AtomicFile::create(&first).unwrap();
        a.file().write_all(b"new a").unwrap();
        let mut b = AtomicFile::create(&second).unwrap();
        b.file().write_all(b"new b").unwrap();
        let (a, b) = (a.stage().unwrap(), b.stage().unwrap());
        // The second destination turns into a directory before the commit.
        fs::create_dir(&second).unwrap();
        assert!(commit_all(vec![a, b]).is_err());
        assert_eq!(fs::read(&first).unwrap(), b"previous");
        assert!(second.is_dir());
        assert_eq!(fs::read_dir(d.path()).unwrap().count(), 2);
    }

    #[test]
    fn temp_names_are_recognised_exactly() {
        let t = temp_name(Path::new("x/out.cnb"), "partial");
        let name = t.file_name().unwrap().to_str().unwrap();
        assert!(is_temp_of("out.cnb", name), "{name}");
        assert!(!is_temp_of("out", name));
        assert_eq!(
            parse_temp_name(".a.b.old-12-0123456789abcdef.tmp"),
            Some(("a.b", 12))
        );
        for other in [
            ".out.cnb.partial-12-0123456789abcdef",
            ".out.cnb.partial-12-0123456789abcde.tmp",
            ".out.cnb.partial-x-0123456789abcdef.tmp",
            ".out.cnb.other-12-0123456789abcdef.tmp",
            "out.cnb.partial-12-0123456789abcdef.tmp",
            "..partial-12-0123456789abcdef.tmp",
            ".out.cnb.partial-12-0123456789ABCDEF.tmp",
        ] {
            assert_eq!(parse_temp_name(other), None, "{other}");
        }
        // The names cnbpkg 0.1.0 made (PID and counter).
        assert_eq!(
            parse_temp_name(".out.cnb.partial-12-3.tmp"),
            Some(("out.cnb", 12))
        );
        assert_eq!(parse_scratch_name(".cnbpkg-7-0123456789abcdef"), Some(7));
        assert_eq!(parse_scratch_name(".cnbpkg-abcdef"), None);
        assert_eq!(parse_scratch_name(".cnbpkg-7-3"), None);
    }
}
