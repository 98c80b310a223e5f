//! Arbitrary text as `--target` values (split on newlines into several flags).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let values: Vec<String> = text.split('\n').take(64).map(str::to_string).collect();
    if let Ok((targets, _warnings)) = cnbpkg::target::parse_target_flags(&values) {
        for t in &targets {
            let _ = format!("{t:?}");
        }
    }
    let _ = cnbpkg::target::parse_target_flags(&[text.into_owned()]);
});
