//! The catalog's model and its parsing/validation.
//!
//! Contract: [`Catalog::parse`] accepts only a catalog every KPI of which can be computed; each
//! error names the KPI and the field at fault. Field paths address envelope fields (`event`,
//! `type`, `userId`, `anonymousId`, `sourceId`, `name`, …) or JSON inside `properties.`,
//! `context.` and `traits.` (dot-separated). See docs/kpi-catalog.md.

use std::collections::{BTreeSet, HashMap};

use northstar_schemas::EventType;
use serde::Deserialize;
use serde_json::Value;

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

fn kpi_err(kpi: &str, field: &'static str, problem: impl Into<String>) -> CatalogError {
    CatalogError::Kpi {
        kpi: kpi.to_string(),
        field,
        problem: problem.into(),
    }
}

/// A window length.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct WindowSpec {
    /// As written, e.g. `1m`.
    pub label: String,
    pub millis: i64,
}

impl WindowSpec {
    /// Parses `30s`, `1m`, `15m`, `1h`, `1d`.
    pub fn parse(text: &str) -> Option<WindowSpec> {
        let text = text.trim();
        let (num, unit) = text.split_at(text.find(|c: char| !c.is_ascii_digit())?);
        let n: i64 = num.parse().ok().filter(|n| *n > 0)?;
        let unit_ms = match unit {
            "s" => 1_000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            _ => return None,
        };
        Some(WindowSpec {
            label: text.to_string(),
            millis: n.checked_mul(unit_ms)?,
        })
    }

    /// The start of the window containing `ts_ms`.
    pub fn start(&self, ts_ms: i64) -> i64 {
        ts_ms.div_euclid(self.millis) * self.millis
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
    /// Distinct values admitted per dimension (per input partition); later ones fold into
    /// [`OTHER`].
    pub max_segment_values: usize,
}

/// The segment value that values past a dimension's cap fold into.
pub const OTHER: &str = "__other__";
/// Segment dimensions per KPI at most.
pub const MAX_SEGMENTS: usize = 4;
/// The segment value of a missing or non-scalar field.
pub const NONE: &str = "__none__";

/// The validated catalog.
#[derive(Debug, Clone, PartialEq)]
pub struct Catalog {
    pub north_star: String,
    pub kpis: Vec<Kpi>,
}

// ---- YAML shape ----

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCatalog {
    north_star: String,
    #[serde(default)]
    defaults: RawDefaults,
    kpis: Vec<RawKpi>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDefaults {
    #[serde(default = "default_windows")]
    windows: Vec<String>,
    #[serde(default = "default_max_segment_values")]
    max_segment_values: usize,
}

impl Default for RawDefaults {
    fn default() -> Self {
        Self {
            windows: default_windows(),
            max_segment_values: default_max_segment_values(),
        }
    }
}

fn default_windows() -> Vec<String> {
    vec!["1m".into(), "1h".into(), "1d".into()]
}

fn default_max_segment_values() -> usize {
    100
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawKpi {
    name: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    filter: RawFilter,
    aggregate: RawAggregate,
    windows: Option<Vec<String>>,
    #[serde(default)]
    segments: Vec<String>,
    max_segment_values: Option<usize>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawFilter {
    event: Option<String>,
    #[serde(default)]
    events: Vec<String>,
    #[serde(default)]
    types: Vec<String>,
    #[serde(default, rename = "where")]
    predicates: Vec<RawPredicate>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPredicate {
    field: String,
    op: Op,
    #[serde(default)]
    value: Value,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum RawAggregate {
    Simple(String),
    Sum { sum: String },
    Ratio { ratio: RawRatio },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRatio {
    numerator: String,
    denominator: String,
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

impl Catalog {
    /// Parses and validates a catalog.
    pub fn parse(yaml: &str) -> Result<Catalog, CatalogError> {
        let raw: RawCatalog =
            serde_yaml_ng::from_str(yaml).map_err(|e| CatalogError::Yaml(e.to_string()))?;
        if raw.kpis.is_empty() {
            return Err(CatalogError::Catalog("no kpis declared".into()));
        }
        let mut index: HashMap<String, usize> = HashMap::new();
        for (i, k) in raw.kpis.iter().enumerate() {
            if !valid_name(&k.name) {
                return Err(kpi_err(&k.name, "name", "must match [a-z][a-z0-9_]{0,63}"));
            }
            if index.insert(k.name.clone(), i).is_some() {
                return Err(kpi_err(&k.name, "name", "declared twice"));
            }
        }
        if !index.contains_key(&raw.north_star) {
            return Err(CatalogError::Catalog(format!(
                "north_star {:?} is not one of the declared kpis",
                raw.north_star
            )));
        }
        let mut kpis = Vec::with_capacity(raw.kpis.len());
        for k in &raw.kpis {
            kpis.push(build_kpi(k, &raw.defaults, &index)?);
        }
        // Ratios: both sides plain aggregations with the ratio's windows and the same segments.
        for k in &kpis {
            if let Aggregation::Ratio {
                numerator,
                denominator,
            } = k.aggregation
            {
                for (side, idx) in [("numerator", numerator), ("denominator", denominator)] {
                    let other = &kpis[idx];
                    if matches!(other.aggregation, Aggregation::Ratio { .. }) {
                        return Err(kpi_err(
                            &k.name,
                            "aggregate",
                            format!("{side} {:?} is itself a ratio", other.name),
                        ));
                    }
                    if let Some(w) = k.windows.iter().find(|w| !other.windows.contains(w)) {
                        return Err(kpi_err(
                            &k.name,
                            "windows",
                            format!(
                                "window {} is not computed by the {side} {:?}",
                                w.label, other.name
                            ),
                        ));
                    }
                    let mine: Vec<&str> = k.segments.iter().map(|d| d.name.as_str()).collect();
                    let theirs: Vec<&str> =
                        other.segments.iter().map(|d| d.name.as_str()).collect();
                    if mine != theirs {
                        return Err(kpi_err(
                            &k.name,
                            "segments",
                            format!(
                                "must equal the segments of the {side} {:?} ({theirs:?})",
                                other.name
                            ),
                        ));
                    }
                }
            }
        }
        Ok(Catalog {
            north_star: raw.north_star,
            kpis,
        })
    }

    /// The catalog of the walking skeleton: events per event name per minute.
    pub fn default_events() -> Catalog {
        Catalog {
            north_star: "events".into(),
            kpis: vec![Kpi {
                name: "events".into(),
                description: "All events, by event name".into(),
                filter: Filter::default(),
                aggregation: Aggregation::Count,
                windows: vec![WindowSpec {
                    label: "1m".into(),
                    millis: 60_000,
                }],
                segments: vec![Dimension {
                    name: "event".into(),
                    field: FieldPath::Envelope("event"),
                }],
                max_segment_values: 1000,
            }],
        }
    }
}

fn build_kpi(
    k: &RawKpi,
    defaults: &RawDefaults,
    index: &HashMap<String, usize>,
) -> Result<Kpi, CatalogError> {
    let name = k.name.as_str();
    let window_texts = k
        .windows
        .clone()
        .unwrap_or_else(|| defaults.windows.clone());
    if window_texts.is_empty() {
        return Err(kpi_err(name, "windows", "at least one window is required"));
    }
    let mut windows = Vec::new();
    let mut seen = BTreeSet::new();
    for w in &window_texts {
        let spec = WindowSpec::parse(w).ok_or_else(|| {
            kpi_err(
                name,
                "windows",
                format!("{w:?} is not a duration like 1m, 1h or 1d"),
            )
        })?;
        if !seen.insert(spec.millis) {
            return Err(kpi_err(name, "windows", format!("{w:?} is listed twice")));
        }
        windows.push(spec);
    }
    let aggregation = match &k.aggregate {
        RawAggregate::Simple(s) if s == "count" => Aggregation::Count,
        RawAggregate::Simple(s) if s == "distinct_users" => Aggregation::DistinctUsers,
        RawAggregate::Simple(s) => {
            return Err(kpi_err(
                name,
                "aggregate",
                format!("{s:?} is not count, distinct_users, {{sum: <field>}} or {{ratio: {{numerator, denominator}}}}"),
            ))
        }
        RawAggregate::Sum { sum } => Aggregation::Sum(
            FieldPath::parse(sum)
                .filter(|f| matches!(f, FieldPath::Json { .. }))
                .ok_or_else(|| kpi_err(name, "aggregate.sum", format!("{sum:?} is not a properties./context./traits. path")))?,
        ),
        RawAggregate::Ratio { ratio } => {
            let find = |side: &str, field: &'static str| {
                index.get(side).copied().ok_or_else(|| kpi_err(name, field, format!("{side:?} is not a declared kpi")))
            };
            let numerator = find(&ratio.numerator, "aggregate.ratio.numerator")?;
            let denominator = find(&ratio.denominator, "aggregate.ratio.denominator")?;
            if ratio.numerator == name || ratio.denominator == name {
                return Err(kpi_err(name, "aggregate.ratio", "a ratio cannot refer to itself"));
            }
            Aggregation::Ratio { numerator, denominator }
        }
    };
    let mut events: Vec<String> = k.filter.events.clone();
    if let Some(e) = &k.filter.event {
        events.push(e.clone());
    }
    let mut types = Vec::new();
    for t in &k.filter.types {
        types.push(EventType::parse(t).ok_or_else(|| {
            kpi_err(name, "filter.types", format!("{t:?} is not a message type"))
        })?);
    }
    let mut predicates = Vec::new();
    for p in &k.filter.predicates {
        let field = FieldPath::parse(&p.field).ok_or_else(|| {
            kpi_err(
                name,
                "filter.where.field",
                format!("{:?} is not a known field path", p.field),
            )
        })?;
        let value_ok = match p.op {
            Op::Exists => true,
            Op::In => p.value.is_array(),
            Op::Gt | Op::Gte | Op::Lt | Op::Lte => p.value.is_number(),
            Op::Eq | Op::Ne => true,
        };
        if !value_ok {
            return Err(kpi_err(
                name,
                "filter.where.value",
                format!(
                    "{:?} needs a {} value",
                    p.op,
                    if p.op == Op::In { "list" } else { "numeric" }
                ),
            ));
        }
        predicates.push(Predicate {
            field,
            op: p.op,
            value: p.value.clone(),
        });
    }
    let is_ratio = matches!(aggregation, Aggregation::Ratio { .. });
    if is_ratio && (!events.is_empty() || !types.is_empty() || !predicates.is_empty()) {
        return Err(kpi_err(
            name,
            "filter",
            "a ratio takes its events from its numerator and denominator",
        ));
    }
    if k.segments.len() > MAX_SEGMENTS {
        return Err(kpi_err(
            name,
            "segments",
            format!(
                "at most {MAX_SEGMENTS} dimensions, got {}",
                k.segments.len()
            ),
        ));
    }
    let mut segments = Vec::new();
    for s in &k.segments {
        let field = FieldPath::parse(s)
            .ok_or_else(|| kpi_err(name, "segments", format!("{s:?} is not a known field path")))?;
        if segments.iter().any(|d: &Dimension| d.name == *s) {
            return Err(kpi_err(name, "segments", format!("{s:?} is listed twice")));
        }
        segments.push(Dimension {
            name: s.clone(),
            field,
        });
    }
    let max_segment_values = k.max_segment_values.unwrap_or(defaults.max_segment_values);
    if !segments.is_empty() && max_segment_values == 0 {
        return Err(kpi_err(name, "max_segment_values", "must be > 0"));
    }
    Ok(Kpi {
        name: name.to_string(),
        description: k.description.clone(),
        filter: Filter {
            events,
            types,
            predicates,
        },
        aggregation,
        windows,
        segments,
        max_segment_values,
    })
}
