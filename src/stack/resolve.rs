//! Symbol resolution of captured instruction pointers, cached per address.

use std::ffi::c_void;
use std::sync::{Arc, LazyLock};

use dashmap::DashMap;

use crate::snapshot::Frame;

/// Process-wide cache: instruction pointer → its frames (several when inlined),
/// innermost first. Bounded by the number of distinct return addresses in the
/// program's code.
static CACHE: LazyLock<DashMap<usize, Arc<[Frame]>>> = LazyLock::new(DashMap::new);

/// The frames of one instruction pointer, innermost (most inlined) first;
/// never empty (an unresolvable address gives one frame named `?`).
pub(crate) fn resolve_ip(ip: usize) -> Arc<[Frame]> {
    if let Some(hit) = CACHE.get(&ip) {
        return Arc::clone(hit.value());
    }
    // Resolve without holding a shard lock: resolution may take milliseconds.
    let frames = resolve_uncached(ip);
    Arc::clone(CACHE.entry(ip).or_insert(frames).value())
}

/// The frames of every instruction pointer of `ips`, flattened, innermost first.
pub(crate) fn resolve_all(ips: &[usize]) -> Vec<Frame> {
    ips.iter().flat_map(|&ip| resolve_ip(ip).to_vec()).collect()
}

fn resolve_uncached(ip: usize) -> Arc<[Frame]> {
    let entry = enclosing_function(ip);
    let mut out = Vec::new();
    backtrace::resolve(ip as *mut c_void, |sym| {
        let function: Arc<str> = match sym.name() {
            Some(name) => format!("{name:#}").into(),
            None => "?".into(),
        };
        out.push(Frame {
            function,
            file: sym.filename().map(|p| Arc::from(p.to_string_lossy().as_ref())),
            line: sym.lineno(),
            pc: ip,
            entry,
        });
    });
    if out.is_empty() {
        out.push(Frame { function: "?".into(), file: None, line: None, pc: ip, entry });
    }
    out.into()
}

/// The start address of the function containing `ip` (Go's `Func.Entry`), 0 when unknown.
///
/// `backtrace::Symbol::addr` is not usable for this: with the gimli symbolizer it
/// is the symbolized address itself, relative to the object (not relocated).
/// The unwinder's `_Unwind_FindEnclosingFunction` answers with the real,
/// relocated start from the unwind tables (what `backtrace::Frame::symbol_address`
/// uses); it is called here at resolution time, once per address, instead of at
/// capture time.
#[cfg(all(target_os = "linux", any(target_env = "gnu", target_env = "musl")))]
fn enclosing_function(ip: usize) -> usize {
    extern "C" {
        fn _Unwind_FindEnclosingFunction(pc: *mut c_void) -> *mut c_void;
    }
    if ip == 0 {
        return 0;
    }
    // SAFETY: the unwinder (libgcc_s or LLVM libunwind, which std links on these
    // targets) only looks `pc` up in the registered unwind tables, never
    // dereferences it, and returns null when no function contains it.
    // `ip - 1` is inside the call instruction, so inside the caller.
    unsafe { _Unwind_FindEnclosingFunction((ip - 1) as *mut c_void) as usize }
}

/// The start address of the function containing `ip`: unknown on this target.
#[cfg(not(all(target_os = "linux", any(target_env = "gnu", target_env = "musl"))))]
fn enclosing_function(_ip: usize) -> usize {
    0
}
