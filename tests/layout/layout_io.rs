//! Layout writer and reader: round trips, dedup, pack's fixtures, atomicity.

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

use cnbpkg::digest::Digest;
use cnbpkg::internals::LayoutWriter;
use cnbpkg::layout::{OutputFormat, PackageReader};
use cnbpkg::oci::{self, Descriptor, Index};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("testdata/fixtures/pack")
        .join(name)
}

fn write_sample(dest: &Path, format: OutputFormat) -> Vec<Descriptor> {
    let mut w = LayoutWriter::create(dest, format).unwrap();
    let a = w.put_bytes(oci::MEDIA_TYPE_LAYER_TAR, b"layer a").unwrap();
    let again = w.put_bytes(oci::MEDIA_TYPE_LAYER_TAR, b"layer a").unwrap();
    assert_eq!(a, again);
    let (b, n) = w
        .put_stream(oci::MEDIA_TYPE_LAYER_TAR, |out| {
            for _ in 0..1000 {
                out.write_all(&[7u8; 1000]).unwrap();
            }
            Ok(42)
        })
        .unwrap();
    assert_eq!(n, 42);
    assert_eq!(b.size, 1_000_000);
    w.finish(&Index::new(vec![a.clone()])).unwrap();
    vec![a, b]
}

#[test]
fn archive_round_trip_stores_each_blob_once() {
    let d = tempfile::tempdir().unwrap();
    let out = d.path().join("x.cnb");
    let descs = write_sample(&out, OutputFormat::File);
    let r = PackageReader::open(&out).unwrap();
    let files = r.files().unwrap();
    assert_eq!(files.len(), 4, "{files:?}");
    for desc in &descs {
        let mut buf = Vec::new();
        r.open_blob(&desc.digest)
            .unwrap()
            .read_to_end(&mut buf)
            .unwrap();
        assert_eq!(Digest::of(&buf), desc.digest);
    }
    assert_eq!(r.index().manifests.len(), 1);
    // Only the output remains in the directory.
    assert_eq!(fs::read_dir(d.path()).unwrap().count(), 1);
    // The archive is a valid tar for GNU tar too.
    let st = std::process::Command::new("tar")
        .arg("-tf")
        .arg(&out)
        .output()
        .unwrap();
    assert!(st.status.success());
    let listing = String::from_utf8(st.stdout).unwrap();
    assert!(
        listing.contains("oci-layout") && listing.contains("index.json"),
        "{listing}"
    );
}

#[test]
fn layout_dir_round_trip() {
    let d = tempfile::tempdir().unwrap();
    let out = d.path().join("layout");
    let descs = write_sample(&out, OutputFormat::Layout);
    let r = PackageReader::open(&out).unwrap();
    for desc in &descs {
        assert_eq!(r.blob_size(&desc.digest), Some(desc.size));
    }
    assert_eq!(fs::read_dir(out.join("blobs/sha256")).unwrap().count(), 2);
}

#[test]
fn reads_all_pack_fixtures() {
    for name in [
        "hello-universe.cnb",
        "hello-universe-oci.cnb",
        "tree-extension.cnb",
    ] {
        let r = PackageReader::open(&fixture(name)).unwrap();
        let images = r.images().unwrap();
        assert_eq!(images.len(), 1, "{name}");
        let img = &images[0];
        assert_eq!(img.manifest.layers.len(), img.config.rootfs.diff_ids.len());
        assert!(
            img.config
                .labels()
                .contains_key("io.buildpacks.buildpackage.metadata"),
            "{name}"
        );
    }
}

#[test]
fn rejects_gzipped_and_truncated_archives() {
    let d = tempfile::tempdir().unwrap();
    let bytes = fs::read(fixture("hello-universe.cnb")).unwrap();
    let truncated = d.path().join("t.cnb");
    fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    assert!(PackageReader::open(&truncated).is_err());
    let gz = d.path().join("g.cnb");
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    std::io::Write::write_all(&mut enc, &bytes).unwrap();
    fs::write(&gz, enc.finish().unwrap()).unwrap();
    let err = PackageReader::open(&gz).err().unwrap().to_string();
    assert!(err.contains("gzip"), "{err}");
}
