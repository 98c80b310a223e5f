//! Every input the fuzzers found a bug with (fuzz/regressions/<target>/) and every committed
//! seed (fuzz/corpus/<target>/seed-*), run through the same code path as the fuzz target, in a
//! normal test build: none may panic, and the regressions must give the documented outcome.

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

use cnbpkg::digest::Digest;
use cnbpkg::fuzzing;
use cnbpkg::oci::LayerEncoding;

use crate::support::*;

/// The files of `fuzz/<kind>/<target>/` (seeds: only `seed-*`), sorted.
fn inputs(kind: &str, target: &str) -> Vec<PathBuf> {
    let dir = repo().join("fuzz").join(kind).join(target);
    let mut v: Vec<PathBuf> = match fs::read_dir(&dir) {
        Ok(it) => it.map(|e| e.unwrap().path()).collect(),
        Err(_) => vec![],
    };
    v.retain(|p| {
        let name = p.file_name().unwrap().to_string_lossy();
        !name.starts_with('.') && (kind != "corpus" || name.starts_with("seed-"))
    });
    v.sort();
    v
}

/// The `cnb_reader` fuzz target's body; returns the defects (or open error) for the assertions.
fn cnb_reader(data: &[u8]) -> Vec<String> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("input.cnb");
    fs::write(&path, data).unwrap();
    if let Ok(reader) = cnbpkg::layout::PackageReader::open(&path) {
        let _ = reader.images();
        let _ = reader.files();
    }
    cnbpkg::verify::verify(&path).unwrap().defects
}

fn target_parser(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let values: Vec<String> = text.split('\n').take(64).map(str::to_string).collect();
    if let Ok((targets, _)) = cnbpkg::target::parse_target_flags(&values) {
        for t in &targets {
            let _ = format!("{t:?}");
        }
    }
    let _ = cnbpkg::target::parse_target_flags(&[text.into_owned()]);
}

fn toml_readers(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = cnbpkg::descriptor::parse_buildpack_toml(Path::new("buildpack.toml"), text);
    let _ = cnbpkg::descriptor::parse_package_toml(Path::new("package.toml"), text);
}

#[test]
fn cnb_reader_seeds_are_sound_packages() {
    let seeds = inputs("corpus", "cnb_reader");
    assert!(seeds.len() >= 6, "seeds: {seeds:?}");
    for s in seeds {
        let defects = cnb_reader(&fs::read(&s).unwrap());
        assert!(defects.is_empty(), "{}: {defects:?}", s.display());
    }
}

#[test]
fn cnb_reader_regressions_are_rejected_without_panicking() {
    for input in inputs("regressions", "cnb_reader") {
        let data = fs::read(&input).unwrap();
        let defects = cnb_reader(&data);
        assert!(!defects.is_empty(), "{}: accepted", input.display());
        // The CLI gives exit 1 with one line per defect for the same file.
        let out = cnbpkg(["verify".as_ref(), input.as_os_str()]);
        assert_eq!(out.status.code(), Some(1), "{}", input.display());
    }
}

#[test]
fn target_parser_seeds_and_regressions_do_not_panic() {
    let mut n = 0;
    for input in inputs("corpus", "target_parser")
        .into_iter()
        .chain(inputs("regressions", "target_parser"))
    {
        target_parser(&fs::read(&input).unwrap());
        n += 1;
    }
    assert!(n >= 8);
}

#[test]
fn toml_reader_seeds_parse_and_regressions_do_not_panic() {
    let seeds = inputs("corpus", "toml_readers");
    assert!(seeds.len() >= 5);
    for s in &seeds {
        let text = fs::read_to_string(s).unwrap();
        let name = s.file_name().unwrap().to_string_lossy();
        if name.contains("buildpack") || name.contains("composite") {
            cnbpkg::descriptor::parse_buildpack_toml(Path::new("buildpack.toml"), &text)
                .unwrap_or_else(|e| panic!("{name}: {e}"));
        } else {
            cnbpkg::descriptor::parse_package_toml(Path::new("package.toml"), &text)
                .unwrap_or_else(|e| panic!("{name}: {e}"));
        }
    }
    for input in inputs("regressions", "toml_readers") {
        toml_readers(&fs::read(&input).unwrap());
    }
}

/// The `layer_reader` fuzz target's body (fuzz/fuzz_targets/layer_reader.rs).
fn layer_reader(data: &[u8]) {
    let encoding = layer_encoding(data);
    let _ = fuzzing::read_layer(data, encoding);
    let diff_id = Digest::of(b"");
    let _ = fuzzing::import_layer(data, encoding, diff_id, false);
    let _ = fuzzing::import_layer(data, encoding, diff_id, true);
    if encoding != LayerEncoding::Zstd {
        let _ = fuzzing::extract_archive(data);
    }
}

fn layer_encoding(data: &[u8]) -> LayerEncoding {
    if data.starts_with(&[0x1f, 0x8b]) {
        LayerEncoding::Gzip
    } else if data.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        LayerEncoding::Zstd
    } else {
        LayerEncoding::Tar
    }
}

/// The decompressed tar of a layer seed (its diffID's content).
fn unpacked(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    match layer_encoding(data) {
        LayerEncoding::Gzip => flate2::read::MultiGzDecoder::new(data)
            .read_to_end(&mut out)
            .unwrap(),
        LayerEncoding::Zstd => zstd::stream::read::Decoder::new(data)
            .unwrap()
            .read_to_end(&mut out)
            .unwrap(),
        LayerEncoding::Tar => {
            out = data.to_vec();
            0
        }
    };
    out
}

/// The `registry_responses` fuzz target's body (fuzz/fuzz_targets/registry_responses.rs).
fn registry_responses(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let line = data.split(|b| *b == b'\n').next().unwrap_or(b"");
    let line_text = String::from_utf8_lossy(line);
    let _ = format!("{:?}", fuzzing::parse_challenges(&text));
    let _ = fuzzing::parse_token_response(data);
    for registry in ["docker.io", "ghcr.io", "localhost:5000"] {
        let _ = fuzzing::lookup_credentials(data, registry).map(|f| format!("{f:?}"));
    }
    let _ = fuzzing::parse_retry_after(&line_text);
    let _ = fuzzing::parse_range_end(&line_text);
    let _ = fuzzing::upload_location(line);
    let _ = fuzzing::check_content_digest(line, data);
    let _ = fuzzing::describe_status(404, data);
    let _ = fuzzing::parse_reference(&line_text);
    let _ = fuzzing::load_manifest(data);
    let _ = fuzzing::load_image_config(data);
}

#[test]
fn layer_reader_seeds_read_cleanly_and_regressions_do_not_panic() {
    let seeds = inputs("corpus", "layer_reader");
    assert!(seeds.len() >= 5, "seeds: {seeds:?}");
    for s in &seeds {
        let data = fs::read(s).unwrap();
        let name = s.file_name().unwrap().to_string_lossy().into_owned();
        layer_reader(&data);
        let facts = fuzzing::read_layer(&data, layer_encoding(&data))
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        if name.starts_with("seed-fuzz-layer") {
            // cnbpkg's own layers: nothing misplaced, and a composite takes them as they are.
            assert!(facts.contains("violation_count: 0"), "{name}: {facts}");
            let diff_id = Digest::of(&unpacked(&data));
            fuzzing::import_layer(&data, layer_encoding(&data), diff_id, false)
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            fuzzing::import_layer(&data, layer_encoding(&data), diff_id, true)
                .unwrap_or_else(|e| panic!("{name}: {e}"));
        }
        if name.starts_with("seed-buildpack") {
            let n = fuzzing::extract_archive(&data).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert!(n >= 4, "{name}: {n} entries");
        }
    }
    for input in inputs("regressions", "layer_reader") {
        layer_reader(&fs::read(&input).unwrap());
    }
}

#[test]
fn registry_response_seeds_parse_and_regressions_do_not_panic() {
    let seeds = inputs("corpus", "registry_responses");
    assert!(seeds.len() >= 20, "seeds: {seeds:?}");
    for s in &seeds {
        let data = fs::read(s).unwrap();
        let name = s.file_name().unwrap().to_string_lossy().into_owned();
        registry_responses(&data);
        let text = String::from_utf8(data.clone()).unwrap();
        // Each seed is a real sample of its kind: its own parser accepts it.
        if name.starts_with("seed-challenge") {
            let c = fuzzing::parse_challenges(&text);
            assert!(
                c.iter().any(|c| c.param("realm").is_some()),
                "{name}: {c:?}"
            );
        } else if name.starts_with("seed-token") {
            fuzzing::parse_token_response(&data).unwrap_or_else(|e| panic!("{name}: {e}"));
        } else if name.starts_with("seed-config-docker") || name.starts_with("seed-auth") {
            let found = fuzzing::lookup_credentials(&data, "docker.io").unwrap();
            assert!(found.is_some(), "{name}");
        } else if name.starts_with("seed-config-bad") || name.starts_with("seed-config-bare") {
            let e = fuzzing::lookup_credentials(&data, "ghcr.io")
                .and(fuzzing::lookup_credentials(&data, "localhost:5000"))
                .unwrap_err()
                .to_string();
            // The error names the file and the fault, never the value.
            assert!(e.contains("config.json"), "{name}: {e}");
            assert!(
                !e.contains("dXNlcjpwYXNz") && !e.contains("bm90"),
                "{name}: {e}"
            );
        } else if name == "seed-retry-after" {
            assert!(fuzzing::parse_retry_after(&text).is_some());
        } else if name == "seed-range" {
            assert_eq!(fuzzing::parse_range_end(&text), Some(1048575));
        } else if name.starts_with("seed-location") {
            fuzzing::upload_location(&data).unwrap_or_else(|e| panic!("{name}: {e}"));
        } else if name == "seed-content-digest" {
            fuzzing::check_content_digest(&data, b"").unwrap();
        } else if name.starts_with("seed-reference") {
            fuzzing::parse_reference(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
        } else if name == "seed-registry-error" {
            assert!(fuzzing::describe_status(404, &data).contains("manifest unknown"));
        } else if name == "seed-config-image.json" {
            assert!(fuzzing::load_image_config(&data).is_some(), "{name}");
        } else if name.ends_with(".json") {
            assert!(fuzzing::load_manifest(&data).is_some(), "{name}");
        }
    }
    for input in inputs("regressions", "registry_responses") {
        registry_responses(&fs::read(&input).unwrap());
    }
}

/// A dependency layer's GNU long name is bounded when a composite imports the layer as it is,
/// as it is when the layer is flattened or verified: refused at the extended-header limit,
/// not read whole (a compressed layer of a few KiB can hold a name of gigabytes).
#[test]
fn layer_reader_long_name_in_imported_layer_is_bounded() {
    let input =
        repo().join("fuzz/regressions/layer_reader/gnu-longname-2mib-in-dependency-layer.tar.gz");
    let data = fs::read(input).unwrap();
    let diff_id = Digest::of(&unpacked(&data));
    for flatten in [false, true] {
        let e = fuzzing::import_layer(&data, LayerEncoding::Gzip, diff_id, flatten)
            .expect_err("a 2 MiB name was accepted")
            .to_string();
        assert!(
            e.contains("larger than the 1 MiB limit"),
            "flatten {flatten}: {e}"
        );
    }
    let e = fuzzing::read_layer(&data, LayerEncoding::Gzip).unwrap_err();
    assert!(e.to_string().contains("larger than the 1 MiB limit"), "{e}");
}

/// Store `bytes` in the layout at `root` under their digest; returns their descriptor.
fn put_blob(root: &Path, media_type: &str, bytes: &[u8]) -> serde_json::Value {
    let d = Digest::of(bytes);
    let dir = root.join("blobs/sha256");
    fs::create_dir_all(&dir).unwrap();
    fs::write(dir.join(d.hex()), bytes).unwrap();
    serde_json::json!({"mediaType": media_type, "digest": d.to_string(), "size": bytes.len()})
}

/// The same regression through the binary: a composite whose dependency's layer (sound
/// digests, diffID and label) holds a 2 MiB GNU long name is refused, whether the layer is
/// copied as it is, recompressed or flattened.
#[test]
fn layer_reader_long_name_in_dependency_layer_is_refused_by_package() {
    let tmp = tempfile::tempdir().unwrap();
    let work = tmp.path();
    let blob = fs::read(
        repo().join("fuzz/regressions/layer_reader/gnu-longname-2mib-in-dependency-layer.tar.gz"),
    )
    .unwrap();
    let diff_id = Digest::of(&unpacked(&blob)).to_string();
    let dep = work.join("dep");
    fs::create_dir_all(&dep).unwrap();
    fs::write(dep.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    let layers = serde_json::json!({"fuzz": {"1.0.0": {"api": "0.10", "layerDiffID": diff_id}}});
    let metadata = serde_json::json!({"id": "fuzz", "version": "1.0.0"});
    let config = serde_json::json!({
        "architecture": "amd64",
        "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        "config": {"Labels": {
            "io.buildpacks.buildpackage.metadata": metadata.to_string(),
            "io.buildpacks.buildpack.layers": layers.to_string(),
        }},
    });
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": put_blob(&dep, "application/vnd.oci.image.config.v1+json", config.to_string().as_bytes()),
        "layers": [put_blob(&dep, "application/vnd.oci.image.layer.v1.tar+gzip", &blob)],
    });
    let mut desc = put_blob(
        &dep,
        "application/vnd.oci.image.manifest.v1+json",
        manifest.to_string().as_bytes(),
    );
    desc["platform"] = serde_json::json!({"os": "linux", "architecture": "amd64"});
    let index = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [desc],
    });
    fs::write(dep.join("index.json"), index.to_string()).unwrap();
    let meta = work.join("meta");
    write_file(
        &meta.join("buildpack.toml"),
        "api = \"0.10\"\n[buildpack]\nid = \"t/meta\"\nversion = \"1.0.0\"\n\n[[order]]\n[[order.group]]\nid = \"fuzz\"\nversion = \"1.0.0\"\n",
        0o644,
    );
    let package_toml = work.join("package.toml");
    fs::write(
        &package_toml,
        format!(
            "[buildpack]\nuri = \"{}\"\n\n[[dependencies]]\nuri = \"{}\"\n\n[[targets]]\nos = \"linux\"\narch = \"amd64\"\n",
            meta.display(),
            dep.display()
        ),
    )
    .unwrap();
    for flags in [&[][..], &["--compression", "zstd"][..], &["--flatten"][..]] {
        let out = work.join("out.cnb");
        let mut args: Vec<String> = vec![
            "buildpack".into(),
            "package".into(),
            out.display().to_string(),
            "--config".into(),
            package_toml.display().to_string(),
            "-q".into(),
        ];
        args.extend(flags.iter().map(|s| s.to_string()));
        let err = fails(cnbpkg(args), 1);
        assert!(
            err.contains("larger than the 1 MiB limit"),
            "{flags:?}: {err}"
        );
        assert!(!out.exists(), "{flags:?}: output written");
    }
}
