//! Integration tests of builders: `builder create` end to end against independent inputs (build
//! and lifecycle images made by umoci, lifecycle archives, buildpack directories and packages)
//! and independent readers (skopeo, umoci, a registry), its refusals, and `inspect` and `verify`
//! on builders.
//!
//! One test binary per area, so the crate and its dependencies are linked a handful of times
//! rather than once per file; each file is a module, and its tests are named `file::test`.

#[path = "../support/mod.rs"]
mod support;

mod attack;
mod create_basic;
mod create_errors;
mod create_inputs;
mod create_publish;
mod create_sources;
mod fixtures;
mod read_builders;
