//! `cnbpkg push` against small registries of the test's own that misbehave on purpose:
//! upload locations on another host, redirects for a manifest PUT, absurd token lifetimes,
//! servers that trickle or never answer; plus credential files that would leak if echoed.

use std::ffi::OsStr;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;

use crate::support::registry::free_port;
use crate::support::{child, packages};

use crate::support::hostile::*;

/// A registry that accepts uploads of anything: blobs are missing, sessions start at
/// `location(path)`, uploads and manifests are created; `/v2/` wants basic auth.
fn lenient(location: impl Fn() -> String + Send + Sync + 'static) -> Arc<Handler> {
    Arc::new(move |r: &Seen| {
        let authed = r.headers.contains_key("authorization");
        if r.path == "/v2/" {
            return if authed {
                reply("200 OK", &[], b"{}")
            } else {
                reply(
                    "401 Unauthorized",
                    &[("WWW-Authenticate", "Basic realm=\"test\"")],
                    b"",
                )
            };
        }
        match r.method.as_str() {
            "HEAD" => reply("404 Not Found", &[], b""),
            "POST" => reply("202 Accepted", &[("Location", &location())], b""),
            _ => reply("201 Created", &[], b""),
        }
    })
}

const USER: &str = "carol";
const PASSWORD: &str = "hunter2-Secr3t";

fn push_with_password(
    pkg: &Path,
    reference: &str,
    home: &Path,
    envs: &[(&str, &OsStr)],
) -> child::Outcome {
    child::run(
        child::push_args(
            pkg,
            reference,
            &["--insecure", "--username", USER, "--password-stdin"],
        ),
        home,
        envs,
        Some(&format!("{PASSWORD}\n")),
    )
}

#[test]
fn upload_location_on_another_port_gets_no_credentials() {
    let tmp = tempfile::tempdir().unwrap();
    let pkg = packages::single(tmp.path(), "pkg", 7, &[2000]);
    // The "storage" host the registry hands uploads to: another listener of our own.
    let elsewhere = Server::start(Arc::new(|_r: &Seen| reply("201 Created", &[], b"")));
    let other = elsewhere.port;
    let registry = Server::start(lenient(move || {
        format!("http://127.0.0.1:{other}/upload/1?state=x")
    }));
    let r = push_with_password(
        &pkg,
        &format!("127.0.0.1:{}/team/app:1", registry.port),
        tmp.path(),
        &[],
    );
    assert!(r.ok(), "{r}");
    let there = elsewhere.seen();
    assert!(
        !there.is_empty(),
        "the upload never reached the other host: {r}"
    );
    for s in &there {
        assert!(
            !s.headers.contains_key("authorization"),
            "credentials sent to another port: {s:?}"
        );
    }
    // The registry itself did get them.
    assert!(registry
        .seen()
        .iter()
        .any(|s| s.headers.contains_key("authorization")));
}

#[test]
fn manifest_put_answered_with_a_redirect_is_a_failure() {
    let tmp = tempfile::tempdir().unwrap();
    let pkg = packages::single(tmp.path(), "pkg", 8, &[2000]);
    let server = Server::start(Arc::new(|r: &Seen| {
        if r.method == "PUT" && r.path.contains("/manifests/") {
            return reply(
                "302 Found",
                &[("Location", "/v2/team/app/manifests/elsewhere")],
                b"",
            );
        }
        if r.path == "/v2/" {
            return reply("200 OK", &[], b"{}");
        }
        match r.method.as_str() {
            "HEAD" => reply("404 Not Found", &[], b""),
            "POST" => reply(
                "202 Accepted",
                &[("Location", "/v2/team/app/blobs/uploads/u1")],
                b"",
            ),
            "GET" => reply("200 OK", &[], b"{}"),
            _ => reply("201 Created", &[], b""),
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
    assert!(!r.stderr.contains("Pushed"), "{r}");
    assert!(r.error_line().contains("302"), "{r}");
    assert!(
        !server.seen().iter().any(|s| s.path.ends_with("/elsewhere")),
        "the redirect was followed"
    );
}

#[test]
fn huge_token_lifetime_does_not_panic() {
    let tmp = tempfile::tempdir().unwrap();
    let pkg = packages::single(tmp.path(), "pkg", 9, &[2000]);
    let port = Arc::new(AtomicUsize::new(0));
    let p2 = port.clone();
    let server = Server::start(Arc::new(move |r: &Seen| {
        let realm = format!(
            "Bearer realm=\"http://127.0.0.1:{}/token\",service=\"t\"",
            p2.load(Ordering::Relaxed)
        );
        if r.path.starts_with("/token") {
            return reply(
                "200 OK",
                &[("Content-Type", "application/json")],
                br#"{"token":"tok","expires_in":18446744073709551615}"#,
            );
        }
        if !r.headers.contains_key("authorization") {
            return reply("401 Unauthorized", &[("WWW-Authenticate", &realm)], b"");
        }
        reply("400 Bad Request", &[], b"")
    }));
    port.store(server.port as usize, Ordering::Relaxed);
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
    assert!(!r.stderr.contains("panicked"), "{r}");
    r.error_line();
}

fn fast(envs: &mut Vec<(&'static str, std::ffi::OsString)>) {
    envs.push((cnbpkg::registry::REQUEST_TIMEOUT_ENV, "1500".into()));
    envs.push((cnbpkg::registry::RETRY_BACKOFF_ENV, "10".into()));
}

#[test]
fn trickling_registry_hits_the_deadline() {
    let tmp = tempfile::tempdir().unwrap();
    let pkg = packages::single(tmp.path(), "pkg", 10, &[2000]);
    let server = Server::start(Arc::new(|_r: &Seen| {
        // A 200 whose 100-byte body comes one byte a second: every read succeeds.
        Reply::Trickle(
            b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n".to_vec(),
            vec![b' '; 100],
            Duration::from_secs(1),
        )
    }));
    let mut envs = Vec::new();
    fast(&mut envs);
    let envs: Vec<(&str, &OsStr)> = envs.iter().map(|(k, v)| (*k, v.as_os_str())).collect();
    let r = child::run(
        child::push_args(
            &pkg,
            &format!("127.0.0.1:{}/team/app:1", server.port),
            &["--insecure"],
        ),
        tmp.path(),
        &envs,
        None,
    );
    assert_eq!(r.code(), Some(1), "{r}");
    assert!(r.error_line().contains("timed out"), "{r}");
    assert!(r.stderr.contains("Retrying GET /v2/"), "{r}");
}

#[test]
fn silent_registry_announces_each_retry_as_it_starts() {
    let tmp = tempfile::tempdir().unwrap();
    let pkg = packages::single(tmp.path(), "pkg", 11, &[2000]);
    let server = Server::start(Arc::new(|_r: &Seen| Reply::Silent));
    let mut envs = Vec::new();
    fast(&mut envs);
    let envs: Vec<(&str, &OsStr)> = envs.iter().map(|(k, v)| (*k, v.as_os_str())).collect();
    let mut c = child::spawn(
        child::push_args(
            &pkg,
            &format!("127.0.0.1:{}/team/app:1", server.port),
            &["--insecure"],
        ),
        tmp.path(),
        &envs,
    );
    let stderr = BufReader::new(c.stderr.take().unwrap());
    let mut lines = Vec::new();
    let mut requests_at_first_retry = None;
    // Bounded by the child's own deadlines (5 attempts of 1.5 s); read until it closes stderr.
    for line in stderr.lines() {
        let line = line.unwrap();
        if line.contains("Retrying") && requests_at_first_retry.is_none() {
            requests_at_first_retry = Some(server.seen().len());
        }
        lines.push(line);
    }
    let status = c.wait().unwrap();
    assert_eq!(status.code(), Some(1), "{lines:?}");
    let n = requests_at_first_retry.unwrap_or_else(|| panic!("no retry announced: {lines:?}"));
    // Announced while the second attempt starts, not after all five have failed.
    assert!(
        n <= 2,
        "first retry announced after {n} attempts: {lines:?}"
    );
    assert!(lines.last().unwrap().contains("timed out"), "{lines:?}");
}

#[test]
fn malformed_config_entry_is_located_not_quoted() {
    let tmp = tempfile::tempdir().unwrap();
    let secret = base64::engine::general_purpose::STANDARD.encode("dave:Pa55-leak-me");
    let docker = tmp.path().join("docker");
    std::fs::create_dir(&docker).unwrap();
    std::fs::write(
        docker.join("config.json"),
        format!("{{\n  \"auths\": {{\n    \"other.example\": \"{secret}\"\n  }}\n}}\n"),
    )
    .unwrap();
    let pkg = packages::single(tmp.path(), "pkg", 12, &[1000]);
    let r = child::run(
        child::push_args(
            &pkg,
            &format!("127.0.0.1:{}/x/y:1", free_port()),
            &["--insecure"],
        ),
        tmp.path(),
        &[("DOCKER_CONFIG", docker.as_os_str())],
        None,
    );
    assert_eq!(r.code(), Some(1), "{r}");
    let e = r.error_line();
    assert!(e.contains("config.json") && e.contains("line 3"), "{r}");
    assert!(!r.stderr.contains(&secret), "{r}");
    assert!(!r.stderr.contains("Pa55-leak-me"), "{r}");
}

#[test]
fn push_jobs_are_bounded_and_documented() {
    let tmp = tempfile::tempdir().unwrap();
    let pkg = packages::single(tmp.path(), "pkg", 13, &[1000]);
    let reference = format!("127.0.0.1:{}/x/y:1", free_port());
    for jobs in ["18446744073709551615", "100000", "33", "0"] {
        let r = child::run(
            child::push_args(&pkg, &reference, &["--insecure", "--jobs", jobs]),
            tmp.path(),
            &[],
            None,
        );
        assert_eq!(r.code(), Some(2), "--jobs {jobs}: {r}");
        assert!(!r.stderr.contains("panicked"), "{r}");
        assert!(r.stderr.contains("--jobs"), "{r}");
    }
    let r = child::run(["push", "--help"], tmp.path(), &[], None);
    assert!(r.ok(), "{r}");
    assert!(r.stdout.contains("1 to 32"), "{r}");
}

#[test]
fn chunked_upload_that_never_progresses_ends() {
    let tmp = tempfile::tempdir().unwrap();
    let pkg = packages::single(tmp.path(), "pkg", 14, &[3000]);
    // Monolithic PUTs are "too large"; every chunk is answered as if only byte 0 was kept.
    let server = Server::start(Arc::new(|r: &Seen| {
        if r.path == "/v2/" {
            return reply("200 OK", &[], b"{}");
        }
        let has_body = r.headers.get("content-length").is_some_and(|l| l != "0");
        match r.method.as_str() {
            "HEAD" => reply("404 Not Found", &[], b""),
            "POST" => reply(
                "202 Accepted",
                &[("Location", "/v2/team/app/blobs/uploads/u1")],
                b"",
            ),
            "PUT" if has_body => reply("413 Payload Too Large", &[], b""),
            "PATCH" => reply(
                "202 Accepted",
                &[
                    ("Location", "/v2/team/app/blobs/uploads/u1"),
                    ("Range", "0-0"),
                ],
                b"",
            ),
            _ => reply("201 Created", &[], b""),
        }
    }));
    let envs = [(cnbpkg::registry::RETRY_BACKOFF_ENV, OsStr::new("10"))];
    let r = child::run(
        child::push_args(
            &pkg,
            &format!("127.0.0.1:{}/team/app:1", server.port),
            &["--insecure", "--jobs", "1"],
        ),
        tmp.path(),
        &envs,
        None,
    );
    assert_eq!(r.code(), Some(1), "{r}");
    assert!(r.error_line().contains("kept none"), "{r}");
    let patches = server.seen().iter().filter(|s| s.method == "PATCH").count();
    assert!(patches <= 20, "{patches} PATCH requests");
}
