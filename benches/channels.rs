//! Channel throughput: parkwatch against crossbeam-channel, flume, kanal,
//! tokio::sync::mpsc and Go, in ns per message.
//!
//! ```text
//! cargo bench --bench channels                  # the real run (~80 s of measuring on 2 cores)
//! cargo bench --bench channels -- --quick       # smoke: ~2,000 messages per scenario
//! cargo bench --bench channels -- --n 100000 --reps 3 --filter spsc --no-go
//! ```
//!
//! Scenarios: bounded(0), bounded(1), bounded(1024) × spsc (1→1), mpsc (4→1),
//! mpmc (4→4), and select2 (one receiver selecting over two channels, each fed
//! by one producer). Two families:
//!
//! - **threads**: OS threads. parkwatch threads are registered tasks
//!   (`parkwatch::thread::spawn` inside `Runtime::block_on`) using the
//!   `_blocking` operations, which is what users get.
//! - **async**: tasks on a 2-worker multi-thread runtime (a parkwatch
//!   `Runtime` for parkwatch, a tokio runtime for flume, kanal and tokio), plus
//!   Go goroutines with GOMAXPROCS=2 when `go` is on PATH (benches/go/main.go).
//!
//! Every run checks the received count and sum (and, for select2, the count
//! per channel), and panics on a mismatch.
//!
//! Messages per run are chosen per row: the in-process implementations run
//! batches of doubling size until one takes 20 ms (this is also their
//! warm-up), and the row then uses `150 ms / (slowest ns/msg)` messages,
//! clamped to 20,000..1,000,000, for every column, Go included. Each cell is
//! the median of 5 runs; the runs of a row are interleaved (every round runs
//! each implementation once, in a rotating order), so that load from
//! elsewhere on the machine hits all columns alike. The spread (min, max) of
//! every cell goes to stderr.
//!
//! The "parkwatch (stacks off)" column runs in a child process: this
//! executable re-executed with `--parkwatch-serve` and `PARKWATCH_BACKTRACE=0`
//! (read once per process), kept for the whole session and asked for one run
//! at a time over a pipe, so its runs interleave with the others. The Go
//! column runs benches/go/main.go (built once with `go build` to a temporary
//! file) once per measured run; it warms up before each.
//!
//! Flags (unknown ones, like cargo's `--bench`, are ignored):
//! `--quick` (2,000 messages, one run, no warm-up), `--n N` (fixed messages
//! per run instead of calibrating), `--n-min N`, `--n-max N`, `--target-ms MS`
//! (calibration), `--reps R`, `--filter SUBSTR` / `--exact NAME` (scenarios),
//! `--family threads|async`, `--impl SUBSTR` (columns), `--no-go`,
//! `--no-warmup`, `--parkwatch-only` (only the parkwatch cells, in this
//! process: for profiling), `--parkwatch-serve` (internal: the stacks-off child).

// The peers' trait asks for `Send` futures explicitly (`-> impl Future + Send`),
// which `async fn` in the impls would only imply.
#![allow(clippy::manual_async_fn)]

use std::future::Future;
use std::pin::Pin;
use std::process::{Command, Stdio};
use std::sync::{Arc, Barrier};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

// ---------------------------------------------------------------------------
// Scenarios
// ---------------------------------------------------------------------------

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Pattern {
    Spsc,
    Mpsc,
    Mpmc,
    Select2,
}

#[derive(Clone, Copy, Debug)]
struct Scenario {
    pattern: Pattern,
    cap: usize,
}

impl Scenario {
    fn all() -> Vec<Scenario> {
        let mut v = Vec::new();
        for pattern in [Pattern::Spsc, Pattern::Mpsc, Pattern::Mpmc, Pattern::Select2] {
            for cap in [0, 1, 1024] {
                v.push(Scenario { pattern, cap });
            }
        }
        v
    }

    fn name(&self) -> String {
        let p = match self.pattern {
            Pattern::Spsc => "spsc",
            Pattern::Mpsc => "mpsc",
            Pattern::Mpmc => "mpmc",
            Pattern::Select2 => "select2",
        };
        format!("{p}/bounded({})", self.cap)
    }

    /// (producers, consumers); select2 has one producer per channel.
    fn shape(&self) -> (u64, u64) {
        match self.pattern {
            Pattern::Spsc => (1, 1),
            Pattern::Mpsc => (4, 1),
            Pattern::Mpmc => (4, 4),
            Pattern::Select2 => (2, 1),
        }
    }
}

/// The values producer `p` of `producers` sends, for `n` messages in all: the
/// union over all producers is exactly 1..=n.
fn values(p: u64, producers: u64, n: u64) -> std::ops::RangeInclusive<u64> {
    let per = n / producers;
    p * per + 1..=(p + 1) * per
}

fn expected_sum(n: u64) -> u64 {
    n * (n + 1) / 2
}

/// What the consumers saw: (count, sum) in total, and per select case.
fn verify(sc: Scenario, n: u64, got: &[(u64, u64)], per_case: Option<[u64; 2]>, who: &str) {
    let count: u64 = got.iter().map(|g| g.0).sum();
    let sum: u64 = got.iter().map(|g| g.1).sum();
    if count != n || sum != expected_sum(n) {
        panic!(
            "{who} {}: received {count} messages summing to {sum}, expected {n} summing to {}",
            sc.name(),
            expected_sum(n)
        );
    }
    if let Some([a, b]) = per_case {
        if a != n / 2 || b != n / 2 {
            panic!("{who} {}: select took {a} from a and {b} from b, expected {} each", sc.name(), n / 2);
        }
    }
}

// ---------------------------------------------------------------------------
// Threads family
// ---------------------------------------------------------------------------

/// A channel implementation used from OS threads.
trait SyncImpl: Sync {
    const NAME: &'static str;
    type Tx: Clone + Send + 'static;
    type Rx: Clone + Send + 'static;
    /// None: this implementation has no such channel (printed "n/a").
    fn chan(&self, cap: usize) -> Option<(Self::Tx, Self::Rx)>;
    fn send(tx: &Self::Tx, v: u64);
    fn recv(rx: &Self::Rx) -> u64;
    /// None when the implementation has no select.
    fn has_select(&self) -> bool;
    fn select2(a: &Self::Rx, b: &Self::Rx) -> (usize, u64);
    fn spawn<R: Send + 'static>(&self, f: impl FnOnce() -> R + Send + 'static) -> JoinHandle<R> {
        std::thread::spawn(f)
    }
    /// Runs the whole measurement (parkwatch: inside its runtime's `block_on`).
    fn enter<R>(&self, f: impl FnOnce() -> R) -> R {
        f()
    }
}

/// Starts the threads of a run together, and the clock before any can start.
struct Gate {
    ready: Barrier,
    go: Barrier,
}

impl Gate {
    fn new(threads: usize) -> Gate {
        Gate { ready: Barrier::new(threads + 1), go: Barrier::new(threads + 1) }
    }

    /// In each thread: waits until every thread is ready and the clock started.
    fn pass(&self) {
        self.ready.wait();
        self.go.wait();
    }

    /// In the timing thread: waits until every thread is ready, starts the
    /// clock, then lets them go (so a late-scheduled timing thread cannot
    /// start its clock after the work is done).
    fn open(&self) -> Instant {
        self.ready.wait();
        let t0 = Instant::now();
        self.go.wait();
        t0
    }
}

/// One run: returns the elapsed time from the moment every thread is ready to
/// the moment every consumer is done, or None for n/a.
fn run_threads<I: SyncImpl>(imp: &I, sc: Scenario, n: u64) -> Option<Duration> {
    if sc.pattern == Pattern::Select2 && !imp.has_select() {
        return None;
    }
    let (np, nc) = sc.shape();
    let (tx, rx) = imp.chan(sc.cap)?;
    let (tx2, rx2) = match sc.pattern {
        Pattern::Select2 => imp.chan(sc.cap)?,
        _ => (tx.clone(), rx.clone()),
    };
    Some(imp.enter(|| {
        let gate = Arc::new(Gate::new((np + nc) as usize));
        let mut producers = Vec::new();
        for p in 0..np {
            let tx = if sc.pattern == Pattern::Select2 && p == 1 { tx2.clone() } else { tx.clone() };
            let gate = gate.clone();
            producers.push(imp.spawn(move || {
                gate.pass();
                for v in values(p, np, n) {
                    I::send(&tx, v);
                }
            }));
        }
        let mut consumers = Vec::new();
        for _ in 0..nc {
            let (rx, rx2) = (rx.clone(), rx2.clone());
            let gate = gate.clone();
            let per = n / nc;
            let select = sc.pattern == Pattern::Select2;
            consumers.push(imp.spawn(move || {
                gate.pass();
                let (mut sum, mut cases) = (0u64, [0u64; 2]);
                for _ in 0..per {
                    if select {
                        let (i, v) = I::select2(&rx, &rx2);
                        cases[i] += 1;
                        sum += v;
                    } else {
                        sum += I::recv(&rx);
                    }
                }
                (per, sum, cases)
            }));
        }
        let t0 = gate.open();
        let got: Vec<(u64, u64, [u64; 2])> = consumers.into_iter().map(|h| h.join().expect("consumer")).collect();
        let elapsed = t0.elapsed();
        for p in producers {
            p.join().expect("producer");
        }
        let cases = (sc.pattern == Pattern::Select2).then(|| got[0].2);
        let pairs: Vec<(u64, u64)> = got.iter().map(|g| (g.0, g.1)).collect();
        verify(sc, n, &pairs, cases, I::NAME);
        // Senders stay alive in this scope until every consumer is done, so
        // no channel disconnects under a select.
        drop((tx, tx2, rx, rx2));
        elapsed
    }))
}

struct PwThreads {
    rt: parkwatch::Runtime,
}

impl SyncImpl for PwThreads {
    const NAME: &'static str = "parkwatch";
    type Tx = parkwatch::Chan<u64>;
    type Rx = parkwatch::Chan<u64>;
    fn chan(&self, cap: usize) -> Option<(Self::Tx, Self::Rx)> {
        let c = parkwatch::chan(cap);
        Some((c.clone(), c))
    }
    fn send(tx: &Self::Tx, v: u64) {
        tx.send_blocking(v).expect("parkwatch send");
    }
    fn recv(rx: &Self::Rx) -> u64 {
        rx.recv_blocking().expect("parkwatch recv")
    }
    fn has_select(&self) -> bool {
        true
    }
    fn select2(a: &Self::Rx, b: &Self::Rx) -> (usize, u64) {
        parkwatch::select_blocking! {
            recv(a) -> v => (0, v.expect("parkwatch select a")),
            recv(b) -> v => (1, v.expect("parkwatch select b")),
        }
    }
    fn spawn<R: Send + 'static>(&self, f: impl FnOnce() -> R + Send + 'static) -> JoinHandle<R> {
        parkwatch::thread::spawn(f)
    }
    fn enter<R>(&self, f: impl FnOnce() -> R) -> R {
        // The main task blocks in `join`, i.e. it runs user code: no verdict.
        match self.rt.block_on(async move { f() }) {
            Ok(v) => v,
            Err(deadlock) => panic!("parkwatch reported a deadlock in the benchmark:\n{deadlock}"),
        }
    }
}

struct Crossbeam;

impl SyncImpl for Crossbeam {
    const NAME: &'static str = "crossbeam";
    type Tx = crossbeam_channel::Sender<u64>;
    type Rx = crossbeam_channel::Receiver<u64>;
    fn chan(&self, cap: usize) -> Option<(Self::Tx, Self::Rx)> {
        Some(crossbeam_channel::bounded(cap))
    }
    fn send(tx: &Self::Tx, v: u64) {
        tx.send(v).expect("crossbeam send");
    }
    fn recv(rx: &Self::Rx) -> u64 {
        rx.recv().expect("crossbeam recv")
    }
    fn has_select(&self) -> bool {
        true
    }
    fn select2(a: &Self::Rx, b: &Self::Rx) -> (usize, u64) {
        crossbeam_channel::select! {
            recv(a) -> v => (0, v.expect("crossbeam select a")),
            recv(b) -> v => (1, v.expect("crossbeam select b")),
        }
    }
}

struct FlumeSync;

impl SyncImpl for FlumeSync {
    const NAME: &'static str = "flume";
    type Tx = flume::Sender<u64>;
    type Rx = flume::Receiver<u64>;
    fn chan(&self, cap: usize) -> Option<(Self::Tx, Self::Rx)> {
        Some(flume::bounded(cap))
    }
    fn send(tx: &Self::Tx, v: u64) {
        tx.send(v).expect("flume send");
    }
    fn recv(rx: &Self::Rx) -> u64 {
        rx.recv().expect("flume recv")
    }
    fn has_select(&self) -> bool {
        true
    }
    fn select2(a: &Self::Rx, b: &Self::Rx) -> (usize, u64) {
        flume::Selector::new()
            .recv(a, |v| (0, v.expect("flume select a")))
            .recv(b, |v| (1, v.expect("flume select b")))
            .wait()
    }
}

struct KanalSync;

impl SyncImpl for KanalSync {
    const NAME: &'static str = "kanal";
    type Tx = kanal::Sender<u64>;
    type Rx = kanal::Receiver<u64>;
    fn chan(&self, cap: usize) -> Option<(Self::Tx, Self::Rx)> {
        Some(kanal::bounded(cap))
    }
    fn send(tx: &Self::Tx, v: u64) {
        tx.send(v).expect("kanal send");
    }
    fn recv(rx: &Self::Rx) -> u64 {
        rx.recv().expect("kanal recv")
    }
    fn has_select(&self) -> bool {
        false // kanal 0.1 has no select
    }
    fn select2(_: &Self::Rx, _: &Self::Rx) -> (usize, u64) {
        unreachable!()
    }
}

// ---------------------------------------------------------------------------
// Async family
// ---------------------------------------------------------------------------

type BoxFut<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// A channel implementation used from async tasks.
trait AsyncImpl: Sync {
    const NAME: &'static str;
    type Tx: Clone + Send + Sync + 'static;
    type Rx: Send + 'static;
    fn chan(&self, cap: usize) -> Option<(Self::Tx, Self::Rx)>;
    /// Another receiver of the same channel; None: single-consumer only (mpmc n/a).
    fn clone_rx(rx: &Self::Rx) -> Option<Self::Rx>;
    fn send(tx: &Self::Tx, v: u64) -> impl Future<Output = ()> + Send + '_;
    fn recv(rx: &mut Self::Rx) -> impl Future<Output = u64> + Send + '_;
    fn has_select(&self) -> bool;
    fn select2<'a>(a: &'a mut Self::Rx, b: &'a mut Self::Rx) -> impl Future<Output = (usize, u64)> + Send + 'a;
    fn spawn<F>(&self, f: F) -> BoxFut<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static;
    fn block_on<F: Future>(&self, f: F) -> F::Output;
}

fn run_async<I: AsyncImpl>(imp: &I, sc: Scenario, n: u64) -> Option<Duration> {
    if sc.pattern == Pattern::Select2 && !imp.has_select() {
        return None;
    }
    let (np, nc) = sc.shape();
    let (tx, rx) = imp.chan(sc.cap)?;
    let mut rxs = vec![rx];
    let mut txs = vec![tx];
    match sc.pattern {
        Pattern::Select2 => {
            let (tx2, rx2) = imp.chan(sc.cap)?;
            txs.push(tx2);
            rxs.push(rx2);
        }
        Pattern::Mpmc => {
            for _ in 1..nc {
                rxs.push(I::clone_rx(&rxs[0])?);
            }
        }
        _ => {}
    }
    let keep_alive = txs.clone();
    let select = sc.pattern == Pattern::Select2;
    let run = async move {
        let t0 = Instant::now();
        let mut producers = Vec::new();
        for p in 0..np {
            let tx = txs[if select { p as usize } else { 0 }].clone();
            producers.push(imp.spawn(async move {
                for v in values(p, np, n) {
                    I::send(&tx, v).await;
                }
            }));
        }
        drop(txs);
        let per = n / nc;
        let mut consumers = Vec::new();
        if select {
            let mut it = rxs.into_iter();
            let (mut a, mut b) = (it.next().unwrap(), it.next().unwrap());
            consumers.push(imp.spawn(async move {
                let (mut sum, mut cases) = (0u64, [0u64; 2]);
                for _ in 0..per {
                    let (i, v) = I::select2(&mut a, &mut b).await;
                    cases[i] += 1;
                    sum += v;
                }
                (per, sum, cases)
            }));
        } else {
            for mut rx in rxs {
                consumers.push(imp.spawn(async move {
                    let mut sum = 0u64;
                    for _ in 0..per {
                        sum += I::recv(&mut rx).await;
                    }
                    (per, sum, [0u64; 2])
                }));
            }
        }
        let mut got = Vec::new();
        for c in consumers {
            got.push(c.await);
        }
        let elapsed = t0.elapsed();
        for p in producers {
            p.await;
        }
        let cases = select.then(|| got[0].2);
        let pairs: Vec<(u64, u64)> = got.iter().map(|g| (g.0, g.1)).collect();
        verify(sc, n, &pairs, cases, I::NAME);
        elapsed
    };
    // Cut off at the deadline: the run's tasks stay parked in the runtime,
    // where they cost nothing, until it is dropped at the end.
    let elapsed = imp.block_on(async move { tokio::time::timeout(run_deadline(), run).await });
    drop(keep_alive);
    match elapsed {
        Ok(elapsed) => Some(elapsed),
        Err(_) => {
            eprintln!("  {} async {}: HUNG, cut off after {:?} ({n} messages)", I::NAME, sc.name(), run_deadline());
            Some(Duration::MAX)
        }
    }
}

struct PwAsync {
    rt: parkwatch::Runtime,
}

impl AsyncImpl for PwAsync {
    const NAME: &'static str = "parkwatch";
    type Tx = parkwatch::Sender<u64>;
    type Rx = parkwatch::Receiver<u64>;
    fn chan(&self, cap: usize) -> Option<(Self::Tx, Self::Rx)> {
        let c = parkwatch::chan(cap);
        Some((c.sender(), c.receiver()))
    }
    fn clone_rx(rx: &Self::Rx) -> Option<Self::Rx> {
        Some(rx.clone())
    }
    fn send(tx: &Self::Tx, v: u64) -> impl Future<Output = ()> + Send + '_ {
        async move { tx.send(v).await.expect("parkwatch send") }
    }
    fn recv(rx: &mut Self::Rx) -> impl Future<Output = u64> + Send + '_ {
        async move { rx.recv().await.expect("parkwatch recv") }
    }
    fn has_select(&self) -> bool {
        true
    }
    fn select2<'a>(a: &'a mut Self::Rx, b: &'a mut Self::Rx) -> impl Future<Output = (usize, u64)> + Send + 'a {
        async move {
            parkwatch::select! {
                recv(&*a) -> v => (0, v.expect("parkwatch select a")),
                recv(&*b) -> v => (1, v.expect("parkwatch select b")),
            }
        }
    }
    fn spawn<F>(&self, f: F) -> BoxFut<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let h = parkwatch::spawn(f);
        Box::pin(async move { h.await.expect("parkwatch task") })
    }
    fn block_on<F: Future>(&self, f: F) -> F::Output {
        match self.rt.block_on(f) {
            Ok(v) => v,
            Err(deadlock) => panic!("parkwatch reported a deadlock in the benchmark:\n{deadlock}"),
        }
    }
}

fn tokio_block_on<F: Future>(rt: &tokio::runtime::Runtime, f: F) -> F::Output {
    rt.block_on(f)
}

fn tokio_spawn<F>(f: F) -> BoxFut<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    let h = tokio::spawn(f);
    Box::pin(async move { h.await.expect("tokio task") })
}

struct FlumeAsync<'r>(&'r tokio::runtime::Runtime);

impl AsyncImpl for FlumeAsync<'_> {
    const NAME: &'static str = "flume";
    type Tx = flume::Sender<u64>;
    type Rx = flume::Receiver<u64>;
    fn chan(&self, cap: usize) -> Option<(Self::Tx, Self::Rx)> {
        Some(flume::bounded(cap))
    }
    fn clone_rx(rx: &Self::Rx) -> Option<Self::Rx> {
        Some(rx.clone())
    }
    fn send(tx: &Self::Tx, v: u64) -> impl Future<Output = ()> + Send + '_ {
        async move { tx.send_async(v).await.expect("flume send") }
    }
    fn recv(rx: &mut Self::Rx) -> impl Future<Output = u64> + Send + '_ {
        async move { rx.recv_async().await.expect("flume recv") }
    }
    fn has_select(&self) -> bool {
        true // RecvFut is cancel-safe: a fired but dropped hook passes the wake on
    }
    fn select2<'a>(a: &'a mut Self::Rx, b: &'a mut Self::Rx) -> impl Future<Output = (usize, u64)> + Send + 'a {
        async move {
            tokio::select! {
                v = a.recv_async() => (0, v.expect("flume select a")),
                v = b.recv_async() => (1, v.expect("flume select b")),
            }
        }
    }
    fn spawn<F>(&self, f: F) -> BoxFut<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        tokio_spawn(f)
    }
    fn block_on<F: Future>(&self, f: F) -> F::Output {
        tokio_block_on(self.0, f)
    }
}

struct KanalAsync<'r>(&'r tokio::runtime::Runtime);

impl AsyncImpl for KanalAsync<'_> {
    const NAME: &'static str = "kanal";
    type Tx = kanal::AsyncSender<u64>;
    type Rx = kanal::AsyncReceiver<u64>;
    fn chan(&self, cap: usize) -> Option<(Self::Tx, Self::Rx)> {
        Some(kanal::bounded_async(cap))
    }
    fn clone_rx(rx: &Self::Rx) -> Option<Self::Rx> {
        Some(rx.clone())
    }
    fn send(tx: &Self::Tx, v: u64) -> impl Future<Output = ()> + Send + '_ {
        async move { tx.send(v).await.expect("kanal send") }
    }
    fn recv(rx: &mut Self::Rx) -> impl Future<Output = u64> + Send + '_ {
        async move { rx.recv().await.expect("kanal recv") }
    }
    fn has_select(&self) -> bool {
        // No select in kanal 0.1, and its ReceiveFuture is not cancel-safe (a
        // dropped future that a sender already served drops the value), so
        // tokio::select! over two of them would lose messages.
        false
    }
    fn select2<'a>(_: &'a mut Self::Rx, _: &'a mut Self::Rx) -> impl Future<Output = (usize, u64)> + Send + 'a {
        async { unreachable!() }
    }
    fn spawn<F>(&self, f: F) -> BoxFut<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        tokio_spawn(f)
    }
    fn block_on<F: Future>(&self, f: F) -> F::Output {
        tokio_block_on(self.0, f)
    }
}

struct TokioMpsc<'r>(&'r tokio::runtime::Runtime);

impl AsyncImpl for TokioMpsc<'_> {
    const NAME: &'static str = "tokio";
    type Tx = tokio::sync::mpsc::Sender<u64>;
    type Rx = tokio::sync::mpsc::Receiver<u64>;
    fn chan(&self, cap: usize) -> Option<(Self::Tx, Self::Rx)> {
        // tokio's mpsc has no capacity 0 (it panics).
        (cap > 0).then(|| tokio::sync::mpsc::channel(cap))
    }
    fn clone_rx(_: &Self::Rx) -> Option<Self::Rx> {
        None // single consumer
    }
    fn send(tx: &Self::Tx, v: u64) -> impl Future<Output = ()> + Send + '_ {
        async move { tx.send(v).await.expect("tokio send") }
    }
    fn recv(rx: &mut Self::Rx) -> impl Future<Output = u64> + Send + '_ {
        async move { rx.recv().await.expect("tokio recv") }
    }
    fn has_select(&self) -> bool {
        true // Receiver::recv is cancel-safe
    }
    fn select2<'a>(a: &'a mut Self::Rx, b: &'a mut Self::Rx) -> impl Future<Output = (usize, u64)> + Send + 'a {
        async move {
            tokio::select! {
                v = a.recv() => (0, v.expect("tokio select a")),
                v = b.recv() => (1, v.expect("tokio select b")),
            }
        }
    }
    fn spawn<F>(&self, f: F) -> BoxFut<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        tokio_spawn(f)
    }
    fn block_on<F: Future>(&self, f: F) -> F::Output {
        tokio_block_on(self.0, f)
    }
}

// ---------------------------------------------------------------------------
// Measurement
// ---------------------------------------------------------------------------

#[derive(Clone, Debug)]
struct Opts {
    quick: bool,
    /// Fixed messages per run (`--n`, `--quick`); otherwise calibrated per row.
    n: Option<u64>,
    n_min: u64,
    n_max: u64,
    /// Calibration aims at runs this long for the slowest implementation of a row.
    target: Duration,
    reps: usize,
    warmup: bool,
    filter: Option<String>,
    exact: Option<String>,
    family: Option<String>,
    /// Only the implementations whose column name contains this (`--impl`).
    only: Option<String>,
    go: bool,
    parkwatch_only: bool,
    serve: bool,
}

impl Opts {
    fn parse() -> Opts {
        let args: Vec<String> = std::env::args().skip(1).collect();
        let mut o = Opts {
            quick: false,
            n: None,
            n_min: 20_000,
            n_max: 1_000_000,
            target: Duration::from_millis(150),
            reps: 5,
            warmup: true,
            filter: None,
            exact: None,
            family: None,
            only: None,
            go: true,
            parkwatch_only: false,
            serve: false,
        };
        let mut reps: Option<usize> = None;
        let mut i = 0;
        while i < args.len() {
            let next = args.get(i + 1).cloned();
            let num = || next.as_deref().and_then(|s| s.replace('_', "").parse::<u64>().ok());
            let mut takes_value = true;
            match args[i].as_str() {
                "--n" => o.n = num(),
                "--n-max" => o.n_max = num().unwrap_or(o.n_max),
                "--n-min" => o.n_min = num().unwrap_or(o.n_min),
                "--target-ms" => o.target = Duration::from_millis(num().unwrap_or(150)),
                "--reps" => reps = num().map(|r| r as usize),
                "--deadline-ms" => RUN_DEADLINE_MS.store(num().unwrap_or(30_000), std::sync::atomic::Ordering::Relaxed),
                "--filter" => o.filter = next,
                "--exact" => o.exact = next,
                "--family" => o.family = next,
                "--impl" => o.only = next,
                flag => {
                    takes_value = false;
                    match flag {
                        "--quick" => o.quick = true,
                        "--no-go" => o.go = false,
                        "--no-warmup" => o.warmup = false,
                        "--parkwatch-only" => o.parkwatch_only = true,
                        "--parkwatch-serve" => o.serve = true,
                        _ => {} // cargo's `--bench`, libtest flags, ...
                    }
                }
            }
            i += if takes_value { 2 } else { 1 };
        }
        if o.quick {
            o.n = Some(o.n.unwrap_or(2_000));
            o.reps = 1;
            o.warmup = false;
        }
        if let Some(r) = reps {
            o.reps = r.max(1);
        }
        o
    }

    fn wants(&self, family: &str, sc: Scenario) -> bool {
        let name = sc.name();
        self.family.as_deref().is_none_or(|f| f == family)
            && self.filter.as_deref().is_none_or(|f| name.contains(f))
            && self.exact.as_deref().is_none_or(|f| name == f)
    }
}

/// Every scenario splits n evenly among 1, 2 or 4 producers and consumers.
fn round_n(n: u64) -> u64 {
    // Two significant digits, a multiple of 4.
    let mut scale = 1;
    while n / scale >= 100 {
        scale *= 10;
    }
    ((n / scale * scale) / 4).max(1) * 4
}

/// Runs one measurement of `n` messages; ns/msg, or None for n/a.
type RunFn<'a> = Box<dyn Fn(u64) -> Option<f64> + 'a>;

struct Runner<'a> {
    name: &'static str,
    /// In this process (calibrated), or a child process (parkwatch stacks off, Go).
    local: bool,
    /// Needs a warm-up run before its measured runs (all but Go).
    warm: bool,
    run: RunFn<'a>,
}

fn ns_per_msg(d: Duration, n: u64) -> f64 {
    if d == Duration::MAX {
        return HUNG;
    }
    d.as_nanos() as f64 / n as f64
}

/// ns/msg of the slowest local runner, by runs of doubling size until one
/// takes 20 ms (this is also the warm-up). None if every runner is n/a.
fn calibrate(o: &Opts, runners: &[Runner<'_>]) -> Option<f64> {
    let mut worst: Option<f64> = None;
    for r in runners.iter().filter(|r| r.local) {
        let mut n = 2_000;
        while let Some(ns) = (r.run)(n) {
            if ns == HUNG {
                break;
            }
            if ns * n as f64 >= 20e6 || n >= o.n_max {
                worst = Some(worst.map_or(ns, |w: f64| w.max(ns)));
                break;
            }
            n *= 2;
        }
    }
    worst
}

/// Samples per implementation (None: n/a).
struct Row {
    n: u64,
    samples: Vec<(&'static str, Option<Vec<f64>>)>,
}

fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// Measures one row: every implementation `reps` times, interleaved (the
/// order rotates each round), so load from elsewhere hits all columns alike.
fn measure_row(o: &Opts, family: &str, sc: Scenario, mut runners: Vec<Runner<'_>>) -> Row {
    if let Some(only) = &o.only {
        runners.retain(|r| r.name.contains(only.as_str()));
    }
    let n = match o.n {
        Some(n) => round_n(n.max(4)),
        None => {
            let worst = calibrate(o, &runners).unwrap_or(1.0);
            round_n(((o.target.as_nanos() as f64 / worst) as u64).clamp(o.n_min, o.n_max))
        }
    };
    // Warm-up: calibration warmed the local runners; the stacks-off child gets
    // one run of n/10 (the Go program warms up by itself in every run).
    if o.warmup {
        let warm = round_n((n / 10).max(2_000));
        for r in runners.iter().filter(|r| r.warm && (o.n.is_some() || !r.local)) {
            (r.run)(warm);
        }
    }
    let k = runners.len();
    let mut samples: Vec<Option<Vec<f64>>> = vec![Some(Vec::new()); k];
    for rep in 0..o.reps {
        for j in 0..k {
            let i = (j + rep) % k;
            if samples[i].as_ref().is_none_or(|s| s.contains(&HUNG)) {
                continue;
            }
            match (runners[i].run)(n) {
                Some(ns) => samples[i].as_mut().unwrap().push(ns),
                None => samples[i] = None,
            }
        }
    }
    let row = Row { n, samples: runners.iter().map(|r| r.name).zip(samples).collect() };
    for (name, s) in &row.samples {
        match s {
            Some(s) if s.contains(&HUNG) => {
                eprintln!("  {family:7} {:20} n={n:<8} {name:23}      hung", sc.name())
            }
            Some(s) => {
                let (lo, hi) = (s.iter().cloned().fold(f64::MAX, f64::min), s.iter().cloned().fold(0.0, f64::max));
                eprintln!(
                    "  {family:7} {:20} n={n:<8} {name:23} {:9.1} ns/msg  [min {lo:.1}, max {hi:.1}]",
                    sc.name(),
                    median(s)
                );
            }
            None => eprintln!("  {family:7} {:20} n={n:<8} {name:23}       n/a", sc.name()),
        }
    }
    row
}

fn local_threads<'a, I: SyncImpl>(imp: &'a I, sc: Scenario) -> Runner<'a> {
    Runner {
        name: I::NAME,
        local: true,
        warm: true,
        run: Box::new(move |n| run_threads(imp, sc, n).map(|d| ns_per_msg(d, n))),
    }
}

fn local_async<'a, I: AsyncImpl>(imp: &'a I, sc: Scenario) -> Runner<'a> {
    Runner {
        name: I::NAME,
        local: true,
        warm: true,
        run: Box::new(move |n| run_async(imp, sc, n).map(|d| ns_per_msg(d, n))),
    }
}

const STACKS_OFF: &str = "parkwatch (stacks off)";

/// The longest one async run may take, in ms (`--deadline-ms`; a run is
/// calibrated to ~150 ms and at most 1,000,000 messages) before it counts as
/// hung: flume's async rendezvous can lose a wake-up (zesterer/flume#140) and
/// park every task of a run for good. A hung run is cut off, its cell printed
/// as `hung`, and that implementation is not run again in its row.
static RUN_DEADLINE_MS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(30_000);

fn run_deadline() -> Duration {
    Duration::from_millis(RUN_DEADLINE_MS.load(std::sync::atomic::Ordering::Relaxed))
}

/// ns/msg standing for a run that hung.
const HUNG: f64 = f64::INFINITY;
const CHILD_TAG: &str = "PWROW";

/// parkwatch with `PARKWATCH_BACKTRACE=0`, which parkwatch reads once per
/// process: this benchmark re-executed with `--parkwatch-serve`, kept alive for
/// the whole session (so it is as warm as this process), doing one run per
/// request line `family<TAB>scenario<TAB>n` and answering
/// `PWROW<TAB>family<TAB>scenario<TAB>ns/msg` (or `n/a`).
struct StacksOff {
    child: std::process::Child,
    to: Option<std::process::ChildStdin>,
    from: std::io::BufReader<std::process::ChildStdout>,
}

impl StacksOff {
    fn start() -> StacksOff {
        let exe = std::env::current_exe().expect("current_exe");
        let mut child = Command::new(exe)
            .arg("--parkwatch-serve")
            .env("PARKWATCH_BACKTRACE", "0")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("re-exec the benchmark for stacks off");
        let to = child.stdin.take();
        let from = std::io::BufReader::new(child.stdout.take().expect("child stdout"));
        StacksOff { child, to, from }
    }

    fn run(&mut self, family: &str, sc: Scenario, n: u64) -> Option<f64> {
        use std::io::{BufRead, Write};
        let to = self.to.as_mut().expect("child stdin");
        writeln!(to, "{family}\t{}\t{n}", sc.name()).expect("write to the stacks-off child");
        to.flush().expect("write to the stacks-off child");
        let mut line = String::new();
        self.from.read_line(&mut line).expect("read from the stacks-off child");
        let f: Vec<&str> = line.trim_end().split('\t').collect();
        match f[..] {
            [CHILD_TAG, _, _, v] => v.parse().ok(),
            _ => panic!("the stacks-off child failed on {family} {} (answered {line:?})", sc.name()),
        }
    }

    fn runner<'a>(cell: &'a std::cell::RefCell<StacksOff>, family: &'static str, sc: Scenario) -> Runner<'a> {
        Runner {
            name: STACKS_OFF,
            local: false,
            warm: true,
            run: Box::new(move |n| cell.borrow_mut().run(family, sc, n)),
        }
    }
}

impl Drop for StacksOff {
    fn drop(&mut self) {
        // Closing its stdin ends the child's loop.
        drop(self.to.take());
        let _ = self.child.wait();
    }
}

/// `--parkwatch-serve`: the stacks-off child (see [`StacksOff`]).
fn serve_main() {
    use std::io::{BufRead, Write};
    let threads = PwThreads { rt: pw_runtime() };
    let asy = PwAsync { rt: pw_runtime() };
    let stdin = std::io::stdin();
    let mut out = std::io::stdout();
    for line in stdin.lock().lines() {
        let line = line.expect("read a request");
        let f: Vec<&str> = line.split('\t').collect();
        let [family, name, n] = f[..] else { panic!("bad request {line:?}") };
        let sc = Scenario::all().into_iter().find(|sc| sc.name() == name).expect("known scenario");
        let n: u64 = n.parse().expect("message count");
        let d = match family {
            "threads" => run_threads(&threads, sc, n),
            _ => run_async(&asy, sc, n),
        };
        let cell = d.map_or("n/a".to_string(), |d| ns_per_msg(d, n).to_string());
        writeln!(out, "{CHILD_TAG}\t{family}\t{name}\t{cell}").and_then(|_| out.flush()).expect("answer");
    }
}

/// The Go program, built once to a temporary file; None when `go` is not on
/// PATH or the build fails.
struct GoBin(std::path::PathBuf);

impl GoBin {
    fn build() -> Option<GoBin> {
        let dir = env!("CARGO_MANIFEST_DIR");
        let Ok(v) = Command::new("go").arg("version").output() else {
            eprintln!("go is not on PATH: no Go column");
            return None;
        };
        eprintln!("Go: {}", String::from_utf8_lossy(&v.stdout).trim());
        let bin = std::env::temp_dir().join(format!("parkwatch-bench-go-{}", std::process::id()));
        let built =
            Command::new("go").current_dir(dir).args(["build", "-o"]).arg(&bin).arg("benches/go/main.go").status();
        if !matches!(built, Ok(s) if s.success()) {
            eprintln!("go build benches/go/main.go failed: no Go column");
            return None;
        }
        Some(GoBin(bin))
    }

    /// One run of `sc` with `n` messages; the program prints `go <scenario> <ns/msg>`.
    fn runner<'a>(&'a self, o: &Opts, sc: Scenario) -> Runner<'a> {
        let warmup = if o.warmup { "warmup" } else { "nowarmup" };
        Runner {
            name: "go",
            local: false,
            warm: false,
            run: Box::new(move |n| {
                let out = Command::new(&self.0)
                    .args([n.to_string(), "1".into(), warmup.into(), format!("={}", sc.name())])
                    .stderr(Stdio::inherit())
                    .output()
                    .expect("run the Go benchmark");
                if !out.status.success() {
                    panic!("the Go benchmark failed on {}: {}", sc.name(), out.status);
                }
                let name = sc.name();
                String::from_utf8_lossy(&out.stdout).lines().find_map(|l| {
                    let f: Vec<&str> = l.split_whitespace().collect();
                    match f[..] {
                        ["go", s, v] if s == name => v.parse().ok(),
                        _ => None,
                    }
                })
            }),
        }
    }
}

impl Drop for GoBin {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn pw_runtime() -> parkwatch::Runtime {
    parkwatch::Runtime::builder().worker_threads(2).build().expect("parkwatch runtime")
}

fn tokio_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("tokio runtime")
}

/// `--parkwatch-only`: runs only the selected parkwatch cells in this process
/// and prints `PWROW<TAB>family<TAB>scenario<TAB>ns/msg` (for profiling one
/// cell, e.g. under perf or callgrind, with or without `PARKWATCH_BACKTRACE=0`).
fn child_main(o: &Opts) {
    let threads = PwThreads { rt: pw_runtime() };
    let asy = PwAsync { rt: pw_runtime() };
    let n = round_n(o.n.unwrap_or(200_000).max(4));
    for family in ["threads", "async"] {
        for sc in Scenario::all().into_iter().filter(|&sc| o.wants(family, sc)) {
            let run = |n: u64| match family {
                "threads" => run_threads(&threads, sc, n),
                _ => run_async(&asy, sc, n),
            };
            if o.warmup {
                run(round_n((n / 10).max(2_000)));
            }
            let mut v: Vec<f64> = Vec::new();
            for _ in 0..o.reps {
                match run(n) {
                    Some(d) => v.push(ns_per_msg(d, n)),
                    None => break,
                }
            }
            let cell = if v.is_empty() { "n/a".to_string() } else { median(&v).to_string() };
            println!("{CHILD_TAG}\t{family}\t{}\t{cell}", sc.name());
        }
    }
}

fn fmt_ns(v: Option<f64>) -> String {
    match v {
        None => "n/a".into(),
        Some(HUNG) => "hung".into(),
        Some(v) => format!("{v:.1}"),
    }
}

fn print_table(family: &str, rows: &[(Scenario, Row)], peers: &[&str], with_go: bool) {
    if rows.is_empty() {
        return;
    }
    let mut cols: Vec<&str> = vec!["parkwatch", STACKS_OFF];
    cols.extend(peers);
    if with_go {
        cols.push("go");
    }
    let mut head = vec!["scenario (ns/msg)".to_string(), "msgs/run".into()];
    head.extend(cols.iter().map(|c| c.to_string()));
    head.push("parkwatch / best Rust".into());
    head.push("stacks off / best Rust".into());
    if with_go {
        head.push("parkwatch / go".into());
    }
    println!("\n### {family}\n");
    println!("| {} |", head.join(" | "));
    println!("|{}", head.iter().map(|_| "---|").collect::<String>());
    for (sc, row) in rows {
        // A hung cell reads as the median of its runs: any run that hung makes it `hung`.
        let get = |imp: &str| {
            let runs = row.samples.iter().find(|s| s.0 == imp).and_then(|s| s.1.as_deref())?;
            Some(if runs.contains(&HUNG) { HUNG } else { median(runs) })
        };
        let mut line = vec![sc.name(), row.n.to_string()];
        line.extend(cols.iter().map(|c| fmt_ns(get(c))));
        let best = peers.iter().filter_map(|p| get(p)).filter(|v| v.is_finite()).min_by(|a, b| a.total_cmp(b));
        let ratio = |a: Option<f64>, b: Option<f64>| match (a, b) {
            (Some(HUNG), _) => "hung".into(),
            (Some(a), Some(b)) if b > 0.0 && b.is_finite() => format!("{:.2}×", a / b),
            _ => "n/a".into(),
        };
        line.push(ratio(get("parkwatch"), best));
        line.push(ratio(get(STACKS_OFF), best));
        if with_go {
            line.push(ratio(get("parkwatch"), get("go")));
        }
        println!("| {} |", line.join(" | "));
    }
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map_or("?".into(), |s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
}

fn main() {
    let o = Opts::parse();
    if o.serve {
        serve_main();
        return;
    }
    if o.parkwatch_only {
        child_main(&o);
        return;
    }
    let start = Instant::now();
    if std::env::var("PARKWATCH_BACKTRACE").is_ok() {
        eprintln!(
            "warning: PARKWATCH_BACKTRACE is set in this process: the 'parkwatch' column may have stacks off too"
        );
    }
    let load_before = loadavg();
    eprintln!(
        "channels bench: {}, median of {} run(s) per cell; load average {load_before}",
        match o.n {
            Some(n) => format!("{n} messages per run"),
            None => format!(
                "messages per run calibrated per row to ~{} ms ({}..{})",
                o.target.as_millis(),
                o.n_min,
                o.n_max
            ),
        },
        o.reps
    );
    let pw_threads = PwThreads { rt: pw_runtime() };
    let pw_async = PwAsync { rt: pw_runtime() };
    let rt = tokio_runtime();
    let (flume_a, kanal_a, tokio_a) = (FlumeAsync(&rt), KanalAsync(&rt), TokioMpsc(&rt));
    let wants_async = Scenario::all().into_iter().any(|sc| o.wants("async", sc));
    let go = if o.go && wants_async { GoBin::build() } else { None };
    let stacks_off = std::cell::RefCell::new(StacksOff::start());

    let mut threads_rows = Vec::new();
    for sc in Scenario::all().into_iter().filter(|&sc| o.wants("threads", sc)) {
        let runners = vec![
            local_threads(&pw_threads, sc),
            StacksOff::runner(&stacks_off, "threads", sc),
            local_threads(&Crossbeam, sc),
            local_threads(&FlumeSync, sc),
            local_threads(&KanalSync, sc),
        ];
        threads_rows.push((sc, measure_row(&o, "threads", sc, runners)));
    }
    let mut async_rows = Vec::new();
    for sc in Scenario::all().into_iter().filter(|&sc| o.wants("async", sc)) {
        let mut runners = vec![
            local_async(&pw_async, sc),
            StacksOff::runner(&stacks_off, "async", sc),
            local_async(&flume_a, sc),
            local_async(&kanal_a, sc),
            local_async(&tokio_a, sc),
        ];
        if let Some(go) = &go {
            runners.push(go.runner(&o, sc));
        }
        async_rows.push((sc, measure_row(&o, "async", sc, runners)));
    }

    println!("\n## Channel throughput: ns per message, lower is better\n");
    println!(
        "Median of {} run(s) per cell; load average before {load_before}, after {}; {:.0} s in all.",
        o.reps,
        loadavg(),
        start.elapsed().as_secs_f64()
    );
    print_table("threads", &threads_rows, &["crossbeam", "flume", "kanal"], false);
    print_table("async", &async_rows, &["flume", "kanal", "tokio"], go.is_some());
    println!(
        "\nbest Rust = fastest non-parkwatch Rust column of the row; n/a = not supported by that implementation; \
         hung = a run did not finish within {:?} and was cut off.",
        run_deadline()
    );
    // A peer that hangs is reported in its cell; parkwatch hanging is a bug.
    let parkwatch_hung = async_rows
        .iter()
        .flat_map(|(_, row)| &row.samples)
        .any(|(name, runs)| name.starts_with("parkwatch") && runs.as_ref().is_some_and(|r| r.contains(&HUNG)));
    if parkwatch_hung {
        eprintln!("parkwatch hung in the benchmark (see the `hung` cells)");
        std::process::exit(1);
    }
}
