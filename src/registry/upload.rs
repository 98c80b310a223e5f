//! Blob and manifest uploads: HEAD first, cross-repository mount, monolithic streamed PUT,
//! chunked PATCH for large blobs or after a 413; each retried upload starts a new session.

use std::io::{self, Read};
use std::path::Path;
use std::sync::atomic::AtomicU64;

use ureq::http::Method;
use url::Url;

use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::layout::BlobReader;

use super::client::{shown_path, Body, Client, Failure, Resp};
use super::read::check_digest;
use super::stream::{Counting, Progress, Verdict, Verified};

/// How one blob got into the registry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlobOutcome {
    /// It was there already.
    Exists,
    /// Mounted from the `from` repository.
    Mounted,
    /// Uploaded.
    Uploaded,
}

/// Upload tuning.
#[derive(Debug, Clone, Copy)]
pub struct UploadTuning {
    /// Blobs larger than this are uploaded in chunks.
    pub chunk_threshold: u64,
    /// Chunk size (raised to the registry's `OCI-Chunk-Min-Length`).
    pub chunk_size: u64,
}

/// Push one blob that is known to be missing: mount it from `from` or upload it, reporting
/// its progress as [`crate::events::Event::Transfer`]s to the client's sink and adding the
/// bytes sent to `sent`. The bytes streamed out of `package` are hashed on the way: content
/// that does not match `digest` fails the push (never retried, [`Error::DigestMismatch`])
/// before the registry has received all of it.
#[allow(clippy::too_many_arguments)]
pub fn push_blob(
    client: &Client,
    package: &Path,
    digest: &Digest,
    size: u64,
    open: &dyn Fn() -> Result<BlobReader>,
    from: Option<&str>,
    tuning: &UploadTuning,
    sent: &AtomicU64,
) -> Result<BlobOutcome> {
    let mut failures = 0;
    let mut chunked = size > tuning.chunk_threshold;
    let verdict = Verdict::default();
    let progress = Progress::start(client.events(), digest, Some(size), sent);
    let open = || {
        progress.restart();
        open().map(|inner| {
            let len = inner.len();
            Verified::new(inner, len, *digest, &verdict)
        })
    };
    loop {
        let result = attempt(
            client, package, digest, size, &open, from, chunked, tuning, &progress,
        );
        // Whatever the registry answered (a broken-off request, or even success from one that
        // does not check): content that is not what its digest says is the package's fault.
        if let Some(actual) = verdict.mismatch() {
            return Err(Error::DigestMismatch {
                path: package.to_path_buf(),
                expected: *digest,
                actual,
            });
        }
        match result {
            Ok(Attempt::Done(o)) => return Ok(o),
            Ok(Attempt::TooLarge) if !chunked => {
                chunked = true;
            }
            Ok(Attempt::TooLarge) => {
                return Err(Error::other(format!(
                    "{}: the registry refuses blob {digest} ({size} bytes) as too large (413)",
                    client.registry
                )))
            }
            Err(f) if f.retryable && failures + 1 < client.retry.attempts => {
                failures += 1;
                client.note_retry(&format!("upload of {digest}"), failures, &f.error);
                crate::cancel::sleep(client.retry.delay(failures, &f))?;
            }
            Err(f) => return Err(f.error),
        }
    }
}

enum Attempt {
    Done(BlobOutcome),
    TooLarge,
}

#[allow(clippy::too_many_arguments)]
fn attempt(
    client: &Client,
    package: &Path,
    digest: &Digest,
    size: u64,
    open: &dyn Fn() -> Result<Verified<BlobReader>>,
    from: Option<&str>,
    chunked: bool,
    tuning: &UploadTuning,
    progress: &Progress<'_>,
) -> Result<Attempt, Failure> {
    // Start a session (or mount).
    let mut start = client.url("blobs/uploads/");
    if let Some(f) = from {
        start
            .query_pairs_mut()
            .append_pair("mount", &digest.to_string())
            .append_pair("from", f);
    }
    let resp = client.send_once(Method::POST, &start, &[], Body::Bytes(&[]))?;
    match resp.status {
        201 if from.is_some() => {
            check_digest(client, &resp, digest)?;
            return Ok(Attempt::Done(BlobOutcome::Mounted));
        }
        202 => {}
        _ => {
            return Err(Failure::from(client.status_error(
                &Method::POST,
                &start,
                &resp,
            )))
        }
    }
    let mut location = location(client, &start, &resp)?;
    let mut reader = open()?;
    if reader.len() != size {
        return Err(Failure::from(Error::SizeMismatch {
            path: package.to_path_buf(),
            digest: *digest,
            expected: size,
            actual: reader.len(),
        }));
    }
    if size == 0 {
        // No read ever completes an empty body: check it here.
        reader
            .check()
            .map_err(|_| Failure::from(Error::other(format!("blob {digest}: damaged"))))?;
    }
    if chunked {
        let min = resp
            .header("oci-chunk-min-length")
            .and_then(|v| v.trim().parse::<u64>().ok())
            .unwrap_or(0);
        let chunk = tuning.chunk_size.max(min).max(1);
        let mut offset = 0u64;
        while offset < size {
            let n = chunk.min(size - offset);
            let range = format!("{offset}-{}", offset + n - 1);
            let resp = {
                let mut body = Counting::new((&mut reader).take(n), progress);
                client.send_once(
                    Method::PATCH,
                    &location,
                    &[
                        ("Content-Type", "application/octet-stream"),
                        ("Content-Range", &range),
                    ],
                    Body::Stream(&mut body, n),
                )?
            };
            match resp.status {
                202 => {}
                413 => return Ok(Attempt::TooLarge),
                416 => {
                    return Err(Failure::transient(client.status_error(
                        &Method::PATCH,
                        &location,
                        &resp,
                    )))
                }
                _ => {
                    return Err(Failure::from(client.status_error(
                        &Method::PATCH,
                        &location,
                        &resp,
                    )))
                }
            }
            location = self::location(client, &location, &resp)?;
            let received = resp
                .header("range")
                .and_then(parse_range_end)
                .map(|end| end.saturating_add(1))
                .unwrap_or(offset + n);
            if received <= offset {
                // No progress: the registry kept nothing of this chunk. A new session may do
                // better; looping here would never end.
                return Err(Failure::transient(Error::other(format!(
                    "{}: the registry kept none of the chunk at offset {offset} of blob {digest}",
                    client.registry
                ))));
            }
            if received != offset + n {
                if received > size {
                    return Err(Failure::from(Error::other(format!(
                        "{}: the registry reports {received} bytes received for a {size}-byte blob",
                        client.registry
                    ))));
                }
                // The registry kept a different amount: continue from where it is.
                reader = open()?;
                io::copy(&mut (&mut reader).take(received), &mut io::sink())
                    .map_err(|e| Failure::from(Error::other(format!("blob {digest}: {e}"))))?;
            }
            offset = received;
        }
        let mut put = location.clone();
        put.query_pairs_mut()
            .append_pair("digest", &digest.to_string());
        let resp = client.send_once(Method::PUT, &put, &[], Body::Bytes(&[]))?;
        finish(client, &put, &resp, digest)
    } else {
        let mut put = location;
        put.query_pairs_mut()
            .append_pair("digest", &digest.to_string());
        let mut body = Counting::new(reader, progress);
        let resp = client.send_once(
            Method::PUT,
            &put,
            &[("Content-Type", "application/octet-stream")],
            Body::Stream(&mut body, size),
        )?;
        if resp.status == 413 {
            return Ok(Attempt::TooLarge);
        }
        finish(client, &put, &resp, digest)
    }
}

fn finish(client: &Client, url: &Url, resp: &Resp, digest: &Digest) -> Result<Attempt, Failure> {
    if resp.status != 201 {
        return Err(Failure::from(client.status_error(&Method::PUT, url, resp)));
    }
    check_digest(client, resp, digest)?;
    Ok(Attempt::Done(BlobOutcome::Uploaded))
}

/// `0-1023` → 1023 (also `bytes=0-1023`).
pub(crate) fn parse_range_end(v: &str) -> Option<u64> {
    let v = v.trim().trim_start_matches("bytes=");
    v.split_once('-')?.1.trim().parse().ok()
}

/// The upload session URL from a `Location` header, resolved against the request URL.
pub(crate) fn location(client: &Client, request: &Url, resp: &Resp) -> Result<Url, Failure> {
    let loc = resp.header("location").ok_or_else(|| {
        Failure::from(Error::other(format!(
            "{}: the registry answered {} to {} without a Location header",
            client.registry,
            resp.status,
            shown_path(request)
        )))
    })?;
    let bad = |why: String| {
        Failure::from(Error::other(format!(
            "{}: invalid upload location '{}': {why}",
            client.registry,
            crate::ui::sanitize(loc, 200)
        )))
    };
    let url = request.join(loc).map_err(|e| bad(e.to_string()))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(bad("not an http(s) URL".to_string()));
    }
    // A location on another host is allowed (registries hand uploads to storage hosts), but
    // `Client::raw` sends it no credentials.
    Ok(url)
}

/// PUT a manifest or index, as raw bytes, at a tag or digest.
pub fn put_manifest(
    client: &Client,
    reference: &str,
    bytes: &[u8],
    media_type: &str,
    digest: &Digest,
) -> Result<()> {
    let url = client.url(&format!("manifests/{reference}"));
    let resp = client.send(
        Method::PUT,
        &url,
        &[("Content-Type", media_type)],
        Some(bytes),
    )?;
    // The distribution spec answers a stored manifest with 201 Created; anything else
    // (a redirect above all) means the tag was not set.
    if resp.status != 201 {
        return Err(client.status_error(&Method::PUT, &url, &resp));
    }
    check_digest(client, &resp, digest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn range_header_forms() {
        assert_eq!(parse_range_end("0-1023"), Some(1023));
        assert_eq!(parse_range_end("bytes=0-9"), Some(9));
        assert_eq!(parse_range_end("junk"), None);
    }
}
