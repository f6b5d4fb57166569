//! Go's `context`: cancellation and deadlines that propagate to children.
//!
//! `done()` is a channel closed when the context is cancelled or its deadline
//! passes, for use in `select!`. A context with a pending deadline arms its
//! done channel as a timer: a task waiting on it is never called stuck.
//!
//! ```
//! use std::time::Duration;
//! use parkwatch::context::{Context, ContextError};
//! parkwatch::run(async {
//!     let (ctx, cancel) = Context::background().with_cancel();
//!     let (child, _c) = ctx.with_timeout(Duration::from_secs(60));
//!     cancel.cancel();
//!     assert_eq!(child.done().recv().await, None); // closed
//!     assert_eq!(child.err(), Some(ContextError::Canceled));
//! });
//! ```

use std::fmt;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use crate::chan::{chan, Chan, Receiver};
use crate::shim::lock;

/// Why a context ended.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum ContextError {
    /// `cancel` was called (on it or an ancestor).
    Canceled,
    /// Its deadline passed.
    DeadlineExceeded,
}

impl fmt::Display for ContextError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ContextError::Canceled => "context canceled",
            ContextError::DeadlineExceeded => "context deadline exceeded",
        })
    }
}

impl std::error::Error for ContextError {}

struct Inner {
    /// Closed when the context ends; never sent on.
    done: Chan<()>,
    deadline: Option<Instant>,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    err: Option<ContextError>,
    children: Vec<Weak<Inner>>,
}

impl Inner {
    fn new(deadline: Option<Instant>) -> Arc<Inner> {
        Arc::new(Inner { done: chan(0), deadline, state: Mutex::new(State::default()) })
    }

    /// Ends this context and its descendants (the first reason wins).
    fn cancel(&self, err: ContextError) {
        let children = {
            let mut st = lock(&self.state);
            if st.err.is_some() {
                return;
            }
            st.err = Some(err);
            std::mem::take(&mut st.children)
        };
        self.arm(false);
        let _ = self.done.close();
        for child in children.iter().filter_map(Weak::upgrade) {
            child.cancel(err);
        }
    }

    /// Marks the done channel as one a timer will close (or no longer).
    fn arm(&self, armed: bool) {
        if let Some(r) = self.done.resource() {
            r.timer_armed.store(armed, Ordering::Release);
        }
    }
}

/// A context: cancellation, a deadline, and the same for its children.
#[derive(Clone)]
pub struct Context {
    /// `None` for `background()`, which never ends.
    inner: Option<Arc<Inner>>,
}

impl fmt::Debug for Context {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.inner {
            None => f.write_str("context.Background"),
            Some(i) => write!(f, "Context(deadline {:?}, err {:?})", i.deadline, self.err()),
        }
    }
}

/// Cancels its context (and the context's children). Calling it twice is harmless.
#[derive(Clone)]
pub struct CancelFunc {
    inner: Arc<Inner>,
}

impl fmt::Debug for CancelFunc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CancelFunc")
    }
}

impl CancelFunc {
    /// Cancels the context with [`ContextError::Canceled`].
    pub fn cancel(&self) {
        self.inner.cancel(ContextError::Canceled);
    }
}

impl Context {
    /// The root context: never cancelled, no deadline; its `done()` is a nil
    /// channel (never ready), as in Go.
    pub fn background() -> Context {
        Context { inner: None }
    }

    /// Go's `context.TODO()`: the same as [`Context::background`].
    pub fn todo() -> Context {
        Context::background()
    }

    /// A child cancelled by the returned function, or when this one ends.
    pub fn with_cancel(&self) -> (Context, CancelFunc) {
        self.child(None)
    }

    /// A child that also ends `d` from now.
    pub fn with_timeout(&self, d: Duration) -> (Context, CancelFunc) {
        self.with_deadline(Instant::now() + d)
    }

    /// A child that also ends at `deadline` (or at this context's deadline, if earlier).
    pub fn with_deadline(&self, deadline: Instant) -> (Context, CancelFunc) {
        let deadline = self.deadline().map_or(deadline, |d| d.min(deadline));
        let (ctx, cancel) = self.child(Some(deadline));
        if let Some(inner) = &ctx.inner {
            if ctx.err().is_none() {
                start_deadline(inner);
            }
        }
        (ctx, cancel)
    }

    fn child(&self, deadline: Option<Instant>) -> (Context, CancelFunc) {
        let inner = Inner::new(deadline);
        if let Some(parent) = &self.inner {
            let mut st = lock(&parent.state);
            match st.err {
                Some(err) => {
                    drop(st);
                    inner.cancel(err);
                }
                None => {
                    st.children.retain(|c| c.strong_count() > 0);
                    st.children.push(Arc::downgrade(&inner));
                }
            }
        }
        (Context { inner: Some(inner.clone()) }, CancelFunc { inner })
    }

    /// A channel closed when the context ends.
    pub fn done(&self) -> Receiver<()> {
        match &self.inner {
            Some(i) => i.done.receiver(),
            None => Chan::nil().receiver(),
        }
    }

    /// Why it ended, if it has.
    pub fn err(&self) -> Option<ContextError> {
        self.inner.as_ref().and_then(|i| lock(&i.state).err)
    }

    /// Its deadline, if any.
    pub fn deadline(&self) -> Option<Instant> {
        self.inner.as_ref().and_then(|i| i.deadline)
    }
}

/// Cancels `inner` with `DeadlineExceeded` at its deadline. The timer holds it
/// weakly: a context dropped before its deadline is simply forgotten.
fn start_deadline(inner: &Arc<Inner>) {
    let Some(deadline) = inner.deadline else { return };
    inner.arm(true);
    let weak = Arc::downgrade(inner);
    crate::time::start_timer(async move {
        tokio::time::sleep_until(deadline.into()).await;
        if let Some(inner) = weak.upgrade() {
            inner.cancel(ContextError::DeadlineExceeded);
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cancel_propagates_to_children_not_parents() {
        let (parent, cancel_parent) = Context::background().with_cancel();
        let (child, cancel_child) = parent.with_cancel();
        let (grandchild, _g) = child.with_cancel();
        cancel_child.cancel();
        assert_eq!(child.err(), Some(ContextError::Canceled));
        assert_eq!(grandchild.err(), Some(ContextError::Canceled));
        assert_eq!(parent.err(), None);
        assert!(grandchild.done().is_closed());
        cancel_parent.cancel();
        cancel_parent.cancel(); // harmless
        assert_eq!(parent.err(), Some(ContextError::Canceled));
    }

    #[test]
    fn child_of_cancelled_parent_is_born_cancelled() {
        let (parent, cancel) = Context::background().with_cancel();
        cancel.cancel();
        let (child, _c) = parent.with_timeout(Duration::from_secs(5));
        assert_eq!(child.err(), Some(ContextError::Canceled));
        assert!(child.done().is_closed());
    }

    #[test]
    fn background_never_ends() {
        let bg = Context::background();
        assert!(bg.done().is_nil());
        assert_eq!(bg.err(), None);
        assert_eq!(bg.deadline(), None);
    }

    #[test]
    fn child_deadline_is_never_later_than_parent() {
        let (p, _c) = Context::background().with_timeout(Duration::from_millis(50));
        let (c, _c2) = p.with_timeout(Duration::from_secs(60));
        assert_eq!(c.deadline(), p.deadline());
    }
}
