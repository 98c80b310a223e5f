//! Hostile package content, built by hand with valid digests so that only the part under test
//! is wrong: layer entries outside their module's directory, dependency layers that do not
//! match their digest or diffID, modules that collide by `id@version`, descriptors that lie on
//! a second listing, and indexes listing more images than a reader accepts.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Output;

use crate::support::rawtar::{self, gzip, Entry};
use crate::support::*;
use serde_json::{json, Value};
use sha2::{Digest as _, Sha256};

const LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
const LAYER_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";
const MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const CONFIG: &str = "application/vnd.oci.image.config.v1+json";
const INDEX: &str = "application/vnd.oci.image.index.v1+json";

fn sha(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

// ---------------------------------------------------------------------------------------------
// Raw tar entries (support::rawtar): ustar headers, owned by root, dated 1980.

fn dir(name: &str) -> Entry {
    Entry::dir(name)
}

fn file(name: &str, data: &[u8]) -> Entry {
    Entry::file(name, data)
}

fn link(name: &str, kind: tar::EntryType, target: &str) -> Entry {
    Entry::link(name, kind, target)
}

fn tar_of(entries: &[Entry]) -> Vec<u8> {
    let dated: Vec<Entry> = entries
        .iter()
        .map(|e| e.clone().mtime(315_532_801).ids(0, 0))
        .collect();
    rawtar::archive(&dated)
}

/// The entries of a sound layer of module `id@version`.
fn module_entries(id: &str, version: &str) -> Vec<Entry> {
    let esc = id.replace('/', "_");
    let base = format!("/cnb/buildpacks/{esc}/{version}");
    vec![
        dir(&format!("/cnb/buildpacks/{esc}")),
        dir(&base),
        dir(&format!("{base}/bin")),
        file(&format!("{base}/bin/build"), b"#!/bin/sh\nexit 0\n"),
        file(&format!("{base}/bin/detect"), b"#!/bin/sh\nexit 0\n"),
        file(
            &format!("{base}/buildpack.toml"),
            format!("api = \"0.10\"\n[buildpack]\nid = \"{id}\"\nversion = \"{version}\"\n")
                .as_bytes(),
        ),
    ]
}

// ---------------------------------------------------------------------------------------------
// A layout written blob by blob.

struct Layout {
    root: PathBuf,
}

/// One layer as stored: media type, stored bytes, and the diffID the config claims.
#[derive(Clone)]
struct Layer {
    media_type: String,
    blob: Vec<u8>,
    diff_id: String,
    /// The size the manifest claims (default: the blob's).
    size: Option<u64>,
}

fn gz_layer(entries: &[Entry]) -> Layer {
    let tar = tar_of(entries);
    Layer {
        media_type: LAYER_GZIP.into(),
        diff_id: sha(&tar),
        blob: gzip(&tar),
        size: None,
    }
}

impl Layout {
    fn new(root: &Path) -> Layout {
        fs::create_dir_all(root.join("blobs/sha256")).unwrap();
        fs::write(root.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
        Layout {
            root: root.to_path_buf(),
        }
    }

    /// Store a blob under its digest; returns its descriptor.
    fn put(&self, media_type: &str, bytes: &[u8]) -> Value {
        let d = sha(bytes);
        fs::write(
            self.root
                .join("blobs/sha256")
                .join(d.trim_start_matches("sha256:")),
            bytes,
        )
        .unwrap();
        json!({"mediaType": media_type, "digest": d, "size": bytes.len()})
    }

    /// Store blob bytes under a digest they do not have.
    fn put_as(&self, digest: &str, bytes: &[u8]) {
        fs::write(
            self.root
                .join("blobs/sha256")
                .join(digest.trim_start_matches("sha256:")),
            bytes,
        )
        .unwrap();
    }

    /// An image (linux/amd64) with `layers`, labelled with `modules` (id, version, layer index).
    fn image(
        &self,
        layers: &[Layer],
        modules: &[(&str, &str, usize)],
        main: (&str, &str),
    ) -> Value {
        self.image_for("amd64", layers, modules, main)
    }

    fn image_for(
        &self,
        arch: &str,
        layers: &[Layer],
        modules: &[(&str, &str, usize)],
        main: (&str, &str),
    ) -> Value {
        let mut label = serde_json::Map::new();
        for (id, version, i) in modules {
            label
                .entry(id.to_string())
                .or_insert_with(|| json!({}))
                .as_object_mut()
                .unwrap()
                .insert(
                    version.to_string(),
                    json!({"api": "0.10", "stacks": [{"id": "*"}], "layerDiffID": layers[*i].diff_id}),
                );
        }
        let metadata = json!({"id": main.0, "version": main.1, "stacks": [{"id": "*"}]});
        let config = json!({
            "architecture": arch,
            "os": "linux",
            "rootfs": {"type": "layers", "diff_ids": layers.iter().map(|l| l.diff_id.clone()).collect::<Vec<_>>()},
            "config": {"Labels": {
                "io.buildpacks.buildpackage.metadata": metadata.to_string(),
                "io.buildpacks.buildpack.layers": Value::Object(label).to_string(),
            }},
        });
        let config_desc = self.put(CONFIG, config.to_string().as_bytes());
        let layer_descs: Vec<Value> = layers
            .iter()
            .map(|l| {
                let mut d = self.put(&l.media_type, &l.blob);
                if let Some(s) = l.size {
                    d["size"] = json!(s);
                }
                d
            })
            .collect();
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": MANIFEST,
            "config": config_desc,
            "layers": layer_descs,
        });
        let mut desc = self.put(MANIFEST, manifest.to_string().as_bytes());
        desc["platform"] = json!({"os": "linux", "architecture": arch});
        desc
    }

    fn index(&self, manifests: Vec<Value>) {
        let index = json!({"schemaVersion": 2, "mediaType": INDEX, "manifests": manifests});
        fs::write(self.root.join("index.json"), index.to_string()).unwrap();
    }
}

/// A one-image dependency package holding `t/dep@1.0.0` with `layer`.
fn dependency(root: &Path, layer: &Layer) -> PathBuf {
    let l = Layout::new(root);
    let img = l.image(
        std::slice::from_ref(layer),
        &[("t/dep", "1.0.0", 0)],
        ("t/dep", "1.0.0"),
    );
    l.index(vec![img]);
    root.to_path_buf()
}

/// A composite `t/meta@1.0.0` whose order references `refs`, with package.toml listing `deps`.
fn composite(work: &Path, name: &str, refs: &[(&str, &str)], deps: &[&Path]) -> PathBuf {
    let meta = work.join(format!("{name}-meta"));
    let mut toml =
        "api = \"0.10\"\n[buildpack]\nid = \"t/meta\"\nversion = \"1.0.0\"\n\n[[order]]\n"
            .to_string();
    for (id, v) in refs {
        let id = id.replace('\u{1b}', "\\u001b");
        toml.push_str(&format!(
            "[[order.group]]\nid = \"{id}\"\nversion = \"{v}\"\n"
        ));
    }
    write_file(&meta.join("buildpack.toml"), &toml, 0o644);
    let mut cfg = format!("[buildpack]\nuri = \"{}\"\n", meta.display());
    for d in deps {
        cfg.push_str(&format!("\n[[dependencies]]\nuri = \"{}\"\n", d.display()));
    }
    cfg.push_str("\n[[targets]]\nos = \"linux\"\narch = \"amd64\"\n");
    let path = work.join(format!("{name}-package.toml"));
    fs::write(&path, cfg).unwrap();
    path
}

fn package_with(config: &Path, out: &Path, extra: &[&str]) -> Output {
    let mut args: Vec<String> = vec![
        "buildpack".into(),
        "package".into(),
        out.display().to_string(),
        "--config".into(),
        config.display().to_string(),
        "-q".into(),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    cnbpkg(args)
}

/// Exit 1, one error line mentioning every part of `expect`, and no output.
fn refused(o: Output, out: &Path, expect: &[&str], what: &str) -> String {
    let err = fails(o, 1);
    for e in expect {
        assert!(err.contains(e), "{what}: error lacks '{e}':\n{err}");
    }
    assert!(!out.exists(), "{what}: output written");
    let parent = out.parent().unwrap();
    let stem = out.file_stem().unwrap().to_string_lossy().into_owned();
    let left: Vec<_> = fs::read_dir(parent)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(&stem))
        .collect();
    assert!(left.is_empty(), "{what}: files left: {left:?}");
    err
}

fn verify(path: &Path) -> Output {
    cnbpkg(["verify".as_ref(), path.as_os_str()])
}

// ---------------------------------------------------------------------------------------------
// Item: layer entries outside their module's directory.

fn hostile_extras() -> Vec<(&'static str, Vec<Entry>, &'static str)> {
    use tar::EntryType as T;
    let base = "/cnb/buildpacks/t_dep/1.0.0";
    vec![
        (
            "etc-passwd",
            vec![file("/etc/passwd", b"root::0:0::/:/bin/sh\n")],
            "/etc/passwd",
        ),
        (
            "lifecycle",
            vec![file("/cnb/lifecycle/builder", b"#!/bin/sh\n")],
            "cnb/lifecycle/builder",
        ),
        (
            "dotdot",
            vec![file("../../../tmp/evil", b"x")],
            "../../../tmp/evil",
        ),
        (
            "inner-dotdot",
            vec![file(&format!("{base}/../../../../tmp/evil"), b"x")],
            "tmp/evil",
        ),
        (
            "other-module",
            vec![file("/cnb/buildpacks/other/9.9.9/bin/build", b"x")],
            "cnb/buildpacks/other/9.9.9",
        ),
        (
            "symlink-out",
            // A link may point anywhere (its target is resolved in the container), but no entry
            // may be placed through it.
            vec![
                link(&format!("{base}/bin/sh"), T::Symlink, "/etc"),
                file(&format!("{base}/bin/sh/passwd"), b"x"),
            ],
            "through the symbolic link",
        ),
        (
            "symlink-up",
            vec![
                link(&format!("{base}/up"), T::Symlink, "../../../../etc"),
                dir(&format!("{base}/up/cron.d")),
            ],
            "through the symbolic link",
        ),
        (
            "hardlink-out",
            vec![link(&format!("{base}/pw"), T::Link, "/etc/passwd")],
            "hard link",
        ),
        (
            "parent-not-dir",
            vec![link("/cnb/buildpacks", T::Symlink, "/tmp")],
            "cnb/buildpacks",
        ),
    ]
}

#[test]
fn verify_reports_every_entry_outside_the_module_directory() {
    let tmp = tempfile::tempdir().unwrap();
    // The sound package verifies.
    let good = dependency(
        &tmp.path().join("good"),
        &gz_layer(&module_entries("t/dep", "1.0.0")),
    );
    ok(verify(&good));
    let mut all = module_entries("t/dep", "1.0.0");
    let mut expected = Vec::new();
    for (what, extra, expect) in hostile_extras() {
        let mut entries = module_entries("t/dep", "1.0.0");
        let extra_len = extra.len();
        entries.extend(extra);
        let pkg = dependency(&tmp.path().join(what), &gz_layer(&entries));
        let o = verify(&pkg);
        let stdout = String::from_utf8_lossy(&o.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&o.stderr).into_owned();
        assert_eq!(
            o.status.code(),
            Some(1),
            "{what}: verify passed:\n{stdout}{stderr}"
        );
        assert!(
            format!("{stdout}{stderr}").contains(expect),
            "{what}: '{expect}' not reported:\n{stdout}{stderr}"
        );
        all.extend(entries.split_off(entries.len() - extra_len));
        expected.push(expect);
    }
    // One layer with all of them: each is reported.
    let pkg = dependency(&tmp.path().join("all"), &gz_layer(&all));
    let o = verify(&pkg);
    assert_eq!(o.status.code(), Some(1));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    for e in expected {
        assert!(text.contains(e), "'{e}' not reported:\n{text}");
    }
}

#[test]
fn composites_refuse_dependencies_with_entries_outside_the_module_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let work = tmp.path();
    let good = dependency(
        &work.join("good"),
        &gz_layer(&module_entries("t/dep", "1.0.0")),
    );
    let config = composite(work, "good", &[("t/dep", "1.0.0")], &[&good]);
    for flags in [&[][..], &["--flatten"][..]] {
        let out = work.join("good-out.cnb");
        ok(package_with(&config, &out, flags));
        ok(verify(&out));
        fs::remove_file(&out).unwrap();
    }
    for (what, extra, expect) in hostile_extras() {
        let mut entries = module_entries("t/dep", "1.0.0");
        entries.extend(extra);
        let dep = dependency(&work.join(what), &gz_layer(&entries));
        let config = composite(work, what, &[("t/dep", "1.0.0")], &[&dep]);
        for flags in [&[][..], &["--flatten"][..], &["--compression", "zstd"][..]] {
            let out = work.join("x-out.cnb");
            refused(
                package_with(&config, &out, flags),
                &out,
                &[what, expect],
                &format!("{what} {flags:?}"),
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Item: every path reading a dependency's layer checks digest, size, the whole compressed
// stream and the diffID (`--flatten` did not).

#[test]
fn corrupt_dependency_layers_are_refused_with_and_without_flatten() {
    let tmp = tempfile::tempdir().unwrap();
    let work = tmp.path();
    let sound = gz_layer(&module_entries("t/dep", "1.0.0"));

    // 1. The stored bytes differ from the digest (a flipped byte inside the deflate data).
    let d1 = work.join("flipped");
    dependency(&d1, &sound);
    let digest = sha(&sound.blob);
    let mut bad = sound.blob.clone();
    let mid = bad.len() / 2;
    bad[mid] ^= 0x55;
    Layout { root: d1.clone() }.put_as(&digest, &bad);

    // 2. A valid digest over bytes whose gzip CRC is wrong.
    let mut crc = sound.clone();
    let n = crc.blob.len();
    crc.blob[n - 8] ^= 0xff;
    let d2 = dependency(&work.join("crc"), &crc);

    // 3. A sound blob whose decompressed bytes are not the config's diffID.
    let mut diff = sound.clone();
    diff.diff_id = sha(b"something else");
    let d3 = dependency(&work.join("diffid"), &diff);

    // 4. Gzip data cut short (valid digest of the cut bytes).
    let mut cut = sound.clone();
    cut.blob.truncate(cut.blob.len() - 12);
    let d4 = dependency(&work.join("cut"), &cut);

    for (what, dep) in [
        ("flipped", &d1),
        ("crc", &d2),
        ("diffid", &d3),
        ("cut", &d4),
    ] {
        let o = verify(dep);
        assert_eq!(o.status.code(), Some(1), "{what}: verify passed");
        let config = composite(work, what, &[("t/dep", "1.0.0")], &[dep]);
        for flags in [
            &[][..],
            &["--flatten"][..],
            &["--compression", "zstd"][..],
            &["--flatten", "--compression", "none"][..],
        ] {
            let out = work.join("x-out.cnb");
            refused(
                package_with(&config, &out, flags),
                &out,
                &[what],
                &format!("{what} {flags:?}"),
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Item: modules colliding by id@version.

#[test]
fn colliding_module_ids_are_errors_naming_both_sources() {
    let tmp = tempfile::tempdir().unwrap();
    let work = tmp.path();
    let dep_a = dependency(
        &work.join("dep-a"),
        &gz_layer(&module_entries("t/dep", "1.0.0")),
    );
    let mut other = module_entries("t/dep", "1.0.0");
    other.push(file(
        "/cnb/buildpacks/t_dep/1.0.0/extra",
        b"different content",
    ));
    let dep_b = dependency(&work.join("dep-b"), &gz_layer(&other));
    // The same package reached twice (a copy, so two sources with the same content) is fine.
    copy_tree(&dep_a, &work.join("dep-a-copy"));
    let same = composite(
        work,
        "same",
        &[("t/dep", "1.0.0")],
        &[&dep_a, &work.join("dep-a-copy")],
    );
    let out = work.join("same-out.cnb");
    ok(package_with(&same, &out, &[]));
    ok(verify(&out));
    fs::remove_file(&out).unwrap();

    // Same id@version, different content: an error naming both.
    let clash = composite(work, "clash", &[("t/dep", "1.0.0")], &[&dep_a, &dep_b]);
    for flags in [&[][..], &["--flatten"][..]] {
        let out = work.join("clash-out.cnb");
        refused(
            package_with(&clash, &out, flags),
            &out,
            &["t/dep@1.0.0", "dep-a", "dep-b"],
            "clash",
        );
    }

    // A dependency holding the composite's own id@version.
    let l = Layout::new(&work.join("dep-self"));
    let img = l.image(
        &[
            gz_layer(&module_entries("t/dep", "1.0.0")),
            gz_layer(&module_entries("t/meta", "1.0.0")),
        ],
        &[("t/dep", "1.0.0", 0), ("t/meta", "1.0.0", 1)],
        ("t/dep", "1.0.0"),
    );
    l.index(vec![img]);
    ok(verify(&work.join("dep-self")));
    let selfish = composite(
        work,
        "self",
        &[("t/dep", "1.0.0")],
        &[&work.join("dep-self")],
    );
    let out = work.join("self-out.cnb");
    refused(
        package_with(&selfish, &out, &[]),
        &out,
        &["t/meta@1.0.0", "dep-self", "self-meta"],
        "self",
    );

    // Ids that map to one layer directory (`a/b` and `a_b`).
    let l = Layout::new(&work.join("dep-esc"));
    let img = l.image(
        &[
            gz_layer(&module_entries("t/dep", "1.0.0")),
            gz_layer(&module_entries("t_dep", "1.0.0")),
        ],
        &[("t/dep", "1.0.0", 0), ("t_dep", "1.0.0", 1)],
        ("t/dep", "1.0.0"),
    );
    l.index(vec![img]);
    let esc = composite(
        work,
        "esc",
        &[("t/dep", "1.0.0"), ("t_dep", "1.0.0")],
        &[&work.join("dep-esc")],
    );
    let out = work.join("esc-out.cnb");
    refused(
        package_with(&esc, &out, &[]),
        &out,
        &["t/dep@1.0.0", "t_dep@1.0.0"],
        "escaped ids",
    );
}

// ---------------------------------------------------------------------------------------------
// Item: a second descriptor of a blob is checked as carefully as the first.

#[test]
fn a_second_descriptor_of_a_layer_is_checked_again() {
    let tmp = tempfile::tempdir().unwrap();
    let layer = gz_layer(&module_entries("t/dep", "1.0.0"));
    let make = |name: &str, second: Layer| {
        let root = tmp.path().join(name);
        let l = Layout::new(&root);
        let modules = [("t/dep", "1.0.0", 0)];
        let a = l.image(std::slice::from_ref(&layer), &modules, ("t/dep", "1.0.0"));
        // A second image describing the same blob again, differently.
        let b = l.image_for("arm64", &[second], &modules, ("t/dep", "1.0.0"));
        l.index(vec![a, b]);
        root
    };
    // Sanity: the same layer described identically twice verifies.
    ok(verify(&make("same", layer.clone())));
    let mut zstd = layer.clone();
    zstd.media_type = LAYER_ZSTD.into();
    let o = verify(&make("zstd", zstd));
    assert_eq!(
        o.status.code(),
        Some(1),
        "a layer re-described as zstd passed"
    );
    let mut size = layer.clone();
    size.size = Some(layer.blob.len() as u64 + 1);
    let o = verify(&make("size", size));
    assert_eq!(
        o.status.code(),
        Some(1),
        "a layer re-described with a wrong size passed"
    );
    assert!(String::from_utf8_lossy(&o.stdout).contains("bytes but its descriptor says"));
}

// ---------------------------------------------------------------------------------------------
// Item: one set of limits for every reader.

#[test]
fn verify_refuses_an_index_listing_more_images_than_readers_accept() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("many");
    let l = Layout::new(&root);
    let img = l.image(
        &[gz_layer(&module_entries("t/dep", "1.0.0"))],
        &[("t/dep", "1.0.0", 0)],
        ("t/dep", "1.0.0"),
    );
    l.index(vec![img.clone(); 5000]);
    let o = cnbpkg(["inspect".as_ref(), root.as_os_str()]);
    assert_eq!(o.status.code(), Some(1), "inspect accepted 5000 images");
    let o = verify(&root);
    assert_eq!(o.status.code(), Some(1), "verify accepted 5000 images");
    let text = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(text.contains("4096"), "{text}");
    // The same index listing the image 4096 times is within every reader's limits.
    l.index(vec![img; 4096]);
    ok(verify(&root));
}

// ---------------------------------------------------------------------------------------------
// Item: ids and versions from a dependency's label become paths when re-layered or flattened.

#[test]
fn unsafe_ids_and_versions_in_a_dependency_label_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let work = tmp.path();
    for (i, (id, version)) in [
        ("t/dep", "../../../etc"),
        ("t/dep", "."),
        ("t/dep", "1.0/x"),
        ("..", "1.0.0"),
        ("t/../..", "1.0.0"),
        ("t/dep\u{1b}", "1.0.0"),
    ]
    .into_iter()
    .enumerate()
    {
        let root = work.join(format!("dep{i}"));
        let l = Layout::new(&root);
        // The layer holds its files where the label's id and version would put them.
        let tar = tar_of(&[dir("/cnb/buildpacks"), file("/cnb/buildpacks/x", b"x")]);
        let layer = Layer {
            media_type: LAYER_GZIP.into(),
            diff_id: sha(&tar),
            blob: gzip(&tar),
            size: None,
        };
        let img = l.image(&[layer], &[(id, version, 0)], (id, version));
        l.index(vec![img]);
        let o = verify(&root);
        assert_eq!(o.status.code(), Some(1), "{id}@{version}: verify passed");
        let config = composite(work, &format!("c{i}"), &[(id, version)], &[&root]);
        for flags in [&[][..], &["--flatten"][..]] {
            let out = work.join("x-out.cnb");
            refused(
                package_with(&config, &out, flags),
                &out,
                &[&format!("dep{i}"), "io.buildpacks.buildpack.layers"],
                &format!("{id}@{version} {flags:?}"),
            );
        }
    }
}
