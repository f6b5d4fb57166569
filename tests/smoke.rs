use std::time::Duration;

#[test]
fn rendezvous_and_deadlock() {
    let rt = parkwatch::Runtime::new().unwrap();
    let v = rt
        .block_on(async {
            let c = parkwatch::chan::<i32>(0);
            let tx = c.sender();
            parkwatch::spawn(async move {
                for i in 0..1000 {
                    tx.send(i).await.unwrap();
                }
                tx.close().unwrap();
            });
            let mut sum = 0;
            while let Some(v) = c.recv().await {
                sum += v;
            }
            sum
        })
        .unwrap();
    assert_eq!(v, 499500);
    let err = rt
        .block_on(async {
            let c = parkwatch::chan::<i32>(0);
            c.recv().await
        })
        .unwrap_err();
    println!("{err}");
    assert!(err.is_global());
}

#[test]
fn sleep_is_not_deadlock() {
    let rt = parkwatch::Runtime::new().unwrap();
    let v = rt.block_on(async {
        let c = parkwatch::chan::<i32>(0);
        let tx = c.sender();
        parkwatch::spawn(async move {
            parkwatch::time::sleep(Duration::from_millis(50)).await;
            tx.send(1).await.unwrap();
        });
        c.recv().await
    });
    assert_eq!(v.unwrap(), Some(1));
}

#[test]
fn select_works() {
    let rt = parkwatch::Runtime::new().unwrap();
    rt.block_on(async {
        let a = parkwatch::chan::<i32>(0);
        let b = parkwatch::chan::<i32>(0);
        let (a2, b2) = (a.clone(), b.clone());
        parkwatch::spawn(async move {
            for i in 0..100 {
                if i % 2 == 0 {
                    a2.send(i).await.unwrap()
                } else {
                    b2.send(i).await.unwrap()
                }
            }
        });
        let mut n = 0;
        for _ in 0..100 {
            parkwatch::select! {
                recv(a) -> v => { n += v.unwrap(); },
                recv(&b) -> v => { n += v.unwrap(); },
            }
        }
        assert_eq!(n, 4950);
    })
    .unwrap();
}
