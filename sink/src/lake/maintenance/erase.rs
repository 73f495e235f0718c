//! `lake-admin erase`: removes every event of given users (by `userId` or `anonymousId`) from
//! the lake, by rewriting the files that hold them, and leaves an audit record.
//!
//! Contract: in the events table, a row is the subject's when its `user_id` is one of the
//! given user ids or its `anonymous_id` one of the given anonymous ids. In the dead-letter
//! table, when the rejected payload is JSON whose `userId`/`anonymousId` (top level, or of an
//! element of its `batch`) is one of them, when its Kafka key is one of them, or — payloads
//! that are not JSON — when its bytes hold one of them as an Avro or a JSON-quoted string: a
//! rejected record cannot be trusted to be well-formed, so any such trace of the id counts. Each affected file is replaced atomically
//! by the same file without those rows (deleted when no row is left); no other row changes.
//! The audit record `_audit/erasure/<time>-<hash>.json` lists every file rewritten or deleted
//! and the rows removed, the subjects as SHA-256 hashes (the ids themselves are not kept); it is
//! rewritten before and after each file (action `rewriting`, then `rewritten`), status
//! `started` until the run completes: a file still `rewriting` in a `started` record was being
//! changed when the run stopped, and the next run's record shows what was left. Files of flushes the
//! sink has not finished hold rows a repeated flush would write back: they are erased too and
//! listed as `unfinished`, and the run asks to be repeated once the sink has caught up.

use std::collections::HashSet;

use arrow::array::{Array, BinaryArray, BooleanArray, RecordBatch, StringArray};
use arrow::compute::filter_record_batch;
use chrono::Utc;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use super::{Lake, Progress};
use crate::lake::Table;

/// Options of `erase`.
#[derive(Debug, Clone)]
pub struct EraseOptions {
    pub user_ids: Vec<String>,
    pub anonymous_ids: Vec<String>,
    /// Report the affected files without rewriting them.
    pub dry_run: bool,
}

/// The ids to erase.
struct Subject<'a> {
    users: HashSet<&'a str>,
    anons: HashSet<&'a str>,
}

impl Subject<'_> {
    fn any(&self) -> impl Iterator<Item = &str> {
        self.users.iter().chain(self.anons.iter()).copied()
    }

    fn matches_json(&self, v: &Value) -> bool {
        let one = |o: &Value| {
            o.get("userId")
                .and_then(Value::as_str)
                .is_some_and(|u| self.users.contains(u))
                || o.get("anonymousId")
                    .and_then(Value::as_str)
                    .is_some_and(|a| self.anons.contains(a))
        };
        one(v)
            || v.get("batch")
                .and_then(Value::as_array)
                .is_some_and(|b| b.iter().any(one))
    }

    /// Whether a payload that is not JSON holds one of the ids as a string: Avro-encoded
    /// (zig-zag length, then the bytes — the Confluent-framed events of the raw topic) or
    /// JSON-quoted (truncated or malformed JSON). A bare substring is not enough: `u1` would
    /// match `u10`.
    fn in_bytes(&self, bytes: &[u8]) -> bool {
        self.any().filter(|id| !id.is_empty()).any(|id| {
            let mut avro = avro_len(id.len());
            avro.extend_from_slice(id.as_bytes());
            let quoted = format!("\"{id}\"");
            contains(bytes, &avro) || contains(bytes, quoted.as_bytes())
        })
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// The Avro encoding of a string's length (zig-zag varint).
fn avro_len(len: usize) -> Vec<u8> {
    let mut n = (len as u64) << 1;
    let mut out = Vec::with_capacity(2);
    loop {
        let byte = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            out.push(byte);
            return out;
        }
        out.push(byte | 0x80);
    }
}

fn strings<'a>(batch: &'a RecordBatch, column: &str) -> Option<&'a StringArray> {
    batch.column_by_name(column)?.as_any().downcast_ref()
}

/// Rows of the events table that belong to the subject.
fn event_rows(batch: &RecordBatch, s: &Subject<'_>) -> BooleanArray {
    let users = strings(batch, "user_id");
    let anons = strings(batch, "anonymous_id");
    let hit = |col: Option<&StringArray>, ids: &HashSet<&str>, i: usize| {
        col.is_some_and(|c| c.is_valid(i) && ids.contains(c.value(i)))
    };
    (0..batch.num_rows())
        .map(|i| Some(hit(users, &s.users, i) || hit(anons, &s.anons, i)))
        .collect()
}

/// Rows of the dead-letter table that carry the subject's ids.
fn dead_letter_rows(batch: &RecordBatch, s: &Subject<'_>) -> BooleanArray {
    let text = strings(batch, "payload_text");
    let key = strings(batch, "key");
    let payload = batch
        .column_by_name("payload")
        .and_then(|c| c.as_any().downcast_ref::<BinaryArray>());
    (0..batch.num_rows())
        .map(|i| {
            let keyed = key.is_some_and(|k| {
                k.is_valid(i) && (s.users.contains(k.value(i)) || s.anons.contains(k.value(i)))
            });
            let parsed = text
                .filter(|t| t.is_valid(i))
                .and_then(|t| serde_json::from_str::<Value>(t.value(i)).ok());
            let in_payload = match parsed {
                Some(v) => s.matches_json(&v),
                None => payload.is_some_and(|p| p.is_valid(i) && s.in_bytes(p.value(i))),
            };
            Some(keyed || in_payload)
        })
        .collect()
}

/// The columns [`event_rows`] and [`dead_letter_rows`] read.
fn match_columns(table: Table) -> &'static [&'static str] {
    match table {
        Table::Events => &["user_id", "anonymous_id"],
        Table::DeadLetters => &["key", "payload", "payload_text"],
    }
}

fn sha256(field: &str, id: &str) -> Value {
    let digest = Sha256::digest(id.as_bytes());
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    json!({"field": field, "sha256": hex})
}

pub(super) async fn run(lake: &Lake, o: &EraseOptions) -> anyhow::Result<Value> {
    anyhow::ensure!(
        !o.user_ids.is_empty() || !o.anonymous_ids.is_empty(),
        "erase needs at least one --user-id or --anonymous-id"
    );
    let subject = Subject {
        users: o.user_ids.iter().map(String::as_str).collect(),
        anons: o.anonymous_ids.iter().map(String::as_str).collect(),
    };
    let started = Utc::now();
    let subjects: Vec<Value> = o
        .user_ids
        .iter()
        .map(|u| sha256("user_id", u))
        .chain(o.anonymous_ids.iter().map(|a| sha256("anonymous_id", a)))
        .collect();
    let tag = subjects
        .first()
        .and_then(|s| s["sha256"].as_str())
        .map(|h| h[..12].to_string())
        .unwrap_or_default();
    let audit = format!(
        "_audit/erasure/{}-{tag}.json",
        started.format("%Y%m%dT%H%M%S%.6fZ")
    );
    let mut files: Vec<Value> = Vec::new();
    let (mut scanned, mut rows_removed, mut unfinished) = (0u64, 0u64, 0u64);
    let record = |status: &str, files: &[Value], scanned: u64, removed: u64, unfinished: u64| {
        json!({
            "command": "erase",
            "status": status,
            "dry_run": o.dry_run,
            "started_at": started.to_rfc3339(),
            "subjects": subjects,
            "files_scanned": scanned,
            "files_changed": files.len(),
            "rows_removed": removed,
            "unfinished_files": unfinished,
            "rerun_needed": unfinished > 0,
            "files": files,
        })
    };
    for table in [Table::Events, Table::DeadLetters] {
        let all = lake.files(table).await?;
        let mut progress = Progress::new(
            match table {
                Table::Events => "erase: events files",
                Table::DeadLetters => "erase: dead-letter files",
            },
            all.len(),
        );
        for (i, f) in all.iter().enumerate() {
            scanned += 1;
            // Only the columns the match looks at are decoded; a file holding the subject is
            // then decoded whole to be rewritten.
            let bytes = lake.fetch(&f.key).await?;
            let scan = |batch: &RecordBatch| match table {
                Table::Events => event_rows(batch, &subject),
                Table::DeadLetters => dead_letter_rows(batch, &subject),
            };
            let ids = super::decode(bytes.clone(), &f.key, Some(match_columns(table))).await?;
            if scan(&ids).true_count() == 0 {
                progress.step(i + 1, || {
                    format!("{} files changed, {rows_removed} rows removed", files.len())
                });
                continue;
            }
            let batch = super::decode(bytes, &f.key, None).await?;
            let mask = scan(&batch);
            let hits = mask.true_count();
            if hits > 0 {
                let is_final = lake.is_final(f);
                let keep = arrow::compute::not(&mask)?;
                let rest = filter_record_batch(&batch, &keep)?;
                let delete = rest.num_rows() == 0;
                rows_removed += hits as u64;
                unfinished += u64::from(!is_final);
                files.push(json!({
                    "key": f.key,
                    "rows_before": batch.num_rows(),
                    "rows_removed": hits,
                    "action": match (o.dry_run, delete) {
                        (true, _) => "none (dry run)",
                        (false, true) => "deleting",
                        (false, false) => "rewriting",
                    },
                    "unfinished_flush": !is_final,
                }));
                if !o.dry_run {
                    // The intent first: a crash between it and the change leaves the file
                    // listed as "rewriting"/"deleting" in a record still "started".
                    let r = record("started", &files, scanned, rows_removed, unfinished);
                    lake.root
                        .put_durable(&audit, serde_json::to_vec_pretty(&r)?)
                        .await?;
                    if delete {
                        lake.remove(&f.key).await?;
                    } else {
                        lake.write(&f.key, rest).await?;
                    }
                    if let Some(last) = files.last_mut() {
                        last["action"] = if delete { "deleted" } else { "rewritten" }.into();
                    }
                    let r = record("started", &files, scanned, rows_removed, unfinished);
                    lake.root
                        .put_durable(&audit, serde_json::to_vec_pretty(&r)?)
                        .await?;
                }
            }
            progress.step(i + 1, || {
                format!("{} files changed, {rows_removed} rows removed", files.len())
            });
        }
    }
    let mut out = record("complete", &files, scanned, rows_removed, unfinished);
    if !o.dry_run {
        lake.root
            .put_durable(&audit, serde_json::to_vec_pretty(&out)?)
            .await?;
        out["audit_record"] = audit.into();
    }
    if unfinished > 0 {
        eprintln!(
            "{unfinished} of the files were written by flushes the lake sink has not finished; \
             a repeated flush would write the rows back: run erase again once the sink has caught up"
        );
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    use arrow::array::ArrayRef;
    use arrow::datatypes::{DataType, Field, Schema};

    fn subject<'a>(users: &[&'a str], anons: &[&'a str]) -> Subject<'a> {
        Subject {
            users: users.iter().copied().collect(),
            anons: anons.iter().copied().collect(),
        }
    }

    #[test]
    fn events_match_on_user_or_anonymous_id() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("user_id", DataType::Utf8, true),
            Field::new("anonymous_id", DataType::Utf8, true),
        ]));
        let users: ArrayRef = Arc::new(StringArray::from(vec![
            Some("u1"),
            None,
            Some("u2"),
            Some("a1"),
        ]));
        let anons: ArrayRef = Arc::new(StringArray::from(vec![
            Some("x"),
            Some("a1"),
            None,
            Some("y"),
        ]));
        let batch = RecordBatch::try_new(schema, vec![users, anons]).expect("batch");
        let mask = event_rows(&batch, &subject(&["u1"], &["a1"]));
        // "a1" as a user id is someone else's.
        assert_eq!(mask, BooleanArray::from(vec![true, true, false, false]));
    }

    #[test]
    fn dead_letters_match_on_json_ids_key_or_bytes() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("key", DataType::Utf8, true),
            Field::new("payload", DataType::Binary, true),
            Field::new("payload_text", DataType::Utf8, true),
        ]));
        let texts = [
            Some(r#"{"userId":"u1","event":""}"#),
            Some(r#"{"batch":[{"anonymousId":"a1"}]}"#),
            Some(r#"{"userId":"u10","properties":{"note":"u1"}}"#),
            None,
            Some("not json u1"),
            None,
            None,
            Some(r#"{"userId":"u1","ev"#),
        ];
        let payloads: Vec<Option<&[u8]>> = vec![
            texts[0].map(str::as_bytes),
            texts[1].map(str::as_bytes),
            texts[2].map(str::as_bytes),
            // Avro: "u1" is length 2, zig-zag 4.
            Some(&[0, 1, 2, 4, b'u', b'1', 9]),
            texts[4].map(str::as_bytes),
            Some(&[0, 1]),
            // Avro "u10" (length 3, zig-zag 6) is someone else.
            Some(&[0, 6, b'u', b'1', b'0']),
            // Truncated JSON.
            Some(br#"{"userId":"u1","ev"#),
        ];
        let keys = vec![None, None, None, None, None, Some("u1"), None, None];
        let batch = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(StringArray::from(keys)),
                Arc::new(BinaryArray::from(payloads)),
                Arc::new(StringArray::from(texts.to_vec())),
            ],
        )
        .expect("batch");
        let mask = dead_letter_rows(&batch, &subject(&["u1"], &["a1"]));
        // JSON is matched by field (u10 with "u1" in a property is not the subject), other
        // payloads by Avro or quoted strings, the key exactly.
        assert_eq!(
            mask,
            BooleanArray::from(vec![true, true, false, true, false, true, false, true])
        );
        assert_eq!(avro_len(2), [4]);
        assert_eq!(avro_len(64), [0x80, 0x01]);
        assert_eq!(
            sha256("user_id", "u1"),
            json!({"field": "user_id", "sha256": "bb82030dbc2bcaba32a90bf2e207a84a856fc5f033b77c480836ab6f77f40f19"})
        );
    }
}
