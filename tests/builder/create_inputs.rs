//! `builder create` inputs: buildpacks from a multi-platform `.cnb` keep their layers' bytes
//! and diffIDs per platform, the build image and run images from a store, `--flatten` groups,
//! `--label`, and the refusals (build user, distro, Buildpack API, targets, Windows, unknown
//! `--flatten`), each leaving nothing behind.

use std::fs;
use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use crate::support::builder::*;
use crate::support::child::{cnbpkg, fails, ok};
use crate::support::lifecycle::lifecycle_tgz;

const TWO_TARGETS: &str = "\n[[targets]]\nos = \"linux\"\narch = \"amd64\"\n\n[[targets]]\nos = \"linux\"\narch = \"arm64\"\n";

/// builder.toml in `dir` with `buildpacks` (uris), one order group of `order` ids, build image
/// `build`, and `extra` appended.
fn config(dir: &Path, build: &str, buildpacks: &[&str], order: &[&str], extra: &str) -> PathBuf {
    let mut text = String::new();
    for b in buildpacks {
        text.push_str(&format!("[[buildpacks]]\nuri = \"{b}\"\n\n"));
    }
    text.push_str("[[order]]\n");
    for id in order {
        text.push_str(&format!("[[order.group]]\nid = \"{id}\"\n"));
    }
    text.push_str(&format!(
        "\n[build]\nimage = \"{build}\"\n\n[[run.images]]\nimage = \"example.com/run:1\"\n\n[lifecycle]\nuri = \"lifecycle-v0.20.5+linux.{{arch}}.tgz\"\n{extra}"
    ));
    let path = dir.join("builder.toml");
    fs::write(&path, text).unwrap();
    path
}

fn lifecycles(dir: &Path) {
    for arch in ARCHES {
        lifecycle_tgz(dir, arch, "0.20.5");
    }
}

fn run(config: &Path, out: &Path, extra: &[&str]) -> std::process::Output {
    let mut args: Vec<String> = vec![
        "builder".into(),
        "create".into(),
        out.display().to_string(),
        "--config".into(),
        config.display().to_string(),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    cnbpkg(&args)
}

#[test]
fn buildpacks_from_a_multi_platform_cnb_keep_their_layers_per_platform() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    default_build_image(d);
    lifecycles(d);
    let cnb = multi_platform_cnb(d, "pkg", "acme/p", "2.0.0");
    simple_buildpack(
        d,
        "bp",
        "acme/a",
        "1.0.0",
        "0.10",
        &["linux/amd64", "linux/arm64"],
    );
    let cfg = config(
        d,
        "build-image",
        &["pkg.cnb", "bp"],
        &["acme/p", "acme/a"],
        TWO_TARGETS,
    );
    let out = d.join("builder");
    ok(run(
        &cfg,
        &out,
        &["--format", "layout", "--label", "org.example.k=v"],
    ));
    let pkg = as_layout(&cnb, &d.join("pkg-layout"));
    let work = d.join("work");
    for arch in ARCHES {
        let package = read_platform(&pkg, arch, &work.join("pkg"));
        let built = read_platform(&out, arch, &work.join("built"));
        let pkg_layer = &package.manifest["layers"][0];
        let pkg_diff = &package.config["rootfs"]["diff_ids"][0];
        let layers = built.manifest["layers"].as_array().unwrap();
        let at = layers
            .iter()
            .position(|l| l["digest"] == pkg_layer["digest"])
            .unwrap_or_else(|| panic!("{arch}: the package's layer is copied as it is"));
        assert_eq!(&built.config["rootfs"]["diff_ids"][at], pkg_diff);
        let label = built.label_json("io.buildpacks.buildpack.layers");
        assert_eq!(&label["acme/p"]["2.0.0"]["layerDiffID"], pkg_diff);
        assert_eq!(built.label("org.example.k"), "v");
        assert!(built
            .rootfs
            .join("cnb/buildpacks/acme_p/2.0.0/buildpack.toml")
            .is_file());
        // Sorted by id@version: acme/a before acme/p.
        let a_diff = &label["acme/a"]["1.0.0"]["layerDiffID"];
        let ids = built.config["rootfs"]["diff_ids"].as_array().unwrap();
        let pos = |d: &Value| ids.iter().position(|x| x == d).unwrap();
        assert!(pos(a_diff) < pos(pkg_diff));
    }
}

#[test]
fn flatten_puts_a_group_into_one_layer() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    default_build_image(d);
    lifecycles(d);
    for (name, id) in [("a", "acme/a"), ("b", "acme/b"), ("c", "acme/c")] {
        simple_buildpack(
            d,
            name,
            id,
            "1.0.0",
            "0.10",
            &["linux/amd64", "linux/arm64"],
        );
    }
    let cfg = config(
        d,
        "build-image",
        &["a", "b", "c"],
        &["acme/a", "acme/b", "acme/c"],
        "",
    );
    let out = d.join("builder");
    ok(run(
        &cfg,
        &out,
        &[
            "--format",
            "layout",
            "-t",
            "linux/arm64",
            "--flatten",
            "acme/c@1.0.0,acme/a@1.0.0",
        ],
    ));
    let p = read_platform(&out, "arm64", &d.join("work"));
    let label = p.label_json("io.buildpacks.buildpack.layers");
    let a = &label["acme/a"]["1.0.0"]["layerDiffID"];
    assert_eq!(a, &label["acme/c"]["1.0.0"]["layerDiffID"]);
    assert_ne!(a, &label["acme/b"]["1.0.0"]["layerDiffID"]);
    let ids = p.config["rootfs"]["diff_ids"].as_array().unwrap();
    let pos = |d: &Value| ids.iter().position(|x| x == d).unwrap();
    assert!(
        pos(a) < pos(&label["acme/b"]["1.0.0"]["layerDiffID"]),
        "groups first"
    );
    for id in ["acme_a", "acme_b", "acme_c"] {
        assert!(p
            .rootfs
            .join(format!("cnb/buildpacks/{id}/1.0.0/bin/build"))
            .is_file());
    }
    // A value naming no buildpack of the builder is a usage error.
    let e = fails(
        run(
            &cfg,
            &d.join("x"),
            &["-t", "linux/arm64", "--flatten", "acme/z@1"],
        ),
        2,
    );
    assert!(e.contains("acme/z@1"), "{e}");
    assert!(!d.join("x").exists());
}

/// A store holding `images`: (reference, layout whose index.json's single entry it names).
fn store(dir: &Path, images: &[(&str, &Path)]) -> PathBuf {
    let store = dir.join("store");
    fs::create_dir_all(store.join("blobs/sha256")).unwrap();
    fs::write(
        store.join("oci-layout"),
        "{\"imageLayoutVersion\":\"1.0.0\"}",
    )
    .unwrap();
    let mut manifests = Vec::new();
    for (reference, layout) in images {
        for e in fs::read_dir(layout.join("blobs/sha256")).unwrap() {
            let e = e.unwrap();
            let to = store.join("blobs/sha256").join(e.file_name());
            if !to.exists() {
                fs::copy(e.path(), to).unwrap();
            }
        }
        let index: Value =
            serde_json::from_slice(&fs::read(layout.join("index.json")).unwrap()).unwrap();
        let mut entry = index["manifests"][0].clone();
        entry["annotations"] = json!({ "org.opencontainers.image.ref.name": reference });
        manifests.push(entry);
    }
    fs::write(
        store.join("index.json"),
        serde_json::to_vec(&json!({"schemaVersion": 2, "manifests": manifests})).unwrap(),
    )
    .unwrap();
    store
}

#[test]
fn build_and_run_images_from_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let build = default_build_image(d);
    let run_one = build_image(d, "run-one", &[BaseImage::new("amd64")]);
    lifecycles(d);
    simple_buildpack(d, "bp", "acme/a", "1.0.0", "0.10", &[]);
    let cnb = multi_platform_cnb(d, "pkg", "acme/p", "2.0.0");
    let pkg = as_layout(&cnb, &d.join("pkg"));
    let s = store(
        d,
        &[
            ("example.com/build:1", &build),
            ("example.com/run:1", &run_one),
            ("example.com/pkg:2", &pkg),
        ],
    );
    let cfg = config(
        d,
        "example.com/build:1",
        &["bp", "docker://example.com/pkg:2"],
        &["acme/a", "acme/p"],
        "",
    );
    let out = d.join("one.cnb");
    let store_arg = s.display().to_string();
    ok(run(
        &cfg,
        &out,
        &["-t", "linux/amd64", "--store", &store_arg],
    ));
    let (_, c) = skopeo_platform(&out, "amd64");
    assert_eq!(c["config"]["WorkingDir"], "/layers");
    let layers: Value = serde_json::from_str(
        c["config"]["Labels"]["io.buildpacks.buildpack.layers"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    assert!(
        layers["acme/p"]["2.0.0"]["layerDiffID"].is_string(),
        "{layers}"
    );
    // The run image the store holds has no arm64 image.
    let e = fails(
        run(
            &cfg,
            &d.join("two.cnb"),
            &["-t", "linux/arm64", "--store", &store_arg],
        ),
        1,
    );
    assert!(
        e.contains("run image example.com/run:1 has no image for target linux/arm64"),
        "{e}"
    );
    assert!(!d.join("two.cnb").exists());
    // A build image neither on disk nor in the store.
    let cfg = config(d, "example.com/other:1", &["bp"], &["acme/a"], "");
    let e = fails(run(&cfg, &d.join("three.cnb"), &["--store", &store_arg]), 1);
    assert!(e.contains("example.com/other:1"), "{e}");
    assert!(e.contains("cnbpkg pull"), "{e}");
}

#[test]
fn refusals_leave_nothing_behind() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    lifecycles(d);
    let mut no_uid = BaseImage::new("amd64");
    no_uid.uid = None;
    build_image(d, "no-uid", &[no_uid]);
    let mut bad_gid = BaseImage::new("amd64");
    bad_gid.gid = Some("abc".into());
    build_image(d, "bad-gid", &[bad_gid]);
    default_build_image(d);
    simple_buildpack(d, "bp", "acme/a", "1.0.0", "0.10", &[]);
    simple_buildpack(d, "old", "acme/old", "1.0.0", "0.2", &[]);
    simple_buildpack(d, "armonly", "acme/arm", "1.0.0", "0.10", &["linux/arm64"]);
    type Row<'a> = (&'a str, &'a [&'a str], &'a [&'a str], &'a str, i32);
    let table: &[Row<'_>] = &[
        ("no-uid", &["bp"], &[], "image", 1),
        ("bad-gid", &["bp"], &[], "failed to parse 'CNB_GROUP_ID', value 'abc' should be an integer", 1),
        ("build-image", &["bp"], &["-t", "linux/amd64:debian@12"], "none of the target's distros", 1),
        ("build-image", &["old"], &["-t", "linux/amd64"], "(Buildpack API 0.2) is incompatible with lifecycle '0.20.5'", 1),
        ("build-image", &["armonly"], &["-t", "linux/amd64"], "unable to satisfy target os/arch constraints; build image: {\"os\":\"linux\",\"arch\":\"amd64\"", 1),
        ("build-image", &["bp"], &["-t", "windows/amd64"], "Windows builders are not supported", 1),
        ("build-image", &["bp"], &[], "has several platforms", 2),
    ];
    for (build, buildpacks, flags, expected, code) in table {
        let ids: Vec<String> = buildpacks
            .iter()
            .map(|b| match *b {
                "old" => "acme/old".to_string(),
                "armonly" => "acme/arm".to_string(),
                _ => "acme/a".to_string(),
            })
            .collect();
        let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
        let cfg = config(d, build, buildpacks, &ids, "");
        let out = d.join("out.cnb");
        let e = fails(run(&cfg, &out, flags), *code);
        assert!(e.contains(expected), "{build} {flags:?}: {e}");
        assert!(!out.exists(), "{build} {flags:?}");
        let leftovers: Vec<String> = tree(d)
            .into_iter()
            .filter(|n| n.starts_with("out") || n.contains(".tmp"))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
    }
    // A [stack] id the build image does not carry (pack's message).
    let cfg = config(
        d,
        "build-image",
        &["bp"],
        &["acme/a"],
        "\n[stack]\nid = \"io.example.stack\"\nbuild-image = \"build-image\"\nrun-image = \"example.com/run:1\"\n",
    );
    let e = fails(run(&cfg, &d.join("out.cnb"), &["-t", "linux/amd64"]), 1);
    assert!(
        e.contains("stack 'io.example.stack' from builder config is incompatible with stack '' from build image"),
        "{e}"
    );
    // The first row's message is pack's.
    let cfg = config(d, "no-uid", &["bp"], &["acme/a"], "");
    let e = fails(run(&cfg, &d.join("out.cnb"), &[]), 1);
    assert!(e.contains("missing required env var 'CNB_USER_ID'"), "{e}");
}

/// An image extension directory `dir/name` (`extension.toml`, `bin/detect`, `bin/generate`).
fn extension(dir: &Path, name: &str, id: &str) -> PathBuf {
    use crate::support::files::write_file;
    let to = dir.join(name);
    write_file(
        &to.join("extension.toml"),
        &format!("api = \"0.10\"\n\n[extension]\nid = \"{id}\"\nversion = \"1.0.0\"\n"),
        0o644,
    );
    write_file(&to.join("bin/detect"), "#!/bin/sh\nexit 0\n", 0o755);
    write_file(&to.join("bin/generate"), "#!/bin/sh\nexit 0\n", 0o755);
    to
}

#[test]
fn extensions_from_a_directory_and_a_package() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    default_build_image(d);
    lifecycles(d);
    simple_buildpack(d, "bp", "acme/a", "1.0.0", "0.10", &[]);
    extension(d, "ext-dir", "acme/ext-dir");
    let src = extension(d, "ext-src", "acme/ext-pkg");
    ok(cnbpkg([
        "buildpack".as_ref(),
        "package".as_ref(),
        d.join("ext-pkg.cnb").as_os_str(),
        "--path".as_ref(),
        src.as_os_str(),
        "-t".as_ref(),
        "linux/amd64".as_ref(),
        "-t".as_ref(),
        "linux/arm64".as_ref(),
    ]));
    let extra = "\n[[extensions]]\nuri = \"ext-dir\"\n\n[[extensions]]\nuri = \"ext-pkg.cnb\"\n\n[[order-extensions]]\n[[order-extensions.group]]\nid = \"acme/ext-dir\"\n[[order-extensions.group]]\nid = \"acme/ext-pkg\"\n";
    let cfg = config(d, "build-image", &["bp"], &["acme/a"], extra);
    let out = d.join("builder");
    ok(run(
        &cfg,
        &out,
        &["--format", "layout", "-t", "linux/arm64"],
    ));
    let p = read_platform(&out, "arm64", &d.join("work"));
    for id in ["acme_ext-dir", "acme_ext-pkg"] {
        assert!(
            p.rootfs
                .join(format!("cnb/extensions/{id}/1.0.0/extension.toml"))
                .is_file(),
            "{id}"
        );
    }
    let label = p.label_json("io.buildpacks.extension.layers");
    assert!(
        label["acme/ext-dir"]["1.0.0"]["layerDiffID"].is_string(),
        "{label}"
    );
    assert!(
        label["acme/ext-pkg"]["1.0.0"]["layerDiffID"].is_string(),
        "{label}"
    );
    let order = fs::read_to_string(p.rootfs.join("cnb/order.toml")).unwrap();
    assert!(order.contains("[[order-extensions]]"), "{order}");
    assert_ne!(p.label("io.buildpacks.buildpack.order-extensions"), "null");
    let metadata = p.label_json("io.buildpacks.builder.metadata");
    assert_eq!(metadata["extensions"].as_array().unwrap().len(), 2);
}

#[test]
fn system_buildpacks_get_their_file_and_label() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    default_build_image(d);
    lifecycles(d);
    simple_buildpack(d, "bp", "acme/a", "1.0.0", "0.10", &[]);
    simple_buildpack(d, "pre", "acme/pre", "0.1.0", "0.10", &[]);
    let extra = "\n[system]\n[[system.pre.buildpacks]]\nid = \"acme/pre\"\n";
    let cfg = config(d, "build-image", &["bp", "pre"], &["acme/a"], extra);
    let out = d.join("builder");
    ok(run(
        &cfg,
        &out,
        &["--format", "layout", "-t", "linux/amd64"],
    ));
    let p = read_platform(&out, "amd64", &d.join("work"));
    let system = fs::read_to_string(p.rootfs.join("cnb/system.toml")).unwrap();
    assert!(system.contains("[[system.pre.buildpacks]]"), "{system}");
    assert!(system.contains("version = \"0.1.0\""), "resolved: {system}");
    let label = p.label_json("io.buildpacks.buildpack.system");
    assert_eq!(label["pre"]["buildpacks"][0]["id"], "acme/pre", "{label}");
    assert!(
        label["pre"]["buildpacks"][0].get("version").is_none(),
        "unresolved: {label}"
    );
    // system.toml comes right after order.toml (pack's sequence).
    let files: Vec<String> = p
        .layer_digests()
        .iter()
        .map(|digest| {
            let blob = read_blob(&out, digest);
            let headers = layer_headers(&blob, "application/vnd.oci.image.layer.v1.tar+gzip");
            headers.first().map(|h| h.0.clone()).unwrap_or_default()
        })
        .collect();
    let at = |name: &str| files.iter().position(|f| f == name).unwrap();
    assert_eq!(at("cnb/system.toml"), at("cnb/order.toml") + 1, "{files:?}");
    assert_eq!(at("cnb/stack.toml"), at("cnb/system.toml") + 1, "{files:?}");
}

#[test]
fn a_builder_extends_a_builder_as_pack_does() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    default_build_image(d);
    lifecycles(d);
    let a = simple_buildpack(d, "a", "acme/a", "1.0.0", "0.10", &[]);
    crate::support::files::write_file(&a.join("old-only"), "old\n", 0o644);
    multi_platform_cnb(d, "pkg", "acme/p", "2.0.0");
    simple_buildpack(d, "s", "acme/s", "1.0.0", "0.10", &[]);
    let first = d.join("first");
    let cfg = config(d, "build-image", &["a", "pkg.cnb", "s"], &["acme/a"], "");
    ok(run(
        &cfg,
        &first,
        &["--format", "layout", "-t", "linux/amd64"],
    ));

    // The second builder: acme/a changed, acme/p the same package, acme/c new.
    fs::remove_file(a.join("old-only")).unwrap();
    crate::support::files::write_file(&a.join("new-only"), "new\n", 0o644);
    simple_buildpack(d, "c", "acme/c", "1.0.0", "0.10", &[]);
    let cfg = config(d, "first", &["a", "pkg.cnb", "c", "s"], &["acme/c"], "");
    let second = d.join("second");
    ok(run(
        &cfg,
        &second,
        &["--format", "layout", "-t", "linux/amd64"],
    ));

    // The base's layer of the replaced module is hidden by the whiteout: verify accepts it.
    for builder in [&first, &second] {
        let report = cnbpkg::verify::verify(builder).unwrap();
        assert!(report.is_ok(), "{:?}", report.defects);
    }

    let work = d.join("work");
    let base = read_platform(&first, "amd64", &work.join("1"));
    let p = read_platform(&second, "amd64", &work.join("2"));
    let tree = &p.rootfs.join("cnb/buildpacks");
    assert!(tree.join("acme_a/1.0.0/new-only").is_file());
    assert!(!tree.join("acme_a/1.0.0/old-only").exists(), "whited out");
    assert!(tree.join("acme_p/2.0.0/buildpack.toml").is_file());
    assert!(tree.join("acme_c/1.0.0/buildpack.toml").is_file());
    // acme/p's layer is the base's: not added again.
    let base_label = base.label_json("io.buildpacks.buildpack.layers");
    let label = p.label_json("io.buildpacks.buildpack.layers");
    let p_diff = &label["acme/p"]["2.0.0"]["layerDiffID"];
    assert_eq!(p_diff, &base_label["acme/p"]["2.0.0"]["layerDiffID"]);
    let ids = p.config["rootfs"]["diff_ids"].as_array().unwrap();
    assert_eq!(ids.iter().filter(|x| *x == p_diff).count(), 1);
    // So is an unchanged directory buildpack's (the same bytes), with no whiteout.
    let s_diff = &label["acme/s"]["1.0.0"]["layerDiffID"];
    assert_eq!(s_diff, &base_label["acme/s"]["1.0.0"]["layerDiffID"]);
    assert_eq!(ids.iter().filter(|x| *x == s_diff).count(), 1);
    assert!(tree.join("acme_s/1.0.0/bin/build").is_file());
    let whiteouts: Vec<String> = p
        .layer_digests()
        .iter()
        .flat_map(|digest| {
            let blob = read_blob(&second, digest);
            layer_headers(&blob, "application/vnd.oci.image.layer.v1.tar+gzip")
                .into_iter()
                .map(|h| h.0)
                .filter(|n| n.contains(".wh."))
                .collect::<Vec<_>>()
        })
        .collect();
    assert_eq!(whiteouts, ["cnb/buildpacks/acme_a/.wh.1.0.0"]);
    assert_ne!(
        label["acme/a"]["1.0.0"]["layerDiffID"],
        base_label["acme/a"]["1.0.0"]["layerDiffID"]
    );
    assert!(label["acme/c"]["1.0.0"]["layerDiffID"].is_string());
    let metadata = p.label_json("io.buildpacks.builder.metadata");
    let listed: Vec<String> = metadata["buildpacks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| {
            format!(
                "{}@{}",
                b["id"].as_str().unwrap(),
                b["version"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(
        listed,
        [
            "acme/a@1.0.0",
            "acme/c@1.0.0",
            "acme/p@2.0.0",
            "acme/s@1.0.0"
        ]
    );
    // The first builder's layers lead, byte for byte.
    let base_layers = base.layer_digests();
    assert_eq!(&p.layer_digests()[..base_layers.len()], &base_layers[..]);
}
