//! Symbolic links in module layers. A link's target is data, resolved inside the container that
//! runs the buildpack: real buildpacks carry `bin/env -> /usr/bin/env` or links climbing out of
//! their directory to system files, and pack packages them unchanged. What must never happen is
//! an entry placed *through* a link (an extractor following it would write wherever it points),
//! however several links chain.

use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::Output;

use crate::support::rawtar::{self, Entry};
use crate::support::*;
use serde_json::{json, Value};
use sha2::{Digest as _, Sha256};

fn sha(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

fn verify(path: &Path) -> Output {
    cnbpkg(["verify".as_ref(), path.as_os_str()])
}

fn package(out: &Path, args: &[&str]) -> Output {
    let mut all: Vec<String> = vec![
        "buildpack".into(),
        "package".into(),
        out.display().to_string(),
    ];
    all.extend(args.iter().map(|s| s.to_string()));
    all.push("-q".into());
    cnbpkg(all)
}

/// A libcnb/Paketo-shaped buildpack: `bin/run`, `bin/build` and `bin/detect` linking to it, plus
/// links to system paths outside the module, absolute and relative.
fn linked_buildpack(dir: &Path, id: &str) {
    write_file(
        &dir.join("buildpack.toml"),
        &format!(
            "api = \"0.8\"\n[buildpack]\nid = \"{id}\"\nversion = \"1.0.0\"\n\n[[stacks]]\nid = \"*\"\n"
        ),
        0o644,
    );
    write_file(&dir.join("bin/run"), "#!/bin/sh\nexit 0\n", 0o755);
    symlink("run", dir.join("bin/build")).unwrap();
    symlink("run", dir.join("bin/detect")).unwrap();
    symlink("/usr/bin/env", dir.join("bin/env")).unwrap();
    symlink("/bin/bash", dir.join("bin/bash")).unwrap();
    fs::create_dir_all(dir.join("lib")).unwrap();
    symlink(
        "../../../../../usr/lib/os-release",
        dir.join("lib/os-release"),
    )
    .unwrap();
}

#[test]
fn links_to_system_paths_package_verify_and_compose() {
    let tmp = tempfile::tempdir().unwrap();
    let work = tmp.path();
    let bp = work.join("bp");
    linked_buildpack(&bp, "acme/linked");

    // From a directory.
    let out = work.join("linked.cnb");
    ok(package(&out, &["--path", bp.to_str().unwrap()]));
    ok(verify(&out));

    // From a .tgz made as release workflows make them.
    let tgz = work.join("linked.tgz");
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
    let from_tgz = work.join("linked-tgz.cnb");
    ok(package(&from_tgz, &["--path", tgz.to_str().unwrap()]));
    ok(verify(&from_tgz));

    // The links are kept unchanged.
    let listing = tool_ok("tar", &["-xOf", out.to_str().unwrap(), "index.json"]);
    assert!(listing.contains("manifests"));

    // As a dependency of a composite, with and without --flatten.
    let meta = work.join("meta");
    write_file(
        &meta.join("buildpack.toml"),
        "api = \"0.8\"\n[buildpack]\nid = \"acme/meta\"\nversion = \"1.0.0\"\n\n[[order]]\n[[order.group]]\nid = \"acme/linked\"\nversion = \"1.0.0\"\n",
        0o644,
    );
    let cfg = work.join("package.toml");
    fs::write(
        &cfg,
        format!(
            "[buildpack]\nuri = \"{}\"\n\n[[dependencies]]\nuri = \"{}\"\n",
            meta.display(),
            out.display()
        ),
    )
    .unwrap();
    for flags in [&[][..], &["--flatten"][..]] {
        let composite = work.join("meta.cnb");
        let mut args = vec!["--config", cfg.to_str().unwrap()];
        args.extend_from_slice(flags);
        ok(package(&composite, &args));
        ok(verify(&composite));
        fs::remove_file(&composite).unwrap();
    }
}

// ---------------------------------------------------------------------------------------------
// Hostile layers, written by hand with valid digests.

enum E<'a> {
    Dir(&'a str),
    File(&'a str),
    Link(&'a str, &'a str),
    Hard(&'a str, &'a str),
}

/// The layer tar of `entries` (support::rawtar): ustar, all 0755, owned by root, dated 1980.
fn tar_of(entries: &[E]) -> Vec<u8> {
    let list: Vec<Entry> = entries
        .iter()
        .map(|e| match e {
            E::Dir(n) => Entry::dir(n),
            E::File(n) => Entry::file(n, &b"#!/bin/sh\nexit 0\n"[..]),
            E::Link(n, t) => Entry::link(n, tar::EntryType::Symlink, t),
            E::Hard(n, t) => Entry::link(n, tar::EntryType::Link, t),
        })
        .map(|e| e.mode(0o755).mtime(315_532_801).ids(0, 0))
        .collect();
    rawtar::archive(&list)
}

fn put(root: &Path, media_type: &str, bytes: &[u8]) -> Value {
    let d = sha(bytes);
    fs::write(
        root.join("blobs/sha256")
            .join(d.trim_start_matches("sha256:")),
        bytes,
    )
    .unwrap();
    json!({"mediaType": media_type, "digest": d, "size": bytes.len()})
}

/// The layer of a module whose descriptor says `id@1.0.0`, stored in directory `dir_id`
/// (the id with `/` as `_`), followed by `extra`.
fn module_tar(os: &str, dir_id: &str, id: &str, extra: &[E]) -> Vec<u8> {
    let p = if os == "windows" { "Files/" } else { "" };
    let base = format!("{p}cnb/buildpacks/{dir_id}/1.0.0");
    let toml = format!("api = \"0.10\"\n[buildpack]\nid = \"{id}\"\nversion = \"1.0.0\"\n");
    let mut tar = Vec::new();
    let names = [
        format!("{p}cnb/buildpacks/{dir_id}"),
        base.clone(),
        format!("{base}/bin"),
    ];
    let mut entries: Vec<E> = names.iter().map(|n| E::Dir(n)).collect();
    let build = format!("{base}/bin/build");
    let detect = format!("{base}/bin/detect");
    entries.push(E::File(&build));
    entries.push(E::File(&detect));
    tar.extend(tar_of(&entries));
    tar.truncate(tar.len() - 1024);
    // buildpack.toml with its real content.
    Entry::file(format!("{base}/buildpack.toml"), toml.as_bytes())
        .mtime(315_532_801)
        .ids(0, 0)
        .write_to(&mut tar);
    tar.extend(tar_of(extra));
    tar
}

/// A one-image package of `t/dep@1.0.0` (os `os`) whose layer is a sound module plus `extra`.
fn package_of(root: &Path, os: &str, extra: &[E]) -> PathBuf {
    let tar = module_tar(os, "t_dep", "t/dep", extra);
    layout_of(root, os, &[("t/dep", tar)], "t/dep")
}

/// A one-image package with one layer per module (`id`, layer tar), all at version 1.0.0.
fn layout_of(root: &Path, os: &str, modules: &[(&str, Vec<u8>)], main: &str) -> PathBuf {
    use std::io::Write;
    fs::create_dir_all(root.join("blobs/sha256")).unwrap();
    fs::write(root.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    let mut layers = Vec::new();
    let mut diff_ids = Vec::new();
    let mut label = serde_json::Map::new();
    for (id, tar) in modules {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(tar).unwrap();
        let blob = gz.finish().unwrap();
        layers.push(put(
            root,
            "application/vnd.oci.image.layer.v1.tar+gzip",
            &blob,
        ));
        diff_ids.push(sha(tar));
        label.insert(
            id.to_string(),
            json!({"1.0.0": {"api": "0.10", "layerDiffID": sha(tar)}}),
        );
    }
    let metadata = json!({"id": main, "version": "1.0.0"});
    let config = json!({
        "architecture": "amd64",
        "os": os,
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "config": {"Labels": {
            "io.buildpacks.buildpackage.metadata": metadata.to_string(),
            "io.buildpacks.buildpack.layers": Value::Object(label).to_string(),
        }},
    });
    let config = put(
        root,
        "application/vnd.oci.image.config.v1+json",
        config.to_string().as_bytes(),
    );
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": config,
        "layers": layers,
    });
    let mut desc = put(
        root,
        "application/vnd.oci.image.manifest.v1+json",
        manifest.to_string().as_bytes(),
    );
    desc["platform"] = json!({"os": os, "architecture": "amd64"});
    let index = json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": [desc]});
    fs::write(root.join("index.json"), index.to_string()).unwrap();
    root.to_path_buf()
}

#[test]
fn entries_placed_through_links_are_reported_and_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let work = tmp.path();
    let b = "cnb/buildpacks/t_dep/1.0.0";
    let w = "Files/cnb/buildpacks/t_dep/1.0.0";

    // Links to anywhere, nothing through them: a sound package.
    let env = format!("{b}/bin/env");
    let up = format!("{b}/up");
    let good = package_of(
        &work.join("good"),
        "linux",
        &[
            E::Link(&env, "/usr/bin/env"),
            E::Link(&up, "../../../../etc"),
        ],
    );
    ok(verify(&good));

    let s = format!("{b}/s");
    let l = format!("{b}/l");
    let o = format!("{b}/o");
    let through_l = format!("{b}/l/evil");
    let through_env = format!("{b}/bin/env/evil");
    let hard = format!("{b}/h");
    let through_s = format!("{b}/s/passwd");
    let wl = format!("{w}/Link");
    let wthrough = format!("{w}/link\\evil");
    let cases: Vec<(&str, &str, Vec<E>, &str)> = vec![
        // A file written through a link to /usr/bin.
        (
            "direct",
            "linux",
            vec![E::Link(&env, "/usr/bin"), E::File(&through_env)],
            "bin/env",
        ),
        // Each link alone stays inside; chained they climb to /: `s` is the module directory,
        // `l` its parent, `o` the root.
        (
            "chain",
            "linux",
            vec![
                E::Link(&s, "."),
                E::Link(&l, "s/.."),
                E::Link(&o, "l/../../.."),
                E::File(&through_l),
            ],
            "'cnb/buildpacks/t_dep/1.0.0/l'",
        ),
        // A hard link whose target goes through a link.
        (
            "hard",
            "linux",
            vec![E::Link(&s, "/etc"), E::Hard(&hard, &through_s)],
            "'cnb/buildpacks/t_dep/1.0.0/s'",
        ),
        // Windows: names are case-insensitive and `\` separates.
        (
            "windows",
            "windows",
            vec![E::Link(&wl, "C:\\Windows"), E::File(&wthrough)],
            "Link",
        ),
    ];
    for (what, os, extra, expect) in cases {
        let pkg = package_of(&work.join(what), os, &extra);
        let o = verify(&pkg);
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        assert_eq!(o.status.code(), Some(1), "{what}: verify passed:\n{text}");
        assert!(
            text.contains("through the symbolic link") && text.contains(expect),
            "{what}: not reported:\n{text}"
        );
        if os != "linux" {
            continue;
        }
        // A composite refuses the dependency, with and without --flatten.
        let meta = work.join(format!("{what}-meta"));
        write_file(
            &meta.join("buildpack.toml"),
            "api = \"0.10\"\n[buildpack]\nid = \"t/meta\"\nversion = \"1.0.0\"\n[[order]]\n[[order.group]]\nid = \"t/dep\"\nversion = \"1.0.0\"\n",
            0o644,
        );
        let cfg = work.join(format!("{what}-package.toml"));
        fs::write(
            &cfg,
            format!(
                "[buildpack]\nuri = \"{}\"\n[[dependencies]]\nuri = \"{}\"\n[[targets]]\nos = \"linux\"\narch = \"amd64\"\n",
                meta.display(),
                pkg.display()
            ),
        )
        .unwrap();
        for flags in [&[][..], &["--flatten"][..]] {
            let out = work.join(format!("{what}-out.cnb"));
            let mut args = vec!["--config", cfg.to_str().unwrap()];
            args.extend_from_slice(flags);
            let err = fails(package(&out, &args), 1);
            assert!(
                err.contains("through the symbolic link"),
                "{what} {flags:?}: {err}"
            );
            assert!(!out.exists(), "{what} {flags:?}: output written");
        }
    }
}

/// Ids `a/b` and `a_b` are both stored in `cnb/buildpacks/a_b/<version>`: two layers filling one
/// directory, each sound alone, let the second be placed through the first one's link.
#[test]
fn two_modules_sharing_one_directory_are_reported_and_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let work = tmp.path();
    let link = "cnb/buildpacks/a_b/1.0.0/etc";
    let through = "cnb/buildpacks/a_b/1.0.0/etc/passwd";
    let first = module_tar("linux", "a_b", "a/b", &[E::Link(link, "/etc")]);
    let second = module_tar("linux", "a_b", "a_b", &[E::File(through)]);
    let pkg = layout_of(
        &work.join("shared"),
        "linux",
        &[("a/b", first), ("a_b", second)],
        "a/b",
    );
    let o = verify(&pkg);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(o.status.code(), Some(1), "verify passed:\n{text}");
    assert!(
        text.contains("a/b@1.0.0")
            && text.contains("a_b@1.0.0")
            && text.contains("cnb/buildpacks/a_b/1.0.0"),
        "not reported:\n{text}"
    );

    // A composite taking it as a dependency refuses it.
    let meta = work.join("meta");
    write_file(
        &meta.join("buildpack.toml"),
        "api = \"0.10\"\n[buildpack]\nid = \"t/meta\"\nversion = \"1.0.0\"\n[[order]]\n[[order.group]]\nid = \"a/b\"\nversion = \"1.0.0\"\n",
        0o644,
    );
    let cfg = work.join("package.toml");
    fs::write(
        &cfg,
        format!(
            "[buildpack]\nuri = \"{}\"\n[[dependencies]]\nuri = \"{}\"\n[[targets]]\nos = \"linux\"\narch = \"amd64\"\n",
            meta.display(),
            pkg.display()
        ),
    )
    .unwrap();
    for flags in [&[][..], &["--flatten"][..]] {
        let out = work.join("out.cnb");
        let mut args = vec!["--config", cfg.to_str().unwrap()];
        args.extend_from_slice(flags);
        let err = fails(package(&out, &args), 1);
        assert!(
            err.contains("a_b@1.0.0") && err.contains("share one layer directory"),
            "{flags:?}: {err}"
        );
        assert!(!out.exists(), "{flags:?}: output written");
    }
}

/// Windows file names ignore case: ids `Acme/x` and `acme/x` fill one directory of a Windows
/// image. Packaging refuses them; `verify` reports a package that holds them.
#[test]
fn ids_differing_in_case_share_a_windows_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let work = tmp.path();
    let target = "[[targets]]\nos = \"windows\"\narch = \"amd64\"\n";
    for (dir, id) in [("upper", "Acme/x"), ("lower", "acme/x")] {
        write_file(
            &work.join(dir).join("buildpack.toml"),
            &format!("api = \"0.10\"\n[buildpack]\nid = \"{id}\"\nversion = \"1\"\n{target}"),
            0o644,
        );
        write_file(&work.join(dir).join("bin/build.bat"), "@echo off\n", 0o755);
        write_file(&work.join(dir).join("bin/detect.bat"), "@echo off\n", 0o755);
    }
    write_file(
        &work.join("meta/buildpack.toml"),
        "api = \"0.10\"\n[buildpack]\nid = \"m\"\nversion = \"1\"\n[[order]]\n[[order.group]]\nid = \"Acme/x\"\nversion = \"1\"\n[[order.group]]\nid = \"acme/x\"\nversion = \"1\"\n",
        0o644,
    );
    let cfg = work.join("package.toml");
    let deps = "[[dependencies]]\nuri = \"upper\"\n[[dependencies]]\nuri = \"lower\"\n";
    fs::write(&cfg, format!("[buildpack]\nuri = \"meta\"\n{deps}{target}")).unwrap();
    let out = work.join("out.cnb");
    let err = fails(package(&out, &["--config", cfg.to_str().unwrap()]), 1);
    assert!(
        err.contains("Acme/x@1 and acme/x@1") && err.contains("share one layer directory"),
        "{err}"
    );
    assert!(!out.exists());

    // The same modules for Linux are two directories.
    let linux = work.join("linux.toml");
    fs::write(
        &linux,
        format!(
            "[buildpack]\nuri = \"meta\"\n{deps}[[targets]]\nos = \"linux\"\narch = \"amd64\"\n"
        ),
    )
    .unwrap();
    for dir in ["upper", "lower"] {
        let toml = work.join(dir).join("buildpack.toml");
        let text = fs::read_to_string(&toml)
            .unwrap()
            .replace("windows", "linux");
        fs::write(&toml, text).unwrap();
        write_file(&work.join(dir).join("bin/build"), "#!/bin/sh\n", 0o755);
        write_file(&work.join(dir).join("bin/detect"), "#!/bin/sh\n", 0o755);
    }
    ok(package(&out, &["--config", linux.to_str().unwrap()]));
    ok(verify(&out));
    fs::remove_file(&out).unwrap();

    // A Windows package holding both, made by hand: verify reports the shared directory.
    let upper = module_tar("windows", "Acme_x", "Acme/x", &[]);
    let lower = module_tar("windows", "acme_x", "acme/x", &[]);
    let pkg = layout_of(
        &work.join("hand"),
        "windows",
        &[("Acme/x", upper), ("acme/x", lower)],
        "Acme/x",
    );
    let o = verify(&pkg);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(o.status.code(), Some(1), "{text}");
    assert!(text.contains("share one layer directory"), "{text}");
}

/// Bidirectional overrides are not control characters, but a terminal shows
/// `evil\u{202e}kcap` as `evilpack`: human output escapes them like control characters.
#[test]
fn inspect_and_verify_escape_bidi_overrides() {
    let tmp = tempfile::tempdir().unwrap();
    let id = "t/evil\u{202e}kcap";
    let tar = module_tar("linux", "t_evil\u{202e}kcap", id, &[]);
    let pkg = layout_of(&tmp.path().join("bidi"), "linux", &[(id, tar)], id);
    let shown = ok(cnbpkg(["inspect".as_ref(), pkg.as_os_str()]));
    assert!(!shown.contains('\u{202e}'), "raw override shown:\n{shown}");
    assert!(shown.contains("t/evil\\u{202e}kcap@1.0.0"), "{shown}");
    let o = verify(&pkg);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(!text.contains('\u{202e}'), "raw override shown:\n{text}");
    // --json keeps the value as it is.
    let json = ok(cnbpkg([
        "inspect".as_ref(),
        pkg.as_os_str(),
        "--json".as_ref(),
    ]));
    let v: Value = serde_json::from_str(&json).unwrap();
    assert!(v.to_string().contains('\u{202e}'));
}

/// A dependency whose layer's own buildpack.toml names another module than its label says:
/// the lifecycle reads the descriptor, the composite's label would repeat the lie.
#[test]
fn a_dependency_whose_layer_holds_another_module_than_its_label_says_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let work = tmp.path();
    let tar = module_tar("linux", "t_dep", "t/other", &[]);
    let liar = layout_of(&work.join("liar"), "linux", &[("t/dep", tar)], "t/dep");
    // A later entry replacing the descriptor with a link to a file of the container.
    let linked = "cnb/buildpacks/t_dep/1.0.0/buildpack.toml";
    let tar = module_tar("linux", "t_dep", "t/dep", &[E::Link(linked, "/etc/passwd")]);
    let link = layout_of(&work.join("link"), "linux", &[("t/dep", tar)], "t/dep");
    for (pkg, expect) in [(liar, "t/other"), (link, "descriptor")] {
        refused_as_dependency(work, &pkg, expect);
    }
}

fn refused_as_dependency(work: &Path, pkg: &Path, expect: &str) {
    let (code, text) = {
        let o = verify(pkg);
        (
            o.status.code(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            ),
        )
    };
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains(expect), "{text}");
    let meta = work.join("meta");
    write_file(
        &meta.join("buildpack.toml"),
        "api = \"0.10\"\n[buildpack]\nid = \"t/meta\"\nversion = \"1.0.0\"\n[[order]]\n[[order.group]]\nid = \"t/dep\"\nversion = \"1.0.0\"\n",
        0o644,
    );
    let cfg = work.join("package.toml");
    fs::write(
        &cfg,
        format!(
            "[buildpack]\nuri = \"{}\"\n[[dependencies]]\nuri = \"{}\"\n[[targets]]\nos = \"linux\"\narch = \"amd64\"\n",
            meta.display(),
            pkg.display()
        ),
    )
    .unwrap();
    for flags in [&[][..], &["--flatten"][..]] {
        let out = work.join("out.cnb");
        let mut args = vec!["--config", cfg.to_str().unwrap()];
        args.extend_from_slice(flags);
        let o = package(&out, &args);
        if o.status.success() {
            let v = verify(&out);
            panic!(
                "{flags:?}: packaged; verify of it: {}{}",
                String::from_utf8_lossy(&v.stdout),
                String::from_utf8_lossy(&v.stderr)
            );
        }
        let err = fails(o, 1);
        assert!(err.contains(expect), "{flags:?}: {err}");
        assert!(!out.exists());
    }
}
