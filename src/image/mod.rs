//! Image assembly shared by the commands that write packages and images: the build-once layer
//! cache and the image writer (layers + config + labels + target → config, manifest, platform
//! descriptor, index entries and the finished index of every output).
//!
//! `package` builds its layers through the cache and writes one image per target; `merge`
//! copies existing images blob for blob into one index; `builder create` writes a builder
//! image from buildpack, lifecycle and base-image layers.

mod cache;
mod writer;

pub(crate) use cache::read_layer_blob;
pub(crate) use cache::{BuiltLayer, LayerExecutables, LayerKey};
pub(crate) use writer::{
    check_json_size, index_entries, BaseConfig, FinishedOutput, ImageSpec, ImageWriter, LayerBlob,
    WrittenImage,
};
pub use writer::{ImageReport, LayerReport, CREATED};
