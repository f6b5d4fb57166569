//! The HTTP endpoints: status, content type and shape of every answer, 400s
//! for malformed queries, the token, the bind address, mounting the router.
//!
//! Every test reads the same fixed scenario (one runtime, ten tasks that never
//! move), so exact counts can be checked: the pprof samples sum to the tasks.
#![cfg(feature = "server")]

use std::io::Read as _;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use parkwatch::server::ServerBuilder;
use parkwatch::sync::Mutex;
use serde_json::Value;

/// Tasks of the scenario: main, 4 idle receivers, 3 stuck senders, a lock cycle of 2.
const TASKS: u64 = 10;

struct Fixture {
    open: String,
    locked: String,
}

/// Starts the scenario once, and two servers over it: one open, one with a token.
fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        std::thread::spawn(move || {
            let rt = parkwatch::Runtime::new().unwrap();
            let _ = rt.block_on(scenario(tx));
        });
        rx.recv_timeout(Duration::from_secs(20)).expect("scenario started");
        // Leak suspects after 300 ms; no stuck sets (their grace is an hour),
        // so the findings are the same whenever a test looks.
        let settings =
            |b: ServerBuilder| b.port(0).leak_after(Duration::from_millis(300)).grace(Duration::from_secs(3600));
        let open = settings(ServerBuilder::new().no_token()).start().unwrap();
        let locked = settings(ServerBuilder::new().token("s3cret")).start().unwrap();
        let f = Fixture {
            open: format!("http://{}", open.local_addr()),
            locked: format!("http://{}", locked.local_addr()),
        };
        // Kept running for the whole test binary.
        std::mem::forget(open);
        std::mem::forget(locked);
        wait_for_findings(&f.open);
        f
    })
}

/// The main task: sets everything up, then sleeps forever (a timer: never a global deadlock).
async fn scenario(ready: std::sync::mpsc::Sender<()>) {
    // 4 receivers on a channel whose sender main keeps and never uses: leak suspects.
    let jobs = parkwatch::chan::<u32>(0);
    for i in 0..4 {
        let rx = jobs.receiver();
        parkwatch::task::Builder::new().name(format!("idle-{i}")).spawn(async move { rx.recv().await });
    }
    // 3 senders on a channel whose receiver main keeps and never uses: leak suspects.
    let out = parkwatch::chan::<u32>(0);
    for i in 0..3 {
        let tx = out.sender();
        parkwatch::spawn(async move { tx.send(i).await });
    }
    // AB-BA: a definite lock cycle.
    let a = std::sync::Arc::new(Mutex::new(()));
    let b = std::sync::Arc::new(Mutex::new(()));
    let both = parkwatch::sync::WaitGroup::new();
    both.add(2);
    for (name, first, second) in [("alpha", a.clone(), b.clone()), ("beta", b.clone(), a.clone())] {
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

struct Resp {
    status: u16,
    content_type: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Resp {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

fn request(url: &str, headers: &[(&str, &str)]) -> Resp {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .timeout_global(Some(Duration::from_secs(60)))
        .build()
        .into();
    let mut req = agent.get(url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let mut resp = req.call().unwrap_or_else(|e| panic!("GET {url}: {e}"));
    let status = resp.status().as_u16();
    let headers: Vec<(String, String)> =
        resp.headers().iter().map(|(k, v)| (k.as_str().to_string(), v.to_str().unwrap_or("").to_string())).collect();
    let content_type = resp.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
    let body = resp.body_mut().with_config().limit(1 << 30).read_to_vec().unwrap();
    Resp { status, content_type, headers, body }
}

fn get(path: &str) -> Resp {
    request(&format!("{}{path}", fixture().open), &[])
}

fn wait_for_findings(base: &str) {
    let start = Instant::now();
    loop {
        let r = request(&format!("{base}/debug/tasks.json"), &[]);
        let v = r.json();
        let s = &v["summary"];
        if s["total"] == TASKS && s["deadlocks"].as_u64() >= Some(1) && s["leaked_tasks"] == 7 {
            return;
        }
        assert!(start.elapsed() < Duration::from_secs(20), "findings never appeared: {s:#} {:#}", v["findings"]);
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn the_page_and_its_assets_are_served() {
    let r = get("/debug/tasks");
    assert_eq!(r.status, 200);
    assert!(r.content_type.starts_with("text/html"), "{}", r.content_type);
    let html = r.text();
    assert!(html.contains("<title>parkwatch"), "{html}");
    assert!(!html.contains("http://") && !html.contains("https://"), "no external resources");
    assert!(r.header("content-security-policy").unwrap().contains("default-src 'self'"));
    assert_eq!(r.header("x-content-type-options"), Some("nosniff"));
    for (name, ct) in [("app.js", "text/javascript"), ("style.css", "text/css"), ("favicon.svg", "image/svg+xml")] {
        let a = get(&format!("/debug/tasks/assets/{name}"));
        assert_eq!(a.status, 200, "{name}");
        assert!(a.content_type.starts_with(ct), "{name}: {}", a.content_type);
        assert!(!a.body.is_empty());
    }
    // Slash redirect, and no way out of the asset table.
    let r = get("/debug/tasks/");
    assert_eq!(r.status, 303);
    for path in [
        "/debug/tasks/assets/../../Cargo.toml",
        "/debug/tasks/assets/..%2f..%2fCargo.toml",
        "/debug/tasks/assets/%2e%2e%2fsrc%2flib.rs",
        "/debug/tasks/assets/nope.js",
        "/debug/tasks/assets/%FF",
        "/debug/tasks/assets/",
        "/etc/passwd",
        "/debug/../Cargo.toml",
    ] {
        let r = get(path);
        assert!(r.status == 404, "{path}: {} {}", r.status, r.text());
        assert!(!r.text().contains("[package]"), "{path}");
    }
}

#[test]
fn tasks_json_has_summary_findings_and_a_page_of_tasks() {
    let r = get("/debug/tasks.json");
    assert_eq!(r.status, 200);
    assert_eq!(r.content_type, "application/json");
    let v = r.json();
    let s = &v["summary"];
    assert_eq!(s["total"], TASKS);
    assert_eq!(s["by_state"]["parked"], TASKS);
    assert!(s["by_reason"].as_array().unwrap().iter().any(|x| x["reason"] == "chan send" && x["count"] == 3));
    assert!(s["oldest_park"].as_f64().unwrap() > 0.0);
    let findings = v["findings"].as_array().unwrap();
    let cycle = findings.iter().find(|f| f["kind"] == "lock_cycle").expect("the lock cycle");
    assert_eq!(cycle["certainty"], "definite");
    assert_eq!(cycle["severity"], "deadlock");
    assert_eq!(cycle["task_count"], 2);
    let names: Vec<&str> = cycle["tasks"].as_array().unwrap().iter().map(|t| t["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["alpha", "beta"]);
    assert!(cycle["explanation"].as_str().unwrap().contains("alpha"));
    let leaks: Vec<&Value> = findings.iter().filter(|f| f["kind"] == "leak_suspect").collect();
    assert_eq!(leaks.len(), 2);
    assert!(leaks.iter().all(|f| f["certainty"] == "suspected" && f["site"].is_string()));
    assert_eq!(v["mode"], "tasks");
    assert_eq!(v["total"], TASKS);
    let tasks = v["tasks"].as_array().unwrap();
    assert_eq!(tasks.len() as u64, TASKS);
    let ids: Vec<u64> = tasks.iter().map(|t| t["id"].as_u64().unwrap()).collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "sorted by id: {ids:?}");
    let alpha = tasks.iter().find(|t| t["name"] == "alpha").unwrap();
    assert_eq!(alpha["state"], "parked");
    assert_eq!(alpha["wait_reason"], "sync.Mutex.Lock");
    assert!(alpha["location"].as_str().unwrap().contains("tests/server.rs"));
    assert!(!alpha["findings"].as_array().unwrap().is_empty());
}

#[test]
fn tasks_json_filters_sorts_pages_and_groups() {
    let ids = |q: &str| -> Vec<u64> {
        let v = get(&format!("/debug/tasks.json?{q}")).json();
        v["tasks"].as_array().unwrap().iter().map(|t| t["id"].as_u64().unwrap()).collect()
    };
    let total = |q: &str| get(&format!("/debug/tasks.json?{q}")).json()["total"].as_u64().unwrap();
    assert_eq!(total("reason=chan%20send"), 3);
    assert_eq!(total("reason=ChanReceive"), 4);
    assert_eq!(total("state=parked&reason=sync.Mutex.Lock"), 2);
    assert_eq!(total("state=running"), 0);
    assert_eq!(total("q=ALPHA"), 1);
    assert_eq!(total("q=idle"), 4);
    assert_eq!(total("in_findings=1"), 9);
    assert_eq!(total("finding=0"), 2, "the lock cycle comes first");
    assert_eq!(total("unknown=param&another=1"), TASKS);
    // Paging.
    let all = ids("");
    assert_eq!(ids("limit=3"), all[..3]);
    assert_eq!(ids("offset=8&limit=5"), all[8..]);
    assert!(ids("offset=100").is_empty());
    let v = get("/debug/tasks.json?limit=1000000").json();
    assert_eq!(v["limit"], 1000, "page size capped");
    // Sorting.
    let mut desc = all.clone();
    desc.reverse();
    assert_eq!(ids("sort=-id"), desc);
    let v = get("/debug/tasks.json?sort=name").json();
    assert_eq!(v["tasks"][0]["name"], "alpha");
    // Grouping identical stacks.
    let v = get("/debug/tasks.json?group=stack").json();
    assert_eq!(v["mode"], "groups");
    let groups = v["groups"].as_array().unwrap();
    let sum: u64 = groups.iter().map(|g| g["count"].as_u64().unwrap()).sum();
    assert_eq!(sum, TASKS);
    assert_eq!(groups[0]["count"], 4, "largest first: the idle receivers");
    assert_eq!(groups[0]["wait_reason"], "chan receive");
    assert_eq!(groups[0]["names"].as_array().unwrap().len(), 4);
    assert!(!groups[0]["frames"].as_array().unwrap().is_empty());
    let key = groups[0]["stack_key"].as_str().unwrap();
    assert_eq!(total(&format!("stack={key}")), 4);
}

#[test]
fn task_detail_and_full_snapshot() {
    let v = get("/debug/tasks.json?q=beta").json();
    let id = v["tasks"][0]["id"].as_u64().unwrap();
    let d = get(&format!("/debug/tasks.json?id={id}")).json();
    let t = &d["task"];
    assert_eq!(t["name"], "beta");
    assert_eq!(t["state_word"], "sync.Mutex.Lock");
    assert!(t["parked_at"].as_str().unwrap().contains("tests/server.rs"));
    assert!(!t["stack"].as_array().unwrap().is_empty());
    assert_eq!(t["waits_on"][0]["op"], "sync.Mutex.Lock");
    assert_eq!(t["waits_on"][0]["holders"][0]["task"]["name"], "alpha");
    assert_eq!(t["holds"].as_array().unwrap().len(), 1, "beta holds its first lock");
    assert_eq!(t["finding_details"][0]["kind"], "lock_cycle");
    assert!(t["created_by"].is_string() || t["parent_task"].is_object());
    let r = get("/debug/tasks.json?id=987654321");
    assert_eq!(r.status, 404);
    assert!(r.content_type.starts_with("text/plain"));
    // The whole snapshot, as parkwatch::dump::json writes it.
    let r = get("/debug/tasks.json?full=1");
    assert_eq!(r.status, 200);
    let snap: parkwatch::Snapshot = serde_json::from_slice(&r.body).expect("a Snapshot");
    assert_eq!(snap.tasks().len() as u64, TASKS);
}

mod pprof_proto {
    //! The parts of profile.proto the test reads.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Profile {
        #[prost(message, repeated, tag = "1")]
        pub sample_type: Vec<ValueType>,
        #[prost(message, repeated, tag = "2")]
        pub sample: Vec<Sample>,
        #[prost(message, repeated, tag = "4")]
        pub location: Vec<Location>,
        #[prost(message, repeated, tag = "5")]
        pub function: Vec<Function>,
        #[prost(string, repeated, tag = "6")]
        pub string_table: Vec<String>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ValueType {
        #[prost(int64, tag = "1")]
        pub r#type: i64,
        #[prost(int64, tag = "2")]
        pub unit: i64,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Sample {
        #[prost(uint64, repeated, tag = "1")]
        pub location_id: Vec<u64>,
        #[prost(int64, repeated, tag = "2")]
        pub value: Vec<i64>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Location {
        #[prost(uint64, tag = "1")]
        pub id: u64,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Function {
        #[prost(uint64, tag = "1")]
        pub id: u64,
        #[prost(int64, tag = "2")]
        pub name: i64,
    }
}

fn decode_profile(gz: &[u8]) -> pprof_proto::Profile {
    use prost::Message as _;
    assert_eq!(&gz[..2], &[0x1f, 0x8b], "gzip");
    let mut raw = Vec::new();
    flate2::read::GzDecoder::new(gz).read_to_end(&mut raw).expect("gunzip");
    pprof_proto::Profile::decode(raw.as_slice()).expect("profile.proto")
}

#[test]
fn goroutine_profile_debug0_is_a_gzipped_pprof_protobuf() {
    for path in ["/debug/pprof/goroutine", "/debug/pprof/goroutine?debug=0"] {
        let r = get(path);
        assert_eq!(r.status, 200);
        assert_eq!(r.content_type, "application/octet-stream");
        let p = decode_profile(&r.body);
        let st = &p.sample_type[0];
        assert_eq!(p.string_table[st.r#type as usize], "goroutine");
        assert_eq!(p.string_table[st.unit as usize], "count");
        let sum: i64 = p.sample.iter().map(|s| s.value[0]).sum();
        assert_eq!(sum as u64, TASKS, "one sample per distinct stack, counts sum to the tasks");
        assert!(p.sample.iter().all(|s| !s.location_id.is_empty()));
        assert!(p.sample.len() < TASKS as usize, "identical stacks share a sample");
        assert!(p.string_table.iter().any(|s| s.contains("server")), "function names of this test");
    }
    go_tool_pprof_reads(&get("/debug/pprof/goroutine?debug=0").body);
}

/// `go tool pprof -top` on the profile, when Go is installed.
fn go_tool_pprof_reads(profile: &[u8]) {
    let Ok(out) = std::process::Command::new("go").arg("version").output() else {
        println!("go is not installed: the prost decode above is the check");
        return;
    };
    if !out.status.success() {
        return;
    }
    let dir = std::env::temp_dir().join(format!("parkwatch-pprof-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("goroutine.pb.gz");
    std::fs::write(&file, profile).unwrap();
    let out = std::process::Command::new("go")
        .args(["tool", "pprof", "-top"])
        .arg(&file)
        .env("GOTOOLCHAIN", "local")
        .env("PPROF_TMPDIR", &dir)
        .current_dir(&dir)
        .output()
        .expect("go tool pprof runs");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "go tool pprof failed: {}{}", text, String::from_utf8_lossy(&out.stderr));
    assert!(text.contains("Type: goroutine"), "{text}");
    assert!(text.contains(&format!("of {TASKS} total")), "{text}");
    println!("{text}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn goroutine_profile_text_debug1_and_debug2() {
    let r = get("/debug/pprof/goroutine?debug=1");
    assert_eq!(r.status, 200);
    assert_eq!(r.content_type, "text/plain; charset=utf-8");
    let t = r.text();
    assert!(t.starts_with(&format!("goroutine profile: total {TASKS}\n")), "{t}");
    assert!(t.contains("\n3 @ 0x"), "the unnamed senders share a stack: {t}");
    assert!(t.contains("# labels: {\"name\":\"idle-0\"}"), "{t}");
    let r = get("/debug/pprof/goroutine?debug=2");
    assert_eq!(r.status, 200);
    assert!(r.content_type.starts_with("text/plain"));
    let t = r.text();
    assert_eq!(t.matches("goroutine ").count() as u64 - t.matches("in goroutine ").count() as u64, TASKS, "{t}");
    assert!(t.contains("[sync.Mutex.Lock"), "{t}");
    assert!(t.contains("[chan send"), "{t}");
}

#[test]
fn goroutineleak_profile_has_the_tasks_of_findings() {
    let r = get("/debug/pprof/goroutineleak?debug=1");
    assert_eq!(r.status, 200);
    assert!(r.content_type.starts_with("text/plain"));
    assert!(r.text().starts_with("goroutine profile: total 9\n"), "{}", r.text());
    let r = get("/debug/pprof/goroutineleak");
    assert_eq!(r.content_type, "application/octet-stream");
    let p = decode_profile(&r.body);
    assert_eq!(p.sample.iter().map(|s| s.value[0]).sum::<i64>(), 9);
    let t = get("/debug/pprof/goroutineleak?debug=2").text();
    assert!(!t.contains("[sleep"), "the sleeping main task is in no finding: {t}");
}

#[test]
fn flamegraph_is_svg() {
    let r = get("/debug/tasks/flamegraph.svg");
    assert_eq!(r.status, 200);
    assert_eq!(r.content_type, "image/svg+xml");
    let svg = r.text();
    assert!(svg.contains("<svg") && svg.trim_end().ends_with("</svg>"));
    assert!(svg.contains(&format!("parkwatch: {TASKS} tasks, {TASKS} parked")), "title with totals");
    let r = get("/debug/tasks/flamegraph.svg?reason=chan%20send");
    assert!(r.text().contains("parkwatch: 3 tasks, 3 parked"));
}

#[test]
fn wait_for_graph_as_json_and_dot() {
    for path in ["/debug/tasks/graph", "/debug/tasks/graph?format=json"] {
        let r = get(path);
        assert_eq!(r.status, 200);
        assert_eq!(r.content_type, "application/json");
        let g = r.json();
        let nodes = g["nodes"].as_array().unwrap();
        let edges = g["edges"].as_array().unwrap();
        assert!(nodes
            .iter()
            .any(|n| n["type"] == "task" && n["label"].as_str().is_some_and(|l| l.ends_with("\"alpha\""))));
        assert!(nodes
            .iter()
            .any(|n| n["type"] == "resource" && n["label"].as_str().unwrap().starts_with("sync.Mutex#")));
        assert!(edges.iter().any(|e| e["kind"] == "held_by"));
        let cycle: Vec<&Value> = edges.iter().filter(|e| e["cycle"] == true).collect();
        assert_eq!(cycle.len(), 4, "alpha -> B -> beta -> A -> alpha");
        assert!(cycle.iter().all(|e| e["in_cycle"] == true));
        assert_eq!(g["cycles"], 1);
        assert_eq!(g["truncated"], false);
        assert!(edges.iter().all(|e| e["from"].as_u64().unwrap() < nodes.len() as u64));
    }
    let r = get("/debug/tasks/graph?format=dot");
    assert_eq!(r.status, 200);
    assert!(r.content_type.starts_with("text/vnd.graphviz"));
    let dot = r.text();
    assert!(dot.starts_with("digraph"), "{dot}");
    assert!(dot.contains("shape=box") && dot.contains("shape=ellipse") && dot.contains("color=red"));
    // Bounded: a cut graph keeps the cycle first.
    let g = get("/debug/tasks/graph?max_nodes=4").json();
    assert_eq!(g["nodes"].as_array().unwrap().len(), 4);
    assert_eq!(g["truncated"], true);
    assert_eq!(g["edges"].as_array().unwrap().iter().filter(|e| e["cycle"] == true).count(), 4);
    let dot = get("/debug/tasks/graph?format=dot&max_nodes=4").text();
    assert!(dot.contains("truncated") && dot.contains("color=red"), "{dot}");
}

#[test]
fn metrics_are_prometheus_text() {
    let r = get("/metrics");
    assert_eq!(r.status, 200);
    assert_eq!(r.content_type, "text/plain; version=0.0.4; charset=utf-8");
    let text = r.text();
    let mut values = std::collections::HashMap::new();
    for line in text.lines() {
        if line.starts_with('#') {
            assert!(line.starts_with("# HELP parkwatch_") || line.starts_with("# TYPE parkwatch_"), "{line}");
            continue;
        }
        let (series, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("no value: {line}"));
        let v: f64 = value.parse().unwrap_or_else(|_| panic!("bad value: {line}"));
        assert!(series.starts_with("parkwatch_"), "{line}");
        values.insert(series.to_string(), v);
    }
    assert_eq!(values["parkwatch_tasks{state=\"parked\"}"], TASKS as f64);
    assert_eq!(values["parkwatch_tasks{state=\"running\"}"], 0.0);
    assert_eq!(values["parkwatch_parked_tasks{reason=\"chan receive\"}"], 4.0);
    assert_eq!(values["parkwatch_parked_tasks{reason=\"chan send\"}"], 3.0);
    assert_eq!(values["parkwatch_parked_tasks{reason=\"sync.Mutex.Lock\"}"], 2.0);
    assert_eq!(values["parkwatch_findings{kind=\"lock_cycle\",certainty=\"definite\"}"], 1.0);
    assert_eq!(values["parkwatch_findings{kind=\"leak_suspect\",certainty=\"suspected\"}"], 2.0);
    assert_eq!(values["parkwatch_findings{kind=\"stuck_set\",certainty=\"probable\"}"], 0.0);
    assert_eq!(values["parkwatch_finding_tasks{kind=\"leak_suspect\",certainty=\"suspected\"}"], 7.0);
    assert_eq!(values["parkwatch_global_deadlock"], 0.0);
    assert!(values["parkwatch_oldest_park_seconds"] > 0.0);
}

#[test]
fn malformed_queries_get_400_with_a_message() {
    for (path, needle) in [
        ("/debug/pprof/goroutine?debug=7", "debug=7"),
        ("/debug/pprof/goroutine?debug=abc", "debug=abc"),
        ("/debug/pprof/goroutineleak?debug=3", "debug=3"),
        ("/debug/tasks/graph?format=xml", "format=xml"),
        ("/debug/tasks/graph?max_nodes=abc", "max_nodes"),
        ("/debug/tasks/graph?max_nodes=0", "max_nodes"),
        ("/debug/tasks/graph?scope=everything", "scope"),
        ("/debug/tasks.json?limit=abc", "limit=abc"),
        ("/debug/tasks.json?limit=0", "limit"),
        ("/debug/tasks.json?offset=-1", "offset"),
        ("/debug/tasks.json?state=sleepy", "state=sleepy"),
        ("/debug/tasks.json?reason=napping", "reason=napping"),
        ("/debug/tasks.json?sort=colour", "sort=colour"),
        ("/debug/tasks.json?group=colour", "group=colour"),
        ("/debug/tasks.json?id=abc", "id=abc"),
        ("/debug/tasks.json?full=maybe", "full=maybe"),
        ("/debug/tasks.json?stack=zz", "stack=zz"),
        ("/debug/tasks/flamegraph.svg?state=nope", "state=nope"),
    ] {
        let r = get(path);
        assert_eq!(r.status, 400, "{path}: {}", r.text());
        assert_eq!(r.content_type, "text/plain; charset=utf-8", "{path}");
        assert!(r.text().contains(needle), "{path}: {}", r.text());
    }
    let long = format!("/debug/tasks.json?q={}", "x".repeat(5000));
    assert_eq!(get(&long).status, 400);
    // Unknown parameters are ignored.
    assert_eq!(get("/debug/pprof/goroutine?debug=1&seconds=30&x=y").status, 200);
    assert_eq!(get("/metrics?name[]=x").status, 200);
}

#[test]
fn a_token_is_required_on_every_endpoint() {
    let base = &fixture().locked;
    let paths = [
        "/debug/tasks",
        "/debug/tasks/assets/app.js",
        "/debug/tasks.json",
        "/debug/tasks.json?full=1",
        "/debug/pprof/goroutine?debug=0",
        "/debug/pprof/goroutine?debug=1",
        "/debug/pprof/goroutineleak?debug=2",
        "/debug/tasks/flamegraph.svg",
        "/debug/tasks/graph?format=dot",
        "/metrics",
    ];
    for p in paths {
        let url = format!("{base}{p}");
        let r = request(&url, &[]);
        assert_eq!(r.status, 401, "{p}");
        assert_eq!(r.header("www-authenticate"), Some("Bearer realm=\"parkwatch\""), "{p}");
        assert!(r.text().contains("Authorization: Bearer"), "{p}");
        assert_eq!(request(&url, &[("Authorization", "Bearer wrong")]).status, 401, "{p}");
        assert_eq!(request(&url, &[("Authorization", "Bearer s3cre")]).status, 401, "{p}");
        assert_eq!(request(&url, &[("Authorization", "Basic czNjcmV0")]).status, 401, "{p}");
        assert_eq!(request(&url, &[("Authorization", "Bearer s3cret")]).status, 200, "{p}");
        assert_eq!(request(&url, &[("Authorization", "bearer s3cret")]).status, 200, "{p}");
    }
    // Unknown paths too: nothing is said before the token is checked.
    assert_eq!(request(&format!("{base}/nothing/here"), &[]).status, 401);
    // The page's ?token= sets a cookie the browser then sends.
    let r = request(&format!("{base}/debug/tasks?token=s3cret"), &[]);
    assert_eq!(r.status, 303);
    assert_eq!(r.header("location"), Some("tasks"));
    let cookie = r.header("set-cookie").unwrap().to_string();
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"), "{cookie}");
    let pair = cookie.split(';').next().unwrap();
    assert_eq!(request(&format!("{base}/debug/tasks.json"), &[("Cookie", pair)]).status, 200);
    assert_eq!(request(&format!("{base}/debug/tasks?token=wrong"), &[]).status, 401);
    assert_eq!(request(&format!("{base}/metrics?token=s3cret"), &[]).status, 401, "only the page takes ?token=");
}

#[test]
fn binds_loopback_by_default() {
    let s = ServerBuilder::new().port(0).no_token().start().unwrap();
    assert_eq!(s.local_addr().ip(), std::net::Ipv4Addr::LOCALHOST);
    assert!(s.url().starts_with("http://127.0.0.1:") && s.url().ends_with("/debug/tasks"));
    let url = format!("http://{}/metrics", s.local_addr());
    assert_eq!(request(&url, &[]).status, 200);
    s.shutdown();
    let refused = ureq::get(&url).call();
    assert!(refused.is_err(), "stopped");
    // (The default address, 127.0.0.1:6060, is checked by the unit tests.)
    let err = ServerBuilder::new().addr("not an address").start().unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
    let s = parkwatch::serve("127.0.0.1:0").unwrap();
    assert!(s.local_addr().ip().is_loopback());
    s.shutdown();
}

#[test]
fn runtime_builder_serves_while_the_runtime_lives() {
    let rt = parkwatch::Runtime::builder().serve("127.0.0.1:0".parse().unwrap()).build().unwrap();
    let addr = rt.server_addr().expect("serving");
    assert!(addr.ip().is_loopback());
    let url = format!("http://{addr}/debug/pprof/goroutine?debug=1");
    let r = request(&url, &[]);
    assert_eq!(r.status, 200);
    assert!(r.text().starts_with("goroutine profile: total "));
    drop(rt);
    assert!(ureq::get(&url).call().is_err(), "the server stops with its runtime");
}

#[test]
fn the_router_mounts_under_a_prefix() {
    let app = axum::Router::new().nest("/admin", ServerBuilder::new().no_token().router());
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let listener = rt.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).unwrap();
    let addr = listener.local_addr().unwrap();
    rt.spawn(async move { axum::serve(listener, app).await });
    let r = request(&format!("http://{addr}/admin/debug/tasks.json?limit=1"), &[]);
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["tasks"].as_array().unwrap().len(), 1);
    // The page's relative links resolve under the prefix.
    assert_eq!(request(&format!("http://{addr}/admin/debug/tasks/assets/app.js"), &[]).status, 200);
    assert_eq!(request(&format!("http://{addr}/admin/metrics"), &[]).status, 200);
    rt.shutdown_background();
}

#[test]
fn requests_are_answered_while_snapshots_run() {
    // Many concurrent requests: each gets its answer (snapshots are taken on
    // the blocking pool and shared by the requests waiting for one, so the
    // server never stalls). The server under real load: tests/server_load.rs.
    let _ = fixture();
    let handles: Vec<_> = (0..16)
        .map(|i| {
            std::thread::spawn(move || {
                let path = if i % 2 == 0 { "/debug/pprof/goroutine?debug=2" } else { "/debug/tasks.json?group=stack" };
                get(path).status
            })
        })
        .collect();
    for h in handles {
        assert_eq!(h.join().unwrap(), 200);
    }
}
