//! `builder create` against hostile and careless inputs: each test is a defect found by
//! attacking the real binary, kept as its regression test.

use std::fs;
use std::path::Path;

use crate::support::builder::*;
use crate::support::lifecycle::lifecycle_tgz;

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn a_lifecycle_image_archive_is_not_replaced_by_the_output() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    default_build_image(d);
    simple_buildpack(d, "bp", "acme/a", "1.0.0", "0.10", &["linux/amd64"]);
    let layout = lifecycle_image(d, "lc", &["amd64"], &[]);
    let lc = archive(&layout, &d.join("lc.tar"));
    let before = fs::read(&lc).unwrap();
    let cfg = simple_builder_toml(d, "build-image", "lc.tar", &targets_toml(&["amd64"]));
    let out = create(&cfg, &lc, &[]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("is also an input"), "{err}");
    assert_eq!(
        fs::read(&lc).unwrap(),
        before,
        "the lifecycle image is kept"
    );
}

#[test]
fn a_missing_build_image_names_the_store_in_the_pull_command() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    simple_buildpack(d, "bp", "acme/a", "1.0.0", "0.10", &["linux/amd64"]);
    lifecycle_tgz(d, "amd64", "0.20.5");
    let store = d.join("my store");
    let cfg = simple_builder_toml(
        d,
        "example.com/build:1",
        "lifecycle-v0.20.5+linux.x86-64.tgz",
        &targets_toml(&["amd64"]),
    );
    let store_arg = store.to_str().unwrap();
    let out = create(&cfg, &d.join("b.cnb"), &["--store", store_arg]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    let want = format!("cnbpkg pull --store '{store_arg}' example.com/build:1");
    assert!(err.contains(&want), "{want:?} missing from:\n{err}");
    assert!(!d.join("b.cnb").exists());
    // The lifecycle image likewise, its reference quoted for the shell.
    default_build_image(d);
    let cfg = simple_builder_toml(
        d,
        "build-image",
        "docker://example.com/lifecycle:1",
        &targets_toml(&["amd64"]),
    );
    let out = create(&cfg, &d.join("b.cnb"), &["--store", store_arg]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains(&format!("--store '{store_arg}'")), "{err}");
    assert!(!d.join("b.cnb").exists());
}

#[test]
fn a_corrupt_base_layer_is_a_digest_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let layout = default_build_image(d);
    simple_buildpack(d, "bp", "acme/a", "1.0.0", "0.10", &["linux/amd64"]);
    lifecycle_tgz(d, "amd64", "0.20.5");
    let p = read_platform(&layout, "amd64", &d.join("work"));
    let digest = p.layer_digests()[0].clone();
    let blob = layout
        .join("blobs/sha256")
        .join(digest.trim_start_matches("sha256:"));
    let mut bytes = fs::read(&blob).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    fs::write(&blob, bytes).unwrap();
    let cfg = simple_builder_toml(
        d,
        "build-image",
        "lifecycle-v0.20.5+linux.x86-64.tgz",
        &targets_toml(&["amd64"]),
    );
    refused(d, &cfg, &[], &[digest.trim_start_matches("sha256:")]);
}

#[test]
fn two_targets_served_by_one_build_image_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    default_build_image(d);
    simple_buildpack(d, "bp", "acme/a", "1.0.0", "0.10", &["linux/amd64"]);
    lifecycle_tgz(d, "amd64", "0.20.5");
    let cfg = simple_builder_toml(d, "build-image", "lifecycle-v0.20.5+linux.x86-64.tgz", "");
    let out_dir = d.join("out");
    fs::create_dir(&out_dir).unwrap();
    for split in [false, true] {
        let mut args = vec![
            "--target",
            "linux/amd64",
            "--target",
            "linux/amd64:ubuntu@22.04",
        ];
        if split {
            args.push("--split");
        }
        let out = create(&cfg, &out_dir.join("b.cnb"), &args);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "split {split}: {err}");
        assert!(err.contains("both served by the same image"), "{err}");
        assert_eq!(tree(&out_dir), Vec::<String>::new(), "{err}");
    }
}

/// The default build image's amd64 image as a layout of its own (`dir/name`), its manifest and
/// config edited by `edit` (manifest, config), index.json listing it with `platform`.
fn lying_build_image(
    dir: &Path,
    name: &str,
    platform: serde_json::Value,
    edit: &dyn Fn(&mut serde_json::Value, &mut serde_json::Value),
) -> std::path::PathBuf {
    let source = dir.join("build-image");
    if !source.exists() {
        default_build_image(dir);
    }
    let layout = dir.join(name);
    crate::support::files::copy_tree(&source, &layout);
    let (_, desc) = platform_manifests(&layout)
        .into_iter()
        .find(|(a, _)| a == "amd64")
        .unwrap();
    let mut manifest = read_blob_json(&layout, desc["digest"].as_str().unwrap());
    let mut config = read_blob_json(&layout, manifest["config"]["digest"].as_str().unwrap());
    edit(&mut manifest, &mut config);
    let (cd, cs) = put_blob(&layout, serde_json::to_vec(&config).unwrap());
    manifest["config"]["digest"] = cd.into();
    manifest["config"]["size"] = cs.into();
    let (md, ms) = put_blob(&layout, serde_json::to_vec(&manifest).unwrap());
    let top = serde_json::json!({
        "schemaVersion": 2,
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": md,
            "size": ms,
            "platform": platform,
        }],
    });
    fs::write(layout.join("index.json"), serde_json::to_vec(&top).unwrap()).unwrap();
    layout
}

fn amd64() -> serde_json::Value {
    serde_json::json!({"os": "linux", "architecture": "amd64"})
}

#[test]
fn a_build_image_listed_as_another_platform_than_its_config_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    simple_buildpack(
        d,
        "bp",
        "acme/a",
        "1.0.0",
        "0.10",
        &["linux/amd64", "linux/arm64"],
    );
    lifecycle_tgz(d, "amd64", "0.20.5");
    lifecycle_tgz(d, "arm64", "0.20.5");
    let arm64 = serde_json::json!({"os": "linux", "architecture": "arm64"});
    lying_build_image(d, "lying", arm64, &|_, _| {});
    let cfg = simple_builder_toml(d, "lying", "lifecycle-v0.20.5+linux.{arch}.tgz", "");
    refused(
        d,
        &cfg,
        &[],
        &["as linux/arm64, but its config says linux/amd64"],
    );
}

#[test]
fn a_lifecycle_whose_binaries_are_a_cycle_of_links_is_refused() {
    use crate::support::lifecycle::{gzip, release_entries, tar_of, ReleaseEntry};
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    default_build_image(d);
    simple_buildpack(d, "bp", "acme/a", "1.0.0", "0.10", &["linux/amd64"]);
    // The multicall binary a link to `detector`, which links back to it.
    let mut entries = release_entries("amd64", "0.20.5");
    for (n, e) in entries.iter_mut() {
        if n == "lifecycle/lifecycle" {
            *e = ReleaseEntry::Symlink("detector".into());
        }
    }
    fs::write(d.join("cycle.tgz"), gzip(&tar_of(&entries))).unwrap();
    let cfg = simple_builder_toml(d, "build-image", "cycle.tgz", &targets_toml(&["amd64"]));
    refused(d, &cfg, &[], &["a cycle of links"]);
}

/// Kills the child when a test fails before waiting for it.
struct Running(std::process::Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn a_builder_interrupted_while_writing_a_layer_leaves_nothing() {
    use std::io::BufRead;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    default_build_image(d);
    lifecycle_tgz(d, "amd64", "0.20.5");
    let bp = simple_buildpack(d, "bp", "acme/a", "1.0.0", "0.10", &["linux/amd64"]);
    // Sparse, quickly made; compressing it takes a while.
    fs::File::create(bp.join("zeros"))
        .unwrap()
        .set_len(512 << 20)
        .unwrap();
    let cfg = simple_builder_toml(
        d,
        "build-image",
        "lifecycle-v0.20.5+linux.x86-64.tgz",
        &targets_toml(&["amd64"]),
    );
    let out_dir = d.join("out");
    fs::create_dir(&out_dir).unwrap();
    for (signal, format) in [(libc::SIGTERM, "file"), (libc::SIGINT, "layout")] {
        let before = tree(d);
        let mut cmd = crate::support::child::cnbpkg_command();
        cmd.args(create_args(
            &cfg,
            &out_dir.join("b"),
            &["--format", format, "-j", "1"],
        ));
        let child = cmd
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut child = Running(child);
        let pid = child.0.id() as i32;
        let mut lines = std::io::BufReader::new(child.0.stderr.take().unwrap()).lines();
        // The lifecycle layer is written before the buildpack's: the buildpack's is under way.
        let mut seen = Vec::new();
        loop {
            let Some(Ok(line)) = lines.next() else {
                panic!("ended before the lifecycle layer: {seen:?}");
            };
            let done = line.contains("Built layer lifecycle");
            seen.push(line);
            if done {
                break;
            }
        }
        unsafe {
            libc::kill(pid, signal);
        }
        let rest: Vec<String> = lines.map_while(|l| l.ok()).collect();
        let status = child.0.wait().unwrap();
        assert_eq!(status.code(), Some(130), "{signal}: {seen:?} {rest:?}");
        assert_eq!(tree(d), before, "nothing left behind after signal {signal}");
    }
}

#[test]
fn a_file_output_inside_an_input_layout_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let build = default_build_image(d);
    simple_buildpack(d, "bp", "acme/a", "1.0.0", "0.10", &["linux/amd64"]);
    lifecycle_tgz(d, "amd64", "0.20.5");
    let cfg = simple_builder_toml(
        d,
        "build-image",
        "lifecycle-v0.20.5+linux.x86-64.tgz",
        &targets_toml(&["amd64"]),
    );
    let index = build.join("index.json");
    let before = fs::read(&index).unwrap();
    let out = create(&cfg, &index, &[]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert_eq!(
        fs::read(&index).unwrap(),
        before,
        "the build image is kept: {err}"
    );
}

#[test]
fn a_base_label_claiming_a_layer_the_base_lacks_does_not_drop_the_buildpack() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    default_build_image(d);
    simple_buildpack(d, "bp", "acme/a", "1.0.0", "0.10", &["linux/amd64"]);
    lifecycle_tgz(d, "amd64", "0.20.5");
    let lc = "lifecycle-v0.20.5+linux.x86-64.tgz";
    let cfg = simple_builder_toml(d, "build-image", lc, &targets_toml(&["amd64"]));
    let first = d.join("first.cnb");
    assert!(create(&cfg, &first, &[]).status.success());
    let p = read_platform(&as_layout(&first, &d.join("w1")), "amd64", &d.join("w2"));
    let label = p.label("io.buildpacks.buildpack.layers");
    // A build image claiming, in its labels only, to hold that buildpack layer already.
    lying_build_image(d, "lying", amd64(), &|_, c| {
        c["config"]["Labels"]["io.buildpacks.buildpack.layers"] = label.clone().into();
    });
    let cfg = simple_builder_toml(d, "lying", lc, &targets_toml(&["amd64"]));
    let out = d.join("second.cnb");
    let o = create(&cfg, &out, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v = crate::support::child::cnbpkg(["verify".as_ref(), out.as_os_str()]);
    assert!(
        v.status.success(),
        "{}{}",
        String::from_utf8_lossy(&v.stdout),
        stderr(&v)
    );
    let p2 = read_platform(&as_layout(&out, &d.join("w3")), "amd64", &d.join("w4"));
    assert!(
        p2.rootfs
            .join("cnb/buildpacks/acme_a/1.0.0/buildpack.toml")
            .exists(),
        "the buildpack is on the builder"
    );
    // A module the base's metadata claims, with no layer of the base, is not kept either.
    let meta = p.label("io.buildpacks.builder.metadata");
    let claimed = meta.replace("\"acme/a\"", "\"acme/ghost\"");
    assert_ne!(meta, claimed);
    lying_build_image(d, "ghost", amd64(), &|_, c| {
        c["config"]["Labels"]["io.buildpacks.builder.metadata"] = claimed.clone().into();
    });
    let cfg = simple_builder_toml(d, "ghost", lc, &targets_toml(&["amd64"]));
    let out = d.join("third.cnb");
    let o = create(&cfg, &out, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let p3 = read_platform(&as_layout(&out, &d.join("w5")), "amd64", &d.join("w6"));
    let meta = p3.label("io.buildpacks.builder.metadata");
    assert!(!meta.contains("acme/ghost"), "{meta}");
}

#[test]
fn a_builder_on_a_builder_compressed_otherwise_has_no_unreferenced_blob() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    default_build_image(d);
    simple_buildpack(d, "bp", "acme/a", "1.0.0", "0.10", &["linux/amd64"]);
    lifecycle_tgz(d, "amd64", "0.20.5");
    let lc = "lifecycle-v0.20.5+linux.x86-64.tgz";
    let cfg = simple_builder_toml(d, "build-image", lc, &targets_toml(&["amd64"]));
    let first = d.join("first.cnb");
    let o = create(&cfg, &first, &["--compression", "zstd"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let cfg = simple_builder_toml(d, "first.cnb", lc, &targets_toml(&["amd64"]));
    let second = d.join("second.cnb");
    let o = create(&cfg, &second, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v = crate::support::child::cnbpkg(["verify".as_ref(), second.as_os_str()]);
    assert!(
        v.status.success(),
        "{}{}",
        String::from_utf8_lossy(&v.stdout),
        stderr(&v)
    );
}

#[test]
fn a_build_image_whose_config_lies_about_a_layer_diff_id_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    simple_buildpack(d, "bp", "acme/a", "1.0.0", "0.10", &["linux/amd64"]);
    lifecycle_tgz(d, "amd64", "0.20.5");
    let wrong = format!("sha256:{}", "ab".repeat(32));
    lying_build_image(d, "lying", amd64(), &|_, c| {
        c["rootfs"]["diff_ids"][0] = wrong.clone().into();
    });
    let cfg = simple_builder_toml(
        d,
        "lying",
        "lifecycle-v0.20.5+linux.x86-64.tgz",
        &targets_toml(&["amd64"]),
    );
    refused(d, &cfg, &[], &[&wrong]);
}

#[test]
fn a_build_env_name_that_makes_a_whiteout_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    default_build_image(d);
    simple_buildpack(d, "bp", "acme/a", "1.0.0", "0.10", &["linux/amd64"]);
    lifecycle_tgz(d, "amd64", "0.20.5");
    for name in [".wh..wh..opq", ".wh.PATH"] {
        let env = format!("[[build.env]]\nname = \"{name}\"\nvalue = \"v\"\n");
        let cfg = simple_builder_toml(
            d,
            "build-image",
            "lifecycle-v0.20.5+linux.x86-64.tgz",
            &format!("{}\n{env}", targets_toml(&["amd64"])),
        );
        let out = create(&cfg, &d.join("b.cnb"), &[]);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(1), "{err}");
        assert!(err.contains("whiteout"), "{err}");
        assert!(!d.join("b.cnb").exists());
    }
}

#[test]
fn a_build_image_config_key_differing_only_in_case_does_not_reach_the_builder() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    simple_buildpack(d, "bp", "acme/a", "1.0.0", "0.10", &["linux/amd64"]);
    lifecycle_tgz(d, "amd64", "0.20.5");
    lying_build_image(d, "cased", amd64(), &|_, c| {
        // Go's decoder matches keys without regard to case: these would stand for the
        // builder's own fields.
        c["Architecture"] = "arm64".into();
        c["RootFS"] = serde_json::json!({"type": "layers", "diff_ids": []});
        c["Config"] = serde_json::json!({"User": "root"});
    });
    let cfg = simple_builder_toml(
        d,
        "cased",
        "lifecycle-v0.20.5+linux.x86-64.tgz",
        &targets_toml(&["amd64"]),
    );
    let out = d.join("b.cnb");
    let o = create(&cfg, &out, &[]);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("differ only in case"), "{err}");
    assert!(!out.exists());
    // In the runtime part, against a key the builder sets.
    lying_build_image(d, "cased-runtime", amd64(), &|_, c| {
        c["config"]["workingDir"] = "/elsewhere".into();
    });
    let cfg = simple_builder_toml(
        d,
        "cased-runtime",
        "lifecycle-v0.20.5+linux.x86-64.tgz",
        &targets_toml(&["amd64"]),
    );
    let o = create(&cfg, &out, &[]);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains("'config.WorkingDir' and 'config.workingDir'"),
        "{err}"
    );
    assert!(!out.exists());
}

#[test]
fn an_output_inside_a_buildpack_directory_is_left_out_of_its_layer() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    default_build_image(d);
    simple_buildpack(d, "bp", "acme/a", "1.0.0", "0.10", &["linux/amd64"]);
    lifecycle_tgz(d, "amd64", "0.20.5");
    let cfg = simple_builder_toml(
        d,
        "build-image",
        "lifecycle-v0.20.5+linux.x86-64.tgz",
        &targets_toml(&["amd64"]),
    );
    let outside = d.join("outside.cnb");
    assert!(create(&cfg, &outside, &[]).status.success());
    for (out, extra) in [
        (d.join("bp/inside.cnb"), vec![]),
        (d.join("bp/layout"), vec!["--format", "layout"]),
    ] {
        let o = create(&cfg, &out, &extra);
        assert!(o.status.success(), "{}", stderr(&o));
        let a = read_platform(&as_layout(&outside, &d.join("wa")), "amd64", &d.join("wb"));
        let layout = if out.is_dir() {
            out.clone()
        } else {
            as_layout(&out, &d.join("wc"))
        };
        let b = read_platform(&layout, "amd64", &d.join("wd"));
        assert_eq!(a.layer_digests(), b.layer_digests(), "{}", out.display());
        for w in ["wa", "wb", "wc", "wd"] {
            let _ = fs::remove_dir_all(d.join(w));
        }
        // Once written, an output is a file of the buildpack like any other.
        let _ = fs::remove_file(&out);
        let _ = fs::remove_dir_all(&out);
    }
}

#[test]
fn a_lifecycle_entry_that_makes_a_whiteout_is_refused() {
    use crate::support::lifecycle::{gzip, release_entries, tar_of, ReleaseEntry};
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    default_build_image(d);
    simple_buildpack(d, "bp", "acme/a", "1.0.0", "0.10", &["linux/amd64"]);
    let mut entries = release_entries("amd64", "0.20.5");
    entries.push((
        "lifecycle/.wh..wh..opq".into(),
        ReleaseEntry::File(0o644, Vec::new()),
    ));
    fs::write(d.join("wh.tgz"), gzip(&tar_of(&entries))).unwrap();
    let cfg = simple_builder_toml(d, "build-image", "wh.tgz", &targets_toml(&["amd64"]));
    let out = create(&cfg, &d.join("b.cnb"), &[]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("whiteout"), "{err}");
    assert!(!d.join("b.cnb").exists());
}
