//! Registered OS threads (`parkwatch::thread::spawn`) as tasks, blocking
//! channel operations between threads, what snapshots show of threads and
//! named tasks, and `task::id()`.

use std::collections::HashSet;
use std::time::Duration;

use parkwatch::{chan, snapshot, Chan, ResourceId, TaskId, TaskInfo, TaskKind, TaskState, TryRecvError};

fn run<F: std::future::Future>(fut: F) -> F::Output {
    let rt = parkwatch::Runtime::new().expect("runtime");
    match rt.block_on(fut) {
        Ok(v) => v,
        Err(d) => panic!("unexpected deadlock:\n{d}"),
    }
}

fn find(id: TaskId) -> Option<TaskInfo> {
    snapshot().tasks().iter().find(|t| t.id == id).cloned()
}

/// Polls snapshots (bounded) until task `id` matches `pred`; returns that view.
async fn wait_for(id: TaskId, what: &str, pred: impl Fn(&TaskInfo) -> bool) -> TaskInfo {
    let mut last = None;
    for _ in 0..5_000 {
        match find(id) {
            Some(t) if pred(&t) => return t,
            other => last = other,
        }
        parkwatch::time::sleep(Duration::from_millis(1)).await;
    }
    panic!("task {id} never became {what}; last seen: {last:?}");
}

fn parked_in(reason: &'static str) -> impl Fn(&TaskInfo) -> bool {
    move |t| t.state == TaskState::Parked && t.wait_reason.map(|r| r.to_string()).as_deref() == Some(reason)
}

// ---------------------------------------------------------------------------
// Threads in snapshots
// ---------------------------------------------------------------------------

#[test]
fn registered_thread_is_a_task_of_kind_thread() {
    // Outside any runtime.
    let t = parkwatch::thread::spawn(|| {
        let me = parkwatch::task::id().expect("a registered thread has a task id");
        let info = find(me).expect("the thread is in the snapshot");
        (me, info)
    });
    let (id, info) = t.join().unwrap();
    assert_eq!(info.kind, TaskKind::Thread);
    assert_eq!(info.state, TaskState::Running, "a thread running user code is Running");
    assert!(info.wait_reason.is_none());
    assert!(info.spawned_at.file.ends_with("threads.rs"), "spawned_at {:?}", info.spawned_at);
    // Gone once it ended.
    assert!(find(id).is_none(), "finished thread still in the snapshot");
}

#[test]
fn registered_thread_inside_runtime_has_parent_and_runtime() {
    let rt = parkwatch::Runtime::new().unwrap();
    let rt_id = rt.id();
    let (main_id, info) = rt
        .block_on(async {
            let main_id = parkwatch::task::id().unwrap();
            let out = chan::<TaskInfo>(1);
            let tx = out.sender();
            let _t = parkwatch::thread::spawn(move || {
                let me = parkwatch::task::id().unwrap();
                tx.send_blocking(find(me).unwrap()).unwrap();
            });
            (main_id, out.recv().await.unwrap())
        })
        .unwrap();
    assert_eq!(info.kind, TaskKind::Thread);
    assert_eq!(info.parent, Some(main_id));
    assert_eq!(info.runtime, rt_id);
}

#[test]
fn plain_std_thread_is_not_a_task() {
    let t = std::thread::spawn(parkwatch::task::id);
    assert_eq!(t.join().unwrap(), None);
}

/// Polls (bounded) until task `id` has left the registry.
async fn wait_gone(id: TaskId) {
    for _ in 0..5_000 {
        if find(id).is_none() {
            return;
        }
        parkwatch::time::sleep(Duration::from_millis(1)).await;
    }
    panic!("task {id} still in the snapshot: {:?}", find(id));
}

#[test]
fn thread_parked_in_recv_blocking_shows_in_snapshot() {
    run(async {
        let c = chan::<i32>(0);
        let rx = c.receiver();
        let ids = chan::<TaskId>(1);
        let id_tx = ids.sender();
        let res = chan::<Option<i32>>(1);
        let res_tx = res.sender();
        parkwatch::thread::spawn(move || {
            id_tx.send_blocking(parkwatch::task::id().unwrap()).unwrap();
            let v = rx.recv_blocking();
            res_tx.send_blocking(v).unwrap();
        });
        let id = ids.recv().await.unwrap();
        let info = wait_for(id, "parked in chan receive", parked_in("chan receive")).await;
        assert_eq!(info.kind, TaskKind::Thread);
        let at = info.parked_at.clone().expect("a parked task has a park location");
        assert!(at.file.ends_with("threads.rs"), "parked_at {at:?}");
        assert!(info.parked_for.is_some());
        assert!(
            info.waits_on.iter().any(|w| w.resource == ResourceId(c.id()) && w.op.to_string() == "chan receive"),
            "waits_on {:?}, channel {}",
            info.waits_on,
            c.id()
        );
        // Release it: it gets the value, and leaves the registry when it ends.
        c.send(4).await.unwrap();
        assert_eq!(res.recv().await.unwrap(), Some(4));
        wait_gone(id).await;
    });
}

#[test]
fn thread_parked_in_send_and_select_show_in_snapshot() {
    run(async {
        let c = chan::<i32>(0);
        let d = chan::<i32>(0);
        let ids = chan::<TaskId>(2);
        let (tx, id_tx) = (c.sender(), ids.sender());
        parkwatch::thread::spawn(move || {
            id_tx.send_blocking(parkwatch::task::id().unwrap()).unwrap();
            tx.send_blocking(1).unwrap();
        });
        let (c2, d2, id_tx) = (c.clone(), d.clone(), ids.sender());
        parkwatch::thread::spawn(move || {
            id_tx.send_blocking(parkwatch::task::id().unwrap()).unwrap();
            parkwatch::select_blocking! {
                recv(d2) -> v => v,
                send(c2, 2) -> _r => None,
                recv(Chan::<i32>::nil()) -> v => v,
            }
        });
        let a = ids.recv().await.unwrap();
        let b = ids.recv().await.unwrap();
        // Which is which depends on scheduling: look at both.
        let mut seen = Vec::new();
        for id in [a, b] {
            let t = wait_for(id, "parked", |t| t.state == TaskState::Parked).await;
            assert_eq!(t.kind, TaskKind::Thread);
            seen.push(t.wait_reason.unwrap().to_string());
        }
        seen.sort();
        assert_eq!(seen, ["chan send", "select"]);
        // Drain both.
        let mut got = vec![c.recv().await.unwrap(), c.recv().await.unwrap()];
        got.sort();
        assert_eq!(got, [1, 2]);
        wait_gone(a).await;
        wait_gone(b).await;
    });
}

#[test]
fn thread_sleeping_in_user_code_is_running_not_parked() {
    run(async {
        let ids = chan::<TaskId>(1);
        let go = chan::<()>(0);
        let (id_tx, go_rx) = (ids.sender(), go.receiver());
        parkwatch::thread::spawn(move || {
            id_tx.send_blocking(parkwatch::task::id().unwrap()).unwrap();
            // Busy in "user code" (a plain std sleep) until told to stop.
            while go_rx.try_recv() == Err(TryRecvError::Empty) {
                std::thread::sleep(Duration::from_millis(1));
            }
        });
        let id = ids.recv().await.unwrap();
        for _ in 0..20 {
            let t = find(id).expect("thread alive");
            assert_eq!(t.state, TaskState::Running, "{t:?}");
            assert!(t.wait_reason.is_none());
            parkwatch::time::sleep(Duration::from_millis(1)).await;
        }
        go.close().unwrap();
        wait_gone(id).await;
    });
}

#[test]
fn panicking_thread_leaves_the_registry() {
    let (id_tx, id_rx) = std::sync::mpsc::channel();
    let t = parkwatch::thread::spawn(move || {
        id_tx.send(parkwatch::task::id().unwrap()).unwrap();
        panic!("boom (expected by the test)");
    });
    assert!(t.join().is_err());
    let id = id_rx.recv().unwrap();
    assert!(find(id).is_none(), "a thread that panicked is still registered");
}

// ---------------------------------------------------------------------------
// Blocking operations between threads
// ---------------------------------------------------------------------------

#[test]
fn blocking_ping_pong_between_two_threads() {
    const N: u32 = 5_000;
    let ping = chan::<u32>(0);
    let pong = chan::<u32>(0);
    let (ping_rx, pong_tx) = (ping.receiver(), pong.sender());
    let echo = parkwatch::thread::spawn(move || {
        let mut n = 0;
        for v in ping_rx.iter() {
            pong_tx.send_blocking(v + 1).unwrap();
            n += 1;
        }
        n
    });
    let (ping_tx, pong_rx) = (ping.sender(), pong.receiver());
    let driver = parkwatch::thread::spawn(move || {
        for i in 0..N {
            ping_tx.send_blocking(i).unwrap();
            assert_eq!(pong_rx.recv_blocking(), Some(i + 1));
        }
        ping_tx.close().unwrap();
    });
    driver.join().unwrap();
    assert_eq!(echo.join().unwrap(), N);
}

#[test]
fn blocking_pipeline_of_threads() {
    // Thread stages connected by buffered and unbuffered channels.
    const N: u64 = 20_000;
    let stages = 4;
    let chans: Vec<Chan<u64>> = (0..=stages).map(|i| chan(if i % 2 == 0 { 0 } else { 8 })).collect();
    let mut handles = Vec::new();
    for i in 0..stages {
        let (rx, tx) = (chans[i].receiver(), chans[i + 1].sender());
        handles.push(parkwatch::thread::spawn(move || {
            for v in rx.iter() {
                tx.send_blocking(v * 2).unwrap();
            }
            tx.close().unwrap();
        }));
    }
    let src = chans[0].sender();
    let feeder = parkwatch::thread::spawn(move || {
        for v in 0..N {
            src.send_blocking(v).unwrap();
        }
        src.close().unwrap();
    });
    let out: Vec<u64> = chans[stages].iter().collect();
    feeder.join().unwrap();
    for h in handles {
        h.join().unwrap();
    }
    assert_eq!(out, (0..N).map(|v| v * 16).collect::<Vec<_>>());
}

// ---------------------------------------------------------------------------
// Named tasks
// ---------------------------------------------------------------------------

#[test]
fn task_builder_names_appear_in_snapshots() {
    run(async {
        let c = chan::<i32>(0);
        let mut handles = Vec::new();
        for i in 0..3 {
            let rx = c.receiver();
            handles.push(
                parkwatch::task::Builder::new().name(format!("worker-{i}")).spawn(async move { rx.recv().await }),
            );
        }
        let rx = c.receiver();
        let unnamed = parkwatch::spawn(async move { rx.recv().await });
        for (i, h) in handles.iter().enumerate() {
            let t = wait_for(h.id(), "parked", parked_in("chan receive")).await;
            assert_eq!(t.name.as_deref(), Some(format!("worker-{i}").as_str()));
            assert_eq!(t.kind, TaskKind::Async);
            assert!(t.spawned_at.file.ends_with("threads.rs"), "{:?}", t.spawned_at);
            assert_eq!(t.parent, parkwatch::task::id());
        }
        let t = wait_for(unnamed.id(), "parked", parked_in("chan receive")).await;
        assert_eq!(t.name, None);
        // Names are in the text dump too.
        let text = parkwatch::dump::text(&snapshot(), 1);
        assert!(text.contains("worker-1"), "debug=1 dump lacks the task name:\n{text}");
        c.close().unwrap();
        for h in handles {
            assert_eq!(h.await.unwrap(), None);
        }
        assert_eq!(unnamed.await.unwrap(), None);
    });
}

#[test]
fn named_task_running_shows_its_name() {
    run(async {
        let h = parkwatch::task::Builder::new().name("self-reporter").spawn(async {
            let me = parkwatch::task::id().unwrap();
            let t = find(me).unwrap();
            (t.name, t.state)
        });
        let (name, state) = h.await.unwrap();
        assert_eq!(name.as_deref(), Some("self-reporter"));
        assert_eq!(state, TaskState::Running);
    });
}

// ---------------------------------------------------------------------------
// task::id()
// ---------------------------------------------------------------------------

#[test]
fn task_id_outside_and_inside() {
    assert_eq!(parkwatch::task::id(), None);
    let (main_id, pairs) = run(async {
        let main_id = parkwatch::task::id().expect("the main task has an id");
        let mut pairs = Vec::new();
        for _ in 0..50 {
            let h = parkwatch::spawn(async { parkwatch::task::id().unwrap() });
            let handle_id = h.id();
            let inner = h.await.unwrap();
            pairs.push((handle_id, inner));
        }
        // Stable across awaits within one task.
        parkwatch::task::yield_now().await;
        assert_eq!(parkwatch::task::id(), Some(main_id));
        (main_id, pairs)
    });
    assert_eq!(parkwatch::task::id(), None, "id leaks out of block_on");
    let mut seen = HashSet::new();
    seen.insert(main_id);
    for (handle_id, inner) in pairs {
        assert_eq!(handle_id, inner, "JoinHandle::id differs from the task's own id");
        assert!(seen.insert(inner), "task id {inner} reused");
    }
}

#[test]
fn task_id_unique_across_threads_and_runtimes() {
    let mut ids = HashSet::new();
    let threads: Vec<_> = (0..8).map(|_| parkwatch::thread::spawn(|| parkwatch::task::id().unwrap())).collect();
    for t in threads {
        assert!(ids.insert(t.join().unwrap()));
    }
    for _ in 0..3 {
        let id = run(async { parkwatch::task::id().unwrap() });
        assert!(ids.insert(id), "id {id} reused by another runtime's main task");
    }
    // Task ids are never reused: new ones are larger than all of these.
    let newest = run(async { parkwatch::spawn(async { parkwatch::task::id().unwrap() }).await.unwrap() });
    assert!(ids.iter().all(|&i| i < newest), "{newest} vs {ids:?}");
}
