//! Channel conformance, modeled on what Go's `runtime/chan_test.go` checks:
//! FIFO, non-blocking operations, close, nil channels, unbuffered rendezvous,
//! the prime sieve, many-to-many stress with no loss or duplicate (async,
//! threads, mixed), zero-sized values, handle drops, `iter()`,
//! cancellation of a receive never losing a value, and what a snapshot
//! shows of a task's successive waits on one channel.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use parkwatch::{chan, snapshot, Chan, CloseError, SendError, TaskId, TaskState, TryRecvError, TrySendError};

/// Runs `fut` as the main task of a fresh runtime; panics with the report on a deadlock.
fn run<F: std::future::Future>(fut: F) -> F::Output {
    let rt = parkwatch::Runtime::new().expect("runtime");
    match rt.block_on(fut) {
        Ok(v) => v,
        Err(d) => panic!("unexpected deadlock:\n{d}"),
    }
}

/// Waits (bounded) until task `id` is parked with the wait reason `reason`.
async fn wait_parked(id: TaskId, reason: &str) {
    for _ in 0..5_000 {
        let s = snapshot();
        if s.tasks().iter().any(|t| {
            t.id == id
                && t.state == TaskState::Parked
                && t.wait_reason.map(|r| r.to_string()).as_deref() == Some(reason)
        }) {
            return;
        }
        parkwatch::time::sleep(Duration::from_millis(1)).await;
    }
    panic!("task {id} never showed as parked in [{reason}]");
}

/// Same, from a plain (non-async) thread.
fn wait_parked_blocking(id: TaskId, reason: &str) {
    for _ in 0..5_000 {
        let s = snapshot();
        if s.tasks().iter().any(|t| {
            t.id == id
                && t.state == TaskState::Parked
                && t.wait_reason.map(|r| r.to_string()).as_deref() == Some(reason)
        }) {
            return;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    panic!("task {id} never showed as parked in [{reason}]");
}

/// Asserts `got` is exactly 0, 1, ..., n-1, reporting the first divergence.
fn assert_sequence(got: &[u32], n: u32, what: &str) {
    if let Some(i) = (0..got.len()).find(|&i| got[i] != i as u32) {
        let lo = i.saturating_sub(3);
        let hi = (i + 4).min(got.len());
        panic!("{what}: FIFO violated at position {i}: expected {i}, got {} (around it: {:?})", got[i], &got[lo..hi]);
    }
    assert_eq!(got.len(), n as usize, "{what}: wrong count");
}

const CAPS: [usize; 6] = [0, 1, 2, 5, 16, 100];

// ---------------------------------------------------------------------------
// FIFO
// ---------------------------------------------------------------------------

#[test]
fn fifo_buffered_async() {
    for cap in CAPS {
        let got = run(async move {
            let c = chan::<u32>(cap);
            let tx = c.sender();
            let h = parkwatch::spawn(async move {
                for i in 0..2_000u32 {
                    tx.send(i).await.unwrap();
                }
                tx.close().unwrap();
            });
            let mut got = Vec::new();
            while let Some(v) = c.recv().await {
                got.push(v);
            }
            h.await.unwrap();
            got
        });
        assert_sequence(&got, 2_000, &format!("cap {cap}"));
    }
}

#[test]
fn fifo_buffered_sync_fill_then_drain() {
    // Go's TestChan: the first `cap` sends never block, and come out in order.
    for cap in [1usize, 2, 5, 16, 100] {
        let c = chan::<usize>(cap);
        for i in 0..cap {
            c.try_send(i).unwrap_or_else(|e| panic!("cap {cap}: send {i} failed: {e}"));
            assert_eq!(c.len(), i + 1);
        }
        assert!(matches!(c.try_send(cap), Err(TrySendError::Full(v)) if v == cap));
        for i in 0..cap {
            assert_eq!(c.try_recv(), Ok(i), "cap {cap}");
        }
        assert_eq!(c.try_recv(), Err(TryRecvError::Empty));
        assert_eq!(c.len(), 0);
    }
}

#[test]
fn fifo_buffered_blocking_threads() {
    for cap in CAPS {
        let c = chan::<u32>(cap);
        let tx = c.sender();
        let t = parkwatch::thread::spawn(move || {
            for i in 0..2_000u32 {
                tx.send_blocking(i).unwrap();
            }
            tx.close().unwrap();
        });
        let mut got = Vec::new();
        while let Some(v) = c.recv_blocking() {
            got.push(v);
        }
        t.join().unwrap();
        assert_sequence(&got, 2_000, &format!("cap {cap}"));
    }
}

// ---------------------------------------------------------------------------
// Non-blocking operations
// ---------------------------------------------------------------------------

#[test]
fn try_send_full_and_closed_give_value_back() {
    let c = chan::<String>(1);
    c.try_send("a".to_string()).unwrap();
    match c.try_send("b".to_string()) {
        Err(TrySendError::Full(v)) => assert_eq!(v, "b"),
        other => panic!("expected Full(b), got {other:?}"),
    }
    // Unbuffered with no receiver: Full.
    let u = chan::<String>(0);
    match u.try_send("x".to_string()) {
        Err(e) => {
            assert!(e.is_full());
            assert_eq!(e.into_inner(), "x");
        }
        Ok(()) => panic!("try_send on unbuffered channel with no receiver succeeded"),
    }
    c.close().unwrap();
    match c.try_send("c".to_string()) {
        Err(TrySendError::Closed(v)) => assert_eq!(v, "c"),
        other => panic!("expected Closed(c), got {other:?}"),
    }
    // The buffered value survives the close.
    assert_eq!(c.try_recv().as_deref(), Ok("a"));
    assert_eq!(c.try_recv(), Err(TryRecvError::Closed));
}

#[test]
fn try_recv_empty_and_closed() {
    for cap in CAPS {
        let c = chan::<i32>(cap);
        assert_eq!(c.try_recv(), Err(TryRecvError::Empty), "cap {cap}");
        assert_eq!(c.receiver().try_recv(), Err(TryRecvError::Empty));
        c.close().unwrap();
        assert_eq!(c.try_recv(), Err(TryRecvError::Closed), "cap {cap}");
        assert_eq!(c.receiver().try_recv(), Err(TryRecvError::Closed));
    }
}

#[test]
fn try_send_to_parked_receiver_unbuffered() {
    // A non-blocking send succeeds when a receiver is parked.
    run(async {
        let c = chan::<i32>(0);
        let rx = c.receiver();
        let h = parkwatch::spawn(async move { rx.recv().await });
        wait_parked(h.id(), "chan receive").await;
        c.try_send(7).unwrap();
        assert_eq!(h.await.unwrap(), Some(7));
        // And a non-blocking receive takes from a parked sender.
        let tx = c.sender();
        let h = parkwatch::spawn(async move { tx.send(8).await });
        wait_parked(h.id(), "chan send").await;
        assert_eq!(c.try_recv(), Ok(8));
        h.await.unwrap().unwrap();
    });
}

// ---------------------------------------------------------------------------
// Close
// ---------------------------------------------------------------------------

#[test]
fn close_then_drain() {
    for cap in [1usize, 3, 10] {
        run(async move {
            let c = chan::<usize>(cap);
            for i in 0..cap {
                c.send(i).await.unwrap();
            }
            c.close().unwrap();
            assert!(c.is_closed());
            assert_eq!(c.len(), cap);
            // Send after close: Err with the value, async, blocking and try.
            assert_eq!(c.send(99).await, Err(SendError(99)));
            assert_eq!(c.sender().send(98).await.unwrap_err().into_inner(), 98);
            assert_eq!(c.send_blocking(97), Err(SendError(97)));
            assert!(matches!(c.try_send(96), Err(TrySendError::Closed(96))));
            // Buffered values first, in order, then None forever.
            for i in 0..cap {
                assert_eq!(c.recv().await, Some(i));
            }
            assert_eq!(c.recv().await, None);
            assert_eq!(c.recv().await, None);
            assert_eq!(c.receiver().recv().await, None);
            assert_eq!(c.recv_blocking(), None);
            assert_eq!(c.len(), 0);
        });
    }
}

#[test]
fn close_twice_and_close_nil() {
    let c = chan::<i32>(0);
    assert_eq!(c.close(), Ok(()));
    assert_eq!(c.close(), Err(CloseError::AlreadyClosed));
    assert_eq!(c.sender().close(), Err(CloseError::AlreadyClosed));
    let n = Chan::<i32>::nil();
    assert_eq!(n.close(), Err(CloseError::Nil));
    assert_eq!(n.sender().close(), Err(CloseError::Nil));
}

#[test]
fn close_wakes_parked_receivers_and_senders() {
    run(async {
        // Receivers parked on an empty channel get None.
        let c = chan::<i32>(0);
        let mut hs = Vec::new();
        for _ in 0..4 {
            let rx = c.receiver();
            hs.push(parkwatch::spawn(async move { rx.recv().await }));
        }
        for h in &hs {
            wait_parked(h.id(), "chan receive").await;
        }
        c.close().unwrap();
        for h in hs {
            assert_eq!(h.await.unwrap(), None);
        }

        // Senders parked on a full channel get their value back.
        let c = chan::<String>(1);
        c.send("buffered".into()).await.unwrap();
        let mut hs = Vec::new();
        for i in 0..4 {
            let tx = c.sender();
            hs.push(parkwatch::spawn(async move { tx.send(format!("v{i}")).await }));
        }
        for h in &hs {
            wait_parked(h.id(), "chan send").await;
        }
        c.close().unwrap();
        for (i, h) in hs.into_iter().enumerate() {
            assert_eq!(h.await.unwrap(), Err(SendError(format!("v{i}"))));
        }
        // The buffered value is still there.
        assert_eq!(c.recv().await.as_deref(), Some("buffered"));
        assert_eq!(c.recv().await, None);
    });
}

#[test]
fn close_wakes_blocked_thread_receiver() {
    let c = chan::<i32>(0);
    let rx = c.receiver();
    let (id_tx, id_rx) = std::sync::mpsc::channel();
    let t = parkwatch::thread::spawn(move || {
        id_tx.send(parkwatch::task::id().unwrap()).unwrap();
        rx.recv_blocking()
    });
    let id = id_rx.recv().unwrap();
    wait_parked_blocking(id, "chan receive");
    c.close().unwrap();
    assert_eq!(t.join().unwrap(), None);
}

// ---------------------------------------------------------------------------
// Nil channel
// ---------------------------------------------------------------------------

#[test]
fn nil_channel_rules() {
    let n = Chan::<String>::nil();
    assert!(n.is_nil());
    assert!(matches!(n.try_send("v".into()), Err(TrySendError::Full(v)) if v == "v"));
    assert!(matches!(n.sender().try_send("w".into()), Err(TrySendError::Full(v)) if v == "w"));
    assert_eq!(n.try_recv(), Err(TryRecvError::Empty));
    assert_eq!(n.receiver().try_recv(), Err(TryRecvError::Empty));
    assert_eq!(n.len(), 0);
    assert_eq!(n.cap(), 0);
    assert!(!n.is_closed());
    assert_eq!(n.close(), Err(CloseError::Nil));
    // Still not closed after the failed close.
    assert!(!n.is_closed());
    assert_eq!(n.try_recv(), Err(TryRecvError::Empty));
    // Clones of nil are nil.
    let n2 = n.clone();
    assert!(n2.is_nil());
    assert_eq!(n2.cap(), 0);
}

#[test]
fn nil_channel_ops_never_complete() {
    run(async {
        let n = Chan::<i32>::nil();
        let r = tokio::time::timeout(Duration::from_millis(30), n.recv()).await;
        assert!(r.is_err(), "recv on nil completed: {r:?}");
        let r = tokio::time::timeout(Duration::from_millis(30), n.send(1)).await;
        assert!(r.is_err(), "send on nil completed");
    });
}

// ---------------------------------------------------------------------------
// Unbuffered rendezvous
// ---------------------------------------------------------------------------

#[test]
fn unbuffered_send_waits_for_receiver_async() {
    run(async {
        for round in 0..20 {
            let c = chan::<i32>(0);
            let tx = c.sender();
            let sent = Arc::new(AtomicBool::new(false));
            let sent2 = sent.clone();
            let h = parkwatch::spawn(async move {
                tx.send(round).await.unwrap();
                sent2.store(true, Ordering::SeqCst);
            });
            // The sender is parked in the send, and has not completed it.
            wait_parked(h.id(), "chan send").await;
            assert!(!sent.load(Ordering::SeqCst), "unbuffered send completed with no receiver");
            assert_eq!(c.len(), 0);
            assert_eq!(c.recv().await, Some(round));
            h.await.unwrap();
            assert!(sent.load(Ordering::SeqCst));
        }
    });
}

#[test]
fn unbuffered_send_waits_for_receiver_thread() {
    let c = chan::<i32>(0);
    let tx = c.sender();
    let sent = Arc::new(AtomicBool::new(false));
    let sent2 = sent.clone();
    let (id_tx, id_rx) = std::sync::mpsc::channel();
    let t = parkwatch::thread::spawn(move || {
        id_tx.send(parkwatch::task::id().unwrap()).unwrap();
        tx.send_blocking(5).unwrap();
        sent2.store(true, Ordering::SeqCst);
    });
    let id = id_rx.recv().unwrap();
    wait_parked_blocking(id, "chan send");
    assert!(!sent.load(Ordering::SeqCst), "unbuffered send completed with no receiver");
    assert_eq!(c.recv_blocking(), Some(5));
    t.join().unwrap();
    assert!(sent.load(Ordering::SeqCst));
}

#[test]
fn unbuffered_ping_pong_is_synchronous() {
    // Every send on an unbuffered channel is matched by exactly one receive:
    // the sender can never get more than one value ahead of the receiver.
    run(async {
        let c = chan::<u32>(0);
        let ack = chan::<u32>(0);
        let (tx, ackrx) = (c.sender(), ack.receiver());
        let h = parkwatch::spawn(async move {
            for i in 0..1_000 {
                tx.send(i).await.unwrap();
                assert_eq!(ackrx.recv().await, Some(i));
            }
        });
        for i in 0..1_000 {
            assert_eq!(c.recv().await, Some(i));
            assert_eq!(c.len(), 0);
            ack.send(i).await.unwrap();
        }
        h.await.unwrap();
    });
}

// ---------------------------------------------------------------------------
// len / cap
// ---------------------------------------------------------------------------

#[test]
fn len_and_cap() {
    for cap in CAPS {
        let c = chan::<u8>(cap);
        assert_eq!(c.cap(), cap);
        assert_eq!(c.sender().cap(), cap);
        assert_eq!(c.receiver().cap(), cap);
        assert_eq!(c.len(), 0);
        assert!(c.is_empty());
        for i in 0..cap {
            c.try_send(i as u8).unwrap();
            assert_eq!(c.len(), i + 1);
            assert_eq!(c.sender().len(), i + 1);
            assert_eq!(c.receiver().len(), i + 1);
        }
        assert!(c.try_send(0).is_err());
        assert_eq!(c.len(), cap);
        c.close().unwrap();
        assert_eq!(c.len(), cap, "close keeps the buffer");
        assert_eq!(c.cap(), cap);
        for i in (0..cap).rev() {
            c.try_recv().unwrap();
            assert_eq!(c.len(), i);
        }
    }
}

// ---------------------------------------------------------------------------
// Prime sieve
// ---------------------------------------------------------------------------

#[test]
fn prime_sieve_first_100() {
    let primes = run(async {
        let first = chan::<u64>(0);
        let gen_tx = first.sender();
        parkwatch::spawn(async move {
            let mut i = 2;
            loop {
                if gen_tx.send(i).await.is_err() {
                    return;
                }
                i += 1;
            }
        });
        let mut ch = first.receiver();
        let mut primes = Vec::new();
        for _ in 0..100 {
            let prime = ch.recv().await.unwrap();
            primes.push(prime);
            let next = chan::<u64>(0);
            let (input, out) = (ch, next.sender());
            parkwatch::spawn(async move {
                while let Some(v) = input.recv().await {
                    if v % prime != 0 && out.send(v).await.is_err() {
                        return;
                    }
                }
            });
            ch = next.receiver();
        }
        primes
    });
    let mut expect = Vec::new();
    let mut n = 2u64;
    while expect.len() < 100 {
        if (2..n).take_while(|d| d * d <= n).all(|d| n % d != 0) {
            expect.push(n);
        }
        n += 1;
    }
    assert_eq!(primes, expect);
    assert_eq!(primes[99], 541);
}

// ---------------------------------------------------------------------------
// Many senders x many receivers: no loss, no duplicate
// ---------------------------------------------------------------------------

const TOTAL: usize = 100_000;
const SENDERS: usize = 4;
const RECEIVERS: usize = 4;

/// Values of sender `k`: k, k + SENDERS, k + 2*SENDERS, ...
fn values_of(k: usize) -> impl Iterator<Item = usize> {
    (k..TOTAL).step_by(SENDERS)
}

/// Checks one receiver's sequence: per sender, increasing (FIFO per channel).
fn check_per_sender_order(got: &[usize], what: &str) {
    let mut last = [None::<usize>; SENDERS];
    for &v in got {
        let k = v % SENDERS;
        if let Some(prev) = last[k] {
            assert!(v > prev, "{what}: sender {k}: {v} received after {prev} by one receiver");
        }
        last[k] = Some(v);
    }
}

/// Every value of 0..TOTAL exactly once, and per-sender FIFO for each receiver.
fn check_exactly_once(all: Vec<Vec<usize>>, what: &str) {
    let mut seen = vec![false; TOTAL];
    let mut count = 0usize;
    let mut sum = 0u64;
    for got in &all {
        for &v in got {
            assert!(v < TOTAL, "{what}: value {v} was never sent");
            assert!(!seen[v], "{what}: value {v} received twice");
            seen[v] = true;
            count += 1;
            sum += v as u64;
        }
    }
    assert_eq!(count, TOTAL, "{what}: lost {} values", TOTAL - count);
    assert_eq!(sum, (TOTAL as u64) * (TOTAL as u64 - 1) / 2);
    assert!(seen.iter().all(|&s| s));
    for got in &all {
        check_per_sender_order(got, what);
    }
}

#[test]
fn many_to_many_async() {
    for cap in [0usize, 1, 64] {
        let all = run(async move {
            let c = chan::<usize>(cap);
            let senders: Vec<_> = (0..SENDERS)
                .map(|k| {
                    let tx = c.sender();
                    parkwatch::spawn(async move {
                        for v in values_of(k) {
                            tx.send(v).await.unwrap();
                        }
                    })
                })
                .collect();
            let receivers: Vec<_> = (0..RECEIVERS)
                .map(|_| {
                    let rx = c.receiver();
                    parkwatch::spawn(async move {
                        let mut got = Vec::new();
                        while let Some(v) = rx.recv().await {
                            got.push(v);
                        }
                        got
                    })
                })
                .collect();
            for s in senders {
                s.await.unwrap();
            }
            c.close().unwrap();
            let mut all = Vec::new();
            for r in receivers {
                all.push(r.await.unwrap());
            }
            all
        });
        check_exactly_once(all, &format!("cap {cap}"));
    }
}

#[test]
fn many_to_many_threads() {
    for cap in [0usize, 1, 64] {
        let c = chan::<usize>(cap);
        let senders: Vec<_> = (0..SENDERS)
            .map(|k| {
                let tx = c.sender();
                parkwatch::thread::spawn(move || {
                    for v in values_of(k) {
                        tx.send_blocking(v).unwrap();
                    }
                })
            })
            .collect();
        let receivers: Vec<_> = (0..RECEIVERS)
            .map(|_| {
                let rx = c.receiver();
                parkwatch::thread::spawn(move || {
                    let mut got = Vec::new();
                    while let Some(v) = rx.recv_blocking() {
                        got.push(v);
                    }
                    got
                })
            })
            .collect();
        for s in senders {
            s.join().unwrap();
        }
        c.close().unwrap();
        let all = receivers.into_iter().map(|r| r.join().unwrap()).collect();
        check_exactly_once(all, &format!("cap {cap}"));
    }
}

#[test]
fn many_to_many_mixed_threads_and_tasks() {
    for cap in [0usize, 1, 64] {
        let all = run(async move {
            let c = chan::<usize>(cap);
            let mut thread_senders = Vec::new();
            let mut task_senders = Vec::new();
            for k in 0..SENDERS {
                let tx = c.sender();
                if k % 2 == 0 {
                    thread_senders.push(parkwatch::thread::spawn(move || {
                        for v in values_of(k) {
                            tx.send_blocking(v).unwrap();
                        }
                    }));
                } else {
                    task_senders.push(parkwatch::spawn(async move {
                        for v in values_of(k) {
                            tx.send(v).await.unwrap();
                        }
                    }));
                }
            }
            let mut thread_receivers = Vec::new();
            let mut task_receivers = Vec::new();
            for j in 0..RECEIVERS {
                let rx = c.receiver();
                if j % 2 == 0 {
                    thread_receivers.push(parkwatch::thread::spawn(move || rx.iter().collect::<Vec<_>>()));
                } else {
                    task_receivers.push(parkwatch::spawn(async move {
                        let mut got = Vec::new();
                        while let Some(v) = rx.recv().await {
                            got.push(v);
                        }
                        got
                    }));
                }
            }
            for s in task_senders {
                s.await.unwrap();
            }
            // Join the sender threads from a thread that reports back on a
            // channel, so the main task parks on parkwatch while they finish.
            let done = chan::<()>(0);
            let done_tx = done.sender();
            parkwatch::thread::spawn(move || {
                for s in thread_senders {
                    s.join().unwrap();
                }
                done_tx.send_blocking(()).unwrap();
            });
            done.recv().await.unwrap();
            c.close().unwrap();
            let mut all = Vec::new();
            for r in task_receivers {
                all.push(r.await.unwrap());
            }
            let res = chan::<Vec<Vec<usize>>>(1);
            let res_tx = res.sender();
            parkwatch::thread::spawn(move || {
                let v = thread_receivers.into_iter().map(|r| r.join().unwrap()).collect();
                res_tx.send_blocking(v).unwrap();
            });
            all.extend(res.recv().await.unwrap());
            all
        });
        check_exactly_once(all, &format!("cap {cap}"));
    }
}

// ---------------------------------------------------------------------------
// Zero-sized values
// ---------------------------------------------------------------------------

#[test]
fn zero_sized_values() {
    run(async {
        for cap in [0usize, 1, 7] {
            let c = chan::<()>(cap);
            let tx = c.sender();
            let h = parkwatch::spawn(async move {
                for _ in 0..1_000 {
                    tx.send(()).await.unwrap();
                }
                tx.close().unwrap();
            });
            let mut n = 0;
            while let Some(()) = c.recv().await {
                n += 1;
            }
            h.await.unwrap();
            assert_eq!(n, 1_000, "cap {cap}");
        }
        let c = chan::<()>(3);
        for i in 0..3 {
            c.try_send(()).unwrap();
            assert_eq!(c.len(), i + 1);
        }
        assert!(matches!(c.try_send(()), Err(TrySendError::Full(()))));
        c.close().unwrap();
        assert_eq!(c.len(), 3);
        for _ in 0..3 {
            assert_eq!(c.try_recv(), Ok(()));
        }
        assert_eq!(c.try_recv(), Err(TryRecvError::Closed));
    });
}

// ---------------------------------------------------------------------------
// Handles
// ---------------------------------------------------------------------------

#[test]
fn dropping_handles_does_not_close() {
    let c = chan::<i32>(2);
    let tx = c.sender();
    let rx = c.receiver();
    tx.try_send(1).unwrap();
    drop(tx);
    drop(c);
    // Every sending handle is gone: the channel is still open, not closed.
    assert!(!rx.is_closed());
    assert_eq!(rx.try_recv(), Ok(1));
    assert_eq!(rx.try_recv(), Err(TryRecvError::Empty));

    let c = chan::<i32>(2);
    let tx = c.sender();
    drop(c.receiver());
    drop(c);
    // Every receiving handle is gone: sends still succeed into the buffer.
    assert!(!tx.is_closed());
    tx.try_send(5).unwrap();
    assert_eq!(tx.len(), 1);
}

#[test]
fn receive_with_all_senders_dropped_blocks_forever() {
    // Unlike std/tokio channels, a receive never returns None just because
    // the senders are gone: here that is a deadlock, not a `None`.
    let rt = parkwatch::Runtime::new().unwrap();
    let res = rt.block_on(async {
        let c = chan::<i32>(0);
        let rx = c.receiver();
        let tx = c.sender();
        drop(c);
        drop(tx);
        rx.recv().await
    });
    match res {
        Err(d) => assert!(d.is_global()),
        Ok(v) => panic!("receive completed with {v:?} after senders were dropped"),
    }
}

#[test]
fn clones_are_the_same_channel() {
    let c = chan::<i32>(4);
    let c2 = c.clone();
    let tx = c2.sender().clone();
    let rx = c.receiver().clone();
    tx.try_send(1).unwrap();
    c2.try_send(2).unwrap();
    assert_eq!(c.len(), 2);
    assert_eq!(rx.try_recv(), Ok(1));
    assert_eq!(c2.try_recv(), Ok(2));
    c.close().unwrap();
    assert!(c2.is_closed() && tx.is_closed() && rx.is_closed());
}

// ---------------------------------------------------------------------------
// iter()
// ---------------------------------------------------------------------------

#[test]
fn iter_ends_on_close() {
    for cap in [0usize, 3] {
        let got = run(async move {
            let c = chan::<u32>(cap);
            let rx = c.receiver();
            let t = parkwatch::thread::spawn(move || rx.iter().collect::<Vec<_>>());
            for i in 0..100 {
                c.send(i).await.unwrap();
            }
            c.close().unwrap();
            let res = chan::<Vec<u32>>(1);
            let res_tx = res.sender();
            parkwatch::thread::spawn(move || res_tx.send_blocking(t.join().unwrap()).unwrap());
            res.recv().await.unwrap()
        });
        assert_sequence(&got, 100, &format!("cap {cap}"));
    }
    // On an already closed channel, iter() drains the buffer and ends.
    let c = chan::<i32>(5);
    for i in 0..5 {
        c.try_send(i).unwrap();
    }
    c.close().unwrap();
    assert_eq!(c.iter().collect::<Vec<_>>(), vec![0, 1, 2, 3, 4]);
    assert_eq!(c.receiver().iter().count(), 0);
}

// ---------------------------------------------------------------------------
// Cancelling a receive never loses a value
// ---------------------------------------------------------------------------

#[test]
fn cancelled_recv_after_one_poll_keeps_value() {
    // The receive parks; a sender hands it the value (and completes, as the
    // rendezvous happened); the receive future is then dropped before it is
    // polled again. The value must not be lost: the next receive gets it.
    run(async {
        for cap in [0usize, 1] {
            let c = chan::<String>(cap);
            let mut f = Box::pin(c.recv());
            assert!(futures::poll!(f.as_mut()).is_pending());
            let tx = c.sender();
            let h = parkwatch::spawn(async move { tx.send("precious".to_string()).await });
            h.await.unwrap().unwrap();
            drop(f);
            assert_eq!(c.recv().await.as_deref(), Some("precious"), "cap {cap}");
            assert_eq!(c.try_recv(), Err(TryRecvError::Empty));
        }
    });
}

#[test]
fn cancelled_recv_by_timeout_then_parked_sender_value_receivable() {
    run(async {
        let c = chan::<i32>(0);
        // A receive that times out (is cancelled) with nobody sending.
        let r = tokio::time::timeout(Duration::from_millis(20), c.recv()).await;
        assert!(r.is_err());
        // Now a sender parks on the unbuffered channel.
        let tx = c.sender();
        let h = parkwatch::spawn(async move { tx.send(11).await });
        wait_parked(h.id(), "chan send").await;
        // A receive polled once and dropped with the sender parked: it either
        // completed at once (and we get the value) or left the value alone.
        let mut got = Vec::new();
        {
            let mut f = Box::pin(c.recv());
            if let Poll::Ready(v) = futures::poll!(f.as_mut()) {
                got.push(v.unwrap());
            }
        }
        if got.is_empty() {
            let r = tokio::time::timeout(Duration::from_secs(5), c.recv()).await;
            got.push(r.expect("value lost by a cancelled receive").unwrap());
        }
        assert_eq!(got, vec![11]);
        h.await.unwrap().unwrap();
        // Nothing extra left behind.
        assert_eq!(c.try_recv(), Err(TryRecvError::Empty));
    });
}

#[test]
fn cancelled_recv_with_several_parked_receivers_passes_value_on() {
    // A receive that was handed a value and then cancelled gives it to the
    // next parked receiver.
    run(async {
        let c = chan::<i32>(0);
        let mut f = Box::pin(c.recv());
        assert!(futures::poll!(f.as_mut()).is_pending());
        let rx = c.receiver();
        let other = parkwatch::spawn(async move { rx.recv().await });
        wait_parked(other.id(), "chan receive").await;
        // `f` parked first, so the send goes to it.
        c.try_send(3).unwrap();
        drop(f);
        assert_eq!(other.await.unwrap(), Some(3));
    });
}

#[test]
fn cancellation_stress_never_loses_or_duplicates() {
    // A sender streams values over an unbuffered channel from another
    // worker; the receiver keeps cancelling receives right after their first
    // poll (and after a yield), racing the sender's hand-off.
    const N: u32 = 3_000;
    for thread_sender in [false, true] {
        let got = run(async move {
            let c = chan::<u32>(0);
            let tx = c.sender();
            let thread_handle = if thread_sender {
                Some(parkwatch::thread::spawn(move || {
                    for i in 0..N {
                        tx.send_blocking(i).unwrap();
                    }
                    tx.close().unwrap();
                }))
            } else {
                parkwatch::spawn(async move {
                    for i in 0..N {
                        tx.send(i).await.unwrap();
                    }
                    tx.close().unwrap();
                });
                None
            };
            let mut got = Vec::new();
            let mut k = 0u32;
            loop {
                k = k.wrapping_add(1);
                let v = match k % 3 {
                    0 => match tokio::time::timeout(Duration::ZERO, c.recv()).await {
                        Ok(v) => v,
                        Err(_) => continue,
                    },
                    1 => {
                        let mut f = Box::pin(c.recv());
                        match futures::poll!(f.as_mut()) {
                            Poll::Ready(v) => v,
                            Poll::Pending => {
                                parkwatch::task::yield_now().await;
                                match futures::poll!(f.as_mut()) {
                                    Poll::Ready(v) => v,
                                    Poll::Pending => continue,
                                }
                            }
                        }
                    }
                    _ => c.recv().await,
                };
                match v {
                    Some(v) => got.push(v),
                    None => break,
                }
            }
            drop(thread_handle);
            got
        });
        assert_sequence(&got, N, &format!("thread sender: {thread_sender}"));
    }
}

#[test]
fn fifo_one_sender_one_receiver_threads_stress() {
    // One sender thread, one receiver thread: the receiver must see 0, 1, 2, ...
    // exactly. A receive parking while the buffer gets filled is the race.
    const N: u32 = 50_000;
    for cap in [1usize, 2] {
        let c = chan::<u32>(cap);
        let tx = c.sender();
        let t = parkwatch::thread::spawn(move || {
            for i in 0..N {
                tx.send_blocking(i).unwrap();
            }
            tx.close().unwrap();
        });
        let got: Vec<u32> = c.iter().collect();
        t.join().unwrap();
        assert_sequence(&got, N, &format!("cap {cap}"));
    }
}

/// A waker that records whether it was woken.
struct Flag(AtomicBool);

impl std::task::Wake for Flag {
    fn wake(self: Arc<Self>) {
        self.0.store(true, Ordering::SeqCst);
    }
}

/// A parked receive polled again from another context (as a combinator
/// polling it with its own waker would) wakes that context when a sender
/// completes it, and not the one it parked from.
#[test]
fn parked_receive_polled_from_a_new_context_wakes_that_context() {
    use std::future::Future;
    use std::task::{Context, Waker};
    let c = chan::<i32>(0);
    let mut fut = Box::pin(c.recv());
    let (a, b) = (Arc::new(Flag(AtomicBool::new(false))), Arc::new(Flag(AtomicBool::new(false))));
    let (wa, wb) = (Waker::from(a.clone()), Waker::from(b.clone()));
    assert!(fut.as_mut().poll(&mut Context::from_waker(&wa)).is_pending());
    assert!(fut.as_mut().poll(&mut Context::from_waker(&wb)).is_pending());
    assert!(fut.as_mut().poll(&mut Context::from_waker(&wb)).is_pending(), "same context: stays parked");
    let tx = c.sender();
    // The receive is parked, so the send completes at once, from another thread.
    std::thread::spawn(move || tx.send_blocking(7).unwrap()).join().unwrap();
    assert!(b.0.load(Ordering::SeqCst), "the context it was last polled from is woken");
    assert!(!a.0.load(Ordering::SeqCst), "the context it left is not");
    assert_eq!(fut.as_mut().poll(&mut Context::from_waker(&wb)), Poll::Ready(Some(7)));
}

/// Waits (bounded) until task `id` is parked in a wait other than `not_seq`
/// (`park_seq`), and returns that wait as the snapshot shows it.
async fn next_wait(id: TaskId, not_seq: u64) -> parkwatch::TaskInfo {
    for _ in 0..5_000 {
        if let Some(t) = snapshot().task(id) {
            if t.state == TaskState::Parked && t.park_seq != not_seq {
                return t.clone();
            }
        }
        parkwatch::time::sleep(Duration::from_millis(1)).await;
    }
    panic!("task {id} never parked in a new wait");
}

/// A task parking on one channel again and again has its wait record
/// updated in place (`wait::note_one`): each wait still shows its own
/// operation, source line and number, on the same resource.
#[test]
fn waits_on_one_channel_each_show_their_own_operation_and_line() {
    run(async {
        let c = chan::<u32>(0);
        let ch = c.clone();
        let lines = Arc::new(std::sync::Mutex::new(Vec::new()));
        let l = lines.clone();
        let h = parkwatch::spawn(async move {
            let mut got = Vec::new();
            l.lock().unwrap().push(line!() + 1);
            got.push(ch.recv().await.unwrap());
            l.lock().unwrap().push(line!() + 1);
            ch.send(10).await.unwrap();
            l.lock().unwrap().push(line!() + 1);
            got.push(ch.recv().await.unwrap());
            got
        });
        let first = next_wait(h.id(), 0).await;
        c.send(1).await.unwrap();
        let second = next_wait(h.id(), first.park_seq).await;
        assert_eq!(c.recv().await, Some(10));
        let third = next_wait(h.id(), second.park_seq).await;
        c.send(2).await.unwrap();
        assert_eq!(h.await.unwrap(), vec![1, 2]);

        let lines = lines.lock().unwrap().clone();
        let expected = [
            (parkwatch::WaitReason::ChanReceive, lines[0]),
            (parkwatch::WaitReason::ChanSend, lines[1]),
            (parkwatch::WaitReason::ChanReceive, lines[2]),
        ];
        for (i, (t, (reason, line))) in [&first, &second, &third].into_iter().zip(expected).enumerate() {
            assert_eq!(t.wait_reason, Some(reason), "wait {i}: reason");
            assert_eq!(
                t.waits_on,
                vec![parkwatch::WaitOn { resource: parkwatch::ResourceId(c.id()), op: reason }],
                "wait {i}: what it waits on"
            );
            let at = t.parked_at.as_ref().expect("a parked task has a site");
            assert_eq!((at.file.as_ref(), at.line), (file!(), line), "wait {i}: the operation's line");
        }
        assert!(first.park_seq < second.park_seq && second.park_seq < third.park_seq, "each wait is numbered anew");
    });
}
