//! Data after the last gzip member of a buildpack archive is named as such, not as a
//! truncation.

use std::fs;
use std::path::Path;

use crate::support::*;

fn tgz_of(bp: &Path, out: &Path) {
    tool_ok(
        "tar",
        &[
            "-C",
            bp.to_str().unwrap(),
            "-czf",
            out.to_str().unwrap(),
            ".",
        ],
    );
}

fn package(work: &Path, tgz: &Path) -> std::process::Output {
    cnbpkg([
        "buildpack".as_ref(),
        "package".as_ref(),
        work.join("out.cnb").as_os_str(),
        "--path".as_ref(),
        tgz.as_os_str(),
        "-q".as_ref(),
    ])
}

#[test]
fn trailing_data_after_a_gzip_archive_is_named() {
    let tmp = tempfile::tempdir().unwrap();
    let work = tmp.path();
    let bp = work.join("bp");
    minimal_buildpack(&bp, "acme/gz", "1.0.0", "");
    let tgz = work.join("bp.tgz");
    tgz_of(&bp, &tgz);
    let sound = fs::read(&tgz).unwrap();
    ok(package(work, &tgz));

    for (name, junk) in [
        ("text", b"junk".as_slice()),
        ("zeros", &[0u8; 8]),
        (
            "binary",
            &[0x42u8, 0x5a, 0x68, 0x39, 0x31, 0x41, 0x59, 0x26, 0x53],
        ),
    ] {
        let bad = work.join(format!("{name}.tgz"));
        fs::write(&bad, [sound.as_slice(), junk].concat()).unwrap();
        let err = fails(package(work, &bad), 1);
        assert!(err.contains(&format!("{name}.tgz")), "{err}");
        assert!(
            err.contains("trailing data after the gzip stream"),
            "{name}: {err}"
        );
        assert!(!err.contains("unexpected end of file"), "{name}: {err}");
    }

    // Several members (parallel gzip writers make those) still read as one stream.
    let two = work.join("two.tgz");
    fs::write(&two, [sound.as_slice(), &sound].concat()).unwrap();
    ok(package(work, &two));
}
