//! What the Ray History programs share on their command line: the storage settings
//! ([`StorageArgs`]), the `check` subcommand ([`CheckCommand`]), logging set-up and exit codes
//! ([`telemetry`]). The library crates (`ray-history-storage`) stay free of CLI parsing.

// The `check` subcommand.
pub mod check;
// The storage settings flattened into every program's command line.
pub mod storage_args;
// Logging set up once for every program (`RUST_LOG`, `LOG_FORMAT=json`), and exit codes.
pub mod telemetry;

pub use check::CheckCommand;
pub use storage_args::StorageArgs;
