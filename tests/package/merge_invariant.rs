//! The invariant that ties `merge` and `split` to packaging, byte for byte: `split` of
//! `package -t A -t B` gives `package -t A` and `package -t B`, and `merge` of those, in that
//! order, gives `package -t A -t B`; for every layer compression, for `.cnb` files and layout
//! directories, and for targets that differ by distro.

use std::fs;
use std::path::{Path, PathBuf};

use crate::support::*;
use cnbpkg::layout::PackageReader;

/// `buildpack package OUT --path hello-multi` with these targets and flags; the output path.
fn package(out: &Path, targets: &[&str], extra: &[&str]) -> PathBuf {
    let mut args = vec![
        "buildpack".to_string(),
        "package".into(),
        out.display().to_string(),
        "--path".into(),
        sample("hello-multi").display().to_string(),
    ];
    for t in targets {
        args.extend(["--target".to_string(), t.to_string()]);
    }
    args.extend(extra.iter().map(|s| s.to_string()));
    let stdout = ok(cnbpkg(args));
    PathBuf::from(stdout.lines().next().unwrap())
}

/// Every file of a package with its bytes: the file itself, or a layout directory's files by
/// relative path.
fn contents(path: &Path) -> Vec<(String, Vec<u8>)> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<(String, Vec<u8>)>) {
        let mut names: Vec<_> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        names.sort();
        for p in names {
            if p.is_dir() {
                walk(root, &p, out);
            } else {
                let rel = p.strip_prefix(root).unwrap().display().to_string();
                out.push((rel, fs::read(&p).unwrap()));
            }
        }
    }
    let mut out = Vec::new();
    if path.is_dir() {
        walk(path, path, &mut out);
    } else {
        out.push((String::new(), fs::read(path).unwrap()));
    }
    out
}

fn assert_same(got: &Path, want: &Path) {
    assert!(
        contents(got) == contents(want),
        "{} differs from {}",
        got.display(),
        want.display()
    );
}

/// The output path `--split` gives `base` for a platform suffix.
fn with_suffix(base: &Path, suffix: &str) -> PathBuf {
    let name = base.file_name().unwrap().to_string_lossy().into_owned();
    let name = match name.rfind('.') {
        Some(i) => format!("{}{suffix}{}", &name[..i], &name[i..]),
        None => format!("{name}{suffix}"),
    };
    base.with_file_name(name)
}

#[test]
fn merge_and_split_invert_packaging_for_every_compression_and_format() {
    let d = tempfile::tempdir().unwrap();
    for format in ["file", "layout"] {
        for compression in ["gzip", "zstd", "none"] {
            let dir = d.path().join(format!("{format}-{compression}"));
            fs::create_dir(&dir).unwrap();
            let flags = ["--format", format, "--compression", compression];
            let name = |n: &str| match format {
                "file" => dir.join(format!("{n}.cnb")),
                _ => dir.join(n),
            };
            let both = package(&name("both"), &["linux/amd64", "linux/arm64"], &flags);
            let amd = package(&name("amd"), &["linux/amd64"], &flags);
            let arm = package(&name("arm"), &["linux/arm64"], &flags);

            let merged = name("merged");
            let stdout = ok(cnbpkg([
                "merge",
                merged.to_str().unwrap(),
                amd.to_str().unwrap(),
                arm.to_str().unwrap(),
                "--format",
                format,
            ]));
            assert_eq!(stdout.trim(), merged.display().to_string());
            assert_same(&merged, &both);

            let parts = dir.join("parts");
            fs::create_dir(&parts).unwrap();
            let stdout = ok(cnbpkg([
                "split",
                both.to_str().unwrap(),
                "--output-dir",
                parts.to_str().unwrap(),
            ]));
            let base = parts.join(both.file_name().unwrap());
            let (a, b) = (
                with_suffix(&base, "-linux-amd64"),
                with_suffix(&base, "-linux-arm64"),
            );
            assert_eq!(stdout, format!("{}\n{}\n", a.display(), b.display()));
            assert_same(&a, &amd);
            assert_same(&b, &arm);
            assert_eq!(list(&parts).len(), 2, "nothing else in {}", parts.display());
        }
    }
}

/// Targets that differ only by distro and give one image share an index entry that lists
/// their distros: merging their single-target packages gives that entry back, and `split`
/// gives one package per distro, each the one `package -t` writes for it.
#[test]
fn distros_are_merged_into_one_entry_and_split_into_one_package_each() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    let all = package(
        &dir.join("all.cnb"),
        &["linux/amd64:ubuntu@22.04;ubuntu@24.04", "linux/arm64"],
        &[],
    );
    let u22 = package(&dir.join("u22.cnb"), &["linux/amd64:ubuntu@22.04"], &[]);
    let u24 = package(&dir.join("u24.cnb"), &["linux/amd64:ubuntu@24.04"], &[]);
    let arm = package(&dir.join("arm.cnb"), &["linux/arm64"], &[]);
    let merged = dir.join("merged.cnb");
    ok(cnbpkg([
        "merge",
        merged.to_str().unwrap(),
        u22.to_str().unwrap(),
        u24.to_str().unwrap(),
        arm.to_str().unwrap(),
    ]));
    assert_same(&merged, &all);

    let parts = dir.join("parts");
    fs::create_dir(&parts).unwrap();
    ok(cnbpkg([
        "split",
        all.to_str().unwrap(),
        "--output-dir",
        parts.to_str().unwrap(),
    ]));
    assert_eq!(
        list(&parts),
        [
            "all-linux-amd64-ubuntu@22.04.cnb",
            "all-linux-amd64-ubuntu@24.04.cnb",
            "all-linux-arm64.cnb"
        ]
    );
    assert_same(&parts.join("all-linux-amd64-ubuntu@22.04.cnb"), &u22);
    assert_same(&parts.join("all-linux-amd64-ubuntu@24.04.cnb"), &u24);
    assert_same(&parts.join("all-linux-arm64.cnb"), &arm);
}

/// Entries follow the order the packages are given in; a multi-platform package merges like
/// its images; `--platform` splits off only what it picks; the JSON reports give the digests.
#[test]
fn order_multi_platform_inputs_platform_filter_and_json() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    let amd = package(&dir.join("amd.cnb"), &["linux/amd64"], &[]);
    let arm = package(&dir.join("arm.cnb"), &["linux/arm64"], &[]);
    let both = package(&dir.join("both.cnb"), &["linux/amd64", "linux/arm64"], &[]);
    let reversed = package(&dir.join("rev.cnb"), &["linux/arm64", "linux/amd64"], &[]);

    let merged = dir.join("merged.cnb");
    let json = ok(cnbpkg([
        "merge",
        merged.to_str().unwrap(),
        arm.to_str().unwrap(),
        amd.to_str().unwrap(),
        "--json",
    ]));
    assert_same(&merged, &reversed);
    let report: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(report["buildpack"], "examples/hello-multi@0.1.0");
    let targets: Vec<&str> = report["output"]["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["target"].as_str().unwrap())
        .collect();
    assert_eq!(targets, ["linux/arm64", "linux/amd64"]);
    let root = PackageReader::open(&merged).unwrap().index().manifests[0].digest;
    assert_eq!(report["output"]["digest"], root.to_string());

    // A multi-platform package and a single-platform one.
    let again = dir.join("again.cnb");
    let single_arm = dir.join("arm-only.cnb");
    ok(cnbpkg([
        "split",
        both.to_str().unwrap(),
        "--platform",
        "linux/arm64",
    ]));
    fs::rename(dir.join("both-linux-arm64.cnb"), &single_arm).unwrap();
    assert!(!dir.join("both-linux-amd64.cnb").exists());
    assert_same(&single_arm, &arm);
    ok(cnbpkg([
        "merge",
        again.to_str().unwrap(),
        reversed.to_str().unwrap(),
    ]));
    assert_same(&again, &reversed);

    let json = ok(cnbpkg(["split", both.to_str().unwrap(), "--json"]));
    let report: serde_json::Value = serde_json::from_str(&json).unwrap();
    let outputs = report["outputs"].as_array().unwrap();
    assert_eq!(outputs.len(), 2);
    for (o, single) in outputs.iter().zip([&amd, &arm]) {
        let want = PackageReader::open(single).unwrap().index().manifests[0].digest;
        assert_eq!(o["digest"], want.to_string(), "the very manifest");
        assert_eq!(o["mediaType"], cnbpkg::oci::MEDIA_TYPE_MANIFEST);
    }
}

/// A package for a platform without an architecture (pack's default `linux`) splits into the
/// same bytes named `-linux`, as `--split` names it; it cannot be merged with another image,
/// since readers choose among images by architecture.
#[test]
fn a_platform_without_an_architecture_splits_into_itself_and_merges_alone() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    let bp = dir.join("bp");
    minimal_buildpack(&bp, "ex/plain", "1.0.0", "");
    let run = |out: &str, extra: &[&str]| {
        let mut args = vec!["buildpack", "package", out, "--path", "bp", "-q"];
        args.extend_from_slice(extra);
        ok(cnbpkg_in(dir, args));
    };
    run("plain.cnb", &[]);
    run("amd.cnb", &["--target", "linux/amd64"]);
    ok(cnbpkg_in(dir, ["split", "plain.cnb"]));
    assert_same(&dir.join("plain-linux.cnb"), &dir.join("plain.cnb"));
    ok(cnbpkg_in(dir, ["merge", "alone.cnb", "plain.cnb"]));
    assert_same(&dir.join("alone.cnb"), &dir.join("plain.cnb"));
    let e = fails(
        cnbpkg_in(dir, ["merge", "both.cnb", "plain.cnb", "amd.cnb"]),
        1,
    );
    assert!(
        e.contains("plain.cnb") && e.contains("no architecture"),
        "{e}"
    );
    assert!(!dir.join("both.cnb").exists());
}
