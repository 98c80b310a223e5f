//! The registry HTTP client, shared by every command that talks to a registry: one ureq agent
//! (rustls, env proxies), authentication (anonymous, basic, bearer tokens with refresh) scoped to
//! what the command does ([`Access`]), bounded retries with backoff announced through the events
//! sink, overall deadlines, redirects for GET and HEAD only, one-line errors.

use std::io::Read;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use ureq::http::{self, HeaderMap, Method};
use url::Url;

use crate::error::{AuthFailure, Error, Result, TlsFailure};
use crate::events::{Events, EventsExt as _};

use super::auth::{self, Challenge, Credential};
use crate::reference::Reference;

/// Largest response body we read (error documents, token responses).
const MAX_RESPONSE_BODY: u64 = 1 << 20;

/// Longest token lifetime honoured; a server may say anything in `expires_in`.
const MAX_TOKEN_LIFETIME: Duration = Duration::from_secs(24 * 3600);
/// Longest wait a server's `Retry-After` may ask for before a retry.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(30);
/// Redirects followed by GET and HEAD (never with credentials; other methods follow none).
const MAX_REDIRECTS: u32 = 5;

/// Overall deadlines: every request ends within one, however slowly the server answers.
#[derive(Debug, Clone, Copy)]
pub struct Deadlines {
    /// For a request without a streamed body (pings, HEADs, tokens, manifests, session starts).
    pub request: Duration,
    /// The least time a streamed blob body gets.
    pub blob_floor: Duration,
    /// Bytes per second a blob upload is allowed at least: its deadline is
    /// `blob_floor + size / blob_min_rate`.
    pub blob_min_rate: u64,
}

impl Default for Deadlines {
    fn default() -> Self {
        Deadlines {
            request: Duration::from_secs(60),
            blob_floor: Duration::from_secs(120),
            blob_min_rate: 64 << 10,
        }
    }
}

impl Deadlines {
    /// The deadline for one request whose streamed body is `len` bytes (None: no stream).
    pub fn for_body(&self, len: Option<u64>) -> Duration {
        match len {
            None => self.request,
            Some(n) => self
                .blob_floor
                .saturating_add(Duration::from_secs(n / self.blob_min_rate.max(1))),
        }
    }
}

/// Retry policy.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// Attempts per request or per blob upload session (at least 1).
    pub attempts: u32,
    /// First backoff delay; doubled after each failure.
    pub initial_backoff: Duration,
    /// Largest backoff delay.
    pub max_backoff: Duration,
}

impl RetryPolicy {
    /// The delay before attempt `n + 1` (n ≥ 1 failures so far).
    pub fn backoff(&self, failures: u32) -> Duration {
        let factor = 1u32 << failures.saturating_sub(1).min(16);
        self.initial_backoff
            .saturating_mul(factor)
            .min(self.max_backoff)
    }

    /// The delay before the next attempt after `failure`: the backoff, or longer when the
    /// server asked for it with `Retry-After` (already clamped).
    pub fn delay(&self, failures: u32, failure: &Failure) -> Duration {
        self.backoff(failures)
            .max(failure.retry_after.unwrap_or_default())
    }
}

/// A failed request: the one-line error and whether trying again may help.
#[derive(Debug)]
pub struct Failure {
    /// The error to report.
    pub error: Error,
    /// Whether the failure was transient (5xx, 408, 429, dropped connection, stale token).
    pub retryable: bool,
    /// How long the server asked to wait (`Retry-After` in seconds, at most
    /// [`MAX_RETRY_AFTER`]).
    pub retry_after: Option<Duration>,
}

impl Failure {
    fn fatal(error: Error) -> Self {
        Failure {
            error,
            retryable: false,
            retry_after: None,
        }
    }

    /// A failure worth another attempt.
    pub fn transient(error: Error) -> Self {
        Failure {
            error,
            retryable: true,
            retry_after: None,
        }
    }
}

impl From<Error> for Failure {
    fn from(error: Error) -> Self {
        Failure::fatal(error)
    }
}

/// A response with its body read (bounded).
#[derive(Debug)]
pub struct Resp {
    /// Status code.
    pub status: u16,
    /// Response headers.
    pub headers: HeaderMap,
    /// The body (at most 1 MiB).
    pub body: Vec<u8>,
    /// Whether the answer came from the registry's own origin (not from a host a GET or HEAD
    /// was redirected to): only such a 401 may make cnbpkg fetch credentials.
    pub from_registry: bool,
}

impl Resp {
    /// A header as a string.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// An answer whose body is not read yet.
struct Opened {
    status: u16,
    headers: HeaderMap,
    from_registry: bool,
    response: http::Response<ureq::Body>,
}

/// A request body.
pub enum Body<'a> {
    /// No body.
    None,
    /// Bytes in memory (replayable).
    Bytes(&'a [u8]),
    /// A stream of exactly `len` bytes (sent once, with `Content-Length`).
    Stream(&'a mut (dyn Read + Send), u64),
}

enum AuthState {
    /// Not yet asked the registry what it wants.
    Unknown,
    /// No `Authorization` header.
    Anonymous,
    /// `Authorization: Basic …`.
    Basic(String),
    /// `Authorization: Bearer …` from a token server.
    Bearer {
        challenge: Challenge,
        token: String,
        refresh_at: Instant,
    },
}

struct AuthCell {
    state: AuthState,
    /// Bumped whenever the credentials in use change, so concurrent 401s refresh once.
    generation: u64,
}

/// What a client asks the registry's token server for: the scopes of its bearer tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access<'a> {
    /// Read the repository (`pull`): manifests and blobs by GET and HEAD.
    Pull,
    /// Write the repository (`pull,push`), and read `mount_from` (a repository of the same
    /// registry that blobs are mounted from) when it is another one.
    Push {
        /// The repository blobs are mounted from.
        mount_from: Option<&'a str>,
    },
}

impl Access<'_> {
    /// The token scopes for `repository`.
    fn scopes(&self, repository: &str) -> Vec<String> {
        match self {
            Access::Pull => vec![format!("repository:{repository}:pull")],
            Access::Push { mount_from } => {
                let mut scopes = vec![format!("repository:{repository}:pull,push")];
                if let Some(f) = mount_from.filter(|f| *f != repository) {
                    scopes.push(format!("repository:{f}:pull"));
                }
                scopes
            }
        }
    }
}

/// A client for one repository on one registry. Status lines (`Trusting`, `Retrying`) go to
/// the events sink as they happen, from whichever thread sends.
pub struct Client<'e> {
    agent: ureq::Agent,
    /// `https://host:port/` (or `http://` with `insecure`).
    pub base: Url,
    /// The registry name as the user wrote it (for messages).
    pub registry: String,
    /// The repository pushed to.
    pub repository: String,
    scopes: Vec<String>,
    credential: Option<Credential>,
    auth: Mutex<AuthCell>,
    /// Retry policy.
    pub retry: RetryPolicy,
    deadlines: Deadlines,
    events: &'e dyn Events,
}

/// TLS and transport settings.
#[derive(Debug, Clone)]
pub struct Transport<'a> {
    /// Plain HTTP.
    pub insecure: bool,
    /// Extra CA certificates (PEM), trusted in addition to the system roots.
    pub ca_cert: Option<&'a std::path::Path>,
    /// `certs.d` directories with per-registry certificates ([`certs::default_certs_d`] when
    /// `None`).
    pub certs_d: Option<Vec<std::path::PathBuf>>,
}

/// How a client connects and retries: the same for every command that talks to a registry.
#[derive(Debug, Clone, Copy)]
pub struct Connection<'a> {
    /// TLS and transport settings.
    pub transport: &'a Transport<'a>,
    /// Retry policy.
    pub retry: RetryPolicy,
    /// Overall deadlines of requests.
    pub deadlines: Deadlines,
}

impl<'e> Client<'e> {
    /// Build a client for `reference`'s repository; nothing is sent yet. `Trusting` lines for
    /// the registry's `certs.d` files go to `events` now, `Retrying` lines as retries start.
    pub fn new(
        reference: &Reference,
        access: Access<'_>,
        credential: Option<Credential>,
        connection: &Connection<'_>,
        events: &'e dyn Events,
    ) -> Result<Self> {
        let registry = reference.registry.as_str();
        let api_host = reference.api_host();
        let repository = reference.repository.as_str();
        let transport = connection.transport;
        let scheme = if transport.insecure { "http" } else { "https" };
        let base = Url::parse(&format!("{scheme}://{api_host}/"))
            .map_err(|e| Error::usage(format!("invalid registry host '{registry}': {e}")))?;
        // Certificates trusted for this registry besides the system's: --ca-cert, then the
        // registry's certs.d directories (HTTPS only).
        let mut given: Vec<(std::path::PathBuf, Vec<u8>)> = Vec::new();
        if let Some(path) = transport.ca_cert {
            given.push((path.to_path_buf(), super::certs::read_cert_file(path)?));
        }
        if !transport.insecure {
            let bases = transport
                .certs_d
                .clone()
                .unwrap_or_else(super::certs::default_certs_d);
            for f in super::certs::registry_certs(&bases, registry)? {
                events.status("Trusting", &format!("{} for {registry}", f.path.display()));
                given.push((f.path, f.pem));
            }
        }
        let mut extra: Vec<Vec<u8>> = Vec::new();
        for (path, pem) in &given {
            let mut found = 0;
            for item in ureq::tls::parse_pem(pem) {
                match item {
                    Ok(ureq::tls::PemItem::Certificate(c)) => {
                        extra.push(c.der().to_vec());
                        found += 1;
                    }
                    Ok(_) => {}
                    Err(e) => {
                        return Err(Error::invalid(
                            path,
                            format!(
                                "not a PEM certificate: {}",
                                crate::ui::sanitize(&e.to_string(), 100)
                            ),
                        ))
                    }
                }
            }
            if found == 0 {
                return Err(Error::invalid(path, "contains no PEM certificate"));
            }
        }
        let config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .tls_config(
                ureq::tls::TlsConfig::builder()
                    .provider(ureq::tls::TlsProvider::Rustls)
                    .root_certs(ureq::tls::RootCerts::PlatformVerifier)
                    .build(),
            )
            .user_agent(concat!("cnbpkg/", env!("CARGO_PKG_VERSION")))
            .timeout_connect(Some(Duration::from_secs(30)))
            .timeout_per_read(Some(Duration::from_secs(120)))
            .timeout_per_write(Some(Duration::from_secs(120)))
            // Each request sets its own overall deadline and redirect policy (see `exchange`);
            // credentials never follow a redirect.
            .redirect_auth_headers(ureq::config::RedirectAuthHeaders::Never)
            .max_redirects(MAX_REDIRECTS)
            .max_idle_connections_per_host(32)
            .build();
        let agent = if extra.is_empty() {
            config.new_agent()
        } else {
            use ureq::unversioned::transport::{ConnectProxyConnector, Connector, TcpConnector};
            // The system's roots stay trusted next to the given certificates.
            let mut roots = extra.clone();
            for c in rustls_native_certs::load_native_certs().certs {
                roots.push(c.as_ref().to_vec());
            }
            let tls = super::tls::client_config(&roots, extra)
                .map_err(|e| Error::other(format!("{registry}: {e}")))?;
            let connector =
                ().chain(ConnectProxyConnector::default())
                    .chain(TcpConnector::default())
                    .chain(super::tls::TlsConnector { config: tls });
            ureq::Agent::with_parts(
                config,
                connector,
                ureq::unversioned::resolver::DefaultResolver::default(),
            )
        };
        Ok(Client {
            agent,
            base,
            registry: registry.to_string(),
            repository: repository.to_string(),
            scopes: access.scopes(repository),
            credential,
            auth: Mutex::new(AuthCell {
                state: AuthState::Unknown,
                generation: 0,
            }),
            retry: connection.retry,
            deadlines: connection.deadlines,
            events,
        })
    }

    /// The sink the client reports to (uploads and downloads report their progress there too).
    pub fn events(&self) -> &'e dyn Events {
        self.events
    }

    /// Announce that `what` failed transiently and is tried again after `failures` failures.
    pub fn note_retry(&self, what: &str, failures: u32, error: &Error) {
        self.events.status(
            "Retrying",
            &format!(
                "{what} (attempt {} of {}) after: {error}",
                failures + 1,
                self.retry.attempts
            ),
        );
    }

    /// `host:port` of the registry API, for messages.
    pub fn host_port(&self) -> String {
        host_port(&self.base)
    }

    /// `…/v2/<repo>/<rest>`.
    pub fn url(&self, rest: &str) -> Url {
        self.base
            .join(&format!("v2/{}/{}", self.repository, rest))
            .expect("repository names are URL-safe")
    }

    /// Send a replayable request, retrying transient failures and refreshing credentials once.
    pub fn send(
        &self,
        method: Method,
        url: &Url,
        headers: &[(&str, &str)],
        body: Option<&[u8]>,
    ) -> Result<Resp> {
        let mut failures = 0;
        loop {
            let b = match body {
                Some(b) => Body::Bytes(b),
                None => Body::None,
            };
            match self.send_once(method.clone(), url, headers, b) {
                Ok(r) => return Ok(r),
                Err(f) if f.retryable && failures + 1 < self.retry.attempts => {
                    failures += 1;
                    self.note_retry(&format!("{method} {}", shown_path(url)), failures, &f.error);
                    crate::cancel::sleep(self.retry.delay(failures, &f))?;
                }
                Err(f) => return Err(f.error),
            }
        }
    }

    /// Send one request with authentication: a 401 refreshes credentials and, for replayable
    /// bodies, tries once more; a 401 on a stream is reported as retryable.
    pub fn send_once(
        &self,
        method: Method,
        url: &Url,
        headers: &[(&str, &str)],
        mut body: Body<'_>,
    ) -> Result<Resp, Failure> {
        let mut refreshed = false;
        loop {
            let (authz, generation) = self.authorization()?;
            let streamed = matches!(body, Body::Stream(..));
            let resp = self.raw(method.clone(), url, headers, authz.as_deref(), &mut body)?;
            if resp.status != 401 {
                return Ok(resp);
            }
            if refreshed || !same_origin(url, &self.base) || !resp.from_registry {
                // A host other than the registry (an upload location elsewhere, or the target
                // of a redirect) that asks for credentials gets none: its challenge could name
                // any token server.
                return Err(Failure::fatal(self.auth_failed(&resp)));
            }
            self.refresh(generation, &resp)?;
            refreshed = true;
            if streamed {
                // The stream is spent; the caller restarts (with fresh credentials).
                return Err(Failure::transient(self.auth_failed(&resp)));
            }
        }
    }

    /// One HTTP exchange with the registry without auth handling: `authz` is sent only when
    /// `url` has the registry's own scheme, host and port (an upload `Location` may name any
    /// host). Transient statuses become retryable failures.
    fn raw(
        &self,
        method: Method,
        url: &Url,
        headers: &[(&str, &str)],
        authz: Option<&str>,
        body: &mut Body<'_>,
    ) -> Result<Resp, Failure> {
        let authz = authz.filter(|_| same_origin(url, &self.base));
        self.exchange(method, url, headers, authz, body)
    }

    /// `Err` once the operation was cancelled: checked before every request, so a cancelled
    /// push stops at its next request (retries included).
    fn check_cancelled() -> Result<(), Failure> {
        crate::cancel::check().map_err(Failure::fatal)
    }

    /// One HTTP exchange, sending `authz` to `url` whatever its host (only the token server a
    /// challenge named gets credentials this way). Redirects are followed only by GET and
    /// HEAD, never with credentials; every request has an overall deadline.
    fn exchange(
        &self,
        method: Method,
        url: &Url,
        headers: &[(&str, &str)],
        authz: Option<&str>,
        body: &mut Body<'_>,
    ) -> Result<Resp, Failure> {
        let opened = self.open(method.clone(), url, headers, authz, body, None)?;
        self.read_answer(&method, url, opened)
    }

    /// One HTTP exchange up to the response headers, its body not read yet (see [`Self::exchange`]).
    /// `download_len`: the length of a body to be downloaded, which sets the deadline as for
    /// an upload of that size.
    fn open(
        &self,
        method: Method,
        url: &Url,
        headers: &[(&str, &str)],
        authz: Option<&str>,
        body: &mut Body<'_>,
        download_len: Option<u64>,
    ) -> Result<Opened, Failure> {
        Self::check_cancelled()?;
        let mut builder = http::Request::builder()
            .method(method.clone())
            .uri(url.as_str());
        for (k, v) in headers {
            builder = builder.header(*k, *v);
        }
        if let Some(a) = authz {
            builder = builder.header("Authorization", a);
        }
        let stream_len = match body {
            Body::Stream(_, len) => Some(*len),
            _ => download_len,
        };
        let deadline = self.deadlines.for_body(stream_len);
        // A PUT, POST or PATCH answered with a redirect must not be replayed as a GET and
        // taken for success: those methods follow none, and callers check the status.
        let redirects = if matches!(method, Method::GET | Method::HEAD) {
            MAX_REDIRECTS
        } else {
            0
        };
        let result = match body {
            Body::None => builder
                .body(ureq::SendBody::none())
                .map(|r| self.run(r, deadline, redirects)),
            Body::Bytes(b) => builder
                .header("Content-Length", b.len().to_string())
                .body(*b)
                .map(|r| self.run(r, deadline, redirects)),
            Body::Stream(r, len) => builder
                .header("Content-Length", len.to_string())
                .body(ureq::SendBody::from_reader(&mut **r))
                .map(|r| self.run(r, deadline, redirects)),
        };
        let result = result.map_err(|e| {
            Failure::fatal(Error::other(format!("{}: bad request: {e}", self.registry)))
        })?;
        let response = match result {
            Ok(r) => r,
            Err(e) => return Err(self.transport_failure(&method, url, e)),
        };
        let from_registry = {
            use ureq::ResponseExt as _;
            Url::parse(&response.get_uri().to_string())
                .is_ok_and(|answered| same_origin(&answered, &self.base))
        };
        Ok(Opened {
            status: response.status().as_u16(),
            headers: response.headers().clone(),
            from_registry,
            response,
        })
    }

    /// The answer with its body read (at most [`MAX_RESPONSE_BODY`]); transient statuses
    /// become retryable failures.
    fn read_answer(&self, method: &Method, url: &Url, opened: Opened) -> Result<Resp, Failure> {
        let Opened {
            status,
            headers,
            from_registry,
            mut response,
        } = opened;
        let mut body = Vec::new();
        if *method != Method::HEAD {
            let read = response
                .body_mut()
                .as_reader()
                .take(MAX_RESPONSE_BODY)
                .read_to_end(&mut body);
            if let Err(e) = read {
                return Err(self.body_failure(method, url, &e));
            }
        }
        let resp = Resp {
            status,
            headers,
            body,
            from_registry,
        };
        if matches!(status, 408 | 429) || (500..600).contains(&status) && status != 501 {
            let mut failure = Failure::transient(self.status_error(method, url, &resp));
            failure.retry_after = resp.header("retry-after").and_then(parse_retry_after);
            return Err(failure);
        }
        Ok(resp)
    }

    /// A response body that could not be read: a deadline or a dropped connection, both
    /// worth another attempt.
    pub fn body_failure(&self, method: &Method, url: &Url, e: &std::io::Error) -> Failure {
        if let Some(f) = timeout_in(e) {
            return Failure::transient(Error::other(format!(
                "{}: {} timed out ({f}) while answering {method} {}",
                self.registry,
                host_port(url),
                shown_path(url)
            )));
        }
        Failure::transient(Error::other(format!(
            "{}: connection to {} dropped while reading the response to {method} {}: {}",
            self.registry,
            host_port(url),
            shown_path(url),
            crate::ui::sanitize(&e.to_string(), 200)
        )))
    }

    /// GET `url` and hand a 200 answer's headers and body to `consume`, which streams it
    /// (nothing is held in memory here). `len` is the body's expected length, when known: it
    /// sets the deadline as for an upload of that size. Authentication, redirects (a few,
    /// never with credentials to another host), deadlines and retries are those of
    /// [`Self::send`]: a transient failure, or one `consume` reports as transient (a body cut
    /// short), starts the GET again from its first byte.
    pub fn get_streamed<T>(
        &self,
        url: &Url,
        headers: &[(&str, &str)],
        len: Option<u64>,
        consume: impl FnMut(&Resp, &mut dyn Read) -> Result<T, Failure>,
    ) -> Result<T> {
        self.get_resumable(url, headers, len, || Ok(0), consume)
    }

    /// [`Self::get_streamed`] for content that may be partly held already: each attempt
    /// first asks `start` for the offset to continue from, and asks with `Range: bytes=N-`
    /// when it is not 0. `consume` then gets a 206 answer (the rest: it checks
    /// `Content-Range`) or a 200 one (the registry ignored the range: the whole body).
    pub fn get_resumable<T>(
        &self,
        url: &Url,
        headers: &[(&str, &str)],
        len: Option<u64>,
        mut start: impl FnMut() -> Result<u64, Failure>,
        mut consume: impl FnMut(&Resp, &mut dyn Read) -> Result<T, Failure>,
    ) -> Result<T> {
        let mut failures = 0;
        loop {
            let attempt = start().and_then(|from| {
                let range = format!("bytes={from}-");
                let mut ranged = headers.to_vec();
                if from > 0 {
                    ranged.push(("Range", range.as_str()));
                }
                let left = len.map(|l| l.saturating_sub(from));
                self.get_streamed_once(url, &ranged, left, from > 0, &mut consume)
            });
            match attempt {
                Ok(t) => return Ok(t),
                Err(f) if f.retryable && failures + 1 < self.retry.attempts => {
                    failures += 1;
                    self.note_retry(&format!("GET {}", shown_path(url)), failures, &f.error);
                    crate::cancel::sleep(self.retry.delay(failures, &f))?;
                }
                Err(f) => return Err(f.error),
            }
        }
    }

    /// One streamed GET with authentication (a 401 refreshes credentials and asks again once).
    fn get_streamed_once<T>(
        &self,
        url: &Url,
        headers: &[(&str, &str)],
        len: Option<u64>,
        ranged: bool,
        consume: &mut impl FnMut(&Resp, &mut dyn Read) -> Result<T, Failure>,
    ) -> Result<T, Failure> {
        let mut refreshed = false;
        loop {
            let (authz, generation) = self.authorization()?;
            let authz = authz.filter(|_| same_origin(url, &self.base));
            let mut opened = self.open(
                Method::GET,
                url,
                headers,
                authz.as_deref(),
                &mut Body::None,
                len,
            )?;
            if opened.status == 200 || (ranged && opened.status == 206) {
                let head = Resp {
                    status: opened.status,
                    headers: std::mem::take(&mut opened.headers),
                    body: Vec::new(),
                    from_registry: opened.from_registry,
                };
                let mut reader = opened.response.body_mut().as_reader();
                return consume(&head, &mut reader);
            }
            let resp = self.read_answer(&Method::GET, url, opened)?;
            if resp.status != 401 {
                return Err(Failure::fatal(self.status_error(&Method::GET, url, &resp)));
            }
            if refreshed || !same_origin(url, &self.base) || !resp.from_registry {
                return Err(Failure::fatal(self.auth_failed(&resp)));
            }
            self.refresh(generation, &resp)?;
            refreshed = true;
        }
    }

    fn run<S: ureq::AsSendBody>(
        &self,
        request: http::Request<S>,
        deadline: Duration,
        redirects: u32,
    ) -> Result<http::Response<ureq::Body>, ureq::Error> {
        let request = self
            .agent
            .configure_request(request)
            .timeout_global(Some(deadline))
            .max_redirects(redirects)
            .build();
        self.agent.run(request)
    }

    fn transport_failure(&self, method: &Method, url: &Url, e: ureq::Error) -> Failure {
        let hp = host_port(url);
        let text = crate::ui::sanitize(&error_chain(&e), 300);
        let lower = text.to_lowercase();
        let untrusted = lower.contains("unknownissuer")
            || lower.contains("unknown issuer")
            || lower.contains("self-signed")
            || lower.contains("selfsigned")
            || lower.contains("untrusted");
        let tls = |kind| {
            Failure::fatal(Error::Tls {
                registry: self.registry.clone(),
                host: hp.clone(),
                kind,
            })
        };
        if lower.contains("causedasendentity") {
            return tls(TlsFailure::CaAsServer);
        }
        if untrusted {
            return tls(TlsFailure::UnknownIssuer);
        }
        if lower.contains("certificate") || matches!(e, ureq::Error::Rustls(_)) {
            return Failure::fatal(Error::other(format!(
                "{}: TLS handshake with {hp} failed: {text}",
                self.registry
            )));
        }
        match e {
            ureq::Error::HostNotFound => Failure::fatal(Error::other(format!(
                "{}: cannot resolve host {}",
                self.registry,
                url.host_str().unwrap_or("?")
            ))),
            ureq::Error::ConnectionFailed => Failure::transient(Error::other(format!(
                "{}: cannot connect to {hp}: connection failed",
                self.registry
            ))),
            ureq::Error::Io(ref io) if io.kind() == std::io::ErrorKind::ConnectionRefused => {
                Failure::transient(Error::other(format!(
                    "{}: cannot connect to {hp}: connection refused",
                    self.registry
                )))
            }
            ureq::Error::Timeout(t) => Failure::transient(Error::other(format!(
                "{}: {hp} timed out ({t}) during {method} {}",
                self.registry,
                shown_path(url)
            ))),
            ureq::Error::Io(_) | ureq::Error::Protocol(_) | ureq::Error::BodyStalled => {
                Failure::transient(Error::other(format!(
                    "{}: connection to {hp} failed during {method} {}: {text}",
                    self.registry,
                    shown_path(url)
                )))
            }
            _ => Failure::fatal(Error::other(format!(
                "{}: {method} {} failed: {text}",
                self.registry,
                shown_path(url)
            ))),
        }
    }

    /// `<registry>: METHOD /path failed: 503 Service Unavailable: <registry's message>`.
    pub fn status_error(&self, method: &Method, url: &Url, resp: &Resp) -> Error {
        Error::other(format!(
            "{}: {method} {} failed: {}",
            self.registry,
            shown_path(url),
            describe_status(resp)
        ))
    }

    fn auth_failed(&self, resp: &Resp) -> Error {
        self.auth_error(
            AuthFailure::Refused,
            format!("authentication failed ({})", describe_status(resp)),
        )
    }

    /// Credentials refused or missing at this registry.
    fn auth_error(&self, kind: AuthFailure, message: String) -> Error {
        Error::Auth {
            registry: self.registry.clone(),
            kind,
            message,
        }
    }

    /// Reach the registry and settle authentication once, before any upload starts, so an
    /// unreachable registry or a refused login fails the push at once rather than once per blob.
    pub fn connect(&self) -> Result<()> {
        self.authorization().map(|_| ()).map_err(|f| f.error)
    }

    /// The `Authorization` value to send now, asking the registry first if needed.
    fn authorization(&self) -> Result<(Option<String>, u64), Failure> {
        let mut cell = self.auth.lock().unwrap_or_else(|p| p.into_inner());
        if matches!(cell.state, AuthState::Unknown) {
            cell.state = self.ping()?;
            cell.generation += 1;
        }
        if let AuthState::Bearer {
            challenge,
            refresh_at,
            ..
        } = &cell.state
        {
            if Instant::now() >= *refresh_at {
                let challenge = challenge.clone();
                cell.state = self.bearer(&challenge, &[])?;
                cell.generation += 1;
            }
        }
        let value = match &cell.state {
            AuthState::Unknown | AuthState::Anonymous => None,
            AuthState::Basic(h) => Some(h.clone()),
            AuthState::Bearer { token, .. } => Some(format!("Bearer {token}")),
        };
        Ok((value, cell.generation))
    }

    /// After a 401: switch to what the challenge asks for, unless another thread already did.
    fn refresh(&self, generation: u64, resp: &Resp) -> Result<(), Failure> {
        let mut cell = self.auth.lock().unwrap_or_else(|p| p.into_inner());
        if cell.generation != generation {
            return Ok(());
        }
        let challenges = resp
            .header("www-authenticate")
            .map(auth::parse_challenges)
            .unwrap_or_default();
        let bearer = challenges.iter().find(|c| c.scheme == "bearer");
        let state = match (bearer, &cell.state) {
            (Some(ch), _) => {
                let extra: Vec<String> = ch.param("scope").map(split_scopes).unwrap_or_default();
                self.bearer(ch, &extra)?
            }
            (None, AuthState::Anonymous | AuthState::Unknown)
                if challenges.iter().any(|c| c.scheme == "basic") =>
            {
                self.basic_state(resp)?
            }
            _ => return Err(Failure::fatal(self.auth_failed(resp))),
        };
        cell.state = state;
        cell.generation += 1;
        Ok(())
    }

    /// `GET /v2/` and pick the auth scheme the registry asks for.
    fn ping(&self) -> Result<AuthState, Failure> {
        let url = self.base.join("v2/").expect("static path");
        let mut failures = 0;
        let resp = loop {
            match self.raw(Method::GET, &url, &[], None, &mut Body::None) {
                Ok(r) => break r,
                Err(f) if f.retryable && failures + 1 < self.retry.attempts => {
                    failures += 1;
                    self.note_retry("GET /v2/", failures, &f.error);
                    crate::cancel::sleep(self.retry.delay(failures, &f)).map_err(Failure::fatal)?;
                }
                // Retried here already: callers must not multiply the attempts.
                Err(f) => return Err(Failure::fatal(f.error)),
            }
        };
        match resp.status {
            200..=299 => Ok(AuthState::Anonymous),
            // `/v2/` redirected elsewhere: that host's challenge gets no credentials.
            401 if !resp.from_registry => Err(Failure::fatal(self.auth_failed(&resp))),
            401 => {
                let challenges = resp
                    .header("www-authenticate")
                    .map(auth::parse_challenges)
                    .unwrap_or_default();
                if let Some(ch) = challenges.iter().find(|c| c.scheme == "bearer") {
                    self.bearer(ch, &[])
                } else if challenges.iter().any(|c| c.scheme == "basic") {
                    self.basic_state(&resp)
                } else {
                    Err(Failure::fatal(Error::other(format!(
                        "{}: the registry requires authentication with a scheme cnbpkg does not support ({})",
                        self.registry,
                        resp.header("www-authenticate")
                            .map(|h| crate::ui::sanitize(h, 100))
                            .unwrap_or_else(|| "no WWW-Authenticate header".to_string())
                    ))))
                }
            }
            404 => Err(Failure::fatal(Error::other(format!(
                "{}: {} does not serve the registry API (GET /v2/ answered 404)",
                self.registry,
                self.host_port()
            )))),
            _ => Err(Failure::fatal(self.status_error(&Method::GET, &url, &resp))),
        }
    }

    /// Basic auth: check the credentials once against `/v2/`.
    fn basic_state(&self, challenge_resp: &Resp) -> Result<AuthState, Failure> {
        let Some(header) = self.credential.as_ref().and_then(Credential::basic_header) else {
            return Err(Failure::fatal(self.auth_error(
                AuthFailure::Missing,
                format!(
                    "authentication required ({}); no credentials found",
                    describe_status(challenge_resp)
                ),
            )));
        };
        let url = self.base.join("v2/").expect("static path");
        let resp = self.raw(Method::GET, &url, &[], Some(&header), &mut Body::None)?;
        if resp.status == 401 || resp.status == 403 {
            return Err(Failure::fatal(self.auth_failed(&resp)));
        }
        Ok(AuthState::Basic(header))
    }

    /// Get a bearer token for our scopes (plus `extra`) from the challenge's realm.
    fn bearer(&self, ch: &Challenge, extra: &[String]) -> Result<AuthState, Failure> {
        let realm = ch.param("realm").ok_or_else(|| {
            Failure::fatal(Error::other(format!(
                "{}: the bearer challenge names no token realm",
                self.registry
            )))
        })?;
        let mut realm_url = Url::parse(realm)
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https"))
            .ok_or_else(|| {
                Failure::fatal(Error::other(format!(
                    "{}: the token realm '{}' is not an http(s) URL",
                    self.registry,
                    crate::ui::sanitize(realm, 100)
                )))
            })?;
        if self.credential.is_some()
            && realm_url.scheme() == "http"
            && self.base.scheme() == "https"
            // A local plain-HTTP token server is fine beside a local registry only: a remote
            // registry must not aim credentials at a port on this machine.
            && !(crate::reference::is_loopback(&host_port(&realm_url))
                && crate::reference::is_loopback(&host_port(&self.base)))
        {
            return Err(Failure::fatal(Error::other(format!(
                "{}: the registry names a plain-HTTP token server ({}); cnbpkg does not send credentials unencrypted",
                self.registry,
                crate::ui::sanitize(&host_port(&realm_url), 100)
            ))));
        }
        let mut scopes = self.scopes.clone();
        for s in extra {
            if !scopes.contains(s) {
                scopes.push(s.clone());
            }
        }
        let service = ch.param("service");
        let mut failures = 0;
        let resp = loop {
            let attempt = match &self.credential {
                Some(Credential::IdentityToken(rt)) => {
                    let mut form = url::form_urlencoded::Serializer::new(String::new());
                    form.append_pair("grant_type", "refresh_token");
                    form.append_pair("refresh_token", rt.expose());
                    form.append_pair("client_id", "cnbpkg");
                    if let Some(s) = service {
                        form.append_pair("service", s);
                    }
                    form.append_pair("scope", &scopes.join(" "));
                    let body = form.finish();
                    self.exchange(
                        Method::POST,
                        &realm_url,
                        &[("Content-Type", "application/x-www-form-urlencoded")],
                        None,
                        &mut Body::Bytes(body.as_bytes()),
                    )
                }
                cred => {
                    let mut u = realm_url.clone();
                    {
                        let mut q = u.query_pairs_mut();
                        if let Some(s) = service {
                            q.append_pair("service", s);
                        }
                        for s in &scopes {
                            q.append_pair("scope", s);
                        }
                    }
                    let basic = cred.as_ref().and_then(Credential::basic_header);
                    // The token server the registry's challenge named gets the credentials
                    // (that is what the challenge asks for); nothing else.
                    let r = self.exchange(Method::GET, &u, &[], basic.as_deref(), &mut Body::None);
                    realm_url = u;
                    r
                }
            };
            match attempt {
                Ok(r) => break r,
                Err(f) if f.retryable && failures + 1 < self.retry.attempts => {
                    failures += 1;
                    self.note_retry("token request", failures, &f.error);
                    crate::cancel::sleep(self.retry.delay(failures, &f)).map_err(Failure::fatal)?;
                    realm_url = Url::parse(realm).expect("parsed above");
                }
                // Retried here already: the request that needed the token must not retry
                // (and so multiply) these attempts.
                Err(f) => return Err(Failure::fatal(f.error)),
            }
        };
        let realm_host = crate::ui::sanitize(&host_port(&realm_url), 100);
        if resp.status == 401 || resp.status == 403 {
            return Err(Failure::fatal(self.auth_error(
                AuthFailure::Refused,
                format!(
                    "authentication failed ({} from token server {realm_host})",
                    describe_status(&resp)
                ),
            )));
        }
        if !(200..300).contains(&resp.status) {
            return Err(Failure::fatal(Error::other(format!(
                "{}: token server {realm_host} answered {}",
                self.registry,
                describe_status(&resp)
            ))));
        }
        let (token, lifetime) = parse_token_response(&resp.body).map_err(|why| {
            Failure::fatal(Error::other(format!(
                "{}: token server {realm_host} {why}",
                self.registry
            )))
        })?;
        // Refresh a little early.
        let now = Instant::now();
        let refresh_at = now.checked_add(lifetime.mul_f64(0.9)).unwrap_or(now);
        Ok(AuthState::Bearer {
            challenge: ch.clone(),
            token,
            refresh_at,
        })
    }
}

fn split_scopes(s: &str) -> Vec<String> {
    s.split(' ')
        .filter(|x| !x.is_empty())
        .map(String::from)
        .collect()
}

/// A URL's path for a message: an upload `Location` is the server's to choose, so it is
/// escaped and cut short like any other server text.
pub fn shown_path(url: &Url) -> String {
    crate::ui::sanitize(url.path(), 200)
}

/// `host:port` of a URL.
pub fn host_port(url: &Url) -> String {
    let host = match url.host() {
        Some(url::Host::Ipv6(a)) => format!("[{a}]"),
        Some(h) => h.to_string(),
        None => String::from("?"),
    };
    match url.port_or_known_default() {
        Some(p) => format!("{host}:{p}"),
        None => host,
    }
}

/// `503 Service Unavailable: <first error message from the registry's JSON>`.
pub fn describe_status(resp: &Resp) -> String {
    let reason = http::StatusCode::from_u16(resp.status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("");
    let mut out = format!("{} {reason}", resp.status).trim_end().to_string();
    #[derive(serde::Deserialize)]
    struct Errors {
        errors: Vec<ErrorItem>,
    }
    #[derive(serde::Deserialize)]
    struct ErrorItem {
        #[serde(default)]
        code: String,
        #[serde(default)]
        message: String,
    }
    if let Ok(e) = serde_json::from_slice::<Errors>(&resp.body) {
        if let Some(first) = e.errors.first() {
            let msg = if first.message.is_empty() {
                first.code.to_lowercase()
            } else {
                first.message.clone()
            };
            out.push_str(": ");
            out.push_str(&crate::ui::sanitize(&msg, 200));
        }
    }
    out
}

/// The error and its sources on one line.
fn error_chain(e: &ureq::Error) -> String {
    let mut text = format!("{e}");
    if let ureq::Error::Rustls(r) = e {
        text = format!("{text} ({r:?})");
    }
    let mut src = std::error::Error::source(e);
    let mut n = 0;
    while let Some(s) = src {
        let t = s.to_string();
        if !text.contains(&t) {
            text.push_str(": ");
            text.push_str(&t);
        }
        src = s.source();
        n += 1;
        if n > 5 {
            break;
        }
    }
    text
}

/// Whether two URLs have the same scheme, host and port (the origin credentials are bound to).
pub fn same_origin(a: &Url, b: &Url) -> bool {
    a.scheme() == b.scheme()
        && a.host() == b.host()
        && a.port_or_known_default() == b.port_or_known_default()
}

/// The timeout inside an I/O error from a response body read, if that is what it is.
fn timeout_in(e: &std::io::Error) -> Option<String> {
    if e.kind() == std::io::ErrorKind::TimedOut {
        return Some("deadline".to_string());
    }
    let inner = e.get_ref()?;
    match inner.downcast_ref::<ureq::Error>() {
        Some(ureq::Error::Timeout(t)) => Some(t.to_string()),
        _ => None,
    }
}

/// A token server's answer: the token and how long to keep it, or what is wrong with it (said
/// after "token server HOST").
pub(crate) fn parse_token_response(
    body: &[u8],
) -> std::result::Result<(String, Duration), &'static str> {
    #[derive(serde::Deserialize)]
    struct TokenResponse {
        #[serde(default)]
        token: Option<String>,
        #[serde(default)]
        access_token: Option<String>,
        /// Any JSON value: a lifetime the server got wrong (negative, fractional, a
        /// string) falls back to the default rather than failing the login.
        #[serde(default)]
        expires_in: Option<serde_json::Value>,
    }
    let parsed: TokenResponse =
        serde_json::from_slice(body).map_err(|_| "did not answer with a token document")?;
    let token = parsed
        .token
        .filter(|t| !t.is_empty())
        .or(parsed.access_token)
        .filter(|t| !t.is_empty())
        .ok_or("answered without a token")?;
    // The spec's default lifetime is 60 s. The server's number is clamped: no value may
    // overflow the clock or keep a token for years.
    let expires_in = parsed
        .expires_in
        .and_then(|v| {
            v.as_u64()
                .or_else(|| v.as_f64().filter(|f| *f >= 0.0).map(|f| f as u64))
        })
        .unwrap_or(60);
    Ok((
        token,
        Duration::from_secs(expires_in.max(10)).min(MAX_TOKEN_LIFETIME),
    ))
}

/// `Retry-After: 120` as a duration, clamped to [`MAX_RETRY_AFTER`] (any number a server
/// sends must neither overflow nor stall the push); HTTP dates are ignored.
pub(crate) fn parse_retry_after(v: &str) -> Option<Duration> {
    let secs: u64 = v.trim().parse().ok()?;
    Some(Duration::from_secs(secs).min(MAX_RETRY_AFTER))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_compare_scheme_host_and_port() {
        let u = |s: &str| Url::parse(s).unwrap();
        assert!(same_origin(
            &u("https://r.example/v2/"),
            &u("https://r.example:443/x")
        ));
        assert!(!same_origin(
            &u("https://r.example/"),
            &u("http://r.example/")
        ));
        assert!(!same_origin(
            &u("http://127.0.0.1:5000/"),
            &u("http://127.0.0.1:5001/")
        ));
        assert!(!same_origin(
            &u("https://r.example/"),
            &u("https://s3.example/")
        ));
    }

    #[test]
    fn token_scopes_follow_the_access() {
        assert_eq!(Access::Pull.scopes("a/b"), ["repository:a/b:pull"]);
        assert_eq!(
            Access::Push { mount_from: None }.scopes("a/b"),
            ["repository:a/b:pull,push"]
        );
        assert_eq!(
            Access::Push {
                mount_from: Some("c")
            }
            .scopes("a/b"),
            ["repository:a/b:pull,push", "repository:c:pull"]
        );
        assert_eq!(
            Access::Push {
                mount_from: Some("a/b")
            }
            .scopes("a/b"),
            ["repository:a/b:pull,push"]
        );
    }

    #[test]
    fn server_text_is_escaped_and_cut() {
        assert_eq!(
            crate::ui::sanitize("a\u{1b}[2Jb\nc", 100),
            "a\\u{1b}[2Jb\\nc"
        );
        assert_eq!(crate::ui::sanitize("abcdef", 3), "abc…");
    }

    #[test]
    fn server_durations_are_clamped() {
        assert_eq!(parse_retry_after("2"), Some(Duration::from_secs(2)));
        assert_eq!(
            parse_retry_after("18446744073709551615"),
            Some(MAX_RETRY_AFTER)
        );
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"), None);
        let d = Deadlines::default();
        assert_eq!(d.for_body(None), Duration::from_secs(60));
        assert_eq!(d.for_body(Some(64 << 20)), Duration::from_secs(120 + 1024));
        // No overflow for any size.
        let _ = d.for_body(Some(u64::MAX));
    }
}
