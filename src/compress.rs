//! Layer compression: reproducible parallel gzip (a series of libdeflate members), multi-worker
//! zstd, and pass-through.
//!
//! Every encoder here produces bytes that depend only on the input bytes, the [`Compression`]
//! and its level — never on the thread count, timing or machine — so layer digests are
//! reproducible.
//!
//! * **gzip** cuts the input into fixed [`GZIP_BLOCK_SIZE`] blocks and compresses each with
//!   libdeflate into a gzip member of its own (header, raw deflate, CRC-32, length); the layer is
//!   the series of members, which RFC 1952 allows and every layer reader reads (Go's
//!   `compress/gzip` behind pack, the lifecycle, containerd, skopeo and umoci; GNU gzip; Python's
//!   `gzip` and `tarfile`; eStargz layers rely on it). The header is written here, not by a
//!   crate's gzip writer, so that it is fixed (mtime 0, OS 255) and so that an incompressible
//!   block can be stored without searching it for matches. libdeflate compresses a whole buffer
//!   at once and cannot be primed with the previous block, so a member per block is what lets
//!   it run on every core; it is faster than zlib at the same output size, which more than pays
//!   for the 18 bytes and the cold 32 KiB window each member costs. Worker threads compress
//!   blocks; the caller's thread writes finished members in order, so the output writer need
//!   not be `Send`. With one thread the same blocks are compressed inline, giving the same
//!   bytes. The bundled libdeflate's version decides the bytes, so it is pinned.
//! * **zstd** always runs libzstd's multi-threaded mode with at least one worker: libzstd's
//!   single-threaded mode (0 workers) emits different bytes, while any number ≥ 1 of workers
//!   emits the same bytes.
//! * **none** passes bytes through.
//!
//! `Write::flush` on an [`Encoder`] never changes the compressed bytes: it writes out what is
//! already complete and flushes the inner writer, but it does not force a deflate or zstd flush.

use std::collections::VecDeque;
use std::fmt;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TryRecvError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use crate::oci::{self, LayerEncoding};

/// Uncompressed bytes per gzip block, each its own gzip member. Part of the output format:
/// changing it changes every gzip digest.
///
/// Measured with `CNBPKG_BENCH_BLOCKS=1 cargo bench --bench stages` on 300.6 MB of real
/// executables and libraries at level 5: compressed/uncompressed 0.3724 with 256 KiB blocks,
/// 0.3712 with 512 KiB, 0.3707 with 1 MiB, 0.3704 with 2 MiB (zlib-rs level 5 as one stream:
/// 0.3839). 1 MiB keeps both cores busy on layers of a few MiB and the in-flight memory small
/// (≈ 2 × threads × 2 MiB); larger blocks gain under 0.1 %.
pub const GZIP_BLOCK_SIZE: usize = 1024 * 1024;

/// The smallest block size [`gzip_encoder_with_block_size`] takes.
const MIN_BLOCK_SIZE: usize = 4096;

/// A layer compression and its level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Compression {
    /// gzip (`tar+gzip`); `level` 0–12 (higher values are treated as 12).
    Gzip {
        /// libdeflate compression level, 0 (stored) to 12 (best).
        level: u32,
    },
    /// zstd (`tar+zstd`); `level` as libzstd takes it (1–19 typical, 3 is zstd's default).
    Zstd {
        /// libzstd compression level (clamped to libzstd's range).
        level: i32,
    },
    /// Uncompressed tar.
    None,
}

/// The zstd level used by `Compression::parse("zstd")`: libzstd's own default.
pub const ZSTD_DEFAULT_LEVEL: i32 = 3;

impl Compression {
    /// gzip at libdeflate level 5, the default for `.cnb` layers.
    ///
    /// Chosen by layer size against umoci's (Go, pgzip) on the same trees, and by the CPU time
    /// of the compressor alone (`cargo bench --bench stages`, one thread, MB/s of CPU time),
    /// on the project's 2-vCPU machine kind:
    ///
    /// | input | L3 | L4 | L5 | L6 |
    /// |---|---|---|---|---|
    /// | 300.6 MB of real executables and libraries: size × umoci | 0.961 | 0.956 | 0.937 | 0.931 |
    /// | the same: compressor MB/s (CPU) | 90 | 87 | 77 | 66 |
    /// | 201.9 MB of real source text (crate sources): size × umoci | 1.015 | 0.994 | 0.962 | 0.948 |
    /// | 40 000 generated source files (benches/e2e.py): size × umoci | – | 1.016 | 1.000 | – |
    ///
    /// Level 4 makes text larger than umoci's; level 6 costs 17 % more CPU for 0.6–1.5 %. At
    /// level 5 a whole packaging run of the real binaries took 0.70× umoci's CPU time (its wall
    /// time: see benches/README.md). Incompressible blocks are stored whatever the level (see
    /// `INCOMPRESSIBLE_BITS_PER_BYTE`): on 29.5 MB of `.crate` files (gzip archives) the layer is
    /// 1.004× umoci's, the tar headers between them being stored too. zstd is the choice for
    /// speed.
    pub const DEFAULT: Compression = Compression::Gzip { level: 5 };

    /// The OCI layer media type for this compression.
    pub fn media_type(&self) -> &'static str {
        match self {
            Compression::Gzip { .. } => oci::MEDIA_TYPE_LAYER_GZIP,
            Compression::Zstd { .. } => oci::MEDIA_TYPE_LAYER_ZSTD,
            Compression::None => oci::MEDIA_TYPE_LAYER_TAR,
        }
    }

    /// The layer encoding (what a reader must undo).
    pub fn encoding(&self) -> LayerEncoding {
        match self {
            Compression::Gzip { .. } => LayerEncoding::Gzip,
            Compression::Zstd { .. } => LayerEncoding::Zstd,
            Compression::None => LayerEncoding::Tar,
        }
    }

    /// Parses a `--compression` value: `gzip` (level of [`Compression::DEFAULT`]), `zstd`
    /// (level 3) or `none`. Case-sensitive, as the CLI documents.
    pub fn parse(name: &str) -> Option<Compression> {
        match name {
            "gzip" => Some(Compression::DEFAULT),
            "zstd" => Some(Compression::Zstd {
                level: ZSTD_DEFAULT_LEVEL,
            }),
            "none" => Some(Compression::None),
            _ => None,
        }
    }

    /// The name [`Compression::parse`] accepts.
    pub fn name(&self) -> &'static str {
        match self {
            Compression::Gzip { .. } => "gzip",
            Compression::Zstd { .. } => "zstd",
            Compression::None => "none",
        }
    }
}

impl Default for Compression {
    fn default() -> Self {
        Compression::DEFAULT
    }
}

impl fmt::Display for Compression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Compression::Gzip { level } => write!(f, "gzip (level {level})"),
            Compression::Zstd { level } => write!(f, "zstd (level {level})"),
            Compression::None => f.write_str("none"),
        }
    }
}

/// A streaming compressor writing to `W`. Call [`Encoder::finish`] to complete the stream;
/// dropping an unfinished encoder stops its workers and leaves the output truncated.
pub struct Encoder<W: Write> {
    inner: Inner<W>,
}

enum Inner<W: Write> {
    Plain(W),
    Gzip(GzipEncoder<W>),
    Zstd(ZstdEncoder<W>),
    /// Setting up the zstd context failed; reported on first use.
    Failed(Option<io::Error>),
}

/// Creates an encoder for `c` writing to `out`, compressing on `threads` worker threads
/// (0 is taken as 1). The output bytes do not depend on `threads`.
pub fn encoder<W: Write>(c: Compression, threads: usize, out: W) -> Encoder<W> {
    // More threads than this only cost memory (each keeps blocks in flight); the bytes written
    // do not depend on the count.
    let threads = threads.clamp(1, MAX_THREADS);
    let inner = match c {
        Compression::None => Inner::Plain(out),
        Compression::Gzip { level } => Inner::Gzip(GzipEncoder::new(
            out,
            level.min(MAX_GZIP_LEVEL),
            threads.min(MAX_GZIP_WORKERS),
            GZIP_BLOCK_SIZE,
        )),
        Compression::Zstd { level } => {
            match zstd_encoder(out, level, threads.min(MAX_ZSTD_WORKERS)) {
                Ok(e) => Inner::Zstd(ZstdEncoder::new(e)),
                Err(e) => Inner::Failed(Some(e)),
            }
        }
    };
    Encoder { inner }
}

/// Like [`encoder`] for gzip, with a non-default block size. Only for benchmarks that measure
/// the block-size trade-off: the block size is part of the output format.
#[doc(hidden)]
pub fn gzip_encoder_with_block_size<W: Write>(
    level: u32,
    threads: usize,
    block_size: usize,
    out: W,
) -> Encoder<W> {
    assert!(
        block_size >= MIN_BLOCK_SIZE,
        "gzip block size must be at least 4 KiB"
    );
    Encoder {
        inner: Inner::Gzip(GzipEncoder::new(
            out,
            level.min(MAX_GZIP_LEVEL),
            threads.clamp(1, MAX_GZIP_WORKERS),
            block_size,
        )),
    }
}

/// The most compression threads one encoder starts (`--jobs` is bounded by it).
pub const MAX_THREADS: usize = 256;

/// Bytes of input per zstd worker job.
const ZSTD_JOB_SIZE: u32 = 2 << 20;

/// zstd worker threads at most, whatever `--jobs` says: libzstd keeps about two jobs in flight
/// per worker, each with its input, its output and the worker's match tables, so the worker
/// count is what bounds a layer's memory (measured at level 3 for a whole packaging run of 300
/// MB of binaries: 31 MiB peak with 2 workers, 224 MiB with 64 before this bound). The bytes do
/// not depend on it.
const MAX_ZSTD_WORKERS: usize = 4;

fn zstd_encoder<W: Write>(
    out: W,
    level: i32,
    threads: usize,
) -> io::Result<zstd::stream::write::Encoder<'static, W>> {
    let range = zstd::compression_level_range();
    let level = level.clamp(*range.start(), *range.end());
    let mut e = zstd::stream::write::Encoder::new(out, level)?;
    // Always ≥ 1 worker: 0 workers (single-threaded libzstd) writes different bytes.
    e.multithread(u32::try_from(threads.max(1)).unwrap_or(u32::MAX))?;
    // Set every frame-header knob explicitly so the header never depends on defaults.
    e.include_checksum(true)?;
    e.include_contentsize(false)?;
    e.include_dictid(false)?;
    e.long_distance_matching(false)?;
    // libzstd sizes each worker's job from the window (8 MiB at level 3) and keeps several jobs
    // in flight; fixed 2 MiB jobs bound memory whatever the layer (the job size is part of what
    // decides the bytes, so it is fixed, never derived from the machine).
    e.set_parameter(zstd::stream::raw::CParameter::JobSize(ZSTD_JOB_SIZE))?;
    Ok(e)
}

/// Input gathered before it is handed to libzstd: a layer comes as many small writes (a tar
/// header, a small file, its padding), and each call into libzstd's multi-threaded stream takes
/// its locks and looks for finished jobs, which cost more than the copy into this buffer.
/// libzstd cuts jobs by input position, not by call, so the bytes are the same.
const ZSTD_INPUT_BUFFER: usize = 256 << 10;

/// libzstd's streaming encoder behind an input buffer of [`ZSTD_INPUT_BUFFER`] bytes.
struct ZstdEncoder<W: Write> {
    zstd: zstd::stream::write::Encoder<'static, W>,
    pending: Vec<u8>,
}

impl<W: Write> ZstdEncoder<W> {
    fn new(zstd: zstd::stream::write::Encoder<'static, W>) -> Self {
        ZstdEncoder {
            zstd,
            pending: Vec::with_capacity(ZSTD_INPUT_BUFFER),
        }
    }

    /// Hand the buffered input to libzstd.
    fn drain(&mut self) -> io::Result<()> {
        if !self.pending.is_empty() {
            self.zstd.write_all(&self.pending)?;
            self.pending.clear();
        }
        Ok(())
    }

    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.pending.len() + buf.len() > ZSTD_INPUT_BUFFER {
            self.drain()?;
        }
        if buf.len() >= ZSTD_INPUT_BUFFER {
            return self.zstd.write(buf);
        }
        self.pending.extend_from_slice(buf);
        Ok(buf.len())
    }

    /// Hands libzstd what is buffered and flushes the inner writer, without a zstd flush (which
    /// would end a block early and change the bytes).
    fn flush(&mut self) -> io::Result<()> {
        self.drain()?;
        self.zstd.get_mut().flush()
    }

    fn finish(mut self) -> io::Result<W> {
        self.drain()?;
        self.zstd.finish()
    }
}

fn failed_earlier() -> io::Error {
    io::Error::other("the compressor failed earlier")
}

impl<W: Write> Encoder<W> {
    /// Completes the stream (gzip trailer, zstd epilogue), flushes and returns the writer.
    pub fn finish(self) -> io::Result<W> {
        match self.inner {
            Inner::Plain(mut w) => {
                w.flush()?;
                Ok(w)
            }
            Inner::Gzip(g) => g.finish(),
            Inner::Zstd(z) => {
                let mut w = z.finish()?;
                w.flush()?;
                Ok(w)
            }
            Inner::Failed(e) => Err(e.unwrap_or_else(failed_earlier)),
        }
    }

    /// The writer the compressed bytes go to.
    pub fn get_ref(&self) -> Option<&W> {
        match &self.inner {
            Inner::Plain(w) => Some(w),
            Inner::Gzip(g) => g.out.as_ref(),
            Inner::Zstd(z) => Some(z.zstd.get_ref()),
            Inner::Failed(_) => None,
        }
    }
}

impl<W: Write> Write for Encoder<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match &mut self.inner {
            Inner::Plain(w) => w.write(buf),
            Inner::Gzip(g) => g.write(buf),
            Inner::Zstd(z) => z.write(buf),
            Inner::Failed(e) => Err(e.take().unwrap_or_else(failed_earlier)),
        }
    }

    /// Writes out what is complete and flushes the inner writer without changing the
    /// compressed bytes (no deflate or zstd flush is forced).
    fn flush(&mut self) -> io::Result<()> {
        match &mut self.inner {
            Inner::Plain(w) => w.flush(),
            Inner::Gzip(g) => g.flush(),
            Inner::Zstd(z) => z.flush(),
            Inner::Failed(e) => Err(e.take().unwrap_or_else(failed_earlier)),
        }
    }
}

/// Decodes gzip input of one or more members. What follows the last member must be another
/// member: anything else is reported as trailing data (a multi-member decoder would try to read
/// it as a member header and say "unexpected end of file" or "invalid gzip header", which sends
/// the reader looking for a truncation). Go's gzip reader, which pack uses, refuses it too.
pub struct GzipMembers<R: BufRead> {
    member: Option<flate2::bufread::GzDecoder<R>>,
    trailing: bool,
}

impl<R: BufRead> GzipMembers<R> {
    /// Decode `input` from its first member on.
    pub fn new(input: R) -> Self {
        GzipMembers {
            member: Some(flate2::bufread::GzDecoder::new(input)),
            trailing: false,
        }
    }
}

impl<R: BufRead> Read for GzipMembers<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            if self.trailing {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "trailing data after the gzip stream",
                ));
            }
            let Some(member) = &mut self.member else {
                return Ok(0);
            };
            let n = member.read(buf)?;
            if n > 0 || buf.is_empty() {
                return Ok(n);
            }
            // This member ended: the input ends too, or another member starts.
            let Some(member) = self.member.take() else {
                return Ok(0);
            };
            let mut input = member.into_inner();
            let rest = input.fill_buf()?;
            match rest {
                [] => return Ok(0),
                [0x1f] | [0x1f, 0x8b, ..] => {
                    self.member = Some(flate2::bufread::GzDecoder::new(input))
                }
                _ => self.trailing = true,
            }
        }
    }
}

/// A reader that decodes `input` compressed as `enc`. gzip input may have several members
/// (cnbpkg's own layers have one per block; pgzip and other parallel writers produce them too);
/// zstd input may have several frames.
pub fn decoder<'a, R: Read + 'a>(enc: LayerEncoding, input: R) -> Box<dyn Read + 'a> {
    match enc {
        LayerEncoding::Tar => Box::new(input),
        LayerEncoding::Gzip => {
            Box::new(GzipMembers::new(BufReader::with_capacity(32 * 1024, input)))
        }
        LayerEncoding::Zstd => {
            match zstd::stream::read::Decoder::with_buffer(BufReader::with_capacity(
                128 * 1024,
                input,
            )) {
                Ok(d) => Box::new(d),
                Err(e) => Box::new(ErrorReader(Some(e))),
            }
        }
    }
}

/// Yields one error, then end of input (only when a decoder cannot be set up).
struct ErrorReader(Option<io::Error>);

impl Read for ErrorReader {
    fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
        match self.0.take() {
            Some(e) => Err(e),
            None => Err(failed_earlier()),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Parallel gzip: one member per block
// ---------------------------------------------------------------------------------------------

/// gzip member header: magic, deflate, no flags, mtime 0, XFL (patched), OS 255 ("unknown"), as
/// libdeflate's own gzip writer and flate2's `GzBuilder` write it.
const GZIP_HEADER: [u8; 10] = [0x1f, 0x8b, 0x08, 0x00, 0, 0, 0, 0, 0x00, 0xff];

/// The highest libdeflate level.
const MAX_GZIP_LEVEL: u32 = 12;

/// XFL as libdeflate sets it: 4 for the fastest levels, 2 for the slowest, else 0.
fn gzip_xfl(level: u32) -> u8 {
    if level < 2 {
        4
    } else if level >= 8 {
        2
    } else {
        0
    }
}

/// One libdeflate compressor per level used, kept by one thread for all its blocks (allocating
/// one costs more than compressing a small block).
#[derive(Default)]
struct Deflaters {
    by_level: Vec<(u32, libdeflater::Compressor)>,
}

impl Deflaters {
    fn get(&mut self, level: u32) -> io::Result<&mut libdeflater::Compressor> {
        let i = match self.by_level.iter().position(|(l, _)| *l == level) {
            Some(i) => i,
            None => {
                let lvl = i32::try_from(level)
                    .ok()
                    .and_then(|l| libdeflater::CompressionLvl::new(l).ok())
                    .ok_or_else(|| io::Error::other(format!("gzip level {level} out of range")))?;
                self.by_level
                    .push((level, libdeflater::Compressor::new(lvl)));
                self.by_level.len() - 1
            }
        };
        Ok(&mut self.by_level[i].1)
    }
}

/// One block's work: compress `data` as a complete gzip member.
struct Job {
    data: Vec<u8>,
    level: u32,
    reply: SyncSender<io::Result<Done>>,
}

/// A compressed block: a whole gzip member, and the block's input buffer returned for reuse.
struct Done {
    member: Vec<u8>,
    data: Vec<u8>,
}

/// Compresses one block into a complete gzip member (header, raw deflate, CRC-32, length).
/// Only the input and the level decide the bytes: libdeflate's output does not depend on the
/// output buffer's size (always its bound here), the thread or the machine.
fn compress_member(deflaters: &mut Deflaters, data: &[u8], level: u32) -> io::Result<Vec<u8>> {
    #[cfg(test)]
    if data.starts_with(tests::PANIC_MARKER) {
        panic!("injected worker panic");
    }
    let effective = effective_level(data, level);
    let deflater = deflaters.get(effective)?;
    let bound = deflater.deflate_compress_bound(data.len());
    let mut member = vec![0u8; GZIP_HEADER.len() + bound + 8];
    member[..GZIP_HEADER.len()].copy_from_slice(&GZIP_HEADER);
    member[8] = gzip_xfl(level);
    let n = deflater
        .deflate_compress(
            data,
            &mut member[GZIP_HEADER.len()..GZIP_HEADER.len() + bound],
        )
        .map_err(|e| io::Error::other(format!("deflate: {e}")))?;
    member.truncate(GZIP_HEADER.len() + n);
    member.extend_from_slice(&crc32fast::hash(data).to_le_bytes());
    // ISIZE is the input length modulo 2^32 (a block is far smaller).
    member.extend_from_slice(&(data.len() as u32).to_le_bytes());
    Ok(member)
}

/// Bits per byte above which a block is treated as already compressed (jars, archives, media,
/// random data). Such blocks do not shrink at any level, but deflate spends time searching them
/// for matches; stored deflate blocks cost 5 bytes per 64 KiB and no time. Decided from the
/// block's bytes alone, so output stays deterministic.
const INCOMPRESSIBLE_BITS_PER_BYTE: f64 = 7.9;

/// The level to use for one block: `level`, or 0 (stored) for a block that looks incompressible.
fn effective_level(data: &[u8], level: u32) -> u32 {
    if level <= 1 || data.len() < 4096 {
        return level;
    }
    if order0_entropy(data) > INCOMPRESSIBLE_BITS_PER_BYTE {
        0
    } else {
        level
    }
}

/// Shannon entropy of the byte distribution, in bits per byte.
fn order0_entropy(data: &[u8]) -> f64 {
    // Four interleaved histograms keep the counting loop free of store-to-load stalls.
    let mut counts = [[0u32; 256]; 4];
    let mut chunks = data.chunks_exact(4);
    for c in &mut chunks {
        counts[0][c[0] as usize] += 1;
        counts[1][c[1] as usize] += 1;
        counts[2][c[2] as usize] += 1;
        counts[3][c[3] as usize] += 1;
    }
    for &b in chunks.remainder() {
        counts[0][b as usize] += 1;
    }
    let n = data.len() as f64;
    (0..256)
        .map(|i| counts[0][i] + counts[1][i] + counts[2][i] + counts[3][i])
        .filter(|&c| c > 0)
        .map(|c| {
            let p = c as f64 / n;
            -p * p.log2()
        })
        .sum()
}

/// Worker pool shared by one encoder.
struct Pool {
    jobs: Option<SyncSender<Job>>,
    workers: Vec<JoinHandle<()>>,
    cancel: Arc<AtomicBool>,
}

impl Pool {
    fn new(threads: usize) -> io::Result<Pool> {
        let (tx, rx) = mpsc::sync_channel::<Job>(threads);
        let rx = Arc::new(Mutex::new(rx));
        let cancel = Arc::new(AtomicBool::new(false));
        let mut pool = Pool {
            jobs: Some(tx),
            workers: Vec::with_capacity(threads),
            cancel,
        };
        for i in 0..threads {
            let rx = Arc::clone(&rx);
            let cancel = Arc::clone(&pool.cancel);
            let handle = std::thread::Builder::new()
                .name(format!("cnbpkg-gzip-{i}"))
                .spawn(move || worker(&rx, &cancel))?;
            pool.workers.push(handle);
        }
        Ok(pool)
    }
}

fn worker(rx: &Mutex<Receiver<Job>>, cancel: &AtomicBool) {
    let mut deflaters = Deflaters::default();
    loop {
        let job = {
            let Ok(guard) = rx.lock() else { return };
            match guard.recv() {
                Ok(job) => job,
                Err(_) => return,
            }
        };
        if cancel.load(Ordering::Relaxed) {
            continue; // dropping `job.reply` tells nobody anything: the encoder is gone
        }
        let result = compress_member(&mut deflaters, &job.data, job.level).map(|member| Done {
            member,
            data: job.data,
        });
        let _ = job.reply.send(result);
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        self.cancel.store(true, Ordering::Relaxed);
        self.jobs = None;
        for w in self.workers.drain(..) {
            let _ = w.join(); // a worker's panic was already reported as an io::Error
        }
    }
}

/// gzip worker threads at most, whatever `--jobs` says: each keeps a libdeflate compressor and
/// up to two blocks in flight (a block's input and its member, ≈ 2 MiB each), so this bounds the
/// memory of one layer (measured: 20 MiB peak for a whole packaging run with 2 workers, 53 MiB
/// with 8, against the 64 MiB goal). Four workers compress about 300 MB/s, more than the rest
/// of the pipeline feeds. The bytes do not depend on it.
const MAX_GZIP_WORKERS: usize = 4;

/// Blocks in flight at most (each holds its input and its member).
const MAX_BLOCKS_IN_FLIGHT: usize = 2 * MAX_GZIP_WORKERS;

struct GzipEncoder<W: Write> {
    out: Option<W>,
    level: u32,
    block_size: usize,
    /// Input of the block being filled.
    buf: Vec<u8>,
    /// Whether any member was written (an empty stream still gets one, empty, member).
    member_written: bool,
    threads: usize,
    /// Worker pool (threads > 1), started on the first full block.
    pool: Option<Pool>,
    /// Compressors of the caller's thread (threads = 1).
    inline: Deflaters,
    /// Results of dispatched blocks, in input order.
    pending: VecDeque<Receiver<io::Result<Done>>>,
    /// Spare input buffers.
    spare: Vec<Vec<u8>>,
    /// Set after any error: the stream is unusable.
    failed: bool,
}

impl<W: Write> GzipEncoder<W> {
    fn new(out: W, level: u32, threads: usize, block_size: usize) -> Self {
        GzipEncoder {
            out: Some(out),
            level,
            block_size,
            buf: Vec::new(),
            member_written: false,
            threads,
            pool: None,
            inline: Deflaters::default(),
            pending: VecDeque::new(),
            spare: Vec::new(),
            failed: false,
        }
    }

    fn max_in_flight(&self) -> usize {
        (2 * self.threads).min(MAX_BLOCKS_IN_FLIGHT)
    }

    fn out(&mut self) -> &mut W {
        self.out.as_mut().expect("gzip encoder used after finish")
    }

    fn guard<T>(&mut self, r: io::Result<T>) -> io::Result<T> {
        if r.is_err() {
            self.failed = true;
            self.pool = None; // stop and join the workers now
            self.pending.clear();
        }
        r
    }

    fn write(&mut self, mut data: &[u8]) -> io::Result<usize> {
        if self.failed {
            return Err(failed_earlier());
        }
        let n = data.len();
        while !data.is_empty() {
            if self.buf.capacity() < self.block_size {
                self.buf.reserve_exact(self.block_size - self.buf.len());
            }
            let room = self.block_size - self.buf.len();
            let take = room.min(data.len());
            self.buf.extend_from_slice(&data[..take]);
            data = &data[take..];
            if self.buf.len() == self.block_size {
                let r = self.dispatch();
                self.guard(r)?;
            }
        }
        Ok(n)
    }

    /// Sends the filled block to a worker (or compresses it inline with one thread).
    fn dispatch(&mut self) -> io::Result<()> {
        let next = self.spare.pop().unwrap_or_default();
        let data = std::mem::replace(&mut self.buf, next);
        self.member_written = true;

        if self.threads <= 1 {
            let member = compress_member(&mut self.inline, &data, self.level)?;
            return self.emit(Done { member, data });
        }

        if self.pool.is_none() {
            self.pool = Some(Pool::new(self.threads)?);
        }
        let (reply, result) = mpsc::sync_channel(1);
        let job = Job {
            data,
            level: self.level,
            reply,
        };
        let sent = self
            .pool
            .as_ref()
            .and_then(|p| p.jobs.as_ref())
            .map(|tx| tx.send(job));
        match sent {
            Some(Ok(())) => {}
            _ => {
                return Err(io::Error::other(
                    "gzip compression workers stopped unexpectedly",
                ))
            }
        }
        self.pending.push_back(result);
        self.drain(false)?;
        while self.pending.len() >= self.max_in_flight() {
            self.drain_one()?;
        }
        Ok(())
    }

    /// Writes finished blocks from the front of the queue; with `all`, waits for every block.
    fn drain(&mut self, all: bool) -> io::Result<()> {
        while let Some(front) = self.pending.front() {
            if all {
                self.drain_one()?;
                continue;
            }
            match front.try_recv() {
                Ok(r) => {
                    self.pending.pop_front();
                    self.emit(r?)?;
                }
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => return Err(worker_died()),
            }
        }
        Ok(())
    }

    fn drain_one(&mut self) -> io::Result<()> {
        if let Some(front) = self.pending.pop_front() {
            let done = front.recv().map_err(|_| worker_died())??;
            self.emit(done)?;
        }
        Ok(())
    }

    fn emit(&mut self, done: Done) -> io::Result<()> {
        self.out().write_all(&done.member)?;
        let mut data = done.data;
        data.clear();
        if self.spare.len() < 2 {
            self.spare.push(data);
        }
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        if self.failed {
            return Err(failed_earlier());
        }
        let r = self.drain(true).and_then(|()| self.out().flush());
        self.guard(r)
    }

    fn finish(mut self) -> io::Result<W> {
        if self.failed {
            return Err(failed_earlier());
        }
        let r = self.finish_stream();
        self.guard(r)?;
        self.pool = None;
        Ok(self.out.take().expect("gzip encoder finished twice"))
    }

    fn finish_stream(&mut self) -> io::Result<()> {
        if !self.buf.is_empty() || !self.member_written {
            self.dispatch()?;
        }
        self.drain(true)?;
        self.out().flush()
    }
}

fn worker_died() -> io::Error {
    io::Error::other("a gzip compression worker panicked")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A block starting with this makes `compress_block` panic (tests only).
    pub(super) const PANIC_MARKER: &[u8] = b"\0cnbpkg-test: panic in gzip worker\0";

    /// A small block size for tests (many members from little input).
    const WINDOW: usize = 32 * 1024;

    #[test]
    fn compress_worker_panic_is_an_error_not_a_hang() {
        for threads in [2, 3] {
            let mut data = sample(10 * WINDOW);
            data.extend_from_slice(PANIC_MARKER);
            data.resize(data.len() + 5 * WINDOW, 7);
            // 320 KiB blocks: the second block starts with the marker and panics.
            let mut e = gzip_encoder_with_block_size(6, threads, WINDOW * 10, Vec::new());
            let r = e.write_all(&data).and_then(|()| e.finish().map(|_| ()));
            let err = r.expect_err("a panicking worker must fail the stream");
            assert!(err.to_string().contains("panicked"), "{err}");
        }
    }

    fn gz(data: &[u8], threads: usize, block: usize) -> Vec<u8> {
        let mut e = gzip_encoder_with_block_size(6, threads, block, Vec::new());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    fn gunzip(data: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        decoder(LayerEncoding::Gzip, data)
            .read_to_end(&mut out)
            .unwrap();
        out
    }

    fn sample(n: usize) -> Vec<u8> {
        let mut x = 0x9e37_79b9_u32;
        (0..n)
            .map(|i| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                if (i / 5000) % 2 == 0 {
                    b"abcdefgh"[(x % 8) as usize]
                } else {
                    x as u8
                }
            })
            .collect()
    }

    #[test]
    fn compress_parse_and_media_types() {
        assert_eq!(Compression::parse("gzip"), Some(Compression::DEFAULT));
        assert_eq!(
            Compression::parse("zstd"),
            Some(Compression::Zstd { level: 3 })
        );
        assert_eq!(Compression::parse("none"), Some(Compression::None));
        assert_eq!(Compression::parse("GZIP"), None);
        assert_eq!(
            Compression::DEFAULT.media_type(),
            oci::MEDIA_TYPE_LAYER_GZIP
        );
        assert_eq!(
            Compression::Zstd { level: 3 }.encoding(),
            LayerEncoding::Zstd
        );
        assert_eq!(Compression::None.media_type(), oci::MEDIA_TYPE_LAYER_TAR);
        for c in [
            Compression::DEFAULT,
            Compression::Zstd { level: 3 },
            Compression::None,
        ] {
            assert_eq!(
                Compression::parse(c.name()).map(|p| p.encoding()),
                Some(c.encoding())
            );
        }
    }

    #[test]
    fn compress_gzip_header_and_empty_stream() {
        let out = gz(b"", 1, GZIP_BLOCK_SIZE);
        assert_eq!(&out[..10], &[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff]);
        // one member: an empty final stored block (libdeflate's choice), CRC 0, ISIZE 0
        assert_eq!(&out[10..], &[1, 0, 0, 0xff, 0xff, 0, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(gunzip(&out), b"");
    }

    #[test]
    fn compress_gzip_writes_one_member_per_block() {
        let data = sample(3 * WINDOW + 5);
        let out = gz(&data, 2, WINDOW);
        // Walk the members by decoding each with a single-member decoder.
        let mut rest = &out[..];
        let mut members = 0;
        let mut back = Vec::new();
        while !rest.is_empty() {
            assert_eq!(&rest[..10], &[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff]);
            let mut d = flate2::bufread::GzDecoder::new(rest);
            d.read_to_end(&mut back).unwrap();
            rest = d.into_inner();
            members += 1;
        }
        assert_eq!(members, 4);
        assert_eq!(back, data);
    }

    #[test]
    fn compress_gzip_small_blocks_roundtrip_and_thread_independence() {
        let data = sample(40 * WINDOW + 123);
        let one = gz(&data, 1, WINDOW);
        assert_eq!(gunzip(&one), data);
        for t in [2, 3, 5] {
            assert_eq!(gz(&data, t, WINDOW), one, "threads={t}");
        }
    }

    #[test]
    fn compress_zstd_and_none_roundtrip() {
        let data = sample(300_000);
        for c in [Compression::Zstd { level: 3 }, Compression::None] {
            let mut e = encoder(c, 2, Vec::new());
            e.write_all(&data).unwrap();
            let out = e.finish().unwrap();
            let mut back = Vec::new();
            decoder(c.encoding(), &out[..])
                .read_to_end(&mut back)
                .unwrap();
            assert_eq!(back, data, "{c}");
        }
    }
}

#[cfg(test)]
mod stream_end_tests {
    use super::*;
    use std::io::{Read, Write};

    /// A damaged or cut compressed stream must fail when read to its end: the trailer (gzip CRC
    /// and length, zstd checksum) is what catches content damage the decoder cannot see.
    #[test]
    fn damaged_or_cut_streams_fail_when_read_to_the_end() {
        let data: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        for c in [Compression::Zstd { level: 3 }, Compression::DEFAULT] {
            let mut e = encoder(c, 2, Vec::new());
            e.write_all(&data).unwrap();
            let out = e.finish().unwrap();
            let read = |bytes: &[u8]| {
                let mut back = Vec::new();
                decoder(c.encoding(), bytes).read_to_end(&mut back)
            };
            assert!(read(&out).is_ok(), "{c}");
            let mut bad = out.clone();
            let n = bad.len();
            bad[n - 3] ^= 0x55;
            assert!(read(&bad).is_err(), "{c}: damaged trailer accepted");
            assert!(read(&out[..n - 4]).is_err(), "{c}: cut stream accepted");
            assert!(read(&out[..n / 2]).is_err(), "{c}: half a stream accepted");
        }
    }
}
