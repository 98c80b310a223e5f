//! Signals while packaging: `SIGINT`, `SIGTERM` and `SIGHUP` stop the work and leave nothing
//! behind (no scratch tree in `$TMPDIR`, no partial output); after `SIGKILL`, which cannot be
//! handled, the next run reaps what the killed one left.

use std::fs;
use std::io::Write;
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::Duration;

use crate::support::*;

/// Kills the child when a test fails before waiting for it.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Running {
    fn signal(&self, sig: i32) {
        // SAFETY: sending a signal to our own child process.
        unsafe { libc::kill(self.0.id() as i32, sig) };
    }

    /// Wait (bounded) for the child to exit after a signal; its exit status and stderr.
    fn wait(mut self) -> (std::process::ExitStatus, String) {
        for _ in 0..6000 {
            if let Some(status) = self.0.try_wait().unwrap() {
                let mut err = String::new();
                std::io::Read::read_to_string(self.0.stderr.as_mut().unwrap(), &mut err).unwrap();
                return (status, err);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!("cnbpkg did not exit after the signal");
    }
}

fn spawn(dir: &Path, tmpdir: &Path, args: &[&str]) -> Running {
    Running(
        cnbpkg_command()
            .args(["buildpack", "package"])
            .args(args)
            .env("TMPDIR", tmpdir)
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    )
}

/// Poll (bounded) until `cond` holds; fails the test if the child exits first.
fn wait_until(child: &mut Running, what: &str, cond: impl Fn() -> bool) {
    for _ in 0..6000 {
        if cond() {
            return;
        }
        if let Some(status) = child.0.try_wait().unwrap() {
            panic!("cnbpkg exited ({status}) before {what}");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    panic!("timed out waiting until {what}");
}

/// A `.tgz` buildpack of many small files in many directories: its extraction takes seconds.
fn many_files_tgz(path: &Path) {
    let file = fs::File::create(path).unwrap();
    let gz =
        flate2::write::GzEncoder::new(std::io::BufWriter::new(file), flate2::Compression::fast());
    let mut ar = tar::Builder::new(gz);
    let mut add = |name: &str, data: &[u8]| {
        let mut h = tar::Header::new_ustar();
        h.set_path(name).unwrap();
        h.set_mode(0o644);
        h.set_size(data.len() as u64);
        h.set_entry_type(tar::EntryType::Regular);
        h.set_cksum();
        ar.append(&h, data).unwrap();
    };
    add(
        "buildpack.toml",
        b"api = \"0.10\"\n\n[buildpack]\nid = \"ex/many\"\nversion = \"1.0.0\"\n",
    );
    let data = vec![7u8; 2048];
    for d in 0..200 {
        for f in 0..1000 {
            add(&format!("d{d:03}/f{f:04}"), &data);
        }
    }
    ar.into_inner().unwrap().finish().unwrap().flush().unwrap();
}

/// Whether an extraction is under way: a scratch directory with extracted directories in it.
fn extracting(tmp: &Path) -> bool {
    fs::read_dir(tmp).unwrap().flatten().any(|e| {
        e.file_name().to_string_lossy().starts_with(".cnbpkg-")
            && fs::read_dir(e.path()).is_ok_and(|mut it| it.nth(2).is_some())
    })
}

#[test]
fn a_signal_during_extraction_leaves_no_scratch_tree() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path();
    many_files_tgz(&p.join("bp.tgz"));
    for (sig, name) in [
        (libc::SIGINT, "SIGINT"),
        (libc::SIGTERM, "SIGTERM"),
        (libc::SIGHUP, "SIGHUP"),
    ] {
        let tmp = p.join(format!("tmp-{name}"));
        fs::create_dir(&tmp).unwrap();
        let mut child = spawn(p, &tmp, &["out.cnb", "--path", "bp.tgz"]);
        wait_until(&mut child, "the extraction started", || extracting(&tmp));
        child.signal(sig);
        let (status, err) = child.wait();
        assert!(!status.success(), "{name}: {status}");
        assert!(err.contains("interrupted"), "{name}: {err}");
        assert_eq!(
            list(&tmp),
            Vec::<String>::new(),
            "{name} left a scratch tree"
        );
        assert!(!p.join("out.cnb").exists(), "{name}");
    }
    assert_eq!(
        list(p),
        ["bp.tgz", "tmp-SIGHUP", "tmp-SIGINT", "tmp-SIGTERM"]
    );
}

/// A buildpack with a large file of poorly compressible bytes: its layer takes seconds.
fn large_buildpack(dir: &Path) {
    minimal_buildpack(dir, "ex/large", "1.0.0", "");
    let mut f = fs::File::create(dir.join("blob.bin")).unwrap();
    Rng::new(0x9E3779B97F4A7C15).write_words(&mut f, (256 << 20) / 8);
}

/// Whether a layer blob is being written into a partial layout in `out`.
fn writing_layout(out: &Path) -> bool {
    fs::read_dir(out).unwrap().flatten().any(|e| {
        e.file_name().to_string_lossy().contains(".partial-")
            && fs::read_dir(e.path().join("blobs/sha256")).is_ok_and(|mut it| it.next().is_some())
    })
}

#[test]
fn a_signal_while_a_layout_is_written_leaves_no_partial_directory() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path();
    large_buildpack(&p.join("bp"));
    let out = p.join("out");
    fs::create_dir(&out).unwrap();
    let bp = p.join("bp");
    let args = [
        "layout",
        "--path",
        bp.to_str().unwrap(),
        "--format",
        "layout",
        "--jobs",
        "1",
    ];
    for sig in [libc::SIGINT, libc::SIGTERM] {
        let mut child = spawn(&out, p, &args);
        wait_until(&mut child, "the layer is written", || writing_layout(&out));
        child.signal(sig);
        let (status, err) = child.wait();
        assert!(!status.success(), "{status}");
        assert!(err.contains("interrupted"), "{err}");
        assert_eq!(list(&out), Vec::<String>::new(), "signal {sig} left files");
    }
}

#[test]
fn what_a_killed_run_leaves_is_reaped_by_the_next_run() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path();
    large_buildpack(&p.join("bp"));
    let bp = p.join("bp");
    let (lay, file_dir) = (p.join("lay"), p.join("file"));
    fs::create_dir(&lay).unwrap();
    fs::create_dir(&file_dir).unwrap();

    // A layout output and a .cnb file output, killed while their layer is written.
    let layout = [
        "layout",
        "--path",
        bp.to_str().unwrap(),
        "--format",
        "layout",
        "--jobs",
        "1",
    ];
    let mut child = spawn(&lay, p, &layout);
    wait_until(&mut child, "the layer is written", || writing_layout(&lay));
    child.signal(libc::SIGKILL);
    child.wait();
    assert_eq!(
        list(&lay).len(),
        1,
        "what the killed run left: {:?}",
        list(&lay)
    );
    let file = ["o.cnb", "--path", bp.to_str().unwrap(), "--jobs", "1"];
    let mut child = spawn(&file_dir, p, &file);
    wait_until(&mut child, "the .cnb is written", || {
        fs::read_dir(&file_dir).unwrap().flatten().any(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with(".o.cnb.partial-")
                && e.metadata().is_ok_and(|m| m.len() > 1 << 20)
        })
    });
    child.signal(libc::SIGKILL);
    child.wait();
    assert_eq!(
        list(&file_dir).len(),
        1,
        "what the killed run left: {:?}",
        list(&file_dir)
    );

    // An extraction killed midway leaves its scratch tree in TMPDIR.
    many_files_tgz(&p.join("bp.tgz"));
    let tmp = p.join("tmp");
    fs::create_dir(&tmp).unwrap();
    let mut child = spawn(p, &tmp, &["x.cnb", "--path", "bp.tgz"]);
    wait_until(&mut child, "the extraction started", || extracting(&tmp));
    child.signal(libc::SIGKILL);
    child.wait();
    assert_eq!(list(&tmp).len(), 1);

    // The next runs into the same places reap them.
    minimal_buildpack(&p.join("small"), "ex/small", "1.0.0", "");
    let layout = [
        "buildpack",
        "package",
        "layout",
        "--path",
        "../small",
        "--format",
        "layout",
    ];
    ok(cnbpkg_in(&lay, layout));
    assert_eq!(list(&lay), ["layout"]);
    ok(cnbpkg_in(
        &file_dir,
        ["buildpack", "package", "o.cnb", "--path", "../small"],
    ));
    assert_eq!(list(&file_dir), ["o.cnb"]);
    let small_tgz = p.join("small.tgz");
    tool_ok(
        "tar",
        &[
            "-czf",
            small_tgz.to_str().unwrap(),
            "-C",
            p.join("small").to_str().unwrap(),
            ".",
        ],
    );
    ok(child::output(
        cnbpkg_command()
            .args(["buildpack", "package", "y.cnb", "--path", "small.tgz"])
            .env("TMPDIR", &tmp)
            .current_dir(p),
    ));
    assert_eq!(list(&tmp), Vec::<String>::new());
}

#[test]
fn a_file_size_limit_is_an_error_that_leaves_nothing() {
    use std::os::unix::process::CommandExt;
    let d = tempfile::tempdir().unwrap();
    let p = d.path();
    large_buildpack(&p.join("bp"));
    let out = p.join("out");
    fs::create_dir(&out).unwrap();
    let tmp = p.join("tmp");
    fs::create_dir(&tmp).unwrap();
    let bp = p.join("bp");
    // A .tgz whose one large file exceeds the limit when extracted.
    let tgz = p.join("bp.tgz");
    let files = [
        (
            "buildpack.toml",
            b"api = \"0.10\"\n\n[buildpack]\nid = \"ex/big\"\nversion = \"1.0.0\"\n".to_vec(),
        ),
        ("bin/build", b"#!/bin/sh\n".to_vec()),
        ("bin/detect", b"#!/bin/sh\n".to_vec()),
        ("big", vec![0u8; 16 << 20]),
    ];
    let gz =
        flate2::write::GzEncoder::new(fs::File::create(&tgz).unwrap(), flate2::Compression::fast());
    let mut ar = tar::Builder::new(gz);
    for (name, data) in files {
        let mut h = tar::Header::new_ustar();
        h.set_path(name).unwrap();
        h.set_mode(0o755);
        h.set_size(data.len() as u64);
        h.set_cksum();
        ar.append(&h, &data[..]).unwrap();
    }
    ar.into_inner().unwrap().finish().unwrap();
    for args in [
        vec!["o.cnb", "--path", bp.to_str().unwrap()],
        vec![
            "layout",
            "--path",
            bp.to_str().unwrap(),
            "--format",
            "layout",
        ],
        vec!["t.cnb", "--path", tgz.to_str().unwrap()],
    ] {
        let mut cmd = cnbpkg_command();
        cmd.args(["buildpack", "package"])
            .args(&args)
            .env("TMPDIR", &tmp)
            .current_dir(&out);
        // SAFETY: only setrlimit (async-signal-safe) runs between fork and exec.
        unsafe {
            cmd.pre_exec(|| {
                let limit = libc::rlimit {
                    rlim_cur: 4 << 20,
                    rlim_max: 4 << 20,
                };
                if libc::setrlimit(libc::RLIMIT_FSIZE, &limit) == 0 {
                    Ok(())
                } else {
                    Err(std::io::Error::last_os_error())
                }
            });
        }
        let err = fails(cmd.output().unwrap(), 1);
        let last = err.lines().last().unwrap_or_default();
        assert!(
            last.starts_with("error: ") && last.contains("too large"),
            "{err}"
        );
        assert_eq!(list(&out), Vec::<String>::new(), "{args:?}: {err}");
        assert_eq!(list(&tmp), Vec::<String>::new(), "{args:?}: {err}");
    }
}
