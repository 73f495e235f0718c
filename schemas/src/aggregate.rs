//! A windowed KPI value ([`KpiAggregate`]) and its Avro codec.
//!
//! Contract: one record is the value of one KPI, for one window and one segment, as computed
//! from one input partition up to `source_offset`. Consumers keep the record with the highest
//! `source_offset` per [`KpiAggregate::upsert_key`] and sum, over partitions, each record into
//! the series its segment maps to by the values the window admits ([`crate::catalog::Admitted`],
//! ADR 0013; for distinct users with one dimension a partition's `__other__` is the `othersFrom`
//! of its first non-admitted value). The Kafka key
//! ([`KpiAggregate::record_key`]) names the window by its slot in a ring of `slots` windows, so
//! log compaction keeps, per series and partition, only the newest `slots` windows: the
//! compacted topic stays bounded by the catalog whatever the deployment's age. All records of
//! one input partition go to one aggregates partition in emission order, so a record's
//! `watermark` (the input partition's, at its previous emission) vouches for every update of that
//! input partition before it: a reader knows when a window is complete.

use std::collections::BTreeMap;

use apache_avro::types::Value;
use apache_avro::Schema;

use crate::CodecError;

/// One KPI value for one window, segment and source partition.
#[derive(Debug, Clone, PartialEq)]
pub struct KpiAggregate {
    pub kpi: String,
    /// `count`, `distinct_users`, `sum` or `ratio`.
    pub kind: String,
    /// Window length label, e.g. `1m`.
    pub window: String,
    /// Window start, ms since the epoch (inclusive).
    pub window_start: i64,
    /// Window end, ms since the epoch (exclusive).
    pub window_end: i64,
    /// Dimension name → value (e.g. `event` → `Signed Up`).
    pub segment: BTreeMap<String, String>,
    pub value: f64,
    /// Ratios: the numerator KPI's value in this partition.
    pub numerator: f64,
    /// Ratios: the denominator KPI's value in this partition.
    pub denominator: f64,
    /// True once the window can no longer change.
    pub is_final: bool,
    /// The input partition's event-time watermark at its previous emission, ms since the
    /// epoch: every update of this input partition for a window that ended before it precedes
    /// this record in its aggregates partition.
    pub watermark: i64,
    pub source_topic: String,
    pub source_partition: i32,
    /// The last input offset this value reflects.
    pub source_offset: i64,
    /// How long after a window's end late events still update it in this partition (ms).
    pub allowed_lateness_ms: i64,
    /// Windows of this KPI from this partition starting at or before this event time (ms) may
    /// miss input: the KPI was added or changed in the catalog then, and its state restarted
    /// empty. `i64::MIN`: every window is complete.
    pub full_input_after_ms: i64,
    /// Distinct users with one segment dimension: this value's, its partition's values ranked
    /// after it and `__other__`'s users together (what this partition's `__other__` holds when
    /// the window admits none of them); 0 otherwise.
    pub others_from: f64,
}

impl KpiAggregate {
    /// Whether this record's window saw all its input in its partition.
    pub fn has_full_input(&self) -> bool {
        self.window_start > self.full_input_after_ms
    }
}

impl KpiAggregate {
    /// The identity of a value: the same for every update of it (what consumers keep the
    /// newest of).
    pub fn upsert_key(&self) -> String {
        let key = format!(
            "{}|{}|{}|{}",
            self.kpi, self.window, self.window_start, self.source_partition
        );
        with_segment(
            key,
            self.segment.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        )
    }

    /// The Kafka record key: the same for every update of one value, and the same for the
    /// windows `slots` window lengths apart (compaction then keeps only the newer), with
    /// `slots` from [`crate::catalog::WindowSpec::retained_windows`].
    pub fn record_key(&self, slots: i64) -> String {
        let mut out = Vec::new();
        self.with_view(|v| v.write_record_key(slots, &mut out));
        // Only `str`s were written.
        String::from_utf8(out).unwrap_or_default()
    }

    /// Calls `f` with this record as an [`AggregateView`].
    pub fn with_view<T>(&self, f: impl FnOnce(&AggregateView<'_>) -> T) -> T {
        let segment: Vec<(&str, &str)> = self
            .segment
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        f(&AggregateView {
            kpi: &self.kpi,
            kind: &self.kind,
            window: &self.window,
            window_start: self.window_start,
            window_end: self.window_end,
            segment: &segment,
            value: self.value,
            numerator: self.numerator,
            denominator: self.denominator,
            is_final: self.is_final,
            watermark: self.watermark,
            source_topic: &self.source_topic,
            source_partition: self.source_partition,
            source_offset: self.source_offset,
            allowed_lateness_ms: self.allowed_lateness_ms,
            full_input_after_ms: self.full_input_after_ms,
            others_from: self.others_from,
        })
    }
}

fn with_segment<'a>(mut key: String, segment: impl Iterator<Item = (&'a str, &'a str)>) -> String {
    for (k, v) in segment {
        key.push('|');
        key.push_str(k);
        key.push('=');
        key.push_str(v);
    }
    key
}

/// A [`KpiAggregate`] made of borrowed parts: what a producer encodes without building the
/// record's strings (the stream processor writes one per changed window and emission).
/// `segment` holds (dimension, value) pairs sorted by dimension, each dimension once: the
/// order of [`KpiAggregate::segment`].
#[derive(Debug, Clone, Copy)]
pub struct AggregateView<'a> {
    pub kpi: &'a str,
    pub kind: &'a str,
    pub window: &'a str,
    pub window_start: i64,
    pub window_end: i64,
    pub segment: &'a [(&'a str, &'a str)],
    pub value: f64,
    pub numerator: f64,
    pub denominator: f64,
    pub is_final: bool,
    pub watermark: i64,
    pub source_topic: &'a str,
    pub source_partition: i32,
    pub source_offset: i64,
    pub allowed_lateness_ms: i64,
    pub full_input_after_ms: i64,
    pub others_from: f64,
}

impl AggregateView<'_> {
    /// Appends [`KpiAggregate::record_key`] of this record to `out`.
    pub fn write_record_key(&self, slots: i64, out: &mut Vec<u8>) {
        let len = (self.window_end - self.window_start).max(1);
        let slot = self.window_start.div_euclid(len).rem_euclid(slots.max(1));
        let mut num = itoa::Buffer::new();
        out.extend_from_slice(self.kpi.as_bytes());
        out.push(b'|');
        out.extend_from_slice(self.window.as_bytes());
        out.extend_from_slice(b"|s");
        out.extend_from_slice(num.format(slot).as_bytes());
        out.push(b'|');
        out.extend_from_slice(num.format(self.source_partition).as_bytes());
        for (k, v) in self.segment {
            out.push(b'|');
            out.extend_from_slice(k.as_bytes());
            out.push(b'=');
            out.extend_from_slice(v.as_bytes());
        }
    }
}

/// Encodes and decodes [`KpiAggregate`] as Avro datums of the current schema (v3); decodes
/// datums of any earlier version.
#[derive(Debug, Clone)]
pub struct AggregateCodec {
    schema: Schema,
}

impl Default for AggregateCodec {
    fn default() -> Self {
        Self::new()
    }
}

impl AggregateCodec {
    pub fn new() -> Self {
        #[allow(clippy::expect_used)]
        let schema = Schema::parse_str(crate::KPI_AGGREGATE_SCHEMA)
            .expect("the bundled aggregate schema parses");
        Self { schema }
    }

    pub fn schema(&self) -> &Schema {
        &self.schema
    }

    /// The Avro binary datum of `a` (v4 schema).
    pub fn encode(&self, a: &KpiAggregate) -> Result<Vec<u8>, CodecError> {
        let mut out = Vec::with_capacity(128);
        a.with_view(|v| self.write(v, &mut out));
        Ok(out)
    }

    /// Appends the Avro binary datum of `a` (v4 schema) to `out`, written by hand: the same
    /// bytes as apache-avro's generic writer (checked by the tests), without building a generic
    /// value and resolving the schema per record.
    pub fn write(&self, a: &AggregateView<'_>, out: &mut Vec<u8>) {
        use crate::envelope_binary::{put_long, put_str};
        put_str(out, a.kpi);
        put_str(out, a.window);
        put_long(out, a.window_start);
        put_long(out, a.window_end);
        if !a.segment.is_empty() {
            put_long(out, a.segment.len() as i64);
            for (k, v) in a.segment {
                put_str(out, k);
                put_str(out, v);
            }
        }
        put_long(out, 0);
        put_str(out, a.kind);
        out.extend_from_slice(&a.value.to_le_bytes());
        out.extend_from_slice(&a.numerator.to_le_bytes());
        out.extend_from_slice(&a.denominator.to_le_bytes());
        out.push(u8::from(a.is_final));
        put_long(out, a.watermark);
        put_str(out, a.source_topic);
        put_long(out, i64::from(a.source_partition));
        put_long(out, a.source_offset);
        put_long(out, a.allowed_lateness_ms);
        put_long(out, a.full_input_after_ms);
        out.extend_from_slice(&a.others_from.to_le_bytes());
    }

    pub fn decode(&self, writer: &Schema, mut datum: &[u8]) -> Result<KpiAggregate, CodecError> {
        let value = apache_avro::reader::datum::GenericDatumReader::builder(writer)
            .reader_schema(&self.schema)
            .build()?
            .read_value(&mut datum)?;
        let Value::Record(fields) = value else {
            return Err(CodecError::Avro("datum is not a record".into()));
        };
        let mut out = KpiAggregate {
            kpi: String::new(),
            kind: "count".into(),
            window: String::new(),
            window_start: 0,
            window_end: 0,
            segment: BTreeMap::new(),
            value: 0.0,
            numerator: 0.0,
            denominator: 0.0,
            is_final: false,
            watermark: 0,
            source_topic: String::new(),
            source_partition: 0,
            source_offset: 0,
            allowed_lateness_ms: 0,
            full_input_after_ms: i64::MIN,
            others_from: 0.0,
        };
        for (name, v) in fields {
            match (name.as_str(), v) {
                ("kpi", Value::String(s)) => out.kpi = s,
                ("window", Value::String(s)) => out.window = s,
                ("windowStart", Value::TimestampMillis(t) | Value::Long(t)) => out.window_start = t,
                ("windowEnd", Value::TimestampMillis(t) | Value::Long(t)) => out.window_end = t,
                ("segment", Value::Map(m)) => {
                    for (k, v) in m {
                        if let Value::String(s) = v {
                            out.segment.insert(k, s);
                        }
                    }
                }
                ("kind", Value::String(k)) => out.kind = k,
                ("value", Value::Double(d)) => out.value = d,
                ("numerator", Value::Double(d)) => out.numerator = d,
                ("denominator", Value::Double(d)) => out.denominator = d,
                ("final", Value::Boolean(b)) => out.is_final = b,
                ("watermark", Value::TimestampMillis(t) | Value::Long(t)) => out.watermark = t,
                ("sourceTopic", Value::String(s)) => out.source_topic = s,
                ("sourcePartition", Value::Int(p)) => out.source_partition = p,
                ("sourceOffset", Value::Long(o)) => out.source_offset = o,
                ("allowedLateness", Value::Long(l)) => out.allowed_lateness_ms = l,
                ("fullInputAfter", Value::Long(c)) => out.full_input_after_ms = c,
                ("othersFrom", Value::Double(d)) => out.others_from = d,
                (field, v) => {
                    return Err(CodecError::Avro(format!(
                        "unexpected value {v:?} for field {field}"
                    )))
                }
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::collections::HashMap;

    /// apache-avro's generic writer: the reference for the hand-written encoder.
    fn encode_generic(codec: &AggregateCodec, a: &KpiAggregate) -> Vec<u8> {
        let segment: HashMap<String, Value> = a
            .segment
            .iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect();
        let value = Value::Record(vec![
            ("kpi".into(), Value::String(a.kpi.clone())),
            ("window".into(), Value::String(a.window.clone())),
            ("windowStart".into(), Value::TimestampMillis(a.window_start)),
            ("windowEnd".into(), Value::TimestampMillis(a.window_end)),
            ("segment".into(), Value::Map(segment)),
            ("kind".into(), Value::String(a.kind.clone())),
            ("value".into(), Value::Double(a.value)),
            ("numerator".into(), Value::Double(a.numerator)),
            ("denominator".into(), Value::Double(a.denominator)),
            ("final".into(), Value::Boolean(a.is_final)),
            ("watermark".into(), Value::TimestampMillis(a.watermark)),
            ("sourceTopic".into(), Value::String(a.source_topic.clone())),
            ("sourcePartition".into(), Value::Int(a.source_partition)),
            ("sourceOffset".into(), Value::Long(a.source_offset)),
            ("allowedLateness".into(), Value::Long(a.allowed_lateness_ms)),
            ("fullInputAfter".into(), Value::Long(a.full_input_after_ms)),
            ("othersFrom".into(), Value::Double(a.others_from)),
        ]);
        let mut out = Vec::new();
        apache_avro::writer::datum::GenericDatumWriter::builder(codec.schema())
            .build()
            .expect("writer")
            .write_value(&mut out, value)
            .expect("generic encode");
        out
    }

    #[test]
    fn hand_written_encoding_matches_apache_avro() {
        let codec = AggregateCodec::new();
        let base = KpiAggregate {
            kpi: "revenue_é".into(),
            window: "1h".into(),
            window_start: -3_600_000,
            window_end: 1_764_000_000_000,
            segment: BTreeMap::new(),
            kind: "ratio".into(),
            value: f64::NAN,
            numerator: 12.25,
            denominator: 0.0,
            is_final: false,
            watermark: i64::MIN,
            source_topic: "events.raw".into(),
            source_partition: i32::MAX,
            source_offset: i64::MAX,
            allowed_lateness_ms: 600_000,
            full_input_after_ms: i64::MIN,
            others_from: 0.0,
        };
        let one = KpiAggregate {
            segment: BTreeMap::from([("os".to_string(), "iOS".to_string())]),
            value: -0.5,
            is_final: true,
            watermark: 0,
            source_partition: -1,
            ..base.clone()
        };
        // Entry order in a multi-entry map is the generic writer's hash order: compare decoded.
        let many = KpiAggregate {
            segment: (0..40).map(|i| (format!("d{i}"), "x".repeat(i))).collect(),
            ..one.clone()
        };
        for a in [&base, &one] {
            assert_eq!(codec.encode(a).expect("encode"), encode_generic(&codec, a));
        }
        for a in [&base, &one, &many] {
            let datum = codec.encode(a).expect("encode");
            let back = codec.decode(codec.schema(), &datum).expect("decode");
            assert_eq!(
                format!("{back:?}"),
                format!("{a:?}"),
                "NaN-tolerant comparison"
            );
            assert_eq!(
                codec
                    .decode(codec.schema(), &encode_generic(&codec, a))
                    .map(|b| format!("{b:?}"))
                    .expect("decode generic"),
                format!("{a:?}")
            );
        }
    }

    #[test]
    fn round_trip_and_key() {
        let a = KpiAggregate {
            kpi: "events".into(),
            window: "1m".into(),
            window_start: 60_000,
            window_end: 120_000,
            segment: BTreeMap::from([("event".to_string(), "Signed Up".to_string())]),
            kind: "count".into(),
            value: 42.0,
            numerator: 0.0,
            denominator: 0.0,
            is_final: true,
            watermark: 200_000,
            source_topic: "events.raw".into(),
            source_partition: 1,
            source_offset: 99,
            allowed_lateness_ms: 120_000,
            full_input_after_ms: 59_999,
            others_from: 0.0,
        };
        let codec = AggregateCodec::new();
        let datum = codec.encode(&a).expect("encode");
        assert_eq!(codec.decode(codec.schema(), &datum).expect("decode"), a);
        assert_eq!(a.upsert_key(), "events|1m|60000|1|event=Signed Up");
        // Window 1 of a ring of 193: the window 193 minutes later shares the key.
        assert_eq!(a.record_key(193), "events|1m|s1|1|event=Signed Up");
        let later = KpiAggregate {
            window_start: a.window_start + 193 * 60_000,
            window_end: a.window_end + 193 * 60_000,
            ..a.clone()
        };
        assert_eq!(later.record_key(193), a.record_key(193));
        let next = KpiAggregate {
            window_start: a.window_start + 60_000,
            window_end: a.window_end + 60_000,
            ..a.clone()
        };
        assert_ne!(next.record_key(193), a.record_key(193));
    }

    /// A record written with the v1 schema (by a processor of the previous version) decodes
    /// with the v2 reader, its lateness unknown (0).
    #[test]
    fn version_1_records_decode() {
        let v1 = Schema::parse_str(crate::KPI_AGGREGATE_SCHEMA_V1).expect("v1");
        let value = Value::Record(vec![
            ("kpi".into(), Value::String("signups".into())),
            ("window".into(), Value::String("1h".into())),
            ("windowStart".into(), Value::TimestampMillis(0)),
            ("windowEnd".into(), Value::TimestampMillis(3_600_000)),
            ("segment".into(), Value::Map(HashMap::new())),
            ("kind".into(), Value::String("count".into())),
            ("value".into(), Value::Double(3.0)),
            ("numerator".into(), Value::Double(0.0)),
            ("denominator".into(), Value::Double(0.0)),
            ("final".into(), Value::Boolean(true)),
            ("watermark".into(), Value::TimestampMillis(5)),
            ("sourceTopic".into(), Value::String("events.raw".into())),
            ("sourcePartition".into(), Value::Int(2)),
            ("sourceOffset".into(), Value::Long(7)),
        ]);
        let mut datum = Vec::new();
        apache_avro::writer::datum::GenericDatumWriter::builder(&v1)
            .build()
            .expect("writer")
            .write_value(&mut datum, value)
            .expect("v1 encode");
        let a = AggregateCodec::new().decode(&v1, &datum).expect("decode");
        assert_eq!(
            (
                a.value,
                a.source_offset,
                a.allowed_lateness_ms,
                a.full_input_after_ms
            ),
            (3.0, 7, 0, i64::MIN)
        );
    }
}
