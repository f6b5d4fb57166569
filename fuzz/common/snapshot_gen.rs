//! Arbitrary snapshots, as JSON, driven by a byte source: a seeded PRNG in
//! `tests/faults.rs`, the fuzzer's input in `fuzz_targets/snapshot.rs`.
//!
//! The JSON is shaped like `parkwatch::dump::json` output but with everything
//! the detectors and dumps must survive: ids drawn from a small pool (so tasks
//! and resources repeat, dangle and refer to each other in cycles), tasks out
//! of order, waits on resources that are not listed, holders and queue entries
//! naming tasks that do not exist, extreme durations, pcs and counts, and
//! strings with quotes, newlines, `;`, tabs, control characters and
//! non-ASCII text. It also includes [`edge_cases`], written by hand, and
//! [`exercise`], which runs every consumer of a snapshot.

#![allow(dead_code)]

use serde_json::{json, Value};

/// Where the generator's choices come from.
pub trait Source {
    fn next_u64(&mut self) -> u64;

    fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.next_u64() % n
        }
    }

    fn chance(&mut self, one_in: u64) -> bool {
        self.below(one_in) == 0
    }

    fn pick<'a, T>(&mut self, xs: &'a [T]) -> &'a T {
        &xs[self.below(xs.len() as u64) as usize]
    }
}

/// splitmix64.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xD1B5_4A32_D192_ED03)
    }
}

impl Source for Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

/// The fuzzer's bytes, one per choice (zeros once exhausted).
pub struct Bytes<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Bytes<'a> {
    pub fn new(data: &'a [u8]) -> Bytes<'a> {
        Bytes { data, pos: 0 }
    }

    pub fn exhausted(&self) -> bool {
        self.pos >= self.data.len()
    }
}

impl Source for Bytes<'_> {
    fn next_u64(&mut self) -> u64 {
        let b = self.data.get(self.pos).copied().unwrap_or(0);
        self.pos += 1;
        // Large values come from two bytes when the first says so.
        if b >= 0xF0 {
            let hi = self.data.get(self.pos).copied().unwrap_or(0);
            self.pos += 1;
            return match b {
                0xFF => u64::MAX - u64::from(hi),
                0xFE => u64::from(u32::MAX) - u64::from(hi),
                0xFD => (usize::MAX / 2) as u64 + u64::from(hi),
                _ => (u64::from(hi) << 8) | u64::from(b),
            };
        }
        u64::from(b)
    }
}

pub const WAIT_REASONS: [&str; 14] = [
    "ChanReceive",
    "ChanSend",
    "Select",
    "SelectNoCases",
    "ChanReceiveNilChan",
    "ChanSendNilChan",
    "MutexLock",
    "RwMutexRLock",
    "RwMutexLock",
    "WaitGroupWait",
    "CondWait",
    "OnceDo",
    "Sleep",
    "TaskJoin",
];

const STATES: [&str; 4] = ["Running", "Runnable", "Parked", "External"];

const STRINGS: [&str; 14] = [
    "app::worker::{{closure}}",
    "",
    "?",
    "a;b;c",
    "line\nbreak",
    "tab\there",
    "quote\"d",
    "back\\slash",
    "<[u8; 4] as app::T>::f",
    "\u{7}\u{1b}[31mred\u{7f}",
    "ünïcödé ✓ 名前",
    "/src/app/main.rs",
    "{\"name\":\"x\"}",
    "<svg onload=alert(1)>&amp;",
];

fn id(src: &mut impl Source) -> u64 {
    match src.below(10) {
        0 => 0,
        1 => u64::MAX,
        2 => src.next_u64(),
        n => n, // 3..9: a small pool, so ids collide and refer to each other
    }
}

fn big(src: &mut impl Source) -> u64 {
    *src.pick(&[0, 1, 2, 59, 60, 3600, u32::MAX as u64, u64::MAX / 2, u64::MAX])
}

fn string(src: &mut impl Source) -> String {
    let mut s = (*src.pick(&STRINGS)).to_string();
    if src.chance(4) {
        let extra: &&str = src.pick(&STRINGS);
        s.push_str(extra);
    }
    if src.chance(20) {
        s = s.repeat(50);
    }
    s
}

fn location(src: &mut impl Source) -> Value {
    json!({ "file": string(src), "line": big(src) as u32, "column": src.below(200) as u32 })
}

fn duration(src: &mut impl Source) -> Value {
    if src.chance(3) {
        return Value::Null;
    }
    json!({ "secs": big(src), "nanos": src.pick(&[0u32, 1, 500_000_000, 999_999_999]) })
}

fn frame(src: &mut impl Source) -> Value {
    let pc = *src.pick(&[0u64, 1, 0x1000, 0x5000_101c, usize::MAX as u64]);
    let entry = match src.below(4) {
        0 => 0,
        1 => pc,
        2 => pc.wrapping_add(8),
        _ => pc.saturating_sub(0x1c),
    };
    json!({
        "function": string(src),
        "file": if src.chance(3) { Value::Null } else { Value::from(string(src)) },
        "line": if src.chance(3) { Value::Null } else { Value::from(big(src) as u32) },
        "pc": pc,
        "entry": entry,
    })
}

fn reason(src: &mut impl Source) -> Value {
    Value::from(*src.pick(&WAIT_REASONS))
}

fn task(src: &mut impl Source) -> Value {
    let state = *src.pick(&STATES);
    let parked = state == "Parked" || src.chance(6);
    let n_frames = src.below(4);
    let stack: Vec<Value> = (0..n_frames).map(|_| frame(src)).collect();
    let n_waits = if parked { src.below(4) } else { src.below(2) };
    let waits: Vec<Value> = (0..n_waits).map(|_| json!({ "resource": id(src), "op": reason(src) })).collect();
    json!({
        "id": id(src),
        "name": if src.chance(3) { Value::from(string(src)) } else { Value::Null },
        "state": state,
        "wait_reason": if parked || src.chance(5) { reason(src) } else { Value::Null },
        "parked_for": duration(src),
        "spawned_at": location(src),
        "parked_at": if parked || src.chance(5) { location(src) } else { Value::Null },
        "stack": stack,
        "kind": if src.chance(3) { "Thread" } else { "Async" },
        "parent": if src.chance(2) { Value::from(id(src)) } else { Value::Null },
        "created_by": if src.chance(2) { Value::from(string(src)) } else { Value::Null },
        "runtime": src.below(4),
        "waits_on": waits,
        "stack_sampled": src.chance(2),
        "activity_since_park": if src.chance(2) { 0 } else { big(src) },
        "timer_wakeable": src.chance(4),
        "blocked": parked && !src.chance(4),
        "park_seq": big(src),
    })
}

fn ids(src: &mut impl Source, max: u64) -> Vec<u64> {
    (0..src.below(max + 1)).map(|_| id(src)).collect()
}

fn resource(src: &mut impl Source) -> Value {
    let kind = match src.below(5) {
        0 => json!({ "Chan": { "cap": big(src) as usize, "closed": src.chance(2) } }),
        1 => json!("Mutex"),
        2 => json!("RwMutex"),
        3 => json!({ "WaitGroup": { "count": *src.pick(&[0i64, 1, -1, i64::MAX, i64::MIN]) } }),
        _ => json!("Cond"),
    };
    let holders: Vec<Value> =
        (0..src.below(3)).map(|_| json!({ "task": id(src), "write": src.chance(2), "at": location(src) })).collect();
    let queue: Vec<Value> = (0..src.below(5)).map(|_| json!({ "task": id(src), "write": src.chance(2) })).collect();
    json!({
        "id": id(src),
        "kind": kind,
        "created_at": location(src),
        "send_handles": *src.pick(&[0usize, 1, 2, usize::MAX]),
        "recv_handles": *src.pick(&[0usize, 1, 2, usize::MAX]),
        "timer_armed": src.chance(5),
        "wakers": ids(src, 4),
        "wakers_incomplete": src.chance(4),
        "waiters": ids(src, 4),
        "waiters_incomplete": src.chance(4),
        "holders": holders,
        "holders_incomplete": src.chance(5),
        "queue": queue,
    })
}

/// A snapshot as JSON.
pub fn snapshot_json(src: &mut impl Source) -> String {
    let n_tasks = src.below(12);
    let mut tasks: Vec<Value> = (0..n_tasks).map(|_| task(src)).collect();
    if src.chance(2) {
        tasks.sort_by_key(|t| t["id"].as_u64());
    }
    let n_res = src.below(8);
    let mut resources: Vec<Value> = (0..n_res).map(|_| resource(src)).collect();
    if src.chance(2) {
        resources.sort_by_key(|r| r["id"].as_u64());
    }
    let dead: Vec<u64> = (0..src.below(3)).map(|_| src.below(4)).collect();
    let mut v = json!({
        "taken_at": { "secs_since_epoch": *src.pick(&[0u64, 1_700_000_000, u32::MAX as u64]), "nanos_since_epoch": 0 },
        "tasks": tasks,
    });
    if !src.chance(8) {
        v["resources"] = Value::from(resources);
    }
    if !src.chance(8) {
        v["dead_runtimes"] = Value::from(dead);
    }
    v.to_string()
}

/// Hand-made snapshots for the cases most likely to trip an index or an
/// arithmetic operation.
pub fn edge_cases() -> Vec<(&'static str, String)> {
    let t0 = r#""taken_at":{"secs_since_epoch":1700000000,"nanos_since_epoch":0}"#;
    let loc = r#"{"file":"a.rs","line":1,"column":1}"#;
    let task = |id: u64, state: &str, reason: &str, waits: &str, extra: &str| {
        format!(
            r#"{{"id":{id},"name":null,"state":"{state}","wait_reason":{reason},"parked_for":{{"secs":100,"nanos":0}},
            "spawned_at":{loc},"parked_at":{loc},"stack":[],"kind":"Async","parent":null,"created_by":null,"runtime":1,
            "waits_on":[{waits}],"stack_sampled":false,"activity_since_park":0,"timer_wakeable":false,"blocked":true,
            "park_seq":1{extra}}}"#
        )
    };
    let mutex = |id: u64, holders: &str, queue: &str, incomplete: bool| {
        format!(
            r#"{{"id":{id},"kind":"Mutex","created_at":{loc},"send_handles":0,"recv_handles":0,"timer_armed":false,
            "wakers":[],"wakers_incomplete":false,"waiters":[],"waiters_incomplete":false,
            "holders":[{holders}],"holders_incomplete":{incomplete},"queue":[{queue}]}}"#
        )
    };
    let chan = |id: u64, send: usize, wakers: &str| {
        format!(
            r#"{{"id":{id},"kind":{{"Chan":{{"cap":0,"closed":false}}}},"created_at":{loc},"send_handles":{send},
            "recv_handles":1,"timer_armed":false,"wakers":[{wakers}],"wakers_incomplete":false,"waiters":[],
            "waiters_incomplete":false,"holders":[],"holders_incomplete":false,"queue":[]}}"#
        )
    };
    let lockwait = |r: u64| format!(r#"{{"resource":{r},"op":"MutexLock"}}"#);
    let recvwait = |r: u64| format!(r#"{{"resource":{r},"op":"ChanReceive"}}"#);
    let holder = |t: u64| format!(r#"{{"task":{t},"write":true,"at":{loc}}}"#);
    let queued = |t: u64| format!(r#"{{"task":{t},"write":true}}"#);
    let snap = |tasks: Vec<String>, res: Vec<String>, dead: &str| {
        format!(r#"{{{t0},"tasks":[{}],"resources":[{}],"dead_runtimes":[{dead}]}}"#, tasks.join(","), res.join(","))
    };
    let mut out = vec![
        ("empty", format!(r#"{{{t0},"tasks":[]}}"#)),
        ("dead runtime without tasks", snap(vec![], vec![], "1,2,2")),
        (
            "wait on a resource that is not listed",
            snap(vec![task(2, "Parked", r#""ChanReceive""#, &recvwait(99), "")], vec![], ""),
        ),
        (
            "lock waiter missing from the queue, holder unknown",
            snap(
                vec![task(2, "Parked", r#""MutexLock""#, &lockwait(10), "")],
                vec![mutex(10, &holder(77), &queued(3), false)],
                "",
            ),
        ),
        (
            "double lock and a self-referential queue",
            snap(
                vec![task(2, "Parked", r#""MutexLock""#, &lockwait(10), "")],
                vec![mutex(10, &holder(2), &format!("{},{}", queued(2), queued(2)), false)],
                "1",
            ),
        ),
        (
            "AB-BA with duplicate task ids",
            snap(
                vec![
                    task(2, "Parked", r#""MutexLock""#, &lockwait(11), ""),
                    task(2, "Parked", r#""MutexLock""#, &lockwait(10), ""),
                    task(3, "Parked", r#""MutexLock""#, &lockwait(10), ""),
                ],
                vec![
                    mutex(10, &holder(2), &queued(3), false),
                    mutex(11, &holder(3), &queued(2), false),
                    mutex(10, "", "", true),
                ],
                "",
            ),
        ),
        (
            "tasks out of order",
            snap(
                vec![
                    task(9, "Parked", r#""ChanReceive""#, &recvwait(20), ""),
                    task(3, "Running", "null", "", ""),
                    task(5, "Parked", r#""ChanReceive""#, &recvwait(21), ""),
                ],
                vec![chan(21, 0, "9"), chan(20, 1, "5")],
                "",
            ),
        ),
        (
            "stuck ring through channels",
            snap(
                vec![
                    task(2, "Parked", r#""ChanReceive""#, &recvwait(20), ""),
                    task(3, "Parked", r#""ChanReceive""#, &recvwait(21), ""),
                ],
                vec![chan(20, 1, "3"), chan(21, 1, "2")],
                "",
            ),
        ),
        (
            "orphaned receive on a select of one listed and one missing channel",
            snap(
                vec![task(2, "Parked", r#""Select""#, &format!("{},{}", recvwait(20), recvwait(404)), "")],
                vec![chan(20, 0, "")],
                "",
            ),
        ),
        (
            "extreme numbers",
            format!(
                r#"{{{t0},"tasks":[{{"id":18446744073709551615,"name":"\n","state":"Parked","wait_reason":"Sleep",
                "parked_for":{{"secs":18446744073709551615,"nanos":999999999}},"spawned_at":{{"file":"","line":4294967295,"column":4294967295}},
                "parked_at":null,"stack":[{{"function":"f","file":null,"line":null,"pc":18446744073709551615,"entry":0}},
                {{"function":"g","file":"x","line":0,"pc":1,"entry":18446744073709551615}}],"kind":"Thread",
                "parent":18446744073709551615,"created_by":"","runtime":18446744073709551615,"waits_on":[],
                "stack_sampled":true,"activity_since_park":18446744073709551615,"timer_wakeable":true,"blocked":true,
                "park_seq":18446744073709551615}}],"resources":[],"dead_runtimes":[18446744073709551615]}}"#
            ),
        ),
    ];
    // A wait group whose count is negative, waited on by a task that is its only waker.
    out.push((
        "negative wait group",
        format!(
            r#"{{{t0},"tasks":[{}],"resources":[{{"id":30,"kind":{{"WaitGroup":{{"count":-9223372036854775808}}}},
            "created_at":{loc},"send_handles":0,"recv_handles":0,"timer_armed":false,"wakers":[2],"wakers_incomplete":false,
            "waiters":[2],"waiters_incomplete":false,"holders":[],"holders_incomplete":false,"queue":[]}}]}}"#,
            task(2, "Parked", r#""WaitGroupWait""#, r#"{"resource":30,"op":"WaitGroupWait"}"#, "")
        ),
    ));
    out
}

/// Runs every consumer of a snapshot (panics propagate to the caller).
pub fn exercise(s: &parkwatch::Snapshot, flamegraph: bool) {
    use std::time::Duration;
    let a = s.analyze();
    let _ = a.is_clean();
    for f in a.findings() {
        let _ = (&f.explanation, f.tasks.len(), f.resources.len());
    }
    let _ = s.analyze_with(&parkwatch::AnalyzeOptions { grace: Duration::ZERO, leak_after: Duration::ZERO });
    let _ = s.analyze_with(&parkwatch::AnalyzeOptions { grace: Duration::MAX, leak_after: Duration::MAX });
    let g = s.wait_for_graph();
    let _ = g.cycles();
    let _ = g.to_dot();
    let _ = g.to_json();
    for d in [0, 1, 2, 3, 255] {
        let _ = parkwatch::dump::text(s, d);
    }
    let _ = parkwatch::dump::pprof(s);
    let _ = parkwatch::dump::folded(s);
    if flamegraph {
        let _ = parkwatch::dump::flamegraph(s);
    }
    let j = parkwatch::dump::json(s);
    let _ = serde_json::from_str::<parkwatch::Snapshot>(&j);
    let half = s.filter(|t| t.id.0 % 2 == 0);
    let _ = parkwatch::dump::text(&half, 2);
    let _ = half.analyze();
    let rebuilt = parkwatch::Snapshot::from_tasks(s.tasks().to_vec());
    let _ = rebuilt.analyze();
    let _ = parkwatch::dump::text(&rebuilt, 1);
    for t in s.tasks() {
        let _ = s.task(t.id);
        for w in &t.waits_on {
            let _ = s.resource(w.resource).map(|r| r.label());
        }
    }
}

// ---------------------------------------------------------------------------
// Synthetic snapshots for the complexity probes (benches/scale.rs,
// tests/stress.rs): built as typed values, turned into a Snapshot through
// JSON (the only way to give a Snapshot resources from outside).
// ---------------------------------------------------------------------------

use parkwatch::{ResourceId, ResourceInfo, ResourceKind, Snapshot, TaskId, TaskInfo, TaskKind, TaskState};
use std::time::Duration;

fn loc(line: u32) -> parkwatch::Location {
    parkwatch::Location { file: "app/src/pipeline.rs".into(), line, column: 9 }
}

fn parked_task(id: u64, reason: parkwatch::WaitReason, waits_on: Vec<(u64, parkwatch::WaitReason)>) -> TaskInfo {
    TaskInfo {
        id: TaskId(id),
        name: None,
        state: TaskState::Parked,
        wait_reason: Some(reason),
        parked_for: Some(Duration::from_secs(10)),
        spawned_at: loc(10),
        parked_at: Some(loc(20 + id as u32 % 7)),
        stack: Vec::new(),
        kind: TaskKind::Async,
        parent: Some(TaskId(1)),
        created_by: None,
        runtime: 1,
        waits_on: waits_on.into_iter().map(|(r, op)| parkwatch::WaitOn { resource: ResourceId(r), op }).collect(),
        stack_sampled: false,
        activity_since_park: 0,
        timer_wakeable: false,
        blocked: true,
        park_seq: 1,
    }
}

fn running_task(id: u64) -> TaskInfo {
    TaskInfo {
        state: TaskState::Running,
        wait_reason: None,
        parked_for: None,
        parked_at: None,
        waits_on: Vec::new(),
        blocked: false,
        park_seq: 0,
        ..parked_task(id, parkwatch::WaitReason::ChanReceive, Vec::new())
    }
}

fn typed_resource(id: u64, kind: ResourceKind) -> ResourceInfo {
    ResourceInfo {
        id: ResourceId(id),
        kind,
        created_at: loc(5),
        send_handles: 1,
        recv_handles: 1,
        timer_armed: false,
        wakers: Vec::new(),
        wakers_incomplete: false,
        waiters: Vec::new(),
        waiters_incomplete: false,
        holders: Vec::new(),
        holders_incomplete: false,
        queue: Vec::new(),
    }
}

fn build_snapshot(tasks: Vec<TaskInfo>, resources: Vec<ResourceInfo>) -> Snapshot {
    let mut v = serde_json::to_value(Snapshot::from_tasks(tasks)).unwrap();
    v["resources"] = serde_json::to_value(resources).unwrap();
    serde_json::from_value(v).unwrap()
}

/// A pipeline: task 1 (running) feeds stage n through chan n; stage i+1 feeds
/// stage i. Every stage is parked receiving; each channel's only known sender
/// is the next stage. None is stuck (the feeder runs), which `stuck_sets`
/// finds by peeling one stage per pass.
pub fn pipeline_chain(n: u64) -> Snapshot {
    use parkwatch::WaitReason::ChanReceive;
    let mut tasks = vec![running_task(1)];
    let mut res = Vec::new();
    for i in 1..=n {
        let (task, chan) = (i + 1, 1000 + i);
        tasks.push(parked_task(task, ChanReceive, vec![(chan, ChanReceive)]));
        let mut r = typed_resource(chan, ResourceKind::Chan { cap: 0, closed: false });
        r.wakers = vec![TaskId(if i == n { 1 } else { task + 1 })];
        r.waiters = vec![TaskId(task)];
        res.push(r);
    }
    build_snapshot(tasks, res)
}

/// A chain of lock waiters: task i holds mutex i and waits for mutex i+1; the
/// last task waits for the mutex it holds (double lock). All are definitely
/// stuck; `stuck_behind` adds one task per pass.
pub fn lock_chain(n: u64) -> Snapshot {
    use parkwatch::WaitReason::MutexLock;
    let mut tasks = vec![running_task(1)];
    let mut res = Vec::new();
    for i in 1..=n {
        let task = i + 1;
        let wants = if i == n { 1000 + i } else { 1000 + i + 1 };
        tasks.push(parked_task(task, MutexLock, vec![(wants, MutexLock)]));
        let mut r = typed_resource(1000 + i, ResourceKind::Mutex);
        r.holders = vec![parkwatch::Holder { task: TaskId(task), write: true, at: loc(30) }];
        // The waiter of mutex i is the task holding mutex i-1 (or task n itself for mutex n).
        let waiter = if i == n {
            vec![task - 1, task]
        } else if i == 1 {
            vec![]
        } else {
            vec![task - 1]
        };
        r.queue = waiter.into_iter().map(|t| parkwatch::Queued { task: TaskId(t), write: true }).collect();
        res.push(r);
    }
    build_snapshot(tasks, res)
}

/// One Mutex held by a running task, `k` tasks queued on it.
pub fn long_queue(k: u64) -> Snapshot {
    use parkwatch::WaitReason::MutexLock;
    let mut tasks = vec![running_task(1)];
    let mut r = typed_resource(1000, ResourceKind::Mutex);
    r.holders = vec![parkwatch::Holder { task: TaskId(1), write: true, at: loc(30) }];
    for i in 0..k {
        tasks.push(parked_task(i + 2, MutexLock, vec![(1000, MutexLock)]));
        r.queue.push(parkwatch::Queued { task: TaskId(i + 2), write: true });
    }
    build_snapshot(tasks, vec![r])
}

/// `n` independent AB-BA deadlocks: tasks a and b each hold one Mutex and
/// wait for the other's (2n tasks, 2n mutexes, n cycles in the wait-for graph).
pub fn ab_ba_pairs(n: u64) -> Snapshot {
    use parkwatch::WaitReason::MutexLock;
    let mut tasks = vec![running_task(1)];
    let mut res = Vec::new();
    for i in 0..n {
        let (a, b) = (2 * i + 2, 2 * i + 3);
        let (ma, mb) = (100_000 + 2 * i, 100_000 + 2 * i + 1);
        tasks.push(parked_task(a, MutexLock, vec![(mb, MutexLock)]));
        tasks.push(parked_task(b, MutexLock, vec![(ma, MutexLock)]));
        for (m, holder, waiter) in [(ma, a, b), (mb, b, a)] {
            let mut r = typed_resource(m, ResourceKind::Mutex);
            r.holders = vec![parkwatch::Holder { task: TaskId(holder), write: true, at: loc(30) }];
            r.queue = vec![parkwatch::Queued { task: TaskId(waiter), write: true }];
            res.push(r);
        }
    }
    build_snapshot(tasks, res)
}
