//! `cnbpkg pull --output`: registry images (put there by skopeo) written into one archive,
//! judged by independent readers: skopeo's `oci-archive:` sees the registry's very digest,
//! umoci unpacks a single-platform one, `cnbpkg verify` passes, the archive serves as a
//! composite's dependency, and several references give a layout naming each.

use std::fs;
use std::path::Path;
use std::process::Command;

use cnbpkg::digest::Digest;
use cnbpkg::layout::PackageReader;

use crate::support::registry::Registry;
use crate::support::*;

/// `skopeo inspect --raw oci-archive:FILE[:REF]`.
fn skopeo_archive_raw(archive: &Path, reference: Option<&str>) -> Vec<u8> {
    let skopeo = require("skopeo", "skopeo");
    let mut name = format!("oci-archive:{}", archive.display());
    if let Some(r) = reference {
        name.push(':');
        name.push_str(r);
    }
    run(Command::new(skopeo).args(["inspect", "--raw"]).arg(name)).stdout
}

/// `cnbpkg buildpack package` of hello-multi (`targets` as --target gives them) into `out`.
fn package_hello(dir: &Path, out: &str, targets: &[&str]) -> std::path::PathBuf {
    let mut args = vec![
        "buildpack".to_string(),
        "package".into(),
        out.into(),
        "--path".into(),
        sample("hello-multi").display().to_string(),
    ];
    for t in targets {
        args.extend(["--target".to_string(), t.to_string()]);
    }
    ok(cnbpkg_in(dir, args));
    dir.join(out)
}

/// `cnbpkg pull --insecure --json --store STORE ARGS...`, asserting success.
fn pull(store: &Path, args: &[&str]) -> serde_json::Value {
    let mut all = vec!["pull", "--insecure", "--json", "--store"];
    all.push(store.to_str().unwrap());
    all.extend_from_slice(args);
    let r = child::run(&all, &child::fresh_home(), &[], None);
    assert!(r.ok(), "{r}");
    serde_json::from_str(&r.stdout).unwrap_or_else(|e| panic!("pull --json: {e}\n{r}"))
}

fn blob_gets(reg: &Registry) -> usize {
    reg.log().matches("/blobs/sha256:").count()
}

#[test]
fn one_multi_platform_reference_gives_a_package_skopeo_and_verify_read() {
    let reg = Registry::start_plain();
    let tmp = tempfile::tempdir().unwrap();
    let p = tmp.path();
    let pkg = package_hello(p, "hello.cnb", &[]);
    let reference = format!("{}/bp/hello:1", reg.host());
    skopeo_put(&pkg, &reference, &["--all", "--preserve-digests"]);
    let served = skopeo_raw(&reference);
    let store = p.join("store");
    let out = p.join("pulled.cnb");

    let report = pull(&store, &["--output", out.to_str().unwrap(), &reference]);
    assert_eq!(report["output"], out.to_str().unwrap());
    assert_eq!(
        report["images"][0]["digest"],
        Digest::of(&served).to_string()
    );
    // The package's shape: index.json lists the registry's index, byte for byte.
    assert_eq!(skopeo_archive_raw(&out, None), served);
    let reader = PackageReader::open(&out).unwrap();
    let entries = &reader.index().manifests;
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].digest, Digest::of(&served));
    assert_eq!(
        entries[0].annotations["org.opencontainers.image.ref.name"],
        reference
    );
    // Every blob is there once, and nothing else.
    let files = reader.files().unwrap();
    let blobs = files.keys().filter(|k| k.starts_with("blobs/")).count();
    assert_eq!(files.len(), blobs + 2, "{files:?}");
    // The very bytes `buildpack package` wrote are the blobs (same digests).
    let original = PackageReader::open(&pkg).unwrap().files().unwrap();
    let original_blobs: Vec<_> = original
        .keys()
        .filter(|k| k.starts_with("blobs/"))
        .collect();
    assert_eq!(
        files
            .keys()
            .filter(|k| k.starts_with("blobs/"))
            .collect::<Vec<_>>(),
        original_blobs
    );
    ok(cnbpkg([
        "verify",
        out.to_str().unwrap(),
        "--expect-platform",
        "linux/amd64,linux/arm64",
    ]));
    ok(cnbpkg(["inspect", out.to_str().unwrap()]));

    // A second run downloads nothing and writes the same bytes.
    let before = blob_gets(&reg);
    let again = p.join("again.cnb");
    let report = pull(&store, &["--output", again.to_str().unwrap(), &reference]);
    assert_eq!(report["downloaded"], 0, "{report}");
    assert_eq!(blob_gets(&reg), before, "no blob is fetched again");
    assert_eq!(fs::read(&again).unwrap(), fs::read(&out).unwrap());

    // The archive is a composite's dependency, as the package it came from is.
    write_file(
        &p.join("meta/buildpack.toml"),
        "api = \"0.10\"\n\n[buildpack]\nid = \"ex/meta\"\nversion = \"1.0.0\"\n\n[[order]]\n[[order.group]]\nid = \"examples/hello-multi\"\nversion = \"0.1.0\"\n",
        0o644,
    );
    fs::write(
        p.join("package.toml"),
        "[buildpack]\nuri = \"meta\"\n\n[[dependencies]]\nuri = \"pulled.cnb\"\n\n[[targets]]\nos = \"linux\"\narch = \"amd64\"\n\n[[targets]]\nos = \"linux\"\narch = \"arm64\"\n",
    )
    .unwrap();
    ok(cnbpkg_in(
        p,
        [
            "buildpack",
            "package",
            "meta.cnb",
            "--config",
            "package.toml",
        ],
    ));
    ok(cnbpkg([
        "verify",
        p.join("meta.cnb").to_str().unwrap(),
        "--expect-platform",
        "linux/amd64,linux/arm64",
    ]));
}

#[test]
fn one_single_platform_reference_is_unpacked_by_umoci() {
    let umoci = require("umoci", "umoci");
    let reg = Registry::start_plain();
    let tmp = tempfile::tempdir().unwrap();
    let p = tmp.path();
    let pkg = package_hello(p, "amd.cnb", &["linux/amd64"]);
    let reference = format!("{}/bp/amd:1", reg.host());
    skopeo_put(&pkg, &reference, &["--all", "--preserve-digests"]);
    let served = skopeo_raw(&reference);
    let out = p.join("amd-pulled.cnb");
    pull(
        &p.join("store"),
        &["--output", out.to_str().unwrap(), &reference],
    );
    assert_eq!(skopeo_archive_raw(&out, None), served);
    let entry = PackageReader::open(&out).unwrap().index().manifests[0].clone();
    assert_eq!(entry.platform.as_ref().unwrap().architecture, "amd64");
    // umoci reads the layout itself, by the ref name index.json gives the manifest.
    let layout = p.join("layout");
    fs::create_dir_all(&layout).unwrap();
    run(Command::new("tar")
        .arg("-xf")
        .arg(&out)
        .arg("-C")
        .arg(&layout));
    let bundle = p.join("bundle");
    run(Command::new(umoci)
        .args(["unpack", "--rootless", "--image"])
        .arg(format!("{}:{reference}", layout.display()))
        .arg(&bundle));
    let build = bundle.join("rootfs/cnb/buildpacks/examples_hello-multi/0.1.0/bin/build");
    assert!(
        fs::read_to_string(&build).unwrap().contains("amd64"),
        "the amd64 build"
    );
    ok(cnbpkg(["verify", out.to_str().unwrap()]));
}

#[test]
fn several_references_give_a_layout_naming_each() {
    let reg = Registry::start_plain();
    let tmp = tempfile::tempdir().unwrap();
    let p = tmp.path();
    let multi = packages::multi(p, "multi", 61, 40_000);
    let single = packages::single(p, "single", 62, &[3000, 50_000]);
    let first = format!("{}/bp/multi:1", reg.host());
    let second = format!("{}/bp/single:2", reg.host());
    let third = format!("{}/bp/same:3", reg.host());
    skopeo_put(&multi, &first, &["--all", "--preserve-digests"]);
    skopeo_put(&single, &second, &["--all", "--preserve-digests"]);
    skopeo_put(&multi, &third, &["--all", "--preserve-digests"]);
    let out = p.join("deps.tar");
    pull(
        &p.join("store"),
        &["--output", out.to_str().unwrap(), &second, &first, &third],
    );
    let reader = PackageReader::open(&out).unwrap();
    let names: Vec<&str> = reader
        .index()
        .manifests
        .iter()
        .map(|d| d.annotations["org.opencontainers.image.ref.name"].as_str())
        .collect();
    let mut sorted = vec![first.as_str(), second.as_str(), third.as_str()];
    sorted.sort();
    assert_eq!(names, sorted, "one entry per reference, in reference order");
    for r in [&first, &second, &third] {
        assert_eq!(skopeo_archive_raw(&out, Some(r)), skopeo_raw(r), "{r}");
    }
    // The multi-platform image named twice is stored once: 2 manifests, 2 configs, 3 layers
    // and the index, plus the single image's manifest, config and 2 layers.
    let files = reader.files().unwrap();
    assert_eq!(
        files.keys().filter(|k| k.starts_with("blobs/")).count(),
        8 + 4,
        "{files:?}"
    );
}

#[test]
fn output_inside_the_store_or_a_read_only_store_is_refused() {
    let home = child::fresh_home();
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("store");
    let inside = store.join("x.cnb");
    fs::create_dir_all(&store).unwrap();
    let r = child::run(
        [
            "pull",
            "--insecure",
            "--store",
            store.to_str().unwrap(),
            "--output",
            inside.to_str().unwrap(),
            "127.0.0.1:1/a:1",
        ],
        &home,
        &[],
        None,
    );
    assert_eq!(r.code(), Some(2), "{r}");
    assert!(r.error_line().contains("inside the store"), "{r}");
    assert!(!inside.exists());
}
