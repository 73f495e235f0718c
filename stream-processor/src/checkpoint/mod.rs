//! Checkpoints: each input partition's state together with the input offset it reflects.
//!
//! Contract: a checkpoint is an immutable manifest `<prefix>/p<partition>/o<next
//! offset>.<writer>.ckpt` (format 5) holding the open windows, the watermark and the list of
//! dedup [`segments`] that hold the remembered ids; a checkpoint writes only the ids written
//! since the previous one, plus merges that keep the segment count bounded, and it is written
//! by a background task ([`writer`]) off the consume loop. Every object is written with
//! create-only semantics and fsynced before the offset is committed. Because processing is
//! deterministic, any writer's manifest at offset *n* describes the same state, and a stale
//! instance can only add manifests and segments under its own writer name, never replace or
//! (while its manifests are among the newest) delete another's: restoring takes the highest
//! offset whose segments are all readable, so a stale writer cannot move a partition
//! backwards (fencing by construction, no broker transactions or conditional updates). A
//! restore from another writer's manifest (or from an older format) starts this writer's chain
//! with one new top segment holding the restored ids (docs/adr/0015).
//!
//! Format 4, 3 and 2 checkpoints (`o<next offset>.ckpt`, one full snapshot each) are read.
//! Format 3 and later describe each KPI by name and semantic fingerprint, so that a catalog
//! edit keeps every unchanged KPI's windows (`state::evolve`). Format 2 (one fingerprint for
//! the whole catalog): when that fingerprint matches the running catalog every KPI carries
//! over, else every KPI restarts with its windows up to the checkpoint's watermark marked
//! incomplete.

use std::sync::Arc;

use futures::{StreamExt, TryStreamExt};
use northstar_runtime::objstore::{ObjectRoot, ObjectRootError};
use serde::{Deserialize, Serialize};

use crate::catalog::Catalog;
use crate::state::evolve::{self, Mapping};
use crate::state::{PartitionState, StateSnapshot, StateSnapshotV2, StateSnapshotV3};
use segments::{Chain, SegmentRef};

pub mod segments;
pub mod writer;

/// The checkpoint format version.
const FORMAT: u32 = 5;
/// Segment fetches in flight during a restore.
const RESTORE_FETCHES: usize = 8;

/// A checkpoint that could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error(transparent)]
    Store(#[from] ObjectRootError),
    #[error("checkpoint {key} is unreadable: {reason}")]
    Corrupt { key: String, reason: String },
    #[error(
        "checkpoint {key} has format {found}, this version reads formats 2 to {expected}: it \
         was written by another version of the processor. To continue without it, move the \
         partition's checkpoints away (dedup state and open windows then restart empty, and \
         input is read from the consumer group's committed offset)"
    )]
    Format {
        key: String,
        found: u32,
        expected: u32,
    },
}

/// Format 5: the state without its ids, and the segments that hold them.
#[derive(Serialize, Deserialize)]
struct Manifest {
    format: u32,
    next_offset: i64,
    /// The id of the input topic the state was read from, when the brokers report one.
    topic_id: Option<String>,
    writer: String,
    segments: Chain,
    state: StateSnapshot,
}

/// Format 4 (a full snapshot, ids included).
#[derive(Serialize, Deserialize)]
struct EnvelopeV4 {
    format: u32,
    next_offset: i64,
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

/// Where this writer's chain of segments starts for a restored partition.
#[derive(Debug)]
pub enum Base {
    /// The restored manifest is this writer's own: its segments carry on.
    Own(Chain),
    /// Another writer's (or an older format's): the restored ids become one new top segment
    /// of this writer, written before its first checkpoint of the partition.
    Rebase { segment: SegmentRef, bytes: Vec<u8> },
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
    pub base: Base,
    /// Bytes read (manifest and segments).
    pub bytes: u64,
}

/// A stored object of a partition's directory, by name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stored {
    /// A checkpoint (manifest, or a full snapshot of format 2 to 4 with no writer).
    Checkpoint {
        offset: i64,
        writer: Option<String>,
    },
    Segment {
        writer: String,
    },
}

impl Stored {
    /// Parses an object name (`None`: not ours).
    pub fn parse(name: &str) -> Option<Self> {
        if let Some(rest) = name.strip_prefix('o').and_then(|r| r.strip_suffix(".ckpt")) {
            let (offset, writer) = match rest.split_once('.') {
                Some((o, w)) => (o, Some(w.to_string())),
                None => (rest, None),
            };
            return Some(Self::Checkpoint {
                offset: offset.parse().ok()?,
                writer,
            });
        }
        let rest = name.strip_prefix('s')?.strip_suffix(".seg")?;
        let (_, writer) = rest.split_once('.')?;
        Some(Self::Segment {
            writer: writer.to_string(),
        })
    }

    pub fn writer(&self) -> Option<&str> {
        match self {
            Self::Checkpoint { writer, .. } => writer.as_deref(),
            Self::Segment { writer } => Some(writer),
        }
    }
}

/// The checkpoints of one consumer group on one input topic.
#[derive(Debug, Clone)]
pub struct Checkpoints {
    root: ObjectRoot,
    prefix: String,
    keep: usize,
    catalog: Arc<Catalog>,
    /// This instance's name in object names (unique per process start).
    writer: String,
    /// The input topic's current id, written into every checkpoint (outer `None`: not read
    /// since the last rebalance).
    topic_id: Option<Option<String>>,
    /// The member key of restored states (their distinct-user KPIs' fingerprints).
    members: crate::members::MemberKey,
}

/// The whole-catalog fingerprint of format 2 checkpoints ([`Catalog::computation_text`]).
pub fn catalog_fingerprint(catalog: &Catalog) -> u64 {
    crate::dedup::fingerprint_parts(&[&catalog.computation_text()])
}

/// A writer name unique to this process start: the time and the process id, hashed.
fn new_writer_name() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let seed = format!("{nanos}/{}", std::process::id());
    format!("w{:016x}", xxhash_rust::xxh3::xxh3_64(seed.as_bytes()))
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
            writer: new_writer_name(),
            topic_id: None,
            members: crate::members::MemberKey::UNKEYED,
        }
    }

    /// The store restoring states under the member key `members`.
    pub fn with_members(mut self, members: crate::members::MemberKey) -> Self {
        self.members = members;
        self
    }

    /// This instance's writer name.
    pub fn writer(&self) -> &str {
        &self.writer
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

    fn manifest_key(&self, partition: i32, next_offset: i64) -> String {
        format!(
            "{}/o{next_offset:020}.{}.ckpt",
            self.dir(partition),
            self.writer
        )
    }

    fn segment_key(&self, partition: i32, segment: &SegmentRef) -> String {
        format!("{}/{}", self.dir(partition), segment.name())
    }

    /// Writes a segment (create-only: a retry finds it written).
    pub async fn write_segment(
        &self,
        partition: i32,
        segment: &SegmentRef,
        bytes: Vec<u8>,
    ) -> Result<(), CheckpointError> {
        let key = self.segment_key(partition, segment);
        self.root.create_durable(&key, bytes).await?;
        Ok(())
    }

    /// The entries of a stored segment.
    pub async fn read_segment(
        &self,
        partition: i32,
        segment: &SegmentRef,
    ) -> Result<Vec<(u64, u32)>, CheckpointError> {
        let key = self.segment_key(partition, segment);
        let bytes = self.root.get(&key).await?;
        segments::decode(&bytes).map_err(|reason| CheckpointError::Corrupt { key, reason })
    }

    /// The bytes of a stored segment (checked when merged).
    pub async fn read_segment_bytes(
        &self,
        partition: i32,
        segment: &SegmentRef,
    ) -> Result<Vec<u8>, CheckpointError> {
        Ok(self.root.get(&self.segment_key(partition, segment)).await?)
    }

    /// Writes the manifest of `partition` at `next_offset`; returns its size in bytes.
    pub async fn write_manifest(
        &self,
        partition: i32,
        next_offset: i64,
        topic_id: Option<String>,
        segments: &Chain,
        state: StateSnapshot,
    ) -> Result<usize, CheckpointError> {
        let key = self.manifest_key(partition, next_offset);
        let manifest = Manifest {
            format: FORMAT,
            next_offset,
            topic_id,
            writer: self.writer.clone(),
            segments: segments.clone(),
            state,
        };
        let bytes = postcard::to_allocvec(&manifest).map_err(|e| CheckpointError::Corrupt {
            key: key.clone(),
            reason: e.to_string(),
        })?;
        let size = bytes.len();
        self.root.create_durable(&key, bytes).await?;
        Ok(size)
    }

    /// Writes a full checkpoint of format 4, as this processor did before incremental
    /// checkpoints (tests of reading older checkpoints, and the benchmark's "before");
    /// returns its size in bytes.
    pub async fn save_v4(
        &self,
        partition: i32,
        next_offset: i64,
        state: &PartitionState,
    ) -> Result<usize, CheckpointError> {
        let env = EnvelopeV4 {
            format: 4,
            next_offset,
            topic_id: None,
            state: state.snapshot(),
        };
        let key = self.key(partition, next_offset);
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

    /// The objects of `partition`'s directory: (name, what it is).
    pub async fn stored(&self, partition: i32) -> Result<Vec<(String, Stored)>, CheckpointError> {
        Ok(self
            .root
            .list(&self.dir(partition))
            .await?
            .into_iter()
            .filter_map(|k| {
                let name = k.rsplit('/').next()?.to_string();
                let what = Stored::parse(&name)?;
                Some((name, what))
            })
            .collect())
    }

    /// The checkpoints of `partition`, ascending by offset: (offset, object name).
    async fn checkpoints(&self, partition: i32) -> Result<Vec<(i64, String)>, CheckpointError> {
        let mut found: Vec<(i64, String)> = self
            .stored(partition)
            .await?
            .into_iter()
            .filter_map(|(name, what)| match what {
                Stored::Checkpoint { offset, .. } => Some((offset, name)),
                Stored::Segment { .. } => None,
            })
            .collect();
        found.sort_unstable();
        Ok(found)
    }

    /// Restores the newest checkpoint of `partition` whose objects are all there, if any.
    pub async fn restore(
        &self,
        partition: i32,
        lateness_ms: i64,
        dedup_window_secs: u32,
    ) -> Result<Option<Restored>, CheckpointError> {
        let candidates = self.checkpoints(partition).await?;
        for (next_offset, name) in candidates.into_iter().rev() {
            let key = format!("{}/{name}", self.dir(partition));
            let bytes = self.root.get(&key).await?;
            let mut read = bytes.len() as u64;
            let (found, topic_id, mut snapshot, chain) = self.decode(&key, &bytes)?;
            if found != next_offset {
                return Err(CheckpointError::Corrupt {
                    key,
                    reason: format!("it holds offset {found}"),
                });
            }
            let own = chain.as_ref().map(|c| c.0 == self.writer);
            if let Some((_, chain)) = &chain {
                match self.load_segments(partition, chain, &mut snapshot).await {
                    Ok(n) => read += n,
                    Err(CheckpointError::Store(ObjectRootError::Store(
                        object_store::Error::NotFound { path, .. },
                    ))) => {
                        tracing::warn!(
                            partition,
                            checkpoint = name,
                            missing = path,
                            "checkpoint incomplete (a segment was deleted by another \
                             instance): trying the previous one"
                        );
                        continue;
                    }
                    Err(e) => return Err(e),
                }
            }
            let checkpoint_kpis = snapshot.kpi_names();
            let (state, mapping) = PartitionState::restore(
                self.catalog.clone(),
                lateness_ms,
                dedup_window_secs,
                self.members,
                snapshot,
            );
            let base = match (own, chain) {
                (Some(true), Some((_, chain))) => Base::Own(chain),
                _ => self.rebase(&state, next_offset),
            };
            return Ok(Some(Restored {
                state,
                next_offset,
                mapping,
                checkpoint_kpis,
                topic_id,
                base,
                bytes: read,
            }));
        }
        Ok(None)
    }

    /// Adds the ids of `chain`'s segments to `snapshot`, in order; returns the bytes read.
    async fn load_segments(
        &self,
        partition: i32,
        chain: &Chain,
        snapshot: &mut StateSnapshot,
    ) -> Result<u64, CheckpointError> {
        let dedup = snapshot.dedup_mut();
        dedup.reserve(chain.segments.iter().map(|s| s.ids as usize).sum());
        let mut read = 0u64;
        let mut fetched = futures::stream::iter(chain.segments.iter())
            .map(|s| self.read_segment(partition, s))
            .buffered(RESTORE_FETCHES);
        while let Some(entries) = fetched.try_next().await? {
            read += (entries.len() * 12 + 16) as u64;
            dedup.apply(entries);
        }
        dedup.sweep();
        Ok(read)
    }

    /// A new top segment of this writer holding `state`'s remembered ids.
    pub fn rebase(&self, state: &PartitionState, next_offset: i64) -> Base {
        // A top segment is never merged: any order will do, no copy of the entries.
        let mut enc = segments::Encoder::with_capacity(state.remembered_ids());
        for (fp, at) in state.dedup_entries() {
            enc.push(fp, at);
        }
        let (bytes, ids, max_at) = enc.finish();
        let segment = SegmentRef::new(segments::TOP, 0, next_offset, &self.writer, ids, max_at);
        Base::Rebase { segment, bytes }
    }

    /// The offset, topic id, snapshot and (format 5) writer and segments of a checkpoint.
    #[allow(clippy::type_complexity)]
    fn decode(
        &self,
        key: &str,
        bytes: &[u8],
    ) -> Result<(i64, Option<String>, StateSnapshot, Option<(String, Chain)>), CheckpointError>
    {
        let corrupt = |e: postcard::Error| CheckpointError::Corrupt {
            key: key.to_string(),
            reason: e.to_string(),
        };
        // The format comes first: read it alone so that another version's checkpoint gets an
        // actionable error rather than a decoding failure.
        let (format, _) = postcard::take_from_bytes::<u32>(bytes).map_err(corrupt)?;
        match format {
            FORMAT => {
                let m: Manifest = postcard::from_bytes(bytes).map_err(corrupt)?;
                let chain = Some((m.writer, m.segments));
                Ok((m.next_offset, m.topic_id, m.state, chain))
            }
            4 => {
                let env: EnvelopeV4 = postcard::from_bytes(bytes).map_err(corrupt)?;
                Ok((env.next_offset, env.topic_id, env.state, None))
            }
            3 => {
                let env: EnvelopeV3 = postcard::from_bytes(bytes).map_err(corrupt)?;
                Ok((env.next_offset, None, env.state.upgrade(), None))
            }
            2 => {
                let env: EnvelopeV2 = postcard::from_bytes(bytes).map_err(corrupt)?;
                let kpis = if env.catalog_fingerprint == catalog_fingerprint(&self.catalog) {
                    let all = vec![i64::MIN; self.catalog.kpis.len()];
                    // Format 2 predates keyed members: its sets are unkeyed.
                    evolve::catalog_meta(&self.catalog, &all, 0)
                } else {
                    Vec::new()
                };
                Ok((env.next_offset, None, env.state.upgrade(kpis), None))
            }
            found => Err(CheckpointError::Format {
                key: key.to_string(),
                found,
                expected: FORMAT,
            }),
        }
    }

    /// Deletes what no restore of `partition` needs any more, given the segments this
    /// writer's own manifests reference (by offset): its manifests older than the newest
    /// `keep` checkpoints and its segments none of the kept ones lists; and other writers'
    /// objects once the newest `keep` checkpoints are all this writer's. The segments of
    /// `live` (the chain being extended) are never deleted. Returns the offsets of own
    /// manifests deleted.
    pub async fn prune(
        &self,
        partition: i32,
        own: &std::collections::BTreeMap<i64, Vec<String>>,
        live: &Chain,
    ) -> Result<Vec<i64>, CheckpointError> {
        let stored = self.stored(partition).await?;
        let mut checkpoints: Vec<(i64, &str, Option<&str>)> = stored
            .iter()
            .filter_map(|(name, what)| match what {
                Stored::Checkpoint { offset, writer } => {
                    Some((*offset, name.as_str(), writer.as_deref()))
                }
                Stored::Segment { .. } => None,
            })
            .collect();
        checkpoints.sort_unstable();
        let kept = &checkpoints[checkpoints.len().saturating_sub(self.keep)..];
        let mine = Some(self.writer.as_str());
        let only_mine = kept.iter().all(|c| c.2 == mine);
        let live: Vec<String> = live.segments.iter().map(SegmentRef::name).collect();
        let referenced: std::collections::HashSet<&str> = kept
            .iter()
            .filter(|c| c.2 == mine)
            .filter_map(|c| own.get(&c.0))
            .flatten()
            .chain(&live)
            .map(String::as_str)
            .collect();
        // An own manifest written before this writer's chain was (re)opened lists segments
        // it does not know: keep every own segment until that manifest is pruned.
        let refs_known = kept.iter().all(|c| c.2 != mine || own.contains_key(&c.0));
        let kept_names: std::collections::HashSet<&str> = kept.iter().map(|c| c.1).collect();
        let mut dropped = Vec::new();
        for (name, what) in &stored {
            let is_mine = what.writer() == mine;
            let delete = match what {
                _ if !is_mine => only_mine,
                Stored::Checkpoint { offset, .. } => {
                    let gone = !kept_names.contains(name.as_str());
                    if gone {
                        dropped.push(*offset);
                    }
                    gone
                }
                Stored::Segment { .. } => refs_known && !referenced.contains(name.as_str()),
            };
            if delete {
                self.root
                    .delete(&format!("{}/{name}", self.dir(partition)))
                    .await?;
            }
        }
        Ok(dropped)
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

    /// Runs jobs through a writer and returns its reports once each job is done.
    async fn run_jobs(c: &Checkpoints, jobs: Vec<writer::Job>) -> Vec<writer::Report> {
        let (handle, mut reports) = writer::spawn(c.clone());
        let n = jobs
            .iter()
            .filter(|j| !matches!(j, writer::Job::Forget { .. }))
            .count();
        for job in jobs {
            assert!(handle.send(job));
        }
        let mut out = Vec::new();
        while out.len() < n {
            out.push(reports.recv().await.expect("report"));
        }
        out
    }

    fn open(next_offset: i64, base: Base) -> writer::Job {
        writer::Job::Open {
            partition: 0,
            generation: 1,
            next_offset,
            base,
        }
    }

    fn save(state: &mut PartitionState, next_offset: i64) -> writer::Job {
        writer::Job::save(0, 1, next_offset, state, None)
    }

    async fn restored(c: &Checkpoints) -> Restored {
        c.restore(0, 600_000, 86_400)
            .await
            .expect("restore")
            .expect("a checkpoint")
    }

    fn see(state: &mut PartitionState, ids: std::ops::Range<u32>) {
        for i in ids {
            state.is_duplicate("s", &format!("m{i}"), 1_764_000_000_000_000);
        }
    }

    fn written(reports: &[writer::Report]) -> Vec<u64> {
        reports
            .iter()
            .filter_map(|r| match r {
                writer::Report::Done {
                    next_offset: Some(_),
                    bytes,
                    ..
                } => Some(*bytes),
                _ => None,
            })
            .collect()
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
        let mut state = PartitionState::new(c.catalog.clone(), 600_000, 86_400);
        let mut jobs = vec![open(0, Base::Own(Chain::default()))];
        for offset in [10, 20, 30] {
            see(&mut state, offset as u32..offset as u32 + 10);
            jobs.push(save(&mut state, offset));
        }
        run_jobs(&c, jobs).await;
        let offsets: Vec<i64> = c
            .checkpoints(0)
            .await
            .expect("list")
            .iter()
            .map(|c| c.0)
            .collect();
        assert_eq!(offsets, vec![20, 30]);
        let r = restored(&c).await;
        assert_eq!(r.next_offset, 30);
        assert!(r.mapping.restarted(&c.catalog).is_empty());
        assert_eq!(r.state.remembered_ids(), 30);
        assert!(matches!(r.base, Base::Own(ref chain) if chain.segments.len() == 3));
    }

    /// A checkpoint writes the ids seen since the previous one, not the whole set, and a
    /// restore gives back every id.
    #[tokio::test]
    async fn checkpoints_are_incremental() {
        let dir = tempfile::tempdir().expect("tempdir");
        let c = setup(&dir);
        let mut state = PartitionState::new(c.catalog.clone(), 600_000, 86_400);
        see(&mut state, 0..100_000);
        let first = save(&mut state, 1);
        see(&mut state, 100_000..100_010);
        let second = save(&mut state, 2);
        let reports = run_jobs(
            &c,
            vec![open(0, Base::Own(Chain::default())), first, second],
        )
        .await;
        let bytes = written(&reports);
        assert!(bytes[0] > 100_000 * 12, "{bytes:?}");
        assert!(bytes[1] < 10 * 12 + 2_000, "{bytes:?}");
        let r = restored(&c).await;
        assert_eq!(r.state.remembered_ids(), 100_010);
        let mut again = r.state;
        assert!(again.is_duplicate("s", "m5", 1_764_000_000_000_000));
        assert!(!again.is_duplicate("s", "m100010", 1_764_000_000_000_000));
    }

    /// Another writer's checkpoint (or a full one of format 4) restores into a new base of
    /// this writer; once this writer's checkpoints are the newest kept, the others' objects
    /// are deleted.
    #[tokio::test]
    async fn another_writers_checkpoint_is_rebased_then_pruned() {
        let dir = tempfile::tempdir().expect("tempdir");
        let old = setup(&dir);
        let mut state = PartitionState::new(old.catalog.clone(), 600_000, 86_400);
        see(&mut state, 0..50);
        old.save_v4(0, 5, &state).await.expect("v4");
        see(&mut state, 50..60);
        run_jobs(
            &old,
            vec![open(5, Base::Own(Chain::default())), save(&mut state, 7)],
        )
        .await;
        let new = setup(&dir);
        assert_ne!(new.writer(), old.writer());
        let r = restored(&new).await;
        assert_eq!((r.next_offset, r.state.remembered_ids()), (7, 60));
        let Base::Rebase { ref segment, .. } = r.base else {
            panic!("a rebase expected");
        };
        assert_eq!((segment.ids, segment.level), (60, segments::TOP));
        let mut state = r.state;
        let mut jobs = vec![open(7, r.base)];
        for offset in [8, 9] {
            see(&mut state, offset as u32 * 100..offset as u32 * 100 + 1);
            jobs.push(save(&mut state, offset));
        }
        run_jobs(&new, jobs).await;
        let left = new.stored(0).await.expect("list");
        assert!(
            left.iter().all(|(_, w)| w.writer() == Some(new.writer())),
            "{left:?}"
        );
        let r = restored(&new).await;
        assert_eq!((r.next_offset, r.state.remembered_ids()), (9, 62));
    }

    /// A manifest whose segment is gone (deleted by another instance) is skipped for the
    /// previous one.
    #[tokio::test]
    async fn a_checkpoint_missing_a_segment_falls_back_to_the_previous() {
        let dir = tempfile::tempdir().expect("tempdir");
        let c = setup(&dir);
        let mut state = PartitionState::new(c.catalog.clone(), 600_000, 86_400);
        see(&mut state, 0..5);
        let first = save(&mut state, 5);
        see(&mut state, 5..8);
        let second = save(&mut state, 8);
        run_jobs(
            &c,
            vec![open(0, Base::Own(Chain::default())), first, second],
        )
        .await;
        let newest = SegmentRef {
            level: 0,
            from: 5,
            to: 8,
            writer: c.writer().to_string(),
            ids: 3,
            max_at: 0,
        };
        c.root
            .delete(&c.segment_key(0, &newest))
            .await
            .expect("delete");
        let r = restored(&c).await;
        assert_eq!((r.next_offset, r.state.remembered_ids()), (5, 5));
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
        let r = restored(&c).await;
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
