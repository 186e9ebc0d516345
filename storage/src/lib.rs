//! Storage for Ray History: configuration, the object key layout, and one [`Storage`] handle
//! over every backend (Azure Blob Storage first, S3, GCS, local disk, memory).
//!
//! The collector writes through [`Storage`] and the history server reads through it; neither
//! builds keys or parses configuration on its own.
//!
//! ```
//! # tokio_test_block_on(async {
//! use ray_history_storage::{Storage, StorageConfig};
//! let storage = Storage::open(&StorageConfig::memory()).await.unwrap();
//! let key = object_store::path::Path::from("metadir/probe");
//! storage.put(&key, "hello".into()).await.unwrap();
//! assert_eq!(&storage.get(&key).await.unwrap()[..], b"hello");
//! # });
//! # fn tokio_test_block_on<F: std::future::Future>(f: F) -> F::Output {
//! #     tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(f)
//! # }
//! ```

// Opening each backend (Azure Blob Storage, S3, GCS, local disk, memory); their errors mapped.
pub mod backend;
// An end-to-end probe of the configured storage (behind every program's `check`).
pub mod check;
// Storage configuration: plain data, and its settings from flags, environment, config file and URLs.
pub mod config;
// The crate's errors; messages name the setting or key and never carry secrets.
pub mod error;
// Typed builders and parsers for every object key (`log/…`, `metadir/…`).
pub mod layout;
// The JSON documents under `metadir/` (session and node metadata).
pub mod metadata;
// Keeping secrets out of logs, errors and debug output.
pub mod redact;
// Retrying transient storage errors with exponential backoff and jitter.
pub mod retry;
// `Storage`: one handle over every backend.
pub mod store;

pub use config::{StorageConfig, StorageKind};
pub use error::{ConfigError, Error, Result};
pub use store::Storage;
