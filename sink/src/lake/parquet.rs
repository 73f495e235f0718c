//! Clean events → one Parquet file (Arrow, zstd), without IO.
//!
//! Contract: [`encode`] writes exactly the rows given, sorted by event time (ties by source
//! offset), with typed envelope columns (timestamps as UTC microseconds) and the schemaless
//! parts as JSON text, so no field is lost.

use std::sync::Arc;

use arrow::array::{
    ArrayRef, Int32Array, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray,
};
use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use northstar_schemas::Event;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;

/// A clean event with where it came from.
#[derive(Debug, Clone)]
pub struct Row {
    pub event: Event,
    /// Partition of the clean topic the row was read from.
    pub clean_partition: i32,
    /// Offset in the clean topic.
    pub clean_offset: i64,
    /// Position of the raw event the processor derived it from (the clean position when the
    /// record carries no source headers).
    pub source_partition: i32,
    pub source_offset: i64,
}

fn ts_type() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
}

/// The Arrow schema of the events table.
pub fn schema() -> Arc<Schema> {
    Arc::new(Schema::new(vec![
        Field::new("message_id", DataType::Utf8, false),
        Field::new("type", DataType::Utf8, false),
        Field::new("event", DataType::Utf8, true),
        Field::new("name", DataType::Utf8, true),
        Field::new("user_id", DataType::Utf8, true),
        Field::new("anonymous_id", DataType::Utf8, true),
        Field::new("group_id", DataType::Utf8, true),
        Field::new("previous_id", DataType::Utf8, true),
        Field::new("timestamp", ts_type(), false),
        Field::new("original_timestamp", ts_type(), true),
        Field::new("sent_at", ts_type(), true),
        Field::new("received_at", ts_type(), false),
        Field::new("context", DataType::Utf8, false),
        Field::new("properties", DataType::Utf8, false),
        Field::new("traits", DataType::Utf8, false),
        Field::new("integrations", DataType::Utf8, false),
        Field::new("source_id", DataType::Utf8, false),
        Field::new("source_partition", DataType::Int32, false),
        Field::new("source_offset", DataType::Int64, false),
        Field::new("clean_partition", DataType::Int32, false),
        Field::new("clean_offset", DataType::Int64, false),
    ]))
}

/// An error building the file.
#[derive(Debug, thiserror::Error)]
pub enum EncodeError {
    #[error("arrow: {0}")]
    Arrow(#[from] arrow::error::ArrowError),
    #[error("parquet: {0}")]
    Parquet(#[from] parquet::errors::ParquetError),
}

fn strings<'a>(rows: &'a [Row], f: impl Fn(&'a Row) -> Option<&'a str>) -> ArrayRef {
    Arc::new(rows.iter().map(f).collect::<StringArray>())
}

fn timestamps(rows: &[Row], f: impl Fn(&Row) -> Option<i64>) -> ArrayRef {
    Arc::new(
        rows.iter()
            .map(f)
            .collect::<TimestampMicrosecondArray>()
            .with_timezone("UTC"),
    )
}

/// Encodes `rows` (sorted in place by event time) into Parquet bytes.
pub fn encode(rows: &mut [Row]) -> Result<Vec<u8>, EncodeError> {
    rows.sort_by_key(|r| (r.event.timestamp, r.clean_partition, r.clean_offset));
    let columns: Vec<ArrayRef> = vec![
        strings(rows, |r| Some(r.event.message_id.as_str())),
        strings(rows, |r| Some(r.event.kind.as_str())),
        strings(rows, |r| r.event.event.as_deref()),
        strings(rows, |r| r.event.name.as_deref()),
        strings(rows, |r| r.event.user_id.as_deref()),
        strings(rows, |r| r.event.anonymous_id.as_deref()),
        strings(rows, |r| r.event.group_id.as_deref()),
        strings(rows, |r| r.event.previous_id.as_deref()),
        timestamps(rows, |r| Some(r.event.timestamp)),
        timestamps(rows, |r| r.event.original_timestamp),
        timestamps(rows, |r| r.event.sent_at),
        timestamps(rows, |r| Some(r.event.received_at)),
        strings(rows, |r| Some(r.event.context.as_str())),
        strings(rows, |r| Some(r.event.properties.as_str())),
        strings(rows, |r| Some(r.event.traits.as_str())),
        strings(rows, |r| Some(r.event.integrations.as_str())),
        strings(rows, |r| Some(r.event.source_id.as_str())),
        Arc::new(
            rows.iter()
                .map(|r| r.source_partition)
                .collect::<Int32Array>(),
        ),
        Arc::new(rows.iter().map(|r| r.source_offset).collect::<Int64Array>()),
        Arc::new(
            rows.iter()
                .map(|r| r.clean_partition)
                .collect::<Int32Array>(),
        ),
        Arc::new(rows.iter().map(|r| r.clean_offset).collect::<Int64Array>()),
    ];
    let batch = RecordBatch::try_new(schema(), columns)?;
    let props = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::try_new(3)?))
        .set_max_row_group_row_count(Some(128 * 1024))
        .build();
    let mut buf = Vec::with_capacity(1 << 16);
    let mut writer = ArrowWriter::try_new(&mut buf, schema(), Some(props))?;
    writer.write(&batch)?;
    writer.close()?;
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;
    use northstar_schemas::EventType;
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

    pub fn row(id: &str, ts: i64, offset: i64) -> Row {
        Row {
            event: Event {
                kind: EventType::Track,
                message_id: id.into(),
                user_id: Some("u".into()),
                anonymous_id: None,
                event: Some("Signed Up".into()),
                name: None,
                group_id: None,
                previous_id: None,
                timestamp: ts,
                original_timestamp: None,
                sent_at: Some(ts + 1),
                received_at: ts + 2,
                context: "{}".into(),
                properties: r#"{"plan":"pro"}"#.into(),
                traits: "{}".into(),
                integrations: "{}".into(),
                source_id: "web".into(),
            },
            clean_partition: 0,
            clean_offset: offset,
            source_partition: 0,
            source_offset: offset,
        }
    }

    #[test]
    fn writes_sorted_zstd_rows_that_read_back() {
        let mut rows = vec![row("b", 2_000, 1), row("a", 1_000, 0), row("c", 3_000, 2)];
        let bytes = encode(&mut rows).expect("encode");
        let reader =
            ParquetRecordBatchReaderBuilder::try_new(bytes::Bytes::from(bytes)).expect("reader");
        let meta = reader.metadata().clone();
        assert_eq!(meta.file_metadata().num_rows(), 3);
        assert!(matches!(
            meta.row_group(0).column(0).compression(),
            Compression::ZSTD(_)
        ));
        let batches: Vec<RecordBatch> = reader
            .build()
            .expect("build")
            .collect::<Result<_, _>>()
            .expect("read");
        let ids = batches[0]
            .column(0)
            .as_any()
            .downcast_ref::<StringArray>()
            .expect("strings");
        assert_eq!(
            ids.iter().collect::<Vec<_>>(),
            vec![Some("a"), Some("b"), Some("c")]
        );
        assert_eq!(batches[0].schema().field(8).data_type(), &ts_type());
    }
}
