//! The waiter: the meeting point between a parked operation and the task that
//! completes it.
//!
//! A blocked `send`, `recv`, `select`, lock or wait keeps one [`Waiter`] inside
//! itself (in its pinned future, or on the blocked thread's stack) and
//! enqueues an entry pointing at it ([`WaiterRef`]) in the queue of every
//! primitive it waits on (one entry per select case): parking allocates
//! nothing. Whoever completes the operation — a counterpart, `close`, an
//! unlock — must first *claim* the waiter:
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
//!   and parks again);
//! - the winner takes the notifier out of the waiter while it is `BUSY` and
//!   wakes through it after `DONE` without touching the waiter again: once
//!   `DONE` is published the operation may finish and its waiter be gone.
//!
//! ## Who touches the notifier
//!
//! The notifier sits in a [`HandOff`], under the slot rules of
//! `park::handoff`: the owner writes it ([`Waiter::arm`]) while no entry
//! points at the waiter, the winner of the claim takes it until it
//! publishes, and the owner drops what is left ([`Waiter::disarm`]) once the
//! waiter is `DONE` or aborted and its entries are out of every queue.
//!
//! ## Where a waiter lives
//!
//! Invariant (kept by `select::Operation`, which owns every waiter): a
//! waiter stays at its address, alive, while an entry in some queue points
//! at it, and, once a party won its claim, until that party has published.
//! Its operation takes its entries back out, under each queue's lock,
//! before it finishes or is dropped, and waits out a `BUSY` claimer; a
//! leaked operation leaves its waiter where it was, inside the leaked pinned
//! future (the pin guarantees that memory is never reused).

use std::marker::PhantomPinned;
use std::ptr::NonNull;
use std::task::Waker;

use crate::park::handoff::HandOff;
use crate::shim::{self, AtomicUsize, Ordering};
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
}

impl Notifier {
    /// Wakes the parked side, consuming the notifier (a waker's own wake).
    fn notify(self) {
        match self {
            Notifier::Waker(w) => w.wake(),
            Notifier::Thread { thread, task } => {
                if let Some(task) = task {
                    task.notify();
                }
                thread.unpark();
            }
        }
    }
}

/// One blocked operation (a single send/recv, or a whole select), kept in
/// the operation itself (see the module docs for where it lives).
pub(crate) struct Waiter {
    state: AtomicUsize,
    /// How to wake the parked side (see "Who touches the notifier").
    notifier: HandOff<Option<Notifier>>,
    /// The task that waits (0: outside any task). Set by the owner while no
    /// entry points at the waiter; read through entries. An atomic only to
    /// be shared; it orders nothing.
    task: std::sync::atomic::AtomicU64,
    /// Entries point at the waiter: it must not move.
    _pinned: PhantomPinned,
}

// SAFETY: `state` and `task` are atomics; the notifier is `Send` and moved
// between threads under the hand-over rules (module docs), which is what
// `HandOff`'s `Sync` needs.
unsafe impl Sync for Waiter {}

/// Blocks of wait keys handed to threads; touched once per [`KEY_BLOCK`]
/// parks of a thread, so that parking on two cores does not contend on one
/// counter.
static NEXT_KEY_BLOCK: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

/// Keys per block.
const KEY_BLOCK: u64 = 1 << 16;

std::thread_local! {
    /// The next key of this thread's block, and the end of the block.
    static KEYS: std::cell::Cell<(u64, u64)> = const { std::cell::Cell::new((0, 0)) };
}

/// A new wait key, unique in the process (for parked operations, and for
/// waits that have no waiter: sleeps, joins). Never 0, which means "a wait
/// that never ends". It tells a re-poll of one wait from a new wait.
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

impl Default for Waiter {
    fn default() -> Self {
        Waiter::new()
    }
}

impl Waiter {
    /// A waiter not armed yet: `WAITING`, with nobody to wake.
    pub(crate) fn new() -> Waiter {
        Waiter {
            state: AtomicUsize::new(WAITING),
            notifier: HandOff::new(None),
            task: std::sync::atomic::AtomicU64::new(0),
            _pinned: PhantomPinned,
        }
    }

    /// Readies the waiter for a park of the current task or thread, woken
    /// through `notifier`.
    ///
    /// # Safety
    ///
    /// The caller owns the waiter, no entry points at it, and no claimer is
    /// inside (it was never enqueued, or it is `DONE` or aborted and its
    /// entries were taken back).
    #[inline]
    pub(crate) unsafe fn arm(&self, notifier: Notifier) {
        self.task.store(crate::park::wait::current_id(), std::sync::atomic::Ordering::Relaxed);
        // SAFETY: per this function's contract the owner is the one party
        // that may touch the notifier now (module docs).
        unsafe { self.notifier.with(|n| *n = Some(notifier)) };
        self.state.store(WAITING, Ordering::Relaxed);
    }

    /// Drops what is left of the notifier (a waiter that completed itself,
    /// or aborted, still holds it).
    ///
    /// # Safety
    ///
    /// As for [`Waiter::arm`]: the owner, with no entry pointing at the
    /// waiter and no claimer inside.
    #[inline]
    pub(crate) unsafe fn disarm(&self) {
        // SAFETY: per this function's contract, as in `arm`.
        drop(unsafe { self.notifier.with(Option::take) });
    }

    /// The task that waits (0: outside any task).
    pub(crate) fn task(&self) -> u64 {
        self.task.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Tries to become the party that completes `case`. On success the caller
    /// must fill the case's slot and then call [`Waiter::finish`].
    #[inline]
    pub(crate) fn try_claim(&self, case: usize) -> bool {
        debug_assert!(case < BUSY_BIT);
        self.state.compare_exchange(WAITING, BUSY_BIT | case, Ordering::AcqRel, Ordering::Acquire).is_ok()
    }

    /// Publishes the result and wakes the parked side. The waiter may be
    /// gone as soon as the result is published, so the notifier is taken
    /// out first and used after.
    ///
    /// # Safety
    ///
    /// The caller won [`Waiter::try_claim`] for `case` and has not
    /// published yet; it does not touch the waiter after this call.
    pub(crate) unsafe fn finish(&self, case: usize) {
        debug_assert_eq!(self.state.load(Ordering::Relaxed), BUSY_BIT | case, "finish without the claim");
        // SAFETY: the caller holds the claim: while `BUSY` it is the one
        // party that may touch the notifier (module docs).
        let notifier = unsafe { self.notifier.with(Option::take) };
        self.state.store(case, Ordering::Release);
        if let Some(n) = notifier {
            n.notify();
        }
    }

    /// The operation gives up; false if somebody already claimed it (then its
    /// result must be collected, see [`Waiter::wait_not_busy`]).
    pub(crate) fn try_abort(&self) -> bool {
        self.state.compare_exchange(WAITING, ABORTED, Ordering::AcqRel, Ordering::Acquire).is_ok()
    }

    #[inline]
    pub(crate) fn selection(&self) -> Selection {
        match self.state.load(Ordering::Acquire) {
            WAITING => Selection::Waiting,
            ABORTED => Selection::Aborted,
            s if s & BUSY_BIT != 0 => Selection::Busy,
            case => Selection::Done(case),
        }
    }

    /// Spins until a claimer has published (it is a few instructions from
    /// `finish`). Used only where parking is impossible (in `Drop`).
    pub(crate) fn wait_not_busy(&self) -> Selection {
        loop {
            match self.selection() {
                Selection::Busy => shim::thread::yield_now(),
                s => return s,
            }
        }
    }
}

/// A queue entry's pointer to the waiter of a parked operation.
///
/// It dereferences to the waiter; see [`WaiterRef::new`] for why that is
/// sound. A clone is the same pointer under the same contract (the
/// contract is about the waiter's life, not about how many refs exist).
#[derive(Clone)]
pub(crate) struct WaiterRef(NonNull<Waiter>);

// SAFETY: a `WaiterRef` is a `&Waiter` kept alive by the protocol of
// `WaiterRef::new`; `Waiter` is `Sync`.
unsafe impl Send for WaiterRef {}
// SAFETY: as above.
unsafe impl Sync for WaiterRef {}

impl WaiterRef {
    /// A reference to `waiter` for a queue entry.
    ///
    /// # Safety
    ///
    /// `waiter` stays at its address, alive, while the reference is
    /// dereferenced (module docs, "Where a waiter lives"): the reference is
    /// kept in a queue whose lock the owner takes to remove it before the
    /// waiter moves or dies; a party that takes it out of the queue
    /// dereferences it only under that lock, or after winning the claim
    /// until it publishes (`Waiter::finish`).
    pub(crate) unsafe fn new(waiter: &Waiter) -> WaiterRef {
        WaiterRef(NonNull::from(waiter))
    }

    /// Whether this points at `waiter` (compares addresses only).
    pub(crate) fn is(&self, waiter: &Waiter) -> bool {
        std::ptr::eq(self.0.as_ptr(), waiter)
    }

    /// Whether both point at the same waiter (compares addresses only).
    pub(crate) fn same(&self, other: &WaiterRef) -> bool {
        self.0 == other.0
    }
}

impl std::ops::Deref for WaiterRef {
    type Target = Waiter;
    fn deref(&self) -> &Waiter {
        // SAFETY: the waiter is alive and in place whenever a reference is
        // dereferenced (the contract of `WaiterRef::new`).
        unsafe { self.0.as_ref() }
    }
}
