//! Stack capture at park time, resolved lazily, trimmed like Go's tracebacks.
//!
//! When a task parks on a parkwatch primitive, the primitive's `poll` runs
//! inside the task's nested `poll` calls, so the native call stack at that
//! moment *is* the task's async call chain. [`capture`] records only the
//! instruction pointers (at most [`MAX_FRAMES`]); symbols are resolved when a
//! dump asks for them ([`Stack::frames`]), once per [`Stack`] and once per
//! address process-wide.
//!
//! # Adaptive sampling per park site
//!
//! A capture costs a few µs (about 1.5 µs plus 0.2 µs per frame walked, on
//! x86-64 Linux); a park on a hot rendezvous about 200 ns. So the decision is
//! taken per park *site* (the `#[track_caller]` location of the user's `recv`,
//! `send`, `lock`, ...) in a thread-local map, without any lock. The constants
//! live in `stack/sample.rs`:
//!
//! - the first [`ALWAYS_CAPTURE_FIRST`](sample::ALWAYS_CAPTURE_FIRST) (8) parks
//!   at a site capture a fresh stack;
//! - after that a token bucket of [`BURST`](sample::BURST) (50) tokens, refilled
//!   at [`CAPTURES_PER_SECOND`](sample::CAPTURES_PER_SECOND) (50) per second,
//!   per site and per thread, allows fresh captures; a site parked at less
//!   than that rate therefore *always* gets a fresh stack (a leaked task that
//!   parks once is never sampled);
//! - when the bucket is empty the site's last captured stack is reused, and
//!   [`capture`] reports `sampled == true` (shown as `TaskInfo::stack_sampled`);
//!   the clock is then read only once every
//!   [`CLOCK_CHECK_EVERY`](sample::CLOCK_CHECK_EVERY) (16) parks, so right
//!   after a hot phase ends up to 15 more parks may reuse the last stack
//!   before the refill is noticed.
//!
//! A fresh capture identical to the site's previous one reuses the previous
//! [`Stack`] (with `sampled == false`), so a million tasks parked at one line
//! share one stack and its resolution.
//!
//! Setting `PARKWATCH_BACKTRACE=0` (read once) disables capture: [`capture`]
//! and [`spawner`] return `None` and dumps fall back to the park and
//! spawn locations. Under `cfg(loom)` and under Miri (`cfg(miri)`: its
//! unwinder cannot walk native frames) capture is always off.
//!
//! # Trimming
//!
//! As Go hides `runtime.*` and `runtime.goexit`, frames of parkwatch itself
//! (except `parkwatch::demo`), tokio, std/core/alloc, futures, dashmap,
//! parking_lot, backtrace and the C runtime are dropped, and the stack is cut
//! at the task boundary (`parkwatch::task::harness`, `parkwatch::thread::`), so
//! the first frame shown is the user's line. See [`filter`] for the exact rules.

mod filter;
mod resolve;
mod sample;

use std::cell::RefCell;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::panic::Location;
use std::path::Path;
use std::sync::{Arc, LazyLock, OnceLock};
use std::time::Instant;

use dashmap::DashMap;

use crate::snapshot::Frame;

/// Most instruction pointers recorded per capture (innermost first).
pub(crate) const MAX_FRAMES: usize = 64;

/// Environment variable that disables capture when set to `0`, `false` or `off`.
pub(crate) const ENV_VAR: &str = "PARKWATCH_BACKTRACE";

/// The call stack of a task at the moment it parked: instruction pointers,
/// resolved to [`Frame`]s on first use.
#[derive(Debug)]
pub(crate) struct Stack {
    ips: Box<[usize]>,
    frames: OnceLock<Arc<[Frame]>>,
}

impl Stack {
    /// A stack made of raw instruction pointers, innermost first.
    fn from_ips(ips: Box<[usize]>) -> Stack {
        Stack { ips, frames: OnceLock::new() }
    }

    /// Resolved, trimmed frames, innermost first; resolved once per `Stack`
    /// and per instruction pointer through a process-wide cache.
    pub(crate) fn frames(&self) -> Arc<[Frame]> {
        Arc::clone(self.frames.get_or_init(|| trimmed(&resolve::resolve_all(&self.ips))))
    }

    /// The captured instruction pointers, innermost first (untrimmed).
    #[allow(dead_code)] // for grouping stacks without resolving them
    pub(crate) fn ips(&self) -> &[usize] {
        &self.ips
    }
}

/// The frames of `all` that [`filter::kept`] keeps.
fn trimmed(all: &[Frame]) -> Arc<[Frame]> {
    let frames: Vec<(&str, Option<&str>)> = all.iter().map(|f| (&*f.function, f.file.as_deref())).collect();
    filter::kept(&frames).into_iter().map(|i| all[i].clone()).collect()
}

/// Whether capture is on (`PARKWATCH_BACKTRACE` not `0`/`false`/`off`), read once.
fn enabled() -> bool {
    static ENABLED: OnceLock<bool> = OnceLock::new();
    *ENABLED.get_or_init(|| enabled_by(std::env::var(ENV_VAR).ok().as_deref()))
}

/// Whether the value of [`ENV_VAR`] leaves capture on (unset: on).
fn enabled_by(value: Option<&str>) -> bool {
    let v = value.unwrap_or_default().trim().to_ascii_lowercase();
    !matches!(v.as_str(), "0" | "false" | "off")
}

/// Called when a task/thread parks on a parkwatch primitive, from inside the
/// primitive's poll. `site` is the `#[track_caller]` location of the user's
/// operation; `prev` is the stack of the task's previous wait, if it had one
/// (given up, or kept when it is the one to reuse).
///
/// Returns `None` when capture is disabled, otherwise the stack and `true`
/// when it was reused from an earlier capture at the same site (see the
/// module docs for the policy).
#[inline]
pub(crate) fn capture(site: &'static Location<'static>, prev: Option<Arc<Stack>>) -> Option<(Arc<Stack>, bool)> {
    if !capturing() {
        return None;
    }
    capture_at(site, prev)
}

/// Whether [`capture`] takes stacks at all in this process (never under
/// loom or Miri, nor with `PARKWATCH_BACKTRACE=0`).
#[inline]
pub(crate) fn capturing() -> bool {
    !cfg!(any(loom, miri)) && enabled()
}

/// [`capture`], with capture on.
#[inline(never)]
fn capture_at(site: &'static Location<'static>, prev: Option<Arc<Stack>>) -> Option<(Arc<Stack>, bool)> {
    let key = site_key(site);
    let reuse = SITES
        .try_with(|sites| {
            let mut sites = sites.try_borrow_mut().ok()?;
            let st = sites.entry(key).or_insert_with(SiteState::new);
            if st.policy.should_capture(Instant::now) {
                return None;
            }
            match (prev, &st.last) {
                // The task's previous wait already holds the site's last
                // stack (a task parking at one site again and again): keep
                // that reference rather than clone one and drop the other.
                (Some(prev), Some(last)) if Arc::ptr_eq(&prev, last) => Some(prev),
                (_, last) => last.clone(),
            }
        })
        .ok()
        .flatten();
    if let Some(last) = reuse {
        return Some((last, true));
    }
    let ips = capture_ips();
    Some((remember(key, ips), false))
}

/// Stores a fresh capture as the site's last stack; an identical previous
/// capture is shared instead.
fn remember(key: usize, ips: Box<[usize]>) -> Arc<Stack> {
    let remembered = SITES.try_with(|sites| {
        let mut sites = sites.try_borrow_mut().ok()?;
        let st = sites.entry(key).or_insert_with(SiteState::new);
        match &st.last {
            Some(last) if last.ips == ips => Some(Arc::clone(last)),
            _ => {
                let stack = Arc::new(Stack::from_ips(ips.clone()));
                st.last = Some(Arc::clone(&stack));
                Some(stack)
            }
        }
    });
    match remembered {
        Ok(Some(stack)) => stack,
        // Thread-local gone (thread exiting) or busy: do not cache.
        _ => Arc::new(Stack::from_ips(ips)),
    }
}

/// The instruction pointers of the current call stack, innermost first, at
/// most [`MAX_FRAMES`], without symbol resolution.
#[inline(never)]
fn capture_ips() -> Box<[usize]> {
    let mut buf = [0usize; MAX_FRAMES];
    let mut n = 0;
    let mut push = |frame: &backtrace::Frame| {
        let ip = frame.ip() as usize;
        if ip == 0 {
            return false;
        }
        buf[n] = ip;
        n += 1;
        n < MAX_FRAMES
    };
    #[cfg(not(windows))]
    // SAFETY: the unsynchronized variant only skips the `backtrace` crate's
    // global lock. That lock serializes dbghelp (Windows only, hence the cfg)
    // and the crate's symbolization state, which tracing does not touch: on
    // unix tracing is `_Unwind_Backtrace`, which is thread-safe (the unwinder
    // takes its own locks). Our callback never calls back into `backtrace`, so
    // there is no reentrancy. Taking the lock would serialize every park of
    // every worker, and stall parks behind a dump resolving symbols (resolution
    // holds the same lock while parsing debug info, for milliseconds).
    unsafe {
        backtrace::trace_unsynchronized(&mut push)
    };
    #[cfg(windows)]
    backtrace::trace(&mut push);
    buf[..n].into()
}

/// Loads the debug info the symbolizer needs, on a background thread, so the
/// first dump (often a deadlock report) does not pay for it. Once per process.
pub(crate) fn prewarm() {
    static STARTED: OnceLock<()> = OnceLock::new();
    if cfg!(any(loom, miri)) || !enabled() {
        return;
    }
    STARTED.get_or_init(|| {
        let _ = std::thread::Builder::new().name("parkwatch-symbols".into()).spawn(|| {
            let here = prewarm as *const () as usize;
            let _ = resolve::resolve_ip(here);
        });
    });
}

/// The spawner of a spawn site: its call stack, captured once per site and
/// cached forever (thread-local map first, then process-wide), resolved only
/// when [`Spawner::function`] is first called. `None` when capture is disabled.
///
/// The first call for a site costs one capture (a few µs, no symbol
/// resolution); every later call is a thread-local map lookup.
pub(crate) fn spawner(site: &'static Location<'static>) -> Option<Arc<Spawner>> {
    if cfg!(any(loom, miri)) || !enabled() {
        return None;
    }
    let key = site_key(site);
    if let Ok(Some(hit)) = SPAWNERS_LOCAL.try_with(|m| m.borrow().get(&key).cloned()) {
        return Some(hit);
    }
    let found = match SPAWNERS.get(&key) {
        Some(hit) => Arc::clone(hit.value()),
        None => {
            let fresh = Arc::new(Spawner { site, ips: capture_ips(), function: OnceLock::new() });
            Arc::clone(SPAWNERS.entry(key).or_insert(fresh).value())
        }
    };
    let _ = SPAWNERS_LOCAL.try_with(|m| {
        if let Ok(mut m) = m.try_borrow_mut() {
            m.insert(key, Arc::clone(&found));
        }
    });
    Some(found)
}

/// The call stack at a spawn site, for Go's "created by FUNC".
#[derive(Debug)]
pub(crate) struct Spawner {
    site: &'static Location<'static>,
    ips: Box<[usize]>,
    function: OnceLock<Option<Arc<str>>>,
}

impl Spawner {
    /// Name of the function containing the spawn site, resolved on first call.
    pub(crate) fn function(&self) -> Option<Arc<str>> {
        self.function.get_or_init(|| find_spawner(self.site, &resolve::resolve_all(&self.ips))).clone()
    }
}

/// The function of the frame at `site` (file and line match, else the first
/// frame in `site`'s file), else the first user frame.
fn find_spawner(site: &Location<'_>, all: &[Frame]) -> Option<Arc<str>> {
    let in_file = |f: &&Frame| f.file.as_deref().is_some_and(|file| same_file(file, site.file()));
    let at_site = all.iter().filter(in_file).find(|f| f.line == Some(site.line())).or_else(|| all.iter().find(in_file));
    match at_site {
        Some(f) => Some(Arc::clone(&f.function)),
        None => trimmed(all).first().map(|f| Arc::clone(&f.function)),
    }
}

/// Whether the debug-info path `file` names the `#[track_caller]` path `site_file`
/// (usually relative to the crate root).
fn same_file(file: &str, site_file: &str) -> bool {
    Path::new(file).ends_with(site_file)
}

/// The identity of a `#[track_caller]` site: its address (locations are statics).
fn site_key(site: &'static Location<'static>) -> usize {
    site as *const Location<'static> as usize
}

/// Per-thread state of one park site.
struct SiteState {
    policy: sample::SitePolicy,
    last: Option<Arc<Stack>>,
}

impl SiteState {
    fn new() -> SiteState {
        SiteState { policy: sample::SitePolicy::new(), last: None }
    }
}

/// Hasher for pointer-sized keys: a multiply-rotate, enough for static addresses.
#[derive(Default)]
struct PtrHasher(u64);

impl Hasher for PtrHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(u64::from(b));
        }
    }

    fn write_usize(&mut self, n: usize) {
        self.write_u64(n as u64);
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0.rotate_left(5) ^ n).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

type PtrMap<V> = HashMap<usize, V, BuildHasherDefault<PtrHasher>>;

thread_local! {
    /// Park sites seen by this thread.
    static SITES: RefCell<PtrMap<SiteState>> = RefCell::new(PtrMap::default());
    /// Spawn sites already captured, as seen by this thread.
    static SPAWNERS_LOCAL: RefCell<PtrMap<Arc<Spawner>>> = RefCell::new(PtrMap::default());
}

/// Spawn site → its spawner, process-wide.
static SPAWNERS: LazyLock<DashMap<usize, Arc<Spawner>>> = LazyLock::new(DashMap::new);

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn park_here() -> (Arc<Stack>, bool) {
        capture(Location::caller(), None).expect("capture is on in tests")
    }

    #[track_caller]
    fn spawn_here() -> Option<Arc<str>> {
        spawner(Location::caller())?.function()
    }

    #[test]
    fn env_var_values() {
        assert!(enabled_by(None));
        assert!(enabled_by(Some("1")));
        assert!(enabled_by(Some("full")));
        for off in ["0", "false", "OFF", " 0 "] {
            assert!(!enabled_by(Some(off)), "{off}");
        }
    }

    #[test]
    fn hot_site_captures_first_then_reuses_the_same_stack() {
        let runs: Vec<_> = (0..300).map(|_| park_here()).collect();
        let fresh = (sample::ALWAYS_CAPTURE_FIRST + sample::BURST) as usize;
        assert!(runs[..fresh].iter().all(|(_, sampled)| !sampled), "first parks are fresh");
        let sampled = runs[fresh..].iter().filter(|(_, s)| *s).count();
        assert!(sampled >= 200, "hot site sampled only {sampled} times");
        // Identical fresh captures are shared, sampled ones reuse the last capture.
        assert!(runs.iter().all(|(st, _)| Arc::ptr_eq(st, &runs[0].0)));
        assert!(runs[0].0.ips().len() <= MAX_FRAMES && !runs[0].0.ips().is_empty());
    }

    /// The previous wait's stack handed in is the one returned when it is
    /// the site's last stack, and never when the site's last stack differs.
    #[test]
    fn reuse_returns_the_sites_stack_whatever_the_previous_wait_held() {
        let (elsewhere, _) = park_here();
        let site = Location::caller();
        let mut prev: Option<Arc<Stack>> = None;
        let mut reused = 0;
        // The first parks of a site are fresh captures; then reuse sets in
        // (bounded: a slow machine may earn a token back now and then).
        for _ in 0..1000 {
            let (st, sampled) = capture(site, prev.take()).expect("capture is on in tests");
            if sampled {
                let (other, _) = capture(site, Some(elsewhere.clone())).expect("capture is on in tests");
                assert!(Arc::ptr_eq(&other, &st), "a foreign previous stack is not returned");
                assert!(!Arc::ptr_eq(&other, &elsewhere));
                reused += 1;
            }
            prev = Some(st);
            if reused == 10 {
                break;
            }
        }
        assert_eq!(reused, 10, "the hot site's stack was reused");
    }

    #[test]
    fn distinct_sites_are_independent() {
        let (a, sa) = park_here();
        let (b, sb) = park_here();
        assert!(!sa && !sb);
        assert!(!Arc::ptr_eq(&a, &b), "different call lines give different stacks");
        assert_ne!(a.ips(), b.ips());
    }

    #[test]
    fn resolution_finds_this_function_and_trimming_hides_it() {
        let (st, _) = park_here();
        let raw = resolve::resolve_all(st.ips());
        let me = raw
            .iter()
            .find(|f| f.function.ends_with("resolution_finds_this_function_and_trimming_hides_it"))
            .expect("test function among raw frames");
        assert!(me.file.as_deref().is_some_and(|f| f.ends_with("mod.rs")), "{me:?}");
        assert!(me.line.is_some() && me.pc != 0);
        if cfg!(all(target_os = "linux", target_env = "gnu")) {
            assert!(me.entry != 0 && me.entry < me.pc && me.pc - me.entry < 1 << 20, "{me:?}");
        }
        // Everything of parkwatch, std and core is trimmed; what is left is user-classified.
        let frames = st.frames();
        assert!(frames.iter().all(|f| filter::classify_frame(&f.function, f.file.as_deref()) == filter::Class::User));
        assert!(!frames.iter().any(|f| f.function.starts_with("parkwatch::")));
        assert!(Arc::ptr_eq(&frames, &st.frames()), "resolved once per stack");
    }

    #[test]
    fn spawner_is_the_function_containing_the_site_and_is_cached() {
        let first = spawn_here();
        // Release builds with line tables only name inlined functions without their path.
        let name = first.clone().expect("resolved");
        assert!(name.ends_with("spawner_is_the_function_containing_the_site_and_is_cached"), "{name}");
        assert!(!name.contains("{{closure}}") && !name.contains("spawn_here"), "{name}");
        let mut same_site = Vec::new();
        for _ in 0..3 {
            same_site.push(spawn_here().expect("resolved"));
        }
        assert_eq!(same_site[0], first.expect("resolved"));
        assert!(same_site.iter().all(|n| Arc::ptr_eq(n, &same_site[0])), "later lookups hit the cache");
    }

    #[track_caller]
    fn spawner_here() -> Arc<Spawner> {
        spawner(Location::caller()).expect("capture is on in tests")
    }

    #[test]
    fn spawner_is_captured_once_per_site_and_resolved_lazily() {
        let mut same_site = Vec::new();
        for _ in 0..3 {
            same_site.push(spawner_here());
        }
        assert!(same_site.iter().all(|s| Arc::ptr_eq(s, &same_site[0])));
        assert!(same_site[0].function.get().is_none(), "not resolved before asked");
        let name = same_site[0].function().expect("resolved");
        assert!(name.ends_with("spawner_is_captured_once_per_site_and_resolved_lazily"), "{name}");
        assert!(same_site[0].function.get().is_some());
        let other = spawner_here();
        assert!(!Arc::ptr_eq(&other, &same_site[0]), "another line is another site");
    }

    #[test]
    fn spawner_falls_back_to_the_first_user_frame() {
        let f = |name: &str, file: &str, line| Frame {
            function: name.into(),
            file: Some(file.into()),
            line: Some(line),
            pc: 1,
            entry: 0,
        };
        let all = [
            f("parkwatch::spawn", "/x/parkwatch/src/task.rs", 10),
            f("app::start::{{closure}}", "/x/app/src/lib.rs", 40),
            f("app::main", "/x/app/src/main.rs", 3),
        ];
        let site = Location::caller();
        assert_eq!(find_spawner(site, &all).as_deref(), Some("app::start::{{closure}}"));
        assert!(same_file("/x/app/src/main.rs", "src/main.rs"));
        assert!(!same_file("/x/app/src/domain.rs", "main.rs"));
    }
}
