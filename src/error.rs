//! The library's error type: one line that names the file (or flag) and the problem.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

/// Every failure the library reports. `Display` is the one-line message the CLI prints.
#[derive(Debug)]
pub enum Error {
    /// An I/O failure on a named file or directory.
    Io { path: PathBuf, source: io::Error },
    /// Bad content in a named file (TOML, archive, package, buildpack tree).
    Invalid { path: PathBuf, message: String },
    /// A bad command-line value or option combination (exit code 2 in the CLI).
    Usage(String),
    /// Any other failure, already phrased as one line.
    Other(String),
    /// The operation was interrupted (Ctrl-C); nothing was left behind.
    Interrupted,
    /// One failure with several parts (every remote buildpack of a package, say): a headline
    /// about `path` (when there is one) and one detail line per part. The CLI prints each part
    /// on its own line, escaped on its own, so no input can forge a line.
    Listed {
        path: Option<PathBuf>,
        headline: String,
        details: Vec<String>,
    },
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

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Io { path, source } => write!(f, "{}: {}", path.display(), describe_io(source)),
            Error::Invalid { path, message } => write!(f, "{}: {}", path.display(), message),
            Error::Usage(m) | Error::Other(m) => f.write_str(m),
            Error::Interrupted => f.write_str("interrupted"),
            Error::Listed {
                path,
                headline,
                details,
            } => {
                if let Some(path) = path {
                    write!(f, "{}: ", path.display())?;
                }
                f.write_str(headline)?;
                for d in details {
                    write!(f, "\n  {d}")?;
                }
                Ok(())
            }
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io { source, .. } => Some(source),
            _ => None,
        }
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
