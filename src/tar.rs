//! A tar writer that produces exactly the bytes Go's `archive/tar` writer produces (USTAR, PAX fallback).
//!
//! pack builds layers with Go's writer, so reproducing pack's diffIDs needs the same header
//! encoding byte for byte (cnb-format reference §4.3): zero-padded octal numbers followed by one
//! NUL, a checksum of 6 octal digits + NUL + space, USTAR prefix/name splitting for long names,
//! PAX extended headers named `<dir>/PaxHeaders.0/<base>` only when USTAR cannot hold the header,
//! and an end of archive of exactly two zero blocks.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::io::{self, Read, Write};

/// The modification time pack gives every layer entry (see [`crate::cnb::NORMALIZED_SECONDS`]).
pub(crate) const NORMALIZED_MTIME: i64 = crate::cnb::NORMALIZED_SECONDS as i64;

/// The parts of an entry name, with empty and `.` parts dropped (`/a`, `./a`, `a/` and `a//b`
/// are read alike by every extractor); `None` when a part is `..`. Windows layers also split on
/// `\`, which Windows reads as a separator. Every reader of entry names goes through this.
pub(crate) fn name_parts(name: &str, windows: bool) -> Option<Vec<&str>> {
    let mut parts = Vec::new();
    let seps: &[char] = if windows { &['/', '\\'] } else { &['/'] };
    for p in name.split(seps) {
        match p {
            "" | "." => {}
            ".." => return None,
            p => parts.push(p),
        }
    }
    Some(parts)
}

/// Size of a tar block.
const BLOCK: usize = 512;
/// Size of the V7 name and linkname fields.
const NAME_SIZE: usize = 100;
/// Size of the USTAR prefix field.
const PREFIX_SIZE: usize = 155;
/// File data is streamed through a buffer of this size, so memory does not grow with file size.
const COPY_BUF: usize = 128 * 1024;
/// Go refuses PAX headers larger than this (`maxSpecialFileSize`); we do the same.
const MAX_PAX_SIZE: usize = 1 << 20;
/// PAX keys that Go derives from header fields; caller-supplied records with these keys are
/// ignored (as Go's writer does), the header fields decide.
const BASIC_KEYS: &[&str] = &[
    "path", "linkpath", "size", "uid", "gid", "uname", "gname", "mtime", "atime", "ctime",
];

// Field offsets of a USTAR header block.
const F_NAME: (usize, usize) = (0, 100);
const F_MODE: (usize, usize) = (100, 108);
const F_UID: (usize, usize) = (108, 116);
const F_GID: (usize, usize) = (116, 124);
const F_SIZE: (usize, usize) = (124, 136);
const F_MTIME: (usize, usize) = (136, 148);
const F_CHKSUM: (usize, usize) = (148, 156);
const F_TYPE: usize = 156;
const F_LINKNAME: (usize, usize) = (157, 257);
const F_MAGIC: (usize, usize) = (257, 263);
const F_VERSION: (usize, usize) = (263, 265);
const F_DEVMAJOR: (usize, usize) = (329, 337);
const F_DEVMINOR: (usize, usize) = (337, 345);
const F_PREFIX: (usize, usize) = (345, 500);

/// The kinds of entries a layer contains.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum EntryType {
    /// A directory (typeflag `5`).
    Dir,
    /// A regular file (typeflag `0`).
    #[default]
    File,
    /// A symbolic link (typeflag `2`); `linkname` is the target.
    Symlink,
    /// A hard link (typeflag `1`); `linkname` is the earlier entry's name.
    Hardlink,
}

impl EntryType {
    fn typeflag(self) -> u8 {
        match self {
            EntryType::Dir => b'5',
            EntryType::File => b'0',
            EntryType::Symlink => b'2',
            EntryType::Hardlink => b'1',
        }
    }
}

/// One tar entry's metadata. Fields absent here (uname, gname, devices, atime, ctime) are
/// always written empty or zero, as pack's normalized headers have them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Header {
    /// Entry name as written (pack uses absolute names without trailing slash).
    pub name: String,
    /// Entry kind.
    pub typ: EntryType,
    /// Permission bits (`0o7777` at most in practice; must fit 7 octal digits).
    pub mode: u32,
    /// Data size; must be 0 for everything but files.
    pub size: u64,
    /// Symlink target or hardlink source name; empty otherwise.
    pub linkname: String,
    /// Modification time in seconds since the epoch.
    pub mtime: i64,
    /// Owner user id.
    pub uid: u32,
    /// Owner group id.
    pub gid: u32,
    /// Extra PAX records (e.g. `MSWINDOWS.rawsd`). A non-empty map forces the PAX format, as a
    /// non-empty `PAXRecords` does in Go.
    pub pax: BTreeMap<String, String>,
}

impl Header {
    /// A directory header with pack's normalized metadata (mode 0755, 1980 mtime, root owner).
    pub fn dir(name: impl Into<String>) -> Self {
        Header {
            name: name.into(),
            typ: EntryType::Dir,
            mode: 0o755,
            mtime: NORMALIZED_MTIME,
            ..Header::default()
        }
    }

    /// A regular file header with pack's normalized metadata and the given mode and size.
    pub fn file(name: impl Into<String>, mode: u32, size: u64) -> Self {
        Header {
            name: name.into(),
            typ: EntryType::File,
            mode,
            size,
            mtime: NORMALIZED_MTIME,
            ..Header::default()
        }
    }
}

/// Whether Go's writer would encode `header` as PAX (a name, link target or number that USTAR
/// cannot hold, or extra records). pack's Windows layers depend on this (see `layer`).
pub fn needs_pax(header: &Header) -> bool {
    matches!(plan(header), Plan::Pax { .. })
}

/// How one header is encoded: plain USTAR (with an optional prefix split) or PAX records + header.
enum Plan<'a> {
    Ustar { prefix: &'a str, name: &'a str },
    Pax { records: BTreeMap<String, String> },
}

/// Streams tar entries encoded exactly as Go's `archive/tar` writer encodes them.
///
/// After an error the archive is incomplete; callers discard the output.
pub struct TarWriter<W: Write> {
    out: W,
    buf: Vec<u8>,
}

impl<W: Write> TarWriter<W> {
    /// A writer appending to `out`.
    pub fn new(out: W) -> Self {
        TarWriter {
            out,
            buf: Vec::new(),
        }
    }

    /// Write `header`, then exactly `header.size` bytes from `data`, padded to a block.
    ///
    /// Fails if `data` yields fewer or more bytes than `header.size`, or if the header cannot be
    /// encoded (NUL in a name, an invalid PAX key, a mode over 7 octal digits, data on a
    /// non-file entry).
    pub fn append(&mut self, header: &Header, data: &mut dyn Read) -> io::Result<()> {
        self.write_header(header)?;
        if header.typ == EntryType::File {
            self.copy_data(header.size, data)?;
        }
        Ok(())
    }

    /// [`TarWriter::append`] with the data in memory: written as it is, without the copy
    /// through the streaming buffer. `data` must be exactly `header.size` bytes (none for
    /// anything but a file).
    pub fn append_bytes(&mut self, header: &Header, data: &[u8]) -> io::Result<()> {
        let expected = if header.typ == EntryType::File {
            header.size
        } else {
            0
        };
        if data.len() as u64 != expected {
            return Err(match (data.len() as u64) < expected {
                true => io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!(
                        "data ended {} bytes before the {expected} bytes the header announces",
                        expected - data.len() as u64
                    ),
                ),
                false => invalid(format!(
                    "data is longer than the {expected} bytes the header announces"
                )),
            });
        }
        self.write_header(header)?;
        if header.typ == EntryType::File {
            self.out.write_all(data)?;
            self.pad(header.size)?;
        }
        Ok(())
    }

    /// Validate `header` and write its blocks (PAX records first when it needs them).
    fn write_header(&mut self, header: &Header) -> io::Result<()> {
        validate(header)?;
        match plan(header) {
            Plan::Ustar { prefix, name } => {
                let blk = encode_main(header, name, prefix);
                self.out.write_all(&blk)
            }
            Plan::Pax { records } => {
                self.write_pax_header(&header.name, &records)?;
                let name = truncate_field(&to_ascii(&header.name));
                let blk = encode_main(header, &name, "");
                self.out.write_all(&blk)
            }
        }
    }

    /// Write the end-of-archive marker (two zero blocks, no record padding) and return the output.
    pub fn finish(mut self) -> io::Result<W> {
        self.out.write_all(&[0u8; 2 * BLOCK])?;
        self.out.flush()?;
        Ok(self.out)
    }

    /// Return the output without an end-of-archive marker (imgutil's Windows base layer has none).
    pub fn into_inner_without_trailer(self) -> W {
        self.out
    }

    /// The underlying output.
    pub fn get_mut(&mut self) -> &mut W {
        &mut self.out
    }

    /// Write the `x` extended header that precedes a PAX entry (Go's `writeRawFile`).
    fn write_pax_header(
        &mut self,
        real_name: &str,
        records: &BTreeMap<String, String>,
    ) -> io::Result<()> {
        let mut data = String::new();
        for (k, v) in records {
            data.push_str(&pax_record(k, v));
        }
        if data.len() > MAX_PAX_SIZE {
            return Err(invalid(format!(
                "PAX header of '{}' is larger than 1 MiB",
                crate::ui::quote_name(real_name)
            )));
        }
        let (dir, file) = split_dir(real_name);
        let name = path_join(&[dir, "PaxHeaders.0", file]);
        let name = truncate_field(&to_ascii(&name));
        let name = name.trim_end_matches('/');
        let mut blk = [0u8; BLOCK];
        format_string(&mut blk, F_NAME, name.as_bytes());
        format_octal(&mut blk, F_MODE, 0);
        format_octal(&mut blk, F_UID, 0);
        format_octal(&mut blk, F_GID, 0);
        format_octal(&mut blk, F_SIZE, data.len() as u64);
        format_octal(&mut blk, F_MTIME, 0);
        blk[F_TYPE] = b'x';
        // devmajor/devminor stay all NUL here: Go's writeRawFile never formats them.
        set_ustar_magic_and_checksum(&mut blk);
        self.out.write_all(&blk)?;
        self.out.write_all(data.as_bytes())?;
        self.pad(data.len() as u64)
    }

    /// Copy exactly `size` bytes from `data`, then check the reader is exhausted, then pad.
    fn copy_data(&mut self, size: u64, data: &mut dyn Read) -> io::Result<()> {
        if self.buf.is_empty() {
            self.buf = vec![0u8; COPY_BUF];
        }
        let mut left = size;
        while left > 0 {
            let want = left.min(COPY_BUF as u64) as usize;
            let n = read_retrying(data, &mut self.buf[..want])?;
            if n == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("data ended {left} bytes before the {size} bytes the header announces"),
                ));
            }
            self.out.write_all(&self.buf[..n])?;
            left -= n as u64;
        }
        if read_retrying(data, &mut self.buf[..1])? != 0 {
            return Err(invalid(format!(
                "data is longer than the {size} bytes the header announces"
            )));
        }
        self.pad(size)
    }

    /// Zero-pad the data just written to a whole block.
    fn pad(&mut self, size: u64) -> io::Result<()> {
        let rem = (size % BLOCK as u64) as usize;
        if rem != 0 {
            self.out.write_all(&[0u8; BLOCK][..BLOCK - rem])?;
        }
        Ok(())
    }
}

/// `read` that retries on `Interrupted`, as `read_exact` would.
fn read_retrying(r: &mut dyn Read, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        match r.read(buf) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            other => return other,
        }
    }
}

fn invalid(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, message)
}

/// Reject headers Go would refuse (or that we cannot encode faithfully).
fn validate(h: &Header) -> io::Result<()> {
    if h.name.is_empty() {
        return Err(invalid("empty entry name".into()));
    }
    if h.name.contains('\0') || h.linkname.contains('\0') {
        return Err(invalid(format!(
            "entry name or link target of '{}' contains NUL",
            crate::ui::quote_name(&h.name)
        )));
    }
    if !fits_octal(F_MODE, h.mode as i64) {
        return Err(invalid(format!(
            "mode {:o} of '{}' does not fit the header",
            h.mode,
            crate::ui::quote_name(&h.name)
        )));
    }
    if h.typ != EntryType::File && h.size != 0 {
        return Err(invalid(format!(
            "non-file entry '{}' has size {}",
            crate::ui::quote_name(&h.name),
            h.size
        )));
    }
    for k in h.pax.keys() {
        if k.is_empty() || k.contains('=') || k.contains('\0') {
            return Err(invalid(format!(
                "invalid PAX key '{}' on '{}'",
                crate::ui::quote_name(k),
                crate::ui::quote_name(&h.name)
            )));
        }
    }
    Ok(())
}

/// Decide the encoding as Go's `Header.allowedFormats` does: USTAR when every field fits, PAX
/// (with records for exactly the fields that need them) otherwise.
fn plan(h: &Header) -> Plan<'_> {
    let mut records = BTreeMap::new();
    let mut ustar_ok = h.pax.is_empty();
    let mut split = None;
    // Name: a long ASCII name may still fit USTAR through the prefix field. Go records `path`
    // whenever the name is long or non-ASCII, even if the split would have worked, because that
    // record is used when something else forces PAX.
    if !is_ascii(&h.name) || h.name.len() > NAME_SIZE {
        split = split_ustar_path(&h.name);
        if split.is_none() {
            ustar_ok = false;
        }
        records.insert("path".to_string(), h.name.clone());
    }
    if !is_ascii(&h.linkname) || h.linkname.len() > NAME_SIZE {
        ustar_ok = false;
        records.insert("linkpath".to_string(), h.linkname.clone());
    }
    for (key, value, field) in [("uid", h.uid as i64, F_UID), ("gid", h.gid as i64, F_GID)] {
        if !fits_octal(field, value) {
            ustar_ok = false;
            records.insert(key.to_string(), value.to_string());
        }
    }
    if h.size > i64::MAX as u64 || !fits_octal(F_SIZE, h.size as i64) {
        ustar_ok = false;
        records.insert("size".to_string(), h.size.to_string());
    }
    if !fits_octal(F_MTIME, h.mtime) {
        ustar_ok = false;
        records.insert("mtime".to_string(), h.mtime.to_string());
    }
    if ustar_ok {
        let (prefix, name) = split.unwrap_or(("", h.name.as_str()));
        return Plan::Ustar { prefix, name };
    }
    for (k, v) in &h.pax {
        if !BASIC_KEYS.contains(&k.as_str()) {
            records.entry(k.clone()).or_insert_with(|| v.clone());
        }
    }
    Plan::Pax { records }
}

/// Encode the main header block (Go's `templateV7Plus` + USTAR magic + checksum). Numbers that do
/// not fit are written as zero, as Go does when a PAX record carries the real value.
fn encode_main(h: &Header, name: &str, prefix: &str) -> [u8; BLOCK] {
    let mut blk = [0u8; BLOCK];
    format_string(&mut blk, F_NAME, name.as_bytes());
    format_string(&mut blk, F_LINKNAME, to_ascii(&h.linkname).as_bytes());
    format_octal(&mut blk, F_MODE, h.mode as u64);
    format_octal(&mut blk, F_UID, h.uid as u64);
    format_octal(&mut blk, F_GID, h.gid as u64);
    format_octal(&mut blk, F_SIZE, h.size);
    format_octal(
        &mut blk,
        F_MTIME,
        if h.mtime < 0 { 0 } else { h.mtime as u64 },
    );
    format_octal(&mut blk, F_DEVMAJOR, 0);
    format_octal(&mut blk, F_DEVMINOR, 0);
    format_string(&mut blk, F_PREFIX, prefix.as_bytes());
    blk[F_TYPE] = h.typ.typeflag();
    set_ustar_magic_and_checksum(&mut blk);
    blk
}

/// Magic `ustar\0`, version `00`, then the checksum: 6 octal digits, NUL, space (Go's
/// `block.setFormat`), computed with the checksum field counted as spaces.
fn set_ustar_magic_and_checksum(blk: &mut [u8; BLOCK]) {
    blk[F_MAGIC.0..F_MAGIC.1].copy_from_slice(b"ustar\0");
    blk[F_VERSION.0..F_VERSION.1].copy_from_slice(b"00");
    // Every byte, with the checksum field's eight counted as spaces (one plain sum, which the
    // compiler vectorizes, instead of a test per byte).
    let all: u64 = blk.iter().map(|&b| b as u64).sum();
    let field: u64 = blk[F_CHKSUM.0..F_CHKSUM.1].iter().map(|&b| b as u64).sum();
    let sum = all - field + (F_CHKSUM.1 - F_CHKSUM.0) as u64 * b' ' as u64;
    format_octal(blk, (F_CHKSUM.0, F_CHKSUM.1 - 1), sum);
    blk[F_CHKSUM.1 - 1] = b' ';
}

/// Whether `x` fits the field as octal digits with room for the terminating NUL.
fn fits_octal(field: (usize, usize), x: i64) -> bool {
    let digits = (field.1 - field.0 - 1) as u32;
    x >= 0 && (x as u128) < (1u128 << (3 * digits))
}

/// Zero-padded octal followed by one NUL; zero when the value does not fit (Go's `formatOctal`).
fn format_octal(blk: &mut [u8], field: (usize, usize), x: u64) {
    let width = field.1 - field.0 - 1;
    let mut x = if fits_octal(field, x.min(i64::MAX as u64) as i64) {
        x
    } else {
        0
    };
    // The digits, zero-padded to the width, then the NUL: what `format!("{x:0width$o}")`
    // and `format_string` write for a value that fits, without building a string per field.
    let digits = &mut blk[field.0..field.0 + width];
    for d in digits.iter_mut().rev() {
        *d = b'0' + (x & 7) as u8;
        x >>= 3;
    }
    blk[field.0 + width] = 0;
}

/// Copy `s` into the field, NUL-terminated when shorter; a string cut at the field end loses its
/// trailing slashes there (Go's `formatString`, for readers that mistake such names for dirs).
fn format_string(blk: &mut [u8], field: (usize, usize), s: &[u8]) {
    let b = &mut blk[field.0..field.1];
    let n = s.len().min(b.len());
    b[..n].copy_from_slice(&s[..n]);
    if s.len() < b.len() {
        b[s.len()] = 0;
    }
    if s.len() > b.len() && b[b.len() - 1] == b'/' {
        let kept = s[..b.len()]
            .iter()
            .rposition(|&c| c != b'/')
            .map_or(0, |i| i + 1);
        b[kept] = 0;
    }
}

/// Go's `splitUSTARPath`: split a long ASCII name at a `/` so the prefix is ≤155 and the name
/// ≤100 bytes.
fn split_ustar_path(name: &str) -> Option<(&str, &str)> {
    let bytes = name.as_bytes();
    let mut length = bytes.len();
    if length <= NAME_SIZE || !is_ascii(name) {
        return None;
    } else if length > PREFIX_SIZE + 1 {
        length = PREFIX_SIZE + 1;
    } else if bytes[length - 1] == b'/' {
        length -= 1;
    }
    let i = bytes[..length].iter().rposition(|&c| c == b'/')?;
    let nlen = bytes.len() - i - 1;
    if i == 0 || nlen > NAME_SIZE || nlen == 0 || i > PREFIX_SIZE {
        return None;
    }
    Some((&name[..i], &name[i + 1..]))
}

fn is_ascii(s: &str) -> bool {
    s.is_ascii()
}

/// Go's `toASCII`: drop every non-ASCII character (and NUL); most names have none to drop.
fn to_ascii(s: &str) -> Cow<'_, str> {
    if s.bytes().all(|b| b.is_ascii() && b != 0) {
        return Cow::Borrowed(s);
    }
    Cow::Owned(s.chars().filter(|&c| c.is_ascii() && c != '\0').collect())
}

/// Cut to the 100-byte name field (the string is ASCII, so any cut is a char boundary).
fn truncate_field(s: &str) -> String {
    s[..s.len().min(NAME_SIZE)].to_string()
}

/// One PAX record, `"%d key=value\n"`, where the length counts its own digits.
fn pax_record(k: &str, v: &str) -> String {
    let body = k.len() + v.len() + 3; // ' ', '=', '\n'
    let mut size = body + body.to_string().len();
    if body + size.to_string().len() != size {
        size = body + size.to_string().len();
    }
    format!("{size} {k}={v}\n")
}

/// Go's `path.Split`: everything up to and including the last `/`, and the rest.
fn split_dir(p: &str) -> (&str, &str) {
    match p.rfind('/') {
        Some(i) => (&p[..=i], &p[i + 1..]),
        None => ("", p),
    }
}

/// Go's `path.Join`: join the non-empty elements with `/` and clean the result.
fn path_join(elems: &[&str]) -> String {
    let joined = elems
        .iter()
        .filter(|e| !e.is_empty())
        .copied()
        .collect::<Vec<_>>()
        .join("/");
    if joined.is_empty() {
        return String::new();
    }
    path_clean(&joined)
}

/// Go's `path.Clean`: lexical normalization of `.`, `..` and repeated slashes.
pub(crate) fn path_clean(p: &str) -> String {
    if is_clean(p) {
        return p.to_string();
    }
    clean_lexically(p)
}

/// The whole of [`path_clean`], for names that are not clean already.
fn clean_lexically(p: &str) -> String {
    if p.is_empty() {
        return ".".to_string();
    }
    let rooted = p.starts_with('/');
    let mut out: Vec<&str> = Vec::new();
    for part in p.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                if out.last().is_some_and(|l| *l != "..") {
                    out.pop();
                } else if !rooted {
                    out.push("..");
                }
            }
            other => out.push(other),
        }
    }
    let body = out.join("/");
    match (rooted, body.is_empty()) {
        (true, _) => format!("/{body}"),
        (false, true) => ".".to_string(),
        (false, false) => body,
    }
}

/// [`path_clean`] of a name built just now, kept as it is when it is clean already (no copy).
pub(crate) fn into_clean(p: String) -> String {
    if is_clean(&p) {
        return p;
    }
    clean_lexically(&p)
}

/// Whether [`path_clean`] would return `p` unchanged: `/`, `.`, or parts that are neither
/// empty, `.` nor `..` (a relative path with `..` takes the long way, which keeps it as Go does).
fn is_clean(p: &str) -> bool {
    if p == "/" || p == "." {
        return true;
    }
    let body = p.strip_prefix('/').unwrap_or(p);
    !body.is_empty()
        && body
            .split('/')
            .all(|part| !part.is_empty() && part != "." && part != "..")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The octal fields are what Go's `formatOctal` writes: `%0*o` of the value, then a NUL.
    #[test]
    fn octal_fields_are_zero_padded_digits_and_a_nul() {
        let mut values = vec![
            0u64,
            1,
            7,
            8,
            0o644,
            0o7777,
            0o7777777,
            0o10000000,
            u64::MAX,
        ];
        values.extend((0..64).map(|bit| 1u64 << bit));
        values.extend((0..64).map(|bit| (1u64 << bit) - 1));
        for field in [F_MODE, F_SIZE, F_MTIME, (F_CHKSUM.0, F_CHKSUM.1 - 1)] {
            let width = field.1 - field.0 - 1;
            for &x in &values {
                let mut blk = [0xAAu8; BLOCK];
                format_octal(&mut blk, field, x);
                let kept = if fits_octal(field, x.min(i64::MAX as u64) as i64) {
                    x
                } else {
                    0
                };
                let mut want = format!("{kept:0width$o}").into_bytes();
                want.push(0);
                assert_eq!(&blk[field.0..field.1], &want[..], "{x:o} in {field:?}");
                assert!(blk[..field.0]
                    .iter()
                    .chain(&blk[field.1..])
                    .all(|&b| b == 0xAA));
            }
        }
    }

    /// Data in memory is written as streamed data is, and a length that disagrees with the
    /// header is refused the same way.
    #[test]
    fn in_memory_data_is_written_like_streamed_data() {
        let long = format!("/x/{}/f", "n".repeat(150));
        let entries = [
            (Header::file("/a/b", 0o644, 5), b"hello".to_vec()),
            (Header::file(long, 0o755, 700), vec![7u8; 700]),
            (Header::dir("/a"), Vec::new()),
            (Header::file("/empty", 0o644, 0), Vec::new()),
        ];
        let mut from_bytes = TarWriter::new(Vec::new());
        for (h, data) in &entries {
            from_bytes.append_bytes(h, data).unwrap();
        }
        assert_eq!(from_bytes.finish().unwrap(), write(&entries));

        let mut tw = TarWriter::new(Vec::new());
        let short = tw
            .append_bytes(&Header::file("/a", 0o644, 4), b"abc")
            .unwrap_err();
        assert_eq!(short.kind(), io::ErrorKind::UnexpectedEof);
        let long = tw
            .append_bytes(&Header::file("/a", 0o644, 2), b"abc")
            .unwrap_err();
        assert_eq!(long.kind(), io::ErrorKind::InvalidInput);
        let dir = tw.append_bytes(&Header::dir("/d"), b"x").unwrap_err();
        assert_eq!(dir.kind(), io::ErrorKind::InvalidInput);
        assert!(
            tw.finish().unwrap().iter().all(|&b| b == 0),
            "nothing but the end marker"
        );
    }

    /// The shortcut for names that are clean already gives what the full cleaning gives.
    #[test]
    fn clean_names_take_the_shortcut_to_the_same_result() {
        let mut names: Vec<String> = [
            "/",
            ".",
            "a",
            "/a",
            "/a/b",
            "a/b/c",
            "/cnb/buildpacks/x/1.0.0/bin/build",
            "a/",
            "/a/",
            "//a",
            "a//b",
            "./a",
            "a/.",
            "a/./b",
            "../a",
            "a/..",
            "/..",
            "..",
            "",
            "...",
            "a/.../b",
            "/.a/b.",
            "/a/b/../c",
            "//",
            "/./",
            "a/b/",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        // Every name of up to five characters from `a`, `.` and `/`.
        let mut frontier = vec![String::new()];
        for _ in 0..5 {
            frontier = frontier
                .iter()
                .flat_map(|p| ["a", ".", "/"].map(|c| format!("{p}{c}")))
                .collect();
            names.extend(frontier.iter().cloned());
        }
        for p in &names {
            assert_eq!(path_clean(p), clean_lexically(p), "{p:?}");
            assert_eq!(into_clean(p.clone()), clean_lexically(p), "{p:?}");
        }
        assert!(is_clean("/cnb/buildpacks/x/1.0.0/bin/build"));
    }

    fn write(headers: &[(Header, Vec<u8>)]) -> Vec<u8> {
        let mut tw = TarWriter::new(Vec::new());
        for (h, data) in headers {
            tw.append(h, &mut &data[..]).unwrap();
        }
        tw.finish().unwrap()
    }

    /// Read back with the `tar` crate: (path, linkname, type byte, mode, size, data).
    fn read_back(bytes: &[u8]) -> Vec<(String, String, u8, u32, u64, Vec<u8>)> {
        let mut ar = ::tar::Archive::new(bytes);
        let mut out = Vec::new();
        for e in ar.entries().unwrap() {
            let mut e = e.unwrap();
            let path = String::from_utf8(e.path_bytes().into_owned()).unwrap();
            let link = e
                .link_name_bytes()
                .map(|b| String::from_utf8(b.into_owned()).unwrap())
                .unwrap_or_default();
            let h = e.header();
            let (t, mode, size) = (h.entry_type().as_byte(), h.mode().unwrap(), e.size());
            let mut data = Vec::new();
            e.read_to_end(&mut data).unwrap();
            out.push((path, link, t, mode, size, data));
        }
        out
    }

    #[test]
    fn octal_and_checksum_fields_match_go() {
        let bytes = write(&[(Header::file("/a/b", 0o644, 5), b"hello".to_vec())]);
        assert_eq!(bytes.len(), 512 * 4);
        let h = &bytes[..512];
        assert_eq!(&h[100..108], b"0000644\0");
        assert_eq!(&h[108..116], b"0000000\0");
        assert_eq!(&h[124..136], b"00000000005\0");
        assert_eq!(&h[136..148], b"02263523001\0");
        assert_eq!(h[154], 0);
        assert_eq!(h[155], b' ');
        assert!(h[148..154].iter().all(|c| (b'0'..=b'7').contains(c)));
        assert_eq!(&h[257..265], b"ustar\x0000");
        assert!(h[265..329].iter().all(|&c| c == 0), "uname/gname empty");
        assert_eq!(&h[329..345], b"0000000\x000000000\0");
        assert_eq!(&bytes[512..517], b"hello");
        assert!(bytes[517..].iter().all(|&c| c == 0));
    }

    #[test]
    fn long_name_uses_prefix_split() {
        let name = format!("/cnb/buildpacks/{}/{}", "d".repeat(80), "f".repeat(90));
        let bytes = write(&[(Header::file(name.clone(), 0o644, 0), vec![])]);
        assert_eq!(&bytes[0..90], "f".repeat(90).as_bytes());
        assert_eq!(
            &bytes[345..345 + name.len() - 91],
            &name.as_bytes()[..name.len() - 91]
        );
        assert_eq!(bytes[156], b'0');
        assert_eq!(read_back(&bytes)[0].0, name);
    }

    #[test]
    fn unsplittable_name_uses_pax() {
        let name = format!("/x/{}", "n".repeat(120));
        let bytes = write(&[(Header::file(name.clone(), 0o755, 3), b"abc".to_vec())]);
        assert_eq!(bytes[156], b'x');
        let xname = format!("/x/PaxHeaders.0/{}", "n".repeat(120));
        assert_eq!(&bytes[..100], &xname.as_bytes()[..100]);
        assert_eq!(
            &bytes[329..345],
            &[0u8; 16],
            "devmajor/devminor all NUL in the x header"
        );
        let rec = pax_record("path", &name);
        assert_eq!(&bytes[512..512 + rec.len()], rec.as_bytes());
        // The main header carries the name cut to 100 bytes and no prefix.
        assert_eq!(&bytes[1024..1124], &name.as_bytes()[..100]);
        assert!(bytes[1024 + 345..1024 + 500].iter().all(|&c| c == 0));
        let back = read_back(&bytes);
        assert_eq!(
            (back[0].0.as_str(), back[0].3, back[0].5.as_slice()),
            (name.as_str(), 0o755, &b"abc"[..])
        );
    }

    #[test]
    fn non_ascii_name_and_long_symlink_target() {
        let target = format!("../{}", "t/".repeat(70));
        let mut link = Header::dir("/bp/Übersicht");
        link.typ = EntryType::Symlink;
        link.linkname = target.clone();
        let bytes = write(&[(Header::dir("/bp/dïr"), vec![]), (link, vec![])]);
        let back = read_back(&bytes);
        assert_eq!(back[0].0, "/bp/dïr");
        assert_eq!(back[0].2, b'5');
        assert_eq!(
            (back[1].0.as_str(), back[1].1.as_str(), back[1].2),
            ("/bp/Übersicht", target.as_str(), b'2')
        );
        // The non-ASCII characters are dropped from the header's own name field.
        assert_eq!(&bytes[..13], b"/bp/PaxHeader");
    }

    #[test]
    fn hardlink_and_empty_dir_round_trip() {
        let mut hl = Header::file("/bp/b", 0o644, 0);
        hl.typ = EntryType::Hardlink;
        hl.linkname = "/bp/a".into();
        let bytes = write(&[
            (Header::dir("/bp/empty"), vec![]),
            (Header::file("/bp/a", 0o644, 2), b"hi".to_vec()),
            (hl, vec![]),
        ]);
        let back = read_back(&bytes);
        assert_eq!(back.len(), 3);
        assert_eq!(
            (back[0].0.as_str(), back[0].2, back[0].3),
            ("/bp/empty", b'5', 0o755)
        );
        assert_eq!(
            (back[2].0.as_str(), back[2].1.as_str(), back[2].2, back[2].4),
            ("/bp/b", "/bp/a", b'1', 0)
        );
    }

    #[test]
    fn pax_records_are_sorted_and_sized() {
        assert_eq!(pax_record("path", "a"), "9 path=a\n");
        // 92 is the length pack's Windows layers show for the rawsd record.
        let v = "AQAAgBQAAAAkAAAAAAAAAAAAAAABAgAAAAAABSAAAAAgAgAAAQIAAAAAAAUgAAAAIAIAAA==";
        assert!(pax_record("MSWINDOWS.rawsd", v).starts_with("92 "));
        // Record lengths that cross a digit boundary.
        for n in 0..300 {
            let r = pax_record("k", &"v".repeat(n));
            let (len, _) = r.split_once(' ').unwrap();
            assert_eq!(len.parse::<usize>().unwrap(), r.len());
        }
        let mut h = Header::file("f", 0o644, 0);
        h.pax.insert("zz".into(), "1".into());
        h.pax.insert("aa".into(), "2".into());
        h.pax.insert("path".into(), "ignored".into());
        let bytes = write(&[(h, vec![])]);
        assert_eq!(&bytes[..15], b"PaxHeaders.0/f\0");
        assert_eq!(&bytes[512..512 + 14], b"7 aa=2\n7 zz=1\n");
    }

    #[test]
    fn huge_sizes_and_ids_use_pax() {
        let h = Header {
            name: "f".into(),
            uid: 1 << 22,
            size: 0,
            ..Header::file("f", 0o644, 0)
        };
        let bytes = write(&[(h, vec![])]);
        assert_eq!(&bytes[512..512 + 15], b"15 uid=4194304\n");
        match plan(&Header::file("big", 0o644, 8 << 30)) {
            Plan::Pax { records } => {
                assert_eq!(records.get("size").map(String::as_str), Some("8589934592"))
            }
            Plan::Ustar { .. } => panic!("8 GiB must need PAX"),
        }
        assert!(matches!(
            plan(&Header::file("big", 0o644, (8 << 30) - 1)),
            Plan::Ustar { .. }
        ));
    }

    #[test]
    fn short_or_long_data_is_an_error() {
        let mut tw = TarWriter::new(Vec::new());
        assert!(tw
            .append(&Header::file("f", 0o644, 4), &mut &b"abc"[..])
            .is_err());
        let mut tw = TarWriter::new(Vec::new());
        assert!(tw
            .append(&Header::file("f", 0o644, 2), &mut &b"abc"[..])
            .is_err());
    }

    #[test]
    fn go_path_helpers() {
        assert_eq!(
            path_join(&["/cnb/", "PaxHeaders.0", "x"]),
            "/cnb/PaxHeaders.0/x"
        );
        assert_eq!(
            path_join(&["", "PaxHeaders.0", "Files"]),
            "PaxHeaders.0/Files"
        );
        assert_eq!(path_clean("./a//b/../c/"), "a/c");
        assert_eq!(path_clean("/.."), "/");
        assert_eq!(path_clean("../a"), "../a");
        assert_eq!(
            split_ustar_path(&format!("{}/{}", "p".repeat(155), "n".repeat(100)))
                .unwrap()
                .0
                .len(),
            155
        );
        assert!(split_ustar_path(&format!("{}/{}", "p".repeat(156), "n".repeat(10))).is_none());
    }
}
