//! The adaptive capture policy of one park site on one thread (see the
//! [module docs](super) for the rationale).

use std::time::{Duration, Instant};

/// The first parks at a site (per thread) always capture a fresh stack.
pub(crate) const ALWAYS_CAPTURE_FIRST: u32 = 8;

/// Token-bucket capacity: captures allowed in a burst after the first ones.
pub(crate) const BURST: u32 = 50;

/// Token-bucket refill rate: sustained fresh captures per second, per site, per thread.
pub(crate) const CAPTURES_PER_SECOND: u32 = 50;

/// When the bucket is empty, the clock is read at most once every this many
/// parks (so a hot site pays ~1 ns per park for the policy, not a clock read).
pub(crate) const CLOCK_CHECK_EVERY: u32 = 16;

/// Time for one token to come back.
const TOKEN_PERIOD: Duration = Duration::from_nanos(1_000_000_000 / CAPTURES_PER_SECOND as u64);

/// Whether each park at one site captures a fresh stack.
#[derive(Debug)]
pub(crate) struct SitePolicy {
    /// Parks seen, saturating at [`ALWAYS_CAPTURE_FIRST`].
    parks: u32,
    /// Tokens left in the bucket.
    tokens: u32,
    /// Time up to which tokens have been credited.
    refilled_at: Option<Instant>,
    /// Parks still to skip before the clock is read again (bucket empty).
    skip: u32,
}

impl SitePolicy {
    /// A site never parked at: full bucket.
    pub(crate) fn new() -> SitePolicy {
        SitePolicy { parks: 0, tokens: BURST, refilled_at: None, skip: 0 }
    }

    /// Decides for one park whether to capture now (`true`) or reuse the
    /// site's last stack (`false`). `now` is called only when a decision needs
    /// the time, never on the hot path of a site whose bucket is empty.
    pub(crate) fn should_capture(&mut self, now: impl FnOnce() -> Instant) -> bool {
        if self.parks < ALWAYS_CAPTURE_FIRST {
            if self.parks == 0 {
                self.refilled_at = Some(now());
            }
            self.parks += 1;
            return true;
        }
        if self.tokens == 0 {
            if self.skip > 0 {
                self.skip -= 1;
                return false;
            }
            self.refill(now());
            if self.tokens == 0 {
                self.skip = CLOCK_CHECK_EVERY - 1;
                return false;
            }
        }
        self.tokens -= 1;
        true
    }

    /// Credits the tokens earned since `refilled_at`, capped at [`BURST`].
    fn refill(&mut self, now: Instant) {
        let since = *self.refilled_at.get_or_insert(now);
        let earned = now.saturating_duration_since(since).as_nanos() / TOKEN_PERIOD.as_nanos();
        if earned == 0 {
            return;
        }
        let total = u128::from(self.tokens) + earned;
        if total >= u128::from(BURST) {
            self.tokens = BURST;
            self.refilled_at = Some(now);
        } else {
            // `total < BURST`, so `earned` fits in u32.
            self.tokens = total as u32;
            self.refilled_at = Some(since + TOKEN_PERIOD * earned as u32);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs `n` parks at fixed time `t`, returning how many captured.
    fn parks_at(p: &mut SitePolicy, t: Instant, n: u32) -> u32 {
        (0..n).filter(|_| p.should_capture(|| t)).count() as u32
    }

    #[test]
    fn first_parks_and_burst_capture_then_hot_site_is_sampled() {
        let t0 = Instant::now();
        let mut p = SitePolicy::new();
        assert_eq!(parks_at(&mut p, t0, ALWAYS_CAPTURE_FIRST), ALWAYS_CAPTURE_FIRST);
        assert_eq!(parks_at(&mut p, t0, BURST), BURST);
        assert_eq!(parks_at(&mut p, t0, 10_000), 0, "empty bucket, no time passed");
    }

    #[test]
    fn sustained_rate_is_bounded_by_the_bucket() {
        let t0 = Instant::now();
        let mut p = SitePolicy::new();
        let mut captured = 0;
        // One park per 10 µs for 2 s: 200_000 parks.
        for i in 0..200_000u32 {
            let t = t0 + Duration::from_micros(10 * u64::from(i));
            captured += u32::from(p.should_capture(|| t));
        }
        let max = ALWAYS_CAPTURE_FIRST + BURST + 2 * CAPTURES_PER_SECOND + 1;
        assert!(captured <= max, "{captured} > {max}");
        assert!(captured >= max - 2, "refill works: {captured}");
    }

    #[test]
    fn rarely_hit_site_always_captures() {
        let t0 = Instant::now();
        let mut p = SitePolicy::new();
        // 40 parks per second for 10 seconds: below the refill rate.
        for i in 0..400u32 {
            let t = t0 + Duration::from_millis(25 * u64::from(i));
            assert!(p.should_capture(|| t), "park {i} was sampled");
        }
    }

    #[test]
    fn idle_site_gets_fresh_captures_again_after_hot_phase() {
        let t0 = Instant::now();
        let mut p = SitePolicy::new();
        parks_at(&mut p, t0, 1000);
        assert!(!p.should_capture(|| t0));
        // The first park after a pause may be inside the clock-check skip window.
        let later = t0 + Duration::from_secs(5);
        let fresh = parks_at(&mut p, later, CLOCK_CHECK_EVERY + BURST);
        assert_eq!(fresh, BURST, "bucket refilled to capacity, no more");
    }

    #[test]
    fn clock_is_read_rarely_on_a_hot_site() {
        let t0 = Instant::now();
        let mut p = SitePolicy::new();
        parks_at(&mut p, t0, ALWAYS_CAPTURE_FIRST + BURST);
        let mut reads = 0;
        for _ in 0..1600 {
            p.should_capture(|| {
                reads += 1;
                t0
            });
        }
        assert_eq!(reads, 1600 / CLOCK_CHECK_EVERY);
    }
}
