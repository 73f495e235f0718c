//! The Northstar collector: the Segment HTTP tracking API in front of Kafka.
//!
//! Contract: an event is answered 200 only once the broker acknowledged it (see [`http`]);
//! `/readyz` is 200 only while the broker answers metadata requests and, with a PII key, once
//! the suppression list has been read.

pub mod body;
pub mod config;
pub mod enrich;
pub mod http;
pub mod metrics;
pub mod producer;
pub mod raw;
mod rejection;
pub mod segment;

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use northstar_runtime::{admin, Shutdown};
use northstar_schemas::plan::pii::PiiKeyring;
use northstar_schemas::suppression::Suppressions;
use northstar_schemas::{value_subject, RegistryClient, EVENT_SCHEMA_V1};

pub use config::IngestConfig;

/// Registers the envelope schema, connects the producer and serves until `shutdown`.
pub async fn run(config: IngestConfig, shutdown: Shutdown) -> anyhow::Result<()> {
    config
        .validate()
        .map_err(anyhow::Error::msg)
        .context("invalid configuration")?;
    northstar_runtime::kafka::preflight(&config.kafka)
        .await
        .context("cannot use the Kafka settings")?;
    let registry = RegistryClient::with_auth(&config.registry_url, &config.registry_auth)
        .map_err(anyhow::Error::msg)?;
    let schema_id = registry
        .register_with_retry(&value_subject(&config.topics.raw), EVENT_SCHEMA_V1, 60)
        .await
        .context("cannot register the event schema")?;
    tracing::info!(schema_id, topic = %config.topics.raw, "event schema registered");
    let producer = producer::EventProducer::new(
        &config.kafka,
        &config.topics.raw,
        schema_id,
        Duration::from_millis(config.delivery_timeout_ms),
    )
    .context("cannot create the kafka producer")?;
    let mut state = http::AppState::new(config.clone(), producer);
    state.suppressions = follow_suppressions(&config)?;
    let state = Arc::new(state);

    let readiness = admin::Readiness::default();
    let probe = tokio::spawn(probe_broker(
        state.clone(),
        readiness.clone(),
        shutdown.clone(),
    ));
    admin::serve_public_and_admin(
        config.listen,
        config.tls.as_ref(),
        http::router(state.clone()),
        config.admin_listen,
        readiness,
        shutdown,
    )
    .await
    .context("ingest http server")?;
    probe.abort();
    let flush_state = state.clone();
    tokio::task::spawn_blocking(move || flush_state.producer.flush(Duration::from_secs(10)))
        .await?;
    tracing::info!("ingest stopped");
    Ok(())
}

/// The suppression list, followed from its topic when a PII key is configured.
fn follow_suppressions(config: &IngestConfig) -> anyhow::Result<Option<Suppressions>> {
    let keys = PiiKeyring::load(
        config.pii_key_file.as_deref(),
        config.pii_key.as_ref().map(|k| k.0.as_str()),
    )
    .context("invalid PII key")?;
    let Some(keys) = keys else {
        tracing::warn!(
            topic = %config.topics.suppressions,
            "no PII key (pii_key_file, NORTHSTAR_PII_KEY): the suppression list is not consulted, \
             events of erased subjects are accepted"
        );
        return Ok(None);
    };
    // Metadata and watermarks are read with blocking calls: off the async workers.
    let list = tokio::task::block_in_place(|| {
        Suppressions::follow(&config.kafka, &config.topics.suppressions, keys)
    })
    .context("cannot read the suppression list")?;
    Ok(Some(list))
}

/// Keeps `/readyz` in step with whether the broker answers and the suppression list is read.
async fn probe_broker(state: Arc<http::AppState>, readiness: admin::Readiness, shutdown: Shutdown) {
    loop {
        let s = state.clone();
        let ok = tokio::task::spawn_blocking(move || s.producer.broker_reachable())
            .await
            .unwrap_or(false)
            && state.suppressions.as_ref().is_none_or(Suppressions::loaded);
        metrics::SUPPRESSED_SUBJECTS.set(
            state
                .suppressions
                .as_ref()
                .map_or(-1, |l| i64::try_from(l.len()).unwrap_or(i64::MAX)),
        );
        if ok != readiness.is_ready() {
            tracing::info!(ready = ok, "broker reachability changed");
        }
        readiness.set(ok);
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_secs(2)) => {}
        }
    }
}
