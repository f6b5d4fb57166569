//! Stress: many messages across MPMC channels with `select!`, timeouts and
//! closes in the mix, async tasks and registered OS threads on both sides;
//! every message must be received exactly once.
//!
//! ```text
//! cargo run --release --example stress                          # 10^8 messages (a few minutes on 2 cores)
//! cargo run --release --example stress -- --messages 1000000    # a quick look
//! cargo run --release --example stress -- --help
//! ```
//!
//! The run is split into rounds (default 10^6 messages each). A round has
//! four fresh channels of capacities 0, 1, 16 and 256 (rotated per round),
//! producers (2 async tasks + 1 registered thread by default) and consumers
//! (2 async tasks + 1 registered thread). Message ids are the round's range
//! `[base, base + round)`, split between the producers.
//!
//! - A producer sends each id with a `select!` over two open channels (picked
//!   from the id) and a `time::after` timeout; a timeout or a closed channel
//!   (`SendError` hands the value back) means: try again, elsewhere.
//! - A consumer selects over the four channels and a `time::after` timeout;
//!   `None` from a channel means it is closed and drained: it becomes a nil
//!   channel (never ready) for that consumer. Consumers stall briefly now and
//!   then, so that producers' timeouts fire.
//! - A closer (a task, or a registered thread on odd rounds) closes channel 3
//!   when a third of the round has been sent and channel 2 at two thirds,
//!   while producers may be parked sending on them and buffers hold values;
//!   the main task closes the rest when every producer is done.
//! - A monitor task takes a snapshot, a debug=1 dump and `analyze()` every
//!   500 ms while the traffic runs; a definite deadlock finding fails the run
//!   (nothing here is deadlocked).
//!
//! Verification, per round: a bitmap of the round's ids (a duplicate is
//! caught when it is received, a loss at the end of the round), the count,
//! the sum of ids and the sum of a 64-bit mix of each id, received against
//! sent. The process exits non-zero on any mismatch. `tests/stress.rs` runs
//! the same code with a small configuration in CI.

#![allow(dead_code)] // also compiled as a module of tests/stress.rs

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use parkwatch::{Chan, Receiver, Sender};

/// What to run.
#[derive(Clone, Debug)]
pub struct Config {
    /// Messages in all (rounded down to whole rounds).
    pub messages: u64,
    /// Messages per round.
    pub round: u64,
    pub async_producers: usize,
    pub thread_producers: usize,
    pub async_consumers: usize,
    pub thread_consumers: usize,
    /// Worker threads of the runtime.
    pub workers: usize,
    /// A producer's `time::after` per attempt series.
    pub send_timeout: Duration,
    /// A consumer's `time::after`.
    pub recv_timeout: Duration,
    /// A consumer stalls for `stall` every `stall_every` messages it receives.
    pub stall_every: u64,
    pub stall: Duration,
    /// Run the snapshot/analyze monitor.
    pub monitor: bool,
    /// Print a line every this many rounds (0: never).
    pub progress_every: u64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            messages: 100_000_000,
            round: 1_000_000,
            async_producers: 2,
            thread_producers: 1,
            async_consumers: 2,
            thread_consumers: 1,
            workers: 2,
            send_timeout: Duration::from_millis(1),
            recv_timeout: Duration::from_millis(1),
            stall_every: 40_000,
            stall: Duration::from_millis(3),
            monitor: true,
            progress_every: 10,
        }
    }
}

/// What happened, summed over the run.
#[derive(Clone, Debug, Default)]
pub struct Report {
    pub messages: u64,
    pub rounds: u64,
    pub elapsed: Duration,
    /// Received by async consumers / by thread consumers.
    pub by_async: u64,
    pub by_thread: u64,
    /// Sent by async producers / by thread producers.
    pub from_async: u64,
    pub from_thread: u64,
    /// `time::after` cases taken by producers / consumers.
    pub send_timeouts: u64,
    pub recv_timeouts: u64,
    /// Sends that found their channel closed (value handed back, re-sent).
    pub send_closed: u64,
    /// Channels seen closed by consumers.
    pub recv_closed: u64,
    /// Closes done mid-round by the closer.
    pub mid_round_closes: u64,
    /// Monitor: snapshots taken, largest task count seen, findings by certainty.
    pub snapshots: u64,
    pub max_tasks_seen: usize,
    pub probable_findings: u64,
    pub definite_findings: Vec<String>,
}

impl Report {
    /// Messages per second.
    pub fn rate(&self) -> f64 {
        self.messages as f64 / self.elapsed.as_secs_f64()
    }
}

/// A 64-bit mix (splitmix64's finaliser) for the second checksum.
pub fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// Count, sum and mixed sum of a set of ids.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Tally {
    pub count: u64,
    pub sum: u64,
    pub mixed: u64,
}

impl Tally {
    fn add(&mut self, id: u64) {
        self.count += 1;
        self.sum = self.sum.wrapping_add(id);
        self.mixed = self.mixed.wrapping_add(mix(id));
    }
    fn merge(&mut self, o: Tally) {
        self.count += o.count;
        self.sum = self.sum.wrapping_add(o.sum);
        self.mixed = self.mixed.wrapping_add(o.mixed);
    }
    fn of_range(r: std::ops::Range<u64>) -> Tally {
        let mut t = Tally::default();
        for id in r {
            t.add(id);
        }
        t
    }
}

/// The shared state of one round.
struct Round {
    base: u64,
    size: u64,
    chans: [Chan<u64>; 4],
    /// One bit per id of the round.
    seen: Vec<AtomicU64>,
    duplicates: AtomicU64,
    out_of_range: AtomicU64,
    /// Messages sent so far (the closer watches it).
    sent: AtomicU64,
    cfg: Config,
}

impl Round {
    fn new(index: u64, cfg: &Config) -> Round {
        let caps = [0usize, 1, 16, 256];
        let r = index as usize;
        let chans = std::array::from_fn(|i| parkwatch::chan::<u64>(caps[(i + r) % 4]));
        Round {
            base: index * cfg.round,
            size: cfg.round,
            chans,
            seen: (0..cfg.round.div_ceil(64)).map(|_| AtomicU64::new(0)).collect(),
            duplicates: AtomicU64::new(0),
            out_of_range: AtomicU64::new(0),
            sent: AtomicU64::new(0),
            cfg: cfg.clone(),
        }
    }

    fn senders(&self) -> [Sender<u64>; 4] {
        std::array::from_fn(|i| self.chans[i].sender())
    }

    fn receivers(&self) -> [Receiver<u64>; 4] {
        std::array::from_fn(|i| self.chans[i].receiver())
    }

    /// Marks `id` received; counts a duplicate if it already was.
    fn receive(&self, id: u64, tally: &mut Tally) {
        tally.add(id);
        let Some(off) = id.checked_sub(self.base).filter(|&o| o < self.size) else {
            self.out_of_range.fetch_add(1, Ordering::Relaxed);
            return;
        };
        let bit = 1u64 << (off % 64);
        if self.seen[(off / 64) as usize].fetch_or(bit, Ordering::Relaxed) & bit != 0 {
            self.duplicates.fetch_add(1, Ordering::Relaxed);
            eprintln!("stress: id {id} received twice");
        }
    }

    /// Ids of the round never received.
    fn missing(&self) -> Vec<u64> {
        let mut out = Vec::new();
        for off in 0..self.size {
            if self.seen[(off / 64) as usize].load(Ordering::Relaxed) & (1 << (off % 64)) == 0 {
                out.push(self.base + off);
                if out.len() >= 20 {
                    break;
                }
            }
        }
        out
    }
}

/// Two distinct open channels for `id` (at least channels 0 and 1 stay open
/// until every producer is done).
fn pick(id: u64, open: &[bool; 4]) -> (usize, usize) {
    let idx: Vec<usize> = (0..4).filter(|&i| open[i]).collect();
    let k = idx.len() as u64;
    let i1 = id % k;
    let i2 = (i1 + 1 + (id / k) % (k - 1)) % k;
    (idx[i1 as usize], idx[i2 as usize])
}

#[derive(Default, Debug)]
struct ProducerStats {
    tally: Tally,
    timeouts: u64,
    closed: u64,
    thread: bool,
}

#[derive(Default, Debug)]
struct ConsumerStats {
    tally: Tally,
    timeouts: u64,
    closed: u64,
    thread: bool,
}

async fn produce_async(round: Arc<Round>, ids: std::ops::Range<u64>) -> ProducerStats {
    let mut tx = round.senders();
    let mut open = [true; 4];
    let mut st = ProducerStats::default();
    let mut timeout = parkwatch::time::after(round.cfg.send_timeout);
    for id in ids {
        loop {
            let (a, b) = pick(id, &open);
            let mut closed = None;
            let mut timed_out = false;
            let sent = parkwatch::select! {
                send(&tx[a], id) -> r => r.map_err(|_| closed = Some(a)).is_ok(),
                send(&tx[b], id) -> r => r.map_err(|_| closed = Some(b)).is_ok(),
                recv(&timeout) -> _ => { timed_out = true; false },
            };
            if let Some(i) = closed {
                open[i] = false;
                tx[i] = Chan::nil().sender();
                st.closed += 1;
            }
            if timed_out {
                st.timeouts += 1;
                timeout = parkwatch::time::after(round.cfg.send_timeout);
            }
            if sent {
                break;
            }
        }
        st.tally.add(id);
        round.sent.fetch_add(1, Ordering::Relaxed);
    }
    st
}

fn produce_thread(round: Arc<Round>, ids: std::ops::Range<u64>) -> ProducerStats {
    let mut tx = round.senders();
    let mut open = [true; 4];
    let mut st = ProducerStats { thread: true, ..Default::default() };
    let mut timeout = parkwatch::time::after(round.cfg.send_timeout);
    for id in ids {
        loop {
            let (a, b) = pick(id, &open);
            let mut closed = None;
            let mut timed_out = false;
            let sent = parkwatch::select_blocking! {
                send(&tx[a], id) -> r => r.map_err(|_| closed = Some(a)).is_ok(),
                send(&tx[b], id) -> r => r.map_err(|_| closed = Some(b)).is_ok(),
                recv(&timeout) -> _ => { timed_out = true; false },
            };
            if let Some(i) = closed {
                open[i] = false;
                tx[i] = Chan::nil().sender();
                st.closed += 1;
            }
            if timed_out {
                st.timeouts += 1;
                timeout = parkwatch::time::after(round.cfg.send_timeout);
            }
            if sent {
                break;
            }
        }
        st.tally.add(id);
        round.sent.fetch_add(1, Ordering::Relaxed);
    }
    st
}

async fn consume_async(round: Arc<Round>) -> ConsumerStats {
    let mut rx = round.receivers();
    let mut open = 4;
    let mut st = ConsumerStats::default();
    let mut timeout = parkwatch::time::after(round.cfg.recv_timeout);
    while open > 0 {
        let mut got = None;
        let mut closed = None;
        let mut timed_out = false;
        parkwatch::select! {
            recv(&rx[0]) -> v => match v { Some(v) => got = Some(v), None => closed = Some(0) },
            recv(&rx[1]) -> v => match v { Some(v) => got = Some(v), None => closed = Some(1) },
            recv(&rx[2]) -> v => match v { Some(v) => got = Some(v), None => closed = Some(2) },
            recv(&rx[3]) -> v => match v { Some(v) => got = Some(v), None => closed = Some(3) },
            recv(&timeout) -> _ => timed_out = true,
        }
        if let Some(i) = closed {
            rx[i] = Chan::nil().receiver();
            open -= 1;
            st.closed += 1;
        }
        if timed_out {
            st.timeouts += 1;
            timeout = parkwatch::time::after(round.cfg.recv_timeout);
        }
        if let Some(v) = got {
            round.receive(v, &mut st.tally);
            if round.cfg.stall_every > 0 && st.tally.count % round.cfg.stall_every == 0 {
                parkwatch::time::sleep(round.cfg.stall).await;
            }
        }
    }
    st
}

fn consume_thread(round: Arc<Round>) -> ConsumerStats {
    let mut rx = round.receivers();
    let mut open = 4;
    let mut st = ConsumerStats { thread: true, ..Default::default() };
    let mut timeout = parkwatch::time::after(round.cfg.recv_timeout);
    while open > 0 {
        let mut got = None;
        let mut closed = None;
        let mut timed_out = false;
        parkwatch::select_blocking! {
            recv(&rx[0]) -> v => match v { Some(v) => got = Some(v), None => closed = Some(0) },
            recv(&rx[1]) -> v => match v { Some(v) => got = Some(v), None => closed = Some(1) },
            recv(&rx[2]) -> v => match v { Some(v) => got = Some(v), None => closed = Some(2) },
            recv(&rx[3]) -> v => match v { Some(v) => got = Some(v), None => closed = Some(3) },
            recv(&timeout) -> _ => timed_out = true,
        }
        if let Some(i) = closed {
            rx[i] = Chan::nil().receiver();
            open -= 1;
            st.closed += 1;
        }
        if timed_out {
            st.timeouts += 1;
            timeout = parkwatch::time::after(round.cfg.recv_timeout);
        }
        if let Some(v) = got {
            round.receive(v, &mut st.tally);
            if round.cfg.stall_every > 0 && st.tally.count % round.cfg.stall_every == 0 {
                std::thread::sleep(round.cfg.stall);
            }
        }
    }
    st
}

/// Closes channel 3 at a third of the round and channel 2 at two thirds.
/// Returns how many of the two it closed (the main task may have closed them
/// first in a round too short for the closer to see progress).
fn closer_step(round: &Round, closed: &mut u64) -> bool {
    let sent = round.sent.load(Ordering::Relaxed);
    if *closed == 0 && sent >= round.size / 3 {
        if round.chans[3].close().is_ok() {
            *closed += 1;
        } else {
            return true;
        }
    }
    if *closed == 1 && sent >= round.size * 2 / 3 {
        let _ = round.chans[2].close();
        *closed += 1;
    }
    *closed >= 2 || sent >= round.size
}

async fn closer_async(round: Arc<Round>) -> u64 {
    let mut closed = 0;
    while !closer_step(&round, &mut closed) {
        parkwatch::time::sleep(Duration::from_micros(200)).await;
    }
    closed
}

fn closer_thread(round: Arc<Round>) -> u64 {
    let mut closed = 0;
    while !closer_step(&round, &mut closed) {
        std::thread::sleep(Duration::from_micros(200));
    }
    closed
}

enum Done {
    Producer(ProducerStats),
    Consumer(ConsumerStats),
    Closer(u64),
}

/// Runs one round; adds to `report`; returns an error message on any mismatch.
async fn run_round(index: u64, cfg: &Config, report: &mut Report) -> Result<(), String> {
    let round = Arc::new(Round::new(index, cfg));
    let done = parkwatch::chan::<Done>(64);
    let producers_done = parkwatch::sync::WaitGroup::new();
    let mut parts = 0usize;

    let consumers = cfg.async_consumers + cfg.thread_consumers;
    for i in 0..consumers {
        let (r, d) = (round.clone(), done.sender());
        parts += 1;
        if i < cfg.async_consumers {
            parkwatch::task::Builder::new().name(format!("consumer-{i}")).spawn(async move {
                let st = consume_async(r).await;
                d.send(Done::Consumer(st)).await.ok();
            });
        } else {
            parkwatch::thread::spawn(move || {
                let st = consume_thread(r);
                d.send_blocking(Done::Consumer(st)).ok();
            });
        }
    }

    let producers = (cfg.async_producers + cfg.thread_producers) as u64;
    let per = round.size / producers;
    for p in 0..producers {
        let start = round.base + p * per;
        let end = if p + 1 == producers { round.base + round.size } else { start + per };
        let (r, d, wg) = (round.clone(), done.sender(), producers_done.clone());
        wg.add(1);
        parts += 1;
        if (p as usize) < cfg.async_producers {
            parkwatch::task::Builder::new().name(format!("producer-{p}")).spawn(async move {
                let st = produce_async(r, start..end).await;
                wg.done();
                d.send(Done::Producer(st)).await.ok();
            });
        } else {
            parkwatch::thread::spawn(move || {
                let st = produce_thread(r, start..end);
                wg.done();
                d.send_blocking(Done::Producer(st)).ok();
            });
        }
    }

    {
        let (r, d) = (round.clone(), done.sender());
        parts += 1;
        if index % 2 == 0 {
            parkwatch::spawn(async move {
                let n = closer_async(r).await;
                d.send(Done::Closer(n)).await.ok();
            });
        } else {
            parkwatch::thread::spawn(move || {
                let n = closer_thread(r);
                d.send_blocking(Done::Closer(n)).ok();
            });
        }
    }

    producers_done.wait().await;
    for c in &round.chans {
        let _ = c.close();
    }

    let mut sent = Tally::default();
    let mut received = Tally::default();
    for _ in 0..parts {
        match done.recv().await.expect("the done channel is never closed") {
            Done::Producer(st) => {
                sent.merge(st.tally);
                report.send_timeouts += st.timeouts;
                report.send_closed += st.closed;
                if st.thread {
                    report.from_thread += st.tally.count;
                } else {
                    report.from_async += st.tally.count;
                }
            }
            Done::Consumer(st) => {
                received.merge(st.tally);
                report.recv_timeouts += st.timeouts;
                report.recv_closed += st.closed;
                if st.thread {
                    report.by_thread += st.tally.count;
                } else {
                    report.by_async += st.tally.count;
                }
            }
            Done::Closer(n) => report.mid_round_closes += n,
        }
    }

    let expected = Tally::of_range(round.base..round.base + round.size);
    let dup = round.duplicates.load(Ordering::Relaxed);
    let oor = round.out_of_range.load(Ordering::Relaxed);
    let missing = round.missing();
    report.messages += received.count;
    report.rounds += 1;
    if sent != expected || received != expected || dup != 0 || oor != 0 || !missing.is_empty() {
        return Err(format!(
            "round {index}: expected {expected:?}, sent {sent:?}, received {received:?}, \
             {dup} duplicate(s), {oor} out of range, missing (first 20) {missing:?}"
        ));
    }
    Ok(())
}

/// Snapshots and analyses while the traffic runs.
async fn monitor(stop: Arc<AtomicBool>, shared: Arc<Mutex<Report>>) {
    while !stop.load(Ordering::Relaxed) {
        parkwatch::time::sleep(Duration::from_millis(500)).await;
        let s = parkwatch::snapshot();
        let _ = parkwatch::dump::text(&s, 1);
        let a = s.analyze();
        let mut r = shared.lock().unwrap();
        r.snapshots += 1;
        r.max_tasks_seen = r.max_tasks_seen.max(s.tasks().len());
        for f in a.deadlocks.iter() {
            match f.certainty {
                parkwatch::Certainty::Definite => r.definite_findings.push(f.explanation.clone()),
                _ => r.probable_findings += 1,
            }
        }
    }
}

/// Runs the whole stress; `Err` describes the first mismatch (or deadlock).
pub fn run(cfg: Config) -> Result<Report, String> {
    let rounds = (cfg.messages / cfg.round).max(1);
    let rt = parkwatch::Runtime::builder().worker_threads(cfg.workers).build().map_err(|e| e.to_string())?;
    let out = rt.block_on(async move {
        let t0 = Instant::now();
        let mut report = Report::default();
        let stop = Arc::new(AtomicBool::new(false));
        let shared = Arc::new(Mutex::new(Report::default()));
        let mon = cfg.monitor.then(|| parkwatch::spawn(monitor(stop.clone(), shared.clone())));
        let mut result = Ok(());
        let mut last = (Instant::now(), 0u64);
        for i in 0..rounds {
            if let Err(e) = run_round(i, &cfg, &mut report).await {
                result = Err(e);
                break;
            }
            if cfg.progress_every > 0 && (i + 1) % cfg.progress_every == 0 {
                let (t, m) = last;
                let rate = (report.messages - m) as f64 / t.elapsed().as_secs_f64();
                eprintln!(
                    "stress: round {}/{rounds}, {} messages, {:.2} M msg/s, timeouts {}/{}, closes seen {}/{}",
                    i + 1,
                    report.messages,
                    rate / 1e6,
                    report.send_timeouts,
                    report.recv_timeouts,
                    report.send_closed,
                    report.recv_closed
                );
                last = (Instant::now(), report.messages);
            }
        }
        stop.store(true, Ordering::Relaxed);
        if let Some(m) = mon {
            m.await.map_err(|e| format!("monitor task failed: {e}"))?;
        }
        let mon = shared.lock().unwrap().clone();
        report.snapshots = mon.snapshots;
        report.max_tasks_seen = mon.max_tasks_seen;
        report.probable_findings = mon.probable_findings;
        report.definite_findings = mon.definite_findings;
        report.elapsed = t0.elapsed();
        result?;
        if !report.definite_findings.is_empty() {
            return Err(format!("definite deadlock findings while everything ran: {:?}", report.definite_findings));
        }
        Ok(report)
    });
    match out {
        Ok(r) => r,
        Err(deadlock) => Err(format!("deadlock verdict during the stress:\n{deadlock}")),
    }
}

fn parse_args() -> Config {
    let mut cfg = Config::default();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    let num = |s: &str| -> u64 { s.replace('_', "").parse().unwrap_or_else(|_| panic!("not a number: {s}")) };
    while i < args.len() {
        let next = args.get(i + 1).cloned().unwrap_or_default();
        match args[i].as_str() {
            "--messages" => cfg.messages = num(&next),
            "--round" => cfg.round = num(&next),
            "--async-producers" => cfg.async_producers = num(&next) as usize,
            "--thread-producers" => cfg.thread_producers = num(&next) as usize,
            "--async-consumers" => cfg.async_consumers = num(&next) as usize,
            "--thread-consumers" => cfg.thread_consumers = num(&next) as usize,
            "--workers" => cfg.workers = num(&next) as usize,
            "--timeout-us" => {
                cfg.send_timeout = Duration::from_micros(num(&next));
                cfg.recv_timeout = cfg.send_timeout;
            }
            "--stall-every" => cfg.stall_every = num(&next),
            "--no-monitor" => {
                cfg.monitor = false;
                i += 1;
                continue;
            }
            "--help" | "-h" => {
                println!(
                    "stress [--messages N] [--round N] [--async-producers N] [--thread-producers N] \
                     [--async-consumers N] [--thread-consumers N] [--workers N] [--timeout-us US] \
                     [--stall-every N] [--no-monitor]"
                );
                std::process::exit(0);
            }
            other => panic!("unknown argument {other}"),
        }
        i += 2;
    }
    assert!(cfg.async_producers + cfg.thread_producers > 0 && cfg.async_consumers + cfg.thread_consumers > 0);
    cfg
}

fn main() {
    let cfg = parse_args();
    eprintln!("stress: {cfg:?}");
    match run(cfg) {
        Ok(r) => {
            println!(
                "stress OK: {} messages in {} rounds, each received exactly once (bitmap), count and both checksums match; \
                 {:.1} s, {:.2} M msg/s",
                r.messages,
                r.rounds,
                r.elapsed.as_secs_f64(),
                r.rate() / 1e6
            );
            println!(
                "  sent by async tasks {} / threads {}; received by async tasks {} / threads {}",
                r.from_async, r.from_thread, r.by_async, r.by_thread
            );
            println!(
                "  timeouts taken: producers {}, consumers {}; sends that met a closed channel {}; closes seen by consumers {}; mid-round closes {}",
                r.send_timeouts, r.recv_timeouts, r.send_closed, r.recv_closed, r.mid_round_closes
            );
            println!(
                "  monitor: {} snapshots (up to {} tasks), {} probable findings, {} definite",
                r.snapshots,
                r.max_tasks_seen,
                r.probable_findings,
                r.definite_findings.len()
            );
        }
        Err(e) => {
            eprintln!("stress FAILED: {e}");
            std::process::exit(1);
        }
    }
}
