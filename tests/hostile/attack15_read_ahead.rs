//! The walk and read-ahead of a module's files attacked through the process's limits: a deep
//! tree must package under a small open-files limit, as it did when each directory was listed
//! and closed at once.

use std::fs;
use std::os::unix::process::CommandExt;
use std::path::Path;

use crate::support::*;

/// `cnbpkg ARGS` in `dir` with at most `files` open files.
fn cnbpkg_with_open_files(dir: &Path, files: u64, args: &[&str]) -> std::process::Output {
    let mut cmd = cnbpkg_command();
    cmd.args(args).current_dir(dir);
    // SAFETY: only setrlimit (async-signal-safe) runs between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            let limit = libc::rlimit {
                rlim_cur: files,
                rlim_max: files,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) == 0 {
                Ok(())
            } else {
                Err(std::io::Error::last_os_error())
            }
        });
    }
    child::output(&mut cmd)
}

#[test]
fn deep_tree_packages_under_a_small_open_files_limit() {
    let tmp = tempfile::tempdir().unwrap();
    let bp = tmp.path().join("bp");
    minimal_buildpack(&bp, "ex/deep", "1.0.0", "");
    // Every level has a directory and, after it in name order, a file still to be visited
    // while the directory is walked: a walk holding its directories open holds them all.
    let mut dir = bp.clone();
    for level in 0..200 {
        dir.push("d");
        fs::create_dir(&dir).unwrap();
        fs::write(dir.join("z"), level.to_string()).unwrap();
    }
    for files in [16, 64] {
        let out = cnbpkg_with_open_files(
            tmp.path(),
            files,
            &["buildpack", "package", "deep.cnb", "--path", "bp"],
        );
        ok(out);
    }
    ok(cnbpkg([
        "verify",
        tmp.path().join("deep.cnb").to_str().unwrap(),
    ]));
}

/// Large files in many directories, opened ahead of the writer: under a limit of open files
/// the writer alone would package within (it opens one large file at a time), the files opened
/// ahead must not take what it needs.
#[test]
fn large_files_package_under_a_small_open_files_limit() {
    let tmp = tempfile::tempdir().unwrap();
    let bp = tmp.path().join("bp");
    minimal_buildpack(&bp, "ex/large", "1.0.0", "");
    let mut rng = Rng::new(15);
    for d in 0..6 {
        let dir = bp.join(format!("d{d}"));
        fs::create_dir(&dir).unwrap();
        for f in 0..4 {
            let size = (1 << 20) + 1 + rng.below(4096) as usize;
            let bytes = rng.bytes(size);
            fs::write(dir.join(format!("big{f}")), &bytes).unwrap();
            fs::write(dir.join(format!("small{f}")), f.to_string()).unwrap();
        }
    }
    // Standard streams, the output, the layer being written, and one file being read.
    let out = cnbpkg_with_open_files(
        tmp.path(),
        7,
        &[
            "buildpack",
            "package",
            "large.cnb",
            "--path",
            "bp",
            "--compression",
            "zstd",
        ],
    );
    ok(out);
    ok(cnbpkg([
        "verify",
        tmp.path().join("large.cnb").to_str().unwrap(),
    ]));
}
