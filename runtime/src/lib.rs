//! Runtime plumbing shared by every Northstar service.
//!
//! Contract: nothing in here knows about events, topics' contents or any one service; it wires
//! configuration (file + `NORTHSTAR_*` environment), telemetry (`tracing`, text or JSON),
//! shutdown (SIGTERM/SIGINT → a cancellation token), Kafka client settings and the small admin
//! HTTP surface (`/healthz`, `/readyz`, `/metrics`) the services expose.

pub mod access;
pub mod admin;
pub mod backoff;
pub mod commit;
pub mod config;
pub mod cursor;
pub mod group_watch;
pub mod kafka;
pub mod objstore;
pub mod producer;
pub mod resume;
pub mod shutdown;
pub mod telemetry;
pub mod tls;
pub mod topic_id;

pub use config::{load_config, ConfigError, Redacted};
pub use kafka::{KafkaConfig, TopicsConfig};
pub use shutdown::Shutdown;
pub use telemetry::TelemetryConfig;

/// Builds the multi-threaded tokio runtime every service binary runs on.
pub fn tokio_runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
}

/// CPU seconds (user + system, every thread) this process has used so far, from
/// `/proc/self/stat` (0 where that file does not exist). For benchmarks that report events per
/// CPU-second.
pub fn process_cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit_once(')').map(|(_, a)| a).unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // Fields 14 and 15 (utime, stime) are the 12th and 13th after the command name; the
    // kernel's USER_HZ is 100 on every Linux this runs on.
    (ticks(11) + ticks(12)) / 100.0
}
