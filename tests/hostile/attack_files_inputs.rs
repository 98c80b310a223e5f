//! Inputs attacked as a hostile author would: descriptor files far larger than any real one.
//! cnbpkg must refuse them with one line naming the file, within a bounded amount of memory.

use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::CommandExt;
use std::path::Path;

use crate::support::*;

/// `cnbpkg ARGS` in `dir` with its address space limited to 1 GiB, so reading a multi-gigabyte
/// file whole fails (the process aborts) instead of exhausting the machine.
fn cnbpkg_bounded(dir: &Path, args: &[&str]) -> std::process::Output {
    let mut cmd = cnbpkg_command();
    cmd.args(args).current_dir(dir);
    // SAFETY: only setrlimit (async-signal-safe) runs between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            let limit = libc::rlimit {
                rlim_cur: 1 << 30,
                rlim_max: 1 << 30,
            };
            if libc::setrlimit(libc::RLIMIT_AS, &limit) == 0 {
                Ok(())
            } else {
                Err(std::io::Error::last_os_error())
            }
        });
    }
    child::output(&mut cmd)
}

/// A sparse file: `head`, then zeros up to `size` bytes (no disk space used).
fn sparse(path: &Path, head: &str, size: u64) {
    fs::write(path, head).unwrap();
    fs::OpenOptions::new()
        .write(true)
        .open(path)
        .unwrap()
        .set_len(size)
        .unwrap();
}

#[test]
fn huge_descriptor_files_are_refused_without_reading_them_whole() {
    let tmp = tempfile::tempdir().unwrap();
    let bp = tmp.path().join("bp");
    minimal_buildpack(&bp, "ex/big", "1.0.0", "");
    // The control: the same buildpack packages under the same memory limit.
    ok(cnbpkg_bounded(
        tmp.path(),
        &["buildpack", "package", "ok.cnb", "--path", "bp"],
    ));

    let big = tmp.path().join("big");
    copy_tree(&bp, &big);
    sparse(&big.join("buildpack.toml"), "api = \"0.10\"\n# ", 2 << 30);
    let e = fails(
        cnbpkg_bounded(
            tmp.path(),
            &["buildpack", "package", "out.cnb", "--path", "big"],
        ),
        1,
    );
    assert!(
        e.contains("big/buildpack.toml") && e.contains("larger than"),
        "{e}"
    );

    let config = tmp.path().join("package.toml");
    sparse(&config, "[buildpack]\nuri = \"bp\"\n# ", 2 << 30);
    let e = fails(
        cnbpkg_bounded(
            tmp.path(),
            &[
                "buildpack",
                "package",
                "out.cnb",
                "--config",
                "package.toml",
            ],
        ),
        1,
    );
    assert!(
        e.contains("package.toml") && e.contains("larger than"),
        "{e}"
    );
    assert!(!tmp.path().join("out.cnb").exists());
}

#[test]
fn layout_whose_blob_directory_is_a_symlink_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let bp = tmp.path().join("bp");
    minimal_buildpack(&bp, "ex/lay", "1.0.0", "");
    ok(cnbpkg_in(
        tmp.path(),
        [
            "buildpack",
            "package",
            "layout",
            "--format",
            "layout",
            "--path",
            "bp",
        ],
    ));
    ok(cnbpkg_in(tmp.path(), ["verify", "layout"]));
    for dir in ["blobs", "blobs/sha256"] {
        let copy = tmp.path().join(format!("copy-{}", dir.replace('/', "-")));
        copy_tree(&tmp.path().join("layout"), &copy);
        // The blobs live elsewhere and the layout points at them.
        let elsewhere = tmp
            .path()
            .join(format!("elsewhere-{}", dir.replace('/', "-")));
        fs::rename(copy.join(dir), &elsewhere).unwrap();
        std::os::unix::fs::symlink(&elsewhere, copy.join(dir)).unwrap();
        for command in ["verify", "inspect"] {
            let out = cnbpkg([command.as_ref(), copy.as_os_str()]);
            // verify lists defects on standard output, errors go to standard error.
            let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
            let e = fails(out, 1);
            assert!(
                e.contains("symbolic link") || stdout.contains("symbolic link"),
                "{command} {dir}: {stdout}{e}"
            );
        }
    }
}

#[test]
fn file_uris_with_multibyte_characters_after_a_percent_sign_do_not_panic() {
    let tmp = tempfile::tempdir().unwrap();
    // Named as the URI spells it: '%' then a three-byte character, which is not an escape.
    let bp = tmp.path().join("bp-%\u{20ac}x");
    minimal_buildpack(&bp, "ex/pct", "1.0.0", "");
    let config = tmp.path().join("package.toml");
    fs::write(
        &config,
        format!("[buildpack]\nuri = \"file://{}\"\n", bp.display()),
    )
    .unwrap();
    ok(cnbpkg_in(
        tmp.path(),
        [
            "buildpack",
            "package",
            "out.cnb",
            "--config",
            "package.toml",
        ],
    ));
    // An escape naming a byte that is not UTF-8 reaches the file of that name.
    let raw = std::ffi::OsStr::from_bytes(b"bp-\xff");
    let odd = tmp.path().join(raw);
    minimal_buildpack(&odd, "ex/raw", "1.0.0", "");
    fs::write(
        &config,
        format!(
            "[buildpack]\nuri = \"file://{}/bp-%ff\"\n",
            tmp.path().display()
        ),
    )
    .unwrap();
    ok(cnbpkg_in(
        tmp.path(),
        [
            "buildpack",
            "package",
            "raw.cnb",
            "--config",
            "package.toml",
        ],
    ));
}
