//! The lake sink: clean events as Parquet in an object-store lake.

mod config;
mod ledger;
pub mod parquet;
mod sink;

use anyhow::Context;
use northstar_runtime::objstore::ObjectRoot;
use northstar_runtime::{admin, Shutdown};
use northstar_schemas::{EventDecoder, RegistryClient};

pub use config::LakeConfig;
pub use sink::{event_date, file_key, LakeSink};

/// Runs the lake sink and its admin server until `shutdown`.
pub async fn run(config: LakeConfig, shutdown: Shutdown) -> anyhow::Result<()> {
    config
        .validate()
        .map_err(anyhow::Error::msg)
        .context("invalid configuration")?;
    let lake = ObjectRoot::open(&config.root)
        .with_context(|| format!("cannot open the lake at {}", config.root))?;
    let decoder = EventDecoder::new(RegistryClient::new(&config.registry_url));
    let sink =
        LakeSink::new(config.clone(), decoder, lake).context("cannot create the kafka clients")?;
    let readiness = admin::Readiness::default();
    readiness.set(true);
    admin::serve_while(
        config.listen,
        admin::router(readiness),
        &shutdown,
        sink.run(shutdown.clone()),
    )
    .await?;
    tracing::info!("lake sink stopped");
    Ok(())
}
