//! CI artifacts of a failed test: the text dump, JSON, the wait-for graph and
//! a flamegraph, under `target/parkwatch/<test name>/`.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

use parkwatch::Snapshot;

/// The environment variable that overrides where artifacts go: a failed
/// test's files are written to `$PARKWATCH_REPORT_DIR/<test name>/`.
pub const REPORT_DIR_ENV: &str = "PARKWATCH_REPORT_DIR";

/// The files written for a failed test.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Artifacts {
    /// The folder, `target/parkwatch/<test name>/` by default.
    pub dir: PathBuf,
    /// The failure report, as the test printed it.
    pub report: PathBuf,
    /// Every task, Go's `debug=2` layout.
    pub dump: PathBuf,
    /// The snapshot as JSON ([`parkwatch::dump::json`]).
    pub json: PathBuf,
    /// The wait-for graph, Graphviz DOT.
    pub graph: PathBuf,
    /// A flamegraph of the tasks' stacks, SVG.
    pub flamegraph: PathBuf,
}

impl fmt::Display for Artifacts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "parkwatch artifacts in {}:", self.dir.display())?;
        for p in [&self.report, &self.dump, &self.json, &self.graph, &self.flamegraph] {
            writeln!(f, "  {}", p.display())?;
        }
        Ok(())
    }
}

/// Where the artifacts of test `test` go: `$PARKWATCH_REPORT_DIR/<test>`, else
/// `<target dir>/parkwatch/<test>`, the target dir being `$CARGO_TARGET_DIR`,
/// else the folder holding the running test binary's `deps/` folder (found
/// by cargo's `CACHEDIR.TAG`, else `../../` from it).
///
/// ```
/// let dir = parkwatch_probe::report_dir("tests::my_test");
/// assert!(dir.ends_with(if cfg!(windows) { "tests__my_test" } else { "tests::my_test" }));
/// ```
pub fn report_dir(test: &str) -> PathBuf {
    let name = dir_name(test);
    if let Some(dir) = std::env::var_os(REPORT_DIR_ENV).filter(|d| !d.is_empty()) {
        return PathBuf::from(dir).join(name);
    }
    target_dir().join("parkwatch").join(name)
}

/// The cargo target directory this test binary was built in, as best known.
fn target_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("CARGO_TARGET_DIR").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir);
    }
    if let Ok(exe) = std::env::current_exe() {
        if let Some(dir) = exe.ancestors().skip(1).find(|d| d.join("CACHEDIR.TAG").is_file()) {
            return dir.to_path_buf();
        }
        // target/debug/deps/test-1a2b → target
        if let Some(dir) = exe.parent().and_then(Path::parent).and_then(Path::parent) {
            return dir.to_path_buf();
        }
    }
    std::env::temp_dir()
}

/// A test name as a folder name (`::` is not allowed in Windows paths).
fn dir_name(test: &str) -> String {
    let bad: &[char] = if cfg!(windows) { &['<', '>', ':', '"', '/', '\\', '|', '?', '*'] } else { &['/'] };
    if cfg!(windows) {
        test.replace("::", "__").replace(bad, "_")
    } else {
        test.replace(bad, "_")
    }
}

/// Writes the artifacts of failed test `test`: `report.txt` (`report`),
/// `dump.txt` (debug=2), `tasks.json`, `graph.dot` and `flamegraph.svg`, all
/// of `snapshot`, into [`report_dir`]`(test)`, replacing earlier ones.
///
/// ```
/// let dir = std::env::temp_dir().join("parkwatch-probe-doc");
/// std::env::set_var("PARKWATCH_REPORT_DIR", &dir);
/// let a = parkwatch_probe::write_artifacts("doc_test", &parkwatch::snapshot(), "it failed").unwrap();
/// assert_eq!(std::fs::read_to_string(&a.report).unwrap(), "it failed\n");
/// assert!(std::fs::read_to_string(&a.flamegraph).unwrap().contains("<svg"));
/// assert!(std::fs::read_to_string(&a.graph).unwrap().contains("digraph"));
/// # std::fs::remove_dir_all(&dir).unwrap();
/// ```
pub fn write_artifacts(test: &str, snapshot: &Snapshot, report: &str) -> io::Result<Artifacts> {
    let dir = report_dir(test);
    std::fs::create_dir_all(&dir)?;
    let a = Artifacts {
        report: dir.join("report.txt"),
        dump: dir.join("dump.txt"),
        json: dir.join("tasks.json"),
        graph: dir.join("graph.dot"),
        flamegraph: dir.join("flamegraph.svg"),
        dir,
    };
    let mut report = report.to_string();
    if !report.ends_with('\n') {
        report.push('\n');
    }
    std::fs::write(&a.report, report)?;
    std::fs::write(&a.dump, parkwatch::dump::text(snapshot, 2))?;
    std::fs::write(&a.json, parkwatch::dump::json(snapshot))?;
    std::fs::write(&a.graph, snapshot.wait_for_graph().to_dot())?;
    std::fs::write(&a.flamegraph, parkwatch::dump::flamegraph(snapshot))?;
    Ok(a)
}

#[cfg(test)]
mod tests {
    use super::dir_name;

    #[test]
    fn folder_names() {
        if cfg!(windows) {
            assert_eq!(dir_name("a::b"), "a__b");
        } else {
            assert_eq!(dir_name("a::b"), "a::b");
            assert_eq!(dir_name("a/b"), "a_b");
        }
    }
}
