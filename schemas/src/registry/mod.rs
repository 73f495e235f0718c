//! A Confluent Schema Registry-compatible service, for local and test use.
//!
//! Contract: schemas and compatibility settings are kept in the compacted topic `_schemas`
//! (one partition), written before they are served, so a restart serves the same ids and
//! versions. One instance writes at a time (registrations are serialised in-process); run a
//! single instance per log, as with Confluent's single leader.

mod api;
pub mod auth;
pub mod state;
mod store;

use std::net::SocketAddr;
use std::sync::{Arc, RwLock, RwLockReadGuard};

use northstar_runtime::{admin, KafkaConfig, Shutdown, TelemetryConfig, TopicsConfig};
use serde::{Deserialize, Serialize};

use state::{Compatibility, Plan, Record, RegistryError, State};
pub use store::{Store, StoreError};

/// Registry configuration (`northstar-schemas serve`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RegistryConfig {
    /// Address of the REST API, with `/healthz` and `/readyz` (`NORTHSTAR_LISTEN`).
    pub listen: SocketAddr,
    /// Address of `/metrics` (with `/healthz` and `/readyz` again), never on the API's port
    /// (`NORTHSTAR_ADMIN_LISTEN`; loopback unless opened for a scraper).
    pub admin_listen: SocketAddr,
    /// Topic names, as in every service: the schemas are stored in the compacted
    /// `topics.schemas` (`NORTHSTAR_TOPICS__SCHEMAS`).
    pub topics: TopicsConfig,
    /// Replaced by `topics.schemas`; refused when set, so an old setting is not silently
    /// ignored.
    pub schemas_topic: Option<String>,
    /// Kafka connection.
    pub kafka: KafkaConfig,
    /// Who may use the API (`NORTHSTAR_AUTH_FILE`): users (HTTP Basic) and bearer tokens,
    /// read-only or read-write ([`auth`]). Unset: the API is open to anyone who reaches it.
    pub auth_file: Option<std::path::PathBuf>,
    /// TLS on `listen` (`NORTHSTAR_TLS__CERT`, `NORTHSTAR_TLS__KEY`: PEM files), for
    /// deployments without a terminating proxy; unset: plain HTTP.
    pub tls: Option<northstar_runtime::tls::TlsFiles>,
    /// Logging.
    pub telemetry: TelemetryConfig,
    /// After SIGTERM, the service has this many seconds to drain, flush and commit; past it, it
    /// exits anyway (status 75), leaving what it could not commit to be replayed
    /// (`NORTHSTAR_SHUTDOWN_GRACE_SECS`; keep it below the orchestrator's own grace period).
    pub shutdown_grace_secs: u64,
}

impl Default for RegistryConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8081)),
            admin_listen: SocketAddr::from(([127, 0, 0, 1], 9468)),
            topics: TopicsConfig::default(),
            schemas_topic: None,
            kafka: KafkaConfig::default(),
            auth_file: None,
            tls: None,
            telemetry: TelemetryConfig::default(),
            shutdown_grace_secs: northstar_runtime::shutdown::DEFAULT_GRACE_SECS,
        }
    }
}

/// The registry: state served from memory, changes written to the log first.
pub struct Registry {
    state: RwLock<State>,
    store: Store,
    writer: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("store", &self.store)
            .finish()
    }
}

impl Registry {
    fn read(&self) -> RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(|p| p.into_inner())
    }

    fn apply(&self, record: Record) {
        self.state
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .apply(record);
    }

    /// Registers `text` under `subject`: the same schema again returns the same id.
    pub async fn register(&self, subject: &str, text: &str) -> Result<u32, RegistryError> {
        let _w = self.writer.lock().await;
        let plan = self.read().plan_register(subject, text)?;
        match plan {
            Plan::Existing { id, .. } => Ok(id),
            Plan::Append(value) => {
                let id = value.id;
                let record = Record::Schema(value);
                self.store.append(&record).await?;
                self.apply(record);
                tracing::info!(subject, id, "schema registered");
                Ok(id)
            }
        }
    }

    /// Sets the global (`None`) or a subject's compatibility level.
    pub async fn set_config(
        &self,
        subject: Option<String>,
        level: Compatibility,
    ) -> Result<(), RegistryError> {
        let _w = self.writer.lock().await;
        let record = Record::Config { subject, level };
        self.store.append(&record).await?;
        self.apply(record);
        Ok(())
    }
}

impl RegistryConfig {
    /// Refuses an unusable configuration, naming the setting.
    pub fn validate(&self) -> Result<(), String> {
        self.kafka.validate()?;
        if let Some(t) = &self.schemas_topic {
            return Err(format!(
                "schemas_topic (NORTHSTAR_SCHEMAS_TOPIC={t}) was replaced by topics.schemas \
                 (NORTHSTAR_TOPICS__SCHEMAS), the same topics section as every other service: \
                 rename the setting"
            ));
        }
        self.topics.validate()
    }
}

#[allow(clippy::expect_used)]
static DENIED: std::sync::LazyLock<prometheus::IntCounterVec> = std::sync::LazyLock::new(|| {
    prometheus::register_int_counter_vec!(
        "northstar_registry_requests_denied_total",
        "Registry API requests refused: unauthenticated (401) or forbidden (403)",
        &["reason"]
    )
    .expect("metric registers")
});

/// Counts a refused request.
fn metrics_denied(denied: auth::Denied) {
    let reason = match denied {
        auth::Denied::Unauthenticated => "unauthenticated",
        auth::Denied::Forbidden => "forbidden",
    };
    DENIED.with_label_values(&[reason]).inc();
}

/// The registry's log: one partition, compacted, replicated like every topic of the cluster
/// (one lost broker must not lose the schema ids).
pub fn schemas_topic_spec(
    topics: &northstar_runtime::TopicsConfig,
) -> northstar_runtime::kafka::TopicSpec {
    topics.spec(
        &topics.schemas,
        1,
        vec![("cleanup.policy".into(), "compact".into())],
    )
}

/// Loads the log, then serves the API until `shutdown`.
pub async fn run(config: RegistryConfig, shutdown: Shutdown) -> anyhow::Result<()> {
    use anyhow::Context;
    config.validate().map_err(anyhow::Error::msg)?;
    let (store, state) = Store::open(&config.kafka, &config.topics)
        .await
        .with_context(|| format!("cannot open the schema log {}", config.topics.schemas))?;
    let registry = Arc::new(Registry {
        state: RwLock::new(state),
        store,
        writer: tokio::sync::Mutex::new(()),
    });
    let readiness = admin::Readiness::default();
    readiness.set(true);
    let api = api::router(registry);
    let api = match &config.auth_file {
        Some(path) => {
            let access = auth::Access::load(path).map_err(anyhow::Error::msg)?;
            tracing::info!(?access, "registry API requires credentials");
            api.layer(axum::middleware::from_fn_with_state(access, auth::guard))
        }
        None => {
            tracing::warn!(
                "no auth_file (NORTHSTAR_AUTH_FILE): anyone who reaches the registry may \
                 register schemas and change compatibility"
            );
            api
        }
    };
    admin::serve_public_and_admin(
        config.listen,
        config.tls.as_ref(),
        api,
        config.admin_listen,
        readiness,
        shutdown,
    )
    .await
    .context("registry http server")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_schemas_topic_comes_from_the_shared_topics_section() {
        let mut c: RegistryConfig = serde_json::from_value(
            serde_json::json!({ "topics": { "schemas": "tenant-a._schemas" } }),
        )
        .expect("config");
        assert_eq!(c.topics.schemas, "tenant-a._schemas");
        assert!(c.validate().is_ok());
        let keys = serde_json::to_value(RegistryConfig::default()).expect("json");
        assert!(
            keys.get("schemas_topic").is_some(),
            "the old key is still read, to be refused"
        );
        c.schemas_topic = Some("_schemas".into());
        assert!(c
            .validate()
            .unwrap_err()
            .contains("NORTHSTAR_TOPICS__SCHEMAS"));
    }
}
