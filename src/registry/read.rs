//! Registry reads, for every command: whether a blob or manifest is there (HEAD), the manifest
//! media types accepted, and the check of a digest the registry names for content.

use ureq::http::Method;

use crate::digest::Digest;
use crate::error::{Error, Result};

use super::client::{Client, Resp};

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
