//! The live view: Go's `/debug/pprof` endpoints and the `/debug/tasks` page,
//! over HTTP (feature `server`, on by default).
//!
//! | path | what | content type |
//! |---|---|---|
//! | `/debug/tasks` | the dashboard (HTML, JS and CSS embedded in the binary) | `text/html` |
//! | `/debug/tasks.json` | summary, findings and one page of tasks (or of stack groups) | `application/json` |
//! | `/debug/pprof/goroutine?debug=0\|1\|2` | Go's goroutine profile: gzipped protobuf, or text | `application/octet-stream`, `text/plain` |
//! | `/debug/pprof/goroutineleak?debug=0\|1\|2` | the same, restricted to the tasks of findings | as above |
//! | `/debug/tasks/flamegraph.svg` | flame graph of the tasks' stacks (inferno) | `image/svg+xml` |
//! | `/debug/tasks/graph?format=json\|dot` | the wait-for graph (bounded by `max_nodes`) | `application/json`, `text/vnd.graphviz` |
//! | `/metrics` | Prometheus text: tasks by state and wait reason, findings, oldest park | `text/plain; version=0.0.4` |
//!
//! `/debug/tasks.json` takes `state`, `reason`, `q`, `stack`, `finding`,
//! `sort`, `offset`, `limit` (at most 1000), `group=stack`; `id=N` for one
//! task in detail; `full=1` for the whole snapshot as [`dump::json`](crate::dump::json)
//! writes it (what `parkwatch dump URL` reads). Unknown parameters are
//! ignored; a malformed value gets `400 Bad Request` with a plain message.
//!
//! # Security
//!
//! [`serve`] binds `127.0.0.1` unless told otherwise. With a token (the
//! builder's [`ServerBuilder::token`], else the `PARKWATCH_TOKEN` environment
//! variable) every endpoint requires `Authorization: Bearer <token>` and
//! answers `401` without it (compared in constant time). So that a browser can
//! open the page, `/debug/tasks?token=<token>` also sets the token as an
//! `HttpOnly`, `SameSite=Strict` cookie, which is then accepted in place of
//! the header. Static files come from a fixed table compiled into the binary;
//! there is no file system access by request path.
//!
//! # Load
//!
//! Snapshots are taken on tokio's blocking pool, one at a time
//! ([`MAX_CONCURRENT_SNAPSHOTS`]), and shared: every request waiting when one
//! starts is answered from it, [`RENDER_THREADS`] answers rendered at a time,
//! and each answer comes from a snapshot begun after its request arrived.
//! However many clients, memory and CPU stay bounded; pages of tasks, graphs
//! and grouped profiles are bounded in size (full dumps, `debug=2` and
//! `full=1`, are not: they list every task). `tests/server_load.rs` runs 100
//! clients against 100,000 parked tasks.
//!
//! ```no_run
//! // In your own axum app:
//! let app = axum::Router::new().merge(parkwatch::server::router());
//! # let _ = app;
//! // Or on its own thread and port:
//! let server = parkwatch::serve("127.0.0.1:6060").unwrap();
//! println!("dashboard at {}", server.url());
//! ```

mod assets;
mod graph;
mod handlers;
mod metrics;
mod query;
mod shared;
mod view;

use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use crate::detect::analyze::AnalyzeOptions;

#[doc(hidden)]
pub use query::fuzz_query;

/// The environment variable holding the bearer token (when the builder sets none).
pub const TOKEN_ENV: &str = "PARKWATCH_TOKEN";

/// The port [`ServerBuilder`] binds by default (Go's conventional pprof port).
pub const DEFAULT_PORT: u16 = 6060;

/// How many snapshots the server takes at the same time, at most: one,
/// shared by every request waiting for it.
pub const MAX_CONCURRENT_SNAPSHOTS: usize = 1;

/// How many answers the server renders from a snapshot at the same time, at most.
pub const RENDER_THREADS: usize = shared::RENDER_THREADS;

/// The cookie the page's `?token=` sets.
const TOKEN_COOKIE: &str = "parkwatch_token";

/// Where the token comes from.
#[derive(Clone, Debug)]
enum TokenSource {
    /// `PARKWATCH_TOKEN`, if set and not empty.
    Env,
    /// The builder's.
    Given(String),
    /// None: every endpoint is open.
    Disabled,
}

/// Configures the debug server: the address, the token, the detectors' settings.
///
/// ```no_run
/// let server = parkwatch::server::ServerBuilder::new()
///     .port(0) // any free port on 127.0.0.1
///     .token("s3cret")
///     .leak_after(std::time::Duration::from_secs(10))
///     .start()
///     .unwrap();
/// println!("{}", server.url());
/// server.shutdown();
/// ```
#[derive(Clone, Debug)]
pub struct ServerBuilder {
    addrs: Vec<SocketAddr>,
    addr_error: Option<String>,
    token: TokenSource,
    analyze: AnalyzeOptions,
    show_source: bool,
}

impl Default for ServerBuilder {
    fn default() -> Self {
        ServerBuilder {
            addrs: vec![SocketAddr::from(([127, 0, 0, 1], DEFAULT_PORT))],
            addr_error: None,
            token: TokenSource::Env,
            analyze: AnalyzeOptions::default(),
            show_source: true,
        }
    }
}

impl ServerBuilder {
    /// `127.0.0.1:6060`, the token from `PARKWATCH_TOKEN`, default detector settings.
    pub fn new() -> ServerBuilder {
        ServerBuilder::default()
    }

    /// The address to bind (`"127.0.0.1:6060"`, a [`SocketAddr`], ...). Binding
    /// anything but a loopback address exposes the process's stacks: use a token.
    pub fn addr(mut self, addr: impl ToSocketAddrs) -> ServerBuilder {
        match addr.to_socket_addrs() {
            Ok(a) => {
                self.addrs = a.collect();
                self.addr_error = None;
            }
            Err(e) => self.addr_error = Some(e.to_string()),
        }
        self
    }

    /// Binds `127.0.0.1:port` (`0`: any free port).
    pub fn port(self, port: u16) -> ServerBuilder {
        self.addr(SocketAddr::from(([127, 0, 0, 1], port)))
    }

    /// Requires `Authorization: Bearer <token>` on every endpoint (instead of `PARKWATCH_TOKEN`).
    pub fn token(mut self, token: impl Into<String>) -> ServerBuilder {
        let t = token.into();
        self.token = if t.is_empty() { TokenSource::Disabled } else { TokenSource::Given(t) };
        self
    }

    /// No token, even if `PARKWATCH_TOKEN` is set.
    pub fn no_token(mut self) -> ServerBuilder {
        self.token = TokenSource::Disabled;
        self
    }

    /// How long a task must stay parked to be a leak suspect (default 30 s).
    pub fn leak_after(mut self, d: Duration) -> ServerBuilder {
        self.analyze.leak_after = d;
        self
    }

    /// How long a stuck set must stay stuck to be reported (default 1 s).
    pub fn grace(mut self, d: Duration) -> ServerBuilder {
        self.analyze.grace = d;
        self
    }

    /// Whether a task's detail shows the source lines around each frame, read
    /// from the files its debug info names (`.rs` files only; default on).
    pub fn show_source(mut self, on: bool) -> ServerBuilder {
        self.show_source = on;
        self
    }

    fn resolved_token(&self) -> Option<String> {
        match &self.token {
            TokenSource::Env => std::env::var(TOKEN_ENV).ok().filter(|t| !t.is_empty()),
            TokenSource::Given(t) => Some(t.clone()),
            TokenSource::Disabled => None,
        }
    }

    /// The endpoints as an axum [`Router`], to mount in an application
    /// (`app.merge(router)`), with this builder's token and settings.
    pub fn router(&self) -> Router {
        let state = Arc::new(AppState {
            token: self.resolved_token(),
            show_source: self.show_source,
            snapshots: Arc::new(shared::Snapshots::new(self.analyze.clone())),
        });
        Router::new()
            .route("/debug/tasks", get(handlers::page))
            .route("/debug/tasks/", get(handlers::page_slash))
            .route("/debug/tasks/assets/{name}", get(handlers::asset))
            .route("/debug/tasks.json", get(handlers::tasks_json))
            .route("/debug/tasks/flamegraph.svg", get(handlers::flamegraph))
            .route("/debug/tasks/graph", get(handlers::graph))
            .route("/debug/pprof/goroutine", get(handlers::goroutine))
            .route("/debug/pprof/goroutineleak", get(handlers::goroutineleak))
            .route("/metrics", get(handlers::metrics))
            .fallback(handlers::not_found)
            .layer(middleware::from_fn_with_state(state.clone(), guard))
            .with_state(state)
    }

    /// Binds the address and serves on a thread of its own (with its own
    /// tokio runtime), until [`Server::shutdown`].
    pub fn start(&self) -> std::io::Result<Server> {
        if let Some(e) = &self.addr_error {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("parkwatch server address: {e}"),
            ));
        }
        let listener = std::net::TcpListener::bind(&self.addrs[..])?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let token = self.resolved_token();
        if token.is_none() && !addr.ip().is_loopback() {
            eprintln!(
                "parkwatch: warning: serving task dumps on {addr} without a token; set {TOKEN_ENV} to require one"
            );
        }
        let app = self.router();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().thread_name("parkwatch-http").build()?;
        let thread = std::thread::Builder::new().name("parkwatch-http".into()).spawn(move || {
            rt.block_on(async move {
                let listener = match tokio::net::TcpListener::from_std(listener) {
                    Ok(l) => l,
                    Err(e) => {
                        eprintln!("parkwatch: cannot serve on {addr}: {e}");
                        return;
                    }
                };
                // A dropped (detached) handle keeps the server running; only
                // `shutdown` stops it.
                let stop = async move {
                    if rx.await.is_err() {
                        std::future::pending::<()>().await;
                    }
                };
                let (stopped_tx, stopped_rx) = tokio::sync::oneshot::channel::<()>();
                let signal = async move {
                    stop.await;
                    let _ = stopped_tx.send(());
                };
                let serving = axum::serve(listener, app).with_graceful_shutdown(signal);
                let deadline = async move {
                    if stopped_rx.await.is_ok() {
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    } else {
                        std::future::pending::<()>().await;
                    }
                };
                tokio::select! {
                    r = serving => {
                        if let Err(e) = r {
                            eprintln!("parkwatch: server on {addr} failed: {e}");
                        }
                    }
                    _ = deadline => {}
                }
            });
            rt.shutdown_timeout(Duration::from_millis(500));
        })?;
        Ok(Server { addr, stop: Some(tx), thread: Some(thread), has_token: token.is_some() })
    }
}

/// A running debug server (see [`serve`], [`ServerBuilder::start`]). Dropping
/// the handle leaves it running (like a detached thread); [`Server::shutdown`] stops it.
#[derive(Debug)]
pub struct Server {
    addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
    has_token: bool,
}

impl Server {
    /// The address it listens on (with the actual port when bound to port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The dashboard's URL, `http://127.0.0.1:6060/debug/tasks`.
    pub fn url(&self) -> String {
        format!("http://{}/debug/tasks", self.addr)
    }

    /// Whether requests need the bearer token.
    pub fn requires_token(&self) -> bool {
        self.has_token
    }

    /// Stops accepting connections, lets requests in flight finish (for at
    /// most a second) and joins the server's thread.
    pub fn shutdown(mut self) {
        self.stop_now();
    }

    fn stop_now(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            if t.thread().id() != std::thread::current().id() {
                let _ = t.join();
            }
        }
    }
}

/// Serves the debug endpoints on `addr` (e.g. `"127.0.0.1:6060"`) on a
/// thread of their own, with the token from `PARKWATCH_TOKEN` if set. The
/// server runs until [`Server::shutdown`] (dropping the handle leaves it running).
pub fn serve(addr: impl ToSocketAddrs) -> std::io::Result<Server> {
    ServerBuilder::new().addr(addr).start()
}

/// The endpoints as an axum [`Router`] with default settings (token from
/// `PARKWATCH_TOKEN`), to mount in an application: `app.merge(router())`.
pub fn router() -> Router {
    ServerBuilder::new().router()
}

/// What every handler shares.
pub(crate) struct AppState {
    token: Option<String>,
    pub(crate) show_source: bool,
    pub(crate) snapshots: Arc<shared::Snapshots>,
}

pub(crate) type Shared = Arc<AppState>;

/// Compares two byte strings in time that depends only on their lengths.
pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = (a.len() ^ b.len()) as u64;
    let n = a.len().max(b.len());
    for i in 0..n {
        let x = a.get(i).copied().unwrap_or(0);
        let y = b.get(i).copied().unwrap_or(0);
        diff |= u64::from(x ^ y);
    }
    std::hint::black_box(diff) == 0
}

/// The token a request presents: `Authorization: Bearer ..`, else the page's cookie.
fn presented_token(headers: &HeaderMap) -> Option<&str> {
    if let Some(v) = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()) {
        let v = v.trim();
        let (scheme, rest) = v.split_once(' ').unwrap_or((v, ""));
        if scheme.eq_ignore_ascii_case("bearer") {
            return Some(rest.trim());
        }
    }
    headers.get_all(header::COOKIE).iter().filter_map(|v| v.to_str().ok()).flat_map(|v| v.split(';')).find_map(|c| {
        let (k, v) = c.trim().split_once('=')?;
        (k == TOKEN_COOKIE).then_some(v)
    })
}

/// The token in the page's query string, `?token=..`.
fn query_token(req: &Request) -> Option<String> {
    let q = req.uri().query()?;
    form_urlencoded::parse(q.as_bytes()).find(|(k, _)| k == "token").map(|(_, v)| v.into_owned())
}

/// Authentication and the headers every response carries.
async fn guard(State(state): State<Shared>, req: Request, next: Next) -> Response {
    let mut resp = match &state.token {
        None => next.run(req).await,
        Some(token) => {
            let ok = presented_token(req.headers()).is_some_and(|t| constant_time_eq(t.as_bytes(), token.as_bytes()));
            if ok {
                next.run(req).await
            } else if req.uri().path().ends_with("/debug/tasks")
                && query_token(&req).is_some_and(|t| constant_time_eq(t.as_bytes(), token.as_bytes()))
            {
                // The page opened with `?token=`: keep the token in a cookie
                // and drop it from the address bar.
                let cookie = format!("{TOKEN_COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict");
                let mut r = (StatusCode::SEE_OTHER, [(header::LOCATION, "tasks")]).into_response();
                if let Ok(v) = HeaderValue::from_str(&cookie) {
                    r.headers_mut().insert(header::SET_COOKIE, v);
                }
                r
            } else {
                let mut r = handlers::plain(
                    StatusCode::UNAUTHORIZED,
                    "401 unauthorized: this endpoint requires the header `Authorization: Bearer <token>` \
                     (the token the server was given, or its PARKWATCH_TOKEN)\n",
                );
                r.headers_mut()
                    .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer realm=\"parkwatch\""));
                r
            }
        }
    };
    let h = resp.headers_mut();
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    h.entry(header::CACHE_CONTROL).or_insert(HeaderValue::from_static("no-store"));
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constant_time_eq_compares() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
        assert!(!constant_time_eq(b"", b"a"));
        assert!(constant_time_eq(b"", b""));
    }

    #[test]
    fn token_from_header_or_cookie() {
        let mut h = HeaderMap::new();
        assert_eq!(presented_token(&h), None);
        h.insert(header::COOKIE, HeaderValue::from_static("a=b; parkwatch_token=xyz"));
        assert_eq!(presented_token(&h), Some("xyz"));
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer  tok "));
        assert_eq!(presented_token(&h), Some("tok"));
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Basic dXNlcg=="));
        assert_eq!(presented_token(&h), Some("xyz"));
    }

    #[test]
    fn default_address_is_loopback() {
        let b = ServerBuilder::new();
        assert_eq!(b.addrs, vec![SocketAddr::from(([127, 0, 0, 1], DEFAULT_PORT))]);
    }
}
