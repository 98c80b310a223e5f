//! Composites whose dependencies are registry images (`docker://REF`, a bare reference,
//! `image = "REF"`): pulled once into a store, then packaged with the registry stopped, from a
//! store directory or a layout archive, by tag or by digest, and equal byte for byte to the
//! same dependencies given as `.cnb` files. What the store lacks is listed in one error with
//! the one `cnbpkg pull` that fetches it; a damaged blob of the store is named.

use std::net::TcpStream;
use std::path::{Path, PathBuf};

use cnbpkg::digest::Digest;

use crate::support::registry::Registry;
use crate::support::*;

const TWO_TARGETS: &str =
    "\n[[targets]]\nos = \"linux\"\narch = \"amd64\"\n[[targets]]\nos = \"linux\"\narch = \"arm64\"\n";

/// Package buildpack `id`@1.0.0 into `DIR/NAME.cnb`; `targets` are its buildpack.toml targets
/// (none: one image for `linux`, any architecture).
fn dependency_cnb(dir: &Path, name: &str, id: &str, targets: &str) -> PathBuf {
    let src = dir.join("src").join(name);
    minimal_buildpack(&src, id, "1.0.0", targets);
    let out = dir.join(format!("{name}.cnb"));
    ok(cnbpkg([
        "buildpack",
        "package",
        out.to_str().unwrap(),
        "--path",
        src.to_str().unwrap(),
    ]));
    out
}

/// `DIR/meta` ordering test/a, test/b and test/c, and `DIR/NAME.toml` packaging it with
/// `dependencies` for linux/amd64 and linux/arm64.
fn composite(dir: &Path, name: &str, dependencies: &str) -> PathBuf {
    let group: String = ["test/a", "test/b", "test/c"]
        .iter()
        .map(|id| format!("[[order.group]]\nid = \"{id}\"\nversion = \"1.0.0\"\n"))
        .collect();
    write_file(
        &dir.join("meta/buildpack.toml"),
        &format!("api = \"0.10\"\n[buildpack]\nid = \"test/meta\"\nversion = \"1.0.0\"\n\n[[order]]\n{group}"),
        0o644,
    );
    let config = dir.join(format!("{name}.toml"));
    write_file(
        &config,
        &format!("[buildpack]\nuri = \"meta\"\n\n{dependencies}\n{TWO_TARGETS}"),
        0o644,
    );
    config
}

/// Three dependency packages (test/a and test/c for two platforms, test/b for one), pushed
/// to a registry, pulled into a store and into a layout archive; the registry is stopped.
struct Pulled {
    dir: tempfile::TempDir,
    /// a.cnb, b.cnb, c.cnb.
    cnbs: [PathBuf; 3],
    /// Where each was pushed (`127.0.0.1:PORT/deps/NAME:1`).
    refs: [String; 3],
    store: PathBuf,
    archive: PathBuf,
}

fn pulled() -> Pulled {
    let reg = Registry::start_plain();
    let dir = tempfile::tempdir().unwrap();
    let cnbs = [
        dependency_cnb(dir.path(), "a", "test/a", TWO_TARGETS),
        dependency_cnb(dir.path(), "b", "test/b", ""),
        dependency_cnb(dir.path(), "c", "test/c", TWO_TARGETS),
    ];
    let refs = ["a", "b", "c"].map(|n| format!("{}/deps/{n}:1", reg.host()));
    for (cnb, reference) in cnbs.iter().zip(&refs) {
        ok(cnbpkg([
            "push",
            cnb.to_str().unwrap(),
            reference,
            "--insecure",
        ]));
    }
    let store = dir.path().join("store");
    let archive = dir.path().join("deps.tar");
    let mut args = vec![
        "pull",
        "--insecure",
        "--store",
        store.to_str().unwrap(),
        "--output",
        archive.to_str().unwrap(),
    ];
    args.extend(refs.iter().map(String::as_str));
    ok(cnbpkg(&args));
    let host = reg.host();
    drop(reg); // stopped by its PID
    assert!(
        TcpStream::connect(&host).is_err(),
        "the registry is still listening"
    );
    Pulled {
        dir,
        cnbs,
        refs,
        store,
        archive,
    }
}

/// `cnbpkg buildpack package OUT --config CONFIG --json EXTRA…` in `dir`: the report.
fn package(dir: &Path, config: &Path, out: &str, extra: &[&str]) -> serde_json::Value {
    let mut args = vec![
        "buildpack",
        "package",
        out,
        "--config",
        config.to_str().unwrap(),
        "--json",
    ];
    args.extend_from_slice(extra);
    let stdout = ok(cnbpkg_in(dir, &args));
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("--json: {e}\n{stdout}"))
}

/// The same three dependencies as `.cnb` files.
fn as_files(p: &Pulled) -> String {
    p.cnbs
        .iter()
        .map(|c| format!("[[dependencies]]\nuri = {:?}\n", c.to_str().unwrap()))
        .collect()
}

/// The manifest digest of each platform (`linux/amd64`…, or `linux`) of a package.
fn manifest_of(cnb: &Path, target: &str) -> String {
    let all = packages::manifests(cnb);
    let fits = |d: &cnbpkg::oci::Descriptor| match &d.platform {
        Some(p) if p.architecture.is_empty() => target.starts_with(&p.os),
        Some(p) => format!("{}/{}", p.os, p.architecture) == target,
        None => true,
    };
    match all.iter().find(|(d, _)| fits(d)) {
        Some((d, _)) => d.digest.to_string(),
        None if all.len() == 1 => all[0].0.digest.to_string(),
        None => panic!("{} has no image for {target}", cnb.display()),
    }
}

#[test]
fn image_dependencies_package_offline_and_equal_their_cnb_files() {
    let p = pulled();
    let [a, b, c] = &p.refs;
    let d = p.dir.path();
    let images = composite(
        d,
        "images",
        &format!(
            "[[dependencies]]\nuri = \"docker://{a}\"\n[[dependencies]]\nuri = \"{b}\"\n[[dependencies]]\nimage = \"{c}\"\n"
        ),
    );
    let store = p.store.to_str().unwrap();
    let report = package(d, &images, "from-store.cnb", &["--store", store]);
    ok(cnbpkg_in(d, ["verify", "from-store.cnb"]));
    let files = composite(d, "files", &as_files(&p));
    let file_report = package(d, &files, "from-files.cnb", &[]);

    // What the store gave is what was pushed: the entry digests are the packages' own.
    let deps = report["dependencies"].as_array().unwrap();
    assert_eq!(deps.len(), 3, "{report}");
    let written = [format!("docker://{a}"), b.clone(), format!("docker://{c}")];
    for (i, dep) in deps.iter().enumerate() {
        assert_eq!(dep["uri"], written[i].as_str(), "{dep}");
        assert_eq!(dep["kind"], "image", "{dep}");
        assert_eq!(dep["reference"], p.refs[i].as_str(), "{dep}");
        assert_eq!(dep["entry"], p.refs[i].as_str(), "{dep}");
        assert_eq!(dep["store"], store, "{dep}");
        let (top, _) = packages::top(&p.cnbs[i]);
        assert_eq!(dep["digest"], top.digest.to_string(), "{dep}");
        // Each target took the dependency's image for its platform (test/b: its one image).
        let used: Vec<(String, String)> = dep["images"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| {
                (
                    x["target"].as_str().unwrap().to_string(),
                    x["manifest"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        let expected: Vec<(String, String)> = ["linux/amd64", "linux/arm64"]
            .iter()
            .map(|t| (t.to_string(), manifest_of(&p.cnbs[i], t)))
            .collect();
        assert_eq!(used, expected, "{dep}");
        // The same images, given as files.
        let file_dep = &file_report["dependencies"][i];
        assert_eq!(file_dep["kind"], "package", "{file_dep}");
        assert!(file_dep.get("reference").is_none(), "{file_dep}");
        assert_eq!(file_dep["images"], dep["images"], "{file_dep}");
    }
    // Same dependency bytes, same package, byte for byte.
    let from_store = std::fs::read(d.join("from-store.cnb")).unwrap();
    assert_eq!(from_store, std::fs::read(d.join("from-files.cnb")).unwrap());
    assert_eq!(
        report["outputs"][0]["digest"],
        file_report["outputs"][0]["digest"]
    );
}

#[test]
fn references_by_digest_and_a_layout_archive_as_the_store() {
    let p = pulled();
    let [a, b, c] = &p.refs;
    let d = p.dir.path();
    let a_top = packages::top(&p.cnbs[0]).0.digest;
    let b_top = packages::top(&p.cnbs[1]).0.digest;
    // test/a by its index digest, test/b by tag and digest (which agree).
    let untagged = a.trim_end_matches(":1");
    let pinned = composite(
        d,
        "pinned",
        &format!(
            "[[dependencies]]\nuri = \"docker://{untagged}@{a_top}\"\n[[dependencies]]\nuri = \"docker://{b}@{b_top}\"\n[[dependencies]]\nimage = \"{c}\"\n"
        ),
    );
    let archive = p.archive.to_str().unwrap();
    // The store is an input: never the output.
    let before = std::fs::read(&p.archive).unwrap();
    let e = fails(
        cnbpkg_in(
            d,
            [
                "buildpack",
                "package",
                archive,
                "--config",
                pinned.to_str().unwrap(),
                "--store",
                archive,
            ],
        ),
        1,
    );
    assert!(e.contains("is also an input (the store"), "{e}");
    assert_eq!(std::fs::read(&p.archive).unwrap(), before);
    let report = package(d, &pinned, "pinned.cnb", &["--store", archive]);
    ok(cnbpkg_in(d, ["verify", "pinned.cnb"]));
    let dep = &report["dependencies"][0];
    assert_eq!(dep["reference"], format!("{untagged}@{a_top}"), "{dep}");
    assert_eq!(dep["entry"], a.as_str(), "{dep}");
    assert_eq!(dep["store"], archive, "{dep}");
    assert_eq!(
        report["dependencies"][1]["reference"],
        format!("{b}@{b_top}")
    );
    let files = composite(d, "files", &as_files(&p));
    package(d, &files, "files.cnb", &[]);
    assert_eq!(
        std::fs::read(d.join("pinned.cnb")).unwrap(),
        std::fs::read(d.join("files.cnb")).unwrap()
    );

    // One platform's manifest by its digest (listed by test/c's index) serves that platform.
    let c_arm = manifest_of(&p.cnbs[2], "linux/arm64");
    let untagged_c = c.trim_end_matches(":1");
    let one = composite(
        d,
        "one",
        &format!(
            "[[dependencies]]\nuri = \"docker://{a}\"\n[[dependencies]]\nuri = \"{b}\"\n[[dependencies]]\nuri = \"docker://{untagged_c}@{c_arm}\"\n"
        ),
    );
    let store = p.store.to_str().unwrap();
    let report = package(
        d,
        &one,
        "arm.cnb",
        &["--store", store, "--target", "linux/arm64"],
    );
    assert_eq!(report["dependencies"][2]["digest"], c_arm.as_str());
    assert_eq!(
        report["dependencies"][2]["images"][0]["manifest"],
        c_arm.as_str()
    );
    let e = fails(
        cnbpkg_in(
            d,
            [
                "buildpack",
                "package",
                "amd.cnb",
                "--config",
                one.to_str().unwrap(),
                "--store",
                store,
                "--target",
                "linux/amd64",
            ],
        ),
        1,
    );
    assert!(e.contains("has no image for target linux/amd64"), "{e}");

    // A tag and a digest that disagree: both digests are named.
    let wrong = composite(
        d,
        "wrong",
        &format!("[[dependencies]]\nuri = \"docker://{b}@{a_top}\"\n"),
    );
    let e = fails(
        cnbpkg_in(
            d,
            [
                "buildpack",
                "package",
                "wrong.cnb",
                "--config",
                wrong.to_str().unwrap(),
                "--store",
                store,
            ],
        ),
        1,
    );
    assert!(
        e.contains(&a_top.to_string()) && e.contains(&b_top.to_string()),
        "{e}"
    );
    for out in ["amd.cnb", "wrong.cnb"] {
        assert!(!d.join(out).exists(), "{out}");
    }
}

#[test]
fn what_the_store_lacks_is_listed_with_one_pull_command() {
    let reg = Registry::start_plain();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let cnbs = [
        dependency_cnb(d, "a", "test/a", TWO_TARGETS),
        dependency_cnb(d, "b", "test/b", ""),
        dependency_cnb(d, "c", "test/c", TWO_TARGETS),
    ];
    let refs = ["a", "b", "c"].map(|n| format!("{}/deps/{n}:1", reg.host()));
    for (cnb, reference) in cnbs.iter().zip(&refs) {
        ok(cnbpkg([
            "push",
            cnb.to_str().unwrap(),
            reference,
            "--insecure",
        ]));
    }
    let [a, b, c] = &refs;
    // The store holds test/a only; its path needs quoting in a shell.
    let store = d.join("the store");
    let store_arg = store.to_str().unwrap();
    ok(cnbpkg(["pull", "--insecure", "--store", store_arg, a]));
    let image_deps = format!(
        "[[dependencies]]\nuri = \"docker://{a}\"\n[[dependencies]]\nuri = \"{b}\"\n[[dependencies]]\nimage = \"{c}\"\n"
    );
    let config = composite(
        d,
        "package",
        &format!("{image_deps}[[dependencies]]\nuri = \"urn:cnb:registry:acme/x@1.0.0\"\n[[dependencies]]\nuri = \"https://example.com/x.tgz\"\n"),
    );
    let args = |config: &Path, store: &str| -> Vec<String> {
        [
            "buildpack",
            "package",
            "x.cnb",
            "--config",
            config.to_str().unwrap(),
            "--store",
            store,
        ]
        .map(String::from)
        .to_vec()
    };
    let stderr = fails(cnbpkg_in(d, args(&config, store_arg)), 1);
    let quoted = format!("'{store_arg}'");
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(
        lines,
        [
            "warning: The 'image' key is deprecated. Use 'uri=\"docker://...\"' instead.".to_string(),
            format!("error: {}: 4 buildpacks are not on this machine and cnbpkg never downloads while packaging:", config.display()),
            format!("  dependency 'urn:cnb:registry:acme/x@1.0.0' is a Buildpack Registry id: look up the image it stands for (the registry index at https://github.com/buildpacks/registry-index), run `cnbpkg pull --store {quoted} IMAGE` and give uri = \"docker://IMAGE\""),
            format!("  dependency 'https://example.com/x.tgz' is a download: run `curl -fL -o {}/x.tgz https://example.com/x.tgz` and give uri = \"x.tgz\"", d.display()),
            format!("  dependency '{b}' is image {b}, not in the store"),
            format!("  dependency 'docker://{c}' is image {c}, not in the store"),
            format!("  fetch them with `cnbpkg pull --store {quoted} {b} {c}` (the store is {store_arg}), then package again"),
        ],
        "{stderr}"
    );
    assert!(!d.join("x.cnb").exists());

    // A layout archive is read-only: the advice makes a new one holding every image.
    let archive = d.join("deps.tar");
    ok(cnbpkg([
        "pull",
        "--insecure",
        "--store",
        store_arg,
        "--output",
        archive.to_str().unwrap(),
        a,
        b,
    ]));
    let images_only = composite(d, "images", &image_deps);
    let stderr = fails(
        cnbpkg_in(d, args(&images_only, archive.to_str().unwrap())),
        1,
    );
    let last = stderr.lines().last().unwrap();
    assert_eq!(
        last,
        format!(
            "  the store {} is an archive, read-only: make a new one holding every image with `cnbpkg pull --output {} {a} {b} {c}` where the registries can be reached, then package again",
            archive.display(),
            archive.display()
        ),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!(
            "dependency 'docker://{c}' is image {c}, not in the store"
        )),
        "{stderr}"
    );
    assert!(!stderr.contains(&format!("'{b}' is image")), "{stderr}");

    // One reference's archive is a package that names its image: a dependency of its own,
    // or a store of that one image.
    let one = d.join("one.tar");
    ok(cnbpkg([
        "pull",
        "--insecure",
        "--store",
        store_arg,
        "--output",
        one.to_str().unwrap(),
        a,
    ]));
    let stderr = fails(cnbpkg_in(d, args(&images_only, one.to_str().unwrap())), 1);
    assert!(
        stderr.contains("2 buildpacks are not on this machine"),
        "{stderr}"
    );
    let as_package = composite(
        d,
        "as-package",
        &format!(
            "[[dependencies]]\nuri = {:?}\n[[dependencies]]\nuri = {:?}\n[[dependencies]]\nuri = {:?}\n",
            one.to_str().unwrap(),
            cnbs[1].to_str().unwrap(),
            cnbs[2].to_str().unwrap()
        ),
    );
    ok(cnbpkg_in(d, args(&as_package, store_arg)));
    // A package naming no image is no store: the error says how to use it.
    let a_cnb = cnbs[0].to_str().unwrap();
    let stderr = fails(cnbpkg_in(d, args(&images_only, a_cnb)), 1);
    assert!(
        stderr.contains(&format!(
            "the store {a_cnb} names no image (a package is a dependency of its own: uri = \"{a_cnb}\")"
        )),
        "{stderr}"
    );

    // The advised command, run (plain HTTP to the local registry needs --insecure), fills the
    // store; the images then package with the registry stopped.
    let command = stderr_command(&fails(cnbpkg_in(d, args(&images_only, store_arg)), 1));
    let words = shell_words(&command);
    assert_eq!(&words[..2], ["cnbpkg", "pull"], "{command}");
    let mut pull: Vec<String> = vec!["pull".into(), "--insecure".into()];
    pull.extend(words[2..].iter().cloned());
    ok(cnbpkg(&pull));
    drop(reg);
    ok(cnbpkg_in(d, args(&images_only, store_arg)));
    ok(cnbpkg_in(d, ["verify", "x.cnb"]));
}

/// The command between backticks on the last line of `stderr`.
fn stderr_command(stderr: &str) -> String {
    let last = stderr.lines().last().unwrap_or_default();
    last.split('`')
        .nth(1)
        .unwrap_or_else(|| panic!("no command in {stderr}"))
        .to_string()
}

/// The words a POSIX shell makes of `command`.
fn shell_words(command: &str) -> Vec<String> {
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            "for w in {command}; do printf '%s\\n' \"$w\"; done"
        ))
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(String::from)
        .collect()
}

#[test]
fn a_damaged_blob_of_the_store_is_named_and_nothing_is_written() {
    let p = pulled();
    let [a, b, c] = &p.refs;
    let d = p.dir.path();
    let config = composite(
        d,
        "images",
        &format!(
            "[[dependencies]]\nuri = \"docker://{a}\"\n[[dependencies]]\nuri = \"{b}\"\n[[dependencies]]\nimage = \"{c}\"\n"
        ),
    );
    // test/b's one layer, recompressed: the same tar (diffID), another blob.
    let (_, manifest) = packages::manifests(&p.cnbs[1]).remove(0);
    let manifest: cnbpkg::oci::Manifest = serde_json::from_slice(&manifest).unwrap();
    let layer: Digest = manifest.layers[0].digest;
    let blob = p.store.join(layer.blob_path());
    let mut tar = Vec::new();
    std::io::Read::read_to_end(
        &mut flate2::read::MultiGzDecoder::new(std::fs::File::open(&blob).unwrap()),
        &mut tar,
    )
    .unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::none());
    std::io::Write::write_all(&mut gz, &tar).unwrap();
    let recompressed = gz.finish().unwrap();
    let mut perms = std::fs::metadata(&blob).unwrap().permissions();
    #[allow(clippy::permissions_set_readonly_false)]
    perms.set_readonly(false);
    std::fs::set_permissions(&blob, perms).unwrap();
    std::fs::write(&blob, &recompressed).unwrap();
    let args = [
        "buildpack",
        "package",
        "x.cnb",
        "--config",
        config.to_str().unwrap(),
        "--store",
        p.store.to_str().unwrap(),
    ];
    let e = fails(cnbpkg_in(d, args), 1);
    assert!(
        e.contains(&format!(
            "layer {layer} has digest {} and size {}",
            Digest::of(&recompressed),
            recompressed.len()
        )),
        "{e}"
    );
    assert!(!d.join("x.cnb").exists());

    // A config of test/c, same size: found when the store is read, before any layer.
    let (_, second) = packages::manifests(&p.cnbs[2]).remove(1);
    let second: cnbpkg::oci::Manifest = serde_json::from_slice(&second).unwrap();
    let config_blob = p.store.join(second.config.digest.blob_path());
    let mut perms = std::fs::metadata(&config_blob).unwrap().permissions();
    #[allow(clippy::permissions_set_readonly_false)]
    perms.set_readonly(false);
    std::fs::set_permissions(&config_blob, perms).unwrap();
    std::fs::write(&config_blob, vec![b' '; second.config.size as usize]).unwrap();
    let e = fails(cnbpkg_in(d, args), 1);
    assert!(
        e.contains(&format!("blob {} has digest", second.config.digest)),
        "{e}"
    );
    assert!(!d.join("x.cnb").exists());
}
