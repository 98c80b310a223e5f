//! Inputs of `buildpack package`: RFC 0128's folder layouts and target rules, archives,
//! pack compatibility of labels, and bad input (clear message, exit 1, nothing written).

use std::collections::BTreeMap;
use std::fs;
use std::io::Read;
use std::path::Path;
use std::process::Command;

use crate::support::*;
use cnbpkg::layout::PackageReader;

/// Each image's platform ("os/arch[/variant]") → the sorted entry names of its last layer.
fn layer_listings(pkg: &Path) -> BTreeMap<String, Vec<String>> {
    let r = PackageReader::open(pkg).unwrap();
    let mut out = BTreeMap::new();
    for img in r.images().unwrap() {
        let p = img.platform();
        let mut key = format!("{}/{}", p.os, p.architecture);
        if !p.variant.is_empty() {
            key = format!("{key}/{}", p.variant);
        }
        if let Some(v) = img
            .descriptor
            .annotations
            .get("io.buildpacks.base.distro.version")
        {
            key = format!("{key}:{v}");
        }
        let layer = img.manifest.layers.last().unwrap();
        let enc = cnbpkg::oci::layer_compression_of(&layer.media_type).unwrap();
        let blob = r.open_blob(&layer.digest).unwrap();
        let mut archive = tar::Archive::new(cnbpkg::internals::decoder(enc, blob));
        let mut names: Vec<String> = archive
            .entries()
            .unwrap()
            .map(|e| String::from_utf8_lossy(&e.unwrap().path_bytes()).into_owned())
            .collect();
        names.sort();
        out.insert(key, names);
    }
    out
}

fn package_ok(dir: &Path, args: &[&str]) -> (String, String) {
    let out = cnbpkg_in(dir, [&["buildpack", "package"], args].concat());
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    (ok(out), stderr)
}

/// A failing run: exit 1, one `error:` line that contains `expect`, and no file but the inputs.
fn package_fails(dir: &Path, args: &[&str], expect: &str) -> String {
    let before = list(dir);
    let out = cnbpkg_in(dir, [&["buildpack", "package"], args].concat());
    let stderr = fails(out, 1);
    let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(errors.len(), 1, "{stderr}");
    assert!(
        errors[0].contains(expect),
        "expected '{expect}' in: {stderr}"
    );
    assert_eq!(list(dir), before, "the failed run left files behind");
    stderr
}

#[test]
fn rfc_platform_folders_give_each_target_its_own_files() {
    let d = tempfile::tempdir().unwrap();
    let bp = d.path().join("bp");
    minimal_buildpack(&bp, "examples/rfc", "0.0.1", "\n[[targets]]\nos = \"linux\"\narch = \"amd64\"\n\n[[targets]]\nos = \"linux\"\narch = \"arm64\"\n");
    fs::remove_dir_all(bp.join("bin")).unwrap();
    for (f, mode) in [
        ("linux/amd64/bin/build", 0o755),
        ("linux/amd64/bin/detect", 0o755),
        ("linux/amd64/bin/foo", 0o644),
    ] {
        write_file(&bp.join(f), "x\n", mode);
    }
    for (f, mode) in [
        ("linux/arm64/foo", 0o644),
        ("linux/arm64/bin/build", 0o755),
        ("linux/arm64/bin/detect", 0o755),
        ("linux/arm64/bin/bar", 0o755),
    ] {
        write_file(&bp.join(f), "y\n", mode);
    }
    let (_, stderr) = package_ok(d.path(), &["out.cnb", "--path", "bp"]);
    assert!(stderr.contains("a multi-platform buildpack package will be created for target platforms: 'linux/amd64', 'linux/arm64'"), "{stderr}");
    let base = "/cnb/buildpacks/examples_rfc/0.0.1";
    let l = layer_listings(&d.path().join("out.cnb"));
    let expect = |extra: &[&str]| {
        let mut v: Vec<String> = [
            "/cnb/buildpacks/examples_rfc".to_string(),
            base.to_string(),
            format!("{base}/bin"),
            format!("{base}/bin/build"),
            format!("{base}/bin/detect"),
            format!("{base}/buildpack.toml"),
        ]
        .to_vec();
        v.extend(extra.iter().map(|e| format!("{base}/{e}")));
        v.sort();
        v
    };
    assert_eq!(l["linux/amd64"], expect(&["bin/foo"]));
    assert_eq!(l["linux/arm64"], expect(&["bin/bar", "foo"]));
    // Subset by --target: one manifest, straight from index.json.
    package_ok(
        d.path(),
        &["one.cnb", "--path", "bp", "--target", "linux/arm64"],
    );
    let r = PackageReader::open(&d.path().join("one.cnb")).unwrap();
    assert_eq!(r.index().manifests.len(), 1);
    assert!(cnbpkg::oci::is_manifest(&r.index().manifests[0].media_type));
    assert_eq!(r.images().unwrap()[0].config.architecture, "arm64");
}

#[test]
fn no_targets_means_linux_with_empty_architecture_and_a_tip() {
    let d = tempfile::tempdir().unwrap();
    minimal_buildpack(&d.path().join("bp"), "examples/plain", "1.0.0", "");
    let (_, stderr) = package_ok(d.path(), &["plain", "--path", "bp"]);
    assert!(
        stderr.contains("Pro tip: use --target flag OR [[targets]] in buildpack.toml"),
        "{stderr}"
    );
    let img = &PackageReader::open(&d.path().join("plain.cnb"))
        .unwrap()
        .images()
        .unwrap()[0];
    assert_eq!(
        (img.config.os.as_str(), img.config.architecture.as_str()),
        ("linux", "")
    );
    let raw = String::from_utf8(img.config_bytes.clone()).unwrap();
    assert!(raw.starts_with("{\"architecture\":\"\","), "{raw}");
    // --target only sets the platform of the same files.
    package_ok(d.path(), &["arm.cnb", "--path", "bp", "-t", "linux/arm64"]);
    let img = &PackageReader::open(&d.path().join("arm.cnb"))
        .unwrap()
        .images()
        .unwrap()[0];
    assert_eq!(img.config.architecture, "arm64");
}

#[test]
fn platform_os_is_deprecated_and_conflicts_with_target() {
    let d = tempfile::tempdir().unwrap();
    minimal_buildpack(&d.path().join("bp"), "examples/plain", "1.0.0", "");
    fs::write(
        d.path().join("package.toml"),
        "[buildpack]\nuri = \"bp\"\n\n[platform]\nos = \"linux\"\n",
    )
    .unwrap();
    let (_, stderr) = package_ok(d.path(), &["p.cnb", "--config", "package.toml"]);
    assert!(
        stderr.contains("'platform.os' field in package.toml will be deprecated"),
        "{stderr}"
    );
    package_fails(
        d.path(),
        &[
            "q.cnb",
            "--config",
            "package.toml",
            "--target",
            "linux/arm64",
        ],
        "'platform.os' and '--target' flag can not be used in conjunction",
    );
}

#[test]
fn variants_and_distros_keep_distinct_manifests() {
    let d = tempfile::tempdir().unwrap();
    let bp = d.path().join("bp");
    minimal_buildpack(
        &bp,
        "examples/distros",
        "2.0.0",
        "\n[[targets]]\nos = \"linux\"\narch = \"arm\"\nvariant = \"v6\"\n[[targets.distros]]\nname = \"ubuntu\"\nversion = \"18.01\"\n[[targets.distros]]\nname = \"ubuntu\"\nversion = \"21.01\"\n\n[[targets]]\nos = \"linux\"\narch = \"arm\"\nvariant = \"v5\"\n",
    );
    fs::remove_dir_all(bp.join("bin")).unwrap();
    for folder in [
        "linux/arm/v6/ubuntu@18.01",
        "linux/arm/v6/ubuntu@21.01",
        "linux/arm/v5",
    ] {
        write_file(
            &bp.join(folder).join("bin/build"),
            &format!("#!/bin/sh\necho {folder}\n"),
            0o755,
        );
        write_file(&bp.join(folder).join("bin/detect"), "#!/bin/sh\n", 0o755);
        write_file(
            &bp.join(folder)
                .join(folder.replace('/', "-").replace('@', "_")),
            "",
            0o644,
        );
    }
    package_ok(d.path(), &["d.cnb", "--path", "bp"]);
    let l = layer_listings(&d.path().join("d.cnb"));
    assert_eq!(l.len(), 3, "{:?}", l.keys());
    assert!(l["linux/arm/v6:18.01"]
        .iter()
        .any(|n| n.ends_with("linux-arm-v6-ubuntu_18.01")));
    assert!(l["linux/arm/v6:21.01"]
        .iter()
        .any(|n| n.ends_with("linux-arm-v6-ubuntu_21.01")));
    assert!(l["linux/arm/v5"]
        .iter()
        .any(|n| n.ends_with("linux-arm-v5")));
    // --split names keep variant and distro, so nothing is overwritten.
    package_ok(d.path(), &["s.cnb", "--path", "bp", "--split"]);
    let mut names = list(d.path());
    names.retain(|n| n.starts_with("s-"));
    assert_eq!(
        names,
        [
            "s-linux-arm-v5.cnb",
            "s-linux-arm-v6-ubuntu@18.01.cnb",
            "s-linux-arm-v6-ubuntu@21.01.cnb"
        ]
    );
}

#[test]
fn targets_path_and_its_escape() {
    let d = tempfile::tempdir().unwrap();
    let bp = d.path().join("bp");
    minimal_buildpack(
        &bp,
        "examples/paths",
        "1.0.0",
        "\n[[targets]]\nos = \"linux\"\narch = \"amd64\"\npath = \"dist/x86\"\n",
    );
    fs::rename(bp.join("bin"), d.path().join("bin-moved")).unwrap();
    write_file(&bp.join("dist/x86/bin/build"), "#!/bin/sh\n", 0o755);
    write_file(&bp.join("dist/x86/bin/detect"), "#!/bin/sh\n", 0o755);
    package_ok(d.path(), &["p.cnb", "--path", "bp"]);
    let l = layer_listings(&d.path().join("p.cnb"));
    assert!(
        l["linux/amd64"].contains(&"/cnb/buildpacks/examples_paths/1.0.0/bin/build".to_string())
    );

    let outside = d.path().join("outside");
    minimal_buildpack(&outside, "x", "1", "");
    let bp2 = d.path().join("bp2");
    minimal_buildpack(
        &bp2,
        "examples/paths",
        "1.0.0",
        "\n[[targets]]\nos = \"linux\"\narch = \"amd64\"\npath = \"../outside\"\n",
    );
    package_fails(d.path(), &["q.cnb", "--path", "bp2"], "outside");
}

#[test]
fn tgz_sources_use_platform_folders_too() {
    let d = tempfile::tempdir().unwrap();
    let tgz = d.path().join("hello-multi.tgz");
    let st = Command::new("tar")
        .arg("-czf")
        .arg(&tgz)
        .arg("-C")
        .arg(sample("hello-multi"))
        .arg(".")
        .status()
        .unwrap();
    assert!(st.success());
    package_ok(
        d.path(),
        &[
            "from-dir.cnb",
            "--path",
            sample("hello-multi").to_str().unwrap(),
        ],
    );
    package_ok(d.path(), &["from-tgz.cnb", "--path", "hello-multi.tgz"]);
    // The same layers (a .tgz's own headers — owners, times, format — are normalized away).
    assert_eq!(
        fs::read(d.path().join("from-dir.cnb")).unwrap(),
        fs::read(d.path().join("from-tgz.cnb")).unwrap()
    );
}

/// Extract `cnb/buildpacks/<id>/<version>/` of a gzip layer into `dest`; returns `id/version`.
fn extract_module(r: &PackageReader, layer: &cnbpkg::oci::Descriptor, dest: &Path) -> String {
    let mut archive = tar::Archive::new(flate2::read::MultiGzDecoder::new(
        r.open_blob(&layer.digest).unwrap(),
    ));
    let mut id_dir = String::new();
    fs::create_dir_all(dest).unwrap();
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let path = String::from_utf8_lossy(&entry.path_bytes())
            .trim_start_matches('/')
            .to_string();
        let parts: Vec<&str> = path.splitn(5, '/').collect();
        if parts.len() < 4 {
            continue;
        }
        id_dir = format!("{}/{}", parts[2], parts[3]);
        if parts.len() == 5 {
            let target = dest.join(parts[4]);
            if entry.header().entry_type().is_dir() {
                fs::create_dir_all(&target).unwrap();
            } else {
                let mut data = String::new();
                entry.read_to_string(&mut data).unwrap();
                write_file(&target, &data, entry.header().mode().unwrap());
            }
        }
    }
    id_dir
}

#[test]
fn repackaged_pack_buildpacks_have_pack_identical_layers_and_label_entries() {
    let fixture = repo().join("testdata/fixtures/pack/hello-universe.cnb");
    let r = PackageReader::open(&fixture).unwrap();
    let img = &r.images().unwrap()[0];
    let pack_label = img.config.labels()["io.buildpacks.buildpack.layers"].clone();
    let d = tempfile::tempdir().unwrap();
    let mut dirs = Vec::new();
    for (i, layer) in img.manifest.layers.iter().enumerate() {
        let dir = d.path().join(format!("bp{i}"));
        let id_dir = extract_module(&r, layer, &dir);
        dirs.push((dir, id_dir));
    }
    // The composite (the layer without bin/) with the other two as dependencies.
    let composite = dirs
        .iter()
        .position(|(dir, _)| !dir.join("bin").exists())
        .unwrap();
    let deps: Vec<String> = dirs
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != composite)
        .map(|(_, (dir, _))| {
            format!(
                "[[dependencies]]\nuri = \"{}\"\n",
                dir.file_name().unwrap().to_str().unwrap()
            )
        })
        .collect();
    let config = format!(
        "[buildpack]\nuri = \"bp{composite}\"\n\n{}",
        deps.join("\n")
    );
    fs::write(d.path().join("package.toml"), config).unwrap();
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
    let ours = &PackageReader::open(&d.path().join("universe.cnb"))
        .unwrap()
        .images()
        .unwrap()[0];
    // Every layer, and so every diffID, is pack's (our order is sorted; pack's is map order).
    let mut theirs = img.config.rootfs.diff_ids.clone();
    theirs.sort();
    let mut mine = ours.config.rootfs.diff_ids.clone();
    mine.sort();
    assert_eq!(mine, theirs);
    // Label entries: pack's verbatim, except that this fixture was written in 2020, before pack
    // added `name` (and `homepage`) to the entries; pack 0.40 writes them (see the extension
    // fixture test), and so do we.
    let our_label = ours.config.labels()["io.buildpacks.buildpack.layers"].clone();
    let mut without_names = our_label.clone();
    for (dir, _) in &dirs {
        let name = fs::read_to_string(dir.join("buildpack.toml"))
            .unwrap()
            .lines()
            .find_map(|l| {
                l.strip_prefix("name = ")
                    .map(|v| v.trim_matches('"').to_string())
            })
            .unwrap();
        let field = format!(",\"name\":\"{name}\"");
        assert!(our_label.contains(&field), "{our_label}");
        without_names = without_names.replace(&field, "");
    }
    assert_eq!(without_names, pack_label);
    // The metadata label too.
    let meta = &ours.config.labels()["io.buildpacks.buildpackage.metadata"];
    assert_eq!(
        meta,
        &img.config.labels()["io.buildpacks.buildpackage.metadata"].replace(
            "\"version\"",
            "\"name\":\"Hello Universe Buildpack\",\"version\""
        )
    );
}

#[test]
fn repackaged_extension_is_byte_identical_to_packs_layer_and_labels() {
    let fixture = repo().join("testdata/fixtures/pack/tree-extension.cnb");
    let r = PackageReader::open(&fixture).unwrap();
    let img = &r.images().unwrap()[0];
    let d = tempfile::tempdir().unwrap();
    let src = d.path().join("src");
    let layer = &img.manifest.layers[0];
    let mut archive = tar::Archive::new(flate2::read::MultiGzDecoder::new(
        r.open_blob(&layer.digest).unwrap(),
    ));
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let path = String::from_utf8_lossy(&entry.path_bytes())
            .trim_start_matches('/')
            .to_string();
        let Some(rel) = path.strip_prefix("cnb/extensions/samples-tree/0.0.1/") else {
            continue;
        };
        if entry.header().entry_type().is_file() {
            let mut data = String::new();
            entry.read_to_string(&mut data).unwrap();
            write_file(&src.join(rel), &data, entry.header().mode().unwrap());
        }
    }
    let out = d.path().join("ext.cnb");
    ok(cnbpkg([
        "buildpack",
        "package",
        out.to_str().unwrap(),
        "--path",
        src.to_str().unwrap(),
    ]));
    let ours = &PackageReader::open(&out).unwrap().images().unwrap()[0];
    assert_eq!(ours.config.rootfs.diff_ids, img.config.rootfs.diff_ids);
    for label in [
        "io.buildpacks.extension.layers",
        "io.buildpacks.buildpackage.metadata",
    ] {
        assert_eq!(
            ours.config.labels()[label],
            img.config.labels()[label],
            "{label}"
        );
    }
}

#[test]
fn bad_input_is_one_clear_error_and_writes_nothing() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path();
    fs::create_dir(p.join("empty")).unwrap();
    package_fails(p, &["o.cnb", "--path", "empty"], "no buildpack.toml");

    minimal_buildpack(&p.join("malformed"), "x", "1", "[buildpack\n");
    package_fails(p, &["o.cnb", "--path", "malformed"], "buildpack.toml");

    copy_tree(&sample("hello-multi"), &p.join("nobuild"));
    fs::remove_file(p.join("nobuild/linux/arm64/bin/build")).unwrap();
    package_fails(p, &["o.cnb", "--path", "nobuild"], "linux/arm64");

    let win = p.join("win");
    minimal_buildpack(
        &win,
        "x",
        "1",
        "\n[[targets]]\nos = \"windows\"\narch = \"amd64\"\n",
    );
    package_fails(
        p,
        &["o.cnb", "--path", "win"],
        "bin/build.bat or bin/build.exe",
    );

    package_fails(
        p,
        &["o.cnb", "--path", "nobuild", "--target", "linux/nosucharch"],
        "unknown target: 'linux/nosucharch'",
    );
    package_fails(
        p,
        &["o.cnb", "--path", "nobuild", "--target", "linux"],
        "unknown target",
    );
    package_fails(
        p,
        &[
            "o.cnb",
            "--path",
            "nobuild",
            "--target",
            "linux/amd64:@22.04",
        ],
        "cannot be specified without distro's name",
    );

    minimal_buildpack(&p.join("order"), "x", "1", "\n[[targets]]\nos = \"linux\"\n\n[[order]]\n[[order.group]]\nid = \"a\"\nversion = \"1\"\n");
    package_fails(
        p,
        &["o.cnb", "--path", "order"],
        "cannot have both 'targets'/'stacks' and an 'order' defined",
    );

    minimal_buildpack(&p.join("loop"), "x", "1", "");
    std::os::unix::fs::symlink("loop-b", p.join("loop/loop-a")).unwrap();
    std::os::unix::fs::symlink("loop-a", p.join("loop/loop-b")).unwrap();
    package_fails(p, &["o.cnb", "--path", "loop"], "loop");

    minimal_buildpack(&p.join("loopdir"), "x", "1", "");
    std::os::unix::fs::symlink("linux", p.join("loopdir/linux")).unwrap();
    package_fails(p, &["o.cnb", "--path", "loopdir"], "loop");

    fs::write(p.join("a-file"), "x").unwrap();
    package_fails(p, &["a-file/o.cnb", "--path", "loop"], "a-file");
    package_fails(
        p,
        &[
            "missing-dir/o.cnb",
            "--path",
            "nobuild",
            "-t",
            "linux/amd64",
        ],
        "missing-dir",
    );

    fs::write(
        p.join("package.toml"),
        "[buildpack]\nuri = \"nobuild\"\nextra = 1\n",
    )
    .unwrap();
    package_fails(
        p,
        &["o.cnb", "--config", "package.toml"],
        "unknown configuration element",
    );
}

#[test]
fn flag_misuse_is_a_usage_error() {
    let d = tempfile::tempdir().unwrap();
    let out = cnbpkg_in(
        d.path(),
        [
            "buildpack",
            "package",
            "o.cnb",
            "--path",
            ".",
            "--config",
            "package.toml",
        ],
    );
    let stderr = fails(out, 2);
    assert!(
        stderr.contains("--config and --path cannot be used together"),
        "{stderr}"
    );
    fails(cnbpkg_in(d.path(), ["buildpack", "package"]), 2);
    fails(
        cnbpkg_in(
            d.path(),
            ["buildpack", "package", "o.cnb", "--compression", "lz4"],
        ),
        2,
    );
}

#[test]
fn an_existing_output_is_replaced_only_by_a_complete_one() {
    let d = tempfile::tempdir().unwrap();
    copy_tree(&sample("hello-multi"), &d.path().join("bp"));
    let amd64 = [
        "buildpack",
        "package",
        "o.cnb",
        "--path",
        "bp",
        "-t",
        "linux/amd64",
    ];
    ok(cnbpkg_in(d.path(), amd64));
    let previous = fs::read(d.path().join("o.cnb")).unwrap();
    fs::remove_file(d.path().join("bp/linux/arm64/bin/detect")).unwrap();
    fails(
        cnbpkg_in(d.path(), ["buildpack", "package", "o.cnb", "--path", "bp"]),
        1,
    );
    assert_eq!(fs::read(d.path().join("o.cnb")).unwrap(), previous);
    fs::write(d.path().join("bp/linux/amd64/extra"), "changed").unwrap();
    ok(cnbpkg_in(
        d.path(),
        [
            "buildpack",
            "package",
            "o.cnb",
            "--path",
            "bp",
            "-t",
            "linux/amd64",
        ],
    ));
    assert!(PackageReader::open(&d.path().join("o.cnb")).is_ok());
    assert_ne!(fs::read(d.path().join("o.cnb")).unwrap(), previous);
}

#[test]
fn interrupt_leaves_no_output_and_no_temp_files() {
    let d = tempfile::tempdir().unwrap();
    let bp = d.path().join("bp");
    minimal_buildpack(&bp, "examples/big", "1.0.0", "");
    // 256 MiB of poorly compressible bytes: gzip on one thread takes seconds.
    let mut f = fs::File::create(bp.join("blob.bin")).unwrap();
    Rng::new(0x2545F4914F6CDD1D).write_words(&mut f, (256 << 20) / 8);
    drop(f);
    let out_dir = d.path().join("out");
    fs::create_dir(&out_dir).unwrap();
    let mut child = cnbpkg_command()
        .args([
            "buildpack",
            "package",
            "o.cnb",
            "--path",
            bp.to_str().unwrap(),
            "--jobs",
            "1",
            "-q",
        ])
        .current_dir(&out_dir)
        .spawn()
        .unwrap();
    // Wait (bounded) until the partial output exists, then interrupt.
    let mut seen = false;
    for _ in 0..600 {
        if !list(&out_dir).is_empty() {
            seen = true;
            break;
        }
        if child.try_wait().unwrap().is_some() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    assert!(seen, "the partial output never appeared");
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let status = child.wait().unwrap();
    assert!(!status.success());
    assert_eq!(list(&out_dir), Vec::<String>::new(), "interrupt left files");
}
