//! # cnbpkg
//!
//! Package Cloud Native Buildpacks into reproducible, multi-platform `.cnb` files (OCI image
//! layouts in a tar archive) without a Docker daemon or a network, and push finished packages
//! to OCI registries as a separate step.
//!
//! Data flows one way: configuration ([`descriptor`], [`target`]) → sources ([`source`]) →
//! layers ([`tar`], [`layer`], [`compress`], [`digest`]) → images (`image`: the layer cache and
//! the image writer) → layout ([`layout`]) → archive, with [`package`] orchestrating and
//! `registry` reading finished layouts. CNB vocabulary (label and annotation names, the distros
//! an index entry serves, platform display) lives in [`cnb`].

pub mod atomic;
pub mod cancel;
pub mod cnb;
pub mod compress;
pub mod descriptor;
pub mod digest;
pub mod error;
pub mod events;
/// Entry points for the fuzz targets and their regression tests; not a stable API.
#[doc(hidden)]
pub mod fuzzing;
pub(crate) mod image;
pub mod input;
pub mod inspect;
pub mod json;
pub mod layer;
pub mod layout;
pub mod machine;
pub mod oci;
pub mod package;
pub mod registry;
pub mod source;
pub mod tar;
pub(crate) mod tar_guard;
pub mod target;
pub mod ui;
pub mod verify;

pub use error::{Error, Result};

/// The README's code blocks, compiled and run as doctests so its library example stays true.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
