//! Where buildpacks come from: local directories, `.tgz`/`.tar` archives (extracted safely into
//! a scratch directory), and, for dependencies, `.cnb` files and OCI layout directories.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::atomic::ScratchDir;
use crate::descriptor::{self, BuildpackDescriptor, PackageConfig};
use crate::error::{Error, IoResultExt, Result};
use crate::events::{Events, EventsExt};
use crate::layout::{ImageRef, PackageReader};
use crate::store::{ResolvedImage, StoreReader};

use super::remote::{self, MissingImage, MissingImages, Remote, RemoteKind, StoreArg};

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
// At most a few hundred, held once each: the size of a tree's descriptor does not matter.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Dependency {
    /// A directory or archive holding one buildpack.
    Tree(Tree),
    /// A `.cnb` file or an OCI layout directory, or an image of the store.
    Package {
        /// The package, or the store (shared by every dependency it holds).
        reader: Arc<PackageReader>,
        /// Its images, read (and their manifests and configs verified) once.
        images: Vec<ImageRef>,
        /// The path, or the URI as written for an image of the store.
        origin: PathBuf,
    },
}

/// Where a dependency comes from, once located.
pub(crate) enum Located {
    /// A path on this machine.
    Path(PathBuf),
    /// An image of the store.
    Stored {
        /// The URI as written.
        uri: String,
        /// What the store holds under it.
        image: Box<ResolvedImage>,
        /// The store (held while packaging: `store gc` waits for it).
        store: Arc<StoreReader>,
    },
}

impl Located {
    /// What messages call it: the path, or the URI as written.
    pub(crate) fn origin(&self) -> &Path {
        match self {
            Located::Path(p) => p,
            Located::Stored { uri, .. } => Path::new(uri.as_str()),
        }
    }

    /// Load it: a path as [`load_dependency`] loads it, an image of the store as a package
    /// read through the store.
    pub(crate) fn load(&self, events: &dyn Events) -> Result<Dependency> {
        match self {
            Located::Path(path) => load_dependency(path, events),
            Located::Stored { uri, image, store } => Ok(Dependency::Package {
                reader: store.shared_reader(),
                images: image.images.clone(),
                origin: PathBuf::from(uri),
            }),
        }
    }
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
        return Err(remote::remote_error(&[remote], None, base, true, None));
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

/// The main buildpack's local path and where each dependency comes from: a local path, or
/// an image of the store (`store`: `--store`, else the default store). Every URI that names
/// something not on this machine (a Buildpack Registry id, a download, an image the store does
/// not hold) is listed in one error, with what to run to fetch each (the images with one
/// `cnbpkg pull`); `config_path` names package.toml in that error.
pub(crate) fn locate(
    config: &PackageConfig,
    base: &Path,
    config_path: Option<&Path>,
    store: Option<&Path>,
) -> Result<(PathBuf, Vec<Located>)> {
    let Classified {
        main,
        mut located,
        images,
        remotes,
    } = classify_all(config, base);
    let reader = match store {
        _ if images.is_empty() => None,
        None => StoreReader::open_default()?,
        Some(path) if path.exists() && !crate::store::unfilled(path) => {
            Some(StoreReader::open(path)?)
        }
        // Nothing to read; the error says how to fill it.
        Some(_) => None,
    }
    .map(Arc::new);
    let missing = match &reader {
        Some(r) => resolve_images(r, &images, &mut located)?,
        None => images.iter().map(|w| w.missing()).collect(),
    };
    match (main, located.into_iter().collect::<Option<Vec<_>>>()) {
        (Some(main), Some(dependencies)) if remotes.is_empty() => Ok((main, dependencies)),
        _ => {
            let mut all: Vec<String> = Vec::new();
            for image in &images {
                if !all.contains(&image.reference) {
                    all.push(image.reference.clone());
                }
            }
            let store_arg = StoreArg::of(store);
            let missing = MissingImages {
                missing: &missing,
                all: &all,
                store: &store_arg,
                exists: reader.is_some(),
                unnamed: reader.as_ref().is_some_and(|r| r.names().is_empty()),
            };
            Err(remote::remote_error(
                &remotes,
                Some(&missing),
                base,
                config_path.is_some(),
                config_path,
            ))
        }
    }
}

/// package.toml's URIs sorted out: the main buildpack's path, each dependency's path (`None`
/// for an image or a remote), the image dependencies, and the remotes (errors all).
struct Classified {
    main: Option<PathBuf>,
    located: Vec<Option<Located>>,
    images: Vec<WantedImage>,
    remotes: Vec<Remote>,
}

/// An image dependency, to be read from the store.
struct WantedImage {
    /// Its place among the dependencies.
    index: usize,
    /// The URI as written.
    uri: String,
    /// The reference, normalized.
    reference: String,
}

impl WantedImage {
    fn missing(&self) -> MissingImage {
        MissingImage {
            uri: self.uri.clone(),
            reference: self.reference.clone(),
        }
    }
}

/// Classify every URI of package.toml (pack's rules, see [`remote::classify`]).
fn classify_all(config: &PackageConfig, base: &Path) -> Classified {
    let mut remotes = Vec::new();
    let main = match remote::classify(&config.buildpack_uri, base, false) {
        Some(kind) => {
            remotes.push(Remote {
                uri: config.buildpack_uri.clone(),
                kind,
                dependency: false,
            });
            None
        }
        None => Some(local_path(&config.buildpack_uri, base)),
    };
    let mut located = Vec::new();
    let mut images = Vec::new();
    for (index, d) in config.dependencies.iter().enumerate() {
        let kind = match remote::classify(&d.uri, base, true) {
            None => {
                located.push(Some(Located::Path(local_path(&d.uri, base))));
                continue;
            }
            Some(RemoteKind::Image(reference)) => match normalized(&reference) {
                Ok(reference) => {
                    images.push(WantedImage {
                        index,
                        uri: d.uri.clone(),
                        reference,
                    });
                    located.push(None);
                    continue;
                }
                Err(why) => RemoteKind::BadImage(why),
            },
            Some(kind) => kind,
        };
        remotes.push(Remote {
            uri: d.uri.clone(),
            kind,
            dependency: true,
        });
        located.push(None);
    }
    Classified {
        main,
        located,
        images,
        remotes,
    }
}

/// Each image dependency the store holds, in its place in `located`; those it lacks.
fn resolve_images(
    store: &Arc<StoreReader>,
    images: &[WantedImage],
    located: &mut [Option<Located>],
) -> Result<Vec<MissingImage>> {
    let mut missing = Vec::new();
    // Each image's manifests and configs are held from here on: bounded together as they are
    // read, as packaging bounds its dependency packages (one large image named many times).
    let mut held = super::DependencyBudget::default();
    for wanted in images {
        match store.resolve(&wanted.reference)? {
            Some(image) => {
                held.add_images(&image.images, Path::new(&wanted.uri))?;
                located[wanted.index] = Some(Located::Stored {
                    uri: wanted.uri.clone(),
                    image: Box::new(image),
                    store: Arc::clone(store),
                })
            }
            None => missing.push(wanted.missing()),
        }
    }
    Ok(missing)
}

/// An image reference as the store names it (`docker.io/library/x:latest`), or why it is not
/// a valid one.
fn normalized(reference: &str) -> std::result::Result<String, String> {
    crate::store::normalized_reference(reference).map_err(|e| {
        let text = e.to_string();
        // "invalid reference 'X': why" → "why": the message names the URI already.
        text.split_once("': ")
            .map_or(text.clone(), |(_, why)| why.to_string())
    })
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
            reader: Arc::new(reader),
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
