//! Registry reads, for every command: whether a blob or manifest is there (HEAD), manifests and
//! indexes fetched and verified (GET), the manifest media types accepted, and the check of a
//! digest the registry names for content.

use std::io::Read;

use ureq::http::Method;

use crate::digest::{Digest, HashingReader};
use crate::error::{Error, Result};
use crate::oci::MAX_JSON_BLOB;

use super::client::{Client, Failure, Resp};
use crate::reference::Target;

/// A manifest or index as the registry served it, verified.
#[derive(Debug, Clone)]
pub struct Fetched {
    /// The bytes, exactly as served.
    pub bytes: Vec<u8>,
    /// Their digest.
    pub digest: Digest,
    /// The `Content-Type` the registry gave (parameters dropped), if any.
    pub content_type: Option<String>,
}

/// GET the manifest or index at `target`, with every manifest media type accepted, at most
/// [`MAX_JSON_BLOB`] bytes. By digest, the bytes must have it; by tag, they must have the
/// digest the registry names in `Docker-Content-Digest` (when it names none, the digest of
/// the bytes received is the tag's).
pub fn fetch_manifest(client: &Client, target: &Target) -> Result<Fetched> {
    let (path, expected) = match target {
        Target::Tag(t) => (format!("manifests/{t}"), None),
        Target::Digest(d) => (format!("manifests/{d}"), Some(*d)),
    };
    let url = client.url(&path);
    client.get_streamed(&url, &[("Accept", MANIFEST_ACCEPT)], None, |resp, body| {
        let mut bytes = Vec::new();
        let mut hashing = HashingReader::new(body.take(MAX_JSON_BLOB + 1));
        hashing
            .read_to_end(&mut bytes)
            .map_err(|e| client.body_failure(&Method::GET, &url, &e))?;
        let (_, digest, _) = hashing.finish();
        if bytes.len() as u64 > MAX_JSON_BLOB {
            return Err(Failure::from(Error::other(format!(
                "{}: the manifest at {} is larger than {} MiB",
                client.registry,
                crate::registry::client::shown_path(&url),
                MAX_JSON_BLOB >> 20
            ))));
        }
        check_digest(client, resp, &digest)?;
        if let Some(e) = expected.filter(|e| *e != digest) {
            return Err(Failure::from(Error::other(format!(
                "{}: the registry served content with digest {digest} for manifest {e}",
                client.registry
            ))));
        }
        let content_type = resp
            .header("content-type")
            .map(|c| c.split(';').next().unwrap_or("").trim().to_string())
            .filter(|c| !c.is_empty());
        Ok(Fetched {
            bytes,
            digest,
            content_type,
        })
    })
}

/// Every manifest media type accepted back (HEAD and GET of manifests).
pub const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.docker.distribution.manifest.v2+json";

/// Whether the blob exists in the repository (HEAD), checking any digest the registry names.
pub fn blob_exists(client: &Client, digest: &Digest) -> Result<bool> {
    exists(client, &format!("blobs/{digest}"), &[], digest)
}

/// HEAD `…/v2/<repo>/<path>`: true on 200 (checking any digest the registry names), false on 404.
fn exists(client: &Client, path: &str, headers: &[(&str, &str)], digest: &Digest) -> Result<bool> {
    let url = client.url(path);
    let resp = client.send(Method::HEAD, &url, headers, None)?;
    match resp.status {
        200 => {
            check_digest(client, &resp, digest)?;
            Ok(true)
        }
        404 => Ok(false),
        _ => Err(client.status_error(&Method::HEAD, &url, &resp)),
    }
}

/// Fail when the registry names a different digest than the content's.
pub fn check_digest(client: &Client, resp: &Resp, expected: &Digest) -> Result<()> {
    if let Some(d) = resp.header("docker-content-digest") {
        if d.trim() != expected.to_string() {
            return Err(Error::other(format!(
                "{}: the registry reports digest {} for content with digest {expected}",
                client.registry,
                crate::ui::sanitize(d.trim(), 100)
            )));
        }
    }
    Ok(())
}

/// Whether the repository holds the manifest `digest` (HEAD with `Accept`).
pub fn manifest_exists(client: &Client, digest: &Digest) -> Result<bool> {
    exists(
        client,
        &format!("manifests/{digest}"),
        &[("Accept", MANIFEST_ACCEPT)],
        digest,
    )
}
