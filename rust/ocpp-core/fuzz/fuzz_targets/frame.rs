//! Fuzz the frame parser and the session: `cargo +nightly fuzz run frame` in rust/ocpp-core.
//! The input format and the invariants are described in `../harness.rs`.

#![no_main]

use libfuzzer_sys::fuzz_target;

include!("../harness.rs");

fuzz_target!(|data: &[u8]| {
    run_frames(data);
});
