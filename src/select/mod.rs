//! The engine behind every channel operation that may block, and `select!`.
//!
//! An operation is a list of cases (one for a plain `send`/`recv`). Running it:
//!
//! 1. **Try**: visit the cases in a uniformly random order and complete the
//!    first that can complete now (Go's `pollorder`); with `default`, stop here.
//! 2. **Park**: arm the operation's own [`Waiter`] and enqueue an entry for
//!    every non-nil case, pointing at that waiter and at the slot the case
//!    keeps in itself (`park::handoff`: parking allocates nothing); each
//!    channel checks readiness and enqueues under its own lock (as Go's
//!    `selectgo` does holding all of them). If a case turned ready since
//!    step 1, abort the waiter (if nobody claimed it yet), take the entries back
//!    and go to 1. Otherwise sleep until a counterpart claims the waiter for case `i`.
//! 3. **Finish**: collect case `i`'s result and take every other entry back.
//!
//! The async path ([`Operation::poll`]) and the blocking path
//! ([`Operation::block_tried`]) share steps 1–3; they differ only in how they sleep.
//! A `select!` takes its first step 1 over its own tuple of cases, each
//! through its concrete type ([`CaseList::try_case`]), in the same random
//! order ([`try_in_random_order`]); only to park (or for `default`) are its
//! cases lent to the engine as `dyn Case`.
//! Step 2 makes a wake-up impossible to lose: a state change made before a
//! entry is enqueued is seen by the check under the same lock, one made after
//! it finds the entry.

pub(crate) mod case;
mod dynamic;
pub(crate) mod rand;

use std::task::{Context, Poll};

pub(crate) use case::StagedCase;
pub use case::{Case, RecvCase, SendCase};
pub use dynamic::{Select, SelectedCase};

use crate::chan::core::ChanCore;
use crate::park::wait::{self, Note};
use crate::park::waiter::{next_key, Notifier, Selection, Waiter};
use crate::shim::thread;
use crate::snapshot::WaitReason;
use crate::task::waker::WakerId;

/// How many more times a blocking operation yields the CPU, after a short
/// spin, retrying before it enqueues itself: none, it only catches a buffer
/// that a counterpart on another core is about to drain or fill.
const YIELDS_BEFORE_PARKING: u32 = 0;

/// How many times an enqueued blocking operation yields the CPU waiting for
/// a counterpart before it sleeps on a futex (as kanal's signals do): waking
/// a sleeping thread costs 5–30 µs on a VM, and a counterpart that is
/// runnable gets the core meanwhile. A thread in this phase counts as
/// running, not blocked: dumps see it parked only once it sleeps.
const YIELDS_PARKED: u32 = 256;

/// The longest a blocking operation keeps yielding before it parks.
const MAX_YIELDING: std::time::Duration = std::time::Duration::from_micros(50);

/// The state of one (possibly parked) operation over a list of cases.
///
/// Invariant its users keep: a parked operation's channel cases hold queue
/// entries that point into them (`park::handoff`), so the cases stay at
/// their address from the first poll (or `block`) until the operation has
/// finished or been cancelled. [`OneCase`] and [`SelectFuture`] are pinned
/// futures whose drop cancels; [`Operation::block_tried`] runs on its caller's
/// stack and cancels if it unwinds. So a case is still enqueued when it is
/// dropped (or used again) only if its operation leaked, waiter included:
/// the case then takes its entry back itself, and waits out a counterpart
/// through that waiter (`select::case`, `unlink`). The operation counts as
/// parked (and its cancel covers its cases) before any case is enqueued,
/// so that this holds from the first entry on.
///
/// The waiter lives in the operation (`park::waiter`, "Where a waiter
/// lives"): parking allocates nothing. So the operation stays in place too
/// while it is parked: it is `!Unpin` (the waiter is), inside the same
/// pinned future or stack frame as its cases, and a leaked operation leaks
/// its waiter with it, where it was.
pub(crate) struct Operation {
    /// Written in place by the first [`Operation::arm`] (`armed` says
    /// whether it was): an operation that never parks, as a send or receive
    /// that does not block, pays nothing for it. Never dropped: it holds
    /// nothing to drop whenever the operation is not parked (`unpark`
    /// drops what is left of the notifier), and a parked operation is
    /// cancelled or finished before it drops.
    parking: std::mem::MaybeUninit<Parking>,
    /// `parking` is initialised.
    armed: bool,
    /// Entries may point at the waiter (from before its first enqueue until
    /// the operation finishes or is cancelled).
    parked: bool,
    has_default: bool,
    site: &'static std::panic::Location<'static>,
}

/// What an operation needs only once it parks.
struct Parking {
    waiter: Waiter,
    /// The key of the current wait (`wait::Note::key`).
    key: u64,
    /// Which task the armed waiter's waker wakes (async parks only): the
    /// operation's own copy, since a claimer may be taking the waker out of
    /// the waiter while the operation is polled again.
    woken_by: Option<WakerId>,
}

impl Operation {
    pub(crate) fn new(has_default: bool, site: &'static std::panic::Location<'static>) -> Self {
        Operation { parking: std::mem::MaybeUninit::uninit(), armed: false, parked: false, has_default, site }
    }

    /// The parking state; only once armed.
    #[inline]
    fn parking(&self) -> &Parking {
        assert!(self.armed, "an operation's waiter is used only after it was armed");
        // SAFETY: `armed` says the first `arm` initialised it.
        unsafe { self.parking.assume_init_ref() }
    }

    #[inline]
    fn waiter(&self) -> &Waiter {
        &self.parking().waiter
    }

    #[inline]
    fn key(&self) -> u64 {
        self.parking().key
    }

    /// Arms the waiter for a new park woken through `notifier`; returns
    /// the new wait's key.
    #[inline]
    fn arm(&mut self, notifier: Notifier) -> u64 {
        debug_assert!(!self.parked, "an operation arms its waiter only while no entry points at it");
        let key = next_key();
        let woken_by = match &notifier {
            Notifier::Waker(w) => Some(WakerId::of(w)),
            Notifier::Thread { .. } => None,
        };
        let parking = if self.armed {
            // SAFETY: `armed` says it is initialised; no entry points at it
            // (not parked), so this is the only access.
            let p = unsafe { self.parking.assume_init_mut() };
            (p.key, p.woken_by) = (key, woken_by);
            p
        } else {
            self.armed = true;
            self.parking.write(Parking { waiter: Waiter::new(), key, woken_by })
        };
        // SAFETY: the operation owns its waiter and is not parked: no entry
        // points at the waiter and no claimer is inside.
        unsafe { parking.waiter.arm(notifier) };
        key
    }

    /// The waiter has no entry in any queue any more and no claimer inside:
    /// drops what is left of its notifier.
    #[inline]
    fn unpark(&mut self) {
        self.parked = false;
        // SAFETY: every entry was taken back (or never made) and the waiter
        // is `DONE` or aborted, so no claimer is inside.
        unsafe { self.waiter().disarm() };
    }

    /// Whether a claimer's wake reaches what `cx` would wake (false: the
    /// operation was polled from another context since it parked).
    fn woken_through(&self, cx: &Context<'_>) -> bool {
        self.parking().woken_by.as_ref().is_none_or(|id| id.wakes(cx.waker()))
    }

    /// Step 1: completes a ready case, chosen uniformly among the ready ones.
    ///
    /// Without `default`, a case whose hints say it cannot complete is not
    /// tried (its lock is not taken): if the hint was stale, parking finds
    /// the case ready and comes back here. With `default`, every case is
    /// tried, as "nothing is ready" must then be exact.
    fn try_cases<C: Case + ?Sized>(&self, cases: &mut [&mut C]) -> Option<usize> {
        try_in_random_order(cases.len(), |i| cases[i].try_if_worth(self.has_default))
    }

    /// [`Operation::try_cases`] over a `select!`'s own tuple of cases, each
    /// tried through its concrete type (the first poll of a select, before
    /// the cases are lent to the engine as `dyn Case`).
    #[inline]
    fn try_list<L: CaseList + ?Sized>(&self, list: &mut L) -> Option<usize> {
        let has_default = self.has_default;
        try_in_random_order(list.case_count(), |i| list.try_case(i, has_default))
    }

    /// Step 2: enqueues every case. Returns false, with every entry taken back,
    /// if a case turned out ready and the waiter could be aborted (if it could
    /// not, a counterpart has claimed it: it is as good as parked).
    fn park<C: Case + ?Sized>(cases: &mut [&mut C], waiter: &Waiter) -> bool {
        for (i, case) in cases.iter_mut().enumerate() {
            // SAFETY: the cases stay in place until the operation finishes
            // or is cancelled, or they are dropped (`Operation`'s invariant).
            if !unsafe { case.enqueue(waiter, i) } {
                if waiter.try_abort() {
                    Self::dequeue_all(cases);
                    return false;
                }
                return true;
            }
        }
        true
    }

    /// Step 3: collects case `chosen` and takes back every other entry.
    fn finish<C: Case + ?Sized>(&mut self, cases: &mut [&mut C], chosen: usize) -> usize {
        cases[chosen].collect();
        Self::dequeue_all(cases);
        self.unpark();
        chosen
    }

    fn dequeue_all<C: Case + ?Sized>(cases: &mut [&mut C]) {
        for case in cases.iter_mut() {
            case.dequeue();
        }
    }

    fn reason<C: Case + ?Sized>(cases: &[&mut C]) -> WaitReason {
        match cases {
            [] => WaitReason::SelectNoCases,
            [only] => only.reason(),
            _ => WaitReason::Select,
        }
    }

    /// Says what the operation waits on: passes `f` the note for `cases`.
    fn with_note<C: Case + ?Sized>(&self, cases: &[&mut C], key: u64, f: impl FnOnce(Note<'_, '_>)) {
        let mut resources = smallvec::SmallVec::<[_; 4]>::new();
        let mut timer_wakeable = false;
        for case in cases {
            if let Some(r) = case.resource() {
                timer_wakeable |= r.is_timer_armed();
                resources.push((r, case.reason()));
            }
        }
        f(Note { key, reason: Self::reason(cases), site: self.site, resources: &resources, timer_wakeable });
    }

    fn record_wait<C: Case + ?Sized>(&self, cases: &[&mut C], key: u64) {
        if let [only] = cases {
            if let Some(r) = only.resource() {
                // The common case: no note to build (`wait::note_one`).
                return wait::note_one(key, only.reason(), self.site, r, r.is_timer_armed());
            }
        }
        self.with_note(cases, key, |note| {
            wait::note(note);
        });
    }

    /// Polls the operation: `Ready(Some(i))` when case `i` completed,
    /// `Ready(None)` when `default` ran.
    pub(crate) fn poll<C: Case + ?Sized>(&mut self, cases: &mut [&mut C], cx: &mut Context<'_>) -> Poll<Option<usize>> {
        self.poll_tried(cases, cx, false)
    }

    /// [`Operation::poll`], where `tried` says the caller has just tried
    /// every case (and none could complete), so step 1 is skipped once.
    ///
    /// The two polls every parked operation gets, the one that parks and
    /// the one after its wake-up, are kept short; the rest (a spurious
    /// poll, a poll from another context) is in [`Operation::repoll`].
    #[inline]
    fn poll_tried<C: Case + ?Sized>(
        &mut self,
        cases: &mut [&mut C],
        cx: &mut Context<'_>,
        tried: bool,
    ) -> Poll<Option<usize>> {
        if !self.parked {
            return self.start(cases, cx, tried);
        }
        match self.waiter().selection() {
            Selection::Done(i) => Poll::Ready(Some(self.finish(cases, i))),
            _ => self.repoll(cases, cx),
        }
    }

    /// Steps 1 and 2 for an operation not parked: try (unless `tried`),
    /// then park. The try is inline in the caller; the park is a call.
    #[inline]
    fn start<C: Case + ?Sized>(
        &mut self,
        cases: &mut [&mut C],
        cx: &mut Context<'_>,
        tried: bool,
    ) -> Poll<Option<usize>> {
        if !tried {
            if let Some(i) = self.try_cases(cases) {
                return Poll::Ready(Some(i));
            }
        }
        if self.has_default {
            return Poll::Ready(None);
        }
        self.park_or_retry(cases, cx)
    }

    /// [`Operation::start`] once the cases were tried and none could
    /// complete: parks, or, if a case turned ready meanwhile, tries again
    /// (out of line: the retry loop is rare, and inside it the first park
    /// would pay for the loop's hoisted set-up).
    #[inline(never)]
    fn park_or_retry<C: Case + ?Sized>(&mut self, cases: &mut [&mut C], cx: &mut Context<'_>) -> Poll<Option<usize>> {
        match self.try_park(cases, cx) {
            Some(parked) => parked,
            None => self.retry(cases, cx),
        }
    }

    /// The loop of [`Operation::park_or_retry`] after a park found a case
    /// ready: try, then park again.
    #[cold]
    #[inline(never)]
    fn retry<C: Case + ?Sized>(&mut self, cases: &mut [&mut C], cx: &mut Context<'_>) -> Poll<Option<usize>> {
        loop {
            if let Some(i) = self.try_cases(cases) {
                return Poll::Ready(Some(i));
            }
            if let Some(parked) = self.try_park(cases, cx) {
                return parked;
            }
        }
    }

    /// Step 2 once: parks (`Some(Pending)`), or takes everything back and
    /// returns `None` if a case turned ready since it was tried.
    #[inline(always)]
    fn try_park<C: Case + ?Sized>(
        &mut self,
        cases: &mut [&mut C],
        cx: &mut Context<'_>,
    ) -> Option<Poll<Option<usize>>> {
        if cases.iter().all(|c| c.is_nil()) {
            self.record_wait(cases, 0);
            return Some(Poll::Pending);
        }
        let key = self.arm(Notifier::Waker(crate::task::waker::internal_clone(cx.waker())));
        // Say what we wait on before a counterpart can see (and wake) us,
        // so its wake-up finds the task parked rather than still running.
        self.record_wait(cases, key);
        // Parked before any entry points at a case: from here on, its
        // cancel (or its leak) covers them.
        self.parked = true;
        if Self::park(cases, self.waiter()) {
            return Some(Poll::Pending);
        }
        self.unpark();
        wait::retract(self.key());
        None
    }

    /// A poll of a parked operation that is not done: spurious, or from
    /// another context than the one it parked from.
    #[cold]
    #[inline(never)]
    fn repoll<C: Case + ?Sized>(&mut self, cases: &mut [&mut C], cx: &mut Context<'_>) -> Poll<Option<usize>> {
        debug_assert!(self.parked, "only a parked operation is polled again");
        match self.waiter().selection() {
            Selection::Done(i) => Poll::Ready(Some(self.finish(cases, i))),
            // The claimer publishes and wakes us in a moment.
            Selection::Busy if self.woken_through(cx) => Poll::Pending,
            // ... but it wakes the context we parked from, not this one.
            Selection::Busy => {
                let Selection::Done(i) = self.waiter().wait_not_busy() else { unreachable!() };
                Poll::Ready(Some(self.finish(cases, i)))
            }
            Selection::Waiting if self.woken_through(cx) => {
                self.record_wait(cases, self.key());
                Poll::Pending
            }
            Selection::Waiting => {
                // Polled from another context: park again, armed with a
                // waker for it (only a waiter no entry points at is armed).
                if self.waiter().try_abort() {
                    Self::dequeue_all(cases);
                    self.unpark();
                    return self.start(cases, cx, false);
                }
                // Claimed meanwhile: the claimer is about to publish.
                let Selection::Done(i) = self.waiter().wait_not_busy() else { unreachable!() };
                Poll::Ready(Some(self.finish(cases, i)))
            }
            Selection::Aborted => unreachable!("only the operation itself aborts its waiter"),
        }
    }

    /// Runs the operation to completion on the calling OS thread, where
    /// `tried` says the caller has just tried every case (and none could
    /// complete), so step 1 is skipped once.
    ///
    /// Once its entries are enqueued, the thread first waits for a counterpart
    /// by spinning, then yielding (as crossbeam's `Backoff` does) — a
    /// counterpart on another core usually arrives within microseconds — and
    /// only then parks, which is when the registry counts it as blocked.
    fn block_tried<C: Case + ?Sized>(&mut self, cases: &mut [&mut C], tried: bool) -> Option<usize> {
        let guard = CancelOnUnwind { op: self, cases };
        guard.op.block_parked(guard.cases, tried)
    }

    /// The body of [`Operation::block_tried`].
    fn block_parked<C: Case + ?Sized>(&mut self, cases: &mut [&mut C], mut tried: bool) -> Option<usize> {
        loop {
            if !std::mem::take(&mut tried) {
                if let Some(i) = self.try_cases(cases) {
                    return Some(i);
                }
            }
            if self.has_default {
                return None;
            }
            // A buffered channel often has room (or a value) a moment later
            // (an unbuffered one never does until this side parks).
            if cases.iter().any(|c| c.worth_retrying()) {
                let mut chosen = None;
                if Self::spin_until(
                    &mut || {
                        // Without `default`, `try_cases` takes no lock of a case that looks unready.
                        chosen = self.try_cases(cases);
                        chosen.is_some()
                    },
                    YIELDS_BEFORE_PARKING,
                ) {
                    return chosen;
                }
            }
            let task = wait::current();
            if let Some(t) = &task {
                // A notification left by an earlier operation that completed
                // while spinning is stale: from here on, one is for this one.
                t.enter_running();
            }
            if cases.iter().all(|c| c.is_nil()) {
                self.block_until(cases, 0, || false);
            }
            let key = self.arm(Notifier::Thread { thread: thread::current(), task });
            // As in `start`: parked before any entry points at a case.
            self.parked = true;
            if !Self::park(cases, self.waiter()) {
                self.unpark();
                continue;
            }
            let waiter = self.waiter();
            let done = || matches!(waiter.selection(), Selection::Done(_));
            if !Self::spin_until(&mut || done(), YIELDS_PARKED) {
                self.block_until(cases, key, done);
            }
            let Selection::Done(i) = self.waiter().selection() else { unreachable!() };
            return Some(self.finish(cases, i));
        }
    }

    /// Spins, then yields, until `done()`: at most `yields` more times after
    /// the spin, and for at most [`MAX_YIELDING`]. False if it still is not
    /// done (at once under loom, whose threads must park).
    fn spin_until(done: &mut impl FnMut() -> bool, yields: u32) -> bool {
        if cfg!(loom) {
            return false;
        }
        let backoff = crossbeam_utils::Backoff::new();
        while !backoff.is_completed() {
            backoff.snooze();
            if done() {
                return true;
            }
        }
        if yields == 0 {
            return false;
        }
        // Time-bounded too: on a loaded machine one yield can last a whole
        // time slice of another process.
        let start = std::time::Instant::now();
        for _ in 0..yields {
            thread::yield_now();
            if done() {
                return true;
            }
            if start.elapsed() > MAX_YIELDING {
                break;
            }
        }
        false
    }

    fn block_until<C: Case + ?Sized>(&self, cases: &[&mut C], key: u64, done: impl Fn() -> bool) {
        self.with_note(cases, key, |note| wait::block_thread(note, done, thread::park));
    }

    /// Cancels a parked operation (its future was dropped). If a counterpart
    /// completed it meanwhile, the result is handed back (see [`Case::abandon`]).
    pub(crate) fn cancel<C: Case + ?Sized>(&mut self, cases: &mut [&mut C]) {
        if !self.parked {
            return;
        }
        if !self.waiter().try_abort() {
            if let Selection::Done(i) = self.waiter().wait_not_busy() {
                cases[i].abandon();
            }
        }
        Self::dequeue_all(cases);
        self.unpark();
    }
}

/// Cancels a blocking operation that unwinds while parked: the caller may
/// catch the panic and then move its cases, which `Operation`'s invariant
/// forbids while they are enqueued.
struct CancelOnUnwind<'o, 's, 'c, C: Case + ?Sized> {
    op: &'o mut Operation,
    cases: &'s mut [&'c mut C],
}

impl<C: Case + ?Sized> Drop for CancelOnUnwind<'_, '_, '_, C> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.op.cancel(self.cases);
        }
    }
}

/// One blocking operation of a primitive (a send, a receive, a lock, a wait)
/// as a future: the case and the engine's state. Every primitive's future is
/// this (a channel's from its first failed try on, see [`Staged`]); dropping
/// it withdraws the operation (see [`Operation::cancel`]).
pub(crate) struct OneCase<C: Case> {
    pub(crate) case: C,
    op: Operation,
}

impl<C: Case> OneCase<C> {
    pub(crate) fn new(case: C, site: &'static std::panic::Location<'static>) -> Self {
        OneCase { case, op: Operation::new(false, site) }
    }

    /// Polls the operation; `Ready` once the case completed.
    ///
    /// The fast path: an operation not parked yet tries its case directly
    /// (statically dispatched, no engine), which is all a lock or wait that
    /// does not block ever runs (a channel's send or receive tries before
    /// it is built, [`Staged`]); and one that is bound to block goes
    /// straight to parking, without taking the primitive's lock to try
    /// first (see `Case::looks_ready`).
    #[inline]
    pub(crate) fn poll_case(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let parked = self.op.parked;
        // A try that looks futile is skipped: parking rechecks under the lock.
        if !parked && self.case.try_if_worth(false) {
            return Poll::Ready(());
        }
        self.op.poll_tried(&mut [&mut self.case], cx, !parked).map(|_| ())
    }

    /// Polls an operation whose case its caller has just tried (and found
    /// it could not complete): straight to parking.
    #[inline]
    pub(crate) fn poll_after_try(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        self.op.poll_tried(&mut [&mut self.case], cx, true).map(|_| ())
    }

    /// Runs the operation on the calling OS thread; returns the completed case.
    /// The same fast path as [`OneCase::poll_case`] comes first.
    #[inline]
    pub(crate) fn block(mut case: C, site: &'static std::panic::Location<'static>) -> C {
        if !case.try_if_worth(false) {
            Operation::new(false, site).block_tried(&mut [&mut case], true);
        }
        case
    }
}

impl<C: Case> Drop for OneCase<C> {
    #[inline]
    fn drop(&mut self) {
        if self.op.parked {
            self.op.cancel(&mut [&mut self.case]);
        }
    }
}

/// The future of a channel's `send` or `recv`, in two stages. *Fresh*, it
/// holds only the channel and what the try needs (a send's value): a send
/// or receive that does not block builds, polls and drops nothing more.
/// Once a try fails, the full operation ([`OneCase`]: the case with its
/// hand-over slot, the engine with its waiter) is written in its place, and
/// from then on it stays there: the channel's queues point into it while it
/// is parked. Dropping it cancels the operation as `OneCase`'s drop does.
/// The blocking `send_blocking`/`recv_blocking` run the same two stages
/// ([`Staged::block`]).
pub(crate) enum Staged<'a, T, C: StagedCase<'a, T>> {
    Fresh {
        chan: Option<&'a ChanCore<T>>,
        /// Taken by the first poll.
        arg: Option<C::Arg>,
        site: &'static std::panic::Location<'static>,
    },
    Parking(OneCase<C>),
}

impl<'a, T, C: StagedCase<'a, T>> Staged<'a, T, C> {
    pub(crate) fn new(
        chan: Option<&'a ChanCore<T>>,
        arg: C::Arg,
        site: &'static std::panic::Location<'static>,
    ) -> Self {
        Staged::Fresh { chan, arg: Some(arg), site }
    }

    /// The fresh stage's try, shared by the async and blocking paths: the
    /// output if it completed, the argument back if the operation must park
    /// (a nil channel never completes).
    #[inline]
    fn try_first(chan: Option<&'a ChanCore<T>>, arg: C::Arg) -> Result<C::Output, C::Arg> {
        match chan {
            Some(c) => C::try_fresh(c, arg),
            None => Err(arg),
        }
    }

    /// The same operation on the calling OS thread, run to completion: the
    /// fresh try, then the full case on this stack frame, blocking.
    #[inline]
    pub(crate) fn block(
        chan: Option<&'a ChanCore<T>>,
        arg: C::Arg,
        site: &'static std::panic::Location<'static>,
    ) -> C::Output {
        let arg = match Self::try_first(chan, arg) {
            Ok(out) => return out,
            Err(arg) => arg,
        };
        let mut case = C::build(chan, arg);
        Operation::new(false, site).block_tried(&mut [&mut case], true);
        case.take_output()
    }
}

impl<'a, T, C: StagedCase<'a, T>> std::future::Future for Staged<'a, T, C> {
    type Output = C::Output;

    /// Polls the operation: the try of a fresh one, then the engine.
    #[inline]
    fn poll(self: std::pin::Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<C::Output> {
        // SAFETY: a `Parking` operation is never moved (it is polled in
        // place); a `Fresh` one is replaced in place, as `Pin::set` does,
        // before anything points into it.
        let this = unsafe { self.get_unchecked_mut() };
        if let Staged::Fresh { chan, arg, site } = this {
            let (chan, site) = (*chan, *site);
            let arg = arg.take().expect("parkwatch: a channel future polled after it completed");
            let arg = match Self::try_first(chan, arg) {
                Ok(out) => return Poll::Ready(out),
                Err(arg) => arg,
            };
            *this = Staged::Parking(OneCase::new(C::build(chan, arg), site));
            let Staged::Parking(op) = this else { unreachable!("just built") };
            return op.poll_after_try(cx).map(|()| op.case.take_output());
        }
        let Staged::Parking(op) = this else { unreachable!("a fresh operation was handled above") };
        op.poll_case(cx).map(|()| op.case.take_output())
    }
}

/// Parks the current task forever: `select! {}` and operations on nil channels.
#[doc(hidden)]
pub fn park_forever_blocking(reason: WaitReason) -> ! {
    let site = std::panic::Location::caller();
    loop {
        let note = Note { key: 0, reason, site, resources: &[], timer_wakeable: false };
        wait::block_thread(note, || false, thread::park);
    }
}

/// A future that never completes, parked with `reason`.
#[doc(hidden)]
pub struct Forever {
    reason: WaitReason,
    site: &'static std::panic::Location<'static>,
}

impl std::future::Future for Forever {
    type Output = std::convert::Infallible;
    fn poll(self: std::pin::Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Self::Output> {
        wait::note(Note { key: 0, reason: self.reason, site: self.site, resources: &[], timer_wakeable: false });
        Poll::Pending
    }
}

/// `select! {}`: parks the current task forever with reason "select (no cases)".
#[doc(hidden)]
#[track_caller]
pub fn park_forever(reason: WaitReason) -> Forever {
    Forever { reason, site: std::panic::Location::caller() }
}

/// Step 1's order: tries cases `0..n` through `try_case` in a uniformly
/// random order (Go's `pollorder`); the first that completes is chosen.
#[inline]
fn try_in_random_order(n: usize, mut try_case: impl FnMut(usize) -> bool) -> Option<usize> {
    match n {
        0 => None,
        1 => try_case(0).then_some(0),
        // Two cases (the usual select): one random draw is their whole
        // permutation (measured cheaper than drawing it through
        // `Permutation` or an iterator over both kinds).
        2 => {
            let first = rand::below(2);
            [first, 1 - first].into_iter().find(|&i| try_case(i))
        }
        _ => rand::Permutation::new(n).find(|&i| try_case(i)),
    }
}

/// A fixed list of cases of possibly different types (a tuple, built by
/// `select!`), lent to the engine as a `dyn` slice for the length of one call.
/// Holding the concrete cases, not trait objects, keeps a `select!` future
/// `Send` whenever its channels' element types are.
#[doc(hidden)]
pub trait CaseList {
    /// Calls `f` with the cases as a slice.
    fn with_cases<R>(&mut self, f: impl FnOnce(&mut [&mut dyn Case]) -> R) -> R;
    /// How many cases.
    fn case_count(&self) -> usize;
    /// Step 1 for case `i` alone, statically dispatched: tries it if it
    /// looks ready (every case, with `default`); whether it completed.
    fn try_case(&mut self, i: usize, has_default: bool) -> bool;
}

/// A pinned tuple of cases, split into its pinned cases: how `select!`
/// reaches the chosen case's result after the select.
#[doc(hidden)]
pub trait ProjectCases {
    /// A tuple of `Pin<&mut _>`, one per case.
    type Projected<'a>
    where
        Self: 'a;
    /// Splits the pinned tuple.
    fn project(self: std::pin::Pin<&mut Self>) -> Self::Projected<'_>;
}

macro_rules! tuple_case_list {
    ($($n:tt $t:ident),*) => {
        impl<$($t: Case),*> CaseList for ($($t,)*) {
            fn with_cases<R>(&mut self, f: impl FnOnce(&mut [&mut dyn Case]) -> R) -> R {
                f(&mut [$(&mut self.$n as &mut dyn Case),*])
            }
            #[inline]
            fn case_count(&self) -> usize {
                let indices: &[usize] = &[$($n),*];
                indices.len()
            }
            #[inline]
            #[allow(unused_variables)]
            fn try_case(&mut self, i: usize, has_default: bool) -> bool {
                match i {
                    $($n => self.$n.try_if_worth(has_default),)*
                    _ => false,
                }
            }
        }

        impl<$($t: Case),*> ProjectCases for ($($t,)*) {
            type Projected<'a> = ($(std::pin::Pin<&'a mut $t>,)*) where Self: 'a;
            #[allow(clippy::unused_unit)]
            fn project(self: std::pin::Pin<&mut Self>) -> Self::Projected<'_> {
                // SAFETY: structural pinning: no case is ever moved out of
                // a pinned tuple, and each stays pinned through its `Pin`.
                let _this = unsafe { self.get_unchecked_mut() };
                // SAFETY: as above.
                ($(unsafe { std::pin::Pin::new_unchecked(&mut _this.$n) },)*)
            }
        }
    };
}

tuple_case_list!();
tuple_case_list!(0 A);
tuple_case_list!(0 A, 1 B);
tuple_case_list!(0 A, 1 B, 2 C);
tuple_case_list!(0 A, 1 B, 2 C, 3 D);
tuple_case_list!(0 A, 1 B, 2 C, 3 D, 4 E);
tuple_case_list!(0 A, 1 B, 2 C, 3 D, 4 E, 5 F);
tuple_case_list!(0 A, 1 B, 2 C, 3 D, 4 E, 5 F, 6 G);
tuple_case_list!(0 A, 1 B, 2 C, 3 D, 4 E, 5 F, 6 G, 7 H);
tuple_case_list!(0 A, 1 B, 2 C, 3 D, 4 E, 5 F, 6 G, 7 H, 8 I);
tuple_case_list!(0 A, 1 B, 2 C, 3 D, 4 E, 5 F, 6 G, 7 H, 8 I, 9 J);
tuple_case_list!(0 A, 1 B, 2 C, 3 D, 4 E, 5 F, 6 G, 7 H, 8 I, 9 J, 10 K);
tuple_case_list!(0 A, 1 B, 2 C, 3 D, 4 E, 5 F, 6 G, 7 H, 8 I, 9 J, 10 K, 11 L);
tuple_case_list!(0 A, 1 B, 2 C, 3 D, 4 E, 5 F, 6 G, 7 H, 8 I, 9 J, 10 K, 11 L, 12 M);
tuple_case_list!(0 A, 1 B, 2 C, 3 D, 4 E, 5 F, 6 G, 7 H, 8 I, 9 J, 10 K, 11 L, 12 M, 13 N);
tuple_case_list!(0 A, 1 B, 2 C, 3 D, 4 E, 5 F, 6 G, 7 H, 8 I, 9 J, 10 K, 11 L, 12 M, 13 N, 14 O);
tuple_case_list!(0 A, 1 B, 2 C, 3 D, 4 E, 5 F, 6 G, 7 H, 8 I, 9 J, 10 K, 11 L, 12 M, 13 N, 14 O, 15 P);

/// The future of `select!` (and of [`Select::select`]): runs the engine over
/// a pinned case list. While parked, channel queues point into the cases
/// (`Operation`'s invariant); the pin keeps them in place even if this
/// future is leaked, and a case dropped while parked takes its entry back.
#[doc(hidden)]
pub struct SelectFuture<'c, L: CaseList + ?Sized> {
    cases: std::pin::Pin<&'c mut L>,
    op: Operation,
}

impl<L: CaseList + ?Sized> SelectFuture<'_, L> {
    /// Lends the cases to `f`, with the engine.
    fn with_cases<R>(&mut self, f: impl FnOnce(&mut Operation, &mut [&mut dyn Case]) -> R) -> R {
        // SAFETY: the engine never moves a case out of the list.
        let cases = unsafe { self.cases.as_mut().get_unchecked_mut() };
        let op = &mut self.op;
        cases.with_cases(|cases| f(op, cases))
    }
}

impl<L: CaseList + ?Sized> std::future::Future for SelectFuture<'_, L> {
    type Output = Option<usize>;
    fn poll(self: std::pin::Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<usize>> {
        // SAFETY: nothing is moved out of the future: the operation (whose
        // waiter entries point at) stays where it is.
        let this = unsafe { self.get_unchecked_mut() };
        if this.op.parked {
            return this.with_cases(|op, cases| op.poll(cases, cx));
        }
        // Not parked: step 1 over the concrete cases; the engine, over
        // `dyn Case`, only for `default` or to park.
        // SAFETY: the cases are only tried, not moved.
        let list = unsafe { this.cases.as_mut().get_unchecked_mut() };
        if let Some(i) = this.op.try_list(list) {
            return Poll::Ready(Some(i));
        }
        this.with_cases(|op, cases| op.poll_tried(cases, cx, true))
    }
}

impl<L: CaseList + ?Sized> Drop for SelectFuture<'_, L> {
    #[inline]
    fn drop(&mut self) {
        // Only a parked operation has anything to cancel (a completed one,
        // the usual drop, lends out no cases).
        if self.op.parked {
            self.with_cases(|op, cases| op.cancel(cases));
        }
    }
}

/// Used by `select!`: waits until one case completes (`Some(index)`), or
/// returns `None` at once when `has_default` and nothing is ready.
#[doc(hidden)]
#[track_caller]
pub fn select_async<L: CaseList + ?Sized>(cases: std::pin::Pin<&mut L>, has_default: bool) -> SelectFuture<'_, L> {
    SelectFuture { cases, op: Operation::new(has_default, std::panic::Location::caller()) }
}

/// Used by `select_blocking!`: the same on an OS thread.
#[doc(hidden)]
#[track_caller]
pub fn select_blocking<L: CaseList + ?Sized>(cases: &mut L, has_default: bool) -> Option<usize> {
    let mut op = Operation::new(has_default, std::panic::Location::caller());
    // Step 1 over the concrete cases, as `SelectFuture`'s first poll does.
    if let Some(i) = op.try_list(cases) {
        return Some(i);
    }
    cases.with_cases(|cases| op.block_tried(cases, true))
}

#[cfg(test)]
mod tests {
    use std::future::Future;
    use std::pin::pin;
    use std::task::{Context, Poll, Waker};

    use super::{RecvCase, SendCase, Staged};
    use crate::chan::core::ChanCore;
    use crate::SendError;

    fn poll<F: Future>(f: std::pin::Pin<&mut F>) -> Poll<F::Output> {
        f.poll(&mut Context::from_waker(Waker::noop()))
    }

    /// A send or receive that completes at its first try never builds the
    /// full operation; one bound to block builds it in place and parks, and
    /// its drop takes the queue entry back.
    #[test]
    fn staged_operations_build_the_full_operation_only_to_park() {
        let site = std::panic::Location::caller();
        let core = ChanCore::<u32>::new(1);
        let mut send = pin!(Staged::<u32, SendCase<'_, u32>>::new(Some(&core), 7, site));
        assert_eq!(poll(send.as_mut()), Poll::Ready(Ok(())), "room in the buffer");
        assert!(matches!(*send, Staged::Fresh { .. }), "completed fresh, nothing built");

        let mut blocked = pin!(Staged::<u32, SendCase<'_, u32>>::new(Some(&core), 8, site));
        assert!(poll(blocked.as_mut()).is_pending(), "the buffer is full");
        assert!(matches!(*blocked, Staged::Parking(_)), "built in place to park");

        let mut recv = pin!(Staged::<u32, RecvCase<'_, u32>>::new(Some(&core), (), site));
        assert_eq!(poll(recv.as_mut()), Poll::Ready(Some(7)), "the buffered value first");
        assert!(matches!(*recv, Staged::Fresh { .. }));
        assert_eq!(poll(blocked.as_mut()), Poll::Ready(Ok(())), "the parked send refilled the buffer");
        assert_eq!(core.try_recv(), Ok(8));

        let mut waiting = Box::pin(Staged::<u32, RecvCase<'_, u32>>::new(Some(&core), (), site));
        assert!(poll(waiting.as_mut()).is_pending());
        assert!(matches!(*waiting, Staged::Parking(_)));
        assert_eq!(core.parked_receivers().len(), 1);
        drop(waiting);
        assert!(core.parked_receivers().is_empty(), "the dropped receive took its entry back");

        core.close().unwrap();
        let mut late = pin!(Staged::<u32, SendCase<'_, u32>>::new(Some(&core), 9, site));
        assert_eq!(poll(late.as_mut()), Poll::Ready(Err(SendError(9))), "a closed channel gives the value back");
    }

    #[test]
    #[should_panic(expected = "polled after it completed")]
    fn a_completed_staged_operation_is_not_polled_again() {
        let core = ChanCore::<u32>::new(1);
        let mut send = pin!(Staged::<u32, SendCase<'_, u32>>::new(Some(&core), 7, std::panic::Location::caller()));
        assert!(poll(send.as_mut()).is_ready());
        let _ = poll(send.as_mut());
    }
}
