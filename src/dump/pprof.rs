//! The goroutine profile as gzipped `perftools.profiles.Profile` protobuf,
//! what `go tool pprof` reads (Go's `debug=0`).

use std::collections::HashMap;
use std::io::Write as _;
use std::sync::Arc;
use std::time::UNIX_EPOCH;

use flate2::write::GzEncoder;
use flate2::Compression;
use prost::Message as _;

use super::common::{self, call_pc, is_inlined, Group};
use crate::snapshot::{Frame, Snapshot};

/// The snapshot as Go's binary goroutine profile: gzipped `profile.proto`
/// with sample type `goroutine/count`, one sample per distinct stack (and name
/// label) valued by its number of tasks, readable by `go tool pprof`.
///
/// Inlined frames become extra lines of one location, as Go does; a task
/// without a stack gets one synthetic location at its park (else spawn) site.
///
/// ```
/// let s = parkwatch::snapshot();
/// let gz = parkwatch::dump::pprof(&s);
/// assert_eq!(&gz[..2], &[0x1f, 0x8b]); // gzip magic
/// ```
pub fn pprof(s: &Snapshot) -> Vec<u8> {
    gzip(&profile(s).encode_to_vec())
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = GzEncoder::new(Vec::with_capacity(bytes.len() / 2 + 64), Compression::default());
    enc.write_all(bytes).expect("writing to a Vec cannot fail");
    enc.finish().expect("writing to a Vec cannot fail")
}

/// The profile message of a snapshot.
pub(crate) fn profile(s: &Snapshot) -> proto::Profile {
    let mut b = Builder::default();
    b.strings.intern("");
    let goroutine = b.strings.intern("goroutine");
    let count = b.strings.intern("count");
    let name_key = b.strings.intern("name");
    let exe = std::env::current_exe().map(|p| p.display().to_string()).unwrap_or_default();
    let mapping = proto::Mapping {
        id: 1,
        memory_start: 0,
        memory_limit: u64::MAX,
        file_offset: 0,
        filename: b.strings.intern(&exe),
        build_id: 0,
        has_functions: true,
        has_filenames: true,
        has_line_numbers: true,
        has_inline_frames: true,
    };
    let samples = common::groups(s).iter().map(|g| b.sample(g, name_key)).collect();
    proto::Profile {
        sample_type: vec![proto::ValueType { r#type: goroutine, unit: count }],
        sample: samples,
        mapping: vec![mapping],
        location: b.locations,
        function: b.functions,
        string_table: b.strings.table,
        time_nanos: s.taken_at.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos() as i64),
        period_type: Some(proto::ValueType { r#type: goroutine, unit: count }),
        period: 1,
        ..Default::default()
    }
}

/// The string table: `""` first, each string once.
#[derive(Default)]
struct Strings {
    table: Vec<String>,
    index: HashMap<String, i64>,
}

impl Strings {
    fn intern(&mut self, s: &str) -> i64 {
        if let Some(&i) = self.index.get(s) {
            return i;
        }
        let i = self.table.len() as i64;
        self.table.push(s.to_owned());
        self.index.insert(s.to_owned(), i);
        i
    }
}

/// Interns functions and locations while samples are added.
#[derive(Default)]
struct Builder {
    strings: Strings,
    functions: Vec<proto::Function>,
    function_ids: HashMap<(Arc<str>, Option<Arc<str>>), u64>,
    locations: Vec<proto::Location>,
    location_ids: HashMap<(u64, Vec<proto::Line>), u64>,
    /// Next fake address for frames without a pc (made from a source location).
    next_synthetic: u64,
}

impl Builder {
    fn sample(&mut self, g: &Group<'_>, name_key: i64) -> proto::Sample {
        let label = g.name.map(|n| proto::Label { key: name_key, str: self.strings.intern(n), ..Default::default() });
        proto::Sample {
            location_id: self.location_ids_of(&g.frames),
            value: vec![g.tasks.len() as i64],
            label: label.into_iter().collect(),
        }
    }

    /// One location per physical frame (its inlined callers' lines inside),
    /// innermost first.
    fn location_ids_of(&mut self, frames: &[Frame]) -> Vec<u64> {
        let mut ids = Vec::new();
        let mut lines = Vec::new();
        for (i, f) in frames.iter().enumerate() {
            lines.push(proto::Line { function_id: self.function_id(f), line: i64::from(f.line.unwrap_or(0)) });
            if !is_inlined(frames, i) {
                ids.push(self.location_id(call_pc(f) as u64, std::mem::take(&mut lines)));
            }
        }
        ids
    }

    fn location_id(&mut self, address: u64, lines: Vec<proto::Line>) -> u64 {
        if let Some(&id) = self.location_ids.get(&(address, lines.clone())) {
            return id;
        }
        let id = self.locations.len() as u64 + 1;
        let shown = if address == 0 {
            self.next_synthetic += 1;
            self.next_synthetic
        } else {
            address
        };
        self.locations.push(proto::Location {
            id,
            mapping_id: 1,
            address: shown,
            line: lines.clone(),
            is_folded: false,
        });
        self.location_ids.insert((address, lines), id);
        id
    }

    fn function_id(&mut self, f: &Frame) -> u64 {
        let key = (Arc::clone(&f.function), f.file.clone());
        if let Some(&id) = self.function_ids.get(&key) {
            return id;
        }
        let id = self.functions.len() as u64 + 1;
        let name = self.strings.intern(&f.function);
        let filename = self.strings.intern(f.file.as_deref().unwrap_or(""));
        // `system_name` stays empty: pprof would otherwise take the name for a
        // C++ symbol and "simplify" it (dropping `<...>` and `(...)` groups).
        self.functions.push(proto::Function { id, name, system_name: 0, filename, start_line: 0 });
        self.function_ids.insert(key, id);
        id
    }
}

/// `perftools.profiles` messages (google/pprof `proto/profile.proto`), by hand
/// with prost's derive: no protoc needed.
pub(crate) mod proto {
    /// A profile: samples of stacks, with their locations and functions.
    #[derive(Clone, PartialEq, prost::Message)]
    pub(crate) struct Profile {
        #[prost(message, repeated, tag = "1")]
        pub(crate) sample_type: Vec<ValueType>,
        #[prost(message, repeated, tag = "2")]
        pub(crate) sample: Vec<Sample>,
        #[prost(message, repeated, tag = "3")]
        pub(crate) mapping: Vec<Mapping>,
        #[prost(message, repeated, tag = "4")]
        pub(crate) location: Vec<Location>,
        #[prost(message, repeated, tag = "5")]
        pub(crate) function: Vec<Function>,
        #[prost(string, repeated, tag = "6")]
        pub(crate) string_table: Vec<String>,
        #[prost(int64, tag = "7")]
        pub(crate) drop_frames: i64,
        #[prost(int64, tag = "8")]
        pub(crate) keep_frames: i64,
        #[prost(int64, tag = "9")]
        pub(crate) time_nanos: i64,
        #[prost(int64, tag = "10")]
        pub(crate) duration_nanos: i64,
        #[prost(message, optional, tag = "11")]
        pub(crate) period_type: Option<ValueType>,
        #[prost(int64, tag = "12")]
        pub(crate) period: i64,
        #[prost(int64, repeated, tag = "13")]
        pub(crate) comment: Vec<i64>,
        #[prost(int64, tag = "14")]
        pub(crate) default_sample_type: i64,
    }

    /// A value's type and unit, as string-table indices.
    #[derive(Clone, PartialEq, prost::Message)]
    pub(crate) struct ValueType {
        #[prost(int64, tag = "1")]
        pub(crate) r#type: i64,
        #[prost(int64, tag = "2")]
        pub(crate) unit: i64,
    }

    /// One stack (leaf first) and its values.
    #[derive(Clone, PartialEq, prost::Message)]
    pub(crate) struct Sample {
        #[prost(uint64, repeated, tag = "1")]
        pub(crate) location_id: Vec<u64>,
        #[prost(int64, repeated, tag = "2")]
        pub(crate) value: Vec<i64>,
        #[prost(message, repeated, tag = "3")]
        pub(crate) label: Vec<Label>,
    }

    /// A key/value label of a sample.
    #[derive(Clone, PartialEq, prost::Message)]
    pub(crate) struct Label {
        #[prost(int64, tag = "1")]
        pub(crate) key: i64,
        #[prost(int64, tag = "2")]
        pub(crate) str: i64,
        #[prost(int64, tag = "3")]
        pub(crate) num: i64,
        #[prost(int64, tag = "4")]
        pub(crate) num_unit: i64,
    }

    /// A mapped binary.
    #[derive(Clone, PartialEq, prost::Message)]
    pub(crate) struct Mapping {
        #[prost(uint64, tag = "1")]
        pub(crate) id: u64,
        #[prost(uint64, tag = "2")]
        pub(crate) memory_start: u64,
        #[prost(uint64, tag = "3")]
        pub(crate) memory_limit: u64,
        #[prost(uint64, tag = "4")]
        pub(crate) file_offset: u64,
        #[prost(int64, tag = "5")]
        pub(crate) filename: i64,
        #[prost(int64, tag = "6")]
        pub(crate) build_id: i64,
        #[prost(bool, tag = "7")]
        pub(crate) has_functions: bool,
        #[prost(bool, tag = "8")]
        pub(crate) has_filenames: bool,
        #[prost(bool, tag = "9")]
        pub(crate) has_line_numbers: bool,
        #[prost(bool, tag = "10")]
        pub(crate) has_inline_frames: bool,
    }

    /// A program address and its source lines (inlined functions first).
    #[derive(Clone, PartialEq, prost::Message)]
    pub(crate) struct Location {
        #[prost(uint64, tag = "1")]
        pub(crate) id: u64,
        #[prost(uint64, tag = "2")]
        pub(crate) mapping_id: u64,
        #[prost(uint64, tag = "3")]
        pub(crate) address: u64,
        #[prost(message, repeated, tag = "4")]
        pub(crate) line: Vec<Line>,
        #[prost(bool, tag = "5")]
        pub(crate) is_folded: bool,
    }

    /// A source line in a function.
    #[derive(Clone, PartialEq, Eq, Hash, prost::Message)]
    pub(crate) struct Line {
        #[prost(uint64, tag = "1")]
        pub(crate) function_id: u64,
        #[prost(int64, tag = "2")]
        pub(crate) line: i64,
    }

    /// A function: name and file, as string-table indices.
    #[derive(Clone, PartialEq, prost::Message)]
    pub(crate) struct Function {
        #[prost(uint64, tag = "1")]
        pub(crate) id: u64,
        #[prost(int64, tag = "2")]
        pub(crate) name: i64,
        #[prost(int64, tag = "3")]
        pub(crate) system_name: i64,
        #[prost(int64, tag = "4")]
        pub(crate) filename: i64,
        #[prost(int64, tag = "5")]
        pub(crate) start_line: i64,
    }
}

#[cfg(test)]
mod tests {
    use std::io::Read as _;

    use super::super::common::fixtures::*;
    use super::*;
    use crate::snapshot::WaitReason;

    fn decode(gz: &[u8]) -> proto::Profile {
        let mut raw = Vec::new();
        flate2::read::GzDecoder::new(gz).read_to_end(&mut raw).expect("gzip");
        proto::Profile::decode(raw.as_slice()).expect("protobuf")
    }

    /// Function names of a sample, leaf first, inlined lines expanded.
    fn names(p: &proto::Profile, s: &proto::Sample) -> Vec<String> {
        let mut out = Vec::new();
        for id in &s.location_id {
            let loc = p.location.iter().find(|l| l.id == *id).expect("location");
            for line in &loc.line {
                let f = p.function.iter().find(|f| f.id == line.function_id).expect("function");
                out.push(p.string_table[f.name as usize].clone());
            }
        }
        out
    }

    fn snapshot() -> Snapshot {
        let inlined = vec![
            frame("app::helper", "/src/app/lib.rs", 5, 0x7010, 0x7000),
            frame("app::caller", "/src/app/lib.rs", 9, 0x7010, 0x7000),
            frame("app::run::{{closure}}", "/src/app/main.rs", 40, 0x5000_2044, 0x5000_2000),
        ];
        let mut named = parked(8, WaitReason::ChanReceive, 0, worker_stack());
        named.name = Some("worker-3".into());
        Snapshot::from_tasks(vec![
            parked(3, WaitReason::ChanReceive, 0, worker_stack()),
            parked(4, WaitReason::ChanReceive, 0, worker_stack()),
            parked(5, WaitReason::ChanReceive, 0, worker_stack()),
            parked(6, WaitReason::MutexLock, 0, inlined),
            named,
            task(1),
        ])
    }

    #[test]
    fn decodes_back_with_counts_names_and_types() {
        let p = decode(&pprof(&snapshot()));
        let st = |i: i64| p.string_table[i as usize].as_str();
        assert_eq!(p.string_table[0], "");
        assert_eq!((st(p.sample_type[0].r#type), st(p.sample_type[0].unit)), ("goroutine", "count"));
        let period = p.period_type.as_ref().expect("period type");
        assert_eq!((st(period.r#type), st(period.unit), p.period), ("goroutine", "count", 1));
        assert!(p.time_nanos > 0);
        let got: Vec<(i64, Vec<String>)> = p.sample.iter().map(|s| (s.value[0], names(&p, s))).collect();
        let worker = vec!["app::worker::{{closure}}".to_owned(), "app::run::{{closure}}".to_owned()];
        assert_eq!(got[0], (3, worker.clone()));
        assert_eq!(got[1].0, 1);
        assert_eq!(got[1].1, ["?"]);
        assert_eq!(got[2].1, ["app::helper", "app::caller", "app::run::{{closure}}"]);
        assert_eq!(got[3], (1, worker));
        assert_eq!(p.sample.iter().map(|s| s.value[0]).sum::<i64>(), 6, "every task counted");
        // The named group carries Go's label.
        let label = &p.sample[3].label[0];
        assert_eq!((st(label.key), st(label.str)), ("name", "worker-3"));
        assert!(p.sample[0].label.is_empty());
    }

    #[test]
    fn locations_are_shared_unique_and_inlining_is_one_location() {
        let p = decode(&pprof(&snapshot()));
        let ids: std::collections::HashSet<u64> = p.location.iter().map(|l| l.id).collect();
        assert_eq!(ids.len(), p.location.len(), "unique ids");
        assert!(p.location.iter().all(|l| l.id != 0 && l.address != 0 && l.mapping_id == 1));
        // The inlined pair is one location with two lines at the call pc.
        let inl = p.location.iter().find(|l| l.line.len() == 2).expect("inlined location");
        assert_eq!(inl.address, 0x700f);
        // The worker stack appears in two samples but its locations once.
        assert_eq!(p.sample[0].location_id, p.sample[3].location_id);
        // One function per distinct (name, file): worker, run (shared), helper, caller, "?".
        assert_eq!(p.function.len(), 5);
    }

    #[test]
    fn empty_snapshot_is_a_valid_profile() {
        let p = decode(&pprof(&Snapshot::from_tasks(Vec::new())));
        assert!(p.sample.is_empty() && p.location.is_empty());
        assert_eq!(p.sample_type.len(), 1);
    }
}
