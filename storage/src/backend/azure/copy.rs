//! Waiting for a server-side copy to finish. Azure may answer Copy Blob before the bytes are
//! in place (`x-ms-copy-status: pending`); `object_store` returns then, so a caller that
//! deletes the source or trusts the destination next could lose bytes. A copy is awaited by
//! reading the destination's copy status until it is no longer pending.

use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};

use http::HeaderMap;
use object_store::path::Path;

use super::AzureBlobs;
use crate::error::{Error, Result};

/// The longest wait for one pending copy (same-account copies take seconds at most).
const COPY_WAIT: Duration = Duration::from_secs(120);

/// Where a copy into a blob stands, from its properties.
#[derive(Debug, PartialEq)]
enum CopyState {
    /// Done, or the blob was never copied (no `x-ms-copy-status`).
    Done,
    Pending,
    /// Aborted or failed, with the service's description.
    Failed(String),
}

fn copy_state(headers: &HeaderMap) -> CopyState {
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    match text("x-ms-copy-status") {
        None | Some("success") => CopyState::Done,
        Some("pending") => CopyState::Pending,
        Some(status) => CopyState::Failed(format!(
            "{status}: {}",
            text("x-ms-copy-status-description").unwrap_or("no description")
        )),
    }
}

/// Why one look at a copy did not end the wait.
enum NotDone {
    Pending,
    Failed(Error),
}

impl AzureBlobs {
    /// Returns once the copy into `key` has finished; a failed or aborted copy is an error.
    pub async fn await_copy(&self, key: &Path) -> Result<()> {
        let blob = self.blob(key);
        let look = || async {
            let answer = self
                .container
                .blob_properties(&blob)
                .await
                .map_err(NotDone::Failed)?;
            if !answer.status.is_success() {
                return Err(NotDone::Failed(answer.error("copy", key.as_ref())));
            }
            match copy_state(&answer.headers) {
                CopyState::Done => Ok(()),
                CopyState::Pending => Err(NotDone::Pending),
                CopyState::Failed(why) => Err(NotDone::Failed(Error::backend(
                    "copy",
                    key.as_ref(),
                    why,
                    false,
                ))),
            }
        };
        let schedule = ExponentialBuilder::default()
            .with_min_delay(Duration::from_millis(50))
            .with_max_delay(Duration::from_secs(2))
            .with_total_delay(Some(COPY_WAIT))
            .without_max_times();
        // Only a pending copy is looked at again; other failures are the caller's to retry.
        look.retry(schedule)
            .sleep(tokio::time::sleep)
            .when(|e| matches!(e, NotDone::Pending))
            .notify(|_, _| tracing::debug!(%key, "copy pending, waiting"))
            .await
            .map_err(|e| match e {
                NotDone::Failed(e) => e,
                NotDone::Pending => {
                    let why = format!("still pending after {}s", COPY_WAIT.as_secs());
                    Error::backend("copy", key.as_ref(), why, true)
                }
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        pairs
            .iter()
            .map(|(k, v)| (http::HeaderName::from_static(k), v.parse().unwrap()))
            .collect()
    }

    #[test]
    fn copy_states_from_the_blobs_properties() {
        assert_eq!(copy_state(&headers(&[])), CopyState::Done);
        assert_eq!(
            copy_state(&headers(&[("x-ms-copy-status", "success")])),
            CopyState::Done
        );
        assert_eq!(
            copy_state(&headers(&[("x-ms-copy-status", "pending")])),
            CopyState::Pending
        );
        assert_eq!(
            copy_state(&headers(&[
                ("x-ms-copy-status", "failed"),
                ("x-ms-copy-status-description", "500 InternalError")
            ])),
            CopyState::Failed("failed: 500 InternalError".into())
        );
        assert_eq!(
            copy_state(&headers(&[("x-ms-copy-status", "aborted")])),
            CopyState::Failed("aborted: no description".into())
        );
    }
}
