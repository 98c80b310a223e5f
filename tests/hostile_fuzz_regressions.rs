//! Every input the fuzzers found a bug with (fuzz/regressions/<target>/) and every committed
//! seed (fuzz/corpus/<target>/seed-*), run through the same code path as the fuzz target, in a
//! normal test build: none may panic, and the regressions must give the documented outcome.

mod common;

use std::fs;
use std::path::{Path, PathBuf};

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
