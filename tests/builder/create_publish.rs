//! A created builder leaves the machine as it is: reproducible to the byte whatever the umask,
//! output directory and thread count, pushed to a real registry with `push` and read back there
//! per platform by skopeo, the same manifests and configs as in the file.

use std::fs;
use std::path::Path;

use crate::support::builder::*;
use crate::support::child::{self, ok};
use crate::support::lifecycle::lifecycle_tgz;
use crate::support::registry::Registry;
use crate::support::skopeo_raw;

/// The inputs and builder.toml of a two-target builder in `dir` (lifecycle archive per
/// architecture, a platform-folder buildpack).
fn inputs(dir: &Path) -> std::path::PathBuf {
    default_build_image(dir);
    platform_folder_buildpack(dir, "bp");
    for arch in ARCHES {
        lifecycle_tgz(dir, arch, "0.20.5");
    }
    write_builder_toml(
        dir,
        &format!(
            r#"[[buildpacks]]
uri = "bp"

[[order]]
[[order.group]]
id = "examples/hello-multi"

[build]
image = "build-image"

[[build.env]]
name = "Z_LAST"
value = "z"

[[build.env]]
name = "A_FIRST"
value = "a"
suffix = "prepend"
delim = ":"

[[run.images]]
image = "example.com/run:1"
mirrors = ["mirror.example.com/run:1"]

[lifecycle]
uri = "lifecycle-v0.20.5+linux.{{arch}}.tgz"
{}"#,
            targets_toml(&ARCHES)
        ),
    )
}

#[test]
fn the_same_bytes_whatever_the_umask_output_directory_and_threads() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let config = inputs(d);
    let a = d.join("a/builder.cnb");
    let b = d.join("deeper/b/other-name.cnb");
    fs::create_dir_all(a.parent().unwrap()).unwrap();
    fs::create_dir_all(b.parent().unwrap()).unwrap();
    ok(create_with_umask(&config, &a, &[], 0o022));
    ok(create_with_umask(&config, &b, &["--jobs", "1"], 0o077));
    assert_eq!(fs::read(&a).unwrap(), fs::read(&b).unwrap());
    // As a layout directory: the same blobs and index.
    let la = d.join("la");
    let lb = d.join("lb");
    ok(create_with_umask(
        &config,
        &la,
        &["--format", "layout"],
        0o002,
    ));
    ok(create_with_umask(
        &config,
        &lb,
        &["--format", "layout"],
        0o077,
    ));
    assert_eq!(tree(&la), tree(&lb));
    for name in tree(&la) {
        let p = la.join(&name);
        if p.is_file() {
            assert_eq!(
                fs::read(&p).unwrap(),
                fs::read(lb.join(&name)).unwrap(),
                "{name}"
            );
        }
    }
    // The file holds exactly the layout's blobs.
    let from_file = as_layout(&a, &d.join("work"));
    assert_eq!(
        fs::read(from_file.join("index.json")).unwrap(),
        fs::read(la.join("index.json")).unwrap()
    );
    // The build-config env files are written sorted by name (pack writes Go map order).
    let work = d.join("env");
    let p = read_platform(&la, "amd64", &work);
    let env: Vec<String> = p
        .headers()
        .into_iter()
        .map(|h| h.0)
        .filter(|n| n.starts_with("cnb/build-config/env/"))
        .collect();
    assert_eq!(
        env,
        [
            "cnb/build-config/env/A_FIRST.delim",
            "cnb/build-config/env/A_FIRST.prepend",
            "cnb/build-config/env/Z_LAST",
        ]
    );
}

#[test]
fn a_pushed_builder_is_read_back_per_platform() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let config = inputs(d);
    let out = d.join("builder.cnb");
    ok(create(&config, &out, &[]));
    let registry = Registry::start_plain();
    let reference = format!("{}/acme/builder:1", registry.host());
    ok(child::cnbpkg(child::push_args(
        &out,
        &reference,
        &["--insecure"],
    )));

    let layout = as_layout(&out, &d.join("work"));
    let pushed: serde_json::Value = serde_json::from_slice(&skopeo_raw(&reference)).unwrap();
    assert_eq!(
        pushed["mediaType"],
        "application/vnd.oci.image.index.v1+json"
    );
    let local = platform_manifests(&layout);
    let remote = pushed["manifests"].as_array().unwrap();
    assert_eq!(remote.len(), local.len());
    for ((arch, desc), r) in local.iter().zip(remote) {
        assert_eq!(r["digest"], desc["digest"], "{arch}");
        assert_eq!(r["platform"]["architecture"], arch.as_str());
        let src = format!("docker://{reference}");
        let config = skopeo_inspect(&src, arch, &["--config", "--tls-verify=false"]);
        let file_config = {
            let m = read_blob_json(&layout, desc["digest"].as_str().unwrap());
            read_blob_json(&layout, m["config"]["digest"].as_str().unwrap())
        };
        // skopeo prints the config decoded again: compare what it says, not its bytes.
        assert_eq!(config["rootfs"], file_config["rootfs"], "{arch}");
        assert_eq!(config["config"]["Labels"], file_config["config"]["Labels"]);
        assert_eq!(config["config"]["Env"], file_config["config"]["Env"]);
        assert_eq!(config["architecture"], arch.as_str());
        assert_eq!(config["config"]["WorkingDir"], "/layers");
    }
}
