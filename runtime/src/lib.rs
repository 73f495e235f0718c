//! Runtime plumbing shared by every Northstar service.
//!
//! Contract: nothing in here knows about events, topics' contents or any one service; it wires
//! configuration (file + `NORTHSTAR_*` environment), telemetry (`tracing`, text or JSON),
//! shutdown (SIGTERM/SIGINT → a cancellation token), Kafka client settings and the small admin
//! HTTP surface (`/healthz`, `/readyz`, `/metrics`) the services expose.

pub mod admin;
pub mod config;
pub mod kafka;
pub mod objstore;
pub mod producer;
pub mod shutdown;
pub mod telemetry;

pub use config::{load_config, ConfigError};
pub use kafka::{KafkaConfig, TopicsConfig};
pub use shutdown::Shutdown;
pub use telemetry::TelemetryConfig;

/// Builds the multi-threaded tokio runtime every service binary runs on.
pub fn tokio_runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
}
