//! SIGTERM and SIGINT: the engine stops watching, flushes every file and event, finalises the
//! metadata and the process exits 0. In Kubernetes the collector runs as a native sidecar, so
//! the kubelet sends it SIGTERM only after the Ray container has stopped.

use tokio::signal::unix::{SignalKind, signal};
use tokio_util::sync::CancellationToken;

use crate::{Error, Result};

/// A token cancelled at the first SIGTERM or SIGINT.
pub fn on_signal() -> Result<CancellationToken> {
    let token = CancellationToken::new();
    let mut term = signal(SignalKind::terminate()).map_err(Error::io("SIGTERM handler"))?;
    let mut int = signal(SignalKind::interrupt()).map_err(Error::io("SIGINT handler"))?;
    let cancel = token.clone();
    tokio::spawn(async move {
        let name = tokio::select! {
            _ = term.recv() => "SIGTERM",
            _ = int.recv() => "SIGINT",
        };
        tracing::info!(signal = name, "stopping: final flush");
        cancel.cancel();
    });
    Ok(token)
}
