//! A per-thread fast random source for select's case order. No global state:
//! each thread seeds its own xorshift generator.

use std::cell::Cell;

// 0: not seeded yet (xorshift never reaches 0 from another state). A
// `const` initialiser: reading the state needs no lazy-init check.
#[cfg(not(loom))]
thread_local! {
    static STATE: Cell<u64> = const { Cell::new(0) };
}

// Loom replays executions and needs them deterministic: a fixed seed (the
// loom tests run each select with its cases in both orders instead).
#[cfg(loom)]
loom::thread_local! {
    static STATE: Cell<u64> = Cell::new(0x9E37_79B9_7F4A_7C15);
}

#[cold]
fn seed() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_usize(&h as *const _ as usize);
    h.finish() | 1
}

/// A uniform random number below `n` (`n > 0`).
#[inline]
pub(crate) fn below(n: usize) -> usize {
    STATE.with(|s| {
        // xorshift64*
        let mut x = s.get();
        if x == 0 {
            x = seed();
        }
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        s.set(x);
        let r = x.wrapping_mul(0x2545_F491_4F6C_DD1D);
        // Lemire's multiply-shift: unbiased enough for n far below 2^32.
        (((r >> 32) * n as u64) >> 32) as usize
    })
}

/// The indices `0..n` in a uniformly random order, drawn lazily
/// (Fisher–Yates), without allocating for up to 32 cases.
pub(crate) struct Permutation {
    small: [u16; 32],
    large: Vec<usize>,
    n: usize,
    next: usize,
}

impl Permutation {
    pub(crate) fn new(n: usize) -> Self {
        let mut p = Permutation { small: [0; 32], large: Vec::new(), n, next: 0 };
        if n <= 32 {
            for (i, slot) in p.small.iter_mut().enumerate().take(n) {
                *slot = i as u16;
            }
        } else {
            p.large = (0..n).collect();
        }
        p
    }

    fn swap(&mut self, a: usize, b: usize) {
        if self.n <= 32 {
            self.small.swap(a, b);
        } else {
            self.large.swap(a, b);
        }
    }

    fn get(&self, i: usize) -> usize {
        if self.n <= 32 {
            self.small[i] as usize
        } else {
            self.large[i]
        }
    }
}

impl Iterator for Permutation {
    type Item = usize;
    fn next(&mut self) -> Option<usize> {
        if self.next >= self.n {
            return None;
        }
        let pick = self.next + below(self.n - self.next);
        self.swap(self.next, pick);
        self.next += 1;
        Some(self.get(self.next - 1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permutation_visits_every_index_once() {
        for n in [1, 2, 5, 32, 33, 100] {
            let mut seen: Vec<usize> = Permutation::new(n).collect();
            seen.sort_unstable();
            assert_eq!(seen, (0..n).collect::<Vec<_>>());
        }
    }

    #[test]
    fn first_pick_is_uniform() {
        let mut counts = [0usize; 4];
        for _ in 0..40_000 {
            counts[Permutation::new(4).next().unwrap()] += 1;
        }
        for c in counts {
            assert!((9_000..11_000).contains(&c), "skewed first pick: {counts:?}");
        }
    }
}
