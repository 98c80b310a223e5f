//! Runs a push in a child process (this test binary, re-executed on an ignored helper test),
//! so tests can set its environment (`DOCKER_CONFIG`, `HOME`) or kill it midway.

use std::path::Path;
use std::process::{Child, Command, Stdio};

use cnbpkg::registry::{PushOptions, PushSettings};

/// The environment variable that carries the push options to the child.
pub const ENV: &str = "CNBPKG_TEST_PUSH_CHILD";

/// Body of the ignored helper test: push as told by [`ENV`], print the outcome, exit.
pub fn run_if_child() {
    let Ok(spec) = std::env::var(ENV) else {
        return;
    };
    let mut opts = PushOptions::default();
    for line in spec.lines() {
        let Some((k, v)) = line.split_once('=') else {
            continue;
        };
        match k {
            "package" => opts.package = v.into(),
            "reference" => opts.reference = v.into(),
            "insecure" => opts.insecure = v == "1",
            "ca_cert" => opts.ca_cert = Some(v.into()),
            "from" => opts.from = Some(v.into()),
            "jobs" => opts.jobs = v.parse().unwrap(),
            _ => panic!("unknown child option {k}"),
        }
    }
    let settings = PushSettings {
        initial_backoff: std::time::Duration::from_millis(50),
        ..Default::default()
    };
    let result = cnbpkg::registry::push_with(&opts, &settings, &mut |l: &str| {
        println!("STATUS {l}");
    });
    match result {
        Ok(r) => {
            println!("PUSH-OK {} {}", r.digest, r.bytes_sent);
            std::process::exit(0);
        }
        Err(e) => {
            println!("PUSH-ERR {e}");
            std::process::exit(1);
        }
    }
}

/// Start a child push; `test` is the name of the ignored helper test in this binary.
/// The child gets an empty `HOME` (in `home`) unless `envs` says otherwise.
pub fn spawn(test: &str, spec: &[(&str, String)], home: &Path, envs: &[(&str, &Path)]) -> Child {
    let text: String = spec.iter().map(|(k, v)| format!("{k}={v}\n")).collect();
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args([
        test,
        "--exact",
        "--ignored",
        "--nocapture",
        "--test-threads=1",
    ])
    .env(ENV, text)
    .env("HOME", home)
    .env_remove("DOCKER_CONFIG")
    .env_remove("REGISTRY_AUTH_FILE")
    .env_remove("XDG_RUNTIME_DIR")
    .stdin(Stdio::null())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    for (k, v) in envs {
        cmd.env(k, v);
    }
    cmd.spawn().expect("re-run the test binary")
}

/// Wait for a child push and return (success, stdout).
pub fn finish(child: Child) -> (bool, String) {
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    (out.status.success(), stdout)
}
