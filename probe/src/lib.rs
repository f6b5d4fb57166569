//! # parkwatch-probe
//!
//! Fail CI on leaked and deadlocked tasks, from any test binary: Go's
//! [goleak] and its deadlock detector, for [`parkwatch`] tasks.
//!
//! Add it to a test suite in three lines:
//!
//! ```toml
//! [dev-dependencies]
//! parkwatch-probe = "0.1"
//! ```
//! ```text
//! #[parkwatch_probe::test]   // in place of #[test] (plain fn) or #[tokio::test] (async fn)
//! ```
//!
//! Each such test runs its body as the main task of a fresh parkwatch
//! runtime and fails:
//! - **at once on a deadlock** of its tasks — a global one, or a definite or
//!   probable partial one, even while other tasks (tickers, servers) keep
//!   running: within the grace period (500 ms by default; definite deadlocks
//!   at the next 50 ms check), not at the timeout, with the explanation and
//!   Go's `debug=2` dump of the tasks involved;
//! - **on leaks**: tasks spawned by the test (directly or by its tasks, and
//!   threads from [`parkwatch::thread::spawn`]) still alive when the body has
//!   returned and a grace period (`leak_wait`, goleak's ~430 ms by default)
//!   has passed, listed grouped by stack, with what they wait for and since when;
//! - **on a hard timeout** (60 s, or `timeout = ".."`), with a dump of every task.
//!
//! Tests run in parallel safely: every test has its own runtime, and a task
//! belongs to the runtime of the task (or registered thread) that spawned it
//! ([`parkwatch::TaskInfo::runtime`]), so a leak is blamed on the test whose
//! tasks made it, never on its neighbour.
//!
//! On failure the report is the panic message, and the files of
//! [`write_artifacts`] are written under `target/parkwatch/<test name>/`
//! (or `$PARKWATCH_REPORT_DIR/<test name>/`): `dump.txt`, `tasks.json`,
//! `graph.dot`, `flamegraph.svg` and `report.txt`; their paths are printed.
//!
//! Tests not written with the attribute can call [`verify_none`] (goleak's
//! `VerifyNone`) at their end.
//!
//! [goleak]: https://github.com/uber-go/goleak

#![warn(missing_docs)]

mod artifacts;
mod report;
mod runner;
mod verify;

pub use artifacts::{report_dir, write_artifacts, Artifacts, REPORT_DIR_ENV};
pub use runner::{DEFAULT_GRACE, DEFAULT_TIMEOUT, DEFAULT_WORKER_THREADS, MAX_POLL, POLL, TIMEOUT_ENV};
pub use verify::{verify_none, verify_none_async, LeakReport, Options, DEFAULT_MAX_WAIT, RUNNING_EXTRA};

/// Runs a test under the probe: `async fn` or plain `fn`, its body the main
/// task of a fresh parkwatch runtime (use it in place of `#[test]`).
///
/// Options, all optional:
/// - `leak_wait = "500ms"`: how long to wait, after the body returns, for the
///   test's tasks to exit before failing it for leaking them (default
///   [`DEFAULT_MAX_WAIT`], goleak's ~430 ms);
/// - `timeout = "30s"`: the hard timeout (default [`DEFAULT_TIMEOUT`], or
///   `$PARKWATCH_TEST_TIMEOUT`), after which the test fails with a dump of
///   every task instead of hanging;
/// - `grace = "500ms"`: how long a set of tasks must be stuck before the test
///   fails with a probable deadlock (default [`DEFAULT_GRACE`]);
/// - `ignore = "my_crate::pool"` or `ignore = ["..", ".."]`: tasks whose top
///   function, spawn site, park site or creating function contains the text
///   are neither leaks nor deadlocks (goleak's `IgnoreTopFunction`; this is not
///   `#[ignore]`, which can be added as usual);
/// - `worker_threads = 4`: the runtime's workers (default [`DEFAULT_WORKER_THREADS`]).
///
/// The test may return `()` or a `Result`; `#[should_panic]`, `#[ignore]`
/// and other attributes are kept.
///
/// ```no_run
/// use std::time::Duration;
///
/// #[parkwatch_probe::test(leak_wait = "200ms", timeout = "10s")]
/// async fn workers_finish() {
///     let jobs = parkwatch::chan::<u32>(0);
///     let rx = jobs.receiver();
///     let worker = parkwatch::spawn(async move { while rx.recv().await.is_some() {} });
///     jobs.send(1).await.unwrap();
///     jobs.close().unwrap(); // without this, the worker leaks and the test fails
///     worker.await.unwrap();
/// }
///
/// #[parkwatch_probe::test(ignore = "my_crate::metrics::flush_loop")]
/// fn blocking_test() {
///     let c = parkwatch::chan::<u32>(1);
///     c.send_blocking(1).unwrap();
///     assert_eq!(c.recv_blocking(), Some(1));
/// }
/// # fn main() {}
/// ```
pub use parkwatch_macros::test;

#[doc(hidden)]
pub mod __private {
    pub use crate::runner::{run_test, TestConfig};
}
