//! What a push or a pull copies: an image tree read once, platforms chosen, blobs listed.

use std::collections::{BTreeSet, HashMap};
use std::path::Path;
use std::sync::Arc;

use crate::cnb::PlatformFilter;
use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::json::canonical;
use crate::layout::tree::{
    BlobSource, Configs, OnFailure, Others, Policy, Style, TreeNode, Walker,
};
use crate::layout::PackageReader;
use crate::oci::{self, Descriptor, Index, Manifest, Platform};

use crate::reference::Target;

/// A manifest or index to push, with its raw bytes. Nodes are shared by digest: a package
/// whose nested indexes list the same things many times holds each of them once.
#[derive(Debug, Clone)]
pub(super) struct Node {
    /// The descriptor that points at it in the package.
    pub(super) desc: Descriptor,
    pub(super) digest: Digest,
    pub(super) media_type: String,
    pub(super) bytes: Vec<u8>,
    pub(super) is_index: bool,
    pub(super) platform: Option<Platform>,
    pub(super) children: Vec<Arc<Node>>,
}

#[derive(Debug, Clone)]
pub(super) struct Leaf {
    pub(super) digest: Digest,
    pub(super) platform: Option<Platform>,
}

pub(super) struct Plan {
    pub(super) top: Arc<Node>,
    pub(super) leaves: Vec<Leaf>,
    pub(super) blobs: Vec<Descriptor>,
}

impl Plan {
    pub(super) fn build(
        reader: &PackageReader,
        path: &Path,
        filters: &[PlatformFilter],
        target: &Target,
    ) -> Result<Plan> {
        Plan::build_from(
            reader,
            &reader.index().manifests,
            Some(reader),
            path,
            filters,
            target,
        )
    }

    /// The plan of the images `listed` (a layout's `index.json` entries, or the one manifest
    /// or index a registry serves at a tag) read through `source`. `local` is the package the
    /// blobs come from, when they come from one (its stored sizes are checked against every
    /// listing; a foreign layer it lacks is left out); without one, every listing of a blob must
    /// give the same size, and foreign layers are left out.
    pub(super) fn build_from(
        source: &dyn BlobSource,
        listed: &[Descriptor],
        local: Option<&PackageReader>,
        path: &Path,
        filters: &[PlatformFilter],
        target: &Target,
    ) -> Result<Plan> {
        let tops: Vec<&Descriptor> = listed
            .iter()
            .filter(|d| {
                d.media_type.is_empty()
                    || oci::is_manifest(&d.media_type)
                    || oci::is_index(&d.media_type)
            })
            .collect();
        let mut loader = Loader {
            walker: Walker::new(
                source,
                Policy {
                    others: Others::Refuse,
                    configs: Configs::WhenUnplaced,
                    style: Style::Push,
                    failures: OnFailure::Stop,
                },
            ),
            nodes: HashMap::new(),
            blobs: Vec::new(),
        };
        let mut top = match (tops.as_slice(), target) {
            ([], _) => return Err(Error::invalid(path, "the package holds no image")),
            (_, Target::Digest(d)) if tops.iter().any(|t| t.digest == *d) => {
                let desc = tops.iter().find(|t| t.digest == *d).expect("checked");
                loader.load(desc, 0)?
            }
            ([one], _) => loader.load(one, 0)?,
            (many, _) => {
                // A flat layout with several images: push an index over them.
                let children = many
                    .iter()
                    .map(|d| loader.load(d, 1))
                    .collect::<Result<Vec<_>>>()?;
                let descs = children.iter().map(|c| descriptor_of(c)).collect();
                Arc::new(synthesize_index(descs, children, false))
            }
        };
        let mut blobs = std::mem::take(&mut loader.blobs);
        let leaves = unique_leaves(&top);
        if !filters.is_empty() {
            let chosen: Vec<&Arc<Node>> = leaves
                .iter()
                .filter(|n| {
                    let p = n.platform.clone().unwrap_or_default();
                    filters.iter().any(|f| f.matches(&p))
                })
                .collect();
            if chosen.is_empty() {
                let have: Vec<String> = leaves
                    .iter()
                    .map(|n| {
                        n.platform
                            .as_ref()
                            .map(Platform::to_string)
                            .unwrap_or_else(|| "unknown".into())
                    })
                    .collect();
                return Err(Error::NoPlatformMatch {
                    path: path.to_path_buf(),
                    requested: filters.iter().map(PlatformFilter::to_string).collect(),
                    available: have,
                });
            }
            if chosen.len() == 1 && top.is_index {
                // One platform: its own manifest (the digest the package lists) goes at the
                // tag, as per-architecture tags are plain manifests elsewhere too.
                let one = chosen[0].clone();
                blobs = manifest_blobs(path, &one)?;
                top = one;
            } else if chosen.len() != leaves.len() {
                let docker = top.media_type == oci::DOCKER_MANIFEST_LIST;
                let chosen: Vec<Arc<Node>> = chosen.into_iter().cloned().collect();
                let descs = chosen.iter().map(|n| descriptor_of(n)).collect();
                // Only the chosen manifests' blobs are pushed.
                blobs.clear();
                for n in &chosen {
                    blobs.extend(manifest_blobs(path, n)?);
                }
                top = Arc::new(synthesize_index(descs, chosen, docker));
            }
        }
        if let Target::Digest(d) = target {
            if top.digest != *d {
                return Err(Error::usage(format!(
                    "{} has no manifest or index with digest {d} to push (its top-level digest is {})",
                    path.display(),
                    top.digest
                )));
            }
        }
        let mut seen: HashMap<Digest, u64> = HashMap::new();
        let mut unique = Vec::new();
        for b in blobs {
            // Each blob is sent once, with the first descriptor listing it: every other one
            // must give its size too, or a manifest would be pushed that no client can pull.
            let known = match local {
                Some(reader) => reader.blob_size(&b.digest),
                None => seen.get(&b.digest).copied(),
            };
            if let Some(stored) = known {
                if stored != b.size {
                    return Err(Error::SizeMismatch {
                        path: path.to_path_buf(),
                        digest: b.digest,
                        expected: b.size,
                        actual: stored,
                    });
                }
            }
            if seen.insert(b.digest, b.size).is_some() {
                continue;
            }
            if !b.urls.is_empty() && !local.is_some_and(|r| r.has_blob(&b.digest)) {
                // A foreign (non-distributable) layer that lives at its URLs.
                continue;
            }
            unique.push(b);
        }
        // Largest first, so the long uploads start early.
        unique.sort_by(|a, b| b.size.cmp(&a.size).then(a.digest.cmp(&b.digest)));
        let leaves = unique_leaves(&top)
            .iter()
            .map(|n| Leaf {
                digest: n.digest,
                platform: n.platform.clone(),
            })
            .collect();
        Ok(Plan {
            top,
            leaves,
            blobs: unique,
        })
    }
}

/// The config and layers of an image manifest node.
pub(super) fn manifest_blobs(path: &Path, n: &Node) -> Result<Vec<Descriptor>> {
    let m: Manifest = serde_json::from_slice(&n.bytes).map_err(|e| {
        Error::invalid(
            path,
            format!(
                "manifest {}: {}",
                n.digest,
                crate::ui::sanitize(&e.to_string(), 200)
            ),
        )
    })?;
    let mut out = vec![m.config.clone()];
    out.extend(m.layers.iter().cloned());
    Ok(out)
}

/// The descriptor as the package has it (media type filled in when the package left it out).
pub(super) fn descriptor_of(n: &Node) -> Descriptor {
    let mut d = n.desc.clone();
    if d.media_type.is_empty() {
        d.media_type = n.media_type.clone();
    }
    // The image spec requires `architecture` wherever `platform` appears.
    if d.platform
        .as_ref()
        .is_some_and(|p| p.architecture.is_empty())
    {
        d.platform = None;
    }
    d
}

pub(super) fn synthesize_index(
    descs: Vec<Descriptor>,
    children: Vec<Arc<Node>>,
    docker: bool,
) -> Node {
    let mut index = Index::new(descs);
    if docker {
        index.media_type = Some(oci::DOCKER_MANIFEST_LIST.to_string());
    }
    let bytes = canonical(&index);
    let digest = Digest::of(&bytes);
    let media_type = index.media_type.clone().unwrap_or_default();
    Node {
        desc: Descriptor::new(media_type.clone(), digest, bytes.len() as u64),
        digest,
        media_type,
        bytes,
        is_index: true,
        platform: None,
        children,
    }
}

/// The image manifests below `top` (or `top` itself), each digest once, in listing order.
pub(super) fn unique_leaves(top: &Arc<Node>) -> Vec<Arc<Node>> {
    pub(super) fn walk(n: &Arc<Node>, seen: &mut BTreeSet<Digest>, out: &mut Vec<Arc<Node>>) {
        if !seen.insert(n.digest) {
            return;
        }
        if n.is_index {
            for c in &n.children {
                walk(c, seen, out);
            }
        } else {
            out.push(n.clone());
        }
    }
    let mut out = Vec::new();
    walk(top, &mut BTreeSet::new(), &mut out);
    out
}

/// Reads the manifests and indexes to push through the package's image tree (each digest
/// once, within its limits), as push nodes.
struct Loader<'a> {
    walker: Walker<'a>,
    nodes: HashMap<Digest, Arc<Node>>,
    /// Configs and layers of every image read.
    blobs: Vec<Descriptor>,
}

impl Loader<'_> {
    fn load(&mut self, desc: &Descriptor, depth: usize) -> Result<Arc<Node>> {
        let tree = self.walker.load(desc, depth)?;
        Ok(self.node(&tree))
    }

    fn node(&mut self, tree: &Arc<TreeNode>) -> Arc<Node> {
        let digest = tree.descriptor.digest;
        if let Some(n) = self.nodes.get(&digest) {
            return n.clone();
        }
        let children = tree
            .children()
            .iter()
            .filter_map(|c| c.node.as_ref())
            .map(|c| self.node(c))
            .collect();
        let platform = match tree.manifest() {
            Some(manifest) => {
                self.blobs.push(manifest.config.clone());
                self.blobs.extend(manifest.layers.iter().cloned());
                tree.platform_for(&tree.descriptor)
            }
            None => tree.descriptor.platform.clone(),
        };
        let node = Arc::new(Node {
            desc: tree.descriptor.clone(),
            digest,
            media_type: tree.media_type.clone(),
            bytes: tree.bytes.clone(),
            is_index: tree.is_index(),
            platform,
            children,
        });
        self.nodes.insert(digest, node.clone());
        node
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    pub(super) fn platform_filters() {
        let p = Platform {
            os: "linux".into(),
            architecture: "arm".into(),
            variant: "v7".into(),
            ..Default::default()
        };
        assert!(PlatformFilter::parse("linux").unwrap().matches(&p));
        assert!(PlatformFilter::parse("linux/arm").unwrap().matches(&p));
        assert!(PlatformFilter::parse("linux/arm/v7").unwrap().matches(&p));
        assert!(!PlatformFilter::parse("linux/arm/v6").unwrap().matches(&p));
        assert!(!PlatformFilter::parse("windows").unwrap().matches(&p));
        assert!(PlatformFilter::parse("linux//v7").is_err());
        assert!(PlatformFilter::parse("a/b/c/d").is_err());
        for text in ["linux", "linux/arm", "linux/arm/v7"] {
            assert_eq!(PlatformFilter::parse(text).unwrap().to_string(), text);
        }
    }
}
