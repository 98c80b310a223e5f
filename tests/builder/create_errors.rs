//! Every refusal of `builder create`: exit status 1, one clear `error:` line saying what is wrong
//! (pack's message where pack has one), and nothing written where the output would go, not
//! even a temporary file.

use std::fs;
use std::path::Path;

use crate::support::builder::*;
use crate::support::lifecycle::{gzip, lifecycle_tgz, release_entries, tar_of};

/// The sound inputs: the two-platform build image, buildpack `bp` for both platforms, both
/// lifecycle archives.
fn inputs(dir: &Path) {
    default_build_image(dir);
    simple_buildpack(dir, "bp", "acme/a", "1.0.0", "0.10", &ARCHES_TARGETS);
    for arch in ARCHES {
        lifecycle_tgz(dir, arch, "0.20.5");
    }
}

const ARCHES_TARGETS: [&str; 2] = ["linux/amd64", "linux/arm64"];
const EACH: &str = "lifecycle-v0.20.5+linux.{arch}.tgz";

#[test]
fn a_build_image_without_cnb_user_id_is_refused_with_packs_message() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    inputs(d);
    let mut bases: Vec<BaseImage> = ARCHES.iter().map(|a| BaseImage::new(a)).collect();
    bases[1].uid = None;
    build_image(d, "no-uid", &bases);
    let cfg = simple_builder_toml(d, "no-uid", EACH, &targets_toml(&ARCHES));
    refused(d, &cfg, &[], &["missing required env var 'CNB_USER_ID'"]);
    bases[1].uid = Some("1000".into());
    bases[1].gid = Some("staff".into());
    build_image(d, "bad-gid", &bases);
    let cfg = simple_builder_toml(d, "bad-gid", EACH, &targets_toml(&ARCHES));
    refused(
        d,
        &cfg,
        &[],
        &["'CNB_GROUP_ID'", "staff", "should be an integer"],
    );
}

#[test]
fn a_build_image_of_another_distro_than_the_target_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    inputs(d);
    let targets = "\n[[targets]]\nos = \"linux\"\narch = \"amd64\"\n[[targets.distros]]\nname = \"ubuntu\"\nversion = \"24.04\"\n";
    let cfg = simple_builder_toml(d, "build-image", EACH, targets);
    refused(d, &cfg, &[], &["22.04", "24.04"]);
    // The same through --target, which replaces the config's targets.
    let cfg = simple_builder_toml(d, "build-image", EACH, "");
    refused(
        d,
        &cfg,
        &["--target", "linux/arm64:debian@12"],
        &["ubuntu", "debian"],
    );
}

#[test]
fn a_target_no_lifecycle_serves_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    inputs(d);
    // One archive for two targets: the arm64 target has no lifecycle (pack would use x86-64).
    let cfg = simple_builder_toml(
        d,
        "build-image",
        "lifecycle-v0.20.5+linux.x86-64.tgz",
        &targets_toml(&ARCHES),
    );
    refused(d, &cfg, &[], &["arm64", "amd64"]);
    // An archive named for x86-64 holding arm64 binaries serves arm64, not the amd64 target.
    let wrong = d.join("wrong");
    lifecycle_tgz(&wrong, "arm64", "0.20.5");
    fs::rename(
        wrong.join("lifecycle-v0.20.5+linux.arm64.tgz"),
        wrong.join("lifecycle-v0.20.5+linux.x86-64.tgz"),
    )
    .unwrap();
    let cfg = simple_builder_toml(
        d,
        "build-image",
        "wrong/lifecycle-v0.20.5+linux.x86-64.tgz",
        "",
    );
    refused(d, &cfg, &["--target", "linux/amd64"], &["arm64", "amd64"]);
    // A lifecycle image with only an amd64 image.
    lifecycle_image(d, "lc-amd64", &["amd64"], &[]);
    let cfg = simple_builder_toml(d, "build-image", "lc-amd64", &targets_toml(&ARCHES));
    refused(d, &cfg, &[], &["arm64"]);
}

#[test]
fn a_lifecycle_missing_a_binary_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    inputs(d);
    let entries: Vec<_> = release_entries("amd64", "0.20.5")
        .into_iter()
        .filter(|(name, _)| name != "lifecycle/exporter")
        .collect();
    fs::write(d.join("no-exporter.tgz"), gzip(&tar_of(&entries))).unwrap();
    let cfg = simple_builder_toml(d, "build-image", "no-exporter.tgz", "");
    refused(d, &cfg, &["--target", "linux/amd64"], &["exporter"]);
    lifecycle_image(d, "lc-no-creator", &ARCHES, &["creator"]);
    let cfg = simple_builder_toml(d, "build-image", "lc-no-creator", "");
    refused(d, &cfg, &["--target", "linux/arm64"], &["creator"]);
}

#[test]
fn a_buildpack_that_does_not_support_the_target_is_refused_with_packs_message() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    inputs(d);
    fs::remove_dir_all(d.join("bp")).unwrap();
    simple_buildpack(d, "bp", "acme/a", "1.0.0", "0.10", &["linux/amd64"]);
    let cfg = simple_builder_toml(d, "build-image", EACH, &targets_toml(&ARCHES));
    refused(
        d,
        &cfg,
        &[],
        &["unable to satisfy target os/arch constraints", "acme/a"],
    );
}

#[test]
fn a_buildpack_api_the_lifecycle_lacks_is_refused_with_packs_message() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    inputs(d);
    fs::remove_dir_all(d.join("bp")).unwrap();
    simple_buildpack(d, "bp", "acme/a", "1.0.0", "0.99", &ARCHES_TARGETS);
    let cfg = simple_builder_toml(d, "build-image", EACH, &targets_toml(&ARCHES));
    refused(
        d,
        &cfg,
        &[],
        &["buildpack 'acme/a@1.0.0' (Buildpack API 0.99) is incompatible with lifecycle '0.20.5'"],
    );
}

#[test]
fn an_unknown_builder_toml_key_is_refused_with_packs_message() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    inputs(d);
    let cfg = simple_builder_toml(d, "build-image", EACH, "");
    let text = fs::read_to_string(&cfg).unwrap();
    fs::write(&cfg, format!("colour = \"blue\"\n{text}")).unwrap();
    refused(d, &cfg, &[], &["unknown configuration element 'colour' in"]);
    // A key inside a table is named by its path.
    fs::write(&cfg, format!("{text}shade = \"dark\"\n")).unwrap();
    refused(
        d,
        &cfg,
        &[],
        &["unknown configuration element 'lifecycle.shade'"],
    );
}

#[test]
fn a_windows_target_is_refused_as_not_supported() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    inputs(d);
    let cfg = simple_builder_toml(d, "build-image", EACH, "");
    refused(
        d,
        &cfg,
        &["--target", "windows/amd64"],
        &["windows", "not supported"],
    );
}

#[test]
fn a_reference_missing_from_the_store_names_the_pull_command() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    inputs(d);
    let cfg = simple_builder_toml(
        d,
        "registry.example.com/acme/build:1",
        EACH,
        &targets_toml(&ARCHES),
    );
    refused(
        d,
        &cfg,
        &[],
        &["registry.example.com/acme/build:1", "cnbpkg pull"],
    );
}
