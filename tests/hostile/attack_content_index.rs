//! The index shape a package gets from its targets: whatever packaging writes, its own reader
//! (verify) accepts.

use std::fs;

use crate::support::*;

/// Distros that give one image share one index entry whose annotation lists them; verify reads
/// that annotation up to 16 KiB, so packaging refuses a longer one rather than writing a
/// package verify rejects.
#[test]
fn a_distros_annotation_longer_than_readers_accept_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let bp = tmp.path().join("bp");
    let mut distros = String::new();
    // 90 versions of 186 characters: a 17 KiB list, and file names --split can still write.
    for i in 10..100 {
        distros.push_str(&format!(
            "[[targets.distros]]\nname = \"ubuntu\"\nversion = \"{i}.{}\"\n",
            "9".repeat(183)
        ));
    }
    minimal_buildpack(
        &bp,
        "acme/distros",
        "1.0.0",
        &format!("[[targets]]\nos = \"linux\"\narch = \"amd64\"\n{distros}"),
    );
    let out = tmp.path().join("out.cnb");
    let o = cnbpkg([
        "buildpack",
        "package",
        out.to_str().unwrap(),
        "--path",
        bp.to_str().unwrap(),
        "-q",
    ]);
    if o.status.success() {
        let v = cnbpkg(["verify", out.to_str().unwrap()]);
        panic!(
            "packaged; verify of it: {}{}",
            String::from_utf8_lossy(&v.stdout),
            String::from_utf8_lossy(&v.stderr)
        );
    }
    let err = fails(o, 1);
    assert!(
        err.contains("io.buildpacks.base.distros") && err.contains("linux/amd64"),
        "{err}"
    );
    assert!(!out.exists());
    assert_eq!(fs::read_dir(tmp.path()).unwrap().count(), 1, "files left");

    // With --split each distro gets its own file and no list: that packages and verifies.
    ok(cnbpkg([
        "buildpack",
        "package",
        out.to_str().unwrap(),
        "--path",
        bp.to_str().unwrap(),
        "--split",
        "-q",
    ]));
    let files: Vec<_> = fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "cnb"))
        .collect();
    assert_eq!(files.len(), 90);
    for f in files {
        ok(cnbpkg(["verify", f.to_str().unwrap()]));
    }
}

/// Every image's label lists all the buildpack's targets, so packaging N targets costs N²: a
/// small buildpack.toml with thousands of distros is refused at once, naming the file.
#[test]
fn thousands_of_distros_are_refused_before_any_work() {
    let tmp = tempfile::tempdir().unwrap();
    let bp = tmp.path().join("bp");
    let mut distros = String::new();
    for i in 0..4000 {
        distros.push_str(&format!(
            "[[targets.distros]]\nname = \"u\"\nversion = \"{i}\"\n"
        ));
    }
    minimal_buildpack(
        &bp,
        "acme/many",
        "1.0.0",
        &format!("[[targets]]\nos = \"linux\"\narch = \"amd64\"\n{distros}"),
    );
    let out = tmp.path().join("out.cnb");
    let err = fails(
        cnbpkg([
            "buildpack",
            "package",
            out.to_str().unwrap(),
            "--path",
            bp.to_str().unwrap(),
            "-q",
        ]),
        1,
    );
    assert!(
        err.contains("buildpack.toml") && err.contains("4000 targets") && err.contains("1024"),
        "{err}"
    );
    assert!(!out.exists());
}
