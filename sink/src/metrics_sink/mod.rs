//! The metrics sink: KPI aggregates from Kafka exposed as Prometheus metrics.
//!
//! Contract: the aggregates topic is read from the beginning of every partition at start (it
//! is a compacted upsert log, so the table is rebuilt, like a KTable) and offsets are never
//! committed; `/readyz` turns 200 once the partitions' high watermarks seen at start are
//! reached; `/metrics` serves the KPI table and the sink's own health metrics.

pub mod table;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use northstar_runtime::{admin, KafkaConfig, Shutdown, TelemetryConfig, TopicsConfig};
use northstar_schemas::aggregate::AggregateCodec;
use northstar_schemas::{wire, RegistryClient};
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use serde::{Deserialize, Serialize};

use crate::metrics;
use table::{Applied, Table};

/// Metrics sink configuration (`northstar-sink metrics`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsSinkConfig {
    /// Address of `/metrics`, `/healthz`, `/readyz` (`NORTHSTAR_LISTEN`).
    pub listen: SocketAddr,
    /// Schema registry base URL.
    pub registry_url: String,
    /// Windows kept per KPI and window length for `northstar_kpi_window_value`.
    pub retain_windows: usize,
    /// Seconds after which a partition whose watermark stopped advancing no longer holds back
    /// `northstar_kpi_watermark_combined_seconds`.
    pub idle_timeout_secs: u64,
    /// Topic names (reads `aggregates`).
    pub topics: TopicsConfig,
    /// Kafka connection.
    pub kafka: KafkaConfig,
    /// Logging.
    pub telemetry: TelemetryConfig,
}

impl Default for MetricsSinkConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 9464)),
            registry_url: "http://127.0.0.1:8081".into(),
            retain_windows: 60,
            idle_timeout_secs: 60,
            topics: TopicsConfig::default(),
            kafka: KafkaConfig::default(),
            telemetry: TelemetryConfig::default(),
        }
    }
}

type SharedTable = Arc<Mutex<Table>>;

async fn metrics_page(State(table): State<SharedTable>) -> impl IntoResponse {
    let mut text = table.lock().unwrap_or_else(|p| p.into_inner()).render();
    let mut buf = Vec::new();
    let _ = prometheus::Encoder::encode(
        &prometheus::TextEncoder::new(),
        &prometheus::gather(),
        &mut buf,
    );
    text.push_str(&String::from_utf8_lossy(&buf));
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text)
}

/// Reads the aggregates and serves them until `shutdown`.
pub async fn run(config: MetricsSinkConfig, shutdown: Shutdown) -> anyhow::Result<()> {
    config.kafka.validate().map_err(anyhow::Error::msg)?;
    config.topics.validate().map_err(anyhow::Error::msg)?;
    let table: SharedTable = Arc::new(Mutex::new(
        Table::new(config.retain_windows)
            .with_idle_timeout(Duration::from_secs(config.idle_timeout_secs)),
    ));
    let readiness = admin::Readiness::default();
    let router = Router::new()
        .route("/metrics", get(metrics_page))
        .with_state(table.clone())
        .merge(admin::health_router(readiness.clone()));
    let http_shutdown = shutdown.child_token();
    let http = tokio::spawn(admin::serve(config.listen, router, http_shutdown.clone()));
    let result = consume(&config, table, readiness, shutdown).await;
    http_shutdown.cancel();
    let _ = http.await;
    result
}

async fn consume(
    config: &MetricsSinkConfig,
    table: SharedTable,
    readiness: admin::Readiness,
    shutdown: Shutdown,
) -> anyhow::Result<()> {
    let topic = config.topics.aggregates.clone();
    let mut cfg = config.kafka.client_config("northstar-metrics-sink");
    cfg.set("group.id", "northstar-metrics-sink")
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false");
    let consumer: StreamConsumer = cfg.create().context("cannot create the kafka consumer")?;
    let (tpl, targets) = {
        let c = &consumer;
        let t = topic.clone();
        tokio::task::block_in_place(|| -> anyhow::Result<_> {
            let md = c.fetch_metadata(Some(&t), Duration::from_secs(15))?;
            let mut tpl = TopicPartitionList::new();
            let mut targets = Vec::new();
            for mt in md.topics().iter().filter(|mt| mt.name() == t) {
                for p in mt.partitions() {
                    tpl.add_partition_offset(&t, p.id(), Offset::Beginning)?;
                    let (low, high) = c.fetch_watermarks(&t, p.id(), Duration::from_secs(15))?;
                    if high > low {
                        targets.push((p.id(), high));
                    }
                }
            }
            Ok((tpl, targets))
        })?
    };
    if tpl.count() == 0 {
        anyhow::bail!("topic {topic} has no partitions (create the topics first)");
    }
    consumer.assign(&tpl)?;
    let mut behind: std::collections::HashMap<i32, i64> = targets.into_iter().collect();
    if behind.is_empty() {
        readiness.set(true);
    }
    let registry = RegistryClient::new(&config.registry_url);
    let codec = AggregateCodec::new();
    let mut prune = tokio::time::interval(Duration::from_secs(10));
    loop {
        let msg = tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = prune.tick() => {
                let mut t = table.lock().unwrap_or_else(|p| p.into_inner());
                t.prune();
                metrics::AGG_SERIES.set(t.len() as i64);
                continue;
            }
            m = consumer.recv() => m,
        };
        let msg = match msg {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(error = %e, "consume error");
                continue;
            }
        };
        metrics::AGG_RECORDS.inc();
        if let Some(high) = behind.get(&msg.partition()) {
            if msg.offset() + 1 >= *high {
                behind.remove(&msg.partition());
                if behind.is_empty() {
                    tracing::info!("caught up with the aggregates topic");
                    readiness.set(true);
                }
            }
        }
        let Some(payload) = msg.payload() else {
            continue;
        };
        let decoded = match wire::split(payload) {
            Err(e) => Err(("not_wire_format", e.to_string())),
            Ok((id, datum)) => match registry.schema_by_id_retrying(id, &shutdown).await {
                None => Err(("unknown_schema", format!("schema id {id}"))),
                Some(s) => codec
                    .decode(&s, datum)
                    .map_err(|e| ("undecodable", e.to_string())),
            },
        };
        match decoded {
            Ok(agg) => {
                if table.lock().unwrap_or_else(|p| p.into_inner()).apply(agg) == Applied::Stale {
                    metrics::AGG_STALE.inc();
                }
            }
            Err((reason, detail)) => {
                // The record stays in the topic; it is counted and logged, not applied.
                metrics::AGG_REJECTED.with_label_values(&[reason]).inc();
                tracing::warn!(
                    partition = msg.partition(),
                    offset = msg.offset(),
                    reason,
                    detail,
                    "aggregate not applied"
                );
            }
        }
    }
    Ok(())
}
