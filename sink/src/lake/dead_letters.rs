//! The dead-letter table: records of `events.dlq` → one Parquet file, without IO.
//!
//! Contract: every dead-letter record becomes one row with its reason and detail (the
//! `northstar.dlq.*` headers), where it came from (the `northstar.source.*` headers: the raw
//! record's position for processor rejects, the clean record's for the lake sink's own), the
//! original key and payload bytes untouched (plus the payload as text when it is UTF-8), the time
//! it was dead-lettered (the Kafka record timestamp) and its own position in the dead-letter
//! topic. Rows are sorted by that position. Partitioned by the dead-lettering date (UTC):
//! `dlq/event_date=YYYY-MM-DD/`, deterministic from the record, so a repeated flush writes the
//! same files.

use std::sync::Arc;

use arrow::array::{ArrayRef, BinaryArray, RecordBatch};
use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use northstar_schemas::headers::{self, header_str, source_position};
use rdkafka::message::Message;

use super::layout::event_date;
use super::parquet::{int32s, int64s, strings, timestamps, write_file, EncodeError, Encoded};

/// One dead-letter record.
#[derive(Debug, Clone, PartialEq)]
pub struct DeadRow {
    pub reason: Option<String>,
    pub detail: Option<String>,
    pub source_topic: Option<String>,
    pub source_partition: Option<i32>,
    pub source_offset: Option<i64>,
    /// When the record was dead-lettered (Kafka timestamp), µs since the epoch.
    pub dead_lettered_at: Option<i64>,
    pub key: Option<Vec<u8>>,
    pub payload: Option<Vec<u8>>,
    pub dlq_partition: i32,
    pub dlq_offset: i64,
}

impl DeadRow {
    /// The row of one dead-letter record.
    pub fn from_message<M: Message>(msg: &M) -> Self {
        let hdrs = msg.headers();
        let text = |k: &str| hdrs.and_then(|h| header_str(h, k)).map(str::to_string);
        let source = hdrs.and_then(source_position);
        Self {
            reason: text(headers::DLQ_REASON),
            detail: text(headers::DLQ_DETAIL),
            source_topic: source.as_ref().map(|s| s.topic.clone()),
            source_partition: source.as_ref().map(|s| s.partition),
            source_offset: source.as_ref().map(|s| s.offset),
            dead_lettered_at: msg
                .timestamp()
                .to_millis()
                .map(|ms| ms.saturating_mul(1000)),
            key: msg.key().map(<[u8]>::to_vec),
            payload: msg.payload().map(<[u8]>::to_vec),
            dlq_partition: msg.partition(),
            dlq_offset: msg.offset(),
        }
    }

    /// Its partition directory: `event_date=` the dead-lettering date, or `unknown`.
    pub fn partition_path(&self) -> String {
        match self.dead_lettered_at {
            Some(t) => format!("event_date={}", event_date(t)),
            None => "event_date=unknown".into(),
        }
    }

    /// Bytes it holds in memory, roughly.
    pub fn size(&self) -> usize {
        let s = |v: &Option<String>| v.as_ref().map_or(0, String::len);
        let b = |v: &Option<Vec<u8>>| v.as_ref().map_or(0, Vec::len);
        s(&self.reason)
            + s(&self.detail)
            + s(&self.source_topic)
            + b(&self.key)
            + b(&self.payload)
            + 64
    }
}

/// The Arrow schema of the dead-letter table.
pub fn schema() -> Arc<Schema> {
    Arc::new(Schema::new(vec![
        Field::new("reason", DataType::Utf8, true),
        Field::new("detail", DataType::Utf8, true),
        Field::new("source_topic", DataType::Utf8, true),
        Field::new("source_partition", DataType::Int32, true),
        Field::new("source_offset", DataType::Int64, true),
        Field::new(
            "dead_lettered_at",
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            true,
        ),
        Field::new("key", DataType::Binary, true),
        Field::new("payload", DataType::Binary, true),
        Field::new("payload_text", DataType::Utf8, true),
        Field::new("dlq_partition", DataType::Int32, false),
        Field::new("dlq_offset", DataType::Int64, false),
    ]))
}

/// Encodes `rows` (sorted in place by dead-letter position) into Parquet bytes.
pub fn encode(rows: &mut [DeadRow]) -> Result<Encoded, EncodeError> {
    rows.sort_by_key(|r| (r.dlq_partition, r.dlq_offset));
    let columns: Vec<ArrayRef> = vec![
        strings(rows, |r| r.reason.as_deref()),
        strings(rows, |r| r.detail.as_deref()),
        strings(rows, |r| r.source_topic.as_deref()),
        int32s(rows, |r| r.source_partition),
        int64s(rows, |r| r.source_offset),
        timestamps(rows, |r| r.dead_lettered_at),
        Arc::new(
            rows.iter()
                .map(|r| r.key.as_deref())
                .collect::<BinaryArray>(),
        ),
        Arc::new(
            rows.iter()
                .map(|r| r.payload.as_deref())
                .collect::<BinaryArray>(),
        ),
        strings(rows, |r| {
            r.payload
                .as_deref()
                .and_then(|p| std::str::from_utf8(p).ok())
        }),
        int32s(rows, |r| Some(r.dlq_partition)),
        int64s(rows, |r| Some(r.dlq_offset)),
    ];
    let batch = RecordBatch::try_new(schema(), columns)?;
    Ok(Encoded {
        bytes: write_file(&batch)?,
        type_conflicts: 0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Int64Array, StringArray};
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

    fn dead(offset: i64, payload: &[u8]) -> DeadRow {
        DeadRow {
            reason: Some("not_an_object".into()),
            detail: Some("properties must be a JSON object".into()),
            source_topic: Some("events.raw".into()),
            source_partition: Some(1),
            source_offset: Some(41),
            dead_lettered_at: Some(1_764_028_800_000_000),
            key: Some(b"k".to_vec()),
            payload: Some(payload.to_vec()),
            dlq_partition: 0,
            dlq_offset: offset,
        }
    }

    #[test]
    fn rows_keep_reason_position_and_original_bytes() {
        let mut rows = vec![dead(7, &[0xff, 0x00, 0x01]), dead(3, b"{\"a\":1}")];
        assert_eq!(rows[0].partition_path(), "event_date=2025-11-25");
        let bytes = encode(&mut rows).expect("encode").bytes;
        let reader =
            ParquetRecordBatchReaderBuilder::try_new(bytes::Bytes::from(bytes)).expect("reader");
        let batch = reader
            .build()
            .expect("build")
            .next()
            .expect("a batch")
            .expect("read");
        assert_eq!(batch.num_rows(), 2);
        let col = |n: &str| batch.column_by_name(n).expect("column").clone();
        let offsets = col("dlq_offset");
        let offsets = offsets.as_any().downcast_ref::<Int64Array>().expect("i64");
        assert_eq!(offsets.values().to_vec(), vec![3, 7], "sorted by position");
        let payloads = col("payload");
        let payloads = payloads
            .as_any()
            .downcast_ref::<BinaryArray>()
            .expect("bin");
        assert_eq!(payloads.value(1), &[0xff, 0x00, 0x01], "bytes untouched");
        let texts = col("payload_text");
        let texts = texts.as_any().downcast_ref::<StringArray>().expect("text");
        assert_eq!(
            texts.iter().collect::<Vec<_>>(),
            vec![Some("{\"a\":1}"), None]
        );
        let reasons = col("reason");
        let reasons = reasons
            .as_any()
            .downcast_ref::<StringArray>()
            .expect("text");
        assert_eq!(reasons.value(0), "not_an_object");
    }
}
