//! A module's id and version are folder names of every layer: for a Windows target they must
//! be names Windows can create, or the package cannot be extracted there.

use std::path::Path;

use crate::support::*;

fn windows_buildpack(dir: &Path, id: &str, version: &str) {
    write_file(
        &dir.join("buildpack.toml"),
        &format!(
            "api = \"0.10\"\n\n[buildpack]\nid = \"{id}\"\nversion = \"{version}\"\n\n\
             [[targets]]\nos = \"windows\"\narch = \"amd64\"\n\n\
             [[targets]]\nos = \"linux\"\narch = \"amd64\"\n"
        ),
        0o644,
    );
    for exe in ["build", "detect"] {
        write_file(&dir.join(format!("bin/{exe}.bat")), "@echo off\r\n", 0o755);
        write_file(&dir.join(format!("bin/{exe}")), "#!/bin/sh\n", 0o755);
    }
}

fn package(work: &Path, bp: &Path, target: &str) -> std::process::Output {
    cnbpkg([
        "buildpack".as_ref(),
        "package".as_ref(),
        work.join("out.cnb").as_os_str(),
        "--path".as_ref(),
        bp.as_os_str(),
        "--target".as_ref(),
        target.as_ref(),
        "-q".as_ref(),
    ])
}

#[test]
fn names_windows_cannot_hold_are_refused_for_windows_targets_only() {
    let tmp = tempfile::tempdir().unwrap();
    let work = tmp.path();
    let cases = [
        ("acme/colon", "1.0:beta", "contains ':'"),
        ("acme/star", "1.*", "contains '*'"),
        ("acme/pipe", "1|2", "contains '|'"),
        ("acme/dot", "1.0.", "ends with a space or a dot"),
        ("acme/space", "1.0 ", "ends with a space or a dot"),
        ("con", "1.0.0", "reserved Windows device name con"),
        ("acme/nul", "NUL.1", "reserved Windows device name NUL"),
        ("acme/lpt", "lpt1", "reserved Windows device name lpt1"),
        ("acme/q?", "1.0.0", "contains '?'"),
    ];
    for (i, (id, version, why)) in cases.iter().enumerate() {
        let bp = work.join(format!("bp{i}"));
        windows_buildpack(&bp, id, version);
        let err = fails(package(work, &bp, "windows/amd64"), 1);
        assert!(err.contains("buildpack.toml"), "{id}@{version}: {err}");
        assert!(err.contains(why), "{id}@{version}: {err}");
        // Linux has no such rule: the same buildpack packages for Linux.
        ok(package(work, &bp, "linux/amd64"));
    }
}

#[test]
fn ordinary_names_package_for_windows() {
    let tmp = tempfile::tempdir().unwrap();
    let work = tmp.path();
    for (i, (id, version)) in [("acme/console", "1.0.0"), ("acme/com0", "1.0.0-rc.1+b2")]
        .iter()
        .enumerate()
    {
        let bp = work.join(format!("ok{i}"));
        windows_buildpack(&bp, id, version);
        ok(package(work, &bp, "windows/amd64"));
    }
}
