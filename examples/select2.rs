//! Two producers, each feeding its own channel, and one task selecting over
//! both channels until it has N messages: the benchmark's `select2` row as
//! a standalone program. On one worker (the default) the schedule is
//! deterministic, so instruction counts per message (callgrind) are exact.
//! The time printed is the exchange's alone (the runtime's start and the
//! first spawn come before the clock starts).
//!
//! ```sh
//! cargo run --release --example select2 -- 100000          # unbuffered
//! cargo run --release --example select2 -- 100000 1024     # capacity 1024
//! cargo run --release --example select2 -- 100000 0 parkwatch 2  # on 2 workers (not deterministic)
//! ```
fn main() {
    let mut args = std::env::args().skip(1);
    let n: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(100_000);
    let cap: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(0);
    let which = args.next().unwrap_or_else(|| "parkwatch".into());
    assert_eq!(which, "parkwatch", "only parkwatch has a select over its own channels here");
    let workers: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(1);
    let rt = parkwatch::Runtime::builder().worker_threads(workers).build().unwrap();
    let ((sum, from_a), took) = rt
        .block_on(async move {
            parkwatch::spawn(async {}).await.unwrap();
            let start = std::time::Instant::now();
            let (a, b) = (parkwatch::chan::<u64>(cap), parkwatch::chan::<u64>(cap));
            let feed = |c: &parkwatch::Chan<u64>, values: std::ops::Range<u64>| {
                let tx = c.sender();
                parkwatch::spawn(async move {
                    for v in values {
                        tx.send(v).await.unwrap();
                    }
                })
            };
            let (pa, pb) = (feed(&a, 0..n / 2), feed(&b, n / 2..n));
            let (ra, rb) = (a.receiver(), b.receiver());
            // A task of its own, as the producers (the future of `block_on`
            // runs on the calling thread, not on a worker).
            let selector = parkwatch::spawn(async move {
                let (mut sum, mut from_a) = (0, 0);
                for _ in 0..n {
                    parkwatch::select! {
                        recv(ra) -> v => { sum += v.unwrap(); from_a += 1; }
                        recv(rb) -> v => sum += v.unwrap(),
                    }
                }
                (sum, from_a)
            });
            pa.await.unwrap();
            pb.await.unwrap();
            (selector.await.unwrap(), start.elapsed())
        })
        .unwrap();
    assert_eq!(sum, n * (n - 1) / 2, "every message received once");
    assert_eq!(from_a, n / 2, "each channel's messages all received");
    println!("{which}: {n} messages, cap {cap}: {:.1} ns/msg", took.as_nanos() as f64 / n as f64);
}
