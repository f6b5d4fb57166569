//! Tests that deadlock: each must fail within about a second (its timeout is
//! 30 s), with the explanation and the dump of the tasks involved.

use std::sync::Arc;
use std::time::Duration;

use parkwatch::sync::{Mutex, WaitGroup};
use probe_samples::tick_for;

/// Every task asleep: Go's "all goroutines are asleep".
#[parkwatch_probe::test(timeout = "30s")]
async fn main_waits_forever() {
    let c = parkwatch::chan::<u32>(0);
    c.recv().await;
}

/// AB-BA between two workers while the main task keeps ticking.
#[parkwatch_probe::test(timeout = "30s")]
async fn workers_lock_cycle_while_ticking() {
    let a = Arc::new(Mutex::new(0));
    let b = Arc::new(Mutex::new(0));
    // Each takes its first lock before either tries its second.
    let both = WaitGroup::new();
    both.add(2);
    let (a2, b2, both2) = (a.clone(), b.clone(), both.clone());
    parkwatch::task::Builder::new().name("ab").spawn(async move {
        let _ga = a.lock().await;
        both.done();
        both.wait().await;
        let _gb = b.lock().await;
    });
    parkwatch::task::Builder::new().name("ba").spawn(async move {
        let _gb = b2.lock().await;
        both2.done();
        both2.wait().await;
        let _ga = a2.lock().await;
    });
    tick_for(Duration::from_secs(20)).await;
}

/// Two workers end up both receiving from each other (a probable stuck set)
/// while the main task keeps ticking.
#[parkwatch_probe::test(timeout = "30s")]
async fn workers_stuck_while_ticking() {
    let ping = parkwatch::chan::<u32>(0);
    let pong = parkwatch::chan::<u32>(0);
    let (ping2, pong2) = (ping.clone(), pong.clone());
    parkwatch::task::Builder::new().name("pinger").spawn(async move {
        ping.send(1).await.unwrap();
        pong.recv().await;
        pong.recv().await; // bug: should send the next ping first
    });
    parkwatch::task::Builder::new().name("ponger").spawn(async move {
        ping2.recv().await;
        pong2.send(1).await.unwrap();
        ping2.recv().await;
    });
    tick_for(Duration::from_secs(20)).await;
}

/// The main task and a worker wait for each other while a ticker task runs.
#[parkwatch_probe::test(timeout = "30s")]
async fn main_stuck_with_worker_while_ticking() {
    parkwatch::spawn(tick_for(Duration::from_secs(20)));
    let req = parkwatch::chan::<u32>(0);
    let resp = parkwatch::chan::<u32>(0);
    let (req2, resp2) = (req.clone(), resp.clone());
    parkwatch::task::Builder::new().name("server").spawn(async move {
        let n = req2.recv().await.unwrap();
        resp2.send(n + 1).await.unwrap();
        req2.recv().await; // waits for a second request
    });
    req.send(1).await.unwrap();
    resp.recv().await;
    resp.recv().await; // bug: waits for a second response without asking
}

/// A plain `fn` test blocked in a blocking receive nobody will complete.
#[parkwatch_probe::test(timeout = "30s")]
fn blocking_main_waits_forever() {
    let c = parkwatch::chan::<u32>(0);
    c.recv_blocking(); // nobody will ever send
}
