//! The detectors, run over a snapshot by [`Snapshot::analyze`].

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fmt::Write as _;
use std::time::Duration;

use super::graph::{task_label, WaitForGraph};
use super::{Analysis, Certainty, Finding, FindingKind};
use crate::snapshot::{ResourceId, ResourceInfo, ResourceKind, Snapshot, TaskId, TaskInfo, WaitOn, WaitReason};

/// Settings of [`Snapshot::analyze_with`].
#[derive(Clone, Debug)]
pub struct AnalyzeOptions {
    /// How long a set of tasks must have been parked, with nothing happening
    /// on what they wait for, to be reported as a probable deadlock.
    pub grace: Duration,
    /// How long a task must have been parked to be a leak suspect.
    pub leak_after: Duration,
}

impl Default for AnalyzeOptions {
    fn default() -> Self {
        AnalyzeOptions { grace: Duration::from_secs(1), leak_after: Duration::from_secs(30) }
    }
}

impl Snapshot {
    /// Runs every detector with default settings (grace 1 s, leaks after 30 s).
    ///
    /// ```
    /// parkwatch::run(async {
    ///     let a = parkwatch::snapshot().analyze();
    ///     assert!(!a.global_deadlock);
    ///     assert!(a.deadlocks.is_empty());
    /// });
    /// ```
    pub fn analyze(&self) -> Analysis {
        self.analyze_with(&AnalyzeOptions::default())
    }

    /// Runs every detector.
    pub fn analyze_with(&self, opts: &AnalyzeOptions) -> Analysis {
        // A snapshot read from JSON may be unsorted or repeat ids: analyse a
        // normalised copy (lookups by id assume sorted, unique ids).
        let sorted = |v: &[TaskInfo]| v.windows(2).all(|w| w[0].id < w[1].id);
        let sorted_res = |v: &[ResourceInfo]| v.windows(2).all(|w| w[0].id < w[1].id);
        if !sorted(&self.tasks) || !sorted_res(&self.resources) {
            let mut copy = self.clone();
            copy.tasks.sort_by_key(|t| t.id);
            copy.tasks.dedup_by_key(|t| t.id);
            copy.resources.sort_by_key(|r| r.id);
            copy.resources.dedup_by_key(|r| r.id);
            return copy.analyze_with(opts);
        }
        let mut a = Analysis::default();
        for &rt in &self.dead_runtimes {
            a.global_deadlock = true;
            a.deadlocks.push(global_finding(self, rt));
        }
        let in_global: HashSet<TaskId> = a.deadlocks.iter().flat_map(|f| f.tasks.iter().copied()).collect();
        let index = lock_index(self);
        let definite = definite_partial(self, &index, &in_global);
        let mut claimed: HashSet<TaskId> = in_global;
        for f in &definite {
            claimed.extend(f.tasks.iter().copied());
        }
        a.deadlocks.extend(definite);
        let probable = stuck_sets(self, &index, opts.grace, &claimed);
        for f in &probable {
            claimed.extend(f.tasks.iter().copied());
        }
        a.deadlocks.extend(probable);
        a.leaks = leak_suspects(self, opts.leak_after, &claimed);
        a
    }

    /// The wait-for graph (petgraph inside; `to_dot()`, `to_json()`).
    pub fn wait_for_graph(&self) -> WaitForGraph {
        WaitForGraph::build(self)
    }
}

// ---------------------------------------------------------------- explaining

fn reason_text(op: WaitReason) -> &'static str {
    match op {
        WaitReason::ChanReceive => "to receive from",
        WaitReason::ChanSend => "to send on",
        WaitReason::MutexLock | WaitReason::RwMutexLock => "to lock",
        WaitReason::RwMutexRLock => "to read-lock",
        WaitReason::WaitGroupWait => "in Wait on",
        WaitReason::CondWait => "in Wait on",
        _ => "on",
    }
}

fn label_of(s: &Snapshot, id: ResourceId) -> String {
    s.resource(id).map_or_else(|| format!("resource#{id}"), ResourceInfo::label)
}

fn site(t: &TaskInfo) -> String {
    t.parked_at.as_ref().map(|l| format!(" at {l}")).unwrap_or_default()
}

/// `task 12 "keeper" waits to lock sync.Mutex#4 (sync.Mutex.Lock) at src/auth.rs:88`
fn describe_wait(s: &Snapshot, t: &TaskInfo) -> String {
    let mut out = task_label(t);
    let reason = t.wait_reason.map(|r| r.to_string()).unwrap_or_default();
    match t.waits_on.as_slice() {
        [] => write!(out, " waits in {reason}{}", site(t)).unwrap(),
        [w] => write!(out, " waits {} {} ({reason}){}", reason_text(w.op), label_of(s, w.resource), site(t)).unwrap(),
        many => {
            let cases: Vec<String> =
                many.iter().map(|w| format!("{} {}", reason_text(w.op), label_of(s, w.resource))).collect();
            write!(out, " waits in select ({}){}", cases.join(", "), site(t)).unwrap()
        }
    }
    out
}

fn names(s: &Snapshot, ids: impl IntoIterator<Item = TaskId>) -> String {
    let list: Vec<String> =
        ids.into_iter().map(|id| s.task(id).map_or_else(|| format!("task {id} (exited)"), task_label)).collect();
    match list.len() {
        0 => "no task".into(),
        1 => list[0].clone(),
        n => format!("{} and {}", list[..n - 1].join(", "), list[n - 1]),
    }
}

// ------------------------------------------------------------------- global

fn global_finding(s: &Snapshot, rt: u64) -> Finding {
    let tasks: Vec<&TaskInfo> = s.tasks().iter().filter(|t| t.runtime == rt).collect();
    let mut explanation = format!(
        "all {} tasks of runtime {rt} are parked and no timer or outside event can wake any of them: ",
        tasks.len()
    );
    // Bounded: the dump that goes with it lists every task anyway.
    const NAMED: usize = 20;
    let waits: Vec<String> = tasks.iter().take(NAMED).map(|t| describe_wait(s, t)).collect();
    explanation.push_str(&waits.join("; "));
    if tasks.len() > NAMED {
        write!(explanation, "; and {} more", tasks.len() - NAMED).unwrap();
    }
    explanation.push('.');
    Finding {
        certainty: Certainty::Definite,
        kind: FindingKind::GlobalDeadlock,
        tasks: tasks.iter().map(|t| t.id).collect(),
        resources: resources_of(tasks.iter().copied()),
        explanation,
        site: None,
    }
}

fn resources_of<'a>(tasks: impl IntoIterator<Item = &'a TaskInfo>) -> Vec<ResourceId> {
    let set: BTreeSet<ResourceId> = tasks.into_iter().flat_map(|t| t.waits_on.iter().map(|w| w.resource)).collect();
    set.into_iter().collect()
}

// ------------------------------------------------------- definite, partial

fn is_lock_op(op: WaitReason) -> bool {
    matches!(op, WaitReason::MutexLock | WaitReason::RwMutexLock | WaitReason::RwMutexRLock)
}

/// Why a lock waiter cannot proceed before another task.
#[derive(Clone, Debug)]
enum Blocker {
    /// It holds the lock.
    Holds { task: TaskId, at: String, write: bool },
    /// It is queued ahead (and the lock is granted in order).
    QueuedAhead { task: TaskId, write: bool },
}

impl Blocker {
    fn task(&self) -> TaskId {
        match self {
            Blocker::Holds { task, .. } | Blocker::QueuedAhead { task, .. } => *task,
        }
    }
}

/// The blockers of every queued lock waiter: the holders it needs gone and
/// the nearest waiter ahead of it (a writer waits behind anyone ahead, a
/// reader behind the nearest writer ahead). The nearest suffices: that one in
/// turn waits for the rest, so being stuck still flows along the queue, and
/// the index is built in one pass per lock. `None` when not all blockers are
/// known (readers past the named slots, a lock taken outside a task).
type LockIndex = HashMap<(TaskId, ResourceId), Option<Vec<Blocker>>>;

fn lock_index(s: &Snapshot) -> LockIndex {
    let mut index = LockIndex::new();
    for r in s.resources().iter().filter(|r| matches!(r.kind, ResourceKind::Mutex | ResourceKind::RwMutex)) {
        // The nearest waiter ahead, and the nearest writer ahead: (task, writes).
        let mut last_any: Option<(TaskId, bool)> = None;
        let mut last_writer: Option<(TaskId, bool)> = None;
        for q in &r.queue {
            let blockers = (!r.holders_incomplete).then(|| {
                let mut b: Vec<Blocker> = r
                    .holders
                    .iter()
                    .filter(|h| q.write || h.write)
                    .map(|h| Blocker::Holds { task: h.task, at: h.at.to_string(), write: h.write })
                    .collect();
                let ahead = if q.write { last_any } else { last_writer };
                b.extend(ahead.map(|(task, write)| Blocker::QueuedAhead { task, write }));
                b
            });
            index.insert((q.task, r.id), blockers);
            last_any = Some((q.task, q.write));
            if q.write {
                last_writer = last_any;
            }
        }
    }
    index
}

/// The blockers of `t`'s wait `w` on a lock, from the index.
fn lock_blockers<'a>(index: &'a LockIndex, t: TaskId, w: &WaitOn) -> Option<&'a Vec<Blocker>> {
    index.get(&(t, w.resource))?.as_ref()
}

/// A task parked only on locks, with the blockers of each lock wait.
fn lock_wait(index: &LockIndex, t: &TaskInfo) -> Option<Vec<(WaitOn, Vec<Blocker>)>> {
    if !t.blocked || t.waits_on.is_empty() || !t.waits_on.iter().all(|w| is_lock_op(w.op)) {
        return None;
    }
    t.waits_on.iter().map(|w| Some((*w, lock_blockers(index, t.id, w)?.clone()))).collect()
}

/// A task parked only on channel receives whose every sender handle is gone:
/// nothing can ever send or close. Once a side has no handle it never gets one
/// back (handles are made only by cloning), so this is a proof.
fn orphaned(s: &Snapshot, t: &TaskInfo) -> bool {
    t.blocked
        && !t.waits_on.is_empty()
        && t.waits_on.iter().all(|w| {
            w.op == WaitReason::ChanReceive
                && s.resource(w.resource).is_some_and(|r| {
                    r.send_handles == 0 && !r.timer_armed && matches!(r.kind, ResourceKind::Chan { closed: false, .. })
                })
        })
}

/// Lock cycles, orphaned waits, and every lock waiter stuck behind either.
fn definite_partial(s: &Snapshot, index: &LockIndex, skip: &HashSet<TaskId>) -> Vec<Finding> {
    let waits: BTreeMap<TaskId, Vec<(WaitOn, Vec<Blocker>)>> = s
        .tasks()
        .iter()
        .filter(|t| !skip.contains(&t.id))
        .filter_map(|t| lock_wait(index, t).map(|w| (t.id, w)))
        .collect();
    let orphans: Vec<TaskId> =
        s.tasks().iter().filter(|t| !skip.contains(&t.id) && orphaned(s, t)).map(|t| t.id).collect();
    let cycles = lock_cycles(&waits);
    let mut findings = Vec::new();
    let mut stuck: HashSet<TaskId> = HashSet::new();
    for cycle in cycles {
        stuck.extend(cycle.iter().copied());
        let kind = if cycle.len() == 1 { FindingKind::DoubleLock } else { FindingKind::LockCycle };
        findings.push((kind, cycle));
    }
    for &o in &orphans {
        stuck.insert(o);
        findings.push((FindingKind::OrphanedWait, vec![o]));
    }
    // Lock waiters behind a stuck task are stuck too.
    let behind = stuck_behind(&waits, &mut stuck);
    let mut out: Vec<Finding> = findings
        .into_iter()
        .filter(|(_, tasks)| verify(s, tasks))
        .map(|(kind, tasks)| {
            let followers: Vec<TaskId> =
                behind.iter().filter(|(_, via)| tasks.contains(via)).map(|(t, _)| *t).collect();
            explain_definite(s, kind, &tasks, &followers, &waits)
        })
        .collect();
    out.sort_by_key(|f| f.tasks.first().copied());
    out
}

/// Tasks on lock cycles: strongly connected components of "waits behind",
/// with a self-loop for a task that waits behind itself.
fn lock_cycles(waits: &BTreeMap<TaskId, Vec<(WaitOn, Vec<Blocker>)>>) -> Vec<Vec<TaskId>> {
    let mut g = petgraph::graphmap::DiGraphMap::<u64, ()>::new();
    for (t, ws) in waits {
        g.add_node(t.0);
        for (_, blockers) in ws {
            for b in blockers.iter().filter(|b| waits.contains_key(&b.task())) {
                g.add_edge(t.0, b.task().0, ());
            }
        }
    }
    petgraph::algo::kosaraju_scc(&g)
        .into_iter()
        .filter(|c| c.len() > 1 || g.contains_edge(c[0], c[0]))
        .map(|mut c| {
            c.sort_unstable();
            c.into_iter().map(TaskId).collect()
        })
        .collect()
}

/// Adds to `stuck` every lock waiter that waits behind a stuck task; returns
/// them with the stuck root they hang off. A worklist over "who waits behind
/// whom", so each waiter is looked at once.
fn stuck_behind(
    waits: &BTreeMap<TaskId, Vec<(WaitOn, Vec<Blocker>)>>,
    stuck: &mut HashSet<TaskId>,
) -> Vec<(TaskId, TaskId)> {
    let mut behind: HashMap<TaskId, Vec<TaskId>> = HashMap::new();
    for (t, ws) in waits {
        for b in ws.iter().flat_map(|(_, bs)| bs) {
            behind.entry(b.task()).or_default().push(*t);
        }
    }
    let mut work: Vec<(TaskId, TaskId)> = stuck.iter().map(|&t| (t, t)).collect();
    let mut added = Vec::new();
    while let Some((b, root)) = work.pop() {
        for &t in behind.get(&b).map_or(&[][..], Vec::as_slice) {
            if stuck.insert(t) {
                added.push((t, root));
                work.push((t, root));
            }
        }
    }
    added
}

/// Re-reads the tasks of a definite finding from the live registry: each must
/// still be parked in the very wait the snapshot saw. A parked task changes
/// nothing (it cannot release a lock or drop a handle), so facts read about
/// its resources while all of them stayed parked still hold — permanently.
fn verify(s: &Snapshot, tasks: &[TaskId]) -> bool {
    if !s.live {
        return true; // an offline snapshot: its facts are all we have
    }
    let same_wait = || {
        tasks.iter().all(|id| {
            let seen = s.task(*id).map(|t| t.park_seq);
            crate::task::registry::get(id.0).is_some_and(|r| r.parked_in(seen))
        })
    };
    same_wait()
}

fn explain_definite(
    s: &Snapshot,
    kind: FindingKind,
    tasks: &[TaskId],
    followers: &[TaskId],
    waits: &BTreeMap<TaskId, Vec<(WaitOn, Vec<Blocker>)>>,
) -> Finding {
    let mut text = String::new();
    let head = match kind {
        FindingKind::DoubleLock => "double locking: a task waits for a lock it already holds. ",
        FindingKind::LockCycle => "lock cycle: each task waits for a lock another one holds or is queued for. ",
        _ => "orphaned wait: nothing left alive can ever wake this task. ",
    };
    text.push_str(head);
    let mut involved: Vec<TaskId> = tasks.to_vec();
    let mut resources = BTreeSet::new();
    for id in tasks {
        let Some(t) = s.task(*id) else { continue };
        text.push_str(&describe_wait(s, t));
        for w in &t.waits_on {
            resources.insert(w.resource);
        }
        if let Some(ws) = waits.get(id) {
            for (w, blockers) in ws {
                for b in blockers.iter().filter(|b| tasks.contains(&b.task())) {
                    let who = s.task(b.task()).map_or_else(|| format!("task {}", b.task()), task_label);
                    let who = if b.task() == *id { "this same task".to_string() } else { who };
                    match b {
                        Blocker::Holds { at, write, .. } => {
                            let mode = if *write { "" } else { " for reading" };
                            write!(text, "; {} is held{mode} by {who} (locked at {at})", label_of(s, w.resource))
                                .unwrap()
                        }
                        Blocker::QueuedAhead { write, .. } => {
                            let what = if *write { "a writer" } else { "a waiter" };
                            write!(text, "; {who} is queued ahead of it as {what}, and readers wait behind queued writers (Go's RWMutex)").unwrap()
                        }
                    }
                }
            }
        }
        if kind == FindingKind::OrphanedWait {
            for w in &t.waits_on {
                let r = s.resource(w.resource);
                let users = r.map(|r| names(s, r.wakers.iter().copied())).unwrap_or_default();
                write!(
                    text,
                    "; {} has no sending handle left (its senders were {users}), so nobody can send on it or close it",
                    label_of(s, w.resource)
                )
                .unwrap();
            }
        }
        text.push_str(". ");
    }
    if !followers.is_empty() {
        write!(text, "Also stuck behind them: {}.", names(s, followers.iter().copied())).unwrap();
        involved.extend_from_slice(followers);
        for f in followers {
            if let Some(t) = s.task(*f) {
                resources.extend(t.waits_on.iter().map(|w| w.resource));
            }
        }
    }
    Finding {
        certainty: Certainty::Definite,
        kind,
        tasks: involved,
        resources: resources.into_iter().collect(),
        explanation: text.trim_end().to_string(),
        site: None,
    }
}

// ----------------------------------------------------------------- probable

/// Who could complete `t`'s wait `w`, as far as the resource knows; `None` when
/// unknown (an escape: somebody we cannot see may act).
fn known_wakers(s: &Snapshot, index: &LockIndex, t: &TaskInfo, w: &WaitOn) -> Option<Vec<TaskId>> {
    let r = s.resource(w.resource)?;
    if r.timer_armed {
        return None;
    }
    let others = |ids: &[TaskId]| ids.iter().copied().filter(|&u| u != t.id).collect::<Vec<_>>();
    // Live handles on the waking side with no known waker alive: whoever holds
    // them is unknown (a task that has not used it yet), so there is no evidence.
    let unknown_holders = |handles: usize, known: &[TaskId]| handles > 0 && !known.iter().any(|u| s.task(*u).is_some());
    let wakers = match (&r.kind, w.op) {
        (ResourceKind::Chan { .. }, WaitReason::ChanReceive) => {
            if r.wakers_incomplete {
                return None;
            }
            let senders = others(&r.wakers);
            if unknown_holders(r.send_handles, &senders) {
                return None;
            }
            senders
        }
        (ResourceKind::Chan { .. }, _) => {
            if r.waiters_incomplete || r.wakers_incomplete {
                return None;
            }
            // Receivers wake a sender; other senders could only close.
            let receivers = others(&r.waiters);
            if unknown_holders(r.recv_handles, &receivers) {
                return None;
            }
            let mut w = receivers;
            w.extend(others(&r.wakers));
            w
        }
        (ResourceKind::Mutex | ResourceKind::RwMutex, _) => {
            lock_blockers(index, t.id, w)?.iter().map(Blocker::task).collect()
        }
        (ResourceKind::WaitGroup { .. }, _) => {
            // `send_handles` counts a wait group's handles; the waiter's own is one.
            let w = others(&r.wakers);
            if r.wakers_incomplete || w.is_empty() || unknown_holders(r.send_handles.saturating_sub(1), &w) {
                return None;
            }
            w
        }
        (ResourceKind::Cond, _) => {
            // No handles to count: the known signallers are the evidence.
            let w = others(&r.wakers);
            if r.wakers_incomplete || w.is_empty() {
                return None;
            }
            w
        }
    };
    Some(wakers)
}

/// Stuck sets: tasks parked for the grace period with nothing happening on
/// what they wait for, every known waker of which is in the set or gone.
///
/// A worklist: a candidate with an unknown waker, or a known waker alive
/// outside the candidates, escapes; each escape is propagated once to the
/// candidates that counted on it.
fn stuck_sets(s: &Snapshot, index: &LockIndex, grace: Duration, skip: &HashSet<TaskId>) -> Vec<Finding> {
    let mut set: BTreeSet<TaskId> = s
        .tasks()
        .iter()
        .filter(|t| {
            t.blocked
                && !skip.contains(&t.id)
                && !t.waits_on.is_empty()
                && t.activity_since_park == 0
                && t.parked_for.is_some_and(|d| d >= grace)
        })
        .map(|t| t.id)
        .collect();
    // Every candidate's known wakers (None: some wait has unknown wakers).
    let wakers: BTreeMap<TaskId, Option<Vec<TaskId>>> = set
        .iter()
        .filter_map(|&id| {
            let t = s.task(id)?;
            let all: Option<Vec<Vec<TaskId>>> = t.waits_on.iter().map(|w| known_wakers(s, index, t, w)).collect();
            Some((id, all.map(|ws| ws.concat())))
        })
        .collect();
    let mut dependents: HashMap<TaskId, Vec<TaskId>> = HashMap::new();
    let mut work: Vec<TaskId> = Vec::new();
    for (&t, ws) in &wakers {
        match ws {
            None => work.push(t),
            Some(ws) => {
                for &u in ws {
                    if set.contains(&u) {
                        dependents.entry(u).or_default().push(t);
                    } else if s.task(u).is_some() {
                        work.push(t); // a live waker outside the set
                    }
                }
            }
        }
    }
    while let Some(t) = work.pop() {
        if set.remove(&t) {
            work.extend(dependents.get(&t).into_iter().flatten().copied());
        }
    }
    components(s, &set, &wakers).into_iter().map(|c| explain_stuck(s, &c, grace)).collect()
}

/// Splits a stuck set into groups connected through the resources they wait
/// on and the wakers they count on.
fn components(
    s: &Snapshot,
    set: &BTreeSet<TaskId>,
    wakers: &BTreeMap<TaskId, Option<Vec<TaskId>>>,
) -> Vec<Vec<TaskId>> {
    let mut uf = petgraph::unionfind::UnionFind::<usize>::new(set.len());
    let index: BTreeMap<TaskId, usize> = set.iter().enumerate().map(|(i, t)| (*t, i)).collect();
    let mut by_resource: BTreeMap<ResourceId, usize> = BTreeMap::new();
    for (&id, &i) in &index {
        let Some(t) = s.task(id) else { continue };
        for w in &t.waits_on {
            match by_resource.get(&w.resource) {
                Some(&j) => {
                    uf.union(i, j);
                }
                None => {
                    by_resource.insert(w.resource, i);
                }
            }
        }
        for u in wakers.get(&id).cloned().flatten().unwrap_or_default() {
            if let Some(&j) = index.get(&u) {
                uf.union(i, j);
            }
        }
    }
    let mut groups: BTreeMap<usize, Vec<TaskId>> = BTreeMap::new();
    for (&id, &i) in &index {
        groups.entry(uf.find(i)).or_default().push(id);
    }
    groups.into_values().collect()
}

fn explain_stuck(s: &Snapshot, tasks: &[TaskId], grace: Duration) -> Finding {
    let ts: Vec<&TaskInfo> = tasks.iter().filter_map(|id| s.task(*id)).collect();
    let longest = ts.iter().filter_map(|t| t.parked_for).min().unwrap_or_default();
    let mut text = format!(
        "stuck set (probable): {} parked for at least {:.1?} (grace {:.1?}) with no operation on what they wait for, and every task known to use those resources is in this set or has exited. ",
        names(s, tasks.iter().copied()),
        longest,
        grace
    );
    let resources = resources_of(ts.iter().copied());
    for t in &ts {
        write!(text, "{}; ", describe_wait(s, t)).unwrap();
    }
    for id in &resources {
        if let Some(r) = s.resource(*id) {
            let mut users: BTreeSet<TaskId> = r.wakers.iter().copied().collect();
            users.extend(r.waiters.iter().copied());
            users.extend(r.holders.iter().map(|h| h.task));
            write!(text, "{} has been used only by {}; ", r.label(), names(s, users)).unwrap();
        }
    }
    Finding {
        certainty: Certainty::Probable,
        kind: FindingKind::StuckSet,
        tasks: tasks.to_vec(),
        resources,
        explanation: text.trim_end_matches("; ").to_string() + ".",
        site: None,
    }
}

// --------------------------------------------------------------------- leaks

/// Tasks parked longer than `leak_after`, grouped by where and how they park,
/// largest groups first (LeakProf's ranking).
fn leak_suspects(s: &Snapshot, leak_after: Duration, skip: &HashSet<TaskId>) -> Vec<Finding> {
    let mut groups: BTreeMap<(String, u32, Option<WaitReason>), Vec<&TaskInfo>> = BTreeMap::new();
    for t in s.tasks() {
        let long = t.parked_for.is_some_and(|d| d >= leak_after);
        if long && !t.timer_wakeable && !skip.contains(&t.id) && t.wait_reason != Some(WaitReason::Sleep) {
            let (file, line) = t.parked_at.as_ref().map_or((String::new(), 0), |l| (l.file.to_string(), l.line));
            groups.entry((file, line, t.wait_reason)).or_default().push(t);
        }
    }
    let mut out: Vec<Finding> = groups
        .into_values()
        .map(|ts| {
            let oldest = ts.iter().filter_map(|t| t.parked_for).max().unwrap_or_default();
            let first = ts[0];
            let reason = first.wait_reason.map(|r| r.to_string()).unwrap_or_default();
            let explanation = format!(
                "leak suspect: {} task(s) parked in {reason}{} for up to {:.0?} ({}).",
                ts.len(),
                site(first),
                oldest,
                names(s, ts.iter().take(10).map(|t| t.id))
            );
            Finding {
                certainty: Certainty::Suspected,
                kind: FindingKind::LeakSuspect,
                tasks: ts.iter().map(|t| t.id).collect(),
                resources: resources_of(ts.iter().copied()),
                explanation,
                site: first.parked_at.clone(),
            }
        })
        .collect();
    out.sort_by_key(|f| std::cmp::Reverse(f.tasks.len()));
    out
}
