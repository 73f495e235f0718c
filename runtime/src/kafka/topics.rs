//! Topic names and their creation: [`create_topics`] creates what is missing and reports how
//! existing topics differ from what is wanted.
//!
//! Contract: topics are created explicitly, never by auto-create; an existing topic is never
//! altered, only compared.

use std::collections::HashMap;
use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::BaseConsumer;
use rdkafka::types::RDKafkaErrorCode;
use serde::{Deserialize, Serialize};

use super::KafkaConfig;

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
    /// Replicas of each topic created here (`NORTHSTAR_TOPICS__REPLICATION_FACTOR`): 3 suits a
    /// cluster of three or more brokers; the local stack and the tests, on one broker, use 1.
    pub replication_factor: i32,
    /// `min.insync.replicas` of each topic created here
    /// (`NORTHSTAR_TOPICS__MIN_INSYNC_REPLICAS`): every producer writes with `acks=all`, so a
    /// write is acknowledged once this many replicas hold it; 2 of 3 survives one lost broker
    /// without losing an acknowledged record.
    pub min_insync_replicas: i32,
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
            replication_factor: 3,
            min_insync_replicas: 2,
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
        let (rf, isr) = (self.replication_factor, self.min_insync_replicas);
        if rf < 1 || isr < 1 || isr > rf {
            return Err(format!(
                "topics.replication_factor ({rf}) and topics.min_insync_replicas ({isr}) must be \
                 at least 1, with min_insync_replicas at most replication_factor"
            ));
        }
        Ok(())
    }

    /// A topic to create with this cluster's replication and `min.insync.replicas`.
    pub fn spec(&self, name: &str, partitions: i32, config: Vec<(String, String)>) -> TopicSpec {
        let mut config = config;
        config.push((
            "min.insync.replicas".into(),
            self.min_insync_replicas.to_string(),
        ));
        TopicSpec {
            name: name.to_string(),
            partitions,
            replication_factor: self.replication_factor,
            config,
        }
    }
}

/// One topic to create.
#[derive(Debug, Clone)]
pub struct TopicSpec {
    pub name: String,
    pub partitions: i32,
    pub replication_factor: i32,
    /// Topic configs, e.g. `cleanup.policy=compact`.
    pub config: Vec<(String, String)>,
}

/// A topic that could not be created (`topic` is `*` for a failure of the whole request).
#[derive(Debug, thiserror::Error)]
pub enum CreateTopicError {
    /// The Kafka settings cannot work (refused credentials, an untrusted certificate...).
    #[error(transparent)]
    Kafka(#[from] super::PreflightError),
    #[error("cannot create topic {topic}: {reason}")]
    Topic { topic: String, reason: String },
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
    super::preflight(kafka).await?;
    let existing = existing_topics(kafka).await?;
    let present: Vec<&TopicSpec> = specs
        .iter()
        .filter(|s| existing.contains_key(&s.name))
        .collect();
    let mut differences = replication_differences(&existing, &present);
    differences.extend(setting_differences(kafka, &present).await);
    let missing: Vec<&TopicSpec> = specs
        .iter()
        .filter(|s| {
            let there = existing.contains_key(&s.name);
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
        .map_err(|e| CreateTopicError::Topic {
            topic: "*".into(),
            reason: e.to_string(),
        })?;
    let new_topics: Vec<NewTopic<'_>> = missing
        .iter()
        .map(|s| {
            let mut t = NewTopic::new(
                &s.name,
                s.partitions,
                TopicReplication::Fixed(s.replication_factor),
            );
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
        .map_err(|e| CreateTopicError::Topic {
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
                return Err(CreateTopicError::Topic {
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

/// Existing topics whose partitions have fewer or more replicas than wanted (the fewest of any
/// partition is reported: that is what one lost broker can cost).
fn replication_differences(
    existing: &HashMap<String, usize>,
    present: &[&TopicSpec],
) -> Vec<SettingDifference> {
    present
        .iter()
        .filter_map(|s| {
            let actual = *existing.get(&s.name)?;
            let wanted = usize::try_from(s.replication_factor).unwrap_or(0);
            (actual != wanted).then(|| SettingDifference {
                topic: s.name.clone(),
                key: "replication factor".into(),
                wanted: wanted.to_string(),
                actual: Some(actual.to_string()),
            })
        })
        .collect()
}

/// The topics the broker's metadata lists, each with the fewest replicas of any partition.
async fn existing_topics(kafka: &KafkaConfig) -> Result<HashMap<String, usize>, CreateTopicError> {
    let failed = |e: rdkafka::error::KafkaError| CreateTopicError::Topic {
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
    .map_err(|e| CreateTopicError::Topic {
        topic: "*".into(),
        reason: e.to_string(),
    })?
    .map_err(failed)?;
    Ok(metadata
        .topics()
        .iter()
        .filter(|t| t.error().is_none())
        .map(|t| {
            let replicas = t.partitions().iter().map(|p| p.replicas().len()).min();
            (t.name().to_string(), replicas.unwrap_or(0))
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

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
            replication_factor: 1,
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
            .contains_key("there"));
    }

    #[test]
    fn replication_is_compared_and_validated() {
        let topics = TopicsConfig::default();
        let spec = topics.spec("_schemas", 1, vec![]);
        assert_eq!(spec.replication_factor, 3);
        assert!(spec
            .config
            .contains(&("min.insync.replicas".into(), "2".into())));
        let existing = HashMap::from([("_schemas".to_string(), 1usize)]);
        let found = replication_differences(&existing, &[&spec]);
        assert_eq!(found.len(), 1);
        assert!(
            found[0].to_string().contains("replication factor=1, not 3"),
            "{}",
            found[0]
        );
        let bad = TopicsConfig {
            min_insync_replicas: 4,
            ..Default::default()
        };
        assert!(bad
            .validate()
            .expect_err("isr > rf")
            .contains("min_insync_replicas"));
    }
}
