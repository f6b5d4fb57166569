//! 50 leaking and 50 clean tests, run in parallel: only the leaking ones
//! may fail, each with its own tasks only.

use std::time::Duration;

/// Leaks a named task and an unnamed thread, spawned through a child task.
async fn leaky(i: u32) {
    let jobs = parkwatch::chan::<u32>(0);
    let rx = jobs.receiver();
    parkwatch::spawn(async move {
        parkwatch::task::Builder::new().name(format!("leak-{i}")).spawn(probe_samples::wait_for_job(rx));
    })
    .await
    .unwrap();
    let thread_rx = jobs.receiver();
    parkwatch::thread::spawn(move || thread_rx.recv_blocking());
    std::mem::forget(jobs);
    parkwatch::time::sleep(Duration::from_millis(20)).await;
}

/// Spawns tasks and a thread that all finish, some after the body returns.
async fn clean(i: u32) {
    let c = parkwatch::chan::<u32>(1);
    let tx = c.sender();
    let h = parkwatch::task::Builder::new().name(format!("clean-{i}")).spawn(async move {
        tx.send(i).await.unwrap();
    });
    assert_eq!(c.recv().await, Some(i));
    h.await.unwrap();
    let t = parkwatch::thread::spawn(move || std::thread::sleep(Duration::from_millis(5)));
    parkwatch::spawn(async { parkwatch::time::sleep(Duration::from_millis(30)).await });
    parkwatch::time::sleep(Duration::from_millis(20)).await;
    t.join().unwrap();
}

macro_rules! pairs {
    ($($leak:ident $clean:ident $i:literal)*) => {$(
        #[parkwatch_probe::test(leak_wait = "150ms")]
        async fn $leak() {
            leaky($i).await
        }

        #[parkwatch_probe::test(leak_wait = "150ms")]
        async fn $clean() {
            clean($i).await
        }
    )*};
}

pairs! {
    leak_00 clean_00 0
    leak_01 clean_01 1
    leak_02 clean_02 2
    leak_03 clean_03 3
    leak_04 clean_04 4
    leak_05 clean_05 5
    leak_06 clean_06 6
    leak_07 clean_07 7
    leak_08 clean_08 8
    leak_09 clean_09 9
    leak_10 clean_10 10
    leak_11 clean_11 11
    leak_12 clean_12 12
    leak_13 clean_13 13
    leak_14 clean_14 14
    leak_15 clean_15 15
    leak_16 clean_16 16
    leak_17 clean_17 17
    leak_18 clean_18 18
    leak_19 clean_19 19
    leak_20 clean_20 20
    leak_21 clean_21 21
    leak_22 clean_22 22
    leak_23 clean_23 23
    leak_24 clean_24 24
    leak_25 clean_25 25
    leak_26 clean_26 26
    leak_27 clean_27 27
    leak_28 clean_28 28
    leak_29 clean_29 29
    leak_30 clean_30 30
    leak_31 clean_31 31
    leak_32 clean_32 32
    leak_33 clean_33 33
    leak_34 clean_34 34
    leak_35 clean_35 35
    leak_36 clean_36 36
    leak_37 clean_37 37
    leak_38 clean_38 38
    leak_39 clean_39 39
    leak_40 clean_40 40
    leak_41 clean_41 41
    leak_42 clean_42 42
    leak_43 clean_43 43
    leak_44 clean_44 44
    leak_45 clean_45 45
    leak_46 clean_46 46
    leak_47 clean_47 47
    leak_48 clean_48 48
    leak_49 clean_49 49
}
