//! The time a wait began, read cheaply.
//!
//! Every park records when it began (`WaitInfo::since`), which is only ever
//! shown in minutes (Go's `[chan receive, 2 minutes]`) or compared with
//! thresholds of hundreds of milliseconds (leak suspects, grace periods).
//! `Instant::now()` costs 25–29 ns on the benchmark machine (a TSC read and
//! its conversion in the vDSO; `examples/clock_cost.rs`), a tenth of a parked
//! rendezvous; Linux's `CLOCK_MONOTONIC_COARSE` costs 4–6 ns and
//! is the same clock as `Instant`'s (`CLOCK_MONOTONIC`) as of the last
//! timer tick (1–4 ms ago). Go does not even read a clock when a goroutine
//! parks: `waitsince` is stamped later, by the garbage collector.
//!
//! [`wait_start`] keeps the coarse reading as it is (a [`WaitStart`]: a park
//! pays for the clock read and one store), and [`WaitStart::instant`] maps
//! it onto `Instant` when a snapshot or a detector reads it. Invariant: the
//! mapped time is never after the true time of the call, and at most one tick
//! (`clock_getres(CLOCK_MONOTONIC_COARSE)`, 4 ms on this machine) plus a few
//! nanoseconds before it, so a wait's duration is overstated by at most a
//! tick, never understated. Elsewhere (other systems, loom, Miri) it is
//! `Instant::now()`.

use std::time::Instant;

/// The time now, to record as the start of a wait: cheap, and at most one
/// timer tick early (see the [module docs](self)).
#[inline]
pub(crate) fn wait_start() -> WaitStart {
    imp::now()
}

/// When a wait began, as read by [`wait_start`]; equal for two waits that
/// began within one tick of the coarse clock.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct WaitStart(imp::Reading);

impl WaitStart {
    /// The start as an `Instant` (at most one tick early, never late).
    pub(crate) fn instant(self) -> Instant {
        imp::instant(self.0)
    }
}

#[cfg(all(target_os = "linux", not(loom), not(miri)))]
mod imp {
    use std::sync::OnceLock;
    use std::time::{Duration, Instant};

    /// An `Instant` and the `CLOCK_MONOTONIC` reading (ns) taken right after
    /// it: `Instant` is `CLOCK_MONOTONIC` on Linux, so a later reading `r`
    /// of that clock is the instant `base + (r - ns)`, up to the gap between
    /// the two reads (nanoseconds; the reading is the later, so the mapping
    /// errs early).
    struct Base {
        instant: Instant,
        ns: u64,
    }

    fn read(clock: libc::clockid_t) -> u64 {
        let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
        // SAFETY: `ts` is a valid, writable timespec for the call's duration.
        let rc = unsafe { libc::clock_gettime(clock, &mut ts) };
        debug_assert_eq!(rc, 0, "clock_gettime({clock}) failed");
        (ts.tv_sec as u64).wrapping_mul(1_000_000_000).wrapping_add(ts.tv_nsec as u64)
    }

    fn base() -> &'static Base {
        static BASE: OnceLock<Base> = OnceLock::new();
        BASE.get_or_init(|| {
            let instant = Instant::now();
            Base { instant, ns: read(libc::CLOCK_MONOTONIC) }
        })
    }

    /// A `CLOCK_MONOTONIC_COARSE` reading, in nanoseconds.
    pub(super) type Reading = u64;

    #[inline]
    pub(super) fn now() -> super::WaitStart {
        super::WaitStart(read(libc::CLOCK_MONOTONIC_COARSE))
    }

    pub(super) fn instant(coarse: Reading) -> Instant {
        let base = base();
        // The coarse clock lags the fine one by up to a tick, so a wait that
        // began just after `base` was taken may read earlier than it.
        match coarse.checked_sub(base.ns) {
            Some(after) => base.instant + Duration::from_nanos(after),
            None => base.instant.checked_sub(Duration::from_nanos(base.ns - coarse)).unwrap_or(base.instant),
        }
    }
}

#[cfg(not(all(target_os = "linux", not(loom), not(miri))))]
mod imp {
    pub(super) type Reading = std::time::Instant;

    #[inline]
    pub(super) fn now() -> super::WaitStart {
        super::WaitStart(std::time::Instant::now())
    }

    pub(super) fn instant(reading: Reading) -> std::time::Instant {
        reading
    }
}

#[cfg(test)]
mod tests {
    use super::wait_start;
    use std::time::{Duration, Instant};

    /// The coarse start of a wait is never after the truth and at most a
    /// tick (allowing 20 ms for any kernel's HZ) before it.
    #[test]
    fn wait_start_is_early_by_at_most_a_tick() {
        for _ in 0..10_000 {
            let before = Instant::now();
            let start = wait_start().instant();
            let after = Instant::now();
            assert!(start <= after, "a wait's start is never in the future");
            assert!(before.saturating_duration_since(start) < Duration::from_millis(20), "{:?} early", before - start);
        }
    }

    /// It advances with time.
    #[test]
    fn wait_start_advances() {
        let a = wait_start().instant();
        std::thread::sleep(Duration::from_millis(30));
        let b = wait_start().instant();
        assert!(b.duration_since(a) >= Duration::from_millis(10), "{:?}", b.duration_since(a));
    }
}
