//! Producing events to Kafka: Avro in Confluent wire format, keyed by userId/anonymousId,
//! with `acks=all` (not idempotent: duplicates from retries are removed by the stream
//! processor's message-id deduplication).
//!
//! Contract: [`EventProducer::send_all`] returns `Ok` only when the broker acknowledged every
//! event; otherwise it reports why, and the caller must not claim success. After a delivery
//! failure the producer is replaced by a fresh one and the old one's queue is purged at once,
//! so nothing of a request answered 503 reaches the broker later.
//!
//! Acknowledgements are counted per request: every record of a request carries the request's
//! [`RequestAcks`] as its delivery opaque, and the delivery callback decrements it and wakes
//! the request once all are in — no future or channel per record (rdkafka's `FutureProducer`
//! allocates both), and a polling thread that polls in long slices (see
//! `northstar_runtime::producer` for why short slices busy-loop).

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use northstar_runtime::kafka::ProducerStats;
use northstar_runtime::KafkaConfig;
use northstar_schemas::event::EventCodec;
use northstar_schemas::{wire, Event};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{
    BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext, PurgeConfig,
};
use rdkafka::util::Timeout;
use rdkafka::{ClientConfig, ClientContext};

use crate::metrics;

/// How long one call of the polling thread serves delivery reports.
const POLL_SLICE: Duration = Duration::from_secs(10);

/// The acknowledgements one request waits for.
#[derive(Debug)]
pub struct RequestAcks {
    /// Records not yet acknowledged, plus one while the request is still queueing records.
    pending: AtomicUsize,
    error: Mutex<Option<KafkaError>>,
    done: tokio::sync::Notify,
}

impl RequestAcks {
    fn new(records: usize) -> Self {
        Self {
            pending: AtomicUsize::new(records + 1),
            error: Mutex::new(None),
            done: tokio::sync::Notify::new(),
        }
    }

    /// `n` records are settled (acknowledged, failed, or never queued).
    fn settle(&self, n: usize) {
        if n > 0 && self.pending.fetch_sub(n, Ordering::AcqRel) == n {
            self.done.notify_one();
        }
    }

    /// Resolves once every record is settled; the first delivery error, if any.
    async fn wait(&self) -> Option<KafkaError> {
        // notify_one keeps a permit when nobody waits yet: no wake-up is lost.
        while self.pending.load(Ordering::Acquire) != 0 {
            self.done.notified().await;
        }
        self.error.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// The producer's context: per-request acknowledgements, and statistics as gauges.
#[derive(Debug, Default)]
pub struct IngestContext;

impl ClientContext for IngestContext {
    fn stats(&self, statistics: rdkafka::Statistics) {
        ProducerStats.stats(statistics);
    }
}

impl ProducerContext for IngestContext {
    type DeliveryOpaque = Arc<RequestAcks>;

    fn delivery(&self, result: &DeliveryResult<'_>, acks: Arc<RequestAcks>) {
        if let Err((e, _)) = result {
            acks.error
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get_or_insert_with(|| e.clone());
        }
        acks.settle(1);
    }
}

/// One librdkafka producer and its polling thread (stopped when the last handle is dropped,
/// at the end of its current slice).
struct Client {
    producer: Arc<BaseProducer<IngestContext>>,
    stop: Arc<AtomicBool>,
}

impl Client {
    fn new(config: &ClientConfig) -> Result<Self, KafkaError> {
        let producer: Arc<BaseProducer<IngestContext>> =
            Arc::new(config.create_with_context(IngestContext)?);
        let stop = Arc::new(AtomicBool::new(false));
        let (p, st) = (producer.clone(), stop.clone());
        std::thread::Builder::new()
            .name("ingest-producer-poll".into())
            .spawn(move || {
                while !st.load(Ordering::Relaxed) {
                    p.poll(POLL_SLICE);
                }
            })
            .map_err(|e| KafkaError::ClientCreation(format!("polling thread: {e}")))?;
        Ok(Self { producer, stop })
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

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
    producer: RwLock<(u64, Arc<Client>)>,
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
        let client = Client::new(&cfg)?;
        Ok(Self {
            config: cfg,
            producer: RwLock::new((0, Arc::new(client))),
            generation: AtomicU64::new(0),
            topic: topic.to_string(),
            schema_id,
            codec: EventCodec::new(),
        })
    }

    fn current(&self) -> (u64, Arc<Client>) {
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
        match Client::new(&self.config) {
            Ok(fresh) => {
                let generation = self.generation.fetch_add(1, Ordering::Relaxed) + 1;
                let old = std::mem::replace(&mut *guard, (generation, Arc::new(fresh)));
                // Nothing of the old producer may reach the broker again (its requests were
                // answered 503): purge what it still queues or has in flight, now, although
                // requests still hold it. Its polling thread reports the purged records.
                old.1
                    .producer
                    .purge(PurgeConfig::default().queue().inflight());
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
        let records = events
            .iter()
            .map(|e| {
                let datum = self
                    .codec
                    .encode(e)
                    .map_err(|err| ProduceError::Encode(err.to_string()))?;
                Ok((
                    e.distinct_id().unwrap_or(&e.message_id),
                    wire::frame(self.schema_id, &datum),
                ))
            })
            .collect::<Result<Vec<_>, ProduceError>>()?;
        let (generation, client) = self.current();
        let acks = Arc::new(RequestAcks::new(records.len()));
        let mut queued = 0usize;
        let mut first_error = None;
        for (key, payload) in &records {
            let record = BaseRecord::with_opaque_to(&self.topic, acks.clone())
                .key(*key)
                .payload(payload.as_slice());
            match client.producer.send(record) {
                Ok(()) => queued += 1,
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
        // The records never queued are settled now, and so is the queueing guard.
        acks.settle(records.len() - queued + 1);
        let n = queued as i64;
        metrics::IN_FLIGHT.add(n);
        let delivery_error = acks.wait().await;
        metrics::IN_FLIGHT.sub(n);
        if let Some(err) = delivery_error {
            metrics::DELIVERY_ERRORS
                .with_label_values(&["delivery"])
                .inc();
            first_error.get_or_insert(ProduceError::Delivery(err));
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
            .producer
            .client()
            .fetch_metadata(Some(&self.topic), Duration::from_secs(3))
            .is_ok()
    }

    /// Waits up to `timeout` for queued events to be delivered.
    pub fn flush(&self, timeout: Duration) {
        if let Err(e) = self.current().1.producer.flush(Timeout::After(timeout)) {
            tracing::warn!(error = %e, "producer flush incomplete at shutdown");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A producer whose broker does not exist: every record times out after 300 ms.
    fn unreachable() -> EventProducer {
        let kafka = KafkaConfig {
            brokers: "127.0.0.1:9".into(),
            ..KafkaConfig::default()
        };
        EventProducer::new(&kafka, "t", 1, Duration::from_millis(300)).expect("producer")
    }

    #[tokio::test]
    async fn nothing_to_send_is_acknowledged_at_once() {
        let p = unreachable();
        tokio::time::timeout(Duration::from_secs(1), p.send_all(&[]))
            .await
            .expect("no wait")
            .expect("nothing failed");
    }

    #[tokio::test]
    async fn a_lost_record_fails_its_request_and_replaces_the_producer() {
        let p = unreachable();
        let events: Vec<Event> = (0..3)
            .map(|i| northstar_schemas::synthetic::event(i, 0))
            .collect();
        let err = tokio::time::timeout(Duration::from_secs(20), p.send_all(&events))
            .await
            .expect("the timeout is reported")
            .expect_err("not delivered");
        assert!(matches!(err, ProduceError::Delivery(_)), "{err}");
        assert_eq!(p.current().0, 1, "a fresh producer replaced the failed one");
    }

    #[test]
    fn acks_complete_when_every_record_is_settled() {
        let acks = RequestAcks::new(2);
        acks.settle(1);
        acks.settle(1);
        assert_eq!(
            acks.pending.load(Ordering::Acquire),
            1,
            "the queueing guard remains"
        );
        acks.settle(1);
        assert_eq!(acks.pending.load(Ordering::Acquire), 0);
        acks.settle(0);
        assert_eq!(
            acks.pending.load(Ordering::Acquire),
            0,
            "settling nothing is a no-op"
        );
    }
}
