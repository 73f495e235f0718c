//! Record headers of the contract.
//!
//! Contract: every record a Northstar service produces from an input record carries that
//! input's topic, partition and offset ([`SOURCE_TOPIC`], [`SOURCE_PARTITION`],
//! [`SOURCE_OFFSET`], decimal text), so a replay can be recognised downstream. Dead-letter
//! records also carry [`DLQ_REASON`] (a stable machine-readable code) and [`DLQ_DETAIL`]. Clean
//! records checked against a tracking plan carry [`PLAN`], and [`PLAN_FLAGS`] when flagged.

use rdkafka::message::{Header, Headers, OwnedHeaders};

pub const SOURCE_TOPIC: &str = "northstar.source.topic";
pub const SOURCE_PARTITION: &str = "northstar.source.partition";
pub const SOURCE_OFFSET: &str = "northstar.source.offset";
pub const DLQ_REASON: &str = "northstar.dlq.reason";
pub const DLQ_DETAIL: &str = "northstar.dlq.detail";
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

/// Headers of a dead-letter record: the source position, [`DLQ_REASON`] and [`DLQ_DETAIL`].
pub fn dead_letter_headers(
    topic: &str,
    partition: i32,
    offset: i64,
    reason: &str,
    detail: &str,
) -> OwnedHeaders {
    source_headers(topic, partition, offset)
        .insert(Header {
            key: DLQ_REASON,
            value: Some(reason),
        })
        .insert(Header {
            key: DLQ_DETAIL,
            value: Some(detail),
        })
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
    fn dead_letter_headers_carry_the_reason_and_the_source() {
        let h = dead_letter_headers("events.clean", 1, 7, "invalid_json", "line 1");
        assert_eq!(header_str(&h, DLQ_REASON), Some("invalid_json"));
        assert_eq!(header_str(&h, DLQ_DETAIL), Some("line 1"));
        assert_eq!(source_position(&h).map(|p| p.offset), Some(7));
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
