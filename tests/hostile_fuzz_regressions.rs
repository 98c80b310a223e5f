//! Every input the fuzzers found a bug with (fuzz/regressions/<target>/) and every committed
//! seed (fuzz/corpus/<target>/seed-*), run through the same code path as the fuzz target, in a
//! normal test build: none may panic, and the regressions must give the documented outcome.

mod common;

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

use cnbpkg::digest::Digest;
use cnbpkg::fuzzing;
use cnbpkg::oci::LayerEncoding;

use common::*;

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
        LayerEncoding::Gzip => flate2::read::GzDecoder::new(data)
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
