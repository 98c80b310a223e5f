//! Starts the CNCF distribution registry (`docker-registry serve`) on 127.0.0.1 with a free
//! port and temporary storage; stops it by PID when dropped (also during a panic).

use std::fs;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::tool::require;

/// How long the registry may take to accept connections.
const READY_TIMEOUT: Duration = Duration::from_secs(10);

/// Authentication for the registry.
pub enum Auth {
    /// None.
    None,
    /// htpasswd basic auth: (user, password).
    Basic(String, String),
    /// Token auth: realm URL, service, issuer, root certificate bundle path.
    Token {
        realm: String,
        service: String,
        issuer: String,
        rootcertbundle: PathBuf,
    },
}

/// Registry settings.
pub struct Config {
    /// TLS certificate and key (PEM); plain HTTP without.
    pub tls: Option<(PathBuf, PathBuf)>,
    /// Authentication.
    pub auth: Auth,
}

/// A running registry.
pub struct Registry {
    child: Child,
    /// The port it listens on.
    pub port: u16,
    /// Temporary directory with the config, storage and log.
    pub dir: tempfile::TempDir,
}

/// A free TCP port on 127.0.0.1 (bound and released; good enough for tests).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind 127.0.0.1:0")
        .port()
}

impl Registry {
    /// A plain-HTTP registry without authentication.
    pub fn start_plain() -> Registry {
        Registry::start(Config {
            tls: None,
            auth: Auth::None,
        })
    }

    /// Start a registry and wait until it accepts connections.
    pub fn start(config: Config) -> Registry {
        let bin = require("docker-registry", "docker-registry");
        let mut dir = tempfile::tempdir().expect("tempdir");
        let storage = dir.path().join("storage");
        fs::create_dir_all(&storage).unwrap();
        // A few tries in case another process takes the port between probe and bind.
        for _ in 0..5 {
            let port = free_port();
            let mut yaml = format!(
                "version: 0.1\nlog:\n  level: info\n  accesslog:\n    disabled: false\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\n  secret: cnbpkg-test-secret\n",
                storage.display()
            );
            if let Some((cert, key)) = &config.tls {
                yaml.push_str(&format!(
                    "  tls:\n    certificate: {}\n    key: {}\n",
                    cert.display(),
                    key.display()
                ));
            }
            match &config.auth {
                Auth::None => {}
                Auth::Basic(user, pass) => {
                    let htpasswd = require("htpasswd", "apache2-utils");
                    let out = super::tool::run(Command::new(htpasswd).args(["-Bbn", user, pass]));
                    let file = dir.path().join("htpasswd");
                    fs::write(&file, out.stdout).unwrap();
                    yaml.push_str(&format!(
                        "auth:\n  htpasswd:\n    realm: cnbpkg-test\n    path: {}\n",
                        file.display()
                    ));
                }
                Auth::Token {
                    realm,
                    service,
                    issuer,
                    rootcertbundle,
                } => {
                    yaml.push_str(&format!(
                        "auth:\n  token:\n    realm: {realm}\n    service: {service}\n    issuer: {issuer}\n    rootcertbundle: {}\n",
                        rootcertbundle.display()
                    ));
                }
            }
            let cfg = dir.path().join("config.yml");
            fs::write(&cfg, yaml).unwrap();
            let log = fs::File::create(dir.path().join("registry.log")).unwrap();
            let child = Command::new(&bin)
                .arg("serve")
                .arg(&cfg)
                .stdin(Stdio::null())
                .stdout(log.try_clone().unwrap())
                .stderr(log)
                .spawn()
                .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
            let mut reg = Registry { child, port, dir };
            if reg.wait_ready() {
                return reg;
            }
            let _ = reg.child.kill();
            let _ = reg.child.wait();
            dir = reg.into_dir();
        }
        panic!("docker-registry did not start; see its log above");
    }

    fn into_dir(mut self) -> tempfile::TempDir {
        std::mem::replace(&mut self.dir, tempfile::tempdir().unwrap())
    }

    fn wait_ready(&mut self) -> bool {
        let deadline = Instant::now() + READY_TIMEOUT;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                eprintln!("docker-registry exited ({status}):\n{}", self.log());
                return false;
            }
            if TcpStream::connect_timeout(
                &format!("127.0.0.1:{}", self.port).parse().unwrap(),
                Duration::from_millis(200),
            )
            .is_ok()
            {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        eprintln!(
            "docker-registry not ready after {READY_TIMEOUT:?}:\n{}",
            self.log()
        );
        false
    }

    /// `127.0.0.1:PORT`.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The registry's log so far.
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("registry.log")).unwrap_or_default()
    }

    /// The storage root.
    pub fn storage(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        // Child::kill sends SIGKILL to this child's PID only.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
