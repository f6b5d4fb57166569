//! One operation of a select: a receive or a send on one channel.
//!
//! A single `send`/`recv` is a select of one case; `select!` is a select of
//! many. Both run the same engine (`select::Operation`) over `dyn Case`.

#![allow(private_interfaces)] // `Case` is public only for `select!`'s expansion (doc-hidden).

use std::sync::Arc as StdArc;

use std::marker::PhantomPinned;

use crate::chan::core::{ChanCore, Parked, RecvSlot, SendSlot};
use crate::error::SendError;
use crate::park::handoff::HandOff;
use crate::park::resource::Resource;
use crate::park::waiter::Waiter;
use crate::snapshot::WaitReason;

/// One case of a select, type-erased for the engine.
#[doc(hidden)]
pub trait Case {
    /// Completes the operation now if it can, storing its result.
    fn try_now(&mut self) -> bool;
    /// A nil channel: never ready, never parked on.
    fn is_nil(&self) -> bool;
    /// Parks this case on its channel as case `index` of `waiter`, unless it
    /// could complete now: then parks nothing and returns false. The check
    /// and the parking happen under the resource's lock, so no wake-up can
    /// fall between them.
    ///
    /// # Safety
    ///
    /// A queue entry points into the case (`park::handoff`) and at
    /// `waiter`: the case must stay at its address until it is dequeued,
    /// collected or dropped, and the waiter until its operation finished or
    /// was cancelled (the engine's callers guarantee both, see
    /// `select::Operation`).
    unsafe fn enqueue(&mut self, waiter: &Waiter, index: usize) -> bool;
    /// Takes this case off its channel (no-op if a counterpart already did).
    /// If it was not completed, a send case gets its value back. Called only
    /// once nobody can claim the case any more (its waiter was aborted, or
    /// completed through another case).
    fn dequeue(&mut self);
    /// This case was completed by a counterpart: take the result from its
    /// slot. Called only after its waiter was seen `Done` for this case.
    fn collect(&mut self);
    /// This case was completed but its operation was cancelled before it could
    /// return: give back what it received, so that nothing is lost.
    fn abandon(&mut self);
    /// Go's wait reason for this case alone.
    fn reason(&self) -> WaitReason;
    /// Whether this case may turn ready while nobody is parked on it, so that
    /// a blocking operation gains by retrying it before it parks. False for
    /// an unbuffered channel: a rendezvous needs one side parked.
    fn worth_retrying(&self) -> bool {
        true
    }
    /// A cheap hint, read without the resource's lock, that [`Case::try_now`]
    /// might succeed. A single operation that looks bound to block parks
    /// without trying first (parking rechecks under the lock), and a spinning
    /// one retries only when it looks ready, instead of taking the lock its
    /// counterpart needs again and again. False negatives cost a retry, never
    /// a lost wake-up.
    fn looks_ready(&self) -> bool {
        true
    }
    /// Step 1 for this case alone: tries it unless its hint says it cannot
    /// complete ([`Case::looks_ready`]); with `exhaustive` (a select with
    /// `default`, whose "nothing is ready" must be exact) it is tried
    /// whatever the hint. Whether it completed. Through `dyn Case`, one
    /// call: the hint and the try inside it are the case's own.
    #[inline]
    fn try_if_worth(&mut self, exhaustive: bool) -> bool {
        (exhaustive || self.looks_ready()) && self.try_now()
    }
    /// The channel's identity.
    fn resource(&self) -> Option<&StdArc<Resource>>;
}

/// A channel case whose future starts *fresh*: holding only the channel and
/// what the try needs (`select::Staged`), built into a full case only once
/// a try failed.
pub(crate) trait StagedCase<'a, T>: Case + Sized {
    /// What the try needs besides the channel (a send's value).
    type Arg;
    /// What the operation returns.
    type Output;
    /// Tries once, unless the channel's hints say it cannot complete: the
    /// output if it completed, the argument back if it would block.
    fn try_fresh(chan: &ChanCore<T>, arg: Self::Arg) -> Result<Self::Output, Self::Arg>;
    /// The full case, for an operation bound to park.
    fn build(chan: Option<&'a ChanCore<T>>, arg: Self::Arg) -> Self;
    /// The result of a completed case.
    fn take_output(&mut self) -> Self::Output;
}

/// Whether a channel case's slot may be pointed at by a queue entry, and the
/// waiter it was enqueued with: the bookkeeping both case kinds share.
struct Link {
    linked: bool,
    /// The waiter of the last enqueue (meaningful while `linked`): a plain
    /// pointer, as the case holds no count on it.
    parked_with: *const Waiter,
}

// SAFETY: a flag and a pointer to a `Waiter`, which is `Send + Sync`,
// dereferenced only where its owner keeps it alive (`wait_out_claimer`).
unsafe impl Send for Link {}
// SAFETY: as above.
unsafe impl Sync for Link {}

impl Link {
    const NONE: Link = Link { linked: false, parked_with: std::ptr::null() };

    /// Records an enqueue with `waiter`, which the channel accepted or not.
    fn set(&mut self, waiter: &Waiter, linked: bool) -> bool {
        *self = Link { linked, parked_with: waiter };
        linked
    }

    /// Unlinks; whether the case was linked.
    fn take(&mut self) -> bool {
        std::mem::take(&mut self.linked)
    }

    /// For a case whose leaked operation left its entry behind, once the
    /// entry is out of the queue: a counterpart that popped the entry before
    /// and won its claim fills the slot outside the lock, so this waits
    /// until it published. Then the slot is the case's again.
    fn wait_out_claimer(&mut self) {
        // SAFETY: only a leaked operation leaves its cases linked (while it
        // runs, an operation takes its cases' entries back when it finishes
        // or is cancelled), and its waiter, which lives inside it, leaked
        // with it: a parked operation is pinned, so its memory is never
        // reused (`park::waiter`, "Where a waiter lives").
        let waiter = unsafe { &*self.parked_with };
        waiter.wait_not_busy();
        self.linked = false;
    }
}

/// A receive case.
#[doc(hidden)]
pub struct RecvCase<'a, T> {
    chan: Option<&'a ChanCore<T>>,
    /// Where a counterpart leaves what this case receives while it is
    /// parked; the channel's queue entry points here (`park::handoff`).
    slot: HandOff<RecvSlot<T>>,
    /// The outcome, once completed (by the case's own try, or collected
    /// from `slot`): kept apart from `slot` so that a receive that does not
    /// block never goes through the hand-over cell.
    result: Option<Option<T>>,
    /// Whether an entry for `slot` may be in `chan`'s receive queue.
    link: Link,
    /// While linked, the queue holds `slot`'s address, so the case must
    /// not move (`Case::enqueue`). Being `!Unpin` also keeps a `&mut` to the
    /// case from claiming exclusive access to the slot a counterpart may be
    /// filling.
    _pinned: PhantomPinned,
}

impl<'a, T> RecvCase<'a, T> {
    pub(crate) fn on(chan: Option<&'a ChanCore<T>>) -> Self {
        RecvCase { chan, slot: HandOff::new(RecvSlot::Empty), result: None, link: Link::NONE, _pinned: PhantomPinned }
    }

    /// The received value (`None`: closed and drained). Panics if the case was not selected.
    pub fn into_result(mut self) -> Option<T> {
        self.chosen_result()
    }

    /// [`RecvCase::into_result`] for a pinned case (`select!`'s).
    pub fn pinned_result(self: std::pin::Pin<&mut Self>) -> Option<T> {
        // SAFETY: only the result is moved out, not the case.
        unsafe { self.get_unchecked_mut() }.chosen_result()
    }

    /// Takes the result of the chosen case; panics if the case was not chosen.
    fn chosen_result(&mut self) -> Option<T> {
        self.result.take().expect("parkwatch: result taken from a select case that was not chosen")
    }

    pub(crate) fn take_result(&mut self) -> Option<Option<T>> {
        self.result.take()
    }

    /// Empties the slot. Only while no counterpart may be inside it: the
    /// case is not parked, or its counterpart published (`park::handoff`,
    /// parties 1 and 3).
    fn take_slot(&mut self) -> RecvSlot<T> {
        debug_assert!(!self.link.linked, "a parked case's slot is the counterpart's");
        // SAFETY: as said above, which every caller ensures.
        unsafe { self.slot.with(|s| std::mem::replace(s, RecvSlot::Empty)) }
    }

    /// Takes back an entry that this case's operation left behind when it
    /// was leaked while parked (never finished, never cancelled), before the
    /// case is dropped or used again. Cold: only a leaked operation gets here.
    #[cold]
    #[inline(never)]
    fn unlink(&mut self) {
        let Some(chan) = self.chan else { return };
        chan.dequeue_recv(&self.slot);
        self.link.wait_out_claimer();
        // A value handed over to the leaked operation is not lost.
        if let RecvSlot::Value(v) = self.take_slot() {
            chan.reinject(v);
        }
    }
}

impl<T> Case for RecvCase<'_, T> {
    #[inline]
    fn try_now(&mut self) -> bool {
        // Touches `result`, never the slot: safe even on a case that an
        // operation leaked while parked (its `enqueue` or drop unlinks it).
        let Some(chan) = self.chan else { return false };
        self.result = recv_now(chan);
        self.result.is_some()
    }

    fn is_nil(&self) -> bool {
        self.chan.is_none()
    }

    unsafe fn enqueue(&mut self, waiter: &Waiter, index: usize) -> bool {
        let Some(chan) = self.chan else { return true };
        if self.link.linked {
            self.unlink();
        }
        // SAFETY: the caller keeps the case in place until it is dequeued,
        // collected or dropped, and each of those takes the entry back or
        // waits for the counterpart that popped it.
        let entry = unsafe { Parked::new(waiter, index, &self.slot) };
        self.link.set(waiter, chan.enqueue_recv(entry))
    }

    fn dequeue(&mut self) {
        if let (Some(chan), true) = (self.chan, self.link.take()) {
            chan.dequeue_recv(&self.slot);
        }
    }

    fn collect(&mut self) {
        // The counterpart that completed the case popped its entry.
        self.link.take();
        self.result = Some(match self.take_slot() {
            RecvSlot::Value(v) => Some(v),
            RecvSlot::Closed => None,
            RecvSlot::Empty => unreachable!("a receive is published only after its slot is filled"),
        });
    }

    fn abandon(&mut self) {
        self.collect();
        if let (Some(chan), Some(Some(v))) = (self.chan, self.result.take()) {
            chan.reinject(v);
        }
    }

    fn reason(&self) -> WaitReason {
        if self.chan.is_some() {
            WaitReason::ChanReceive
        } else {
            WaitReason::ChanReceiveNilChan
        }
    }

    fn resource(&self) -> Option<&StdArc<Resource>> {
        self.chan.map(|c| &c.resource)
    }

    fn worth_retrying(&self) -> bool {
        self.chan.is_some_and(|c| c.cap() > 0)
    }

    fn looks_ready(&self) -> bool {
        self.chan.is_some_and(|c| c.recv_looks_ready())
    }
}

/// A case dropped while parked (only if its operation leaked) takes its
/// entry back, and waits out a counterpart filling it, before its slot goes.
impl<T> Drop for RecvCase<'_, T> {
    #[inline]
    fn drop(&mut self) {
        if self.link.linked {
            self.unlink();
        }
    }
}

/// A send case; holds the value until the send completes.
#[doc(hidden)]
pub struct SendCase<'a, T> {
    chan: Option<&'a ChanCore<T>>,
    /// The value, while the case is not parked.
    value: Option<T>,
    /// Holds the value while the case is parked, for a counterpart to take;
    /// the channel's queue entry points here (`park::handoff`).
    slot: HandOff<SendSlot<T>>,
    result: Option<Result<(), SendError<T>>>,
    /// Whether an entry for `slot` may be in `chan`'s send queue.
    link: Link,
    /// See [`RecvCase`]'s.
    _pinned: PhantomPinned,
}

impl<'a, T> SendCase<'a, T> {
    pub(crate) fn on(chan: Option<&'a ChanCore<T>>, value: T) -> Self {
        SendCase {
            chan,
            value: Some(value),
            slot: HandOff::new(SendSlot { value: None, closed: false }),
            result: None,
            link: Link::NONE,
            _pinned: PhantomPinned,
        }
    }

    /// `Ok` when delivered; the value back when the channel was closed.
    /// Panics if the case was not selected.
    pub fn into_result(mut self) -> Result<(), SendError<T>> {
        self.chosen_result()
    }

    /// [`SendCase::into_result`] for a pinned case (`select!`'s).
    pub fn pinned_result(self: std::pin::Pin<&mut Self>) -> Result<(), SendError<T>> {
        // SAFETY: only the result is moved out, not the case.
        unsafe { self.get_unchecked_mut() }.chosen_result()
    }

    /// Takes the result of the chosen case; panics if the case was not chosen.
    fn chosen_result(&mut self) -> Result<(), SendError<T>> {
        self.result.take().expect("parkwatch: result taken from a select case that was not chosen")
    }

    pub(crate) fn take_result(&mut self) -> Option<Result<(), SendError<T>>> {
        self.result.take()
    }

    /// The value back from the slot. Only while no counterpart may be
    /// inside it (`park::handoff`, parties 1 and 3).
    fn take_slot_value(&mut self) -> Option<T> {
        debug_assert!(!self.link.linked, "a parked case's slot is the counterpart's");
        // SAFETY: as said above, which every caller ensures.
        unsafe { self.slot.with(|s| s.value.take()) }
    }

    /// See [`RecvCase::unlink`]. The value comes back to the case unless a
    /// receiver took it.
    #[cold]
    #[inline(never)]
    fn unlink(&mut self) {
        let Some(chan) = self.chan else { return };
        chan.dequeue_send(&self.slot);
        self.link.wait_out_claimer();
        self.value = self.take_slot_value();
    }
}

impl<T> Case for SendCase<'_, T> {
    #[inline]
    fn try_now(&mut self) -> bool {
        // Touches `value`, never the slot (see `RecvCase::try_now`).
        let Some(chan) = self.chan else { return false };
        let v = self.value.take().expect("a pending send case holds its value");
        match send_now(chan, v) {
            Ok(result) => self.result = Some(result),
            Err(v) => {
                self.value = Some(v);
                return false;
            }
        }
        true
    }

    fn is_nil(&self) -> bool {
        self.chan.is_none()
    }

    unsafe fn enqueue(&mut self, waiter: &Waiter, index: usize) -> bool {
        let Some(chan) = self.chan else { return true };
        if self.link.linked {
            self.unlink();
        }
        let value = self.value.take();
        // SAFETY: no entry points at the slot (`park::handoff`, party 1).
        unsafe { self.slot.with(|s| *s = SendSlot { value, closed: false }) };
        // SAFETY: as in `RecvCase::enqueue`.
        let entry = unsafe { Parked::new(waiter, index, &self.slot) };
        if self.link.set(waiter, chan.enqueue_send(entry)) {
            return true;
        }
        // Refused: nobody else ever saw the slot.
        self.value = self.take_slot_value();
        false
    }

    fn dequeue(&mut self) {
        if let (Some(chan), true) = (self.chan, self.link.take()) {
            chan.dequeue_send(&self.slot);
            // Not completed (else `collect` unlinked it): the value comes home.
            self.value = self.take_slot_value();
        }
    }

    fn collect(&mut self) {
        // The counterpart that completed the case popped its entry.
        self.link.take();
        // SAFETY: `collect` runs once the case is `Done` (`park::handoff`, party 3).
        let (closed, value) = unsafe { self.slot.with(|s| (s.closed, s.value.take())) };
        self.result = Some(if closed {
            Err(SendError(value.expect("a send completed by close keeps its value")))
        } else {
            Ok(())
        });
    }

    fn abandon(&mut self) {
        // A send completed by a receiver delivered its value; one completed by
        // close keeps it, and the cancelled caller drops it with the future.
        self.collect();
    }

    fn reason(&self) -> WaitReason {
        if self.chan.is_some() {
            WaitReason::ChanSend
        } else {
            WaitReason::ChanSendNilChan
        }
    }

    fn resource(&self) -> Option<&StdArc<Resource>> {
        self.chan.map(|c| &c.resource)
    }

    fn worth_retrying(&self) -> bool {
        self.chan.is_some_and(|c| c.cap() > 0)
    }

    fn looks_ready(&self) -> bool {
        self.chan.is_some_and(|c| c.send_looks_ready())
    }
}

/// See [`RecvCase`]'s.
impl<T> Drop for SendCase<'_, T> {
    #[inline]
    fn drop(&mut self) {
        if self.link.linked {
            self.unlink();
        }
    }
}

/// A receive's try on `chan`: its result (a value, or `None` once closed
/// and drained) if it completed, `None` if it would block. The one
/// implementation behind a case's try and a fresh receive's
/// (`select::Staged`).
#[inline]
fn recv_now<T>(chan: &ChanCore<T>) -> Option<Option<T>> {
    match chan.try_recv() {
        Ok(v) => Some(Some(v)),
        Err(crate::TryRecvError::Closed) => Some(None),
        Err(crate::TryRecvError::Empty) => None,
    }
}

/// A send's try on `chan`: its result if it completed (delivered, or the
/// value back from a closed channel), the value if it would block. The one
/// implementation behind a case's try and a fresh send's (`select::Staged`).
#[inline]
fn send_now<T>(chan: &ChanCore<T>, v: T) -> Result<Result<(), SendError<T>>, T> {
    match chan.try_send(v) {
        Ok(()) => Ok(Ok(())),
        Err(crate::TrySendError::Closed(v)) => Ok(Err(SendError(v))),
        Err(crate::TrySendError::Full(v)) => Err(v),
    }
}

impl<'a, T> StagedCase<'a, T> for RecvCase<'a, T> {
    type Arg = ();
    type Output = Option<T>;

    #[inline]
    fn try_fresh(chan: &ChanCore<T>, (): ()) -> Result<Option<T>, ()> {
        // A try that looks futile is skipped: parking rechecks under the lock.
        if !chan.recv_looks_ready() {
            return Err(());
        }
        recv_now(chan).ok_or(())
    }

    fn build(chan: Option<&'a ChanCore<T>>, (): ()) -> Self {
        RecvCase::on(chan)
    }

    fn take_output(&mut self) -> Option<T> {
        self.take_result().expect("a completed receive has a result")
    }
}

impl<'a, T> StagedCase<'a, T> for SendCase<'a, T> {
    type Arg = T;
    type Output = Result<(), SendError<T>>;

    #[inline]
    fn try_fresh(chan: &ChanCore<T>, v: T) -> Result<Self::Output, T> {
        // A try that looks futile is skipped: parking rechecks under the lock.
        if !chan.send_looks_ready() {
            return Err(v);
        }
        send_now(chan, v)
    }

    fn build(chan: Option<&'a ChanCore<T>>, v: T) -> Self {
        SendCase::on(chan, v)
    }

    fn take_output(&mut self) -> Self::Output {
        self.take_result().expect("a completed send has a result")
    }
}

#[cfg(test)]
mod tests {
    use super::{Case, RecvCase, SendCase};
    use crate::chan::core::ChanCore;
    use crate::park::waiter::Waiter;
    use crate::{TryRecvError, TrySendError};

    /// A case dropped while parked, without its operation cancelling it
    /// (the operation leaked; here the test holds its waiter), takes its
    /// queue entry back, so no counterpart ever reaches its freed slot.
    #[test]
    fn a_case_dropped_while_parked_takes_its_entry_back() {
        let core = ChanCore::<String>::new(0);
        let waiter = Waiter::new();
        {
            let mut case = RecvCase::on(Some(&core));
            // SAFETY: the case stays in this scope's frame until it drops.
            assert!(unsafe { case.enqueue(&waiter, 0) }, "nobody sends: the receive parks");
            assert_eq!(core.parked_receivers().len(), 1);
        }
        assert!(core.parked_receivers().is_empty());
        assert!(matches!(core.try_send("lost?".into()), Err(TrySendError::Full(v)) if v == "lost?"));

        let waiter = Waiter::new();
        {
            let mut case = SendCase::on(Some(&core), "kept".to_string());
            // SAFETY: as above.
            assert!(unsafe { case.enqueue(&waiter, 0) }, "nobody receives: the send parks");
            assert!(core.recv_looks_ready(), "the parked send is visible to receivers");
        }
        assert_eq!(core.try_recv(), Err(TryRecvError::Empty), "the dropped send's value left with it");
    }

    /// A case enqueued again after its earlier operation leaked while
    /// parked replaces its stale entry instead of adding a second one.
    #[test]
    fn a_case_enqueued_again_replaces_its_stale_entry() {
        let core = ChanCore::<u32>::new(0);
        let mut case = RecvCase::on(Some(&core));
        let (first, second) = (Waiter::new(), Waiter::new());
        // SAFETY: the case stays in this frame until it drops.
        assert!(unsafe { case.enqueue(&first, 0) });
        // SAFETY: as above.
        assert!(unsafe { case.enqueue(&second, 0) });
        assert_eq!(core.parked_receivers().len(), 1, "one entry per case");
        core.try_send(9).unwrap();
        assert!(matches!(second.selection(), crate::park::waiter::Selection::Done(0)));
        case.collect();
        assert_eq!(case.take_result(), Some(Some(9)));
    }
}
