//! The waiter: the meeting point between a parked operation and the task that
//! completes it.
//!
//! A blocked `send`, `recv` or `select` takes one [`Waiter`] (a new one, or the
//! thread's recycled one) and enqueues an entry pointing at it in the queue of
//! every channel it waits on (one entry per select case). Whoever completes the operation — a counterpart, `close`, or the
//! operation itself while it registers — must first *claim* the waiter:
//!
//! ```text
//!            claim(case)              finish(case)
//! WAITING ────────────────▶ BUSY(case) ─────────────▶ DONE(case)
//!    │
//!    └── abort() ──▶ ABORTED      (the operation gave up: dropped future)
//! ```
//!
//! Invariants:
//! - exactly one party wins the `WAITING → BUSY` CAS, so exactly one case of a
//!   select completes, and a value is never handed to two operations;
//! - the winner writes the case's slot *before* it publishes `DONE` (Release),
//!   and the parked side reads the slot only after it sees `DONE` (Acquire);
//! - the winner notifies the parked side after `DONE`, never before, so a woken
//!   operation always finds its result (a spurious wake finds `WAITING`/`BUSY`
//!   and parks again).

use std::task::Waker;

use crate::shim::{self, Arc, AtomicUsize, Ordering};
use crate::task::record::TaskRecord;

const WAITING: usize = usize::MAX;
const ABORTED: usize = usize::MAX - 1;
const BUSY_BIT: usize = 1 << (usize::BITS - 2);

/// Where a waiter's selection stands.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) enum Selection {
    /// Nobody has completed it yet.
    Waiting,
    /// A party is completing `case` right now; `Done` follows shortly.
    Busy,
    /// Case `case` completed; its slot holds the result.
    Done(usize),
    /// The operation gave up before anyone completed it.
    Aborted,
}

/// How to wake the parked side.
pub(crate) enum Notifier {
    /// An async operation: wake the task's waker (parkwatch tasks route this
    /// through their record, which keeps the deadlock counters right).
    Waker(Waker),
    /// A blocking operation on an OS thread, registered or not.
    Thread { thread: shim::thread::Thread, task: Option<std::sync::Arc<TaskRecord>> },
    /// Nobody: a finished waiter kept for reuse (see [`OwnedWaiter`]; not
    /// under loom, which does not reuse waiters).
    #[cfg_attr(loom, allow(dead_code))]
    None,
}

impl Notifier {
    fn notify(&self) {
        match self {
            Notifier::Waker(w) => w.wake_by_ref(),
            Notifier::Thread { thread, task } => {
                if let Some(task) = task {
                    task.notify();
                }
                thread.unpark();
            }
            Notifier::None => {}
        }
    }
}

/// One blocked operation (a single send/recv, or a whole select).
pub(crate) struct Waiter {
    state: AtomicUsize,
    /// Set when the waiter is made and never changed while it is shared, so
    /// the claimer reads it without a lock (an operation polled with another
    /// waker parks again with a new waiter, see `select::Operation::poll`).
    notifier: Notifier,
    /// The task that waits (0: outside any task).
    pub(crate) task: u64,
    /// Unique for the life of the process (an address could be reused by the
    /// next waiter): tells a re-poll of this wait from a new wait.
    pub(crate) key: u64,
}

/// Blocks of [`Waiter::key`]s handed to threads; touched once per
/// [`KEY_BLOCK`] parks of a thread, so that parking on two cores does not
/// contend on one counter.
static NEXT_KEY_BLOCK: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

/// Keys per block.
const KEY_BLOCK: u64 = 1 << 16;

std::thread_local! {
    /// The next key of this thread's block, and the end of the block.
    static KEYS: std::cell::Cell<(u64, u64)> = const { std::cell::Cell::new((0, 0)) };
}

/// A new wait key, unique in the process (for waiters, and for waits that
/// have none: sleeps, joins). Never 0, which means "a wait that never ends".
pub(crate) fn next_key() -> u64 {
    KEYS.try_with(|k| {
        let (mut next, mut end) = k.get();
        if next == end {
            let block = NEXT_KEY_BLOCK.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            (next, end) = (block * KEY_BLOCK, (block + 1) * KEY_BLOCK);
        }
        k.set((next + 1, end));
        next
    })
    // During thread teardown: a block of its own.
    .unwrap_or_else(|_| NEXT_KEY_BLOCK.fetch_add(1, std::sync::atomic::Ordering::Relaxed) * KEY_BLOCK)
}

#[cfg(not(loom))]
std::thread_local! {
    /// The last waiter this thread finished with, if nobody else held it: the
    /// next one reuses its allocation (a task parks again and again).
    static SPARE: std::cell::Cell<Option<Arc<Waiter>>> = const { std::cell::Cell::new(None) };
}

/// A waiter held by the operation that made it. Dropping it gives the
/// allocation back for the thread's next waiter, if nobody else holds it any
/// more (no queue entry, no claimer still finishing); its notifier is dropped
/// then, as it holds the task.
pub(crate) struct OwnedWaiter(Option<Arc<Waiter>>);

impl OwnedWaiter {
    /// A new waiter for an operation that is about to park.
    pub(crate) fn new(notifier: Notifier) -> OwnedWaiter {
        let task = crate::park::wait::current_id();
        let key = next_key();
        let waiter = Waiter { state: AtomicUsize::new(WAITING), notifier, task, key };
        #[cfg(not(loom))]
        if let Some(mut spare) = SPARE.try_with(std::cell::Cell::take).ok().flatten() {
            // Only this thread can reach a spare (see `OwnedWaiter`'s drop).
            if let Some(slot) = Arc::get_mut(&mut spare) {
                *slot = waiter;
                return OwnedWaiter(Some(spare));
            }
        }
        OwnedWaiter(Some(Arc::new(waiter)))
    }
}

impl std::ops::Deref for OwnedWaiter {
    type Target = Arc<Waiter>;
    fn deref(&self) -> &Arc<Waiter> {
        self.0.as_ref().expect("an owned waiter holds its waiter until dropped")
    }
}

impl Drop for OwnedWaiter {
    fn drop(&mut self) {
        #[cfg(not(loom))]
        if let Some(mut waiter) = self.0.take() {
            if let Some(w) = Arc::get_mut(&mut waiter) {
                w.notifier = Notifier::None;
                let _ = SPARE.try_with(|s| s.set(Some(waiter)));
            }
        }
    }
}

impl Waiter {
    /// Tries to become the party that completes `case`. On success the caller
    /// must fill the case's slot and then call [`Waiter::finish`].
    pub(crate) fn try_claim(&self, case: usize) -> bool {
        debug_assert!(case < BUSY_BIT);
        self.state.compare_exchange(WAITING, BUSY_BIT | case, Ordering::AcqRel, Ordering::Acquire).is_ok()
    }

    /// Publishes the result written by the claimer, without waking anyone (the
    /// operation completed itself while registering).
    pub(crate) fn publish(&self, case: usize) {
        self.state.store(case, Ordering::Release);
    }

    /// Publishes the result and wakes the parked side.
    pub(crate) fn finish(&self, case: usize) {
        self.publish(case);
        self.notifier.notify();
    }

    /// The operation gives up; false if somebody already claimed it (then its
    /// result must be collected, see [`Waiter::wait_not_busy`]).
    pub(crate) fn try_abort(&self) -> bool {
        self.state.compare_exchange(WAITING, ABORTED, Ordering::AcqRel, Ordering::Acquire).is_ok()
    }

    pub(crate) fn selection(&self) -> Selection {
        match self.state.load(Ordering::Acquire) {
            WAITING => Selection::Waiting,
            ABORTED => Selection::Aborted,
            s if s & BUSY_BIT != 0 => Selection::Busy,
            case => Selection::Done(case),
        }
    }

    /// Spins until a claimer has published (it holds a channel lock and is a
    /// few instructions from `finish`). Used only where parking is impossible
    /// (in `Drop`).
    pub(crate) fn wait_not_busy(&self) -> Selection {
        loop {
            match self.selection() {
                Selection::Busy => shim::thread::yield_now(),
                s => return s,
            }
        }
    }

    /// Whether finishing this waiter wakes what `waker` would wake (false:
    /// the operation was polled from another context since it parked).
    pub(crate) fn wakes(&self, waker: &Waker) -> bool {
        match &self.notifier {
            Notifier::Waker(kept) => crate::task::waker::wakes_same(kept, waker),
            _ => true,
        }
    }
}
