//! What one clock read costs on this machine: `Instant::now()` (what a park
//! used to read for the start of its wait) against `CLOCK_MONOTONIC_COARSE`
//! (what `park::clock` reads now). Linux only.
//!
//! ```sh
//! cargo run --release --example clock_cost            # 10,000,000 reads of each
//! ```
use std::hint::black_box;
use std::time::Instant;

fn main() {
    let n: u32 = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(10_000_000);
    let per_read = |f: &dyn Fn() -> u64| {
        let start = Instant::now();
        let mut sink = 0u64;
        for _ in 0..n {
            sink = sink.wrapping_add(black_box(f()));
        }
        black_box(sink);
        start.elapsed().as_nanos() as f64 / f64::from(n)
    };
    let base = Instant::now();
    let fine = per_read(&|| base.elapsed().as_nanos() as u64);
    let coarse = per_read(&coarse_ns);
    println!("Instant::now (via elapsed): {fine:.1} ns per read");
    println!("CLOCK_MONOTONIC_COARSE:     {coarse:.1} ns per read");
}

#[cfg(target_os = "linux")]
fn coarse_ns() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid, writable timespec for the call's duration.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC_COARSE, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

#[cfg(not(target_os = "linux"))]
fn coarse_ns() -> u64 {
    panic!("CLOCK_MONOTONIC_COARSE is Linux's")
}
