//! `cnbpkg push` against TLS registries whose certificates must not be trusted although they
//! look like the one given (same name, self-signed, `CA:TRUE`), and against `certs.d`
//! directories holding files that are not certificates one may read (FIFOs, huge files).

use crate::support;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support::registry::{Auth, Config, Registry};
use crate::support::{child, packages, require, run};

/// A self-signed `CA:TRUE` certificate for 127.0.0.1 named `name` in `dir`, valid for `days`
/// (negative: already expired).
fn self_signed(dir: &Path, name: &str, days: i32) -> (PathBuf, PathBuf) {
    let openssl = require("openssl", "openssl");
    let key = dir.join(format!("{name}.key"));
    let csr = dir.join(format!("{name}.csr"));
    let crt = dir.join(format!("{name}.crt"));
    let ext = dir.join(format!("{name}.ext"));
    std::fs::write(
        &ext,
        "basicConstraints=critical,CA:TRUE\nsubjectAltName=IP:127.0.0.1\n",
    )
    .unwrap();
    run(Command::new(&openssl)
        .args(["req", "-new", "-newkey", "rsa:2048", "-nodes", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&csr)
        .args(["-subj", "/CN=registry.test"]));
    run(Command::new(&openssl)
        .args(["x509", "-req", "-in"])
        .arg(&csr)
        .arg("-signkey")
        .arg(&key)
        .args(["-days", &days.to_string(), "-extfile"])
        .arg(&ext)
        .arg("-out")
        .arg(&crt));
    (crt, key)
}

fn push_trusting(pkg: &Path, reg: &Registry, ca: &Path, home: &Path) -> child::Outcome {
    let ca = ca.display().to_string();
    child::run(
        child::push_args(
            pkg,
            &format!("{}/tls/app:1", reg.host()),
            &["--ca-cert", &ca],
        ),
        home,
        &[],
        None,
    )
}

#[test]
fn another_self_signed_certificate_with_the_same_name_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let (given, _) = self_signed(tmp.path(), "given", 2);
    let (served, served_key) = self_signed(tmp.path(), "impostor", 2);
    let reg = Registry::start(Config {
        tls: Some((served, served_key)),
        auth: Auth::None,
    });
    let pkg = packages::single(tmp.path(), "pkg", 71, &[1000]);
    let r = push_trusting(&pkg, &reg, &given, tmp.path());
    assert_eq!(r.code(), Some(1), "{r}");
    assert!(r.error_line().contains("not trusted"), "{r}");
}

#[test]
fn expired_exact_certificate_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let (crt, key) = self_signed(tmp.path(), "expired", -1);
    let reg = Registry::start(Config {
        tls: Some((crt.clone(), key)),
        auth: Auth::None,
    });
    let pkg = packages::single(tmp.path(), "pkg", 72, &[1000]);
    let r = push_trusting(&pkg, &reg, &crt, tmp.path());
    assert_eq!(r.code(), Some(1), "{r}");
    let e = r.error_line().to_lowercase();
    assert!(e.contains("expired"), "{r}");
}

#[test]
fn certs_d_fifo_and_huge_files_are_refused_not_waited_on() {
    let tmp = tempfile::tempdir().unwrap();
    let pkg = packages::single(tmp.path(), "pkg", 73, &[1000]);
    let port = support::registry::free_port();
    let host = format!("127.0.0.1:{port}");
    for (name, make) in [("fifo", 0u8), ("huge", 1u8), ("link-to-fifo", 2u8)] {
        let home = tmp.path().join(name);
        let d = home.join(".config/containers/certs.d").join(&host);
        std::fs::create_dir_all(&d).unwrap();
        let f = d.join("ca.crt");
        match make {
            0 => run(Command::new("mkfifo").arg(&f)),
            1 => {
                std::fs::write(&f, vec![b'A'; 3 << 20]).unwrap();
                run(&mut Command::new("true"))
            }
            _ => {
                let fifo = home.join("pipe");
                run(Command::new("mkfifo").arg(&fifo));
                std::os::unix::fs::symlink(&fifo, &f).unwrap();
                run(&mut Command::new("true"))
            }
        };
        let r = child::run(
            child::push_args(&pkg, &format!("{host}/tls/app:1"), &[]),
            &home,
            &[],
            None,
        );
        assert_eq!(r.code(), Some(1), "{name}: {r}");
        assert!(r.error_line().contains("ca.crt"), "{name}: {r}");
    }
}
