//! The channel itself: one lock around the two wait queues, as in Go's
//! `runtime/chan.go`, and a buffer that sends and receives use without the
//! lock while nothing is parked on the channel (`chan::ring`).
//!
//! The buffer is the values put back by cancelled receives (`front`, under
//! the lock), then the ring. Invariants (hold whenever the lock is free):
//! - the buffer holds at most `cap` values, except after
//!   [`ChanCore::reinject`] put back a value whose receiver was cancelled
//!   after it was handed over (nothing is lost);
//! - if the buffer is non-empty, no live entry waits in `recvq` (a send hands
//!   its value to a waiting receiver before it uses the buffer);
//! - if the buffer is not full, no live entry waits in `sendq` (a receive
//!   refills the buffer from the first waiting sender);
//! - once `closed`, both queues are empty and stay empty (close completes every
//!   waiter; a closed channel is always ready);
//! - the ring is in slow mode (`chan::ring`, "The slow bit") while a queue
//!   holds an entry, while `front` holds a value and once `closed`: then
//!   every operation takes the lock, and the rules above are kept as in Go.
//!   An operation that sets one of these conditions sets the bit first,
//!   under the lock, before it looks at the buffer; the lock's release
//!   clears it when none holds any more.
//!
//! Queue entries ([`Parked`]) point at slots inside the parked cases: parking
//! allocates nothing. A counterpart fills or empties a slot once it has
//! popped the entry and won its claim, after it released the lock (a cache
//! miss on the other task's memory is not paid holding the lock), except for
//! a receive that refills the buffer from a parked sender (`try_recv`).
//!
//! Queue entries may be *stale*: their waiter was claimed through another case
//! of a select, or aborted. They are skipped (and dropped) when met, and the
//! operation that owns them removes them when it finishes.

use std::collections::VecDeque;
use std::ptr::NonNull;
use std::sync::atomic::AtomicUsize;
use std::sync::atomic::Ordering::Relaxed;

use crate::chan::ring::{Blocked, Ring};
#[cfg(not(loom))]
use crate::chan::spin::{SpinGuard as StateGuard, SpinMutex as StateMutex};
use crate::error::{CloseError, TryRecvError, TrySendError};
use crate::park::handoff::HandOff;
use crate::park::resource::{Resource, ResourceKind};
use crate::park::wait::current_id;
use crate::park::waiter::{Selection, Waiter, WaiterRef};
use crate::shim::lock;
#[cfg(loom)]
use crate::shim::{Mutex as StateMutex, MutexGuard as StateGuard};

/// What a parked receiver ends up with.
pub(crate) enum RecvSlot<T> {
    Empty,
    Value(T),
    Closed,
}

/// A parked send's value; taken by a receiver, or left there with `closed`.
pub(crate) struct SendSlot<T> {
    pub(crate) value: Option<T>,
    pub(crate) closed: bool,
}

/// A parked case's entry in one of the channel's queues: the waiter of its
/// operation, the case's index in it, and where the case keeps its slot.
///
/// Invariant (the case keeps it, see `select::case`): the slot stays where
/// it is, alive, while an entry in a queue points at it (the case takes its
/// entries out, under the lock, before it moves or is dropped), and, once a
/// counterpart popped the entry and won its claim, until that counterpart
/// has published (the case waits for it, `park::handoff`).
pub(crate) struct Parked<S> {
    pub(crate) waiter: WaiterRef,
    pub(crate) case: usize,
    slot: NonNull<HandOff<S>>,
}

// SAFETY: an entry is a `WaiterRef` (`Send`) and a reference to a
// `HandOff<S>`, which is `Sync` for `S: Send`, kept alive by the invariant
// above.
unsafe impl<S: Send> Send for Parked<S> {}

impl<S> Parked<S> {
    /// An entry for case `case` of `waiter`, whose slot is `slot`.
    ///
    /// # Safety
    ///
    /// `slot` and `waiter` stay at their address, alive, while the entry is
    /// in a queue (their owner takes it out under the channel's lock before
    /// it moves or drops them), and, once a counterpart popped it and won
    /// its claim, until that counterpart has published.
    pub(crate) unsafe fn new(waiter: &Waiter, case: usize, slot: &HandOff<S>) -> Parked<S> {
        // SAFETY: the caller's contract is `WaiterRef::new`'s.
        Parked { waiter: unsafe { WaiterRef::new(waiter) }, case, slot: NonNull::from(slot) }
    }

    /// Publishes the claimed entry's result and wakes its operation.
    ///
    /// # Safety
    ///
    /// The caller popped this entry and won its claim, and has not
    /// published yet.
    unsafe fn finish(self) {
        // SAFETY: the caller's contract is `Waiter::finish`'s; the entry is
        // consumed, so the waiter is not touched after.
        unsafe { self.waiter.finish(self.case) }
    }

    /// Whether this entry points at `slot`.
    fn is(&self, slot: &HandOff<S>) -> bool {
        std::ptr::eq(self.slot.as_ptr(), slot)
    }

    /// Runs `f` on the slot of a popped entry whose claim the caller won
    /// (`park::handoff`, party 2).
    ///
    /// # Safety
    ///
    /// The caller won this entry's claim and has not published it yet.
    unsafe fn fill<R>(&self, f: impl FnOnce(&mut S) -> R) -> R {
        // SAFETY: the slot is alive until the claimer publishes (struct
        // invariant), and the claimer is the one party that may touch it.
        unsafe { self.slot.as_ref().with(f) }
    }
}

struct State<T> {
    /// Values put back by cancelled receives ([`ChanCore::reinject`]), to be
    /// received before the ring's.
    front: VecDeque<T>,
    closed: bool,
    recvq: VecDeque<Parked<RecvSlot<T>>>,
    sendq: VecDeque<Parked<SendSlot<T>>>,
}

/// A channel of capacity `cap` (0: unbuffered).
pub(crate) struct ChanCore<T> {
    cap: usize,
    /// The buffer (none for an unbuffered channel).
    ring: Option<Ring<T>>,
    /// A spin lock (`chan::spin`); loom's modelled mutex under loom.
    state: StateMutex<State<T>>,
    /// On a cache line of its own: read by every operation deciding whether
    /// to try, and by spinning threads, it would otherwise share the line
    /// of the lock word and the state that the lock holder writes.
    hints: crossbeam_utils::CachePadded<Hints>,
    pub(crate) resource: std::sync::Arc<Resource>,
}

/// The lengths of the queues and of `front` as of the last release of the
/// lock, readable without it (a buffered channel's ring needs no hint: a try
/// without the lock is as cheap): hints for an operation deciding whether to try
/// before it parks (a try that looks futile is skipped: parking rechecks under
/// the lock, so a stale hint costs a retry, never a lost wake-up) and for a
/// blocked thread spinning before it sleeps. Never a decision. Std atomics
/// even under loom: they order nothing.
#[derive(Default)]
struct Hints {
    /// Values put back in front of the buffer (`State::front`): an
    /// unbuffered channel has them too.
    front: AtomicUsize,
    recvq: AtomicUsize,
    sendq: AtomicUsize,
}

/// The locked state of a channel; publishes [`Hints`] and clears the ring's
/// slow bit when released (if nothing needs it any more).
struct Locked<'a, T> {
    state: StateGuard<'a, State<T>>,
    hints: &'a Hints,
    ring: Option<&'a Ring<T>>,
}

impl<T> Locked<'_, T> {
    /// Sets the ring's slow bit, before the caller looks at the buffer to
    /// decide whether to park an operation, close, or put a value in front.
    fn set_slow(&self) {
        if let Some(ring) = self.ring {
            if !ring.is_slow() {
                ring.set_slow();
            }
        }
    }

    /// The values in the buffer (exact in slow mode, up to claims still in
    /// flight, which count).
    fn buf_len(&self) -> usize {
        self.state.front.len() + self.ring.map_or(0, Ring::len)
    }

    /// Takes the buffer's first value.
    fn buf_pop(&mut self) -> Option<T> {
        self.state.front.pop_front().or_else(|| self.ring?.pop(true).ok())
    }
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
        let st = &self.state;
        self.hints.front.store(st.front.len(), Relaxed);
        self.hints.recvq.store(st.recvq.len(), Relaxed);
        self.hints.sendq.store(st.sendq.len(), Relaxed);
        if let Some(ring) = self.ring {
            let needed = st.closed || !st.front.is_empty() || !st.recvq.is_empty() || !st.sendq.is_empty();
            debug_assert!(!needed || ring.is_slow(), "the slow bit is set before its reason");
            if !needed && ring.is_slow() {
                ring.clear_slow();
            }
        }
    }
}

/// Pops the first entry whose case this thread claims, dropping stale ones
/// (their waiter was completed through another case, or aborted).
#[inline]
fn pop_claimed<S>(q: &mut VecDeque<Parked<S>>) -> Option<Parked<S>> {
    while let Some(entry) = q.pop_front() {
        if entry.waiter.try_claim(entry.case) {
            return Some(entry);
        }
    }
    None
}

impl<T> ChanCore<T> {
    #[track_caller]
    pub(crate) fn new(cap: usize) -> ChanCore<T> {
        ChanCore {
            cap,
            ring: (cap > 0).then(|| Ring::new(cap)),
            state: StateMutex::new(State {
                front: VecDeque::new(),
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
        Locked { state: lock(&self.state), hints: &self.hints, ring: self.ring.as_ref() }
    }

    /// Whether a send might complete now (see [`Hints`]): room in the buffer,
    /// a receiver queued, or closed.
    pub(crate) fn send_looks_ready(&self) -> bool {
        self.ring.is_some() || self.hints.recvq.load(Relaxed) > 0 || self.is_closed()
    }

    /// Whether a receive might complete now (see [`Hints`]): a buffered
    /// value, a sender queued, or closed.
    pub(crate) fn recv_looks_ready(&self) -> bool {
        self.ring.is_some()
            || self.hints.front.load(Relaxed) > 0
            || self.hints.sendq.load(Relaxed) > 0
            || self.is_closed()
    }

    pub(crate) fn cap(&self) -> usize {
        self.cap
    }

    pub(crate) fn len(&self) -> usize {
        self.lock().buf_len()
    }

    /// Whether `close` was called (the resource's flag, set under the lock).
    pub(crate) fn is_closed(&self) -> bool {
        self.resource.is_closed()
    }

    /// Sends without blocking: to a waiting receiver, else into the buffer.
    #[inline(always)]
    pub(crate) fn try_send(&self, v: T) -> Result<(), TrySendError<T>> {
        self.resource.wakers.record(current_id());
        // Nothing parked, open: the ring alone decides (a full ring then
        // has no receiver waiting, and the channel was open when it was
        // seen full).
        let v = match &self.ring {
            None => v,
            Some(ring) => match ring.push(v, false) {
                Ok(()) => return Ok(()),
                Err((v, Blocked::Now)) => return Err(TrySendError::Full(v)),
                Err((v, Blocked::Slow)) => v,
            },
        };
        self.send_locked(v)
    }

    /// [`ChanCore::try_send`] under the lock.
    #[inline(never)]
    fn send_locked(&self, v: T) -> Result<(), TrySendError<T>> {
        let mut st = self.lock();
        if st.closed {
            return Err(TrySendError::Closed(v));
        }
        if let Some(receiver) = pop_claimed(&mut st.recvq) {
            drop(st);
            // SAFETY: this thread won the claim, and publishes below.
            unsafe { receiver.fill(|s| *s = RecvSlot::Value(v)) };
            self.resource.bump();
            // SAFETY: this thread won the claim and has not published.
            unsafe { receiver.finish() };
            return Ok(());
        }
        match &self.ring {
            Some(ring) if st.buf_len() < self.cap => ring.push(v, true).map_err(|(v, _)| TrySendError::Full(v)),
            _ => Err(TrySendError::Full(v)),
        }
    }

    /// Receives without blocking: from the buffer (refilling it from a waiting
    /// sender), else straight from a waiting sender.
    #[inline(always)]
    pub(crate) fn try_recv(&self) -> Result<T, TryRecvError> {
        self.resource.waiters.record(current_id());
        // Nothing parked, open: the ring alone decides (see `try_send`).
        match self.ring.as_ref().map(|r| r.pop(false)) {
            Some(Ok(v)) => return Ok(v),
            Some(Err(Blocked::Now)) => return Err(TryRecvError::Empty),
            None | Some(Err(Blocked::Slow)) => {}
        }
        self.recv_locked()
    }

    /// [`ChanCore::try_recv`] under the lock.
    #[inline(never)]
    fn recv_locked(&self) -> Result<T, TryRecvError> {
        let mut st = self.lock();
        if let Some(head) = st.buf_pop() {
            // FIFO: the buffer's head goes first, the first parked sender's
            // value joins its tail, under the lock, before any later send.
            if st.buf_len() < self.cap {
                if let Some(sender) = pop_claimed(&mut st.sendq) {
                    // SAFETY: this thread won the claim, and publishes below.
                    let value = unsafe { take_sent(&sender) };
                    let ring = self.ring.as_ref().expect("a buffered value sits in a ring");
                    if ring.push(value, true).is_err() {
                        unreachable!("the ring has room, and only lock holders push in slow mode");
                    }
                    drop(st);
                    self.resource.bump();
                    // SAFETY: this thread won the claim and has not published.
                    unsafe { sender.finish() };
                }
            }
            return Ok(head);
        }
        let Some(sender) = pop_claimed(&mut st.sendq) else {
            return Err(if st.closed { TryRecvError::Closed } else { TryRecvError::Empty });
        };
        drop(st);
        // SAFETY: this thread won the claim, and publishes below.
        let value = unsafe { take_sent(&sender) };
        self.resource.bump();
        // SAFETY: this thread won the claim and has not published.
        unsafe { sender.finish() };
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
        // Before `closed`: no send gets into the ring without the lock from
        // here on.
        st.set_slow();
        st.closed = true;
        self.resource.closed.store(true, std::sync::atomic::Ordering::Release);
        self.resource.bump();
        let mut receivers = Vec::new();
        while let Some(receiver) = pop_claimed(&mut st.recvq) {
            receivers.push(receiver);
        }
        let mut senders = Vec::new();
        while let Some(sender) = pop_claimed(&mut st.sendq) {
            senders.push(sender);
        }
        drop(st);
        for receiver in receivers {
            // SAFETY: this thread won the claim, and publishes next.
            unsafe { receiver.fill(|s| *s = RecvSlot::Closed) };
            // SAFETY: this thread won the claim and has not published.
            unsafe { receiver.finish() };
        }
        for sender in senders {
            // SAFETY: this thread won the claim, and publishes next.
            unsafe { sender.fill(|s| s.closed = true) };
            // SAFETY: this thread won the claim and has not published.
            unsafe { sender.finish() };
        }
        Ok(())
    }

    /// Parks a receive case here, unless a receive could complete now (then
    /// returns false and parks nothing). Checking and parking under one lock
    /// keeps the invariant that a parked receiver implies an empty buffer.
    /// Entries of `entry`'s own waiter (its select's send cases) do not
    /// count: a task cannot rendezvous with itself.
    pub(crate) fn enqueue_recv(&self, entry: Parked<RecvSlot<T>>) -> bool {
        // A receive may park without trying first (`Case::looks_ready`).
        self.resource.waiters.record(current_id());
        let st = &mut self.lock();
        // Before looking at the buffer: a send without the lock either put
        // its value in already (seen here) or comes to the lock.
        st.set_slow();
        if st.closed || st.buf_len() > 0 || has_live_other(&st.sendq, &entry.waiter) {
            return false;
        }
        st.recvq.push_back(entry);
        true
    }

    /// Parks a send case here, unless a send could complete now (see
    /// [`ChanCore::enqueue_recv`]).
    pub(crate) fn enqueue_send(&self, entry: Parked<SendSlot<T>>) -> bool {
        // A send may park without trying first (`Case::looks_ready`).
        self.resource.wakers.record(current_id());
        let st = &mut self.lock();
        // Before looking at the buffer (see `enqueue_recv`).
        st.set_slow();
        if st.closed || st.buf_len() < self.cap || has_live_other(&st.recvq, &entry.waiter) {
            return false;
        }
        st.sendq.push_back(entry);
        true
    }

    /// Takes every entry pointing at `slot` out of the receive queue. Once
    /// this returns, no counterpart can reach the slot any more, but one
    /// that popped an entry earlier and won its claim may still be filling
    /// it until it publishes (`park::handoff`).
    pub(crate) fn dequeue_recv(&self, slot: &HandOff<RecvSlot<T>>) {
        self.lock().recvq.retain(|e| !e.is(slot));
    }

    /// Takes every entry pointing at `slot` out of the send queue (see
    /// [`ChanCore::dequeue_recv`]).
    pub(crate) fn dequeue_send(&self, slot: &HandOff<SendSlot<T>>) {
        self.lock().sendq.retain(|e| !e.is(slot));
    }

    /// The tasks parked receiving here.
    pub(crate) fn parked_receivers(&self) -> Vec<u64> {
        let st = self.lock();
        st.recvq.iter().filter(|e| e.waiter.selection() == Selection::Waiting).map(|e| e.waiter.task()).collect()
    }

    /// Puts back a value that was handed to a receive which was then cancelled
    /// before it could return it: to another parked receiver if there is one,
    /// else at the head of the buffer, so that it is the next value received.
    pub(crate) fn reinject(&self, v: T) {
        let mut st = self.lock();
        let Some(receiver) = pop_claimed(&mut st.recvq) else {
            // In front of the ring's values: no receive without the lock
            // may pass it.
            st.set_slow();
            st.front.push_front(v);
            return;
        };
        drop(st);
        // SAFETY: this thread won the claim, and publishes next.
        unsafe { receiver.fill(|s| *s = RecvSlot::Value(v)) };
        // SAFETY: this thread won the claim and has not published.
        unsafe { receiver.finish() };
    }
}

/// Takes the value of a parked send.
///
/// # Safety
///
/// The caller won the claim of `sender` and has not published it yet.
unsafe fn take_sent<T>(sender: &Parked<SendSlot<T>>) -> T {
    // SAFETY: the caller's contract is `fill`'s.
    unsafe { sender.fill(|s| s.value.take()) }.expect("a parked send always holds its value until claimed")
}

/// Whether `q` holds an entry of a waiter other than `me` still waiting.
fn has_live_other<S>(q: &VecDeque<Parked<S>>, me: &WaiterRef) -> bool {
    q.iter().any(|e| !e.waiter.same(me) && e.waiter.selection() == Selection::Waiting)
}
