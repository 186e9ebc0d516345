//! Amazon S3 and S3-compatible stores (MinIO, moto), through `object_store`.

use std::sync::Arc;

use object_store::ObjectStore;

use crate::config::S3Config;
use crate::error::Result;

/// Builds the client; credentials come from the settings, else from AWS's default chain.
pub(super) fn open(config: &S3Config) -> Result<Arc<dyn ObjectStore>> {
    let mut builder = object_store::aws::AmazonS3Builder::from_env()
        .with_bucket_name(&config.bucket)
        .with_retry(super::inner_retry());
    if let Some(region) = &config.region {
        builder = builder.with_region(region);
    }
    if let Some(endpoint) = &config.endpoint {
        builder = builder
            .with_endpoint(endpoint)
            .with_virtual_hosted_style_request(false)
            .with_allow_http(endpoint.starts_with("http://"));
    }
    if let (Some(id), Some(secret)) = (&config.access_key_id, &config.secret_access_key) {
        builder = builder
            .with_access_key_id(id)
            .with_secret_access_key(secret.expose());
    }
    let store = builder
        .build()
        .map_err(|e| super::backend_error("open", "", e))?;
    Ok(Arc::new(store))
}
