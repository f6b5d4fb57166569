//! What `/debug/tasks.json` answers: a summary, the findings, and one page of
//! tasks or of stack groups, bounded whatever the number of tasks.

use std::cmp::Ordering;
use std::collections::{BTreeMap, HashMap};
use std::hash::{Hash, Hasher};
use std::sync::OnceLock;
use std::time::{Duration, Instant, UNIX_EPOCH};

use serde::Serialize;

use super::query::{all_reasons, state_name, Sort, SortKey, TaskFilter, STATES};
use crate::detect::analyze::AnalyzeOptions;
use crate::detect::{Analysis, Certainty, Finding, FindingKind, WaitForGraph};
use crate::snapshot::{Frame, Location, ResourceInfo, ResourceKind, Snapshot, TaskId, TaskInfo, TaskKind, TaskState};

/// Most findings listed in one answer.
pub(crate) const MAX_FINDINGS: usize = 200;
/// Most tasks named per finding.
const MAX_FINDING_TASKS: usize = 50;
/// Longest explanation sent, in bytes.
const MAX_EXPLANATION: usize = 8000;
/// Most task ids listed per group.
const MAX_GROUP_IDS: usize = 20;
/// Most frames with source lines in a task's detail.
const MAX_SOURCE_FRAMES: usize = 24;
/// Largest source file read for a detail.
const MAX_SOURCE_FILE: u64 = 4 << 20;

/// A snapshot, and what answers derive from it, each computed once, by the
/// first answer that needs it (the server shares one snapshot between every
/// request waiting for one, see `shared.rs`).
pub(crate) struct Taken {
    pub(crate) snap: Snapshot,
    /// How long the snapshot took.
    took: Duration,
    opts: AnalyzeOptions,
    analysis: OnceLock<(Analysis, Duration)>,
    index: OnceLock<FindingIndex>,
    graph: OnceLock<WaitForGraph>,
    leaks: OnceLock<Snapshot>,
}

impl Taken {
    /// Takes a snapshot of the whole process; `opts` for its analysis, when asked for.
    pub(crate) fn take(opts: &AnalyzeOptions) -> Taken {
        let start = Instant::now();
        let snap = crate::snapshot::snapshot();
        Taken::new(snap, start.elapsed(), opts.clone())
    }

    pub(crate) fn new(snap: Snapshot, took: Duration, opts: AnalyzeOptions) -> Taken {
        Taken {
            snap,
            took,
            opts,
            analysis: OnceLock::new(),
            index: OnceLock::new(),
            graph: OnceLock::new(),
            leaks: OnceLock::new(),
        }
    }

    /// The detectors' findings on this snapshot.
    pub(crate) fn analysis(&self) -> &Analysis {
        &self
            .analysis
            .get_or_init(|| {
                let start = Instant::now();
                let a = self.snap.analyze_with(&self.opts);
                (a, start.elapsed())
            })
            .0
    }

    /// How long the snapshot took, plus its analysis if made.
    pub(crate) fn elapsed(&self) -> Duration {
        self.took + self.analysis.get().map_or(Duration::ZERO, |(_, d)| *d)
    }

    /// The wait-for graph of this snapshot.
    pub(crate) fn wait_for_graph(&self) -> &WaitForGraph {
        self.graph.get_or_init(|| self.snap.wait_for_graph())
    }

    /// The tasks of findings (what `/debug/pprof/goroutineleak` dumps).
    pub(crate) fn leak_snapshot(&self) -> &Snapshot {
        self.leaks.get_or_init(|| {
            let index = self.finding_index();
            self.snap.filter(|x| index.contains_key(&x.id))
        })
    }

    /// The findings, deadlocks first, with their index.
    pub(crate) fn findings(&self) -> impl Iterator<Item = &Finding> {
        self.analysis().findings()
    }

    /// For each task in some finding, the indices of its findings.
    pub(crate) fn finding_index(&self) -> &FindingIndex {
        self.index.get_or_init(|| {
            let mut m: HashMap<TaskId, Vec<u32>> = HashMap::new();
            for (i, f) in self.findings().enumerate() {
                for t in &f.tasks {
                    let v = m.entry(*t).or_default();
                    if v.last() != Some(&(i as u32)) {
                        v.push(i as u32);
                    }
                }
            }
            FindingIndex { map: m, deadlocks: self.analysis().deadlocks.len() as u32 }
        })
    }

    /// The tasks `filter` keeps.
    pub(crate) fn select<'a>(&'a self, filter: &TaskFilter, index: &FindingIndex) -> Vec<&'a TaskInfo> {
        let finding: Option<Vec<TaskId>> = filter.finding.map(|i| {
            let mut ids = self.findings().nth(i).map(|f| f.tasks.clone()).unwrap_or_default();
            ids.sort_unstable();
            ids
        });
        self.snap
            .tasks()
            .iter()
            .filter(|t| filter.matches_basic(t))
            .filter(|t| !filter.in_findings || index.contains_key(&t.id))
            .filter(|t| finding.as_ref().is_none_or(|ids| ids.binary_search(&t.id).is_ok()))
            .filter(|t| filter.stack.is_none_or(|k| stack_key(t) == k))
            .collect()
    }
}

/// The findings each task is in (indices into deadlocks, then leaks).
pub(crate) struct FindingIndex {
    map: HashMap<TaskId, Vec<u32>>,
    /// Findings below this index are deadlocks.
    deadlocks: u32,
}

impl FindingIndex {
    pub(crate) fn contains_key(&self, id: &TaskId) -> bool {
        self.map.contains_key(id)
    }

    pub(crate) fn get(&self, id: &TaskId) -> Option<&Vec<u32>> {
        self.map.get(id)
    }

    /// `deadlock` when the task is in a deadlock finding, else `leak` when in a leak finding.
    pub(crate) fn flag(&self, id: &TaskId) -> Option<&'static str> {
        let ids = self.map.get(id)?;
        Some(if ids.iter().any(|&i| i < self.deadlocks) { "deadlock" } else { "leak" })
    }
}

/// Seconds, for JSON.
fn secs(d: Duration) -> f64 {
    (d.as_secs_f64() * 1000.0).round() / 1000.0
}

/// The word Go prints in `goroutine N [...]`.
pub(crate) fn state_word(t: &TaskInfo) -> &'static str {
    match (t.state, t.wait_reason) {
        (TaskState::Parked, Some(r)) => r.as_str(),
        (s, _) => s.as_str(),
    }
}

/// The location a task is shown at: where it parked, else where it was spawned.
fn location(t: &TaskInfo) -> &Location {
    t.parked_at.as_ref().unwrap_or(&t.spawned_at)
}

/// A key shared by the tasks with identical frames in the same state/wait reason.
pub(crate) fn stack_key(t: &TaskInfo) -> u64 {
    let mut h = std::hash::DefaultHasher::new();
    state_word(t).hash(&mut h);
    if t.stack.is_empty() {
        let l = location(t);
        ("?", &*l.file, l.line).hash(&mut h);
    } else {
        for f in &t.stack {
            (&*f.function, f.file.as_deref(), f.line).hash(&mut h);
        }
    }
    h.finish()
}

fn hex(k: u64) -> String {
    format!("{k:016x}")
}

/// A frame as the page shows it.
#[derive(Serialize)]
pub(crate) struct FrameView {
    function: String,
    file: Option<String>,
    line: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    source: Option<SourceView>,
}

/// Lines of source around a frame's line.
#[derive(Serialize)]
pub(crate) struct SourceView {
    first_line: u32,
    lines: Vec<String>,
}

/// The frames shown for `t`: its stack, else one synthetic frame at its location.
fn frames(t: &TaskInfo) -> Vec<FrameView> {
    if t.stack.is_empty() {
        let l = location(t);
        return vec![FrameView {
            function: "?".into(),
            file: Some(l.file.to_string()),
            line: Some(l.line),
            source: None,
        }];
    }
    t.stack.iter().map(frame_view).collect()
}

fn frame_view(f: &Frame) -> FrameView {
    FrameView {
        function: f.function.to_string(),
        file: f.file.as_deref().map(str::to_owned),
        line: f.line,
        source: None,
    }
}

/// A task in a list.
#[derive(Serialize)]
pub(crate) struct TaskRow<'a> {
    id: u64,
    name: Option<&'a str>,
    state: &'static str,
    state_word: &'static str,
    wait_reason: Option<&'static str>,
    parked_for: Option<f64>,
    location: String,
    function: Option<&'a str>,
    spawned_at: String,
    kind: &'static str,
    parent: Option<u64>,
    runtime: u64,
    findings: Vec<u32>,
    /// `deadlock` or `leak` when in a finding.
    flag: Option<&'static str>,
    stack_key: String,
}

fn kind_name(k: TaskKind) -> &'static str {
    match k {
        TaskKind::Async => "async",
        TaskKind::Thread => "thread",
    }
}

pub(crate) fn row<'a>(t: &'a TaskInfo, index: &FindingIndex) -> TaskRow<'a> {
    TaskRow {
        id: t.id.0,
        name: t.name.as_deref(),
        state: state_name(t.state),
        state_word: state_word(t),
        wait_reason: t.wait_reason.map(|r| r.as_str()),
        parked_for: t.parked_for.map(secs),
        location: location(t).to_string(),
        function: t.stack.first().map(|f| &*f.function),
        spawned_at: t.spawned_at.to_string(),
        kind: kind_name(t.kind),
        parent: t.parent.map(|p| p.0),
        runtime: t.runtime,
        findings: index.get(&t.id).cloned().unwrap_or_default(),
        flag: index.flag(&t.id),
        stack_key: hex(stack_key(t)),
    }
}

/// Tasks with identical stacks in the same state.
#[derive(Serialize)]
pub(crate) struct GroupRow<'a> {
    stack_key: String,
    count: usize,
    state: &'static str,
    state_word: &'static str,
    wait_reason: Option<&'static str>,
    location: String,
    function: Option<&'a str>,
    frames: Vec<FrameView>,
    names: Vec<&'a str>,
    more_names: bool,
    task_ids: Vec<u64>,
    oldest_parked_for: Option<f64>,
    in_findings: usize,
    /// `deadlock` when some task is in a deadlock finding, else `leak` when some is in a leak finding.
    flag: Option<&'static str>,
    #[serde(skip)]
    first_id: u64,
}

/// Groups `tasks` by stack key.
pub(crate) fn groups<'a>(tasks: &[&'a TaskInfo], index: &FindingIndex) -> Vec<GroupRow<'a>> {
    let mut at: HashMap<u64, usize> = HashMap::new();
    let mut out: Vec<GroupRow<'a>> = Vec::new();
    for t in tasks {
        let key = stack_key(t);
        let i = *at.entry(key).or_insert_with(|| {
            out.push(GroupRow {
                stack_key: hex(key),
                count: 0,
                state: state_name(t.state),
                state_word: state_word(t),
                wait_reason: t.wait_reason.map(|r| r.as_str()),
                location: location(t).to_string(),
                function: t.stack.first().map(|f| &*f.function),
                frames: frames(t),
                names: Vec::new(),
                more_names: false,
                task_ids: Vec::new(),
                oldest_parked_for: None,
                in_findings: 0,
                flag: None,
                first_id: t.id.0,
            });
            out.len() - 1
        });
        let g = &mut out[i];
        g.count += 1;
        if g.task_ids.len() < MAX_GROUP_IDS {
            g.task_ids.push(t.id.0);
        }
        if let Some(n) = t.name.as_deref() {
            if !g.names.contains(&n) {
                if g.names.len() < 5 {
                    g.names.push(n);
                } else {
                    g.more_names = true;
                }
            }
        }
        if let Some(p) = t.parked_for.map(secs) {
            g.oldest_parked_for = Some(g.oldest_parked_for.map_or(p, |o: f64| o.max(p)));
        }
        if let Some(f) = index.flag(&t.id) {
            g.in_findings += 1;
            if g.flag != Some("deadlock") {
                g.flag = Some(f);
            }
        }
    }
    out
}

fn cmp_f64(a: Option<f64>, b: Option<f64>) -> Ordering {
    a.unwrap_or(-1.0).total_cmp(&b.unwrap_or(-1.0))
}

fn state_rank(s: TaskState) -> usize {
    STATES.iter().position(|x| *x == s).unwrap_or(0)
}

pub(crate) fn sort_tasks(tasks: &mut [&TaskInfo], sort: Sort) {
    let key = |a: &&TaskInfo, b: &&TaskInfo| -> Ordering {
        match sort.key {
            SortKey::Id | SortKey::Count => Ordering::Equal,
            SortKey::Name => match (&a.name, &b.name) {
                (Some(x), Some(y)) => x.cmp(y),
                (Some(_), None) => Ordering::Less,
                (None, Some(_)) => Ordering::Greater,
                (None, None) => Ordering::Equal,
            },
            SortKey::State => state_rank(a.state).cmp(&state_rank(b.state)),
            SortKey::Reason => state_word(a).cmp(state_word(b)),
            SortKey::Parked => cmp_f64(a.parked_for.map(secs), b.parked_for.map(secs)),
        }
    };
    tasks.sort_by(|a, b| {
        let o = key(a, b).then(a.id.cmp(&b.id));
        if sort.desc {
            o.reverse()
        } else {
            o
        }
    });
}

pub(crate) fn sort_groups(groups: &mut [GroupRow<'_>], sort: Sort) {
    groups.sort_by(|a, b| {
        let o = match sort.key {
            SortKey::Count => a.count.cmp(&b.count),
            SortKey::Id => Ordering::Equal,
            SortKey::Name => a.names.first().cmp(&b.names.first()),
            SortKey::State => a.state.cmp(b.state),
            SortKey::Reason => a.state_word.cmp(b.state_word),
            SortKey::Parked => cmp_f64(a.oldest_parked_for, b.oldest_parked_for),
        }
        .then(a.first_id.cmp(&b.first_id));
        if sort.desc {
            o.reverse()
        } else {
            o
        }
    });
}

/// A task named in a finding or a resource.
#[derive(Serialize)]
pub(crate) struct TaskRef {
    id: u64,
    name: Option<String>,
    state_word: Option<&'static str>,
}

fn task_ref(s: &Snapshot, id: TaskId) -> TaskRef {
    let t = s.task(id);
    TaskRef {
        id: id.0,
        name: t.and_then(|t| t.name.clone()),
        state_word: t.map(state_word), // None: exited
    }
}

/// A finding as the page shows it.
#[derive(Serialize)]
pub(crate) struct FindingView {
    index: usize,
    kind: &'static str,
    title: &'static str,
    certainty: &'static str,
    severity: &'static str,
    explanation: String,
    task_count: usize,
    tasks: Vec<TaskRef>,
    resources: Vec<String>,
    site: Option<String>,
}

pub(crate) fn kind_name_of(k: FindingKind) -> &'static str {
    match k {
        FindingKind::GlobalDeadlock => "global_deadlock",
        FindingKind::DoubleLock => "double_lock",
        FindingKind::LockCycle => "lock_cycle",
        FindingKind::OrphanedWait => "orphaned_wait",
        FindingKind::StuckSet => "stuck_set",
        FindingKind::LeakSuspect => "leak_suspect",
    }
}

fn kind_title(k: FindingKind) -> &'static str {
    match k {
        FindingKind::GlobalDeadlock => "Global deadlock",
        FindingKind::DoubleLock => "Double lock",
        FindingKind::LockCycle => "Lock cycle",
        FindingKind::OrphanedWait => "Orphaned wait",
        FindingKind::StuckSet => "Stuck set",
        FindingKind::LeakSuspect => "Leak suspect",
    }
}

pub(crate) fn certainty_name(c: Certainty) -> &'static str {
    match c {
        Certainty::Definite => "definite",
        Certainty::Probable => "probable",
        Certainty::Suspected => "suspected",
    }
}

/// `s` cut to at most `max` bytes on a character boundary, with an ellipsis.
fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

fn resource_label(s: &Snapshot, id: crate::snapshot::ResourceId) -> String {
    s.resource(id).map_or_else(|| format!("resource#{id}"), ResourceInfo::label)
}

pub(crate) fn finding_view(s: &Snapshot, index: usize, f: &Finding) -> FindingView {
    FindingView {
        index,
        kind: kind_name_of(f.kind),
        title: kind_title(f.kind),
        certainty: certainty_name(f.certainty),
        severity: if f.kind == FindingKind::LeakSuspect { "leak" } else { "deadlock" },
        explanation: truncate(&f.explanation, MAX_EXPLANATION),
        task_count: f.tasks.len(),
        tasks: f.tasks.iter().take(MAX_FINDING_TASKS).map(|id| task_ref(s, *id)).collect(),
        resources: f.resources.iter().take(MAX_FINDING_TASKS).map(|id| resource_label(s, *id)).collect(),
        site: f.site.as_ref().map(ToString::to_string),
    }
}

/// Counts over every task of the snapshot.
#[derive(Serialize)]
pub(crate) struct Summary {
    total: usize,
    by_state: BTreeMap<&'static str, usize>,
    by_reason: Vec<ReasonCount>,
    global_deadlock: bool,
    deadlocks: usize,
    deadlocked_tasks: usize,
    leaks: usize,
    leaked_tasks: usize,
    oldest_park: Option<f64>,
    oldest_park_task: Option<u64>,
    resources: usize,
}

#[derive(Serialize)]
pub(crate) struct ReasonCount {
    reason: &'static str,
    count: usize,
}

pub(crate) fn summary(t: &Taken) -> Summary {
    let s = &t.snap;
    let mut by_state: BTreeMap<&'static str, usize> = STATES.iter().map(|st| (state_name(*st), 0)).collect();
    let mut by_reason: HashMap<&'static str, usize> = HashMap::new();
    let mut oldest: Option<(Duration, TaskId)> = None;
    for task in s.tasks() {
        *by_state.entry(state_name(task.state)).or_default() += 1;
        if task.state == TaskState::Parked {
            if let Some(r) = task.wait_reason {
                *by_reason.entry(r.as_str()).or_default() += 1;
            }
            if let Some(d) = task.parked_for {
                if oldest.is_none_or(|(o, _)| d > o) {
                    oldest = Some((d, task.id));
                }
            }
        }
    }
    let mut by_reason: Vec<ReasonCount> = all_reasons()
        .iter()
        .filter_map(|r| by_reason.get(r.as_str()).map(|&count| ReasonCount { reason: r.as_str(), count }))
        .collect();
    by_reason.sort_by_key(|r| std::cmp::Reverse(r.count));
    let distinct =
        |fs: &[Finding]| fs.iter().flat_map(|f| f.tasks.iter()).collect::<std::collections::HashSet<_>>().len();
    Summary {
        total: s.tasks().len(),
        by_state,
        by_reason,
        global_deadlock: t.analysis().global_deadlock,
        deadlocks: t.analysis().deadlocks.len(),
        deadlocked_tasks: distinct(&t.analysis().deadlocks),
        leaks: t.analysis().leaks.len(),
        leaked_tasks: distinct(&t.analysis().leaks),
        oldest_park: oldest.map(|(d, _)| secs(d)),
        oldest_park_task: oldest.map(|(_, id)| id.0),
        resources: s.resources().len(),
    }
}

pub(crate) fn taken_at_ms(s: &Snapshot) -> u64 {
    s.taken_at.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

// ------------------------------------------------------------------ detail

/// Everything about one task.
#[derive(Serialize)]
pub(crate) struct Detail<'a> {
    #[serde(flatten)]
    row: TaskRow<'a>,
    parked_at: Option<String>,
    created_by: Option<&'a str>,
    parent_task: Option<TaskRef>,
    children: usize,
    blocked: bool,
    timer_wakeable: bool,
    activity_since_park: u64,
    stack_sampled: bool,
    park_seq: u64,
    stack: Vec<FrameView>,
    waits_on: Vec<WaitView>,
    holds: Vec<HoldView>,
    finding_details: Vec<FindingView>,
}

/// A resource the task waits on.
#[derive(Serialize)]
pub(crate) struct WaitView {
    resource: u64,
    label: String,
    op: &'static str,
    describe: String,
    created_at: Option<String>,
    holders: Vec<HolderView>,
    queue: Vec<TaskRef>,
    could_wake: Vec<TaskRef>,
}

#[derive(Serialize)]
pub(crate) struct HolderView {
    task: TaskRef,
    write: bool,
    at: String,
}

/// A lock the task holds (among the resources some task waits on).
#[derive(Serialize)]
pub(crate) struct HoldView {
    resource: u64,
    label: String,
    write: bool,
    at: String,
}

fn describe_resource(r: &ResourceInfo) -> String {
    match &r.kind {
        ResourceKind::Chan { cap, closed } => {
            let kind = if *cap == 0 { "unbuffered channel".to_string() } else { format!("channel, capacity {cap}") };
            let closed = if *closed { ", closed" } else { "" };
            format!("{kind}{closed}; {} sending and {} receiving handles", r.send_handles, r.recv_handles)
        }
        ResourceKind::Mutex => "mutex".into(),
        ResourceKind::RwMutex => "read-write mutex".into(),
        ResourceKind::WaitGroup { count } => format!("wait group, counter {count}"),
        ResourceKind::Cond => "condition variable".into(),
    }
}

pub(crate) fn detail<'a>(t: &'a TaskInfo, taken: &'a Taken, index: &FindingIndex, show_source: bool) -> Detail<'a> {
    let s = &taken.snap;
    let mut stack = frames(t);
    if show_source && !t.stack.is_empty() {
        for f in stack.iter_mut().take(MAX_SOURCE_FRAMES) {
            if let (Some(file), Some(line)) = (&f.file, f.line) {
                f.source = read_source(file, line);
            }
        }
    }
    let waits_on = t
        .waits_on
        .iter()
        .map(|w| {
            let r = s.resource(w.resource);
            WaitView {
                resource: w.resource.0,
                label: resource_label(s, w.resource),
                op: w.op.as_str(),
                describe: r.map(describe_resource).unwrap_or_default(),
                created_at: r.map(|r| r.created_at.to_string()),
                holders: r
                    .map(|r| {
                        r.holders
                            .iter()
                            .map(|h| HolderView { task: task_ref(s, h.task), write: h.write, at: h.at.to_string() })
                            .collect()
                    })
                    .unwrap_or_default(),
                queue: r.map(|r| r.queue.iter().take(20).map(|q| task_ref(s, q.task)).collect()).unwrap_or_default(),
                could_wake: r
                    .map(|r| {
                        let chan = matches!(r.kind, ResourceKind::Chan { .. });
                        if matches!(r.kind, ResourceKind::Mutex | ResourceKind::RwMutex) {
                            return Vec::new(); // its holders wake it: listed above
                        }
                        let mut ids: Vec<TaskId> = r.wakers.clone();
                        if chan {
                            ids.extend(r.waiters.iter().copied());
                        }
                        ids.sort_unstable();
                        ids.dedup();
                        ids.retain(|id| *id != t.id && s.task(*id).is_some());
                        ids.into_iter().take(20).map(|id| task_ref(s, id)).collect()
                    })
                    .unwrap_or_default(),
            }
        })
        .collect();
    let holds = s
        .resources()
        .iter()
        .flat_map(|r| {
            r.holders.iter().filter(|h| h.task == t.id).map(move |h| HoldView {
                resource: r.id.0,
                label: r.label(),
                write: h.write,
                at: h.at.to_string(),
            })
        })
        .collect();
    let finding_details = index
        .get(&t.id)
        .map(|ids| {
            ids.iter()
                .filter_map(|&i| taken.findings().nth(i as usize).map(|f| finding_view(s, i as usize, f)))
                .collect()
        })
        .unwrap_or_default();
    Detail {
        row: row(t, index),
        parked_at: t.parked_at.as_ref().map(ToString::to_string),
        created_by: t.created_by.as_deref(),
        parent_task: t.parent.map(|p| task_ref(s, p)),
        children: s.tasks().iter().filter(|c| c.parent == Some(t.id)).count(),
        blocked: t.blocked,
        timer_wakeable: t.timer_wakeable,
        activity_since_park: t.activity_since_park,
        stack_sampled: t.stack_sampled,
        park_seq: t.park_seq,
        stack,
        waits_on,
        holds,
        finding_details,
    }
}

/// Lines `line - 2 ..= line + 2` of a Rust source file named by debug info.
fn read_source(file: &str, line: u32) -> Option<SourceView> {
    use std::io::BufRead as _;
    if !file.ends_with(".rs") || line == 0 {
        return None;
    }
    let f = std::fs::File::open(file).ok()?;
    if !f.metadata().ok()?.is_file() || f.metadata().ok()?.len() > MAX_SOURCE_FILE {
        return None;
    }
    let first = line.saturating_sub(2).max(1);
    let lines: Vec<String> = std::io::BufReader::new(f)
        .lines()
        .skip(first as usize - 1)
        .take((line - first + 3) as usize)
        .map_while(Result::ok)
        .map(|l| truncate(&l, 300))
        .collect();
    (!lines.is_empty()).then_some(SourceView { first_line: first, lines })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncates_on_char_boundary() {
        assert_eq!(truncate("abc", 5), "abc");
        assert_eq!(truncate("ééé", 3), "é…");
    }

    #[test]
    fn reads_source_lines_of_rust_files_only() {
        let me = concat!(env!("CARGO_MANIFEST_DIR"), "/src/server/view.rs");
        let src = read_source(me, 1).unwrap();
        assert_eq!(src.first_line, 1);
        assert!(src.lines[0].starts_with("//! What"));
        assert!(read_source(concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml"), 1).is_none());
        assert!(read_source("/nonexistent/x.rs", 3).is_none());
    }
}
