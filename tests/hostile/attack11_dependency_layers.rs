//! A composite copies the layers of its dependency packages (as they are, or recompressed):
//! a layer that is damaged, truncated, labelled with another compression than it has, or
//! decompresses to another diffID than its package claims is refused, naming the dependency,
//! and nothing is written — whichever way the layer is copied.

use std::fs;
use std::path::Path;

use serde_json::{json, Value};

use crate::support::*;

fn read_json(path: &Path) -> Value {
    serde_json::from_slice(&fs::read(path).unwrap()).unwrap()
}

fn blob_path(layout: &Path, digest: &str) -> std::path::PathBuf {
    layout
        .join("blobs/sha256")
        .join(digest.strip_prefix("sha256:").unwrap())
}

fn put(layout: &Path, bytes: &[u8]) -> String {
    let digest = cnbpkg::digest::Digest::of(bytes);
    fs::write(layout.join(digest.blob_path()), bytes).unwrap();
    digest.to_string()
}

/// Rewrite the single image of `layout`: `edit` changes its manifest's first layer and its
/// config; the manifest and config are stored again and index.json points at them.
fn tamper(layout: &Path, edit: impl FnOnce(&Path, &mut Value, &mut Value)) {
    let mut index = read_json(&layout.join("index.json"));
    let top = index["manifests"][0].clone();
    let mut manifest: Value = serde_json::from_slice(
        &fs::read(blob_path(layout, top["digest"].as_str().unwrap())).unwrap(),
    )
    .unwrap();
    let mut config = read_json(&blob_path(
        layout,
        manifest["config"]["digest"].as_str().unwrap(),
    ));
    edit(layout, &mut manifest["layers"][0], &mut config);
    let config = serde_json::to_vec(&config).unwrap();
    manifest["config"]["digest"] = json!(put(layout, &config));
    manifest["config"]["size"] = json!(config.len());
    let manifest = serde_json::to_vec(&manifest).unwrap();
    index["manifests"][0]["digest"] = json!(put(layout, &manifest));
    index["manifests"][0]["size"] = json!(manifest.len());
    fs::write(
        layout.join("index.json"),
        serde_json::to_vec(&index).unwrap(),
    )
    .unwrap();
}

#[test]
fn a_dependency_layer_that_is_not_what_its_package_says_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    minimal_buildpack(&dir.join("dep"), "acme/dep", "1.0.0", "");
    let sound = dir.join("dep-layout");
    ok(cnbpkg([
        "buildpack",
        "package",
        sound.to_str().unwrap(),
        "--path",
        dir.join("dep").to_str().unwrap(),
        "--format",
        "layout",
        "-q",
    ]));
    fs::create_dir(dir.join("meta")).unwrap();
    fs::write(
        dir.join("meta/buildpack.toml"),
        "api = \"0.10\"\n[buildpack]\nid = \"acme/meta\"\nversion = \"1.0.0\"\n\n[[order]]\n[[order.group]]\nid = \"acme/dep\"\nversion = \"1.0.0\"\n",
    )
    .unwrap();
    fs::write(
        dir.join("package.toml"),
        "[buildpack]\nuri = \"meta\"\n\n[[dependencies]]\nuri = \"dep\"\n",
    )
    .unwrap();

    type Edit = fn(&Path, &mut Value, &mut Value);
    let cases: [(&str, Edit, &str); 5] = [
        (
            "labelled zstd",
            |_, l, _| {
                l["mediaType"] = json!("application/vnd.oci.image.layer.v1.tar+zstd");
            },
            "",
        ),
        (
            "labelled uncompressed",
            |_, l, _| {
                l["mediaType"] = json!("application/vnd.oci.image.layer.v1.tar");
            },
            "",
        ),
        (
            "truncated",
            |layout, l, _| {
                let bytes = fs::read(blob_path(layout, l["digest"].as_str().unwrap())).unwrap();
                let cut = &bytes[..bytes.len() - 64];
                l["digest"] = json!(put(layout, cut));
                l["size"] = json!(cut.len());
            },
            "",
        ),
        (
            "damaged",
            |layout, l, _| {
                let path = blob_path(layout, l["digest"].as_str().unwrap());
                let mut bytes = fs::read(&path).unwrap();
                let mid = bytes.len() / 2;
                bytes[mid] ^= 0x40;
                fs::write(path, bytes).unwrap();
            },
            "",
        ),
        (
            "lying about its diffID",
            |_, _, config| {
                let old = config["rootfs"]["diff_ids"][0]
                    .as_str()
                    .unwrap()
                    .to_string();
                let new = format!("sha256:{}", "ab".repeat(32));
                config["rootfs"]["diff_ids"][0] = json!(new);
                let labels = config["config"]["Labels"].as_object_mut().unwrap();
                for v in labels.values_mut() {
                    let s = v.as_str().unwrap().replace(&old, &new);
                    *v = json!(s);
                }
            },
            "decompresses to",
        ),
    ];
    for (what, edit, says) in cases {
        let dep = dir.join("dep-tampered");
        let _ = fs::remove_dir_all(&dep);
        copy_tree(&sound, &dep);
        tamper(&dep, edit);
        fs::write(
            dir.join("package.toml"),
            "[buildpack]\nuri = \"meta\"\n\n[[dependencies]]\nuri = \"dep-tampered\"\n",
        )
        .unwrap();
        // Copied as it is (gzip, as the dependency), and recompressed (zstd).
        for compression in ["gzip", "zstd"] {
            let out = dir.join("out.cnb");
            let err = fails(
                cnbpkg_in(
                    dir,
                    [
                        "buildpack",
                        "package",
                        "out.cnb",
                        "--config",
                        "package.toml",
                        "--compression",
                        compression,
                        "-q",
                    ],
                ),
                1,
            );
            let line = err.trim_end();
            assert!(
                line.starts_with("error: dep-tampered: layer sha256:") && !line.contains('\n'),
                "{what}, {compression}: {err}"
            );
            assert!(line.contains(says), "{what}, {compression}: {err}");
            assert!(!out.exists(), "{what}, {compression}: an output was left");
            let mut left: Vec<String> = fs::read_dir(dir)
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect();
            left.sort();
            assert_eq!(
                left,
                ["dep", "dep-layout", "dep-tampered", "meta", "package.toml"],
                "{what}, {compression}"
            );
        }
    }
}
