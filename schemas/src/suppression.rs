//! The suppression list: the subjects (user ids, anonymous ids) erased on request, in a
//! compacted topic (`topics.suppressions`), consulted before anything of theirs is accepted or
//! replayed again.
//!
//! Contract:
//! - A subject is stored only as its keyed hash ([`subject_hash`]: HMAC-SHA-256 under the PII
//!   key, with the key's version, domain-separated from property hashes), never in the clear:
//!   the list cannot be read back into the people it names without the key.
//! - A record's key is the hash, its value a JSON [`Entry`]; a tombstone (no value) lifts the
//!   suppression. The topic is compacted, so it holds one record per subject however often it
//!   was written.
//! - [`Suppressions`] reads the whole topic at start ([`Suppressions::loaded`] turns true once
//!   it has read up to the end offsets it found), then follows it, and answers whether an id
//!   is suppressed under any key of the ring (so a key rotation keeps earlier entries working).
//!   With an empty list, [`Suppressions::is_suppressed`] hashes nothing.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use northstar_runtime::producer::AckProducer;
use northstar_runtime::KafkaConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::BaseRecord;
use rdkafka::{Offset, TopicPartitionList};
use serde::{Deserialize, Serialize};

use crate::plan::pii::{PiiKey, PiiKeyring};

/// The keyed hash of a subject id under `key`.
pub fn subject_hash(key: &PiiKey, id: &str) -> String {
    key.hash(&format!("northstar-subject\u{0}{id}"))
}

/// What kind of id a subject is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IdKind {
    UserId,
    AnonymousId,
}

/// The value of a suppression record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// The subject's keyed hash (the record key too).
    pub subject: String,
    pub kind: IdKind,
    /// When it was suppressed (RFC 3339).
    pub at: String,
    /// Why: `erasure` (with `lake-admin erase`).
    pub reason: String,
}

/// A suppression list that cannot be read or written.
#[derive(Debug, thiserror::Error)]
pub enum SuppressionError {
    #[error("suppression list {topic}: {error}")]
    Kafka { topic: String, error: String },
}

/// The suppressed subjects' hashes, kept up to date by a reading thread.
#[derive(Debug, Clone)]
pub struct Suppressions {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    hashes: RwLock<HashSet<String>>,
    loaded: AtomicBool,
    keys: PiiKeyring,
}

impl Suppressions {
    /// An in-memory list (tests, and services without Kafka): already loaded.
    pub fn fixed(keys: PiiKeyring, hashes: impl IntoIterator<Item = String>) -> Self {
        Suppressions {
            inner: Arc::new(Inner {
                hashes: RwLock::new(hashes.into_iter().collect()),
                loaded: AtomicBool::new(true),
                keys,
            }),
        }
    }

    /// Starts reading `topic` from its beginning on a thread of its own. Blocks while it reads
    /// the topic's metadata and end offsets (call it off async workers).
    pub fn follow(
        kafka: &KafkaConfig,
        topic: &str,
        keys: PiiKeyring,
    ) -> Result<Self, SuppressionError> {
        let failed = |e: rdkafka::error::KafkaError| SuppressionError::Kafka {
            topic: topic.to_string(),
            error: e.to_string(),
        };
        let consumer: BaseConsumer = kafka
            .client_config("northstar-suppressions")
            .set("group.id", "northstar-suppressions-unused")
            .set("enable.auto.commit", "false")
            .set("enable.partition.eof", "false")
            .create()
            .map_err(failed)?;
        let metadata = consumer
            .fetch_metadata(Some(topic), Duration::from_secs(30))
            .map_err(failed)?;
        let partitions: Vec<i32> = metadata
            .topics()
            .iter()
            .filter(|t| t.name() == topic && t.error().is_none())
            .flat_map(|t| t.partitions().iter().map(|p| p.id()))
            .collect();
        if partitions.is_empty() {
            return Err(SuppressionError::Kafka {
                topic: topic.to_string(),
                error: "the topic does not exist (northstar-schemas create-topics makes it)".into(),
            });
        }
        let mut ends = Vec::new();
        let mut tpl = TopicPartitionList::new();
        for p in &partitions {
            let (_, high) = consumer
                .fetch_watermarks(topic, *p, Duration::from_secs(30))
                .map_err(failed)?;
            ends.push((*p, high));
            tpl.add_partition_offset(topic, *p, Offset::Beginning)
                .map_err(failed)?;
        }
        consumer.assign(&tpl).map_err(failed)?;
        let list = Suppressions::fixed(keys, []);
        list.inner.loaded.store(false, Ordering::Release);
        let inner = list.inner.clone();
        std::thread::Builder::new()
            .name("suppressions".into())
            .spawn(move || read(consumer, ends, &inner))
            .map_err(|e| SuppressionError::Kafka {
                topic: topic.to_string(),
                error: format!("reading thread: {e}"),
            })?;
        Ok(list)
    }

    /// Whether the topic has been read up to where it ended at start.
    pub fn loaded(&self) -> bool {
        self.inner.loaded.load(Ordering::Acquire)
    }

    /// How many subjects are suppressed.
    pub fn len(&self) -> usize {
        self.hashes().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn hashes(&self) -> std::sync::RwLockReadGuard<'_, HashSet<String>> {
        self.inner.hashes.read().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether either id is suppressed (under any key of the ring).
    pub fn is_suppressed(&self, user_id: Option<&str>, anonymous_id: Option<&str>) -> bool {
        let hashes = self.hashes();
        if hashes.is_empty() {
            return false;
        }
        [user_id, anonymous_id]
            .into_iter()
            .flatten()
            .filter(|id| !id.is_empty())
            .any(|id| {
                self.inner
                    .keys
                    .all()
                    .iter()
                    .any(|k| hashes.contains(&subject_hash(k, id)))
            })
    }
}

/// The reading thread: applies records and tombstones until the list is dropped.
fn read(consumer: BaseConsumer, ends: Vec<(i32, i64)>, inner: &Arc<Inner>) {
    let mut pending: Vec<(i32, i64)> = ends.into_iter().filter(|(_, end)| *end > 0).collect();
    if pending.is_empty() {
        inner.loaded.store(true, Ordering::Release);
    }
    // The thread holds an `Arc`: it stops once only it is left.
    while Arc::strong_count(inner) > 1 {
        let Some(result) = consumer.poll(Duration::from_millis(500)) else {
            continue;
        };
        let msg = match result {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(error = %e, "suppression list: read error, retrying");
                continue;
            }
        };
        if let Some(key) = msg.key().and_then(|k| std::str::from_utf8(k).ok()) {
            let mut hashes = inner.hashes.write().unwrap_or_else(|p| p.into_inner());
            match msg.payload() {
                Some(_) => hashes.insert(key.to_string()),
                None => hashes.remove(key),
            };
        }
        let (p, next) = (msg.partition(), msg.offset() + 1);
        pending.retain(|(q, end)| !(*q == p && next >= *end));
        if pending.is_empty() && !inner.loaded.load(Ordering::Acquire) {
            tracing::info!(
                subjects = inner.hashes.read().map_or(0, |h| h.len()),
                "suppression list loaded"
            );
            inner.loaded.store(true, Ordering::Release);
        }
    }
}

/// Adds `subjects` (id, kind) to the list under the ring's current key; returns their hashes
/// once the broker acknowledged every record.
pub async fn suppress(
    kafka: &KafkaConfig,
    topic: &str,
    keys: &PiiKeyring,
    subjects: &[(String, IdKind)],
) -> Result<Vec<String>, SuppressionError> {
    let failed = |e: String| SuppressionError::Kafka {
        topic: topic.to_string(),
        error: e,
    };
    let mut producer = AckProducer::new(&kafka.idempotent_producer("northstar-suppress", 30_000))
        .map_err(|e| failed(e.to_string()))?;
    let at = chrono::Utc::now().to_rfc3339();
    let mut out = Vec::with_capacity(subjects.len());
    for (id, kind) in subjects {
        let subject = subject_hash(keys.current(), id);
        let entry = Entry {
            subject: subject.clone(),
            kind: *kind,
            at: at.clone(),
            reason: "erasure".into(),
        };
        let value = serde_json::to_vec(&entry).map_err(|e| failed(e.to_string()))?;
        producer
            .send(
                BaseRecord::to(topic)
                    .key(subject.as_bytes())
                    .payload(&value),
            )
            .await
            .map_err(|e| failed(e.to_string()))?;
        out.push(subject);
    }
    producer
        .delivered()
        .await
        .map_err(|e| failed(e.to_string()))?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ring(spec: &str) -> PiiKeyring {
        PiiKeyring::parse(spec).expect("keys")
    }

    const V1: &str = "v1:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";
    const V2: &str = "v2:AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=";

    #[test]
    fn subjects_are_keyed_and_domain_separated() {
        let k = ring(V1);
        let h = subject_hash(k.current(), "jane@example.com");
        assert!(h.starts_with("hmac-sha256:v1:"));
        assert!(!h.contains("jane"));
        assert_ne!(
            h,
            k.current().hash("jane@example.com"),
            "not a property hash"
        );
        assert_ne!(h, subject_hash(ring(V2).current(), "jane@example.com"));
    }

    #[test]
    fn a_subject_suppressed_under_an_old_key_stays_suppressed_after_rotation() {
        let old = ring(V1);
        let entry = subject_hash(old.current(), "u1");
        let rotated = ring(&format!("{V1}\n{V2}"));
        assert_eq!(rotated.current().version, 2);
        let list = Suppressions::fixed(rotated, [entry]);
        assert!(list.is_suppressed(Some("u1"), None));
        assert!(list.is_suppressed(None, Some("u1")));
        assert!(!list.is_suppressed(Some("u2"), Some("")));
        assert!(!Suppressions::fixed(ring(V2), []).is_suppressed(Some("u1"), None));
    }

    #[test]
    fn a_ring_refuses_duplicate_versions_and_emptiness() {
        assert!(PiiKeyring::parse(&format!("{V1},{V1}")).is_err());
        assert!(PiiKeyring::parse("  \n").is_err());
        let e = PiiKeyring::parse(&format!("{V1} v3:c2hvcnQ=")).expect_err("short");
        assert!(!e.to_string().contains("c2hvcnQ"), "{e}");
    }
}
