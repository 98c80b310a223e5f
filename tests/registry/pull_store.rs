//! `cnbpkg pull` from the real distribution registry into the store, images put there by
//! skopeo: digests kept byte for byte (OCI index, Docker manifest), the store readable by
//! skopeo, a second pull downloading nothing, `--platform` subsets.

use std::path::Path;
use std::process::Command;

use cnbpkg::digest::Digest;

use crate::support::registry::Registry;
use crate::support::{child, packages, require, run, skopeo_put, skopeo_raw};

/// `skopeo inspect --raw oci:STORE:REF`.
fn skopeo_store_raw(store: &Path, reference: &str) -> Vec<u8> {
    let skopeo = require("skopeo", "skopeo");
    run(Command::new(skopeo)
        .arg("inspect")
        .arg("--raw")
        .arg(format!("oci:{}:{reference}", store.display())))
    .stdout
}

/// The store's `index.json` entry named `reference`.
fn store_entry(store: &Path, reference: &str) -> serde_json::Value {
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(store.join("index.json")).unwrap()).unwrap();
    index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["annotations"]["org.opencontainers.image.ref.name"] == reference)
        .unwrap_or_else(|| panic!("no entry {reference} in {index}"))
        .clone()
}

fn pull(store: &Path, args: &[&str]) -> serde_json::Value {
    let mut all = vec!["pull", "--insecure", "--json", "--store"];
    all.push(store.to_str().unwrap());
    all.extend_from_slice(args);
    let r = child::run(&all, &child::fresh_home(), &[], None);
    assert!(r.ok(), "{r}");
    serde_json::from_str(&r.stdout).unwrap_or_else(|e| panic!("pull --json: {e}\n{r}"))
}

/// Blob GETs the registry answered for `repository` so far.
fn blob_gets(reg: &Registry, repository: &str) -> usize {
    let needle = format!("\"GET /v2/{repository}/blobs/");
    reg.log().matches(&needle).count()
}

#[test]
fn an_index_is_stored_byte_for_byte_and_a_second_pull_downloads_nothing() {
    let reg = Registry::start_plain();
    let tmp = tempfile::tempdir().unwrap();
    let pkg = packages::multi(tmp.path(), "pkg", 41, 150_000);
    let reference = format!("{}/bp/multi:1", reg.host());
    skopeo_put(&pkg, &reference, &["--all", "--preserve-digests"]);
    let served = skopeo_raw(&reference);
    let store = tmp.path().join("store");

    let report = pull(&store, &[&reference]);
    let image = &report["images"][0];
    assert_eq!(image["reference"], reference);
    assert_eq!(image["digest"], Digest::of(&served).to_string());
    assert_eq!(image["manifests"].as_array().unwrap().len(), 2);
    // Two layers of each platform (one shared) and two configs.
    assert_eq!(report["downloaded"], 5, "{report}");
    assert_eq!(skopeo_store_raw(&store, &reference), served);
    // skopeo reads the images themselves out of the store, blobs and all.
    let skopeo = require("skopeo", "skopeo");
    for arch in ["amd64", "arm64"] {
        let copy = tmp.path().join(format!("copy-{arch}"));
        run(Command::new(&skopeo)
            .args(["copy", "--quiet", "--override-arch", arch])
            .arg(format!("oci:{}:{reference}", store.display()))
            .arg(format!("oci:{}:x", copy.display())));
    }

    let before = blob_gets(&reg, "bp/multi");
    let again = pull(&store, &[&reference]);
    assert_eq!(again["downloaded"], 0, "{again}");
    assert_eq!(again["present"], 5, "{again}");
    assert_eq!(
        blob_gets(&reg, "bp/multi"),
        before,
        "no blob is fetched again"
    );
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(store.join("index.json")).unwrap()).unwrap();
    assert_eq!(index["manifests"].as_array().unwrap().len(), 1, "{index}");
}

#[test]
fn docker_media_types_are_kept_and_platforms_subset() {
    let reg = Registry::start_plain();
    let tmp = tempfile::tempdir().unwrap();
    let single = packages::single(tmp.path(), "one", 43, &[3000, 70_000]);
    let docker_ref = format!("{}/bp/docker:2", reg.host());
    skopeo_put(&single, &docker_ref, &["--format", "v2s2"]);
    let served = skopeo_raw(&docker_ref);
    let multi = packages::multi(tmp.path(), "pkg", 44, 20_000);
    let multi_ref = format!("{}/bp/multi:3", reg.host());
    skopeo_put(&multi, &multi_ref, &["--all", "--preserve-digests"]);
    let store = tmp.path().join("store");

    let report = pull(&store, &[&docker_ref]);
    let docker = &report["images"][0];
    assert_eq!(docker["digest"], Digest::of(&served).to_string());
    assert_eq!(
        docker["mediaType"],
        "application/vnd.docker.distribution.manifest.v2+json"
    );
    // skopeo's OCI layouts list only OCI media types (it converts a Docker manifest it copies
    // into one); the store keeps what the registry served, as it served it.
    let entry = store_entry(&store, &docker_ref);
    assert_eq!(
        entry["mediaType"],
        "application/vnd.docker.distribution.manifest.v2+json"
    );
    let blob = store.join(format!(
        "blobs/sha256/{}",
        entry["digest"]
            .as_str()
            .unwrap()
            .trim_start_matches("sha256:")
    ));
    assert_eq!(std::fs::read(blob).unwrap(), served);
    // One platform of an index: that platform's own manifest, as the registry lists it.
    let index: serde_json::Value = serde_json::from_slice(&skopeo_raw(&multi_ref)).unwrap();
    let arm = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["platform"]["architecture"] == "arm64")
        .unwrap();
    let report = pull(&store, &[&multi_ref, "--platform", "linux/arm64"]);
    assert_eq!(report["images"][0]["digest"], arm["digest"]);
    let stored = skopeo_store_raw(&store, &multi_ref);
    assert_eq!(Digest::of(&stored).to_string(), arm["digest"]);
}

#[test]
fn the_default_store_is_under_the_cache_directory() {
    let reg = Registry::start_plain();
    let tmp = tempfile::tempdir().unwrap();
    let single = packages::single(tmp.path(), "one", 45, &[500]);
    let reference = format!("{}/bp/one:1", reg.host());
    skopeo_put(&single, &reference, &[]);
    let home = child::fresh_home();
    let r = child::run(
        ["pull", "--insecure", &reference],
        &home,
        &[("XDG_CACHE_HOME", home.join("cache").as_os_str())],
        None,
    );
    assert!(r.ok(), "{r}");
    let store = home.join("cache/cnbpkg/store");
    assert_eq!(skopeo_store_raw(&store, &reference), skopeo_raw(&reference));
    let digest = Digest::of(&skopeo_raw(&reference));
    assert_eq!(r.stdout.trim(), format!("{reference}@{digest}"));
    let other = tmp.path().join("named");
    let r = child::run(
        ["pull", "--insecure", &reference],
        &child::fresh_home(),
        &[("CNBPKG_STORE", other.as_os_str())],
        None,
    );
    assert!(r.ok(), "{r}");
    assert!(other.join("index.json").is_file());
}

#[test]
fn two_processes_pulling_into_one_store_keep_both_references() {
    let reg = Registry::start_plain();
    let tmp = tempfile::tempdir().unwrap();
    let pkg = packages::multi(tmp.path(), "pkg", 47, 300_000);
    let first = format!("{}/bp/multi:1", reg.host());
    let second = format!("{}/bp/other:1", reg.host());
    skopeo_put(&pkg, &first, &["--all", "--preserve-digests"]);
    skopeo_put(&pkg, &second, &["--all", "--preserve-digests"]);
    let store = tmp.path().join("store");
    let store_arg = store.to_str().unwrap();
    // Both start on an empty store and download the same blobs at once.
    let children: Vec<_> = [&first, &second]
        .iter()
        .map(|r| {
            child::spawn(
                ["pull", "--insecure", "--store", store_arg, r.as_str()],
                &child::fresh_home(),
                &[],
            )
        })
        .collect();
    for c in children {
        let r = child::finish(c);
        assert!(r.ok(), "{r}");
    }
    let served = skopeo_raw(&first);
    assert_eq!(skopeo_store_raw(&store, &first), served);
    assert_eq!(skopeo_store_raw(&store, &second), served);
    for entry in std::fs::read_dir(store.join("blobs/sha256")).unwrap() {
        let entry = entry.unwrap();
        let bytes = std::fs::read(entry.path()).unwrap();
        assert_eq!(
            Digest::of(&bytes).hex(),
            entry.file_name().into_string().unwrap()
        );
    }
}

#[test]
fn usage_errors_name_the_flag_and_exit_2() {
    let home = child::fresh_home();
    let fails = |args: &[&str], code: i32| {
        let r = child::run(args, &home, &[], None);
        assert_eq!(r.code(), Some(code), "{r}");
        r.error_line().to_string()
    };
    let e = fails(&["pull", "--jobs", "0", "127.0.0.1:1/a:1"], 2);
    assert!(e.contains("--jobs"), "{e}");
    let e = fails(&["pull", "--platform", "a/b/c/d", "127.0.0.1:1/a:1"], 2);
    assert!(e.contains("--platform"), "{e}");
    let e = fails(&["pull", "127.0.0.1:1/a:bad:tag:"], 2);
    assert!(e.contains("invalid reference"), "{e}");
    // A directory that is not a store is never filled.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("mine.txt"), "x").unwrap();
    let e = fails(
        &[
            "pull",
            "--insecure",
            "--store",
            dir.path().to_str().unwrap(),
            "127.0.0.1:1/a:1",
        ],
        1,
    );
    assert!(e.contains("is not an image store"), "{e}");
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
}
