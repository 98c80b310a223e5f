//! `builder create` from sources of every other kind: a build image given as an archive, a
//! lifecycle image (layout directory and archive) serving one platform per target, a buildpack
//! directory with RFC 0128 platform folders and a multi-platform `.cnb`; the builder read back by
//! umoci per platform, then by cnbpkg's own `verify` and `inspect`.

use std::fs;
use std::path::Path;

use serde_json::Value;

use crate::support::builder::*;
use crate::support::child::{cnbpkg, ok};

/// The inputs in `dir`: `build.tar`, `lifecycle-image/` and `lifecycle.tar`, `bp-multi/`
/// (`examples/hello-multi@0.1.0`, platform folders) and `multi.cnb` (`acme/cnb@2.0.0`, both
/// platforms); a builder.toml with `lifecycle` as its lifecycle uri.
fn inputs(dir: &Path, lifecycle: &str) -> std::path::PathBuf {
    let build = default_build_image(dir);
    archive(&build, &dir.join("build.tar"));
    let lc = lifecycle_image(dir, "lifecycle-image", &ARCHES, &[]);
    archive(&lc, &dir.join("lifecycle.tar"));
    platform_folder_buildpack(dir, "bp-multi");
    multi_platform_cnb(dir, "multi", "acme/cnb", "2.0.0");
    write_builder_toml(
        dir,
        &format!(
            r#"description = "inputs of every kind"

[[buildpacks]]
uri = "bp-multi"

[[buildpacks]]
uri = "multi.cnb"

[[order]]
[[order.group]]
id = "examples/hello-multi"

[[order.group]]
id = "acme/cnb"
version = "2.0.0"
optional = true

[build]
image = "build.tar"

[[run.images]]
image = "example.com/run:2"
mirrors = ["mirror-a.example.com/run:2", "mirror-b.example.com/run:2"]

[lifecycle]
uri = "{lifecycle}"
{}"#,
            targets_toml(&ARCHES)
        ),
    )
}

/// The `acme/cnb` layer of the package's `arch` image: (blob digest, diffID).
fn package_layer(package_layout: &Path, arch: &str) -> (String, String) {
    let work = tempfile::tempdir().unwrap();
    let p = read_platform(package_layout, arch, work.path());
    let layers = p.label_json("io.buildpacks.buildpack.layers");
    let diff_id = layers["acme/cnb"]["2.0.0"]["layerDiffID"]
        .as_str()
        .unwrap()
        .to_string();
    let pos = p.diff_ids().iter().position(|d| *d == diff_id).unwrap();
    (p.layer_digests()[pos].clone(), diff_id)
}

fn check_platform(p: &Platform, arch: &str, package: (String, String)) {
    let root = &p.rootfs;
    let lifecycle = fs::read(root.join("cnb/lifecycle/lifecycle")).unwrap();
    assert_eq!(elf_machine(&lifecycle), e_machine_of(arch), "{arch}");
    for bin in LIFECYCLE_BINARIES {
        assert!(
            fs::symlink_metadata(root.join("cnb/lifecycle").join(bin)).is_ok(),
            "{arch}: {bin}"
        );
    }
    assert!(!root.join("cnb/lifecycle/lifecycle.toml").exists());
    assert_eq!(
        fs::read_link(root.join("lifecycle")).unwrap(),
        Path::new("/cnb/lifecycle")
    );
    // The platform folder of this target, not the other's.
    let sample = crate::support::files::sample("hello-multi");
    let bp = root.join("cnb/buildpacks/examples_hello-multi/0.1.0");
    assert_eq!(
        fs::read(bp.join("bin/build")).unwrap(),
        fs::read(sample.join(format!("linux/{arch}/bin/build"))).unwrap(),
        "{arch}"
    );
    assert!(bp.join("buildpack.toml").is_file());
    assert!(root
        .join("cnb/buildpacks/acme_cnb/2.0.0/buildpack.toml")
        .is_file());
    // The package's layer, byte for byte, with its diffID.
    let (digest, diff_id) = package;
    assert!(p.layer_digests().contains(&digest), "{arch}: {digest}");
    let layers = p.label_json("io.buildpacks.buildpack.layers");
    assert_eq!(layers["acme/cnb"]["2.0.0"]["layerDiffID"], diff_id.as_str());
    let hello = layers["examples/hello-multi"]["0.1.0"]["layerDiffID"]
        .as_str()
        .unwrap();
    assert!(p.diff_ids().iter().any(|d| d == hello));
    let order = fs::read_to_string(root.join("cnb/order.toml")).unwrap();
    assert!(order.contains("id = \"examples/hello-multi\""), "{order}");
    assert!(order.contains("version = \"0.1.0\""), "resolved: {order}");
    assert!(order.contains("optional = true"), "{order}");
    let run = fs::read_to_string(root.join("cnb/run.toml")).unwrap();
    for image in [
        "example.com/run:2",
        "mirror-a.example.com/run:2",
        "mirror-b.example.com/run:2",
    ] {
        assert!(run.contains(image), "{run}");
    }
    let stack = fs::read_to_string(root.join("cnb/stack.toml")).unwrap();
    assert!(stack.contains("image = \"example.com/run:2\""), "{stack}");
    let metadata = p.label_json("io.buildpacks.builder.metadata");
    assert_eq!(metadata["lifecycle"]["version"], "0.20.5");
    assert_eq!(
        metadata["lifecycle"]["apis"]["platform"]["supported"]
            .as_array()
            .unwrap()
            .last()
            .unwrap(),
        "0.15"
    );
    assert_eq!(metadata["createdBy"]["name"], "cnbpkg");
    // The build user owns /workspace and /layers (read from the layers: umoci unpacks rootless).
    let headers = p.headers();
    for dir in ["workspace", "layers"] {
        let h = headers
            .iter()
            .rev()
            .find(|h| h.0.trim_end_matches('/') == dir);
        let h = h.unwrap_or_else(|| panic!("{arch}: no /{dir}"));
        assert_eq!((h.1, h.2), (1000, 1000), "{arch}: /{dir}");
    }
    assert_eq!(p.config["architecture"], arch);
    assert_eq!(p.config["config"]["WorkingDir"], "/layers");
    assert_eq!(env_of(&p.config)["CNB_GROUP_ID"], "1000");
}

#[test]
fn lifecycle_image_platform_folders_and_multi_platform_cnb_per_platform() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let work = d.join("work");
    let config = inputs(d, "lifecycle.tar");
    let package = as_layout(&d.join("multi.cnb"), &work.join("pkg"));
    let text = fs::read_to_string(&config).unwrap();
    for lifecycle in ["lifecycle.tar", "lifecycle-image"] {
        write_builder_toml(d, &text.replace("lifecycle.tar", lifecycle));
        let out = d.join(format!("builder-{lifecycle}.cnb"));
        ok(create(&config, &out, &[]));
        let layout = as_layout(&out, &work.join(lifecycle));
        for arch in ARCHES {
            let p = read_platform(&layout, arch, &work.join(lifecycle));
            let pkg = package_layer(&package, arch);
            check_platform(&p, arch, pkg);
            // The archived build image's layers come first, the same blobs.
            let (_, base) = platform_manifests(&d.join("build-image"))
                .into_iter()
                .find(|(a, _)| a == arch)
                .unwrap();
            let base = read_blob_json(&d.join("build-image"), base["digest"].as_str().unwrap());
            let base_layers: Vec<&str> = base["layers"]
                .as_array()
                .unwrap()
                .iter()
                .map(|l| l["digest"].as_str().unwrap())
                .collect();
            assert_eq!(
                p.layer_digests()[..base_layers.len()],
                base_layers[..],
                "{arch}"
            );
        }
    }
}

#[test]
fn verify_and_inspect_read_a_builder_cnbpkg_made() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let config = inputs(d, "lifecycle.tar");
    let out = d.join("builder.cnb");
    ok(create(&config, &out, &[]));
    let report = cnbpkg::verify::verify(&out).unwrap();
    assert!(report.is_ok(), "{:#?}", report.defects);
    assert_eq!(report.platforms, ["linux/amd64", "linux/arm64"]);
    ok(cnbpkg(["verify".as_ref(), out.as_os_str()]));

    let json: Value = serde_json::from_str(&ok(cnbpkg([
        "inspect".as_ref(),
        out.as_os_str(),
        "--json".as_ref(),
    ])))
    .unwrap();
    assert_eq!(json["builder"], true);
    assert_eq!(json["images"].as_array().unwrap().len(), ARCHES.len());
    for (img, arch) in json["images"].as_array().unwrap().iter().zip(ARCHES) {
        assert_eq!(img["platform"]["architecture"], arch);
        let b = &img["builder"];
        assert_eq!(b["lifecycle"]["version"], "0.20.5");
        assert_eq!(b["lifecycle"]["buildpackApis"][0], "0.7");
        assert_eq!(b["runImages"][0]["image"], "example.com/run:2");
        assert_eq!(b["runImages"][0]["mirrors"].as_array().unwrap().len(), 2);
        assert_eq!(b["order"][0][0]["id"], "examples/hello-multi");
        assert_eq!(b["order"][0][1]["optional"], true);
        assert_eq!(b["distro"], "ubuntu@22.04");
        assert_eq!(b["buildUser"]["uid"], "1000");
        assert_eq!(
            b["createdBy"].as_str().unwrap().split(' ').next(),
            Some("cnbpkg")
        );
        let ids: Vec<&str> = img["buildpacks"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| b["id"].as_str().unwrap())
            .collect();
        assert_eq!(ids, ["acme/cnb", "examples/hello-multi"]);
    }
    let text = ok(cnbpkg(["inspect".as_ref(), out.as_os_str()]));
    assert!(text.starts_with("Builder:"), "{text}");
    assert!(text.contains("lifecycle    0.20.5"), "{text}");
}

#[test]
fn verify_and_inspect_read_a_builder_with_extensions() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let config = inputs(d, "lifecycle.tar");
    extension_dir(d, "ext", "acme/ext");
    let text = fs::read_to_string(&config).unwrap();
    let extra = "\n[[extensions]]\nuri = \"ext\"\n\n[[order-extensions]]\n[[order-extensions.group]]\nid = \"acme/ext\"\n";
    write_builder_toml(d, &format!("{text}{extra}"));
    let out = d.join("builder.cnb");
    ok(create(&config, &out, &[]));
    let report = cnbpkg::verify::verify(&out).unwrap();
    assert!(report.is_ok(), "{:#?}", report.defects);
    let json: Value = serde_json::from_str(&ok(cnbpkg([
        "inspect".as_ref(),
        out.as_os_str(),
        "--json".as_ref(),
    ])))
    .unwrap();
    assert_eq!(json["images"].as_array().unwrap().len(), ARCHES.len());
    for img in json["images"].as_array().unwrap() {
        let b = &img["builder"];
        assert_eq!(b["extensions"][0]["id"], "acme/ext", "{b}");
        assert!(b["extensions"][0]["layerDiffID"].is_string());
        assert_eq!(b["orderExtensions"][0][0]["id"], "acme/ext");
    }
    let text = ok(cnbpkg(["inspect".as_ref(), out.as_os_str()]));
    assert!(
        text.contains("order-extensions:\n    1. acme/ext"),
        "{text}"
    );
    assert!(
        text.contains("extensions:\n    acme/ext@1.0.0  api 0.10"),
        "{text}"
    );
}
