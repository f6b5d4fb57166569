//! Scale: 10^4..10^6 parked tasks — memory per task, and the cost of
//! `snapshot()`, the dumps and `analyze()` as the registry grows; and whether a
//! dump of a large registry slows down the tasks that keep running.
//!
//! ```text
//! cargo bench --bench scale                                  # 10^4, 10^5, 10^6 (a few minutes)
//! cargo bench --bench scale -- --quick                       # smoke: 1,000 tasks, 1 rep (CI)
//! cargo bench --bench scale -- --sizes 10000,100000 --reps 5
//! cargo bench --bench scale -- --pathological                # also the detector-complexity probes
//! ```
//!
//! Every measurement of one size runs in a fresh child process (this
//! executable re-executed with `--child ...`), so that memory freed by one
//! phase is not reused by the next and RSS deltas are clean.
//!
//! **Workload.** N parkwatch tasks on a 2-worker `Runtime`, a third parked
//! receiving on channels (one channel per 1,000 receivers, senders alive), a
//! third waiting on WaitGroups (one per 1,000 waiters, count 1), a third
//! locking Mutexes held by the main task (one waiter per mutex: see
//! "pathological" below for why not more). Resources are created before the
//! baseline RSS reading, so only the tasks are counted.
//!
//! **Memory.** RSS (from `/proc/self/statm`) after spawning N tasks and
//! letting them park, minus RSS before; the same for N plain tokio tasks (on a
//! plain 2-worker tokio runtime) each awaiting `Notify::notified()` (one
//! `Notify` per 1,000 tasks). The difference per task is parkwatch's overhead
//! beyond the future (the two futures' sizes are printed; they are close).
//!
//! **Time.** With the N tasks parked: `snapshot()`, `dump::text` debug=1 and
//! debug=2, `dump::pprof`, `dump::json`, `analyze()` (defaults: grace 1 s,
//! leaks after 30 s), `analyze_with(leak_after = 0)` (every task a leak
//! suspect, so the grouping runs over all of them) and `wait_for_graph()`.
//! Median of `--reps` runs (default 3).
//!
//! **Stop-the-world check.** Two tasks ping-pong on unbuffered channels; their
//! round trips per second are counted in a quiet window, while the main thread
//! runs one full dump sequence (snapshot, debug=1, debug=2, pprof, analyze), and
//! while the main thread merely burns CPU for as long (the control: on 2 cores
//! a third busy thread costs throughput by itself). The same for a task that
//! spawns and joins empty tasks in a loop (registry insert + remove per
//! iteration), with its worst latency per window.
//!
//! **Pathological (`--pathological`).** Cases whose cost grows faster than
//! the registry: parking on a contended Mutex, dropping the last sender of
//! channels with parked receivers, and `analyze()` on a pipeline chain, a
//! chain of lock waiters, and a long Mutex queue (the last three on
//! synthetic snapshots built through JSON).

use std::io::Read as _;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parkwatch::sync::{Mutex, MutexGuard, WaitGroup};
use parkwatch::{Chan, TaskState};

/// Tasks per channel / WaitGroup / Notify.
const SHARE: usize = 1000;

// ---------------------------------------------------------------------------
// Process facts
// ---------------------------------------------------------------------------

/// Counts live heap bytes and allocations, only in the memory children
/// (elsewhere one relaxed load per allocation).
struct Counting;

static COUNTING: AtomicBool = AtomicBool::new(false);
static LIVE_BYTES: std::sync::atomic::AtomicI64 = std::sync::atomic::AtomicI64::new(0);
static LIVE_ALLOCS: std::sync::atomic::AtomicI64 = std::sync::atomic::AtomicI64::new(0);

// SAFETY: forwards every call to the system allocator; only counts.
unsafe impl std::alloc::GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: std::alloc::Layout) -> *mut u8 {
        if COUNTING.load(Ordering::Relaxed) {
            LIVE_BYTES.fetch_add(l.size() as i64, Ordering::Relaxed);
            LIVE_ALLOCS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: same contract as ours.
        unsafe { std::alloc::System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: std::alloc::Layout) {
        if COUNTING.load(Ordering::Relaxed) {
            LIVE_BYTES.fetch_sub(l.size() as i64, Ordering::Relaxed);
            LIVE_ALLOCS.fetch_sub(1, Ordering::Relaxed);
        }
        // SAFETY: same contract as ours.
        unsafe { std::alloc::System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: std::alloc::Layout, new: usize) -> *mut u8 {
        if COUNTING.load(Ordering::Relaxed) {
            LIVE_BYTES.fetch_add(new as i64 - l.size() as i64, Ordering::Relaxed);
        }
        // SAFETY: same contract as ours.
        unsafe { std::alloc::System.realloc(p, l, new) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn heap() -> (i64, i64) {
    (LIVE_BYTES.load(Ordering::Relaxed), LIVE_ALLOCS.load(Ordering::Relaxed))
}

fn page_size() -> u64 {
    4096
}

/// Resident set size, bytes.
fn rss_bytes() -> u64 {
    let s = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    s.split_whitespace().nth(1).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0) * page_size()
}

/// User + system CPU time of the whole process (all threads), seconds.
fn cpu_seconds() -> f64 {
    let s = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name (which is in parentheses and may hold spaces).
    let rest = s.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    // rest[0] is field 3 (state): utime is field 14, stime 15.
    let ticks = |i: usize| f.get(i - 3).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(14) + ticks(15)) / 100.0
}

fn loadavg() -> String {
    let s = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    s.split_whitespace().take(3).collect::<Vec<_>>().join(" ")
}

fn result(key: &str, value: impl std::fmt::Display) {
    println!("RESULT {key} {value}");
}

// ---------------------------------------------------------------------------
// Options
// ---------------------------------------------------------------------------

struct Opts {
    sizes: Vec<usize>,
    reps: usize,
    quick: bool,
    mem: bool,
    time: bool,
    throughput: bool,
    pathological: bool,
    child: Option<Vec<String>>,
}

impl Opts {
    fn parse() -> Opts {
        let mut o = Opts {
            sizes: vec![10_000, 100_000, 1_000_000],
            reps: 3,
            quick: false,
            mem: true,
            time: true,
            throughput: true,
            pathological: false,
            child: None,
        };
        let args: Vec<String> = std::env::args().skip(1).collect();
        let mut i = 0;
        while i < args.len() {
            match args[i].as_str() {
                "--sizes" => {
                    i += 1;
                    o.sizes = args[i].split(',').map(|s| s.trim().replace('_', "").parse().expect("--sizes")).collect();
                }
                "--reps" => {
                    i += 1;
                    o.reps = args[i].parse().expect("--reps");
                }
                "--quick" => {
                    o.quick = true;
                    o.sizes = vec![1000];
                    o.reps = 1;
                }
                "--no-mem" => o.mem = false,
                "--no-time" => o.time = false,
                "--no-throughput" => o.throughput = false,
                "--pathological" => o.pathological = true,
                "--pathological-only" => {
                    o.pathological = true;
                    o.mem = false;
                    o.time = false;
                }
                "--child" => {
                    o.child = Some(args[i + 1..].to_vec());
                    break;
                }
                _ => {} // cargo's --bench and friends
            }
            i += 1;
        }
        o
    }
}

// ---------------------------------------------------------------------------
// The parked population
// ---------------------------------------------------------------------------

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    Chan,
    Mutex,
    Wg,
    Mix,
}

impl Kind {
    fn parse(s: &str) -> Kind {
        match s {
            "chan" => Kind::Chan,
            "mutex" => Kind::Mutex,
            "wg" => Kind::Wg,
            _ => Kind::Mix,
        }
    }

    /// (channel receivers, mutex waiters, WaitGroup waiters) for `n` tasks.
    fn split(self, n: usize) -> (usize, usize, usize) {
        match self {
            Kind::Chan => (n, 0, 0),
            Kind::Mutex => (0, n, 0),
            Kind::Wg => (0, 0, n),
            Kind::Mix => {
                let third = n / 3;
                (n - 2 * third, third, third)
            }
        }
    }
}

/// Resources for the parked tasks; created (and the mutexes locked by the
/// caller's task) before any task is spawned.
struct Population {
    chans: Vec<Chan<u64>>,
    wgs: Vec<WaitGroup>,
    mutexes: &'static [Mutex<()>],
    guards: Vec<MutexGuard<'static, ()>>,
    split: (usize, usize, usize),
    arrived: Arc<AtomicUsize>,
    finished: Arc<AtomicUsize>,
}

impl Population {
    fn new(kind: Kind, n: usize) -> Population {
        let split = kind.split(n);
        let (nc, nm, nw) = split;
        let chans = (0..nc.div_ceil(SHARE)).map(|_| parkwatch::chan::<u64>(0)).collect();
        let wgs = (0..nw.div_ceil(SHARE))
            .map(|_| {
                let wg = WaitGroup::new();
                wg.add(1);
                wg
            })
            .collect();
        let mutexes: &'static [Mutex<()>] = Box::leak((0..nm).map(|_| Mutex::new(())).collect::<Vec<_>>().into());
        let guards = mutexes.iter().map(|m| m.try_lock().expect("fresh mutex")).collect();
        Population {
            chans,
            wgs,
            mutexes,
            guards,
            split,
            arrived: Arc::new(AtomicUsize::new(0)),
            finished: Arc::new(AtomicUsize::new(0)),
        }
    }

    fn total(&self) -> usize {
        self.split.0 + self.split.1 + self.split.2
    }

    /// Spawns every task; returns the size of one future of each kind.
    fn spawn_all(&self) -> [usize; 3] {
        let (nc, nm, nw) = self.split;
        let mut sizes = [0; 3];
        for i in 0..nc {
            let rx = self.chans[i / SHARE].receiver();
            let (a, f) = (self.arrived.clone(), self.finished.clone());
            let fut = async move {
                a.fetch_add(1, Ordering::Relaxed);
                let _ = rx.recv().await;
                f.fetch_add(1, Ordering::Relaxed);
            };
            sizes[0] = std::mem::size_of_val(&fut);
            drop(parkwatch::spawn(fut));
        }
        for i in 0..nm {
            let m: &'static Mutex<()> = &self.mutexes[i];
            let (a, f) = (self.arrived.clone(), self.finished.clone());
            let fut = async move {
                a.fetch_add(1, Ordering::Relaxed);
                let _g = m.lock().await;
                f.fetch_add(1, Ordering::Relaxed);
            };
            sizes[1] = std::mem::size_of_val(&fut);
            drop(parkwatch::spawn(fut));
        }
        for i in 0..nw {
            let wg = self.wgs[i / SHARE].clone();
            let (a, f) = (self.arrived.clone(), self.finished.clone());
            let fut = async move {
                a.fetch_add(1, Ordering::Relaxed);
                wg.wait().await;
                f.fetch_add(1, Ordering::Relaxed);
            };
            sizes[2] = std::mem::size_of_val(&fut);
            drop(parkwatch::spawn(fut));
        }
        sizes
    }

    /// Waits until every task has started, then a little longer so that the
    /// last ones have finished parking.
    async fn settle(&self) {
        while self.arrived.load(Ordering::Relaxed) < self.total() {
            parkwatch::time::sleep(Duration::from_millis(5)).await;
        }
        quiesce().await;
    }

    /// Releases every task (close, unlock, done) and waits until all finished.
    async fn release(mut self) {
        for c in &self.chans {
            let _ = c.close();
        }
        for wg in &self.wgs {
            wg.done();
        }
        self.guards.clear();
        while self.finished.load(Ordering::Relaxed) < self.total() {
            parkwatch::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

/// Waits until the process's CPU time stops growing (the workers finished
/// what was queued), at most 30 s.
async fn quiesce() {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut last = cpu_seconds();
    loop {
        parkwatch::time::sleep(Duration::from_millis(100)).await;
        let now = cpu_seconds();
        // The sleeping main task costs nothing; < 2 ticks in 100 ms is idle.
        if now - last < 0.02 || Instant::now() > deadline {
            return;
        }
        last = now;
    }
}

fn pw_runtime() -> parkwatch::Runtime {
    parkwatch::Runtime::builder().worker_threads(2).build().expect("parkwatch runtime")
}

/// Warms up what a first spawn/park/dump pays once per process (symbol
/// resolution, thread-locals), so that neither RSS nor the timings include it.
async fn warm_up() {
    let p = Population::new(Kind::Mix, 30);
    p.spawn_all();
    p.settle().await;
    let s = parkwatch::snapshot();
    let _ = parkwatch::dump::text(&s, 2);
    let _ = parkwatch::dump::pprof(&s);
    let _ = s.analyze();
    p.release().await;
}

// ---------------------------------------------------------------------------
// Child: memory
// ---------------------------------------------------------------------------

fn child_mem_parkwatch(kind: Kind, n: usize) {
    let rt = pw_runtime();
    rt.block_on(async move {
        warm_up().await;
        let p = Population::new(kind, n);
        tokio::task::yield_now().await;
        let before = rss_bytes();
        let heap0 = heap();
        let t0 = Instant::now();
        let sizes = p.spawn_all();
        p.settle().await;
        let spawn = t0.elapsed();
        let after = rss_bytes();
        let heap1 = heap();
        result("heap_bytes", heap1.0 - heap0.0);
        result("heap_allocs", heap1.1 - heap0.1);
        result("rss_before", before);
        result("rss_after", after);
        result("future_sizes", format!("{},{},{}", sizes[0], sizes[1], sizes[2]));
        result("spawn_park_s", format!("{:.3}", spawn.as_secs_f64()));
        // Verify (after measuring: the snapshot allocates).
        let s = parkwatch::snapshot();
        let parked = s.tasks().iter().filter(|t| t.state == TaskState::Parked).count();
        result("parked", parked);
        if parked < n {
            eprintln!("warning: only {parked} of {n} tasks parked");
        }
        std::process::exit(0)
    })
    .expect("no deadlock");
}

fn child_mem_tokio(n: usize) {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    rt.block_on(async move {
        // Warm up the same way (thread-locals, first spawns).
        let warm = Arc::new(tokio::sync::Notify::new());
        let hs: Vec<_> = (0..30)
            .map(|_| {
                let w = warm.clone();
                tokio::spawn(async move { w.notified().await })
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(50)).await;
        warm.notify_waiters();
        for h in hs {
            h.await.unwrap();
        }
        let notifies: Vec<Arc<tokio::sync::Notify>> =
            (0..n.div_ceil(SHARE)).map(|_| Arc::new(tokio::sync::Notify::new())).collect();
        let arrived = Arc::new(AtomicUsize::new(0));
        let finished = Arc::new(AtomicUsize::new(0));
        tokio::task::yield_now().await;
        let before = rss_bytes();
        let heap0 = heap();
        let t0 = Instant::now();
        let mut size = 0;
        for i in 0..n {
            let nt = notifies[i / SHARE].clone();
            let (a, f) = (arrived.clone(), finished.clone());
            let fut = async move {
                a.fetch_add(1, Ordering::Relaxed);
                nt.notified().await;
                f.fetch_add(1, Ordering::Relaxed);
            };
            size = std::mem::size_of_val(&fut);
            drop(tokio::spawn(fut));
        }
        while arrived.load(Ordering::Relaxed) < n {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        // The same quiescence wait as parkwatch's.
        let mut last = cpu_seconds();
        loop {
            tokio::time::sleep(Duration::from_millis(100)).await;
            let now = cpu_seconds();
            if now - last < 0.02 {
                break;
            }
            last = now;
        }
        let spawn = t0.elapsed();
        let after = rss_bytes();
        let heap1 = heap();
        result("heap_bytes", heap1.0 - heap0.0);
        result("heap_allocs", heap1.1 - heap0.1);
        result("rss_before", before);
        result("rss_after", after);
        result("future_sizes", format!("{size},{size},{size}"));
        result("spawn_park_s", format!("{:.3}", spawn.as_secs_f64()));
        result("parked", n - finished.load(Ordering::Relaxed));
        std::process::exit(0)
    });
}

// ---------------------------------------------------------------------------
// Child: timings and the stop-the-world check
// ---------------------------------------------------------------------------

/// Median (and min) of `reps` runs of `f`, which returns an output size.
fn time_op(reps: usize, mut f: impl FnMut() -> usize) -> (Duration, Duration, usize) {
    let mut ts = Vec::new();
    let mut size = 0;
    for _ in 0..reps.max(1) {
        let t0 = Instant::now();
        size = f();
        ts.push(t0.elapsed());
    }
    ts.sort();
    (ts[ts.len() / 2], ts[0], size)
}

/// One full dump sequence, as the server would serve it.
fn dump_sequence() -> usize {
    let s = parkwatch::snapshot();
    let mut bytes = parkwatch::dump::text(&s, 1).len();
    bytes += parkwatch::dump::text(&s, 2).len();
    bytes += parkwatch::dump::pprof(&s).len();
    bytes += s.analyze().findings().count();
    bytes
}

fn child_time(n: usize, reps: usize, throughput: bool) {
    let rt = pw_runtime();
    rt.block_on(async move {
        warm_up().await;
        let p = Population::new(Kind::Mix, n);
        let t0 = Instant::now();
        p.spawn_all();
        p.settle().await;
        result("spawn_park_s", format!("{:.3}", t0.elapsed().as_secs_f64()));
        result("rss_parked", rss_bytes());

        let report = |name: &str, (med, min, size): (Duration, Duration, usize)| {
            result(&format!("{name}_ms"), format!("{:.2}", med.as_secs_f64() * 1e3));
            result(&format!("{name}_min_ms"), format!("{:.2}", min.as_secs_f64() * 1e3));
            result(&format!("{name}_size"), size);
            eprintln!(
                "  n={n} {name}: {:.1} ms (min {:.1}), size {size}",
                med.as_secs_f64() * 1e3,
                min.as_secs_f64() * 1e3
            );
        };
        // snapshot() alone, then dropping it (a server pays both per request).
        let mut drops = Vec::new();
        report(
            "snapshot",
            time_op(reps, || {
                let s = parkwatch::snapshot();
                let n = s.tasks().len();
                drops.push(s);
                n
            }),
        );
        report(
            "snapshot_drop",
            time_op(reps, || {
                drop(drops.pop());
                0
            }),
        );
        result("taskinfo_size", std::mem::size_of::<parkwatch::TaskInfo>());
        let s = parkwatch::snapshot();
        let parked = s.tasks().iter().filter(|t| t.state == TaskState::Parked).count();
        result("parked", parked);
        result("resources", s.resources().len());
        report("text1", time_op(reps, || parkwatch::dump::text(&s, 1).len()));
        report("text2", time_op(reps, || parkwatch::dump::text(&s, 2).len()));
        report("pprof", time_op(reps, || parkwatch::dump::pprof(&s).len()));
        report("json", time_op(reps, || parkwatch::dump::json(&s).len()));
        report("analyze", time_op(reps, || s.analyze().findings().count()));
        let all_leaks = parkwatch::AnalyzeOptions { grace: Duration::from_secs(1), leak_after: Duration::ZERO };
        report("analyze_leaks", time_op(reps, || s.analyze_with(&all_leaks).findings().count()));
        report("graph", time_op(reps, || s.wait_for_graph().graph().node_count()));
        drop(s);
        result("rss_after_dumps", rss_bytes());

        if throughput {
            stop_the_world_check(n).await;
        }
        result("load_end", loadavg().replace(' ', "/"));
        std::process::exit(0)
    })
    .expect("no deadlock");
}

/// Round trips per second of a ping-pong pair, and spawn+join iterations per
/// second of a churn task, while the main thread is idle, dumps, or burns CPU.
async fn stop_the_world_check(n: usize) {
    // --- ping-pong
    let stop = Arc::new(AtomicBool::new(false));
    let trips = Arc::new(AtomicU64::new(0));
    let (ab, ba) = (parkwatch::chan::<u64>(0), parkwatch::chan::<u64>(0));
    {
        let (ab, ba, stop, trips) = (ab.clone(), ba.clone(), stop.clone(), trips.clone());
        parkwatch::spawn(async move {
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                ab.send(i).await.unwrap();
                let v = ba.recv().await.unwrap();
                assert_eq!(v, i + 1);
                i += 2;
                trips.fetch_add(1, Ordering::Relaxed);
            }
            ab.close().unwrap();
        });
    }
    {
        let (ab, ba) = (ab.clone(), ba.clone());
        parkwatch::spawn(async move {
            while let Some(v) = ab.recv().await {
                if ba.send(v + 1).await.is_err() {
                    break;
                }
            }
        });
    }
    drop((ab, ba));
    std::thread::sleep(Duration::from_millis(300)); // warm up
    let window = |f: &mut dyn FnMut()| {
        let (c0, t0) = (trips.load(Ordering::Relaxed), Instant::now());
        f();
        let (c1, t1) = (trips.load(Ordering::Relaxed), Instant::now());
        ((c1 - c0) as f64 / (t1 - t0).as_secs_f64(), t1 - t0)
    };
    let (quiet, _) = window(&mut || std::thread::sleep(Duration::from_secs(1)));
    let (during, dump_time) = window(&mut || {
        dump_sequence();
    });
    let (burn, _) = window(&mut || burn_cpu(dump_time));
    let (quiet2, _) = window(&mut || std::thread::sleep(Duration::from_secs(1)));
    result("pingpong_quiet", format!("{:.0}", (quiet + quiet2) / 2.0));
    result("pingpong_dump", format!("{during:.0}"));
    result("pingpong_burn", format!("{burn:.0}"));
    result("dump_sequence_s", format!("{:.3}", dump_time.as_secs_f64()));
    eprintln!(
        "  n={n} ping-pong round trips/s: quiet {quiet:.0} / {quiet2:.0}, during dump ({:.2} s) {during:.0}, cpu-burn control {burn:.0}",
        dump_time.as_secs_f64()
    );
    stop.store(true, Ordering::Relaxed);
    parkwatch::time::sleep(Duration::from_millis(50)).await;

    // --- spawn/exit churn
    let stop = Arc::new(AtomicBool::new(false));
    let iters = Arc::new(AtomicU64::new(0));
    let worst_ns = Arc::new(AtomicU64::new(0));
    let slow = Arc::new(AtomicU64::new(0)); // iterations over 10 ms
    {
        let (stop, iters, worst_ns, slow) = (stop.clone(), iters.clone(), worst_ns.clone(), slow.clone());
        parkwatch::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let t = Instant::now();
                parkwatch::spawn(async {}).await.unwrap();
                let ns = t.elapsed().as_nanos() as u64;
                worst_ns.fetch_max(ns, Ordering::Relaxed);
                if ns > 10_000_000 {
                    slow.fetch_add(1, Ordering::Relaxed);
                }
                iters.fetch_add(1, Ordering::Relaxed);
            }
        });
    }
    std::thread::sleep(Duration::from_millis(300));
    let churn_window = |f: &mut dyn FnMut()| {
        worst_ns.store(0, Ordering::Relaxed);
        slow.store(0, Ordering::Relaxed);
        let (c0, t0) = (iters.load(Ordering::Relaxed), Instant::now());
        f();
        let (c1, t1) = (iters.load(Ordering::Relaxed), Instant::now());
        let rate = (c1 - c0) as f64 / (t1 - t0).as_secs_f64();
        (rate, worst_ns.load(Ordering::Relaxed) as f64 / 1e6, slow.load(Ordering::Relaxed), t1 - t0)
    };
    let (q, qw, qs, _) = churn_window(&mut || std::thread::sleep(Duration::from_secs(1)));
    let (d, dw, ds, dt) = churn_window(&mut || {
        dump_sequence();
    });
    let (b, bw, bs, _) = churn_window(&mut || burn_cpu(dt));
    result("churn_quiet", format!("{q:.0}"));
    result("churn_quiet_worst_ms", format!("{qw:.2}"));
    result("churn_dump", format!("{d:.0}"));
    result("churn_dump_worst_ms", format!("{dw:.2}"));
    result("churn_dump_slow", ds);
    result("churn_burn", format!("{b:.0}"));
    result("churn_burn_worst_ms", format!("{bw:.2}"));
    eprintln!(
        "  n={n} spawn+join/s: quiet {q:.0} (worst {qw:.2} ms, {qs} > 10 ms), during dump {d:.0} (worst {dw:.2} ms, {ds} > 10 ms), cpu-burn control {b:.0} (worst {bw:.2} ms, {bs} > 10 ms)"
    );
    stop.store(true, Ordering::Relaxed);
    parkwatch::time::sleep(Duration::from_millis(50)).await;
}

fn burn_cpu(d: Duration) {
    let t0 = Instant::now();
    let mut x = 0u64;
    while t0.elapsed() < d {
        for i in 0..10_000u64 {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(i);
        }
        std::hint::black_box(x);
    }
}

// ---------------------------------------------------------------------------
// Child: pathological cases
// ---------------------------------------------------------------------------

/// `background` tasks parked on channels (one channel per 1,000), then `k`
/// tasks queueing on one Mutex held by the main task. Reports the CPU time
/// the parks of the `k` cost (the work runs on the workers, inside the
/// parking poll).
fn child_contended(k: usize, background: usize) {
    let rt = pw_runtime();
    rt.block_on(async move {
        warm_up().await;
        let bg = Population::new(Kind::Chan, background);
        bg.spawn_all();
        bg.settle().await;
        let m: &'static Mutex<()> = Box::leak(Box::new(Mutex::new(())));
        let guard = m.try_lock().unwrap();
        let arrived = Arc::new(AtomicUsize::new(0));
        let cpu0 = cpu_seconds();
        let t0 = Instant::now();
        for _ in 0..k {
            let a = arrived.clone();
            parkwatch::spawn(async move {
                a.fetch_add(1, Ordering::Relaxed);
                let _g = m.lock().await;
            });
        }
        while arrived.load(Ordering::Relaxed) < k {
            parkwatch::time::sleep(Duration::from_millis(1)).await;
        }
        let started = t0.elapsed();
        quiesce().await;
        let cpu = cpu_seconds() - cpu0;
        result("wall_started_s", format!("{:.3}", started.as_secs_f64()));
        result("cpu_s", format!("{cpu:.2}"));
        let s = parkwatch::snapshot();
        let waiting = s
            .tasks()
            .iter()
            .filter(|t| t.wait_reason == Some(parkwatch::WaitReason::MutexLock) && t.state == TaskState::Parked)
            .count();
        result("parked", waiting);
        drop(guard);
        std::process::exit(0)
    })
    .expect("no deadlock");
}

/// `background` parked tasks, then `m` tasks each receiving on its own
/// channel; the main task then drops the last sender of each channel, one by
/// one (each drop runs the orphan check inline). Reports the time per drop.
fn child_orphans(m: usize, background: usize) {
    let rt = pw_runtime();
    rt.block_on(async move {
        warm_up().await;
        let bg = Population::new(Kind::Chan, background);
        bg.spawn_all();
        bg.settle().await;
        let arrived = Arc::new(AtomicUsize::new(0));
        let mut senders = Vec::new();
        for _ in 0..m {
            let c = parkwatch::chan::<u64>(0);
            let rx = c.receiver();
            senders.push(c.sender());
            drop(c);
            let a = arrived.clone();
            parkwatch::spawn(async move {
                a.fetch_add(1, Ordering::Relaxed);
                let _ = rx.recv().await;
            });
        }
        while arrived.load(Ordering::Relaxed) < m {
            parkwatch::time::sleep(Duration::from_millis(1)).await;
        }
        quiesce().await;
        let t0 = Instant::now();
        drop(senders);
        let dt = t0.elapsed();
        result("drop_all_s", format!("{:.3}", dt.as_secs_f64()));
        result("per_drop_ms", format!("{:.3}", dt.as_secs_f64() * 1e3 / m as f64));
        std::process::exit(0)
    })
    .expect("no deadlock");
}

// ---------------------------------------------------------------------------
// Synthetic snapshots (shared with tests/stress.rs and the fuzz targets)
// ---------------------------------------------------------------------------

#[path = "../fuzz/common/snapshot_gen.rs"]
mod snapshot_gen;
use snapshot_gen::{ab_ba_pairs, lock_chain, long_queue, pipeline_chain};

fn pathological(quick: bool) {
    println!("\n## Pathological cases\n");
    println!("load average before: {}\n", loadavg());
    let sizes: &[u64] = if quick { &[250, 500] } else { &[1000, 2000, 4000, 8000] };
    println!("### analyze() on synthetic snapshots (ms; the ratio is to the previous row)\n");
    println!("| tasks | pipeline chain | ratio | lock chain | ratio | one Mutex, k queued | ratio |");
    println!("|---|---|---|---|---|---|---|");
    let mut prev: Option<[f64; 3]> = None;
    for &n in sizes {
        let cells: Vec<f64> = [pipeline_chain(n), lock_chain(n), long_queue(n)]
            .iter()
            .map(|s| {
                let t0 = Instant::now();
                let a = s.analyze();
                std::hint::black_box(a.findings().count());
                t0.elapsed().as_secs_f64() * 1e3
            })
            .collect();
        let ratio = |i: usize| prev.map_or("".to_string(), |p| format!("{:.1}×", cells[i] / p[i]));
        println!(
            "| {n} | {:.1} | {} | {:.1} | {} | {:.1} | {} |",
            cells[0],
            ratio(0),
            cells[1],
            ratio(1),
            cells[2],
            ratio(2)
        );
        prev = Some([cells[0], cells[1], cells[2]]);
    }

    println!("\n### wait_for_graph() and analyze() on n independent AB-BA lock cycles (ms)\n");
    println!("| cycles | wait_for_graph() | ratio | analyze() | ratio |");
    println!("|---|---|---|---|---|");
    let mut prev: Option<(f64, f64)> = None;
    for &n in sizes {
        let s = ab_ba_pairs(n);
        let t0 = Instant::now();
        std::hint::black_box(s.wait_for_graph().cycles().len());
        let g = t0.elapsed().as_secs_f64() * 1e3;
        let t0 = Instant::now();
        std::hint::black_box(s.analyze().findings().count());
        let a = t0.elapsed().as_secs_f64() * 1e3;
        let r = |x: f64, p: f64| format!("{:.1}×", x / p);
        match prev {
            Some((pg, pa)) => println!("| {n} | {g:.1} | {} | {a:.1} | {} |", r(g, pg), r(a, pa)),
            None => println!("| {n} | {g:.1} | | {a:.1} | |"),
        }
        prev = Some((g, a));
    }

    println!("\n### Parking k tasks on one Mutex (held by main), with B other tasks parked\n");
    println!("| k | B | CPU s for the k parks | µs per park | parked |");
    println!("|---|---|---|---|---|");
    let runs: &[(usize, usize)] = if quick {
        &[(50, 1000), (500, 0)]
    } else {
        &[(50, 0), (50, 10_000), (50, 100_000), (500, 0), (1000, 0), (2000, 0), (4000, 0)]
    };
    for &(k, b) in runs {
        let r = child(&["contended", &k.to_string(), &b.to_string()]);
        let cpu: f64 = r.get("cpu_s").and_then(|v| v.parse().ok()).unwrap_or(f64::NAN);
        println!(
            "| {k} | {b} | {cpu:.2} | {:.0} | {} |",
            cpu * 1e6 / k as f64,
            r.get("parked").map_or("?", String::as_str)
        );
    }

    println!(
        "\n### Dropping the last sender of m channels, each with one parked receiver, with B other tasks parked\n"
    );
    println!("| m | B | total s | ms per drop |");
    println!("|---|---|---|---|");
    let runs: &[(usize, usize)] =
        if quick { &[(100, 1000)] } else { &[(1000, 0), (1000, 10_000), (1000, 100_000), (4000, 100_000)] };
    for &(m, b) in runs {
        let r = child(&["orphans", &m.to_string(), &b.to_string()]);
        println!(
            "| {m} | {b} | {} | {} |",
            r.get("drop_all_s").map_or("?", String::as_str),
            r.get("per_drop_ms").map_or("?", String::as_str)
        );
    }
}

// ---------------------------------------------------------------------------
// Parent
// ---------------------------------------------------------------------------

/// Runs this executable with `--child args`, returns its RESULT lines.
fn child(args: &[&str]) -> std::collections::HashMap<String, String> {
    let exe = std::env::current_exe().expect("current exe");
    let mut cmd = Command::new(exe);
    cmd.arg("--child").args(args).stdout(Stdio::piped()).stderr(Stdio::inherit());
    let mut p = cmd.spawn().expect("spawn child");
    let mut out = String::new();
    p.stdout.take().unwrap().read_to_string(&mut out).unwrap();
    let status = p.wait().unwrap();
    if !status.success() {
        eprintln!("child {args:?} failed: {status}");
    }
    out.lines()
        .filter_map(|l| l.strip_prefix("RESULT "))
        .filter_map(|l| l.split_once(' '))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn num(r: &std::collections::HashMap<String, String>, k: &str) -> f64 {
    r.get(k).and_then(|v| v.parse().ok()).unwrap_or(f64::NAN)
}

fn fmt_n(n: usize) -> String {
    match n {
        1_000_000 => "10^6".into(),
        100_000 => "10^5".into(),
        10_000 => "10^4".into(),
        1000 => "10^3".into(),
        n => n.to_string(),
    }
}

fn main() {
    let o = Opts::parse();
    if let Some(args) = &o.child {
        let n = |i: usize| args.get(i).and_then(|v| v.parse().ok()).unwrap_or(1000);
        match args.first().map(String::as_str) {
            Some("mem-tokio") => {
                COUNTING.store(true, Ordering::Relaxed);
                child_mem_tokio(n(1))
            }
            Some("mem") => {
                COUNTING.store(true, Ordering::Relaxed);
                child_mem_parkwatch(Kind::parse(&args[1]), n(2))
            }
            Some("time") => child_time(n(1), n(2), args.get(3).is_some_and(|v| v == "throughput")),
            Some("contended") => child_contended(n(1), n(2)),
            Some("orphans") => child_orphans(n(1), n(2)),
            other => panic!("unknown child {other:?}"),
        }
        return;
    }
    let start = Instant::now();
    println!("# parkwatch scale benchmark\n");
    println!(
        "sizes {:?}, {} rep(s) per timing, nproc {}, load average before: {}\n",
        o.sizes,
        o.reps,
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        loadavg()
    );

    if o.mem {
        println!("## Memory per parked task (RSS delta / N, bytes)\n");
        println!("| N | tokio + Notify | parkwatch chan | parkwatch Mutex | parkwatch WaitGroup | parkwatch mix | mix − tokio | spawn+park mix (s) | load |");
        println!("|---|---|---|---|---|---|---|---|---|");
        let mut heap_rows = Vec::new();
        for &n in &o.sizes {
            let per =
                |r: &std::collections::HashMap<String, String>| (num(r, "rss_after") - num(r, "rss_before")) / n as f64;
            let tk = child(&["mem-tokio", &n.to_string()]);
            let ch = child(&["mem", "chan", &n.to_string()]);
            let mx = child(&["mem", "mutex", &n.to_string()]);
            let wg = child(&["mem", "wg", &n.to_string()]);
            let mix = child(&["mem", "mix", &n.to_string()]);
            println!(
                "| {} | {:.0} | {:.0} | {:.0} | {:.0} | {:.0} | **{:.0}** | {} | {} |",
                fmt_n(n),
                per(&tk),
                per(&ch),
                per(&mx),
                per(&wg),
                per(&mix),
                per(&mix) - per(&tk),
                mix.get("spawn_park_s").map_or("?", String::as_str),
                loadavg()
            );
            let hp = |r: &std::collections::HashMap<String, String>| {
                (num(r, "heap_bytes") / n as f64, num(r, "heap_allocs") / n as f64)
            };
            heap_rows.push(format!(
                "| {} | {:.0} / {:.2} | {:.0} / {:.2} | {:.0} / {:.2} | {:.0} / {:.2} | {:.0} / {:.2} | {:.0} |",
                fmt_n(n),
                hp(&tk).0,
                hp(&tk).1,
                hp(&ch).0,
                hp(&ch).1,
                hp(&mx).0,
                hp(&mx).1,
                hp(&wg).0,
                hp(&wg).1,
                hp(&mix).0,
                hp(&mix).1,
                hp(&mix).0 - hp(&tk).0,
            ));
            eprintln!(
                "  future sizes (chan,mutex,wg): parkwatch {}, tokio {}; parked: {} / {} / {} / {}",
                mix.get("future_sizes").map_or("?", String::as_str),
                tk.get("future_sizes").map_or("?", String::as_str),
                ch.get("parked").map_or("?", String::as_str),
                mx.get("parked").map_or("?", String::as_str),
                wg.get("parked").map_or("?", String::as_str),
                mix.get("parked").map_or("?", String::as_str),
            );
        }
        println!("\nLive heap bytes / allocations per task (counting allocator; no malloc overhead, no tokio-internal slack):\n");
        println!("| N | tokio + Notify | parkwatch chan | parkwatch Mutex | parkwatch WaitGroup | parkwatch mix | mix − tokio (bytes) |");
        println!("|---|---|---|---|---|---|---|");
        for r in heap_rows {
            println!("{r}");
        }
        println!();
    }

    if o.time {
        let mut rows = Vec::new();
        for &n in &o.sizes {
            let tp = if o.throughput { "throughput" } else { "no" };
            let r = child(&["time", &n.to_string(), &o.reps.to_string(), tp]);
            rows.push((n, r, loadavg()));
        }
        println!("## Time with N tasks parked (ms, median of {} rep(s); ×: growth from the previous size)\n", o.reps);
        let ops = [
            ("snapshot", "snapshot()"),
            ("snapshot_drop", "drop(Snapshot)"),
            ("text1", "text debug=1"),
            ("text2", "text debug=2"),
            ("pprof", "pprof"),
            ("json", "json"),
            ("analyze", "analyze()"),
            ("analyze_leaks", "analyze (leak_after 0)"),
            ("graph", "wait_for_graph()"),
        ];
        print!("| N |");
        for (_, name) in ops {
            print!(" {name} |");
        }
        println!(" spawn+park (s) | load after |");
        print!("|---|");
        for _ in ops {
            print!("---|");
        }
        println!("---|---|");
        let mut prev: Option<&std::collections::HashMap<String, String>> = None;
        for (n, r, load) in &rows {
            print!("| {} |", fmt_n(*n));
            for (k, _) in ops {
                let v = num(r, &format!("{k}_ms"));
                let growth = prev.map(|p| v / num(p, &format!("{k}_ms")));
                match growth {
                    Some(g) if g.is_finite() => print!(" {v:.1} ({g:.1}×) |"),
                    _ => print!(" {v:.1} |"),
                }
            }
            println!(" {} | {load} |", r.get("spawn_park_s").map_or("?", String::as_str));
            prev = Some(r);
        }
        println!("\nOutput sizes (bytes) and resources:\n");
        println!(
            "| N | parked | resources | debug=1 | debug=2 | pprof | json | RSS parked (MiB) | RSS after dumps (MiB) |"
        );
        println!("|---|---|---|---|---|---|---|---|---|");
        for (n, r, _) in &rows {
            println!(
                "| {} | {} | {} | {} | {} | {} | {} | {:.0} | {:.0} |",
                fmt_n(*n),
                r.get("parked").map_or("?", String::as_str),
                r.get("resources").map_or("?", String::as_str),
                r.get("text1_size").map_or("?", String::as_str),
                r.get("text2_size").map_or("?", String::as_str),
                r.get("pprof_size").map_or("?", String::as_str),
                r.get("json_size").map_or("?", String::as_str),
                num(r, "rss_parked") / 1048576.0,
                num(r, "rss_after_dumps") / 1048576.0,
            );
        }
        if o.throughput {
            println!("\n## Running tasks during a dump (the dump: snapshot + debug=1 + debug=2 + pprof + analyze on the main thread)\n");
            println!("| N | dump sequence (s) | ping-pong quiet (trips/s) | during dump | drop | CPU-burn control | drop | spawn+join quiet (/s) | during dump | drop | worst latency quiet / dump / burn (ms) |");
            println!("|---|---|---|---|---|---|---|---|---|---|---|");
            for (n, r, _) in &rows {
                let drop = |a: f64, b: f64| format!("{:.0} %", (1.0 - b / a) * 100.0);
                let (q, d, b) = (num(r, "pingpong_quiet"), num(r, "pingpong_dump"), num(r, "pingpong_burn"));
                let (cq, cd) = (num(r, "churn_quiet"), num(r, "churn_dump"));
                println!(
                    "| {} | {} | {q:.0} | {d:.0} | {} | {b:.0} | {} | {cq:.0} | {cd:.0} | {} | {} / {} / {} |",
                    fmt_n(*n),
                    r.get("dump_sequence_s").map_or("?", String::as_str),
                    drop(q, d),
                    drop(q, b),
                    drop(cq, cd),
                    r.get("churn_quiet_worst_ms").map_or("?", String::as_str),
                    r.get("churn_dump_worst_ms").map_or("?", String::as_str),
                    r.get("churn_burn_worst_ms").map_or("?", String::as_str),
                );
            }
        }
        println!();
    }

    if o.pathological {
        pathological(o.quick);
    }
    println!("\nload average after: {}; total {:.0} s", loadavg(), start.elapsed().as_secs_f64());
}
