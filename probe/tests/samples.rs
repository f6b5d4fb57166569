//! Runs real `cargo test` on the sample suite in `tests/samples/suite` (a
//! crate of its own, outside the workspace, using the probe as a user would)
//! and checks exit status, time to fail and report text.
//!
//! The suite is built once per run of this binary, into `<target>/probe-samples`.
//! Times are measured on runs of the already-built test binaries (compilation
//! excluded); the runs are serialized so that they do not slow each other down.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

/// A deadlocking test must fail in well under its 30 s timeout.
const DEADLOCK_BUDGET: Duration = Duration::from_secs(5);

fn suite_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests").join("samples").join("suite")
}

/// `<target>/probe-samples`, next to the workspace's own build.
fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    match exe.ancestors().find(|d| d.join("CACHEDIR.TAG").is_file()) {
        Some(target) => target.join("probe-samples"),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join("target").join("probe-samples"),
    }
}

fn cargo() -> Command {
    let mut c = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    c.current_dir(suite_dir()).env("CARGO_TARGET_DIR", target_dir()).env_remove("PARKWATCH_REPORT_DIR");
    c.env_remove("PARKWATCH_TEST_TIMEOUT").env("CARGO_TERM_COLOR", "never");
    c
}

/// The suite's test binaries by target name, built once.
fn binaries() -> &'static BTreeMap<String, PathBuf> {
    static BUILT: OnceLock<BTreeMap<String, PathBuf>> = OnceLock::new();
    BUILT.get_or_init(|| {
        // The workspace's lock file: the same dependency versions, nothing to resolve online.
        let lock = Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join("Cargo.lock");
        if lock.is_file() {
            std::fs::copy(&lock, suite_dir().join("Cargo.lock")).expect("copy Cargo.lock");
        }
        let t = Instant::now();
        let out =
            cargo().args(["test", "--no-run", "--message-format=json-render-diagnostics"]).output().expect("run cargo");
        assert!(out.status.success(), "building the sample suite failed:\n{}", String::from_utf8_lossy(&out.stderr));
        let mut bins = BTreeMap::new();
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else { continue };
            let is_test = v["target"]["kind"].as_array().is_some_and(|k| k.iter().any(|k| k == "test"));
            if let (true, Some(exe), Some(name)) = (is_test, v["executable"].as_str(), v["target"]["name"].as_str()) {
                bins.insert(name.to_string(), PathBuf::from(exe));
            }
        }
        eprintln!("built the sample suite in {:.1?}: {:?}", t.elapsed(), bins.keys().collect::<Vec<_>>());
        bins
    })
}

/// Serializes the runs (timings are measured; the machine may be small).
fn exclusive() -> MutexGuard<'static, ()> {
    static RUNS: Mutex<()> = Mutex::new(());
    RUNS.lock().unwrap_or_else(|e| e.into_inner())
}

struct Run {
    code: Option<i32>,
    stdout: String,
    elapsed: Duration,
}

impl Run {
    fn from(out: Output, elapsed: Duration) -> Run {
        let mut stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        stdout.push_str(&String::from_utf8_lossy(&out.stderr));
        Run { code: out.status.code(), stdout, elapsed }
    }

    /// The captured output of one failed test (libtest's `---- name stdout ----` section).
    fn section(&self, test: &str) -> &str {
        let head = format!("---- {test} stdout ----");
        let start = self.stdout.find(&head).unwrap_or_else(|| panic!("no section for {test} in:\n{}", self.stdout));
        let rest = &self.stdout[start + head.len()..];
        let end = rest.find("\n---- ").or_else(|| rest.find("\nfailures:\n")).unwrap_or(rest.len());
        &rest[..end]
    }

    /// The tests libtest reports with `outcome` ("ok" or "FAILED").
    fn tests(&self, outcome: &str) -> BTreeSet<String> {
        self.stdout
            .lines()
            .filter_map(|l| l.strip_prefix("test "))
            .filter_map(|l| l.strip_suffix(&format!(" ... {outcome}")))
            .map(|n| n.trim_end_matches(" - should panic").to_string())
            .collect()
    }
}

/// `cargo test --test <target> -- <args>`, a real cargo run (the suite is already built).
fn cargo_test(target: &str, args: &[&str], env: &[(&str, &Path)]) -> Run {
    binaries();
    let _one = exclusive();
    let mut c = cargo();
    c.args(["test", "--test", target, "--"]).args(args);
    for (k, v) in env {
        c.env(k, v);
    }
    let t = Instant::now();
    let out = c.output().expect("run cargo test");
    Run::from(out, t.elapsed())
}

/// The built test binary of `target`, run directly: what its tests take, without cargo.
fn run_binary(target: &str, args: &[&str], env: &[(&str, &Path)]) -> Run {
    let exe = binaries().get(target).unwrap_or_else(|| panic!("no test target {target}"));
    let _one = exclusive();
    let mut c = Command::new(exe);
    c.args(args).current_dir(suite_dir()).env_remove("PARKWATCH_REPORT_DIR").env_remove("PARKWATCH_TEST_TIMEOUT");
    for (k, v) in env {
        c.env(k, v);
    }
    let t = Instant::now();
    let out = c.output().expect("run test binary");
    Run::from(out, t.elapsed())
}

/// `tests/deadlock.rs:75`: where `marker` is in a file of the suite.
fn line_of(file: &str, marker: &str) -> String {
    let text = std::fs::read_to_string(suite_dir().join(file)).expect("sample source");
    let n = text.lines().position(|l| l.contains(marker)).unwrap_or_else(|| panic!("{marker:?} not in {file}"));
    format!("{file}:{}", n + 1)
}

fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("parkwatch-probe-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

#[test]
fn clean_tests_pass() {
    let run = cargo_test("clean", &[], &[]);
    assert_eq!(run.code, Some(0), "{}", run.stdout);
    assert!(run.stdout.contains("test result: ok. 6 passed; 0 failed"), "{}", run.stdout);
    let bin = run_binary("clean", &[], &[]);
    eprintln!("clean: cargo test {:.2?}, binary {:.2?}", run.elapsed, bin.elapsed);
    assert_eq!(bin.code, Some(0), "{}", bin.stdout);
}

#[test]
fn leaking_tests_fail_with_the_tasks_grouped_by_stack() {
    let run = cargo_test("leak", &[], &[]);
    eprintln!("leak: cargo test {:.2?}", run.elapsed);
    assert_eq!(run.code, Some(101), "{}", run.stdout);
    let failed = run.tests("FAILED");
    let expected = ["leaks_a_grandchild", "leaks_a_receiver", "leaks_a_thread", "leaks_sleepers"];
    assert_eq!(failed, expected.iter().map(|s| s.to_string()).collect(), "{}", run.stdout);
    let passed = run.tests("ok");
    assert!(passed.contains("ignored_leak_passes") && passed.contains("ignored_background_loop_passes"));

    let receiver = run.section("leaks_a_receiver");
    for needle in [
        "parkwatch: test `leaks_a_receiver` left tasks behind: found unexpected tasks: 1 task still alive after waiting",
        "1 task [chan receive, parked ",
        ", since ",
        " UTC]: goroutine ",
        "\"job-waiter\"",
        "probe_samples::wait_for_job::{{closure}}(...)",
        &line_of("src/lib.rs", "rx.recv().await"),
        "created by leak::leaks_a_receiver",
        &line_of("tests/leak.rs", "name(\"job-waiter\")"),
        "why they cannot exit:",
        "orphaned wait",
        "parkwatch artifacts in ",
    ] {
        assert!(receiver.contains(needle), "missing {needle:?} in:\n{receiver}");
    }
    // Three sleepers spawned at one site: one group.
    let sleepers = run.section("leaks_sleepers");
    assert!(sleepers.contains("3 tasks still alive") && sleepers.contains("3 tasks [sleep"), "{sleepers}");
    // A grandchild (its parent exited) is blamed on the test too.
    assert!(run.section("leaks_a_grandchild").contains("\"grandchild\""));
    // A registered thread of a plain `fn` test.
    let thread = run.section("leaks_a_thread");
    assert!(thread.contains("1 task [chan receive"), "{thread}");
}

#[test]
fn deadlocking_tests_fail_fast_with_the_explanation_and_dump() {
    let resp_line = line_of("tests/deadlock.rs", "bug: waits for a second response");
    let req_line = line_of("tests/deadlock.rs", "waits for a second request");
    let blocking_line = line_of("tests/deadlock.rs", "nobody will ever send");
    let cases = [
        (
            "main_waits_forever",
            &[
                "(definite: global deadlock)",
                "fatal error: all tasks are asleep - deadlock!",
                "[chan receive]:\ndeadlock::main_waits_forever",
            ][..],
        ),
        (
            "workers_lock_cycle_while_ticking",
            &[
                "(definite: lock cycle)",
                "lock cycle: each task waits for a lock",
                "[sync.Mutex.Lock]:",
                "\"ab\"",
                "\"ba\"",
            ],
        ),
        (
            "workers_stuck_while_ticking",
            &["(probable: stuck set)", "\"pinger\"", "\"ponger\"", "has been used only by", "[chan receive]:"],
        ),
        ("main_stuck_with_worker_while_ticking", &["(probable: stuck set)", "\"server\"", &resp_line, &req_line]),
        ("blocking_main_waits_forever", &["(definite: global deadlock)", "goroutine ", &blocking_line]),
    ];
    let mut times = Vec::new();
    for (test, needles) in cases {
        let run = run_binary("deadlock", &["--exact", test], &[]);
        assert_eq!(run.code, Some(101), "{test}:\n{}", run.stdout);
        let section = run.section(test);
        assert!(section.contains(&format!("test `{test}`")), "{section}");
        assert!(section.contains("deadlocked"), "{section}");
        for needle in needles {
            assert!(section.contains(needle), "{test}: missing {needle:?} in:\n{section}");
        }
        assert!(!section.contains("timed out"), "{section}");
        assert!(run.elapsed < DEADLOCK_BUDGET, "{test} took {:.2?} to fail (timeout 30 s)", run.elapsed);
        times.push(format!("{test} {:.2?}", run.elapsed));
    }
    eprintln!("deadlock, time to fail per test (binary run): {}", times.join(", "));
    let all = cargo_test("deadlock", &[], &[]);
    eprintln!("deadlock: cargo test of all 5 {:.2?}", all.elapsed);
    assert_eq!(all.code, Some(101));
    assert!(all.stdout.contains("test result: FAILED. 0 passed; 5 failed"), "{}", all.stdout);
}

#[test]
fn a_test_that_never_ends_fails_at_its_timeout_with_a_full_dump() {
    let run = run_binary("timeout", &[], &[]);
    eprintln!("timeout (1 s): failed after {:.2?}", run.elapsed);
    assert_eq!(run.code, Some(101), "{}", run.stdout);
    let s = run.section("sleeps_forever");
    assert!(s.contains("test `sleeps_forever` timed out after 1.00s"), "{s}");
    assert!(s.contains("every task of the test (2):"), "{s}");
    assert!(s.contains("[sleep]:\ntimeout::sleeps_forever::"), "{s}");
    assert!(run.elapsed >= Duration::from_secs(1) && run.elapsed < Duration::from_secs(5), "{:.2?}", run.elapsed);
}

#[test]
fn parallel_leaks_are_blamed_on_the_test_that_made_them() {
    let run = cargo_test("parallel", &["--test-threads=8"], &[]);
    eprintln!("parallel (50 leaking + 50 clean, 8 threads): cargo test {:.2?}", run.elapsed);
    assert_eq!(run.code, Some(101), "{}", run.stdout);
    let failed = run.tests("FAILED");
    let passed = run.tests("ok");
    let leaks: BTreeSet<String> = (0..50).map(|i| format!("leak_{i:02}")).collect();
    let cleans: BTreeSet<String> = (0..50).map(|i| format!("clean_{i:02}")).collect();
    assert_eq!(failed, leaks, "only the leaking tests fail:\n{}", run.stdout);
    assert_eq!(passed, cleans, "every clean test passes:\n{}", run.stdout);
    for i in 0..50 {
        let s = run.section(&format!("leak_{i:02}"));
        // Its own two leaks (the named task and the thread), nobody else's.
        assert!(s.contains("found unexpected tasks: 2 tasks still alive"), "{s}");
        assert!(s.contains(&format!("\"leak-{i}\"")), "{s}");
        let others = (0..50).filter(|j| *j != i).any(|j| s.contains(&format!("\"leak-{j}\"")));
        assert!(!others && !s.contains("\"clean-"), "leak_{i:02} lists another test's tasks:\n{s}");
    }
}

#[test]
fn failures_leave_artifacts_and_print_their_paths() {
    // PARKWATCH_REPORT_DIR decides where.
    let dir = scratch("artifacts");
    let run =
        run_binary("deadlock", &["--exact", "workers_lock_cycle_while_ticking"], &[("PARKWATCH_REPORT_DIR", &dir)]);
    assert_eq!(run.code, Some(101));
    let here = dir.join("workers_lock_cycle_while_ticking");
    for (file, content) in [
        ("dump.txt", "goroutine "),
        ("tasks.json", "\"tasks\""),
        ("graph.dot", "digraph"),
        ("flamegraph.svg", "<svg"),
        ("report.txt", "lock cycle"),
    ] {
        let path = here.join(file);
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert!(text.contains(content), "{}: {text}", path.display());
        assert!(run.stdout.contains(&path.display().to_string()), "path of {file} not printed:\n{}", run.stdout);
    }
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(here.join("tasks.json")).unwrap()).unwrap();
    assert!(json["tasks"].as_array().is_some_and(|t| t.len() >= 2), "{json}");
    let _ = std::fs::remove_dir_all(&dir);

    // By default: <target dir>/parkwatch/<test name>/.
    let run = run_binary("leak", &["--exact", "leaks_a_receiver"], &[]);
    assert_eq!(run.code, Some(101));
    let default = target_dir().join("parkwatch").join("leaks_a_receiver");
    assert!(default.join("dump.txt").is_file() && default.join("flamegraph.svg").is_file(), "{}", default.display());
    assert!(run.stdout.contains(&default.display().to_string()), "{}", run.stdout);
    // The main task of a global deadlock is in the artifacts, though it left `block_on`.
    let dir = scratch("global");
    let run = run_binary("deadlock", &["--exact", "main_waits_forever"], &[("PARKWATCH_REPORT_DIR", &dir)]);
    assert_eq!(run.code, Some(101));
    let dump = std::fs::read_to_string(dir.join("main_waits_forever").join("dump.txt")).unwrap();
    assert!(dump.contains("[chan receive]:\ndeadlock::main_waits_forever"), "{dump}");
    let _ = std::fs::remove_dir_all(&dir);
}
