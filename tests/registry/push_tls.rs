//! Push over HTTPS with a self-signed CA and htpasswd basic auth; credentials from options
//! and from Docker's config.json / podman's auth.json; secrets stay out of every message.

use base64::Engine as _;
use cnbpkg::registry::PushOptions;

use crate::support::registry::{Auth, Config, Registry};
use crate::support::{child, packages, pki, push, settings};

const USER: &str = "alice";
const PASSWORD: &str = "pw-Sup3r-s3cret";

fn tls_registry(dir: &std::path::Path) -> (Registry, pki::Pki) {
    let pki = pki::make(dir);
    let reg = Registry::start(Config {
        tls: Some((pki.server_cert.clone(), pki.server_key.clone())),
        auth: Auth::Basic(USER.into(), PASSWORD.into()),
    });
    (reg, pki)
}

/// Neither stdout nor stderr of a `cnbpkg` run holds the password or the basic-auth header.
fn assert_no_secret_in(out: &child::Outcome) {
    assert_no_secret(&out.stdout);
    assert_no_secret(&out.stderr);
}

fn assert_no_secret(text: &str) {
    let b64 = base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{PASSWORD}"));
    assert!(!text.contains(PASSWORD), "password leaked: {text}");
    assert!(!text.contains(&b64), "basic auth header leaked: {text}");
}

#[test]
fn https_with_ca_cert_and_basic_auth() {
    let tmp = tempfile::tempdir().unwrap();
    let (reg, pki) = tls_registry(tmp.path());
    let pkg = packages::multi(tmp.path(), "pkg", 11, 150_000);
    let reference = format!("{}/secure/pkg:1", reg.host());
    let mut base = PushOptions::new(&pkg, reference.clone());
    base.ca_cert = Some(pki.ca_cert.clone());
    base.username = Some(USER.into());
    base.password = Some(PASSWORD.into());
    base.jobs = 2;

    let (r, lines) = push(&base, &settings());
    let report = r.unwrap_or_else(|e| panic!("{e}\n{}", reg.log()));
    assert_eq!(report.digest, packages::top(&pkg).0.digest);
    assert_eq!(report.uploaded, 5);
    assert_no_secret(&lines.join("\n"));
    assert_no_secret(&format!("{report:?}"));

    // Without the CA: a typed error, one clear line naming the registry and suggesting the
    // CA certificate option.
    let (r, lines) = push(
        &{
            let mut o = base.clone();
            o.ca_cert = None;
            o
        },
        &settings(),
    );
    let e = r.unwrap_err();
    assert!(
        matches!(
            e,
            cnbpkg::Error::Tls {
                kind: cnbpkg::error::TlsFailure::UnknownIssuer,
                ..
            }
        ),
        "{e:?}"
    );
    let err = e.to_string();
    eprintln!("error: {err}");
    assert!(err.contains(&reg.host()), "{err}");
    assert!(err.contains("not trusted"), "{err}");
    assert!(err.contains("ca_cert") && !err.contains("--"), "{err}");
    assert!(!err.contains('\n'), "{err}");
    assert_no_secret(&err);
    assert_no_secret(&lines.join("\n"));

    // Wrong password.
    let (r, lines) = push(
        &{
            let mut o = base.clone();
            o.password = Some("wrong-password-here".into());
            o
        },
        &settings(),
    );
    let err = r.unwrap_err().to_string();
    eprintln!("error: {err}");
    assert!(
        err.starts_with(&format!("{}: authentication failed (401", reg.host())),
        "{err}"
    );
    assert!(!err.contains("wrong-password-here"), "{err}");
    assert_no_secret(&lines.join("\n"));

    // No credentials at all.
    let (r, _) = push(
        &{
            let mut o = base.clone();
            o.username = None;
            o.password = None;
            o
        },
        &settings(),
    );
    let err = r.unwrap_err().to_string();
    eprintln!("error: {err}");
    assert!(err.contains("authentication required"), "{err}");
}

#[test]
fn credentials_from_docker_config_helpers_and_podman_auth_file() {
    let tmp = tempfile::tempdir().unwrap();
    let (reg, pki) = tls_registry(tmp.path());
    let pkg = packages::single(tmp.path(), "pkg", 12, &[120_000]);
    let home = tmp.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{PASSWORD}"));

    // Docker: $DOCKER_CONFIG/config.json with an `auths` entry.
    let docker = tmp.path().join("docker");
    std::fs::create_dir_all(&docker).unwrap();
    std::fs::write(
        docker.join("config.json"),
        format!(
            r#"{{"auths":{{"https://{}":{{"auth":"{auth}"}}}}}}"#,
            reg.host()
        ),
    )
    .unwrap();
    let digest = packages::top(&pkg).0.digest.to_string();
    let ca = pki.ca_cert.display().to_string();
    let args = |repo: &str| {
        child::push_args(
            &pkg,
            &format!("{}/creds/{repo}:1", reg.host()),
            &["--ca-cert", &ca],
        )
    };
    let out = child::run(
        args("docker"),
        &home,
        &[("DOCKER_CONFIG", docker.as_os_str())],
        None,
    );
    assert!(out.ok(), "{out}\n{}", reg.log());
    assert_eq!(out.stdout.trim_end(), digest, "{out}");
    assert!(out.stderr.contains("Credentials for"), "{out}");
    assert_no_secret_in(&out);

    // podman: $REGISTRY_AUTH_FILE with username/password fields.
    let podman = tmp.path().join("auth.json");
    std::fs::write(
        &podman,
        format!(
            r#"{{"auths":{{"{}":{{"username":"{USER}","password":"{PASSWORD}"}}}}}}"#,
            reg.host()
        ),
    )
    .unwrap();
    let out = child::run(
        args("podman"),
        &home,
        &[("REGISTRY_AUTH_FILE", podman.as_os_str())],
        None,
    );
    assert!(out.ok(), "{out}");
    assert_eq!(out.stdout.trim_end(), digest, "{out}");
    assert_no_secret_in(&out);

    // A credential helper named in credHelpers, found on PATH.
    let bin = tmp.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let helper = bin.join("docker-credential-cnbpkgtest");
    std::fs::write(
        &helper,
        format!(
            "#!/bin/sh\nread server\n[ \"$1\" = get ] || exit 1\nprintf '{{\"ServerURL\":\"%s\",\"Username\":\"{USER}\",\"Secret\":\"{PASSWORD}\"}}' \"$server\"\n"
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&helper, std::fs::Permissions::from_mode(0o755)).unwrap();
    let helper_cfg = tmp.path().join("docker-helper");
    std::fs::create_dir_all(&helper_cfg).unwrap();
    std::fs::write(
        helper_cfg.join("config.json"),
        format!(r#"{{"credHelpers":{{"{}":"cnbpkgtest"}}}}"#, reg.host()),
    )
    .unwrap();
    let path = std::env::join_paths(
        std::iter::once(bin.clone())
            .chain(std::env::split_paths(&std::env::var_os("PATH").unwrap())),
    )
    .unwrap();
    let path = std::path::PathBuf::from(path);
    let out = child::run(
        args("podman"),
        &home,
        &[
            ("DOCKER_CONFIG", helper_cfg.as_os_str()),
            ("PATH", path.as_os_str()),
        ],
        None,
    );
    assert!(out.ok(), "{out}");
    assert_eq!(out.stdout.trim_end(), digest, "{out}");
    assert!(out.stderr.contains("docker-credential-cnbpkgtest"), "{out}");
    assert_no_secret_in(&out);

    // No credential file: authentication required, nothing leaked.
    let out = child::run(args("podman"), &home, &[], None);
    assert!(!out.ok(), "{out}");
    assert_eq!(out.code(), Some(1), "{out}");
    assert!(out.stdout.is_empty(), "{out}");
    let err = out.error_line();
    assert!(err.contains("authentication required"), "{out}");
    assert_no_secret_in(&out);
}
