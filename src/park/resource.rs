//! The untyped identity and facts of something tasks wait on.
//!
//! A channel is generic over its element type, but the registry, the detectors
//! and the dumps are not: every channel, lock, wait group and condition owns
//! one [`Resource`] that a parked task's wait record points to. It holds what
//! the detectors reason with:
//! - handle counts per side (a side with no handle left can never act);
//! - the tasks that have used each side ([`Users`]: who could wake a waiter);
//! - an activity counter, bumped on every event that can wake a waiter (a
//!   hand-over, a close, an unlock, a signal, an `add`), so a snapshot can tell
//!   whether anything happened on it since a task parked;
//! - for locks, wait groups and conditions, their whole state ([`SyncState`]),
//!   which is untyped: the lock's data lives in the typed wrapper.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use crate::snapshot::{Location, ResourceId};
use crate::sync::state::SyncState;

static NEXT_RESOURCE: AtomicU64 = AtomicU64::new(1);

/// What kind of resource.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ResourceKind {
    /// A channel of the given capacity (0 = unbuffered).
    Chan { cap: usize },
    /// `sync::Mutex`.
    Mutex,
    /// `sync::RwMutex`.
    RwMutex,
    /// `sync::WaitGroup`.
    WaitGroup,
    /// `sync::Cond`.
    Cond,
}

/// How many distinct users a side remembers; past that it is "many".
pub(crate) const USER_SLOTS: usize = 6;

/// The tasks that have used one side of a resource. Recording costs one
/// relaxed load when the same task uses it again (the common case).
#[derive(Debug)]
pub(crate) struct Users {
    /// The last id recorded in a slot: the fast path's filter. Starts at an
    /// id no task has (0 would let the first user outside any task through
    /// unrecorded).
    last: AtomicU64,
    slots: [AtomicU64; USER_SLOTS],
    /// More distinct users than slots, or a user outside any task.
    overflow: AtomicBool,
}

impl Default for Users {
    fn default() -> Users {
        Users { last: AtomicU64::new(u64::MAX), slots: Default::default(), overflow: AtomicBool::new(false) }
    }
}

impl Users {
    /// Records task `id` (0: code outside any task) as a user.
    #[inline]
    pub(crate) fn record(&self, id: u64) {
        if self.last.load(Ordering::Relaxed) != id {
            self.record_new(id);
        }
    }

    /// Several tasks taking turns on one side (producers of one channel) all
    /// end up here: reading, not writing, the shared slots keeps their cache
    /// line shared between cores instead of bouncing it on every operation.
    #[cold]
    fn record_new(&self, id: u64) {
        if id == 0 {
            return self.set_overflow();
        }
        if self.slots.iter().any(|s| s.load(Ordering::Relaxed) == id) {
            return;
        }
        for slot in &self.slots {
            if slot.load(Ordering::Relaxed) != 0 {
                continue;
            }
            match slot.compare_exchange(0, id, Ordering::Relaxed, Ordering::Relaxed) {
                Ok(_) => {
                    self.last.store(id, Ordering::Relaxed);
                    return;
                }
                Err(existing) if existing == id => return,
                Err(_) => {}
            }
        }
        self.set_overflow();
    }

    fn set_overflow(&self) {
        if !self.overflow.load(Ordering::Relaxed) {
            self.overflow.store(true, Ordering::Relaxed);
        }
    }

    /// The users remembered, and whether there were more (or unknown ones).
    pub(crate) fn get(&self) -> (Vec<u64>, bool) {
        let ids = self.slots.iter().map(|s| s.load(Ordering::Relaxed)).filter(|&id| id != 0).collect();
        (ids, self.overflow.load(Ordering::Relaxed))
    }
}

/// Shared identity and live facts about one resource.
pub(crate) struct Resource {
    pub(crate) id: ResourceId,
    pub(crate) kind: ResourceKind,
    pub(crate) created_at: Location,
    /// Live handles able to send (a `Chan` counts on both sides).
    pub(crate) send_handles: AtomicUsize,
    /// Live handles able to receive.
    pub(crate) recv_handles: AtomicUsize,
    /// Set while a timer (`time::after` / `time::tick`) may still send on it:
    /// a task parked on it is not stuck, the timer will wake it.
    pub(crate) timer_armed: AtomicBool,
    /// Set when a channel is closed.
    pub(crate) closed: AtomicBool,
    /// Bumped on every event that can wake a waiter.
    pub(crate) activity: AtomicU64,
    /// Who sent, closed, unlocked, signalled, called `add`/`done`: the side that wakes.
    pub(crate) wakers: Users,
    /// Who received, locked, waited: the side that waits.
    pub(crate) waiters: Users,
    /// The state of a lock, wait group or condition (channels keep theirs typed).
    pub(crate) sync: SyncState,
}

impl std::fmt::Debug for Resource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Resource(#{} {:?})", self.id, self.kind)
    }
}

impl Resource {
    #[track_caller]
    pub(crate) fn new(kind: ResourceKind) -> Arc<Resource> {
        Self::with_state(kind, SyncState::None)
    }

    #[track_caller]
    pub(crate) fn with_state(kind: ResourceKind, sync: SyncState) -> Arc<Resource> {
        Arc::new(Resource {
            id: ResourceId(NEXT_RESOURCE.fetch_add(1, Ordering::Relaxed)),
            kind,
            created_at: Location::from_std(std::panic::Location::caller()),
            send_handles: AtomicUsize::new(0),
            recv_handles: AtomicUsize::new(0),
            timer_armed: AtomicBool::new(false),
            closed: AtomicBool::new(false),
            activity: AtomicU64::new(0),
            wakers: Users::default(),
            waiters: Users::default(),
            sync,
        })
    }

    #[inline]
    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    #[inline]
    pub(crate) fn is_timer_armed(&self) -> bool {
        self.timer_armed.load(Ordering::Acquire)
    }

    /// Notes an event that can wake a waiter (not on the channels' fast path:
    /// a buffered send with nobody waiting cannot wake anyone).
    pub(crate) fn bump(&self) {
        self.activity.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn activity(&self) -> u64 {
        self.activity.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::{Users, USER_SLOTS};

    #[test]
    fn users_remember_distinct_ids_then_overflow() {
        let u = Users::default();
        for round in 0..3 {
            for id in [7, 8, 7, 9] {
                u.record(id);
            }
            let (mut ids, overflow) = u.get();
            ids.sort();
            assert_eq!((ids, overflow), (vec![7, 8, 9], false), "round {round}");
        }
        for id in 100..100 + USER_SLOTS as u64 {
            u.record(id);
        }
        let (ids, overflow) = u.get();
        assert_eq!(ids.len(), USER_SLOTS);
        assert!(overflow, "more users than slots");
        let outside = Users::default();
        outside.record(0);
        assert_eq!(outside.get(), (vec![], true), "a user outside any task is unknown");
    }
}
