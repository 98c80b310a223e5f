//! The library's error type: one line that names the file (or flag) and the problem.

use std::io;
use std::path::{Path, PathBuf};

use crate::digest::Digest;

/// Every failure the library reports. `Display` is the one-line message the CLI prints (for
/// [`Error::Listed`], the headline and one indented line per part; see [`Error::lines`]).
///
/// Callers branch on the variants: a damaged input ([`Error::DigestMismatch`],
/// [`Error::SizeMismatch`], [`Error::MissingBlob`]), refused credentials ([`Error::Auth`]), an
/// interrupted operation ([`Error::Interrupted`]), or bad input in a named file
/// ([`Error::Invalid`]). New variants may be added.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An I/O failure on a named file or directory.
    #[error("{}: {}", path.display(), describe_io(source))]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What failed.
        #[source]
        source: io::Error,
    },
    /// Bad content in a named file (TOML, archive, package, buildpack tree).
    #[error("{}: {message}", path.display())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong with it, one line.
        message: String,
    },
    /// A blob whose content does not hash to the digest that names it: the input is damaged
    /// or was tampered with.
    #[error("{}: blob {expected} has digest {actual}", path.display())]
    DigestMismatch {
        /// The package, layout or registry the blob came from.
        path: PathBuf,
        /// The digest its descriptor gives.
        expected: Digest,
        /// The digest of what was read.
        actual: Digest,
    },
    /// A blob whose length is not the size its descriptor gives.
    #[error("{}: blob {digest} is {actual} bytes, descriptor says {expected}", path.display())]
    SizeMismatch {
        /// The package, layout or registry the blob came from.
        path: PathBuf,
        /// The blob.
        digest: Digest,
        /// The size its descriptor gives.
        expected: u64,
        /// The size found.
        actual: u64,
    },
    /// A blob that a descriptor names but the package, layout or store does not hold.
    #[error("{}: blob {digest} is missing", path.display())]
    MissingBlob {
        /// The package, layout or store.
        path: PathBuf,
        /// The blob.
        digest: Digest,
    },
    /// A registry refused the credentials (or asked for some and none were found).
    #[error("{registry}: {message}")]
    Auth {
        /// The registry host (`ghcr.io`, `127.0.0.1:5000`).
        registry: String,
        /// What happened, one line, never a secret.
        message: String,
    },
    /// A bad value or combination of options (exit code 2 in the CLI).
    #[error("{0}")]
    Usage(String),
    /// Any other failure, already phrased as one line.
    #[error("{0}")]
    Other(String),
    /// No image of a package matches the platforms asked for (nothing was sent).
    #[error("no image in {} matches platform {}; it has {}", path.display(), requested.join(", "), available.join(", "))]
    NoPlatformMatch {
        /// The package.
        path: PathBuf,
        /// The platforms asked for, as written.
        requested: Vec<String>,
        /// The platforms its images have (`unknown` for an image that gives none).
        available: Vec<String>,
    },
    /// The operation was interrupted (Ctrl-C); nothing was left behind.
    #[error("interrupted")]
    Interrupted,
    /// One failure with several parts (every remote buildpack of a package, say): a headline
    /// about `path` (when there is one) and one detail line per part. The CLI prints each part
    /// on its own line, escaped on its own, so no input can forge a line.
    #[error("{}", listed(path.as_deref(), headline, details))]
    Listed {
        /// The file the failure concerns, if one.
        path: Option<PathBuf>,
        /// The first line.
        headline: String,
        /// One line per part.
        details: Vec<String>,
    },
}

fn listed(path: Option<&Path>, headline: &str, details: &[String]) -> String {
    let mut s = match path {
        Some(p) => format!("{}: {headline}", p.display()),
        None => headline.to_string(),
    };
    for d in details {
        s.push_str("\n  ");
        s.push_str(d);
    }
    s
}

/// Result alias used throughout the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// An error about the content of `path`.
    pub fn invalid(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        Error::Invalid {
            path: path.into(),
            message: message.into(),
        }
    }

    /// An I/O error on `path`.
    pub fn io(path: impl Into<PathBuf>, source: io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }

    /// A usage error (bad flag value or combination).
    pub fn usage(message: impl Into<String>) -> Self {
        Error::Usage(message.into())
    }

    /// A free-form one-line error.
    pub fn other(message: impl Into<String>) -> Self {
        Error::Other(message.into())
    }

    /// The same message as a plain failure (exit code 1) rather than a usage error.
    pub fn into_failure(self) -> Self {
        match self {
            Error::Usage(m) => Error::Other(m),
            e => e,
        }
    }

    /// The first line of the message and the detail lines under it (none for most errors).
    pub fn lines(&self) -> (String, &[String]) {
        match self {
            Error::Listed {
                path,
                headline,
                details,
            } => (
                match path {
                    Some(p) => format!("{}: {headline}", p.display()),
                    None => headline.clone(),
                },
                details,
            ),
            e => (e.to_string(), &[]),
        }
    }

    /// Whether this is a usage error (the CLI exits with 2 for those).
    pub fn is_usage(&self) -> bool {
        matches!(self, Error::Usage(_))
    }
}

/// A short, lower-case description of an I/O error without Rust's "(os error N)" noise.
pub(crate) fn describe_io(e: &io::Error) -> String {
    let text = e.to_string();
    match text.find(" (os error") {
        Some(i) => text[..i].to_lowercase(),
        None => text,
    }
}

/// Attach a path to an `io::Result`.
pub trait IoResultExt<T> {
    /// Turn an `io::Error` into [`Error::Io`] naming `path`.
    fn at(self, path: &Path) -> Result<T>;
}

impl<T> IoResultExt<T> for io::Result<T> {
    fn at(self, path: &Path) -> Result<T> {
        self.map_err(|e| Error::io(path, e))
    }
}
