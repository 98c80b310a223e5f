//! Buildpack and extension layers: the uncompressed tar pack writes for one module directory, Linux or Windows.
//!
//! A module layer holds `/cnb/<dist>/<id with / as _>` and `/cnb/<dist>/<id>/<version>`, then the
//! platform root folder's entries under that prefix in `filepath.Walk` order, with pack's header
//! normalization (cnb-format reference §4.1–4.2). Windows layers wrap the same entries in the
//! layout imgutil's `WindowsWriter` produces (§4.5); [`write_windows_base_layer`] writes the fixed
//! first layer of Windows packages (§4.6).

use std::collections::{BTreeMap, HashSet};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::machine::{self, Machine};
use crate::read_ahead::{Content, ReadAhead};
use crate::source::{Exclusions, SourceEntry, SourceKind, Walk};
use crate::tar::{
    into_clean, name_parts, needs_pax, path_clean, EntryType, Header, TarWriter, NORMALIZED_MTIME,
};
use crate::tar_guard::TarGuard;

/// The diffID of the Windows base layer (the sha256 of [`write_windows_base_layer`]'s bytes).
pub const WINDOWS_BASE_LAYER_DIFF_ID: &str =
    "sha256:067833dadeca9180bb71a211248cbc0f6ada05499bfdef07dfb04e2eb96e7c82";

/// The `MSWINDOWS.rawsd` security descriptor imgutil gives entries owned by uid 0 / gid 0
/// (BUILTIN\Administrators), which is every entry after normalization.
pub const WINDOWS_ADMIN_RAWSD: &str =
    "AQAAgBQAAAAkAAAAAAAAAAAAAAABAgAAAAAABSAAAAAgAgAAAQIAAAAAAAUgAAAAIAIAAA==";

/// The boot configuration hive every Windows base layer carries.
const WINDOWS_BCD: &[u8] = include_bytes!("../testdata/fixtures/windows/BCD");

/// Relative names that pack makes executable whatever their mode.
const ALWAYS_EXECUTABLE: &[&str] = &["bin/build", "bin/detect", "bin/generate"];

/// The most bytes read after a copied layer's end-of-archive marker (record padding: GNU tar
/// pads to 10 KiB by default, and to at most a few hundred KiB with large blocking factors).
const MAX_LAYER_TRAILER: u64 = 1 << 20;

/// Which layer writer pack would use for the target OS.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LayerFormat {
    /// Plain tar (Linux and FreeBSD targets).
    Linux,
    /// imgutil's Windows layout: `Files/…`, `Hives`, PAX security descriptors.
    Windows,
}

/// One module (buildpack or extension) to put into a layer.
#[derive(Clone, Copy, Debug)]
pub struct LayerSpec<'a> {
    /// `"buildpacks"` or `"extensions"`.
    pub dist_dir: &'a str,
    /// Module id as written in buildpack.toml (a `/` becomes `_` in the path).
    pub id: &'a str,
    /// Module version, used verbatim in the path.
    pub version: &'a str,
    /// Linux or Windows layer layout.
    pub format: LayerFormat,
    /// The platform root folder whose contents become the module's files.
    pub root: &'a Path,
    /// Files placed into the tree without copying them there (see [`crate::source::walk`]).
    pub overlays: &'a [(String, PathBuf)],
}

/// Write the complete uncompressed layer (trailer included) for one module.
pub fn write_module_layer<W: Write>(spec: &LayerSpec, out: W) -> Result<W> {
    let mut builder = LayerBuilder::new(out, spec.format);
    builder.add_module(spec)?;
    builder.finish()
}

/// An ELF or PE executable met while writing a layer (read from the bytes being copied, so
/// finding it costs no extra read).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Executable {
    /// The module holding it, `id@version`.
    pub module: String,
    /// Its path inside the module's folder (`bin/build`).
    pub path: String,
    /// The machine its header names.
    pub machine: Machine,
}

/// At most this many executables are remembered per layer (the rest are only counted), so a
/// tree of many binaries cannot make the record grow without bound.
const MAX_RECORDED_EXECUTABLES: usize = 4096;

/// Writes one or more modules into a single layer (one module normally; several for
/// `--flatten`). As in pack's flattening, an id directory already written is not repeated and a
/// module already added (same dist dir, id and version) is skipped.
pub struct LayerBuilder<W: Write> {
    tw: TarWriter<W>,
    format: LayerFormat,
    /// Directory names already written that must not repeat (module id dirs; on Windows also
    /// every parent directory, as imgutil's `writtenParentPaths`).
    written_dirs: HashSet<String>,
    /// `dist/id@version` of every module added.
    modules: HashSet<String>,
    /// Executables written so far (at most [`MAX_RECORDED_EXECUTABLES`]).
    executables: Vec<Executable>,
    /// How many executables were written, recorded or not.
    executables_seen: usize,
    /// What module walks leave out (the outputs being written).
    exclusions: Exclusions,
}

impl<W: Write> LayerBuilder<W> {
    /// A builder writing a layer of `format` to `out`.
    pub fn new(out: W, format: LayerFormat) -> Self {
        LayerBuilder {
            tw: TarWriter::new(out),
            format,
            written_dirs: HashSet::new(),
            modules: HashSet::new(),
            executables: Vec::new(),
            executables_seen: 0,
            exclusions: Exclusions::default(),
        }
    }

    /// The ELF and PE executables written so far (at most a few thousand), and how many
    /// there were in all.
    pub fn executables(&self) -> (&[Executable], usize) {
        (&self.executables, self.executables_seen)
    }

    /// Leave `exclusions` (the outputs being written, when they lie inside a module's tree) out
    /// of every module added.
    pub fn excluding(mut self, exclusions: Exclusions) -> Self {
        self.exclusions = exclusions;
        self
    }

    /// Add a module's entries. Returns `false` (writing nothing) if that module was added before.
    pub fn add_module(&mut self, spec: &LayerSpec) -> Result<bool> {
        if spec.format != self.format {
            return Err(Error::other(format!(
                "module {}@{}: a {:?} module cannot go into a {:?} layer",
                spec.id, spec.version, spec.format, self.format
            )));
        }
        if !self
            .modules
            .insert(format!("{}/{}@{}", spec.dist_dir, spec.id, spec.version))
        {
            return Ok(false);
        }
        let walk = Walk::new(spec.root, spec.overlays, self.exclusions.clone())?;
        let id_dir = path_clean(&format!(
            "/cnb/{}/{}",
            spec.dist_dir,
            crate::descriptor::escape_id(spec.id)
        ));
        let base = path_clean(&format!("{id_dir}/{}", spec.version));
        // pack's flatten writer skips an id directory it has already written (two versions of
        // one module); the Windows layout skips repeated directories by itself.
        let repeated_id_dir =
            self.format == LayerFormat::Linux && !self.written_dirs.insert(id_dir.clone());
        if !repeated_id_dir {
            self.emit(&Header::dir(id_dir), &mut io::empty(), false, spec.root)?;
        }
        self.emit(
            &Header::dir(base.clone()),
            &mut io::empty(),
            false,
            spec.root,
        )?;
        let module = format!("{}@{}", spec.id, spec.version);
        let mut ahead = ReadAhead::start(walk.in_dirs())?;
        while let Some((entry, content)) = ahead.next_entry()? {
            self.add_entry(&base, entry, &module, content)?;
        }
        Ok(true)
    }

    /// Copy the entries of an existing (uncompressed) module layer — a module taken from a
    /// package — into this layer unchanged, as pack's flatten does, skipping directories this
    /// layer already holds. `origin` names the package in messages.
    /// Every entry must lie in one of the module directories `allowed` (those the package's
    /// label gives the layer).
    pub fn add_layer_entries(
        &mut self,
        layer: impl Read,
        origin: &Path,
        allowed: &ModuleDirs,
    ) -> Result<()> {
        if self.format == LayerFormat::Windows {
            self.init_windows().map_err(write_error)?;
        }
        let bad = |e: io::Error| Error::invalid(origin, format!("reading a layer to flatten: {e}"));
        // The guard bounds extended headers; it and the drain below read the layer to its very
        // end, so the decompressor underneath checks its trailer (gzip CRC, zstd checksum).
        let mut guard = TarGuard::new(layer);
        let mut archive = ::tar::Archive::new(&mut guard);
        let mut watch = LinkWatch::default();
        for entry in archive.entries().map_err(bad)? {
            let mut entry = entry.map_err(bad)?;
            let refused = |m| Error::invalid(origin, format!("a layer to flatten: {m}"));
            let descriptor_dir =
                check_entry_allowed(&entry, allowed, &mut watch).map_err(refused)?;
            let header = copied_header(&mut entry).map_err(|m| Error::invalid(origin, m))?;
            if header.typ == EntryType::Dir && !self.written_dirs.insert(path_clean(&header.name)) {
                continue;
            }
            let descriptor = match &descriptor_dir {
                Some(dir) => Some(check_descriptor(&mut entry, dir, allowed).map_err(refused)?),
                None => None,
            };
            let appended = match &descriptor {
                Some(bytes) => self.tw.append(&header, &mut bytes.as_slice()),
                None => self.tw.append(&header, &mut entry),
            };
            appended.map_err(|e| {
                if e.kind() == io::ErrorKind::UnexpectedEof
                    || e.kind() == io::ErrorKind::InvalidInput
                {
                    bad(e)
                } else {
                    write_error(e)
                }
            })?;
        }
        guard.drain(MAX_LAYER_TRAILER).map_err(bad)?;
        Ok(())
    }

    /// Finish the layer: the end-of-archive marker, after imgutil's `Files`/`Hives` dirs on
    /// Windows if nothing wrote them yet.
    pub fn finish(mut self) -> Result<W> {
        if self.format == LayerFormat::Windows {
            self.init_windows().map_err(write_error)?;
        }
        self.tw.finish().map_err(write_error)
    }

    /// Write one walked entry under `base`; `module` (`id@version`) names it in the record of
    /// executables. A file's content comes read ahead, or its file opened ahead (see
    /// [`ReadAhead`]).
    fn add_entry(
        &mut self,
        base: &str,
        entry: &SourceEntry,
        module: &str,
        content: Content<'_>,
    ) -> Result<()> {
        let (header, source_pax) = entry_header(base, entry);
        if let SourceKind::Symlink { target } = &entry.kind {
            // A link leaving the module directory would let whatever is written through it
            // land elsewhere in the image; `verify` refuses such packages, so none is made.
            module_dir_of_entry(&header.name, ::tar::EntryType::Symlink, Some(target))
                .map_err(|why| Error::invalid(&entry.path, why))?;
        }
        match entry.kind {
            SourceKind::File { .. } => {
                let machine = match content {
                    Content::Bytes(bytes) if self.format == LayerFormat::Linux => {
                        self.emit_bytes(&header, bytes, &entry.path)?;
                        machine::machine_of(&bytes[..bytes.len().min(machine::HEAD_LEN)])
                    }
                    Content::Bytes(bytes) => {
                        let mut reader = TrackedReader {
                            inner: bytes,
                            failed: false,
                            head: Vec::new(),
                        };
                        self.emit(&header, &mut reader, source_pax, &entry.path)?;
                        machine::machine_of(&reader.head)
                    }
                    opened => {
                        let file = match opened {
                            Content::Opened(file) => file,
                            _ => crate::input::open_walked(&entry.path, entry.identity.as_ref())?,
                        };
                        let mut reader = TrackedReader {
                            inner: file,
                            failed: false,
                            head: Vec::new(),
                        };
                        self.emit(&header, &mut reader, source_pax, &entry.path)?;
                        machine::machine_of(&reader.head)
                    }
                };
                // The file's first bytes went by on their way into the layer: an executable's
                // header is read from them, never from the file again.
                if let Some(machine) = machine {
                    self.executables_seen += 1;
                    if self.executables.len() < MAX_RECORDED_EXECUTABLES {
                        self.executables.push(Executable {
                            module: module.to_string(),
                            path: entry.rel.clone(),
                            machine,
                        });
                    }
                }
                Ok(())
            }
            _ => self.emit(&header, &mut io::empty(), source_pax, &entry.path),
        }
    }

    /// Write a Linux layer's file entry whose content is in memory.
    fn emit_bytes(&mut self, header: &Header, data: &[u8], path: &Path) -> Result<()> {
        self.tw.append_bytes(header, data).map_err(|e| {
            if e.kind() == io::ErrorKind::InvalidInput || e.kind() == io::ErrorKind::UnexpectedEof {
                Error::invalid(path, format!("cannot be written to the layer: {e}"))
            } else {
                write_error(e)
            }
        })
    }

    /// Write a header in the layer's layout. `source_pax` says whether pack's intermediate
    /// source tar held this entry as PAX, which on Windows suppresses the security descriptor.
    fn emit(
        &mut self,
        header: &Header,
        data: &mut dyn TrackedRead,
        source_pax: bool,
        path: &Path,
    ) -> Result<()> {
        let result = match self.format {
            LayerFormat::Linux => self.tw.append(header, data.as_read()),
            LayerFormat::Windows => self.emit_windows(header, data.as_read(), source_pax),
        };
        result.map_err(|e| {
            if data.read_failed() {
                Error::io(path, e)
            } else if e.kind() == io::ErrorKind::InvalidInput
                || e.kind() == io::ErrorKind::UnexpectedEof
            {
                Error::invalid(path, format!("cannot be written to the layer: {e}"))
            } else {
                write_error(e)
            }
        })
    }

    /// imgutil's `WindowsWriter.WriteHeader`: `Files`/`Hives` first, the entry renamed under
    /// `Files/`, its parent directories written once (mode 0, mtime 0), a security descriptor
    /// record unless the header already carried PAX records, and directories never repeated.
    fn emit_windows(
        &mut self,
        header: &Header,
        data: &mut dyn Read,
        source_pax: bool,
    ) -> io::Result<()> {
        self.init_windows()?;
        let mut header = header.clone();
        header.name = path_clean(&format!("Files/{}", header.name));
        let parent = match header.name.rfind('/') {
            Some(i) => header.name[..i].to_string(),
            None => String::new(),
        };
        let mut prefix = String::new();
        for part in parent.split('/').filter(|p| !p.is_empty()) {
            prefix = if prefix.is_empty() {
                part.to_string()
            } else {
                format!("{prefix}/{part}")
            };
            self.windows_dir(&windows_parent_header(&prefix))?;
        }
        if !source_pax {
            header.pax = BTreeMap::from([(
                "MSWINDOWS.rawsd".to_string(),
                WINDOWS_ADMIN_RAWSD.to_string(),
            )]);
        }
        if header.typ == EntryType::Dir {
            return self.windows_dir(&header);
        }
        self.tw.append(&header, data)
    }

    fn init_windows(&mut self) -> io::Result<()> {
        self.windows_dir(&windows_parent_header("Files"))?;
        self.windows_dir(&windows_parent_header("Hives"))
    }

    /// Write a directory header unless one of that name was written already.
    fn windows_dir(&mut self, header: &Header) -> io::Result<()> {
        if self.written_dirs.contains(&header.name) {
            return Ok(());
        }
        self.tw.append(header, &mut io::empty())?;
        self.written_dirs.insert(header.name.clone());
        Ok(())
    }
}

/// The normalized layer header of a walked entry, and whether pack's intermediate tar of the
/// source directory (entry names relative to the root) would have stored it as PAX.
fn entry_header(base: &str, entry: &SourceEntry) -> (Header, bool) {
    let name = into_clean(format!("{base}/{}", entry.rel));
    let mode = calc_file_mode(&entry.rel, &entry.kind, entry.mode);
    let mut header = Header {
        name,
        mode,
        mtime: NORMALIZED_MTIME,
        ..Header::default()
    };
    let mut source = Header {
        name: entry.rel.clone(),
        ..Header::default()
    };
    match &entry.kind {
        SourceKind::Dir => header.typ = EntryType::Dir,
        SourceKind::File { size } => {
            header.size = *size;
            source.size = *size;
        }
        SourceKind::Symlink { target } => {
            header.typ = EntryType::Symlink;
            header.linkname = target.clone();
            source.linkname = target.clone();
        }
        SourceKind::Hardlink { first } => {
            header.typ = EntryType::Hardlink;
            header.linkname = path_clean(&format!("{base}/{first}"));
            source.linkname = first.clone();
        }
    }
    (header, needs_pax(&source))
}

/// pack's `calcFileMode`: directories, symlinks (their 0777 mode has execute bits) and anything
/// executable become 0755, as do `bin/build`, `bin/detect` and `bin/generate` whatever their
/// mode; everything else 0644. setuid, setgid and sticky bits are dropped.
pub fn calc_file_mode(rel: &str, kind: &SourceKind, mode: u32) -> u32 {
    let executable = match kind {
        SourceKind::Dir | SourceKind::Symlink { .. } => true,
        _ => ALWAYS_EXECUTABLE.contains(&rel) || mode & 0o111 != 0,
    };
    if executable {
        0o755
    } else {
        0o644
    }
}

/// imgutil's parent directory headers: only a name and the directory type (mode 0, mtime 0).
fn windows_parent_header(name: &str) -> Header {
    Header {
        name: name.to_string(),
        typ: EntryType::Dir,
        ..Header::default()
    }
}

/// Write imgutil's Windows base layer: the `UtilityVM` boot files and empty registry hives,
/// with no end-of-archive marker (imgutil never closes that tar writer).
pub fn write_windows_base_layer<W: Write>(out: W) -> io::Result<W> {
    let mut tw = TarWriter::new(out);
    // Entries in imgutil's order: a directory header for each `Dir`, a mode-0644 file otherwise.
    let entries: [(&str, Option<&[u8]>); 15] = [
        ("UtilityVM", None),
        ("UtilityVM/Files", None),
        ("UtilityVM/Files/EFI", None),
        ("UtilityVM/Files/EFI/Microsoft", None),
        ("UtilityVM/Files/EFI/Microsoft/Boot", None),
        ("UtilityVM/Files/EFI/Microsoft/Boot/BCD", Some(WINDOWS_BCD)),
        ("Files", None),
        ("Files/Windows", None),
        ("Files/Windows/System32", None),
        ("Files/Windows/System32/config", None),
        ("Files/Windows/System32/config/DEFAULT", Some(b"")),
        ("Files/Windows/System32/config/SAM", Some(b"")),
        ("Files/Windows/System32/config/SECURITY", Some(b"")),
        ("Files/Windows/System32/config/SOFTWARE", Some(b"")),
        ("Files/Windows/System32/config/SYSTEM", Some(b"")),
    ];
    for (name, data) in entries {
        match data {
            None => tw.append(&windows_parent_header(name), &mut io::empty())?,
            Some(data) => {
                let header = Header {
                    name: name.to_string(),
                    mode: 0o644,
                    size: data.len() as u64,
                    ..Header::default()
                };
                tw.append(&header, &mut &data[..])?;
            }
        }
    }
    Ok(tw.into_inner_without_trailer())
}

/// An output failure, which names no source file.
fn write_error(e: io::Error) -> Error {
    Error::other(format!("writing layer: {e}"))
}

/// A reader that remembers whether it failed, so errors can be blamed on the source file or the
/// output correctly.
trait TrackedRead {
    fn as_read(&mut self) -> &mut dyn Read;
    fn read_failed(&self) -> bool;
}

struct TrackedReader<R> {
    inner: R,
    failed: bool,
    /// The first [`machine::HEAD_LEN`] bytes read, for the executable check.
    head: Vec<u8>,
}

impl<R: Read> Read for TrackedReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let r = self.inner.read(buf);
        self.failed |= r
            .as_ref()
            .is_err_and(|e| e.kind() != io::ErrorKind::Interrupted);
        if let Ok(n) = r {
            let room = machine::HEAD_LEN.saturating_sub(self.head.len());
            self.head.extend_from_slice(&buf[..n.min(room)]);
        }
        r
    }
}

impl<R: Read> TrackedRead for TrackedReader<R> {
    fn as_read(&mut self) -> &mut dyn Read {
        self
    }
    fn read_failed(&self) -> bool {
        self.failed
    }
}

impl TrackedRead for io::Empty {
    fn as_read(&mut self) -> &mut dyn Read {
        self
    }
    fn read_failed(&self) -> bool {
        false
    }
}

/// At most this many characters of an entry name appear in a message.
const MAX_NAME_IN_MESSAGE: usize = 200;

/// An entry name for a message: cut to a readable length, control characters escaped.
pub(crate) fn shown_name(name: &str) -> String {
    let mut out: String = name
        .chars()
        .take(MAX_NAME_IN_MESSAGE)
        .flat_map(|c| c.escape_debug())
        .collect();
    if name.chars().count() > MAX_NAME_IN_MESSAGE {
        out.push('…');
    }
    out
}

/// Where an entry of a module layer lies (cnb-format reference §4): `Ok(Some(dir))` for an
/// entry inside the module directory `dir` (`cnb/<buildpacks|extensions>/<id>/<version>`, with
/// `Files/` in front on Windows), `Ok(None)` for one of the parent directories (`cnb`,
/// `cnb/buildpacks`, `cnb/buildpacks/<id>`, and Windows' `Files` and `Hives`), and `Err` with
/// the reason for anything else: a `..` part, a path elsewhere, a parent that is not a
/// directory, or a hard link to a file outside the module directory.
///
/// A symbolic link's target is not checked here: it is data, resolved inside the running
/// container and not on the machine that packages or extracts the layer, and real buildpacks
/// carry links such as `bin/env -> /usr/bin/env` (pack stores targets unchanged). What could
/// write outside the module is an entry placed *through* a link, which [`LinkWatch`] refuses.
pub(crate) fn module_dir_of_entry(
    name: &str,
    typ: ::tar::EntryType,
    link: Option<&str>,
) -> std::result::Result<Option<String>, String> {
    let windows = name.trim_start_matches(['/', '.']).starts_with("Files/")
        || name.trim_start_matches('/') == "Files";
    let parts = name_parts(name, windows).ok_or_else(|| "has a '..' path component".to_string())?;
    let is_dir = typ == ::tar::EntryType::Directory;
    let not_dir = || format!("is a {typ:?} entry where only a directory belongs");
    let (prefix, rest) = match parts.as_slice() {
        // The layer's root directory, as GNU tar writes it (`./`).
        [] if is_dir => return Ok(None),
        [] => return Err("has an empty name".into()),
        ["Files"] | ["Hives"] => return if is_dir { Ok(None) } else { Err(not_dir()) },
        ["Files", rest @ ..] => ("Files/", rest),
        rest => ("", rest),
    };
    match rest {
        ["cnb"]
        | ["cnb", "buildpacks" | "extensions"]
        | ["cnb", "buildpacks" | "extensions", _] => {
            if is_dir {
                Ok(None)
            } else {
                Err(not_dir())
            }
        }
        ["cnb", dist @ ("buildpacks" | "extensions"), id, version, inside @ ..] => {
            if inside.is_empty() && !is_dir {
                return Err(not_dir());
            }
            let root = ["cnb", *dist, *id, *version];
            let dir = format!("{prefix}{}", root.join("/"));
            if typ == ::tar::EntryType::Link {
                {
                    let target = link.unwrap_or("");
                    let t = name_parts(target, windows);
                    let t = t
                        .as_deref()
                        .map(|t| t.strip_prefix(&["Files"][..]).unwrap_or(t));
                    match t {
                        Some(t) if t.len() > 4 && t[..4] == root => {}
                        _ => {
                            return Err(format!(
                                "is a hard link to '{}', outside {dir}",
                                shown_name(target)
                            ))
                        }
                    }
                }
            }
            Ok(Some(dir))
        }
        _ => Err("lies outside /cnb/buildpacks and /cnb/extensions".into()),
    }
}

/// Symbolic links met so far in one layer, at most this many (a layer of a real buildpack has a
/// few; `node_modules/.bin` trees some thousands).
const MAX_WATCHED_LINKS: usize = 100_000;
/// Bytes of link names kept for one layer (each name may be up to the 1 MiB header bound).
const MAX_WATCHED_BYTES: usize = 64 << 20;

/// The symbolic links of one layer, in entry order, so that no later entry (nor a hard link's
/// target) is placed through one of them: an extractor that follows links would write such an
/// entry wherever the link points. Where the links point is not checked (see
/// [`module_dir_of_entry`]); chains of links need no resolving, as nothing may go through any.
#[derive(Default)]
pub(crate) struct LinkWatch {
    /// Each link's path (lower case in Windows layers) and its name as written.
    links: std::collections::HashMap<String, String>,
    bytes: usize,
}

impl LinkWatch {
    /// Check one entry against the links before it, then remember it if it is a link.
    pub(crate) fn check(
        &mut self,
        name: &str,
        typ: ::tar::EntryType,
        link: Option<&str>,
    ) -> std::result::Result<(), String> {
        let windows = name.trim_start_matches(['/', '.']).starts_with("Files/");
        let key = |parts: &[&str]| {
            let joined = parts.join("/");
            // Windows file names are case-insensitive: `X` and `x/evil` meet.
            if windows {
                joined.to_lowercase()
            } else {
                joined
            }
        };
        let mut paths = vec![name];
        if typ == ::tar::EntryType::Link {
            paths.extend(link);
        }
        for path in paths {
            let Some(parts) = name_parts(path, windows) else {
                continue; // a `..` part is refused by module_dir_of_entry
            };
            for end in 1..parts.len() {
                if let Some(link) = self.links.get(&key(&parts[..end])) {
                    return Err(format!(
                        "is placed through the symbolic link '{}'",
                        shown_name(link)
                    ));
                }
            }
        }
        if typ == ::tar::EntryType::Symlink {
            if let Some(parts) = name_parts(name, windows) {
                let key = key(&parts);
                self.bytes = self.bytes.saturating_add(key.len() + name.len());
                if self.links.len() >= MAX_WATCHED_LINKS || self.bytes > MAX_WATCHED_BYTES {
                    return Err(format!(
                        "is one symbolic link too many (a layer may hold {MAX_WATCHED_LINKS}, named in {} MiB)",
                        MAX_WATCHED_BYTES >> 20
                    ));
                }
                self.links.insert(key, name.to_string());
            }
        }
        Ok(())
    }
}

/// The module directories a layer taken from a package may hold (`cnb/buildpacks/<id>/<version>`,
/// under `Files/` on Windows), each with the module (id, version) the package's label puts there.
pub(crate) type ModuleDirs = BTreeMap<String, (String, String)>;

/// The largest module descriptor read from a layer, as `verify` reads them (the limit of the
/// configs that carry a descriptor's values; one is read at a time and not kept).
const MAX_LAYER_DESCRIPTOR: u64 = crate::oci::MAX_JSON_BLOB;

/// Read a module layer taken from a package and check every entry lies in one of the module
/// directories `allowed` (see [`module_dir_of_entry`]) and every module descriptor there names
/// the module the label says. The stream is read up to the end-of-archive marker; the caller
/// reads what follows.
pub(crate) fn check_module_layer(
    layer: impl Read,
    allowed: &ModuleDirs,
) -> std::result::Result<(), String> {
    // The guard bounds extended headers, which the tar reader would hold whole.
    let mut archive = ::tar::Archive::new(TarGuard::new(layer));
    let entries = archive.entries().map_err(|e| e.to_string())?;
    let mut watch = LinkWatch::default();
    for entry in entries {
        let mut entry = entry.map_err(|e| e.to_string())?;
        if let Some(dir) = check_entry_allowed(&entry, allowed, &mut watch)? {
            check_descriptor(&mut entry, &dir, allowed)?;
        }
    }
    Ok(())
}

/// Read the module descriptor `entry` of directory `dir` and check it names the module the label
/// puts there: the lifecycle reads the descriptor, a composite's label repeats the label's, and
/// `verify` reports the two disagreeing. Returns the descriptor's bytes.
fn check_descriptor<R: Read>(
    entry: &mut ::tar::Entry<'_, R>,
    dir: &str,
    allowed: &ModuleDirs,
) -> std::result::Result<Vec<u8>, String> {
    let name = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
    let shown = shown_name(&name);
    if !entry.header().entry_type().is_file() {
        return Err(format!(
            "entry '{shown}' is a {:?} entry where the module's descriptor belongs",
            entry.header().entry_type()
        ));
    }
    if entry.size() > MAX_LAYER_DESCRIPTOR {
        return Err(format!(
            "entry '{shown}' is over {} MiB, too large for a module descriptor",
            MAX_LAYER_DESCRIPTOR >> 20
        ));
    }
    let mut bytes = Vec::new();
    entry
        .take(MAX_LAYER_DESCRIPTOR)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("entry '{shown}': {e}"))?;
    let Some((id, version)) = allowed.get(dir) else {
        return Ok(bytes);
    };
    match crate::descriptor::id_version_of(&String::from_utf8_lossy(&bytes)) {
        Some((fid, fver)) if fid == *id && fver == *version => Ok(bytes),
        Some((fid, fver)) => Err(format!(
            "entry '{shown}' describes {}@{}, but the package's label says {id}@{version}",
            crate::ui::quote_name(&fid),
            crate::ui::quote_name(&fver)
        )),
        None => Err(format!(
            "entry '{shown}' is not a module descriptor naming an id and a version"
        )),
    }
}

/// One entry of a module layer against the module directories its package's label gives it.
/// Returns the module directory when the entry is that module's descriptor (`buildpack.toml` or
/// `extension.toml` right in it), whose content the caller checks with [`check_descriptor`].
fn check_entry_allowed<R: Read>(
    entry: &::tar::Entry<'_, R>,
    allowed: &ModuleDirs,
    watch: &mut LinkWatch,
) -> std::result::Result<Option<String>, String> {
    let name = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
    let link = entry
        .link_name_bytes()
        .map(|l| String::from_utf8_lossy(&l).into_owned());
    let shown = shown_name(&name);
    let typ = entry.header().entry_type();
    watch
        .check(&name, typ, link.as_deref())
        .map_err(|why| format!("entry '{shown}' {why}"))?;
    match module_dir_of_entry(&name, typ, link.as_deref()) {
        Err(why) => Err(format!("entry '{shown}' {why}")),
        Ok(Some(dir)) if !allowed.contains_key(&dir) => Err(format!(
            "entry '{shown}' lies in {dir}, which the package's label does not give this layer"
        )),
        Ok(Some(dir)) => {
            let windows = dir.starts_with("Files/");
            let parts = name_parts(&name, windows).unwrap_or_default();
            let depth = dir.split('/').count();
            let is_descriptor = parts.len() == depth + 1
                && matches!(parts[depth], "buildpack.toml" | "extension.toml");
            Ok(is_descriptor.then_some(dir))
        }
        Ok(None) => Ok(None),
    }
}

/// PAX keys the tar writer derives from the header itself; only other records (such as
/// `MSWINDOWS.rawsd`) are carried over when an entry is copied.
const DERIVED_PAX_KEYS: &[&str] = &[
    "path", "linkpath", "size", "mtime", "atime", "ctime", "uid", "gid", "uname", "gname",
];

/// Our header for an entry read from an existing layer, kept as it was.
pub(crate) fn copied_header<R: Read>(
    entry: &mut ::tar::Entry<'_, R>,
) -> std::result::Result<Header, String> {
    let h = entry.header();
    let typ = match h.entry_type() {
        ::tar::EntryType::Directory => EntryType::Dir,
        ::tar::EntryType::Regular | ::tar::EntryType::Continuous => EntryType::File,
        ::tar::EntryType::Symlink => EntryType::Symlink,
        ::tar::EntryType::Link => EntryType::Hardlink,
        other => return Err(format!("unsupported entry type {other:?}")),
    };
    let num = |r: io::Result<u64>, what: &str| r.map_err(|e| format!("bad {what} field: {e}"));
    let mode = num(h.mode().map(u64::from), "mode")? as u32;
    let uid = num(h.uid(), "uid")? as u32;
    let gid = num(h.gid(), "gid")? as u32;
    let mtime = num(h.mtime(), "mtime")? as i64;
    let name = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
    let linkname = entry
        .link_name_bytes()
        .map(|l| String::from_utf8_lossy(&l).into_owned())
        .unwrap_or_default();
    let mut pax = BTreeMap::new();
    if let Some(records) = entry
        .pax_extensions()
        .map_err(|e| format!("bad PAX header: {e}"))?
    {
        for record in records {
            let record = record.map_err(|e| format!("bad PAX record: {e}"))?;
            let key = record.key().map_err(|e| format!("bad PAX key: {e}"))?;
            if !DERIVED_PAX_KEYS.contains(&key) {
                let value = record.value().map_err(|e| format!("bad PAX value: {e}"))?;
                pax.insert(key.to_string(), value.to_string());
            }
        }
    }
    let size = if typ == EntryType::File {
        entry.size()
    } else {
        0
    };
    Ok(Header {
        name,
        typ,
        mode,
        size,
        linkname,
        mtime,
        uid,
        gid,
        pax,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_modes_follow_pack() {
        let file = SourceKind::File { size: 0 };
        assert_eq!(calc_file_mode("bin/build", &file, 0o600), 0o755);
        assert_eq!(calc_file_mode("bin/generate", &file, 0o644), 0o755);
        assert_eq!(calc_file_mode("bin/build.bat", &file, 0o644), 0o644);
        assert_eq!(calc_file_mode("x", &file, 0o4700), 0o755);
        assert_eq!(calc_file_mode("x", &file, 0o4644), 0o644);
        assert_eq!(calc_file_mode("d", &SourceKind::Dir, 0o700), 0o755);
        assert_eq!(
            calc_file_mode("l", &SourceKind::Symlink { target: "x".into() }, 0o777),
            0o755
        );
    }

    #[test]
    fn module_entries_are_confined_to_their_directory() {
        use ::tar::EntryType as T;
        let place = |name: &str, typ: T, link: Option<&str>| module_dir_of_entry(name, typ, link);
        assert_eq!(place("/cnb/buildpacks/a_b", T::Directory, None), Ok(None));
        assert_eq!(
            place("/cnb/buildpacks/a_b/1/bin/build", T::Regular, None),
            Ok(Some("cnb/buildpacks/a_b/1".into()))
        );
        assert_eq!(
            place("Files/cnb/extensions/e/2/x", T::Regular, None),
            Ok(Some("Files/cnb/extensions/e/2".into()))
        );
        assert_eq!(place("Hives", T::Directory, None), Ok(None));
        assert!(place("/etc/passwd", T::Regular, None).is_err());
        assert!(place("/cnb/lifecycle/builder", T::Regular, None).is_err());
        assert!(place("../../../tmp/evil", T::Regular, None).is_err());
        assert!(place("/cnb/buildpacks/a/1/../../../x", T::Regular, None).is_err());
        assert!(place("Files/cnb/buildpacks/a/1/..\\..\\x", T::Regular, None).is_err());
        assert!(place("/cnb/buildpacks", T::Symlink, Some("/tmp")).is_err());
        assert!(place("/cnb/buildpacks/a/1", T::Regular, None).is_err());
        let link = |target: &str| place("/cnb/buildpacks/a/1/bin/l", T::Symlink, Some(target));
        assert!(link("build").is_ok());
        assert!(link("../lib/x").is_ok());
        assert!(link(".").is_ok());
        assert!(link("/cnb/buildpacks/a/1/bin/build").is_ok());
        // Targets are data, resolved in the container: pack keeps them and so do we.
        assert!(link("../..").is_ok());
        assert!(link("/usr/bin/env").is_ok());
        // What is refused is an entry placed through a link, however the links chain.
        let mut watch = LinkWatch::default();
        let mut see = |name: &str, typ: T, target: Option<&str>| watch.check(name, typ, target);
        assert!(see("/cnb/buildpacks/a/1/s", T::Symlink, Some(".")).is_ok());
        assert!(see("/cnb/buildpacks/a/1/l", T::Symlink, Some("s/..")).is_ok());
        assert!(see("/cnb/buildpacks/a/1/real/x", T::Regular, None).is_ok());
        assert!(see("/cnb/buildpacks/a/1/l/x", T::Regular, None).is_err());
        assert!(see("cnb/buildpacks/a/1/./s/deeper/x", T::Directory, None).is_err());
        assert!(see(
            "/cnb/buildpacks/a/1/h",
            T::Link,
            Some("/cnb/buildpacks/a/1/l/x")
        )
        .is_err());
        assert!(see("Files/cnb/buildpacks/a/1/W", T::Symlink, Some("C:\\")).is_ok());
        assert!(see("Files/cnb/buildpacks/a/1/w\\evil", T::Regular, None).is_err());
        let hard = |target: &str| place("/cnb/buildpacks/a/1/h", T::Link, Some(target));
        assert!(hard("/cnb/buildpacks/a/1/bin/build").is_ok());
        assert!(hard("cnb/buildpacks/a/1/x").is_ok());
        assert!(hard("/cnb/buildpacks/b/1/x").is_err());
        assert!(hard("/etc/passwd").is_err());
        assert!(hard("/cnb/buildpacks/a/1/../../b/1/x").is_err());
    }

    #[test]
    fn base_layer_matches_fixture() {
        let ours = write_windows_base_layer(Vec::new()).unwrap();
        let fixture = std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/testdata/fixtures/windows/base-layer.tar"
        ))
        .unwrap();
        assert_eq!(ours.len(), 19968);
        assert!(ours == fixture, "base layer differs from the fixture");
        assert_eq!(
            crate::digest::Digest::of(&ours).to_string(),
            WINDOWS_BASE_LAYER_DIFF_ID
        );
    }
}
