//! Compression determinism: bytes depend only on input, compression and level; every reader
//! (flate2's multi-member decoder, gzip(1), Python) decodes our gzip members; errors surface instead of hanging.

use std::io::{self, Read, Write};
use std::process::Command;

use cnbpkg::digest::Digest;
use cnbpkg::internals::{decoder, encoder, GZIP_BLOCK_SIZE};
use cnbpkg::oci::LayerEncoding;
use cnbpkg::Compression;

use crate::support::Rng;

/// Alternating runs of source-like text, zeros and random bytes (compressible and not).
fn mixed(len: usize, seed: u64) -> Vec<u8> {
    const WORDS: &[&str] = &[
        "fn ",
        "let ",
        "mut ",
        "self",
        "return ",
        "buildpack",
        "layer",
        "{\n",
        "}\n",
        "    ",
        "=> ",
        "Some(",
        "None",
        "::",
        "0x1f",
        "digest",
        "sha256:",
        "\n",
        "// ",
        "tar",
    ];
    let mut rng = Rng::new(seed);
    let mut out = Vec::with_capacity(len);
    while out.len() < len {
        let run = 1 + (rng.next_u64() % 200_000) as usize;
        let run = run.min(len - out.len());
        match rng.next_u64() % 3 {
            0 => {
                let end = out.len() + run;
                while out.len() < end {
                    let w = WORDS[(rng.next_u64() % WORDS.len() as u64) as usize].as_bytes();
                    let take = w.len().min(end - out.len());
                    out.extend_from_slice(&w[..take]);
                }
            }
            1 => out.resize(out.len() + run, 0),
            _ => {
                for _ in 0..run {
                    out.push(rng.next_u64() as u8);
                }
            }
        }
    }
    out
}

fn inputs() -> Vec<(String, Vec<u8>)> {
    let b = GZIP_BLOCK_SIZE;
    vec![
        ("empty".into(), Vec::new()),
        ("1 byte".into(), b"x".to_vec()),
        ("one block".into(), mixed(b, 1)),
        ("block+1".into(), mixed(b + 1, 2)),
        ("three blocks".into(), mixed(3 * b, 3)),
        ("5 MB mixed".into(), mixed(5_000_000, 4)),
    ]
}

fn compress(c: Compression, threads: usize, data: &[u8]) -> Vec<u8> {
    let mut e = encoder(c, threads, Vec::new());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

/// Same, but fed in small, irregular writes.
fn compress_chunked(c: Compression, threads: usize, data: &[u8]) -> Vec<u8> {
    let mut e = encoder(c, threads, Vec::new());
    let mut rng = Rng::new(99);
    let mut rest = data;
    while !rest.is_empty() {
        let n = (1 + (rng.next_u64() % 70_000) as usize).min(rest.len());
        e.write_all(&rest[..n]).unwrap();
        rest = &rest[n..];
        if rng.next_u64().is_multiple_of(7) {
            e.flush().unwrap(); // must not change the bytes
        }
    }
    e.finish().unwrap()
}

fn decompress(enc: LayerEncoding, data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    decoder(enc, data).read_to_end(&mut out).unwrap();
    out
}

const MODES: [Compression; 5] = [
    Compression::Gzip { level: 1 },
    Compression::Gzip { level: 6 },
    Compression::DEFAULT,
    Compression::Zstd { level: 3 },
    Compression::None,
];

#[test]
fn compress_output_is_independent_of_threads_and_write_sizes() {
    for (name, data) in inputs() {
        for c in MODES {
            let reference = compress(c, 1, &data);
            assert_eq!(
                decompress(c.encoding(), &reference),
                data,
                "{c} round trip on {name}"
            );
            for threads in [2, 3, 8] {
                let out = compress(c, threads, &data);
                assert!(
                    out == reference,
                    "{c} with {threads} threads differs from 1 thread on {name}"
                );
            }
            let chunked = compress_chunked(c, 2, &data);
            assert!(
                chunked == reference,
                "{c} fed in small writes differs on {name}"
            );
        }
    }
}

#[test]
fn compress_zero_threads_means_one() {
    let data = mixed(1_000_000, 5);
    for c in MODES {
        assert!(compress(c, 0, &data) == compress(c, 1, &data), "{c}");
    }
}

#[test]
fn compress_none_is_pass_through() {
    let data = mixed(700_000, 6);
    assert_eq!(compress(Compression::None, 4, &data), data);
}

/// gzip is one member per block: each has the fixed header, and the CRC and length of its own
/// block in its trailer; a single-member reader sees the first block only.
#[test]
fn compress_gzip_is_one_member_per_block_with_fixed_headers_and_trailers() {
    let data = mixed(3 * GZIP_BLOCK_SIZE + 17, 7);
    for level in [1u32, 6, 9, 12] {
        let out = compress(Compression::Gzip { level }, 2, &data);
        let xfl = match level {
            1 => 4,
            6 => 0,
            _ => 2,
        };
        let mut rest = &out[..];
        let mut blocks = data.chunks(GZIP_BLOCK_SIZE);
        while !rest.is_empty() {
            assert_eq!(
                &rest[..10],
                &[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, xfl, 0xff],
                "level {level}"
            );
            let block = blocks.next().expect("more members than blocks");
            let mut d = flate2::bufread::GzDecoder::new(rest);
            let mut back = Vec::new();
            d.read_to_end(&mut back).unwrap();
            assert!(back == block, "level {level}: a member is not its block");
            rest = d.into_inner();
            let end = out.len() - rest.len();
            assert_eq!(out[end - 8..end - 4], crc32fast::hash(block).to_le_bytes());
            assert_eq!(out[end - 4..end], (block.len() as u32).to_le_bytes());
        }
        assert!(
            blocks.next().is_none(),
            "level {level}: fewer members than blocks"
        );
    }
}

/// Guards the output format: a libdeflate update, a block-size or level change shows up here
/// (the gzip digest changed on purpose when gzip became libdeflate members).
#[test]
fn compress_golden_digests() {
    let data = mixed(2_000_000, 8);
    let gz = compress(Compression::DEFAULT, 2, &data);
    let zs = compress(Compression::Zstd { level: 3 }, 2, &data);
    assert_eq!(
        (Digest::of(&gz).hex(), gz.len()),
        (
            "ec81010a5f138db413642980542068f38004edce619ed908c839f2f0e9319a02".to_string(),
            758860
        ),
        "gzip default-level output changed"
    );
    assert_eq!(
        (Digest::of(&zs).hex(), zs.len()),
        (
            "908d5ed01a0eafe90a7a9a1c092d25f2f635da8930cf6822684c5acd00e16b87".to_string(),
            747916
        ),
        "zstd-3 output changed"
    );
}

#[test]
fn compress_zstd_frame_has_checksum_and_no_content_size() {
    let out = compress(Compression::Zstd { level: 3 }, 2, &mixed(100_000, 9));
    assert_eq!(&out[..4], &[0x28, 0xb5, 0x2f, 0xfd]);
    let descriptor = out[4];
    assert_eq!(descriptor & 0b0000_0100, 0b100, "content checksum flag");
    assert_eq!(descriptor >> 6, 0, "no frame content size field");
}

fn run_with_stdin(cmd: &mut Command, input: &[u8]) -> io::Result<(bool, Vec<u8>)> {
    let out = crate::support::tool::output_with_stdin(cmd, input)?;
    Ok((out.status.success(), out.stdout))
}

#[test]
fn compress_gzip_command_line_decodes_byte_exactly() {
    for (name, data) in inputs() {
        let gz = compress(Compression::DEFAULT, 2, &data);
        let (ok, _) = run_with_stdin(Command::new("gzip").arg("-t"), &gz)
            .expect("the gzip command must be installed for this test");
        assert!(ok, "gzip -t rejects our stream for {name}");
        let (ok, out) = run_with_stdin(Command::new("gzip").arg("-dc"), &gz).unwrap();
        assert!(ok && out == data, "gzip -dc output differs for {name}");
    }
}

#[test]
fn compress_python_gzip_decodes() {
    let data = mixed(3 * GZIP_BLOCK_SIZE + 5, 10);
    let gz = compress(Compression::DEFAULT, 2, &data);
    let script = "import gzip,sys,hashlib; d=gzip.decompress(sys.stdin.buffer.read()); print(hashlib.sha256(d).hexdigest())";
    match run_with_stdin(Command::new("python3").args(["-c", script]), &gz) {
        Ok((ok, out)) => {
            assert!(ok, "python3 gzip.decompress failed");
            assert_eq!(
                String::from_utf8(out).unwrap().trim(),
                Digest::of(&data).hex()
            );
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            eprintln!("python3 not installed; skipped")
        }
        Err(e) => panic!("running python3: {e}"),
    }
}

#[test]
fn compress_decoder_reads_multi_member_gzip() {
    let a = mixed(300_000, 11);
    let b = mixed(200_000, 12);
    let mut both = compress(Compression::DEFAULT, 2, &a);
    both.extend(compress(Compression::Gzip { level: 1 }, 1, &b));
    let mut expected = a.clone();
    expected.extend_from_slice(&b);
    assert!(decompress(LayerEncoding::Gzip, &both) == expected);

    let mut frames = compress(Compression::Zstd { level: 3 }, 1, &a);
    frames.extend(compress(Compression::Zstd { level: 1 }, 1, &b));
    assert!(decompress(LayerEncoding::Zstd, &frames) == expected);
}

/// Counts what reaches the output without keeping it.
struct CountingSink {
    written: u64,
}

impl Write for CountingSink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.written += buf.len() as u64;
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Feeds 64 MiB of incompressible input (seeded) in 8 KiB writes to `c` on `threads` threads
/// and returns the most input ever held back: fed but not yet written out (random data does
/// not shrink, so output ≈ input written out so far).
fn most_input_held_back(c: Compression, threads: usize, seed: u64) -> u64 {
    const TOTAL: usize = 64 << 20;
    let mut e = encoder(c, threads, CountingSink { written: 0 });
    let mut rng = Rng::new(seed);
    let mut chunk = vec![0u8; 8192];
    let mut fed = 0usize;
    let mut most = 0u64;
    while fed < TOTAL {
        for b in chunk.iter_mut() {
            *b = rng.next_u64() as u8;
        }
        e.write_all(&chunk).unwrap();
        fed += chunk.len();
        let lag = (fed as u64).saturating_sub(e.get_ref().unwrap().written);
        most = most.max(lag);
    }
    let sink = e.finish().unwrap();
    assert!(sink.written >= TOTAL as u64);
    most
}

/// Output must keep flowing, so that at any point the input not yet written out is bounded by
/// the in-flight blocks (≈ 2 × threads + 2 blocks), whatever the stream length. Nothing here
/// measures time.
#[test]
fn compress_gzip_memory_is_bounded_while_streaming() {
    for threads in [1usize, 2, 8] {
        let held = most_input_held_back(Compression::Gzip { level: 1 }, threads, 13);
        let bound = ((2 * threads.min(4) + 3) * GZIP_BLOCK_SIZE) as u64;
        assert!(
            held <= bound,
            "{threads} threads: {held} input bytes held back (bound {bound})"
        );
    }
}

/// The zstd analogue: however many threads are asked for, libzstd gets at most four workers,
/// so the input held back (jobs in flight, each 2 MiB, with their overlap) stays bounded; with
/// one worker per thread asked for, 64 threads held back 56 of the 64 MiB. Nothing here
/// measures time.
#[test]
fn compress_zstd_memory_is_bounded_whatever_the_threads() {
    const JOB: u64 = 2 << 20;
    for threads in [1usize, 4, 64] {
        let held = most_input_held_back(Compression::Zstd { level: 3 }, threads, 17);
        let bound = (2 * threads.min(4) as u64 + 4) * JOB;
        assert!(
            held <= bound,
            "{threads} threads: {held} input bytes held back (bound {bound})"
        );
    }
}

/// A writer that fails after `limit` bytes.
struct FailingWriter {
    limit: usize,
    written: usize,
}

impl Write for FailingWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.written + buf.len() > self.limit {
            return Err(io::Error::new(
                io::ErrorKind::StorageFull,
                "disk full (test)",
            ));
        }
        self.written += buf.len();
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[test]
fn compress_writer_errors_propagate() {
    let data = mixed(6_000_000, 14);
    for c in MODES {
        for threads in [1, 2, 8] {
            for limit in [0usize, 5, 100_000] {
                let mut e = encoder(c, threads, FailingWriter { limit, written: 0 });
                let result = e.write_all(&data).and_then(|()| e.finish().map(|_| ()));
                let err = result.expect_err("a failing writer must fail the encoder");
                assert!(
                    err.kind() == io::ErrorKind::StorageFull
                        || err.to_string().contains("disk full"),
                    "{c}, {threads} threads: unexpected error {err}"
                );
            }
        }
    }
}

#[test]
fn compress_later_calls_fail_after_an_error() {
    // More blocks than are ever in flight, so output is written (and fails) before `finish`.
    let data = mixed(6 * GZIP_BLOCK_SIZE, 15);
    let mut e = encoder(
        Compression::DEFAULT,
        2,
        FailingWriter {
            limit: 10,
            written: 0,
        },
    );
    assert!(e.write_all(&data).is_err());
    assert!(e.write_all(b"more").is_err());
    assert!(e.finish().is_err());
}

#[test]
fn compress_dropping_unfinished_encoder_does_not_hang() {
    let data = mixed(3_000_000, 16);
    for threads in [2, 8] {
        let mut e = encoder(Compression::DEFAULT, threads, Vec::new());
        e.write_all(&data).unwrap();
        drop(e);
    }
}

/// Incompressible blocks are stored, not deflated: random data grows only by the deflate and
/// gzip framing, decodes exactly, and still does not depend on the thread count.
#[test]
fn compress_gzip_stores_incompressible_blocks() {
    let mut rng = Rng::new(0x9E37_79B9_7F4A_7C15);
    let data: Vec<u8> = (0..3 * GZIP_BLOCK_SIZE + 1000)
        .map(|_| (rng.next_u64() >> 24) as u8)
        .collect();
    let one = compress(Compression::DEFAULT, 1, &data);
    let two = compress(Compression::DEFAULT, 2, &data);
    assert!(one == two);
    // Stored blocks: 5 bytes per 64 KiB, plus 18 bytes of header and trailer per member.
    assert!(
        one.len() < data.len() + data.len() / 1000,
        "{} vs {}",
        one.len(),
        data.len()
    );
    let mut back = Vec::new();
    flate2::read::MultiGzDecoder::new(&one[..])
        .read_to_end(&mut back)
        .unwrap();
    assert!(back == data);
}
