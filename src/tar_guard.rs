//! A reader that follows the block structure of a tar stream as the `tar` crate reads it, so
//! that hostile framing is refused before the crate acts on it.
//!
//! The crate reads GNU long-name (`L`, `K`) and PAX (`x`) headers whole into memory, however
//! large they claim to be, and it ends quietly at the end of its input, so an archive cut at an
//! entry boundary (or inside an entry's data) reads as a shorter valid one. [`TarGuard`] sits
//! between the input and the crate: it refuses extended headers over [`MAX_EXTENDED_HEADER`]
//! before their data is read, turns an end of input inside a header or an entry's data into an
//! error, and records whether the end-of-archive marker was seen, for callers whose input is not
//! checked by a digest.

use std::io::{self, Read, Seek, SeekFrom};

/// The largest PAX or GNU long-name header accepted (Go's `archive/tar` uses the same bound).
pub const MAX_EXTENDED_HEADER: u64 = 1 << 20;

const BLOCK: usize = 512;

enum State {
    /// Collecting a header block (`filled` bytes so far).
    Header { filled: usize },
    /// Inside an entry's data (`data` bytes left), then its padding (`pad` bytes).
    Data {
        data: u64,
        pad: u64,
        /// An `x` header's records, kept to learn the next entry's `size` record.
        capture: Option<Vec<u8>>,
    },
    /// After the first zero block: whatever follows is passed through.
    Trailer,
}

/// See the module documentation. `R` is the raw tar stream.
pub struct TarGuard<R> {
    inner: R,
    state: State,
    block: [u8; BLOCK],
    /// The `size` record of a pending PAX header (the crate applies it to the next entry).
    pending_pax: Option<Option<u64>>,
    /// Whether PAX `size` records change the framing (the crate's normal mode; not raw mode).
    apply_pax_size: bool,
    end_marker: bool,
}

impl<R: Read> TarGuard<R> {
    /// A guard for a reader used by `tar::Archive` in its normal (non-raw) mode.
    pub fn new(inner: R) -> Self {
        Self::with_pax_size(inner, true)
    }

    /// A guard for a reader used in raw mode, where PAX `size` records do not move the framing
    /// (callers in raw mode must refuse such records themselves).
    pub fn raw(inner: R) -> Self {
        Self::with_pax_size(inner, false)
    }

    fn with_pax_size(inner: R, apply_pax_size: bool) -> Self {
        TarGuard {
            inner,
            state: State::Header { filled: 0 },
            block: [0; BLOCK],
            pending_pax: None,
            apply_pax_size,
            end_marker: false,
        }
    }

    /// Whether a zero block (the end-of-archive marker) was read. GNU tar and Go's reader both
    /// accept an archive that ends after a single zero block, so one is enough here; an archive
    /// with none cannot be told apart from one cut at an entry boundary.
    pub fn saw_end_marker(&self) -> bool {
        self.end_marker
    }

    /// Read whatever follows the end-of-archive marker, up to `limit` bytes, so a decompressor
    /// underneath reaches the end of its stream and checks its trailer (gzip CRC and length,
    /// zstd checksum). Returns the bytes read; more than `limit` is an error.
    pub fn drain(&mut self, limit: u64) -> io::Result<u64> {
        let n = io::copy(
            &mut self.by_ref().take(limit.saturating_add(1)),
            &mut io::sink(),
        )?;
        if n > limit {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("more than {limit} bytes follow the end of the archive"),
            ));
        }
        Ok(n)
    }

    /// Account for `buf` (just read from the input) against the tar framing.
    fn track(&mut self, mut buf: &[u8]) -> io::Result<()> {
        while !buf.is_empty() {
            match &mut self.state {
                State::Trailer => return Ok(()),
                State::Header { filled } => {
                    let n = (BLOCK - *filled).min(buf.len());
                    self.block[*filled..*filled + n].copy_from_slice(&buf[..n]);
                    *filled += n;
                    buf = &buf[n..];
                    if *filled == BLOCK {
                        self.state = self.on_header()?;
                    }
                }
                State::Data { data, pad, capture } => {
                    let n = (*data + *pad).min(buf.len() as u64) as usize;
                    let in_data = (*data).min(n as u64) as usize;
                    if let Some(c) = capture {
                        c.extend_from_slice(&buf[..in_data]);
                    }
                    *data -= in_data as u64;
                    *pad -= (n - in_data) as u64;
                    buf = &buf[n..];
                    self.after_data();
                }
            }
        }
        Ok(())
    }

    /// Move on to the next header once an entry's data and padding are consumed.
    fn after_data(&mut self) {
        if let State::Data {
            data: 0,
            pad: 0,
            capture,
        } = &mut self.state
        {
            if let Some(records) = capture.take() {
                self.pending_pax = Some(pax_size(&records));
            }
            self.state = State::Header { filled: 0 };
        }
    }

    /// Decide what follows a complete header block.
    fn on_header(&mut self) -> io::Result<State> {
        if self.block.iter().all(|b| *b == 0) {
            self.end_marker = true;
            return Ok(State::Trailer);
        }
        let header = tar::Header::from_byte_slice(&self.block);
        let typ = header.entry_type();
        let extension = typ.is_gnu_longname()
            || typ.is_gnu_longlink()
            || typ.is_pax_local_extensions()
            || typ.is_pax_global_extensions();
        let recognized = header.as_ustar().is_some() || header.as_gnu().is_some();
        if typ.is_gnu_sparse() {
            return Err(invalid("sparse entries are not supported".into()));
        }
        let mut size = header
            .entry_size()
            .map_err(|e| invalid(format!("bad size field: {e}")))?;
        let mut capture = None;
        if extension && recognized {
            if size > MAX_EXTENDED_HEADER {
                return Err(invalid(format!(
                    "an extended header (type '{}') of {size} bytes is larger than the {} MiB limit",
                    typ.as_byte().escape_ascii(),
                    MAX_EXTENDED_HEADER >> 20
                )));
            }
            if typ.is_pax_local_extensions() {
                capture = Some(Vec::with_capacity(size as usize));
            }
            if typ.is_pax_global_extensions() {
                // The crate hands a global header to its caller as an entry, which ends the
                // pending local header without applying it.
                self.pending_pax = None;
            }
        } else {
            if let Some(pending) = self.pending_pax.take() {
                if self.apply_pax_size && !extension {
                    size = pending.unwrap_or(size);
                }
            }
        }
        let padded = size
            .checked_next_multiple_of(BLOCK as u64)
            .ok_or_else(|| invalid(format!("entry size {size} is out of range")))?;
        let pad = padded - size;
        let state = State::Data {
            data: size,
            pad,
            capture,
        };
        Ok(state)
    }

    fn at_boundary(&self) -> bool {
        matches!(
            self.state,
            State::Header { filled: 0 }
                | State::Trailer
                | State::Data {
                    data: 0,
                    pad: 0,
                    ..
                }
        )
    }
}

impl<R: Read> Read for TarGuard<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        let n = self.inner.read(buf)?;
        if n == 0 {
            if !self.at_boundary() {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "truncated archive: it ends inside an entry",
                ));
            }
            return Ok(0);
        }
        self.track(&buf[..n])?;
        Ok(n)
    }
}

/// The crate skips unread entry data by seeking forward; only such skips are allowed.
impl<R: Read + Seek> Seek for TarGuard<R> {
    fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
        let SeekFrom::Current(delta) = pos else {
            return Err(invalid("unexpected seek in a tar stream".into()));
        };
        let delta = u64::try_from(delta).map_err(|_| invalid("backward seek".into()))?;
        if delta == 0 {
            return self.inner.seek(pos);
        }
        match &mut self.state {
            // Skipping an extended header's records would lose them; its padding is fine.
            State::Data { data, pad, capture }
                if (capture.is_none() || *data == 0) && delta <= *data + *pad =>
            {
                let in_data = delta.min(*data);
                *data -= in_data;
                *pad -= delta - in_data;
            }
            _ => return Err(invalid("seek across a tar header".into())),
        }
        self.after_data();
        self.inner.seek(pos)
    }
}

/// The first `size` record of a PAX header as the crate reads it (`None` when absent or bad).
fn pax_size(records: &[u8]) -> Option<u64> {
    for ext in tar::PaxExtensions::new(records) {
        let ext = ext.ok()?;
        if ext.key() == Ok("size") {
            return ext.value().ok()?.parse().ok();
        }
    }
    None
}

fn invalid(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(name: &str, typ: tar::EntryType, size: u64) -> tar::Header {
        let mut h = tar::Header::new_ustar();
        h.set_path(name).unwrap();
        h.set_entry_type(typ);
        h.set_size(size);
        h.set_mode(0o644);
        h.set_cksum();
        h
    }

    fn entries(bytes: &[u8]) -> io::Result<(Vec<String>, bool)> {
        let mut guard = TarGuard::new(bytes);
        let mut names = Vec::new();
        {
            let mut ar = tar::Archive::new(&mut guard);
            for e in ar.entries()? {
                let mut e = e?;
                names.push(String::from_utf8_lossy(&e.path_bytes()).into_owned());
                io::copy(&mut e, &mut io::sink())?;
            }
        }
        guard.drain(1 << 20)?;
        Ok((names, guard.saw_end_marker()))
    }

    fn archive(with_trailer: bool) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        b.append(&header("a", tar::EntryType::Regular, 3), &b"abc"[..])
            .unwrap();
        b.append(&header("b", tar::EntryType::Regular, 0), &b""[..])
            .unwrap();
        let mut out = b.into_inner().unwrap();
        if !with_trailer {
            out.truncate(out.len() - 1024);
        }
        out
    }

    #[test]
    fn end_marker_and_truncation() {
        assert_eq!(
            entries(&archive(true)).unwrap(),
            (vec!["a".into(), "b".into()], true)
        );
        assert_eq!(
            entries(&archive(false)).unwrap(),
            (vec!["a".into(), "b".into()], false)
        );
        // Cut inside the first entry's data or padding, or inside a header block.
        let full = archive(true);
        for cut in [514, 600, 1100] {
            assert!(entries(&full[..cut]).is_err(), "cut at {cut}");
        }
    }

    #[test]
    fn huge_extended_headers_are_refused_before_reading() {
        for typ in [tar::EntryType::GNULongName, tar::EntryType::XHeader] {
            let mut bytes = header("././@LongLink", typ, 3 << 30).as_bytes().to_vec();
            bytes.extend_from_slice(&[b'a'; 4096]);
            let e = entries(&bytes).unwrap_err().to_string();
            assert!(e.contains("larger than the 1 MiB limit"), "{e}");
        }
    }

    #[test]
    fn sizes_near_the_integer_limit_are_errors_not_overflows() {
        let records = format!("{} size={}\n", 6 + 20 + 5, u64::MAX);
        let records = format!("{} size={}\n", records.len(), u64::MAX);
        let mut bytes = header(
            "PaxHeaders.0/f",
            tar::EntryType::XHeader,
            records.len() as u64,
        )
        .as_bytes()
        .to_vec();
        bytes.extend_from_slice(records.as_bytes());
        bytes.resize(1024, 0);
        bytes.extend_from_slice(header("f", tar::EntryType::Regular, 0).as_bytes());
        bytes.resize(bytes.len() + 4096, 0);
        let mut guard = TarGuard::new(&bytes[..]);
        assert!(io::copy(&mut guard, &mut io::sink()).is_err());
    }

    #[test]
    fn pax_size_records_keep_the_framing() {
        // A PAX header whose size record (5) differs from the header's size field (0).
        let records = b"10 size=5\n";
        let mut bytes = header(
            "PaxHeaders.0/f",
            tar::EntryType::XHeader,
            records.len() as u64,
        )
        .as_bytes()
        .to_vec();
        bytes.extend_from_slice(records);
        bytes.resize(1024, 0);
        bytes.extend_from_slice(header("f", tar::EntryType::Regular, 0).as_bytes());
        bytes.extend_from_slice(b"hello");
        bytes.resize(bytes.len() + 507 + 1024, 0);
        assert_eq!(entries(&bytes).unwrap(), (vec!["f".into()], true));
        // The same with seeking over unread data, as the outer archive is scanned.
        let mut ar = tar::Archive::new(TarGuard::new(io::Cursor::new(&bytes)));
        let names: Vec<(String, u64)> = ar
            .entries_with_seek()
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                (
                    String::from_utf8_lossy(&e.path_bytes()).into_owned(),
                    e.size(),
                )
            })
            .collect();
        assert_eq!(names, vec![("f".to_string(), 5)]);
    }
}
