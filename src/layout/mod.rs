//! OCI image layouts: a content-addressed blob store written straight into a `.cnb` archive or a
//! layout directory, a reader for `.cnb` files and layout directories, and the one walk over
//! their image trees.

pub(crate) mod layers;
pub(crate) mod reader;
pub(crate) mod tree;
pub(crate) mod writer;

/// The reader's limits, shared by every reader of packages (verify, inspect, push, composites).
pub(crate) use reader::MAX_ENTRIES;
pub use reader::{BlobReader, ImageRef, PackageReader, MAX_JSON_BLOB};
pub use tree::{LayerLookup, LayerMiss};
pub(crate) use tree::{MAX_IMAGES, MAX_IMAGES_BYTES, MAX_INDEX_DEPTH};
pub use writer::OutputFormat;
pub(crate) use writer::{commit_outputs, LayoutWriter};
