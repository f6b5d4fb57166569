//! # parkwatch
//!
//! Go's goroutine-leak and deadlock detection, brought to Rust.
//!
//! parkwatch is an instrumented runtime on tokio: tasks, Go-semantics
//! channels and `select!`, timers. Every blocked sender, receiver and waiter is
//! recorded — who waits, on what, since when, where in the source, with its
//! stack — so that parkwatch can do what Go's runtime does when everything is
//! stuck:
//!
//! ```text
//! fatal error: all tasks are asleep - deadlock!
//!
//! goroutine 1 [chan receive]:
//! app::main::{{closure}}(...)
//!     src/main.rs:4 +0x51
//! ```
//!
//! and dump every task in Go's formats (`dump::text` debug=1 and debug=2,
//! pprof, folded stacks, flamegraphs, JSON) at any time.
//!
//! ```
//! let rt = parkwatch::Runtime::new().unwrap();
//! let report = rt.block_on(async {
//!     let c = parkwatch::chan::<&str>(0);
//!     c.send("hello").await // unbuffered, and nobody receives: deadlock
//! }).unwrap_err();
//! assert!(report.to_string().starts_with("fatal error: all tasks are asleep - deadlock!"));
//! assert!(report.to_string().contains("[chan send]"));
//! ```
#![warn(missing_docs)]

extern crate self as parkwatch;

mod chan;
pub mod context;
#[cfg(feature = "server")]
#[doc(hidden)]
pub mod demo;
mod detect;
pub mod dump;
mod error;
mod park;
mod runtime;
mod select;
#[cfg(feature = "server")]
pub mod server;
mod shim;
mod snapshot;
mod stack;
pub mod sync;
pub mod task;
pub mod thread;
pub mod time;

pub use chan::{chan, Chan, Iter, Receiver, RecvFuture, RecvOperand, SendFuture, SendOperand, Sender};
pub use detect::analyze::AnalyzeOptions;
pub use detect::{Analysis, Certainty, EdgeKind, Finding, FindingKind, WaitForEdge, WaitForGraph, WaitForNode};
pub use error::{CloseError, SendError, TryRecvError, TrySendError};
pub use runtime::deadlock::GLOBAL_HEADER;
pub use runtime::{run, Builder, Deadlock, Runtime};
pub use select::{Select, SelectedCase};
#[cfg(feature = "server")]
pub use server::serve;
pub use snapshot::{
    snapshot, snapshot_with, Frame, Holder, Location, Queued, ResourceId, ResourceInfo, ResourceKind, Snapshot,
    SnapshotOptions, TaskId, TaskInfo, TaskKind, TaskState, WaitOn, WaitReason,
};
pub use task::{spawn, JoinError, JoinHandle};

/// `#[parkwatch::main]`: runs an `async fn main` as the main task of a parkwatch
/// runtime, with Go's global-deadlock exit (see [`run`]).
pub use parkwatch_macros::main;

/// Waits on several channel operations and runs the arm of the one that
/// completes; Go's `select`. Among ready cases one is chosen uniformly at
/// random; `default` runs when none is ready; nil channels are never ready.
///
/// ```
/// parkwatch::run(async {
///     let a = parkwatch::chan::<i32>(1);
///     let b = parkwatch::chan::<i32>(1);
///     a.try_send(1).unwrap();
///     let got = parkwatch::select! {
///         recv(a) -> v => v.unwrap(),
///         send(b, 2) -> res => { res.unwrap(); 0 }
///     };
///     assert!(got == 1 || got == 0);
///     let none = parkwatch::select! {
///         recv(parkwatch::Chan::<i32>::nil()) -> _v => "nil is never ready",
///         default => "default",
///     };
///     assert_eq!(none, "default");
/// });
/// ```
pub use parkwatch_macros::select;

/// [`select!`] for OS threads: the same syntax, blocking the thread.
///
/// ```
/// let c = parkwatch::chan::<u8>(1);
/// c.try_send(9).unwrap();
/// let v = parkwatch::select_blocking! {
///     recv(&c) -> v => v,
///     default => None,
/// };
/// assert_eq!(v, Some(9));
/// ```
pub use parkwatch_macros::select_blocking;

#[doc(hidden)]
pub mod __private {
    pub use crate::runtime::run;
    pub use crate::select::{
        park_forever, park_forever_blocking, select_async, select_blocking, Case, CaseList, ProjectCases, RecvCase,
        SendCase,
    };
    pub use crate::snapshot::WaitReason;

    /// Makes the receive case of `select!`'s `recv(op)`.
    pub fn recv_case<O: crate::RecvOperand + ?Sized>(op: &O) -> RecvCase<'_, O::Item> {
        op.recv_case()
    }

    /// Makes the send case of `select!`'s `send(op, v)`.
    pub fn send_case<O: crate::SendOperand + ?Sized>(op: &O, v: O::Item) -> SendCase<'_, O::Item> {
        op.send_case(v)
    }
}
