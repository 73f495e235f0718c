//! The lake sink loop: clean events → Parquet files in the lake → ledger → offset commit.
//!
//! Contract: a flush of clean-topic partition `P` covers a contiguous offset range
//! `[first, last]` and writes one file per event date, hour and name, named after the range
//! (see [`super::layout`]). The range is then
//! recorded in the [ledger](super::ledger), and only then is the offset committed. A crash
//! before the ledger entry leaves an intent: the next owner of `P` flushes exactly the same
//! range again, rewriting the same files, so a file is never duplicated. Records whose source
//! position (processor input topic, partition, offset) is at or below the highest one already
//! in the lake for that source partition were re-emitted by a processor restoring a checkpoint
//! and are skipped, so each event is written once. A ledger that resumes a partition past its
//! end (the topic was recreated: its offsets, and so the file names, start again) is refused
//! with an error, never skipped ([`northstar_runtime::resume`]).
//!
//! Budgets ([`super::budget`], ADR 0011): past `max_buffered_bytes` over all partitions the
//! largest are flushed; past `max_event_names` per partition, new names share
//! `event_name=__other__` (the admitted names are in the ledger entry). A
//! partition revoked is forgotten before any flush, so it is never flushed after the revoke. A
//! flush whose upload fails `upload_attempts` times is given up without committing anything:
//! the partition is paused, its rows dropped, and after a backoff its range is read again from
//! Kafka and flushed exactly as before (same ledger intent, same files), while the poll loop
//! serves the other partitions.

mod rows;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use northstar_runtime::admin::Readiness;
use northstar_runtime::commit::OffsetCommitter;
use northstar_runtime::cursor::{self, Cursor};
use northstar_runtime::group_watch;
use northstar_runtime::kafka::{self, RevokeTracker};
use northstar_runtime::producer::AckProducer;
use northstar_runtime::Shutdown;
use northstar_schemas::headers::{self, dead_letter_headers, header_str, source_position};
use northstar_schemas::EventDecoder;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::message::{Message, OwnedMessage};
use rdkafka::producer::BaseRecord;
use rdkafka::TopicPartitionList;

use super::budget::{self, CATCH_ALL_NAME};
use super::dead_letters::{self, loader_failure, DeadRow};
use super::layout::{file_key, file_name, Table};
use super::ledger::{Entry, Ledger};
use super::parquet::{encode, Row};
use super::LakeConfig;
use crate::metrics;
use northstar_runtime::objstore::ObjectRoot as Lake;

/// Ledger entries kept per partition.
const LEDGER_KEEP: usize = 3;

/// One assigned partition of the clean topic.
#[derive(Debug)]
struct Part {
    /// First offset not yet in the lake: the start of the range being buffered.
    next: i64,
    /// One past the last record handled (buffered, skipped or dead-lettered), and whether a
    /// seek back to it is pending.
    cursor: Cursor,
    /// Highest source offset in the lake or the buffer, by `<topic>/<partition>`.
    sources: BTreeMap<String, i64>,
    /// Buffered rows by partition path (one file each at the flush).
    rows: BTreeMap<String, Vec<Row>>,
    /// Buffered dead-letter rows by partition path (the dead-letter table).
    dead: BTreeMap<String, Vec<DeadRow>>,
    bytes: usize,
    oldest: Option<Instant>,
    /// Earliest event time (µs) among the buffered rows.
    earliest_event: Option<i64>,
    /// Last offset of an interrupted flush that must be repeated exactly.
    replay_until: Option<i64>,
    /// Event names with their own directory (`max_event_names`), buffered rows included.
    names: std::collections::BTreeSet<String>,
    /// The partition's newest ledger entry: where a failed flush starts again from.
    base: Entry,
    /// While a failed flush waits to be repeated: when it is read again.
    paused_until: Option<Instant>,
    /// Failed flushes in a row (the backoff).
    failures: u32,
}

impl Part {
    fn row_count(&self) -> usize {
        self.rows.values().map(Vec::len).sum::<usize>()
            + self.dead.values().map(Vec::len).sum::<usize>()
    }

    fn open_files(&self) -> usize {
        self.rows.len() + self.dead.len()
    }

    /// Gives up the range being flushed: back to the last ledger entry, to read
    /// `[next, last]` again and flush it exactly as before after `backoff`.
    fn give_up(&mut self, last: i64, backoff: Duration) {
        self.cursor.rewind(self.next);
        self.sources = self.base.sources.clone();
        self.names = self.base.names.clone();
        self.rows.clear();
        self.dead.clear();
        self.bytes = 0;
        self.oldest = None;
        self.earliest_event = None;
        self.replay_until = Some(last);
        self.paused_until = Some(Instant::now() + backoff);
    }
}

/// Why a flush failed.
#[derive(Debug, thiserror::Error)]
enum FlushError {
    /// The object store (files or ledger): retried after a backoff.
    #[error("lake write: {0}")]
    Store(String),
    /// Anything else (encoding, a task): fatal.
    #[error(transparent)]
    Fatal(#[from] anyhow::Error),
}

/// The lake sink of one table.
pub struct LakeSink {
    config: LakeConfig,
    table: Table,
    /// The topic it reads.
    topic: String,
    /// The topic's id as the brokers reported it at the last assignment (recorded in ledger
    /// entries; outer `None`: not read since the last rebalance).
    topic_id: Option<Option<String>>,
    /// Its consumer group.
    group: String,
    consumer: StreamConsumer<RevokeTracker>,
    /// Dead letters of undecodable clean records (see `AckProducer` for why not a
    /// `FutureProducer`).
    producer: AckProducer,
    decoder: EventDecoder,
    lake: Lake,
    ledger: Ledger,
    parts: HashMap<i32, Part>,
    /// The offsets committed (only after the ledger entry covering them is written).
    committer: OffsetCommitter,
    /// Scratch buffer for source-partition keys.
    key_buf: String,
    /// The newest tracking-plan stamp seen, shared by the rows that carry it.
    plan_stamp: Option<Arc<str>>,
    /// The tracking plan whose types the events table's property columns take.
    plan: Option<Arc<northstar_schemas::plan::Plan>>,
    /// Partition paths by event hour (µs / 3.6e9) and event name: formatting dates and encoding
    /// names once per group instead of once per row.
    paths: HashMap<i64, HashMap<String, String>>,
}

impl LakeSink {
    /// A sink of `table`: the events table reads `topics.clean` in consumer group `group_id`,
    /// the dead-letter table `topics.dlq` in `<group_id>-dlq`.
    pub fn new(
        config: LakeConfig,
        table: Table,
        decoder: EventDecoder,
        lake: Lake,
    ) -> anyhow::Result<Self> {
        let (topic, group) = match table {
            Table::Events => (config.topics.clean.clone(), config.group_id.clone()),
            Table::DeadLetters => (
                config.topics.dlq.clone(),
                format!("{}-dlq", config.group_id),
            ),
        };
        let ccfg = config.kafka.manual_commit_consumer(
            "northstar-lake-sink",
            &group,
            kafka::fetch_wait_ms::LAKE_SINK,
        );
        let consumer: StreamConsumer<RevokeTracker> =
            ccfg.create_with_context(RevokeTracker::default())?;
        consumer.subscribe(&[topic.as_str()])?;
        let pcfg = config
            .kafka
            .idempotent_producer("northstar-lake-sink", 300_000);
        let producer = AckProducer::new(&pcfg)?;
        let ledger = Ledger::new(lake.clone(), &topic, LEDGER_KEEP);
        let plan = match &config.plan {
            Some(path) => Some(Arc::new(northstar_schemas::plan::Plan::load(path)?)),
            None => None,
        };
        Ok(Self {
            topic_id: None,
            committer: OffsetCommitter::new(topic.clone()),
            config,
            table,
            topic,
            group,
            consumer,
            producer,
            decoder,
            lake,
            ledger,
            parts: HashMap::new(),
            key_buf: String::new(),
            plan_stamp: None,
            plan,
            paths: HashMap::new(),
        })
    }

    /// Runs until `shutdown`; `readiness` is cleared while this sink is left without
    /// partitions and input waits (`northstar_runtime::group_watch`).
    pub async fn run(mut self, shutdown: Shutdown, readiness: Readiness) -> anyhow::Result<()> {
        let max_age = Duration::from_secs(self.config.max_file_age_secs);
        let mut tick = tokio::time::interval(Duration::from_millis(250));
        let mut watch_tick = tokio::time::interval(Duration::from_secs(5));
        watch_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut watch = self.config.kafka.group_watch();
        let group = self.group.clone();
        loop {
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => break,
                _ = watch_tick.tick() => {
                    let assigned = self.consumer.context().assigned();
                    let (consumer, topic) = (&self.consumer, self.topic.as_str());
                    tokio::task::block_in_place(|| {
                        group_watch::check(&mut watch, consumer, topic, &group, assigned, &readiness)
                    });
                }
                _ = tick.tick() => {
                    self.forget_revoked();
                    self.resume_paused();
                    let oldest = self.parts.values().filter_map(|p| p.oldest).min();
                    let age = oldest.map(|t| t.elapsed()).unwrap_or_default();
                    metrics::LAKE_OLDEST_UNFLUSHED
                        .with_label_values(&[self.table.label()])
                        .set(age.as_secs() as i64);
                    let earliest = self.parts.values().filter_map(|p| p.earliest_event).min();
                    let now = chrono::Utc::now().timestamp_micros();
                    metrics::LAKE_OLDEST_UNFLUSHED_EVENT
                        .with_label_values(&[self.table.label()])
                        .set(earliest.map_or(0, |t| (now - t).max(0) / 1_000_000));
                    let due: Vec<i32> = self
                        .parts
                        .iter()
                        .filter(|(_, p)| p.replay_until.is_none())
                        .filter(|(_, p)| p.oldest.is_some_and(|t| t.elapsed() >= max_age))
                        .map(|(&id, _)| id)
                        .collect();
                    if !due.is_empty() {
                        self.flush(&due, &shutdown, CommitMode::Async).await?;
                    }
                }
                msg = self.consumer.recv() => {
                    match msg {
                        Ok(m) => {
                            let m = m.detach();
                            self.handle(m, &shutdown).await?;
                        }
                        Err(e) => tracing::warn!(error = %e, "consume error"),
                    }
                    let due = self.due_by_size_or_open_files();
                    if !due.is_empty() {
                        self.flush(&due, &shutdown, CommitMode::Async).await?;
                    }
                }
            }
        }
        tracing::info!("draining: writing buffered files, committing");
        let all = self.flushable();
        self.flush(&all, &shutdown, CommitMode::Sync).await?;
        Ok(())
    }

    /// Partitions to flush after a record: those holding `max_file_bytes`, and while more than
    /// `max_open_files` files are buffered, the one holding the oldest rows.
    fn due_by_size_or_open_files(&self) -> Vec<i32> {
        let flushable = || self.parts.iter().filter(|(_, p)| p.replay_until.is_none());
        let mut due: Vec<i32> = flushable()
            .filter(|(_, p)| p.bytes >= self.config.max_file_bytes)
            .map(|(&id, _)| id)
            .collect();
        let open: usize = self.parts.values().map(Part::open_files).sum();
        if open > self.config.max_open_files {
            if let Some((&oldest, _)) = flushable()
                .filter(|(id, p)| p.oldest.is_some() && !due.contains(id))
                .min_by_key(|(_, p)| p.oldest)
            {
                metrics::LAKE_OPEN_FILES_CAPPED.inc();
                due.push(oldest);
            }
        }
        let total: usize = self.parts.values().map(|p| p.bytes).sum();
        if total > self.config.max_buffered_bytes {
            let left: Vec<(i32, usize)> = self
                .parts
                .iter()
                .filter(|(id, _)| !due.contains(id))
                .map(|(&id, p)| (id, p.bytes))
                .collect();
            let busy: Vec<i32> = self
                .parts
                .iter()
                .filter(|(_, p)| p.replay_until.is_some())
                .map(|(&id, _)| id)
                .collect();
            for p in budget::over_budget(&left, self.config.max_buffered_bytes, &busy) {
                metrics::LAKE_BUDGET_FLUSHES.inc();
                due.push(p);
            }
        }
        due
    }

    /// Partitions whose failed flush has waited its backoff: resumed and sought back to the
    /// start of their range, which is then read and flushed again.
    fn resume_paused(&mut self) {
        let due: Vec<i32> = self
            .parts
            .iter()
            .filter(|(_, p)| p.paused_until.is_some_and(|t| t <= Instant::now()))
            .map(|(&id, _)| id)
            .collect();
        for id in due {
            let Some(part) = self.parts.get_mut(&id) else {
                continue;
            };
            part.paused_until = None;
            let mut tpl = TopicPartitionList::new();
            tpl.add_partition(&self.topic, id);
            let (consumer, topic, next) = (&self.consumer, &self.topic, part.next);
            let resumed = consumer
                .resume(&tpl)
                .and_then(|()| cursor::seek(consumer, topic, id, next));
            match resumed {
                Ok(()) => tracing::info!(
                    partition = id,
                    from = next,
                    "reading the failed flush's range again"
                ),
                // The next record read is then out of sequence and seeks (`in_sequence`).
                Err(e) => tracing::warn!(partition = id, error = %e, "seek after a pause failed"),
            }
        }
        self.update_gauges();
    }

    /// Partitions that may flush now (not repeating an interrupted flush).
    fn flushable(&self) -> Vec<i32> {
        self.parts
            .iter()
            .filter(|(_, p)| p.replay_until.is_none())
            .map(|(&id, _)| id)
            .collect()
    }

    fn forget_revoked(&mut self) {
        let revoked = self.consumer.context().take_revoked();
        if !revoked.is_empty() {
            // Read again at the next assignment: the topic may have been recreated meanwhile.
            self.topic_id = None;
        }
        for p in revoked {
            self.committer.forget(p);
            if self.parts.remove(&p).is_some() {
                tracing::info!(
                    partition = p,
                    "partition revoked, dropping its unflushed rows (the next owner re-reads them)"
                );
            }
        }
        self.update_gauges();
    }

    fn update_gauges(&self) {
        let table = [self.table.label()];
        metrics::LAKE_OPEN_FILES
            .with_label_values(&table)
            .set(self.parts.values().map(|p| p.open_files() as i64).sum());
        metrics::LAKE_BUFFERED_ROWS
            .with_label_values(&table)
            .set(self.parts.values().map(|p| p.row_count() as i64).sum());
        metrics::LAKE_BUFFERED_BYTES
            .with_label_values(&table)
            .set(self.parts.values().map(|p| p.bytes as i64).sum());
        metrics::LAKE_PAUSED_PARTITIONS
            .with_label_values(&table)
            .set(
                self.parts
                    .values()
                    .filter(|p| p.paused_until.is_some())
                    .count() as i64,
            );
    }

    /// First record of a newly assigned partition: resume from the ledger (refused when it is
    /// past the partition's end).
    async fn open(&mut self, partition: i32, first_offset: i64) -> anyhow::Result<()> {
        let resume = self.ledger.resume(partition).await?;
        let next = match &resume.entry {
            Some(e) => e.next_offset,
            None => resume.interrupted.map_or(first_offset, |(first, _)| first),
        };
        let base = resume.entry.clone().unwrap_or_default();
        let sources = base.sources.clone();
        // A ledger past the partition's end belongs to an earlier incarnation of the topic:
        // its offsets (and file names) would be reused, so refuse rather than skip.
        let (consumer, topic) = (&self.consumer, &self.topic);
        let recorded = base.topic_id.clone();
        let current = match &self.topic_id {
            Some(id) => id.clone(),
            None => tokio::task::block_in_place(|| {
                northstar_runtime::resume::current_id(consumer, topic)
            }),
        };
        tokio::task::block_in_place(|| {
            northstar_runtime::resume::check(
                consumer,
                topic,
                partition,
                next,
                recorded.as_deref(),
                current.as_deref(),
                || {
                    (
                    "the lake ledger".to_string(),
                    "Recover: keep the old lake as it is and start the lake sink on a new root \
                     (the new topic's offsets would reuse the old files' names), or archive this \
                     table's files and its ledger first; see docs/operations.md, \"A recreated \
                     topic\"."
                        .to_string(),
                )
                },
            )
        })?;
        self.topic_id = Some(current);
        tracing::info!(
            partition,
            next,
            sources = sources.len(),
            interrupted = ?resume.interrupted,
            "partition resumed from the lake ledger"
        );
        if let Some((first, last)) = resume.interrupted {
            // The interrupted flush's files are rewritten under the same names; a write cut
            // short inside the store leaves a staging file, removed here.
            let stem = file_name(&self.topic, partition, first, last);
            let removed = self
                .lake
                .remove_staging_leftovers(self.table.dir(), &stem)
                .await?;
            if removed > 0 {
                tracing::info!(
                    partition,
                    removed,
                    "removed staging files of the interrupted flush"
                );
            }
        }
        self.parts.insert(
            partition,
            Part {
                next,
                cursor: Cursor::at(next),
                sources,
                rows: BTreeMap::new(),
                dead: BTreeMap::new(),
                bytes: 0,
                oldest: None,
                earliest_event: None,
                replay_until: resume.interrupted.map(|(_, last)| last),
                names: base.names.clone(),
                base,
                paused_until: None,
                failures: 0,
            },
        );
        Ok(())
    }

    /// Whether the record at `offset` is the next one `partition` expects; seeks when not.
    fn in_sequence(&mut self, topic: &str, partition: i32, offset: i64) -> anyhow::Result<bool> {
        let Some(part) = self.parts.get_mut(&partition) else {
            return Ok(false);
        };
        let step = part
            .cursor
            .follow(&self.consumer, topic, partition, offset)?;
        Ok(step.processes())
    }

    async fn handle(&mut self, msg: OwnedMessage, shutdown: &Shutdown) -> anyhow::Result<()> {
        self.forget_revoked();
        let (partition, offset) = (msg.partition(), msg.offset());
        if !self.parts.contains_key(&partition) {
            self.open(partition, offset).await?;
        }
        if self
            .parts
            .get(&partition)
            .is_some_and(|p| p.paused_until.is_some())
        {
            // Fetched before the pause: read again once the flush is repeated.
            return Ok(());
        }
        if !self.in_sequence(msg.topic(), partition, offset)? {
            return Ok(());
        }
        let source = msg.headers().and_then(source_position);
        let Some(part) = self.parts.get_mut(&partition) else {
            return Ok(());
        };
        part.cursor.advance(offset);
        part.oldest.get_or_insert_with(Instant::now);
        let (source_partition, source_offset) = match &source {
            Some(pos) => {
                // The key is built in a reused buffer: no allocation per record.
                use std::fmt::Write;
                self.key_buf.clear();
                let _ = write!(self.key_buf, "{}/{}", pos.topic, pos.partition);
                match part.sources.get_mut(self.key_buf.as_str()) {
                    Some(hw) if pos.offset <= *hw => {
                        metrics::LAKE_REPLAY_SKIPPED.inc();
                        return self.after_record(partition, offset, shutdown).await;
                    }
                    Some(hw) => *hw = pos.offset,
                    None => {
                        part.sources.insert(self.key_buf.clone(), pos.offset);
                    }
                }
                (pos.partition, pos.offset)
            }
            None => (partition, offset),
        };
        if self.table == Table::DeadLetters {
            let row = DeadRow::from_message(&msg);
            if let Some(part) = self.parts.get_mut(&partition) {
                part.bytes += row.size();
                if let Some(t) = row.dead_lettered_at {
                    part.earliest_event = Some(part.earliest_event.map_or(t, |e| e.min(t)));
                }
                part.dead.entry(row.partition_path()).or_default().push(row);
            }
            return self.after_record(partition, offset, shutdown).await;
        }
        match self.decoder.decode(msg.payload(), shutdown).await {
            Ok(event) => {
                let hdrs = msg.headers();
                let plan = hdrs
                    .and_then(|h| header_str(h, headers::PLAN))
                    .map(|stamp| self.shared_stamp(stamp));
                let plan_flags = hdrs
                    .and_then(|h| header_str(h, headers::PLAN_FLAGS))
                    .map(Box::from);
                let cap = self.config.max_event_names;
                let own = self
                    .parts
                    .get_mut(&partition)
                    .is_some_and(|p| budget::admit(&mut p.names, cap, event.event_name()));
                let dir_name = if own {
                    event.event_name()
                } else {
                    metrics::LAKE_NAMES_CAPPED.inc();
                    CATCH_ALL_NAME
                };
                let path = self.path_of(event.timestamp, dir_name);
                let size = msg.payload().map_or(0, <[u8]>::len) + 64;
                if let Some(part) = self.parts.get_mut(&partition) {
                    part.bytes += size;
                    let t = event.timestamp;
                    part.earliest_event = Some(part.earliest_event.map_or(t, |e| e.min(t)));
                    part.rows.entry(path).or_default().push(Row {
                        event,
                        clean_partition: partition,
                        clean_offset: offset,
                        source_partition,
                        source_offset,
                        plan,
                        plan_flags,
                    });
                }
            }
            Err(u) => {
                tracing::warn!(
                    partition,
                    offset,
                    reason = u.reason,
                    "undecodable clean record sent to the dead-letter topic"
                );
                metrics::LAKE_REJECTED.with_label_values(&[u.reason]).inc();
                let hdrs = dead_letter_headers(&loader_failure(&msg, u));
                let mut rec = BaseRecord::to(&self.config.topics.dlq).headers(hdrs);
                if let Some(p) = msg.payload() {
                    rec = rec.payload(p);
                }
                if let Some(k) = msg.key() {
                    rec = rec.key(k);
                }
                self.producer
                    .send(rec)
                    .await
                    .map_err(|e| anyhow::anyhow!("cannot enqueue a dead-letter record: {e}"))?;
            }
        }
        self.after_record(partition, offset, shutdown).await
    }

    /// Completes an interrupted flush once its last offset has been handled again.
    async fn after_record(
        &mut self,
        partition: i32,
        offset: i64,
        shutdown: &Shutdown,
    ) -> anyhow::Result<()> {
        let repeat = self
            .parts
            .get(&partition)
            .is_some_and(|p| p.replay_until == Some(offset));
        if repeat {
            tracing::info!(partition, offset, "repeating the interrupted flush");
            if let Some(p) = self.parts.get_mut(&partition) {
                p.replay_until = None;
            }
            self.flush(&[partition], shutdown, CommitMode::Async)
                .await?;
        }
        self.update_gauges();
        Ok(())
    }

    /// Waits for every dead-letter record to be acknowledged.
    async fn await_dead_letters(&mut self) -> anyhow::Result<()> {
        self.producer
            .delivered()
            .await
            .map_err(|e| anyhow::anyhow!("dead-letter record: {e}"))
    }

    /// Writes the buffered range of each of `partitions` as files, records it in the ledger,
    /// then commits the offsets.
    async fn flush(
        &mut self,
        partitions: &[i32],
        shutdown: &Shutdown,
        mode: CommitMode,
    ) -> anyhow::Result<()> {
        let started = Instant::now();
        // A partition revoked since the last record is never flushed: its next owner may
        // already be reading the same range.
        self.forget_revoked();
        self.await_dead_letters().await?;
        let mut durable = Vec::with_capacity(partitions.len());
        for &p in partitions {
            let Some(mut part) = self.parts.remove(&p) else {
                continue;
            };
            match self.flush_part(p, &mut part, shutdown).await {
                Ok(()) => {
                    part.failures = 0;
                    durable.push((p, part.next));
                }
                Err(FlushError::Store(e)) if !shutdown.is_cancelled() => {
                    self.pause(p, &mut part, &e)
                }
                Err(e) => {
                    self.parts.insert(p, part);
                    return Err(e.into());
                }
            }
            self.parts.insert(p, part);
        }
        self.committer.commit(&self.consumer, durable, mode)?;
        self.update_gauges();
        metrics::LAKE_FLUSH_SECONDS.observe(started.elapsed().as_secs_f64());
        Ok(())
    }

    /// A flush of `partition` failed against the object store: nothing was committed; pause
    /// the partition and repeat the range after a backoff.
    fn pause(&self, partition: i32, part: &mut Part, error: &str) {
        part.failures += 1;
        let wait = budget::backoff(part.failures);
        let last = part.cursor.next() - 1;
        tracing::warn!(
            partition,
            first = part.next,
            last,
            failures = part.failures,
            retry_in_secs = wait.as_secs(),
            error,
            "lake flush failed; partition paused, its range is read and flushed again after the backoff"
        );
        part.give_up(last, wait);
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition(&self.topic, partition);
        if let Err(e) = self.consumer.pause(&tpl) {
            tracing::warn!(partition, error = %e, "cannot pause the partition; its records are ignored until the retry");
        }
    }

    async fn flush_part(
        &self,
        partition: i32,
        part: &mut Part,
        shutdown: &Shutdown,
    ) -> Result<(), FlushError> {
        if part.cursor.next() == part.next {
            return Ok(());
        }
        let (first, last) = (part.next, part.cursor.next() - 1);
        let topic = &self.topic;
        let buffers = std::mem::take(&mut part.rows);
        let dead = std::mem::take(&mut part.dead);
        let store = |e: super::ledger::LedgerError| {
            metrics::LAKE_UPLOAD_ERRORS.inc();
            FlushError::Store(e.to_string())
        };
        if !buffers.is_empty() || !dead.is_empty() {
            self.ledger
                .begin(partition, first, last)
                .await
                .map_err(store)?;
        }
        // One encoding job per file: the events table's or the dead-letter table's.
        type Job = Box<
            dyn FnOnce() -> Result<super::parquet::Encoded, super::parquet::EncodeError> + Send,
        >;
        let mut jobs: Vec<(String, u64, Job)> = Vec::new();
        for (path, mut rows) in buffers {
            let n = rows.len() as u64;
            let plan = self.plan.clone();
            jobs.push((
                path,
                n,
                Box::new(move || encode(&mut rows, plan.as_deref())),
            ));
        }
        for (path, mut rows) in dead {
            let n = rows.len() as u64;
            jobs.push((path, n, Box::new(move || dead_letters::encode(&mut rows))));
        }
        for (path, count, job) in jobs {
            let key = file_key(self.table, &path, topic, partition, first, last);
            let encoded = tokio::task::spawn_blocking(job)
                .await
                .map_err(anyhow::Error::from)?
                .map_err(anyhow::Error::from)?;
            metrics::LAKE_TYPE_CONFLICTS.inc_by(encoded.type_conflicts);
            let bytes = encoded.bytes;
            let size = bytes.len() as u64;
            let mut attempt = 0u32;
            loop {
                match self.lake.put_durable(&key, bytes.clone()).await {
                    Ok(()) => break,
                    Err(e) => {
                        metrics::LAKE_UPLOAD_ERRORS.inc();
                        attempt += 1;
                        if attempt >= self.config.upload_attempts || shutdown.is_cancelled() {
                            return Err(FlushError::Store(format!(
                                "cannot write {key} ({attempt} attempts): {e}; offsets not committed"
                            )));
                        }
                        tracing::warn!(key, attempt, error = %e, "lake write failed, retrying");
                        tokio::time::sleep(Duration::from_millis(500) * attempt).await;
                    }
                }
            }
            let table = [self.table.label()];
            metrics::LAKE_FILES.with_label_values(&table).inc();
            metrics::LAKE_BYTES.with_label_values(&table).inc_by(size);
            metrics::LAKE_ROWS.with_label_values(&table).inc_by(count);
            tracing::info!(key, rows = count, bytes = size, "parquet file written");
        }
        let entry = Entry {
            next_offset: last + 1,
            sources: part.sources.clone(),
            names: part.names.clone(),
            topic_id: self.topic_id.clone().flatten(),
        };
        self.ledger
            .commit(partition, first, &entry)
            .await
            .map_err(store)?;
        part.base = entry;
        part.next = last + 1;
        part.bytes = 0;
        part.oldest = None;
        part.earliest_event = None;
        Ok(())
    }
}
