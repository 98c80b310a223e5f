//! Faults: dropped connections and 503s mid-upload, a push killed midway and rerun, and an
//! unreachable registry.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crate::support::proxy::{Mode, Proxy};
use crate::support::registry::{free_port, Registry};
use crate::support::{child, packages, push, push_options, require, run, settings, skopeo_raw};

#[test]
fn survives_dropped_connections_and_503s() {
    let reg = Registry::start_plain();
    let tmp = tempfile::tempdir().unwrap();
    let pkg = packages::multi(tmp.path(), "pkg", 31, 1_500_000);
    for (seed, chunked) in [(7u64, false), (8, true)] {
        // Each fault costs at most one attempt, so a budget below the attempts always ends.
        let proxy = Proxy::start(
            reg.port,
            Mode::Faults {
                seed,
                percent: 70,
                budget: 6,
            },
        );
        let mut s = settings();
        s.attempts = 8;
        s.chunk_threshold = if chunked { 512 * 1024 } else { 64 << 20 };
        s.chunk_size = 256 * 1024;
        let repo = format!("faults/run{seed}");
        let mut o = push_options(&pkg, format!("{}/{repo}:1", proxy.host()));
        o.jobs = 3;
        let (r, lines) = push(&o, &s);
        let report = r.unwrap_or_else(|e| panic!("{e}\n{lines:?}"));
        assert!(
            proxy.faults.load(Ordering::Relaxed) > 0,
            "the proxy injected no fault"
        );
        assert!(
            lines.iter().any(|l| l.starts_with("Retrying ")),
            "no retry reported: {lines:?}"
        );
        eprintln!(
            "seed {seed}: {} faults injected; {lines:?}",
            proxy.faults.load(Ordering::Relaxed)
        );
        drop(proxy);
        // Read back from the registry directly.
        let direct = format!("{}/{repo}:1", reg.host());
        assert_eq!(skopeo_raw(&direct), packages::top(&pkg).1);
        assert_eq!(report.digest, packages::top(&pkg).0.digest);
        let skopeo = require("skopeo", "skopeo");
        run(std::process::Command::new(skopeo)
            .args(["copy", "--all", "--src-tls-verify=false"])
            .arg(format!("docker://{direct}"))
            .arg(format!(
                "oci:{}:x",
                tmp.path().join(format!("copy{seed}")).display()
            )));
    }
}

#[test]
fn killed_push_can_be_rerun() {
    let reg = Registry::start_plain();
    let tmp = tempfile::tempdir().unwrap();
    let pkg = packages::multi(tmp.path(), "pkg", 32, 2_000_000);
    let proxy = Proxy::start(reg.port, Mode::Stall { after: 900_000 });
    // The real CLI in a child process, so it can be killed midway.
    let args = child::push_args(
        &pkg,
        &format!("{}/killed/app:1", proxy.host()),
        &["--insecure", "--jobs", "2"],
    );
    let mut c = child::spawn(args, tmp.path(), &[]);
    let deadline = Instant::now() + Duration::from_secs(60);
    while !proxy.stalled.load(Ordering::Relaxed) {
        if let Some(status) = c.try_wait().unwrap() {
            let out = child::finish(c);
            panic!("the child push ended ({status}) before the stall point:\n{out}");
        }
        if Instant::now() >= deadline {
            let _ = c.kill();
            let _ = c.wait();
            panic!("the push never reached the stall point");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    // Child::kill sends SIGKILL to this child's PID only.
    c.kill().unwrap();
    let out = child::finish(c);
    assert!(!out.ok(), "the killed push succeeded:\n{out}");
    drop(proxy);

    let o = push_options(&pkg, format!("{}/killed/app:1", reg.host()));
    let (r, lines) = push(&o, &settings());
    let report = r.unwrap_or_else(|e| panic!("{e}\n{lines:?}"));
    assert_eq!(report.uploaded + report.skipped, 5);
    assert_eq!(
        skopeo_raw(&format!("{}/killed/app:1", reg.host())),
        packages::top(&pkg).1
    );
}

#[test]
fn unreachable_registry_is_one_clear_error() {
    let tmp = tempfile::tempdir().unwrap();
    let pkg = packages::single(tmp.path(), "pkg", 33, &[1000]);
    let port = free_port();
    let o = push_options(pkg, format!("127.0.0.1:{port}/x/y:1"));
    let mut s = settings();
    s.attempts = 2;
    let (r, _) = push(&o, &s);
    let err = r.unwrap_err().to_string();
    eprintln!("error: {err}");
    assert!(err.contains(&format!("127.0.0.1:{port}")), "{err}");
    assert!(err.contains("cannot connect"), "{err}");
    assert!(!err.contains('\n'), "{err}");
}
