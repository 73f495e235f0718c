//! The checkpoint store is down: pause, retry with a backoff, resume by itself.
//!
//! Contract: a checkpoint that cannot be written, or restored, because the object store fails
//! never stops the processor. The partitions concerned are paused (no more input is read for
//! them; the group membership and everything already processed stay), the failure is counted
//! (`northstar_processor_checkpoint_failures_total`) and shown
//! (`northstar_processor_checkpoint_store_unavailable` 1), and the checkpoint writer tries the
//! job again after `northstar_runtime::backoff` (1 s doubling to a minute; a failed restore is
//! retried by a probe of the store on the same schedule). Offsets stay committed at the last
//! durable checkpoint, so nothing is lost if the process dies meanwhile. Once a writer job
//! (or a restore) succeeds again, each paused partition is resumed and sought to the offset its
//! state expects — the next offset after what was processed, or the first record of a
//! partition whose restore failed, which is then opened again. Revoked partitions leave the
//! outage with their state.

use std::collections::BTreeMap;

use rdkafka::consumer::Consumer;
use rdkafka::TopicPartitionList;

use super::*;

/// An ongoing outage of the checkpoint store.
#[derive(Debug)]
pub(super) struct StoreOutage {
    /// Failures in a row.
    failures: u32,
    /// When to try again.
    retry_at: Instant,
    /// Paused partitions, with the offset to read from when they resume.
    paused: BTreeMap<i32, i64>,
}

impl StoreOutage {
    /// Whether `partition` waits for the store (its records are not read).
    pub(super) fn holds(&self, partition: i32) -> bool {
        self.paused.contains_key(&partition)
    }

    pub(super) fn retry_due(&self) -> bool {
        Instant::now() >= self.retry_at
    }
}

impl Pipeline {
    /// The store failed for `partitions` (with the offset each resumes from): pause them and
    /// schedule a retry.
    pub(super) fn store_failed(&mut self, error: &str, partitions: Vec<(i32, i64)>) {
        let outage = self.store_outage.get_or_insert_with(|| StoreOutage {
            failures: 0,
            retry_at: Instant::now(),
            paused: BTreeMap::new(),
        });
        outage.failures += 1;
        let wait = northstar_runtime::backoff::backoff(outage.failures);
        outage.retry_at = Instant::now() + wait;
        let mut tpl = TopicPartitionList::new();
        for (partition, from) in partitions {
            if outage.paused.insert(partition, from).is_none() {
                tpl.add_partition(&self.config.topics.raw, partition);
            }
        }
        metrics::CHECKPOINT_FAILURES.inc();
        metrics::CHECKPOINT_STORE_UNAVAILABLE.set(1);
        tracing::warn!(
            error,
            failures = outage.failures,
            retry_in_secs = wait.as_secs(),
            paused = ?outage.paused.keys().collect::<Vec<_>>(),
            "checkpoint store unavailable: input paused, retrying after the backoff \
             (offsets stay committed at the last checkpoint)"
        );
        if tpl.count() > 0 {
            if let Err(e) = self.consumer.pause(&tpl) {
                tracing::warn!(error = %e, "cannot pause the partitions");
            }
        }
    }

    /// The store answered again: resume every paused partition where its state expects.
    pub(super) fn store_recovered(&mut self) {
        let Some(outage) = self.store_outage.take() else {
            return;
        };
        metrics::CHECKPOINT_STORE_UNAVAILABLE.set(0);
        tracing::info!(
            failures = outage.failures,
            "checkpoint store available again: resuming input"
        );
        let topic = self.config.topics.raw.clone();
        for (partition, from) in outage.paused {
            let from = self.cursors.get(&partition).map_or(from, Cursor::next);
            let mut tpl = TopicPartitionList::new();
            tpl.add_partition(&topic, partition);
            let resumed = self
                .consumer
                .resume(&tpl)
                .and_then(|()| cursor::seek(&*self.consumer, &topic, partition, from));
            if let Err(e) = resumed {
                // Revoked meanwhile: its next owner reads it from the checkpoint.
                tracing::info!(partition, error = %e, "cannot resume the partition");
            }
        }
    }

    /// A revoked partition leaves the outage (a new assignment starts unpaused).
    pub(super) fn outage_forget(&mut self, partition: i32) {
        if let Some(o) = &mut self.store_outage {
            o.paused.remove(&partition);
        }
    }
}
