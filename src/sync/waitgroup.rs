//! [`WaitGroup`]: wait for a collection of tasks to finish (Go's `sync.WaitGroup`).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc as StdArc;
use std::task::{Context, Poll};

use super::state::{dequeue, SyncState};
use crate::park::resource::{Resource, ResourceKind};
use crate::park::wait;
use crate::park::waiter::{Waiter, WaiterRef};
use crate::select::{Case, OneCase};
use crate::snapshot::WaitReason;

/// Counts outstanding work; `wait` blocks until the count is zero. Clones are
/// the same wait group.
///
/// ```
/// parkwatch::run(async {
///     let wg = parkwatch::sync::WaitGroup::new();
///     for _ in 0..3 {
///         wg.add(1);
///         let wg = wg.clone();
///         parkwatch::spawn(async move { wg.done() });
///     }
///     wg.wait().await;
/// });
/// ```
pub struct WaitGroup {
    res: StdArc<Resource>,
}

// Handles are counted (in the resource's `send_handles`): a wait group whose
// only handle is its waiter's can get no `done` from anyone else.
impl Clone for WaitGroup {
    fn clone(&self) -> Self {
        self.res.send_handles.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        WaitGroup { res: self.res.clone() }
    }
}

impl Drop for WaitGroup {
    fn drop(&mut self) {
        self.res.send_handles.fetch_sub(1, std::sync::atomic::Ordering::AcqRel);
    }
}

impl Default for WaitGroup {
    #[track_caller]
    fn default() -> Self {
        WaitGroup::new()
    }
}

impl std::fmt::Debug for WaitGroup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "WaitGroup(#{}, count {})", self.res.id, self.count())
    }
}

impl WaitGroup {
    /// A wait group with count 0.
    #[track_caller]
    pub fn new() -> WaitGroup {
        let res = Resource::with_state(ResourceKind::WaitGroup, SyncState::WaitGroup(Default::default()));
        res.send_handles.store(1, std::sync::atomic::Ordering::Relaxed);
        WaitGroup { res }
    }

    /// Adds `delta` (may be negative) to the count; at zero, every waiter is released.
    ///
    /// Panics if the count goes negative, as Go does ("sync: negative WaitGroup counter").
    pub fn add(&self, delta: isize) {
        self.res.wakers.record(wait::current_id());
        let mut st = self.res.sync.wait_group();
        let count = st.count + delta;
        if count < 0 {
            drop(st);
            panic!("sync: negative WaitGroup counter");
        }
        st.count = count;
        if count == 0 {
            // Only reaching zero can wake a waiter: that is the activity.
            self.res.bump();
            for (waiter, case) in std::mem::take(&mut st.queue) {
                if waiter.try_claim(case) {
                    // SAFETY: this thread won the claim just now and has
                    // not published; the entry is dropped right after.
                    unsafe { waiter.finish(case) };
                }
            }
        }
    }

    /// `add(-1)`.
    pub fn done(&self) {
        self.add(-1);
    }

    /// The current count.
    pub fn count(&self) -> isize {
        self.res.sync.wait_group().count
    }

    /// Waits until the count is zero.
    #[track_caller]
    pub fn wait(&self) -> WaitGroupWait<'_> {
        WaitGroupWait(OneCase::new(WaitCase { wg: self, entry: None }, std::panic::Location::caller()))
    }

    /// Blocks the OS thread until the count is zero.
    #[track_caller]
    pub fn wait_blocking(&self) {
        OneCase::block(WaitCase { wg: self, entry: None }, std::panic::Location::caller());
    }

    /// The id dumps give this wait group.
    pub fn id(&self) -> u64 {
        self.res.id.0
    }
}

/// The future of [`WaitGroup::wait`].
pub struct WaitGroupWait<'a>(OneCase<WaitCase<'a>>);

impl Future for WaitGroupWait<'_> {
    type Output = ();
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        // SAFETY: the operation is not moved out of the pinned future.
        unsafe { &mut self.get_unchecked_mut().0 }.poll_case(cx)
    }
}

/// A wait on a WaitGroup, as a case of the engine.
pub(crate) struct WaitCase<'a> {
    wg: &'a WaitGroup,
    entry: Option<WaiterRef>,
}

impl Case for WaitCase<'_> {
    fn try_now(&mut self) -> bool {
        self.wg.count() == 0
    }
    fn is_nil(&self) -> bool {
        false
    }
    // The entry points at the operation's waiter, which stays in place
    // with the case (`enqueue`'s contract).
    unsafe fn enqueue(&mut self, waiter: &Waiter, index: usize) -> bool {
        let mut st = self.wg.res.sync.wait_group();
        if st.count == 0 {
            return false;
        }
        // SAFETY: the waiter stays in place while enqueued (this function's
        // contract); the operation takes the entry back (`dequeue`) under
        // this lock before it finishes.
        let me = unsafe { WaiterRef::new(waiter) };
        st.queue.push_back((me.clone(), index));
        drop(st);
        self.wg.res.waiters.record(wait::current_id());
        self.entry = Some(me);
        true
    }
    fn dequeue(&mut self) {
        if let Some(me) = self.entry.take() {
            dequeue(&mut self.wg.res.sync.wait_group().queue, &me, |(w, _)| w);
        }
    }
    fn collect(&mut self) {
        self.entry = None;
    }
    fn abandon(&mut self) {
        self.entry = None;
    }
    fn reason(&self) -> WaitReason {
        WaitReason::WaitGroupWait
    }
    fn resource(&self) -> Option<&StdArc<Resource>> {
        Some(&self.wg.res)
    }
}
