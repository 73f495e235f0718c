//! Object-store roots (`file://` through object_store's local filesystem) for the lake and the
//! processor's checkpoints.
//!
//! Contract: [`ObjectRoot::put_durable`] makes a file visible atomically (the local store writes a
//! staging file and renames it) and, for local files, fsyncs the file and its directory before
//! returning, so an offset committed afterwards never points past data that a crash could lose.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use futures::TryStreamExt;
use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};

/// An error opening or using an object-store root.
#[derive(Debug, thiserror::Error)]
pub enum ObjectRootError {
    #[error("unsupported object-store root {0:?}: this build supports file:// roots")]
    UnsupportedRoot(String),
    #[error("object-store root {path}: {source}")]
    Root {
        path: String,
        source: std::io::Error,
    },
    #[error("object store: {0}")]
    Store(#[from] object_store::Error),
    #[error("invalid object key {key:?}: {source}")]
    Key {
        key: String,
        source: object_store::path::Error,
    },
    #[error("fsync {path}: {source}")]
    Sync {
        path: String,
        source: std::io::Error,
    },
}

/// An object store plus, for local roots, the directory to fsync in.
#[derive(Debug, Clone)]
pub struct ObjectRoot {
    store: Arc<dyn ObjectStore>,
    local_root: Option<PathBuf>,
}

impl ObjectRoot {
    /// Opens `root` (`file:///abs/path`, `file://./relative/path`), creating the directory.
    pub fn open(root: &str) -> Result<ObjectRoot, ObjectRootError> {
        let Some(path) = root.strip_prefix("file://") else {
            return Err(ObjectRootError::UnsupportedRoot(root.to_string()));
        };
        std::fs::create_dir_all(path).map_err(|source| ObjectRootError::Root {
            path: path.into(),
            source,
        })?;
        let abs = std::fs::canonicalize(path).map_err(|source| ObjectRootError::Root {
            path: path.into(),
            source,
        })?;
        let store = LocalFileSystem::new_with_prefix(&abs)?;
        Ok(ObjectRoot {
            store: Arc::new(store),
            local_root: Some(abs),
        })
    }

    /// The store, for readers.
    pub fn store(&self) -> Arc<dyn ObjectStore> {
        self.store.clone()
    }

    /// Writes `bytes` at `key` atomically and durably.
    pub async fn put_durable(&self, key: &str, bytes: Vec<u8>) -> Result<(), ObjectRootError> {
        self.store
            .put(&object_path(key)?, PutPayload::from(bytes))
            .await?;
        self.sync(key).await
    }

    /// Like [`ObjectRoot::put_durable`], but never replaces an existing object: returns
    /// `Ok(false)` when `key` already exists.
    pub async fn create_durable(&self, key: &str, bytes: Vec<u8>) -> Result<bool, ObjectRootError> {
        let opts = PutOptions {
            mode: PutMode::Create,
            ..Default::default()
        };
        match self
            .store
            .put_opts(&object_path(key)?, PutPayload::from(bytes), opts)
            .await
        {
            Ok(_) => {}
            Err(object_store::Error::AlreadyExists { .. }) => return Ok(false),
            Err(e) => return Err(e.into()),
        }
        self.sync(key).await?;
        Ok(true)
    }

    async fn sync(&self, key: &str) -> Result<(), ObjectRootError> {
        if let Some(root) = &self.local_root {
            let file = root.join(key);
            tokio::task::spawn_blocking(move || fsync_file_and_dir(&file))
                .await
                .map_err(|e| ObjectRootError::Sync {
                    path: key.into(),
                    source: std::io::Error::other(e),
                })??;
        }
        Ok(())
    }

    /// The file of `key` when the root is a local directory.
    pub fn local_path(&self, key: &str) -> Option<PathBuf> {
        self.local_root.as_ref().map(|r| r.join(key))
    }

    /// Removes the staging files an interrupted local write left below `dir`: files named
    /// `<name_prefix>…` that hold a `#` (object_store writes `<file>#<n>`, then renames it into
    /// place; a crash in between leaves the staging file, which listings skip but directory
    /// readers such as pyarrow would try to read). Returns how many were removed; a no-op for
    /// other stores, whose uploads become visible whole or not at all.
    pub async fn remove_staging_leftovers(
        &self,
        dir: &str,
        name_prefix: &str,
    ) -> Result<usize, ObjectRootError> {
        let Some(root) = &self.local_root else {
            return Ok(0);
        };
        let (start, prefix) = (root.join(dir), name_prefix.to_string());
        tokio::task::spawn_blocking(move || {
            let mut removed = 0;
            let mut stack = vec![start];
            while let Some(d) = stack.pop() {
                let Ok(entries) = std::fs::read_dir(&d) else {
                    continue;
                };
                for e in entries.flatten() {
                    let path = e.path();
                    let name = e.file_name().to_string_lossy().into_owned();
                    if path.is_dir() {
                        stack.push(path);
                    } else if name.starts_with(&prefix) && name.contains('#') {
                        std::fs::remove_file(&path).map_err(|source| ObjectRootError::Root {
                            path: path.display().to_string(),
                            source,
                        })?;
                        removed += 1;
                    }
                }
            }
            Ok(removed)
        })
        .await
        .map_err(|e| ObjectRootError::Root {
            path: dir.into(),
            source: std::io::Error::other(e),
        })?
    }

    /// The keys below `prefix`.
    pub async fn list(&self, prefix: &str) -> Result<Vec<String>, ObjectRootError> {
        let metas: Vec<_> = self
            .store
            .list(Some(&object_path(prefix)?))
            .try_collect()
            .await?;
        Ok(metas.into_iter().map(|m| m.location.to_string()).collect())
    }

    /// The object at `key`.
    pub async fn get(&self, key: &str) -> Result<Vec<u8>, ObjectRootError> {
        let bytes = self.store.get(&object_path(key)?).await?.bytes().await?;
        Ok(bytes.to_vec())
    }

    /// Deletes `key` (missing is fine).
    pub async fn delete(&self, key: &str) -> Result<(), ObjectRootError> {
        match self.store.delete(&object_path(key)?).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}

/// A key as the object's path, verbatim: `a%20b` names the object `a%20b` (`Path::from` would
/// percent-encode the `%` and store `a%2520b`).
fn object_path(key: &str) -> Result<ObjectPath, ObjectRootError> {
    ObjectPath::parse(key).map_err(|source| ObjectRootError::Key {
        key: key.into(),
        source,
    })
}

fn fsync_file_and_dir(file: &Path) -> Result<(), ObjectRootError> {
    let sync = |p: &Path| {
        std::fs::File::open(p)
            .and_then(|f| f.sync_all())
            .map_err(|source| ObjectRootError::Sync {
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
        let lake = ObjectRoot::open(&root).expect("open");
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
            ObjectRoot::open("s3://bucket/x"),
            Err(ObjectRootError::UnsupportedRoot(_))
        ));
        assert!(lake
            .create_durable("c/1", b"x".to_vec())
            .await
            .expect("create"));
        assert!(
            !lake
                .create_durable("c/1", b"y".to_vec())
                .await
                .expect("exists"),
            "never replaced"
        );
        assert_eq!(lake.get("c/1").await.expect("get"), b"x");
        assert_eq!(lake.list("c").await.expect("list"), vec!["c/1".to_string()]);
        lake.delete("c/1").await.expect("delete");
        assert!(lake.list("c").await.expect("list").is_empty());
    }

    #[tokio::test]
    async fn staging_leftovers_of_one_range_are_removed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let lake = ObjectRoot::open(&format!("file://{}", dir.path().display())).expect("open");
        let keep = "t/a=1/part-x-p1-o5.parquet";
        lake.put_durable(keep, b"1".to_vec()).await.expect("put");
        let leftover = dir.path().join("t/a=2/b=3/part-x-p1-o5.parquet#1");
        std::fs::create_dir_all(leftover.parent().expect("dir")).expect("mkdir");
        std::fs::write(&leftover, b"partial").expect("write");
        let other = dir.path().join("t/a=2/part-x-p2-o5.parquet#1");
        std::fs::write(&other, b"another partition's").expect("write");
        let n = lake
            .remove_staging_leftovers("t", "part-x-p1-o5.parquet")
            .await
            .expect("remove");
        assert_eq!(n, 1);
        assert!(!leftover.exists() && other.exists() && dir.path().join(keep).exists());
        assert_eq!(
            lake.local_path("k"),
            Some(dir.path().canonicalize().expect("abs").join("k"))
        );
    }

    /// Keys are used verbatim: a percent-encoded Hive partition value stays as written, on
    /// disk and in listings.
    #[tokio::test]
    async fn keys_are_verbatim() {
        let dir = tempfile::tempdir().expect("tempdir");
        let lake = ObjectRoot::open(&format!("file://{}", dir.path().display())).expect("open");
        let key = "t/event_name=Signed%20Up%2Fx/part-1.parquet";
        lake.put_durable(key, b"1".to_vec()).await.expect("put");
        assert!(dir.path().join(key).is_file(), "file name as written");
        assert_eq!(lake.list("t").await.expect("list"), vec![key.to_string()]);
        assert_eq!(lake.get(key).await.expect("get"), b"1");
        assert!(matches!(
            lake.put_durable("t/../x", b"1".to_vec()).await,
            Err(ObjectRootError::Key { .. })
        ));
    }
}
