//! Helpers shared by the integration tests: running the CLI and the independent readers.
#![allow(dead_code)]

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The repository root.
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A sample buildpack under testdata/samples.
pub fn sample(name: &str) -> PathBuf {
    repo().join("testdata/samples").join(name)
}

/// Run the cnbpkg binary.
pub fn cnbpkg<I, S>(args: I) -> Output
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    Command::new(env!("CARGO_BIN_EXE_cnbpkg"))
        .args(args)
        .output()
        .expect("run cnbpkg")
}

/// Run cnbpkg in `dir`.
pub fn cnbpkg_in<I, S>(dir: &Path, args: I) -> Output
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    Command::new(env!("CARGO_BIN_EXE_cnbpkg"))
        .current_dir(dir)
        .args(args)
        .output()
        .expect("run cnbpkg")
}

/// Assert success and return stdout.
pub fn ok(out: Output) -> String {
    assert!(
        out.status.success(),
        "command failed ({:?})\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Assert failure with exit code `code` and return stderr.
pub fn fails(out: Output, code: i32) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(
        out.status.code(),
        Some(code),
        "expected exit {code}\nstdout: {}\nstderr: {stderr}",
        String::from_utf8_lossy(&out.stdout)
    );
    stderr
}

/// Run an external tool that the tests require; panics with a clear message when it is missing.
pub fn tool(name: &str, args: &[&str]) -> Output {
    match Command::new(name).args(args).output() {
        Ok(o) => o,
        Err(e) => panic!("the tests need '{name}' ({e}); run scripts/test to install it"),
    }
}

/// Run a required tool and assert success; return stdout.
pub fn tool_ok(name: &str, args: &[&str]) -> String {
    let out = tool(name, args);
    assert!(
        out.status.success(),
        "{name} {args:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Copy a directory tree (files, dirs, symlinks, modes).
pub fn copy_tree(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    let mut names: Vec<_> = fs::read_dir(from)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    names.sort();
    for name in names {
        let src = from.join(&name);
        let dst = to.join(&name);
        let meta = fs::symlink_metadata(&src).unwrap();
        if meta.file_type().is_symlink() {
            std::os::unix::fs::symlink(fs::read_link(&src).unwrap(), &dst).unwrap();
        } else if meta.is_dir() {
            copy_tree(&src, &dst);
        } else {
            fs::copy(&src, &dst).unwrap();
            fs::set_permissions(&dst, fs::Permissions::from_mode(meta.permissions().mode()))
                .unwrap();
        }
    }
}

/// Write a file, creating parents, with a mode.
pub fn write_file(path: &Path, content: &str, mode: u32) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, content).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

/// A minimal buildpack tree: buildpack.toml (with `extra` appended) and executable bin/build, bin/detect.
pub fn minimal_buildpack(dir: &Path, id: &str, version: &str, extra: &str) {
    write_file(
        &dir.join("buildpack.toml"),
        &format!("api = \"0.10\"\n\n[buildpack]\nid = \"{id}\"\nversion = \"{version}\"\n{extra}"),
        0o644,
    );
    write_file(&dir.join("bin/build"), "#!/bin/sh\necho build\n", 0o755);
    write_file(&dir.join("bin/detect"), "#!/bin/sh\nexit 0\n", 0o755);
}

/// Names of the regular files in a directory (non-recursive), sorted.
pub fn list(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// Copy the image of `archive` that fits `platform_flags` (skopeo's `--override-*` flags) into
/// an OCI directory with skopeo, unpack it with umoci, and return the unpacked root file system.
pub fn unpack_with_umoci(archive: &Path, work: &Path, platform_flags: &[&str]) -> PathBuf {
    let oci = work.join("oci");
    let bundle = work.join("bundle");
    let src = format!("oci-archive:{}", archive.display());
    let dst = format!("oci:{}:x", oci.display());
    let mut args: Vec<&str> = platform_flags.to_vec();
    args.extend(["copy", src.as_str(), dst.as_str()]);
    tool_ok("skopeo", &args);
    let image = format!("{}:x", oci.display());
    tool_ok(
        "umoci",
        &[
            "unpack",
            "--rootless",
            "--image",
            &image,
            bundle.to_str().unwrap(),
        ],
    );
    bundle.join("rootfs")
}

/// The umask is one per process and the test harness runs tests on parallel threads, so a test
/// that needs another umask runs its body in a child of its own: the test binary again, with
/// only `test` selected, started with `mask`. Returns `true` in that child (run the body) and
/// `false` in the parent, after the child passed.
pub fn with_umask_in_child(test: &str, mask: libc::mode_t) -> bool {
    use std::os::unix::process::CommandExt;
    const CHILD: &str = "CNBPKG_TEST_UMASK_CHILD";
    if std::env::var_os(CHILD).is_some() {
        return true;
    }
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args(["--exact", test, "--test-threads=1", "--nocapture"])
        .env(CHILD, "1");
    // SAFETY: umask is async-signal-safe; nothing else runs between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            libc::umask(mask);
            Ok(())
        });
    }
    let out = cmd.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("1 passed"),
        "{test} under umask {mask:o}:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    false
}
