//! The channel itself: one lock around the buffer and the two wait queues,
//! as in Go's `runtime/chan.go`.
//!
//! Invariants (hold whenever the lock is free):
//! - `buf.len() <= cap`, except after [`ChanCore::reinject`] put back a value
//!   whose receiver was cancelled after it was handed over (nothing is lost);
//! - if `buf` is non-empty, no live entry waits in `recvq` (a send hands its
//!   value to a waiting receiver before it uses the buffer);
//! - if `buf` is not full, no live entry waits in `sendq` (a receive refills
//!   the buffer from the first waiting sender);
//! - once `closed`, both queues are empty and stay empty (close completes every
//!   waiter; a closed channel is always ready).
//!
//! Queue entries may be *stale*: their waiter was claimed through another case
//! of a select, or aborted. They are skipped (and dropped) when met, and the
//! operation that owns them removes them when it finishes.

use std::collections::VecDeque;

use crate::error::{CloseError, TryRecvError, TrySendError};
use crate::park::handoff::HandOff;
use crate::park::resource::{Resource, ResourceKind};
use crate::park::wait::current_id;
use crate::park::waiter::{Selection, Waiter};
use std::sync::atomic::AtomicUsize;
use std::sync::atomic::Ordering::Relaxed;

use crate::shim::{lock, Arc, Mutex, MutexGuard};

/// What a parked receiver ends up with.
pub(crate) enum RecvSlot<T> {
    Empty,
    Value(T),
    Closed,
}

/// A parked receive: one case of one waiter.
pub(crate) struct RecvCell<T> {
    pub(crate) waiter: Arc<Waiter>,
    pub(crate) case: usize,
    pub(crate) slot: HandOff<RecvSlot<T>>,
}

/// A parked send's value; taken by a receiver, or left there with `closed`.
pub(crate) struct SendSlot<T> {
    pub(crate) value: Option<T>,
    pub(crate) closed: bool,
}

/// A parked send: one case of one waiter.
pub(crate) struct SendCell<T> {
    pub(crate) waiter: Arc<Waiter>,
    pub(crate) case: usize,
    pub(crate) slot: HandOff<SendSlot<T>>,
}

struct State<T> {
    buf: VecDeque<T>,
    closed: bool,
    recvq: VecDeque<Arc<RecvCell<T>>>,
    sendq: VecDeque<Arc<SendCell<T>>>,
}

/// A channel of capacity `cap` (0: unbuffered).
pub(crate) struct ChanCore<T> {
    cap: usize,
    state: Mutex<State<T>>,
    /// On a cache line of its own: read by every operation deciding whether
    /// to try, and by spinning threads, it would otherwise share the line
    /// of the lock word and the state that the lock holder writes.
    hints: crossbeam_utils::CachePadded<Hints>,
    pub(crate) resource: std::sync::Arc<Resource>,
}

/// The lengths of the buffer and of the queues as of the last release of the
/// lock, readable without it: hints for an operation deciding whether to try
/// before it parks (a try that looks futile is skipped: parking rechecks under
/// the lock, so a stale hint costs a retry, never a lost wake-up) and for a
/// blocked thread spinning before it sleeps. Never a decision. Std atomics
/// even under loom: they order nothing.
#[derive(Default)]
struct Hints {
    buf: AtomicUsize,
    recvq: AtomicUsize,
    sendq: AtomicUsize,
}

/// The locked state of a channel; publishes [`Hints`] when released.
struct Locked<'a, T> {
    state: MutexGuard<'a, State<T>>,
    hints: &'a Hints,
}

impl<T> std::ops::Deref for Locked<'_, T> {
    type Target = State<T>;
    fn deref(&self) -> &State<T> {
        &self.state
    }
}

impl<T> std::ops::DerefMut for Locked<'_, T> {
    fn deref_mut(&mut self) -> &mut State<T> {
        &mut self.state
    }
}

impl<T> Drop for Locked<'_, T> {
    fn drop(&mut self) {
        self.hints.buf.store(self.state.buf.len(), Relaxed);
        self.hints.recvq.store(self.state.recvq.len(), Relaxed);
        self.hints.sendq.store(self.state.sendq.len(), Relaxed);
    }
}

/// A claimed waiter to wake once the channel lock is released.
type Wake = (Arc<Waiter>, usize);

fn wake_all(wakes: impl IntoIterator<Item = Wake>) {
    for (waiter, case) in wakes {
        waiter.finish(case);
    }
}

/// Pops the first entry whose waiter `claim` accepts, dropping stale ones.
fn pop_claimed<C>(q: &mut VecDeque<Arc<C>>, claim: impl Fn(&C) -> bool) -> Option<Arc<C>> {
    while let Some(cell) = q.pop_front() {
        if claim(&cell) {
            return Some(cell);
        }
    }
    None
}

impl<T> ChanCore<T> {
    #[track_caller]
    pub(crate) fn new(cap: usize) -> ChanCore<T> {
        ChanCore {
            cap,
            state: Mutex::new(State {
                buf: VecDeque::with_capacity(cap),
                closed: false,
                recvq: VecDeque::new(),
                sendq: VecDeque::new(),
            }),
            resource: Resource::new(ResourceKind::Chan { cap }),
            hints: Default::default(),
        }
    }

    /// Locks the state; the hints are published when the guard is released.
    fn lock(&self) -> Locked<'_, T> {
        Locked { state: lock(&self.state), hints: &self.hints }
    }

    /// Whether a send might complete now (see [`Hints`]): room in the buffer,
    /// a receiver queued, or closed.
    pub(crate) fn send_looks_ready(&self) -> bool {
        self.hints.buf.load(Relaxed) < self.cap || self.hints.recvq.load(Relaxed) > 0 || self.is_closed()
    }

    /// Whether a receive might complete now (see [`Hints`]): a buffered
    /// value, a sender queued, or closed.
    pub(crate) fn recv_looks_ready(&self) -> bool {
        self.hints.buf.load(Relaxed) > 0 || self.hints.sendq.load(Relaxed) > 0 || self.is_closed()
    }

    pub(crate) fn cap(&self) -> usize {
        self.cap
    }

    pub(crate) fn len(&self) -> usize {
        self.lock().buf.len()
    }

    /// Whether `close` was called (the resource's flag, set under the lock).
    pub(crate) fn is_closed(&self) -> bool {
        self.resource.is_closed()
    }

    /// Sends without blocking: to a waiting receiver, else into the buffer.
    pub(crate) fn try_send(&self, v: T) -> Result<(), TrySendError<T>> {
        self.resource.wakers.record(current_id());
        let mut st = self.lock();
        if st.closed {
            return Err(TrySendError::Closed(v));
        }
        if let Some(cell) = pop_claimed(&mut st.recvq, |c| c.waiter.try_claim(c.case)) {
            drop(st);
            // SAFETY: this thread won the claim of `cell`'s case and has not
            // published yet (`park::handoff`, party 2).
            unsafe { cell.slot.with(|s| *s = RecvSlot::Value(v)) };
            self.resource.bump();
            cell.waiter.finish(cell.case);
            return Ok(());
        }
        if st.buf.len() < self.cap {
            st.buf.push_back(v);
            return Ok(());
        }
        Err(TrySendError::Full(v))
    }

    /// Receives without blocking: from the buffer (refilling it from a waiting
    /// sender), else straight from a waiting sender.
    pub(crate) fn try_recv(&self) -> Result<T, TryRecvError> {
        self.resource.waiters.record(current_id());
        let mut st = self.lock();
        let sender = pop_claimed(&mut st.sendq, |c| c.waiter.try_claim(c.case));
        let value = match (st.buf.pop_front(), sender) {
            (Some(v), Some(cell)) => {
                st.buf.push_back(take_sent(&cell));
                drop(st);
                self.resource.bump();
                cell.waiter.finish(cell.case);
                v
            }
            (Some(v), None) => v,
            (None, Some(cell)) => {
                drop(st);
                let v = take_sent(&cell);
                self.resource.bump();
                cell.waiter.finish(cell.case);
                v
            }
            (None, None) if st.closed => return Err(TryRecvError::Closed),
            (None, None) => return Err(TryRecvError::Empty),
        };
        Ok(value)
    }

    /// Closes the channel and completes every parked operation on it:
    /// receivers get "closed", senders get their value back.
    pub(crate) fn close(&self) -> Result<(), CloseError> {
        self.resource.wakers.record(current_id());
        let mut st = self.lock();
        if st.closed {
            return Err(CloseError::AlreadyClosed);
        }
        st.closed = true;
        self.resource.closed.store(true, std::sync::atomic::Ordering::Release);
        self.resource.bump();
        let recvs = std::mem::take(&mut st.recvq);
        let sends = std::mem::take(&mut st.sendq);
        drop(st);
        let mut wakes = Vec::new();
        for cell in recvs.into_iter().filter(|c| c.waiter.try_claim(c.case)) {
            // SAFETY: claimed just now, published below (`park::handoff`, party 2).
            unsafe { cell.slot.with(|s| *s = RecvSlot::Closed) };
            wakes.push((cell.waiter.clone(), cell.case));
        }
        for cell in sends.into_iter().filter(|c| c.waiter.try_claim(c.case)) {
            // SAFETY: claimed just now, published below (`park::handoff`, party 2).
            unsafe { cell.slot.with(|s| s.closed = true) };
            wakes.push((cell.waiter.clone(), cell.case));
        }
        wake_all(wakes);
        Ok(())
    }

    /// Parks a receive case here, unless a receive could complete now (then
    /// returns false and parks nothing). Checking and parking under one lock
    /// keeps the invariant that a parked receiver implies an empty buffer.
    /// Entries of `cell`'s own waiter (its select's send cases) do not count:
    /// a task cannot rendezvous with itself.
    pub(crate) fn enqueue_recv(&self, cell: Arc<RecvCell<T>>) -> bool {
        // A receive may park without trying first (`Case::looks_ready`).
        self.resource.waiters.record(current_id());
        let mut st = self.lock();
        if st.closed || !st.buf.is_empty() || has_live_other(&st.sendq, &cell.waiter, |c| &c.waiter) {
            return false;
        }
        st.recvq.push_back(cell);
        true
    }

    /// Parks a send case here, unless a send could complete now (see
    /// [`ChanCore::enqueue_recv`]).
    pub(crate) fn enqueue_send(&self, cell: Arc<SendCell<T>>) -> bool {
        // A send may park without trying first (`Case::looks_ready`).
        self.resource.wakers.record(current_id());
        let mut st = self.lock();
        if st.closed || st.buf.len() < self.cap || has_live_other(&st.recvq, &cell.waiter, |c| &c.waiter) {
            return false;
        }
        st.sendq.push_back(cell);
        true
    }

    /// Removes a receive case parked here, if it still is.
    pub(crate) fn dequeue_recv(&self, cell: &Arc<RecvCell<T>>) {
        self.lock().recvq.retain(|c| !Arc::ptr_eq(c, cell));
    }

    /// Removes a send case parked here, if it still is.
    pub(crate) fn dequeue_send(&self, cell: &Arc<SendCell<T>>) {
        self.lock().sendq.retain(|c| !Arc::ptr_eq(c, cell));
    }

    /// The tasks parked receiving here.
    pub(crate) fn parked_receivers(&self) -> Vec<u64> {
        let st = self.lock();
        st.recvq.iter().filter(|c| c.waiter.selection() == Selection::Waiting).map(|c| c.waiter.task).collect()
    }

    /// Puts back a value that was handed to a receive which was then cancelled
    /// before it could return it: to another parked receiver if there is one,
    /// else at the head of the buffer, so that it is the next value received.
    pub(crate) fn reinject(&self, v: T) {
        let mut st = self.lock();
        if let Some(cell) = pop_claimed(&mut st.recvq, |c| c.waiter.try_claim(c.case)) {
            drop(st);
            // SAFETY: claimed just now, published next (`park::handoff`, party 2).
            unsafe { cell.slot.with(|s| *s = RecvSlot::Value(v)) };
            cell.waiter.finish(cell.case);
        } else {
            st.buf.push_front(v);
        }
    }
}

/// Takes the value of a send cell whose case the caller has just claimed.
fn take_sent<T>(cell: &SendCell<T>) -> T {
    // SAFETY: every caller won the claim of `cell`'s case and publishes only
    // after this (`park::handoff`, party 2).
    unsafe { cell.slot.with(|s| s.value.take()) }.expect("a parked send always holds its value until claimed")
}

fn has_live_other<C>(q: &VecDeque<Arc<C>>, me: &Arc<Waiter>, waiter: impl Fn(&C) -> &Arc<Waiter>) -> bool {
    q.iter().any(|c| {
        let w = waiter(c);
        !Arc::ptr_eq(w, me) && w.selection() == Selection::Waiting
    })
}
