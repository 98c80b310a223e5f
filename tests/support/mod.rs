//! What the integration tests share: running the `cnbpkg` binary isolated ([`child`]) and the
//! external tools ([`tool`]), with bounded waits ([`wait`]); sample and hand-written buildpack
//! trees ([`files`]); hand-built, hostile archives ([`rawtar`]); a seeded RNG; test packages,
//! a real registry, a hostile one, PKI, a token server and fault-injecting proxies for the push
//! tests; builder inputs made by umoci and independent readers of a builder ([`builder`]); and
//! running a test body in a child process when it needs process-wide state.
// Each test binary uses its own part of these helpers.
#![allow(dead_code, unused_imports)]

pub mod builder;
pub mod child;
pub mod files;
pub mod hostile;
pub mod lifecycle;
pub mod packages;
pub mod pki;
pub mod proxy;
pub mod rawtar;
pub mod registry;
pub mod token;
pub mod tool;
pub mod wait;

pub use child::{cnbpkg, cnbpkg_command, cnbpkg_in, fails, ok};
pub use files::{copy_tree, list, minimal_buildpack, repo, sample, write_file};
pub use tool::{require, run, skopeo_put, skopeo_raw, tool, tool_ok, unpack_with_umoci};

use std::process::Command;

/// The one seeded generator of the tests (xorshift64: shifts 13, 7, 17), for test data and
/// fault schedules. The same seed always gives the same bytes: golden digests depend on it.
#[derive(Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator started at `seed` (made odd, so seed 0 works too).
    pub fn new(seed: u64) -> Self {
        Rng(seed | 1)
    }

    /// Next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// Uniform in `0..n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    /// `n` random bytes: successive outputs in little-endian order.
    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(n + 8);
        while out.len() < n {
            out.extend_from_slice(&self.next_u64().to_le_bytes());
        }
        out.truncate(n);
        out
    }

    /// Write `words` outputs (8 bytes each, little-endian) to `w`: large, poorly compressible
    /// files without holding them in memory.
    pub fn write_words(&mut self, w: &mut impl std::io::Write, words: usize) {
        use std::io::Write as _;
        let mut w = std::io::BufWriter::new(w);
        for _ in 0..words {
            w.write_all(&self.next_u64().to_le_bytes()).unwrap();
        }
        w.flush().unwrap();
    }
}

/// Options for an in-process push to a plain-HTTP registry, isolated from the user's
/// credential files.
pub fn settings() -> cnbpkg::registry::PushSettings {
    let mut s = cnbpkg::registry::PushSettings::default();
    s.credential_files = Some(Vec::new());
    s.initial_backoff = std::time::Duration::from_millis(50);
    s.max_backoff = std::time::Duration::from_millis(500);
    s
}

/// Options for an in-process push of `package` to `reference` on a plain-HTTP registry.
pub fn push_options(
    package: impl Into<std::path::PathBuf>,
    reference: impl Into<String>,
) -> cnbpkg::registry::PushOptions {
    let mut o = cnbpkg::registry::PushOptions::new(package, reference);
    o.insecure = true;
    o
}

/// Push in-process, collecting status lines as the CLI prints them (`Verb message`,
/// `warning: message`; details and transfers left out).
pub fn push(
    opts: &cnbpkg::registry::PushOptions,
    settings: &cnbpkg::registry::PushSettings,
) -> (cnbpkg::Result<cnbpkg::registry::PushReport>, Vec<String>) {
    use cnbpkg::events::Event;
    let lines = std::sync::Mutex::new(Vec::new());
    let sink = |e: &Event<'_>| {
        let line = match *e {
            Event::Status { verb, message } => format!("{verb} {message}"),
            Event::Warning { message } => format!("warning: {message}"),
            _ => return,
        };
        lines.lock().unwrap().push(line);
    };
    let r = cnbpkg::registry::push_with(opts, settings, &sink);
    (r, lines.into_inner().unwrap())
}

/// The umask is one per process and the test harness runs tests on parallel threads, so a test
/// that needs another umask runs its body in a child of its own: the test binary again, with
/// only the test `name` in `module` (pass `module_path!()`) selected, started with `mask`.
/// Returns `true` in that child (run the body) and `false` in the parent, after the child
/// passed.
pub fn with_umask_in_child(module: &str, name: &str, mask: libc::mode_t) -> bool {
    use std::os::unix::process::CommandExt;
    const CHILD: &str = "CNBPKG_TEST_UMASK_CHILD";
    if std::env::var_os(CHILD).is_some() {
        return true;
    }
    // The harness names a test by its module path without the crate's name.
    let test = match module.split_once("::") {
        Some((_crate, path)) => format!("{path}::{name}"),
        None => name.to_string(),
    };
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args(["--exact", &test, "--test-threads=1", "--nocapture"])
        .env(CHILD, "1");
    // SAFETY: umask is async-signal-safe; nothing else runs between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            libc::umask(mask);
            Ok(())
        });
    }
    let child = cmd
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let out = wait::output(child, tool::TOOL_TIMEOUT, &test);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("1 passed"),
        "{test} under umask {mask:o}:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    false
}
