//! Hostile image stores and package.toml files read against them: a store's `index.json`,
//! lock files and directories are anyone's files. Its ref names reach the terminal escaped, a
//! name listed for two images is refused rather than one of them picked, `store gc` removes
//! nothing through a link, FIFOs and links never hang or redirect a command, a store nothing
//! was pulled into gets the pull advice, a package given as the store is never advised as an
//! output, and what a store is made to be read (a large image named many times, many digest
//! lookups, too many dependencies) stays bounded.

use std::path::{Path, PathBuf};

use crate::support::*;

/// Package buildpack `id`@`version` into the layout directory `DIR/NAME`.
fn layout(dir: &Path, name: &str, id: &str, version: &str) -> PathBuf {
    let src = dir.join("src").join(name);
    minimal_buildpack(&src, id, version, "");
    let out = dir.join(name);
    ok(cnbpkg([
        "buildpack",
        "package",
        out.to_str().unwrap(),
        "--path",
        src.to_str().unwrap(),
        "--format",
        "layout",
    ]));
    out
}

/// The layout `store`'s index.json, its entries named `names` (one entry per name, each a
/// copy of the entry `sources[i]`'s layout lists; their blobs copied into `store`).
fn name_entries(store: &Path, entries: &[(&Path, &str)]) {
    let mut manifests = Vec::new();
    for (source, name) in entries {
        let index: serde_json::Value =
            serde_json::from_slice(&std::fs::read(source.join("index.json")).unwrap()).unwrap();
        let mut entry = index["manifests"][0].clone();
        entry["annotations"] = serde_json::json!({ "org.opencontainers.image.ref.name": name });
        manifests.push(entry);
        if *source != store {
            copy_tree(&source.join("blobs"), &store.join("blobs"));
        }
    }
    let index = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": manifests,
    });
    std::fs::write(store.join("index.json"), index.to_string()).unwrap();
}

#[test]
fn store_list_escapes_hostile_ref_names() {
    let d = tempfile::tempdir().unwrap();
    let store = layout(d.path(), "store", "test/a", "1.0.0");
    let hostile = "r.example/a\u{1b}]0;owned\u{7}\u{1b}[2J\tforged\ncolumn:1";
    name_entries(&store, &[(&store, hostile)]);
    let out = cnbpkg(["store", "list", "--store", store.to_str().unwrap()]);
    let stdout = ok(out);
    assert!(
        !stdout.contains('\u{1b}') && !stdout.contains('\u{7}'),
        "{stdout:?}"
    );
    assert_eq!(stdout.lines().count(), 1, "{stdout:?}");
    let columns: Vec<&str> = stdout.trim_end().split('\t').collect();
    assert_eq!(columns.len(), 5, "{stdout:?}");
    assert!(
        columns[0].starts_with("r.example/a\\x1b]0;owned"),
        "{stdout:?}"
    );
    // JSON carries the name as it is.
    let json = ok(cnbpkg([
        "store",
        "list",
        "--json",
        "--store",
        store.to_str().unwrap(),
    ]));
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v[0]["reference"], hostile, "{json}");
}

#[test]
fn a_name_listed_for_two_images_is_refused() {
    let d = tempfile::tempdir().unwrap();
    let store = layout(d.path(), "store", "test/a", "1.0.0");
    let other = layout(d.path(), "other", "test/a", "2.0.0");
    let name = "r.example/a:1";
    write_file(
        &d.path().join("meta/buildpack.toml"),
        "api = \"0.10\"\n[buildpack]\nid = \"test/meta\"\nversion = \"1.0.0\"\n\n[[order]]\n[[order.group]]\nid = \"test/a\"\nversion = \"1.0.0\"\n",
        0o644,
    );
    write_file(
        &d.path().join("package.toml"),
        &format!("[buildpack]\nuri = \"meta\"\n[[dependencies]]\nuri = \"docker://{name}\"\n"),
        0o644,
    );
    let package = |store: &Path| cnbpkg_in(d.path(), package_from(store));
    // The same image named twice is one image.
    name_entries(&store, &[(&store, name), (&store, name)]);
    ok(package(&store));
    std::fs::remove_file(d.path().join("o.cnb")).unwrap();
    // Two images under one name: neither is picked, whichever comes first.
    for order in [[&store, &other], [&other, &store]] {
        name_entries(&store, &[(order[0], name), (order[1], name)]);
        let stderr = fails(package(&store), 1);
        assert!(
            stderr.contains(&format!("names {name} for two images")),
            "{stderr}"
        );
        assert!(!d.path().join("o.cnb").exists());
    }
}

#[test]
fn store_gc_removes_nothing_through_a_linked_blob_directory() {
    let hex = "a".repeat(64);
    for linked in ["blobs", "blobs/sha256"] {
        let d = tempfile::tempdir().unwrap();
        let store = d.path().join("store");
        let victim = d.path().join("victim");
        std::fs::create_dir_all(victim.join("sha256")).unwrap();
        std::fs::write(victim.join("sha256").join(&hex), b"precious").unwrap();
        std::fs::write(victim.join(&hex), b"precious").unwrap();
        std::fs::create_dir_all(&store).unwrap();
        std::fs::write(
            store.join("oci-layout"),
            "{\"imageLayoutVersion\":\"1.0.0\"}",
        )
        .unwrap();
        if linked == "blobs/sha256" {
            std::fs::create_dir_all(store.join("blobs")).unwrap();
        }
        std::os::unix::fs::symlink(&victim, store.join(linked)).unwrap();
        // Without index.json (nothing named yet) and with an empty one.
        for index in [None, Some("{\"schemaVersion\":2,\"manifests\":[]}")] {
            if let Some(text) = index {
                std::fs::write(store.join("index.json"), text).unwrap();
            }
            let stderr = fails(
                cnbpkg(["store", "gc", "--store", store.to_str().unwrap()]),
                1,
            );
            assert!(stderr.contains(linked), "{linked}: {stderr}");
            assert!(victim.join("sha256").join(&hex).exists(), "{linked}");
            assert!(victim.join(&hex).exists(), "{linked}");
        }
    }
}

#[test]
fn too_many_image_dependencies_are_refused_before_any_is_looked_up() {
    let d = tempfile::tempdir().unwrap();
    let store = layout(d.path(), "store", "test/a", "1.0.0");
    name_entries(&store, &[(&store, "r.example/a:1")]);
    write_file(
        &d.path().join("meta/buildpack.toml"),
        "api = \"0.10\"\n[buildpack]\nid = \"test/meta\"\nversion = \"1.0.0\"\n\n[[order]]\n[[order.group]]\nid = \"test/a\"\nversion = \"1.0.0\"\n",
        0o644,
    );
    for present in [false, true] {
        let dependencies: String = (0..1000)
            .map(|i| {
                let name = if present {
                    "a".to_string()
                } else {
                    format!("d{i}")
                };
                format!("[[dependencies]]\nuri = \"docker://r.example/{name}:1\"\n")
            })
            .collect();
        write_meta_package(d.path(), &dependencies);
        let stderr = fails(cnbpkg_in(d.path(), package_from(&store)), 1);
        // One line saying why, not a thousand missing images and a pull that cannot help.
        assert!(
            stderr.contains("lists 1000 dependencies; at most"),
            "{stderr}"
        );
        assert!(stderr.len() < 1024, "{} bytes", stderr.len());
        assert!(!stderr.contains("Using"), "{stderr}");
    }
}

#[test]
fn a_package_given_as_the_store_is_never_advised_as_an_output() {
    let d = tempfile::tempdir().unwrap();
    let src = d.path().join("src/a");
    minimal_buildpack(&src, "test/a", "1.0.0", "");
    ok(cnbpkg_in(
        d.path(),
        [
            "buildpack",
            "package",
            "a.cnb",
            "--path",
            src.to_str().unwrap(),
        ],
    ));
    write_file(
        &d.path().join("meta/buildpack.toml"),
        "api = \"0.10\"\n[buildpack]\nid = \"test/meta\"\nversion = \"1.0.0\"\n\n[[order]]\n[[order.group]]\nid = \"test/a\"\nversion = \"1.0.0\"\n",
        0o644,
    );
    write_file(
        &d.path().join("package.toml"),
        "[buildpack]\nuri = \"meta\"\n[[dependencies]]\nuri = \"docker://r.example/a:1\"\n",
        0o644,
    );
    let stderr = fails(
        cnbpkg_in(
            d.path(),
            [
                "buildpack",
                "package",
                "o.cnb",
                "--config",
                "package.toml",
                "--store",
                "a.cnb",
            ],
        ),
        1,
    );
    assert!(stderr.contains("a.cnb names no image"), "{stderr}");
    // Running the advised pull would replace the package named as the store.
    let command = stderr
        .lines()
        .filter_map(|l| l.split_once('`').and_then(|(_, r)| r.split_once('`')))
        .map(|(c, _)| c)
        .find(|c| c.starts_with("cnbpkg pull"))
        .unwrap_or_else(|| panic!("{stderr}"));
    assert!(!command.contains("a.cnb"), "{command}");
    assert!(command.contains("r.example/a:1"), "{command}");
}

/// Write `package.toml` in `dir`: the `meta` buildpack with `dependencies` (TOML tables).
fn write_meta_package(dir: &Path, dependencies: &str) {
    write_file(
        &dir.join("package.toml"),
        &format!("[buildpack]\nuri = \"meta\"\n{dependencies}"),
        0o644,
    );
}

/// `buildpack package o.cnb --config package.toml --store STORE`.
fn package_from(store: &Path) -> [&str; 7] {
    let store = store.to_str().unwrap();
    [
        "buildpack",
        "package",
        "o.cnb",
        "--config",
        "package.toml",
        "--store",
        store,
    ]
}

/// Run cnbpkg in `dir`, killed (by its own PID) and failing the test when it hangs.
fn bounded<I, S>(dir: &Path, args: I) -> std::process::Output
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    use std::process::Stdio;
    let child = cnbpkg_command()
        .current_dir(dir)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run cnbpkg");
    crate::support::wait::output(child, std::time::Duration::from_secs(30), "cnbpkg (hung)")
}

#[test]
fn lock_files_that_are_fifos_or_links_never_hang_or_are_followed() {
    use std::os::unix::ffi::OsStrExt as _;
    let d = tempfile::tempdir().unwrap();
    let store = layout(d.path(), "store", "test/a", "1.0.0");
    name_entries(&store, &[(&store, "r.example/a:1")]);
    write_file(
        &d.path().join("meta/buildpack.toml"),
        "api = \"0.10\"\n[buildpack]\nid = \"test/meta\"\nversion = \"1.0.0\"\n\n[[order]]\n[[order.group]]\nid = \"test/a\"\nversion = \"1.0.0\"\n",
        0o644,
    );
    write_file(
        &d.path().join("package.toml"),
        "[buildpack]\nuri = \"meta\"\n[[dependencies]]\nuri = \"docker://r.example/a:1\"\n",
        0o644,
    );
    let s = store.to_str().unwrap();
    let fifo = |path: &Path| {
        let c = std::ffi::CString::new(path.as_os_str().as_bytes()).unwrap();
        // SAFETY: mkfifo on a NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0, "mkfifo");
    };
    let package = [
        "buildpack",
        "package",
        "o.cnb",
        "--config",
        "package.toml",
        "--store",
        s,
    ];
    for lock in ["store.lock", "index.json.lock"] {
        let path = store.join(lock);
        fifo(&path);
        let runs: Vec<Vec<&str>> = match lock {
            "store.lock" => vec![package.to_vec(), vec!["store", "gc", "--store", s]],
            _ => vec![vec!["store", "remove", "--store", s, "r.example/a:1"]],
        };
        for args in runs {
            let stderr = fails(bounded(d.path(), &args), 1);
            assert!(stderr.contains(lock), "{args:?}: {stderr}");
        }
        assert!(!d.path().join("o.cnb").exists());
        std::fs::remove_file(&path).unwrap();
    }
    // A link is not followed to make or lock a file elsewhere.
    let outside = d.path().join("outside");
    std::os::unix::fs::symlink(&outside, store.join("index.json.lock")).unwrap();
    let args = ["store", "remove", "--store", s, "r.example/a:1"];
    let stderr = fails(bounded(d.path(), args), 1);
    assert!(stderr.contains("index.json.lock"), "{stderr}");
    assert!(
        std::fs::symlink_metadata(&outside).is_err(),
        "made through a link"
    );
    std::fs::remove_file(store.join("index.json.lock")).unwrap();
    // Nothing in the way: all of them run.
    ok(bounded(d.path(), package));
    ok(bounded(d.path(), args));
}

#[test]
fn a_store_directory_nothing_was_pulled_into_gets_the_pull_advice() {
    let d = tempfile::tempdir().unwrap();
    write_file(
        &d.path().join("meta/buildpack.toml"),
        "api = \"0.10\"\n[buildpack]\nid = \"test/meta\"\nversion = \"1.0.0\"\n\n[[order]]\n[[order.group]]\nid = \"test/a\"\nversion = \"1.0.0\"\n",
        0o644,
    );
    write_file(
        &d.path().join("package.toml"),
        "[buildpack]\nuri = \"meta\"\n[[dependencies]]\nuri = \"docker://r.example/a:1\"\n",
        0o644,
    );
    let home = crate::support::child::fresh_home();
    // The default store as `mkdir` leaves it, and as a pull stopped at its start leaves it.
    let default = home.join(".cache/cnbpkg/store");
    for made in ["", "blobs/sha256"] {
        std::fs::create_dir_all(default.join(made)).unwrap();
        for store in [None, Some(default.to_str().unwrap())] {
            let mut cmd = crate::support::child::isolated(&home);
            cmd.current_dir(d.path()).args([
                "buildpack",
                "package",
                "o.cnb",
                "--config",
                "package.toml",
            ]);
            if let Some(s) = store {
                cmd.args(["--store", s]);
            }
            let stderr = fails(crate::support::child::output(&mut cmd), 1);
            assert!(
                stderr.contains("is image r.example/a:1, not in the store"),
                "{stderr}"
            );
            assert!(stderr.contains("nothing is in the store"), "{stderr}");
            assert!(stderr.contains("cnbpkg pull "), "{stderr}");
        }
    }
    // A directory holding other files is no store: said so, never read as an empty one.
    write_file(&default.join("notes.txt"), "mine", 0o644);
    let stderr = fails(
        cnbpkg_in(
            d.path(),
            [
                "buildpack",
                "package",
                "o.cnb",
                "--config",
                "package.toml",
                "--store",
                default.to_str().unwrap(),
            ],
        ),
        1,
    );
    assert!(stderr.contains("not an OCI layout"), "{stderr}");
}

#[test]
fn an_index_json_that_is_a_fifo_or_a_link_never_hangs_the_store_commands() {
    use std::os::unix::ffi::OsStrExt as _;
    let d = tempfile::tempdir().unwrap();
    let store = layout(d.path(), "store", "test/a", "1.0.0");
    name_entries(&store, &[(&store, "r.example/a:1")]);
    let index = store.join("index.json");
    let elsewhere = d.path().join("elsewhere.json");
    std::fs::rename(&index, &elsewhere).unwrap();
    let s = store.to_str().unwrap();
    for kind in ["fifo", "link"] {
        if kind == "fifo" {
            let c = std::ffi::CString::new(index.as_os_str().as_bytes()).unwrap();
            // SAFETY: mkfifo on a NUL-terminated path.
            assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0, "mkfifo");
        } else {
            std::os::unix::fs::symlink(&elsewhere, &index).unwrap();
        }
        for args in [
            vec!["store", "list", "--store", s],
            vec!["store", "gc", "--store", s],
            vec!["store", "remove", "--store", s, "r.example/a:1"],
        ] {
            let stderr = fails(bounded(d.path(), &args), 1);
            assert!(stderr.contains("index.json"), "{kind} {args:?}: {stderr}");
        }
        std::fs::remove_file(&index).unwrap();
    }
    // What the link pointed at is untouched.
    let text = std::fs::read_to_string(&elsewhere).unwrap();
    assert!(text.contains("r.example/a:1"), "{text}");
}

#[test]
fn store_list_reads_an_image_named_thousands_of_times_once() {
    use cnbpkg::digest::Digest;
    let d = tempfile::tempdir().unwrap();
    let store = layout(d.path(), "store", "test/a", "1.0.0");
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(store.join("index.json")).unwrap()).unwrap();
    // An index of 2 MiB (padded with an annotation) listing the package's manifest.
    let big = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [index["manifests"][0].clone()],
        "annotations": { "pad": "x".repeat(2 << 20) },
    })
    .to_string();
    let digest = Digest::of(big.as_bytes());
    std::fs::write(store.join(digest.blob_path()), &big).unwrap();
    let entries: Vec<serde_json::Value> = (0..20_000)
        .map(|i| {
            serde_json::json!({
                "mediaType": "application/vnd.oci.image.index.v1+json",
                "digest": digest.to_string(),
                "size": big.len(),
                "annotations": { "org.opencontainers.image.ref.name": format!("r.example/a:{i}") },
            })
        })
        .collect();
    let text = serde_json::json!({ "schemaVersion": 2, "manifests": entries }).to_string();
    std::fs::write(store.join("index.json"), text).unwrap();
    // Without walking each entry again (40 GB of reads) this ends in moments.
    let out = bounded(
        d.path(),
        ["store", "list", "--store", store.to_str().unwrap()],
    );
    let stdout = ok(out);
    assert_eq!(stdout.lines().count(), 20_000);
    assert!(
        stdout
            .lines()
            .all(|l| l.contains("\tlinux\t") && !l.contains("unreadable")),
        "{}",
        stdout.lines().next().unwrap_or_default()
    );
}

#[test]
fn a_large_image_named_many_times_is_bounded_while_the_store_is_read() {
    use cnbpkg::digest::Digest;
    let d = tempfile::tempdir().unwrap();
    let store = layout(d.path(), "store", "test/a", "1.0.0");
    let read = |path: &Path| -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
    };
    let index = read(&store.join("index.json"));
    let mut entry = index["manifests"][0].clone();
    let blob = |digest: &serde_json::Value| {
        store
            .join("blobs/sha256")
            .join(&digest.as_str().unwrap()[7..])
    };
    let mut manifest = read(&blob(&entry["digest"]));
    // The image's config padded to 20 MiB (valid, verified, and held by whoever reads it).
    let mut config = read(&blob(&manifest["config"]["digest"]));
    config["pad"] = serde_json::Value::String("x".repeat(20 << 20));
    let config = config.to_string();
    let config_digest = Digest::of(config.as_bytes());
    std::fs::write(store.join(config_digest.blob_path()), &config).unwrap();
    manifest["config"]["digest"] = config_digest.to_string().into();
    manifest["config"]["size"] = config.len().into();
    let manifest = manifest.to_string();
    let manifest_digest = Digest::of(manifest.as_bytes());
    std::fs::write(store.join(manifest_digest.blob_path()), &manifest).unwrap();
    entry["digest"] = manifest_digest.to_string().into();
    entry["size"] = manifest.len().into();
    entry["annotations"] =
        serde_json::json!({ "org.opencontainers.image.ref.name": "r.example/a:1" });
    let text = serde_json::json!({ "schemaVersion": 2, "manifests": [entry] }).to_string();
    std::fs::write(store.join("index.json"), text).unwrap();
    write_file(
        &d.path().join("meta/buildpack.toml"),
        "api = \"0.10\"\n[buildpack]\nid = \"test/meta\"\nversion = \"1.0.0\"\n\n[[order]]\n[[order.group]]\nid = \"test/a\"\nversion = \"1.0.0\"\n",
        0o644,
    );
    // Fourteen times (280 MiB held), then an image the store lacks: the bound stops the
    // reading before the store is read to its end.
    let mut dependencies = "[[dependencies]]\nuri = \"docker://r.example/a:1\"\n".repeat(14);
    dependencies.push_str("[[dependencies]]\nuri = \"docker://r.example/missing:1\"\n");
    write_meta_package(d.path(), &dependencies);
    let stderr = fails(bounded(d.path(), package_from(&store)), 1);
    assert!(
        stderr.contains("hold more than 256 MiB of manifests and configs together"),
        "{stderr}"
    );
    assert!(!stderr.contains("missing"), "{stderr}");
    assert!(!d.path().join("o.cnb").exists());
}

#[test]
fn digest_lookups_read_each_index_of_the_store_once() {
    use cnbpkg::digest::Digest;
    let d = tempfile::tempdir().unwrap();
    let store = layout(d.path(), "store", "test/a", "1.0.0");
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(store.join("index.json")).unwrap()).unwrap();
    // Four indexes of 8 MiB (padded), none listing what is looked up.
    let entries: Vec<serde_json::Value> = (0..4)
        .map(|i| {
            let big = serde_json::json!({
                "schemaVersion": 2,
                "mediaType": "application/vnd.oci.image.index.v1+json",
                "manifests": [index["manifests"][0].clone()],
                "annotations": { "pad": format!("{i}{}", "x".repeat(8 << 20)) },
            })
            .to_string();
            let digest = Digest::of(big.as_bytes());
            std::fs::write(store.join(digest.blob_path()), &big).unwrap();
            serde_json::json!({
                "mediaType": "application/vnd.oci.image.index.v1+json",
                "digest": digest.to_string(),
                "size": big.len(),
                "annotations": { "org.opencontainers.image.ref.name": format!("r.example/i:{i}") },
            })
        })
        .collect();
    let text = serde_json::json!({ "schemaVersion": 2, "manifests": entries }).to_string();
    std::fs::write(store.join("index.json"), text).unwrap();
    write_file(
        &d.path().join("meta/buildpack.toml"),
        "api = \"0.10\"\n[buildpack]\nid = \"test/meta\"\nversion = \"1.0.0\"\n\n[[order]]\n[[order.group]]\nid = \"test/a\"\nversion = \"1.0.0\"\n",
        0o644,
    );
    // 256 references by digests the store lacks: without reading 32 MiB 256 times (8 GB).
    let dependencies: String = (0..256)
        .map(|i| {
            let digest = Digest::of(format!("absent {i}").as_bytes());
            format!("[[dependencies]]\nuri = \"docker://r.example/a@{digest}\"\n")
        })
        .collect();
    write_meta_package(d.path(), &dependencies);
    let stderr = fails(bounded(d.path(), package_from(&store)), 1);
    assert!(
        stderr.contains("256 buildpacks are not on this machine"),
        "{stderr}"
    );
    assert!(!d.path().join("o.cnb").exists());
}

#[test]
fn store_gc_collects_a_store_of_more_images_than_one_package_may_hold() {
    let d = tempfile::tempdir().unwrap();
    let store = layout(d.path(), "store", "test/a", "1.0.0");
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(store.join("index.json")).unwrap()).unwrap();
    let entries: Vec<serde_json::Value> = (0..5000)
        .map(|i| {
            let mut e = index["manifests"][0].clone();
            e["annotations"] =
                serde_json::json!({ "org.opencontainers.image.ref.name": format!("r.example/a:{i}") });
            e
        })
        .collect();
    let text = serde_json::json!({ "schemaVersion": 2, "manifests": entries }).to_string();
    std::fs::write(store.join("index.json"), text).unwrap();
    let kept = list(&store.join("blobs/sha256"));
    let stray = store.join("blobs/sha256").join("e".repeat(64));
    std::fs::write(&stray, b"unreferenced").unwrap();
    let s = store.to_str().unwrap();
    let report = ok(bounded(d.path(), ["store", "gc", "--json", "--store", s]));
    let report: serde_json::Value = serde_json::from_str(&report).unwrap();
    assert_eq!(
        report["removed"].as_array().map(Vec::len),
        Some(1),
        "{report}"
    );
    assert!(!stray.exists());
    assert_eq!(list(&store.join("blobs/sha256")), kept);
    assert_eq!(
        ok(bounded(d.path(), ["store", "list", "--store", s]))
            .lines()
            .count(),
        5000
    );
}
