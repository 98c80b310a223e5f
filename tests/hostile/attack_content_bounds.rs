//! Counts a crafted package controls must cost linear work: a label of 120 000 modules checked
//! against 200 000 diffIDs was 2.4 * 10^10 comparisons (hours) in `verify`.

use crate::support;
use std::fs;
use std::path::Path;

use serde_json::json;
use sha2::{Digest as _, Sha256};

fn put(root: &Path, bytes: &[u8]) -> (String, usize) {
    let hex = hex::encode(Sha256::digest(bytes));
    fs::write(root.join("blobs/sha256").join(&hex), bytes).unwrap();
    (format!("sha256:{hex}"), bytes.len())
}

#[test]
fn a_label_of_many_modules_against_many_layers_is_checked_in_linear_time() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("many");
    fs::create_dir_all(root.join("blobs/sha256")).unwrap();
    fs::write(root.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    let mut tar = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(tar::EntryType::Directory);
    h.set_path("cnb/buildpacks/x/1/").unwrap();
    h.set_mode(0o755);
    h.set_size(0);
    h.set_cksum();
    tar.append(&h, std::io::empty()).unwrap();
    let tar = tar.into_inner().unwrap();
    let diff = format!("sha256:{}", hex::encode(Sha256::digest(&tar)));
    let (layer, layer_size) = put(&root, &tar);

    let mut diff_ids = vec![diff];
    diff_ids.extend((1..200_000u64).map(|i| format!("sha256:{i:064x}")));
    let label: serde_json::Map<String, serde_json::Value> = (0..120_000u64)
        .map(|i| {
            (
                format!("x{i}"),
                json!({"1": {"layerDiffID": format!("sha256:{:064x}", 1_000_000_000 + i)}}),
            )
        })
        .collect();
    let config = json!({
        "architecture": "amd64",
        "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "config": {"Labels": {
            "io.buildpacks.buildpackage.metadata": json!({"id": "x", "version": "1"}).to_string(),
            "io.buildpacks.buildpack.layers": serde_json::Value::Object(label).to_string(),
        }},
    });
    let (config, config_size) = put(&root, &serde_json::to_vec(&config).unwrap());
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config, "size": config_size},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": layer, "size": layer_size}],
    });
    let (manifest, manifest_size) = put(&root, &serde_json::to_vec(&manifest).unwrap());
    let index = json!({"schemaVersion": 2, "manifests": [{
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "digest": manifest, "size": manifest_size,
        "platform": {"os": "linux", "architecture": "amd64"},
    }]});
    fs::write(root.join("index.json"), index.to_string()).unwrap();

    // The child is killed (and the test fails) if it runs past the support module's deadline.
    let home = tmp.path().join("home");
    fs::create_dir_all(&home).unwrap();
    let out = support::child::run(["verify".as_ref(), root.as_os_str()], &home, &[], None);
    assert_eq!(
        out.code(),
        Some(1),
        "{}",
        &out.stderr[..out.stderr.len().min(2000)]
    );
    // Every module is checked and counted; the first ones are listed.
    assert!(out.stdout.contains("@1 points at"), "not reported");
    assert!(out.stdout.contains("more defects"), "not counted");
    assert!(out.stderr.contains("defects found"));
}
