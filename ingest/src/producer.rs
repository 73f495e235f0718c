//! Producing events to Kafka: Avro in Confluent wire format, keyed by userId/anonymousId,
//! with `acks=all` (not idempotent: duplicates from retries are removed by the stream
//! processor's message-id deduplication).
//!
//! Contract: [`EventProducer::send_all`] returns `Ok` only when the broker acknowledged every
//! event; otherwise it reports why, and the caller must not claim success. After a delivery
//! failure the producer is replaced by a fresh one (a new producer id), so no idempotence state
//! from an outage (an epoch bump after timed-out batches) has to be accepted by the broker when
//! it comes back; the failed events were answered 503 and are retried by the client.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::RwLock;
use std::time::Duration;

use futures::future::join_all;
use northstar_runtime::kafka::ProducerStats;
use northstar_runtime::KafkaConfig;
use northstar_schemas::event::EventCodec;
use northstar_schemas::{wire, Event};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer, PurgeConfig};
use rdkafka::util::Timeout;
use rdkafka::ClientConfig;

use crate::metrics;

/// Why events were not acknowledged.
#[derive(Debug, thiserror::Error)]
pub enum ProduceError {
    #[error("producer queue is full")]
    QueueFull,
    #[error("broker did not acknowledge: {0}")]
    Delivery(KafkaError),
    #[error("event could not be encoded: {0}")]
    Encode(String),
    #[error("no acknowledgement from the broker within {0} ms")]
    Deadline(u64),
    #[error("sending was aborted: {0}")]
    Aborted(String),
}

/// The event producer.
pub struct EventProducer {
    config: ClientConfig,
    /// The current producer and its generation.
    producer: RwLock<(u64, FutureProducer<ProducerStats>)>,
    generation: AtomicU64,
    topic: String,
    schema_id: u32,
    codec: EventCodec,
}

impl std::fmt::Debug for EventProducer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventProducer")
            .field("topic", &self.topic)
            .field("schema_id", &self.schema_id)
            .finish()
    }
}

impl EventProducer {
    pub fn new(
        kafka: &KafkaConfig,
        topic: &str,
        schema_id: u32,
        delivery_timeout: Duration,
    ) -> Result<Self, KafkaError> {
        // Not idempotent: the stream processor deduplicates by message id, so a retried
        // duplicate costs nothing, while producer ids are what Tansu 0.6.0 mishandles after a
        // crash (a produce with an epoch it does not know panics its storage task for good;
        // see docs/operations.md).
        let mut cfg = kafka.acked_producer("northstar-ingest", delivery_timeout.as_millis() as u64);
        // Queue depth and broker health as gauges (see ProducerStats).
        cfg.set("statistics.interval.ms", "5000");
        let producer = cfg.create_with_context(ProducerStats)?;
        Ok(Self {
            config: cfg,
            producer: RwLock::new((0, producer)),
            generation: AtomicU64::new(0),
            topic: topic.to_string(),
            schema_id,
            codec: EventCodec::new(),
        })
    }

    fn current(&self) -> (u64, FutureProducer<ProducerStats>) {
        self.producer
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Replaces the producer of generation `failed` (once, however many requests saw it fail).
    fn replace(&self, failed: u64) {
        let mut guard = self.producer.write().unwrap_or_else(|p| p.into_inner());
        if guard.0 != failed {
            return;
        }
        match self.config.create_with_context(ProducerStats) {
            Ok(fresh) => {
                let generation = self.generation.fetch_add(1, Ordering::Relaxed) + 1;
                let old = std::mem::replace(&mut *guard, (generation, fresh));
                // Nothing of the old producer id may reach the broker again (its requests were
                // answered 503): purge what it still queues or has in flight, now, although
                // requests still hold clones of it.
                old.1.purge(PurgeConfig::default().queue().inflight());
                tracing::info!(generation, "producer replaced after delivery failures");
                // Destroying a librdkafka client may block while it tears down: not on the runtime.
                std::thread::spawn(move || drop(old));
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot create a fresh producer, keeping the current one")
            }
        }
    }

    /// Encodes and sends `events`, then waits for every acknowledgement.
    pub async fn send_all(&self, events: &[Event]) -> Result<(), ProduceError> {
        let (generation, producer) = self.current();
        let mut pending = Vec::with_capacity(events.len());
        let mut first_error = None;
        for e in events {
            let datum = self
                .codec
                .encode(e)
                .map_err(|err| ProduceError::Encode(err.to_string()))?;
            let payload = wire::frame(self.schema_id, &datum);
            let key = e.distinct_id().unwrap_or(&e.message_id);
            let record = FutureRecord::to(&self.topic).key(key).payload(&payload);
            match producer.send_result(record) {
                Ok(fut) => pending.push(fut),
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                    metrics::DELIVERY_ERRORS
                        .with_label_values(&["queue_full"])
                        .inc();
                    first_error = Some(ProduceError::QueueFull);
                    break;
                }
                Err((err, _)) => {
                    metrics::DELIVERY_ERRORS
                        .with_label_values(&["enqueue"])
                        .inc();
                    first_error = Some(ProduceError::Delivery(err));
                    break;
                }
            }
        }
        let n = pending.len() as i64;
        metrics::IN_FLIGHT.add(n);
        let results = join_all(pending).await;
        metrics::IN_FLIGHT.sub(n);
        for r in results {
            match r {
                Ok(Ok(_)) => {}
                Ok(Err((err, _))) => {
                    metrics::DELIVERY_ERRORS
                        .with_label_values(&["delivery"])
                        .inc();
                    first_error.get_or_insert(ProduceError::Delivery(err));
                }
                Err(_cancelled) => {
                    metrics::DELIVERY_ERRORS
                        .with_label_values(&["cancelled"])
                        .inc();
                    first_error.get_or_insert(ProduceError::Delivery(KafkaError::Canceled));
                }
            }
        }
        match first_error {
            None => Ok(()),
            Some(e) => {
                if matches!(e, ProduceError::Delivery(_)) {
                    self.replace(generation);
                }
                Err(e)
            }
        }
    }

    /// Whether the broker answers a metadata request for the topic (blocking; call off the runtime).
    pub fn broker_reachable(&self) -> bool {
        self.current()
            .1
            .client()
            .fetch_metadata(Some(&self.topic), Duration::from_secs(3))
            .is_ok()
    }

    /// Waits up to `timeout` for queued events to be delivered.
    pub fn flush(&self, timeout: Duration) {
        if let Err(e) = self.current().1.flush(Timeout::After(timeout)) {
            tracing::warn!(error = %e, "producer flush incomplete at shutdown");
        }
    }
}
