//! Object-store roots for the lake and the processor's checkpoints: `file://` (object_store's
//! local filesystem) and `s3://` (AWS S3 or any S3-compatible server).
//!
//! Contract: [`ObjectRoot::put_durable`] makes an object visible atomically and durably before
//! returning, so an offset committed afterwards never points past data that a crash could lose:
//! locally, a staging file renamed into place, then the file and its directory fsynced; on S3,
//! one PUT, or for objects above [`MULTIPART_THRESHOLD`] a multipart upload that becomes visible
//! only when completed and is aborted on any failure (nothing of it stays behind).
//! [`ObjectRoot::create_durable`] never replaces an object (S3: `If-None-Match: *`).
//!
//! `s3://bucket/prefix` roots take their settings from the standard AWS environment variables
//! (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`, `AWS_REGION`, web
//! identity and instance credentials) and a custom endpoint from `AWS_ENDPOINT_URL` (plain
//! `http://` endpoints are allowed when one is set explicitly).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use futures::{Stream, StreamExt, TryStreamExt};
use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjectPath;
use object_store::prefix::PrefixStore;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};

/// Objects larger than this go to S3 as multipart uploads (of [`PART_SIZE`] parts).
pub const MULTIPART_THRESHOLD: usize = 32 * 1024 * 1024;
/// The part size of multipart uploads (S3's minimum is 5 MiB).
pub const PART_SIZE: usize = 16 * 1024 * 1024;

/// Retries of one S3 request inside the client, and how long after the first attempt no
/// retry starts: a request to an unreachable store fails within about this plus the client's
/// 30 s request timeout.
pub const S3_MAX_RETRIES: usize = 3;
/// See [`S3_MAX_RETRIES`].
pub const S3_RETRY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(20);

/// An error opening or using an object-store root.
#[derive(Debug, thiserror::Error)]
pub enum ObjectRootError {
    #[error("unsupported object-store root {0:?}: use file:///path, file://./relative or s3://bucket/prefix")]
    UnsupportedRoot(String),
    #[error("upload of {key} aborted: {reason}")]
    Aborted { key: String, reason: String },
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
    /// Opens `root`: `file:///abs/path` or `file://./relative/path` (the directory is created),
    /// or `s3://bucket[/prefix]` (see the module header for its settings).
    pub fn open(root: &str) -> Result<ObjectRoot, ObjectRootError> {
        Self::open_with_env(root, std::env::vars())
    }

    /// [`ObjectRoot::open`] with `AWS_*` settings taken from `env` instead of the process
    /// environment.
    pub fn open_with_env(
        root: &str,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<ObjectRoot, ObjectRootError> {
        if let Some(rest) = root.strip_prefix("s3://") {
            return Self::open_s3(root, rest, env.into_iter().collect());
        }
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

    fn open_s3(
        root: &str,
        rest: &str,
        env: std::collections::HashMap<String, String>,
    ) -> Result<ObjectRoot, ObjectRootError> {
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err(ObjectRootError::UnsupportedRoot(root.to_string()));
        }
        let mut builder = AmazonS3Builder::new().with_region("us-east-1");
        for (key, value) in &env {
            if key.starts_with("AWS_") {
                if let Ok(config_key) = key.to_ascii_lowercase().parse() {
                    builder = builder.with_config(config_key, value);
                }
            }
        }
        if let Some(region) = env.get("AWS_REGION").or(env.get("AWS_DEFAULT_REGION")) {
            builder = builder.with_region(region);
        }
        let endpoint = ["AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL", "AWS_ENDPOINT"]
            .iter()
            .find_map(|k| env.get(*k));
        if let Some(endpoint) = endpoint {
            // An explicitly configured endpoint (MinIO, moto, a VPC endpoint) may be plain HTTP.
            builder = builder
                .with_endpoint(endpoint)
                .with_allow_http(endpoint.starts_with("http://"));
        }
        // Bounded retries inside the client (the default retries for 3 minutes): callers
        // retry on their own schedule, and a consumer must not block past its poll interval.
        builder = builder
            .with_retry(object_store::RetryConfig {
                max_retries: S3_MAX_RETRIES,
                retry_timeout: S3_RETRY_TIMEOUT,
                ..Default::default()
            })
            .with_bucket_name(bucket);
        let s3 = builder.build()?;
        let prefix = prefix.trim_matches('/');
        let store: Arc<dyn ObjectStore> = if prefix.is_empty() {
            Arc::new(s3)
        } else {
            Arc::new(PrefixStore::new(s3, object_path(prefix)?))
        };
        Ok(ObjectRoot {
            store,
            local_root: None,
        })
    }

    /// The same root with its store wrapped by `wrap` (fault injection in tests, a cache, a
    /// metrics layer); local paths are kept, so the wrapper must keep keys where they are.
    pub fn map_store(
        self,
        wrap: impl FnOnce(Arc<dyn ObjectStore>) -> Arc<dyn ObjectStore>,
    ) -> Self {
        ObjectRoot {
            store: wrap(self.store),
            local_root: self.local_root,
        }
    }

    /// Whether objects are local files.
    pub fn is_local(&self) -> bool {
        self.local_root.is_some()
    }

    /// The store, for readers.
    pub fn store(&self) -> Arc<dyn ObjectStore> {
        self.store.clone()
    }

    /// Writes `bytes` at `key` atomically and durably.
    pub async fn put_durable(&self, key: &str, bytes: Vec<u8>) -> Result<(), ObjectRootError> {
        if self.local_root.is_none() && bytes.len() > MULTIPART_THRESHOLD {
            let bytes = Bytes::from(bytes);
            let parts = (0..bytes.len())
                .step_by(PART_SIZE)
                .map(|at| {
                    Ok::<_, std::convert::Infallible>(
                        bytes.slice(at..(at + PART_SIZE).min(bytes.len())),
                    )
                })
                .collect::<Vec<_>>();
            return self.put_parts(key, futures::stream::iter(parts)).await;
        }
        self.store
            .put(&object_path(key)?, PutPayload::from(bytes))
            .await?;
        self.sync(key).await
    }

    /// Uploads the parts `parts` yields as one object at `key`, visible only once all of them
    /// are uploaded (a multipart upload; S3 needs every part but the last ≥ 5 MiB). When a part
    /// cannot be produced or uploaded, the upload is aborted: nothing stays behind, neither an
    /// object nor the uploaded parts.
    pub async fn put_parts<E: std::fmt::Display>(
        &self,
        key: &str,
        parts: impl Stream<Item = Result<Bytes, E>>,
    ) -> Result<(), ObjectRootError> {
        let mut upload = self.store.put_multipart(&object_path(key)?).await?;
        let mut parts = std::pin::pin!(parts);
        let failure = loop {
            match parts.next().await {
                None => match upload.complete().await {
                    Ok(_) => return self.sync(key).await,
                    Err(e) => break e.to_string(),
                },
                Some(Err(e)) => break e.to_string(),
                Some(Ok(part)) => {
                    if let Err(e) = upload.put_part(PutPayload::from(part)).await {
                        break e.to_string();
                    }
                }
            }
        };
        if let Err(e) = upload.abort().await {
            tracing::warn!(key, error = %e, "cannot abort a failed multipart upload");
        }
        Err(ObjectRootError::Aborted {
            key: key.into(),
            reason: failure,
        })
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
        Ok(self
            .list_sized(prefix)
            .await?
            .into_iter()
            .map(|(k, _)| k)
            .collect())
    }

    /// The keys below `prefix` with their sizes in bytes.
    pub async fn list_sized(&self, prefix: &str) -> Result<Vec<(String, u64)>, ObjectRootError> {
        let metas: Vec<_> = self
            .store
            .list(Some(&object_path(prefix)?))
            .try_collect()
            .await?;
        Ok(metas
            .into_iter()
            .map(|m| (m.location.to_string(), m.size))
            .collect())
    }

    /// Whether an object exists at `key`.
    pub async fn exists(&self, key: &str) -> Result<bool, ObjectRootError> {
        match self.store.head(&object_path(key)?).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(e.into()),
        }
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
            ObjectRoot::open("gs://bucket/x"),
            Err(ObjectRootError::UnsupportedRoot(_))
        ));
        assert!(matches!(
            ObjectRoot::open("s3:///x"),
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
        assert!(lake.exists("c/1").await.expect("head"));
        assert!(!lake.exists("c/2").await.expect("head"));
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
