//! The short (CI) version of the stress run, the channel model checked on
//! random programs (the fuzz target's plain-harness twin), and regression
//! tests for the complexity problems the scale benchmark found (each failed
//! before the fix named in BENCHMARKS.md, "Scale").
//!
//! The long run: `cargo run --release --example stress` (10^8 messages; see
//! examples/stress.rs and BENCHMARKS.md).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[path = "../examples/stress.rs"]
mod stress_impl;

#[path = "../fuzz/common/snapshot_gen.rs"]
mod snapshot_gen;

#[path = "../fuzz/common/chan_model.rs"]
mod chan_model;

/// Runs `f` on its own thread; fails the test if it takes longer than `limit`.
/// The tests of this file that measure time or CPU, and the ones that load
/// the machine, take this lock: timings are then not taken beside the
/// 400,000-message stress run of the same binary.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

fn within<T: Send + 'static>(limit: Duration, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    let h = std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    match rx.recv_timeout(limit) {
        Ok(v) => v,
        Err(_) if h.is_finished() => std::panic::resume_unwind(h.join().expect_err("no result")),
        Err(_) => panic!("hung: no result within {limit:?}"),
    }
}

#[test]
fn stress_short_every_message_exactly_once() {
    let _serial = serial();
    let cfg = stress_impl::Config {
        messages: 400_000,
        round: 40_000,
        stall_every: 5_000,
        progress_every: 0,
        ..Default::default()
    };
    let t0 = Instant::now();
    let r = within(Duration::from_secs(120), move || stress_impl::run(cfg)).unwrap_or_else(|e| panic!("{e}"));
    eprintln!("stress: {r:?} in {:.1} s", t0.elapsed().as_secs_f64());
    assert_eq!(r.messages, 400_000);
    assert_eq!(r.from_async + r.from_thread, 400_000);
    assert!(r.by_async > 0 && r.by_thread > 0, "both async and thread consumers received: {r:?}");
    assert!(r.from_async > 0 && r.from_thread > 0);
    assert!(r.send_timeouts + r.recv_timeouts > 0, "timeouts were in the mix: {r:?}");
    assert_eq!(r.recv_closed, r.rounds * 3 * 4, "every consumer saw each of the 4 channels close once per round");
    assert!(r.mid_round_closes > 0, "channels were closed mid-round: {r:?}");
    assert!(r.definite_findings.is_empty());
}

#[test]
fn random_channel_programs_match_the_model() {
    let programs = if cfg!(debug_assertions) { 3_000 } else { 30_000 };
    let mut steps = 0;
    for seed in 0..programs {
        let mut src = snapshot_gen::Rng::new(seed);
        match chan_model::run_program(&mut src, 200) {
            Ok(n) => steps += n,
            Err(e) => panic!("program {seed}: {e}"),
        }
    }
    eprintln!("{programs} programs, {steps} steps");
}

// ---------------------------------------------------------------------------
// Complexity regressions (see the "Scale" section of BENCHMARKS.md): each
// failed on the tree before 5a148a6 (the graph one before 09c93a1).
// ---------------------------------------------------------------------------

/// The fastest of 5 runs of `analyze()` (the minimum filters out preemption).
fn time_analyze(s: &parkwatch::Snapshot) -> Duration {
    (0..5)
        .map(|_| {
            let t0 = Instant::now();
            std::hint::black_box(s.analyze().findings().count());
            t0.elapsed()
        })
        .min()
        .unwrap()
}

/// 16× the input may take at most 64× the time: linear (16×) and n log n
/// pass with room for a loaded machine's noise; quadratic (256×) does not.
/// (A complexity check, not a speed target: those live in `benches/`.)
fn assert_near_linear(name: &str, small: Duration, large: Duration) {
    let ratio = large.as_secs_f64() / small.as_secs_f64().max(1e-6);
    assert!(ratio < 64.0, "{name}: 16× the input took {ratio:.1}× the time ({small:?} → {large:?})");
}

#[test]
fn analyze_of_a_long_mutex_queue_is_near_linear() {
    let _serial = serial();
    let (a, b) = (snapshot_gen::long_queue(500), snapshot_gen::long_queue(8000));
    assert_near_linear("one Mutex, k queued", time_analyze(&a), time_analyze(&b));
}

#[test]
fn analyze_of_a_pipeline_chain_is_near_linear() {
    let _serial = serial();
    let (a, b) = (snapshot_gen::pipeline_chain(500), snapshot_gen::pipeline_chain(8000));
    assert_near_linear("pipeline chain", time_analyze(&a), time_analyze(&b));
}

#[test]
fn analyze_of_a_lock_chain_is_near_linear() {
    let _serial = serial();
    let (a, b) = (snapshot_gen::lock_chain(500), snapshot_gen::lock_chain(8000));
    assert_near_linear("lock chain", time_analyze(&a), time_analyze(&b));
}

/// User + system CPU time of the process, seconds (10 ms resolution).
fn cpu_seconds() -> f64 {
    let s = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let rest = s.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i - 3).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(14) + ticks(15)) / 100.0
}

/// Parks `background` tasks on channels, then runs `f` and returns the CPU
/// time it and the workers used until everything is quiet again.
fn cpu_with_background(background: usize, f: impl AsyncFnOnce() + Send + 'static) -> f64 {
    let rt = parkwatch::Runtime::builder().worker_threads(2).build().unwrap();
    rt.block_on(async move {
        let c = parkwatch::chan::<u8>(0);
        let arrived = Arc::new(AtomicUsize::new(0));
        for _ in 0..background {
            let (rx, a) = (c.receiver(), arrived.clone());
            parkwatch::spawn(async move {
                a.fetch_add(1, Ordering::Relaxed);
                let _ = rx.recv().await;
            });
        }
        while arrived.load(Ordering::Relaxed) < background {
            parkwatch::time::sleep(Duration::from_millis(2)).await;
        }
        parkwatch::time::sleep(Duration::from_millis(200)).await;
        let cpu0 = cpu_seconds();
        f().await;
        parkwatch::time::sleep(Duration::from_millis(300)).await;
        let cpu = cpu_seconds() - cpu0;
        c.close().unwrap();
        cpu
    })
    .unwrap()
}

#[test]
fn parking_on_a_contended_mutex_does_not_scan_the_registry() {
    let _serial = serial();
    let park_50 = async || {
        let m: &'static parkwatch::sync::Mutex<()> = Box::leak(Box::new(parkwatch::sync::Mutex::new(())));
        let g = m.try_lock().unwrap();
        let arrived = Arc::new(AtomicUsize::new(0));
        for _ in 0..50 {
            let a = arrived.clone();
            parkwatch::spawn(async move {
                a.fetch_add(1, Ordering::Relaxed);
                let _g = m.lock().await;
            });
        }
        while arrived.load(Ordering::Relaxed) < 50 {
            parkwatch::time::sleep(Duration::from_millis(1)).await;
        }
        parkwatch::time::sleep(Duration::from_millis(100)).await;
        drop(g);
    };
    let small = cpu_with_background(1_000, park_50);
    let large = cpu_with_background(50_000, park_50);
    assert!(
        large < small + 0.2,
        "50 parks cost {small:.2} s CPU with 1,000 tasks registered, {large:.2} s with 50,000"
    );
}

#[test]
fn dropping_last_senders_does_not_scan_the_registry() {
    let _serial = serial();
    let drop_200 = async || {
        let mut senders = Vec::new();
        for _ in 0..200 {
            let c = parkwatch::chan::<u8>(0);
            let rx = c.receiver();
            senders.push(c.sender());
            parkwatch::spawn(async move {
                let _ = rx.recv().await;
            });
        }
        parkwatch::time::sleep(Duration::from_millis(200)).await;
        drop(senders);
    };
    let small = cpu_with_background(1_000, drop_200);
    let large = cpu_with_background(50_000, drop_200);
    assert!(
        large < small + 0.2,
        "200 drops cost {small:.2} s CPU with 1,000 tasks registered, {large:.2} s with 50,000"
    );
}

/// Found while profiling `wait_for_graph()` at 10^6 tasks: a channel's
/// `CouldWake` edges went to every task that used either side, so a task
/// parked receiving on a channel it received from before closed a cycle
/// task → chan → task; every such channel was an SCC, and `mark_cycles`
/// scans every edge once per SCC (O(SCCs × edges): 16.6 s at 10^6 tasks).
#[test]
fn wait_for_graph_has_no_cycle_for_a_lone_receiver() {
    let rt = parkwatch::Runtime::builder().worker_threads(2).build().unwrap();
    let cycles = rt
        .block_on(async {
            let c = parkwatch::chan::<u8>(1);
            let tx = c.sender();
            let rx = c.receiver();
            drop(c);
            let h = parkwatch::spawn(async move {
                let _ = rx.recv().await; // received once: now a "user" of the channel
                let _ = rx.recv().await; // parked: nobody sends again yet
            });
            tx.send(1).await.unwrap();
            for _ in 0..1000 {
                let s = parkwatch::snapshot();
                if s.task(h.id()).is_some_and(|t| t.state == parkwatch::TaskState::Parked) {
                    let n = s.wait_for_graph().cycles().len();
                    tx.close().unwrap();
                    return n;
                }
                parkwatch::time::sleep(Duration::from_millis(2)).await;
            }
            panic!("the receiver never parked");
        })
        .unwrap();
    assert_eq!(cycles, 0, "a single parked receiver and a live sender form no wait-for cycle");
}

/// `mark_cycles` (src/detect/graph.rs) scans every edge of the graph once per
/// cyclic strongly connected component: O(cycles × edges). Many independent
/// real cycles (n AB-BA pairs) make `wait_for_graph()` quadratic.
#[test]
fn wait_for_graph_of_many_cycles_is_near_linear() {
    let _serial = serial();
    let time_graph = |s: &parkwatch::Snapshot| {
        (0..3)
            .map(|_| {
                let t0 = Instant::now();
                std::hint::black_box(s.wait_for_graph().cycles().len());
                t0.elapsed()
            })
            .min()
            .unwrap()
    };
    let (a, b) = (snapshot_gen::ab_ba_pairs(250), snapshot_gen::ab_ba_pairs(4000));
    assert_near_linear("AB-BA pairs in the graph", time_graph(&a), time_graph(&b));
}
