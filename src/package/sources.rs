//! Where buildpacks come from: local directories, `.tgz`/`.tar` archives (extracted safely into
//! a scratch directory), and, for dependencies, `.cnb` files and OCI layout directories.

use std::fs;
use std::path::{Path, PathBuf};

use crate::atomic::ScratchDir;
use crate::descriptor::{self, BuildpackDescriptor, PackageConfig};
use crate::error::{Error, IoResultExt, Result};
use crate::events::{Events, EventsExt};
use crate::layout::{ImageRef, PackageReader};

use super::remote::{self, Remote};

/// A buildpack given as a file tree (a directory, or an extracted archive).
pub(crate) struct Tree {
    /// The buildpack root on disk.
    pub root: PathBuf,
    /// Its decoded `buildpack.toml`.
    pub descriptor: BuildpackDescriptor,
    /// What to call `buildpack.toml` in messages (inside the archive for archives).
    pub descriptor_path: PathBuf,
    /// The URI as the user wrote it, for messages.
    pub origin: PathBuf,
    /// Keeps an extracted archive alive while packaging.
    _scratch: Option<ScratchDir>,
}

impl Tree {
    /// Whether the buildpack is a directory on disk (not an extracted archive).
    pub fn is_directory(&self) -> bool {
        self._scratch.is_none()
    }

    /// `buildpack.toml`, or `extension.toml` for an image extension.
    pub fn descriptor_file_name(&self) -> &'static str {
        match self.descriptor.kind {
            crate::descriptor::ModuleKind::Buildpack => "buildpack.toml",
            crate::descriptor::ModuleKind::Extension => "extension.toml",
        }
    }
}

/// A dependency: a buildpack tree or a finished package.
pub(crate) enum Dependency {
    /// A directory or archive holding one buildpack.
    Tree(Tree),
    /// A `.cnb` file or an OCI layout directory.
    Package {
        reader: PackageReader,
        /// Its images, read (and their manifests and configs verified) once.
        images: Vec<ImageRef>,
        origin: PathBuf,
    },
}

/// Turn a dependency URI into a local path: relative paths against `base`, `file://` decoded;
/// anything remote (an image, a Buildpack Registry id, a download) is refused with what to run
/// to fetch it (cnbpkg never touches the network while packaging).
pub fn resolve_uri(uri: &str, base: &Path) -> Result<PathBuf> {
    if let Some(kind) = remote::classify(uri, base, true) {
        let remote = Remote {
            uri: uri.to_string(),
            kind,
            dependency: true,
        };
        return Err(remote::remote_error(&[remote], base, true, None));
    }
    Ok(local_path(uri, base))
}

/// The path a local URI names: `file://` decoded, relative paths joined to `base`.
pub(crate) fn local_path(uri: &str, base: &Path) -> PathBuf {
    let path = match uri.strip_prefix("file://") {
        Some(rest) => {
            use std::os::unix::ffi::OsStringExt;
            PathBuf::from(std::ffi::OsString::from_vec(percent_decode(rest)))
        }
        None => PathBuf::from(uri),
    };
    if path.is_absolute() {
        path
    } else {
        base.join(path)
    }
}

/// The local paths of a package's main buildpack and of its dependencies. Every URI that names
/// something remote is listed in one error, each with what to run to fetch it; `config` names
/// package.toml in that error.
pub(crate) fn locate(
    config: &PackageConfig,
    base: &Path,
    config_path: Option<&Path>,
) -> Result<(PathBuf, Vec<PathBuf>)> {
    let mut remotes = Vec::new();
    let mut local = |uri: &str, dependency: bool| match remote::classify(uri, base, dependency) {
        Some(kind) => {
            remotes.push(Remote {
                uri: uri.to_string(),
                kind,
                dependency,
            });
            None
        }
        None => Some(local_path(uri, base)),
    };
    let main = local(&config.buildpack_uri, false);
    let dependencies: Vec<Option<PathBuf>> = config
        .dependencies
        .iter()
        .map(|d| local(&d.uri, true))
        .collect();
    match (main, dependencies.into_iter().collect::<Option<Vec<_>>>()) {
        (Some(main), Some(dependencies)) => Ok((main, dependencies)),
        _ => Err(remote::remote_error(
            &remotes,
            base,
            config_path.is_some(),
            config_path,
        )),
    }
}

/// `%XX` escapes decoded to the bytes they name (a file name need not be UTF-8). Works on bytes:
/// a `%` followed by a multi-byte character is kept as written, never sliced through.
fn percent_decode(s: &str) -> Vec<u8> {
    let hex = |b: u8| (b as char).to_digit(16);
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let (Some(hi), Some(lo)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                out.push((hi * 16 + lo) as u8);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    out
}

/// Load the main buildpack: a directory or a `.tgz`/`.tar` archive with `buildpack.toml` at
/// its root.
pub(crate) fn load_tree(location: &Path, events: &dyn Events) -> Result<Tree> {
    let meta = fs::metadata(location).at(location)?;
    let (root, scratch) = if meta.is_dir() {
        (location.to_path_buf(), None)
    } else {
        let scratch = ScratchDir::new()?;
        crate::source::extract_archive(location, scratch.path())?;
        (scratch.path().to_path_buf(), Some(scratch))
    };
    // A buildpack has buildpack.toml at its root; an image extension has extension.toml.
    let descriptor_path = ["buildpack.toml", "extension.toml"]
        .iter()
        .map(|name| root.join(name))
        .find(|p| fs::symlink_metadata(p).is_ok())
        .ok_or_else(|| {
            Error::invalid(location, "no buildpack.toml at the root of the buildpack")
        })?;
    if !fs::symlink_metadata(&descriptor_path).is_ok_and(|m| m.is_file()) {
        return Err(Error::invalid(&descriptor_path, "is not a regular file"));
    }
    // Messages about an extracted archive name the archive, not the scratch directory.
    let shown = if scratch.is_some() {
        location.join("buildpack.toml")
    } else {
        descriptor_path.clone()
    };
    let text = crate::input::read_text(&descriptor_path, &shown)?;
    let (descriptor, warnings) = descriptor::parse_buildpack_toml(&shown, &text)?;
    warnings.iter().for_each(|w| events.warning(w));
    Ok(Tree {
        root,
        descriptor,
        descriptor_path: shown,
        origin: location.to_path_buf(),
        _scratch: scratch,
    })
}

/// Load a dependency: a `.cnb` file or layout directory when it holds an OCI layout, otherwise
/// a buildpack tree (its own package.toml is not followed, as in pack).
pub(crate) fn load_dependency(location: &Path, events: &dyn Events) -> Result<Dependency> {
    let meta = fs::metadata(location).at(location)?;
    let is_package = if meta.is_dir() {
        location.join("oci-layout").is_file()
    } else {
        looks_like_layout_archive(location)?
    };
    if is_package {
        let reader = PackageReader::open(location)?;
        let images = reader.images()?;
        Ok(Dependency::Package {
            reader,
            images,
            origin: location.to_path_buf(),
        })
    } else {
        Ok(Dependency::Tree(load_tree(location, events)?))
    }
}

/// Whether a file is an uncompressed tar with an `oci-layout` entry (a `.cnb`), judged from the
/// first entries rather than the file name. A gzip-compressed file is a buildpack archive.
fn looks_like_layout_archive(path: &Path) -> Result<bool> {
    use std::io::Read;
    let mut head = [0u8; 2];
    let mut f = crate::input::open_regular(path)?;
    let n = f.read(&mut head).at(path)?;
    if n == 2 && head == [0x1f, 0x8b] {
        return Ok(false);
    }
    // The guard bounds extended headers, which the tar reader would hold whole.
    let input = crate::tar_guard::TarGuard::new(crate::input::open_regular(path)?);
    let mut archive = tar::Archive::new(input);
    let entries = match archive.entries() {
        Ok(e) => e,
        Err(_) => return Ok(false),
    };
    // A layout archive names `oci-layout`, `index.json` or `blobs/` among its first entries.
    for entry in entries.take(64) {
        let Ok(entry) = entry else { return Ok(false) };
        let name = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let name = crate::layout::reader::normalize_entry_name(&name).unwrap_or_default();
        if name == "oci-layout"
            || name == "index.json"
            || name.starts_with("blobs/")
            || name == "blobs"
        {
            return Ok(true);
        }
        if name == "buildpack.toml" {
            return Ok(false);
        }
    }
    Ok(false)
}
