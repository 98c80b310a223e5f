//! `split` names its outputs after platform values a hostile package author wrote in the
//! index: values `--target` and buildpack.toml refuse (control characters, path separators)
//! must not become file names on the user's disk or break the one-path-a-line output.

use std::fs;
use std::path::Path;

use crate::support::*;

/// A layout package of one image whose index entry names the distro `name@version`.
fn package_with_distro(dir: &Path, name: &str, version: &str) -> std::path::PathBuf {
    let out = dir.join("pkg");
    ok(cnbpkg([
        "buildpack",
        "package",
        out.to_str().unwrap(),
        "--format",
        "layout",
        "--path",
        sample("hello-multi").to_str().unwrap(),
        "--target",
        "linux/amd64",
    ]));
    let index_path = out.join("index.json");
    let mut index: serde_json::Value =
        serde_json::from_slice(&fs::read(&index_path).unwrap()).unwrap();
    index["manifests"][0]["annotations"] = serde_json::json!({
        "io.buildpacks.base.distro.name": name,
        "io.buildpacks.base.distro.version": version,
    });
    fs::write(&index_path, serde_json::to_vec(&index).unwrap()).unwrap();
    ok(cnbpkg(["verify", out.to_str().unwrap()]));
    out
}

#[test]
fn split_refuses_platform_values_no_target_could_name() {
    for (name, version) in [("evil\u{1b}[31m\nline", "1"), ("ubuntu", "1/../../x")] {
        let d = tempfile::tempdir().unwrap();
        let pkg = package_with_distro(d.path(), name, version);
        let outdir = d.path().join("out");
        fs::create_dir(&outdir).unwrap();
        let e = fails(
            cnbpkg([
                "split",
                pkg.to_str().unwrap(),
                "--output-dir",
                outdir.to_str().unwrap(),
            ]),
            1,
        );
        assert!(
            e.contains(&pkg.display().to_string()) && e.contains("is not a valid value"),
            "{e}"
        );
        assert!(!e.contains('\u{1b}'), "hostile text escaped: {e:?}");
        let errors: Vec<&str> = e.lines().filter(|l| l.starts_with("error:")).collect();
        assert_eq!(errors.len(), 1, "one error line: {e:?}");
        assert!(errors[0].contains("nothing was written"), "{e}");
        assert!(
            list(&outdir).is_empty(),
            "nothing written: {:?}",
            list(&outdir)
        );
        assert_eq!(list(d.path()), ["out", "pkg"]);
    }
}
