//! A small suite for Miri over parkwatch's unsafe code, through the public API
//! only: the task wakers (`task::waker`: raw-waker vtables over the task's
//! record — cloned inside and outside parkwatch, woken by value and by
//! reference, from other threads, dropped), the data cells and guards of
//! `sync::Mutex`/`RwMutex` (across tasks, threads and cancelled
//! acquisitions), and the channels and primitives built on the waiter.
//!
//! Two groups, run by `.ci/miri` with different Miri flags:
//! - most tests run parkwatch tasks on a plain tokio runtime (`parkwatch::spawn`
//!   needs only a tokio context): no background thread outlives them and no
//!   host clock is read, so Miri runs them isolated and with its leak check
//!   on — a waker or task record whose reference count is off is reported;
//! - `runtime_*` tests use a `parkwatch::Runtime` (main-task harness, deadlock
//!   detection, snapshots): its detector thread runs for the life of the
//!   process and snapshots read the wall clock, so they need
//!   `-Zmiri-ignore-leaks -Zmiri-disable-isolation`;
//! - `leaked_*` tests leak a parked future on purpose (`mem::forget`) to
//!   check that its cases, whose slots the channel's queue points into, are
//!   taken back safely when they drop: they need `-Zmiri-ignore-leaks`.
//!
//! The suite is small (Miri runs it about a thousand times slower than
//! native) and also runs in the ordinary `cargo test` (not under loom).
#![cfg(not(loom))]

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use parkwatch::sync::{Cond, Mutex, Once, RwMutex, WaitGroup};
use parkwatch::{chan, SnapshotOptions, TaskState, TryRecvError};

/// A plain tokio runtime with two workers (Miri runs threads one at a time;
/// two workers still hand tasks and wakers between threads). Its workers are
/// joined when it drops.
fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).build().expect("runtime")
}

/// A future that exercises every way of using a waker a foreign future may
/// have: clones (the "outside" vtable), `wake_by_ref`, `wake` by value, a
/// wake from another OS thread, `will_wake`, and a stored waker dropped
/// later. Each step returns `Pending` after arranging its own wake-up.
struct WakerGames {
    step: usize,
    stored: Option<Waker>,
}

impl Future for WakerGames {
    type Output = usize;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<usize> {
        self.step += 1;
        match self.step {
            1 => {
                // Clone, clone the clone, wake one by reference, the other by value.
                let a = cx.waker().clone();
                let b = a.clone();
                let _ = a.will_wake(cx.waker());
                a.wake_by_ref();
                drop(a);
                b.wake();
                Poll::Pending
            }
            2 => {
                // Woken from another OS thread, by value.
                let w = cx.waker().clone();
                std::thread::spawn(move || w.wake()).join().unwrap();
                Poll::Pending
            }
            3 => {
                // Woken from another thread by reference; the clone is kept
                // and dropped on a later poll (an outside clone outliving the wake).
                let w = cx.waker().clone();
                let w2 = w.clone();
                std::thread::spawn(move || w2.wake_by_ref()).join().unwrap();
                self.stored = Some(w);
                Poll::Pending
            }
            4 => {
                self.stored = None;
                cx.waker().wake_by_ref();
                Poll::Pending
            }
            n => Poll::Ready(n),
        }
    }
}

#[test]
fn waker_paths_through_tasks() {
    let n = rt().block_on(async {
        // On the runtime's main future (tokio's waker: the fallback
        // paths), and on parkwatch tasks (parkwatch's wakers), several at once.
        let here = WakerGames { step: 0, stored: None }.await;
        let hs: Vec<_> = (0..3).map(|_| parkwatch::spawn(WakerGames { step: 0, stored: None })).collect();
        let mut total = here;
        for h in hs {
            total += h.await.unwrap();
        }
        total
    });
    assert_eq!(n, 4 * 5);
}

/// Wakers that outlive their task (an outside clone and a parkwatch-internal
/// one, kept by a channel the task parked on): woken, cloned and dropped after
/// the task finished, and after its runtime is gone.
#[test]
fn wakers_outlive_their_task() {
    let rt = rt();
    let (outside, c) = rt.block_on(async {
        let c = chan::<u32>(0);
        let rx = c.clone();
        let h = parkwatch::spawn(async move {
            let w = std::future::poll_fn(|cx| Poll::Ready(cx.waker().clone())).await;
            // Parks on the channel (its waiter keeps an internal clone), then
            // is cancelled by the select's default after a value arrived or not.
            let _ = parkwatch::select! {
                recv(rx) -> v => v,
                default => None,
            };
            w
        });
        (h.await.unwrap(), c)
    });
    outside.wake_by_ref();
    let again = outside.clone();
    again.wake();
    drop(rt);
    outside.wake_by_ref();
    let last = outside.clone();
    drop(outside);
    last.wake();
    drop(c);
}

#[test]
fn wakers_of_parked_tasks_and_joins() {
    rt().block_on(async {
        // A task parked on a channel (internal waker clone), woken by another
        // task; a third parked in a join (joiner waker) meanwhile.
        let c = chan::<u32>(0);
        let rx = c.receiver();
        let consumer = parkwatch::spawn(async move {
            let mut sum = 0;
            while let Some(v) = rx.recv().await {
                sum += v;
            }
            sum
        });
        let tx = c.sender();
        let producer = parkwatch::spawn(async move {
            for v in 1..=4 {
                tx.send(v).await.unwrap();
            }
            tx.close().unwrap();
        });
        drop(c);
        let joiner = parkwatch::spawn(async move { consumer.await.unwrap() });
        producer.await.unwrap();
        assert_eq!(joiner.await.unwrap(), 10);
    });
}

/// On a parkwatch runtime: the main task's harness, a task seen parked in a
/// snapshot and woken, a task parked in a join.
#[test]
fn runtime_parked_task_seen_and_woken() {
    let rt = parkwatch::Runtime::builder().worker_threads(2).build().expect("runtime");
    rt.block_on(async {
        let here = WakerGames { step: 0, stored: None }.await;
        assert_eq!(here, 5);
        let c = chan::<u32>(0);
        let rx = c.clone();
        let h = parkwatch::spawn(async move { rx.recv().await });
        loop {
            let s = parkwatch::snapshot_with(&SnapshotOptions { runtime: None, skip_stacks: true });
            if s.tasks().iter().any(|t| t.id == h.id() && t.state == TaskState::Parked) {
                break;
            }
            parkwatch::task::yield_now().await;
        }
        c.send(9).await.unwrap();
        assert_eq!(h.await.unwrap(), Some(9));
        let m = Arc::new(Mutex::new(0u32));
        let g = m.lock().await;
        let m2 = m.clone();
        let locker = parkwatch::spawn(async move { *m2.lock().await += 1 });
        let joiner = parkwatch::spawn(async move { locker.await.unwrap() });
        parkwatch::task::yield_now().await;
        drop(g);
        joiner.await.unwrap();
        assert_eq!(*m.lock().await, 1);
    })
    .unwrap();
}

#[test]
fn aborted_and_dropped_tasks_release_their_wakers() {
    let rt = rt();
    rt.block_on(async {
        let c = chan::<u32>(0);
        let rx = c.clone();
        let h = parkwatch::spawn(async move { rx.recv().await });
        parkwatch::task::yield_now().await;
        h.abort();
        assert!(h.await.unwrap_err().is_cancelled());
        // A detached task still parked when the runtime drops.
        let rx = c.clone();
        drop(parkwatch::spawn(async move { rx.recv().await }));
        parkwatch::task::yield_now().await;
    });
    drop(rt);
}

#[test]
fn mutex_guards_across_tasks_and_threads() {
    let m = Arc::new(Mutex::new(Vec::<u32>::new()));
    rt().block_on({
        let m = m.clone();
        async move {
            let hs: Vec<_> = (0..3)
                .map(|i| {
                    let m = m.clone();
                    parkwatch::spawn(async move {
                        let mut g = m.lock().await;
                        // Held across an await: the guard moves with the task.
                        parkwatch::task::yield_now().await;
                        g.push(i);
                    })
                })
                .collect();
            let t = {
                let m = m.clone();
                parkwatch::thread::spawn(move || {
                    m.lock_blocking().push(10);
                    if let Some(mut g) = m.try_lock() {
                        g.push(11);
                    }
                })
            };
            for h in hs {
                h.await.unwrap();
            }
            t.join().unwrap();
            // A lock future dropped while parked (its acquisition cancelled),
            // and one dropped after it was granted (the grant handed back).
            let g = m.lock().await;
            {
                let mut fut = Box::pin(m.lock());
                assert!(futures::poll!(fut.as_mut()).is_pending());
            }
            let m2 = m.clone();
            let granted = parkwatch::spawn(async move {
                let mut fut = Box::pin(m2.lock());
                // Pending if polled before the unlock below.
                if futures::poll!(fut.as_mut()).is_pending() {
                    parkwatch::task::yield_now().await;
                }
                // Maybe granted by now: dropping hands the lock on.
            });
            parkwatch::task::yield_now().await;
            drop(g);
            granted.await.unwrap();
            let mut g = m.lock().await;
            g.sort_unstable();
            assert_eq!(g[..4], [0, 1, 2, 10]);
        }
    });
    let mut m = Arc::try_unwrap(m).expect("tasks are done");
    let before = m.get_mut().len();
    m.get_mut().push(12);
    assert_eq!(m.into_inner().len(), before + 1);
}

#[test]
fn rwmutex_guards_across_tasks_and_threads() {
    rt().block_on(async {
        let l = Arc::new(RwMutex::new(String::from("a")));
        {
            // Two read guards at once, one shared with other threads.
            let r1 = l.read().await;
            let r2 = l.read_blocking();
            std::thread::scope(|s| {
                s.spawn(|| assert_eq!(r1.len(), 1));
                s.spawn(|| assert_eq!(&*r2, "a"));
            });
            assert!(l.try_write().is_none());
        }
        let hs: Vec<_> = (0..2)
            .map(|i| {
                let l = l.clone();
                parkwatch::spawn(async move {
                    if i == 0 {
                        l.write().await.push('b');
                    } else {
                        let g = l.read().await;
                        assert!(g.starts_with('a'));
                    }
                })
            })
            .collect();
        let t = {
            let l = l.clone();
            parkwatch::thread::spawn(move || l.write_blocking().push('c'))
        };
        for h in hs {
            h.await.unwrap();
        }
        t.join().unwrap();
        // A write acquisition cancelled while parked behind a reader.
        let r = l.read().await;
        {
            let mut fut = Box::pin(l.write());
            assert!(futures::poll!(fut.as_mut()).is_pending());
        }
        drop(r);
        let mut w = l.try_write().expect("free");
        w.push('d');
        drop(w);
        let mut got: Vec<char> = l.read().await.chars().collect();
        got.sort_unstable();
        assert_eq!(got, ['a', 'b', 'c', 'd']);
    });
}

#[test]
fn waitgroup_cond_once() {
    rt().block_on(async {
        let wg = WaitGroup::new();
        let state = Arc::new((Mutex::new(0u32), Cond::new()));
        let once = Arc::new(Once::new());
        for _ in 0..2 {
            wg.add(1);
            let (wg, state, once) = (wg.clone(), state.clone(), once.clone());
            parkwatch::spawn(async move {
                once.call_once(|| ());
                *state.0.lock().await += 1;
                state.1.broadcast();
                wg.done();
            });
        }
        let t = {
            let state = state.clone();
            parkwatch::thread::spawn(move || {
                let mut g = state.0.lock_blocking();
                while *g < 2 {
                    g = state.1.wait_blocking(g);
                }
            })
        };
        let mut g = state.0.lock().await;
        while *g < 2 {
            g = state.1.wait(g).await;
        }
        drop(g);
        wg.wait().await;
        t.join().unwrap();
        assert!(once.is_completed());
    });
}

#[test]
fn channels_and_select_across_tasks_and_threads() {
    rt().block_on(async {
        let a = chan::<Box<u32>>(1);
        let b = chan::<Box<u32>>(0);
        let t = {
            let (a, b) = (a.clone(), b.clone());
            parkwatch::thread::spawn(move || {
                a.send_blocking(Box::new(1)).unwrap();
                b.send_blocking(Box::new(2)).unwrap();
                let v = parkwatch::select_blocking! {
                    recv(&a) -> v => v,
                    recv(&b) -> v => v,
                };
                assert_eq!(v.as_deref(), Some(&3));
            })
        };
        let mut got = 0;
        for _ in 0..2 {
            got += parkwatch::select! {
                recv(a) -> v => *v.unwrap(),
                recv(b) -> v => *v.unwrap(),
            };
        }
        assert_eq!(got, 3);
        b.send(Box::new(3)).await.unwrap();
        t.join().unwrap();
        // Values left in a buffer are dropped with the channel; a value in a
        // cancelled send is handed back.
        a.try_send(Box::new(4)).unwrap();
        {
            let mut fut = Box::pin(a.send(Box::new(5)));
            assert!(futures::poll!(fut.as_mut()).is_pending());
        }
        let mut sel = parkwatch::Select::new();
        sel.recv(&a);
        let chosen = sel.select().await;
        assert_eq!(chosen.recv::<Box<u32>>().as_deref(), Some(&4));
        a.close().unwrap();
        assert_eq!(a.try_recv(), Err(TryRecvError::Closed));
        let c = chan::<Box<u32>>(2);
        c.try_send(Box::new(6)).unwrap();
        drop(c);
    });
}

/// The buffer's ring (`chan::ring`) between two threads: boxed values pushed
/// and popped without the lock, the slow mode of a sender parked on the
/// full buffer and of a receiver parked on the empty one, a close with
/// values left, and the ring dropped with them (Miri's leak check sees a
/// box the ring forgets; its borrow checks see a slot read before it was
/// written).
#[test]
fn buffered_ring_between_threads() {
    let c = chan::<Box<u32>>(2);
    let tx = c.sender();
    let t = std::thread::spawn(move || {
        for i in 0..12 {
            tx.send_blocking(Box::new(i)).unwrap();
        }
        tx.close().unwrap();
    });
    let mut got = Vec::new();
    while let Some(v) = c.recv_blocking() {
        got.push(*v);
    }
    t.join().unwrap();
    assert_eq!(got, (0..12).collect::<Vec<_>>(), "FIFO, nothing lost or doubled");
    let c = chan::<Box<u32>>(3);
    c.try_send(Box::new(1)).unwrap();
    c.try_send(Box::new(2)).unwrap();
    c.close().unwrap();
    assert_eq!(c.try_recv().map(|b| *b), Ok(1), "buffered values outlive the close");
    drop(c);
}

/// A select leaked while parked: its boxed case is still enqueued when a
/// sender on another thread hands it a value (writing into the case's slot)
/// and when the `Select` drops (the case takes its entry back, waits out the
/// sender and puts the value back into the channel).
#[test]
fn leaked_select_future_case_dropped_while_a_sender_fills_it() {
    let cx = &mut Context::from_waker(Waker::noop());
    let c = chan::<Box<u32>>(0);
    let mut sel = parkwatch::Select::new();
    sel.recv(&c);
    let mut fut = Box::pin(sel.select());
    assert!(fut.as_mut().poll(cx).is_pending());
    std::mem::forget(fut);
    let tx = c.sender();
    let t = std::thread::spawn(move || tx.try_send(Box::new(7)).is_ok());
    drop(sel);
    let handed = t.join().unwrap();
    // Either the sender found the case still enqueued (and the value came
    // back to the channel) or it did not (and the send found nobody).
    assert_eq!(c.try_recv().ok().map(|b| *b), handed.then_some(7));
}
