//! The catalog's model.
//!
//! Contract: a [`Catalog`] holds only KPIs that can be computed, exposed and alerted on:
//! [`super::Catalog::parse`] (in `parse.rs`) refuses anything else with an error naming the
//! KPI and the field. Field paths address envelope fields (`event`, `type`, `userId`,
//! `anonymousId`, `sourceId`, `name`, …) or JSON inside `properties.`, `context.` and
//! `traits.` (dot-separated). See docs/kpi-catalog.md.

use serde::Deserialize;
use serde_json::Value;

use super::labels::label_name;
use super::people::{AlertRule, Presentation};
use super::windows::WindowSpec;
use crate::EventType;

/// A catalog that cannot be used, naming the KPI and field.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CatalogError {
    #[error("catalog is not valid YAML: {0}")]
    Yaml(String),
    #[error("kpi {kpi:?}: {field}: {problem}")]
    Kpi {
        kpi: String,
        field: &'static str,
        problem: String,
    },
    #[error("catalog: {0}")]
    Catalog(String),
}

pub(crate) fn kpi_err(kpi: &str, field: &'static str, problem: impl Into<String>) -> CatalogError {
    CatalogError::Kpi {
        kpi: kpi.to_string(),
        field,
        problem: problem.into(),
    }
}

/// Where a value is read from in an event.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum FieldPath {
    /// An envelope field: `type`, `event`, `name`, `userId`, `anonymousId`, `groupId`,
    /// `sourceId`, `distinctId` (userId falling back to anonymousId).
    Envelope(&'static str),
    /// A path inside a JSON part (`properties`, `context`, `traits`).
    Json { part: JsonPart, path: Vec<String> },
}

/// The JSON parts of an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum JsonPart {
    Properties,
    Context,
    Traits,
}

const ENVELOPE_FIELDS: [&str; 8] = [
    "type",
    "event",
    "name",
    "userId",
    "anonymousId",
    "groupId",
    "sourceId",
    "distinctId",
];

impl FieldPath {
    pub fn parse(text: &str) -> Option<FieldPath> {
        if let Some(f) = ENVELOPE_FIELDS.iter().find(|f| **f == text) {
            return Some(FieldPath::Envelope(f));
        }
        let (head, rest) = text.split_once('.')?;
        let part = match head {
            "properties" => JsonPart::Properties,
            "context" => JsonPart::Context,
            "traits" => JsonPart::Traits,
            _ => return None,
        };
        let path: Vec<String> = rest.split('.').map(str::to_string).collect();
        if path.iter().any(String::is_empty) {
            return None;
        }
        Some(FieldPath::Json { part, path })
    }
}

impl std::fmt::Display for FieldPath {
    /// The path as written in the catalog (`context.os.name`, `userId`).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FieldPath::Envelope(name) => f.write_str(name),
            FieldPath::Json { part, path } => {
                let part = match part {
                    JsonPart::Properties => "properties",
                    JsonPart::Context => "context",
                    JsonPart::Traits => "traits",
                };
                write!(f, "{part}.{}", path.join("."))
            }
        }
    }
}

/// Comparison operators of a predicate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Op {
    Eq,
    Ne,
    In,
    Exists,
    Gt,
    Gte,
    Lt,
    Lte,
}

impl Op {
    /// As written in the catalog.
    pub fn as_str(self) -> &'static str {
        match self {
            Op::Eq => "eq",
            Op::Ne => "ne",
            Op::In => "in",
            Op::Exists => "exists",
            Op::Gt => "gt",
            Op::Gte => "gte",
            Op::Lt => "lt",
            Op::Lte => "lte",
        }
    }
}

/// One property predicate.
#[derive(Debug, Clone, PartialEq)]
pub struct Predicate {
    pub field: FieldPath,
    pub op: Op,
    pub value: Value,
}

/// Which events a KPI counts.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Filter {
    /// Event names (track `event`, page/screen `name`); empty means any.
    pub events: Vec<String>,
    /// Message types; empty means any.
    pub types: Vec<EventType>,
    /// All must hold.
    pub predicates: Vec<Predicate>,
}

/// How a KPI aggregates the events it counts.
#[derive(Debug, Clone, PartialEq)]
pub enum Aggregation {
    Count,
    /// Distinct userId, falling back to anonymousId.
    DistinctUsers,
    /// Sum of a numeric field (fixed point, 6 decimal places).
    Sum(FieldPath),
    /// numerator KPI value / denominator KPI value (indexes into the catalog).
    Ratio {
        numerator: usize,
        denominator: usize,
    },
}

impl Aggregation {
    /// The kind label carried in aggregate records.
    pub fn kind(&self) -> &'static str {
        match self {
            Aggregation::Count => "count",
            Aggregation::DistinctUsers => "distinct_users",
            Aggregation::Sum(_) => "sum",
            Aggregation::Ratio { .. } => "ratio",
        }
    }
}

/// One segment dimension.
#[derive(Debug, Clone, PartialEq)]
pub struct Dimension {
    /// As written, e.g. `context.os.name`.
    pub name: String,
    pub field: FieldPath,
    /// Its Prometheus label name, e.g. `context_os_name` (unique per path in the catalog).
    pub label: String,
}

impl Dimension {
    pub fn new(name: &str, field: FieldPath) -> Self {
        Self {
            name: name.to_string(),
            field,
            label: label_name(name),
        }
    }
}

/// One KPI.
#[derive(Debug, Clone, PartialEq)]
pub struct Kpi {
    pub name: String,
    pub description: String,
    pub filter: Filter,
    pub aggregation: Aggregation,
    pub windows: Vec<WindowSpec>,
    pub segments: Vec<Dimension>,
    /// Values admitted per dimension and window (the first by [`super::admission::rank`] over
    /// all input partitions); the others fold into [`super::OTHER`].
    pub max_segment_values: usize,
    pub presentation: Presentation,
    pub alerts: Vec<AlertRule>,
}

impl Kpi {
    /// A title for people: the name with spaces, first letter upper case
    /// (`weekly_active_users` → `Weekly active users`).
    pub fn title(&self) -> String {
        let mut t = self.name.replace('_', " ");
        if let Some(first) = t.get_mut(0..1) {
            first.make_ascii_uppercase();
        }
        t
    }

    /// The window with this label.
    pub fn window(&self, label: &str) -> Option<(usize, &WindowSpec)> {
        self.windows
            .iter()
            .enumerate()
            .find(|(_, w)| w.label == label)
    }
}

/// The validated catalog.
#[derive(Debug, Clone, PartialEq)]
pub struct Catalog {
    pub north_star: String,
    pub kpis: Vec<Kpi>,
    /// `defaults.allowed_lateness` when the catalog sets it (ms): how long after a window's
    /// end late events still update it. `None`: the processor's own setting applies.
    pub allowed_lateness_ms: Option<i64>,
}

/// The allowed lateness when neither the catalog nor the processor sets one: 10 minutes.
pub const DEFAULT_LATENESS_MS: i64 = 600_000;

impl Catalog {
    /// The KPI with this name.
    pub fn kpi(&self, name: &str) -> Option<(usize, &Kpi)> {
        self.kpis.iter().enumerate().find(|(_, k)| k.name == name)
    }

    /// The North Star Metric.
    pub fn north_star_kpi(&self) -> Option<&Kpi> {
        self.kpi(&self.north_star).map(|(_, k)| k)
    }

    /// A text that changes exactly when what the processor computes changes: every KPI's
    /// [`Catalog::kpi_computation_line`], in catalog order (the fingerprint of checkpoints of
    /// format 2).
    pub fn computation_text(&self) -> String {
        (0..self.kpis.len())
            .map(|k| self.kpi_computation_line(k))
            .collect()
    }

    /// What KPI `k` computes, as one line: its name, filter, aggregation, windows, segments and
    /// cap — never its description, people fields or alerts, and never Rust's `Debug` output.
    /// A ratio's line names its sides.
    pub fn kpi_computation_line(&self, k: usize) -> String {
        use std::fmt::Write;
        let k = &self.kpis[k];
        let mut out = String::new();
        let _ = write!(out, "kpi {}|agg ", k.name);
        match &k.aggregation {
            Aggregation::Sum(f) => {
                let _ = write!(out, "sum {f}");
            }
            Aggregation::Ratio {
                numerator,
                denominator,
            } => {
                let _ = write!(
                    out,
                    "ratio {} {}",
                    self.kpis[*numerator].name, self.kpis[*denominator].name
                );
            }
            other => out.push_str(other.kind()),
        }
        let _ = write!(out, "|events {:?}|types", k.filter.events);
        for t in &k.filter.types {
            let _ = write!(out, " {}", t.as_str());
        }
        for p in &k.filter.predicates {
            let _ = write!(out, "|where {} {} {}", p.field, p.op.as_str(), p.value);
        }
        for w in &k.windows {
            let _ = write!(out, "|window {} {} {}", w.label, w.millis, w.offset_ms);
        }
        for d in &k.segments {
            let _ = write!(out, "|segment {}", d.name);
        }
        let _ = writeln!(out, "|cap {}", k.max_segment_values);
        out
    }

    /// What KPI `k`'s values depend on: its own [`Catalog::kpi_computation_line`] and, for a
    /// ratio, its sides' lines. Equal texts in two catalogs mean the KPI's state carries over.
    pub fn kpi_semantics(&self, k: usize) -> String {
        let mut text = self.kpi_computation_line(k);
        if let Aggregation::Ratio {
            numerator,
            denominator,
        } = self.kpis[k].aggregation
        {
            text.push_str(&self.kpi_computation_line(numerator));
            text.push_str(&self.kpi_computation_line(denominator));
        }
        text
    }

    /// The allowed lateness rules and dashboards assume (ms).
    pub fn lateness_ms(&self) -> i64 {
        self.allowed_lateness_ms.unwrap_or(DEFAULT_LATENESS_MS)
    }

    /// Reads and validates the catalog at `path`; without a path, [`Catalog::default_events`].
    pub fn load(path: Option<&std::path::Path>) -> Result<Catalog, CatalogError> {
        let Some(path) = path else {
            return Ok(Catalog::default_events());
        };
        let text = std::fs::read_to_string(path).map_err(|e| {
            CatalogError::Catalog(format!(
                "cannot read the KPI catalog {}: {e}",
                path.display()
            ))
        })?;
        Catalog::parse(&text).map_err(|e| {
            CatalogError::Catalog(format!("invalid KPI catalog {}: {e}", path.display()))
        })
    }

    /// The catalog of the walking skeleton: events per event name per minute.
    pub fn default_events() -> Catalog {
        #[allow(clippy::expect_used)]
        let window = WindowSpec::parse("1m").expect("1m is a window");
        Catalog {
            north_star: "events".into(),
            kpis: vec![Kpi {
                name: "events".into(),
                description: "All events, by event name".into(),
                filter: Filter::default(),
                aggregation: Aggregation::Count,
                windows: vec![window],
                segments: vec![Dimension::new("event", FieldPath::Envelope("event"))],
                max_segment_values: 1000,
                presentation: Presentation {
                    format: super::Format::Count,
                    unit: None,
                    owner: None,
                    runbook: None,
                },
                alerts: Vec::new(),
            }],
            allowed_lateness_ms: None,
        }
    }

    /// An upper bound of the KPI series the metrics sink exposes for one window, per KPI and
    /// in all, from the windows and the segment caps (see [`SeriesBound`]); whatever the
    /// number of input partitions, which agree on what a window admits.
    pub fn series_bound(&self) -> SeriesBound {
        let per_kpi = self
            .kpis
            .iter()
            .map(|k| {
                let values = (k.max_segment_values as u64).saturating_add(2);
                let combos = k
                    .segments
                    .iter()
                    .fold(1_u64, |acc, _| acc.saturating_mul(values));
                let total = u64::from(!k.segments.is_empty());
                let per_window = combos.saturating_add(total);
                (
                    k.name.clone(),
                    per_window.saturating_mul(k.windows.len() as u64),
                )
            })
            .collect::<Vec<_>>();
        let segment_series = per_kpi
            .iter()
            .map(|(_, n)| *n)
            .fold(0_u64, u64::saturating_add);
        let windows = self.kpis.iter().map(|k| k.windows.len() as u64).sum();
        SeriesBound {
            per_kpi,
            segment_series,
            window_series: windows,
        }
    }
}

/// How many series the metrics sink can expose for a catalog.
///
/// `segment_series` counts (KPI, window, segment combination) series, each a member of the
/// three value families (open, final, final-window history); per dimension and window at most
/// `max_segment_values` values (admitted per window over all input partitions,
/// [`super::admission`]) plus `__other__` and `__none__`, and one all-segments total per window
/// of a segmented KPI. A family also shows, as 0, the series admitted in its other retained
/// windows: when a dimension's values change from window to window, a scrape can show up to
/// the bound times the retained windows.
/// `window_series` counts (KPI, window) series, each a member of the seven window families
/// (open and final window starts, progress, completeness; missing input for the open and the
/// last final window, and its history).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeriesBound {
    pub per_kpi: Vec<(String, u64)>,
    pub segment_series: u64,
    pub window_series: u64,
}

impl SeriesBound {
    /// Series in all: three value families per segment series, seven window series per
    /// (KPI, window).
    pub fn total(&self) -> u64 {
        self.segment_series
            .saturating_mul(3)
            .saturating_add(self.window_series.saturating_mul(7))
    }
}
