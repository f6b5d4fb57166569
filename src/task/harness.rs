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
use std::task::{Context, Poll};

use pin_project_lite::pin_project;

use super::record::TaskRecord;
use super::registry;
use super::waker::{self, TaskWaker};
use crate::park::wait;

pin_project! {
    /// A task's future, instrumented.
    pub(crate) struct Instrumented<F> {
        #[pin]
        fut: F,
        record: Arc<TaskRecord>,
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
    pub(crate) fn new(fut: F, record: Arc<TaskRecord>) -> Self {
        Instrumented { fut, record, waker: None, done: false }
    }
}

impl<F: Future> Future for Instrumented<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        let record = &*this.record;
        record.enter_running();
        let data = match this.waker {
            Some(w) if w.inner.will_wake(cx.waker()) => w,
            slot => slot.insert(Arc::new(TaskWaker { record: record.clone(), inner: cx.waker().clone() })),
        };
        let root = waker::root(data);
        let mut task_cx = Context::from_waker(&root);
        let guard = wait::enter(record.clone());
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
                if !noted {
                    *crate::shim::lock(&record.wait) = None;
                }
                record.leave_running(noted);
                Poll::Pending
            }
        }
    }
}
