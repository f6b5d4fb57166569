//! Fault behaviour: the watched program never hangs or crashes because of
//! parkwatch.
//!
//! - a task (or registered thread) that panics while holding a lock: the
//!   guard drops during unwinding, a waiter gets the lock, the panic surfaces
//!   through the `JoinHandle` (`JoinError::is_panic`) or `join()`;
//! - a task that panics in the middle of a `select!` (parked, or already
//!   completed by a counterpart but not yet polled): other parties are not
//!   stuck and no value is lost;
//! - cancellation (abort) racing a hand-over, for channels and locks;
//! - a panicking task or thread leaves the registry and the live count (the
//!   global-deadlock verdict still comes);
//! - snapshots, dumps and `analyze()` while tasks spawn and exit at full speed;
//! - `analyze()`, the wait-for graph and every dump format on arbitrary
//!   snapshots (deserialised JSON with dangling ids, unsorted and duplicate
//!   ids, extreme durations, odd strings) never panic. (The detector thread's
//!   own failure cannot be injected from outside; since the detectors run
//!   `analyze` on snapshots, an `analyze` that never panics is what keeps
//!   that thread, and the parking task that runs the event-driven check, alive.)

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use parkwatch::sync::{Mutex, RwMutex, WaitGroup};
use parkwatch::{chan, snapshot, Certainty, ResourceId, Snapshot, TaskId, TaskState, WaitReason};

#[path = "../fuzz/common/snapshot_gen.rs"]
mod snapshot_gen;

/// Marker in the message of every panic these tests inject.
const INJECTED: &str = "fault injection";

/// Keeps the injected panics out of the test output (other panics still print).
fn quiet_injected_panics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let msg = info
                .payload()
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| info.payload().downcast_ref::<String>().cloned())
                .unwrap_or_default();
            if !msg.contains(INJECTED) {
                default(info);
            }
        }));
    });
}

/// Runs `f` on its own thread; fails the test if it takes longer than `limit`.
fn within<T: Send + 'static>(limit: Duration, f: impl FnOnce() -> T + Send + 'static) -> T {
    quiet_injected_panics();
    let (tx, rx) = std::sync::mpsc::channel();
    let h = std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    match rx.recv_timeout(limit) {
        Ok(v) => v,
        Err(_) => {
            if h.is_finished() {
                // The body panicked: re-raise its panic.
                std::panic::resume_unwind(h.join().expect_err("finished without a result"));
            }
            panic!("hung: no result within {limit:?}");
        }
    }
}

fn run<F: Future>(fut: F) -> F::Output {
    let rt = parkwatch::Runtime::builder().worker_threads(2).build().expect("runtime");
    match rt.block_on(fut) {
        Ok(v) => v,
        Err(d) => panic!("unexpected deadlock:\n{d}"),
    }
}

fn panic_message(p: Box<dyn std::any::Any + Send>) -> String {
    p.downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "<non-string panic>".into())
}

/// Polls snapshots (bounded: 10 s) until some task is parked on `res` with `op`.
async fn parked_on(res: u64, op: WaitReason) -> TaskId {
    for _ in 0..10_000 {
        let s = snapshot();
        let hit = s.tasks().iter().find(|t| {
            t.state == TaskState::Parked && t.waits_on.iter().any(|w| w.resource == ResourceId(res) && w.op == op)
        });
        if let Some(t) = hit {
            return t.id;
        }
        parkwatch::time::sleep(Duration::from_millis(1)).await;
    }
    panic!("nobody parked on resource {res} with {op}");
}

/// Polls (bounded: 10 s) until task `id` has left the registry.
async fn gone(id: TaskId) {
    for _ in 0..10_000 {
        if snapshot().task(id).is_none() {
            return;
        }
        parkwatch::time::sleep(Duration::from_millis(1)).await;
    }
    panic!("task {id} is still registered: {:?}", snapshot().task(id));
}

// ---------------------------------------------------------------------------
// Panics while holding a lock
// ---------------------------------------------------------------------------

#[test]
fn task_panicking_with_a_mutex_held_hands_it_to_the_parked_waiter() {
    within(Duration::from_secs(30), || {
        run(async {
            let m = Arc::new(Mutex::new(0u32));
            let holding = chan::<()>(0);
            let (m1, h1) = (m.clone(), holding.sender());
            let holder = parkwatch::spawn(async move {
                let mut g = m1.lock().await;
                *g = 1;
                h1.send(()).await.unwrap();
                parked_on(m1.id(), WaitReason::MutexLock).await;
                panic!("{INJECTED}: panic while holding the lock");
            });
            let holder_id = holder.id();
            holding.recv().await.unwrap();
            let m2 = m.clone();
            let waiter = parkwatch::spawn(async move {
                let mut g = m2.lock().await;
                *g += 1;
                *g
            });
            let err = holder.await.expect_err("the holder panicked");
            assert!(err.is_panic(), "{err:?}");
            assert!(!err.is_cancelled());
            assert!(panic_message(err.into_panic()).contains("panic while holding the lock"));
            // The waiter got the lock (no poisoning: it sees the holder's write).
            assert_eq!(waiter.await.unwrap(), 2);
            gone(holder_id).await;
            assert!(m.try_lock().is_some(), "the lock is free again");
            let s = snapshot();
            assert!(s.resource(ResourceId(m.id())).is_none_or(|r| r.holders.is_empty()));
        })
    });
}

#[test]
fn registered_thread_panicking_with_a_mutex_held_hands_it_over_and_leaves_the_registry() {
    within(Duration::from_secs(30), || {
        run(async {
            let m = Arc::new(Mutex::new(Vec::<&str>::new()));
            let holding = chan::<parkwatch::TaskId>(1);
            let (m1, h1) = (m.clone(), holding.sender());
            let t = parkwatch::thread::spawn(move || {
                let mut g = m1.lock_blocking();
                g.push("thread");
                h1.send_blocking(parkwatch::task::id().unwrap()).unwrap();
                // Wait until a task queues for the lock (bounded).
                let until = Instant::now() + Duration::from_secs(10);
                while Instant::now() < until {
                    let s = snapshot();
                    if s.tasks().iter().any(|t| t.wait_reason == Some(WaitReason::MutexLock)) {
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(1));
                }
                panic!("{INJECTED}: thread panics holding the lock");
            });
            let thread_id = holding.recv().await.unwrap();
            let m2 = m.clone();
            let waiter = parkwatch::spawn(async move {
                let mut g = m2.lock().await;
                g.push("task");
                g.clone()
            });
            assert_eq!(waiter.await.unwrap(), ["thread", "task"]);
            let joined = t.join();
            assert!(panic_message(joined.expect_err("the thread panicked")).contains("thread panics holding"));
            gone(thread_id).await;
        })
    });
}

#[test]
fn panicking_reader_of_an_rwmutex_lets_the_writer_in() {
    within(Duration::from_secs(30), || {
        run(async {
            let rw = Arc::new(RwMutex::new(5u32));
            let reading = chan::<()>(0);
            let (r1, s1) = (rw.clone(), reading.sender());
            let reader = parkwatch::spawn(async move {
                let g = r1.read().await;
                assert_eq!(*g, 5);
                s1.send(()).await.unwrap();
                parked_on(r1.id(), WaitReason::RwMutexLock).await;
                panic!("{INJECTED}: reader panics");
            });
            reading.recv().await.unwrap();
            let w = rw.clone();
            let writer = parkwatch::spawn(async move {
                *w.write().await = 6;
            });
            assert!(reader.await.unwrap_err().is_panic());
            writer.await.unwrap();
            assert_eq!(*rw.read().await, 6);
        })
    });
}

// ---------------------------------------------------------------------------
// Panics in the middle of a select
// ---------------------------------------------------------------------------

/// Polls `inner` until `trigger` is set, then panics instead of polling it
/// again: the select inside is dropped during unwinding, in whatever state it is.
struct PanicWhen<F> {
    trigger: Arc<AtomicBool>,
    inner: Pin<Box<F>>,
}

impl<F: Future> Future for PanicWhen<F> {
    type Output = F::Output;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        if self.trigger.load(Ordering::SeqCst) {
            panic!("{INJECTED}: panic in the middle of a select");
        }
        self.inner.as_mut().poll(cx)
    }
}

/// The select was completed by a counterpart (a value handed over), but the
/// task panics before it can return it: the value goes back to the channel.
#[test]
fn panic_after_a_select_was_completed_loses_no_value() {
    within(Duration::from_secs(30), || {
        run(async {
            let (a, b, c) = (chan::<u64>(0), chan::<u64>(0), chan::<u64>(0));
            let trigger = Arc::new(AtomicBool::new(false));
            let p = {
                let (a, b, c, trigger) = (a.clone(), b.clone(), c.clone(), trigger.clone());
                parkwatch::spawn(async move {
                    let sel = async move {
                        parkwatch::select! {
                            recv(a) -> v => v,
                            recv(b) -> v => v,
                            send(c, 7) -> _r => None,
                        }
                    };
                    PanicWhen { trigger, inner: Box::pin(sel) }.await
                })
            };
            parked_on(a.id(), WaitReason::ChanReceive).await;
            // Complete P's receive on `a`, then make its next poll panic.
            trigger.store(true, Ordering::SeqCst);
            a.send(42).await.expect("delivered to P's parked receive");
            let err = p.await.expect_err("P panicked");
            assert!(err.is_panic());
            // 42 was given back: the next receiver gets it.
            assert_eq!(a.try_recv(), Ok(42), "the value handed to the dead select must come back");
            // P's other cases are gone: nothing to receive on c, nobody receiving on b.
            assert_eq!(c.try_recv(), Err(parkwatch::TryRecvError::Empty));
            assert!(b.try_send(1).unwrap_err().is_full());
            // And the channels still work between live parties.
            let c2 = c.clone();
            let h = parkwatch::spawn(async move { c2.recv().await });
            c.send(9).await.unwrap();
            assert_eq!(h.await.unwrap(), Some(9));
        })
    });
}

/// The task panics while its select is still parked: every cell is taken back.
#[test]
fn panic_while_a_select_is_parked_leaves_no_stale_party() {
    within(Duration::from_secs(30), || {
        run(async {
            let (a, c) = (chan::<u64>(0), chan::<u64>(0));
            let trigger = Arc::new(AtomicBool::new(false));
            let p = {
                let (a, c, trigger) = (a.clone(), c.clone(), trigger.clone());
                parkwatch::spawn(async move {
                    let sel = async move {
                        parkwatch::select! {
                            recv(a) -> v => v,
                            send(c, 7) -> _r => None,
                        }
                    };
                    // A ticker wakes the task every few ms without completing the select,
                    // so that it gets polled (and panics) once the trigger is set.
                    let mut tick = tokio::time::interval(Duration::from_millis(5));
                    let both = async move {
                        let mut sel = std::pin::pin!(sel);
                        std::future::poll_fn(|cx| {
                            while tick.poll_tick(cx).is_ready() {}
                            sel.as_mut().poll(cx)
                        })
                        .await
                    };
                    PanicWhen { trigger, inner: Box::pin(both) }.await
                })
            };
            parked_on(a.id(), WaitReason::ChanReceive).await;
            trigger.store(true, Ordering::SeqCst);
            let err = p.await.expect_err("P panicked");
            assert!(err.is_panic());
            // Nobody is receiving on a any more, nobody sending on c.
            assert!(a.try_send(1).unwrap_err().is_full(), "a dead receiver took a value");
            assert_eq!(c.try_recv(), Err(parkwatch::TryRecvError::Empty), "a dead sender delivered");
            // The channels work between live parties.
            let a2 = a.clone();
            let h = parkwatch::spawn(async move { a2.recv().await });
            a.send(3).await.unwrap();
            assert_eq!(h.await.unwrap(), Some(3));
        })
    });
}

/// Aborting a receiver races a sender's hand-over, many times: each value
/// ends up received exactly once (by the receiver before the abort, or given
/// back to the channel and received by a drainer).
#[test]
fn abort_racing_a_hand_over_loses_and_duplicates_nothing() {
    within(Duration::from_secs(60), || {
        run(async {
            let got = Arc::new(std::sync::Mutex::new(Vec::new()));
            for i in 0..300u64 {
                let c = chan::<u64>(if i % 3 == 0 { 1 } else { 0 });
                let (c1, g1) = (c.clone(), got.clone());
                let r = parkwatch::spawn(async move {
                    if let Some(v) = c1.recv().await {
                        g1.lock().unwrap().push(v);
                    }
                });
                let c2 = c.clone();
                let s = parkwatch::spawn(async move { c2.send(i).await });
                for _ in 0..(i % 4) {
                    parkwatch::task::yield_now().await;
                }
                r.abort();
                let _ = r.await;
                // Whatever the abort hit, i is either received or still to be had.
                let received = got.lock().unwrap().contains(&i);
                let drained = parkwatch::select! {
                    recv(c) -> v => v,
                    recv(parkwatch::time::after(Duration::from_millis(200))) -> _t => None,
                };
                match (received, drained) {
                    (true, None) | (false, Some(_)) => {}
                    other => panic!("value {i}: received by the aborted task and drained = {other:?}"),
                }
                if let Some(v) = drained {
                    assert_eq!(v, i);
                }
                assert!(s.await.unwrap().is_ok(), "the send completed");
            }
        })
    });
}

/// Aborting a lock waiter races the release that grants it the lock, many
/// times: the lock is never lost (the next waiter gets it).
#[test]
fn abort_racing_a_lock_grant_passes_the_lock_on() {
    within(Duration::from_secs(60), || {
        run(async {
            let m = Arc::new(Mutex::new(0u64));
            for i in 0..300u64 {
                let g = m.lock().await;
                let m1 = m.clone();
                let w1 = parkwatch::spawn(async move {
                    *m1.lock().await += 1;
                });
                let m2 = m.clone();
                let w2 = parkwatch::spawn(async move {
                    *m2.lock().await += 1;
                });
                if i % 2 == 0 {
                    parked_on(m.id(), WaitReason::MutexLock).await;
                }
                drop(g);
                for _ in 0..(i % 3) {
                    parkwatch::task::yield_now().await;
                }
                w1.abort();
                let _ = w1.await;
                // w2 must complete: the lock was not lost with w1.
                let done = async { w2.await.is_ok() };
                let timeout = parkwatch::time::sleep(Duration::from_secs(5));
                let mut done = std::pin::pin!(done);
                let mut timeout = std::pin::pin!(timeout);
                let finished = std::future::poll_fn(|cx| {
                    if let Poll::Ready(v) = done.as_mut().poll(cx) {
                        return Poll::Ready(v);
                    }
                    timeout.as_mut().poll(cx).map(|_| false)
                })
                .await;
                assert!(finished, "iteration {i}: the second waiter never got the lock");
                assert!(m.try_lock().is_some(), "iteration {i}: the lock stayed held");
            }
        })
    });
}

// ---------------------------------------------------------------------------
// Panicking tasks and threads leave the registry and the live count
// ---------------------------------------------------------------------------

#[test]
fn after_a_task_and_a_thread_panic_the_global_deadlock_verdict_still_comes() {
    let report = within(Duration::from_secs(30), || {
        let rt = parkwatch::Runtime::builder().worker_threads(2).build().unwrap();
        rt.block_on(async {
            let h = parkwatch::spawn(async { panic!("{INJECTED}: task") });
            let id = h.id();
            assert!(h.await.unwrap_err().is_panic());
            gone(id).await;
            let t = parkwatch::thread::spawn(|| -> () { panic!("{INJECTED}: thread") });
            assert!(t.join().is_err());
            // Everything left (the main task) parks for good: Go's verdict must come,
            // which needs the panicked task and thread out of the live count.
            let c = chan::<u8>(0);
            c.recv().await
        })
        .expect_err("a global deadlock")
    });
    assert!(report.is_global(), "{report}");
    assert_eq!(report.tasks().len(), 1, "only the main task is left:\n{report}");
}

#[test]
fn a_thread_panicking_drops_its_sender_and_the_receiver_is_not_left_hanging() {
    let report = within(Duration::from_secs(30), || {
        let rt = parkwatch::Runtime::builder().worker_threads(2).build().unwrap();
        rt.block_on(async {
            let c = chan::<u8>(0);
            let tx = c.sender();
            let rx = c.receiver();
            drop(c);
            let _t = parkwatch::thread::spawn(move || {
                let _keep = tx;
                std::thread::sleep(Duration::from_millis(50));
                panic!("{INJECTED}: sender thread");
            });
            rx.recv().await
        })
        .expect_err("the receive can never complete")
    });
    // Main is the only task and is parked: global; the orphan check may get there first.
    let orphaned = report
        .finding()
        .is_some_and(|f| f.kind == parkwatch::FindingKind::OrphanedWait && f.certainty == Certainty::Definite);
    assert!(report.is_global() || orphaned, "{report}");
}

// ---------------------------------------------------------------------------
// Snapshots while tasks spawn and exit at full speed
// ---------------------------------------------------------------------------

fn check_consistent(s: &Snapshot) {
    let ids: Vec<TaskId> = s.tasks().iter().map(|t| t.id).collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "task ids sorted and unique");
    for t in s.tasks() {
        if t.state == TaskState::Parked {
            assert!(t.wait_reason.is_some(), "parked without a reason: {t:?}");
            assert!(t.parked_at.is_some(), "parked without a site: {t:?}");
        }
        for w in &t.waits_on {
            assert!(s.resource(w.resource).is_some(), "task {} waits on unknown resource {}", t.id, w.resource);
        }
    }
    let rids: Vec<ResourceId> = s.resources().iter().map(|r| r.id).collect();
    assert!(rids.windows(2).all(|w| w[0] < w[1]), "resource ids sorted and unique");
    let text1 = parkwatch::dump::text(s, 1);
    assert!(text1.starts_with(&format!("goroutine profile: total {}\n", s.tasks().len())));
    let counted: usize =
        text1.lines().filter_map(|l| l.split_once(" @").and_then(|(n, _)| n.parse::<usize>().ok())).sum();
    assert_eq!(counted, s.tasks().len(), "debug=1 groups add up");
    let text2 = parkwatch::dump::text(s, 2);
    let headers = text2.lines().filter(|l| l.starts_with("goroutine ")).count();
    assert_eq!(headers, s.tasks().len(), "debug=2 has one header per task");
    let folded: usize = parkwatch::dump::folded(s)
        .lines()
        .filter_map(|l| l.rsplit_once(' '))
        .map(|(_, n)| n.parse::<usize>().unwrap())
        .sum();
    assert_eq!(folded, s.tasks().len(), "folded counts add up");
    assert!(!parkwatch::dump::pprof(s).is_empty());
    let back: Snapshot = serde_json::from_str(&parkwatch::dump::json(s)).expect("json round trip");
    assert_eq!(back.tasks().len(), s.tasks().len());
}

#[test]
fn snapshots_and_analysis_while_tasks_spawn_and_exit_at_full_speed() {
    within(Duration::from_secs(90), || {
        run(async {
            let baseline = snapshot().tasks().len();
            let stop = Arc::new(AtomicBool::new(false));
            let spawned = Arc::new(AtomicU64::new(0));
            let finished = Arc::new(AtomicU64::new(0));
            let panicked = Arc::new(AtomicU64::new(0));
            let shared = Arc::new(Mutex::new(0u64));
            let mut churners = Vec::new();
            for w in 0..2u64 {
                let (stop, spawned, finished, panicked, shared) =
                    (stop.clone(), spawned.clone(), finished.clone(), panicked.clone(), shared.clone());
                churners.push(parkwatch::spawn(async move {
                    let mut i = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        let c = chan::<u64>(0);
                        let wg = WaitGroup::new();
                        let mut hs = Vec::new();
                        for k in 0..16u64 {
                            i += 1;
                            spawned.fetch_add(1, Ordering::Relaxed);
                            let (c, wg, shared, f) = (c.clone(), wg.clone(), shared.clone(), finished.clone());
                            wg.add(1);
                            hs.push(parkwatch::spawn(async move {
                                match k % 4 {
                                    0 => {
                                        let _ = c.recv().await;
                                    }
                                    1 => {
                                        let _ = c.send(k).await;
                                    }
                                    2 => {
                                        *shared.lock().await += 1;
                                        parkwatch::task::yield_now().await;
                                    }
                                    _ => {
                                        if (i + w) % 64 == 3 {
                                            wg.done();
                                            panic!("{INJECTED}: churn");
                                        }
                                    }
                                }
                                wg.done();
                                f.fetch_add(1, Ordering::Relaxed);
                            }));
                        }
                        wg.wait().await;
                        for h in hs {
                            if let Err(e) = h.await {
                                assert!(e.is_panic());
                                panicked.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                    }
                }));
            }
            let t0 = Instant::now();
            let mut snapshots = 0;
            let mut max_tasks = 0;
            while t0.elapsed() < Duration::from_secs(3) {
                let s = snapshot();
                max_tasks = max_tasks.max(s.tasks().len());
                check_consistent(&s);
                let a = s.analyze();
                let definite: Vec<_> = a.deadlocks.iter().filter(|f| f.certainty == Certainty::Definite).collect();
                assert!(definite.is_empty(), "definite findings while nothing is deadlocked: {definite:#?}");
                let _ = s.wait_for_graph().to_dot();
                if snapshots % 8 == 0 {
                    let _ = parkwatch::dump::flamegraph(&s);
                }
                snapshots += 1;
                parkwatch::task::yield_now().await;
            }
            stop.store(true, Ordering::Relaxed);
            for c in churners {
                c.await.expect("churner");
            }
            let (sp, fi, pa) =
                (spawned.load(Ordering::Relaxed), finished.load(Ordering::Relaxed), panicked.load(Ordering::Relaxed));
            assert!(snapshots >= 5, "only {snapshots} snapshots");
            assert!(sp > 1000, "only {sp} tasks spawned");
            assert_eq!(fi + pa, sp, "every task finished or panicked");
            // Every churned task has left the registry.
            let mut left = usize::MAX;
            for _ in 0..5000 {
                left = snapshot().tasks().len();
                if left <= baseline {
                    break;
                }
                parkwatch::time::sleep(Duration::from_millis(1)).await;
            }
            assert!(left <= baseline, "{left} tasks registered after the churn, {baseline} before");
            eprintln!("churn: {sp} tasks ({pa} panicked), {snapshots} snapshots, up to {max_tasks} tasks seen");
        })
    });
}

/// A snapshot thread keeps reading the registry while a runtime with parked
/// tasks is dropped (every task leaves the registry at once).
#[test]
fn snapshots_while_a_runtime_with_parked_tasks_is_dropped() {
    within(Duration::from_secs(60), || {
        let stop = Arc::new(AtomicBool::new(false));
        let reader = {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut n = 0;
                while !stop.load(Ordering::Relaxed) {
                    let s = snapshot();
                    let _ = s.analyze();
                    let _ = parkwatch::dump::text(&s, 2);
                    n += 1;
                }
                n
            })
        };
        let mut runtimes = Vec::new();
        for round in 0..5 {
            let rt = parkwatch::Runtime::builder().worker_threads(2).build().unwrap();
            runtimes.push(rt.id());
            rt.block_on(async {
                let c = chan::<u8>(0);
                let m: &'static Mutex<()> = Box::leak(Box::new(Mutex::new(())));
                let _g = m.lock().await;
                let arrived = Arc::new(AtomicUsize::new(0));
                for i in 0..2000 {
                    let (c, a) = (c.clone(), arrived.clone());
                    parkwatch::spawn(async move {
                        a.fetch_add(1, Ordering::Relaxed);
                        if i % 2 == 0 {
                            let _ = c.recv().await;
                        } else {
                            let _g = m.lock().await;
                        }
                    });
                }
                while arrived.load(Ordering::Relaxed) < 2000 {
                    parkwatch::time::sleep(Duration::from_millis(1)).await;
                }
                std::mem::forget(_g); // the runtime is dropped with them all parked
                round
            })
            .unwrap();
            drop(rt);
        }
        stop.store(true, Ordering::Relaxed);
        assert!(reader.join().unwrap() > 0);
        // (Other tests run in this process too: count only these runtimes' tasks.)
        let left = snapshot().tasks().iter().filter(|t| runtimes.contains(&t.runtime)).count();
        assert_eq!(left, 0, "tasks of dropped runtimes still registered");
    });
}

// ---------------------------------------------------------------------------
// analyze() and dumps on arbitrary snapshots
// ---------------------------------------------------------------------------

/// Runs every consumer of a snapshot; returns the first panic, if any.
fn exercise(s: &Snapshot, flamegraph: bool) -> Result<(), String> {
    std::panic::catch_unwind(AssertUnwindSafe(|| snapshot_gen::exercise(s, flamegraph))).map_err(panic_message)
}

#[test]
fn analyze_and_dumps_never_panic_on_generated_snapshots() {
    quiet_injected_panics();
    let mut failures = Vec::new();
    let cases = 3000u64;
    let mut unparsed = 0;
    for seed in 0..cases {
        let mut src = snapshot_gen::Rng::new(seed);
        let json = snapshot_gen::snapshot_json(&mut src);
        let parsed: Result<Snapshot, _> = serde_json::from_str(&json);
        let Ok(s) = parsed else {
            unparsed += 1;
            continue;
        };
        if let Err(e) = exercise(&s, seed % 50 == 0) {
            failures.push(format!("seed {seed}: {e}\n{json}"));
            if failures.len() >= 3 {
                break;
            }
        }
    }
    assert!(failures.is_empty(), "{} failure(s); first:\n{}", failures.len(), failures[0]);
    assert!(unparsed < cases / 10, "{unparsed} of {cases} generated snapshots did not parse: the generator is off");
}

#[test]
fn analyze_and_dumps_never_panic_on_hand_made_edge_cases() {
    quiet_injected_panics();
    for (name, json) in snapshot_gen::edge_cases() {
        let s: Snapshot = match serde_json::from_str(&json) {
            Ok(s) => s,
            Err(e) => panic!("edge case {name} does not parse: {e}\n{json}"),
        };
        if let Err(e) = exercise(&s, true) {
            panic!("edge case {name}: {e}\n{json}");
        }
    }
}

#[test]
fn garbage_json_is_an_error_not_a_panic() {
    let inputs = [
        "",
        "{}",
        "[]",
        "null",
        r#"{"taken_at":{"secs_since_epoch":18446744073709551615,"nanos_since_epoch":4000000000},"tasks":[]}"#,
        r#"{"taken_at":{"secs_since_epoch":1,"nanos_since_epoch":0},"tasks":[{"id":1}]}"#,
        r#"{"taken_at":{"secs_since_epoch":1,"nanos_since_epoch":0},"tasks":[],"resources":[{"id":1,"kind":"Nope"}]}"#,
    ];
    for i in inputs {
        let r = std::panic::catch_unwind(|| serde_json::from_str::<Snapshot>(i).map(|s| s.analyze()));
        assert!(r.is_ok(), "deserialising {i:?} panicked");
    }
}

/// The seed inputs of the `snapshot` fuzz target (mode byte 0 + JSON): the
/// hand-made edge cases, generated snapshots, and a real snapshot of a small
/// program. Each must be what the target expects: a snapshot that parses
/// (edge cases may be deliberately malformed: they must then be an error,
/// not a panic). They are written to a temporary directory, or to the
/// corpus with `PARKWATCH_WRITE_FUZZ_SEEDS=1 cargo test --test faults fuzz_seeds`.
#[test]
fn fuzz_seeds() {
    let dir = if std::env::var_os("PARKWATCH_WRITE_FUZZ_SEEDS").is_some() {
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/snapshot")
    } else {
        std::env::temp_dir().join(format!("parkwatch-fuzz-seeds-{}", std::process::id()))
    };
    std::fs::create_dir_all(&dir).unwrap();
    let write = |name: &str, json: &str| {
        let mut bytes = vec![0u8];
        bytes.extend_from_slice(json.as_bytes());
        std::fs::write(dir.join(format!("seed-{name}")), bytes).unwrap();
    };
    for (i, (_, json)) in snapshot_gen::edge_cases().into_iter().enumerate() {
        write(&format!("edge-{i}"), &json);
    }
    for seed in 0..20 {
        write(&format!("gen-{seed}"), &snapshot_gen::snapshot_json(&mut snapshot_gen::Rng::new(seed)));
    }
    let real = run(async {
        let c = chan::<u8>(0);
        let m = Arc::new(Mutex::new(()));
        let g = m.lock().await;
        let wg = WaitGroup::new();
        wg.add(1);
        let (c1, m1, wg1) = (c.clone(), m.clone(), wg.clone());
        parkwatch::task::Builder::new().name("receiver").spawn(async move { c1.recv().await });
        parkwatch::spawn(async move { drop(m1.lock().await) });
        parkwatch::spawn(async move { wg1.wait().await });
        parked_on(m.id(), WaitReason::MutexLock).await;
        parked_on(c.id(), WaitReason::ChanReceive).await;
        let json = parkwatch::dump::json(&snapshot());
        drop(g);
        wg.done();
        c.close().unwrap();
        json
    });
    write("real", &real);
    let mut parsed = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let bytes = std::fs::read(entry.unwrap().path()).unwrap();
        assert_eq!(bytes[0], 0, "mode byte");
        let text = std::str::from_utf8(&bytes[1..]).unwrap();
        let r = std::panic::catch_unwind(|| serde_json::from_str::<Snapshot>(text).map(|s| s.analyze()));
        parsed += r.expect("a seed never panics").is_ok() as usize;
    }
    assert!(parsed >= 21, "the generated and the real snapshots parse ({parsed} did)");
    if std::env::var_os("PARKWATCH_WRITE_FUZZ_SEEDS").is_none() {
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
