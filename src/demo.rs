//! The demo service behind `parkwatch demo` (and `cargo run`): a small
//! service on a parkwatch runtime with three kinds of tasks, so the dashboard
//! has something to show.
//!
//! - **Healthy workers**: a dispatcher driven by a ticker hands jobs to a
//!   pool of named workers (`worker-1` ..) over a buffered channel; a
//!   collector receives their results.
//! - **A leaking fan-out**: every request asks three replicas and takes the
//!   first answer, or gives up after a timeout. The replicas that answer late
//!   stay blocked forever sending on an unbuffered channel nobody reads any
//!   more: Go's most common goroutine leak. Their number grows with every request.
//! - **A partial deadlock through a channel and a lock**: `ledger` locks the
//!   accounts and then hands an entry to `auditor` over an unbuffered channel;
//!   after a few rounds `auditor` starts taking the lock before receiving. Each
//!   now waits for the other, while the rest of the service runs on.
//!
//! The main task serves requests on a ticker and is in none of this: it runs
//! until stopped. Frames of this module are shown as user code in dumps.

use std::io::Write as _;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::server::{Server, ServerBuilder};
use crate::sync::Mutex;
use crate::{chan, select, time, Chan, Receiver, Runtime, Sender};

/// Settings of the demo.
#[derive(Clone, Debug)]
pub struct DemoOptions {
    /// Where the dashboard is served (`127.0.0.1:6060`; port 0 picks a free one).
    pub addr: SocketAddr,
    /// The server's bearer token (else `PARKWATCH_TOKEN`, else none).
    pub token: Option<String>,
    /// After how long a parked task is a leak suspect.
    pub leak_after: Duration,
    /// Healthy workers in the pool.
    pub workers: usize,
    /// Time between two requests of the leaking fan-out.
    pub request_every: Duration,
    /// The fan-out stops leaking once this many replicas are stuck.
    pub max_leaked: usize,
}

impl Default for DemoOptions {
    fn default() -> Self {
        DemoOptions {
            addr: SocketAddr::from(([127, 0, 0, 1], crate::server::DEFAULT_PORT)),
            token: None,
            leak_after: Duration::from_secs(5),
            workers: 4,
            request_every: Duration::from_millis(500),
            max_leaked: 20_000,
        }
    }
}

/// A demo running on a thread of its own (see [`start`]).
pub struct Demo {
    server: Option<Server>,
    stop: Chan<()>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Demo {
    /// The dashboard's address.
    pub fn addr(&self) -> SocketAddr {
        self.server.as_ref().map(Server::local_addr).expect("the demo serves until stopped")
    }

    /// The dashboard's URL.
    pub fn url(&self) -> String {
        format!("http://{}/debug/tasks", self.addr())
    }

    /// Stops the service (dropping its tasks, stuck ones included) and the server.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        let _ = self.stop.close();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        if let Some(s) = self.server.take() {
            s.shutdown();
        }
    }
}

impl Drop for Demo {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Starts the dashboard and the demo service on a thread of its own.
pub fn start(opts: DemoOptions) -> std::io::Result<Demo> {
    let mut server = ServerBuilder::new().addr(opts.addr).leak_after(opts.leak_after);
    if let Some(t) = &opts.token {
        server = server.token(t.clone());
    }
    let server = server.start()?;
    let rt = Runtime::builder().leak_after(opts.leak_after).build()?;
    let stop = chan::<()>(0);
    let stop_rx = stop.receiver();
    let (ready_tx, ready) = std::sync::mpsc::channel::<()>();
    let thread = std::thread::Builder::new().name("parkwatch-demo".into()).spawn(move || {
        match rt.block_on(service(opts, stop_rx, ready_tx)) {
            Ok(()) => {}
            Err(deadlock) => eprintln!("parkwatch demo: the main task deadlocked (a bug in the demo):\n{deadlock}"),
        }
    })?;
    // Every task of the service exists once `start` returns.
    let _ = ready.recv_timeout(std::time::Duration::from_secs(10));
    Ok(Demo { server: Some(server), stop, thread: Some(thread) })
}

/// Runs the demo until the process is stopped, printing the dashboard's URL.
pub fn run(opts: DemoOptions) -> std::io::Result<()> {
    let demo = start(opts)?;
    let url = demo.url();
    let base = url.trim_end_matches("/debug/tasks");
    let mut text = format!(
        "parkwatch demo: dashboard at {url}\n  \
         goroutine dump:  {base}/debug/pprof/goroutine?debug=2\n  \
         leaks (pprof):   {base}/debug/pprof/goroutineleak\n  \
         metrics:         {base}/metrics\n"
    );
    if demo.server.as_ref().is_some_and(Server::requires_token) {
        text.push_str(&format!("  a token is required: open {url}?token=<token> once in the browser\n"));
    }
    text.push_str("  (Ctrl-C to stop)\n");
    // A closed stdout (`parkwatch demo | head -1`) must not stop the demo.
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes()).and_then(|()| out.flush());
    drop(out);
    let mut demo = demo;
    if let Some(t) = demo.thread.take() {
        let _ = t.join();
    }
    Ok(())
}

/// The main task: starts everything, then serves a request on every tick.
async fn service(opts: DemoOptions, stop: Receiver<()>, ready: std::sync::mpsc::Sender<()>) {
    let stats = Arc::new(Stats::default());
    start_pool(opts.workers, stats.clone());
    start_ledger();
    let _ = ready.send(());
    let ticker = time::tick(opts.request_every);
    let mut seed = 0x2545_f491_4f6c_dd1d_u64 ^ u64::from(std::process::id());
    loop {
        select! {
            recv(stop) -> _v => return,
            recv(ticker) -> _t => {
                seed = xorshift(seed);
                handle_request(seed, &stats, opts.max_leaked).await;
            },
        }
    }
}

/// Counters of the service.
#[derive(Default)]
struct Stats {
    jobs_done: AtomicU64,
    requests: AtomicU64,
    leaked: AtomicUsize,
}

fn xorshift(mut x: u64) -> u64 {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    x
}

// ------------------------------------------------------------ healthy pool

/// A unit of work: how long it takes.
struct Job {
    id: u64,
    cost: Duration,
}

fn start_pool(workers: usize, stats: Arc<Stats>) {
    let jobs = chan::<Job>(16);
    let results = chan::<u64>(16);
    for i in 1..=workers.max(1) {
        let (rx, tx) = (jobs.receiver(), results.sender());
        crate::task::Builder::new().name(format!("worker-{i}")).spawn(worker(rx, tx));
    }
    crate::task::Builder::new().name("dispatcher").spawn(dispatcher(jobs.sender()));
    crate::task::Builder::new().name("collector").spawn(collector(results.receiver(), stats));
}

/// Hands out a job on every tick.
async fn dispatcher(jobs: Sender<Job>) {
    let ticker = time::tick(Duration::from_millis(50));
    let mut id = 0u64;
    while ticker.recv().await.is_some() {
        id += 1;
        let cost = Duration::from_millis(5 + (xorshift(id) % 40));
        if jobs.send(Job { id, cost }).await.is_err() {
            return;
        }
    }
}

/// Takes jobs until the channel closes.
async fn worker(jobs: Receiver<Job>, results: Sender<u64>) {
    while let Some(job) = jobs.recv().await {
        time::sleep(job.cost).await;
        if results.send(job.id).await.is_err() {
            return;
        }
    }
}

async fn collector(results: Receiver<u64>, stats: Arc<Stats>) {
    while results.recv().await.is_some() {
        stats.jobs_done.fetch_add(1, Ordering::Relaxed);
    }
}

// ------------------------------------------------------------- leaky fan-out

/// Asks three replicas, takes the first answer or gives up after 60 ms. The
/// replicas that answer late block forever on `replies`: nobody receives
/// any more (a leak that grows with every request).
async fn handle_request(seed: u64, stats: &Stats, max_leaked: usize) {
    stats.requests.fetch_add(1, Ordering::Relaxed);
    let replies = chan::<String>(0);
    let leaking = stats.leaked.load(Ordering::Relaxed) < max_leaked;
    for r in 0..3u64 {
        let delay = Duration::from_millis(10 + (xorshift(seed ^ (r + 1)) % 140));
        crate::spawn(fetch_replica(r, delay, replies.sender()));
    }
    let deadline = time::after(Duration::from_millis(60));
    let mut answered = 0;
    select! {
        recv(replies) -> v => answered = usize::from(v.is_some()),
        recv(deadline) -> _t => {},
    }
    if leaking {
        // Returning drops `replies`: the replicas still sending are stuck.
        stats.leaked.fetch_add(3 - answered, Ordering::Relaxed);
    } else {
        // Over the limit: drain the late answers (no more leaking).
        for _ in answered..3 {
            let _ = replies.recv().await;
        }
    }
}

/// A replica: works for `delay`, then sends its answer (forever, if nobody receives).
async fn fetch_replica(replica: u64, delay: Duration, replies: Sender<String>) {
    time::sleep(delay).await;
    let _ = replies.send(format!("replica {replica} answered after {delay:?}")).await;
}

// ----------------------------------------------------- channel + lock cycle

/// The accounts `ledger` and `auditor` share.
#[derive(Default)]
struct Accounts {
    balance: i64,
    entries: u64,
}

fn start_ledger() {
    let accounts = Arc::new(Mutex::new(Accounts::default()));
    let audit = chan::<i64>(0);
    crate::task::Builder::new().name("ledger").spawn(ledger(accounts.clone(), audit.sender()));
    crate::task::Builder::new().name("auditor").spawn(auditor(accounts, audit.receiver()));
}

/// Books an entry under the lock and hands it to the auditor before unlocking.
async fn ledger(accounts: Arc<Mutex<Accounts>>, audit: Sender<i64>) {
    for amount in [120i64, -40, 75, -10, 300].into_iter().cycle() {
        let mut book = accounts.lock().await;
        book.balance += amount;
        book.entries += 1;
        // Still holding the lock: waits until the auditor takes the entry.
        if audit.send(amount).await.is_err() {
            return;
        }
        drop(book);
        time::sleep(Duration::from_millis(150)).await;
    }
}

/// Receives each entry and checks it under the lock; from round 4 on it
/// "checks the balance first": takes the lock, then waits for the entry.
async fn auditor(accounts: Arc<Mutex<Accounts>>, audit: Receiver<i64>) {
    let mut round = 0u32;
    loop {
        round += 1;
        if round < 4 {
            let Some(_amount) = audit.recv().await else { return };
            let book = accounts.lock().await;
            let _ = (book.balance, book.entries);
        } else {
            let book = accounts.lock().await;
            let Some(_amount) = audit.recv().await else { return };
            let _ = (book.balance, book.entries);
        }
    }
}
