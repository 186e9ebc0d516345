#![no_main]
//! `cargo fuzz run connection_string --features libfuzzer`: see [`ray_history_fuzz::connection_string`].

libfuzzer_sys::fuzz_target!(|data: &[u8]| ray_history_fuzz::connection_string(data));
