//! Decoding of Segment tracking-API requests into [`Event`]s.
//!
//! Contract: pure functions, no IO. A request borrows its body: messages are read field by
//! field from their JSON text, and `properties`, `traits`, `integrations` and the client's
//! context entries are stored as the client sent them (compacted when it sent whitespace),
//! never parsed into trees and written back ([`crate::raw`]). Every rejection is a [`RequestError`] with a stable reason
//! code (for metrics) and a message naming the field or limit; no input makes them panic.
//! Content checks that backend producers must pass too (event names, property shapes) are left
//! to the stream processor, which validates every event whichever door it came in by.

use std::borrow::Cow;

use chrono::DateTime;
use northstar_schemas::{Event, EventType};
use serde_json::value::RawValue;

pub use crate::body::decode_body;
use crate::body::json_error;
use crate::config::{ClockBounds, Limits};
use crate::enrich::RequestInfo;
use crate::raw;

/// Why a request (or one event of it) was rejected.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RequestError {
    #[error("invalid JSON: {0}")]
    InvalidJson(String),
    #[error("truncated JSON: the body ends early ({0})")]
    TruncatedJson(String),
    #[error("invalid Unicode in JSON (a lone UTF-16 surrogate or bytes that are not UTF-8): {0}")]
    InvalidUnicode(String),
    #[error("event {index} nests deeper than {limit} levels")]
    TooDeep { index: usize, limit: usize },
    #[error("event {index} has {count} keys in its objects, over the {limit}-key limit")]
    TooManyKeys {
        index: usize,
        count: usize,
        limit: usize,
    },
    #[error("request body is {size} bytes, over the {limit}-byte batch limit")]
    BatchTooLarge { size: usize, limit: usize },
    #[error("event {index} is {size} bytes, over the {limit}-byte event limit")]
    EventTooLarge {
        index: usize,
        size: usize,
        limit: usize,
    },
    #[error("{0}")]
    BadShape(String),
    #[error("unsupported Content-Encoding {0:?} (send gzip, deflate or identity)")]
    UnsupportedEncoding(String),
    #[error("the {encoding} body cannot be decompressed: {detail}")]
    BadCompression {
        encoding: &'static str,
        detail: String,
    },
    #[error("event {index}: unknown type {kind:?} (expected track, identify, page, screen, group or alias)")]
    UnknownType { index: usize, kind: String },
    #[error("event {index}: userId or anonymousId is required")]
    MissingIdentity { index: usize },
    #[error("event {index}: {field} must be {expected}")]
    BadField {
        index: usize,
        field: &'static str,
        expected: &'static str,
    },
    #[error("event {index}: {field} {value:?} is not an ISO-8601 timestamp")]
    BadTimestamp {
        index: usize,
        field: &'static str,
        value: String,
    },
}

impl RequestError {
    /// A low-cardinality reason code, for metrics and error bodies.
    pub fn reason(&self) -> &'static str {
        match self {
            RequestError::InvalidJson(_) => "invalid_json",
            RequestError::TruncatedJson(_) => "truncated_json",
            RequestError::InvalidUnicode(_) => "invalid_unicode",
            RequestError::TooDeep { .. } => "too_deep",
            RequestError::TooManyKeys { .. } => "too_many_keys",
            RequestError::BatchTooLarge { .. } => "batch_too_large",
            RequestError::EventTooLarge { .. } => "event_too_large",
            RequestError::BadShape(_) => "bad_shape",
            RequestError::UnsupportedEncoding(_) => "unsupported_encoding",
            RequestError::BadCompression { .. } => "bad_compression",
            RequestError::UnknownType { .. } => "unknown_type",
            RequestError::MissingIdentity { .. } => "missing_identity",
            RequestError::BadField { .. } => "bad_field",
            RequestError::BadTimestamp { .. } => "bad_timestamp",
        }
    }

    /// Whether the request was too large (413) rather than malformed (400).
    pub fn is_too_large(&self) -> bool {
        matches!(
            self,
            RequestError::BatchTooLarge { .. } | RequestError::EventTooLarge { .. }
        )
    }
}

/// One message of a request, its fields as JSON text borrowed from the request body (the
/// body is not copied, and no field is parsed until it is read).
#[derive(Debug, Default)]
pub struct Message<'a> {
    kind: Option<&'a str>,
    user_id: Option<&'a str>,
    anonymous_id: Option<&'a str>,
    message_id: Option<&'a str>,
    timestamp: Option<&'a str>,
    sent_at: Option<&'a str>,
    event: Option<&'a str>,
    name: Option<&'a str>,
    group_id: Option<&'a str>,
    previous_id: Option<&'a str>,
    context: Option<&'a str>,
    properties: Option<&'a str>,
    traits: Option<&'a str>,
    integrations: Option<&'a str>,
    write_key: Option<&'a str>,
    /// The type a single-message route implies (it overrides the body's `type`).
    implied: Option<EventType>,
    shape: raw::Shape,
}

impl<'a> Message<'a> {
    /// Keeps field `key` (JSON text `value`); other keys are ignored, a field sent twice is
    /// refused as a parser of the message's object would.
    fn set(&mut self, index: usize, key: &str, value: &'a str) -> Result<(), RequestError> {
        let (slot, name) = match key {
            "type" => (&mut self.kind, "type"),
            "userId" => (&mut self.user_id, "userId"),
            "anonymousId" => (&mut self.anonymous_id, "anonymousId"),
            "messageId" => (&mut self.message_id, "messageId"),
            "timestamp" => (&mut self.timestamp, "timestamp"),
            "sentAt" => (&mut self.sent_at, "sentAt"),
            "event" => (&mut self.event, "event"),
            "name" => (&mut self.name, "name"),
            "groupId" => (&mut self.group_id, "groupId"),
            "previousId" => (&mut self.previous_id, "previousId"),
            "context" => (&mut self.context, "context"),
            "properties" => (&mut self.properties, "properties"),
            "traits" => (&mut self.traits, "traits"),
            "integrations" => (&mut self.integrations, "integrations"),
            "writeKey" => (&mut self.write_key, "writeKey"),
            _ => return Ok(()),
        };
        if slot.replace(value).is_some() {
            return Err(RequestError::BadShape(format!(
                "event {index}: duplicate field `{name}`"
            )));
        }
        Ok(())
    }
}

/// A field's JSON text, `None` when absent or null.
fn given(field: Option<&str>) -> Option<&str> {
    field.filter(|t| *t != "null")
}

/// A decoded request: its messages and request-level fields, borrowing the body.
#[derive(Debug)]
pub struct Request<'a> {
    pub messages: Vec<Message<'a>>,
    /// `writeKey` in the body (used when no HTTP Basic credentials are given).
    pub write_key: Option<String>,
    /// Request-level `sentAt` (a batch's).
    pub sent_at: Option<String>,
}

/// Reads message `index` from `text` (one JSON value, validated): an object within the limits.
fn message<'a>(text: &'a str, index: usize, limits: &Limits) -> Result<Message<'a>, RequestError> {
    if !text.trim_start().starts_with('{') {
        return Err(RequestError::BadShape(format!(
            "event {index} is not a JSON object"
        )));
    }
    let mut msg = Message::default();
    msg.shape = raw::walk(text, index, limits, |key, value| {
        msg.set(index, key.as_str(), value)
    })?;
    Ok(msg)
}

/// Parses the body of `/v1/batch`.
pub fn parse_batch<'a>(body: &'a [u8], limits: &Limits) -> Result<Request<'a>, RequestError> {
    check_batch_size(body, limits)?;
    #[derive(serde::Deserialize)]
    struct Batch<'a> {
        #[serde(borrow)]
        batch: Vec<&'a RawValue>,
        #[serde(default, rename = "writeKey")]
        write_key: Option<String>,
        #[serde(default, rename = "sentAt")]
        sent_at: Option<String>,
        #[serde(borrow, default)]
        context: Option<&'a RawValue>,
    }
    let batch: Batch<'a> = serde_json::from_slice(body).map_err(|e| {
        json_error(&e, || {
            RequestError::BadShape(format!(
                "a batch must be an object with a \"batch\" array: {e}"
            ))
        })
    })?;
    // The batch's context applies to the messages that have none.
    let batch_context = match batch.context {
        Some(ctx) => Some((ctx, raw::scan(ctx.get(), 0, limits)?)),
        None => None,
    };
    let mut messages = Vec::with_capacity(batch.batch.len());
    for (index, raw) in batch.batch.iter().enumerate() {
        let size = raw.get().len();
        if size > limits.max_event_bytes {
            return Err(RequestError::EventTooLarge {
                index,
                size,
                limit: limits.max_event_bytes,
            });
        }
        let mut msg = message(raw.get(), index, limits)?;
        if let (None, Some((ctx, shape))) = (msg.context, batch_context) {
            msg.context = Some(ctx.get());
            msg.shape.spaced |= shape.spaced;
        }
        messages.push(msg);
    }
    Ok(Request {
        messages,
        write_key: batch.write_key,
        sent_at: batch.sent_at,
    })
}

/// Parses the body of a single-message endpoint (`/v1/track`, ...), whose type is implied.
pub fn parse_single<'a>(
    body: &'a [u8],
    kind: EventType,
    limits: &Limits,
) -> Result<Request<'a>, RequestError> {
    check_batch_size(body, limits)?;
    if body.len() > limits.max_event_bytes {
        return Err(RequestError::EventTooLarge {
            index: 0,
            size: body.len(),
            limit: limits.max_event_bytes,
        });
    }
    let value: &RawValue = serde_json::from_slice(body)
        .map_err(|e| json_error(&e, || RequestError::InvalidJson(e.to_string())))?;
    let mut msg = message(value.get(), 0, limits).map_err(|e| match e {
        RequestError::BadShape(_) if !value.get().starts_with('{') => {
            RequestError::BadShape("the body must be a JSON object".into())
        }
        e => e,
    })?;
    msg.implied = Some(kind);
    let write_key = given(msg.write_key)
        .and_then(raw::string_value)
        .map(Cow::into_owned);
    Ok(Request {
        messages: vec![msg],
        write_key,
        sent_at: None,
    })
}

fn check_batch_size(body: &[u8], limits: &Limits) -> Result<(), RequestError> {
    if body.len() > limits.max_batch_bytes {
        return Err(RequestError::BatchTooLarge {
            size: body.len(),
            limit: limits.max_batch_bytes,
        });
    }
    Ok(())
}

/// A string field as sent, decoded (`None`: not a string).
fn decoded(text: &str) -> Result<Option<Cow<'_, str>>, RequestError> {
    if !text.starts_with('"') {
        return Ok(None);
    }
    // A string serde_json validated decodes, lone surrogates aside (refused by `raw::scan`).
    raw::string_value(text)
        .map(Some)
        .ok_or_else(|| RequestError::InvalidUnicode(format!("cannot decode {text}")))
}

fn id_field(
    field: Option<&str>,
    index: usize,
    name: &'static str,
) -> Result<Option<String>, RequestError> {
    let Some(text) = given(field) else {
        return Ok(None);
    };
    if let Some(s) = decoded(text)? {
        return Ok((!s.is_empty()).then(|| s.into_owned()));
    }
    if text.starts_with(|c: char| c == '-' || c.is_ascii_digit()) {
        return Ok(Some(text.to_string()));
    }
    Err(RequestError::BadField {
        index,
        field: name,
        expected: "a string",
    })
}

fn str_field(
    field: Option<&str>,
    index: usize,
    name: &'static str,
) -> Result<Option<String>, RequestError> {
    let Some(text) = given(field) else {
        return Ok(None);
    };
    match decoded(text)? {
        Some(s) => Ok(Some(s.into_owned())),
        None => Err(RequestError::BadField {
            index,
            field: name,
            expected: "a string",
        }),
    }
}

/// Parses an ISO-8601 timestamp into µs since the epoch.
pub fn parse_ts(value: &str) -> Option<i64> {
    DateTime::parse_from_rfc3339(value)
        .ok()
        .map(|t| t.timestamp_micros())
}

fn ts_field(
    field: Option<&str>,
    index: usize,
    name: &'static str,
) -> Result<Option<i64>, RequestError> {
    let Some(text) = given(field) else {
        return Ok(None);
    };
    let bad = |value: String| RequestError::BadTimestamp {
        index,
        field: name,
        value,
    };
    match decoded(text)? {
        Some(s) => parse_ts(&s).map(Some).ok_or_else(|| bad(s.into_owned())),
        None => Err(bad(text.to_string())),
    }
}

/// JSON text of an object field as stored (absent or null → `{}`). Non-object values are kept
/// as sent: the stream processor rejects them with a reason, so nothing is silently reshaped.
fn json_field(field: Option<&str>, shape: raw::Shape) -> String {
    match given(field) {
        None => "{}".to_string(),
        Some(text) => raw::stored(text, shape),
    }
}

/// Which side of the [`ClockBounds`] a timestamp falls on, if outside them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClockFlag {
    Future,
    Past,
}

impl ClockFlag {
    pub fn as_str(self) -> &'static str {
        match self {
            ClockFlag::Future => "future",
            ClockFlag::Past => "past",
        }
    }
}

/// Whether the (corrected) `timestamp` is further from `received_at` than `bounds` allow
/// (both in µs).
pub fn clock_flag(timestamp: i64, received_at: i64, bounds: &ClockBounds) -> Option<ClockFlag> {
    let skew = timestamp.saturating_sub(received_at);
    let limit = |secs: u64| {
        i64::try_from(secs)
            .unwrap_or(i64::MAX)
            .saturating_mul(1_000_000)
    };
    if skew > limit(bounds.max_future_secs) {
        Some(ClockFlag::Future)
    } else if skew < limit(bounds.max_past_secs).saturating_neg() {
        Some(ClockFlag::Past)
    } else {
        None
    }
}

/// What the collector knows of a request's arrival: applied to each of its events.
#[derive(Debug, Clone, Copy)]
pub struct Arrival<'r> {
    /// The source of the request's write key.
    pub source_id: &'r str,
    /// When the request arrived, µs since the epoch.
    pub received_at: i64,
    pub clock: &'r ClockBounds,
    pub info: &'r RequestInfo,
}

impl Request<'_> {
    /// The request's events, in order; the first message that cannot be one rejects the request.
    pub fn events(&self, arrival: &Arrival<'_>) -> Result<Vec<Event>, RequestError> {
        let sent_at = self.sent_at.as_deref().map(|s| parse_ts(s).ok_or(s));
        self.messages
            .iter()
            .enumerate()
            .map(|(index, msg)| msg.to_event(index, sent_at, arrival))
            .collect()
    }
}

impl Message<'_> {
    /// The event type: implied by the route, or the message's `type`.
    fn event_type(&self, index: usize) -> Result<EventType, RequestError> {
        if let Some(kind) = self.implied {
            return Ok(kind);
        }
        let Some(text) = self.kind else {
            return Err(RequestError::BadField {
                index,
                field: "type",
                expected: "present in a batch",
            });
        };
        let unknown = |kind: String| RequestError::UnknownType { index, kind };
        match decoded(text)? {
            Some(t) => EventType::parse(&t).ok_or_else(|| unknown(t.into_owned())),
            None => Err(unknown(text.to_string())),
        }
    }

    /// The context as stored: the client's entries (`northstar` removed: reserved for the
    /// collector), the request's enrichment ([`crate::enrich`]) and, when the timestamp is
    /// flagged, `northstar.clock_flag` and `northstar.skew_seconds`. A context that is not an
    /// object is kept as sent (the stream processor rejects it with a reason).
    fn context_text(&self, timestamp: i64, arrival: &Arrival<'_>) -> Result<String, RequestError> {
        let mut ctx = match given(self.context) {
            None => raw::Context::default(),
            Some(text) if text.starts_with('{') => raw::Context::parse(text),
            Some(text) => return Ok(raw::stored(text, self.shape)),
        };
        crate::enrich::enrich_ip(&mut ctx, arrival.info);
        crate::enrich::enrich_user_agent(&mut ctx);
        if let Some(flag) = clock_flag(timestamp, arrival.received_at, arrival.clock) {
            let skew = timestamp.saturating_sub(arrival.received_at) / 1_000_000;
            ctx.mark("clock_flag", raw::quoted(flag.as_str()));
            ctx.mark("skew_seconds", skew.to_string());
        }
        Ok(ctx.to_json(self.shape))
    }

    /// Event time, following Segment's clock-skew correction: with `sentAt` present (the
    /// message's, else the request's), `timestamp + (receivedAt − sentAt)`; and the timestamp as
    /// sent (`originalTimestamp`), then `sentAt`.
    fn times(
        &self,
        index: usize,
        request_sent_at: Option<Result<i64, &str>>,
        received_at: i64,
    ) -> Result<(i64, Option<i64>, Option<i64>), RequestError> {
        let original = ts_field(self.timestamp, index, "timestamp")?;
        let sent_at = match (ts_field(self.sent_at, index, "sentAt")?, request_sent_at) {
            (Some(t), _) => Some(t),
            (None, Some(Ok(t))) => Some(t),
            (None, Some(Err(s))) => {
                return Err(RequestError::BadTimestamp {
                    index,
                    field: "sentAt",
                    value: s.to_string(),
                })
            }
            (None, None) => None,
        };
        let timestamp = match (original, sent_at) {
            (Some(t), Some(s)) => t.saturating_add(received_at.saturating_sub(s)),
            (Some(t), None) => t,
            (None, _) => received_at,
        };
        Ok((timestamp, original, sent_at))
    }

    /// This message, number `index` of its request, as an [`Event`] stamped by `arrival`.
    fn to_event(
        &self,
        index: usize,
        request_sent_at: Option<Result<i64, &str>>,
        arrival: &Arrival<'_>,
    ) -> Result<Event, RequestError> {
        let kind = self.event_type(index)?;
        let user_id = id_field(self.user_id, index, "userId")?;
        let anonymous_id = id_field(self.anonymous_id, index, "anonymousId")?;
        if user_id.is_none() && anonymous_id.is_none() {
            return Err(RequestError::MissingIdentity { index });
        }
        let message_id = id_field(self.message_id, index, "messageId")?
            .unwrap_or_else(|| format!("ns-{}", uuid::Uuid::new_v4()));
        let (timestamp, original, sent_at) =
            self.times(index, request_sent_at, arrival.received_at)?;
        let traits = match (kind, self.traits) {
            // Segment's identify and group carry traits at the top level; others may carry
            // them in context.
            (EventType::Identify | EventType::Group, traits) => json_field(traits, self.shape),
            (_, None) => "{}".to_string(),
            (_, Some(traits)) => raw::stored(traits, self.shape),
        };
        Ok(Event {
            kind,
            message_id,
            user_id,
            anonymous_id,
            event: str_field(self.event, index, "event")?,
            name: str_field(self.name, index, "name")?,
            group_id: id_field(self.group_id, index, "groupId")?,
            previous_id: id_field(self.previous_id, index, "previousId")?,
            timestamp,
            original_timestamp: original,
            sent_at,
            received_at: arrival.received_at,
            context: self.context_text(timestamp, arrival)?,
            properties: json_field(self.properties, self.shape),
            traits,
            integrations: json_field(self.integrations, self.shape),
            source_id: arrival.source_id.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    const NOW: i64 = 1_764_000_000_000_000;

    /// The first event of `req`, from source `s`, received at `NOW`.
    fn first(
        req: &Request<'_>,
        clock: &ClockBounds,
        info: &RequestInfo,
    ) -> Result<Event, RequestError> {
        let arrival = Arrival {
            source_id: "s",
            received_at: NOW,
            clock,
            info,
        };
        req.events(&arrival).map(|mut events| events.remove(0))
    }

    /// The first event of `req` with the default bounds and request.
    fn event_of(req: &Request<'_>) -> Result<Event, RequestError> {
        first(req, &ClockBounds::default(), &RequestInfo::default())
    }

    #[test]
    fn batch_with_skew_correction() {
        let body =
            br#"{"batch":[{"type":"track","event":"Signed Up","userId":"u1","messageId":"m1",
            "timestamp":"2025-11-24T16:00:00Z","properties":{"plan":"pro"}}],
            "sentAt":"2025-11-24T16:00:10Z","context":{"library":{"name":"x"}}}"#;
        let req = parse_batch(body, &Limits::default()).expect("parse");
        let e = event_of(&req).expect("event");
        let ts = parse_ts("2025-11-24T16:00:00Z").expect("ts");
        let sent = parse_ts("2025-11-24T16:00:10Z").expect("ts");
        assert_eq!(e.timestamp, ts + (NOW - sent));
        assert_eq!(e.original_timestamp, Some(ts));
        assert_eq!(e.event.as_deref(), Some("Signed Up"));
        assert_eq!(e.properties, r#"{"plan":"pro"}"#);
        assert!(e.context.contains("library"), "batch context applies");
        assert_eq!(e.source_id, "s");
    }

    #[test]
    fn a_field_sent_twice_is_refused_and_unknown_fields_are_ignored() {
        let twice = br#"{"batch":[{"type":"track","userId":"u","type":"page"}]}"#;
        let err = parse_batch(twice, &Limits::default()).expect_err("duplicate");
        assert_eq!(err.reason(), "bad_shape");
        assert!(err.to_string().contains("duplicate field `type`"), "{err}");
        let escaped = br#"{"batch":[{"type":"track","userId":"u","\u0074ype":"page"}]}"#;
        assert!(
            parse_batch(escaped, &Limits::default()).is_err(),
            "same key, escaped"
        );
        let extra = br#"{"batch":[{"type":"track","userId":"u","event":"E","version":2,
            "_metadata":{"bundled":["x"]}}]}"#;
        let req = parse_batch(extra, &Limits::default()).expect("parse");
        assert_eq!(event_of(&req).expect("event").event.as_deref(), Some("E"));
    }

    #[test]
    fn timestamps_far_from_receipt_are_flagged_in_context_not_rejected() {
        let bounds = ClockBounds {
            max_future_secs: 60,
            max_past_secs: 3_600,
        };
        let at = |ts: &str, ctx: &str| {
            let body =
                format!(r#"{{"batch":[{{"type":"track","userId":"u","timestamp":"{ts}"{ctx}}}]}}"#);
            let req = parse_batch(body.as_bytes(), &Limits::default()).expect("parse");
            // Keep: this test is about the clock flags, not the address.
            let info = RequestInfo {
                ip_policy: crate::enrich::IpPolicy::Keep,
                ..RequestInfo::default()
            };
            let e = first(&req, &bounds, &info).expect("event");
            let ctx: Value = serde_json::from_str(&e.context).expect("json");
            (e, ctx)
        };
        let iso = |micros: i64| {
            DateTime::from_timestamp_micros(micros)
                .expect("ts")
                .to_rfc3339()
        };
        let (e, ctx) = at(&iso(NOW + 120_000_000), r#","context":{"ip":"1.2.3.4"}"#);
        assert_eq!(ctx["northstar"]["clock_flag"], "future");
        assert_eq!(ctx["northstar"]["skew_seconds"], 120);
        assert_eq!(ctx["ip"], "1.2.3.4", "the rest of the context is kept");
        assert_eq!(e.timestamp, NOW + 120_000_000, "kept, not clamped");
        let (_, ctx) = at(&iso(NOW - 7_200_000_000), "");
        assert_eq!(ctx["northstar"]["clock_flag"], "past");
        assert_eq!(ctx["northstar"]["skew_seconds"], -7_200);
        let (_, ctx) = at(&iso(NOW - 60_000_000), "");
        assert!(ctx.get("northstar").is_none(), "within bounds: no flag");
        assert_eq!(
            clock_flag(NOW + 61_000_000, NOW, &bounds),
            Some(ClockFlag::Future)
        );
        assert_eq!(clock_flag(NOW + 60_000_000, NOW, &bounds), None);
        // A context that is not an object is kept as sent (the processor rejects it).
        let (_, ctx) = at(&iso(NOW + 120_000_000), r#","context":[1]"#);
        assert_eq!(ctx, serde_json::json!([1]));
    }

    #[test]
    fn single_track_without_timestamp_uses_received_at() {
        let req = parse_single(
            br#"{"event":"x","anonymousId":42}"#,
            EventType::Track,
            &Limits::default(),
        )
        .expect("parse");
        let e = event_of(&req).expect("event");
        assert_eq!(e.timestamp, NOW);
        assert_eq!(e.anonymous_id.as_deref(), Some("42"));
        assert!(e.message_id.starts_with("ns-"));
    }

    #[test]
    fn rejections_name_the_problem() {
        let l = Limits::default();
        let err = parse_batch(b"{\"batch\":[", &l).unwrap_err();
        assert_eq!(err.reason(), "truncated_json");
        let err = parse_batch(b"{\"batch\":{}}", &l).unwrap_err();
        assert_eq!(err.reason(), "bad_shape");
        let req = parse_batch(br#"{"batch":[{"type":"track","event":"x"}]}"#, &l).expect("parse");
        let err = event_of(&req).unwrap_err();
        assert_eq!(err, RequestError::MissingIdentity { index: 0 });
        let req = parse_batch(br#"{"batch":[{"type":"click","userId":"u"}]}"#, &l).expect("parse");
        assert_eq!(event_of(&req).unwrap_err().reason(), "unknown_type");
        let req = parse_batch(
            br#"{"batch":[{"type":"track","userId":"u","timestamp":"yesterday"}]}"#,
            &l,
        )
        .expect("parse");
        let err = event_of(&req).unwrap_err();
        assert!(err.to_string().contains("timestamp"), "{err}");
    }

    #[test]
    fn limits() {
        let l = Limits {
            max_event_bytes: 40,
            max_batch_bytes: 100,
            ..Limits::default()
        };
        let big = format!(
            r#"{{"batch":[{{"type":"track","userId":"{}"}}]}}"#,
            "x".repeat(50)
        );
        let err = parse_batch(big.as_bytes(), &l).unwrap_err();
        assert!(
            err.is_too_large() && err.to_string().contains("40-byte"),
            "{err}"
        );
        let err = parse_batch(&[b' '; 101], &l).unwrap_err();
        assert!(matches!(err, RequestError::BatchTooLarge { .. }));
    }

    #[test]
    fn hostile_json_gets_its_own_reason() {
        let l = Limits::default();
        let reason = |body: &[u8]| parse_batch(body, &l).map(|_| ()).unwrap_err().reason();
        assert_eq!(reason(br#"{"batch":[{"type":"track""#), "truncated_json");
        assert_eq!(reason(br#"{"batch":[{"type":"track",}]}"#), "invalid_json");
        let e = parse_batch(br#"{"batch":[{"type":"track","userId":"\ud800x"}]}"#, &l)
            .map(|_| ())
            .unwrap_err();
        assert_eq!(e.reason(), "invalid_unicode", "{e}");
        let e = parse_batch(b"{\"batch\":[{\"userId\":\"\xff\"}]}", &l)
            .map(|_| ())
            .unwrap_err();
        assert_eq!(e.reason(), "invalid_unicode", "{e}");
        // Deeper than serde_json's own limit, and deeper than ours.
        let deep = |n: usize| {
            format!(
                r#"{{"batch":[{{"type":"track","userId":"u","properties":{}1{}}}]}}"#,
                "[".repeat(n),
                "]".repeat(n)
            )
        };
        assert_eq!(reason(deep(500).as_bytes()), "too_deep");
        assert_eq!(reason(deep(40).as_bytes()), "too_deep");
        assert!(parse_batch(deep(20).as_bytes(), &l).is_ok());
        let many: Vec<String> = (0..1_200).map(|i| format!(r#""k{i}":1"#)).collect();
        let body = format!(
            r#"{{"batch":[{{"type":"track","userId":"u","properties":{{{}}}}}]}}"#,
            many.join(",")
        );
        let err = parse_batch(body.as_bytes(), &l).map(|_| ()).unwrap_err();
        assert_eq!(err.reason(), "too_many_keys");
        assert!(err.to_string().contains("1000-key limit"), "{err}");
        let single = format!("{{{}}}", many.join(","));
        let single = parse_single(single.as_bytes(), EventType::Track, &l);
        assert_eq!(single.map(|_| ()).unwrap_err().reason(), "too_many_keys");
    }

    #[test]
    fn garbage_never_panics() {
        let l = Limits::default();
        for body in [
            &b""[..],
            b"null",
            b"[]",
            b"\xff\xfe",
            b"{\"batch\":[1,2]}",
            b"{\"batch\":[{\"type\":null}]}",
        ] {
            if let Ok(req) = parse_batch(body, &l) {
                let _ = event_of(&req);
            }
            let _ = parse_single(body, EventType::Track, &l);
        }
    }
}
