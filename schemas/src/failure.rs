//! The failure record of a dead letter: why a record was rejected, in a form a person, a query
//! and a replay can act on (Snowplow's bad rows are the model).
//!
//! Contract:
//! - Every record a Northstar service writes to the dead-letter topic carries one [`Failure`]
//!   as JSON in the [`crate::headers::FAILURE`] header, next to the record's bytes: the original
//!   bytes untouched, or — when the tracking plan pseudonymised the event before it was
//!   rejected — its rewritten encoding; a [`FailureType::Consent`] letter has no bytes and no
//!   key at all (the person did not consent: the letter only accounts for the event).
//! - [`FailureType`] is coarse and stable (a metric label, a lake column, a replay filter); each
//!   [`Problem`] is one problem with one value: a stable reason code, the path, the rule, what
//!   was expected and what was found. PII values never appear (the plan check only shows their
//!   JSON type), so a failure record can be logged, stored and queried.
//! - `recovery_count` is how many times the record had been replayed when it failed (the raw
//!   record's [`crate::headers::RECOVERY`] header; 0 for a first failure).
//! - Versioned by `version` (1); readers ignore fields they do not know, so fields can be added.

use serde::{Deserialize, Serialize};

use crate::headers::SourcePosition;

/// The version of the failure record written today.
pub const VERSION: u32 = 1;

/// Longest problem list kept in one failure record (the rest are counted in `omitted`).
pub const MAX_PROBLEMS: usize = 50;

/// Longest `northstar.dlq.detail` text, in bytes (the failure record has every problem).
pub const MAX_DETAIL: usize = 4096;

/// What kind of failure: what a dead letter needs before it can be replayed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureType {
    /// Not an event at all: no value, not wire format, an unknown schema id, bad Avro.
    Undecodable,
    /// The envelope breaks the event contract: no messageId, no identity, no event name, a
    /// timestamp outside 2000–2100, a JSON part that is not an object.
    Envelope,
    /// The event time cannot be trusted (older than `max_event_age_days` before receivedAt).
    Clock,
    /// The record is larger than the processor's `max_event_bytes`.
    Size,
    /// Properties, traits or context break the tracking plan's rules.
    SchemaViolation,
    /// A track event the tracking plan does not define.
    UnknownEvent,
    /// An event or property name that breaks the plan's naming rules.
    Naming,
    /// The person did not consent to the event's purpose (no bytes kept).
    Consent,
    /// The lake sink could not read a clean record.
    Loader,
}

impl FailureType {
    pub const ALL: [FailureType; 9] = [
        FailureType::Undecodable,
        FailureType::Envelope,
        FailureType::Clock,
        FailureType::Size,
        FailureType::SchemaViolation,
        FailureType::UnknownEvent,
        FailureType::Naming,
        FailureType::Consent,
        FailureType::Loader,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            FailureType::Undecodable => "undecodable",
            FailureType::Envelope => "envelope",
            FailureType::Clock => "clock",
            FailureType::Size => "size",
            FailureType::SchemaViolation => "schema_violation",
            FailureType::UnknownEvent => "unknown_event",
            FailureType::Naming => "naming",
            FailureType::Consent => "consent",
            FailureType::Loader => "loader",
        }
    }

    pub fn parse(s: &str) -> Option<FailureType> {
        FailureType::ALL.into_iter().find(|t| t.as_str() == s)
    }

    /// The type of a processor reason code, for dead letters written before failure records
    /// (their `northstar.dlq.reason` header only); `None` for a code it does not know.
    pub fn of_reason(reason: &str) -> Option<FailureType> {
        Some(match reason {
            "empty_payload" | "not_wire_format" | "unknown_schema" | "undecodable" => {
                FailureType::Undecodable
            }
            "missing_message_id"
            | "missing_identity"
            | "missing_source"
            | "missing_event_name"
            | "missing_group_id"
            | "missing_previous_id"
            | "invalid_timestamp" => FailureType::Envelope,
            "timestamp_too_old" => FailureType::Clock,
            "too_large" => FailureType::Size,
            "unknown_event" => FailureType::UnknownEvent,
            "invalid_name" => FailureType::Naming,
            "consent_not_given" => FailureType::Consent,
            "unknown_property" | "missing_property" | "wrong_type" | "null_not_allowed"
            | "not_in_enum" | "below_minimum" | "above_maximum" | "too_short" | "too_long"
            | "pattern_mismatch" | "invalid_format" | "plan_violation" => {
                FailureType::SchemaViolation
            }
            _ => return None,
        })
    }
}

impl std::fmt::Display for FailureType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One problem with one value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Problem {
    /// Stable code: `wrong_type`, `missing_message_id`, `not_wire_format`…
    pub reason: String,
    /// Where: `properties.revenue`, `messageId`, `event`; empty for the record as a whole.
    pub path: String,
    /// The rule as written: `type: number`, `required`, `max_event_bytes: 65536`.
    pub rule: String,
    pub expected: String,
    /// What was found (shortened; only its JSON type for PII).
    pub actual: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let path = if self.path.is_empty() {
            "record"
        } else {
            &self.path
        };
        write!(
            f,
            "{path}: {} ({}): expected {}, got {}",
            self.reason, self.rule, self.expected, self.actual
        )
    }
}

/// The plan a record was checked against.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanRef {
    pub id: String,
    pub version: String,
}

/// The source position, as written in a failure record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Source {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
}

impl From<SourcePosition> for Source {
    fn from(p: SourcePosition) -> Self {
        Source {
            topic: p.topic,
            partition: p.partition,
            offset: p.offset,
        }
    }
}

/// Who the event is about and what it is, as far as it could be decoded.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventRef {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_id: Option<String>,
    /// The event's `sourceId` (the collector's source, not the Kafka source).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_id: Option<String>,
    /// The message type: `track`, `identify`…
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_type: Option<String>,
    /// A track event's name, a page's or screen's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub anonymous_id: Option<String>,
}

impl EventRef {
    /// Everything about `e` (a decoded event).
    pub fn of(e: &crate::Event) -> Self {
        let name = match e.kind {
            crate::EventType::Track => e.event.clone(),
            _ => e.name.clone(),
        };
        EventRef {
            message_id: Some(e.message_id.clone()).filter(|m| !m.is_empty()),
            source_id: Some(e.source_id.clone()).filter(|s| !s.is_empty()),
            event_type: Some(e.kind.as_str().to_string()),
            event: name,
            user_id: e.user_id.clone(),
            anonymous_id: e.anonymous_id.clone(),
        }
    }

    /// The same without who it is about (a consent letter keeps no identity).
    pub fn anonymous(mut self) -> Self {
        self.user_id = None;
        self.anonymous_id = None;
        self
    }
}

/// The failure record of one dead letter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failure {
    /// [`VERSION`].
    pub version: u32,
    #[serde(rename = "type")]
    pub failure_type: FailureType,
    /// The deciding problem's code (the `northstar.dlq.reason` header too).
    pub reason: String,
    /// Which service rejected it: `stream-processor`, `lake-sink`.
    pub component: String,
    /// Every problem found, at most [`MAX_PROBLEMS`].
    pub problems: Vec<Problem>,
    /// Problems left out past [`MAX_PROBLEMS`].
    #[serde(default, skip_serializing_if = "is_zero")]
    pub omitted: u32,
    /// The tracking plan it was checked against, if one was enforced.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan: Option<PlanRef>,
    /// The input record's position.
    pub source: Source,
    #[serde(default)]
    pub event: EventRef,
    /// How many times the record had been replayed when it failed.
    #[serde(default)]
    pub recovery_count: u32,
    /// The dead letter a replayed record came from (`topic/partition/offset`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replay_of: Option<String>,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

impl Failure {
    /// A failure record of `failure_type` with `problems` (cut at [`MAX_PROBLEMS`]); the
    /// reason is the first problem's code unless `reason` is given.
    pub fn new(
        failure_type: FailureType,
        component: &str,
        source: Source,
        mut problems: Vec<Problem>,
    ) -> Self {
        let omitted = problems.len().saturating_sub(MAX_PROBLEMS) as u32;
        problems.truncate(MAX_PROBLEMS);
        Failure {
            version: VERSION,
            failure_type,
            reason: problems
                .first()
                .map_or_else(|| failure_type.as_str().to_string(), |p| p.reason.clone()),
            component: component.to_string(),
            problems,
            omitted,
            plan: None,
            source,
            event: EventRef::default(),
            recovery_count: 0,
            replay_of: None,
        }
    }

    /// Every problem on one line, `; `-separated, cut at [`MAX_DETAIL`] bytes (the
    /// `northstar.dlq.detail` header).
    pub fn detail(&self) -> String {
        let mut out = self
            .problems
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("; ");
        if self.omitted > 0 {
            out.push_str(&format!("; and {} more", self.omitted));
        }
        cut(&mut out, MAX_DETAIL);
        out
    }

    /// The JSON text of the header.
    pub fn to_json(&self) -> String {
        // A struct of strings and numbers always serialises.
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Parses a header's JSON text.
    pub fn from_json(text: &str) -> Result<Failure, serde_json::Error> {
        serde_json::from_str(text)
    }
}

/// Cuts `text` to at most `max` bytes on a character boundary, marking the cut with `…`;
/// whether it was cut.
pub fn cut(text: &mut String, max: usize) -> bool {
    if text.len() <= max {
        return false;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text.truncate(end);
    text.push('…');
    true
}

/// The value of a replayed record's [`crate::headers::REPLAY_OF`] header: the dead letter's
/// position.
pub fn replay_of(topic: &str, partition: i32, offset: i64) -> String {
    format!("{topic}/{partition}/{offset}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problem(reason: &str, path: &str) -> Problem {
        Problem {
            reason: reason.into(),
            path: path.into(),
            rule: "type: number".into(),
            expected: "a number".into(),
            actual: "\"12,50\"".into(),
        }
    }

    fn source() -> Source {
        Source {
            topic: "events.raw".into(),
            partition: 2,
            offset: 41,
        }
    }

    #[test]
    fn json_round_trip_and_reader_tolerance() {
        let mut f = Failure::new(
            FailureType::SchemaViolation,
            "stream-processor",
            source(),
            vec![problem("wrong_type", "properties.revenue")],
        );
        f.plan = Some(PlanRef {
            id: "demo".into(),
            version: "1.0.0".into(),
        });
        f.recovery_count = 2;
        let text = f.to_json();
        assert!(text.contains("\"type\":\"schema_violation\""), "{text}");
        assert_eq!(Failure::from_json(&text).expect("parse"), f);
        // A newer writer's extra field is ignored.
        let newer = text.replacen('{', "{\"added_later\":[1,2],", 1);
        assert_eq!(Failure::from_json(&newer).expect("parse"), f);
    }

    #[test]
    fn reason_is_the_first_problem_and_long_lists_are_cut() {
        let many: Vec<Problem> = (0..60)
            .map(|i| problem("too_long", &format!("p{i}")))
            .collect();
        let f = Failure::new(FailureType::SchemaViolation, "x", source(), many);
        assert_eq!(f.reason, "too_long");
        assert_eq!((f.problems.len(), f.omitted), (MAX_PROBLEMS, 10));
        assert!(f.detail().ends_with("; and 10 more"));
        let none = Failure::new(FailureType::Consent, "x", source(), vec![]);
        assert_eq!(none.reason, "consent");
    }

    #[test]
    fn every_type_parses_from_its_name_and_old_reasons_map_to_types() {
        for t in FailureType::ALL {
            assert_eq!(FailureType::parse(t.as_str()), Some(t));
        }
        assert_eq!(
            FailureType::of_reason("not_wire_format"),
            Some(FailureType::Undecodable)
        );
        assert_eq!(
            FailureType::of_reason("wrong_type"),
            Some(FailureType::SchemaViolation)
        );
        assert_eq!(FailureType::of_reason("whatever"), None);
    }

    #[test]
    fn a_consent_reference_keeps_no_identity() {
        let e = EventRef {
            message_id: Some("m".into()),
            user_id: Some("u".into()),
            anonymous_id: Some("a".into()),
            ..EventRef::default()
        }
        .anonymous();
        assert_eq!((e.user_id, e.anonymous_id), (None, None));
        assert_eq!(e.message_id.as_deref(), Some("m"));
    }
}
