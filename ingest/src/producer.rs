//! Producing events to Kafka: Avro in Confluent wire format, keyed by userId/anonymousId,
//! through rdkafka's idempotent producer.
//!
//! Contract: [`EventProducer::send_all`] returns `Ok` only when the broker acknowledged every
//! event; otherwise it reports why, and the caller must not claim success.

use std::time::Duration;

use futures::future::join_all;
use northstar_runtime::KafkaConfig;
use northstar_schemas::event::EventCodec;
use northstar_schemas::{wire, Event};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::util::Timeout;

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
}

/// The event producer.
pub struct EventProducer {
    producer: FutureProducer,
    topic: String,
    schema_id: u32,
    codec: EventCodec,
}

impl std::fmt::Debug for EventProducer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventProducer").field("topic", &self.topic).field("schema_id", &self.schema_id).finish()
    }
}

impl EventProducer {
    pub fn new(kafka: &KafkaConfig, topic: &str, schema_id: u32, delivery_timeout: Duration) -> Result<Self, KafkaError> {
        let mut cfg = kafka.client_config("northstar-ingest");
        cfg.set("enable.idempotence", "true")
            .set("acks", "all")
            .set("linger.ms", "5")
            .set("compression.type", "none")
            .set("message.timeout.ms", delivery_timeout.as_millis().to_string());
        Ok(Self { producer: cfg.create()?, topic: topic.to_string(), schema_id, codec: EventCodec::new() })
    }

    /// Encodes and sends `events`, then waits for every acknowledgement.
    pub async fn send_all(&self, events: &[Event]) -> Result<(), ProduceError> {
        let mut pending = Vec::with_capacity(events.len());
        let mut first_error = None;
        for e in events {
            let datum = self.codec.encode(e).map_err(|err| ProduceError::Encode(err.to_string()))?;
            let payload = wire::frame(self.schema_id, &datum);
            let key = e.distinct_id().unwrap_or(&e.message_id);
            let record = FutureRecord::to(&self.topic).key(key).payload(&payload);
            match self.producer.send_result(record) {
                Ok(fut) => pending.push(fut),
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                    metrics::DELIVERY_ERRORS.with_label_values(&["queue_full"]).inc();
                    first_error = Some(ProduceError::QueueFull);
                    break;
                }
                Err((err, _)) => {
                    metrics::DELIVERY_ERRORS.with_label_values(&["enqueue"]).inc();
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
                    metrics::DELIVERY_ERRORS.with_label_values(&["delivery"]).inc();
                    first_error.get_or_insert(ProduceError::Delivery(err));
                }
                Err(_cancelled) => {
                    metrics::DELIVERY_ERRORS.with_label_values(&["cancelled"]).inc();
                    first_error.get_or_insert(ProduceError::Delivery(KafkaError::Canceled));
                }
            }
        }
        match first_error {
            None => Ok(()),
            Some(e) => Err(e),
        }
    }

    /// Whether the broker answers a metadata request for the topic (blocking; call off the runtime).
    pub fn broker_reachable(&self) -> bool {
        self.producer.client().fetch_metadata(Some(&self.topic), Duration::from_secs(3)).is_ok()
    }

    /// Waits up to `timeout` for queued events to be delivered.
    pub fn flush(&self, timeout: Duration) {
        if let Err(e) = self.producer.flush(Timeout::After(timeout)) {
            tracing::warn!(error = %e, "producer flush incomplete at shutdown");
        }
    }
}
