//! What a composite may make packaging hold: at most 256 dependencies, and at most 256 MiB of
//! dependency manifests and configs together, however often one package is listed.

use std::fs;
use std::path::Path;

use serde_json::json;
use sha2::{Digest as _, Sha256};

use crate::support::*;

/// Store `bytes` as a blob of the layout at `dir`; its descriptor.
fn blob(dir: &Path, media_type: &str, bytes: &[u8]) -> serde_json::Value {
    let hex = hex::encode(Sha256::digest(bytes));
    fs::create_dir_all(dir.join("blobs/sha256")).unwrap();
    fs::write(dir.join("blobs/sha256").join(&hex), bytes).unwrap();
    json!({"mediaType": media_type, "digest": format!("sha256:{hex}"), "size": bytes.len()})
}

/// A layout directory with one image whose config carries a label of `label_bytes` bytes.
fn layout_with_big_config(dir: &Path, label_bytes: usize) {
    let config = json!({
        "architecture": "amd64",
        "os": "linux",
        "config": {"Labels": {"padding": "x".repeat(label_bytes)}},
        "rootfs": {"type": "layers", "diff_ids": []},
    });
    let config = blob(
        dir,
        "application/vnd.oci.image.config.v1+json",
        &serde_json::to_vec(&config).unwrap(),
    );
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": config,
        "layers": [],
    });
    let manifest = blob(
        dir,
        "application/vnd.oci.image.manifest.v1+json",
        &serde_json::to_vec(&manifest).unwrap(),
    );
    fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    fs::write(
        dir.join("index.json"),
        serde_json::to_vec(&json!({"schemaVersion": 2, "manifests": [manifest]})).unwrap(),
    )
    .unwrap();
}

fn composite(dir: &Path, dependencies: &[&str]) {
    minimal_buildpack(
        &dir.join("comp"),
        "t/comp",
        "1.0.0",
        "[[order]]\n[[order.group]]\nid = \"t/dep\"\nversion = \"1.0.0\"\n",
    );
    let mut toml = String::from("[buildpack]\nuri = \"comp\"\n");
    for d in dependencies {
        toml.push_str(&format!("[[dependencies]]\nuri = \"{d}\"\n"));
    }
    fs::write(dir.join("package.toml"), toml).unwrap();
}

#[test]
fn more_than_256_dependencies_are_refused_naming_package_toml() {
    let tmp = tempfile::tempdir().unwrap();
    let dep = tmp.path().join("dep");
    minimal_buildpack(&dep, "t/dep", "1.0.0", "");
    composite(tmp.path(), &["dep"; 257]);
    let err = fails(
        cnbpkg_in(
            tmp.path(),
            ["buildpack", "package", "out.cnb", "-c", "package.toml"],
        ),
        1,
    );
    assert!(
        err.contains("package.toml") && err.contains("257 dependencies"),
        "{err}"
    );
    assert!(!tmp.path().join("out.cnb").exists());
}

#[test]
fn one_package_listed_many_times_cannot_multiply_what_is_held() {
    let tmp = tempfile::tempdir().unwrap();
    // 20 MiB of config, well within one reader's limits; thirteen listings pass 256 MiB.
    layout_with_big_config(&tmp.path().join("big"), 20 << 20);
    composite(tmp.path(), &["big"; 13]);
    let err = fails(
        cnbpkg_in(
            tmp.path(),
            ["buildpack", "package", "out.cnb", "-c", "package.toml"],
        ),
        1,
    );
    assert!(err.contains("256 MiB of manifests and configs"), "{err}");
    assert!(!tmp.path().join("out.cnb").exists());
}
