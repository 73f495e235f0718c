//! The KPI catalog: the North Star Metric and its input KPIs, declared once in YAML
//! (docs/kpi-catalog.md). [`model`] parses and validates; [`eval`] applies it to events.

pub mod eval;
mod json_path;
pub mod model;
#[cfg(test)]
mod tests;

pub use eval::{fixed_point, fixed_to_f64, scalar_fixed_point, EventView, Scalar};
pub use model::{
    Aggregation, Catalog, CatalogError, Dimension, FieldPath, Filter, Kpi, Op, Predicate,
    WindowSpec, MAX_SEGMENTS, NONE, OTHER,
};
