//! The library's error type: one line that names the file (or option) and the problem.

use std::io;
use std::path::{Path, PathBuf};

use crate::digest::Digest;

/// Every failure the library reports. `Display` is the one-line message the CLI prints (for
/// [`Error::Listed`], the headline and one indented line per part; see [`Error::lines`]).
///
/// Callers branch on the variants: a damaged input ([`Error::DigestMismatch`],
/// [`Error::SizeMismatch`], [`Error::MissingBlob`]), refused or missing credentials
/// ([`Error::Auth`]), an untrusted certificate ([`Error::Tls`]), an interrupted operation
/// ([`Error::Interrupted`]), or bad input in a named file ([`Error::Invalid`]). Messages name
/// options in plain words, never a command-line flag. New variants may be added.
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
        /// Refused, or none to give.
        kind: AuthFailure,
        /// What happened, one line, never a secret.
        message: String,
    },
    /// A registry's TLS certificate is not trusted (nothing was sent).
    #[error("{registry}: the TLS certificate of {host} {}", kind.describe(registry))]
    Tls {
        /// The registry host (`ghcr.io`, `127.0.0.1:5000`).
        registry: String,
        /// The host and port that presented the certificate (the registry, or its token
        /// server).
        host: String,
        /// Why it is not trusted.
        kind: TlsFailure,
    },
    /// Executables built for another architecture than their target, refused because the
    /// package options ask for strictness (otherwise a warning).
    #[error("{message}")]
    ForeignExecutables {
        /// The target, as displayed (`linux/arm64`).
        target: String,
        /// Which executables, one line.
        message: String,
    },
    /// Several images of a dependency package fit a target that names no architecture.
    #[error("{}: dependency has several images that fit target {target} ({}); name its architecture in the target", path.display(), images.join(", "))]
    AmbiguousDependency {
        /// The dependency package.
        path: PathBuf,
        /// The target, as displayed.
        target: String,
        /// The platforms of the dependency's images.
        images: Vec<String>,
    },
    /// A multi-image package with a target that names no architecture: readers choose an
    /// image by its platform, so each needs one.
    #[error("target '{target}' has no architecture, and a package with several images needs one for each (readers choose an image by its platform); give it an arch, or write one package per target (the `split` option)")]
    TargetWithoutArch {
        /// The target, as displayed.
        target: String,
    },
    /// Buildpacks named in the options (kept out of flattening, say) that the package does
    /// not hold.
    #[error(
        "no buildpack {} in this package; its buildpacks are {}",
        quoted(requested),
        quoted(available)
    )]
    NoSuchBuildpack {
        /// The `id@version` asked for and not found.
        requested: Vec<String>,
        /// The `id@version` of every buildpack of the package.
        available: Vec<String>,
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

/// Why a registry refused to authenticate the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum AuthFailure {
    /// The registry (or its token server) refused the credentials given.
    Refused,
    /// The registry asked for credentials and none were found.
    Missing,
}

/// Why a registry's TLS certificate is not trusted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TlsFailure {
    /// Signed by no trusted CA (or self-signed): its CA certificate must be trusted.
    UnknownIssuer,
    /// A CA certificate presented as the server's own: only that exact certificate, given as
    /// trusted, makes it acceptable.
    CaAsServer,
}

impl TlsFailure {
    /// What is wrong and what to trust, after "the TLS certificate of HOST".
    fn describe(self, registry: &str) -> String {
        match self {
            TlsFailure::UnknownIssuer => "is not trusted (unknown issuer); trust the registry's CA certificate (PEM, the `ca_cert` option), or use plain HTTP for a plain-HTTP registry".to_string(),
            TlsFailure::CaAsServer => format!("is a CA certificate that is not trusted as the server's own; trust exactly that certificate (the `ca_cert` option), or put it in certs.d/{registry}/"),
        }
    }
}

/// `'a', 'b'`.
fn quoted(names: &[String]) -> String {
    names
        .iter()
        .map(|s| format!("'{s}'"))
        .collect::<Vec<_>>()
        .join(", ")
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
        matches!(self, Error::Usage(_) | Error::NoSuchBuildpack { .. })
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
