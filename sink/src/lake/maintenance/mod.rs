//! Maintenance commands over the lake (`northstar-sink lake-admin …`): compaction, retention,
//! erasure of one user's events, and the replay of dead letters (`replay/`).
//!
//! Contract, for every command:
//! - **Row sets.** Compaction never changes the set of rows; retention removes exactly the
//!   partitions before its cutoff; erasure removes exactly the rows of the given user and
//!   anonymous ids. Every other row stays as it was.
//! - **Crash-safe and idempotent.** Each data file is replaced or deleted by one atomic object
//!   operation. Compaction first records its plan in a journal
//!   (`_state/maintenance/compact/<output>.json`), writes the merged file, deletes the inputs,
//!   then the journal; every command first completes the journals a crashed run left, so
//!   running a command again after a crash finishes the work without duplicating or losing a
//!   row. Running it again after success changes nothing.
//! - **Only final files.** A file whose `events.clean` range is not yet in the sink's ledger
//!   may still be rewritten by a flush the sink repeats; compaction and retention leave those
//!   alone and erasure reports them (run it again once the sink has caught up).
//! - **One at a time.** A lock object (`_state/maintenance/lock`) keeps two runs apart; a run
//!   killed before releasing it is named in the error, `--break-lock` takes it over.
//! - **Replay** only reads the lake (and writes its journal under `_state/replay/`); it holds
//!   the lock so that an erasure cannot run between the letters it reads and what it sends.
//! - **Audit.** Erasure and retention leave a record under `_audit/` of what they rewrote or
//!   deleted (user ids only as SHA-256 hashes).
//! - **Progress.** Long runs report on standard error every few seconds; the summary is one
//!   JSON object on standard output.

mod compact;
mod erase;
pub mod merge;
pub mod replay;
mod retention;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::Context;
use arrow::array::RecordBatch;
use bytes::Bytes;
use northstar_runtime::objstore::ObjectRoot;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use serde::{Deserialize, Serialize};

pub use compact::CompactOptions;
pub use erase::{EraseOptions, SuppressTarget};
pub use replay::ReplayOptions;
pub use retention::RetentionOptions;

use super::layout::{parse_file_name, Table};
use super::ledger;

/// Where maintenance keeps its lock and journals.
const STATE: &str = "_state/maintenance";

/// One maintenance command.
#[derive(Debug, Clone)]
pub enum Command {
    Compact(CompactOptions),
    Retention(RetentionOptions),
    Erase(EraseOptions),
    Replay(Box<ReplayOptions>),
}

/// The tables a command covers.
pub fn tables(which: &str) -> anyhow::Result<Vec<Table>> {
    Ok(match which {
        "events" => vec![Table::Events],
        "dlq" => vec![Table::DeadLetters],
        "all" => vec![Table::Events, Table::DeadLetters],
        other => anyhow::bail!("unknown table {other:?}: events, dlq or all"),
    })
}

/// Runs `command` on the lake at `root`; returns its summary.
pub async fn run(
    root: ObjectRoot,
    command: Command,
    break_lock: bool,
) -> anyhow::Result<serde_json::Value> {
    let lake = Lake::open(root).await?;
    lake.lock(&command, break_lock).await?;
    let result = async {
        let resumed = compact::resume_journals(&lake).await?;
        let mut summary = match &command {
            Command::Compact(o) => compact::run(&lake, o).await?,
            Command::Retention(o) => retention::run(&lake, o).await?,
            Command::Erase(o) => erase::run(&lake, o).await?,
            Command::Replay(o) => serde_json::to_value(replay::run(&lake, o).await?)?,
        };
        if resumed > 0 {
            summary["resumed_compactions"] = resumed.into();
        }
        anyhow::Ok(summary)
    }
    .await;
    lake.unlock().await?;
    result
}

/// A data file of a table.
#[derive(Debug, Clone)]
pub(crate) struct DataFile {
    pub key: String,
    pub size: u64,
}

impl DataFile {
    /// The directory (table and partition values) of the file.
    pub fn dir(&self) -> &str {
        self.key.rsplit_once('/').map_or("", |(d, _)| d)
    }

    pub fn name(&self) -> &str {
        self.key.rsplit_once('/').map_or(&self.key, |(_, n)| n)
    }

    /// The value of partition column `column` in its path (`event_date`…).
    pub fn partition_value(&self, column: &str) -> Option<&str> {
        self.dir()
            .split('/')
            .find_map(|seg| seg.strip_prefix(column)?.strip_prefix('='))
    }
}

/// The lake as maintenance sees it: its store and which sink ranges are final.
pub(crate) struct Lake {
    pub root: ObjectRoot,
    committed: BTreeMap<(String, i32), i64>,
}

#[derive(Debug, Serialize, Deserialize)]
struct LockRecord {
    command: String,
    pid: u32,
    host: String,
    started_at: String,
}

impl Lake {
    async fn open(root: ObjectRoot) -> anyhow::Result<Lake> {
        let committed = ledger::committed(&root)
            .await
            .context("cannot read the lake sink's ledger")?;
        Ok(Lake { root, committed })
    }

    async fn lock(&self, command: &Command, break_lock: bool) -> anyhow::Result<()> {
        let key = format!("{STATE}/lock");
        let record = LockRecord {
            command: format!("{command:?}"),
            pid: std::process::id(),
            host: std::env::var("HOSTNAME").unwrap_or_default(),
            started_at: chrono::Utc::now().to_rfc3339(),
        };
        let bytes = serde_json::to_vec(&record)?;
        if self.root.create_durable(&key, bytes.clone()).await? {
            return Ok(());
        }
        let held = self.root.get(&key).await.unwrap_or_default();
        let held = String::from_utf8_lossy(&held);
        if !break_lock {
            anyhow::bail!(
                "another maintenance run holds the lake's lock ({key}: {held}); if that process \
                 is gone, run again with --break-lock (its journals are completed first)"
            );
        }
        tracing::warn!(lock = %held, "breaking the maintenance lock");
        self.root.put_durable(&key, bytes).await?;
        Ok(())
    }

    async fn unlock(&self) -> anyhow::Result<()> {
        self.root.delete(&format!("{STATE}/lock")).await?;
        Ok(())
    }

    /// The data files of `table`, by key (staging leftovers and other objects skipped).
    pub async fn files(&self, table: Table) -> anyhow::Result<Vec<DataFile>> {
        let mut files: Vec<DataFile> = self
            .root
            .list_sized(table.dir())
            .await?
            .into_iter()
            .filter(|(k, _)| k.ends_with(".parquet") && !k.contains('#'))
            .map(|(key, size)| DataFile { key, size })
            .collect();
        files.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(files)
    }

    /// Whether no flush of the sink can rewrite `file` any more: a compacted file, or a flushed
    /// range that the ledger has recorded.
    pub fn is_final(&self, file: &DataFile) -> bool {
        if file.name().starts_with(compact::OUTPUT_PREFIX) {
            return true;
        }
        parse_file_name(file.name()).is_some_and(|r| {
            self.committed
                .get(&(r.topic, r.partition))
                .is_some_and(|&next| r.last < next)
        })
    }

    /// All rows of the file at `key`, as one batch.
    pub async fn read(&self, key: &str) -> anyhow::Result<RecordBatch> {
        let bytes = self.fetch(key).await?;
        decode(bytes, key, None).await
    }

    /// The bytes of the lake file `key`.
    pub async fn fetch(&self, key: &str) -> anyhow::Result<Bytes> {
        Ok(Bytes::from(self.root.get(key).await?))
    }

    /// Writes `batch` as the lake file `key` (atomically replacing any file there).
    pub async fn write(&self, key: &str, batch: RecordBatch) -> anyhow::Result<u64> {
        let bytes =
            tokio::task::spawn_blocking(move || super::parquet::write_file(&batch)).await??;
        let size = bytes.len() as u64;
        self.root.put_durable(key, bytes).await?;
        Ok(size)
    }

    /// Deletes the lake file `key`.
    pub async fn remove(&self, key: &str) -> anyhow::Result<()> {
        self.root.delete(key).await?;
        Ok(())
    }
}

/// The rows of a Parquet file's `bytes` (`key` names it in errors), as one batch: every column,
/// or only those of `columns` the file has (decoding only what a scan looks at).
pub(crate) async fn decode(
    bytes: Bytes,
    key: &str,
    columns: Option<&'static [&'static str]>,
) -> anyhow::Result<RecordBatch> {
    let key = key.to_string();
    tokio::task::spawn_blocking(move || -> anyhow::Result<RecordBatch> {
        let mut builder = ParquetRecordBatchReaderBuilder::try_new(bytes)
            .with_context(|| format!("{key} is not a Parquet file"))?;
        if let Some(columns) = columns {
            let mask = parquet::arrow::ProjectionMask::columns(
                builder.parquet_schema(),
                columns.iter().copied(),
            );
            builder = builder.with_projection(mask);
        }
        let reader = builder.build()?;
        // The schema of what is read (the projection's), not the file's.
        let schema = arrow::array::RecordBatchReader::schema(&reader);
        let batches = reader.collect::<Result<Vec<_>, _>>()?;
        Ok(arrow::compute::concat_batches(&schema, &batches)?)
    })
    .await?
}

/// Progress on standard error: at most every few seconds, and at the end.
pub(crate) struct Progress {
    what: &'static str,
    total: usize,
    last: Instant,
}

impl Progress {
    pub fn new(what: &'static str, total: usize) -> Self {
        eprintln!("{what}: {total} to examine");
        Self {
            what,
            total,
            last: Instant::now(),
        }
    }

    pub fn step(&mut self, done: usize, detail: impl FnOnce() -> String) {
        if done == self.total || self.last.elapsed() >= Duration::from_secs(3) {
            self.last = Instant::now();
            eprintln!("{}: {done}/{} — {}", self.what, self.total, detail());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partition_values_come_from_the_path() {
        let f = DataFile {
            key: "events/event_date=2026-11-20/event_hour=07/event_name=Signed%20Up/part-x.parquet"
                .into(),
            size: 1,
        };
        assert_eq!(f.partition_value("event_date"), Some("2026-11-20"));
        assert_eq!(f.partition_value("event_hour"), Some("07"));
        assert_eq!(f.partition_value("event_name"), Some("Signed%20Up"));
        assert_eq!(f.partition_value("event"), None);
        assert_eq!(f.name(), "part-x.parquet");
    }
}
