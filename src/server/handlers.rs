//! The endpoints. Each validates its query first (400 with a plain message),
//! then renders the answer from a snapshot on tokio's blocking pool.

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use super::query::{BadRequest, Params, Sort, SortKey, TaskFilter};
use super::shared::Answer;
use super::view::{self, Taken};
use super::{assets, graph, metrics, Shared};
use crate::snapshot::TaskId;

pub(crate) const TEXT: &str = "text/plain; charset=utf-8";
const JSON: &str = "application/json";

/// Default and largest page of tasks or groups.
const DEFAULT_LIMIT: usize = 100;
/// Largest page of tasks or groups (responses stay bounded).
pub(crate) const MAX_LIMIT: usize = 1000;
/// Default and largest number of graph nodes.
const DEFAULT_GRAPH_NODES: u64 = 400;
const MAX_GRAPH_NODES: u64 = 5000;

const PAGE_CSP: &str = "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; \
                        object-src 'self'; frame-src 'self'; connect-src 'self'; base-uri 'none'; \
                        form-action 'self'; frame-ancestors 'self'";

/// A plain-text response.
pub(crate) fn plain(status: StatusCode, msg: impl Into<String>) -> Response {
    (status, [(header::CONTENT_TYPE, TEXT)], msg.into()).into_response()
}

fn bad(e: BadRequest) -> Response {
    plain(StatusCode::BAD_REQUEST, format!("400 bad request: {}\n", e.0))
}

fn body(content_type: &'static str, b: impl IntoResponse) -> Response {
    ([(header::CONTENT_TYPE, content_type)], b).into_response()
}

/// Renders the answer with `render` from a snapshot taken after this call
/// (shared with the other requests waiting for one, see `shared.rs`), on
/// tokio's blocking pool. `endpoint` and `query` name the answer: requests
/// naming the same one, waiting for the same snapshot, share one render.
async fn with_snapshot<F>(state: &Shared, endpoint: &str, query: Option<&str>, render: F) -> Response
where
    F: FnOnce(&Taken) -> Answer + Send + 'static,
{
    let key = format!("{endpoint}?{}", query.unwrap_or(""));
    state.snapshots.render(key, Box::new(render)).await.into_response()
}

pub(crate) async fn page() -> Response {
    let mut r = body("text/html; charset=utf-8", assets::INDEX_HTML);
    r.headers_mut().insert(header::CONTENT_SECURITY_POLICY, header::HeaderValue::from_static(PAGE_CSP));
    r
}

pub(crate) async fn page_slash() -> Response {
    (StatusCode::SEE_OTHER, [(header::LOCATION, "../tasks")]).into_response()
}

pub(crate) async fn asset(name: Result<Path<String>, PathRejection>) -> Response {
    // A name that does not decode (`%FF`) names no asset either: 404, not
    // axum's own 400.
    match name.ok().and_then(|Path(name)| assets::get(&name)) {
        Some((ct, bytes)) => body(ct, bytes),
        None => plain(StatusCode::NOT_FOUND, "404 not found: no such asset\n"),
    }
}

pub(crate) async fn not_found(uri: Uri) -> Response {
    plain(
        StatusCode::NOT_FOUND,
        format!(
            "404 not found: {}\nendpoints: /debug/tasks /debug/tasks.json /debug/pprof/goroutine?debug=0|1|2 \
             /debug/pprof/goroutineleak /debug/tasks/flamegraph.svg /debug/tasks/graph?format=json|dot /metrics\n",
            uri.path()
        ),
    )
}

#[derive(Serialize)]
struct Listing<'a> {
    taken_at: u64,
    elapsed_ms: f64,
    summary: view::Summary,
    findings: Vec<view::FindingView>,
    findings_total: usize,
    mode: &'static str,
    total: usize,
    offset: usize,
    limit: usize,
    sort: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    tasks: Option<Vec<view::TaskRow<'a>>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    groups: Option<Vec<view::GroupRow<'a>>>,
}

#[derive(Serialize)]
struct One<'a> {
    taken_at: u64,
    task: view::Detail<'a>,
}

fn json_answer(v: &impl Serialize) -> Answer {
    match serde_json::to_vec(v) {
        Ok(b) => Answer::ok(JSON, b),
        Err(e) => Answer::plain(StatusCode::INTERNAL_SERVER_ERROR, format!("500 internal server error: {e}\n")),
    }
}

pub(crate) async fn tasks_json(State(state): State<Shared>, RawQuery(q): RawQuery) -> Response {
    let p = match Params::parse(q.as_deref()) {
        Ok(p) => p,
        Err(e) => return bad(e),
    };
    let full = match p.flag("full") {
        Ok(f) => f,
        Err(e) => return bad(e),
    };
    if full {
        return with_snapshot(&state, "tasks.json", q.as_deref(), |t| Answer::ok(JSON, crate::dump::json(&t.snap)))
            .await;
    }
    if p.get("id").is_some() {
        let id = match p.number("id", 0, u64::MAX) {
            Ok(id) => TaskId(id),
            Err(e) => return bad(e),
        };
        let show_source = state.show_source;
        return with_snapshot(&state, "tasks.json", q.as_deref(), move |t| {
            let index = t.finding_index();
            match t.snap.task(id) {
                Some(task) => json_answer(&One {
                    taken_at: view::taken_at_ms(&t.snap),
                    task: view::detail(task, t, index, show_source),
                }),
                None => Answer::plain(StatusCode::NOT_FOUND, format!("404 not found: task {id} is not alive\n")),
            }
        })
        .await;
    }
    let parsed = (|| {
        let filter = TaskFilter::parse(&p)?;
        let grouped = match p.get("group") {
            None | Some("none") => false,
            Some("stack") => true,
            Some(v) => return Err(BadRequest(format!("group={v}: expected stack or none"))),
        };
        let default_sort =
            if grouped { Sort { key: SortKey::Count, desc: true } } else { Sort { key: SortKey::Id, desc: false } };
        let sort = Sort::parse(&p, default_sort)?;
        let offset = p.number("offset", 0, 1 << 40)? as usize;
        let limit = p.limit(DEFAULT_LIMIT, MAX_LIMIT)?;
        Ok((filter, grouped, sort, offset, limit))
    })();
    let (filter, grouped, sort, offset, limit) = match parsed {
        Ok(v) => v,
        Err(e) => return bad(e),
    };
    with_snapshot(&state, "tasks.json", q.as_deref(), move |t| {
        let index = t.finding_index();
        let mut selected = t.select(&filter, index);
        let findings_total = t.findings().count();
        let findings =
            t.findings().take(view::MAX_FINDINGS).enumerate().map(|(i, f)| view::finding_view(&t.snap, i, f)).collect();
        let mut listing = Listing {
            taken_at: view::taken_at_ms(&t.snap),
            elapsed_ms: (t.elapsed().as_secs_f64() * 1e6).round() / 1e3,
            summary: view::summary(t),
            findings,
            findings_total,
            mode: if grouped { "groups" } else { "tasks" },
            total: 0,
            offset,
            limit,
            sort: sort.as_param(),
            tasks: None,
            groups: None,
        };
        if grouped {
            let mut groups = view::groups(&selected, index);
            view::sort_groups(&mut groups, sort);
            listing.total = groups.len();
            listing.groups = Some(groups.into_iter().skip(offset).take(limit).collect());
        } else {
            listing.total = selected.len();
            if sort.key != SortKey::Id || sort.desc {
                view::sort_tasks(&mut selected, sort);
            }
            listing.tasks = Some(selected.into_iter().skip(offset).take(limit).map(|x| view::row(x, index)).collect());
        }
        json_answer(&listing)
    })
    .await
}

/// The goroutine profile of `t` in the format `debug` asks.
fn profile(s: &crate::Snapshot, debug: u8) -> Answer {
    match debug {
        0 => Answer::ok("application/octet-stream", crate::dump::pprof(s)).attachment("goroutine"),
        d => Answer::ok(TEXT, crate::dump::text(s, d)),
    }
}

pub(crate) async fn goroutine(State(state): State<Shared>, RawQuery(q): RawQuery) -> Response {
    let debug = match Params::parse(q.as_deref()).and_then(|p| p.debug()) {
        Ok(d) => d,
        Err(e) => return bad(e),
    };
    with_snapshot(&state, "goroutine", q.as_deref(), move |t| profile(&t.snap, debug)).await
}

pub(crate) async fn goroutineleak(State(state): State<Shared>, RawQuery(q): RawQuery) -> Response {
    let debug = match Params::parse(q.as_deref()).and_then(|p| p.debug()) {
        Ok(d) => d,
        Err(e) => return bad(e),
    };
    with_snapshot(&state, "goroutineleak", q.as_deref(), move |t| profile(t.leak_snapshot(), debug)).await
}

pub(crate) async fn flamegraph(State(state): State<Shared>, RawQuery(q): RawQuery) -> Response {
    let filter = match Params::parse(q.as_deref()).and_then(|p| TaskFilter::parse(&p)) {
        Ok(f) => f,
        Err(e) => return bad(e),
    };
    with_snapshot(&state, "flamegraph.svg", q.as_deref(), move |t| {
        let svg = if filter.is_empty() {
            crate::dump::flamegraph(&t.snap)
        } else {
            let index = t.finding_index();
            let keep: std::collections::HashSet<TaskId> = t.select(&filter, index).iter().map(|x| x.id).collect();
            crate::dump::flamegraph(&t.snap.filter(|x| keep.contains(&x.id)))
        };
        Answer::ok("image/svg+xml", svg)
    })
    .await
}

pub(crate) async fn graph(State(state): State<Shared>, RawQuery(q): RawQuery) -> Response {
    let parsed = (|| {
        let p = Params::parse(q.as_deref())?;
        let dot = match p.get("format") {
            None | Some("json") => false,
            Some("dot") => true,
            Some(v) => return Err(BadRequest(format!("format={v}: expected json or dot"))),
        };
        let max = p.number("max_nodes", DEFAULT_GRAPH_NODES, MAX_GRAPH_NODES)?;
        if max == 0 {
            return Err(BadRequest("max_nodes=0: must be at least 1".into()));
        }
        let findings_only = match p.get("scope") {
            None | Some("all") => false,
            Some("findings") => true,
            Some(v) => return Err(BadRequest(format!("scope={v}: expected all or findings"))),
        };
        Ok((dot, max as usize, findings_only))
    })();
    let (dot, max, findings_only) = match parsed {
        Ok(v) => v,
        Err(e) => return bad(e),
    };
    with_snapshot(&state, "graph", q.as_deref(), move |t| {
        let g = t.wait_for_graph();
        let sel = graph::select(g, t, max, findings_only);
        if dot {
            Answer::ok("text/vnd.graphviz; charset=utf-8", graph::to_dot(g, &sel))
        } else {
            Answer::ok(JSON, graph::to_json(g, &sel, t))
        }
    })
    .await
}

pub(crate) async fn metrics(State(state): State<Shared>) -> Response {
    with_snapshot(&state, "metrics", None, |t| {
        Answer::ok("text/plain; version=0.0.4; charset=utf-8", metrics::render(t))
    })
    .await
}
