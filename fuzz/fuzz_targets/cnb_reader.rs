//! Arbitrary bytes as a `.cnb` file: open, list images, verify. Errors are fine; panics, hangs
//! and unbounded allocations are not.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::io::Write;

fuzz_target!(|data: &[u8]| {
    let mut file = tempfile::Builder::new()
        .suffix(".cnb")
        .tempfile()
        .expect("temp file");
    file.write_all(data).expect("write input");
    file.flush().expect("flush");
    let path = file.path();
    if let Ok(reader) = cnbpkg::layout::PackageReader::open(path) {
        let _ = reader.images();
        let _ = reader.files();
    }
    let _ = cnbpkg::verify::verify(path);
});
