//! The KPI catalog: the North Star Metric and the input KPIs that drive it, declared once in
//! YAML (docs/kpi-catalog.md) and shared by every part that needs it — the stream processor
//! computes it, the metrics sink exposes it, the dashboard and rule generator turns it into
//! Grafana dashboards and Prometheus rules.
//!
//! Contract: a [`Catalog`] that parses is computable (filters, aggregations, windows, segments),
//! exposable (one label name per field path, never a reserved one; series bounded by the caps,
//! [`Catalog::series_bound`]) and alertable (every alert on a window the KPI computes). Window
//! alignment and durations are in [`windows`]; label names and reserved segment values in
//! [`labels`]; people fields and alerts in [`people`].

pub mod admission;
pub mod labels;
mod model;
mod parse;
pub mod people;
#[cfg(test)]
mod tests;
pub mod windows;

pub use admission::{admission_classes, value_hash, Admitted};
pub use labels::{escape_value, label_name, segment_label, ALL, NONE, OTHER};
pub use model::{
    Aggregation, Catalog, CatalogError, Dimension, FieldPath, Filter, JsonPart, Kpi, Op, Predicate,
    SeriesBound, DEFAULT_LATENESS_MS,
};
pub use people::{AlertKind, AlertRule, Format, Presentation, Severity};
pub use windows::{format_duration, parse_duration, WindowSpec, WEEK_MS};

/// Segment dimensions per KPI at most.
pub const MAX_SEGMENTS: usize = 4;
