//! `make fuzz` (`cargo fuzz run events`): see [`ray_history_fuzz::events`].
#![cfg_attr(fuzzing, no_main)]

#[cfg(fuzzing)]
libfuzzer_sys::fuzz_target!(|data: &[u8]| ray_history_fuzz::events(data));

/// Outside `cargo fuzz` there is nothing to run: `make test` replays the corpus instead.
#[cfg(not(fuzzing))]
fn main() {
    eprintln!("run this target with `make fuzz` (cargo fuzz, nightly)");
}
