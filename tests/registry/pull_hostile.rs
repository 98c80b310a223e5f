//! `pull` from a registry of the test's own that lies: a blob served with wrong bytes, a tag
//! whose `Docker-Content-Digest` is not its content's, a download cut short. Nothing wrong
//! ever lands in the store, and no reference is named for what failed.

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cnbpkg::digest::Digest;
use cnbpkg::events::Event;
use cnbpkg::oci::Manifest;
use cnbpkg::Error;

use crate::support::hostile::{reply, Reply, Server};
use crate::support::packages;

/// How the fake registry misbehaves.
#[derive(Clone, Copy, PartialEq)]
enum Lie {
    /// It does not: serves the image as it is.
    None,
    /// The largest layer's bytes changed (same length).
    WrongLayer,
    /// The tag's `Docker-Content-Digest` names other content.
    WrongTagDigest,
    /// The first GET of the largest layer sends half of it and stalls.
    CutOnce,
}

struct Image {
    manifest: Vec<u8>,
    media_type: String,
    blobs: Vec<(Digest, Vec<u8>)>,
    layer: Digest,
}

fn image(dir: &Path) -> Image {
    let pkg = packages::single(dir, "one", 51, &[2000, 90_000]);
    let (desc, manifest) = packages::top(&pkg);
    let reader = cnbpkg::layout::PackageReader::open(&pkg).unwrap();
    let m: Manifest = serde_json::from_slice(&manifest).unwrap();
    let mut blobs = vec![(m.config.digest, reader.read_verified(&m.config).unwrap())];
    for l in &m.layers {
        blobs.push((l.digest, reader.read_verified(l).unwrap()));
    }
    let layer = m.layers.iter().max_by_key(|l| l.size).unwrap().digest;
    Image {
        manifest,
        media_type: desc.media_type,
        blobs,
        layer,
    }
}

fn serve(image: Image, lie: Lie) -> (Server, Digest) {
    let top = Digest::of(&image.manifest);
    let layer_gets = AtomicUsize::new(0);
    let server = Server::start(Arc::new(move |seen| {
        let path = seen.path.as_str();
        if path == "/v2/" {
            return reply("200 OK", &[], b"{}");
        }
        if path.starts_with("/v2/x/y/manifests/") {
            let named = match lie {
                Lie::WrongTagDigest => Digest::of(b"other").to_string(),
                _ => top.to_string(),
            };
            return reply(
                "200 OK",
                &[
                    ("Content-Type", &image.media_type),
                    ("Docker-Content-Digest", &named),
                ],
                &image.manifest,
            );
        }
        for (d, bytes) in &image.blobs {
            if path != format!("/v2/x/y/blobs/{d}") {
                continue;
            }
            let mut bytes = bytes.clone();
            if *d == image.layer {
                match lie {
                    Lie::WrongLayer => bytes[100] ^= 0xff,
                    Lie::CutOnce if layer_gets.fetch_add(1, Ordering::Relaxed) == 0 => {
                        let head =
                            format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", bytes.len());
                        let mut out = head.into_bytes();
                        out.extend_from_slice(&bytes[..bytes.len() / 2]);
                        return Reply::Bytes(out);
                    }
                    _ => {}
                }
            }
            return reply("200 OK", &[], &bytes);
        }
        reply("404 Not Found", &[], b"")
    }));
    (server, top)
}

fn pull(
    server: &Server,
    store: &Path,
) -> (cnbpkg::Result<cnbpkg::registry::PullReport>, Vec<String>) {
    let mut opts = cnbpkg::registry::PullOptions::new([format!("127.0.0.1:{}/x/y:1", server.port)]);
    opts.insecure = true;
    opts.store = Some(store.to_path_buf());
    let mut settings = crate::support::settings();
    settings.deadlines.request = Duration::from_secs(2);
    settings.deadlines.blob_floor = Duration::from_secs(2);
    let lines = Mutex::new(Vec::new());
    let sink = |e: &Event<'_>| {
        if let Event::Status { verb, message } = *e {
            lines.lock().unwrap().push(format!("{verb} {message}"));
        }
    };
    let r = cnbpkg::registry::pull_with(&opts, &settings, &sink);
    (r, lines.into_inner().unwrap())
}

/// `index.json` names nothing, and the blobs are intact.
fn assert_nothing_named_nothing_wrong(store: &Path) {
    let index = store.join("index.json");
    if index.exists() {
        let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&index).unwrap()).unwrap();
        assert_eq!(v["manifests"].as_array().map_or(0, Vec::len), 0, "{v}");
    }
    assert_blobs_intact(store);
}

/// Every file in the store's blob directory has the content its name says (no temporary
/// file, no damaged blob).
fn assert_blobs_intact(store: &Path) {
    for entry in std::fs::read_dir(store.join("blobs/sha256")).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name().into_string().unwrap();
        let bytes = std::fs::read(entry.path()).unwrap();
        assert_eq!(
            Digest::of(&bytes).hex(),
            name,
            "a stray or damaged file in the store"
        );
    }
}

#[test]
fn a_blob_with_wrong_bytes_fails_the_pull_and_is_not_stored() {
    let tmp = tempfile::tempdir().unwrap();
    let img = image(tmp.path());
    let layer = img.layer;
    let (server, _) = serve(img, Lie::WrongLayer);
    let store = tmp.path().join("store");
    let (r, _) = pull(&server, &store);
    match r {
        Err(Error::DigestMismatch { expected, .. }) => assert_eq!(expected, layer),
        other => panic!("expected a digest mismatch, got {other:?}"),
    }
    assert!(!store.join(layer.blob_path()).exists());
    assert_nothing_named_nothing_wrong(&store);
}

#[test]
fn a_tag_whose_digest_header_lies_fails_before_any_blob() {
    let tmp = tempfile::tempdir().unwrap();
    let (server, _) = serve(image(tmp.path()), Lie::WrongTagDigest);
    let store = tmp.path().join("store");
    let (r, _) = pull(&server, &store);
    let e = r.unwrap_err().to_string();
    assert!(e.contains("the registry reports digest"), "{e}");
    assert!(
        !server.seen().iter().any(|s| s.path.contains("/blobs/")),
        "no blob is fetched for a manifest that failed its check"
    );
    assert_nothing_named_nothing_wrong(&store);
}

#[test]
fn a_download_cut_short_is_retried_and_the_result_verifies() {
    let tmp = tempfile::tempdir().unwrap();
    let img = image(tmp.path());
    let layer = img.layer;
    let (server, top) = serve(img, Lie::CutOnce);
    let store = tmp.path().join("store");
    let (r, lines) = pull(&server, &store);
    let report = r.unwrap_or_else(|e| panic!("{e}\n{}", lines.join("\n")));
    assert_eq!(report.images[0].digest, top);
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("Retrying GET") && l.contains(&layer.to_string())),
        "{lines:?}"
    );
    let bytes = std::fs::read(store.join(layer.blob_path())).unwrap();
    assert_eq!(Digest::of(&bytes), layer);
    let layer_gets = server
        .seen()
        .iter()
        .filter(|s| s.path.ends_with(&layer.to_string()))
        .count();
    assert_eq!(layer_gets, 2);
}

#[test]
fn concurrent_pulls_into_one_store_keep_every_reference() {
    let tmp = tempfile::tempdir().unwrap();
    let (server, top) = serve(image(tmp.path()), Lie::None);
    let store = tmp.path().join("store");
    let port = server.port;
    // Several threads naming different references to one image at once: each takes the
    // store's lock, none loses another's entry.
    std::thread::scope(|scope| {
        for tag in ["1", "2", "3", "4"] {
            let store = &store;
            scope.spawn(move || {
                let mut opts =
                    cnbpkg::registry::PullOptions::new([format!("127.0.0.1:{port}/x/y:{tag}")]);
                opts.insecure = true;
                opts.store = Some(store.clone());
                cnbpkg::registry::pull_with(
                    &opts,
                    &crate::support::settings(),
                    &cnbpkg::events::NoEvents,
                )
                .unwrap();
            });
        }
    });
    let store = cnbpkg::store::Store::open_or_create(&store).unwrap();
    let entries = store.entries().unwrap();
    assert_eq!(entries.len(), 4, "{entries:?}");
    assert!(entries.iter().all(|e| e.digest == top));
    assert_blobs_intact(store.root());
}

#[test]
fn a_blob_redirected_to_another_host_gets_no_credentials() {
    let tmp = tempfile::tempdir().unwrap();
    let img = image(tmp.path());
    let top = Digest::of(&img.manifest);
    let blobs = img.blobs.clone();
    // The storage host: serves any blob, asks for nothing.
    let storage = Server::start(Arc::new(move |seen| {
        for (d, bytes) in &blobs {
            if seen.path == format!("/storage/{d}") {
                return reply("200 OK", &[], bytes);
            }
        }
        reply("404 Not Found", &[], b"")
    }));
    let storage_port = storage.port;
    let (manifest, media_type) = (img.manifest.clone(), img.media_type.clone());
    // The registry: basic auth, blobs redirected to the storage host.
    let registry = Server::start(Arc::new(move |seen| {
        if !seen.headers.contains_key("authorization") {
            return reply(
                "401 Unauthorized",
                &[("WWW-Authenticate", "Basic realm=\"test\"")],
                b"",
            );
        }
        let path = seen.path.as_str();
        if path == "/v2/" {
            return reply("200 OK", &[], b"{}");
        }
        if path.starts_with("/v2/x/y/manifests/") {
            return reply("200 OK", &[("Content-Type", &media_type)], &manifest);
        }
        if let Some(d) = path.strip_prefix("/v2/x/y/blobs/") {
            let to = format!("http://127.0.0.1:{storage_port}/storage/{d}");
            return reply("307 Temporary Redirect", &[("Location", &to)], b"");
        }
        reply("404 Not Found", &[], b"")
    }));
    let store = tmp.path().join("store");
    let mut opts =
        cnbpkg::registry::PullOptions::new([format!("127.0.0.1:{}/x/y:1", registry.port)]);
    opts.insecure = true;
    opts.store = Some(store.clone());
    opts.username = Some("u".into());
    opts.password = Some("p-secret".into());
    let report = cnbpkg::registry::pull_with(
        &opts,
        &crate::support::settings(),
        &cnbpkg::events::NoEvents,
    )
    .unwrap();
    assert_eq!(report.images[0].digest, top);
    let at_storage = storage.seen();
    assert_eq!(at_storage.len(), 3, "config and two layers");
    assert!(
        at_storage
            .iter()
            .all(|s| !s.headers.contains_key("authorization")),
        "credentials followed a redirect to another host"
    );
    assert_blobs_intact(&store);
}
