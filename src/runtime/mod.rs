//! Running programs: [`run`], [`Runtime`], [`Builder`].
//!
//! A runtime is a tokio multi-thread runtime plus a *group*: the tasks spawned
//! on it, with the live counter the global-deadlock check watches
//! ([`deadlock`]).

pub(crate) mod deadlock;

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

pub use self::deadlock::Deadlock;
use crate::snapshot::TaskKind;
use crate::task::harness::Instrumented;
use crate::task::record::{Group, TaskRecord};
use crate::task::{self, registry};

static NEXT_RUNTIME: AtomicU64 = AtomicU64::new(1);

/// Runs `fut` as the main task of a fresh runtime, Go-style.
///
/// On a global deadlock it prints `fatal error: all tasks are asleep -
/// deadlock!`, a blank line and every task's stack (the debug=2 dump) to
/// stderr, and exits the process with status 2, as Go does. A *definite*
/// partial deadlock of the main task (a lock cycle, an orphaned wait) ends it
/// the same way, with the finding; a merely *probable* one does not (a
/// service is not killed on evidence: use [`Runtime::block_on`] or the probe
/// for that).
///
/// ```
/// let v = parkwatch::run(async { 7 });
/// assert_eq!(v, 7);
/// ```
#[track_caller]
pub fn run<F: Future>(fut: F) -> F::Output {
    let rt = Runtime::new().expect("parkwatch: cannot start the runtime");
    rt.group.probable_is_fatal.store(false, std::sync::atomic::Ordering::Relaxed);
    match rt.block_on_at(fut, std::panic::Location::caller()) {
        Ok(v) => v,
        Err(deadlock) => {
            eprint!("{deadlock}");
            std::process::exit(2)
        }
    }
}

/// Configures a [`Runtime`].
#[derive(Debug, Clone)]
pub struct Builder {
    worker_threads: Option<usize>,
    leak_after: Duration,
    stuck_grace: Duration,
    serve: Option<std::net::SocketAddr>,
}

impl Default for Builder {
    fn default() -> Self {
        Builder {
            worker_threads: None,
            leak_after: Duration::from_secs(30),
            stuck_grace: Duration::from_secs(1),
            serve: None,
        }
    }
}

impl Builder {
    /// Default settings: one worker per core, leaks suspected after 30 s.
    pub fn new() -> Builder {
        Builder::default()
    }
    /// The number of worker threads.
    pub fn worker_threads(mut self, n: usize) -> Builder {
        self.worker_threads = Some(n.max(1));
        self
    }
    /// How long a task must stay parked to be a leak suspect.
    pub fn leak_after(mut self, d: Duration) -> Builder {
        self.leak_after = d;
        self
    }
    /// How long the main task must sit in a stuck set (parked, nothing
    /// happening on what it waits for, every known waker stuck or gone) before
    /// `block_on` gives up on it with a probable deadlock. Default 1 s.
    pub fn stuck_grace(mut self, d: Duration) -> Builder {
        self.stuck_grace = d;
        self
    }
    /// Serve the debug endpoints ([`crate::server`]) on `addr` while the
    /// runtime lives, on a thread and tokio runtime of their own, with this
    /// builder's `leak_after` and `stuck_grace` and the token from
    /// `PARKWATCH_TOKEN` if set. Port 0 picks a free port
    /// ([`Runtime::server_addr`] tells which). Without the `server` feature,
    /// [`build`](Builder::build) fails.
    pub fn serve(mut self, addr: std::net::SocketAddr) -> Builder {
        self.serve = Some(addr);
        self
    }

    /// Builds the runtime.
    pub fn build(self) -> std::io::Result<Runtime> {
        let group = Group::new(NEXT_RUNTIME.fetch_add(1, Ordering::Relaxed), false, self.leak_after, self.stuck_grace);
        crate::detect::watch::watch(&group);
        crate::stack::prewarm();
        let mut tokio = tokio::runtime::Builder::new_multi_thread();
        tokio.enable_all().thread_name("parkwatch-worker");
        if let Some(n) = self.worker_threads {
            tokio.worker_threads(n);
        }
        // tokio has no thread hooks under loom (only the channel core is modelled).
        #[cfg(not(loom))]
        {
            let g = group.clone();
            tokio.on_thread_start(move || task::set_thread_runtime(g.clone()));
        }
        let rt = tokio.build()?;
        #[cfg(feature = "server")]
        let server = match self.serve {
            Some(addr) => Some(
                crate::server::ServerBuilder::new()
                    .addr(addr)
                    .leak_after(self.leak_after)
                    .grace(self.stuck_grace)
                    .start()?,
            ),
            None => None,
        };
        #[cfg(not(feature = "server"))]
        if self.serve.is_some() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::Unsupported,
                "parkwatch: Builder::serve needs the `server` feature",
            ));
        }
        Ok(Runtime {
            rt: Some(rt),
            group,
            #[cfg(feature = "server")]
            server,
        })
    }
}

/// A parkwatch runtime: tokio workers plus deadlock detection for its tasks.
pub struct Runtime {
    rt: Option<tokio::runtime::Runtime>,
    group: Arc<Group>,
    /// The debug server of [`Builder::serve`], stopped when the runtime drops.
    #[cfg(feature = "server")]
    server: Option<crate::server::Server>,
}

impl Runtime {
    /// A runtime with default settings.
    pub fn new() -> std::io::Result<Runtime> {
        Builder::new().build()
    }

    /// A [`Builder`].
    pub fn builder() -> Builder {
        Builder::new()
    }

    /// Runs `fut` as the main task until it completes, or until it deadlocks:
    /// a global deadlock, or a definite or probable partial deadlock that
    /// involves the main task (other tasks may still run), returned as `Err`
    /// instead of exiting the process.
    ///
    /// ```
    /// let rt = parkwatch::Runtime::new().unwrap();
    /// let err = rt.block_on(async {
    ///     let c = parkwatch::chan::<i32>(0);
    ///     c.recv().await // nobody will ever send
    /// }).unwrap_err();
    /// assert!(err.is_global());
    /// assert!(err.to_string().contains("[chan receive]"));
    /// ```
    #[track_caller]
    pub fn block_on<F: Future>(&self, fut: F) -> Result<F::Output, Deadlock> {
        self.block_on_at(fut, std::panic::Location::caller())
    }

    fn block_on_at<F: Future>(
        &self,
        fut: F,
        site: &'static std::panic::Location<'static>,
    ) -> Result<F::Output, Deadlock> {
        let rt = self.rt.as_ref().expect("runtime is live until dropped");
        let _runtime = task::enter_runtime(self.group.clone());
        // The main task has no creator (Go prints no "created by" for goroutine 1).
        let record = TaskRecord::new(None, TaskKind::Async, site, None, self.group.clone(), None);
        self.group.set_main(record.id);
        self.group.verdict.clear();
        registry::register(record.clone());
        let main = Instrumented::new(fut, record);
        self.group.start_detecting();
        let group = self.group.clone();
        let out = rt.block_on(async move {
            tokio::select! {
                biased;
                v = main => Ok(v),
                d = group.verdict.wait() => Err(d),
            }
        });
        self.group.stop_detecting();
        out
    }

    /// The id dumps give this runtime's tasks ([`TaskInfo::runtime`](crate::TaskInfo)).
    pub fn id(&self) -> u64 {
        self.group.id
    }

    /// The address the debug server of [`Builder::serve`] listens on.
    #[cfg(feature = "server")]
    pub fn server_addr(&self) -> Option<std::net::SocketAddr> {
        self.server.as_ref().map(crate::server::Server::local_addr)
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        #[cfg(feature = "server")]
        if let Some(server) = self.server.take() {
            server.shutdown();
        }
        self.group.stop_detecting();
        // Dropping tokio's runtime drops every task still parked, which takes
        // them out of the registry before this returns.
        drop(self.rt.take());
    }
}
