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

use std::hash::{BuildHasherDefault, Hasher};

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

/// A fast non-cryptographic hasher (FxHash's multiply-rotate) for the maps of
/// the detectors and the dumps, keyed by ids, pcs and short strings from one
/// snapshot: SipHash's resistance to chosen keys buys nothing there and costs
/// most of a lookup.
#[derive(Default, Clone, Copy)]
pub(crate) struct FastHasher(u64);

impl FastHasher {
    const K: u64 = 0xf135_7aea_2e62_a9c5;

    #[inline]
    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(26) ^ word).wrapping_mul(Self::K);
    }
}

impl Hasher for FastHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            self.add(u64::from_le_bytes(c.try_into().expect("8 bytes")));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut last = [0u8; 8];
            last[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(last));
        }
    }

    #[inline]
    fn write_u8(&mut self, i: u8) {
        self.add(u64::from(i));
    }

    #[inline]
    fn write_u32(&mut self, i: u32) {
        self.add(u64::from(i));
    }

    #[inline]
    fn write_u64(&mut self, i: u64) {
        self.add(i);
    }

    #[inline]
    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }

    #[inline]
    fn finish(&self) -> u64 {
        // The high bits select hashbrown's group and the low ones its tag:
        // fold the well-mixed high half into the low one.
        self.0 ^ (self.0 >> 32)
    }
}

/// A `HashMap` with [`FastHasher`].
pub(crate) type FastMap<K, V> = std::collections::HashMap<K, V, BuildHasherDefault<FastHasher>>;
