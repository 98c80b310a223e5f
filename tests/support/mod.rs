//! Helpers for the push tests: a real registry, test packages, PKI, a token server, proxies
//! that inject faults, and a child-process runner.
#![allow(dead_code)]

pub mod child;
pub mod hostile;
pub mod packages;
pub mod pki;
pub mod proxy;
pub mod registry;
pub mod token;

use std::path::PathBuf;
use std::process::Command;

/// The full path of a required tool on PATH, or a panic that says how to install it.
pub fn require(tool: &str, package: &str) -> PathBuf {
    if let Some(paths) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&paths) {
            let p = dir.join(tool);
            if p.is_file() {
                return p;
            }
        }
    }
    panic!(
        "the push tests need `{tool}` on PATH; install the Debian package `{package}` (apt-get install {package})"
    );
}

/// Run a command, panicking with its output when it fails.
pub fn run(cmd: &mut Command) -> std::process::Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    if !out.status.success() {
        panic!(
            "{cmd:?} failed ({}):\nstdout: {}\nstderr: {}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    out
}

/// A small deterministic PRNG (xorshift64*), for test data and fault schedules.
#[derive(Clone)]
pub struct Rng(u64);

impl Rng {
    /// Seeded generator (seed 0 is remapped).
    pub fn new(seed: u64) -> Self {
        Rng(seed.max(1).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    /// Next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in `0..n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    /// `n` random bytes.
    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(n + 8);
        while out.len() < n {
            out.extend_from_slice(&self.next_u64().to_le_bytes());
        }
        out.truncate(n);
        out
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

/// `skopeo inspect --raw` of a reference on a plain-HTTP registry.
pub fn skopeo_raw(reference: &str) -> Vec<u8> {
    let skopeo = require("skopeo", "skopeo");
    run(Command::new(skopeo).args([
        "inspect",
        "--raw",
        "--tls-verify=false",
        &format!("docker://{reference}"),
    ]))
    .stdout
}
