//! Checkpoints: each input partition's state together with the input offset it reflects.
//!
//! Contract: a checkpoint is an immutable object `<prefix>/p<partition>/o<next offset>.ckpt`,
//! written with create-only semantics and fsynced before the offset is committed. Because
//! processing is deterministic, two instances that checkpoint the same partition at the same
//! offset write the same state, and a stale instance can only add an *older* checkpoint, never
//! replace a newer one: restoring always takes the highest offset, so a stale writer cannot move
//! a partition backwards (fencing by construction, no broker transactions or conditional
//! updates needed). The newest `keep` checkpoints per partition are kept.
//!
//! Format 3 describes each KPI of the state by name and semantic fingerprint, so that a
//! catalog edit keeps every unchanged KPI's windows (`state::evolve`). Format 2 checkpoints
//! (one fingerprint for the whole catalog) are read: when that fingerprint matches the running
//! catalog every KPI carries over, else every KPI restarts with its windows up to the
//! checkpoint's watermark marked incomplete.

use std::sync::Arc;

use northstar_runtime::objstore::{ObjectRoot, ObjectRootError};
use serde::{Deserialize, Serialize};

use crate::catalog::Catalog;
use crate::state::evolve::{self, Mapping};
use crate::state::{PartitionState, StateSnapshot, StateSnapshotV2, StateSnapshotV3};

/// The checkpoint format version.
const FORMAT: u32 = 4;

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
    next_offset: i64,
    /// The id of the input topic the state was read from, when the brokers report one.
    topic_id: Option<String>,
    state: StateSnapshot,
}

/// Format 3 (segment values admitted per partition, not per window).
#[derive(Serialize, Deserialize)]
struct EnvelopeV3 {
    format: u32,
    next_offset: i64,
    state: StateSnapshotV3,
}

/// Format 2.
#[derive(Serialize, Deserialize)]
struct EnvelopeV2 {
    format: u32,
    catalog_fingerprint: u64,
    next_offset: i64,
    state: StateSnapshotV2,
}

/// A restored partition.
#[derive(Debug)]
pub struct Restored {
    pub state: PartitionState,
    /// The first input offset not reflected in the state.
    pub next_offset: i64,
    /// Which KPIs of the checkpoint carried over (dedup and watermark always do).
    pub mapping: Mapping,
    /// The KPI names the checkpoint had.
    pub checkpoint_kpis: Vec<String>,
    /// The input topic's id when the checkpoint was written (`None`: unknown, or a format
    /// before 4).
    pub topic_id: Option<String>,
}

/// The checkpoints of one consumer group on one input topic.
#[derive(Debug, Clone)]
pub struct Checkpoints {
    root: ObjectRoot,
    prefix: String,
    keep: usize,
    catalog: Arc<Catalog>,
    /// The input topic's current id, written into every checkpoint (outer `None`: not read
    /// since the last rebalance).
    topic_id: Option<Option<String>>,
}

/// The whole-catalog fingerprint of format 2 checkpoints ([`Catalog::computation_text`]).
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
        Self {
            root,
            prefix: format!("checkpoints/{group}/{topic}"),
            keep: keep.max(1),
            catalog,
            topic_id: None,
        }
    }

    /// Sets the input topic's id that checkpoints written from now on record.
    pub fn set_topic_id(&mut self, id: Option<String>) {
        self.topic_id = Some(id);
    }

    /// The input topic's id as last read, if it was read since the last rebalance.
    pub fn topic_id(&self) -> Option<Option<&str>> {
        self.topic_id.as_ref().map(Option::as_deref)
    }

    /// A rebalance: the id is read again at the next assignment (the topic may have been
    /// recreated meanwhile).
    pub fn forget_topic_id(&mut self) {
        self.topic_id = None;
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
            next_offset,
            topic_id: self.topic_id.clone().flatten(),
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

    /// Whether the store answers (one metadata request for a key that need not exist).
    pub async fn probe(&self) -> Result<(), CheckpointError> {
        self.root.exists(&format!("{}/probe", self.prefix)).await?;
        Ok(())
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
        let (found, topic_id, snapshot) = self.decode(&key, &bytes)?;
        if found != next_offset {
            return Err(CheckpointError::Corrupt {
                key,
                reason: format!("it holds offset {found}"),
            });
        }
        let checkpoint_kpis = snapshot.kpi_names();
        let (state, mapping) = PartitionState::restore(
            self.catalog.clone(),
            lateness_ms,
            dedup_window_secs,
            snapshot,
        );
        Ok(Some(Restored {
            state,
            next_offset,
            mapping,
            checkpoint_kpis,
            topic_id,
        }))
    }

    /// The offset, topic id and snapshot of a checkpoint of format 4, 3 or 2.
    fn decode(
        &self,
        key: &str,
        bytes: &[u8],
    ) -> Result<(i64, Option<String>, StateSnapshot), CheckpointError> {
        let corrupt = |e: postcard::Error| CheckpointError::Corrupt {
            key: key.to_string(),
            reason: e.to_string(),
        };
        // The format comes first: read it alone so that another version's checkpoint gets an
        // actionable error rather than a decoding failure.
        let (format, _) = postcard::take_from_bytes::<u32>(bytes).map_err(corrupt)?;
        match format {
            FORMAT => {
                let env: Envelope = postcard::from_bytes(bytes).map_err(corrupt)?;
                Ok((env.next_offset, env.topic_id, env.state))
            }
            3 => {
                let env: EnvelopeV3 = postcard::from_bytes(bytes).map_err(corrupt)?;
                Ok((env.next_offset, None, env.state.upgrade()))
            }
            2 => {
                let env: EnvelopeV2 = postcard::from_bytes(bytes).map_err(corrupt)?;
                let kpis = if env.catalog_fingerprint == catalog_fingerprint(&self.catalog) {
                    let all = vec![i64::MIN; self.catalog.kpis.len()];
                    evolve::catalog_meta(&self.catalog, &all)
                } else {
                    Vec::new()
                };
                Ok((env.next_offset, None, env.state.upgrade(kpis)))
            }
            found => Err(CheckpointError::Format {
                key: key.to_string(),
                found,
                expected: FORMAT,
            }),
        }
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
            r.map(|r| (r.next_offset, r.mapping.restarted(&c.catalog).is_empty())),
            Some((30, true))
        );
    }

    /// A checkpoint of the previous format carries every KPI over when the catalog computes
    /// what it computed then, and restarts them all (marked incomplete) otherwise.
    #[tokio::test]
    async fn format_2_checkpoints_are_read() {
        let dir = tempfile::tempdir().expect("tempdir");
        let c = setup(&dir);
        let mut state = PartitionState::new(c.catalog.clone(), 600_000, 86_400);
        let event = crate::test_events::track("Signed Up", "u", "m", "{}", "{}");
        state.count(&event, 120_000);
        let v2 = |fingerprint: u64| EnvelopeV2 {
            format: 2,
            catalog_fingerprint: fingerprint,
            next_offset: 7,
            state: state.snapshot_v2(),
        };
        let same = postcard::to_allocvec(&v2(catalog_fingerprint(&c.catalog))).expect("encode");
        c.root
            .create_durable(&c.key(0, 7), same)
            .await
            .expect("write");
        let r = c
            .restore(0, 600_000, 86_400)
            .await
            .expect("restore")
            .expect("some");
        assert!(r.mapping.restarted(&c.catalog).is_empty());
        assert_eq!(r.state.open_windows(), 3, "1m, 1h and 1d");
        let other = postcard::to_allocvec(&v2(1)).expect("encode");
        c.root
            .create_durable(&c.key(1, 7), other)
            .await
            .expect("write");
        let r = c
            .restore(1, 600_000, 86_400)
            .await
            .expect("restore")
            .expect("some");
        assert_eq!(r.mapping.restarted(&c.catalog), vec!["e"]);
        assert_eq!(r.state.open_windows(), 0);
        assert_eq!(r.mapping.full_input_after_ms, vec![120_000]);
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
