//! One operation of a select: a receive or a send on one channel.
//!
//! A single `send`/`recv` is a select of one case; `select!` is a select of
//! many. Both run the same engine (`select::Operation`) over `dyn Case`.

#![allow(private_interfaces)] // `Case` is public only for `select!`'s expansion (doc-hidden).

use std::sync::Arc as StdArc;

use crate::chan::core::{ChanCore, RecvCell, RecvSlot, SendCell, SendSlot};
use crate::error::SendError;
use crate::park::handoff::HandOff;
use crate::park::resource::Resource;
use crate::park::waiter::Waiter;
use crate::shim::Arc;
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
    fn enqueue(&mut self, waiter: &Arc<Waiter>, index: usize) -> bool;
    /// Takes this case off its channel (no-op if a counterpart already did).
    /// If it was not completed, a send case gets its value back. Called only
    /// once nobody can claim the case any more (its waiter was aborted, or
    /// completed through another case).
    fn dequeue(&mut self);
    /// This case was completed by a counterpart: move the result out of its
    /// cell. Called only after its waiter was seen `Done` for this case.
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
    /// The channel's identity.
    fn resource(&self) -> Option<&StdArc<Resource>>;
}

/// A receive case.
#[doc(hidden)]
pub struct RecvCase<'a, T> {
    chan: Option<&'a ChanCore<T>>,
    cell: Option<Arc<RecvCell<T>>>,
    result: Option<Option<T>>,
}

impl<'a, T> RecvCase<'a, T> {
    pub(crate) fn on(chan: Option<&'a ChanCore<T>>) -> Self {
        RecvCase { chan, cell: None, result: None }
    }

    /// The received value (`None`: closed and drained). Panics if the case was not selected.
    pub fn into_result(self) -> Option<T> {
        self.result.expect("parkwatch: result taken from a select case that was not chosen")
    }

    pub(crate) fn take_result(&mut self) -> Option<Option<T>> {
        self.result.take()
    }
}

impl<T> Case for RecvCase<'_, T> {
    #[inline]
    fn try_now(&mut self) -> bool {
        let Some(chan) = self.chan else { return false };
        match chan.try_recv() {
            Ok(v) => self.result = Some(Some(v)),
            Err(crate::TryRecvError::Closed) => self.result = Some(None),
            Err(crate::TryRecvError::Empty) => return false,
        }
        true
    }

    fn is_nil(&self) -> bool {
        self.chan.is_none()
    }

    fn enqueue(&mut self, waiter: &Arc<Waiter>, index: usize) -> bool {
        let Some(chan) = self.chan else { return true };
        let cell = Arc::new(RecvCell { waiter: waiter.clone(), case: index, slot: HandOff::new(RecvSlot::Empty) });
        let parked = chan.enqueue_recv(cell.clone());
        if parked {
            self.cell = Some(cell);
        }
        parked
    }

    fn dequeue(&mut self) {
        if let (Some(chan), Some(cell)) = (self.chan, self.cell.take()) {
            chan.dequeue_recv(&cell);
        }
    }

    fn collect(&mut self) {
        let cell = self.cell.take().expect("a completed receive case has its cell");
        // SAFETY: `collect` runs once the case is `Done` (`park::handoff`, party 3).
        let slot = unsafe { cell.slot.with(|s| std::mem::replace(s, RecvSlot::Empty)) };
        self.result = Some(match slot {
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

/// A send case; holds the value until the send completes.
#[doc(hidden)]
pub struct SendCase<'a, T> {
    chan: Option<&'a ChanCore<T>>,
    value: Option<T>,
    cell: Option<Arc<SendCell<T>>>,
    result: Option<Result<(), SendError<T>>>,
}

impl<'a, T> SendCase<'a, T> {
    pub(crate) fn on(chan: Option<&'a ChanCore<T>>, value: T) -> Self {
        SendCase { chan, value: Some(value), cell: None, result: None }
    }

    /// `Ok` when delivered; the value back when the channel was closed.
    /// Panics if the case was not selected.
    pub fn into_result(self) -> Result<(), SendError<T>> {
        self.result.expect("parkwatch: result taken from a select case that was not chosen")
    }

    pub(crate) fn take_result(&mut self) -> Option<Result<(), SendError<T>>> {
        self.result.take()
    }
}

impl<T> Case for SendCase<'_, T> {
    #[inline]
    fn try_now(&mut self) -> bool {
        let Some(chan) = self.chan else { return false };
        let v = self.value.take().expect("a pending send case holds its value");
        match chan.try_send(v) {
            Ok(()) => self.result = Some(Ok(())),
            Err(crate::TrySendError::Closed(v)) => self.result = Some(Err(SendError(v))),
            Err(crate::TrySendError::Full(v)) => {
                self.value = Some(v);
                return false;
            }
        }
        true
    }

    fn is_nil(&self) -> bool {
        self.chan.is_none()
    }

    fn enqueue(&mut self, waiter: &Arc<Waiter>, index: usize) -> bool {
        let Some(chan) = self.chan else { return true };
        let slot = SendSlot { value: self.value.take(), closed: false };
        let cell = Arc::new(SendCell { waiter: waiter.clone(), case: index, slot: HandOff::new(slot) });
        if chan.enqueue_send(cell.clone()) {
            self.cell = Some(cell);
            return true;
        }
        // SAFETY: the channel refused the cell: nobody else ever saw it
        // (`park::handoff`, party 1).
        self.value = unsafe { cell.slot.with(|s| s.value.take()) };
        false
    }

    fn dequeue(&mut self) {
        if let (Some(chan), Some(cell)) = (self.chan, self.cell.take()) {
            chan.dequeue_send(&cell);
            // Not completed (else `collect` took the cell): the value comes home.
            // SAFETY: `dequeue` runs once nobody can claim the case any more
            // (`park::handoff`, party 3).
            self.value = unsafe { cell.slot.with(|s| s.value.take()) };
        }
    }

    fn collect(&mut self) {
        let cell = self.cell.take().expect("a completed send case has its cell");
        // SAFETY: `collect` runs once the case is `Done` (`park::handoff`, party 3).
        let (closed, value) = unsafe { cell.slot.with(|s| (s.closed, s.value.take())) };
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
