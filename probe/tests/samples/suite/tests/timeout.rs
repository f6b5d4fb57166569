//! A test that never ends but never deadlocks (its tasks sleep: a timer will
//! wake them): the hard timeout fails it.

use std::time::Duration;

#[parkwatch_probe::test(timeout = "1s")]
async fn sleeps_forever() {
    parkwatch::task::Builder::new().name("napper").spawn(async {
        loop {
            parkwatch::time::sleep(Duration::from_secs(3600)).await;
        }
    });
    loop {
        parkwatch::time::sleep(Duration::from_secs(3600)).await;
    }
}
