//! loom models of the channel core through the public blocking API.
//!
//! Every model runs OS threads spawned with `loom::thread::spawn` (loom's
//! threads, so that the waiter's park/unpark is modeled) and uses only the
//! public API: `send_blocking`, `recv_blocking`, `try_send`, `try_recv`,
//! `close`, `select_blocking!` and `Select`.
//!
//! ```text
//! RUSTFLAGS="--cfg loom" cargo test --release --test loom_chan --target-dir target/loom
//! ```
//!
//! Preemption bounds: [`BOUND`] for the plain models, [`SELECT_BOUND`] for the
//! select ones; `LOOM_MAX_PREEMPTIONS=N` overrides both (N=4: about 3–4
//! minutes on 2 cores). To print the trace of a failing model, run it alone
//! with `LOOM_LOG=trace LOOM_LOCATION=1 ... -- --exact NAME --nocapture`.
//!
//! Each model prints (with `--nocapture`) how many executions it explored.
#![cfg(loom)]

use loom::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use loom::sync::Arc;
use loom::thread;
use parkwatch::{chan, CloseError, SendError, TryRecvError, TrySendError};

mod loom_model;
use loom_model::model;

/// Preemption bound of the models without a select (each explores in well
/// under a second at this bound).
const BOUND: usize = 4;
/// Preemption bound of the select models (about 5–10 s each at 3; about a
/// minute each at 4).
const SELECT_BOUND: usize = 3;

/// Model 1: Unbuffered rendezvous: the value is delivered exactly once, and the send
/// returns only once a receive has taken it (never into a "buffer").
#[test]
fn unbuffered_rendezvous() {
    model(BOUND, || {
        let c = chan::<u32>(0);
        let sent = Arc::new(AtomicBool::new(false));
        let h = {
            let (c, sent) = (c.clone(), sent.clone());
            thread::spawn(move || {
                c.send_blocking(7).unwrap();
                sent.store(true, Ordering::Release);
                // Handed over: nothing of it is left in the channel.
                assert_eq!(c.len(), 0);
                assert_eq!(c.try_recv(), Err(TryRecvError::Empty));
            })
        };
        // No receive has started yet, so the send cannot have completed.
        assert!(!sent.load(Ordering::Acquire), "unbuffered send returned before any receive");
        assert_eq!(c.recv_blocking(), Some(7));
        h.join().unwrap();
        assert!(sent.load(Ordering::Acquire));
        assert_eq!(c.try_recv(), Err(TryRecvError::Empty));
    });
}

/// Model 2: Buffered(1): two sends, two receives on two threads, in FIFO order; the
/// buffer never holds more than its capacity. (Needs 3 preemptions to reach
/// the interleaving where a receiver registers behind a buffered value.)
#[test]
fn buffered_one_fifo() {
    model(BOUND, || {
        let c = chan::<u32>(1);
        let h = {
            let c = c.clone();
            thread::spawn(move || {
                c.send_blocking(1).unwrap();
                assert!(c.len() <= 1);
                c.send_blocking(2).unwrap();
                assert!(c.len() <= 1);
            })
        };
        let a = c.recv_blocking();
        assert!(c.len() <= 1);
        let b = c.recv_blocking();
        assert_eq!((a, b), (Some(1), Some(2)));
        h.join().unwrap();
        assert_eq!(c.try_recv(), Err(TryRecvError::Empty));
    });
}

/// Model 3: close vs a (possibly) parked receiver: the receive returns `None`;
/// closing twice fails; the closed channel stays ready.
#[test]
fn close_wakes_parked_receiver() {
    model(BOUND, || {
        let c = chan::<u32>(0);
        let h = {
            let c = c.clone();
            thread::spawn(move || c.recv_blocking())
        };
        assert_eq!(c.close(), Ok(()));
        assert_eq!(c.close(), Err(CloseError::AlreadyClosed));
        assert_eq!(h.join().unwrap(), None);
        assert_eq!(c.try_recv(), Err(TryRecvError::Closed));
        assert_eq!(c.recv_blocking(), None);
        assert_eq!(c.send_blocking(5), Err(SendError(5)));
    });
}

/// Model 3b: The same for a buffered channel that holds a value: the receiver gets
/// the value if it comes before or after close (close drains nothing), then `None`.
#[test]
fn close_drains_buffer_first() {
    model(BOUND, || {
        let c = chan::<u32>(1);
        c.try_send(9).unwrap();
        let h = {
            let c = c.clone();
            thread::spawn(move || (c.recv_blocking(), c.recv_blocking()))
        };
        assert_eq!(c.close(), Ok(()));
        assert_eq!(h.join().unwrap(), (Some(9), None));
    });
}

/// Model 3c: A buffered send followed by close, racing a receiver that may be
/// registering: close must not complete the receive with "closed" while the
/// value sent before it is still buffered (Go: receives drain the buffer
/// before they see the close).
#[test]
fn send_then_close_vs_receiver() {
    model(BOUND, || {
        let c = chan::<u32>(1);
        let s = {
            let c = c.clone();
            thread::spawn(move || {
                c.send_blocking(1).unwrap();
                c.close().unwrap();
            })
        };
        let first = c.recv_blocking();
        let second = c.recv_blocking();
        s.join().unwrap();
        assert_eq!((first, second), (Some(1), None), "a receive saw the close before the buffered value");
    });
}

/// Model 3d: One value, two receivers, then close: exactly one receiver gets the
/// value, the other sees the close.
#[test]
fn one_value_two_receivers_then_close() {
    model(BOUND - 1, || {
        let c = chan::<u32>(0);
        let spawn_recv = |c: &parkwatch::Chan<u32>| {
            let c = c.clone();
            thread::spawn(move || c.recv_blocking())
        };
        let (r1, r2) = (spawn_recv(&c), spawn_recv(&c));
        c.send_blocking(7).unwrap();
        c.close().unwrap();
        match (r1.join().unwrap(), r2.join().unwrap()) {
            (Some(7), None) | (None, Some(7)) => {}
            other => panic!("lost or duplicated: {other:?}"),
        }
    });
}

/// Model 4: An unbuffered send racing close, with a receiver: either the value was
/// delivered (send Ok, receiver got it) or the send failed with the same
/// value (and the receiver got `None`). Never lost, never both.
#[test]
fn close_vs_parked_sender() {
    model(BOUND, || {
        let c = chan::<u32>(0);
        let s = {
            let c = c.clone();
            thread::spawn(move || c.send_blocking(42))
        };
        let r = {
            let c = c.clone();
            thread::spawn(move || c.recv_blocking())
        };
        c.close().unwrap();
        let sent = s.join().unwrap();
        let got = r.join().unwrap();
        match (sent, got) {
            (Ok(()), Some(42)) => {}
            (Err(SendError(42)), None) => {}
            (sent, got) => panic!("lost or duplicated: send {sent:?}, recv {got:?}"),
        }
        assert_eq!(c.try_recv(), Err(TryRecvError::Closed));
    });
}

/// Model 4b: Without a receiver: the send must come back with its value.
#[test]
fn close_returns_value_to_parked_sender() {
    model(BOUND, || {
        let c = chan::<u32>(0);
        let s = {
            let c = c.clone();
            thread::spawn(move || c.send_blocking(42))
        };
        c.close().unwrap();
        assert_eq!(s.join().unwrap(), Err(SendError(42)));
        assert_eq!(c.try_recv(), Err(TryRecvError::Closed));
    });
}

// Select models. The engine tries cases in a random order; loom needs each
// execution to be replayable, so under `--cfg loom` that order must come from
// a deterministic source (see `src/select/rand.rs`). Each select model is then
// run with its cases in both orders, so that both try orders are explored.

/// Model 5: `select_blocking!` receiving from two channels, one sender on each: the
/// select takes exactly one value, and the other one is still there after it.
fn select_recv_two_senders(swap: bool) {
    model(SELECT_BOUND, move || {
        let a = chan::<u32>(0);
        let b = chan::<u32>(0);
        let ha = {
            let a = a.clone();
            thread::spawn(move || a.send_blocking(1).unwrap())
        };
        let hb = {
            let b = b.clone();
            thread::spawn(move || b.send_blocking(2).unwrap())
        };
        let (from_a, v) = if swap {
            parkwatch::select_blocking! {
                recv(&b) -> v => (false, v),
                recv(&a) -> v => (true, v),
            }
        } else {
            parkwatch::select_blocking! {
                recv(&a) -> v => (true, v),
                recv(&b) -> v => (false, v),
            }
        };
        // The value matches the case, and the other value is still receivable.
        if from_a {
            assert_eq!(v, Some(1));
            assert_eq!(b.recv_blocking(), Some(2));
        } else {
            assert_eq!(v, Some(2));
            assert_eq!(a.recv_blocking(), Some(1));
        }
        ha.join().unwrap();
        hb.join().unwrap();
        assert_eq!(a.try_recv(), Err(TryRecvError::Empty));
        assert_eq!(b.try_recv(), Err(TryRecvError::Empty));
    });
}

#[test]
fn select_recv_two_senders_ab() {
    select_recv_two_senders(false);
}

#[test]
fn select_recv_two_senders_ba() {
    select_recv_two_senders(true);
}

/// Model 5b: The same with the run-time `Select` over buffered channels, the values
/// arriving while the select may be parked: two selects in a row take both
/// values, one each, each from the case it reports.
fn dynamic_select_recv_two_senders(swap: bool) {
    model(SELECT_BOUND, move || {
        let a = chan::<u32>(1);
        let b = chan::<u32>(1);
        let ha = {
            let a = a.clone();
            thread::spawn(move || a.send_blocking(1).unwrap())
        };
        let hb = {
            let b = b.clone();
            thread::spawn(move || b.send_blocking(2).unwrap())
        };
        let mut got = Vec::new();
        for _ in 0..2 {
            let mut sel = parkwatch::Select::new();
            let (ia, ib) = if swap {
                let ib = sel.recv(&b);
                (sel.recv(&a), ib)
            } else {
                let ia = sel.recv(&a);
                (ia, sel.recv(&b))
            };
            let chosen = sel.select_blocking();
            let i = chosen.index();
            let v = chosen.recv::<u32>().expect("never closed");
            assert!(i == ia && v == 1 || i == ib && v == 2, "case {i} got {v}");
            got.push(v);
        }
        got.sort_unstable();
        assert_eq!(got, [1, 2], "a value was received twice");
        ha.join().unwrap();
        hb.join().unwrap();
        assert_eq!(a.try_recv(), Err(TryRecvError::Empty));
        assert_eq!(b.try_recv(), Err(TryRecvError::Empty));
    });
}

#[test]
fn dynamic_select_recv_two_senders_ab() {
    dynamic_select_recv_two_senders(false);
}

#[test]
fn dynamic_select_recv_two_senders_ba() {
    dynamic_select_recv_two_senders(true);
}

/// Model 6: A select with a send case (on `a`) and a receive case (on `b`), with a
/// counterpart parked or arriving on each channel: exactly one case completes.
/// The other counterpart is released afterwards by closing its channel, and
/// must then see "closed", not a completed operation.
fn select_send_and_recv_exactly_one(swap: bool) {
    model(SELECT_BOUND, move || {
        let a = chan::<u32>(0);
        let b = chan::<u32>(0);
        let rx = {
            let a = a.clone();
            thread::spawn(move || a.recv_blocking())
        };
        let tx = {
            let b = b.clone();
            thread::spawn(move || b.send_blocking(20))
        };
        let sent = if swap {
            parkwatch::select_blocking! {
                recv(&b) -> v => { assert_eq!(v, Some(20)); false },
                send(&a, 10) -> res => { res.unwrap(); true },
            }
        } else {
            parkwatch::select_blocking! {
                send(&a, 10) -> res => { res.unwrap(); true },
                recv(&b) -> v => { assert_eq!(v, Some(20)); false },
            }
        };
        a.close().unwrap();
        b.close().unwrap();
        let (got_a, sent_b) = (rx.join().unwrap(), tx.join().unwrap());
        if sent {
            assert_eq!(got_a, Some(10));
            assert_eq!(sent_b, Err(SendError(20)), "both cases completed");
        } else {
            assert_eq!(sent_b, Ok(()));
            assert_eq!(got_a, None, "both cases completed");
        }
    });
}

#[test]
fn select_send_and_recv_exactly_one_ab() {
    select_send_and_recv_exactly_one(false);
}

#[test]
fn select_send_and_recv_exactly_one_ba() {
    select_send_and_recv_exactly_one(true);
}

/// Model 6b: The same with `Select`, counting completions on the counterparts' side.
fn dynamic_select_send_and_recv_exactly_one(swap: bool) {
    model(SELECT_BOUND, move || {
        let a = chan::<u32>(0);
        let b = chan::<u32>(0);
        let completed = Arc::new(AtomicUsize::new(0));
        let rx = {
            let (a, completed) = (a.clone(), completed.clone());
            thread::spawn(move || {
                let v = a.recv_blocking();
                if v.is_some() {
                    completed.fetch_add(1, Ordering::Relaxed);
                }
                v
            })
        };
        let tx = {
            let (b, completed) = (b.clone(), completed.clone());
            thread::spawn(move || {
                let r = b.send_blocking(20);
                if r.is_ok() {
                    completed.fetch_add(1, Ordering::Relaxed);
                }
                r
            })
        };
        let mut sel = parkwatch::Select::new();
        let (is, ir) = if swap {
            let ir = sel.recv(&b);
            (sel.send(&a, 10u32), ir)
        } else {
            let is = sel.send(&a, 10u32);
            (is, sel.recv(&b))
        };
        let chosen = sel.select_blocking();
        let i = chosen.index();
        if i == is {
            chosen.send_result::<u32>().unwrap();
        } else {
            assert_eq!(i, ir);
            assert_eq!(chosen.recv::<u32>(), Some(20));
        }
        drop(sel);
        a.close().unwrap();
        b.close().unwrap();
        let got_a = rx.join().unwrap();
        let sent_b = tx.join().unwrap();
        assert_eq!(completed.load(Ordering::Relaxed), 1, "a: {got_a:?}, b: {sent_b:?}");
        if i == is {
            assert_eq!(got_a, Some(10));
        } else {
            assert_eq!(sent_b, Ok(()));
        }
    });
}

#[test]
fn dynamic_select_send_and_recv_exactly_one_ab() {
    dynamic_select_send_and_recv_exactly_one(false);
}

#[test]
fn dynamic_select_send_and_recv_exactly_one_ba() {
    dynamic_select_send_and_recv_exactly_one(true);
}

/// Model 7a: `try_send` on an unbuffered channel (retried) racing a blocking receive:
/// it succeeds only by handing the value to the parked receiver.
#[test]
fn try_send_vs_blocking_recv() {
    model(BOUND, || {
        let c = chan::<u32>(0);
        let r = {
            let c = c.clone();
            thread::spawn(move || c.recv_blocking())
        };
        let mut v = 3;
        loop {
            match c.try_send(v) {
                Ok(()) => break,
                Err(TrySendError::Full(back)) => {
                    v = back;
                    thread::yield_now();
                }
                Err(TrySendError::Closed(_)) => unreachable!("never closed"),
            }
        }
        assert_eq!(c.len(), 0, "an unbuffered try_send buffered its value");
        assert_eq!(r.join().unwrap(), Some(3));
    });
}

/// Model 7b: `try_recv` (retried) racing a blocking send on an unbuffered channel.
#[test]
fn try_recv_vs_blocking_send() {
    model(BOUND, || {
        let c = chan::<u32>(0);
        let s = {
            let c = c.clone();
            thread::spawn(move || c.send_blocking(4))
        };
        let v = loop {
            match c.try_recv() {
                Ok(v) => break v,
                Err(TryRecvError::Empty) => thread::yield_now(),
                Err(TryRecvError::Closed) => unreachable!("never closed"),
            }
        };
        assert_eq!(v, 4);
        assert_eq!(s.join().unwrap(), Ok(()));
        assert_eq!(c.try_recv(), Err(TryRecvError::Empty));
    });
}

/// Model 7c: Full buffer: a blocking send parks behind the buffered value; a
/// `try_recv` takes the buffered value (refilling from the parked sender), and
/// FIFO order holds. Meanwhile `try_send` from the receiving side sees Full.
#[test]
fn try_ops_vs_blocking_send_on_full_buffer() {
    model(BOUND, || {
        let c = chan::<u32>(1);
        c.try_send(1).unwrap();
        let s = {
            let c = c.clone();
            thread::spawn(move || c.send_blocking(2))
        };
        assert_eq!(c.try_send(9).map_err(|e| e.is_full()), Err(true));
        assert_eq!(c.try_recv(), Ok(1));
        assert_eq!(c.recv_blocking(), Some(2));
        assert_eq!(s.join().unwrap(), Ok(()));
        assert_eq!(c.try_recv(), Err(TryRecvError::Empty));
    });
}

/// Model 7d: `try_recv` racing a blocking receive for one value sent by a third
/// thread: exactly one of them gets it (the blocking one is released by close).
#[test]
fn try_recv_vs_blocking_recv_one_value() {
    model(BOUND, || {
        let c = chan::<u32>(1);
        let r = {
            let c = c.clone();
            thread::spawn(move || c.recv_blocking())
        };
        let s = {
            let c = c.clone();
            thread::spawn(move || c.send_blocking(5))
        };
        s.join().unwrap().unwrap();
        let mine = c.try_recv().ok();
        c.close().unwrap();
        let theirs = r.join().unwrap();
        match (mine, theirs) {
            (Some(5), None) | (None, Some(5)) => {}
            other => panic!("lost or duplicated: {other:?}"),
        }
    });
}

/// A waker for the async models: counts its wakes in a loom atomic.
struct CountingWaker(AtomicUsize);

impl std::task::Wake for CountingWaker {
    fn wake(self: std::sync::Arc<Self>) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
}

/// Model 8a: an async receive, parked with its waiter inside its pinned
/// future, is dropped while a sender on another thread claims it, hands it
/// the value and wakes it through the waker it took out of the waiter.
/// Whichever wins, the value is not lost (the send fails and returns it,
/// or the cancelled receive puts it back into the channel), the waker is
/// woken at most once, and the claimer never touches the waiter after it
/// published (loom's cell checks fail the model if it does).
#[test]
fn async_recv_dropped_while_a_sender_claims_it() {
    use std::future::Future;
    model(BOUND, || {
        let c = chan::<u32>(0);
        let counter = std::sync::Arc::new(CountingWaker(AtomicUsize::new(0)));
        let waker = std::task::Waker::from(counter.clone());
        let mut recv = Box::pin(c.recv());
        let polled = recv.as_mut().poll(&mut std::task::Context::from_waker(&waker));
        assert!(polled.is_pending(), "nothing was sent yet: the receive parks");
        let sender = {
            let c = c.clone();
            thread::spawn(move || c.try_send(7))
        };
        drop(recv);
        let sent = sender.join().unwrap();
        let woken = counter.0.load(Ordering::Relaxed);
        match sent {
            Ok(()) => {
                assert_eq!(c.try_recv(), Ok(7), "the cancelled receive gave the value back");
                assert!(woken <= 1, "woken {woken} times");
            }
            Err(TrySendError::Full(v)) => {
                assert_eq!(v, 7);
                assert_eq!(woken, 0, "nobody claimed the receive");
            }
            Err(e) => panic!("unexpected {e:?}"),
        }
        assert_eq!(c.try_recv(), Err(TryRecvError::Empty));
    });
}

/// Model 8b: an async send parked in its pinned future is completed by a
/// receiver on another thread while the sending side polls it again: the
/// poll either finds the hand-over done (`Ready`) or parks on, and then the
/// receiver's wake (through the waker it took out of the waiter) arrives.
#[test]
fn async_send_repolled_while_a_receiver_completes_it() {
    use std::future::Future;
    model(BOUND, || {
        let c = chan::<u32>(0);
        let counter = std::sync::Arc::new(CountingWaker(AtomicUsize::new(0)));
        let waker = std::task::Waker::from(counter.clone());
        let cx = &mut std::task::Context::from_waker(&waker);
        let mut send = Box::pin(c.send(9));
        assert!(send.as_mut().poll(cx).is_pending(), "nobody receives yet: the send parks");
        let receiver = {
            let c = c.clone();
            thread::spawn(move || c.recv_blocking())
        };
        let first = send.as_mut().poll(cx);
        let got = receiver.join().unwrap();
        assert_eq!(got, Some(9));
        // The receiver has returned: the hand-over is published, and the
        // wake it owed has been delivered.
        assert_eq!(counter.0.load(Ordering::Relaxed), 1, "exactly one wake");
        match first {
            std::task::Poll::Ready(r) => assert_eq!(r, Ok(())),
            std::task::Poll::Pending => assert_eq!(send.as_mut().poll(cx), std::task::Poll::Ready(Ok(()))),
        }
    });
}

/// Model 9a: a buffered send that needs no lock (the ring is in fast mode)
/// racing a receiver that parks on the empty buffer: the receiver sets the
/// ring's slow bit before it looks at the buffer, so either it sees the
/// value, or the send finds the bit and hands the value over under the lock.
/// A lost wake-up would leave the receiver parked forever, which loom
/// reports as a deadlock.
#[test]
fn send_without_lock_vs_parking_receiver() {
    model(BOUND, || {
        let c = chan::<u32>(1);
        let r = {
            let c = c.clone();
            thread::spawn(move || c.recv_blocking())
        };
        assert_eq!(c.try_send(5), Ok(()), "a buffer of one has room, or a receiver waits");
        assert_eq!(r.join().unwrap(), Some(5));
        assert_eq!(c.try_recv(), Err(TryRecvError::Empty));
    });
}

/// Model 9b: a buffered send that needs no lock racing `close`: close sets
/// the ring's slow bit before it marks the channel closed, so a send either
/// got into the ring before (its value is received after the close, as a
/// buffered value is) or fails with `Closed`, as it does whenever it began
/// after the channel was seen closed; after a receive saw the channel closed
/// and drained, nothing ever appears in it.
#[test]
fn send_without_lock_vs_close() {
    model(BOUND, || {
        let c = chan::<u32>(2);
        let s = {
            let c = c.clone();
            thread::spawn(move || {
                let was_closed = c.is_closed();
                let sent = c.try_send(1);
                if was_closed {
                    assert_eq!(sent, Err(TrySendError::Closed(1)), "a send that began after the close fails");
                }
                sent
            })
        };
        c.close().unwrap();
        let mut drained = Vec::new();
        loop {
            match c.try_recv() {
                Ok(v) => drained.push(v),
                Err(TryRecvError::Closed) => break,
                Err(TryRecvError::Empty) => panic!("a closed channel is never just empty"),
            }
        }
        let sent = s.join().unwrap();
        match sent {
            Ok(()) => assert_eq!(drained, [1], "a send that succeeded is received"),
            Err(TrySendError::Closed(1)) => assert!(drained.is_empty()),
            other => panic!("unexpected {other:?}"),
        }
        assert_eq!(c.try_recv(), Err(TryRecvError::Closed), "nothing appears after closed and drained");
    });
}

/// Model 9c: a buffered receive that needs no lock racing a sender that
/// parks on the full buffer: the sender sets the slow bit before it looks,
/// so either it sees the freed slot, or the receive comes to the lock and
/// moves the parked sender's value into the buffer (FIFO).
#[test]
fn recv_without_lock_vs_parking_sender() {
    model(BOUND, || {
        let c = chan::<u32>(1);
        c.try_send(1).unwrap();
        let s = {
            let c = c.clone();
            thread::spawn(move || c.send_blocking(2))
        };
        assert_eq!(c.try_recv(), Ok(1), "the buffered value comes first");
        assert_eq!(c.recv_blocking(), Some(2));
        assert_eq!(s.join().unwrap(), Ok(()));
        assert_eq!(c.try_recv(), Err(TryRecvError::Empty));
    });
}
