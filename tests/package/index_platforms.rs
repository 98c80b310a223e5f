//! The entries of the indexes cnbpkg writes: no `platform` without an architecture, one entry
//! per distinct image with the distros it serves, and the index checks of `verify`
//! (empty architectures, platform-less entries, `--expect-platform`). skopeo and umoci read
//! the outputs.

use std::fs;
use std::path::{Path, PathBuf};

use crate::support::*;
use cnbpkg::digest::Digest;
use cnbpkg::layout::PackageReader;
use cnbpkg::oci::{Descriptor, Index};
use serde_json::Value;

const DISTROS: &str = "io.buildpacks.base.distros";
const DISTRO_NAME: &str = "io.buildpacks.base.distro.name";
const DISTRO_VERSION: &str = "io.buildpacks.base.distro.version";

fn package_in(dir: &Path, args: &[&str]) -> String {
    ok(cnbpkg_in(dir, [&["buildpack", "package"], args].concat()))
}

/// `index.json` of a package, as JSON.
fn index_json(pkg: &Path) -> Value {
    let r = PackageReader::open(pkg).unwrap();
    serde_json::from_slice(r.index_bytes()).unwrap()
}

/// The image index below `index.json`, as JSON.
fn image_index(pkg: &Path) -> Value {
    let r = PackageReader::open(pkg).unwrap();
    let root = &r.index().manifests[0];
    assert_eq!(root.media_type, cnbpkg::oci::MEDIA_TYPE_INDEX);
    serde_json::from_slice(&r.read_verified(root).unwrap()).unwrap()
}

/// The raw config of the first image.
fn first_config(pkg: &Path) -> String {
    let r = PackageReader::open(pkg).unwrap();
    String::from_utf8(r.images().unwrap()[0].config_bytes.clone()).unwrap()
}

/// A buildpack with one tree and these `[[targets]]` (TOML text).
fn one_tree_buildpack(dir: &Path, id: &str, targets: &str) -> PathBuf {
    let bp = dir.join("bp");
    minimal_buildpack(&bp, id, "1.0.0", targets);
    bp
}

/// heroku/python's targets: linux/amd64 for three Ubuntu releases, linux/arm64 for two.
const HEROKU_TARGETS: &str = "\n[[targets]]\nos = \"linux\"\narch = \"amd64\"\n\
[[targets.distros]]\nname = \"ubuntu\"\nversion = \"20.04\"\n\
[[targets.distros]]\nname = \"ubuntu\"\nversion = \"22.04\"\n\
[[targets.distros]]\nname = \"ubuntu\"\nversion = \"24.04\"\n\n\
[[targets]]\nos = \"linux\"\narch = \"arm64\"\n\
[[targets.distros]]\nname = \"ubuntu\"\nversion = \"22.04\"\n\
[[targets.distros]]\nname = \"ubuntu\"\nversion = \"24.04\"\n";

/// Rewrite a layout directory's `index.json`.
fn rewrite_index_json(layout: &Path, edit: impl FnOnce(&mut Value)) {
    let path = layout.join("index.json");
    let mut v: Value = serde_json::from_slice(&fs::read(&path).unwrap()).unwrap();
    edit(&mut v);
    fs::write(&path, serde_json::to_vec(&v).unwrap()).unwrap();
}

/// Replace the image index of a layout directory by `edit` of it (new blob, new digest).
fn rewrite_image_index(layout: &Path, edit: impl FnOnce(&mut Index)) {
    let r = PackageReader::open(layout).unwrap();
    let root = r.index().manifests[0].clone();
    let mut index: Index = serde_json::from_slice(&r.read_verified(&root).unwrap()).unwrap();
    drop(r);
    edit(&mut index);
    let bytes = serde_json::to_vec(&index).unwrap();
    let digest = Digest::of(&bytes);
    fs::remove_file(layout.join(root.digest.blob_path())).unwrap();
    fs::write(layout.join(digest.blob_path()), &bytes).unwrap();
    let new_root = Descriptor::new(root.media_type.clone(), digest, bytes.len() as u64);
    rewrite_index_json(layout, |v| {
        v["manifests"] = serde_json::to_value(vec![new_root]).unwrap();
    });
}

/// `verify` output lines (stdout) and exit code.
fn verify(args: &[&str]) -> (i32, String) {
    let out = cnbpkg([&["verify"], args].concat());
    (
        out.status.code().unwrap(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[test]
fn a_target_without_architecture_has_no_platform_in_index_json() {
    let d = tempfile::tempdir().unwrap();
    // samples' hello-world: no targets, so the default target `linux` with no architecture.
    minimal_buildpack(
        &d.path().join("hello-world"),
        "samples/hello-world",
        "0.0.1",
        "\n[[stacks]]\nid = \"*\"\n",
    );
    package_in(d.path(), &["hw.cnb", "--path", "hello-world"]);
    let pkg = d.path().join("hw.cnb");
    let index = index_json(&pkg);
    let entry = &index["manifests"][0];
    assert_eq!(entry["mediaType"], cnbpkg::oci::MEDIA_TYPE_MANIFEST);
    assert!(entry.get("platform").is_none(), "{index}");
    // The config keeps the OS and its empty architecture, as pack's does.
    let config = first_config(&pkg);
    assert!(config.starts_with("{\"architecture\":\"\","), "{config}");
    assert!(config.contains("\"os\":\"linux\""), "{config}");

    // Independent readers take it as it is.
    let info: Value = serde_json::from_str(&tool_ok(
        "skopeo",
        &["inspect", &format!("oci-archive:{}", pkg.display())],
    ))
    .unwrap();
    assert_eq!(info["Os"], "linux", "{info}");
    let rootfs = unpack_with_umoci(&pkg, d.path(), &[]);
    assert!(rootfs
        .join("cnb/buildpacks/samples_hello-world/0.0.1/bin/build")
        .is_file());
    ok(cnbpkg(["verify", pkg.to_str().unwrap()]));

    // The same in a layout directory.
    package_in(
        d.path(),
        &["hw-layout", "--path", "hello-world", "--format", "layout"],
    );
    let v: Value =
        serde_json::from_slice(&fs::read(d.path().join("hw-layout/index.json")).unwrap()).unwrap();
    assert!(v["manifests"][0].get("platform").is_none(), "{v}");
}

#[test]
fn distros_of_one_image_without_architecture_share_one_platformless_entry() {
    let d = tempfile::tempdir().unwrap();
    one_tree_buildpack(
        d.path(),
        "examples/any-arch",
        "\n[[targets]]\nos = \"linux\"\n[[targets.distros]]\nname = \"ubuntu\"\nversion = \"22.04\"\n[[targets.distros]]\nname = \"ubuntu\"\nversion = \"24.04\"\n",
    );
    package_in(d.path(), &["any.cnb", "--path", "bp"]);
    let pkg = d.path().join("any.cnb");
    let index = index_json(&pkg);
    let manifests = index["manifests"].as_array().unwrap();
    assert_eq!(manifests.len(), 1, "{index}");
    assert_eq!(manifests[0]["mediaType"], cnbpkg::oci::MEDIA_TYPE_MANIFEST);
    assert!(manifests[0].get("platform").is_none(), "{index}");
    assert_eq!(
        manifests[0]["annotations"],
        serde_json::json!({ DISTROS: "ubuntu@22.04;ubuntu@24.04" })
    );
    let rootfs = unpack_with_umoci(&pkg, d.path(), &[]);
    assert!(rootfs
        .join("cnb/buildpacks/examples_any-arch/1.0.0/bin/detect")
        .is_file());
    ok(cnbpkg(["verify", pkg.to_str().unwrap()]));
}

#[test]
fn several_images_need_an_architecture_each_unless_split() {
    let d = tempfile::tempdir().unwrap();
    one_tree_buildpack(
        d.path(),
        "examples/mixed",
        "\n[[targets]]\nos = \"linux\"\n\n[[targets]]\nos = \"linux\"\narch = \"arm64\"\n",
    );
    let before = list(d.path());
    let out = cnbpkg_in(d.path(), ["buildpack", "package", "m.cnb", "--path", "bp"]);
    let stderr = fails(out, 1);
    assert!(
        stderr.contains("target 'linux' has no architecture") && stderr.contains("--split"),
        "{stderr}"
    );
    assert_eq!(list(d.path()), before, "nothing is written");

    // One file per target: each index.json references its manifest, with a platform only
    // where the architecture is known.
    package_in(d.path(), &["m.cnb", "--path", "bp", "--split"]);
    let plain = index_json(&d.path().join("m-linux.cnb"));
    assert!(plain["manifests"][0].get("platform").is_none(), "{plain}");
    let arm = index_json(&d.path().join("m-linux-arm64.cnb"));
    assert_eq!(
        arm["manifests"][0]["platform"],
        serde_json::json!({"architecture": "arm64", "os": "linux"})
    );
    for f in ["m-linux.cnb", "m-linux-arm64.cnb"] {
        ok(cnbpkg(["verify", d.path().join(f).to_str().unwrap()]));
    }
}

#[test]
fn verify_reports_a_platform_without_architecture_or_os() {
    let d = tempfile::tempdir().unwrap();
    minimal_buildpack(&d.path().join("bp"), "examples/hw", "1.0.0", "");
    package_in(d.path(), &["l", "--path", "bp", "--format", "layout"]);
    let layout = d.path().join("l");
    ok(cnbpkg(["verify", layout.to_str().unwrap()]));
    // What earlier versions wrote for a target without an architecture.
    rewrite_index_json(&layout, |v| {
        v["manifests"][0]["platform"] = serde_json::json!({"architecture": "", "os": "linux"});
    });
    let (code, stdout) = verify(&[layout.to_str().unwrap()]);
    assert_eq!(code, 1, "{stdout}");
    assert!(
        stdout.contains("index.json: sha256:")
            && stdout.contains("has a platform with an empty architecture"),
        "{stdout}"
    );
    rewrite_index_json(&layout, |v| {
        v["manifests"][0]["platform"] = serde_json::json!({"architecture": "amd64", "os": ""});
    });
    let (code, stdout) = verify(&[layout.to_str().unwrap()]);
    assert_eq!(code, 1, "{stdout}");
    assert!(
        stdout.contains("has a platform with an empty os"),
        "{stdout}"
    );
}

#[test]
fn verify_reports_platformless_entries_among_several_manifests() {
    let d = tempfile::tempdir().unwrap();
    let layout = d.path().join("multi");
    package_in(
        d.path(),
        &[
            "multi",
            "--path",
            sample("hello-multi").to_str().unwrap(),
            "--format",
            "layout",
        ],
    );
    ok(cnbpkg(["verify", layout.to_str().unwrap()]));
    let manifests = {
        let r = PackageReader::open(&layout).unwrap();
        let root = r.index().manifests[0].clone();
        let index: Index = serde_json::from_slice(&r.read_verified(&root).unwrap()).unwrap();
        index.manifests
    };
    rewrite_image_index(&layout, |index| {
        for m in &mut index.manifests {
            m.platform = None;
        }
    });
    let (code, stdout) = verify(&[layout.to_str().unwrap()]);
    assert_eq!(code, 1, "{stdout}");
    let lines: Vec<&str> = stdout
        .lines()
        .filter(|l| l.contains("has no platform, and the index lists 2 manifests"))
        .collect();
    assert_eq!(lines.len(), 2, "{stdout}");

    // A flat layout whose manifests have unique names is fine: readers choose by name.
    let image_index_blob = PackageReader::open(&layout).unwrap().index().manifests[0]
        .digest
        .blob_path();
    fs::remove_file(layout.join(image_index_blob)).unwrap();
    let named: Vec<Value> = manifests
        .iter()
        .map(|m| {
            let mut m = m.clone();
            let name = format!("hello-{}", m.platform.take().unwrap().architecture);
            m.annotations
                .insert(cnbpkg::oci::ANNOTATION_REF_NAME.into(), name);
            serde_json::to_value(m).unwrap()
        })
        .collect();
    rewrite_index_json(&layout, |v| v["manifests"] = Value::Array(named.clone()));
    let (code, stdout) = verify(&[layout.to_str().unwrap()]);
    assert_eq!(code, 0, "{stdout}");

    // The same names twice do not tell the manifests apart.
    let same: Vec<Value> = named
        .iter()
        .map(|m| {
            let mut m = m.clone();
            m["annotations"][cnbpkg::oci::ANNOTATION_REF_NAME] = "hello".into();
            m
        })
        .collect();
    rewrite_index_json(&layout, |v| v["manifests"] = Value::Array(same));
    let (code, stdout) = verify(&[layout.to_str().unwrap()]);
    assert_eq!(code, 1, "{stdout}");
    assert!(stdout.contains("has no platform"), "{stdout}");
}

#[test]
fn distros_that_give_one_image_share_its_entry_and_readers_pick_each_platform() {
    let d = tempfile::tempdir().unwrap();
    one_tree_buildpack(d.path(), "heroku/python", HEROKU_TARGETS);
    package_in(d.path(), &["python.cnb", "--path", "bp"]);
    let pkg = d.path().join("python.cnb");
    let index = image_index(&pkg);
    let entries = index["manifests"].as_array().unwrap();
    assert_eq!(entries.len(), 2, "one entry per distinct image: {index}");
    assert_eq!(
        entries[0]["platform"],
        serde_json::json!({"architecture": "amd64", "os": "linux"})
    );
    assert_eq!(
        entries[0]["annotations"],
        serde_json::json!({ DISTROS: "ubuntu@20.04;ubuntu@22.04;ubuntu@24.04" })
    );
    assert_eq!(
        entries[1]["platform"],
        serde_json::json!({"architecture": "arm64", "os": "linux"})
    );
    assert_eq!(
        entries[1]["annotations"],
        serde_json::json!({ DISTROS: "ubuntu@22.04;ubuntu@24.04" })
    );
    assert_ne!(entries[0]["digest"], entries[1]["digest"]);

    // skopeo picks each platform and umoci unpacks it.
    for arch in ["amd64", "arm64"] {
        let work = d.path().join(format!("read-{arch}"));
        fs::create_dir(&work).unwrap();
        let rootfs = unpack_with_umoci(
            &pkg,
            &work,
            &["--override-os", "linux", "--override-arch", arch],
        );
        assert!(rootfs
            .join("cnb/buildpacks/heroku_python/1.0.0/bin/build")
            .is_file());
        let copied: Value =
            serde_json::from_slice(&fs::read(work.join("oci/index.json")).unwrap()).unwrap();
        let want = entries
            .iter()
            .find(|e| e["platform"]["architecture"] == arch)
            .unwrap();
        assert_eq!(copied["manifests"][0]["digest"], want["digest"], "{copied}");
    }
    ok(cnbpkg(["verify", pkg.to_str().unwrap()]));

    let inspect = ok(cnbpkg(["inspect", pkg.to_str().unwrap()]));
    assert!(
        inspect.contains("Platform linux/amd64:ubuntu@20.04;ubuntu@22.04;ubuntu@24.04\n")
            && inspect.contains("Platform linux/arm64:ubuntu@22.04;ubuntu@24.04\n"),
        "{inspect}"
    );
    let json: Value =
        serde_json::from_str(&ok(cnbpkg(["inspect", pkg.to_str().unwrap(), "--json"]))).unwrap();
    assert_eq!(
        json["images"][1]["distros"],
        serde_json::json!(["ubuntu@22.04", "ubuntu@24.04"])
    );

    // --split still writes one file per distro, named as RFC 0128 says, each with its distro.
    package_in(d.path(), &["s.cnb", "--path", "bp", "--split"]);
    let mut names = list(d.path());
    names.retain(|n| n.starts_with("s-"));
    assert_eq!(
        names,
        [
            "s-linux-amd64-ubuntu@20.04.cnb",
            "s-linux-amd64-ubuntu@22.04.cnb",
            "s-linux-amd64-ubuntu@24.04.cnb",
            "s-linux-arm64-ubuntu@22.04.cnb",
            "s-linux-arm64-ubuntu@24.04.cnb",
        ]
    );
    let one = index_json(&d.path().join("s-linux-arm64-ubuntu@24.04.cnb"));
    assert_eq!(
        one["manifests"][0]["annotations"],
        serde_json::json!({ DISTRO_NAME: "ubuntu", DISTRO_VERSION: "24.04" })
    );
    assert_eq!(one["manifests"][0]["digest"], entries[1]["digest"]);
}

#[test]
fn distro_folders_keep_distinct_entries_beside_a_shared_one() {
    let d = tempfile::tempdir().unwrap();
    let bp = one_tree_buildpack(
        d.path(),
        "examples/folders",
        "\n[[targets]]\nos = \"linux\"\narch = \"amd64\"\n\
[[targets.distros]]\nname = \"ubuntu\"\nversion = \"20.04\"\n\
[[targets.distros]]\nname = \"ubuntu\"\nversion = \"22.04\"\n\
[[targets.distros]]\nname = \"ubuntu\"\nversion = \"24.04\"\n",
    );
    for folder in ["linux/amd64", "linux/amd64/ubuntu@24.04"] {
        write_file(
            &bp.join(folder).join("bin/build"),
            &format!("#!/bin/sh\necho {folder}\n"),
            0o755,
        );
        write_file(&bp.join(folder).join("bin/detect"), "#!/bin/sh\n", 0o755);
    }
    package_in(d.path(), &["f.cnb", "--path", "bp"]);
    let pkg = d.path().join("f.cnb");
    let index = image_index(&pkg);
    let entries = index["manifests"].as_array().unwrap();
    assert_eq!(entries.len(), 2, "{index}");
    assert_eq!(
        entries[0]["annotations"],
        serde_json::json!({ DISTROS: "ubuntu@20.04;ubuntu@22.04" })
    );
    assert_eq!(
        entries[1]["annotations"],
        serde_json::json!({ DISTRO_NAME: "ubuntu", DISTRO_VERSION: "24.04" })
    );
    ok(cnbpkg(["verify", pkg.to_str().unwrap()]));
}

/// A composite `meta` over the package `dep` (a relative path), with these package.toml targets.
fn composite(dir: &Path, dep: &str, targets: &str) -> std::process::Output {
    write_file(
        &dir.join("meta/buildpack.toml"),
        "api = \"0.10\"\n\n[buildpack]\nid = \"examples/meta\"\nversion = \"1.0.0\"\n\n[[order]]\n[[order.group]]\nid = \"heroku/python\"\nversion = \"1.0.0\"\n",
        0o644,
    );
    fs::write(
        dir.join("package.toml"),
        format!("[buildpack]\nuri = \"meta\"\n\n[[dependencies]]\nuri = \"{dep}\"\n{targets}"),
    )
    .unwrap();
    cnbpkg_in(
        dir,
        [
            "buildpack",
            "package",
            "meta.cnb",
            "--config",
            "package.toml",
        ],
    )
}

#[test]
fn composites_choose_dependency_images_by_the_distros_they_serve() {
    let d = tempfile::tempdir().unwrap();
    one_tree_buildpack(d.path(), "heroku/python", HEROKU_TARGETS);
    package_in(d.path(), &["python.cnb", "--path", "bp"]);
    let dep = image_index(&d.path().join("python.cnb"));
    let digest_of = |arch: &str| -> Digest {
        let r = PackageReader::open(&d.path().join("python.cnb")).unwrap();
        let img = r
            .images()
            .unwrap()
            .into_iter()
            .find(|i| i.platform().architecture == arch)
            .unwrap();
        img.config.rootfs.diff_ids[0]
    };
    let (amd64_layer, arm64_layer) = (digest_of("amd64"), digest_of("arm64"));
    assert_eq!(dep["manifests"].as_array().unwrap().len(), 2);

    let targets = "\n[[targets]]\nos = \"linux\"\narch = \"amd64\"\n[[targets.distros]]\nname = \"ubuntu\"\nversion = \"22.04\"\n\n[[targets]]\nos = \"linux\"\narch = \"arm64\"\n";
    ok(composite(d.path(), "python.cnb", targets));
    let r = PackageReader::open(&d.path().join("meta.cnb")).unwrap();
    let images = r.images().unwrap();
    assert_eq!(images.len(), 2);
    for img in &images {
        let want = match img.platform().architecture.as_str() {
            "amd64" => amd64_layer,
            _ => arm64_layer,
        };
        assert!(img.config.rootfs.diff_ids.contains(&want), "{img:?}");
    }

    // A distro the dependency does not serve on that architecture.
    let unserved = "\n[[targets]]\nos = \"linux\"\narch = \"arm64\"\n[[targets.distros]]\nname = \"ubuntu\"\nversion = \"20.04\"\n";
    let stderr = fails(composite(d.path(), "python.cnb", unserved), 1);
    assert!(
        stderr.contains("dependency has no image for target linux/arm64:ubuntu@20.04")
            && stderr.contains("linux/arm64:ubuntu@22.04;ubuntu@24.04"),
        "{stderr}"
    );

    // A target without architecture that several dependency images fit: the CLI names its
    // flag.
    let stderr = fails(
        composite(d.path(), "python.cnb", "\n[[targets]]\nos = \"linux\"\n"),
        1,
    );
    assert!(
        stderr.contains("dependency has several images that fit target linux (")
            && stderr.ends_with("); name the architecture with --target\n"),
        "{stderr}"
    );

    // Packages written before listed the same manifest once per distro: still one image.
    package_in(d.path(), &["old", "--path", "bp", "--format", "layout"]);
    let old = d.path().join("old");
    rewrite_image_index(&old, |index| {
        let mut listed = Vec::new();
        for m in &index.manifests {
            let distros = m.annotations[DISTROS].clone();
            for distro in distros.split(';') {
                let (name, version) = distro.split_once('@').unwrap();
                let mut e = m.clone();
                e.annotations.clear();
                e.annotations.insert(DISTRO_NAME.into(), name.into());
                e.annotations.insert(DISTRO_VERSION.into(), version.into());
                listed.push(e);
            }
        }
        index.manifests = listed;
    });
    assert_eq!(image_index(&old)["manifests"].as_array().unwrap().len(), 5);
    let no_distro = "\n[[targets]]\nos = \"linux\"\narch = \"amd64\"\n";
    ok(composite(d.path(), "old", no_distro));
    let r = PackageReader::open(&d.path().join("meta.cnb")).unwrap();
    assert!(r.images().unwrap()[0]
        .config
        .rootfs
        .diff_ids
        .contains(&amd64_layer));
}

#[test]
fn expect_platform_requires_exactly_the_listed_platforms() {
    let d = tempfile::tempdir().unwrap();
    package_in(
        d.path(),
        &[
            "multi.cnb",
            "--path",
            sample("hello-multi").to_str().unwrap(),
        ],
    );
    let multi = d.path().join("multi.cnb");
    let m = multi.to_str().unwrap();
    assert_eq!(
        verify(&[m, "--expect-platform", "linux/amd64,linux/arm64"]).0,
        0
    );
    assert_eq!(
        verify(&[
            m,
            "--expect-platform",
            "linux/arm64",
            "--expect-platform",
            "linux/amd64"
        ])
        .0,
        0
    );
    // A single-arch release by mistake.
    let (code, stdout) = verify(&[m, "--expect-platform", "linux/amd64"]);
    assert_eq!(code, 1);
    assert_eq!(
        stdout,
        format!(
            "{m}: the package does not hold exactly the expected platforms: extra linux/arm64\n"
        )
    );
    let (code, stdout) = verify(&[
        m,
        "--expect-platform",
        "linux/amd64,linux/arm64,linux/arm/v7",
    ]);
    assert_eq!(code, 1);
    assert!(
        stdout.ends_with("platforms: missing linux/arm/v7\n"),
        "{stdout}"
    );
    let (code, stdout) = verify(&[m, "--expect-platform", "linux/amd64/v2,linux/arm64"]);
    assert_eq!(code, 1);
    assert!(
        stdout.ends_with("platforms: missing linux/amd64/v2; extra linux/amd64\n"),
        "{stdout}"
    );

    // Distros: none given means any; given, they must be exactly the ones served.
    one_tree_buildpack(d.path(), "heroku/python", HEROKU_TARGETS);
    package_in(d.path(), &["python.cnb", "--path", "bp"]);
    let py = d.path().join("python.cnb");
    let p = py.to_str().unwrap();
    assert_eq!(
        verify(&[p, "--expect-platform", "linux/amd64,linux/arm64"]).0,
        0
    );
    assert_eq!(
        verify(&[
            p,
            "--expect-platform",
            "linux/amd64:ubuntu@20.04;ubuntu@22.04;ubuntu@24.04,linux/arm64:ubuntu@24.04;ubuntu@22.04"
        ])
        .0,
        0
    );
    let (code, stdout) = verify(&[
        p,
        "--expect-platform",
        "linux/amd64:ubuntu@22.04;ubuntu@24.04,linux/arm64:ubuntu@24.04;ubuntu@26.04",
    ]);
    assert_eq!(code, 1);
    assert!(
        stdout.ends_with(
            "platforms: missing linux/arm64:ubuntu@26.04; extra linux/amd64:ubuntu@20.04, linux/arm64:ubuntu@22.04\n"
        ),
        "{stdout}"
    );
    let json: Value =
        serde_json::from_str(&verify(&[p, "--json", "--expect-platform", "linux/amd64"]).1)
            .unwrap();
    assert_eq!(
        json["extraPlatforms"],
        serde_json::json!(["linux/arm64:ubuntu@22.04", "linux/arm64:ubuntu@24.04"])
    );
    assert_eq!(json["platforms"].as_array().unwrap().len(), 5, "{json}");

    // A platform with no architecture is named by its OS alone.
    minimal_buildpack(&d.path().join("hw"), "examples/hw", "1.0.0", "");
    package_in(d.path(), &["hw.cnb", "--path", "hw"]);
    let hw = d.path().join("hw.cnb");
    let h = hw.to_str().unwrap();
    assert_eq!(verify(&[h, "--expect-platform", "linux"]).0, 0);
    let (code, stdout) = verify(&[h, "--expect-platform", "linux/amd64"]);
    assert_eq!(code, 1);
    assert!(
        stdout.ends_with("platforms: missing linux/amd64; extra linux\n"),
        "{stdout}"
    );

    // A value --target would refuse is a usage error.
    for bad in ["linux/amd64/v9", "linux/x", "", "linux/amd64:@22.04"] {
        let out = cnbpkg(["verify", h, "--expect-platform", bad]);
        let stderr = fails(out, 2);
        assert!(
            stderr.contains("invalid --expect-platform"),
            "{bad}: {stderr}"
        );
    }

    // The library takes the same expectation.
    let mut opts = cnbpkg::verify::VerifyOptions::default();
    opts.expect_platforms = cnbpkg::verify::parse_expected_platforms(&["linux/arm64".into()])
        .unwrap()
        .0;
    let report = cnbpkg::verify::verify_with(&multi, &opts).unwrap();
    assert!(!report.is_ok());
    assert_eq!(report.extra_platforms, ["linux/amd64"]);
    assert!(report.missing_platforms.is_empty());
    assert_eq!(report.platforms, ["linux/amd64", "linux/arm64"]);
}

#[test]
fn verify_bounds_the_distros_annotation() {
    let d = tempfile::tempdir().unwrap();
    let layout = d.path().join("multi");
    package_in(
        d.path(),
        &[
            "multi",
            "--path",
            sample("hello-multi").to_str().unwrap(),
            "--format",
            "layout",
        ],
    );
    let huge = vec!["ubuntu@1"; 4000].join(";");
    rewrite_image_index(&layout, |index| {
        index.manifests[0]
            .annotations
            .insert(DISTROS.into(), huge.clone());
    });
    let (code, stdout) = verify(&[
        layout.to_str().unwrap(),
        "--expect-platform",
        "linux/amd64,linux/arm64",
    ]);
    assert_eq!(code, 1, "{stdout}");
    assert!(
        stdout.contains("annotation io.buildpacks.base.distros is longer than 16384 bytes"),
        "{stdout}"
    );
    // inspect and composites read it without trouble.
    let inspect = ok(cnbpkg(["inspect", layout.to_str().unwrap()]));
    assert!(
        inspect.contains("Platform linux/amd64:ubuntu@1;ubuntu@1"),
        "{inspect}"
    );
}
