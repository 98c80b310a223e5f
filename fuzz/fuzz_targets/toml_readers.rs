//! Arbitrary text as `buildpack.toml` and `package.toml`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok((d, _)) = cnbpkg::descriptor::parse_buildpack_toml(Path::new("buildpack.toml"), text) {
        let _ = format!("{d:?}");
    }
    if let Ok((p, _)) = cnbpkg::descriptor::parse_package_toml(Path::new("package.toml"), text) {
        let _ = format!("{p:?}");
    }
});
