//! Where a partition's durable state says to resume, checked against the partition itself.
//!
//! Contract: a service resuming a partition at offset `resume` (from a processor checkpoint or
//! a lake ledger entry) first reads the partition's offsets; a `resume` past the partition's
//! end means the state belongs to another incarnation of the topic (deleted and recreated, or
//! another cluster's brokers): resuming would skip every record of the new topic below
//! `resume`, so the service refuses with [`TopicReset`], which says what happened and what to
//! do, instead of skipping silently. A `resume` at or below the end is in sequence.

use std::time::Duration;

use rdkafka::consumer::Consumer;
use rdkafka::error::KafkaError;

/// A partition whose durable state resumes past its end.
#[derive(Debug, thiserror::Error)]
#[error(
    "partition {partition} of {topic} ends at offset {end}, but {state} resumes it at {resume}: \
     the topic was deleted and recreated, or these brokers are another cluster's. Resuming would \
     skip the new topic's records below {resume}. {recovery}"
)]
pub struct TopicReset {
    pub topic: String,
    pub partition: i32,
    pub end: i64,
    pub resume: i64,
    /// What holds the resume position (`the checkpoint under …`, `the lake ledger`).
    pub state: String,
    /// What the operator does about it (service-specific, documented in docs/operations.md).
    pub recovery: String,
}

/// Why a resume position could not be checked or is refused.
#[derive(Debug, thiserror::Error)]
pub enum ResumeError {
    #[error(transparent)]
    Reset(#[from] TopicReset),
    #[error("reading the offsets of partition {partition} of {topic}: {source}")]
    Kafka {
        topic: String,
        partition: i32,
        source: KafkaError,
    },
}

/// The pure decision: `Err` with the partition's end if `resume` is past it.
pub fn past_end(resume: i64, end: i64) -> Result<(), i64> {
    if resume > end {
        Err(end)
    } else {
        Ok(())
    }
}

/// Checks `resume` against the end of `partition` of `topic` (a broker round trip; call from
/// a blocking context).
pub fn check<C: Consumer<X>, X: rdkafka::consumer::ConsumerContext>(
    consumer: &C,
    topic: &str,
    partition: i32,
    resume: i64,
    state: impl FnOnce() -> (String, String),
) -> Result<(), ResumeError> {
    let (_, end) = consumer
        .fetch_watermarks(topic, partition, Duration::from_secs(10))
        .map_err(|source| ResumeError::Kafka {
            topic: topic.to_string(),
            partition,
            source,
        })?;
    past_end(resume, end).map_err(|end| {
        let (state, recovery) = state();
        ResumeError::Reset(TopicReset {
            topic: topic.to_string(),
            partition,
            end,
            resume,
            state,
            recovery,
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_resume_past_the_end_is_refused_at_or_below_it_is_not() {
        assert_eq!(past_end(0, 0), Ok(()));
        assert_eq!(
            past_end(120, 120),
            Ok(()),
            "resuming at the end: nothing new yet"
        );
        assert_eq!(past_end(7, 120), Ok(()));
        assert_eq!(past_end(121, 120), Err(120));
        let e = TopicReset {
            topic: "events.raw".into(),
            partition: 2,
            end: 33,
            resume: 100,
            state: "the checkpoint under file://./data/checkpoints".into(),
            recovery: "Move the checkpoints away.".into(),
        };
        let text = e.to_string();
        for part in [
            "partition 2 of events.raw ends at offset 33",
            "resumes it at 100",
            "recreated",
            "Move the checkpoints away.",
        ] {
            assert!(text.contains(part), "{text}");
        }
    }
}
