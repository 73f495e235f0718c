//! `northstar-stream-processor`: wiring only (config → telemetry → run).

use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;
use northstar_runtime::{load_config, shutdown, telemetry, tokio_runtime};
use northstar_stream_processor::ProcessorConfig;

/// Deduplicates, validates and aggregates events from the raw topic.
///
/// Configuration: a TOML file (--config) overridden by NORTHSTAR_* environment variables,
/// nested keys joined by "__" (e.g. NORTHSTAR_KAFKA__BROKERS, NORTHSTAR_TOPICS__RAW).
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    /// TOML configuration file.
    #[arg(long, env = "NORTHSTAR_CONFIG")]
    config: Option<PathBuf>,
    /// Start partitions read before but without a checkpoint with empty state (see
    /// `allow_empty_state`) instead of refusing to.
    #[arg(long)]
    allow_empty_state: bool,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let mut config: ProcessorConfig =
        load_config(cli.config.as_deref()).context("invalid configuration")?;
    config.allow_empty_state |= cli.allow_empty_state;
    telemetry::init(&config.telemetry);
    let grace = std::time::Duration::from_secs(config.shutdown_grace_secs);
    tokio_runtime()?.block_on(async move {
        northstar_stream_processor::run(config, shutdown::on_signals(grace)).await
    })
}
