//! Blob bytes on the move, either way: hashed as they stream ([`Verified`]) and counted for
//! progress bars ([`Progress`], reported as [`Event::Transfer`]).

use std::io::{self, Read};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crate::digest::{Digest, Hasher};
use crate::error::{Error, Result};
use crate::events::{Event, Events};

/// What a [`Verified`] stream found, still readable once the stream was handed to a request
/// body and dropped. Shared by every attempt at one blob.
#[derive(Debug, Clone, Default)]
pub(crate) struct Verdict(Arc<Mutex<Option<Digest>>>);

impl Verdict {
    /// The digest the content really has, when a stream read all of it and it was not the
    /// one expected.
    pub(crate) fn mismatch(&self) -> Option<Digest> {
        *self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn record(&self, actual: Digest) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = Some(actual);
    }
}

/// A blob stream of `len` bytes hashed as it is read. It never reads past `len`, and the read
/// that would complete content whose digest is not `expected` fails instead (recording the
/// real digest in the [`Verdict`]): an upload never sends the whole of damaged content, so a
/// registry that does not check cannot store it under that digest, and a download can stop
/// before the bytes are kept.
pub(crate) struct Verified<R> {
    inner: R,
    hasher: Option<Hasher>,
    len: u64,
    left: u64,
    expected: Digest,
    verdict: Verdict,
}

impl<R: Read> Verified<R> {
    /// `inner`, expected to hold `len` bytes with digest `expected`.
    pub(crate) fn new(inner: R, len: u64, expected: Digest, verdict: &Verdict) -> Self {
        Verified {
            inner,
            hasher: Some(Hasher::new()),
            len,
            left: len,
            expected,
            verdict: verdict.clone(),
        }
    }

    /// The rest of content of `len` bytes with digest `expected`, whose first bytes went
    /// through `prefix` already (a download resumed where an earlier one stopped): the stream
    /// holds the other `len - prefix length` bytes, and the digest covers all of them.
    pub(crate) fn resumed(
        inner: R,
        len: u64,
        expected: Digest,
        verdict: &Verdict,
        prefix: Hasher,
    ) -> Self {
        let done = prefix.fed();
        Verified {
            inner,
            hasher: Some(prefix),
            len,
            left: len.saturating_sub(done),
            expected,
            verdict: verdict.clone(),
        }
    }

    /// The length the stream is expected to have.
    pub(crate) fn len(&self) -> u64 {
        self.len
    }

    /// Compare the digest, once (called when every byte was read; an empty blob needs it
    /// called, since no read completes it).
    pub(crate) fn check(&mut self) -> io::Result<()> {
        let Some(h) = self.hasher.take() else {
            return Ok(());
        };
        let (actual, _) = h.finish();
        if actual == self.expected {
            return Ok(());
        }
        self.verdict.record(actual);
        Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("blob {} does not match its digest", self.expected),
        ))
    }

    /// After the stream was read to its end: [`Error::SizeMismatch`] when it held fewer or
    /// more than `len` bytes, [`Error::DigestMismatch`] when its content is not `expected`.
    /// `origin` names where the blob came from (a registry, a package) in the error.
    #[allow(dead_code)] // a download's last check, for the coming `pull`
    pub(crate) fn finish(mut self, origin: &Path) -> Result<()> {
        let size_error = |actual| Error::SizeMismatch {
            path: origin.to_path_buf(),
            digest: self.expected,
            expected: self.len,
            actual,
        };
        if self.left > 0 {
            return Err(size_error(self.len - self.left));
        }
        let mut extra = [0u8; 1];
        match self.inner.read(&mut extra) {
            Ok(0) => {}
            Ok(_) => return Err(size_error(self.len.saturating_add(1))),
            Err(e) => return Err(Error::io(origin, e)),
        }
        let _ = self.check();
        match self.verdict.mismatch() {
            Some(actual) => Err(Error::DigestMismatch {
                path: origin.to_path_buf(),
                expected: self.expected,
                actual,
            }),
            None => Ok(()),
        }
    }
}

impl<R: Read> Read for Verified<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.left == 0 {
            self.check()?;
            return Ok(0);
        }
        let want = buf
            .len()
            .min(usize::try_from(self.left).unwrap_or(usize::MAX));
        let n = self.inner.read(&mut buf[..want])?;
        if let Some(h) = self.hasher.as_mut() {
            h.update(&buf[..n]);
        }
        self.left -= n as u64;
        if self.left == 0 {
            // These last bytes are not handed on when the content is not what it claims.
            self.check()?;
        }
        Ok(n)
    }
}

/// One blob's transfer as [`Event::Transfer`]s: the first when it starts, one per read, the
/// last (`finished`) when it is dropped. Bytes also add up in a counter shared by a whole
/// operation (a report's bytes sent or received).
pub(crate) struct Progress<'a> {
    events: &'a dyn Events,
    id: String,
    label: String,
    total: Option<u64>,
    done: AtomicU64,
    counted: &'a AtomicU64,
}

impl<'a> Progress<'a> {
    /// Start reporting the transfer of `digest` (`total` bytes when known).
    pub(crate) fn start(
        events: &'a dyn Events,
        digest: &Digest,
        total: Option<u64>,
        counted: &'a AtomicU64,
    ) -> Self {
        let progress = Progress {
            events,
            id: digest.to_string(),
            label: digest.short(),
            total,
            done: AtomicU64::new(0),
            counted,
        };
        progress.report(0, false);
        progress
    }

    /// A new attempt starts from the first byte again.
    pub(crate) fn restart(&self) {
        self.done.store(0, Ordering::Relaxed);
        self.report(0, false);
    }

    /// A new attempt continues after the `done` bytes held already.
    pub(crate) fn resume_at(&self, done: u64) {
        self.done.store(done, Ordering::Relaxed);
        self.report(done, false);
    }

    /// `n` more bytes moved.
    pub(crate) fn add(&self, n: u64) {
        self.counted.fetch_add(n, Ordering::Relaxed);
        let done = self.done.fetch_add(n, Ordering::Relaxed).saturating_add(n);
        self.report(done, false);
    }

    fn report(&self, done: u64, finished: bool) {
        self.events.event(&Event::Transfer {
            id: &self.id,
            label: &self.label,
            done,
            total: self.total,
            finished,
        });
    }
}

impl Drop for Progress<'_> {
    fn drop(&mut self) {
        self.report(self.done.load(Ordering::Relaxed), true);
    }
}

/// A reader that reports the bytes read through it to a [`Progress`].
pub(crate) struct Counting<'p, R> {
    inner: R,
    progress: &'p Progress<'p>,
}

impl<'p, R: Read> Counting<'p, R> {
    pub(crate) fn new(inner: R, progress: &'p Progress<'p>) -> Self {
        Counting { inner, progress }
    }
}

impl<R: Read> Read for Counting<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.progress.add(n as u64);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_all(v: &mut Verified<&[u8]>) -> io::Result<Vec<u8>> {
        let mut out = Vec::new();
        v.read_to_end(&mut out).map(|_| out)
    }

    #[test]
    fn matching_content_streams_whole_and_finishes() {
        let data = b"hello blob".as_slice();
        let verdict = Verdict::default();
        let mut v = Verified::new(data, 10, Digest::of(data), &verdict);
        assert_eq!(read_all(&mut v).unwrap(), data);
        assert!(v.finish(Path::new("r")).is_ok());
        assert_eq!(verdict.mismatch(), None);
    }

    #[test]
    fn damaged_content_fails_its_last_read_and_is_typed() {
        let data = b"hello blob".as_slice();
        let verdict = Verdict::default();
        let expected = Digest::of(b"something else");
        let mut v = Verified::new(data, 10, expected, &verdict);
        assert!(read_all(&mut v).is_err());
        assert_eq!(verdict.mismatch(), Some(Digest::of(data)));
        let v = Verified::new(data, 10, expected, &Verdict::default());
        let mut v = v;
        let _ = read_all(&mut v);
        assert!(matches!(
            v.finish(Path::new("r")),
            Err(Error::DigestMismatch { .. })
        ));
    }

    #[test]
    fn short_and_long_streams_are_size_mismatches() {
        let data = b"0123456789".as_slice();
        // Longer than declared: never read past the length, then the extra byte is seen.
        let mut v = Verified::new(data, 4, Digest::of(b"0123"), &Verdict::default());
        assert_eq!(read_all(&mut v).unwrap(), b"0123");
        assert!(matches!(
            v.finish(Path::new("r")),
            Err(Error::SizeMismatch {
                expected: 4,
                actual: 5,
                ..
            })
        ));
        // Shorter than declared.
        let mut v = Verified::new(data, 20, Digest::of(data), &Verdict::default());
        assert_eq!(read_all(&mut v).unwrap(), data);
        assert!(matches!(
            v.finish(Path::new("r")),
            Err(Error::SizeMismatch {
                expected: 20,
                actual: 10,
                ..
            })
        ));
    }

    #[test]
    fn progress_reports_start_reads_restart_and_finish() {
        let seen = Mutex::new(Vec::new());
        let sink = |e: &Event<'_>| {
            if let Event::Transfer { done, finished, .. } = *e {
                seen.lock().unwrap().push((done, finished));
            }
        };
        let counted = AtomicU64::new(0);
        {
            let p = Progress::start(&sink, &Digest::of(b"x"), Some(6), &counted);
            let mut r = Counting::new(b"abc".as_slice(), &p);
            io::copy(&mut r, &mut io::sink()).unwrap();
            p.restart();
            p.add(6);
        }
        let seen = seen.into_inner().unwrap();
        assert_eq!(seen.first(), Some(&(0, false)));
        assert!(seen.contains(&(3, false)));
        assert_eq!(seen.last(), Some(&(6, true)));
        assert_eq!(counted.load(Ordering::Relaxed), 9);
    }
}
