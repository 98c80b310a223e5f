//! `split --output-dir` that is a file or missing fails as `package --split` does with an
//! output in such a place: exit 1, the path and the system's reason, nothing written.

use std::fs;

use crate::support::*;

#[test]
fn split_output_dir_that_is_a_file_or_missing_fails_as_package_split_does() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    let multi = sample("hello-multi");
    let pkg = dir.join("pkg.cnb");
    ok(cnbpkg([
        "buildpack",
        "package",
        pkg.to_str().unwrap(),
        "--path",
        multi.to_str().unwrap(),
        "-t",
        "linux/amd64",
        "-t",
        "linux/arm64",
    ]));
    let file = dir.join("a-file");
    fs::write(&file, "precious").unwrap();
    let missing = dir.join("missing");
    for (place, reason) in [
        (&file, "not a directory"),
        (&missing, "no such file or directory"),
    ] {
        let before = list(dir);
        let e = fails(
            cnbpkg([
                "split",
                pkg.to_str().unwrap(),
                "--output-dir",
                place.to_str().unwrap(),
            ]),
            1,
        );
        assert!(
            e.contains(&format!("error: {}: {reason}", place.display())),
            "{e}"
        );
        // package --split with an output there says the same (with its own output's name).
        let out = place.join("x.cnb");
        let p = fails(
            cnbpkg([
                "buildpack",
                "package",
                out.to_str().unwrap(),
                "--path",
                multi.to_str().unwrap(),
                "--split",
            ]),
            1,
        );
        assert!(p.contains(reason), "{p}");
        assert_eq!(list(dir), before);
    }
    assert_eq!(fs::read_to_string(&file).unwrap(), "precious");
}
