//! Inputs that are not what they seem: FIFOs where a file is expected (they must be refused at
//! once, never waited on), absurd `--jobs` values (no panic, no abort), and control characters
//! in what cnbpkg prints (escaped, so a package cannot drive the terminal or forge lines).

use std::ffi::{CString, OsStr};
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::process::{Output, Stdio};
use std::time::Duration;

use crate::support::rawtar;
use crate::support::*;

/// How long a run may take before it counts as hanging (it is killed then).
const HANG: Duration = Duration::from_secs(60);

fn mkfifo(path: &Path) {
    let c = CString::new(path.as_os_str().as_bytes()).unwrap();
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0, "mkfifo");
}

/// Run cnbpkg, killing it (by its own PID) and failing the test if it has not ended within
/// [`HANG`]; the child's stdin is closed.
fn run_bounded<I, S>(dir: &Path, args: I) -> Output
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let child = cnbpkg_command()
        .current_dir(dir)
        .args(args)
        .env("TMPDIR", dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run cnbpkg");
    wait::output(child, HANG, "cnbpkg (hung)")
}

/// A failed run with a single error line mentioning the FIFO and naming `path`.
fn assert_fifo_refused(out: Output, path: &Path, what: &str) {
    let stderr = fails(out, 1);
    let line = stderr.lines().last().unwrap_or_default();
    assert!(
        line.starts_with("error: ")
            && line.contains("FIFO")
            && line.contains(path.to_str().unwrap()),
        "{what}: {stderr}"
    );
}

#[test]
fn fifos_given_as_inputs_are_refused_without_waiting() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let fifo = d.join("pipe");
    mkfifo(&fifo);
    let out = d.join("out.cnb");
    let pkg = |extra: &[&OsStr]| {
        let mut args: Vec<&OsStr> = vec!["buildpack".as_ref(), "package".as_ref(), out.as_os_str()];
        args.extend_from_slice(extra);
        run_bounded(d, args)
    };
    assert_fifo_refused(
        pkg(&["--config".as_ref(), fifo.as_os_str()]),
        &fifo,
        "--config",
    );
    assert_fifo_refused(pkg(&["--path".as_ref(), fifo.as_os_str()]), &fifo, "--path");
    assert!(!out.exists());
    assert_fifo_refused(
        run_bounded(d, [OsStr::new("inspect"), fifo.as_os_str()]),
        &fifo,
        "inspect",
    );
    // verify reports the defect on stdout and fails.
    let o = run_bounded(d, [OsStr::new("verify"), fifo.as_os_str()]);
    let stdout = String::from_utf8_lossy(&o.stdout).into_owned();
    fails(o, 1);
    assert!(stdout.contains("FIFO"), "verify: {stdout}");

    // A dependency whose uri names a FIFO.
    let comp = d.join("composite");
    fs::create_dir_all(&comp).unwrap();
    fs::write(
        comp.join("buildpack.toml"),
        "api = \"0.10\"\n[buildpack]\nid = \"t/c\"\nversion = \"1.0.0\"\n\n[[order]]\n[[order.group]]\nid = \"t/a\"\nversion = \"1.0.0\"\n",
    )
    .unwrap();
    let config = d.join("package.toml");
    fs::write(
        &config,
        format!(
            "[buildpack]\nuri = \"{}\"\n\n[[dependencies]]\nuri = \"{}\"\n",
            comp.display(),
            fifo.display()
        ),
    )
    .unwrap();
    assert_fifo_refused(
        pkg(&["--config".as_ref(), config.as_os_str()]),
        &fifo,
        "dependency uri",
    );
    assert!(!out.exists());
}

#[test]
fn a_fifo_buildpack_toml_is_refused_and_a_fifo_in_the_tree_never_blocks() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let bp = d.join("bp");
    minimal_buildpack(&bp, "t/a", "1.0.0", "");
    // A FIFO elsewhere in the tree is left out of the layer, as before; it is never opened.
    mkfifo(&bp.join("bin/pipe"));
    let out = d.join("out.cnb");
    let o = run_bounded(
        d,
        [
            OsStr::new("buildpack"),
            "package".as_ref(),
            out.as_os_str(),
            "--path".as_ref(),
            bp.as_os_str(),
            "-q".as_ref(),
        ],
    );
    ok(o);
    // buildpack.toml itself a FIFO: refused, naming it.
    fs::remove_file(bp.join("buildpack.toml")).unwrap();
    mkfifo(&bp.join("buildpack.toml"));
    let out2 = d.join("out2.cnb");
    let o = run_bounded(
        d,
        [
            OsStr::new("buildpack"),
            "package".as_ref(),
            out2.as_os_str(),
            "--path".as_ref(),
            bp.as_os_str(),
        ],
    );
    let stderr = fails(o, 1);
    assert!(stderr.contains("buildpack.toml"), "{stderr}");
    assert!(!out2.exists());
}

#[test]
fn absurd_jobs_values_neither_panic_nor_abort() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let bp = sample("hello-bash");
    let package = |name: &str, jobs: &str| {
        let out = d.join(name);
        let jobs = format!("--jobs={jobs}");
        let o = run_bounded(
            d,
            [
                OsStr::new("buildpack"),
                "package".as_ref(),
                out.as_os_str(),
                "--path".as_ref(),
                bp.as_os_str(),
                "-t".as_ref(),
                "linux/amd64".as_ref(),
                jobs.as_ref(),
                "-q".as_ref(),
            ],
        );
        (o, out)
    };
    let (o, one) = package("one.cnb", "1");
    ok(o);
    for (name, jobs) in [("max.cnb", "18446744073709551615"), ("many.cnb", "100000")] {
        let (o, out) = package(name, jobs);
        ok(o);
        // The thread count never changes the bytes.
        assert!(
            fs::read(&out).unwrap() == fs::read(&one).unwrap(),
            "--jobs {jobs}"
        );
    }
    // Out of range for any integer, or zero: a usage error.
    for jobs in ["99999999999999999999999", "0", "-1"] {
        let (o, out) = package("bad.cnb", jobs);
        let stderr = fails(o, 2);
        assert!(stderr.contains("jobs"), "--jobs {jobs}: {stderr}");
        assert!(!out.exists());
    }
    // The bound is documented.
    let help = ok(cnbpkg(["buildpack", "package", "--help"]));
    assert!(help.contains("at most 256"), "{help}");
    let help = ok(cnbpkg(["push", "--help"]));
    assert!(help.contains("1 to 32"), "{help}");
}

/// Whether `bytes` hold a control character other than the newlines that end lines.
fn has_raw_controls(bytes: &[u8]) -> bool {
    bytes.iter().any(|&b| (b < 0x20 && b != b'\n') || b == 0x7f)
}

#[test]
fn inspect_escapes_control_characters_in_label_values() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let out = d.join("out.cnb");
    ok(cnbpkg([
        OsStr::new("buildpack"),
        "package".as_ref(),
        out.as_os_str(),
        "--path".as_ref(),
        sample("hello-bash").as_os_str(),
        "-t".as_ref(),
        "linux/amd64".as_ref(),
        "--label".as_ref(),
        "note=\x1b]0;owned\x07\x1b[2J\nPlatform linux/forged".as_ref(),
        "-q".as_ref(),
    ]));
    let o = cnbpkg([OsStr::new("inspect"), out.as_os_str()]);
    assert!(o.status.success());
    assert!(
        !has_raw_controls(&o.stdout),
        "raw control characters in inspect output"
    );
    let text = String::from_utf8(o.stdout).unwrap();
    assert!(
        text.contains("label note=\\x1b]0;owned\\x07\\x1b[2J\\nPlatform linux/forged"),
        "{text}"
    );
    assert!(
        !text.lines().any(|l| l.starts_with("Platform linux/forged")),
        "{text}"
    );
    // The JSON output keeps the value as it is (JSON escapes it).
    let json = ok(cnbpkg([
        OsStr::new("inspect"),
        out.as_os_str(),
        "--json".as_ref(),
    ]));
    assert!(json.contains("\\u001b]0;owned\\u0007"), "{json}");
}

#[test]
fn verify_and_errors_escape_names_taken_from_the_input() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // A .cnb whose only entry has a name with escape sequences and a `..` component.
    let evil = "blobs/\x1b[2J\x1b[1;1Hforged\n/../../x";
    let h = rawtar::Entry::file(evil, &b"{}"[..]).gnu().header();
    let mut b = tar::Builder::new(Vec::new());
    b.append(&h, &b"{}"[..]).unwrap();
    let cnb = d.join("evil.cnb");
    fs::write(&cnb, b.into_inner().unwrap()).unwrap();

    let o = cnbpkg([OsStr::new("verify"), cnb.as_os_str()]);
    assert!(!has_raw_controls(&o.stdout) && !has_raw_controls(&o.stderr));
    let stdout = String::from_utf8_lossy(&o.stdout).into_owned();
    fails(o, 1);
    assert_eq!(stdout.lines().count(), 1, "{stdout}");
    assert!(
        stdout.contains("\\x1b[2J\\x1b[1;1Hforged\\n/../../x"),
        "{stdout}"
    );

    let o = cnbpkg([OsStr::new("inspect"), cnb.as_os_str()]);
    assert!(!has_raw_controls(&o.stderr));
    let stderr = fails(o, 1);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("\\x1b[2J"), "{stderr}");
}

#[test]
fn push_refuses_fifo_certificates_and_credentials_files_without_waiting() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let pkg = d.join("p.cnb");
    ok(cnbpkg([
        OsStr::new("buildpack"),
        "package".as_ref(),
        pkg.as_os_str(),
        "--path".as_ref(),
        sample("hello-bash").as_os_str(),
        "-t".as_ref(),
        "linux/amd64".as_ref(),
        "-q".as_ref(),
    ]));
    let fifo = d.join("ca.pem");
    mkfifo(&fifo);
    // Nothing listens on this port: the certificate must be refused before any connection.
    let o = run_bounded(
        d,
        [
            OsStr::new("push"),
            pkg.as_os_str(),
            "127.0.0.1:9/x/y:1".as_ref(),
            "--ca-cert".as_ref(),
            fifo.as_os_str(),
        ],
    );
    assert_fifo_refused(o, &fifo, "--ca-cert");

    let config_dir = d.join("docker");
    fs::create_dir(&config_dir).unwrap();
    let config = config_dir.join("config.json");
    mkfifo(&config);
    let child = cnbpkg_command()
        .current_dir(d)
        .args([
            OsStr::new("push"),
            pkg.as_os_str(),
            "127.0.0.1:9/x/y:1".as_ref(),
            "--insecure".as_ref(),
        ])
        .env("DOCKER_CONFIG", &config_dir)
        .env("HOME", d)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let o = wait::output(child, HANG, "push on a FIFO config.json (hung)");
    let stderr = fails(o, 1);
    assert!(
        stderr.contains("FIFO") && stderr.contains("config.json"),
        "{stderr}"
    );
}

#[test]
fn a_file_swapped_for_a_symlink_or_fifo_while_packaging_never_leaks_or_hangs() {
    use std::sync::atomic::{AtomicBool, Ordering};
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let bp = d.join("bp");
    minimal_buildpack(&bp, "t/a", "1.0.0", "");
    // The secret has the size of the file it replaces, so a read through the link would fit the
    // walked size and go unnoticed.
    let secret = d.join("other.txt");
    fs::write(&secret, "SECRET-CONTENT-0123456789\n").unwrap();
    let keep = d.join("keep.txt");
    fs::write(&keep, "PUBLIC-CONTENT-0123456789\n").unwrap();
    let data = bp.join("data.txt");
    fs::hard_link(&keep, &data).unwrap();

    // Swap data.txt between the public file (a hard link, same inode), a symlink to the secret
    // and a FIFO, atomically by rename, until the packaging runs are done.
    let stop = AtomicBool::new(false);
    std::thread::scope(|scope| {
        let swapper = scope.spawn(|| {
            let (tmp_link, tmp_file) = (d.join(".tmp-link"), d.join(".tmp-file"));
            let tmp_fifo = d.join(".tmp-fifo");
            let mut swaps = 0u64;
            while !stop.load(Ordering::Relaxed) && swaps < 50_000_000 {
                std::os::unix::fs::symlink(&secret, &tmp_link).unwrap();
                fs::rename(&tmp_link, &data).unwrap();
                fs::hard_link(&keep, &tmp_file).unwrap();
                fs::rename(&tmp_file, &data).unwrap();
                // A FIFO: opening it for reading would wait for a writer forever.
                mkfifo(&tmp_fifo);
                fs::rename(&tmp_fifo, &data).unwrap();
                fs::hard_link(&keep, &tmp_file).unwrap();
                fs::rename(&tmp_file, &data).unwrap();
                swaps += 1;
            }
        });
        // Stop the swapper however this thread leaves the scope, a failed assertion included.
        struct StopOnDrop<'a>(&'a AtomicBool);
        impl Drop for StopOnDrop<'_> {
            fn drop(&mut self) {
                self.0.store(true, Ordering::Relaxed);
            }
        }
        let _stop_swapper = StopOnDrop(&stop);
        let mut leaks = Vec::new();
        for i in 0..40 {
            let out = d.join(format!("out-{i}.cnb"));
            let o = run_bounded(
                d,
                [
                    OsStr::new("buildpack"),
                    "package".as_ref(),
                    out.as_os_str(),
                    "--path".as_ref(),
                    bp.as_os_str(),
                    "--compression".as_ref(),
                    "none".as_ref(),
                    "-q".as_ref(),
                ],
            );
            if o.status.success() {
                let bytes = fs::read(&out).unwrap();
                if bytes.windows(14).any(|w| w == b"SECRET-CONTENT") {
                    leaks.push(i);
                }
                fs::remove_file(&out).unwrap();
            } else {
                // Failing is fine (the tree changed under the run), with a message naming the
                // file; leaking is not.
                let stderr = String::from_utf8_lossy(&o.stderr);
                assert!(
                    stderr.contains("data.txt") && stderr.contains("after the tree was read")
                        || stderr.contains("changed while")
                        // Walked while it was the symlink: links leaving the module are refused.
                        || stderr.contains("data.txt") && stderr.contains("is a symbolic link to"),
                    "{stderr}"
                );
                assert!(!out.exists());
            }
        }
        stop.store(true, Ordering::Relaxed);
        swapper.join().unwrap();
        assert!(
            leaks.is_empty(),
            "runs {leaks:?} packaged the symlink target's content"
        );
    });
}
