//! `northstar-sink`: wiring only (mode → config → telemetry → run).

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use northstar_runtime::{load_config, shutdown, telemetry, tokio_runtime};
use northstar_sink::lake::{self, LakeConfig};
use northstar_sink::metrics_sink::{self, MetricsSinkConfig};

/// Writes clean events to the Parquet lake, or exposes KPI aggregates to Prometheus.
///
/// Configuration: a TOML file (--config) overridden by NORTHSTAR_* environment variables,
/// nested keys joined by "__" (e.g. NORTHSTAR_ROOT, NORTHSTAR_KAFKA__BROKERS).
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    mode: Mode,
}

#[derive(Subcommand)]
enum Mode {
    /// Consume clean events and write Parquet files to the lake.
    Lake {
        /// TOML configuration file.
        #[arg(long, env = "NORTHSTAR_CONFIG")]
        config: Option<PathBuf>,
    },
    /// Consume KPI aggregates and serve them on /metrics.
    Metrics {
        /// TOML configuration file.
        #[arg(long, env = "NORTHSTAR_CONFIG")]
        config: Option<PathBuf>,
    },
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().mode {
        Mode::Lake { config } => {
            let config: LakeConfig =
                load_config(config.as_deref()).context("invalid configuration")?;
            telemetry::init(&config.telemetry);
            tokio_runtime()?
                .block_on(async move { lake::run(config, shutdown::on_signals()).await })
        }
        Mode::Metrics { config } => {
            let config: MetricsSinkConfig =
                load_config(config.as_deref()).context("invalid configuration")?;
            telemetry::init(&config.telemetry);
            tokio_runtime()?
                .block_on(async move { metrics_sink::run(config, shutdown::on_signals()).await })
        }
    }
}
