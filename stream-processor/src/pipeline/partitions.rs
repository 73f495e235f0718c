//! The partition cursor of the processor: which input partitions it holds, where each one's
//! state starts (its checkpoint, or empty where that loses nothing), and whether a record is
//! the next one its state expects.
//!
//! Contract: a partition's first record restores its newest checkpoint, unless that resumes
//! past the partition's end (a recreated topic: refused, `resume::TopicReset`); without one, it starts
//! empty only if the group has not read it before (its first record is at the start of the
//! partition) or `allow_empty_state` says so, marking its windows as missing input
//! ([`PipelineError::NoCheckpoint`] otherwise). Records already reflected in the restored state
//! are skipped (counted); a consumer that resumed past the checkpoint is sought back to it
//! (the decision is `northstar_runtime::cursor`, shared with the lake sink).
//! Revoked partitions are forgotten before the next emission.

use super::*;
use crate::checkpoint::segments::Chain;
use crate::checkpoint::Base;

impl Pipeline {
    /// The input topic's id, read from the brokers once per assignment.
    fn topic_id(&mut self, topic: &str) -> Option<String> {
        if let Some(id) = self.checkpoints.topic_id() {
            return id.map(str::to_string);
        }
        let consumer = &self.consumer;
        let id = tokio::task::block_in_place(|| {
            northstar_runtime::resume::current_id(&**consumer, topic)
        });
        self.checkpoints.set_topic_id(id.clone());
        id
    }

    pub(super) fn forget_revoked(&mut self) {
        let revoked = self.consumer.context().take_revoked();
        if !revoked.is_empty() {
            self.checkpoints.forget_topic_id();
        }
        for p in revoked {
            tracing::info!(
                partition = p,
                "partition revoked, forgetting its in-memory state"
            );
            if self.partitions.remove(&p).is_some() {
                // The next owner continues these totals from the checkpoint.
                let label = p.to_string();
                for kpi in &self.catalog.kpis {
                    let _ = metrics::LATE_DROPPED.remove_label_values(&[&label, &kpi.name]);
                }
            }
            self.cursors.remove(&p);
            self.outage_forget(p);
            self.committer.forget(p);
            self.checkpointed.remove(&p);
            // A save in flight still completes (the writer keeps job order); its report is
            // for a past generation.
            self.in_flight.remove(&p);
            self.generations.remove(&p);
            self.writer.send(Job::Forget { partition: p });
        }
    }

    /// The partition's state starts at `next_offset`: tell the writer on which chain.
    fn opened(&mut self, partition: i32, next_offset: i64, base: Base) {
        self.next_generation += 1;
        let generation = self.next_generation;
        self.generations.insert(partition, generation);
        self.writer.send(Job::Open {
            partition,
            generation,
            next_offset,
            base,
        });
    }

    /// First record of a newly assigned partition: restore its newest checkpoint (or start
    /// empty at `first_offset`). False when the checkpoint store cannot be read: the partition
    /// is paused until it can (`outage`).
    async fn open_partition(
        &mut self,
        topic: &str,
        partition: i32,
        first_offset: i64,
    ) -> Result<bool, PipelineError> {
        let lateness_ms = self.lateness_ms;
        let window = self.config.dedup_window_secs;
        let started = Instant::now();
        let restored = match self
            .checkpoints
            .restore(partition, lateness_ms, window)
            .await
        {
            Ok(restored) => restored,
            Err(CheckpointError::Store(e)) => {
                // Opened again from this record once the store answers (`outage`).
                self.store_failed(&e.to_string(), vec![(partition, first_offset)]);
                return Ok(false);
            }
            Err(e) => return Err(PipelineError::Checkpoint(e.to_string())),
        };
        match restored {
            Some(r) => {
                let current = self.topic_id(topic);
                let (consumer, root) = (&self.consumer, &self.config.checkpoint_root);
                tokio::task::block_in_place(|| {
                    northstar_runtime::resume::check(
                        &**consumer,
                        topic,
                        partition,
                        r.next_offset,
                        r.topic_id.as_deref(),
                        current.as_deref(),
                        || {
                            (
                                format!("the checkpoint under {root}"),
                                "Recover: move this partition's checkpoints away (or point \
                             checkpoint_root at an empty place) and start again; see \
                             docs/operations.md, \"A recreated topic\"."
                                    .to_string(),
                            )
                        },
                    )
                })?;
                let restarted = r.mapping.restarted(&self.catalog);
                metrics::RESTORE_SECONDS.observe(started.elapsed().as_secs_f64());
                tracing::info!(
                    partition,
                    offset = r.next_offset,
                    ids = r.state.remembered_ids(),
                    windows = r.state.open_windows(),
                    bytes_read = r.bytes,
                    seconds = started.elapsed().as_secs_f64(),
                    rebase = matches!(r.base, Base::Rebase { .. }),
                    kpis_carried_over = self.catalog.kpis.len() - restarted.len(),
                    "partition state restored from checkpoint"
                );
                if !restarted.is_empty() {
                    tracing::warn!(
                        partition,
                        kpis = ?restarted,
                        incomplete_through = r.state.watermark_ms(),
                        "KPIs new or changed since the checkpoint start empty: their windows \
                         starting at or before the checkpoint's event time are marked incomplete"
                    );
                }
                let dropped = r.mapping.dropped(&r.checkpoint_kpis);
                if !dropped.is_empty() {
                    tracing::info!(partition, kpis = ?dropped, "state of KPIs removed or changed in the catalog dropped");
                }
                let label = partition.to_string();
                for (k, kpi) in self.catalog.kpis.iter().enumerate() {
                    let counter = metrics::LATE_DROPPED.with_label_values(&[&label, &kpi.name]);
                    counter.reset();
                    counter.inc_by(r.state.late_dropped(k));
                }
                self.partitions.insert(partition, r.state);
                self.cursors.insert(partition, Cursor::at(r.next_offset));
                self.checkpointed.insert(partition, r.next_offset);
                self.opened(partition, r.next_offset, r.base);
                metrics::CHECKPOINT_OFFSET
                    .with_label_values(&[&partition.to_string()])
                    .set(r.next_offset);
            }
            None => {
                // Read now, so that the first checkpoint records it.
                self.topic_id(topic);
                let mut state = PartitionState::new(self.catalog.clone(), lateness_ms, window)
                    .with_members(self.gate.members());
                if self.read_before(topic, partition, first_offset)? {
                    tracing::warn!(
                        partition,
                        offset = first_offset,
                        "no checkpoint for a partition this group has read before: starting with \
                         empty state as allowed (allow_empty_state); windows that began before \
                         its first event are marked as missing input"
                    );
                    state.mark_started_mid_stream();
                } else {
                    tracing::info!(
                        partition,
                        offset = first_offset,
                        "no checkpoint, starting with empty state"
                    );
                }
                self.partitions.insert(partition, state);
                self.cursors.insert(partition, Cursor::at(first_offset));
                self.opened(partition, first_offset, Base::Own(Chain::default()));
            }
        }
        Ok(true)
    }

    /// Whether a partition without a checkpoint was read before by this group (its first
    /// record is past the start of the partition): allowed with `allow_empty_state`, refused
    /// otherwise ([`PipelineError::NoCheckpoint`]).
    fn read_before(
        &self,
        topic: &str,
        partition: i32,
        first_offset: i64,
    ) -> Result<bool, PipelineError> {
        let consumer = &self.consumer;
        let (low, _) = tokio::task::block_in_place(|| {
            consumer.fetch_watermarks(topic, partition, Duration::from_secs(10))
        })?;
        if first_offset <= low {
            return Ok(false);
        }
        if self.config.allow_empty_state {
            return Ok(true);
        }
        Err(PipelineError::NoCheckpoint {
            topic: topic.to_string(),
            partition,
            group: self.config.group_id.clone(),
            offset: first_offset,
            low,
            root: self.config.checkpoint_root.clone(),
        })
    }

    /// Whether the record at `offset` is the next one the partition's state expects; seeks back
    /// to the checkpoint when the consumer resumed past it.
    pub(super) async fn in_sequence(
        &mut self,
        topic: &str,
        partition: i32,
        offset: i64,
    ) -> Result<bool, PipelineError> {
        if self
            .store_outage
            .as_ref()
            .is_some_and(|o| o.holds(partition))
        {
            // Paused for the checkpoint store; read again from its offset on resume.
            return Ok(false);
        }
        if !self.partitions.contains_key(&partition)
            && !self.open_partition(topic, partition, offset).await?
        {
            return Ok(false);
        }
        let Some(cursor) = self.cursors.get_mut(&partition) else {
            return Ok(false);
        };
        let step = cursor.follow(&*self.consumer, topic, partition, offset)?;
        if step == Step::Replayed {
            // Already reflected in the restored state.
            metrics::REPLAY_SKIPPED
                .with_label_values(&[&partition.to_string()])
                .inc();
        }
        Ok(step.processes())
    }
}
