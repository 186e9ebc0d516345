//! `make fuzz` (`cargo fuzz run range_header`): see [`ray_history_fuzz::range_header`].
#![cfg_attr(fuzzing, no_main)]

#[cfg(fuzzing)]
libfuzzer_sys::fuzz_target!(|data: &[u8]| ray_history_fuzz::range_header(data));

/// Outside `cargo fuzz` there is nothing to run: `make test` replays the corpus instead.
#[cfg(not(fuzzing))]
fn main() {
    eprintln!("run this target with `make fuzz` (cargo fuzz, nightly)");
}
