//! Inputs a careless user gives `merge` and `split`: a path that is not there is that, in one
//! line, not a package "failing verification".

use crate::support::*;

#[test]
fn missing_input_is_named_as_missing_not_as_failing_verification() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    let amd = dir.join("amd.cnb");
    ok(cnbpkg([
        "buildpack",
        "package",
        amd.to_str().unwrap(),
        "--path",
        sample("hello-multi").to_str().unwrap(),
        "-t",
        "linux/amd64",
    ]));
    let missing = dir.join("arm.cnb");
    let out = dir.join("merged.cnb");
    for args in [
        vec![
            "merge",
            out.to_str().unwrap(),
            amd.to_str().unwrap(),
            missing.to_str().unwrap(),
        ],
        vec!["split", missing.to_str().unwrap()],
    ] {
        let e = fails(cnbpkg(&args), 1);
        let line = e.lines().find(|l| l.starts_with("error:")).unwrap();
        assert_eq!(
            line,
            format!("error: {}: no such file or directory", missing.display()),
            "{e}"
        );
        assert_eq!(list(dir), ["amd.cnb"]);
    }
}
