//! The KPI catalog as the processor applies it: the model is the shared contract
//! ([`northstar_schemas::catalog`], docs/kpi-catalog.md); [`eval`] applies it to events.

pub mod eval;
#[cfg(test)]
mod tests;

pub use eval::{fixed_point, fixed_to_f64, scalar_fixed_point, EventView, Matches, Scalar};
pub use northstar_schemas::catalog::{
    Aggregation, Catalog, CatalogError, Dimension, FieldPath, Filter, Kpi, Op, Predicate,
    WindowSpec, ALL, MAX_SEGMENTS, NONE, OTHER,
};
