//! Lake sink configuration (`northstar-sink lake`).

use std::net::SocketAddr;

use northstar_runtime::{KafkaConfig, TelemetryConfig, TopicsConfig};
use serde::{Deserialize, Serialize};

/// Lake sink configuration.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LakeConfig {
    /// Lake root URL (`NORTHSTAR_ROOT`): `file://` (paths may be relative to the working
    /// directory) or `s3://bucket/prefix` (settings from the standard `AWS_*` variables, a custom
    /// endpoint from `AWS_ENDPOINT_URL`).
    pub root: String,
    /// Consumer group of the lake sink (`NORTHSTAR_GROUP_ID`).
    pub group_id: String,
    /// Schema registry base URL.
    pub registry_url: String,
    /// Credentials for the registry (`NORTHSTAR_REGISTRY_AUTH__BASIC_AUTH_USER_INFO=user:password`
    /// or `..__BEARER_TOKEN`), as Confluent's clients take them; never printed.
    pub registry_auth: northstar_schemas::RegistryAuth,
    /// Flush a clean-topic partition's buffered rows once they reach this many bytes of events
    /// (a file holds at most that much).
    pub max_file_bytes: usize,
    /// Flush a partition's buffered rows once the oldest is this old, in seconds.
    pub max_file_age_secs: u64,
    /// Most files open (buffered) at once over all partitions: past it, the partition holding
    /// the oldest buffered rows is flushed. Bounds memory when events spread over many
    /// hours and event names.
    pub max_open_files: usize,
    /// Most bytes of events buffered over all partitions of a table: past it, the partitions
    /// holding the most are flushed first until the rest fits (`NORTHSTAR_MAX_BUFFERED_BYTES`).
    pub max_buffered_bytes: usize,
    /// Most distinct `event_name` directories per clean-topic partition: the rows of names past
    /// it go to `event_name=__other__`, still queryable by their `event` column
    /// (`NORTHSTAR_MAX_EVENT_NAMES`).
    pub max_event_names: usize,
    /// The tracking plan (`NORTHSTAR_PLAN`, docs/tracking-plan.md): planned properties get the
    /// plan's column types in every file of their events, instead of a vote over the file's
    /// values.
    pub plan: Option<std::path::PathBuf>,
    /// A file holding the PII keys, `v<version>:<base64 key>` per line, as the processor's
    /// (`NORTHSTAR_PII_KEY_FILE`; wins over `pii_key`): `lake-admin erase` names the people it
    /// erases by keyed hashes and adds them to the suppression list, which `lake-admin replay`
    /// consults.
    pub pii_key_file: Option<std::path::PathBuf>,
    /// The same keys as text (`NORTHSTAR_PII_KEY`); never logged.
    pub pii_key: Option<northstar_runtime::Redacted>,
    /// Attempts of one file upload before the flush is given up: the partition is then paused
    /// and its range read again and flushed after a backoff (1 s doubling to a minute), while
    /// the other partitions go on (`NORTHSTAR_UPLOAD_ATTEMPTS`).
    pub upload_attempts: u32,
    /// Also write `topics.dlq` to the dead-letter table (`dlq/`, consumer group
    /// `<group_id>-dlq`).
    pub dead_letter_table: bool,
    /// Address of `/healthz`, `/readyz` and `/metrics`.
    pub listen: SocketAddr,
    /// Topic names (reads `clean`, rejects undecodable records to `dlq`).
    pub topics: TopicsConfig,
    /// Kafka connection.
    pub kafka: KafkaConfig,
    /// Logging.
    pub telemetry: TelemetryConfig,
    /// After SIGTERM, the service has this many seconds to drain, flush and commit; past it, it
    /// exits anyway (status 75), leaving what it could not commit to be replayed
    /// (`NORTHSTAR_SHUTDOWN_GRACE_SECS`; keep it below the orchestrator's own grace period).
    pub shutdown_grace_secs: u64,
}

impl Default for LakeConfig {
    fn default() -> Self {
        Self {
            root: "file://./data/lake".into(),
            group_id: "northstar-lake-sink".into(),
            registry_url: "http://127.0.0.1:8081".into(),
            registry_auth: Default::default(),
            max_file_bytes: 128 * 1024 * 1024,
            max_file_age_secs: 300,
            max_open_files: 512,
            max_buffered_bytes: 256 * 1024 * 1024,
            max_event_names: 1_000,
            plan: None,
            pii_key_file: None,
            pii_key: None,
            upload_attempts: 3,
            dead_letter_table: true,
            listen: SocketAddr::from(([127, 0, 0, 1], 9466)),
            topics: TopicsConfig::default(),
            kafka: KafkaConfig::default(),
            telemetry: TelemetryConfig::default(),
            shutdown_grace_secs: northstar_runtime::shutdown::DEFAULT_GRACE_SECS,
        }
    }
}

impl LakeConfig {
    /// Refuses an unusable configuration, naming the setting.
    pub fn validate(&self) -> Result<(), String> {
        self.kafka.validate()?;
        self.topics.validate()?;
        if self.root.trim().is_empty() {
            return Err("root (NORTHSTAR_ROOT) is empty".into());
        }
        if self.max_file_bytes == 0
            || self.max_file_age_secs == 0
            || self.max_open_files == 0
            || self.max_buffered_bytes == 0
            || self.max_event_names == 0
            || self.upload_attempts == 0
        {
            return Err(
                "max_file_bytes, max_file_age_secs, max_open_files, max_buffered_bytes, \
                        max_event_names and upload_attempts must be > 0"
                    .into(),
            );
        }
        Ok(())
    }
}
