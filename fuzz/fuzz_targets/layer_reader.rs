//! Arbitrary bytes as a layer blob (tar, or gzip/zstd by their magic bytes), read every way
//! cnbpkg reads layers: as `verify`/`inspect` do, as a composite imports a dependency's layer
//! (checked only, and flattened into a new layer), and as `package` extracts a `.tgz`/`.tar`
//! buildpack. Errors are fine; panics, hangs and unbounded allocations are not.
#![no_main]

use cnbpkg::digest::Digest;
use cnbpkg::fuzzing;
use cnbpkg::oci::LayerEncoding;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let encoding = if data.starts_with(&[0x1f, 0x8b]) {
        LayerEncoding::Gzip
    } else if data.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        LayerEncoding::Zstd
    } else {
        LayerEncoding::Tar
    };
    let _ = fuzzing::read_layer(data, encoding);
    let diff_id = Digest::of(b"");
    let _ = fuzzing::import_layer(data, encoding, diff_id, false);
    let _ = fuzzing::import_layer(data, encoding, diff_id, true);
    if encoding != LayerEncoding::Zstd {
        let _ = fuzzing::extract_archive(data);
    }
});
