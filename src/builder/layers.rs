//! The layers a builder adds that hold no buildpack: its directories, single-file layers
//! (`order.toml`, `system.toml`, `stack.toml`, `run.toml`), the build-config env files and the
//! empty platform env layer, each written as pack writes it (builder.md §2.2, §2.3).

use std::io::Write;

use crate::error::{Error, Result};
use crate::tar::{Header, TarWriter};

/// The diffID of the empty platform env layer: Go's `tar.Writer.Close()` on no entries, 1024
/// zero bytes.
#[cfg(test)]
pub(crate) const EMPTY_TAR_DIFF_ID: &str =
    "sha256:5f70bf18a086007016e948b04aed3b82103a36bea41755b6cddfaf10ace3c6ef";

/// The directories every builder has, in pack's order (`defaultDirsLayer`): `/workspace` and
/// `/layers` owned by the build user, the others by root; all 0755 at the normalized instant.
pub(crate) fn write_dirs_layer(out: &mut dyn Write, uid: u32, gid: u32) -> Result<()> {
    let mut tar = TarWriter::new(out);
    for name in ["/workspace", "/layers"] {
        let mut header = Header::dir(name);
        header.uid = uid;
        header.gid = gid;
        tar.append(&header, &mut std::io::empty())
            .map_err(write_error)?;
    }
    for name in [
        "/cnb",
        "/cnb/buildpacks",
        "/cnb/extensions",
        "/platform",
        "/platform/env",
        "/cnb/build-config",
        "/cnb/build-config/env",
    ] {
        tar.append(&Header::dir(name), &mut std::io::empty())
            .map_err(write_error)?;
    }
    tar.finish().map_err(write_error)?;
    Ok(())
}

/// A layer of regular files (0644, root, normalized mtime), in the order given: one file for
/// `order.toml` and the like (pack's `CreateSingleFileTar`), the env files for build-config;
/// none gives the empty tar.
pub(crate) fn write_files_layer(out: &mut dyn Write, files: &[(String, &[u8])]) -> Result<()> {
    let mut tar = TarWriter::new(out);
    for (name, content) in files {
        let header = Header::file(name.clone(), 0o644, content.len() as u64);
        tar.append(&header, &mut &content[..])
            .map_err(write_error)?;
    }
    tar.finish().map_err(write_error)?;
    Ok(())
}

fn write_error(e: std::io::Error) -> Error {
    Error::other(format!("writing a builder layer: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::digest::Digest;

    /// The empty layer is pack's: its diffID is the constant.
    #[test]
    fn empty_files_layer_is_the_empty_tar() {
        let mut out = Vec::new();
        write_files_layer(&mut out, &[]).unwrap();
        assert_eq!(out.len(), 1024);
        assert_eq!(Digest::of(&out).to_string(), EMPTY_TAR_DIFF_ID);
    }

    /// The directories in pack's order, `/workspace` and `/layers` owned by the build user.
    #[test]
    fn dirs_layer_order_and_owners() {
        let mut out = Vec::new();
        write_dirs_layer(&mut out, 1000, 1001).unwrap();
        let mut archive = tar::Archive::new(&out[..]);
        let entries: Vec<(String, u64, u64, u32, u64)> = archive
            .entries()
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                let h = e.header();
                (
                    String::from_utf8_lossy(&e.path_bytes()).into_owned(),
                    h.uid().unwrap(),
                    h.gid().unwrap(),
                    h.mode().unwrap(),
                    h.mtime().unwrap(),
                )
            })
            .collect();
        let names: Vec<&str> = entries.iter().map(|e| e.0.as_str()).collect();
        assert_eq!(
            names,
            [
                "/workspace",
                "/layers",
                "/cnb",
                "/cnb/buildpacks",
                "/cnb/extensions",
                "/platform",
                "/platform/env",
                "/cnb/build-config",
                "/cnb/build-config/env"
            ]
        );
        assert_eq!((entries[0].1, entries[0].2), (1000, 1001));
        assert_eq!((entries[1].1, entries[1].2), (1000, 1001));
        assert_eq!((entries[2].1, entries[2].2), (0, 0));
        assert!(entries
            .iter()
            .all(|e| e.3 == 0o755 && e.4 == crate::cnb::NORMALIZED_SECONDS));
    }
}
