//! Go's `encoding/json` (pack, the lifecycle, containerd) matches object keys to fields without
//! regard to case and keeps the last match; serde matches exactly. A document with `Labels`
//! and `labels`, or `architecture` and `Architecture`, means one thing to cnbpkg and another to
//! every Go reader: `verify` reports it.

use std::fs;
use std::path::Path;

use crate::support::*;
use serde_json::{json, Value};
use sha2::{Digest as _, Sha256};

fn blob_path(layout: &Path, digest: &str) -> std::path::PathBuf {
    layout
        .join("blobs/sha256")
        .join(digest.trim_start_matches("sha256:"))
}

/// Store `v` as a blob and return its digest and size.
fn store(layout: &Path, v: &Value) -> (String, usize) {
    let bytes = serde_json::to_vec(v).unwrap();
    let digest = format!("sha256:{}", hex::encode(Sha256::digest(&bytes)));
    fs::write(blob_path(layout, &digest), &bytes).unwrap();
    (digest, bytes.len())
}

fn read(layout: &Path, digest: &str) -> Value {
    serde_json::from_slice(&fs::read(blob_path(layout, digest)).unwrap()).unwrap()
}

fn verify_text(layout: &Path) -> (Option<i32>, String) {
    let o = cnbpkg(["verify".as_ref(), layout.as_os_str()]);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    (o.status.code(), text)
}

/// A single-platform layout package of a sound buildpack.
fn layout_package(work: &Path, name: &str) -> std::path::PathBuf {
    let bp = work.join(format!("{name}-bp"));
    minimal_buildpack(
        &bp,
        "acme/keys",
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

#[test]
fn keys_differing_only_in_case_are_defects() {
    let tmp = tempfile::tempdir().unwrap();
    let work = tmp.path();

    // index.json: the platform says amd64 to cnbpkg and arm64 to Go readers.
    let pkg = layout_package(work, "platform");
    let mut index: Value =
        serde_json::from_slice(&fs::read(pkg.join("index.json")).unwrap()).unwrap();
    index["manifests"][0]["platform"]["Architecture"] = json!("arm64");
    fs::write(pkg.join("index.json"), serde_json::to_vec(&index).unwrap()).unwrap();
    let (code, text) = verify_text(&pkg);
    assert_eq!(code, Some(1), "verified:\n{text}");
    assert!(
        text.contains("index.json") && text.contains("'architecture' and 'Architecture'")
            || text.contains("'Architecture' and 'architecture'"),
        "{text}"
    );

    // The config: a second label set under `labels`, which Go readers take instead.
    let pkg = layout_package(work, "labels");
    let mut index: Value =
        serde_json::from_slice(&fs::read(pkg.join("index.json")).unwrap()).unwrap();
    let manifest_digest = index["manifests"][0]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let mut manifest = read(&pkg, &manifest_digest);
    let config_digest = manifest["config"]["digest"].as_str().unwrap().to_string();
    let mut config = read(&pkg, &config_digest);
    config["config"]["labels"] = json!({"io.buildpacks.buildpack.layers": "{}"});
    fs::remove_file(blob_path(&pkg, &config_digest)).unwrap();
    let (d, n) = store(&pkg, &config);
    manifest["config"]["digest"] = json!(d);
    manifest["config"]["size"] = json!(n);
    fs::remove_file(blob_path(&pkg, &manifest_digest)).unwrap();
    let (d, n) = store(&pkg, &manifest);
    index["manifests"][0]["digest"] = json!(d);
    index["manifests"][0]["size"] = json!(n);
    fs::write(pkg.join("index.json"), serde_json::to_vec(&index).unwrap()).unwrap();
    let (code, text) = verify_text(&pkg);
    assert_eq!(code, Some(1), "verified:\n{text}");
    assert!(
        text.contains("'Labels' and 'labels'") || text.contains("'labels' and 'Labels'"),
        "{text}"
    );

    // Label names are map keys, read exactly by every reader: names differing in case are fine.
    let pkg = layout_package(work, "names");
    let mut index: Value =
        serde_json::from_slice(&fs::read(pkg.join("index.json")).unwrap()).unwrap();
    let manifest_digest = index["manifests"][0]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let mut manifest = read(&pkg, &manifest_digest);
    let config_digest = manifest["config"]["digest"].as_str().unwrap().to_string();
    let mut config = read(&pkg, &config_digest);
    config["config"]["Labels"]["org.example.A"] = json!("1");
    config["config"]["Labels"]["org.example.a"] = json!("2");
    fs::remove_file(blob_path(&pkg, &config_digest)).unwrap();
    let (d, n) = store(&pkg, &config);
    manifest["config"]["digest"] = json!(d);
    manifest["config"]["size"] = json!(n);
    fs::remove_file(blob_path(&pkg, &manifest_digest)).unwrap();
    let (d, n) = store(&pkg, &manifest);
    index["manifests"][0]["digest"] = json!(d);
    index["manifests"][0]["size"] = json!(n);
    fs::write(pkg.join("index.json"), serde_json::to_vec(&index).unwrap()).unwrap();
    let (code, text) = verify_text(&pkg);
    assert_eq!(code, Some(0), "{text}");
}
