//! Packaging end to end, judged by independent readers: skopeo and umoci read every output;
//! outputs are reproducible and store shared layers once.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use crate::support::*;
use cnbpkg::layout::PackageReader;

fn package(out: &Path, args: &[&str]) -> String {
    let mut all = vec!["buildpack", "package", out.to_str().unwrap()];
    all.extend_from_slice(args);
    ok(cnbpkg(all))
}

/// `skopeo inspect` of one platform of an oci-archive, as JSON.
fn skopeo_inspect(archive: &Path, os: &str, arch: &str) -> serde_json::Value {
    let target = format!("oci-archive:{}", archive.display());
    let out = tool_ok(
        "skopeo",
        &[
            "--override-os",
            os,
            "--override-arch",
            arch,
            "inspect",
            &target,
        ],
    );
    serde_json::from_str(&out).unwrap()
}

#[test]
fn multi_platform_package_is_read_by_skopeo_and_umoci() {
    let d = tempfile::tempdir().unwrap();
    let out = d.path().join("hello.cnb");
    let stdout = package(&out, &["--path", sample("hello-multi").to_str().unwrap()]);
    assert_eq!(stdout.trim(), out.display().to_string());

    for arch in ["amd64", "arm64"] {
        let info = skopeo_inspect(&out, "linux", arch);
        assert_eq!(info["Architecture"], arch);
        assert_eq!(info["Os"], "linux");
        let labels = &info["Labels"];
        assert!(labels["io.buildpacks.buildpackage.metadata"]
            .as_str()
            .unwrap()
            .contains("examples/hello-multi"));
    }

    // Copy every platform out with skopeo, then unpack each with umoci.
    let oci_dir = d.path().join("copied");
    tool_ok(
        "skopeo",
        &[
            "copy",
            "--all",
            &format!("oci-archive:{}", out.display()),
            &format!("oci:{}:all", oci_dir.display()),
        ],
    );
    for arch in ["amd64", "arm64"] {
        let tagged = format!("oci:{}:{arch}", oci_dir.display());
        tool_ok(
            "skopeo",
            &[
                "--override-os",
                "linux",
                "--override-arch",
                arch,
                "copy",
                &format!("oci-archive:{}", out.display()),
                &tagged,
            ],
        );
        let bundle = d.path().join(format!("bundle-{arch}"));
        tool_ok(
            "umoci",
            &[
                "unpack",
                "--rootless",
                "--image",
                &format!("{}:{arch}", oci_dir.display()),
                bundle.to_str().unwrap(),
            ],
        );
        let bp = bundle.join("rootfs/cnb/buildpacks/examples_hello-multi/0.1.0");
        let build = fs::read_to_string(bp.join("bin/build")).unwrap();
        assert!(build.contains(&format!("the {arch} build")), "{build}");
        assert_eq!(
            fs::metadata(bp.join("bin/build"))
                .unwrap()
                .permissions()
                .mode()
                & 0o777,
            0o755
        );
        // buildpack.toml comes from the buildpack root into every platform's layer.
        assert!(fs::read_to_string(bp.join("buildpack.toml"))
            .unwrap()
            .contains("examples/hello-multi"));
    }
    // The source tree was not touched (pack copies buildpack.toml into platform folders).
    assert!(!sample("hello-multi")
        .join("linux/amd64/buildpack.toml")
        .exists());
}

#[test]
fn single_target_is_one_manifest_like_pack_writes() {
    let d = tempfile::tempdir().unwrap();
    let out = d.path().join("one.cnb");
    package(
        &out,
        &[
            "--path",
            sample("hello-multi").to_str().unwrap(),
            "--target",
            "linux/arm64",
        ],
    );
    let r = PackageReader::open(&out).unwrap();
    assert_eq!(r.index().manifests.len(), 1);
    assert_eq!(
        r.index().manifests[0].media_type,
        cnbpkg::oci::MEDIA_TYPE_MANIFEST
    );
    let info = skopeo_inspect(&out, "linux", "arm64");
    assert_eq!(info["Architecture"], "arm64");
    let images = r.images().unwrap();
    assert_eq!(images.len(), 1);
    assert_eq!(images[0].config.architecture, "arm64");
}

#[test]
fn four_targets_sharing_a_root_store_one_layer() {
    let d = tempfile::tempdir().unwrap();
    let out = d.path().join("bash.cnb");
    package(&out, &["--path", sample("hello-bash").to_str().unwrap()]);
    let r = PackageReader::open(&out).unwrap();
    let images = r.images().unwrap();
    assert_eq!(images.len(), 4);
    let layers: std::collections::BTreeSet<_> = images
        .iter()
        .flat_map(|i| i.manifest.layers.iter().map(|l| l.digest))
        .collect();
    assert_eq!(layers.len(), 1, "one layer blob shared by all targets");
    // 1 layer + 4 configs + 4 manifests + 1 index.
    let blobs = r
        .files()
        .unwrap()
        .keys()
        .filter(|k| k.starts_with("blobs/sha256/"))
        .count();
    assert_eq!(blobs, 10);
    let variants: Vec<_> = images.iter().map(|i| i.platform().variant).collect();
    assert!(variants.contains(&"v7".to_string()));
    let info = skopeo_inspect(&out, "linux", "ppc64le");
    assert_eq!(info["Architecture"], "ppc64le");
}

/// Copy `src` into `dst` in reverse name order (a different creation order), with odd mtimes.
fn scrambled_copy(src: &Path, dst: &Path, mtime: i64) {
    fs::create_dir_all(dst).unwrap();
    let mut names: Vec<_> = fs::read_dir(src)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    names.sort();
    names.reverse();
    for name in names {
        let s = src.join(&name);
        let t = dst.join(&name);
        let meta = fs::symlink_metadata(&s).unwrap();
        if meta.is_dir() {
            scrambled_copy(&s, &t, mtime);
        } else {
            fs::copy(&s, &t).unwrap();
            // Same execute bits, different other bits (what a different umask gives).
            let exec = meta.permissions().mode() & 0o111;
            fs::set_permissions(
                &t,
                fs::Permissions::from_mode(if exec != 0 { 0o775 } else { 0o600 }),
            )
            .unwrap();
        }
        let ft = filetime_from(mtime);
        set_mtime(&t, ft);
    }
}

fn filetime_from(secs: i64) -> libc::timespec {
    libc::timespec {
        tv_sec: secs as libc::time_t,
        tv_nsec: 0,
    }
}

fn set_mtime(p: &Path, t: libc::timespec) {
    let c = std::ffi::CString::new(p.as_os_str().as_encoded_bytes()).unwrap();
    let times = [t, t];
    let rc = unsafe {
        libc::utimensat(
            libc::AT_FDCWD,
            c.as_ptr(),
            times.as_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
        )
    };
    assert_eq!(rc, 0);
}

#[test]
fn output_is_reproducible_across_copies_mtimes_modes_and_threads() {
    let d = tempfile::tempdir().unwrap();
    let a = d.path().join("a");
    let b = d.path().join("b");
    copy_tree(&sample("hello-multi"), &a);
    scrambled_copy(&sample("hello-multi"), &b, 1_000_000_000);
    // A big compressible file so compression runs over several blocks on several threads.
    let big: String = (0..200_000)
        .map(|i| format!("line {i} of a large generated file\n"))
        .collect();
    for root in [&a, &b] {
        for arch in ["amd64", "arm64"] {
            fs::write(root.join(format!("linux/{arch}/data.txt")), &big).unwrap();
        }
    }
    let outs: Vec<_> = [("a", &a, "1"), ("b", &b, "2"), ("c", &a, "3")]
        .iter()
        .map(|(name, root, jobs)| {
            let out = d.path().join(format!("{name}.cnb"));
            package(&out, &["--path", root.to_str().unwrap(), "--jobs", jobs]);
            fs::read(&out).unwrap()
        })
        .collect();
    assert!(
        outs[0] == outs[1],
        "different source copies give different bytes"
    );
    assert!(outs[0] == outs[2], "thread count changes the bytes");
    for compression in ["zstd", "none"] {
        let x = d.path().join(format!("x-{compression}.cnb"));
        let y = d.path().join(format!("y-{compression}.cnb"));
        package(
            &x,
            &[
                "--path",
                a.to_str().unwrap(),
                "--compression",
                compression,
                "--jobs",
                "1",
            ],
        );
        package(
            &y,
            &[
                "--path",
                b.to_str().unwrap(),
                "--compression",
                compression,
                "--jobs",
                "2",
            ],
        );
        assert!(
            fs::read(&x).unwrap() == fs::read(&y).unwrap(),
            "{compression} output not reproducible"
        );
    }
}

#[test]
fn layout_format_and_split_outputs() {
    let d = tempfile::tempdir().unwrap();
    let layout = d.path().join("layout");
    package(
        &layout,
        &[
            "--path",
            sample("hello-bash").to_str().unwrap(),
            "--format",
            "layout",
        ],
    );
    assert!(layout.join("oci-layout").is_file());
    tool_ok(
        "skopeo",
        &[
            "--override-arch",
            "arm64",
            "inspect",
            &format!("oci:{}", layout.display()),
        ],
    );

    let split = d.path().join("bash.cnb");
    let stdout = package(
        &split,
        &["--path", sample("hello-bash").to_str().unwrap(), "--split"],
    );
    let mut names = list(d.path());
    names.retain(|n| n.ends_with(".cnb"));
    assert_eq!(
        names,
        [
            "bash-linux-amd64.cnb",
            "bash-linux-arm-v7.cnb",
            "bash-linux-arm64.cnb",
            "bash-linux-ppc64le.cnb"
        ]
    );
    assert_eq!(stdout.lines().count(), 4);
    let info = skopeo_inspect(&d.path().join("bash-linux-arm-v7.cnb"), "linux", "arm");
    assert_eq!(info["Architecture"], "arm");
}

#[test]
fn labels_are_added_and_buildpack_labels_win() {
    let d = tempfile::tempdir().unwrap();
    let out = d.path().join("l.cnb");
    package(
        &out,
        &[
            "--path",
            sample("hello-bash").to_str().unwrap(),
            "-t",
            "linux/amd64",
            "--label",
            "org.example.team=buildpacks",
            "--label",
            "io.buildpacks.buildpack.layers=overridden",
        ],
    );
    let info = skopeo_inspect(&out, "linux", "amd64");
    assert_eq!(info["Labels"]["org.example.team"], "buildpacks");
    assert!(info["Labels"]["io.buildpacks.buildpack.layers"]
        .as_str()
        .unwrap()
        .starts_with("{\"examples/hello-bash\""));
}

#[test]
fn json_reports_for_scripts() {
    let d = tempfile::tempdir().unwrap();
    let out = d.path().join("j.cnb");
    let report = ok(cnbpkg([
        "buildpack",
        "package",
        out.to_str().unwrap(),
        "--path",
        sample("hello-bash").to_str().unwrap(),
        "--json",
    ]));
    let report: serde_json::Value = serde_json::from_str(&report).unwrap();
    let output = &report["outputs"][0];
    assert_eq!(output["path"], out.to_str().unwrap());
    assert_eq!(output["mediaType"], cnbpkg::oci::MEDIA_TYPE_INDEX);
    assert_eq!(output["images"].as_array().unwrap().len(), 4);
    let layer = &output["images"][0]["layers"][0];
    for key in ["digest", "diffId", "size", "uncompressedSize"] {
        assert!(!layer[key].is_null(), "{key} in {layer}");
    }

    let inspect = ok(cnbpkg(["inspect", out.to_str().unwrap(), "--json"]));
    let inspect: serde_json::Value = serde_json::from_str(&inspect).unwrap();
    assert_eq!(inspect["digest"], output["digest"]);
    assert_eq!(inspect["buildpack"], "examples/hello-bash@1.0.0");
    assert_eq!(inspect["images"].as_array().unwrap().len(), 4);
    let shared = inspect["sharedBlobs"].as_array().unwrap();
    assert_eq!(
        shared.len(),
        1,
        "the one layer is shared by the four images"
    );
    assert_eq!(shared[0]["usedBy"].as_array().unwrap().len(), 4);
    let bp = &inspect["images"][0]["buildpacks"][0];
    assert_eq!(bp["id"], "examples/hello-bash");
    assert!(bp["layerDiffID"].as_str().unwrap().starts_with("sha256:"));

    let verify = ok(cnbpkg(["verify", out.to_str().unwrap(), "--json"]));
    let verify: serde_json::Value = serde_json::from_str(&verify).unwrap();
    assert_eq!(verify["defects"], serde_json::json!([]));
    assert_eq!(verify["images"], 4);
}
