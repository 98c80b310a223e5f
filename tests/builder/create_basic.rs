//! `builder create` end to end on the basic paths: a single-target and a two-target builder on
//! a build image made by umoci, lifecycle `.tgz` files in the release's layout and a directory
//! buildpack; read back by skopeo (per platform) and umoci (digests, diffIDs, the tree), and
//! reproducible to the byte.

use std::fs;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::support::builder::*;
use crate::support::child::{cnbpkg, fails, ok};
use crate::support::lifecycle::lifecycle_tgz;

/// A builder.toml in `dir` over the fixture build image, a directory buildpack `acme/a@1.0.0`
/// (its version left out of the order) and `lifecycle` as `[lifecycle] uri`; `extra` appended.
fn write_config(dir: &Path, lifecycle: &str, extra: &str) -> PathBuf {
    let config = dir.join("builder.toml");
    fs::write(
        &config,
        format!(
            r#"description = "a test builder"

[[buildpacks]]
uri = "bp"

[[order]]
[[order.group]]
id = "acme/a"

[build]
image = "build-image"

[[build.env]]
name = "B_VAR"
value = "b"

[[build.env]]
name = "A_VAR"
value = "a"
suffix = "override"

[[run.images]]
image = "example.com/run:1"
mirrors = ["mirror.example.com/run:1"]

[lifecycle]
uri = "{lifecycle}"
{extra}"#
        ),
    )
    .unwrap();
    config
}

/// The fixture inputs in `dir`: the two-platform build image, buildpack `bp` (both platforms)
/// and both lifecycle archives.
fn inputs(dir: &Path) {
    default_build_image(dir);
    simple_buildpack(
        dir,
        "bp",
        "acme/a",
        "1.0.0",
        "0.10",
        &["linux/amd64", "linux/arm64"],
    );
    for arch in ARCHES {
        lifecycle_tgz(dir, arch, "0.20.5");
    }
}

fn create(config: &Path, out: &Path, extra: &[&str]) -> String {
    let mut args: Vec<String> = vec![
        "builder".into(),
        "create".into(),
        out.display().to_string(),
        "--config".into(),
        config.display().to_string(),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    ok(cnbpkg(&args))
}

/// The files of the built tree a builder must hold for `arch`.
fn check_tree(p: &Platform, arch: &str) {
    let root = &p.rootfs;
    let lifecycle = fs::read(root.join("cnb/lifecycle/lifecycle")).unwrap();
    assert_eq!(elf_machine(&lifecycle), e_machine_of(arch), "{arch}");
    for bin in LIFECYCLE_BINARIES {
        assert!(
            fs::symlink_metadata(root.join("cnb/lifecycle").join(bin)).is_ok(),
            "{arch}: /cnb/lifecycle/{bin}"
        );
    }
    assert!(!root.join("cnb/lifecycle/lifecycle.toml").exists());
    assert!(root
        .join("cnb/buildpacks/acme_a/1.0.0/buildpack.toml")
        .is_file());
    assert!(root.join("cnb/buildpacks/acme_a/1.0.0/bin/build").is_file());
    let order = fs::read_to_string(root.join("cnb/order.toml")).unwrap();
    assert!(order.contains("id = \"acme/a\""), "{order}");
    assert!(order.contains("version = \"1.0.0\""), "resolved: {order}");
    let run = fs::read_to_string(root.join("cnb/run.toml")).unwrap();
    assert!(run.contains("example.com/run:1"), "{run}");
    assert!(run.contains("mirror.example.com/run:1"), "{run}");
    let stack = fs::read_to_string(root.join("cnb/stack.toml")).unwrap();
    assert!(stack.contains("[run-image]"), "{stack}");
    assert_eq!(
        fs::read_to_string(root.join("cnb/build-config/env/B_VAR")).unwrap(),
        "b"
    );
    assert_eq!(
        fs::read_to_string(root.join("cnb/build-config/env/A_VAR.override")).unwrap(),
        "a"
    );
    assert!(root.join("platform/env").is_dir());
    assert!(root.join("workspace").is_dir() && root.join("layers").is_dir());
    // The build image's own files are there too.
    assert!(root.join("etc/os-release").is_file());
}

/// The config keeps the build image's settings and carries pack's labels.
fn check_config(config: &Value) {
    let env = env_of(config);
    assert_eq!(env["CNB_USER_ID"], "1000");
    assert_eq!(
        env["PATH"],
        BASE_PATH.trim_start_matches("PATH="),
        "{config}"
    );
    assert_eq!(config["config"]["User"], "1000:1000");
    assert_eq!(config["config"]["WorkingDir"], "/layers");
    assert_eq!(config["created"], "1980-01-01T00:00:01Z");
    for h in config["history"].as_array().unwrap() {
        assert_eq!(h, &serde_json::json!({"created": "1980-01-01T00:00:01Z"}));
    }
    let labels = &config["config"]["Labels"];
    assert_eq!(labels["org.example.base"], "fixture", "base labels kept");
    let metadata: Value =
        serde_json::from_str(labels["io.buildpacks.builder.metadata"].as_str().unwrap()).unwrap();
    assert_eq!(metadata["description"], "a test builder");
    assert_eq!(metadata["createdBy"]["name"], "cnbpkg");
    assert_eq!(metadata["buildpacks"][0]["id"], "acme/a");
    assert_eq!(metadata["images"][0]["image"], "example.com/run:1");
    let order = labels["io.buildpacks.buildpack.order"].as_str().unwrap();
    assert!(
        !order.contains("1.0.0"),
        "the order label is unresolved: {order}"
    );
    let layers: Value =
        serde_json::from_str(labels["io.buildpacks.buildpack.layers"].as_str().unwrap()).unwrap();
    let diff_id = layers["acme/a"]["1.0.0"]["layerDiffID"].as_str().unwrap();
    let diff_ids = config["rootfs"]["diff_ids"].as_array().unwrap();
    assert!(diff_ids.iter().any(|d| d == diff_id), "{layers}");
    assert_eq!(labels["io.buildpacks.extension.layers"], "{}");
    assert_eq!(labels["io.buildpacks.buildpack.order-extensions"], "null");
    assert_eq!(labels["io.buildpacks.stack.mixins"], "null");
    // The last layer is the empty platform env layer.
    assert_eq!(
        diff_ids.last().unwrap(),
        "sha256:5f70bf18a086007016e948b04aed3b82103a36bea41755b6cddfaf10ace3c6ef"
    );
}

/// The build image's layers, first and byte for byte.
fn check_base_layers(builder_layout: &Path, build_layout: &Path, arch: &str, work: &Path) {
    let base = read_platform(build_layout, arch, &work.join("base"));
    let built = read_platform(builder_layout, arch, &work.join("built"));
    let base_layers = base.manifest["layers"].as_array().unwrap();
    let built_layers = built.manifest["layers"].as_array().unwrap();
    for (a, b) in base_layers.iter().zip(built_layers) {
        assert_eq!(a["digest"], b["digest"]);
        assert_eq!(a["size"], b["size"]);
    }
    let base_ids = base.config["rootfs"]["diff_ids"].as_array().unwrap();
    let built_ids = built.config["rootfs"]["diff_ids"].as_array().unwrap();
    assert_eq!(&built_ids[..base_ids.len()], &base_ids[..]);
}

#[test]
fn single_target_builder_is_read_by_skopeo_and_umoci() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    inputs(d);
    let config = write_config(d, "lifecycle-v0.20.5+linux.x86-64.tgz", "");
    let out = d.join("builder.oci");
    let printed = create(&config, &out, &["--target", "linux/amd64"]);
    assert_eq!(printed.trim(), out.display().to_string());

    let (manifest, config_json) = skopeo_platform(&out, "amd64");
    assert_eq!(
        manifest["mediaType"],
        "application/vnd.oci.image.manifest.v1+json"
    );
    check_config(&config_json);
    let work = d.join("work");
    let layout = as_layout(&out, &work);
    let p = read_platform(&layout, "amd64", &work);
    check_tree(&p, "amd64");
    check_base_layers(&layout, &d.join("build-image"), "amd64", &work.join("cmp"));

    // /workspace and /layers belong to the build user (umoci unpacks rootless: read the layer).
    let layers = p.manifest["layers"].as_array().unwrap();
    let dirs = layers
        .iter()
        .map(|l| {
            let blob = read_blob(&layout, l["digest"].as_str().unwrap());
            layer_headers(&blob, l["mediaType"].as_str().unwrap())
        })
        .find(|h| h.first().is_some_and(|e| e.0 == "workspace"))
        .expect("a directories layer");
    assert_eq!(dirs[0].1, 1000);
    assert_eq!(dirs[1].0, "layers");
    assert_eq!((dirs[1].1, dirs[1].2), (1000, 1000));

    // Reproducible: a second run writes the same bytes.
    let again = d.join("again.oci");
    create(&config, &again, &["--target", "linux/amd64"]);
    assert_eq!(fs::read(&out).unwrap(), fs::read(&again).unwrap());
}

#[test]
fn two_target_builder_is_an_index_with_the_right_lifecycle_per_platform() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    inputs(d);
    let targets = "\n[[targets]]\nos = \"linux\"\narch = \"amd64\"\n\n[[targets]]\nos = \"linux\"\narch = \"arm64\"\n";
    let config = write_config(d, "lifecycle-v0.20.5+linux.{arch}.tgz", targets);
    let out = d.join("builder");
    create(&config, &out, &["--format", "layout"]);
    assert!(out.join("oci-layout").is_file());
    let listed = platform_manifests(&out);
    assert_eq!(
        listed.iter().map(|(a, _)| a.as_str()).collect::<Vec<_>>(),
        ARCHES
    );
    for (arch, desc) in &listed {
        assert_eq!(desc["platform"]["architecture"], arch.as_str());
        assert_eq!(desc["platform"]["os"], "linux");
    }
    let work = d.join("work");
    let mut non_base: Vec<Vec<Value>> = Vec::new();
    for arch in ARCHES {
        let p = read_platform(&out, arch, &work);
        check_tree(&p, arch);
        check_config(&p.config);
        check_base_layers(
            &out,
            &d.join("build-image"),
            arch,
            &work.join(format!("cmp-{arch}")),
        );
        let layers = p.manifest["layers"].as_array().unwrap().clone();
        non_base.push(layers[1..].to_vec());
    }
    // Layers that do not depend on the architecture are built once and shared: the order,
    // stack, run, env and platform env layers (the last five).
    let tail = |l: &Vec<Value>| l[l.len() - 5..].to_vec();
    assert_eq!(tail(&non_base[0]), tail(&non_base[1]));

    // A tar of the same builder (the default format) through skopeo, per platform.
    let file = d.join("builder.tar");
    create(&config, &file, &[]);
    for arch in ARCHES {
        let (_, c) = skopeo_platform(&file, arch);
        assert_eq!(c["architecture"], arch);
    }
    // --split: one file per target, named as package --split names them.
    let split = d.join("split.cnb");
    create(&config, &split, &["--split"]);
    for arch in ARCHES {
        let one = d.join(format!("split-linux-{arch}.cnb"));
        let (m, c) = skopeo_platform(&one, arch);
        assert_eq!(c["architecture"], arch);
        assert_eq!(m["mediaType"], "application/vnd.oci.image.manifest.v1+json");
    }
}

#[test]
fn a_target_the_build_image_lacks_is_refused_naming_what_it_has() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    inputs(d);
    let config = write_config(d, "lifecycle-v0.20.5+linux.x86-64.tgz", "");
    let out = d.join("b.cnb");
    let err = fails(
        cnbpkg([
            "builder".as_ref(),
            "create".as_ref(),
            out.as_os_str(),
            "--config".as_ref(),
            config.as_os_str(),
            "--target".as_ref(),
            "linux/ppc64le".as_ref(),
        ]),
        1,
    );
    assert!(
        err.contains("has no image for target linux/ppc64le"),
        "{err}"
    );
    assert!(
        err.contains("linux/amd64") && err.contains("linux/arm64"),
        "{err}"
    );
    assert!(!out.exists());
}
