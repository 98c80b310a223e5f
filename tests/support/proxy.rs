//! TCP proxies on 127.0.0.1 in front of the registry: one injects faults (dropped connections
//! mid-upload and 503 answers) on a seeded schedule with a fixed budget, one stalls after a
//! given number of request bytes.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use super::Rng;

/// What the proxy does.
#[derive(Clone, Copy, Debug)]
pub enum Mode {
    /// Inject at most `budget` faults, each connection faulted with probability `percent`.
    Faults {
        seed: u64,
        percent: u64,
        budget: usize,
    },
    /// Forward `after` bytes of requests in total, then forward nothing more.
    Stall { after: u64 },
}

/// A running proxy.
pub struct Proxy {
    /// Listening port.
    pub port: u16,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    /// Faults injected so far.
    pub faults: Arc<AtomicUsize>,
    /// Whether the stall point was reached.
    pub stalled: Arc<AtomicBool>,
}

struct Shared {
    stop: Arc<AtomicBool>,
    faults: Arc<AtomicUsize>,
    stalled: Arc<AtomicBool>,
    forwarded: AtomicU64,
    rng: Mutex<Rng>,
    mode: Mode,
    upstream: u16,
}

impl Proxy {
    /// Proxy 127.0.0.1:<new port> → 127.0.0.1:`upstream`.
    pub fn start(upstream: u16, mode: Mode) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let stop = Arc::new(AtomicBool::new(false));
        let faults = Arc::new(AtomicUsize::new(0));
        let stalled = Arc::new(AtomicBool::new(false));
        let seed = match mode {
            Mode::Faults { seed, .. } => seed,
            Mode::Stall { .. } => 1,
        };
        let shared = Arc::new(Shared {
            stop: stop.clone(),
            faults: faults.clone(),
            stalled: stalled.clone(),
            forwarded: AtomicU64::new(0),
            rng: Mutex::new(Rng::new(seed)),
            mode,
            upstream,
        });
        let thread = std::thread::spawn(move || {
            let mut workers = Vec::new();
            while !shared.stop.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((conn, _)) => {
                        let s = shared.clone();
                        workers.push(std::thread::spawn(move || handle(conn, &s)));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
            for w in workers {
                let _ = w.join();
            }
        });
        Proxy {
            port,
            stop,
            thread: Some(thread),
            faults,
            stalled,
        }
    }

    /// `127.0.0.1:PORT`.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

enum Fate {
    Forward,
    /// Drop both sides after this many request bytes.
    DropAfter(u64),
    /// Read the request head and some body, answer 503, close.
    Unavailable,
}

fn handle(client: TcpStream, s: &Shared) {
    let _ = client.set_nonblocking(false);
    let fate = match s.mode {
        Mode::Faults {
            percent, budget, ..
        } => {
            let mut rng = s.rng.lock().unwrap();
            if s.faults.load(Ordering::Relaxed) < budget && rng.below(100) < percent {
                if rng.below(2) == 0 {
                    Fate::DropAfter(1024 + rng.below(256 * 1024))
                } else {
                    Fate::Unavailable
                }
            } else {
                Fate::Forward
            }
        }
        Mode::Stall { .. } => Fate::Forward,
    };
    if let Fate::Unavailable = fate {
        s.faults.fetch_add(1, Ordering::Relaxed);
        let mut c = client;
        let _ = c.set_read_timeout(Some(Duration::from_secs(2)));
        let mut buf = [0u8; 8192];
        let _ = c.read(&mut buf);
        let _ = c.write_all(
            b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        );
        let _ = c.shutdown(Shutdown::Both);
        return;
    }
    let Ok(upstream) = TcpStream::connect(("127.0.0.1", s.upstream)) else {
        return;
    };
    let timeout = Some(Duration::from_millis(200));
    let _ = client.set_read_timeout(timeout);
    let _ = upstream.set_read_timeout(timeout);
    let (mut c_in, mut u_out) = (client.try_clone().unwrap(), upstream.try_clone().unwrap());
    let (mut u_in, mut c_out) = (upstream, client);
    let done = AtomicBool::new(false);
    let drop_after = match fate {
        Fate::DropAfter(n) => Some(n),
        _ => None,
    };
    std::thread::scope(|scope| {
        // Upstream → client.
        scope.spawn(|| {
            let mut buf = vec![0u8; 64 * 1024];
            while !done.load(Ordering::Relaxed) && !s.stop.load(Ordering::Relaxed) {
                match u_in.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => {
                        if c_out.write_all(&buf[..n]).is_err() {
                            break;
                        }
                    }
                    Err(e) if is_timeout(&e) => continue,
                    Err(_) => break,
                }
            }
            done.store(true, Ordering::Relaxed);
            let _ = c_out.shutdown(Shutdown::Both);
        });
        // Client → upstream.
        let mut buf = vec![0u8; 64 * 1024];
        let mut sent = 0u64;
        while !done.load(Ordering::Relaxed) && !s.stop.load(Ordering::Relaxed) {
            if let Mode::Stall { after } = s.mode {
                if s.forwarded.load(Ordering::Relaxed) >= after {
                    s.stalled.store(true, Ordering::Relaxed);
                    std::thread::sleep(Duration::from_millis(50));
                    continue;
                }
            }
            match c_in.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    if let Some(limit) = drop_after {
                        if sent + n as u64 > limit {
                            s.faults.fetch_add(1, Ordering::Relaxed);
                            let _ = u_out.write_all(&buf[..(limit - sent) as usize]);
                            let _ = c_in.shutdown(Shutdown::Both);
                            let _ = u_out.shutdown(Shutdown::Both);
                            break;
                        }
                    }
                    sent += n as u64;
                    s.forwarded.fetch_add(n as u64, Ordering::Relaxed);
                    if u_out.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
                Err(e) if is_timeout(&e) => continue,
                Err(_) => break,
            }
        }
        done.store(true, Ordering::Relaxed);
        let _ = u_out.shutdown(Shutdown::Both);
    });
}

fn is_timeout(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
    )
}
