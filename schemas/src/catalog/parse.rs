//! Parsing and validating the catalog's YAML.
//!
//! Contract: [`Catalog::parse`] returns a catalog only if every KPI can be computed, exposed and
//! alerted on; the first problem found is returned, naming the KPI and the field. Checks, in
//! order: names, the North Star, defaults, each KPI (windows, aggregation, filter, segments,
//! people fields, alerts), ratios against their sides, label names across the catalog.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::Deserialize;
use serde_json::Value;

use super::model::{
    kpi_err, Aggregation, Catalog, CatalogError, Dimension, FieldPath, Filter, Kpi, Op, Predicate,
    DEFAULT_LATENESS_MS,
};
use super::people::{build_alerts, build_presentation, Format, RawAlert, RawPresentation};
use super::windows::{format_duration, parse_duration, WindowSpec};
use super::MAX_SEGMENTS;
use crate::EventType;

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
    allowed_lateness: Option<String>,
    /// Window label → retention of its closed windows.
    #[serde(default)]
    retention: BTreeMap<String, String>,
}

impl Default for RawDefaults {
    fn default() -> Self {
        Self {
            windows: default_windows(),
            max_segment_values: default_max_segment_values(),
            allowed_lateness: None,
            retention: BTreeMap::new(),
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
    format: Option<Format>,
    unit: Option<String>,
    owner: Option<String>,
    runbook: Option<String>,
    #[serde(default)]
    alerts: Vec<RawAlert>,
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

/// What every KPI inherits from `defaults`.
struct Defaults {
    windows: Vec<String>,
    max_segment_values: usize,
    lateness_ms: i64,
    retention: HashMap<String, i64>,
}

impl Catalog {
    /// Parses and validates a catalog.
    pub fn parse(yaml: &str) -> Result<Catalog, CatalogError> {
        let raw: RawCatalog =
            serde_yaml_ng::from_str(yaml).map_err(|e| CatalogError::Yaml(e.to_string()))?;
        if raw.kpis.is_empty() {
            return Err(CatalogError::Catalog("no kpis declared".into()));
        }
        let index = name_index(&raw.kpis)?;
        if !index.contains_key(&raw.north_star) {
            return Err(CatalogError::Catalog(format!(
                "north_star {:?} is not one of the declared kpis",
                raw.north_star
            )));
        }
        let defaults = defaults(&raw.defaults)?;
        let kpis = raw
            .kpis
            .iter()
            .map(|k| build_kpi(k, &defaults, &index))
            .collect::<Result<Vec<_>, _>>()?;
        check_ratios(&kpis)?;
        check_labels(&kpis)?;
        Ok(Catalog {
            north_star: raw.north_star,
            kpis,
            allowed_lateness_ms: raw
                .defaults
                .allowed_lateness
                .is_some()
                .then_some(defaults.lateness_ms),
        })
    }
}

fn name_index(kpis: &[RawKpi]) -> Result<HashMap<String, usize>, CatalogError> {
    let mut index = HashMap::new();
    for (i, k) in kpis.iter().enumerate() {
        if !valid_name(&k.name) {
            return Err(kpi_err(&k.name, "name", "must match [a-z][a-z0-9_]{0,63}"));
        }
        if index.insert(k.name.clone(), i).is_some() {
            return Err(kpi_err(&k.name, "name", "declared twice"));
        }
    }
    Ok(index)
}

fn defaults(raw: &RawDefaults) -> Result<Defaults, CatalogError> {
    let bad = |field: &str, problem: String| {
        CatalogError::Catalog(format!("defaults.{field}: {problem}"))
    };
    let lateness_ms = match &raw.allowed_lateness {
        None => DEFAULT_LATENESS_MS,
        Some(t) if t.trim() == "0s" || t.trim() == "0" => 0,
        Some(t) => parse_duration(t).ok_or_else(|| {
            bad(
                "allowed_lateness",
                format!("{t:?} is not a duration like 10m"),
            )
        })?,
    };
    let mut retention = HashMap::new();
    for (window, keep) in &raw.retention {
        let w = WindowSpec::parse(window).ok_or_else(|| {
            bad(
                "retention",
                format!("{window:?} is not a window like 1m or 1h"),
            )
        })?;
        let ms = parse_duration(keep).ok_or_else(|| {
            bad(
                "retention",
                format!("{window}: {keep:?} is not a duration like 8d"),
            )
        })?;
        let least = 2 * (w.millis + lateness_ms);
        if ms < least {
            return Err(bad(
                "retention",
                format!(
                    "{window}: {keep} is shorter than twice the window plus the allowed lateness ({})",
                    format_duration(least)
                ),
            ));
        }
        retention.insert(w.label, ms);
    }
    Ok(Defaults {
        windows: raw.windows.clone(),
        max_segment_values: raw.max_segment_values,
        lateness_ms,
        retention,
    })
}

fn build_kpi(
    k: &RawKpi,
    defaults: &Defaults,
    index: &HashMap<String, usize>,
) -> Result<Kpi, CatalogError> {
    let name = k.name.as_str();
    let windows = build_windows(
        name,
        k.windows.as_ref().unwrap_or(&defaults.windows),
        defaults,
    )?;
    let aggregation = build_aggregation(name, &k.aggregate, index)?;
    let filter = build_filter(name, &k.filter)?;
    let is_ratio = matches!(aggregation, Aggregation::Ratio { .. });
    if is_ratio && filter != Filter::default() {
        return Err(kpi_err(
            name,
            "filter",
            "a ratio takes its events from its numerator and denominator",
        ));
    }
    let segments = build_segments(name, &k.segments)?;
    let max_segment_values = k.max_segment_values.unwrap_or(defaults.max_segment_values);
    if !segments.is_empty() && max_segment_values == 0 {
        return Err(kpi_err(name, "max_segment_values", "must be > 0"));
    }
    let presentation = build_presentation(
        name,
        RawPresentation {
            format: k.format,
            unit: k.unit.clone(),
            owner: k.owner.clone(),
            runbook: k.runbook.clone(),
        },
        &aggregation,
    )?;
    let alerts = build_alerts(
        name,
        &k.alerts,
        &windows,
        &aggregation,
        !segments.is_empty(),
    )?;
    Ok(Kpi {
        name: name.to_string(),
        description: k.description.clone(),
        filter,
        aggregation,
        windows,
        segments,
        max_segment_values,
        presentation,
        alerts,
    })
}

fn build_windows(
    name: &str,
    texts: &[String],
    defaults: &Defaults,
) -> Result<Vec<WindowSpec>, CatalogError> {
    if texts.is_empty() {
        return Err(kpi_err(name, "windows", "at least one window is required"));
    }
    let mut windows = Vec::new();
    let mut seen = BTreeSet::new();
    for w in texts {
        let mut spec = WindowSpec::parse(w).ok_or_else(|| {
            kpi_err(
                name,
                "windows",
                format!("{w:?} is not a duration like 1m, 1h, 1d or 1w"),
            )
        })?;
        if !seen.insert(spec.millis) {
            return Err(kpi_err(name, "windows", format!("{w:?} is listed twice")));
        }
        if let Some(ms) = defaults.retention.get(&spec.label) {
            spec.retention_ms = *ms;
        }
        spec.retention_ms = spec
            .retention_ms
            .max(2 * (spec.millis + defaults.lateness_ms));
        windows.push(spec);
    }
    Ok(windows)
}

fn build_aggregation(
    name: &str,
    raw: &RawAggregate,
    index: &HashMap<String, usize>,
) -> Result<Aggregation, CatalogError> {
    Ok(match raw {
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
    })
}

fn build_filter(name: &str, raw: &RawFilter) -> Result<Filter, CatalogError> {
    let mut events = raw.events.clone();
    events.extend(raw.event.iter().cloned());
    let types = raw
        .types
        .iter()
        .map(|t| {
            EventType::parse(t).ok_or_else(|| {
                kpi_err(name, "filter.types", format!("{t:?} is not a message type"))
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let predicates = raw
        .predicates
        .iter()
        .map(|p| build_predicate(name, p))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Filter {
        events,
        types,
        predicates,
    })
}

fn build_predicate(name: &str, p: &RawPredicate) -> Result<Predicate, CatalogError> {
    let field = FieldPath::parse(&p.field).ok_or_else(|| {
        kpi_err(
            name,
            "filter.where.field",
            format!("{:?} is not a known field path", p.field),
        )
    })?;
    let value_ok = match p.op {
        Op::Exists | Op::Eq | Op::Ne => true,
        Op::In => p.value.is_array(),
        Op::Gt | Op::Gte | Op::Lt | Op::Lte => p.value.is_number(),
    };
    if !value_ok {
        let wanted = if p.op == Op::In { "list" } else { "numeric" };
        return Err(kpi_err(
            name,
            "filter.where.value",
            format!("{:?} needs a {wanted} value", p.op),
        ));
    }
    Ok(Predicate {
        field,
        op: p.op,
        value: p.value.clone(),
    })
}

fn build_segments(name: &str, raw: &[String]) -> Result<Vec<Dimension>, CatalogError> {
    if raw.len() > MAX_SEGMENTS {
        return Err(kpi_err(
            name,
            "segments",
            format!("at most {MAX_SEGMENTS} dimensions, got {}", raw.len()),
        ));
    }
    let mut segments: Vec<Dimension> = Vec::new();
    for s in raw {
        let field = FieldPath::parse(s)
            .ok_or_else(|| kpi_err(name, "segments", format!("{s:?} is not a known field path")))?;
        if segments.iter().any(|d| d.name == *s) {
            return Err(kpi_err(name, "segments", format!("{s:?} is listed twice")));
        }
        segments.push(Dimension::new(s, field));
    }
    Ok(segments)
}

/// Ratios: both sides plain aggregations computing the ratio's windows with the same segments.
fn check_ratios(kpis: &[Kpi]) -> Result<(), CatalogError> {
    for k in kpis {
        let Aggregation::Ratio {
            numerator,
            denominator,
        } = k.aggregation
        else {
            continue;
        };
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
            if !k.segments.is_empty() && other.max_segment_values != k.max_segment_values {
                return Err(kpi_err(
                    &k.name,
                    "max_segment_values",
                    format!(
                        "must equal the {side} {:?}'s ({}): a ratio and its sides admit the same \
                         segment values",
                        other.name, other.max_segment_values
                    ),
                ));
            }
            let mine: Vec<&str> = k.segments.iter().map(|d| d.name.as_str()).collect();
            let theirs: Vec<&str> = other.segments.iter().map(|d| d.name.as_str()).collect();
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
    Ok(())
}

/// One label name means one field path in the whole catalog (dashboards have one variable per
/// label, and two paths sharing a label would make one KPI's series indistinguishable).
fn check_labels(kpis: &[Kpi]) -> Result<(), CatalogError> {
    let mut owner: HashMap<&str, (&str, &str)> = HashMap::new();
    for k in kpis {
        for d in &k.segments {
            match owner.get(d.label.as_str()) {
                Some((path, kpi)) if *path != d.name => {
                    return Err(kpi_err(
                        &k.name,
                        "segments",
                        format!(
                        "{:?} and {path:?} (kpi {kpi:?}) both become the label {:?}; rename one",
                        d.name, d.label
                    ),
                    ))
                }
                _ => {
                    owner.insert(&d.label, (&d.name, &k.name));
                }
            }
        }
    }
    Ok(())
}
