//! Archives as other tools write them, and as an attacker would: `./`-prefixed archives made by
//! GNU tar (accepted by every reader), `.tgz` files whose gzip trailer is wrong and `.tar` files
//! cut at an entry boundary (refused), and extended headers too large to hold in memory (refused
//! before they are read, with a short message).

use std::ffi::OsStr;
use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use crate::support::rawtar::{self, Entry};
use crate::support::registry::Registry;
use crate::support::*;
use crate::support::{child, skopeo_raw};
use serde_json::Value;
use sha2::{Digest as _, Sha256};

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

fn package(out: &Path, extra: &[&OsStr]) -> String {
    let mut args: Vec<&OsStr> = vec!["buildpack".as_ref(), "package".as_ref(), out.as_os_str()];
    args.extend_from_slice(extra);
    args.push("-q".as_ref());
    ok(cnbpkg(args))
}

fn package_fails(out: &Path, extra: &[&OsStr]) -> String {
    let mut args: Vec<&OsStr> = vec!["buildpack".as_ref(), "package".as_ref(), out.as_os_str()];
    args.extend_from_slice(extra);
    let stderr = fails(cnbpkg(args), 1);
    assert!(!out.exists(), "no output after: {stderr}");
    stderr
}

/// A composite `package.toml` over hello-bash 1.0.0 found at `dep`.
fn composite_config(dir: &Path, dep: &Path) -> PathBuf {
    let comp = dir.join("composite");
    fs::create_dir_all(&comp).unwrap();
    fs::write(
        comp.join("buildpack.toml"),
        "api = \"0.10\"\n[buildpack]\nid = \"t/composite\"\nversion = \"1.0.0\"\n\n[[order]]\n[[order.group]]\nid = \"examples/hello-bash\"\nversion = \"1.0.0\"\n",
    )
    .unwrap();
    let config = dir.join(format!(
        "package-{}.toml",
        sha256_hex(dep.as_os_str().as_encoded_bytes())
    ));
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

// ---------------------------------------------------------------------------------------------
// `./`-prefixed archives (GNU tar's `tar -C dir -cf x .`)
// ---------------------------------------------------------------------------------------------

#[test]
fn a_cnb_made_with_gnu_tar_from_a_layout_is_read_by_every_reader() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let ours = d.join("ours.cnb");
    package(
        &ours,
        &[
            "--path".as_ref(),
            sample("hello-bash").as_os_str(),
            "-t".as_ref(),
            "linux/amd64".as_ref(),
        ],
    );
    let layout = d.join("layout");
    fs::create_dir(&layout).unwrap();
    tool_ok(
        "tar",
        &[
            "-xf",
            ours.to_str().unwrap(),
            "-C",
            layout.to_str().unwrap(),
        ],
    );
    let dot = d.join("dot.cnb");
    tool_ok(
        "tar",
        &[
            "-C",
            layout.to_str().unwrap(),
            "-cf",
            dot.to_str().unwrap(),
            ".",
        ],
    );
    let listing = tool_ok("tar", &["-tf", dot.to_str().unwrap()]);
    assert_eq!(listing.lines().next(), Some("./"), "{listing}");
    assert!(listing.lines().any(|l| l == "./index.json"), "{listing}");

    // verify and inspect (also of GNU tar's POSIX format, which adds PAX headers).
    ok(cnbpkg([OsStr::new("verify"), dot.as_os_str()]));
    let posix = d.join("posix.cnb");
    tool_ok(
        "tar",
        &[
            "--format=posix",
            "-C",
            layout.to_str().unwrap(),
            "-cf",
            posix.to_str().unwrap(),
            ".",
        ],
    );
    assert!(tool_ok("tar", &["-tvf", posix.to_str().unwrap()]).contains("./index.json"));
    ok(cnbpkg([OsStr::new("verify"), posix.as_os_str()]));
    let digest = |p: &Path| -> String {
        let v: Value = serde_json::from_str(&ok(cnbpkg([
            OsStr::new("inspect"),
            p.as_os_str(),
            "--json".as_ref(),
        ])))
        .unwrap();
        v["digest"].as_str().unwrap().to_string()
    };
    assert_eq!(digest(&dot), digest(&ours));

    // As a composite's dependency: the same bytes as with the original file.
    let from_ours = d.join("from-ours.cnb");
    let from_dot = d.join("from-dot.cnb");
    package(
        &from_ours,
        &["--config".as_ref(), composite_config(d, &ours).as_os_str()],
    );
    package(
        &from_dot,
        &["--config".as_ref(), composite_config(d, &dot).as_os_str()],
    );
    assert!(fs::read(&from_ours).unwrap() == fs::read(&from_dot).unwrap());
    let flat = d.join("flat.cnb");
    package(
        &flat,
        &[
            "--config".as_ref(),
            composite_config(d, &dot).as_os_str(),
            "--flatten".as_ref(),
        ],
    );
    ok(cnbpkg([OsStr::new("verify"), flat.as_os_str()]));

    // skopeo and umoci read both files as the same image.
    fs::create_dir_all(d.join("u1")).unwrap();
    fs::create_dir_all(d.join("u2")).unwrap();
    let a = unpack_with_umoci(&ours, &d.join("u1"), &[]);
    let b = unpack_with_umoci(&dot, &d.join("u2"), &[]);
    let build = "cnb/buildpacks/examples_hello-bash/1.0.0/bin/build";
    assert_eq!(
        fs::read(a.join(build)).unwrap(),
        fs::read(b.join(build)).unwrap()
    );

    // push to a real registry.
    let reg = Registry::start_plain();
    let reference = format!("{}/inputs/dot:1", reg.host());
    let r = child::run(
        child::push_args(&dot, &reference, &["--insecure"]),
        d,
        &[],
        None,
    );
    assert!(r.ok(), "{r}\n{}", reg.log());
    assert_eq!(r.stdout.trim(), digest(&ours), "{r}");
    assert!(!skopeo_raw(&reference).is_empty());
}

/// Entries of `cnb` re-written into a new archive, with `extra` entries after them.
fn rewrite_cnb(cnb: &Path, rename: impl Fn(&str) -> String, extra: &[(&str, Vec<u8>)]) -> Vec<u8> {
    let mut ar = tar::Archive::new(fs::File::open(cnb).unwrap());
    let mut b = tar::Builder::new(Vec::new());
    for e in ar.entries().unwrap() {
        let mut e = e.unwrap();
        let name = rename(&String::from_utf8_lossy(&e.path_bytes()));
        let mut h = e.header().clone();
        let mut data = Vec::new();
        e.read_to_end(&mut data).unwrap();
        b.append_data(&mut h, name, &data[..]).unwrap();
    }
    for (name, data) in extra {
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(tar::EntryType::Regular);
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        b.append_data(&mut h, name, &data[..]).unwrap();
    }
    b.into_inner().unwrap()
}

#[test]
fn names_equal_after_normalization_are_duplicates() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let ours = d.join("ours.cnb");
    package(
        &ours,
        &[
            "--path".as_ref(),
            sample("hello-bash").as_os_str(),
            "-t".as_ref(),
            "linux/amd64".as_ref(),
        ],
    );
    let index = {
        let mut ar = tar::Archive::new(fs::File::open(&ours).unwrap());
        let mut found = Vec::new();
        for e in ar.entries().unwrap() {
            let mut e = e.unwrap();
            if e.path_bytes().ends_with(b"index.json") {
                e.read_to_end(&mut found).unwrap();
            }
        }
        found
    };
    let dup = d.join("dup.cnb");
    let bytes = rewrite_cnb(
        &ours,
        |n| n.trim_start_matches('/').to_string(),
        &[("./index.json", index)],
    );
    fs::write(&dup, bytes).unwrap();
    let o = cnbpkg([OsStr::new("verify"), dup.as_os_str()]);
    let stdout = String::from_utf8_lossy(&o.stdout).into_owned();
    fails(o, 1);
    assert!(stdout.contains("duplicate entry index.json"), "{stdout}");
}

#[test]
fn a_tgz_made_with_gnu_tar_packages_like_its_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let bp = sample("hello-bash");
    let tgz = d.join("bp.tgz");
    tool_ok(
        "tar",
        &[
            "-C",
            bp.to_str().unwrap(),
            "-czf",
            tgz.to_str().unwrap(),
            ".",
        ],
    );
    let from_dir = d.join("dir.cnb");
    let from_tgz = d.join("tgz.cnb");
    package(&from_dir, &["--path".as_ref(), bp.as_os_str()]);
    package(&from_tgz, &["--path".as_ref(), tgz.as_os_str()]);
    assert!(fs::read(&from_dir).unwrap() == fs::read(&from_tgz).unwrap());
}

// ---------------------------------------------------------------------------------------------
// Compressed streams are read to their end; a tar must end with its marker
// ---------------------------------------------------------------------------------------------

#[test]
fn a_tgz_with_a_wrong_gzip_crc_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let bp = sample("hello-bash");
    let tgz = d.join("bp.tgz");
    tool_ok(
        "tar",
        &[
            "-C",
            bp.to_str().unwrap(),
            "-czf",
            tgz.to_str().unwrap(),
            ".",
        ],
    );
    let mut bytes = fs::read(&tgz).unwrap();
    let n = bytes.len();
    // The gzip trailer: CRC-32 of the content, then its length.
    bytes[n - 8] ^= 0xff;
    fs::write(&tgz, &bytes).unwrap();
    let stderr = package_fails(&d.join("out.cnb"), &["--path".as_ref(), tgz.as_os_str()]);
    assert!(
        stderr.contains("bp.tgz") && stderr.contains("corrupt"),
        "{stderr}"
    );
}

/// A buildpack tar written by the `tar` crate (two zero blocks at the end), with the offsets at
/// which each entry's header starts.
fn buildpack_tar() -> (Vec<u8>, Vec<usize>) {
    let mut b = tar::Builder::new(Vec::new());
    let mut starts = Vec::new();
    for (name, data, mode) in [
        (
            "buildpack.toml",
            &b"api = \"0.10\"\n[buildpack]\nid = \"t/a\"\nversion = \"1.0.0\"\n"[..],
            0o644,
        ),
        ("bin/build", &b"#!/bin/sh\n"[..], 0o755),
        ("bin/detect", &b"#!/bin/sh\n"[..], 0o755),
        ("zzz-last", &b"the last file\n"[..], 0o644),
    ] {
        starts.push(b.get_ref().len());
        let mut h = tar::Header::new_ustar();
        h.set_size(data.len() as u64);
        h.set_mode(mode);
        b.append_data(&mut h, name, data).unwrap();
    }
    (b.into_inner().unwrap(), starts)
}

#[test]
fn a_tar_cut_at_an_entry_boundary_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let (full, starts) = buildpack_tar();
    let last = *starts.last().unwrap();
    for (what, bytes) in [
        (
            "without its end-of-archive marker",
            full[..full.len() - 1024].to_vec(),
        ),
        ("cut before its last entry", full[..last].to_vec()),
    ] {
        for gz in [false, true] {
            let path = d.join(if gz { "cut.tgz" } else { "cut.tar" });
            let data = if gz {
                let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
                e.write_all(&bytes).unwrap();
                e.finish().unwrap()
            } else {
                bytes.clone()
            };
            fs::write(&path, data).unwrap();
            let stderr = package_fails(&d.join("out.cnb"), &["--path".as_ref(), path.as_os_str()]);
            assert!(stderr.contains("end-of-archive marker"), "{what}: {stderr}");
        }
    }
    // One zero block is a complete archive for GNU tar and Go's reader, and so here.
    let one = d.join("one.tar");
    fs::write(&one, &full[..full.len() - 512]).unwrap();
    let out = d.join("one.cnb");
    package(&out, &["--path".as_ref(), one.as_os_str()]);
    let full_tar = d.join("full.tar");
    fs::write(&full_tar, &full).unwrap();
    let out2 = d.join("full.cnb");
    package(&out2, &["--path".as_ref(), full_tar.as_os_str()]);
    assert!(fs::read(&out).unwrap() == fs::read(&out2).unwrap());
}

// ---------------------------------------------------------------------------------------------
// Extended headers too large to hold
// ---------------------------------------------------------------------------------------------

/// A single-platform hello-bash layout (gzip layers) whose one layer is replaced by `layer_tar`,
/// every digest, diffID and label updated so that only the layer's content is unusual.
fn layout_with_layer(dir: &Path, name: &str, layer_tar: impl FnOnce(&[u8]) -> Vec<u8>) -> PathBuf {
    let layout = dir.join(name);
    package(
        &layout,
        &[
            "--path".as_ref(),
            sample("hello-bash").as_os_str(),
            "-t".as_ref(),
            "linux/amd64".as_ref(),
            "--format".as_ref(),
            "layout".as_ref(),
        ],
    );
    let blobs = layout.join("blobs/sha256");
    let blob = |d: &str| blobs.join(d.trim_start_matches("sha256:"));
    let read_json =
        |d: &str| -> Value { serde_json::from_slice(&fs::read(blob(d)).unwrap()).unwrap() };
    let put = |bytes: &[u8]| -> String {
        let hex = sha256_hex(bytes);
        fs::write(blobs.join(&hex), bytes).unwrap();
        format!("sha256:{hex}")
    };
    let mut index: Value =
        serde_json::from_slice(&fs::read(layout.join("index.json")).unwrap()).unwrap();
    let mdigest = index["manifests"][0]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let mut manifest = read_json(&mdigest);
    let cdigest = manifest["config"]["digest"].as_str().unwrap().to_string();
    let mut config = read_json(&cdigest);
    let ldigest = manifest["layers"][0]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let old_diff = config["rootfs"]["diff_ids"][0]
        .as_str()
        .unwrap()
        .to_string();

    let mut old_tar = Vec::new();
    flate2::read::MultiGzDecoder::new(fs::File::open(blob(&ldigest)).unwrap())
        .read_to_end(&mut old_tar)
        .unwrap();
    let new_tar = layer_tar(&old_tar);
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(&new_tar).unwrap();
    let gz = e.finish().unwrap();
    let new_diff = format!("sha256:{}", sha256_hex(&new_tar));
    let new_layer = put(&gz);

    config["rootfs"]["diff_ids"][0] = Value::from(new_diff.clone());
    let labels = config["config"]["Labels"].as_object_mut().unwrap();
    let layers = labels["io.buildpacks.buildpack.layers"]
        .as_str()
        .unwrap()
        .replace(&old_diff, &new_diff);
    labels.insert("io.buildpacks.buildpack.layers".into(), Value::from(layers));
    let config_bytes = serde_json::to_vec(&config).unwrap();
    let new_config = put(&config_bytes);
    manifest["config"]["digest"] = Value::from(new_config);
    manifest["config"]["size"] = Value::from(config_bytes.len());
    manifest["layers"][0]["digest"] = Value::from(new_layer);
    manifest["layers"][0]["size"] = Value::from(gz.len());
    let manifest_bytes = serde_json::to_vec(&manifest).unwrap();
    let new_manifest = put(&manifest_bytes);
    index["manifests"][0]["digest"] = Value::from(new_manifest);
    index["manifests"][0]["size"] = Value::from(manifest_bytes.len());
    fs::write(
        layout.join("index.json"),
        serde_json::to_vec(&index).unwrap(),
    )
    .unwrap();
    for old in [&mdigest, &cdigest, &ldigest] {
        fs::remove_file(blob(old)).unwrap();
    }
    layout
}

#[test]
fn a_dependency_whose_layer_gnu_tar_wrote_with_dot_names_is_read() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let root = d.join("root");
    fs::create_dir(&root).unwrap();
    let layout = layout_with_layer(d, "dotted", |t| {
        let old = d.join("old.tar");
        fs::write(&old, t).unwrap();
        tool_ok(
            "tar",
            &["-xf", old.to_str().unwrap(), "-C", root.to_str().unwrap()],
        );
        let new = d.join("new.tar");
        tool_ok(
            "tar",
            &[
                "--owner=0",
                "--group=0",
                "--numeric-owner",
                "-C",
                root.to_str().unwrap(),
                "-cf",
                new.to_str().unwrap(),
                ".",
            ],
        );
        fs::read(&new).unwrap()
    });
    let listing = {
        let layer = gzip_layer(&layout);
        let mut ar = tar::Archive::new(&layer[..]);
        ar.entries()
            .unwrap()
            .map(|e| String::from_utf8_lossy(&e.unwrap().path_bytes()).into_owned())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        listing.first().map(String::as_str),
        Some("./"),
        "{listing:?}"
    );
    ok(cnbpkg([OsStr::new("verify"), layout.as_os_str()]));
    let out = d.join("comp.cnb");
    package(
        &out,
        &[
            "--config".as_ref(),
            composite_config(d, &layout).as_os_str(),
        ],
    );
    ok(cnbpkg([OsStr::new("verify"), out.as_os_str()]));
    let flat = d.join("flat.cnb");
    package(
        &flat,
        &[
            "--config".as_ref(),
            composite_config(d, &layout).as_os_str(),
            "--flatten".as_ref(),
        ],
    );
    ok(cnbpkg([OsStr::new("verify"), flat.as_os_str()]));
    // skopeo and umoci unpack the same buildpack from it.
    let oci_archive = d.join("dotted.cnb");
    tool_ok(
        "tar",
        &[
            "-C",
            layout.to_str().unwrap(),
            "-cf",
            oci_archive.to_str().unwrap(),
            ".",
        ],
    );
    fs::create_dir_all(d.join("u")).unwrap();
    let rootfs = unpack_with_umoci(&oci_archive, &d.join("u"), &[]);
    let build = "cnb/buildpacks/examples_hello-bash/1.0.0/bin/build";
    assert_eq!(
        fs::read(rootfs.join(build)).unwrap(),
        fs::read(sample("hello-bash").join("bin/build")).unwrap()
    );
}

/// The decompressed only layer of a layout.
fn gzip_layer(layout: &Path) -> Vec<u8> {
    let blobs = layout.join("blobs/sha256");
    let blob = |d: &str| blobs.join(d.trim_start_matches("sha256:"));
    let index: Value =
        serde_json::from_slice(&fs::read(layout.join("index.json")).unwrap()).unwrap();
    let manifest: Value = serde_json::from_slice(
        &fs::read(blob(index["manifests"][0]["digest"].as_str().unwrap())).unwrap(),
    )
    .unwrap();
    let mut t = Vec::new();
    flate2::read::MultiGzDecoder::new(
        fs::File::open(blob(manifest["layers"][0]["digest"].as_str().unwrap())).unwrap(),
    )
    .read_to_end(&mut t)
    .unwrap();
    t
}

/// `tar` (ending with two zero blocks) with a GNU long-name entry of `name` inserted before them.
fn with_long_name(tar: &[u8], name: &[u8]) -> Vec<u8> {
    let mut out = tar[..tar.len() - 1024].to_vec();
    out.extend(rawtar::archive(&[
        Entry::gnu_long_name(name),
        Entry::file("file", Vec::new()).gnu(),
    ]));
    out
}

#[test]
fn a_layer_with_a_huge_long_name_is_refused_with_a_short_message() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    // A name under the module's directory, 16 MiB long (it compresses to a few KiB).
    let mut name = b"cnb/buildpacks/examples_hello-bash/1.0.0/".to_vec();
    name.resize(16 << 20, b'n');
    // A long name that is fine: 2 KiB.
    let fine = layout_with_layer(d, "fine", |t| with_long_name(t, &name[..2048]));
    ok(cnbpkg([OsStr::new("verify"), fine.as_os_str()]));
    let layout = layout_with_layer(d, "huge", |t| with_long_name(t, &name));
    let o = cnbpkg([OsStr::new("verify"), layout.as_os_str()]);
    let stdout = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(!o.status.success(), "{stdout}");
    assert!(stdout.contains("1 MiB"), "{stdout}");
    assert!(stdout.len() < 4096, "verify printed {} bytes", stdout.len());

    let o = cnbpkg([
        OsStr::new("buildpack"),
        "package".as_ref(),
        d.join("flat.cnb").as_os_str(),
        "--config".as_ref(),
        composite_config(d, &layout).as_os_str(),
        "--flatten".as_ref(),
    ]);
    let stderr = fails(o, 1);
    assert!(
        stderr.len() < 4096,
        "package printed {} bytes",
        stderr.len()
    );
    assert!(stderr.contains("1 MiB"), "{stderr}");
    assert!(!d.join("flat.cnb").exists());
}

#[test]
fn an_outer_archive_with_a_huge_pax_header_is_refused_before_reading_it() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    // A PAX header claiming 1 GiB, stored sparsely: a few KiB on disk.
    let cnb = d.join("huge-pax.cnb");
    let mut h = tar::Header::new_ustar();
    h.set_path("PaxHeaders.0/index.json").unwrap();
    h.set_entry_type(tar::EntryType::XHeader);
    h.set_size(1 << 30);
    h.set_mode(0o644);
    h.set_cksum();
    let f = fs::File::create(&cnb).unwrap();
    (&f).write_all(h.as_bytes()).unwrap();
    f.set_len(512 + (1 << 30) + 4096).unwrap();
    drop(f);
    let o = cnbpkg([OsStr::new("verify"), cnb.as_os_str()]);
    let stdout = String::from_utf8_lossy(&o.stdout).into_owned();
    fails(o, 1);
    assert!(stdout.contains("larger than the 1 MiB limit"), "{stdout}");
    let stderr = fails(cnbpkg([OsStr::new("inspect"), cnb.as_os_str()]), 1);
    assert!(stderr.contains("larger than the 1 MiB limit"), "{stderr}");
}

#[test]
fn an_outer_archive_entry_with_a_long_name_is_refused_with_a_short_message() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let ours = d.join("ours.cnb");
    package(
        &ours,
        &[
            "--path".as_ref(),
            sample("hello-bash").as_os_str(),
            "-t".as_ref(),
            "linux/amd64".as_ref(),
        ],
    );
    // A 512 KiB name (a GNU long-name header under the 1 MiB limit).
    let long = format!("blobs/{}", "x".repeat(512 << 10));
    let bytes = rewrite_cnb(&ours, |n| n.to_string(), &[(long.as_str(), b"{}".to_vec())]);
    let cnb = d.join("long.cnb");
    fs::write(&cnb, bytes).unwrap();
    let o = cnbpkg([OsStr::new("verify"), cnb.as_os_str()]);
    let stdout = String::from_utf8_lossy(&o.stdout).into_owned();
    fails(o, 1);
    assert!(
        stdout.contains("is longer than 1024 bytes"),
        "{}",
        &stdout[..stdout.len().min(2000)]
    );
    assert!(stdout.len() < 4096, "verify printed {} bytes", stdout.len());
}
