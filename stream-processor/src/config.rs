//! Stream processor configuration: file + `NORTHSTAR_*` environment.

use std::net::SocketAddr;

use northstar_runtime::{KafkaConfig, TelemetryConfig, TopicsConfig};
use northstar_schemas::catalog::Catalog;
use serde::{Deserialize, Serialize};

/// Stream processor configuration.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProcessorConfig {
    /// Address of `/healthz`, `/readyz` and `/metrics` (`NORTHSTAR_LISTEN`).
    pub listen: SocketAddr,
    /// Consumer group shared by all instances (`NORTHSTAR_GROUP_ID`).
    pub group_id: String,
    /// Schema registry base URL (writer schemas of incoming records are fetched by id).
    pub registry_url: String,
    /// Credentials for the registry (`NORTHSTAR_REGISTRY_AUTH__BASIC_AUTH_USER_INFO=user:password`
    /// or `..__BEARER_TOKEN`), as Confluent's clients take them; never printed.
    pub registry_auth: northstar_schemas::RegistryAuth,
    /// How often open windows are emitted and processed offsets committed, in milliseconds.
    pub emit_interval_ms: u64,
    /// The input is catching up once the newest record processed is older than this (by its
    /// Kafka timestamp against the wall clock), in milliseconds.
    pub catch_up_after_ms: u64,
    /// How often open windows are emitted while catching up, in milliseconds (freshness cannot
    /// beat the backlog then; fewer aggregate records leave the CPU to catching up).
    pub catch_up_emit_interval_ms: u64,
    /// How long after a window's end late events still update it, in seconds, when the
    /// catalog does not say (`defaults.allowed_lateness` in the catalog wins; setting both to
    /// different values is refused).
    pub allowed_lateness_secs: Option<u64>,
    /// The KPI catalog (YAML, see docs/kpi-catalog.md). Without one, the processor computes the
    /// built-in `events` KPI (count per event name per minute) (`NORTHSTAR_CATALOG`).
    pub catalog: Option<std::path::PathBuf>,
    /// The tracking plan events are checked against (YAML, docs/tracking-plan.md); without one,
    /// only the envelope is validated (`NORTHSTAR_PLAN`).
    pub plan: Option<std::path::PathBuf>,
    /// A candidate plan checked side by side with the same policies: counted
    /// (`northstar_processor_plan_shadow_*`), never acted on (`NORTHSTAR_SHADOW_PLAN`).
    pub shadow_plan: Option<std::path::PathBuf>,
    /// What each kind of plan problem does: `allow`, `flag` (kept, counted, marked) or
    /// `quarantine` (dead-lettered) (`NORTHSTAR_PLAN_POLICIES__UNKNOWN_EVENT`, …).
    pub plan_policies: crate::plan_gate::PlanPolicies,
    /// A file holding the key of the plan's `hash` actions, `v<version>:<base64 key>` (at least
    /// 32 bytes; `NORTHSTAR_PII_KEY_FILE`); wins over `pii_key`.
    pub pii_key_file: Option<std::path::PathBuf>,
    /// The same key as text (`NORTHSTAR_PII_KEY`); never logged.
    pub pii_key: Option<Redacted>,
    /// Records larger than this many bytes are dead-lettered (failure type `size`); twice the
    /// collector's per-event limit, so it bounds what backend services produce directly
    /// (`NORTHSTAR_MAX_EVENT_BYTES`).
    pub max_event_bytes: usize,
    /// Duplicates by (source, messageId) are dropped within this many seconds (by receivedAt).
    pub dedup_window_secs: u32,
    /// Event timestamps further than this ahead of receivedAt are clamped to receivedAt, in seconds.
    pub max_future_skew_secs: u64,
    /// A receivedAt further than this from the Kafka record's timestamp is replaced by it, in
    /// seconds (a producer writing nanoseconds, or a clock far off).
    pub max_received_skew_secs: u64,
    /// Events whose timestamp is more than this many days before receivedAt are dead-lettered
    /// (`timestamp_too_old`).
    pub max_event_age_days: u64,
    /// Where partition checkpoints are kept: `file://` (relative to the working directory) or
    /// `s3://bucket/prefix` (settings from the standard `AWS_*` variables).
    pub checkpoint_root: String,
    /// How often partition state is checkpointed (and offsets committed), in milliseconds.
    pub checkpoint_interval_ms: u64,
    /// Checkpoints kept per partition.
    pub checkpoints_kept: usize,
    /// Start a partition that this consumer group has read before but that has no checkpoint
    /// (a lost or misconfigured `checkpoint_root`) with empty state instead of refusing to:
    /// its deduplication ids are lost and the windows that began before its first event are
    /// marked as missing input (`NORTHSTAR_ALLOW_EMPTY_STATE`, `--allow-empty-state`).
    pub allow_empty_state: bool,
    /// Flush early once this many output records await acknowledgement.
    pub max_pending_outputs: usize,
    /// Outputs handed to the producer at a time; each burst first waits for the previous one's
    /// acknowledgements, and the rest go at every emission. While a partition has its in-flight
    /// produce requests outstanding, librdkafka's producer thread wakes for every record
    /// enqueued; bursts small enough to be in flight at once keep it asleep instead
    /// (docs/benchmarks.md: 7 µs instead of 60 µs per event on Tansu). 1 sends each output at
    /// once (`NORTHSTAR_OUTPUT_BURST`).
    pub output_burst: usize,
    /// Topic names.
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

impl Default for ProcessorConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 9465)),
            group_id: "northstar-stream-processor".into(),
            registry_url: "http://127.0.0.1:8081".into(),
            registry_auth: Default::default(),
            emit_interval_ms: 500,
            catch_up_after_ms: 3_000,
            catch_up_emit_interval_ms: 5_000,
            allowed_lateness_secs: None,
            catalog: None,
            plan: None,
            shadow_plan: None,
            plan_policies: Default::default(),
            pii_key_file: None,
            pii_key: None,
            max_future_skew_secs: 300,
            max_received_skew_secs: 3_600,
            max_event_age_days: 365,
            max_event_bytes: 64 * 1024,
            dedup_window_secs: 86_400,
            checkpoint_root: "file://./data/checkpoints".into(),
            checkpoint_interval_ms: 5_000,
            checkpoints_kept: 3,
            max_pending_outputs: 50_000,
            output_burst: 2_000,
            topics: TopicsConfig::default(),
            kafka: KafkaConfig::default(),
            telemetry: TelemetryConfig::default(),
            allow_empty_state: false,
            shutdown_grace_secs: northstar_runtime::shutdown::DEFAULT_GRACE_SECS,
        }
    }
}

impl ProcessorConfig {
    /// Refuses an unusable configuration, naming the setting.
    pub fn validate(&self) -> Result<(), String> {
        self.kafka.validate()?;
        self.topics.validate()?;
        if self.group_id.trim().is_empty() {
            return Err("group_id (NORTHSTAR_GROUP_ID) is empty".into());
        }
        if self.emit_interval_ms == 0 {
            return Err("emit_interval_ms must be > 0".into());
        }
        if self.catch_up_emit_interval_ms < self.emit_interval_ms {
            return Err(format!(
                "catch_up_emit_interval_ms ({}) is below emit_interval_ms ({}): catching up would emit more often, not less",
                self.catch_up_emit_interval_ms, self.emit_interval_ms
            ));
        }
        Ok(())
    }

    /// The clock bounds of [`crate::clock`].
    pub fn clock_bounds(&self) -> crate::clock::ClockBounds {
        let micros = |secs: u64| (secs as i64).saturating_mul(1_000_000);
        crate::clock::ClockBounds {
            max_received_skew_micros: micros(self.max_received_skew_secs),
            max_future_skew_micros: micros(self.max_future_skew_secs),
            max_event_age_micros: micros(self.max_event_age_days.saturating_mul(86_400)),
        }
    }

    /// Refuses a catalog whose allowed lateness contradicts `allowed_lateness_secs`.
    pub fn check_catalog(&self, catalog: &Catalog) -> Result<(), String> {
        match (catalog.allowed_lateness_ms, self.allowed_lateness_secs) {
            (Some(c), Some(s)) if c != (s as i64).saturating_mul(1000) => Err(format!(
                "allowed_lateness_secs ({s}) contradicts the catalog's defaults.allowed_lateness ({} s): set it in one place",
                c / 1000
            )),
            _ => Ok(()),
        }
    }

    /// The allowed lateness in force (ms): the catalog's, else `allowed_lateness_secs`, else
    /// the contract's default (10 minutes).
    pub fn lateness_ms(&self, catalog: &Catalog) -> i64 {
        catalog
            .allowed_lateness_ms
            .or(self
                .allowed_lateness_secs
                .map(|s| (s as i64).saturating_mul(1000)))
            .unwrap_or(northstar_schemas::catalog::DEFAULT_LATENESS_MS)
    }
}

pub use northstar_runtime::Redacted;
