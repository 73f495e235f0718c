//! The lake's object store: `file://` (default) through object_store's local filesystem.
//!
//! Contract: [`Lake::put_durable`] makes a file visible atomically (the local store writes a
//! staging file and renames it) and, for local files, fsyncs the file and its directory before
//! returning, so an offset committed afterwards never points past data that a crash could lose.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};

/// An error opening or writing the lake.
#[derive(Debug, thiserror::Error)]
pub enum LakeError {
    #[error("unsupported lake root {0:?}: this build supports file:// roots")]
    UnsupportedRoot(String),
    #[error("lake root {path}: {source}")]
    Root {
        path: String,
        source: std::io::Error,
    },
    #[error("object store: {0}")]
    Store(#[from] object_store::Error),
    #[error("fsync {path}: {source}")]
    Sync {
        path: String,
        source: std::io::Error,
    },
}

/// The lake: an object store plus, for local roots, the directory to fsync in.
#[derive(Debug, Clone)]
pub struct Lake {
    store: Arc<dyn ObjectStore>,
    local_root: Option<PathBuf>,
}

impl Lake {
    /// Opens `root` (`file:///abs/path`, `file://./relative/path`), creating the directory.
    pub fn open(root: &str) -> Result<Lake, LakeError> {
        let Some(path) = root.strip_prefix("file://") else {
            return Err(LakeError::UnsupportedRoot(root.to_string()));
        };
        std::fs::create_dir_all(path).map_err(|source| LakeError::Root {
            path: path.into(),
            source,
        })?;
        let abs = std::fs::canonicalize(path).map_err(|source| LakeError::Root {
            path: path.into(),
            source,
        })?;
        let store = LocalFileSystem::new_with_prefix(&abs)?;
        Ok(Lake {
            store: Arc::new(store),
            local_root: Some(abs),
        })
    }

    /// The store, for readers.
    pub fn store(&self) -> Arc<dyn ObjectStore> {
        self.store.clone()
    }

    /// Writes `bytes` at `key` atomically and durably.
    pub async fn put_durable(&self, key: &str, bytes: Vec<u8>) -> Result<(), LakeError> {
        self.store
            .put(&ObjectPath::from(key), PutPayload::from(bytes))
            .await?;
        if let Some(root) = &self.local_root {
            let file = root.join(key);
            tokio::task::spawn_blocking(move || fsync_file_and_dir(&file))
                .await
                .map_err(|e| LakeError::Sync {
                    path: key.into(),
                    source: std::io::Error::other(e),
                })??;
        }
        Ok(())
    }
}

fn fsync_file_and_dir(file: &Path) -> Result<(), LakeError> {
    let sync = |p: &Path| {
        std::fs::File::open(p)
            .and_then(|f| f.sync_all())
            .map_err(|source| LakeError::Sync {
                path: p.display().to_string(),
                source,
            })
    };
    sync(file)?;
    if let Some(dir) = file.parent() {
        sync(dir)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn put_is_visible_whole() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = format!("file://{}", dir.path().join("lake").display());
        let lake = Lake::open(&root).expect("open");
        lake.put_durable(
            "events/event_date=2026-01-01/part-x.parquet",
            b"abc".to_vec(),
        )
        .await
        .expect("put");
        let got = std::fs::read(
            dir.path()
                .join("lake/events/event_date=2026-01-01/part-x.parquet"),
        )
        .expect("read");
        assert_eq!(got, b"abc");
        assert!(matches!(
            Lake::open("s3://bucket/x"),
            Err(LakeError::UnsupportedRoot(_))
        ));
    }
}
