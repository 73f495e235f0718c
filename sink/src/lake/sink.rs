//! The lake sink loop: clean events → Parquet files in the lake → offset commit.
//!
//! Contract: offsets committed here are always ≤ the offsets of records whose Parquet file is
//! durable (or whose dead-letter record was acknowledged). Files are named after the source
//! positions they hold (`part-<topic>-p<partition>-o<first>-<last>.parquet`) in Hive-style
//! `events/event_date=YYYY-MM-DD/` folders by event time.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use chrono::DateTime;
use futures::future::join_all;
use northstar_runtime::kafka::RevokeTracker;
use northstar_runtime::Shutdown;
use northstar_schemas::headers::{self, source_headers};
use northstar_schemas::EventDecoder;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::message::{Header, Message, OwnedMessage};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};

use super::parquet::{encode, Row};
use super::LakeConfig;
use crate::metrics;
use northstar_runtime::objstore::ObjectRoot as Lake;

#[derive(Debug)]
struct Buffer {
    rows: Vec<Row>,
    bytes: usize,
    first_offset: i64,
    last_offset: i64,
}

/// The file key of a buffer: deterministic from its source positions.
pub fn file_key(date: &str, topic: &str, partition: i32, first: i64, last: i64) -> String {
    format!("events/event_date={date}/part-{topic}-p{partition}-o{first:019}-{last:019}.parquet")
}

/// The `event_date` partition value of an event time in µs.
pub fn event_date(ts_micros: i64) -> String {
    DateTime::from_timestamp_micros(ts_micros)
        .map(|t| t.format("%Y-%m-%d").to_string())
        .unwrap_or_else(|| "invalid".into())
}

/// The lake sink.
pub struct LakeSink {
    config: LakeConfig,
    consumer: StreamConsumer<RevokeTracker>,
    producer: FutureProducer,
    decoder: EventDecoder,
    lake: Lake,
    buffers: BTreeMap<(String, i32), Buffer>,
    buffered_bytes: usize,
    oldest: Option<Instant>,
    processed: HashMap<i32, i64>,
    committed: HashMap<i32, i64>,
    pending: Vec<DeliveryFuture>,
}

impl LakeSink {
    pub fn new(config: LakeConfig, decoder: EventDecoder, lake: Lake) -> anyhow::Result<Self> {
        let ccfg = config
            .kafka
            .manual_commit_consumer("northstar-lake-sink", &config.group_id);
        let consumer: StreamConsumer<RevokeTracker> =
            ccfg.create_with_context(RevokeTracker::default())?;
        consumer.subscribe(&[config.topics.clean.as_str()])?;
        let pcfg = config
            .kafka
            .idempotent_producer("northstar-lake-sink", 300_000);
        let producer: FutureProducer = pcfg.create()?;
        Ok(Self {
            config,
            consumer,
            producer,
            decoder,
            lake,
            buffers: BTreeMap::new(),
            buffered_bytes: 0,
            oldest: None,
            processed: HashMap::new(),
            committed: HashMap::new(),
            pending: Vec::new(),
        })
    }

    pub async fn run(mut self, shutdown: Shutdown) -> anyhow::Result<()> {
        let max_age = Duration::from_secs(self.config.max_file_age_secs);
        let mut tick = tokio::time::interval(Duration::from_millis(250));
        loop {
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => break,
                _ = tick.tick() => {
                    self.forget_revoked();
                    let age = self.oldest.map(|t| t.elapsed()).unwrap_or_default();
                    metrics::LAKE_OLDEST_UNFLUSHED.set(age.as_secs() as i64);
                    if self.oldest.is_some() && age >= max_age {
                        self.flush(&shutdown, CommitMode::Async).await?;
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
                    if self.buffered_bytes >= self.config.max_file_bytes {
                        self.flush(&shutdown, CommitMode::Async).await?;
                    }
                }
            }
        }
        tracing::info!("draining: writing buffered files, committing");
        self.flush(&shutdown, CommitMode::Sync).await?;
        Ok(())
    }

    fn forget_revoked(&mut self) {
        for p in self.consumer.context().take_revoked() {
            tracing::info!(
                partition = p,
                "partition revoked, dropping its unflushed rows (they will be re-read)"
            );
            self.buffers.retain(|(_, bp), _| *bp != p);
            self.processed.remove(&p);
            self.committed.remove(&p);
        }
        self.buffered_bytes = self.buffers.values().map(|b| b.bytes).sum();
        if self.buffers.is_empty() {
            self.oldest = None;
        }
    }

    async fn handle(&mut self, msg: OwnedMessage, shutdown: &Shutdown) -> anyhow::Result<()> {
        let (partition, offset) = (msg.partition(), msg.offset());
        match self.decoder.decode(msg.payload(), shutdown).await {
            Ok(event) => {
                let date = event_date(event.timestamp);
                let size = msg.payload().map_or(0, <[u8]>::len) + 64;
                self.buffered_bytes += size;
                let buf = self
                    .buffers
                    .entry((date, partition))
                    .or_insert_with(|| Buffer {
                        rows: Vec::new(),
                        bytes: 0,
                        first_offset: offset,
                        last_offset: offset,
                    });
                buf.last_offset = offset;
                buf.bytes += size;
                buf.rows.push(Row {
                    event,
                    source_partition: partition,
                    source_offset: offset,
                });
                self.oldest.get_or_insert_with(Instant::now);
            }
            Err(u) => {
                tracing::warn!(
                    partition,
                    offset,
                    reason = u.reason,
                    "undecodable clean record sent to the dead-letter topic"
                );
                metrics::LAKE_REJECTED.with_label_values(&[u.reason]).inc();
                let hdrs = source_headers(msg.topic(), partition, offset)
                    .insert(Header {
                        key: headers::DLQ_REASON,
                        value: Some(u.reason),
                    })
                    .insert(Header {
                        key: headers::DLQ_DETAIL,
                        value: Some(&u.detail),
                    });
                let mut rec = FutureRecord::to(&self.config.topics.dlq).headers(hdrs);
                if let Some(p) = msg.payload() {
                    rec = rec.payload(p);
                }
                if let Some(k) = msg.key() {
                    rec = rec.key(k);
                }
                match self.producer.send_result(rec) {
                    Ok(f) => self.pending.push(f),
                    Err((e, _)) => anyhow::bail!("cannot enqueue a dead-letter record: {e}"),
                }
            }
        }
        self.processed.insert(partition, offset + 1);
        metrics::LAKE_OPEN_FILES.set(self.buffers.len() as i64);
        metrics::LAKE_BUFFERED_ROWS.set(self.buffers.values().map(|b| b.rows.len() as i64).sum());
        Ok(())
    }

    /// Writes every buffer as a file, waits for dead-letter acknowledgements, then commits.
    async fn flush(&mut self, shutdown: &Shutdown, mode: CommitMode) -> anyhow::Result<()> {
        let started = Instant::now();
        let buffers = std::mem::take(&mut self.buffers);
        for ((date, partition), mut buf) in buffers {
            let key = file_key(
                &date,
                &self.config.topics.clean,
                partition,
                buf.first_offset,
                buf.last_offset,
            );
            let rows = buf.rows.len() as u64;
            let bytes = tokio::task::spawn_blocking(move || encode(&mut buf.rows)).await??;
            let size = bytes.len() as u64;
            let mut attempt = 0u32;
            loop {
                match self.lake.put_durable(&key, bytes.clone()).await {
                    Ok(()) => break,
                    Err(e) => {
                        metrics::LAKE_UPLOAD_ERRORS.inc();
                        attempt += 1;
                        if shutdown.is_cancelled() && attempt > 3 {
                            anyhow::bail!("cannot write {key}: {e}; offsets not committed");
                        }
                        tracing::warn!(key, attempt, error = %e, "lake write failed, retrying");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                }
            }
            metrics::LAKE_FILES.inc();
            metrics::LAKE_BYTES.inc_by(size);
            metrics::LAKE_ROWS.inc_by(rows);
            tracing::info!(key, rows, bytes = size, "parquet file written");
        }
        self.buffered_bytes = 0;
        self.oldest = None;
        for r in join_all(std::mem::take(&mut self.pending)).await {
            match r {
                Ok(Ok(_)) => {}
                Ok(Err((e, _))) => anyhow::bail!("dead-letter record not acknowledged: {e}"),
                Err(_) => anyhow::bail!("dead-letter delivery cancelled"),
            }
        }
        let mut tpl = TopicPartitionList::new();
        for (&p, &next) in &self.processed {
            if self.committed.get(&p) != Some(&next) {
                tpl.add_partition_offset(&self.config.topics.clean, p, Offset::Offset(next))?;
            }
        }
        if tpl.count() > 0 {
            let res = match mode {
                CommitMode::Sync => {
                    tokio::task::block_in_place(|| self.consumer.commit(&tpl, CommitMode::Sync))
                }
                CommitMode::Async => self.consumer.commit(&tpl, CommitMode::Async),
            };
            match res {
                Ok(()) => {
                    for e in tpl.elements() {
                        if let Offset::Offset(n) = e.offset() {
                            self.committed.insert(e.partition(), n);
                        }
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "offset commit failed; retried at the next flush")
                }
            }
        }
        metrics::LAKE_OPEN_FILES.set(0);
        metrics::LAKE_BUFFERED_ROWS.set(0);
        metrics::LAKE_FLUSH_SECONDS.observe(started.elapsed().as_secs_f64());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_hive_style_and_deterministic() {
        assert_eq!(event_date(1_764_028_800_000_000), "2025-11-25");
        assert_eq!(
            file_key("2025-11-25", "events.clean", 2, 10, 99),
            "events/event_date=2025-11-25/part-events.clean-p2-o0000000000000000010-0000000000000000099.parquet"
        );
    }
}
