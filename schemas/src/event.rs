//! The event envelope ([`Event`]) and its Avro codec.
//!
//! Contract: [`EventCodec::encode`] produces a datum of [`crate::EVENT_SCHEMA_V1`];
//! [`EventCodec::decode`] reads a datum written with any writer schema that resolves to v1
//! (Avro schema resolution) and never panics on bad bytes. Timestamps are microseconds since
//! the Unix epoch, UTC.

use std::collections::HashMap;

use apache_avro::types::Value;
use apache_avro::Schema;
use serde::{Deserialize, Serialize};

use crate::CodecError;

/// The Segment message types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EventType {
    Track,
    Identify,
    Page,
    Screen,
    Group,
    Alias,
}

impl EventType {
    pub const ALL: [EventType; 6] = [
        EventType::Track,
        EventType::Identify,
        EventType::Page,
        EventType::Screen,
        EventType::Group,
        EventType::Alias,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Track => "track",
            EventType::Identify => "identify",
            EventType::Page => "page",
            EventType::Screen => "screen",
            EventType::Group => "group",
            EventType::Alias => "alias",
        }
    }

    pub fn parse(s: &str) -> Option<EventType> {
        EventType::ALL.into_iter().find(|t| t.as_str() == s)
    }

    fn index(self) -> u32 {
        self as u32
    }
}

/// One event as carried on every topic: a Segment message plus what the collector stamped.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub kind: EventType,
    pub message_id: String,
    pub user_id: Option<String>,
    pub anonymous_id: Option<String>,
    /// `track`: the event name.
    pub event: Option<String>,
    /// `page`/`screen`: the page or screen name.
    pub name: Option<String>,
    /// `group`: the group id.
    pub group_id: Option<String>,
    /// `alias`: the previous id.
    pub previous_id: Option<String>,
    /// Event time, µs since the epoch.
    pub timestamp: i64,
    /// The timestamp as sent, before clock-skew correction.
    pub original_timestamp: Option<i64>,
    pub sent_at: Option<i64>,
    /// When the collector received the event, µs since the epoch.
    pub received_at: i64,
    /// JSON object text.
    pub context: String,
    /// JSON object text.
    pub properties: String,
    /// JSON object text.
    pub traits: String,
    /// JSON object text.
    pub integrations: String,
    /// The source (write key owner) that sent the event.
    pub source_id: String,
}

impl Event {
    /// userId, falling back to anonymousId: who did it.
    pub fn distinct_id(&self) -> Option<&str> {
        self.user_id
            .as_deref()
            .filter(|s| !s.is_empty())
            .or(self.anonymous_id.as_deref().filter(|s| !s.is_empty()))
    }

    /// The name an event is counted under: `event` for track, `name` for page/screen (or the
    /// type when unnamed), otherwise the message type.
    pub fn event_name(&self) -> &str {
        match self.kind {
            EventType::Track => self.event.as_deref().unwrap_or(""),
            EventType::Page | EventType::Screen => self
                .name
                .as_deref()
                .filter(|n| !n.is_empty())
                .unwrap_or(self.kind.as_str()),
            other => other.as_str(),
        }
    }
}

/// Encodes and decodes [`Event`] as Avro datums of the v1 schema.
#[derive(Debug, Clone)]
pub struct EventCodec {
    schema: Schema,
}

impl Default for EventCodec {
    fn default() -> Self {
        Self::new()
    }
}

fn opt_string(v: &Option<String>) -> Value {
    match v {
        Some(s) => Value::Union(1, Box::new(Value::String(s.clone()))),
        None => Value::Union(0, Box::new(Value::Null)),
    }
}

fn opt_ts(v: Option<i64>) -> Value {
    match v {
        Some(t) => Value::Union(1, Box::new(Value::TimestampMicros(t))),
        None => Value::Union(0, Box::new(Value::Null)),
    }
}

impl EventCodec {
    pub fn new() -> Self {
        #[allow(clippy::expect_used)]
        let schema =
            Schema::parse_str(crate::EVENT_SCHEMA_V1).expect("the bundled event schema parses");
        Self { schema }
    }

    /// The v1 schema.
    pub fn schema(&self) -> &Schema {
        &self.schema
    }

    /// The Avro datum of `event` (without the wire-format header).
    pub fn encode(&self, e: &Event) -> Result<Vec<u8>, CodecError> {
        let mut out = Vec::with_capacity(
            64 + e.message_id.len()
                + e.context.len()
                + e.properties.len()
                + e.traits.len()
                + e.integrations.len(),
        );
        crate::envelope_binary::write(e, &mut out);
        Ok(out)
    }

    /// [`EventCodec::encode`] through apache-avro's generic writer (the reference the fast
    /// writer is tested against).
    pub fn encode_generic(&self, e: &Event) -> Result<Vec<u8>, CodecError> {
        let value = Value::Record(vec![
            (
                "type".into(),
                Value::Enum(e.kind.index(), e.kind.as_str().into()),
            ),
            ("messageId".into(), Value::String(e.message_id.clone())),
            ("userId".into(), opt_string(&e.user_id)),
            ("anonymousId".into(), opt_string(&e.anonymous_id)),
            ("event".into(), opt_string(&e.event)),
            ("name".into(), opt_string(&e.name)),
            ("groupId".into(), opt_string(&e.group_id)),
            ("previousId".into(), opt_string(&e.previous_id)),
            ("timestamp".into(), Value::TimestampMicros(e.timestamp)),
            ("originalTimestamp".into(), opt_ts(e.original_timestamp)),
            ("sentAt".into(), opt_ts(e.sent_at)),
            ("receivedAt".into(), Value::TimestampMicros(e.received_at)),
            ("context".into(), Value::String(e.context.clone())),
            ("properties".into(), Value::String(e.properties.clone())),
            ("traits".into(), Value::String(e.traits.clone())),
            ("integrations".into(), Value::String(e.integrations.clone())),
            ("sourceId".into(), Value::String(e.source_id.clone())),
        ]);
        let mut out = Vec::with_capacity(256);
        apache_avro::writer::datum::GenericDatumWriter::builder(&self.schema)
            .build()?
            .write_value(&mut out, value)?;
        Ok(out)
    }

    /// Decodes a datum written with exactly the v1 schema (the fast path).
    pub fn decode_v1(&self, datum: &[u8]) -> Result<Event, CodecError> {
        crate::envelope_binary::read(datum)
    }

    /// Whether `writer` is the v1 schema (same Parsing Canonical Form).
    pub fn is_v1(&self, writer: &Schema) -> bool {
        std::ptr::eq(writer, &self.schema)
            || writer.canonical_form() == self.schema.canonical_form()
    }

    /// Decodes a datum written with `writer` (the v1 schema itself, or any schema that
    /// resolves to it).
    pub fn decode(&self, writer: &Schema, datum: &[u8]) -> Result<Event, CodecError> {
        if std::ptr::eq(writer, &self.schema) {
            return self.decode_v1(datum);
        }
        self.decode_generic(writer, datum)
    }

    /// [`EventCodec::decode`] through apache-avro's schema resolution.
    pub fn decode_generic(&self, writer: &Schema, mut datum: &[u8]) -> Result<Event, CodecError> {
        let value = apache_avro::reader::datum::GenericDatumReader::builder(writer)
            .reader_schema(&self.schema)
            .build()?
            .read_value(&mut datum)?;
        if !datum.is_empty() {
            return Err(CodecError::Avro(format!(
                "{} trailing bytes after the datum",
                datum.len()
            )));
        }
        event_from_value(value)
    }
}

fn event_from_value(value: Value) -> Result<Event, CodecError> {
    let Value::Record(fields) = value else {
        return Err(CodecError::Avro("datum is not a record".into()));
    };
    let mut f: HashMap<String, Value> = fields.into_iter().collect();
    let kind = match f.remove("type") {
        Some(Value::Enum(_, s)) => EventType::parse(&s).ok_or_else(|| CodecError::Field {
            field: "type",
            problem: format!("unknown type {s:?}"),
        })?,
        _ => {
            return Err(CodecError::Field {
                field: "type",
                problem: "missing".into(),
            })
        }
    };
    Ok(Event {
        kind,
        message_id: req_string(&mut f, "messageId")?,
        user_id: opt_string_field(&mut f, "userId")?,
        anonymous_id: opt_string_field(&mut f, "anonymousId")?,
        event: opt_string_field(&mut f, "event")?,
        name: opt_string_field(&mut f, "name")?,
        group_id: opt_string_field(&mut f, "groupId")?,
        previous_id: opt_string_field(&mut f, "previousId")?,
        timestamp: req_ts(&mut f, "timestamp")?,
        original_timestamp: opt_ts_field(&mut f, "originalTimestamp")?,
        sent_at: opt_ts_field(&mut f, "sentAt")?,
        received_at: req_ts(&mut f, "receivedAt")?,
        context: req_string(&mut f, "context")?,
        properties: req_string(&mut f, "properties")?,
        traits: req_string(&mut f, "traits")?,
        integrations: req_string(&mut f, "integrations")?,
        source_id: req_string(&mut f, "sourceId")?,
    })
}

fn unwrap_union(v: Value) -> Value {
    match v {
        Value::Union(_, inner) => *inner,
        other => other,
    }
}

fn req_string(f: &mut HashMap<String, Value>, field: &'static str) -> Result<String, CodecError> {
    match f.remove(field).map(unwrap_union) {
        Some(Value::String(s)) => Ok(s),
        other => Err(CodecError::Field {
            field,
            problem: format!("expected a string, got {other:?}"),
        }),
    }
}

fn opt_string_field(
    f: &mut HashMap<String, Value>,
    field: &'static str,
) -> Result<Option<String>, CodecError> {
    match f.remove(field).map(unwrap_union) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        other => Err(CodecError::Field {
            field,
            problem: format!("expected a string or null, got {other:?}"),
        }),
    }
}

fn ts(v: Value, field: &'static str) -> Result<i64, CodecError> {
    match v {
        Value::TimestampMicros(t) | Value::Long(t) => Ok(t),
        Value::TimestampMillis(t) => Ok(t.saturating_mul(1000)),
        other => Err(CodecError::Field {
            field,
            problem: format!("expected a timestamp, got {other:?}"),
        }),
    }
}

fn req_ts(f: &mut HashMap<String, Value>, field: &'static str) -> Result<i64, CodecError> {
    match f.remove(field).map(unwrap_union) {
        Some(v) => ts(v, field),
        None => Err(CodecError::Field {
            field,
            problem: "missing".into(),
        }),
    }
}

fn opt_ts_field(
    f: &mut HashMap<String, Value>,
    field: &'static str,
) -> Result<Option<i64>, CodecError> {
    match f.remove(field).map(unwrap_union) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => ts(v, field).map(Some),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub fn sample() -> Event {
        Event {
            kind: EventType::Track,
            message_id: "m-1".into(),
            user_id: Some("u-1".into()),
            anonymous_id: None,
            event: Some("Signed Up".into()),
            name: None,
            group_id: None,
            previous_id: None,
            timestamp: 1_764_000_000_000_000,
            original_timestamp: Some(1_764_000_000_000_001),
            sent_at: Some(1_764_000_000_100_000),
            received_at: 1_764_000_000_200_000,
            context: r#"{"os":{"name":"iOS"}}"#.into(),
            properties: r#"{"plan":"pro","revenue":12.5}"#.into(),
            traits: "{}".into(),
            integrations: "{}".into(),
            source_id: "web".into(),
        }
    }

    #[test]
    fn encode_decode_round_trips() {
        let codec = EventCodec::new();
        let e = sample();
        let datum = codec.encode(&e).expect("encode");
        assert_eq!(codec.decode(codec.schema(), &datum).expect("decode"), e);
    }

    #[test]
    fn fast_codec_matches_apache_avro_byte_for_byte() {
        let codec = EventCodec::new();
        let mut variants = vec![sample()];
        let mut e = sample();
        e.kind = EventType::Alias;
        e.user_id = None;
        e.anonymous_id = Some("a-é-☃".into());
        e.previous_id = Some("old".into());
        e.sent_at = None;
        e.original_timestamp = None;
        e.timestamp = -5;
        e.received_at = i64::MAX;
        e.properties = "x".repeat(300);
        variants.push(e);
        let mut e = sample();
        e.timestamp = i64::MIN;
        e.message_id = String::new();
        variants.push(e);
        for e in variants {
            let fast = codec.encode(&e).expect("fast");
            let generic = codec.encode_generic(&e).expect("generic");
            assert_eq!(fast, generic, "same bytes for {e:?}");
            assert_eq!(codec.decode_v1(&generic).expect("fast read"), e);
            assert_eq!(
                codec
                    .decode_generic(codec.schema(), &fast)
                    .expect("generic read"),
                e
            );
        }
    }

    #[test]
    fn fast_reader_rejects_every_truncation_and_garbage() {
        let codec = EventCodec::new();
        let datum = codec.encode(&sample()).expect("encode");
        for cut in 0..datum.len() {
            assert!(
                codec.decode_v1(&datum[..cut]).is_err(),
                "truncated at {cut}"
            );
        }
        let mut x: u64 = 1;
        for _ in 0..2_000 {
            let bytes: Vec<u8> = (0..(x % 97) as usize)
                .map(|_| {
                    x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
                    (x >> 56) as u8
                })
                .collect();
            let _ = codec.decode_v1(&bytes);
        }
        assert!(
            codec.decode_v1(&[0x0c]).is_err(),
            "enum index 6 is out of range"
        );
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        let codec = EventCodec::new();
        for bytes in [
            &b""[..],
            b"\x02",
            b"\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff",
            b"hello world",
        ] {
            assert!(codec.decode(codec.schema(), bytes).is_err());
        }
        let mut datum = codec.encode(&sample()).expect("encode");
        datum.push(0);
        assert!(
            codec.decode(codec.schema(), &datum).is_err(),
            "trailing bytes"
        );
    }

    #[test]
    fn older_writer_schema_resolves() {
        // A producer that only knows a subset of the fields, with defaults for the rest.
        let writer = Schema::parse_str(
            r#"{"type":"record","name":"Event","namespace":"northstar.v1","fields":[
            {"name":"type","type":{"type":"enum","name":"EventType","symbols":["track","identify","page","screen","group","alias"]}},
            {"name":"messageId","type":"string"},
            {"name":"userId","type":["null","string"],"default":null},
            {"name":"event","type":["null","string"],"default":null},
            {"name":"timestamp","type":{"type":"long","logicalType":"timestamp-micros"}},
            {"name":"receivedAt","type":{"type":"long","logicalType":"timestamp-micros"}},
            {"name":"sourceId","type":"string"}]}"#,
        )
        .expect("schema");
        let value = Value::Record(vec![
            ("type".into(), Value::Enum(0, "track".into())),
            ("messageId".into(), Value::String("m".into())),
            (
                "userId".into(),
                Value::Union(1, Box::new(Value::String("u".into()))),
            ),
            (
                "event".into(),
                Value::Union(1, Box::new(Value::String("x".into()))),
            ),
            ("timestamp".into(), Value::TimestampMicros(5)),
            ("receivedAt".into(), Value::TimestampMicros(6)),
            ("sourceId".into(), Value::String("backend".into())),
        ]);
        let mut datum = Vec::new();
        apache_avro::writer::datum::GenericDatumWriter::builder(&writer)
            .build()
            .expect("w")
            .write_value(&mut datum, value)
            .expect("encode");
        let codec = EventCodec::new();
        let e = codec.decode(&writer, &datum).expect("decode");
        assert_eq!(e.properties, "{}");
        assert_eq!(e.event.as_deref(), Some("x"));
        assert_eq!(e.anonymous_id, None);
    }

    #[test]
    fn distinct_id_and_name() {
        let mut e = sample();
        assert_eq!(e.distinct_id(), Some("u-1"));
        e.user_id = Some(String::new());
        e.anonymous_id = Some("a".into());
        assert_eq!(e.distinct_id(), Some("a"));
        e.kind = EventType::Page;
        e.name = None;
        assert_eq!(e.event_name(), "page");
    }
}
