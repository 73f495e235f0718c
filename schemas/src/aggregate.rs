//! A windowed KPI value ([`KpiAggregate`]) and its Avro codec.
//!
//! Contract: one record is the value of one KPI, for one window and one segment, as computed
//! from one input partition up to `source_offset`. Consumers keep the record with the highest
//! `source_offset` per [`KpiAggregate::upsert_key`] and sum over partitions.

use std::collections::{BTreeMap, HashMap};

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
    /// The partition's event-time watermark at emission, ms since the epoch.
    pub watermark: i64,
    pub source_topic: String,
    pub source_partition: i32,
    /// The last input offset this value reflects.
    pub source_offset: i64,
}

impl KpiAggregate {
    /// The Kafka record key: identical for every update of the same value.
    pub fn upsert_key(&self) -> String {
        let mut key = format!(
            "{}|{}|{}|{}",
            self.kpi, self.window, self.window_start, self.source_partition
        );
        for (k, v) in &self.segment {
            key.push('|');
            key.push_str(k);
            key.push('=');
            key.push_str(v);
        }
        key
    }
}

/// Encodes and decodes [`KpiAggregate`] as Avro datums of the v1 schema.
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
        let schema = Schema::parse_str(crate::KPI_AGGREGATE_SCHEMA_V1)
            .expect("the bundled aggregate schema parses");
        Self { schema }
    }

    pub fn schema(&self) -> &Schema {
        &self.schema
    }

    pub fn encode(&self, a: &KpiAggregate) -> Result<Vec<u8>, CodecError> {
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
        ]);
        let mut out = Vec::with_capacity(256);
        apache_avro::writer::datum::GenericDatumWriter::builder(&self.schema)
            .build()?
            .write_value(&mut out, value)?;
        Ok(out)
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
        };
        let codec = AggregateCodec::new();
        let datum = codec.encode(&a).expect("encode");
        assert_eq!(codec.decode(codec.schema(), &datum).expect("decode"), a);
        assert_eq!(a.upsert_key(), "events|1m|60000|1|event=Signed Up");
    }
}
