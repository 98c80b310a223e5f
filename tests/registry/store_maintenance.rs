//! `cnbpkg store list|remove|gc` on a store filled from the real registry (images put there
//! by skopeo): gc removes exactly the blobs no reference reaches and never touches what is not
//! a blob of the store; gc running while pulls fill the store loses nothing; a `.cnb` named as
//! the store is refused as read-only.

use std::fs;
use std::os::unix::fs::symlink;
use std::path::Path;
use std::process::Command;

use cnbpkg::digest::Digest;
use cnbpkg::layout::PackageReader;

use crate::support::registry::Registry;
use crate::support::*;

/// `cnbpkg ARGS... --store STORE`, its outcome.
fn cli(store: &Path, args: &[&str]) -> child::Outcome {
    let mut all = args.to_vec();
    all.extend(["--store", store.to_str().unwrap()]);
    child::run(&all, &child::fresh_home(), &[], None)
}

fn cli_ok(store: &Path, args: &[&str]) -> String {
    let r = cli(store, args);
    assert!(r.ok(), "{r}");
    r.stdout
}

/// Every blob digest of the package at `path` (a `.cnb` or a layout directory).
fn blobs_of(path: &Path) -> Vec<Digest> {
    let files = PackageReader::open(path).unwrap().files().unwrap();
    files
        .keys()
        .filter_map(|k| k.strip_prefix("blobs/sha256/"))
        .map(|h| format!("sha256:{h}").parse().unwrap())
        .collect()
}

/// Every blob `reference` reaches in the store, read and verified with skopeo's help: skopeo
/// copies the image out of the store, all platforms.
fn assert_readable(store: &Path, reference: &str, work: &Path) {
    let skopeo = require("skopeo", "skopeo");
    let copy = work.join(format!("copy-{}", Digest::of(reference.as_bytes()).short()));
    let _ = fs::remove_dir_all(&copy);
    run(Command::new(skopeo)
        .args(["copy", "--quiet", "--all"])
        .arg(format!("oci:{}:{reference}", store.display()))
        .arg(format!("oci:{}:x", copy.display())));
}

#[test]
fn list_remove_and_gc_keep_what_is_named_and_touch_nothing_else() {
    let reg = Registry::start_plain();
    let tmp = tempfile::tempdir().unwrap();
    let p = tmp.path();
    let multi = packages::multi(p, "multi", 71, 30_000);
    let single = packages::single(p, "single", 72, &[2000, 40_000]);
    let keep = format!("{}/bp/keep:1", reg.host());
    let drop = format!("{}/bp/drop:1", reg.host());
    skopeo_put(&multi, &keep, &["--all", "--preserve-digests"]);
    skopeo_put(&single, &drop, &["--all", "--preserve-digests"]);
    let store = p.join("store");
    cli_ok(&store, &["pull", "--insecure", &keep, &drop]);

    let listed: serde_json::Value =
        serde_json::from_str(&cli_ok(&store, &["store", "list", "--json"])).unwrap();
    let listed = listed.as_array().unwrap();
    assert_eq!(listed.len(), 2, "{listed:?}");
    assert_eq!(listed[0]["reference"], drop);
    assert_eq!(listed[1]["reference"], keep);
    let arches: Vec<&str> = listed[1]["platforms"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["architecture"].as_str().unwrap())
        .collect();
    assert_eq!(arches, ["amd64", "arm64"]);
    let multi_bytes: u64 = fs::metadata(&multi).unwrap().len();
    let size = listed[1]["size"].as_u64().unwrap();
    assert!(size > 60_000 && size < multi_bytes, "{size}");
    assert_eq!(
        listed[1]["mediaType"],
        "application/vnd.oci.image.index.v1+json"
    );
    let text = cli_ok(&store, &["store", "list"]);
    assert!(
        text.lines()
            .any(|l| l.starts_with(&keep) && l.contains("linux/amd64,linux/arm64")),
        "{text}"
    );

    // Things gc must leave alone, and garbage it must remove.
    let blobs = store.join("blobs/sha256");
    let outside = p.join("precious.txt");
    fs::write(&outside, "mine").unwrap();
    let linked = Digest::of(b"a link").hex();
    symlink(&outside, blobs.join(&linked)).unwrap();
    fs::write(blobs.join("notes.txt"), "unrelated").unwrap();
    let dir_named_like_a_blob = Digest::of(b"a directory").hex();
    fs::create_dir(blobs.join(&dir_named_like_a_blob)).unwrap();
    let orphan = b"an orphan blob";
    fs::write(blobs.join(Digest::of(orphan).hex()), orphan).unwrap();
    let downloads = store.join("downloads");
    fs::write(downloads.join(Digest::of(b"half").hex()), b"ha").unwrap();

    // An unknown reference is an error naming it, and nothing is removed.
    let unknown = format!("{}/bp/unknown:9", reg.host());
    let r = cli(&store, &["store", "remove", &drop, &unknown]);
    assert_eq!(r.code(), Some(2), "{r}");
    assert!(r.error_line().contains(&unknown), "{r}");
    assert!(!r.error_line().contains(&drop), "{r}");
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&cli_ok(&store, &["store", "list", "--json"]))
            .unwrap()
            .as_array()
            .unwrap()
            .len(),
        2
    );
    let removed: serde_json::Value =
        serde_json::from_str(&cli_ok(&store, &["store", "remove", "--json", &drop])).unwrap();
    assert_eq!(removed[0]["reference"], drop, "{removed}");
    assert_eq!(
        removed[0]["digest"],
        Digest::of(&skopeo_raw(&drop)).to_string()
    );
    let gc: serde_json::Value =
        serde_json::from_str(&cli_ok(&store, &["store", "gc", "--json"])).unwrap();

    // Removed: the single image's four blobs and the orphan; kept: every blob of the index.
    let single_blobs = blobs_of(&single);
    let multi_blobs = blobs_of(&multi);
    let mut expected: Vec<String> = single_blobs
        .iter()
        .chain(std::iter::once(&Digest::of(orphan)))
        .map(|d| d.to_string())
        .collect();
    expected.sort();
    let removed: Vec<String> = gc["removed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_str().unwrap().to_string())
        .collect();
    assert_eq!(removed, expected, "{gc}");
    assert_eq!(gc["kept"], multi_blobs.len(), "{gc}");
    assert_eq!(gc["downloadsRemoved"], 1, "{gc}");
    for d in &multi_blobs {
        assert!(store.join(d.blob_path()).is_file(), "{d} kept");
    }
    assert!(fs::symlink_metadata(blobs.join(&linked))
        .unwrap()
        .file_type()
        .is_symlink());
    assert_eq!(fs::read_to_string(&outside).unwrap(), "mine");
    assert!(blobs.join("notes.txt").is_file());
    assert!(blobs.join(&dir_named_like_a_blob).is_dir());
    assert_readable(&store, &keep, p);
    // Nothing left to collect.
    let again: serde_json::Value =
        serde_json::from_str(&cli_ok(&store, &["store", "gc", "--json"])).unwrap();
    assert_eq!(again["removed"].as_array().unwrap().len(), 0, "{again}");
}

#[test]
fn gc_running_while_pulls_fill_the_store_loses_nothing() {
    let reg = Registry::start_plain();
    let tmp = tempfile::tempdir().unwrap();
    let p = tmp.path();
    let multi = packages::multi(p, "multi", 73, 2_000_000);
    let reference = format!("{}/bp/busy:1", reg.host());
    skopeo_put(&multi, &reference, &["--all", "--preserve-digests"]);
    let store_path = p.join("store");
    let store = cnbpkg::store::Store::open_or_create(&store_path).unwrap();
    let expected = blobs_of(&multi).len();
    // Each round: the reference removed (its blobs unreachable), then pulled again while gc
    // runs over and over; the pull must end with every blob stored.
    for round in 0..4 {
        if round > 0 {
            store.remove_refs(std::slice::from_ref(&reference)).unwrap();
        }
        let pulling = child::spawn(
            [
                "pull",
                "--insecure",
                "--store",
                store_path.to_str().unwrap(),
                &reference,
            ],
            &child::fresh_home(),
            &[],
        );
        let done = std::sync::atomic::AtomicBool::new(false);
        std::thread::scope(|scope| {
            scope.spawn(|| {
                // Bounded: the pull ends (or fails the test) long before this runs out.
                for _ in 0..2000 {
                    if done.load(std::sync::atomic::Ordering::Relaxed) {
                        break;
                    }
                    store.gc().unwrap();
                }
            });
            let r = child::finish(pulling);
            done.store(true, std::sync::atomic::Ordering::Relaxed);
            assert!(r.ok(), "round {round}: {r}");
        });
        let entry = store
            .lookup(&reference)
            .unwrap()
            .expect("the reference is named");
        assert_eq!(entry.digest, packages::top(&multi).0.digest);
        let reader = PackageReader::open(&store_path).unwrap();
        let mut found = 0;
        for d in blobs_of(&multi) {
            let bytes = fs::read(store_path.join(d.blob_path()))
                .unwrap_or_else(|e| panic!("round {round}: blob {d} lost: {e}"));
            assert_eq!(Digest::of(&bytes), d);
            found += 1;
        }
        assert_eq!(found, expected);
        drop(reader);
    }
    assert_readable(&store_path, &reference, p);
}

#[test]
fn a_package_named_as_the_store_is_read_only() {
    let tmp = tempfile::tempdir().unwrap();
    let pkg = packages::single(tmp.path(), "one", 74, &[100]);
    let before = fs::read(&pkg).unwrap();
    for args in [
        &["pull", "--insecure", "127.0.0.1:1/a:1"][..],
        &["store", "remove", "127.0.0.1:1/a:1"][..],
        &["store", "gc"][..],
    ] {
        let r = cli(&pkg, args);
        assert_eq!(r.code(), Some(2), "{args:?}: {r}");
        assert!(r.error_line().contains("read-only store"), "{args:?}: {r}");
    }
    assert_eq!(fs::read(&pkg).unwrap(), before, "the package is untouched");
}
