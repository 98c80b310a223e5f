//! Which architecture an executable is built for, read from the first bytes of its ELF or PE
//! header, so that a layer built from one tree for several targets can be checked against each
//! target's architecture (a common mistake: the same x86-64 `bin/build` shipped to arm64).

/// How many leading bytes of a file are enough to read its machine: the whole ELF header, and
/// the PE signature of any ordinary Windows executable (its DOS stub puts it within the first
/// few hundred bytes).
pub const HEAD_LEN: usize = 4096;

/// The binary format of an executable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BinaryFormat {
    /// ELF (Linux and other Unix targets).
    Elf,
    /// PE/COFF (Windows).
    Pe,
}

impl BinaryFormat {
    /// `ELF` or `PE`, for messages.
    pub fn name(self) -> &'static str {
        match self {
            BinaryFormat::Elf => "ELF",
            BinaryFormat::Pe => "PE",
        }
    }
}

/// What an executable's header says about the machine it runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Machine {
    /// ELF or PE.
    pub format: BinaryFormat,
    /// `e_machine` (ELF) or the COFF `Machine` field (PE).
    pub code: u16,
    /// The OCI architecture name (`amd64`, `arm64`, …) when cnbpkg knows the machine.
    pub arch: Option<&'static str>,
}

impl Machine {
    /// `amd64`, or `machine 0x1234` for a machine without a known name.
    pub fn describe(&self) -> String {
        match self.arch {
            Some(a) => a.to_string(),
            None => format!("{} machine {:#06x}", self.format.name(), self.code),
        }
    }
}

/// The machine of an ELF executable or shared object, or of a PE image, from its first bytes;
/// `None` for anything else (scripts, data, object files, truncated headers).
pub fn machine_of(head: &[u8]) -> Option<Machine> {
    if head.starts_with(b"\x7fELF") {
        elf_machine(head)
    } else if head.starts_with(b"MZ") {
        pe_machine(head)
    } else {
        None
    }
}

fn elf_machine(h: &[u8]) -> Option<Machine> {
    if h.len() < 20 {
        return None;
    }
    let class64 = match h[4] {
        1 => false,
        2 => true,
        _ => return None,
    };
    let little = match h[5] {
        1 => true,
        2 => false,
        _ => return None,
    };
    let u16_at = |i: usize| {
        let b = [h[i], h[i + 1]];
        if little {
            u16::from_le_bytes(b)
        } else {
            u16::from_be_bytes(b)
        }
    };
    // Only programs and shared objects (ET_EXEC, ET_DYN) run; object files and core dumps do not.
    if !matches!(u16_at(16), 2 | 3) {
        return None;
    }
    let code = u16_at(18);
    let arch = match (code, class64, little) {
        (3, _, _) => Some("386"),
        (62, _, _) => Some("amd64"),
        (40, _, _) => Some("arm"),
        (183, _, _) => Some("arm64"),
        (21, true, true) => Some("ppc64le"),
        (21, true, false) => Some("ppc64"),
        (22, true, _) => Some("s390x"),
        (243, true, _) => Some("riscv64"),
        (8, false, false) => Some("mips"),
        (8, false, true) => Some("mipsle"),
        (8, true, false) => Some("mips64"),
        (8, true, true) => Some("mips64le"),
        (258, true, _) => Some("loong64"),
        _ => None,
    };
    Some(Machine {
        format: BinaryFormat::Elf,
        code,
        arch,
    })
}

fn pe_machine(h: &[u8]) -> Option<Machine> {
    let at = |i: usize, n: usize| h.get(i..i.checked_add(n)?);
    let lfanew = u32::from_le_bytes(at(0x3c, 4)?.try_into().ok()?) as usize;
    if at(lfanew, 4)? != b"PE\0\0" {
        return None;
    }
    let code = u16::from_le_bytes(at(lfanew.checked_add(4)?, 2)?.try_into().ok()?);
    let arch = match code {
        0x014c => Some("386"),
        0x8664 => Some("amd64"),
        0xaa64 => Some("arm64"),
        0x01c0 | 0x01c4 => Some("arm"),
        _ => None,
    };
    Some(Machine {
        format: BinaryFormat::Pe,
        code,
        arch,
    })
}

/// A target architecture in OCI spelling (`x86_64` → `amd64`, `aarch64` → `arm64`), or `None`
/// when cnbpkg cannot check executables for it (unknown or empty).
pub fn checked_arch(arch: &str) -> Option<&'static str> {
    Some(match arch {
        "amd64" | "x86_64" => "amd64",
        "arm64" | "aarch64" => "arm64",
        "arm" => "arm",
        "386" | "i386" => "386",
        "ppc64le" => "ppc64le",
        "ppc64" => "ppc64",
        "s390x" => "s390x",
        "riscv64" => "riscv64",
        _ => return None,
    })
}

/// The executable format a target's OS runs: PE on Windows, ELF elsewhere.
pub fn format_for_os(os: &str) -> BinaryFormat {
    if os == "windows" {
        BinaryFormat::Pe
    } else {
        BinaryFormat::Elf
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn elf(class: u8, data: u8, typ: u16, machine: u16) -> Vec<u8> {
        let mut h = vec![0u8; 64];
        h[..4].copy_from_slice(b"\x7fELF");
        h[4] = class;
        h[5] = data;
        let put = |h: &mut Vec<u8>, i: usize, v: u16| {
            let b = if data == 1 {
                v.to_le_bytes()
            } else {
                v.to_be_bytes()
            };
            h[i..i + 2].copy_from_slice(&b);
        };
        put(&mut h, 16, typ);
        put(&mut h, 18, machine);
        h
    }

    #[test]
    fn elf_machines() {
        let arch = |h: Vec<u8>| machine_of(&h).and_then(|m| m.arch);
        assert_eq!(arch(elf(2, 1, 2, 62)), Some("amd64"));
        assert_eq!(arch(elf(2, 1, 3, 183)), Some("arm64"));
        assert_eq!(arch(elf(1, 1, 2, 40)), Some("arm"));
        assert_eq!(arch(elf(2, 1, 2, 21)), Some("ppc64le"));
        assert_eq!(arch(elf(2, 2, 2, 21)), Some("ppc64"));
        assert_eq!(arch(elf(2, 2, 2, 22)), Some("s390x"));
        assert_eq!(arch(elf(2, 1, 2, 243)), Some("riscv64"));
        // Object files are not executables; truncated headers are nothing.
        assert!(machine_of(&elf(2, 1, 1, 62)).is_none());
        assert!(machine_of(&elf(2, 1, 2, 62)[..19]).is_none());
        assert!(machine_of(b"#!/bin/sh\n").is_none());
        let unknown = machine_of(&elf(2, 1, 2, 0x1234)).unwrap();
        assert_eq!(unknown.describe(), "ELF machine 0x1234");
    }

    #[test]
    fn pe_machines() {
        let mut h = vec![0u8; 0x90];
        h[..2].copy_from_slice(b"MZ");
        h[0x3c..0x40].copy_from_slice(&0x80u32.to_le_bytes());
        h[0x80..0x84].copy_from_slice(b"PE\0\0");
        h[0x84..0x86].copy_from_slice(&0x8664u16.to_le_bytes());
        assert_eq!(machine_of(&h).unwrap().arch, Some("amd64"));
        h[0x84..0x86].copy_from_slice(&0xaa64u16.to_le_bytes());
        assert_eq!(machine_of(&h).unwrap().arch, Some("arm64"));
        // An offset past the bytes read, or one that overflows, is no PE header.
        h[0x3c..0x40].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(machine_of(&h).is_none());
        assert!(machine_of(b"MZ").is_none());
    }

    #[test]
    fn target_arches() {
        assert_eq!(checked_arch("x86_64"), Some("amd64"));
        assert_eq!(checked_arch("aarch64"), Some("arm64"));
        assert_eq!(checked_arch(""), None);
        assert_eq!(checked_arch("wasm"), None);
    }
}
