//! The tracking plan: one YAML file that says which events, properties, traits and context
//! fields exist, their types and rules, their personal-data class and what happens to it, the
//! consent purpose and retention of each event, and the KPIs each feeds.
//!
//! Contract: the one model of the plan, shared by the processor (validation), the lake (typed
//! columns) and the docs (the rendered document), as the KPI catalog is for KPIs. A [`Plan`] is
//! always internally consistent ([`Plan::parse`]); [`lint`] reads it against naming rules and
//! the KPI catalog, [`compare`] and [`check_version`] class a change against the previous
//! version, [`markdown`] renders it, [`Plan::check`] checks one event against it. See docs/tracking-plan.md and ADR 0016.

pub mod anonymise;
mod check;
mod compat;
mod lint;
pub mod model;
mod parse;
pub mod pii;
mod render;
mod report;
#[cfg(test)]
mod tests;

pub use check::{format_holds, Checked, Consent, PolicyClass, Violation, ViolationKind};
pub use compat::{avro_column, check_version, compare, Change, Impact, VersionError};
pub use lint::{lint, Finding, Severity};
pub use parse::{FieldRule, NamingRules, Plan, PlanError, Property, Shape};
pub use render::{markdown, rules};
pub use report::LintReport;
