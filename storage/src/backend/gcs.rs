//! Google Cloud Storage, through `object_store`.

use std::sync::Arc;

use object_store::ObjectStore;

use crate::config::GcsConfig;
use crate::error::Result;

/// Builds the client; credentials come from the service account file, else from the
/// application default credentials.
pub(super) fn open(config: &GcsConfig) -> Result<Arc<dyn ObjectStore>> {
    let mut builder = object_store::gcp::GoogleCloudStorageBuilder::from_env()
        .with_bucket_name(&config.bucket)
        .with_retry(super::inner_retry());
    if let Some(file) = &config.credentials_file {
        builder = builder.with_service_account_path(file.display().to_string());
    }
    let store = builder
        .build()
        .map_err(|e| super::backend_error("open", "", e))?;
    Ok(Arc::new(store))
}
