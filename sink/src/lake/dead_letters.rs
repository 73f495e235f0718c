//! The dead-letter table: records of `events.dlq` → one Parquet file, without IO; and the
//! failure record of the lake sink's own dead letters.
//!
//! Contract: every dead-letter record becomes one row with its reason and detail (the
//! `northstar.dlq.*` headers), its failure record as typed columns (`failure_type`,
//! `component`, `problems` — a list of `{reason, path, rule, expected, actual}` —, `plan_id`,
//! `plan_version`, `message_id`, `source_id`, `event_type`, `event`, `user_id`,
//! `anonymous_id`, `recovery_count`, `replay_of`; for a letter written before failure records,
//! `failure_type` from its reason and the rest null), where it came from (the
//! `northstar.source.*` headers: the raw record's position for processor rejects, the clean
//! record's for the lake sink's own), the key and payload bytes as the letter holds them (plus
//! the payload as text when it is UTF-8), the time it was dead-lettered (the Kafka record
//! timestamp) and its own position in the dead-letter topic. Rows are sorted by that position.
//! Partitioned by the dead-lettering date (UTC): `dlq/event_date=YYYY-MM-DD/`, deterministic
//! from the record, so a repeated flush writes the same files.

use std::sync::Arc;

use arrow::array::{ArrayRef, BinaryArray, ListArray, RecordBatch, StringArray, StructArray};
use arrow::buffer::{NullBuffer, OffsetBuffer};
use arrow::datatypes::{DataType, Field, Fields, Schema, TimeUnit};
use northstar_schemas::failure::{Failure, FailureType, Problem, Source};
use northstar_schemas::headers::{self, header_str, source_position};
use northstar_schemas::Undecodable;
use rdkafka::message::Message;

use super::layout::event_date;
use super::parquet::{int32s, int64s, strings, timestamps, write_file, EncodeError, Encoded};

/// One dead-letter record.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct DeadRow {
    pub reason: Option<String>,
    pub detail: Option<String>,
    /// The failure record of the `northstar.failure` header, if the letter has one.
    pub failure: Option<Failure>,
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
            failure: hdrs
                .and_then(|h| header_str(h, headers::FAILURE))
                .and_then(|t| Failure::from_json(t).ok()),
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

    /// Its failure type: the failure record's, else the one its reason code implies.
    pub fn failure_type(&self) -> Option<FailureType> {
        self.failure
            .as_ref()
            .map(|f| f.failure_type)
            .or_else(|| self.reason.as_deref().and_then(FailureType::of_reason))
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
        let failure = self.failure.as_ref().map_or(0, |f| {
            f.problems
                .iter()
                .map(|p| p.path.len() + p.rule.len() + p.expected.len() + p.actual.len() + 40)
                .sum::<usize>()
                + 200
        });
        s(&self.reason)
            + s(&self.detail)
            + s(&self.source_topic)
            + b(&self.key)
            + b(&self.payload)
            + failure
            + 64
    }
}

/// The failure record of a clean record the lake sink cannot decode (type `loader`).
pub fn loader_failure<M: Message>(msg: &M, u: Undecodable) -> Failure {
    let source = Source {
        topic: msg.topic().to_string(),
        partition: msg.partition(),
        offset: msg.offset(),
    };
    let problem = Problem {
        reason: u.reason.to_string(),
        path: String::new(),
        rule: "wire format".into(),
        expected: "an event of the clean topic's schema".into(),
        actual: u.detail,
    };
    let mut f = Failure::new(FailureType::Loader, "lake-sink", source, vec![problem]);
    f.recovery_count = headers::recovery_count(msg.headers());
    f
}

/// The fields of one problem in the `problems` list column.
fn problem_fields() -> Fields {
    ["reason", "path", "rule", "expected", "actual"]
        .into_iter()
        .map(|n| Field::new(n, DataType::Utf8, false))
        .collect()
}

fn problems_type() -> DataType {
    DataType::List(Arc::new(Field::new(
        "item",
        DataType::Struct(problem_fields()),
        false,
    )))
}

/// The Arrow schema of the dead-letter table.
pub fn schema() -> Arc<Schema> {
    let text = |n: &str| Field::new(n, DataType::Utf8, true);
    Arc::new(Schema::new(vec![
        text("reason"),
        text("detail"),
        text("failure_type"),
        text("component"),
        Field::new("problems", problems_type(), true),
        text("plan_id"),
        text("plan_version"),
        text("message_id"),
        text("source_id"),
        text("event_type"),
        text("event"),
        text("user_id"),
        text("anonymous_id"),
        Field::new("recovery_count", DataType::Int32, true),
        text("replay_of"),
        text("source_topic"),
        Field::new("source_partition", DataType::Int32, true),
        Field::new("source_offset", DataType::Int64, true),
        Field::new(
            "dead_lettered_at",
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            true,
        ),
        Field::new("key", DataType::Binary, true),
        Field::new("payload", DataType::Binary, true),
        text("payload_text"),
        Field::new("dlq_partition", DataType::Int32, false),
        Field::new("dlq_offset", DataType::Int64, false),
    ]))
}

/// The `problems` column: each row's list of problems, null without a failure record.
fn problems_column(rows: &[DeadRow]) -> ArrayRef {
    let lists: Vec<Option<&[Problem]>> = rows
        .iter()
        .map(|r| r.failure.as_ref().map(|f| f.problems.as_slice()))
        .collect();
    let all: Vec<&Problem> = lists.iter().flatten().flat_map(|l| l.iter()).collect();
    let column = |f: fn(&Problem) -> &str| -> ArrayRef {
        Arc::new(StringArray::from_iter_values(all.iter().map(|p| f(p))))
    };
    let values = StructArray::new(
        problem_fields(),
        vec![
            column(|p| &p.reason),
            column(|p| &p.path),
            column(|p| &p.rule),
            column(|p| &p.expected),
            column(|p| &p.actual),
        ],
        None,
    );
    let offsets = OffsetBuffer::from_lengths(lists.iter().map(|l| l.map_or(0, <[_]>::len)));
    let nulls = NullBuffer::from(lists.iter().map(Option::is_some).collect::<Vec<bool>>());
    let DataType::List(item) = problems_type() else {
        unreachable!("a list type")
    };
    Arc::new(ListArray::new(item, offsets, Arc::new(values), Some(nulls)))
}

/// The columns taken from the failure record.
fn failure_columns(rows: &[DeadRow]) -> Vec<ArrayRef> {
    fn f(r: &DeadRow) -> Option<&Failure> {
        r.failure.as_ref()
    }
    fn event(r: &DeadRow) -> Option<&northstar_schemas::failure::EventRef> {
        f(r).map(|f| &f.event)
    }
    vec![
        strings(rows, |r| r.failure_type().map(FailureType::as_str)),
        strings(rows, |r| f(r).map(|f| f.component.as_str())),
        problems_column(rows),
        strings(rows, |r| f(r)?.plan.as_ref().map(|p| p.id.as_str())),
        strings(rows, |r| f(r)?.plan.as_ref().map(|p| p.version.as_str())),
        strings(rows, |r| event(r)?.message_id.as_deref()),
        strings(rows, |r| event(r)?.source_id.as_deref()),
        strings(rows, |r| event(r)?.event_type.as_deref()),
        strings(rows, |r| event(r)?.event.as_deref()),
        strings(rows, |r| event(r)?.user_id.as_deref()),
        strings(rows, |r| event(r)?.anonymous_id.as_deref()),
        int32s(rows, |r| {
            f(r).map(|f| f.recovery_count.min(i32::MAX as u32) as i32)
        }),
        strings(rows, |r| f(r)?.replay_of.as_deref()),
    ]
}

/// Encodes `rows` (sorted in place by dead-letter position) into Parquet bytes.
pub fn encode(rows: &mut [DeadRow]) -> Result<Encoded, EncodeError> {
    rows.sort_by_key(|r| (r.dlq_partition, r.dlq_offset));
    let mut columns: Vec<ArrayRef> = vec![
        strings(rows, |r| r.reason.as_deref()),
        strings(rows, |r| r.detail.as_deref()),
    ];
    columns.extend(failure_columns(rows));
    columns.extend([
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
    ]);
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
            failure: None,
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

    #[test]
    fn failure_records_become_typed_columns() {
        use arrow::array::{Array, Int32Array};
        let mut typed = dead(1, b"x");
        let mut f = Failure::new(
            FailureType::SchemaViolation,
            "stream-processor",
            Source {
                topic: "events.raw".into(),
                partition: 1,
                offset: 41,
            },
            ["not_in_enum", "wrong_type"]
                .into_iter()
                .map(|r| Problem {
                    reason: r.into(),
                    path: format!("properties.{r}"),
                    rule: "rule".into(),
                    expected: "e".into(),
                    actual: "a".into(),
                })
                .collect(),
        );
        f.event.message_id = Some("m-1".into());
        f.event.event = Some("Signed Up".into());
        f.recovery_count = 2;
        typed.failure = Some(f);
        // A letter from before failure records: its type from its reason, the rest null.
        let mut old = dead(2, b"y");
        old.reason = Some("timestamp_too_old".into());
        let mut rows = vec![typed, old];
        let bytes = encode(&mut rows).expect("encode").bytes;
        let batch = ParquetRecordBatchReaderBuilder::try_new(bytes::Bytes::from(bytes))
            .expect("reader")
            .build()
            .expect("build")
            .next()
            .expect("a batch")
            .expect("read");
        let text = |n: &str| {
            let c = batch.column_by_name(n).expect("column").clone();
            let c = c
                .as_any()
                .downcast_ref::<StringArray>()
                .expect("text")
                .clone();
            c.iter().map(|v| v.map(str::to_string)).collect::<Vec<_>>()
        };
        assert_eq!(
            text("failure_type"),
            [Some("schema_violation".into()), Some("clock".into())]
        );
        assert_eq!(text("message_id"), [Some("m-1".into()), None]);
        assert_eq!(text("event"), [Some("Signed Up".into()), None]);
        let counts = batch.column_by_name("recovery_count").expect("column");
        let counts = counts.as_any().downcast_ref::<Int32Array>().expect("i32");
        assert_eq!((counts.value(0), counts.is_null(1)), (2, true));
        let problems = batch.column_by_name("problems").expect("column");
        let problems = problems.as_any().downcast_ref::<ListArray>().expect("list");
        assert!(problems.is_null(1));
        let first = problems.value(0);
        let first = first
            .as_any()
            .downcast_ref::<StructArray>()
            .expect("struct");
        let paths = first.column_by_name("path").expect("path");
        let paths = paths.as_any().downcast_ref::<StringArray>().expect("text");
        assert_eq!(
            paths.iter().collect::<Vec<_>>(),
            [
                Some("properties.not_in_enum"),
                Some("properties.wrong_type")
            ]
        );
    }
}
