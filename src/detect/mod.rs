//! Detectors over a [`Snapshot`]: the global deadlock, partial deadlocks
//! (lock cycles, orphaned waits, stuck sets) and leak suspects.
//!
//! Every [`Finding`] carries a [`Certainty`]:
//! - **Definite**: proven from facts that cannot be wrong — a lock is held by
//!   the task that acquired it, a parked task stays parked until woken, a
//!   channel with no live handle on one side can never be operated from that
//!   side, and a runtime where every task is parked on parkwatch with no
//!   timer able to wake any of them is dead (Go's rule). Never a false positive.
//! - **Probable**: a *stuck set* — parked tasks whose resources nobody outside
//!   the set has touched for a grace period, and whose every known waker is in
//!   the set or gone. Strong evidence, not proof (Rust has no reachability).
//! - **Suspected**: a task parked longer than `leak_after`, grouped by site.

pub(crate) mod analyze;
pub(crate) mod graph;
pub(crate) mod watch;

use serde::{Deserialize, Serialize};

pub use graph::{EdgeKind, WaitForEdge, WaitForGraph, WaitForNode};

use crate::snapshot::{Location, ResourceId, TaskId};

/// How sure a finding is.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Certainty {
    /// Proven; never a false positive.
    Definite,
    /// A stuck set with no outside activity for the grace period.
    Probable,
    /// Parked longer than `leak_after`.
    Suspected,
}

/// What kind of problem a finding is.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum FindingKind {
    /// Every task of a runtime is parked and no timer can wake any (Go's verdict).
    GlobalDeadlock,
    /// A task waits for a lock it holds itself.
    DoubleLock,
    /// Tasks wait for locks in a cycle (AB-BA, or longer), possibly through a
    /// queued writer of an RwMutex (recursive read).
    LockCycle,
    /// A wait that nothing can ever complete: the side that could wake it has
    /// no live handle left.
    OrphanedWait,
    /// Parked tasks whose resources only they (or nobody) can operate.
    StuckSet,
    /// Tasks parked at one site for longer than `leak_after`.
    LeakSuspect,
}

/// One problem found, with everything involved and a plain explanation.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Finding {
    /// How sure it is.
    pub certainty: Certainty,
    /// What kind of problem.
    pub kind: FindingKind,
    /// Every task involved.
    pub tasks: Vec<TaskId>,
    /// Every resource involved (channels, locks, wait groups).
    pub resources: Vec<ResourceId>,
    /// What happened, naming each task, what it waits on, who holds it or
    /// could wake it, and the source lines.
    pub explanation: String,
    /// For leak suspects: the park site shared by the group.
    pub site: Option<Location>,
}

/// What [`Snapshot::analyze`](crate::Snapshot::analyze) found.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Analysis {
    /// Some runtime is in a global deadlock (Go's "all goroutines are asleep").
    pub global_deadlock: bool,
    /// Global and partial deadlocks, definite first.
    pub deadlocks: Vec<Finding>,
    /// Leak suspects, largest groups first.
    pub leaks: Vec<Finding>,
}

impl Analysis {
    /// Every finding, deadlocks first.
    pub fn findings(&self) -> impl Iterator<Item = &Finding> {
        self.deadlocks.iter().chain(&self.leaks)
    }

    /// True when nothing was found.
    pub fn is_clean(&self) -> bool {
        self.deadlocks.is_empty() && self.leaks.is_empty()
    }
}
