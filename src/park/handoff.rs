//! The slot of a parked channel operation: where a counterpart leaves a
//! received value, or takes a sent one.
//!
//! The slot lives in the parked case itself (`select::case`), inside the
//! operation's pinned future or on the blocked thread's stack, and the
//! channel's queue entry points at it (`chan::core::Parked`): parking
//! allocates nothing. No lock of its own guards it; these parties touch it,
//! one at a time:
//!
//! 1. the case's owner, while no entry points at it: before it is enqueued,
//!    after the channel refused it, or once the owner took its entry back
//!    out of the queue under the channel's lock while nobody had claimed it;
//! 2. the party that popped the entry (under the channel's lock) and won
//!    [`Waiter::try_claim`](super::waiter::Waiter::try_claim) for its case,
//!    until it publishes; a party that loses the claim never touches the
//!    slot;
//! 3. the owner again once the claimer has published (`finish`/`publish`,
//!    a Release store): it saw `Done` with an Acquire load, so the
//!    claimer's writes are visible.
//!
//! The owner keeps the slot alive and in place until no entry points at it
//! and no claimer is inside: its operation finishes after `Done`, cancels
//! by aborting the waiter or waiting out a claimer that is `Busy`, and a
//! case dropped without its operation (which then leaked) takes its entry
//! back and waits out a claimer the same way (`select::case`, `unlink`).
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
    /// The caller is the one party the protocol lets touch this slot now
    /// (module docs: the owner while no entry points at it or once the
    /// claimer published, or the winner of the claim until it publishes).
    pub(crate) unsafe fn with<R>(&self, f: impl FnOnce(&mut T) -> R) -> R {
        let mut access = self.data.access(true);
        // SAFETY: the access was started on `self.data` just above, and the
        // caller's contract excludes every other access while `f` runs.
        let r = f(unsafe { access.get_mut(&self.data) });
        access.end();
        r
    }
}
