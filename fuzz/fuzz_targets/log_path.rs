#![no_main]
//! `cargo fuzz run log_path --features libfuzzer`: see [`ray_history_fuzz::log_path`].

libfuzzer_sys::fuzz_target!(|data: &[u8]| ray_history_fuzz::log_path(data));
