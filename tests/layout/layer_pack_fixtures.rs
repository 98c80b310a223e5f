//! Rebuild every module layer of pack's own `.cnb` fixtures from its extracted files and compare with pack's bytes and diffIDs.

use std::collections::HashMap;
use std::fs;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use cnbpkg::digest::Digest;
use cnbpkg::internals::{write_module_layer, LayerFormat, LayerSpec};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("testdata/fixtures/pack")
        .join(name)
}

/// All files of an outer `.cnb` tar, keyed by name without the leading `/`.
fn read_outer(path: &Path) -> HashMap<String, Vec<u8>> {
    let mut ar = tar::Archive::new(fs::File::open(path).unwrap());
    let mut out = HashMap::new();
    for e in ar.entries().unwrap() {
        let mut e = e.unwrap();
        let name = e
            .path()
            .unwrap()
            .to_string_lossy()
            .trim_start_matches('/')
            .to_string();
        let mut data = Vec::new();
        e.read_to_end(&mut data).unwrap();
        out.insert(name, data);
    }
    out
}

fn blob<'a>(files: &'a HashMap<String, Vec<u8>>, digest: &str) -> &'a [u8] {
    &files[&format!("blobs/sha256/{}", digest.trim_start_matches("sha256:"))]
}

/// (uncompressed layer, diffID) pairs of the package's only manifest, and the config's labels.
fn layers(files: &HashMap<String, Vec<u8>>) -> (Vec<(Vec<u8>, String)>, serde_json::Value) {
    let index: serde_json::Value = serde_json::from_slice(&files["index.json"]).unwrap();
    let manifest: serde_json::Value = serde_json::from_slice(blob(
        files,
        index["manifests"][0]["digest"].as_str().unwrap(),
    ))
    .unwrap();
    let config: serde_json::Value =
        serde_json::from_slice(blob(files, manifest["config"]["digest"].as_str().unwrap()))
            .unwrap();
    let diff_ids = config["rootfs"]["diff_ids"].as_array().unwrap();
    let mut out = Vec::new();
    for (layer, diff_id) in manifest["layers"].as_array().unwrap().iter().zip(diff_ids) {
        let gz = blob(files, layer["digest"].as_str().unwrap());
        let mut tar_bytes = Vec::new();
        flate2::read::MultiGzDecoder::new(gz)
            .read_to_end(&mut tar_bytes)
            .unwrap();
        out.push((tar_bytes, diff_id.as_str().unwrap().to_string()));
    }
    (out, config["config"]["Labels"].clone())
}

/// Extract the entries under `prefix/` into `dest`, keeping modes, symlinks and hardlinks.
fn extract_subtree(layer: &[u8], prefix: &str, dest: &Path) {
    let mut ar = tar::Archive::new(layer);
    for e in ar.entries().unwrap() {
        let mut e = e.unwrap();
        let name = e.path().unwrap().to_string_lossy().to_string();
        let Some(rel) = name.strip_prefix(&format!("{prefix}/")) else {
            continue;
        };
        let path = dest.join(rel);
        let mode = e.header().mode().unwrap();
        match e.header().entry_type() {
            tar::EntryType::Directory => fs::create_dir_all(&path).unwrap(),
            tar::EntryType::Regular => {
                let mut data = Vec::new();
                e.read_to_end(&mut data).unwrap();
                fs::write(&path, data).unwrap();
            }
            tar::EntryType::Symlink => {
                std::os::unix::fs::symlink(e.link_name().unwrap().unwrap(), &path).unwrap();
                continue;
            }
            tar::EntryType::Link => {
                let first = e
                    .link_name()
                    .unwrap()
                    .unwrap()
                    .to_string_lossy()
                    .to_string();
                fs::hard_link(
                    dest.join(first.strip_prefix(&format!("{prefix}/")).unwrap()),
                    &path,
                )
                .unwrap();
                continue;
            }
            other => panic!("unexpected entry type {other:?} in {name}"),
        }
        fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
    }
}

/// The module path prefix `/cnb/<dist>/<escaped id>/<version>` (the layer's second entry).
fn module_prefix(layer: &[u8]) -> String {
    let mut ar = tar::Archive::new(layer);
    let second = ar.entries().unwrap().nth(1).unwrap().unwrap();
    second.path().unwrap().to_string_lossy().to_string()
}

/// The unescaped id and version whose label entry records `diff_id`.
fn module_for(labels: &serde_json::Value, diff_id: &str) -> (String, String) {
    for key in [
        "io.buildpacks.buildpack.layers",
        "io.buildpacks.extension.layers",
    ] {
        let Some(text) = labels[key].as_str() else {
            continue;
        };
        let modules: serde_json::Value = serde_json::from_str(text).unwrap();
        for (id, versions) in modules.as_object().unwrap() {
            for (version, info) in versions.as_object().unwrap() {
                if info["layerDiffID"] == diff_id {
                    return (id.clone(), version.clone());
                }
            }
        }
    }
    panic!("no module label names {diff_id}");
}

fn check_package(name: &str, expected_layers: usize) {
    let files = read_outer(&fixture(name));
    let (layers, labels) = layers(&files);
    assert_eq!(layers.len(), expected_layers);
    for (layer, diff_id) in layers {
        assert_eq!(
            Digest::of(&layer).to_string(),
            diff_id,
            "fixture layer is its diffID"
        );
        let (id, version) = module_for(&labels, &diff_id);
        let prefix = module_prefix(&layer);
        let parts: Vec<&str> = prefix.trim_start_matches('/').split('/').collect();
        assert_eq!(parts[3], version);
        assert_eq!(parts[2], id.replace('/', "_"));
        let tmp = tempfile::tempdir().unwrap();
        extract_subtree(&layer, &prefix, tmp.path());
        let spec = LayerSpec {
            dist_dir: parts[1],
            id: &id,
            version: &version,
            format: LayerFormat::Linux,
            root: tmp.path(),
            overlays: &[],
        };
        let ours = write_module_layer(&spec, Vec::new()).unwrap();
        assert_eq!(
            Digest::of(&ours).to_string(),
            diff_id,
            "{name}: {id}@{version}"
        );
        assert!(ours == layer, "{name}: {id}@{version}: bytes differ");
    }
}

#[test]
fn hello_universe_layers_are_reproduced() {
    check_package("hello-universe.cnb", 3);
}

#[test]
fn tree_extension_layer_is_reproduced() {
    check_package("tree-extension.cnb", 1);
}
