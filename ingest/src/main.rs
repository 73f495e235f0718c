//! `northstar-ingest`: wiring only (config → telemetry → run).

use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;
use northstar_ingest::IngestConfig;
use northstar_runtime::{load_config, shutdown, telemetry, tokio_runtime};

/// mimalloc: under load, glibc's malloc and free were a third of the collector's CPU (see
/// docs/benchmarks.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Segment-compatible HTTP collector producing events to Kafka.
///
/// Configuration: a TOML file (--config) overridden by NORTHSTAR_* environment variables,
/// nested keys joined by "__" (e.g. NORTHSTAR_KAFKA__BROKERS, NORTHSTAR_WRITE_KEYS__<key>=<source>).
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    /// TOML configuration file.
    #[arg(long, env = "NORTHSTAR_CONFIG")]
    config: Option<PathBuf>,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let config: IngestConfig =
        load_config(cli.config.as_deref()).context("invalid configuration")?;
    telemetry::init(&config.telemetry);
    let grace = std::time::Duration::from_secs(config.shutdown_grace_secs);
    tokio_runtime()?
        .block_on(async move { northstar_ingest::run(config, shutdown::on_signals(grace)).await })
}
