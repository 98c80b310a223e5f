//! The one set of limits every reader of layouts and image trees keeps (archive, walk, blobs).
//!
//! A package, a layout directory, a store or a registry index is hostile input: these bound
//! what reading one may cost in memory and time, whichever command reads it.

pub use crate::oci::MAX_JSON_BLOB;
/// The most entries an outer archive may have (a package holds a few files per image; a million
/// headers would be half a gigabyte of metadata).
pub const MAX_ENTRIES: usize = 100_000;
/// The longest entry name of an outer archive (layout names are under 100 bytes; every name is
/// kept in memory, up to [`MAX_ENTRIES`] of them).
pub(crate) const MAX_ENTRY_NAME: usize = 1024;
/// How deep nested indexes may go.
pub(crate) const MAX_INDEX_DEPTH: usize = 8;
/// The most descriptors all of a tree's indexes may list together (each listing counts,
/// however often one digest repeats).
pub(crate) const MAX_DESCRIPTORS: usize = 100_000;
/// The most images (and indexes) one tree may list, each listing counted (a crafted index
/// could list one manifest millions of times, or fan out through nested indexes).
pub(crate) const MAX_IMAGES: usize = 4096;
/// The most manifest, index and config bytes a walk keeps in memory together (many manifests
/// can share one large config).
pub(crate) const MAX_IMAGES_BYTES: u64 = 256 << 20;
/// The most config and layer descriptors the images of one tree may list together.
pub(crate) const MAX_BLOBS: usize = MAX_ENTRIES;
