//! Safe extraction of buildpack archives: good archives come out exact, hostile ones are refused without touching anything outside.

use crate::support;
use std::fs;
use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use cnbpkg::internals::{extract_archive, walk, SourceKind};
use cnbpkg::internals::{EntryType, Header, TarWriter};

/// A tar built with our writer, which (unlike the `tar` crate's builder) accepts hostile names.
fn archive(entries: &[(EntryType, &str, &str, u32)]) -> Vec<u8> {
    let mut tw = TarWriter::new(Vec::new());
    for (typ, name, content, mode) in entries {
        let mut h = Header::file(*name, *mode, 0);
        h.typ = *typ;
        match typ {
            EntryType::File => h.size = content.len() as u64,
            EntryType::Symlink | EntryType::Hardlink => h.linkname = content.to_string(),
            EntryType::Dir => {}
        }
        let data = if *typ == EntryType::File {
            content.as_bytes()
        } else {
            b""
        };
        tw.append(&h, &mut &data[..]).unwrap();
    }
    tw.finish().unwrap()
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(data).unwrap();
    gz.finish().unwrap()
}

/// Write `bytes` as an archive (named without a telling extension: gzip is sniffed) and extract
/// it into `<tmp>/root/dest`; returns the result and the temp dir holding everything.
fn extract(bytes: &[u8]) -> (Result<(), String>, tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("buildpack.archive");
    fs::write(&file, bytes).unwrap();
    let dest = tmp.path().join("root/dest");
    let result = extract_archive(&file, &dest).map_err(|e| e.to_string());
    (result, tmp, dest)
}

/// Every path under `dir` (recursively, not following links).
fn all_paths(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if fs::symlink_metadata(&p).unwrap().is_dir() {
                stack.push(p.clone());
            }
            out.push(p);
        }
    }
    out
}

/// Extraction must fail with a message naming the archive, the entry and `problem`, and leave
/// nothing beside `dest` (only the archive and `root/dest` exist in the temp dir).
fn assert_rejected(bytes: &[u8], entry: &str, problem: &str) {
    let (result, tmp, dest) = extract(bytes);
    let err = result.expect_err("archive must be rejected");
    assert!(
        err.contains("buildpack.archive") && err.contains(entry) && err.contains(problem),
        "{err}"
    );
    assert!(!err.contains('\n'), "one line: {err}");
    for p in all_paths(tmp.path()) {
        let outside = !p.starts_with(&dest);
        let expected = p == tmp.path().join("buildpack.archive") || p == tmp.path().join("root");
        assert!(
            !outside || expected,
            "{} was created outside dest",
            p.display()
        );
    }
}

#[test]
fn good_archive_round_trips_with_modes_and_hardlinks() {
    // Extraction must not depend on the umask: the whole test runs under umask 077.
    if !support::with_umask_in_child(
        module_path!(),
        "good_archive_round_trips_with_modes_and_hardlinks",
        0o077,
    ) {
        return;
    }
    let bytes = archive(&[
        (EntryType::Dir, "./", "", 0o755),
        (EntryType::File, "./bin/build", "#!/bin/sh\n", 0o750),
        (EntryType::Hardlink, "bin/detect", "./bin/build", 0o750),
        (EntryType::File, "buildpack.toml", "api = \"0.10\"\n", 0o604),
        (EntryType::Dir, "./ro", "", 0o555),
        (EntryType::File, "ro/inside", "x", 0o444),
        (EntryType::Symlink, "ro/up", "../buildpack.toml", 0o777),
        (EntryType::Dir, "bin", "", 0o711),
    ]);
    for bytes in [bytes.clone(), gzip(&bytes)] {
        let (result, _tmp, dest) = extract(&bytes);
        result.unwrap();
        let mode = |p: &str| fs::symlink_metadata(dest.join(p)).unwrap().mode() & 0o7777;
        assert_eq!(mode("bin"), 0o711);
        assert_eq!(mode("bin/build"), 0o750);
        assert_eq!(mode("buildpack.toml"), 0o604);
        // The owner always keeps access, so the scratch tree can be walked and removed by a
        // user who is not root; a layer's modes are normalized from the rest.
        assert_eq!(mode("ro"), 0o755);
        assert_eq!(mode("ro/inside"), 0o644);
        assert_eq!(
            fs::read_link(dest.join("ro/up")).unwrap(),
            Path::new("../buildpack.toml")
        );
        let entries = walk(&dest, &[]).unwrap();
        let detect = entries.iter().find(|e| e.rel == "bin/detect").unwrap();
        assert_eq!(
            detect.kind,
            SourceKind::Hardlink {
                first: "bin/build".into()
            }
        );
        fs::set_permissions(dest.join("ro"), fs::Permissions::from_mode(0o755)).unwrap();
    }
}

#[test]
fn parent_traversal_is_rejected() {
    assert_rejected(
        &archive(&[(EntryType::File, "../x", "evil", 0o644)]),
        "../x",
        "'..'",
    );
    assert_rejected(
        &gzip(&archive(&[(EntryType::File, "a/../../x", "evil", 0o644)])),
        "a/../../x",
        "'..'",
    );
}

#[test]
fn absolute_path_is_rejected() {
    let target = format!("/tmp/cnbpkg-escape-{}", std::process::id());
    assert_rejected(
        &archive(&[(EntryType::File, &target, "evil", 0o644)]),
        &target,
        "absolute path",
    );
    assert!(!Path::new(&target).exists());
}

#[test]
fn escaping_symlink_and_writes_through_symlinks_are_rejected() {
    // A link may point anywhere (its target is data for the container), but nothing may be
    // written through it.
    assert_rejected(
        &archive(&[
            (EntryType::Symlink, "out", "../..", 0o777),
            (EntryType::File, "out/x", "evil", 0o644),
        ]),
        "out/x",
        "through the symlink 'out'",
    );
    assert_rejected(
        &archive(&[
            (EntryType::Symlink, "abs", "/etc", 0o777),
            (EntryType::Dir, "abs/sub", "", 0o755),
        ]),
        "abs/sub",
        "through the symlink 'abs'",
    );
    // A link that stays inside is fine on its own, but nothing may be written through it.
    assert_rejected(
        &archive(&[
            (EntryType::Dir, "real", "", 0o755),
            (EntryType::Symlink, "alias", "real", 0o777),
            (EntryType::File, "alias/x", "data", 0o644),
        ]),
        "alias/x",
        "through the symlink 'alias'",
    );
    // Links that loop only through another link are found once the whole tree is known.
    assert_rejected(
        &archive(&[
            (EntryType::Dir, "a", "", 0o755),
            (EntryType::Symlink, "a/b", "../c", 0o777),
            (EntryType::Symlink, "c", "a/b", 0o777),
        ]),
        "c",
        "symlink loop",
    );
}

#[test]
fn hardlink_outside_is_rejected() {
    assert_rejected(
        &archive(&[(EntryType::Hardlink, "h", "../../etc/passwd", 0o644)]),
        "h",
        "escapes the archive root",
    );
    assert_rejected(
        &archive(&[(EntryType::Hardlink, "h", "/etc/passwd", 0o644)]),
        "h",
        "escapes the archive root",
    );
    assert_rejected(
        &archive(&[(EntryType::Hardlink, "h", "missing", 0o644)]),
        "h",
        "not a file extracted earlier",
    );
}

#[test]
fn device_and_fifo_entries_are_rejected() {
    for (typ, problem) in [
        (tar::EntryType::Char, "device"),
        (tar::EntryType::Block, "device"),
        (tar::EntryType::Fifo, "FIFO"),
    ] {
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_ustar();
        h.set_path("dev/node").unwrap();
        h.set_entry_type(typ);
        h.set_size(0);
        h.set_mode(0o644);
        h.set_cksum();
        b.append(&h, std::io::empty()).unwrap();
        assert_rejected(&b.into_inner().unwrap(), "dev/node", problem);
    }
}

#[test]
fn conflicting_duplicates_are_rejected() {
    assert_rejected(
        &archive(&[
            (EntryType::File, "f", "one", 0o644),
            (EntryType::File, "f", "two", 0o644),
        ]),
        "f",
        "duplicate",
    );
    assert_rejected(
        &archive(&[
            (EntryType::File, "f", "one", 0o644),
            (EntryType::Dir, "f/", "", 0o755),
        ]),
        "f",
        "duplicate",
    );
    assert_rejected(
        &archive(&[
            (EntryType::File, "f", "one", 0o644),
            (EntryType::File, "f/g", "two", 0o644),
        ]),
        "f/g",
        "not a directory",
    );
}

#[test]
fn non_empty_destination_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("a.tar");
    fs::write(&file, archive(&[(EntryType::File, "x", "1", 0o644)])).unwrap();
    fs::write(tmp.path().join("existing"), "keep").unwrap();
    let err = extract_archive(&file, tmp.path()).unwrap_err().to_string();
    assert!(err.contains("not empty"), "{err}");
}

#[test]
fn garbage_is_a_clear_error() {
    let (result, _tmp, _dest) = extract(&gzip(
        b"this is not a tar archive at all, just text padding it out",
    ));
    let err = result.unwrap_err();
    assert!(err.contains("buildpack.archive"), "{err}");
}
