//! OCI image layouts: a content-addressed blob store written straight into a `.cnb` archive or a
//! layout directory, and a reader for `.cnb` files and layout directories.

pub(crate) mod reader;
mod writer;

pub use reader::{BlobReader, ImageRef, PackageReader, MAX_JSON_BLOB};
/// The reader's limits, shared by every reader of packages (verify, inspect, push, composites).
pub(crate) use reader::{
    MAX_DESCRIPTORS, MAX_ENTRIES, MAX_IMAGES, MAX_IMAGES_BYTES, MAX_INDEX_DEPTH,
};
pub use writer::{check_destination, commit_outputs, LayoutWriter, OutputFormat};

/// Modification time of every entry of the outer archive: 1980-01-01T00:00:01Z, as pack writes.
pub const ARCHIVE_MTIME: u64 = 315_532_801;
