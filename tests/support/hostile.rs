//! A registry of the test's own that misbehaves on purpose: each request is recorded as it
//! arrived and answered by the test's handler (bytes, a trickle, or silence), on 127.0.0.1.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// One request as the server saw it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub path: String,
    pub headers: BTreeMap<String, String>,
    /// Body bytes that arrived (fewer than `Content-Length` when the client broke off).
    pub received: u64,
}

/// What a handler tells the server to do with a request.
pub enum Reply {
    /// Send these bytes (a whole response) and keep the connection.
    Bytes(Vec<u8>),
    /// Send a head and then the body one byte per interval.
    Trickle(Vec<u8>, Vec<u8>, Duration),
    /// Never answer (hold the connection until the client gives up).
    Silent,
}

pub fn reply(status: &str, headers: &[(&str, &str)], body: &[u8]) -> Reply {
    let mut out = format!("HTTP/1.1 {status}\r\nContent-Length: {}\r\n", body.len());
    for (k, v) in headers {
        out.push_str(&format!("{k}: {v}\r\n"));
    }
    out.push_str("\r\n");
    let mut bytes = out.into_bytes();
    bytes.extend_from_slice(body);
    Reply::Bytes(bytes)
}

pub type Handler = dyn Fn(&Seen) -> Reply + Send + Sync;

/// A tiny HTTP/1.1 server on 127.0.0.1 that records every request; stops when dropped.
pub struct Server {
    pub port: u16,
    seen: Arc<Mutex<Vec<Seen>>>,
    stop: Arc<AtomicBool>,
}

impl Server {
    pub fn start(handler: Arc<Handler>) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (s2, st2) = (seen.clone(), stop.clone());
        std::thread::spawn(move || {
            // Bounded: the test process ends, or `stop` is set on drop.
            while !st2.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((conn, _)) => {
                        let (h, s, st) = (handler.clone(), s2.clone(), st2.clone());
                        std::thread::spawn(move || serve(conn, &*h, &s, &st));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        });
        Server { port, seen, stop }
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

pub fn serve(conn: TcpStream, handler: &Handler, seen: &Mutex<Vec<Seen>>, stop: &AtomicBool) {
    conn.set_nonblocking(false).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut reader = BufReader::new(conn.try_clone().unwrap());
    let mut conn = conn;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let mut parts = line.split_whitespace();
        let method = parts.next().unwrap_or("").to_string();
        let path = parts.next().unwrap_or("").to_string();
        let mut headers = BTreeMap::new();
        loop {
            let mut h = String::new();
            if reader.read_line(&mut h).unwrap_or(0) == 0 {
                return;
            }
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            if let Some((k, v)) = h.split_once(':') {
                headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
            }
        }
        let len: u64 = headers
            .get("content-length")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let received =
            std::io::copy(&mut (&mut reader).take(len), &mut std::io::sink()).unwrap_or(0);
        let req = Seen {
            method,
            path,
            headers,
            received,
        };
        if received < len {
            seen.lock().unwrap().push(req);
            return;
        }
        seen.lock().unwrap().push(req.clone());
        match handler(&req) {
            Reply::Bytes(b) => {
                if conn.write_all(&b).is_err() {
                    return;
                }
            }
            Reply::Trickle(head, body, every) => {
                let _ = conn.write_all(&head);
                for b in body {
                    if stop.load(Ordering::Relaxed) || conn.write_all(&[b]).is_err() {
                        return;
                    }
                    std::thread::sleep(every);
                }
            }
            Reply::Silent => {
                for _ in 0..600 {
                    if stop.load(Ordering::Relaxed) {
                        return;
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
                return;
            }
        }
    }
}
