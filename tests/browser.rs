//! A real browser on the dashboard: headless Chromium (Debian's `chromium`)
//! loads the page from the demo, driven over the DevTools protocol; the task
//! table and the findings render, filters work, a task's detail opens, and
//! screenshots are saved under `target/parkwatch-artifacts/`.
//!
//! Without Chromium the test fails, with the package to install, unless
//! `PARKWATCH_SKIP_BROWSER=1` is set.
#![cfg(all(feature = "server", feature = "cli"))]

use std::io::BufRead as _;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::{json, Value};
use tungstenite::stream::MaybeTlsStream;
use tungstenite::{Message, WebSocket};

const BIN: &str = env!("CARGO_BIN_EXE_parkwatch");

/// The Chromium binary: `$PARKWATCH_CHROMIUM`, else Debian's, else one on `PATH`.
fn chromium() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("PARKWATCH_CHROMIUM") {
        return Some(PathBuf::from(p));
    }
    let fixed = Path::new("/usr/bin/chromium");
    if fixed.exists() {
        return Some(fixed.to_path_buf());
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .flat_map(|d| ["chromium", "chromium-browser", "google-chrome"].map(|n| d.join(n)))
        .find(|p| p.is_file())
}

/// Where screenshots go: `target/parkwatch-artifacts/`.
fn artifacts() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).parent().expect("target dir").join("parkwatch-artifacts");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A child process killed when dropped (the demo, the browser).
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `parkwatch demo` on a free loopback port; returns it and the dashboard URL.
fn start_demo() -> (Killed, String) {
    let mut child = Command::new(BIN)
        .args(["demo", "--addr", "127.0.0.1:0", "--leak-after", "1s"])
        .env_remove("PARKWATCH_TOKEN")
        .stdout(Stdio::piped())
        .spawn()
        .expect("the parkwatch binary runs");
    let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    std::thread::spawn(move || std::io::copy(&mut out, &mut std::io::sink()));
    let url = line.trim().strip_prefix("parkwatch demo: dashboard at ").expect("the demo prints its URL").to_string();
    (Killed(child), url)
}

/// A DevTools protocol session with one page.
struct Cdp {
    ws: WebSocket<MaybeTlsStream<TcpStream>>,
    next: u64,
    /// Exceptions thrown and errors logged by the page.
    errors: Vec<String>,
}

impl Cdp {
    fn connect(url: &str) -> Cdp {
        let (ws, _) = tungstenite::connect(url).expect("DevTools websocket");
        if let MaybeTlsStream::Plain(s) = ws.get_ref() {
            s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
        }
        Cdp { ws, next: 0, errors: Vec::new() }
    }

    /// Sends a command and waits for its answer, noting page errors on the way.
    fn call(&mut self, method: &str, params: Value) -> Value {
        self.next += 1;
        let id = self.next;
        let msg = json!({ "id": id, "method": method, "params": params }).to_string();
        self.ws.send(Message::text(msg)).expect("send to the browser");
        loop {
            let m = self.ws.read().unwrap_or_else(|e| panic!("{method}: no answer from the browser: {e}"));
            let Ok(text) = m.to_text() else { continue };
            let v: Value = serde_json::from_str(text).unwrap_or_default();
            match v["method"].as_str() {
                Some("Runtime.exceptionThrown") => {
                    self.errors.push(v["params"]["exceptionDetails"].to_string());
                }
                Some("Runtime.consoleAPICalled") if v["params"]["type"] == "error" => {
                    self.errors.push(v["params"]["args"].to_string());
                }
                Some("Log.entryAdded") if v["params"]["entry"]["level"] == "error" => {
                    let text = v["params"]["entry"]["text"].as_str().unwrap_or("").to_string();
                    // The favicon request of about:blank and the like are not the page's.
                    if !text.contains("favicon.ico") {
                        self.errors.push(text);
                    }
                }
                _ => {}
            }
            if v["id"] == id {
                if !v["error"].is_null() {
                    panic!("{method}: {}", v["error"]);
                }
                return v["result"].clone();
            }
        }
    }

    /// Evaluates `js` in the page (awaiting a promise) and returns its value.
    fn eval(&mut self, js: &str) -> Value {
        let r = self.call("Runtime.evaluate", json!({ "expression": js, "returnByValue": true, "awaitPromise": true }));
        if let Some(e) = r.get("exceptionDetails") {
            panic!("{js}: {e}");
        }
        r["result"]["value"].clone()
    }

    /// Waits until `js` is true, or fails with `what` and the page's text.
    fn wait_for(&mut self, js: &str, what: &str) {
        let start = Instant::now();
        while self.eval(js) != Value::Bool(true) {
            if start.elapsed() > Duration::from_secs(45) {
                let text = self.eval("document.body.innerText");
                let hash = self.eval("location.hash");
                panic!("timed out waiting for {what} (at {hash})\n--- page text ---\n{}", text.as_str().unwrap_or(""));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn screenshot(&mut self, path: &Path) {
        let r = self.call("Page.captureScreenshot", json!({ "format": "png" }));
        let png = base64::engine::general_purpose::STANDARD.decode(r["data"].as_str().unwrap()).unwrap();
        assert_eq!(&png[1..4], b"PNG");
        std::fs::write(path, png).unwrap();
        println!("screenshot: {}", path.display());
    }
}

/// Starts headless Chromium with a DevTools port; returns it, its profile
/// directory and the websocket URL of its page.
fn start_browser(chromium: &Path) -> (Killed, PathBuf, String) {
    let profile = std::env::temp_dir().join(format!("parkwatch-chromium-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&profile);
    std::fs::create_dir_all(&profile).unwrap();
    let child = Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
            "--hide-scrollbars",
            "--remote-debugging-port=0",
            "--window-size=1440,1000",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg("about:blank")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", chromium.display()));
    let child = Killed(child);
    // Chromium writes its DevTools port to the profile directory.
    let port_file = profile.join("DevToolsActivePort");
    let start = Instant::now();
    let port = loop {
        if let Ok(s) = std::fs::read_to_string(&port_file) {
            if let Some(p) = s.lines().next().and_then(|l| l.trim().parse::<u16>().ok()) {
                break p;
            }
        }
        assert!(start.elapsed() < Duration::from_secs(60), "Chromium did not open its DevTools port");
        std::thread::sleep(Duration::from_millis(100));
    };
    let targets: Value = loop {
        let r = ureq::get(&format!("http://127.0.0.1:{port}/json/list")).call();
        if let Ok(mut r) = r {
            let v: Value = serde_json::from_str(&r.body_mut().read_to_string().unwrap()).unwrap();
            if v.as_array().is_some_and(|a| a.iter().any(|t| t["type"] == "page")) {
                break v;
            }
        }
        assert!(start.elapsed() < Duration::from_secs(60), "Chromium has no page");
        std::thread::sleep(Duration::from_millis(100));
    };
    let page = targets.as_array().unwrap().iter().find(|t| t["type"] == "page").unwrap();
    let ws = page["webSocketDebuggerUrl"].as_str().unwrap().to_string();
    (child, profile, ws)
}

/// How many rows the task table shows, and whether every one satisfies `row => bool`.
fn rows_where(cdp: &mut Cdp, pred: &str) -> (u64, bool) {
    let v = cdp.eval(&format!(
        "(() => {{ const rows = Array.from(document.querySelectorAll('#tasks tbody tr')); \
         const f = {pred}; return [rows.length, rows.every(r => f(r.cells))]; }})()"
    ));
    (v[0].as_u64().unwrap(), v[1].as_bool().unwrap())
}

#[test]
fn dashboard_in_headless_chromium() {
    let Some(chromium) = chromium() else {
        if std::env::var("PARKWATCH_SKIP_BROWSER").as_deref() == Ok("1") {
            println!("PARKWATCH_SKIP_BROWSER=1: browser test skipped");
            return;
        }
        panic!(
            "headless Chromium is not installed (looked for $PARKWATCH_CHROMIUM, /usr/bin/chromium, chromium on PATH): \
             install Debian's package with `apt-get install chromium`, or set PARKWATCH_SKIP_BROWSER=1 to skip this test"
        );
    };
    let (_demo, url) = start_demo();
    let (_browser, profile, ws) = start_browser(&chromium);
    let mut cdp = Cdp::connect(&ws);
    cdp.call("Page.enable", json!({}));
    cdp.call("Runtime.enable", json!({}));
    cdp.call("Log.enable", json!({}));
    cdp.call(
        "Emulation.setDeviceMetricsOverride",
        json!({ "width": 1440, "height": 1000, "deviceScaleFactor": 1, "mobile": false }),
    );
    cdp.call("Page.navigate", json!({ "url": url }));

    // The table and the findings render: the ledger/auditor deadlock, then the leak.
    cdp.wait_for("document.querySelectorAll('#tasks tbody tr').length >= 9", "the task table");
    cdp.wait_for(
        "Array.from(document.querySelectorAll('#findings .finding')).some(f => f.dataset.kind === 'stuck_set' \
         && f.textContent.includes('ledger') && f.textContent.includes('auditor'))",
        "the deadlock finding",
    );
    cdp.wait_for(
        "Array.from(document.querySelectorAll('#findings .finding')).some(f => f.dataset.kind === 'leak_suspect')",
        "the leak finding",
    );
    let summary = cdp.eval("document.getElementById('summary').innerText");
    let summary = summary.as_str().unwrap().to_lowercase();
    assert!(summary.contains("deadlocks") && summary.contains("leak suspects"), "{summary}");
    let names = cdp.eval("Array.from(document.querySelectorAll('#tasks tbody td.name')).map(td => td.textContent)");
    let names: Vec<&str> = names.as_array().unwrap().iter().filter_map(Value::as_str).collect();
    for n in ["worker-1", "dispatcher", "collector", "ledger", "auditor"] {
        assert!(names.contains(&n), "{n} in {names:?}");
    }

    // Filter by name: only the auditor is left ("ledger" would also match the
    // auditor, created by `start_ledger`).
    cdp.eval("(() => { const q = document.getElementById('q'); q.value = 'auditor'; q.dispatchEvent(new Event('input')); })()");
    cdp.wait_for(
        "(() => { const r = document.querySelectorAll('#tasks tbody tr'); \
         return r.length === 1 && r[0].cells[1].textContent === 'auditor'; })()",
        "the name filter",
    );
    assert!(cdp.eval("location.hash").as_str().unwrap().contains("q=auditor"), "filters are kept in the URL");

    // Filter by wait reason (and clear the name): only chan send.
    cdp.eval(
        "(() => { const q = document.getElementById('q'); q.value = ''; q.dispatchEvent(new Event('input')); \
         const s = document.getElementById('reason'); s.value = 'chan send'; s.dispatchEvent(new Event('change')); })()",
    );
    cdp.wait_for(
        "(() => { const r = Array.from(document.querySelectorAll('#tasks tbody tr')); \
         return r.length > 0 && r.every(x => x.cells[3].textContent === 'chan send'); })()",
        "the wait reason filter",
    );
    let (n, all_leaky) = rows_where(&mut cdp, "c => c[5].textContent.includes('fetch_replica')");
    assert!(n > 0 && all_leaky, "the stuck senders are the fan-out's replicas");

    // Group identical stacks: one group holds every stuck replica, with its count.
    cdp.eval("(() => { const g = document.getElementById('group'); g.checked = true; g.dispatchEvent(new Event('change')); })()");
    cdp.wait_for(
        "document.querySelector('#tasks thead th') && document.querySelector('#tasks thead th').textContent.startsWith('Tasks')",
        "grouping",
    );
    let count = cdp.eval("Number(document.querySelector('#tasks tbody tr td b').textContent.replace(/,/g, ''))");
    assert!(count.as_u64().unwrap() >= 1, "{count}");

    // Back to every task; open the ledger's detail from its finding.
    cdp.eval("document.getElementById('clear').click()");
    cdp.eval("(() => { const g = document.getElementById('group'); g.checked = false; g.dispatchEvent(new Event('change')); })()");
    cdp.wait_for("document.querySelectorAll('#tasks tbody tr').length >= 9", "the unfiltered table");
    cdp.eval(
        "Array.from(document.querySelectorAll('#findings .finding[data-kind=stuck_set] a.tasklink')).find(a => a.textContent.includes('ledger')).click()",
    );
    cdp.wait_for(
        "!document.getElementById('drawer').hidden && document.getElementById('d-body').innerText.includes('STACK') \
         && document.getElementById('d-body').innerText.includes('ledger')",
        "the task detail",
    );
    let detail = cdp.eval("document.getElementById('d-body').innerText");
    let detail = detail.as_str().unwrap();
    assert!(detail.contains("sync.Mutex.Lock"), "{detail}");
    assert!(detail.contains("parkwatch::demo::ledger"), "the stack names the demo's function: {detail}");
    assert!(detail.contains("src/demo.rs"), "{detail}");
    cdp.eval("window.scrollTo(0, 0)");
    std::thread::sleep(Duration::from_millis(300));
    cdp.screenshot(&artifacts().join("dashboard.png"));

    // The wait-for graph: the ledger/auditor cycle drawn in red.
    cdp.eval("document.getElementById('d-close').click(); document.getElementById('tab-graph').click()");
    cdp.wait_for("document.querySelectorAll('#graph .node').length > 0", "the wait-for graph");
    cdp.wait_for("document.querySelectorAll('#graph path.edge.cycle').length >= 4", "the cycle's red edges");
    let labels =
        cdp.eval("Array.from(document.querySelectorAll('#graph .node.task text')).map(t => t.textContent).join(' ')");
    assert!(labels.as_str().unwrap().contains("\"ledger\""), "{labels}");
    cdp.eval("document.getElementById('tab-graph').scrollIntoView()");
    std::thread::sleep(Duration::from_millis(300));
    cdp.screenshot(&artifacts().join("dashboard-graph.png"));

    // The flame graph is embedded.
    cdp.eval("document.getElementById('tab-flame').click()");
    cdp.wait_for(
        "(() => { const o = document.getElementById('flame'); const d = o && o.contentDocument; \
         return !!(d && d.documentElement && d.documentElement.textContent.includes('fetch_replica')); })()",
        "the flame graph",
    );

    // Pause stops the refreshes.
    cdp.eval("document.getElementById('pause').click()");
    cdp.wait_for("document.getElementById('status').textContent.startsWith('Paused')", "pause");

    assert!(cdp.errors.is_empty(), "the page reported errors: {:#?}", cdp.errors);
    let _ = cdp.ws.send(Message::text(json!({ "id": 0, "method": "Browser.close" }).to_string()));
    drop(_browser);
    let _ = std::fs::remove_dir_all(profile);
}
