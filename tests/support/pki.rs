//! Test certificates made with openssl: a CA and a server certificate for 127.0.0.1, and a
//! self-signed token-signing certificate.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::tool::{require, run};

/// Files of a test PKI.
pub struct Pki {
    /// CA certificate (PEM).
    pub ca_cert: PathBuf,
    /// Server certificate for 127.0.0.1 and localhost, signed by the CA.
    pub server_cert: PathBuf,
    /// Server key.
    pub server_key: PathBuf,
}

/// Make a CA and a server certificate in `dir`.
pub fn make(dir: &Path) -> Pki {
    let openssl = require("openssl", "openssl");
    let p = |n: &str| dir.join(n);
    run(Command::new(&openssl)
        .args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "3",
            "-subj",
            "/CN=cnbpkg test CA",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
            "-keyout",
        ])
        .arg(p("ca.key"))
        .arg("-out")
        .arg(p("ca.crt")));
    run(Command::new(&openssl)
        .args([
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=127.0.0.1",
            "-keyout",
        ])
        .arg(p("server.key"))
        .arg("-out")
        .arg(p("server.csr")));
    fs::write(
        p("server.ext"),
        "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1,DNS:localhost\n",
    )
    .unwrap();
    run(Command::new(&openssl)
        .args(["x509", "-req", "-days", "3", "-set_serial", "2", "-in"])
        .arg(p("server.csr"))
        .arg("-CA")
        .arg(p("ca.crt"))
        .arg("-CAkey")
        .arg(p("ca.key"))
        .arg("-extfile")
        .arg(p("server.ext"))
        .arg("-out")
        .arg(p("server.crt")));
    Pki {
        ca_cert: p("ca.crt"),
        server_cert: p("server.crt"),
        server_key: p("server.key"),
    }
}

/// A self-signed RSA certificate for signing tokens: (cert PEM, key PEM, cert DER).
pub fn signing_cert(dir: &Path) -> (PathBuf, PathBuf, Vec<u8>) {
    let openssl = require("openssl", "openssl");
    let cert = dir.join("token.crt");
    let key = dir.join("token.key");
    run(Command::new(&openssl)
        .args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "3",
            "-subj",
            "/CN=cnbpkg test token issuer",
            "-keyout",
        ])
        .arg(&key)
        .arg("-out")
        .arg(&cert));
    let der = run(Command::new(&openssl)
        .args(["x509", "-outform", "DER", "-in"])
        .arg(&cert))
    .stdout;
    (cert, key, der)
}
