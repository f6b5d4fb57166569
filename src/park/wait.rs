//! Recording waits against the current task, and blocking an OS thread.
//!
//! A task is polled inside the harness (`task::harness`), which makes its
//! record *current* on the thread for the duration of the poll. A primitive
//! that returns `Pending` calls [`note`] to say what the task now waits on;
//! if the whole poll returns `Pending` with nothing noted, the task waits on
//! something outside parkwatch. A registered thread is current for its whole
//! life and parks through [`block_thread`].

use std::cell::Cell;
use std::marker::PhantomData;
use std::ptr::NonNull;
use std::sync::Arc;

use crate::park::resource::Resource;
use crate::shim::lock;
use crate::snapshot::WaitReason;
use crate::task::record::{TaskRecord, WaitInfo};

type WaitResources = smallvec::SmallVec<[(std::sync::Arc<Resource>, u64, WaitReason); 2]>;

/// What the waits noted in one poll add up to: what the harness needs to
/// decide the task's state without reading the wait record again.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Noted {
    /// A timer may still wake the task (so it is not parked for good).
    pub(crate) timer_wakeable: bool,
    /// What the park-time detector (`detect::watch::on_park`) looks at.
    pub(crate) watch: Watch,
}

/// What the park-time detector looks at once the task is parked.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) enum Watch {
    /// Nothing: no lock, and not receives only.
    #[default]
    Nothing,
    /// A single receive, on the channel of this resource: orphaned if the
    /// channel has no sender handle left once the task is parked. The
    /// resource is one the task's wait record holds (an `Arc` in its
    /// resource list), and only the task itself replaces that list (in
    /// [`note`]), never between the poll that noted it and the detector's
    /// look right after it, on the same thread: it is alive there.
    Receive(NonNull<Resource>),
    /// A wait the detector reads the record for: a lock, or a select of
    /// receives (whose senders may all be gone).
    Record,
}

impl Watch {
    /// For a wait with `reason` on a single `resource` (an operation of
    /// one case, whose own reason is `reason`).
    #[inline]
    fn of_one(reason: WaitReason, resource: &Arc<Resource>) -> Watch {
        match reason {
            WaitReason::ChanReceive => Watch::Receive(NonNull::from(&**resource)),
            _ => Watch::of_reason(reason),
        }
    }

    /// For a wait with `reason` on any other list of resources.
    #[inline]
    fn of_reason(reason: WaitReason) -> Watch {
        match reason {
            WaitReason::ChanReceive
            | WaitReason::Select
            | WaitReason::MutexLock
            | WaitReason::RwMutexLock
            | WaitReason::RwMutexRLock => Watch::Record,
            _ => Watch::Nothing,
        }
    }
}

impl Noted {
    /// From the note alone.
    fn of(n: &Note<'_, '_>) -> Noted {
        let watch = match n.resources {
            [(r, op)] if *op == n.reason => Watch::of_one(n.reason, r),
            _ => Watch::of_reason(n.reason),
        };
        Noted { timer_wakeable: n.timer_wakeable, watch }
    }

    /// Two notes of one poll (a task awaiting two primitives at once): the
    /// detector reads the record if either wait is one it looks at.
    fn and(self, other: Noted) -> Noted {
        let watch = match (self.watch, other.watch) {
            (Watch::Nothing, Watch::Nothing) => Watch::Nothing,
            _ => Watch::Record,
        };
        Noted { timer_wakeable: self.timer_wakeable || other.timer_wakeable, watch }
    }
}

thread_local! {
    /// The record of the task current on this thread (null: none). Invariant:
    /// non-null only while the [`EnterGuard`] that set it lives, on this
    /// thread's stack; that guard borrows or owns an `Arc` of the record, so
    /// the record is alive whenever this points at it. Guards restore the
    /// previous value when they drop, innermost first (they are locals).
    static CURRENT: Cell<*const TaskRecord> = const { Cell::new(std::ptr::null()) };
    /// What the waits noted during the current poll add up to (None: none noted).
    static NOTED: Cell<Option<Noted>> = const { Cell::new(None) };
    /// The current task's id (0: none), a copy of `CURRENT`'s for the
    /// primitives' non-blocking paths, which record who holds a lock or uses
    /// a channel: one TLS read instead of a read, a null check and a load
    /// from the record (6 instructions more per buffered message, callgrind).
    static CURRENT_ID: Cell<u64> = const { Cell::new(0) };
}

/// The id of the current task, 0 outside any task. Cheap: one TLS read.
#[inline]
pub(crate) fn current_id() -> u64 {
    CURRENT_ID.try_with(Cell::get).unwrap_or(0)
}

/// The current task's record (`CURRENT`), if there is one.
#[inline]
fn current_ptr() -> Option<*const TaskRecord> {
    CURRENT.try_with(Cell::get).ok().filter(|p| !p.is_null())
}

/// Runs `f` on the current task's record, if there is one.
fn with_current<R>(f: impl FnOnce(&TaskRecord) -> R) -> Option<R> {
    // SAFETY: a non-null `CURRENT` points at a record kept alive by the
    // guard that set it, which is still alive (see `CURRENT`).
    current_ptr().map(|record| f(unsafe { &*record }))
}

/// Makes `record` current until the guard drops (which restores the
/// previous one). The guard borrows the caller's `Arc`: a poll needs no
/// reference count of its own.
#[inline]
pub(crate) fn enter(record: &Arc<TaskRecord>) -> EnterGuard<'_> {
    EnterGuard::set(Arc::as_ptr(record), record.id.0, None)
}

/// [`enter`] for a guard that owns its record (a thread's, current for the
/// thread's whole life).
pub(crate) fn enter_owned(record: Arc<TaskRecord>) -> EnterGuard<'static> {
    EnterGuard::set(Arc::as_ptr(&record), record.id.0, Some(record))
}

/// Restores the previously current task when dropped.
pub(crate) struct EnterGuard<'a> {
    prev: *const TaskRecord,
    prev_noted: Option<Noted>,
    prev_id: u64,
    /// Keeps the record alive for a guard made by [`enter_owned`].
    _owned: Option<Arc<TaskRecord>>,
    _borrowed: PhantomData<&'a TaskRecord>,
}

impl EnterGuard<'_> {
    /// Makes `record` (with id `id`) current; the caller keeps it alive
    /// for the guard's life (`enter`'s borrow, or `owned`).
    #[inline]
    fn set<'a>(record: *const TaskRecord, id: u64, owned: Option<Arc<TaskRecord>>) -> EnterGuard<'a> {
        let prev_id = CURRENT_ID.with(|c| c.replace(id));
        let prev = CURRENT.with(|c| c.replace(record));
        let prev_noted = NOTED.with(|c| c.replace(None));
        EnterGuard { prev, prev_noted, prev_id, _owned: owned, _borrowed: PhantomData }
    }

    /// What the waits noted since `enter` add up to (None: no wait noted).
    #[inline]
    pub(crate) fn noted(&self) -> Option<Noted> {
        NOTED.with(Cell::get)
    }
}

impl Drop for EnterGuard<'_> {
    #[inline]
    fn drop(&mut self) {
        // try_with: the guard may drop during thread teardown.
        let _ = CURRENT.try_with(|c| c.set(self.prev));
        let _ = NOTED.try_with(|c| c.set(self.prev_noted));
        let _ = CURRENT_ID.try_with(|c| c.set(self.prev_id));
    }
}

/// The current task's record, if this code runs inside a parkwatch task or thread.
pub(crate) fn current() -> Option<Arc<TaskRecord>> {
    current_ptr().map(|record| {
        // SAFETY: `CURRENT` is `Arc::as_ptr` of a record that a live guard
        // keeps alive (see `CURRENT`), so adding a strong count and taking
        // it as an `Arc` is sound.
        unsafe {
            Arc::increment_strong_count(record);
            Arc::from_raw(record)
        }
    })
}

/// What a blocked operation waits on.
pub(crate) struct Note<'a, 'r> {
    /// Identifies the operation (its waiter's key); 0 for waits that never end.
    pub(crate) key: u64,
    pub(crate) reason: WaitReason,
    pub(crate) site: &'static std::panic::Location<'static>,
    /// Each resource waited on, with the operation waiting on it (its case's reason).
    pub(crate) resources: &'a [(&'r std::sync::Arc<Resource>, WaitReason)],
    pub(crate) timer_wakeable: bool,
}

/// Records `note` as what the current task waits on (nothing outside a task).
/// A second note in the same poll (a task awaiting two primitives at once, as
/// in `join!`) adds its resources to the first. Returns what the waits noted
/// in this poll add up to (None outside a task).
pub(crate) fn note(n: Note<'_, '_>) -> Option<Noted> {
    with_current(|record| {
        let mut wait = lock(&record.wait);
        if let Some(noted) = NOTED.with(Cell::get) {
            if let Some(w) = wait.as_mut() {
                w.resources.extend(n.resources.iter().map(|&(r, op)| (r.clone(), r.activity(), op)));
                w.timer_wakeable |= n.timer_wakeable;
                NOTED.with(|c| c.set(Some(noted.and(Noted::of(&n)))));
            }
            return NOTED.with(Cell::get);
        }
        let noted = Noted::of(&n);
        match wait.as_mut() {
            // The same operation polled again: keep its stack, start time and
            // activity baseline.
            Some(w) if w.key == n.key && n.key != 0 => {
                w.timer_wakeable = n.timer_wakeable;
            }
            // A new wait of a task that waited before: updated in place. A
            // task usually waits on what it waited on last time, where it
            // waited last time: the references to those are kept instead of
            // dropped and cloned.
            Some(w) => {
                begin_again(w, record, n.key, n.reason, n.site);
                refill(&mut w.resources, n.resources);
                w.timer_wakeable = n.timer_wakeable;
            }
            None => {
                let captured = crate::stack::capture(n.site, None);
                let mut resources = WaitResources::new();
                refill(&mut resources, n.resources);
                *wait = Some(WaitInfo {
                    key: n.key,
                    seq: record.take_seq(),
                    reason: n.reason,
                    site: n.site,
                    since: crate::park::clock::wait_start(),
                    resources,
                    stack_sampled: captured.as_ref().is_some_and(|c| c.1),
                    stack: captured.map(|c| c.0),
                    timer_wakeable: n.timer_wakeable,
                });
            }
        }
        NOTED.with(|c| c.set(Some(noted)));
        Some(noted)
    })
    .flatten()
}

/// [`note`] for the most common wait by far: an operation of one case (a
/// send, a receive, a lock) on `resource`, by a task whose previous wait
/// was on the same resource alone (a loop over a channel), noted first in
/// its poll. It updates that wait in place, with what `note` would write,
/// without building a [`Note`]; any other wait goes through `note`.
#[inline(always)]
pub(crate) fn note_one(
    key: u64,
    reason: WaitReason,
    site: &'static std::panic::Location<'static>,
    resource: &Arc<Resource>,
    timer_wakeable: bool,
) {
    let Some(record) = current_ptr() else { return };
    // SAFETY: a non-null `CURRENT` points at a record kept alive by the
    // guard that set it, which is still alive (see `CURRENT`).
    let record = unsafe { &*record };
    if NOTED.with(Cell::get).is_none() {
        let mut wait = lock(&record.wait);
        if let Some(w) = wait.as_mut() {
            if matches!(w.resources.as_slice(), [kept] if Arc::ptr_eq(&kept.0, resource)) {
                // A new wait (not the same operation polled again): as in
                // `note`, in place.
                if w.key != key {
                    begin_again(w, record, key, reason, site);
                    if let [kept] = w.resources.as_mut_slice() {
                        (kept.1, kept.2) = (resource.activity(), reason);
                    }
                }
                w.timer_wakeable = timer_wakeable;
                let noted = Noted { timer_wakeable, watch: Watch::of_one(reason, resource) };
                NOTED.with(|c| c.set(Some(noted)));
                return;
            }
        }
    }
    note(Note { key, reason, site, resources: &[(resource, reason)], timer_wakeable });
}

/// Turns the task's previous wait `w` into a new one, in place (its
/// resources are the caller's to update): a new key, number, reason, site
/// and start, and a stack for the site (its own, kept, or one the site's
/// capture policy gives). Always inline: it is on every park, and out of
/// line it cost 20 instructions per rendezvous message (callgrind).
#[inline(always)]
fn begin_again(
    w: &mut WaitInfo,
    record: &TaskRecord,
    key: u64,
    reason: WaitReason,
    site: &'static std::panic::Location<'static>,
) {
    let since = crate::park::clock::wait_start();
    if !reuses_own_stack(w, site, since) {
        recapture(w, site);
    }
    w.key = key;
    w.seq = record.take_seq();
    w.reason = reason;
    w.site = site;
    w.since = since;
}

/// Takes a new stack for wait `w` at `site` (as the site's capture policy
/// decides), handing the policy the one `w` held.
#[inline]
fn recapture(w: &mut WaitInfo, site: &'static std::panic::Location<'static>) {
    if w.stack.is_none() && !crate::stack::capturing() {
        // Capture is off (`PARKWATCH_BACKTRACE=0`): nothing to hand over.
        w.stack_sampled = false;
        return;
    }
    recapture_with_policy(w, site);
}

/// [`recapture`] with capture on: asks the site's policy (`stack::capture`).
#[inline(never)]
fn recapture_with_policy(w: &mut WaitInfo, site: &'static std::panic::Location<'static>) {
    let captured = crate::stack::capture(site, w.stack.take());
    w.stack_sampled = captured.as_ref().is_some_and(|c| c.1);
    w.stack = captured.map(|c| c.0);
}

/// Whether a task whose previous wait was `w` keeps that wait's stack for a
/// new wait at `site` beginning at `since`, without asking the site's
/// capture policy (`stack::capture`): when the previous wait was at the
/// same site and began in the same tick of the coarse clock
/// (`park::clock`, 1–4 ms). A task parking at one line again and again (a
/// loop over a channel) then consults the policy at most once per tick
/// instead of at every park, and the stack it keeps is its own, taken at
/// that line moments ago; it is marked sampled, as a stack the policy
/// reuses is.
fn reuses_own_stack(
    w: &mut WaitInfo,
    site: &'static std::panic::Location<'static>,
    since: crate::park::clock::WaitStart,
) -> bool {
    let reuse = w.since == since && std::ptr::eq(w.site, site) && w.stack.is_some();
    w.stack_sampled |= reuse;
    reuse
}

/// Makes `kept` the list of `new` resources, each with its activity count
/// now, reusing the references `kept` already holds to the same resources.
#[inline]
fn refill(kept: &mut WaitResources, new: &[(&std::sync::Arc<Resource>, WaitReason)]) {
    // The common case, a single send or receive parking again on the same
    // channel: only the activity baseline and the operation change.
    if let ([k], [(r, op)]) = (kept.as_mut_slice(), new) {
        if std::sync::Arc::ptr_eq(&k.0, r) {
            (k.1, k.2) = (r.activity(), *op);
            return;
        }
    }
    refill_all(kept, new);
}

/// [`refill`] for any other list.
#[cold]
#[inline(never)]
fn refill_all(kept: &mut WaitResources, new: &[(&std::sync::Arc<Resource>, WaitReason)]) {
    for (i, &(r, op)) in new.iter().enumerate() {
        let entry = (r.activity(), op);
        match kept.get_mut(i) {
            Some(k) if std::sync::Arc::ptr_eq(&k.0, r) => (k.1, k.2) = entry,
            Some(k) => *k = (r.clone(), entry.0, entry.1),
            None => kept.push((r.clone(), entry.0, entry.1)),
        }
    }
    kept.truncate(new.len());
}

/// Takes back the note of wait `key` made in this poll (its operation
/// completed after all instead of parking).
pub(crate) fn retract(key: u64) {
    with_current(|record| {
        let mut wait = lock(&record.wait);
        if wait.as_ref().is_some_and(|w| w.key == key) {
            *wait = None;
            NOTED.with(|c| c.set(None));
        }
    });
}

/// Forgets the current task's wait (it is running again).
pub(crate) fn clear_current_wait() {
    with_current(|record| {
        let _ = NOTED.try_with(|c| c.set(None));
        *lock(&record.wait) = None;
    });
}

/// Blocks the calling OS thread until `done()` holds, recording `note` as its
/// wait. `park` is the thread's park primitive (std's or loom's); the thread is
/// unparked by whoever makes `done()` true.
pub(crate) fn block_thread(n: Note<'_, '_>, done: impl Fn() -> bool, park: impl Fn()) {
    let record = current();
    if let Some(r) = &record {
        r.leave_running(note(n));
    }
    while !done() {
        park();
    }
    if let Some(r) = &record {
        r.enter_running();
        clear_current_wait();
    }
}
