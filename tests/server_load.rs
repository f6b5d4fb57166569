//! The debug server under load: 100,000 tasks parked, 100 concurrent clients
//! hitting every endpoint for 60 s from a loopback load generator this test
//! starts and stops itself. Checked: no unexpected status and no transport
//! error (malformed queries are part of the mix and must get `400` with a
//! message), every endpoint answered, the bounded endpoints stay small,
//! memory stays bounded (RSS from `/proc/self/status`, and the heap in use,
//! counted by this binary's global allocator), and a watched program (two
//! tasks ping-ponging on an unbuffered channel) keeps its throughput.
//! Count, p50/p99/max latency and largest answer per endpoint are printed.
//!
//! What this load found, fixed in `src/server/shared.rs`: every request took
//! a snapshot of its own (~0.5 s of CPU at 100,000 tasks, two at a time), so
//! 100 clients got 4 answers/s and a p99 of 65 s; and RSS doubled in a minute
//! with the heap in use flat (malloc keeping freed snapshots in its arenas).
//!
//! ```text
//! cargo test --release --test server_load -- --nocapture      # what CI runs
//! PARKWATCH_LOAD_SECS=10 cargo test --release --test server_load -- --nocapture
//! ```
//!
//! An unoptimised build (`cargo test --workspace`) runs the same test scaled
//! down (10,000 tasks, 10 s): its timings mean nothing, but every check still
//! applies. `PARKWATCH_LOAD_SECS` and `PARKWATCH_LOAD_TASKS` override the
//! duration and the number of parked tasks.
#![cfg(feature = "server")]

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use parkwatch::server::ServerBuilder;
use parkwatch::sync::{Mutex, MutexGuard, WaitGroup};
use parkwatch::{SnapshotOptions, TaskState};

/// Concurrent clients of the load generator.
const CLIENTS: usize = 100;
/// Tasks per channel / WaitGroup (mutexes get one waiter each: a long mutex
/// queue is a different test, see benches/scale.rs `--pathological`).
const SHARE: usize = 1000;
/// Largest answer of an endpoint whose answer is bounded whatever the number
/// of tasks (pages of at most 1,000 rows, graphs of at most 5,000 nodes,
/// stacks grouped).
const BOUNDED: usize = 2 << 20;

/// Memory is bounded: the highest heap in use of the last 10 s of the load
/// at most this factor of the highest of the first 10 s, plus [`MEM_SLACK`];
/// the same for RSS, plus [`RSS_SLACK_PER_TASK`] per parked task.
///
/// In the first 10 s every endpoint is answered several times, so the
/// working set is reached: the tasks (~170 MiB of heap at 100,000), one
/// snapshot and what is derived from it (the server takes one at a time),
/// the answers being rendered and sent (a full JSON snapshot is ~70 MB), the
/// clients' buffers. Between two windows of equal length what differs is
/// which of these happen to be alive at the window's highest reading (±50
/// MiB of heap seen); a leak or an unbounded queue grows with the requests,
/// of which the rest of the run makes 5× more.
const MEM_FACTOR: f64 = 1.25;
const MEM_SLACK: u64 = 64 << 20;

/// RSS also holds memory freed and not yet given back: the server returns a
/// batch's snapshot to the system when the batch is done (`malloc_trim`), so
/// a reading can include up to one batch's working set, ~3 KB per parked task
/// (the heap in use goes from ~1.7 KB per task at rest to ~5 KB during a
/// batch). Without that trim RSS doubled in 60 s with the heap flat (673 to
/// 1,318 MiB): far above this bound.
const RSS_SLACK_PER_TASK: u64 = 3 << 10;

/// The watched program's throughput under load, at least this fraction of its
/// quiet throughput.
///
/// The machine has 2 cores, and everything runs in this process: the
/// program's 2 runtime workers, the server (its HTTP thread, the thread
/// taking snapshots and the 2 rendering answers) and the 100 client threads
/// reading up to tens of MB per answer. The server takes no lock the program
/// needs for more than a copy (a snapshot copies each registry shard out,
/// then builds outside the lock), so what the program loses is CPU time:
/// with the load keeping both cores busy its fair share is about half,
/// which is what Go's target for a dump is too ("throughput drops by less
/// than half"). A stop-the-world stall, or lock convoys with the snapshots,
/// would take it far below; 0.4 leaves room for the noise of a shared VM
/// (quiet windows alone vary by up to 2× on it, see BENCHMARKS.md).
const MIN_THROUGHPUT_RATIO: f64 = 0.4;

fn env_num(key: &str) -> Option<u64> {
    let v = std::env::var(key).ok()?;
    Some(v.trim().parse().unwrap_or_else(|_| panic!("{key}={v}: expected a number")))
}

/// The resident set size of this process, from `/proc/self/status`.
fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).expect("VmRSS");
    let kb: u64 = line.split_whitespace().nth(1).and_then(|v| v.parse().ok()).expect("VmRSS in kB");
    kb * 1024
}

/// Counts the bytes allocated and not yet freed (the heap in use, whatever
/// malloc keeps around).
struct Counting;

static LIVE_BYTES: std::sync::atomic::AtomicI64 = std::sync::atomic::AtomicI64::new(0);

// SAFETY: forwards every call to the system allocator; only counts.
unsafe impl std::alloc::GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: std::alloc::Layout) -> *mut u8 {
        LIVE_BYTES.fetch_add(l.size() as i64, Ordering::Relaxed);
        // SAFETY: same contract as ours.
        unsafe { std::alloc::System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: std::alloc::Layout) {
        LIVE_BYTES.fetch_sub(l.size() as i64, Ordering::Relaxed);
        // SAFETY: same contract as ours.
        unsafe { std::alloc::System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: std::alloc::Layout, new: usize) -> *mut u8 {
        LIVE_BYTES.fetch_add(new as i64 - l.size() as i64, Ordering::Relaxed);
        // SAFETY: same contract as ours.
        unsafe { std::alloc::System.realloc(p, l, new) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn heap_bytes() -> u64 {
    LIVE_BYTES.load(Ordering::Relaxed).max(0) as u64
}

fn mib(b: u64) -> f64 {
    b as f64 / (1 << 20) as f64
}

// ---------------------------------------------------------------------------
// The watched program
// ---------------------------------------------------------------------------

/// Where the parked tasks park (their names: `{site}-{i % 16}`).
const SITES: [&str; 4] = ["recv", "send", "lock", "wg"];

struct Program {
    runtime: u64,
    trips: Arc<AtomicU64>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Program {
    /// Starts a runtime with `n` tasks parked (and a lock cycle among them)
    /// and the ping-pong; returns once every task has been spawned.
    fn start(n: usize) -> Program {
        let trips = Arc::new(AtomicU64::new(0));
        let (ready_tx, ready_rx) = std::sync::mpsc::channel::<u64>();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let t = trips.clone();
        let thread = std::thread::Builder::new()
            .name("watched-program".into())
            .spawn(move || {
                let rt = parkwatch::Runtime::new().expect("runtime");
                let id = rt.id();
                rt.block_on(main_task(n, t, move || ready_tx.send(id).unwrap(), stop_rx))
                    .expect("the main task never deadlocks");
            })
            .unwrap();
        let runtime = ready_rx.recv_timeout(Duration::from_secs(300)).expect("tasks spawned");
        Program { runtime, trips, stop: Some(stop_tx), thread: Some(thread) }
    }

    /// Waits until the `n` tasks are parked: polls snapshots without stacks
    /// (the cheap kind) of this runtime.
    fn wait_parked(&self, n: usize) {
        let opts = SnapshotOptions { runtime: Some(self.runtime), skip_stacks: true };
        let start = Instant::now();
        loop {
            let s = parkwatch::snapshot_with(&opts);
            let parked = s
                .tasks()
                .iter()
                .filter(|t| t.state == TaskState::Parked)
                .filter(|t| t.name.as_deref().is_some_and(|n| !n.starts_with("pingpong")))
                .count();
            if parked >= n {
                return;
            }
            assert!(start.elapsed() < Duration::from_secs(300), "only {parked} of {n} tasks parked");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn trips(&self) -> u64 {
        self.trips.load(Ordering::Relaxed)
    }

    /// Round trips per second of the ping-pong over `d` (the caller's thread sleeps).
    fn quiet_rate(&self, d: Duration) -> f64 {
        let (c0, t0) = (self.trips(), Instant::now());
        std::thread::sleep(d);
        (self.trips() - c0) as f64 / t0.elapsed().as_secs_f64()
    }

    /// Releases the tasks and ends the main task; the runtime drops with it.
    fn stop(mut self) {
        let _ = self.stop.take().unwrap().send(());
        self.thread.take().unwrap().join().expect("the watched program ran to its end");
    }
}

/// The watched program's main task: parks `n` tasks at a handful of sites,
/// starts the ping-pong, reports ready, and waits (outside parkwatch, so no
/// detector takes it for stuck) for the test to stop it.
async fn main_task(n: usize, trips: Arc<AtomicU64>, ready: impl FnOnce(), stop: tokio::sync::oneshot::Receiver<()>) {
    // Two of the n are an AB-BA lock cycle (a definite deadlock finding);
    // the rest: 40 % idle receivers (senders alive), 20 % senders nobody
    // receives from, 20 % lock waiters, 20 % WaitGroup waiters.
    let rest = n - 2;
    let (nr, ns, nm) = (rest * 2 / 5, rest / 5, rest / 5);
    let nw = rest - nr - ns - nm;
    let recv_chans: Vec<_> = (0..nr.div_ceil(SHARE)).map(|_| parkwatch::chan::<u64>(0)).collect();
    let send_chans: Vec<_> = (0..ns.div_ceil(SHARE)).map(|_| parkwatch::chan::<u64>(0)).collect();
    let wgs: Vec<WaitGroup> = (0..nw.div_ceil(SHARE))
        .map(|_| {
            let wg = WaitGroup::new();
            wg.add(1);
            wg
        })
        .collect();
    let mutexes: &'static [Mutex<()>] = Box::leak((0..nm).map(|_| Mutex::new(())).collect::<Vec<_>>().into());
    let mut guards: Vec<MutexGuard<'static, ()>> = mutexes.iter().map(|m| m.try_lock().expect("fresh")).collect();
    let name = |site: usize, i: usize| format!("{}-{}", SITES[site], i % 16);
    for i in 0..nr {
        let rx = recv_chans[i / SHARE].receiver();
        spawn(name(0, i), async move {
            let _ = rx.recv().await;
        });
    }
    for i in 0..ns {
        let tx = send_chans[i / SHARE].sender();
        spawn(name(1, i), async move {
            let _ = tx.send(i as u64).await;
        });
    }
    for (i, m) in mutexes.iter().enumerate() {
        spawn(name(2, i), async move { drop(m.lock().await) });
    }
    for i in 0..nw {
        let wg = wgs[i / SHARE].clone();
        spawn(name(3, i), async move { wg.wait().await });
    }
    let (a, b) = (Arc::new(Mutex::new(())), Arc::new(Mutex::new(())));
    let both = WaitGroup::new();
    both.add(2);
    for (nm, first, second) in [("alpha", a.clone(), b.clone()), ("beta", b, a)] {
        let both = both.clone();
        spawn(nm.into(), async move {
            let _g1 = first.lock().await;
            both.done();
            both.wait().await;
            let _g2 = second.lock().await;
        });
    }

    // The workload whose throughput is watched: round trips over two unbuffered channels.
    let done = Arc::new(AtomicBool::new(false));
    let (ab, ba) = (parkwatch::chan::<u64>(0), parkwatch::chan::<u64>(0));
    let ping = {
        let (ab, ba, done) = (ab.sender(), ba.receiver(), done.clone());
        parkwatch::task::Builder::new().name("pingpong-a").spawn(async move {
            let mut i = 0u64;
            while !done.load(Ordering::Relaxed) {
                ab.send(i).await.unwrap();
                assert_eq!(ba.recv().await, Some(i + 1));
                i += 2;
                trips.fetch_add(1, Ordering::Relaxed);
            }
        })
    };
    let pong = {
        let (ab, ba) = (ab.receiver(), ba.sender());
        parkwatch::task::Builder::new().name("pingpong-b").spawn(async move {
            while let Some(v) = ab.recv().await {
                if ba.send(v + 1).await.is_err() {
                    break;
                }
            }
        })
    };
    drop(ba);
    ready();

    let _ = stop.await;
    done.store(true, Ordering::Relaxed);
    ping.await.expect("ping ran to its end");
    let _ = ab.close();
    pong.await.expect("pong ran to its end");
    // Release the parked tasks (all but the lock cycle).
    for c in recv_chans.iter().chain(&send_chans) {
        let _ = c.close();
    }
    for wg in &wgs {
        wg.done();
    }
    guards.clear();
}

/// Spawns a named task and detaches it.
fn spawn(name: String, f: impl std::future::Future<Output = ()> + Send + 'static) {
    drop(parkwatch::task::Builder::new().name(name).spawn(f));
}

// ---------------------------------------------------------------------------
// The load generator
// ---------------------------------------------------------------------------

/// What a request must get.
#[derive(Clone, Copy, Debug)]
enum Expect {
    /// 200; `bounded`: the answer is at most [`BOUNDED`] bytes; `listing`: a
    /// `/debug/tasks.json` listing whose summary counts every task.
    Ok {
        bounded: bool,
        listing: bool,
    },
    /// 400, plain text, with a message naming this.
    BadRequest(&'static str),
    NotFound,
    Redirect,
}

struct Target {
    path: String,
    expect: Expect,
}

fn targets(n: usize, some_id: u64) -> Vec<Target> {
    use Expect::*;
    let ok = Ok { bounded: true, listing: false };
    let listing = Ok { bounded: true, listing: true };
    let whole = Ok { bounded: false, listing: false };
    let long_q = format!("/debug/tasks.json?q={}", "x".repeat(5000));
    let t: Vec<(String, Expect)> = vec![
        ("/debug/tasks".into(), ok),
        ("/debug/tasks/".into(), Redirect),
        ("/debug/tasks/assets/app.js".into(), ok),
        ("/debug/tasks/assets/style.css".into(), ok),
        ("/debug/tasks.json".into(), listing),
        ("/debug/tasks.json?group=stack".into(), listing),
        ("/debug/tasks.json?group=stack&sort=-count&limit=5&state=parked".into(), listing),
        ("/debug/tasks.json?q=lock-3&limit=1000".into(), listing),
        (format!("/debug/tasks.json?offset={}", n.saturating_sub(100)), listing),
        ("/debug/tasks.json?state=parked&reason=chan%20send&sort=-parked&limit=200".into(), listing),
        ("/debug/tasks.json?reason=sync.WaitGroup.Wait&sort=name&offset=50&limit=50".into(), listing),
        ("/debug/tasks.json?in_findings=1&sort=-id&limit=1000".into(), listing),
        ("/debug/tasks.json?finding=0".into(), listing),
        ("/debug/tasks.json?q=ALPHA&unknown=1".into(), listing),
        (format!("/debug/tasks.json?id={some_id}"), ok),
        ("/debug/tasks.json?full=1".into(), whole),
        ("/debug/pprof/goroutine".into(), ok),
        ("/debug/pprof/goroutine?debug=1".into(), ok),
        ("/debug/pprof/goroutine?debug=2".into(), whole),
        ("/debug/pprof/goroutineleak?debug=0".into(), ok),
        ("/debug/pprof/goroutineleak?debug=1".into(), ok),
        ("/debug/pprof/goroutineleak?debug=2".into(), whole),
        ("/debug/tasks/flamegraph.svg".into(), ok),
        ("/debug/tasks/flamegraph.svg?reason=sync.Mutex.Lock".into(), ok),
        ("/debug/tasks/graph".into(), ok),
        ("/debug/tasks/graph?format=dot".into(), ok),
        ("/debug/tasks/graph?scope=findings&max_nodes=100".into(), ok),
        ("/debug/tasks/graph?max_nodes=5000".into(), ok),
        ("/metrics".into(), ok),
        // Malformed: 400 with a message, answered before any snapshot.
        ("/debug/tasks.json?limit=abc".into(), BadRequest("limit=abc")),
        ("/debug/tasks.json?sort=colour&limit=5".into(), BadRequest("sort=colour")),
        ("/debug/tasks.json?offset=-1".into(), BadRequest("offset=-1")),
        ("/debug/tasks.json?reason=%FF%FE".into(), BadRequest("reason=")),
        ("/debug/tasks.json?full=maybe".into(), BadRequest("full=maybe")),
        (long_q, BadRequest("too long")),
        ("/debug/pprof/goroutine?debug=9".into(), BadRequest("debug=9")),
        ("/debug/pprof/goroutineleak?debug=x".into(), BadRequest("debug=x")),
        ("/debug/tasks/graph?format=xml".into(), BadRequest("format=xml")),
        ("/debug/tasks/graph?max_nodes=0".into(), BadRequest("max_nodes=0")),
        ("/debug/tasks/flamegraph.svg?state=nope".into(), BadRequest("state=nope")),
        // Nothing there.
        ("/debug/nothing/here".into(), NotFound),
        ("/debug/tasks.json?id=987654321987".into(), NotFound),
    ];
    t.into_iter().map(|(path, expect)| Target { path, expect }).collect()
}

/// Latencies and answers of one target.
#[derive(Default, Clone)]
struct Stats {
    latencies: Vec<Duration>,
    bytes: u64,
    max_bytes: usize,
}

/// What the clients saw.
#[derive(Default)]
struct Outcome {
    stats: Vec<Stats>,
    /// Unexpected statuses, bodies or transport errors (the first few messages).
    errors: Vec<String>,
    error_count: usize,
}

impl Outcome {
    fn merge(&mut self, other: Outcome) {
        if self.stats.len() < other.stats.len() {
            self.stats.resize(other.stats.len(), Stats::default());
        }
        for (a, b) in self.stats.iter_mut().zip(other.stats) {
            a.latencies.extend(b.latencies);
            a.bytes += b.bytes;
            a.max_bytes = a.max_bytes.max(b.max_bytes);
        }
        self.error_count += other.error_count;
        self.errors.extend(other.errors.into_iter().take(20usize.saturating_sub(self.errors.len())));
    }
}

/// Checks one answer of `len` bytes, beginning with `body`; `Err` says what is wrong with it.
fn check(t: &Target, n: usize, status: u16, content_type: &str, len: u64, body: &[u8]) -> Result<(), String> {
    let text = || String::from_utf8_lossy(&body[..body.len().min(300)]).into_owned();
    match t.expect {
        Expect::Ok { bounded, listing } => {
            if status != 200 {
                return Err(format!("status {status}: {}", text()));
            }
            if bounded && len > BOUNDED as u64 {
                return Err(format!("{len} bytes: not bounded"));
            }
            if len == 0 {
                return Err("empty answer".into());
            }
            if listing {
                let v: serde_json::Value = serde_json::from_slice(body).map_err(|e| format!("not JSON: {e}"))?;
                let total = v["summary"]["total"].as_u64().unwrap_or(0);
                if total < n as u64 {
                    return Err(format!("summary.total {total} < {n}"));
                }
            }
        }
        Expect::BadRequest(needle) => {
            if status != 400 {
                return Err(format!("status {status}, expected 400: {}", text()));
            }
            if !content_type.starts_with("text/plain") {
                return Err(format!("400 as {content_type}"));
            }
            let msg = String::from_utf8_lossy(body);
            if !msg.starts_with("400 bad request: ") || !msg.contains(needle) {
                return Err(format!("400 without a message naming {needle:?}: {msg:?}"));
            }
        }
        Expect::NotFound => {
            if status != 404 || len == 0 {
                return Err(format!("status {status}, expected 404: {}", text()));
            }
        }
        Expect::Redirect => {
            if status != 303 {
                return Err(format!("status {status}, expected 303: {}", text()));
            }
        }
    }
    Ok(())
}

/// One client: its own connection (keep-alive), cycling over every target
/// from `first` until `end`.
fn client(base: &str, targets: &[Target], n: usize, first: usize, end: Instant) -> Outcome {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .timeout_global(Some(Duration::from_secs(300)))
        .build()
        .into();
    // Everything the client keeps is allocated before the load (no heap growth
    // of its own to blur the server's).
    let stats = targets.iter().map(|_| Stats { latencies: Vec::with_capacity(128), bytes: 0, max_bytes: 0 }).collect();
    let mut out = Outcome { stats, errors: Vec::with_capacity(20), error_count: 0 };
    // The largest listing is ~400 kB (1,000 rows).
    let mut head = Vec::with_capacity(512 << 10);
    let mut k = first;
    while Instant::now() < end {
        let i = k % targets.len();
        k += 1;
        let t = &targets[i];
        let url = format!("{base}{}", t.path);
        let t0 = Instant::now();
        let answer = agent.get(&url).call().and_then(|mut r| {
            let status = r.status().as_u16();
            let ct = r.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
            let keep = if matches!(t.expect, Expect::Ok { listing: true, .. }) { BOUNDED + 1 } else { 4096 };
            let len = read_body(&mut r.body_mut().with_config().limit(1 << 32).reader(), &mut head, keep)?;
            Ok((status, ct, len))
        });
        let took = t0.elapsed();
        let verdict = match answer {
            Ok((status, ct, len)) => {
                let s = &mut out.stats[i];
                s.latencies.push(took);
                s.bytes += len;
                s.max_bytes = s.max_bytes.max(len as usize);
                check(t, n, status, &ct, len, &head)
            }
            Err(e) => Err(format!("transport error after {took:?}: {e}")),
        };
        if let Err(e) = verdict {
            out.error_count += 1;
            if out.errors.len() < 20 {
                out.errors.push(format!("GET {}: {e}", truncate(&t.path, 100)));
            }
        }
    }
    out
}

/// Reads a whole answer, keeping its first `keep` bytes in `head` (what the
/// checks read: a whole listing, else the beginning), and returns its
/// length. The load generator runs in the measured process: it must not hold
/// whole dumps of 100,000 tasks (tens of MB) in memory, nor grow its heap with them.
fn read_body(r: &mut impl std::io::Read, head: &mut Vec<u8>, keep: usize) -> std::io::Result<u64> {
    head.clear();
    let mut buf = [0u8; 64 << 10];
    let mut len = 0u64;
    loop {
        let got = match r.read(&mut buf) {
            Ok(0) => return Ok(len),
            Ok(got) => got,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        len += got as u64;
        let room = keep.saturating_sub(head.len()).min(got);
        head.extend_from_slice(&buf[..room]);
    }
}

fn truncate(s: &str, max: usize) -> &str {
    &s[..s.len().min(max)]
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn ms(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64() * 1e3)
}

/// (time, RSS, heap in use) every 100 ms, until `stop`.
fn sample_rss(stop: &AtomicBool, t0: Instant, load: Duration) -> Vec<(Duration, u64, u64)> {
    let mut samples = Vec::with_capacity(load.as_secs() as usize * 10 + 1000);
    while !stop.load(Ordering::Relaxed) {
        samples.push((t0.elapsed(), rss_bytes(), heap_bytes()));
        std::thread::sleep(Duration::from_millis(100));
    }
    samples.push((t0.elapsed(), rss_bytes(), heap_bytes()));
    samples
}

#[test]
fn hundred_thousand_tasks_hundred_clients_every_endpoint() {
    let release = !cfg!(debug_assertions);
    let n = env_num("PARKWATCH_LOAD_TASKS").map_or(if release { 100_000 } else { 10_000 }, |v| v as usize);
    let secs = env_num("PARKWATCH_LOAD_SECS").unwrap_or(if release { 60 } else { 10 }).max(1);
    let load = Duration::from_secs(secs);
    assert!(n >= 10, "PARKWATCH_LOAD_TASKS: at least 10");
    if !release {
        println!("unoptimised build: {n} tasks for {secs} s (the acceptance run is `cargo test --release`)");
    }

    // The program, its tasks parked, then the ping-pong alone for a while.
    let t_setup = Instant::now();
    let program = Program::start(n);
    program.wait_parked(n);
    // The first snapshot with stacks resolves every site's symbols once:
    // take it now, so that neither the quiet window nor the latencies pay it.
    let warm = parkwatch::snapshot();
    assert!(warm.tasks().len() > n);
    drop(warm);
    println!("setup: {n} tasks parked in {:.1} s, RSS {:.0} MiB", t_setup.elapsed().as_secs_f64(), mib(rss_bytes()));
    let quiet_before = program.quiet_rate(Duration::from_secs(3));
    let rss_before = rss_bytes();

    // The server; leak suspects after 1 s, so that the findings (and the
    // endpoints that list their tasks) are there from the start.
    let server = ServerBuilder::new().port(0).no_token().leak_after(Duration::from_secs(1)).start().unwrap();
    let base = format!("http://{}", server.local_addr());
    let probe: serde_json::Value = serde_json::from_str(
        &ureq::get(format!("{base}/debug/tasks.json?q=lock-3&limit=1"))
            .call()
            .unwrap()
            .body_mut()
            .read_to_string()
            .unwrap(),
    )
    .unwrap();
    let some_id = probe["tasks"][0]["id"].as_u64().expect("a lock-3 task");
    let targets = targets(n, some_id);

    // The load: CLIENTS threads, each starting at its own target.
    let start = Arc::new(Barrier::new(CLIENTS + 1));
    let end_at = Arc::new(std::sync::OnceLock::<Instant>::new());
    let targets = Arc::new(targets);
    let running = Arc::new(AtomicUsize::new(CLIENTS));
    let clients: Vec<_> = (0..CLIENTS)
        .map(|c| {
            let (base, targets, start, end_at, running) =
                (base.clone(), targets.clone(), start.clone(), end_at.clone(), running.clone());
            std::thread::Builder::new()
                .name(format!("client-{c}"))
                .spawn(move || {
                    start.wait();
                    let end = *end_at.get().expect("end set before the start");
                    let out = client(&base, &targets, n, c, end);
                    running.fetch_sub(1, Ordering::Relaxed);
                    out
                })
                .unwrap()
        })
        .collect();
    let t0 = Instant::now();
    end_at.set(t0 + load).unwrap();
    let sampling = Arc::new(AtomicBool::new(false));
    let sampler = {
        let sampling = sampling.clone();
        std::thread::spawn(move || sample_rss(&sampling, t0, load))
    };
    let trips0 = program.trips();
    start.wait();
    let mut outcome = Outcome::default();
    for c in clients {
        outcome.merge(c.join().expect("client thread"));
    }
    let load_time = t0.elapsed();
    let during = (program.trips() - trips0) as f64 / load_time.as_secs_f64();
    sampling.store(true, Ordering::Relaxed);
    let rss = sampler.join().unwrap();
    assert_eq!(running.load(Ordering::Relaxed), 0);
    server.shutdown();
    let quiet_after = program.quiet_rate(Duration::from_secs(3));
    // Quiet windows vary on a shared machine: their mean is the reference.
    let quiet = (quiet_before + quiet_after) / 2.0;
    program.stop();

    // The table.
    println!(
        "\n{n} tasks parked, {CLIENTS} clients for {secs} s (load ran {:.1} s): latency per endpoint, ms\n",
        load_time.as_secs_f64()
    );
    println!("| endpoint | status | count | p50 | p99 | max | bytes (max) |");
    println!("|---|---|---|---|---|---|---|");
    let mut all = Vec::new();
    let mut total = 0;
    let mut missed = BTreeSet::new();
    for (t, s) in targets.iter().zip(&mut outcome.stats) {
        s.latencies.sort_unstable();
        all.extend_from_slice(&s.latencies);
        total += s.latencies.len();
        if s.latencies.is_empty() {
            missed.insert(t.path.clone());
        }
        let status = match t.expect {
            Expect::Ok { .. } => 200,
            Expect::BadRequest(_) => 400,
            Expect::NotFound => 404,
            Expect::Redirect => 303,
        };
        println!(
            "| `{}` | {status} | {} | {} | {} | {} | {} |",
            truncate(&t.path, 72),
            s.latencies.len(),
            ms(percentile(&s.latencies, 50.0)),
            ms(percentile(&s.latencies, 99.0)),
            ms(s.latencies.last().copied().unwrap_or_default()),
            s.max_bytes
        );
    }
    all.sort_unstable();
    println!(
        "| all | | {total} ({:.1}/s) | {} | {} | {} | |",
        total as f64 / load_time.as_secs_f64(),
        ms(percentile(&all, 50.0)),
        ms(percentile(&all, 99.0)),
        ms(all.last().copied().unwrap_or_default())
    );

    // Memory: the highest readings of the last seconds of the load against
    // those of the first seconds (the working set reached).
    let window = (load / 3).min(Duration::from_secs(10));
    let highest = |from: Duration, to: Duration, pick: fn(&(Duration, u64, u64)) -> u64| {
        rss.iter().filter(|s| s.0 >= from && s.0 <= to).map(pick).max().unwrap_or(0)
    };
    let last = load.saturating_sub(window);
    let (rss_early, rss_late) = (highest(Duration::ZERO, window, |s| s.1), highest(last, load, |s| s.1));
    let (heap_early, heap_late) = (highest(Duration::ZERO, window, |s| s.2), highest(last, load, |s| s.2));
    let bound = |early: u64| (early as f64 * MEM_FACTOR) as u64 + MEM_SLACK;
    let rss_bound = bound(rss_early) + n as u64 * RSS_SLACK_PER_TASK;
    println!(
        "\nmemory, highest in the first / last {:.0} s of load: RSS {:.0} / {:.0} MiB (bound {:.0}), heap in use {:.0} / {:.0} MiB (bound {:.0}); RSS before the load {:.0} MiB, peak {:.0} MiB",
        window.as_secs_f64(),
        mib(rss_early),
        mib(rss_late),
        mib(rss_bound),
        mib(heap_early),
        mib(heap_late),
        mib(bound(heap_early)),
        mib(rss_before),
        mib(rss.iter().map(|s| s.1).max().unwrap_or(0)),
    );
    let timeline: Vec<String> = rss
        .iter()
        .scan(Duration::ZERO, |next, &(t, r, h)| {
            Some((t >= *next).then(|| {
                *next = t + Duration::from_secs(5);
                format!("{:.0}/{:.0}", mib(r), mib(h))
            }))
        })
        .flatten()
        .collect();
    println!("RSS/heap in use every 5 s of load, MiB: {}", timeline.join(" "));
    let ratio = during / quiet;
    println!(
        "watched program (ping-pong round trips/s): quiet {quiet:.0} (before {quiet_before:.0}, after {quiet_after:.0}), under load {during:.0}: ratio {ratio:.2} (at least {MIN_THROUGHPUT_RATIO})"
    );
    println!("unexpected answers and transport errors: {}", outcome.error_count);

    assert!(
        outcome.error_count == 0,
        "{} unexpected answers, e.g.:\n{}",
        outcome.error_count,
        outcome.errors.join("\n")
    );
    assert!(missed.is_empty(), "endpoints never answered: {missed:?}");
    assert!(rss_late <= rss_bound, "RSS grew under load: {:.0} MiB, then {:.0} MiB", mib(rss_early), mib(rss_late));
    assert!(
        heap_late <= bound(heap_early),
        "the heap in use grew under load: {:.0} MiB, then {:.0} MiB",
        mib(heap_early),
        mib(heap_late)
    );
    assert!(
        ratio >= MIN_THROUGHPUT_RATIO,
        "the watched program slowed to {ratio:.2} of its quiet throughput ({during:.0} vs {quiet:.0} round trips/s)"
    );
}
