//! Kafka client settings and topic names shared by the services.
//!
//! Contract: the services speak only the Kafka protocol through rdkafka; nothing here is
//! specific to one broker. Topics are created explicitly ([`create_topics`]), never by
//! auto-create.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, ConsumerContext, Rebalance};
use rdkafka::error::KafkaResult;
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{ClientContext, TopicPartitionList};
use serde::{Deserialize, Serialize};

/// Each consumer's default `fetch.wait.max.ms` (overridable with `kafka.properties`), measured in
/// docs/benchmarks.md ("Freshness" and "The processor's CPU per event").
pub mod fetch_wait_ms {
    /// The processor: its hop is one of two on the way to `/metrics`, and on brokers that hold
    /// a fetch for its whole wait it fetches once per wait under traffic; 250 ms keeps the p99
    /// freshness under a second at +4 % CPU per event (100 ms cost +14 % at 5,000 events/s).
    pub const PROCESSOR: u32 = 250;
    /// The metrics sink: the last hop before `/metrics`, on the low-rate `kpi.aggregates`.
    pub const METRICS_SINK: u32 = 100;
    /// The lake sink: as since issue 10. Its files are flushed by size or age (seconds to
    /// minutes), so a longer wait would cost no freshness that matters and fewer fetches on
    /// such brokers; not measured yet, so unchanged.
    pub const LAKE_SINK: u32 = 100;
}

/// Connection settings (`[kafka]`, `NORTHSTAR_KAFKA__*`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KafkaConfig {
    /// Bootstrap servers, comma separated.
    pub brokers: String,
    /// Extra librdkafka properties applied to every client (e.g. `security.protocol`).
    /// Underscores stand for dots, so they can be set from the environment:
    /// `NORTHSTAR_KAFKA__PROPERTIES__SESSION_TIMEOUT_MS=10000` is `session.timeout.ms`.
    #[serde(deserialize_with = "scalars_as_strings")]
    pub properties: BTreeMap<String, String>,
    /// A consumer holding no partition while its topic has input nobody consumes reports not
    /// ready after this many seconds (`NORTHSTAR_KAFKA__STALL_GRACE_SECS`).
    pub stall_grace_secs: u64,
    /// ... and leaves and rejoins its group after this many (above the session timeout, so a
    /// dead member's expiry resolves first) (`NORTHSTAR_KAFKA__REJOIN_AFTER_SECS`).
    pub rejoin_after_secs: u64,
}

/// Accepts numbers and booleans as property values (the environment and TOML type them).
fn scalars_as_strings<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<BTreeMap<String, String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Scalar {
        S(String),
        I(i64),
        U(u64),
        F(f64),
        B(bool),
    }
    let raw = BTreeMap::<String, Scalar>::deserialize(d)?;
    Ok(raw
        .into_iter()
        .map(|(k, v)| {
            let v = match v {
                Scalar::S(s) => s,
                Scalar::I(i) => i.to_string(),
                Scalar::U(u) => u.to_string(),
                Scalar::F(f) => f.to_string(),
                Scalar::B(b) => b.to_string(),
            };
            (k, v)
        })
        .collect())
}

impl Default for KafkaConfig {
    fn default() -> Self {
        Self {
            brokers: "127.0.0.1:9092".into(),
            properties: BTreeMap::new(),
            stall_grace_secs: 15,
            rejoin_after_secs: 60,
        }
    }
}

impl KafkaConfig {
    /// A client config with the brokers, a client id and the extra properties set.
    pub fn client_config(&self, client_id: &str) -> ClientConfig {
        let mut cfg = ClientConfig::new();
        self.fill(&mut cfg, client_id);
        cfg
    }

    /// The brokers, the client id and the extra properties (which override what `cfg` holds).
    fn fill(&self, cfg: &mut ClientConfig, client_id: &str) {
        cfg.set("bootstrap.servers", &self.brokers)
            .set("client.id", client_id);
        for (k, v) in &self.properties {
            // librdkafka property names use dots, never underscores.
            cfg.set(k.replace('_', "."), v);
        }
    }

    /// A consumer's client config: [`KafkaConfig::client_config`] with `fetch.wait.max.ms`
    /// `fetch_wait_ms` unless the properties set it. Each service picks its own (see
    /// [`fetch_wait_ms`]): a broker that holds a fetch for its whole wait (Tansu, librdkafka's
    /// mock) delays a record produced meanwhile by up to that wait, and fetches once per wait
    /// under traffic, so the wait trades freshness against CPU per event; on Apache Kafka a
    /// fetch returns as soon as `fetch.min.bytes` are there, and the wait matters only on an
    /// idle topic (docs/benchmarks.md).
    pub fn consumer_config(&self, client_id: &str, fetch_wait_ms: u32) -> ClientConfig {
        let mut cfg = ClientConfig::new();
        cfg.set("fetch.wait.max.ms", fetch_wait_ms.to_string());
        self.fill(&mut cfg, client_id);
        cfg
    }

    /// A consumer in `group_id` that never commits by itself and starts new groups at the
    /// earliest offset: offsets are committed explicitly, after output is durable.
    pub fn manual_commit_consumer(
        &self,
        client_id: &str,
        group_id: &str,
        fetch_wait_ms: u32,
    ) -> ClientConfig {
        let mut cfg = self.consumer_config(client_id, fetch_wait_ms);
        cfg.set("group.id", group_id)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", "earliest")
            .set("enable.partition.eof", "false")
            .set("statistics.interval.ms", "5000");
        cfg
    }

    /// An idempotent producer (`acks=all`) whose deliveries fail after `timeout_ms`.
    pub fn idempotent_producer(&self, client_id: &str, timeout_ms: u64) -> ClientConfig {
        let mut cfg = ClientConfig::new();
        // Tunable defaults first: `properties` may override them (e.g. `linger.ms`).
        cfg.set("linger.ms", "5");
        for (k, v) in self.client_config(client_id).config_map() {
            cfg.set(k, v);
        }
        // What the delivery guarantee rests on is not overridable.
        cfg.set("enable.idempotence", "true")
            .set("acks", "all")
            .set("message.timeout.ms", timeout_ms.to_string());
        cfg
    }

    /// A producer whose sends count only once every in-sync replica has the record
    /// (`acks=all`), retried until `timeout_ms`, without producer ids: retries may duplicate a
    /// record, which is fine where consumers deduplicate (the collector's events carry a
    /// message id the stream processor deduplicates on).
    pub fn acked_producer(&self, client_id: &str, timeout_ms: u64) -> ClientConfig {
        let mut cfg = ClientConfig::new();
        cfg.set("linger.ms", "5");
        for (k, v) in self.client_config(client_id).config_map() {
            cfg.set(k, v);
        }
        cfg.set("enable.idempotence", "false")
            .set("acks", "all")
            .set("message.timeout.ms", timeout_ms.to_string());
        cfg
    }

    /// The stall detector of a consumer with these settings.
    pub fn group_watch(&self) -> crate::group_watch::GroupWatch {
        crate::group_watch::GroupWatch::new(
            Duration::from_secs(self.stall_grace_secs),
            Duration::from_secs(self.rejoin_after_secs.max(1)),
        )
    }

    /// Refuses an empty broker list, naming the setting.
    pub fn validate(&self) -> Result<(), String> {
        if self.brokers.trim().is_empty() {
            return Err("kafka.brokers (NORTHSTAR_KAFKA__BROKERS) is empty".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// librdkafka's mock cluster has no CreateTopics: asking it for an existing topic would
    /// time out, so this passes only if existing topics are not asked for.
    #[tokio::test]
    async fn existing_topics_are_not_asked_for() {
        let cluster = rdkafka::mocking::MockCluster::new(1).expect("mock cluster");
        cluster.create_topic("there", 2, 1).expect("topic");
        let kafka = KafkaConfig {
            brokers: cluster.bootstrap_servers(),
            ..Default::default()
        };
        let spec = TopicSpec {
            name: "there".into(),
            partitions: 2,
            config: vec![],
        };
        let specs = [spec];
        let done = tokio::time::timeout(Duration::from_secs(20), create_topics(&kafka, &specs));
        done.await
            .expect("no CreateTopics request")
            .expect("created");
        assert!(existing_topics(&kafka)
            .await
            .expect("metadata")
            .contains("there"));
    }

    /// Each service's default wait is set, and `kafka.properties` still override it.
    #[test]
    fn the_fetch_wait_is_the_services_unless_overridden() {
        let mut k = KafkaConfig::default();
        let cfg = k.manual_commit_consumer("p", "g", fetch_wait_ms::PROCESSOR);
        assert_eq!(cfg.get("fetch.wait.max.ms"), Some("250"));
        assert_eq!(cfg.get("group.id"), Some("g"));
        k.properties.insert("fetch_wait_max_ms".into(), "40".into());
        let cfg = k.consumer_config("m", fetch_wait_ms::METRICS_SINK);
        assert_eq!(cfg.get("fetch.wait.max.ms"), Some("40"));
    }

    #[test]
    fn property_underscores_are_dots() {
        let mut k = KafkaConfig::default();
        k.properties
            .insert("session_timeout_ms".into(), "6000".into());
        k.properties
            .insert("socket.timeout.ms".into(), "1000".into());
        let cfg = k.client_config("x");
        assert_eq!(cfg.get("session.timeout.ms"), Some("6000"));
        assert_eq!(cfg.get("socket.timeout.ms"), Some("1000"));
        assert_eq!(cfg.get("bootstrap.servers"), Some("127.0.0.1:9092"));
        assert!(KafkaConfig {
            brokers: " ".into(),
            ..Default::default()
        }
        .validate()
        .is_err());
    }
}

/// Topic names (`[topics]`, `NORTHSTAR_TOPICS__*`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TopicsConfig {
    /// Raw events as accepted by ingest (or produced by backend services).
    pub raw: String,
    /// Deduplicated, validated events.
    pub clean: String,
    /// Rejected events with their reason in a header and the original bytes.
    pub dlq: String,
    /// Windowed KPI aggregates (upserts).
    pub aggregates: String,
    /// The schema registry's compacted store.
    pub schemas: String,
    /// The suppression list: erased subjects as keyed hashes (compacted, kept forever).
    pub suppressions: String,
}

impl Default for TopicsConfig {
    fn default() -> Self {
        Self {
            raw: "events.raw".into(),
            clean: "events.clean".into(),
            dlq: "events.dlq".into(),
            aggregates: "kpi.aggregates".into(),
            schemas: "_schemas".into(),
            suppressions: "privacy.suppressions".into(),
        }
    }
}

impl TopicsConfig {
    /// Refuses an empty topic name, naming the setting.
    pub fn validate(&self) -> Result<(), String> {
        for (key, value) in [
            ("raw", &self.raw),
            ("clean", &self.clean),
            ("dlq", &self.dlq),
            ("aggregates", &self.aggregates),
            ("schemas", &self.schemas),
            ("suppressions", &self.suppressions),
        ] {
            if value.trim().is_empty() {
                return Err(format!(
                    "topics.{key} (NORTHSTAR_TOPICS__{}) is empty",
                    key.to_uppercase()
                ));
            }
        }
        Ok(())
    }
}

/// One topic to create.
#[derive(Debug, Clone)]
pub struct TopicSpec {
    pub name: String,
    pub partitions: i32,
    /// Topic configs, e.g. `cleanup.policy=compact`.
    pub config: Vec<(String, String)>,
}

/// A topic that could not be created.
#[derive(Debug, thiserror::Error)]
#[error("cannot create topic {topic}: {reason}")]
pub struct CreateTopicError {
    pub topic: String,
    pub reason: String,
}

/// An existing topic whose setting is not the one asked for (or could not be read).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettingDifference {
    pub topic: String,
    pub key: String,
    pub wanted: String,
    /// What the broker reports (`None`: not reported, or the settings could not be read).
    pub actual: Option<String>,
}

impl std::fmt::Display for SettingDifference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.actual {
            Some(a) => write!(
                f,
                "topic {} exists with {}={a}, not {} as asked: change it with your cluster's tools if that is wanted",
                self.topic, self.key, self.wanted
            ),
            None => write!(
                f,
                "topic {} exists; its {} could not be read (wanted {}): check it with your cluster's tools",
                self.topic, self.key, self.wanted
            ),
        }
    }
}

/// Creates the topics that do not exist yet; an existing topic is left as it is, and each of
/// its settings that differs from the spec's (or cannot be read) is returned. The broker's
/// metadata is read first and only missing topics are asked for, so that a principal allowed to
/// describe but not to create topics, or a broker without CreateTopics (librdkafka's mock
/// cluster, used by the benchmarks), still starts when its topics are there.
pub async fn create_topics(
    kafka: &KafkaConfig,
    specs: &[TopicSpec],
) -> Result<Vec<SettingDifference>, CreateTopicError> {
    let existing = existing_topics(kafka).await?;
    let present: Vec<&TopicSpec> = specs
        .iter()
        .filter(|s| existing.contains(&s.name))
        .collect();
    let differences = setting_differences(kafka, &present).await;
    let missing: Vec<&TopicSpec> = specs
        .iter()
        .filter(|s| {
            let there = existing.contains(&s.name);
            if there {
                tracing::info!(topic = %s.name, "topic exists");
            }
            !there
        })
        .collect();
    if missing.is_empty() {
        return Ok(differences);
    }
    let admin: AdminClient<DefaultClientContext> = kafka
        .client_config("northstar-admin")
        .create()
        .map_err(|e| CreateTopicError {
            topic: "*".into(),
            reason: e.to_string(),
        })?;
    let new_topics: Vec<NewTopic<'_>> = missing
        .iter()
        .map(|s| {
            let mut t = NewTopic::new(&s.name, s.partitions, TopicReplication::Fixed(1));
            for (k, v) in &s.config {
                t = t.set(k, v);
            }
            t
        })
        .collect();
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    let results = admin
        .create_topics(new_topics.iter(), &opts)
        .await
        .map_err(|e| CreateTopicError {
            topic: "*".into(),
            reason: e.to_string(),
        })?;
    for result in results {
        match result {
            Ok(name) => tracing::info!(topic = %name, "topic created"),
            Err((name, RDKafkaErrorCode::TopicAlreadyExists)) => {
                tracing::info!(topic = %name, "topic exists")
            }
            Err((name, code)) => {
                return Err(CreateTopicError {
                    topic: name,
                    reason: code.to_string(),
                })
            }
        }
    }
    Ok(differences)
}

/// The settings of existing topics that differ from their specs (DescribeConfigs).
async fn setting_differences(kafka: &KafkaConfig, specs: &[&TopicSpec]) -> Vec<SettingDifference> {
    use rdkafka::admin::ResourceSpecifier;
    let wanted: Vec<(&str, &str, &str)> = specs
        .iter()
        .flat_map(|s| {
            s.config
                .iter()
                .map(move |(k, v)| (s.name.as_str(), k.as_str(), v.as_str()))
        })
        .collect();
    if wanted.is_empty() {
        return Vec::new();
    }
    let unread = |topic: &str, key: &str, value: &str| SettingDifference {
        topic: topic.into(),
        key: key.into(),
        wanted: value.into(),
        actual: None,
    };
    let admin: Result<AdminClient<DefaultClientContext>, _> =
        kafka.client_config("northstar-admin").create();
    let Ok(admin) = admin else {
        return wanted.iter().map(|(t, k, v)| unread(t, k, v)).collect();
    };
    let resources: Vec<ResourceSpecifier<'_>> = specs
        .iter()
        .map(|s| ResourceSpecifier::Topic(&s.name))
        .collect();
    let opts = AdminOptions::new().request_timeout(Some(Duration::from_secs(30)));
    let described = admin.describe_configs(resources.iter(), &opts).await;
    let mut out = Vec::new();
    for (topic, key, value) in wanted {
        let actual = described.as_ref().ok().and_then(|all| {
            all.iter().flatten().find_map(|r| {
                let named = matches!(&r.specifier, rdkafka::admin::OwnedResourceSpecifier::Topic(t) if t == topic);
                named.then(|| r.get(key).and_then(|e| e.value.clone()))?
            })
        });
        match actual {
            Some(a) if a == value => {}
            other => out.push(SettingDifference {
                actual: other,
                ..unread(topic, key, value)
            }),
        }
    }
    out
}

/// The names of the topics the broker's metadata lists.
async fn existing_topics(
    kafka: &KafkaConfig,
) -> Result<std::collections::HashSet<String>, CreateTopicError> {
    let failed = |e: rdkafka::error::KafkaError| CreateTopicError {
        topic: "*".into(),
        reason: format!("cannot read the broker's metadata: {e}"),
    };
    let client: BaseConsumer = kafka
        .client_config("northstar-admin")
        .create()
        .map_err(failed)?;
    let metadata = tokio::task::spawn_blocking(move || {
        rdkafka::consumer::Consumer::fetch_metadata(&client, None, Duration::from_secs(30))
    })
    .await
    .map_err(|e| CreateTopicError {
        topic: "*".into(),
        reason: e.to_string(),
    })?
    .map_err(failed)?;
    Ok(metadata
        .topics()
        .iter()
        .filter(|t| t.error().is_none())
        .map(|t| t.name().to_string())
        .collect())
}

/// A consumer context that only records revoked partitions, for the consuming loop to drop
/// their in-memory work; the callback itself stays trivial and commits nothing.
#[derive(Debug, Default)]
pub struct RevokeTracker {
    revoked: Mutex<Vec<i32>>,
    /// Whether `revoked` is non-empty (lets the per-record check skip the lock).
    any_revoked: std::sync::atomic::AtomicBool,
    assigned: std::sync::atomic::AtomicUsize,
}

impl RevokeTracker {
    /// How many partitions the last rebalance assigned to this consumer.
    pub fn assigned(&self) -> usize {
        self.assigned.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The partitions revoked since the last call.
    pub fn take_revoked(&self) -> Vec<i32> {
        use std::sync::atomic::Ordering;
        if !self.any_revoked.load(Ordering::Acquire) {
            return Vec::new();
        }
        let mut revoked = self.revoked.lock().unwrap_or_else(|p| p.into_inner());
        self.any_revoked.store(false, Ordering::Release);
        std::mem::take(&mut *revoked)
    }
}

#[allow(clippy::expect_used)]
static CONSUMER_LAG: std::sync::LazyLock<prometheus::IntGaugeVec> = std::sync::LazyLock::new(
    || {
        prometheus::register_int_gauge_vec!(
        "northstar_consumer_lag_records",
        "Records between the consumer's position and the partition's high watermark (librdkafka statistics)",
        &["topic", "partition"]
    )
    .expect("metric registers")
    },
);

/// librdkafka statistics of a producer, exported as gauges labelled by `client` (its
/// `client.id`) and, per broker, `broker` (set `statistics.interval.ms` to enable): queue depth
/// in messages and bytes, messages and bytes sent so far, and per broker the round-trip time,
/// requests waiting to be sent or answered, transmission errors and request timeouts.
#[derive(Debug, Default)]
pub struct ProducerStats;

macro_rules! gauge_vec {
    ($name:ident, $metric:literal, $help:literal, $labels:expr) => {
        #[allow(clippy::expect_used)]
        static $name: std::sync::LazyLock<prometheus::IntGaugeVec> =
            std::sync::LazyLock::new(|| {
                prometheus::register_int_gauge_vec!($metric, $help, $labels)
                    .expect("metric registers")
            });
    };
}

gauge_vec!(
    PRODUCER_QUEUE_MESSAGES,
    "northstar_producer_queue_messages",
    "Messages in the producer's queue, not yet acknowledged (librdkafka msg_cnt)",
    &["client"]
);
gauge_vec!(
    PRODUCER_QUEUE_BYTES,
    "northstar_producer_queue_bytes",
    "Bytes of the messages in the producer's queue (librdkafka msg_size)",
    &["client"]
);
gauge_vec!(PRODUCER_SENT_MESSAGES, "northstar_producer_sent_messages", "Messages sent to brokers since the producer started (librdkafka txmsgs; a counter's value, exported as a gauge)", &["client"]);
gauge_vec!(
    PRODUCER_SENT_BYTES,
    "northstar_producer_sent_bytes",
    "Message bytes sent to brokers since the producer started (librdkafka txmsg_bytes)",
    &["client"]
);
gauge_vec!(
    BROKER_RTT_US,
    "northstar_kafka_broker_rtt_avg_microseconds",
    "Average broker round-trip time over the last statistics window (librdkafka rtt.avg)",
    &["client", "broker"]
);
gauge_vec!(
    BROKER_OUTBUF,
    "northstar_kafka_broker_outbuf_requests",
    "Requests waiting to be sent to the broker (librdkafka outbuf_cnt)",
    &["client", "broker"]
);
gauge_vec!(
    BROKER_WAITRESP,
    "northstar_kafka_broker_waitresp_requests",
    "Requests sent and waiting for the broker's answer (librdkafka waitresp_cnt)",
    &["client", "broker"]
);
gauge_vec!(
    BROKER_TX_ERRORS,
    "northstar_kafka_broker_tx_errors",
    "Transmission errors with the broker since start (librdkafka txerrs)",
    &["client", "broker"]
);
gauge_vec!(
    BROKER_REQ_TIMEOUTS,
    "northstar_kafka_broker_request_timeouts",
    "Requests to the broker that timed out since start (librdkafka req_timeouts)",
    &["client", "broker"]
);

impl ClientContext for ProducerStats {
    fn stats(&self, s: rdkafka::Statistics) {
        let client = [s.client_id.as_str()];
        let as_i64 = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        PRODUCER_QUEUE_MESSAGES
            .with_label_values(&client)
            .set(as_i64(s.msg_cnt));
        PRODUCER_QUEUE_BYTES
            .with_label_values(&client)
            .set(as_i64(s.msg_size));
        PRODUCER_SENT_MESSAGES
            .with_label_values(&client)
            .set(s.txmsgs);
        PRODUCER_SENT_BYTES
            .with_label_values(&client)
            .set(s.txmsg_bytes);
        for b in s.brokers.values().filter(|b| b.nodeid >= 0) {
            let labels = [s.client_id.as_str(), b.nodename.as_str()];
            if let Some(rtt) = &b.rtt {
                BROKER_RTT_US.with_label_values(&labels).set(rtt.avg);
            }
            BROKER_OUTBUF.with_label_values(&labels).set(b.outbuf_cnt);
            BROKER_WAITRESP
                .with_label_values(&labels)
                .set(b.waitresp_cnt);
            BROKER_TX_ERRORS
                .with_label_values(&labels)
                .set(as_i64(b.txerrs));
            BROKER_REQ_TIMEOUTS
                .with_label_values(&labels)
                .set(as_i64(b.req_timeouts));
        }
    }
}

impl ClientContext for RevokeTracker {
    /// Exports per-partition consumer lag (set `statistics.interval.ms` to enable).
    fn stats(&self, statistics: rdkafka::Statistics) {
        for (topic, t) in &statistics.topics {
            for (partition, p) in &t.partitions {
                if *partition < 0 || p.consumer_lag < 0 {
                    continue;
                }
                CONSUMER_LAG
                    .with_label_values(&[topic.as_str(), &partition.to_string()])
                    .set(p.consumer_lag);
            }
        }
    }
}

impl ConsumerContext for RevokeTracker {
    fn pre_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(tpl) = rebalance {
            let mut revoked = self.revoked.lock().unwrap_or_else(|p| p.into_inner());
            revoked.extend(tpl.elements().iter().map(|e| e.partition()));
            self.any_revoked
                .store(true, std::sync::atomic::Ordering::Release);
        }
    }

    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        let n = match rebalance {
            Rebalance::Assign(tpl) => tpl.count(),
            _ => 0,
        };
        self.assigned.store(n, std::sync::atomic::Ordering::Relaxed);
    }

    fn commit_callback(&self, result: KafkaResult<()>, _offsets: &TopicPartitionList) {
        if let Err(e) = result {
            tracing::warn!(error = %e, "offset commit failed; the next commit covers it");
        }
    }
}

/// A configuration with only a `kafka` section (tests).
#[cfg(test)]
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(default)]
pub(crate) struct KafkaConfigHolder {
    pub kafka: KafkaConfig,
}
