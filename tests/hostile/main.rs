//! Integration tests of hostile inputs: archives, packages, dependencies and descriptors built to
//! attack the readers, and special files.
//!
//! One test binary per area, so the crate and its dependencies are linked a handful of times
//! rather than once per file; each file is a module, and its tests are named `file::test`.

#[path = "../support/mod.rs"]
mod support;

mod attack11_dependency_layers;
mod attack11_secrets;
mod attack11_walker;
mod attack15_read_ahead;
mod attack_content_bounds;
mod attack_content_index;
mod attack_content_json_keys;
mod attack_content_links;
mod attack_files_inputs;
mod attack_files_outputs;
mod attack_store;
mod audit_remote_advice;
mod hostile_fuzz_regressions;
mod hostile_inputs;
mod hostile_pkg_content;
mod hostile_pkg_descriptor;
mod inputs_archives;
mod inputs_special_files;
