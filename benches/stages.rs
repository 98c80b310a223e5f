//! Stage micro-benchmarks: SHA-256, gzip (ours, libdeflate one member per block, at several
//! levels and thread counts; flate2's single-threaded `GzEncoder` (zlib-rs) as the baseline; `gzip` and `pigz` commands as peers) and zstd.
//!
//! Run with `cargo bench --bench stages`. Inputs are built at run time and never stored:
//! * `binaries`: regular files from `/usr/bin` and `/usr/lib/x86_64-linux-gnu` (or
//!   `/usr/lib`), concatenated in sorted path order;
//! * `text`: generated source-like text (deterministic).
//!
//! Environment: `CNBPKG_BENCH_MB` (size of each corpus, default 100), `CNBPKG_BENCH_REPS`
//! (repetitions, best time wins, default 2), `CNBPKG_BENCH_ONLY` (`binaries` or `text`),
//! `CNBPKG_BENCH_LEVELS` (gzip levels, default `1,3,6`), `CNBPKG_BENCH_BLOCKS=1` (also sweep
//! gzip block sizes), `CNBPKG_BENCH_FILTER` (only the rows whose name contains it, e.g.
//! `cnbpkg, 2`), `CNBPKG_BENCH_FILE` (bench this file as a further corpus, e.g. an uncompressed
//! layer tar another tool produced). CPU MB/s (user + system time) is the steadier figure on a
//! shared machine.

use std::fs;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use cnbpkg::digest::Digest;
use cnbpkg::internals::{encoder, gzip_encoder_with_block_size};
use cnbpkg::Compression;

/// Counts bytes and drops them.
struct Count(u64);

impl Write for Count {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0 += buf.len() as u64;
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Feeds `data` in 1 MiB writes, as a tar builder would stream it.
fn feed(w: &mut impl Write, data: &[u8]) {
    for chunk in data.chunks(1 << 20) {
        w.write_all(chunk).unwrap();
    }
}

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn collect_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let Ok(ft) = entry.file_type() else { continue };
        if ft.is_dir() {
            collect_files(&entry.path(), out);
        } else if ft.is_file() {
            out.push(entry.path());
        }
    }
}

/// System binaries and libraries, concatenated in sorted order up to `limit` bytes.
fn binaries(limit: usize) -> Vec<u8> {
    let mut files = Vec::new();
    collect_files(Path::new("/usr/bin"), &mut files);
    let lib = Path::new("/usr/lib/x86_64-linux-gnu");
    collect_files(
        if lib.is_dir() {
            lib
        } else {
            Path::new("/usr/lib")
        },
        &mut files,
    );
    files.sort();
    let mut data = Vec::with_capacity(limit);
    for f in files {
        if data.len() >= limit {
            break;
        }
        if let Ok(mut file) = fs::File::open(&f) {
            let _ = (&mut file)
                .take((limit - data.len()) as u64)
                .read_to_end(&mut data);
        }
    }
    data
}

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    /// Skewed pick in 0..n: small indices are much more frequent (roughly Zipf-like).
    fn skewed(&mut self, n: usize) -> usize {
        let a = self.next() % n as u64;
        let b = self.next() % (a + 1);
        b as usize
    }
}

/// Deterministic source-like text: indented lines of keywords, identifiers, literals and
/// comments drawn from skewed distributions, so gzip finds realistic repetition.
fn text(limit: usize) -> Vec<u8> {
    const KEYWORDS: &[&str] = &[
        "let", "fn", "if", "else", "return", "for", "in", "match", "pub", "struct", "impl", "use",
        "const", "while", "def", "class", "import", "from", "self", "None", "True", "func", "var",
    ];
    const PUNCT: &[&str] = &[
        " = ", "(", ")", ", ", ".", ": ", " {", "}", ";", " + ", " == ", "[", "]", " -> ",
    ];
    let mut rng = Rng(0x5eed_cafe_f00d);
    // A vocabulary of made-up identifiers with a skewed frequency.
    let syllables = [
        "buf", "len", "layer", "pack", "tar", "id", "ver", "cfg", "path", "err", "data", "idx",
        "node", "map", "key",
    ];
    let idents: Vec<String> = (0..4000)
        .map(|i| {
            let mut s = String::new();
            let parts = 1 + i % 3;
            for p in 0..parts {
                let syl = syllables[(i * 7 + p * 13 + i / 15) % syllables.len()];
                if p > 0 {
                    s.push('_');
                }
                s.push_str(syl);
            }
            if i >= syllables.len() * 3 {
                s.push_str(&(i % 97).to_string());
            }
            s
        })
        .collect();
    let mut out = Vec::with_capacity(limit + 256);
    let mut depth = 0usize;
    while out.len() < limit {
        match rng.next() % 10 {
            0 => depth = depth.saturating_sub(1),
            1 if depth < 6 => depth += 1,
            _ => {}
        }
        out.extend(std::iter::repeat_n(b' ', depth * 4));
        if rng.next().is_multiple_of(9) {
            out.extend_from_slice(b"// ");
            for _ in 0..(3 + rng.next() % 10) {
                out.extend_from_slice(idents[rng.skewed(idents.len())].as_bytes());
                out.push(b' ');
            }
        } else {
            out.extend_from_slice(KEYWORDS[rng.skewed(KEYWORDS.len())].as_bytes());
            out.push(b' ');
            for _ in 0..(1 + rng.next() % 7) {
                match rng.next() % 6 {
                    0 => out.extend_from_slice((rng.next() % 5000).to_string().as_bytes()),
                    1 => {
                        out.push(b'"');
                        out.extend_from_slice(idents[rng.skewed(idents.len())].as_bytes());
                        out.push(b'"');
                    }
                    _ => out.extend_from_slice(idents[rng.skewed(idents.len())].as_bytes()),
                }
                out.extend_from_slice(PUNCT[rng.skewed(PUNCT.len())].as_bytes());
            }
        }
        out.push(b'\n');
    }
    out.truncate(limit);
    out
}

/// CPU seconds (user + system) used so far by this process and its finished children.
fn cpu_seconds() -> f64 {
    let mut total = 0.0;
    for who in [libc::RUSAGE_SELF, libc::RUSAGE_CHILDREN] {
        // SAFETY: getrusage only writes the struct it is given.
        let mut u: libc::rusage = unsafe { std::mem::zeroed() };
        if unsafe { libc::getrusage(who, &mut u) } == 0 {
            for t in [u.ru_utime, u.ru_stime] {
                total += t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
            }
        }
    }
    total
}

/// Best wall time and best CPU time over `reps` runs of `f`, which returns the output size.
/// CPU time is the steadier figure on a shared machine.
fn measure(reps: usize, mut f: impl FnMut() -> u64) -> (f64, u64, f64) {
    let mut best = f64::INFINITY;
    let mut best_cpu = f64::INFINITY;
    let mut size = 0;
    for _ in 0..reps.max(1) {
        let t = Instant::now();
        let c = cpu_seconds();
        size = f();
        best = best.min(t.elapsed().as_secs_f64());
        best_cpu = best_cpu.min(cpu_seconds() - c);
    }
    (best, size, best_cpu)
}

fn ours(c: Compression, threads: usize, data: &[u8]) -> u64 {
    let mut e = encoder(c, threads, Count(0));
    feed(&mut e, data);
    e.finish().unwrap().0
}

/// Runs `program args < file`, counting stdout. `None` if the program is not installed.
fn command(program: &str, args: &[&str], file: &Path) -> Option<u64> {
    let mut child = Command::new(program)
        .args(args)
        .stdin(fs::File::open(file).ok()?)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let n = io::copy(&mut child.stdout.take().unwrap(), &mut Count(0)).ok()?;
    child.wait().ok()?.success().then_some(n)
}

struct Row {
    name: String,
    secs: f64,
    cpu: f64,
    size: Option<u64>,
}

fn print_table(corpus: &str, len: usize, rows: &[Row], baseline: &str) {
    let mb = len as f64 / 1e6;
    let base = rows.iter().find(|r| r.name == baseline);
    println!("\n{corpus}: {mb:.1} MB input; baseline = {baseline}");
    println!(
        "{:<44} {:>9} {:>9} {:>7} {:>10} {:>10}",
        "stage", "MB/s", "CPU MB/s", "ratio", "speed/base", "size/base"
    );
    for r in rows {
        let speed = mb / r.secs;
        let ratio = r
            .size
            .map(|s| format!("{:.4}", s as f64 / len as f64))
            .unwrap_or_else(|| "-".into());
        let (vs_speed, vs_size) = match (base, r.size) {
            (Some(b), Some(s)) => (
                format!("{:.2}x", b.secs / r.secs),
                format!("{:.2}%", 100.0 * s as f64 / b.size.unwrap_or(1) as f64),
            ),
            (Some(b), None) => (format!("{:.2}x", b.secs / r.secs), "-".into()),
            _ => ("-".into(), "-".into()),
        };
        println!(
            "{:<44} {:>9.1} {:>9.1} {:>7} {:>10} {:>10}",
            r.name,
            speed,
            mb / r.cpu,
            ratio,
            vs_speed,
            vs_size
        );
    }
}

fn bench_corpus(corpus: &str, data: &[u8], reps: usize, blocks: bool, levels: &[u32]) {
    let filter = std::env::var("CNBPKG_BENCH_FILTER").unwrap_or_default();
    let mut rows = Vec::new();
    let mut row = |name: String, f: &mut dyn FnMut() -> (f64, u64, f64), has_size: bool| {
        if !name.contains(filter.as_str()) {
            return;
        }
        let (secs, size, cpu) = f();
        eprintln!("  {corpus}: {name} done");
        rows.push(Row {
            name,
            secs,
            cpu,
            size: has_size.then_some(size),
        });
    };

    row(
        "sha256 (Digest::of)".into(),
        &mut || measure(reps, || Digest::of(data).bytes()[0] as u64),
        false,
    );

    for &level in levels {
        row(
            format!("gzip-{level} flate2 GzEncoder, 1 thread"),
            &mut || {
                measure(reps, || {
                    let mut e =
                        flate2::write::GzEncoder::new(Count(0), flate2::Compression::new(level));
                    feed(&mut e, data);
                    e.finish().unwrap().0
                })
            },
            true,
        );
    }
    for &level in levels {
        for threads in [1usize, 2] {
            row(
                format!("gzip-{level} cnbpkg, {threads} thread(s)"),
                &mut || measure(reps, || ours(Compression::Gzip { level }, threads, data)),
                true,
            );
        }
    }
    if blocks {
        for &level in levels {
            for kib in [256usize, 512, 2048] {
                row(
                    format!("gzip-{level} cnbpkg, 2 threads, {kib} KiB blocks"),
                    &mut || {
                        measure(reps, || {
                            let mut e =
                                gzip_encoder_with_block_size(level, 2, kib * 1024, Count(0));
                            feed(&mut e, data);
                            e.finish().unwrap().0
                        })
                    },
                    true,
                );
            }
        }
    }
    for workers in [1usize, 2] {
        row(
            format!("zstd-3 cnbpkg, {workers} worker(s)"),
            &mut || measure(reps, || ours(Compression::Zstd { level: 3 }, workers, data)),
            true,
        );
    }

    // Command-line peers read the same bytes from a temporary file (page cache warm).
    let mut tmp = tempfile::NamedTempFile::new().unwrap();
    tmp.write_all(data).unwrap();
    tmp.flush().unwrap();
    let peers: [(&str, &[&str]); 4] = [
        ("gzip", &["-6", "-c"]),
        ("pigz", &["-p", "2", "-6", "-c"]),
        ("pigz", &["-p", "2", "-1", "-c"]),
        ("zstd", &["-3", "-T2", "-c"]),
    ];
    for (program, args) in peers {
        let name = format!("{program} {} (command)", args.join(" "));
        if !name.contains(filter.as_str()) {
            continue;
        }
        if command(program, &["--version"], tmp.path()).is_none() {
            eprintln!("  {program} not installed; skipped");
            continue;
        }
        let mut failed = false;
        let m = measure(reps, || {
            command(program, args, tmp.path()).unwrap_or_else(|| {
                failed = true;
                0
            })
        });
        if !failed {
            row(name, &mut || m, true);
        }
    }
    print_table(
        corpus,
        data.len(),
        &rows,
        "gzip-6 flate2 GzEncoder, 1 thread",
    );
}

fn main() {
    // `cargo bench` passes `--bench`; a filter argument is ignored.
    let mb = env_usize("CNBPKG_BENCH_MB", 100);
    let reps = env_usize("CNBPKG_BENCH_REPS", 2);
    let only = std::env::var("CNBPKG_BENCH_ONLY").unwrap_or_default();
    let blocks = std::env::var("CNBPKG_BENCH_BLOCKS").is_ok_and(|v| v == "1");
    let mut levels: Vec<u32> = std::env::var("CNBPKG_BENCH_LEVELS")
        .unwrap_or_default()
        .split(',')
        .filter_map(|l| l.trim().parse().ok())
        .collect();
    if levels.is_empty() {
        levels = vec![1, 3, 6];
    }
    if !levels.contains(&6) {
        levels.push(6); // the baseline row
    }
    let limit = mb * 1_000_000;
    println!(
        "cnbpkg stage benchmarks: {} CPUs, {mb} MB per corpus, best of {reps}",
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    if only.is_empty() || only == "binaries" {
        let data = binaries(limit);
        bench_corpus("binaries", &data, reps, blocks, &levels);
    }
    if only.is_empty() || only == "text" {
        let data = text(limit);
        bench_corpus("text", &data, reps, blocks, &levels);
    }
    if let Ok(path) = std::env::var("CNBPKG_BENCH_FILE") {
        let data = fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        bench_corpus("file", &data, reps, blocks, &levels);
    }
}
