//! Tar archives built by hand, header field by header field: the `tar` crate's setters refuse
//! the names, links, types and sizes hostile archives need, so this one builder writes them
//! raw. A field left unset stays zero bytes, exactly as in a fresh header.

use std::io::Write;

use tar::{EntryType, Header};

/// One entry, written as given and never checked.
#[derive(Clone, Debug)]
pub struct Entry {
    /// Name bytes (at most 100), written into the header's name field as they are.
    pub name: Vec<u8>,
    /// The type byte.
    pub kind: EntryType,
    /// Link target bytes (at most 100).
    pub link: Vec<u8>,
    /// The content that follows the header (padded to a whole block).
    pub data: Vec<u8>,
    /// Permission bits.
    pub mode: u32,
    /// The size the header claims; `None` is the data's length. A larger claim makes a short
    /// entry.
    pub claimed_size: Option<u64>,
    /// Modification time, when set.
    pub mtime: Option<u64>,
    /// Owner and group IDs, when set.
    pub ids: Option<(u64, u64)>,
    /// Device major and minor numbers, when set.
    pub device: Option<(u32, u32)>,
    /// A GNU header instead of a ustar one.
    pub gnu: bool,
}

impl Entry {
    /// An entry of any type with any name bytes, mode 0644, ustar.
    pub fn raw(kind: EntryType, name: impl AsRef<[u8]>, data: impl Into<Vec<u8>>) -> Entry {
        Entry {
            name: name.as_ref().to_vec(),
            kind,
            link: Vec::new(),
            data: data.into(),
            mode: 0o644,
            claimed_size: None,
            mtime: None,
            ids: None,
            device: None,
            gnu: false,
        }
    }

    /// A regular file, mode 0644.
    pub fn file(name: impl AsRef<[u8]>, data: impl Into<Vec<u8>>) -> Entry {
        Entry::raw(EntryType::Regular, name, data)
    }

    /// A directory, mode 0755.
    pub fn dir(name: impl AsRef<[u8]>) -> Entry {
        Entry::raw(EntryType::Directory, name, Vec::new()).mode(0o755)
    }

    /// A symbolic or hard link (`kind`) to `target`, mode 0644.
    pub fn link(name: impl AsRef<[u8]>, kind: EntryType, target: impl AsRef<[u8]>) -> Entry {
        let mut e = Entry::raw(kind, name, Vec::new());
        e.link = target.as_ref().to_vec();
        e
    }

    /// A GNU long-name entry (`././@LongLink`) carrying `name` for the entry after it.
    pub fn gnu_long_name(name: &[u8]) -> Entry {
        let mut data = name.to_vec();
        data.push(0);
        Entry::raw(EntryType::GNULongName, "././@LongLink", data).gnu()
    }

    /// A PAX extended header named `name` with `records` (`key=value`, lengths computed).
    pub fn pax(name: impl AsRef<[u8]>, records: &[(&str, &[u8])]) -> Entry {
        let mut data = Vec::new();
        for (key, value) in records {
            // The length counts itself: grow it until the record's length is stable.
            let body = key.len() + value.len() + 3;
            let mut len = body + 1;
            while len != body + len.to_string().len() {
                len = body + len.to_string().len();
            }
            write!(data, "{len} {key}=").unwrap();
            data.extend_from_slice(value);
            data.push(b'\n');
        }
        Entry::raw(EntryType::XHeader, name, data)
    }

    /// With permission bits `mode`.
    pub fn mode(mut self, mode: u32) -> Entry {
        self.mode = mode;
        self
    }

    /// With a header claiming `size` bytes, whatever the data's length.
    pub fn claim_size(mut self, size: u64) -> Entry {
        self.claimed_size = Some(size);
        self
    }

    /// With modification time `mtime`.
    pub fn mtime(mut self, mtime: u64) -> Entry {
        self.mtime = Some(mtime);
        self
    }

    /// With owner and group IDs.
    pub fn ids(mut self, uid: u64, gid: u64) -> Entry {
        self.ids = Some((uid, gid));
        self
    }

    /// With device numbers.
    pub fn device(mut self, major: u32, minor: u32) -> Entry {
        self.device = Some((major, minor));
        self
    }

    /// As a GNU header.
    pub fn gnu(mut self) -> Entry {
        self.gnu = true;
        self
    }

    /// The header block.
    pub fn header(&self) -> Header {
        let mut h = if self.gnu {
            Header::new_gnu()
        } else {
            Header::new_ustar()
        };
        {
            let old = h.as_old_mut();
            old.name[..self.name.len()].copy_from_slice(&self.name);
            old.linkname[..self.link.len()].copy_from_slice(&self.link);
        }
        h.set_entry_type(self.kind);
        h.set_mode(self.mode);
        if let Some(mtime) = self.mtime {
            h.set_mtime(mtime);
        }
        if let Some((uid, gid)) = self.ids {
            h.set_uid(uid);
            h.set_gid(gid);
        }
        h.set_size(self.claimed_size.unwrap_or(self.data.len() as u64));
        if let Some((major, minor)) = self.device {
            h.set_device_major(major).unwrap();
            h.set_device_minor(minor).unwrap();
        }
        h.set_cksum();
        h
    }

    /// Append the header, the data and its padding to `out`.
    pub fn write_to(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self.header().as_bytes());
        out.extend_from_slice(&self.data);
        out.resize(out.len().next_multiple_of(512), 0);
    }
}

/// The end of an archive: two zero blocks.
pub const END: [u8; 1024] = [0; 1024];

/// The entries, one after the other, without the end of the archive.
pub fn entries(entries: &[Entry]) -> Vec<u8> {
    let mut out = Vec::new();
    for e in entries {
        e.write_to(&mut out);
    }
    out
}

/// A whole archive: the entries and the end.
pub fn archive(list: &[Entry]) -> Vec<u8> {
    let mut out = entries(list);
    out.extend_from_slice(&END);
    out
}

/// Gzip `bytes` (fast level).
pub fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}
