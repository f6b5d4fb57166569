//! The `parkwatch` binary: `dump` of a JSON file (every format), of stdin,
//! of a running server (with and without a token), its errors, and `demo`.
#![cfg(all(feature = "server", feature = "cli"))]

use std::io::{BufRead as _, Read as _, Write as _};
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_parkwatch");

/// Tasks in the dump: main, 3 receivers named "reader-N", 2 unnamed senders.
const TASKS: usize = 6;

fn tmp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("parkwatch-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

/// A JSON dump of a small program, written once.
fn dump_file() -> &'static PathBuf {
    static FILE: OnceLock<PathBuf> = OnceLock::new();
    FILE.get_or_init(|| {
        let json = std::thread::spawn(|| {
            let rt = parkwatch::Runtime::new().unwrap();
            rt.block_on(async {
                let c = parkwatch::chan::<u32>(0);
                for i in 0..3 {
                    let rx = c.receiver();
                    parkwatch::task::Builder::new().name(format!("reader-{i}")).spawn(async move { rx.recv().await });
                }
                let d = parkwatch::chan::<u32>(0);
                for i in 0..2 {
                    let tx = d.sender();
                    parkwatch::spawn(async move { tx.send(i).await });
                }
                // Let them all park.
                for _ in 0..200 {
                    let s = parkwatch::snapshot();
                    let mine: Vec<_> = s.tasks().iter().filter(|t| t.runtime == s.tasks()[0].runtime).collect();
                    if mine.iter().filter(|t| t.wait_reason.is_some()).count() == TASKS - 1 {
                        break;
                    }
                    parkwatch::time::sleep(Duration::from_millis(10)).await;
                }
                let snap = parkwatch::snapshot();
                let json = parkwatch::dump::json(&snap);
                drop((c, d));
                json
            })
            .unwrap()
        })
        .join()
        .unwrap();
        let path = tmp("dump.json");
        std::fs::write(&path, json).unwrap();
        path
    })
}

fn run(args: &[&str]) -> Output {
    Command::new(BIN).args(args).output().expect("the binary runs")
}

fn stdout_of(args: &[&str]) -> String {
    let out = run(args);
    assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn dump_file_as_text_debug2_and_debug1() {
    let file = dump_file().to_str().unwrap();
    let text = stdout_of(&["dump", file, "--format", "text"]);
    assert!(text.starts_with("goroutine "), "{text}");
    assert_eq!(text.matches("\ngoroutine ").count() + 1, TASKS, "{text}");
    assert!(text.contains("[chan receive"), "{text}");
    assert!(text.contains("[chan send"), "{text}");
    assert!(text.contains("cli::dump_file"), "the test's own frames: {text}");
    assert_eq!(stdout_of(&["dump", file]), text, "text, debug 2 by default");
    let text = stdout_of(&["dump", file, "--format", "text", "--debug", "1"]);
    assert!(text.starts_with(&format!("goroutine profile: total {TASKS}\n")), "{text}");
    assert!(text.contains("\n2 @ 0x"), "the two unnamed senders share a stack: {text}");
    assert!(text.contains("# labels: {\"name\":\"reader-0\"}"), "{text}");
}

#[test]
fn dump_file_as_json_round_trips() {
    let file = dump_file().to_str().unwrap();
    let json = stdout_of(&["dump", file, "--format", "json"]);
    let snap: parkwatch::Snapshot = serde_json::from_str(&json).expect("a Snapshot");
    assert_eq!(snap.tasks().len(), TASKS);
    assert_eq!(json, std::fs::read_to_string(file).unwrap(), "JSON in, the same JSON out");
}

#[test]
fn dump_file_as_svg_dot_folded_and_pprof() {
    let file = dump_file().to_str().unwrap();
    let svg = stdout_of(&["dump", file, "--format", "svg"]);
    assert!(svg.contains("<svg") && svg.trim_end().ends_with("</svg>"), "{svg}");
    assert!(svg.contains(&format!("parkwatch: {TASKS} tasks")), "title with totals");
    let dot = stdout_of(&["dump", file, "--format", "dot"]);
    assert!(dot.starts_with("digraph"), "{dot}");
    assert!(dot.contains("shape=box") && dot.contains("shape=ellipse"), "{dot}");
    assert!(dot.contains("reader-1"), "{dot}");
    let folded = stdout_of(&["dump", file, "--format", "folded"]);
    let total: usize = folded.lines().map(|l| l.rsplit_once(' ').unwrap().1.parse::<usize>().unwrap()).sum();
    assert_eq!(total, TASKS, "{folded}");
    let out = tmp("goroutine.pb.gz");
    let o = run(&["dump", file, "--format", "pprof", "-o", out.to_str().unwrap()]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(o.stdout.is_empty());
    let gz = std::fs::read(&out).unwrap();
    assert_eq!(&gz[..2], &[0x1f, 0x8b]);
    let mut raw = Vec::new();
    flate2::read::GzDecoder::new(gz.as_slice()).read_to_end(&mut raw).unwrap();
    assert!(raw.windows(9).any(|w| w == b"goroutine"), "sample type goroutine");
}

#[test]
fn dump_reads_stdin() {
    let json = std::fs::read(dump_file()).unwrap();
    let mut child = Command::new(BIN)
        .args(["dump", "-", "--format", "text", "--debug", "1"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(&json).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8(out.stdout).unwrap().starts_with(&format!("goroutine profile: total {TASKS}")));
}

#[test]
fn dump_errors_are_plain_messages() {
    let o = run(&["dump", "/nonexistent/dump.json"]);
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.starts_with("parkwatch: /nonexistent/dump.json:"), "{err}");
    let bad = tmp("bad.json");
    std::fs::write(&bad, "{\"not\": \"a dump\"}").unwrap();
    let o = run(&["dump", bad.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("not a parkwatch JSON dump"));
    let o = run(&["dump", dump_file().to_str().unwrap(), "--debug", "3"]);
    assert_eq!(o.status.code(), Some(2), "usage error");
    let o = run(&["dump", dump_file().to_str().unwrap(), "--format", "xml"]);
    assert_eq!(o.status.code(), Some(2), "usage error");
    let o = run(&["dump", "http://127.0.0.1:1/", "--timeout", "5s"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("GET http://127.0.0.1:1/debug/tasks.json?full=1"));
}

#[test]
fn dump_fetches_from_a_running_server() {
    let _ = dump_file();
    let server = parkwatch::server::ServerBuilder::new().port(0).no_token().start().unwrap();
    let base = format!("http://{}", server.local_addr());
    for source in [base.clone(), format!("{base}/debug/tasks"), format!("{base}/debug/tasks.json")] {
        let text = stdout_of(&["dump", &source, "--format", "text", "--debug", "1"]);
        assert!(text.starts_with("goroutine profile: total "), "{source}: {text}");
    }
    let json = stdout_of(&["dump", &base, "--format", "json"]);
    let _: parkwatch::Snapshot = serde_json::from_str(&json).unwrap();
    server.shutdown();

    let locked = parkwatch::server::ServerBuilder::new().port(0).token("t0ken").start().unwrap();
    let base = format!("http://{}", locked.local_addr());
    let o = Command::new(BIN).args(["dump", &base]).env_remove("PARKWATCH_TOKEN").output().unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("401"), "{}", String::from_utf8_lossy(&o.stderr));
    let text = stdout_of(&["dump", &base, "--token", "t0ken", "--format", "text"]);
    assert!(text.is_empty() || text.starts_with("goroutine "));
    let o =
        Command::new(BIN).args(["dump", &base, "--format", "svg"]).env("PARKWATCH_TOKEN", "t0ken").output().unwrap();
    assert!(o.status.success());
    locked.shutdown();
}

/// Starts `parkwatch ARGS` and reads the dashboard URL it prints.
fn start_demo(args: &[&str]) -> (std::process::Child, String) {
    let mut child = Command::new(BIN).args(args).stdout(Stdio::piped()).stderr(Stdio::inherit()).spawn().unwrap();
    let mut line = String::new();
    let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
    out.read_line(&mut line).unwrap();
    // Keep reading what it prints, so that its stdout stays open.
    std::thread::spawn(move || std::io::copy(&mut out, &mut std::io::sink()));
    let url = line
        .trim()
        .strip_prefix("parkwatch demo: dashboard at ")
        .unwrap_or_else(|| panic!("unexpected first line: {line:?}"))
        .to_string();
    (child, url)
}

#[test]
fn demo_serves_the_dashboard_and_prints_its_url() {
    for args in [&["demo", "--addr", "127.0.0.1:0", "--leak-after", "1s"][..], &["--addr", "127.0.0.1:0"][..]] {
        let (mut child, url) = start_demo(args);
        assert!(url.starts_with("http://127.0.0.1:") && url.ends_with("/debug/tasks"), "{url}");
        let page = ureq::get(&url).call().unwrap().body_mut().read_to_string().unwrap();
        assert!(page.contains("<title>parkwatch"));
        let json = ureq::get(&format!("{url}.json")).call().unwrap().body_mut().read_to_string().unwrap();
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert!(v["summary"]["total"].as_u64().unwrap() >= 8, "workers, dispatcher, collector, ledger, auditor, main");
        child.kill().unwrap();
        child.wait().unwrap();
    }
}

#[test]
fn help_names_the_commands() {
    let help = stdout_of(&["--help"]);
    assert!(help.contains("demo") && help.contains("dump"), "{help}");
    let help = stdout_of(&["dump", "--help"]);
    for f in ["text", "json", "svg", "dot", "--debug"] {
        assert!(help.contains(f), "{f}: {help}");
    }
}
