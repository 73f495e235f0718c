//! Validation of decoded events against the v1 contract.
//!
//! Contract: pure; an event that passes can be counted and written to the lake; one that fails
//! gets a stable reason code (a DLQ header and a metric label) and a detail naming the field.

use northstar_schemas::{Event, EventType};

/// Why an event was rejected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    /// Stable, low-cardinality code.
    pub reason: &'static str,
    /// Human-readable detail naming the field and value.
    pub detail: String,
}

impl Invalid {
    pub fn new(reason: &'static str, detail: impl Into<String>) -> Self {
        Self {
            reason,
            detail: detail.into(),
        }
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

/// Checks the required fields and the types of the schemaless parts.
pub fn validate(e: &Event) -> Result<(), Invalid> {
    if e.message_id.trim().is_empty() {
        return Err(Invalid::new("missing_message_id", "messageId is empty"));
    }
    if e.distinct_id().is_none() {
        return Err(Invalid::new(
            "missing_identity",
            "userId or anonymousId is required",
        ));
    }
    if e.source_id.is_empty() {
        return Err(Invalid::new("missing_source", "sourceId is empty"));
    }
    match e.kind {
        EventType::Track if e.event.as_deref().is_none_or(|n| n.trim().is_empty()) => {
            return Err(Invalid::new(
                "missing_event_name",
                "track requires a non-empty event",
            ));
        }
        EventType::Group if e.group_id.is_none() => {
            return Err(Invalid::new("missing_group_id", "group requires groupId"));
        }
        EventType::Alias if e.previous_id.is_none() => {
            return Err(Invalid::new(
                "missing_previous_id",
                "alias requires previousId",
            ));
        }
        _ => {}
    }
    if !(MIN_TS_MICROS..MAX_TS_MICROS).contains(&e.timestamp) {
        return Err(Invalid::new(
            "invalid_timestamp",
            format!("timestamp {} µs is outside 2000..2100", e.timestamp),
        ));
    }
    for (field, text) in [
        ("context", &e.context),
        ("properties", &e.properties),
        ("traits", &e.traits),
        ("integrations", &e.integrations),
    ] {
        if !is_json_object(text) {
            let shown: String = text.chars().take(64).collect();
            return Err(Invalid::new(
                "not_an_object",
                format!("{field} must be a JSON object, got {shown}"),
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
        assert!(err.detail.contains("properties"));
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
