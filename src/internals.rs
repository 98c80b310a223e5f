//! Stage-level entry points re-exported for the crate's own integration tests and benchmarks.
//!
//! The stages (tar writing, layer building, compression, archive extraction) are internal:
//! their integration tests and micro-benchmarks reach them only through here, so that the
//! public API stays small. Nothing here is stable.

pub use crate::compress::{decoder, encoder, gzip_encoder_with_block_size, GZIP_BLOCK_SIZE};
pub use crate::json::canonical;
pub use crate::layer::{
    write_module_layer, LayerBuilder, LayerFormat, LayerSpec, WINDOWS_ADMIN_RAWSD,
};
pub use crate::layout::writer::LayoutWriter;
pub use crate::source::{extract_archive, walk, SourceKind, MAX_EXTRACT_ENTRIES};
pub use crate::tar::{EntryType, Header, TarWriter};
