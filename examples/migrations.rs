//! How often tasks move between workers: P producers and C consumers on one
//! channel of capacity CAP, on a 2-worker runtime, several runs in a row on
//! the same runtime. For each run it prints the time per message and how
//! many times per message a task's operation was polled on another worker
//! thread than its previous poll (a *migration*): 0 when the tasks gathered
//! on one worker, about 0.25 per message when they stay spread over both
//! and contend for the channel (`BENCHMARKS.md`, session 9).
//!
//! ```sh
//! cargo run --release --example migrations -- parkwatch 1 4 4   # parkwatch, mpmc/bounded(1)
//! cargo run --release --example migrations -- kanal 1 4 4       # the same over kanal, on plain tokio
//! ```
//!
//! Arguments: implementation (`parkwatch` or `kanal`), capacity, producers,
//! consumers, then optionally messages per run (400,000) and runs (6).

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::task::{Context, Poll};

/// Migrations counted so far.
static MIGRATIONS: AtomicU64 = AtomicU64::new(0);
/// Per task: the worker thread (a small number) of its last poll.
static LAST_THREAD: [AtomicU64; 64] = [const { AtomicU64::new(0) }; 64];

thread_local! {
    /// This thread's number (from 1).
    static THREAD: u64 = {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        NEXT.fetch_add(1, Relaxed)
    };
}

pin_project_lite::pin_project! {
    /// Counts a migration when task `task`'s future is polled on another
    /// thread than its previous poll.
    struct Tracked<F> {
        #[pin]
        fut: F,
        task: usize,
    }
}

impl<F: Future> Future for Tracked<F> {
    type Output = F::Output;
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        let me = THREAD.with(|t| *t);
        let before = LAST_THREAD[*this.task].swap(me, Relaxed);
        if before != 0 && before != me {
            MIGRATIONS.fetch_add(1, Relaxed);
        }
        this.fut.poll(cx)
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let which = args.next().unwrap_or_else(|| "parkwatch".into());
    let mut number = |default: u64| args.next().and_then(|a| a.parse().ok()).unwrap_or(default);
    let (cap, producers, consumers) = (number(1) as usize, number(4), number(4));
    let (n, runs) = (number(400_000), number(6));
    assert!(producers + consumers <= 64 && producers > 0 && consumers > 0, "1..=64 tasks in all");
    let (per_producer, per_consumer) = (n / producers, n / consumers);
    assert_eq!(per_producer * producers, per_consumer * consumers, "messages must split evenly");
    let total = per_producer * producers;
    // Runs `one_run` `runs` times, printing each run's time and migrations.
    let repeat = |one_run: &mut dyn FnMut()| {
        for run in 1..=runs {
            let start = std::time::Instant::now();
            one_run();
            let took = start.elapsed();
            let migrations = MIGRATIONS.swap(0, Relaxed);
            println!(
                "{which} cap {cap}, {producers}→{consumers}, run {run}: {:.1} ns/msg, {:.3} migrations/msg",
                took.as_nanos() as f64 / total as f64,
                migrations as f64 / total as f64
            );
        }
    };
    // One run's tasks, spawned with `$spawn` on the channel ends `$ends`
    // (a `(sender, receiver)` pair, made inside the runtime).
    macro_rules! exchange {
        ($spawn:path, $ends:expr) => {
            async move {
                let (tx, rx) = $ends;
                let mut tasks = Vec::new();
                for p in 0..producers as usize {
                    let tx = tx.clone();
                    tasks.push($spawn(async move {
                        for i in 0..per_producer {
                            Tracked { fut: tx.send(i), task: p }.await.unwrap();
                        }
                    }));
                }
                for q in 0..consumers as usize {
                    let rx = rx.clone();
                    tasks.push($spawn(async move {
                        for _ in 0..per_consumer {
                            Tracked { fut: rx.recv(), task: 32 + q }.await.unwrap();
                        }
                    }));
                }
                drop((tx, rx));
                for t in tasks {
                    t.await.unwrap();
                }
            }
        };
    }
    match which.as_str() {
        "parkwatch" => {
            let rt = parkwatch::Runtime::builder().worker_threads(2).build().unwrap();
            let ends = || {
                let c = parkwatch::chan::<u64>(cap);
                (c.sender(), c.receiver())
            };
            repeat(&mut || rt.block_on(exchange!(parkwatch::spawn, ends())).unwrap());
        }
        "kanal" => {
            let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
            repeat(&mut || rt.block_on(exchange!(tokio::spawn, kanal::bounded_async::<u64>(cap))));
        }
        other => panic!("unknown implementation {other:?} (parkwatch or kanal)"),
    }
}
