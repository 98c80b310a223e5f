//! Output and work whose size an input controls are bounded: verify's defect listing, a
//! layout directory's file count.

use std::fs;
use std::path::{Path, PathBuf};

use crate::support::*;
use sha2::{Digest as _, Sha256};

/// A single-platform layout package of a sound buildpack.
fn layout_package(work: &Path, name: &str) -> PathBuf {
    let bp = work.join(format!("{name}-bp"));
    minimal_buildpack(
        &bp,
        "acme/bounds",
        "1.0.0",
        "[[targets]]\nos = \"linux\"\narch = \"amd64\"\n",
    );
    let out = work.join(name);
    ok(cnbpkg([
        "buildpack",
        "package",
        out.to_str().unwrap(),
        "--path",
        bp.to_str().unwrap(),
        "--format",
        "layout",
        "-q",
    ]));
    ok(cnbpkg(["verify", out.to_str().unwrap()]));
    out
}

/// Add `n` blobs no index or manifest refers to: one defect each.
fn add_unreferenced_blobs(layout: &Path, n: usize) {
    for i in 0..n {
        let bytes = format!("stray {i}");
        let hex = hex::encode(Sha256::digest(bytes.as_bytes()));
        fs::write(layout.join("blobs/sha256").join(hex), bytes).unwrap();
    }
}

#[test]
fn verify_lists_the_first_defects_and_counts_the_rest() {
    let tmp = tempfile::tempdir().unwrap();
    let pkg = layout_package(tmp.path(), "many");
    add_unreferenced_blobs(&pkg, 450);

    let o = cnbpkg(["verify".as_ref(), pkg.as_os_str()]);
    let stdout = String::from_utf8_lossy(&o.stdout).into_owned();
    let stderr = fails(o, 1);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 201, "{stdout}");
    assert!(
        lines[..200].iter().all(|l| l.contains("is not referenced")),
        "{stdout}"
    );
    assert!(lines[200].ends_with("… and 250 more defects"), "{stdout}");
    assert!(stderr.contains("450 defects found"), "{stderr}");

    let o = cnbpkg(["verify".as_ref(), "--json".as_ref(), pkg.as_os_str()]);
    let report: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    fails(o, 1);
    assert_eq!(report["defects"].as_array().unwrap().len(), 200);
    assert_eq!(report["defectCount"], 450);
}

#[test]
fn a_sound_package_has_no_defect_count_in_its_json() {
    let tmp = tempfile::tempdir().unwrap();
    let pkg = layout_package(tmp.path(), "sound");
    let o = cnbpkg(["verify".as_ref(), "--json".as_ref(), pkg.as_os_str()]);
    let report: serde_json::Value = serde_json::from_slice(&ok(o).into_bytes()).unwrap();
    assert!(report.get("defectCount").is_none(), "{report}");
}

#[test]
fn a_layout_directory_with_more_files_than_an_archive_may_hold_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let pkg = layout_package(tmp.path(), "crowded");
    let blobs = pkg.join("blobs/sha256");
    // Empty files with names that are not digests: cheap to make, one entry each.
    for i in 0..100_001 {
        fs::File::create(blobs.join(format!("x{i}"))).unwrap();
    }
    let o = cnbpkg(["verify".as_ref(), pkg.as_os_str()]);
    let stdout = String::from_utf8_lossy(&o.stdout).into_owned();
    fails(o, 1);
    assert!(stdout.contains("more than 100000 entries"), "{stdout}");
    assert!(!stdout.contains("oci-layout: missing"), "{stdout}");
}

#[test]
fn inspect_lists_the_first_labels_and_counts_the_rest() {
    let tmp = tempfile::tempdir().unwrap();
    let bp = tmp.path().join("bp");
    minimal_buildpack(&bp, "acme/labels", "1.0.0", "");
    let out = tmp.path().join("labels.cnb");
    let mut args = vec![
        "buildpack".to_string(),
        "package".into(),
        out.to_str().unwrap().into(),
        "--path".into(),
        bp.to_str().unwrap().into(),
        "-q".into(),
    ];
    for i in 0..300 {
        args.push("--label".into());
        args.push(format!("k{i:03}=v"));
    }
    ok(cnbpkg(&args));
    let text = ok(cnbpkg(["inspect".as_ref(), out.as_os_str()]));
    let labels = text.lines().filter(|l| l.starts_with("  label ")).count();
    assert_eq!(labels, 200, "{text}");
    // 300 given, and the buildpack's own layers and metadata labels.
    let more = text
        .lines()
        .find_map(|l| l.strip_prefix("  … and "))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(more.ends_with(" more labels"), "{text}");
    let n: usize = more.trim_end_matches(" more labels").parse().unwrap();
    assert!(n >= 100, "{text}");

    let json: serde_json::Value =
        serde_json::from_str(&ok(cnbpkg(["inspect", "--json", out.to_str().unwrap()]))).unwrap();
    let all = json["images"][0]["labels"].as_object().unwrap().len();
    assert_eq!(all, 200 + n, "{json}");
}
