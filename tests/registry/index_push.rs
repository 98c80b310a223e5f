//! The image index `push` writes for a flat layout (several manifests in `index.json`) never
//! carries a platform without an architecture; read back from a real registry with skopeo.

use std::fs;
use std::path::Path;

use crate::support::registry::Registry;
use crate::support::{child, skopeo_raw};
use cnbpkg::layout::PackageReader;
use cnbpkg::oci::{Descriptor, Index};

#[test]
fn pushed_index_leaves_out_a_platform_without_architecture() {
    let reg = Registry::start_plain();
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path();
    let layout = tmp.path().join("flat");
    let sample = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/samples/hello-multi");
    let r = child::run(
        [
            "buildpack".as_ref(),
            "package".as_ref(),
            layout.as_os_str(),
            "--path".as_ref(),
            sample.as_os_str(),
            "--format".as_ref(),
            "layout".as_ref(),
        ],
        home,
        &[],
        None,
    );
    assert!(r.ok(), "{r}");

    // index.json lists both manifests itself; the amd64 one with an empty architecture, as
    // other tools (and earlier cnbpkg versions) wrote for an unknown one.
    let reader = PackageReader::open(&layout).unwrap();
    let root = reader.index().manifests[0].clone();
    let index: Index = serde_json::from_slice(&reader.read_verified(&root).unwrap()).unwrap();
    drop(reader);
    fs::remove_file(layout.join(root.digest.blob_path())).unwrap();
    let mut entries: Vec<Descriptor> = index.manifests.clone();
    let amd64 = entries
        .iter_mut()
        .find(|e| e.platform.as_ref().unwrap().architecture == "amd64")
        .unwrap();
    amd64.platform.as_mut().unwrap().architecture.clear();
    let amd64_digest = amd64.digest;
    fs::write(
        layout.join("index.json"),
        serde_json::to_vec(&Index::new(entries)).unwrap(),
    )
    .unwrap();

    let reference = format!("{}/index/flat:1", reg.host());
    let r = child::run(
        child::push_args(&layout, &reference, &["--insecure"]),
        home,
        &[],
        None,
    );
    assert!(r.ok(), "{r}\n{}", reg.log());
    let pushed: serde_json::Value = serde_json::from_slice(&skopeo_raw(&reference)).unwrap();
    let pushed_entries = pushed["manifests"].as_array().unwrap();
    assert_eq!(pushed_entries.len(), 2, "{pushed}");
    for e in pushed_entries {
        if e["digest"] == amd64_digest.to_string().as_str() {
            assert!(e.get("platform").is_none(), "{pushed}");
        } else {
            assert_eq!(
                e["platform"],
                serde_json::json!({"architecture": "arm64", "os": "linux"}),
                "{pushed}"
            );
        }
    }
}
