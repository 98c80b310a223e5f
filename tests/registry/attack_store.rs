//! `pull --output` and `store` commands against careless and hostile paths: an output that is
//! a directory, a file that is no package, a link, or lies inside the store through a link is
//! refused and left as it was; `store remove` of a name the store lacks names it; `store gc`
//! removes only unreferenced blob files, never other names, directories or links.

use std::path::Path;

use crate::support::registry::Registry;
use crate::support::*;

/// A one-image package pushed to `reg` as `REG/deps/a:1`; returns the reference.
fn pushed(reg: &Registry, dir: &Path) -> String {
    let src = dir.join("src/a");
    minimal_buildpack(&src, "test/a", "1.0.0", "");
    let cnb = dir.join("a.cnb");
    ok(cnbpkg([
        "buildpack",
        "package",
        cnb.to_str().unwrap(),
        "--path",
        src.to_str().unwrap(),
    ]));
    let reference = format!("{}/deps/a:1", reg.host());
    ok(cnbpkg([
        "push",
        cnb.to_str().unwrap(),
        &reference,
        "--insecure",
    ]));
    reference
}

#[test]
fn careless_outputs_and_stray_store_files_are_left_alone() {
    let reg = Registry::start_plain();
    let d = tempfile::tempdir().unwrap();
    let reference = pushed(&reg, d.path());
    let store = d.path().join("store");
    let s = store.to_str().unwrap();
    ok(cnbpkg(["pull", "--insecure", "--store", s, &reference]));
    std::fs::create_dir(d.path().join("adir")).unwrap();
    std::fs::write(d.path().join("afile"), b"mine").unwrap();
    std::os::unix::fs::symlink(&store, d.path().join("storelink")).unwrap();
    std::os::unix::fs::symlink(d.path().join("afile"), d.path().join("filelink")).unwrap();
    let before = list(&store);
    for (out, code, says) in [
        ("adir", 1, "is a directory"),
        ("afile", 1, "exists and is not a package"),
        ("filelink", 1, "is a symbolic link"),
        ("storelink/x.tar", 2, "lies inside the store"),
        ("store", 2, "lies inside the store"),
    ] {
        let o = d.path().join(out);
        let args = [
            "pull",
            "--insecure",
            "--store",
            s,
            "--output",
            o.to_str().unwrap(),
            &reference,
        ];
        let stderr = fails(cnbpkg(args), code);
        assert!(stderr.contains(says), "{out}: {stderr}");
    }
    assert_eq!(std::fs::read(d.path().join("afile")).unwrap(), b"mine");
    assert!(std::fs::symlink_metadata(d.path().join("filelink"))
        .unwrap()
        .file_type()
        .is_symlink());
    assert_eq!(list(&store), before);
    assert!(!store.join("x.tar").exists());
    // A reference the store does not hold: named, nothing removed.
    let stderr = fails(cnbpkg(["store", "remove", "--store", s, "nothere:1"]), 2);
    assert!(stderr.contains("docker.io/library/nothere:1"), "{stderr}");
    // gc removes unreferenced blob files only: not other names, directories or links.
    let blobs = store.join("blobs/sha256");
    std::fs::write(blobs.join("junk"), b"x").unwrap();
    std::fs::create_dir(blobs.join("b".repeat(64))).unwrap();
    std::fs::write(blobs.join("c".repeat(64)), b"x").unwrap();
    std::os::unix::fs::symlink(d.path().join("afile"), blobs.join("d".repeat(64))).unwrap();
    ok(cnbpkg(["store", "gc", "--store", s]));
    assert!(blobs.join("junk").exists());
    assert!(blobs.join("b".repeat(64)).is_dir());
    assert!(!blobs.join("c".repeat(64)).exists());
    assert!(std::fs::symlink_metadata(blobs.join("d".repeat(64))).is_ok());
    assert_eq!(std::fs::read(d.path().join("afile")).unwrap(), b"mine");
    // The image is intact.
    let out = d.path().join("deps.tar");
    ok(cnbpkg([
        "pull",
        "--insecure",
        "--store",
        s,
        "--output",
        out.to_str().unwrap(),
        &reference,
    ]));
    ok(cnbpkg(["verify", out.to_str().unwrap()]));
}
