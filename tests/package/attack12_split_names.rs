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

/// A verified layout listing two Windows images that differ only by `os.version` (no distro
/// annotations, as a tool that drops them would write): the index cnbpkg writes, flattened.
fn windows_by_os_version_only(dir: &Path) -> std::path::PathBuf {
    let bp = dir.join("bp");
    minimal_buildpack(&bp, "examples/win", "0.1.0", "");
    for name in ["build", "detect"] {
        fs::remove_file(bp.join("bin").join(name)).unwrap();
        write_file(&bp.join(format!("bin/{name}.bat")), "@echo off\r\n", 0o755);
    }
    let out = dir.join("win");
    ok(cnbpkg([
        "buildpack",
        "package",
        out.to_str().unwrap(),
        "--format",
        "layout",
        "--path",
        bp.to_str().unwrap(),
        "--target",
        "windows/amd64:windows@10.0.17763",
        "--target",
        "windows/amd64:windows@10.0.20348",
    ]));
    let top_path = out.join("index.json");
    let mut top: serde_json::Value = serde_json::from_slice(&fs::read(&top_path).unwrap()).unwrap();
    let nested = top["manifests"][0]["digest"].as_str().unwrap().to_string();
    let nested_path = out
        .join("blobs/sha256")
        .join(nested.trim_start_matches("sha256:"));
    let mut inner: serde_json::Value =
        serde_json::from_slice(&fs::read(&nested_path).unwrap()).unwrap();
    for m in inner["manifests"].as_array_mut().unwrap() {
        m.as_object_mut().unwrap().remove("annotations");
    }
    top["manifests"] = inner["manifests"].clone();
    fs::write(&top_path, serde_json::to_vec(&top).unwrap()).unwrap();
    fs::remove_file(&nested_path).unwrap();
    ok(cnbpkg(["verify", out.to_str().unwrap()]));
    out
}

#[test]
fn split_refuses_images_one_name_cannot_tell_apart_naming_the_package() {
    let d = tempfile::tempdir().unwrap();
    let pkg = windows_by_os_version_only(d.path());
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
        e.contains(&format!("error: {}:", pkg.display()))
            && e.contains("os.version 10.0.17763")
            && e.contains("os.version 10.0.20348")
            && e.contains("nothing was written"),
        "{e}"
    );
    assert!(list(&outdir).is_empty());
    // merge keeps the two images apart (their os.version differs), as the package holds them.
    let merged = d.path().join("merged.cnb");
    ok(cnbpkg([
        "merge",
        merged.to_str().unwrap(),
        pkg.to_str().unwrap(),
    ]));
}

/// An index entry may claim any number of distros (`io.buildpacks.base.distros`): split would
/// write one package, layers and all, per distro. It writes at most what `package --split`
/// writes at once.
#[test]
fn split_writes_at_most_the_packages_package_split_writes_at_once() {
    let d = tempfile::tempdir().unwrap();
    let pkg = package_with_distro(d.path(), "ubuntu", "1");
    let index_path = pkg.join("index.json");
    let mut index: serde_json::Value =
        serde_json::from_slice(&fs::read(&index_path).unwrap()).unwrap();
    let many: Vec<String> = (0..1025).map(|i| format!("d{i}@1")).collect();
    index["manifests"][0]["annotations"] =
        serde_json::json!({ "io.buildpacks.base.distros": many.join(";") });
    fs::write(&index_path, serde_json::to_vec(&index).unwrap()).unwrap();
    ok(cnbpkg(["verify", pkg.to_str().unwrap()]));
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
        e.contains(&pkg.display().to_string()) && e.contains("1025") && e.contains("1024"),
        "{e}"
    );
    assert!(list(&outdir).is_empty(), "nothing written");
    // merge lists no more platforms than package writes at once either.
    let merged = outdir.join("merged.cnb");
    let e = fails(
        cnbpkg(["merge", merged.to_str().unwrap(), pkg.to_str().unwrap()]),
        1,
    );
    assert!(
        e.contains(&pkg.display().to_string()) && e.contains("1024"),
        "{e}"
    );
    assert!(list(&outdir).is_empty(), "nothing written");
}
