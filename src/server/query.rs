//! Query strings: parsing and validation, with plain messages for 400s.

use crate::snapshot::{TaskInfo, TaskState, WaitReason};

/// Longest query string accepted.
const MAX_QUERY: usize = 4096;
/// Longest search text accepted.
const MAX_SEARCH: usize = 256;

/// A bad request, with the message for the client.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct BadRequest(pub(crate) String);

impl BadRequest {
    fn new(msg: impl Into<String>) -> BadRequest {
        BadRequest(msg.into())
    }
}

/// The parameters of a query string; a key given twice takes its last value.
#[derive(Debug, Default)]
pub(crate) struct Params(Vec<(String, String)>);

impl Params {
    pub(crate) fn parse(raw: Option<&str>) -> Result<Params, BadRequest> {
        let raw = raw.unwrap_or("");
        if raw.len() > MAX_QUERY {
            return Err(BadRequest::new(format!("query string too long ({} bytes, at most {MAX_QUERY})", raw.len())));
        }
        Ok(Params(form_urlencoded::parse(raw.as_bytes()).map(|(k, v)| (k.into_owned(), v.into_owned())).collect()))
    }

    /// The value of `key`, if given and not empty.
    pub(crate) fn get(&self, key: &str) -> Option<&str> {
        self.0.iter().rev().find(|(k, _)| k == key).map(|(_, v)| v.trim()).filter(|v| !v.is_empty())
    }

    /// A non-negative integer, `default` when absent, `Err` when malformed or above `max`.
    pub(crate) fn number(&self, key: &str, default: u64, max: u64) -> Result<u64, BadRequest> {
        match self.get(key) {
            None => Ok(default),
            Some(v) => match v.parse::<u64>() {
                Ok(n) if n <= max => Ok(n),
                Ok(_) => Err(BadRequest::new(format!("{key}={v}: must be at most {max}"))),
                Err(_) => Err(BadRequest::new(format!("{key}={v}: not a non-negative integer"))),
            },
        }
    }

    /// A page size: absent → `default`, above `cap` → `cap`, 0 or malformed → `Err`.
    pub(crate) fn limit(&self, default: usize, cap: usize) -> Result<usize, BadRequest> {
        match self.get("limit") {
            None => Ok(default),
            Some(v) => match v.parse::<u64>() {
                Ok(0) => Err(BadRequest::new("limit=0: must be at least 1")),
                Ok(n) => Ok((n.min(cap as u64)) as usize),
                Err(_) => Err(BadRequest::new(format!("limit={v}: not a positive integer"))),
            },
        }
    }

    /// A boolean flag: `1`, `true`, `yes`, `on` / `0`, `false`, `no`, `off`.
    pub(crate) fn flag(&self, key: &str) -> Result<bool, BadRequest> {
        match self.get(key).map(str::to_ascii_lowercase).as_deref() {
            None | Some("0" | "false" | "no" | "off") => Ok(false),
            Some("1" | "true" | "yes" | "on") => Ok(true),
            Some(v) => Err(BadRequest::new(format!("{key}={v}: expected 1 or 0"))),
        }
    }

    /// Go's `debug` parameter of the pprof endpoints: 0 (binary, the default), 1 or 2.
    pub(crate) fn debug(&self) -> Result<u8, BadRequest> {
        match self.get("debug") {
            None | Some("0") => Ok(0),
            Some("1") => Ok(1),
            Some("2") => Ok(2),
            Some(v) => Err(BadRequest::new(format!(
                "debug={v}: expected 0 (gzipped protobuf), 1 (counts per stack) or 2 (every task)"
            ))),
        }
    }
}

/// Which tasks a request is about.
#[derive(Debug, Default, Clone)]
pub(crate) struct TaskFilter {
    pub(crate) state: Option<TaskState>,
    pub(crate) reason: Option<WaitReason>,
    /// Lower-cased search text.
    pub(crate) q: Option<String>,
    /// Only the tasks with this stack key (see `view::stack_key`).
    pub(crate) stack: Option<u64>,
    /// Only the tasks of this finding (index into deadlocks then leaks).
    pub(crate) finding: Option<usize>,
    /// Only tasks in some finding.
    pub(crate) in_findings: bool,
}

const REASONS: [WaitReason; 14] = [
    WaitReason::ChanReceive,
    WaitReason::ChanSend,
    WaitReason::Select,
    WaitReason::SelectNoCases,
    WaitReason::ChanReceiveNilChan,
    WaitReason::ChanSendNilChan,
    WaitReason::MutexLock,
    WaitReason::RwMutexRLock,
    WaitReason::RwMutexLock,
    WaitReason::WaitGroupWait,
    WaitReason::CondWait,
    WaitReason::OnceDo,
    WaitReason::Sleep,
    WaitReason::TaskJoin,
];

/// Every wait reason, in a fixed order.
pub(crate) fn all_reasons() -> &'static [WaitReason] {
    &REASONS
}

/// Every state, in a fixed order.
pub(crate) const STATES: [TaskState; 4] =
    [TaskState::Running, TaskState::Runnable, TaskState::Parked, TaskState::External];

/// The name of a state in URLs and JSON.
pub(crate) fn state_name(s: TaskState) -> &'static str {
    match s {
        TaskState::Running => "running",
        TaskState::Runnable => "runnable",
        TaskState::Parked => "parked",
        TaskState::External => "external",
    }
}

fn parse_state(v: &str) -> Result<TaskState, BadRequest> {
    match v.to_ascii_lowercase().as_str() {
        "running" => Ok(TaskState::Running),
        "runnable" => Ok(TaskState::Runnable),
        "parked" | "waiting" => Ok(TaskState::Parked),
        "external" | "external wait" => Ok(TaskState::External),
        _ => Err(BadRequest::new(format!("state={v}: expected running, runnable, parked or external"))),
    }
}

fn parse_reason(v: &str) -> Result<WaitReason, BadRequest> {
    REASONS
        .iter()
        .copied()
        .find(|r| r.as_str().eq_ignore_ascii_case(v) || format!("{r:?}").eq_ignore_ascii_case(v))
        .ok_or_else(|| {
            BadRequest::new(format!("reason={v}: not a wait reason (e.g. \"chan receive\", \"sync.Mutex.Lock\")"))
        })
}

impl TaskFilter {
    pub(crate) fn parse(p: &Params) -> Result<TaskFilter, BadRequest> {
        let state = p.get("state").map(parse_state).transpose()?;
        let reason = p.get("reason").map(parse_reason).transpose()?;
        let q = match p.get("q") {
            Some(q) if q.len() > MAX_SEARCH => {
                return Err(BadRequest::new(format!("q: search text too long (at most {MAX_SEARCH} bytes)")))
            }
            q => q.map(str::to_lowercase),
        };
        let stack = match p.get("stack") {
            None => None,
            Some(v) => Some(
                u64::from_str_radix(v, 16)
                    .map_err(|_| BadRequest::new(format!("stack={v}: expected a stack key (hex)")))?,
            ),
        };
        let finding = match p.get("finding") {
            None => None,
            Some(v) => {
                Some(v.parse::<usize>().map_err(|_| BadRequest::new(format!("finding={v}: expected an index")))?)
            }
        };
        Ok(TaskFilter { state, reason, q, stack, finding, in_findings: p.flag("in_findings")? })
    }

    /// Whether the filter keeps every task.
    pub(crate) fn is_empty(&self) -> bool {
        self.state.is_none()
            && self.reason.is_none()
            && self.q.is_none()
            && self.stack.is_none()
            && self.finding.is_none()
            && !self.in_findings
    }

    /// Whether `t` passes the state, reason and search parts (stack and
    /// findings are checked by the caller, which knows them).
    pub(crate) fn matches_basic(&self, t: &TaskInfo) -> bool {
        if self.state.is_some_and(|s| s != t.state) {
            return false;
        }
        if self.reason.is_some() && self.reason != t.wait_reason {
            return false;
        }
        match &self.q {
            None => true,
            Some(q) => matches_search(t, q),
        }
    }
}

/// Case-insensitive search over a task's id, name, wait reason, locations and frames.
fn matches_search(t: &TaskInfo, q: &str) -> bool {
    let q = q.trim_start_matches('#');
    if let Ok(id) = q.parse::<u64>() {
        if t.id.0 == id {
            return true;
        }
    }
    let has = |s: &str| contains_ci(s, q);
    t.name.as_deref().is_some_and(has)
        || t.wait_reason.is_some_and(|r| has(r.as_str()))
        || t.parked_at.as_ref().is_some_and(|l| has(&l.file))
        || has(&t.spawned_at.file)
        || t.created_by.as_deref().is_some_and(has)
        || t.stack.iter().any(|f| has(&f.function) || f.file.as_deref().is_some_and(has))
}

/// Whether `hay` contains `needle` (already lower case), ignoring ASCII case.
pub(crate) fn contains_ci(hay: &str, needle: &str) -> bool {
    let (h, n) = (hay.as_bytes(), needle.as_bytes());
    if n.is_empty() {
        return true;
    }
    if n.len() > h.len() {
        return false;
    }
    if !needle.is_ascii() {
        return hay.to_lowercase().contains(needle);
    }
    h.windows(n.len()).any(|w| w.eq_ignore_ascii_case(n))
}

/// How a page of tasks (or groups) is ordered.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) enum SortKey {
    Id,
    Name,
    State,
    Reason,
    Parked,
    Count,
}

/// A sort key and its direction.
#[derive(Copy, Clone, Debug)]
pub(crate) struct Sort {
    pub(crate) key: SortKey,
    pub(crate) desc: bool,
}

impl Sort {
    pub(crate) fn parse(p: &Params, default: Sort) -> Result<Sort, BadRequest> {
        let Some(v) = p.get("sort") else { return Ok(default) };
        let (desc, name) = match v.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, v),
        };
        let key = match name {
            "id" => SortKey::Id,
            "name" => SortKey::Name,
            "state" => SortKey::State,
            "reason" => SortKey::Reason,
            "parked" | "parked_for" => SortKey::Parked,
            "count" => SortKey::Count,
            _ => {
                return Err(BadRequest::new(format!(
                    "sort={v}: expected id, name, state, reason, parked or count (prefix - for descending)"
                )))
            }
        };
        Ok(Sort { key, desc })
    }

    pub(crate) fn as_param(self) -> String {
        let name = match self.key {
            SortKey::Id => "id",
            SortKey::Name => "name",
            SortKey::State => "state",
            SortKey::Reason => "reason",
            SortKey::Parked => "parked",
            SortKey::Count => "count",
        };
        if self.desc {
            format!("-{name}")
        } else {
            name.to_string()
        }
    }
}

/// Runs every parser of the query string `raw` (as a request's URI carries
/// it, still percent-encoded) the way the endpoints do, and panics if one
/// answers an error without a message, or a value outside its range: the
/// entry point of the `query` fuzz target (fuzz/fuzz_targets/query.rs).
#[doc(hidden)]
pub fn fuzz_query(raw: &str) {
    fn message(r: Result<(), BadRequest>) {
        if let Err(e) = r {
            assert!(!e.0.trim().is_empty(), "a 400 without a message");
        }
    }
    let p = match Params::parse(Some(raw)) {
        Ok(p) => p,
        Err(e) => return message(Err(e)),
    };
    for key in ["full", "in_findings"] {
        message(p.flag(key).map(drop));
    }
    message(p.number("id", 0, u64::MAX).map(drop));
    message(p.number("offset", 0, 1 << 40).map(|n| assert!(n <= 1 << 40)));
    message(p.number("max_nodes", 400, 5000).map(|n| assert!(n <= 5000)));
    message(p.limit(100, 1000).map(|n| assert!((1..=1000).contains(&n))));
    message(p.debug().map(|d| assert!(d <= 2)));
    message(TaskFilter::parse(&p).map(|f| assert!(f.q.as_ref().is_none_or(|q| !q.is_empty()))));
    for default in [Sort { key: SortKey::Id, desc: false }, Sort { key: SortKey::Count, desc: true }] {
        message(Sort::parse(&p, default).map(|s| {
            // What the page sends back parses to the same order.
            let again = Params::parse(Some(&format!("sort={}", s.as_param()))).expect("a short query");
            let t = Sort::parse(&again, default).expect("as_param parses");
            assert!(t.key == s.key && t.desc == s.desc, "sort={} round trip", s.as_param());
        }));
    }
    // A key given twice takes its last value; a value is trimmed, and empty means absent.
    for (k, v) in p.0.iter().take(64) {
        let got = p.get(k);
        assert!(got.is_none_or(|g| !g.is_empty() && g == g.trim()));
        if p.0.iter().rev().find(|(k2, _)| k2 == k).map(|(_, v2)| v2) == Some(v) {
            assert_eq!(got, Some(v.trim()).filter(|v| !v.is_empty()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(q: &str) -> Params {
        Params::parse(Some(q)).unwrap()
    }

    #[test]
    fn numbers_and_limits() {
        assert_eq!(p("offset=5").number("offset", 0, 10), Ok(5));
        assert!(p("offset=abc").number("offset", 0, 10).is_err());
        assert!(p("offset=-1").number("offset", 0, 10).is_err());
        assert!(p("offset=11").number("offset", 0, 10).is_err());
        assert_eq!(p("").limit(100, 1000), Ok(100));
        assert_eq!(p("limit=5000").limit(100, 1000), Ok(1000));
        assert!(p("limit=abc").limit(100, 1000).is_err());
        assert!(p("limit=0").limit(100, 1000).is_err());
    }

    #[test]
    fn debug_values() {
        assert_eq!(p("").debug(), Ok(0));
        assert_eq!(p("debug=2").debug(), Ok(2));
        assert!(p("debug=7").debug().unwrap_err().0.contains("debug=7"));
    }

    #[test]
    fn filters_parse() {
        let f = TaskFilter::parse(&p("state=waiting&reason=chan%20receive&q=Worker")).unwrap();
        assert_eq!(f.state, Some(TaskState::Parked));
        assert_eq!(f.reason, Some(WaitReason::ChanReceive));
        assert_eq!(f.q.as_deref(), Some("worker"));
        assert_eq!(TaskFilter::parse(&p("reason=MutexLock")).unwrap().reason, Some(WaitReason::MutexLock));
        assert_eq!(TaskFilter::parse(&p("reason=sync.Mutex.Lock")).unwrap().reason, Some(WaitReason::MutexLock));
        assert!(TaskFilter::parse(&p("state=sleepy")).is_err());
        assert!(TaskFilter::parse(&p("reason=nap")).is_err());
        assert!(TaskFilter::parse(&p("stack=xyz")).is_err());
        assert!(TaskFilter::parse(&p("unknown=1")).unwrap().is_empty());
    }

    #[test]
    fn sorts_parse() {
        let d = Sort { key: SortKey::Id, desc: false };
        assert_eq!(Sort::parse(&p("sort=-parked"), d).unwrap().key, SortKey::Parked);
        assert!(Sort::parse(&p("sort=-parked"), d).unwrap().desc);
        assert!(Sort::parse(&p("sort=colour"), d).is_err());
        assert_eq!(Sort::parse(&p("sort=-count"), d).unwrap().as_param(), "-count");
    }

    #[test]
    fn fuzz_entry_point_takes_anything() {
        for q in
            ["", "sort=-count", "limit=0", "%FF=%FE", "q=\u{130}", "debug=2&debug=x", "a&&=&b==", &"x".repeat(5000)]
        {
            fuzz_query(q);
        }
    }

    #[test]
    fn case_insensitive_contains() {
        assert!(contains_ci("parkwatch::demo::Ledger", "ledger"));
        assert!(!contains_ci("abc", "abcd"));
        assert!(contains_ci("ÄBC", "äb"));
    }
}
