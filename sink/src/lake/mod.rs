//! The lake sink: clean events as Parquet in an object-store lake.

mod budget;
mod config;
pub mod dead_letters;
pub mod layout;
mod ledger;
pub mod maintenance;
pub mod parquet;
mod props;
mod sink;

use anyhow::Context;
use northstar_runtime::objstore::ObjectRoot;
use northstar_runtime::{admin, Shutdown};
use northstar_schemas::{EventDecoder, RegistryClient};

pub use config::LakeConfig;
pub use layout::{event_date, file_key, name_value, partition_path, Table};
pub use sink::LakeSink;

/// Opens the lake's object store at `config.root`.
pub fn open_root(config: &LakeConfig) -> anyhow::Result<ObjectRoot> {
    ObjectRoot::open(&config.root)
        .with_context(|| format!("cannot open the lake at {}", config.root))
}

/// Runs the lake sink on the object store `lake` (see [`open_root`]) and its admin server
/// until `shutdown`.
pub async fn run(config: LakeConfig, lake: ObjectRoot, shutdown: Shutdown) -> anyhow::Result<()> {
    config
        .validate()
        .map_err(anyhow::Error::msg)
        .context("invalid configuration")?;
    northstar_runtime::kafka::preflight(&config.kafka)
        .await
        .context("cannot use the Kafka settings")?;
    let registry = RegistryClient::with_auth(&config.registry_url, &config.registry_auth)
        .map_err(anyhow::Error::msg)?;
    let decoder = EventDecoder::new(registry);
    let events = LakeSink::new(config.clone(), Table::Events, decoder.clone(), lake.clone())
        .context("cannot create the kafka clients")?;
    let dead_letters = if config.dead_letter_table {
        Some(
            LakeSink::new(config.clone(), Table::DeadLetters, decoder, lake)
                .context("cannot create the kafka clients")?,
        )
    } else {
        None
    };
    let tables: &[&str] = if dead_letters.is_some() {
        &[Table::Events.label(), Table::DeadLetters.label()]
    } else {
        &[Table::Events.label()]
    };
    crate::metrics::register_lake(tables);
    let readiness = admin::Readiness::default();
    readiness.set(true);
    let both = async {
        // `/readyz` follows the events table's consumer; the dead-letter table's logs, counts
        // and rejoins a stall the same way (northstar_consumer_stalled{group}).
        let dlq = async {
            match dead_letters {
                Some(sink) => {
                    sink.run(shutdown.clone(), admin::Readiness::default())
                        .await
                }
                None => Ok(()),
            }
        };
        tokio::try_join!(events.run(shutdown.clone(), readiness.clone()), dlq).map(|_| ())
    };
    admin::serve_while(
        config.listen,
        admin::router(readiness.clone()),
        &shutdown,
        both,
    )
    .await??;
    tracing::info!("lake sink stopped");
    Ok(())
}
