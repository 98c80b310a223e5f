//! OCI image layouts: a content-addressed blob store written straight into a `.cnb` archive or a
//! layout directory, and a reader for `.cnb` files and layout directories.

mod reader;
mod writer;

pub use reader::{BlobReader, ImageRef, PackageReader, MAX_JSON_BLOB};
pub use writer::{check_destination, commit_outputs, LayoutWriter, OutputFormat};

/// Modification time of every entry of the outer archive: 1980-01-01T00:00:01Z, as pack writes.
pub const ARCHIVE_MTIME: u64 = 315_532_801;
