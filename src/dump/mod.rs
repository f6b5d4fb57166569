//! Dumps of a [`Snapshot`] in the formats Go's tools read, and a few more.
//!
//! | function | format | Go equivalent |
//! |---|---|---|
//! | [`text`]`(s, 1)` | counts per distinct stack | `/debug/pprof/goroutine?debug=1` |
//! | [`text`]`(s, 2)` | every task, crash layout | `/debug/pprof/goroutine?debug=2`, `panic` output |
//! | [`pprof`] | gzipped `profile.proto` | `/debug/pprof/goroutine` (`debug=0`), for `go tool pprof` |
//! | [`folded`] | collapsed stacks `a;b;[reason] N` | — (flame graph input) |
//! | [`flamegraph`] | SVG | — |
//! | [`json`] | the snapshot as JSON | — |
//!
//! Stacks are shown innermost first (text) or outermost first (folded), with
//! parkwatch's and the executor's frames trimmed (see `TaskInfo::stack`). A task
//! without a captured stack (running, or `PARKWATCH_BACKTRACE=0`) is shown with
//! one frame `?` at the line where it parked (else where it was spawned).

mod common;
mod folded;
mod pprof;
mod text;

pub use folded::{flamegraph, folded};
pub use pprof::pprof;
pub use text::text;

use crate::snapshot::Snapshot;

/// The snapshot as compact JSON: `{"taken_at":{..},"tasks":[..]}`, each task
/// with every [`TaskInfo`](crate::TaskInfo) field.
///
/// ```
/// let s = parkwatch::snapshot();
/// let v: serde_json::Value = serde_json::from_str(&parkwatch::dump::json(&s)).unwrap();
/// assert!(v["tasks"].is_array());
/// ```
pub fn json(s: &Snapshot) -> String {
    serde_json::to_string(s).unwrap_or_else(|e| serde_json::json!({ "error": e.to_string() }).to_string())
}

#[cfg(test)]
mod tests {
    use super::common::fixtures::*;
    use super::*;
    use crate::snapshot::WaitReason;

    #[test]
    fn json_round_trips() {
        let mut t = parked(7, WaitReason::ChanReceive, 130, worker_stack());
        t.name = Some("worker-3".into());
        let s = Snapshot::from_tasks(vec![t, task(1)]);
        let text = json(&s);
        let v: serde_json::Value = serde_json::from_str(&text).expect("valid json");
        assert_eq!(v["tasks"][0]["id"], 1);
        assert_eq!(v["tasks"][1]["id"], 7);
        assert_eq!(v["tasks"][1]["wait_reason"], "ChanReceive");
        assert_eq!(v["tasks"][1]["stack"][0]["function"], "app::worker::{{closure}}");
        assert!(v["taken_at"].is_object());
        let back: Snapshot = serde_json::from_str(&text).expect("deserializes");
        assert_eq!(back.tasks()[1].name.as_deref(), Some("worker-3"));
        assert_eq!(back.tasks()[1].stack, s.tasks()[1].stack);
    }
}
