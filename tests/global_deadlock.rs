//! Go's global deadlock detection (`checkdead`), as parkwatch gives it:
//! the scenarios that must end in `Err(Deadlock)` with the right wait
//! reasons, the ones that must not (timers, outside wakers, threads running
//! user code), the latency of the verdict, and `parkwatch::run` /
//! `#[parkwatch::main]` exiting with status 2 and Go's report.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use parkwatch::{chan, time, Chan, Deadlock, TaskKind, TaskState};

const HEADER: &str = "fatal error: all tasks are asleep - deadlock!";

/// Runs `fut` on a fresh runtime and expects a global deadlock.
fn expect_deadlock<F: std::future::Future>(fut: F) -> Deadlock
where
    F::Output: std::fmt::Debug,
{
    let rt = parkwatch::Runtime::new().expect("runtime");
    match rt.block_on(fut) {
        Ok(v) => panic!("expected a global deadlock, the main task completed with {v:?}"),
        Err(d) => {
            assert!(d.is_global(), "expected a global deadlock, got:\n{d}");
            let report = d.to_string();
            assert!(report.starts_with(HEADER), "report does not start with the header:\n{report}");
            assert_eq!(report, d.report());
            d
        }
    }
}

/// Runs `fut` on a fresh runtime and expects it to complete.
fn expect_ok<F: std::future::Future>(fut: F) -> F::Output {
    let rt = parkwatch::Runtime::new().expect("runtime");
    match rt.block_on(fut) {
        Ok(v) => v,
        Err(d) => panic!("unexpected deadlock verdict:\n{d}"),
    }
}

/// The wait reasons of the deadlock's tasks, sorted, as Go's strings.
fn reasons(d: &Deadlock) -> Vec<String> {
    let mut r: Vec<String> = d
        .tasks()
        .iter()
        .map(|t| match t.wait_reason {
            Some(w) => w.to_string(),
            None => format!("<{:?}, no wait reason>", t.state),
        })
        .collect();
    r.sort();
    r
}

fn assert_all_parked(d: &Deadlock) {
    for t in d.tasks() {
        assert_eq!(t.state, TaskState::Parked, "task {} in a global deadlock is not parked:\n{d}", t.id);
        assert!(t.wait_reason.is_some());
    }
}

/// The `goroutine N [reason]:` header lines of a debug=2 report.
fn goroutine_headers(report: &str) -> Vec<String> {
    report.lines().filter(|l| l.starts_with("goroutine ") && l.ends_with("]:")).map(str::to_owned).collect()
}

// ---------------------------------------------------------------------------
// Deadlocks
// ---------------------------------------------------------------------------

#[test]
fn receive_with_no_sender() {
    let d = expect_deadlock(async {
        let c = chan::<i32>(0);
        c.recv().await
    });
    assert_eq!(reasons(&d), ["chan receive"]);
    assert_all_parked(&d);
    let report = d.to_string();
    assert!(report.starts_with(&format!("{HEADER}\n\ngoroutine ")), "{report}");
    let heads = goroutine_headers(&report);
    assert_eq!(heads.len(), 1, "{report}");
    assert!(heads[0].ends_with(" [chan receive]:"), "{report}");
    // The main task's id is in its header.
    let id = d.tasks()[0].id;
    assert_eq!(heads[0], format!("goroutine {id} [chan receive]:"));
}

#[test]
fn empty_select() {
    let d = expect_deadlock(async {
        parkwatch::select! {}
    });
    assert_eq!(reasons(&d), ["select (no cases)"]);
    assert_all_parked(&d);
    assert!(d.to_string().contains("[select (no cases)]:"), "{d}");
}

#[test]
fn send_then_receive_on_one_unbuffered_channel() {
    let d = expect_deadlock(async {
        let c = chan::<i32>(0);
        c.send(1).await.unwrap();
        c.recv().await
    });
    assert_eq!(reasons(&d), ["chan send"]);
    assert!(d.to_string().contains("[chan send]:"), "{d}");
}

#[test]
fn two_task_cycle() {
    // Each task receives from the other first.
    let d = expect_deadlock(async {
        let a = chan::<i32>(0);
        let b = chan::<i32>(0);
        let (ra, tb) = (a.receiver(), b.sender());
        parkwatch::spawn(async move {
            let v = ra.recv().await.unwrap();
            tb.send(v + 1).await.unwrap();
        });
        let v = b.recv().await;
        a.send(1).await.unwrap();
        v
    });
    assert_eq!(reasons(&d), ["chan receive", "chan receive"]);
    assert_eq!(d.tasks().len(), 2);
    assert_all_parked(&d);
    assert_eq!(goroutine_headers(&d.to_string()).len(), 2, "{d}");
}

#[test]
fn buffered_channel_fed_past_capacity() {
    let c = chan::<i32>(20);
    let c2 = c.clone();
    let d = expect_deadlock(async move {
        for i in 0..100 {
            c2.send(i).await.unwrap();
        }
    });
    assert_eq!(reasons(&d), ["chan send"]);
    assert_eq!(c.len(), 20, "the buffer holds exactly 20 values");
    assert_eq!(c.try_recv(), Ok(0));
}

#[test]
fn nil_channel_receive() {
    let d = expect_deadlock(async {
        let n = Chan::<i32>::nil();
        n.recv().await
    });
    assert_eq!(reasons(&d), ["chan receive (nil chan)"]);
    assert!(d.to_string().contains("[chan receive (nil chan)]:"), "{d}");
}

#[test]
fn nil_channel_send() {
    let d = expect_deadlock(async {
        let n = Chan::<i32>::nil();
        n.send(1).await
    });
    assert_eq!(reasons(&d), ["chan send (nil chan)"]);
}

#[test]
fn select_with_no_counterparts() {
    let d = expect_deadlock(async {
        let a = chan::<i32>(0);
        let b = chan::<i32>(0);
        parkwatch::select! {
            recv(a) -> v => v,
            send(b, 1) -> _r => None,
            recv(Chan::<i32>::nil()) -> v => v,
        }
    });
    assert_eq!(reasons(&d), ["select"]);
    assert!(d.to_string().contains("[select]:"), "{d}");
}

#[test]
fn many_tasks_all_blocked() {
    // Go's classic: workers waiting on a channel nobody closes, main waiting
    // for them. Every task is in the report.
    let d = expect_deadlock(async {
        let jobs = chan::<i32>(0);
        let done = chan::<()>(0);
        for _ in 0..10 {
            let (j, dn) = (jobs.receiver(), done.sender());
            parkwatch::spawn(async move {
                while let Some(_v) = j.recv().await {}
                dn.send(()).await.unwrap();
            });
        }
        for i in 0..5 {
            jobs.send(i).await.unwrap();
        }
        // Forgot to close(jobs).
        for _ in 0..10 {
            done.recv().await.unwrap();
        }
    });
    assert_eq!(d.tasks().len(), 11);
    assert!(reasons(&d).iter().all(|r| r == "chan receive"), "{:?}\n{d}", reasons(&d));
    assert_eq!(goroutine_headers(&d.to_string()).len(), 11, "{d}");
}

#[test]
fn report_shows_the_current_wait_not_the_previous_one() {
    // The main task parks in a send (completed by a helper), then parks for
    // good in a receive on another channel: the verdict must show the
    // receive (reason, channel), not the earlier send.
    let rt = parkwatch::Runtime::new().unwrap();
    for round in 0..100 {
        let c = chan::<i32>(0);
        let d = chan::<i32>(0);
        let (c2, d2) = (c.clone(), d.clone());
        let r = rt.block_on(async move {
            let rx = c2.receiver();
            let main_id = parkwatch::task::id().unwrap();
            parkwatch::spawn(async move {
                // Receive only once main is parked in its send.
                for _ in 0..5_000 {
                    let parked =
                        parkwatch::snapshot().tasks().iter().any(|t| t.id == main_id && t.state == TaskState::Parked);
                    if parked {
                        break;
                    }
                    parkwatch::task::yield_now().await;
                }
                rx.recv().await;
            });
            c2.send(1).await.unwrap(); // parks until the helper receives
            d2.recv().await // parks forever
        });
        let dl = r.unwrap_err();
        assert!(dl.is_global());
        assert_eq!(dl.tasks().len(), 1, "round {round}:\n{dl}");
        let t = &dl.tasks()[0];
        assert_eq!(
            t.wait_reason.map(|w| w.to_string()).as_deref(),
            Some("chan receive"),
            "round {round}: stale wait reported:\n{dl}"
        );
        let on: Vec<u64> = t.waits_on.iter().map(|w| w.resource.0).collect();
        assert_eq!(on, [d.id()], "round {round}: waits_on {on:?}, c = {}, d = {}", c.id(), d.id());
        assert!(dl.to_string().contains("[chan receive]:"), "round {round}:\n{dl}");
    }
}

#[test]
fn registered_thread_blocked_plus_main_blocked() {
    let d = expect_deadlock(async {
        let c = chan::<i32>(0);
        let rx = c.receiver();
        let started = chan::<()>(1);
        let st = started.sender();
        let _t = parkwatch::thread::spawn(move || {
            st.send_blocking(()).unwrap();
            rx.recv_blocking()
        });
        started.recv().await.unwrap();
        let other = chan::<i32>(0);
        other.recv().await
    });
    assert_eq!(d.tasks().len(), 2, "{d}");
    assert_all_parked(&d);
    assert_eq!(reasons(&d), ["chan receive", "chan receive"]);
    let thread = d.tasks().iter().find(|t| t.kind == TaskKind::Thread).expect("the thread is in the deadlock");
    assert_eq!(thread.wait_reason.unwrap().to_string(), "chan receive");
    assert!(d.tasks().iter().any(|t| t.kind == TaskKind::Async));
    assert!(d.to_string().contains(&format!("goroutine {} [chan receive]:", thread.id)), "{d}");
}

#[test]
fn registered_thread_parks_last_gives_verdict() {
    // The main task parks first; the thread's park is the one that makes
    // everything asleep.
    let d = expect_deadlock(async {
        let go = chan::<()>(0);
        let g = go.clone();
        let c = chan::<i32>(0);
        let rx = c.receiver();
        let _t = parkwatch::thread::spawn(move || {
            // Wait until main is parked in its receive on `go`: the send
            // completes only when main receives.
            g.send_blocking(()).unwrap();
            std::thread::sleep(Duration::from_millis(20));
            rx.recv_blocking()
        });
        go.recv().await.unwrap();
        let never = chan::<i32>(0);
        never.recv().await
    });
    assert!(d.tasks().iter().any(|t| t.kind == TaskKind::Thread));
    assert_eq!(reasons(&d), ["chan receive", "chan receive"]);
}

#[test]
fn deadlock_after_timer_fires() {
    // A task waiting on time::after is not stuck while the timer is pending;
    // once it fired and that task is gone, main's wait is a deadlock.
    let t0 = Instant::now();
    let d = expect_deadlock(async {
        let h = parkwatch::spawn(async {
            time::after(Duration::from_millis(60)).recv().await;
        });
        drop(h);
        let c = chan::<i32>(0);
        c.recv().await
    });
    assert!(t0.elapsed() >= Duration::from_millis(55), "verdict came before the timer fired: {:?}", t0.elapsed());
    assert_eq!(reasons(&d), ["chan receive"]);
}

#[test]
fn unlistened_ticker_does_not_hide_deadlock() {
    // Go gives up when any timer is pending; parkwatch does not: a ticker
    // nobody waits on can wake nobody.
    let d = expect_deadlock(async {
        let _ticker = time::tick(Duration::from_millis(10));
        let _after = time::after(Duration::from_secs(60));
        let c = chan::<i32>(0);
        c.recv().await
    });
    assert_eq!(reasons(&d), ["chan receive"]);
}

#[test]
fn verdict_latency() {
    // Time from just before the last park to the Err.
    let rt = parkwatch::Runtime::new().unwrap();
    let mut samples = Vec::new();
    for _ in 0..5 {
        let parked_at = Arc::new(Mutex::new(None::<Instant>));
        let p = parked_at.clone();
        let r = rt.block_on(async move {
            let c = chan::<i32>(0);
            *p.lock().unwrap() = Some(Instant::now());
            c.recv().await
        });
        let end = Instant::now();
        assert!(r.unwrap_err().is_global());
        let start = parked_at.lock().unwrap().expect("main ran");
        samples.push(end - start);
    }
    println!("verdict latency (last park -> Err): {samples:?}");
    let worst = *samples.iter().max().unwrap();
    // The first park of a process may pay one-time costs; judge the rest.
    let warm_worst = *samples[1..].iter().max().unwrap();
    println!("warm worst: {warm_worst:?}, overall worst: {worst:?}");
    assert!(warm_worst < Duration::from_millis(500), "verdict took {warm_worst:?} (samples {samples:?})");
}

// ---------------------------------------------------------------------------
// Not deadlocks
// ---------------------------------------------------------------------------

#[test]
fn pending_sleep_then_send_is_not_deadlock() {
    let v = expect_ok(async {
        let c = chan::<i32>(0);
        let tx = c.sender();
        parkwatch::spawn(async move {
            time::sleep(Duration::from_millis(50)).await;
            tx.send(1).await.unwrap();
        });
        c.recv().await
    });
    assert_eq!(v, Some(1));
}

#[test]
fn main_waiting_on_after_is_not_deadlock() {
    let t0 = Instant::now();
    let v = expect_ok(async { time::after(Duration::from_millis(50)).recv().await });
    assert!(v.is_some());
    assert!(t0.elapsed() >= Duration::from_millis(45));
    // In a select with a channel nobody sends on.
    let r = expect_ok(async {
        let c = chan::<i32>(0);
        parkwatch::select! {
            recv(c) -> _v => "value",
            recv(time::after(Duration::from_millis(30))) -> _t => "timeout",
        }
    });
    assert_eq!(r, "timeout");
}

#[test]
fn task_listening_to_ticker_is_not_deadlock() {
    let n = expect_ok(async {
        let done = chan::<u32>(0);
        let tx = done.sender();
        parkwatch::spawn(async move {
            let t = time::tick(Duration::from_millis(5));
            let mut n = 0;
            for _ in 0..5 {
                t.recv().await.unwrap();
                n += 1;
            }
            tx.send(n).await.unwrap();
        });
        done.recv().await.unwrap()
    });
    assert_eq!(n, 5);
}

#[test]
fn registered_thread_sleeping_then_sending_is_not_deadlock() {
    let v = expect_ok(async {
        let c = chan::<i32>(0);
        let tx = c.sender();
        let _t = parkwatch::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            tx.send_blocking(3).unwrap();
        });
        c.recv().await
    });
    assert_eq!(v, Some(3));
}

#[test]
fn token_ring_with_sleeps_is_not_deadlock() {
    // 4 tasks pass a token around; each hop sleeps 2 ms. At every moment
    // all tasks but one are parked on a channel, and the one with the token
    // is sleeping or about to send.
    const HOPS: u32 = 60;
    let (hops, elapsed) = expect_ok(async {
        let ring: Vec<Chan<u32>> = (0..4).map(|_| chan(0)).collect();
        let done = chan::<u32>(0);
        for i in 0..4 {
            let rx = ring[i].receiver();
            let tx = ring[(i + 1) % 4].sender();
            let dn = done.sender();
            parkwatch::spawn(async move {
                while let Some(token) = rx.recv().await {
                    time::sleep(Duration::from_millis(2)).await;
                    if token + 1 == HOPS {
                        dn.send(token + 1).await.unwrap();
                    } else {
                        tx.send(token + 1).await.unwrap();
                    }
                }
            });
        }
        let t0 = Instant::now();
        ring[0].send(0).await.unwrap();
        let hops = done.recv().await.unwrap();
        for c in &ring {
            c.close().unwrap();
        }
        (hops, t0.elapsed())
    });
    assert_eq!(hops, HOPS);
    assert!(elapsed >= Duration::from_millis(2 * HOPS as u64 - 5), "{elapsed:?}");
}

#[test]
fn tokio_timer_in_tokio_select_is_not_deadlock() {
    // A task waiting in tokio::select! on a tokio timer and a parkwatch
    // receive holds an outside waker: no verdict while it waits.
    let v = expect_ok(async {
        let c = chan::<&'static str>(0);
        let never = chan::<&'static str>(0);
        let tx = c.sender();
        parkwatch::spawn(async move {
            let msg = tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(50)) => "timer",
                v = never.recv() => v.unwrap_or("closed"),
            };
            tx.send(msg).await.unwrap();
        });
        c.recv().await
    });
    assert_eq!(v, Some("timer"));
    // The main task itself in the same position.
    let v = expect_ok(async {
        let c = chan::<i32>(0);
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(30)) => "timer",
            _ = c.recv() => "value",
        }
    });
    assert_eq!(v, "timer");
}

#[test]
fn tokio_oneshot_outside_parkwatch_is_not_deadlock() {
    // A task waiting on a foreign future (a tokio oneshot) completed by a
    // plain OS thread parkwatch does not know about.
    let v = expect_ok(async {
        let (tx, rx) = tokio::sync::oneshot::channel::<i32>();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            let _ = tx.send(9);
        });
        rx.await.unwrap()
    });
    assert_eq!(v, 9);
}

#[test]
fn busy_task_is_not_deadlock() {
    // Main is parked while another task keeps running (yielding): no verdict.
    let v = expect_ok(async {
        let c = chan::<u64>(0);
        let tx = c.sender();
        parkwatch::spawn(async move {
            let mut n = 0u64;
            let t0 = Instant::now();
            while t0.elapsed() < Duration::from_millis(50) {
                n += 1;
                parkwatch::task::yield_now().await;
            }
            tx.send(n).await.unwrap();
        });
        c.recv().await.unwrap()
    });
    assert!(v > 0);
}

#[test]
fn runtime_reusable_after_deadlock() {
    let rt = parkwatch::Runtime::new().unwrap();
    let r = rt.block_on(async { chan::<i32>(0).recv().await });
    assert!(r.unwrap_err().is_global());
    let v = rt.block_on(async {
        let c = chan::<i32>(1);
        c.send(5).await.unwrap();
        c.recv().await
    });
    assert_eq!(v.unwrap(), Some(5));
}

// ---------------------------------------------------------------------------
// parkwatch::run and #[parkwatch::main]: exit status 2 and the report
// ---------------------------------------------------------------------------

const CHILD_ENV: &str = "PARKWATCH_CHILD";

#[parkwatch::main]
async fn deadlocking_main() {
    let c = chan::<()>(0);
    let tx = c.sender();
    // A task blocked forever sending on `c`: nobody receives on it.
    parkwatch::spawn(async move {
        let _ = tx.send(()).await;
    });
    // Main waits on a channel nobody sends on.
    let other = chan::<()>(0);
    other.recv().await;
}

#[parkwatch::main]
async fn computing_main(x: i32) -> i32 {
    let c = chan::<i32>(0);
    let tx = c.sender();
    parkwatch::spawn(async move { tx.send(x * 2).await.unwrap() });
    c.recv().await.unwrap()
}

/// The child side: does nothing unless the parent test set `PARKWATCH_CHILD`.
#[test]
fn child_process_entry() {
    match std::env::var(CHILD_ENV).as_deref() {
        Ok("run") => {
            parkwatch::run(async {
                let c = chan::<i32>(0);
                let tx = c.sender();
                parkwatch::spawn(async move {
                    let d = chan::<i32>(0);
                    let _ = d.recv().await; // blocked forever too
                    tx.send(1).await
                });
                let never = chan::<i32>(0);
                never.recv().await
            });
            panic!("parkwatch::run returned from a deadlock");
        }
        Ok("main") => {
            deadlocking_main();
            panic!("#[parkwatch::main] returned from a deadlock");
        }
        Ok("ok") => {
            assert_eq!(parkwatch::run(async { 7 }), 7);
            std::process::exit(0);
        }
        _ => {}
    }
}

fn run_child(mode: &str) -> std::process::Output {
    std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "child_process_entry", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, mode)
        .output()
        .expect("re-executing the test binary")
}

#[test]
fn run_exits_with_status_2_and_report() {
    let out = run_child("run");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "exit status; stderr:\n{stderr}");
    let at = stderr.find(HEADER).unwrap_or_else(|| panic!("no header in stderr:\n{stderr}"));
    let report = &stderr[at..];
    assert!(report.starts_with(&format!("{HEADER}\n\ngoroutine ")), "header, blank line, goroutine:\n{report}");
    let heads = goroutine_headers(report);
    assert_eq!(heads.len(), 2, "two tasks in the report:\n{report}");
    for h in &heads {
        assert!(h.ends_with(" [chan receive]:"), "{h}\n{report}");
        let id = &h["goroutine ".len()..h.len() - " [chan receive]:".len()];
        assert!(id.parse::<u64>().is_ok(), "goroutine id {id:?} in {h:?}");
    }
    assert!(!stderr.contains("returned from a deadlock"), "{stderr}");
}

#[test]
fn main_attribute_exits_with_status_2() {
    let out = run_child("main");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "exit status; stderr:\n{stderr}");
    let at = stderr.find(HEADER).unwrap_or_else(|| panic!("no header in stderr:\n{stderr}"));
    let report = &stderr[at..];
    assert!(report.starts_with(&format!("{HEADER}\n\ngoroutine ")), "{report}");
    let mut heads: Vec<String> =
        goroutine_headers(report).iter().map(|h| h[h.find(" [").unwrap()..].to_owned()).collect();
    heads.sort();
    assert_eq!(heads, [" [chan receive]:", " [chan send]:"], "{report}");
}

#[test]
fn run_without_deadlock_exits_normally() {
    let out = run_child("ok");
    assert_eq!(out.status.code(), Some(0), "stderr:\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(!String::from_utf8_lossy(&out.stderr).contains(HEADER));
}

#[test]
fn main_attribute_returns_value() {
    assert_eq!(computing_main(21), 42);
    assert_eq!(parkwatch::run(async { "done" }), "done");
}
