//! Row-level operations on lake files, without IO: merging several files' rows into one batch
//! (compaction) and dropping rows (erasure).
//!
//! Contract: [`merge`] returns exactly the rows of its inputs, sorted the way the sink sorts a
//! file (event time, then source position; dead letters by dead-lettering time, then DLQ
//! position). Columns are the union of the inputs' columns, each with its type in the inputs.
//! A derived `prop_*` column whose type differs between inputs takes the type most rows have;
//! the other files' values of it are left out and counted as type conflicts (they stay in the
//! `properties` JSON column, as in a file the sink writes). Any other column with differing
//! types is an error: those files were not written by the sink.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::array::{new_null_array, Array, ArrayRef, RecordBatch};
use arrow::compute::{concat_batches, lexsort_to_indices, take_record_batch, SortColumn};
use arrow::datatypes::{DataType, Field, Schema};
use arrow::error::ArrowError;

/// Most typed property columns a merged file keeps (as the sink: the most filled ones).
pub const MAX_PROPERTY_COLUMNS: usize = 200;

/// Rows that cannot be merged.
#[derive(Debug, thiserror::Error)]
pub enum MergeError {
    #[error(
        "column {column} is {a} in one file and {b} in another; only prop_* columns may differ"
    )]
    Incompatible {
        column: String,
        a: DataType,
        b: DataType,
    },
    #[error(transparent)]
    Arrow(#[from] ArrowError),
}

/// Merged rows and how many property values had to be left out of their typed column.
#[derive(Debug)]
pub struct Merged {
    pub batch: RecordBatch,
    pub type_conflicts: u64,
}

/// The columns a table's files are sorted by, in order, among those `schema` has.
fn sort_columns(schema: &Schema) -> Vec<&'static str> {
    const EVENTS: [&str; 3] = ["timestamp", "source_partition", "source_offset"];
    const DEAD: [&str; 3] = ["dead_lettered_at", "dlq_partition", "dlq_offset"];
    let cols = if schema.field_with_name("timestamp").is_ok() {
        EVENTS
    } else {
        DEAD
    };
    cols.into_iter()
        .filter(|c| schema.field_with_name(c).is_ok())
        .collect()
}

/// Merges `batches` (the rows of several files of one table) into one sorted batch.
pub fn merge(batches: &[RecordBatch]) -> Result<Merged, MergeError> {
    // Column name → (first position seen, type → rows having it, non-null values).
    struct Seen {
        order: usize,
        types: BTreeMap<String, (DataType, usize)>,
        filled: usize,
    }
    let mut seen: BTreeMap<String, Seen> = BTreeMap::new();
    for batch in batches {
        for (i, field) in batch.schema().fields().iter().enumerate() {
            let n = seen.len();
            let s = seen.entry(field.name().clone()).or_insert(Seen {
                order: n,
                types: BTreeMap::new(),
                filled: 0,
            });
            let t = s
                .types
                .entry(field.data_type().to_string())
                .or_insert((field.data_type().clone(), 0));
            t.1 += batch.num_rows();
            s.filled += batch.num_rows() - batch.column(i).null_count();
        }
    }
    // The type of each column: the only one, or for a property the one most rows have.
    let mut columns: Vec<(String, usize, usize, DataType)> = Vec::new();
    for (name, s) in &seen {
        let mut types: Vec<&(DataType, usize)> = s.types.values().collect();
        if types.len() > 1 && !name.starts_with("prop_") {
            return Err(MergeError::Incompatible {
                column: name.clone(),
                a: types[0].0.clone(),
                b: types[1].0.clone(),
            });
        }
        types.sort_by_key(|(_, rows)| std::cmp::Reverse(*rows));
        columns.push((name.clone(), s.order, s.filled, types[0].0.clone()));
    }
    // At most MAX_PROPERTY_COLUMNS typed properties: the most filled.
    let mut props: Vec<&(String, usize, usize, DataType)> = columns
        .iter()
        .filter(|c| c.0.starts_with("prop_"))
        .collect();
    props.sort_by_key(|c| (std::cmp::Reverse(c.2), c.0.clone()));
    let dropped: Vec<String> = props
        .iter()
        .skip(MAX_PROPERTY_COLUMNS)
        .map(|c| c.0.clone())
        .collect();
    columns.retain(|c| !dropped.contains(&c.0));
    // Fixed columns in the order the files have them, then properties by name.
    columns.sort_by(|a, b| {
        (
            a.0.starts_with("prop_"),
            a.0.starts_with("prop_").then(|| a.0.clone()),
            a.1,
        )
            .cmp(&(
                b.0.starts_with("prop_"),
                b.0.starts_with("prop_").then(|| b.0.clone()),
                b.1,
            ))
    });
    let schema = Arc::new(Schema::new(
        columns
            .iter()
            .map(|(name, _, _, t)| {
                let nullable = batches.iter().all(|b| {
                    b.schema()
                        .field_with_name(name)
                        .map_or(true, |f| f.is_nullable())
                }) || batches
                    .iter()
                    .any(|b| b.schema().field_with_name(name).is_err());
                Field::new(name, t.clone(), nullable)
            })
            .collect::<Vec<_>>(),
    ));
    let mut conflicts = 0u64;
    let mut aligned = Vec::with_capacity(batches.len());
    for batch in batches {
        let rows = batch.num_rows();
        let arrays: Vec<ArrayRef> = schema
            .fields()
            .iter()
            .map(|f| match batch.column_by_name(f.name()) {
                Some(a) if a.data_type() == f.data_type() => a.clone(),
                Some(a) => {
                    conflicts += (a.len() - a.null_count()) as u64;
                    new_null_array(f.data_type(), rows)
                }
                None => new_null_array(f.data_type(), rows),
            })
            .collect();
        aligned.push(RecordBatch::try_new(schema.clone(), arrays)?);
    }
    let all = concat_batches(&schema, &aligned)?;
    Ok(Merged {
        batch: sort(&all)?,
        type_conflicts: conflicts,
    })
}

/// `batch` sorted the way the sink sorts a file.
pub fn sort(batch: &RecordBatch) -> Result<RecordBatch, ArrowError> {
    let keys: Vec<SortColumn> = sort_columns(&batch.schema())
        .into_iter()
        .filter_map(|c| batch.column_by_name(c))
        .map(|values| SortColumn {
            values: values.clone(),
            options: None,
        })
        .collect();
    if keys.is_empty() || batch.num_rows() < 2 {
        return Ok(batch.clone());
    }
    let indices = lexsort_to_indices(&keys, None)?;
    take_record_batch(batch, &indices)
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Float64Array, Int64Array, StringArray, TimestampMicrosecondArray};
    use arrow::datatypes::TimeUnit;

    fn ts() -> DataType {
        DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
    }

    fn file(
        ids: &[&str],
        times: &[i64],
        offsets: &[i64],
        prop: Option<(&str, ArrayRef)>,
    ) -> RecordBatch {
        let mut fields = vec![
            Field::new("message_id", DataType::Utf8, false),
            Field::new("timestamp", ts(), true),
            Field::new("source_offset", DataType::Int64, true),
        ];
        let mut cols: Vec<ArrayRef> = vec![
            Arc::new(StringArray::from(ids.to_vec())),
            Arc::new(TimestampMicrosecondArray::from(times.to_vec()).with_timezone("UTC")),
            Arc::new(Int64Array::from(offsets.to_vec())),
        ];
        if let Some((name, values)) = prop {
            fields.push(Field::new(name, values.data_type().clone(), true));
            cols.push(values);
        }
        RecordBatch::try_new(Arc::new(Schema::new(fields)), cols).expect("batch")
    }

    fn ids(b: &RecordBatch) -> Vec<String> {
        let c = b.column_by_name("message_id").expect("ids");
        let c = c.as_any().downcast_ref::<StringArray>().expect("strings");
        (0..c.len()).map(|i| c.value(i).to_string()).collect()
    }

    #[test]
    fn merges_every_row_sorted_with_the_union_of_columns() {
        let a = file(
            &["a1", "a2"],
            &[30, 10],
            &[1, 2],
            Some((
                "prop_plan",
                Arc::new(StringArray::from(vec![Some("pro"), None])),
            )),
        );
        let b = file(&["b1"], &[20], &[7], None);
        let c = file(
            &["c1", "c2"],
            &[10, 40],
            &[1, 3],
            Some(("prop_revenue", Arc::new(Float64Array::from(vec![1.5, 2.0])))),
        );
        let m = merge(&[a, b, c]).expect("merge");
        assert_eq!(m.type_conflicts, 0);
        // By event time, then source offset (a2 and c1 tie at 10).
        assert_eq!(ids(&m.batch), ["c1", "a2", "b1", "a1", "c2"]);
        let names: Vec<String> = m
            .batch
            .schema()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect();
        assert_eq!(
            names,
            [
                "message_id",
                "timestamp",
                "source_offset",
                "prop_plan",
                "prop_revenue"
            ]
        );
        let plan = m.batch.column_by_name("prop_plan").expect("plan");
        assert_eq!(plan.null_count(), 4, "only a1 has a plan");
        assert_eq!(
            m.batch
                .schema()
                .field_with_name("timestamp")
                .expect("ts")
                .data_type(),
            &ts()
        );
    }

    #[test]
    fn a_property_whose_type_differs_takes_the_majority_type() {
        let a = file(
            &["a1", "a2"],
            &[1, 2],
            &[1, 2],
            Some((
                "prop_x",
                Arc::new(Float64Array::from(vec![Some(1.0), None])),
            )),
        );
        let b = file(
            &["b1", "b2", "b3"],
            &[3, 4, 5],
            &[3, 4, 5],
            Some(("prop_x", Arc::new(StringArray::from(vec!["p", "q", "r"])))),
        );
        let m = merge(&[a, b]).expect("merge");
        assert_eq!(m.batch.num_rows(), 5);
        let x = m.batch.column_by_name("prop_x").expect("x");
        assert_eq!(
            x.data_type(),
            &DataType::Utf8,
            "3 rows of strings against 2 of numbers"
        );
        assert_eq!(m.type_conflicts, 1, "the one non-null number");
        assert_eq!(x.null_count(), 2);
    }

    #[test]
    fn other_columns_must_agree() {
        let a = file(&["a"], &[1], &[1], None);
        let schema = Schema::new(vec![Field::new("timestamp", DataType::Int64, true)]);
        let b = RecordBatch::try_new(Arc::new(schema), vec![Arc::new(Int64Array::from(vec![1]))])
            .expect("batch");
        assert!(
            matches!(merge(&[a, b]), Err(MergeError::Incompatible { column, .. }) if column == "timestamp")
        );
    }
}
