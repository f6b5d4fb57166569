//! `select!`, `select_blocking!` and the dynamic `Select`: fairness, default,
//! nil cases, send cases, no self-rendezvous, many selecting senders, threads,
//! operand forms, syntax, timeouts and cancellation.

#![allow(unused_braces)]

use std::collections::HashSet;
use std::time::{Duration, Instant};

use parkwatch::{chan, snapshot, time, Chan, SendError, TaskId, TaskState, TryRecvError};

fn run<F: std::future::Future>(fut: F) -> F::Output {
    let rt = parkwatch::Runtime::new().expect("runtime");
    match rt.block_on(fut) {
        Ok(v) => v,
        Err(d) => panic!("unexpected deadlock:\n{d}"),
    }
}

async fn wait_parked(id: TaskId, reason: &str) {
    for _ in 0..5_000 {
        if snapshot().tasks().iter().any(|t| {
            t.id == id
                && t.state == TaskState::Parked
                && t.wait_reason.map(|r| r.to_string()).as_deref() == Some(reason)
        }) {
            return;
        }
        time::sleep(Duration::from_millis(1)).await;
    }
    panic!("task {id} never showed as parked in [{reason}]");
}

/// A spawned task awaiting a plain `recv`: compiles with any working parkwatch.
const CONTROL_SNIPPET: &str = r#"
    pub fn f() {
        let c = parkwatch::chan::<i32>(0);
        parkwatch::spawn(async move { c.recv().await });
    }
"#;

/// Runs rustc (type-check only) on `src` as a library crate against `rlib`.
fn rustc_check(name: &str, src: &str, rlib: &std::path::Path, deps: &std::path::Path) -> Result<(), String> {
    let dir = std::env::temp_dir().join(format!("parkwatch-typecheck-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let file = dir.join("lib.rs");
    std::fs::write(&file, src).map_err(|e| e.to_string())?;
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let out = std::process::Command::new(rustc)
        .args(["--edition", "2021", "--crate-type", "lib", "--crate-name", name, "--emit=metadata"])
        .arg("-o")
        .arg(dir.join("out.rmeta"))
        .arg("-L")
        .arg(format!("dependency={}", deps.display()))
        .arg("--extern")
        .arg(format!("parkwatch={}", rlib.display()))
        .arg(&file)
        .output()
        .map_err(|e| format!("cannot run rustc: {e}"))?;
    let _ = std::fs::remove_dir_all(&dir);
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

/// Type-checks `src` as a small library crate against a parkwatch rlib next
/// to this test binary (rustc, metadata only: about a second). Used for
/// properties that must hold at compile time (a future being `Send`), so
/// that their failure fails one test instead of the whole file. Candidates
/// are tried newest first; the first one that accepts the control snippet
/// is used (the deps folder may hold builds with other flags).
fn typecheck_snippet(name: &str, src: &str) -> Result<(), String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let deps = exe.parent().ok_or("no deps dir")?;
    let mut rlibs: Vec<(std::time::SystemTime, std::path::PathBuf)> = std::fs::read_dir(deps)
        .map_err(|e| e.to_string())?
        .filter_map(|e| e.ok())
        .filter(|e| {
            let n = e.file_name().to_string_lossy().into_owned();
            n.starts_with("libparkwatch-") && n.ends_with(".rlib")
        })
        .filter_map(|e| Some((e.metadata().ok()?.modified().ok()?, e.path())))
        .collect();
    rlibs.sort_by_key(|r| std::cmp::Reverse(r.0));
    let mut control_errors = String::new();
    for (_, rlib) in rlibs.iter().take(4) {
        match rustc_check(&format!("{name}_control"), CONTROL_SNIPPET, rlib, deps) {
            Ok(()) => return rustc_check(name, src, rlib, deps),
            Err(e) => control_errors.push_str(&format!("{}:\n{e}\n", rlib.display())),
        }
    }
    Err(format!("no usable libparkwatch rlib in {}:\n{control_errors}", deps.display()))
}

#[test]
fn typecheck_harness_accepts_spawned_recv() {
    // Control for the test below: the harness itself works.
    typecheck_snippet("control", CONTROL_SNIPPET).unwrap_or_else(|e| panic!("control snippet failed:\n{e}"));
}

#[test]
fn select_in_spawned_task_compiles() {
    // A task that awaits select! (or Select::select) must be spawnable: its
    // future must be Send, as with every other parkwatch operation.
    let macro_src = r#"
        pub fn f() {
            let a = parkwatch::chan::<i32>(0);
            let b = parkwatch::chan::<i32>(0);
            parkwatch::spawn(async move {
                parkwatch::select! {
                    recv(a) -> v => v,
                    send(b, 1) -> _r => None,
                }
            });
        }
    "#;
    let dynamic_src = r#"
        pub fn f() {
            let c = parkwatch::chan::<i32>(0);
            parkwatch::spawn(async move {
                let mut sel = parkwatch::Select::new();
                sel.recv(&c);
                sel.select().await.index()
            });
        }
    "#;
    let m = typecheck_snippet("select_macro", macro_src);
    let d = typecheck_snippet("select_dynamic", dynamic_src);
    assert!(
        m.is_ok() && d.is_ok(),
        "a spawned task awaiting a select does not compile (its future is not Send):\n\
         select!: {}\nSelect::select: {}",
        m.err().unwrap_or_else(|| "ok".into()),
        d.err().unwrap_or_else(|| "ok".into()),
    );
}

const DRAWS: usize = 10_000;

fn assert_fair(counts: &[usize], what: &str) {
    let total: usize = counts.iter().sum();
    assert_eq!(total, DRAWS, "{what}");
    let lo = DRAWS * 40 / 100;
    let hi = DRAWS * 60 / 100;
    for (i, &n) in counts.iter().enumerate() {
        assert!((lo..=hi).contains(&n), "{what}: case {i} chosen {n} times out of {DRAWS} (counts {counts:?})");
    }
}

// ---------------------------------------------------------------------------
// Fairness
// ---------------------------------------------------------------------------

#[test]
fn fairness_two_ready_recv_cases_async() {
    let counts = run(async {
        let a = chan::<u8>(1);
        let b = chan::<u8>(1);
        a.try_send(0).unwrap();
        b.try_send(1).unwrap();
        let mut counts = [0usize; 2];
        for _ in 0..DRAWS {
            parkwatch::select! {
                recv(a) -> v => { counts[v.unwrap() as usize] += 1; a.try_send(0).unwrap(); }
                recv(b) -> v => { counts[v.unwrap() as usize] += 1; b.try_send(1).unwrap(); }
            }
        }
        counts
    });
    assert_fair(&counts, "async recv");
}

#[test]
fn fairness_two_ready_send_cases_blocking() {
    let a = chan::<u8>(1);
    let b = chan::<u8>(1);
    let mut counts = [0usize; 2];
    for _ in 0..DRAWS {
        parkwatch::select_blocking! {
            send(a, 0) -> r => { r.unwrap(); counts[0] += 1; }
            send(b, 1) -> r => { r.unwrap(); counts[1] += 1; }
        }
        // Empty whichever was filled.
        let _ = a.try_recv();
        let _ = b.try_recv();
    }
    assert_fair(&counts, "blocking send");
}

#[test]
fn fairness_closed_channels_and_mixed_kinds() {
    // Two always-ready cases of different kinds: a closed channel (recv gives
    // None at once) and a buffered channel with room (send succeeds).
    let closed = chan::<u8>(0);
    closed.close().unwrap();
    let room = chan::<u8>(1);
    let mut counts = [0usize; 2];
    for _ in 0..DRAWS {
        parkwatch::select_blocking! {
            recv(closed) -> v => { assert_eq!(v, None); counts[0] += 1; }
            send(room, 7) -> r => { r.unwrap(); counts[1] += 1; room.try_recv().unwrap(); }
        }
    }
    assert_fair(&counts, "closed recv vs send with room");
}

#[test]
fn fairness_when_parked_select_is_woken_by_both() {
    // Not a uniformity test (whoever comes first wins), but both cases of a
    // parked select must be reachable.
    run(async {
        let a = chan::<u32>(0);
        let b = chan::<u32>(0);
        let (ta, tb) = (a.sender(), b.sender());
        let ha = parkwatch::spawn(async move {
            for i in 0..500 {
                ta.send(i).await.unwrap();
            }
        });
        let hb = parkwatch::spawn(async move {
            for i in 0..500 {
                tb.send(i).await.unwrap();
            }
        });
        let mut counts = [0usize; 2];
        for _ in 0..1_000 {
            parkwatch::select! {
                recv(a) -> v => { v.unwrap(); counts[0] += 1; }
                recv(b) -> v => { v.unwrap(); counts[1] += 1; }
            }
        }
        ha.await.unwrap();
        hb.await.unwrap();
        assert_eq!(counts, [500, 500]);
    });
}

// ---------------------------------------------------------------------------
// default
// ---------------------------------------------------------------------------

#[test]
fn default_runs_only_when_nothing_ready() {
    run(async {
        let a = chan::<i32>(1);
        let b = chan::<i32>(0);
        // Nothing ready: default, every time, without blocking.
        for _ in 0..1_000 {
            let r = parkwatch::select! {
                recv(a) -> _v => "a",
                recv(b) -> _v => "b",
                send(b, 1) -> _r => "send b",
                default => "default",
            };
            assert_eq!(r, "default");
        }
        // One case ready: never default.
        for i in 0..1_000 {
            a.try_send(i).unwrap();
            let r = parkwatch::select! {
                recv(a) -> v => { assert_eq!(v, Some(i)); "a" }
                recv(b) -> _v => "b",
                default => "default",
            };
            assert_eq!(r, "a");
        }
        // A send with room: never default.
        for _ in 0..100 {
            let r = parkwatch::select! {
                send(a, 5) -> res => { res.unwrap(); "sent" }
                default => "default",
            };
            assert_eq!(r, "sent");
            a.try_recv().unwrap();
        }
    });
}

#[test]
fn default_alone_and_default_with_parked_counterpart() {
    run(async {
        let r = parkwatch::select! { default => 42 };
        assert_eq!(r, 42);
        // A counterpart parked on the unbuffered channel makes the case ready.
        let c = chan::<i32>(0);
        let tx = c.sender();
        let h = parkwatch::spawn(async move { tx.send(9).await });
        wait_parked(h.id(), "chan send").await;
        let r = parkwatch::select! {
            recv(c) -> v => v,
            default => None,
        };
        assert_eq!(r, Some(9));
        h.await.unwrap().unwrap();
    });
}

// ---------------------------------------------------------------------------
// nil cases
// ---------------------------------------------------------------------------

#[test]
fn nil_cases_are_never_ready() {
    run(async {
        let nil = Chan::<i32>::nil();
        for _ in 0..100 {
            let r = parkwatch::select! {
                recv(nil) -> _v => "recv nil",
                send(nil, 1) -> _r => "send nil",
                recv(Chan::<u8>::nil()) -> _v => "recv nil 2",
                default => "default",
            };
            assert_eq!(r, "default");
        }
        // A nil case next to a ready case: always the ready one.
        let ready = chan::<i32>(1);
        for i in 0..2_000 {
            ready.try_send(i).unwrap();
            let r = parkwatch::select! {
                recv(nil) -> _v => -1,
                send(nil, 0) -> _r => -2,
                recv(ready) -> v => v.unwrap(),
            };
            assert_eq!(r, i);
        }
    });
}

#[test]
fn nil_case_with_closed_channel_blocking() {
    let nil = Chan::<i32>::nil();
    let closed = chan::<i32>(0);
    closed.close().unwrap();
    for _ in 0..1_000 {
        let r = parkwatch::select_blocking! {
            recv(nil) -> _v => "nil",
            recv(closed) -> v => { assert_eq!(v, None); "closed" }
        };
        assert_eq!(r, "closed");
    }
}

#[test]
fn nil_case_parked_select_woken_by_real_case() {
    run(async {
        let nil = Chan::<i32>::nil();
        let c = chan::<i32>(0);
        let tx = c.sender();
        let h = parkwatch::spawn(async move {
            parkwatch::select! {
                recv(nil) -> _v => -1,
                recv(tx_dummy()) -> _v => -2,
                send(tx, 5) -> r => { r.unwrap(); 5 }
            }
        });
        wait_parked(h.id(), "select").await;
        assert_eq!(c.recv().await, Some(5));
        assert_eq!(h.await.unwrap(), 5);
    });
}

fn tx_dummy() -> Chan<i32> {
    Chan::nil()
}

// ---------------------------------------------------------------------------
// send cases
// ---------------------------------------------------------------------------

#[test]
fn send_case_on_closed_channel_gives_value_back() {
    run(async {
        let c = chan::<String>(1);
        c.close().unwrap();
        let r = parkwatch::select! {
            send(c, "v".to_string()) -> res => res,
        };
        assert_eq!(r, Err(SendError("v".to_string())));
        // With default: a closed channel is ready, so the send case is chosen.
        let r = parkwatch::select! {
            send(c.sender(), "w".to_string()) -> res => res.map_err(|e| e.0),
            default => Ok(()),
        };
        assert_eq!(r, Err("w".to_string()));
        // Blocking.
        let r = parkwatch::select_blocking! {
            send(&c, "x".to_string()) -> res => res,
        };
        assert_eq!(r.unwrap_err().into_inner(), "x");
    });
}

#[test]
fn parked_send_case_woken_by_close_gets_value_back() {
    run(async {
        let c = chan::<String>(0);
        let d = chan::<String>(0);
        let (tc, td) = (c.sender(), d.sender());
        let h = parkwatch::spawn(async move {
            parkwatch::select! {
                send(tc, "c".to_string()) -> r => ("c", r),
                send(td, "d".to_string()) -> r => ("d", r),
            }
        });
        wait_parked(h.id(), "select").await;
        c.close().unwrap();
        let (which, r) = h.await.unwrap();
        assert_eq!(which, "c");
        assert_eq!(r, Err(SendError("c".to_string())));
        // The other case's value was not delivered.
        assert_eq!(d.try_recv(), Err(TryRecvError::Empty));
    });
}

#[test]
fn unchosen_send_case_value_not_delivered() {
    run(async {
        for _ in 0..200 {
            let a = chan::<i32>(1);
            let b = chan::<i32>(1);
            parkwatch::select! {
                send(a, 1) -> r => r.unwrap(),
                send(b, 2) -> r => r.unwrap(),
            }
            // Exactly one of the two sends happened.
            assert_eq!(a.len() + b.len(), 1);
        }
    });
}

// ---------------------------------------------------------------------------
// No rendezvous with itself
// ---------------------------------------------------------------------------

#[test]
fn send_and_recv_on_same_unbuffered_channel_do_not_match_each_other() {
    run(async {
        let c = chan::<i32>(0);
        for _ in 0..100 {
            let r = parkwatch::select! {
                recv(c) -> _v => "recv",
                send(c, 1) -> _r => "send",
                default => "default",
            };
            assert_eq!(r, "default");
        }
        // Without default: it must park, and a timeout case must win.
        let t0 = Instant::now();
        let r = parkwatch::select! {
            recv(c) -> _v => "recv",
            send(c, 1) -> _r => "send",
            recv(time::after(Duration::from_millis(30))) -> _t => "timeout",
        };
        assert_eq!(r, "timeout");
        assert!(t0.elapsed() >= Duration::from_millis(25));
        assert_eq!(c.len(), 0);
    });
}

#[test]
fn self_select_blocking_completes_with_other_party_only() {
    // A thread selects send+recv on one unbuffered channel; only a real
    // counterpart (another thread) can complete it, and the value it gets is
    // the counterpart's.
    let c = chan::<i32>(0);
    let c2 = c.clone();
    let t = parkwatch::thread::spawn(move || {
        parkwatch::select_blocking! {
            recv(c2) -> v => ("recv", v),
            send(c2, 1) -> r => { r.unwrap(); ("send", None) }
        }
    });
    // Be the counterpart for the send case.
    let got = c.recv_blocking();
    let (which, v) = t.join().unwrap();
    assert_eq!(got, Some(1));
    assert_eq!((which, v), ("send", None));

    // And for the receive case.
    let c2 = c.clone();
    let t = parkwatch::thread::spawn(move || {
        parkwatch::select_blocking! {
            recv(c2) -> v => ("recv", v),
            send(c2, 1) -> r => { r.unwrap(); ("send", None) }
        }
    });
    // try_send until the select has parked; it must take our 77, not its own 1.
    let mut v = 77;
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match c.try_send(v) {
            Ok(()) => break,
            Err(e) => v = e.into_inner(),
        }
        // The select may meanwhile have parked its send case: take it, then
        // it is done with "send".
        if let Ok(x) = c.try_recv() {
            assert_eq!(x, 1);
            let (which, _) = t.join().unwrap();
            assert_eq!(which, "send");
            return;
        }
        assert!(Instant::now() < deadline, "select never parked");
        std::thread::yield_now();
    }
    assert_eq!(t.join().unwrap(), ("recv", Some(77)));
}

// ---------------------------------------------------------------------------
// Many selecting senders and receivers: no loss, no duplicate
// ---------------------------------------------------------------------------

#[test]
fn many_selecting_senders_no_loss_no_duplicate() {
    const TOTAL: usize = 100_000;
    const SENDERS: usize = 8;
    for cap in [0usize, 4] {
        let got = run(async move {
            let a = chan::<usize>(cap);
            let b = chan::<usize>(cap);
            let senders: Vec<_> = (0..SENDERS)
                .map(|k| {
                    let (ta, tb) = (a.sender(), b.sender());
                    parkwatch::spawn(async move {
                        let mut on_a = 0usize;
                        for v in (k..TOTAL).step_by(SENDERS) {
                            parkwatch::select! {
                                send(ta, v) -> r => { r.unwrap(); on_a += 1; }
                                send(tb, v) -> r => { r.unwrap(); }
                            }
                        }
                        on_a
                    })
                })
                .collect();
            // Receivers: two plain receivers (one per channel) and two that
            // select over both.
            let mut receivers = Vec::new();
            for ch in [a.receiver(), b.receiver()] {
                receivers.push(parkwatch::spawn(async move {
                    let mut got = Vec::new();
                    while let Some(v) = ch.recv().await {
                        got.push(v);
                    }
                    got
                }));
            }
            for _ in 0..2 {
                let (ra, rb) = (a.receiver(), b.receiver());
                receivers.push(parkwatch::spawn(async move {
                    let mut got = Vec::new();
                    let (mut a_open, mut b_open) = (true, true);
                    while a_open || b_open {
                        let nil = Chan::<usize>::nil();
                        let ra_op = if a_open { ra.clone() } else { nil.receiver() };
                        let rb_op = if b_open { rb.clone() } else { nil.receiver() };
                        parkwatch::select! {
                            recv(ra_op) -> v => match v { Some(v) => got.push(v), None => a_open = false },
                            recv(rb_op) -> v => match v { Some(v) => got.push(v), None => b_open = false },
                        }
                    }
                    got
                }));
            }
            let mut on_a = 0;
            for s in senders {
                on_a += s.await.unwrap();
            }
            a.close().unwrap();
            b.close().unwrap();
            let mut all = Vec::new();
            for r in receivers {
                all.push(r.await.unwrap());
            }
            (all, on_a)
        });
        let (all, on_a) = got;
        let mut seen = vec![false; TOTAL];
        let mut n = 0;
        for v in all.into_iter().flatten() {
            assert!(!seen[v], "cap {cap}: {v} received twice");
            seen[v] = true;
            n += 1;
        }
        assert_eq!(n, TOTAL, "cap {cap}: values lost");
        // Both channels were used.
        assert!(on_a > 0 && on_a < TOTAL, "cap {cap}: on_a = {on_a}");
    }
}

// ---------------------------------------------------------------------------
// select_blocking! from threads
// ---------------------------------------------------------------------------

#[test]
fn select_blocking_between_threads() {
    const N: usize = 20_000;
    let a = chan::<usize>(0);
    let b = chan::<usize>(2);
    let quit = chan::<()>(0);
    let (ta, tb, q) = (a.sender(), b.sender(), quit.clone());
    let producer = parkwatch::thread::spawn(move || {
        for i in 0..N {
            parkwatch::select_blocking! {
                send(ta, i) -> r => r.unwrap(),
                send(&tb, i) -> r => r.unwrap(),
            }
        }
        q.close().unwrap();
    });
    let (ra, rb, q) = (a.receiver(), b.receiver(), quit.receiver());
    let consumer = parkwatch::thread::spawn(move || {
        let mut seen = HashSet::new();
        loop {
            let more = parkwatch::select_blocking! {
                recv(ra) -> v => { assert!(seen.insert(v.unwrap())); true }
                recv(&rb) -> v => { assert!(seen.insert(v.unwrap())); true }
                recv(q) -> _v => false,
            };
            if !more {
                break;
            }
        }
        // Quit may win while b still holds buffered values.
        while let Ok(v) = rb.try_recv() {
            assert!(seen.insert(v));
        }
        seen
    });
    producer.join().unwrap();
    let seen = consumer.join().unwrap();
    assert_eq!(seen.len(), N);
    assert!((0..N).all(|i| seen.contains(&i)));
}

// ---------------------------------------------------------------------------
// Dynamic Select
// ---------------------------------------------------------------------------

#[test]
fn dynamic_select_try_select() {
    let a = chan::<i32>(1);
    let b = chan::<String>(1);
    let nil = Chan::<i32>::nil();
    {
        let mut sel = parkwatch::Select::new();
        sel.recv(&a);
        sel.recv(&b);
        sel.recv(&nil);
        sel.send(&nil, 3);
        assert!(sel.try_select().is_none(), "nothing is ready");
    }
    b.try_send("hello".into()).unwrap();
    {
        let mut sel = parkwatch::Select::new();
        let ia = sel.recv(&a);
        let ib = sel.recv(&b);
        assert_eq!((ia, ib), (0, 1));
        let chosen = sel.try_select().expect("b is ready");
        assert_eq!(chosen.index(), ib);
        assert_eq!(chosen.recv::<String>().as_deref(), Some("hello"));
    }
    {
        let mut sel = parkwatch::Select::new();
        let is = sel.send(&a, 10);
        let chosen = sel.try_select().expect("a has room");
        assert_eq!(chosen.index(), is);
        assert_eq!(chosen.send_result::<i32>(), Ok(()));
        assert_eq!(a.try_recv(), Ok(10));
    }
    {
        // An empty select never completes without blocking.
        let mut sel = parkwatch::Select::new();
        assert!(sel.try_select().is_none());
    }
}

#[test]
fn dynamic_select_blocking_recv_send_and_closed() {
    let c = chan::<i32>(0);
    let tx = c.sender();
    let t = parkwatch::thread::spawn(move || tx.send_blocking(5).unwrap());
    let out = chan::<i32>(0);
    {
        let mut sel = parkwatch::Select::new();
        let ir = sel.recv(&c);
        let _is = sel.send(&out, 1); // nobody receives on `out`
        let chosen = sel.select_blocking();
        assert_eq!(chosen.index(), ir);
        assert_eq!(chosen.recv::<i32>(), Some(5));
    }
    t.join().unwrap();
    // A send case completed by another thread's receive.
    let rx = out.receiver();
    let t = parkwatch::thread::spawn(move || rx.recv_blocking());
    {
        let mut sel = parkwatch::Select::new();
        let _ir = sel.recv(&c); // nobody sends on `c`
        let is = sel.send(&out, 8);
        let chosen = sel.select_blocking();
        assert_eq!(chosen.index(), is);
        assert_eq!(chosen.send_result::<i32>(), Ok(()));
    }
    assert_eq!(t.join().unwrap(), Some(8));
    // Closed channels: recv gives None, send gives the value back.
    out.close().unwrap();
    let mut sel = parkwatch::Select::new();
    let is = sel.send(&out, 9);
    let chosen = sel.select_blocking();
    assert_eq!(chosen.index(), is);
    assert_eq!(chosen.send_result::<i32>(), Err(SendError(9)));
    c.close().unwrap();
    let rx = c.receiver();
    let mut sel = parkwatch::Select::new();
    let ir = sel.recv(&rx);
    let chosen = sel.select_blocking();
    assert_eq!(chosen.index(), ir);
    assert_eq!(chosen.recv::<i32>(), None);
}

#[test]
fn dynamic_select_async_many_cases() {
    run(async {
        // A runtime-built set of 16 channels; a task sends one value on each in turn.
        let chans: Vec<Chan<usize>> = (0..16).map(|_| chan(0)).collect();
        let senders: Vec<_> = chans.iter().map(|c| c.sender()).collect();
        let h = parkwatch::spawn(async move {
            for round in 0..3 {
                for (i, tx) in senders.iter().enumerate() {
                    tx.send(round * 100 + i).await.unwrap();
                }
            }
        });
        let mut got = Vec::new();
        for _ in 0..48 {
            let mut sel = parkwatch::Select::new();
            let idx: Vec<usize> = chans.iter().map(|c| sel.recv(c)).collect();
            let chosen = sel.select().await;
            let i = chosen.index();
            assert_eq!(idx[i], i);
            let v = chosen.recv::<usize>().unwrap();
            assert_eq!(v % 100, i, "value came from the case's channel");
            got.push(v);
        }
        h.await.unwrap();
        let expect: Vec<usize> = (0..3).flat_map(|r| (0..16).map(move |i| r * 100 + i)).collect();
        assert_eq!(got, expect);

        // Send cases in the async form.
        let out = chan::<String>(0);
        let rx = out.receiver();
        let r = parkwatch::spawn(async move { rx.recv().await });
        let nil = Chan::<String>::nil();
        let mut sel = parkwatch::Select::new();
        sel.send(&nil, "nil".to_string());
        let is = sel.send(&out, "out".to_string());
        let chosen = sel.select().await;
        assert_eq!(chosen.index(), is);
        assert_eq!(chosen.send_result::<String>(), Ok(()));
        assert_eq!(r.await.unwrap().as_deref(), Some("out"));
    });
}

#[test]
fn dynamic_select_fairness() {
    let a = chan::<u8>(1);
    let b = chan::<u8>(1);
    let mut counts = [0usize; 2];
    for _ in 0..DRAWS {
        a.try_send(0).unwrap();
        b.try_send(1).unwrap();
        let mut sel = parkwatch::Select::new();
        sel.recv(&a);
        sel.recv(&b);
        let chosen = sel.select_blocking();
        counts[chosen.index()] += 1;
        let _ = a.try_recv();
        let _ = b.try_recv();
    }
    assert_fair(&counts, "dynamic select");
}

// ---------------------------------------------------------------------------
// Operand forms and syntax
// ---------------------------------------------------------------------------

struct Holder {
    c: Chan<i32>,
}

impl Holder {
    fn rx(&self) -> parkwatch::Receiver<i32> {
        self.c.receiver()
    }
    fn tx(&self) -> parkwatch::Sender<i32> {
        self.c.sender()
    }
}

#[test]
fn operand_forms() {
    run(async {
        let c = chan::<i32>(1);
        let rx = c.receiver();
        let tx = c.sender();
        let h = Holder { c: chan(1) };

        c.try_send(1).unwrap();
        let v = parkwatch::select! { recv(c) -> v => v };
        assert_eq!(v, Some(1));

        c.try_send(2).unwrap();
        let v = parkwatch::select! { recv(&c) -> v => v };
        assert_eq!(v, Some(2));

        c.try_send(3).unwrap();
        let v = parkwatch::select! { recv(rx) -> v => v };
        assert_eq!(v, Some(3));

        c.try_send(4).unwrap();
        let v = parkwatch::select! { recv(&rx) -> v => v };
        assert_eq!(v, Some(4));

        h.c.try_send(5).unwrap();
        let v = parkwatch::select! { recv(h.rx()) -> v => v };
        assert_eq!(v, Some(5));

        h.c.try_send(6).unwrap();
        let v = parkwatch::select! { recv(h.c) -> v => v };
        assert_eq!(v, Some(6));

        let v = parkwatch::select! {
            recv(time::after(Duration::from_millis(5))) -> t => t.is_some(),
        };
        assert!(v);

        let v = parkwatch::select! {
            recv(Chan::<i32>::nil()) -> _v => "nil",
            recv(Chan::<i32>::nil().receiver()) -> _v => "nil receiver",
            default => "default",
        };
        assert_eq!(v, "default");

        // Send operands: Chan, &Chan, Sender, &Sender, a method call.
        parkwatch::select! { send(c, 10) -> r => r.unwrap() }
        assert_eq!(c.try_recv(), Ok(10));
        parkwatch::select! { send(&c, 11) -> r => r.unwrap() }
        assert_eq!(c.try_recv(), Ok(11));
        parkwatch::select! { send(tx, 12) -> r => r.unwrap() }
        assert_eq!(c.try_recv(), Ok(12));
        parkwatch::select! { send(&tx, 13) -> r => r.unwrap() }
        assert_eq!(c.try_recv(), Ok(13));
        parkwatch::select! { send(h.tx(), 14) -> r => r.unwrap() }
        assert_eq!(h.c.try_recv(), Ok(14));
        let v = parkwatch::select! {
            send(Chan::<i32>::nil(), 1) -> _r => "nil",
            default => "default",
        };
        assert_eq!(v, "default");

        // The operands are only borrowed: still usable afterwards.
        c.try_send(20).unwrap();
        assert_eq!(rx.try_recv(), Ok(20));
        drop(tx);

        // Arms without a pattern.
        c.try_send(30).unwrap();
        let v = parkwatch::select! {
            recv(c) => "got",
            default => "default",
        };
        assert_eq!(v, "got");
    });
}

#[test]
fn send_values_evaluated_once_in_order() {
    run(async {
        let a = chan::<i32>(1);
        let b = chan::<i32>(1);
        let mut order = Vec::new();
        let mut next = |tag: i32| {
            order.push(tag);
            tag
        };
        parkwatch::select! {
            send(a, next(1)) -> r => r.unwrap(),
            send(b, next(2)) -> r => r.unwrap(),
        }
        assert_eq!(order, vec![1, 2]);
    });
}

#[test]
fn arms_with_block_bodies_without_commas() {
    run(async {
        let a = chan::<i32>(1);
        let b = chan::<i32>(1);
        let mut hits = Vec::new();
        a.try_send(1).unwrap();
        parkwatch::select! {
            recv(a) -> v => {
                hits.push(v.unwrap());
            }
            recv(b) -> v => {
                hits.push(v.unwrap() + 100);
            }
            default => {
                hits.push(-1);
            }
        }
        parkwatch::select! {
            recv(a) -> v => {
                hits.push(v.unwrap());
            }
            send(b, 2) -> r => {
                r.unwrap();
                hits.push(2);
            }
        }
        assert_eq!(hits, vec![1, 2]);
        // Mixed: expression arms with commas and block arms without.
        let r = parkwatch::select! {
            recv(a) -> _v => 0,
            recv(b) -> v => { v.unwrap() * 10 }
            default => -1,
        };
        assert_eq!(r, 20);
        // A trailing comma after a block is accepted too.
        let r = parkwatch::select! {
            default => { 7 },
        };
        assert_eq!(r, 7);
        // select_blocking! likewise.
        a.try_send(3).unwrap();
        let r = parkwatch::select_blocking! {
            recv(a) -> v => {
                v.unwrap()
            }
            default => {
                0
            }
        };
        assert_eq!(r, 3);
    });
}

// ---------------------------------------------------------------------------
// Timeouts in a loop
// ---------------------------------------------------------------------------

#[test]
fn select_loop_with_after_timeout() {
    run(async {
        let c = chan::<i32>(0);
        let tx = c.sender();
        let stop = chan::<()>(0);
        let stop_rx = stop.receiver();
        let h = parkwatch::spawn(async move {
            for i in 0..5 {
                tx.send(i).await.unwrap();
            }
            // Then go quiet until told to stop.
            stop_rx.recv().await;
        });
        let mut got = Vec::new();
        let mut timeouts = 0;
        let t0 = Instant::now();
        loop {
            parkwatch::select! {
                recv(c) -> v => got.push(v.unwrap()),
                recv(time::after(Duration::from_millis(100))) -> t => {
                    assert!(t.is_some());
                    timeouts += 1;
                    if timeouts == 2 {
                        break;
                    }
                }
            }
        }
        assert_eq!(got, vec![0, 1, 2, 3, 4]);
        assert!(t0.elapsed() >= Duration::from_millis(190), "two 100 ms timeouts took {:?}", t0.elapsed());
        stop.close().unwrap();
        h.await.unwrap();
    });
}

#[test]
fn select_blocking_with_after_timeout() {
    let c = chan::<i32>(0);
    let t0 = Instant::now();
    let r = parkwatch::select_blocking! {
        recv(c) -> _v => "value",
        recv(time::after(Duration::from_millis(30))) -> _t => "timeout",
    };
    assert_eq!(r, "timeout");
    assert!(t0.elapsed() >= Duration::from_millis(25));
}

// ---------------------------------------------------------------------------
// Cancellation
// ---------------------------------------------------------------------------

#[test]
fn cancelled_select_does_not_lose_value() {
    run(async {
        let a = chan::<i32>(0);
        let b = chan::<i32>(0);
        let (ta, tb) = (a.sender(), b.sender());
        {
            let fut = async {
                parkwatch::select! {
                    recv(a) -> v => v,
                    recv(b) -> v => v,
                }
            };
            let mut fut = Box::pin(fut);
            assert!(futures::poll!(fut.as_mut()).is_pending());
            // Hand the parked select a value, then drop it unpolled.
            let h = parkwatch::spawn(async move { ta.send(41).await });
            h.await.unwrap().unwrap();
            drop(fut);
        }
        assert_eq!(a.try_recv(), Ok(41), "value handed to a cancelled select was lost");
        assert_eq!(b.try_recv(), Err(TryRecvError::Empty));
        // A cancelled select with a send case withdraws its value.
        {
            let fut = async {
                parkwatch::select! {
                    send(tb, 5) -> r => r,
                }
            };
            let mut fut = Box::pin(fut);
            assert!(futures::poll!(fut.as_mut()).is_pending());
            drop(fut);
        }
        assert_eq!(b.try_recv(), Err(TryRecvError::Empty));
        let r = tokio::time::timeout(Duration::from_millis(20), b.recv()).await;
        assert!(r.is_err(), "withdrawn send was delivered: {r:?}");
    });
}

#[test]
fn cancelled_select_race_stress() {
    // A select polled once and dropped, racing a sender on another worker:
    // every value arrives exactly once, in order.
    const N: u32 = 2_000;
    let got = run(async {
        let a = chan::<u32>(0);
        let never = chan::<u32>(0);
        let tx = a.sender();
        parkwatch::spawn(async move {
            for i in 0..N {
                tx.send(i).await.unwrap();
            }
            tx.close().unwrap();
        });
        let mut got = Vec::new();
        loop {
            let r = tokio::time::timeout(Duration::ZERO, async {
                parkwatch::select! {
                    recv(a) -> v => v,
                    recv(never) -> v => v,
                }
            })
            .await;
            match r {
                Ok(Some(v)) => got.push(v),
                Ok(None) => break,
                Err(_) => parkwatch::task::yield_now().await,
            }
        }
        got
    });
    assert_eq!(got, (0..N).collect::<Vec<_>>());
}

/// A `Select` future leaked while parked (`mem::forget`) leaves its cases
/// enqueued; dropping the `Select` takes them back, and a value a sender
/// handed to the leaked select meanwhile goes back into the channel instead
/// of being lost. A second select over a leaked one's case works too.
#[test]
fn leaked_select_future_loses_nothing() {
    use std::future::Future;
    use std::task::{Context, Poll, Waker};
    let cx = &mut Context::from_waker(Waker::noop());
    let c = chan::<String>(0);

    let mut sel = parkwatch::Select::new();
    sel.recv(&c);
    let mut fut = Box::pin(sel.select());
    assert!(fut.as_mut().poll(cx).is_pending(), "nothing to receive: it parks");
    std::mem::forget(fut);
    // The leaked select's case is still enqueued: the send hands it over.
    assert_eq!(c.try_send("handed over".into()), Ok(()));
    drop(sel);
    assert_eq!(c.try_recv().as_deref(), Ok("handed over"), "the value came back to the channel");

    let mut sel = parkwatch::Select::new();
    sel.recv(&c);
    let mut fut = Box::pin(sel.select());
    assert!(fut.as_mut().poll(cx).is_pending());
    std::mem::forget(fut);
    let mut again = Box::pin(sel.select());
    assert!(again.as_mut().poll(cx).is_pending(), "re-parked, replacing the stale entry");
    assert_eq!(c.try_send("second".into()), Ok(()));
    let Poll::Ready(chosen) = again.as_mut().poll(cx) else { panic!("the send completed the second select") };
    assert_eq!(chosen.recv::<String>().as_deref(), Some("second"));
    drop(again);
    drop(sel);
    assert_eq!(c.try_recv(), Err(TryRecvError::Empty));
}
