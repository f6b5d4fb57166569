//! The wrapper every parkwatch task is polled through.
//!
//! Around each poll of the task's future it: marks the task running, makes it
//! current (so primitives can note waits against it), hands the future the
//! task's counting waker, and afterwards decides the task's state — parked on
//! parkwatch, or idle on something outside — from what was noted. When the
//! future completes or is dropped, the task leaves the registry.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use pin_project_lite::pin_project;

use super::record::TaskRecord;
use super::registry;
use super::waker::{self, RootWaker, TaskWaker};
use crate::park::wait;

pin_project! {
    /// A task's future, instrumented.
    pub(crate) struct Instrumented<F> {
        #[pin]
        fut: F,
        record: Arc<TaskRecord>,
        // Only for a poll whose tokio waker is not the one kept in the record
        // (tokio never does that; kept for any other executor).
        waker: Option<Arc<TaskWaker>>,
        done: bool,
    }

    impl<F> PinnedDrop for Instrumented<F> {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            if !*this.done {
                registry::deregister(this.record);
            }
        }
    }
}

impl<F> Instrumented<F> {
    /// Panics if `record` already has a harness: its wakers rely on one.
    pub(crate) fn new(fut: F, record: Arc<TaskRecord>) -> Self {
        record.claim_harness();
        Instrumented { fut, record, waker: None, done: false }
    }
}

impl<F: Future> Future for Instrumented<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        let record = &*this.record;
        record.enter_running();
        let root = root_waker(this.record, this.waker, cx.waker());
        let mut task_cx = Context::from_waker(&root);
        let guard = wait::enter(this.record);
        let polled = this.fut.poll(&mut task_cx);
        let noted = guard.noted();
        drop(guard);
        match polled {
            Poll::Ready(v) => {
                *this.done = true;
                registry::deregister(record);
                Poll::Ready(v)
            }
            Poll::Pending => {
                if noted.is_none() {
                    *crate::shim::lock(&record.wait) = None;
                }
                record.leave_running(noted);
                Poll::Pending
            }
        }
    }
}

/// The waker to hand the future for a poll whose tokio waker is `tokio`: one
/// pointing at the record if `tokio` is the record's (set at the first poll),
/// else one pointing at a [`TaskWaker`] for `tokio`, kept in `fallback`.
#[inline(always)]
fn root_waker<'a>(
    record: &'a Arc<TaskRecord>,
    fallback: &'a mut Option<Arc<TaskWaker>>,
    tokio: &Waker,
) -> RootWaker<'a> {
    // SAFETY: this is the record's harness (`Instrumented::new` claimed it), the
    // only writer of the slot, and it is not writing now.
    match unsafe { record.tokio_waker() } {
        None => {
            // SAFETY: the harness (claimed), slot empty, and no waker points at
            // the record yet: only `root_on_record` makes one, after this.
            unsafe { record.set_tokio_waker(tokio.clone()) };
            // SAFETY: the slot was just set and is never written again.
            unsafe { waker::root_on_record(record) }
        }
        // SAFETY: the slot is set (matched) and is never written again.
        Some(kept) if kept.will_wake(tokio) => unsafe { waker::root_on_record(record) },
        Some(_) => {
            if !fallback.as_ref().is_some_and(|w| w.inner.will_wake(tokio)) {
                *fallback = Some(Arc::new(TaskWaker { record: record.clone(), inner: tokio.clone() }));
            }
            waker::root_on_waker(fallback.as_ref().expect("set just above"))
        }
    }
}

#[cfg(test)]
mod tests {
    use std::future::Future;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Arc, Mutex};
    use std::task::{Context, Poll, RawWaker, RawWakerVTable, Waker};
    use std::time::Duration;

    use super::Instrumented;
    use crate::snapshot::TaskKind;
    use crate::task::record::{Group, TaskRecord, FINISHED, IDLE, NOTIFIED};
    use crate::task::waker;

    /// A stand-in for tokio's waker, counting its wakes.
    #[derive(Default)]
    struct Count(AtomicUsize);

    /// Like tokio's, its vtable is a `static`, so `will_wake` is reliable (a
    /// `Waker::from(Arc<impl Wake>)` vtable is a constant, which miri may
    /// give a new address at each use).
    static COUNT: RawWakerVTable = RawWakerVTable::new(count_clone, count_wake, count_wake_by_ref, count_drop);

    fn count_waker(c: &Arc<Count>) -> Waker {
        // SAFETY: the data pointer is an `Arc<Count>` owning one strong count,
        // which is all the `COUNT` functions assume.
        unsafe { Waker::from_raw(RawWaker::new(Arc::into_raw(c.clone()) as *const (), &COUNT)) }
    }

    unsafe fn count_clone(data: *const ()) -> RawWaker {
        // SAFETY: `data` is a live `Arc<Count>` (see `count_waker`).
        unsafe { Arc::increment_strong_count(data as *const Count) };
        RawWaker::new(data, &COUNT)
    }

    unsafe fn count_wake(data: *const ()) {
        // SAFETY: the waker being consumed owns this count of a live `Arc<Count>`.
        let c = unsafe { Arc::from_raw(data as *const Count) };
        c.0.fetch_add(1, Ordering::SeqCst);
    }

    unsafe fn count_wake_by_ref(data: *const ()) {
        // SAFETY: `data` is a live `Arc<Count>`, kept alive by the waker in use.
        unsafe { &*(data as *const Count) }.0.fetch_add(1, Ordering::SeqCst);
    }

    unsafe fn count_drop(data: *const ()) {
        // SAFETY: the waker being dropped owns this count of a live `Arc<Count>`.
        unsafe { drop(Arc::from_raw(data as *const Count)) };
    }

    fn record() -> Arc<TaskRecord> {
        let group = Group::new(u64::MAX - 17, false, Duration::from_secs(30), Duration::from_secs(1));
        TaskRecord::new(None, TaskKind::Async, std::panic::Location::caller(), None, group, None)
    }

    /// Wakers point at the record while tokio's waker stays the same, at a
    /// separate `TaskWaker` for a poll with another one; outside clones are
    /// counted, internal ones not; every wake notifies the record and wakes
    /// the tokio waker of the poll that made the waker.
    #[test]
    fn wakers_on_record_and_fallback() {
        let record = record();
        let held: Arc<Mutex<Vec<Waker>>> = Arc::default();
        let polls = AtomicUsize::new(0);
        let h = held.clone();
        let fut = std::future::poll_fn(move |cx: &mut Context<'_>| {
            let mut held = h.lock().unwrap();
            match polls.fetch_add(1, Ordering::SeqCst) {
                0 => {
                    held.push(cx.waker().clone());
                    held.push(waker::internal_clone(cx.waker()));
                    let again = waker::internal_clone(&held[1]);
                    held.push(again);
                }
                // What a primitive checks before it replaces its waker.
                1 => assert!(held[1].will_wake(&waker::internal_clone(cx.waker())), "same tokio waker, same data"),
                2 => {
                    assert!(!held[1].will_wake(&waker::internal_clone(cx.waker())));
                    held.push(cx.waker().clone());
                    held.push(waker::internal_clone(cx.waker()));
                }
                _ => return Poll::Ready(()),
            }
            Poll::Pending
        });
        let mut task = Box::pin(Instrumented::new(fut, record.clone()));
        let (a, b) = (Arc::new(Count::default()), Arc::new(Count::default()));
        let (wa, wb) = (count_waker(&a), count_waker(&b));

        assert!(task.as_mut().poll(&mut Context::from_waker(&wa)).is_pending());
        assert_eq!(record.outside_wakers(), 1);
        assert_eq!(record.run_state(), IDLE);
        let outside = held.lock().unwrap()[0].clone();
        assert_eq!(record.outside_wakers(), 2);
        std::thread::spawn(move || outside.wake()).join().unwrap();
        assert_eq!(record.outside_wakers(), 1);
        assert_eq!(a.0.load(Ordering::SeqCst), 1);
        assert_eq!(record.run_state(), NOTIFIED);
        let internal = held.lock().unwrap()[2].clone();
        std::thread::spawn(move || internal.wake()).join().unwrap();
        assert_eq!(a.0.load(Ordering::SeqCst), 2);
        assert_eq!(record.outside_wakers(), 1);

        assert!(task.as_mut().poll(&mut Context::from_waker(&wa)).is_pending());
        assert!(task.as_mut().poll(&mut Context::from_waker(&wb)).is_pending());
        assert_eq!(record.outside_wakers(), 2);
        {
            let held = held.lock().unwrap();
            held[3].wake_by_ref();
            let internal = held[4].clone();
            internal.wake();
            assert_eq!((a.0.load(Ordering::SeqCst), b.0.load(Ordering::SeqCst)), (2, 2));
            held[0].wake_by_ref();
            assert_eq!((a.0.load(Ordering::SeqCst), b.0.load(Ordering::SeqCst)), (3, 2));
        }
        held.lock().unwrap().clear();
        assert_eq!(record.outside_wakers(), 0);

        assert!(task.as_mut().poll(&mut Context::from_waker(&wb)).is_ready());
        assert_eq!(record.run_state(), FINISHED);
        drop(task);
        assert_eq!(Arc::strong_count(&record), 1);
    }

    /// A waker outliving its task keeps the record (and tokio's waker) alive.
    #[test]
    fn waker_outlives_task() {
        let record = record();
        let held: Arc<Mutex<Option<Waker>>> = Arc::default();
        let h = held.clone();
        let fut = std::future::poll_fn(move |cx: &mut Context<'_>| {
            *h.lock().unwrap() = Some(waker::internal_clone(cx.waker()));
            Poll::<()>::Pending
        });
        let a = Arc::new(Count::default());
        let mut task = Box::pin(Instrumented::new(fut, record.clone()));
        assert!(task.as_mut().poll(&mut Context::from_waker(&count_waker(&a))).is_pending());
        drop(task);
        drop(record);
        let w = held.lock().unwrap().take().unwrap();
        std::thread::spawn(move || w.wake()).join().unwrap();
        assert_eq!(a.0.load(Ordering::SeqCst), 1);
        assert_eq!(Arc::strong_count(&a), 1);
    }

    #[test]
    #[should_panic(expected = "two harnesses")]
    fn one_harness_per_record() {
        let record = record();
        let _first = Instrumented::new(std::future::pending::<()>(), record.clone());
        let _second = Instrumented::new(std::future::pending::<()>(), record);
    }
}
