//! `verify_none`: goleak's `VerifyNone` for parkwatch tasks.

use std::collections::HashSet;
use std::fmt;
use std::time::{Duration, Instant};

use parkwatch::{AnalyzeOptions, Finding, Snapshot, TaskId, TaskInfo, TaskState};

use crate::report;

/// How long [`verify_none`] waits by default for tasks to exit: goleak's
/// schedule (20 retries, sleeping 1 µs doubling up to 100 ms) adds up to about
/// this.
pub const DEFAULT_MAX_WAIT: Duration = Duration::from_millis(430);

/// Which tasks [`verify_none`] looks at.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
enum Scope {
    /// The caller's runtime when called from a parkwatch task, else the process.
    #[default]
    Auto,
    /// One runtime.
    Runtime(u64),
    /// Every task of the process.
    Process,
}

/// How much longer than [`Options::max_wait`] [`verify_none`] waits while some
/// of the tasks left are making progress (running, woken, or parked anew since
/// the previous look) when the wait is over.
pub const RUNNING_EXTRA: Duration = Duration::from_secs(1);

/// What [`verify_none`] ignores and how long it waits; goleak's options.
///
/// ```
/// use std::time::Duration;
/// let opts = parkwatch_probe::Options::default()
///     .ignore_top_function("my_crate::metrics::flush_loop")
///     .ignore_created_by("my_crate::pool::Pool::new")
///     .max_wait(Duration::from_millis(200));
/// assert!(parkwatch_probe::verify_none(opts).is_ok());
/// ```
#[derive(Clone, Debug, Default)]
pub struct Options {
    top_functions: Vec<String>,
    any_functions: Vec<String>,
    created_by: Vec<String>,
    anything: Vec<String>,
    baseline: Option<HashSet<TaskId>>,
    max_wait: Option<Duration>,
    scope: Scope,
}

impl Options {
    /// Default options: nothing ignored, wait [`DEFAULT_MAX_WAIT`], look at the
    /// caller's runtime (from inside a parkwatch task) or the whole process.
    pub fn new() -> Options {
        Options::default()
    }

    /// Ignores tasks whose innermost frame (the function they are parked in)
    /// contains `f`, e.g. `"my_crate::pool::worker"` matches
    /// `my_crate::pool::worker::{{closure}}` (goleak's `IgnoreTopFunction`).
    pub fn ignore_top_function(mut self, f: impl Into<String>) -> Options {
        self.top_functions.push(f.into());
        self
    }

    /// Ignores tasks with any frame whose function contains `f` (goleak's `IgnoreAnyFunction`).
    pub fn ignore_any_function(mut self, f: impl Into<String>) -> Options {
        self.any_functions.push(f.into());
        self
    }

    /// Ignores tasks created by a function containing `f`, or spawned at a
    /// site (`file:line`) containing `f` (goleak's `IgnoreCreatedBy`).
    pub fn ignore_created_by(mut self, f: impl Into<String>) -> Options {
        self.created_by.push(f.into());
        self
    }

    /// Ignores tasks whose top function, spawn site, park site or creating
    /// function contains `s` (what `#[parkwatch_probe::test(ignore = "..")]` uses).
    pub fn ignore(mut self, s: impl Into<String>) -> Options {
        self.anything.push(s.into());
        self
    }

    /// Takes the tasks alive now as a baseline: they are never reported
    /// (goleak's `IgnoreCurrent`). Call it at the start of a test.
    ///
    /// ```
    /// let opts = parkwatch_probe::Options::default().ignore_current();
    /// // ... the test ...
    /// parkwatch_probe::verify_none(opts).unwrap();
    /// ```
    pub fn ignore_current(mut self) -> Options {
        let ids = parkwatch::snapshot().tasks().iter().map(|t| t.id).collect();
        self.baseline = Some(ids);
        self
    }

    /// How long to wait, retrying with exponential back-off (1 µs doubling up
    /// to 100 ms), for tasks to exit before reporting them. Zero checks once.
    pub fn max_wait(mut self, d: Duration) -> Options {
        self.max_wait = Some(d);
        self
    }

    /// Looks only at the tasks of one runtime ([`parkwatch::Runtime::id`]):
    /// what makes verification safe when tests run in parallel.
    pub fn runtime(mut self, id: u64) -> Options {
        self.scope = Scope::Runtime(id);
        self
    }

    /// Looks at every task of the process, even when called from a task.
    pub fn all_runtimes(mut self) -> Options {
        self.scope = Scope::Process;
        self
    }

    /// The configured wait, or the default.
    pub(crate) fn wait(&self) -> Duration {
        self.max_wait.unwrap_or(DEFAULT_MAX_WAIT)
    }

    /// Whether the options say to ignore `t`.
    pub fn ignores(&self, t: &TaskInfo) -> bool {
        if self.baseline.as_ref().is_some_and(|b| b.contains(&t.id)) {
            return true;
        }
        let top = t.stack.first().map(|f| &*f.function);
        let spawn = t.spawned_at.to_string();
        let created = t.created_by.as_deref();
        if self.top_functions.iter().any(|f| top.is_some_and(|top| top.contains(f.as_str()))) {
            return true;
        }
        if self.any_functions.iter().any(|f| t.stack.iter().any(|fr| fr.function.contains(f.as_str()))) {
            return true;
        }
        if self.created_by.iter().any(|f| created.is_some_and(|c| c.contains(f.as_str())) || spawn.contains(f.as_str()))
        {
            return true;
        }
        let parked = t.parked_at.as_ref().map(ToString::to_string);
        self.anything.iter().any(|s| {
            let s = s.as_str();
            top.is_some_and(|f| f.contains(s))
                || spawn.contains(s)
                || created.is_some_and(|c| c.contains(s))
                || parked.as_deref().is_some_and(|p| p.contains(s))
        })
    }

    /// The tasks of `s` that would be reported now.
    fn unexpected(&self, s: &Snapshot, me: Option<TaskId>) -> Snapshot {
        let runtime = match self.scope {
            Scope::Runtime(id) => Some(id),
            Scope::Process => None,
            Scope::Auto => me.and_then(|id| s.task(id)).map(|t| t.runtime),
        };
        // The caller and the tasks it descends from wait for it: never leaks.
        let mut mine = HashSet::new();
        let mut cur = me;
        while let Some(id) = cur {
            if !mine.insert(id) {
                break;
            }
            cur = s.task(id).and_then(|t| t.parent);
        }
        s.filter(|t| runtime.is_none_or(|r| t.runtime == r) && !mine.contains(&t.id) && !self.ignores(t))
    }
}

/// Tasks still alive when [`verify_none`] gave up waiting: their snapshot,
/// and a report that groups them by stack with what each waits for and since when.
#[derive(Clone)]
pub struct LeakReport(Box<Leaks>);

#[derive(Clone)]
struct Leaks {
    snapshot: Snapshot,
    waited: Duration,
    why: Vec<Finding>,
}

impl LeakReport {
    pub(crate) fn new(snapshot: Snapshot, waited: Duration) -> LeakReport {
        // Why they cannot exit, when the detectors can tell (orphaned waits,
        // lock cycles, stuck sets): the test is over, so no grace is needed.
        let opts = AnalyzeOptions { grace: Duration::ZERO, leak_after: Duration::MAX };
        let why = snapshot
            .analyze_with(&opts)
            .deadlocks
            .into_iter()
            .filter(|f| !f.tasks.is_empty() && f.tasks.iter().all(|id| snapshot.task(*id).is_some()))
            .collect();
        LeakReport(Box::new(Leaks { snapshot, waited, why }))
    }

    /// The leaked tasks.
    pub fn tasks(&self) -> &[TaskInfo] {
        self.0.snapshot.tasks()
    }

    /// A snapshot of just the leaked tasks (for [`parkwatch::dump`]).
    pub fn snapshot(&self) -> &Snapshot {
        &self.0.snapshot
    }

    /// How long verification waited for them to exit.
    pub fn waited(&self) -> Duration {
        self.0.waited
    }

    /// Deadlock findings among the leaked tasks (why they can never exit).
    pub fn findings(&self) -> &[Finding] {
        &self.0.why
    }
}

impl fmt::Display for LeakReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.tasks().len();
        let mut out = format!(
            "found unexpected tasks: {n} task{} still alive after waiting {} for {} to exit\n\n",
            if n == 1 { "" } else { "s" },
            report::short(self.0.waited),
            if n == 1 { "it" } else { "them" }
        );
        report::write_groups(&mut out, &self.0.snapshot, self.tasks());
        if !self.0.why.is_empty() {
            out.push_str("why they cannot exit:\n");
            for w in &self.0.why {
                out.push_str("  ");
                out.push_str(&w.explanation);
                out.push('\n');
            }
        }
        f.write_str(out.trim_end())
    }
}

impl fmt::Debug for LeakReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl std::error::Error for LeakReport {}

/// Checks that no unexpected task is alive (goleak's `VerifyNone`), waiting up
/// to [`Options::max_wait`] with back-off for tasks that are about to exit
/// (and up to [`RUNNING_EXTRA`] more while one of them is still making progress).
///
/// Which tasks count: from inside a parkwatch task, those of the caller's
/// runtime, except the caller and the tasks it descends from; from any other
/// thread, every task of the process (scope it with [`Options::runtime`] when
/// tests run in parallel). [`Options`] adds goleak's filters.
///
/// It blocks the calling thread while it waits: call it from a test's main
/// task or a thread; from a spawned task, use [`verify_none_async`].
///
/// ```
/// use std::time::Duration;
/// use parkwatch_probe::{verify_none, Options};
///
/// let rt = parkwatch::Runtime::new().unwrap();
/// rt.block_on(async {
///     let c = parkwatch::chan::<u32>(0);
///     let rx = c.receiver();
///     // Waits for a value that never comes: a leak.
///     parkwatch::spawn(async move { rx.recv().await });
///     let report = verify_none(Options::default().max_wait(Duration::from_millis(50))).unwrap_err();
///     assert_eq!(report.tasks().len(), 1);
///     assert!(report.to_string().contains("[chan receive"));
///     // Ignored by where it parks (its top function, here a closure of this doctest).
///     let top = report.tasks()[0].stack.first().map(|f| f.function.to_string()).unwrap_or_default();
///     let site = report.tasks()[0].spawned_at.to_string();
///     assert!(verify_none(Options::default().ignore_created_by(site).max_wait(Duration::ZERO)).is_ok());
///     if !top.is_empty() {
///         assert!(verify_none(Options::default().ignore_top_function(top).max_wait(Duration::ZERO)).is_ok());
///     }
/// }).unwrap();
/// ```
pub fn verify_none(opts: Options) -> Result<(), LeakReport> {
    let mut check = Check::new(opts);
    loop {
        match check.step() {
            Step::Done(r) => return r,
            Step::Sleep(d) => std::thread::sleep(d),
        }
    }
}

/// [`verify_none`] for async code: it waits with [`parkwatch::time::sleep`]
/// instead of blocking the thread, so call it from a spawned task (blocking a
/// worker thread could keep the very tasks it waits for from running).
///
/// ```
/// use std::time::Duration;
/// parkwatch::run(async {
///     let worker = parkwatch::spawn(async {
///         parkwatch::spawn(async { parkwatch::time::sleep(Duration::from_millis(5)).await });
///         parkwatch_probe::verify_none_async(parkwatch_probe::Options::default()).await
///     });
///     worker.await.unwrap().unwrap();
/// });
/// ```
pub async fn verify_none_async(opts: Options) -> Result<(), LeakReport> {
    let mut check = Check::new(opts);
    loop {
        match check.step() {
            Step::Done(r) => return r,
            Step::Sleep(d) => parkwatch::time::sleep(d).await,
        }
    }
}

enum Step {
    Done(Result<(), LeakReport>),
    Sleep(Duration),
}

/// The retry loop of [`verify_none`], one look at a time.
struct Check {
    opts: Options,
    me: Option<TaskId>,
    start: Instant,
    max_wait: Duration,
    pause: Duration,
    /// When the previous look began, from `start`.
    last_look: Duration,
}

impl Check {
    fn new(opts: Options) -> Check {
        crate::runner::warm_up_symbols();
        let max_wait = opts.wait();
        let me = parkwatch::task::id();
        Check { opts, me, start: Instant::now(), max_wait, pause: Duration::from_micros(1), last_look: Duration::ZERO }
    }

    fn step(&mut self) -> Step {
        let max_wait = self.max_wait;
        // Only a snapshot begun once the wait is over can condemn a task (a
        // snapshot may take a while: the first one resolves symbols).
        let waited = self.start.elapsed();
        let left = self.opts.unexpected(&parkwatch::snapshot(), self.me);
        if left.tasks().is_empty() {
            return Step::Done(Ok(()));
        }
        // A task running, woken, or parked since the previous look when the
        // wait is over is making progress, most likely on its way out: it
        // gets up to RUNNING_EXTRA more, which keeps loaded CI machines from
        // failing tests on a slow exit.
        let since_last = waited.saturating_sub(self.last_look);
        self.last_look = waited;
        let busy = left.tasks().iter().any(|t| {
            matches!(t.state, TaskState::Running | TaskState::Runnable) || t.parked_for.is_some_and(|p| p < since_last)
        });
        if waited >= max_wait && !(busy && waited < max_wait + RUNNING_EXTRA) {
            return Step::Done(Err(LeakReport::new(left, waited)));
        }
        let waited = self.start.elapsed();
        let until = if waited < max_wait { max_wait } else { max_wait + RUNNING_EXTRA };
        let pause = self.pause.min(until.saturating_sub(waited));
        self.pause = (self.pause * 2).min(Duration::from_millis(100));
        Step::Sleep(pause)
    }
}
