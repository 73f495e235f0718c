//! Validation of decoded events against the v1 contract.
//!
//! Contract: pure; an event that passes can be counted and written to the lake; one that fails
//! gets an [`Invalid`]: its failure type, a stable reason code (a DLQ header and a metric label)
//! and one problem naming the field, the rule, what was expected and what was found. A JSON part
//! that is not an object is described by its JSON type and size only: its text may be personal
//! data the plan could not classify.

use northstar_schemas::failure::{FailureType, Problem};
use northstar_schemas::{Event, EventType, Undecodable};

/// Why a record was rejected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    pub failure_type: FailureType,
    /// Stable, low-cardinality code of the deciding problem.
    pub reason: &'static str,
    /// Every problem found (at least one).
    pub problems: Vec<Problem>,
}

impl Invalid {
    /// One problem of `failure_type`.
    pub fn one(
        failure_type: FailureType,
        reason: &'static str,
        path: &str,
        rule: &str,
        expected: &str,
        actual: impl Into<String>,
    ) -> Self {
        Self {
            failure_type,
            reason,
            problems: vec![Problem {
                reason: reason.to_string(),
                path: path.to_string(),
                rule: rule.to_string(),
                expected: expected.to_string(),
                actual: actual.into(),
            }],
        }
    }

    fn envelope(
        reason: &'static str,
        path: &str,
        rule: &str,
        expected: &str,
        actual: &str,
    ) -> Self {
        Self::one(FailureType::Envelope, reason, path, rule, expected, actual)
    }

    /// A record that is not a decodable event.
    pub fn undecodable(u: Undecodable) -> Self {
        let expected = match u.reason {
            "empty_payload" => "a record value",
            "not_wire_format" => "Confluent wire format (magic byte 0, schema id, Avro datum)",
            "unknown_schema" => "a schema id the registry knows",
            _ => "an Avro datum of an event schema",
        };
        Self::one(
            FailureType::Undecodable,
            u.reason,
            "",
            "wire format",
            expected,
            u.detail,
        )
    }

    /// A record larger than `max` bytes.
    pub fn too_large(bytes: usize, max: usize) -> Self {
        Self::one(
            FailureType::Size,
            "too_large",
            "",
            &format!("max_event_bytes: {max}"),
            &format!("at most {max} bytes"),
            format!("{bytes} bytes"),
        )
    }

    /// An event whose consent purpose was not granted (`said`: the JSON text found at
    /// `context.consent.categoryPreferences.<purpose>`, `None` when absent).
    pub fn consent(purpose: &str, said: Option<&str>) -> Self {
        let actual = match said {
            Some(v) => v.chars().take(16).collect(),
            None => "absent (the plan's default: not granted)".to_string(),
        };
        Self::one(
            FailureType::Consent,
            "consent_not_given",
            &format!("context.consent.categoryPreferences.{purpose}"),
            &format!("consent: {purpose}"),
            "true",
            actual,
        )
    }

    /// Every problem on one line.
    pub fn detail(&self) -> String {
        let texts: Vec<String> = self.problems.iter().map(ToString::to_string).collect();
        texts.join("; ")
    }
}

/// 2000-01-01T00:00:00Z in µs: anything earlier is a client bug, not an event.
const MIN_TS_MICROS: i64 = 946_684_800_000_000;
/// 2100-01-01T00:00:00Z in µs.
const MAX_TS_MICROS: i64 = 4_102_444_800_000_000;

/// Whether `text` is one well-formed JSON object (checked by the parser without building it).
fn is_json_object(text: &str) -> bool {
    text.trim_start().starts_with('{')
        && serde_json::from_str::<serde::de::IgnoredAny>(text).is_ok()
}

/// What a JSON part that is not an object holds: its type and size, never its text.
fn described(text: &str) -> String {
    let kind = match text.trim_start().as_bytes().first() {
        None => return "nothing".into(),
        Some(b'"') => "a string",
        Some(b'[') => "an array",
        Some(b'{') => "malformed JSON",
        Some(b't' | b'f') => "a boolean",
        Some(b'n') => "null",
        Some(b'-' | b'0'..=b'9') => "a number",
        Some(_) => "malformed JSON",
    };
    format!("{kind} ({} bytes)", text.len())
}

/// Checks the required fields and the types of the schemaless parts.
pub fn validate(e: &Event) -> Result<(), Invalid> {
    let required = |reason, path, expected| {
        Err(Invalid::envelope(
            reason,
            path,
            "required",
            expected,
            "absent or empty",
        ))
    };
    if e.message_id.trim().is_empty() {
        return required("missing_message_id", "messageId", "a non-empty messageId");
    }
    if e.distinct_id().is_none() {
        return required("missing_identity", "userId", "a userId or an anonymousId");
    }
    if e.source_id.is_empty() {
        return required("missing_source", "sourceId", "a non-empty sourceId");
    }
    match e.kind {
        EventType::Track if e.event.as_deref().is_none_or(|n| n.trim().is_empty()) => {
            return required(
                "missing_event_name",
                "event",
                "a non-empty event name (track)",
            );
        }
        EventType::Group if e.group_id.is_none() => {
            return required("missing_group_id", "groupId", "a groupId (group)");
        }
        EventType::Alias if e.previous_id.is_none() => {
            return required("missing_previous_id", "previousId", "a previousId (alias)");
        }
        _ => {}
    }
    if !(MIN_TS_MICROS..MAX_TS_MICROS).contains(&e.timestamp) {
        return Err(Invalid::envelope(
            "invalid_timestamp",
            "timestamp",
            "2000-01-01 ≤ timestamp < 2100-01-01",
            "a time between 2000 and 2100",
            &format!("{} µs since the epoch", e.timestamp),
        ));
    }
    for (field, text) in [
        ("context", &e.context),
        ("properties", &e.properties),
        ("traits", &e.traits),
        ("integrations", &e.integrations),
    ] {
        if !is_json_object(text) {
            return Err(Invalid::envelope(
                "not_an_object",
                field,
                "type: object",
                "a JSON object",
                &described(text),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub fn event(id: &str, user: &str, name: &str, ts_micros: i64) -> Event {
        Event {
            kind: EventType::Track,
            message_id: id.into(),
            user_id: Some(user.into()),
            anonymous_id: None,
            event: Some(name.into()),
            name: None,
            group_id: None,
            previous_id: None,
            timestamp: ts_micros,
            original_timestamp: None,
            sent_at: None,
            received_at: ts_micros,
            context: "{}".into(),
            properties: "{}".into(),
            traits: "{}".into(),
            integrations: "{}".into(),
            source_id: "web".into(),
        }
    }

    const T: i64 = 1_764_000_000_000_000;

    #[test]
    fn valid_event_passes() {
        assert_eq!(validate(&event("m", "u", "x", T)), Ok(()));
    }

    #[test]
    fn each_rule_has_its_reason() {
        let mut e = event("", "u", "x", T);
        assert_eq!(validate(&e).unwrap_err().reason, "missing_message_id");
        e = event("m", "", "x", T);
        assert_eq!(validate(&e).unwrap_err().reason, "missing_identity");
        e = event("m", "u", " ", T);
        assert_eq!(validate(&e).unwrap_err().reason, "missing_event_name");
        e = event("m", "u", "x", 5);
        assert_eq!(validate(&e).unwrap_err().reason, "invalid_timestamp");
        e = event("m", "u", "x", T);
        e.properties = "\"a string\"".into();
        let err = validate(&e).unwrap_err();
        assert_eq!(err.reason, "not_an_object");
        assert_eq!(err.failure_type, FailureType::Envelope);
        assert_eq!(err.problems[0].path, "properties");
        assert_eq!(
            err.problems[0].actual, "a string (10 bytes)",
            "the type, never the text"
        );
        for bad in [
            "[1]",
            "{\"a\":",
            "{} {}",
            "{\"a\":1,}",
            "",
            " ",
            "null",
            "{\"a\":\"\\ud800\"}x",
        ] {
            e.context = bad.into();
            assert_eq!(validate(&e).unwrap_err().reason, "not_an_object", "{bad}");
        }
        e.context = " {\"os\": {\"name\": \"iOS\"}, \"l\": [1, {}]} ".into();
        e.properties = "{}".into();
        assert_eq!(validate(&e), Ok(()));
        e = event("m", "u", "x", T);
        e.kind = EventType::Alias;
        assert_eq!(validate(&e).unwrap_err().reason, "missing_previous_id");
    }
}
