//! `--json` reports of packages at paths that are not UTF-8 (any byte but `/` and NUL names a
//! file on Linux): the report is printed with the path as the terminal shows it, no panic.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;

use crate::support::*;

#[test]
fn json_reports_of_non_utf8_paths_print_without_panicking() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    let amd = dir.join(OsStr::from_bytes(b"amd\xff.cnb"));
    let packaged = ok(cnbpkg([
        OsStr::new("buildpack"),
        OsStr::new("package"),
        amd.as_os_str(),
        OsStr::new("--path"),
        sample("hello-multi").as_os_str(),
        OsStr::new("-t"),
        OsStr::new("linux/amd64"),
        OsStr::new("--json"),
    ]));
    let merged = dir.join(OsStr::from_bytes(b"merged\xfe.cnb"));
    let merge_json = ok(cnbpkg([
        OsStr::new("merge"),
        OsStr::new("--json"),
        merged.as_os_str(),
        amd.as_os_str(),
    ]));
    let inspected = ok(cnbpkg([
        OsStr::new("inspect"),
        OsStr::new("--json"),
        merged.as_os_str(),
    ]));
    for json in [&packaged, &merge_json, &inspected] {
        let v: serde_json::Value = serde_json::from_str(json).unwrap();
        assert!(json.contains('\u{fffd}'), "the path as displayed: {v}");
    }
}
