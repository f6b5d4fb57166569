//! Point-in-time views of every task: [`snapshot`], [`Snapshot`], [`TaskInfo`].
//!
//! A snapshot copies what the registry knows about each live task (its state,
//! what it waits on, where, since when, its stack) without stopping anything:
//! each registry shard is read-locked only while its entries are copied.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

/// A task's identity, unique in the process, never reused. Go calls it the goroutine id.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TaskId(pub u64);

impl fmt::Display for TaskId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A source location, as recorded by `#[track_caller]`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Location {
    /// Source file, as the compiler names it.
    pub file: Cow<'static, str>,
    /// 1-based line.
    pub line: u32,
    /// 1-based column.
    pub column: u32,
}

impl Location {
    /// The location of a `#[track_caller]` caller.
    pub fn from_std(loc: &'static std::panic::Location<'static>) -> Location {
        Location { file: Cow::Borrowed(loc.file()), line: loc.line(), column: loc.column() }
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.file, self.line)
    }
}

/// One frame of a task's stack, innermost first in [`TaskInfo::stack`].
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Frame {
    /// Demangled function name without the hash, e.g. `app::worker::{{closure}}`.
    pub function: Arc<str>,
    /// Source file, when debug info has it.
    pub file: Option<Arc<str>>,
    /// Source line, when debug info has it.
    pub line: Option<u32>,
    /// Instruction pointer of the frame (0 for a frame made from a `#[track_caller]` location).
    pub pc: usize,
    /// Start address of the function, so `pc - entry` is Go's `+0x..` offset (0 when unknown).
    pub entry: usize,
}

/// Why a task is parked, displayed exactly as Go's wait reasons.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum WaitReason {
    /// `chan receive`
    ChanReceive,
    /// `chan send`
    ChanSend,
    /// `select`
    Select,
    /// `select (no cases)`
    SelectNoCases,
    /// `chan receive (nil chan)`
    ChanReceiveNilChan,
    /// `chan send (nil chan)`
    ChanSendNilChan,
    /// `sync.Mutex.Lock`
    MutexLock,
    /// `sync.RWMutex.RLock`
    RwMutexRLock,
    /// `sync.RWMutex.Lock`
    RwMutexLock,
    /// `sync.WaitGroup.Wait`
    WaitGroupWait,
    /// `sync.Cond.Wait`
    CondWait,
    /// `sync.Once.Do` (waiting for another task's `call_once` to finish)
    OnceDo,
    /// `sleep`
    Sleep,
    /// `task join`: awaiting another task's [`JoinHandle`](crate::JoinHandle) (no Go equivalent).
    TaskJoin,
}

impl WaitReason {
    /// Go's string for this reason.
    pub fn as_str(self) -> &'static str {
        match self {
            WaitReason::ChanReceive => "chan receive",
            WaitReason::ChanSend => "chan send",
            WaitReason::Select => "select",
            WaitReason::SelectNoCases => "select (no cases)",
            WaitReason::ChanReceiveNilChan => "chan receive (nil chan)",
            WaitReason::ChanSendNilChan => "chan send (nil chan)",
            WaitReason::MutexLock => "sync.Mutex.Lock",
            WaitReason::RwMutexRLock => "sync.RWMutex.RLock",
            WaitReason::RwMutexLock => "sync.RWMutex.Lock",
            WaitReason::WaitGroupWait => "sync.WaitGroup.Wait",
            WaitReason::CondWait => "sync.Cond.Wait",
            WaitReason::OnceDo => "sync.Once.Do",
            WaitReason::Sleep => "sleep",
            WaitReason::TaskJoin => "task join",
        }
    }
}

impl fmt::Display for WaitReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a task is doing at the moment of the snapshot.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum TaskState {
    /// Being polled (a task) or running user code (a thread).
    Running,
    /// Woken, waiting for a worker to poll it.
    Runnable,
    /// Parked on a parkwatch primitive; `wait_reason` says which. Only another
    /// task's operation (or, for `sleep` and timer channels, a timer) can wake it.
    Parked,
    /// Waiting on something parkwatch does not see (a socket, a foreign future,
    /// a tokio timer): it may wake on its own, so it never counts toward a deadlock.
    External,
}

impl TaskState {
    /// The word Go would print in the `goroutine N [...]` header for a task not parked.
    pub fn as_str(self) -> &'static str {
        match self {
            TaskState::Running => "running",
            TaskState::Runnable => "runnable",
            TaskState::Parked => "waiting",
            TaskState::External => "external wait",
        }
    }
}

/// Whether a task is an async task or an OS thread registered with [`crate::thread::spawn`].
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum TaskKind {
    /// A future spawned with [`crate::spawn`] (or the main task of a runtime).
    Async,
    /// An OS thread spawned with [`crate::thread::spawn`].
    Thread,
}

/// Everything known about one task at the moment of a [`Snapshot`].
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TaskInfo {
    /// The task's id (Go's goroutine id).
    pub id: TaskId,
    /// The name given with [`crate::task::Builder::name`].
    pub name: Option<String>,
    /// Running, runnable, parked or waiting outside parkwatch.
    pub state: TaskState,
    /// Go's wait reason, when parked.
    pub wait_reason: Option<WaitReason>,
    /// How long it has been parked. The start of a wait is read from a
    /// coarse clock (Linux's `CLOCK_MONOTONIC_COARSE`, a few ns instead of
    /// ~25 per park), so this may exceed the true time by up to one kernel
    /// tick (1–4 ms), never fall short of it.
    pub parked_for: Option<Duration>,
    /// Where it was spawned (`#[track_caller]` of `spawn`).
    pub spawned_at: Location,
    /// The operation it is parked in (`#[track_caller]` of `recv`, `send`, `lock`, ...).
    pub parked_at: Option<Location>,
    /// The stack at the moment it parked, innermost frame first, runtime frames trimmed.
    /// Empty when not parked or when capture is off (`PARKWATCH_BACKTRACE=0`).
    pub stack: Vec<Frame>,
    /// Async task or OS thread.
    pub kind: TaskKind,
    /// The task that spawned it (Go's "created by ... in goroutine N").
    pub parent: Option<TaskId>,
    /// The function that spawned it, when known.
    pub created_by: Option<Arc<str>>,
    /// The runtime it belongs to (0: threads and tasks outside any parkwatch runtime).
    pub runtime: u64,
    /// The resources it waits on (channels, locks, ...), each with the
    /// operation waiting on it (several for a select).
    pub waits_on: Vec<WaitOn>,
    /// True when the stack was reused from an earlier park at the same site
    /// (parkwatch samples stacks at hot sites; see `stack` module docs).
    pub stack_sampled: bool,
    /// Events that could have woken it (hand-overs, closes, unlocks, signals,
    /// `add`s) on the resources it waits on since it parked: 0 means nothing
    /// happened on them at all.
    pub activity_since_park: u64,
    /// A timer (a `sleep`, or an armed `after`/`tick` channel it waits on) will wake it.
    pub timer_wakeable: bool,
    /// Parked on parkwatch primitives only: no timer and nothing outside
    /// parkwatch (a socket, a foreign future) can wake it; only another task's
    /// operation on what it waits for can.
    pub blocked: bool,
    /// Which wait this is (a task seen with the same `park_seq` twice stayed
    /// parked in the same wait in between).
    pub park_seq: u64,
}

/// One resource a parked task waits on, and how.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct WaitOn {
    /// The resource.
    pub resource: ResourceId,
    /// The operation: `ChanReceive`, `ChanSend`, `MutexLock`, `RwMutexRLock`, ...
    pub op: WaitReason,
}

/// The identity of a channel, lock or other resource tasks wait on.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ResourceId(pub u64);

impl fmt::Display for ResourceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// What kind of resource, with its state at the snapshot.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ResourceKind {
    /// A channel.
    Chan {
        /// Capacity (0: unbuffered).
        cap: usize,
        /// Closed.
        closed: bool,
    },
    /// `sync::Mutex`.
    Mutex,
    /// `sync::RwMutex`.
    RwMutex,
    /// `sync::WaitGroup`, with its count.
    WaitGroup {
        /// The counter.
        count: isize,
    },
    /// `sync::Cond`.
    Cond,
}

/// A task holding a lock.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Holder {
    /// The task that locked it.
    pub task: TaskId,
    /// Held for writing (a Mutex, or an RwMutex's `write`), else for reading.
    pub write: bool,
    /// Where it locked.
    pub at: Location,
}

/// A task queued for a lock, in grant order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Queued {
    /// The waiting task.
    pub task: TaskId,
    /// Waiting to write.
    pub write: bool,
}

/// A channel, lock, wait group or condition some task waits on, as the
/// detectors see it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ResourceInfo {
    /// Its id.
    pub id: ResourceId,
    /// Its kind and state.
    pub kind: ResourceKind,
    /// Where it was made.
    pub created_at: Location,
    /// Live handles that can send on (or close) a channel (a `Chan` counts on both sides).
    pub send_handles: usize,
    /// Live handles that can receive from a channel.
    pub recv_handles: usize,
    /// A timer may still send on it.
    pub timer_armed: bool,
    /// Tasks that have used its waking side (sent, closed, unlocked, signalled, `add`ed).
    pub wakers: Vec<TaskId>,
    /// More (or unknown) tasks used the waking side than `wakers` lists.
    pub wakers_incomplete: bool,
    /// Tasks that have used its waiting side (received, locked, waited).
    pub waiters: Vec<TaskId>,
    /// More (or unknown) tasks used the waiting side than `waiters` lists.
    pub waiters_incomplete: bool,
    /// Lock holders.
    pub holders: Vec<Holder>,
    /// Some holders are not known (readers past the named slots, or locked outside any task).
    pub holders_incomplete: bool,
    /// Tasks queued for the lock, in grant order.
    pub queue: Vec<Queued>,
}

impl ResourceInfo {
    /// How findings and dumps name it: `chan#3`, `sync.Mutex#5`, ...
    pub fn label(&self) -> String {
        let kind = match self.kind {
            ResourceKind::Chan { .. } => "chan",
            ResourceKind::Mutex => "sync.Mutex",
            ResourceKind::RwMutex => "sync.RWMutex",
            ResourceKind::WaitGroup { .. } => "sync.WaitGroup",
            ResourceKind::Cond => "sync.Cond",
        };
        format!("{kind}#{}", self.id)
    }
}

/// Every live task of the process at one point in time.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Snapshot {
    /// When it was taken.
    pub taken_at: SystemTime,
    pub(crate) tasks: Vec<TaskInfo>,
    #[serde(default)]
    pub(crate) resources: Vec<ResourceInfo>,
    /// Runtimes found in a global deadlock (every task parked, nothing able to wake one).
    #[serde(default)]
    pub(crate) dead_runtimes: Vec<u64>,
    /// Taken from this process's registry (so findings can be re-verified
    /// against live state); false for a deserialised snapshot.
    #[serde(skip)]
    pub(crate) live: bool,
}

impl Snapshot {
    /// The tasks, ordered by id.
    pub fn tasks(&self) -> &[TaskInfo] {
        &self.tasks
    }

    /// The resources the tasks wait on, ordered by id.
    pub fn resources(&self) -> &[ResourceInfo] {
        &self.resources
    }

    /// One task by id.
    pub fn task(&self, id: TaskId) -> Option<&TaskInfo> {
        self.tasks.binary_search_by_key(&id, |t| t.id).ok().map(|i| &self.tasks[i])
    }

    /// One resource by id.
    pub fn resource(&self, id: ResourceId) -> Option<&ResourceInfo> {
        self.resources.binary_search_by_key(&id, |r| r.id).ok().map(|i| &self.resources[i])
    }

    /// A snapshot made of the given tasks (sorted by id), e.g. to render a dump of a subset.
    pub fn from_tasks(mut tasks: Vec<TaskInfo>) -> Snapshot {
        tasks.sort_by_key(|t| t.id);
        Snapshot { taken_at: SystemTime::now(), tasks, resources: Vec::new(), dead_runtimes: Vec::new(), live: false }
    }

    /// The same snapshot restricted to `keep` tasks (resources kept whole).
    pub fn filter(&self, mut keep: impl FnMut(&TaskInfo) -> bool) -> Snapshot {
        let tasks: Vec<TaskInfo> = self.tasks.iter().filter(|t| keep(t)).cloned().collect();
        let dead_runtimes =
            self.dead_runtimes.iter().copied().filter(|id| tasks.iter().any(|t| t.runtime == *id)).collect();
        Snapshot { taken_at: self.taken_at, tasks, resources: self.resources.clone(), dead_runtimes, live: self.live }
    }

    /// Runtimes in a global deadlock at the time of the snapshot.
    pub fn dead_runtimes(&self) -> &[u64] {
        &self.dead_runtimes
    }
}

/// Takes a snapshot of every live task of the process (all runtimes, and
/// registered threads).
///
/// ```
/// parkwatch::run(async {
///     let s = parkwatch::snapshot();
///     let me = parkwatch::task::id().unwrap();
///     assert!(s.tasks().iter().any(|t| t.id == me));
/// });
/// ```
pub fn snapshot() -> Snapshot {
    snapshot_where(Stacks::Resolved, |_| true)
}

/// What [`snapshot_with`] covers.
#[derive(Clone, Debug, Default)]
pub struct SnapshotOptions {
    /// Only the tasks of this runtime ([`crate::Runtime::id`]); all when `None`.
    pub runtime: Option<u64>,
    /// Leave `TaskInfo::stack` empty: much cheaper (resolving symbols is the
    /// slow part of a snapshot, the first time above all), and all the
    /// detectors need.
    pub skip_stacks: bool,
}

/// A snapshot of part of the process, or without stacks.
///
/// ```
/// let rt = parkwatch::Runtime::new().unwrap();
/// rt.block_on(async {
///     let opts = parkwatch::SnapshotOptions { runtime: Some(rt.id()), skip_stacks: true };
///     let s = parkwatch::snapshot_with(&opts);
///     assert!(s.tasks().iter().all(|t| t.runtime == rt.id()));
/// }).unwrap();
/// ```
pub fn snapshot_with(opts: &SnapshotOptions) -> Snapshot {
    let stacks = if opts.skip_stacks { Stacks::Skipped } else { Stacks::Resolved };
    snapshot_where(stacks, |r| opts.runtime.is_none_or(|id| r.group.id == id))
}

/// Whether a snapshot resolves stacks to frames (dumps need them; detectors
/// do not, and resolving is the slow part of a snapshot the first time).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) enum Stacks {
    Resolved,
    Skipped,
}

/// A snapshot of the tasks `keep` accepts (the resources they wait on, read
/// after every task, as `analyze` requires).
pub(crate) fn snapshot_where(
    stacks: Stacks,
    mut keep: impl FnMut(&crate::task::record::TaskRecord) -> bool,
) -> Snapshot {
    snapshot_from(stacks, |f| {
        crate::task::registry::for_each(|r| {
            if keep(r) {
                f(r)
            }
        })
    })
}

/// A snapshot of the tasks with these ids, looked up one by one: no scan of
/// the registry, so its cost does not grow with unrelated tasks.
pub(crate) fn snapshot_of(stacks: Stacks, ids: &[u64]) -> Snapshot {
    snapshot_from(stacks, |f| {
        for id in ids {
            if let Some(r) = crate::task::registry::get(*id) {
                f(&r);
            }
        }
    })
}

type Record = std::sync::Arc<crate::task::record::TaskRecord>;

/// Builds a snapshot from the records `each` yields: tasks first, then the
/// resources they wait on (read after every task, as `analyze` requires).
fn snapshot_from(stacks: Stacks, each: impl FnOnce(&mut dyn FnMut(&Record))) -> Snapshot {
    // Copy the records out first: `each` may hold a registry shard lock, and
    // reading waits and resolving stacks must not stall spawns and exits.
    let mut records: Vec<Record> = Vec::new();
    each(&mut |r| records.push(r.clone()));
    let now = std::time::Instant::now();
    let mut tasks = Vec::with_capacity(records.len());
    let mut resources = std::collections::BTreeMap::new();
    let mut dead_runtimes = std::collections::BTreeSet::new();
    for r in &records {
        if r.group.is_dead() {
            dead_runtimes.insert(r.group.id);
        }
        tasks.push(task_info(r, now, stacks, &mut resources));
    }
    tasks.sort_by_key(|t| t.id);
    let resources = resources.values().map(|r| resource_info(r)).collect();
    // A runtime counts as dead only if it still is once everything is read.
    let mut s = Snapshot { taken_at: SystemTime::now(), tasks, resources, dead_runtimes: Vec::new(), live: true };
    s.dead_runtimes = dead_runtimes
        .into_iter()
        .filter(|&id| s.tasks.iter().any(|t| t.runtime == id) && crate::task::registry::group_is_dead(id))
        .collect();
    s
}

fn task_ids((ids, incomplete): (Vec<u64>, bool)) -> (Vec<TaskId>, bool) {
    (ids.into_iter().map(TaskId).collect(), incomplete)
}

/// What the detectors need to know of one resource, now.
pub(crate) fn resource_info(r: &crate::park::resource::Resource) -> ResourceInfo {
    use crate::park::resource::ResourceKind as K;
    use crate::sync::state::SyncState;
    use std::sync::atomic::Ordering::Acquire;
    let kind = match r.kind {
        K::Chan { cap } => ResourceKind::Chan { cap, closed: r.closed.load(Acquire) },
        K::Mutex => ResourceKind::Mutex,
        K::RwMutex => ResourceKind::RwMutex,
        K::WaitGroup => ResourceKind::WaitGroup { count: r.sync.wait_group().count },
        K::Cond => ResourceKind::Cond,
    };
    let (mut holders, mut holders_incomplete, mut queue) = (Vec::new(), false, Vec::new());
    if let SyncState::Lock(_) = &r.sync {
        let st = r.sync.lock();
        let mut hold = |h: &crate::sync::state::Holder, write: bool| {
            if h.task == 0 {
                holders_incomplete = true;
            } else {
                holders.push(Holder { task: TaskId(h.task), write, at: Location::from_std(h.site) });
            }
        };
        if let Some(w) = &st.writer {
            hold(w, true);
        }
        let (readers, unnamed) = st.readers.list();
        for h in &readers {
            hold(h, false);
        }
        holders_incomplete |= unnamed;
        queue = st
            .queue
            .iter()
            .filter(|w| w.waiter.selection() == crate::park::waiter::Selection::Waiting)
            .map(|w| Queued { task: TaskId(w.holder.task), write: w.write })
            .collect();
    }
    let (wakers, wakers_incomplete) = task_ids(r.wakers.get());
    let (waiters, waiters_incomplete) = task_ids(r.waiters.get());
    ResourceInfo {
        id: r.id,
        kind,
        created_at: r.created_at.clone(),
        send_handles: r.send_handles.load(Acquire),
        recv_handles: r.recv_handles.load(Acquire),
        timer_armed: r.is_timer_armed(),
        wakers,
        wakers_incomplete,
        waiters,
        waiters_incomplete,
        holders,
        holders_incomplete,
        queue,
    }
}

/// What the registry knows of one task, as of `now`; the resources it waits
/// on are added to `resources` from the same read of its wait (a second read
/// could see a newer wait and leave `waits_on` pointing at nothing).
pub(crate) fn task_info(
    r: &crate::task::record::TaskRecord,
    now: std::time::Instant,
    stacks: Stacks,
    resources: &mut std::collections::BTreeMap<ResourceId, std::sync::Arc<crate::park::resource::Resource>>,
) -> TaskInfo {
    use crate::task::record::{NOTIFIED, PARKED, RUNNING};
    let run = r.run_state();
    let wait = crate::shim::lock(&r.wait);
    // The run state is read before the wait: a task seen parked whose wait is
    // already gone was woken in between.
    let state = match run {
        RUNNING => TaskState::Running,
        NOTIFIED => TaskState::Runnable,
        PARKED if wait.is_some() => TaskState::Parked,
        PARKED => TaskState::Runnable,
        _ if wait.is_some() => TaskState::Parked,
        _ => TaskState::External,
    };
    let parked = if state == TaskState::Parked { wait.as_ref() } else { None };
    for (res, _, _) in parked.iter().flat_map(|w| w.resources.iter()) {
        resources.entry(res.id).or_insert_with(|| res.clone());
    }
    TaskInfo {
        id: r.id,
        name: r.name.as_deref().map(str::to_owned),
        state,
        wait_reason: parked.map(|w| w.reason),
        parked_for: parked.map(|w| now.saturating_duration_since(w.since.instant())),
        spawned_at: Location::from_std(r.spawned_at),
        parked_at: parked.map(|w| Location::from_std(w.site)),
        stack: parked
            .and_then(|w| w.stack.as_ref())
            .filter(|_| stacks == Stacks::Resolved)
            .map(|s| s.frames().to_vec())
            .unwrap_or_default(),
        kind: r.kind,
        parent: r.parent,
        created_by: r.spawner.as_ref().and_then(|s| s.function()),
        runtime: r.group.id,
        waits_on: parked
            .map(|w| w.resources.iter().map(|(res, _, op)| WaitOn { resource: res.id, op: *op }).collect())
            .unwrap_or_default(),
        stack_sampled: parked.is_some_and(|w| w.stack_sampled),
        activity_since_park: parked
            .map(|w| w.resources.iter().map(|(res, at, _)| res.activity().saturating_sub(*at)).sum())
            .unwrap_or(0),
        timer_wakeable: parked.is_some_and(|w| w.timer_wakeable),
        blocked: run == PARKED && state == TaskState::Parked,
        park_seq: parked.map_or(0, |w| w.seq),
    }
}
