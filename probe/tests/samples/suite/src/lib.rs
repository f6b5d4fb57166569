//! Helpers of the sample tests: functions the leaked tasks park in, so that
//! reports (and `ignore = ".."`) can name them.

use std::time::Duration;

/// Waits for a value on `rx`: parked forever if nobody sends.
pub async fn wait_for_job(rx: parkwatch::Receiver<u32>) -> Option<u32> {
    rx.recv().await
}

/// A background loop that only ends when `stop` is closed.
pub async fn flush_loop(stop: parkwatch::Receiver<()>) {
    loop {
        parkwatch::select! {
            recv(stop) -> _v => return,
            recv(parkwatch::time::after(Duration::from_millis(20))) -> _t => {},
        }
    }
}

/// Keeps a ticker running for `d`: other tasks are busy, so a deadlock of the
/// rest is partial, never global.
pub async fn tick_for(d: Duration) {
    let t = parkwatch::time::tick(Duration::from_millis(10));
    let end = std::time::Instant::now() + d;
    while std::time::Instant::now() < end {
        t.recv().await;
    }
}
