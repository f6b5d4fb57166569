//! OS threads that count as tasks: they appear in dumps, their blocking
//! channel operations are recorded, and while one runs user code no global
//! deadlock is declared (Go counts its threads the same way).

use crate::snapshot::TaskKind;
use crate::task::record::TaskRecord;
use crate::task::{registry, spawn_context};

/// Spawns an OS thread registered as a task (use it for threads that use
/// parkwatch channels with the `_blocking` operations).
///
/// ```
/// parkwatch::run(async {
///     let c = parkwatch::chan::<i32>(0);
///     let tx = c.sender();
///     let t = parkwatch::thread::spawn(move || tx.send_blocking(5).unwrap());
///     assert_eq!(c.recv().await, Some(5));
///     t.join().unwrap();
/// });
/// ```
#[track_caller]
pub fn spawn<F, T>(f: F) -> std::thread::JoinHandle<T>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    let site = std::panic::Location::caller();
    let (group, parent) = spawn_context();
    let record = TaskRecord::new(None, TaskKind::Thread, site, parent, group, crate::stack::spawner(site));
    registry::register(record.clone());
    let rt = tokio::runtime::Handle::try_current().ok();
    let spawned = std::thread::Builder::new().spawn(move || {
        let _rt = rt.as_ref().map(|h| h.enter());
        // Leaves the registry (`_leave` drops first) before it stops being current.
        let _current = crate::park::wait::enter_owned(record.clone());
        let _leave = Deregister(record);
        f()
    });
    spawned.expect("parkwatch: cannot spawn a thread")
}

/// Takes the thread's task out of the registry when the thread ends, even by panic.
struct Deregister(std::sync::Arc<TaskRecord>);

impl Drop for Deregister {
    fn drop(&mut self) {
        registry::deregister(&self.0);
    }
}
