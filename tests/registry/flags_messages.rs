//! The library's registry errors are typed and name no flag; the CLI renders them with its
//! flags, in the exact words it always has.

use cnbpkg::error::{AuthFailure, TlsFailure};
use cnbpkg::registry::PushOptions;
use cnbpkg::Error;

use crate::support::registry::{Auth, Config, Registry};
use crate::support::{child, packages, pki, push, settings};

#[test]
fn tls_and_auth_failures_are_typed_and_the_cli_names_its_flags() {
    let tmp = tempfile::tempdir().unwrap();
    let pki = pki::make(tmp.path());
    let reg = Registry::start(Config {
        tls: Some((pki.server_cert.clone(), pki.server_key.clone())),
        auth: Auth::Basic("alice".into(), "pw-s3cret".into()),
    });
    let host = reg.host();
    let pkg = packages::single(tmp.path(), "pkg", 21, &[50_000]);
    let reference = format!("{host}/flags/pkg:1");
    let home = tmp.path().join("home");
    std::fs::create_dir_all(&home).unwrap();

    // The library: typed kinds, plain words.
    let untrusted = PushOptions::new(&pkg, reference.clone());
    let e = push(&untrusted, &settings()).0.unwrap_err();
    assert!(
        matches!(&e, Error::Tls { kind: TlsFailure::UnknownIssuer, registry, .. } if *registry == host),
        "{e:?}"
    );
    assert!(!e.to_string().contains("--"), "{e}");
    let mut anonymous = untrusted.clone();
    anonymous.ca_cert = Some(pki.ca_cert.clone());
    let e = push(&anonymous, &settings()).0.unwrap_err();
    assert!(
        matches!(
            &e,
            Error::Auth {
                kind: AuthFailure::Missing,
                ..
            }
        ),
        "{e:?}"
    );
    assert!(!e.to_string().contains("--"), "{e}");
    let mut refused = anonymous.clone();
    refused.username = Some("alice".into());
    refused.password = Some("wrong".into());
    let e = push(&refused, &settings()).0.unwrap_err();
    assert!(
        matches!(
            &e,
            Error::Auth {
                kind: AuthFailure::Refused,
                ..
            }
        ),
        "{e:?}"
    );

    // The CLI: the same failures with its flags, exit code 1.
    let out = child::run(child::push_args(&pkg, &reference, &[]), &home, &[], None);
    assert_eq!(out.code(), Some(1), "{out}");
    assert_eq!(
        out.error_line(),
        format!("error: {host}: the TLS certificate of {host} is not trusted (unknown issuer); pass --ca-cert with the registry's CA certificate (PEM), or --insecure for a plain-HTTP registry"),
        "{out}"
    );
    let ca = pki.ca_cert.to_str().unwrap();
    let out = child::run(
        child::push_args(&pkg, &reference, &["--ca-cert", ca]),
        &home,
        &[],
        None,
    );
    assert_eq!(out.code(), Some(1), "{out}");
    let line = out.error_line();
    assert!(
        line.starts_with(&format!("error: {host}: authentication required (401")),
        "{out}"
    );
    assert!(
        line.ends_with("; no credentials found: use --username with --password-stdin, or log in with docker or podman"),
        "{out}"
    );
}
