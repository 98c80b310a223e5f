//! Hostile input wherever a package, archive or directory is read: `.tgz`/`.tar` buildpacks,
//! `.cnb` and layout dependencies, and source trees. Every bad input must give exit 1 with a
//! one-line error, and nothing may be written: no output, no temporary file beside it, nothing
//! left in the temp directory.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Output;

use crate::support::rawtar::{self, gzip, Entry};
use crate::support::*;
use serde_json::{json, Value};
use sha2::{Digest as _, Sha256};

/// A sandbox: `work` holds inputs and the output's directory, `tmp` is cnbpkg's TMPDIR.
struct Sandbox {
    _dir: tempfile::TempDir,
    work: PathBuf,
    out_dir: PathBuf,
    tmp: PathBuf,
}

impl Sandbox {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let work = dir.path().join("work");
        let out_dir = dir.path().join("out");
        let tmp = dir.path().join("tmp");
        for d in [&work, &out_dir, &tmp] {
            fs::create_dir_all(d).unwrap();
        }
        Sandbox {
            _dir: dir,
            work,
            out_dir,
            tmp,
        }
    }

    fn run(&self, args: &[&std::ffi::OsStr]) -> Output {
        child::output(
            cnbpkg_command()
                .args(args)
                .env("TMPDIR", &self.tmp)
                .current_dir(&self.work),
        )
    }

    /// Package `--path src` (or `--config`) into out/pkg.cnb and expect a clean refusal
    /// mentioning `expect`.
    fn refuse(&self, flag: &str, input: &Path, expect: &str, what: &str) {
        for format in ["file", "layout"] {
            let out = self.out_dir.join("pkg.cnb");
            let o = self.run(&[
                "buildpack".as_ref(),
                "package".as_ref(),
                out.as_os_str(),
                flag.as_ref(),
                input.as_os_str(),
                "--format".as_ref(),
                format.as_ref(),
            ]);
            self.assert_refused(o, expect, &format!("{what} (--format {format})"));
        }
    }

    fn assert_refused(&self, o: Output, expect: &str, what: &str) {
        let stderr = String::from_utf8_lossy(&o.stderr).into_owned();
        assert_eq!(
            o.status.code(),
            Some(1),
            "{what}: expected exit 1\nstdout: {}\nstderr: {stderr}",
            String::from_utf8_lossy(&o.stdout)
        );
        let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error")).collect();
        assert_eq!(errors.len(), 1, "{what}: want one error line:\n{stderr}");
        assert!(
            errors[0].to_lowercase().contains(&expect.to_lowercase()),
            "{what}: error does not mention '{expect}':\n{stderr}"
        );
        assert!(
            list(&self.out_dir).is_empty(),
            "{what}: files left in the output directory: {:?}",
            list(&self.out_dir)
        );
        assert!(
            list(&self.tmp).is_empty(),
            "{what}: files left in TMPDIR: {:?}",
            list(&self.tmp)
        );
    }
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

// ---------------------------------------------------------------------------------------------
// Entry tar entries (support::rawtar), written the way these tests always have: GNU headers,
// executables 0755 and everything else 0644, devices 1:3.
// ---------------------------------------------------------------------------------------------

fn file(name: &str, data: &[u8], _mode: u32) -> Entry {
    Entry::file(name, data)
}

fn link(name: &str, kind: tar::EntryType, target: &str) -> Entry {
    Entry::link(name, kind, target)
}

fn flavored(e: &Entry) -> Entry {
    let exe = e.name.ends_with(b"bin/build") || e.name.ends_with(b"bin/detect");
    let e = e.clone().gnu().mode(if exe { 0o755 } else { 0o644 });
    if matches!(e.kind, tar::EntryType::Char | tar::EntryType::Block) {
        e.device(1, 3)
    } else {
        e
    }
}

/// Tar bytes of `entries` (data written as given; a claimed size larger than the data makes a
/// short file), with the end of the archive when `end`.
fn tar_bytes(entries: &[Entry], end: bool) -> Vec<u8> {
    let entries: Vec<Entry> = entries.iter().map(flavored).collect();
    if end {
        rawtar::archive(&entries)
    } else {
        rawtar::entries(&entries)
    }
}

fn good_entries() -> Vec<Entry> {
    vec![
        file(
            "buildpack.toml",
            b"api = \"0.10\"\n[buildpack]\nid = \"t/evil\"\nversion = \"1.0.0\"\n[[targets]]\nos = \"linux\"\narch = \"amd64\"\n",
            0o644,
        ),
        file("bin/build", b"#!/bin/sh\n", 0o755),
        file("bin/detect", b"#!/bin/sh\n", 0o755),
    ]
}

/// The hostile entries for buildpack archives, each with what the error must say.
fn hostile_archive_entries() -> Vec<(&'static str, Entry, &'static str)> {
    use tar::EntryType as T;
    vec![
        ("dot-dot", file("../evil", b"x", 0o644), "'..' component"),
        (
            "nested dot-dot",
            file("bin/../../evil", b"x", 0o644),
            "'..' component",
        ),
        (
            "absolute path",
            file("/tmp/cnbpkg-evil", b"x", 0o644),
            "absolute",
        ),
        // A symlink to an absolute path or climbing out is data for the container and is
        // kept (attack_content_links); what is refused is writing through one (below).
        (
            "hardlink to an absolute path",
            link("bin/hard", T::Link, "/etc/passwd"),
            "hardlink",
        ),
        (
            "hardlink climbing out",
            link("bin/hard", T::Link, "../outside"),
            "hardlink",
        ),
        (
            "character device",
            link("bin/null", T::Char, ""),
            "device entries",
        ),
        (
            "block device",
            link("bin/disk", T::Block, ""),
            "device entries",
        ),
        ("fifo", link("bin/fifo", T::Fifo, ""), "FIFO entries"),
    ]
}

#[test]
fn hostile_buildpack_archives_are_refused_and_nothing_is_written() {
    let sb = Sandbox::new();
    // The good archive packages: the hostile entry is the only problem.
    let good = sb.work.join("good.tgz");
    fs::write(&good, gzip(&tar_bytes(&good_entries(), true))).unwrap();
    let out = sb.out_dir.join("good.cnb");
    let o = sb.run(&[
        "buildpack".as_ref(),
        "package".as_ref(),
        out.as_os_str(),
        "--path".as_ref(),
        good.as_os_str(),
    ]);
    ok(o);
    fs::remove_file(&out).unwrap();
    assert!(list(&sb.tmp).is_empty());

    for (what, entry, expect) in hostile_archive_entries() {
        let mut entries = good_entries();
        entries.insert(1, entry);
        let bytes = tar_bytes(&entries, true);
        for (ext, data) in [("tar", bytes.clone()), ("tgz", gzip(&bytes))] {
            let path = sb.work.join(format!("evil.{ext}"));
            fs::write(&path, &data).unwrap();
            sb.refuse("--path", &path, expect, &format!("{what} in .{ext}"));
        }
    }
    assert!(!Path::new("/tmp/cnbpkg-evil").exists());
}

#[test]
fn a_symlink_then_a_file_written_through_it_is_refused() {
    let sb = Sandbox::new();
    let outside = sb.work.join("outside");
    fs::create_dir_all(&outside).unwrap();
    let mut entries = good_entries();
    // An in-tree-looking link to a directory, then a file through it: refused before writing.
    entries.push(link("lib", tar::EntryType::Symlink, "bin"));
    entries.push(file("lib/x", b"through the link", 0o644));
    let path = sb.work.join("through.tgz");
    fs::write(&path, gzip(&tar_bytes(&entries, true))).unwrap();
    sb.refuse("--path", &path, "symlink", "write through a symlink");
    assert!(list(&outside).is_empty());
}

#[test]
fn huge_declared_sizes_are_refused() {
    let sb = Sandbox::new();
    // A header claiming 1 TiB in a file of a few kilobytes: in a .tar, a .tgz and a .cnb.
    let mut entries = good_entries();
    let mut huge = file("bin/huge", b"only a little data", 0o644);
    huge.claimed_size = Some(1 << 40);
    entries.push(huge);
    let bytes = tar_bytes(&entries, true);
    for (ext, data) in [("tar", bytes.clone()), ("tgz", gzip(&bytes))] {
        let path = sb.work.join(format!("huge.{ext}"));
        fs::write(&path, &data).unwrap();
        sb.refuse(
            "--path",
            &path,
            "declares 1099511627776 bytes",
            &format!("1 TiB entry in .{ext}"),
        );
    }
}

#[test]
fn an_entry_longer_than_the_archive_is_refused_as_truncated() {
    let sb = Sandbox::new();
    let mut entries = good_entries();
    let mut short = file("bin/short", b"only a little data", 0o644);
    short.claimed_size = Some(1 << 20);
    entries.push(short);
    let bytes = tar_bytes(&entries, false);
    for (ext, data) in [("tar", bytes.clone()), ("tgz", gzip(&bytes))] {
        let path = sb.work.join(format!("short.{ext}"));
        fs::write(&path, &data).unwrap();
        sb.refuse(
            "--path",
            &path,
            "truncated archive",
            &format!("short entry in .{ext}"),
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Package dependencies
// ---------------------------------------------------------------------------------------------

/// A composite buildpack directory and package.toml depending on `dep` (hello-bash 1.0.0).
fn composite_config(sb: &Sandbox, dep: &Path) -> PathBuf {
    let comp = sb.work.join("composite");
    fs::create_dir_all(&comp).unwrap();
    fs::write(
        comp.join("buildpack.toml"),
        "api = \"0.10\"\n[buildpack]\nid = \"t/composite\"\nversion = \"1.0.0\"\n\n[[order]]\n[[order.group]]\nid = \"examples/hello-bash\"\nversion = \"1.0.0\"\n",
    )
    .unwrap();
    let config = sb.work.join("package.toml");
    fs::write(
        &config,
        format!(
            "[buildpack]\nuri = \"{}\"\n\n[[dependencies]]\nuri = \"{}\"\n\n[[targets]]\nos = \"linux\"\narch = \"amd64\"\n",
            comp.display(),
            dep.display()
        ),
    )
    .unwrap();
    config
}

/// A good single-platform hello-bash package as a layout directory (uncompressed layers).
fn good_dependency_layout(dir: &Path) -> PathBuf {
    let out = dir.join("dep-layout");
    ok(cnbpkg([
        "buildpack".as_ref(),
        "package".as_ref(),
        out.as_os_str(),
        "--path".as_ref(),
        sample("hello-bash").as_os_str(),
        "-t".as_ref(),
        "linux/amd64".as_ref(),
        "--format".as_ref(),
        "layout".as_ref(),
        "-q".as_ref(),
    ]));
    out
}

/// The regular files of a layout as (name, bytes), oci-layout and index.json first.
fn layout_files(layout: &Path) -> Vec<(String, Vec<u8>)> {
    let mut v = vec![
        (
            "oci-layout".to_string(),
            fs::read(layout.join("oci-layout")).unwrap(),
        ),
        (
            "index.json".to_string(),
            fs::read(layout.join("index.json")).unwrap(),
        ),
    ];
    let mut blobs: Vec<_> = fs::read_dir(layout.join("blobs/sha256"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    blobs.sort();
    for b in blobs {
        let data = fs::read(layout.join("blobs/sha256").join(&b)).unwrap();
        v.push((format!("blobs/sha256/{b}"), data));
    }
    v
}

/// A `.cnb` of the layout's files with `extra` entries appended before the end.
fn cnb_with(layout: &Path, extra: Vec<Entry>) -> Vec<u8> {
    let mut entries: Vec<Entry> = layout_files(layout)
        .into_iter()
        .map(|(n, d)| file(&n, &d, 0o644))
        .collect();
    entries.extend(extra);
    tar_bytes(&entries, true)
}

#[test]
fn hostile_cnb_dependencies_are_refused_and_nothing_is_written() {
    use tar::EntryType as T;
    let sb = Sandbox::new();
    let layout = good_dependency_layout(&sb.work);
    let dep = sb.work.join("dep.cnb");
    let config = composite_config(&sb, &dep);

    // The good dependency packages: each hostile variant differs from it by one entry.
    fs::write(&dep, cnb_with(&layout, vec![])).unwrap();
    let out = sb.out_dir.join("good.cnb");
    ok(sb.run(&[
        "buildpack".as_ref(),
        "package".as_ref(),
        out.as_os_str(),
        "--config".as_ref(),
        config.as_os_str(),
    ]));
    fs::remove_file(&out).unwrap();

    let mut huge = file("blobs/sha256/huge", b"tiny", 0o644);
    huge.claimed_size = Some(1 << 40);
    let cases: Vec<(&str, Entry, &str)> = vec![
        (
            "dot-dot",
            file("blobs/../../evil", b"x", 0o644),
            "unsafe entry name",
        ),
        (
            "symlink",
            link("blobs/sha256/evil", T::Symlink, "/etc/passwd"),
            "unsupported type",
        ),
        (
            "hardlink",
            link("blobs/sha256/evil", T::Link, "../../etc/passwd"),
            "unsupported type",
        ),
        (
            "char device",
            link("blobs/dev", T::Char, ""),
            "unsupported type",
        ),
        (
            "block device",
            link("blobs/dev", T::Block, ""),
            "unsupported type",
        ),
        ("fifo", link("blobs/fifo", T::Fifo, ""), "unsupported type"),
        ("duplicate", file("./index.json", b"{}", 0o644), "duplicate"),
        ("1 TiB entry", huge, "truncated"),
    ];
    for (what, raw, expect) in cases {
        fs::write(&dep, cnb_with(&layout, vec![raw])).unwrap();
        sb.refuse(
            "--config",
            &config,
            expect,
            &format!(".cnb dependency with {what}"),
        );
    }

    // A gzip-compressed .cnb is a buildpack archive to the loader; it has no buildpack.toml.
    fs::write(&dep, gzip(&cnb_with(&layout, vec![]))).unwrap();
    sb.refuse(
        "--config",
        &config,
        "buildpack.toml",
        "gzip-compressed .cnb dependency",
    );

    // Truncated.
    let good = cnb_with(&layout, vec![]);
    fs::write(&dep, &good[..good.len() / 2]).unwrap();
    sb.refuse("--config", &config, "", "truncated .cnb dependency");
}

#[test]
fn very_many_entries_in_a_cnb_are_refused() {
    let sb = Sandbox::new();
    let layout = good_dependency_layout(&sb.work);
    let dep = sb.work.join("dep.cnb");
    let config = composite_config(&sb, &dep);
    // The reader's limit (src/layout/reader.rs MAX_ENTRIES).
    let n = 100_000 + 1;
    let mut entries: Vec<Entry> = layout_files(&layout)
        .into_iter()
        .map(|(n, d)| file(&n, &d, 0o644))
        .collect();
    // Directory entries cost 512 bytes each and are otherwise ignored: only the count stops them.
    for _ in 0..n {
        entries.push(Entry::dir("blobs/"));
    }
    fs::write(&dep, tar_bytes(&entries, true)).unwrap();
    sb.refuse(
        "--config",
        &config,
        "entries",
        "a .cnb with too many entries",
    );
    let o = cnbpkg(["verify".as_ref(), dep.as_os_str()]);
    assert_eq!(o.status.code(), Some(1));
}

#[test]
fn very_many_entries_in_a_buildpack_archive_are_refused() {
    let sb = Sandbox::new();
    let n = cnbpkg::internals::MAX_EXTRACT_ENTRIES + 1;
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(&tar_bytes(&good_entries(), false)).unwrap();
    // The same directory over and over: no disk use, so only the count can stop it.
    let dir = Entry::dir("bin/").gnu().header();
    let mut block = Vec::with_capacity(512 * 4096);
    for _ in 0..4096 {
        block.extend_from_slice(dir.as_bytes());
    }
    for _ in 0..n.div_ceil(4096) {
        e.write_all(&block).unwrap();
    }
    e.write_all(&[0u8; 1024]).unwrap();
    let path = sb.work.join("many.tgz");
    fs::write(&path, e.finish().unwrap()).unwrap();
    sb.refuse("--path", &path, "entries", "a .tgz with too many entries");
}

/// Write a JSON blob into a layout, returning its descriptor.
fn put_json(layout: &Path, media_type: &str, value: &Value) -> Value {
    let bytes = serde_json::to_vec(value).unwrap();
    let hex = sha256_hex(&bytes);
    fs::write(layout.join("blobs/sha256").join(&hex), &bytes).unwrap();
    json!({"mediaType": media_type, "digest": format!("sha256:{hex}"), "size": bytes.len()})
}

const INDEX: &str = "application/vnd.oci.image.index.v1+json";

#[test]
fn absurd_index_nesting_and_fan_out_are_refused() {
    let sb = Sandbox::new();
    let layout = good_dependency_layout(&sb.work);
    let config = composite_config(&sb, &layout);
    let original: Value =
        serde_json::from_slice(&fs::read(layout.join("index.json")).unwrap()).unwrap();
    let manifest = original["manifests"][0].clone();

    // 40 indexes deep.
    let mut desc = manifest.clone();
    for _ in 0..40 {
        desc = put_json(
            &layout,
            INDEX,
            &json!({"schemaVersion": 2, "mediaType": INDEX, "manifests": [desc]}),
        );
    }
    let top = json!({"schemaVersion": 2, "mediaType": INDEX, "manifests": [desc]});
    fs::write(layout.join("index.json"), top.to_string()).unwrap();
    sb.refuse(
        "--config",
        &config,
        "nested too deeply",
        "indexes nested 40 deep",
    );
    let o = cnbpkg(["verify".as_ref(), layout.as_os_str()]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stdout).contains("nested too deeply"));

    // Fan-out: 8 levels of indexes each listing the next 64 times would be 64^8 visits.
    let mut desc = manifest.clone();
    for _ in 0..8 {
        let list: Vec<Value> = std::iter::repeat_n(desc.clone(), 64).collect();
        desc = put_json(
            &layout,
            INDEX,
            &json!({"schemaVersion": 2, "mediaType": INDEX, "manifests": list}),
        );
    }
    let top = json!({"schemaVersion": 2, "mediaType": INDEX, "manifests": [desc]});
    fs::write(layout.join("index.json"), top.to_string()).unwrap();
    // Finishes (bounded work) and fails cleanly: the layout has unreferenced blobs left from the
    // deep chain, which verify reports; the packager refuses the dependency or accepts one image.
    let o = cnbpkg(["verify".as_ref(), layout.as_os_str()]);
    assert_eq!(
        o.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );

    // One manifest listed 5000 times.
    let list: Vec<Value> = std::iter::repeat_n(manifest.clone(), 5000).collect();
    let top = json!({"schemaVersion": 2, "mediaType": INDEX, "manifests": list});
    fs::write(layout.join("index.json"), top.to_string()).unwrap();
    sb.refuse(
        "--config",
        &config,
        "images",
        "one manifest listed 5000 times",
    );
}

#[test]
fn a_manifest_claiming_a_10_gib_config_is_refused() {
    let sb = Sandbox::new();
    let layout = good_dependency_layout(&sb.work);
    let config = composite_config(&sb, &layout);
    let index: Value =
        serde_json::from_slice(&fs::read(layout.join("index.json")).unwrap()).unwrap();
    let mhex = index["manifests"][0]["digest"].as_str().unwrap()[7..].to_string();
    let mut manifest: Value =
        serde_json::from_slice(&fs::read(layout.join("blobs/sha256").join(&mhex)).unwrap())
            .unwrap();
    manifest["config"]["size"] = json!(10u64 << 30);
    let desc = put_json(
        &layout,
        "application/vnd.oci.image.manifest.v1+json",
        &manifest,
    );
    fs::remove_file(layout.join("blobs/sha256").join(&mhex)).unwrap();
    let mut index = index;
    index["manifests"][0]["digest"] = desc["digest"].clone();
    index["manifests"][0]["size"] = desc["size"].clone();
    fs::write(layout.join("index.json"), index.to_string()).unwrap();
    sb.refuse(
        "--config",
        &config,
        "limit",
        "10 GiB config in a layout dependency",
    );

    // The same as a .cnb.
    let dep = sb.work.join("dep.cnb");
    fs::write(&dep, cnb_with(&layout, vec![])).unwrap();
    let config = composite_config(&sb, &dep);
    sb.refuse(
        "--config",
        &config,
        "limit",
        "10 GiB config in a .cnb dependency",
    );
    let o = cnbpkg(["verify".as_ref(), dep.as_os_str()]);
    assert_eq!(o.status.code(), Some(1));
}

#[test]
fn a_layout_dependency_with_symlinked_blobs_is_refused() {
    let sb = Sandbox::new();
    let layout = good_dependency_layout(&sb.work);
    let config = composite_config(&sb, &layout);
    // Replace the config blob by a symlink to the real bytes elsewhere: never followed.
    let index: Value =
        serde_json::from_slice(&fs::read(layout.join("index.json")).unwrap()).unwrap();
    let mhex = &index["manifests"][0]["digest"].as_str().unwrap()[7..];
    let manifest: Value =
        serde_json::from_slice(&fs::read(layout.join("blobs/sha256").join(mhex)).unwrap()).unwrap();
    let chex = &manifest["config"]["digest"].as_str().unwrap()[7..];
    let blob = layout.join("blobs/sha256").join(chex);
    let moved = sb.work.join("config-elsewhere");
    fs::rename(&blob, &moved).unwrap();
    std::os::unix::fs::symlink(&moved, &blob).unwrap();
    sb.refuse(
        "--config",
        &config,
        "",
        "symlinked blob in a layout dependency",
    );
    let o = cnbpkg(["verify".as_ref(), layout.as_os_str()]);
    assert_eq!(o.status.code(), Some(1));
}

// ---------------------------------------------------------------------------------------------
// Source trees
// ---------------------------------------------------------------------------------------------

#[test]
fn symlinks_pointing_outside_a_source_tree_are_kept_as_links_never_followed() {
    let sb = Sandbox::new();
    let secret = sb.work.join("secret.txt");
    fs::write(&secret, "TOP-SECRET-CONTENT").unwrap();
    // A link's target is data, resolved in the container that runs the buildpack (pack keeps
    // such links too): it is stored unchanged and never followed, so nothing it points at on
    // this machine reaches the layer. Nothing can be placed through it (see
    // attack_content_links).
    for (name, target) in [
        ("abs-link", secret.clone()),
        ("rel-link", PathBuf::from("../secret.txt")),
        ("dir-link", sb.work.clone()),
        ("up-link", PathBuf::from("bin/../../x")),
    ] {
        let src = sb.work.join(format!("bp-{name}"));
        minimal_buildpack(&src, "t/links", "1.0.0", "");
        std::os::unix::fs::symlink(&target, src.join(name)).unwrap();
        let out = sb.out_dir.join(format!("{name}.cnb"));
        ok(sb.run(&[
            "buildpack".as_ref(),
            "package".as_ref(),
            out.as_os_str(),
            "--path".as_ref(),
            src.as_os_str(),
            "--compression".as_ref(),
            "none".as_ref(),
        ]));
        ok(cnbpkg(["verify".as_ref(), out.as_os_str()]));
        let bytes = fs::read(&out).unwrap();
        assert!(
            !bytes.windows(18).any(|w| w == b"TOP-SECRET-CONTENT"),
            "{name}: the link was followed"
        );
        let target = target.to_string_lossy().into_owned();
        assert!(
            bytes.windows(target.len()).any(|w| w == target.as_bytes()),
            "{name}: target not kept"
        );
    }
    let src = sb.work.join("bp");
    minimal_buildpack(&src, "t/links", "1.0.0", "");
    std::os::unix::fs::symlink("build", src.join("bin/in-link")).unwrap();
    std::os::unix::fs::symlink("../bin", src.join("bin/dir-in-link")).unwrap();
    let out = sb.out_dir.join("links");
    ok(sb.run(&[
        "buildpack".as_ref(),
        "package".as_ref(),
        out.as_os_str(),
        "--path".as_ref(),
        src.as_os_str(),
        "--format".as_ref(),
        "layout".as_ref(),
        "--compression".as_ref(),
        "none".as_ref(),
        "-t".as_ref(),
        "linux/amd64".as_ref(),
    ]));
    ok(cnbpkg(["verify".as_ref(), out.as_os_str()]));
    let mut found = std::collections::BTreeMap::new();
    for e in fs::read_dir(out.join("blobs/sha256")).unwrap() {
        let bytes = fs::read(e.unwrap().path()).unwrap();
        if serde_json::from_slice::<Value>(&bytes).is_ok() {
            continue;
        }
        let mut ar = tar::Archive::new(&bytes[..]);
        for entry in ar.entries().unwrap() {
            let entry = entry.unwrap();
            let name = entry.path().unwrap().to_string_lossy().into_owned();
            if name.ends_with("-link") {
                let target = entry.link_name().unwrap().unwrap();
                found.insert(
                    name.rsplit('/').next().unwrap().to_string(),
                    (
                        entry.header().entry_type(),
                        target.to_string_lossy().into_owned(),
                    ),
                );
            }
        }
    }
    assert_eq!(
        found["in-link"],
        (tar::EntryType::Symlink, "build".to_string())
    );
    assert_eq!(
        found["dir-in-link"],
        (tar::EntryType::Symlink, "../bin".to_string())
    );
    assert!(list(&sb.tmp).is_empty());
}

#[test]
fn device_files_in_a_source_tree_are_refused() {
    // mknod needs privileges; a device node that already exists can be linked in as a symlink
    // only, which is fine. Use a FIFO-free check instead: a tree whose bin/build is /dev/null
    // bind is not possible unprivileged, so create a real device when we can.
    let sb = Sandbox::new();
    let src = sb.work.join("bp");
    minimal_buildpack(&src, "t/dev", "1.0.0", "");
    let dev = src.join("null");
    let c = std::ffi::CString::new(dev.to_string_lossy().as_bytes()).unwrap();
    let made = unsafe { libc::mknod(c.as_ptr(), libc::S_IFCHR | 0o666, libc::makedev(1, 3)) };
    if made != 0 {
        eprintln!("skipping: cannot create a device node here");
        return;
    }
    sb.refuse("--path", &src, "device", "a device file in a source tree");
}

#[test]
fn many_manifests_sharing_a_large_config_are_refused() {
    // 200 manifests (distinct by an annotation) share one 2 MiB config: a few MiB of input that
    // would cost 400 MiB if every image kept its own copy of the config.
    let sb = Sandbox::new();
    let layout = good_dependency_layout(&sb.work);
    let config = composite_config(&sb, &layout);
    let blobs = layout.join("blobs/sha256");
    let index: Value =
        serde_json::from_slice(&fs::read(layout.join("index.json")).unwrap()).unwrap();
    let mhex = index["manifests"][0]["digest"].as_str().unwrap()[7..].to_string();
    let mut manifest: Value =
        serde_json::from_slice(&fs::read(blobs.join(&mhex)).unwrap()).unwrap();
    let chex = manifest["config"]["digest"].as_str().unwrap()[7..].to_string();
    let mut cfg: Value = serde_json::from_slice(&fs::read(blobs.join(&chex)).unwrap()).unwrap();
    cfg["config"]["Labels"]["padding"] = Value::String("x".repeat(2 << 20));
    let cdesc = put_json(&layout, "application/vnd.oci.image.config.v1+json", &cfg);
    fs::remove_file(blobs.join(&chex)).unwrap();
    fs::remove_file(blobs.join(&mhex)).unwrap();
    manifest["config"] = cdesc;
    let mut list = Vec::new();
    for i in 0..200 {
        manifest["annotations"] = json!({ "n": i.to_string() });
        list.push(put_json(
            &layout,
            "application/vnd.oci.image.manifest.v1+json",
            &manifest,
        ));
    }
    let top = json!({"schemaVersion": 2, "mediaType": INDEX, "manifests": list});
    fs::write(layout.join("index.json"), top.to_string()).unwrap();
    sb.refuse(
        "--config",
        &config,
        "exceed",
        "200 manifests sharing a 2 MiB config",
    );
    // verify reads the shared config once and finishes.
    let o = cnbpkg(["verify".as_ref(), "--json".as_ref(), layout.as_os_str()]);
    let report: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(report["images"], json!(200), "{report}");
}

#[test]
fn a_dependency_whose_config_lies_about_a_diff_id_is_refused() {
    // The layer blob is intact (its digest matches) but the config's diffID is wrong: importing
    // the layer as it is would carry the lie into our package, which then fails `verify`.
    let sb = Sandbox::new();
    let layout = good_dependency_layout(&sb.work);
    let config = composite_config(&sb, &layout);
    let blobs = layout.join("blobs/sha256");
    let mut index: Value =
        serde_json::from_slice(&fs::read(layout.join("index.json")).unwrap()).unwrap();
    let mhex = index["manifests"][0]["digest"].as_str().unwrap()[7..].to_string();
    let mut manifest: Value =
        serde_json::from_slice(&fs::read(blobs.join(&mhex)).unwrap()).unwrap();
    let chex = manifest["config"]["digest"].as_str().unwrap()[7..].to_string();
    let mut cfg: Value = serde_json::from_slice(&fs::read(blobs.join(&chex)).unwrap()).unwrap();
    let bogus = format!("sha256:{}", "ab".repeat(32));
    let real = cfg["rootfs"]["diff_ids"][0].as_str().unwrap().to_string();
    cfg["rootfs"]["diff_ids"][0] = json!(bogus);
    // Keep the labels consistent with the lie, so only the layer content contradicts it.
    let labels = cfg["config"]["Labels"].as_object_mut().unwrap();
    for (_, v) in labels.iter_mut() {
        if let Some(s) = v.as_str() {
            *v = Value::String(s.replace(&real, &bogus));
        }
    }
    manifest["config"] = put_json(&layout, "application/vnd.oci.image.config.v1+json", &cfg);
    fs::remove_file(blobs.join(&chex)).unwrap();
    let mdesc = put_json(
        &layout,
        "application/vnd.oci.image.manifest.v1+json",
        &manifest,
    );
    fs::remove_file(blobs.join(&mhex)).unwrap();
    index["manifests"][0]["digest"] = mdesc["digest"].clone();
    index["manifests"][0]["size"] = mdesc["size"].clone();
    fs::write(layout.join("index.json"), index.to_string()).unwrap();
    let o = cnbpkg(["verify".as_ref(), layout.as_os_str()]);
    assert_eq!(
        o.status.code(),
        Some(1),
        "the dependency itself is defective"
    );
    sb.refuse(
        "--config",
        &config,
        "diffid",
        "a dependency with a wrong diffID",
    );
}
