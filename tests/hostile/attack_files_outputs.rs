//! Outputs attacked as a careless user would: an existing layout directory or `.cnb` file that
//! holds more than a package, and a `--digest-file` that names the package being pushed (or a
//! file inside it, or a symlink). cnbpkg must leave all of them untouched.

use std::fs;
use std::path::Path;

use crate::support::child;
use crate::support::registry::Registry;
use crate::support::*;

fn buildpack(dir: &Path) -> std::path::PathBuf {
    let bp = dir.join("bp");
    minimal_buildpack(
        &bp,
        "ex/out",
        "1.0.0",
        "\n[[targets]]\nos = \"linux\"\narch = \"amd64\"\n",
    );
    bp
}

#[test]
fn layout_output_holding_other_files_is_not_replaced() {
    let tmp = tempfile::tempdir().unwrap();
    let bp = buildpack(tmp.path());
    let out = tmp.path().join("layout");
    // A real package first, then the user's own files beside it.
    ok(cnbpkg([
        "buildpack".as_ref(),
        "package".as_ref(),
        out.as_os_str(),
        "--format".as_ref(),
        "layout".as_ref(),
        "--path".as_ref(),
        bp.as_os_str(),
    ]));
    fs::write(out.join("notes.txt"), "the user's notes").unwrap();
    fs::create_dir(out.join("src")).unwrap();
    fs::write(out.join("src/main.rs"), "fn main() {}").unwrap();
    let e = fails(
        cnbpkg([
            "buildpack".as_ref(),
            "package".as_ref(),
            out.as_os_str(),
            "--format".as_ref(),
            "layout".as_ref(),
            "--path".as_ref(),
            bp.as_os_str(),
        ]),
        1,
    );
    assert!(e.contains("not part of a package"), "{e}");
    assert_eq!(
        fs::read_to_string(out.join("notes.txt")).unwrap(),
        "the user's notes"
    );
    assert!(out.join("src/main.rs").is_file());

    // A symlink among the blobs is not something cnbpkg wrote either.
    fs::remove_file(out.join("notes.txt")).unwrap();
    fs::remove_dir_all(out.join("src")).unwrap();
    let link = out.join("blobs/sha256/extra");
    std::os::unix::fs::symlink("/etc", &link).unwrap();
    fails(
        cnbpkg([
            "buildpack".as_ref(),
            "package".as_ref(),
            out.as_os_str(),
            "--format".as_ref(),
            "layout".as_ref(),
            "--path".as_ref(),
            bp.as_os_str(),
        ]),
        1,
    );
    assert!(fs::symlink_metadata(&link)
        .unwrap()
        .file_type()
        .is_symlink());

    // Only the package itself: replaced as before.
    fs::remove_file(&link).unwrap();
    ok(cnbpkg([
        "buildpack".as_ref(),
        "package".as_ref(),
        out.as_os_str(),
        "--format".as_ref(),
        "layout".as_ref(),
        "--path".as_ref(),
        bp.as_os_str(),
    ]));
}

#[test]
fn cnb_output_holding_other_files_is_not_replaced() {
    let tmp = tempfile::tempdir().unwrap();
    let bp = buildpack(tmp.path());
    let layout = tmp.path().join("layout");
    ok(cnbpkg([
        "buildpack".as_ref(),
        "package".as_ref(),
        layout.as_os_str(),
        "--format".as_ref(),
        "layout".as_ref(),
        "--path".as_ref(),
        bp.as_os_str(),
    ]));
    fs::write(layout.join("backup-of-my-work.txt"), "irreplaceable").unwrap();
    // A tarball that happens to hold a package and more.
    let out = tmp.path().join("archive.cnb");
    tool_ok(
        "tar",
        &[
            "-C",
            layout.to_str().unwrap(),
            "-cf",
            out.to_str().unwrap(),
            ".",
        ],
    );
    let before = fs::read(&out).unwrap();
    let e = fails(
        cnbpkg([
            "buildpack".as_ref(),
            "package".as_ref(),
            out.as_os_str(),
            "--path".as_ref(),
            bp.as_os_str(),
        ]),
        1,
    );
    assert!(e.contains("not part of a package"), "{e}");
    assert_eq!(fs::read(&out).unwrap(), before);
}

#[test]
fn digest_file_naming_an_input_is_refused_before_the_push() {
    let reg = Registry::start_plain();
    let tmp = tempfile::tempdir().unwrap();
    let bp = buildpack(tmp.path());
    let pkg = tmp.path().join("pkg.cnb");
    ok(cnbpkg([
        "buildpack".as_ref(),
        "package".as_ref(),
        pkg.as_os_str(),
        "--path".as_ref(),
        bp.as_os_str(),
    ]));
    let before = fs::read(&pkg).unwrap();
    let reference = format!("{}/ex/out:1", reg.host());
    let link = tmp.path().join("link");
    std::os::unix::fs::symlink(&pkg, &link).unwrap();
    for (digest_file, problem) in [
        (pkg.clone(), "is the package"),
        (tmp.path().join("./pkg.cnb"), "is the package"),
        (link.clone(), "symbolic link"),
    ] {
        let mut args = child::push_args(&pkg, &reference, &["--insecure", "--digest-file"]);
        args.push(digest_file.clone().into());
        let r = child::run(args, tmp.path(), &[], None);
        assert_eq!(r.code(), Some(1), "{}: {r}", digest_file.display());
        assert!(r.error_line().contains(problem), "{r}");
        assert_eq!(fs::read(&pkg).unwrap(), before, "{}", digest_file.display());
        assert!(fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink());
    }
    // Nothing was sent.
    assert!(
        !reg.log().contains("PUT /v2/ex/out/manifests"),
        "{}",
        reg.log()
    );

    // A layout directory: a file inside it is refused too.
    let layout = tmp.path().join("layout");
    ok(cnbpkg([
        "buildpack".as_ref(),
        "package".as_ref(),
        layout.as_os_str(),
        "--format".as_ref(),
        "layout".as_ref(),
        "--path".as_ref(),
        bp.as_os_str(),
    ]));
    let index = fs::read(layout.join("index.json")).unwrap();
    for inside in [layout.join("index.json"), layout.join("digest.txt")] {
        let mut args = child::push_args(&layout, &reference, &["--insecure", "--digest-file"]);
        args.push(inside.clone().into());
        let r = child::run(args, tmp.path(), &[], None);
        assert_eq!(r.code(), Some(1), "{r}");
        assert!(r.error_line().contains("the package"), "{r}");
    }
    assert_eq!(fs::read(layout.join("index.json")).unwrap(), index);
    assert!(!layout.join("digest.txt").exists());

    // An ordinary file beside them is written as before.
    let digest_file = tmp.path().join("digest.txt");
    let mut args = child::push_args(&pkg, &reference, &["--insecure", "--digest-file"]);
    args.push(digest_file.clone().into());
    let r = child::run(args, tmp.path(), &[], None);
    assert!(r.ok(), "{r}");
    assert!(fs::read_to_string(&digest_file)
        .unwrap()
        .starts_with("sha256:"));
}

#[test]
fn scratch_directories_in_a_tmpdir_inside_the_tree_stay_out_of_the_layers() {
    let tmp = tempfile::tempdir().unwrap();
    buildpack(tmp.path());
    let dep = tmp.path().join("dep.tgz");
    tool_ok(
        "tar",
        &[
            "-C",
            tmp.path().join("bp").to_str().unwrap(),
            "-czf",
            dep.to_str().unwrap(),
            ".",
        ],
    );
    let comp = tmp.path().join("comp");
    write_file(
        &comp.join("buildpack.toml"),
        "api = \"0.10\"\n\n[buildpack]\nid = \"ex/comp\"\nversion = \"1.0.0\"\n\n[[order]]\n[[order.group]]\nid = \"ex/out\"\nversion = \"1.0.0\"\n",
        0o644,
    );
    write_file(
        &comp.join("package.toml"),
        "[buildpack]\nuri = \".\"\n\n[[dependencies]]\nuri = \"../dep.tgz\"\n",
        0o644,
    );
    // A CI job that keeps its temporary files in the checkout.
    let inside = comp.join("tmp");
    fs::create_dir(&inside).unwrap();
    let outside = tmp.path().join("elsewhere");
    fs::create_dir(&outside).unwrap();
    let mut bytes = Vec::new();
    for (name, tmpdir) in [("a.cnb", &outside), ("b.cnb", &inside)] {
        let out = tmp.path().join(name);
        let r = child::output(
            cnbpkg_command()
                .current_dir(&comp)
                .env("TMPDIR", tmpdir)
                .args(["buildpack", "package"])
                .arg(&out)
                .args(["--config", "package.toml", "--target", "linux/amd64"]),
        );
        ok(r);
        bytes.push(fs::read(&out).unwrap());
        assert_eq!(list(tmpdir), Vec::<String>::new());
    }
    assert!(bytes[0] == bytes[1], "the scratch directory was packaged");
}

#[test]
fn interrupt_stops_a_push_with_a_digest_file_at_once() {
    use std::net::TcpListener;
    use std::sync::mpsc;
    use std::time::Duration;

    let tmp = tempfile::tempdir().unwrap();
    let bp = buildpack(tmp.path());
    let pkg = tmp.path().join("pkg.cnb");
    ok(cnbpkg([
        "buildpack".as_ref(),
        "package".as_ref(),
        pkg.as_os_str(),
        "--path".as_ref(),
        bp.as_os_str(),
    ]));
    // A registry that accepts connections and never answers.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let (accepted, connected) = mpsc::channel();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming().take(16) {
            let Ok(stream) = stream else { break };
            held.push(stream);
            if accepted.send(()).is_err() {
                break;
            }
        }
    });
    let out = tmp.path().join("out");
    fs::create_dir(&out).unwrap();
    let digest_file = out.join("digest.txt");
    let mut args = child::push_args(
        &pkg,
        &format!("127.0.0.1:{port}/ex/out:1"),
        &["--insecure", "--digest-file"],
    );
    args.push(digest_file.into());
    let child = child::spawn(args, tmp.path(), &[]);
    // Interrupted while it waits for the registry.
    connected
        .recv_timeout(Duration::from_secs(60))
        .expect("cnbpkg never connected");
    // SAFETY: kill(2) on the PID of the child this test started.
    assert_eq!(
        unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGINT) },
        0
    );
    let r = child::finish(child);
    assert_eq!(r.code(), Some(130), "{r}");
    assert_eq!(fs::read_dir(&out).unwrap().count(), 0, "{r}");
}
