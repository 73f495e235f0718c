//! The lake sink's durable ledger: per clean-topic partition, how far the lake reaches and the
//! highest source position already in it.
//!
//! Contract: for each partition `P` of the clean topic, the ledger holds immutable, create-only
//! objects `_state/lake-sink/<topic>/p<P>/o<next offset>.json`. The newest one says that every
//! record of `P` below `next_offset` is in the lake (or was skipped or dead-lettered), and, per
//! source partition (`<topic>/<partition>` of the processor's input), the highest source offset
//! already written — so records the processor re-emits after restoring a checkpoint are
//! recognised and skipped. Before a flush writes any file it creates an intent
//! `flush-o<first>-<last>`; the intent is removed once the ledger entry for `last + 1` exists.
//! An intent found at start-up whose `first` equals the ledger's next offset marks an
//! interrupted flush: the sink must flush exactly `[first, last]` again, which rewrites the same
//! files (names are deterministic from the range) instead of adding new ones.

use std::collections::BTreeMap;

use northstar_runtime::objstore::{ObjectRoot, ObjectRootError};
use serde::{Deserialize, Serialize};

/// A ledger that could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    #[error(transparent)]
    Store(#[from] ObjectRootError),
    #[error("lake ledger entry {key} is unreadable: {reason}")]
    Corrupt { key: String, reason: String },
}

/// One ledger entry.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// The first clean-topic offset not in the lake.
    pub next_offset: i64,
    /// Highest source offset in the lake, by `<source topic>/<source partition>`.
    pub sources: BTreeMap<String, i64>,
    /// The event names of this partition with their own `event_name` directory (at most
    /// `max_event_names`; the rest go to the catch-all, [`super::budget`]). Entries written
    /// before the cap existed have none: their names are admitted again as they come.
    #[serde(default, skip_serializing_if = "std::collections::BTreeSet::is_empty")]
    pub names: std::collections::BTreeSet<String>,
    /// The clean topic's id when the entry was written (`runtime::topic_id`), if the brokers
    /// report one: a partition resumed from the entry on a topic with another id is refused
    /// (`runtime::resume`). Entries written before have none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topic_id: Option<String>,
}

/// Where a newly assigned partition resumes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resume {
    /// The newest entry (`None` when the partition was never flushed).
    pub entry: Option<Entry>,
    /// `Some((first, last))` when a flush of exactly that range was interrupted and must be
    /// repeated before any other flush of the partition.
    pub interrupted: Option<(i64, i64)>,
}

/// Where every ledger lives in the lake.
pub const LEDGER_ROOT: &str = "_state/lake-sink";

/// For every `(topic, partition)` with a ledger entry, the first offset not yet in the lake
/// (read-only: intents are left alone). A file of that partition whose range ends below it is
/// final: no flush will ever rewrite it.
pub async fn committed(root: &ObjectRoot) -> Result<BTreeMap<(String, i32), i64>, LedgerError> {
    let mut out: BTreeMap<(String, i32), i64> = BTreeMap::new();
    for key in root.list(LEDGER_ROOT).await? {
        let Some(rest) = key
            .strip_prefix(LEDGER_ROOT)
            .and_then(|r| r.strip_prefix('/'))
        else {
            continue;
        };
        let mut parts = rest.rsplitn(3, '/');
        let (Some(name), Some(p), Some(topic)) = (parts.next(), parts.next(), parts.next()) else {
            continue;
        };
        let (Some(next), Some(partition)) = (
            parse_entry_name(name),
            p.strip_prefix('p').and_then(|p| p.parse::<i32>().ok()),
        ) else {
            continue;
        };
        let slot = out.entry((topic.to_string(), partition)).or_insert(next);
        *slot = (*slot).max(next);
    }
    Ok(out)
}

/// The ledger of one clean topic in one lake.
#[derive(Debug, Clone)]
pub struct Ledger {
    root: ObjectRoot,
    prefix: String,
    keep: usize,
}

fn parse_entry_name(name: &str) -> Option<i64> {
    name.strip_prefix('o')?.strip_suffix(".json")?.parse().ok()
}

fn parse_intent_name(name: &str) -> Option<(i64, i64)> {
    let (first, last) = name.strip_prefix("flush-o")?.split_once("-o")?;
    Some((first.parse().ok()?, last.parse().ok()?))
}

impl Ledger {
    pub fn new(root: ObjectRoot, topic: &str, keep: usize) -> Self {
        Self {
            root,
            prefix: format!("{LEDGER_ROOT}/{topic}"),
            keep: keep.max(1),
        }
    }

    fn dir(&self, partition: i32) -> String {
        format!("{}/p{partition}", self.prefix)
    }

    fn entry_key(&self, partition: i32, next: i64) -> String {
        format!("{}/o{next:020}.json", self.dir(partition))
    }

    fn intent_key(&self, partition: i32, first: i64, last: i64) -> String {
        format!("{}/flush-o{first:020}-o{last:020}", self.dir(partition))
    }

    async fn names(&self, partition: i32) -> Result<Vec<String>, LedgerError> {
        Ok(self
            .root
            .list(&self.dir(partition))
            .await?
            .into_iter()
            .filter_map(|k| k.rsplit('/').next().map(str::to_string))
            .collect())
    }

    /// Reads where `partition` resumes; removes intents of flushes that completed.
    pub async fn resume(&self, partition: i32) -> Result<Resume, LedgerError> {
        let names = self.names(partition).await?;
        let newest = names.iter().filter_map(|n| parse_entry_name(n)).max();
        let entry = match newest {
            Some(next) => {
                let key = self.entry_key(partition, next);
                let bytes = self.root.get(&key).await?;
                let entry: Entry =
                    serde_json::from_slice(&bytes).map_err(|e| LedgerError::Corrupt {
                        key: key.clone(),
                        reason: e.to_string(),
                    })?;
                if entry.next_offset != next {
                    return Err(LedgerError::Corrupt {
                        key,
                        reason: format!("holds offset {}", entry.next_offset),
                    });
                }
                Some(entry)
            }
            None => None,
        };
        let next = entry.as_ref().map(|e| e.next_offset);
        let mut interrupted = None;
        for (first, last) in names.iter().filter_map(|n| parse_intent_name(n)) {
            let completed = next.is_some_and(|n| last < n);
            if completed {
                self.root
                    .delete(&self.intent_key(partition, first, last))
                    .await?;
            } else if next.is_none_or(|n| n == first) {
                interrupted = Some((first, last));
            }
        }
        Ok(Resume { entry, interrupted })
    }

    /// Declares that files of `[first, last]` are about to be written.
    pub async fn begin(&self, partition: i32, first: i64, last: i64) -> Result<(), LedgerError> {
        self.root
            .put_durable(&self.intent_key(partition, first, last), Vec::new())
            .await?;
        Ok(())
    }

    /// Records that every record of `partition` below `entry.next_offset` is in the lake, then
    /// clears the intent of `[first, entry.next_offset - 1]` and prunes old entries.
    pub async fn commit(
        &self,
        partition: i32,
        first: i64,
        entry: &Entry,
    ) -> Result<(), LedgerError> {
        let key = self.entry_key(partition, entry.next_offset);
        let bytes = serde_json::to_vec(entry).map_err(|e| LedgerError::Corrupt {
            key: key.clone(),
            reason: e.to_string(),
        })?;
        // An existing entry at this offset was written by the same deterministic replay.
        self.root.create_durable(&key, bytes).await?;
        self.root
            .delete(&self.intent_key(partition, first, entry.next_offset - 1))
            .await?;
        let mut offsets: Vec<i64> = self
            .names(partition)
            .await?
            .iter()
            .filter_map(|n| parse_entry_name(n))
            .collect();
        offsets.sort_unstable();
        if offsets.len() > self.keep {
            for o in &offsets[..offsets.len() - self.keep] {
                self.root.delete(&self.entry_key(partition, *o)).await?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ledger(dir: &tempfile::TempDir) -> Ledger {
        let root = ObjectRoot::open(&format!("file://{}", dir.path().display())).expect("root");
        Ledger::new(root, "events.clean", 2)
    }

    fn entry(next: i64, hwm: i64) -> Entry {
        Entry {
            next_offset: next,
            sources: BTreeMap::from([("events.raw/0".to_string(), hwm)]),
            names: ["Signed Up".to_string()].into(),
            topic_id: Some("k7Ffg6EeSQ6jB/X060nhOg".into()),
        }
    }

    #[test]
    fn entries_from_before_the_name_cap_still_read() {
        let old: Entry = serde_json::from_str(r#"{"next_offset":7,"sources":{"events.raw/0":3}}"#)
            .expect("old entry");
        assert_eq!(old.next_offset, 7);
        assert!(old.names.is_empty());
        assert_eq!(old.topic_id, None, "entries from before topic ids");
        let round: Entry = serde_json::from_slice(&serde_json::to_vec(&entry(5, 4)).expect("json"))
            .expect("read back");
        assert_eq!(round, entry(5, 4));
    }

    #[test]
    fn names_parse() {
        assert_eq!(
            parse_intent_name("flush-o00000000000000000010-o00000000000000000099"),
            Some((10, 99))
        );
        assert_eq!(parse_entry_name("o00000000000000000100.json"), Some(100));
        assert_eq!(parse_entry_name("flush-o1-o2"), None);
    }

    #[tokio::test]
    async fn resumes_from_the_newest_entry_and_prunes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let l = ledger(&dir);
        let empty = l.resume(0).await.expect("resume");
        assert_eq!(empty.entry, None);
        assert_eq!(empty.interrupted, None);
        for (first, next) in [(0, 10), (10, 20), (20, 30)] {
            l.begin(0, first, next - 1).await.expect("begin");
            l.commit(0, first, &entry(next, next * 2))
                .await
                .expect("commit");
        }
        let r = l.resume(0).await.expect("resume");
        assert_eq!(r.entry, Some(entry(30, 60)));
        assert_eq!(r.interrupted, None);
        assert_eq!(l.names(0).await.expect("names").len(), 2, "pruned to keep");
        assert_eq!(l.resume(1).await.expect("other partition").entry, None);
    }

    #[tokio::test]
    async fn an_interrupted_flush_is_reported_until_it_completes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let l = ledger(&dir);
        l.begin(3, 0, 9).await.expect("begin");
        let r = l.resume(3).await.expect("resume");
        assert_eq!(r.entry, None);
        assert_eq!(r.interrupted, Some((0, 9)), "first flush interrupted");
        l.commit(3, 0, &entry(10, 5)).await.expect("commit");
        l.begin(3, 10, 19).await.expect("begin");
        assert_eq!(
            l.resume(3).await.expect("resume").interrupted,
            Some((10, 19))
        );
        // Crash between the entry and the intent removal: the intent is stale and removed.
        l.root
            .create_durable(
                &l.entry_key(3, 20),
                serde_json::to_vec(&entry(20, 7)).expect("json"),
            )
            .await
            .expect("entry");
        let r = l.resume(3).await.expect("resume");
        assert_eq!(r.interrupted, None);
        assert_eq!(r.entry, Some(entry(20, 7)));
        assert!(l
            .names(3)
            .await
            .expect("names")
            .iter()
            .all(|n| !n.starts_with("flush")));
    }
}
