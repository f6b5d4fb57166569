//! The slot of a parked operation's queue entry (its *cell*): where a
//! counterpart leaves a received value, or takes a sent one.
//!
//! No lock guards it: the waiter's claim protocol (`park::waiter`) already
//! lets exactly one party touch a slot at a time, and orders the hand-overs:
//!
//! 1. the operation's owner, while the cell is its own (before it is
//!    enqueued, or after the channel refused it);
//! 2. the party that won [`Waiter::try_claim`](super::waiter::Waiter::try_claim)
//!    for the cell's case, until it publishes (`finish`/`publish`, a Release
//!    store); a party that loses the claim never touches the slot;
//! 3. the owner again once nobody can claim the case any more: after it saw
//!    `Done` (an Acquire load, so the claimer's writes are visible), or after
//!    its own `try_abort` won, or after another case was claimed.
//!
//! Under loom the data sits in loom's `UnsafeCell`, which fails a model whose
//! accesses to a slot overlap without a happens-before between them.

use crate::shim::cell::DataCell;

/// A value handed between the owner of a parked operation and the party
/// that completes it (see the module docs for who may touch it when).
pub(crate) struct HandOff<T> {
    data: DataCell<T>,
}

// SAFETY: the slot is accessed by one thread at a time, each access ordered
// after the previous one by the claim protocol (module docs), so sharing it
// is sharing a `T` moved between threads: `T: Send` suffices.
unsafe impl<T: Send> Sync for HandOff<T> {}

impl<T> HandOff<T> {
    pub(crate) fn new(v: T) -> HandOff<T> {
        HandOff { data: DataCell::new(v) }
    }

    /// Runs `f` on the slot's value.
    ///
    /// # Safety
    ///
    /// The caller is the one party the claim protocol lets touch this slot now
    /// (module docs: the owner before sharing it or once nobody can claim its
    /// case, or the winner of the claim until it publishes).
    pub(crate) unsafe fn with<R>(&self, f: impl FnOnce(&mut T) -> R) -> R {
        let mut access = self.data.access(true);
        // SAFETY: the access was started on `self.data` just above, and the
        // caller's contract excludes every other access while `f` runs.
        let r = f(unsafe { access.get_mut(&self.data) });
        access.end();
        r
    }
}
