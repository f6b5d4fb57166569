//! Tests that must pass under the probe.

use std::time::Duration;

use parkwatch::sync::WaitGroup;

#[parkwatch_probe::test]
async fn workers_finish() {
    let jobs = parkwatch::chan::<u32>(4);
    let results = parkwatch::chan::<u32>(4);
    let wg = WaitGroup::new();
    for _ in 0..3 {
        wg.add(1);
        let (jobs, results, wg) = (jobs.receiver(), results.sender(), wg.clone());
        parkwatch::spawn(async move {
            while let Some(j) = jobs.recv().await {
                results.send(j * 2).await.unwrap();
            }
            wg.done();
        });
    }
    let collector = {
        let results = results.receiver();
        parkwatch::spawn(async move {
            let mut sum = 0;
            while let Some(r) = results.recv().await {
                sum += r;
            }
            sum
        })
    };
    for j in 1..=10 {
        jobs.send(j).await.unwrap();
    }
    jobs.close().unwrap();
    wg.wait().await;
    results.close().unwrap();
    assert_eq!(collector.await.unwrap(), 110);
}

#[parkwatch_probe::test]
fn plain_fn_with_threads() {
    let c = parkwatch::chan::<u32>(0);
    let tx = c.sender();
    let t = parkwatch::thread::spawn(move || tx.send_blocking(7).unwrap());
    assert_eq!(c.recv_blocking(), Some(7));
    t.join().unwrap();
}

/// A task still finishing when the body returns is waited for, not reported.
#[parkwatch_probe::test]
async fn late_exit_within_leak_wait() {
    parkwatch::spawn(async { parkwatch::time::sleep(Duration::from_millis(50)).await });
}

#[parkwatch_probe::test]
async fn returns_ok() -> Result<(), String> {
    Ok(())
}

#[parkwatch_probe::test]
#[should_panic(expected = "boom")]
async fn should_panic_is_kept() {
    panic!("boom")
}

/// A worker waiting longer than the grace period for a value the sleeping
/// main task will send is not a deadlock.
#[parkwatch_probe::test(grace = "200ms")]
async fn slow_producer_is_not_a_deadlock() {
    let c = parkwatch::chan::<u32>(0);
    let rx = c.receiver();
    let worker = parkwatch::spawn(async move {
        let mut n = 0;
        while rx.recv().await.is_some() {
            n += 1;
        }
        n
    });
    c.send(1).await.unwrap();
    parkwatch::time::sleep(Duration::from_millis(700)).await;
    c.send(2).await.unwrap();
    c.close().unwrap();
    assert_eq!(worker.await.unwrap(), 2);
}
