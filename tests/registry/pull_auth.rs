//! `pull` over HTTPS with a self-signed CA and basic auth, and from a registry whose token
//! server issues bearer tokens scoped to `pull`; images put there by skopeo.

use std::path::Path;
use std::process::Command;
use std::sync::atomic::Ordering;
use std::sync::Mutex;

use cnbpkg::digest::Digest;
use cnbpkg::events::Event;
use cnbpkg::registry::{PullOptions, PullReport};

use crate::support::registry::{Auth, Config, Registry};
use crate::support::token::{TokenServer, ISSUER, SERVICE};
use crate::support::{packages, pki, require, run, settings};

/// `skopeo copy --all --preserve-digests` of `archive` to `reference` with `creds`; returns
/// the bytes the registry then serves at `reference`.
fn skopeo_put(archive: &Path, reference: &str, creds: &str) -> Vec<u8> {
    let skopeo = require("skopeo", "skopeo");
    run(Command::new(&skopeo)
        .args(["copy", "--quiet", "--all", "--preserve-digests"])
        .args(["--dest-tls-verify=false", "--dest-creds", creds])
        .arg(format!("oci-archive:{}", archive.display()))
        .arg(format!("docker://{reference}")));
    run(Command::new(&skopeo)
        .args(["inspect", "--raw", "--tls-verify=false", "--creds", creds])
        .arg(format!("docker://{reference}")))
    .stdout
}

fn pull(opts: &PullOptions) -> (cnbpkg::Result<PullReport>, String) {
    let lines = Mutex::new(Vec::new());
    let sink = |e: &Event<'_>| match *e {
        Event::Status { verb, message } => lines.lock().unwrap().push(format!("{verb} {message}")),
        Event::Warning { message } => lines.lock().unwrap().push(format!("warning: {message}")),
        _ => {}
    };
    let r = cnbpkg::registry::pull_with(opts, &settings(), &sink);
    (r, lines.into_inner().unwrap().join("\n"))
}

#[test]
fn https_with_a_self_signed_ca_and_basic_auth() {
    let tmp = tempfile::tempdir().unwrap();
    let pki = pki::make(tmp.path());
    let reg = Registry::start(Config {
        tls: Some((pki.server_cert.clone(), pki.server_key.clone())),
        auth: Auth::Basic("alice".into(), "pw-Pull-s3cret".into()),
    });
    let pkg = packages::multi(tmp.path(), "pkg", 61, 100_000);
    let reference = format!("{}/secure/pkg:1", reg.host());
    let served = skopeo_put(&pkg, &reference, "alice:pw-Pull-s3cret");
    let mut opts = PullOptions::new([reference.clone()]);
    opts.store = Some(tmp.path().join("store"));
    opts.ca_cert = Some(pki.ca_cert.clone());
    opts.username = Some("alice".into());
    opts.password = Some("pw-Pull-s3cret".into());
    let (r, lines) = pull(&opts);
    let report = r.unwrap_or_else(|e| panic!("{e}\n{lines}\n{}", reg.log()));
    assert_eq!(report.images[0].digest, Digest::of(&served));
    assert_eq!(report.downloaded, 5);
    assert!(!lines.contains("pw-Pull-s3cret"), "{lines}");

    // Without the CA certificate: refused, typed, nothing named in the store.
    let mut untrusted = opts.clone();
    untrusted.ca_cert = None;
    untrusted.store = Some(tmp.path().join("other"));
    let (r, _) = pull(&untrusted);
    assert!(
        matches!(r, Err(cnbpkg::Error::Tls { .. })),
        "{:?}",
        r.map(|_| ())
    );
    assert!(!tmp.path().join("other/index.json").exists());
}

#[test]
fn bearer_tokens_scoped_to_pull() {
    let tmp = tempfile::tempdir().unwrap();
    let (cert, key, der) = pki::signing_cert(tmp.path());
    let tokens = TokenServer::start(key, der, "bob", "tok-pull-987");
    let reg = Registry::start(Config {
        tls: None,
        auth: Auth::Token {
            realm: tokens.realm.clone(),
            service: SERVICE.into(),
            issuer: ISSUER.into(),
            rootcertbundle: cert,
        },
    });
    let pkg = packages::multi(tmp.path(), "pkg", 62, 100_000);
    let reference = format!("{}/tok/app:1", reg.host());
    let served = skopeo_put(&pkg, &reference, "bob:tok-pull-987");
    tokens.scopes.lock().unwrap().clear();
    let mut opts = PullOptions::new([reference]);
    opts.insecure = true;
    opts.store = Some(tmp.path().join("store"));
    opts.username = Some("bob".into());
    opts.password = Some("tok-pull-987".into());
    let (r, lines) = pull(&opts);
    let report = r.unwrap_or_else(|e| panic!("{e}\n{lines}\n{}", reg.log()));
    assert_eq!(report.images[0].digest, Digest::of(&served));
    assert!(tokens.issued.load(Ordering::Relaxed) >= 1);
    let scopes = tokens.scopes.lock().unwrap().clone();
    assert!(
        !scopes.is_empty() && scopes.iter().all(|s| s == "repository:tok/app:pull"),
        "a pull asks for nothing but pull: {scopes:?}"
    );
}
