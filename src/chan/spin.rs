//! The channel's lock: a spin lock, for critical sections of a few dozen
//! instructions that never block, never run user code and allocate at most
//! a queue's growth (`chan::core`).
//!
//! A parking mutex (parking_lot's, which the rest of parkwatch uses) spins a
//! dozen pauses, yields, then parks the waiter on a futex, and from then on
//! a release may be a system call to wake it. Producers and consumers of one
//! channel spread over two workers contend for its lock at every message;
//! with parking_lot's lock there, its slow path took a fifth of such a run
//! (`perf`, session 9 in `BENCHMARKS.md`), and the runs stayed spread
//! (0.13–0.21 moves of a task between workers per message,
//! `examples/migrations`): the `mpmc/bounded(1)` scenario took 270 ns per
//! message against 106–140 ns with this lock (the benchmark's A/B, same
//! session).
//!
//! A waiter here tries a few times, then in rounds: a pause of 64–191
//! spin-loop hints (jittered, so that two waiters do not keep colliding),
//! then a burst of claims, twice as many each round (8 up to
//! [`MAX_BURST`]). Bursts of claims measured faster than a polite
//! test-and-test-and-set with exponential pauses (71–104 against 122–148 ns
//! per message with producers and consumers forced onto two threads): the
//! waiter gets the lock as soon as it is released, instead of the releasing
//! core taking it back again and again. Once the bursts are at their longest
//! (a holder preempted by the OS, not a busy one) the waiter yields its time
//! slice after each round. It never sleeps, and a release is one store. On a
//! machine with one CPU the holder cannot run while a waiter spins, so there
//! a waiter yields after every failed claim.

use std::sync::atomic::{AtomicBool, Ordering};

use parking_lot::lock_api::{self, GuardSend, RawMutex};

/// The longest burst of claims in a round; once reached (after about 2,000
/// claims and 1,000 pauses in all, far longer than any critical section of
/// a running holder), the waiter yields its time slice after every round.
const MAX_BURST: u32 = 1 << 10;

/// The lock word: `true` while held.
pub(crate) struct RawSpinLock {
    locked: AtomicBool,
}

/// A mutex over `T` locked by [`RawSpinLock`].
pub(crate) type SpinMutex<T> = lock_api::Mutex<RawSpinLock, T>;
/// Its guard.
pub(crate) type SpinGuard<'a, T> = lock_api::MutexGuard<'a, RawSpinLock, T>;

/// Locked through [`crate::shim::lock`], as the other mutexes are (there is
/// no poisoning to ignore).
impl<T: ?Sized> crate::shim::Lock for SpinMutex<T> {
    type Guard<'a>
        = SpinGuard<'a, T>
    where
        T: 'a;
    #[inline]
    fn lock_ignoring_poison(&self) -> SpinGuard<'_, T> {
        self.lock()
    }
}

// SAFETY: `lock` returns only once this thread set the word from `false`
// to `true` (Acquire), `try_lock` likewise, and only the holder calls
// `unlock`, which stores `false` (Release): one holder at a time, and each
// holder sees everything the previous one wrote.
unsafe impl RawMutex for RawSpinLock {
    #[allow(clippy::declare_interior_mutable_const)] // lock_api's required initialiser.
    const INIT: RawSpinLock = RawSpinLock { locked: AtomicBool::new(false) };
    type GuardMarker = GuardSend;

    #[inline]
    fn lock(&self) {
        if !self.try_lock() {
            self.lock_contended();
        }
    }

    #[inline]
    fn try_lock(&self) -> bool {
        self.locked.compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed).is_ok()
    }

    #[inline]
    unsafe fn unlock(&self) {
        self.locked.store(false, Ordering::Release);
    }
}

impl RawSpinLock {
    /// The slow path of `lock` (module docs): quick tries, then rounds of a
    /// jittered pause and a burst of claims.
    #[cold]
    #[inline(never)]
    fn lock_contended(&self) {
        if single_cpu() {
            return self.lock_yielding();
        }
        for _ in 0..4 {
            std::hint::spin_loop();
            if self.try_lock() {
                return;
            }
        }
        let mut burst = 8;
        loop {
            for _ in 0..64 + crate::select::rand::below(128) {
                std::hint::spin_loop();
            }
            for _ in 0..burst {
                if self.try_lock() {
                    return;
                }
            }
            if burst < MAX_BURST {
                burst *= 2;
            } else {
                std::thread::yield_now();
            }
        }
    }

    /// The slow path on a machine with one CPU: the holder cannot run
    /// while this thread spins, so every failed claim yields at once.
    fn lock_yielding(&self) {
        while !self.try_lock() {
            std::thread::yield_now();
        }
    }
}

/// Whether this process may run on one CPU only (read once).
fn single_cpu() -> bool {
    static CPUS: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *CPUS.get_or_init(|| std::thread::available_parallelism().map_or(1, usize::from)) == 1
}

#[cfg(test)]
mod tests {
    use super::SpinMutex;

    /// Increments under the lock from several threads lose nothing: the
    /// lock excludes, and each holder sees the previous one's write.
    #[test]
    fn contended_increments_are_all_kept() {
        let m = std::sync::Arc::new(SpinMutex::new(0u64));
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let m = m.clone();
                std::thread::spawn(move || {
                    for _ in 0..20_000 {
                        *m.lock() += 1;
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(*m.lock(), 80_000);
    }

    /// The one-CPU slow path excludes as well (it runs here on any machine).
    #[test]
    fn the_yielding_slow_path_excludes_too() {
        use parking_lot::lock_api::RawMutex as _;
        let raw = std::sync::Arc::new(super::RawSpinLock::INIT);
        let count = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let threads: Vec<_> = (0..3)
            .map(|_| {
                let (raw, count) = (raw.clone(), count.clone());
                std::thread::spawn(move || {
                    for _ in 0..10_000 {
                        if !raw.try_lock() {
                            raw.lock_yielding();
                        }
                        // A non-atomic read-modify-write under the lock: a
                        // second holder would lose increments.
                        let seen = count.load(std::sync::atomic::Ordering::Relaxed);
                        count.store(seen + 1, std::sync::atomic::Ordering::Relaxed);
                        // SAFETY: this thread holds the lock (just taken).
                        unsafe { raw.unlock() };
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(count.load(std::sync::atomic::Ordering::Relaxed), 30_000);
    }

    #[test]
    fn try_lock_fails_while_held() {
        let m = SpinMutex::new(());
        let held = m.lock();
        assert!(m.try_lock().is_none(), "held: no second holder");
        drop(held);
        assert!(m.try_lock().is_some(), "released: free again");
    }
}
