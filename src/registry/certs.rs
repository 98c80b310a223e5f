//! Per-registry CA certificates, as docker and podman read them: `*.crt` files in
//! `certs.d/HOST[:PORT]/` under `/etc/containers`, `$HOME/.config/containers` and
//! `/etc/docker`. They are trusted for that registry only, next to the system's roots.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// The most `*.crt` files read from one registry's directory.
pub const MAX_CERT_FILES: usize = 64;
/// The largest certificate file read.
pub const MAX_CERT_FILE: u64 = 1 << 20;

/// The `certs.d` directories consulted, in order: `/etc/containers/certs.d`,
/// `$HOME/.config/containers/certs.d`, `/etc/docker/certs.d`.
pub fn default_certs_d() -> Vec<PathBuf> {
    let mut out = vec![PathBuf::from("/etc/containers/certs.d")];
    if let Some(home) = std::env::var_os("HOME").filter(|h| !h.is_empty()) {
        out.push(PathBuf::from(home).join(".config/containers/certs.d"));
    }
    out.push(PathBuf::from("/etc/docker/certs.d"));
    out
}

/// One certificate file found for a registry.
pub struct CertFile {
    /// Where it was read.
    pub path: PathBuf,
    /// Its PEM content.
    pub pem: Vec<u8>,
}

/// The `*.crt` files for `registry` (`HOST[:PORT]` as written in the reference) under each of
/// `bases`, sorted by name within each directory. Missing directories are skipped.
pub fn registry_certs(bases: &[PathBuf], registry: &str) -> Result<Vec<CertFile>> {
    // The registry name becomes one path component: nothing that could leave the base.
    if registry.is_empty()
        || registry == "."
        || registry == ".."
        || registry.contains(['/', '\\', '\0'])
    {
        return Ok(Vec::new());
    }
    let mut out = Vec::new();
    for base in bases {
        let dir = base.join(registry);
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory
                ) =>
            {
                continue
            }
            Err(e) => return Err(Error::io(&dir, e)),
        };
        let mut names = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| Error::io(&dir, e))?;
            let name = entry.file_name();
            if Path::new(&name).extension().is_some_and(|x| x == "crt") {
                names.push(name);
                if names.len() > MAX_CERT_FILES {
                    return Err(Error::invalid(
                        &dir,
                        format!("more than {MAX_CERT_FILES} certificate files"),
                    ));
                }
            }
        }
        names.sort();
        for name in names {
            let path = dir.join(&name);
            out.push(CertFile {
                pem: read_cert_file(&path)?,
                path,
            });
            if out.len() > MAX_CERT_FILES {
                return Err(Error::invalid(
                    &dir,
                    format!("more than {MAX_CERT_FILES} certificate files in all"),
                ));
            }
        }
    }
    Ok(out)
}

/// A certificate file's bytes: a regular file (a link to one is fine, this is the
/// administrator's configuration), opened without blocking, at most [`MAX_CERT_FILE`].
pub fn read_cert_file(path: &Path) -> Result<Vec<u8>> {
    crate::input::read_bytes(path, MAX_CERT_FILE)
}
