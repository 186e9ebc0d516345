//! [`Storage`]: one handle over every backend, with the storage prefix applied and the
//! operations the collector and the history server need (create-only puts, ranged reads,
//! streamed uploads from files, appends on backends that have them).

use std::ops::Range;
use std::sync::Arc;

use bytes::Bytes;
use futures::StreamExt;
use futures::stream::BoxStream;
use object_store::path::Path;
use object_store::prefix::PrefixStore;
use object_store::{
    Attribute, Attributes, ListResult, ObjectMeta, ObjectStore, ObjectStoreExt, PutMode,
    PutOptions, PutPayload,
};
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};

use crate::backend::{self, azure, backend_error};
use crate::config::{StorageConfig, StorageKind};
use crate::error::{Error, Result};
use crate::{layout, redact};

/// Size of the chunks [`Storage::put_file`] reads and uploads at a time.
const UPLOAD_CHUNK: usize = 8 * 1024 * 1024;

/// A storage backend with the configured prefix applied. Cheap to clone.
#[derive(Clone)]
pub struct Storage {
    store: Arc<dyn ObjectStore>,
    /// Azure's REST calls that `object_store` lacks (appends, waiting for copies).
    azure: Option<Arc<azure::AzureBlobs>>,
    kind: StorageKind,
    description: String,
    /// Whether the backend stores attributes such as Content-Type (local files do not).
    attributes: bool,
}

impl std::fmt::Debug for Storage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Storage")
            .field("kind", &self.kind)
            .field("description", &self.description)
            .finish()
    }
}

impl Storage {
    /// Opens the configured backend. On Azure this checks the container (one request) and
    /// creates it when missing and allowed; an unreachable service gives a transient error,
    /// so callers that must ride out outages wrap this in [`crate::retry::retry`].
    pub async fn open(config: &StorageConfig) -> Result<Self> {
        let opened = backend::open(config).await?;
        let prefix = config.prefix_path();
        let store: Arc<dyn ObjectStore> = match &prefix {
            Some(prefix) => Arc::new(PrefixStore::new(opened.store, prefix.clone())),
            None => opened.store,
        };
        let azure = opened.azure.map(|a| Arc::new(a.with_prefix(prefix)));
        Ok(Self {
            store,
            azure,
            kind: config.kind(),
            description: config.describe(),
            attributes: config.kind() != StorageKind::Local,
        })
    }

    /// Which backend this is.
    pub fn kind(&self) -> StorageKind {
        self.kind
    }

    /// A one-line description for logs (no secrets), e.g. `azureblob container x at <endpoint>`.
    pub fn describe(&self) -> &str {
        &self.description
    }

    /// The underlying object store, keys relative to the prefix.
    pub fn object_store(&self) -> &Arc<dyn ObjectStore> {
        &self.store
    }

    /// Writes a whole object, replacing any previous one.
    pub async fn put(&self, key: &Path, data: Bytes) -> Result<()> {
        let options = PutOptions {
            attributes: self.content_type_attributes(key),
            ..Default::default()
        };
        self.store
            .put_opts(key, PutPayload::from_bytes(data), options)
            .await
            .map_err(|e| backend_error("put", key.as_ref(), e))?;
        Ok(())
    }

    /// Writes an object only if none exists at `key`; returns `false` when one did.
    pub async fn put_if_absent(&self, key: &Path, data: Bytes) -> Result<bool> {
        let options = PutOptions {
            mode: PutMode::Create,
            attributes: self.content_type_attributes(key),
            ..Default::default()
        };
        match self
            .store
            .put_opts(key, PutPayload::from_bytes(data), options)
            .await
        {
            Ok(_) => Ok(true),
            Err(object_store::Error::AlreadyExists { .. }) => Ok(false),
            Err(object_store::Error::Precondition { .. }) => Ok(false),
            Err(e) => Err(backend_error("put", key.as_ref(), e)),
        }
    }

    /// Uploads the first `len` bytes of a local file to `key`, reading it in chunks so memory
    /// stays bounded whatever the file's size. Large files use a multipart upload.
    pub async fn put_file(&self, key: &Path, file: &std::path::Path, len: u64) -> Result<()> {
        let opened = tokio::fs::File::open(file)
            .await
            .map_err(|source| Error::Io {
                path: file.display().to_string(),
                source,
            })?;
        self.upload(key, opened, &file.display().to_string(), len)
            .await
    }

    /// Writes the first `len` bytes of an open local file to `key` only if no object exists
    /// there; returns `false` when one did. A file bigger than one request is uploaded to a
    /// scratch key beside `key` and copied into place create-only, because a multipart upload
    /// cannot be made create-only. Where the backend cannot copy create-only (S3 without
    /// `copy_if_not_exists`), an existing object is checked for first instead.
    pub async fn put_file_if_absent(
        &self,
        key: &Path,
        file: std::fs::File,
        len: u64,
    ) -> Result<bool> {
        let what = format!("(local copy of {key})");
        let mut file = tokio::fs::File::from_std(file);
        file.seek(std::io::SeekFrom::Start(0))
            .await
            .map_err(|source| Error::Io {
                path: what.clone(),
                source,
            })?;
        if len as usize <= UPLOAD_CHUNK {
            let bytes = read_whole(file, len, &what).await?;
            return self.put_if_absent(key, bytes.into()).await;
        }
        if self.head(key).await?.is_some() {
            return Ok(false);
        }
        let scratch = Path::parse(format!("{key}.upload-{:016x}", rand::random::<u64>()))
            .map_err(|e| backend_error("put", key.as_ref(), e.into()))?;
        self.upload(&scratch, file, &what, len).await?;
        let copied = match self.store.copy_if_not_exists(&scratch, key).await {
            Ok(()) => self.copy_finished(key).await.map(|()| true),
            Err(
                object_store::Error::AlreadyExists { .. }
                | object_store::Error::Precondition { .. },
            ) => Ok(false),
            Err(
                object_store::Error::NotSupported { .. }
                | object_store::Error::NotImplemented { .. },
            ) => match self.head(key).await {
                Ok(Some(_)) => Ok(false),
                Ok(None) => self.copy(&scratch, key).await.map(|()| true),
                Err(e) => Err(e),
            },
            Err(e) => Err(backend_error("copy", key.as_ref(), e)),
        };
        if let Err(e) = self.delete(&scratch).await {
            tracing::warn!(key = %scratch, error = %e, "cannot delete an upload's scratch copy");
        }
        copied
    }

    /// Uploads `len` bytes of `reader` to `key`, in one request when small, else multipart.
    async fn upload(
        &self,
        key: &Path,
        reader: tokio::fs::File,
        what: &str,
        len: u64,
    ) -> Result<()> {
        if len as usize <= UPLOAD_CHUNK {
            return self
                .put(key, read_whole(reader, len, what).await?.into())
                .await;
        }
        let io_error = |source| Error::Io {
            path: what.to_string(),
            source,
        };
        let mut reader = reader.take(len);
        let mut writer = object_store::buffered::BufWriter::with_capacity(
            Arc::clone(&self.store),
            key.clone(),
            UPLOAD_CHUNK,
        )
        .with_attributes(self.content_type_attributes(key))
        .with_max_concurrency(2);
        let mut buf = vec![0u8; 1024 * 1024];
        loop {
            let n = reader.read(&mut buf).await.map_err(io_error)?;
            if n == 0 {
                break;
            }
            if let Err(e) = writer.write_all(&buf[..n]).await {
                writer.abort().await.ok();
                return Err(io_to_backend("put", key, e));
            }
        }
        writer
            .shutdown()
            .await
            .map_err(|e| io_to_backend("put", key, e))
    }

    /// Reads a whole object. Use [`Storage::get_range`] or [`Storage::get_stream`] for big ones.
    pub async fn get(&self, key: &Path) -> Result<Bytes> {
        let result = self
            .store
            .get(key)
            .await
            .map_err(|e| backend_error("get", key.as_ref(), e))?;
        result
            .bytes()
            .await
            .map_err(|e| backend_error("get", key.as_ref(), e))
    }

    /// Reads a byte range of an object.
    pub async fn get_range(&self, key: &Path, range: Range<u64>) -> Result<Bytes> {
        self.store
            .get_range(key, range)
            .await
            .map_err(|e| backend_error("get", key.as_ref(), e))
    }

    /// Streams an object (or a range of it) in chunks, with its metadata.
    pub async fn get_stream(
        &self,
        key: &Path,
        range: Option<Range<u64>>,
    ) -> Result<(ObjectMeta, BoxStream<'static, Result<Bytes>>)> {
        let options = object_store::GetOptions {
            range: range.map(Into::into),
            ..Default::default()
        };
        let result = self
            .store
            .get_opts(key, options)
            .await
            .map_err(|e| backend_error("get", key.as_ref(), e))?;
        let meta = result.meta.clone();
        let owned_key = key.to_string();
        if let object_store::GetResultPayload::File(file, _) = result.payload {
            return Ok((meta, local_file_stream(file, result.range, owned_key)));
        }
        let stream = result
            .into_stream()
            .map(move |chunk| chunk.map_err(|e| backend_error("get", &owned_key, e)))
            .boxed();
        Ok((meta, stream))
    }

    /// Metadata of an object, or `None` when it does not exist.
    pub async fn head(&self, key: &Path) -> Result<Option<ObjectMeta>> {
        match self.store.head(key).await {
            Ok(meta) => Ok(Some(meta)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(backend_error("head", key.as_ref(), e)),
        }
    }

    /// Every object under `prefix`, recursively.
    pub fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
        let owned = prefix.map(|p| p.to_string()).unwrap_or_default();
        self.store
            .list(prefix)
            .map(move |item| item.map_err(|e| backend_error("list", &owned, e)))
            .boxed()
    }

    /// Objects and common prefixes directly under `prefix` (one level).
    pub async fn list_with_delimiter(&self, prefix: Option<&Path>) -> Result<ListResult> {
        self.store
            .list_with_delimiter(prefix)
            .await
            .map_err(|e| backend_error("list", prefix.map(|p| p.as_ref()).unwrap_or_default(), e))
    }

    /// Deletes an object; a missing object is not an error.
    pub async fn delete(&self, key: &Path) -> Result<()> {
        match self.store.delete(key).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(backend_error("delete", key.as_ref(), e)),
        }
    }

    /// Server-side copy of `from` to `to`, replacing `to`; returns once `to` holds the bytes.
    pub async fn copy(&self, from: &Path, to: &Path) -> Result<()> {
        self.store
            .copy(from, to)
            .await
            .map_err(|e| backend_error("copy", from.as_ref(), e))?;
        self.copy_finished(to).await
    }

    /// Waits for a copy into `key` that the backend may still be doing (Azure only).
    async fn copy_finished(&self, key: &Path) -> Result<()> {
        match &self.azure {
            Some(azure) => azure.await_copy(key).await,
            None => Ok(()),
        }
    }

    /// Whether [`Storage::append`] works on this backend (Azure append blobs).
    pub fn supports_append(&self) -> bool {
        self.azure.is_some()
    }

    /// Appends `data` to the append blob at `key`, which must currently hold exactly
    /// `expected_offset` bytes (the blob is created when `expected_offset` is 0 and it does not
    /// exist). A mismatch gives [`Error::AppendPosition`], so a retried append can never
    /// duplicate bytes. Returns the blob's new size.
    pub async fn append(&self, key: &Path, expected_offset: u64, data: Bytes) -> Result<u64> {
        match &self.azure {
            Some(append) => {
                append
                    .append(key, expected_offset, data, layout::content_type(key))
                    .await
            }
            None => Err(Error::AppendUnsupported {
                backend: self.kind.as_str(),
            }),
        }
    }
}

impl Storage {
    /// The layout's Content-Type for `key`, on backends that keep attributes.
    fn content_type_attributes(&self, key: &Path) -> Attributes {
        let mut attributes = Attributes::new();
        if self.attributes {
            attributes.insert(Attribute::ContentType, layout::content_type(key).into());
        }
        attributes
    }
}

/// Size of the reads of [`local_file_stream`].
const LOCAL_STREAM_CHUNK: u64 = 256 * 1024;

/// `range` of a local file as a stream of [`LOCAL_STREAM_CHUNK`] reads, each on the blocking
/// pool. `object_store` reads local files 8 KiB per blocking call, which makes a multi-GB
/// download cost millions of thread hops.
fn local_file_stream(
    file: std::fs::File,
    range: Range<u64>,
    key: String,
) -> BoxStream<'static, Result<Bytes>> {
    let io_error = move |key: &str, source| Error::Io {
        path: key.to_string(),
        source,
    };
    futures::stream::try_unfold(
        (file, range.start, key),
        move |(mut file, pos, key)| async move {
            if pos >= range.end {
                return Ok(None);
            }
            let len = (range.end - pos).min(LOCAL_STREAM_CHUNK);
            let read = tokio::task::spawn_blocking(move || {
                use std::io::{Read, Seek, SeekFrom};
                file.seek(SeekFrom::Start(pos))?;
                let mut buf = Vec::with_capacity(len as usize);
                (&mut file).take(len).read_to_end(&mut buf)?;
                Ok::<_, std::io::Error>((file, buf))
            })
            .await
            .map_err(std::io::Error::other)
            .and_then(|r| r);
            let (file, buf) = read.map_err(|e| io_error(&key, e))?;
            if buf.is_empty() {
                let truncated = std::io::Error::from(std::io::ErrorKind::UnexpectedEof);
                return Err(io_error(&key, truncated));
            }
            let next = pos + buf.len() as u64;
            Ok(Some((Bytes::from(buf), (file, next, key))))
        },
    )
    .boxed()
}

/// Reads the first `len` bytes of a small file (one request's worth) into memory.
async fn read_whole(reader: tokio::fs::File, len: u64, what: &str) -> Result<Vec<u8>> {
    let mut bytes = Vec::with_capacity(len as usize);
    reader
        .take(len)
        .read_to_end(&mut bytes)
        .await
        .map_err(|source| Error::Io {
            path: what.to_string(),
            source,
        })?;
    Ok(bytes)
}

fn io_to_backend(operation: &'static str, key: &Path, error: std::io::Error) -> Error {
    Error::backend(
        operation,
        key.to_string(),
        redact::scrub(&error.to_string()),
        true,
    )
}
