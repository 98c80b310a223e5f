//! Integration tests of packaging from the command line: inputs, outputs, composites, targets,
//! Windows, and what an interrupted or limited run leaves.
//!
//! One test binary per area, so the crate and its dependencies are linked a handful of times
//! rather than once per file; each file is a module, and its tests are named `file::test`.

#[path = "../support/mod.rs"]
mod support;

mod api_cancel;
mod attack11_reader_limits;
mod attack12_buildpack_names;
mod attack12_inputs;
mod attack12_json_paths;
mod attack12_split_names;
mod attack12_split_output_dir;
mod composite;
mod config_descriptor;
mod config_targets;
mod gzip_members;
mod index_platforms;
mod leftovers_bounds;
mod leftovers_distro_keys;
mod leftovers_entry_points;
mod leftovers_gzip;
mod leftovers_signals;
mod leftovers_windows_names;
mod leftovers_windows_verify;
mod limits_dependencies;
mod merge_composite;
mod merge_invariant;
mod merge_readers;
mod merge_refusals;
mod package_inputs;
mod package_outputs;
mod safety_outputs;
mod safety_outputs_signals;
mod windows;
