//! Ingest configuration: file + `NORTHSTAR_*` environment.
//!
//! Contract: [`IngestConfig::validate`] refuses to start without write keys, brokers or a topic,
//! naming the setting; write keys never appear in logs (`Debug` shows only source ids).

use std::collections::BTreeMap;
use std::net::SocketAddr;

use northstar_runtime::{KafkaConfig, TelemetryConfig, TopicsConfig};

pub use crate::enrich::IpPolicy;
use serde::{Deserialize, Serialize};

/// Write key → source id. Write keys are secrets: `Debug` prints only the source ids.
#[derive(Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct WriteKeys(pub BTreeMap<String, String>);

impl std::fmt::Debug for WriteKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(
                self.0
                    .values()
                    .map(|source| format!("<redacted> → {source}")),
            )
            .finish()
    }
}

impl WriteKeys {
    /// The source id of `key`, if it is known.
    pub fn source(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }
}

/// Request size limits (Segment's by default).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Largest accepted single event, in bytes of JSON.
    pub max_event_bytes: usize,
    /// Largest accepted request body, in bytes (after decompression).
    pub max_batch_bytes: usize,
    /// Deepest nesting of objects and arrays in an event (the event itself is level 1).
    pub max_depth: usize,
    /// Most object keys in one event, over all its objects (properties, traits, context…).
    pub max_keys: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_event_bytes: 32 * 1024,
            max_batch_bytes: 500 * 1024,
            max_depth: 32,
            max_keys: 1_000,
        }
    }
}

/// How far from the receipt time an event's (skew-corrected) timestamp may be before the event
/// is flagged: counted and marked in its context as `northstar.clock_flag` (`future` or
/// `past`) with `northstar.skew_seconds`. Flagged events are kept, not rejected.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClockBounds {
    /// Seconds ahead of the receipt time beyond which a timestamp is flagged `future`.
    pub max_future_secs: u64,
    /// Seconds before the receipt time beyond which a timestamp is flagged `past`.
    pub max_past_secs: u64,
}

impl Default for ClockBounds {
    fn default() -> Self {
        Self {
            max_future_secs: 3_600,
            max_past_secs: 30 * 86_400,
        }
    }
}

/// A rate limit on accepted events.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RateLimit {
    /// Sustained events per second; 0 means unlimited.
    pub events_per_second: u32,
    /// Events that may arrive at once above the sustained rate (0: one second's worth).
    pub burst: u32,
}

/// Settings of one source (the write keys mapped to it).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SourceConfig {
    /// Rate limit per write key of this source (instead of the global `rate_limit`).
    pub rate_limit: Option<RateLimit>,
    /// IP policy of this source's events (instead of the global `ip`).
    pub ip: Option<IpPolicy>,
}

/// Ingest configuration.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IngestConfig {
    /// Address of the public tracking API and its health checks, `/healthz` and `/readyz`
    /// (`NORTHSTAR_LISTEN`).
    pub listen: SocketAddr,
    /// Address of the admin endpoints, `/metrics` with `/healthz` and `/readyz` again
    /// (`NORTHSTAR_ADMIN_LISTEN`): never on the public port, loopback unless opened for a
    /// scraper (e.g. `0.0.0.0:9467` in a pod, not exposed by its Service).
    pub admin_listen: SocketAddr,
    /// TLS on `listen` (`NORTHSTAR_TLS__CERT`, `NORTHSTAR_TLS__KEY`: PEM files), for
    /// deployments without a terminating proxy; unset: plain HTTP.
    pub tls: Option<northstar_runtime::tls::TlsFiles>,
    /// Topic names, as in every service: events are produced to `topics.raw`
    /// (`NORTHSTAR_TOPICS__RAW`).
    pub topics: TopicsConfig,
    /// Replaced by `topics.raw`; refused when set, so an old setting is not silently ignored
    /// (serialised even when unset: the environment loader only reads known top-level keys).
    pub topic: Option<String>,
    /// Schema registry base URL; the envelope schema is registered there at startup.
    pub registry_url: String,
    /// Credentials for the registry (`NORTHSTAR_REGISTRY_AUTH__BASIC_AUTH_USER_INFO=user:password`
    /// or `..__BEARER_TOKEN`), as Confluent's clients take them; never printed.
    pub registry_auth: northstar_schemas::RegistryAuth,
    /// Accepted write keys and the source each belongs to (`[write_keys] "key" = "source"`).
    pub write_keys: WriteKeys,
    /// Request size limits.
    pub limits: Limits,
    /// Timestamps flagged as too far in the future or the past.
    pub clock: ClockBounds,
    /// Rate limit of each write key, unless its source sets its own (`[sources.<id>]`).
    pub rate_limit: RateLimit,
    /// Per-source settings, by source id.
    pub sources: BTreeMap<String, SourceConfig>,
    /// What happens to client IP addresses (`keep`, `truncate` or `drop`), unless the source
    /// sets its own.
    pub ip: IpPolicy,
    /// Networks of the proxies whose `X-Forwarded-For` is believed (CIDR, e.g. `10.0.0.0/8`);
    /// empty: the connection's address is the client's.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// Most events waiting for broker acknowledgements at once; a request that would pass it is
    /// answered 503 with `Retry-After` instead of queueing without bound.
    pub max_in_flight_events: usize,
    /// How long the broker may take to acknowledge an event before the request fails with 503.
    pub delivery_timeout_ms: u64,
    /// Seconds sent in `Retry-After` when the broker is unavailable.
    pub retry_after_secs: u64,
    /// A file holding the PII keys, `v<version>:<base64 key>` per line, as the processor's
    /// (`NORTHSTAR_PII_KEY_FILE`); wins over `pii_key`. With a key, the collector follows the
    /// suppression list (`topics.suppressions`) and refuses the events of erased subjects;
    /// without one it cannot read the list and says so at start.
    pub pii_key_file: Option<std::path::PathBuf>,
    /// The same keys as text (`NORTHSTAR_PII_KEY`); never logged.
    pub pii_key: Option<northstar_runtime::Redacted>,
    /// Kafka connection.
    pub kafka: KafkaConfig,
    /// Logging.
    pub telemetry: TelemetryConfig,
    /// After SIGTERM, the service has this many seconds to drain, flush and commit; past it, it
    /// exits anyway (status 75), leaving what it could not commit to be replayed
    /// (`NORTHSTAR_SHUTDOWN_GRACE_SECS`; keep it below the orchestrator's own grace period).
    pub shutdown_grace_secs: u64,
}

impl Default for IngestConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            admin_listen: SocketAddr::from(([127, 0, 0, 1], 9467)),
            tls: None,
            topics: TopicsConfig::default(),
            topic: None,
            pii_key_file: None,
            pii_key: None,
            registry_url: "http://127.0.0.1:8081".into(),
            registry_auth: Default::default(),
            write_keys: WriteKeys::default(),
            limits: Limits::default(),
            clock: ClockBounds::default(),
            rate_limit: RateLimit::default(),
            sources: BTreeMap::new(),
            ip: IpPolicy::default(),
            trusted_proxies: Vec::new(),
            max_in_flight_events: 50_000,
            delivery_timeout_ms: 10_000,
            retry_after_secs: 5,
            kafka: KafkaConfig::default(),
            telemetry: TelemetryConfig::default(),
            shutdown_grace_secs: northstar_runtime::shutdown::DEFAULT_GRACE_SECS,
        }
    }
}

impl IngestConfig {
    /// The IP policy of `source`'s events.
    pub fn ip_policy_of(&self, source: &str) -> IpPolicy {
        self.sources
            .get(source)
            .and_then(|s| s.ip)
            .unwrap_or(self.ip)
    }

    /// The rate limit of write keys of `source`.
    pub fn rate_limit_of(&self, source: &str) -> &RateLimit {
        self.sources
            .get(source)
            .and_then(|s| s.rate_limit.as_ref())
            .unwrap_or(&self.rate_limit)
    }

    /// Refuses an unusable configuration, naming the setting.
    pub fn validate(&self) -> Result<(), String> {
        self.kafka.validate()?;
        if let Some(t) = &self.topic {
            return Err(format!(
                "topic (NORTHSTAR_TOPIC={t}) was replaced by topics.raw (NORTHSTAR_TOPICS__RAW), \
                 the same topics section as every other service: rename the setting"
            ));
        }
        self.topics.validate()?;
        if self.write_keys.0.is_empty() {
            return Err("write_keys is empty: configure at least one write key (NORTHSTAR_WRITE_KEYS__<key>=<source>)".into());
        }
        if let Some((_, source)) = self
            .write_keys
            .0
            .iter()
            .find(|(k, s)| k.is_empty() || s.is_empty())
        {
            return Err(format!(
                "write_keys: an empty key or source id (source {source:?})"
            ));
        }
        if self.max_in_flight_events == 0 {
            return Err("max_in_flight_events must be > 0".into());
        }
        if let Some(id) = self
            .sources
            .keys()
            .find(|id| !self.write_keys.0.values().any(|s| s == *id))
        {
            return Err(format!(
                "sources.{id}: no write key maps to this source (write_keys)"
            ));
        }
        if self.limits.max_event_bytes == 0
            || self.limits.max_batch_bytes < self.limits.max_event_bytes
        {
            return Err("limits: max_event_bytes must be > 0 and ≤ max_batch_bytes".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_topic_comes_from_the_shared_topics_section() {
        let mut c: IngestConfig = serde_json::from_value(serde_json::json!({
            "topics": { "raw": "tenant-a.events.raw" },
            "write_keys": { "k1": "web" },
        }))
        .expect("config");
        assert_eq!(c.topics.raw, "tenant-a.events.raw");
        assert!(c.validate().is_ok());
        // The old key is a known top-level key (so NORTHSTAR_TOPIC is read, not ignored) and
        // is refused with the new name.
        let keys = serde_json::to_value(IngestConfig::default()).expect("json");
        assert!(keys.get("topic").is_some() && keys.get("topics").is_some());
        c.topic = Some("events.raw".into());
        assert!(c.validate().unwrap_err().contains("NORTHSTAR_TOPICS__RAW"));
    }

    #[test]
    fn refuses_empty_write_keys_and_redacts_them() {
        let mut c = IngestConfig::default();
        assert!(c.validate().unwrap_err().contains("write_keys"));
        c.write_keys.0.insert("s3cret".into(), "web".into());
        assert!(c.validate().is_ok());
        let dbg = format!("{c:?}");
        assert!(!dbg.contains("s3cret") && dbg.contains("web"), "{dbg}");
    }
}
