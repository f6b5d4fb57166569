//! [`RwMutex`]: a reader/writer lock (Go's `sync.RWMutex`).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use super::lock::{acquire_blocking, release, Acquire, LockCase};
use super::state::SyncState;
use crate::park::resource::{Resource, ResourceKind};
use crate::select::Case;
use crate::shim::cell::{Access, DataCell};
use crate::snapshot::WaitReason;

/// A reader/writer lock with Go's writer preference: once a writer waits, new
/// readers wait behind it — so a task that read-locks twice while a writer is
/// queued deadlocks, exactly as in Go (and parkwatch proves it).
///
/// ```
/// parkwatch::run(async {
///     let l = parkwatch::sync::RwMutex::new(vec![1]);
///     {
///         let a = l.read().await;
///         let b = l.read().await; // two readers at once
///         assert_eq!(a.len() + b.len(), 2);
///     }
///     l.write().await.push(2);
///     assert_eq!(*l.read().await, [1, 2]);
/// });
/// ```
pub struct RwMutex<T: ?Sized> {
    res: Arc<Resource>,
    data: DataCell<T>,
}

// SAFETY: readers share `&T` across threads (needs `T: Sync`); a writer gets
// `&mut T` on whichever thread holds the guard (needs `T: Send`). The lock
// state never grants a writer together with readers or another writer.
unsafe impl<T: ?Sized + Send> Send for RwMutex<T> {}
// SAFETY: as above.
unsafe impl<T: ?Sized + Send + Sync> Sync for RwMutex<T> {}

impl<T: ?Sized> std::fmt::Debug for RwMutex<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RwMutex(#{})", self.res.id)
    }
}

impl<T: Default> Default for RwMutex<T> {
    #[track_caller]
    fn default() -> Self {
        RwMutex::new(T::default())
    }
}

impl<T> RwMutex<T> {
    /// An unlocked lock holding `v`.
    #[track_caller]
    pub fn new(v: T) -> RwMutex<T> {
        RwMutex {
            res: Resource::with_state(ResourceKind::RwMutex, SyncState::Lock(Default::default())),
            data: DataCell::new(v),
        }
    }

    /// The data, consuming the lock.
    pub fn into_inner(self) -> T {
        self.data.into_inner()
    }
}

impl<T: ?Sized> RwMutex<T> {
    fn case(&self, write: bool, site: &'static std::panic::Location<'static>) -> LockCase<'_> {
        let reason = if write { WaitReason::RwMutexLock } else { WaitReason::RwMutexRLock };
        LockCase::new(&self.res, write, reason, site)
    }

    /// Read-locks, waiting while a writer holds it or waits for it.
    #[track_caller]
    pub fn read(&self) -> RwRead<'_, T> {
        let site = std::panic::Location::caller();
        RwRead { lock: self, acquire: Acquire::new(self.case(false, site), site) }
    }

    /// Write-locks, waiting while anybody holds it.
    #[track_caller]
    pub fn write(&self) -> RwWrite<'_, T> {
        let site = std::panic::Location::caller();
        RwWrite { lock: self, acquire: Acquire::new(self.case(true, site), site) }
    }

    /// Read-locks, blocking the OS thread.
    #[track_caller]
    pub fn read_blocking(&self) -> RwMutexReadGuard<'_, T> {
        let site = std::panic::Location::caller();
        RwMutexReadGuard::new(self, acquire_blocking(self.case(false, site), site))
    }

    /// Write-locks, blocking the OS thread.
    #[track_caller]
    pub fn write_blocking(&self) -> RwMutexWriteGuard<'_, T> {
        let site = std::panic::Location::caller();
        RwMutexWriteGuard::new(self, acquire_blocking(self.case(true, site), site))
    }

    /// Read-locks if no writer holds or waits.
    #[track_caller]
    pub fn try_read(&self) -> Option<RwMutexReadGuard<'_, T>> {
        let mut case = self.case(false, std::panic::Location::caller());
        case.try_now().then(|| RwMutexReadGuard::new(self, case.holder_task()))
    }

    /// Write-locks if nobody holds it.
    #[track_caller]
    pub fn try_write(&self) -> Option<RwMutexWriteGuard<'_, T>> {
        let mut case = self.case(true, std::panic::Location::caller());
        case.try_now().then(|| RwMutexWriteGuard::new(self, case.holder_task()))
    }

    /// The data, through exclusive access.
    pub fn get_mut(&mut self) -> &mut T {
        self.data.get_mut()
    }

    /// The id dumps give this lock.
    pub fn id(&self) -> u64 {
        self.res.id.0
    }
}

/// The future of [`RwMutex::read`].
pub struct RwRead<'a, T: ?Sized> {
    lock: &'a RwMutex<T>,
    acquire: Acquire<'a>,
}

/// The future of [`RwMutex::write`].
pub struct RwWrite<'a, T: ?Sized> {
    lock: &'a RwMutex<T>,
    acquire: Acquire<'a>,
}

impl<'a, T: ?Sized> Future for RwRead<'a, T> {
    type Output = RwMutexReadGuard<'a, T>;
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        // SAFETY: structural pinning of `acquire`: it is never moved out.
        let this = unsafe { self.get_unchecked_mut() };
        let lock = this.lock;
        // SAFETY: as above.
        unsafe { Pin::new_unchecked(&mut this.acquire) }.poll(cx).map(|task| RwMutexReadGuard::new(lock, task))
    }
}

impl<'a, T: ?Sized> Future for RwWrite<'a, T> {
    type Output = RwMutexWriteGuard<'a, T>;
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        // SAFETY: structural pinning of `acquire`: it is never moved out.
        let this = unsafe { self.get_unchecked_mut() };
        let lock = this.lock;
        // SAFETY: as above.
        unsafe { Pin::new_unchecked(&mut this.acquire) }.poll(cx).map(|task| RwMutexWriteGuard::new(lock, task))
    }
}

/// Holds an [`RwMutex`] read-locked.
pub struct RwMutexReadGuard<'a, T: ?Sized> {
    lock: &'a RwMutex<T>,
    task: u64,
    /// The guard's shared access to the data (tracked under loom).
    access: Access<T>,
}

/// Holds an [`RwMutex`] write-locked.
pub struct RwMutexWriteGuard<'a, T: ?Sized> {
    lock: &'a RwMutex<T>,
    task: u64,
    /// The guard's exclusive access to the data (tracked under loom).
    access: Access<T>,
}

impl<'a, T: ?Sized> RwMutexReadGuard<'a, T> {
    /// The guard of a read lock just taken by `task`.
    fn new(lock: &'a RwMutex<T>, task: u64) -> Self {
        RwMutexReadGuard { lock, task, access: lock.data.access(false) }
    }
}

impl<'a, T: ?Sized> RwMutexWriteGuard<'a, T> {
    /// The guard of a write lock just taken by `task`.
    fn new(lock: &'a RwMutex<T>, task: u64) -> Self {
        RwMutexWriteGuard { lock, task, access: lock.data.access(true) }
    }
}

// SAFETY: a read guard only gives `&T`: sending or sharing it shares `&T`.
unsafe impl<T: ?Sized + Sync> Send for RwMutexReadGuard<'_, T> {}
// SAFETY: as above.
unsafe impl<T: ?Sized + Sync> Sync for RwMutexReadGuard<'_, T> {}
// SAFETY: a write guard gives `&mut T` (send: `T: Send`) and `&T` (share: `T: Sync`).
unsafe impl<T: ?Sized + Send + Sync> Send for RwMutexWriteGuard<'_, T> {}
// SAFETY: as above.
unsafe impl<T: ?Sized + Sync> Sync for RwMutexWriteGuard<'_, T> {}

impl<T: ?Sized> std::ops::Deref for RwMutexReadGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: held for reading: no writer exists, only shared access; the
        // access was started on this lock's data.
        unsafe { self.access.get(&self.lock.data) }
    }
}

impl<T: ?Sized> std::ops::Deref for RwMutexWriteGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: held for writing by this guard alone, whose access was
        // started on this lock's data.
        unsafe { self.access.get(&self.lock.data) }
    }
}

impl<T: ?Sized> std::ops::DerefMut for RwMutexWriteGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: held for writing by this guard alone, borrowed mutably; its
        // access was started, exclusive, on this lock's data.
        unsafe { self.access.get_mut(&self.lock.data) }
    }
}

impl<T: ?Sized> Drop for RwMutexReadGuard<'_, T> {
    fn drop(&mut self) {
        self.access.end();
        release(&self.lock.res, false, self.task);
    }
}

impl<T: ?Sized> Drop for RwMutexWriteGuard<'_, T> {
    fn drop(&mut self) {
        self.access.end();
        release(&self.lock.res, true, self.task);
    }
}
