//! What a plan change means for the events already being sent and the lake already written:
//! compatible or breaking, and whether the version says so.
//!
//! Contract: pure (no IO). [`compare`] lists every difference between two versions of a plan,
//! each classed [`Impact::Breaking`] when an event valid under the old plan can be a violation
//! under the new one (a new required property, a narrowed enum or bound, a new pattern or format,
//! other properties no longer allowed, a removed event or property, a changed consent purpose),
//! or when a lake column's type changes in a way Avro's schema resolution cannot read (checked
//! with apache-avro's `SchemaCompatibility` on each property's column type: `integer` → `number`
//! is a promotion, anything else between types is not), or when a PII action changes what the lake
//! holds. [`check_version`] then refuses a breaking change without a new major version, and any
//! change without a higher version.

use std::collections::BTreeMap;

use apache_avro::schema_compatibility::SchemaCompatibility;
use apache_avro::Schema;

use super::model::PropertyType;
use super::parse::{Plan, Property, Shape};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Impact {
    Breaking,
    Compatible,
}

/// One difference between two plans.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Change {
    pub impact: Impact,
    pub at: String,
    pub what: String,
}

impl std::fmt::Display for Change {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let impact = match self.impact {
            Impact::Breaking => "breaking",
            Impact::Compatible => "compatible",
        };
        write!(f, "{impact}: {}: {}", self.at, self.what)
    }
}

fn change(impact: Impact, at: &str, what: impl Into<String>) -> Change {
    Change {
        impact,
        at: at.to_string(),
        what: what.into(),
    }
}

fn breaking_if(cond: bool) -> Impact {
    if cond {
        Impact::Breaking
    } else {
        Impact::Compatible
    }
}

/// Every difference from `old` to `new`, breaking ones first.
pub fn compare(old: &Plan, new: &Plan) -> Vec<Change> {
    let mut out = Vec::new();
    if old.id != new.id {
        out.push(change(
            Impact::Breaking,
            "plan.id",
            format!("{:?} → {:?}: a different plan", old.id, new.id),
        ));
    }
    if old.consent_default != new.consent_default {
        out.push(change(
            Impact::Breaking,
            "consent.default_without_consent_info",
            format!("{:?} → {:?}", old.consent_default, new.consent_default),
        ));
    }
    out.extend(naming(old, new));
    out.extend(dictionaries("properties", &old.dictionary, &new.dictionary));
    out.extend(dictionaries("context", &old.context, &new.context));
    out.extend(events(old, new));
    for (label, o, n) in [
        ("identify", &old.identify, &new.identify),
        ("page", &old.page, &new.page),
        ("screen", &old.screen, &new.screen),
    ] {
        match (o, n) {
            (Some(o), Some(n)) => out.extend(shapes(label, o, n)),
            (None, Some(_)) => out.push(change(
                Impact::Breaking,
                label,
                "now planned: what it did not list becomes a violation",
            )),
            (Some(_), None) => out.push(change(Impact::Compatible, label, "no longer planned")),
            (None, None) => {}
        }
    }
    out.sort();
    out
}

fn naming(old: &Plan, new: &Plan) -> Vec<Change> {
    let text = |r: &Option<regex::Regex>| r.as_ref().map(|r| r.as_str().to_string());
    let mut out = Vec::new();
    for (key, o, n) in [
        ("naming.events", &old.naming.events, &new.naming.events),
        (
            "naming.properties",
            &old.naming.properties,
            &new.naming.properties,
        ),
        ("naming.traits", &old.naming.traits, &new.naming.traits),
    ] {
        if text(o) != text(n) {
            // The lint checks every planned name against the new rule.
            out.push(change(
                Impact::Compatible,
                key,
                format!("{:?} → {:?}", text(o), text(n)),
            ));
        }
    }
    out
}

fn events(old: &Plan, new: &Plan) -> Vec<Change> {
    let mut out = Vec::new();
    for (name, o) in &old.events {
        let at = format!("event {name:?}");
        match new.events.get(name) {
            None => out.push(change(
                Impact::Breaking,
                &at,
                "removed: producers still sending it become unknown events",
            )),
            Some(n) => out.extend(shapes(&at, o, n)),
        }
    }
    for name in new.events.keys().filter(|n| !old.events.contains_key(*n)) {
        out.push(change(
            Impact::Compatible,
            &format!("event {name:?}"),
            "added",
        ));
    }
    out
}

/// What changed in what one message kind may carry.
fn shapes(at: &str, o: &Shape, n: &Shape) -> Vec<Change> {
    let mut out = Vec::new();
    for (field, rule) in &o.fields {
        let f = format!("{at} property {field:?}");
        match n.fields.get(field) {
            None => out.push(change(
                breaking_if(!n.additional),
                &f,
                "removed (breaking unless other properties are allowed)",
            )),
            Some(r) if r.required && !rule.required => {
                out.push(change(Impact::Breaking, &f, "now required"))
            }
            Some(r) if !r.required && rule.required => {
                out.push(change(Impact::Compatible, &f, "no longer required"))
            }
            Some(_) => {}
        }
    }
    for (field, rule) in n.fields.iter().filter(|(f, _)| !o.fields.contains_key(*f)) {
        let f = format!("{at} property {field:?}");
        let what = if rule.required {
            "added as required"
        } else {
            "added as optional"
        };
        out.push(change(breaking_if(rule.required), &f, what));
    }
    if o.additional != n.additional {
        let what = if n.additional {
            "other properties now allowed"
        } else {
            "other properties no longer allowed"
        };
        out.push(change(breaking_if(!n.additional), at, what));
    }
    if o.consent != n.consent {
        out.push(change(
            Impact::Breaking,
            at,
            format!("consent purpose {:?} → {:?}", o.consent, n.consent),
        ));
    }
    let info = [
        (
            "retention_days",
            format!("{:?}", o.retention_days),
            format!("{:?}", n.retention_days),
        ),
        ("status", o.status.as_str().into(), n.status.as_str().into()),
        ("version", o.version.to_string(), n.version.to_string()),
        (
            "description",
            format!("{:?}", o.description),
            format!("{:?}", n.description),
        ),
        ("owner", format!("{:?}", o.owner), format!("{:?}", n.owner)),
        ("kpis", format!("{:?}", o.kpis), format!("{:?}", n.kpis)),
    ];
    for (key, a, b) in info.into_iter().filter(|(_, a, b)| a != b) {
        out.push(change(Impact::Compatible, at, format!("{key} {a} → {b}")));
    }
    out
}

fn dictionaries(
    section: &str,
    old: &BTreeMap<String, Property>,
    new: &BTreeMap<String, Property>,
) -> Vec<Change> {
    let mut out = Vec::new();
    for (name, o) in old {
        let at = format!("{section}.{name}");
        match new.get(name) {
            // Where it was used, the shapes report the removal; here it is only the definition.
            None => out.push(change(Impact::Compatible, &at, "definition removed")),
            Some(n) => out.extend(property(&at, o, n)),
        }
    }
    for name in new.keys().filter(|n| !old.contains_key(*n)) {
        out.push(change(
            Impact::Compatible,
            &format!("{section}.{name}"),
            "defined",
        ));
    }
    out
}

/// The lake column type of a property (every planned column is nullable).
pub fn avro_column(kind: PropertyType) -> Schema {
    let t = match kind {
        PropertyType::String | PropertyType::Object | PropertyType::Array => "string",
        PropertyType::Number => "double",
        PropertyType::Integer => "long",
        PropertyType::Boolean => "boolean",
    };
    let text = format!(
        r#"{{"type":"record","name":"column","fields":[{{"name":"value","type":["null","{t}"],"default":null}}]}}"#
    );
    Schema::parse_str(&text).expect("a fixed, valid schema")
}

/// What changed in one definition.
fn property(at: &str, o: &Property, n: &Property) -> Vec<Change> {
    let (a, b) = (&o.def, &n.def);
    let mut out = Vec::new();
    if a.kind != b.kind {
        let readable =
            SchemaCompatibility::can_read(&avro_column(a.kind), &avro_column(b.kind)).is_ok();
        let what = format!("type {} → {}", a.kind.as_str(), b.kind.as_str());
        // Even a promotion narrows validation the other way (a number is not always an integer):
        // integer → number only widens.
        let widening = a.kind == PropertyType::Integer && b.kind == PropertyType::Number;
        out.push(change(breaking_if(!(readable && widening)), at, what));
    }
    if a.nullable && !b.nullable {
        out.push(change(Impact::Breaking, at, "no longer nullable"));
    }
    out.extend(enum_change(at, a.allowed.as_deref(), b.allowed.as_deref()));
    let narrowed = |what: &str, old: Option<String>, new: Option<String>, narrower: bool| {
        (old != new).then(|| {
            change(
                breaking_if(narrower),
                at,
                format!("{what} {old:?} → {new:?}"),
            )
        })
    };
    let f64s = |x: Option<f64>| x.map(|v| v.to_string());
    let u64s = |x: Option<u64>| x.map(|v| v.to_string());
    out.extend(narrowed(
        "minimum",
        f64s(a.minimum),
        f64s(b.minimum),
        b.minimum.is_some_and(|n| a.minimum.is_none_or(|o| n > o)),
    ));
    out.extend(narrowed(
        "maximum",
        f64s(a.maximum),
        f64s(b.maximum),
        b.maximum.is_some_and(|n| a.maximum.is_none_or(|o| n < o)),
    ));
    out.extend(narrowed(
        "min_length",
        u64s(a.min_length),
        u64s(b.min_length),
        b.min_length
            .is_some_and(|n| a.min_length.is_none_or(|o| n > o)),
    ));
    out.extend(narrowed(
        "max_length",
        u64s(a.max_length),
        u64s(b.max_length),
        b.max_length
            .is_some_and(|n| a.max_length.is_none_or(|o| n < o)),
    ));
    out.extend(narrowed(
        "pattern",
        a.pattern.clone(),
        b.pattern.clone(),
        b.pattern.is_some(),
    ));
    let fmt = |f: Option<super::model::Format>| f.map(|f| f.as_str().to_string());
    out.extend(narrowed(
        "format",
        fmt(a.format),
        fmt(b.format),
        b.format.is_some(),
    ));
    if a.pii.map(|p| p.action) != b.pii.map(|p| p.action) {
        let act = |p: Option<super::model::Pii>| p.map_or("none", |p| p.action.as_str());
        out.push(change(
            Impact::Breaking,
            at,
            format!(
                "PII action {} → {}: the lake's values change meaning",
                act(a.pii),
                act(b.pii)
            ),
        ));
    } else if a.pii != b.pii {
        out.push(change(Impact::Compatible, at, "PII class changed"));
    }
    if a.description != b.description {
        out.push(change(Impact::Compatible, at, "description changed"));
    }
    out
}

fn enum_change(
    at: &str,
    a: Option<&[serde_json::Value]>,
    b: Option<&[serde_json::Value]>,
) -> Option<Change> {
    match (a, b) {
        (None, Some(_)) => Some(change(Impact::Breaking, at, "enum added")),
        (Some(_), None) => Some(change(Impact::Compatible, at, "enum removed")),
        (Some(a), Some(b)) => {
            let removed: Vec<String> = a
                .iter()
                .filter(|v| !b.contains(v))
                .map(|v| v.to_string())
                .collect();
            let added: Vec<String> = b
                .iter()
                .filter(|v| !a.contains(v))
                .map(|v| v.to_string())
                .collect();
            if !removed.is_empty() {
                Some(change(
                    Impact::Breaking,
                    at,
                    format!("enum values removed: {}", removed.join(", ")),
                ))
            } else if !added.is_empty() {
                Some(change(
                    Impact::Compatible,
                    at,
                    format!("enum values added: {}", added.join(", ")),
                ))
            } else {
                None
            }
        }
        (None, None) => None,
    }
}

/// Why a new plan's version does not fit its changes.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum VersionError {
    #[error("version {new} is not above {old} although the plan changed ({changes} changes)")]
    NotRaised {
        old: String,
        new: String,
        changes: usize,
    },
    #[error(
        "{breaking} breaking changes need a new major version: {old} → {new} keeps major {major}"
    )]
    BreakingWithoutMajor {
        old: String,
        new: String,
        major: u64,
        breaking: usize,
    },
    #[error("version {new} is below the previous {old}")]
    Lowered { old: String, new: String },
}

/// Whether `new`'s version fits `changes` (from [`compare`]).
pub fn check_version(old: &Plan, new: &Plan, changes: &[Change]) -> Result<(), VersionError> {
    let (o, n) = (&old.version, &new.version);
    let (os, ns) = (o.to_string(), n.to_string());
    if n < o {
        return Err(VersionError::Lowered { old: os, new: ns });
    }
    let breaking = changes
        .iter()
        .filter(|c| c.impact == Impact::Breaking)
        .count();
    if breaking > 0 && n.major <= o.major {
        return Err(VersionError::BreakingWithoutMajor {
            old: os,
            new: ns,
            major: n.major,
            breaking,
        });
    }
    if !changes.is_empty() && n == o {
        return Err(VersionError::NotRaised {
            old: os,
            new: ns,
            changes: changes.len(),
        });
    }
    Ok(())
}
