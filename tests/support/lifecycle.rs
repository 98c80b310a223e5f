//! Lifecycle release archives as the lifecycle project publishes them
//! (`lifecycle-v<V>+linux.<arch>.tgz`): `lifecycle.toml`, then `lifecycle/` with the multicall
//! binary, its symlinks, the launcher and SBOM files, in the packager's lexical order. The
//! binaries are stand-ins that carry a real ELF header of the architecture's machine.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

/// The mtime the stand-in entries carry: a release keeps its build's mtimes, not 1980.
pub const RELEASE_MTIME: u64 = 1_700_000_000;

/// The symlinks to `lifecycle` a release holds, by name.
pub const LINKED_PHASES: [&str; 8] = [
    "analyzer", "builder", "creator", "detector", "exporter", "extender", "rebaser", "restorer",
];

/// The release's name for a GOARCH (`amd64` → `x86-64`), as in the archive's file name.
pub fn release_arch(arch: &str) -> &str {
    match arch {
        "amd64" => "x86-64",
        other => other,
    }
}

/// The `lifecycle.toml` of a release of `version` (the lifecycle's template, recent API lists).
pub fn lifecycle_toml(version: &str) -> String {
    format!(
        r#"[apis]
[apis.buildpack]
  deprecated = []
  supported = ["0.7", "0.8", "0.9", "0.10", "0.11", "0.12"]
[apis.platform]
  deprecated = []
  supported = ["0.7", "0.8", "0.9", "0.10", "0.11", "0.12", "0.13", "0.14", "0.15"]

[api]
  platform = "0.7"
  buildpack = "0.7"

[lifecycle]
  version = "{version}"
  sbom-formats = ["application/vnd.cyclonedx+json", "application/spdx+json", "application/vnd.syft+json"]
"#
    )
}

/// (ELF class 64?, little endian?, e_machine) of a GOARCH.
fn elf_machine(arch: &str) -> (bool, bool, u16) {
    match arch {
        "amd64" => (true, true, 62),
        "arm64" => (true, true, 183),
        "ppc64le" => (true, true, 21),
        "s390x" => (true, false, 22),
        "riscv64" => (true, true, 243),
        "arm" => (false, true, 40),
        "386" => (false, true, 3),
        other => panic!("no ELF machine for arch {other}"),
    }
}

/// A 64-byte (ELF64) or 52-byte (ELF32) executable header for `arch`, then `body`.
pub fn elf_binary(arch: &str, body: &[u8]) -> Vec<u8> {
    let (class64, little, machine) = elf_machine(arch);
    let u16b = |v: u16| {
        if little {
            v.to_le_bytes()
        } else {
            v.to_be_bytes()
        }
    };
    let u32b = |v: u32| {
        if little {
            v.to_le_bytes()
        } else {
            v.to_be_bytes()
        }
    };
    let mut h = vec![0x7f, b'E', b'L', b'F'];
    h.push(if class64 { 2 } else { 1 });
    h.push(if little { 1 } else { 2 });
    h.push(1); // EV_CURRENT
    h.extend_from_slice(&[0; 9]); // OS ABI, ABI version, padding
    h.extend_from_slice(&u16b(2)); // ET_EXEC
    h.extend_from_slice(&u16b(machine));
    h.extend_from_slice(&u32b(1)); // e_version
    let word = if class64 { 8 } else { 4 };
    h.extend(std::iter::repeat_n(0u8, 3 * word)); // e_entry, e_phoff, e_shoff
    h.extend_from_slice(&u32b(0)); // e_flags
    let ehsize = if class64 { 64 } else { 52 };
    h.extend_from_slice(&u16b(ehsize));
    h.extend_from_slice(&[0; 10]); // program and section header sizes and counts
    assert_eq!(h.len(), ehsize as usize);
    h.extend_from_slice(body);
    h
}

/// One entry of a release archive: a name, and what it is.
pub enum ReleaseEntry {
    /// A directory.
    Dir,
    /// A regular file with its mode and bytes.
    File(u32, Vec<u8>),
    /// A symbolic link to the given target.
    Symlink(String),
}

/// The entries of a lifecycle release for `arch`, in the packager's order.
pub fn release_entries(arch: &str, version: &str) -> Vec<(String, ReleaseEntry)> {
    let binary = |what: &str| {
        let body = format!("stand-in {what} {version} for {arch}\n");
        ReleaseEntry::File(0o755, elf_binary(arch, body.as_bytes()))
    };
    let sbom = |what: &str, kind: &str| {
        let body = format!("{{\"sbom\":\"{what} {kind} {version}\"}}\n");
        ReleaseEntry::File(0o644, body.into_bytes())
    };
    let mut names: Vec<(String, ReleaseEntry)> = Vec::new();
    for phase in LINKED_PHASES {
        names.push((phase.into(), ReleaseEntry::Symlink("lifecycle".into())));
    }
    names.push(("launcher".into(), binary("launcher")));
    names.push(("lifecycle".into(), binary("lifecycle")));
    for what in ["launcher", "lifecycle"] {
        for kind in ["cdx", "spdx", "syft"] {
            names.push((format!("{what}.sbom.{kind}.json"), sbom(what, kind)));
        }
    }
    names.sort_by(|a, b| a.0.cmp(&b.0));
    let mut entries = vec![
        (
            "lifecycle.toml".to_string(),
            ReleaseEntry::File(0o644, lifecycle_toml(version).into_bytes()),
        ),
        ("lifecycle/".to_string(), ReleaseEntry::Dir),
    ];
    entries.extend(
        names
            .into_iter()
            .map(|(n, e)| (format!("lifecycle/{n}"), e)),
    );
    entries
}

/// A tar of `entries` (release headers: uid/gid 0, no owner names, [`RELEASE_MTIME`]).
pub fn tar_of(entries: &[(String, ReleaseEntry)]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, entry) in entries {
        let mut h = tar::Header::new_ustar();
        h.set_mtime(RELEASE_MTIME);
        h.set_uid(0);
        h.set_gid(0);
        match entry {
            ReleaseEntry::Dir => {
                h.set_entry_type(tar::EntryType::Directory);
                h.set_mode(0o755);
                h.set_size(0);
                b.append_data(&mut h, name, std::io::empty()).unwrap();
            }
            ReleaseEntry::File(mode, data) => {
                h.set_entry_type(tar::EntryType::Regular);
                h.set_mode(*mode);
                h.set_size(data.len() as u64);
                b.append_data(&mut h, name, data.as_slice()).unwrap();
            }
            ReleaseEntry::Symlink(target) => {
                h.set_entry_type(tar::EntryType::Symlink);
                h.set_mode(0o777);
                h.set_size(0);
                b.append_link(&mut h, name, target).unwrap();
            }
        }
    }
    b.into_inner().unwrap()
}

/// Gzip `data` (level 6, no file name or mtime in the gzip header, like Go's writer).
pub fn gzip(data: &[u8]) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(6));
    gz.write_all(data).unwrap();
    gz.finish().unwrap()
}

/// Write `lifecycle-v<version>+linux.<release arch>.tgz` into `dir` and return its path: the
/// release's layout with stand-in binaries carrying a real ELF header of `arch`'s machine
/// (`amd64`, `arm64`, `ppc64le`, `s390x`, ...).
pub fn lifecycle_tgz(dir: &Path, arch: &str, version: &str) -> PathBuf {
    let path = dir.join(format!(
        "lifecycle-v{version}+linux.{}.tgz",
        release_arch(arch)
    ));
    fs::create_dir_all(dir).unwrap();
    fs::write(&path, gzip(&tar_of(&release_entries(arch, version)))).unwrap();
    path
}
