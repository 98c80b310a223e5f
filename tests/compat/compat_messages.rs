//! Messages that real buildpacks met: the `[[stacks]]` deprecation (only where pack's API
//! deprecates it, once, with the real id), `platform.os` advice for composites, the
//! multi-platform wording, Windows platforms in `--target` grammar, unknown
//! `--flatten-exclude` ids.

use std::path::Path;

use crate::support::*;

fn stderr_of(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn warnings(stderr: &str) -> Vec<String> {
    stderr
        .lines()
        .filter(|l| l.starts_with("warning:"))
        .map(str::to_string)
        .collect()
}

/// A buildpack tree with this buildpack.toml body (api included) and entry points.
fn tree(dir: &Path, toml: &str) {
    write_file(&dir.join("buildpack.toml"), toml, 0o644);
    write_file(&dir.join("bin/build"), "#!/bin/sh\n", 0o755);
    write_file(&dir.join("bin/detect"), "#!/bin/sh\n", 0o755);
}

#[test]
fn stacks_warn_only_when_deprecated_and_once_with_the_real_id() {
    let d = tempfile::tempdir().unwrap();
    // Paketo's shape: API 0.8, [[stacks]] and [[targets]]: nothing to warn about.
    let paketo = d.path().join("paketo");
    tree(
        &paketo,
        "api = \"0.8\"\n[buildpack]\nid = \"paketo-buildpacks/node-engine\"\nversion = \"1.0.0\"\n\n[[stacks]]\nid = \"*\"\n\n[[targets]]\nos = \"linux\"\narch = \"amd64\"\n",
    );
    let out = cnbpkg([
        "buildpack",
        "package",
        d.path().join("p.cnb").to_str().unwrap(),
        "--path",
        paketo.to_str().unwrap(),
    ]);
    let stderr = stderr_of(&out);
    ok(out);
    assert!(warnings(&stderr).is_empty(), "{stderr}");

    // API 0.10 with [[targets]] too: still nothing.
    let both = d.path().join("both");
    tree(
        &both,
        "api = \"0.10\"\n[buildpack]\nid = \"acme/both\"\nversion = \"1.0.0\"\n\n[[stacks]]\nid = \"*\"\n\n[[targets]]\nos = \"linux\"\narch = \"amd64\"\n",
    );
    let out = cnbpkg([
        "buildpack",
        "package",
        d.path().join("b.cnb").to_str().unwrap(),
        "--path",
        both.to_str().unwrap(),
    ]);
    let stderr = stderr_of(&out);
    ok(out);
    assert!(warnings(&stderr).is_empty(), "{stderr}");

    // API 0.10 with only [[stacks]], used twice by a composite: one warning, the id as written.
    let old = d.path().join("old");
    tree(
        &old,
        "api = \"0.10\"\n[buildpack]\nid = \"acme/old\"\nversion = \"1.0.0\"\n\n[[stacks]]\nid = \"io.buildpacks.stacks.jammy\"\n",
    );
    write_file(
        &d.path().join("meta/buildpack.toml"),
        "api = \"0.10\"\n[buildpack]\nid = \"acme/meta\"\nversion = \"1.0.0\"\n[[order]]\n[[order.group]]\nid = \"acme/old\"\nversion = \"1.0.0\"\n",
        0o644,
    );
    write_file(
        &d.path().join("package.toml"),
        "[buildpack]\nuri = \"meta\"\n[[dependencies]]\nuri = \"old\"\n[[dependencies]]\nuri = \"./old\"\n",
        0o644,
    );
    let out = cnbpkg_in(
        d.path(),
        ["buildpack", "package", "m.cnb", "--config", "package.toml"],
    );
    let stderr = stderr_of(&out);
    ok(out);
    assert_eq!(
        warnings(&stderr),
        vec!["warning: buildpack.toml: [[stacks]] is deprecated since Buildpack API 0.10 (buildpack acme/old uses API 0.10); declare its platforms with [[targets]]"],
        "{stderr}"
    );
}

#[test]
fn platform_os_advice_fits_composites() {
    let d = tempfile::tempdir().unwrap();
    tree(
        &d.path().join("a"),
        "api = \"0.10\"\n[buildpack]\nid = \"acme/a\"\nversion = \"1.0.0\"\n",
    );
    write_file(
        &d.path().join("meta/buildpack.toml"),
        "api = \"0.10\"\n[buildpack]\nid = \"acme/meta\"\nversion = \"1.0.0\"\n[[order]]\n[[order.group]]\nid = \"acme/a\"\nversion = \"1.0.0\"\n",
        0o644,
    );
    write_file(
        &d.path().join("package.toml"),
        "[buildpack]\nuri = \"meta\"\n[[dependencies]]\nuri = \"a\"\n[platform]\nos = \"linux\"\n",
        0o644,
    );
    let out = cnbpkg_in(
        d.path(),
        ["buildpack", "package", "m.cnb", "--config", "package.toml"],
    );
    let stderr = stderr_of(&out);
    ok(out);
    let w = warnings(&stderr);
    assert_eq!(w.len(), 1, "{stderr}");
    assert!(w[0].contains("[[targets]] in package.toml"), "{stderr}");
    assert!(!w[0].contains("buildpack.toml"), "{stderr}");
    // With --target: the error gives the same advice.
    let stderr = fails(
        cnbpkg_in(
            d.path(),
            [
                "buildpack",
                "package",
                "m.cnb",
                "--config",
                "package.toml",
                "--target",
                "linux/amd64",
            ],
        ),
        1,
    );
    assert!(
        stderr.contains("error: 'platform.os' and '--target' flag can not be used in conjunction"),
        "{stderr}"
    );
    assert!(stderr.contains("[[targets]] in package.toml"), "{stderr}");

    // A non-composite keeps pack's advice (its targets are in buildpack.toml).
    write_file(
        &d.path().join("package.toml"),
        "[buildpack]\nuri = \"a\"\n[platform]\nos = \"linux\"\n",
        0o644,
    );
    let out = cnbpkg_in(
        d.path(),
        ["buildpack", "package", "a.cnb", "--config", "package.toml"],
    );
    let stderr = stderr_of(&out);
    ok(out);
    assert!(
        warnings(&stderr)[0].contains("`targets` field in buildpack.toml"),
        "{stderr}"
    );
}

#[test]
fn split_says_one_package_per_target() {
    let d = tempfile::tempdir().unwrap();
    let bp = d.path().join("bp");
    tree(
        &bp,
        "api = \"0.10\"\n[buildpack]\nid = \"acme/a\"\nversion = \"1.0.0\"\n",
    );
    let out = cnbpkg([
        "buildpack",
        "package",
        d.path().join("s.cnb").to_str().unwrap(),
        "--path",
        bp.to_str().unwrap(),
        "-t",
        "linux/amd64,linux/arm64",
        "--split",
    ]);
    let stderr = stderr_of(&out);
    ok(out);
    assert!(stderr.contains("acme/a@1.0.0: one single-platform buildpack package per target will be created for target platforms: 'linux/amd64', 'linux/arm64'"), "{stderr}");
    assert!(!stderr.contains("multi-arch"), "{stderr}");
    let out = cnbpkg([
        "buildpack",
        "package",
        d.path().join("m.cnb").to_str().unwrap(),
        "--path",
        bp.to_str().unwrap(),
        "-t",
        "linux/amd64,linux/arm64",
    ]);
    let stderr = stderr_of(&out);
    ok(out);
    assert!(
        stderr.contains("a multi-platform buildpack package will be created"),
        "{stderr}"
    );
}

/// The `Platform` lines of `cnbpkg inspect`.
fn platforms(pkg: &Path) -> Vec<String> {
    ok(cnbpkg(["inspect", pkg.to_str().unwrap()]))
        .lines()
        .filter_map(|l| l.strip_prefix("Platform "))
        .map(str::to_string)
        .collect()
}

#[test]
fn windows_platforms_are_shown_as_targets_that_select_them() {
    let d = tempfile::tempdir().unwrap();
    // The spec's Windows distro has no name; pack's usual spelling names it "windows".
    let bp = d.path().join("win");
    write_file(
        &bp.join("buildpack.toml"),
        "api = \"0.10\"\n[buildpack]\nid = \"acme/win\"\nversion = \"1.0.0\"\n\n\
         [[targets]]\nos = \"windows\"\narch = \"amd64\"\n[[targets.distros]]\nversion = \"10.0.20348\"\n\n\
         [[targets]]\nos = \"windows\"\narch = \"arm64\"\n[[targets.distros]]\nname = \"windows\"\nversion = \"10.0.26100\"\n",
        0o644,
    );
    write_file(&bp.join("bin/build.bat"), "@echo off\r\n", 0o644);
    write_file(&bp.join("bin/detect.bat"), "@echo off\r\n", 0o644);
    let multi = d.path().join("multi.cnb");
    ok(cnbpkg([
        "buildpack",
        "package",
        multi.to_str().unwrap(),
        "--path",
        bp.to_str().unwrap(),
    ]));
    let shown = platforms(&multi);
    assert_eq!(
        shown,
        vec![
            "windows/amd64:@10.0.20348",
            "windows/arm64:windows@10.0.26100"
        ]
    );
    // Each shown form is accepted by --target and gives the same platform back.
    for (i, p) in shown.iter().enumerate() {
        let one = d.path().join(format!("one-{i}.cnb"));
        ok(cnbpkg([
            "buildpack",
            "package",
            one.to_str().unwrap(),
            "--path",
            bp.to_str().unwrap(),
            "--target",
            p,
        ]));
        assert_eq!(platforms(&one), vec![p.clone()]);
    }
    // Linux keeps pack's rule: a distro needs a name.
    let stderr = fails(
        cnbpkg([
            "buildpack",
            "package",
            d.path().join("l.cnb").to_str().unwrap(),
            "--path",
            bp.to_str().unwrap(),
            "--target",
            "linux/amd64:@22.04",
        ]),
        1,
    );
    assert!(
        stderr.contains("cannot be specified without distro's name"),
        "{stderr}"
    );
}

#[test]
fn an_unknown_flatten_exclude_id_is_an_error() {
    let d = tempfile::tempdir().unwrap();
    for id in ["a", "b"] {
        tree(
            &d.path().join(id),
            &format!("api = \"0.10\"\n[buildpack]\nid = \"acme/{id}\"\nversion = \"1.0.0\"\n"),
        );
    }
    write_file(
        &d.path().join("meta/buildpack.toml"),
        "api = \"0.10\"\n[buildpack]\nid = \"acme/meta\"\nversion = \"1.0.0\"\n[[order]]\n[[order.group]]\nid = \"acme/a\"\nversion = \"1.0.0\"\n[[order.group]]\nid = \"acme/b\"\nversion = \"1.0.0\"\n",
        0o644,
    );
    write_file(
        &d.path().join("package.toml"),
        "[buildpack]\nuri = \"meta\"\n[[dependencies]]\nuri = \"a\"\n[[dependencies]]\nuri = \"b\"\n",
        0o644,
    );
    let args = |exclude: &str| {
        vec![
            "buildpack".to_string(),
            "package".into(),
            "m.cnb".into(),
            "--config".into(),
            "package.toml".into(),
            "--flatten".into(),
            "--flatten-exclude".into(),
            exclude.into(),
        ]
    };
    let stderr = fails(cnbpkg_in(d.path(), args("acme/typo@1.0.0")), 2);
    assert!(
        stderr.ends_with("error: --flatten-exclude 'acme/typo@1.0.0': no such buildpack in this package; its buildpacks are 'acme/a@1.0.0', 'acme/b@1.0.0', 'acme/meta@1.0.0'\n"),
        "{stderr}"
    );
    assert!(!d.path().join("m.cnb").exists());
    ok(cnbpkg_in(d.path(), args("acme/b@1.0.0")));
}
