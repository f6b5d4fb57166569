//! The `parkwatch` command.
//!
//! - `parkwatch` or `parkwatch demo [--addr 127.0.0.1:6060]`: runs the demo
//!   service (healthy workers, a leaking fan-out, a channel+lock deadlock)
//!   and serves its dashboard.
//! - `parkwatch dump URL|FILE --format text|json|svg|dot|folded|pprof [--debug 1|2]`:
//!   fetches the tasks of a running server (`http://host:port`, the page's
//!   URL, or a `/debug/tasks.json` URL) or reads a JSON dump (`-` for stdin),
//!   and writes it in the format asked.

use std::io::{Read as _, Write as _};
use std::net::ToSocketAddrs as _;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Parser, Debug)]
#[command(
    name = "parkwatch",
    version,
    about = "Go's goroutine dumps, deadlock and leak detection for Rust: a demo and a dump tool",
    args_conflicts_with_subcommands = true
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// Options of the demo, when no command is given.
    #[command(flatten)]
    demo: DemoArgs,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the demo service and serve its dashboard (the default).
    Demo(DemoArgs),
    /// Fetch a dump from a running server, or convert a JSON dump file.
    Dump(DumpArgs),
}

#[derive(Args, Debug)]
struct DemoArgs {
    /// Address to serve the dashboard on (port 0: any free port).
    #[arg(long, default_value = "127.0.0.1:6060")]
    addr: String,
    /// How long a task must stay parked to be a leak suspect (e.g. 5s, 500ms, 2m).
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    leak_after: Duration,
    /// Require `Authorization: Bearer TOKEN` (default: $PARKWATCH_TOKEN, if set).
    #[arg(long)]
    token: Option<String>,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
enum Format {
    /// Go's goroutine profile text (`--debug 1`: counts per stack, `--debug 2`: every task).
    Text,
    /// The snapshot as JSON (what `dump FILE` reads back).
    Json,
    /// A flame graph (SVG).
    Svg,
    /// The wait-for graph (Graphviz DOT).
    Dot,
    /// Collapsed stacks, one `a;b;c N` line per stack.
    Folded,
    /// Gzipped pprof protobuf, for `go tool pprof`.
    Pprof,
}

#[derive(Args, Debug)]
struct DumpArgs {
    /// A server (`http://127.0.0.1:6060`, its page or its /debug/tasks.json URL) or a JSON dump file (`-`: stdin).
    source: String,
    /// Output format.
    #[arg(long, short, value_enum, default_value_t = Format::Text)]
    format: Format,
    /// Text layout: 1 (counts per distinct stack) or 2 (every task, Go's crash layout).
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u8).range(1..=2))]
    debug: u8,
    /// Bearer token for the server (default: $PARKWATCH_TOKEN).
    #[arg(long)]
    token: Option<String>,
    /// Write to this file instead of stdout.
    #[arg(long, short)]
    output: Option<std::path::PathBuf>,
    /// Give up on the server after this long.
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    timeout: Duration,
}

/// `500ms`, `5s`, `2m`, `1h`, or a number of seconds.
fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, unit) = match s.find(|c: char| !(c.is_ascii_digit() || c == '.')) {
        Some(i) => s.split_at(i),
        None => (s, "s"),
    };
    let n: f64 = num.parse().map_err(|_| format!("{s:?} is not a duration (e.g. 5s, 500ms, 2m)"))?;
    let secs = match unit.trim() {
        "ms" => n / 1000.0,
        "s" | "" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        u => return Err(format!("unknown unit {u:?} in {s:?} (ms, s, m, h)")),
    };
    Duration::try_from_secs_f64(secs).map_err(|e| format!("{s:?}: {e}"))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        None => demo(cli.demo),
        Some(Command::Demo(args)) => demo(args),
        Some(Command::Dump(args)) => dump(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("parkwatch: {e}");
            ExitCode::FAILURE
        }
    }
}

fn demo(args: DemoArgs) -> Result<(), String> {
    let addr = args
        .addr
        .to_socket_addrs()
        .map_err(|e| format!("--addr {}: {e}", args.addr))?
        .next()
        .ok_or_else(|| format!("--addr {}: no address", args.addr))?;
    let opts =
        parkwatch::demo::DemoOptions { addr, token: args.token, leak_after: args.leak_after, ..Default::default() };
    parkwatch::demo::run(opts).map_err(|e| format!("demo: cannot serve on {addr}: {e}"))
}

/// The `/debug/tasks.json?full=1` URL of a server URL.
fn snapshot_url(source: &str) -> String {
    let (base, query) = source.split_once('?').unwrap_or((source, ""));
    let base = base.trim_end_matches('/');
    let path = if base.ends_with("/debug/tasks.json") {
        base.to_string()
    } else if base.ends_with("/debug/tasks") {
        format!("{base}.json")
    } else {
        format!("{base}/debug/tasks.json")
    };
    let mut params: Vec<&str> = query.split('&').filter(|p| !p.is_empty() && !p.starts_with("full=")).collect();
    params.push("full=1");
    format!("{path}?{}", params.join("&"))
}

fn fetch(source: &str, token: Option<String>, timeout: Duration) -> Result<String, String> {
    if source.starts_with("https://") {
        return Err("https is not supported by parkwatch's client (the server binds loopback; use http)".into());
    }
    let url = snapshot_url(source);
    let agent: ureq::Agent =
        ureq::Agent::config_builder().http_status_as_error(false).timeout_global(Some(timeout)).build().into();
    let mut req = agent.get(&url);
    if let Some(t) = token.or_else(|| std::env::var("PARKWATCH_TOKEN").ok()).filter(|t| !t.is_empty()) {
        req = req.header("Authorization", &format!("Bearer {t}"));
    }
    let mut resp = req.call().map_err(|e| format!("GET {url}: {e}"))?;
    let status = resp.status();
    let body = resp
        .body_mut()
        .with_config()
        .limit(4 << 30)
        .read_to_string()
        .map_err(|e| format!("GET {url}: reading the answer: {e}"))?;
    if !status.is_success() {
        return Err(format!("GET {url}: {status}: {}", body.trim()));
    }
    Ok(body)
}

fn dump(args: DumpArgs) -> Result<(), String> {
    let json = if args.source.starts_with("http://") || args.source.starts_with("https://") {
        fetch(&args.source, args.token, args.timeout)?
    } else if args.source == "-" {
        let mut s = String::new();
        std::io::stdin().read_to_string(&mut s).map_err(|e| format!("reading stdin: {e}"))?;
        s
    } else {
        std::fs::read_to_string(&args.source).map_err(|e| format!("{}: {e}", args.source))?
    };
    let snap: parkwatch::Snapshot = serde_json::from_str(&json).map_err(|e| {
        format!("{}: not a parkwatch JSON dump ({e}); make one with `parkwatch dump URL --format json`", args.source)
    })?;
    let out: Vec<u8> = match args.format {
        Format::Text => parkwatch::dump::text(&snap, args.debug).into_bytes(),
        Format::Json => parkwatch::dump::json(&snap).into_bytes(),
        Format::Svg => parkwatch::dump::flamegraph(&snap).into_bytes(),
        Format::Dot => snap.wait_for_graph().to_dot().into_bytes(),
        Format::Folded => parkwatch::dump::folded(&snap).into_bytes(),
        Format::Pprof => parkwatch::dump::pprof(&snap),
    };
    match &args.output {
        Some(path) => std::fs::write(path, &out).map_err(|e| format!("{}: {e}", path.display())),
        None => {
            let mut stdout = std::io::stdout().lock();
            stdout.write_all(&out).and_then(|()| stdout.flush()).map_err(|e| format!("writing: {e}"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("5s"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("3"), Ok(Duration::from_secs(3)));
        assert!(parse_duration("3 parsecs").is_err());
        assert!(parse_duration("fast").is_err());
    }

    #[test]
    fn snapshot_urls() {
        let want = "http://h:1/debug/tasks.json?full=1";
        assert_eq!(snapshot_url("http://h:1"), want);
        assert_eq!(snapshot_url("http://h:1/"), want);
        assert_eq!(snapshot_url("http://h:1/debug/tasks"), want);
        assert_eq!(snapshot_url("http://h:1/debug/tasks.json"), want);
        assert_eq!(snapshot_url("http://h:1/debug/tasks.json?full=0&x=1"), "http://h:1/debug/tasks.json?x=1&full=1");
    }

    #[test]
    fn cli_parses() {
        Cli::command().debug_assert();
        let c = Cli::try_parse_from(["parkwatch", "dump", "f.json", "--format", "svg"]).unwrap();
        assert!(matches!(c.command, Some(Command::Dump(DumpArgs { format: Format::Svg, .. }))));
        assert!(Cli::try_parse_from(["parkwatch", "dump", "f.json", "--debug", "3"]).is_err());
        let c = Cli::try_parse_from(["parkwatch", "--addr", "127.0.0.1:0"]).unwrap();
        assert!(c.command.is_none() && c.demo.addr == "127.0.0.1:0");
    }

    use clap::CommandFactory as _;
}
