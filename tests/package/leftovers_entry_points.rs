//! A buildpack's entry points are looked for inside the buildpack, as the image will see them:
//! never through a link that leaves the tree, whatever the packaging host holds there.

use std::fs;
use std::os::unix::fs::symlink;
use std::path::Path;

use crate::support::*;

/// A buildpack whose `bin` is only a link; `outside` holds real build and detect scripts.
fn linked_bin_buildpack(work: &Path, name: &str, link_target: &Path) -> std::path::PathBuf {
    let bp = work.join(name);
    minimal_buildpack(&bp, "acme/links", "1.0.0", "");
    fs::remove_dir_all(bp.join("bin")).unwrap();
    symlink(link_target, bp.join("bin")).unwrap();
    bp
}

fn package(work: &Path, bp: &Path) -> std::process::Output {
    cnbpkg([
        "buildpack".as_ref(),
        "package".as_ref(),
        work.join(format!("{}.cnb", bp.file_name().unwrap().to_string_lossy()))
            .as_os_str(),
        "--path".as_ref(),
        bp.as_os_str(),
        "-q".as_ref(),
    ])
}

#[test]
fn entry_points_behind_a_link_leaving_the_tree_are_missing() {
    let tmp = tempfile::tempdir().unwrap();
    let work = tmp.path();
    let outside = work.join("host-bin");
    write_file(&outside.join("build"), "#!/bin/sh\n", 0o755);
    write_file(&outside.join("detect"), "#!/bin/sh\n", 0o755);

    let absolute = linked_bin_buildpack(work, "absolute", &outside);
    let err = fails(package(work, &absolute), 1);
    assert!(err.contains("which has no bin/build"), "{err}");

    let relative = linked_bin_buildpack(work, "relative", Path::new("../host-bin"));
    let err = fails(package(work, &relative), 1);
    assert!(err.contains("which has no bin/build"), "{err}");
}

#[test]
fn entry_points_linked_inside_the_tree_are_found() {
    let tmp = tempfile::tempdir().unwrap();
    let work = tmp.path();
    // libcnb's layout: bin/detect -> build.
    let bp = work.join("libcnb");
    minimal_buildpack(&bp, "acme/libcnb", "1.0.0", "");
    fs::remove_file(bp.join("bin/detect")).unwrap();
    symlink("build", bp.join("bin/detect")).unwrap();
    ok(package(work, &bp));

    // bin is a link to another folder of the buildpack.
    let bp = work.join("inner");
    minimal_buildpack(&bp, "acme/inner", "1.0.0", "");
    fs::rename(bp.join("bin"), bp.join("real-bin")).unwrap();
    symlink("real-bin", bp.join("bin")).unwrap();
    ok(package(work, &bp));
}

#[test]
fn a_dangling_or_looping_entry_point_is_missing() {
    let tmp = tempfile::tempdir().unwrap();
    let work = tmp.path();
    let bp = work.join("dangling");
    minimal_buildpack(&bp, "acme/dangling", "1.0.0", "");
    fs::remove_file(bp.join("bin/build")).unwrap();
    symlink("nowhere", bp.join("bin/build")).unwrap();
    let err = fails(package(work, &bp), 1);
    assert!(err.contains("which has no bin/build"), "{err}");

    let bp = work.join("looping");
    minimal_buildpack(&bp, "acme/looping", "1.0.0", "");
    fs::remove_file(bp.join("bin/build")).unwrap();
    symlink("build", bp.join("bin/build")).unwrap();
    let err = fails(package(work, &bp), 1);
    assert!(err.contains("which has no bin/build"), "{err}");
}
