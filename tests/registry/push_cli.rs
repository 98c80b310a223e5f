//! `cnbpkg push` end to end: the real binary packages a sample buildpack and pushes it to a real
//! distribution registry on 127.0.0.1; skopeo reads back. Covers stdout (the digest, or the
//! JSON report), --platform, --password-stdin, and the exit codes of failures.

use std::path::{Path, PathBuf};

use crate::support::registry::{free_port, Auth, Config, Registry};
use crate::support::{child, packages, skopeo_raw};

/// Package `testdata/samples/hello-multi` (linux/amd64 and linux/arm64) with the binary.
fn package_hello_multi(dir: &Path) -> PathBuf {
    let out = dir.join("hello-multi.cnb");
    let sample = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/samples/hello-multi");
    let mut args = vec![
        "buildpack".into(),
        "package".into(),
        out.clone().into_os_string(),
    ];
    args.extend(["--path".into(), sample.into_os_string()]);
    let r = child::run(args, dir, &[], None);
    assert!(r.ok(), "{r}");
    assert!(out.is_file(), "{r}");
    out
}

/// The `digest` field of `cnbpkg inspect --json`.
fn inspect_digest(pkg: &Path, home: &Path) -> String {
    let r = child::run(
        [
            Path::new("inspect").as_os_str(),
            pkg.as_os_str(),
            "--json".as_ref(),
        ],
        home,
        &[],
        None,
    );
    assert!(r.ok(), "{r}");
    let v: serde_json::Value =
        serde_json::from_str(&r.stdout).unwrap_or_else(|e| panic!("{e}\n{r}"));
    v["digest"]
        .as_str()
        .expect("inspect --json has a digest")
        .to_string()
}

fn json(r: &child::Outcome) -> serde_json::Value {
    assert!(r.ok(), "{r}");
    serde_json::from_str(&r.stdout).unwrap_or_else(|e| panic!("push --json: {e}\n{r}"))
}

#[test]
fn push_prints_the_digest_and_pushes_again_for_free() {
    let reg = Registry::start_plain();
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path();
    let pkg = package_hello_multi(tmp.path());
    let (top, top_bytes) = packages::top(&pkg);
    assert_eq!(top.media_type, cnbpkg::oci::MEDIA_TYPE_INDEX);
    let digest = top.digest.to_string();
    assert_eq!(inspect_digest(&pkg, home), digest);

    // First push: stdout is exactly the index digest; the registry serves the same bytes.
    let reference = format!("{}/cli/hello:1", reg.host());
    let r = child::run(
        child::push_args(&pkg, &reference, &["--insecure"]),
        home,
        &[],
        None,
    );
    assert!(r.ok(), "{r}\n{}", reg.log());
    assert_eq!(r.stdout, format!("{digest}\n"), "{r}");
    assert!(r.stderr.contains("Pushed"), "{r}");
    assert_eq!(skopeo_raw(&reference), top_bytes);
    assert_eq!(
        skopeo_raw(&format!("{}/cli/hello@{digest}", reg.host())),
        top_bytes
    );

    // Again with --json: everything is already there, nothing is sent.
    let v = json(&child::run(
        child::push_args(&pkg, &reference, &["--insecure", "--json"]),
        home,
        &[],
        None,
    ));
    assert_eq!(v["digest"], digest.as_str(), "{v}");
    assert_eq!(v["reference"], reference.as_str(), "{v}");
    assert_eq!(v["mediaType"], cnbpkg::oci::MEDIA_TYPE_INDEX, "{v}");
    assert_eq!(v["bytesSent"], 0, "{v}");
    assert_eq!(v["uploaded"], 0, "{v}");
    assert_eq!(v["mounted"], 0, "{v}");
    assert!(v["skipped"].as_u64().unwrap() > 0, "{v}");
    let manifests = v["manifests"].as_array().expect("manifests array");
    let images = packages::manifests(&pkg);
    assert_eq!(manifests.len(), images.len(), "{v}");
    assert_eq!(images.len(), 2);
    for (d, _) in &images {
        assert!(
            manifests
                .iter()
                .any(|m| m["digest"] == d.digest.to_string().as_str()),
            "{} missing from {v}",
            d.digest
        );
    }

    // --platform linux/arm64: exactly one manifest, the arm64 one. The tag gets that
    // platform's own manifest (the digest the package lists), and stdout is its digest.
    let (arm, arm_bytes) = images
        .iter()
        .find(|(d, _)| {
            d.platform
                .as_ref()
                .is_some_and(|p| p.os == "linux" && p.architecture == "arm64")
        })
        .expect("an arm64 manifest")
        .clone();
    let arm_ref = format!("{}/cli/hello-arm64:1", reg.host());
    let arm_args = |extra: &[&str]| {
        let mut a = vec!["--insecure", "--platform", "linux/arm64"];
        a.extend_from_slice(extra);
        child::push_args(&pkg, &arm_ref, &a)
    };
    let r = child::run(arm_args(&[]), home, &[], None);
    assert!(r.ok(), "{r}");
    let raw = skopeo_raw(&arm_ref);
    let sub_digest = cnbpkg::digest::Digest::of(&raw);
    assert_eq!(sub_digest, arm.digest);
    assert_eq!(raw, arm_bytes);
    assert_eq!(r.stdout, format!("{sub_digest}\n"), "{r}");
    assert_eq!(
        skopeo_raw(&format!("{}/cli/hello-arm64@{}", reg.host(), arm.digest)),
        arm_bytes
    );

    // The same with --json reports exactly that one manifest, and nothing new to send.
    let v = json(&child::run(arm_args(&["--json"]), home, &[], None));
    assert_eq!(v["digest"], sub_digest.to_string().as_str(), "{v}");
    assert_eq!(v["bytesSent"], 0, "{v}");
    let manifests = v["manifests"].as_array().unwrap();
    assert_eq!(manifests.len(), 1, "{v}");
    assert_eq!(
        manifests[0]["digest"],
        arm.digest.to_string().as_str(),
        "{v}"
    );
    assert_eq!(manifests[0]["platform"]["architecture"], "arm64", "{v}");
}

#[test]
fn password_from_stdin_and_a_wrong_password() {
    const USER: &str = "x";
    const PASSWORD: &str = "stdin-Pa55-w0rd";
    let reg = Registry::start(Config {
        tls: None,
        auth: Auth::Basic(USER.into(), PASSWORD.into()),
    });
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path();
    let pkg = packages::single(tmp.path(), "pkg", 41, &[50_000]);
    let digest = packages::top(&pkg).0.digest.to_string();
    let reference = format!("{}/cli/auth:1", reg.host());
    let args = child::push_args(
        &pkg,
        &reference,
        &["--insecure", "--username", USER, "--password-stdin"],
    );
    let no_secret = |r: &child::Outcome, secret: &str| {
        assert!(!r.stdout.contains(secret), "secret on stdout:\n{r}");
        assert!(!r.stderr.contains(secret), "secret on stderr:\n{r}");
    };

    let r = child::run(&args, home, &[], Some(&format!("{PASSWORD}\n")));
    assert!(r.ok(), "{r}\n{}", reg.log());
    assert_eq!(r.stdout, format!("{digest}\n"), "{r}");
    no_secret(&r, PASSWORD);

    let wrong = "wrong-Pa55-w0rd";
    let r = child::run(&args, home, &[], Some(&format!("{wrong}\n")));
    assert_eq!(r.code(), Some(1), "{r}");
    assert!(r.stdout.is_empty(), "{r}");
    let err = r.error_line();
    assert!(err.contains(&reg.host()), "{r}");
    assert!(err.contains("authentication failed"), "{r}");
    no_secret(&r, wrong);
    no_secret(&r, PASSWORD);

    // No password on stdin at all: still one clear error, exit 1.
    let r = child::run(&args, home, &[], Some(""));
    assert_eq!(r.code(), Some(1), "{r}");
    assert!(r.stdout.is_empty(), "{r}");
    r.error_line();
}

#[test]
fn usage_errors_exit_2() {
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path();
    let pkg = packages::single(tmp.path(), "pkg", 42, &[1000]);
    let reference = format!("127.0.0.1:{}/x/y:1", free_port());

    let r = child::run(
        child::push_args(&pkg, &reference, &["--insecure", "--jobs", "0"]),
        home,
        &[],
        None,
    );
    assert_eq!(r.code(), Some(2), "{r}");
    assert!(r.stdout.is_empty(), "{r}");
    assert!(r.error_line().contains("--jobs"), "{r}");

    // --username needs --password-stdin.
    let r = child::run(
        child::push_args(&pkg, &reference, &["--insecure", "--username", "x"]),
        home,
        &[],
        None,
    );
    assert_eq!(r.code(), Some(2), "{r}");
    assert!(r.stdout.is_empty(), "{r}");
}

#[test]
fn unreachable_registry_exits_1_naming_it() {
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path();
    let pkg = packages::single(tmp.path(), "pkg", 43, &[1000]);
    let host = format!("127.0.0.1:{}", free_port());
    // Every request is retried; a short first backoff keeps the retries quick.
    let r = child::run(
        child::push_args(&pkg, &format!("{host}/x/y:1"), &["--insecure"]),
        home,
        &[(cnbpkg::registry::RETRY_BACKOFF_ENV, "10".as_ref())],
        None,
    );
    assert_eq!(r.code(), Some(1), "{r}");
    assert!(r.stdout.is_empty(), "{r}");
    let err = r.error_line();
    assert!(err.contains(&host), "{r}");
    assert!(err.contains("cannot connect"), "{r}");
}
