#![no_main]
//! `cargo fuzz run layout_key --features libfuzzer`: see [`ray_history_fuzz::layout_key`].

libfuzzer_sys::fuzz_target!(|data: &[u8]| ray_history_fuzz::layout_key(data));
