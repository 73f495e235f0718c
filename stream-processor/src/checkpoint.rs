//! Checkpoints: each input partition's state together with the input offset it reflects.
//!
//! Contract: a checkpoint is an immutable object `<prefix>/p<partition>/o<next offset>.ckpt`,
//! written with create-only semantics and fsynced before the offset is committed. Because
//! processing is deterministic, two instances that checkpoint the same partition at the same
//! offset write the same state, and a stale instance can only add an *older* checkpoint, never
//! replace a newer one: restoring always takes the highest offset, so a stale writer cannot move
//! a partition backwards (fencing by construction, no broker transactions or conditional
//! updates needed). The newest `keep` checkpoints per partition are kept.

use std::sync::Arc;

use northstar_runtime::objstore::{ObjectRoot, ObjectRootError};
use serde::{Deserialize, Serialize};

use crate::catalog::Catalog;
use crate::state::{PartitionState, StateSnapshot};

/// The checkpoint format version.
const FORMAT: u32 = 2;

/// A checkpoint that could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error(transparent)]
    Store(#[from] ObjectRootError),
    #[error("checkpoint {key} is unreadable: {reason}")]
    Corrupt { key: String, reason: String },
    #[error(
        "checkpoint {key} has format {found}, this version reads format {expected}: it was \
         written by another version of the processor. To continue without it, move the \
         partition's checkpoints away (dedup state and open windows then restart empty, and \
         input is read from the consumer group's committed offset)"
    )]
    Format {
        key: String,
        found: u32,
        expected: u32,
    },
}

#[derive(Serialize, Deserialize)]
struct Envelope {
    format: u32,
    catalog_fingerprint: u64,
    next_offset: i64,
    state: StateSnapshot,
}

/// A restored partition.
#[derive(Debug)]
pub struct Restored {
    pub state: PartitionState,
    /// The first input offset not reflected in the state.
    pub next_offset: i64,
    /// False when the catalog changed since the checkpoint: windows restart empty (dedup and
    /// watermark are kept).
    pub windows_restored: bool,
}

/// The checkpoints of one consumer group on one input topic.
#[derive(Debug, Clone)]
pub struct Checkpoints {
    root: ObjectRoot,
    prefix: String,
    keep: usize,
    catalog: Arc<Catalog>,
    catalog_fingerprint: u64,
}

/// A stable fingerprint of what the catalog computes ([`Catalog::computation_text`]): a
/// changed computation invalidates window state; a changed description, owner or alert does not.
pub fn catalog_fingerprint(catalog: &Catalog) -> u64 {
    crate::dedup::fingerprint_parts(&[&catalog.computation_text()])
}

impl Checkpoints {
    pub fn new(
        root: ObjectRoot,
        group: &str,
        topic: &str,
        keep: usize,
        catalog: Arc<Catalog>,
    ) -> Self {
        let catalog_fingerprint = catalog_fingerprint(&catalog);
        Self {
            root,
            prefix: format!("checkpoints/{group}/{topic}"),
            keep: keep.max(1),
            catalog,
            catalog_fingerprint,
        }
    }

    fn dir(&self, partition: i32) -> String {
        format!("{}/p{partition}", self.prefix)
    }

    fn key(&self, partition: i32, next_offset: i64) -> String {
        format!("{}/o{next_offset:020}.ckpt", self.dir(partition))
    }

    /// Writes the checkpoint of `partition` at `next_offset`; returns its size in bytes.
    pub async fn save(
        &self,
        partition: i32,
        next_offset: i64,
        state: &PartitionState,
    ) -> Result<usize, CheckpointError> {
        let key = self.key(partition, next_offset);
        let env = Envelope {
            format: FORMAT,
            catalog_fingerprint: self.catalog_fingerprint,
            next_offset,
            state: state.snapshot(),
        };
        let bytes = postcard::to_allocvec(&env).map_err(|e| CheckpointError::Corrupt {
            key: key.clone(),
            reason: e.to_string(),
        })?;
        let size = bytes.len();
        self.root.create_durable(&key, bytes).await?;
        Ok(size)
    }

    /// The offsets of the stored checkpoints of `partition`, ascending.
    async fn offsets(&self, partition: i32) -> Result<Vec<i64>, CheckpointError> {
        let mut offsets: Vec<i64> = self
            .root
            .list(&self.dir(partition))
            .await?
            .iter()
            .filter_map(|k| k.rsplit('/').next())
            .filter_map(|name| name.strip_prefix('o')?.strip_suffix(".ckpt")?.parse().ok())
            .collect();
        offsets.sort_unstable();
        Ok(offsets)
    }

    /// Restores the newest checkpoint of `partition`, if any.
    pub async fn restore(
        &self,
        partition: i32,
        lateness_ms: i64,
        dedup_window_secs: u32,
    ) -> Result<Option<Restored>, CheckpointError> {
        let Some(&next_offset) = self.offsets(partition).await?.last() else {
            return Ok(None);
        };
        let key = self.key(partition, next_offset);
        let bytes = self.root.get(&key).await?;
        // The format comes first: read it alone so that another version's checkpoint gets an
        // actionable error rather than a decoding failure.
        if let Ok((format, _)) = postcard::take_from_bytes::<u32>(&bytes) {
            if format != FORMAT {
                return Err(CheckpointError::Format {
                    key,
                    found: format,
                    expected: FORMAT,
                });
            }
        }
        let env: Envelope = postcard::from_bytes(&bytes).map_err(|e| CheckpointError::Corrupt {
            key: key.clone(),
            reason: e.to_string(),
        })?;
        if env.format != FORMAT || env.next_offset != next_offset {
            return Err(CheckpointError::Corrupt {
                key,
                reason: format!("format {} at offset {}", env.format, env.next_offset),
            });
        }
        let windows_restored = env.catalog_fingerprint == self.catalog_fingerprint;
        let state = PartitionState::restore(
            self.catalog.clone(),
            lateness_ms,
            dedup_window_secs,
            env.state,
            windows_restored,
        );
        Ok(Some(Restored {
            state,
            next_offset,
            windows_restored,
        }))
    }

    /// Deletes all but the newest `keep` checkpoints of `partition`.
    pub async fn prune(&self, partition: i32) -> Result<(), CheckpointError> {
        let offsets = self.offsets(partition).await?;
        if offsets.len() > self.keep {
            for o in &offsets[..offsets.len() - self.keep] {
                self.root.delete(&self.key(partition, *o)).await?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setup(dir: &tempfile::TempDir) -> Checkpoints {
        let root = ObjectRoot::open(&format!("file://{}", dir.path().display())).expect("root");
        let catalog = Arc::new(
            Catalog::parse("north_star: e\nkpis:\n  - {name: e, aggregate: count}\n")
                .expect("catalog"),
        );
        Checkpoints::new(root, "g", "events.raw", 2, catalog)
    }

    #[tokio::test]
    async fn restores_the_newest_and_prunes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let c = setup(&dir);
        assert!(c
            .restore(0, 600_000, 86_400)
            .await
            .expect("empty")
            .is_none());
        let state = PartitionState::new(c.catalog.clone(), 600_000, 86_400);
        for offset in [10, 20, 30] {
            c.save(0, offset, &state).await.expect("save");
        }
        c.prune(0).await.expect("prune");
        assert_eq!(c.offsets(0).await.expect("offsets"), vec![20, 30]);
        let r = c.restore(0, 600_000, 86_400).await.expect("restore");
        assert_eq!(
            r.map(|r| (r.next_offset, r.windows_restored)),
            Some((30, true))
        );
    }

    #[test]
    fn people_fields_do_not_change_the_fingerprint() {
        let base = "north_star: e\nkpis:\n  - {name: e, aggregate: count, windows: [1h], segments: [event]}\n";
        let edited = "north_star: e\nkpis:\n  - {name: e, aggregate: count, windows: [1h], segments: [event], description: Every event, owner: sre, runbook: look, alerts: [{below: 3, window: 1h}]}\n";
        let changed = "north_star: e\nkpis:\n  - {name: e, aggregate: count, windows: [1h, 1d], segments: [event]}\n";
        let fp = |y: &str| catalog_fingerprint(&Catalog::parse(y).expect("catalog"));
        assert_eq!(fp(base), fp(edited));
        assert_ne!(fp(base), fp(changed));
    }

    #[tokio::test]
    async fn another_format_is_refused_with_an_actionable_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        let c = setup(&dir);
        let old = postcard::to_allocvec(&(1u32, 0u64, 5i64)).expect("encode");
        c.root
            .create_durable(&c.key(0, 5), old)
            .await
            .expect("write");
        let e = c.restore(0, 600_000, 86_400).await.expect_err("refused");
        assert!(
            matches!(
                e,
                CheckpointError::Format {
                    found: 1,
                    expected: FORMAT,
                    ..
                }
            ),
            "{e}"
        );
        assert!(
            e.to_string()
                .contains("move the partition's checkpoints away"),
            "{e}"
        );
    }
}
