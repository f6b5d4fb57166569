//! The global deadlock: Go's `checkdead`, run the moment a runtime's live
//! count reaches zero.
//!
//! Go checks when an OS thread goes idle, counts threads running user code,
//! then looks for pending timers. parkwatch keeps that verdict exact and makes
//! it cheaper and sharper (see `task::record` for the counter):
//! - a task counts as live while it runs, is runnable, or waits on anything
//!   outside parkwatch (an outside waker clone is alive), and a registered
//!   thread while it runs user code — any of them means no verdict;
//! - a pending timer keeps a task live only if it can wake that task (the task
//!   sleeps, or waits on an armed `after`/`tick` channel): a ticker nobody
//!   listens to does not hide a deadlock, where Go would give up;
//! - when the count reaches zero, the check re-reads every task of the runtime
//!   and gives the verdict only if each is still parked (a transition racing
//!   the count leaves a task non-parked, and its own next park re-checks).

use std::fmt;
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;

use crate::detect::{Certainty, Finding};
use crate::shim::lock;
use crate::snapshot::{Snapshot, TaskInfo};
use crate::task::record::{Group, PARKED};
use crate::task::registry;

/// The header Go prints, with "goroutines" made "tasks".
pub const GLOBAL_HEADER: &str = "fatal error: all tasks are asleep - deadlock!";

/// The header of a partial deadlock of the main task (other tasks still run).
pub const PARTIAL_HEADER: &str = "fatal error: the main task is deadlocked";

/// A deadlock that stopped [`Runtime::block_on`](crate::Runtime::block_on):
/// every task involved, and the report [`run`](crate::run) prints.
#[derive(Clone)]
pub struct Deadlock(Box<Inner>);

#[derive(Clone)]
struct Inner {
    tasks: Vec<TaskInfo>,
    global: bool,
    report: String,
    finding: Option<Finding>,
}

impl Deadlock {
    pub(crate) fn global(snapshot: Snapshot) -> Deadlock {
        let report = format!("{GLOBAL_HEADER}\n\n{}", crate::dump::text(&snapshot, 2));
        Deadlock(Box::new(Inner { tasks: snapshot.tasks, global: true, report, finding: None }))
    }

    /// A partial deadlock involving the main task: the finding, and a dump of
    /// the tasks in it.
    pub(crate) fn partial(finding: Finding, snapshot: &Snapshot) -> Deadlock {
        let involved = snapshot.filter(|t| finding.tasks.contains(&t.id));
        let certainty = match finding.certainty {
            Certainty::Definite => "definite",
            Certainty::Probable => "probable",
            Certainty::Suspected => "suspected",
        };
        let report =
            format!("{PARTIAL_HEADER} ({certainty})\n\n{}\n\n{}", finding.explanation, crate::dump::text(&involved, 2));
        Deadlock(Box::new(Inner { tasks: involved.tasks, global: false, report, finding: Some(finding) }))
    }

    /// The finding behind a partial deadlock (none for a global one).
    pub fn finding(&self) -> Option<&Finding> {
        self.0.finding.as_ref()
    }

    /// The tasks in the deadlock (for a global one: every task of the runtime).
    pub fn tasks(&self) -> &[TaskInfo] {
        &self.0.tasks
    }

    /// True when no task of the runtime could make progress (Go's verdict).
    pub fn is_global(&self) -> bool {
        self.0.global
    }

    /// The full report, as [`run`](crate::run) prints it.
    pub fn report(&self) -> &str {
        &self.0.report
    }
}

impl fmt::Display for Deadlock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.report)
    }
}

impl fmt::Debug for Deadlock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl std::error::Error for Deadlock {}

/// Where a runtime's verdict is left for its `block_on` to pick up.
#[derive(Default)]
pub(crate) struct Verdict {
    slot: Mutex<Option<Deadlock>>,
    ready: Notify,
}

impl Verdict {
    pub(crate) fn give(&self, d: Deadlock) {
        let mut slot = lock(&self.slot);
        if slot.is_none() {
            *slot = Some(d);
            self.ready.notify_one();
        }
    }

    /// Forgets a verdict left by an earlier `block_on`.
    pub(crate) fn clear(&self) {
        lock(&self.slot).take();
    }

    /// Waits for a verdict.
    pub(crate) async fn wait(&self) -> Deadlock {
        loop {
            if let Some(d) = lock(&self.slot).take() {
                return d;
            }
            self.ready.notified().await;
        }
    }
}

/// The check run when `group`'s live count reaches zero.
pub(crate) fn check_dead(group: &Arc<Group>) {
    let mut all_parked = true;
    let mut main_alive = false;
    let mut records = Vec::new();
    registry::for_each(|r| {
        if r.group.id == group.id {
            all_parked &= r.run_state() == PARKED;
            main_alive |= Some(r.id) == group.main();
            records.push(r.clone());
        }
    });
    // A main task that has returned ends the program: no verdict after it.
    if !all_parked || !main_alive || group.live() != 0 {
        return;
    }
    group.mark_dead();
    if group.is_detecting() && group.is_dead() {
        let snapshot = crate::snapshot::snapshot_where(crate::snapshot::Stacks::Resolved, |r| r.group.id == group.id);
        group.verdict.give(Deadlock::global(snapshot));
    }
}
