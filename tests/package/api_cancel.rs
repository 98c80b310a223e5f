//! The cancellation token in the options: a cancelled operation returns `Error::Interrupted`
//! and leaves nothing behind, and a token only stops the operation it was given to.

use std::fs;
use std::path::Path;

use cnbpkg::events::NoEvents;
use cnbpkg::package::{package_buildpack, PackageOptions};
use cnbpkg::Error;

fn buildpack(dir: &Path) {
    fs::create_dir_all(dir.join("bin")).unwrap();
    fs::write(
        dir.join("buildpack.toml"),
        "api = \"0.10\"\n[buildpack]\nid = \"x/cancel\"\nversion = \"1.0.0\"\n",
    )
    .unwrap();
    for name in ["build", "detect"] {
        fs::write(dir.join("bin").join(name), "#!/bin/sh\nexit 0\n").unwrap();
    }
}

fn options(dir: &Path, output: &str) -> PackageOptions {
    let mut opts = PackageOptions::new(dir.join(output));
    opts.path = Some(dir.join("bp"));
    opts
}

#[test]
fn a_cancelled_package_is_interrupted_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    buildpack(&dir.path().join("bp"));
    let opts = options(dir.path(), "out.cnb");
    opts.cancel.cancel();
    let err = package_buildpack(&opts, &NoEvents).unwrap_err();
    assert!(matches!(err, Error::Interrupted), "{err}");
    let mut left: Vec<String> = fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    left.sort();
    assert_eq!(left, ["bp"], "nothing but the input remains");
}

#[test]
fn a_token_stops_only_its_own_operation() {
    let dir = tempfile::tempdir().unwrap();
    buildpack(&dir.path().join("bp"));
    let cancelled = options(dir.path(), "a.cnb");
    cancelled.cancel.cancel();
    let running = options(dir.path(), "b.cnb");
    assert!(package_buildpack(&cancelled, &NoEvents).is_err());
    let report = package_buildpack(&running, &NoEvents).unwrap();
    assert!(dir.path().join("b.cnb").is_file());
    assert_eq!(report.outputs.len(), 1);
    assert!(!dir.path().join("a.cnb").exists());
}

#[test]
fn a_cancelled_verify_and_push_are_interrupted() {
    let dir = tempfile::tempdir().unwrap();
    buildpack(&dir.path().join("bp"));
    let pkg = dir.path().join("p.cnb");
    package_buildpack(&options(dir.path(), "p.cnb"), &NoEvents).unwrap();

    let verify = cnbpkg::verify::VerifyOptions::default();
    verify.cancel.cancel();
    let err = cnbpkg::verify::verify_with(&pkg, &verify).unwrap_err();
    assert!(matches!(err, Error::Interrupted), "{err}");
    assert!(
        cnbpkg::verify::verify(&pkg).unwrap().is_ok(),
        "a fresh token is not cancelled"
    );

    // Nothing listens on this port: a push that sent a request would fail otherwise.
    let mut push = cnbpkg::registry::PushOptions::new(&pkg, "127.0.0.1:9/x/y:1");
    push.insecure = true;
    push.cancel.cancel();
    let err = cnbpkg::registry::push(&push, &NoEvents).unwrap_err();
    assert!(matches!(err, Error::Interrupted), "{err}");
}
