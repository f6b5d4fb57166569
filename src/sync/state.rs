//! The untyped state of locks, wait groups and conditions, kept in their
//! [`Resource`](crate::park::resource::Resource) so that snapshots can read
//! holders and waiters without knowing the data type.

use std::collections::VecDeque;

use crate::park::waiter::{Selection, Waiter, WaiterRef};
use crate::shim::{lock, Mutex, MutexGuard};

/// A task holding (or granted) a lock, and where it locked.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Holder {
    pub(crate) task: u64,
    pub(crate) site: &'static std::panic::Location<'static>,
}

/// How many readers an RwMutex remembers by name; more are only counted.
pub(crate) const READER_SLOTS: usize = 8;

/// The readers holding an RwMutex.
#[derive(Debug, Default)]
pub(crate) struct Readers {
    named: [Option<Holder>; READER_SLOTS],
    /// Readers beyond the named slots.
    unnamed: usize,
}

impl Readers {
    fn add(&mut self, h: Holder) {
        match self.named.iter_mut().find(|s| s.is_none()) {
            Some(slot) => *slot = Some(h),
            None => self.unnamed += 1,
        }
    }

    fn remove(&mut self, task: u64) {
        match self.named.iter_mut().find(|s| s.is_some_and(|h| h.task == task)) {
            Some(slot) => *slot = None,
            None if self.unnamed > 0 => self.unnamed -= 1,
            // The guard was acquired by a task whose entry moved to `named`
            // after another reader left: release any one entry.
            None => {
                if let Some(slot) = self.named.iter_mut().find(|s| s.is_some()) {
                    *slot = None;
                }
            }
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.unnamed == 0 && self.named.iter().all(Option::is_none)
    }

    /// The named readers, and whether some readers are not named.
    pub(crate) fn list(&self) -> (Vec<Holder>, bool) {
        (self.named.iter().flatten().copied().collect(), self.unnamed > 0)
    }
}

/// A task parked on a lock.
pub(crate) struct LockWaiter {
    pub(crate) waiter: WaiterRef,
    pub(crate) case: usize,
    pub(crate) write: bool,
    pub(crate) holder: Holder,
}

/// A Mutex's or RwMutex's state. A Mutex uses only `writer`.
///
/// Invariants: `writer` and `readers` are never both set; waiters are granted
/// in FIFO order by [`LockState::grant`]; a reader does not get the lock while
/// a writer waits (Go's writer preference: a recursive read lock deadlocks
/// behind a queued writer, as in Go).
#[derive(Default)]
pub(crate) struct LockState {
    pub(crate) writer: Option<Holder>,
    pub(crate) readers: Readers,
    pub(crate) queue: VecDeque<LockWaiter>,
}

impl LockState {
    fn waits(w: &LockWaiter, me: Option<&Waiter>) -> bool {
        w.waiter.selection() == Selection::Waiting && me.is_none_or(|me| !w.waiter.is(me))
    }

    /// Could a writer take the lock now?
    pub(crate) fn can_write(&self) -> bool {
        self.writer.is_none() && self.readers.is_empty()
    }

    /// Could a new reader take the lock now (not counting `me`'s own queue entry)?
    pub(crate) fn can_read(&self, me: Option<&Waiter>) -> bool {
        self.writer.is_none() && !self.queue.iter().any(|w| w.write && Self::waits(w, me))
    }

    /// Takes the lock for `h` if it can.
    pub(crate) fn try_acquire(&mut self, write: bool, h: Holder) -> bool {
        if write && self.can_write() {
            self.writer = Some(h);
            true
        } else if !write && self.can_read(None) {
            self.readers.add(h);
            true
        } else {
            false
        }
    }

    /// Releases a hold, then grants the lock to waiters in FIFO order: one
    /// writer, or every reader up to the first waiting writer.
    pub(crate) fn release(&mut self, write: bool, task: u64) {
        if write {
            self.writer = None;
        } else {
            self.readers.remove(task);
        }
        self.grant();
    }

    fn grant(&mut self) {
        while let Some(front) = self.queue.front() {
            if !Self::waits(front, None) {
                self.queue.pop_front();
                continue;
            }
            let fits = if front.write { self.can_write() } else { self.writer.is_none() };
            if !fits {
                return;
            }
            let w = self.queue.pop_front().expect("front exists");
            if !w.waiter.try_claim(w.case) {
                continue;
            }
            if w.write {
                self.writer = Some(w.holder);
            } else {
                self.readers.add(w.holder);
            }
            // SAFETY: this thread won the claim just above and has not
            // published; the entry is not touched after.
            unsafe { w.waiter.finish(w.case) };
            if w.write {
                return;
            }
        }
    }
}

/// A WaitGroup's state.
#[derive(Default)]
pub(crate) struct WaitGroupState {
    pub(crate) count: isize,
    pub(crate) queue: VecDeque<(WaiterRef, usize)>,
}

/// A Cond's state: tickets, as Go's notifyList. A waiter takes a ticket
/// before it unlocks its mutex; `signal` notifies the oldest ticket not yet
/// notified, `broadcast` all of them; a ticket below `notified` is done.
#[derive(Default)]
pub(crate) struct CondState {
    pub(crate) next_ticket: u64,
    pub(crate) notified: u64,
    pub(crate) queue: VecDeque<(WaiterRef, usize, u64)>,
}

/// The state kept in a resource.
pub(crate) enum SyncState {
    /// Channels keep their state typed in the channel.
    None,
    Lock(Mutex<LockState>),
    WaitGroup(Mutex<WaitGroupState>),
    Cond(Mutex<CondState>),
}

impl SyncState {
    pub(crate) fn lock(&self) -> MutexGuard<'_, LockState> {
        match self {
            SyncState::Lock(m) => lock(m),
            _ => unreachable!("not a lock"),
        }
    }

    pub(crate) fn wait_group(&self) -> MutexGuard<'_, WaitGroupState> {
        match self {
            SyncState::WaitGroup(m) => lock(m),
            _ => unreachable!("not a wait group"),
        }
    }

    pub(crate) fn cond(&self) -> MutexGuard<'_, CondState> {
        match self {
            SyncState::Cond(m) => lock(m),
            _ => unreachable!("not a cond"),
        }
    }
}

/// Removes `me`'s entries from a queue.
pub(crate) fn dequeue<E>(q: &mut VecDeque<E>, me: &WaiterRef, waiter: impl Fn(&E) -> &WaiterRef) {
    q.retain(|e| !waiter(e).same(me));
}
