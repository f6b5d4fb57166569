//! The waker parkwatch gives to a task's future, which knows who holds it.
//!
//! A task parked on parkwatch primitives only can be woken only by another
//! task's parkwatch operation; one whose waker is also held by something else
//! (a tokio timer, a socket, a foreign channel) may wake on its own and must
//! never be called deadlocked. Telling the two apart is the waker's job: the
//! harness hands the future a *root* waker; every clone made from it by code
//! outside parkwatch is an *outside* clone and is counted on the task's record
//! while it lives; parkwatch's own primitives clone through
//! [`internal_clone`], which is not counted. Every wake, from any clone, first
//! tells the record (`TaskRecord::notify`) and then wakes tokio's waker.
//!
//! A waker's data pointer is the task's `Arc<TaskRecord>` itself, which keeps
//! tokio's waker for the task as the harness first saw it (no allocation per
//! task for the waker). tokio hands a task the same waker at every poll; if a
//! poll ever brings a different one, the harness points the wakers of that
//! poll at a separate [`TaskWaker`] (the record and that waker) instead. Each
//! of the two targets has its own three vtables (root, outside, internal).

use std::sync::Arc;
use std::task::{RawWaker, RawWakerVTable, Waker};

use super::record::TaskRecord;

/// What a parkwatch waker points to when tokio's waker for the task is not
/// the one kept in its record.
pub(crate) struct TaskWaker {
    pub(crate) record: Arc<TaskRecord>,
    /// tokio's waker for the task.
    pub(crate) inner: Waker,
}

/// What the data pointer of a parkwatch waker points to (as made by
/// `Arc::into_raw`): a task's record, or a [`TaskWaker`].
trait Target: Sized + Send + Sync + 'static {
    /// The vtables of wakers pointing to this type.
    fn vtables() -> &'static Vtables;
    fn record(&self) -> &TaskRecord;
    /// tokio's waker for the task.
    ///
    /// # Safety
    ///
    /// `self` is reached through a waker with one of `Self::vtables()`.
    unsafe fn inner(&self) -> Option<&Waker>;
}

impl Target for TaskRecord {
    fn vtables() -> &'static Vtables {
        &ON_RECORD
    }
    fn record(&self) -> &TaskRecord {
        self
    }
    unsafe fn inner(&self) -> Option<&Waker> {
        // SAFETY: a waker pointing at the record is made only by
        // `root_on_record`, after the harness set the slot (its one write),
        // and reached this thread after that; so no write runs concurrently.
        let inner = unsafe { self.tokio_waker() };
        debug_assert!(inner.is_some(), "waker of task {} made before its tokio waker was set", self.id);
        inner
    }
}

impl Target for TaskWaker {
    fn vtables() -> &'static Vtables {
        &ON_WAKER
    }
    fn record(&self) -> &TaskRecord {
        &self.record
    }
    unsafe fn inner(&self) -> Option<&Waker> {
        Some(&self.inner)
    }
}

/// The waker handed to a task's future for one poll. It owns no reference
/// count: it borrows the one of the `Arc` its harness holds for the poll
/// (`'a`), is lent to the future only by reference (through its
/// `Context`), and is never dropped through its vtable (the root vtable's
/// drop and wake-by-value release nothing). A future that keeps the waker
/// clones it, and the clone (an outside one) owns its count. So a poll
/// touches no reference count for its waker.
pub(crate) struct RootWaker<'a> {
    waker: std::mem::ManuallyDrop<Waker>,
    _borrowed: std::marker::PhantomData<&'a ()>,
}

impl std::ops::Deref for RootWaker<'_> {
    type Target = Waker;
    fn deref(&self) -> &Waker {
        &self.waker
    }
}

/// Makes the root waker handed to the task's future, pointing at its record.
/// The root waker itself is not counted as held outside.
///
/// # Safety
///
/// The record's tokio-waker slot is set (`TaskRecord::set_tokio_waker`): the
/// wakers made from this one read it from any thread, and it is never written
/// again.
#[inline]
pub(crate) unsafe fn root_on_record(record: &Arc<TaskRecord>) -> RootWaker<'_> {
    root(record)
}

/// Makes the root waker handed to the task's future, pointing at `data` (for
/// a poll whose tokio waker is not the record's). The harness keeps `data`
/// alive; the root waker itself is not counted.
pub(crate) fn root_on_waker(data: &Arc<TaskWaker>) -> RootWaker<'_> {
    root(data)
}

#[inline]
fn root<T: Target>(data: &Arc<T>) -> RootWaker<'_> {
    let ptr = Arc::as_ptr(data) as *const ();
    // SAFETY: `ptr` is the pointer of an `Arc<T>` that `data` keeps alive for
    // `'a`, which the root waker cannot outlive (`RootWaker` borrows it and
    // lends the waker only by reference); the root vtable's functions never
    // release the count they do not own, and its clone makes a waker that
    // owns one. The functions of `T`'s vtables treat the pointer only as
    // such an `Arc<T>`. (For a record, the caller of `root_on_record`
    // guarantees its tokio waker is set, as `T::inner` needs.)
    let waker = unsafe { Waker::from_raw(RawWaker::new(ptr, &T::vtables().root)) };
    RootWaker { waker: std::mem::ManuallyDrop::new(waker), _borrowed: std::marker::PhantomData }
}

/// Clones `w` for parkwatch's own use: a parkwatch waker's clone is not
/// counted as held outside; any other waker is cloned as usual.
pub(crate) fn internal_clone(w: &Waker) -> Waker {
    let vt = w.vtable();
    if ON_RECORD.owns(vt) {
        // SAFETY: a waker with one of the record vtables has a data pointer
        // made by `Arc::into_raw::<TaskRecord>` (see `root`) and its tokio
        // waker set; `new_ref` adds the strong count the new waker owns.
        unsafe { Waker::from_raw(RawWaker::new(new_ref::<TaskRecord>(w.data()), &ON_RECORD.internal)) }
    } else if ON_WAKER.owns(vt) {
        // SAFETY: as above, for a data pointer made by `Arc::into_raw::<TaskWaker>`.
        unsafe { Waker::from_raw(RawWaker::new(new_ref::<TaskWaker>(w.data()), &ON_WAKER.internal)) }
    } else {
        w.clone()
    }
}

/// Which task a waker made by [`internal_clone`] wakes, kept apart from the
/// waker: its data pointer and vtable. Compared only while that waker is
/// alive (an operation compares it with a poll's waker while its waiter still
/// holds the waker or a claimer is about to wake through it), so the data
/// pointer cannot belong to another waker meanwhile.
#[derive(Clone, Copy, Debug)]
pub(crate) struct WakerId {
    data: usize,
    vtable: &'static RawWakerVTable,
}

impl WakerId {
    pub(crate) fn of(kept: &Waker) -> WakerId {
        WakerId { data: kept.data() as usize, vtable: kept.vtable() }
    }

    /// Whether the waker this was taken from wakes the same task as `w`: a
    /// parkwatch waker's clones point at the same data with another vtable
    /// of the same family; any other waker is compared as `will_wake` does.
    pub(crate) fn wakes(&self, w: &Waker) -> bool {
        let (kv, wv) = (self.vtable, w.vtable());
        let same_family = (ON_RECORD.owns(kv) && ON_RECORD.owns(wv)) || (ON_WAKER.owns(kv) && ON_WAKER.owns(wv));
        self.data == w.data() as usize && (same_family || std::ptr::eq(kv, wv))
    }
}

/// The three kinds of parkwatch waker pointing to one [`Target`] type.
struct Vtables {
    /// The waker handed to the future: its clones are outside ones.
    root: RawWakerVTable,
    /// A clone made outside parkwatch: counted on the record while it lives.
    outside: RawWakerVTable,
    /// A clone made by parkwatch's primitives: not counted.
    internal: RawWakerVTable,
}

impl Vtables {
    const fn of<T: Target>() -> Vtables {
        Vtables {
            // Owns no count (`RootWaker`): its wake by value and drop (never
            // called: it is only lent by reference) release nothing.
            root: RawWakerVTable::new(clone_outside::<T>, wake_by_ref::<T>, wake_by_ref::<T>, drop_borrowed),
            outside: RawWakerVTable::new(
                clone_outside::<T>,
                wake_owned_outside::<T>,
                wake_by_ref::<T>,
                drop_outside::<T>,
            ),
            internal: RawWakerVTable::new(clone_internal::<T>, wake_owned::<T>, wake_by_ref::<T>, drop_plain::<T>),
        }
    }

    fn owns(&self, vt: &RawWakerVTable) -> bool {
        std::ptr::eq(vt, &self.root) || std::ptr::eq(vt, &self.outside) || std::ptr::eq(vt, &self.internal)
    }
}

static ON_RECORD: Vtables = Vtables::of::<TaskRecord>();
static ON_WAKER: Vtables = Vtables::of::<TaskWaker>();

// Every function below receives, as `data`, only pointers of wakers with one of
// `T::vtables()` — made by `root` (the pointer of an `Arc<T>` its harness
// keeps alive while the root waker is lent out) or by `internal_clone`/these
// clones from `Arc::into_raw::<T>`, each of those owning one strong count of
// that `Arc<T>` — with the tokio waker set if `T` is a record. That is their
// safety contract. Only the outside and internal vtables release a count.

/// Adds a strong count to the `Arc<T>` behind `data`, returning it.
///
/// # Safety
///
/// `data` is a live `Arc<T>` pointer (see above).
unsafe fn new_ref<T: Target>(data: *const ()) -> *const () {
    // SAFETY: `data` came from `Arc::into_raw::<T>` and its waker, which holds
    // a strong count, is alive during this call.
    unsafe { Arc::increment_strong_count(data as *const T) };
    data
}

/// Borrows the `T` behind `data`.
///
/// # Safety
///
/// `data` is a live `Arc<T>` pointer whose count is held by the waker being
/// used, which outlives the borrow.
unsafe fn borrow<'a, T: Target>(data: *const ()) -> &'a T {
    // SAFETY: per the contract, the pointee is a live `T` kept alive by the
    // caller's waker for at least `'a`; it is only ever shared.
    unsafe { &*(data as *const T) }
}

/// Releases the strong count owned by a waker.
///
/// # Safety
///
/// The waker being dropped owned exactly this one strong count of `Arc<T>`,
/// and `data` is not used afterwards.
unsafe fn release<T: Target>(data: *const ()) {
    // SAFETY: per the contract, this gives back the count the waker owned.
    unsafe { drop(Arc::from_raw(data as *const T)) };
}

unsafe fn clone_outside<T: Target>(data: *const ()) -> RawWaker {
    // SAFETY: `data` is a live waker's pointer (see the contract above).
    unsafe { borrow::<T>(data) }.record().outside_waker_cloned();
    // SAFETY: as above; the new count is owned by the returned waker.
    RawWaker::new(unsafe { new_ref::<T>(data) }, &T::vtables().outside)
}

unsafe fn clone_internal<T: Target>(data: *const ()) -> RawWaker {
    // SAFETY: `data` is a live waker's pointer; the new count is owned by the returned waker.
    RawWaker::new(unsafe { new_ref::<T>(data) }, &T::vtables().internal)
}

unsafe fn wake_by_ref<T: Target>(data: *const ()) {
    // SAFETY: `data` is a live waker's pointer, alive for this call.
    let target = unsafe { borrow::<T>(data) };
    target.record().notify();
    // SAFETY: `target` was reached through a waker with one of `T`'s vtables.
    if let Some(inner) = unsafe { target.inner() } {
        inner.wake_by_ref();
    }
}

unsafe fn wake_owned<T: Target>(data: *const ()) {
    // SAFETY: the waker being consumed is alive until `drop_plain` releases its count.
    unsafe {
        wake_by_ref::<T>(data);
        drop_plain::<T>(data);
    }
}

unsafe fn wake_owned_outside<T: Target>(data: *const ()) {
    // SAFETY: the waker being consumed (an outside clone) is alive until
    // `drop_outside` releases its count.
    unsafe {
        wake_by_ref::<T>(data);
        drop_outside::<T>(data);
    }
}

/// The root waker's drop: it owns no count (`RootWaker`).
unsafe fn drop_borrowed(_data: *const ()) {}

unsafe fn drop_plain<T: Target>(data: *const ()) {
    // SAFETY: the waker being dropped owns this count and is not used again.
    unsafe { release::<T>(data) };
}

unsafe fn drop_outside<T: Target>(data: *const ()) {
    // SAFETY: the waker being dropped (an outside clone) is alive until
    // `release` gives back the count it owns; it is not used again.
    unsafe {
        borrow::<T>(data).record().outside_waker_dropped();
        release::<T>(data);
    }
}
