//! One worker, two tasks, N messages over an unbuffered channel: a
//! deterministic schedule, so instruction counts per message (callgrind) are
//! exact. `cargo run --release --example pingpong -- 100000`
fn main() {
    let n: u64 = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(100_000);
    let cap: usize = std::env::args().nth(2).and_then(|a| a.parse().ok()).unwrap_or(0);
    let rt = parkwatch::Runtime::builder().worker_threads(1).build().unwrap();
    let start = std::time::Instant::now();
    let sum = rt
        .block_on(async move {
            let c = parkwatch::chan::<u64>(cap);
            let tx = c.sender();
            let p = parkwatch::spawn(async move {
                for i in 0..n {
                    tx.send(i).await.unwrap();
                }
            });
            let rx = c.receiver();
            let q = parkwatch::spawn(async move {
                let mut s = 0;
                for _ in 0..n {
                    s += rx.recv().await.unwrap();
                }
                s
            });
            p.await.unwrap();
            q.await.unwrap()
        })
        .unwrap();
    assert_eq!(sum, n * (n - 1) / 2);
    println!("{n} messages, cap {cap}: {:.1} ns/msg", start.elapsed().as_nanos() as f64 / n as f64);
}
