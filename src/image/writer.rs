//! The image writer: layers (built once through the cache, or copied verified from existing
//! packages), a config and labels, and a target become a config blob, a manifest, its platform
//! descriptor, index entries and the finished index of every output.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::cache::{
    read_layer_blob, BuiltLayer, LayerCache, LayerExecutables, LayerKey, TeeReader,
};
use crate::atomic::{check_interrupt, Staged};
use crate::cnb::{ANNOTATION_DISTROS, ANNOTATION_DISTRO_NAME, ANNOTATION_DISTRO_VERSION};
use crate::compress::{self, Compression};
use crate::digest::{Digest, HashingWriter, ThreadedHashingWriter};
use crate::error::{Error, Result};
use crate::events::{Events, EventsExt};
use crate::json::canonical;
use crate::layout::limits::MAX_BLOBS;
use crate::layout::{
    LayoutWriter, OutputFormat, PackageReader, MAX_ENTRIES, MAX_IMAGES_BYTES, MAX_JSON_BLOB,
};
use crate::oci::{
    self, Descriptor, History, ImageConfig, Index, Manifest, Platform, RootFs, RuntimeConfig,
};
use crate::target::{Distro, ExpandedTarget};
use crate::ui::human_size;

/// The `created` time of every config and history entry: the same instant as the layers'
/// modification times, so nothing in a package depends on when it was built.
pub const CREATED: &str = crate::cnb::NORMALIZED_RFC3339;

/// One image written into an output.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct ImageReport {
    /// The target in `os/arch/variant:distro@version` form.
    pub target: String,
    /// The manifest digest.
    pub manifest: Digest,
    /// The config digest.
    pub config: Digest,
    /// The layers, base first.
    pub layers: Vec<LayerReport>,
}

/// One layer of an image.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct LayerReport {
    /// What it holds: `id@version`, or `windows base layer`.
    pub content: String,
    /// Digest of the stored (compressed) blob.
    pub digest: Digest,
    /// Digest of the uncompressed tar.
    pub diff_id: Digest,
    /// Stored size.
    pub size: u64,
    /// Uncompressed size (unknown for a layer copied unchanged from a dependency).
    pub uncompressed_size: Option<u64>,
}

/// A layer blob of an existing package, to be copied into an output: streamed once, checked
/// against its digest, size and diffID on the way, and stored once however often it is used.
pub(crate) struct LayerBlob<'a> {
    /// The package that holds it.
    pub(crate) reader: &'a PackageReader,
    /// What to name in errors about it (the package's path).
    pub(crate) origin: &'a Path,
    /// Its descriptor in that package: digest, size, media type.
    pub(crate) blob: &'a Descriptor,
    /// The diffID the package's config gives it.
    pub(crate) diff_id: Digest,
}

/// What one image is made of, as its caller decides.
pub(crate) struct ImageSpec<'a> {
    /// The platform: the config's os/arch/variant, the descriptor's platform, and its distro
    /// annotations (a Windows distro's version is the `os.version`).
    pub(crate) target: &'a ExpandedTarget,
    /// The layers, base first, each with what it holds (for the report).
    pub(crate) layers: Vec<(String, BuiltLayer)>,
    /// The config's runtime part (its labels).
    pub(crate) config: RuntimeConfig,
    /// The file whose values make the config large, named when it would exceed what a package
    /// reader accepts.
    pub(crate) origin: &'a Path,
    /// What to do about such a config (ends the message).
    pub(crate) too_large_hint: &'a str,
}

/// What an image built on another keeps of that image's config: its runtime settings (`Env`,
/// `User`, `Entrypoint`, `Cmd`, ... as the base gives them, `WorkingDir` as the caller sets it)
/// and its `os.features`. Its labels are the caller's ([`ImageSpec::config`]).
pub(crate) struct BaseConfig {
    /// The base config's `config` object, as read.
    pub(crate) runtime: serde_json::Map<String, serde_json::Value>,
    /// The base config's `os.version` (also its index entry's, as imgutil gives it).
    pub(crate) os_version: String,
    /// The base config's `os.features`.
    pub(crate) os_features: Vec<String>,
    /// The base config's other top-level fields (`author`, ...), kept as they are.
    pub(crate) other: serde_json::Map<String, serde_json::Value>,
}

impl BaseConfig {
    /// `config` with its runtime part replaced by the base's, whose `Labels` are `config`'s.
    fn apply(&self, config: &ImageConfig) -> serde_json::Value {
        let mut runtime = self.runtime.clone();
        let labels = config
            .config
            .as_ref()
            .map(|c| c.labels.clone())
            .unwrap_or_default();
        runtime.remove("Labels");
        if !labels.is_empty() {
            runtime.insert(
                "Labels".into(),
                serde_json::to_value(labels).expect("a map of strings is JSON"),
            );
        }
        let mut value = serde_json::to_value(config).expect("an image config is JSON");
        if let serde_json::Value::Object(map) = &mut value {
            map.insert("config".into(), serde_json::Value::Object(runtime));
            for (k, v) in &self.other {
                map.entry(k.clone()).or_insert_with(|| v.clone());
            }
        }
        value
    }
}

/// An image in an output, with what its index entry needs.
pub(crate) struct WrittenImage {
    /// The manifest's descriptor with its platform and distro annotations.
    pub(crate) descriptor: Descriptor,
    /// The target it was written for.
    pub(crate) target: ExpandedTarget,
    /// What the report says about it.
    pub(crate) report: ImageReport,
}

/// An output in place.
pub(crate) struct FinishedOutput {
    /// Where it is.
    pub(crate) path: PathBuf,
    /// What its `index.json` points at: the image index, or the single manifest.
    pub(crate) root: Descriptor,
    /// Number of stored blobs.
    pub(crate) blobs: usize,
    /// Their total size.
    pub(crate) blob_bytes: u64,
}

/// Writes images into one or more outputs at once, every layer stored once per output and
/// built once for all of them. Nothing is in place until [`ImageWriter::finish`].
pub(crate) struct ImageWriter<'a> {
    writers: Vec<LayoutWriter>,
    cache: LayerCache,
    /// Manifest and config bytes written into each output (see [`ImageWriter::keep_json`]).
    kept_bytes: Vec<u64>,
    /// Config and layer descriptors the images of each output list (see
    /// [`ImageWriter::count_blobs`]).
    listed_blobs: Vec<usize>,
    compression: Compression,
    jobs: usize,
    events: &'a dyn Events,
}

impl<'a> ImageWriter<'a> {
    /// Open every output (each destination is checked before anything is built). Layers are
    /// compressed with `compression` on up to `jobs` threads.
    pub(crate) fn create(
        outputs: &[PathBuf],
        format: OutputFormat,
        compression: Compression,
        jobs: usize,
        events: &'a dyn Events,
    ) -> Result<Self> {
        let writers = outputs
            .iter()
            .map(|path| LayoutWriter::create(path, format))
            .collect::<Result<Vec<_>>>()?;
        Ok(ImageWriter {
            kept_bytes: vec![0; writers.len()],
            listed_blobs: vec![0; writers.len()],
            writers,
            cache: LayerCache::default(),
            compression,
            jobs: jobs.max(1),
            events,
        })
    }

    /// Return the layer for `key` in output `out`, building it only the first time:
    /// `write_tar` writes the tar → SHA-256 (diffID) → compressor → SHA-256 (digest) → output,
    /// in one pass. `what` names the layer in events and errors.
    pub(crate) fn build_layer(
        &mut self,
        key: LayerKey,
        out: usize,
        what: &str,
        write_tar: impl FnOnce(&mut dyn std::io::Write) -> Result<LayerExecutables>,
    ) -> Result<BuiltLayer> {
        check_interrupt()?;
        if let Some(built) = self.reuse(&key, out, what)? {
            return Ok(built);
        }
        let compression = self.compression;
        let jobs = self.jobs;
        let (descriptor, (diff_id, uncompressed_size, executables)) = self.writers[out]
            .put_stream(compression.media_type(), |w| {
                let encoder = compress::encoder(compression, jobs, w);
                // The diffID is hashed on its own thread, beside the compressor.
                let mut tar = ThreadedHashingWriter::new(encoder)
                    .map_err(|e| Error::other(format!("hashing layer {what}: {e}")))?;
                let executables = write_tar(&mut tar)?;
                let (encoder, diff_id, size) = tar
                    .finish()
                    .map_err(|e| Error::other(format!("hashing layer {what}: {e}")))?;
                encoder
                    .finish()
                    .map_err(|e| Error::other(format!("compressing layer {what}: {e}")))?;
                Ok((diff_id, size, executables))
            })?;
        self.events.status(
            "Built",
            &format!(
                "layer {what} ({} → {}) {}",
                human_size(uncompressed_size),
                human_size(descriptor.size),
                diff_id.short()
            ),
        );
        let built = BuiltLayer {
            descriptor,
            diff_id,
            uncompressed_size: Some(uncompressed_size),
            home: out,
            executables: std::rc::Rc::new(executables),
        };
        self.cache.insert(key, built.clone());
        Ok(built)
    }

    /// Copy a layer of an existing package into output `out` (once: it is known by its
    /// diffID). It is copied as it is when it is compressed the way this writer compresses,
    /// recompressed (same diffID) otherwise; either way in one pass that checks the stored
    /// bytes against the blob's digest and size, the decompressed bytes against the diffID,
    /// and lets `check_tar` read the decompressed tar first (to check its entries).
    pub(crate) fn copy_layer(
        &mut self,
        source: &LayerBlob<'_>,
        out: usize,
        what: &str,
        check_tar: impl FnOnce(&mut dyn Read) -> Result<()>,
    ) -> Result<BuiltLayer> {
        let LayerBlob {
            reader,
            origin,
            blob,
            diff_id,
        } = *source;
        let key = LayerKey::Import { diff_id };
        if let Some(built) = self.reuse(&key, out, what)? {
            return Ok(built);
        }
        let source_encoding = super::cache::layer_encoding(blob, origin)?;
        let compression = self.compression;
        let writer = &mut self.writers[out];
        let (descriptor, size) = if source_encoding == compression.encoding() {
            let (descriptor, ((), size)) = writer.put_stream(compression.media_type(), |w| {
                let stream = reader.open_blob(&blob.digest)?;
                let tee = TeeReader {
                    inner: stream,
                    copy: w,
                };
                read_layer_blob(tee, blob, diff_id, origin, check_tar)
            })?;
            (descriptor, size)
        } else {
            let jobs = self.jobs;
            writer.put_stream(compression.media_type(), |w| {
                let stream = reader.open_blob(&blob.digest)?;
                let encoder = compress::encoder(compression, jobs, w);
                let mut tar = HashingWriter::new(encoder);
                let ((), size) = read_layer_blob(stream, blob, diff_id, origin, |decoded| {
                    let bad = |e: std::io::Error| {
                        Error::invalid(origin, format!("layer {}: {e}", blob.digest))
                    };
                    let mut tee = TeeReader {
                        inner: decoded,
                        copy: &mut tar,
                    };
                    check_tar(&mut tee)?;
                    std::io::copy(&mut tee, &mut std::io::sink()).map_err(bad)?;
                    Ok(())
                })?;
                let (encoder, _, _) = tar.finish();
                encoder
                    .finish()
                    .map_err(|e| Error::other(format!("compressing layer {what}: {e}")))?;
                Ok(size)
            })?
        };
        let built = BuiltLayer {
            descriptor,
            diff_id,
            uncompressed_size: Some(size),
            home: out,
            executables: Default::default(),
        };
        self.events.status(
            "Imported",
            &format!(
                "layer {what} ({}) {}",
                human_size(built.descriptor.size),
                diff_id.short()
            ),
        );
        self.cache.insert(key, built.clone());
        Ok(built)
    }

    /// Copy a blob of an existing package into output `out` byte for byte (a manifest or
    /// config that `merge` keeps as it is), checked against its digest and size, stored once,
    /// and counted against the reader's limits like a written one.
    pub(crate) fn copy_blob(
        &mut self,
        reader: &PackageReader,
        origin: &Path,
        blob: &Descriptor,
        out: usize,
    ) -> Result<()> {
        // A blob stored already is not read again: its descriptor must still give its size.
        match reader.blob_size(&blob.digest) {
            None => {
                return Err(Error::MissingBlob {
                    path: origin.to_path_buf(),
                    digest: blob.digest,
                })
            }
            Some(actual) if actual != blob.size => {
                return Err(Error::SizeMismatch {
                    path: origin.to_path_buf(),
                    digest: blob.digest,
                    expected: blob.size,
                    actual,
                })
            }
            Some(_) => {}
        }
        if oci::layer_compression_of(&blob.media_type).is_none() {
            self.keep_json(out, blob.size, origin)?;
        }
        let mut stream = reader.open_blob(&blob.digest)?;
        self.writers[out].copy_blob(blob, &mut stream, origin)?;
        self.check_entries(out)
    }

    /// Copy a base image's layer into output `out` byte for byte (never recompressed), in one
    /// pass that checks it against its digest and size and its decompressed bytes against
    /// `diff_id` (the base config's, which the builder's config lists), listed with the OCI
    /// media type of its compression.
    pub(crate) fn copy_base_layer(
        &mut self,
        reader: &PackageReader,
        origin: &Path,
        blob: &Descriptor,
        diff_id: Digest,
        out: usize,
    ) -> Result<BuiltLayer> {
        check_interrupt()?;
        let encoding = super::cache::layer_encoding(blob, origin)?;
        if self.writers[out].contains(&blob.digest) {
            // Stored already, perhaps for an image whose config gives it another diffID.
            let stream = reader.open_blob(&blob.digest)?;
            read_layer_blob(stream, blob, diff_id, origin, |_| Ok(()))?;
        } else {
            self.writers[out].put_stream(&blob.media_type, |w| {
                let stream = reader.open_blob(&blob.digest)?;
                let tee = TeeReader {
                    inner: stream,
                    copy: w,
                };
                read_layer_blob(tee, blob, diff_id, origin, |_| Ok(()))
            })?;
            self.check_entries(out)?;
        }
        let mut descriptor = blob.clone();
        descriptor.media_type = match encoding {
            oci::LayerEncoding::Tar => oci::MEDIA_TYPE_LAYER_TAR,
            oci::LayerEncoding::Gzip => oci::MEDIA_TYPE_LAYER_GZIP,
            oci::LayerEncoding::Zstd => oci::MEDIA_TYPE_LAYER_ZSTD,
        }
        .to_string();
        descriptor.platform = None;
        Ok(BuiltLayer {
            descriptor,
            diff_id,
            uncompressed_size: None,
            home: out,
            executables: Default::default(),
        })
    }

    /// Count `size` bytes of manifests and configs into output `out`: a reader keeps them all
    /// in memory and accepts at most [`MAX_IMAGES_BYTES`]; `origin` is what makes them large.
    fn keep_json(&mut self, out: usize, size: u64, origin: &Path) -> Result<()> {
        self.kept_bytes[out] = self.kept_bytes[out].saturating_add(size);
        if self.kept_bytes[out] > MAX_IMAGES_BYTES {
            return Err(Error::invalid(
                origin,
                format!(
                    "the images' manifests and configs would exceed {} MiB together, more than a package reader accepts",
                    MAX_IMAGES_BYTES >> 20
                ),
            ));
        }
        Ok(())
    }

    /// Count the config and `layers` of one more image of output `out`: a reader accepts at
    /// most [`MAX_BLOBS`] of them over all its images (a layer every image shares counts once
    /// per image).
    fn count_blobs(&mut self, out: usize, layers: usize) -> Result<()> {
        self.listed_blobs[out] = self.listed_blobs[out].saturating_add(1 + layers);
        if self.listed_blobs[out] > MAX_BLOBS {
            return Err(Error::other(format!(
                "{}: the package's images would list more than the {MAX_BLOBS} configs and layers a package reader accepts (each image counts its own)",
                self.writers[out].dest().display()
            )));
        }
        Ok(())
    }

    /// Output `out` must stay within the files a package reader accepts: the archive holds the
    /// blobs plus `blobs/`, `blobs/sha256/`, `oci-layout`, `index.json` and at most one image
    /// index.
    fn check_entries(&self, out: usize) -> Result<()> {
        let writer = &self.writers[out];
        if writer.stored().0 + 5 > MAX_ENTRIES {
            return Err(Error::other(format!(
                "{}: the package would hold more than the {MAX_ENTRIES} files a package reader accepts",
                writer.dest().display()
            )));
        }
        Ok(())
    }

    /// A layer stored before, copied into `out` if it lives in another output.
    fn reuse(&mut self, key: &LayerKey, out: usize, what: &str) -> Result<Option<BuiltLayer>> {
        self.cache
            .reuse(key, &mut self.writers, out, what, self.events)
    }

    /// Write one image into output `out`: its config (the layers' diffIDs and history, the
    /// platform, `spec.config`) and its manifest, each within what a package reader accepts.
    /// Returns the manifest's descriptor with its platform and distro annotations.
    pub(crate) fn write_image(&mut self, out: usize, spec: ImageSpec<'_>) -> Result<WrittenImage> {
        self.write_image_on(out, spec, None)
    }

    /// [`ImageWriter::write_image`] for an image built on `base` (a builder on its build image):
    /// the config keeps the base's runtime settings and platform details, with the labels of
    /// `spec.config` and `created` and history normalized, as imgutil saves an image.
    pub(crate) fn write_image_on(
        &mut self,
        out: usize,
        spec: ImageSpec<'_>,
        base: Option<&BaseConfig>,
    ) -> Result<WrittenImage> {
        let t = spec.target;
        let too_large = |what: &str, size: u64| {
            check_json_size(spec.origin, t, what, size, spec.too_large_hint)
        };
        let os_version = if let Some(base) = base.filter(|b| !b.os_version.is_empty()) {
            base.os_version.clone()
        } else if t.os == "windows" {
            t.distro
                .as_ref()
                .map(|d| d.version.clone())
                .unwrap_or_default()
        } else {
            String::new()
        };
        let layers = spec.layers;
        let config = ImageConfig {
            architecture: t.arch.clone(),
            created: Some(CREATED.to_string()),
            history: layers
                .iter()
                .map(|_| History {
                    created: Some(CREATED.to_string()),
                    ..Default::default()
                })
                .collect(),
            os: t.os.clone(),
            os_version: os_version.clone(),
            os_features: base.map(|b| b.os_features.clone()).unwrap_or_default(),
            variant: t.variant.clone(),
            rootfs: RootFs {
                typ: "layers".into(),
                diff_ids: layers.iter().map(|(_, l)| l.diff_id).collect(),
            },
            config: Some(spec.config),
        };
        let config_bytes = match base {
            None => canonical(&config),
            Some(base) => canonical(&base.apply(&config)),
        };
        too_large("image config", config_bytes.len() as u64)?;
        let writer = &mut self.writers[out];
        let config_desc = writer.put_bytes(oci::MEDIA_TYPE_CONFIG, &config_bytes)?;
        let manifest = Manifest {
            schema_version: 2,
            media_type: Some(oci::MEDIA_TYPE_MANIFEST.into()),
            artifact_type: None,
            config: config_desc.clone(),
            layers: layers.iter().map(|(_, l)| l.descriptor.clone()).collect(),
            annotations: BTreeMap::new(),
        };
        let manifest_bytes = canonical(&manifest);
        too_large("image manifest", manifest_bytes.len() as u64)?;
        self.count_blobs(out, manifest.layers.len())?;
        self.keep_json(
            out,
            (config_bytes.len() + manifest_bytes.len()) as u64,
            spec.origin,
        )?;
        let mut manifest_desc =
            self.writers[out].put_bytes(oci::MEDIA_TYPE_MANIFEST, &manifest_bytes)?;
        self.check_entries(out)?;
        manifest_desc.platform = platform_of(t, os_version);
        if let Some(d) = &t.distro {
            manifest_desc
                .annotations
                .insert(ANNOTATION_DISTRO_NAME.into(), d.name.clone());
            manifest_desc
                .annotations
                .insert(ANNOTATION_DISTRO_VERSION.into(), d.version.clone());
        }
        // The index lists this descriptor (with its annotations) next to the others.
        too_large("index entry", canonical(&manifest_desc).len() as u64)?;
        self.events.detail(
            "Image",
            &format!("{} manifest {}", t.display(), manifest_desc.digest),
        );
        let report = ImageReport {
            target: t.display(),
            manifest: manifest_desc.digest,
            config: config_desc.digest,
            layers: layers
                .into_iter()
                .map(|(content, l)| LayerReport {
                    content,
                    digest: l.descriptor.digest,
                    diff_id: l.diff_id,
                    size: l.descriptor.size,
                    uncompressed_size: l.uncompressed_size,
                })
                .collect(),
        };
        Ok(WrittenImage {
            descriptor: manifest_desc,
            target: t.clone(),
            report,
        })
    }

    /// Write every output's `index.json` (`entries[i]` for output `i`) and put them all in
    /// place, all or none. Several entries get an image index between `index.json` and the
    /// manifests (the shape skopeo and other OCI tools read); one is referenced directly, as
    /// pack does.
    pub(crate) fn finish(self, entries: Vec<Vec<Descriptor>>) -> Result<Vec<FinishedOutput>> {
        assert_eq!(
            entries.len(),
            self.writers.len(),
            "one entry list per output"
        );
        let mut staged = Vec::new();
        let mut finished = Vec::new();
        for (mut writer, entries) in self.writers.into_iter().zip(entries) {
            check_interrupt()?;
            let root = if entries.len() == 1 {
                entries.into_iter().next().expect("one entry")
            } else {
                let index = Index::new(entries);
                writer.put_bytes(oci::MEDIA_TYPE_INDEX, &canonical(&index))?
            };
            let (blobs, blob_bytes) = writer.stored();
            let output: Staged = writer.stage(&Index::new(vec![root.clone()]))?;
            finished.push(FinishedOutput {
                path: output.dest().to_path_buf(),
                root,
                blobs,
                blob_bytes,
            });
            staged.push(output);
        }
        crate::layout::commit_outputs(staged)?;
        Ok(finished)
    }
}

/// The descriptor's platform. The image spec requires `architecture` wherever `platform`
/// appears: with no known architecture the descriptor has no platform (as pack writes it); the
/// config keeps the OS and its empty architecture.
fn platform_of(t: &ExpandedTarget, os_version: String) -> Option<Platform> {
    (!t.arch.is_empty()).then(|| Platform {
        architecture: t.arch.clone(),
        os: t.os.clone(),
        os_version,
        os_features: Vec::new(),
        variant: t.variant.clone(),
    })
}

/// A JSON blob must be one the package reader accepts ([`MAX_JSON_BLOB`]); `origin` is the file
/// whose values make it large, `hint` what to do about it.
pub(crate) fn check_json_size(
    origin: &Path,
    t: &ExpandedTarget,
    what: &str,
    size: u64,
    hint: &str,
) -> Result<()> {
    if size > MAX_JSON_BLOB {
        return Err(Error::invalid(
            origin,
            format!(
                "the {what} for target {} would be {size} bytes, over the {MAX_JSON_BLOB}-byte limit packages are read with; {hint}",
                t.display()
            ),
        ));
    }
    Ok(())
}

/// A distro as [`ANNOTATION_DISTROS`] lists it (`name@version`, or `name` without a version).
fn distro_entry(d: &Distro) -> String {
    if d.version.is_empty() {
        d.name.clone()
    } else {
        format!("{}@{}", d.name, d.version)
    }
}

/// Whether [`ANNOTATION_DISTROS`] can list `d` so that it reads back the same.
fn listable(d: &Distro) -> bool {
    !d.name.is_empty() && !d.name.contains(['@', ';']) && !d.version.contains(';')
}

/// The index entries of an output: one per distinct (manifest, platform). Targets that differ
/// only by distro and give the same image share one entry that lists their distros, so a reader
/// choosing by platform finds one image, not several identical ones. Several entries must each
/// have a platform, or no reader could choose among them.
pub(crate) fn index_entries(images: &[WrittenImage]) -> Result<Vec<Descriptor>> {
    let mut groups: Vec<(Descriptor, Vec<&WrittenImage>)> = Vec::new();
    for image in images {
        let d = &image.descriptor;
        let same = groups
            .iter_mut()
            .find(|(g, _)| g.digest == d.digest && g.platform == d.platform);
        match same {
            Some((_, members)) => members.push(image),
            None => groups.push((d.clone(), vec![image])),
        }
    }
    let mut entries = Vec::new();
    for (mut desc, members) in groups {
        let distros: Option<Vec<&Distro>> =
            members.iter().map(|m| m.target.distro.as_ref()).collect();
        match distros {
            _ if members.len() == 1 => entries.push(desc),
            // A target without a distro serves every distro: so does the shared image.
            None => {
                desc.annotations.remove(ANNOTATION_DISTRO_NAME);
                desc.annotations.remove(ANNOTATION_DISTRO_VERSION);
                entries.push(desc);
            }
            Some(list) if list.iter().all(|d| listable(d)) => {
                desc.annotations.remove(ANNOTATION_DISTRO_NAME);
                desc.annotations.remove(ANNOTATION_DISTRO_VERSION);
                let joined = list
                    .iter()
                    .map(|d| distro_entry(d))
                    .collect::<Vec<String>>()
                    .join(";");
                // The writer keeps to the reader's limits: verify refuses a longer list.
                if joined.len() > crate::verify::MAX_DISTROS_ANNOTATION {
                    let t = members[0].target.display();
                    return Err(Error::other(format!(
                        "{} distros of target '{}' give one image, and its {ANNOTATION_DISTROS} annotation would be {} bytes, over the {} bytes packages are read with; list fewer distros",
                        members.len(),
                        crate::ui::quote_name(t.split(':').next().unwrap_or_default()),
                        joined.len(),
                        crate::verify::MAX_DISTROS_ANNOTATION
                    )));
                }
                desc.annotations.insert(ANNOTATION_DISTROS.into(), joined);
                entries.push(desc);
            }
            // Names the list cannot carry: one entry per distro, each with its own annotations.
            Some(_) => entries.extend(members.iter().map(|m| m.descriptor.clone())),
        }
    }
    if entries.len() > 1 {
        if let Some(i) = entries.iter().position(|e| e.platform.is_none()) {
            let t = images
                .iter()
                .find(|m| m.descriptor.digest == entries[i].digest)
                .map(|m| m.target.display())
                .unwrap_or_default();
            return Err(Error::TargetWithoutArch { target: t });
        }
    }
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::Event;
    use std::sync::Mutex;

    fn target(arch: &str, distro: Option<(&str, &str)>) -> ExpandedTarget {
        ExpandedTarget {
            os: "linux".into(),
            arch: arch.into(),
            distro: distro.map(|(name, version)| Distro {
                name: name.into(),
                version: version.into(),
            }),
            ..Default::default()
        }
    }

    /// An image with manifest bytes `manifest`, written for `t` (its descriptor as
    /// [`ImageWriter::write_image`] makes it).
    fn image(manifest: &str, t: ExpandedTarget) -> WrittenImage {
        let digest = Digest::of(manifest.as_bytes());
        let mut descriptor = Descriptor {
            media_type: oci::MEDIA_TYPE_MANIFEST.into(),
            digest,
            size: manifest.len() as u64,
            platform: platform_of(&t, String::new()),
            annotations: BTreeMap::new(),
            artifact_type: None,
            urls: Vec::new(),
        };
        if let Some(d) = &t.distro {
            descriptor
                .annotations
                .insert(ANNOTATION_DISTRO_NAME.into(), d.name.clone());
            descriptor
                .annotations
                .insert(ANNOTATION_DISTRO_VERSION.into(), d.version.clone());
        }
        WrittenImage {
            descriptor,
            report: ImageReport {
                target: t.display(),
                manifest: digest,
                config: digest,
                layers: Vec::new(),
            },
            target: t,
        }
    }

    /// Each entry as `digest-prefix annotations`, for comparing.
    fn shown(entries: &[Descriptor]) -> Vec<String> {
        entries
            .iter()
            .map(|e| {
                let notes: Vec<String> = e
                    .annotations
                    .iter()
                    .map(|(k, v)| format!("{}={v}", k.rsplit('.').next().unwrap_or(k)))
                    .collect();
                format!("{} {}", &e.digest.to_string()[7..11], notes.join(","))
            })
            .collect()
    }

    /// An image on a base keeps the base's runtime settings and other fields; its labels are
    /// the caller's (the base's own are not added behind its back), and what the writer sets
    /// (platform, rootfs, history) is never taken from the base.
    #[test]
    fn base_config_is_kept_with_the_callers_labels() {
        let json = |v: serde_json::Value| match v {
            serde_json::Value::Object(m) => m,
            _ => unreachable!(),
        };
        let base = BaseConfig {
            runtime: json(serde_json::json!({
                "Env": ["A=1"], "User": "1000", "Labels": {"old": "1"}, "WorkingDir": "/layers"
            })),
            os_version: String::new(),
            os_features: vec![],
            other: json(serde_json::json!({"author": "me", "architecture": "s390x"})),
        };
        let mut labels = BTreeMap::new();
        labels.insert("new".to_string(), "2".to_string());
        let config = ImageConfig {
            architecture: "amd64".into(),
            created: Some(CREATED.into()),
            history: vec![],
            os: "linux".into(),
            os_version: String::new(),
            os_features: vec![],
            variant: String::new(),
            rootfs: RootFs {
                typ: "layers".into(),
                diff_ids: vec![],
            },
            config: Some(RuntimeConfig { labels }),
        };
        let got = String::from_utf8(canonical(&base.apply(&config))).unwrap();
        assert_eq!(
            got,
            r#"{"architecture":"amd64","author":"me","config":{"Env":["A=1"],"Labels":{"new":"2"},"User":"1000","WorkingDir":"/layers"},"created":"1980-01-01T00:00:01Z","os":"linux","rootfs":{"diff_ids":[],"type":"layers"}}"#
        );
    }

    /// Images → index entries: identical images of one platform share an entry that lists
    /// their distros; different images keep their own.
    #[test]
    fn index_entries_table() {
        let a = |t| image("a", t);
        let b = |t| image("b", t);
        let ha = &Digest::of(b"a").to_string()[7..11];
        let hb = &Digest::of(b"b").to_string()[7..11];
        let u22 = Some(("ubuntu", "22.04"));
        let u24 = Some(("ubuntu", "24.04"));
        let table: Vec<(Vec<WrittenImage>, Vec<String>)> = vec![
            (vec![a(target("amd64", None))], vec![format!("{ha} ")]),
            (
                vec![a(target("amd64", u22))],
                vec![format!("{ha} name=ubuntu,version=22.04")],
            ),
            (
                vec![a(target("amd64", u22)), a(target("amd64", u24))],
                vec![format!("{ha} distros=ubuntu@22.04;ubuntu@24.04")],
            ),
            (
                vec![a(target("amd64", u22)), a(target("amd64", None))],
                vec![format!("{ha} ")],
            ),
            (
                vec![a(target("amd64", u22)), b(target("amd64", u24))],
                vec![
                    format!("{ha} name=ubuntu,version=22.04"),
                    format!("{hb} name=ubuntu,version=24.04"),
                ],
            ),
            (
                vec![a(target("amd64", None)), a(target("arm64", None))],
                vec![format!("{ha} "), format!("{ha} ")],
            ),
            // A name the list cannot carry (empty): one entry per distro.
            (
                vec![a(target("amd64", Some(("", "1")))), a(target("amd64", u22))],
                vec![
                    format!("{ha} name=,version=1"),
                    format!("{ha} name=ubuntu,version=22.04"),
                ],
            ),
        ];
        for (images, expected) in table {
            let targets: Vec<String> = images.iter().map(|i| i.target.display()).collect();
            let entries = index_entries(&images).unwrap();
            assert_eq!(shown(&entries), expected, "{targets:?}");
        }
    }

    /// Several entries each need a platform; a long distro list is refused as verify would.
    #[test]
    fn index_entries_errors() {
        let images = [
            image("a", target("", None)),
            image("b", target("amd64", None)),
        ];
        let e = index_entries(&images).unwrap_err();
        assert!(
            matches!(&e, Error::TargetWithoutArch { target } if target == "linux"),
            "{e:?}"
        );
        let e = e.to_string();
        assert!(e.starts_with("target 'linux' has no architecture"), "{e}");
        assert!(!e.contains("--"), "{e}");
        let long = "v".repeat(crate::verify::MAX_DISTROS_ANNOTATION);
        let images = [
            image("a", target("amd64", Some(("ubuntu", &long)))),
            image("a", target("amd64", Some(("debian", "12")))),
        ];
        let e = index_entries(&images).unwrap_err().to_string();
        assert!(e.contains("list fewer distros"), "{e}");
    }

    /// Eight outputs needing one layer build it once and copy it into the others; the outputs
    /// are in place only after `finish`.
    #[test]
    fn a_layer_is_built_once_for_every_output() {
        let dir = tempfile::tempdir().unwrap();
        let paths: Vec<PathBuf> = (0..8).map(|i| dir.path().join(format!("o{i}"))).collect();
        let seen = Mutex::new(Vec::new());
        let sink = |e: &Event<'_>| {
            if let Event::Status { verb, .. } | Event::Detail { verb, .. } = e {
                seen.lock().unwrap().push(verb.to_string());
            }
        };
        let mut writer =
            ImageWriter::create(&paths, OutputFormat::Layout, Compression::None, 1, &sink).unwrap();
        let mut written = Vec::new();
        for out in 0..paths.len() {
            let key = LayerKey::Import {
                diff_id: Digest::of(b"layer"),
            };
            let layer = writer
                .build_layer(key, out, "test", |w| {
                    w.write_all(&[0u8; 1024]).unwrap();
                    Ok(LayerExecutables::default())
                })
                .unwrap();
            let t = target("amd64", None);
            let spec = ImageSpec {
                target: &t,
                layers: vec![("test".into(), layer)],
                config: RuntimeConfig::default(),
                origin: Path::new("buildpack.toml"),
                too_large_hint: "",
            };
            written.push(writer.write_image(out, spec).unwrap());
        }
        assert!(!paths[0].exists());
        let entries = written
            .iter()
            .map(|w| index_entries(std::slice::from_ref(w)).unwrap())
            .collect();
        let finished = writer.finish(entries).unwrap();
        let seen = seen.into_inner().unwrap();
        assert_eq!(seen.iter().filter(|v| *v == "Built").count(), 1, "{seen:?}");
        assert_eq!(
            seen.iter().filter(|v| *v == "Reusing").count(),
            7,
            "{seen:?}"
        );
        assert_eq!(finished.len(), 8);
        for (f, w) in finished.iter().zip(&written) {
            assert!(f.path.is_dir());
            assert_eq!(f.root.digest, w.descriptor.digest);
            assert_eq!(f.blobs, 3, "layer, config, manifest");
        }
        assert!(written
            .windows(2)
            .all(|w| w[0].report.manifest == w[1].report.manifest));
    }

    /// What `merge` does: images of finished packages copied blob for blob into a new output
    /// (manifest and config byte for byte, layers checked against digest and diffID) give the
    /// same index entry; a blob that is not what its descriptor says is refused.
    #[test]
    fn images_copied_from_a_package_are_byte_for_byte() {
        let dir = tempfile::tempdir().unwrap();
        let first = dir.path().join("first");
        let t = target("arm64", None);
        let mut writer = ImageWriter::create(
            std::slice::from_ref(&first),
            OutputFormat::Layout,
            Compression::DEFAULT,
            1,
            &crate::events::NoEvents,
        )
        .unwrap();
        let key = LayerKey::Import {
            diff_id: Digest::of(b"x"),
        };
        let layer = writer
            .build_layer(key, 0, "test", |w| {
                w.write_all(&[7u8; 4096]).unwrap();
                Ok(LayerExecutables::default())
            })
            .unwrap();
        let spec = ImageSpec {
            target: &t,
            layers: vec![("test".into(), layer)],
            config: RuntimeConfig::default(),
            origin: Path::new("buildpack.toml"),
            too_large_hint: "",
        };
        let image = writer.write_image(0, spec).unwrap();
        let entries = index_entries(std::slice::from_ref(&image)).unwrap();
        writer.finish(vec![entries.clone()]).unwrap();

        let reader = PackageReader::open(&first).unwrap();
        let found = reader.images().unwrap();
        assert_eq!(found.len(), 1);
        let second = dir.path().join("second");
        let mut merged = ImageWriter::create(
            std::slice::from_ref(&second),
            OutputFormat::Layout,
            Compression::DEFAULT,
            1,
            &crate::events::NoEvents,
        )
        .unwrap();
        let origin = reader.path().to_path_buf();
        for (blob, diff_id) in found[0]
            .manifest
            .layers
            .iter()
            .zip(&found[0].config.rootfs.diff_ids)
        {
            let source = LayerBlob {
                reader: &reader,
                origin: &origin,
                blob,
                diff_id: *diff_id,
            };
            let copied = merged.copy_layer(&source, 0, "test", |_| Ok(())).unwrap();
            assert_eq!(copied.descriptor, *blob, "same compression: the same bytes");
        }
        merged
            .copy_blob(&reader, &origin, &found[0].manifest.config, 0)
            .unwrap();
        merged
            .copy_blob(&reader, &origin, &found[0].descriptor, 0)
            .unwrap();
        let mut liar = found[0].descriptor.clone();
        liar.size -= 1;
        let e = merged.copy_blob(&reader, &origin, &liar, 0).unwrap_err();
        assert!(matches!(e, Error::SizeMismatch { .. }), "{e}");
        liar.digest = Digest::of(b"not there");
        let e = merged.copy_blob(&reader, &origin, &liar, 0).unwrap_err();
        assert!(matches!(e, Error::MissingBlob { .. }), "{e}");
        let finished = merged
            .finish(vec![vec![found[0].descriptor.clone()]])
            .unwrap();
        assert_eq!(finished[0].root, entries[0]);
        assert_eq!(finished[0].blobs, 3);
    }
}
