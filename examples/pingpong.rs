//! Two tasks, N messages over a channel. On one worker (the default) the
//! schedule is deterministic, so instruction counts per message (callgrind)
//! are exact. The time printed is the exchange's alone: the runtime's start
//! and the first spawn (which resolves symbols once, stacks on) come before
//! the clock starts.
//!
//! ```sh
//! cargo run --release --example pingpong -- 100000          # parkwatch, unbuffered
//! cargo run --release --example pingpong -- 100000 1024     # parkwatch, capacity 1024
//! cargo run --release --example pingpong -- 100000 0 kanal  # the same over kanal, on plain tokio (I/O enabled, like parkwatch's)
//! cargo run --release --example pingpong -- 100000 0 parkwatch 2  # on 2 workers (not deterministic)
//! ```
fn main() {
    let mut args = std::env::args().skip(1);
    let n: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(100_000);
    let cap: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(0);
    let which = args.next().unwrap_or_else(|| "parkwatch".into());
    let workers: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(1);
    let (sum, took) = match which.as_str() {
        "parkwatch" => parkwatch_pingpong(n, cap, workers),
        "kanal" => kanal_pingpong(n, cap, workers),
        other => panic!("unknown implementation {other:?} (parkwatch or kanal)"),
    };
    assert_eq!(sum, n * (n - 1) / 2);
    println!("{which}: {n} messages, cap {cap}: {:.1} ns/msg", took.as_nanos() as f64 / n as f64);
}

fn parkwatch_pingpong(n: u64, cap: usize, workers: usize) -> (u64, std::time::Duration) {
    let rt = parkwatch::Runtime::builder().worker_threads(workers).build().unwrap();
    rt.block_on(async move {
        // Outside the clock: the workers' start and the first spawn's
        // one-time symbol resolution (stacks on).
        parkwatch::spawn(async {}).await.unwrap();
        let start = std::time::Instant::now();
        let c = parkwatch::chan::<u64>(cap);
        let tx = c.sender();
        let rx = c.receiver();
        let p = parkwatch::spawn(async move {
            for i in 0..n {
                tx.send(i).await.unwrap();
            }
        });
        let q = parkwatch::spawn(async move {
            let mut s = 0;
            for _ in 0..n {
                s += rx.recv().await.unwrap();
            }
            s
        });
        p.await.unwrap();
        (q.await.unwrap(), start.elapsed())
    })
    .unwrap()
}

fn kanal_pingpong(n: u64, cap: usize, workers: usize) -> (u64, std::time::Duration) {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(workers).enable_all().build().unwrap();
    rt.block_on(async move {
        tokio::spawn(async {}).await.unwrap();
        let start = std::time::Instant::now();
        let (tx, rx) = kanal::bounded_async::<u64>(cap);
        let p = tokio::spawn(async move {
            for i in 0..n {
                tx.send(i).await.unwrap();
            }
        });
        let q = tokio::spawn(async move {
            let mut s = 0;
            for _ in 0..n {
                s += rx.recv().await.unwrap();
            }
            s
        });
        p.await.unwrap();
        (q.await.unwrap(), start.elapsed())
    })
}
