//! `/metrics`: Prometheus text exposition (format 0.0.4).

use std::collections::HashMap;
use std::fmt::Write as _;

use super::query::{all_reasons, state_name, STATES};
use super::view::{certainty_name, kind_name_of, Taken};
use crate::detect::{Certainty, FindingKind};
use crate::snapshot::TaskState;

/// Every kind of finding with the certainty it always has, so each series exists (at 0) from the start.
const FINDING_SERIES: [(FindingKind, Certainty); 6] = [
    (FindingKind::GlobalDeadlock, Certainty::Definite),
    (FindingKind::DoubleLock, Certainty::Definite),
    (FindingKind::LockCycle, Certainty::Definite),
    (FindingKind::OrphanedWait, Certainty::Definite),
    (FindingKind::StuckSet, Certainty::Probable),
    (FindingKind::LeakSuspect, Certainty::Suspected),
];

fn label_value(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

/// The metrics text for a snapshot and its analysis.
pub(crate) fn render(t: &Taken) -> String {
    let s = &t.snap;
    let mut by_state: HashMap<TaskState, usize> = HashMap::new();
    let mut by_reason: HashMap<&'static str, usize> = HashMap::new();
    let mut oldest = 0.0f64;
    for task in s.tasks() {
        *by_state.entry(task.state).or_default() += 1;
        if task.state == TaskState::Parked {
            if let Some(r) = task.wait_reason {
                *by_reason.entry(r.as_str()).or_default() += 1;
            }
            if let Some(d) = task.parked_for {
                oldest = oldest.max(d.as_secs_f64());
            }
        }
    }
    let mut out = String::new();
    out.push_str("# HELP parkwatch_tasks Live tasks by state.\n# TYPE parkwatch_tasks gauge\n");
    for st in STATES {
        let _ = writeln!(out, "parkwatch_tasks{{state=\"{}\"}} {}", state_name(st), by_state.get(&st).unwrap_or(&0));
    }
    out.push_str(
        "# HELP parkwatch_parked_tasks Parked tasks by Go wait reason.\n# TYPE parkwatch_parked_tasks gauge\n",
    );
    for r in all_reasons() {
        let n = by_reason.get(r.as_str()).unwrap_or(&0);
        let _ = writeln!(out, "parkwatch_parked_tasks{{reason=\"{}\"}} {n}", label_value(r.as_str()));
    }
    out.push_str(
        "# HELP parkwatch_findings Findings of the deadlock and leak detectors by kind and certainty.\n\
         # TYPE parkwatch_findings gauge\n",
    );
    let count = |k: FindingKind, c: Certainty| t.findings().filter(|f| f.kind == k && f.certainty == c).count();
    let tasks_in = |k: FindingKind, c: Certainty| {
        t.findings().filter(|f| f.kind == k && f.certainty == c).map(|f| f.tasks.len()).sum::<usize>()
    };
    let mut series: Vec<(FindingKind, Certainty)> = FINDING_SERIES.to_vec();
    for f in t.findings() {
        if !series.contains(&(f.kind, f.certainty)) {
            series.push((f.kind, f.certainty));
        }
    }
    for &(k, c) in &series {
        let _ = writeln!(
            out,
            "parkwatch_findings{{kind=\"{}\",certainty=\"{}\"}} {}",
            kind_name_of(k),
            certainty_name(c),
            count(k, c)
        );
    }
    out.push_str(
        "# HELP parkwatch_finding_tasks Tasks involved in findings by kind and certainty.\n\
         # TYPE parkwatch_finding_tasks gauge\n",
    );
    for &(k, c) in &series {
        let _ = writeln!(
            out,
            "parkwatch_finding_tasks{{kind=\"{}\",certainty=\"{}\"}} {}",
            kind_name_of(k),
            certainty_name(c),
            tasks_in(k, c)
        );
    }
    out.push_str(
        "# HELP parkwatch_global_deadlock 1 when some runtime is in a global deadlock.\n\
         # TYPE parkwatch_global_deadlock gauge\n",
    );
    let _ = writeln!(out, "parkwatch_global_deadlock {}", u8::from(t.analysis().global_deadlock));
    out.push_str(
        "# HELP parkwatch_oldest_park_seconds How long the longest-parked task has been parked.\n\
         # TYPE parkwatch_oldest_park_seconds gauge\n",
    );
    let _ = writeln!(out, "parkwatch_oldest_park_seconds {oldest:.3}");
    out.push_str(
        "# HELP parkwatch_snapshot_seconds Time taken by the snapshot and analysis behind this answer.\n\
         # TYPE parkwatch_snapshot_seconds gauge\n",
    );
    let _ = writeln!(out, "parkwatch_snapshot_seconds {:.6}", t.elapsed().as_secs_f64());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_label_values() {
        assert_eq!(label_value("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
