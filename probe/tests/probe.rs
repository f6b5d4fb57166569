//! The probe in-process: the attribute on passing and failing tests (failures
//! checked with `#[should_panic]`), and `verify_none` with its options. These
//! tests run in parallel with each other, leaking ones next to clean ones.

use std::time::{Duration, Instant};

use parkwatch_probe::{verify_none, Options};

// ------------------------------------------------------------ the attribute

#[parkwatch_probe::test]
async fn async_test_passes() {
    let c = parkwatch::chan::<u32>(0);
    let tx = c.sender();
    let h = parkwatch::spawn(async move { tx.send(5).await.unwrap() });
    assert_eq!(c.recv().await, Some(5));
    h.await.unwrap();
}

#[parkwatch_probe::test]
fn plain_test_passes() {
    let c = parkwatch::chan::<u32>(1);
    c.send_blocking(1).unwrap();
    assert_eq!(c.recv_blocking(), Some(1));
    // A task spawned from a plain test is one of the test's tasks.
    let h = parkwatch::spawn(async { 2 });
    assert!(parkwatch::task::id().is_some());
    drop(h);
}

#[parkwatch_probe::test]
async fn result_test_passes() -> Result<(), std::fmt::Error> {
    Ok(())
}

#[parkwatch_probe::test]
#[should_panic(expected = "the test returned a termination value with a non-zero status code")]
async fn result_test_fails_on_err() -> Result<(), String> {
    Err("no".into())
}

#[parkwatch_probe::test]
#[should_panic(expected = "assertion `left == right` failed")]
async fn a_panicking_body_fails_as_usual() {
    assert_eq!(1, 2);
}

#[parkwatch_probe::test(leak_wait = "50ms")]
#[should_panic(expected = "left tasks behind: found unexpected tasks: 1 task still alive")]
async fn a_leak_fails_the_test() {
    let c = parkwatch::chan::<u32>(0);
    parkwatch::spawn(async move { c.recv().await });
}

#[parkwatch_probe::test(leak_wait = "50ms", ignore = "tests/probe.rs")]
async fn an_ignored_leak_passes() {
    let c = parkwatch::chan::<u32>(0);
    parkwatch::spawn(async move { c.recv().await });
}

#[parkwatch_probe::test(timeout = "20s")]
#[should_panic(expected = "deadlocked (definite: global deadlock)")]
async fn a_global_deadlock_fails_the_test() {
    let c = parkwatch::chan::<u32>(0);
    c.recv().await;
}

#[parkwatch_probe::test(timeout = "20s", grace = "200ms")]
#[should_panic(expected = "deadlocked (probable: stuck set)")]
async fn a_stuck_pair_fails_the_test_while_main_ticks() {
    let a = parkwatch::chan::<u32>(0);
    let b = parkwatch::chan::<u32>(0);
    let (a2, b2) = (a.clone(), b.clone());
    parkwatch::spawn(async move {
        a.send(1).await.unwrap();
        b.recv().await;
        b.recv().await;
    });
    parkwatch::spawn(async move {
        a2.recv().await;
        b2.send(1).await.unwrap();
        a2.recv().await;
    });
    let tick = parkwatch::time::tick(Duration::from_millis(10));
    loop {
        tick.recv().await;
    }
}

#[parkwatch_probe::test(timeout = "300ms")]
#[should_panic(expected = "timed out after 300ms")]
async fn the_hard_timeout_fails_the_test() {
    loop {
        parkwatch::time::sleep(Duration::from_millis(5)).await;
    }
}

// ---------------------------------------------------------------- verify_none

#[test]
fn verify_none_passes_when_every_task_exited() {
    let rt = parkwatch::Runtime::new().unwrap();
    rt.block_on(async {
        parkwatch::spawn(async { parkwatch::time::sleep(Duration::from_millis(20)).await });
        // Waits for the sleeper to exit.
        verify_none(Options::default()).unwrap();
    })
    .unwrap();
}

#[test]
fn verify_none_reports_leaks_grouped_and_honours_its_filters() {
    let rt = parkwatch::Runtime::new().unwrap();
    rt.block_on(async {
        let c = parkwatch::chan::<u32>(0);
        for _ in 0..2 {
            let rx = c.receiver();
            parkwatch::task::Builder::new().name("waiter").spawn(async move { rx.recv().await });
        }
        let t = Instant::now();
        let report = verify_none(Options::default().max_wait(Duration::from_millis(100))).unwrap_err();
        assert!(t.elapsed() >= Duration::from_millis(100));
        assert_eq!(report.tasks().len(), 2);
        let text = report.to_string();
        assert!(text.starts_with("found unexpected tasks: 2 tasks still alive after waiting"), "{text}");
        assert!(text.contains("\n2 tasks [chan receive, parked "), "{text}");
        assert!(text.contains("goroutine ") && text.contains("\"waiter\""), "{text}");
        assert!(text.contains("tests/probe.rs"), "{text}");
        // As an error.
        let e: Box<dyn std::error::Error> = Box::new(report.clone());
        assert_eq!(e.to_string(), text);

        let zero = || Options::default().max_wait(Duration::ZERO);
        let top = report.tasks()[0].stack.first().map(|f| f.function.to_string()).expect("a stack");
        assert!(verify_none(zero().ignore_top_function(top)).is_ok());
        assert!(verify_none(zero().ignore_any_function("verify_none_reports_leaks")).is_ok());
        assert!(verify_none(zero().ignore_created_by("tests/probe.rs")).is_ok());
        assert!(verify_none(zero().ignore_created_by("elsewhere.rs")).is_err());
        c.close().unwrap();
        verify_none(Options::default()).unwrap();
    })
    .unwrap();
}

#[test]
fn ignore_current_takes_a_baseline() {
    let rt = parkwatch::Runtime::new().unwrap();
    let id = rt.id();
    let c = parkwatch::chan::<u32>(0);
    let rx = c.receiver();
    rt.block_on(async move {
        parkwatch::spawn(async move { rx.recv().await });
        parkwatch::time::sleep(Duration::from_millis(10)).await;
    })
    .unwrap();
    // From a plain thread: scope it to the runtime (tests run in parallel).
    let scoped = || Options::default().runtime(id).max_wait(Duration::from_millis(20));
    assert_eq!(verify_none(scoped()).unwrap_err().tasks().len(), 1);
    let baseline = scoped().ignore_current();
    assert!(verify_none(baseline.clone()).is_ok());
    let rx = c.receiver();
    rt.block_on(async move {
        parkwatch::spawn(async move { rx.recv().await });
    })
    .unwrap();
    let after = verify_none(baseline).unwrap_err();
    assert_eq!(after.tasks().len(), 1, "only the task spawned after the baseline");
    c.close().unwrap();
    verify_none(scoped().max_wait(Duration::from_secs(2))).unwrap();
}

#[test]
fn verify_none_from_a_task_skips_the_caller_and_its_ancestors() {
    let rt = parkwatch::Runtime::new().unwrap();
    rt.block_on(async {
        let checker = parkwatch::spawn(async {
            // The main task awaits this one: it is not a leak.
            parkwatch::spawn(async {
                parkwatch::time::sleep(Duration::from_millis(5)).await;
            });
            parkwatch_probe::verify_none_async(Options::default()).await
        });
        checker.await.unwrap().unwrap();
    })
    .unwrap();
}
