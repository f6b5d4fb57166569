//! The process-wide table of live tasks.
//!
//! A sharded map (dashmap) from id to record: registering or removing a task
//! locks one shard briefly; a snapshot read-locks one shard at a time, so it
//! never stops the world. The hot path of channels never comes here.

use std::sync::{Arc, LazyLock};

use dashmap::DashMap;

use super::record::{Group, TaskRecord};

static TASKS: LazyLock<DashMap<u64, Arc<TaskRecord>>> = LazyLock::new(DashMap::new);

/// Threads and tasks started outside any parkwatch runtime: dumped and
/// analysed, but never the subject of a global-deadlock verdict.
static DETACHED: LazyLock<Arc<Group>> =
    LazyLock::new(|| Group::new(0, false, std::time::Duration::from_secs(30), std::time::Duration::from_secs(1)));

pub(crate) fn detached() -> Arc<Group> {
    DETACHED.clone()
}

pub(crate) fn register(record: Arc<TaskRecord>) {
    TASKS.insert(record.id.0, record);
}

/// Removes the task, then lets it leave its group's count (so a deadlock check
/// triggered by its departure does not see it).
pub(crate) fn deregister(record: &Arc<TaskRecord>) {
    TASKS.remove(&record.id.0);
    record.finish();
}

/// The task with id `id`, if alive.
pub(crate) fn get(id: u64) -> Option<Arc<TaskRecord>> {
    TASKS.get(&id).map(|e| e.value().clone())
}

/// Whether the group `id` is (still) in a global deadlock.
pub(crate) fn group_is_dead(id: u64) -> bool {
    let mut dead = false;
    for e in TASKS.iter() {
        if e.value().group.id == id {
            dead = e.value().group.is_dead();
            break;
        }
    }
    dead
}

/// Calls `f` on every live task.
pub(crate) fn for_each(mut f: impl FnMut(&Arc<TaskRecord>)) {
    for entry in TASKS.iter() {
        f(entry.value());
    }
}
