//! Identity links in the events table, without IO: which ids belong to the same person.
//!
//! Contract: starting from the user ids asked for, an `alias` row joins its `user_id` and its
//! `previous_id` (either way, to a fixed point: a chain of renames is one person); then every
//! row holding one of those user ids with an `anonymous_id` links that anonymous id. Linked
//! anonymous ids are the person's only where no other user id claims the row: the erasure
//! removes a linked anonymous id's rows that have no user id or one of the person's (a shared
//! device's rows of another signed-in user stay).

use std::collections::HashSet;

use arrow::array::{Array, RecordBatch, StringArray};

/// The columns [`Links`] reads.
pub const COLUMNS: &[&str] = &["type", "user_id", "anonymous_id", "previous_id"];

fn strings<'a>(batch: &'a RecordBatch, column: &str) -> Option<&'a StringArray> {
    batch.column_by_name(column)?.as_any().downcast_ref()
}

fn value(col: Option<&StringArray>, i: usize) -> Option<&str> {
    col.filter(|c| c.is_valid(i))
        .map(|c| c.value(i))
        .filter(|v| !v.is_empty())
}

/// Alias edges (user id, previous id) seen in a scan.
#[derive(Debug, Default)]
pub struct Aliases(pub HashSet<(String, String)>);

impl Aliases {
    /// Collects the alias rows of one batch.
    pub fn scan(&mut self, batch: &RecordBatch) {
        let (kind, user, prev) = (
            strings(batch, "type"),
            strings(batch, "user_id"),
            strings(batch, "previous_id"),
        );
        for i in 0..batch.num_rows() {
            if value(kind, i) != Some("alias") {
                continue;
            }
            if let (Some(u), Some(p)) = (value(user, i), value(prev, i)) {
                self.0.insert((u.to_string(), p.to_string()));
            }
        }
    }

    /// `users` and every id an alias chain joins to them (a previous id may be a user id or an
    /// anonymous id: it is returned as both).
    pub fn closure(&self, users: &HashSet<String>) -> HashSet<String> {
        let mut out = users.clone();
        loop {
            let before = out.len();
            for (u, p) in &self.0 {
                if out.contains(u) || out.contains(p) {
                    out.insert(u.clone());
                    out.insert(p.clone());
                }
            }
            if out.len() == before {
                return out;
            }
        }
    }
}

/// The anonymous ids rows of `users` carry, in one batch.
pub fn anonymous_ids_of(batch: &RecordBatch, users: &HashSet<String>, out: &mut HashSet<String>) {
    let (user, anon) = (strings(batch, "user_id"), strings(batch, "anonymous_id"));
    for i in 0..batch.num_rows() {
        if let (Some(u), Some(a)) = (value(user, i), value(anon, i)) {
            if users.contains(u) {
                out.insert(a.to_string());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    use arrow::array::ArrayRef;
    use arrow::datatypes::{DataType, Field, Schema};

    type Row<'a> = (&'a str, Option<&'a str>, Option<&'a str>, Option<&'a str>);

    fn batch(rows: &[Row<'_>]) -> RecordBatch {
        let schema = Arc::new(Schema::new(
            COLUMNS
                .iter()
                .map(|c| Field::new(*c, DataType::Utf8, true))
                .collect::<Vec<_>>(),
        ));
        let col = |values: Vec<Option<&str>>| -> ArrayRef { Arc::new(StringArray::from(values)) };
        let columns = vec![
            col(rows.iter().map(|r| Some(r.0)).collect()),
            col(rows.iter().map(|r| r.1).collect()),
            col(rows.iter().map(|r| r.2).collect()),
            col(rows.iter().map(|r| r.3).collect()),
        ];
        RecordBatch::try_new(schema, columns).expect("batch")
    }

    #[test]
    fn alias_chains_and_identified_devices_link_to_the_person() {
        let b = batch(&[
            ("identify", Some("u1"), Some("anon-1"), None),
            ("track", Some("u1"), Some("anon-2"), None),
            ("alias", Some("u1-new"), None, Some("u1")),
            ("alias", Some("u1-newer"), None, Some("u1-new")),
            ("track", Some("u1-newer"), Some("anon-3"), None),
            ("track", Some("u2"), Some("anon-9"), None),
            ("alias", Some("u3"), None, Some("anon-8")),
        ]);
        let mut aliases = Aliases::default();
        aliases.scan(&b);
        let users = aliases.closure(&HashSet::from(["u1".to_string()]));
        let want: HashSet<String> = ["u1", "u1-new", "u1-newer"].map(String::from).into();
        assert_eq!(users, want);
        let mut anons = HashSet::new();
        anonymous_ids_of(&b, &users, &mut anons);
        let want: HashSet<String> = ["anon-1", "anon-2", "anon-3"].map(String::from).into();
        assert_eq!(anons, want, "u2's device and u3's alias are someone else's");
    }
}
