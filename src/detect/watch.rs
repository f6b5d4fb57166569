//! Event-driven detection: definite partial deadlocks found when they form,
//! not by a periodic sweep, and the main task's stuck sets checked in the
//! background.
//!
//! - When a task parks on a lock, [`on_park`] walks "waits behind" from it
//!   (lock → holders and waiters queued ahead → their waits → ...). A holder
//!   that is running ends the walk at once, so the cost does not grow with
//!   the number of unrelated tasks. Reaching a task already on the walk means
//!   a cycle: the tasks on it are analysed (and verified) on a snapshot of
//!   just them.
//! - When a task parks receiving on a channel with no sender handle left, or
//!   the last sender handle of a channel with parked receivers is dropped
//!   ([`on_senders_gone`]), the receivers are orphaned.
//! - A background thread ([`watchdog`]) checks each runtime whose main task
//!   has been blocked for the grace period with nothing happening on what it
//!   waits for, and runs the stuck-set analysis for it, backing off while the
//!   answer stays no.
//!
//! A definite (or, for the main task, probable) finding that involves the
//! main task of a running `block_on` ends it with `Err(Deadlock)`.

use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::{Duration, Instant};

use super::analyze::AnalyzeOptions;
use super::{Certainty, Finding};
use crate::park::resource::ResourceKind;
use crate::park::wait::Watch;
use crate::runtime::deadlock::Deadlock;
use crate::shim::lock;
use crate::snapshot::{snapshot_of, snapshot_where, Snapshot, Stacks, WaitReason};
use crate::task::record::{Group, TaskRecord, PARKED};
use crate::task::registry;

/// How far a walk goes before it gives up (a longer cycle is left to `analyze`).
const MAX_WALK: usize = 64;

/// Called when `record` has just parked (only parkwatch can wake it), on
/// the task's own thread, right after the poll that noted `watch`.
pub(crate) fn on_park(record: &Arc<TaskRecord>, watch: Watch) {
    match watch {
        Watch::Nothing => {}
        Watch::Receive(resource) => {
            // SAFETY: the task's wait record holds this resource, and only
            // the task replaces it, which it is not doing: this runs on its
            // thread, between the poll that noted it and any later one
            // (`Watch::Receive`).
            let resource = unsafe { resource.as_ref() };
            if resource.send_handles.load(std::sync::atomic::Ordering::Acquire) == 0 {
                check(&record.group, &[record.id.0]);
            }
        }
        Watch::Record => on_park_read(record),
    }
}

/// [`on_park`] for a wait it reads from the record.
#[inline(never)]
fn on_park_read(record: &Arc<TaskRecord>) {
    let (locks, orphan_candidate) = {
        let wait = lock(&record.wait);
        let Some(w) = wait.as_ref() else { return };
        let locks = w
            .resources
            .iter()
            .any(|(r, _, op)| is_lock(*op) && matches!(r.kind, ResourceKind::Mutex | ResourceKind::RwMutex));
        let orphan = w.resources.iter().all(|(r, _, op)| {
            *op == WaitReason::ChanReceive && r.send_handles.load(std::sync::atomic::Ordering::Acquire) == 0
        }) && !w.resources.is_empty();
        (locks, orphan)
    };
    if orphan_candidate {
        check(&record.group, &[record.id.0]);
    } else if locks {
        if let Some(cycle) = walk(record) {
            check(&record.group, &cycle);
        }
    }
}

fn is_lock(op: WaitReason) -> bool {
    matches!(op, WaitReason::MutexLock | WaitReason::RwMutexLock | WaitReason::RwMutexRLock)
}

/// The tasks `record` waits behind on its locks, read from the locks' live
/// state, as far as finding cycles needs: the holders it needs gone, and for
/// a reader the nearest writer queued ahead of it (recursive read behind a
/// queued writer). A writer's cycles all pass through the holders, which it
/// waits for directly, so the queue is scanned only for readers; the analysis
/// that verifies a cycle uses every edge.
fn blockers(record: &TaskRecord) -> Vec<u64> {
    let wait = lock(&record.wait);
    let Some(w) = wait.as_ref() else { return Vec::new() };
    let mut out = Vec::new();
    for (res, _, op) in w.resources.iter().filter(|(_, _, op)| is_lock(*op)) {
        let write = *op != WaitReason::RwMutexRLock;
        let st = res.sync.lock();
        out.extend(st.writer.iter().map(|h| h.task));
        if write {
            out.extend(st.readers.list().0.iter().map(|h| h.task));
        }
        if !write {
            let ahead = st.queue.iter().take_while(|q| q.holder.task != record.id.0).filter(|q| q.write).last();
            out.extend(ahead.map(|q| q.holder.task));
        }
    }
    out
}

/// Walks "waits behind" from `start` through parked lock waiters; returns
/// the tasks reached if their edges contain a cycle (a diamond — two tasks
/// behind the same one — is not one).
fn walk(start: &Arc<TaskRecord>) -> Option<Vec<u64>> {
    let mut g = petgraph::graphmap::DiGraphMap::<u64, ()>::new();
    g.add_node(start.id.0);
    let mut stack: Vec<(u64, Vec<u64>)> = vec![(start.id.0, blockers(start))];
    while let Some((from, next)) = stack.pop() {
        for id in next {
            let fresh = !g.contains_node(id);
            g.add_edge(from, id, ());
            if g.node_count() > MAX_WALK {
                return None;
            }
            if fresh {
                if let Some(r) = registry::get(id).filter(|r| r.run_state() == PARKED) {
                    stack.push((id, blockers(&r)));
                }
            }
        }
    }
    petgraph::algo::is_cyclic_directed(&g).then(|| g.nodes().collect())
}

/// Analyses a snapshot of just `tasks` and reports what involves the main task.
fn check(group: &Arc<Group>, tasks: &[u64]) {
    if !group.is_detecting() {
        return;
    }
    let snapshot = snapshot_of(Stacks::Skipped, tasks);
    let analysis = snapshot.analyze_with(&AnalyzeOptions { grace: Duration::MAX, leak_after: Duration::MAX });
    for f in analysis.deadlocks.into_iter().filter(|f| f.certainty == Certainty::Definite) {
        report(group, f);
    }
}

/// Ends the running `block_on` if `finding` involves its main task, with a
/// report whose stacks are resolved now (detection itself never needs them). A
/// global deadlock is not reported here: `check_dead` gives that verdict, with
/// Go's report.
fn report(group: &Group, finding: Finding) {
    if finding.kind == super::FindingKind::GlobalDeadlock {
        return;
    }
    if group.is_detecting() && group.main().is_some_and(|m| finding.tasks.contains(&m)) {
        let ids: Vec<u64> = finding.tasks.iter().map(|t| t.0).collect();
        let involved: Snapshot = snapshot_of(Stacks::Resolved, &ids);
        group.verdict.give(Deadlock::partial(finding, &involved));
    }
}

/// The last handle able to send on a channel was dropped while `receivers`
/// (task ids) were parked on it.
pub(crate) fn on_senders_gone(receivers: &[u64]) {
    for id in receivers {
        if let Some(r) = registry::get(*id) {
            if r.run_state() == PARKED {
                check(&r.group, &[*id]);
            }
        }
    }
}

// ------------------------------------------------------------------ watchdog

/// The main task's wait last found not stuck (its `seq`), when to look again,
/// and the current back-off.
type Quiet = Option<(u64, Instant, Duration)>;

struct Watched {
    group: Weak<Group>,
    quiet: Quiet,
}

static WATCHED: Mutex<Vec<Watched>> = Mutex::new(Vec::new());
static DETECTOR: OnceLock<()> = OnceLock::new();

/// Starts watching `group`'s main task for probable deadlocks (once per
/// runtime; the thread is shared and started on first use).
pub(crate) fn watch(group: &Arc<Group>) {
    lock(&WATCHED).push(Watched { group: Arc::downgrade(group), quiet: None });
    DETECTOR.get_or_init(|| {
        let spawned = std::thread::Builder::new().name("parkwatch-detector".into()).spawn(watchdog);
        if let Err(e) = spawned {
            eprintln!("parkwatch: cannot start the detector thread ({e}); probable deadlocks of main tasks will not end block_on");
        }
    });
}

fn watchdog() {
    let list = &WATCHED;
    loop {
        std::thread::sleep(Duration::from_millis(100));
        let groups: Vec<(Arc<Group>, Quiet)> = {
            let mut l = lock(list);
            l.retain(|w| w.group.strong_count() > 0);
            l.iter().filter_map(|w| w.group.upgrade().map(|g| (g, w.quiet))).collect()
        };
        for (group, quiet) in groups {
            let next = check_main(&group, quiet);
            if let Some(w) = lock(list).iter_mut().find(|w| w.group.upgrade().is_some_and(|g| Arc::ptr_eq(&g, &group)))
            {
                w.quiet = next;
            }
        }
    }
}

/// Looks for the main task in a stuck set; returns when to look again at
/// the same wait (exponential back-off while it is not stuck).
fn check_main(group: &Arc<Group>, quiet: Quiet) -> Quiet {
    let main = group.main()?;
    if !group.is_detecting() || !group.probable_is_fatal.load(std::sync::atomic::Ordering::Relaxed) {
        return None;
    }
    let record = registry::get(main.0)?;
    let (seq, since) = {
        let w = lock(&record.wait);
        let w = w.as_ref()?;
        (w.seq, w.since.instant())
    };
    if record.run_state() != PARKED || since.elapsed() < group.grace {
        return None;
    }
    if let Some((s, at, _)) = quiet {
        if s == seq && Instant::now() < at {
            return quiet;
        }
    }
    let snapshot = snapshot_where(Stacks::Skipped, |r| r.group.id == group.id);
    let analysis = snapshot.analyze_with(&AnalyzeOptions { grace: group.grace, leak_after: Duration::MAX });
    if let Some(f) =
        analysis.deadlocks.into_iter().find(|f| f.tasks.contains(&main) && f.certainty != Certainty::Suspected)
    {
        report(group, f);
        return None;
    }
    let backoff = quiet
        .filter(|(s, _, _)| *s == seq)
        .map_or(Duration::from_millis(200), |(_, _, d)| (d * 2).min(Duration::from_secs(30)));
    Some((seq, Instant::now() + backoff, backoff))
}
