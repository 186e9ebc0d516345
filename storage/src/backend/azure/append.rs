//! Append blobs: the collector streams a growing log file by appending only its new bytes.
//!
//! Every append carries the position it expects (`x-ms-blob-condition-appendpos`), so a
//! retried or repeated append after a timeout or a crash is refused instead of duplicating
//! bytes; the caller learns the blob's real size and resumes from there.

use bytes::Bytes;
use http::StatusCode;
use object_store::path::Path;

use super::rest::{Answer, Container};
use crate::error::{Error, Result};

/// Largest block one Append Block call takes.
const MAX_BLOCK: usize = 4 * 1024 * 1024;

/// Azure's own blob calls in one container (appends here, copy waits in `copy.rs`), under an
/// optional key prefix.
#[derive(Debug, Clone)]
pub struct AzureBlobs {
    pub(super) container: Container,
    prefix: Option<Path>,
}

impl AzureBlobs {
    pub(crate) fn new(container: Container) -> Self {
        Self {
            container,
            prefix: None,
        }
    }

    /// The same container with `prefix` put before every key.
    pub fn with_prefix(&self, prefix: Option<Path>) -> AzureBlobs {
        AzureBlobs {
            container: self.container.clone(),
            prefix,
        }
    }

    pub(super) fn blob(&self, key: &Path) -> Path {
        match &self.prefix {
            Some(prefix) => prefix.parts().chain(key.parts()).collect::<Path>(),
            None => key.clone(),
        }
    }

    /// Appends `data` to the blob at `key`, which must hold exactly `expected_offset` bytes.
    /// With `expected_offset == 0` a missing blob is created first (create-only, so a
    /// concurrent writer's blob is never replaced). Data over 4 MiB goes in several blocks.
    /// Returns the blob's new size; a wrong offset gives [`Error::AppendPosition`].
    pub async fn append(
        &self,
        key: &Path,
        expected_offset: u64,
        data: Bytes,
        content_type: &str,
    ) -> Result<u64> {
        let blob = self.blob(key);
        let failed = |answer: &Answer| answer.error("append", key.as_ref());
        if expected_offset == 0 {
            let created = self
                .container
                .create_append_blob(&blob, content_type)
                .await?;
            // 409/412: it exists already; the appends below check that it is still empty.
            if !created.status.is_success()
                && !matches!(
                    created.status,
                    StatusCode::CONFLICT | StatusCode::PRECONDITION_FAILED
                )
            {
                return Err(failed(&created));
            }
        }
        if data.is_empty() {
            let actual = self.size(&blob, key).await?;
            if actual != Some(expected_offset) {
                return Err(Error::AppendPosition {
                    key: key.to_string(),
                    expected: expected_offset,
                    actual,
                });
            }
            return Ok(expected_offset);
        }
        let mut offset = expected_offset;
        let mut rest = data;
        while !rest.is_empty() {
            let block = rest.split_to(rest.len().min(MAX_BLOCK));
            let len = block.len() as u64;
            let appended = self.container.append_block(&blob, offset, block).await?;
            if appended.status.is_success() {
                offset += len;
            } else if is_position_error(&appended) {
                return Err(Error::AppendPosition {
                    key: key.to_string(),
                    expected: offset,
                    actual: self.size(&blob, key).await?.or(Some(0)),
                });
            } else {
                return Err(failed(&appended));
            }
        }
        Ok(offset)
    }

    /// The blob's size, or `None` when it does not exist.
    async fn size(&self, blob: &Path, key: &Path) -> Result<Option<u64>> {
        let answer = self.container.blob_properties(blob).await?;
        match answer.status {
            StatusCode::NOT_FOUND => Ok(None),
            status if status.is_success() => answer
                .headers
                .get(http::header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok()?.parse().ok())
                .map(Some)
                .ok_or_else(|| Error::backend("head", key.as_ref(), "no Content-Length", false)),
            _ => Err(answer.error("head", key.as_ref())),
        }
    }
}

/// A refused append position (412 `AppendPositionConditionNotMet`) or a blob that vanished.
fn is_position_error(answer: &Answer) -> bool {
    match answer.status {
        StatusCode::PRECONDITION_FAILED => answer
            .code()
            .is_none_or(|code| code == "AppendPositionConditionNotMet"),
        StatusCode::NOT_FOUND => answer.code() == Some("BlobNotFound"),
        _ => false,
    }
}
