//! The `northstar-sink` command line: mode → config → telemetry → run.
//!
//! Contract: [`main`] is the whole binary; it opens the lake's object store from the
//! configuration and hands it through `store` before any service uses it, so a caller can wrap
//! the store (the crash tests' fault injection, in `northstar-e2e`) without special paths in
//! the services. The shipped binary passes the store unchanged.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use northstar_runtime::objstore::ObjectRoot;
use northstar_runtime::{load_config, shutdown, telemetry, tokio_runtime};

use crate::dashboards;
use crate::lake::{self, maintenance, LakeConfig};
use crate::metrics_sink::{self, MetricsSinkConfig};

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
    /// Maintain the lake: compact small files, apply retention, erase a user's events.
    LakeAdmin {
        /// TOML configuration file (the lake sink's: `root`).
        #[arg(long, env = "NORTHSTAR_CONFIG")]
        config: Option<PathBuf>,
        /// Take over the lock of a maintenance run that was killed.
        #[arg(long)]
        break_lock: bool,
        #[command(subcommand)]
        command: AdminCommand,
    },
    /// Consume KPI aggregates and serve them on /metrics and the KPI board.
    Metrics {
        /// TOML configuration file.
        #[arg(long, env = "NORTHSTAR_CONFIG")]
        config: Option<PathBuf>,
    },
    /// Grafana dashboards, Prometheus rules and an Alertmanager example from the KPI catalog.
    Dashboards {
        #[command(subcommand)]
        command: dashboards::cli::Command,
    },
}

#[derive(Subcommand)]
enum AdminCommand {
    /// Merge each partition's small files into files of about the target size (same rows).
    Compact {
        /// events, dlq or all.
        #[arg(long, default_value = "all")]
        table: String,
        /// Target file size in MiB: smaller files are merged up to it.
        #[arg(long, default_value_t = 128)]
        target_mib: u64,
        /// Show the plan only.
        #[arg(long)]
        dry_run: bool,
    },
    /// Delete the partitions whose event_date is older than the retention period.
    Retention {
        /// Keep today and the previous N days.
        #[arg(long)]
        keep_days: u64,
        /// events, dlq or all.
        #[arg(long, default_value = "all")]
        table: String,
        /// Show what would be deleted only.
        #[arg(long)]
        dry_run: bool,
    },
    /// Erase every event of the given users from the lake (events and dead letters), with an
    /// audit record.
    Erase {
        /// A userId to erase (repeatable).
        #[arg(long = "user-id")]
        user_ids: Vec<String>,
        /// An anonymousId to erase (repeatable).
        #[arg(long = "anonymous-id")]
        anonymous_ids: Vec<String>,
        /// Delete without adding the ids to the suppression list (by default they are added
        /// first, so the collector and replays refuse them from then on).
        #[arg(long)]
        no_suppress: bool,
        /// Show the affected files only.
        #[arg(long)]
        dry_run: bool,
    },
    /// Re-submit dead letters to the raw topic, optionally fixed, with their message ids (the
    /// processor's deduplication keeps a replay exactly-once); prints what was replayed.
    Replay {
        /// Only letters of this failure type (repeatable): undecodable, envelope, clock, size,
        /// schema_violation, unknown_event, naming, consent, loader.
        #[arg(long = "type")]
        types: Vec<String>,
        /// Only letters with this reason code (repeatable), e.g. wrong_type.
        #[arg(long)]
        reason: Vec<String>,
        /// Only letters of this event name (repeatable).
        #[arg(long)]
        event: Vec<String>,
        /// Only letters dead-lettered at or after this time (RFC 3339, or a UTC date).
        #[arg(long)]
        from: Option<String>,
        /// Only letters dead-lettered before this time (RFC 3339, or a UTC date).
        #[arg(long)]
        to: Option<String>,
        /// A fix applied before re-submitting (repeatable, in order):
        /// rename:FROM=TO, cast:PATH=string|number|integer|boolean, drop:PATH, event:NAME.
        #[arg(long = "fix")]
        fixes: Vec<String>,
        /// A YAML list of fixes, applied after those of --fix.
        #[arg(long)]
        fixes_file: Option<PathBuf>,
        /// Also re-submit letters an earlier replay already re-submitted.
        #[arg(long)]
        again: bool,
        /// Show what would be replayed only.
        #[arg(long)]
        dry_run: bool,
    },
}

/// The PII keys of the configuration (`pii_key_file`, else `pii_key`), if any.
fn pii_keys(
    config: &LakeConfig,
) -> anyhow::Result<Option<northstar_schemas::plan::pii::PiiKeyring>> {
    northstar_schemas::plan::pii::PiiKeyring::load(
        config.pii_key_file.as_deref(),
        config.pii_key.as_ref().map(|k| k.0.as_str()),
    )
    .context("invalid PII key")
}

/// A time given on the command line, in µs since the epoch: RFC 3339, or a date (its 00:00 UTC).
fn parse_time(s: &str) -> anyhow::Result<i64> {
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) {
        return Ok(t.timestamp_micros());
    }
    let d = chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .with_context(|| format!("{s:?} is neither an RFC 3339 time nor a YYYY-MM-DD date"))?;
    Ok(d.and_time(chrono::NaiveTime::MIN)
        .and_utc()
        .timestamp_micros())
}

/// The fixes of --fix, then those of --fixes-file.
fn parse_fixes(
    specs: Vec<String>,
    file: Option<PathBuf>,
) -> anyhow::Result<Vec<maintenance::replay::fix::Fix>> {
    let mut specs = specs;
    if let Some(path) = file {
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        let listed: Vec<String> = serde_yaml_ng::from_str(&text)
            .with_context(|| format!("{}: expected a YAML list of fixes", path.display()))?;
        specs.extend(listed);
    }
    specs
        .iter()
        .map(|s| s.parse().map_err(anyhow::Error::from))
        .collect()
}

impl AdminCommand {
    fn into_command(self, config: &LakeConfig) -> anyhow::Result<maintenance::Command> {
        Ok(match self {
            AdminCommand::Compact {
                table,
                target_mib,
                dry_run,
            } => maintenance::Command::Compact(maintenance::CompactOptions {
                tables: maintenance::tables(&table)?,
                target_bytes: target_mib.saturating_mul(1024 * 1024),
                dry_run,
            }),
            AdminCommand::Retention {
                keep_days,
                table,
                dry_run,
            } => maintenance::Command::Retention(maintenance::RetentionOptions {
                tables: maintenance::tables(&table)?,
                keep_days,
                dry_run,
            }),
            AdminCommand::Erase {
                user_ids,
                anonymous_ids,
                dry_run,
                no_suppress,
            } => maintenance::Command::Erase(maintenance::EraseOptions {
                user_ids,
                anonymous_ids,
                dry_run,
                keys: pii_keys(config)?,
                suppress: (!no_suppress).then(|| maintenance::SuppressTarget {
                    kafka: config.kafka.clone(),
                    topic: config.topics.suppressions.clone(),
                }),
            }),
            AdminCommand::Replay {
                types,
                reason,
                event,
                from,
                to,
                fixes,
                fixes_file,
                again,
                dry_run,
            } => {
                use maintenance::replay::{select::Filter, Target};
                use northstar_schemas::failure::FailureType;
                let types = types
                    .iter()
                    .map(|t| {
                        FailureType::parse(t)
                            .with_context(|| format!("--type {t:?} is not a failure type"))
                    })
                    .collect::<anyhow::Result<Vec<_>>>()?;
                maintenance::Command::Replay(Box::new(maintenance::ReplayOptions {
                    filter: Filter {
                        types,
                        reasons: reason,
                        events: event,
                        from: from.as_deref().map(parse_time).transpose()?,
                        to: to.as_deref().map(parse_time).transpose()?,
                    },
                    fixes: parse_fixes(fixes, fixes_file)?,
                    again,
                    dry_run,
                    target: Target {
                        kafka: config.kafka.clone(),
                        raw_topic: config.topics.raw.clone(),
                        dlq_topic: config.topics.dlq.clone(),
                        suppressions_topic: config.topics.suppressions.clone(),
                        registry_url: config.registry_url.clone(),
                        registry_auth: config.registry_auth.clone(),
                    },
                    keys: pii_keys(config)?,
                }))
            }
        })
    }
}

/// Runs the command line; `store` wraps the lake's object store (identity in production).
pub fn main(store: fn(ObjectRoot) -> ObjectRoot) -> anyhow::Result<()> {
    match Cli::parse().mode {
        Mode::Lake { config } => {
            let config: LakeConfig =
                load_config(config.as_deref()).context("invalid configuration")?;
            telemetry::init(&config.telemetry);
            let grace = std::time::Duration::from_secs(config.shutdown_grace_secs);
            let root = store(lake::open_root(&config)?);
            tokio_runtime()?
                .block_on(async move { lake::run(config, root, shutdown::on_signals(grace)).await })
        }
        Mode::LakeAdmin {
            config,
            break_lock,
            command,
        } => {
            let config: LakeConfig =
                load_config(config.as_deref()).context("invalid configuration")?;
            telemetry::init(&config.telemetry);
            let command = command.into_command(&config)?;
            let root = store(lake::open_root(&config)?);
            let summary = tokio_runtime()?
                .block_on(async move { maintenance::run(root, command, break_lock).await })?;
            println!("{summary}");
            if summary["rerun_needed"] == true {
                // Exit status 3: done as far as possible now, run again later.
                std::process::exit(3);
            }
            Ok(())
        }
        Mode::Dashboards { command } => dashboards::cli::run(command),
        Mode::Metrics { config } => {
            let config: MetricsSinkConfig =
                load_config(config.as_deref()).context("invalid configuration")?;
            telemetry::init(&config.telemetry);
            let grace = std::time::Duration::from_secs(config.shutdown_grace_secs);
            tokio_runtime()?.block_on(async move {
                metrics_sink::run(config, shutdown::on_signals(grace)).await
            })
        }
    }
}
