//! Outputs never cost the user data: an output replaces only a package cnbpkg can read and never
//! an input; outputs inside the buildpack tree stay out of its layers; a run that fails writes
//! nothing and leaves no temporary file; temporary names of killed runs are reaped; archives with
//! unreadable modes package for users who are not root.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support::*;

const TWO_TARGETS: &str =
    "\n[[targets]]\nos = \"linux\"\narch = \"amd64\"\n\n[[targets]]\nos = \"linux\"\narch = \"arm64\"\n";

/// Every file under `dir` (relative path → bytes), directories as empty entries.
fn tree_bytes(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    fn visit(root: &Path, dir: &Path, out: &mut BTreeMap<String, Vec<u8>>) {
        for e in fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            let rel = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
            if p.is_dir() {
                out.insert(format!("{rel}/"), Vec::new());
                visit(root, &p, out);
            } else {
                out.insert(rel, fs::read(&p).unwrap());
            }
        }
    }
    let mut out = BTreeMap::new();
    visit(dir, dir, &mut out);
    out
}

fn package_in(dir: &Path, args: &[&str]) -> String {
    let mut all = vec!["buildpack", "package"];
    all.extend_from_slice(args);
    ok(cnbpkg_in(dir, all))
}

fn refused_in(dir: &Path, args: &[&str]) -> String {
    let mut all = vec!["buildpack", "package"];
    all.extend_from_slice(args);
    fails(cnbpkg_in(dir, all), 1)
}

/// A buildpack with two targets and a large file whose name sorts before every temporary name
/// (`-` < `.`), so a temporary file in the tree would be walked while it grows.
fn buildpack_with_large_file(dir: &Path) {
    minimal_buildpack(dir, "ex/inside", "1.0.0", TWO_TARGETS);
    let big: Vec<u8> = (0..8u32 << 20)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    fs::write(dir.join("-large"), big).unwrap();
}

#[test]
fn an_output_replaces_only_a_package_cnbpkg_can_read() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path();
    minimal_buildpack(&p.join("bp"), "ex/a", "1.0.0", "");

    // An unrelated directory, as a layout output: refused, untouched.
    write_file(&p.join("keep/notes.txt"), "mine", 0o644);
    let err = refused_in(p, &["keep", "--path", "bp", "--format", "layout"]);
    assert!(
        err.contains("keep") && err.contains("not a package"),
        "{err}"
    );
    assert_eq!(
        fs::read_to_string(p.join("keep/notes.txt")).unwrap(),
        "mine"
    );

    // A file that is not a package, as a file output: refused, untouched.
    fs::write(p.join("notes.cnb"), "my notes").unwrap();
    let err = refused_in(p, &["notes.cnb", "--path", "bp"]);
    assert!(
        err.contains("notes.cnb") && err.contains("not a package"),
        "{err}"
    );
    assert_eq!(fs::read_to_string(p.join("notes.cnb")).unwrap(), "my notes");

    // A symbolic link is not replaced either (it is not a package cnbpkg wrote).
    std::os::unix::fs::symlink("notes.cnb", p.join("link.cnb")).unwrap();
    let err = refused_in(p, &["link.cnb", "--path", "bp"]);
    assert!(err.contains("symbolic link"), "{err}");
    assert_eq!(
        fs::read_link(p.join("link.cnb")).unwrap(),
        Path::new("notes.cnb")
    );

    // A directory where a file output goes: refused before anything is built.
    fs::create_dir(p.join("dir.cnb")).unwrap();
    let err = refused_in(p, &["dir.cnb", "--path", "bp"]);
    assert!(
        err.contains("dir.cnb") && err.contains("is a directory"),
        "{err}"
    );
    assert_eq!(list(&p.join("dir.cnb")), Vec::<String>::new());

    // Not one temporary file anywhere after the refusals.
    assert_eq!(list(p), ["bp", "dir.cnb", "keep", "link.cnb", "notes.cnb"]);

    // What cnbpkg wrote, it replaces; an empty directory is fine for a layout.
    package_in(p, &["out.cnb", "--path", "bp"]);
    let first = fs::read(p.join("out.cnb")).unwrap();
    package_in(p, &["out.cnb", "--path", "bp"]);
    assert_eq!(fs::read(p.join("out.cnb")).unwrap(), first);
    fs::create_dir(p.join("empty")).unwrap();
    package_in(p, &["empty", "--path", "bp", "--format", "layout"]);
    assert!(p.join("empty/oci-layout").is_file());
    package_in(p, &["empty", "--path", "bp", "--format", "layout"]);
    assert!(p.join("empty/index.json").is_file());
    assert_eq!(
        list(p),
        [
            "bp",
            "dir.cnb",
            "empty",
            "keep",
            "link.cnb",
            "notes.cnb",
            "out.cnb"
        ]
    );
}

#[test]
fn an_output_is_never_an_input_nor_contains_one() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path();
    minimal_buildpack(&p.join("bp"), "ex/a", "1.0.0", "");
    let before = tree_bytes(&p.join("bp"));

    // The buildpack's own directory as the layout output (`--path bp` into `bp`).
    let err = refused_in(p, &["bp", "--path", "bp", "--format", "layout"]);
    assert!(err.contains("is also an input"), "{err}");
    // A directory that holds the buildpack, by another spelling.
    let outer = p.join("bp/..").canonicalize().unwrap();
    let err = refused_in(
        &p.join("bp"),
        &[outer.to_str().unwrap(), "--path", ".", "--format", "layout"],
    );
    assert!(err.contains("contains an input"), "{err}");
    assert_eq!(tree_bytes(&p.join("bp")), before);

    // A .tgz buildpack as the output of its own packaging.
    let tgz = p.join("bp.tgz");
    tool_ok(
        "tar",
        &[
            "-czf",
            tgz.to_str().unwrap(),
            "-C",
            p.join("bp").to_str().unwrap(),
            ".",
        ],
    );
    let tgz_bytes = fs::read(&tgz).unwrap();
    let err = refused_in(p, &["bp.tgz", "--path", "./bp.tgz"]);
    assert!(err.contains("is also an input"), "{err}");
    assert_eq!(fs::read(&tgz).unwrap(), tgz_bytes);

    // package.toml and a dependency package as the output of a composite.
    package_in(p, &["dep.cnb", "--path", "bp"]);
    let dep_bytes = fs::read(p.join("dep.cnb")).unwrap();
    minimal_buildpack(&p.join("bp2"), "ex/b", "1.0.0", "");
    package_in(p, &["deplayout", "--path", "bp2", "--format", "layout"]);
    write_file(
        &p.join("meta/buildpack.toml"),
        "api = \"0.10\"\n\n[buildpack]\nid = \"ex/meta\"\nversion = \"1.0.0\"\n\n[[order]]\n[[order.group]]\nid = \"ex/a\"\nversion = \"1.0.0\"\n\n[[order.group]]\nid = \"ex/b\"\nversion = \"1.0.0\"\n",
        0o644,
    );
    let toml = "[buildpack]\nuri = \"meta\"\n\n[[dependencies]]\nuri = \"dep.cnb\"\n\n[[dependencies]]\nuri = \"deplayout\"\n";
    fs::write(p.join("package.toml"), toml).unwrap();
    let err = refused_in(p, &["dep.cnb", "--config", "package.toml"]);
    assert!(err.contains("is also an input"), "{err}");
    assert_eq!(fs::read(p.join("dep.cnb")).unwrap(), dep_bytes);
    let err = refused_in(p, &["package.toml", "--config", "package.toml"]);
    assert!(err.contains("is also an input"), "{err}");
    assert_eq!(fs::read_to_string(p.join("package.toml")).unwrap(), toml);
    // A layout dependency is an input too, and so is anything inside it.
    let layout_before = tree_bytes(&p.join("deplayout"));
    let err = refused_in(
        p,
        &[
            "deplayout",
            "--config",
            "package.toml",
            "--format",
            "layout",
        ],
    );
    assert!(err.contains("is also an input"), "{err}");
    let err = refused_in(
        p,
        &[
            "deplayout/blobs/x",
            "--config",
            "package.toml",
            "--format",
            "layout",
        ],
    );
    assert!(err.contains("lies inside an input"), "{err}");
    assert_eq!(tree_bytes(&p.join("deplayout")), layout_before);
    // The composite itself still packages.
    package_in(p, &["meta.cnb", "--config", "package.toml"]);
    assert_eq!(
        list(p),
        [
            "bp",
            "bp.tgz",
            "bp2",
            "dep.cnb",
            "deplayout",
            "meta",
            "meta.cnb",
            "package.toml"
        ]
    );
}

#[test]
fn outputs_inside_the_buildpack_tree_have_the_bytes_of_outputs_outside_it() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path();
    let bp = p.join("bp");
    buildpack_with_large_file(&bp);
    let outside = p.join("outside");
    fs::create_dir(&outside).unwrap();
    let path = bp.to_str().unwrap();

    // .cnb file: in the buildpack's root (twice: the previous output is there the second
    // time) and in a subdirectory.
    package_in(&outside, &["a.cnb", "--path", path]);
    let expected = fs::read(outside.join("a.cnb")).unwrap();
    for _ in 0..2 {
        package_in(&bp, &["out.cnb"]);
        assert!(
            fs::read(bp.join("out.cnb")).unwrap() == expected,
            "in-tree .cnb differs"
        );
    }
    fs::remove_file(bp.join("out.cnb")).unwrap();
    // The `build` directory itself is the user's and goes into the layer; only the output in it
    // stays out.
    fs::create_dir(bp.join("build")).unwrap();
    package_in(&outside, &["b.cnb", "--path", path]);
    let expected = fs::read(outside.join("b.cnb")).unwrap();
    for _ in 0..2 {
        package_in(&bp, &["build/out.cnb"]);
        assert!(
            fs::read(bp.join("build/out.cnb")).unwrap() == expected,
            "build/out.cnb differs"
        );
    }
    fs::remove_dir_all(bp.join("build")).unwrap();

    // Layout directory.
    package_in(&outside, &["layout", "--path", path, "--format", "layout"]);
    let expected = tree_bytes(&outside.join("layout"));
    for _ in 0..2 {
        package_in(&bp, &["layout", "--format", "layout"]);
        assert!(
            tree_bytes(&bp.join("layout")) == expected,
            "in-tree layout differs"
        );
    }
    fs::remove_dir_all(bp.join("layout")).unwrap();

    // --split, files and layouts.
    package_in(&outside, &["s.cnb", "--path", path, "--split"]);
    package_in(
        &outside,
        &["sl", "--path", path, "--split", "--format", "layout"],
    );
    for _ in 0..2 {
        package_in(&bp, &["s.cnb", "--split"]);
        for name in ["s-linux-amd64.cnb", "s-linux-arm64.cnb"] {
            assert!(
                fs::read(bp.join(name)).unwrap() == fs::read(outside.join(name)).unwrap(),
                "{name} differs"
            );
        }
    }
    for name in ["s-linux-amd64.cnb", "s-linux-arm64.cnb"] {
        fs::remove_file(bp.join(name)).unwrap();
    }
    for _ in 0..2 {
        package_in(&bp, &["sl", "--split", "--format", "layout"]);
        for name in ["sl-linux-amd64", "sl-linux-arm64"] {
            assert!(
                tree_bytes(&bp.join(name)) == tree_bytes(&outside.join(name)),
                "{name} differs"
            );
        }
    }
    assert_eq!(
        list(&bp),
        [
            "-large",
            "bin",
            "buildpack.toml",
            "sl-linux-amd64",
            "sl-linux-arm64"
        ]
    );
}

#[test]
fn split_checks_every_destination_before_writing_any() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path();
    minimal_buildpack(&p.join("bp"), "ex/split", "1.0.0", TWO_TARGETS);
    // The first target's file exists (an earlier package), the second's name is a directory.
    package_in(p, &["s.cnb", "--path", "bp", "--split"]);
    let first = fs::read(p.join("s-linux-amd64.cnb")).unwrap();
    fs::remove_file(p.join("s-linux-arm64.cnb")).unwrap();
    fs::create_dir(p.join("s-linux-arm64.cnb")).unwrap();
    write_file(&p.join("bp/bin/build"), "#!/bin/sh\necho changed\n", 0o755);
    let err = refused_in(p, &["s.cnb", "--path", "bp", "--split"]);
    assert!(err.contains("s-linux-arm64.cnb"), "{err}");
    assert_eq!(fs::read(p.join("s-linux-amd64.cnb")).unwrap(), first);
    assert!(p.join("s-linux-arm64.cnb").is_dir());
    assert_eq!(list(p), ["bp", "s-linux-amd64.cnb", "s-linux-arm64.cnb"]);

    // Same for layouts: the second destination is not a package.
    package_in(p, &["l", "--path", "bp", "--split", "--format", "layout"]);
    let first = tree_bytes(&p.join("l-linux-amd64"));
    fs::remove_dir_all(p.join("l-linux-arm64")).unwrap();
    write_file(&p.join("l-linux-arm64/mine.txt"), "mine", 0o644);
    write_file(&p.join("bp/bin/build"), "#!/bin/sh\necho again\n", 0o755);
    let err = refused_in(p, &["l", "--path", "bp", "--split", "--format", "layout"]);
    assert!(err.contains("l-linux-arm64"), "{err}");
    assert_eq!(tree_bytes(&p.join("l-linux-amd64")), first);
    assert_eq!(list(&p.join("l-linux-arm64")), ["mine.txt"]);
    assert_eq!(
        list(p),
        [
            "bp",
            "l-linux-amd64",
            "l-linux-arm64",
            "s-linux-amd64.cnb",
            "s-linux-arm64.cnb"
        ]
    );
}

/// The PID of a process that has exited (and been waited for).
fn dead_pid() -> u32 {
    let mut child = Command::new("true").spawn().unwrap();
    let pid = child.id();
    child.wait().unwrap();
    pid
}

#[test]
fn temporary_names_of_dead_processes_are_reaped_and_nothing_else() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path();
    minimal_buildpack(&p.join("bp"), "ex/reap", "1.0.0", "");
    let out = p.join("out");
    fs::create_dir(&out).unwrap();
    let tmp = p.join("tmp");
    fs::create_dir(&tmp).unwrap();
    let dead = dead_pid();
    let live = std::process::id();
    let stale = [
        format!(".out.cnb.partial-{dead}-0123456789abcdef.tmp"),
        format!(".other.cnb.old-{dead}-fedcba9876543210.tmp"),
        // As cnbpkg 0.1.0 named them.
        format!(".out.cnb.partial-{dead}-0.tmp"),
    ];
    for name in &stale {
        fs::write(out.join(name), "stale").unwrap();
    }
    let stale_dir = format!(".layout.partial-{dead}-00000000000000ff.tmp");
    write_file(
        &out.join(&stale_dir).join("blobs/sha256/.incoming-1"),
        "x",
        0o644,
    );
    let stale_scratch = format!(".cnbpkg-{dead}-0123456789abcdef");
    write_file(&tmp.join(&stale_scratch).join("bin/build"), "x", 0o644);
    // Not to be touched: a live owner, names that only look similar, a dead owner's name still
    // locked by a live process (as another PID namespace would).
    let keep = [
        format!(".out.cnb.partial-{live}-0123456789abcdef.tmp"),
        format!(".out.cnb.partial-{dead}-0123456789abcdef"),
        format!(".out.cnb.partial-{dead}-0123456789ABCDEF.tmp"),
        format!(".out.cnb.partial-{dead}.tmp"),
        format!("out.cnb.partial-{dead}-0123456789abcdef.tmp"),
        format!(".out.cnb.backup-{dead}-0123456789abcdef.tmp"),
        format!(".out.cnb.partial-{dead}-1111111111111111.tmp"),
    ];
    for name in &keep {
        fs::write(out.join(name), "keep").unwrap();
    }
    let locked = fs::File::open(out.join(&keep[6])).unwrap();
    // SAFETY: flock on an open descriptor.
    assert_eq!(
        unsafe { libc::flock(std::os::fd::AsRawFd::as_raw_fd(&locked), libc::LOCK_EX) },
        0
    );
    let keep_scratch = [
        format!(".cnbpkg-{live}-0123456789abcdef"),
        ".cnbpkg-abcdef".into(),
    ];
    for name in &keep_scratch {
        fs::create_dir(tmp.join(name)).unwrap();
    }

    ok(child::output(
        cnbpkg_command()
            .env("TMPDIR", &tmp)
            .args(["buildpack", "package", "out/out.cnb", "--path", "bp"])
            .current_dir(p),
    ));
    let bp_tgz = p.join("bp.tgz");
    tool_ok(
        "tar",
        &[
            "-czf",
            bp_tgz.to_str().unwrap(),
            "-C",
            p.join("bp").to_str().unwrap(),
            ".",
        ],
    );
    ok(child::output(
        cnbpkg_command()
            .env("TMPDIR", &tmp)
            .args([
                "buildpack",
                "package",
                "out/layout",
                "--path",
                "bp.tgz",
                "--format",
                "layout",
            ])
            .current_dir(p),
    ));
    drop(locked);

    let mut expected: Vec<String> = keep.to_vec();
    expected.extend(["layout".to_string(), "out.cnb".to_string()]);
    expected.sort();
    assert_eq!(list(&out), expected);
    let mut expected_tmp = keep_scratch.to_vec();
    expected_tmp.sort();
    assert_eq!(list(&tmp), expected_tmp);
}

/// A `.tgz` buildpack whose `locked/` directory and `locked/data` file have mode 000.
fn tgz_with_mode_000(path: &Path) {
    let file = fs::File::create(path).unwrap();
    let gz = flate2::write::GzEncoder::new(file, flate2::Compression::fast());
    let mut ar = tar::Builder::new(gz);
    let mut add = |name: &str, mode: u32, data: &[u8], dir: bool| {
        let mut h = tar::Header::new_ustar();
        h.set_path(name).unwrap();
        h.set_mode(mode);
        h.set_size(data.len() as u64);
        h.set_entry_type(if dir {
            tar::EntryType::Directory
        } else {
            tar::EntryType::Regular
        });
        h.set_mtime(0);
        h.set_cksum();
        ar.append(&h, data).unwrap();
    };
    add(
        "buildpack.toml",
        0o644,
        b"api = \"0.10\"\n\n[buildpack]\nid = \"ex/locked\"\nversion = \"1.0.0\"\n",
        false,
    );
    add("bin/", 0o755, b"", true);
    add("bin/build", 0o755, b"#!/bin/sh\necho build\n", false);
    add("bin/detect", 0o100, b"#!/bin/sh\n", false);
    add("locked/", 0o000, b"", true);
    add("locked/data", 0o000, b"secret data\n", false);
    add("locked/inner/", 0o000, b"", true);
    ar.into_inner().unwrap().finish().unwrap();
}

/// The same tree as [`tgz_with_mode_000`], with ordinary modes, as a directory.
fn same_tree_with_ordinary_modes(dir: &Path) {
    write_file(
        &dir.join("buildpack.toml"),
        "api = \"0.10\"\n\n[buildpack]\nid = \"ex/locked\"\nversion = \"1.0.0\"\n",
        0o644,
    );
    write_file(&dir.join("bin/build"), "#!/bin/sh\necho build\n", 0o755);
    write_file(&dir.join("bin/detect"), "#!/bin/sh\n", 0o700);
    write_file(&dir.join("locked/data"), "secret data\n", 0o600);
    fs::create_dir(dir.join("locked/inner")).unwrap();
}

#[test]
fn tgz_with_mode_000_directories_packages_for_a_user_who_is_not_root() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path();
    // Everything the unprivileged user needs: a readable archive, writable output and TMPDIR.
    fs::set_permissions(p, fs::Permissions::from_mode(0o755)).unwrap();
    let tgz = p.join("bp.tgz");
    tgz_with_mode_000(&tgz);
    let work: PathBuf = p.join("work");
    let tmp = p.join("tmp");
    for dir in [&work, &tmp] {
        fs::create_dir(dir).unwrap();
        fs::set_permissions(dir, fs::Permissions::from_mode(0o777)).unwrap();
    }
    // As root, run the binary as nobody; a user who is not root runs it directly.
    // SAFETY: geteuid has no preconditions.
    let mut cmd = if unsafe { libc::geteuid() } == 0 {
        let mut c = Command::new("setpriv");
        child::isolate(&mut c, &child::fresh_home())
            .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(child::bin());
        c
    } else {
        cnbpkg_command()
    };
    let out = child::output(
        cmd.args(["buildpack", "package", "out.cnb", "--path"])
            .arg(&tgz)
            .env("TMPDIR", &tmp)
            .current_dir(&work),
    );
    ok(out);
    assert_eq!(list(&tmp), Vec::<String>::new(), "scratch tree left behind");

    // The layer keeps the archive's normalized modes: the bytes are those of the same tree
    // packaged from a directory.
    let dir = p.join("dir");
    same_tree_with_ordinary_modes(&dir);
    package_in(p, &["dir.cnb", "--path", "dir"]);
    assert!(
        fs::read(work.join("out.cnb")).unwrap() == fs::read(p.join("dir.cnb")).unwrap(),
        "the .tgz package differs from the directory package"
    );
}
