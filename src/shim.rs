//! Synchronisation types of the parts that loom model-checks (the waiter and the
//! channel core). Under `--cfg loom` they are loom's; otherwise std's.

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{AtomicUsize, Ordering};
#[cfg(loom)]
pub(crate) use loom::sync::{Arc, Mutex, MutexGuard};
#[cfg(loom)]
pub(crate) mod thread {
    //! `park`/`unpark` for loom, built on a loom `Mutex` + `Condvar` token.
    //!
    //! loom 0.7's own `Thread::unpark` makes its target runnable whatever the
    //! target is blocked on (tokio-rs/loom#249): an unpark that reaches a
    //! thread blocked on a loom `Mutex` (or in `JoinHandle::join`) resumes it
    //! without the lock and aborts the model ("expected to be able to acquire
    //! lock"). std's unpark only makes the token available, and a late unpark
    //! reaching a thread that already moved on is routine here (a claimer
    //! publishes `DONE`, the parked side sees it and runs on, then the claimer
    //! unparks). This parker has std's token semantics and wakes only a
    //! thread that waits in `park`.

    use loom::sync::{Condvar, Mutex};
    pub(crate) use loom::thread::yield_now;
    // A std `Arc`: the parker lives in a loom thread-local, which loom drops
    // outside the model when a model fails, and dropping a loom `Arc` there
    // would abort the whole test binary instead of reporting the failure.
    use std::sync::Arc;

    struct Parker {
        token: Mutex<bool>,
        cv: Condvar,
    }

    loom::thread_local! {
        static PARKER: Arc<Parker> = Arc::new(Parker { token: Mutex::new(false), cv: Condvar::new() });
    }

    /// A handle to unpark a thread (`std::thread::Thread`'s role).
    #[derive(Clone)]
    pub(crate) struct Thread(Arc<Parker>);

    impl Thread {
        /// Makes the token available and wakes the thread if it is parked.
        pub(crate) fn unpark(&self) {
            *super::lock(&self.0.token) = true;
            self.0.cv.notify_one();
        }
    }

    /// The calling thread's handle.
    pub(crate) fn current() -> Thread {
        Thread(PARKER.with(Arc::clone))
    }

    /// Blocks until the token is available, and consumes it.
    pub(crate) fn park() {
        let p = PARKER.with(Arc::clone);
        let mut token = super::lock(&p.token);
        while !*token {
            token = p.cv.wait(token).unwrap_or_else(|e| e.into_inner());
        }
        *token = false;
    }
}

#[cfg(not(loom))]
pub(crate) use std::sync::atomic::{AtomicUsize, Ordering};
#[cfg(not(loom))]
pub(crate) use std::sync::{Arc, Mutex, MutexGuard};
#[cfg(not(loom))]
pub(crate) use std::thread;

/// Locks `m`, ignoring poisoning: parkwatch's critical sections never run user
/// code, so a poisoned lock still guards consistent state.
#[cfg(not(loom))]
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Under loom, `lock` serves both the modeled mutexes (loom's) and the
/// unmodeled ones that stay std's (task records, the registry, the detector).
#[cfg(loom)]
pub(crate) fn lock<M: Lock + ?Sized>(m: &M) -> M::Guard<'_> {
    m.lock_ignoring_poison()
}

/// A mutex of either kind (loom builds only).
#[cfg(loom)]
pub(crate) trait Lock {
    type Guard<'a>
    where
        Self: 'a;
    fn lock_ignoring_poison(&self) -> Self::Guard<'_>;
}

#[cfg(loom)]
impl<T: ?Sized> Lock for std::sync::Mutex<T> {
    type Guard<'a>
        = std::sync::MutexGuard<'a, T>
    where
        T: 'a;
    fn lock_ignoring_poison(&self) -> Self::Guard<'_> {
        self.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(loom)]
impl<T: ?Sized> Lock for loom::sync::Mutex<T> {
    type Guard<'a>
        = loom::sync::MutexGuard<'a, T>
    where
        T: 'a;
    fn lock_ignoring_poison(&self) -> Self::Guard<'_> {
        self.lock().unwrap_or_else(|e| e.into_inner())
    }
}
