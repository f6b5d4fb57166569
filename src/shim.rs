//! Synchronisation types of the parts that loom model-checks (the waiter, the
//! channel core and the `sync` primitives). Under `--cfg loom` they are
//! loom's; otherwise std's.

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{fence, AtomicBool, AtomicUsize, Ordering};
#[cfg(loom)]
pub(crate) use loom::sync::{Mutex, MutexGuard};
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

/// The modeled mutexes (channel state, waiters, the `sync` primitives' state)
/// are parking_lot's: their critical sections last tens of nanoseconds, and
/// parking_lot spins briefly before it sleeps where std's mutex goes to the
/// futex, and it has no poison flag to check on every lock and unlock.
#[cfg(not(loom))]
pub(crate) use parking_lot::{Mutex, MutexGuard};
#[cfg(not(loom))]
pub(crate) use std::sync::atomic::{fence, AtomicBool, AtomicUsize, Ordering};

/// A mutex loom does not model (the task records'): parking_lot's, or std's
/// under loom, where [`lock`] retries it instead of blocking the model.
#[cfg(not(loom))]
pub(crate) type PlainMutex<T> = parking_lot::Mutex<T>;
#[cfg(loom)]
pub(crate) type PlainMutex<T> = std::sync::Mutex<T>;
#[cfg(not(loom))]
pub(crate) use std::thread;

/// Locks `m`, ignoring poisoning: parkwatch's critical sections never run user
/// code, so a poisoned lock still guards consistent state. Serves both the
/// modeled mutexes ([`Mutex`]: parking_lot's, or loom's under loom) and the
/// unmodeled ones that stay std's (task records, the registry, the detector).
pub(crate) fn lock<M: Lock + ?Sized>(m: &M) -> M::Guard<'_> {
    m.lock_ignoring_poison()
}

/// A mutex of either kind.
pub(crate) trait Lock {
    type Guard<'a>
    where
        Self: 'a;
    fn lock_ignoring_poison(&self) -> Self::Guard<'_>;
}

#[cfg(not(loom))]
impl<T: ?Sized> Lock for std::sync::Mutex<T> {
    type Guard<'a>
        = std::sync::MutexGuard<'a, T>
    where
        T: 'a;
    #[inline]
    fn lock_ignoring_poison(&self) -> Self::Guard<'_> {
        self.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(not(loom))]
impl<T: ?Sized> Lock for parking_lot::Mutex<T> {
    type Guard<'a>
        = parking_lot::MutexGuard<'a, T>
    where
        T: 'a;
    #[inline]
    fn lock_ignoring_poison(&self) -> Self::Guard<'_> {
        self.lock()
    }
}

#[cfg(loom)]
impl<T: ?Sized> Lock for std::sync::Mutex<T> {
    type Guard<'a>
        = std::sync::MutexGuard<'a, T>
    where
        T: 'a;
    /// loom runs a model's threads as coroutines of one OS thread, and a
    /// thread holding a std mutex can be switched out at a loom operation
    /// inside its critical section (a task record's `wait` is held while the
    /// lock state, a loom mutex, is read). Blocking on the std mutex would then
    /// block the OS thread, hence the whole model, for good: a contended std
    /// mutex is instead retried, yielding to the other loom threads.
    fn lock_ignoring_poison(&self) -> Self::Guard<'_> {
        loop {
            match self.try_lock() {
                Ok(g) => return g,
                Err(std::sync::TryLockError::Poisoned(e)) => return e.into_inner(),
                Err(std::sync::TryLockError::WouldBlock) => loom::thread::yield_now(),
            }
        }
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

/// The data of a `sync::Mutex`/`RwMutex`: a `std::cell::UnsafeCell`, or under
/// loom loom's, whose accesses loom checks for data races. A guard holds a
/// [`Access`](cell::Access) for as long as it lives (ending it before it
/// releases the lock), so under loom two guards whose accesses overlap without
/// a happens-before between them (the lock failed to exclude a writer, or to
/// synchronise a hand-over) fail the model. Outside loom an access is nothing.
pub(crate) mod cell {
    /// The data cell of a lock.
    pub(crate) struct DataCell<T: ?Sized> {
        #[cfg(not(loom))]
        inner: std::cell::UnsafeCell<T>,
        #[cfg(loom)]
        inner: loom::cell::UnsafeCell<T>,
    }

    impl<T> DataCell<T> {
        pub(crate) fn new(v: T) -> Self {
            #[cfg(not(loom))]
            let inner = std::cell::UnsafeCell::new(v);
            #[cfg(loom)]
            let inner = loom::cell::UnsafeCell::new(v);
            DataCell { inner }
        }

        pub(crate) fn into_inner(self) -> T {
            self.inner.into_inner()
        }
    }

    impl<T: ?Sized> DataCell<T> {
        /// The data, through exclusive access to the cell.
        #[cfg(not(loom))]
        pub(crate) fn get_mut(&mut self) -> &mut T {
            self.inner.get_mut()
        }

        /// The data, through exclusive access to the cell.
        #[cfg(loom)]
        pub(crate) fn get_mut(&mut self) -> &mut T {
            // SAFETY: `&mut self` excludes every other access to the cell,
            // and the reference lives no longer than that borrow.
            self.inner.with_mut(|p| unsafe { &mut *p })
        }

        /// Starts an access: shared (a read guard's) or exclusive (`write`).
        pub(crate) fn access(&self, write: bool) -> Access<T> {
            #[cfg(not(loom))]
            {
                let _ = write;
                Access(std::marker::PhantomData)
            }
            #[cfg(loom)]
            {
                Access(Some(if write { Tracked::Write(self.inner.get_mut()) } else { Tracked::Read(self.inner.get()) }))
            }
        }

        /// A pointer to the data (outside loom, where accesses are not tracked).
        #[cfg(not(loom))]
        fn ptr(&self) -> *mut T {
            self.inner.get()
        }
    }

    /// A guard's access to a [`DataCell`]: nothing outside loom; under loom,
    /// loom's record of the access, until [`Access::end`].
    #[cfg(not(loom))]
    pub(crate) struct Access<T: ?Sized>(std::marker::PhantomData<fn() -> *const T>);
    #[cfg(loom)]
    pub(crate) struct Access<T: ?Sized>(Option<Tracked<T>>);

    // SAFETY (loom builds only): as outside loom, where an access is a marker
    // that is always `Send + Sync`, an access adds nothing to its guard's
    // auto traits: the guards' own fields and impls carry the data's bounds.
    // loom's tracking does not depend on the thread that ends an access.
    #[cfg(loom)]
    unsafe impl<T: ?Sized> Send for Access<T> {}
    // SAFETY: as above.
    #[cfg(loom)]
    unsafe impl<T: ?Sized> Sync for Access<T> {}

    #[cfg(loom)]
    enum Tracked<T: ?Sized> {
        Read(loom::cell::ConstPtr<T>),
        Write(loom::cell::MutPtr<T>),
    }

    impl<T: ?Sized> Access<T> {
        /// The data, shared.
        ///
        /// # Safety
        ///
        /// `cell` is the cell this access was started on, and no other access
        /// but shared ones exists while the result lives (the lock is held).
        pub(crate) unsafe fn get<'a>(&'a self, cell: &'a DataCell<T>) -> &'a T {
            #[cfg(not(loom))]
            {
                // SAFETY: the caller's contract.
                unsafe { &*cell.ptr() }
            }
            #[cfg(loom)]
            {
                let _ = cell;
                // SAFETY: the pointer is `cell`'s (the caller's contract),
                // which outlives `'a`.
                match self.0.as_ref().expect("access ended") {
                    Tracked::Read(p) => unsafe { p.deref() },
                    Tracked::Write(p) => unsafe { &*p.deref() },
                }
            }
        }

        /// The data, exclusively.
        ///
        /// # Safety
        ///
        /// `cell` is the cell this exclusive access was started on, and no
        /// other access exists while the result lives (the lock is held for
        /// writing by this access's guard alone).
        pub(crate) unsafe fn get_mut<'a>(&'a mut self, cell: &'a DataCell<T>) -> &'a mut T {
            #[cfg(not(loom))]
            {
                // SAFETY: the caller's contract.
                unsafe { &mut *cell.ptr() }
            }
            #[cfg(loom)]
            {
                let _ = cell;
                match self.0.as_ref().expect("access ended") {
                    // SAFETY: as in `get`.
                    Tracked::Write(p) => unsafe { p.deref() },
                    Tracked::Read(_) => unreachable!("a shared access is never written through"),
                }
            }
        }

        /// Ends the access; a guard calls it before it releases the lock, so
        /// that the next holder's access does not overlap it.
        pub(crate) fn end(&mut self) {
            #[cfg(loom)]
            {
                self.0 = None;
            }
        }
    }
}
