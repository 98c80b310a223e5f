//! Resumed downloads: a connection dropped mid-blob is continued with a `Range` request (the
//! registry of the test's own counts them); a registry that ignores the range is read from the
//! first byte; bytes left by an earlier, killed pull are continued from, or dropped when they
//! cannot be the blob's beginning. Every result verifies.

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use cnbpkg::digest::Digest;
use cnbpkg::oci::Manifest;

use crate::support::hostile::{reply, Reply, Server};
use crate::support::{child, packages};

/// How the registry answers blob GETs of the largest layer.
#[derive(Clone, Copy, PartialEq)]
enum Serve {
    /// Whole, or the range asked for (206).
    Ranges,
    /// The first GET sends half the layer and closes; ranges are honoured afterwards.
    CutOnceThenRanges,
    /// The first GET sends half and closes; a range request gets the whole layer (200).
    CutOnceThenWhole,
}

struct Image {
    manifest: Vec<u8>,
    media_type: String,
    blobs: Vec<(Digest, Vec<u8>)>,
    layer: (Digest, Vec<u8>),
}

fn image(dir: &Path) -> Image {
    image_of(dir, 400_000)
}

/// A single-platform image with a small layer and one of `size` bytes (before gzip, which
/// random data does not shrink).
fn image_of(dir: &Path, size: usize) -> Image {
    let pkg = packages::single(dir, "one", 81, &[2000, size]);
    let (desc, manifest) = packages::top(&pkg);
    let reader = cnbpkg::layout::PackageReader::open(&pkg).unwrap();
    let m: Manifest = serde_json::from_slice(&manifest).unwrap();
    let mut blobs = vec![(m.config.digest, reader.read_verified(&m.config).unwrap())];
    for l in &m.layers {
        blobs.push((l.digest, reader.read_verified(l).unwrap()));
    }
    let largest = m.layers.iter().max_by_key(|l| l.size).unwrap();
    let layer = (largest.digest, reader.read_verified(largest).unwrap());
    Image {
        manifest,
        media_type: desc.media_type,
        blobs,
        layer,
    }
}

/// `bytes=N-` → N.
fn range_start(seen: &crate::support::hostile::Seen) -> Option<usize> {
    let r = seen.headers.get("range")?;
    r.strip_prefix("bytes=")?.strip_suffix('-')?.parse().ok()
}

fn serve(image: &Image, how: Serve) -> Server {
    let (manifest, media_type) = (image.manifest.clone(), image.media_type.clone());
    let blobs = image.blobs.clone();
    let layer = image.layer.0;
    let gets = AtomicUsize::new(0);
    Server::start(Arc::new(move |seen| {
        let path = seen.path.as_str();
        if path == "/v2/" {
            return reply("200 OK", &[], b"{}");
        }
        if path.starts_with("/v2/x/y/manifests/") {
            return reply("200 OK", &[("Content-Type", &media_type)], &manifest);
        }
        for (d, bytes) in &blobs {
            if path != format!("/v2/x/y/blobs/{d}") {
                continue;
            }
            if *d != layer {
                return reply("200 OK", &[], bytes);
            }
            if how != Serve::Ranges && gets.fetch_add(1, Ordering::Relaxed) == 0 {
                let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", bytes.len());
                let mut out = head.into_bytes();
                out.extend_from_slice(&bytes[..bytes.len() / 2]);
                return Reply::Bytes(out);
            }
            return match range_start(seen) {
                Some(from) if how != Serve::CutOnceThenWhole && from < bytes.len() => {
                    let range = format!("bytes {from}-{}/{}", bytes.len() - 1, bytes.len());
                    reply(
                        "206 Partial Content",
                        &[("Content-Range", &range)],
                        &bytes[from..],
                    )
                }
                _ => reply("200 OK", &[], bytes),
            };
        }
        reply("404 Not Found", &[], b"")
    }))
}

fn pull(server: &Server, store: &Path) -> cnbpkg::Result<cnbpkg::registry::PullReport> {
    let mut opts = cnbpkg::registry::PullOptions::new([format!("127.0.0.1:{}/x/y:1", server.port)]);
    opts.insecure = true;
    opts.store = Some(store.to_path_buf());
    let mut settings = crate::support::settings();
    settings.deadlines.request = Duration::from_secs(2);
    settings.deadlines.blob_floor = Duration::from_secs(2);
    cnbpkg::registry::pull_with(&opts, &settings, &cnbpkg::events::NoEvents)
}

/// The GETs of the layer: the `Range` start each asked for (`None`: the whole blob).
fn layer_gets(server: &Server, layer: &Digest) -> Vec<Option<usize>> {
    server
        .seen()
        .iter()
        .filter(|s| s.method == "GET" && s.path.ends_with(&layer.to_string()))
        .map(range_start)
        .collect()
}

/// The bytes of the layers other than the largest (the config is read with the manifest, and
/// not counted as received).
fn other_layers(img: &Image, size: usize) -> u64 {
    img.blobs[1..]
        .iter()
        .map(|(_, b)| b.len() as u64)
        .sum::<u64>()
        - size as u64
}

fn assert_stored(store: &Path, layer: &Digest) {
    let bytes = std::fs::read(store.join(layer.blob_path())).unwrap();
    assert_eq!(Digest::of(&bytes), *layer);
    let downloads = store.join("downloads");
    assert_eq!(
        std::fs::read_dir(downloads).unwrap().count(),
        0,
        "no download is left once the blobs are stored"
    );
}

#[test]
fn a_connection_dropped_mid_blob_is_continued_with_a_range_request() {
    let tmp = tempfile::tempdir().unwrap();
    let img = image(tmp.path());
    let (layer, size) = (img.layer.0, img.layer.1.len());
    let server = serve(&img, Serve::CutOnceThenRanges);
    let store = tmp.path().join("store");
    let report = pull(&server, &store).unwrap();
    assert_eq!(report.images[0].digest, Digest::of(&img.manifest));
    assert_eq!(layer_gets(&server, &layer), [None, Some(size / 2)]);
    // Half the layer once, the other half on the retry: nothing fetched twice.
    let others = other_layers(&img, size);
    assert_eq!(report.bytes_received, others + size as u64);
    assert_stored(&store, &layer);
}

#[test]
fn a_registry_ignoring_the_range_is_read_from_the_first_byte() {
    let tmp = tempfile::tempdir().unwrap();
    let img = image(tmp.path());
    let (layer, size) = (img.layer.0, img.layer.1.len());
    let server = serve(&img, Serve::CutOnceThenWhole);
    let store = tmp.path().join("store");
    pull(&server, &store).unwrap();
    assert_eq!(layer_gets(&server, &layer), [None, Some(size / 2)]);
    assert_stored(&store, &layer);
}

#[test]
fn bytes_an_earlier_pull_left_are_continued_from_or_dropped() {
    let tmp = tempfile::tempdir().unwrap();
    let img = image(tmp.path());
    let (layer, bytes) = img.layer.clone();
    let size = bytes.len();
    let store = tmp.path().join("store");
    let partial = store.join("downloads").join(layer.hex());

    // A killed pull left the first third: only the rest is asked for.
    std::fs::create_dir_all(partial.parent().unwrap()).unwrap();
    std::fs::write(&partial, &bytes[..size / 3]).unwrap();
    let server = serve(&img, Serve::Ranges);
    let report = pull(&server, &store).unwrap();
    assert_eq!(layer_gets(&server, &layer), [Some(size / 3)]);
    let others = other_layers(&img, size);
    assert_eq!(report.bytes_received, others + (size - size / 3) as u64);
    assert_stored(&store, &layer);

    // Longer than the blob: it cannot be its beginning, and the whole blob is fetched.
    let store = tmp.path().join("store2");
    let partial = store.join("downloads").join(layer.hex());
    std::fs::create_dir_all(partial.parent().unwrap()).unwrap();
    std::fs::write(&partial, vec![7u8; size + 10]).unwrap();
    let server = serve(&img, Serve::Ranges);
    pull(&server, &store).unwrap();
    assert_eq!(layer_gets(&server, &layer), [None]);
    assert_stored(&store, &layer);

    // All of it, left by a pull killed before the rename: no request for it at all.
    let store = tmp.path().join("store4");
    let partial = store.join("downloads").join(layer.hex());
    std::fs::create_dir_all(partial.parent().unwrap()).unwrap();
    std::fs::write(&partial, &bytes).unwrap();
    let server = serve(&img, Serve::Ranges);
    pull(&server, &store).unwrap();
    assert_eq!(layer_gets(&server, &layer), []);
    assert_stored(&store, &layer);

    // Wrong bytes of a plausible length: the whole fails its digest, nothing is stored and
    // the bytes are dropped; the next pull starts from the first byte and succeeds.
    let store = tmp.path().join("store3");
    let partial = store.join("downloads").join(layer.hex());
    std::fs::create_dir_all(partial.parent().unwrap()).unwrap();
    std::fs::write(&partial, vec![7u8; size / 2]).unwrap();
    let server = serve(&img, Serve::Ranges);
    match pull(&server, &store) {
        Err(cnbpkg::Error::DigestMismatch { expected, .. }) => assert_eq!(expected, layer),
        other => panic!("expected a digest mismatch, got {other:?}"),
    }
    assert!(!store.join(layer.blob_path()).exists());
    assert_eq!(std::fs::metadata(&partial).unwrap().len(), 0);
    pull(&server, &store).unwrap();
    assert_eq!(layer_gets(&server, &layer), [Some(size / 2), None]);
    assert_stored(&store, &layer);
}

#[test]
fn a_pull_killed_mid_blob_is_continued_by_the_next_one() {
    let tmp = tempfile::tempdir().unwrap();
    let img = image_of(tmp.path(), 6 << 20);
    let layer = img.layer.0;
    // The first GET of the layer sends half of it and then nothing: the pull waits, and is
    // killed while it waits.
    let server = serve(&img, Serve::CutOnceThenRanges);
    let store = tmp.path().join("store");
    let partial = store.join("downloads").join(layer.hex());
    let mut pulling = child::spawn(
        [
            "pull",
            "-q",
            "--insecure",
            "--store",
            store.to_str().unwrap(),
            &format!("127.0.0.1:{}/x/y:1", server.port),
        ],
        &child::fresh_home(),
        &[],
    );
    // Bounded: 30 s for the first mebibyte to reach the file (it is written as it arrives).
    let mut arrived = false;
    for _ in 0..300 {
        if std::fs::metadata(&partial).is_ok_and(|m| m.len() >= 1 << 20) {
            arrived = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    // Child::kill sends SIGKILL to this child only: no cleanup runs.
    pulling.kill().unwrap();
    pulling.wait().unwrap();
    assert!(arrived, "the download did not reach its file");
    let held = std::fs::metadata(&partial).unwrap().len() as usize;
    assert!(!store.join(layer.blob_path()).exists());

    let report = pull(&server, &store).unwrap();
    assert_eq!(report.images[0].digest, Digest::of(&img.manifest));
    let gets = layer_gets(&server, &layer);
    assert_eq!(
        gets,
        [None, Some(held)],
        "the second pull asks for the rest only"
    );
    assert_stored(&store, &layer);
}
