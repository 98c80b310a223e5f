//! `verify`: every check a careful reader makes on a package or a builder, reported as one line
//! per defect.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use crate::cancel::Cancel;
use crate::cnb::{
    annotated_distros, LayersLabel, ModuleKind, PackageMetadata, LABEL_EXTENSION_LAYERS,
    LABEL_LAYERS, LABEL_METADATA,
};
use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::layout::layers::{
    read_layer, LayerFacts, LIFECYCLE_BINARIES, MAX_DESCRIPTOR, MAX_VIOLATIONS_PER_LAYER,
};
use crate::layout::tree::{
    Budget, Child, Configs, Exceeded, Failure, NodeBody, OnFailure, Others, Part, Policy, Style,
    Walker,
};
use crate::layout::{LayerLookup, LayerMiss, PackageReader, MAX_IMAGES, MAX_INDEX_DEPTH};
use crate::oci::{self, Descriptor, ImageConfig, Manifest};
use crate::target::{self, ExpandedTarget, Target};

/// How verify walks a package: every image and config read, other entries left to the checks,
/// failures recorded and the walk continued.
const WALK: Policy = Policy {
    others: Others::Skip,
    configs: Configs::Always,
    style: Style::Reader,
    failures: OnFailure::Record,
};

/// The most distinct platforms remembered for [`VerifyReport::platforms`].
const MAX_PLATFORMS: usize = 4096;
/// The longest distros annotation read (a few hundred distros).
pub(crate) const MAX_DISTROS_ANNOTATION: usize = 16 * 1024;

/// What `verify` found.
#[derive(Debug, Clone, Default, serde::Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct VerifyReport {
    /// One line per defect, the first [`MAX_LISTED_DEFECTS`]; empty when the package is sound.
    pub defects: Vec<String>,
    /// How many distinct defects were found in all (a crafted package can hold hundreds of
    /// thousands: only the first ones are listed). Left out of the JSON when there are none.
    #[serde(skip_serializing_if = "is_zero")]
    pub defect_count: usize,
    /// Images checked.
    pub images: usize,
    /// Blobs checked.
    pub blobs: usize,
    /// Bytes of blobs read and hashed.
    pub bytes: u64,
    /// The platforms the package holds, one per distro an image serves
    /// (`os/arch/variant:name@version`), in index order.
    pub platforms: Vec<String>,
    /// Expected platforms ([`VerifyOptions::expect_platforms`]) the package does not hold.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub missing_platforms: Vec<String>,
    /// Platforms the package holds that were not expected.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub extra_platforms: Vec<String>,
}

/// The most defect lines kept in [`VerifyReport::defects`]; the rest are only counted.
pub const MAX_LISTED_DEFECTS: usize = 200;

fn is_zero(n: &usize) -> bool {
    *n == 0
}

/// What to check beyond the package's soundness.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct VerifyOptions {
    /// When not empty, the package must hold exactly these platforms (a release gate). A target
    /// without distros stands for its os/arch/variant with any distros; one with distros, for
    /// exactly those. Architecture and variant must match exactly (`linux` is a platform with
    /// no architecture, not every Linux platform).
    pub expect_platforms: Vec<Target>,
    /// Stops the verification at its next read once cancelled.
    pub cancel: Cancel,
}

impl VerifyReport {
    /// Whether no defect was found.
    pub fn is_ok(&self) -> bool {
        self.defects.is_empty()
    }
}

/// Check a `.cnb` file or layout directory. Structural failures that stop reading (an archive
/// that cannot be opened) are reported as defects too; `Err` is for failures of the machine
/// (unreadable file), not of the package.
pub fn verify(path: &Path) -> Result<VerifyReport> {
    verify_with(path, &VerifyOptions::default())
}

/// [`verify`], with the further checks of `opts`.
pub fn verify_with(path: &Path, opts: &VerifyOptions) -> Result<VerifyReport> {
    let report = opts.cancel.scope(|| verify_checked(path, opts))?;
    // Reads fail once cancelled; what they reported then are not defects of the package.
    if opts.cancel.is_cancelled() {
        return Err(Error::Interrupted);
    }
    Ok(report)
}

fn verify_checked(path: &Path, opts: &VerifyOptions) -> Result<VerifyReport> {
    let mut report = VerifyReport::default();
    let reader = match PackageReader::open(path) {
        Ok(r) => r,
        Err(e) => {
            // Defect lines are printed after the package's name: do not repeat it.
            let line = match e {
                Error::Invalid { path: p, message } if p == path => message,
                e => e.to_string(),
            };
            report.defects.push(line);
            report.defect_count = 1;
            return Ok(report);
        }
    };
    check_reader(&reader, report, opts)
}

/// Verify a package already open, with `opts.cancel` current: what a command that goes on to
/// read the package calls, so that what it reads is what was verified (a layout's
/// `index.json` is covered by no digest and could change between two opens).
pub(crate) fn verify_reader(reader: &PackageReader, opts: &VerifyOptions) -> Result<VerifyReport> {
    let report = opts
        .cancel
        .scope(|| check_reader(reader, VerifyReport::default(), opts))?;
    if opts.cancel.is_cancelled() {
        return Err(Error::Interrupted);
    }
    Ok(report)
}

/// Every check on an open package, into `report`.
fn check_reader(
    reader: &PackageReader,
    report: VerifyReport,
    opts: &VerifyOptions,
) -> Result<VerifyReport> {
    // Read the tree once, every failure recorded where it is met; verify reports them in
    // listing order with its own checks.
    let mut walker = Walker::new(reader, WALK);
    let top = walker.load_list(&reader.index().manifests, 0, None);
    let mut v = Verifier {
        reader,
        report,
        referenced: BTreeSet::new(),
        layers: BTreeMap::new(),
        checked: BTreeMap::new(),
        visited: BTreeSet::new(),
        walk: &walker,
        listings: Budget::default(),
        stopped: false,
        manifests_done: BTreeMap::new(),
        held: Vec::new(),
        held_seen: BTreeSet::new(),
        manifest_types: BTreeMap::new(),
        configs_checked: BTreeSet::new(),
        seen_defects: BTreeSet::new(),
    };
    v.check_layout_file();
    let index = reader.index().clone();
    if let Some(mt) = &index.media_type {
        if !oci::is_index(mt) {
            v.defect(format!("index.json: mediaType {mt} is not an image index"));
        }
    }
    if index.manifests.is_empty() {
        v.defect("index.json: no manifests".to_string());
    }
    v.check_key_cases(reader.index_bytes(), "index.json");
    match &top {
        Ok(top) => v.check_list(top, None, "index.json", 0),
        Err(e) => v.defect(e.to_string()),
    }
    // After a limit stopped the walk, blobs not reached yet are not unreferenced.
    if !v.stopped {
        v.check_unreferenced();
    }
    v.check_platforms(&opts.expect_platforms);
    Ok(v.report)
}

/// Parse expected platforms: comma-separated values, each in the grammar of a packaging target
/// (`os/arch[/variant][:name@version[;name@version]...]`), or a bare OS for a platform with no
/// architecture. Returns the targets and pack's warnings; the error names the value.
pub fn parse_expected_platforms(values: &[String]) -> Result<(Vec<Target>, Vec<String>)> {
    let mut targets = Vec::new();
    let mut warnings = Vec::new();
    for value in values {
        for one in value.split(',') {
            let t = parse_expected_platform(one, &mut warnings)
                .map_err(|e| Error::usage(format!("invalid expected platform '{one}': {e}")))?;
            targets.push(t);
        }
    }
    Ok((targets, warnings))
}

/// Parse one expected platform (see [`parse_expected_platforms`]), adding pack's warnings to
/// `warnings`; the error says what is wrong with it, without naming it.
pub fn parse_expected_platform(one: &str, warnings: &mut Vec<String>) -> Result<Target> {
    let (platform, distros) = one.split_once(':').unwrap_or((one, ""));
    if !platform.contains('/') && target::supports_os(platform) {
        Ok(Target {
            os: platform.to_string(),
            distros: target::parse_distros(distros, warnings)?,
            ..Default::default()
        })
    } else {
        target::parse_target(one, warnings)
    }
}

struct Verifier<'a> {
    reader: &'a PackageReader,
    report: VerifyReport,
    referenced: BTreeSet<Digest>,
    /// Layers read, by digest and the encoding they were read with: a blob described once as
    /// gzip and once as zstd is decoded both ways.
    layers: BTreeMap<(Digest, oci::LayerEncoding), LayerFacts>,
    /// Blobs found to differ from their digest when hashed (hashing is done once per blob;
    /// the size and media type of every descriptor are checked every time).
    checked: BTreeMap<Digest, bool>,
    /// Indexes descended into, and images checked (by manifest and the platform it is listed
    /// with): each is read once however often it is listed.
    visited: BTreeSet<(Digest, String)>,
    /// The walk of the package's tree (one [`Budget`] for reading, as for inspect, packaging
    /// and push), with what it could not read.
    walk: &'a Walker<'a>,
    /// Descriptors and manifest and index listings as verify meets them (the walk's limits,
    /// counted again where verify checks an index listed again under another platform).
    listings: Budget,
    /// Set when a limit was reached: nothing more is checked.
    stopped: bool,
    /// The mediaType a manifest declares, by manifest digest, for its later listings.
    manifest_types: BTreeMap<Digest, Option<String>>,
    /// Configs whose keys were checked, by digest.
    configs_checked: BTreeSet<Digest>,
    /// Defect lines already reported (a blob listed many times is reported once per problem).
    seen_defects: BTreeSet<String>,
    /// Manifests fully checked, with their config's (os, architecture, variant, os.version)
    /// when it could be read: a manifest listed again (under another platform) is compared, not
    /// re-read, so a crafted index cannot make us hash one large blob thousands of times.
    manifests_done: BTreeMap<Digest, Option<PlatformKey>>,
    /// The platforms the package holds, in index order: every (manifest, platform, distro) of
    /// every index, the platform left unknown (`None`) when the descriptor gives none.
    held: Vec<HeldPlatform>,
    /// The same, for lookups; it grows one past [`MAX_PLATFORMS`] when there are more.
    held_seen: BTreeSet<HeldPlatform>,
}

type HeldPlatform = (Digest, Option<PlatformKey>, Option<target::Distro>);

/// What the layers labels of one image give its layers.
#[derive(Default)]
struct Given {
    /// The module directories each layer (by position) is given.
    dirs: BTreeMap<usize, BTreeSet<String>>,
    /// Which module each directory belongs to: ids `a/b` and `a_b` (and, on Windows, ids
    /// differing in case only) share one, so two layers would fill it together and each could
    /// place entries through the other's links.
    owners: BTreeMap<String, String>,
}

type PlatformKey = (String, String, String, String);

impl Verifier<'_> {
    fn defect(&mut self, line: String) {
        if self.seen_defects.insert(line.clone()) {
            self.report.defect_count += 1;
            if self.report.defects.len() < MAX_LISTED_DEFECTS {
                self.report.defects.push(line);
            }
        }
    }

    fn check_layout_file(&mut self) {
        let desc_free = match self.reader.files() {
            Ok(f) => f.get("oci-layout").copied(),
            // Too many files to list: that is the defect, not a missing oci-layout.
            Err(e) => return self.defect(e.to_string()),
        };
        match desc_free {
            None => self.defect("oci-layout: missing".into()),
            Some(_) => {
                // Read through the same path as blobs: a tiny bounded file.
                let ok = self
                    .read_named_json("oci-layout")
                    .and_then(|v: serde_json::Value| {
                        v.get("imageLayoutVersion")
                            .and_then(|s| s.as_str())
                            .map(|s| s.to_string())
                    });
                match ok {
                    Some(v) if v.starts_with("1.") => {}
                    Some(v) => {
                        self.defect(format!("oci-layout: unsupported imageLayoutVersion {v}"))
                    }
                    None => {
                        self.defect("oci-layout: not valid JSON with imageLayoutVersion".into())
                    }
                }
            }
        }
    }

    /// Go's `encoding/json`, which pack, the lifecycle and containerd read these documents with,
    /// matches object keys to struct fields without regard to case and keeps the last match:
    /// `{"architecture": "amd64", "Architecture": "arm64"}` is arm64 to them and amd64 here. Two
    /// keys of one object that differ only in case make readers disagree, so each is a defect.
    /// String maps (labels, annotations) are matched exactly by every reader and not checked.
    fn check_key_cases(&mut self, bytes: &[u8], what: &str) {
        let Ok(value) = serde_json::from_slice::<serde_json::Value>(bytes) else {
            return; // the typed read reports bad JSON
        };
        let mut found = Vec::new();
        key_case_clashes(&value, &mut found);
        for (a, b) in found.into_iter().take(MAX_VIOLATIONS_PER_LAYER) {
            self.defect(format!(
                "{what}: keys '{}' and '{}' differ only in case (Go readers take the later one)",
                crate::ui::quote_name(&a),
                crate::ui::quote_name(&b)
            ));
        }
    }

    fn read_named_json<T: serde::de::DeserializeOwned>(&self, name: &str) -> Option<T> {
        let files = self.reader.files().ok()?;
        let size = *files.get(name)?;
        if size > 64 * 1024 {
            return None;
        }
        // oci-layout is not content-addressed; read it as an unverified small file.
        let bytes = self.reader.read_file(name, size).ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    /// Check a descriptor against its blob: presence and size every time (each descriptor
    /// can lie on its own), and whether hashing found it damaged before. Returns whether the
    /// blob is sound for this descriptor.
    fn check_blob(&mut self, desc: &Descriptor, referrer: &str) -> bool {
        self.referenced.insert(desc.digest);
        let hashed_ok = self.checked.get(&desc.digest).copied().unwrap_or(true);
        let ok = match self.reader.blob_size(&desc.digest) {
            None => {
                self.defect(format!("{referrer}: blob {} is missing", desc.digest));
                false
            }
            Some(stored) if stored != desc.size => {
                self.defect(format!(
                    "{referrer}: blob {} is {stored} bytes but its descriptor says {}",
                    desc.digest, desc.size
                ));
                false
            }
            Some(_) => true,
        };
        ok && hashed_ok
    }

    /// Check the entries of a list at `depth` (index.json's, or an index's) in listing order:
    /// each descriptor every time it is listed, each image and index once per media type and
    /// platform it is listed with. The walk read their nodes; what it could not read is reported
    /// where verify meets it.
    fn check_list(
        &mut self,
        children: &[Child],
        parent: Option<&Digest>,
        referrer: &str,
        depth: usize,
    ) {
        if depth > MAX_INDEX_DEPTH {
            self.defect(format!("{referrer}: image indexes nested too deeply"));
            return;
        }
        let mut seen_platforms = BTreeMap::new();
        let manifests = children
            .iter()
            .filter(|c| oci::is_manifest(&c.descriptor.media_type))
            .count();
        // How often each ref name occurs: a manifest with a name of its own can be chosen by it.
        let mut ref_names: BTreeMap<&str, usize> = BTreeMap::new();
        if manifests > 1 {
            for c in children {
                if let Some(name) = c.descriptor.annotations.get(oci::ANNOTATION_REF_NAME) {
                    *ref_names.entry(name).or_default() += 1;
                }
            }
        }
        for child in children {
            let d = &child.descriptor;
            if self.stopped {
                return;
            }
            // Counted as verify meets them (an index listed again under another platform is
            // checked again), so no later than the walk counted them.
            if let Err(limit) = self.listings.descriptor() {
                self.stopped = true;
                return self.defect(format!("{referrer}: {limit}"));
            }
            self.check_descriptor_platform(d, &ref_names, manifests, referrer);
            let image_or_index = oci::is_manifest(&d.media_type) || oci::is_index(&d.media_type);
            if image_or_index && self.listings.listing().is_err() {
                self.stopped = true;
                return self.defect(format!(
                    "{referrer}: the package's indexes list more than {MAX_IMAGES} images"
                ));
            }
            if oci::is_manifest(&d.media_type) {
                self.hold(d);
            }
            let platform = serde_json::to_string(&d.platform).unwrap_or_default();
            let listed = (d.digest, format!("{}\0{platform}", d.media_type));
            if self.visited.contains(&listed) {
                // Listed before with the same media type and platform: its content was
                // checked, but this descriptor's own size still must match.
                self.check_blob(d, referrer);
                continue;
            }
            // A listing that names a missing blob or gives it another size checks none of its
            // content: a later, sound listing of it still must.
            if self.reader.blob_size(&d.digest) == Some(d.size) {
                self.visited.insert(listed);
            }
            if oci::is_manifest(&d.media_type) {
                if let Some(p) = &d.platform {
                    let key = (
                        p.os.clone(),
                        p.architecture.clone(),
                        p.variant.clone(),
                        p.os_version.clone(),
                        d.annotations.clone(),
                    );
                    if let Some(prev) = seen_platforms.insert(key, d.digest) {
                        if prev != d.digest {
                            self.defect(format!(
                                "{referrer}: two manifests ({prev} and {}) claim the same platform",
                                d.digest
                            ));
                        }
                    }
                }
                self.check_image(child, referrer);
            } else if oci::is_index(&d.media_type) {
                if self.check_blob(d, referrer) {
                    self.check_index(child, depth);
                }
            } else {
                self.check_blob(d, referrer);
                self.defect(format!(
                    "{referrer}: descriptor {} has unexpected media type '{}'",
                    d.digest, d.media_type
                ));
            }
        }
        // The walk read no further: the next entry is past the limit for verify too.
        if !self.stopped && self.walk.cut_short(parent) {
            self.stopped = true;
            self.defect(format!("{referrer}: {}", Exceeded::Descriptors));
        }
    }

    /// Report why the walk has no node for `part` listed as `listed`: it could not be read, or a limit
    /// ended the reading (then nothing more is checked).
    fn unread(&mut self, listed: &Descriptor, part: Part) {
        match self.walk.failure(listed, part) {
            Some(Failure::Unreadable(e)) => self.defect(e.to_string()),
            Some(Failure::Limit(limit)) => self.halt(Some(*limit)),
            None => self.halt(self.walk.halted()),
        }
    }

    /// A limit was reached: report it, and check nothing more.
    fn halt(&mut self, limit: Option<Exceeded>) {
        self.stopped = true;
        if let Some(limit) = limit {
            self.defect(limit.to_string());
        }
    }

    fn check_index(&mut self, child: &Child, depth: usize) {
        let d = &child.descriptor;
        let Some(node) = &child.node else {
            return self.unread(d, Part::Index);
        };
        let NodeBody::Index { children, declared } = &node.body else {
            return; // listed as an index, so read as one
        };
        self.check_key_cases(&node.bytes, &format!("index {}", d.digest));
        if let Some(mt) = declared {
            if mt != &d.media_type {
                self.defect(format!(
                    "index {}: mediaType {mt} differs from its descriptor's {}",
                    d.digest, d.media_type
                ));
            }
        }
        let name = format!("index {}", d.digest.short());
        self.check_list(children, Some(&d.digest), &name, depth + 1);
    }

    fn check_image(&mut self, child: &Child, referrer: &str) {
        let d = &child.descriptor;
        self.report.images += 1;
        if !self.check_blob(d, referrer) {
            return;
        }
        let name = format!("manifest {}", d.digest.short());
        if let Some(done) = self.manifests_done.get(&d.digest).cloned() {
            if let Some(cfg) = done {
                self.check_platform(d, &cfg);
            }
            if let Some(Some(mt)) = self.manifest_types.get(&d.digest).cloned() {
                if mt != d.media_type {
                    self.defect(format!(
                        "{name}: mediaType {mt} differs from its descriptor's {}",
                        d.media_type
                    ));
                }
            }
            return;
        }
        self.manifests_done.insert(d.digest, None);
        let Some((node, manifest)) = child.node.as_ref().and_then(|n| Some((n, n.manifest()?)))
        else {
            return self.unread(d, Part::Manifest);
        };
        self.check_key_cases(&node.bytes, &name);
        self.manifest_types
            .insert(d.digest, manifest.media_type.clone());
        if let Some(Failure::Limit(limit)) = self.walk.failure(d, Part::Manifest) {
            return self.halt(Some(*limit));
        }
        if let Some(mt) = &manifest.media_type {
            if mt != &d.media_type {
                self.defect(format!(
                    "{name}: mediaType {mt} differs from its descriptor's {}",
                    d.media_type
                ));
            }
        }
        if !oci::is_config(&manifest.config.media_type) {
            self.defect(format!(
                "{name}: config has unexpected media type '{}'",
                manifest.config.media_type
            ));
        }
        if !self.check_blob(&manifest.config, &name) {
            return;
        }
        let config_digest = manifest.config.digest;
        let Some((config_bytes, config)) = node
            .config_blob()
            .and_then(|c| Some((&c.bytes, c.config.as_ref()?)))
        else {
            return self.unread(&manifest.config, Part::Config);
        };
        // A config shared by many manifests is checked once.
        if self.configs_checked.insert(config_digest) {
            self.check_key_cases(config_bytes, &format!("config {config_digest}"));
        }
        let cfg: PlatformKey = (
            config.os.clone(),
            config.architecture.clone(),
            config.variant.clone(),
            config.os_version.clone(),
        );
        self.check_platform(d, &cfg);
        self.manifests_done.insert(d.digest, Some(cfg));
        if config.rootfs.diff_ids.len() != manifest.layers.len() {
            self.defect(format!(
                "{name}: {} layers but the config lists {} diffIDs",
                manifest.layers.len(),
                config.rootfs.diff_ids.len()
            ));
        }
        let windows = config.os == "windows";
        // A builder's other layers (its build image's, the lifecycle, order, ...) hold any
        // files: only the layers its labels give modules are checked for placement, below.
        let builder = crate::inspect::builder_info(config.labels(), config_bytes);
        for (i, layer) in manifest.layers.iter().enumerate() {
            let facts = self.check_layer(layer, &name);
            if let (Some(f), None) = (&facts, &builder) {
                self.check_placement(&name, layer, i, windows, f);
            }
            if let (Some(actual), Some(expected)) =
                (facts.and_then(|f| f.diff_id), config.rootfs.diff_ids.get(i))
            {
                if actual != *expected {
                    self.defect(format!(
                        "{name}: layer {i} ({}) has diffID {actual}, the config says {expected}",
                        layer.digest.short()
                    ));
                }
            }
        }
        match builder {
            Some(info) => self.check_builder(&name, manifest, config, &info),
            None => self.check_labels(&name, manifest, config),
        }
    }

    /// A platform must name its OS and architecture (both REQUIRED by the image spec), and
    /// among several manifests each needs a platform (or a name) for a reader to choose it.
    fn check_descriptor_platform(
        &mut self,
        d: &Descriptor,
        ref_names: &BTreeMap<&str, usize>,
        manifests: usize,
        referrer: &str,
    ) {
        match &d.platform {
            Some(p) => {
                for (field, value) in [("architecture", &p.architecture), ("os", &p.os)] {
                    if value.is_empty() {
                        self.defect(format!(
                            "{referrer}: {} has a platform with an empty {field}, which the image spec requires (leave the platform out when it is unknown)",
                            d.digest
                        ));
                    }
                }
            }
            None if manifests > 1 && oci::is_manifest(&d.media_type) => {
                let named = d
                    .annotations
                    .get(oci::ANNOTATION_REF_NAME)
                    .is_some_and(|name| ref_names.get(name.as_str()) == Some(&1));
                if !named {
                    self.defect(format!(
                        "{referrer}: manifest {} has no platform, and the index lists {manifests} manifests: no reader can choose among them",
                        d.digest
                    ));
                }
            }
            None => {}
        }
    }

    /// Remember the platforms a manifest descriptor stands for (one per distro it serves).
    fn hold(&mut self, d: &Descriptor) {
        let platform = d.platform.as_ref().map(|p| {
            (
                p.os.clone(),
                p.architecture.clone(),
                p.variant.clone(),
                p.os_version.clone(),
            )
        });
        let too_long = d
            .annotations
            .get(crate::cnb::ANNOTATION_DISTROS)
            .is_some_and(|v| v.len() > MAX_DISTROS_ANNOTATION);
        if too_long {
            return self.defect(format!(
                "manifest {}: annotation {} is longer than {MAX_DISTROS_ANNOTATION} bytes",
                d.digest,
                crate::cnb::ANNOTATION_DISTROS
            ));
        }
        let distros: Vec<Option<target::Distro>> = match annotated_distros(&d.annotations) {
            Some(list) if !list.is_empty() => list.into_iter().map(Some).collect(),
            _ => vec![None],
        };
        for distro in distros {
            let entry = (d.digest, platform.clone(), distro);
            if self.held_seen.len() > MAX_PLATFORMS || self.held_seen.contains(&entry) {
                continue;
            }
            self.held_seen.insert(entry.clone());
            if self.held_seen.len() > MAX_PLATFORMS {
                return self.defect(format!(
                    "the package lists more than {MAX_PLATFORMS} platforms"
                ));
            }
            self.held.push(entry);
        }
    }

    /// The platforms the package holds, and how they differ from the expected ones.
    fn check_platforms(&mut self, expected: &[Target]) {
        let mut held: Vec<ExpandedTarget> = Vec::new();
        for (digest, platform, distro) in &self.held {
            // Without a platform in the index, the config says what the image is.
            let platform = platform
                .as_ref()
                .or_else(|| self.manifests_done.get(digest).and_then(|c| c.as_ref()));
            let (os, arch, variant) = platform
                .map(|p| (p.0.clone(), p.1.clone(), p.2.clone()))
                .unwrap_or_default();
            let t = ExpandedTarget {
                os,
                arch,
                variant,
                distro: distro.clone(),
                path: None,
            };
            if !held.contains(&t) {
                held.push(t);
            }
        }
        let name = |t: &ExpandedTarget| {
            if t.os.is_empty() {
                "unknown".to_string()
            } else {
                t.display()
            }
        };
        self.report.platforms = held.iter().map(name).collect();
        if expected.is_empty() {
            return;
        }
        let expected = target::expand_distros(expected);
        let serves = |e: &ExpandedTarget, h: &ExpandedTarget| {
            e.os == h.os
                && e.arch == h.arch
                && e.variant == h.variant
                && (e.distro.is_none() || e.distro == h.distro)
        };
        let mut missing: Vec<String> = Vec::new();
        for e in &expected {
            if !held.iter().any(|h| serves(e, h)) && !missing.contains(&e.display()) {
                missing.push(e.display());
            }
        }
        let extra: Vec<String> = held
            .iter()
            .filter(|h| !expected.iter().any(|e| serves(e, h)))
            .map(name)
            .collect();
        let mut parts = Vec::new();
        if !missing.is_empty() {
            parts.push(format!("missing {}", missing.join(", ")));
        }
        if !extra.is_empty() {
            parts.push(format!("extra {}", extra.join(", ")));
        }
        if !parts.is_empty() {
            self.defect(format!(
                "the package does not hold exactly the expected platforms: {}",
                parts.join("; ")
            ));
        }
        self.report.missing_platforms = missing;
        self.report.extra_platforms = extra;
    }

    /// Report a layer's entries that lie outside every module directory. Only a Windows image's
    /// first layer may be imgutil's fixed base layer instead.
    fn check_placement(
        &mut self,
        name: &str,
        layer: &Descriptor,
        pos: usize,
        windows: bool,
        facts: &LayerFacts,
    ) {
        let base: Option<Digest> = crate::layer::WINDOWS_BASE_LAYER_DIFF_ID.parse().ok();
        if windows && pos == 0 && facts.diff_id.is_some() && facts.diff_id == base {
            return;
        }
        let short = layer.digest.short();
        for v in &facts.violations {
            self.defect(format!("{name}: layer {short}: {v}"));
        }
        if facts.violation_count > facts.violations.len() {
            self.defect(format!(
                "{name}: layer {short}: {} more entries lie outside its module directories",
                facts.violation_count - facts.violations.len()
            ));
        }
        let prefix = if windows { "Files/" } else { "" };
        if let Some(d) = facts.dirs.iter().find(|d| !d.starts_with(prefix)) {
            self.defect(format!(
                "{name}: layer {short}: {d} is not where a {} image keeps its modules",
                if windows { "Windows" } else { "Linux" }
            ));
        }
    }

    /// The config's platform must be the one the index lists the manifest under.
    fn check_platform(&mut self, d: &Descriptor, cfg: &PlatformKey) {
        let Some(p) = &d.platform else { return };
        let desc = (&p.os, &p.architecture, &p.variant, &p.os_version);
        if (&cfg.0, &cfg.1, &cfg.2, &cfg.3) != desc {
            self.defect(format!(
                "manifest {}: config platform {}/{}/{}/{} differs from the index's {}/{}/{}/{}",
                d.digest.short(),
                cfg.0,
                cfg.1,
                cfg.2,
                cfg.3,
                desc.0,
                desc.1,
                desc.2,
                desc.3
            ));
        }
    }

    /// Read a layer once: compressed digest, decompressed diffID, and the buildpacks it holds.
    fn check_layer(&mut self, layer: &Descriptor, referrer: &str) -> Option<LayerFacts> {
        let encoding = match oci::layer_compression_of(&layer.media_type) {
            Some(e) => e,
            None => {
                self.check_blob(layer, referrer);
                self.defect(format!(
                    "{referrer}: layer {} has unexpected media type '{}'",
                    layer.digest, layer.media_type
                ));
                return None;
            }
        };
        if !self.check_blob(layer, referrer) {
            return None;
        }
        if let Some(f) = self.layers.get(&(layer.digest, encoding)) {
            return Some(f.clone());
        }
        let facts = match read_layer(self.reader, layer, encoding) {
            Ok((digest, facts, bytes)) => {
                self.report.bytes += bytes;
                if digest != layer.digest {
                    self.defect(format!(
                        "{referrer}: layer blob {} has digest {digest}",
                        layer.digest
                    ));
                    self.checked.insert(layer.digest, false);
                }
                facts
            }
            Err(e) => {
                self.defect(format!("{referrer}: layer {}: {e}", layer.digest));
                LayerFacts::default()
            }
        };
        self.layers.insert((layer.digest, encoding), facts.clone());
        Some(facts)
    }

    fn check_labels(&mut self, name: &str, manifest: &Manifest, config: &ImageConfig) {
        let labels = config.labels();
        let meta = match labels.get(LABEL_METADATA) {
            Some(m) => m,
            None => return self.defect(format!("{name}: no {LABEL_METADATA} label")),
        };
        if let Err(e) = PackageMetadata::parse(meta) {
            self.defect(format!("{name}: {LABEL_METADATA}: {e}"));
        }
        let (label_name, value) = match labels.get(LABEL_LAYERS) {
            Some(v) => (LABEL_LAYERS, v),
            None => match labels.get(LABEL_EXTENSION_LAYERS) {
                Some(v) => (LABEL_EXTENSION_LAYERS, v),
                None => return self.defect(format!("{name}: no {LABEL_LAYERS} label")),
            },
        };
        let layers = match LayersLabel::parse(value) {
            Ok(l) => l,
            Err(e) => return self.defect(format!("{name}: {label_name}: {e}")),
        };
        let kind = if label_name == LABEL_EXTENSION_LAYERS {
            ModuleKind::Extension
        } else {
            ModuleKind::Buildpack
        };
        let mut given = Given::default();
        self.check_modules(
            name, manifest, config, label_name, kind, &layers, &mut given,
        );
        self.check_stray(name, manifest, &given, Some(label_name));
    }

    /// Check each module of a layers label (`label_name`, of modules of `kind`) against the
    /// layer it names: a valid id and version, a layer of this image, holding that module's
    /// directory and descriptor, no directory shared with another module. Records in `given`
    /// the directories each layer is given.
    #[allow(clippy::too_many_arguments)]
    fn check_modules(
        &mut self,
        name: &str,
        manifest: &Manifest,
        config: &ImageConfig,
        label_name: &str,
        kind: ModuleKind,
        layers: &LayersLabel,
        given: &mut Given,
    ) {
        let windows = config.os == "windows";
        let Given {
            dirs: given,
            owners,
        } = given;
        let lookup = LayerLookup::new(config);
        for (id, versions) in &layers.0 {
            for (version, info) in versions {
                if let Err(e) = crate::descriptor::check_id_version("buildpack", id, version) {
                    self.defect(format!("{name}: {label_name}: {e}"));
                    continue;
                }
                if windows {
                    if let Err(e) =
                        crate::descriptor::check_windows_id_version("buildpack", id, version)
                    {
                        self.defect(format!("{name}: {label_name}: {e}"));
                    }
                }
                let dir = crate::cnb::module_dir(kind, id, version, windows);
                let key = if windows {
                    dir.to_lowercase()
                } else {
                    dir.clone()
                };
                if let Some(other) = owners.insert(key, format!("{id}@{version}")) {
                    self.defect(format!(
                        "{name}: {label_name}: {other} and {id}@{version} share one layer directory {dir}"
                    ));
                }
                let diff_id: Option<Digest> = info.layer_diff_id.parse().ok();
                let Some(diff_id) = diff_id else {
                    self.defect(format!(
                        "{name}: {label_name}: {id}@{version} has invalid layerDiffID '{}'",
                        info.layer_diff_id
                    ));
                    continue;
                };
                let (pos, layer) = match lookup.layer(manifest, &diff_id) {
                    Ok(found) => found,
                    Err(LayerMiss::NotInConfig) => {
                        self.defect(format!("{name}: {label_name}: {id}@{version} points at {diff_id}, which is not a layer of this image"));
                        continue;
                    }
                    // The layer count mismatch is reported with the image.
                    Err(_) => continue,
                };
                given.entry(pos).or_default().insert(dir.clone());
                let Some(encoding) = oci::layer_compression_of(&layer.media_type) else {
                    continue;
                };
                let Some(facts) = self.layers.get(&(layer.digest, encoding)) else {
                    continue;
                };
                match facts.modules.get(&dir) {
                    // The directory is there without a descriptor (or past the count read).
                    None if facts.dirs.contains(&dir) => {}
                    Some(None) => self.defect(format!(
                        "{name}: layer {}: the descriptor in {dir} is not a regular file of at most {} MiB naming an id and a version",
                        layer.digest.short(),
                        MAX_DESCRIPTOR >> 20
                    )),
                    None => self.defect(format!("{name}: layer {} does not hold {id}@{version} (no {dir}/)", layer.digest.short())),
                    Some(Some((fid, fver))) if fid != id || fver != version => self.defect(format!(
                        "{name}: layer {} holds {fid}@{fver} at {dir}, its label says {id}@{version}",
                        layer.digest.short()
                    )),
                    Some(_) => {}
                }
            }
        }
    }

    /// What reading `layer` showed, when it was read.
    fn facts_of(&self, layer: &Descriptor) -> Option<&LayerFacts> {
        let encoding = oci::layer_compression_of(&layer.media_type)?;
        self.layers.get(&(layer.digest, encoding))
    }

    /// A builder's invariants: its labels parse (what pack build needs of the metadata: a
    /// lifecycle version, its APIs, a run image), every module of its layers labels is in the
    /// layer it names (placed as in a package), every order entry is among those modules, and
    /// its lifecycle layer (the last with `/cnb/lifecycle` entries) holds the binaries pack
    /// requires.
    fn check_builder(
        &mut self,
        name: &str,
        manifest: &Manifest,
        config: &ImageConfig,
        info: &crate::inspect::BuilderInfo,
    ) {
        use crate::inspect::{LABEL_BUILDER_METADATA, LABEL_ORDER, LABEL_ORDER_EXTENSIONS};
        for p in &info.problems {
            self.defect(format!("{name}: {p}"));
        }
        let lifecycle = &info.lifecycle;
        if lifecycle.version.is_empty() {
            self.defect(format!(
                "{name}: {LABEL_BUILDER_METADATA}: no lifecycle version"
            ));
        }
        if lifecycle.buildpack_apis.is_empty() {
            self.defect(format!(
                "{name}: {LABEL_BUILDER_METADATA}: no supported lifecycle Buildpack APIs"
            ));
        }
        if lifecycle.platform_apis.is_empty() {
            self.defect(format!(
                "{name}: {LABEL_BUILDER_METADATA}: no supported lifecycle Platform APIs"
            ));
        }
        if info.run_images.is_empty() {
            self.defect(format!("{name}: {LABEL_BUILDER_METADATA}: no run image"));
        }
        let labels = config.labels();
        let mut given = Given::default();
        let mut modules: BTreeMap<&str, LayersLabel> = BTreeMap::new();
        for (label_name, kind) in [
            (LABEL_LAYERS, ModuleKind::Buildpack),
            (LABEL_EXTENSION_LAYERS, ModuleKind::Extension),
        ] {
            let parsed = match labels.get(label_name).map(|v| LayersLabel::parse(v)) {
                Some(Ok(l)) => l,
                Some(Err(e)) => {
                    self.defect(format!("{name}: {label_name}: {e}"));
                    continue;
                }
                // pack writes both, `{}` when empty; a missing extensions label is as empty.
                None if kind == ModuleKind::Extension => LayersLabel::new(),
                None => {
                    self.defect(format!("{name}: no {label_name} label"));
                    continue;
                }
            };
            self.check_modules(
                name, manifest, config, label_name, kind, &parsed, &mut given,
            );
            modules.insert(label_name, parsed);
        }
        let windows = config.os == "windows";
        for (pos, layer) in manifest.layers.iter().enumerate() {
            if !given.dirs.contains_key(&pos) {
                continue;
            }
            if let Some(facts) = self.facts_of(layer).cloned() {
                self.check_placement(name, layer, pos, windows, &facts);
            }
        }
        self.check_stray(name, manifest, &given, None);
        for (label_name, order, layers_label) in [
            (LABEL_ORDER, &info.order, LABEL_LAYERS),
            (
                LABEL_ORDER_EXTENSIONS,
                &info.order_extensions,
                LABEL_EXTENSION_LAYERS,
            ),
        ] {
            let Some(held) = modules.get(layers_label) else {
                continue; // reported above
            };
            for entry in order.iter().flatten() {
                let found = match &entry.version {
                    Some(v) => held.get(&entry.id, v).is_some(),
                    None => held.0.get(&entry.id).is_some_and(|v| !v.is_empty()),
                };
                if !found {
                    self.defect(format!(
                        "{name}: {label_name}: {} is not among the modules of {layers_label}",
                        entry.display()
                    ));
                }
            }
        }
        self.check_lifecycle_layer(name, manifest);
    }

    /// The last layer with `/cnb/lifecycle` entries must hold every binary pack requires.
    fn check_lifecycle_layer(&mut self, name: &str, manifest: &Manifest) {
        let found = manifest.layers.iter().rev().find_map(|l| {
            let facts = self.facts_of(l)?;
            Some((l.digest, facts.lifecycle.clone()?))
        });
        let Some((digest, held)) = found else {
            return self.defect(format!("{name}: no layer holds /cnb/lifecycle"));
        };
        let missing: Vec<&str> = LIFECYCLE_BINARIES
            .iter()
            .copied()
            .filter(|b| !held.contains(*b))
            .collect();
        if !missing.is_empty() {
            self.defect(format!(
                "{name}: lifecycle layer {} lacks /cnb/lifecycle/{}",
                digest.short(),
                missing.join(", /cnb/lifecycle/")
            ));
        }
    }

    /// Report module directories a layer holds that no label gives it.
    /// `label_name` is the label that lists them; `None` for a builder, which has one for
    /// buildpacks and one for extensions.
    fn check_stray(
        &mut self,
        name: &str,
        manifest: &Manifest,
        given: &Given,
        label_name: Option<&str>,
    ) {
        let empty = BTreeSet::new();
        // A builder hides a module of its base that it replaces with a whiteout in a later
        // layer (as pack does): the base's layer may hold it unlisted.
        let mut hidden_later: Vec<BTreeSet<String>> = vec![BTreeSet::new(); manifest.layers.len()];
        if label_name.is_none() {
            let mut hidden = BTreeSet::new();
            for (pos, layer) in manifest.layers.iter().enumerate().rev() {
                hidden_later[pos] = hidden.clone();
                if let Some(facts) = self.facts_of(layer) {
                    hidden.extend(facts.whiteouts.iter().cloned());
                }
            }
        }
        for (pos, layer) in manifest.layers.iter().enumerate() {
            let Some(facts) = self.facts_of(layer) else {
                continue;
            };
            let allowed = given.dirs.get(&pos).unwrap_or(&empty);
            let stray: Vec<String> = facts
                .dirs
                .iter()
                .filter(|d| !allowed.contains(*d) && !hidden_later[pos].contains(*d))
                .cloned()
                .collect();
            for d in stray {
                let label_name = label_name.unwrap_or(
                    if d.trim_start_matches("Files/")
                        .starts_with("cnb/extensions/")
                    {
                        LABEL_EXTENSION_LAYERS
                    } else {
                        LABEL_LAYERS
                    },
                );
                self.defect(format!(
                    "{name}: layer {} holds {d}/, which {label_name} does not list for it",
                    layer.digest.short()
                ));
            }
        }
    }

    fn check_unreferenced(&mut self) {
        let files = match self.reader.files() {
            Ok(f) => f,
            Err(e) => return self.defect(e.to_string()),
        };
        self.report.blobs = self.referenced.len();
        for name in files.keys() {
            if let Some(hex) = name.strip_prefix("blobs/sha256/") {
                match format!("sha256:{hex}").parse::<Digest>() {
                    Ok(d) if self.referenced.contains(&d) => {}
                    Ok(d) => self.defect(format!(
                        "blob {d} is not referenced by any index or manifest"
                    )),
                    Err(_) => self.defect(format!("{name}: not a sha256 blob name")),
                }
            } else if name.starts_with("blobs/") {
                self.defect(format!("{name}: unexpected file under blobs/"));
            } else if name != "oci-layout" && name != "index.json" {
                self.defect(format!("{name}: unexpected file in the layout"));
            }
        }
    }
}

/// Pairs of keys of one object that Go's case-insensitive field matching takes as one (Unicode
/// simple folding: `K` (Kelvin sign) is `k`, `ſ` is `s`), in every object but string maps.
fn key_case_clashes(value: &serde_json::Value, found: &mut Vec<(String, String)>) {
    match value {
        serde_json::Value::Object(map) => {
            let mut folded: BTreeMap<String, &String> = BTreeMap::new();
            for (key, v) in map {
                let fold: String = key.to_uppercase().to_lowercase();
                if let Some(other) = folded.insert(fold, key) {
                    found.push((other.clone(), key.clone()));
                }
                // Maps of names to values: Go reads them into maps, keys exactly.
                if !matches!(
                    key.as_str(),
                    "Labels" | "annotations" | "ExposedPorts" | "Volumes"
                ) {
                    key_case_clashes(v, found);
                }
            }
        }
        serde_json::Value::Array(items) => items.iter().for_each(|v| key_case_clashes(v, found)),
        _ => {}
    }
}
