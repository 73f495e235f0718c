//! The partition cursor: whether a consumed record is the next one a partition's state expects.
//!
//! Contract: a [`Cursor`] holds the next offset its state expects. [`Cursor::step`] classifies a
//! delivered offset: below it, [`Step::Replayed`] (already reflected in the state: skip it);
//! equal, [`Step::Process`]; above it the first time, [`Step::SeekTo`] the expected offset (the
//! consumer resumed past the state, e.g. from a committed offset ahead of a checkpoint); above
//! it again right after that seek, [`Step::Gap`] (the offsets in between are not in the log:
//! retention or compaction), which the caller processes and reports. The caller moves the
//! cursor past each processed record with [`Cursor::advance`]. So, whatever the consumer
//! delivers, the processed offsets strictly increase, and no offset the log still holds is
//! passed over, provided the consumer's next delivery after a seek starts at the sought offset
//! (librdkafka drops what it fetched before a seek). [`Cursor::follow`] also carries the step out
//! on the consumer (seeks, logs a gap), for the processor and the lake sink alike. A property test drives it with a model
//! consumer.

use std::time::Duration;

use rdkafka::consumer::{Consumer, ConsumerContext};
use rdkafka::error::KafkaResult;
use rdkafka::Offset;

/// Seeks `partition` of `topic` to `offset` (a [`Step::SeekTo`]), off the async runtime's
/// thread: librdkafka's seek blocks until the fetcher took it (at most 10 s).
pub fn seek<C, K>(consumer: &K, topic: &str, partition: i32, offset: i64) -> KafkaResult<()>
where
    C: ConsumerContext,
    K: Consumer<C>,
{
    tokio::task::block_in_place(|| {
        consumer.seek(
            topic,
            partition,
            Offset::Offset(offset),
            Duration::from_secs(10),
        )
    })
}

/// What to do with a delivered record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// The next record: process it, then [`Cursor::advance`].
    Process,
    /// Already reflected in the state: skip it.
    Replayed,
    /// The consumer is past the state: seek the partition to this offset and skip the record.
    SeekTo(i64),
    /// Past the state again after a seek: the offsets from `expected` up to this record are
    /// missing from the log; process it (and say so).
    Gap {
        /// The offset the state expected.
        expected: i64,
    },
}

impl Step {
    /// Whether the record is to be processed (the next one, or the first after a gap).
    pub fn processes(self) -> bool {
        matches!(self, Step::Process | Step::Gap { .. })
    }
}

/// Where one partition's state stands in its input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    next: i64,
    seeking: bool,
}

impl Cursor {
    /// A cursor expecting `next`.
    pub fn at(next: i64) -> Self {
        Self {
            next,
            seeking: false,
        }
    }

    /// The next offset the state expects (the offset to commit once it is durable).
    pub fn next(&self) -> i64 {
        self.next
    }

    /// Classifies the delivered record at `offset`.
    pub fn step(&mut self, offset: i64) -> Step {
        if offset < self.next {
            return Step::Replayed;
        }
        if offset > self.next {
            if !self.seeking {
                self.seeking = true;
                return Step::SeekTo(self.next);
            }
            self.seeking = false;
            return Step::Gap {
                expected: self.next,
            };
        }
        self.seeking = false;
        Step::Process
    }

    /// [`Cursor::step`] for the record at `offset` of `partition`, carrying the step out on
    /// `consumer`: a [`Step::SeekTo`] seeks (logged), a [`Step::Gap`] is logged as a warning.
    /// The caller processes the record when [`Step::processes`] says so.
    pub fn follow<C, K>(
        &mut self,
        consumer: &K,
        topic: &str,
        partition: i32,
        offset: i64,
    ) -> KafkaResult<Step>
    where
        C: ConsumerContext,
        K: Consumer<C>,
    {
        let step = self.step(offset);
        match step {
            Step::SeekTo(to) => {
                tracing::info!(
                    topic,
                    partition,
                    from = offset,
                    to,
                    "seeking back to the offset the state expects"
                );
                seek(consumer, topic, partition, to)?;
            }
            Step::Gap { expected } => tracing::warn!(
                topic,
                partition,
                expected,
                offset,
                "offsets missing from the topic (retention or compaction), continuing"
            ),
            Step::Process | Step::Replayed => {}
        }
        Ok(step)
    }

    /// The record at `offset` was processed.
    pub fn advance(&mut self, offset: i64) {
        self.next = offset + 1;
    }

    /// Back to `next` (a flush given up: its range is read again).
    pub fn rewind(&mut self, next: i64) {
        self.next = next;
        self.seeking = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn steps() {
        let mut c = Cursor::at(10);
        assert_eq!(c.step(9), Step::Replayed);
        assert_eq!(c.step(12), Step::SeekTo(10));
        assert_eq!(c.step(10), Step::Process);
        c.advance(10);
        assert_eq!(c.next(), 11);
        assert_eq!(c.step(13), Step::SeekTo(11));
        assert_eq!(c.step(13), Step::Gap { expected: 11 });
        c.advance(13);
        c.rewind(5);
        assert_eq!(c.step(5), Step::Process);
    }

    proptest! {
        /// A model consumer over a log with holes, which sometimes jumps back (a rebalance
        /// resuming from an older commit) or forward (a committed offset ahead of the state):
        /// processed offsets strictly increase and none the log holds is passed over.
        #[test]
        fn never_repeats_and_never_skips(
            holes in proptest::collection::btree_set(0i64..60, 0..10),
            start in 0i64..40,
            first in 0i64..60,
            jumps in proptest::collection::vec((0u8..10, 0i64..60), 0..40),
        ) {
            let log: Vec<i64> = (0..60).filter(|o| !holes.contains(o)).collect();
            let deliver = |pos: i64| log.iter().copied().find(|&o| o >= pos);
            let mut cursor = Cursor::at(start);
            let mut pos = first;
            let mut processed: Vec<i64> = Vec::new();
            let mut jumps = jumps.into_iter();
            for _ in 0..400 {
                let Some(offset) = deliver(pos) else { break };
                pos = offset + 1;
                let step = cursor.step(offset);
                match step {
                    Step::Process | Step::Gap { .. } => {
                        processed.push(offset);
                        cursor.advance(offset);
                    }
                    Step::Replayed => {}
                    Step::SeekTo(to) => pos = to,
                }
                // A seek is obeyed by the next delivery (librdkafka drops what it fetched
                // before); other jumps come at any time.
                if let Some((p, to)) = jumps.next() {
                    if p == 0 && !matches!(step, Step::SeekTo(_)) {
                        pos = to;
                    }
                }
            }
            prop_assert!(processed.windows(2).all(|w| w[0] < w[1]), "{:?}", processed);
            if let Some(&last) = processed.last() {
                for o in log.iter().filter(|&&o| o >= start && o <= last) {
                    prop_assert!(processed.contains(o), "offset {} passed over: {:?}", o, processed);
                }
            }
        }
    }
}
