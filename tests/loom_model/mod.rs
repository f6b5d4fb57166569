//! The runner shared by the loom model tests (`loom_chan.rs`, `loom_sync.rs`).

/// Runs `f` under loom with `bound` preemptions, unless `LOOM_MAX_PREEMPTIONS`
/// says otherwise, and reports how many executions it explored.
pub fn model<F>(bound: usize, f: F)
where
    F: Fn() + Sync + Send + 'static,
{
    if std::env::var_os("LOOM_LOG").is_some() {
        // Debugging a failure: `loom::model` installs the subscriber that
        // prints each execution's trace (with LOOM_LOCATION=1, the source
        // locations); it takes its bound from the environment only. Run one
        // test at a time (`--exact NAME`) to keep the trace readable.
        if std::env::var_os("LOOM_MAX_PREEMPTIONS").is_none() {
            std::env::set_var("LOOM_MAX_PREEMPTIONS", bound.to_string());
        }
        loom::model(f);
        return;
    }
    let mut b = loom::model::Builder::new();
    if b.preemption_bound.is_none() {
        b.preemption_bound = Some(bound);
    }
    // Counted outside loom (a std atomic is not a modeled operation).
    let runs = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = runs.clone();
    let start = std::time::Instant::now();
    b.check(move || {
        counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        f()
    });
    eprintln!(
        "loom {}: {} executions, preemption bound {:?}, {:.1?}",
        std::thread::current().name().unwrap_or("model"),
        runs.load(std::sync::atomic::Ordering::Relaxed),
        b.preemption_bound,
        start.elapsed()
    );
}
