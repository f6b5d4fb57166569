//! The non-blocking path of a send or receive must not allocate, and nor
//! must a steady park.
//!
//! A counting global allocator tallies allocations made by the current thread
//! while a closure runs; channel operations that complete without parking
//! (buffered sends and receives, hand-offs, try_ ops, a ready select) must
//! make none, and a receive that parks and is completed again and again
//! must make none after its first park.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

struct Counting;

thread_local! {
    static ALLOCS: Cell<usize> = const { Cell::new(0) };
}

// SAFETY: forwards to the system allocator; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = ALLOCS.try_with(|c| c.set(c.get() + 1));
        // SAFETY: same contract as ours.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as ours.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocations_during(f: impl FnOnce()) -> usize {
    let before = ALLOCS.with(Cell::get);
    f();
    ALLOCS.with(Cell::get) - before
}

/// Polls a future once; it must complete without parking.
fn ready<F: Future>(f: F) -> F::Output {
    let mut f = pin!(f);
    match f.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(v) => v,
        Poll::Pending => panic!("expected the operation to complete without parking"),
    }
}

#[test]
fn buffered_send_and_recv_do_not_allocate() {
    let c = parkwatch::chan::<u64>(1024);
    // Warm-up: thread-locals (the select RNG) are created on first use.
    ready(c.send(0)).unwrap();
    ready(c.recv()).unwrap();
    let n = allocations_during(|| {
        for i in 0..1000 {
            ready(c.send(i)).unwrap();
        }
        for i in 0..1000 {
            assert_eq!(ready(c.recv()), Some(i));
        }
        for i in 0..1000 {
            c.try_send(i).unwrap();
            assert_eq!(c.try_recv(), Ok(i));
            c.send_blocking(i).unwrap();
            assert_eq!(c.recv_blocking(), Some(i));
        }
    });
    assert_eq!(n, 0, "the non-blocking path allocated {n} times");
}

#[test]
fn ready_select_does_not_allocate() {
    let a = parkwatch::chan::<u64>(16);
    let b = parkwatch::chan::<u64>(16);
    a.try_send(1).unwrap();
    let warm = parkwatch::select_blocking! { recv(a) -> v => v, recv(b) -> v => v };
    assert_eq!(warm, Some(1));
    let n = allocations_during(|| {
        for i in 0..1000 {
            if i % 2 == 0 {
                a.try_send(i).unwrap();
            } else {
                b.try_send(i).unwrap();
            }
            let got = parkwatch::select_blocking! {
                recv(a) -> v => v,
                recv(b) -> v => v,
                default => None,
            };
            assert_eq!(got, Some(i));
        }
    });
    assert_eq!(n, 0, "a ready select allocated {n} times");
}

#[test]
fn closed_channel_ops_do_not_allocate() {
    let c = parkwatch::chan::<String>(0);
    c.close().unwrap();
    let n = allocations_during(|| {
        for _ in 0..100 {
            assert_eq!(ready(c.recv()), None);
            assert!(c.try_recv().is_err());
        }
    });
    assert_eq!(n, 0);
}

#[test]
fn the_counter_sees_allocations() {
    // Guards the tests above against a counter that never counts.
    let n = allocations_during(|| {
        std::hint::black_box(Box::new(7u64));
    });
    assert_eq!(n, 1);
}

/// Parking allocates nothing in steady state: the queue entry's slot lives
/// in the parked future itself, and the waiter of a finished operation is
/// reused by the thread's next one.
#[test]
fn a_steady_park_does_not_allocate() {
    let c = parkwatch::chan::<u64>(0);
    let round = |i: u64| {
        let mut recv = pin!(c.recv());
        let cx = &mut Context::from_waker(Waker::noop());
        assert!(recv.as_mut().poll(cx).is_pending(), "nobody sends yet: the receive parks");
        c.try_send(i).expect("the parked receive takes it");
        assert_eq!(recv.as_mut().poll(cx), Poll::Ready(Some(i)));
    };
    // The first park grows the channel's queue and makes the thread's waiter.
    round(0);
    let n = allocations_during(|| (1..=1000).for_each(round));
    assert_eq!(n, 0, "parking allocated {n} times in 1000 rounds");
}
