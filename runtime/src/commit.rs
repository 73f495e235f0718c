//! Offsets committed only after their output is durable.
//!
//! Contract: an [`OffsetCommitter`] commits, for one input topic, the offsets its caller
//! declares durable (every output up to them acknowledged by the broker, and the state or
//! ledger that covers them written). It commits only the partitions whose offset changed since
//! its last successful commit, synchronously at shutdown ([`CommitMode::Sync`], off the async
//! runtime's thread with `block_in_place`) and asynchronously otherwise. A failed commit is
//! logged and repeated at the next call: what is not committed is read again after a restart
//! and skipped by the partition cursor ([`crate::cursor`]), never lost. Revoked partitions are
//! forgotten ([`OffsetCommitter::forget`]) so that a later owner's commits are not mistaken for
//! ours. Used by the processor and the lake sink.

use std::collections::HashMap;

use rdkafka::consumer::{CommitMode, Consumer, ConsumerContext};
use rdkafka::error::KafkaResult;
use rdkafka::{Offset, TopicPartitionList};

/// The offsets committed so far for one input topic.
#[derive(Debug)]
pub struct OffsetCommitter {
    topic: String,
    committed: HashMap<i32, i64>,
}

impl OffsetCommitter {
    /// A committer for `topic` that has committed nothing yet.
    pub fn new(topic: impl Into<String>) -> Self {
        Self {
            topic: topic.into(),
            committed: HashMap::new(),
        }
    }

    /// The last offset committed for `partition` by this committer.
    pub fn committed(&self, partition: i32) -> Option<i64> {
        self.committed.get(&partition).copied()
    }

    /// Forgets a revoked partition.
    pub fn forget(&mut self, partition: i32) {
        self.committed.remove(&partition);
    }

    /// The `(partition, next offset)` pairs of `durable` that differ from what was committed,
    /// sorted by partition.
    pub fn pending(&self, durable: impl IntoIterator<Item = (i32, i64)>) -> Vec<(i32, i64)> {
        let mut out: Vec<(i32, i64)> = durable
            .into_iter()
            .filter(|(p, next)| self.committed.get(p) != Some(next))
            .collect();
        out.sort_unstable();
        out.dedup_by_key(|(p, _)| *p);
        out
    }

    /// Commits the durable offsets that changed and returns those committed. A failed commit
    /// is logged and returns nothing (the next call repeats it); an offset that cannot even be
    /// put in a request is an error.
    pub fn commit<C, K>(
        &mut self,
        consumer: &K,
        durable: impl IntoIterator<Item = (i32, i64)>,
        mode: CommitMode,
    ) -> KafkaResult<Vec<(i32, i64)>>
    where
        C: ConsumerContext,
        K: Consumer<C>,
    {
        let pending = self.pending(durable);
        if pending.is_empty() {
            return Ok(pending);
        }
        let mut tpl = TopicPartitionList::new();
        for &(partition, next) in &pending {
            tpl.add_partition_offset(&self.topic, partition, Offset::Offset(next))?;
        }
        let result = match mode {
            CommitMode::Sync => tokio::task::block_in_place(|| consumer.commit(&tpl, mode)),
            CommitMode::Async => consumer.commit(&tpl, mode),
        };
        match result {
            Ok(()) => {
                self.committed.extend(pending.iter().copied());
                Ok(pending)
            }
            Err(e) => {
                tracing::warn!(topic = %self.topic, error = %e, "offset commit failed; retried at the next flush");
                Ok(Vec::new())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pending_is_what_changed_sorted() {
        let mut c = OffsetCommitter::new("events.raw");
        assert_eq!(c.pending([(2, 5), (0, 3)]), vec![(0, 3), (2, 5)]);
        c.committed.extend([(0, 3), (2, 5)]);
        assert_eq!(c.pending([(2, 5), (0, 3)]), Vec::<(i32, i64)>::new());
        assert_eq!(c.pending([(2, 6), (0, 3), (1, 0)]), vec![(1, 0), (2, 6)]);
        c.forget(2);
        assert_eq!(c.committed(2), None);
        assert_eq!(c.pending([(2, 5)]), vec![(2, 5)]);
    }
}
