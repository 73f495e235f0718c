//! The registry's durable log: the compacted Kafka topic `_schemas` (Confluent's design).
//!
//! Contract: [`Store::load`] reads the topic from the beginning up to its high watermark and
//! returns the rebuilt state; [`Store::append`] returns only after the broker acknowledged the
//! record, so a registration answered with an id survives a restart with the same id.

use std::time::Duration;

use northstar_runtime::kafka::create_topics;
use northstar_runtime::{KafkaConfig, TopicsConfig};
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::util::Timeout;
use rdkafka::{ClientConfig, TopicPartitionList};

use super::state::{Record, RegistryError, State};

/// The Kafka-backed log of schema and config records.
pub struct Store {
    topic: String,
    producer: FutureProducer,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("topic", &self.topic).finish()
    }
}

/// The store could not be opened or read.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("kafka: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
    #[error(transparent)]
    Topic(#[from] northstar_runtime::kafka::CreateTopicError),
    #[error("reading {topic} timed out at offset {at} of {high}")]
    LoadTimeout { topic: String, at: i64, high: i64 },
}

impl Store {
    /// Ensures the topic exists (one partition, compacted), then loads it.
    pub async fn open(
        kafka: &KafkaConfig,
        topics: &TopicsConfig,
    ) -> Result<(Store, State), StoreError> {
        let topic = topics.schemas.as_str();
        let differences = create_topics(kafka, &[super::schemas_topic_spec(topics)]).await?;
        for d in differences {
            tracing::warn!(%d, "schema store topic setting");
        }
        let producer: FutureProducer = producer_config(kafka).create()?;
        let state = load(kafka, topic).await?;
        Ok((
            Store {
                topic: topic.to_string(),
                producer,
            },
            state,
        ))
    }

    /// Appends `record` and waits for the broker's acknowledgement.
    pub async fn append(&self, record: &Record) -> Result<(), RegistryError> {
        let (key, value) = record.to_kv();
        let fr = FutureRecord::to(&self.topic)
            .partition(0)
            .key(&key)
            .payload(&value);
        self.producer
            .send(fr, Timeout::After(Duration::from_secs(15)))
            .await
            .map(|_| ())
            .map_err(|(e, _)| RegistryError::Store(e.to_string()))
    }
}

fn producer_config(kafka: &KafkaConfig) -> ClientConfig {
    let mut cfg = kafka.client_config("northstar-registry");
    cfg.set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", "0");
    cfg
}

async fn load(kafka: &KafkaConfig, topic: &str) -> Result<State, StoreError> {
    let mut cfg = kafka.client_config("northstar-registry-loader");
    cfg.set("group.id", "northstar-registry-loader")
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest");
    let consumer: StreamConsumer = cfg.create()?;
    let (low, high) = {
        let consumer_ref = &consumer;
        let topic = topic.to_string();
        tokio::task::block_in_place(|| {
            consumer_ref.fetch_watermarks(&topic, 0, Duration::from_secs(15))
        })?
    };
    let mut state = State::default();
    if high <= low {
        tracing::info!(topic, "schema log is empty");
        return Ok(state);
    }
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, rdkafka::Offset::Offset(low))?;
    consumer.assign(&tpl)?;
    let mut at = low;
    let mut applied = 0usize;
    while at < high {
        let msg = match tokio::time::timeout(Duration::from_secs(30), consumer.recv()).await {
            Ok(m) => m?,
            Err(_) => {
                return Err(StoreError::LoadTimeout {
                    topic: topic.to_string(),
                    at,
                    high,
                })
            }
        };
        at = msg.offset() + 1;
        let Some(key) = msg.key() else { continue };
        match Record::from_kv(key, msg.payload()) {
            Ok(Some(rec)) => {
                state.apply(rec);
                applied += 1;
            }
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(offset = msg.offset(), error = %e, "skipping unreadable schema log record")
            }
        }
    }
    tracing::info!(topic, records = applied, high, "schema log loaded");
    Ok(state)
}
