#![no_main]
//! `cargo fuzz run events --features libfuzzer`: see [`ray_history_fuzz::events`].

libfuzzer_sys::fuzz_target!(|data: &[u8]| ray_history_fuzz::events(data));
