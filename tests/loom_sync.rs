//! loom models of the `sync` primitives and of the park/registry handshake,
//! through the public blocking API.
//!
//! As in `loom_chan.rs`, every model runs threads spawned with
//! `loom::thread::spawn` and uses the blocking operations (`lock_blocking`,
//! `read_blocking`, `wait_blocking`, `call_once`, ...). Under `--cfg loom` the
//! data of a `Mutex`/`RwMutex` lives in loom's `UnsafeCell` and each guard
//! holds a tracked access to it (`src/shim.rs`), so a guard whose access
//! overlaps another's without a happens-before fails the model even where
//! the models' own assertions would not notice.
//!
//! ```text
//! RUSTFLAGS="--cfg loom" cargo test --release --no-default-features --test loom_sync --target-dir target/loom
//! ```
//!
//! Preemption bounds: [`BOUND`] for the two-thread models, [`BOUND3`] for the
//! three-thread ones (the whole file: about 10 s on 2 cores, the longest
//! model `cond_broadcast_wakes_all` at 8 s); `LOOM_MAX_PREEMPTIONS=N`
//! overrides both (N=5: about 70 s). To print the
//! trace of a failing model, run it alone with
//! `LOOM_LOG=trace LOOM_LOCATION=1 ... -- --exact NAME --nocapture`.
//!
//! Each model prints (with `--nocapture`) how many executions it explored.
#![cfg(loom)]

use loom::cell::UnsafeCell;
use loom::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use loom::sync::Arc;
use loom::thread;
use parkwatch::sync::loom_support::register_thread;
use parkwatch::sync::{Cond, Mutex, Once, RwMutex, WaitGroup};
use parkwatch::{chan, ResourceId, SnapshotOptions, TaskId, TaskInfo, TaskState, WaitReason};

mod loom_model;
use loom_model::model;

/// Preemption bound of the models with two threads (each explores in well
/// under 2 s at this bound).
const BOUND: usize = 5;
/// Preemption bound of the models with three threads (each explores in under
/// 10 s at this bound; about 1 minute at 5).
const BOUND3: usize = 4;

/// Enters a critical section: fails if another thread is inside.
fn enter(inside: &AtomicUsize) {
    assert_eq!(inside.fetch_add(1, Ordering::Relaxed), 0, "two holders at once");
}

fn leave(inside: &AtomicUsize) {
    inside.fetch_sub(1, Ordering::Relaxed);
}

// ---------------------------------------------------------------- Mutex

/// Model 1: Three threads increment a counter under the lock: never two in
/// the critical section, no increment lost, nobody left parked.
#[test]
fn mutex_excludes_three_threads() {
    model(BOUND3, || {
        let m = Arc::new(Mutex::new(0u32));
        let inside = Arc::new(AtomicUsize::new(0));
        let work = |m: &Mutex<u32>, inside: &AtomicUsize| {
            let mut g = m.lock_blocking();
            enter(inside);
            *g += 1;
            leave(inside);
        };
        let hs: Vec<_> = (0..2)
            .map(|_| {
                let (m, inside) = (m.clone(), inside.clone());
                thread::spawn(move || work(&m, &inside))
            })
            .collect();
        work(&m, &inside);
        for h in hs {
            h.join().unwrap();
        }
        assert_eq!(*m.lock_blocking(), 3);
    });
}

/// Model 2: Hand-over to a parked waiter: the locker comes after the holder
/// (sees its write), and is woken (the model would otherwise deadlock).
#[test]
fn mutex_handoff_to_parked_waiter() {
    model(BOUND, || {
        let m = Arc::new(Mutex::new(0u32));
        let g = m.lock_blocking();
        let h = {
            let m = m.clone();
            thread::spawn(move || {
                let mut g = m.lock_blocking();
                assert_eq!(*g, 10, "locked before the holder's unlock");
                *g += 1;
            })
        };
        {
            let mut g = g;
            *g = 10;
        }
        h.join().unwrap();
        assert_eq!(*m.lock_blocking(), 11);
        assert!(m.try_lock().is_some(), "left locked");
    });
}

/// Model 3: An unlock racing a new locker while another waiter may be parked:
/// exclusion holds, both lockers get the lock once, nobody is left parked.
#[test]
fn mutex_unlock_races_new_locker() {
    model(BOUND3, || {
        let m = Arc::new(Mutex::new(0u32));
        let inside = Arc::new(AtomicUsize::new(0));
        let g = m.lock_blocking();
        let spawn_locker = |m: &Arc<Mutex<u32>>, inside: &Arc<AtomicUsize>| {
            let (m, inside) = (m.clone(), inside.clone());
            thread::spawn(move || {
                let mut g = m.lock_blocking();
                enter(&inside);
                *g += 1;
                leave(&inside);
            })
        };
        let parked = spawn_locker(&m, &inside);
        let fresh = spawn_locker(&m, &inside);
        drop(g);
        parked.join().unwrap();
        fresh.join().unwrap();
        assert_eq!(*m.lock_blocking(), 2);
    });
}

/// Model 4: `try_lock` (retried) against a blocking `lock`: exclusion holds,
/// both get the lock once. A `try_lock` that succeeds while the other thread
/// may be queued must not let it in too.
#[test]
fn mutex_try_lock_vs_lock() {
    model(BOUND, || {
        let m = Arc::new(Mutex::new(0u32));
        let inside = Arc::new(AtomicUsize::new(0));
        let h = {
            let (m, inside) = (m.clone(), inside.clone());
            thread::spawn(move || {
                let mut g = m.lock_blocking();
                enter(&inside);
                *g += 1;
                leave(&inside);
            })
        };
        let mut g = loop {
            match m.try_lock() {
                Some(g) => break g,
                None => thread::yield_now(),
            }
        };
        enter(&inside);
        *g += 1;
        leave(&inside);
        drop(g);
        h.join().unwrap();
        assert_eq!(*m.lock_blocking(), 2);
    });
}

// ---------------------------------------------------------------- RwMutex

/// Model 5: Two readers and a writer that writes twice: a reader never sees
/// the half-done write (and, through the tracked data, never overlaps it).
#[test]
fn rwmutex_readers_exclude_writer() {
    model(BOUND3, || {
        let l = Arc::new(RwMutex::new(0u32));
        let writing = Arc::new(AtomicBool::new(false));
        let w = {
            let (l, writing) = (l.clone(), writing.clone());
            thread::spawn(move || {
                let mut g = l.write_blocking();
                writing.store(true, Ordering::Relaxed);
                *g += 1;
                *g += 1;
                writing.store(false, Ordering::Relaxed);
            })
        };
        let read = |l: &RwMutex<u32>, writing: &AtomicBool| {
            let g = l.read_blocking();
            assert!(!writing.load(Ordering::Relaxed), "a reader inside a write");
            assert!(*g == 0 || *g == 2, "a reader saw {}", *g);
        };
        let r = {
            let (l, writing) = (l.clone(), writing.clone());
            thread::spawn(move || read(&l, &writing))
        };
        read(&l, &writing);
        w.join().unwrap();
        r.join().unwrap();
        assert_eq!(*l.read_blocking(), 2);
    });
}

/// Model 6: Readers share: a second reader gets the lock while the first
/// holds it (the first joins it while holding: would deadlock otherwise).
#[test]
fn rwmutex_readers_share() {
    model(BOUND, || {
        let l = Arc::new(RwMutex::new(5u32));
        let g = l.read_blocking();
        let r = {
            let l = l.clone();
            thread::spawn(move || *l.read_blocking())
        };
        assert_eq!(r.join().unwrap(), 5);
        assert_eq!(*g, 5);
        drop(g);
        assert!(l.try_write().is_some());
    });
}

/// Model 7: Writer preference without a lost wake-up: a reader holds; a
/// writer queues (seen as: `try_read` now fails); a reader arriving after it
/// queues behind it and sees its write; the holder's unlock wakes the writer,
/// whose unlock wakes the reader.
#[test]
fn rwmutex_writer_preference_wakes_all() {
    model(BOUND3, || {
        let l = Arc::new(RwMutex::new(0u32));
        let held = l.read_blocking();
        let w = {
            let l = l.clone();
            thread::spawn(move || *l.write_blocking() = 1)
        };
        // A queued writer keeps new readers out.
        while let Some(g) = l.try_read() {
            drop(g);
            thread::yield_now();
        }
        assert!(l.try_write().is_none());
        let r = {
            let l = l.clone();
            thread::spawn(move || *l.read_blocking())
        };
        drop(held);
        w.join().unwrap();
        assert_eq!(r.join().unwrap(), 1, "a reader that came after a queued writer went first");
    });
}

/// Model 8: A writer waiting behind a writer while a reader arrives: the
/// unlock grants one writer, then the reader; exclusion holds throughout.
#[test]
fn rwmutex_write_unlock_races_reader_and_writer() {
    model(BOUND3, || {
        let l = Arc::new(RwMutex::new(0u32));
        let g = l.write_blocking();
        let w = {
            let l = l.clone();
            thread::spawn(move || *l.write_blocking() += 1)
        };
        let r = {
            let l = l.clone();
            thread::spawn(move || *l.read_blocking())
        };
        drop(g);
        w.join().unwrap();
        let seen = r.join().unwrap();
        assert!(seen <= 1);
        assert_eq!(*l.read_blocking(), 1);
    });
}

// ---------------------------------------------------------------- WaitGroup

/// A value written by one thread and read by another, checked by loom for a
/// happens-before between the two.
struct Slot(UnsafeCell<u32>);

// SAFETY: loom checks every access to the cell for races.
unsafe impl Sync for Slot {}

impl Slot {
    fn new() -> Arc<Slot> {
        Arc::new(Slot(UnsafeCell::new(0)))
    }
    fn set(&self, v: u32) {
        // SAFETY: loom reports a concurrent access.
        self.0.with_mut(|p| unsafe { *p = v });
    }
    fn get(&self) -> u32 {
        // SAFETY: as above.
        self.0.with(|p| unsafe { *p })
    }
}

/// Model 9: `wait` returns only after every `done`, and sees what was
/// written before each (loom checks the happens-before).
#[test]
fn waitgroup_wait_returns_after_all_done() {
    model(BOUND3, || {
        let wg = WaitGroup::new();
        wg.add(2);
        let slots = [Slot::new(), Slot::new()];
        let hs: Vec<_> = slots
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let (wg, s) = (wg.clone(), s.clone());
                thread::spawn(move || {
                    s.set(i as u32 + 1);
                    wg.done();
                })
            })
            .collect();
        wg.wait_blocking();
        assert_eq!((slots[0].get(), slots[1].get()), (1, 2));
        assert_eq!(wg.count(), 0);
        for h in hs {
            h.join().unwrap();
        }
    });
}

/// Model 10: One `done` racing two waiters (one possibly parked, one
/// possibly arriving at zero): both return.
#[test]
fn waitgroup_done_races_wait() {
    model(BOUND3, || {
        let wg = WaitGroup::new();
        wg.add(1);
        let s = Slot::new();
        let d = {
            let (wg, s) = (wg.clone(), s.clone());
            thread::spawn(move || {
                s.set(7);
                wg.done();
            })
        };
        let w = {
            let (wg, s) = (wg.clone(), s.clone());
            thread::spawn(move || {
                wg.wait_blocking();
                s.get()
            })
        };
        wg.wait_blocking();
        assert_eq!(s.get(), 7);
        assert_eq!(w.join().unwrap(), 7);
        d.join().unwrap();
    });
}

/// Model 11: Reuse: after a wait returns, a new round (`add`, `done`, `wait`)
/// works the same, and a waiter of the second round is not released by the
/// first.
#[test]
fn waitgroup_reuse() {
    model(BOUND, || {
        let wg = WaitGroup::new();
        let s = Slot::new();
        for round in 1..=2 {
            wg.add(1);
            let h = {
                let (wg, s) = (wg.clone(), s.clone());
                thread::spawn(move || {
                    s.set(round);
                    wg.done();
                })
            };
            wg.wait_blocking();
            assert_eq!(s.get(), round, "round {round}: wait returned before done");
            h.join().unwrap();
        }
        assert_eq!(wg.count(), 0);
    });
}

// ---------------------------------------------------------------- Cond

/// Model 12: Go's `Cond`: the waiter checks the condition and waits holding
/// the mutex; the signaller sets it under the mutex and signals (inside or
/// after its critical section). The signal is never lost.
fn cond_signal_not_lost(signal_under_lock: bool) {
    model(BOUND, move || {
        let st = Arc::new((Mutex::new(false), Cond::new()));
        let w = {
            let st = st.clone();
            thread::spawn(move || {
                let (m, c) = &*st;
                let mut ready = m.lock_blocking();
                while !*ready {
                    ready = c.wait_blocking(ready);
                }
            })
        };
        let (m, c) = &*st;
        let mut ready = m.lock_blocking();
        *ready = true;
        if signal_under_lock {
            c.signal();
            drop(ready);
        } else {
            drop(ready);
            c.signal();
        }
        w.join().unwrap();
    });
}

#[test]
fn cond_signal_not_lost_under_lock() {
    cond_signal_not_lost(true);
}

#[test]
fn cond_signal_not_lost_after_unlock() {
    cond_signal_not_lost(false);
}

/// Model 13: `broadcast` wakes every waiter, whichever point of its wait each
/// has reached.
#[test]
fn cond_broadcast_wakes_all() {
    model(BOUND3, || {
        let st = Arc::new((Mutex::new(false), Cond::new()));
        let spawn_waiter = |st: &Arc<(Mutex<bool>, Cond)>| {
            let st = st.clone();
            thread::spawn(move || {
                let (m, c) = &*st;
                let mut ready = m.lock_blocking();
                while !*ready {
                    ready = c.wait_blocking(ready);
                }
            })
        };
        let (a, b) = (spawn_waiter(&st), spawn_waiter(&st));
        let (m, c) = &*st;
        *m.lock_blocking() = true;
        c.broadcast();
        a.join().unwrap();
        b.join().unwrap();
    });
}

// ---------------------------------------------------------------- Once

/// Model 14: Two racing `call_once`: the function runs once, and each caller
/// returns only after it has run (and sees its effects: loom checks it).
#[test]
fn once_runs_once_and_publishes() {
    model(BOUND, || {
        let once = Arc::new(Once::new());
        let s = Slot::new();
        let call = |once: &Once, s: &Slot| {
            once.call_once(|| s.set(s.get() + 1));
            // Read before `is_completed`, whose Acquire load would supply the
            // happens-before that `call_once` itself must.
            assert_eq!(s.get(), 1);
            assert!(once.is_completed());
        };
        let h = {
            let (once, s) = (once.clone(), s.clone());
            thread::spawn(move || call(&once, &s))
        };
        call(&once, &s);
        h.join().unwrap();
    });
}

// ------------------------------------------------- park/registry handshake
//
// One thread of each model registers as a task (`register_thread`, what
// `parkwatch::thread::spawn` does for an OS thread) and blocks; the other,
// unregistered, wakes it with an operation that never parks. Only one thread
// per model may be registered: loom's threads share the OS thread, hence
// parkwatch's current-task thread-local. The registry is process-wide, so
// these models run one at a time (`REGISTRY`).

static REGISTRY: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// The registered threads of the snapshot.
fn registered() -> Vec<TaskInfo> {
    parkwatch::snapshot_with(&SnapshotOptions { runtime: None, skip_stacks: true }).tasks().to_vec()
}

/// The task that waits on `res`, if one is seen parked on it.
fn parked_on(res: ResourceId) -> Option<TaskInfo> {
    registered().into_iter().find(|t| t.waits_on.iter().any(|w| w.resource == res))
}

/// What the handshake model blocks on.
#[derive(Clone, Copy, Debug)]
enum Blocker {
    Mutex,
    Chan,
    WaitGroup,
}

/// Model 15: the registered thread blocks on a mutex, a channel receive or
/// a wait group. With `observe`, the waker first waits until the registry
/// shows it parked, with the right reason, on the right resource; otherwise
/// the wake races the park. Either way: after the waking operation returns,
/// the thread is never seen blocked; once woken it is running with no wait
/// recorded; once it ends it is gone from the registry.
fn handshake(blocker: Blocker, observe: bool) {
    let _one_at_a_time = REGISTRY.lock().unwrap_or_else(|e| e.into_inner());
    model(BOUND, move || {
        let m = Arc::new(Mutex::new(()));
        let c = chan::<u32>(0);
        let wg = WaitGroup::new();
        wg.add(1);
        let held = matches!(blocker, Blocker::Mutex).then(|| m.lock_blocking());
        let (res, reason) = match blocker {
            Blocker::Mutex => (m.id(), WaitReason::MutexLock),
            Blocker::Chan => (c.id(), WaitReason::ChanReceive),
            Blocker::WaitGroup => (wg.id(), WaitReason::WaitGroupWait),
        };
        let res = ResourceId(res);
        let t = {
            let (m, c, wg) = (m.clone(), c.clone(), wg.clone());
            thread::spawn(move || {
                let me = register_thread();
                match blocker {
                    Blocker::Mutex => drop(m.lock_blocking()),
                    Blocker::Chan => assert_eq!(c.recv_blocking(), Some(1)),
                    Blocker::WaitGroup => wg.wait_blocking(),
                }
                let mine = registered().into_iter().find(|t| t.id == me.id()).expect("registered");
                assert_eq!(mine.state, TaskState::Running, "{mine:?}");
                assert_eq!(mine.wait_reason, None, "woken, its wait still recorded: {mine:?}");
                assert!(!mine.blocked && mine.waits_on.is_empty(), "{mine:?}");
                me.id()
            })
        };
        if observe {
            let seen = loop {
                match parked_on(res) {
                    Some(t) if t.state == TaskState::Parked => break t,
                    _ => thread::yield_now(),
                }
            };
            assert_eq!(seen.wait_reason, Some(reason), "{seen:?}");
            assert!(seen.blocked, "{seen:?}");
            assert_eq!(seen.waits_on.len(), 1, "{seen:?}");
            assert_eq!(seen.waits_on[0].op, reason, "{seen:?}");
        }
        match blocker {
            Blocker::Mutex => drop(held),
            Blocker::Chan => {
                while c.try_send(1).is_err() {
                    thread::yield_now();
                }
            }
            Blocker::WaitGroup => wg.done(),
        }
        // Woken: never seen blocked again (a wake that reached the record
        // before the park keeps it notified).
        if let Some(t) = parked_on(res) {
            assert!(!t.blocked && t.state != TaskState::Parked, "woken but seen parked: {t:?}");
        }
        let id: TaskId = t.join().unwrap();
        assert!(registered().iter().all(|t| t.id != id), "ended but still registered");
    });
}

#[test]
fn handshake_mutex_observed() {
    handshake(Blocker::Mutex, true);
}

#[test]
fn handshake_mutex_racing() {
    handshake(Blocker::Mutex, false);
}

#[test]
fn handshake_chan_observed() {
    handshake(Blocker::Chan, true);
}

#[test]
fn handshake_chan_racing() {
    handshake(Blocker::Chan, false);
}

#[test]
fn handshake_waitgroup_observed() {
    handshake(Blocker::WaitGroup, true);
}

#[test]
fn handshake_waitgroup_racing() {
    handshake(Blocker::WaitGroup, false);
}
