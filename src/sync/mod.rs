//! Go's `sync` primitives, instrumented: a task blocked in one is recorded
//! with Go's wait reason and what it waits for, like a blocked channel
//! operation, and every lock knows the task that holds it.
//!
//! Each blocking operation is a [`Case`](crate::select::Case) run by the same
//! engine as channel operations, so the async and blocking forms share one
//! implementation and one wake-up protocol. Their untyped state lives in the
//! resource (`sync::state`), where snapshots read holders and waiters.

mod cond;
mod lock;
#[cfg(loom)]
#[doc(hidden)]
pub mod loom_support;
mod mutex;
mod once;
mod rwmutex;
pub(crate) mod state;
mod waitgroup;

pub use cond::Cond;
pub use mutex::{Mutex, MutexGuard, MutexLock};
pub use once::Once;
pub use rwmutex::{RwMutex, RwMutexReadGuard, RwMutexWriteGuard, RwRead, RwWrite};
pub use waitgroup::{WaitGroup, WaitGroupWait};
