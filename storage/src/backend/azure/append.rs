//! Append blobs: the collector streams a growing log file by appending only its new bytes.
//!
//! Every append carries the position it expects (`x-ms-blob-condition-appendpos`), so a
//! retried or repeated append after a timeout or a crash is refused instead of duplicating
//! bytes; the caller learns the blob's real size and resumes from there.

use azure_core::StatusCode;
use azure_core::request_options::IfMatchCondition;
use azure_storage_blobs::prelude::{BlobClient, ContainerClient};
use bytes::Bytes;
use object_store::path::Path;

use super::{azure_error, error_code, status};
use crate::error::{Error, Result};

/// Largest block one Append Block call takes.
const MAX_BLOCK: usize = 4 * 1024 * 1024;

/// Appends to append blobs in one container, under an optional key prefix.
#[derive(Debug, Clone)]
pub struct AppendBlobs {
    container: ContainerClient,
    prefix: Option<Path>,
}

impl AppendBlobs {
    pub(crate) fn new(container: ContainerClient) -> Self {
        Self {
            container,
            prefix: None,
        }
    }

    /// The same container with `prefix` put before every key.
    pub fn with_prefix(&self, prefix: Option<Path>) -> AppendBlobs {
        AppendBlobs {
            container: self.container.clone(),
            prefix,
        }
    }

    fn blob(&self, key: &Path) -> BlobClient {
        let name = match &self.prefix {
            Some(prefix) => prefix.parts().chain(key.parts()).collect::<Path>(),
            None => key.clone(),
        };
        self.container.blob_client(name.to_string())
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
        if expected_offset == 0 {
            let created = blob
                .put_append_blob()
                .content_type(content_type.to_string())
                .if_match(IfMatchCondition::NotMatch("*".to_string()))
                .await;
            match created {
                Ok(_) => {}
                // It exists already: the appends below check that it is still empty.
                Err(e)
                    if matches!(
                        status(&e),
                        Some(StatusCode::Conflict | StatusCode::PreconditionFailed)
                    ) => {}
                Err(e) => return Err(azure_error("append", key.as_ref(), &e)),
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
            let appended = blob
                .append_block(block)
                .condition_append_position(offset)
                .await;
            match appended {
                Ok(_) => offset += len,
                Err(e) if is_position_error(&e) => {
                    return Err(Error::AppendPosition {
                        key: key.to_string(),
                        expected: offset,
                        actual: self.size(&blob, key).await?.or(Some(0)),
                    });
                }
                Err(e) => return Err(azure_error("append", key.as_ref(), &e)),
            }
        }
        Ok(offset)
    }

    /// The blob's size, or `None` when it does not exist.
    async fn size(&self, blob: &BlobClient, key: &Path) -> Result<Option<u64>> {
        match blob.get_properties().await {
            Ok(props) => Ok(Some(props.blob.properties.content_length)),
            Err(e) if status(&e) == Some(StatusCode::NotFound) => Ok(None),
            Err(e) => Err(azure_error("head", key.as_ref(), &e)),
        }
    }
}

/// A refused append position (412 `AppendPositionConditionNotMet`) or a blob that vanished.
fn is_position_error(error: &azure_core::Error) -> bool {
    match status(error) {
        Some(StatusCode::PreconditionFailed) => {
            error_code(error).is_none_or(|code| code == "AppendPositionConditionNotMet")
        }
        Some(StatusCode::NotFound) => error_code(error) == Some("BlobNotFound"),
        _ => false,
    }
}
