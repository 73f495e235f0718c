//! Which rows of the lake belong to the subject of an erasure, without IO.
//!
//! Contract: in the events table, a row is the subject's when its `user_id` is one of the
//! person's user ids (those asked for and those an alias joined), its `anonymous_id` one of the
//! anonymous ids asked for, or one of the anonymous ids linked to the person on a row with no
//! user id or one of the person's. In the dead-letter table, a letter with a failure record and
//! ids is matched by its typed `user_id`/`anonymous_id` columns the same way; a letter without
//! (written before failure records, or not decodable) when its Kafka key is one of the ids, its
//! JSON payload's `userId`/`anonymousId` (top level, or of an element of its `batch`) is, or —
//! payloads that are not JSON — its bytes hold one as an Avro or a JSON-quoted string: a
//! rejected record cannot be trusted to be well-formed, so any such trace of an id counts.

use std::collections::HashSet;

use arrow::array::{Array, BinaryArray, BooleanArray, RecordBatch, StringArray};
use serde_json::Value;

use crate::lake::Table;

/// The ids to erase.
#[derive(Debug, Clone, Default)]
pub struct Subject {
    /// User ids: asked for, and joined by aliases.
    pub users: HashSet<String>,
    /// Anonymous ids asked for: every row of theirs.
    pub anons: HashSet<String>,
    /// Anonymous ids linked to the person: their rows without another user's id.
    pub linked: HashSet<String>,
}

impl Subject {
    fn any(&self) -> impl Iterator<Item = &str> {
        self.users
            .iter()
            .chain(self.anons.iter())
            .chain(self.linked.iter())
            .map(String::as_str)
    }

    fn is_anon(&self, a: &str) -> bool {
        self.anons.contains(a) || self.linked.contains(a)
    }

    /// Whether a row with these ids is the subject's.
    fn owns(&self, user: Option<&str>, anon: Option<&str>) -> bool {
        user.is_some_and(|u| self.users.contains(u))
            || anon.is_some_and(|a| self.anons.contains(a))
            || (anon.is_some_and(|a| self.linked.contains(a))
                && user.is_none_or(|u| self.users.contains(u)))
    }

    fn matches_json(&self, v: &Value) -> bool {
        let one = |o: &Value| {
            let user = o.get("userId").and_then(Value::as_str);
            let anon = o.get("anonymousId").and_then(Value::as_str);
            user.is_some_and(|u| self.users.contains(u)) || anon.is_some_and(|a| self.is_anon(a))
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

fn text(col: Option<&StringArray>, i: usize) -> Option<&str> {
    col.filter(|c| c.is_valid(i)).map(|c| c.value(i))
}

/// Which of the subject's rows a pass takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pass {
    /// All but the rows that link ids to the person (an anonymous id or an alias next to one of
    /// the person's user ids): a run interrupted here finds the same links again.
    KeepLinks,
    /// Every row.
    All,
}

/// Rows of the events table that belong to the subject (in `pass`).
pub fn event_rows(batch: &RecordBatch, s: &Subject, pass: Pass) -> BooleanArray {
    let users = strings(batch, "user_id");
    let anons = strings(batch, "anonymous_id");
    let kinds = strings(batch, "type");
    (0..batch.num_rows())
        .map(|i| {
            let (user, anon) = (text(users, i), text(anons, i));
            let link = user.is_some_and(|u| s.users.contains(u))
                && (anon.is_some() || text(kinds, i) == Some("alias"));
            Some(s.owns(user, anon) && !(pass == Pass::KeepLinks && link))
        })
        .collect()
}

/// A dead letter's Kafka key as text (BINARY in the table; UTF-8 text in older test files).
fn key_at(batch: &RecordBatch, i: usize) -> Option<String> {
    let col = batch.column_by_name("key")?;
    if let Some(b) = col.as_any().downcast_ref::<BinaryArray>() {
        return b
            .is_valid(i)
            .then(|| String::from_utf8_lossy(b.value(i)).into_owned());
    }
    let t = col.as_any().downcast_ref::<StringArray>()?;
    t.is_valid(i).then(|| t.value(i).to_string())
}

/// Rows of the dead-letter table that carry the subject's ids.
pub fn dead_letter_rows(batch: &RecordBatch, s: &Subject) -> BooleanArray {
    let (users, anons) = (strings(batch, "user_id"), strings(batch, "anonymous_id"));
    let component = strings(batch, "component");
    let payload_text = strings(batch, "payload_text");
    let payload = batch
        .column_by_name("payload")
        .and_then(|c| c.as_any().downcast_ref::<BinaryArray>());
    (0..batch.num_rows())
        .map(|i| {
            let (user, anon) = (text(users, i), text(anons, i));
            if text(component, i).is_some() && (user.is_some() || anon.is_some()) {
                return Some(s.owns(user, anon));
            }
            let keyed = key_at(batch, i).is_some_and(|k| s.users.contains(&k) || s.is_anon(&k));
            let parsed = text(payload_text, i).and_then(|t| serde_json::from_str::<Value>(t).ok());
            let in_payload = match parsed {
                Some(v) => s.matches_json(&v),
                None => payload.is_some_and(|p| p.is_valid(i) && s.in_bytes(p.value(i))),
            };
            Some(keyed || in_payload)
        })
        .collect()
}

/// The columns [`event_rows`] and [`dead_letter_rows`] read.
pub fn match_columns(table: Table) -> &'static [&'static str] {
    match table {
        Table::Events => &["user_id", "anonymous_id", "type"],
        Table::DeadLetters => &[
            "key",
            "payload",
            "payload_text",
            "component",
            "user_id",
            "anonymous_id",
        ],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    use arrow::array::ArrayRef;
    use arrow::datatypes::{DataType, Field, Schema};

    fn subject(users: &[&str], anons: &[&str], linked: &[&str]) -> Subject {
        let set = |ids: &[&str]| ids.iter().map(|s| s.to_string()).collect();
        Subject {
            users: set(users),
            anons: set(anons),
            linked: set(linked),
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
        let mask = event_rows(&batch, &subject(&["u1"], &["a1"], &[]), Pass::All);
        // "a1" as a user id is someone else's.
        assert_eq!(mask, BooleanArray::from(vec![true, true, false, false]));
        // Linked anonymous ids: only rows without another user's id.
        let mask = event_rows(&batch, &subject(&["u1"], &[], &["a1", "y"]), Pass::All);
        assert_eq!(mask, BooleanArray::from(vec![true, true, false, false]));
        // The first pass keeps the row linking u1 to x.
        let mask = event_rows(
            &batch,
            &subject(&["u1"], &[], &["a1", "y"]),
            Pass::KeepLinks,
        );
        assert_eq!(mask, BooleanArray::from(vec![false, true, false, false]));
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
        let mask = dead_letter_rows(&batch, &subject(&["u1"], &["a1"], &[]));
        // JSON is matched by field (u10 with "u1" in a property is not the subject), other
        // payloads by Avro or quoted strings, the key exactly.
        assert_eq!(
            mask,
            BooleanArray::from(vec![true, true, false, true, false, true, false, true])
        );
        assert_eq!(avro_len(2), [4]);
        assert_eq!(avro_len(64), [0x80, 0x01]);
    }

    #[test]
    fn typed_letters_match_by_their_columns_and_binary_keys_by_value() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("key", DataType::Binary, true),
            Field::new("component", DataType::Utf8, true),
            Field::new("user_id", DataType::Utf8, true),
            Field::new("anonymous_id", DataType::Utf8, true),
        ]));
        let keys: Vec<Option<&[u8]>> = vec![Some(b"u2"), Some(b"shared"), None, Some(b"u1")];
        let component = vec![Some("stream-processor"); 3]
            .into_iter()
            .chain([None])
            .collect::<Vec<_>>();
        let users = vec![Some("u2"), Some("u2"), None, None];
        let anons = vec![Some("shared"), Some("shared"), Some("shared"), None];
        let batch = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(BinaryArray::from(keys)),
                Arc::new(StringArray::from(component)),
                Arc::new(StringArray::from(users)),
                Arc::new(StringArray::from(anons)),
            ],
        )
        .expect("batch");
        // "shared" is linked to u1: u2's letters on it stay; the anonymous one goes; an old
        // letter keyed by u1 goes.
        let mask = dead_letter_rows(&batch, &subject(&["u1"], &[], &["shared"]));
        assert_eq!(mask, BooleanArray::from(vec![false, false, true, true]));
    }
}
