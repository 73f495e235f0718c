//! The Kafka client settings every service and command shares (`[kafka]`, `NORTHSTAR_KAFKA__*`).
//!
//! Contract: one [`KafkaConfig`] builds every client (consumer, producer, admin) of a process,
//! so a setting such as `security.protocol` reaches all of them. Secret properties (SASL
//! passwords, key passphrases, OAuth client secrets) may come from the environment
//! (`NORTHSTAR_KAFKA__PROPERTIES__SASL_PASSWORD`) or from files (`kafka.secret_files`), and are
//! never shown by `Debug`.

use std::collections::BTreeMap;
use std::time::Duration;

use rdkafka::config::ClientConfig;
use serde::{Deserialize, Serialize};

/// Connection settings (`[kafka]`, `NORTHSTAR_KAFKA__*`).
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KafkaConfig {
    /// Bootstrap servers, comma separated.
    pub brokers: String,
    /// Extra librdkafka properties applied to every client (e.g. `security.protocol`).
    /// Underscores stand for dots, so they can be set from the environment:
    /// `NORTHSTAR_KAFKA__PROPERTIES__SESSION_TIMEOUT_MS=10000` is `session.timeout.ms`.
    #[serde(deserialize_with = "scalars_as_strings")]
    pub properties: BTreeMap<String, String>,
    /// Properties whose value is a file's content (trailing newline removed), for secrets
    /// mounted from a Kubernetes Secret or a vault agent: `sasl_password =
    /// "/run/secrets/kafka/password"` sets `sasl.password`
    /// (`NORTHSTAR_KAFKA__SECRET_FILES__SASL_PASSWORD`). Read once, when the configuration is
    /// loaded; a missing or unreadable file is a configuration error naming the key.
    pub secret_files: BTreeMap<String, SecretFile>,
    /// How long a service waits at start for the brokers to answer before going on without
    /// them (`NORTHSTAR_KAFKA__STARTUP_CHECK_SECS`); refused credentials or certificates end
    /// the start at once, whatever this says ([`crate::kafka::preflight`]).
    pub startup_check_secs: u64,
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
            secret_files: BTreeMap::new(),
            startup_check_secs: 10,
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
            cfg.set(property_name(k), v);
        }
        for (k, file) in &self.secret_files {
            cfg.set(property_name(k), &file.value.0);
        }
    }

    /// The librdkafka properties this configuration adds to every client, secrets shown as
    /// `<redacted>`: what a log line or an error may print.
    pub fn shown_properties(&self) -> BTreeMap<String, String> {
        let mut out: BTreeMap<String, String> = self
            .properties
            .iter()
            .map(|(k, v)| {
                let name = property_name(k);
                let shown = if is_secret(&name) {
                    REDACTED.into()
                } else {
                    v.clone()
                };
                (name, shown)
            })
            .collect();
        for (k, file) in &self.secret_files {
            out.insert(property_name(k), format!("{REDACTED} (from {})", file.path));
        }
        out
    }

    /// The `[kafka]` settings from the environment (`NORTHSTAR_KAFKA__*`, as every service
    /// reads them), with `brokers` replacing `kafka.brokers` when given: for commands and
    /// bench tools, so they reach a secured cluster exactly as the services do.
    pub fn from_env(brokers: Option<&str>) -> Result<KafkaConfig, crate::ConfigError> {
        let mut kafka = crate::load_config::<super::KafkaConfigHolder>(None)?.kafka;
        if let Some(b) = brokers {
            kafka.brokers = b.to_string();
        }
        kafka.validate().map_err(crate::ConfigError::Invalid)?;
        Ok(kafka)
    }

    /// `security.protocol` as configured (librdkafka's default: `plaintext`).
    pub fn security_protocol(&self) -> String {
        self.client_config("-")
            .get("security.protocol")
            .unwrap_or("plaintext")
            .to_ascii_lowercase()
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
        self.acks_all_producer(client_id, timeout_ms, true)
    }

    /// A producer whose sends count only once every in-sync replica has the record
    /// (`acks=all`), retried until `timeout_ms`, without producer ids: retries may duplicate a
    /// record, which is fine where consumers deduplicate (the collector's events carry a
    /// message id the stream processor deduplicates on).
    pub fn acked_producer(&self, client_id: &str, timeout_ms: u64) -> ClientConfig {
        self.acks_all_producer(client_id, timeout_ms, false)
    }

    fn acks_all_producer(
        &self,
        client_id: &str,
        timeout_ms: u64,
        idempotent: bool,
    ) -> ClientConfig {
        let mut cfg = ClientConfig::new();
        // Tunable defaults first: `properties` may override them (e.g. `linger.ms`). Not
        // copied from `client_config(..).config_map()`: rdkafka masks secrets there.
        cfg.set("linger.ms", "5");
        self.fill(&mut cfg, client_id);
        // What the delivery guarantee rests on is not overridable.
        cfg.set("enable.idempotence", idempotent.to_string())
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

    /// Refuses an empty broker list and a property set both inline and from a file, naming the
    /// setting.
    pub fn validate(&self) -> Result<(), String> {
        if self.brokers.trim().is_empty() {
            return Err("kafka.brokers (NORTHSTAR_KAFKA__BROKERS) is empty".into());
        }
        let inline: Vec<String> = self.properties.keys().map(|k| property_name(k)).collect();
        if let Some(k) = self
            .secret_files
            .keys()
            .find(|k| inline.contains(&property_name(k)))
        {
            return Err(format!(
                "kafka property {} is set both in kafka.properties and kafka.secret_files: keep one",
                property_name(k)
            ));
        }
        Ok(())
    }
}

impl std::fmt::Debug for KafkaConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaConfig")
            .field("brokers", &self.brokers)
            .field("properties", &self.shown_properties())
            .field("startup_check_secs", &self.startup_check_secs)
            .field("stall_grace_secs", &self.stall_grace_secs)
            .field("rejoin_after_secs", &self.rejoin_after_secs)
            .finish()
    }
}

const REDACTED: &str = "<redacted>";

/// librdkafka property names use dots, never underscores: the environment's
/// `SASL_PASSWORD` is `sasl.password`.
fn property_name(key: &str) -> String {
    key.replace('_', ".")
}

/// Whether a librdkafka property holds a secret (a password, a private key, a client secret,
/// an OAuth configuration that may embed one).
pub(crate) fn is_secret(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    name.contains("password")
        || name.contains("secret")
        || name == "ssl.key.pem"
        || name == "sasl.oauthbearer.config"
        || name == "sasl.jaas.config"
}

/// A property value read from a file when the configuration is loaded.
#[derive(Clone)]
pub struct SecretFile {
    /// The file, as configured.
    pub path: String,
    value: crate::Redacted,
}

impl SecretFile {
    /// Reads `path` (its content without the trailing newline).
    pub fn read(path: &str) -> Result<SecretFile, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read the secret file {path}: {e}"))?;
        let value = text.strip_suffix('\n').unwrap_or(&text);
        let value = value.strip_suffix('\r').unwrap_or(value).to_string();
        if value.is_empty() {
            return Err(format!("the secret file {path} is empty"));
        }
        Ok(SecretFile {
            path: path.into(),
            value: crate::Redacted(value),
        })
    }
}

impl std::fmt::Debug for SecretFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{REDACTED} (from {})", self.path)
    }
}

impl Serialize for SecretFile {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.path)
    }
}

impl<'de> Deserialize<'de> for SecretFile {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let path = String::deserialize(d)?;
        SecretFile::read(&path).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kafka::fetch_wait_ms;

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

    #[test]
    fn secrets_are_never_shown() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("password");
        std::fs::write(&file, "from-a-file\n").expect("write");
        let mut k = KafkaConfig::default();
        k.properties.insert("sasl_username".into(), "alice".into());
        k.properties
            .insert("ssl_key_password".into(), "inline-secret".into());
        let path = file.display().to_string();
        k.secret_files.insert(
            "sasl_password".into(),
            SecretFile::read(&path).expect("read"),
        );
        // Every kind of client carries the secrets themselves (rdkafka's `config_map` masks
        // them: a producer built from it once sent a placeholder as its password).
        for cfg in [
            k.client_config("x"),
            k.idempotent_producer("x", 1),
            k.acked_producer("x", 1),
            k.manual_commit_consumer("x", "g", 1),
        ] {
            assert_eq!(cfg.get("sasl.password"), Some("from-a-file"));
            assert_eq!(cfg.get("ssl.key.password"), Some("inline-secret"));
        }
        let shown = format!("{k:?}");
        assert!(shown.contains("alice") && shown.contains(&path), "{shown}");
        assert!(
            !shown.contains("from-a-file") && !shown.contains("inline-secret"),
            "{shown}"
        );
        k.properties.insert("sasl.password".into(), "x".into());
        assert!(k.validate().expect_err("both").contains("sasl.password"));
    }

    #[test]
    fn a_missing_or_empty_secret_file_is_named() {
        let dir = tempfile::tempdir().expect("tempdir");
        let missing = dir.path().join("nope").display().to_string();
        assert!(SecretFile::read(&missing)
            .expect_err("missing")
            .contains(&missing));
        let empty = dir.path().join("empty");
        std::fs::write(&empty, "\n").expect("write");
        assert!(SecretFile::read(&empty.display().to_string())
            .expect_err("empty")
            .contains("empty"));
    }
}
