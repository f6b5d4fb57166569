//! Random channel / select / close programs against the reference model
//! (see `common/chan_model.rs`): one operation per input byte or two.

#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../common/snapshot_gen.rs"]
mod snapshot_gen;

#[path = "../common/chan_model.rs"]
mod chan_model;

fuzz_target!(|data: &[u8]| {
    let mut src = snapshot_gen::Bytes::new(data);
    if let Err(e) = chan_model::run_program(&mut src, data.len().min(2048)) {
        panic!("{e}");
    }
});
