//! The external tools the tests use as independent readers and real peers (skopeo, umoci,
//! openssl, the registry, ...): found on PATH, run with a bounded wait.

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

/// How long one tool run may take before it is killed and the test fails.
pub const TOOL_TIMEOUT: Duration = Duration::from_secs(300);

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
        "the tests need `{tool}` on PATH; install the Debian package `{package}` (apt-get install {package}), or run scripts/test"
    );
}

/// Run `cmd` (standard input empty, output captured) for at most [`TOOL_TIMEOUT`].
pub fn output(cmd: &mut Command) -> Output {
    let child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("cannot run {cmd:?} ({e}); the tests need it: run scripts/test to install it")
        });
    super::wait::output(child, TOOL_TIMEOUT, &format!("{cmd:?}"))
}

/// Run `cmd` with `input` on its standard input (standard output captured, standard error
/// passed through) for at most [`TOOL_TIMEOUT`]; an error when it cannot start or stops
/// reading its input with an error.
pub fn output_with_stdin(cmd: &mut Command, input: &[u8]) -> io::Result<Output> {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()?;
    let mut stdin = child.stdin.take().unwrap();
    let input = input.to_vec();
    // Fed from a thread: a child that writes before it has read everything cannot deadlock.
    let feeder = std::thread::spawn(move || stdin.write_all(&input));
    let out = super::wait::output(child, TOOL_TIMEOUT, &format!("{cmd:?}"));
    feeder.join().unwrap()?;
    Ok(out)
}

/// Run a command (see [`output`]), panicking with its output when it fails.
pub fn run(cmd: &mut Command) -> Output {
    let out = output(cmd);
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

/// Run the tool `name` with `args` (see [`output`]), whatever its exit status.
pub fn tool(name: &str, args: &[&str]) -> Output {
    output(Command::new(name).args(args))
}

/// Run the tool `name` with `args` and assert success; return its standard output.
pub fn tool_ok(name: &str, args: &[&str]) -> String {
    String::from_utf8(run(Command::new(name).args(args)).stdout).unwrap()
}

/// Copy `archive` into a registry at `reference` with skopeo (plain HTTP), `extra` flags
/// before the source (`--all`, `--preserve-digests`, `--format v2s2`).
pub fn skopeo_put(archive: &Path, reference: &str, extra: &[&str]) {
    let skopeo = require("skopeo", "skopeo");
    let mut cmd = Command::new(skopeo);
    cmd.args(["copy", "--quiet", "--dest-tls-verify=false"])
        .args(extra)
        .arg(format!("oci-archive:{}", archive.display()))
        .arg(format!("docker://{reference}"));
    run(&mut cmd);
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

/// Copy the image of `archive` that fits `platform_flags` (skopeo's `--override-*` flags) into
/// an OCI directory with skopeo, unpack it with umoci, and return the unpacked root file system.
pub fn unpack_with_umoci(archive: &Path, work: &Path, platform_flags: &[&str]) -> PathBuf {
    let oci = work.join("oci");
    let bundle = work.join("bundle");
    let src = format!("oci-archive:{}", archive.display());
    let dst = format!("oci:{}:x", oci.display());
    let mut args: Vec<&str> = platform_flags.to_vec();
    args.extend(["copy", src.as_str(), dst.as_str()]);
    tool_ok("skopeo", &args);
    let image = format!("{}:x", oci.display());
    tool_ok(
        "umoci",
        &[
            "unpack",
            "--rootless",
            "--image",
            &image,
            bundle.to_str().unwrap(),
        ],
    );
    bundle.join("rootfs")
}
