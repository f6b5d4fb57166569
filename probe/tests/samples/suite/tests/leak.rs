//! Tests that leave tasks behind: each must fail with the leaked tasks listed.

use std::time::Duration;

use probe_samples::{flush_loop, wait_for_job};

/// A worker waits for a job that never comes.
#[parkwatch_probe::test]
async fn leaks_a_receiver() {
    let jobs = parkwatch::chan::<u32>(0);
    parkwatch::task::Builder::new().name("job-waiter").spawn(wait_for_job(jobs.receiver()));
    parkwatch::time::sleep(Duration::from_millis(10)).await;
}

/// Three sleepers in a loop, spawned at one site: one group in the report.
#[parkwatch_probe::test(leak_wait = "100ms")]
async fn leaks_sleepers() {
    for _ in 0..3 {
        parkwatch::spawn(async {
            loop {
                parkwatch::time::sleep(Duration::from_secs(3600)).await;
            }
        });
    }
}

/// A grandchild task leaks; its parent has exited.
#[parkwatch_probe::test(leak_wait = "100ms")]
async fn leaks_a_grandchild() {
    let jobs = parkwatch::chan::<u32>(0);
    let rx = jobs.receiver();
    parkwatch::spawn(async move {
        parkwatch::task::Builder::new().name("grandchild").spawn(wait_for_job(rx));
    })
    .await
    .unwrap();
    std::mem::forget(jobs); // a sender stays alive somewhere: not provably stuck
}

/// A plain `fn` test whose registered thread blocks forever.
#[parkwatch_probe::test(leak_wait = "100ms")]
fn leaks_a_thread() {
    let c = parkwatch::chan::<u32>(0);
    let rx = c.receiver();
    parkwatch::thread::spawn(move || rx.recv_blocking());
    std::thread::sleep(Duration::from_millis(10));
}

/// The same leak as `leaks_a_receiver`, but ignored by its top function: passes.
#[parkwatch_probe::test(ignore = "probe_samples::wait_for_job")]
async fn ignored_leak_passes() {
    let jobs = parkwatch::chan::<u32>(0);
    parkwatch::spawn(wait_for_job(jobs.receiver()));
    parkwatch::time::sleep(Duration::from_millis(10)).await;
}

/// A background loop nobody stops, ignored by name: passes.
#[parkwatch_probe::test(ignore = ["probe_samples::flush_loop"])]
async fn ignored_background_loop_passes() {
    let stop = parkwatch::chan::<()>(0);
    parkwatch::spawn(flush_loop(stop.receiver()));
    std::mem::forget(stop);
}
