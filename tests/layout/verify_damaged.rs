//! `cnbpkg verify` against a corpus of damaged packages generated from good outputs of the
//! packager (single- and multi-platform, gzip/zstd/none), as layout directories and as `.cnb`
//! archives, and against every good output including pack's fixtures.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::support::rawtar;
use crate::support::*;
use serde_json::Value;
use sha2::{Digest as _, Sha256};

const COMPRESSIONS: [&str; 3] = ["gzip", "zstd", "none"];

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Package a sample as a layout directory.
fn package_layout(
    dir: &Path,
    name: &str,
    sample_name: &str,
    compression: &str,
    targets: &[&str],
) -> PathBuf {
    let out = dir.join(name);
    let mut args: Vec<String> = vec![
        "buildpack".into(),
        "package".into(),
        out.to_string_lossy().into_owned(),
        "--path".into(),
        sample(sample_name).to_string_lossy().into_owned(),
        "--format".into(),
        "layout".into(),
        "--compression".into(),
        compression.into(),
        "-q".into(),
    ];
    for t in targets {
        args.push("-t".into());
        args.push(t.to_string());
    }
    ok(cnbpkg(&args));
    assert!(
        out.join("oci-layout").is_file(),
        "{} is not a layout",
        out.display()
    );
    out
}

/// The good packages of the corpus: (label, layout dir, has a nested index).
fn good_layouts(dir: &Path) -> Vec<(String, PathBuf, bool)> {
    fs::create_dir_all(dir).unwrap();
    let mut v = Vec::new();
    for c in COMPRESSIONS {
        v.push((
            format!("single-{c}"),
            package_layout(
                dir,
                &format!("single-{c}"),
                "hello-bash",
                c,
                &["linux/amd64"],
            ),
            false,
        ));
        v.push((
            format!("multi-{c}"),
            package_layout(dir, &format!("multi-{c}"), "hello-multi", c, &[]),
            true,
        ));
    }
    v
}

/// Tar a layout directory into a `.cnb` (`oci-layout`, `index.json`, then blobs, sorted), with
/// `extra` entries appended as they are given (to make duplicates).
fn tar_layout(layout: &Path, out: &Path, extra: &[(&str, Vec<u8>)]) {
    let file = fs::File::create(out).unwrap();
    let mut b = tar::Builder::new(file);
    let mut names = vec!["oci-layout".to_string(), "index.json".to_string()];
    let mut blobs: Vec<String> = fs::read_dir(layout.join("blobs/sha256"))
        .unwrap()
        .map(|e| format!("blobs/sha256/{}", e.unwrap().file_name().to_string_lossy()))
        .collect();
    blobs.sort();
    names.extend(blobs);
    for name in names {
        let data = fs::read(layout.join(&name)).unwrap();
        append(&mut b, &name, &data);
    }
    for (name, data) in extra {
        append(&mut b, name, data);
    }
    b.into_inner().unwrap().flush().unwrap();
}

fn append<W: Write>(b: &mut tar::Builder<W>, name: &str, data: &[u8]) {
    // Raw name bytes: the tar crate refuses absolute names, which pack writes.
    assert!(name.len() < 100);
    b.append(&rawtar::Entry::file(name, data).header(), data)
        .unwrap();
}

/// A layout on disk, edited in place.
struct Layout {
    root: PathBuf,
}

impl Layout {
    fn blob(&self, hex: &str) -> PathBuf {
        self.root.join("blobs/sha256").join(hex)
    }

    fn read_json(&self, path: &Path) -> Value {
        serde_json::from_slice(&fs::read(path).unwrap()).unwrap()
    }

    fn index(&self) -> Value {
        self.read_json(&self.root.join("index.json"))
    }

    /// Digest hexes of every JSON blob (index, manifest, config) with its parsed value.
    fn json_blobs(&self) -> Vec<(String, Value)> {
        let mut v = Vec::new();
        for e in fs::read_dir(self.root.join("blobs/sha256")).unwrap() {
            let e = e.unwrap();
            if let Ok(value) = serde_json::from_slice::<Value>(&fs::read(e.path()).unwrap()) {
                v.push((e.file_name().to_string_lossy().into_owned(), value));
            }
        }
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }

    /// The nested index blob, if any.
    fn nested_index(&self) -> Option<String> {
        let d = &self.index()["manifests"][0];
        (d["mediaType"] == "application/vnd.oci.image.index.v1+json")
            .then(|| hex_of(d["digest"].as_str().unwrap()))
    }

    /// Digest hexes of the manifests (first image first).
    fn manifests(&self) -> Vec<String> {
        let list = match self.nested_index() {
            Some(n) => self.read_json(&self.blob(&n))["manifests"].clone(),
            None => self.index()["manifests"].clone(),
        };
        list.as_array()
            .unwrap()
            .iter()
            .map(|d| hex_of(d["digest"].as_str().unwrap()))
            .collect()
    }

    fn manifest(&self) -> (String, Value) {
        let m = self.manifests()[0].clone();
        let v = self.read_json(&self.blob(&m));
        (m, v)
    }

    fn config(&self) -> (String, Value) {
        let (_, m) = self.manifest();
        let c = hex_of(m["config"]["digest"].as_str().unwrap());
        let v = self.read_json(&self.blob(&c));
        (c, v)
    }

    fn first_layer(&self) -> String {
        let (_, m) = self.manifest();
        hex_of(m["layers"][0]["digest"].as_str().unwrap())
    }

    fn flip_byte(&self, path: &Path, at: Option<usize>) {
        let mut bytes = fs::read(path).unwrap();
        let i = at.unwrap_or(bytes.len() / 2);
        bytes[i] ^= 0x01;
        fs::write(path, bytes).unwrap();
    }

    /// Replace a JSON blob by `value` (re-serialized), store it under its new digest, and fix every
    /// descriptor that pointed at it (recursively, up to index.json), so that only the intended
    /// defect remains.
    fn rewrite(&self, hex: &str, value: &Value) {
        let bytes = serde_json::to_vec(value).unwrap();
        let new = sha256_hex(&bytes);
        fs::remove_file(self.blob(hex)).unwrap();
        fs::write(self.blob(&new), &bytes).unwrap();
        self.repoint(hex, &new, bytes.len() as u64);
    }

    /// Point every descriptor at `old` to `new` with `size`.
    fn repoint(&self, old: &str, new: &str, size: u64) {
        for (parent, mut value) in self.json_blobs() {
            if replace_descriptor(&mut value, old, new, size) {
                self.rewrite(&parent, &value);
            }
        }
        let mut index = self.index();
        if replace_descriptor(&mut index, old, new, size) {
            fs::write(
                self.root.join("index.json"),
                serde_json::to_vec(&index).unwrap(),
            )
            .unwrap();
        }
    }

    /// Apply `f` to the first manifest and rewrite it.
    fn edit_manifest(&self, f: impl FnOnce(&mut Value)) {
        let (hex, mut v) = self.manifest();
        f(&mut v);
        self.rewrite(&hex, &v);
    }

    /// Apply `f` to the first config and rewrite it.
    fn edit_config(&self, f: impl FnOnce(&mut Value)) {
        let (hex, mut v) = self.config();
        f(&mut v);
        self.rewrite(&hex, &v);
    }

    /// Apply `f` to the parsed layers label of the first config.
    fn edit_layers_label(&self, f: impl FnOnce(&mut Value)) {
        self.edit_config(|c| {
            let labels = &mut c["config"]["Labels"];
            let mut label: Value =
                serde_json::from_str(labels["io.buildpacks.buildpack.layers"].as_str().unwrap())
                    .unwrap();
            f(&mut label);
            labels["io.buildpacks.buildpack.layers"] = Value::String(label.to_string());
        });
    }
}

fn hex_of(digest: &str) -> String {
    digest.strip_prefix("sha256:").unwrap().to_string()
}

fn replace_descriptor(v: &mut Value, old: &str, new: &str, size: u64) -> bool {
    let mut changed = false;
    match v {
        Value::Object(map) => {
            if map.get("digest").and_then(Value::as_str) == Some(&format!("sha256:{old}")) {
                map.insert("digest".into(), Value::String(format!("sha256:{new}")));
                map.insert("size".into(), Value::from(size));
                changed = true;
            }
            for (_, child) in map.iter_mut() {
                changed |= replace_descriptor(child, old, new, size);
            }
        }
        Value::Array(items) => {
            for child in items {
                changed |= replace_descriptor(child, old, new, size);
            }
        }
        _ => {}
    }
    changed
}

/// A damage: its name, whether it needs a nested index, what it does, and a piece of text the
/// defect line must contain.
struct Damage {
    name: &'static str,
    needs_nested: bool,
    apply: fn(&Layout),
    expect: &'static str,
}

fn damages() -> Vec<Damage> {
    vec![
        Damage {
            name: "flipped byte in a layer",
            needs_nested: false,
            apply: |l| l.flip_byte(&l.blob(&l.first_layer()), None),
            expect: "layer",
        },
        Damage {
            name: "flipped last byte in a layer",
            needs_nested: false,
            apply: |l| {
                let p = l.blob(&l.first_layer());
                let n = fs::metadata(&p).unwrap().len() as usize;
                l.flip_byte(&p, Some(n - 1))
            },
            expect: "layer",
        },
        Damage {
            name: "flipped byte in a config",
            needs_nested: false,
            apply: |l| l.flip_byte(&l.blob(&l.config().0), Some(10)),
            expect: "has digest",
        },
        Damage {
            name: "flipped byte in a manifest",
            needs_nested: false,
            apply: |l| l.flip_byte(&l.blob(&l.manifest().0), Some(10)),
            expect: "has digest",
        },
        Damage {
            name: "flipped byte in the nested index",
            needs_nested: true,
            apply: |l| l.flip_byte(&l.blob(&l.nested_index().unwrap()), Some(10)),
            expect: "has digest",
        },
        Damage {
            name: "flipped first byte of index.json",
            needs_nested: false,
            apply: |l| l.flip_byte(&l.root.join("index.json"), Some(0)),
            expect: "index.json",
        },
        Damage {
            name: "flipped byte in a digest in index.json",
            needs_nested: false,
            apply: |l| {
                let text = fs::read_to_string(l.root.join("index.json")).unwrap();
                let at = text.find("sha256:").unwrap() + 7 + 5;
                l.flip_byte(&l.root.join("index.json"), Some(at))
            },
            expect: "index.json",
        },
        Damage {
            name: "wrong size of a layer in its descriptor",
            needs_nested: false,
            apply: |l| {
                l.edit_manifest(|m| {
                    let s = m["layers"][0]["size"].as_u64().unwrap();
                    m["layers"][0]["size"] = Value::from(s + 1);
                })
            },
            expect: "descriptor says",
        },
        Damage {
            name: "wrong size of a config in its descriptor",
            needs_nested: false,
            apply: |l| {
                l.edit_manifest(|m| {
                    let s = m["config"]["size"].as_u64().unwrap();
                    m["config"]["size"] = Value::from(s - 1);
                })
            },
            expect: "descriptor says",
        },
        Damage {
            name: "wrong size of a manifest in index.json",
            needs_nested: false,
            apply: |l| {
                let mut idx = l.index();
                let s = idx["manifests"][0]["size"].as_u64().unwrap();
                idx["manifests"][0]["size"] = Value::from(s + 7);
                fs::write(l.root.join("index.json"), idx.to_string()).unwrap();
            },
            expect: "descriptor says",
        },
        Damage {
            name: "wrong diffID in a config",
            needs_nested: false,
            apply: |l| {
                l.edit_config(|c| {
                    c["rootfs"]["diff_ids"][0] =
                        Value::String(format!("sha256:{}", "ab".repeat(32)));
                })
            },
            expect: "diffID",
        },
        Damage {
            name: "missing layer blob",
            needs_nested: false,
            apply: |l| fs::remove_file(l.blob(&l.first_layer())).unwrap(),
            expect: "missing",
        },
        Damage {
            name: "missing config blob",
            needs_nested: false,
            apply: |l| fs::remove_file(l.blob(&l.config().0)).unwrap(),
            expect: "missing",
        },
        Damage {
            name: "bad layer media type",
            needs_nested: false,
            apply: |l| {
                l.edit_manifest(|m| {
                    m["layers"][0]["mediaType"] = Value::String("application/x-bogus".into())
                })
            },
            expect: "media type",
        },
        Damage {
            name: "bad config media type",
            needs_nested: false,
            apply: |l| {
                l.edit_manifest(|m| m["config"]["mediaType"] = Value::String("text/plain".into()))
            },
            expect: "media type",
        },
        Damage {
            name: "bad manifest media type in index.json",
            needs_nested: false,
            apply: |l| {
                let mut idx = l.index();
                idx["manifests"][0]["mediaType"] = Value::String("application/x-bogus".into());
                fs::write(l.root.join("index.json"), idx.to_string()).unwrap();
            },
            expect: "media type",
        },
        Damage {
            name: "label pointing at no layer",
            needs_nested: false,
            apply: |l| {
                l.edit_layers_label(|label| {
                    for (_, versions) in label.as_object_mut().unwrap() {
                        for (_, info) in versions.as_object_mut().unwrap() {
                            info["layerDiffID"] =
                                Value::String(format!("sha256:{}", "cd".repeat(32)));
                        }
                    }
                })
            },
            expect: "not a layer",
        },
        Damage {
            name: "label whose buildpack is not in the layer",
            needs_nested: false,
            apply: |l| {
                l.edit_layers_label(|label| {
                    let map = label.as_object_mut().unwrap();
                    let (k, v) = map
                        .iter()
                        .next()
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .unwrap();
                    map.remove(&k);
                    map.insert("examples/impostor".into(), v);
                })
            },
            expect: "does not hold",
        },
        Damage {
            name: "label with a version not in the layer",
            needs_nested: false,
            apply: |l| {
                l.edit_layers_label(|label| {
                    let versions = label.as_object_mut().unwrap().values_mut().next().unwrap();
                    let map = versions.as_object_mut().unwrap();
                    let (k, v) = map
                        .iter()
                        .next()
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .unwrap();
                    map.remove(&k);
                    map.insert("9.9.9".into(), v);
                })
            },
            expect: "does not hold",
        },
        Damage {
            name: "unreferenced extra blob",
            needs_nested: false,
            apply: |l| {
                let data = b"an extra blob nobody points at";
                fs::write(l.blob(&sha256_hex(data)), data).unwrap();
            },
            expect: "not referenced",
        },
        Damage {
            name: "config platform differs from the index descriptor",
            needs_nested: false,
            apply: |l| l.edit_config(|c| c["architecture"] = Value::String("s390x".into())),
            expect: "differs",
        },
        Damage {
            name: "config os differs from the index descriptor",
            needs_nested: false,
            apply: |l| l.edit_config(|c| c["os"] = Value::String("windows".into())),
            expect: "differs",
        },
        Damage {
            name: "config variant added",
            needs_nested: false,
            apply: |l| l.edit_config(|c| c["variant"] = Value::String("v9".into())),
            expect: "differs",
        },
        Damage {
            name: "bad oci-layout",
            needs_nested: false,
            apply: |l| {
                fs::write(
                    l.root.join("oci-layout"),
                    b"{\"imageLayoutVersion\":\"9.0\"}",
                )
                .unwrap()
            },
            expect: "oci-layout",
        },
    ]
}

fn verify_fails(path: &Path, expect: &str, what: &str) {
    let out = cnbpkg(["verify".as_ref(), path.as_os_str()]);
    // Defect lines go to stdout, one per defect, each naming the package.
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(
        out.status.code(),
        Some(1),
        "{what}: verify should exit 1\nstdout: {stdout}\nstderr: {stderr}"
    );
    let shown = path.display().to_string();
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with(&shown) && l.contains(expect)),
        "{what}: no defect line mentions '{expect}':\n{stdout}{stderr}"
    );
}

fn verify_passes(path: &Path, what: &str) {
    let out = cnbpkg(["verify".as_ref(), path.as_os_str()]);
    assert!(
        out.status.success(),
        "{what}: verify rejected a good package\nstderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn every_damage_is_reported_for_layouts_and_archives() {
    let tmp = tempfile::tempdir().unwrap();
    let good = good_layouts(&tmp.path().join("good"));
    let mut checked = 0;
    for (label, layout, nested) in &good {
        for (i, d) in damages().iter().enumerate() {
            if d.needs_nested && !nested {
                continue;
            }
            let what = format!("{label}: {}", d.name);
            let copy = tmp.path().join(format!("{label}-{i}"));
            copy_tree(layout, &copy);
            let l = Layout { root: copy.clone() };
            (d.apply)(&l);
            verify_fails(&copy, d.expect, &format!("{what} (layout)"));
            let cnb = tmp.path().join(format!("{label}-{i}.cnb"));
            tar_layout(&copy, &cnb, &[]);
            verify_fails(&cnb, d.expect, &format!("{what} (.cnb)"));
            checked += 1;
        }
    }
    assert!(checked >= 6 * 20, "only {checked} damages ran");
}

#[test]
fn archive_level_damage_is_reported() {
    let tmp = tempfile::tempdir().unwrap();
    let good = good_layouts(&tmp.path().join("good"));
    for (label, layout, _) in &good {
        // The untouched archive verifies: the damages below are the only defects.
        let cnb = tmp.path().join(format!("{label}.cnb"));
        tar_layout(layout, &cnb, &[]);
        verify_passes(&cnb, label);
        let bytes = fs::read(&cnb).unwrap();

        // Duplicate entries, same and different content.
        let index = fs::read(layout.join("index.json")).unwrap();
        let dup = tmp.path().join(format!("{label}-dup.cnb"));
        tar_layout(layout, &dup, &[("index.json", index.clone())]);
        verify_fails(&dup, "duplicate", &format!("{label}: duplicate index.json"));
        let dup2 = tmp.path().join(format!("{label}-dup2.cnb"));
        tar_layout(layout, &dup2, &[("./index.json", b"{}".to_vec())]);
        verify_fails(
            &dup2,
            "duplicate",
            &format!("{label}: duplicate ./index.json"),
        );
        let l = Layout {
            root: layout.clone(),
        };
        let blob = format!("blobs/sha256/{}", l.first_layer());
        let dup3 = tmp.path().join(format!("{label}-dup3.cnb"));
        tar_layout(
            layout,
            &dup3,
            &[(&format!("/{blob}"), fs::read(layout.join(&blob)).unwrap())],
        );
        verify_fails(&dup3, "duplicate", &format!("{label}: duplicate layer"));

        // A gzip-compressed .cnb.
        let gz = tmp.path().join(format!("{label}.cnb.gz"));
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        enc.write_all(&bytes).unwrap();
        fs::write(&gz, enc.finish().unwrap()).unwrap();
        verify_fails(&gz, "gzip", &format!("{label}: gzip-compressed"));

        // Truncated at several points: inside a header, inside data, and the end blocks gone.
        for cut in [
            bytes.len() / 3,
            bytes.len() / 2 + 100,
            bytes.len() - 1024 - 1,
            700,
        ] {
            let t = tmp.path().join(format!("{label}-cut{cut}.cnb"));
            fs::write(&t, &bytes[..cut]).unwrap();
            let out = cnbpkg(["verify".as_ref(), t.as_os_str()]);
            let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
            let stderr = fails(out, 1);
            assert!(
                stdout.contains("truncated")
                    || stderr.contains("corrupt")
                    || stdout.contains("too short"),
                "{label}: truncated at {cut} of {}: {stdout}{stderr}",
                bytes.len()
            );
        }

        // A flipped byte in the middle of the archive (wherever it lands).
        let flipped = tmp.path().join(format!("{label}-flip.cnb"));
        let mut f = bytes.clone();
        for at in [f.len() / 4, f.len() / 2, f.len() * 3 / 4] {
            f[at] ^= 0x20;
        }
        fs::write(&flipped, &f).unwrap();
        assert_eq!(
            cnbpkg(["verify".as_ref(), flipped.as_os_str()])
                .status
                .code(),
            Some(1),
            "{label}: flipped bytes"
        );

        // A link entry.
        let linked = tmp.path().join(format!("{label}-link.cnb"));
        {
            let file = fs::File::create(&linked).unwrap();
            let mut b = tar::Builder::new(file);
            for name in ["oci-layout", "index.json"] {
                append(&mut b, name, &fs::read(layout.join(name)).unwrap());
            }
            let mut h = tar::Header::new_ustar();
            h.set_entry_type(tar::EntryType::Symlink);
            h.set_path("blobs/sha256/evil").unwrap();
            h.set_link_name("/etc/passwd").unwrap();
            h.set_size(0);
            h.set_cksum();
            b.append(&h, &[][..]).unwrap();
            b.finish().unwrap();
        }
        verify_fails(
            &linked,
            "unsupported type",
            &format!("{label}: symlink entry"),
        );
    }
}

#[test]
fn every_good_output_verifies() {
    let tmp = tempfile::tempdir().unwrap();
    let mut checked = 0;
    for (label, layout, _) in good_layouts(tmp.path()) {
        verify_passes(&layout, &label);
        checked += 1;
    }
    for c in COMPRESSIONS {
        for (sample_name, targets) in [
            ("hello-bash", vec![]),
            ("hello-multi", vec![]),
            ("hello-bash", vec!["linux/arm/v7"]),
        ] {
            let out = tmp
                .path()
                .join(format!("{sample_name}-{c}-{}.cnb", targets.len()));
            let mut args = vec![
                "buildpack".to_string(),
                "package".into(),
                out.to_string_lossy().into_owned(),
                "--path".into(),
                sample(sample_name).to_string_lossy().into_owned(),
                "--compression".into(),
                c.into(),
                "-q".into(),
            ];
            for t in &targets {
                args.extend(["-t".to_string(), t.to_string()]);
            }
            ok(cnbpkg(&args));
            verify_passes(&out, &out.display().to_string());
            checked += 1;
        }
        // --split: one file per target.
        let split = tmp.path().join(format!("split-{c}"));
        fs::create_dir_all(&split).unwrap();
        ok(cnbpkg_in(
            &split,
            [
                "buildpack".as_ref(),
                "package".as_ref(),
                "hello-bash".as_ref(),
                "--path".as_ref(),
                sample("hello-bash").as_os_str(),
                "--compression".as_ref(),
                c.as_ref(),
                "--split".as_ref(),
                "-q".as_ref(),
            ] as [&std::ffi::OsStr; 9],
        ));
        let files = list(&split);
        assert!(files.len() >= 4, "split wrote {files:?}");
        for f in files {
            verify_passes(&split.join(&f), &f);
            checked += 1;
        }
    }
    for f in [
        "hello-universe.cnb",
        "hello-universe-oci.cnb",
        "tree-extension.cnb",
    ] {
        verify_passes(&repo().join("testdata/fixtures/pack").join(f), f);
        checked += 1;
    }
    assert!(checked >= 6 + 9 + 12 + 3);
}

#[test]
fn pack_fixtures_with_damage_are_rejected() {
    // pack's files differ from ours (docker media types, leading `/` names, tar layout); damage
    // must still be found in them.
    let tmp = tempfile::tempdir().unwrap();
    for f in [
        "hello-universe.cnb",
        "hello-universe-oci.cnb",
        "tree-extension.cnb",
    ] {
        let bytes = fs::read(repo().join("testdata/fixtures/pack").join(f)).unwrap();
        let truncated = tmp.path().join(format!("trunc-{f}"));
        fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
        assert_eq!(
            cnbpkg(["verify".as_ref(), truncated.as_os_str()])
                .status
                .code(),
            Some(1),
            "{f} truncated"
        );
        // Flip one byte in the data of every regular entry in turn: each must be caught.
        let mut ar = tar::Archive::new(&bytes[..]);
        let spans: Vec<(String, u64, u64)> = ar
            .entries()
            .unwrap()
            .map(|e| e.unwrap())
            .filter(|e| e.header().entry_type().is_file() && e.size() > 0)
            .map(|e| {
                (
                    String::from_utf8_lossy(&e.path_bytes()).into_owned(),
                    e.raw_file_position(),
                    e.size(),
                )
            })
            .collect();
        assert!(spans.len() >= 3, "{f}: {spans:?}");
        for (name, pos, size) in spans {
            if name.ends_with("oci-layout") {
                continue;
            }
            let mut damaged = bytes.clone();
            damaged[(pos + size / 2) as usize] ^= 0x04;
            let p = tmp.path().join(format!("flip-{f}"));
            fs::write(&p, &damaged).unwrap();
            let out = cnbpkg(["verify".as_ref(), p.as_os_str()]);
            assert_eq!(
                out.status.code(),
                Some(1),
                "{f}: flipped byte in {name} not found: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
}
