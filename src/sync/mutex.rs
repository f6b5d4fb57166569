//! [`Mutex`]: mutual exclusion (Go's `sync.Mutex`), holding its data like std's.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use super::lock::{acquire_blocking, release, Acquire, LockCase};
use super::state::SyncState;
use crate::park::resource::{Resource, ResourceKind};
use crate::shim::cell::{Access, DataCell};
use crate::snapshot::WaitReason;

/// A mutual-exclusion lock. Its holder is known (the task that locked it), and
/// a task waiting for it is parked with Go's reason `sync.Mutex.Lock`, so lock
/// cycles and double locking are found as definite deadlocks.
///
/// ```
/// parkwatch::run(async {
///     let m = std::sync::Arc::new(parkwatch::sync::Mutex::new(0));
///     let m2 = m.clone();
///     parkwatch::spawn(async move { *m2.lock().await += 1 }).await.unwrap();
///     assert_eq!(*m.lock().await, 1);
/// });
/// ```
pub struct Mutex<T: ?Sized> {
    res: Arc<Resource>,
    data: DataCell<T>,
}

// SAFETY: the data is reached only through a guard, and one guard exists at a
// time (the lock state grants one writer), so `Mutex<T>` moves `T` between
// threads but never shares it: `T: Send` suffices, as for `std::sync::Mutex`.
unsafe impl<T: ?Sized + Send> Send for Mutex<T> {}
// SAFETY: as above.
unsafe impl<T: ?Sized + Send> Sync for Mutex<T> {}

impl<T: Default> Default for Mutex<T> {
    #[track_caller]
    fn default() -> Self {
        Mutex::new(T::default())
    }
}

impl<T: ?Sized> std::fmt::Debug for Mutex<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Mutex(#{})", self.res.id)
    }
}

impl<T> Mutex<T> {
    /// An unlocked mutex holding `v`.
    #[track_caller]
    pub fn new(v: T) -> Mutex<T> {
        Mutex {
            res: Resource::with_state(ResourceKind::Mutex, SyncState::Lock(Default::default())),
            data: DataCell::new(v),
        }
    }

    /// The data, consuming the mutex.
    pub fn into_inner(self) -> T {
        self.data.into_inner()
    }
}

impl<T: ?Sized> Mutex<T> {
    /// Locks, waiting while another task holds it.
    #[track_caller]
    pub fn lock(&self) -> MutexLock<'_, T> {
        let site = std::panic::Location::caller();
        MutexLock { mutex: self, acquire: Acquire::new(self.case(site), site) }
    }

    /// Locks, blocking the OS thread.
    #[track_caller]
    pub fn lock_blocking(&self) -> MutexGuard<'_, T> {
        let site = std::panic::Location::caller();
        let task = acquire_blocking(self.case(site), site);
        MutexGuard::new(self, task)
    }

    /// Locks if nobody holds it.
    #[track_caller]
    pub fn try_lock(&self) -> Option<MutexGuard<'_, T>> {
        use crate::select::Case;
        let mut case = self.case(std::panic::Location::caller());
        case.try_now().then(|| MutexGuard::new(self, case.holder_task()))
    }

    /// The data, through exclusive access (no locking needed).
    pub fn get_mut(&mut self) -> &mut T {
        self.data.get_mut()
    }

    /// The id dumps give this mutex.
    pub fn id(&self) -> u64 {
        self.res.id.0
    }

    fn case(&self, site: &'static std::panic::Location<'static>) -> LockCase<'_> {
        LockCase::new(&self.res, true, WaitReason::MutexLock, site)
    }
}

/// The future of [`Mutex::lock`].
pub struct MutexLock<'a, T: ?Sized> {
    mutex: &'a Mutex<T>,
    acquire: Acquire<'a>,
}

impl<'a, T: ?Sized> Future for MutexLock<'a, T> {
    type Output = MutexGuard<'a, T>;
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<MutexGuard<'a, T>> {
        // SAFETY: structural pinning of `acquire`: it is never moved out.
        let this = unsafe { self.get_unchecked_mut() };
        let mutex = this.mutex;
        // SAFETY: as above.
        unsafe { Pin::new_unchecked(&mut this.acquire) }.poll(cx).map(|task| MutexGuard::new(mutex, task))
    }
}

/// Holds a [`Mutex`] locked; unlocks when dropped.
pub struct MutexGuard<'a, T: ?Sized> {
    pub(crate) mutex: &'a Mutex<T>,
    /// The task that locked it.
    task: u64,
    /// The guard's access to the data (tracked under loom).
    access: Access<T>,
}

impl<'a, T: ?Sized> MutexGuard<'a, T> {
    /// The guard of a lock just taken by `task`.
    fn new(mutex: &'a Mutex<T>, task: u64) -> Self {
        MutexGuard { mutex, task, access: mutex.data.access(true) }
    }
}

// SAFETY: a guard gives `&mut T`; sending it moves that access to another
// thread, which needs `T: Send`; sharing it shares `&T`, which needs `T: Sync`.
unsafe impl<T: ?Sized + Sync> Sync for MutexGuard<'_, T> {}

impl<T: ?Sized> std::ops::Deref for MutexGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: this guard is the only one (the lock is held for it), so no
        // `&mut T` exists elsewhere; its access was started on this mutex's data.
        unsafe { self.access.get(&self.mutex.data) }
    }
}

impl<T: ?Sized> std::ops::DerefMut for MutexGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: this guard is the only one and is borrowed mutably; its
        // access was started, exclusive, on this mutex's data.
        unsafe { self.access.get_mut(&self.mutex.data) }
    }
}

impl<T: ?Sized> Drop for MutexGuard<'_, T> {
    fn drop(&mut self) {
        self.access.end();
        release(&self.mutex.res, true, self.task);
    }
}

impl<T: ?Sized + std::fmt::Debug> std::fmt::Debug for MutexGuard<'_, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(&**self, f)
    }
}
