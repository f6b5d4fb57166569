//! Text shared by the reports: tasks grouped by stack (like Go's `debug=1`
//! profile, but with the wait reason and the time parked), clock times.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use parkwatch::{Snapshot, TaskInfo, TaskState};

/// The word Go prints in `goroutine N [...]`: the wait reason when parked, else the state.
pub(crate) fn state_word(t: &TaskInfo) -> String {
    match (t.state, t.wait_reason) {
        (TaskState::Parked, Some(r)) => r.to_string(),
        (s, _) => s.as_str().to_string(),
    }
}

/// One line per frame, Go's traceback layout: `function(...)` then `\tfile:line`.
fn frames(t: &TaskInfo) -> Vec<(String, String)> {
    if t.stack.is_empty() {
        let loc = t.parked_at.as_ref().unwrap_or(&t.spawned_at);
        return vec![("?".to_string(), loc.to_string())];
    }
    t.stack
        .iter()
        .map(|f| {
            let file = f.file.as_deref().unwrap_or("?");
            (f.function.to_string(), format!("{file}:{}", f.line.unwrap_or(0)))
        })
        .collect()
}

type GroupKey = (String, Vec<(String, String)>, String, Option<String>);

/// Tasks grouped by (state, stack, spawn site), largest groups first.
pub(crate) fn grouped(tasks: &[TaskInfo]) -> Vec<Vec<&TaskInfo>> {
    let mut groups: BTreeMap<GroupKey, Vec<&TaskInfo>> = BTreeMap::new();
    for t in tasks {
        let key = (state_word(t), frames(t), t.spawned_at.to_string(), t.created_by.as_deref().map(str::to_owned));
        groups.entry(key).or_default().push(t);
    }
    let mut out: Vec<Vec<&TaskInfo>> = groups.into_values().collect();
    for g in &mut out {
        g.sort_by_key(|t| t.id);
    }
    out.sort_by_key(|g| (std::cmp::Reverse(g.len()), g[0].id));
    out
}

/// `12:04:05.123 UTC`
pub(crate) fn clock(t: SystemTime) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let s = d.as_secs() % 86_400;
    format!("{:02}:{:02}:{:02}.{:03} UTC", s / 3600, s / 60 % 60, s % 60, d.subsec_millis())
}

/// `1.25s`, `830ms`, `12µs`
pub(crate) fn short(d: Duration) -> String {
    if d >= Duration::from_secs(1) {
        format!("{:.2}s", d.as_secs_f64())
    } else if d >= Duration::from_millis(1) {
        format!("{}ms", d.as_millis())
    } else {
        format!("{}µs", d.as_micros())
    }
}

/// The grouped list: per group a header with the count, the wait reason and
/// since when, the task ids, the stack, and where the tasks were created.
pub(crate) fn write_groups(out: &mut String, s: &Snapshot, tasks: &[TaskInfo]) {
    for g in grouped(tasks) {
        let first = g[0];
        let n = g.len();
        let _ = write!(out, "{n} task{} [{}", if n == 1 { "" } else { "s" }, state_word(first));
        let longest = g.iter().filter_map(|t| t.parked_for).max();
        if let Some(p) = longest {
            let since = s.taken_at.checked_sub(p).map(clock).unwrap_or_default();
            let _ = write!(out, ", parked {}, since {since}", short(p));
        }
        let ids: Vec<String> = g.iter().map(|t| task_label(t)).collect();
        let _ = writeln!(out, "]: {}", ids.join(", "));
        for (function, at) in frames(first) {
            let _ = writeln!(out, "{function}(...)\n\t{at}");
        }
        let by = first.created_by.as_deref().unwrap_or("?");
        match first.parent {
            Some(p) => {
                let _ = writeln!(out, "created by {by} in goroutine {p}");
            }
            None => {
                let _ = writeln!(out, "created by {by}");
            }
        }
        let _ = writeln!(out, "\t{}", first.spawned_at);
        out.push('\n');
    }
}

/// `goroutine 7` or `goroutine 7 "worker-3"`
pub(crate) fn task_label(t: &TaskInfo) -> String {
    match &t.name {
        Some(n) => format!("goroutine {} {n:?}", t.id),
        None => format!("goroutine {}", t.id),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clock_and_short() {
        let t = UNIX_EPOCH + Duration::from_millis(((12 * 60 + 4) * 60 + 5) * 1000 + 123);
        assert_eq!(clock(t), "12:04:05.123 UTC");
        assert_eq!(short(Duration::from_millis(1250)), "1.25s");
        assert_eq!(short(Duration::from_millis(830)), "830ms");
        assert_eq!(short(Duration::from_micros(12)), "12µs");
    }
}
