//! Channels with Go's semantics: unbuffered rendezvous, buffered FIFO, close,
//! nil; usable from async tasks (`.await`) and OS threads (`_blocking`) at once.
//!
//! ```
//! parkwatch::run(async {
//!     let c = parkwatch::chan::<i32>(0);
//!     let tx = c.sender();
//!     parkwatch::spawn(async move {
//!         for i in 0..3 {
//!             tx.send(i).await.unwrap();
//!         }
//!         tx.close().unwrap();
//!     });
//!     let mut got = Vec::new();
//!     while let Some(v) = c.recv().await {
//!         got.push(v);
//!     }
//!     assert_eq!(got, [0, 1, 2]);
//! });
//! ```

pub(crate) mod core;
mod ring;
#[cfg(not(loom))]
mod spin;

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{Context, Poll};

use self::core::ChanCore;
use crate::error::{CloseError, SendError, TryRecvError, TrySendError};
use crate::select::{RecvCase, SendCase, Staged};

/// Makes a channel of capacity `cap` (Go's `make(chan T, cap)`); 0 is an
/// unbuffered channel, where a send completes only when a receiver takes the value.
///
/// ```
/// let c = parkwatch::chan::<u8>(2);
/// c.try_send(1).unwrap();
/// assert_eq!((c.len(), c.cap()), (1, 2));
/// ```
#[track_caller]
pub fn chan<T>(cap: usize) -> Chan<T> {
    let core = Arc::new(ChanCore::new(cap));
    Chan::from_core(Some(core))
}

/// A bidirectional channel handle (Go's `chan T`). Clones are the same channel;
/// dropping handles never closes it.
pub struct Chan<T> {
    core: Option<Arc<ChanCore<T>>>,
}

/// The sending side only (Go's `chan<- T`).
pub struct Sender<T> {
    core: Option<Arc<ChanCore<T>>>,
}

/// The receiving side only (Go's `<-chan T`).
pub struct Receiver<T> {
    core: Option<Arc<ChanCore<T>>>,
}

/// Counts live handles per side on the channel's resource (what the detectors
/// use to prove that nobody is left to send or receive). When the last handle
/// able to send goes, receivers still parked can never be woken: the detector
/// is told.
fn count<T>(core: &Option<Arc<ChanCore<T>>>, send: bool, recv: bool, delta: isize) {
    let Some(c) = core else { return };
    let r = &c.resource;
    if recv {
        if delta > 0 {
            r.recv_handles.fetch_add(1, Ordering::Relaxed);
        } else {
            r.recv_handles.fetch_sub(1, Ordering::AcqRel);
        }
    }
    if send {
        if delta > 0 {
            r.send_handles.fetch_add(1, Ordering::Relaxed);
        } else if r.send_handles.fetch_sub(1, Ordering::AcqRel) == 1 && !c.is_closed() {
            let parked = c.parked_receivers();
            if !parked.is_empty() {
                crate::detect::watch::on_senders_gone(&parked);
            }
        }
    }
}

macro_rules! handle_impls {
    ($ty:ident, $send:expr, $recv:expr) => {
        impl<T> Clone for $ty<T> {
            fn clone(&self) -> Self {
                count(&self.core, $send, $recv, 1);
                $ty { core: self.core.clone() }
            }
        }
        impl<T> Drop for $ty<T> {
            fn drop(&mut self) {
                count(&self.core, $send, $recv, -1);
            }
        }
        impl<T> fmt::Debug for $ty<T> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                match &self.core {
                    Some(c) => write!(f, "{}(chan#{}, cap {})", stringify!($ty), c.resource.id, c.cap()),
                    None => write!(f, "{}(nil)", stringify!($ty)),
                }
            }
        }
        impl<T> $ty<T> {
            fn from_core(core: Option<Arc<ChanCore<T>>>) -> Self {
                count(&core, $send, $recv, 1);
                $ty { core }
            }
            fn core(&self) -> Option<&ChanCore<T>> {
                self.core.as_deref()
            }
            /// Values buffered now.
            pub fn len(&self) -> usize {
                self.core().map_or(0, |c| c.len())
            }
            /// True when nothing is buffered.
            pub fn is_empty(&self) -> bool {
                self.len() == 0
            }
            /// The buffer's capacity (0: unbuffered or nil).
            pub fn cap(&self) -> usize {
                self.core().map_or(0, |c| c.cap())
            }
            /// Whether `close` was called (false for nil).
            pub fn is_closed(&self) -> bool {
                self.core().is_some_and(|c| c.is_closed())
            }
            /// True for a nil channel.
            pub fn is_nil(&self) -> bool {
                self.core.is_none()
            }
            /// The channel's id, as dumps and findings name it (`chan#ID`); 0 for nil.
            pub fn id(&self) -> u64 {
                self.core().map_or(0, |c| c.resource.id.0)
            }
        }
    };
}

handle_impls!(Chan, true, true);
handle_impls!(Sender, true, false);
handle_impls!(Receiver, false, true);

impl<T> Chan<T> {
    /// The nil channel: every send and receive blocks forever, `close` fails.
    pub fn nil() -> Chan<T> {
        Chan { core: None }
    }

    /// A send-only handle to the same channel.
    pub fn sender(&self) -> Sender<T> {
        Sender::from_core(self.core.clone())
    }

    /// A receive-only handle to the same channel.
    pub fn receiver(&self) -> Receiver<T> {
        Receiver::from_core(self.core.clone())
    }

    pub(crate) fn resource(&self) -> Option<&Arc<crate::park::resource::Resource>> {
        self.core.as_ref().map(|c| &c.resource)
    }
}

/// The sending operations, shared by [`Chan`] and [`Sender`].
macro_rules! send_ops {
    ($ty:ident) => {
        impl<T> $ty<T> {
            /// Sends `v`, waiting for room (or, unbuffered, for a receiver).
            /// On a closed channel the value comes back in the error.
            #[track_caller]
            pub fn send(&self, v: T) -> SendFuture<'_, T> {
                SendFuture(Staged::new(self.core(), v, std::panic::Location::caller()))
            }
            /// Sends without waiting.
            pub fn try_send(&self, v: T) -> Result<(), TrySendError<T>> {
                match self.core() {
                    Some(c) => c.try_send(v),
                    None => Err(TrySendError::Full(v)),
                }
            }
            /// Sends `v`, blocking the OS thread.
            #[track_caller]
            pub fn send_blocking(&self, v: T) -> Result<(), SendError<T>> {
                Staged::<T, SendCase<'_, T>>::block(self.core(), v, std::panic::Location::caller())
            }
            /// Closes the channel: parked and future receives drain the buffer,
            /// then get `None`; parked and future sends fail with their value.
            pub fn close(&self) -> Result<(), CloseError> {
                self.core().ok_or(CloseError::Nil)?.close()
            }
        }
        impl<T> SendOperand for $ty<T> {
            type Item = T;
            fn send_case(&self, v: T) -> SendCase<'_, T> {
                SendCase::on(self.core(), v)
            }
        }
    };
}

/// The receiving operations, shared by [`Chan`] and [`Receiver`].
macro_rules! recv_ops {
    ($ty:ident) => {
        impl<T> $ty<T> {
            /// Receives a value, waiting for one; `None` once closed and drained.
            #[track_caller]
            pub fn recv(&self) -> RecvFuture<'_, T> {
                RecvFuture(Staged::new(self.core(), (), std::panic::Location::caller()))
            }
            /// Receives without waiting.
            pub fn try_recv(&self) -> Result<T, TryRecvError> {
                match self.core() {
                    Some(c) => c.try_recv(),
                    None => Err(TryRecvError::Empty),
                }
            }
            /// Receives, blocking the OS thread; `None` once closed and drained.
            #[track_caller]
            pub fn recv_blocking(&self) -> Option<T> {
                Staged::<T, RecvCase<'_, T>>::block(self.core(), (), std::panic::Location::caller())
            }
            /// A blocking iterator over received values, ending when the channel
            /// is closed and drained (Go's `for v := range c`).
            #[track_caller]
            pub fn iter(&self) -> Iter<'_, T> {
                Iter { case_site: std::panic::Location::caller(), core: self.core() }
            }
        }
        impl<T> RecvOperand for $ty<T> {
            type Item = T;
            fn recv_case(&self) -> RecvCase<'_, T> {
                RecvCase::on(self.core())
            }
        }
    };
}

send_ops!(Chan);
send_ops!(Sender);
recv_ops!(Chan);
recv_ops!(Receiver);

/// Anything `select!` can receive from: a [`Chan`], a [`Receiver`], or a reference to one.
pub trait RecvOperand {
    /// The element type.
    type Item;
    /// A receive case on this channel.
    #[doc(hidden)]
    fn recv_case(&self) -> RecvCase<'_, Self::Item>;
}

/// Anything `select!` can send on: a [`Chan`], a [`Sender`], or a reference to one.
pub trait SendOperand {
    /// The element type.
    type Item;
    /// A send case of `v` on this channel.
    #[doc(hidden)]
    fn send_case(&self, v: Self::Item) -> SendCase<'_, Self::Item>;
}

impl<R: RecvOperand + ?Sized> RecvOperand for &R {
    type Item = R::Item;
    fn recv_case(&self) -> RecvCase<'_, R::Item> {
        (**self).recv_case()
    }
}

impl<S: SendOperand + ?Sized> SendOperand for &S {
    type Item = S::Item;
    fn send_case(&self, v: S::Item) -> SendCase<'_, S::Item> {
        (**self).send_case(v)
    }
}

/// The future of [`Chan::send`]; cancelling it (dropping it) withdraws the send.
pub struct SendFuture<'a, T>(Staged<'a, T, SendCase<'a, T>>);

/// The future of [`Chan::recv`]; cancelling it never loses a value.
pub struct RecvFuture<'a, T>(Staged<'a, T, RecvCase<'a, T>>);

// Both futures are `!Unpin`: while parked, the channel's queue points into
// their case (`park::handoff`), which must stay in place until the future
// completes or is dropped (its drop takes the entry back).

impl<T> Future for SendFuture<'_, T> {
    type Output = Result<(), SendError<T>>;
    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        // SAFETY: structural pinning of the only field, never moved out.
        unsafe { self.map_unchecked_mut(|f| &mut f.0) }.poll(cx)
    }
}

impl<T> Future for RecvFuture<'_, T> {
    type Output = Option<T>;
    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        // SAFETY: structural pinning of the only field, never moved out.
        unsafe { self.map_unchecked_mut(|f| &mut f.0) }.poll(cx)
    }
}

/// Blocking iterator of [`Chan::iter`].
pub struct Iter<'a, T> {
    core: Option<&'a ChanCore<T>>,
    case_site: &'static std::panic::Location<'static>,
}

impl<T> Iterator for Iter<'_, T> {
    type Item = T;
    fn next(&mut self) -> Option<T> {
        Staged::<T, RecvCase<'_, T>>::block(self.core, (), self.case_site)
    }
}
