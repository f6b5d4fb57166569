//! [`Cond`]: a condition variable (Go's `sync.Cond`), used with a [`Mutex`].

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc as StdArc;
use std::task::{Context, Poll};

use super::mutex::{Mutex, MutexGuard};
use super::state::{dequeue, SyncState};
use crate::park::resource::{Resource, ResourceKind};
use crate::park::wait;
use crate::park::waiter::{Waiter, WaiterRef};
use crate::select::{Case, OneCase};
use crate::snapshot::WaitReason;

/// A condition variable. `wait` atomically unlocks the mutex and parks until
/// `signal`/`broadcast`, then relocks. As in Go, a signal with nobody waiting
/// is lost; a waiter parked with no signal ever coming is reported with the
/// reason `sync.Cond.Wait`.
///
/// ```
/// use std::sync::Arc;
/// use parkwatch::sync::{Cond, Mutex};
/// parkwatch::run(async {
///     let state = Arc::new((Mutex::new(false), Cond::new()));
///     let s2 = state.clone();
///     parkwatch::spawn(async move {
///         *s2.0.lock().await = true;
///         s2.1.signal();
///     });
///     let mut ready = state.0.lock().await;
///     while !*ready {
///         ready = state.1.wait(ready).await;
///     }
/// });
/// ```
pub struct Cond {
    res: StdArc<Resource>,
}

impl Default for Cond {
    #[track_caller]
    fn default() -> Self {
        Cond::new()
    }
}

impl std::fmt::Debug for Cond {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Cond(#{})", self.res.id)
    }
}

impl Cond {
    /// A condition variable with no waiters.
    #[track_caller]
    pub fn new() -> Cond {
        Cond { res: Resource::with_state(ResourceKind::Cond, SyncState::Cond(Default::default())) }
    }

    /// Takes a ticket: signals after this point wake this waiter.
    fn ticket(&self) -> u64 {
        let mut st = self.res.sync.cond();
        st.next_ticket += 1;
        st.next_ticket - 1
    }

    /// Unlocks `guard`'s mutex, waits for a signal, and locks it again.
    #[track_caller]
    pub fn wait<'a, T: ?Sized>(&'a self, guard: MutexGuard<'a, T>) -> impl Future<Output = MutexGuard<'a, T>> + 'a {
        let site = std::panic::Location::caller();
        let mutex: &'a Mutex<T> = guard.mutex;
        let ticket = self.ticket();
        drop(guard);
        async move {
            CondWait(OneCase::new(CondCase { cond: self, ticket, entry: None }, site)).await;
            mutex.lock().await
        }
    }

    /// [`Cond::wait`] on an OS thread.
    #[track_caller]
    pub fn wait_blocking<'a, T: ?Sized>(&self, guard: MutexGuard<'a, T>) -> MutexGuard<'a, T> {
        let site = std::panic::Location::caller();
        let mutex: &'a Mutex<T> = guard.mutex;
        let ticket = self.ticket();
        drop(guard);
        OneCase::block(CondCase { cond: self, ticket, entry: None }, site);
        mutex.lock_blocking()
    }

    /// Wakes the longest-waiting task, if any.
    pub fn signal(&self) {
        self.res.wakers.record(wait::current_id());
        let mut st = self.res.sync.cond();
        if st.notified == st.next_ticket {
            return;
        }
        let ticket = st.notified;
        st.notified += 1;
        if let Some(pos) = st.queue.iter().position(|(_, _, t)| *t == ticket) {
            let (waiter, case, _) = st.queue.remove(pos).expect("position is valid");
            if waiter.try_claim(case) {
                self.res.bump();
                // SAFETY: this thread won the claim just now and has not
                // published; the entry is dropped right after.
                unsafe { waiter.finish(case) };
            }
        }
    }

    /// Wakes every waiting task.
    pub fn broadcast(&self) {
        self.res.wakers.record(wait::current_id());
        let mut st = self.res.sync.cond();
        st.notified = st.next_ticket;
        for (waiter, case, _) in std::mem::take(&mut st.queue) {
            if waiter.try_claim(case) {
                self.res.bump();
                // SAFETY: this thread won the claim just now and has not
                // published; the entry is dropped right after.
                unsafe { waiter.finish(case) };
            }
        }
    }
}

struct CondCase<'a> {
    cond: &'a Cond,
    ticket: u64,
    entry: Option<WaiterRef>,
}

impl Case for CondCase<'_> {
    fn try_now(&mut self) -> bool {
        self.cond.res.sync.cond().notified > self.ticket
    }
    fn is_nil(&self) -> bool {
        false
    }
    // The entry points at the operation's waiter, which stays in place
    // with the case (`enqueue`'s contract).
    unsafe fn enqueue(&mut self, waiter: &Waiter, case: usize) -> bool {
        let mut st = self.cond.res.sync.cond();
        if st.notified > self.ticket {
            return false;
        }
        // SAFETY: the waiter stays in place while enqueued (this function's
        // contract); the operation takes the entry back (`dequeue`) under
        // this lock before it finishes.
        let me = unsafe { WaiterRef::new(waiter) };
        st.queue.push_back((me.clone(), case, self.ticket));
        drop(st);
        self.cond.res.waiters.record(wait::current_id());
        self.entry = Some(me);
        true
    }
    fn dequeue(&mut self) {
        if let Some(me) = self.entry.take() {
            dequeue(&mut self.cond.res.sync.cond().queue, &me, |(w, _, _)| w);
        }
    }
    fn collect(&mut self) {
        self.entry = None;
    }
    fn abandon(&mut self) {
        // The signal meant for a cancelled wait goes to the next waiter.
        self.entry = None;
        self.cond.signal();
    }
    fn reason(&self) -> WaitReason {
        WaitReason::CondWait
    }
    fn resource(&self) -> Option<&StdArc<Resource>> {
        Some(&self.cond.res)
    }
}

struct CondWait<'a>(OneCase<CondCase<'a>>);

impl Future for CondWait<'_> {
    type Output = ();
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        // SAFETY: the operation is not moved out of the pinned future.
        unsafe { &mut self.get_unchecked_mut().0 }.poll_case(cx)
    }
}
