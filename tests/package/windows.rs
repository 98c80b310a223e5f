//! Windows targets: the Windows layer format, the base layer first, `os.version`, mixed
//! Linux/Windows packages, and Windows packages as composite dependencies.

use std::fs;
use std::io::Read;
use std::path::Path;

use crate::support::*;
use cnbpkg::layout::PackageReader;

const BASE_DIFF_ID: &str =
    "sha256:067833dadeca9180bb71a211248cbc0f6ada05499bfdef07dfb04e2eb96e7c82";
const VERSION: &str = "10.0.20348.1970";

/// RFC 0128's headline example tree.
fn rfc_tree(root: &Path) {
    let toml = format!(
        "api = \"0.12\"\n\n[buildpack]\nid = \"examples/my-multiarch-buildpack\"\nversion = \"0.0.1\"\n\n\
         [[targets]]\nos = \"linux\"\narch = \"amd64\"\n\n[[targets]]\nos = \"linux\"\narch = \"arm64\"\n\n\
         [[targets]]\nos = \"windows\"\narch = \"amd64\"\n\n[[targets.distros]]\nname = \"windows\"\nversion = \"{VERSION}\"\n\n\
         [[stacks]]\nid = \"*\"\n"
    );
    write_file(&root.join("buildpack.toml"), &toml, 0o644);
    for arch in ["amd64", "arm64"] {
        write_file(
            &root.join(format!("linux/{arch}/bin/build")),
            "#!/bin/sh\necho build\n",
            0o755,
        );
        write_file(
            &root.join(format!("linux/{arch}/bin/detect")),
            "#!/bin/sh\n",
            0o755,
        );
    }
    let win = root.join(format!("windows/amd64/windows@{VERSION}/bin"));
    write_file(&win.join("build.bat"), "@echo off\r\necho build\r\n", 0o644);
    write_file(&win.join("detect.bat"), "@echo off\r\n", 0o644);
}

/// Entries of a layer: (name, PAX records).
fn layer_entries(
    r: &PackageReader,
    layer: &cnbpkg::oci::Descriptor,
) -> Vec<(String, Vec<(String, String)>)> {
    let enc = cnbpkg::oci::layer_compression_of(&layer.media_type).unwrap();
    let mut archive = tar::Archive::new(cnbpkg::internals::decoder(
        enc,
        r.open_blob(&layer.digest).unwrap(),
    ));
    let mut out = Vec::new();
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let name = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let pax = match entry.pax_extensions().unwrap() {
            Some(exts) => exts
                .map(|e| {
                    let e = e.unwrap();
                    (e.key().unwrap().to_string(), e.value().unwrap().to_string())
                })
                .collect(),
            None => Vec::new(),
        };
        let mut sink = Vec::new();
        entry.read_to_end(&mut sink).unwrap();
        out.push((name, pax));
    }
    out
}

#[test]
fn rfc_example_with_linux_and_windows_images() {
    let d = tempfile::tempdir().unwrap();
    let bp = d.path().join("my-multiarch-buildpack");
    rfc_tree(&bp);
    let out = d.path().join("multi.cnb");
    ok(cnbpkg([
        "buildpack",
        "package",
        out.to_str().unwrap(),
        "--path",
        bp.to_str().unwrap(),
    ]));

    let r = PackageReader::open(&out).unwrap();
    let images = r.images().unwrap();
    assert_eq!(images.len(), 3);
    let win = images.iter().find(|i| i.config.os == "windows").unwrap();
    assert_eq!(win.config.os_version, VERSION);
    assert_eq!(
        win.descriptor.platform.as_ref().unwrap().os_version,
        VERSION
    );
    assert_eq!(win.config.rootfs.diff_ids[0].to_string(), BASE_DIFF_ID);
    assert_eq!(win.config.rootfs.diff_ids.len(), 2);

    // skopeo picks the Windows image for a Windows platform.
    let info = tool_ok(
        "skopeo",
        &[
            "--override-os",
            "windows",
            "--override-arch",
            "amd64",
            "inspect",
            &format!("oci-archive:{}", out.display()),
        ],
    );
    let info: serde_json::Value = serde_json::from_str(&info).unwrap();
    assert_eq!(info["Os"], "windows");
    assert_eq!(info["Layers"].as_array().unwrap().len(), 2);
    let raw = tool_ok(
        "skopeo",
        &[
            "--override-os",
            "windows",
            "--override-arch",
            "amd64",
            "inspect",
            "--config",
            "--raw",
            &format!("oci-archive:{}", out.display()),
        ],
    );
    assert!(
        raw.contains(&format!("\"os.version\":\"{VERSION}\"")),
        "{raw}"
    );

    // The buildpack layer is in the Windows format: Files/ paths with a security descriptor.
    let entries = layer_entries(&r, &win.manifest.layers[1]);
    let names: Vec<&str> = entries.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        &names[..4],
        ["Files", "Hives", "Files/cnb", "Files/cnb/buildpacks"]
    );
    let bat = "Files/cnb/buildpacks/examples_my-multiarch-buildpack/0.0.1/bin/build.bat";
    let (_, pax) = entries
        .iter()
        .find(|(n, _)| n == bat)
        .expect("build.bat in the layer");
    assert!(
        pax.iter()
            .any(|(k, v)| k == "MSWINDOWS.rawsd" && v.starts_with("AQAAgBQAAAAkAAAA")),
        "{pax:?}"
    );
    assert!(names
        .contains(&"Files/cnb/buildpacks/examples_my-multiarch-buildpack/0.0.1/buildpack.toml"));

    // Linux images keep the Linux format.
    let linux = images
        .iter()
        .find(|i| i.config.architecture == "arm64")
        .unwrap();
    let entries = layer_entries(&r, &linux.manifest.layers[0]);
    assert_eq!(
        entries[0].0,
        "/cnb/buildpacks/examples_my-multiarch-buildpack"
    );

    // verify and inspect understand the Windows image.
    ok(cnbpkg(["verify", out.to_str().unwrap()]));
    let text = ok(cnbpkg(["inspect", out.to_str().unwrap()]));
    assert!(
        text.contains(&format!("Platform windows/amd64:windows@{VERSION}\n")),
        "{text}"
    );

    // --split writes each platform with its RFC name.
    let split = d.path().join("split.cnb");
    ok(cnbpkg([
        "buildpack",
        "package",
        split.to_str().unwrap(),
        "--path",
        bp.to_str().unwrap(),
        "--split",
    ]));
    let mut names = list(d.path());
    names.retain(|n| n.starts_with("split-"));
    assert_eq!(
        names,
        [
            "split-linux-amd64.cnb",
            "split-linux-arm64.cnb",
            &format!("split-windows-amd64-windows@{VERSION}.cnb")
        ]
    );
    let one = PackageReader::open(
        &d.path()
            .join(format!("split-windows-amd64-windows@{VERSION}.cnb")),
    )
    .unwrap();
    let img = &one.images().unwrap()[0];
    assert_eq!(img.config.os_version, VERSION);
    assert_eq!(img.config.rootfs.diff_ids, win.config.rootfs.diff_ids);
}

#[test]
fn base_layer_blob_is_the_fixture() {
    let d = tempfile::tempdir().unwrap();
    let bp = d.path().join("bp");
    rfc_tree(&bp);
    let out = d.path().join("w.cnb");
    ok(cnbpkg([
        "buildpack",
        "package",
        out.to_str().unwrap(),
        "--path",
        bp.to_str().unwrap(),
        "--target",
        &format!("windows/amd64:windows@{VERSION}"),
        "--compression",
        "none",
    ]));
    let r = PackageReader::open(&out).unwrap();
    let img = &r.images().unwrap()[0];
    let mut base = Vec::new();
    r.open_blob(&img.manifest.layers[0].digest)
        .unwrap()
        .read_to_end(&mut base)
        .unwrap();
    assert_eq!(
        base,
        fs::read(repo().join("testdata/fixtures/windows/base-layer.tar")).unwrap()
    );
}

#[test]
fn windows_package_as_composite_dependency_keeps_its_layers() {
    let d = tempfile::tempdir().unwrap();
    let bp = d.path().join("bp");
    rfc_tree(&bp);
    let dep = d.path().join("dep.cnb");
    ok(cnbpkg([
        "buildpack",
        "package",
        dep.to_str().unwrap(),
        "--path",
        bp.to_str().unwrap(),
    ]));
    let comp = d.path().join("meta");
    write_file(
        &comp.join("buildpack.toml"),
        "api = \"0.12\"\n\n[buildpack]\nid = \"examples/meta\"\nversion = \"1.0.0\"\n\n[[order]]\n[[order.group]]\nid = \"examples/my-multiarch-buildpack\"\nversion = \"0.0.1\"\n",
        0o644,
    );
    write_file(
        &d.path().join("package.toml"),
        &format!(
            "[buildpack]\nuri = \"meta\"\n\n[[dependencies]]\nuri = \"dep.cnb\"\n\n[[targets]]\nos = \"windows\"\narch = \"amd64\"\n[[targets.distros]]\nname = \"windows\"\nversion = \"{VERSION}\"\n\n[[targets]]\nos = \"linux\"\narch = \"amd64\"\n"
        ),
        0o644,
    );
    ok(cnbpkg_in(
        d.path(),
        [
            "buildpack",
            "package",
            "composite.cnb",
            "--config",
            "package.toml",
        ],
    ));
    let dep_images = PackageReader::open(&dep).unwrap().images().unwrap();
    let r = PackageReader::open(&d.path().join("composite.cnb")).unwrap();
    let images = r.images().unwrap();
    assert_eq!(images.len(), 2);
    for img in &images {
        let source = dep_images
            .iter()
            .find(|i| {
                i.config.os == img.config.os && i.config.architecture == img.config.architecture
            })
            .unwrap();
        for diff_id in &source.config.rootfs.diff_ids {
            assert!(
                img.config.rootfs.diff_ids.contains(diff_id),
                "{} lost {diff_id}",
                img.config.os
            );
        }
        // Composite layer + the dependency's layers (the base layer first on Windows).
        assert_eq!(
            img.config.rootfs.diff_ids.len(),
            source.config.rootfs.diff_ids.len() + 1
        );
    }
    let win = images.iter().find(|i| i.config.os == "windows").unwrap();
    assert_eq!(win.config.rootfs.diff_ids[0].to_string(), BASE_DIFF_ID);
    assert_eq!(win.config.os_version, VERSION);
    ok(cnbpkg([
        "verify",
        d.path().join("composite.cnb").to_str().unwrap(),
    ]));
}
