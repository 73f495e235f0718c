//! The Northstar stream processor: deduplicate, validate, route failures to the dead-letter
//! topic, and compute windowed KPI aggregates by event time.
//!
//! Contract: see [`pipeline`] (offsets committed only after outputs are acknowledged) and
//! [`state`] (deterministic per-partition state).

pub mod catalog;
pub mod checkpoint;
pub mod clock;
pub mod config;
pub mod dedup;
pub mod members;
pub mod metrics;
pub mod pipeline;
pub mod plan_gate;
pub mod state;
#[cfg(test)]
mod test_events;
pub mod validate;

use anyhow::Context;
use northstar_runtime::{admin, Shutdown};
use northstar_schemas::{value_subject, RegistryClient, EVENT_SCHEMA_V1, KPI_AGGREGATE_SCHEMA};

pub use config::ProcessorConfig;

/// Registers the output schemas, then runs the pipeline and the admin server until `shutdown`.
pub async fn run(config: ProcessorConfig, shutdown: Shutdown) -> anyhow::Result<()> {
    config
        .validate()
        .map_err(anyhow::Error::msg)
        .context("invalid configuration")?;
    northstar_runtime::kafka::preflight(&config.kafka)
        .await
        .context("cannot use the Kafka settings")?;
    let catalog = catalog::Catalog::load(config.catalog.as_deref())?;
    config
        .check_catalog(&catalog)
        .map_err(anyhow::Error::msg)
        .context("invalid configuration")?;
    tracing::info!(
        kpis = catalog.kpis.len(),
        north_star = %catalog.north_star,
        allowed_lateness_ms = config.lateness_ms(&catalog),
        "kpi catalog loaded"
    );
    let gate = plan_gate::PlanGate::load(
        config.plan.as_deref(),
        config.shadow_plan.as_deref(),
        config.plan_policies,
        config.pii_key_file.as_deref(),
        config.pii_key.as_ref().map(|k| k.0.as_str()),
    )
    .context("invalid tracking plan")?;
    if gate.members() == members::MemberKey::UNKEYED {
        tracing::warn!(
            "no PII key (pii_key_file, NORTHSTAR_PII_KEY): distinct-user KPIs keep unkeyed user \
             fingerprints in their checkpoints, which a guessed id can be checked against"
        );
    }
    match gate.stamp() {
        Some(stamp) => {
            tracing::info!(plan = stamp, policies = ?config.plan_policies, "tracking plan enforced")
        }
        None => tracing::info!("no tracking plan: only the envelope is validated"),
    }
    let registry = RegistryClient::with_auth(&config.registry_url, &config.registry_auth)
        .map_err(anyhow::Error::msg)?;
    let clean_id = registry
        .register_with_retry(&value_subject(&config.topics.clean), EVENT_SCHEMA_V1, 60)
        .await
        .context("cannot register the clean event schema")?;
    let agg_id = registry
        .register_with_retry(
            &value_subject(&config.topics.aggregates),
            KPI_AGGREGATE_SCHEMA,
            60,
        )
        .await
        .context("cannot register the aggregate schema")?;
    let pipeline = pipeline::Pipeline::new(
        config.clone(),
        std::sync::Arc::new(catalog),
        gate,
        registry,
        clean_id,
        agg_id,
    )
    .context("cannot create the kafka clients")?;
    let readiness = admin::Readiness::default();
    readiness.set(true);
    let result = admin::serve_while(
        config.listen,
        admin::router(readiness.clone()),
        &shutdown,
        pipeline.run(shutdown.clone(), readiness),
    )
    .await?;
    result.context("stream processor stopped on an error")?;
    tracing::info!("stream processor stopped");
    Ok(())
}
