#![no_main]
//! `cargo fuzz run range_header --features libfuzzer`: see [`ray_history_fuzz::range_header`].

libfuzzer_sys::fuzz_target!(|data: &[u8]| ray_history_fuzz::range_header(data));
