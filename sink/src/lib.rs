//! The Northstar sinks: clean events to a Parquet lake ([`lake`]) and KPI aggregates to
//! Prometheus ([`metrics_sink`]), with the Grafana dashboards and Prometheus rules that read
//! them generated from the catalog ([`dashboards`]). One crate, modes of one binary.

pub mod cli;
pub mod dashboards;
pub mod lake;
pub mod metrics;
pub mod metrics_sink;
