//! Pushing finished packages to OCI registries over the distribution API, byte for byte.
//!
//! [`push`] reads a `.cnb` file or layout directory and copies it, never repackaging: blobs,
//! manifests and indexes land in the registry with the package's digests and bytes (except
//! that a [`PushOptions::platforms`] subset of several manifests gets a new index listing just
//! them; one chosen platform is pushed as its own manifest, the digest the package lists).
//!
//! Order, per repository pushed to: every blob is checked with HEAD and then mounted
//! ([`PushOptions::from`], or the repository of the same registry pushed to just before) or
//! uploaded, in
//! parallel (`jobs` threads, [`DEFAULT_JOBS`] when 0, at most [`MAX_JOBS`]), streamed straight
//! from the package (monolithic POST + PUT, chunked PATCH above
//! [`PushSettings::chunk_threshold`] or after a 413); then platform manifests by digest
//! (skipped when present), then the top manifest or index at every tag. Several references
//! and `tags` share one plan: the package is read once; blobs and manifests go to each
//! repository once; each registry gets its own client and credentials.
//!
//! Transient failures (5xx, 408, 429, dropped connections, deadlines) are retried with
//! exponential backoff (longer when `Retry-After` asks, at most 30 s); a retried blob upload
//! starts a new upload session; each retry is announced as it starts. Every request has an
//! overall deadline ([`Deadlines`]: 60 s; a blob upload 120 s plus one second per 64 KiB),
//! however slowly the server sends. PUT, POST and PATCH follow no redirect (a manifest PUT
//! must answer 201); GET and HEAD follow a few, never with credentials.
//!
//! [`push`] (what the CLI uses) takes [`PushSettings::from_env`]: the defaults, except that the
//! hidden environment variables [`RETRY_BACKOFF_ENV`] (`CNBPKG_RETRY_BACKOFF_MS`, the first
//! retry delay) and [`REQUEST_TIMEOUT_ENV`] (`CNBPKG_REQUEST_TIMEOUT_MS`, the request deadline
//! and the blob upload floor) take milliseconds. They exist so tests of the binary can fail
//! fast against unreachable or hostile registries; they are not supported options.
//!
//! Credentials, in order: `username`/`password` from the options (for the first reference's
//! registry only), then the first of [`auth::default_credential_files`] with an entry or
//! helper for the registry (Docker's `config.json` format: `auths` with `auth`,
//! `username`/`password` or `identitytoken`, `credHelpers`, `credsStore`). They are sent only
//! to the registry's own scheme, host and port (an upload `Location` elsewhere gets none) and
//! to the token server its challenge names. Secrets never appear in status lines or errors:
//! a malformed credentials file is reported by line and column, never by content.
//!
//! TLS: the system's roots, plus `ca_cert` and the registry's `certs.d` files
//! ([`certs::default_certs_d`]); a server certificate that is exactly one of those is
//! accepted even when it is a CA certificate (self-signed, as Docker's documentation makes
//! them), its name and dates still checked.
//!
//! Progress goes to the [`crate::events::Events`] sink given: status lines with the verbs
//! `Pushing`, `Exists`, `Mounted`, `Uploaded`, `Pushed`, `Retrying`, `Credentials` and
//! `Trusting`, warnings (listed in [`PushReport::warnings`] too), and each blob upload's bytes
//! as [`crate::events::Event::Transfer`]; the library draws nothing.
//!
//! Rooms: `client` is the one HTTP client (auth scoped by `Access`, retries, deadlines,
//! redirects, credential scoping) for every command that talks to a registry; `stream` holds
//! what uploads and downloads share (digest verified while streaming, transfer progress);
//! `read` asks what a repository holds (HEAD) and checks the digests a registry names;
//! `upload` writes blobs and manifests; `push` is the push flow; `plan` what a push or a pull
//! copies; `pull` is the pull flow ([`pull`]: the same client, settings and events, images
//! copied byte for byte into [`crate::store`], each blob streamed to disk and verified before
//! it is renamed into place).

pub(crate) mod auth;
pub(crate) mod certs;
pub(crate) mod client;
mod parallel;
mod plan;
mod pull;
mod push;
pub(crate) mod read;
pub(crate) mod stream;
mod tls;
pub(crate) mod upload;

pub use self::auth::default_credential_files;
pub use self::certs::default_certs_d;
pub use self::client::Deadlines;
pub use self::parallel::{DEFAULT_JOBS, MAX_JOBS};
pub use self::pull::{pull, pull_with, PullOptions, PullReport, PulledImage, PulledManifest};
pub use self::push::{
    parse_from, push, push_with, PushOptions, PushReport, PushSettings, PushedManifest,
    REQUEST_TIMEOUT_ENV, RETRY_BACKOFF_ENV,
};
pub(crate) use crate::layout::tree::sniff_media_type;
