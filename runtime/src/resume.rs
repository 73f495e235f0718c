//! Where a partition's durable state says to resume, checked against the partition itself.
//!
//! Contract: a service resuming a partition at offset `resume` (from a processor checkpoint or
//! a lake ledger entry) first reads the partition's offsets; a `resume` past the partition's
//! end means the state belongs to another incarnation of the topic (deleted and recreated, or
//! another cluster's brokers): resuming would skip every record of the new topic below
//! `resume`, so the service refuses with [`TopicReset`], which says what happened and what to
//! do, instead of skipping silently. A `resume` at or below the end is in sequence. Where the
//! state records the topic's id ([`crate::topic_id`]) and the brokers report one, a different
//! id is refused too ([`TopicReplaced`]): that catches a recreated topic that has already grown
//! past the old position, which offsets alone cannot tell apart. Callers read the current id
//! once per assignment ([`current_id`]) and record it in the state they write.

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

/// A partition whose durable state was written for another incarnation of its topic.
#[derive(Debug, thiserror::Error)]
#[error(
    "topic {topic} has id {current}, but {state} was written for the topic with id {recorded}: \
     the topic was deleted and recreated, or these brokers are another cluster's. Resuming \
     partition {partition} at offset {resume} would skip the new topic's records below it and \
     take the rest as if they followed the old ones. {recovery}"
)]
pub struct TopicReplaced {
    pub topic: String,
    pub partition: i32,
    pub resume: i64,
    pub recorded: String,
    pub current: String,
    pub state: String,
    pub recovery: String,
}

/// Why a resume position could not be checked or is refused.
#[derive(Debug, thiserror::Error)]
pub enum ResumeError {
    #[error(transparent)]
    Reset(Box<TopicReset>),
    #[error(transparent)]
    Replaced(Box<TopicReplaced>),
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

/// The pure decision on ids: the same incarnation unless both ids are known and differ.
pub fn same_incarnation(recorded: Option<&str>, current: Option<&str>) -> bool {
    match (recorded, current) {
        (Some(a), Some(b)) => a == b,
        _ => true,
    }
}

/// The id of `topic` as the brokers report it; `None` (with a warning) when they cannot say
/// (a broker without DescribeTopics), so that only the offset check applies then.
pub fn current_id<C: Consumer<X>, X: rdkafka::consumer::ConsumerContext>(
    consumer: &C,
    topic: &str,
) -> Option<String> {
    match crate::topic_id::topic_id(consumer.client(), topic, Duration::from_secs(10)) {
        Ok(id) => id,
        Err(e) => {
            tracing::warn!(error = %e, "the topic's id is unknown: a recreated topic is detected by its offsets only");
            None
        }
    }
}

/// Checks `resume`, recorded with the topic id `recorded`, against `partition` of `topic`:
/// its id against `current` ([`current_id`], read once per assignment by the caller), then its
/// end (a broker round trip; call from a blocking context).
#[allow(clippy::too_many_arguments)]
pub fn check<C: Consumer<X>, X: rdkafka::consumer::ConsumerContext>(
    consumer: &C,
    topic: &str,
    partition: i32,
    resume: i64,
    recorded: Option<&str>,
    current: Option<&str>,
    state: impl FnOnce() -> (String, String),
) -> Result<(), ResumeError> {
    if !same_incarnation(recorded, current) {
        let (state, recovery) = state();
        return Err(ResumeError::Replaced(Box::new(TopicReplaced {
            topic: topic.to_string(),
            partition,
            resume,
            recorded: recorded.unwrap_or_default().to_string(),
            current: current.unwrap_or_default().to_string(),
            state,
            recovery,
        })));
    }
    let (_, end) = consumer
        .fetch_watermarks(topic, partition, Duration::from_secs(10))
        .map_err(|source| ResumeError::Kafka {
            topic: topic.to_string(),
            partition,
            source,
        })?;
    past_end(resume, end).map_err(|end| {
        let (state, recovery) = state();
        ResumeError::Reset(Box::new(TopicReset {
            topic: topic.to_string(),
            partition,
            end,
            resume,
            state,
            recovery,
        }))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn another_id_is_another_incarnation_an_unknown_one_is_not() {
        assert!(same_incarnation(Some("a"), Some("a")));
        assert!(!same_incarnation(Some("a"), Some("b")));
        assert!(
            same_incarnation(None, Some("b")),
            "state written before ids"
        );
        assert!(
            same_incarnation(Some("a"), None),
            "brokers that report none"
        );
        let e = TopicReplaced {
            topic: "events.raw".into(),
            partition: 1,
            resume: 40,
            recorded: "old".into(),
            current: "new".into(),
            state: "the lake ledger".into(),
            recovery: "Start on a new root.".into(),
        };
        let text = e.to_string();
        for part in [
            "has id new",
            "written for the topic with id old",
            "recreated",
            "offset 40",
            "new root",
        ] {
            assert!(text.contains(part), "{part:?} in {text}");
        }
    }

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
