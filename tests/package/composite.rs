//! Composite buildpacks: directory, archive, `.cnb` and layout dependencies, single- and
//! multi-platform, checked with skopeo and umoci.

use std::fs;
use std::path::Path;

use crate::support::*;
use cnbpkg::layout::PackageReader;

fn meta_buildpack(dir: &Path, id: &str, refs: &[(&str, &str)]) {
    let mut toml = format!(
        "api = \"0.10\"\n\n[buildpack]\nid = \"{id}\"\nversion = \"1.0.0\"\nname = \"Meta\"\n"
    );
    toml.push_str("\n[[order]]\n");
    for (rid, rver) in refs {
        toml.push_str(&format!(
            "[[order.group]]\nid = \"{rid}\"\nversion = \"{rver}\"\n\n"
        ));
    }
    write_file(&dir.join("buildpack.toml"), &toml, 0o644);
}

fn package_toml(dir: &Path, uri: &str, deps: &[&str], targets: &str) {
    let mut s = format!("[buildpack]\nuri = \"{uri}\"\n\n");
    for d in deps {
        s.push_str(&format!("[[dependencies]]\nuri = \"{d}\"\n\n"));
    }
    s.push_str(targets);
    fs::write(dir.join("package.toml"), s).unwrap();
}

fn label_ids(img: &cnbpkg::layout::ImageRef) -> Vec<String> {
    let label = cnbpkg::descriptor::LayersLabel::parse(
        &img.config.labels()["io.buildpacks.buildpack.layers"],
    )
    .unwrap();
    label
        .0
        .iter()
        .flat_map(|(id, v)| v.keys().map(move |ver| format!("{id}@{ver}")))
        .collect()
}

#[test]
fn samples_style_composite_of_directories() {
    let d = tempfile::tempdir().unwrap();
    minimal_buildpack(
        &d.path().join("hello-world"),
        "samples/hello-world",
        "0.0.1",
        "",
    );
    minimal_buildpack(
        &d.path().join("hello-moon"),
        "samples/hello-moon",
        "0.0.1",
        "",
    );
    meta_buildpack(
        &d.path().join("meta"),
        "samples/hello-universe",
        &[
            ("samples/hello-world", "0.0.1"),
            ("samples/hello-moon", "0.0.1"),
        ],
    );
    // Dependencies as a directory and as a .tgz, relative to package.toml.
    let st = std::process::Command::new("tar")
        .args(["-czf", "hello-moon.tgz", "-C", "hello-moon", "."])
        .current_dir(d.path())
        .status()
        .unwrap();
    assert!(st.success());
    package_toml(d.path(), "meta", &["hello-world", "hello-moon.tgz"], "");
    ok(cnbpkg_in(
        d.path(),
        [
            "buildpack",
            "package",
            "universe.cnb",
            "--config",
            "package.toml",
        ],
    ));
    let out = d.path().join("universe.cnb");
    let r = PackageReader::open(&out).unwrap();
    let img = &r.images().unwrap()[0];
    assert_eq!(
        label_ids(img),
        [
            "samples/hello-moon@0.0.1",
            "samples/hello-universe@1.0.0",
            "samples/hello-world@0.0.1"
        ]
    );
    assert_eq!(img.manifest.layers.len(), 3);
    assert!(img.config.labels()["io.buildpacks.buildpackage.metadata"]
        .starts_with("{\"id\":\"samples/hello-universe\""));

    let rootfs = unpack_with_umoci(&out, d.path(), &[]);
    for bp in [
        "samples_hello-world/0.0.1/bin/build",
        "samples_hello-moon/0.0.1/bin/detect",
        "samples_hello-universe/1.0.0/buildpack.toml",
    ] {
        assert!(rootfs.join("cnb/buildpacks").join(bp).exists(), "{bp}");
    }
    ok(cnbpkg(["verify", out.to_str().unwrap()]));
}

#[test]
fn composite_validation_messages() {
    let d = tempfile::tempdir().unwrap();
    minimal_buildpack(&d.path().join("a"), "a", "1", "");
    minimal_buildpack(&d.path().join("b"), "b", "1", "");
    meta_buildpack(&d.path().join("meta"), "meta", &[("a", "1")]);
    package_toml(d.path(), "meta", &["a", "b"], "");
    let err = fails(
        cnbpkg_in(
            d.path(),
            ["buildpack", "package", "x.cnb", "--config", "package.toml"],
        ),
        1,
    );
    assert!(err.contains("is not used by buildpack"), "{err}");
    meta_buildpack(&d.path().join("meta"), "meta", &[("a", "1"), ("c", "1")]);
    package_toml(d.path(), "meta", &["a"], "");
    let err = fails(
        cnbpkg_in(
            d.path(),
            ["buildpack", "package", "x.cnb", "--config", "package.toml"],
        ),
        1,
    );
    assert!(err.contains("which is not present"), "{err}");
    assert!(!d.path().join("x.cnb").exists());
}

#[test]
fn pack_fixtures_work_as_dependencies_and_keep_their_diff_ids() {
    for fixture in ["hello-universe.cnb", "hello-universe-oci.cnb"] {
        let d = tempfile::tempdir().unwrap();
        fs::copy(
            repo().join("testdata/fixtures/pack").join(fixture),
            d.path().join(fixture),
        )
        .unwrap();
        let dep = PackageReader::open(&d.path().join(fixture)).unwrap();
        let dep_img = &dep.images().unwrap()[0];
        meta_buildpack(
            &d.path().join("meta"),
            "examples/wrapper",
            &[("io.buildpacks.samples.hello-universe", "0.0.1")],
        );
        package_toml(d.path(), "meta", &[fixture], "");
        for compression in ["gzip", "zstd"] {
            let out = format!("wrapped-{compression}.cnb");
            ok(cnbpkg_in(
                d.path(),
                [
                    "buildpack",
                    "package",
                    &out,
                    "--config",
                    "package.toml",
                    "--compression",
                    compression,
                ],
            ));
            let r = PackageReader::open(&d.path().join(&out)).unwrap();
            let img = &r.images().unwrap()[0];
            for (i, diff_id) in dep_img.config.rootfs.diff_ids.iter().enumerate() {
                let pos = img
                    .config
                    .rootfs
                    .diff_ids
                    .iter()
                    .position(|d| d == diff_id)
                    .unwrap_or_else(|| panic!("{fixture}: lost {diff_id}"));
                if compression == "gzip" {
                    // Same compression: the blob is copied, not recompressed.
                    assert_eq!(
                        img.manifest.layers[pos].digest,
                        dep_img.manifest.layers[i].digest
                    );
                    assert_eq!(
                        img.manifest.layers[pos].media_type,
                        cnbpkg::oci::MEDIA_TYPE_LAYER_GZIP
                    );
                }
            }
            assert_eq!(label_ids(img).len(), 4, "{fixture}");
            ok(cnbpkg(["verify", d.path().join(&out).to_str().unwrap()]));
        }
    }
}

/// A multi-platform bash buildpack whose files differ per architecture.
fn arch_buildpack(dir: &Path, id: &str, arches: &[&str]) {
    let mut toml = format!("api = \"0.10\"\n\n[buildpack]\nid = \"{id}\"\nversion = \"1.0.0\"\n");
    for a in arches {
        let (arch, variant) = a.split_once('/').unwrap_or((a, ""));
        toml.push_str(&format!(
            "\n[[targets]]\nos = \"linux\"\narch = \"{arch}\"\n"
        ));
        if !variant.is_empty() {
            toml.push_str(&format!("variant = \"{variant}\"\n"));
        }
        write_file(
            &dir.join("linux").join(a).join("bin/build"),
            &format!("#!/bin/sh\necho {id} {a}\n"),
            0o755,
        );
        write_file(
            &dir.join("linux").join(a).join("bin/detect"),
            "#!/bin/sh\n",
            0o755,
        );
    }
    write_file(&dir.join("buildpack.toml"), &toml, 0o644);
}

#[test]
fn multi_platform_composite_over_multi_platform_cnb_dependencies() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path();
    arch_buildpack(&p.join("one"), "ex/one", &["amd64", "arm64", "arm/v7"]);
    arch_buildpack(&p.join("two"), "ex/two", &["amd64", "arm/v7"]);
    ok(cnbpkg_in(
        p,
        ["buildpack", "package", "one.cnb", "--path", "one"],
    ));
    ok(cnbpkg_in(
        p,
        [
            "buildpack",
            "package",
            "two-layout",
            "--path",
            "two",
            "--format",
            "layout",
        ],
    ));
    meta_buildpack(
        &p.join("meta"),
        "ex/meta",
        &[("ex/one", "1.0.0"), ("ex/two", "1.0.0")],
    );
    let targets = "[[targets]]\nos = \"linux\"\narch = \"amd64\"\n\n[[targets]]\nos = \"linux\"\narch = \"arm\"\nvariant = \"v7\"\n";
    package_toml(p, "meta", &["one.cnb", "two-layout"], targets);
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
    let r = PackageReader::open(&out).unwrap();
    let images = r.images().unwrap();
    assert_eq!(images.len(), 2);
    let one = PackageReader::open(&p.join("one.cnb"))
        .unwrap()
        .images()
        .unwrap();
    for img in &images {
        let plat = img.platform();
        let src = one.iter().find(|i| i.platform() == plat).unwrap();
        assert!(
            img.config
                .rootfs
                .diff_ids
                .contains(&src.config.rootfs.diff_ids[0]),
            "{plat:?}"
        );
        assert_eq!(img.manifest.layers.len(), 3);
    }
    let arm = images.iter().find(|i| i.config.variant == "v7").unwrap();
    assert_eq!(arm.config.architecture, "arm");
    for arch in ["amd64", "arm"] {
        let info = tool_ok(
            "skopeo",
            &[
                "--override-arch",
                arch,
                "inspect",
                &format!("oci-archive:{}", out.display()),
            ],
        );
        assert!(
            info.contains(&format!("\"Architecture\": \"{arch}\"")),
            "{info}"
        );
    }
    ok(cnbpkg(["verify", out.to_str().unwrap()]));

    // A target that a dependency cannot serve names the dependency and what it has.
    let err = fails(
        cnbpkg_in(
            p,
            [
                "buildpack",
                "package",
                "x.cnb",
                "--config",
                "package.toml",
                "-t",
                "linux/arm64",
            ],
        ),
        1,
    );
    assert!(
        err.contains("two") && err.contains("linux/amd64") && err.contains("linux/arm/v7"),
        "{err}"
    );
    assert!(!p.join("x.cnb").exists());
}

#[test]
fn flatten_puts_buildpacks_into_one_layer_except_the_excluded() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path();
    minimal_buildpack(&p.join("a"), "ex/a", "1.0.0", "");
    minimal_buildpack(&p.join("b"), "ex/b", "1.0.0", "");
    ok(cnbpkg_in(
        p,
        ["buildpack", "package", "b.cnb", "--path", "b"],
    ));
    fs::copy(
        repo().join("testdata/fixtures/pack/hello-universe.cnb"),
        p.join("hu.cnb"),
    )
    .unwrap();
    meta_buildpack(
        &p.join("meta"),
        "ex/meta",
        &[
            ("ex/a", "1.0.0"),
            ("ex/b", "1.0.0"),
            ("io.buildpacks.samples.hello-universe", "0.0.1"),
        ],
    );
    package_toml(p, "meta", &["a", "b.cnb", "hu.cnb"], "");

    let out = cnbpkg_in(
        p,
        [
            "buildpack",
            "package",
            "flat.cnb",
            "--config",
            "package.toml",
            "--flatten",
        ],
    );
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    ok(out);
    assert!(
        stderr
            .contains("Flattening a buildpack package could break the distribution specification"),
        "{stderr}"
    );
    let r = PackageReader::open(&p.join("flat.cnb")).unwrap();
    let img = &r.images().unwrap()[0];
    assert_eq!(img.manifest.layers.len(), 1);
    let label = cnbpkg::descriptor::LayersLabel::parse(
        &img.config.labels()["io.buildpacks.buildpack.layers"],
    )
    .unwrap();
    let diff = img.config.rootfs.diff_ids[0].to_string();
    let all: Vec<&String> = label
        .0
        .values()
        .flat_map(|v| v.values().map(|i| &i.layer_diff_id))
        .collect();
    assert_eq!(all.len(), 6);
    assert!(all.iter().all(|d| **d == diff));
    ok(cnbpkg(["verify", p.join("flat.cnb").to_str().unwrap()]));
    // Every buildpack's files are in the one layer.
    let rootfs = unpack_with_umoci(&p.join("flat.cnb"), p, &[]);
    for f in [
        "ex_a/1.0.0/bin/build",
        "ex_b/1.0.0/bin/build",
        "io.buildpacks.samples.hello-world/0.0.1/bin/build",
        "ex_meta/1.0.0/buildpack.toml",
    ] {
        assert!(rootfs.join("cnb/buildpacks").join(f).exists(), "{f}");
    }

    ok(cnbpkg_in(
        p,
        [
            "buildpack",
            "package",
            "part.cnb",
            "--config",
            "package.toml",
            "--flatten",
            "--flatten-exclude",
            "ex/b@1.0.0",
        ],
    ));
    let img = &PackageReader::open(&p.join("part.cnb"))
        .unwrap()
        .images()
        .unwrap()[0];
    assert_eq!(img.manifest.layers.len(), 2);
    let b_layer = &PackageReader::open(&p.join("b.cnb"))
        .unwrap()
        .images()
        .unwrap()[0]
        .config
        .rootfs
        .diff_ids[0];
    assert!(img.config.rootfs.diff_ids.contains(b_layer));

    let err = fails(
        cnbpkg_in(
            p,
            [
                "buildpack",
                "package",
                "x.cnb",
                "--config",
                "package.toml",
                "--flatten",
                "--flatten-exclude",
                "nope",
            ],
        ),
        2,
    );
    assert!(
        err.contains("invalid format nope; please use '<buildpack-id>@<buildpack-version>'"),
        "{err}"
    );
}
