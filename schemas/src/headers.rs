//! Record headers of the contract.
//!
//! Contract: every record a Northstar service produces from an input record carries that
//! input's topic, partition and offset ([`SOURCE_TOPIC`], [`SOURCE_PARTITION`],
//! [`SOURCE_OFFSET`], decimal text), so a replay can be recognised downstream. Dead-letter
//! records also carry [`DLQ_REASON`] (a stable machine-readable code), [`DLQ_DETAIL`] (every
//! problem on one line) and [`FAILURE`] (the structured failure record of
//! [`crate::failure`], JSON). Clean records checked against a tracking plan carry [`PLAN`], and
//! [`PLAN_FLAGS`] when flagged. A record replayed from the dead-letter topic into the raw topic
//! carries [`RECOVERY`] (how many times it has been replayed) and [`REPLAY_OF`] (the dead
//! letter's position).

use rdkafka::message::{Header, Headers, OwnedHeaders};

pub const SOURCE_TOPIC: &str = "northstar.source.topic";
pub const SOURCE_PARTITION: &str = "northstar.source.partition";
pub const SOURCE_OFFSET: &str = "northstar.source.offset";
pub const DLQ_REASON: &str = "northstar.dlq.reason";
pub const DLQ_DETAIL: &str = "northstar.dlq.detail";
/// On a dead letter: the [`crate::failure::Failure`] record, JSON.
pub const FAILURE: &str = "northstar.failure";
/// On a replayed raw record: how many times it has been replayed (decimal, 1 the first time).
pub const RECOVERY: &str = "northstar.recovery";
/// On a replayed raw record: `topic/partition/offset` of the dead letter it came from.
pub const REPLAY_OF: &str = "northstar.replay.of";
/// On a clean record: `id@version` of the tracking plan it was checked against.
pub const PLAN: &str = "northstar.plan";
/// On a clean record the plan flagged: `kind:path` of each flagged problem, comma-separated.
pub const PLAN_FLAGS: &str = "northstar.plan.flags";

/// Where a record came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourcePosition {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
}

/// Headers naming the source position.
pub fn source_headers(topic: &str, partition: i32, offset: i64) -> OwnedHeaders {
    OwnedHeaders::new_with_capacity(3)
        .insert(Header {
            key: SOURCE_TOPIC,
            value: Some(topic),
        })
        .insert(Header {
            key: SOURCE_PARTITION,
            value: Some(itoa::Buffer::new().format(partition)),
        })
        .insert(Header {
            key: SOURCE_OFFSET,
            value: Some(itoa::Buffer::new().format(offset)),
        })
}

/// Headers of a dead-letter record: the source position, [`DLQ_REASON`], [`DLQ_DETAIL`] and
/// [`FAILURE`], all from `failure`.
pub fn dead_letter_headers(failure: &crate::failure::Failure) -> OwnedHeaders {
    let s = &failure.source;
    source_headers(&s.topic, s.partition, s.offset)
        .insert(Header {
            key: DLQ_REASON,
            value: Some(failure.reason.as_str()),
        })
        .insert(Header {
            key: DLQ_DETAIL,
            value: Some(failure.detail().as_str()),
        })
        .insert(Header {
            key: FAILURE,
            value: Some(failure.to_json().as_str()),
        })
}

/// The replay count of a raw record ([`RECOVERY`]; 0 when absent or not a number).
pub fn recovery_count<H: Headers>(headers: Option<&H>) -> u32 {
    headers
        .and_then(|h| header_str(h, RECOVERY))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

/// Reads a header's value as UTF-8 text.
pub fn header_str<'a, H: Headers>(headers: &'a H, key: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|h| h.key == key)
        .and_then(|h| h.value)
        .and_then(|v| std::str::from_utf8(v).ok())
}

/// Reads the source position headers, if all three are present and well formed.
pub fn source_position<H: Headers>(headers: &H) -> Option<SourcePosition> {
    Some(SourcePosition {
        topic: header_str(headers, SOURCE_TOPIC)?.to_string(),
        partition: header_str(headers, SOURCE_PARTITION)?.parse().ok()?,
        offset: header_str(headers, SOURCE_OFFSET)?.parse().ok()?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dead_letter_headers_carry_the_reason_the_failure_and_the_source() {
        use crate::failure::{Failure, FailureType, Problem, Source};
        let problem = Problem {
            reason: "undecodable".into(),
            path: String::new(),
            rule: "Avro".into(),
            expected: "an event".into(),
            actual: "line 1".into(),
        };
        let source = Source {
            topic: "events.clean".into(),
            partition: 1,
            offset: 7,
        };
        let f = Failure::new(FailureType::Loader, "lake-sink", source, vec![problem]);
        let h = dead_letter_headers(&f);
        assert_eq!(header_str(&h, DLQ_REASON), Some("undecodable"));
        assert_eq!(
            header_str(&h, DLQ_DETAIL),
            Some("record: undecodable (Avro): expected an event, got line 1")
        );
        assert_eq!(source_position(&h).map(|p| p.offset), Some(7));
        let back = Failure::from_json(header_str(&h, FAILURE).expect("failure header"));
        assert_eq!(back.expect("parses"), f);
    }

    #[test]
    fn recovery_count_reads_the_header_or_zero() {
        let h = OwnedHeaders::new().insert(Header {
            key: RECOVERY,
            value: Some("3"),
        });
        assert_eq!(recovery_count(Some(&h)), 3);
        assert_eq!(recovery_count(None::<&OwnedHeaders>), 0);
        let bad = OwnedHeaders::new().insert(Header {
            key: RECOVERY,
            value: Some("x"),
        });
        assert_eq!(recovery_count(Some(&bad)), 0);
    }

    #[test]
    fn source_headers_round_trip() {
        let h = source_headers("events.raw", 2, 12345);
        assert_eq!(
            source_position(&h),
            Some(SourcePosition {
                topic: "events.raw".into(),
                partition: 2,
                offset: 12345
            })
        );
    }
}
