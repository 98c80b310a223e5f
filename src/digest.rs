//! SHA-256 digests and the hashing writers and readers that compute them while data streams.

use std::fmt;
use std::io::{self, Read, Write};
use std::str::FromStr;
use std::sync::mpsc;

use sha2::{Digest as _, Sha256};

/// A `sha256:<hex>` content digest.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest([u8; 32]);

impl Digest {
    /// The digest of `bytes`.
    pub fn of(bytes: &[u8]) -> Self {
        Digest(Sha256::digest(bytes).into())
    }

    /// The raw 32 bytes.
    pub fn bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The 64 lower-case hex characters, without the algorithm prefix.
    pub fn hex(&self) -> String {
        hex::encode(self.0)
    }

    /// The first 12 hex characters, for human output.
    pub fn short(&self) -> String {
        self.hex()[..12].to_string()
    }

    /// The path of this blob inside an OCI layout: `blobs/sha256/<hex>`.
    pub fn blob_path(&self) -> String {
        format!("blobs/sha256/{}", self.hex())
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sha256:{}", hex::encode(self.0))
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Why a digest string was rejected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DigestParseError(pub String);

impl fmt::Display for DigestParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for DigestParseError {}

impl FromStr for Digest {
    type Err = DigestParseError;

    /// Accepts only `sha256:` followed by exactly 64 lower-case hex digits, as the OCI spec
    /// requires for the sha256 algorithm.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || DigestParseError(format!("invalid digest '{}'", truncate(s, 80)));
        let hex_part = s.strip_prefix("sha256:").ok_or_else(bad)?;
        if hex_part.len() != 64
            || !hex_part
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            return Err(bad());
        }
        let mut out = [0u8; 32];
        hex::decode_to_slice(hex_part, &mut out).map_err(|_| bad())?;
        Ok(Digest(out))
    }
}

fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

impl serde::Serialize for Digest {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Digest {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// A running SHA-256 with a byte count.
#[derive(Clone, Default)]
pub(crate) struct Hasher {
    sha: Sha256,
    len: u64,
}

impl Hasher {
    /// A fresh hasher.
    pub fn new() -> Self {
        Self::default()
    }

    /// Feed bytes.
    pub fn update(&mut self, data: &[u8]) {
        self.sha.update(data);
        self.len += data.len() as u64;
    }

    /// The bytes fed so far.
    pub fn fed(&self) -> u64 {
        self.len
    }

    /// The digest and byte count.
    pub fn finish(self) -> (Digest, u64) {
        (Digest(self.sha.finalize().into()), self.len)
    }
}

/// A writer that hashes and counts everything written through it on the way to `inner`.
pub(crate) struct HashingWriter<W> {
    inner: W,
    hasher: Hasher,
}

impl<W: Write> HashingWriter<W> {
    /// Wrap `inner`.
    pub fn new(inner: W) -> Self {
        HashingWriter {
            inner,
            hasher: Hasher::new(),
        }
    }

    /// Unwrap: the inner writer, the digest and the byte count.
    pub fn finish(self) -> (W, Digest, u64) {
        let (d, n) = self.hasher.finish();
        (self.inner, d, n)
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.inner.write_all(buf)?;
        self.hasher.update(buf);
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// A writer like [`HashingWriter`] that hashes on its own thread, so that the hashing overlaps
/// the writing to `inner` (a compressor, most often): the bytes are copied into a few reused
/// blocks that a bounded channel hands to the hashing thread, which ends when the writer drops.
/// `inner` is given each block as it fills (and what is pending on `flush`), so it sees few,
/// large writes and the bytes are copied once on their way to both.
pub(crate) struct ThreadedHashingWriter<W> {
    inner: W,
    block: Vec<u8>,
    /// How much of `block` has been written to `inner` already (by a flush).
    forwarded: usize,
    full: Option<mpsc::SyncSender<Vec<u8>>>,
    free: mpsc::Receiver<Vec<u8>>,
    blocks: usize,
    hashing: Option<std::thread::JoinHandle<(Digest, u64)>>,
}

/// The size of one block handed to the hashing thread.
const HASH_BLOCK: usize = 256 * 1024;
/// How many blocks exist at most (the memory bound: `HASH_BLOCKS × HASH_BLOCK`).
const HASH_BLOCKS: usize = 4;

impl<W: Write> ThreadedHashingWriter<W> {
    /// Wrap `inner` and start the hashing thread.
    pub fn new(inner: W) -> io::Result<Self> {
        let (full, full_rx) = mpsc::sync_channel::<Vec<u8>>(HASH_BLOCKS);
        let (free_tx, free) = mpsc::channel();
        let hashing = std::thread::Builder::new()
            .name("diffid".into())
            .spawn(move || {
                let mut hasher = Hasher::new();
                for mut block in full_rx {
                    hasher.update(&block);
                    block.clear();
                    // The writer may be gone already; the block is then simply dropped.
                    let _ = free_tx.send(block);
                }
                hasher.finish()
            })?;
        Ok(ThreadedHashingWriter {
            inner,
            block: Vec::with_capacity(HASH_BLOCK),
            forwarded: 0,
            full: Some(full),
            free,
            blocks: 1,
            hashing: Some(hashing),
        })
    }

    /// Append `buf` to the current block, handing full blocks to `inner` and the hashing thread.
    fn append(&mut self, mut buf: &[u8]) -> io::Result<()> {
        while !buf.is_empty() {
            let room = HASH_BLOCK - self.block.len();
            let (now, rest) = buf.split_at(room.min(buf.len()));
            self.block.extend_from_slice(now);
            buf = rest;
            if self.block.len() == HASH_BLOCK {
                self.send_block()?;
            }
        }
        Ok(())
    }

    /// Write what `inner` has not been given of the current block.
    fn forward(&mut self) -> io::Result<()> {
        self.inner.write_all(&self.block[self.forwarded..])?;
        self.forwarded = self.block.len();
        Ok(())
    }

    /// Hand the current block to `inner` and the hashing thread, and take a free one (a new one
    /// while fewer than `HASH_BLOCKS` exist, else wait for the hashing thread to return one).
    fn send_block(&mut self) -> io::Result<()> {
        let gone = || io::Error::other("the hashing thread stopped");
        self.forward()?;
        self.forwarded = 0;
        let full = std::mem::take(&mut self.block);
        self.full
            .as_ref()
            .ok_or_else(gone)?
            .send(full)
            .map_err(|_| gone())?;
        self.block = match self.free.try_recv() {
            Ok(block) => block,
            Err(_) if self.blocks < HASH_BLOCKS => {
                self.blocks += 1;
                Vec::with_capacity(HASH_BLOCK)
            }
            Err(_) => self.free.recv().map_err(|_| gone())?,
        };
        Ok(())
    }

    /// Unwrap: the inner writer, the digest and the byte count (waits for the hashing thread).
    pub fn finish(mut self) -> io::Result<(W, Digest, u64)> {
        let gone = || io::Error::other("the hashing thread stopped");
        self.forward()?;
        if !self.block.is_empty() {
            let block = std::mem::take(&mut self.block);
            self.full
                .as_ref()
                .ok_or_else(gone)?
                .send(block)
                .map_err(|_| gone())?;
        }
        drop(self.full.take());
        let hashing = self.hashing.take().ok_or_else(gone)?;
        let (digest, len) = hashing.join().map_err(|_| gone())?;
        Ok((self.inner, digest, len))
    }
}

impl<W: Write> Write for ThreadedHashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.append(buf)?;
        Ok(buf.len())
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.append(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.forward()?;
        self.inner.flush()
    }
}

/// A reader that hashes and counts everything read through it.
pub(crate) struct HashingReader<R> {
    inner: R,
    hasher: Hasher,
}

impl<R: Read> HashingReader<R> {
    /// Wrap `inner`.
    pub fn new(inner: R) -> Self {
        HashingReader {
            inner,
            hasher: Hasher::new(),
        }
    }

    /// Unwrap: the inner reader, the digest and the byte count of what was read.
    pub fn finish(self) -> (R, Digest, u64) {
        let (d, n) = self.hasher.finish();
        (self.inner, d, n)
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_digest_is_the_well_known_one() {
        assert_eq!(
            Digest::of(b"").to_string(),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn parse_round_trips_and_rejects_bad_forms() {
        let d = Digest::of(b"abc");
        assert_eq!(d.to_string().parse::<Digest>().unwrap(), d);
        for bad in [
            "sha256:ABC",
            "sha512:00",
            "",
            "sha256:",
            &format!("sha256:{}", "A".repeat(64)),
        ] {
            assert!(bad.parse::<Digest>().is_err(), "{bad}");
        }
    }

    #[test]
    fn hashing_writer_and_reader_agree() {
        let data = vec![7u8; 300_000];
        let mut w = HashingWriter::new(Vec::new());
        w.write_all(&data).unwrap();
        let (out, d, n) = w.finish();
        assert_eq!(out, data);
        assert_eq!(n, data.len() as u64);
        assert_eq!(d, Digest::of(&data));
        let mut r = HashingReader::new(&data[..]);
        io::copy(&mut r, &mut io::sink()).unwrap();
        assert_eq!(r.finish().1, d);
    }

    #[test]
    fn threaded_hashing_writer_agrees_across_block_edges() {
        let data: Vec<u8> = (0..(HASH_BLOCK * HASH_BLOCKS * 3 + 12_345))
            .map(|i| (i * 31 % 251) as u8)
            .collect();
        for piece in [1, 512, 4096, HASH_BLOCK - 1, HASH_BLOCK, HASH_BLOCK * 2 + 7] {
            let mut w = ThreadedHashingWriter::new(Vec::new()).unwrap();
            for chunk in data.chunks(piece) {
                w.write_all(chunk).unwrap();
            }
            let (out, d, n) = w.finish().unwrap();
            assert_eq!(out, data, "{piece}");
            assert_eq!((d, n), (Digest::of(&data), data.len() as u64), "{piece}");
        }
        let (_, d, n) = ThreadedHashingWriter::new(io::sink())
            .unwrap()
            .finish()
            .unwrap();
        assert_eq!((d, n), (Digest::of(b""), 0));
        // A flush gives `inner` everything written so far, and the bytes stay in order.
        let mut w = ThreadedHashingWriter::new(Vec::new()).unwrap();
        let mut written = 0;
        for (i, chunk) in data.chunks(HASH_BLOCK / 3 + 5).enumerate() {
            w.write_all(chunk).unwrap();
            written += chunk.len();
            if i % 2 == 0 {
                w.flush().unwrap();
                assert_eq!(w.inner.len(), written);
            }
        }
        let (out, d, _) = w.finish().unwrap();
        assert_eq!((out, d), (data.clone(), Digest::of(&data)));
        // Dropped unfinished (an error mid-layer): the hashing thread ends, nothing hangs.
        let mut w = ThreadedHashingWriter::new(io::sink()).unwrap();
        w.write_all(&data).unwrap();
        drop(w);
    }

    /// An output that fails is reported by the write that fills a block, or by flush or finish.
    #[test]
    fn threaded_hashing_writer_reports_its_output_failing() {
        struct Broken;
        impl Write for Broken {
            fn write(&mut self, _: &[u8]) -> io::Result<usize> {
                Err(io::Error::other("disk full"))
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let mut w = ThreadedHashingWriter::new(Broken).unwrap();
        assert!(w.write_all(&vec![1u8; HASH_BLOCK]).is_err());
        let mut w = ThreadedHashingWriter::new(Broken).unwrap();
        w.write_all(b"abc").unwrap();
        assert!(w.flush().is_err());
        let mut w = ThreadedHashingWriter::new(Broken).unwrap();
        w.write_all(b"abc").unwrap();
        assert!(w.finish().is_err());
    }
}
