//! Kafka client settings and topic names shared by the services.
//!
//! Contract: the services speak only the Kafka protocol through rdkafka; nothing here is
//! specific to one broker. Topics are created explicitly ([`create_topics`]), never by
//! auto-create.

mod contexts;
mod preflight;
mod settings;
mod topics;

pub use contexts::{ProducerStats, RevokeTracker};
pub use preflight::{preflight, PreflightError};
pub use settings::KafkaConfig;
pub use topics::{create_topics, CreateTopicError, SettingDifference, TopicSpec, TopicsConfig};

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

/// A configuration with only a `kafka` section: what the commands and bench tools that are no
/// service read ([`KafkaConfig::from_env`]).
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub(crate) struct KafkaConfigHolder {
    pub kafka: KafkaConfig,
}
