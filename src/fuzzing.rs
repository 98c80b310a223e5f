//! Entry points for the fuzz targets in `fuzz/` and their regression tests
//! (`tests/hostile_fuzz_regressions.rs`): thin wrappers that feed bytes to the internal readers
//! and parsers of hostile input, the same functions the commands use. Not a stable API.

use std::io;
use std::path::Path;
use std::sync::OnceLock;
use std::time::Duration;

use crate::digest::Digest;
use crate::layer::{LayerBuilder, LayerFormat};
use crate::oci::{self, Descriptor, LayerEncoding};
use crate::reference::Reference;
use crate::registry::auth::{self, Challenge, Found};
use crate::registry::client::{
    self, Access, Client, Connection, Deadlines, Resp, RetryPolicy, Transport,
};
use crate::registry::upload;

/// The module directories a fuzzed dependency layer may fill (the seeds' buildpack, Linux
/// and Windows).
pub const ALLOWED_MODULE_DIRS: &[&str] = &[
    "cnb/buildpacks/fuzz/1.0.0",
    "Files/cnb/buildpacks/fuzz/1.0.0",
];

/// A layer blob read the way `verify` and `inspect` read layers (digest, decompression to the
/// end, diffID, entry placement, module descriptors): the facts found, for display.
pub fn read_layer(blob: &[u8], encoding: LayerEncoding) -> io::Result<String> {
    let (digest, facts, n) = crate::layout::layers::read_layer_stream(blob, encoding)?;
    Ok(format!("{digest} {n} {facts:?}"))
}

/// A dependency's layer blob read the way a composite takes it: checked and copied into a new
/// layer (`flatten`, [`LayerBuilder::add_layer_entries`]) or only checked
/// (`crate::layer::check_module_layer`), then its digest and diffID compared. The blob's
/// digest and size are its own; `diff_id` is what the dependency's config would claim.
pub fn import_layer(
    blob: &[u8],
    encoding: LayerEncoding,
    diff_id: Digest,
    flatten: bool,
) -> crate::error::Result<u64> {
    let media_type = match encoding {
        LayerEncoding::Tar => oci::MEDIA_TYPE_LAYER_TAR,
        LayerEncoding::Gzip => oci::MEDIA_TYPE_LAYER_GZIP,
        LayerEncoding::Zstd => oci::MEDIA_TYPE_LAYER_ZSTD,
    };
    let descriptor = Descriptor {
        media_type: media_type.to_string(),
        digest: Digest::of(blob),
        size: blob.len() as u64,
        platform: None,
        annotations: Default::default(),
        artifact_type: None,
        urls: Vec::new(),
    };
    let origin = Path::new("dependency.cnb");
    // Each allowed directory holds module fuzz@1.0.0, as a dependency's label would say.
    let allowed: crate::layer::ModuleDirs = ALLOWED_MODULE_DIRS
        .iter()
        .map(|d| (d.to_string(), ("fuzz".to_string(), "1.0.0".to_string())))
        .collect();
    let (_, size) = crate::image::read_layer_blob(blob, &descriptor, diff_id, origin, |tar| {
        if flatten {
            let mut builder = LayerBuilder::new(io::sink(), LayerFormat::Linux);
            builder.add_layer_entries(tar, origin, &allowed)?;
            builder.finish().map(|_| ())
        } else {
            crate::layer::check_module_layer(tar, &allowed)
                .map_err(|m| crate::error::Error::invalid(origin, m))
        }
    })?;
    Ok(size)
}

/// A `.tgz` or `.tar` buildpack archive extracted the way `package` extracts one, into a
/// temporary directory that is removed afterwards. Returns the number of entries written.
pub fn extract_archive(bytes: &[u8]) -> crate::error::Result<usize> {
    let dir = tempfile::tempdir().map_err(|e| crate::error::Error::other(e.to_string()))?;
    let archive = dir.path().join("buildpack.tgz");
    std::fs::write(&archive, bytes).map_err(|e| crate::error::Error::io(&archive, e))?;
    let dest = dir.path().join("out");
    crate::source::extract_archive(&archive, &dest)?;
    let walked = crate::source::walk(&dest, &[])?;
    Ok(walked.len())
}

/// `WWW-Authenticate` challenges as `push` reads them.
pub fn parse_challenges(header: &str) -> Vec<Challenge> {
    auth::parse_challenges(header)
}

/// A token server's answer: the token and how long it is kept.
pub fn parse_token_response(body: &[u8]) -> Result<(String, Duration), &'static str> {
    client::parse_token_response(body)
}

/// Credentials for `registry` from a Docker `config.json` / podman `auth.json` text, read as
/// `push` reads those files, except that credential helpers (programs the file names) are not
/// run.
pub fn lookup_credentials(config: &[u8], registry: &str) -> crate::error::Result<Option<Found>> {
    let path = Path::new("config.json");
    let mut cfg: auth::ConfigFile = serde_json::from_slice(config).map_err(|e| {
        crate::error::Error::invalid(
            path,
            format!(
                "not a valid credentials file: {}",
                auth::json_error_position(&e)
            ),
        )
    })?;
    cfg.cred_helpers.clear();
    cfg.creds_store = None;
    auth::lookup_in(&cfg, path, registry)
}

/// `Retry-After` as a wait.
pub fn parse_retry_after(value: &str) -> Option<Duration> {
    client::parse_retry_after(value)
}

/// The end offset an upload's `Range` header reports.
pub fn parse_range_end(value: &str) -> Option<u64> {
    upload::parse_range_end(value)
}

/// A client for `localhost:5000` that never connects (nothing is sent by the wrappers).
fn offline_client() -> &'static Client<'static> {
    static CLIENT: OnceLock<Client<'static>> = OnceLock::new();
    CLIENT.get_or_init(|| {
        let reference = Reference::parse("localhost:5000/fuzz").expect("a valid reference");
        Client::new(
            &reference,
            Access::Push { mount_from: None },
            None,
            &Connection {
                transport: &Transport {
                    insecure: true,
                    ca_cert: None,
                    certs_d: Some(Vec::new()),
                },
                retry: RetryPolicy {
                    attempts: 1,
                    initial_backoff: Duration::ZERO,
                    max_backoff: Duration::ZERO,
                },
                deadlines: Deadlines::default(),
            },
            &crate::events::NoEvents,
        )
        .expect("an offline client")
    })
}

/// A response as the client hands it on; a header value HTTP cannot carry is left out.
fn response(status: u16, header: (&'static str, &[u8]), body: &[u8]) -> Resp {
    let mut headers = ureq::http::HeaderMap::new();
    if let Ok(v) = ureq::http::HeaderValue::from_bytes(header.1) {
        headers.insert(header.0, v);
    }
    Resp {
        status,
        headers,
        body: body.to_vec(),
        from_registry: true,
    }
}

/// An upload `Location` header resolved against the upload request, as a push follows it.
pub fn upload_location(location: &[u8]) -> crate::error::Result<String> {
    let client = offline_client();
    let request = client.url("v2/fuzz/blobs/uploads/");
    let resp = response(202, ("location", location), b"");
    upload::location(client, &request, &resp)
        .map(|u| u.to_string())
        .map_err(|f| f.error)
}

/// A `Docker-Content-Digest` header checked against the digest of `content`.
pub fn check_content_digest(header: &[u8], content: &[u8]) -> crate::error::Result<()> {
    let resp = response(201, ("docker-content-digest", header), b"");
    crate::registry::read::check_digest(offline_client(), &resp, &Digest::of(content))
}

/// An error response as a message line (status and the registry's first error).
pub fn describe_status(status: u16, body: &[u8]) -> String {
    client::describe_status(&response(
        status,
        ("content-type", b"application/json"),
        body,
    ))
}

/// An image reference as `push` parses its destination, with the hosts it derives.
pub fn parse_reference(input: &str) -> crate::error::Result<String> {
    let r = Reference::parse(input)?;
    Ok(format!(
        "{r} {} {} {}",
        r.api_host(),
        r.hostname(),
        crate::reference::is_loopback(&r.registry)
    ))
}

/// A manifest or index document as `push` loads it: its declared or sniffed media type, then
/// the document of that type.
pub fn load_manifest(bytes: &[u8]) -> Option<String> {
    let media_type = crate::registry::sniff_media_type(bytes)?;
    let parsed = if oci::is_index(&media_type) {
        serde_json::from_slice::<oci::Index>(bytes).map(|i| format!("{i:?}"))
    } else if oci::is_manifest(&media_type) {
        serde_json::from_slice::<oci::Manifest>(bytes).map(|m| format!("{m:?}"))
    } else {
        return None;
    };
    Some(format!("{media_type} {}", parsed.ok()?))
}

/// An image config as `push` reads one for a manifest's platform.
pub fn load_image_config(bytes: &[u8]) -> Option<String> {
    serde_json::from_slice::<oci::ImageConfig>(bytes)
        .ok()
        .filter(|c| !c.os.is_empty())
        .map(|c| format!("{c:?}"))
}
