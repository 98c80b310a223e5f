//! OCI image layouts: a content-addressed blob store written straight into a `.cnb` archive or a
//! layout directory, a reader for `.cnb` files and layout directories, and the one walk over
//! their image trees.

pub(crate) mod layers;
pub(crate) mod limits;
pub(crate) mod reader;
pub(crate) mod tree;
pub(crate) mod writer;

/// The readers' limits, shared by every reader of packages (verify, inspect, push, composites).
pub use limits::MAX_JSON_BLOB;
pub(crate) use limits::{MAX_ENTRIES, MAX_IMAGES, MAX_IMAGES_BYTES, MAX_INDEX_DEPTH};
pub use reader::{BlobReader, ImageRef, PackageReader};
pub use tree::{LayerLookup, LayerMiss};
pub use writer::OutputFormat;
pub(crate) use writer::{commit_outputs, LayoutWriter};
