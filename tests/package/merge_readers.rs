//! `merge` and `split` outputs judged by independent readers: skopeo and umoci read every
//! platform of a merged package and every split package; packages skopeo wrote (no platform in
//! `index.json`, a tag annotation in a layout) merge into what `package` writes.

use std::fs;
use std::path::{Path, PathBuf};

use crate::support::*;

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
    ok(cnbpkg(args));
    out.to_path_buf()
}

/// The `bin/build` of hello-multi that umoci unpacks from the image of `archive` for `arch`.
fn unpacked_build(archive: &Path, work: &Path, arch: &str) -> String {
    fs::create_dir_all(work).unwrap();
    let rootfs = unpack_with_umoci(
        archive,
        work,
        &["--override-os", "linux", "--override-arch", arch],
    );
    fs::read_to_string(rootfs.join("cnb/buildpacks/examples_hello-multi/0.1.0/bin/build")).unwrap()
}

fn skopeo_arch(reference: &str, arch: &str) -> String {
    let out = tool_ok(
        "skopeo",
        &[
            "--override-os",
            "linux",
            "--override-arch",
            arch,
            "inspect",
            reference,
        ],
    );
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert!(v["Labels"]["io.buildpacks.buildpackage.metadata"]
        .as_str()
        .unwrap()
        .contains("examples/hello-multi"));
    v["Architecture"].as_str().unwrap().to_string()
}

#[test]
fn skopeo_and_umoci_read_every_merged_platform_and_every_split_package() {
    require("skopeo", "skopeo");
    require("umoci", "umoci");
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    let amd = package(&dir.join("amd.cnb"), &["linux/amd64"], &[]);
    let arm = package(
        &dir.join("arm.cnb"),
        &["linux/arm64"],
        &["--compression", "none"],
    );
    let merged = dir.join("merged.cnb");
    ok(cnbpkg([
        "merge",
        merged.to_str().unwrap(),
        amd.to_str().unwrap(),
        arm.to_str().unwrap(),
    ]));
    let layout = dir.join("merged-layout");
    ok(cnbpkg([
        "merge",
        layout.to_str().unwrap(),
        amd.to_str().unwrap(),
        arm.to_str().unwrap(),
        "--format",
        "layout",
    ]));
    for arch in ["amd64", "arm64"] {
        let build = unpacked_build(&merged, &dir.join(format!("work-{arch}")), arch);
        assert!(build.contains(&format!("the {arch} build")), "{build}");
        let reference = format!("oci-archive:{}", merged.display());
        assert_eq!(skopeo_arch(&reference, arch), arch);
        let reference = format!("oci:{}", layout.display());
        assert_eq!(skopeo_arch(&reference, arch), arch);
    }

    ok(cnbpkg(["split", merged.to_str().unwrap()]));
    for arch in ["amd64", "arm64"] {
        let single = dir.join(format!("merged-linux-{arch}.cnb"));
        let build = unpacked_build(&single, &dir.join(format!("split-{arch}")), arch);
        assert!(build.contains(&format!("the {arch} build")), "{build}");
        let reference = format!("oci-archive:{}", single.display());
        assert_eq!(skopeo_arch(&reference, arch), arch);
        ok(cnbpkg(["verify", single.to_str().unwrap()]));
    }
    ok(cnbpkg([
        "verify",
        merged.to_str().unwrap(),
        "--expect-platform",
        "linux/amd64,linux/arm64",
    ]));
}

/// skopeo writes `index.json` without a platform (and, into a layout, with a tag): merging
/// what it wrote gives the package `package -t A -t B` writes, byte for byte.
#[test]
fn packages_skopeo_wrote_merge_into_what_package_writes() {
    require("skopeo", "skopeo");
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    let amd = package(&dir.join("amd.cnb"), &["linux/amd64"], &[]);
    let arm = package(&dir.join("arm.cnb"), &["linux/arm64"], &[]);
    let both = package(&dir.join("both.cnb"), &["linux/amd64", "linux/arm64"], &[]);
    let copied = dir.join("copied.tar");
    tool_ok(
        "skopeo",
        &[
            "copy",
            &format!("oci-archive:{}", amd.display()),
            &format!("oci-archive:{}", copied.display()),
        ],
    );
    let tagged = dir.join("tagged");
    tool_ok(
        "skopeo",
        &[
            "copy",
            &format!("oci-archive:{}", arm.display()),
            &format!("oci:{}:latest", tagged.display()),
        ],
    );
    let merged = dir.join("merged.cnb");
    ok(cnbpkg([
        "merge",
        merged.to_str().unwrap(),
        copied.to_str().unwrap(),
        tagged.to_str().unwrap(),
    ]));
    assert!(fs::read(&merged).unwrap() == fs::read(&both).unwrap());
}
