//! The build-once layer cache: a layer is known by what decides its bytes, built (or copied) into
//! one output once and copied from there into every other output that needs it.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::rc::Rc;

use crate::compress;
use crate::digest::{Digest, HashingReader};
use crate::error::{Error, Result};
use crate::events::{Events, EventsExt};
use crate::layer;
use crate::layout::LayoutWriter;
use crate::oci::{self, Descriptor};

/// Identity of a layer's inputs: the same key means the same bytes, so eight targets that need
/// the same layer cost one build.
#[derive(Clone, PartialEq, Eq, Hash)]
pub(crate) enum LayerKey {
    /// The Windows base layer (`Files/`, `Hives/`).
    WindowsBase,
    /// One layer holding the layers these keys stand for (`--flatten`).
    Flattened(Vec<LayerKey>),
    /// A module folder walked into a layer, with the descriptor file placed into it.
    Tree {
        root: PathBuf,
        windows: bool,
        overlay: Option<PathBuf>,
    },
    /// A layer taken from an existing package: its uncompressed bytes are its diffID.
    Import { diff_id: Digest },
    /// A layer whose bytes the caller's key decides (a builder's directories, files, lifecycle).
    Content(String),
}

/// A layer stored in one of the outputs.
#[derive(Clone)]
pub(crate) struct BuiltLayer {
    /// The stored (compressed) blob.
    pub(crate) descriptor: Descriptor,
    /// Digest of the uncompressed tar.
    pub(crate) diff_id: Digest,
    /// Unknown for a layer copied unchanged from a dependency.
    pub(crate) uncompressed_size: Option<u64>,
    /// Index of the output that holds its bytes.
    pub(crate) home: usize,
    /// The executables found while building it (none for imported layers).
    pub(crate) executables: Rc<LayerExecutables>,
}

/// The ELF/PE executables a built layer holds: the recorded ones, and how many there were.
#[derive(Default)]
pub(crate) struct LayerExecutables {
    pub(crate) recorded: Vec<layer::Executable>,
    pub(crate) seen: usize,
}

impl LayerExecutables {
    /// What `builder` has found so far.
    pub(crate) fn of<W: Write>(builder: &layer::LayerBuilder<W>) -> LayerExecutables {
        let (recorded, seen) = builder.executables();
        LayerExecutables {
            recorded: recorded.to_vec(),
            seen,
        }
    }
}

/// The layers stored so far, by what decides their bytes.
#[derive(Default)]
pub(crate) struct LayerCache {
    layers: HashMap<LayerKey, BuiltLayer>,
}

impl LayerCache {
    /// The layer stored before under `key`, copied into output `out` first when it lives in
    /// another one; `None` when it has not been stored yet.
    pub(crate) fn reuse(
        &self,
        key: &LayerKey,
        writers: &mut [LayoutWriter],
        out: usize,
        what: &str,
        events: &dyn Events,
    ) -> Result<Option<BuiltLayer>> {
        let Some(built) = self.layers.get(key).cloned() else {
            return Ok(None);
        };
        if built.home != out && !writers[out].contains(&built.descriptor.digest) {
            let mut reader = writers[built.home].open_blob(&built.descriptor.digest)?;
            let home_path = writers[built.home].dest().to_path_buf();
            writers[out].copy_blob(&built.descriptor, &mut reader, &home_path)?;
        }
        events.detail(
            "Reusing",
            &format!("layer {what} {}", built.descriptor.digest.short()),
        );
        Ok(Some(built))
    }

    /// Remember a layer just stored.
    pub(crate) fn insert(&mut self, key: LayerKey, built: BuiltLayer) {
        self.layers.insert(key, built);
    }
}

/// How a stored layer is compressed, from its media type; an error naming `origin` for a
/// media type that is not a layer cnbpkg can read.
pub(crate) fn layer_encoding(blob: &Descriptor, origin: &Path) -> Result<oci::LayerEncoding> {
    oci::layer_compression_of(&blob.media_type).ok_or_else(|| {
        Error::invalid(
            origin,
            format!(
                "layer {} has unsupported media type '{}'",
                blob.digest, blob.media_type
            ),
        )
    })
}

/// Read a layer blob of an existing package from `stream` (its stored bytes) and check all of
/// it: `use_tar` reads the decompressed tar (and checks its entries), then the rest of the
/// decompressed stream is read to its end (so a gzip CRC or length trailer is checked), its
/// SHA-256 must be the diffID, and the stored bytes must match the blob's digest and size.
/// Returns what `use_tar` returned and the uncompressed size.
pub(crate) fn read_layer_blob<T>(
    stream: impl Read,
    blob: &Descriptor,
    diff_id: Digest,
    origin: &Path,
    use_tar: impl FnOnce(&mut dyn Read) -> Result<T>,
) -> Result<(T, u64)> {
    let bad = |e: std::io::Error| Error::invalid(origin, format!("layer {}: {e}", blob.digest));
    let encoding = layer_encoding(blob, origin)?;
    let mut stored = HashingReader::new(stream);
    let (value, unpacked, size) = {
        let mut decoded = HashingReader::new(compress::decoder(encoding, &mut stored));
        let value = use_tar(&mut decoded)?;
        std::io::copy(&mut decoded, &mut std::io::sink()).map_err(bad)?;
        let (_, unpacked, size) = decoded.finish();
        (value, unpacked, size)
    };
    // Whatever follows the compressed stream is part of the blob too.
    std::io::copy(&mut stored, &mut std::io::sink()).map_err(bad)?;
    let (_, digest, stored_size) = stored.finish();
    if digest != blob.digest || stored_size != blob.size {
        return Err(Error::invalid(
            origin,
            format!(
                "layer {} has digest {digest} and size {stored_size}",
                blob.digest
            ),
        ));
    }
    if unpacked != diff_id {
        return Err(Error::invalid(
            origin,
            format!(
                "layer {} decompresses to {unpacked}, not its diffID {diff_id}",
                blob.digest
            ),
        ));
    }
    Ok((value, size))
}

/// A reader that copies everything read through it to a writer (one pass over a blob that is
/// both stored and inspected).
pub(crate) struct TeeReader<'a, R> {
    pub(crate) inner: R,
    pub(crate) copy: &'a mut dyn Write,
}

impl<R: Read> Read for TeeReader<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.copy.write_all(&buf[..n])?;
        Ok(n)
    }
}
