//! What `merge` and `split` refuse, each with exit 1, a message naming the inputs concerned
//! and nothing written: a platform given twice, packages of different buildpacks (id or
//! version), a package that fails verification, an output that is an input, a platform the
//! package does not hold.

use std::fs;
use std::path::{Path, PathBuf};

use crate::support::*;

fn package(bp: &Path, out: &Path, target: &str, extra: &[&str]) -> PathBuf {
    let mut args = vec![
        "buildpack".to_string(),
        "package".into(),
        out.display().to_string(),
        "--path".into(),
        bp.display().to_string(),
        "--target".into(),
        target.into(),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    ok(cnbpkg(args));
    out.to_path_buf()
}

/// `merge OUT INPUTS...` fails with exit 1, writes nothing into `dir`; its error line.
fn merge_fails(dir: &Path, inputs: &[&Path]) -> String {
    let before = list(dir);
    let out = dir.join("merged.cnb");
    let mut args = vec!["merge".to_string(), out.display().to_string()];
    args.extend(inputs.iter().map(|p| p.display().to_string()));
    let stderr = fails(cnbpkg(args), 1);
    assert_eq!(list(dir), before, "nothing written: {stderr}");
    stderr
}

#[test]
fn merge_refuses_platform_twice_other_buildpacks_and_damaged_packages() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    let src = dir.join("src");
    let multi = sample("hello-multi");
    let amd = package(&multi, &dir.join("amd.cnb"), "linux/amd64", &[]);
    let arm = package(&multi, &dir.join("arm.cnb"), "linux/arm64", &[]);
    let arm_again = dir.join("arm-again.cnb");
    fs::copy(&arm, &arm_again).unwrap();

    // A platform given twice: by two packages, or by one given twice.
    let e = merge_fails(dir, &[&amd, &arm, &arm_again]);
    assert!(
        e.contains("platform 'linux/arm64' is given twice")
            && e.contains(&arm.display().to_string())
            && e.contains(&arm_again.display().to_string()),
        "{e}"
    );
    let e = merge_fails(dir, &[&amd, &amd]);
    assert!(e.contains("'linux/amd64' is given twice"), "{e}");

    // Another buildpack; another version of this one.
    minimal_buildpack(&src.join("other"), "examples/other", "0.1.0", "");
    let other = package(
        &src.join("other"),
        &dir.join("other.cnb"),
        "linux/arm64",
        &[],
    );
    let e = merge_fails(dir, &[&amd, &other]);
    assert!(
        e.contains("examples/hello-multi@0.1.0")
            && e.contains("examples/other@0.1.0")
            && e.contains(&amd.display().to_string())
            && e.contains(&other.display().to_string())
            && e.contains("different buildpacks"),
        "{e}"
    );
    let newer_src = src.join("newer");
    copy_tree(&multi, &newer_src);
    let toml = newer_src.join("buildpack.toml");
    let text = fs::read_to_string(&toml).unwrap();
    fs::write(
        &toml,
        text.replace("version = \"0.1.0\"", "version = \"0.2.0\""),
    )
    .unwrap();
    let newer = package(&newer_src, &dir.join("newer.cnb"), "linux/arm64", &[]);
    let e = merge_fails(dir, &[&amd, &newer]);
    assert!(
        e.contains("examples/hello-multi@0.2.0")
            && e.contains(&newer.display().to_string())
            && e.contains(&amd.display().to_string())
            && e.contains("different versions"),
        "{e}"
    );

    // A damaged package: one byte of a layer changed.
    let damaged = package(
        &multi,
        &dir.join("damaged"),
        "linux/arm64",
        &["--format", "layout"],
    );
    let blobs = damaged.join("blobs/sha256");
    let largest = fs::read_dir(&blobs)
        .unwrap()
        .map(|e| e.unwrap().path())
        .max_by_key(|p| fs::metadata(p).unwrap().len())
        .unwrap();
    let mut bytes = fs::read(&largest).unwrap();
    let at = bytes.len() / 2;
    bytes[at] ^= 0xff;
    fs::write(&largest, bytes).unwrap();
    let e = merge_fails(dir, &[&amd, &damaged]);
    assert!(
        e.contains(&damaged.display().to_string()) && e.contains("fails verification"),
        "{e}"
    );

    // The output may not be one of the inputs.
    let e = fails(
        cnbpkg([
            "merge",
            amd.to_str().unwrap(),
            amd.to_str().unwrap(),
            arm.to_str().unwrap(),
        ]),
        1,
    );
    assert!(e.contains("is also an input"), "{e}");
}

#[test]
fn split_refuses_damaged_packages_and_platforms_it_does_not_hold() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    let multi = sample("hello-multi");
    let both = dir.join("both");
    ok(cnbpkg([
        "buildpack",
        "package",
        both.to_str().unwrap(),
        "--path",
        multi.to_str().unwrap(),
        "--target",
        "linux/amd64,linux/arm64",
        "--format",
        "layout",
    ]));
    let before = list(dir);
    let e = fails(
        cnbpkg(["split", both.to_str().unwrap(), "--platform", "linux/s390x"]),
        1,
    );
    assert!(
        e.contains("linux/s390x") && e.contains("linux/arm64"),
        "{e}"
    );
    assert_eq!(list(dir), before);

    fs::write(both.join("oci-layout"), "{}").unwrap();
    let e = fails(cnbpkg(["split", both.to_str().unwrap()]), 1);
    assert!(e.contains("fails verification"), "{e}");
    assert_eq!(list(dir), before);
}

/// The library calls: a cancelled merge or split returns `Interrupted` and writes nothing; a
/// merge reports through the events sink and returns the digests it wrote.
#[test]
fn library_merge_and_split_report_and_stop_when_cancelled() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    let multi = sample("hello-multi");
    let amd = package(&multi, &dir.join("amd.cnb"), "linux/amd64", &[]);
    let arm = package(&multi, &dir.join("arm.cnb"), "linux/arm64", &[]);
    let before = list(dir);

    let mut opts = cnbpkg::merge::MergeOptions::new(dir.join("merged"), vec![amd.clone(), arm]);
    opts.cancel.cancel();
    let e = cnbpkg::merge::merge(&opts, &cnbpkg::events::NoEvents).unwrap_err();
    assert!(matches!(e, cnbpkg::Error::Interrupted), "{e}");
    let split = cnbpkg::split::SplitOptions::new(&amd);
    split.cancel.cancel();
    let e = cnbpkg::split::split(&split, &cnbpkg::events::NoEvents).unwrap_err();
    assert!(matches!(e, cnbpkg::Error::Interrupted), "{e}");
    assert_eq!(list(dir), before);

    opts.cancel = cnbpkg::cancel::Cancel::new();
    let verbs = std::sync::Mutex::new(Vec::new());
    let sink = |e: &cnbpkg::events::Event<'_>| {
        if let cnbpkg::events::Event::Status { verb, .. } = e {
            verbs.lock().unwrap().push(verb.to_string());
        }
    };
    let report = cnbpkg::merge::merge(&opts, &sink).unwrap();
    assert_eq!(report.output.path, dir.join("merged.cnb"), ".cnb added");
    assert_eq!(report.output.images.len(), 2);
    assert_eq!(
        verbs.into_inner().unwrap(),
        ["Verified", "Verified", "Merging", "Finished"]
    );
}

#[test]
fn more_packages_than_platforms_a_package_serves_are_refused_before_any_is_read() {
    let tmp = tempfile::tempdir().unwrap();
    let mut args = vec![
        "merge".to_string(),
        tmp.path().join("out.cnb").display().to_string(),
    ];
    // Paths that do not exist: the count is refused before any of them is opened.
    args.extend((0..1025).map(|i| tmp.path().join(format!("p{i}.cnb")).display().to_string()));
    let err = fails(cnbpkg_in(tmp.path(), &args), 2);
    assert!(err.contains("1025 packages given"), "{err}");
    assert!(!tmp.path().join("out.cnb").exists());
}
