//! Executables built for another architecture than their target: a warning naming the file,
//! an error with `--strict`; scripts, matching binaries and multi-architecture trees pass.

use std::fs;
use std::path::Path;

use crate::support::*;

/// A 64-byte ELF64 little-endian header of an executable (`ET_EXEC`) for `machine`.
fn elf64(machine: u16) -> Vec<u8> {
    let mut h = vec![0u8; 64];
    h[..4].copy_from_slice(b"\x7fELF");
    h[4] = 2; // ELFCLASS64
    h[5] = 1; // little-endian
    h[6] = 1; // EV_CURRENT
    h[16..18].copy_from_slice(&2u16.to_le_bytes());
    h[18..20].copy_from_slice(&machine.to_le_bytes());
    h
}

/// The smallest PE header: a DOS stub pointing at `PE\0\0` and the COFF machine.
fn pe(machine: u16) -> Vec<u8> {
    let mut h = vec![0u8; 0x98];
    h[..2].copy_from_slice(b"MZ");
    h[0x3c..0x40].copy_from_slice(&0x80u32.to_le_bytes());
    h[0x80..0x84].copy_from_slice(b"PE\0\0");
    h[0x84..0x86].copy_from_slice(&machine.to_le_bytes());
    h
}

const EM_X86_64: u16 = 62;
const EM_AARCH64: u16 = 183;

fn write_bytes(path: &Path, bytes: &[u8], mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, bytes).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

/// One tree for amd64 and arm64 whose `bin/build` is an x86-64 binary.
fn amd64_only_tree(dir: &Path) {
    minimal_buildpack(
        dir,
        "test/native",
        "1.0.0",
        "\n[[targets]]\nos = \"linux\"\narch = \"amd64\"\n\n[[targets]]\nos = \"linux\"\narch = \"arm64\"\n",
    );
    write_bytes(&dir.join("bin/build"), &elf64(EM_X86_64), 0o755);
}

fn package(bp: &Path, out: &Path, extra: &[&str]) -> std::process::Output {
    let mut args = vec![
        "buildpack",
        "package",
        out.to_str().unwrap(),
        "--path",
        bp.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    cnbpkg(args)
}

#[test]
fn foreign_entry_point_warns_for_the_other_target_only() {
    let d = tempfile::tempdir().unwrap();
    let bp = d.path().join("bp");
    amd64_only_tree(&bp);
    let out = package(&bp, &d.path().join("x.cnb"), &[]);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    ok(out);
    let warnings: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("warning:"))
        .collect();
    assert_eq!(
        warnings,
        vec!["warning: target 'linux/arm64' runs arm64 ELF executables, but 'bin/build' of test/native@1.0.0 is built for amd64"],
        "{stderr}"
    );
    assert!(d.path().join("x.cnb").is_file());
}

#[test]
fn strict_makes_it_an_error_and_writes_nothing() {
    let d = tempfile::tempdir().unwrap();
    let bp = d.path().join("bp");
    amd64_only_tree(&bp);
    let out_path = d.path().join("x.cnb");
    let stderr = fails(package(&bp, &out_path, &["--strict"]), 1);
    assert!(
        stderr.contains("'bin/build' of test/native@1.0.0 is built for amd64 (--strict)"),
        "{stderr}"
    );
    assert!(!out_path.exists());
    assert_eq!(list(d.path()), vec!["bp"]);
    // Only the amd64 target: nothing to report, even with --strict.
    ok(package(
        &bp,
        &out_path,
        &["--strict", "--target", "linux/amd64"],
    ));
}

#[test]
fn platform_folders_with_matching_binaries_pass() {
    let d = tempfile::tempdir().unwrap();
    let bp = d.path().join("bp");
    minimal_buildpack(
        &bp,
        "test/native",
        "1.0.0",
        "\n[[targets]]\nos = \"linux\"\narch = \"amd64\"\n\n[[targets]]\nos = \"linux\"\narch = \"arm64\"\n",
    );
    for (arch, machine) in [("amd64", EM_X86_64), ("arm64", EM_AARCH64)] {
        write_bytes(
            &bp.join(format!("linux/{arch}/bin/build")),
            &elf64(machine),
            0o755,
        );
        write_file(
            &bp.join(format!("linux/{arch}/bin/detect")),
            "#!/bin/sh\n",
            0o755,
        );
    }
    let out = package(&bp, &d.path().join("x.cnb"), &["--strict"]);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    ok(out);
    assert!(!stderr.contains("warning"), "{stderr}");
}

#[test]
fn multi_architecture_trees_and_unknown_arches_are_not_flagged() {
    let d = tempfile::tempdir().unwrap();
    // A script entry point choosing between binaries for both architectures at run time.
    let bp = d.path().join("fat");
    minimal_buildpack(
        &bp,
        "test/fat",
        "1.0.0",
        "\n[[targets]]\nos = \"linux\"\narch = \"amd64\"\n\n[[targets]]\nos = \"linux\"\narch = \"arm64\"\n",
    );
    write_bytes(&bp.join("libexec/amd64/tool"), &elf64(EM_X86_64), 0o755);
    write_bytes(&bp.join("libexec/arm64/tool"), &elf64(EM_AARCH64), 0o755);
    ok(package(&bp, &d.path().join("fat.cnb"), &["--strict"]));

    // Without an architecture (only an os), nothing can be checked.
    let bp = d.path().join("noarch");
    minimal_buildpack(&bp, "test/noarch", "1.0.0", "");
    write_bytes(&bp.join("bin/build"), &elf64(EM_AARCH64), 0o755);
    ok(package(&bp, &d.path().join("noarch.cnb"), &["--strict"]));

    // A non-executable ELF file anywhere still counts when nothing in the layer matches.
    let bp = d.path().join("lib");
    minimal_buildpack(
        &bp,
        "test/lib",
        "1.0.0",
        "\n[[targets]]\nos = \"linux\"\narch = \"arm64\"\n",
    );
    write_bytes(&bp.join("lib/libx.so"), &elf64(EM_X86_64), 0o644);
    let stderr = fails(package(&bp, &d.path().join("lib.cnb"), &["--strict"]), 1);
    assert!(
        stderr.contains("'lib/libx.so' of test/lib@1.0.0 is built for amd64"),
        "{stderr}"
    );
}

#[test]
fn windows_executables_are_read_from_their_pe_header() {
    let d = tempfile::tempdir().unwrap();
    let bp = d.path().join("win");
    write_file(
        &bp.join("buildpack.toml"),
        "api = \"0.10\"\n[buildpack]\nid = \"test/win\"\nversion = \"1.0.0\"\n\n[[targets]]\nos = \"windows\"\narch = \"amd64\"\n\n[[targets]]\nos = \"windows\"\narch = \"arm64\"\n",
        0o644,
    );
    write_bytes(&bp.join("bin/build.exe"), &pe(0x8664), 0o755);
    write_bytes(&bp.join("bin/detect.exe"), &pe(0x8664), 0o755);
    // An ELF file means nothing to a Windows target.
    write_bytes(&bp.join("tools/linux-helper"), &elf64(EM_AARCH64), 0o755);
    let out = package(&bp, &d.path().join("w.cnb"), &[]);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    ok(out);
    let warnings: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("warning:"))
        .collect();
    assert_eq!(
        warnings,
        vec!["warning: target 'windows/arm64' runs arm64 PE executables, but 'bin/build.exe' of test/win@1.0.0 is built for amd64; 'bin/detect.exe' of test/win@1.0.0 is built for amd64"],
        "{stderr}"
    );
}

#[test]
fn one_platform_with_several_distros_is_reported_once() {
    let d = tempfile::tempdir().unwrap();
    let bp = d.path().join("bp");
    minimal_buildpack(
        &bp,
        "test/distros",
        "1.0.0",
        "\n[[targets]]\nos = \"linux\"\narch = \"arm64\"\n[[targets.distros]]\nname = \"ubuntu\"\nversion = \"22.04\"\n[[targets.distros]]\nname = \"ubuntu\"\nversion = \"24.04\"\n",
    );
    write_bytes(&bp.join("bin/build"), &elf64(EM_X86_64), 0o755);
    let out = package(&bp, &d.path().join("x.cnb"), &[]);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    ok(out);
    assert_eq!(stderr.matches("is built for amd64").count(), 1, "{stderr}");
}
