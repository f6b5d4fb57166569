//! One registry entry per task: identity, run state and the current wait.
//!
//! ## Run state and the live counter
//!
//! Each task (async task or registered thread) is in one run state. Its
//! [`Group`] (one per runtime) counts the tasks that are *live*: every state
//! but `PARKED`. A group whose live count reaches zero has every task parked on
//! a parkwatch primitive that no timer can wake: a global deadlock.
//!
//! ```text
//!              poll ends, wait noted,            notify (a counterpart
//!              no outside/timer waker            completed the wait)
//!   RUNNING ───────────────────────────▶ PARKED ───────────────────▶ NOTIFIED
//!      │  ▲      (live -= 1; 0 ⇒ check)             (live += 1)          │
//!      │  └───────────────── poll starts ◀───────────────────────────────┘
//!      └── poll ends otherwise ──▶ IDLE (live: an outside waker or timer may wake it)
//! ```
//!
//! Invariants:
//! - only `RUNNING → PARKED` decrements and only `PARKED → (anything)` increments,
//!   both by CAS, so the counter equals the number of non-`PARKED` tasks;
//! - a party that can wake a parked task notifies it *before* that party itself
//!   parks or finishes (the counterpart notifies inside its operation; a finishing
//!   task notifies its joiners before it leaves the count), so the count never
//!   touches zero while a wake is owed.

use std::cell::UnsafeCell;
use std::sync::atomic::{AtomicBool, AtomicIsize, AtomicU32, AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;
use std::task::Waker;

use crate::park::resource::Resource;
use crate::park::wait::{Noted, Watch};
use crate::shim::{lock, PlainMutex as Mutex};
use crate::snapshot::{TaskId, TaskKind, WaitReason};
use crate::stack::Stack;

pub(crate) const RUNNING: u8 = 0;
pub(crate) const IDLE: u8 = 1;
pub(crate) const PARKED: u8 = 2;
pub(crate) const NOTIFIED: u8 = 3;
pub(crate) const FINISHED: u8 = 4;

static NEXT_TASK: AtomicU64 = AtomicU64::new(1);

/// The tasks of one runtime, and what the deadlock check needs to know of them.
pub(crate) struct Group {
    pub(crate) id: u64,
    /// Tasks not in `PARKED`. Zero means nothing can make progress.
    live: AtomicIsize,
    /// Whether a verdict may be given (a runtime's group, while its main task runs).
    detecting: std::sync::atomic::AtomicBool,
    /// The main task of the current `block_on` (0: none).
    main: AtomicU64,
    /// Where a verdict for the running `block_on` goes.
    pub(crate) verdict: crate::runtime::deadlock::Verdict,
    #[allow(dead_code)] // read by the leak detector
    pub(crate) leak_after: std::time::Duration,
    /// How long the main task must be stuck before a probable deadlock ends `block_on`.
    pub(crate) grace: std::time::Duration,
    /// Set by the deadlock check when every task is parked; cleared when one wakes.
    dead: std::sync::atomic::AtomicBool,
    /// Whether a probable deadlock of the main task ends `block_on` (true),
    /// or only proven ones do (`run`: a service is not killed on evidence).
    pub(crate) probable_is_fatal: std::sync::atomic::AtomicBool,
}

impl Group {
    pub(crate) fn new(
        id: u64,
        detecting: bool,
        leak_after: std::time::Duration,
        grace: std::time::Duration,
    ) -> Arc<Group> {
        Arc::new(Group {
            id,
            live: AtomicIsize::new(0),
            detecting: std::sync::atomic::AtomicBool::new(detecting),
            main: AtomicU64::new(0),
            verdict: Default::default(),
            leak_after,
            grace,
            dead: std::sync::atomic::AtomicBool::new(false),
            probable_is_fatal: std::sync::atomic::AtomicBool::new(true),
        })
    }

    pub(crate) fn set_main(&self, id: TaskId) {
        self.main.store(id.0, Ordering::SeqCst);
    }

    pub(crate) fn main(&self) -> Option<TaskId> {
        Some(TaskId(self.main.load(Ordering::SeqCst))).filter(|id| id.0 != 0)
    }

    pub(crate) fn live(&self) -> isize {
        self.live.load(Ordering::SeqCst)
    }

    pub(crate) fn start_detecting(&self) {
        self.detecting.store(true, Ordering::SeqCst);
    }

    pub(crate) fn stop_detecting(&self) {
        self.detecting.store(false, Ordering::SeqCst);
    }

    pub(crate) fn is_detecting(&self) -> bool {
        self.detecting.load(Ordering::SeqCst)
    }

    fn add_live(&self) {
        if self.live.fetch_add(1, Ordering::SeqCst) == 0 {
            self.dead.store(false, Ordering::SeqCst);
        }
    }

    /// Marks the group deadlocked (the check verified every task parked).
    pub(crate) fn mark_dead(&self) {
        self.dead.store(true, Ordering::SeqCst);
        if self.live() != 0 {
            self.dead.store(false, Ordering::SeqCst);
        }
    }

    pub(crate) fn is_dead(&self) -> bool {
        self.dead.load(Ordering::SeqCst)
    }

    #[inline]
    fn remove_live(self: &Arc<Self>) {
        if self.live.fetch_sub(1, Ordering::SeqCst) == 1 {
            crate::runtime::deadlock::check_dead(self);
        }
    }
}

/// What a parked task waits on, recorded by the primitive that parked it.
pub(crate) struct WaitInfo {
    /// Identifies the blocked operation (its waiter's key), so a spurious
    /// re-poll of the same operation keeps its stack and start time.
    pub(crate) key: u64,
    /// Numbers the task's waits: a task seen parked twice with the same `seq`
    /// stayed in the same wait in between (used to verify definite findings).
    pub(crate) seq: u64,
    pub(crate) reason: WaitReason,
    pub(crate) site: &'static std::panic::Location<'static>,
    pub(crate) since: crate::park::clock::WaitStart,
    /// What it waits on, each with its activity count when the task parked
    /// and the operation waiting on it.
    pub(crate) resources: smallvec::SmallVec<[(Arc<Resource>, u64, WaitReason); 2]>,
    pub(crate) stack: Option<Arc<Stack>>,
    pub(crate) stack_sampled: bool,
    /// A timer may complete it (sleep, a select on an armed timer channel).
    pub(crate) timer_wakeable: bool,
}

/// A task's name behind one thin pointer: 8 bytes in every record instead of
/// 16, and one more allocation only for the (few) named tasks.
pub(crate) struct TaskName(Box<Box<str>>);

impl std::ops::Deref for TaskName {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

/// The registry's entry for one task.
///
/// It is also what the task's parkwatch wakers point to (see `task::waker`),
/// so it keeps tokio's waker for the task.
pub(crate) struct TaskRecord {
    pub(crate) id: TaskId,
    pub(crate) name: Option<TaskName>,
    pub(crate) kind: TaskKind,
    pub(crate) spawned_at: &'static std::panic::Location<'static>,
    pub(crate) parent: Option<TaskId>,
    /// Who spawned it (resolved to a function name only when a dump asks).
    pub(crate) spawner: Option<Arc<crate::stack::Spawner>>,
    pub(crate) group: Arc<Group>,
    run: AtomicU8,
    /// Clones of the task's waker held outside parkwatch (a tokio timer, a
    /// socket, a foreign future): while non-zero the task may wake on its own.
    outside_wakers: AtomicU32,
    pub(crate) wait: Mutex<Option<WaitInfo>>,
    /// Source of `WaitInfo::seq`; written only under `wait`'s lock (see `take_seq`).
    next_seq: AtomicU64,
    /// Wakers of the tasks joining this one, allocated by the first joiner
    /// (most tasks are never joined while they run; most joined ones, once).
    joiners: Mutex<Option<Box<smallvec::SmallVec<[Waker; 1]>>>>,
    /// The task finished: no joiner may register any more. Read and written
    /// only with `joiners` locked (an atomic only to sit in the record's padding).
    joiners_closed: AtomicBool,
    /// A harness (`task::harness::Instrumented`) polls this task; at most one may.
    harnessed: AtomicBool,
    /// tokio's waker for the task, as first handed to its harness; see
    /// [`TaskRecord::tokio_waker`] for who may read and write it.
    tokio_waker: UnsafeCell<Option<Waker>>,
}

// SAFETY: every field but `tokio_waker` is `Sync`. `tokio_waker` is written
// once, by the task's only harness (`harnessed` makes it unique), while no
// waker pointing at the record exists yet (the harness makes the first one
// right after writing it); every other access is a read, by that harness or
// through such a waker, which was handed over after the write (so the write
// happens before the read). `set_tokio_waker` and `tokio_waker` are `unsafe`
// with exactly these conditions. `Waker` is `Send + Sync`, so sharing `&Waker`
// between threads is fine.
unsafe impl Sync for TaskRecord {}

impl TaskRecord {
    pub(crate) fn new(
        name: Option<Box<str>>,
        kind: TaskKind,
        spawned_at: &'static std::panic::Location<'static>,
        parent: Option<TaskId>,
        group: Arc<Group>,
        spawner: Option<Arc<crate::stack::Spawner>>,
    ) -> Arc<TaskRecord> {
        group.add_live();
        Arc::new(TaskRecord {
            id: TaskId(NEXT_TASK.fetch_add(1, Ordering::Relaxed)),
            name: name.map(|n| TaskName(Box::new(n))),
            kind,
            spawned_at,
            parent,
            spawner,
            group,
            run: AtomicU8::new(RUNNING),
            outside_wakers: AtomicU32::new(0),
            wait: Mutex::new(None),
            next_seq: AtomicU64::new(1),
            joiners: Mutex::new(None),
            joiners_closed: AtomicBool::new(false),
            harnessed: AtomicBool::new(false),
            tokio_waker: UnsafeCell::new(None),
        })
    }

    /// Claims the record for a harness; panics if one already has it (the
    /// `tokio_waker` slot relies on a single writer).
    pub(crate) fn claim_harness(&self) {
        assert!(!self.harnessed.swap(true, Ordering::Relaxed), "task {} polled by two harnesses", self.id);
    }

    /// tokio's waker for the task, if the harness has set it.
    ///
    /// # Safety
    ///
    /// No `set_tokio_waker` may run concurrently: the caller is the record's
    /// harness (the only writer, see [`TaskRecord::claim_harness`]), or it
    /// holds a parkwatch waker pointing at this record (made by
    /// `waker::root_on_record` after the slot was set, so after the only write).
    pub(crate) unsafe fn tokio_waker(&self) -> Option<&Waker> {
        // SAFETY: per this function's contract nobody writes the slot while
        // the returned borrow (tied to `&self`) lives: it is written only once,
        // by the harness, before any waker pointing at the record exists.
        unsafe { (*self.tokio_waker.get()).as_ref() }
    }

    /// Sets tokio's waker for the task (once).
    ///
    /// # Safety
    ///
    /// The caller is the record's harness (it called `claim_harness`), the
    /// slot is empty, and no waker pointing at this record exists, so nobody
    /// else reads or writes the slot now.
    pub(crate) unsafe fn set_tokio_waker(&self, waker: Waker) {
        // SAFETY: per this function's contract the access is exclusive: the
        // only reads are by the harness (the caller, not borrowing the slot
        // now) and through wakers pointing at the record, of which none exist.
        let slot = unsafe { &mut *self.tokio_waker.get() };
        debug_assert!(slot.is_none(), "tokio waker of task {} set twice", self.id);
        *slot = Some(waker);
    }

    pub(crate) fn run_state(&self) -> u8 {
        self.run.load(Ordering::SeqCst)
    }

    /// The number of the task's next wait. Called only by `park::wait::note`
    /// under the `wait` lock, so a load and a store suffice (no atomic
    /// read-modify-write on every park).
    pub(crate) fn take_seq(&self) -> u64 {
        let seq = self.next_seq.load(Ordering::Relaxed);
        self.next_seq.store(seq + 1, Ordering::Relaxed);
        seq
    }

    /// A poll (or a thread's wake-up) begins.
    #[inline]
    pub(crate) fn enter_running(&self) {
        if self.run.swap(RUNNING, Ordering::SeqCst) == PARKED {
            // Polled without a notify (tokio may poll spuriously): live again.
            self.group.add_live();
        }
    }

    /// A poll returned `Pending` (or a thread is about to block), with `noted`
    /// what the waits it noted add up to (None: it waits on something outside
    /// parkwatch). It is parked if only parkwatch can wake it: a wait noted, no
    /// timer and no outside waker. If it was notified meanwhile, it stays notified.
    #[inline]
    pub(crate) fn leave_running(self: &Arc<Self>, noted: Option<Noted>) {
        let parked = noted.is_some_and(|n| !n.timer_wakeable) && self.outside_wakers.load(Ordering::SeqCst) == 0;
        let to = if parked { PARKED } else { IDLE };
        if self.run.compare_exchange(RUNNING, to, Ordering::SeqCst, Ordering::SeqCst).is_ok() && parked {
            self.group.remove_live();
            match noted.map(|n| n.watch) {
                None | Some(Watch::Nothing) => {}
                Some(watch) => crate::detect::watch::on_park(self, watch),
            }
        }
    }

    /// Somebody woke the task (a counterpart, a timer, an outside waker).
    pub(crate) fn notify(&self) {
        let mut cur = self.run.load(Ordering::SeqCst);
        loop {
            if cur == NOTIFIED || cur == FINISHED {
                return;
            }
            match self.run.compare_exchange(cur, NOTIFIED, Ordering::SeqCst, Ordering::SeqCst) {
                Ok(_) => {
                    if cur == PARKED {
                        self.group.add_live();
                    }
                    return;
                }
                Err(actual) => cur = actual,
            }
        }
    }

    /// The task's future completed or was dropped: wake its joiners first (they
    /// become live), then leave the count.
    pub(crate) fn finish(self: &Arc<Self>) {
        let wakers = {
            let mut j = lock(&self.joiners);
            self.joiners_closed.store(true, Ordering::Relaxed);
            j.take()
        };
        for w in wakers.into_iter().flat_map(|w| *w) {
            w.wake();
        }
        if self.run.swap(FINISHED, Ordering::SeqCst) != PARKED {
            self.group.remove_live();
        }
        *lock(&self.wait) = None;
    }

    /// Registers `waker` to be woken when the task finishes; false if it already has.
    pub(crate) fn add_joiner(&self, waker: &Waker) -> bool {
        let mut j = lock(&self.joiners);
        if self.joiners_closed.load(Ordering::Relaxed) {
            return false;
        }
        let wakers = j.get_or_insert_with(Box::default);
        if !wakers.iter().any(|w| w.will_wake(waker)) {
            wakers.push(waker.clone());
        }
        true
    }

    /// Still parked (only parkwatch can wake it) in the wait numbered `seq`?
    pub(crate) fn parked_in(&self, seq: Option<u64>) -> bool {
        let wait = lock(&self.wait);
        self.run_state() == PARKED && wait.as_ref().map(|w| w.seq) == seq && seq.is_some()
    }

    pub(crate) fn outside_waker_cloned(&self) {
        // 2^32 live clones would take 64 GiB of wakers; only leaked (forgotten)
        // clones can get there. Like `Arc`'s count, abort rather than wrap.
        if self.outside_wakers.fetch_add(1, Ordering::SeqCst) == u32::MAX {
            std::process::abort();
        }
    }

    #[cfg(test)]
    pub(crate) fn outside_wakers(&self) -> u32 {
        self.outside_wakers.load(Ordering::SeqCst)
    }

    pub(crate) fn outside_waker_dropped(&self) {
        self.outside_wakers.fetch_sub(1, Ordering::SeqCst);
    }
}
