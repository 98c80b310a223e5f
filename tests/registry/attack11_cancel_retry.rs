//! A cancelled push stops while it waits to try again: a registry that answers 503 with
//! `Retry-After` cannot keep an operation whose token was cancelled waiting for minutes.

use std::sync::Arc;
use std::time::{Duration, Instant};

use cnbpkg::events::NoEvents;
use cnbpkg::Error;

use crate::support::hostile::{reply, Server};
use crate::support::packages;

#[test]
fn a_push_cancelled_during_a_retry_wait_stops_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let pkg = packages::single(dir.path(), "p", 11, &[1000]);
    let server = Server::start(Arc::new(|_| {
        reply("503 Service Unavailable", &[("Retry-After", "30")], b"busy")
    }));
    let mut opts =
        cnbpkg::registry::PushOptions::new(&pkg, format!("127.0.0.1:{}/x/y:1", server.port));
    opts.insecure = true;
    let token = opts.cancel.clone();
    let canceller = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(500));
        token.cancel();
    });
    let started = Instant::now();
    let err = cnbpkg::registry::push(&opts, &NoEvents).unwrap_err();
    let took = started.elapsed();
    canceller.join().unwrap();
    assert!(matches!(err, Error::Interrupted), "{err}");
    assert!(
        took < Duration::from_secs(5),
        "the push went on waiting for {took:?} after it was cancelled"
    );
    assert!(!server.seen().is_empty(), "the registry was asked");
}
