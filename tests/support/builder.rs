//! Builder inputs made without cnbpkg — build and lifecycle images written by umoci, two
//! platforms combined into an image index as skopeo writes one, buildpack trees with platform
//! folders, ELF stand-ins for the lifecycle binaries — and independent readers of a builder:
//! one platform's image extracted into a layout for umoci, its layer headers, its config.

use std::collections::BTreeMap;
use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{json, Value};

use super::tool::{require, run, tool_ok};
use super::Rng;

/// The platforms of the fixtures (GOARCH names), in index order.
pub const ARCHES: [&str; 2] = ["amd64", "arm64"];

/// The seven binaries pack requires of a lifecycle.
pub const LIFECYCLE_BINARIES: [&str; 7] = [
    "analyzer", "builder", "creator", "detector", "exporter", "launcher", "restorer",
];

/// The Buildpack and Platform APIs the fixture lifecycles support.
pub const LIFECYCLE_TOML: &str = "[apis]\n[apis.buildpack]\n  deprecated = []\n  supported = [\"0.7\", \"0.8\", \"0.9\", \"0.10\", \"0.11\", \"0.12\"]\n[apis.platform]\n  deprecated = []\n  supported = [\"0.7\", \"0.8\", \"0.9\", \"0.10\", \"0.11\", \"0.12\", \"0.13\", \"0.14\", \"0.15\"]\n[api]\n  platform = \"0.7\"\n  buildpack = \"0.7\"\n[lifecycle]\n  version = \"0.20.5\"\n";

/// ELF `e_machine` of a GOARCH.
pub fn e_machine_of(arch: &str) -> u16 {
    match arch {
        "amd64" => 0x3e,
        "arm64" => 0xb7,
        "ppc64le" => 0x15,
        "s390x" => 0x16,
        other => panic!("no ELF machine for {other}"),
    }
}

/// A stand-in executable: a real 64-byte ELF header for `arch` (little-endian, 64-bit, static
/// executable), then `tail`.
pub fn elf(arch: &str, tail: &[u8]) -> Vec<u8> {
    let big_endian = arch == "s390x";
    let u16b = |v: u16| {
        if big_endian {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        }
    };
    let mut h = vec![
        0x7f,
        b'E',
        b'L',
        b'F',
        2,
        if big_endian { 2 } else { 1 },
        1,
        0,
    ];
    h.resize(16, 0);
    h.extend(u16b(2)); // e_type: executable
    h.extend(u16b(e_machine_of(arch)));
    h.extend(if big_endian {
        1u32.to_be_bytes()
    } else {
        1u32.to_le_bytes()
    });
    h.resize(52, 0);
    h.extend(u16b(64)); // e_ehsize
    h.resize(64, 0);
    h.extend_from_slice(tail);
    h
}

/// The `e_machine` of an ELF file's bytes.
pub fn elf_machine(bytes: &[u8]) -> u16 {
    assert!(bytes.starts_with(b"\x7fELF"), "not an ELF file");
    let two = [bytes[18], bytes[19]];
    if bytes[5] == 2 {
        u16::from_be_bytes(two)
    } else {
        u16::from_le_bytes(two)
    }
}

/// What one platform's build image holds and says.
#[derive(Clone)]
pub struct BaseImage {
    /// GOARCH.
    pub arch: String,
    /// `CNB_USER_ID` (left out when `None`).
    pub uid: Option<String>,
    /// `CNB_GROUP_ID` (left out when `None`).
    pub gid: Option<String>,
    /// The distro labels (left out when `None`).
    pub distro: Option<(String, String)>,
    /// Bytes of random and binary-like content in a second layer (none when 0).
    pub payload: usize,
}

impl BaseImage {
    /// A sound build image for `arch`: Ubuntu 22.04, user and group 1000.
    pub fn new(arch: &str) -> BaseImage {
        BaseImage {
            arch: arch.into(),
            uid: Some("1000".into()),
            gid: Some("1000".into()),
            distro: Some(("ubuntu".into(), "22.04".into())),
            payload: 0,
        }
    }
}

/// The Env the fixture build images carry besides `CNB_*` (kept by the builder).
pub const BASE_PATH: &str = "PATH=/usr/local/bin:/usr/bin:/bin";

/// The descriptor umoci wrote for `tag` in `layout`'s index.json.
fn tagged(layout: &Path, tag: &str) -> Value {
    let index: Value =
        serde_json::from_slice(&fs::read(layout.join("index.json")).unwrap()).unwrap();
    index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["annotations"]["org.opencontainers.image.ref.name"] == tag)
        .unwrap_or_else(|| panic!("umoci wrote no {tag}"))
        .clone()
}

/// `umoci config` with `args` on `layout:tag`, with no history entry of its own.
fn umoci_config(layout: &Path, tag: &str, args: &[String]) {
    let image = format!("{}:{tag}", layout.display());
    let mut all: Vec<String> = vec![
        "config".into(),
        "--no-history".into(),
        "--image".into(),
        image,
    ];
    all.extend(args.iter().cloned());
    let all: Vec<&str> = all.iter().map(String::as_str).collect();
    tool_ok("umoci", &all);
}

/// Unpack `layout:tag` into `bundle`, let `fill` change its rootfs, and repack it as a new layer.
fn umoci_layer(layout: &Path, tag: &str, bundle: &Path, fill: &dyn Fn(&Path)) {
    let image = format!("{}:{tag}", layout.display());
    let b = bundle.to_str().unwrap();
    tool_ok("umoci", &["unpack", "--rootless", "--image", &image, b]);
    fill(&bundle.join("rootfs"));
    tool_ok("umoci", &["repack", "--no-history", "--image", &image, b]);
    fs::remove_dir_all(bundle).unwrap();
}

/// Write a file under `root`, creating its parents, with `mode`.
fn put(root: &Path, name: &str, data: &[u8], mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    let path = root.join(name);
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(&path, data).unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
}

/// `n` bytes half random, half binary-like (a few 4 KiB templates with patched words): what a
/// base image's libraries look like to a compressor.
fn payload(rng: &mut Rng, n: usize, out: &mut impl Write) {
    let templates: Vec<Vec<u8>> = (0..4).map(|_| rng.bytes(4096)).collect();
    let mut written = 0;
    while written < n {
        let block = if rng.below(2) == 0 {
            rng.bytes(4096)
        } else {
            let mut b = templates[rng.below(4) as usize].clone();
            for _ in 0..16 {
                let at = rng.below(4088) as usize;
                b[at..at + 8].copy_from_slice(&rng.next_u64().to_le_bytes());
            }
            b
        };
        let take = block.len().min(n - written);
        out.write_all(&block[..take]).unwrap();
        written += take;
    }
}

/// Make one platform's build image in `layout` under `tag` with umoci: a file-system layer
/// (`/etc/os-release`, a shell stand-in, `/usr/share/doc`), an optional payload layer, and the
/// config (os/arch, Env, User, distro labels).
fn umoci_base(layout: &Path, tag: &str, base: &BaseImage, seed: u64) {
    let image = format!("{}:{tag}", layout.display());
    tool_ok("umoci", &["new", "--image", &image]);
    let arch = base.arch.clone();
    let os_release = match &base.distro {
        Some((name, version)) => format!("ID={name}\nVERSION_ID=\"{version}\"\n"),
        None => "ID=unknown\n".into(),
    };
    let bundle = layout.with_extension(format!("bundle-{tag}"));
    umoci_layer(layout, tag, &bundle, &|root| {
        put(root, "etc/os-release", os_release.as_bytes(), 0o644);
        put(root, "bin/sh", &elf(&arch, b"shell"), 0o755);
        put(root, "usr/share/doc/base/README", b"a build image\n", 0o644);
        fs::create_dir_all(root.join("tmp")).unwrap();
    });
    if base.payload > 0 {
        let size = base.payload;
        umoci_layer(layout, tag, &bundle, &|root| {
            let mut rng = Rng::new(seed);
            let per = size.div_ceil(4);
            for i in 0..4 {
                let path = root.join(format!("usr/lib/payload-{i}.so"));
                fs::create_dir_all(path.parent().unwrap()).unwrap();
                let mut f = std::io::BufWriter::new(fs::File::create(&path).unwrap());
                payload(&mut rng, per, &mut f);
                f.flush().unwrap();
            }
        });
    }
    let mut args = vec![
        "--os".to_string(),
        "linux".into(),
        "--architecture".into(),
        base.arch.clone(),
        "--config.env".into(),
        BASE_PATH.into(),
        "--config.user".into(),
        "1000:1000".into(),
        "--config.workingdir".into(),
        "/".into(),
        "--config.label".into(),
        "org.example.base=fixture".into(),
    ];
    for (name, value) in [("CNB_USER_ID", &base.uid), ("CNB_GROUP_ID", &base.gid)] {
        if let Some(v) = value {
            args.extend(["--config.env".into(), format!("{name}={v}")]);
        }
    }
    if let Some((name, version)) = &base.distro {
        args.extend([
            "--config.label".into(),
            format!("io.buildpacks.base.distro.name={name}"),
            "--config.label".into(),
            format!("io.buildpacks.base.distro.version={version}"),
        ]);
    }
    umoci_config(layout, tag, &args);
}

/// Replace `layout`'s index.json with one entry, an image index listing the images tagged
/// `tags` with their platforms (from their configs), tagged `latest`: what `skopeo copy --all`
/// writes for a multi-platform image. The per-platform tags are gone; their blobs stay.
pub fn combine_into_index(layout: &Path, tags: &[String]) {
    let mut manifests = Vec::new();
    for tag in tags {
        let d = tagged(layout, tag);
        let manifest = read_blob_json(layout, d["digest"].as_str().unwrap());
        let config = read_blob_json(layout, manifest["config"]["digest"].as_str().unwrap());
        manifests.push(json!({
            "mediaType": d["mediaType"],
            "digest": d["digest"],
            "size": d["size"],
            "platform": {"architecture": config["architecture"], "os": config["os"]},
        }));
    }
    let index = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": manifests,
    });
    let (digest, size) = put_blob(layout, serde_json::to_vec(&index).unwrap());
    let top = json!({
        "schemaVersion": 2,
        "manifests": [{
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "digest": digest,
            "size": size,
            "annotations": {"org.opencontainers.image.ref.name": "latest"},
        }],
    });
    fs::write(layout.join("index.json"), serde_json::to_vec(&top).unwrap()).unwrap();
}

/// Store `bytes` as a blob of `layout`; returns its digest and size.
pub fn put_blob(layout: &Path, bytes: Vec<u8>) -> (String, usize) {
    let hex = cnbpkg::digest::Digest::of(&bytes).to_string();
    let path = layout
        .join("blobs/sha256")
        .join(hex.trim_start_matches("sha256:"));
    fs::write(path, &bytes).unwrap();
    (hex, bytes.len())
}

/// A JSON blob of a layout directory.
pub fn read_blob_json(layout: &Path, digest: &str) -> Value {
    serde_json::from_slice(&read_blob(layout, digest)).unwrap()
}

/// A blob of a layout directory.
pub fn read_blob(layout: &Path, digest: &str) -> Vec<u8> {
    fs::read(
        layout
            .join("blobs/sha256")
            .join(digest.trim_start_matches("sha256:")),
    )
    .unwrap()
}

/// A build image layout directory `dir/name` made by umoci: one image per entry of `bases`,
/// combined into an image index (see [`combine_into_index`]).
pub fn build_image(dir: &Path, name: &str, bases: &[BaseImage]) -> PathBuf {
    require("umoci", "umoci");
    let layout = dir.join(name);
    tool_ok("umoci", &["init", "--layout", layout.to_str().unwrap()]);
    let mut tags = Vec::new();
    for (i, base) in bases.iter().enumerate() {
        let tag = format!("p{i}");
        umoci_base(&layout, &tag, base, 1000 + i as u64);
        tags.push(tag);
    }
    combine_into_index(&layout, &tags);
    layout
}

/// The default two-platform build image (see [`BaseImage::new`]).
pub fn default_build_image(dir: &Path) -> PathBuf {
    let bases: Vec<BaseImage> = ARCHES.iter().map(|a| BaseImage::new(a)).collect();
    build_image(dir, "build-image", &bases)
}

/// A tar of a layout directory (`oci-layout`, `index.json`, `blobs/...`), as `skopeo copy` to
/// `oci-archive:` writes one.
pub fn archive(layout: &Path, out: &Path) -> PathBuf {
    run(Command::new("tar")
        .arg("--sort=name")
        .arg("-C")
        .arg(layout)
        .arg("-cf")
        .arg(out)
        .args(["oci-layout", "index.json", "blobs"]));
    out.to_path_buf()
}

/// A lifecycle image as `buildpacksio/lifecycle` is published, made by umoci: one platform per
/// entry of `arches`, each with a last layer holding `/cnb/lifecycle.toml` and `/cnb/lifecycle/*`
/// (the multicall binary for that architecture, the others links to it, `launcher` a binary of
/// its own), less `missing`; combined into an image index.
pub fn lifecycle_image(dir: &Path, name: &str, arches: &[&str], missing: &[&str]) -> PathBuf {
    require("umoci", "umoci");
    let layout = dir.join(name);
    tool_ok("umoci", &["init", "--layout", layout.to_str().unwrap()]);
    let mut tags = Vec::new();
    for arch in arches {
        let tag = format!("lc-{arch}");
        let image = format!("{}:{tag}", layout.display());
        tool_ok("umoci", &["new", "--image", &image]);
        let bundle = layout.with_extension(format!("bundle-{tag}"));
        let arch_s = arch.to_string();
        let missing: Vec<String> = missing.iter().map(|m| m.to_string()).collect();
        umoci_layer(&layout, &tag, &bundle, &|root| {
            put(
                root,
                "etc/passwd",
                b"root:x:0:0:root:/root:/sbin/nologin\n",
                0o644,
            );
        });
        umoci_layer(&layout, &tag, &bundle, &|root| {
            put(root, "cnb/lifecycle.toml", LIFECYCLE_TOML.as_bytes(), 0o644);
            put(
                root,
                "cnb/lifecycle/lifecycle",
                &elf(&arch_s, b"lifecycle"),
                0o755,
            );
            for bin in LIFECYCLE_BINARIES {
                if missing.iter().any(|m| m == bin) {
                    continue;
                }
                if bin == "launcher" {
                    put(
                        root,
                        "cnb/lifecycle/launcher",
                        &elf(&arch_s, b"launcher"),
                        0o755,
                    );
                } else {
                    std::os::unix::fs::symlink("lifecycle", root.join("cnb/lifecycle").join(bin))
                        .unwrap();
                }
            }
        });
        umoci_config(
            &layout,
            &tag,
            &[
                "--os".into(),
                "linux".into(),
                "--architecture".into(),
                arch.to_string(),
                "--config.workingdir".into(),
                "/layers".into(),
                "--config.label".into(),
                "io.buildpacks.lifecycle.version=0.20.5".into(),
            ],
        );
        tags.push(tag);
    }
    combine_into_index(&layout, &tags);
    layout
}

/// A buildpack directory with RFC 0128 platform folders (the `hello-multi` sample) at
/// `dir/name`: linux/amd64 and linux/arm64.
pub fn platform_folder_buildpack(dir: &Path, name: &str) -> PathBuf {
    let to = dir.join(name);
    super::files::copy_tree(&super::files::sample("hello-multi"), &to);
    to
}

/// A buildpack directory `dir/name` with id, version, API and `targets` (`os/arch` strings; none:
/// no `[[targets]]`, which pack accepts on linux/amd64 only since it has `bin/build`).
pub fn simple_buildpack(
    dir: &Path,
    name: &str,
    id: &str,
    version: &str,
    api: &str,
    targets: &[&str],
) -> PathBuf {
    let to = dir.join(name);
    let mut extra = String::new();
    for t in targets {
        let (os, arch) = t.split_once('/').unwrap();
        extra.push_str(&format!(
            "\n[[targets]]\nos = \"{os}\"\narch = \"{arch}\"\n"
        ));
    }
    super::files::write_file(
        &to.join("buildpack.toml"),
        &format!("api = \"{api}\"\n\n[buildpack]\nid = \"{id}\"\nversion = \"{version}\"\n{extra}"),
        0o644,
    );
    super::files::write_file(&to.join("bin/build"), "#!/bin/sh\necho build\n", 0o755);
    super::files::write_file(&to.join("bin/detect"), "#!/bin/sh\nexit 0\n", 0o755);
    to
}

/// An image extension directory `dir/name`: `extension.toml` for `id@1.0.0` (Buildpack API
/// 0.10), `bin/detect` and `bin/generate`.
pub fn extension_dir(dir: &Path, name: &str, id: &str) -> PathBuf {
    let to = dir.join(name);
    super::files::write_file(
        &to.join("extension.toml"),
        &format!("api = \"0.10\"\n\n[extension]\nid = \"{id}\"\nversion = \"1.0.0\"\n"),
        0o644,
    );
    super::files::write_file(&to.join("bin/detect"), "#!/bin/sh\nexit 0\n", 0o755);
    super::files::write_file(&to.join("bin/generate"), "#!/bin/sh\nexit 0\n", 0o755);
    to
}

/// A multi-platform `.cnb` (`cnbpkg buildpack package -t linux/amd64 -t linux/arm64`) of a
/// buildpack `id@version` for both platforms, at `dir/name.cnb`.
pub fn multi_platform_cnb(dir: &Path, name: &str, id: &str, version: &str) -> PathBuf {
    let src = simple_buildpack(
        dir,
        &format!("{name}-src"),
        id,
        version,
        "0.10",
        &["linux/amd64", "linux/arm64"],
    );
    let out = dir.join(format!("{name}.cnb"));
    super::child::ok(super::child::cnbpkg([
        "buildpack".as_ref(),
        "package".as_ref(),
        out.as_os_str(),
        "--path".as_ref(),
        src.as_os_str(),
        "-t".as_ref(),
        "linux/amd64".as_ref(),
        "-t".as_ref(),
        "linux/arm64".as_ref(),
    ]));
    out
}

// ---------------------------------------------------------------------------------------------
// Reading a builder back, independently of cnbpkg

/// Unpack a builder (`.cnb`/tar or layout directory) into `work/layout` with `tar`, whatever its
/// form, and return that layout directory.
pub fn as_layout(builder: &Path, work: &Path) -> PathBuf {
    if builder.is_dir() {
        return builder.to_path_buf();
    }
    let out = work.join("layout");
    fs::create_dir_all(&out).unwrap();
    run(Command::new("tar")
        .arg("-xf")
        .arg(builder)
        .arg("-C")
        .arg(&out));
    out
}

/// The platform manifests of a layout: index.json's single entry, an index (or a manifest, for a
/// single platform), as (arch, manifest descriptor).
pub fn platform_manifests(layout: &Path) -> Vec<(String, Value)> {
    let index: Value =
        serde_json::from_slice(&fs::read(layout.join("index.json")).unwrap()).unwrap();
    let entries = index["manifests"].as_array().unwrap();
    assert_eq!(entries.len(), 1, "index.json lists one entry: {index}");
    let top = &entries[0];
    let list: Vec<Value> = if top["mediaType"] == "application/vnd.oci.image.index.v1+json" {
        read_blob_json(layout, top["digest"].as_str().unwrap())["manifests"]
            .as_array()
            .unwrap()
            .clone()
    } else {
        vec![top.clone()]
    };
    list.into_iter()
        .map(|d| {
            let m = read_blob_json(layout, d["digest"].as_str().unwrap());
            let c = read_blob_json(layout, m["config"]["digest"].as_str().unwrap());
            (c["architecture"].as_str().unwrap().to_string(), d)
        })
        .collect()
}

/// One platform of a builder, read independently: its manifest and config JSON, and its rootfs
/// unpacked by umoci (which checks every digest and diffID).
pub struct Platform {
    /// The layout directory it was read from.
    pub layout: PathBuf,
    /// Manifest JSON.
    pub manifest: Value,
    /// Config JSON.
    pub config: Value,
    /// The unpacked root file system.
    pub rootfs: PathBuf,
}

impl Platform {
    /// The config's labels.
    pub fn label(&self, name: &str) -> String {
        self.config["config"]["Labels"][name]
            .as_str()
            .unwrap_or_else(|| panic!("no label {name}"))
            .to_string()
    }

    /// A label parsed as JSON.
    pub fn label_json(&self, name: &str) -> Value {
        serde_json::from_str(&self.label(name)).unwrap()
    }

    /// The layer digests of the manifest, in order.
    pub fn layer_digests(&self) -> Vec<String> {
        self.manifest["layers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l["digest"].as_str().unwrap().to_string())
            .collect()
    }

    /// The config's diffIDs.
    pub fn diff_ids(&self) -> Vec<String> {
        self.config["rootfs"]["diff_ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l.as_str().unwrap().to_string())
            .collect()
    }

    /// Every tar header of every layer (name without `./` or `/`, uid, gid, mode, link), in order.
    pub fn headers(&self) -> Vec<(String, u64, u64, u32, Option<String>)> {
        let mut out = Vec::new();
        for l in self.manifest["layers"].as_array().unwrap() {
            let blob = read_blob(&self.layout, l["digest"].as_str().unwrap());
            out.extend(layer_headers(&blob, l["mediaType"].as_str().unwrap()));
        }
        out
    }
}

/// The tar headers of one layer blob (gzip, zstd or plain tar by media type).
pub fn layer_headers(
    blob: &[u8],
    media_type: &str,
) -> Vec<(String, u64, u64, u32, Option<String>)> {
    let reader: Box<dyn Read> = if media_type.ends_with("gzip") {
        Box::new(flate2::read::MultiGzDecoder::new(blob))
    } else if media_type.ends_with("zstd") {
        Box::new(zstd::stream::read::Decoder::new(blob).unwrap())
    } else {
        Box::new(blob)
    };
    let mut archive = tar::Archive::new(reader);
    let mut out = Vec::new();
    for e in archive.entries().unwrap() {
        let e = e.unwrap();
        let name = String::from_utf8_lossy(&e.path_bytes())
            .trim_start_matches("./")
            .trim_start_matches('/')
            .to_string();
        let h = e.header();
        let link = e
            .link_name_bytes()
            .map(|l| String::from_utf8_lossy(&l).into_owned());
        out.push((
            name,
            h.uid().unwrap(),
            h.gid().unwrap(),
            h.mode().unwrap(),
            link,
        ));
    }
    out
}

/// Extract the `arch` image of a builder layout into a layout of its own with a ref (`x`),
/// sharing the blobs, and unpack it with umoci (which checks digests and diffIDs).
pub fn read_platform(layout: &Path, arch: &str, work: &Path) -> Platform {
    let (_, desc) = platform_manifests(layout)
        .into_iter()
        .find(|(a, _)| a == arch)
        .unwrap_or_else(|| panic!("no {arch} image in {}", layout.display()));
    let one = work.join(format!("one-{arch}"));
    fs::create_dir_all(&one).unwrap();
    fs::copy(layout.join("oci-layout"), one.join("oci-layout")).unwrap();
    std::os::unix::fs::symlink(
        fs::canonicalize(layout.join("blobs")).unwrap(),
        one.join("blobs"),
    )
    .unwrap();
    let mut desc = desc.clone();
    desc.as_object_mut().unwrap().remove("platform");
    desc["annotations"] = json!({"org.opencontainers.image.ref.name": "x"});
    fs::write(
        one.join("index.json"),
        serde_json::to_vec(&json!({"schemaVersion": 2, "manifests": [desc]})).unwrap(),
    )
    .unwrap();
    let manifest = read_blob_json(layout, desc["digest"].as_str().unwrap());
    let config = read_blob_json(layout, manifest["config"]["digest"].as_str().unwrap());
    let bundle = work.join(format!("bundle-{arch}"));
    tool_ok(
        "umoci",
        &[
            "unpack",
            "--rootless",
            "--image",
            &format!("{}:x", one.display()),
            bundle.to_str().unwrap(),
        ],
    );
    Platform {
        layout: layout.to_path_buf(),
        manifest,
        config,
        rootfs: bundle.join("rootfs"),
    }
}

/// `skopeo inspect --raw` of an `oci-archive:` (what index.json's entry points at).
pub fn skopeo_raw_archive(archive: &Path) -> Value {
    let src = format!("oci-archive:{}", archive.display());
    serde_json::from_str(&tool_ok("skopeo", &["inspect", "--raw", &src])).unwrap()
}

/// `skopeo inspect EXTRA... SRC` for the `linux/<arch>` image of `src` (a transport reference:
/// `oci-archive:FILE`, `docker://REF`), parsed.
pub fn skopeo_inspect(src: &str, arch: &str, extra: &[&str]) -> Value {
    let mut args = vec!["--override-os", "linux", "--override-arch", arch, "inspect"];
    args.extend(extra);
    args.push(src);
    serde_json::from_str(&tool_ok("skopeo", &args)).unwrap()
}

/// `skopeo inspect` of the image skopeo chooses for `arch` in an `oci-archive:` (its `Digest`,
/// `Architecture`, `Layers`, `Env`, ...).
pub fn skopeo_image(archive: &Path, arch: &str) -> Value {
    skopeo_inspect(&format!("oci-archive:{}", archive.display()), arch, &[])
}

/// `skopeo inspect --raw` (for a single image its manifest; for several, the index) and
/// `skopeo inspect --config` (the `arch` image's config) of an `oci-archive:` builder.
pub fn skopeo_platform(archive: &Path, arch: &str) -> (Value, Value) {
    let src = format!("oci-archive:{}", archive.display());
    (
        skopeo_inspect(&src, arch, &["--raw"]),
        skopeo_inspect(&src, arch, &["--config"]),
    )
}

/// The Env of a config JSON as a map.
pub fn env_of(config: &Value) -> BTreeMap<String, String> {
    config["config"]["Env"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|e| {
                    e.as_str()?
                        .split_once('=')
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Every file name under `dir` (relative, sorted), for "nothing was written" checks.
pub fn tree(dir: &Path) -> Vec<String> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
        let Ok(entries) = fs::read_dir(dir) else {
            return;
        };
        for e in entries {
            let e = e.unwrap();
            let p = e.path();
            out.push(p.strip_prefix(root).unwrap().display().to_string());
            if e.file_type().unwrap().is_dir() {
                walk(root, &p, out);
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

// ---------------------------------------------------------------------------------------------
// A builder-shaped layout written by hand (for inspect and verify, independent of `builder create`)

/// What is wrong with a hand-written builder (see [`builder_shaped`]).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Flaw {
    /// Nothing: a sound builder.
    None,
    /// The lifecycle layer lacks `/cnb/lifecycle/exporter`.
    MissingExporter,
    /// The layers label points a buildpack at a diffID the config does not list.
    ForeignDiffId,
    /// The order label names a buildpack the layers label lacks.
    UnknownOrderEntry,
    /// The metadata label lists no run image.
    NoRunImage,
    /// The metadata label is not JSON.
    BadMetadata,
    /// It also carries a package's metadata label (so it is checked as a package).
    AlsoAPackage,
}

/// A tar entry for [`tar_of`]: name, body (`None`: a directory), mode, uid/gid, link target.
pub struct Entry {
    /// Name, as written.
    pub name: String,
    /// File content; `None` for a directory or a link.
    pub body: Option<Vec<u8>>,
    /// Mode.
    pub mode: u32,
    /// Owner (uid = gid).
    pub owner: u64,
    /// Symbolic link target.
    pub link: Option<String>,
}

/// A directory entry.
pub fn dir_entry(name: &str, owner: u64) -> Entry {
    Entry {
        name: name.into(),
        body: None,
        mode: 0o755,
        owner,
        link: None,
    }
}

/// A file entry.
pub fn file_entry(name: &str, body: &[u8], mode: u32) -> Entry {
    Entry {
        name: name.into(),
        body: Some(body.to_vec()),
        mode,
        owner: 0,
        link: None,
    }
}

/// A symbolic link entry.
pub fn link_entry(name: &str, target: &str) -> Entry {
    Entry {
        name: name.into(),
        body: None,
        mode: 0o777,
        owner: 0,
        link: Some(target.into()),
    }
}

/// An uncompressed tar of `entries`, in order (names written relative: the tar crate refuses a
/// leading `/`, which readers strip anyway).
pub fn tar_of(entries: &[Entry]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for e in entries {
        let name = e.name.trim_start_matches('/');
        let mut h = tar::Header::new_ustar();
        h.set_mode(e.mode);
        h.set_uid(e.owner);
        h.set_gid(e.owner);
        h.set_mtime(315_532_801);
        match (&e.body, &e.link) {
            (_, Some(target)) => {
                h.set_entry_type(tar::EntryType::Symlink);
                h.set_size(0);
                b.append_link(&mut h, name, target).unwrap();
            }
            (Some(body), None) => {
                h.set_entry_type(tar::EntryType::Regular);
                h.set_size(body.len() as u64);
                b.append_data(&mut h, name, &body[..]).unwrap();
            }
            (None, None) => {
                h.set_entry_type(tar::EntryType::Directory);
                h.set_size(0);
                b.append_data(&mut h, name, std::io::empty()).unwrap();
            }
        }
    }
    b.into_inner().unwrap()
}

/// A two-platform builder layout `dir/name` written with the layout writer from hand-made
/// layers and labels (pack's shape: base, directories, lifecycle, one buildpack, order, stack,
/// run), with `flaw`.
pub fn builder_shaped(dir: &Path, name: &str, flaw: Flaw) -> PathBuf {
    use cnbpkg::internals::{canonical, LayoutWriter};
    use cnbpkg::layout::OutputFormat;
    use cnbpkg::oci::{self, Descriptor, ImageConfig, Index, Manifest, RootFs};

    let path = dir.join(name);
    let mut w = LayoutWriter::create(&path, OutputFormat::Layout).unwrap();
    let mut listed: Vec<Descriptor> = Vec::new();
    for arch in ARCHES {
        let bins: Vec<Entry> = LIFECYCLE_BINARIES
            .iter()
            .filter(|b| !(flaw == Flaw::MissingExporter && **b == "exporter"))
            .map(|b| link_entry(&format!("/cnb/lifecycle/{b}"), "lifecycle"))
            .collect();
        let mut lifecycle = vec![
            dir_entry("/cnb/lifecycle", 0),
            file_entry("/cnb/lifecycle/lifecycle", &elf(arch, b"lc"), 0o755),
        ];
        lifecycle.extend(bins);
        lifecycle.push(link_entry("/lifecycle", "/cnb/lifecycle"));
        let layers: Vec<Vec<u8>> = vec![
            tar_of(&[
                dir_entry("etc", 0),
                file_entry("etc/os-release", b"ID=ubuntu\nVERSION_ID=\"22.04\"\n", 0o644),
                file_entry("bin/sh", &elf(arch, b"sh"), 0o755),
            ]),
            tar_of(&[
                dir_entry("/workspace", 1000),
                dir_entry("/layers", 1000),
                dir_entry("/cnb", 0),
                dir_entry("/cnb/buildpacks", 0),
                dir_entry("/cnb/extensions", 0),
                dir_entry("/platform", 0),
                dir_entry("/platform/env", 0),
                dir_entry("/cnb/build-config", 0),
                dir_entry("/cnb/build-config/env", 0),
            ]),
            tar_of(&lifecycle),
            tar_of(&[
                dir_entry("/cnb/buildpacks/example_a", 0),
                dir_entry("/cnb/buildpacks/example_a/1.0.0", 0),
                file_entry(
                    "/cnb/buildpacks/example_a/1.0.0/buildpack.toml",
                    b"api = \"0.10\"\n[buildpack]\nid = \"example/a\"\nversion = \"1.0.0\"\n",
                    0o644,
                ),
                file_entry("/cnb/buildpacks/example_a/1.0.0/bin/build", b"#!/bin/sh\n", 0o755),
            ]),
            tar_of(&[file_entry(
                "/cnb/order.toml",
                b"[[order]]\n\n  [[order.group]]\n    id = \"example/a\"\n    version = \"1.0.0\"\n",
                0o644,
            )]),
            tar_of(&[file_entry(
                "/cnb/stack.toml",
                b"[run-image]\n  image = \"example.com/run:1\"\n  mirrors = [\"mirror.example.com/run:1\"]\n",
                0o644,
            )]),
            tar_of(&[file_entry(
                "/cnb/run.toml",
                b"[[images]]\n  image = \"example.com/run:1\"\n  mirrors = [\"mirror.example.com/run:1\"]\n",
                0o644,
            )]),
        ];
        let mut descs = Vec::new();
        let mut diff_ids = Vec::new();
        for tar in &layers {
            diff_ids.push(cnbpkg::digest::Digest::of(tar));
            let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            gz.write_all(tar).unwrap();
            descs.push(
                w.put_bytes(oci::MEDIA_TYPE_LAYER_GZIP, &gz.finish().unwrap())
                    .unwrap(),
            );
        }
        let bp_diff = if flaw == Flaw::ForeignDiffId {
            cnbpkg::digest::Digest::of(b"not a layer").to_string()
        } else {
            diff_ids[3].to_string()
        };
        let images = if flaw == Flaw::NoRunImage {
            json!([])
        } else {
            json!([{"image": "example.com/run:1", "mirrors": ["mirror.example.com/run:1"]}])
        };
        let metadata = if flaw == Flaw::BadMetadata {
            "{not json".to_string()
        } else {
            json!({
                "description": "a hand-made builder",
                "buildpacks": [{"id": "example/a", "version": "1.0.0"}],
                "extensions": null,
                "stack": {"runImage": {"image": "", "mirrors": null}},
                "lifecycle": {
                    "version": "0.20.5",
                    "api": {"buildpack": "0.7", "platform": "0.7"},
                    "apis": {
                        "buildpack": {"deprecated": [], "supported": ["0.7", "0.10"]},
                        "platform": {"deprecated": [], "supported": ["0.7", "0.13"]},
                    },
                },
                "createdBy": {"name": "hand", "version": "0"},
                "images": images,
            })
            .to_string()
        };
        let order_id = if flaw == Flaw::UnknownOrderEntry {
            "example/nope"
        } else {
            "example/a"
        };
        let mut labels = BTreeMap::new();
        labels.insert("io.buildpacks.builder.metadata".to_string(), metadata);
        labels.insert(
            "io.buildpacks.buildpack.layers".to_string(),
            json!({"example/a": {"1.0.0": {"api": "0.10", "layerDiffID": bp_diff}}}).to_string(),
        );
        labels.insert(
            "io.buildpacks.extension.layers".to_string(),
            "{}".to_string(),
        );
        labels.insert(
            "io.buildpacks.buildpack.order".to_string(),
            json!([{"group": [{"id": order_id}]}]).to_string(),
        );
        labels.insert(
            "io.buildpacks.buildpack.order-extensions".to_string(),
            "null".to_string(),
        );
        labels.insert(
            "io.buildpacks.base.distro.name".to_string(),
            "ubuntu".to_string(),
        );
        labels.insert(
            "io.buildpacks.base.distro.version".to_string(),
            "22.04".to_string(),
        );
        labels.insert("io.buildpacks.stack.mixins".to_string(), "null".to_string());
        if flaw == Flaw::AlsoAPackage {
            labels.insert(
                "io.buildpacks.buildpackage.metadata".to_string(),
                json!({"id": "example/a", "version": "1.0.0"}).to_string(),
            );
        }
        let d = super::packages::put_image(
            &mut w,
            &super::packages::platform("linux", arch),
            descs,
            diff_ids,
            labels,
        );
        listed.push(d);
    }
    let index = Index::new(listed);
    let index_desc = w
        .put_bytes(oci::MEDIA_TYPE_INDEX, &canonical(&index))
        .unwrap();
    w.finish(&Index::new(vec![index_desc])).unwrap()
}

// ---------------------------------------------------------------------------------------------
// Running `builder create`

/// The arguments of `cnbpkg builder create OUT --config CONFIG EXTRA...`.
pub fn create_args(config: &Path, out: &Path, extra: &[&str]) -> Vec<std::ffi::OsString> {
    let mut args: Vec<std::ffi::OsString> = vec![
        "builder".into(),
        "create".into(),
        out.into(),
        "--config".into(),
        config.into(),
    ];
    args.extend(extra.iter().map(std::ffi::OsString::from));
    args
}

/// Run `cnbpkg builder create OUT --config CONFIG EXTRA...` (isolated, bounded).
pub fn create(config: &Path, out: &Path, extra: &[&str]) -> std::process::Output {
    super::child::cnbpkg(create_args(config, out, extra))
}

/// Like [`create`], the child started with umask `mask` (the test process keeps its own).
pub fn create_with_umask(
    config: &Path,
    out: &Path,
    extra: &[&str],
    mask: libc::mode_t,
) -> std::process::Output {
    use std::os::unix::process::CommandExt;
    let mut cmd = super::child::cnbpkg_command();
    cmd.args(create_args(config, out, extra));
    // SAFETY: umask is async-signal-safe; nothing else runs between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            libc::umask(mask);
            Ok(())
        });
    }
    super::child::output(&mut cmd)
}

/// Write `dir/builder.toml`.
pub fn write_builder_toml(dir: &Path, text: &str) -> PathBuf {
    let path = dir.join("builder.toml");
    fs::write(&path, text).unwrap();
    path
}

/// `[[targets]]` tables for `linux/<arch>` of each of `arches`.
pub fn targets_toml(arches: &[&str]) -> String {
    arches
        .iter()
        .map(|a| format!("\n[[targets]]\nos = \"linux\"\narch = \"{a}\"\n"))
        .collect()
}

/// A builder.toml over build image `build`, buildpack `bp` (id `acme/a`) and lifecycle
/// `lifecycle`, with `extra` appended.
pub fn simple_builder_toml(dir: &Path, build: &str, lifecycle: &str, extra: &str) -> PathBuf {
    write_builder_toml(
        dir,
        &format!(
            r#"[[buildpacks]]
uri = "bp"

[[order]]
[[order.group]]
id = "acme/a"

[build]
image = "{build}"

[[run.images]]
image = "example.com/run:1"

[lifecycle]
uri = "{lifecycle}"
{extra}"#
        ),
    )
}

/// Run `builder create` into `dir/out/builder.cnb` with `extra` flags and check the refusal:
/// exit status 1, a single `error:` line (the last) containing every one of `expected`, and
/// no file written anywhere under `dir`.
pub fn refused(dir: &Path, config: &Path, extra: &[&str], expected: &[&str]) {
    let out_dir = dir.join("out");
    fs::create_dir_all(&out_dir).unwrap();
    let before = tree(dir);
    let out = create(config, &out_dir.join("builder.cnb"), extra);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "{expected:?}:\n{stderr}");
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    let errors: Vec<&&str> = lines.iter().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(errors.len(), 1, "one error line:\n{stderr}");
    let line = *lines.last().unwrap();
    assert!(
        line.starts_with("error: "),
        "the error comes last:\n{stderr}"
    );
    for e in expected {
        assert!(line.contains(e), "{e:?} missing from: {line}");
    }
    assert_eq!(tree(dir), before, "nothing written: {line}");
}
