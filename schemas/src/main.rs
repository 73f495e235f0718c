//! `northstar-schemas`: the schema registry service and the contract's admin commands.

mod plan_cmd;

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use northstar_runtime::kafka::{create_topics, TopicSpec};
use northstar_runtime::{
    load_config, shutdown, telemetry, tokio_runtime, KafkaConfig, TopicsConfig,
};
use northstar_schemas::catalog::Catalog;
use northstar_schemas::registry::{self, RegistryConfig};
use northstar_schemas::{value_subject, RegistryClient, EVENT_SCHEMA_V1, KPI_AGGREGATE_SCHEMA};

/// The `[topics]` and `[kafka]` sections (`NORTHSTAR_TOPICS__*`, `NORTHSTAR_KAFKA__*`, as every
/// service reads them), for the commands that talk to the cluster: the same client settings
/// (security protocol, SASL, TLS) as the services.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
#[serde(default)]
struct ClusterSection {
    topics: TopicsConfig,
    kafka: KafkaConfig,
    /// Credentials for the registry (`register`), as every service takes them.
    registry_auth: northstar_schemas::RegistryAuth,
}

/// The Northstar event contract: schema registry and topic/schema setup.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the Confluent-compatible schema registry (config file + NORTHSTAR_* env).
    Serve {
        /// TOML configuration file.
        #[arg(long, env = "NORTHSTAR_CONFIG")]
        config: Option<PathBuf>,
    },
    /// Create the pipeline's topics if they do not exist (never relies on auto-create).
    CreateTopics {
        /// Bootstrap servers (overrides `kafka.brokers`; the other `[kafka]` settings, such as
        /// `kafka.properties`, come from NORTHSTAR_KAFKA__* like every service's).
        #[arg(long)]
        brokers: Option<String>,
        /// Partitions of the event topics.
        #[arg(long, default_value_t = 3)]
        partitions: i32,
        /// Replicas of each topic created (overrides `topics.replication_factor`, default 3;
        /// 1 on a one-broker cluster such as the local stack's).
        #[arg(long)]
        replication_factor: Option<i32>,
        /// `min.insync.replicas` of each topic created (overrides
        /// `topics.min_insync_replicas`, default 2).
        #[arg(long)]
        min_insync_replicas: Option<i32>,
        /// The KPI catalog: `kpi.aggregates` then keeps records for its longest retention
        /// (plus a window, the lateness and a day); without one, 126 days.
        #[arg(long, env = "NORTHSTAR_CATALOG")]
        catalog: Option<PathBuf>,
        #[command(flatten)]
        retention: Retention,
    },
    /// Register the contract's schemas (event envelope, KPI aggregate) under their topics' subjects.
    Register {
        /// Schema registry URL.
        #[arg(
            long,
            env = "NORTHSTAR_REGISTRY_URL",
            default_value = "http://127.0.0.1:8081"
        )]
        registry_url: String,
    },
    /// The tracking plan: lint it (against the KPI catalog and its previous version), render it.
    #[command(subcommand)]
    Plan(plan_cmd::PlanCommand),
}

/// How long the event topics keep records: the bound on how long an erased person's events can
/// remain in Kafka (docs/privacy.md). Set on topics this command creates; an existing topic's
/// differing setting is reported, not changed.
#[derive(Debug, Clone, clap::Args)]
struct Retention {
    /// Retention of `events.raw`, in hours (personal data as received).
    #[arg(long, env = "NORTHSTAR_RAW_RETENTION_HOURS", default_value_t = 168)]
    raw_retention_hours: u64,
    /// Retention of `events.clean`, in hours.
    #[arg(long, env = "NORTHSTAR_CLEAN_RETENTION_HOURS", default_value_t = 168)]
    clean_retention_hours: u64,
    /// Retention of `events.dlq`, in hours (the lake's dead-letter table keeps them longer).
    #[arg(long, env = "NORTHSTAR_DLQ_RETENTION_HOURS", default_value_t = 168)]
    dlq_retention_hours: u64,
}

/// The topics of the pipeline and their settings.
fn topic_specs(
    topics: &TopicsConfig,
    partitions: i32,
    retention: &Retention,
    catalog: Option<&Catalog>,
) -> Vec<TopicSpec> {
    let hours = |h: u64| {
        vec![(
            "retention.ms".to_string(),
            h.saturating_mul(3_600_000).to_string(),
        )]
    };
    let event = |name: &String, h: u64| topics.spec(name, partitions, hours(h));
    vec![
        event(&topics.raw, retention.raw_retention_hours),
        event(&topics.clean, retention.clean_retention_hours),
        event(&topics.dlq, retention.dlq_retention_hours),
        topics.spec(
            &topics.aggregates,
            partitions,
            aggregates_topic_config(catalog),
        ),
        northstar_schemas::registry::schemas_topic_spec(topics),
        // One record per subject, kept for as long as the subject must stay erased.
        topics.spec(
            &topics.suppressions,
            1,
            vec![
                ("cleanup.policy".into(), "compact".into()),
                ("retention.ms".into(), "-1".into()),
            ],
        ),
    ]
}

/// `kpi.aggregates`: compacted (its record keys are a ring of retained windows per series, so
/// compaction bounds it by the catalog) and deleted past the longest retention, so keys the
/// catalog no longer produces (a removed KPI, a quiet segment) go too.
fn aggregates_topic_config(catalog: Option<&Catalog>) -> Vec<(String, String)> {
    const DAY_MS: i64 = 86_400_000;
    let retention_ms = catalog.map_or(126 * DAY_MS, |c| {
        let longest = c
            .kpis
            .iter()
            .flat_map(|k| &k.windows)
            .map(|w| w.retention_ms + w.millis)
            .max()
            .unwrap_or(0);
        longest + c.lateness_ms() + DAY_MS
    });
    vec![
        ("cleanup.policy".into(), "compact,delete".into()),
        ("retention.ms".into(), retention_ms.to_string()),
    ]
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve { config } => {
            let config: RegistryConfig =
                load_config(config.as_deref()).context("invalid configuration")?;
            telemetry::init(&config.telemetry);
            let grace = std::time::Duration::from_secs(config.shutdown_grace_secs);
            tokio_runtime()?
                .block_on(async move { registry::run(config, shutdown::on_signals(grace)).await })
        }
        Command::CreateTopics {
            brokers,
            partitions,
            replication_factor,
            min_insync_replicas,
            catalog,
            retention,
        } => {
            telemetry::init(&Default::default());
            let ClusterSection {
                mut topics,
                mut kafka,
                ..
            } = load_config(None).context("invalid configuration")?;
            if let Some(brokers) = brokers {
                kafka.brokers = brokers;
            }
            topics.replication_factor = replication_factor.unwrap_or(topics.replication_factor);
            topics.min_insync_replicas = min_insync_replicas.unwrap_or(topics.min_insync_replicas);
            topics.validate().map_err(anyhow::Error::msg)?;
            kafka.validate().map_err(anyhow::Error::msg)?;
            let catalog = match &catalog {
                Some(path) => Some(Catalog::load(Some(path))?),
                None => None,
            };
            let specs = topic_specs(&topics, partitions, &retention, catalog.as_ref());
            let differences = tokio_runtime()?.block_on(create_topics(&kafka, &specs))?;
            for d in &differences {
                eprintln!("{d}");
            }
            Ok(())
        }
        Command::Plan(command) => {
            if !plan_cmd::run(command)? {
                std::process::exit(1);
            }
            Ok(())
        }
        Command::Register { registry_url } => {
            telemetry::init(&Default::default());
            let section = load_config::<ClusterSection>(None).context("invalid configuration")?;
            let topics = section.topics;
            let client = RegistryClient::with_auth(&registry_url, &section.registry_auth)
                .map_err(anyhow::Error::msg)?;
            tokio_runtime()?.block_on(async move {
                for (topic, schema) in [
                    (&topics.raw, EVENT_SCHEMA_V1),
                    (&topics.clean, EVENT_SCHEMA_V1),
                    (&topics.aggregates, KPI_AGGREGATE_SCHEMA),
                ] {
                    let subject = value_subject(topic);
                    let id = client.register_with_retry(&subject, schema, 20).await?;
                    println!("{subject}: schema id {id}");
                }
                anyhow::Ok(())
            })
        }
    }
}
