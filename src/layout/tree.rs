//! One walk over an image tree (index, nested indexes, manifests, configs) with one set of
//! limits, over any source of verified blobs: a package today, a registry for `pull` later.

use std::collections::{BTreeSet, HashMap};
use std::path::Path;
use std::sync::Arc;

use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::oci::{self, Descriptor, ImageConfig, Index, Manifest, Platform};

#[cfg(doc)]
use super::limits::MAX_JSON_BLOB;
pub(crate) use super::limits::{
    MAX_BLOBS, MAX_DESCRIPTORS, MAX_IMAGES, MAX_IMAGES_BYTES, MAX_INDEX_DEPTH,
};

/// Where the walk's blobs come from: each one fetched by its descriptor, at most
/// [`MAX_JSON_BLOB`] bytes, its size and digest checked before it is returned.
pub(crate) trait BlobSource {
    /// The blob `desc` points at, verified against the descriptor's size and digest.
    fn fetch_verified(&self, desc: &Descriptor) -> Result<Vec<u8>>;
    /// What the source is, for messages (a package's path).
    fn origin(&self) -> &Path;
}

/// What a walker does with an index entry that is neither a manifest nor an index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Others {
    /// Skip it (attestations, artifacts: readers look only at images).
    Skip,
    /// Refuse the tree (a push copies everything it lists, and cannot copy those).
    Refuse,
}

/// When a walker reads an image's config.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Configs {
    /// Always, and a config that does not parse is an error.
    Always,
    /// Only for a manifest listed without a platform, to learn it; a config that does not
    /// parse leaves the platform unknown.
    WhenUnplaced,
}

/// How a walk treats what it meets.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Policy {
    /// Entries that are neither manifests nor indexes (untyped ones included).
    pub(crate) others: Others,
    /// Config reading.
    pub(crate) configs: Configs,
    /// How JSON errors are worded.
    pub(crate) style: Style,
    /// Whether the first failure ends the walk.
    pub(crate) failures: OnFailure,
}

/// What a walk does when a node cannot be read or a limit is reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OnFailure {
    /// Return the error: the tree is of no use to the caller unless it is whole.
    Stop,
    /// Record it (see [`Walker::failure`]) and go on with the node's siblings, never descending
    /// into what could not be read; a limit ends the reading, the tree read so far is kept
    /// (`verify` reports many defects per package).
    Record,
}

/// The part of a node a failure is recorded for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Part {
    /// A document listed as an index.
    Index,
    /// A document listed as a manifest (by digest of the manifest).
    Manifest,
    /// An image config (by digest of the config).
    Config,
}

impl Part {
    /// What a listing of `media_type` is read as (an untyped one is sniffed as a manifest or
    /// an index, and kept with the manifests).
    fn of_listing(media_type: &str) -> Part {
        if oci::is_index(media_type) {
            Part::Index
        } else {
            Part::Manifest
        }
    }
}

/// Why a recording walk has no node (or an incomplete one) for a part.
#[derive(Debug)]
pub(crate) enum Failure {
    /// It could not be fetched, verified or parsed.
    Unreadable(Error),
    /// A limit was reached while reading it: nothing after it was read.
    Limit(Exceeded),
}

/// The wording of JSON errors (each reader kept its own).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Style {
    /// `manifest <digest> is not valid JSON for its type: <error>`.
    Reader,
    /// `manifest <digest>: <error>`.
    Push,
}

/// An image config read with its manifest.
#[derive(Debug, Clone)]
pub struct ConfigBlob {
    /// The raw, verified bytes.
    pub bytes: Vec<u8>,
    /// The parsed config (`None` when it does not parse and the walk allowed that).
    pub config: Option<ImageConfig>,
}

/// What a node of the tree is.
#[derive(Debug, Clone)]
pub enum NodeBody {
    /// An image index (or Docker manifest list): its entries, in listing order (the rest of
    /// the index, annotations and all, is in the node's bytes).
    Index {
        /// Its entries: each listing's own descriptor, and the node it points at (`None` for
        /// an entry that is neither a manifest nor an index, skipped).
        children: Vec<Child>,
        /// The `mediaType` the index declares itself, if any.
        declared: Option<String>,
    },
    /// An image manifest with its config.
    Manifest {
        /// The parsed manifest.
        manifest: Box<Manifest>,
        /// Its config, when read (shared by every manifest that lists it).
        config: Option<Arc<ConfigBlob>>,
    },
}

/// One entry of an index: the descriptor as listed, and what it points at.
#[derive(Debug, Clone)]
pub struct Child {
    /// The descriptor as this index lists it (platform and annotations as written).
    pub descriptor: Descriptor,
    /// The node, shared with every other listing of its digest.
    pub node: Option<Arc<TreeNode>>,
}

/// A manifest or index of the tree, held once per digest.
#[derive(Debug, Clone)]
pub struct TreeNode {
    /// The descriptor of its first listing.
    pub descriptor: Descriptor,
    /// Its media type: the descriptor's, or the document's own when the descriptor gives none.
    pub media_type: String,
    /// The raw, verified bytes (copied byte for byte by `push` and `merge`).
    pub bytes: Vec<u8>,
    /// Index or manifest.
    pub body: NodeBody,
}

impl TreeNode {
    /// Whether this node is an index.
    pub fn is_index(&self) -> bool {
        matches!(self.body, NodeBody::Index { .. })
    }

    /// The entries of an index node (none for a manifest).
    pub fn children(&self) -> &[Child] {
        match &self.body {
            NodeBody::Index { children, .. } => children,
            NodeBody::Manifest { .. } => &[],
        }
    }

    /// The manifest, when this node is one.
    pub fn manifest(&self) -> Option<&Manifest> {
        match &self.body {
            NodeBody::Manifest { manifest, .. } => Some(manifest),
            NodeBody::Index { .. } => None,
        }
    }

    /// The config of a manifest node (raw and parsed), when read.
    pub fn config_blob(&self) -> Option<&ConfigBlob> {
        match &self.body {
            NodeBody::Manifest { config, .. } => config.as_deref(),
            NodeBody::Index { .. } => None,
        }
    }

    /// The parsed config of a manifest node, when read.
    pub fn config(&self) -> Option<&ImageConfig> {
        match &self.body {
            NodeBody::Manifest { config, .. } => config.as_ref()?.config.as_ref(),
            NodeBody::Index { .. } => None,
        }
    }

    /// The platform a listing gives, else the config's (when it names an OS).
    pub fn platform_for(&self, listing: &Descriptor) -> Option<Platform> {
        if let Some(p) = &listing.platform {
            return Some(p.clone());
        }
        self.config()
            .filter(|c| !c.os.is_empty())
            .map(ImageConfig::platform)
    }
}

/// The limits of a walk, counted as it goes: every [`Walker`] spends one (and `verify`, which
/// checks an index listed again under another platform again, counts its listings in another).
#[derive(Debug, Clone, Default)]
pub(crate) struct Budget {
    /// Every descriptor of every index read, repeats included.
    descriptors: usize,
    /// Manifest and index descriptors met, repeats included.
    listed: usize,
    /// Manifest, index and config bytes held.
    kept_bytes: u64,
    /// Config and layer descriptors of every manifest read.
    blobs: usize,
}

/// The limit a walk reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Exceeded {
    /// More than [`MAX_DESCRIPTORS`] descriptors.
    Descriptors,
    /// More than [`MAX_IMAGES`] manifest and index listings.
    Images,
    /// More than [`MAX_IMAGES_BYTES`] held.
    Bytes,
    /// More than [`MAX_BLOBS`] config and layer descriptors.
    Blobs,
}

impl std::fmt::Display for Exceeded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Exceeded::Descriptors => write!(
                f,
                "more than {MAX_DESCRIPTORS} descriptors in the package's indexes"
            ),
            Exceeded::Images => write!(f, "lists more than {MAX_IMAGES} images"),
            Exceeded::Bytes => write!(
                f,
                "image manifests and configs exceed {} MiB in total",
                MAX_IMAGES_BYTES >> 20
            ),
            Exceeded::Blobs => write!(f, "its images list more than {MAX_BLOBS} blobs"),
        }
    }
}

impl Budget {
    /// One more descriptor listed by an index.
    pub(crate) fn descriptor(&mut self) -> std::result::Result<(), Exceeded> {
        self.descriptors += 1;
        (self.descriptors <= MAX_DESCRIPTORS)
            .then_some(())
            .ok_or(Exceeded::Descriptors)
    }

    /// One more listing of a manifest or an index.
    pub(crate) fn listing(&mut self) -> std::result::Result<(), Exceeded> {
        self.listed += 1;
        (self.listed <= MAX_IMAGES)
            .then_some(())
            .ok_or(Exceeded::Images)
    }

    /// `n` more bytes of manifests, indexes or configs held.
    pub(crate) fn keep(&mut self, n: u64) -> std::result::Result<(), Exceeded> {
        self.kept_bytes += n;
        (self.kept_bytes <= MAX_IMAGES_BYTES)
            .then_some(())
            .ok_or(Exceeded::Bytes)
    }

    /// The config and layers of one more manifest.
    pub(crate) fn manifest_blobs(
        &mut self,
        manifest: &Manifest,
    ) -> std::result::Result<(), Exceeded> {
        self.blobs += 1 + manifest.layers.len();
        (self.blobs <= MAX_BLOBS)
            .then_some(())
            .ok_or(Exceeded::Blobs)
    }
}

/// Reads the nodes of a tree, each digest once (once as an index and once as a manifest when
/// listings disagree), each config once, within one [`Budget`].
pub(crate) struct Walker<'a> {
    source: &'a dyn BlobSource,
    policy: Policy,
    nodes: HashMap<(Digest, Part), Arc<TreeNode>>,
    configs: HashMap<Digest, Arc<ConfigBlob>>,
    budget: Budget,
    /// Under [`OnFailure::Record`]: what could not be read, by digest, part and the size the
    /// listing gave (a listing that lies about its size fails on its own: another listing of
    /// the same blob with its true size is still read).
    failures: HashMap<(Digest, Part, u64), Failure>,
    /// Under [`OnFailure::Record`]: the limit that ended the reading.
    halted: Option<Exceeded>,
    /// Under [`OnFailure::Record`]: the list whose entries were cut short by the descriptor
    /// limit (`Some(None)` for the top list, else the index's digest).
    cut_short: Option<Option<Digest>>,
}

impl<'a> Walker<'a> {
    /// A walker over `source`.
    pub(crate) fn new(source: &'a dyn BlobSource, policy: Policy) -> Self {
        Walker {
            source,
            policy,
            nodes: HashMap::new(),
            configs: HashMap::new(),
            budget: Budget::default(),
            failures: HashMap::new(),
            halted: None,
            cut_short: None,
        }
    }

    /// Under [`OnFailure::Record`], whether the descriptor limit cut short the entries of the
    /// list of `parent` (`None`: the top list), so that they end before the list does.
    pub(crate) fn cut_short(&self, parent: Option<&Digest>) -> bool {
        self.cut_short == Some(parent.copied())
    }

    /// Under [`OnFailure::Record`], why `part` listed as `desc` could not be read (or was cut
    /// off).
    pub(crate) fn failure(&self, desc: &Descriptor, part: Part) -> Option<&Failure> {
        self.failures.get(&(desc.digest, part, desc.size))
    }

    /// Under [`OnFailure::Record`], the limit that ended the reading, if one did.
    pub(crate) fn halted(&self) -> Option<Exceeded> {
        self.halted
    }

    fn recording(&self) -> bool {
        self.policy.failures == OnFailure::Record
    }

    /// Under [`OnFailure::Record`], keeps `e` for `part` listed as `desc` instead of returning
    /// it.
    fn record(&mut self, desc: &Descriptor, part: Part, e: Error) -> Result<()> {
        if !self.recording() {
            return Err(e);
        }
        let failure = match self.halted {
            Some(limit) => Failure::Limit(limit),
            None => Failure::Unreadable(e),
        };
        self.failures
            .entry((desc.digest, part, desc.size))
            .or_insert(failure);
        Ok(())
    }

    fn invalid(&self, message: impl Into<String>) -> Error {
        Error::invalid(self.source.origin(), message.into())
    }

    fn spend(&mut self, spent: std::result::Result<(), Exceeded>) -> Result<()> {
        spent.map_err(|limit| {
            if self.recording() {
                self.halted.get_or_insert(limit);
            }
            self.invalid(limit.to_string())
        })
    }

    /// A blob held already, listed again as `desc`: the listing's size must be the blob's (the
    /// source's own check, which only the first listing met).
    fn check_size(&self, desc: &Descriptor, held: usize) -> Result<()> {
        if desc.size == held as u64 {
            return Ok(());
        }
        Err(self.invalid(format!(
            "blob {} is {held} bytes, descriptor says {}",
            desc.digest, desc.size
        )))
    }

    fn keep(&mut self, n: u64) -> Result<()> {
        let spent = self.budget.keep(n);
        self.spend(spent)
    }

    fn json_error(&self, what: &str, digest: &Digest, e: &serde_json::Error) -> Error {
        match self.policy.style {
            Style::Reader => self.invalid(format!(
                "{what} {digest} is not valid JSON for its type: {e}"
            )),
            Style::Push => self.invalid(format!(
                "{what} {digest}: {}",
                crate::ui::sanitize(&e.to_string(), 200)
            )),
        }
    }

    fn parse<T: serde::de::DeserializeOwned>(
        &self,
        bytes: &[u8],
        what: &str,
        digest: &Digest,
    ) -> Result<T> {
        serde_json::from_slice(bytes).map_err(|e| self.json_error(what, digest, &e))
    }

    /// The entries of a list at `depth` (index.json's, or those of the index `parent`), each
    /// node read once.
    pub(crate) fn load_list(
        &mut self,
        descs: &[Descriptor],
        depth: usize,
        parent: Option<&Digest>,
    ) -> Result<Vec<Child>> {
        if depth > MAX_INDEX_DEPTH {
            return Err(self.invalid("image indexes nested too deeply"));
        }
        let mut children = Vec::with_capacity(descs.len().min(1024));
        for d in descs {
            if self.halted.is_some() {
                break;
            }
            let spent = self.budget.descriptor();
            if let Err(e) = self.spend(spent) {
                if !self.recording() {
                    return Err(e);
                }
                self.cut_short = Some(parent.copied());
                break;
            }
            let node = if oci::is_manifest(&d.media_type) || oci::is_index(&d.media_type) {
                self.load_child(d, depth)?
            } else if self.policy.others == Others::Refuse {
                let within =
                    parent.map_or_else(|| "index.json".to_string(), |p| format!("index {p}"));
                return Err(self.invalid(format!(
                    "{within} references {} of media type '{}', which cnbpkg cannot push",
                    d.digest,
                    crate::ui::sanitize(&d.media_type, 100)
                )));
            } else {
                None
            };
            children.push(Child {
                descriptor: d.clone(),
                node,
            });
        }
        Ok(children)
    }

    /// The node of an index entry; under [`OnFailure::Record`], what could be read of it
    /// (`None` when nothing could), its failure recorded.
    fn load_child(&mut self, desc: &Descriptor, depth: usize) -> Result<Option<Arc<TreeNode>>> {
        let key = (desc.digest, Part::of_listing(&desc.media_type));
        if self.recording() && self.failures.contains_key(&(key.0, key.1, desc.size)) {
            // Failed before: read it no more, but count the listing.
            let spent = self.budget.listing();
            return match self.spend(spent) {
                Ok(()) => Ok(self.nodes.get(&key).cloned()),
                Err(e) => self.record(desc, key.1, e).map(|()| None),
            };
        }
        match self.load(desc, depth) {
            Ok(node) => Ok(Some(node)),
            Err(e) => {
                self.record(desc, key.1, e)?;
                Ok(self.nodes.get(&key).cloned())
            }
        }
    }

    /// The node `desc` points at (read once per digest); an untyped descriptor is typed by
    /// the document's own `mediaType`, or its shape.
    pub(crate) fn load(&mut self, desc: &Descriptor, depth: usize) -> Result<Arc<TreeNode>> {
        if depth > MAX_INDEX_DEPTH {
            return Err(self.invalid("image indexes nested too deeply"));
        }
        let spent = self.budget.listing();
        self.spend(spent)?;
        let key = (desc.digest, Part::of_listing(&desc.media_type));
        if let Some(n) = self.nodes.get(&key) {
            // Read once, but every listing gives its own size, and must give the true one.
            self.check_size(desc, n.bytes.len())?;
            return Ok(n.clone());
        }
        let bytes = self.source.fetch_verified(desc)?;
        self.keep(bytes.len() as u64)?;
        let media_type = if desc.media_type.is_empty() {
            sniff_media_type(&bytes).ok_or_else(|| {
                self.invalid(format!(
                    "{} is neither an image manifest nor an index",
                    desc.digest
                ))
            })?
        } else {
            desc.media_type.clone()
        };
        // A limit reached after the document was parsed: the node is kept (with what was read
        // of it) for a recording walk, and the limit returned.
        let mut cut_off = Ok(());
        let body = if oci::is_index(&media_type) {
            let index: Index = self.parse(&bytes, "index", &desc.digest)?;
            let children = match self.load_list(&index.manifests, depth + 1, Some(&desc.digest)) {
                Ok(children) => children,
                // Entries nested too deeply: the index is read, its entries are not.
                Err(e) if self.recording() => {
                    self.record(desc, Part::Index, e)?;
                    Vec::new()
                }
                Err(e) => return Err(e),
            };
            NodeBody::Index {
                children,
                declared: index.media_type,
            }
        } else if oci::is_manifest(&media_type) {
            let manifest: Manifest = self.parse(&bytes, "manifest", &desc.digest)?;
            // Counted before the config is read: a walk over its limit reads no more.
            let spent = self.budget.manifest_blobs(&manifest);
            cut_off = self.spend(spent);
            let config = match cut_off {
                Ok(()) => self.load_config(desc, &manifest)?,
                Err(_) => None,
            };
            NodeBody::Manifest {
                manifest: Box::new(manifest),
                config,
            }
        } else {
            return Err(self.invalid(format!(
                "{} has media type '{}', not an image manifest or index",
                desc.digest,
                crate::ui::sanitize(&media_type, 100)
            )));
        };
        let node = Arc::new(TreeNode {
            descriptor: desc.clone(),
            media_type,
            bytes,
            body,
        });
        self.nodes.insert(key, node.clone());
        cut_off.map(|()| node)
    }

    /// The config of `manifest` (read once per digest, however many manifests share it); under
    /// [`OnFailure::Record`], `None` when it could not be read, its failure recorded.
    fn load_config(
        &mut self,
        desc: &Descriptor,
        manifest: &Manifest,
    ) -> Result<Option<Arc<ConfigBlob>>> {
        let strict = match self.policy.configs {
            Configs::Always => true,
            Configs::WhenUnplaced if desc.platform.is_none() => false,
            Configs::WhenUnplaced => return Ok(None),
        };
        let listed = &manifest.config;
        if let Some(c) = self.configs.get(&listed.digest).cloned() {
            // Shared by many manifests, read once: each of them must give its true size.
            return match self.check_size(listed, c.bytes.len()) {
                Ok(()) => Ok(Some(c)),
                Err(e) => self.record(listed, Part::Config, e).map(|()| None),
            };
        }
        if self
            .failures
            .contains_key(&(listed.digest, Part::Config, listed.size))
        {
            return Ok(None);
        }
        match self.read_config(listed, strict) {
            Ok(c) => {
                let c = Arc::new(c);
                self.configs.insert(listed.digest, c.clone());
                Ok(Some(c))
            }
            Err(e) => self.record(listed, Part::Config, e).map(|()| None),
        }
    }

    fn read_config(&mut self, desc: &Descriptor, strict: bool) -> Result<ConfigBlob> {
        let bytes = self.source.fetch_verified(desc)?;
        self.keep(bytes.len() as u64)?;
        let config = if strict {
            Some(self.parse(&bytes, "config", &desc.digest)?)
        } else {
            serde_json::from_slice(&bytes).ok()
        };
        Ok(ConfigBlob { bytes, config })
    }
}

/// The tree below the entries `top` (index.json's manifests, or a registry index's), read from
/// `source` under `policy` within one [`Budget`]: the entries with their nodes, in listing order.
pub(crate) fn walk(
    source: &dyn BlobSource,
    top: &[Descriptor],
    policy: Policy,
) -> Result<Vec<Child>> {
    Walker::new(source, policy).load_list(top, 0, None)
}

/// The media type a JSON document declares, or what its shape says.
pub(crate) fn sniff_media_type(bytes: &[u8]) -> Option<String> {
    let v: serde_json::Value = serde_json::from_slice(bytes).ok()?;
    if let Some(mt) = v.get("mediaType").and_then(|m| m.as_str()) {
        return Some(mt.to_string());
    }
    if v.get("manifests").is_some() {
        Some(oci::MEDIA_TYPE_INDEX.to_string())
    } else if v.get("config").is_some() {
        Some(oci::MEDIA_TYPE_MANIFEST.to_string())
    } else {
        None
    }
}

/// The manifests below `children`, each listing once in listing order (an index listed
/// several times is descended into once), with the descriptor it is listed with.
pub(crate) fn image_listings(children: &[Child]) -> Vec<(&Descriptor, &Arc<TreeNode>)> {
    fn walk<'t>(
        children: &'t [Child],
        seen: &mut BTreeSet<Digest>,
        out: &mut Vec<(&'t Descriptor, &'t Arc<TreeNode>)>,
    ) {
        for c in children {
            let Some(node) = &c.node else { continue };
            if node.manifest().is_some() {
                out.push((&c.descriptor, node));
            } else if seen.insert(node.descriptor.digest) {
                walk(node.children(), seen, out);
            }
        }
    }
    let mut out = Vec::new();
    walk(children, &mut BTreeSet::new(), &mut out);
    out
}

/// Finds an image's layers by diffID (ggcr's `LayerByDiffID`): each diffID's first position
/// in the config's `rootfs.diff_ids`, looked up once per label entry (a label of 100 000
/// modules against 200 000 diffIDs must not cost 10^10 comparisons).
#[derive(Debug, Clone, Default)]
pub struct LayerLookup {
    positions: HashMap<Digest, usize>,
}

/// Why [`LayerLookup::layer`] found no layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum LayerMiss {
    /// The config lists no such diffID.
    NotInConfig,
    /// The config lists it at this position, but the manifest has no layer there.
    NoManifestLayer(usize),
}

impl LayerLookup {
    /// The positions of `config`'s diffIDs.
    pub fn new(config: &ImageConfig) -> Self {
        let mut positions = HashMap::new();
        for (i, d) in config.rootfs.diff_ids.iter().enumerate() {
            positions.entry(*d).or_insert(i);
        }
        LayerLookup { positions }
    }

    /// The first position of `diff_id` in the config.
    pub fn position(&self, diff_id: &Digest) -> Option<usize> {
        self.positions.get(diff_id).copied()
    }

    /// The layer of `manifest` whose diffID is `diff_id`, with its position.
    pub fn layer<'m>(
        &self,
        manifest: &'m Manifest,
        diff_id: &Digest,
    ) -> std::result::Result<(usize, &'m Descriptor), LayerMiss> {
        let pos = self.position(diff_id).ok_or(LayerMiss::NotInConfig)?;
        let layer = manifest
            .layers
            .get(pos)
            .ok_or(LayerMiss::NoManifestLayer(pos))?;
        Ok((pos, layer))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::json::canonical;
    use std::path::PathBuf;

    /// Blobs in memory, as a registry client will serve them: verified by digest on fetch.
    #[derive(Default)]
    struct Blobs {
        path: PathBuf,
        blobs: HashMap<Digest, Vec<u8>>,
        fetched: std::cell::Cell<usize>,
    }

    impl Blobs {
        fn put(&mut self, media_type: &str, bytes: Vec<u8>) -> Descriptor {
            let d = Descriptor::new(media_type, Digest::of(&bytes), bytes.len() as u64);
            self.blobs.insert(d.digest, bytes);
            d
        }

        fn image(&mut self, os: &str) -> Descriptor {
            let config = format!(
                r#"{{"architecture":"amd64","os":"{os}","rootfs":{{"type":"layers","diff_ids":[]}}}}"#
            );
            let config = self.put(oci::MEDIA_TYPE_CONFIG, config.into_bytes());
            let manifest = Manifest {
                schema_version: 2,
                media_type: Some(oci::MEDIA_TYPE_MANIFEST.into()),
                artifact_type: None,
                config,
                layers: vec![],
                annotations: Default::default(),
            };
            self.put(oci::MEDIA_TYPE_MANIFEST, canonical(&manifest))
        }

        fn index(&mut self, manifests: Vec<Descriptor>) -> Descriptor {
            self.put(oci::MEDIA_TYPE_INDEX, canonical(&Index::new(manifests)))
        }
    }

    impl BlobSource for Blobs {
        fn fetch_verified(&self, desc: &Descriptor) -> Result<Vec<u8>> {
            self.fetched.set(self.fetched.get() + 1);
            let bytes = self.blobs.get(&desc.digest).ok_or_else(|| {
                Error::invalid(&self.path, format!("blob {} is missing", desc.digest))
            })?;
            Ok(bytes.clone())
        }

        fn origin(&self) -> &Path {
            &self.path
        }
    }

    const READER: Policy = Policy {
        others: Others::Skip,
        configs: Configs::Always,
        style: Style::Reader,
        failures: OnFailure::Stop,
    };
    const PUSH: Policy = Policy {
        others: Others::Refuse,
        configs: Configs::WhenUnplaced,
        style: Style::Push,
        failures: OnFailure::Stop,
    };

    fn message(e: Error) -> String {
        match e {
            Error::Invalid { message, .. } => message,
            e => e.to_string(),
        }
    }

    #[test]
    fn shared_nodes_are_read_once_and_listed_each_time() {
        let mut b = Blobs::default();
        let linux = b.image("linux");
        let inner = b.index(vec![linux.clone(), linux.clone()]);
        let mut w = Walker::new(&b, READER);
        let top = w
            .load_list(&[inner.clone(), inner, linux], 0, None)
            .unwrap();
        // index, manifest, config: each fetched once.
        assert_eq!(b.fetched.get(), 3);
        let listings = image_listings(&top);
        // The index is descended into once; the manifest is listed there twice and once on top.
        assert_eq!(listings.len(), 3);
        assert!(Arc::ptr_eq(listings[0].1, listings[2].1));
        assert_eq!(listings[0].1.config().unwrap().os, "linux");
    }

    #[test]
    fn untyped_documents_are_sniffed_and_other_entries_skipped_or_refused() {
        let mut b = Blobs::default();
        let linux = b.image("linux");
        let mut untyped = linux.clone();
        untyped.media_type.clear();
        let mut w = Walker::new(&b, PUSH);
        let node = w.load(&untyped, 0).unwrap();
        assert_eq!(node.media_type, oci::MEDIA_TYPE_MANIFEST);
        // Without a platform the config is read for it.
        assert_eq!(node.platform_for(&untyped).unwrap().os, "linux");

        let other = b.put("application/vnd.example+json", b"{}".to_vec());
        let index = b.index(vec![linux, other.clone()]);
        let top = Walker::new(&b, READER)
            .load_list(std::slice::from_ref(&index), 0, None)
            .unwrap();
        assert_eq!(image_listings(&top).len(), 1);
        let refused = message(Walker::new(&b, PUSH).load(&index, 0).unwrap_err());
        assert_eq!(
            refused,
            format!(
                "index {} references {} of media type 'application/vnd.example+json', which cnbpkg cannot push",
                index.digest, other.digest
            )
        );
    }

    #[test]
    fn limits_hold_for_depth_and_listings() {
        let mut b = Blobs::default();
        let mut d = b.image("linux");
        for _ in 0..=MAX_INDEX_DEPTH {
            d = b.index(vec![d]);
        }
        let e = Walker::new(&b, READER)
            .load_list(&[d], 0, None)
            .unwrap_err();
        assert_eq!(message(e), "image indexes nested too deeply");

        let linux = b.image("linux");
        let wide = b.index(vec![linux; MAX_IMAGES]);
        let e = Walker::new(&b, READER)
            .load_list(&[wide], 0, None)
            .unwrap_err();
        assert_eq!(message(e), format!("lists more than {MAX_IMAGES} images"));
    }

    #[test]
    fn every_listing_of_a_blob_read_once_gives_its_true_size() {
        let mut b = Blobs::default();
        let linux = b.image("linux");
        let mut lying = linux.clone();
        lying.size += 1;
        let e = Walker::new(&b, READER)
            .load_list(&[linux.clone(), lying.clone()], 0, None)
            .unwrap_err();
        assert_eq!(
            message(e),
            format!(
                "blob {} is {} bytes, descriptor says {}",
                linux.digest, linux.size, lying.size
            )
        );
    }

    const RECORD: Policy = Policy {
        failures: OnFailure::Record,
        ..READER
    };

    #[test]
    fn a_recording_walk_keeps_failures_and_reads_the_siblings() {
        let mut b = Blobs::default();
        let linux = b.image("linux");
        let windows = b.image("windows");
        // A manifest whose blob is missing, one that is not a manifest, one whose config is
        // missing: each recorded, and every sibling read.
        let missing = Descriptor::new(oci::MEDIA_TYPE_MANIFEST, Digest::of(b"gone"), 4);
        let garbage = b.put(oci::MEDIA_TYPE_MANIFEST, b"[1]".to_vec());
        let lost_config = Descriptor::new(oci::MEDIA_TYPE_CONFIG, Digest::of(b"no"), 2);
        let manifest = Manifest {
            schema_version: 2,
            media_type: None,
            artifact_type: None,
            config: lost_config.clone(),
            layers: vec![],
            annotations: Default::default(),
        };
        let configless = b.put(oci::MEDIA_TYPE_MANIFEST, canonical(&manifest));
        let top = [
            missing.clone(),
            linux,
            garbage.clone(),
            configless.clone(),
            windows,
        ];
        let mut w = Walker::new(&b, RECORD);
        let children = w.load_list(&top, 0, None).unwrap();
        assert_eq!(children.len(), 5);
        assert!(children[0].node.is_none() && children[2].node.is_none());
        assert!(matches!(
            w.failure(&missing, Part::Manifest),
            Some(Failure::Unreadable(_))
        ));
        let Some(Failure::Unreadable(e)) = w.failure(&garbage, Part::Manifest) else {
            panic!("the garbage manifest is recorded");
        };
        assert!(message_of(e).starts_with(&format!(
            "manifest {} is not valid JSON for its type",
            garbage.digest
        )));
        // The manifest is kept without its config; the config's failure is its own.
        let node = children[3].node.as_ref().unwrap();
        assert!(node.manifest().is_some() && node.config_blob().is_none());
        assert!(w.failure(&lost_config, Part::Config).is_some());
        assert_eq!(
            children[4].node.as_ref().unwrap().config().unwrap().os,
            "windows"
        );
        assert_eq!(w.halted(), None);
        // Stopping at the first failure is the default.
        assert!(Walker::new(&b, READER).load_list(&top, 0, None).is_err());
    }

    #[test]
    fn a_recording_walk_halts_at_a_limit_and_reads_shared_configs_once() {
        let mut b = Blobs::default();
        let linux = b.image("linux");
        let inner = b.index(vec![linux.clone(); 3]);
        let wide = b.index(vec![inner; MAX_IMAGES]);
        let mut w = Walker::new(&b, RECORD);
        let children = w.load_list(&[wide.clone(), linux], 0, None).unwrap();
        assert_eq!(w.halted(), Some(Exceeded::Images));
        // The limit is recorded where it was reached, and nothing after it is read.
        assert!(children.len() == 1 && children[0].node.is_some());
        assert!(children[0].node.as_ref().unwrap().children().len() < MAX_IMAGES);

        // Two manifests sharing one config: the config is fetched once.
        let mut b = Blobs::default();
        let one = b.image("linux");
        let mut manifest: Manifest = serde_json::from_slice(&b.blobs[&one.digest]).unwrap();
        manifest.annotations.insert("n".into(), "2".into());
        let two = b.put(oci::MEDIA_TYPE_MANIFEST, canonical(&manifest));
        let w = walk(&b, &[one, two], READER).unwrap();
        assert_eq!(b.fetched.get(), 3);
        let configs: Vec<_> = w
            .iter()
            .map(|c| c.node.as_ref().unwrap().config_blob().unwrap() as *const _)
            .collect();
        assert_eq!(configs[0], configs[1]);
    }

    fn message_of(e: &Error) -> String {
        match e {
            Error::Invalid { message, .. } => message.clone(),
            e => e.to_string(),
        }
    }

    #[test]
    fn layers_are_found_by_diff_id() {
        let a = Digest::of(b"a");
        let b = Digest::of(b"b");
        let config: ImageConfig = serde_json::from_value(serde_json::json!({
            "architecture": "arm64", "os": "linux", "variant": "v8",
            "rootfs": {"type": "layers", "diff_ids": [a.to_string(), b.to_string(), a.to_string()]}
        }))
        .unwrap();
        assert_eq!(config.platform().to_string(), "linux/arm64/v8");
        let layer = Descriptor::new(oci::MEDIA_TYPE_LAYER_GZIP, Digest::of(b"gz"), 2);
        let manifest = Manifest {
            schema_version: 2,
            media_type: None,
            artifact_type: None,
            config: Descriptor::new(oci::MEDIA_TYPE_CONFIG, Digest::of(b"c"), 1),
            layers: vec![layer.clone()],
            annotations: Default::default(),
        };
        let lookup = LayerLookup::new(&config);
        assert_eq!(lookup.layer(&manifest, &a), Ok((0, &layer)));
        assert_eq!(
            lookup.layer(&manifest, &b),
            Err(LayerMiss::NoManifestLayer(1))
        );
        assert_eq!(
            lookup.layer(&manifest, &Digest::of(b"x")),
            Err(LayerMiss::NotInConfig)
        );
    }
}
