//! Integration tests of compatibility with pack: flags, messages, executables, remote dependencies.
//!
//! One test binary per area, so the crate and its dependencies are linked a handful of times
//! rather than once per file; each file is a module, and its tests are named `file::test`.

#[path = "../support/mod.rs"]
mod support;

mod compat_executables;
mod compat_messages;
mod compat_pack_flags;
mod compat_remote;
