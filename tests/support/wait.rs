//! Waiting for a child process with a deadline, so a stuck tool or `cnbpkg` fails its test
//! instead of hanging the suite.

use std::io::Read;
use std::process::{Child, Output};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Collect what `child` writes to its piped standard output and error and wait for it to end,
/// at most `limit`; a child still running then is killed (by its own PID) and the test fails
/// with `what` and what the child printed. Pipes that are not captured read as empty.
pub fn output(mut child: Child, limit: Duration, what: &str) -> Output {
    // Readers drain both pipes meanwhile, so a chatty child never blocks on a full pipe.
    let readers = [reader(child.stdout.take()), reader(child.stderr.take())];
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() >= deadline {
            // Child::kill sends SIGKILL to this child's PID only.
            let _ = child.kill();
            let _ = child.wait();
            let [_, stderr] = readers.map(|r| r.join().unwrap());
            panic!(
                "{what} ({}) still running after {limit:?}; killed\nstderr: {}",
                child.id(),
                String::from_utf8_lossy(&stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let [stdout, stderr] = readers.map(|r| r.join().unwrap());
    Output {
        status,
        stdout,
        stderr,
    }
}

fn reader(pipe: Option<impl Read + Send + 'static>) -> JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        if let Some(mut p) = pipe {
            let _ = p.read_to_end(&mut bytes);
        }
        bytes
    })
}
