//! Two buildpacks whose `id@version` strings are equal but whose ids and versions are not
//! (`x/y@1` version `0` and `x/y` version `1@0`): `merge` and a composite over per-arch
//! dependency packages must not take them for one buildpack.

use std::fs;
use std::path::{Path, PathBuf};

use crate::support::*;

fn package(dir: &Path, name: &str, id: &str, version: &str, target: &str) -> PathBuf {
    let src = dir.join(format!("src-{name}"));
    minimal_buildpack(&src, id, version, "");
    let out = dir.join(format!("{name}.cnb"));
    ok(cnbpkg([
        "buildpack",
        "package",
        out.to_str().unwrap(),
        "--path",
        src.to_str().unwrap(),
        "-t",
        target,
    ]));
    out
}

#[test]
fn merge_compares_ids_and_versions_not_their_joined_text() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    let a = package(dir, "a", "x/y@1", "0", "linux/amd64");
    let b = package(dir, "b", "x/y", "1@0", "linux/arm64");
    let out = dir.join("merged.cnb");
    let before = list(dir);
    let e = fails(
        cnbpkg([
            "merge",
            out.to_str().unwrap(),
            a.to_str().unwrap(),
            b.to_str().unwrap(),
        ]),
        1,
    );
    assert!(
        e.contains(&a.display().to_string())
            && e.contains(&b.display().to_string())
            && e.contains("different buildpacks"),
        "{e}"
    );
    assert_eq!(list(dir), before);
}

#[test]
fn composite_groups_dependency_packages_by_id_and_version_not_their_joined_text() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    package(dir, "a", "x/y@1", "0", "linux/amd64");
    package(dir, "b", "x/y", "1@0", "linux/arm64");
    write_file(
        &dir.join("meta/buildpack.toml"),
        "api = \"0.10\"\n\n[buildpack]\nid = \"ex/meta\"\nversion = \"1.0.0\"\n\n[[order]]\n[[order.group]]\nid = \"x/y\"\nversion = \"1@0\"\n",
        0o644,
    );
    fs::write(
        dir.join("package.toml"),
        "[buildpack]\nuri = \"meta\"\n\n[[dependencies]]\nuri = \"a.cnb\"\n\n[[dependencies]]\nuri = \"b.cnb\"\n\n[[targets]]\nos = \"linux\"\narch = \"amd64\"\n\n[[targets]]\nos = \"linux\"\narch = \"arm64\"\n",
    )
    .unwrap();
    // Two buildpacks, each for one platform: no image of b.cnb serves linux/amd64 (and none
    // of a.cnb linux/arm64), so the composite cannot be made for both.
    let out = cnbpkg_in(
        dir,
        [
            "buildpack",
            "package",
            "meta.cnb",
            "--config",
            "package.toml",
        ],
    );
    let e = fails(out, 1);
    assert!(!dir.join("meta.cnb").exists(), "{e}");
}
