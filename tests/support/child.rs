//! Runs the real `cnbpkg` binary in a child process with an isolated environment, so tests can
//! set its credential sources (`DOCKER_CONFIG`, `HOME`, `REGISTRY_AUTH_FILE`), feed its standard
//! input, or kill it midway.

use std::ffi::{OsStr, OsString};
use std::io::{Read, Write};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// How long a child `cnbpkg` may run before [`finish`] kills it and fails the test.
pub const TIMEOUT: Duration = Duration::from_secs(120);

/// The `cnbpkg` binary Cargo built for these tests.
pub fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_cnbpkg"))
}

/// `push PACKAGE REFERENCE EXTRA...` as command-line arguments.
pub fn push_args(package: &Path, reference: &str, extra: &[&str]) -> Vec<OsString> {
    let mut args: Vec<OsString> = vec!["push".into(), package.into(), reference.into()];
    args.extend(extra.iter().map(OsString::from));
    args
}

/// A `cnbpkg` command isolated from the user's credentials: `HOME` is `home`, and
/// `DOCKER_CONFIG`, `REGISTRY_AUTH_FILE`, `XDG_RUNTIME_DIR`, `NO_COLOR` and
/// `CNBPKG_RETRY_BACKOFF_MS` are unset before `envs` is applied. Standard input is empty;
/// standard output and error are captured.
pub fn command<I, S>(args: I, home: &Path, envs: &[(&str, &OsStr)]) -> Command
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let mut cmd = Command::new(bin());
    cmd.args(args)
        .env("HOME", home)
        .env_remove("DOCKER_CONFIG")
        .env_remove("REGISTRY_AUTH_FILE")
        .env_remove("XDG_RUNTIME_DIR")
        .env_remove("NO_COLOR")
        .env_remove(cnbpkg::registry::RETRY_BACKOFF_ENV)
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
pub fn finish(mut child: Child) -> Outcome {
    fn reader(pipe: Option<impl Read + Send + 'static>) -> std::thread::JoinHandle<String> {
        std::thread::spawn(move || {
            let mut text = Vec::new();
            if let Some(mut p) = pipe {
                let _ = p.read_to_end(&mut text);
            }
            String::from_utf8_lossy(&text).into_owned()
        })
    }
    let readers = [reader(child.stdout.take()), reader(child.stderr.take())];
    let deadline = Instant::now() + TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() >= deadline {
            // Child::kill sends SIGKILL to this child's PID only.
            let _ = child.kill();
            let _ = child.wait();
            panic!("cnbpkg ({}) still running after {TIMEOUT:?}", child.id());
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let [stdout, stderr] = readers.map(|r| r.join().unwrap());
    Outcome {
        status,
        stdout,
        stderr,
    }
}
