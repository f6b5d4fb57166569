//! What `#[parkwatch_probe::test]` runs: the body as the main task of a fresh
//! runtime on its own thread, supervised from the test's thread.
//!
//! The test thread (libtest's) supervises; the body runs on a thread of its
//! own, named after the test, in `Runtime::block_on`. The supervisor waits for
//! the body's outcome and meanwhile, every [`POLL`], analyses the tasks of the
//! test's runtime (`TaskInfo::runtime`, which is what keeps parallel tests
//! apart). It fails the test, with a report and artifacts:
//! - on a deadlock: `block_on`'s own `Err(Deadlock)` when the main task is in
//!   it (global: at once; partial: after the runtime's `stuck_grace`), or a
//!   definite or probable deadlock finding among the other tasks (definite: at
//!   the next poll; probable: once stuck for the grace period) — even while
//!   other tasks, such as tickers, keep running;
//! - on leaked tasks: after the body returns, tasks of its runtime still alive
//!   once `leak_wait` has passed ([`verify_none`](crate::verify_none));
//! - on the hard timeout, with a dump of every task of the test.
//!
//! A body stuck for good cannot be unwound; its thread is left behind (the
//! test has failed, and the process ends when libtest is done).

use std::any::Any;
use std::future::Future;
use std::panic::{self, AssertUnwindSafe};
use std::process::{ExitCode, Termination};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parkwatch::{AnalyzeOptions, Certainty, Deadlock, Finding, FindingKind, Runtime, Snapshot, TaskInfo};

use crate::report::short;
use crate::verify::{verify_none, Options};

/// How often the supervisor analyses the test's tasks (it backs off when a
/// snapshot is expensive, to spend at most a tenth of the time on it, but
/// looks at least every [`MAX_POLL`]).
pub const POLL: Duration = Duration::from_millis(50);

/// The longest pause between two analyses of a test's tasks.
pub const MAX_POLL: Duration = Duration::from_millis(250);

/// The default grace period: how long a set of tasks must be stuck, with
/// nothing happening on what they wait for, before the test fails with a
/// probable deadlock. Definite deadlocks fail at once.
pub const DEFAULT_GRACE: Duration = Duration::from_millis(500);

/// The default hard timeout of a test.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

/// Overrides the default hard timeout (not one given in the attribute), e.g. `PARKWATCH_TEST_TIMEOUT=5m`.
pub const TIMEOUT_ENV: &str = "PARKWATCH_TEST_TIMEOUT";

/// Worker threads of a test's runtime unless `worker_threads = N` is given:
/// tests run in parallel, each with its own runtime.
pub const DEFAULT_WORKER_THREADS: usize = 2;

/// The settings of one test, written by the attribute.
#[doc(hidden)]
#[derive(Clone, Debug)]
pub struct TestConfig {
    /// `module_path!()` of the test.
    pub module: &'static str,
    /// The test function's name.
    pub function: &'static str,
    pub leak_wait: Option<Duration>,
    pub timeout: Option<Duration>,
    pub grace: Option<Duration>,
    pub worker_threads: Option<usize>,
    pub ignore: &'static [&'static str],
}

impl TestConfig {
    /// The name libtest gives the test: the module path without the crate, then the function.
    pub fn test_name(&self) -> String {
        match self.module.split_once("::") {
            Some((_, path)) => format!("{path}::{}", self.function),
            None => self.function.to_string(),
        }
    }
}

enum Outcome {
    Done(Result<ExitCode, Deadlock>),
    Panicked(Box<dyn Any + Send>),
}

/// Reads `"500ms"`, `"30s"`, `"1.5s"`, `"2m"`, `"100us"`, `"0"`.
pub(crate) fn parse_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    if s == "0" {
        return Some(Duration::ZERO);
    }
    let split = s.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
    let (num, unit) = s.split_at(split);
    let per = match unit.trim() {
        "ns" => 1e-9,
        "us" | "µs" => 1e-6,
        "ms" => 1e-3,
        "s" => 1.0,
        "m" | "min" => 60.0,
        "h" => 3600.0,
        _ => return None,
    };
    let n: f64 = num.parse().ok()?;
    Duration::try_from_secs_f64(n * per).ok()
}

/// Runs a test body under the probe (what `#[parkwatch_probe::test]` expands to).
#[doc(hidden)]
#[track_caller]
pub fn run_test<F, Fut>(cfg: TestConfig, body: F)
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future,
    Fut::Output: Termination,
{
    let test = cfg.test_name();
    warm_up_symbols();
    let grace = cfg.grace.unwrap_or(DEFAULT_GRACE);
    let timeout = cfg
        .timeout
        .or_else(|| std::env::var(TIMEOUT_ENV).ok().and_then(|v| parse_duration(&v)))
        .unwrap_or(DEFAULT_TIMEOUT);
    let leak_wait = cfg.leak_wait.unwrap_or(crate::DEFAULT_MAX_WAIT);
    let rt = Runtime::builder()
        .worker_threads(cfg.worker_threads.unwrap_or(DEFAULT_WORKER_THREADS))
        .stuck_grace(grace)
        .build()
        .unwrap_or_else(|e| panic!("parkwatch-probe: cannot start a runtime for test `{test}`: {e}"));
    let rt = Arc::new(rt);
    let ignore = cfg.ignore.iter().fold(Options::default().runtime(rt.id()), |o, s| o.ignore(*s));
    let sup = Supervisor { test: test.clone(), runtime: rt.id(), grace, started: Instant::now(), ignore };

    let (tx, rx) = mpsc::channel();
    let body_rt = rt.clone();
    let spawned = std::thread::Builder::new().name(test.clone()).spawn(move || {
        let out = panic::catch_unwind(AssertUnwindSafe(|| body_rt.block_on(body()).map(Termination::report)));
        let _ = tx.send(match out {
            Ok(r) => Outcome::Done(r),
            Err(p) => Outcome::Panicked(p),
        });
    });
    let body_thread =
        spawned.unwrap_or_else(|e| panic!("parkwatch-probe: cannot start the thread of test `{test}`: {e}"));

    let deadline = sup.started + timeout;
    let mut next_poll = sup.started + POLL;
    let outcome = loop {
        let wake = next_poll.min(deadline);
        match rx.recv_timeout(wake.saturating_duration_since(Instant::now())) {
            Ok(o) => break o,
            Err(RecvTimeoutError::Disconnected) => {
                sup.fail(rt, "the test's thread ended without an outcome".to_string(), &sup.tasks())
            }
            Err(RecvTimeoutError::Timeout) => {
                if Instant::now() >= deadline {
                    sup.timed_out(rt, timeout);
                }
                let t0 = Instant::now();
                if let Some((finding, snap)) = sup.find_deadlock() {
                    sup.deadlocked(rt, &finding, &snap);
                }
                next_poll = Instant::now() + (t0.elapsed() * 10).clamp(POLL, MAX_POLL);
            }
        }
    };
    match outcome {
        Outcome::Panicked(payload) => {
            // The panic message was printed by the body's thread; libtest
            // (and `#[should_panic]`) see the same payload here.
            drop_in_background(rt);
            panic::resume_unwind(payload)
        }
        Outcome::Done(Err(deadlock)) => sup.main_deadlocked(rt, deadlock),
        Outcome::Done(Ok(code)) if code != ExitCode::SUCCESS => {
            drop_in_background(rt);
            panic!(
                "the test returned a termination value with a non-zero status code which indicates a failure (test `{test}`)"
            )
        }
        Outcome::Done(Ok(_)) => {
            if let Err(leaks) = verify_none(sup.ignore.clone().max_wait(leak_wait)) {
                let report = format!("parkwatch: test `{test}` left tasks behind: {leaks}");
                sup.fail(rt, report, leaks.snapshot());
            }
            let _ = body_thread.join();
            if sup.tasks().tasks().is_empty() {
                // Every task of the runtime is gone: shutting it down is quick.
                drop(rt);
            } else {
                // Ignored tasks live on; one might hold up the shutdown.
                drop_in_background(rt);
            }
        }
    }
}

/// Loads the debug info that stack symbolization needs, once per process,
/// before the first test starts its clock.
///
/// The first symbolization of a debug test binary takes up to a second. Done
/// during a test, it would count against the test's deadlock detection and
/// leak wait, and it holds up tasks that spawn or exit meanwhile (a snapshot
/// resolves stacks while holding part of the task registry). So the first
/// test parks a registered thread and takes a snapshot of it first; every
/// test waits for that.
pub(crate) fn warm_up_symbols() {
    static WARM: std::sync::OnceLock<()> = std::sync::OnceLock::new();
    // On a thread of its own: outside any task or runtime, whoever calls.
    WARM.get_or_init(|| {
        let _ = std::thread::spawn(park_and_look).join();
    });
}

/// Parks a registered thread and takes snapshots until one shows it parked
/// (which resolves its stack).
fn park_and_look() {
    let c = parkwatch::chan::<()>(0);
    let rx = c.receiver();
    let parked = parkwatch::thread::spawn(move || rx.recv_blocking());
    let site = |t: &TaskInfo| t.spawned_at.file == file!() && t.kind == parkwatch::TaskKind::Thread;
    let give_up = Instant::now() + Duration::from_secs(5);
    while Instant::now() < give_up {
        let s = parkwatch::snapshot();
        if s.tasks().iter().any(|t| site(t) && t.state == parkwatch::TaskState::Parked) {
            break;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    let _ = c.close();
    let _ = parked.join();
}

/// Shuts a failed test's runtime down on a thread of its own: a task blocking
/// a worker thread would make the shutdown wait, and the failure must not.
fn drop_in_background(rt: Arc<Runtime>) {
    let _ = std::thread::Builder::new().name("parkwatch-probe-drop".into()).spawn(move || drop(rt));
}

struct Supervisor {
    test: String,
    runtime: u64,
    grace: Duration,
    started: Instant,
    ignore: Options,
}

impl Supervisor {
    /// The test's tasks now.
    fn tasks(&self) -> Snapshot {
        parkwatch::snapshot().filter(|t| t.runtime == self.runtime)
    }

    /// A deadlock (global, definite or probable) among the test's tasks that
    /// is not made only of ignored tasks.
    fn find_deadlock(&self) -> Option<(Finding, Snapshot)> {
        let snap = self.tasks();
        if snap.tasks().is_empty() {
            return None;
        }
        let opts = AnalyzeOptions { grace: self.grace, leak_after: Duration::MAX };
        let found = snap.analyze_with(&opts).deadlocks.into_iter().find(|f| {
            f.kind != FindingKind::LeakSuspect
                && f.certainty != Certainty::Suspected
                && !f.tasks.is_empty()
                && f.tasks.iter().all(|id| snap.task(*id).is_some())
                && !f.tasks.iter().all(|id| snap.task(*id).is_some_and(|t| self.ignore.ignores(t)))
        })?;
        Some((found, snap))
    }

    fn elapsed(&self) -> String {
        short(self.started.elapsed())
    }

    /// Fails on a deadlock the supervisor found.
    #[track_caller]
    fn deadlocked(&self, rt: Arc<Runtime>, f: &Finding, snap: &Snapshot) -> ! {
        let involved = snap.filter(|t| f.tasks.contains(&t.id));
        let header = if f.kind == FindingKind::GlobalDeadlock {
            format!("{}\n\n", parkwatch::GLOBAL_HEADER)
        } else {
            String::new()
        };
        let report = format!(
            "{}\n\n{header}{}\n\n{}",
            self.headline(f.certainty, f.kind),
            f.explanation,
            parkwatch::dump::text(&involved, 2).trim_end()
        );
        self.fail(rt, report, snap)
    }

    /// Fails on the deadlock `block_on` returned (the main task is in it).
    #[track_caller]
    fn main_deadlocked(&self, rt: Arc<Runtime>, d: Deadlock) -> ! {
        let (c, k) = d.finding().map_or((Certainty::Definite, FindingKind::GlobalDeadlock), |f| (f.certainty, f.kind));
        let report = format!("{}\n\n{}", self.headline(c, k), d.report().trim_end());
        // The main task left the registry with `block_on`; the deadlock kept it.
        let snap = with_tasks(&self.tasks(), d.tasks());
        self.fail(rt, report, &snap)
    }

    /// `parkwatch: test `x` deadlocked (probable: stuck set), found 612ms into the test`
    fn headline(&self, c: Certainty, k: FindingKind) -> String {
        format!(
            "parkwatch: test `{}` deadlocked ({}: {}), found {} into the test",
            self.test,
            certainty(c),
            kind(k),
            self.elapsed()
        )
    }

    /// Fails on the hard timeout, with every task of the test.
    #[track_caller]
    fn timed_out(&self, rt: Arc<Runtime>, timeout: Duration) -> ! {
        let snap = self.tasks();
        let mut report =
            format!("parkwatch: test `{}` timed out after {} (no deadlock was found)\n\n", self.test, short(timeout));
        let opts = AnalyzeOptions { grace: self.grace, leak_after: self.grace };
        let analysis = snap.analyze_with(&opts);
        let findings: Vec<&Finding> = analysis.findings().filter(|f| !f.tasks.is_empty()).collect();
        if !findings.is_empty() {
            report.push_str("findings:\n");
            for f in findings {
                report.push_str(&format!("  [{}] {}\n", certainty(f.certainty), f.explanation));
            }
            report.push('\n');
        }
        report.push_str(&format!("every task of the test ({}):\n\n", snap.tasks().len()));
        report.push_str(parkwatch::dump::text(&snap, 2).trim_end());
        self.fail(rt, report, &snap)
    }

    /// Writes the artifacts, shuts the runtime down in the background and panics with the report.
    #[track_caller]
    fn fail(&self, rt: Arc<Runtime>, report: String, snap: &Snapshot) -> ! {
        let mut msg = report;
        match crate::write_artifacts(&self.test, snap, &msg) {
            Ok(a) => msg = format!("{msg}\n\n{a}"),
            Err(e) => msg = format!("{msg}\n\nparkwatch: cannot write the artifacts: {e}\n"),
        }
        drop_in_background(rt);
        panic!("{msg}")
    }
}

fn certainty(c: Certainty) -> &'static str {
    match c {
        Certainty::Definite => "definite",
        Certainty::Probable => "probable",
        Certainty::Suspected => "suspected",
    }
}

fn kind(k: FindingKind) -> &'static str {
    match k {
        FindingKind::GlobalDeadlock => "global deadlock",
        FindingKind::DoubleLock => "double lock",
        FindingKind::LockCycle => "lock cycle",
        FindingKind::OrphanedWait => "orphaned wait",
        FindingKind::StuckSet => "stuck set",
        FindingKind::LeakSuspect => "leak suspect",
    }
}

/// `s` with the tasks of `extra` it lacks (a `Snapshot` is built only by the
/// library, so through its JSON form; resources are kept).
fn with_tasks(s: &Snapshot, extra: &[TaskInfo]) -> Snapshot {
    let missing: Vec<&TaskInfo> = extra.iter().filter(|t| s.task(t.id).is_none()).collect();
    if missing.is_empty() {
        return s.clone();
    }
    let merged = (|| {
        let mut v = serde_json::to_value(s).ok()?;
        let tasks = v.get_mut("tasks")?.as_array_mut()?;
        for t in missing {
            tasks.push(serde_json::to_value(t).ok()?);
        }
        tasks.sort_by_key(|t| t.get("id").and_then(|id| id.as_u64()).unwrap_or(0));
        serde_json::from_value::<Snapshot>(v).ok()
    })();
    merged.unwrap_or_else(|| {
        let mut all = s.tasks().to_vec();
        all.extend(extra.iter().filter(|t| s.task(t.id).is_none()).cloned());
        Snapshot::from_tasks(all)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse_duration("1.5s"), Some(Duration::from_millis(1500)));
        assert_eq!(parse_duration("2m"), Some(Duration::from_secs(120)));
        assert_eq!(parse_duration("0"), Some(Duration::ZERO));
        assert_eq!(parse_duration("10"), None);
        assert_eq!(parse_duration("10 days"), None);
    }

    #[test]
    fn with_tasks_adds_the_missing_tasks_and_keeps_the_resources() {
        let rt = Runtime::new().unwrap();
        let id = rt.id();
        let c = parkwatch::chan::<u32>(0);
        let rx = c.receiver();
        rt.block_on(async move {
            parkwatch::spawn(async move { rx.recv().await });
            parkwatch::time::sleep(Duration::from_millis(20)).await;
        })
        .unwrap();
        let s = parkwatch::snapshot().filter(|t| t.runtime == id);
        assert_eq!(s.tasks().len(), 1);
        assert!(!s.resources().is_empty());
        let mut gone = s.tasks()[0].clone();
        gone.id = parkwatch::TaskId(u64::MAX);
        let merged = with_tasks(&s, &[gone.clone(), s.tasks()[0].clone()]);
        assert_eq!(merged.tasks().len(), 2);
        assert_eq!(merged.tasks()[1].id, gone.id);
        assert_eq!(merged.resources().len(), s.resources().len());
        c.close().unwrap();
    }

    #[test]
    fn test_names() {
        let cfg = |module| TestConfig {
            module,
            function: "f",
            leak_wait: None,
            timeout: None,
            grace: None,
            worker_threads: None,
            ignore: &[],
        };
        assert_eq!(cfg("krate").test_name(), "f");
        assert_eq!(cfg("krate::tests::inner").test_name(), "tests::inner::f");
    }
}
