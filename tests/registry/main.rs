//! Integration tests of pushing to registries: a real registry, TLS, tokens, faults, and hostile
//! registries.
//!
//! One test binary per area, so the crate and its dependencies are linked a handful of times
//! rather than once per file; each file is a module, and its tests are named `file::test`.

#[path = "../support/mod.rs"]
mod support;

mod attack11_cancel_retry;
mod attack11_push_sizes;
mod attack_registry_push;
mod attack_registry_refs;
mod attack_registry_tls;
mod attack_store;
mod flags_messages;
mod index_push;
mod pull_auth;
mod pull_hostile;
mod pull_output;
mod pull_resume;
mod pull_store;
mod push_cli;
mod push_faults;
mod push_http;
mod push_tls;
mod push_token;
mod registry_hostile;
mod registry_push;
mod store_maintenance;
mod store_packaging;
