//! Acquiring a Mutex or RwMutex: one case of the engine, shared by both.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc as StdArc;
use std::task::{Context, Poll};

use super::state::{dequeue, Holder, LockWaiter};
use crate::park::resource::Resource;
use crate::park::wait;
use crate::park::waiter::{Waiter, WaiterRef};
use crate::select::{Case, OneCase};
use crate::snapshot::WaitReason;

/// A lock acquisition (read or write) as a case of the engine.
pub(crate) struct LockCase<'a> {
    res: &'a StdArc<Resource>,
    write: bool,
    reason: WaitReason,
    holder: Holder,
    entry: Option<WaiterRef>,
}

impl<'a> LockCase<'a> {
    pub(crate) fn new(
        res: &'a StdArc<Resource>,
        write: bool,
        reason: WaitReason,
        site: &'static std::panic::Location<'static>,
    ) -> Self {
        let holder = Holder { task: wait::current_id(), site };
        LockCase { res, write, reason, holder, entry: None }
    }

    pub(crate) fn holder_task(&self) -> u64 {
        self.holder.task
    }
}

impl Case for LockCase<'_> {
    fn try_now(&mut self) -> bool {
        let ok = self.res.sync.lock().try_acquire(self.write, self.holder);
        if ok {
            self.res.waiters.record(self.holder.task);
        }
        ok
    }
    fn is_nil(&self) -> bool {
        false
    }
    // The entry points at the operation's waiter, which stays in place
    // with the case (`enqueue`'s contract).
    unsafe fn enqueue(&mut self, waiter: &Waiter, case: usize) -> bool {
        let mut st = self.res.sync.lock();
        let free = if self.write { st.can_write() } else { st.can_read(Some(waiter)) };
        if free {
            return false;
        }
        // SAFETY: the waiter stays in place while enqueued (this function's
        // contract); the operation takes the entry back (`dequeue`) under
        // this lock before it finishes.
        let me = unsafe { WaiterRef::new(waiter) };
        st.queue.push_back(LockWaiter { waiter: me.clone(), case, write: self.write, holder: self.holder });
        drop(st);
        self.res.waiters.record(self.holder.task);
        self.entry = Some(me);
        true
    }
    fn dequeue(&mut self) {
        if let Some(me) = self.entry.take() {
            dequeue(&mut self.res.sync.lock().queue, &me, |w| &w.waiter);
        }
    }
    fn collect(&mut self) {
        // The releaser made us the holder before it woke us.
        self.entry = None;
    }
    fn abandon(&mut self) {
        self.entry = None;
        release(self.res, self.write, self.holder.task);
    }
    fn reason(&self) -> WaitReason {
        self.reason
    }
    fn resource(&self) -> Option<&StdArc<Resource>> {
        Some(self.res)
    }
}

/// Releases a hold taken by task `task` and hands the lock on.
pub(crate) fn release(res: &Resource, write: bool, task: u64) {
    res.wakers.record(wait::current_id());
    res.bump();
    res.sync.lock().release(write, task);
}

/// Acquires on the calling OS thread; returns the holder's task id.
pub(crate) fn acquire_blocking(case: LockCase<'_>, site: &'static std::panic::Location<'static>) -> u64 {
    OneCase::block(case, site).holder_task()
}

/// The future of an asynchronous acquisition; resolves to the holder's task id.
pub(crate) struct Acquire<'a>(OneCase<LockCase<'a>>);

impl<'a> Acquire<'a> {
    pub(crate) fn new(case: LockCase<'a>, site: &'static std::panic::Location<'static>) -> Self {
        Acquire(OneCase::new(case, site))
    }
}

impl Future for Acquire<'_> {
    type Output = u64;
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<u64> {
        // SAFETY: the operation is not moved out of the pinned future.
        let op = unsafe { &mut self.get_unchecked_mut().0 };
        op.poll_case(cx).map(|()| op.case.holder_task())
    }
}
