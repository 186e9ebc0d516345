//! One backend suite, run against memory, a local directory and real Azurite (with and
//! without a storage prefix).

mod common;

use bytes::Bytes;
use object_store::path::Path;
use ray_history_storage::{Error, Storage, StorageArgs, StorageConfig, StorageKind};
use ray_history_testkit::{Azurite, free_port};

#[tokio::test]
async fn memory_backend() {
    let storage = Storage::open(&StorageConfig::memory()).await.unwrap();
    assert!(!storage.supports_append());
    common::backend_suite(&storage).await;
}

#[tokio::test]
async fn local_backend() {
    let dir = tempfile::tempdir().unwrap();
    let storage = Storage::open(&StorageConfig::local(dir.path().join("store")))
        .await
        .unwrap();
    assert!(!storage.supports_append());
    common::backend_suite(&storage).await;
}

#[tokio::test]
async fn local_backend_with_prefix() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = StorageConfig::local(dir.path());
    config.prefix = Some("team/a".into());
    let storage = Storage::open(&config).await.unwrap();
    common::backend_suite(&storage).await;
    assert!(dir.path().join("team/a").is_dir());
}

#[tokio::test]
async fn azurite_backend() {
    let storage = Storage::open(&Azurite::shared().storage_config("suite"))
        .await
        .unwrap();
    assert!(storage.supports_append());
    common::backend_suite(&storage).await;
}

#[tokio::test]
async fn azurite_backend_with_prefix() {
    let azurite = Azurite::shared();
    let mut config = azurite.storage_config("prefixed");
    config.prefix = Some("history/v1".into());
    let storage = Storage::open(&config).await.unwrap();
    common::backend_suite(&storage).await;

    // Everything, appends included, landed under the prefix.
    let raw = Storage::open(&azurite.storage_config("prefixed"))
        .await
        .unwrap();
    let all: Vec<_> = futures::TryStreamExt::try_collect::<Vec<_>>(raw.list(None))
        .await
        .unwrap();
    assert!(!all.is_empty());
    for meta in all {
        assert!(
            meta.location.as_ref().starts_with("history/v1/"),
            "{}",
            meta.location
        );
    }
}

/// No S3 server runs here, so this checks the wiring: a MinIO-style endpoint gets path-style
/// URLs (bucket in the path) and an unreachable one gives a transient, redacted error.
#[tokio::test]
async fn s3_with_an_endpoint_uses_path_style() {
    let port = free_port();
    let empty = tempfile::NamedTempFile::new().unwrap();
    let config = StorageArgs {
        config: Some(empty.path().to_path_buf()),
        storage_url: Some("s3://bucket-a/pre".into()),
        s3_endpoint: Some(format!("http://127.0.0.1:{port}")),
        aws_region: Some("us-east-1".into()),
        aws_access_key_id: Some("minioadmin".into()),
        aws_secret_access_key: Some("SECRETKEY123".into()),
        ..Default::default()
    }
    .resolve()
    .unwrap();
    assert_eq!(config.kind(), StorageKind::S3);
    let storage = Storage::open(&config).await.unwrap();
    assert!(!storage.supports_append());
    let err = storage
        .put(&Path::from("x/y.txt"), Bytes::from_static(b"1"))
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(
        matches!(
            err,
            Error::Backend {
                transient: true,
                ..
            }
        ),
        "{text}"
    );
    assert!(
        text.contains(&format!("127.0.0.1:{port}/bucket-a/pre/x/y.txt")),
        "{text}"
    );
    assert!(!text.contains("SECRETKEY123"), "{text}");
}
