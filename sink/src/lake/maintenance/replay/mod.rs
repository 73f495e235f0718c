//! `lake-admin replay`: dead letters from the lake's dead-letter table back into the raw topic,
//! optionally fixed, so the processor checks them again.
//!
//! Contract:
//! - It reads the dead-letter table, chooses letters with [`select::select`] (the latest failure
//!   of each event, the filter, not replayed before unless `again`, with bytes, and not of a
//!   subject on the suppression list, read to its end first: an erased person is never
//!   re-submitted; without a PII key to read the list it refuses to run)
//!   and re-submits each to the raw topic with its original key and message id: untouched
//!   bytes, or — with declared [`fix::Fix`]es that changed the event — the fixed event encoded
//!   with the v1 event schema registered for the raw topic. A letter a fix cannot be applied to
//!   (or, with fixes, that is not a decodable event) stays where it is and is counted.
//! - Each re-submitted record carries `northstar.recovery` (the letter's recovery count + 1)
//!   and `northstar.replay.of` (the letter's position): a replayed record that fails again is
//!   dead-lettered with its recovery count incremented and supersedes its old letter.
//! - Exactly once: the processor's deduplication drops a record re-sent under the same message
//!   id within its dedup window (a replayed record's receivedAt is moved to the replay time when
//!   it is older than `max_received_skew`), and a journal (`_state/replay/<time>-<id>.json`,
//!   written once every record is acknowledged) lists the letters re-submitted, which later
//!   runs skip. A run that dies before its journal is written is simply run again.
//! - The summary says what was replayed (by failure type and event), fixed, superseded and set
//!   aside, and names the journal.

pub mod fix;
pub mod select;

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use anyhow::Context;
use northstar_runtime::producer::AckProducer;
use northstar_runtime::KafkaConfig;
use northstar_schemas::event::EventCodec;
use northstar_schemas::failure::replay_of;
use northstar_schemas::headers;
use northstar_schemas::suppression::Suppressions;
use northstar_schemas::{value_subject, wire, EventDecoder, RegistryClient, EVENT_SCHEMA_V1};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::BaseRecord;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use super::Lake;
use crate::lake::Table;
use fix::Fix;
use select::{Filter, Letter, Skip};

/// Where replay journals are kept.
const JOURNALS: &str = "_state/replay";

/// Where replayed records go, and how to reach them.
#[derive(Debug, Clone)]
pub struct Target {
    pub kafka: KafkaConfig,
    /// The raw topic (`topics.raw`).
    pub raw_topic: String,
    /// The dead-letter topic (`topics.dlq`), named in `northstar.replay.of`.
    pub dlq_topic: String,
    /// The suppression list (`topics.suppressions`): letters of erased subjects stay.
    pub suppressions_topic: String,
    pub registry_url: String,
    pub registry_auth: northstar_schemas::RegistryAuth,
}

/// Options of `replay`.
#[derive(Debug, Clone)]
pub struct ReplayOptions {
    pub filter: Filter,
    pub fixes: Vec<Fix>,
    /// Re-submit letters an earlier replay already re-submitted.
    pub again: bool,
    /// Report what would be replayed only.
    pub dry_run: bool,
    pub target: Target,
    /// The PII keys the suppression list is read with (`None`: it cannot be read, and the
    /// replay refuses to run).
    pub keys: Option<northstar_schemas::plan::pii::PiiKeyring>,
}

/// What a replay did.
#[derive(Debug, Default, Serialize)]
pub struct ReplaySummary {
    pub command: &'static str,
    pub dry_run: bool,
    /// Letters re-submitted (or, in a dry run, that would be).
    pub replayed: usize,
    pub by_type: BTreeMap<String, usize>,
    pub by_event: BTreeMap<String, usize>,
    /// Re-submitted letters that a fix changed.
    pub fixed: usize,
    /// Matching letters left out because a newer letter of the same event exists.
    pub superseded: usize,
    pub skipped: BTreeMap<Skip, usize>,
    /// The first few fixes that could not be applied, with the letter's position.
    pub fix_errors: Vec<String>,
    pub journal: Option<String>,
}

/// The journal of one replay run.
#[derive(Debug, Serialize, Deserialize)]
struct Journal {
    finished_at: String,
    topic: String,
    filter: serde_json::Value,
    fixes: Vec<String>,
    /// (dead-letter partition, offset) of every letter re-submitted.
    replayed: Vec<(i32, i64)>,
}

/// Most fix errors listed in a summary.
const SHOWN_ERRORS: usize = 20;

/// Runs a replay over the lake's dead-letter table.
pub(crate) async fn run(lake: &Lake, o: &ReplayOptions) -> anyhow::Result<ReplaySummary> {
    let all = read_letters(lake).await?;
    let replayed = read_journals(lake).await?;
    let suppressions = read_suppressions(o).await?;
    let suppressed =
        |l: &Letter| suppressions.is_suppressed(l.user_id.as_deref(), l.anonymous_id.as_deref());
    let selection = select::select(all, &o.filter, &replayed, o.again, &suppressed);
    let mut summary = ReplaySummary {
        command: "replay",
        dry_run: o.dry_run,
        superseded: selection.superseded,
        skipped: selection.skipped,
        ..ReplaySummary::default()
    };
    if o.dry_run {
        for l in &selection.chosen {
            summary.count(l);
        }
        return Ok(summary);
    }
    let mut sender = Sender::connect(&o.target, !o.fixes.is_empty()).await?;
    let mut sent = Vec::new();
    for l in &selection.chosen {
        match sender.prepare(l, &o.fixes).await {
            Ok((payload, fixed)) => {
                sender.send(l, &payload).await?;
                summary.fixed += usize::from(fixed);
                summary.count(l);
                sent.push((l.dlq_partition, l.dlq_offset));
            }
            Err((skip, why)) => {
                *summary.skipped.entry(skip).or_default() += 1;
                if summary.fix_errors.len() < SHOWN_ERRORS {
                    summary.fix_errors.push(format!(
                        "{}/{}/{}: {why}",
                        o.target.dlq_topic, l.dlq_partition, l.dlq_offset
                    ));
                }
            }
        }
    }
    sender
        .producer
        .delivered()
        .await
        .context("replayed records were not all acknowledged; run the replay again")?;
    if !sent.is_empty() {
        summary.journal = Some(write_journal(lake, o, sent).await?);
    }
    Ok(summary)
}

impl ReplaySummary {
    fn count(&mut self, l: &Letter) {
        self.replayed += 1;
        let t = l.failure_type.map_or("unknown", |t| t.as_str());
        *self.by_type.entry(t.to_string()).or_default() += 1;
        let e = l.event.clone().unwrap_or_else(|| "(none)".into());
        *self.by_event.entry(e).or_default() += 1;
    }
}

/// The suppression list, read to its end.
async fn read_suppressions(o: &ReplayOptions) -> anyhow::Result<Suppressions> {
    let keys = o.keys.clone().context(
        "replay consults the suppression list, kept as keyed hashes, so that an erased person is \
         never re-submitted: set pii_key_file (NORTHSTAR_PII_KEY_FILE) or NORTHSTAR_PII_KEY",
    )?;
    // Metadata and watermarks are read with blocking calls: off the async workers.
    let list = tokio::task::block_in_place(|| {
        Suppressions::follow(&o.target.kafka, &o.target.suppressions_topic, keys)
    })
    .context("cannot read the suppression list")?;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while !list.loaded() {
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "the suppression list {} was not read within 60 s",
            o.target.suppressions_topic
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(list)
}

/// Every letter of the dead-letter table.
async fn read_letters(lake: &Lake) -> anyhow::Result<Vec<Letter>> {
    let mut all = Vec::new();
    for f in lake.files(Table::DeadLetters).await? {
        let bytes = lake.fetch(&f.key).await?;
        let batch = super::decode(bytes, &f.key, Some(select::COLUMNS)).await?;
        all.extend(select::letters(&batch));
    }
    Ok(all)
}

/// The positions earlier replays re-submitted.
async fn read_journals(lake: &Lake) -> anyhow::Result<HashSet<(i32, i64)>> {
    let mut out = HashSet::new();
    for key in lake.root.list(JOURNALS).await? {
        if !key.ends_with(".json") {
            continue;
        }
        let bytes = lake.root.get(&key).await?;
        let j: Journal = serde_json::from_slice(&bytes)
            .with_context(|| format!("replay journal {key} is not readable"))?;
        out.extend(j.replayed);
    }
    Ok(out)
}

async fn write_journal(
    lake: &Lake,
    o: &ReplayOptions,
    replayed: Vec<(i32, i64)>,
) -> anyhow::Result<String> {
    let now = chrono::Utc::now();
    let id = uuid::Uuid::new_v4().simple().to_string();
    let key = format!(
        "{JOURNALS}/{}-{}.json",
        now.format("%Y%m%dT%H%M%SZ"),
        &id[..8]
    );
    let journal = Journal {
        finished_at: now.to_rfc3339(),
        topic: o.target.raw_topic.clone(),
        filter: serde_json::to_value(&o.filter)?,
        fixes: o.fixes.iter().map(ToString::to_string).collect(),
        replayed,
    };
    lake.root
        .put_durable(&key, serde_json::to_vec_pretty(&journal)?)
        .await?;
    Ok(key)
}

/// The producer, and what fixing needs: the registry's decoder and the raw topic's schema id.
struct Sender {
    producer: AckProducer,
    raw_topic: String,
    dlq_topic: String,
    fixing: Option<(EventDecoder, u32, EventCodec)>,
}

/// How long a replay waits for the registry before it gives a letter up as undecodable.
const REGISTRY_PATIENCE: Duration = Duration::from_secs(60);

impl Sender {
    async fn connect(t: &Target, fixing: bool) -> anyhow::Result<Sender> {
        let producer = AckProducer::new(&t.kafka.idempotent_producer("northstar-replay", 60_000))
            .context("cannot create the Kafka producer")?;
        let fixing = if fixing {
            let registry = RegistryClient::with_auth(&t.registry_url, &t.registry_auth)
                .map_err(anyhow::Error::msg)?;
            let id = registry
                .register_with_retry(&value_subject(&t.raw_topic), EVENT_SCHEMA_V1, 30)
                .await
                .context("cannot register the event schema for the raw topic")?;
            Some((EventDecoder::new(registry), id, EventCodec::new()))
        } else {
            None
        };
        Ok(Sender {
            producer,
            raw_topic: t.raw_topic.clone(),
            dlq_topic: t.dlq_topic.clone(),
            fixing,
        })
    }

    /// The bytes to re-submit for `l`, and whether a fix changed them.
    async fn prepare(
        &mut self,
        l: &Letter,
        fixes: &[Fix],
    ) -> Result<(Vec<u8>, bool), (Skip, String)> {
        let payload = l.payload.clone().unwrap_or_default();
        let Some((decoder, id, codec)) = self.fixing.as_mut() else {
            return Ok((payload, false));
        };
        let give_up = CancellationToken::new();
        let timer = {
            let give_up = give_up.clone();
            tokio::spawn(async move {
                tokio::time::sleep(REGISTRY_PATIENCE).await;
                give_up.cancel();
            })
        };
        let decoded = decoder.decode(Some(&payload), &give_up).await;
        timer.abort();
        let mut event = decoded.map_err(|u| (Skip::Undecodable, u.to_string()))?;
        let applied =
            fix::apply(fixes, &mut event).map_err(|e| (Skip::FixFailed, e.to_string()))?;
        if applied == 0 {
            return Ok((payload, false));
        }
        let datum = codec.encode(&event).map_err(|e| {
            (
                Skip::FixFailed,
                format!("the fixed event does not encode: {e}"),
            )
        })?;
        Ok((wire::frame(*id, &datum), true))
    }

    async fn send(&mut self, l: &Letter, payload: &[u8]) -> anyhow::Result<()> {
        let recovery = (l.recovery_count + 1).to_string();
        let of = replay_of(&self.dlq_topic, l.dlq_partition, l.dlq_offset);
        let hdrs = OwnedHeaders::new_with_capacity(2)
            .insert(Header {
                key: headers::RECOVERY,
                value: Some(recovery.as_str()),
            })
            .insert(Header {
                key: headers::REPLAY_OF,
                value: Some(of.as_str()),
            });
        let mut rec = BaseRecord::to(&self.raw_topic)
            .payload(payload)
            .headers(hdrs);
        if let Some(k) = l.key.as_deref() {
            rec = rec.key(k);
        }
        self.producer
            .send(rec)
            .await
            .with_context(|| format!("cannot send the replay of {of}"))
    }
}
