//! Values from buildpack.toml, extension.toml and package.toml that become paths, folder
//! names or oversized configs: refused with an error naming the file, nothing written; what
//! the spec forbids but pack accepts only warns.

use std::fs;
use std::path::Path;
use std::process::Output;

use crate::support::*;

fn package(dir: &Path, args: &[&str]) -> Output {
    cnbpkg_in(dir, args)
}

/// Exit 1 with one error line naming `file` and containing `expect`; no output written.
fn refused(o: Output, dir: &Path, file: &str, expect: &str, what: &str) {
    let err = fails(o, 1);
    let lines: Vec<&str> = err.lines().filter(|l| l.starts_with("error")).collect();
    assert_eq!(lines.len(), 1, "{what}: want one error line:\n{err}");
    assert!(
        lines[0].contains(file),
        "{what}: error does not name {file}:\n{err}"
    );
    assert!(
        lines[0].contains(expect),
        "{what}: error lacks '{expect}':\n{err}"
    );
    assert!(!dir.join("out.cnb").exists(), "{what}: output written");
    let left: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("out"))
        .collect();
    assert!(left.is_empty(), "{what}: left behind: {left:?}");
}

/// Layer entry names of a layout package.
fn entry_names(layout: &Path) -> Vec<String> {
    let mut names = Vec::new();
    for e in fs::read_dir(layout.join("blobs/sha256")).unwrap() {
        let bytes = fs::read(e.unwrap().path()).unwrap();
        if serde_json::from_slice::<serde_json::Value>(&bytes).is_ok() {
            continue;
        }
        let mut ar = tar::Archive::new(&bytes[..]);
        for entry in ar.entries().unwrap() {
            names.push(String::from_utf8_lossy(&entry.unwrap().path_bytes()).into_owned());
        }
    }
    names
}

#[test]
fn ids_and_versions_that_would_leave_the_module_directory_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let cases: &[(&str, &str, &str)] = &[
        ("t/bp", "../../../etc", "buildpack.version"),
        ("t/bp", ".", "buildpack.version"),
        ("t/bp", "..", "buildpack.version"),
        ("t/bp", "1.0/x", "buildpack.version"),
        ("t/bp", "1.0\\\\..\\\\x", "buildpack.version"),
        ("t/bp", "1.0\\u0000", "buildpack.version"),
        ("t/bp", "1.0\\n", "buildpack.version"),
        ("..", "1.0.0", "buildpack.id"),
        (".", "1.0.0", "buildpack.id"),
        ("t/../../etc", "1.0.0", "buildpack.id"),
        ("t//bp", "1.0.0", "buildpack.id"),
        ("/t", "1.0.0", "buildpack.id"),
        ("t/", "1.0.0", "buildpack.id"),
        ("t\\u001b[2Jbp", "1.0.0", "buildpack.id"),
        ("t\\\\..\\\\bp", "1.0.0", "buildpack.id"),
    ];
    for (i, (id, version, key)) in cases.iter().enumerate() {
        let dir = tmp.path().join(format!("case{i}"));
        let bp = dir.join("bp");
        minimal_buildpack(&bp, "placeholder", "0", "");
        write_file(
            &bp.join("buildpack.toml"),
            &format!("api = \"0.10\"\n[buildpack]\nid = \"{id}\"\nversion = \"{version}\"\n"),
            0o644,
        );
        let what = format!("id {id:?} version {version:?}");
        for format in ["file", "layout"] {
            refused(
                package(
                    &dir,
                    &[
                        "buildpack",
                        "package",
                        "out.cnb",
                        "--path",
                        "bp",
                        "--format",
                        format,
                    ],
                ),
                &dir,
                "buildpack.toml",
                key,
                &what,
            );
        }
    }
}

#[test]
fn extension_ids_and_versions_are_checked_too() {
    let tmp = tempfile::tempdir().unwrap();
    let ext = tmp.path().join("ext");
    fs::create_dir_all(ext.join("bin")).unwrap();
    write_file(&ext.join("bin/detect"), "#!/bin/sh\n", 0o755);
    write_file(&ext.join("bin/generate"), "#!/bin/sh\n", 0o755);
    write_file(
        &ext.join("extension.toml"),
        "api = \"0.10\"\n[extension]\nid = \"t/ext\"\nversion = \"../../x\"\n",
        0o644,
    );
    refused(
        package(
            tmp.path(),
            &["buildpack", "package", "out.cnb", "--path", "ext"],
        ),
        tmp.path(),
        "extension.toml",
        "extension.version",
        "extension",
    );
}

#[test]
fn ids_the_spec_forbids_but_pack_accepts_only_warn() {
    let tmp = tempfile::tempdir().unwrap();
    for (i, id) in ["My_Buildpack", "app", "config", "t/bp+x"]
        .iter()
        .enumerate()
    {
        let dir = tmp.path().join(format!("w{i}"));
        minimal_buildpack(&dir.join("bp"), id, "1.0.0", "");
        let o = package(
            &dir,
            &[
                "buildpack",
                "package",
                "out",
                "--path",
                "bp",
                "--format",
                "layout",
                "-t",
                "linux/amd64",
                "--compression",
                "none",
            ],
        );
        assert!(
            o.status.success(),
            "{id}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert!(
            stderr.contains("warning") && stderr.contains("specification") && stderr.contains(id),
            "{id}: no warning:\n{stderr}"
        );
        ok(cnbpkg(["verify".as_ref(), dir.join("out").as_os_str()]));
        let esc = id.replace('/', "_");
        assert!(entry_names(&dir.join("out"))
            .iter()
            .any(|n| n.ends_with(&format!("cnb/buildpacks/{esc}/1.0.0/bin/build"))));
    }
}

#[test]
fn target_values_from_configuration_files_are_checked_like_target_flags() {
    let tmp = tempfile::tempdir().unwrap();
    let bad_targets = [
        "os = \"../../x\"\narch = \"amd64\"",
        "os = \"linux\"\narch = \"..\"",
        "os = \"linux\"\narch = \"amd64/x\"",
        "os = \"linux\"\narch = \"arm\"\nvariant = \"v7\\u0007\"",
        "os = \"linux\"\narch = \"amd64\"\n[[targets.distros]]\nname = \"ubuntu/../../x\"\nversion = \"22.04\"",
        "os = \"linux\"\narch = \"amd64\"\n[[targets.distros]]\nname = \"ubuntu\"\nversion = \"22.04\\n\"",
        "os = \"linux\"\narch = \"amd64\"\n[[targets.distros]]\nname = \"..\"\nversion = \"1\"",
    ];
    for (i, t) in bad_targets.iter().enumerate() {
        let dir = tmp.path().join(format!("t{i}"));
        minimal_buildpack(
            &dir.join("bp"),
            "t/bp",
            "1.0.0",
            &format!("\n[[targets]]\n{t}\n"),
        );
        refused(
            package(&dir, &["buildpack", "package", "out.cnb", "--path", "bp"]),
            &dir,
            "buildpack.toml",
            "targets",
            t,
        );
        // The same target in a composite's package.toml.
        let meta = dir.join("meta");
        write_file(
            &meta.join("buildpack.toml"),
            "api = \"0.10\"\n[buildpack]\nid = \"t/meta\"\nversion = \"1\"\n[[order]]\n[[order.group]]\nid = \"t/bp\"\nversion = \"1.0.0\"\n",
            0o644,
        );
        minimal_buildpack(&dir.join("dep"), "t/bp", "1.0.0", "");
        write_file(
            &dir.join("package.toml"),
            &format!(
                "[buildpack]\nuri = \"meta\"\n[[dependencies]]\nuri = \"dep\"\n[[targets]]\n{t}\n"
            ),
            0o644,
        );
        refused(
            package(
                &dir,
                &[
                    "buildpack",
                    "package",
                    "out.cnb",
                    "--config",
                    "package.toml",
                ],
            ),
            &dir,
            "package.toml",
            "targets",
            t,
        );
    }
}

#[test]
fn a_config_larger_than_readers_accept_is_refused_naming_buildpack_toml() {
    let tmp = tempfile::tempdir().unwrap();
    let bp = tmp.path().join("bp");
    let name = "n".repeat(20 << 20);
    minimal_buildpack(&bp, "t/big", "1.0.0", "");
    write_file(
        &bp.join("buildpack.toml"),
        &format!(
            "api = \"0.10\"\n[buildpack]\nid = \"t/big\"\nversion = \"1.0.0\"\nname = \"{name}\"\n"
        ),
        0o644,
    );
    for format in ["file", "layout"] {
        refused(
            package(
                tmp.path(),
                &[
                    "buildpack",
                    "package",
                    "out.cnb",
                    "--path",
                    "bp",
                    "-t",
                    "linux/amd64",
                    "--format",
                    format,
                ],
            ),
            tmp.path(),
            "buildpack.toml",
            "limit",
            "20 MB name",
        );
    }
    // A large name that still fits is packaged, and every reader accepts the result.
    let name = "n".repeat(4 << 20);
    write_file(
        &bp.join("buildpack.toml"),
        &format!(
            "api = \"0.10\"\n[buildpack]\nid = \"t/big\"\nversion = \"1.0.0\"\nname = \"{name}\"\n"
        ),
        0o644,
    );
    ok(package(
        tmp.path(),
        &[
            "buildpack",
            "package",
            "out.cnb",
            "--path",
            "bp",
            "-t",
            "linux/amd64",
            "-q",
        ],
    ));
    ok(cnbpkg([
        "verify".as_ref(),
        tmp.path().join("out.cnb").as_os_str(),
    ]));
    ok(cnbpkg([
        "inspect".as_ref(),
        tmp.path().join("out.cnb").as_os_str(),
    ]));
}

#[test]
fn target_flags_follow_the_same_rules_for_distros() {
    let tmp = tempfile::tempdir().unwrap();
    minimal_buildpack(&tmp.path().join("bp"), "t/bp", "1.0.0", "");
    for t in [
        "linux/amd64:ubuntu@22.04\u{7}",
        "linux/amd64:ubu/ntu@22.04",
        "linux/amd64:..@1",
    ] {
        refused(
            package(
                tmp.path(),
                &["buildpack", "package", "out.cnb", "--path", "bp", "-t", t],
            ),
            tmp.path(),
            "invalid target",
            "distro",
            t,
        );
    }
    ok(package(
        tmp.path(),
        &[
            "buildpack",
            "package",
            "out.cnb",
            "--path",
            "bp",
            "-t",
            "linux/amd64:ubuntu@22.04",
            "-q",
        ],
    ));
}
