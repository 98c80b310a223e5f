//! Test packages written with cnbpkg's layout writer (not the packager): small gzip layers of
//! seeded random data, OCI configs and manifests, and for several platforms an image index.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use cnbpkg::digest::Digest;
use cnbpkg::internals::canonical;
use cnbpkg::internals::LayoutWriter;
use cnbpkg::layout::OutputFormat;
use cnbpkg::oci::{self, Descriptor, ImageConfig, Index, Manifest, Platform, RootFs};

use super::Rng;

/// One layer: its compressed blob, diffID and the seed it was made from.
struct Layer {
    blob: Vec<u8>,
    diff_id: Digest,
}

/// A tar with one file of `size` random bytes, gzip-compressed.
fn layer(seed: u64, size: usize) -> Layer {
    let mut rng = Rng::new(seed);
    let data = rng.bytes(size);
    let mut tar = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_ustar();
    h.set_size(data.len() as u64);
    h.set_mode(0o644);
    h.set_mtime(315_532_801);
    h.set_entry_type(tar::EntryType::Regular);
    tar.append_data(&mut h, format!("cnb/layer-{seed}.bin"), &data[..])
        .unwrap();
    let tar = tar.into_inner().unwrap();
    let diff_id = Digest::of(&tar);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&tar).unwrap();
    Layer {
        blob: gz.finish().unwrap(),
        diff_id,
    }
}

/// A platform image: its manifest descriptor (with platform) for an index.
fn image(
    w: &mut LayoutWriter,
    platform: &Platform,
    layers: &[(u64, usize)],
    label: &str,
) -> Descriptor {
    let mut descs = Vec::new();
    let mut diff_ids = Vec::new();
    for &(seed, size) in layers {
        let l = layer(seed, size);
        descs.push(w.put_bytes(oci::MEDIA_TYPE_LAYER_GZIP, &l.blob).unwrap());
        diff_ids.push(l.diff_id);
    }
    let mut labels = BTreeMap::new();
    labels.insert("io.buildpacks.test".to_string(), label.to_string());
    put_image(w, platform, descs, diff_ids, labels)
}

/// Write an image's config and manifest (normalized `created`, no history) for `platform`, over
/// layers already written: its manifest descriptor, with the platform, for an index.
pub fn put_image(
    w: &mut LayoutWriter,
    platform: &Platform,
    descs: Vec<Descriptor>,
    diff_ids: Vec<Digest>,
    labels: BTreeMap<String, String>,
) -> Descriptor {
    let config = ImageConfig {
        architecture: platform.architecture.clone(),
        created: Some("1980-01-01T00:00:01Z".into()),
        history: vec![],
        os: platform.os.clone(),
        os_version: platform.os_version.clone(),
        os_features: vec![],
        variant: platform.variant.clone(),
        rootfs: RootFs {
            typ: "layers".into(),
            diff_ids,
        },
        config: Some(oci::RuntimeConfig { labels }),
    };
    let config_desc = w
        .put_bytes(oci::MEDIA_TYPE_CONFIG, &canonical(&config))
        .unwrap();
    let manifest = Manifest {
        schema_version: 2,
        media_type: Some(oci::MEDIA_TYPE_MANIFEST.into()),
        artifact_type: None,
        config: config_desc,
        layers: descs,
        annotations: BTreeMap::new(),
    };
    let mut d = w
        .put_bytes(oci::MEDIA_TYPE_MANIFEST, &canonical(&manifest))
        .unwrap();
    d.platform = Some(platform.clone());
    d
}

/// `linux/amd64`-style platform.
pub fn platform(os: &str, arch: &str) -> Platform {
    Platform {
        os: os.into(),
        architecture: arch.into(),
        ..Default::default()
    }
}

/// A single-platform `.cnb` (index.json → one manifest) with layers of the given sizes.
pub fn single(dir: &Path, name: &str, seed: u64, sizes: &[usize]) -> PathBuf {
    let path = dir.join(format!("{name}.cnb"));
    let mut w = LayoutWriter::create(&path, OutputFormat::File).unwrap();
    let layers: Vec<(u64, usize)> = sizes
        .iter()
        .enumerate()
        .map(|(i, &s)| (seed * 100 + i as u64, s))
        .collect();
    let mut d = image(&mut w, &platform("linux", "amd64"), &layers, name);
    d.platform = None;
    w.finish(&Index::new(vec![d])).unwrap()
}

/// A two-platform `.cnb` (index.json → OCI index → linux/amd64 and linux/arm64 manifests)
/// sharing one layer; each platform also has its own layer of `size` bytes.
pub fn multi(dir: &Path, name: &str, seed: u64, size: usize) -> PathBuf {
    multi_with(dir, name, seed, size, OutputFormat::File)
}

/// Like [`multi`], as a `.cnb` file or a layout directory.
pub fn multi_with(dir: &Path, name: &str, seed: u64, size: usize, format: OutputFormat) -> PathBuf {
    let path = match format {
        OutputFormat::File => dir.join(format!("{name}.cnb")),
        OutputFormat::Layout => dir.join(name),
    };
    let mut w = LayoutWriter::create(&path, format).unwrap();
    let shared = (seed * 100, 64 * 1024);
    let amd = image(
        &mut w,
        &platform("linux", "amd64"),
        &[shared, (seed * 100 + 1, size)],
        name,
    );
    let arm = image(
        &mut w,
        &platform("linux", "arm64"),
        &[shared, (seed * 100 + 2, size)],
        name,
    );
    let index = Index::new(vec![amd, arm]);
    let index_desc = w
        .put_bytes(oci::MEDIA_TYPE_INDEX, &canonical(&index))
        .unwrap();
    w.finish(&Index::new(vec![index_desc])).unwrap()
}

/// The package's top-level descriptor and raw bytes (what the registry must serve).
pub fn top(path: &Path) -> (Descriptor, Vec<u8>) {
    let r = cnbpkg::layout::PackageReader::open(path).unwrap();
    let d = r.index().manifests[0].clone();
    let bytes = r.read_verified(&d).unwrap();
    (d, bytes)
}

/// Every manifest of the package below the top index: (descriptor, raw bytes).
pub fn manifests(path: &Path) -> Vec<(Descriptor, Vec<u8>)> {
    let r = cnbpkg::layout::PackageReader::open(path).unwrap();
    r.images()
        .unwrap()
        .into_iter()
        .map(|i| {
            let b = r.read_verified(&i.descriptor).unwrap();
            (i.descriptor, b)
        })
        .collect()
}
