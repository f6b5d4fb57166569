//! Which frames of a resolved stack are shown: a pure function over demangled names.
//!
//! Go hides `runtime.*` frames and everything below `runtime.goexit`; parkwatch
//! does the same with its own frames, the executor (tokio), the standard library's
//! future plumbing and the C runtime, and cuts the stack at the task boundary
//! (the harness that polls every task, or the body of a registered thread).

/// Crate paths whose frames are never the user's line (matched as prefixes of the
/// normalized name). `parkwatch::demo` is the exception: it is demo *user* code.
const HIDDEN_PREFIXES: &[&str] = &[
    "parkwatch::",
    "__rustc::",
    "tokio::",
    "tokio_util::",
    "std::",
    "core::",
    "alloc::",
    "backtrace::",
    "futures_util::",
    "futures_core::",
    "futures_task::",
    "futures_channel::",
    "futures_executor::",
    "futures::",
    "dashmap::",
    "parking_lot",
    "tracing::",
    "tracing_core::",
];

/// User-like code inside the parkwatch crate (its demos), shown like user frames.
const USER_PREFIXES_IN_PARKWATCH: &[&str] = &["parkwatch::demo"];

/// Symbols of the C runtime, libc and the unwinder, matched as prefixes.
const C_RUNTIME_PREFIXES: &[&str] = &["__rust_", "_start", "__libc_start", "_Unwind_", "__GI_", "__clone", "__pthread"];

/// Symbols of the C runtime, libc and the unwinder, matched exactly.
const C_RUNTIME_NAMES: &[&str] = &["start_thread", "clone", "clone3", "main", "?", ""];

/// Marks of the task boundary: the harness that polls every task, and the body
/// of a thread registered with `parkwatch::thread::spawn`.
const BOUNDARY_MARKS: &[&str] = &["parkwatch::task::harness", "parkwatch::thread::"];

/// What a frame is, for trimming.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) enum Class {
    /// The user's code: shown.
    User,
    /// Runtime, library or C plumbing: hidden.
    Hidden,
    /// The task boundary: it and every frame outside it are dropped.
    Boundary,
}

/// Classifies one demangled function name (without hash).
pub(crate) fn classify(name: &str) -> Class {
    let subjects = subject_paths(name);
    if subjects.iter().flatten().any(|p| BOUNDARY_MARKS.iter().any(|m| p.starts_with(m))) {
        return Class::Boundary;
    }
    if subjects.iter().flatten().any(|p| is_hidden(p)) {
        return Class::Hidden;
    }
    Class::User
}

fn is_hidden(path: &str) -> bool {
    if USER_PREFIXES_IN_PARKWATCH.iter().any(|p| path.starts_with(p)) {
        return false;
    }
    HIDDEN_PREFIXES.iter().any(|p| path.starts_with(p)) || is_c_runtime(path)
}

/// Classifies one frame by its name, and by its source file when the name is
/// unqualified.
///
/// Debug info limited to line tables (`debug = "line-tables-only"`, parkwatch's
/// release profile) names inlined frames without their path (`recv`,
/// `{closure#0}`); such frames are judged by their file instead: the standard
/// library's sources, a hidden crate's sources in the cargo registry, or
/// parkwatch's own `src/` (whose `task/harness` and `thread` files are the
/// task boundary, and whose `demo` files are user code).
pub(crate) fn classify_frame(name: &str, file: Option<&str>) -> Class {
    let by_name = classify(name);
    if by_name != Class::User || is_qualified(name) {
        return by_name;
    }
    file.map_or(Class::User, |f| classify_file(f, PARKWATCH_SRC))
}

/// parkwatch's own sources, as its debug info names them.
const PARKWATCH_SRC: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/src/");

/// Whether `name` carries a path (`a::b`, `<T as a::B>::c`) before any generics.
fn is_qualified(name: &str) -> bool {
    name.starts_with('<') || name.split('<').next().is_some_and(|head| head.contains("::"))
}

/// Classifies a frame by its source file; `parkwatch_src` is parkwatch's `src/` directory.
fn classify_file(file: &str, parkwatch_src: &str) -> Class {
    let file = file.replace('\\', "/");
    let own = parkwatch_src.replace('\\', "/");
    if let Some(rel) = file.strip_prefix(own.as_str()) {
        let under = |dir: &str| rel.strip_prefix(dir).is_some_and(|r| r.is_empty() || r.starts_with('/') || r == ".rs");
        return match () {
            _ if under("demo") => Class::User,
            _ if under("task/harness") || under("thread") => Class::Boundary,
            _ => Class::Hidden,
        };
    }
    if file.starts_with("/rustc/") || file.contains("/rustlib/src/rust/library/") {
        return Class::Hidden;
    }
    match registry_crate(&file) {
        Some(krate) if is_hidden(&format!("{krate}::")) => Class::Hidden,
        _ => Class::User,
    }
}

/// The crate name (with `_`) of a file inside cargo's registry sources
/// (`.../registry/src/<index>/<crate>-<version>/...`).
fn registry_crate(file: &str) -> Option<String> {
    let (_, after) = file.split_once("/registry/src/")?;
    let dir = after.split('/').nth(1)?;
    let (name, version) = dir.rsplit_once('-')?;
    version.starts_with(|c: char| c.is_ascii_digit()).then(|| name.replace('-', "_"))
}

/// The indices of the frames to show, innermost first, given every frame's
/// name and source file innermost first.
///
/// Frames are classified with [`classify_frame`]. Going outward, hidden frames
/// are skipped; the first boundary frame found *after* at least one user frame
/// ends the stack (a boundary frame before any user frame is parkwatch's own
/// machinery, e.g. a blocking park helper, and is merely skipped).
pub(crate) fn kept(frames: &[(&str, Option<&str>)]) -> Vec<usize> {
    let mut out = Vec::new();
    for (i, &(name, file)) in frames.iter().enumerate() {
        match classify_frame(name, file) {
            Class::User => out.push(i),
            Class::Hidden => {}
            Class::Boundary if out.is_empty() => {}
            Class::Boundary => break,
        }
    }
    out
}

/// The paths that say whose code a name is: one, or two for some trait impls.
///
/// A plain path is its own subject. A trait-impl name `<Type as Trait>::method`
/// is judged by `Type`, with leading `&`, `&mut `, `*const `, `*mut `, `dyn `
/// stripped; when `Type` was such a reference or pointer, by `Trait` as well
/// (`<&mut F as core::future::future::Future>::poll` is core's blanket impl
/// whatever `F` is); when `Type` is a bare generic parameter (legacy mangling
/// prints blanket impls as `<F as Trait>`), by `Trait` alone.
fn subject_paths(name: &str) -> [Option<&str>; 2] {
    let Some(rest) = name.strip_prefix('<') else {
        return [Some(name), None];
    };
    let stripped = strip_pointer_prefixes(rest);
    let is_pointer = stripped.len() != rest.len() && !rest.starts_with("dyn ");
    match stripped.split_once(" as ") {
        Some((ty, tr)) if is_bare_ident(ty) => [Some(tr), None],
        Some((ty, tr)) if is_pointer || !starts_like_path(ty) => [Some(stripped), Some(tr)],
        _ => [Some(stripped), None],
    }
}

fn strip_pointer_prefixes(mut s: &str) -> &str {
    loop {
        let next = ["&mut ", "&", "*const ", "*mut ", "dyn "].iter().find_map(|p| s.strip_prefix(p));
        match next {
            Some(n) => s = n,
            None => return s,
        }
    }
}

/// Whether a self type is a path (`app::T`) rather than a structural type
/// (`fn() -> R`, `[u8; 4]`, `(A, B)`), whose impls are judged by their trait too.
fn starts_like_path(ty: &str) -> bool {
    let structural = ["fn(", "unsafe ", "extern "].iter().any(|p| ty.starts_with(p));
    !structural && ty.starts_with(|c: char| c.is_alphabetic() || c == '_')
}

fn is_bare_ident(s: &str) -> bool {
    !s.is_empty() && s.chars().all(|c| c.is_alphanumeric() || c == '_')
}

fn is_c_runtime(path: &str) -> bool {
    !path.contains("::") && (C_RUNTIME_NAMES.contains(&path) || C_RUNTIME_PREFIXES.iter().any(|p| path.starts_with(p)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ops::Range;

    /// The range of kept indices.
    fn span(names: &[&str]) -> Option<Range<usize>> {
        let k = by_name(names);
        Some(*k.first()?..*k.last()? + 1)
    }

    /// A typical stack of a task parked in `recv` on a tokio worker, innermost first.
    const TASK_STACK: &[&str] = &[
        "backtrace::backtrace::libunwind::trace",
        "_Unwind_Backtrace",
        "parkwatch::stack::capture",
        "parkwatch::chan::Recv<T>::poll_park",
        "<parkwatch::chan::Recv<T> as core::future::future::Future>::poll",
        "app::worker::{{closure}}",
        "<core::pin::Pin<P> as core::future::future::Future>::poll",
        "<&mut F as core::future::future::Future>::poll",
        "app::pool::run::{{closure}}",
        "parkwatch::task::harness::poll_task",
        "tokio::runtime::task::harness::Harness<T,S>::poll",
        "tokio::runtime::scheduler::multi_thread::worker::Context::run",
        "app::outer_that_must_not_show",
        "std::sys::pal::unix::thread::Thread::new::thread_start",
        "start_thread",
        "clone3",
    ];

    fn by_name(names: &[&str]) -> Vec<usize> {
        let frames: Vec<_> = names.iter().map(|&n| (n, None)).collect();
        kept(&frames)
    }

    fn names_kept(names: &[&str]) -> Vec<String> {
        by_name(names).into_iter().map(|i| names[i].to_string()).collect()
    }

    #[test]
    fn task_stack_keeps_only_user_frames_above_the_harness() {
        assert_eq!(names_kept(TASK_STACK), ["app::worker::{{closure}}", "app::pool::run::{{closure}}"]);
        assert_eq!(span(TASK_STACK), Some(5..9));
    }

    #[test]
    fn thread_body_is_a_boundary() {
        let names = [
            "parkwatch::chan::Chan<T>::recv_blocking",
            "app::consumer",
            "parkwatch::thread::spawn::{{closure}}",
            "app::should_not_show",
        ];
        assert_eq!(names_kept(&names), ["app::consumer"]);
    }

    #[test]
    fn boundary_before_any_user_frame_is_skipped_not_a_cut() {
        let names = ["parkwatch::thread::park_current", "app::consumer", "std::rt::lang_start", "main"];
        assert_eq!(names_kept(&names), ["app::consumer"]);
    }

    #[test]
    fn boundary_is_judged_by_the_path_not_by_generic_arguments() {
        assert_eq!(classify("app::run::<parkwatch::thread::Handle>"), Class::User);
        assert_eq!(
            classify("<parkwatch::task::harness::Harness<F> as core::future::future::Future>::poll"),
            Class::Boundary
        );
        assert_eq!(classify("parkwatch::thread::spawn::{{closure}}"), Class::Boundary);
    }

    #[test]
    fn demo_code_inside_parkwatch_is_user_code() {
        let names = [
            "parkwatch::chan::Recv<T>::poll",
            "parkwatch::demo::leaky_worker::{{closure}}",
            "parkwatch::task::harness::poll",
        ];
        assert_eq!(names_kept(&names), ["parkwatch::demo::leaky_worker::{{closure}}"]);
    }

    #[test]
    fn main_thread_without_boundary_drops_c_runtime() {
        let names = [
            "parkwatch::sync::Mutex<T>::lock_blocking",
            "app::main",
            "core::ops::function::FnOnce::call_once",
            "std::rt::lang_start::{{closure}}",
            "std::rt::lang_start_internal",
            "main",
            "__libc_start_call_main",
            "__libc_start_main_impl",
            "_start",
        ];
        assert_eq!(names_kept(&names), ["app::main"]);
    }

    #[test]
    fn trait_impls_are_judged_by_self_type_or_trait_for_generics() {
        assert_eq!(classify("<app::MyFut as core::future::future::Future>::poll"), Class::User);
        assert_eq!(classify("<&mut app::MyFut as core::future::future::Future>::poll"), Class::Hidden);
        assert_eq!(classify("<&app::MyHandler as app::Handler>::handle"), Class::User);
        assert_eq!(classify("<dyn app::Plugin>::call"), Class::User);
        let fn_ptr = "<fn() -> core::result::Result<(), alloc::string::String> \
                      as core::ops::function::FnOnce<()>>::call_once";
        assert_eq!(classify(fn_ptr), Class::Hidden);
        assert_eq!(classify("<[u8; 4] as app::Encode>::encode"), Class::User);
        assert_eq!(classify("<(A, B) as core::future::join::Join>::poll"), Class::Hidden);
        assert_eq!(classify("app::run::<tokio::sync::Mutex<u8>>"), Class::User);
        assert_eq!(classify("__rustc::rust_begin_unwind"), Class::Hidden);
        assert_eq!(classify("<&mut F as core::future::future::Future>::poll"), Class::Hidden);
        assert_eq!(classify("<T as app::Handler>::handle"), Class::User);
        assert_eq!(classify("<alloc::boxed::Box<F,A> as core::future::future::Future>::poll"), Class::Hidden);
        assert_eq!(classify("<&tokio::sync::Notify as x::Y>::z"), Class::Hidden);
        assert_eq!(classify("<dyn core::any::Any>::is"), Class::Hidden);
    }

    #[test]
    fn prefixes_match_whole_crate_names_only_where_listed() {
        assert_eq!(classify("tokio_util::sync::CancellationToken::cancelled"), Class::Hidden);
        assert_eq!(classify("tokiox::thing"), Class::User);
        assert_eq!(classify("parking_lot_core::parking_lot::park"), Class::Hidden);
        assert_eq!(classify("stdlib_user::f"), Class::User);
        assert_eq!(classify("app::main"), Class::User);
        assert_eq!(classify("mymain"), Class::User);
    }

    #[test]
    fn c_runtime_names_are_hidden_only_without_a_path() {
        for n in ["main", "_start", "__libc_start_main", "start_thread", "clone", "clone3", "__rust_try", "?"] {
            assert_eq!(classify(n), Class::Hidden, "{n}");
        }
        assert_eq!(classify("app::main"), Class::User);
        assert_eq!(classify("app::clone"), Class::User);
    }

    #[test]
    fn empty_or_all_hidden_stacks_keep_nothing() {
        assert!(kept(&[]).is_empty());
        assert!(by_name(&["tokio::x", "std::y", "main"]).is_empty());
        assert_eq!(span(&["tokio::x"]), None);
    }

    const SRC: &str = "/work/parkwatch/src/";

    #[test]
    fn unqualified_inlined_names_are_judged_by_file() {
        let reg = "/root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f";
        let tokio = format!("{reg}/tokio-1.47.1/src/runtime/task/harness.rs");
        let futures = format!("{reg}/futures-util-0.3.31/src/future/mod.rs");
        let app_dep = format!("{reg}/my-app-lib-2.0.0/src/lib.rs");
        assert_eq!(classify_file(&tokio, SRC), Class::Hidden);
        assert_eq!(classify_file(&futures, SRC), Class::Hidden);
        assert_eq!(classify_file(&app_dep, SRC), Class::User);
        assert_eq!(classify_file("/rustc/abc/library/core/src/future/future.rs", SRC), Class::Hidden);
        assert_eq!(classify_file("/work/parkwatch/src/chan/mod.rs", SRC), Class::Hidden);
        assert_eq!(classify_file("/work/parkwatch/src/task/harness.rs", SRC), Class::Boundary);
        assert_eq!(classify_file("/work/parkwatch/src/thread.rs", SRC), Class::Boundary);
        assert_eq!(classify_file("/work/parkwatch/src/thread/mod.rs", SRC), Class::Boundary);
        assert_eq!(classify_file("/work/parkwatch/src/threadpool.rs", SRC), Class::Hidden);
        assert_eq!(classify_file("/work/parkwatch/src/demo/leak.rs", SRC), Class::User);
        assert_eq!(classify_file("/work/app/src/main.rs", SRC), Class::User);
        assert_eq!(classify_file("src/main.rs", SRC), Class::User);
    }

    #[test]
    fn file_matters_only_for_unqualified_names() {
        let std_file = Some("/rustc/abc/library/core/src/ops/function.rs");
        assert_eq!(classify_frame("call_once<app::F, ()>", std_file), Class::Hidden);
        assert_eq!(classify_frame("{closure#0}", Some("/work/app/src/main.rs")), Class::User);
        assert_eq!(classify_frame("{closure#0}", None), Class::User);
        // A qualified name is never overridden by its file.
        assert_eq!(classify_frame("app::helper", std_file), Class::User);
        assert_eq!(classify_frame("tokio::spawn", Some("/work/app/src/main.rs")), Class::Hidden);
        assert!(is_qualified("<F as core::future::Future>::poll"));
        assert!(!is_qualified("trace_unsynchronized<&mut parkwatch::stack::X>"));
    }

    #[test]
    fn release_like_stack_with_short_inlined_names() {
        let reg = "/root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f";
        let bt = format!("{reg}/backtrace-0.3.77/src/backtrace/mod.rs");
        let own = format!("{}chan/recv.rs", PARKWATCH_SRC);
        let harness = format!("{}task/harness.rs", PARKWATCH_SRC);
        let frames = [
            ("trace_unsynchronized<&mut parkwatch::stack::capture_ips::{closure_env#0}>", Some(bt.as_str())),
            ("poll_recv", Some(own.as_str())),
            ("{async_fn#0}", Some("/work/app/src/worker.rs")),
            ("app::worker::run::{{closure}}", Some("/work/app/src/worker.rs")),
            ("{closure#0}", Some(harness.as_str())),
            ("app::not_shown", Some("/work/app/src/main.rs")),
        ];
        assert_eq!(kept(&frames), [2, 3]);
    }
}
