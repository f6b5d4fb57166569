//! One snapshot for every request waiting for one.
//!
//! A snapshot of a large registry costs far more than most answers rendered
//! from it (at 100,000 tasks: ~110 ms to take, ~50 ms to free, ~70 ms to
//! analyse, against a few ms to render a page of tasks), so requests do not
//! take one each. A request queues its render; one thread of tokio's blocking
//! pool takes a snapshot for every request queued so far, renders their
//! answers from it ([`RENDER_THREADS`] at a time), frees it, and starts over
//! while requests keep coming. So:
//!
//! - every answer comes from a snapshot begun after its request arrived (a
//!   request arriving while one is taken or rendered waits for the next);
//! - at most one snapshot is alive, and at most [`RENDER_THREADS`] answers are
//!   being rendered, whatever the number of clients: memory and CPU stay
//!   bounded, and the latency grows with the queue instead of every request
//!   paying for a snapshot of its own (which at 100 clients meant minutes);
//! - identical requests (same endpoint, same query string) waiting for the
//!   same snapshot share one render;
//! - a snapshot is freed on the blocking pool, never on the thread that
//!   serves the connections.

use std::collections::HashMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Mutex, PoisonError};

use axum::body::Bytes;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use tokio::sync::oneshot;

use super::view::Taken;
use crate::detect::analyze::AnalyzeOptions;

/// How many answers are rendered from a snapshot at the same time, at most.
pub(crate) const RENDER_THREADS: usize = 2;

/// An answer rendered from a snapshot: cheap to clone (the body is shared).
#[derive(Clone, Debug)]
pub(crate) struct Answer {
    status: StatusCode,
    content_type: &'static str,
    attachment: Option<&'static str>,
    body: Bytes,
}

impl Answer {
    /// `200 OK` with this content type.
    pub(crate) fn ok(content_type: &'static str, body: impl Into<Bytes>) -> Answer {
        Answer { status: StatusCode::OK, content_type, attachment: None, body: body.into() }
    }

    /// A plain-text answer.
    pub(crate) fn plain(status: StatusCode, msg: impl Into<String>) -> Answer {
        Answer { status, content_type: super::handlers::TEXT, attachment: None, body: msg.into().into() }
    }

    /// Offered as a download named `name`.
    pub(crate) fn attachment(mut self, name: &'static str) -> Answer {
        self.attachment = Some(name);
        self
    }
}

impl IntoResponse for Answer {
    fn into_response(self) -> Response {
        let mut r = (self.status, [(header::CONTENT_TYPE, self.content_type)], self.body).into_response();
        if let Some(v) =
            self.attachment.and_then(|n| HeaderValue::from_str(&format!("attachment; filename=\"{n}\"")).ok())
        {
            r.headers_mut().insert(header::CONTENT_DISPOSITION, v);
        }
        r
    }
}

/// What a request wants done with the snapshot.
pub(crate) type Render = Box<dyn FnOnce(&Taken) -> Answer + Send>;

struct Job {
    /// Requests with the same key get the same answer from the same snapshot.
    key: String,
    render: Render,
    reply: oneshot::Sender<Answer>,
}

#[derive(Default)]
struct Queue {
    /// Whether a thread is taking or rendering a snapshot.
    busy: bool,
    /// The requests for the next snapshot.
    waiting: Vec<Job>,
}

/// The snapshots the server shares between requests.
pub(crate) struct Snapshots {
    queue: Mutex<Queue>,
    analyze: AnalyzeOptions,
}

impl Snapshots {
    pub(crate) fn new(analyze: AnalyzeOptions) -> Snapshots {
        Snapshots { queue: Mutex::new(Queue::default()), analyze }
    }

    fn queue(&self) -> std::sync::MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The answer `render` makes from a snapshot taken after this call;
    /// `key` names the endpoint and its query (the same key, the same answer).
    pub(crate) async fn render(self: &Arc<Self>, key: String, render: Render) -> Answer {
        let (reply, answer) = oneshot::channel();
        let start = {
            let mut q = self.queue();
            q.waiting.push(Job { key, render, reply });
            !std::mem::replace(&mut q.busy, true)
        };
        // `busy` admits one `serve_queue` at a time: one snapshot alive.
        const _: () = assert!(super::MAX_CONCURRENT_SNAPSHOTS == 1);
        if start {
            let me = self.clone();
            tokio::task::spawn_blocking(move || me.serve_queue());
        }
        match answer.await {
            Ok(a) => a,
            Err(_) => Answer::plain(StatusCode::INTERNAL_SERVER_ERROR, "500 internal server error: no snapshot\n"),
        }
    }

    /// Takes snapshots and renders the answers queued, until none are.
    fn serve_queue(&self) {
        // Should anything below unwind, the requests still queued get an
        // error (their senders drop) and the next request starts afresh.
        struct Reset<'a>(&'a Snapshots);
        impl Drop for Reset<'_> {
            fn drop(&mut self) {
                let mut q = self.0.queue();
                q.busy = false;
                q.waiting.clear();
            }
        }
        let reset = Reset(self);
        loop {
            let jobs = {
                let mut q = self.queue();
                let mut jobs = std::mem::take(&mut q.waiting);
                // Clients that went away need no answer.
                jobs.retain(|j| !j.reply.is_closed());
                if jobs.is_empty() {
                    q.busy = false;
                    std::mem::forget(reset);
                    return;
                }
                jobs
            };
            match catch_unwind(AssertUnwindSafe(|| Taken::take(&self.analyze))) {
                Ok(taken) => {
                    let large = taken.snap.tasks().len() >= TRIM_AFTER;
                    render_all(&taken, jobs);
                    drop(taken);
                    if large {
                        release_free_memory();
                    }
                }
                Err(p) => {
                    let a = Answer::plain(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        format!("500 internal server error: snapshot: {}\n", panic_message(&*p)),
                    );
                    for j in jobs {
                        let _ = j.reply.send(a.clone());
                    }
                }
            }
        }
    }
}

/// Snapshots of at least this many tasks are followed by [`release_free_memory`].
const TRIM_AFTER: usize = 10_000;

/// Gives the memory freed with a snapshot back to the system.
///
/// A snapshot of a large registry and the answers rendered from it are
/// hundreds of MB, mostly small allocations, freed at once. glibc's malloc
/// keeps freed memory in the arena it came from, and gives back only the top
/// of each heap; with answers still being sent (or other allocations) above
/// the freed ones, and an arena per thread (up to 8 per core), the process
/// keeps every arena's high-water mark: under load (100 clients, 100,000
/// tasks, tests/server_load.rs) RSS grew by 1 GB in a minute while the heap
/// in use stayed flat. `malloc_trim(0)` returns the free pages of every
/// arena; after a snapshot of 10,000 tasks or more (which took longer than
/// the trim), it keeps RSS near the heap in use.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn release_free_memory() {
    extern "C" {
        fn malloc_trim(pad: usize) -> std::ffi::c_int;
    }
    // SAFETY: glibc's `malloc_trim` takes no pointer: it walks malloc's own
    // arenas under their locks and returns free pages to the kernel. With
    // another global allocator it trims glibc's (unused) arenas: harmless.
    unsafe {
        malloc_trim(0);
    }
}

/// Other allocators and libcs give memory back by themselves (or not at all).
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn release_free_memory() {}

/// The jobs with one key: one render, one answer for every reply.
struct Group {
    render: Render,
    replies: Vec<oneshot::Sender<Answer>>,
}

/// Renders every job from `taken`, [`RENDER_THREADS`] at a time (this thread
/// and helpers), and returns when all are done.
fn render_all(taken: &Taken, jobs: Vec<Job>) {
    let mut groups: Vec<Group> = Vec::new();
    let mut by_key: HashMap<String, usize> = HashMap::new();
    for j in jobs {
        match by_key.get(&j.key) {
            Some(&i) => groups[i].replies.push(j.reply),
            None => {
                by_key.insert(j.key, groups.len());
                groups.push(Group { render: j.render, replies: vec![j.reply] });
            }
        }
    }
    let threads = RENDER_THREADS.min(groups.len());
    groups.reverse(); // popped in the order they came
    let groups = Mutex::new(groups);
    let work = || loop {
        let Some(g) = groups.lock().unwrap_or_else(PoisonError::into_inner).pop() else { return };
        if g.replies.iter().all(|r| r.is_closed()) {
            continue;
        }
        let answer = catch_unwind(AssertUnwindSafe(|| (g.render)(taken))).unwrap_or_else(|p| {
            Answer::plain(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("500 internal server error: {}\n", panic_message(&*p)),
            )
        });
        for r in g.replies {
            let _ = r.send(answer.clone());
        }
    };
    std::thread::scope(|s| {
        for _ in 1..threads {
            // Without a helper thread, this one renders them all.
            let _ = std::thread::Builder::new().name("parkwatch-render".into()).spawn_scoped(s, work);
        }
        work();
    });
}

fn panic_message(p: &(dyn std::any::Any + Send)) -> String {
    p.downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "panic".into())
}
