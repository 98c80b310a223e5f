//! Arbitrary bytes as what a registry, a token server or a credentials file sends: every
//! parser of such input gets the whole input (header parsers its first line, as a header
//! value cannot hold a newline). Errors are fine; panics, hangs and unbounded allocations are
//! not.
#![no_main]

use cnbpkg::fuzzing;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let line = data.split(|b| *b == b'\n').next().unwrap_or(b"");
    let line_text = String::from_utf8_lossy(line);

    let _ = format!("{:?}", fuzzing::parse_challenges(&text));
    let _ = fuzzing::parse_token_response(data);
    for registry in ["docker.io", "ghcr.io", "localhost:5000"] {
        let _ = fuzzing::lookup_credentials(data, registry).map(|f| format!("{f:?}"));
    }
    let _ = fuzzing::parse_retry_after(&line_text);
    let _ = fuzzing::parse_range_end(&line_text);
    let _ = fuzzing::upload_location(line);
    let _ = fuzzing::check_content_digest(line, data);
    let _ = fuzzing::describe_status(404, data);
    let _ = fuzzing::parse_reference(&line_text);
    let _ = fuzzing::load_manifest(data);
    let _ = fuzzing::load_image_config(data);
});
