//! Collapsed stacks (`a;b;c N`) and the flame graph drawn from them.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::common::{frames_of, parked_count, state_word};
use crate::snapshot::{Frame, Snapshot, TaskInfo};

/// The snapshot as collapsed stacks, one line per distinct stack: frames
/// outermost first separated by `;`, then the wait reason (or state) in
/// brackets as the leaf, a space and the number of tasks; lines sorted.
///
/// A task without a stack shows its park (else spawn) location `file:line`
/// as its only frame. `;` inside a function name (array types) becomes `,`.
///
/// ```
/// let s = parkwatch::snapshot();
/// for line in parkwatch::dump::folded(&s).lines() {
///     let (stack, count) = line.rsplit_once(' ').unwrap();
///     assert!(stack.ends_with(']'));
///     assert!(count.parse::<usize>().unwrap() >= 1);
/// }
/// ```
pub fn folded(s: &Snapshot) -> String {
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for t in s.tasks() {
        *counts.entry(folded_stack(t)).or_default() += 1;
    }
    let mut out = String::new();
    for (stack, n) in counts {
        let _ = writeln!(out, "{stack} {n}");
    }
    out
}

/// One task's stack, outermost first, with its state as the leaf.
fn folded_stack(t: &TaskInfo) -> String {
    let frames = frames_of(t);
    let mut out = String::new();
    for f in frames.iter().rev() {
        out.push_str(&frame_name(f));
        out.push(';');
    }
    let _ = write!(out, "[{}]", state_word(t));
    out
}

/// A frame's name in collapsed form: the function, or `file:line` for a
/// synthetic frame.
fn frame_name(f: &Frame) -> String {
    let name = if f.pc == 0 && &*f.function == "?" {
        format!("{}:{}", f.file.as_deref().unwrap_or("?"), f.line.unwrap_or(0))
    } else {
        f.function.to_string()
    };
    name.replace(';', ",")
}

/// The snapshot as an SVG flame graph of the [`folded`] stacks (drawn by
/// `inferno`), titled `parkwatch: N tasks, M parked`, widths counted in tasks.
/// An empty snapshot gives a small SVG with the title only.
///
/// ```
/// let s = parkwatch::snapshot();
/// let svg = parkwatch::dump::flamegraph(&s);
/// assert!(svg.contains("<svg"));
/// ```
pub fn flamegraph(s: &Snapshot) -> String {
    let title = format!("parkwatch: {} tasks, {} parked", s.tasks().len(), parked_count(s));
    let lines = folded(s);
    if lines.is_empty() {
        return empty_svg(&title);
    }
    let mut opt = inferno::flamegraph::Options::default();
    opt.title = title.clone();
    opt.count_name = "tasks".to_owned();
    opt.deterministic = true;
    let mut svg = Vec::new();
    match inferno::flamegraph::from_lines(&mut opt, lines.lines(), &mut svg) {
        Ok(()) => String::from_utf8_lossy(&svg).into_owned(),
        Err(e) => empty_svg(&format!("{title} (flame graph failed: {e})")),
    }
}

/// A valid SVG showing only `title`.
fn empty_svg(title: &str) -> String {
    format!(
        "<?xml version=\"1.0\" standalone=\"no\"?>\n\
<svg version=\"1.1\" width=\"1200\" height=\"60\" viewBox=\"0 0 1200 60\" \
xmlns=\"http://www.w3.org/2000/svg\">\n\
<text x=\"600\" y=\"34\" text-anchor=\"middle\" font-family=\"Verdana\" font-size=\"17\">{}</text>\n\
</svg>\n",
        xml_escape(title)
    )
}

fn xml_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::common::fixtures::*;
    use super::*;
    use crate::snapshot::{TaskState, WaitReason};

    fn sample() -> Snapshot {
        let mut sleeper = parked(9, WaitReason::Sleep, 0, Vec::new());
        sleeper.parked_at = Some(loc("/src/app/tick.rs", 7));
        let mut odd = parked(10, WaitReason::MutexLock, 0, vec![frame("<[u8; 4] as app::T>::f", "/a.rs", 1, 0x10, 0)]);
        odd.state = TaskState::Parked;
        Snapshot::from_tasks(vec![
            parked(7, WaitReason::ChanReceive, 0, worker_stack()),
            parked(3, WaitReason::ChanReceive, 0, worker_stack()),
            parked(5, WaitReason::ChanSend, 0, worker_stack()),
            sleeper,
            odd,
            task(1),
        ])
    }

    #[test]
    fn folded_exact() {
        assert_eq!(
            folded(&sample()),
            "/src/app/main.rs:12;[running] 1\n\
/src/app/tick.rs:7;[sleep] 1\n\
<[u8, 4] as app::T>::f;[sync.Mutex.Lock] 1\n\
app::run::{{closure}};app::worker::{{closure}};[chan receive] 2\n\
app::run::{{closure}};app::worker::{{closure}};[chan send] 1\n"
        );
        assert_eq!(folded(&Snapshot::from_tasks(Vec::new())), "");
    }

    #[test]
    fn flamegraph_is_an_svg_with_title_and_frames() {
        let svg = flamegraph(&sample());
        assert!(svg.contains("<svg"), "{svg}");
        assert!(svg.contains("parkwatch: 6 tasks, 5 parked"));
        assert!(svg.contains("app::worker::{{closure}}"));
        assert!(svg.contains("tasks"));
    }

    #[test]
    fn flamegraph_of_empty_snapshot_is_a_small_valid_svg() {
        let svg = flamegraph(&Snapshot::from_tasks(Vec::new()));
        assert!(svg.contains("<svg") && svg.trim_end().ends_with("</svg>"));
        assert!(svg.contains("parkwatch: 0 tasks, 0 parked"));
        assert_eq!(xml_escape("a<b>&\"'"), "a&lt;b&gt;&amp;&quot;&apos;");
    }
}
