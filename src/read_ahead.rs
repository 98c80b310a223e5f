//! Walking a module's tree and reading its small files on another thread, ahead of the layer writer.
//!
//! Listing a tree, opening and reading many small files costs as much as compressing them, so
//! it runs beside the writer: [`ReadAhead`] walks the tree on its own thread and hands the
//! entries over in batches, each with the contents of its small files back to back in one
//! buffer. Batches go back to the walking thread once written, to be filled again: a tree of
//! forty thousand files costs a handful of buffers, not forty thousand, and every allocation is
//! freed by the thread that made it (the allocator's cheap path). What is ahead is bounded by
//! the number of batches and their size; the layer's bytes are the same as when the writer walks
//! the tree and reads each file itself. Large files are opened ahead too (not read): every
//! file is opened on this thread, right after the walk found it, by its name in the directory
//! the walk holds open, and a batch that holds an opened file is handed over at once, so at
//! most one file per batch is open (under a small limit of open files, the writer opens them
//! itself instead). An error (of the walk, or a file that cannot be opened or
//! read) comes at the entry where it happened, and nothing after it.

use std::fs::File;
use std::io::Read;
use std::ops::Range;
use std::sync::mpsc::{self, Receiver, Sender, SyncSender};

use crate::error::{Error, Result};
use crate::input::OpenDir;
use crate::source::{SourceEntry, SourceKind};

/// Files up to this size are read ahead of the tar writer; larger ones are only opened ahead,
/// and streamed by the writer, where the per-file cost is small against the data.
pub(crate) const READ_AHEAD_MAX_FILE: u64 = 1 << 20;
/// A batch is handed over once its contents reach this many bytes (one file may take it to
/// [`READ_AHEAD_MAX_FILE`] + 1 bytes: a file that grew since the walk is read one byte long).
const BATCH_BYTES: usize = 512 << 10;
/// A batch is handed over once it holds this many entries (trees of empty files and
/// directories fill batches by count).
const BATCH_ENTRIES: usize = 256;
/// Batches filled and waiting for the writer. With the one being written and the one being
/// filled, at most `BATCHES_WAITING + 2` batches exist: about 4 MiB of contents and 1024 entries.
const BATCHES_WAITING: usize = 2;

/// One walked entry, and where its content is in the batch's buffer if it is a small file, or
/// its file opened if it is a large one.
struct Walked {
    entry: SourceEntry,
    content: Option<Range<usize>>,
    opened: Option<File>,
}

/// What the writer gets of a walked entry's content.
pub(crate) enum Content<'a> {
    /// Nothing: not a regular file, or a large file the writer opens itself (under a small
    /// limit of open files).
    Nothing,
    /// A small file's content, read ahead.
    Bytes(&'a [u8]),
    /// A large file, opened ahead (by name in the directory the walk holds, when it holds one)
    /// and checked to be the walked file, for the writer to stream.
    Opened(File),
}

/// Entries in walk order, the contents of their small files, and how the walk went on after
/// them.
#[derive(Default)]
struct Batch {
    entries: Vec<Walked>,
    /// The contents, in `data[..used]`. The rest was zeroed once when the buffer grew and is
    /// kept when the batch is reused, so that a batch's memory is zeroed once, not at every
    /// file read into it.
    data: Vec<u8>,
    used: usize,
    /// One of the entries holds an opened file: the batch is handed over at once, so that at
    /// most one file is open per batch.
    opened: bool,
    /// The walk ended after these entries.
    end: bool,
    /// The walk failed after these entries.
    error: Option<Error>,
}

impl Batch {
    /// An empty batch; its entry list never grows past the bound, so it is made that size.
    fn new() -> Batch {
        Batch {
            entries: Vec::with_capacity(BATCH_ENTRIES),
            ..Batch::default()
        }
    }

    fn is_full(&self) -> bool {
        self.entries.len() >= BATCH_ENTRIES || self.used >= BATCH_BYTES || self.opened
    }

    /// Whether a small file of `size` bytes should open the next batch instead of joining
    /// this one.
    fn lacks_room_for(&self, size: u64) -> bool {
        !self.entries.is_empty() && self.used as u64 + size > BATCH_BYTES as u64
    }

    /// Empty it for reuse, keeping its buffers.
    fn clear(&mut self) {
        self.entries.clear();
        self.used = 0;
        self.opened = false;
        self.end = false;
        self.error = None;
    }
}

/// A walked entry and its content.
pub(crate) type Ahead<'a> = (&'a SourceEntry, Content<'a>);

/// The writer's side of a walk running ahead on another thread (see the module doc).
pub(crate) struct ReadAhead {
    filled: Option<Receiver<Batch>>,
    written: Sender<Batch>,
    current: Batch,
    next: usize,
    thread: Option<std::thread::JoinHandle<()>>,
}

fn read_ahead_failed() -> Error {
    Error::other("walking and reading files ahead of the layer writer failed")
}

/// The size of `entry`'s content if it is a small file, read ahead.
fn read_ahead_size(entry: &SourceEntry) -> Option<u64> {
    match entry.kind {
        SourceKind::File { size } if size <= READ_AHEAD_MAX_FILE => Some(size),
        _ => None,
    }
}

impl ReadAhead {
    /// Start walking `entries` ([`crate::source::Walk::in_dirs`]) and reading its small files
    /// (in the directory given beside one, while the walk holds it, else by path).
    pub(crate) fn start<I>(entries: I) -> Result<ReadAhead>
    where
        I: Iterator<Item = Result<(SourceEntry, Option<OpenDir>)>> + Send + 'static,
    {
        let (filled_tx, filled) = mpsc::sync_channel(BATCHES_WAITING);
        let (written, written_rx) = mpsc::channel();
        // The walking thread belongs to the operation running here: its walk checks see the
        // operation's cancellation.
        let token = crate::cancel::current();
        let thread = std::thread::Builder::new()
            .name("cnbpkg-read-ahead".into())
            .spawn(move || token.scope(|| walk_and_read(entries, &filled_tx, &written_rx)))
            .map_err(|e| Error::other(format!("cannot start a thread to read files: {e}")))?;
        Ok(ReadAhead {
            filled: Some(filled),
            written,
            current: Batch::default(),
            next: 0,
            thread: Some(thread),
        })
    }

    /// The next entry in walk order, with its content if it was read ahead; `None` at the end.
    pub(crate) fn next_entry(&mut self) -> Result<Option<Ahead<'_>>> {
        while self.next == self.current.entries.len() {
            if let Some(e) = self.current.error.take() {
                return Err(e);
            }
            if self.current.end {
                return Ok(None);
            }
            // Back to the walking thread before the next is taken, so that no more than one
            // batch is ever on this side. The walking thread may have ended (the next batch is
            // its last): this one is then dropped here.
            let _ = self.written.send(std::mem::take(&mut self.current));
            self.next = 0;
            let filled = self.filled.as_ref().ok_or_else(read_ahead_failed)?;
            self.current = filled.recv().map_err(|_| read_ahead_failed())?;
        }
        let Batch { entries, data, .. } = &mut self.current;
        let walked = &mut entries[self.next];
        self.next += 1;
        let content = match (&walked.content, walked.opened.take()) {
            (Some(range), _) => Content::Bytes(&data[range.clone()]),
            (None, Some(file)) => Content::Opened(file),
            (None, None) => Content::Nothing,
        };
        Ok(Some((&walked.entry, content)))
    }
}

impl Drop for ReadAhead {
    fn drop(&mut self) {
        // Without its receiver the walking thread's next hand-over fails, and it stops there
        // (a hand-over waiting for room is woken by this too).
        drop(self.filled.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The walking thread: fills batches with the entries in order and hands them over until the
/// walk ends, an error, or the writer is gone.
fn walk_and_read<I: Iterator<Item = Result<(SourceEntry, Option<OpenDir>)>>>(
    entries: I,
    filled: &SyncSender<Batch>,
    written: &Receiver<Batch>,
) {
    let fresh = || {
        let mut batch = written.try_recv().unwrap_or_else(|_| Batch::new());
        batch.clear();
        batch
    };
    // The next batch is taken once the full one is handed over, not before: while the
    // hand-over waits for room, the walking thread holds no batch besides the one it hands over.
    let hand_over = |batch: &mut Batch| {
        if filled.send(std::mem::take(batch)).is_err() {
            return false;
        }
        *batch = fresh();
        true
    };
    let mut batch = fresh();
    let open_ahead = may_open_ahead();
    for item in entries {
        // The directory handle is dropped with this iteration, before the walk goes on: the
        // walk's bound on the directories it holds open stays the bound.
        let (entry, dir) = match item {
            Ok(found) => found,
            Err(e) => {
                batch.error = Some(e);
                let _ = filled.send(batch);
                return;
            }
        };
        let size = read_ahead_size(&entry);
        if size.is_some_and(|size| batch.lacks_room_for(size)) && !hand_over(&mut batch) {
            return;
        }
        let found = match (size, &entry.kind) {
            (Some(size), _) => batch
                .read_file(&entry, dir.as_ref(), size)
                .map(|r| (Some(r), None)),
            (None, SourceKind::File { .. }) if open_ahead => {
                open_file(&entry, dir.as_ref()).map(|f| (None, Some(f)))
            }
            (None, _) => Ok((None, None)),
        };
        let (content, opened) = match found {
            Ok(found) => found,
            Err(e) => {
                batch.error = Some(e);
                let _ = filled.send(batch);
                return;
            }
        };
        batch.opened |= opened.is_some();
        batch.entries.push(Walked {
            entry,
            content,
            opened,
        });
        if batch.is_full() && !hand_over(&mut batch) {
            return;
        }
    }
    batch.end = true;
    let _ = filled.send(batch);
}

/// Whether large files may be opened ahead: the files open in batches (at most one a batch)
/// take at most an eighth of what the process may open, as the walk's directories do. Under a
/// smaller limit the writer opens each large file itself, so that what the walk and the writer
/// hold open at once is no more than when nothing was opened ahead.
fn may_open_ahead() -> bool {
    crate::input::open_files_limit().is_some_and(|limit| limit / 8 >= (BATCHES_WAITING + 2) as u64)
}

/// Open a walked regular file, by name in `dir` when the walk holds it, checked to be the file
/// the walk saw (see [`crate::input::open_walked`]).
fn open_file(entry: &SourceEntry, dir: Option<&OpenDir>) -> Result<File> {
    let expected = entry.identity.as_ref();
    match dir {
        Some(dir) => crate::input::open_walked_in(dir, &entry.path, expected),
        None => crate::input::open_walked(&entry.path, expected),
    }
}

impl Batch {
    /// Append a file's content to the batch; where it went in `data`. The file was just checked
    /// to be the file the walk saw, at the size it saw (see [`crate::input::open_walked`]), and
    /// it is read with room for one byte more: a file that grew since comes one byte long, one
    /// that shrank comes short, and the writer reports either as it would when reading the file
    /// itself. A read that returns the whole size ends it, without a further read to see the end
    /// of the file (the file could grow after that read as well as after this one, and a tree of
    /// forty thousand files is forty thousand reads fewer).
    fn read_file(
        &mut self,
        entry: &SourceEntry,
        dir: Option<&OpenDir>,
        size: u64,
    ) -> Result<Range<usize>> {
        let mut file = open_file(entry, dir)?;
        let start = self.used;
        let want = size as usize + 1;
        if self.data.len() < start + want {
            self.data.resize(start + want, 0);
        }
        let room = &mut self.data[start..start + want];
        let mut got = 0;
        while got < want {
            match file.read(&mut room[got..]) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(Error::io(&entry.path, e)),
            }
            if got == want - 1 {
                break;
            }
        }
        self.used = start + got;
        Ok(start..self.used)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::{Exclusions, Walk};
    use std::path::Path;

    /// What the writer got of an entry's content.
    #[derive(Debug, PartialEq)]
    enum Got {
        Nothing,
        Bytes(Vec<u8>),
        /// An opened file, and what reading it gives.
        Opened(Vec<u8>),
    }

    fn got(content: Content<'_>) -> Got {
        match content {
            Content::Nothing => Got::Nothing,
            Content::Bytes(bytes) => Got::Bytes(bytes.to_vec()),
            Content::Opened(mut file) => {
                let mut bytes = Vec::new();
                file.read_to_end(&mut bytes).unwrap();
                Got::Opened(bytes)
            }
        }
    }

    /// Everything the writer gets from a read-ahead of `root`.
    fn read_ahead_all(root: &Path) -> Result<Vec<(SourceEntry, Got)>> {
        let walk = Walk::new(root, &[], Exclusions::default())?;
        let mut ahead = ReadAhead::start(walk.in_dirs())?;
        let mut got_all = Vec::new();
        while let Some((entry, content)) = ahead.next_entry()? {
            got_all.push((entry.clone(), got(content)));
            assert!(ahead.current.data.capacity() <= 2 * (BATCH_BYTES + 1 + (1 << 20)));
            assert!(ahead.current.entries.len() <= BATCH_ENTRIES);
            // At most one opened file per batch.
            let open = ahead
                .current
                .entries
                .iter()
                .filter(|w| w.opened.is_some())
                .count();
            assert!(open <= 1, "{open} files open in one batch");
        }
        Ok(got_all)
    }

    #[test]
    fn read_ahead_gives_each_entry_in_walk_order_in_bounded_batches() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path();
        std::fs::create_dir(root.join("sub")).unwrap();
        // Files of 1 MiB (each a batch of its own) between small ones.
        for i in 0..12u8 {
            std::fs::write(root.join(format!("sub/m{i:02}")), vec![i; 1 << 20]).unwrap();
            std::fs::write(root.join(format!("sub/m{i:02}s")), vec![i; 1000]).unwrap();
        }
        // More empty files than a batch holds.
        std::fs::create_dir(root.join("empties")).unwrap();
        for i in 0..(4 * BATCH_ENTRIES + 10) {
            std::fs::write(root.join(format!("empties/{i:05}")), b"").unwrap();
        }
        std::fs::write(
            root.join("big"),
            vec![7u8; (READ_AHEAD_MAX_FILE + 1) as usize],
        )
        .unwrap();
        std::os::unix::fs::symlink("big", root.join("link")).unwrap();
        let got = read_ahead_all(root).unwrap();
        let walked = crate::source::walk(root, &[]).unwrap();
        let entries: Vec<&SourceEntry> = got.iter().map(|(e, _)| e).collect();
        assert!(entries == walked.iter().collect::<Vec<_>>());
        let mut read = 0;
        for (e, content) in got {
            match (&e.kind, content) {
                (SourceKind::File { size }, Got::Bytes(bytes)) if *size <= READ_AHEAD_MAX_FILE => {
                    assert!(bytes == std::fs::read(&e.path).unwrap(), "{}", e.rel);
                    read += 1;
                }
                (SourceKind::File { .. }, Got::Opened(bytes)) => {
                    assert_eq!(e.rel, "big");
                    assert!(bytes == std::fs::read(&e.path).unwrap());
                }
                (SourceKind::File { .. }, other) => panic!("{}: {other:?}", e.rel),
                (_, Got::Nothing) => {}
                (_, other) => panic!("{} read ahead: {other:?}", e.rel),
            }
        }
        assert_eq!(read, 24 + 4 * BATCH_ENTRIES + 10);
        // A writer that stops early (an error elsewhere) while the walker waits for room.
        let mut ahead = ReadAhead::start(
            Walk::new(root, &[], Exclusions::default())
                .unwrap()
                .in_dirs(),
        )
        .unwrap();
        assert!(ahead.next_entry().unwrap().is_some());
        drop(ahead);
    }

    /// The walking thread makes no more batches than the bound, however long the tree: written
    /// batches are filled again.
    #[test]
    fn read_ahead_reuses_its_batches() {
        let d = tempfile::tempdir().unwrap();
        for i in 0..(40 * BATCH_ENTRIES) {
            std::fs::write(d.path().join(format!("{i:06}")), b"x").unwrap();
        }
        let walk = Walk::new(d.path(), &[], Exclusions::default()).unwrap();
        let mut ahead = ReadAhead::start(walk.in_dirs()).unwrap();
        let mut buffers = std::collections::BTreeSet::new();
        let mut n = 0;
        while let Some((_, content)) = ahead.next_entry().unwrap() {
            assert_eq!(got(content), Got::Bytes(b"x".to_vec()));
            buffers.insert(ahead.current.entries.as_ptr() as usize);
            n += 1;
        }
        assert_eq!(n, 40 * BATCH_ENTRIES);
        assert!(
            buffers.len() <= BATCHES_WAITING + 2,
            "{} buffers",
            buffers.len()
        );
    }

    /// A writer slower than the walk (a compressor) leaves the walking thread waiting for room
    /// at every hand-over: even then no more than the bound of batches exist.
    #[test]
    fn read_ahead_stays_within_its_batches_behind_a_slow_writer() {
        let d = tempfile::tempdir().unwrap();
        // Each file fills a batch by itself.
        for i in 0..16u8 {
            std::fs::write(d.path().join(format!("{i:02}")), vec![i; BATCH_BYTES]).unwrap();
        }
        let walk = Walk::new(d.path(), &[], Exclusions::default()).unwrap();
        let mut ahead = ReadAhead::start(walk.in_dirs()).unwrap();
        let mut buffers = std::collections::BTreeSet::new();
        while let Some((_, content)) = ahead.next_entry().unwrap() {
            assert!(matches!(got(content), Got::Bytes(b) if b.len() == BATCH_BYTES));
            buffers.insert(ahead.current.data.as_ptr() as usize);
            // Time for the walking thread to fill every batch it may and wait for room.
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        assert!(
            buffers.len() <= BATCHES_WAITING + 2,
            "{} buffers",
            buffers.len()
        );
    }

    /// A directory above a large file swapped for a link to another tree after it was listed:
    /// the large file is opened ahead in the directory the walk holds, so the file from the
    /// other tree is refused, never given to the writer.
    #[test]
    fn read_ahead_opens_large_files_in_the_held_directory() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path().join("root");
        let outside = d.path().join("outside");
        let big = (READ_AHEAD_MAX_FILE + 1) as usize;
        for (tree, byte) in [(root.join("a"), b'w'), (outside.clone(), b's')] {
            std::fs::create_dir_all(tree.join("b")).unwrap();
            std::fs::write(tree.join("b/big"), vec![byte; big]).unwrap();
        }
        let walk = Walk::new(&root, &[], Exclusions::default()).unwrap();
        let (a, moved) = (root.join("a"), d.path().join("moved"));
        let mut swap = Some(move || {
            std::fs::rename(&a, moved).unwrap();
            std::os::unix::fs::symlink(outside, &a).unwrap();
        });
        // Right after `a` is given (and listed), its path is made to lead to the other tree.
        let entries = walk.in_dirs().inspect(move |found| {
            if matches!(found, Ok((e, _)) if e.rel == "a") {
                if let Some(swap) = swap.take() {
                    swap();
                }
            }
        });
        let mut ahead = ReadAhead::start(entries).unwrap();
        let error = loop {
            match ahead.next_entry() {
                Ok(Some((entry, content))) => {
                    let content = got(content);
                    assert!(
                        !matches!(&content, Got::Opened(b) | Got::Bytes(b) if b.contains(&b's')),
                        "{} came from the other tree",
                        entry.rel
                    );
                }
                Ok(None) => panic!("the swap went unnoticed"),
                Err(e) => break e.to_string(),
            }
        };
        let shown = format!("{}: ", root.join("a/b/big").display());
        assert!(error.starts_with(&shown), "{error}");
        assert!(error.contains("replaced by another file"), "{error}");
    }

    /// The walking thread belongs to the operation that started it: it sees its cancellation,
    /// and stops walking there, even where the writer has nothing to write (entries the walk
    /// skips) and so no check of its own.
    #[test]
    fn read_ahead_stops_when_its_operation_is_cancelled() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("a"), "a").unwrap();
        let token = crate::cancel::Cancel::new();
        token.cancel();
        token.scope(|| {
            let walk = Walk::new(d.path(), &[], Exclusions::default()).unwrap();
            let mut ahead = ReadAhead::start(walk.in_dirs()).unwrap();
            assert!(matches!(ahead.next_entry(), Err(Error::Interrupted)));
        });
    }

    #[test]
    fn read_ahead_reports_a_file_changed_after_the_walk_at_its_entry() {
        let d = tempfile::tempdir().unwrap();
        for name in ["a", "b", "c"] {
            std::fs::write(d.path().join(name), name).unwrap();
        }
        let entries = crate::source::walk(d.path(), &[]).unwrap();
        std::fs::write(d.path().join("b"), "grown").unwrap();
        let mut ahead = ReadAhead::start(entries.into_iter().map(|e| Ok((e, None)))).unwrap();
        let (_, first) = ahead.next_entry().unwrap().unwrap();
        assert_eq!(got(first), Got::Bytes(b"a".to_vec()));
        let err = ahead.next_entry().err().unwrap().to_string();
        assert!(err.contains("changed size"), "{err}");
        drop(ahead); // the walking thread stopped at the error: dropping does not hang
    }

    #[test]
    fn read_ahead_stops_at_a_walk_error_after_the_entries_before_it() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("a"), "a").unwrap();
        std::fs::write(d.path().join("c"), "c").unwrap();
        // The walk fails between the two files (as at a device file): the writer gets the
        // first, then the error, and never the second.
        let mut entries = crate::source::walk(d.path(), &[]).unwrap().into_iter();
        let walked = vec![
            Ok(entries.next().unwrap()),
            Err(Error::invalid(
                d.path().join("b"),
                "device files cannot be packaged",
            )),
            Ok(entries.next().unwrap()),
        ];
        let mut ahead = ReadAhead::start(walked.into_iter().map(|w| w.map(|e| (e, None)))).unwrap();
        assert_eq!(ahead.next_entry().unwrap().unwrap().0.rel, "a");
        let err = ahead.next_entry().err().unwrap().to_string();
        assert!(err.contains("device files"), "{err}");
    }
}
