//! The Kafka loop: consume raw events, write clean/dead-letter/aggregate records, commit.
//!
//! Contract: an input offset is committed only after every output produced from it — its
//! clean or dead-letter record and the aggregate updates that include it — was acknowledged
//! by the broker, and a checkpoint covering it is durable (made by the background
//! `checkpoint::writer`, which reports back; the loop never waits for it, except at shutdown, for
//! at most half the grace period). Every output carries its source topic, partition and offset
//! in headers.
//! A delivery failure stops the processor without committing, so a restart replays. Every
//! aggregate record of one input partition goes to the same aggregates partition (input
//! partition mod their count), in emission order, so the watermark a record reports (the one of
//! the previous emission) vouches for every earlier update of that input partition.

use rustc_hash::FxHashMap as HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::FutureExt;

use northstar_runtime::admin::Readiness;
use northstar_runtime::commit::OffsetCommitter;
use northstar_runtime::cursor::{self, Cursor, Step};
use northstar_runtime::group_watch;
use northstar_runtime::kafka::{self, RevokeTracker};
use northstar_runtime::producer::{AckError, AckProducer};
use northstar_runtime::Shutdown;
use northstar_schemas::aggregate::AggregateCodec;
use northstar_schemas::headers::{self, source_headers};
use northstar_schemas::{wire, EventDecoder, RegistryClient};
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{BorrowedMessage, Message};
use rdkafka::producer::BaseRecord;

use crate::catalog::Catalog;
use crate::checkpoint::writer::{self, Job, Report};
use crate::checkpoint::{CheckpointError, Checkpoints};
use crate::clock::ClockBounds;
use crate::config::ProcessorConfig;
use crate::metrics;
use crate::plan_gate::PlanGate;
use crate::state::{PartitionState, Source};
use crate::validate::Invalid;
use cadence::Cadence;
use northstar_runtime::objstore::ObjectRoot;

/// How many ready messages are processed in a row before the loop looks at its timers and
/// the shutdown signal again.
const READY_BATCH: usize = 500;

/// How often an instance without partitions checks whether its group is stuck.
const WATCH_INTERVAL: Duration = Duration::from_secs(5);

/// A fatal pipeline error (the process exits; a restart replays from the last commit).
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error("kafka: {0}")]
    Kafka(#[from] KafkaError),
    #[error(transparent)]
    Delivery(#[from] AckError),
    #[error("encoding an output failed: {0}")]
    Encode(String),
    #[error("checkpoint: {0}")]
    Checkpoint(String),
    #[error("topic {0} has no partitions (create the topics first)")]
    NoTopic(String),
    #[error(transparent)]
    Resume(#[from] northstar_runtime::resume::ResumeError),
    #[error(
        "partition {partition} of {topic}: the consumer group {group} has read it up to offset \
         {offset} (the partition starts at {low}), but there is no checkpoint for it under \
         {root}; starting with empty state would lose its deduplication ids and the input of \
         its open windows. Point checkpoint_root at this group's checkpoints (shared by every \
         instance), or accept the loss with --allow-empty-state (NORTHSTAR_ALLOW_EMPTY_STATE=true): \
         the windows that began before it are then marked as missing input"
    )]
    NoCheckpoint {
        topic: String,
        partition: i32,
        group: String,
        offset: i64,
        low: i64,
        root: String,
    },
}

/// Where an output goes.
#[derive(Clone, Copy, Debug)]
enum Dest {
    Clean,
    DeadLetter,
    Aggregates,
}

/// An output record until it is handed to the producer; its key and payload are ranges of
/// the outbox's byte arena (one buffer reused by every burst, no allocation per record).
struct Outgoing {
    dest: Dest,
    /// An explicit partition (aggregates), else the producer's partitioner by key.
    partition: Option<i32>,
    key: Option<std::ops::Range<usize>>,
    payload: Option<std::ops::Range<usize>>,
    headers: rdkafka::message::OwnedHeaders,
}

/// Outputs not yet handed to the producer.
#[derive(Default)]
struct Outbox {
    records: Vec<Outgoing>,
    bytes: Vec<u8>,
}

impl Outbox {
    fn push(
        &mut self,
        dest: Dest,
        partition: Option<i32>,
        key: Option<&[u8]>,
        payload: Option<&[u8]>,
        headers: rdkafka::message::OwnedHeaders,
    ) {
        let mut range = |b: &[u8]| {
            let start = self.bytes.len();
            self.bytes.extend_from_slice(b);
            start..self.bytes.len()
        };
        let key = key.map(&mut range);
        let payload = payload.map(&mut range);
        self.records.push(Outgoing {
            dest,
            partition,
            key,
            payload,
            headers,
        });
    }

    /// Queues a record whose key and payload `key` and `payload` append to the arena.
    fn push_with(
        &mut self,
        dest: Dest,
        partition: Option<i32>,
        headers: rdkafka::message::OwnedHeaders,
        key: impl FnOnce(&mut Vec<u8>),
        payload: impl FnOnce(&mut Vec<u8>),
    ) {
        let start = self.bytes.len();
        key(&mut self.bytes);
        let mid = self.bytes.len();
        payload(&mut self.bytes);
        self.records.push(Outgoing {
            dest,
            partition,
            key: Some(start..mid),
            payload: Some(mid..self.bytes.len()),
            headers,
        });
    }

    fn len(&self) -> usize {
        self.records.len()
    }
}

/// The per-partition counters of the hot path, looked up once per partition.
struct PartitionCounters {
    /// The partition as a metric label.
    label: Arc<str>,
    events_in: prometheus::IntCounter,
    events_out: prometheus::IntCounter,
    duplicates: prometheus::IntCounter,
}

impl PartitionCounters {
    fn new(p: &str) -> Self {
        Self {
            label: p.into(),
            events_in: metrics::EVENTS_IN.with_label_values(&[p]),
            events_out: metrics::EVENTS_OUT.with_label_values(&[p]),
            duplicates: metrics::DUPLICATES.with_label_values(&[p]),
        }
    }
}

/// The processor's pipeline.
pub struct Pipeline {
    config: ProcessorConfig,
    consumer: Arc<StreamConsumer<RevokeTracker>>,
    producer: AckProducer,
    decoder: EventDecoder,
    agg_codec: AggregateCodec,
    clean_schema_id: u32,
    agg_schema_id: u32,
    partitions: HashMap<i32, PartitionState>,
    /// Per partition, the next offset its state expects (to commit, covering records processed
    /// so far) and whether a seek back to it is pending.
    cursors: HashMap<i32, Cursor>,
    committer: OffsetCommitter,
    /// Outputs not yet handed to the producer (at most `output_burst`).
    outbox: Outbox,
    counters: HashMap<i32, PartitionCounters>,
    checkpoints: Checkpoints,
    /// The background checkpoint writer, and its reports (taken by `run`).
    writer: writer::Handle,
    reports: Option<tokio::sync::mpsc::UnboundedReceiver<Report>>,
    /// Partitions with a checkpoint handed to the writer and not yet durable (by generation).
    in_flight: HashMap<i32, u64>,
    /// Each held partition's generation (a new one at each assignment), and the next one.
    generations: HashMap<i32, u64>,
    next_generation: u64,
    /// The offset of each partition's newest durable checkpoint.
    checkpointed: HashMap<i32, i64>,
    /// The checkpoint store is failing: paused partitions and the next retry.
    store_outage: Option<outage::StoreOutage>,
    last_checkpoint: Instant,
    catalog: Arc<Catalog>,
    /// The tracking plan (enforced and shadow) and its policies.
    gate: PlanGate,
    /// The allowed lateness in force (the catalog's, else the configuration's).
    lateness_ms: i64,
    clock: ClockBounds,
    clean_topic: Arc<str>,
    dlq_topic: Arc<str>,
    aggregates_topic: Arc<str>,
    /// Partitions of the aggregates topic.
    aggregates_partitions: i32,
    /// How often ticks emit (slower while catching up on a backlog).
    cadence: Cadence,
    last_emission: Instant,
}

impl Pipeline {
    pub fn new(
        config: ProcessorConfig,
        catalog: Arc<Catalog>,
        gate: PlanGate,
        registry: RegistryClient,
        clean_schema_id: u32,
        agg_schema_id: u32,
    ) -> Result<Self, PipelineError> {
        let root = ObjectRoot::open(&config.checkpoint_root)
            .map_err(|e| PipelineError::Checkpoint(format!("{}: {e}", config.checkpoint_root)))?;
        let checkpoints = Checkpoints::new(
            root,
            &config.group_id,
            &config.topics.raw,
            config.checkpoints_kept,
            catalog.clone(),
        )
        .with_members(gate.members());
        let (writer, reports) = writer::spawn(checkpoints.clone());
        let ccfg = config.kafka.manual_commit_consumer(
            "northstar-stream-processor",
            &config.group_id,
            kafka::fetch_wait_ms::PROCESSOR,
        );
        let consumer: StreamConsumer<RevokeTracker> =
            ccfg.create_with_context(RevokeTracker::default())?;
        consumer.subscribe(&[config.topics.raw.as_str()])?;
        let pcfg = config
            .kafka
            .idempotent_producer("northstar-stream-processor", 300_000);
        let producer = AckProducer::new(&pcfg)?;
        let aggregates_partitions = partition_count(&consumer, &config.topics.aggregates)?;
        // Shown from the start, so that "no failure yet" is a 0, not a missing series.
        metrics::CHECKPOINT_STORE_UNAVAILABLE.set(0);
        metrics::CHECKPOINT_FAILURES.inc_by(0);
        Ok(Self {
            consumer: Arc::new(consumer),
            producer,
            decoder: EventDecoder::new(registry),
            agg_codec: AggregateCodec::new(),
            clean_schema_id,
            agg_schema_id,
            partitions: HashMap::default(),
            cursors: HashMap::default(),
            committer: OffsetCommitter::new(config.topics.raw.clone()),
            outbox: Outbox::default(),
            counters: HashMap::default(),
            checkpoints,
            writer,
            reports: Some(reports),
            in_flight: HashMap::default(),
            generations: HashMap::default(),
            next_generation: 0,
            checkpointed: HashMap::default(),
            store_outage: None,
            last_checkpoint: Instant::now(),
            lateness_ms: config.lateness_ms(&catalog),
            catalog,
            gate,
            clock: config.clock_bounds(),
            clean_topic: config.topics.clean.as_str().into(),
            dlq_topic: config.topics.dlq.as_str().into(),
            aggregates_topic: config.topics.aggregates.as_str().into(),
            aggregates_partitions,
            cadence: Cadence::new(
                config.catch_up_after_ms as i64,
                Duration::from_millis(config.catch_up_emit_interval_ms),
            ),
            last_emission: Instant::now(),
            config,
        })
    }

    /// Runs until `shutdown`, then flushes and commits what was processed; `readiness` is
    /// cleared while this instance is left without partitions and input waits
    /// (`northstar_runtime::group_watch`).
    pub async fn run(
        mut self,
        shutdown: Shutdown,
        readiness: Readiness,
    ) -> Result<(), PipelineError> {
        let mut tick = tokio::time::interval(Duration::from_millis(self.config.emit_interval_ms));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut watch_tick = tokio::time::interval(WATCH_INTERVAL);
        watch_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut watch = self.config.kafka.group_watch();
        // Messages borrow the consumer (no copy); a local handle leaves `self` free.
        let consumer = self.consumer.clone();
        let mut reports = self
            .reports
            .take()
            .ok_or_else(|| PipelineError::Checkpoint("the pipeline runs once".into()))?;
        loop {
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => break,
                Some(report) = reports.recv() => self.on_report(report),
                _ = tick.tick() => {
                    let now = wall_clock_ms();
                    metrics::CATCHING_UP.set(i64::from(self.cadence.behind(now)));
                    if self.cadence.due(now, self.last_emission.elapsed()) {
                        self.flush_and_commit(CommitMode::Async).await?;
                    }
                }
                _ = watch_tick.tick() => {
                    let assigned = consumer.context().assigned();
                    let (topic, group) = (&self.config.topics.raw, &self.config.group_id);
                    tokio::task::block_in_place(|| {
                        group_watch::check(&mut watch, &consumer, topic, group, assigned, &readiness)
                    });
                }
                msg = consumer.recv() => {
                    let mut next = Some(msg);
                    // Then whatever else is ready, without a trip through `select!` each.
                    let mut budget = READY_BATCH;
                    while let Some(msg) = next.take() {
                        match msg {
                            Ok(m) => self.process(&m, &shutdown).await?,
                            Err(e) => tracing::warn!(error = %e, "consume error"),
                        }
                        if self.producer.unconfirmed() >= self.config.max_pending_outputs as u64 {
                            self.flush_and_commit(CommitMode::Async).await?;
                        }
                        budget -= 1;
                        if budget > 0 {
                            next = consumer.recv().now_or_never();
                        }
                    }
                }
            }
        }
        tracing::info!("draining: emitting windows, waiting for acknowledgements, committing");
        self.flush_and_commit(CommitMode::Sync).await?;
        self.await_checkpoints(&mut reports).await;
        self.commit(CommitMode::Sync)?;
        let producer = &self.producer;
        let _ = tokio::task::block_in_place(|| producer.flush(Duration::from_secs(30)));
        Ok(())
    }

    async fn process(
        &mut self,
        msg: &BorrowedMessage<'_>,
        shutdown: &Shutdown,
    ) -> Result<(), PipelineError> {
        self.forget_revoked();
        let (topic, partition, offset) = (msg.topic(), msg.partition(), msg.offset());
        if !self.in_sequence(topic, partition, offset).await? {
            return Ok(());
        }
        self.cadence.saw(msg.timestamp().to_millis());
        let counters = self
            .counters
            .entry(partition)
            .or_insert_with(|| PartitionCounters::new(&partition.to_string()));
        counters.events_in.inc();
        let p = counters.label.clone();
        match self.decoder.decode(msg.payload(), shutdown).await {
            Err(u) => self.reject(msg, &p, Invalid::undecodable(u), None).await?,
            Ok(mut event) => match self.admit(msg, &mut event) {
                Err(invalid) => self.reject(msg, &p, invalid, Some(event)).await?,
                Ok(corrected) => self.judge(msg, &p, event, corrected).await?,
            },
        }
        if let Some(c) = self.cursors.get_mut(&partition) {
            c.advance(offset);
        }
        Ok(())
    }

    /// Queues an output. With `output_burst` > 1, outputs go to the producer in bursts and each
    /// burst waits for the previous one's acknowledgements (see the setting).
    async fn enqueue(
        &mut self,
        dest: Dest,
        key: Option<&[u8]>,
        payload: Option<&[u8]>,
        headers: rdkafka::message::OwnedHeaders,
    ) -> Result<(), PipelineError> {
        self.enqueue_to(dest, None, key, payload, headers).await
    }

    /// [`Pipeline::enqueue`] to an explicit partition.
    async fn enqueue_to(
        &mut self,
        dest: Dest,
        partition: Option<i32>,
        key: Option<&[u8]>,
        payload: Option<&[u8]>,
        headers: rdkafka::message::OwnedHeaders,
    ) -> Result<(), PipelineError> {
        self.outbox.push(dest, partition, key, payload, headers);
        self.after_push().await
    }

    /// Sends the queued outputs once they make a burst.
    async fn after_push(&mut self) -> Result<(), PipelineError> {
        let burst = self.config.output_burst.max(1);
        if self.outbox.len() >= burst {
            if burst > 1 {
                self.await_delivered().await?;
            }
            self.send_outbox().await?;
        }
        Ok(())
    }

    /// Hands every queued output to the producer, in order, waiting for acknowledgements while
    /// its queue is full.
    async fn send_outbox(&mut self) -> Result<(), PipelineError> {
        let mut outbox = std::mem::take(&mut self.outbox);
        for out in outbox.records.drain(..) {
            let topic = match out.dest {
                Dest::Clean => &self.clean_topic,
                Dest::DeadLetter => &self.dlq_topic,
                Dest::Aggregates => &self.aggregates_topic,
            };
            let mut rec = BaseRecord::to(topic).headers(out.headers);
            if let Some(p) = out.partition {
                rec = rec.partition(p);
            }
            if let Some(key) = out.key {
                rec = rec.key(&outbox.bytes[key]);
            }
            if let Some(payload) = out.payload {
                rec = rec.payload(&outbox.bytes[payload]);
            }
            self.producer.send(rec).await?;
        }
        outbox.bytes.clear();
        self.outbox = outbox;
        Ok(())
    }

    /// Hands queued outputs to the producer and waits until every output is acknowledged.
    async fn await_pending(&mut self) -> Result<(), PipelineError> {
        self.send_outbox().await?;
        self.await_delivered().await
    }

    async fn await_delivered(&mut self) -> Result<(), PipelineError> {
        Ok(self.producer.delivered().await?)
    }

    /// Queues the aggregate updates of one partition's changed and final windows (its input
    /// processed up to `next`), and updates its state gauges.
    async fn emit_partition(&mut self, partition: i32, next: i64) -> Result<(), PipelineError> {
        let Some(state) = self.partitions.get_mut(&partition) else {
            return Ok(());
        };
        let watermark = state.watermark_ms();
        let p = partition.to_string();
        metrics::WATERMARK
            .with_label_values(&[&p])
            .set(watermark.max(0) / 1000);
        if watermark != i64::MIN {
            metrics::WATERMARK_LAG
                .with_label_values(&[&p])
                .set(chrono_secs() - watermark / 1000);
        }
        metrics::STATE_IDS
            .with_label_values(&[&p])
            .set(state.remembered_ids() as i64);
        metrics::STATE_BYTES
            .with_label_values(&[&p])
            .set(state.dedup_bytes() as i64);
        metrics::OPEN_WINDOWS
            .with_label_values(&[&p])
            .set(state.open_windows() as i64);
        let emitted = state.drain();
        let mut finals = 0u64;
        let total = emitted.len() as u64;
        // Owned: `self` is borrowed mutably between the records.
        let topic = self.config.topics.raw.clone();
        let source = Source {
            topic: &topic,
            partition,
            offset: next - 1,
        };
        let to = partition.rem_euclid(self.aggregates_partitions);
        for e in &emitted {
            let slots = self.slots(e.kpi, e.window_ms);
            let headers = source_headers(source.topic, partition, source.offset);
            let (outbox, codec, schema_id) =
                (&mut self.outbox, &self.agg_codec, self.agg_schema_id);
            self.partitions[&partition].view(e, source, |agg| {
                outbox.push_with(
                    Dest::Aggregates,
                    Some(to),
                    headers,
                    |key| agg.write_record_key(slots, key),
                    |payload| {
                        wire::put_header(payload, schema_id);
                        codec.write(agg, payload);
                    },
                );
            });
            self.after_push().await?;
            finals += u64::from(e.is_final);
        }
        for (is_final, n) in [("true", finals), ("false", total - finals)] {
            if n > 0 {
                metrics::AGGREGATES_OUT
                    .with_label_values(&[p.as_str(), is_final])
                    .inc_by(n);
            }
        }
        Ok(())
    }

    /// Emits changed and final windows, waits for every pending output, then commits.
    async fn flush_and_commit(&mut self, mode: CommitMode) -> Result<(), PipelineError> {
        self.last_emission = Instant::now();
        self.forget_revoked();
        metrics::ASSIGNED.set(self.consumer.context().assigned() as i64);
        let mut partitions: Vec<i32> = self.partitions.keys().copied().collect();
        partitions.sort_unstable();
        for partition in partitions {
            if let Some(next) = self.cursors.get(&partition).map(Cursor::next) {
                self.emit_partition(partition, next).await?;
            }
        }
        self.await_pending().await?;
        // Every output up to `processed` is acknowledged and no window is dirty: checkpoint.
        let due = match &self.store_outage {
            Some(outage) => outage.retry_due(),
            None => {
                self.last_checkpoint.elapsed()
                    >= Duration::from_millis(self.config.checkpoint_interval_ms)
            }
        };
        if due || matches!(mode, CommitMode::Sync) {
            self.checkpoint().await?;
        }
        self.commit(mode)
    }

    /// Commits offsets at the durable checkpoints' positions (they show lag; restores use the
    /// checkpoints).
    fn commit(&mut self, mode: CommitMode) -> Result<(), PipelineError> {
        let durable = self.checkpointed.iter().map(|(&p, &next)| (p, next));
        for (partition, next) in self.committer.commit(&*self.consumer, durable, mode)? {
            let p = partition.to_string();
            metrics::COMMITS.with_label_values(&[&p]).inc();
            metrics::COMMITTED_OFFSET.with_label_values(&[&p]).set(next);
        }
        Ok(())
    }
}

impl Pipeline {
    /// The ring size of the record keys of KPI `kpi`'s windows of length `window_ms`.
    fn slots(&self, kpi: usize, window_ms: i64) -> i64 {
        self.catalog.kpis[kpi]
            .windows
            .iter()
            .find(|w| w.millis == window_ms)
            .map_or(1, |w| w.retained_windows(self.lateness_ms))
    }

    /// Hands the writer a checkpoint of every partition that moved since its last one and
    /// has none in flight (`checkpoint::writer`); the loop goes on meanwhile.
    async fn checkpoint(&mut self) -> Result<(), PipelineError> {
        let mut partitions: Vec<(i32, i64)> = self
            .cursors
            .iter()
            .map(|(p, c)| (*p, c.next()))
            .filter(|(p, next)| self.checkpointed.get(p) != Some(next))
            .filter(|(p, _)| !self.in_flight.contains_key(p))
            .collect();
        partitions.sort_unstable();
        let topic_id = self.checkpoints.topic_id().flatten().map(str::to_string);
        for (partition, next_offset) in partitions {
            let (Some(state), Some(&generation)) = (
                self.partitions.get_mut(&partition),
                self.generations.get(&partition),
            ) else {
                continue;
            };
            let job = Job::save(partition, generation, next_offset, state, topic_id.clone());
            if !self.writer.send(job) {
                return Err(PipelineError::Checkpoint(
                    "the checkpoint writer stopped".into(),
                ));
            }
            self.in_flight.insert(partition, generation);
        }
        if self.store_outage.is_some() && self.in_flight.is_empty() {
            // Nothing is being written (partitions whose restore failed): ask the store itself.
            match self.checkpoints.probe().await {
                Ok(()) => self.store_recovered(),
                Err(e) => self.store_failed(&e.to_string(), Vec::new()),
            }
        }
        self.last_checkpoint = Instant::now();
        Ok(())
    }

    /// What the checkpoint writer reports: a durable checkpoint moves the committable offset;
    /// a failure pauses input until a job succeeds (`outage`).
    fn on_report(&mut self, report: Report) {
        match report {
            Report::Done {
                partition,
                generation,
                next_offset,
                bytes,
                seconds,
                segments,
            } => {
                if self.in_flight.get(&partition) == Some(&generation) && next_offset.is_some() {
                    self.in_flight.remove(&partition);
                }
                let p = partition.to_string();
                metrics::CHECKPOINT_WRITTEN
                    .with_label_values(&[&p])
                    .inc_by(bytes);
                let current = self.generations.get(&partition) == Some(&generation);
                if let (true, Some(next)) = (current, next_offset) {
                    self.checkpointed.insert(partition, next);
                    metrics::CHECKPOINT_BYTES
                        .with_label_values(&[&p])
                        .set(bytes as i64);
                    metrics::CHECKPOINT_OFFSET
                        .with_label_values(&[&p])
                        .set(next);
                    metrics::CHECKPOINT_SEGMENTS
                        .with_label_values(&[&p])
                        .set(segments as i64);
                    metrics::CHECKPOINT_SECONDS.observe(seconds);
                    metrics::LAST_CHECKPOINT.set(chrono_secs());
                }
                if self.store_outage.is_some() {
                    self.store_recovered();
                }
            }
            Report::Failed { partition, error } => {
                tracing::debug!(partition, "checkpoint write failed");
                let all = self.cursors.iter().map(|(&p, c)| (p, c.next())).collect();
                self.store_failed(&error, all);
            }
        }
    }

    /// At shutdown: waits (at most half the grace period) for the checkpoints handed over.
    async fn await_checkpoints(
        &mut self,
        reports: &mut tokio::sync::mpsc::UnboundedReceiver<Report>,
    ) {
        let wait = Duration::from_secs((self.config.shutdown_grace_secs / 2).max(1));
        let deadline = tokio::time::Instant::now() + wait;
        while !self.in_flight.is_empty() {
            match tokio::time::timeout_at(deadline, reports.recv()).await {
                Ok(Some(report)) => self.on_report(report),
                Ok(None) | Err(_) => {
                    tracing::warn!(
                        partitions = ?self.in_flight.keys().collect::<Vec<_>>(),
                        "shutting down before these checkpoints were durable: offsets stay at \
                         the previous ones (the input after them is replayed)"
                    );
                    break;
                }
            }
        }
    }
}

/// The number of partitions of `topic` (refuses a topic that does not exist).
fn partition_count(
    consumer: &StreamConsumer<RevokeTracker>,
    topic: &str,
) -> Result<i32, PipelineError> {
    let md = tokio::task::block_in_place(|| {
        consumer.fetch_metadata(Some(topic), Duration::from_secs(30))
    })?;
    let n = md
        .topics()
        .iter()
        .filter(|t| t.name() == topic)
        .map(|t| t.partitions().len())
        .sum::<usize>();
    if n == 0 {
        return Err(PipelineError::NoTopic(topic.to_string()));
    }
    Ok(i32::try_from(n).unwrap_or(i32::MAX))
}

fn chrono_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Reads the source position of a record derived by this processor (for sinks and tests).
pub fn source_of(msg: &BorrowedMessage<'_>) -> Option<headers::SourcePosition> {
    msg.headers().and_then(headers::source_position)
}

mod accept;
mod cadence;
mod outage;
mod partitions;
mod reject;

/// Milliseconds since the epoch by the wall clock (0 before 1970).
fn wall_clock_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}
