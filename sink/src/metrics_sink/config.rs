//! Metrics sink configuration (`northstar-sink metrics`): file + `NORTHSTAR_*` environment.

use std::net::SocketAddr;
use std::path::PathBuf;

use northstar_runtime::{KafkaConfig, TelemetryConfig, TopicsConfig};
use serde::{Deserialize, Serialize};

/// Metrics sink configuration.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsSinkConfig {
    /// Address of `/metrics`, the KPI board (`/`), its API (`/api/v1/…`), `/healthz` and
    /// `/readyz` (`NORTHSTAR_LISTEN`).
    pub listen: SocketAddr,
    /// Schema registry base URL.
    pub registry_url: String,
    /// Credentials for the registry (`NORTHSTAR_REGISTRY_AUTH__BASIC_AUTH_USER_INFO=user:password`
    /// or `..__BEARER_TOKEN`), as Confluent's clients take them; never printed.
    pub registry_auth: northstar_schemas::RegistryAuth,
    /// The KPI catalog the processor computes (YAML, docs/kpi-catalog.md): only its KPIs,
    /// windows and dimensions are exposed, with its retention (`NORTHSTAR_CATALOG`). Without
    /// one, the processor's built-in `events` KPI.
    pub catalog: Option<PathBuf>,
    /// Seconds after which a partition whose watermark stopped advancing no longer holds back
    /// the combined watermark (and the finality of windows).
    pub idle_timeout_secs: u64,
    /// Seconds a final window stays in `northstar_kpi_final_window_value` after it became final
    /// (several scrape intervals, so that every Prometheus of a pair records it).
    pub history_exposure_secs: u64,
    /// Final windows that started longer ago than this many seconds are never exposed with
    /// their timestamp: set it to at most Prometheus's `out_of_order_time_window`.
    pub history_max_age_secs: u64,
    /// A file holding the access token that `/metrics`, the board and its API then require
    /// (`NORTHSTAR_ACCESS_TOKEN_FILE`; Bearer, or the token as the Basic password, so a browser
    /// asks for it): the KPIs include revenue. `/healthz` and `/readyz` stay open.
    pub access_token_file: Option<PathBuf>,
    /// The same token inline (`NORTHSTAR_ACCESS_TOKEN`, e.g. from a `secretKeyRef`); never printed.
    pub access_token: Option<northstar_runtime::Redacted>,
    /// TLS on `listen` (`NORTHSTAR_TLS__CERT`, `NORTHSTAR_TLS__KEY`: PEM files), for
    /// deployments without a terminating proxy; unset: plain HTTP.
    pub tls: Option<northstar_runtime::tls::TlsFiles>,
    /// Alertmanager base URL whose firing alerts the KPI board shows (`NORTHSTAR_ALERTMANAGER_URL`).
    pub alertmanager_url: Option<String>,
    /// Ignored (replaced by the catalog's per-window `retention`); accepted so that an older
    /// configuration still starts, with a warning.
    pub retain_windows: Option<usize>,
    /// Topic names (reads `aggregates`).
    pub topics: TopicsConfig,
    /// Kafka connection.
    pub kafka: KafkaConfig,
    /// Logging.
    pub telemetry: TelemetryConfig,
    /// After SIGTERM, the service has this many seconds to drain, flush and commit; past it, it
    /// exits anyway (status 75), leaving what it could not commit to be replayed
    /// (`NORTHSTAR_SHUTDOWN_GRACE_SECS`; keep it below the orchestrator's own grace period).
    pub shutdown_grace_secs: u64,
}

impl Default for MetricsSinkConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 9464)),
            registry_url: "http://127.0.0.1:8081".into(),
            registry_auth: Default::default(),
            catalog: None,
            access_token_file: None,
            access_token: None,
            tls: None,
            idle_timeout_secs: 60,
            history_exposure_secs: 900,
            history_max_age_secs: 36 * 86_400,
            alertmanager_url: None,
            retain_windows: None,
            topics: TopicsConfig::default(),
            kafka: KafkaConfig::default(),
            telemetry: TelemetryConfig::default(),
            shutdown_grace_secs: northstar_runtime::shutdown::DEFAULT_GRACE_SECS,
        }
    }
}
