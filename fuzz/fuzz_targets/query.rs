//! The debug server's query parsing, alone and through the whole router:
//! whatever the path and query string, no panic, and the answer is `200`,
//! `400` with a message, `404` (unknown path, asset or task) or the page's
//! `303`; never a `500`.
//!
//! The first byte picks an endpoint (or, from 0xf0 on, takes the input as
//! the path too); the rest is the query string, its bytes that a URI cannot
//! carry percent-encoded (so any byte reaches the server's decoding). The
//! router is built once, over a runtime with a few parked tasks (a lock
//! cycle, idle receivers, stuck senders) whose findings appear at once, so
//! that filters, sorting, paging, groups, `id=`, `finding=` and the graph
//! run on real rows. `parkwatch::server::fuzz_query` also runs every query
//! parser on the raw query, checking ranges and messages.

#![no_main]

use std::sync::OnceLock;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode, Uri};
use libfuzzer_sys::fuzz_target;
use tower::ServiceExt as _;

const ENDPOINTS: [&str; 10] = [
    "/debug/tasks.json",
    "/debug/tasks/graph",
    "/debug/pprof/goroutine",
    "/debug/pprof/goroutineleak",
    "/debug/tasks/flamegraph.svg",
    "/metrics",
    "/debug/tasks",
    "/debug/tasks/",
    "/debug/tasks/assets/app.js",
    "/nowhere",
];

struct Fixture {
    rt: tokio::runtime::Runtime,
    app: axum::Router,
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        std::thread::spawn(move || {
            let rt = parkwatch::Runtime::new().unwrap();
            let _ = rt.block_on(scenario(tx));
        });
        rx.recv().unwrap();
        let app = parkwatch::server::ServerBuilder::new()
            .no_token()
            .leak_after(Duration::ZERO)
            .grace(Duration::ZERO)
            .show_source(false)
            .router();
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        Fixture { rt, app }
    })
}

/// A few parked tasks, kept for the whole run.
async fn scenario(ready: std::sync::mpsc::Sender<()>) {
    let jobs = parkwatch::chan::<u32>(0);
    for i in 0..3 {
        let rx = jobs.receiver();
        parkwatch::task::Builder::new().name(format!("idle-{i}")).spawn(async move { rx.recv().await });
    }
    let out = parkwatch::chan::<u32>(0);
    for i in 0..2 {
        let tx = out.sender();
        parkwatch::spawn(async move { tx.send(i).await });
    }
    let a = std::sync::Arc::new(parkwatch::sync::Mutex::new(()));
    let b = std::sync::Arc::new(parkwatch::sync::Mutex::new(()));
    let both = parkwatch::sync::WaitGroup::new();
    both.add(2);
    for (name, first, second) in [("alpha", a.clone(), b.clone()), ("beta", b, a)] {
        let both = both.clone();
        parkwatch::task::Builder::new().name(name).spawn(async move {
            let _g1 = first.lock().await;
            both.done();
            both.wait().await;
            let _g2 = second.lock().await;
        });
    }
    ready.send(()).unwrap();
    let _keep = (jobs, out);
    loop {
        parkwatch::time::sleep(Duration::from_secs(3600)).await;
    }
}

/// `bytes` with what a URI cannot carry percent-encoded (`%` itself stays:
/// malformed escapes reach the server as they are).
fn uri_safe(bytes: &[u8], allow: impl Fn(u8) -> bool) -> String {
    let mut s = String::with_capacity(bytes.len());
    for &b in bytes {
        if b.is_ascii_graphic() && b != b'#' && allow(b) {
            s.push(b as char);
        } else {
            s.push_str(&format!("%{b:02X}"));
        }
    }
    s
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else { return };
    let target = if mode < 0xf0 {
        let query = uri_safe(rest, |_| true);
        parkwatch::server::fuzz_query(&query);
        format!("{}?{query}", ENDPOINTS[mode as usize % ENDPOINTS.len()])
    } else {
        let (path, query) = match rest.iter().position(|&b| b == b'?') {
            Some(i) => (&rest[..i], Some(&rest[i + 1..])),
            None => (rest, None),
        };
        let mut t = format!("/{}", uri_safe(path, |b| b != b'?'));
        if let Some(q) = query {
            let q = uri_safe(q, |_| true);
            parkwatch::server::fuzz_query(&q);
            t.push('?');
            t.push_str(&q);
        }
        t
    };
    let Ok(uri) = target.parse::<Uri>() else {
        // Not a request an HTTP server would route (e.g. `//x` as an authority).
        return;
    };
    let f = fixture();
    let req = Request::get(uri).body(Body::empty()).unwrap();
    let (status, body) = f.rt.block_on(async {
        let resp = f.app.clone().oneshot(req).await.unwrap();
        let status = resp.status();
        (status, axum::body::to_bytes(resp.into_body(), 1 << 30).await.unwrap())
    });
    let text = String::from_utf8_lossy(&body[..body.len().min(500)]);
    match status {
        StatusCode::OK => {}
        StatusCode::BAD_REQUEST => {
            let msg = text.strip_prefix("400 bad request: ").unwrap_or_else(|| panic!("{target}: 400 as {text:?}"));
            assert!(!msg.trim().is_empty(), "{target}: a 400 without a message");
        }
        StatusCode::NOT_FOUND => assert!(text.starts_with("404 not found"), "{target}: 404 as {text:?}"),
        StatusCode::SEE_OTHER => assert!(target.starts_with("/debug/tasks/?") || target == "/debug/tasks/"),
        s => panic!("{target}: {s}: {text}"),
    }
});
