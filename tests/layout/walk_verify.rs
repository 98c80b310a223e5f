//! `verify` over the one tree walk: what cannot be read is reported where it is listed, and its
//! siblings are still read and checked.

use std::fs;
use std::path::Path;

use crate::support::*;
use serde_json::{json, Value};
use sha2::{Digest as _, Sha256};

/// Write a blob into a layout, returning its descriptor.
fn put(layout: &Path, media_type: &str, bytes: &[u8]) -> Value {
    let hex = hex::encode(Sha256::digest(bytes));
    fs::write(layout.join("blobs/sha256").join(&hex), bytes).unwrap();
    json!({"mediaType": media_type, "digest": format!("sha256:{hex}"), "size": bytes.len()})
}

const MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

#[test]
fn unreadable_images_are_reported_in_order_and_their_siblings_checked() {
    let tmp = tempfile::tempdir().unwrap();
    let layout = tmp.path().join("layout");
    ok(cnbpkg([
        "buildpack".as_ref(),
        "package".as_ref(),
        layout.as_os_str(),
        "--path".as_ref(),
        sample("hello-bash").as_os_str(),
        "--format".as_ref(),
        "layout".as_ref(),
        "-q".as_ref(),
    ]));
    let index: Value =
        serde_json::from_slice(&fs::read(layout.join("index.json")).unwrap()).unwrap();
    let sound = cnbpkg::verify::verify(&layout).unwrap();
    assert!(sound.is_ok(), "{sound:?}");
    let good = index["manifests"][0].clone();

    let mut garbage = put(&layout, MANIFEST, b"[1]");
    garbage["platform"] = json!({"os": "linux", "architecture": "s390x"});
    let missing = json!({
        "mediaType": MANIFEST,
        "digest": format!("sha256:{}", "ab".repeat(32)),
        "size": 10,
        "platform": {"os": "linux", "architecture": "riscv64"},
    });
    let top = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [garbage, missing, good],
    });
    fs::write(layout.join("index.json"), top.to_string()).unwrap();

    let report = cnbpkg::verify::verify(&layout).unwrap();
    let garbage_digest = garbage["digest"].as_str().unwrap();
    assert_eq!(report.images, 2 + sound.images, "{report:?}");
    assert_eq!(report.defects.len(), 2, "{report:?}");
    assert!(
        report.defects[0].contains(&format!(
            "manifest {garbage_digest} is not valid JSON for its type"
        )),
        "{report:?}"
    );
    assert_eq!(
        report.defects[1],
        format!("index.json: blob sha256:{} is missing", "ab".repeat(32))
    );
    // The sound image was read on past its broken siblings: its layers were hashed.
    assert_eq!(report.bytes, sound.bytes, "{report:?}");
    let mut platforms = vec!["linux/s390x".to_string(), "linux/riscv64".to_string()];
    platforms.extend(sound.platforms);
    assert_eq!(report.platforms, platforms);
}

#[test]
fn the_descriptor_limit_stops_verify_where_the_walk_stopped() {
    let tmp = tempfile::tempdir().unwrap();
    let layout = tmp.path().join("layout");
    fs::create_dir_all(layout.join("blobs/sha256")).unwrap();
    fs::write(
        layout.join("oci-layout"),
        r#"{"imageLayoutVersion":"1.0.0"}"#,
    )
    .unwrap();
    // One index listing 100 001 entries of another type (each cheap to check).
    let other = put(&layout, "application/vnd.example", b"x");
    let wide = json!({
        "schemaVersion": 2,
        "manifests": vec![other; 100_001],
    });
    let index_type = "application/vnd.oci.image.index.v1+json";
    let inner = put(&layout, index_type, wide.to_string().as_bytes());
    let top = json!({"schemaVersion": 2, "mediaType": index_type, "manifests": [inner]});
    fs::write(layout.join("index.json"), top.to_string()).unwrap();

    let report = cnbpkg::verify::verify(&layout).unwrap();
    let short = &inner["digest"].as_str().unwrap()[7..19];
    let limit = format!("index {short}: more than 100000 descriptors in the package's indexes");
    assert_eq!(report.defects.last(), Some(&limit), "{:?}", report.defects);
    // Nothing is reported after the limit (no blob is called unreferenced).
    assert!(
        !report.defects.iter().any(|d| d.contains("not referenced")),
        "{:?}",
        report.defects
    );
}
