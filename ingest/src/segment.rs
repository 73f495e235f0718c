//! Decoding of Segment tracking-API requests into [`Event`]s.
//!
//! Contract: pure functions, no IO. Every rejection is a [`RequestError`] with a stable reason
//! code (for metrics) and a message naming the field or limit; no input makes them panic.
//! Content checks that backend producers must pass too (event names, property shapes) are left
//! to the stream processor, which validates every event whichever door it came in by.

use chrono::DateTime;
use northstar_schemas::{Event, EventType};
use serde_json::value::RawValue;
use serde_json::{Map, Value};

pub use crate::body::decode_body;
use crate::body::{check_shape, json_error};
use crate::config::{ClockBounds, Limits};
use crate::enrich::RequestInfo;

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

/// A decoded request: its messages (still as JSON objects) and request-level fields.
#[derive(Debug)]
pub struct Request {
    pub messages: Vec<Map<String, Value>>,
    /// `writeKey` in the body (used when no HTTP Basic credentials are given).
    pub write_key: Option<String>,
    /// Request-level `sentAt` (a batch's).
    pub sent_at: Option<String>,
}

/// Parses the body of `/v1/batch`.
pub fn parse_batch(body: &[u8], limits: &Limits) -> Result<Request, RequestError> {
    check_batch_size(body, limits)?;
    #[derive(serde::Deserialize)]
    struct Batch<'a> {
        #[serde(borrow)]
        batch: Vec<&'a RawValue>,
        #[serde(default, rename = "writeKey")]
        write_key: Option<String>,
        #[serde(default, rename = "sentAt")]
        sent_at: Option<String>,
        #[serde(default)]
        context: Option<Map<String, Value>>,
    }
    let batch: Batch<'_> = serde_json::from_slice(body).map_err(|e| {
        json_error(&e, || {
            RequestError::BadShape(format!(
                "a batch must be an object with a \"batch\" array: {e}"
            ))
        })
    })?;
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
        let mut msg: Map<String, Value> = serde_json::from_str(raw.get()).map_err(|e| {
            json_error(&e, || {
                RequestError::BadShape(format!("event {index} is not a JSON object"))
            })
        })?;
        check_shape(&msg, index, limits)?;
        if let Some(ctx) = &batch.context {
            msg.entry("context")
                .or_insert_with(|| Value::Object(ctx.clone()));
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
pub fn parse_single(
    body: &[u8],
    kind: EventType,
    limits: &Limits,
) -> Result<Request, RequestError> {
    check_batch_size(body, limits)?;
    if body.len() > limits.max_event_bytes {
        return Err(RequestError::EventTooLarge {
            index: 0,
            size: body.len(),
            limit: limits.max_event_bytes,
        });
    }
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| json_error(&e, || RequestError::InvalidJson(e.to_string())))?;
    let Value::Object(mut msg) = value else {
        return Err(RequestError::BadShape(
            "the body must be a JSON object".into(),
        ));
    };
    check_shape(&msg, 0, limits)?;
    msg.insert("type".into(), Value::String(kind.as_str().into()));
    let write_key = msg
        .get("writeKey")
        .and_then(Value::as_str)
        .map(str::to_string);
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

fn id_field(
    msg: &Map<String, Value>,
    index: usize,
    field: &'static str,
) -> Result<Option<String>, RequestError> {
    match msg.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(Value::Number(n)) => Ok(Some(n.to_string())),
        Some(_) => Err(RequestError::BadField {
            index,
            field,
            expected: "a string",
        }),
    }
}

fn str_field(
    msg: &Map<String, Value>,
    index: usize,
    field: &'static str,
) -> Result<Option<String>, RequestError> {
    match msg.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(RequestError::BadField {
            index,
            field,
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
    msg: &Map<String, Value>,
    index: usize,
    field: &'static str,
) -> Result<Option<i64>, RequestError> {
    match msg.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => parse_ts(s)
            .map(Some)
            .ok_or_else(|| RequestError::BadTimestamp {
                index,
                field,
                value: s.clone(),
            }),
        Some(other) => Err(RequestError::BadTimestamp {
            index,
            field,
            value: other.to_string(),
        }),
    }
}

/// JSON text of an object field (absent or null → `{}`). Non-object values are kept as sent:
/// the stream processor rejects them with a reason, so nothing is silently reshaped.
fn json_field(msg: &Map<String, Value>, field: &str) -> String {
    match msg.get(field) {
        None | Some(Value::Null) => "{}".to_string(),
        Some(v) => v.to_string(),
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

/// The context JSON text as stored: `context.northstar` (reserved for the collector) removed,
/// then the request's enrichment ([`crate::enrich`]) and, when the timestamp is flagged,
/// `northstar.clock_flag` and `northstar.skew_seconds`. A context that is not an object is
/// kept as sent (the stream processor rejects it with a reason).
fn context_text(
    msg: &mut Map<String, Value>,
    flag: Option<ClockFlag>,
    skew_micros: i64,
    request: &RequestInfo,
) -> String {
    let mut ctx = match msg.remove("context") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(m)) => m,
        Some(other) => return other.to_string(),
    };
    ctx.remove("northstar");
    crate::enrich::enrich_ip(&mut ctx, request);
    crate::enrich::enrich_user_agent(&mut ctx);
    if let Some(flag) = flag {
        let mark = ctx
            .entry("northstar")
            .or_insert_with(|| Value::Object(Map::new()));
        if let Value::Object(m) = mark {
            m.insert("clock_flag".into(), Value::from(flag.as_str()));
            m.insert("skew_seconds".into(), Value::from(skew_micros / 1_000_000));
        }
    }
    Value::Object(ctx).to_string()
}

/// Turns message `index` of a request into an [`Event`] stamped with `received_at` (µs).
///
/// Event time follows Segment's clock-skew correction: with `sentAt` present,
/// `timestamp + (receivedAt − sentAt)`; the timestamp as sent is kept in `originalTimestamp`.
pub fn to_event(
    msg: &mut Map<String, Value>,
    index: usize,
    request_sent_at: Option<&str>,
    source_id: &str,
    received_at: i64,
    clock: &ClockBounds,
    request: &RequestInfo,
) -> Result<Event, RequestError> {
    let kind = match msg.get("type") {
        Some(Value::String(t)) => EventType::parse(t).ok_or_else(|| RequestError::UnknownType {
            index,
            kind: t.clone(),
        })?,
        Some(other) => {
            return Err(RequestError::UnknownType {
                index,
                kind: other.to_string(),
            })
        }
        None => {
            return Err(RequestError::BadField {
                index,
                field: "type",
                expected: "present in a batch",
            })
        }
    };
    let user_id = id_field(msg, index, "userId")?;
    let anonymous_id = id_field(msg, index, "anonymousId")?;
    if user_id.is_none() && anonymous_id.is_none() {
        return Err(RequestError::MissingIdentity { index });
    }
    let message_id = id_field(msg, index, "messageId")?
        .unwrap_or_else(|| format!("ns-{}", uuid::Uuid::new_v4()));
    let original = ts_field(msg, index, "timestamp")?;
    let sent_at = match ts_field(msg, index, "sentAt")? {
        Some(t) => Some(t),
        None => match request_sent_at {
            Some(s) => Some(parse_ts(s).ok_or_else(|| RequestError::BadTimestamp {
                index,
                field: "sentAt",
                value: s.to_string(),
            })?),
            None => None,
        },
    };
    let timestamp = match (original, sent_at) {
        (Some(t), Some(s)) => t.saturating_add(received_at.saturating_sub(s)),
        (Some(t), None) => t,
        (None, _) => received_at,
    };
    let traits = match kind {
        // Segment's identify and group carry traits at the top level; others may carry them in context.
        EventType::Identify | EventType::Group => json_field(msg, "traits"),
        _ => msg
            .get("traits")
            .map_or_else(|| "{}".to_string(), Value::to_string),
    };
    Ok(Event {
        kind,
        message_id,
        user_id,
        anonymous_id,
        event: str_field(msg, index, "event")?,
        name: str_field(msg, index, "name")?,
        group_id: id_field(msg, index, "groupId")?,
        previous_id: id_field(msg, index, "previousId")?,
        timestamp,
        original_timestamp: original,
        sent_at,
        received_at,
        context: context_text(
            msg,
            clock_flag(timestamp, received_at, clock),
            timestamp.saturating_sub(received_at),
            request,
        ),
        properties: json_field(msg, "properties"),
        traits,
        integrations: json_field(msg, "integrations"),
        source_id: source_id.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_764_000_000_000_000;

    /// Message `msg` as the first of a request without `sentAt`, received at `NOW`.
    fn event_of(msg: &Map<String, Value>) -> Result<Event, RequestError> {
        to_event(
            &mut msg.clone(),
            0,
            None,
            "s",
            NOW,
            &ClockBounds::default(),
            &RequestInfo::default(),
        )
    }

    #[test]
    fn batch_with_skew_correction() {
        let body =
            br#"{"batch":[{"type":"track","event":"Signed Up","userId":"u1","messageId":"m1",
            "timestamp":"2025-11-24T16:00:00Z","properties":{"plan":"pro"}}],
            "sentAt":"2025-11-24T16:00:10Z","context":{"library":{"name":"x"}}}"#;
        let mut req = parse_batch(body, &Limits::default()).expect("parse");
        let e = to_event(
            &mut req.messages[0],
            0,
            req.sent_at.as_deref(),
            "web",
            NOW,
            &ClockBounds::default(),
            &RequestInfo::default(),
        )
        .expect("event");
        let ts = parse_ts("2025-11-24T16:00:00Z").expect("ts");
        let sent = parse_ts("2025-11-24T16:00:10Z").expect("ts");
        assert_eq!(e.timestamp, ts + (NOW - sent));
        assert_eq!(e.original_timestamp, Some(ts));
        assert_eq!(e.event.as_deref(), Some("Signed Up"));
        assert_eq!(e.properties, r#"{"plan":"pro"}"#);
        assert!(e.context.contains("library"), "batch context applies");
        assert_eq!(e.source_id, "web");
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
            let mut req = parse_batch(body.as_bytes(), &Limits::default()).expect("parse");
            let e = to_event(
                &mut req.messages[0],
                0,
                None,
                "s",
                NOW,
                &bounds,
                // Keep: this test is about the clock flags, not the address.
                &RequestInfo {
                    ip_policy: crate::enrich::IpPolicy::Keep,
                    ..RequestInfo::default()
                },
            )
            .expect("event");
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
        let e = event_of(&req.messages[0]).expect("event");
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
        let err = event_of(&req.messages[0]).unwrap_err();
        assert_eq!(err, RequestError::MissingIdentity { index: 0 });
        let req = parse_batch(br#"{"batch":[{"type":"click","userId":"u"}]}"#, &l).expect("parse");
        assert_eq!(
            event_of(&req.messages[0]).unwrap_err().reason(),
            "unknown_type"
        );
        let req = parse_batch(
            br#"{"batch":[{"type":"track","userId":"u","timestamp":"yesterday"}]}"#,
            &l,
        )
        .expect("parse");
        let err = event_of(&req.messages[0]).unwrap_err();
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
        let single = parse_single(
            format!("{{{}}}", many.join(",")).as_bytes(),
            EventType::Track,
            &l,
        );
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
            if let Ok(mut req) = parse_batch(body, &l) {
                for (i, m) in req.messages.iter_mut().enumerate() {
                    let _ = to_event(
                        m,
                        i,
                        None,
                        "s",
                        NOW,
                        &ClockBounds::default(),
                        &RequestInfo::default(),
                    );
                }
            }
            let _ = parse_single(body, EventType::Track, &l);
        }
    }
}
