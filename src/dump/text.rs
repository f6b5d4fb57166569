//! Go's text layouts of the goroutine profile: `debug=1` (counts per distinct
//! stack) and `debug=2` (every task, as in a crash).

use std::fmt::Write as _;

use super::common::{self, call_pc, frames_of, is_inlined, offset, state_word, Group};
use crate::snapshot::{Frame, Snapshot, TaskInfo, TaskState};

/// The snapshot as Go's goroutine profile text, `debug` = 1 or 2.
///
/// - `1` is `pprof.Lookup("goroutine").WriteTo(w, 1)`: `goroutine profile: total N`,
///   then per distinct stack (and name label), most tasks first,
///   `COUNT @ 0xPC ...`, an optional `# labels: {"name":"..."}` line, one
///   `#\t0xPC\tfunction+0xOFF\tfile:line` line per frame (columns aligned
///   with tabs exactly as Go's `tabwriter` does), and a blank line.
/// - `2` is Go's crash layout: per task, by id, `goroutine 7 [chan receive, 2 minutes]:`,
///   `function(...)` and `\tfile:line +0xOFF` per frame, then
///   `created by FUNC in goroutine N` and its `\tfile:line +0x0`, tasks
///   separated by a blank line.
///
/// Any other value (including 0, which is the binary [`pprof`](super::pprof)
/// format) gives the `debug=1` text.
///
/// Tasks without a stack (running, or `PARKWATCH_BACKTRACE=0`) show one frame
/// `?` at their park location; in `debug=1` a task not parked shows `?` at its
/// spawn location, in `debug=2` a running one shows Go's
/// `goroutine running on other thread; stack unavailable`.
///
/// ```
/// let s = parkwatch::snapshot();
/// let text = parkwatch::dump::text(&s, 1);
/// assert!(text.starts_with("goroutine profile: total "));
/// let crash = parkwatch::dump::text(&s, 2);
/// assert!(crash.is_empty() || crash.starts_with("goroutine "));
/// ```
pub fn text(s: &Snapshot, debug: u8) -> String {
    match debug {
        2 => debug2(s),
        _ => debug1(s),
    }
}

/// `debug=1`: counts per distinct stack.
fn debug1(s: &Snapshot) -> String {
    let mut out = format!("goroutine profile: total {}\n", s.tasks().len());
    for g in common::groups(s) {
        write_group(&mut out, &g);
    }
    out
}

fn write_group(out: &mut String, g: &Group<'_>) {
    let _ = write!(out, "{} @", g.tasks.len());
    for (i, f) in g.frames.iter().enumerate() {
        if !is_inlined(&g.frames, i) {
            let _ = write!(out, " {:#x}", f.pc);
        }
    }
    out.push('\n');
    if let Some(name) = g.name {
        let _ = writeln!(out, "# labels: {{{}:{}}}", go_quote("name"), go_quote(name));
    }
    let rows: Vec<[String; 4]> = g.frames.iter().map(frame_row).collect();
    write_aligned(out, &rows);
    out.push('\n');
}

/// The cells of Go's `"#\t%#x\t%s+%#x\t%s:%d\n"` for one frame.
fn frame_row(f: &Frame) -> [String; 4] {
    let pc = call_pc(f);
    [
        "#".to_owned(),
        format!("{pc:#x}"),
        format!("{}+{:#x}", f.function, offset(pc, f.entry)),
        format!("{}:{}", file_of(f), f.line.unwrap_or(0)),
    ]
}

/// Writes rows of tab-terminated cells (the last cell is not terminated) as
/// Go's `tabwriter.NewWriter(w, 1, 8, 1, '\t', 0)` does: each column is as
/// wide as its widest cell plus one, rounded up to a multiple of 8, and cells
/// are padded with as many tabs as that takes.
fn write_aligned<const N: usize>(out: &mut String, rows: &[[String; N]]) {
    const TAB_WIDTH: usize = 8;
    let width = |c: &String| c.chars().count();
    let cols: Vec<usize> = (0..N - 1)
        .map(|j| {
            let w = rows.iter().map(|r| width(&r[j]) + 1).max().unwrap_or(1);
            w.div_ceil(TAB_WIDTH) * TAB_WIDTH
        })
        .collect();
    for row in rows {
        for (j, cell) in row.iter().enumerate() {
            out.push_str(cell);
            if let Some(&col) = cols.get(j) {
                let tabs = (col - width(cell)).div_ceil(TAB_WIDTH);
                out.push_str(&"\t".repeat(tabs));
            }
        }
        out.push('\n');
    }
}

/// `debug=2`: every task, by id.
fn debug2(s: &Snapshot) -> String {
    let mut tasks: Vec<&TaskInfo> = s.tasks().iter().collect();
    tasks.sort_by_key(|t| t.id);
    let blocks: Vec<String> = tasks.into_iter().map(task_block).collect();
    blocks.join("\n")
}

/// One task in Go's traceback layout, ending with a newline.
fn task_block(t: &TaskInfo) -> String {
    let mut out = format!("goroutine {} [{}", t.id, state_word(t));
    let minutes = t.parked_for.map_or(0, |d| d.as_secs() / 60);
    if minutes >= 1 {
        let _ = write!(out, ", {minutes} minutes");
    }
    out.push_str("]:\n");
    write_frames(&mut out, t);
    write_created_by(&mut out, t);
    out
}

fn write_frames(out: &mut String, t: &TaskInfo) {
    if t.stack.is_empty() {
        match &t.parked_at {
            Some(loc) => {
                let _ = writeln!(out, "?(...)\n\t{}:{}", loc.file, loc.line);
            }
            None if t.state == TaskState::Running => {
                out.push_str("\tgoroutine running on other thread; stack unavailable\n");
            }
            None => {}
        }
        return;
    }
    let frames = frames_of(t);
    for (i, f) in frames.iter().enumerate() {
        let _ = write!(out, "{}(...)\n\t{}:{}", f.function, file_of(f), f.line.unwrap_or(0));
        // Go prints the offset of the return address, for physical frames only.
        if !is_inlined(&frames, i) && f.entry != 0 && f.pc > f.entry {
            let _ = write!(out, " +{:#x}", f.pc - f.entry);
        }
        out.push('\n');
    }
}

fn write_created_by(out: &mut String, t: &TaskInfo) {
    if t.created_by.is_none() && t.parent.is_none() {
        return;
    }
    let _ = write!(out, "created by {}", t.created_by.as_deref().unwrap_or("?"));
    if let Some(parent) = t.parent {
        let _ = write!(out, " in goroutine {parent}");
    }
    let _ = writeln!(out, "\n\t{}:{} +0x0", t.spawned_at.file, t.spawned_at.line);
}

fn file_of(f: &Frame) -> &str {
    f.file.as_deref().unwrap_or("?")
}

/// Go's `strconv.Quote` (`%q`) for the label syntax.
fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{b}' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::super::common::fixtures::*;
    use super::*;
    use crate::snapshot::{TaskId, WaitReason};

    fn two_workers_and_a_named_one() -> Snapshot {
        let mut named = parked(4, WaitReason::ChanReceive, 0, worker_stack());
        named.name = Some("worker-3".into());
        Snapshot::from_tasks(vec![
            parked(7, WaitReason::ChanReceive, 0, worker_stack()),
            named,
            parked(3, WaitReason::ChanReceive, 0, worker_stack()),
            task(1),
        ])
    }

    #[test]
    fn debug1_exact() {
        let got = text(&two_workers_and_a_named_one(), 1);
        let want = "goroutine profile: total 4\n\
2 @ 0x5000101c 0x50002044\n\
#\t0x5000101b\tapp::worker::{{closure}}+0x1b\t/src/app/main.rs:25\n\
#\t0x50002043\tapp::run::{{closure}}+0x43\t/src/app/main.rs:40\n\
\n\
1 @ 0x0\n\
#\t0x0\t?+0x0\t/src/app/main.rs:12\n\
\n\
1 @ 0x5000101c 0x50002044\n\
# labels: {\"name\":\"worker-3\"}\n\
#\t0x5000101b\tapp::worker::{{closure}}+0x1b\t/src/app/main.rs:25\n\
#\t0x50002043\tapp::run::{{closure}}+0x43\t/src/app/main.rs:40\n\
\n";
        assert_eq!(got, want);
        assert_eq!(text(&two_workers_and_a_named_one(), 0), want, "debug=0 text is debug=1");
    }

    #[test]
    fn debug1_at_line_lists_physical_frames_only() {
        let stack = vec![
            frame("app::helper", "/src/app/lib.rs", 5, 0x7010, 0x7000),
            frame("app::caller", "/src/app/lib.rs", 9, 0x7010, 0x7000),
            frame("app::main", "/src/app/main.rs", 3, 0x8020, 0x8000),
        ];
        let got = text(&Snapshot::from_tasks(vec![parked(2, WaitReason::MutexLock, 0, stack)]), 1);
        let lines: Vec<&str> = got.lines().collect();
        assert_eq!(lines[1], "1 @ 0x7010 0x8020");
        assert_eq!(lines[2], "#\t0x700f\tapp::helper+0xf\t/src/app/lib.rs:5");
        assert_eq!(lines[3], "#\t0x700f\tapp::caller+0xf\t/src/app/lib.rs:9");
        assert_eq!(lines[4], "#\t0x801f\tapp::main+0x1f\t/src/app/main.rs:3");
    }

    #[test]
    fn tabwriter_alignment_matches_go() {
        // Go: main.main+0x5d is padded to the width of runtime.main+0x2a6 (19 -> 24): 2 tabs.
        let rows = [
            ["#".to_owned(), "0x4bb0fd".to_owned(), "main.main+0x5d".to_owned(), "/x/main.go:17".to_owned()],
            ["#".to_owned(), "0x43b0a6".to_owned(), "runtime.main+0x2a6".to_owned(), "/p.go:267".to_owned()],
        ];
        let mut out = String::new();
        write_aligned(&mut out, &rows);
        assert_eq!(out, "#\t0x4bb0fd\tmain.main+0x5d\t\t/x/main.go:17\n#\t0x43b0a6\truntime.main+0x2a6\t/p.go:267\n");
    }

    #[test]
    fn debug2_exact() {
        let mut w = parked(7, WaitReason::ChanReceive, 150, worker_stack());
        w.created_by = Some("app::main::{{closure}}".into());
        w.parent = Some(TaskId(1));
        let mut main = parked(1, WaitReason::WaitGroupWait, 59, Vec::new());
        main.parked_at = Some(loc("/src/app/main.rs", 30));
        let s = Snapshot::from_tasks(vec![w, main]);
        let want = "goroutine 1 [sync.WaitGroup.Wait]:\n\
?(...)\n\
\t/src/app/main.rs:30\n\
\n\
goroutine 7 [chan receive, 2 minutes]:\n\
app::worker::{{closure}}(...)\n\
\t/src/app/main.rs:25 +0x1c\n\
app::run::{{closure}}(...)\n\
\t/src/app/main.rs:40 +0x44\n\
created by app::main::{{closure}} in goroutine 1\n\
\t/src/app/main.rs:12 +0x0\n";
        assert_eq!(text(&s, 2), want);
    }

    #[test]
    fn debug2_minutes_rule_and_states() {
        let header = |t: TaskInfo| text(&Snapshot::from_tasks(vec![t]), 2).lines().next().unwrap().to_owned();
        assert_eq!(header(parked(3, WaitReason::Sleep, 59, Vec::new())), "goroutine 3 [sleep]:");
        assert_eq!(header(parked(3, WaitReason::Sleep, 60, Vec::new())), "goroutine 3 [sleep, 1 minutes]:");
        assert_eq!(header(parked(3, WaitReason::Select, 3599, Vec::new())), "goroutine 3 [select, 59 minutes]:");
        assert_eq!(header(task(4)), "goroutine 4 [running]:");
        let mut t = task(5);
        t.state = TaskState::Runnable;
        assert_eq!(header(t), "goroutine 5 [runnable]:");
        let mut t = task(6);
        t.state = TaskState::External;
        assert_eq!(header(t), "goroutine 6 [external wait]:");
    }

    #[test]
    fn debug2_running_without_stack_and_created_by_variants() {
        let mut t = task(8);
        t.created_by = Some("app::spawner".into());
        assert_eq!(
            text(&Snapshot::from_tasks(vec![t]), 2),
            "goroutine 8 [running]:\n\tgoroutine running on other thread; stack unavailable\n\
created by app::spawner\n\t/src/app/main.rs:12 +0x0\n"
        );
        let mut t = task(9);
        t.state = TaskState::Runnable;
        t.parent = Some(TaskId(2));
        assert_eq!(
            text(&Snapshot::from_tasks(vec![t]), 2),
            "goroutine 9 [runnable]:\ncreated by ? in goroutine 2\n\t/src/app/main.rs:12 +0x0\n"
        );
    }

    #[test]
    fn debug2_inlined_frames_have_no_offset_and_unknowns_are_marked() {
        let mut unknown = frame("app::mystery", "", 0, 0x9010, 0);
        unknown.file = None;
        unknown.line = None;
        let stack = vec![
            frame("app::helper", "/src/app/lib.rs", 5, 0x7010, 0x7000),
            frame("app::caller", "/src/app/lib.rs", 9, 0x7010, 0x7000),
            unknown,
        ];
        let got = text(&Snapshot::from_tasks(vec![parked(2, WaitReason::CondWait, 0, stack)]), 2);
        assert_eq!(
            got,
            "goroutine 2 [sync.Cond.Wait]:\napp::helper(...)\n\t/src/app/lib.rs:5\n\
app::caller(...)\n\t/src/app/lib.rs:9 +0x10\napp::mystery(...)\n\t?:0\n"
        );
    }

    #[test]
    fn empty_snapshot() {
        let s = Snapshot::from_tasks(Vec::new());
        assert_eq!(text(&s, 1), "goroutine profile: total 0\n");
        assert_eq!(text(&s, 2), "");
    }

    #[test]
    fn go_quote_escapes_like_strconv_quote() {
        assert_eq!(go_quote("worker-3"), "\"worker-3\"");
        assert_eq!(go_quote("a\"b\\c\nd\te\u{1}é"), "\"a\\\"b\\\\c\\nd\\te\\x01é\"");
    }
}
