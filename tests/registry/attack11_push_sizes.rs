//! A push copies each blob once, however many manifests list it: every one of those
//! descriptors must still give the blob's true size, or the registry would be left serving a
//! manifest that no client can pull. Such a package is refused before anything is sent.

use std::fs;
use std::path::Path;

use serde_json::{json, Value};

use crate::support::registry::Registry;
use crate::support::{child, minimal_buildpack};

fn read_blob(layout: &Path, digest: &str) -> Vec<u8> {
    let hex = digest.strip_prefix("sha256:").unwrap();
    fs::read(layout.join("blobs/sha256").join(hex)).unwrap()
}

fn put(layout: &Path, bytes: &[u8]) -> String {
    let digest = cnbpkg::digest::Digest::of(bytes);
    fs::write(layout.join(digest.blob_path()), bytes).unwrap();
    digest.to_string()
}

#[test]
fn a_second_descriptor_lying_about_a_shared_blob_s_size_is_refused_before_sending() {
    let reg = Registry::start_plain();
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path();
    let bp = tmp.path().join("bp");
    minimal_buildpack(&bp, "acme/sizes", "1.0.0", "");
    let layout = tmp.path().join("layout");
    let r = child::run(
        [
            "buildpack".as_ref(),
            "package".as_ref(),
            layout.as_os_str(),
            "--path".as_ref(),
            bp.as_os_str(),
            "--format".as_ref(),
            "layout".as_ref(),
            "--target".as_ref(),
            "linux/amd64".as_ref(),
        ],
        home,
        &[],
        None,
    );
    assert!(r.ok(), "{r}");
    let index: Value =
        serde_json::from_slice(&fs::read(layout.join("index.json")).unwrap()).unwrap();
    let top = index["manifests"][0].clone();
    let doc: Value =
        serde_json::from_slice(&read_blob(&layout, top["digest"].as_str().unwrap())).unwrap();

    // Two images of one config and one layer, each listed with its platform (so a push reads
    // neither config): the second gives the config's size (then the layer's) one byte too large.
    for field in ["config", "layer"] {
        let image = |extra: u64, arch: &str| {
            let mut m = doc.clone();
            let d = if field == "config" {
                &mut m["config"]
            } else {
                &mut m["layers"][0]
            };
            d["size"] = json!(d["size"].as_u64().unwrap() + extra);
            m["annotations"] = json!({"arch": arch});
            let bytes = serde_json::to_vec(&m).unwrap();
            json!({
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": put(&layout, &bytes),
                "size": bytes.len(),
                "platform": {"os": "linux", "architecture": arch},
            })
        };
        let index = json!({
            "schemaVersion": 2,
            "manifests": [image(0, "amd64"), image(1, "arm64")],
        });
        fs::write(
            layout.join("index.json"),
            serde_json::to_vec(&index).unwrap(),
        )
        .unwrap();
        let shared = if field == "config" {
            &doc["config"]
        } else {
            &doc["layers"][0]
        };
        let size = shared["size"].as_u64().unwrap();

        let repo = format!("sizes-{field}");
        let reference = format!("{}/{repo}:1", reg.host());
        let r = child::run(
            child::push_args(&layout, &reference, &["--insecure"]),
            home,
            &[],
            None,
        );
        assert_eq!(r.code(), Some(1), "{field}: {r}");
        assert_eq!(
            r.error_line(),
            format!(
                "error: blob {} is {size} bytes in the package, its descriptor says {}",
                shared["digest"].as_str().unwrap(),
                size + 1
            ),
            "{field}"
        );
        // Nothing was sent: the registry has not heard of the repository.
        let repos = reg.storage().join("docker/registry/v2/repositories");
        assert!(!repos.join(&repo).exists(), "{field}: {}", reg.log());
    }
}
