//! Layer building on real trees: walk order, hardlinks, overlays, determinism, Windows layout, flattening.

use crate::support;
use std::collections::BTreeMap;
use std::fs;
use std::io::Read;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};

use cnbpkg::internals::{walk, SourceKind};
use cnbpkg::internals::{
    write_module_layer, LayerBuilder, LayerFormat, LayerSpec, WINDOWS_ADMIN_RAWSD,
};

fn spec<'a>(
    root: &'a Path,
    format: LayerFormat,
    overlays: &'a [(String, PathBuf)],
) -> LayerSpec<'a> {
    LayerSpec {
        dist_dir: "buildpacks",
        id: "example/bp",
        version: "1.2.3",
        format,
        root,
        overlays,
    }
}

fn write(path: &Path, data: &str, mode: u32) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, data).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

/// (name, type byte, mode, linkname, PAX records) of every entry, read back with the `tar` crate.
type Listed = (String, u8, u32, String, BTreeMap<String, String>);

fn list(layer: &[u8]) -> Vec<Listed> {
    let mut ar = tar::Archive::new(layer);
    let mut out = Vec::new();
    for e in ar.entries().unwrap() {
        let mut e = e.unwrap();
        let name = String::from_utf8(e.path_bytes().into_owned()).unwrap();
        let link = e
            .link_name_bytes()
            .map(|b| String::from_utf8(b.into_owned()).unwrap())
            .unwrap_or_default();
        let mut pax = BTreeMap::new();
        if let Some(exts) = e.pax_extensions().unwrap() {
            for ext in exts {
                let ext = ext.unwrap();
                pax.insert(
                    ext.key().unwrap().to_string(),
                    ext.value().unwrap().to_string(),
                );
            }
        }
        let h = e.header();
        out.push((name, h.entry_type().as_byte(), h.mode().unwrap(), link, pax));
        let mut sink = Vec::new();
        e.read_to_end(&mut sink).unwrap();
    }
    out
}

#[test]
fn walk_order_is_per_directory_bytewise() {
    let tmp = tempfile::tempdir().unwrap();
    let r = tmp.path();
    for f in ["a-b", "a/x", "a/B", "README.md", "bin/build", ".hidden"] {
        write(&r.join(f), f, 0o644);
    }
    fs::create_dir(r.join("empty")).unwrap();
    let rels: Vec<String> = walk(r, &[]).unwrap().into_iter().map(|e| e.rel).collect();
    assert_eq!(
        rels,
        [
            ".hidden",
            "README.md",
            "a",
            "a/B",
            "a/x",
            "a-b",
            "bin",
            "bin/build",
            "empty"
        ]
    );
}

#[test]
fn hardlinks_overlays_and_special_files() {
    let tmp = tempfile::tempdir().unwrap();
    let r = tmp.path().join("root");
    write(&r.join("bin/build"), "#!/bin/sh\n", 0o755);
    fs::hard_link(r.join("bin/build"), r.join("bin/detect")).unwrap();
    write(&r.join("buildpack.toml"), "old", 0o644);
    symlink("../README", r.join("bin/readme")).unwrap();
    nix_mkfifo(&r.join("fifo"));
    let overlay = tmp.path().join("real.toml");
    write(&overlay, "api = \"0.10\"\n", 0o600);
    let extra = tmp.path().join("extra");
    write(&extra, "x", 0o600);
    let overlays = [
        ("buildpack.toml".to_string(), overlay.clone()),
        ("bin/zz".to_string(), extra),
    ];
    let entries = walk(&r, &overlays).unwrap();
    let rels: Vec<&str> = entries.iter().map(|e| e.rel.as_str()).collect();
    assert_eq!(
        rels,
        [
            "bin",
            "bin/build",
            "bin/detect",
            "bin/readme",
            "bin/zz",
            "buildpack.toml"
        ],
        "fifo skipped"
    );
    assert_eq!(
        entries[2].kind,
        SourceKind::Hardlink {
            first: "bin/build".into()
        }
    );
    assert_eq!(
        entries[3].kind,
        SourceKind::Symlink {
            target: "../README".into()
        }
    );
    assert_eq!(entries[5].path, overlay);
    assert_eq!(entries[5].kind, SourceKind::File { size: 13 });
    assert_eq!(
        entries[5].mode, 0o644,
        "an overlay keeps the mode of the file it replaces"
    );
    assert_eq!(
        entries[4].mode, 0o644,
        "a new overlay gets 0644, as os.Create gives it"
    );

    let layer = write_module_layer(&spec(&r, LayerFormat::Linux, &overlays), Vec::new()).unwrap();
    let listed = list(&layer);
    let base = "/cnb/buildpacks/example_bp/1.2.3";
    assert_eq!(listed[0].0, "/cnb/buildpacks/example_bp");
    assert_eq!(listed[1].0, base);
    assert_eq!(
        listed[4],
        (
            format!("{base}/bin/detect"),
            b'1',
            0o755,
            format!("{base}/bin/build"),
            BTreeMap::new()
        )
    );
    assert_eq!(
        (listed[5].1, listed[5].2, listed[5].3.as_str()),
        (b'2', 0o755, "../README")
    );
}

/// mkfifo through libc (a FIFO must be skipped, as pack skips special files it cannot package).
fn nix_mkfifo(path: &Path) {
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0);
}

#[test]
fn symlink_loop_and_device_are_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let r = tmp.path();
    symlink("b", r.join("a")).unwrap();
    symlink("a", r.join("b")).unwrap();
    let err = walk(r, &[]).unwrap_err().to_string();
    assert!(err.contains("symlink loop") && err.contains('a'), "{err}");

    let dev = tempfile::tempdir().unwrap();
    let node = dev.path().join("null");
    let c = std::ffi::CString::new(node.as_os_str().as_encoded_bytes()).unwrap();
    // Creating a device needs CAP_MKNOD; without it the check cannot be exercised here.
    if unsafe { libc::mknod(c.as_ptr(), libc::S_IFCHR | 0o644, libc::makedev(1, 3)) } == 0 {
        let err = walk(dev.path(), &[]).unwrap_err().to_string();
        assert!(err.contains("null") && err.contains("device"), "{err}");
    }
}

/// Build the same logical tree in a given order, with given mtimes and umask-affected modes.
fn make_tree(root: &Path, reverse: bool, mtime_offset: i64) {
    let mut files = vec![
        ("bin/build", 0o700),
        ("bin/detect", 0o744),
        ("lib/a.sh", 0o640),
        ("README.md", 0o600),
    ];
    if reverse {
        files.reverse();
        fs::create_dir_all(root.join("z/empty")).unwrap();
    }
    for (f, mode) in &files {
        write(&root.join(f), f, *mode);
    }
    fs::create_dir_all(root.join("z/empty")).unwrap();
    fs::set_permissions(
        root.join("lib"),
        fs::Permissions::from_mode(if reverse { 0o700 } else { 0o775 }),
    )
    .unwrap();
    symlink("lib/a.sh", root.join("link")).unwrap();
    for (f, _) in &files {
        let t = std::time::SystemTime::UNIX_EPOCH
            + std::time::Duration::from_secs((1_600_000_000 + mtime_offset) as u64);
        fs::File::options()
            .write(true)
            .open(root.join(f))
            .unwrap()
            .set_modified(t)
            .unwrap();
    }
}

#[test]
fn same_tree_gives_identical_bytes() {
    // The second tree is made under umask 077 (the whole test runs in a child with it), the
    // first with the usual modes set explicitly.
    if !support::with_umask_in_child(module_path!(), "same_tree_gives_identical_bytes", 0o077) {
        return;
    }
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    make_tree(a.path(), false, 0);
    for dir in ["", "bin", "z", "z/empty"] {
        fs::set_permissions(a.path().join(dir), fs::Permissions::from_mode(0o755)).unwrap();
    }
    make_tree(b.path(), true, 12345);
    for format in [LayerFormat::Linux, LayerFormat::Windows] {
        let la = write_module_layer(&spec(a.path(), format, &[]), Vec::new()).unwrap();
        let lb = write_module_layer(&spec(b.path(), format, &[]), Vec::new()).unwrap();
        assert!(la == lb, "{format:?} layers differ");
        // Every entry normalized: mtime 1980-01-01T00:00:01Z, root owner, 0755/0644.
        let mut ar = tar::Archive::new(&la[..]);
        for e in ar.entries().unwrap() {
            let h = e.unwrap().header().clone();
            if format == LayerFormat::Linux {
                assert_eq!(h.mtime().unwrap(), 315532801);
                assert!([0o755, 0o644].contains(&h.mode().unwrap()));
            }
            assert_eq!((h.uid().unwrap(), h.gid().unwrap()), (0, 0));
        }
    }
}

#[test]
fn windows_layer_order_and_security_descriptor() {
    let tmp = tempfile::tempdir().unwrap();
    write(&tmp.path().join("bin/build.bat"), "@echo off\r\n", 0o644);
    write(
        &tmp.path().join("buildpack.toml"),
        "api = \"0.10\"\n",
        0o644,
    );
    let layer =
        write_module_layer(&spec(tmp.path(), LayerFormat::Windows, &[]), Vec::new()).unwrap();
    let listed = list(&layer);
    let names: Vec<&str> = listed.iter().map(|l| l.0.as_str()).collect();
    let base = "Files/cnb/buildpacks/example_bp/1.2.3";
    assert_eq!(
        names,
        [
            "Files",
            "Hives",
            "Files/cnb",
            "Files/cnb/buildpacks",
            "Files/cnb/buildpacks/example_bp",
            base,
            &format!("{base}/bin"),
            &format!("{base}/bin/build.bat"),
            &format!("{base}/buildpack.toml"),
        ]
    );
    for (name, _, mode, _, pax) in &listed[..4] {
        assert_eq!((*mode, pax.len()), (0, 0), "{name}: plain parent dir");
    }
    for (name, _, _, _, pax) in &listed[4..] {
        assert_eq!(
            pax.get("MSWINDOWS.rawsd").map(String::as_str),
            Some(WINDOWS_ADMIN_RAWSD),
            "{name}"
        );
    }
    assert_eq!(
        listed[7].2, 0o644,
        "build.bat without an execute bit stays 0644"
    );
    // The x header that precedes the first module entry.
    let x = &layer[4 * 512..5 * 512];
    assert_eq!(&x[..36], b"Files/cnb/buildpacks/PaxHeaders.0/ex");
    assert_eq!(x[156], b'x');
    assert!(layer[5 * 512..6 * 512]
        .starts_with(format!("92 MSWINDOWS.rawsd={WINDOWS_ADMIN_RAWSD}\n").as_bytes()));
    assert!(layer.ends_with(&[0u8; 1024]));
}

#[test]
fn flattened_layer_holds_each_module_once() {
    let one = tempfile::tempdir().unwrap();
    let two = tempfile::tempdir().unwrap();
    write(&one.path().join("bin/build"), "1", 0o755);
    write(&two.path().join("bin/build"), "2", 0o755);
    let mut b = LayerBuilder::new(Vec::new(), LayerFormat::Linux);
    let s1 = spec(one.path(), LayerFormat::Linux, &[]);
    let s2 = LayerSpec {
        version: "2.0.0",
        root: two.path(),
        ..s1
    };
    assert!(b.add_module(&s1).unwrap());
    assert!(b.add_module(&s2).unwrap());
    assert!(!b.add_module(&s1).unwrap(), "a repeated module is skipped");
    assert!(b
        .add_module(&LayerSpec {
            format: LayerFormat::Windows,
            ..s1
        })
        .is_err());
    let layer = b.finish().unwrap();
    let names: Vec<String> = list(&layer).into_iter().map(|l| l.0).collect();
    assert_eq!(
        names,
        [
            "/cnb/buildpacks/example_bp",
            "/cnb/buildpacks/example_bp/1.2.3",
            "/cnb/buildpacks/example_bp/1.2.3/bin",
            "/cnb/buildpacks/example_bp/1.2.3/bin/build",
            "/cnb/buildpacks/example_bp/2.0.0",
            "/cnb/buildpacks/example_bp/2.0.0/bin",
            "/cnb/buildpacks/example_bp/2.0.0/bin/build",
        ]
    );
}

#[test]
fn unreadable_file_is_an_error_naming_it() {
    let tmp = tempfile::tempdir().unwrap();
    write(&tmp.path().join("secret"), "x", 0o000);
    if fs::File::open(tmp.path().join("secret")).is_ok() {
        return; // running as root: permissions do not stop reads
    }
    let err = write_module_layer(&spec(tmp.path(), LayerFormat::Linux, &[]), Vec::new())
        .unwrap_err()
        .to_string();
    assert!(err.contains("secret"), "{err}");
}
