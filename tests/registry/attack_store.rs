//! `pull --output` and `store` commands against careless and hostile paths: an output that is
//! a directory, a file that is no package, a link, or lies inside the store through a link.

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
    ok(cnbpkg(["push", cnb.to_str().unwrap(), &reference, "--insecure"]));
    reference
}

#[test]
fn probe() {
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
    for out in ["adir", "afile", "storelink/x.tar", "filelink", "store", "nodir/x.tar", "a.cnb"] {
        let o = d.path().join(out);
        let r = cnbpkg(["pull", "--insecure", "--store", s, "--output", o.to_str().unwrap(), &reference]);
        eprintln!("== {out}: {:?}\n{}", r.status.code(), String::from_utf8_lossy(&r.stderr));
    }
    eprintln!("afile: {:?}", std::fs::read(d.path().join("afile")));
    eprintln!("{}", list(d.path()).join("\n"));
    let r = cnbpkg(["store", "remove", "--store", s, "nothere:1"]);
    eprintln!("remove: {:?}\n{}", r.status.code(), String::from_utf8_lossy(&r.stderr));
    std::fs::write(store.join("blobs/sha256/junk"), b"x").unwrap();
    std::fs::create_dir(store.join("blobs/sha256").join("b".repeat(64))).unwrap();
    std::fs::write(store.join("blobs/sha256").join("c".repeat(64)), b"x").unwrap();
    std::os::unix::fs::symlink(d.path().join("afile"), store.join("blobs/sha256").join("d".repeat(64))).unwrap();
    let r = cnbpkg(["store", "gc", "--store", s]);
    eprintln!("gc: {:?}\n{}", r.status.code(), String::from_utf8_lossy(&r.stderr));
    eprintln!("{}", list(&store).join("\n"));
    panic!("probe");
}
