//! Errors of channel operations. Each gives back the value it could not deliver.

use std::fmt;

/// A send on a closed channel; the value comes back (`.0`), where Go would panic.
#[derive(PartialEq, Eq, Clone, Copy)]
pub struct SendError<T>(pub T);

/// A non-blocking send that could not complete; the value comes back.
#[derive(PartialEq, Eq, Clone, Copy)]
pub enum TrySendError<T> {
    /// No receiver is waiting and the buffer is full (always, for a nil channel).
    Full(T),
    /// The channel is closed.
    Closed(T),
}

/// A non-blocking receive that could not complete.
#[derive(PartialEq, Eq, Clone, Copy, Debug)]
pub enum TryRecvError {
    /// Nothing to receive yet.
    Empty,
    /// Closed and drained.
    Closed,
}

/// `close` on a channel that is already closed, or on a nil channel (Go panics on both).
#[derive(PartialEq, Eq, Clone, Copy, Debug)]
pub enum CloseError {
    /// The channel was closed before.
    AlreadyClosed,
    /// The channel is nil.
    Nil,
}

impl<T> SendError<T> {
    /// The value that was not sent.
    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T> TrySendError<T> {
    /// The value that was not sent.
    pub fn into_inner(self) -> T {
        match self {
            TrySendError::Full(v) | TrySendError::Closed(v) => v,
        }
    }
    /// True for `Full`.
    pub fn is_full(&self) -> bool {
        matches!(self, TrySendError::Full(_))
    }
    /// True for `Closed`.
    pub fn is_closed(&self) -> bool {
        matches!(self, TrySendError::Closed(_))
    }
}

impl<T> fmt::Debug for SendError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SendError(..)")
    }
}
impl<T> fmt::Display for SendError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("send on closed channel")
    }
}
impl<T> std::error::Error for SendError<T> {}

impl<T> fmt::Debug for TrySendError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TrySendError::Full(_) => f.write_str("Full(..)"),
            TrySendError::Closed(_) => f.write_str("Closed(..)"),
        }
    }
}
impl<T> fmt::Display for TrySendError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TrySendError::Full(_) => f.write_str("send on full channel"),
            TrySendError::Closed(_) => f.write_str("send on closed channel"),
        }
    }
}
impl<T> std::error::Error for TrySendError<T> {}

impl fmt::Display for TryRecvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TryRecvError::Empty => f.write_str("receive on empty channel"),
            TryRecvError::Closed => f.write_str("receive on closed channel"),
        }
    }
}
impl std::error::Error for TryRecvError {}

impl fmt::Display for CloseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CloseError::AlreadyClosed => f.write_str("close of closed channel"),
            CloseError::Nil => f.write_str("close of nil channel"),
        }
    }
}
impl std::error::Error for CloseError {}
