//! History server: reads the Ray History storage layout back and serves it over HTTP — a
//! catalog of sessions, the Ray dashboard API of every stored session, and its logs.
//!
//! Events are parsed once into compact typed state ([`model`]); a finished session's state is
//! stored as its [`session_index`], whose task rows are read from a local copy a block at a
//! time ([`model::table`]); loaded sessions are cached within a byte budget ([`cache`]), and logs are
//! read with ranged GETs ([`log_reader`]).

pub mod api;
pub mod auth;
pub mod cache;
pub mod catalog;
pub mod config;
pub mod events;
pub mod ids;
pub mod index_ahead;
pub mod loader;
pub mod log_reader;
pub mod metrics;
pub mod model;
pub mod response;
pub mod retention;
pub mod server;
pub mod session_index;
pub mod ui;
pub mod units;

/// Errors of the history server library.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Storage configuration or access failed.
    #[error(transparent)]
    Storage(#[from] ray_history_storage::Error),
    /// The storage configuration is unusable.
    #[error(transparent)]
    Config(#[from] ray_history_storage::ConfigError),
    /// A stored name does not fit the layout.
    #[error("layout: {0}")]
    Layout(String),
    /// The request is malformed (bad name, path traversal, bad parameter).
    #[error("{0}")]
    BadRequest(String),
    /// The answer would pass one of the documented per-request limits (the message names it).
    #[error("{0}")]
    TooLarge(String),
    /// The requested thing does not exist.
    #[error("{0}")]
    NotFound(String),
    /// `--ray-dashboard-dir` is not Ray's dashboard build (the message names the flag).
    #[error(transparent)]
    RayDashboardDir(std::io::Error),
    /// The listen address cannot be bound.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// The address.
        addr: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A parse worker stopped before answering (it panicked).
    #[error("a session load worker stopped unexpectedly")]
    Worker,
    /// A setting is unusable (the message names it).
    #[error("{0}")]
    Setting(String),
    /// An authentication setting is unusable (the message names it).
    #[error("{0}")]
    Auth(String),
    /// Serving failed.
    #[error("server: {0}")]
    Io(#[source] std::io::Error),
}

/// Result with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
