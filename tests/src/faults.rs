//! Fault injection into the lake's object store, for the crash tests.
//!
//! Contract: [`FaultyStore`] wraps an object store and passes every call through, except that
//! it can kill the process at a chosen data-file (`*.parquet`) change, the way a crash would:
//! `abort_in_write = n` aborts in the middle of the `n`-th data-file write (counted from the
//! process's start), after leaving half of the file as the staging file (`<file>#1`) that a
//! local write cut short leaves; `abort_after = n` aborts right after the `n`-th data-file
//! write or delete succeeded. Ledger, journal and lock objects pass untouched and are not
//! counted. The `northstar-sink-faulty` binary is `northstar-sink` with this store, configured
//! by [`from_env`]; the shipped binaries have no such path.

use std::fmt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use futures::stream::{BoxStream, StreamExt};
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMultipartOptions, PutOptions, PutPayload, PutResult, Result,
};

/// Aborts in the middle of the `n`-th data-file write (see the module header).
pub const ABORT_IN_WRITE: &str = "NORTHSTAR_FAULT_ABORT_IN_WRITE";
/// Aborts right after the `n`-th data-file write or delete.
pub const ABORT_AFTER: &str = "NORTHSTAR_FAULT_ABORT_AFTER";
/// What the store prints when it aborts in a write (the tests look for it in the log).
pub const ABORT_IN_WRITE_MESSAGE: &str = "fault injection: aborting in the middle of a write";

/// When to abort.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Faults {
    pub abort_in_write: Option<u64>,
    pub abort_after: Option<u64>,
}

#[derive(Debug, Default)]
struct Counts {
    writes: AtomicU64,
    changes: AtomicU64,
}

/// An object store that aborts the process at a chosen data-file change.
pub struct FaultyStore {
    inner: Arc<dyn ObjectStore>,
    /// The directory of a local store, where a cut-short write leaves its staging file.
    local_root: Option<PathBuf>,
    faults: Faults,
    counts: Arc<Counts>,
}

impl fmt::Debug for FaultyStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FaultyStore({:?}, {})", self.faults, self.inner)
    }
}

impl fmt::Display for FaultyStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FaultyStore({})", self.inner)
    }
}

fn is_data_file(location: &Path) -> bool {
    location.as_ref().ends_with(".parquet")
}

impl FaultyStore {
    pub fn new(inner: Arc<dyn ObjectStore>, local_root: Option<PathBuf>, faults: Faults) -> Self {
        Self {
            inner,
            local_root,
            faults,
            counts: Arc::default(),
        }
    }

    /// Before a write of `location`: aborts if this is the write to cut short.
    fn before_write(&self, location: &Path, payload: &PutPayload) {
        if !is_data_file(location) {
            return;
        }
        let n = self.counts.writes.fetch_add(1, Ordering::Relaxed) + 1;
        if self.faults.abort_in_write != Some(n) {
            return;
        }
        if let Some(root) = &self.local_root {
            let file = root.join(location.as_ref());
            let bytes: Vec<u8> = payload.iter().flat_map(|b| b.iter().copied()).collect();
            let _ = std::fs::create_dir_all(file.parent().unwrap_or(root));
            let _ = std::fs::write(format!("{}#1", file.display()), &bytes[..bytes.len() / 2]);
        }
        eprintln!("{ABORT_IN_WRITE_MESSAGE} ({location})");
        std::process::abort();
    }
}

/// After a data-file write or delete succeeded: aborts if it is the chosen one.
fn after_change(faults: Faults, counts: &Counts, location: &Path) {
    if !is_data_file(location) {
        return;
    }
    let n = counts.changes.fetch_add(1, Ordering::Relaxed) + 1;
    if faults.abort_after == Some(n) {
        eprintln!("fault injection: aborting after data-file change {n} ({location})");
        std::process::abort();
    }
}

#[async_trait::async_trait]
impl ObjectStore for FaultyStore {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> Result<PutResult> {
        self.before_write(location, &payload);
        let result = self.inner.put_opts(location, payload, opts).await?;
        after_change(self.faults, &self.counts, location);
        Ok(result)
    }

    /// Multipart uploads (large files on S3) pass through uncounted.
    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> Result<Box<dyn MultipartUpload>> {
        self.inner.put_multipart_opts(location, opts).await
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> Result<GetResult> {
        self.inner.get_opts(location, options).await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, Result<Path>>,
    ) -> BoxStream<'static, Result<Path>> {
        let (faults, counts) = (self.faults, self.counts.clone());
        self.inner
            .delete_stream(locations)
            .inspect(move |deleted| {
                if let Ok(location) = deleted {
                    after_change(faults, &counts, location);
                }
            })
            .boxed()
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
        self.inner.list(prefix)
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> Result<ListResult> {
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> Result<()> {
        self.inner.copy_opts(from, to, options).await
    }
}

/// The faults named by [`ABORT_IN_WRITE`] and [`ABORT_AFTER`] in the environment.
pub fn from_env() -> Faults {
    let read = |k: &str| std::env::var(k).ok().and_then(|v| v.parse().ok());
    Faults {
        abort_in_write: read(ABORT_IN_WRITE),
        abort_after: read(ABORT_AFTER),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use object_store::memory::InMemory;
    use object_store::ObjectStoreExt;

    #[tokio::test]
    async fn passes_through_and_counts_only_data_files() {
        let store = FaultyStore::new(Arc::new(InMemory::new()), None, Faults::default());
        for key in ["a/x.parquet", "ledger/o1.json", "a/y.parquet"] {
            store
                .put(&Path::from(key), PutPayload::from_static(b"abc"))
                .await
                .expect("put");
        }
        store
            .delete(&Path::from("a/x.parquet"))
            .await
            .expect("delete");
        assert_eq!(store.counts.writes.load(Ordering::Relaxed), 2);
        assert_eq!(store.counts.changes.load(Ordering::Relaxed), 3);
        let got = store.get(&Path::from("a/y.parquet")).await.expect("get");
        assert_eq!(got.bytes().await.expect("bytes").as_ref(), b"abc");
    }
}
