//! [`Once`]: run an initialisation exactly once (Go's `sync.Once`).

use crate::shim::{AtomicBool, Ordering};

use super::mutex::Mutex;

/// Runs a function exactly once. Callers that arrive while it runs wait for it
/// (parked on its mutex, Go's `sync.Mutex.Lock`); a `call_once` nested inside
/// the function deadlocks, as in Go, and is reported as double locking.
///
/// ```
/// let once = parkwatch::sync::Once::new();
/// let mut n = 0;
/// once.call_once(|| n += 1);
/// once.call_once(|| n += 1);
/// assert_eq!(n, 1);
/// assert!(once.is_completed());
/// ```
#[derive(Debug, Default)]
pub struct Once {
    done: AtomicBool,
    m: Mutex<()>,
}

impl Once {
    /// A `Once` that has not run.
    #[track_caller]
    pub fn new() -> Once {
        Once { done: AtomicBool::new(false), m: Mutex::new(()) }
    }

    /// Runs `f` if no call has run yet; waits if one is running.
    #[track_caller]
    pub fn call_once(&self, f: impl FnOnce()) {
        if self.done.load(Ordering::Acquire) {
            return;
        }
        let _guard = self.m.lock_blocking();
        if !self.done.load(Ordering::Relaxed) {
            f();
            self.done.store(true, Ordering::Release);
        }
    }

    /// Whether a call has completed.
    pub fn is_completed(&self) -> bool {
        self.done.load(Ordering::Acquire)
    }
}
