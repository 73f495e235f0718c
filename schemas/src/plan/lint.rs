//! The plan's lint: naming rules, unused definitions, and the KPI catalog read against the plan.
//!
//! Contract: pure (no IO). [`lint`] returns every finding at once, errors before warnings, each
//! naming where it is. An error means the plan and the catalog disagree on something the
//! pipeline depends on — a KPI counting an event or reading a property, trait or context field
//! the plan does not define, a `sum` over a property that is not numeric, a name breaking the
//! naming rules, an event listing a KPI the catalog does not have. Warnings are for people:
//! unused dictionary entries, entries without a description, a KPI counting a deprecated event,
//! an event's `kpis` list that disagrees with the catalog's filters.

use std::collections::BTreeSet;

use super::model::{PropertyType, Status};
use super::parse::{Plan, Shape};
use crate::catalog::{Aggregation, Catalog, FieldPath, JsonPart, Kpi};
use crate::EventType;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    Error,
    Warning,
}

/// One thing the lint found.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Finding {
    pub severity: Severity,
    pub at: String,
    pub message: String,
}

impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let level = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        write!(f, "{level}: {}: {}", self.at, self.message)
    }
}

fn error(at: impl Into<String>, message: impl Into<String>) -> Finding {
    Finding {
        severity: Severity::Error,
        at: at.into(),
        message: message.into(),
    }
}

fn warning(at: impl Into<String>, message: impl Into<String>) -> Finding {
    Finding {
        severity: Severity::Warning,
        at: at.into(),
        message: message.into(),
    }
}

/// Every finding about `plan`, and about `catalog` read against it when one is given.
pub fn lint(plan: &Plan, catalog: Option<&Catalog>) -> Vec<Finding> {
    let mut out = naming(plan);
    out.extend(dictionary(plan));
    if let Some(catalog) = catalog {
        for kpi in &catalog.kpis {
            out.extend(kpi_against_plan(plan, catalog, kpi));
        }
        for shape in plan.events.values() {
            out.extend(kpis_listed(catalog, shape));
        }
    }
    out.sort();
    out.dedup();
    out
}

fn naming(plan: &Plan) -> Vec<Finding> {
    let mut out = Vec::new();
    let rules = &plan.naming;
    if let Some(re) = &rules.events {
        for name in plan.events.keys() {
            if !re.is_match(name) {
                out.push(error(
                    format!("event {name:?}"),
                    format!(
                        "name does not match the naming rule naming.events ({})",
                        re.as_str()
                    ),
                ));
            }
        }
    }
    for shape in plan.shapes() {
        let (rule, key) = match (shape.name.as_str(), &rules.traits) {
            ("identify", Some(t)) => (Some(t), "naming.traits"),
            _ => (rules.properties.as_ref(), "naming.properties"),
        };
        let Some(re) = rule else { continue };
        for field in shape.fields.keys().filter(|f| !re.is_match(f)) {
            out.push(error(
                format!("{} {field:?}", shape_label(shape)),
                format!(
                    "name does not match the naming rule {key} ({})",
                    re.as_str()
                ),
            ));
        }
    }
    out
}

fn shape_label(shape: &Shape) -> String {
    match shape.name.as_str() {
        "identify" => "identify trait".into(),
        "page" | "screen" => format!("{} property", shape.name),
        name => format!("event {name:?} property"),
    }
}

fn dictionary(plan: &Plan) -> Vec<Finding> {
    let used: BTreeSet<&str> = plan
        .shapes()
        .flat_map(|s| s.fields.keys().map(String::as_str))
        .collect();
    let mut out = Vec::new();
    for (name, p) in &plan.dictionary {
        if !used.contains(name.as_str()) {
            out.push(warning(
                format!("properties.{name}"),
                "defined but used by no event, trait or view",
            ));
        }
        if p.def
            .description
            .as_deref()
            .is_none_or(|d| d.trim().is_empty())
        {
            out.push(warning(format!("properties.{name}"), "has no description"));
        }
    }
    out
}

/// The event names a KPI counts: `None` when it counts any event (no name filter, or a ratio of
/// KPIs that do), else the names, a ratio's from both sides.
fn kpi_event_names(catalog: &Catalog, kpi: &Kpi) -> Option<BTreeSet<String>> {
    match kpi.aggregation {
        Aggregation::Ratio {
            numerator,
            denominator,
        } => {
            let n = kpi_event_names(catalog, &catalog.kpis[numerator])?;
            let d = kpi_event_names(catalog, &catalog.kpis[denominator])?;
            Some(n.union(&d).cloned().collect())
        }
        _ if kpi.filter.events.is_empty() => None,
        _ => Some(kpi.filter.events.iter().cloned().collect()),
    }
}

/// Whether a KPI's name filter is about track events (its types allow track).
fn counts_tracks(kpi: &Kpi) -> bool {
    kpi.filter.types.is_empty() || kpi.filter.types.contains(&EventType::Track)
}

/// The fields a KPI reads, with what it reads them for.
fn kpi_fields(kpi: &Kpi) -> Vec<(&FieldPath, &'static str)> {
    let mut out: Vec<(&FieldPath, &'static str)> =
        kpi.segments.iter().map(|d| (&d.field, "segment")).collect();
    out.extend(kpi.filter.predicates.iter().map(|p| (&p.field, "filter")));
    if let Aggregation::Sum(f) = &kpi.aggregation {
        out.push((f, "sum"));
    }
    out
}

fn kpi_against_plan(plan: &Plan, catalog: &Catalog, kpi: &Kpi) -> Vec<Finding> {
    let at = format!("kpi {:?}", kpi.name);
    let mut out = Vec::new();
    let names = kpi_event_names(catalog, kpi).filter(|_| counts_tracks(kpi));
    for name in names.iter().flatten() {
        match plan.events.get(name) {
            None => out.push(error(
                &at,
                format!("counts event {name:?}, which the tracking plan does not define"),
            )),
            Some(s) if s.status == Status::Deprecated => out.push(warning(
                &at,
                format!("counts event {name:?}, deprecated in the tracking plan"),
            )),
            Some(_) => {}
        }
    }
    for (field, why) in kpi_fields(kpi) {
        out.extend(field_against_plan(plan, &at, field, why, names.as_ref()));
    }
    out
}

/// One field a KPI reads: defined by the plan, for every event the KPI counts, with a numeric
/// type when it is summed.
fn field_against_plan(
    plan: &Plan,
    at: &str,
    field: &FieldPath,
    why: &str,
    events: Option<&BTreeSet<String>>,
) -> Vec<Finding> {
    let FieldPath::Json { part, path } = field else {
        return Vec::new(); // envelope fields are the contract's own
    };
    let (kind, found) = match part {
        JsonPart::Context => {
            let p = path.join(".");
            (
                plan.context.get(&p).map(|p| p.def.kind),
                "the plan's `context:`",
            )
        }
        JsonPart::Traits => {
            let listed = plan
                .identify
                .as_ref()
                .is_some_and(|s| s.fields.contains_key(&path[0]));
            (
                listed.then(|| plan.dictionary[&path[0]].def.kind),
                "identify's traits",
            )
        }
        JsonPart::Properties => (
            plan.dictionary.get(&path[0]).map(|p| p.def.kind),
            "the property dictionary",
        ),
    };
    let mut out = Vec::new();
    let Some(kind) = kind else {
        out.push(error(
            at,
            format!("{why} field {field} is not defined in {found}"),
        ));
        return out;
    };
    if why == "sum"
        && path.len() == 1
        && !matches!(kind, PropertyType::Number | PropertyType::Integer)
    {
        out.push(error(
            at,
            format!(
                "sums {field}, a {} in the plan, not a number",
                kind.as_str()
            ),
        ));
    }
    if *part == JsonPart::Properties {
        for name in events.into_iter().flatten() {
            let listed = plan
                .events
                .get(name)
                .is_some_and(|s| s.fields.contains_key(&path[0]));
            if plan.events.contains_key(name) && !listed {
                out.push(error(
                    at,
                    format!("{why} field {field} is not a property of event {name:?} in the plan"),
                ));
            }
        }
    }
    out
}

/// An event's `kpis:` against the catalog: every KPI listed exists and counts the event; every
/// KPI that names the event is listed.
fn kpis_listed(catalog: &Catalog, shape: &Shape) -> Vec<Finding> {
    let at = format!("event {:?}", shape.name);
    let mut out = Vec::new();
    for name in &shape.kpis {
        let Some((_, kpi)) = catalog.kpi(name) else {
            out.push(error(
                &at,
                format!("lists KPI {name:?}, which the catalog does not define"),
            ));
            continue;
        };
        if kpi_event_names(catalog, kpi).is_some_and(|names| !names.contains(&shape.name)) {
            out.push(warning(
                &at,
                format!("lists KPI {name:?}, whose filter does not count this event"),
            ));
        }
    }
    for kpi in &catalog.kpis {
        let names = kpi_event_names(catalog, kpi);
        if names.is_some_and(|n| n.contains(&shape.name)) && !shape.kpis.contains(&kpi.name) {
            out.push(warning(
                &at,
                format!(
                    "is counted by KPI {:?} but does not list it in `kpis:`",
                    kpi.name
                ),
            ));
        }
    }
    out
}
