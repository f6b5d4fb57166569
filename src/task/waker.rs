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

use std::sync::Arc;
use std::task::{RawWaker, RawWakerVTable, Waker};

use super::record::TaskRecord;

/// What a parkwatch waker points to.
pub(crate) struct TaskWaker {
    pub(crate) record: Arc<TaskRecord>,
    /// tokio's waker for the task.
    pub(crate) inner: Waker,
}

impl TaskWaker {
    fn wake(&self) {
        self.record.notify();
        self.inner.wake_by_ref();
    }
}

/// Makes the root waker handed to the task's future. The harness keeps `data`
/// alive; the root waker itself is not counted.
pub(crate) fn root(data: &Arc<TaskWaker>) -> Waker {
    let ptr = Arc::into_raw(data.clone()) as *const ();
    // SAFETY: `ptr` comes from `Arc::into_raw` of a `TaskWaker` and owns one
    // strong count, which the vtable's drop releases; the vtable functions
    // treat the pointer only as such an `Arc<TaskWaker>`.
    unsafe { Waker::from_raw(RawWaker::new(ptr, &ROOT)) }
}

/// Clones `w` for parkwatch's own use: a parkwatch waker's clone is not
/// counted as held outside; any other waker is cloned as usual.
pub(crate) fn internal_clone(w: &Waker) -> Waker {
    let vt = w.vtable() as *const RawWakerVTable;
    if std::ptr::eq(vt, &ROOT) || std::ptr::eq(vt, &OUTSIDE) || std::ptr::eq(vt, &INTERNAL) {
        // SAFETY: a waker with one of our vtables has a data pointer made by
        // `Arc::into_raw::<TaskWaker>` (see `root`); `new_ref` adds the strong
        // count the new waker owns.
        unsafe { Waker::from_raw(RawWaker::new(new_ref(w.data()), &INTERNAL)) }
    } else {
        w.clone()
    }
}

static ROOT: RawWakerVTable = RawWakerVTable::new(clone_outside, wake_owned, wake_by_ref, drop_plain);
static OUTSIDE: RawWakerVTable = RawWakerVTable::new(clone_outside, wake_owned_outside, wake_by_ref, drop_outside);
static INTERNAL: RawWakerVTable = RawWakerVTable::new(clone_internal, wake_owned, wake_by_ref, drop_plain);

/// Adds a strong count to the `Arc<TaskWaker>` behind `data`, returning it.
fn new_ref(data: *const ()) -> *const () {
    // SAFETY: `data` is a live `Arc<TaskWaker>` pointer (every vtable function
    // receives only pointers made by `root`/`internal_clone`/these clones).
    unsafe { Arc::increment_strong_count(data as *const TaskWaker) };
    data
}

/// Borrows the `TaskWaker` behind `data`.
fn borrow<'a>(data: *const ()) -> &'a TaskWaker {
    // SAFETY: `data` is a live `Arc<TaskWaker>` pointer whose count is held by
    // the waker being used, which outlives this call.
    unsafe { &*(data as *const TaskWaker) }
}

/// Releases the strong count owned by a waker.
fn release(data: *const ()) {
    // SAFETY: the waker being dropped owned exactly this one strong count.
    unsafe { drop(Arc::from_raw(data as *const TaskWaker)) };
}

fn clone_outside(data: *const ()) -> RawWaker {
    borrow(data).record.outside_waker_cloned();
    RawWaker::new(new_ref(data), &OUTSIDE)
}

fn clone_internal(data: *const ()) -> RawWaker {
    RawWaker::new(new_ref(data), &INTERNAL)
}

fn wake_by_ref(data: *const ()) {
    borrow(data).wake();
}

fn wake_owned(data: *const ()) {
    wake_by_ref(data);
    drop_plain(data);
}

fn wake_owned_outside(data: *const ()) {
    wake_by_ref(data);
    drop_outside(data);
}

fn drop_plain(data: *const ()) {
    release(data);
}

fn drop_outside(data: *const ()) {
    borrow(data).record.outside_waker_dropped();
    release(data);
}
