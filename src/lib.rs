//! # cnbpkg
//!
//! Package Cloud Native Buildpacks into reproducible, multi-platform `.cnb` files (OCI image
//! layouts in a tar archive) without a Docker daemon or a network, and push finished packages
//! to OCI registries as a separate step.
//!
//! # The API
//!
//! Each operation takes its options (with a [`cancel::Cancel`] token) and an
//! [`events::Events`] sink, and returns a serializable report or an [`Error`]:
//! [`package::package_buildpack`], [`builder::create_builder`], [`merge::merge`],
//! [`split::split`], [`verify::verify_with`], [`inspect::inspect`], [`registry::push`],
//! [`registry::pull`] (into the [`store`]). Their vocabulary:
//! [`target`] (platform targets as `--target` writes them), [`descriptor`] (`buildpack.toml`,
//! `package.toml`), [`cnb`] (labels, module directories, platform matching), [`oci`] and
//! [`digest`] (image-spec types), [`layout::PackageReader`] (reads any `.cnb` file or layout
//! directory). [`ui::Printer`] is the terminal sink the CLI uses.
//!
//! # Inside
//!
//! Data flows one way: configuration (`descriptor`, `target`) → sources (`source`: trees and
//! archives, every input opened through `input`) → layers (`tar`, `layer`, `compress`,
//! `digest`) → images (`image`: the build-once layer cache and the image writer) → layout
//! (`layout`: blob store, archive, reader, and `layout::tree`, the one walk over image
//! trees with one set of limits) → archive, committed all or none by `atomic`. `package`
//! orchestrates; `builder` builds builders on their build images from the same sources, layer
//! cache and image writer; `merge` and `split` copy images between packages through `image`;
//! `verify` and `inspect` read finished layouts through the tree; `registry` (one client: auth,
//! TLS, retries; `push` and `pull` beside it) copies them to registries and registry images
//! into `store`, the local image store.

// The library's API: what a release pipeline (or libcnb-cargo) calls.
pub mod builder;
pub mod cancel;
pub mod cnb;
pub mod descriptor;
pub mod digest;
pub mod error;
pub mod events;
pub mod inspect;
pub mod layout;
pub mod merge;
pub mod oci;
pub mod package;
pub mod reference;
pub mod registry;
pub mod split;
pub mod store;
pub mod target;
pub mod ui;
pub mod verify;

// Machinery: the stages behind the API, free to change.
pub(crate) mod atomic;
pub(crate) mod compress;
pub(crate) mod image;
pub(crate) mod input;
pub(crate) mod json;
pub(crate) mod layer;
pub(crate) mod machine;
pub(crate) mod read_ahead;
pub(crate) mod source;
pub(crate) mod tar;
pub(crate) mod tar_guard;

/// Entry points for the fuzz targets and their regression tests; not a stable API.
#[doc(hidden)]
pub mod fuzzing;
/// Stage-level entry points for the crate's own integration tests and benchmarks; not a
/// stable API.
#[doc(hidden)]
pub mod internals;

pub use atomic::{on_signal, AtomicFile};
pub use compress::{Compression, MAX_THREADS as MAX_COMPRESSION_THREADS};
pub use error::{Error, Result};

/// The README's code blocks, compiled and run as doctests so its library example stays true.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
