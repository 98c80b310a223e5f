//! Push to a registry with token auth: a test token server issues JWTs signed with a key
//! whose certificate the registry trusts (`auth: token: rootcertbundle`).

use std::sync::atomic::Ordering;

use crate::support::registry::{Auth, Config, Registry};
use crate::support::token::{TokenServer, ISSUER, SERVICE};
use crate::support::{packages, pki, push, require, run, settings};

#[test]
fn bearer_tokens_from_the_realm() {
    let tmp = tempfile::tempdir().unwrap();
    let (cert, key, der) = pki::signing_cert(tmp.path());
    let tokens = TokenServer::start(key, der, "bob", "tok-pass-987");
    let reg = Registry::start(Config {
        tls: None,
        auth: Auth::Token {
            realm: tokens.realm.clone(),
            service: SERVICE.into(),
            issuer: ISSUER.into(),
            rootcertbundle: cert,
        },
    });
    let pkg = packages::multi(tmp.path(), "pkg", 21, 200_000);
    let mut base = crate::support::push_options(&pkg, format!("{}/tok/app:1", reg.host()));
    base.username = Some("bob".into());
    base.password = Some("tok-pass-987".into());
    let (r, lines) = push(&base, &settings());
    let report = r.unwrap_or_else(|e| panic!("{e}\n{lines:?}\n{}", reg.log()));
    assert_eq!(report.uploaded, 5);
    assert!(tokens.issued.load(Ordering::Relaxed) >= 1);
    assert!(tokens
        .scopes
        .lock()
        .unwrap()
        .contains(&"repository:tok/app:pull,push".to_string()));
    assert!(!lines.join("\n").contains("tok-pass-987"));

    // A mount asks for pull on the source repository too.
    let (r, lines) = push(
        &{
            let mut o = base.clone();
            o.reference = format!("{}/tok/other:1", reg.host());
            o.from = Some("tok/app".into());
            o
        },
        &settings(),
    );
    let report = r.unwrap_or_else(|e| panic!("{e}\n{lines:?}"));
    assert_eq!(report.mounted, 5, "{lines:?}");
    assert!(tokens
        .scopes
        .lock()
        .unwrap()
        .contains(&"repository:tok/app:pull".to_string()));

    // Wrong password: the token server refuses; one clear line, no secret.
    let (r, _) = push(
        &{
            let mut o = base.clone();
            o.password = Some("nope-wrong".into());
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
    assert!(err.contains("token server"), "{err}");
    assert!(!err.contains("nope-wrong"), "{err}");

    // skopeo reads the index back through the same token server.
    let raw = run(
        std::process::Command::new(require("skopeo", "skopeo")).args([
            "inspect",
            "--raw",
            "--tls-verify=false",
            "--creds",
            "bob:tok-pass-987",
            &format!("docker://{}/tok/other:1", reg.host()),
        ]),
    )
    .stdout;
    assert_eq!(raw, packages::top(&pkg).1);
    assert_eq!(report.digest, packages::top(&pkg).0.digest);
}
