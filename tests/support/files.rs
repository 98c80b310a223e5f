//! Files the tests start from: the repository's samples, buildpack trees written on the spot,
//! copies and listings.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// The repository root.
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A sample buildpack under testdata/samples.
pub fn sample(name: &str) -> PathBuf {
    repo().join("testdata/samples").join(name)
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
