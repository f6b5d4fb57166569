//! Timers: [`sleep`], and Go's `time.After` / `time.Tick` channels.
//!
//! A sleeping task, or one waiting on a timer channel that has yet to fire,
//! is never part of a deadlock: the timer will wake it. Timers are not tasks;
//! they never show up as leaked tasks.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use crate::chan::{chan, Receiver};
use crate::park::wait::{self, Note};
use crate::snapshot::WaitReason;

/// Waits for `d` (Go's `time.Sleep`); the task shows as parked in "sleep".
///
/// ```
/// parkwatch::run(async {
///     let t = std::time::Instant::now();
///     parkwatch::time::sleep(std::time::Duration::from_millis(5)).await;
///     assert!(t.elapsed() >= std::time::Duration::from_millis(5));
/// });
/// ```
#[track_caller]
pub fn sleep(d: Duration) -> Sleep {
    Sleep { inner: Box::pin(tokio::time::sleep(d)), site: std::panic::Location::caller(), key: 0 }
}

/// The future of [`sleep`].
pub struct Sleep {
    inner: Pin<Box<tokio::time::Sleep>>,
    site: &'static std::panic::Location<'static>,
    /// This sleep's wait key, taken when it first parks.
    key: u64,
}

impl Future for Sleep {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let waker = crate::task::waker::internal_clone(cx.waker());
        let mut timer_cx = Context::from_waker(&waker);
        if self.inner.as_mut().poll(&mut timer_cx).is_ready() {
            return Poll::Ready(());
        }
        if self.key == 0 {
            self.key = crate::park::waiter::next_key();
        }
        let key = self.key;
        wait::note(Note { key, reason: WaitReason::Sleep, site: self.site, resources: &[], timer_wakeable: true });
        Poll::Pending
    }
}

/// A channel that receives the time once, after `d` (Go's `time.After`).
///
/// ```
/// parkwatch::run(async {
///     let t = parkwatch::time::after(std::time::Duration::from_millis(1));
///     assert!(t.recv().await.is_some());
/// });
/// ```
#[track_caller]
pub fn after(d: Duration) -> Receiver<Instant> {
    let c = chan(1);
    let rx = c.receiver();
    arm(&c, true);
    start_timer(async move {
        tokio::time::sleep(d).await;
        let _ = c.try_send(Instant::now());
        arm(&c, false);
    });
    rx
}

/// A channel that receives the time every `d`, the first time after one
/// period (Go's `time.Tick`). Ticks a slow receiver misses are dropped, as in
/// Go. The ticker stops once every receiver is gone.
#[track_caller]
pub fn tick(d: Duration) -> Receiver<Instant> {
    let c = chan(1);
    let rx = c.receiver();
    arm(&c, true);
    start_timer(async move {
        let mut interval = tokio::time::interval_at(tokio::time::Instant::now() + d, d);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            interval.tick().await;
            let listeners = c.resource().map_or(0, |r| r.recv_handles.load(Ordering::Acquire));
            // `c` itself counts as one receiving handle.
            if listeners <= 1 {
                break;
            }
            let _ = c.try_send(Instant::now());
        }
        arm(&c, false);
    });
    rx
}

fn arm<T>(c: &crate::Chan<T>, armed: bool) {
    if let Some(r) = c.resource() {
        r.timer_armed.store(armed, Ordering::Release);
    }
}

/// Runs a timer as a plain tokio task (not a parkwatch task: timers are not
/// tasks), or on a small thread when called outside any runtime.
pub(crate) fn start_timer(fut: impl Future<Output = ()> + Send + 'static) {
    match tokio::runtime::Handle::try_current() {
        Ok(h) => {
            h.spawn(fut);
        }
        Err(_) => {
            std::thread::Builder::new()
                .name("parkwatch-timer".into())
                .spawn(move || {
                    let rt = tokio::runtime::Builder::new_current_thread().enable_time().build();
                    if let Ok(rt) = rt {
                        rt.block_on(fut);
                    }
                })
                .expect("parkwatch: cannot start a timer thread");
        }
    }
}
