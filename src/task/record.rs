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

use std::sync::atomic::{AtomicIsize, AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::Waker;
use std::time::Instant;

use crate::park::resource::Resource;
use crate::shim::lock;
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
    pub(crate) since: Instant,
    /// What it waits on, each with its activity count when the task parked
    /// and the operation waiting on it.
    pub(crate) resources: smallvec::SmallVec<[(Arc<Resource>, u64, WaitReason); 2]>,
    pub(crate) stack: Option<Arc<Stack>>,
    pub(crate) stack_sampled: bool,
    /// A timer may complete it (sleep, a select on an armed timer channel).
    pub(crate) timer_wakeable: bool,
}

struct Joiners {
    finished: bool,
    wakers: Vec<Waker>,
}

/// The registry's entry for one task.
pub(crate) struct TaskRecord {
    pub(crate) id: TaskId,
    pub(crate) name: Option<Box<str>>,
    pub(crate) kind: TaskKind,
    pub(crate) spawned_at: &'static std::panic::Location<'static>,
    pub(crate) parent: Option<TaskId>,
    /// Who spawned it (resolved to a function name only when a dump asks).
    pub(crate) spawner: Option<Arc<crate::stack::Spawner>>,
    pub(crate) group: Arc<Group>,
    run: AtomicU8,
    /// Clones of the task's waker held outside parkwatch (a tokio timer, a
    /// socket, a foreign future): while non-zero the task may wake on its own.
    outside_wakers: AtomicUsize,
    pub(crate) wait: Mutex<Option<WaitInfo>>,
    /// Source of `WaitInfo::seq`.
    pub(crate) next_seq: AtomicU64,
    joiners: Mutex<Joiners>,
}

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
            name,
            kind,
            spawned_at,
            parent,
            spawner,
            group,
            run: AtomicU8::new(RUNNING),
            outside_wakers: AtomicUsize::new(0),
            wait: Mutex::new(None),
            next_seq: AtomicU64::new(1),
            joiners: Mutex::new(Joiners { finished: false, wakers: Vec::new() }),
        })
    }

    pub(crate) fn run_state(&self) -> u8 {
        self.run.load(Ordering::SeqCst)
    }

    /// A poll (or a thread's wake-up) begins.
    pub(crate) fn enter_running(&self) {
        if self.run.swap(RUNNING, Ordering::SeqCst) == PARKED {
            // Polled without a notify (tokio may poll spuriously): live again.
            self.group.add_live();
        }
    }

    /// A poll returned `Pending` (or a thread is about to block). `parked` says
    /// whether only parkwatch waits, with no timer and no outside waker, can
    /// wake it. If it was notified meanwhile, it stays notified.
    pub(crate) fn leave_running(self: &Arc<Self>, noted_wait: bool) {
        let parked = noted_wait
            && self.outside_wakers.load(Ordering::SeqCst) == 0
            && !lock(&self.wait).as_ref().is_some_and(|w| w.timer_wakeable);
        let to = if parked { PARKED } else { IDLE };
        if self.run.compare_exchange(RUNNING, to, Ordering::SeqCst, Ordering::SeqCst).is_ok() && parked {
            self.group.remove_live();
            crate::detect::watch::on_park(self);
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
            j.finished = true;
            std::mem::take(&mut j.wakers)
        };
        for w in wakers {
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
        if j.finished {
            return false;
        }
        if !j.wakers.iter().any(|w| w.will_wake(waker)) {
            j.wakers.push(waker.clone());
        }
        true
    }

    /// Still parked (only parkwatch can wake it) in the wait numbered `seq`?
    pub(crate) fn parked_in(&self, seq: Option<u64>) -> bool {
        let wait = lock(&self.wait);
        self.run_state() == PARKED && wait.as_ref().map(|w| w.seq) == seq && seq.is_some()
    }

    pub(crate) fn outside_waker_cloned(&self) {
        self.outside_wakers.fetch_add(1, Ordering::SeqCst);
    }

    pub(crate) fn outside_waker_dropped(&self) {
        self.outside_wakers.fetch_sub(1, Ordering::SeqCst);
    }
}
