//! The detectors on small programs: each deadlock kind found with the right
//! certainty and explanation, while unrelated tasks keep running.

use std::sync::Arc;
use std::time::{Duration, Instant};

use parkwatch::sync::{Mutex, RwMutex};
use parkwatch::{Certainty, FindingKind, Runtime};

/// Runs `f` on its own thread and fails the test if it takes longer than
/// `limit` (a detector that misses must fail the test, not hang it).
fn within<T: Send + 'static>(limit: Duration, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(limit).expect("no verdict in time: the detector missed it")
}

/// A task that keeps running for the whole test (a ticker), so no global
/// deadlock can hide a partial one.
fn keep_busy() -> parkwatch::Chan<()> {
    let stop = parkwatch::chan::<()>(0);
    let s = stop.receiver();
    parkwatch::spawn(async move {
        loop {
            parkwatch::select! {
                recv(s) -> _v => return,
                recv(parkwatch::time::after(Duration::from_millis(5))) -> _t => {},
            }
        }
    });
    stop
}

#[test]
fn double_lock_is_definite_and_immediate() {
    within(Duration::from_secs(20), double_lock_is_definite_and_immediate_body);
}

fn double_lock_is_definite_and_immediate_body() {
    let rt = Runtime::new().unwrap();
    let start = Instant::now();
    let err = rt
        .block_on(async {
            let _busy = keep_busy();
            let m = Mutex::new(0);
            let _g = m.lock().await;
            let _g2 = m.lock().await; // same task, same mutex
        })
        .unwrap_err();
    let elapsed = start.elapsed();
    let f = err.finding().expect("a partial deadlock carries its finding");
    assert!(!err.is_global());
    assert_eq!(f.kind, FindingKind::DoubleLock);
    assert_eq!(f.certainty, Certainty::Definite);
    assert!(f.explanation.contains("held by this same task"), "{}", f.explanation);
    assert!(err.to_string().contains("[sync.Mutex.Lock]"), "{err}");
    println!("double lock found in {elapsed:?}\n{err}");
    assert!(elapsed < Duration::from_millis(500), "took {elapsed:?}");
}

#[test]
fn ab_ba_is_a_definite_cycle() {
    within(Duration::from_secs(20), ab_ba_is_a_definite_cycle_body);
}

fn ab_ba_is_a_definite_cycle_body() {
    let rt = Runtime::new().unwrap();
    let err = rt
        .block_on(async {
            let _busy = keep_busy();
            let a = Arc::new(Mutex::new(()));
            let b = Arc::new(Mutex::new(()));
            let (a2, b2) = (a.clone(), b.clone());
            let ready = parkwatch::chan::<()>(0);
            let r2 = ready.clone();
            parkwatch::task::Builder::new().name("ba").spawn(async move {
                let _gb = b2.lock().await;
                r2.send(()).await.unwrap();
                let _ga = a2.lock().await;
            });
            let _ga = a.lock().await;
            ready.recv().await;
            let _gb = b.lock().await;
        })
        .unwrap_err();
    let f = err.finding().unwrap();
    assert_eq!(f.kind, FindingKind::LockCycle);
    assert_eq!(f.certainty, Certainty::Definite);
    assert_eq!(f.tasks.len(), 2);
    assert!(f.explanation.contains("\"ba\""), "{}", f.explanation);
}

#[test]
fn recursive_read_behind_a_writer_is_definite() {
    within(Duration::from_secs(20), recursive_read_behind_a_writer_is_definite_body);
}

fn recursive_read_behind_a_writer_is_definite_body() {
    let rt = Runtime::new().unwrap();
    let err = rt
        .block_on(async {
            let _busy = keep_busy();
            let l = Arc::new(RwMutex::new(0));
            let l2 = l.clone();
            let _r1 = l.read().await;
            let writer_queued = parkwatch::chan::<()>(1);
            let wq = writer_queued.clone();
            parkwatch::spawn(async move {
                wq.send(()).await.unwrap();
                let _w = l2.write().await;
            });
            writer_queued.recv().await;
            // Let the writer queue up: poll until the lock shows a waiter.
            while l.try_write().is_none()
                && parkwatch::snapshot()
                    .tasks()
                    .iter()
                    .all(|t| t.wait_reason != Some(parkwatch::WaitReason::RwMutexLock))
            {
                parkwatch::task::yield_now().await;
            }
            let _r2 = l.read().await; // behind the queued writer: RWR deadlock
        })
        .unwrap_err();
    let f = err.finding().unwrap();
    assert_eq!(f.kind, FindingKind::LockCycle, "{}", f.explanation);
    assert_eq!(f.certainty, Certainty::Definite);
}

#[test]
fn receive_with_every_sender_gone_is_orphaned() {
    within(Duration::from_secs(20), receive_with_every_sender_gone_is_orphaned_body);
}

fn receive_with_every_sender_gone_is_orphaned_body() {
    let rt = Runtime::new().unwrap();
    let err = rt
        .block_on(async {
            let _busy = keep_busy();
            let c = parkwatch::chan::<i32>(0);
            let rx = c.receiver();
            let tx = c.sender();
            drop(c);
            parkwatch::spawn(async move {
                tx.send(1).await.unwrap();
                // and exits: the last sender is gone
            });
            assert_eq!(rx.recv().await, Some(1));
            rx.recv().await
        })
        .unwrap_err();
    let f = err.finding().unwrap();
    assert_eq!(f.kind, FindingKind::OrphanedWait);
    assert_eq!(f.certainty, Certainty::Definite);
}

/// A receive that parks on a channel whose senders were all dropped before
/// it: no sender's drop comes after to report it, and the watchdog's grace
/// is set far beyond the test's limit, so the finding comes from the
/// park-time check alone.
#[test]
fn receive_parked_after_every_sender_is_gone_is_orphaned_at_park() {
    within(Duration::from_secs(20), receive_parked_after_every_sender_is_gone_body);
}

fn receive_parked_after_every_sender_is_gone_body() {
    let rt = Runtime::builder().stuck_grace(Duration::from_secs(3600)).build().unwrap();
    let start = Instant::now();
    let err = rt
        .block_on(async {
            let _busy = keep_busy();
            let c = parkwatch::chan::<i32>(0);
            let rx = c.receiver();
            drop(c);
            rx.recv().await
        })
        .unwrap_err();
    let f = err.finding().unwrap();
    assert_eq!(f.kind, FindingKind::OrphanedWait, "{}", f.explanation);
    assert_eq!(f.certainty, Certainty::Definite);
    assert!(start.elapsed() < Duration::from_secs(10), "found at park time, not by a sweep: {:?}", start.elapsed());
}

#[test]
fn channel_and_lock_partial_deadlock_is_probable() {
    within(Duration::from_secs(20), channel_and_lock_partial_deadlock_is_probable_body);
}

fn channel_and_lock_partial_deadlock_is_probable_body() {
    let rt = Runtime::builder().stuck_grace(Duration::from_millis(300)).build().unwrap();
    let start = Instant::now();
    let err = rt
        .block_on(async {
            let _busy = keep_busy();
            let m = Arc::new(Mutex::new(()));
            let c = parkwatch::chan::<i32>(0);
            let (m2, c2) = (m.clone(), c.clone());
            parkwatch::spawn(async move {
                let _g = m2.lock().await;
                c2.send(0).await.unwrap(); // "locked": main receives it
                c2.send(1).await.unwrap(); // waits for main, holding the mutex
            });
            // main has received on `c`: it is the channel's known receiver.
            assert_eq!(c.recv().await, Some(0));
            let _g = m.lock().await; // waits for the sender, which waits for main
            c.recv().await
        })
        .unwrap_err();
    let f = err.finding().unwrap();
    println!("{err}\nafter {:?}", start.elapsed());
    assert!(!err.is_global());
    assert_eq!(f.certainty, Certainty::Probable, "{}", f.explanation);
    assert_eq!(f.tasks.len(), 2);
}

#[test]
fn analyze_finds_leaks_grouped_by_site_and_a_graph() {
    let rt = Runtime::new().unwrap();
    rt.block_on(async {
        let never = parkwatch::chan::<i32>(0);
        for _ in 0..10 {
            let n = never.clone();
            parkwatch::spawn(async move { n.recv().await });
        }
        // Wait until all ten are parked.
        loop {
            let s = parkwatch::snapshot();
            if s.tasks().iter().filter(|t| t.wait_reason == Some(parkwatch::WaitReason::ChanReceive)).count() >= 10 {
                break;
            }
            parkwatch::task::yield_now().await;
        }
        let s = parkwatch::snapshot();
        let a =
            s.analyze_with(&parkwatch::AnalyzeOptions { grace: Duration::from_secs(3600), leak_after: Duration::ZERO });
        let leak = a.leaks.iter().find(|f| f.tasks.len() == 10).expect("one group of ten");
        assert_eq!(leak.certainty, Certainty::Suspected);
        assert!(leak.explanation.contains("chan receive"));
        let g = s.wait_for_graph();
        let dot = g.to_dot();
        assert!(dot.starts_with("digraph"), "{dot}");
        assert!(g.to_json().contains("\"waits_on\""));
        drop(never);
    })
    .unwrap();
}
