//! Which dead letters a replay re-submits, without IO.
//!
//! Contract:
//! - [`letters`] reads every row of a dead-letter file, whatever columns it has (a file
//!   written before failure records has its type from its reason and no message id).
//! - [`select`] first drops letters superseded by a newer letter of the same event (same
//!   `source_id` and `message_id`: a replay that failed again supersedes the letter it was
//!   replayed from), so a replay always starts from the latest failure; then keeps the letters
//!   the filter matches; then sets aside, each with its reason, those an earlier replay already
//!   re-submitted (unless `again`), those without bytes (consent letters account for an event
//!   and never hold it) and those of suppressed subjects. The same dead-letter position read
//!   twice is one letter.

use std::collections::{BTreeMap, HashMap, HashSet};

use arrow::array::{
    Array, BinaryArray, Int32Array, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray,
};
use northstar_schemas::failure::FailureType;
use serde::Serialize;

/// One dead letter, as a replay needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Letter {
    pub dlq_partition: i32,
    pub dlq_offset: i64,
    pub failure_type: Option<FailureType>,
    pub reason: Option<String>,
    pub event: Option<String>,
    pub message_id: Option<String>,
    pub source_id: Option<String>,
    pub user_id: Option<String>,
    pub anonymous_id: Option<String>,
    /// µs since the epoch.
    pub dead_lettered_at: Option<i64>,
    pub recovery_count: u32,
    pub key: Option<Vec<u8>>,
    pub payload: Option<Vec<u8>>,
}

/// The columns [`letters`] reads (those a file has).
pub const COLUMNS: &[&str] = &[
    "dlq_partition",
    "dlq_offset",
    "failure_type",
    "reason",
    "event",
    "message_id",
    "source_id",
    "user_id",
    "anonymous_id",
    "dead_lettered_at",
    "recovery_count",
    "key",
    "payload",
];

fn text(batch: &RecordBatch, name: &str) -> Vec<Option<String>> {
    let n = batch.num_rows();
    batch
        .column_by_name(name)
        .and_then(|c| c.as_any().downcast_ref::<StringArray>())
        .map_or_else(
            || vec![None; n],
            |a| a.iter().map(|v| v.map(str::to_string)).collect(),
        )
}

fn binary(batch: &RecordBatch, name: &str) -> Vec<Option<Vec<u8>>> {
    let n = batch.num_rows();
    batch
        .column_by_name(name)
        .and_then(|c| c.as_any().downcast_ref::<BinaryArray>())
        .map_or_else(
            || vec![None; n],
            |a| a.iter().map(|v| v.map(<[u8]>::to_vec)).collect(),
        )
}

/// The letters of one dead-letter file's rows.
pub fn letters(batch: &RecordBatch) -> Vec<Letter> {
    let n = batch.num_rows();
    let int32 = |name| {
        batch
            .column_by_name(name)
            .and_then(|c| c.as_any().downcast_ref::<Int32Array>().cloned())
    };
    let partitions = int32("dlq_partition");
    let counts = int32("recovery_count");
    let offsets = batch
        .column_by_name("dlq_offset")
        .and_then(|c| c.as_any().downcast_ref::<Int64Array>().cloned());
    let times = batch.column_by_name("dead_lettered_at").and_then(|c| {
        c.as_any()
            .downcast_ref::<TimestampMicrosecondArray>()
            .cloned()
    });
    let (types, reasons, events) = (
        text(batch, "failure_type"),
        text(batch, "reason"),
        text(batch, "event"),
    );
    let (ids, sources) = (text(batch, "message_id"), text(batch, "source_id"));
    let (users, anons) = (text(batch, "user_id"), text(batch, "anonymous_id"));
    let (keys, payloads) = (binary(batch, "key"), binary(batch, "payload"));
    let value_i32 =
        |a: &Option<Int32Array>, i| a.as_ref().filter(|a| a.is_valid(i)).map(|a| a.value(i));
    (0..n)
        .map(|i| Letter {
            dlq_partition: value_i32(&partitions, i).unwrap_or_default(),
            dlq_offset: offsets.as_ref().map_or(0, |a| a.value(i)),
            failure_type: types[i]
                .as_deref()
                .and_then(FailureType::parse)
                .or_else(|| reasons[i].as_deref().and_then(FailureType::of_reason)),
            reason: reasons[i].clone(),
            event: events[i].clone(),
            message_id: ids[i].clone(),
            source_id: sources[i].clone(),
            user_id: users[i].clone(),
            anonymous_id: anons[i].clone(),
            dead_lettered_at: times.as_ref().filter(|a| a.is_valid(i)).map(|a| a.value(i)),
            recovery_count: value_i32(&counts, i).map_or(0, |c| c.max(0) as u32),
            key: keys[i].clone(),
            payload: payloads[i].clone(),
        })
        .collect()
}

/// What a replay takes: every condition given must hold (empty lists: any).
#[derive(Debug, Clone, Default, Serialize)]
pub struct Filter {
    pub types: Vec<FailureType>,
    pub reasons: Vec<String>,
    pub events: Vec<String>,
    /// Dead-lettered at or after (µs since the epoch).
    pub from: Option<i64>,
    /// Dead-lettered before (µs since the epoch).
    pub to: Option<i64>,
}

impl Filter {
    fn matches(&self, l: &Letter) -> bool {
        let any = |list: &[String], v: &Option<String>| {
            list.is_empty() || v.as_ref().is_some_and(|v| list.contains(v))
        };
        (self.types.is_empty() || l.failure_type.is_some_and(|t| self.types.contains(&t)))
            && any(&self.reasons, &l.reason)
            && any(&self.events, &l.event)
            && self
                .from
                .is_none_or(|f| l.dead_lettered_at.is_some_and(|t| t >= f))
            && self
                .to
                .is_none_or(|to| l.dead_lettered_at.is_some_and(|t| t < to))
    }
}

/// Why a matching letter is not re-submitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Skip {
    /// An earlier replay re-submitted it (run again with `--again` to send it once more).
    AlreadyReplayed,
    /// The letter holds no bytes (a consent letter).
    NoPayload,
    /// Its user or anonymous id is on the suppression list.
    Suppressed,
    /// A declared fix could not be applied.
    FixFailed,
    /// Fixes were declared and its bytes are not a decodable event.
    Undecodable,
}

/// The letters to re-submit and those set aside.
#[derive(Debug, Default)]
pub struct Selection {
    pub chosen: Vec<Letter>,
    /// Letters left out because a newer letter of the same event exists.
    pub superseded: usize,
    pub skipped: BTreeMap<Skip, usize>,
}

/// Chooses the letters to replay among `all` (see the module contract).
pub fn select(
    all: Vec<Letter>,
    filter: &Filter,
    replayed: &HashSet<(i32, i64)>,
    again: bool,
    suppressed: &dyn Fn(&Letter) -> bool,
) -> Selection {
    let mut by_position: BTreeMap<(i32, i64), Letter> = BTreeMap::new();
    for l in all {
        by_position.insert((l.dlq_partition, l.dlq_offset), l);
    }
    // The latest letter of each event: highest recovery count, then latest position in time.
    type Rank = (u32, Option<i64>, i32, i64);
    let rank = |l: &Letter| -> Rank {
        (
            l.recovery_count,
            l.dead_lettered_at,
            l.dlq_partition,
            l.dlq_offset,
        )
    };
    let mut latest: HashMap<(&str, &str), Rank> = HashMap::new();
    for l in by_position.values() {
        if let (Some(s), Some(m)) = (&l.source_id, &l.message_id) {
            let r = rank(l);
            let e = latest.entry((s.as_str(), m.as_str())).or_insert(r);
            *e = (*e).max(r);
        }
    }
    let is_latest = |l: &Letter| match (&l.source_id, &l.message_id) {
        (Some(s), Some(m)) => latest.get(&(s.as_str(), m.as_str())) == Some(&rank(l)),
        _ => true,
    };
    let mut out = Selection::default();
    let mut chosen = Vec::new();
    for l in by_position.values() {
        if !is_latest(l) {
            out.superseded += usize::from(filter.matches(l));
            continue;
        }
        if !filter.matches(l) {
            continue;
        }
        let skip = if !again && replayed.contains(&(l.dlq_partition, l.dlq_offset)) {
            Some(Skip::AlreadyReplayed)
        } else if l.payload.is_none() {
            Some(Skip::NoPayload)
        } else if suppressed(l) {
            Some(Skip::Suppressed)
        } else {
            None
        };
        match skip {
            Some(s) => *out.skipped.entry(s).or_default() += 1,
            None => chosen.push(l.clone()),
        }
    }
    out.chosen = chosen;
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn letter(offset: i64, id: &str, t: FailureType, recovery: u32) -> Letter {
        Letter {
            dlq_partition: 0,
            dlq_offset: offset,
            failure_type: Some(t),
            reason: Some("wrong_type".into()),
            event: Some("Upgraded Plan".into()),
            message_id: Some(id.into()),
            source_id: Some("web".into()),
            user_id: Some(format!("user-{id}")),
            anonymous_id: None,
            dead_lettered_at: Some(1_000 + offset),
            recovery_count: recovery,
            key: None,
            payload: Some(b"bytes".to_vec()),
        }
    }

    fn none(_: &Letter) -> bool {
        false
    }

    #[test]
    fn a_newer_failure_of_the_same_event_supersedes_the_older_one() {
        use FailureType::*;
        let all = vec![
            letter(1, "a", SchemaViolation, 0),
            letter(2, "b", SchemaViolation, 0),
            letter(3, "a", Naming, 1), // "a" replayed and failed again, for another reason
            letter(3, "a", Naming, 1), // the same position read twice
        ];
        let s = select(
            all.clone(),
            &Filter::default(),
            &HashSet::new(),
            false,
            &none,
        );
        let chosen: Vec<i64> = s.chosen.iter().map(|l| l.dlq_offset).collect();
        assert_eq!(chosen, [2, 3]);
        assert_eq!(s.superseded, 1);
        // Filtering by the old type does not resurrect the superseded letter.
        let f = Filter {
            types: vec![SchemaViolation],
            ..Filter::default()
        };
        let s = select(all, &f, &HashSet::new(), false, &none);
        assert_eq!(
            s.chosen.iter().map(|l| l.dlq_offset).collect::<Vec<_>>(),
            [2]
        );
    }

    #[test]
    fn filters_and_skips_are_accounted_for() {
        use FailureType::*;
        let mut consent = letter(4, "c", Consent, 0);
        consent.payload = None;
        let mut other = letter(5, "d", SchemaViolation, 0);
        other.event = Some("Signed Up".into());
        let all = vec![
            letter(1, "a", SchemaViolation, 0),
            letter(2, "b", SchemaViolation, 0),
            letter(3, "e", SchemaViolation, 0),
            consent,
            other,
        ];
        let f = Filter {
            types: vec![SchemaViolation, Consent],
            events: vec!["Upgraded Plan".into()],
            from: Some(1_002),
            ..Filter::default()
        };
        let replayed = HashSet::from([(0, 2)]);
        let suppressed = |l: &Letter| l.user_id.as_deref() == Some("user-e");
        let s = select(all.clone(), &f, &replayed, false, &suppressed);
        assert!(s.chosen.is_empty(), "{:?}", s.chosen);
        assert_eq!(
            s.skipped,
            BTreeMap::from([
                (Skip::AlreadyReplayed, 1),
                (Skip::NoPayload, 1),
                (Skip::Suppressed, 1)
            ])
        );
        let s = select(all, &f, &replayed, true, &none);
        assert_eq!(
            s.chosen.iter().map(|l| l.dlq_offset).collect::<Vec<_>>(),
            [2, 3]
        );
    }
}
