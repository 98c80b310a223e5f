//! The one walker over a package's image tree reads each manifest and config once, however
//! often they are listed; every listing's own size is still checked, and a listing that lies
//! about its size neither hides the sound listings of the same blob from `verify` nor passes
//! unnoticed in `inspect`.

use std::fs;
use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use crate::support::*;

/// A one-image layout for linux/amd64, and its index.json's manifest descriptor.
fn layout(dir: &Path) -> (PathBuf, Value) {
    let bp = dir.join("bp");
    minimal_buildpack(&bp, "acme/walked", "1.0.0", "");
    let out = dir.join("layout");
    ok(cnbpkg([
        "buildpack",
        "package",
        out.to_str().unwrap(),
        "--path",
        bp.to_str().unwrap(),
        "--format",
        "layout",
        "--target",
        "linux/amd64",
        "-q",
    ]));
    let index = read_json(&out.join("index.json"));
    let manifest = index["manifests"][0].clone();
    (out, manifest)
}

fn read_json(path: &Path) -> Value {
    serde_json::from_slice(&fs::read(path).unwrap()).unwrap()
}

fn blob(layout: &Path, digest: &Value) -> Vec<u8> {
    let hex = digest.as_str().unwrap().strip_prefix("sha256:").unwrap();
    fs::read(layout.join("blobs/sha256").join(hex)).unwrap()
}

/// Store `bytes` as a blob; returns its digest.
fn put(layout: &Path, bytes: &[u8]) -> String {
    let digest = cnbpkg::digest::Digest::of(bytes);
    fs::write(layout.join(digest.blob_path()), bytes).unwrap();
    digest.to_string()
}

/// A listing of `manifest` with its own name (so two listings claim no one platform) and,
/// when `extra` is given, a size that many bytes too large and another architecture (a
/// listing verify has not checked yet, whose config it must compare).
fn listing(manifest: &Value, name: &str, extra: u64) -> Value {
    let mut d = manifest.clone();
    d["size"] = json!(d["size"].as_u64().unwrap() + extra);
    let arch = if extra == 0 { "amd64" } else { "arm64" };
    d["platform"] = json!({"os": "linux", "architecture": arch});
    d["annotations"] = json!({"org.opencontainers.image.ref.name": name});
    d
}

fn set_index(layout: &Path, manifests: Vec<Value>) {
    let index = json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": manifests});
    fs::write(
        layout.join("index.json"),
        serde_json::to_vec(&index).unwrap(),
    )
    .unwrap();
}

/// What `verify` printed on stdout, line by line.
fn defects(layout: &Path) -> Vec<String> {
    let out = cnbpkg(["verify", layout.to_str().unwrap()]);
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn a_manifest_listing_with_a_wrong_size_is_that_listing_s_defect_only() {
    let tmp = tempfile::tempdir().unwrap();
    let (layout, manifest) = layout(tmp.path());
    let size = manifest["size"].as_u64().unwrap();
    let digest = manifest["digest"].as_str().unwrap().to_string();
    let lie = format!(
        "blob {digest} is {size} bytes but its descriptor says {}",
        size + 1
    );

    // The lying listing first: the sound one after it is still checked, whole.
    set_index(
        &layout,
        vec![listing(&manifest, "a", 1), listing(&manifest, "b", 0)],
    );
    let shown = defects(&layout);
    assert_eq!(
        shown,
        [format!("{}: index.json: {lie}", layout.display())],
        "only the lying listing is a defect"
    );

    // The lying listing last: inspect (and a composite choosing an image) checks every
    // listing's size, as verify does.
    set_index(
        &layout,
        vec![listing(&manifest, "a", 0), listing(&manifest, "b", 1)],
    );
    let err = fails(cnbpkg(["inspect", layout.to_str().unwrap()]), 1);
    assert_eq!(
        err.trim_end(),
        format!(
            "error: {}: blob {digest} is {size} bytes, descriptor says {}",
            layout.display(),
            size + 1
        )
    );
    assert_eq!(
        defects(&layout),
        [format!("{}: index.json: {lie}", layout.display())]
    );
}

#[test]
fn a_config_shared_by_two_manifests_is_checked_for_each_of_them() {
    let tmp = tempfile::tempdir().unwrap();
    let (layout, manifest) = layout(tmp.path());
    let doc: Value = serde_json::from_slice(&blob(&layout, &manifest["digest"])).unwrap();
    let config = doc["config"].clone();
    let size = config["size"].as_u64().unwrap();
    let config_digest = config["digest"].as_str().unwrap().to_string();
    // Two manifests of one config: one gives the config's size wrong.
    let image = |config_extra: u64, note: &str| {
        let mut m = doc.clone();
        m["config"]["size"] = json!(size + config_extra);
        m["annotations"] = json!({"note": note});
        let bytes = serde_json::to_vec(&m).unwrap();
        json!({
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": put(&layout, &bytes),
            "size": bytes.len(),
        })
    };
    let lying = image(1, "lying");
    let sound = image(0, "sound");
    let _ = fs::remove_file(
        layout.join("blobs/sha256").join(
            manifest["digest"]
                .as_str()
                .unwrap()
                .strip_prefix("sha256:")
                .unwrap(),
        ),
    );
    let lie = |m: &Value| {
        format!(
            "{}: manifest {}: blob {config_digest} is {size} bytes but its descriptor says {}",
            layout.display(),
            &m["digest"].as_str().unwrap()["sha256:".len().."sha256:".len() + 12],
            size + 1
        )
    };

    set_index(
        &layout,
        vec![listing(&lying, "a", 0), listing(&sound, "b", 0)],
    );
    assert_eq!(
        defects(&layout),
        [lie(&lying)],
        "only the lying manifest is a defect"
    );

    set_index(
        &layout,
        vec![listing(&sound, "a", 0), listing(&lying, "b", 0)],
    );
    let err = fails(cnbpkg(["inspect", layout.to_str().unwrap()]), 1);
    assert_eq!(
        err.trim_end(),
        format!(
            "error: {}: blob {config_digest} is {size} bytes, descriptor says {}",
            layout.display(),
            size + 1
        )
    );
    assert_eq!(defects(&layout), [lie(&lying)]);
}

/// Listed twice under one platform, first with a wrong size: the sound listing after it is the
/// one verify checks (and its blobs are referenced).
#[test]
fn a_lying_listing_does_not_stand_for_a_sound_one_of_the_same_platform() {
    let tmp = tempfile::tempdir().unwrap();
    let (layout, manifest) = layout(tmp.path());
    let size = manifest["size"].as_u64().unwrap();
    let digest = manifest["digest"].as_str().unwrap().to_string();
    let mut lying = listing(&manifest, "a", 1);
    lying["platform"] = listing(&manifest, "b", 0)["platform"].clone();
    set_index(&layout, vec![lying, listing(&manifest, "b", 0)]);
    assert_eq!(
        defects(&layout),
        [format!(
            "{}: index.json: blob {digest} is {size} bytes but its descriptor says {}",
            layout.display(),
            size + 1
        )]
    );
}
