//! Runs the real `cnbpkg` binary in a child process, always isolated from the user's
//! environment: its own `HOME`, Docker and XDG configuration and cache directories (so the local
//! image store under `$XDG_CACHE_HOME` and the user's credentials are never touched), no
//! `REGISTRY_AUTH_FILE`, no `CNBPKG_*` settings. Tests set any of these explicitly; they can also
//! feed its standard input or kill it midway. Every wait is bounded.

use std::ffi::{OsStr, OsString};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::time::Duration;

/// How long a child `cnbpkg` may run before [`finish`] kills it and fails the test.
pub const TIMEOUT: Duration = Duration::from_secs(300);

/// The `cnbpkg` binary Cargo built for these tests.
pub fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_cnbpkg"))
}

/// A fresh, empty home directory for one child, inside a directory of this test process that
/// is removed when the process exits.
pub fn fresh_home() -> PathBuf {
    static ROOT: OnceLock<PathBuf> = OnceLock::new();
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    extern "C" fn remove_root() {
        if let Some(root) = ROOT.get() {
            let _ = std::fs::remove_dir_all(root);
        }
    }
    let root = ROOT.get_or_init(|| {
        let root = tempfile::Builder::new()
            .prefix("cnbpkg-test-homes-")
            .tempdir()
            .unwrap()
            .keep();
        // SAFETY: registers a plain function that only removes a directory at exit.
        unsafe { libc::atexit(remove_root) };
        root
    });
    let home = root.join(NEXT.fetch_add(1, Ordering::Relaxed).to_string());
    std::fs::create_dir(&home).unwrap();
    home
}

/// A `cnbpkg` command with the environment isolated under `home` (see [`isolate`]).
pub fn isolated(home: &Path) -> Command {
    let mut cmd = Command::new(bin());
    isolate(&mut cmd, home);
    cmd
}

/// Isolate `cmd`'s environment under `home` (see the module doc): `HOME` is `home`,
/// `DOCKER_CONFIG`, `XDG_CONFIG_HOME` and `XDG_CACHE_HOME` point inside it (where they default
/// to anyway), `REGISTRY_AUTH_FILE`, `XDG_RUNTIME_DIR`, `NO_COLOR` and every `CNBPKG_*`
/// variable are unset. Set any of them on the command afterwards to override.
pub fn isolate<'a>(cmd: &'a mut Command, home: &Path) -> &'a mut Command {
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("CNBPKG_") {
            cmd.env_remove(name);
        }
    }
    cmd.env("HOME", home)
        .env("DOCKER_CONFIG", home.join(".docker"))
        .env("XDG_CONFIG_HOME", home.join(".config"))
        .env("XDG_CACHE_HOME", home.join(".cache"))
        .env_remove("REGISTRY_AUTH_FILE")
        .env_remove("XDG_RUNTIME_DIR")
        .env_remove("NO_COLOR")
}

/// A `cnbpkg` command isolated in a [`fresh_home`] (see [`isolated`]).
pub fn cnbpkg_command() -> Command {
    isolated(&fresh_home())
}

/// Run `cnbpkg ARGS` (isolated, at most [`TIMEOUT`]).
pub fn cnbpkg<I, S>(args: I) -> Output
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    output(cnbpkg_command().args(args))
}

/// Run `cnbpkg ARGS` in `dir` (isolated, at most [`TIMEOUT`]).
pub fn cnbpkg_in<I, S>(dir: &Path, args: I) -> Output
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    output(cnbpkg_command().current_dir(dir).args(args))
}

/// Run a `cnbpkg` command made by [`isolated`] or [`cnbpkg_command`] to completion (standard
/// input empty unless set, output captured), at most [`TIMEOUT`].
pub fn output(cmd: &mut Command) -> Output {
    let child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", bin().display()));
    super::wait::output(child, TIMEOUT, "cnbpkg")
}

/// Assert success and return stdout.
pub fn ok(out: Output) -> String {
    assert!(
        out.status.success(),
        "command failed ({:?})\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Assert failure with exit code `code` and return stderr.
pub fn fails(out: Output, code: i32) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(
        out.status.code(),
        Some(code),
        "expected exit {code}\nstdout: {}\nstderr: {stderr}",
        String::from_utf8_lossy(&out.stdout)
    );
    stderr
}

/// `push PACKAGE REFERENCE EXTRA...` as command-line arguments.
pub fn push_args(package: &Path, reference: &str, extra: &[&str]) -> Vec<OsString> {
    let mut args: Vec<OsString> = vec!["push".into(), package.into(), reference.into()];
    args.extend(extra.iter().map(OsString::from));
    args
}

/// A `cnbpkg` command isolated under `home` (see [`isolated`]), with `envs` set on top.
/// Standard input is empty; standard output and error are captured.
pub fn command<I, S>(args: I, home: &Path, envs: &[(&str, &OsStr)]) -> Command
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let mut cmd = isolated(home);
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in envs {
        cmd.env(k, v);
    }
    cmd
}

/// Start `cnbpkg ARGS` (see [`command`]).
pub fn spawn<I, S>(args: I, home: &Path, envs: &[(&str, &OsStr)]) -> Child
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    command(args, home, envs)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", bin().display()))
}

/// Run `cnbpkg ARGS` to completion, writing `stdin` to its standard input.
pub fn run<I, S>(args: I, home: &Path, envs: &[(&str, &OsStr)], stdin: Option<&str>) -> Outcome
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let mut cmd = command(args, home, envs);
    if stdin.is_some() {
        cmd.stdin(Stdio::piped());
    }
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", bin().display()));
    if let Some(text) = stdin {
        // Dropping the handle closes the pipe, so the child sees end of input.
        let mut pipe = child.stdin.take().unwrap();
        pipe.write_all(text.as_bytes()).unwrap();
    }
    finish(child)
}

/// What a finished `cnbpkg` printed and how it exited.
pub struct Outcome {
    /// Exit status.
    pub status: ExitStatus,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

impl Outcome {
    /// Exited with status 0.
    pub fn ok(&self) -> bool {
        self.status.success()
    }

    /// The exit code (`None` when killed by a signal).
    pub fn code(&self) -> Option<i32> {
        self.status.code()
    }

    /// The non-empty lines of standard error.
    pub fn stderr_lines(&self) -> Vec<&str> {
        self.stderr
            .lines()
            .filter(|l| !l.trim().is_empty())
            .collect()
    }

    /// The single `error: ...` line of a failed run: the last line of standard error, and the
    /// only one starting with `error:`.
    pub fn error_line(&self) -> &str {
        let lines = self.stderr_lines();
        let errors = lines.iter().filter(|l| l.starts_with("error:")).count();
        assert_eq!(errors, 1, "expected one error line:\n{self}");
        let last = *lines.last().unwrap();
        assert!(
            last.starts_with("error: "),
            "the error is not the last line:\n{self}"
        );
        last
    }
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "cnbpkg exited with {}\n--- stdout:\n{}--- stderr:\n{}",
            self.status, self.stdout, self.stderr
        )
    }
}

/// Wait (at most [`TIMEOUT`]) for a child `cnbpkg` and collect its output; a child still
/// running then is killed by its PID and the test fails.
pub fn finish(child: Child) -> Outcome {
    let out = super::wait::output(child, TIMEOUT, "cnbpkg");
    Outcome {
        status: out.status,
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}
