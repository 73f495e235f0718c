//! The checkpoint writer: a background task that makes checkpoints durable off the consume
//! loop.
//!
//! Contract: the consume loop hands over, per partition, what changed (the dedup journal and
//! the snapshot without ids, [`crate::state::PartitionState::checkpoint_parts`]) and goes on
//! processing; the writer encodes, uploads and fsyncs the level-0 segment, does the merges
//! the chain needs ([`super::segments`]; CPU-heavy merging runs on the blocking pool), writes
//! the manifest and only then reports [`Report::Saved`], after which the loop may commit the
//! offset. Jobs run one at a time in the order given, so a partition's checkpoints are
//! written in offset order and a [`Job::Forget`] comes after the partition's last save. A job
//! that fails is reported ([`Report::Failed`], the loop pauses input) and tried again after
//! `northstar_runtime::backoff` until it succeeds: nothing handed over is lost, and the loop
//! hands over at most one save per partition at a time, so memory stays bounded while the
//! store is down. Old objects are pruned after each save ([`super::Checkpoints::prune`]).

use std::collections::{BTreeMap, HashMap};
use std::time::Instant;

use tokio::sync::mpsc;

use super::segments::{self, Chain, SegmentRef};
use super::{Base, CheckpointError, Checkpoints};
use crate::state::{PartitionState, StateSnapshot};

/// Work for the writer.
#[derive(Debug)]
pub enum Job {
    /// A partition's state starts at `next_offset` (restored, or empty) on `base`.
    Open {
        partition: i32,
        generation: u64,
        next_offset: i64,
        base: Base,
    },
    /// Checkpoint `partition` at `next_offset`.
    Save {
        partition: i32,
        generation: u64,
        next_offset: i64,
        journal: Vec<(u64, u32)>,
        state: Box<StateSnapshot>,
        topic_id: Option<String>,
        /// Ids first seen before this (unix seconds) have expired.
        cutoff: u32,
    },
    /// The partition was revoked.
    Forget { partition: i32 },
}

impl Job {
    /// A checkpoint of `state` at `next_offset`: takes its dedup journal and its snapshot
    /// without ids (call right after an emission drained it).
    pub fn save(
        partition: i32,
        generation: u64,
        next_offset: i64,
        state: &mut PartitionState,
        topic_id: Option<String>,
    ) -> Self {
        let cutoff = state.dedup_cutoff_secs();
        let (snapshot, journal) = state.checkpoint_parts();
        Self::Save {
            partition,
            generation,
            next_offset,
            journal,
            state: Box::new(snapshot),
            topic_id,
            cutoff,
        }
    }
}

/// What the writer tells the consume loop.
#[derive(Debug)]
pub enum Report {
    /// A job succeeded (`next_offset`: a checkpoint is durable at it).
    Done {
        partition: i32,
        generation: u64,
        next_offset: Option<i64>,
        /// Bytes written by the job.
        bytes: u64,
        seconds: f64,
        /// Segments of the partition's chain after the job.
        segments: usize,
    },
    /// A job failed; it is tried again after the backoff.
    Failed { partition: i32, error: String },
}

/// The consume loop's handle on the writer.
#[derive(Debug, Clone)]
pub struct Handle {
    jobs: mpsc::UnboundedSender<Job>,
}

impl Handle {
    /// Hands a job over (false if the writer is gone).
    pub fn send(&self, job: Job) -> bool {
        self.jobs.send(job).is_ok()
    }
}

/// Starts the writer on the current runtime.
pub fn spawn(checkpoints: Checkpoints) -> (Handle, mpsc::UnboundedReceiver<Report>) {
    let (jobs, inbox) = mpsc::unbounded_channel();
    let (reports, outbox) = mpsc::unbounded_channel();
    let writer = Writer {
        checkpoints,
        parts: HashMap::new(),
        reports,
    };
    tokio::spawn(writer.run(inbox));
    (Handle { jobs }, outbox)
}

/// A partition's chain as this writer last wrote it.
#[derive(Debug, Default)]
struct Part {
    chain: Chain,
    /// The offset the chain reflects input up to.
    next_offset: i64,
    /// This writer's manifests still stored: offset → segment names they list.
    own: BTreeMap<i64, Vec<String>>,
}

struct Writer {
    checkpoints: Checkpoints,
    parts: HashMap<i32, Part>,
    reports: mpsc::UnboundedSender<Report>,
}

impl Writer {
    async fn run(mut self, mut inbox: mpsc::UnboundedReceiver<Job>) {
        while let Some(mut job) = inbox.recv().await {
            let mut failures = 0u32;
            loop {
                let started = Instant::now();
                match self.attempt(&mut job).await {
                    Ok(bytes) => {
                        self.done(&job, bytes, started.elapsed().as_secs_f64());
                        break;
                    }
                    Err(e) => {
                        failures += 1;
                        let partition = job_partition(&job);
                        let _ = self.reports.send(Report::Failed {
                            partition,
                            error: e.to_string(),
                        });
                        tokio::time::sleep(northstar_runtime::backoff::backoff(failures)).await;
                    }
                }
            }
        }
    }

    fn done(&mut self, job: &Job, bytes: u64, seconds: f64) {
        let (partition, generation, next_offset) = match job {
            Job::Open {
                partition,
                generation,
                ..
            } => (*partition, *generation, None),
            Job::Save {
                partition,
                generation,
                next_offset,
                ..
            } => (*partition, *generation, Some(*next_offset)),
            Job::Forget { .. } => return,
        };
        let segments = self
            .parts
            .get(&partition)
            .map_or(0, |p| p.chain.segments.len());
        let _ = self.reports.send(Report::Done {
            partition,
            generation,
            next_offset,
            bytes,
            seconds,
            segments,
        });
    }

    /// One try at a job (idempotent: objects already written are found written); returns the
    /// bytes written.
    async fn attempt(&mut self, job: &mut Job) -> Result<u64, CheckpointError> {
        match job {
            Job::Open {
                partition,
                next_offset,
                base,
                ..
            } => self.open(*partition, *next_offset, base).await,
            Job::Save {
                partition,
                next_offset,
                journal,
                state,
                topic_id,
                cutoff,
                ..
            } => {
                let part = self.parts.entry(*partition).or_default();
                segments::sort_journal(journal);
                let (chain, bytes) = extend(
                    &self.checkpoints,
                    *partition,
                    part,
                    *next_offset,
                    journal,
                    *cutoff,
                )
                .await?;
                let manifest = self
                    .checkpoints
                    .write_manifest(
                        *partition,
                        *next_offset,
                        topic_id.clone(),
                        &chain,
                        (**state).clone(),
                    )
                    .await?;
                let names = chain.segments.iter().map(SegmentRef::name).collect();
                part.chain = chain;
                part.next_offset = *next_offset;
                part.own.insert(*next_offset, names);
                match self
                    .checkpoints
                    .prune(*partition, &part.own, &part.chain)
                    .await
                {
                    Ok(dropped) => dropped.iter().for_each(|o| {
                        part.own.remove(o);
                    }),
                    Err(e) => tracing::warn!(partition, error = %e, "cannot prune old checkpoints"),
                }
                Ok(bytes + manifest as u64)
            }
            Job::Forget { partition } => {
                self.parts.remove(partition);
                Ok(0)
            }
        }
    }

    async fn open(
        &mut self,
        partition: i32,
        next_offset: i64,
        base: &Base,
    ) -> Result<u64, CheckpointError> {
        let (chain, own, bytes) = match base {
            Base::Own(chain) => {
                let names = chain.segments.iter().map(SegmentRef::name).collect();
                (chain.clone(), BTreeMap::from([(next_offset, names)]), 0)
            }
            Base::Rebase { segment, bytes } => {
                let n = bytes.len() as u64;
                if segment.ids > 0 {
                    self.checkpoints
                        .write_segment(partition, segment, bytes.clone())
                        .await?;
                }
                let segments = if segment.ids > 0 {
                    vec![segment.clone()]
                } else {
                    Vec::new()
                };
                (Chain { segments }, BTreeMap::new(), n)
            }
        };
        self.parts.insert(
            partition,
            Part {
                chain,
                next_offset,
                own,
            },
        );
        Ok(bytes)
    }
}

fn job_partition(job: &Job) -> i32 {
    match job {
        Job::Open { partition, .. } | Job::Save { partition, .. } | Job::Forget { partition } => {
            *partition
        }
    }
}

/// The chain after adding `journal` as a level-0 segment, merging and expiring; returns it
/// with the bytes written (the partition's chain itself changes only once the manifest is
/// durable).
async fn extend(
    checkpoints: &Checkpoints,
    partition: i32,
    part: &Part,
    next_offset: i64,
    journal: &[(u64, u32)],
    cutoff: u32,
) -> Result<(Chain, u64), CheckpointError> {
    let writer = checkpoints.writer().to_string();
    let mut chain = part.chain.clone();
    let mut written = 0u64;
    if !journal.is_empty() {
        let seg = SegmentRef::of(0, part.next_offset, next_offset, &writer, journal);
        let bytes = segments::encode(journal);
        written += bytes.len() as u64;
        checkpoints.write_segment(partition, &seg, bytes).await?;
        chain.segments.push(seg);
    }
    while let Some(merge) = chain.due() {
        let mut inputs = Vec::with_capacity(merge.range.len());
        for seg in &chain.segments[merge.range.clone()] {
            inputs.push(checkpoints.read_segment_bytes(partition, seg).await?);
        }
        let merged = tokio::task::spawn_blocking(move || segments::merge(&inputs, cutoff))
            .await
            .map_err(|e| e.to_string())
            .and_then(|r| r)
            .map_err(|reason| CheckpointError::Corrupt {
                key: format!("merge of partition {partition}"),
                reason,
            })?;
        let (bytes, ids, max_at) = merged;
        let output = (ids > 0).then(|| chain.merged_ref(&merge, &writer, ids, max_at));
        if let Some(seg) = &output {
            written += bytes.len() as u64;
            checkpoints.write_segment(partition, seg, bytes).await?;
        }
        chain.apply(&merge, output);
    }
    chain.expire(cutoff);
    Ok((chain, written))
}
