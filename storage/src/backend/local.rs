//! A local directory, through `object_store`'s file system store.

use std::path::Path;
use std::sync::Arc;

use object_store::ObjectStore;

use crate::error::{Error, Result};

/// Opens `path`, creating it when missing; empty directories left by deletes are removed.
pub(super) fn open(path: &Path) -> Result<Arc<dyn ObjectStore>> {
    std::fs::create_dir_all(path).map_err(|source| Error::Io {
        path: path.display().to_string(),
        source,
    })?;
    let local = object_store::local::LocalFileSystem::new_with_prefix(path)
        .map_err(|e| super::backend_error("open", "", e))?
        .with_automatic_cleanup(true);
    Ok(Arc::new(local))
}
