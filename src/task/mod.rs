//! Tasks: spawning, naming, joining, and the registry that knows them all.
//!
//! A parkwatch task is a tokio task whose future runs inside the harness
//! (`task::harness`), registered in the process-wide registry (`task::registry`) with
//! a record of its state and current wait (`task::record`).

pub(crate) mod harness;
pub(crate) mod record;
pub(crate) mod registry;
pub(crate) mod waker;

use std::cell::RefCell;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use self::harness::Instrumented;
use self::record::{Group, TaskRecord};
use crate::park::wait::{self, Note};
use crate::snapshot::{TaskId, TaskKind, WaitReason};

thread_local! {
    /// The runtime whose worker (or `block_on` caller) this thread is.
    static RUNTIME_GROUP: RefCell<Option<Arc<Group>>> = const { RefCell::new(None) };
}

/// Makes `group` the runtime of this thread until the guard drops.
pub(crate) fn enter_runtime(group: Arc<Group>) -> RuntimeGuard {
    RuntimeGuard(RUNTIME_GROUP.with(|g| g.borrow_mut().replace(group)))
}

/// Makes `group` the runtime of this (worker) thread for the rest of its life.
#[cfg_attr(loom, allow(dead_code))]
pub(crate) fn set_thread_runtime(group: Arc<Group>) {
    RUNTIME_GROUP.with(|g| *g.borrow_mut() = Some(group));
}

/// Restores the previous runtime of the thread.
pub(crate) struct RuntimeGuard(Option<Arc<Group>>);

impl Drop for RuntimeGuard {
    fn drop(&mut self) {
        let prev = self.0.take();
        let _ = RUNTIME_GROUP.try_with(|g| *g.borrow_mut() = prev);
    }
}

/// The group a new task joins and its parent: the current task's, else the
/// thread's runtime, else the detached group.
pub(crate) fn spawn_context() -> (Arc<Group>, Option<TaskId>) {
    if let Some(r) = wait::current() {
        return (r.group.clone(), Some(r.id));
    }
    let group = RUNTIME_GROUP.with(|g| g.borrow().clone());
    (group.unwrap_or_else(registry::detached), None)
}

/// Spawns `fut` as a new task (Go's `go f()`).
///
/// Must be called from a parkwatch runtime (a task, a registered thread of
/// one, or `block_on`). The task is registered: dumps show it, and it counts
/// toward deadlock and leak detection.
///
/// ```
/// parkwatch::run(async {
///     let h = parkwatch::spawn(async { 40 + 2 });
///     assert_eq!(h.await.unwrap(), 42);
/// });
/// ```
#[track_caller]
pub fn spawn<F>(fut: F) -> JoinHandle<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    Builder::new().spawn(fut)
}

/// Builds a task with a name (shown in dumps and on the dashboard).
///
/// ```
/// parkwatch::run(async {
///     let h = parkwatch::task::Builder::new().name("worker-3").spawn(async { 1 });
///     assert_eq!(h.await.unwrap(), 1);
/// });
/// ```
#[derive(Default, Debug)]
pub struct Builder {
    name: Option<String>,
}

impl Builder {
    /// A builder with no name.
    pub fn new() -> Builder {
        Builder::default()
    }

    /// Names the task.
    pub fn name(mut self, name: impl Into<String>) -> Builder {
        self.name = Some(name.into());
        self
    }

    /// Spawns the task. Panics outside a tokio/parkwatch runtime, as `tokio::spawn` does.
    #[track_caller]
    pub fn spawn<F>(self, fut: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let site = std::panic::Location::caller();
        let rt = tokio::runtime::Handle::try_current()
            .unwrap_or_else(|_| panic!("parkwatch::spawn at {site} called outside a parkwatch runtime"));
        let (group, parent) = spawn_context();
        let spawner = crate::stack::spawner(site);
        let record =
            TaskRecord::new(self.name.map(String::into_boxed_str), TaskKind::Async, site, parent, group, spawner);
        registry::register(record.clone());
        let inner = rt.spawn(Instrumented::new(fut, record.clone()));
        JoinHandle { inner, record, key: 0 }
    }
}

/// Awaits a task's output. Dropping it detaches the task (it keeps running).
pub struct JoinHandle<T> {
    inner: tokio::task::JoinHandle<T>,
    record: Arc<TaskRecord>,
    /// This join's wait key, taken when it first parks.
    key: u64,
}

/// Why a task produced no output.
pub struct JoinError(tokio::task::JoinError);

impl JoinError {
    /// The task panicked.
    pub fn is_panic(&self) -> bool {
        self.0.is_panic()
    }
    /// The task was aborted.
    pub fn is_cancelled(&self) -> bool {
        self.0.is_cancelled()
    }
    /// The panic payload. Panics if the task did not panic.
    pub fn into_panic(self) -> Box<dyn std::any::Any + Send + 'static> {
        self.0.into_panic()
    }
}

impl fmt::Debug for JoinError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}
impl fmt::Display for JoinError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}
impl std::error::Error for JoinError {}

impl<T> JoinHandle<T> {
    /// The task's id.
    pub fn id(&self) -> TaskId {
        self.record.id
    }
    /// Cancels the task at its next await point.
    pub fn abort(&self) {
        self.inner.abort();
    }
    /// Whether the task has finished.
    pub fn is_finished(&self) -> bool {
        self.inner.is_finished()
    }
}

impl<T> fmt::Debug for JoinHandle<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "JoinHandle(task {})", self.record.id)
    }
}

impl<T> Future for JoinHandle<T> {
    type Output = Result<T, JoinError>;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let waker = waker::internal_clone(cx.waker());
        let mut inner_cx = Context::from_waker(&waker);
        if let Poll::Ready(r) = Pin::new(&mut self.inner).poll(&mut inner_cx) {
            return Poll::Ready(r.map_err(JoinError));
        }
        // Parked on the task only if it is still running: its exit wakes us
        // (and keeps the deadlock count right) before it leaves.
        if self.record.add_joiner(&waker) {
            if self.key == 0 {
                self.key = crate::park::waiter::next_key();
            }
            wait::note(Note {
                key: self.key,
                reason: WaitReason::TaskJoin,
                site: self.record.spawned_at,
                resources: &[],
                timer_wakeable: false,
            });
        }
        Poll::Pending
    }
}

/// The current task's id, if the caller runs in a parkwatch task or registered thread.
///
/// ```
/// parkwatch::run(async {
///     assert!(parkwatch::task::id().is_some());
/// });
/// assert!(parkwatch::task::id().is_none());
/// ```
pub fn id() -> Option<TaskId> {
    wait::current().map(|r| r.id)
}

/// Yields to the scheduler once.
pub async fn yield_now() {
    tokio::task::yield_now().await
}
