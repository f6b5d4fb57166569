//! The detectors, run over a snapshot by [`Snapshot::analyze`].
//!
//! Everything is indexed by position in the snapshot's task and resource
//! lists (sorted by id): flags and edge lists in flat vectors, lookups by a
//! binary search over a compact copy of the ids, and wakers and lock blockers
//! read in place from the resources, so the cost is a few passes over the
//! tasks and no allocation per task (10^6 parked tasks in well under a second).

use std::cell::Cell;
use std::collections::{BTreeSet, HashMap};
use std::fmt::{self, Write as _};
use std::time::Duration;

use super::graph::{task_label, TaskLabel, WaitForGraph};
use super::{Analysis, Certainty, FastMap, Finding, FindingKind};
use crate::snapshot::{
    Holder, Queued, ResourceId, ResourceInfo, ResourceKind, Snapshot, TaskId, TaskInfo, WaitOn, WaitReason,
};

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
        let ctx = Ctx::new(self);
        let mut a = Analysis::default();
        for &rt in &self.dead_runtimes {
            a.global_deadlock = true;
            a.deadlocks.push(global_finding(self, rt));
        }
        // Tasks already in a finding, by position: the global deadlocks' are
        // exactly those of the dead runtimes.
        let mut claimed: Vec<bool> = if self.dead_runtimes.is_empty() {
            vec![false; self.tasks.len()]
        } else {
            self.tasks.iter().map(|t| self.dead_runtimes.contains(&t.runtime)).collect()
        };
        let claim = |claimed: &mut Vec<bool>, found: &[Finding]| {
            for id in found.iter().flat_map(|f| &f.tasks) {
                if let Some(i) = ctx.pos(*id) {
                    claimed[i] = true;
                }
            }
        };
        // One pass over the tasks for both detectors (each task's waits and
        // resources are read once, while in cache). The stuck-set scan assumes
        // no definite finding; when there is one, it runs again without them.
        let mut definite_scan = DefiniteScan::new(self.tasks.len());
        let mut stuck_scan = StuckScan::new(&ctx, opts.grace, &claimed);
        for (i, t) in self.tasks.iter().enumerate() {
            if !claimed[i] {
                definite_scan.task(&ctx, i, t);
            }
            stuck_scan.task(&ctx, i, t);
        }
        let definite = definite_findings(&ctx, definite_scan);
        let probable = if definite.is_empty() {
            stuck_scan.findings(&ctx)
        } else {
            drop(stuck_scan);
            claim(&mut claimed, &definite);
            stuck_sets(&ctx, opts.grace, &claimed)
        };
        a.deadlocks.extend(definite);
        claim(&mut claimed, &probable);
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
    Site(t).to_string()
}

/// `" at file:line"` where `t` is parked, or nothing.
struct Site<'a>(&'a TaskInfo);

impl fmt::Display for Site<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0.parked_at {
            Some(l) => write!(f, " at {l}"),
            None => Ok(()),
        }
    }
}

/// `task 12 "keeper" waits to lock sync.Mutex#4 (sync.Mutex.Lock) at src/auth.rs:88`
fn describe_wait(s: &Snapshot, t: &TaskInfo) -> String {
    Wait(s, t).to_string()
}

/// Displays as [`describe_wait`], for writing it into an explanation directly.
struct Wait<'a>(&'a Snapshot, &'a TaskInfo);

impl fmt::Display for Wait<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Wait(s, t) = *self;
        let reason = t.wait_reason.map_or("", WaitReason::as_str);
        write!(f, "{}", TaskLabel(t))?;
        match t.waits_on.as_slice() {
            [] => write!(f, " waits in {reason}{}", Site(t)),
            [w] => write!(f, " waits {} {} ({reason}){}", reason_text(w.op), label_of(s, w.resource), Site(t)),
            many => {
                let cases: Vec<String> =
                    many.iter().map(|w| format!("{} {}", reason_text(w.op), label_of(s, w.resource))).collect();
                write!(f, " waits in select ({}){}", cases.join(", "), Site(t))
            }
        }
    }
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

/// The resources `tasks` wait on, sorted, each once.
fn resources_of<'a>(tasks: impl IntoIterator<Item = &'a TaskInfo>) -> Vec<ResourceId> {
    let mut ids: Vec<ResourceId> = Vec::new();
    for w in tasks.into_iter().flat_map(|t| &t.waits_on) {
        // Neighbouring tasks often wait on the same resource: skip the repeat
        // before sorting.
        if ids.last() != Some(&w.resource) {
            ids.push(w.resource);
        }
    }
    ids.sort_unstable();
    ids.dedup();
    ids
}

// -------------------------------------------------------------------- index

/// Positions in the snapshot's sorted lists, and the long lock queues.
struct Ctx<'a> {
    s: &'a Snapshot,
    /// `s.tasks()[i].id`: a binary search here touches far less memory than
    /// one over the `TaskInfo`s.
    task_ids: Vec<u64>,
    /// `s.resources()[i].id`.
    res_ids: Vec<u64>,
    /// The entries of lock queues longer than [`SHORT_QUEUE`], by (task,
    /// resource); shorter queues are scanned.
    long_queues: FastMap<(u64, u64), QueueEntry>,
    /// The last id looked up and its position (neighbouring tasks mostly
    /// wait on the same resource, or for the same holder).
    last_task: Cell<(u64, Option<usize>)>,
    last_res: Cell<(u64, Option<usize>)>,
}

/// Lock queues up to this long are scanned on each lookup, longer ones indexed.
const SHORT_QUEUE: usize = 16;

/// A queued lock waiter: whether it wants to write, and the nearest waiter it
/// waits behind (task, writes).
#[derive(Copy, Clone)]
struct QueueEntry {
    write: bool,
    ahead: Option<(TaskId, bool)>,
}

fn is_lock(r: &ResourceInfo) -> bool {
    matches!(r.kind, ResourceKind::Mutex | ResourceKind::RwMutex)
}

/// Calls `f` on each entry of `r`'s queue with what it waits behind: a writer
/// waits behind anyone ahead, a reader behind the nearest writer ahead. The
/// nearest suffices: that one in turn waits for the rest, so being stuck still
/// flows along the queue.
fn scan_queue(r: &ResourceInfo, mut f: impl FnMut(&Queued, QueueEntry)) {
    let mut last_any: Option<(TaskId, bool)> = None;
    let mut last_writer: Option<(TaskId, bool)> = None;
    for q in &r.queue {
        let ahead = if q.write { last_any } else { last_writer };
        f(q, QueueEntry { write: q.write, ahead });
        last_any = Some((q.task, q.write));
        if q.write {
            last_writer = last_any;
        }
    }
}

impl<'a> Ctx<'a> {
    /// `s` must have sorted, unique task and resource ids.
    fn new(s: &'a Snapshot) -> Ctx<'a> {
        let mut long_queues = FastMap::default();
        for r in s.resources().iter().filter(|r| r.queue.len() > SHORT_QUEUE && is_lock(r)) {
            // A task queued twice: its last entry counts, as in a scan.
            scan_queue(r, |q, e| {
                long_queues.insert((q.task.0, r.id.0), e);
            });
        }
        Ctx {
            s,
            task_ids: s.tasks().iter().map(|t| t.id.0).collect(),
            res_ids: s.resources().iter().map(|r| r.id.0).collect(),
            long_queues,
            last_task: Cell::new((0, None)),
            last_res: Cell::new((0, None)),
        }
    }

    fn find(ids: &[u64], last: &Cell<(u64, Option<usize>)>, id: u64) -> Option<usize> {
        let (prev, at) = last.get();
        if prev == id && at.is_some() {
            return at;
        }
        let at = ids.binary_search(&id).ok();
        last.set((id, at));
        at
    }

    /// The position of task `id` in `s.tasks()`.
    fn pos(&self, id: TaskId) -> Option<usize> {
        Self::find(&self.task_ids, &self.last_task, id.0)
    }

    fn alive(&self, id: TaskId) -> bool {
        self.pos(id).is_some()
    }

    fn resource(&self, id: ResourceId) -> Option<&'a ResourceInfo> {
        Self::find(&self.res_ids, &self.last_res, id.0).map(|i| &self.s.resources()[i])
    }

    /// `t`'s entry in the queue of lock `r` (its last, if queued twice).
    fn queue_entry(&self, r: &ResourceInfo, t: TaskId) -> Option<QueueEntry> {
        if !is_lock(r) {
            return None;
        }
        if r.queue.len() > SHORT_QUEUE {
            return self.long_queues.get(&(t.0, r.id.0)).copied();
        }
        let mut found = None;
        scan_queue(r, |q, e| {
            if q.task == t {
                found = Some(e);
            }
        });
        found
    }

    /// The blockers of `t`'s wait `w` on a lock: the holders it needs gone and
    /// the nearest waiter ahead of it. `None` when not all are known (not
    /// queued, readers past the named slots, a lock taken outside a task).
    fn lock_blockers(&self, t: TaskId, w: &WaitOn) -> Option<LockBlockers<'a>> {
        let r = self.resource(w.resource)?;
        let e = self.queue_entry(r, t)?;
        if r.holders_incomplete {
            return None;
        }
        Some(LockBlockers { holders: &r.holders, write: e.write, ahead: e.ahead })
    }
}

// ------------------------------------------------------- definite, partial

fn is_lock_op(op: WaitReason) -> bool {
    matches!(op, WaitReason::MutexLock | WaitReason::RwMutexLock | WaitReason::RwMutexRLock)
}

/// Why a lock waiter cannot proceed before another task.
#[derive(Copy, Clone, Debug)]
enum Blocker<'a> {
    /// It holds the lock.
    Holds(&'a Holder),
    /// It is queued ahead (and the lock is granted in order).
    QueuedAhead { task: TaskId, write: bool },
}

impl Blocker<'_> {
    fn task(&self) -> TaskId {
        match self {
            Blocker::Holds(h) => h.task,
            Blocker::QueuedAhead { task, .. } => *task,
        }
    }
}

/// The blockers of one lock wait, read in place from the lock.
#[derive(Copy, Clone)]
struct LockBlockers<'a> {
    holders: &'a [Holder],
    write: bool,
    ahead: Option<(TaskId, bool)>,
}

impl<'a> LockBlockers<'a> {
    /// The holders it needs gone (a writer needs every holder gone, a reader
    /// only writers), then the waiter ahead of it.
    fn iter(self) -> impl Iterator<Item = Blocker<'a>> {
        let write = self.write;
        self.holders
            .iter()
            .filter(move |h| write || h.write)
            .map(Blocker::Holds)
            .chain(self.ahead.map(|(task, write)| Blocker::QueuedAhead { task, write }))
    }
}

/// Whether `t` is parked only on locks, with every blocker of each lock wait known.
fn is_lock_waiter(ctx: &Ctx<'_>, t: &TaskInfo) -> bool {
    t.blocked
        && !t.waits_on.is_empty()
        && t.waits_on.iter().all(|w| is_lock_op(w.op))
        && t.waits_on.iter().all(|w| ctx.lock_blockers(t.id, w).is_some())
}

/// The blockers of every lock wait of lock waiter `t`.
fn blockers_of<'a>(ctx: &'a Ctx<'_>, t: &'a TaskInfo) -> impl Iterator<Item = (&'a WaitOn, Blocker<'a>)> + 'a {
    t.waits_on
        .iter()
        .flat_map(move |w| ctx.lock_blockers(t.id, w).into_iter().flat_map(|b| b.iter()).map(move |b| (w, b)))
}

/// A task parked only on channel receives whose every sender handle is gone:
/// nothing can ever send or close. Once a side has no handle it never gets one
/// back (handles are made only by cloning), so this is a proof.
fn orphaned(ctx: &Ctx<'_>, t: &TaskInfo) -> bool {
    t.blocked
        && !t.waits_on.is_empty()
        && t.waits_on.iter().all(|w| {
            w.op == WaitReason::ChanReceive
                && ctx.resource(w.resource).is_some_and(|r| {
                    r.send_handles == 0 && !r.timer_armed && matches!(r.kind, ResourceKind::Chan { closed: false, .. })
                })
        })
}

/// Edges `(from, to)` between positions, as adjacency lists (compressed rows).
struct Adjacency {
    start: Vec<u32>,
    to: Vec<u32>,
}

impl Adjacency {
    /// Keeps the order of `edges` within each row.
    fn new(n: usize, edges: &[(u32, u32)]) -> Adjacency {
        let mut start = vec![0u32; n + 1];
        for &(from, _) in edges {
            start[from as usize + 1] += 1;
        }
        for i in 0..n {
            start[i + 1] += start[i];
        }
        let mut next = start.clone();
        let mut to = vec![0u32; edges.len()];
        for &(from, t) in edges {
            to[next[from as usize] as usize] = t;
            next[from as usize] += 1;
        }
        Adjacency { start, to }
    }

    fn row(&self, i: usize) -> &[u32] {
        &self.to[self.start[i] as usize..self.start[i + 1] as usize]
    }
}

/// What [`definite_findings`] needs of each task: whether it is a lock waiter
/// (with every blocker known) or an orphaned receiver.
struct DefiniteScan {
    kind: Vec<u8>,
    /// (lock waiter, task it waits behind), in position order.
    blocked_by: Vec<(u32, u32)>,
    orphans: Vec<u32>,
}

const NOT_STUCK: u8 = 0;
const LOCK_WAITER: u8 = 1;
const ORPHAN: u8 = 2;

impl DefiniteScan {
    fn new(n: usize) -> DefiniteScan {
        DefiniteScan { kind: vec![NOT_STUCK; n], blocked_by: Vec::new(), orphans: Vec::new() }
    }

    /// Looks at task `i` (not in a finding yet); in position order.
    fn task(&mut self, ctx: &Ctx<'_>, i: usize, t: &TaskInfo) {
        if is_lock_waiter(ctx, t) {
            self.kind[i] = LOCK_WAITER;
            for (_, b) in blockers_of(ctx, t) {
                if let Some(j) = ctx.pos(b.task()) {
                    self.blocked_by.push((i as u32, j as u32));
                }
            }
        } else if orphaned(ctx, t) {
            self.kind[i] = ORPHAN;
            self.orphans.push(i as u32);
        }
    }
}

/// Lock cycles, orphaned waits, and every lock waiter stuck behind either,
/// from the scan of every task not in a finding yet.
fn definite_findings(ctx: &Ctx<'_>, scan: DefiniteScan) -> Vec<Finding> {
    let s = ctx.s;
    let tasks = s.tasks();
    let n = tasks.len();
    let DefiniteScan { kind, blocked_by, orphans } = scan;
    // "Waits behind" between lock waiters (for the cycles), and its reverse
    // from anything that can be stuck (to find who is stuck behind it).
    let mut behind: Vec<(u32, u32)> = Vec::new();
    let mut ahead_of: Vec<(u32, u32)> = Vec::new();
    for &(i, j) in &blocked_by {
        match kind[j as usize] {
            LOCK_WAITER => {
                behind.push((i, j));
                ahead_of.push((j, i));
            }
            ORPHAN => ahead_of.push((j, i)),
            _ => {}
        }
    }
    let cycles = if behind.is_empty() { Vec::new() } else { lock_cycles(&Adjacency::new(n, &behind)) };
    if cycles.is_empty() && orphans.is_empty() {
        return Vec::new();
    }
    let mut findings: Vec<(FindingKind, Vec<u32>)> = Vec::new();
    for cycle in cycles {
        let kind = if cycle.len() == 1 { FindingKind::DoubleLock } else { FindingKind::LockCycle };
        findings.push((kind, cycle));
    }
    findings.extend(orphans.iter().map(|&o| (FindingKind::OrphanedWait, vec![o])));
    let followers = stuck_behind(n, &Adjacency::new(n, &ahead_of), &findings);
    let id = |i: &u32| tasks[*i as usize].id;
    let mut out: Vec<Finding> = findings
        .iter()
        .zip(&followers)
        .map(|((kind, members), followers)| (*kind, members.iter().map(id).collect::<Vec<_>>(), followers))
        .filter(|(_, members, _)| verify(s, members))
        .map(|(kind, members, followers)| {
            let followers: Vec<TaskId> = followers.iter().map(id).collect();
            explain_definite(ctx, kind, &members, &followers)
        })
        .collect();
    out.sort_by_key(|f| f.tasks.first().copied());
    out
}

/// Tasks on lock cycles: strongly connected components of "waits behind",
/// with a self-loop for a task that waits behind itself; each sorted.
/// Tarjan's algorithm, iterative (a wait chain can be as long as the registry).
fn lock_cycles(g: &Adjacency) -> Vec<Vec<u32>> {
    const UNSEEN: u32 = u32::MAX;
    let n = g.start.len() - 1;
    let mut index = vec![UNSEEN; n];
    let mut low = vec![0u32; n];
    let mut on_stack = vec![false; n];
    let mut stack: Vec<u32> = Vec::new();
    // (node, next edge to follow)
    let mut calls: Vec<(u32, u32)> = Vec::new();
    let mut next_index = 0u32;
    let mut out = Vec::new();
    for root in 0..n {
        if index[root] != UNSEEN || g.row(root).is_empty() {
            continue;
        }
        macro_rules! visit {
            ($v:expr) => {{
                let v: u32 = $v;
                index[v as usize] = next_index;
                low[v as usize] = next_index;
                next_index += 1;
                on_stack[v as usize] = true;
                stack.push(v);
                calls.push((v, g.start[v as usize]));
            }};
        }
        visit!(root as u32);
        while let Some(&mut (v, ref mut e)) = calls.last_mut() {
            let vu = v as usize;
            if *e < g.start[vu + 1] {
                let w = g.to[*e as usize];
                *e += 1;
                if index[w as usize] == UNSEEN {
                    visit!(w);
                } else if on_stack[w as usize] {
                    low[vu] = low[vu].min(index[w as usize]);
                }
                continue;
            }
            calls.pop();
            if let Some(&(u, _)) = calls.last() {
                low[u as usize] = low[u as usize].min(low[vu]);
            }
            if low[vu] == index[vu] {
                let mut scc = Vec::new();
                loop {
                    let w = stack.pop().expect("v is on the stack");
                    on_stack[w as usize] = false;
                    scc.push(w);
                    if w == v {
                        break;
                    }
                }
                if scc.len() > 1 || g.row(vu).contains(&v) {
                    scc.sort_unstable();
                    out.push(scc);
                }
            }
        }
    }
    out
}

/// The lock waiters stuck behind each finding's tasks, in the order found: a
/// worklist over "who waits behind whom" from every stuck task, each waiter
/// looked at once. A waiter stuck behind two findings goes with the one whose
/// lowest stuck task comes first.
fn stuck_behind(n: usize, ahead_of: &Adjacency, findings: &[(FindingKind, Vec<u32>)]) -> Vec<Vec<u32>> {
    let mut stuck = vec![false; n];
    let mut roots: Vec<(u32, u32)> = Vec::new();
    for (f, (_, members)) in findings.iter().enumerate() {
        for &m in members {
            stuck[m as usize] = true;
            roots.push((m, f as u32));
        }
    }
    // Popped from the end: lowest position first.
    roots.sort_unstable_by(|a, b| b.cmp(a));
    let mut followers: Vec<Vec<u32>> = vec![Vec::new(); findings.len()];
    let mut work = roots;
    while let Some((b, f)) = work.pop() {
        for &t in ahead_of.row(b as usize) {
            if !stuck[t as usize] {
                stuck[t as usize] = true;
                followers[f as usize].push(t);
                work.push((t, f));
            }
        }
    }
    followers
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

/// `tasks` is sorted (a cycle) or a single task.
fn explain_definite(ctx: &Ctx<'_>, kind: FindingKind, tasks: &[TaskId], followers: &[TaskId]) -> Finding {
    let s = ctx.s;
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
        write!(text, "{}", Wait(s, t)).unwrap();
        for w in &t.waits_on {
            resources.insert(w.resource);
        }
        if kind != FindingKind::OrphanedWait {
            for (w, b) in blockers_of(ctx, t).filter(|(_, b)| tasks.binary_search(&b.task()).is_ok()) {
                let who = s.task(b.task()).map_or_else(|| format!("task {}", b.task()), task_label);
                let who = if b.task() == *id { "this same task".to_string() } else { who };
                match b {
                    Blocker::Holds(h) => {
                        let mode = if h.write { "" } else { " for reading" };
                        write!(text, "; {} is held{mode} by {who} (locked at {})", label_of(s, w.resource), h.at)
                            .unwrap()
                    }
                    Blocker::QueuedAhead { write, .. } => {
                        let what = if write { "a writer" } else { "a waiter" };
                        write!(text, "; {who} is queued ahead of it as {what}, and readers wait behind queued writers (Go's RWMutex)").unwrap()
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
    text.truncate(text.trim_end().len());
    Finding {
        certainty: Certainty::Definite,
        kind,
        tasks: involved,
        resources: resources.into_iter().collect(),
        explanation: text,
        site: None,
    }
}

// ----------------------------------------------------------------- probable

/// Who could complete a wait, read in place from its resource.
enum Wakers<'a> {
    /// Every task in `first`, then in `then`, except `me`.
    Lists { me: TaskId, first: &'a [TaskId], then: &'a [TaskId] },
    /// The blockers of a lock wait.
    Lock(LockBlockers<'a>),
}

impl<'a> Wakers<'a> {
    fn iter(self) -> impl Iterator<Item = TaskId> + 'a {
        let (me, first, then, lock) = match self {
            Wakers::Lists { me, first, then } => (Some(me), first, then, None),
            Wakers::Lock(b) => (None, &[][..], &[][..], Some(b)),
        };
        first
            .iter()
            .chain(then)
            .copied()
            .filter(move |&u| Some(u) != me)
            .chain(lock.into_iter().flat_map(|b| b.iter().map(|b| b.task())))
    }
}

/// Who could complete `t`'s wait `w`, as far as the resource knows; `None` when
/// unknown (an escape: somebody we cannot see may act).
fn known_wakers<'a>(ctx: &Ctx<'a>, t: &TaskInfo, w: &WaitOn) -> Option<Wakers<'a>> {
    let r = ctx.resource(w.resource)?;
    if r.timer_armed {
        return None;
    }
    let me = t.id;
    let others = |ids: &'a [TaskId]| ids.iter().copied().filter(move |&u| u != me);
    // Live handles on the waking side with no known waker alive: whoever holds
    // them is unknown (a task that has not used it yet), so there is no evidence.
    let unknown_holders = |handles: usize, known: &'a [TaskId]| handles > 0 && !others(known).any(|u| ctx.alive(u));
    let lists = |first: &'a [TaskId], then: &'a [TaskId]| Some(Wakers::Lists { me, first, then });
    match (&r.kind, w.op) {
        (ResourceKind::Chan { .. }, WaitReason::ChanReceive) => {
            if r.wakers_incomplete || unknown_holders(r.send_handles, &r.wakers) {
                return None;
            }
            lists(&r.wakers, &[])
        }
        (ResourceKind::Chan { .. }, _) => {
            if r.waiters_incomplete || r.wakers_incomplete {
                return None;
            }
            // Receivers wake a sender; other senders could only close.
            if unknown_holders(r.recv_handles, &r.waiters) {
                return None;
            }
            lists(&r.waiters, &r.wakers)
        }
        (ResourceKind::Mutex | ResourceKind::RwMutex, _) => Some(Wakers::Lock(ctx.lock_blockers(t.id, w)?)),
        (ResourceKind::WaitGroup { .. }, _) => {
            // `send_handles` counts a wait group's handles; the waiter's own is one.
            let none = others(&r.wakers).next().is_none();
            if r.wakers_incomplete || none || unknown_holders(r.send_handles.saturating_sub(1), &r.wakers) {
                return None;
            }
            lists(&r.wakers, &[])
        }
        (ResourceKind::Cond, _) => {
            // No handles to count: the known signallers are the evidence.
            if r.wakers_incomplete || others(&r.wakers).next().is_none() {
                return None;
            }
            lists(&r.wakers, &[])
        }
    }
}

/// Every known waker of every wait of `t`, in order; `None` if one wait has
/// unknown wakers.
fn all_wakers<'a>(ctx: &'a Ctx<'a>, t: &'a TaskInfo) -> Option<impl Iterator<Item = TaskId> + 'a> {
    let each: Option<Vec<Wakers<'a>>> = t.waits_on.iter().map(|w| known_wakers(ctx, t, w)).collect();
    Some(each?.into_iter().flat_map(Wakers::iter))
}

/// Stuck sets: tasks parked for the grace period with nothing happening on
/// what they wait for, every known waker of which is in the set or gone.
///
/// A worklist: a candidate with an unknown waker, or a known waker alive
/// outside the candidates, escapes; each escape is propagated once to the
/// candidates that counted on it.
fn stuck_sets(ctx: &Ctx<'_>, grace: Duration, skip: &[bool]) -> Vec<Finding> {
    let mut scan = StuckScan::new(ctx, grace, skip);
    for (i, t) in ctx.s.tasks().iter().enumerate() {
        scan.task(ctx, i, t);
    }
    scan.findings(ctx)
}

/// The state of [`stuck_sets`] while it looks at each task.
struct StuckScan {
    grace: Duration,
    candidate: Vec<bool>,
    candidates: usize,
    /// (waker, candidate counting on it), both candidates.
    counts_on: Vec<(u32, u32)>,
    /// Candidates that escape.
    work: Vec<u32>,
}

impl StuckScan {
    fn new(ctx: &Ctx<'_>, grace: Duration, skip: &[bool]) -> StuckScan {
        let candidate: Vec<bool> = ctx
            .s
            .tasks()
            .iter()
            .zip(skip)
            .map(|(t, &skip)| {
                t.blocked
                    && !skip
                    && !t.waits_on.is_empty()
                    && t.activity_since_park == 0
                    && t.parked_for.is_some_and(|d| d >= grace)
            })
            .collect();
        let candidates = candidate.iter().filter(|&&c| c).count();
        StuckScan { grace, candidate, candidates, counts_on: Vec::new(), work: Vec::new() }
    }

    /// Looks at task `i`; in position order.
    fn task(&mut self, ctx: &Ctx<'_>, i: usize, t: &TaskInfo) {
        if !self.candidate[i] {
            return;
        }
        let escapes = 'waits: {
            for w in &t.waits_on {
                let Some(wakers) = known_wakers(ctx, t, w) else { break 'waits true };
                for u in wakers.iter() {
                    match ctx.pos(u) {
                        Some(j) if self.candidate[j] => self.counts_on.push((j as u32, i as u32)),
                        Some(_) => break 'waits true, // a live waker outside the set
                        None => {}                    // exited
                    }
                }
            }
            false
        };
        if escapes {
            self.work.push(i as u32);
        }
    }

    /// Propagates the escapes; the stuck sets left.
    fn findings(self, ctx: &Ctx<'_>) -> Vec<Finding> {
        let StuckScan { grace, candidate, candidates, counts_on, mut work } = self;
        if work.len() == candidates {
            return Vec::new(); // every candidate escaped
        }
        let n = candidate.len();
        let dependents = Adjacency::new(n, &counts_on);
        let mut gone = vec![false; n];
        while let Some(t) = work.pop() {
            if !gone[t as usize] {
                gone[t as usize] = true;
                work.extend_from_slice(dependents.row(t as usize));
            }
        }
        let set: Vec<usize> = (0..n).filter(|&i| candidate[i] && !gone[i]).collect();
        components(ctx, &set).into_iter().map(|c| explain_stuck(ctx.s, &c, grace)).collect()
    }
}

/// Splits a stuck set (positions, ascending) into groups connected through
/// the resources they wait on and the wakers they count on; groups in the
/// order of their union-find roots.
fn components(ctx: &Ctx<'_>, set: &[usize]) -> Vec<Vec<TaskId>> {
    let tasks = ctx.s.tasks();
    let mut uf = petgraph::unionfind::UnionFind::<usize>::new(set.len());
    let mut by_resource: FastMap<ResourceId, usize> = FastMap::default();
    for (i, &p) in set.iter().enumerate() {
        let t = &tasks[p];
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
        for u in all_wakers(ctx, t).into_iter().flatten() {
            if let Some(j) = ctx.pos(u).and_then(|q| set.binary_search(&q).ok()) {
                uf.union(i, j);
            }
        }
    }
    let mut groups: Vec<Vec<TaskId>> = vec![Vec::new(); set.len()];
    for (i, &p) in set.iter().enumerate() {
        groups[uf.find(i)].push(tasks[p].id);
    }
    groups.retain(|g| !g.is_empty());
    groups
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
        write!(text, "{}; ", Wait(s, t)).unwrap();
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
fn leak_suspects(s: &Snapshot, leak_after: Duration, skip: &[bool]) -> Vec<Finding> {
    type Key<'a> = (&'a str, u32, Option<WaitReason>);
    let mut index: HashMap<Key<'_>, usize, std::hash::BuildHasherDefault<super::FastHasher>> = HashMap::default();
    let mut groups: Vec<(Key<'_>, Vec<&TaskInfo>)> = Vec::new();
    let mut last: Option<(Key<'_>, usize)> = None;
    for (t, &skip) in s.tasks().iter().zip(skip) {
        let long = t.parked_for.is_some_and(|d| d >= leak_after);
        if long && !t.timer_wakeable && !skip && t.wait_reason != Some(WaitReason::Sleep) {
            let (file, line) = t.parked_at.as_ref().map_or(("", 0), |l| (l.file.as_ref(), l.line));
            let key = (file, line, t.wait_reason);
            let g = match last {
                Some((k, g)) if k == key => g,
                _ => *index.entry(key).or_insert_with(|| {
                    groups.push((key, Vec::new()));
                    groups.len() - 1
                }),
            };
            last = Some((key, g));
            groups[g].1.push(t);
        }
    }
    groups.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    let mut out: Vec<Finding> = groups
        .into_iter()
        .map(|(_, ts)| {
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
