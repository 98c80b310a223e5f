//! An interrupted command that writes no output says only that it was interrupted.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::*;

/// Kills the child when a test fails before waiting for it.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Whether `pid` has a handler installed for SIGTERM (bit 15 of SigCgt in /proc).
fn catches_sigterm(pid: u32) -> bool {
    let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) else {
        return false;
    };
    status
        .lines()
        .find_map(|l| l.strip_prefix("SigCgt:"))
        .and_then(|m| u64::from_str_radix(m.trim(), 16).ok())
        .is_some_and(|mask| mask & (1 << (libc::SIGTERM - 1)) != 0)
}

/// A layout package with one large (sparse, quickly made) layer: verifying it takes a while.
fn large_package(work: &Path) -> std::path::PathBuf {
    let bp = work.join("bp");
    minimal_buildpack(&bp, "acme/large", "1.0.0", "");
    std::fs::File::create(bp.join("zeros"))
        .unwrap()
        .set_len(256 << 20)
        .unwrap();
    let out = work.join("large");
    ok(cnbpkg([
        "buildpack".as_ref(),
        "package".as_ref(),
        out.as_os_str(),
        "--path".as_ref(),
        bp.as_os_str(),
        "--format".as_ref(),
        "layout".as_ref(),
        "--compression".as_ref(),
        "none".as_ref(),
        "-q".as_ref(),
    ]));
    out
}

#[test]
fn an_interrupted_verify_does_not_claim_to_have_withheld_output() {
    let tmp = tempfile::tempdir().unwrap();
    let pkg = large_package(tmp.path());
    let child = cnbpkg_command()
        .arg("verify")
        .arg(&pkg)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut child = Running(child);
    let pid = child.0.id();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !catches_sigterm(pid) {
        assert!(
            child.0.try_wait().unwrap().is_none(),
            "verify ended before its signal handler was seen"
        );
        assert!(Instant::now() < deadline, "no signal handler installed");
        std::thread::sleep(Duration::from_millis(1));
    }
    // Stopped, the process cannot finish before the signal reaches it.
    unsafe {
        libc::kill(pid as i32, libc::SIGSTOP);
        libc::kill(pid as i32, libc::SIGTERM);
        libc::kill(pid as i32, libc::SIGCONT);
    }
    let child = std::mem::replace(&mut child.0, Command::new("true").spawn().unwrap());
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{err}");
    assert_eq!(err.trim_end(), "error: interrupted", "{err}");
}
