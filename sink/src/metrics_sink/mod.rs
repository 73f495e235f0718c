//! The metrics sink: KPI aggregates from Kafka exposed to Prometheus (ADR 0006), and the KPI
//! board that shows the same numbers to people.
//!
//! Contract: every partition of the aggregates topic is read from its beginning at start (the
//! topic is compacted and its keys are a ring of retained windows, so this is bounded by the
//! catalog, not by the deployment's age) and offsets are never committed. Until the end of
//! every partition as seen at start is read, no KPI series is served (no partial sums while
//! replaying) and `/readyz` answers 503; then both turn on. Replicas read everything and expose
//! the same values; dashboards and rules take `max` over them.

pub mod api;
mod config;
pub mod family;
pub mod render;
pub mod table;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use anyhow::Context;
use axum::extract::State;
use axum::http::{header, HeaderMap};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use northstar_runtime::{admin, kafka, Shutdown};
use northstar_schemas::aggregate::AggregateCodec;
use northstar_schemas::catalog::Catalog;
use northstar_schemas::{wire, KpiAggregate, RegistryClient};
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::{BorrowedMessage, Message};
use rdkafka::{Offset, TopicPartitionList};

pub use config::MetricsSinkConfig;
use render::{Clock, Exposition, Format, Options};
use table::{Applied, Table};

use crate::metrics;

/// What the HTTP handlers and the consumer share.
pub struct Shared {
    table: Mutex<Table>,
    caught_up: AtomicBool,
    exposure: Duration,
    history_max_age_ms: i64,
    alertmanager_url: Option<String>,
    http: reqwest::Client,
}

impl Shared {
    pub fn new(table: Table, config: &MetricsSinkConfig) -> Self {
        Self {
            table: Mutex::new(table),
            caught_up: AtomicBool::new(false),
            exposure: Duration::from_secs(config.history_exposure_secs),
            history_max_age_ms: i64::try_from(config.history_max_age_secs)
                .unwrap_or(i64::MAX / 1000)
                .saturating_mul(1000),
            alertmanager_url: config.alertmanager_url.clone(),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(5))
                .build()
                .unwrap_or_default(),
        }
    }

    /// The table, finality and expiry brought up to `now`.
    pub fn table(&self, now: Instant) -> MutexGuard<'_, Table> {
        let mut t = self.table.lock().unwrap_or_else(|p| p.into_inner());
        t.advance(now, self.exposure);
        t
    }

    pub fn caught_up(&self) -> bool {
        self.caught_up.load(Ordering::Acquire)
    }

    fn options(&self) -> Options {
        Options {
            caught_up: self.caught_up(),
            exposure: self.exposure,
            history_max_age_ms: self.history_max_age_ms,
        }
    }

    /// Applies one decoded record and counts what it did.
    pub fn apply(&self, agg: KpiAggregate, now: Instant) {
        let mut t = self.table.lock().unwrap_or_else(|p| p.into_inner());
        match t.apply_at(agg, now) {
            Applied::Applied => {}
            Applied::Stale => metrics::AGG_STALE.inc(),
            Applied::ChangedFinal => metrics::AGG_CHANGED_FINAL.inc(),
            Applied::Ignored(reason) => metrics::AGG_IGNORED.with_label_values(&[reason]).inc(),
        }
    }
}

/// The wall clock of this instant.
pub fn clock() -> Clock {
    let unix_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
    Clock {
        now: Instant::now(),
        unix_ms,
    }
}

async fn metrics_page(State(shared): State<Arc<Shared>>, headers: HeaderMap) -> impl IntoResponse {
    let timer = metrics::RENDER_SECONDS.start_timer();
    let format = Format::negotiate(headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()));
    let mut out = Exposition::new(format);
    let clock = clock();
    {
        let t = shared.table(clock.now);
        let rendered = render::render_kpis(&t, clock, &shared.options(), &mut out);
        metrics::AGG_HISTORY_POINTS.set(rendered.history_points as i64);
        metrics::AGG_SERIES.set(t.series() as i64);
        metrics::AGG_WINDOWS.set(t.records() as i64);
    }
    render::render_registry(&prometheus::gather(), &mut out);
    timer.observe_duration();
    (
        [(header::CONTENT_TYPE, format.content_type())],
        out.finish(),
    )
}

/// Reads the aggregates and serves them until `shutdown`.
pub async fn run(config: MetricsSinkConfig, shutdown: Shutdown) -> anyhow::Result<()> {
    config.kafka.validate().map_err(anyhow::Error::msg)?;
    config.topics.validate().map_err(anyhow::Error::msg)?;
    northstar_runtime::kafka::preflight(&config.kafka)
        .await
        .context("cannot use the Kafka settings")?;
    if config.retain_windows.is_some() {
        tracing::warn!("retain_windows is ignored: closed windows are kept for the catalog's per-window retention");
    }
    let catalog = Catalog::load(config.catalog.as_deref())?;
    tracing::info!(kpis = catalog.kpis.len(), north_star = %catalog.north_star, "kpi catalog loaded");
    metrics::register_metrics_sink();
    let table = Table::new(Arc::new(catalog))
        .with_idle_timeout(Duration::from_secs(config.idle_timeout_secs));
    let shared = Arc::new(Shared::new(table, &config));
    let readiness = admin::Readiness::default();
    let token = northstar_runtime::access::AccessToken::load(
        config.access_token_file.as_deref(),
        config.access_token.as_ref(),
    )
    .map_err(anyhow::Error::msg)?;
    let guarded = Router::new()
        .route("/metrics", get(metrics_page))
        .merge(api::router())
        .with_state(shared.clone());
    let guarded = match token {
        Some(token) => {
            tracing::info!("the KPI exposition, board and API require the access token");
            guarded.layer(axum::middleware::from_fn_with_state(
                token,
                northstar_runtime::access::require_token,
            ))
        }
        None => guarded,
    };
    let router = guarded.merge(admin::health_router(readiness.clone()));
    let work = consume(&config, shared, readiness, shutdown.clone());
    admin::serve_tls_while(config.listen, config.tls.as_ref(), router, &shutdown, work).await?
}

/// The partitions still to read up to their end as seen at start.
struct CatchUp {
    started: Instant,
    /// partition → high watermark at start.
    behind: HashMap<i32, i64>,
}

impl CatchUp {
    /// Notes that the record at `offset` of `partition` was read; true when this finished the
    /// catch-up.
    fn read(&mut self, partition: i32, offset: i64) -> bool {
        let was_behind = !self.behind.is_empty();
        if self
            .behind
            .get(&partition)
            .is_some_and(|high| offset + 1 >= *high)
        {
            self.behind.remove(&partition);
        }
        was_behind && self.behind.is_empty()
    }

    /// Checks the consumer's positions (a compacted partition may end in a gap of offsets);
    /// true when this finished the catch-up.
    fn check_positions(&mut self, consumer: &StreamConsumer, topic: &str) -> bool {
        if self.behind.is_empty() {
            return false;
        }
        let mut remaining = 0;
        if let Ok(positions) = consumer.position() {
            for e in positions.elements_for_topic(topic) {
                let Some(high) = self.behind.get(&e.partition()).copied() else {
                    continue;
                };
                match e.offset() {
                    Offset::Offset(pos) if pos >= high => {
                        self.behind.remove(&e.partition());
                    }
                    Offset::Offset(pos) => remaining += high - pos,
                    _ => remaining += high,
                }
            }
        }
        metrics::CATCH_UP_REMAINING.set(remaining);
        self.behind.is_empty()
    }
}

fn caught_up(shared: &Shared, readiness: &admin::Readiness, catch_up: &CatchUp) {
    let secs = catch_up.started.elapsed().as_secs_f64();
    tracing::info!(
        seconds = secs,
        "caught up with the aggregates topic: serving KPI series"
    );
    metrics::CATCH_UP_SECONDS.set(secs);
    metrics::CATCH_UP_REMAINING.set(0);
    metrics::CAUGHT_UP.set(1);
    shared.caught_up.store(true, Ordering::Release);
    readiness.set(true);
}

/// A consumer assigned to every partition of `topic` from the beginning, and each partition's
/// high watermark at start (partitions with records only).
fn assign_all(config: &MetricsSinkConfig) -> anyhow::Result<(StreamConsumer, HashMap<i32, i64>)> {
    let topic = config.topics.aggregates.as_str();
    let mut cfg = config
        .kafka
        .consumer_config("northstar-metrics-sink", kafka::fetch_wait_ms::METRICS_SINK);
    cfg.set("group.id", "northstar-metrics-sink")
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false");
    let consumer: StreamConsumer = cfg.create().context("cannot create the kafka consumer")?;
    let (tpl, targets) = tokio::task::block_in_place(|| -> anyhow::Result<_> {
        let md = consumer.fetch_metadata(Some(topic), Duration::from_secs(15))?;
        let mut tpl = TopicPartitionList::new();
        let mut targets = HashMap::new();
        for mt in md.topics().iter().filter(|mt| mt.name() == topic) {
            for p in mt.partitions() {
                tpl.add_partition_offset(topic, p.id(), Offset::Beginning)?;
                let (low, high) =
                    consumer.fetch_watermarks(topic, p.id(), Duration::from_secs(15))?;
                if high > low {
                    targets.insert(p.id(), high);
                }
            }
        }
        Ok((tpl, targets))
    })?;
    if tpl.count() == 0 {
        anyhow::bail!("topic {topic} has no partitions (create the topics first)");
    }
    consumer.assign(&tpl)?;
    Ok((consumer, targets))
}

async fn consume(
    config: &MetricsSinkConfig,
    shared: Arc<Shared>,
    readiness: admin::Readiness,
    shutdown: Shutdown,
) -> anyhow::Result<()> {
    let topic = config.topics.aggregates.clone();
    let (consumer, targets) = assign_all(config)?;
    // Before the first record: the first partition to report must not finalise alone.
    expect_input_partitions(&consumer, &config.topics.raw, &shared);
    let mut catch_up = CatchUp {
        started: Instant::now(),
        behind: targets,
    };
    if catch_up.behind.is_empty() {
        caught_up(&shared, &readiness, &catch_up);
    }
    let registry = RegistryClient::with_auth(&config.registry_url, &config.registry_auth)
        .map_err(anyhow::Error::msg)?;
    let codec = AggregateCodec::new();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut ticks: u64 = 1;
    loop {
        let msg = tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tick.tick() => {
                if ticks.is_multiple_of(60) {
                    expect_input_partitions(&consumer, &config.topics.raw, &shared);
                }
                ticks += 1;
                if catch_up.check_positions(&consumer, &topic) {
                    caught_up(&shared, &readiness, &catch_up);
                }
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
        if let Some(agg) = decode(&msg, &registry, &codec, &shutdown).await {
            shared.apply(agg, Instant::now());
        }
        if catch_up.read(msg.partition(), msg.offset()) {
            caught_up(&shared, &readiness, &catch_up);
        }
    }
    Ok(())
}

/// Registers every partition of the input topic with the table (a partition that has not
/// reported yet holds finality back), at start and every minute (a topic can grow).
fn expect_input_partitions(consumer: &StreamConsumer, topic: &str, shared: &Shared) {
    let partitions = tokio::task::block_in_place(|| {
        consumer
            .fetch_metadata(Some(topic), Duration::from_secs(10))
            .map(|md| {
                md.topics()
                    .iter()
                    .filter(|t| t.name() == topic)
                    .flat_map(|t| t.partitions().iter().map(|p| p.id()))
                    .collect::<Vec<i32>>()
            })
    });
    match partitions {
        Ok(p) => shared
            .table
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .expect_partitions(topic, &p, Instant::now()),
        Err(e) => tracing::warn!(topic, error = %e, "cannot read the input topic's partitions"),
    }
}

/// The aggregate of a record; an undecodable one stays in the topic, counted and logged.
async fn decode(
    msg: &BorrowedMessage<'_>,
    registry: &RegistryClient,
    codec: &AggregateCodec,
    shutdown: &Shutdown,
) -> Option<KpiAggregate> {
    let payload = msg.payload()?;
    let decoded = match wire::split(payload) {
        Err(e) => Err(("not_wire_format", e.to_string())),
        Ok((id, datum)) => match registry.schema_by_id_retrying(id, shutdown).await {
            None => Err(("unknown_schema", format!("schema id {id}"))),
            Some(s) => codec
                .decode(&s, datum)
                .map_err(|e| ("undecodable", e.to_string())),
        },
    };
    match decoded {
        Ok(agg) => Some(agg),
        Err((reason, detail)) => {
            metrics::AGG_REJECTED.with_label_values(&[reason]).inc();
            tracing::warn!(
                partition = msg.partition(),
                offset = msg.offset(),
                reason,
                detail,
                "aggregate not applied"
            );
            None
        }
    }
}
