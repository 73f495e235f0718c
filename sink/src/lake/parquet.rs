//! Clean events → one Parquet file (Arrow, zstd), without IO.
//!
//! Contract: [`encode`] writes exactly the rows given, sorted by event time (ties by source
//! offset), with typed envelope columns (timestamps as UTC microseconds), the common `context`
//! fields flattened into `context_*` string columns ([`CONTEXT_COLUMNS`]), every top-level
//! property with a stable type in the file as a typed `prop_<key>` column ([`typed_properties`]),
//! (with a tracking plan, every planned property of the file's events with the plan's type,
//! [`planned_properties`], so files written before and after a property appeared merge),
//! and the schemaless parts as JSON text as well, so no field is ever lost to typing. A value
//! that does not fit its column's type is left out of that column (it stays in the JSON text)
//! and counted in [`Encoded::type_conflicts`]; it never fails the file.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::array::{
    ArrayRef, BooleanArray, Float64Array, Int32Array, Int64Array, RecordBatch, StringArray,
    TimestampMicrosecondArray,
};
use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use northstar_schemas::Event;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::{EnabledStatistics, WriterProperties};

use super::props::{Context, PropVal, Props};
use northstar_schemas::plan::model::PropertyType;
use northstar_schemas::plan::Plan;
use northstar_schemas::EventType;
use std::borrow::Cow;

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
    /// The tracking plan the processor checked the event against (`id@version`, the
    /// `northstar.plan` header; shared between rows), and what it flagged
    /// (`northstar.plan.flags`).
    pub plan: Option<Arc<str>>,
    pub plan_flags: Option<Box<str>>,
}

impl Row {
    /// The plan's id and version, from `id@version`.
    fn plan_parts(&self) -> (Option<&str>, Option<&str>) {
        match self.plan.as_deref().map(|p| p.rsplit_once('@')) {
            Some(Some((id, version))) => (Some(id), Some(version)),
            Some(None) => (self.plan.as_deref(), None),
            None => (None, None),
        }
    }
}

/// The flattened context columns: column name → path in `context` (Segment's common fields).
/// Strings as they are, numbers and booleans as their JSON text; objects and arrays are type
/// conflicts.
pub const CONTEXT_COLUMNS: [(&str, &[&str]); 25] = [
    ("context_library_name", &["library", "name"]),
    ("context_library_version", &["library", "version"]),
    ("context_ip", &["ip"]),
    ("context_user_agent", &["userAgent"]),
    ("context_locale", &["locale"]),
    ("context_timezone", &["timezone"]),
    ("context_page_url", &["page", "url"]),
    ("context_page_path", &["page", "path"]),
    ("context_page_referrer", &["page", "referrer"]),
    ("context_page_title", &["page", "title"]),
    ("context_page_search", &["page", "search"]),
    ("context_os_name", &["os", "name"]),
    ("context_os_version", &["os", "version"]),
    ("context_device_type", &["device", "type"]),
    ("context_device_model", &["device", "model"]),
    ("context_device_manufacturer", &["device", "manufacturer"]),
    ("context_device_id", &["device", "id"]),
    ("context_app_name", &["app", "name"]),
    ("context_app_version", &["app", "version"]),
    ("context_app_build", &["app", "build"]),
    ("context_campaign_name", &["campaign", "name"]),
    ("context_campaign_source", &["campaign", "source"]),
    ("context_campaign_medium", &["campaign", "medium"]),
    ("context_campaign_term", &["campaign", "term"]),
    ("context_campaign_content", &["campaign", "content"]),
];

/// At most this many `prop_*` columns per file (the most frequent keys; the rest stay JSON).
pub const MAX_PROPERTY_COLUMNS: usize = 200;

/// Property keys longer than this stay in the JSON column only.
pub const MAX_PROPERTY_KEY_BYTES: usize = 128;

fn ts_type() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
}

/// The columns every events file has, in order (then `prop_*` columns, by key).
pub fn base_fields() -> Vec<Field> {
    let mut fields = vec![
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
        Field::new("plan_id", DataType::Utf8, true),
        Field::new("plan_version", DataType::Utf8, true),
        Field::new("plan_flags", DataType::Utf8, true),
    ];
    fields.extend(
        CONTEXT_COLUMNS
            .iter()
            .map(|(name, _)| Field::new(*name, DataType::Utf8, true)),
    );
    fields
}

/// An error building the file.
#[derive(Debug, thiserror::Error)]
pub enum EncodeError {
    #[error("arrow: {0}")]
    Arrow(#[from] arrow::error::ArrowError),
    #[error("parquet: {0}")]
    Parquet(#[from] parquet::errors::ParquetError),
}

/// One encoded file.
#[derive(Debug)]
pub struct Encoded {
    pub bytes: Vec<u8>,
    /// Values left out of a typed column because their type differs (kept in the JSON text).
    pub type_conflicts: u64,
}

/// The type of a typed property column. Every JSON number is a DOUBLE, integers included: a
/// key typed BIGINT in one file and DOUBLE in the next would not merge in readers such as
/// Spark (`mergeSchema`); integers beyond 2^53 lose precision in the typed column only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum PropType {
    Bool,
    Float,
    Str,
}

impl PropType {
    fn of(v: &PropVal<'_>) -> Option<Self> {
        match v {
            PropVal::Bool(_) => Some(Self::Bool),
            PropVal::Num(_) => Some(Self::Float),
            PropVal::Str(_) => Some(Self::Str),
            PropVal::Null | PropVal::Composite => None,
        }
    }
}

/// The typed property columns of a file: each top-level key with the type most of its
/// non-null scalar values share (on a tie: string, then number), keyed by the key. Keys
/// holding only objects or arrays, or longer than [`MAX_PROPERTY_KEY_BYTES`], are not typed; at
/// most [`MAX_PROPERTY_COLUMNS`] keys, the most frequent first.
pub fn typed_properties(props: &[Option<Props<'_>>]) -> BTreeMap<String, PropType> {
    let mut seen: BTreeMap<&str, [usize; 3]> = BTreeMap::new();
    for map in props.iter().flatten() {
        for (k, v) in map.iter() {
            if k.len() > MAX_PROPERTY_KEY_BYTES {
                continue;
            }
            if let Some(t) = PropType::of(v) {
                seen.entry(k).or_default()[t as usize] += 1;
            }
        }
    }
    let mut chosen: Vec<(&str, usize, PropType)> = seen
        .into_iter()
        .map(|(k, [b, f, s])| {
            let (t, n) = [
                (PropType::Str, s),
                (PropType::Float, f),
                (PropType::Bool, b),
            ]
            .into_iter()
            // Most values; on a tie the earlier (string, then number) wins.
            .fold(
                (PropType::Str, 0),
                |best, c| if c.1 > best.1 { c } else { best },
            );
            (k, n, t)
        })
        .collect();
    chosen.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    chosen.truncate(MAX_PROPERTY_COLUMNS);
    chosen
        .into_iter()
        .map(|(k, _, t)| (k.to_string(), t))
        .collect()
}

/// The lake column type of a planned property: the plan's type, not the file's values
/// (integers are DOUBLE like every number; objects and arrays stay in the JSON text only).
fn plan_type(kind: PropertyType) -> Option<PropType> {
    match kind {
        PropertyType::String => Some(PropType::Str),
        PropertyType::Number | PropertyType::Integer => Some(PropType::Float),
        PropertyType::Boolean => Some(PropType::Bool),
        PropertyType::Object | PropertyType::Array => None,
    }
}

/// The typed property columns of a file under a tracking plan: every property the plan gives
/// the file's events (a column even when no row has a value, typed by the plan), then the other
/// keys by [`typed_properties`]'s vote, within [`MAX_PROPERTY_COLUMNS`].
pub fn planned_properties(
    plan: &Plan,
    rows: &[Row],
    props: &[Option<Props<'_>>],
) -> BTreeMap<String, PropType> {
    let mut out = BTreeMap::new();
    for r in rows {
        let e = &r.event;
        let shape = match e.kind {
            EventType::Track => e.event.as_deref().and_then(|n| plan.events.get(n)),
            EventType::Page => plan.page.as_ref(),
            EventType::Screen => plan.screen.as_ref(),
            _ => None,
        };
        for name in shape.into_iter().flat_map(|s| s.fields.keys()) {
            if out.contains_key(name) || name.len() > MAX_PROPERTY_KEY_BYTES {
                continue;
            }
            if let Some(t) = plan.property(name).and_then(|p| plan_type(p.def.kind)) {
                out.insert(name.clone(), t);
            }
        }
    }
    let room = MAX_PROPERTY_COLUMNS.saturating_sub(out.len());
    let voted: Vec<(String, PropType)> = typed_properties(props)
        .into_iter()
        .filter(|(k, _)| !out.contains_key(k) && plan.property(k).is_none())
        .take(room)
        .collect();
    out.extend(voted);
    out
}

/// A string column of `rows`.
pub(super) fn strings<'a, T>(rows: &'a [T], f: impl Fn(&'a T) -> Option<&'a str>) -> ArrayRef {
    Arc::new(rows.iter().map(f).collect::<StringArray>())
}

/// A TIMESTAMP (µs, UTC) column of `rows`.
pub(super) fn timestamps<T>(rows: &[T], f: impl Fn(&T) -> Option<i64>) -> ArrayRef {
    Arc::new(
        rows.iter()
            .map(f)
            .collect::<TimestampMicrosecondArray>()
            .with_timezone("UTC"),
    )
}

/// An INT32 column of `rows`.
pub(super) fn int32s<T>(rows: &[T], f: impl Fn(&T) -> Option<i32>) -> ArrayRef {
    Arc::new(rows.iter().map(f).collect::<Int32Array>())
}

/// An INT64 column of `rows`.
pub(super) fn int64s<T>(rows: &[T], f: impl Fn(&T) -> Option<i64>) -> ArrayRef {
    Arc::new(rows.iter().map(f).collect::<Int64Array>())
}

/// One Parquet file of `batch` with the lake's [`writer_properties`].
pub fn write_file(batch: &RecordBatch) -> Result<Vec<u8>, EncodeError> {
    let mut buf = Vec::with_capacity(1 << 16);
    let mut writer = ArrowWriter::try_new(&mut buf, batch.schema(), Some(writer_properties()?))?;
    writer.write(batch)?;
    writer.close()?;
    Ok(buf)
}

/// A context field as text: strings as they are, numbers and booleans as JSON text.
fn context_text<'a>(v: Option<&PropVal<'a>>, conflicts: &mut u64) -> Option<Cow<'a, str>> {
    match v? {
        PropVal::Str(s) => Some(s.clone()),
        PropVal::Num(n) => Some(Cow::Owned(n.to_string())),
        PropVal::Bool(b) => Some(Cow::Borrowed(if *b { "true" } else { "false" })),
        PropVal::Null => None,
        PropVal::Composite => {
            *conflicts += 1;
            None
        }
    }
}

fn property_column<'a>(
    props: &[Option<Props<'a>>],
    key: &str,
    t: PropType,
    conflicts: &mut u64,
) -> ArrayRef {
    let mut value = |m: &Option<Props<'a>>| -> Option<PropVal<'a>> {
        let v = m.as_ref()?.get(key)?;
        match PropType::of(v) {
            Some(vt) if vt == t => Some(v.clone()),
            None if *v == PropVal::Null => None,
            _ => {
                *conflicts += 1;
                None
            }
        }
    };
    match t {
        PropType::Str => {
            let values: Vec<Option<Cow<'a, str>>> = props
                .iter()
                .map(|m| match value(m) {
                    Some(PropVal::Str(s)) => Some(s),
                    _ => None,
                })
                .collect();
            Arc::new(values.iter().map(Option::as_deref).collect::<StringArray>())
        }
        PropType::Float => Arc::new(
            props
                .iter()
                .map(|m| match value(m) {
                    Some(PropVal::Num(n)) => n.as_f64(),
                    _ => None,
                })
                .collect::<Float64Array>(),
        ),
        PropType::Bool => Arc::new(
            props
                .iter()
                .map(|m| match value(m) {
                    Some(PropVal::Bool(b)) => Some(b),
                    _ => None,
                })
                .collect::<BooleanArray>(),
        ),
    }
}

/// The writer settings of every lake file: zstd, dictionary encoding, page-level statistics,
/// row groups of at most 128 Ki rows.
pub fn writer_properties() -> Result<WriterProperties, EncodeError> {
    Ok(WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::try_new(3)?))
        .set_dictionary_enabled(true)
        .set_statistics_enabled(EnabledStatistics::Page)
        .set_max_row_group_row_count(Some(128 * 1024))
        .build())
}

/// Encodes `rows` (sorted in place by event time) into Parquet bytes; with a tracking plan,
/// planned properties get the plan's column types ([`planned_properties`]).
pub fn encode(rows: &mut [Row], plan: Option<&Plan>) -> Result<Encoded, EncodeError> {
    let (batch, type_conflicts) = build_batch(rows, plan)?;
    Ok(Encoded {
        bytes: write_file(&batch)?,
        type_conflicts,
    })
}

/// The Arrow batch of `rows` (sorted in place by event time) and its type conflicts: the
/// first half of [`encode`], public for the encoding benchmark.
pub fn build_batch(
    rows: &mut [Row],
    plan: Option<&Plan>,
) -> Result<(RecordBatch, u64), EncodeError> {
    rows.sort_by_key(|r| (r.event.timestamp, r.clean_partition, r.clean_offset));
    let mut conflicts = 0u64;
    let mut columns: Vec<ArrayRef> = vec![
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
        int32s(rows, |r| Some(r.source_partition)),
        int64s(rows, |r| Some(r.source_offset)),
        int32s(rows, |r| Some(r.clean_partition)),
        int64s(rows, |r| Some(r.clean_offset)),
        strings(rows, |r| r.plan_parts().0),
        strings(rows, |r| r.plan_parts().1),
        strings(rows, |r| r.plan_flags.as_deref()),
    ];
    let contexts: Vec<Option<Context<'_>>> = rows
        .iter()
        .map(|r| Context::parse(&r.event.context))
        .collect();
    for (_, path) in CONTEXT_COLUMNS {
        let texts: Vec<Option<Cow<'_, str>>> = contexts
            .iter()
            .map(|c| context_text(c.as_ref().and_then(|c| c.get(path)), &mut conflicts))
            .collect();
        columns.push(Arc::new(
            texts.iter().map(Option::as_deref).collect::<StringArray>(),
        ));
    }
    drop(contexts);
    let props: Vec<Option<Props<'_>>> = rows
        .iter()
        .map(|r| Props::parse(&r.event.properties))
        .collect();
    let typed = match plan {
        Some(plan) => planned_properties(plan, rows, &props),
        None => typed_properties(&props),
    };
    let mut fields = base_fields();
    for (key, t) in &typed {
        let dt = match t {
            PropType::Str => DataType::Utf8,
            PropType::Float => DataType::Float64,
            PropType::Bool => DataType::Boolean,
        };
        fields.push(Field::new(format!("prop_{key}"), dt, true));
        columns.push(property_column(&props, key, *t, &mut conflicts));
    }
    let schema = Arc::new(Schema::new(fields));
    Ok((RecordBatch::try_new(schema, columns)?, conflicts))
}

#[cfg(test)]
mod tests {
    use super::*;
    use northstar_schemas::EventType;
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    use serde_json::Value;

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
            plan: None,
            plan_flags: None,
        }
    }

    fn read(bytes: Vec<u8>) -> RecordBatch {
        let reader =
            ParquetRecordBatchReaderBuilder::try_new(bytes::Bytes::from(bytes)).expect("reader");
        let batches: Vec<RecordBatch> = reader
            .build()
            .expect("build")
            .collect::<Result<_, _>>()
            .expect("read");
        arrow::compute::concat_batches(&batches[0].schema(), &batches).expect("concat")
    }

    #[test]
    fn the_plan_a_row_was_checked_against_is_kept_in_columns() {
        let stamp: Arc<str> = Arc::from("northstar-demo@1.2.0");
        let mut rows: Vec<Row> = (0..3)
            .map(|i| row(&format!("m{i}"), 1_000 + i, i))
            .collect();
        rows[0].plan = Some(stamp.clone());
        rows[1].plan = Some(stamp);
        rows[1].plan_flags = Some("unknown_property:properties.coupon".into());
        let batch = read(encode(&mut rows, None).expect("encode").bytes);
        let texts = |name: &str| -> Vec<Option<String>> {
            let c = batch
                .column_by_name(name)
                .unwrap_or_else(|| panic!("column {name}"));
            let a = c.as_any().downcast_ref::<StringArray>().expect("strings");
            a.iter().map(|v| v.map(str::to_string)).collect()
        };
        let demo = Some("northstar-demo".to_string());
        assert_eq!(texts("plan_id"), vec![demo.clone(), demo, None]);
        assert_eq!(
            texts("plan_version"),
            vec![Some("1.2.0".into()), Some("1.2.0".into()), None]
        );
        let flag = Some("unknown_property:properties.coupon".to_string());
        assert_eq!(texts("plan_flags"), vec![None, flag, None]);
    }

    #[test]
    fn context_is_flattened_and_stable_properties_are_typed() {
        let mut rows: Vec<Row> = [
            (r#"{"plan":"pro","revenue":12.5,"n":1,"ok":true,"nested":{"a":1},"mixed":"x"}"#,
             r#"{"os":{"name":"iOS","version":17},"page":{"url":"https://a/b"},"ip":"1.2.3.4"}"#),
            (r#"{"plan":"free","revenue":3,"n":2,"ok":false,"mixed":5}"#,
             r#"{"os":{"name":"Android"},"library":{"name":"analytics-python","version":"2.3"}}"#),
            (r#"{"plan":7,"revenue":null,"n":3,"mixed":"y"}"#, r#"{"os":"not an object"}"#),
            ("not json", "{}"),
        ]
        .iter()
        .enumerate()
        .map(|(i, (props, ctx))| {
            let mut r = row(&format!("m{i}"), 1_000 + i as i64, i as i64);
            r.event.properties = props.to_string();
            r.event.context = ctx.to_string();
            r
        })
        .collect();
        let encoded = encode(&mut rows, None).expect("encode");
        // plan=7 (a number among strings) and mixed=5: left out of their typed columns.
        assert_eq!(encoded.type_conflicts, 2);
        let batch = read(encoded.bytes);
        let schema = batch.schema();
        let col = |name: &str| {
            batch
                .column_by_name(name)
                .unwrap_or_else(|| panic!("column {name}"))
                .clone()
        };
        let texts = |name: &str| -> Vec<Option<String>> {
            let c = col(name);
            let a = c.as_any().downcast_ref::<StringArray>().expect("strings");
            a.iter().map(|v| v.map(str::to_string)).collect()
        };
        assert_eq!(
            texts("context_os_name"),
            vec![Some("iOS".into()), Some("Android".into()), None, None]
        );
        assert_eq!(texts("context_os_version")[0].as_deref(), Some("17"));
        assert_eq!(texts("context_page_url")[0].as_deref(), Some("https://a/b"));
        assert_eq!(texts("context_library_version")[1].as_deref(), Some("2.3"));
        assert_eq!(
            texts("prop_plan"),
            vec![Some("pro".into()), Some("free".into()), None, None]
        );
        assert_eq!(
            texts("prop_mixed"),
            vec![Some("x".into()), None, Some("y".into()), None]
        );
        assert_eq!(
            schema
                .field_with_name("prop_revenue")
                .expect("revenue")
                .data_type(),
            &DataType::Float64
        );
        let revenue = col("prop_revenue");
        let revenue = revenue
            .as_any()
            .downcast_ref::<Float64Array>()
            .expect("f64");
        assert_eq!(
            revenue.iter().collect::<Vec<_>>(),
            vec![Some(12.5), Some(3.0), None, None]
        );
        assert_eq!(
            schema.field_with_name("prop_n").expect("n").data_type(),
            &DataType::Float64,
            "integers are doubles too"
        );
        assert_eq!(
            schema.field_with_name("prop_ok").expect("ok").data_type(),
            &DataType::Boolean
        );
        assert!(
            schema.field_with_name("prop_nested").is_err(),
            "objects stay JSON"
        );
        // Everything is still in the JSON column, the invalid text included.
        assert_eq!(texts("properties")[3].as_deref(), Some("not json"));
    }

    #[test]
    fn property_columns_are_capped_by_frequency() {
        let texts: Vec<String> = (0..(MAX_PROPERTY_COLUMNS + 50))
            .map(|i| {
                let mut m = serde_json::Map::new();
                m.insert(format!("k{i:04}"), Value::from(i));
                m.insert("common".into(), Value::from("x"));
                m.insert("x".repeat(MAX_PROPERTY_KEY_BYTES + 1), Value::from(1));
                Value::Object(m).to_string()
            })
            .collect();
        let props: Vec<Option<Props<'_>>> = texts.iter().map(|t| Props::parse(t)).collect();
        let typed = typed_properties(&props);
        assert_eq!(typed.len(), MAX_PROPERTY_COLUMNS);
        assert_eq!(
            typed.get("common"),
            Some(&PropType::Str),
            "the most frequent is kept"
        );
        assert!(typed.keys().all(|k| k.len() <= MAX_PROPERTY_KEY_BYTES));
    }

    #[test]
    fn planned_properties_get_the_plans_types_in_every_file() {
        let plan = Plan::parse(include_str!("../../../deploy/tracking-plan.yaml")).expect("plan");
        let file = |props: &[&str]| -> arrow::datatypes::SchemaRef {
            let mut rows: Vec<Row> = props
                .iter()
                .enumerate()
                .map(|(i, p)| {
                    let mut r = row(&format!("m{i}"), 1_000 + i as i64, i as i64);
                    r.event.event = Some("Upgraded Plan".into());
                    r.event.properties = p.to_string();
                    r
                })
                .collect();
            read(encode(&mut rows, Some(&plan)).expect("encode").bytes).schema()
        };
        // Before revenue was ever sent, a majority of strings, and an unplanned key.
        let before = file(&[r#"{"plan":"pro"}"#, r#"{"plan":"free","note":"x"}"#]);
        let after = file(&[
            r#"{"plan":"pro","revenue":"12,50"}"#,
            r#"{"plan":"team","revenue":19}"#,
            r#"{"revenue":"9"}"#,
        ]);
        for schema in [&before, &after] {
            let t = |k: &str| {
                schema
                    .field_with_name(k)
                    .map(|f| f.data_type().clone())
                    .ok()
            };
            assert_eq!(
                t("prop_revenue"),
                Some(DataType::Float64),
                "the plan's number, in every file"
            );
            assert_eq!(t("prop_plan"), Some(DataType::Utf8));
        }
        assert_eq!(
            before
                .field_with_name("prop_note")
                .map(|f| f.data_type().clone())
                .ok(),
            Some(DataType::Utf8),
            "unplanned keys by vote"
        );
        let mut rows = vec![row("a", 1, 0)];
        rows[0].event.event = Some("Upgraded Plan".into());
        rows[0].event.properties = r#"{"plan":"pro","revenue":"12,50"}"#.into();
        assert_eq!(
            encode(&mut rows, Some(&plan))
                .expect("encode")
                .type_conflicts,
            1,
            "a string revenue is a conflict, kept in the JSON"
        );
    }

    #[test]
    fn writes_sorted_zstd_rows_that_read_back() {
        let mut rows = vec![row("b", 2_000, 1), row("a", 1_000, 0), row("c", 3_000, 2)];
        let bytes = encode(&mut rows, None).expect("encode").bytes;
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
