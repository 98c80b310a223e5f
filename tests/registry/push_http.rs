//! Push over plain HTTP (`insecure`) to a real distribution registry; skopeo reads back.

use std::process::Command;

use cnbpkg::layout::OutputFormat;
use cnbpkg::oci;
use cnbpkg::registry::PushOptions;

use crate::support::packages;
use crate::support::registry::Registry;
use crate::support::{push, require, run, settings, skopeo_raw};

fn opts(package: &std::path::Path, reference: String) -> PushOptions {
    let mut o = crate::support::push_options(package, reference);
    o.jobs = 3;
    o
}

fn skopeo_copy_all(reference: &str, dest: &std::path::Path) {
    let skopeo = require("skopeo", "skopeo");
    run(Command::new(skopeo)
        .args(["copy", "--all", "--src-tls-verify=false"])
        .arg(format!("docker://{reference}"))
        .arg(format!("oci:{}:copied", dest.display())));
}

#[test]
fn single_and_multi_platform_land_byte_for_byte() {
    let reg = Registry::start_plain();
    let tmp = tempfile::tempdir().unwrap();

    // Single platform: a manifest at the tag.
    let single = packages::single(tmp.path(), "single", 1, &[200_000, 30_000]);
    let reference = format!("{}/test/single:v1", reg.host());
    let (r, lines) = push(&opts(&single, reference.clone()), &settings());
    let report = r.unwrap_or_else(|e| panic!("push failed: {e}\n{}", reg.log()));
    let (desc, bytes) = packages::top(&single);
    assert_eq!(report.digest, desc.digest);
    assert_eq!(report.media_type, oci::MEDIA_TYPE_MANIFEST);
    assert_eq!(report.reference, reference);
    assert_eq!(report.uploaded, 3, "{lines:?}");
    assert_eq!(report.manifests.len(), 1);
    assert_eq!(skopeo_raw(&reference), bytes);
    assert!(
        lines.iter().any(|l| l.starts_with("Uploaded ")),
        "{lines:?}"
    );
    assert!(
        lines.iter().any(|l| l.starts_with("Pushed manifest")),
        "{lines:?}"
    );

    // Two platforms: the index at the tag, manifests by digest.
    let multi = packages::multi(tmp.path(), "multi", 2, 300_000);
    let reference = format!("{}/test/multi:v2", reg.host());
    let (r, _) = push(&opts(&multi, reference.clone()), &settings());
    let report = r.unwrap();
    let (desc, bytes) = packages::top(&multi);
    assert_eq!(report.digest, desc.digest);
    assert_eq!(report.media_type, oci::MEDIA_TYPE_INDEX);
    assert_eq!(skopeo_raw(&reference), bytes);
    let manifests = packages::manifests(&multi);
    assert_eq!(report.manifests.len(), 2);
    for (d, b) in &manifests {
        assert_eq!(
            skopeo_raw(&format!("{}/test/multi@{}", reg.host(), d.digest)),
            *b
        );
        assert!(report
            .manifests
            .iter()
            .any(|m| m.digest == d.digest && m.platform == d.platform));
    }
    // Shared layer counted once: 2 configs + 1 shared + 2 own layers.
    assert_eq!(report.uploaded, 5);
    skopeo_copy_all(&reference, &tmp.path().join("copy"));

    // Default tag is latest; a layout directory works like a file.
    std::fs::create_dir(tmp.path().join("d")).unwrap();
    let dir = packages::multi_with(
        &tmp.path().join("d"),
        "multi",
        2,
        300_000,
        OutputFormat::Layout,
    );
    let reference = format!("{}/test/multi", reg.host());
    let (r, _) = push(&opts(&dir, reference.clone()), &settings());
    let report = r.unwrap();
    assert_eq!(report.reference, format!("{reference}:latest"));
    // Same blobs as test/multi:v2 in the same repository: nothing to upload.
    assert_eq!((report.uploaded, report.skipped), (0, 5));
    assert_eq!(skopeo_raw(&format!("{reference}:latest")), bytes);
}

#[test]
fn repush_sends_no_blob_bytes_and_from_mounts() {
    let reg = Registry::start_plain();
    let tmp = tempfile::tempdir().unwrap();
    let pkg = packages::multi(tmp.path(), "pkg", 3, 400_000);
    let first = format!("{}/team/a:1", reg.host());
    let (r, _) = push(&opts(&pkg, first.clone()), &settings());
    let report = r.unwrap();
    assert_eq!(report.uploaded, 5);
    assert!(report.bytes_sent > 800_000);

    let (r, lines) = push(&opts(&pkg, first.clone()), &settings());
    let again = r.unwrap();
    assert_eq!(again.digest, report.digest);
    assert_eq!(again.uploaded, 0);
    assert_eq!(again.mounted, 0);
    assert_eq!(again.skipped, 5);
    assert_eq!(again.bytes_sent, 0);
    assert_eq!(
        lines
            .iter()
            .filter(|l| l.starts_with("Exists sha256:"))
            .count(),
        5,
        "{lines:?}"
    );
    assert_eq!(
        lines
            .iter()
            .filter(|l| l.starts_with("Exists manifest"))
            .count(),
        2,
        "{lines:?}"
    );

    let mut o = opts(&pkg, format!("{}/team/b:1", reg.host()));
    o.from = Some("team/a".into());
    let (r, lines) = push(&o, &settings());
    let mounted = r.unwrap();
    assert_eq!(mounted.mounted, 5, "{lines:?}");
    assert_eq!(mounted.uploaded, 0);
    assert_eq!(mounted.bytes_sent, 0);
    assert!(lines
        .iter()
        .any(|l| l.starts_with("Mounted ") && l.ends_with("from team/a")));
    skopeo_copy_all(&format!("{}/team/b:1", reg.host()), &tmp.path().join("b"));

    // A mount source that lacks the blobs falls back to an upload in the same session.
    let mut o = opts(&pkg, format!("{}/team/c:1", reg.host()));
    o.from = Some("team/nothing-here".into());
    let (r, lines) = push(&o, &settings());
    let fallback = r.unwrap_or_else(|e| panic!("{e}\n{lines:?}"));
    assert_eq!(fallback.uploaded, 5);
    assert_eq!(fallback.mounted, 0);
    skopeo_copy_all(&format!("{}/team/c:1", reg.host()), &tmp.path().join("c"));
}

#[test]
fn one_platform_gets_its_own_manifest() {
    let reg = Registry::start_plain();
    let tmp = tempfile::tempdir().unwrap();
    let pkg = packages::multi(tmp.path(), "pkg", 4, 100_000);
    let reference = format!("{}/sub/arm:1", reg.host());
    let mut o = opts(&pkg, reference.clone());
    o.platforms = vec!["linux/arm64".parse().unwrap()];
    let (r, _) = push(&o, &settings());
    let report = r.unwrap();
    assert_eq!(report.manifests.len(), 1);
    assert_eq!(
        report.manifests[0].platform.as_ref().unwrap().architecture,
        "arm64"
    );
    let raw = skopeo_raw(&reference);
    assert_eq!(cnbpkg::digest::Digest::of(&raw), report.digest);
    // One platform: its own manifest is at the tag, not a new one-entry index.
    let arm = packages::manifests(&pkg)
        .into_iter()
        .find(|(d, _)| d.platform.as_ref().unwrap().architecture == "arm64")
        .unwrap();
    assert_eq!(report.digest, arm.0.digest);
    assert_eq!(report.media_type, oci::MEDIA_TYPE_MANIFEST);
    assert_eq!(raw, arm.1);
    // 1 shared layer + own layer + config.
    assert_eq!(report.uploaded, 3);
    skopeo_copy_all(&reference, &tmp.path().join("copy"));

    // By digest: the package's own index, no tag.
    let (top, top_bytes) = packages::top(&pkg);
    let by_digest = format!("{}/sub/bydigest@{}", reg.host(), top.digest);
    let (r, _) = push(&opts(&pkg, by_digest.clone()), &settings());
    assert_eq!(r.unwrap().digest, top.digest);
    assert_eq!(skopeo_raw(&by_digest), top_bytes);
    let wrong = format!("{}/sub/bydigest@{}", reg.host(), report.digest);
    let (r, _) = push(&opts(&pkg, wrong), &settings());
    assert!(r
        .unwrap_err()
        .to_string()
        .contains("has no manifest or index with digest"));

    o.platforms = vec!["windows/amd64".parse().unwrap()];
    let (r, _) = push(&o, &settings());
    let err = r.unwrap_err().to_string();
    assert!(
        err.contains("no image") && err.contains("linux/amd64"),
        "{err}"
    );
}

#[test]
fn large_blobs_go_in_chunks() {
    let reg = Registry::start_plain();
    let tmp = tempfile::tempdir().unwrap();
    let pkg = packages::single(tmp.path(), "big", 5, &[1_000_000, 10]);
    let reference = format!("{}/chunked/img:1", reg.host());
    let mut s = settings();
    s.chunk_threshold = 256 * 1024;
    s.chunk_size = 100 * 1024;
    let (r, _) = push(&opts(&pkg, reference.clone()), &s);
    let report = r.unwrap_or_else(|e| panic!("{e}\n{}", reg.log()));
    assert_eq!(report.uploaded, 3);
    assert_eq!(skopeo_raw(&reference), packages::top(&pkg).1);
    skopeo_copy_all(&reference, &tmp.path().join("copy"));
    assert!(
        reg.log().contains("PATCH"),
        "the registry saw no PATCH requests"
    );
}

#[test]
fn packs_docker_schema2_fixtures_push_unchanged() {
    let reg = Registry::start_plain();
    let fixtures = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/fixtures/pack");
    for name in [
        "hello-universe.cnb",
        "hello-universe-oci.cnb",
        "tree-extension.cnb",
    ] {
        let pkg = fixtures.join(name);
        let repo = name.trim_end_matches(".cnb");
        let reference = format!("{}/pack/{repo}:1", reg.host());
        let (r, lines) = push(&opts(&pkg, reference.clone()), &settings());
        let report = r.unwrap_or_else(|e| panic!("{name}: {e}\n{lines:?}"));
        let (desc, bytes) = packages::top(&pkg);
        assert_eq!(report.digest, desc.digest, "{name}");
        assert_eq!(report.media_type, desc.media_type, "{name}");
        assert_eq!(skopeo_raw(&reference), bytes, "{name}");
    }
}
