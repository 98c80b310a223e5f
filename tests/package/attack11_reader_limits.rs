//! What packaging writes, its own readers accept: the image tree's walker (inspect, verify,
//! push, dependency selection) reads at most 100 000 config and layer descriptors over all of
//! a package's images, so packaging refuses a package whose images would list more, rather
//! than write one that inspect and verify reject.

use std::fs;
use std::path::Path;

use crate::support::*;

/// A composite of `modules` Windows buildpacks for `versions` Windows versions (one image
/// each: a version is the image's `os.version`).
fn composite(dir: &Path, modules: usize, versions: usize) {
    let mut order = String::new();
    let mut deps = String::new();
    for i in 0..modules {
        let bp = dir.join(format!("b{i}"));
        fs::create_dir_all(bp.join("bin")).unwrap();
        fs::write(
            bp.join("buildpack.toml"),
            format!("api = \"0.10\"\n[buildpack]\nid = \"m/b{i}\"\nversion = \"1.0.0\"\n[[targets]]\nos = \"windows\"\narch = \"amd64\"\n"),
        )
        .unwrap();
        for f in ["detect.bat", "build.bat"] {
            fs::write(bp.join("bin").join(f), "@echo off\r\n").unwrap();
        }
        order.push_str(&format!(
            "[[order.group]]\nid = \"m/b{i}\"\nversion = \"1.0.0\"\n"
        ));
        deps.push_str(&format!("[[dependencies]]\nuri = \"b{i}\"\n"));
    }
    fs::create_dir_all(dir.join("meta")).unwrap();
    fs::write(
        dir.join("meta/buildpack.toml"),
        format!(
            "api = \"0.10\"\n[buildpack]\nid = \"m/meta\"\nversion = \"1.0.0\"\n[[order]]\n{order}"
        ),
    )
    .unwrap();
    let distros: String = (0..versions)
        .map(|v| format!("[[targets.distros]]\nname = \"windows\"\nversion = \"10.0.{v}\"\n"))
        .collect();
    fs::write(
        dir.join("package.toml"),
        format!("[buildpack]\nuri = \"meta\"\n[[targets]]\nos = \"windows\"\narch = \"amd64\"\n{distros}\n{deps}"),
    )
    .unwrap();
}

#[test]
fn images_listing_more_blobs_than_readers_accept_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    // 1024 images of a Windows base layer, 98 module layers, the composite's own layer and a
    // config: 103 424 descriptors.
    composite(dir, 98, 1024);
    let out = cnbpkg_in(
        dir,
        [
            "buildpack",
            "package",
            "many.cnb",
            "--config",
            "package.toml",
            "-q",
        ],
    );
    if out.status.success() {
        let inspect = cnbpkg_in(dir, ["inspect", "many.cnb"]);
        panic!(
            "packaged; inspect of it: {}",
            String::from_utf8_lossy(&inspect.stderr)
        );
    }
    let err = fails(out, 1);
    assert_eq!(
        err.trim_end(),
        "error: many.cnb: the package's images would list more than the 100000 configs and layers a package reader accepts (each image counts its own)"
    );
    assert!(!dir.join("many.cnb").exists());
}
