//! What every format shares: frames to show for a task, grouping of tasks by
//! stack, the state word.

use std::borrow::Cow;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use crate::detect::FastMap;
use crate::snapshot::{Frame, Location, Snapshot, TaskInfo, TaskState};

/// The frames to show for `t`: its stack, or, when it has none (running, or
/// capture off), one synthetic frame named `?` at its park location, else at
/// its spawn location, with pc 0. Never empty.
pub(crate) fn frames_of(t: &TaskInfo) -> Cow<'_, [Frame]> {
    if !t.stack.is_empty() {
        return Cow::Borrowed(&t.stack);
    }
    let loc = t.parked_at.as_ref().unwrap_or(&t.spawned_at);
    Cow::Owned(vec![synthetic(loc)])
}

/// A frame made from a `#[track_caller]` location: function `?`, pc 0.
pub(crate) fn synthetic(loc: &Location) -> Frame {
    Frame { function: Arc::from("?"), file: Some(Arc::from(loc.file.as_ref())), line: Some(loc.line), pc: 0, entry: 0 }
}

/// Whether frame `i` of `frames` was inlined into frame `i + 1`: both come from
/// the same instruction pointer (resolution yields the inlined functions
/// innermost first, then the physical function).
pub(crate) fn is_inlined(frames: &[Frame], i: usize) -> bool {
    let f = &frames[i];
    frames.get(i + 1).is_some_and(|next| f.pc != 0 && next.pc == f.pc && next.function != f.function)
}

/// Go's `Frame.PC` for a frame: the return address backed up into the call
/// instruction (Go's `pc--` when `pc > entry`), 0 for synthetic frames.
pub(crate) fn call_pc(f: &Frame) -> usize {
    if f.pc > f.entry {
        f.pc - 1
    } else {
        f.pc
    }
}

/// Go's `+0x..` offset of `pc` in its function, 0 when the entry is unknown.
pub(crate) fn offset(pc: usize, entry: usize) -> usize {
    if entry != 0 && pc >= entry {
        pc - entry
    } else {
        0
    }
}

/// The word in `goroutine N [...]`: the wait reason when parked, else the state.
pub(crate) fn state_word(t: &TaskInfo) -> &'static str {
    match (t.state, t.wait_reason) {
        (TaskState::Parked, Some(r)) => r.as_str(),
        (state, _) => state.as_str(),
    }
}

/// Tasks with the same frames (same pcs, or the same synthetic location) and
/// the same name label.
pub(crate) struct Group<'a> {
    /// The frames shown, innermost first.
    pub(crate) frames: Cow<'a, [Frame]>,
    /// The name label shared by the tasks, if any.
    pub(crate) name: Option<&'a str>,
    /// The tasks, by id.
    pub(crate) tasks: Vec<&'a TaskInfo>,
}

/// What tasks are grouped by: the frames shown (the stack, or the synthetic
/// frame at a location, made only once per group) and the name label.
#[derive(Clone, Copy)]
struct GroupKey<'a> {
    frames: KeyFrames<'a>,
    name: Option<&'a str>,
}

#[derive(Clone, Copy)]
enum KeyFrames<'a> {
    Stack(&'a [Frame]),
    /// `[synthetic(location)]`, compared as that frame.
    Synthetic(&'a Location),
}

impl<'a> GroupKey<'a> {
    fn of(t: &'a TaskInfo) -> GroupKey<'a> {
        let frames = if t.stack.is_empty() {
            KeyFrames::Synthetic(t.parked_at.as_ref().unwrap_or(&t.spawned_at))
        } else {
            KeyFrames::Stack(&t.stack)
        };
        GroupKey { frames, name: t.name.as_deref() }
    }

    /// The frames as [`frames_of`] gives them.
    fn frames(&self) -> Cow<'a, [Frame]> {
        match self.frames {
            KeyFrames::Stack(f) => Cow::Borrowed(f),
            KeyFrames::Synthetic(loc) => Cow::Owned(vec![synthetic(loc)]),
        }
    }
}

/// `a == b`, numbers first, then the strings, skipping the comparison of the
/// bytes when both are one `Arc` (as for the tasks parked at one site).
fn same_frame(a: &Frame, b: &Frame) -> bool {
    let same = |x: &Arc<str>, y: &Arc<str>| Arc::ptr_eq(x, y) || x == y;
    a.pc == b.pc
        && a.entry == b.entry
        && a.line == b.line
        && same(&a.function, &b.function)
        && match (&a.file, &b.file) {
            (Some(x), Some(y)) => same(x, y),
            (x, y) => x.is_none() && y.is_none(),
        }
}

/// Whether `f` equals `synthetic(loc)`.
fn is_synthetic_at(f: &Frame, loc: &Location) -> bool {
    f.pc == 0
        && f.entry == 0
        && f.line == Some(loc.line)
        && &*f.function == "?"
        && f.file.as_deref() == Some(loc.file.as_ref())
}

impl PartialEq for KeyFrames<'_> {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (KeyFrames::Stack(a), KeyFrames::Stack(b)) => {
                a.len() == b.len() && a.iter().zip(b.iter()).all(|(a, b)| same_frame(a, b))
            }
            (KeyFrames::Synthetic(a), KeyFrames::Synthetic(b)) => a.line == b.line && a.file == b.file,
            (KeyFrames::Stack(f), KeyFrames::Synthetic(loc)) | (KeyFrames::Synthetic(loc), KeyFrames::Stack(f)) => {
                matches!(f, [one] if is_synthetic_at(one, loc))
            }
        }
    }
}

impl PartialEq for GroupKey<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name && self.frames == other.frames
    }
}

impl Eq for GroupKey<'_> {}

impl Hash for GroupKey<'_> {
    /// Hashes the numbers of each frame (pc, entry, line), not its strings:
    /// cheap, and equal for the two forms of a synthetic frame.
    fn hash<H: Hasher>(&self, h: &mut H) {
        let frame = |h: &mut H, pc: usize, entry: usize, line: Option<u32>| {
            h.write_usize(pc);
            h.write_usize(entry);
            h.write_u32(line.map_or(0, |l| l.wrapping_add(1)));
        };
        match self.frames {
            KeyFrames::Stack(fs) => {
                h.write_usize(fs.len());
                for f in fs {
                    frame(h, f.pc, f.entry, f.line);
                }
            }
            KeyFrames::Synthetic(loc) => {
                h.write_usize(1);
                frame(h, 0, 0, Some(loc.line));
            }
        }
        self.name.hash(h);
    }
}

/// The groups of `s`, most tasks first, ties by smallest task id.
pub(crate) fn groups(s: &Snapshot) -> Vec<Group<'_>> {
    let mut sorted: Vec<&TaskInfo>;
    let tasks: &[TaskInfo] = s.tasks();
    let ordered: Box<dyn Iterator<Item = &TaskInfo>> = if tasks.is_sorted_by_key(|t| t.id) {
        Box::new(tasks.iter())
    } else {
        sorted = tasks.iter().collect();
        sorted.sort_by_key(|t| t.id);
        Box::new(sorted.into_iter())
    };
    let mut index: FastMap<GroupKey<'_>, usize> = FastMap::default();
    let mut out: Vec<Group<'_>> = Vec::new();
    // Tasks parked at one site mostly come one after another: try the last
    // group before hashing.
    let mut last: Option<(GroupKey<'_>, usize)> = None;
    for t in ordered {
        let key = GroupKey::of(t);
        let i = match last {
            Some((k, i)) if k == key => i,
            _ => *index.entry(key).or_insert_with(|| {
                out.push(Group { frames: key.frames(), name: key.name, tasks: Vec::new() });
                out.len() - 1
            }),
        };
        last = Some((key, i));
        out[i].tasks.push(t);
    }
    out.sort_by(|a, b| b.tasks.len().cmp(&a.tasks.len()).then(a.tasks[0].id.cmp(&b.tasks[0].id)));
    out
}

/// Number of tasks in `s` parked on a parkwatch primitive.
pub(crate) fn parked_count(s: &Snapshot) -> usize {
    s.tasks().iter().filter(|t| t.state == TaskState::Parked).count()
}

#[cfg(test)]
pub(crate) mod fixtures {
    //! Hand-made tasks and frames for the format tests.

    use std::borrow::Cow;
    use std::sync::Arc;
    use std::time::Duration;

    use crate::snapshot::{Frame, Location, TaskId, TaskInfo, TaskKind, TaskState, WaitReason};

    /// A resolved frame.
    pub(crate) fn frame(function: &str, file: &str, line: u32, pc: usize, entry: usize) -> Frame {
        Frame { function: Arc::from(function), file: Some(Arc::from(file)), line: Some(line), pc, entry }
    }

    /// A source location.
    pub(crate) fn loc(file: &'static str, line: u32) -> Location {
        Location { file: Cow::Borrowed(file), line, column: 5 }
    }

    /// A running task with no stack, spawned at `/src/app/main.rs:12`.
    pub(crate) fn task(id: u64) -> TaskInfo {
        TaskInfo {
            id: TaskId(id),
            name: None,
            state: TaskState::Running,
            wait_reason: None,
            parked_for: None,
            spawned_at: loc("/src/app/main.rs", 12),
            parked_at: None,
            stack: Vec::new(),
            kind: TaskKind::Async,
            parent: None,
            created_by: None,
            runtime: 1,
            waits_on: Vec::new(),
            stack_sampled: false,
            activity_since_park: 0,
            timer_wakeable: false,
            blocked: false,
            park_seq: 0,
        }
    }

    /// A task parked for `secs` with `reason` on `stack`.
    pub(crate) fn parked(id: u64, reason: WaitReason, secs: u64, stack: Vec<Frame>) -> TaskInfo {
        TaskInfo {
            state: TaskState::Parked,
            wait_reason: Some(reason),
            parked_for: Some(Duration::from_secs(secs)),
            parked_at: Some(loc("/src/app/main.rs", 25)),
            stack,
            ..task(id)
        }
    }

    /// The stack of `app::worker` parked in a receive, called from `app::main`'s task.
    pub(crate) fn worker_stack() -> Vec<Frame> {
        vec![
            frame("app::worker::{{closure}}", "/src/app/main.rs", 25, 0x5000_101c, 0x5000_1000),
            frame("app::run::{{closure}}", "/src/app/main.rs", 40, 0x5000_2044, 0x5000_2000),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::fixtures::*;
    use super::*;
    use crate::snapshot::WaitReason;

    #[test]
    fn groups_by_frames_and_name_sorted_by_count_then_id() {
        let mut named = parked(2, WaitReason::ChanReceive, 0, worker_stack());
        named.name = Some("w".into());
        let s = Snapshot::from_tasks(vec![
            task(9),
            parked(5, WaitReason::ChanReceive, 0, worker_stack()),
            named,
            parked(7, WaitReason::ChanReceive, 0, worker_stack()),
            task(1),
        ]);
        let g = groups(&s);
        let shape: Vec<(usize, u64, Option<&str>)> =
            g.iter().map(|g| (g.tasks.len(), g.tasks[0].id.0, g.name)).collect();
        // Running tasks 1 and 9 share the synthetic frame at their spawn site.
        assert_eq!(shape, [(2, 1, None), (2, 5, None), (1, 2, Some("w"))]);
        assert_eq!(&*g[0].frames[0].function, "?");
        assert_eq!(g[0].frames[0].line, Some(12));
    }

    #[test]
    fn a_stack_equal_to_the_synthetic_frame_groups_with_stackless_tasks() {
        let mut same = task(3);
        same.stack = vec![frame("?", "/src/app/main.rs", 12, 0, 0)];
        let mut other_line = task(4);
        other_line.spawned_at = loc("/src/app/main.rs", 13);
        let mut other_pc = task(5);
        other_pc.stack = vec![frame("?", "/src/app/main.rs", 12, 1, 0)];
        let s = Snapshot::from_tasks(vec![other_pc, same, task(1), other_line, task(2)]);
        let g = groups(&s);
        let shape: Vec<(usize, u64)> = g.iter().map(|g| (g.tasks.len(), g.tasks[0].id.0)).collect();
        assert_eq!(shape, [(3, 1), (1, 4), (1, 5)]);
        assert!(matches!(g[0].frames, Cow::Owned(_)), "the first task of the group has no stack");
    }

    #[test]
    fn synthetic_frame_prefers_park_location() {
        let t = parked(3, WaitReason::Sleep, 0, Vec::new());
        assert_eq!(frames_of(&t)[0].line, Some(25));
        assert_eq!(frames_of(&task(3))[0].line, Some(12));
        assert!(matches!(frames_of(&parked(3, WaitReason::Sleep, 0, worker_stack())), Cow::Borrowed(_)));
    }

    #[test]
    fn inlined_frames_share_a_pc_with_a_different_function() {
        let fs = [
            frame("app::inner", "/a.rs", 1, 0x10, 0x8),
            frame("app::outer", "/a.rs", 2, 0x10, 0x8),
            frame("app::outer", "/a.rs", 3, 0x10, 0x8),
            frame("app::top", "/a.rs", 4, 0x20, 0x18),
        ];
        let inl: Vec<bool> = (0..fs.len()).map(|i| is_inlined(&fs, i)).collect();
        // A recursive call (same function, same pc) is two physical frames.
        assert_eq!(inl, [true, false, false, false]);
        assert_eq!(call_pc(&fs[0]), 0xf);
        assert_eq!(call_pc(&synthetic(&loc("/a.rs", 1))), 0);
        assert_eq!(offset(0xf, 0x8), 7);
        assert_eq!(offset(0xf, 0), 0);
    }
}
