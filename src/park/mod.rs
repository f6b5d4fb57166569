//! Parking: how a blocked operation waits, how its counterpart wakes it, and
//! what the registry learns about the wait.
//!
//! - [`waiter`]: one [`Waiter`](waiter::Waiter) per blocked operation (one for a
//!   whole `select`), claimed exactly once by whoever completes it.
//! - [`handoff`]: the slot a parked channel operation keeps in itself, which
//!   its queue entry points at, guarded by the waiter's claim protocol.
//! - [`resource`]: the untyped identity of what is waited on (a channel, a lock).
//! - [`clock`]: the start time of a wait, read from the coarse clock.
//! - [`wait`]: the record of a wait against the current task, which the deadlock
//!   check and the dumps read.

pub(crate) mod clock;
pub(crate) mod handoff;
pub(crate) mod resource;
pub(crate) mod wait;
pub(crate) mod waiter;
