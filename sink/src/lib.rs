//! The Northstar sinks: clean events to a Parquet lake ([`lake`]) and KPI aggregates to
//! Prometheus ([`metrics_sink`]). One crate, two modes of one binary.

pub mod lake;
pub mod metrics;
pub mod metrics_sink;
