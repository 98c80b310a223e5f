//! Composites over per-architecture dependency packages: several single-platform packages of
//! one buildpack act as one multi-platform dependency, each image taking its own
//! architecture's layer; packages of one buildpack that hold different images for one platform
//! are refused, naming both files.

use std::fs;
use std::path::Path;

use crate::support::*;
use cnbpkg::layout::PackageReader;

fn package_hello(dir: &Path, out: &str, targets: &str, extra: &[&str]) {
    let mut args = vec![
        "buildpack".to_string(),
        "package".into(),
        out.into(),
        "--path".into(),
        sample("hello-multi").display().to_string(),
        "--target".into(),
        targets.into(),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    ok(cnbpkg_in(dir, args));
}

/// A composite `ex/meta` over hello-multi, with these dependencies, for amd64 and arm64.
fn composite(dir: &Path, deps: &[&str]) {
    write_file(
        &dir.join("meta/buildpack.toml"),
        "api = \"0.10\"\n\n[buildpack]\nid = \"ex/meta\"\nversion = \"1.0.0\"\n\n[[order]]\n[[order.group]]\nid = \"examples/hello-multi\"\nversion = \"0.1.0\"\n",
        0o644,
    );
    let mut toml = "[buildpack]\nuri = \"meta\"\n\n".to_string();
    for d in deps {
        toml.push_str(&format!("[[dependencies]]\nuri = \"{d}\"\n\n"));
    }
    toml.push_str("[[targets]]\nos = \"linux\"\narch = \"amd64\"\n\n[[targets]]\nos = \"linux\"\narch = \"arm64\"\n");
    fs::write(dir.join("package.toml"), toml).unwrap();
}

#[test]
fn per_arch_dependency_packages_act_as_one_multi_platform_dependency() {
    require("skopeo", "skopeo");
    require("umoci", "umoci");
    let d = tempfile::tempdir().unwrap();
    let p = d.path();
    package_hello(p, "amd.cnb", "linux/amd64", &[]);
    package_hello(p, "arm", "linux/arm64", &["--format", "layout"]);
    composite(p, &["amd.cnb", "arm"]);
    ok(cnbpkg_in(
        p,
        [
            "buildpack",
            "package",
            "meta.cnb",
            "--config",
            "package.toml",
        ],
    ));
    let out = p.join("meta.cnb");
    ok(cnbpkg([
        "verify",
        out.to_str().unwrap(),
        "--expect-platform",
        "linux/amd64,linux/arm64",
    ]));
    let images = PackageReader::open(&out).unwrap().images().unwrap();
    assert_eq!(images.len(), 2);
    for (image, dep) in images.iter().zip(["amd.cnb", "arm"]) {
        let source = &PackageReader::open(&p.join(dep)).unwrap().images().unwrap()[0];
        assert_eq!(image.platform(), source.platform());
        assert!(
            image
                .config
                .rootfs
                .diff_ids
                .contains(&source.config.rootfs.diff_ids[0]),
            "the {dep} layer in the {} image",
            image.platform()
        );
    }
    for arch in ["amd64", "arm64"] {
        let work = p.join(format!("work-{arch}"));
        fs::create_dir(&work).unwrap();
        let rootfs = unpack_with_umoci(
            &out,
            &work,
            &["--override-os", "linux", "--override-arch", arch],
        );
        let build =
            fs::read_to_string(rootfs.join("cnb/buildpacks/examples_hello-multi/0.1.0/bin/build"))
                .unwrap();
        assert!(build.contains(&format!("the {arch} build")), "{build}");
    }

    // The same image twice (a package and the multi-platform one it is part of) is no clash.
    package_hello(p, "both.cnb", "linux/amd64,linux/arm64", &[]);
    composite(p, &["amd.cnb", "both.cnb"]);
    ok(cnbpkg_in(
        p,
        [
            "buildpack",
            "package",
            "again.cnb",
            "--config",
            "package.toml",
        ],
    ));
}

#[test]
fn packages_of_one_buildpack_with_one_platform_twice_are_refused() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path();
    package_hello(p, "amd.cnb", "linux/amd64", &[]);
    package_hello(p, "amd-zstd.cnb", "linux/amd64", &["--compression", "zstd"]);
    package_hello(p, "arm.cnb", "linux/arm64", &[]);
    composite(p, &["amd.cnb", "arm.cnb", "amd-zstd.cnb"]);
    let e = fails(
        cnbpkg_in(
            p,
            [
                "buildpack",
                "package",
                "meta.cnb",
                "--config",
                "package.toml",
            ],
        ),
        1,
    );
    assert!(
        e.contains("amd.cnb") && e.contains("amd-zstd.cnb") && e.contains("linux/amd64"),
        "{e}"
    );
    assert!(!p.join("meta.cnb").exists());

    // A target none of them serves names them all.
    composite(p, &["amd.cnb", "arm.cnb"]);
    let e = fails(
        cnbpkg_in(
            p,
            [
                "buildpack",
                "package",
                "meta.cnb",
                "--config",
                "package.toml",
                "-t",
                "linux/s390x",
            ],
        ),
        1,
    );
    assert!(
        e.contains("amd.cnb") && e.contains("arm.cnb") && e.contains("linux/s390x"),
        "{e}"
    );
}
