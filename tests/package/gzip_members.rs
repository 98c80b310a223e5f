//! gzip layers are a series of gzip members, one per block: every reader a package meets
//! (skopeo, umoci with its diffID checks, GNU gzip, Python's `tarfile`, cnbpkg's own) reads
//! them whole, and their bytes depend neither on the thread count nor on where they are written.

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;

use cnbpkg::internals::GZIP_BLOCK_SIZE;

use crate::support::*;

/// A buildpack whose layer spans several gzip blocks: compressible text, random bytes (stored
/// blocks) and a few hundred small files.
fn buildpack(root: &Path) -> Vec<u8> {
    minimal_buildpack(
        root,
        "acme/members",
        "1.0.0",
        "\n[[targets]]\nos = \"linux\"\narch = \"amd64\"\n",
    );
    let mut rng = Rng::new(0x6d65_6d62);
    let mut text = Vec::new();
    while text.len() < 3 * GZIP_BLOCK_SIZE {
        rng.write_words(&mut text, 1000);
    }
    fs::create_dir_all(root.join("data")).unwrap();
    fs::write(root.join("data/text.txt"), &text).unwrap();
    fs::write(
        root.join("data/random.bin"),
        rng.bytes(GZIP_BLOCK_SIZE + 777),
    )
    .unwrap();
    for i in 0..300 {
        let mut small = Vec::new();
        rng.write_words(&mut small, 20 + i);
        fs::write(root.join(format!("data/small-{i:03}.txt")), small).unwrap();
    }
    text
}

fn package(src: &Path, out: &Path, extra: &[&str]) {
    let mut args = vec![
        "buildpack",
        "package",
        out.to_str().unwrap(),
        "--path",
        src.to_str().unwrap(),
        "-q",
    ];
    args.extend_from_slice(extra);
    ok(cnbpkg(args));
}

/// The gzip layer blobs of a layout directory with one image, with their diffIDs.
fn gzip_layers(layout: &Path) -> Vec<(PathBuf, String)> {
    let blob = |digest: &str| layout.join("blobs/sha256").join(&digest["sha256:".len()..]);
    let json = |p: PathBuf| -> serde_json::Value {
        serde_json::from_slice(&fs::read(p).unwrap()).unwrap()
    };
    let index = json(layout.join("index.json"));
    let mut top = index["manifests"][0].clone();
    if top["mediaType"] == "application/vnd.oci.image.index.v1+json" {
        top = json(blob(top["digest"].as_str().unwrap()))["manifests"][0].clone();
    }
    let manifest = json(blob(top["digest"].as_str().unwrap()));
    let config = json(blob(manifest["config"]["digest"].as_str().unwrap()));
    let diff_ids = config["rootfs"]["diff_ids"].as_array().unwrap();
    let layers = manifest["layers"].as_array().unwrap();
    assert_eq!(layers.len(), diff_ids.len());
    layers
        .iter()
        .zip(diff_ids)
        .map(|(l, d)| {
            assert_eq!(
                l["mediaType"],
                "application/vnd.oci.image.layer.v1.tar+gzip"
            );
            (
                blob(l["digest"].as_str().unwrap()),
                d.as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// How many gzip members `gz` holds, each decoded with a single-member decoder.
fn members(gz: &[u8]) -> usize {
    let mut rest = gz;
    let mut n = 0;
    while !rest.is_empty() {
        let mut d = flate2::bufread::GzDecoder::new(rest);
        std::io::copy(&mut d, &mut std::io::sink()).unwrap();
        rest = d.into_inner();
        n += 1;
    }
    n
}

#[test]
fn gzip_layers_are_identical_at_one_and_two_threads_wherever_written() {
    let d = tempfile::tempdir().unwrap();
    let src = d.path().join("bp");
    buildpack(&src);
    let mut outs = Vec::new();
    for (dir, jobs) in [
        ("one", "1"),
        ("two", "2"),
        ("again", "2"),
        ("once-more", "1"),
    ] {
        let out = d.path().join(dir).join("p.cnb");
        fs::create_dir_all(out.parent().unwrap()).unwrap();
        package(&src, &out, &["--jobs", jobs]);
        outs.push((jobs, fs::read(&out).unwrap()));
    }
    for (jobs, bytes) in &outs[1..] {
        assert!(
            *bytes == outs[0].1,
            "--jobs {jobs} or the output directory changed the bytes"
        );
    }
    for jobs in ["1", "2"] {
        let layout = d.path().join(format!("layout-{jobs}"));
        package(&src, &layout, &["--format", "layout", "--jobs", jobs]);
        let layers = gzip_layers(&layout);
        let module = &layers[layers.len() - 1].0;
        let gz = fs::read(module).unwrap();
        let n = members(&gz);
        // The layer is a bit over 4 blocks of tar: one member per block.
        assert!(n >= 5, "{n} members");
        let name = module.file_name().unwrap().to_str().unwrap();
        assert!(outs[0].1.windows(name.len()).any(|w| w == name.as_bytes()));
    }
}

#[test]
fn every_reader_reads_multi_member_layers_whole() {
    let d = tempfile::tempdir().unwrap();
    let src = d.path().join("bp");
    let text = buildpack(&src);
    let cnb = d.path().join("p.cnb");
    package(&src, &cnb, &[]);
    let layout = d.path().join("layout");
    package(&src, &layout, &["--format", "layout"]);

    // cnbpkg's own readers: verify decodes every layer against its diffID.
    ok(cnbpkg(["verify", cnb.to_str().unwrap()]));

    let layers = gzip_layers(&layout);
    let module = &layers[layers.len() - 1].0;
    assert!(members(&fs::read(module).unwrap()) > 1);
    for (blob, diff_id) in &layers {
        let blob = blob.to_str().unwrap();
        // GNU gzip: integrity of every member, and the decoded stream is the diffID's.
        tool_ok("gzip", &["-t", blob]);
        let piped = Command::new("sh")
            .args(["-c", "gzip -dc \"$0\" | sha256sum", blob])
            .output()
            .unwrap();
        assert!(piped.status.success());
        let hex = &diff_id["sha256:".len()..];
        assert!(
            String::from_utf8_lossy(&piped.stdout).starts_with(hex),
            "gzip -dc of {blob}"
        );

        // Python: tarfile lists and reads every entry; gzip decodes to the diffID.
        let script = "import sys,tarfile,gzip,hashlib\n\
            t=tarfile.open(sys.argv[1],'r:gz')\n\
            n=0\n\
            for m in t:\n\
            \x20   n+=1\n\
            \x20   if m.isfile(): t.extractfile(m).read()\n\
            print(n, hashlib.sha256(gzip.open(sys.argv[1]).read()).hexdigest())\n";
        let out = tool_ok("python3", &["-c", script, blob]);
        let (count, digest) = out.trim().split_once(' ').unwrap();
        assert_eq!(digest, hex, "python3 gzip of {blob}");
        assert!(count.parse::<usize>().unwrap() >= 1);
        if blob.ends_with(module.file_name().unwrap().to_str().unwrap()) {
            // bp dirs, bin/, build, detect, buildpack.toml, data/, 302 data files
            assert!(count.parse::<usize>().unwrap() >= 308, "{count} entries");
        }
    }

    // skopeo copies the archive (checking blob digests), umoci unpacks it (checking diffIDs).
    let rootfs = unpack_with_umoci(&cnb, d.path(), &[]);
    let bp = rootfs.join("cnb/buildpacks/acme_members/1.0.0");
    assert!(fs::read(bp.join("data/text.txt")).unwrap() == text);
    let mut random = Vec::new();
    fs::File::open(bp.join("data/random.bin"))
        .unwrap()
        .read_to_end(&mut random)
        .unwrap();
    assert!(random == fs::read(src.join("data/random.bin")).unwrap());
    assert!(bp.join("data/small-299.txt").is_file());
}
