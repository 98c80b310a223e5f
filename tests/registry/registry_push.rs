//! `cnbpkg push` to the real distribution registry: several tags and references in one push,
//! `--digest-file`, a package whose nested indexes fan out, and self-signed certificates
//! (given with `--ca-cert` or found in `certs.d` under `$HOME`).

use crate::support;
use std::path::{Path, PathBuf};
use std::process::Command;

use cnbpkg::internals::canonical;
use cnbpkg::internals::LayoutWriter;
use cnbpkg::layout::OutputFormat;
use cnbpkg::oci::{self, Index};

use crate::support::registry::{Auth, Config, Registry};
use crate::support::{child, packages, require, run, skopeo_raw};

fn json(r: &child::Outcome) -> serde_json::Value {
    assert!(r.ok(), "{r}");
    serde_json::from_str(&r.stdout).unwrap_or_else(|e| panic!("push --json: {e}\n{r}"))
}

#[test]
fn several_tags_and_references_in_one_push() {
    let reg = Registry::start_plain();
    let other = Registry::start_plain();
    let tmp = tempfile::tempdir().unwrap();
    let pkg = packages::multi(tmp.path(), "pkg", 31, 120_000);
    let (top, top_bytes) = packages::top(&pkg);
    let digest_file = tmp.path().join("digest.txt");
    let first = format!("{}/rel/app:1.2.3", reg.host());
    let second = format!("{}/mirror/app:1.2.3", reg.host());
    let mut args = child::push_args(
        &pkg,
        &first,
        &["--insecure", "--tag", "1.2", "--tag", "latest", "--json"],
    );
    args.push(second.clone().into());
    // Another registry: its own client, its own uploads.
    let third = format!("{}/elsewhere/app:9", other.host());
    args.push(third.clone().into());
    args.push("--digest-file".into());
    args.push(digest_file.clone().into());
    let v = json(&child::run(args, tmp.path(), &[], None));
    assert_eq!(v["digest"], top.digest.to_string().as_str(), "{v}");
    // Five blobs uploaded once, then mounted into the second repository; the other registry
    // gets its own five.
    assert_eq!(v["uploaded"], 10, "{v}");
    assert_eq!(v["mounted"], 5, "{v}");
    let refs: Vec<String> = v["references"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_str().unwrap().to_string())
        .collect();
    for repo in ["rel/app", "mirror/app"] {
        for tag in ["1.2.3", "1.2", "latest"] {
            let r = format!("{}/{repo}:{tag}", reg.host());
            assert!(refs.contains(&r), "{r} not in {refs:?}");
            assert_eq!(skopeo_raw(&r), top_bytes, "{r}");
        }
    }
    for tag in ["9", "1.2", "latest"] {
        let r = format!("{}/elsewhere/app:{tag}", other.host());
        assert!(refs.contains(&r), "{r} not in {refs:?}");
        assert_eq!(skopeo_raw(&r), top_bytes, "{r}");
    }
    assert_eq!(
        std::fs::read_to_string(&digest_file).unwrap(),
        format!("{}\n", top.digest)
    );
    // Each manifest went to each repository once: count PUTs in the access log.
    let log = reg.log();
    let puts = |repo: &str| {
        log.lines()
            .filter(|l| l.contains(&format!("\"PUT /v2/{repo}/manifests/sha256:")))
            .count()
    };
    assert_eq!(puts("rel/app"), 2, "{log}");
    assert_eq!(puts("mirror/app"), 2, "{log}");

    // A bad --tag is a usage error before anything is sent.
    let r = child::run(
        child::push_args(&pkg, &first, &["--insecure", "--tag", "bad tag"]),
        tmp.path(),
        &[],
        None,
    );
    assert_eq!(r.code(), Some(2), "{r}");
}

/// A package whose index nests 8 levels, each listing the next 10 times (10^8 paths to one
/// manifest, a few KiB in all).
fn fan_out(dir: &Path) -> PathBuf {
    let path = dir.join("fan.cnb");
    let small = packages::single(dir, "one", 41, &[3000]);
    let (_, leaf_bytes) = packages::top(&small);
    let reader = cnbpkg::layout::PackageReader::open(&small).unwrap();
    let mut w = LayoutWriter::create(&path, OutputFormat::File).unwrap();
    let manifest: oci::Manifest = serde_json::from_slice(&leaf_bytes).unwrap();
    for b in std::iter::once(&manifest.config).chain(manifest.layers.iter()) {
        let mut r = reader.open_blob(&b.digest).unwrap();
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(&mut r, &mut bytes).unwrap();
        w.put_bytes(&b.media_type, &bytes).unwrap();
    }
    let mut leaf = w.put_bytes(oci::MEDIA_TYPE_MANIFEST, &leaf_bytes).unwrap();
    leaf.platform = Some(packages::platform("linux", "amd64"));
    let mut below = leaf;
    for _ in 0..8 {
        let index = Index::new(vec![below.clone(); 10]);
        below = w
            .put_bytes(oci::MEDIA_TYPE_INDEX, &canonical(&index))
            .unwrap();
    }
    w.finish(&Index::new(vec![below])).unwrap()
}

#[test]
fn fanned_out_nested_indexes_push_in_small_memory() {
    let reg = Registry::start_plain();
    let tmp = tempfile::tempdir().unwrap();
    let pkg = fan_out(tmp.path());
    let (top, top_bytes) = packages::top(&pkg);
    let reference = format!("{}/fan/app:1", reg.host());
    let r = child::run(
        child::push_args(&pkg, &reference, &["--insecure", "--json"]),
        tmp.path(),
        &[],
        None,
    );
    let v = json(&r);
    assert_eq!(v["digest"], top.digest.to_string().as_str(), "{v}");
    assert_eq!(v["manifests"].as_array().unwrap().len(), 1, "{v}");
    assert_eq!(skopeo_raw(&reference), top_bytes);
}

/// A certificate made as Docker's documentation makes one: self-signed, `CA:TRUE`.
fn docker_doc_cert(dir: &Path, san: &str) -> (PathBuf, PathBuf) {
    let openssl = require("openssl", "openssl");
    let key = dir.join("domain.key");
    let crt = dir.join("domain.crt");
    run(Command::new(openssl)
        .args(["req", "-x509", "-newkey", "rsa:4096", "-nodes", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&crt)
        .args(["-days", "2", "-subj", "/CN=registry.test", "-addext"])
        .arg(format!("subjectAltName = {san}")));
    (crt, key)
}

/// skopeo reads back with only the certificate trusted (its cert dir must hold no key).
fn skopeo_tls(reference: &str, crt: &Path) -> Vec<u8> {
    let skopeo = require("skopeo", "skopeo");
    let cert_dir = crt.parent().unwrap().join("skopeo");
    let _ = std::fs::create_dir(&cert_dir);
    std::fs::copy(crt, cert_dir.join("ca.crt")).unwrap();
    run(Command::new(skopeo)
        .args(["inspect", "--raw"])
        .arg(format!("--cert-dir={}", cert_dir.display()))
        .arg(format!("docker://{reference}")))
    .stdout
}

#[test]
fn self_signed_ca_certificate_given_or_in_certs_d() {
    let tmp = tempfile::tempdir().unwrap();
    let certs = tmp.path().join("certs");
    std::fs::create_dir(&certs).unwrap();
    let (crt, key) = docker_doc_cert(&certs, "IP:127.0.0.1");
    let reg = Registry::start(Config {
        tls: Some((crt.clone(), key)),
        auth: Auth::None,
    });
    let pkg = packages::multi(tmp.path(), "pkg", 51, 50_000);
    let (_, top_bytes) = packages::top(&pkg);
    let home = tmp.path().join("home");
    std::fs::create_dir(&home).unwrap();

    // Not trusted: refused, naming the problem.
    let reference = format!("{}/tls/app:1", reg.host());
    let r = child::run(child::push_args(&pkg, &reference, &[]), &home, &[], None);
    assert_eq!(r.code(), Some(1), "{r}");
    let e = r.error_line();
    assert!(e.contains("not trusted") && e.contains("--ca-cert"), "{r}");

    // The exact certificate given with --ca-cert.
    let mut extra = vec!["--ca-cert".to_string(), crt.display().to_string()];
    extra.push("--quiet".into());
    let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
    let r = child::run(child::push_args(&pkg, &reference, &extra), &home, &[], None);
    assert!(r.ok(), "{r}\n{}", reg.log());
    assert_eq!(skopeo_tls(&reference, &crt), top_bytes);

    // The same certificate in $HOME/.config/containers/certs.d/HOST:PORT/.
    let d = home.join(".config/containers/certs.d").join(reg.host());
    std::fs::create_dir_all(&d).unwrap();
    std::fs::copy(&crt, d.join("ca.crt")).unwrap();
    let reference = format!("{}/tls/from-certs-d:1", reg.host());
    let r = child::run(child::push_args(&pkg, &reference, &[]), &home, &[], None);
    assert!(r.ok(), "{r}\n{}", reg.log());
    assert!(r.stderr.contains("ca.crt"), "{r}");
    assert_eq!(skopeo_tls(&reference, &crt), top_bytes);
}

#[test]
fn exact_certificate_still_needs_the_right_name() {
    let tmp = tempfile::tempdir().unwrap();
    let certs = tmp.path().join("certs");
    std::fs::create_dir(&certs).unwrap();
    // Made for another address: trusted exactly, but not for 127.0.0.1.
    let (crt, key) = docker_doc_cert(&certs, "IP:127.0.0.2");
    let reg = Registry::start(Config {
        tls: Some((crt.clone(), key)),
        auth: Auth::None,
    });
    let pkg = packages::single(tmp.path(), "pkg", 52, &[1000]);
    let reference = format!("{}/tls/app:1", reg.host());
    let ca = crt.display().to_string();
    let r = child::run(
        child::push_args(&pkg, &reference, &["--ca-cert", &ca]),
        tmp.path(),
        &[],
        None,
    );
    assert_eq!(r.code(), Some(1), "{r}");
    r.error_line();
}

#[test]
fn an_index_listing_one_manifest_thousands_of_times_is_refused_before_sending() {
    let tmp = tempfile::tempdir().unwrap();
    let small = packages::single(tmp.path(), "one", 61, &[1000]);
    let (_, leaf_bytes) = packages::top(&small);
    let reader = cnbpkg::layout::PackageReader::open(&small).unwrap();
    let path = tmp.path().join("many.cnb");
    let mut w = LayoutWriter::create(&path, OutputFormat::File).unwrap();
    let manifest: oci::Manifest = serde_json::from_slice(&leaf_bytes).unwrap();
    for b in std::iter::once(&manifest.config).chain(manifest.layers.iter()) {
        let mut r = reader.open_blob(&b.digest).unwrap();
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(&mut r, &mut bytes).unwrap();
        w.put_bytes(&b.media_type, &bytes).unwrap();
    }
    let leaf = w.put_bytes(oci::MEDIA_TYPE_MANIFEST, &leaf_bytes).unwrap();
    let index = Index::new(vec![leaf; 5000]);
    let top = w
        .put_bytes(oci::MEDIA_TYPE_INDEX, &canonical(&index))
        .unwrap();
    let pkg = w.finish(&Index::new(vec![top])).unwrap();
    // Nothing listens there: the package must be refused before any connection.
    let reference = format!("127.0.0.1:{}/x/y:1", support::registry::free_port());
    let r = child::run(
        child::push_args(&pkg, &reference, &["--insecure"]),
        tmp.path(),
        &[],
        None,
    );
    assert_eq!(r.code(), Some(1), "{r}");
    let e = r.error_line();
    assert!(e.contains("more than 4096 images"), "{r}");
    assert!(e.contains("many.cnb"), "{r}");
}
