//! verify reports module folders a Windows image cannot hold.

use std::fs;
use std::path::{Path, PathBuf};

use crate::support::*;
use serde_json::Value;
use sha2::{Digest as _, Sha256};

fn blob_path(layout: &Path, digest: &str) -> PathBuf {
    layout
        .join("blobs/sha256")
        .join(digest.trim_start_matches("sha256:"))
}

fn store(layout: &Path, v: &Value) -> (String, usize) {
    let bytes = serde_json::to_vec(v).unwrap();
    let digest = format!("sha256:{}", hex::encode(Sha256::digest(&bytes)));
    fs::write(blob_path(layout, &digest), &bytes).unwrap();
    (digest, bytes.len())
}

fn read(layout: &Path, digest: &str) -> Value {
    serde_json::from_slice(&fs::read(blob_path(layout, digest)).unwrap()).unwrap()
}

#[test]
fn a_windows_image_whose_label_names_a_version_windows_cannot_hold_is_a_defect() {
    let tmp = tempfile::tempdir().unwrap();
    let bp = tmp.path().join("bp");
    write_file(
        &bp.join("buildpack.toml"),
        "api = \"0.10\"\n\n[buildpack]\nid = \"acme/win\"\nversion = \"1.0.0\"\n\n\
         [[targets]]\nos = \"windows\"\narch = \"amd64\"\n",
        0o644,
    );
    write_file(&bp.join("bin/build.bat"), "@echo off\r\n", 0o755);
    write_file(&bp.join("bin/detect.bat"), "@echo off\r\n", 0o755);
    let pkg = tmp.path().join("win");
    ok(cnbpkg([
        "buildpack".as_ref(),
        "package".as_ref(),
        pkg.as_os_str(),
        "--path".as_ref(),
        bp.as_os_str(),
        "--format".as_ref(),
        "layout".as_ref(),
        "-q".as_ref(),
    ]));
    ok(cnbpkg(["verify".as_ref(), pkg.as_os_str()]));

    let mut index: Value =
        serde_json::from_slice(&fs::read(pkg.join("index.json")).unwrap()).unwrap();
    let mdigest = index["manifests"][0]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let mut manifest = read(&pkg, &mdigest);
    let cdigest = manifest["config"]["digest"].as_str().unwrap().to_string();
    let mut config = read(&pkg, &cdigest);
    let key = "io.buildpacks.buildpack.layers";
    let layers = config["config"]["Labels"][key]
        .as_str()
        .unwrap()
        .to_string();
    assert!(layers.contains("\"1.0.0\""), "{layers}");
    config["config"]["Labels"][key] = Value::String(layers.replace("\"1.0.0\"", "\"1.0:0\""));
    let (d, n) = store(&pkg, &config);
    manifest["config"]["digest"] = d.into();
    manifest["config"]["size"] = n.into();
    let (d, n) = store(&pkg, &manifest);
    index["manifests"][0]["digest"] = d.into();
    index["manifests"][0]["size"] = n.into();
    fs::write(pkg.join("index.json"), serde_json::to_vec(&index).unwrap()).unwrap();
    fs::remove_file(blob_path(&pkg, &cdigest)).unwrap();
    fs::remove_file(blob_path(&pkg, &mdigest)).unwrap();

    let o = cnbpkg(["verify".as_ref(), pkg.as_os_str()]);
    let stdout = String::from_utf8_lossy(&o.stdout).into_owned();
    fails(o, 1);
    assert!(
        stdout.contains("\"1.0:0\" of acme/win contains ':', which Windows file names cannot hold"),
        "{stdout}"
    );
}
