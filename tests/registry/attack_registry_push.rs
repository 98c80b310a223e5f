//! `cnbpkg push` attacked by registries and credential sources of the test's own: a package
//! whose blob bytes do not match their digest, credential helpers that fail loudly (with the
//! secret in their output) or flood their pipes, an endless `--password-stdin`.

use crate::support;
use std::ffi::OsStr;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use crate::support::registry::Registry;
use crate::support::{child, packages};
use cnbpkg::layout::OutputFormat;

use crate::support::hostile::*;

/// A registry that takes anything without checking it: no auth, every blob missing, every
/// upload and manifest "created" (as a careless proxy or a hostile server would).
fn accepts_anything() -> Arc<Handler> {
    Arc::new(|r: &Seen| {
        if r.path == "/v2/" {
            return reply("200 OK", &[], b"{}");
        }
        match r.method.as_str() {
            "HEAD" => reply("404 Not Found", &[], b""),
            "POST" => reply("202 Accepted", &[("Location", "/v2/upload/1")], b""),
            _ => reply("201 Created", &[], b""),
        }
    })
}

/// A two-platform layout whose largest layer has one byte changed (its size unchanged).
fn corrupt_layout(dir: &Path) -> (PathBuf, String) {
    let pkg = packages::multi_with(dir, "pkg", 31, 300_000, OutputFormat::Layout);
    let blobs = pkg.join("blobs/sha256");
    let mut largest: Option<(u64, PathBuf)> = None;
    for e in std::fs::read_dir(&blobs).unwrap() {
        let p = e.unwrap().path();
        let n = std::fs::metadata(&p).unwrap().len();
        if largest.as_ref().is_none_or(|(m, _)| n > *m) {
            largest = Some((n, p));
        }
    }
    let (_, p) = largest.unwrap();
    let mut bytes = std::fs::read(&p).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    std::fs::write(&p, bytes).unwrap();
    let hex = p.file_name().unwrap().to_string_lossy().to_string();
    (pkg, hex)
}

#[test]
fn blob_that_does_not_match_its_digest_is_never_completed() {
    let tmp = tempfile::tempdir().unwrap();
    let (pkg, hex) = corrupt_layout(tmp.path());
    let server = Server::start(accepts_anything());
    let r = child::run(
        child::push_args(
            &pkg,
            &format!("127.0.0.1:{}/team/app:1", server.port),
            &["--insecure"],
        ),
        tmp.path(),
        &[],
        None,
    );
    assert_eq!(r.code(), Some(1), "{r}");
    let line = r.error_line();
    assert!(
        line.contains(&hex[..12]) && line.contains("does not match"),
        "the error does not name the damaged blob: {r}"
    );
    // Detected on the first read: not retried as if the network had failed.
    assert!(!format!("{r}").contains("Retrying upload"), "{r}");
    let seen = server.seen();
    assert!(
        !seen
            .iter()
            .any(|s| s.path.contains("/manifests/") && s.method == "PUT"),
        "a manifest was pushed for a damaged package: {seen:?}"
    );
    // The damaged blob was never sent whole: its PUT broke off before its last bytes.
    let puts: Vec<&Seen> = seen
        .iter()
        .filter(|s| s.method == "PUT" && s.path.contains(&hex))
        .collect();
    assert!(!puts.is_empty(), "{seen:?}");
    for s in puts {
        let len: u64 = s.headers["content-length"].parse().unwrap();
        assert!(s.received < len, "the damaged blob was sent whole: {s:?}");
    }
}

#[test]
fn damaged_package_leaves_no_tag_in_the_real_registry() {
    let tmp = tempfile::tempdir().unwrap();
    let (pkg, hex) = corrupt_layout(tmp.path());
    let reg = Registry::start_plain();
    let reference = format!("{}/team/app:1", reg.host());
    let r = child::run(
        child::push_args(&pkg, &reference, &["--insecure"]),
        tmp.path(),
        &[],
        None,
    );
    assert_eq!(r.code(), Some(1), "{r}");
    assert!(r.error_line().contains(&hex[..12]), "{r}");
    let skopeo = support::require("skopeo", "skopeo");
    let out = std::process::Command::new(skopeo)
        .args([
            "inspect",
            "--raw",
            "--tls-verify=false",
            &format!("docker://{reference}"),
        ])
        .output()
        .unwrap();
    assert!(
        !out.status.success(),
        "the tag exists after a failed push: {}",
        String::from_utf8_lossy(&out.stdout)
    );
}

const SECRET: &str = "Zq9-distinctive-Pa55word";

/// A `docker-credential-NAME` script in `dir/bin` running `body` (sh), and a Docker config in
/// `dir/docker` that names it for `registry`.
fn helper(dir: &Path, name: &str, body: &str, registry: &str) -> (PathBuf, PathBuf) {
    use std::os::unix::fs::PermissionsExt;
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let script = bin.join(format!("docker-credential-{name}"));
    std::fs::write(&script, format!("#!/bin/sh\ncat >/dev/null\n{body}\n")).unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let docker = dir.join("docker");
    std::fs::create_dir_all(&docker).unwrap();
    std::fs::write(
        docker.join("config.json"),
        format!(r#"{{"credHelpers":{{"{registry}":"{name}"}}}}"#),
    )
    .unwrap();
    (bin, docker)
}

fn path_with(bin: &Path) -> std::ffi::OsString {
    let mut paths = vec![bin.to_path_buf()];
    paths.extend(std::env::split_paths(
        &std::env::var_os("PATH").unwrap_or_default(),
    ));
    std::env::join_paths(paths).unwrap()
}

#[test]
fn failing_credential_helper_output_is_not_echoed() {
    let tmp = tempfile::tempdir().unwrap();
    let pkg = packages::single(tmp.path(), "pkg", 32, &[100]);
    let registry = "127.0.0.1:9";
    // A helper that fails after printing the secret on both streams (a debug print, a
    // half-written answer): neither stream may reach the user's terminal or CI log.
    let (bin, docker) = helper(
        tmp.path(),
        "leaky",
        &format!(
            "echo '{{\"Username\":\"u\",\"Secret\":\"{SECRET}\"}}'\necho \"token {SECRET} rejected\" >&2\nexit 3"
        ),
        registry,
    );
    let r = child::run(
        child::push_args(&pkg, &format!("{registry}/team/app:1"), &["--insecure"]),
        tmp.path(),
        &[
            ("PATH", &path_with(&bin)),
            ("DOCKER_CONFIG", docker.as_os_str()),
        ],
        None,
    );
    assert_eq!(r.code(), Some(1), "{r}");
    assert!(!format!("{r}").contains(SECRET), "secret echoed: {r}");
    assert!(r.error_line().contains("docker-credential-leaky"), "{r}");
}

#[test]
fn credential_helper_flooding_its_pipes_is_read_to_the_end() {
    let tmp = tempfile::tempdir().unwrap();
    let pkg = packages::single(tmp.path(), "pkg", 33, &[100]);
    let server = Server::start(accepts_anything());
    let registry = format!("127.0.0.1:{}", server.port);
    // 2 MiB on stderr before the answer: a helper must not block on a pipe nobody reads.
    let (bin, docker) = helper(
        tmp.path(),
        "chatty",
        &format!(
            "head -c 2097152 /dev/zero >&2\necho '{{\"Username\":\"u\",\"Secret\":\"{SECRET}\"}}'"
        ),
        &registry,
    );
    let r = child::run(
        child::push_args(&pkg, &format!("{registry}/team/app:1"), &["--insecure"]),
        tmp.path(),
        &[
            ("PATH", &path_with(&bin)),
            ("DOCKER_CONFIG", docker.as_os_str()),
        ],
        None,
    );
    assert!(r.ok(), "{r}");
    assert!(format!("{r}").contains("Credentials for"), "{r}");
    assert!(!format!("{r}").contains(SECRET), "{r}");

    // 4 MiB on stdout: more than cnbpkg reads, refused as not an answer (not waited on).
    let (bin, docker) = helper(
        &tmp.path().join("second"),
        "verbose",
        "head -c 4194304 /dev/zero | tr '\\\\0' ' '\necho '{}'",
        &registry,
    );
    let r = child::run(
        child::push_args(&pkg, &format!("{registry}/team/app:1"), &["--insecure"]),
        tmp.path(),
        &[
            ("PATH", &path_with(&bin)),
            ("DOCKER_CONFIG", docker.as_os_str()),
        ],
        None,
    );
    assert_eq!(r.code(), Some(1), "{r}");
    assert!(r.error_line().contains("not its JSON answer"), "{r}");
}

#[test]
fn endless_password_stdin_is_refused_not_buffered() {
    let tmp = tempfile::tempdir().unwrap();
    let pkg = packages::single(tmp.path(), "pkg", 34, &[100]);
    // An endless line (a file given by mistake, `yes | …`): read a bounded amount only.
    let mut c = child::command(
        child::push_args(
            &pkg,
            "127.0.0.1:9/team/app:1",
            &["--insecure", "--username", "u", "--password-stdin"],
        ),
        tmp.path(),
        &[],
    );
    c.stdin(std::process::Stdio::piped());
    let mut proc = c.spawn().unwrap();
    let mut stdin = proc.stdin.take().unwrap();
    let feeder = std::thread::spawn(move || {
        let block = vec![b'x'; 1 << 16];
        // At most 1 GiB; cnbpkg stops reading (closing the pipe) long before.
        for _ in 0..(1 << 14) {
            if stdin.write_all(&block).is_err() {
                return true;
            }
        }
        false
    });
    let r = child::finish(proc);
    assert!(feeder.join().unwrap(), "cnbpkg read 1 GiB of password: {r}");
    assert_eq!(r.code(), Some(1), "{r}");
    assert!(r.error_line().contains("password"), "{r}");
}

const USER: &str = "dave";

fn basic_ok(r: &Seen) -> bool {
    use base64::Engine as _;
    let want = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{SECRET}"))
    );
    r.headers.get("authorization") == Some(&want)
}

fn push_with_secret(pkg: &Path, reference: &str, home: &Path) -> child::Outcome {
    child::run(
        child::push_args(
            pkg,
            reference,
            &["--insecure", "--username", USER, "--password-stdin"],
        ),
        home,
        &[],
        Some(&format!("{SECRET}\n")),
    )
}

#[test]
fn challenge_from_a_redirect_target_gets_no_credentials() {
    let tmp = tempfile::tempdir().unwrap();
    let pkg = packages::single(tmp.path(), "pkg", 35, &[100]);
    // A third party: the storage host a HEAD is redirected to, which answers 401 naming a
    // token server of its own (itself).
    let own_port = Arc::new(std::sync::atomic::AtomicU16::new(0));
    let p2 = own_port.clone();
    let evil = Server::start(Arc::new(move |r: &Seen| {
        if r.path.starts_with("/token") {
            return reply("200 OK", &[], br#"{"token":"t"}"#);
        }
        let realm = format!(
            "Bearer realm=\"http://127.0.0.1:{}/token\"",
            p2.load(Ordering::SeqCst)
        );
        reply("401 Unauthorized", &[("WWW-Authenticate", &realm)], b"")
    }));
    own_port.store(evil.port, Ordering::SeqCst);
    let evil_port = evil.port;
    let registry = Server::start(Arc::new(move |r: &Seen| {
        if !basic_ok(r) {
            return reply(
                "401 Unauthorized",
                &[("WWW-Authenticate", "Basic realm=\"test\"")],
                b"",
            );
        }
        if r.path == "/v2/" {
            return reply("200 OK", &[], b"{}");
        }
        if r.method == "HEAD" {
            let to = format!("http://127.0.0.1:{evil_port}/blob");
            return reply("307 Temporary Redirect", &[("Location", &to)], b"");
        }
        reply("500 Internal Server Error", &[], b"")
    }));
    let r = push_with_secret(
        &pkg,
        &format!("127.0.0.1:{}/team/app:1", registry.port),
        tmp.path(),
    );
    assert_eq!(r.code(), Some(1), "{r}");
    for s in evil.seen() {
        assert!(
            !s.headers.contains_key("authorization"),
            "credentials sent to a host the registry redirected to: {s:?}"
        );
    }
    assert!(!format!("{r}").contains(SECRET), "{r}");

    // The same when `/v2/` itself is redirected there before any login.
    let registry = Server::start(Arc::new(move |_r: &Seen| {
        let to = format!("http://127.0.0.1:{evil_port}/v2/");
        reply("302 Found", &[("Location", &to)], b"")
    }));
    let r = push_with_secret(
        &pkg,
        &format!("127.0.0.1:{}/team/app:1", registry.port),
        tmp.path(),
    );
    assert_eq!(r.code(), Some(1), "{r}");
    for s in evil.seen() {
        assert!(
            !s.headers.contains_key("authorization"),
            "credentials sent to the host /v2/ was redirected to: {s:?}"
        );
    }
}

/// A registry asking for bearer tokens from its own `/token`, whose token answer, upload
/// location, digests and HEAD answers are `bad`'s choice.
fn hostile(bad: &'static str) -> Server {
    let own_port = Arc::new(std::sync::atomic::AtomicU16::new(0));
    let p2 = own_port.clone();
    let server = Server::start(Arc::new(move |r: &Seen| {
        let port = p2.load(Ordering::SeqCst);
        if r.path.starts_with("/token") {
            let body: Vec<u8> = match bad {
                "token-not-json" => b"<html>hello</html>".to_vec(),
                "token-negative" => br#"{"access_token":"t","expires_in":-5}"#.to_vec(),
                "token-float" => br#"{"token":"t","expires_in":1.5e300}"#.to_vec(),
                "token-string" => br#"{"token":"t","expires_in":"soon"}"#.to_vec(),
                "token-huge" => format!(r#"{{"token":"{}"}}"#, "a".repeat(2 << 20)).into_bytes(),
                "token-newline" => br#"{"token":"a\r\nX-Injected: 1"}"#.to_vec(),
                _ => br#"{"token":"t","expires_in":300}"#.to_vec(),
            };
            return reply("200 OK", &[], &body);
        }
        if bad == "huge-header" {
            let big = "h".repeat(1 << 20);
            return reply("200 OK", &[("X-Big", &big)], b"{}");
        }
        if bad == "always-401"
            || r.headers.get("authorization").map(String::as_str) != Some("Bearer t")
        {
            let realm = match bad {
                "realm-javascript" => "Bearer realm=\"javascript:alert(1)\"".to_string(),
                "realm-unterminated" => "Bearer realm=\"http://127.0.0.1:1/x".to_string(),
                "challenge-garbage" => "Bearer ,,,=\"\\\\\"\"=,realm".to_string(),
                _ => format!(
                    "Bearer realm=\"http://127.0.0.1:{port}/token\",service=\"s\",scope=\"{}\"",
                    "repository:x:pull ".repeat(if bad == "many-scopes" { 500 } else { 1 })
                ),
            };
            return reply("401 Unauthorized", &[("WWW-Authenticate", &realm)], b"");
        }
        if r.path == "/v2/" {
            return reply("200 OK", &[], b"{}");
        }
        let wrong = "sha256:0000000000000000000000000000000000000000000000000000000000000000";
        match (r.method.as_str(), bad) {
            ("HEAD", "head-wrong-digest") => {
                reply("200 OK", &[("Docker-Content-Digest", wrong)], b"")
            }
            ("HEAD", _) => reply("404 Not Found", &[], b""),
            ("POST", "no-location") => reply("202 Accepted", &[], b""),
            ("POST", "javascript-location") => {
                reply("202 Accepted", &[("Location", "javascript:alert(1)")], b"")
            }
            ("POST", _) => reply("202 Accepted", &[("Location", "/v2/upload/1")], b""),
            ("PUT", "put-wrong-digest") if !r.path.contains("/manifests/") => {
                reply("201 Created", &[("Docker-Content-Digest", wrong)], b"")
            }
            _ => reply("201 Created", &[], b""),
        }
    }));
    own_port.store(server.port, Ordering::SeqCst);
    server
}

#[test]
fn hostile_token_servers_and_registry_answers_fail_cleanly() {
    let tmp = tempfile::tempdir().unwrap();
    let pkg = packages::single(tmp.path(), "pkg", 36, &[100]);
    for (bad, should_push) in [
        ("fine", true),
        ("token-negative", true),
        ("token-float", true),
        ("token-string", true),
        ("many-scopes", true),
        ("token-not-json", false),
        ("token-huge", false),
        ("token-newline", false),
        ("realm-javascript", false),
        ("realm-unterminated", false),
        ("challenge-garbage", false),
        ("head-wrong-digest", false),
        ("no-location", false),
        ("javascript-location", false),
        ("put-wrong-digest", false),
        ("huge-header", false),
        ("always-401", false),
    ] {
        let server = hostile(bad);
        let r = push_with_secret(
            &pkg,
            &format!("127.0.0.1:{}/team/app:1", server.port),
            tmp.path(),
        );
        let all = format!("{r}");
        assert!(!all.contains(SECRET), "{bad}: {r}");
        assert!(!all.contains("panicked"), "{bad}: {r}");
        if should_push {
            assert!(r.ok(), "{bad}: {r}");
        } else {
            assert_eq!(r.code(), Some(1), "{bad}: {r}");
            let line = r.error_line();
            assert!(line.len() < 400, "{bad}: {r}");
            assert!(!line.contains("X-Injected"), "{bad}: {r}");
        }
        let manifests = server
            .seen()
            .iter()
            .filter(|s| s.method == "PUT" && s.path.contains("/manifests/"))
            .count();
        assert_eq!(manifests > 0, should_push, "{bad}: {r}");
    }
}

#[test]
fn digest_file_never_replaces_an_input() {
    let tmp = tempfile::tempdir().unwrap();
    let cnb = packages::single(tmp.path(), "pkg", 37, &[100]);
    let layout = packages::multi_with(tmp.path(), "lay", 38, 100, OutputFormat::Layout);
    let ca = tmp.path().join("ca.pem");
    std::fs::write(&ca, "not read before the check\n").unwrap();
    let server = Server::start(accepts_anything());
    let reference = format!("127.0.0.1:{}/team/app:1", server.port);
    let cases: Vec<(PathBuf, PathBuf, Vec<String>)> = vec![
        (cnb.clone(), cnb.clone(), vec![]),
        (layout.clone(), layout.join("index.json"), vec![]),
        (layout.clone(), layout.join("blobs/sha256/new"), vec![]),
        (
            cnb.clone(),
            ca.clone(),
            vec!["--ca-cert".into(), ca.display().to_string()],
        ),
    ];
    for (pkg, digest_file, extra) in cases {
        let before = std::fs::read(&digest_file).ok();
        let mut args = child::push_args(&pkg, &reference, &["--insecure", "--digest-file"]);
        args.push(digest_file.clone().into());
        args.extend(extra.iter().map(Into::into));
        let r = child::run(args, tmp.path(), &[], None);
        assert!(!r.ok(), "{}: {r}", digest_file.display());
        assert!(r.error_line().contains("--digest-file"), "{r}");
        assert_eq!(
            std::fs::read(&digest_file).ok(),
            before,
            "{} was replaced",
            digest_file.display()
        );
    }
}

#[test]
fn credential_helper_name_is_one_program_name_not_a_path() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().unwrap();
    let pkg = packages::single(tmp.path(), "pkg", 39, &[100]);
    let work = tmp.path().join("work");
    std::fs::create_dir_all(work.join("docker-credential-a")).unwrap();
    // `docker-credential-a/../../evil` from `work` is this script.
    let marker = tmp.path().join("ran");
    let evil = tmp.path().join("evil");
    std::fs::write(
        &evil,
        format!("#!/bin/sh\ntouch '{}'\necho '{{}}'\n", marker.display()),
    )
    .unwrap();
    std::fs::set_permissions(&evil, std::fs::Permissions::from_mode(0o755)).unwrap();
    let docker = tmp.path().join("docker");
    std::fs::create_dir_all(&docker).unwrap();
    std::fs::write(
        docker.join("config.json"),
        r#"{"credHelpers":{"127.0.0.1:9":"a/../../evil"}}"#,
    )
    .unwrap();
    let mut c = child::command(
        child::push_args(&pkg, "127.0.0.1:9/team/app:1", &["--insecure"]),
        tmp.path(),
        &[("DOCKER_CONFIG", docker.as_os_str())],
    );
    c.current_dir(&work);
    let r = child::finish(c.spawn().unwrap());
    assert!(!marker.exists(), "a program outside PATH was run: {r}");
    assert_eq!(r.code(), Some(1), "{r}");
    assert!(r.error_line().contains("credential helper"), "{r}");
}

#[test]
fn long_upload_locations_are_cut_short_in_messages() {
    let tmp = tempfile::tempdir().unwrap();
    let pkg = packages::single(tmp.path(), "pkg", 40, &[100]);
    let long = format!("/v2/upload/{}", "x".repeat(30_000));
    let server = Server::start(Arc::new(move |r: &Seen| {
        if r.path == "/v2/" {
            return reply("200 OK", &[], b"{}");
        }
        match r.method.as_str() {
            "HEAD" => reply("404 Not Found", &[], b""),
            "POST" => reply("202 Accepted", &[("Location", &long)], b""),
            _ => reply("400 Bad Request", &[], b""),
        }
    }));
    let r = child::run(
        child::push_args(
            &pkg,
            &format!("127.0.0.1:{}/team/app:1", server.port),
            &["--insecure"],
        ),
        tmp.path(),
        &[],
        None,
    );
    assert_eq!(r.code(), Some(1), "{r}");
    assert!(
        r.stderr.len() < 4000,
        "{} bytes of messages",
        r.stderr.len()
    );
}

#[test]
fn malformed_credential_files_never_print_the_secret() {
    use base64::Engine as _;
    let b64 = |s: &[u8]| base64::engine::general_purpose::STANDARD.encode(s);
    let tmp = tempfile::tempdir().unwrap();
    let pkg = packages::single(tmp.path(), "pkg", 41, &[100]);
    let h = "127.0.0.1:9";
    let mut invalid_utf8 = b"\xff\xfe".to_vec();
    invalid_utf8.extend_from_slice(format!("u:{SECRET}").as_bytes());
    let files: Vec<Vec<u8>> = vec![
        format!(
            r#"{{"auths":{{"{h}":"{}"}}}}"#,
            b64(format!("u:{SECRET}").as_bytes())
        )
        .into(),
        format!(
            r#"{{"auths":{{"{h}":{{"auth":"{}"}}}}}}"#,
            b64(SECRET.as_bytes())
        )
        .into(),
        format!(r#"{{"auths":{{"{h}":{{"auth":"!{SECRET}"}}}}}}"#).into(),
        format!(
            r#"{{"auths":{{"{h}":{{"auth":"{}"}}}}}}"#,
            b64(&invalid_utf8)
        )
        .into(),
        format!(r#"{{"auths":{{"{h}":{{"username":"u","password":["{SECRET}"]}}}}}}"#).into(),
        format!(r#"{{"auths":{{"{h}":{{"username":"u","password":"{SECRET}"}}}}, {SECRET}}}"#)
            .into(),
        format!(r#"{{"auths":{{"{h}":{{"identitytoken":1}}}},"x":"{SECRET}""#).into(),
        format!(r#"{{"auths":{{"{h}":{{"auth":"x","auth":"{SECRET}"}}}}}}"#).into(),
        format!(r#"{{"auths":["{SECRET}"]}}"#).into(),
        format!(r#"{{"credsStore":5,"auths":{{"{h}":{{"password":"{SECRET}"}}}}}}"#).into(),
        [
            &b"{\"auths\":{\"127.0.0.1:9\":{\"password\":\""[..],
            b"\xff",
            SECRET.as_bytes(),
            b"\"}}}",
        ]
        .concat(),
        format!("{}{SECRET}", "[".repeat(100_000)).into(),
    ];
    for (i, content) in files.iter().enumerate() {
        // Each file through each way of naming it: Docker's, podman's, REGISTRY_AUTH_FILE.
        for how in ["docker", "podman", "env"] {
            let dir = tmp.path().join(format!("{i}-{how}"));
            let (file, envs): (PathBuf, Vec<(&str, std::ffi::OsString)>) = match how {
                "docker" => (
                    dir.join("config.json"),
                    vec![("DOCKER_CONFIG", dir.clone().into())],
                ),
                "podman" => (
                    dir.join("containers/auth.json"),
                    vec![("XDG_RUNTIME_DIR", dir.clone().into())],
                ),
                _ => (
                    dir.join("auth.json"),
                    vec![("REGISTRY_AUTH_FILE", dir.join("auth.json").into())],
                ),
            };
            std::fs::create_dir_all(file.parent().unwrap()).unwrap();
            std::fs::write(&file, content).unwrap();
            let envs: Vec<(&str, &std::ffi::OsStr)> =
                envs.iter().map(|(k, v)| (*k, v.as_os_str())).collect();
            let r = child::run(
                child::push_args(&pkg, &format!("{h}/team/app:1"), &["--insecure"]),
                tmp.path(),
                &envs,
                None,
            );
            let all = format!("{r}");
            assert!(!all.contains(SECRET), "file {i} ({how}) leaked: {r}");
            assert!(!all.contains("panicked"), "file {i} ({how}): {r}");
            assert_eq!(r.code(), Some(1), "file {i} ({how}): {r}");
        }
    }
}

#[test]
fn failing_token_server_is_not_retried_inside_every_retry() {
    let tmp = tempfile::tempdir().unwrap();
    let pkg = packages::single(tmp.path(), "pkg", 42, &[100]);
    let own_port = Arc::new(std::sync::atomic::AtomicU16::new(0));
    let tokens = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let (p2, t2) = (own_port.clone(), tokens.clone());
    // The first token works; then the token server fails for good, and the registry wants a
    // new token for everything.
    let server = Server::start(Arc::new(move |r: &Seen| {
        if r.path.starts_with("/token") {
            return if t2.fetch_add(1, Ordering::SeqCst) == 0 {
                reply("200 OK", &[], br#"{"token":"t"}"#)
            } else {
                reply("503 Service Unavailable", &[], b"")
            };
        }
        if r.path == "/v2/" && r.headers.contains_key("authorization") {
            return reply("200 OK", &[], b"{}");
        }
        let realm = format!(
            "Bearer realm=\"http://127.0.0.1:{}/token\"",
            p2.load(Ordering::SeqCst)
        );
        reply("401 Unauthorized", &[("WWW-Authenticate", &realm)], b"")
    }));
    own_port.store(server.port, Ordering::SeqCst);
    let r = child::run(
        child::push_args(
            &pkg,
            &format!("127.0.0.1:{}/team/app:1", server.port),
            &["--insecure", "--jobs", "1"],
        ),
        tmp.path(),
        &[(cnbpkg::registry::RETRY_BACKOFF_ENV, OsStr::new("1"))],
        None,
    );
    assert_eq!(r.code(), Some(1), "{r}");
    // One login, then one round of attempts per refresh (each of the two blobs may have
    // started before the first failed): not attempts × attempts per blob.
    let n = tokens.load(Ordering::SeqCst);
    assert!(n <= 1 + 2 * 5, "{n} token requests: {r}");
}

#[test]
fn trickling_or_silent_token_server_hits_the_deadline() {
    let tmp = tempfile::tempdir().unwrap();
    let pkg = packages::single(tmp.path(), "pkg", 43, &[100]);
    for silent in [false, true] {
        let own_port = Arc::new(std::sync::atomic::AtomicU16::new(0));
        let p2 = own_port.clone();
        let server = Server::start(Arc::new(move |r: &Seen| {
            if r.path.starts_with("/token") {
                if silent {
                    return Reply::Silent;
                }
                let body = format!(r#"{{"token":"{}"}}"#, "t".repeat(10_000)).into_bytes();
                let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", body.len())
                    .into_bytes();
                return Reply::Trickle(head, body, Duration::from_millis(100));
            }
            let realm = format!(
                "Bearer realm=\"http://127.0.0.1:{}/token\"",
                p2.load(Ordering::SeqCst)
            );
            reply("401 Unauthorized", &[("WWW-Authenticate", &realm)], b"")
        }));
        own_port.store(server.port, Ordering::SeqCst);
        let r = child::run(
            child::push_args(
                &pkg,
                &format!("127.0.0.1:{}/team/app:1", server.port),
                &["--insecure"],
            ),
            tmp.path(),
            &[
                (cnbpkg::registry::RETRY_BACKOFF_ENV, OsStr::new("1")),
                (cnbpkg::registry::REQUEST_TIMEOUT_ENV, OsStr::new("800")),
            ],
            None,
        );
        assert_eq!(r.code(), Some(1), "silent {silent}: {r}");
        assert!(r.error_line().contains("timed out"), "silent {silent}: {r}");
    }
}

#[test]
fn damaged_blob_sent_in_chunks_is_caught_too() {
    let tmp = tempfile::tempdir().unwrap();
    let (pkg, hex) = corrupt_layout(tmp.path());
    let reg = Registry::start_plain();
    let reference = format!("{}/team/chunked:1", reg.host());
    let mut opts = support::push_options(pkg, reference.clone());
    opts.jobs = 1;
    let mut settings = support::settings();
    settings.chunk_threshold = 1000;
    settings.chunk_size = 16 << 10;
    let (result, lines) = support::push(&opts, &settings);
    let e = result.expect_err("a damaged package was pushed");
    assert!(
        matches!(&e, cnbpkg::Error::DigestMismatch { expected, actual, .. }
            if expected.hex() == hex && actual != expected),
        "{e}"
    );
    assert!(
        !lines.iter().any(|l| l.starts_with("Retrying")),
        "{lines:?}"
    );
    let skopeo = support::require("skopeo", "skopeo");
    let out = std::process::Command::new(skopeo)
        .args(["inspect", "--raw", "--tls-verify=false"])
        .arg(format!("docker://{reference}"))
        .output()
        .unwrap();
    assert!(!out.status.success(), "the tag exists after a failed push");
}
