//! Support for the loom models of `tests/loom_sync.rs` (loom builds only).

use std::sync::Arc;

use crate::snapshot::{TaskId, TaskKind};
use crate::task::record::TaskRecord;
use crate::task::{registry, spawn_context};

/// The calling loom thread, registered as a task (what
/// [`crate::thread::spawn`] does for the OS threads it starts) until dropped.
///
/// loom runs its threads as coroutines of one OS thread, so parkwatch's
/// current-task thread-local is shared by every thread of a model: register
/// one thread per model, and give the others only operations that do not
/// park (they would record their wait against the registered task).
pub struct RegisteredThread {
    record: Arc<TaskRecord>,
    _current: crate::park::wait::EnterGuard<'static>,
}

impl RegisteredThread {
    /// The task id of the thread.
    pub fn id(&self) -> TaskId {
        self.record.id
    }
}

/// Registers the calling loom thread as a task.
#[track_caller]
pub fn register_thread() -> RegisteredThread {
    let site = std::panic::Location::caller();
    let (group, parent) = spawn_context();
    let record = TaskRecord::new(None, TaskKind::Thread, site, parent, group, None);
    registry::register(record.clone());
    let current = crate::park::wait::enter_owned(record.clone());
    RegisteredThread { record, _current: current }
}

impl Drop for RegisteredThread {
    fn drop(&mut self) {
        // Leaves the registry before the thread stops being current, as a
        // thread of `crate::thread::spawn` does.
        registry::deregister(&self.record);
    }
}
