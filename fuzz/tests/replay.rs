//! The short fuzz run of `make test`: every target on its kept corpus and regression inputs
//! (`fuzz/corpus/<target>/`, `fuzz/regressions/<target>/`), then on a fixed number of seeded
//! mutations of them, so a run is repeatable and its cost is bounded. `make fuzz` runs the same
//! targets under libFuzzer for longer.

use std::path::PathBuf;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Mutated inputs per target.
const MUTATIONS: usize = 20_000;

fn inputs(target: &str) -> Vec<Vec<u8>> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let mut out = Vec::new();
    for dir in ["corpus", "regressions"] {
        let Ok(entries) = std::fs::read_dir(root.join(dir).join(target)) else {
            continue;
        };
        for entry in entries.flatten() {
            out.push(std::fs::read(entry.path()).unwrap());
        }
    }
    assert!(!out.is_empty(), "no corpus for {target}");
    out
}

/// A libFuzzer-like mutation: flip, insert, delete or duplicate bytes, or splice two inputs.
fn mutate(rng: &mut StdRng, seeds: &[Vec<u8>]) -> Vec<u8> {
    let mut data = seeds[rng.random_range(0..seeds.len())].clone();
    for _ in 0..rng.random_range(1..8) {
        let at = rng.random_range(0..=data.len());
        match rng.random_range(0..6) {
            0 if at < data.len() => data[at] ^= 1 << rng.random_range(0..8),
            1 => data.insert(at, rng.random()),
            2 if at < data.len() => {
                data.remove(at);
            }
            3 => {
                let magic: &[u8] = [
                    &b"\""[..],
                    b"{",
                    b"}",
                    b"[",
                    b"]",
                    b"\n",
                    b":",
                    b"-",
                    b"/",
                    b"..",
                    b";",
                    b"=",
                    b"\\u0000",
                    b"18446744073709551615",
                    b"-1",
                    b"null",
                ][rng.random_range(0..16)];
                data.splice(at..at, magic.iter().copied());
            }
            4 if !data.is_empty() => {
                let end = rng.random_range(at..=data.len().min(at + 64));
                let copy = data[at..end].to_vec();
                data.splice(at..at, copy);
            }
            _ => {
                let other = &seeds[rng.random_range(0..seeds.len())];
                let cut = rng.random_range(0..=other.len());
                data.truncate(at);
                data.extend_from_slice(&other[cut..]);
            }
        }
    }
    data
}

fn run(target: &str, f: fn(&[u8])) {
    let seeds = inputs(target);
    for seed in &seeds {
        f(seed);
    }
    let mut rng = StdRng::seed_from_u64(0x5eed);
    for _ in 0..MUTATIONS {
        f(&mutate(&mut rng, &seeds));
    }
}

#[test]
fn events() {
    run("events", ray_history_fuzz::events);
}

#[test]
fn layout_key() {
    run("layout_key", ray_history_fuzz::layout_key);
}

#[test]
fn connection_string() {
    run("connection_string", ray_history_fuzz::connection_string);
}

#[test]
fn range_header() {
    run("range_header", ray_history_fuzz::range_header);
}

#[test]
fn log_path() {
    run("log_path", ray_history_fuzz::log_path);
}
