//! Integration tests of the layer and layout machinery: compression, layer building and extraction,
//! the layout writer and reader, and verify on damaged packages.
//!
//! One test binary per area, so the crate and its dependencies are linked a handful of times
//! rather than once per file; each file is a module, and its tests are named `file::test`.

#[path = "../support/mod.rs"]
mod support;

mod compress_determinism;
mod layer_build;
mod layer_extract;
mod layer_pack_fixtures;
mod layout_io;
mod verify_damaged;
mod walk_verify;
