//! From the file to a [`Plan`]: every reference resolved, every rule checked for sense.
//!
//! Contract: a [`Plan`] returned here has a semantic version, compiled patterns, bounds that fit
//! their types (`minimum` ≤ `maximum` on numbers, lengths on strings, enum values of the
//! property's type), events with unique names whose properties all name dictionary entries, and
//! consent purposes that are declared. Anything else is a [`PlanError::Invalid`] naming where.

use std::collections::BTreeMap;

use regex::Regex;
use serde_json::Value;

use super::model::{
    ConsentDefault, EventDef, IdentifyDef, Naming, PlanFile, PropertyDef, PropertyType,
    PropertyUse, Status, ViewDef,
};

/// A plan that cannot be used, naming the place.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PlanError {
    #[error("cannot read tracking plan {path}: {error}")]
    Io { path: String, error: String },
    #[error("tracking plan is not valid YAML: {0}")]
    Yaml(String),
    #[error("tracking plan: {at}: {problem}")]
    Invalid { at: String, problem: String },
}

fn invalid(at: impl Into<String>, problem: impl Into<String>) -> PlanError {
    PlanError::Invalid {
        at: at.into(),
        problem: problem.into(),
    }
}

/// A dictionary (or context) entry with its pattern compiled.
#[derive(Debug, Clone)]
pub struct Property {
    pub def: PropertyDef,
    pub pattern: Option<Regex>,
}

/// One field a message kind lists: the dictionary entry of that name, required or not here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FieldRule {
    pub required: bool,
}

/// What one kind of message may carry: a planned track event, identify's traits, page or
/// screen properties.
#[derive(Debug, Clone)]
pub struct Shape {
    /// The event name, or `identify` / `page` / `screen`.
    pub name: String,
    pub description: Option<String>,
    pub owner: Option<String>,
    pub status: Status,
    pub version: u32,
    /// Field name (a key of [`Plan::dictionary`]) → rule.
    pub fields: BTreeMap<String, FieldRule>,
    /// Whether fields not listed are allowed.
    pub additional: bool,
    pub consent: Option<String>,
    pub retention_days: Option<u32>,
    pub kpis: Vec<String>,
}

/// The naming rules, compiled.
#[derive(Debug, Clone, Default)]
pub struct NamingRules {
    pub events: Option<Regex>,
    pub properties: Option<Regex>,
    pub traits: Option<Regex>,
    pub description: Option<String>,
}

/// A validated tracking plan.
#[derive(Debug, Clone)]
pub struct Plan {
    pub id: String,
    pub version: semver::Version,
    pub description: Option<String>,
    pub owner: Option<String>,
    pub naming: NamingRules,
    /// Consent purpose → description.
    pub purposes: BTreeMap<String, String>,
    pub consent_default: ConsentDefault,
    pub dictionary: BTreeMap<String, Property>,
    /// `context` fields by dotted path.
    pub context: BTreeMap<String, Property>,
    /// Each `context` path split into its steps, in the order of [`Plan::context`].
    pub context_steps: Vec<Vec<String>>,
    /// Each consent purpose's path in `context` (`consent.categoryPreferences.<purpose>`).
    pub consent_paths: BTreeMap<String, Vec<String>>,
    /// Planned track events by name.
    pub events: BTreeMap<String, Shape>,
    pub identify: Option<Shape>,
    pub page: Option<Shape>,
    pub screen: Option<Shape>,
}

impl Plan {
    /// Parses and validates a plan.
    pub fn parse(yaml: &str) -> Result<Plan, PlanError> {
        let file: PlanFile =
            serde_yaml_ng::from_str(yaml).map_err(|e| PlanError::Yaml(e.to_string()))?;
        Plan::from_file(file)
    }

    /// Reads, parses and validates the plan at `path`.
    pub fn load(path: &std::path::Path) -> Result<Plan, PlanError> {
        let text = std::fs::read_to_string(path).map_err(|e| PlanError::Io {
            path: path.display().to_string(),
            error: e.to_string(),
        })?;
        Plan::parse(&text)
    }

    fn from_file(file: PlanFile) -> Result<Plan, PlanError> {
        let id = file.plan.id.trim().to_string();
        if id.is_empty() {
            return Err(invalid("plan.id", "is empty"));
        }
        let version = semver::Version::parse(&file.plan.version).map_err(|e| {
            invalid(
                "plan.version",
                format!(
                    "{:?} is not a semantic version (MAJOR.MINOR.PATCH): {e}",
                    file.plan.version
                ),
            )
        })?;
        let dictionary = properties("properties", file.properties)?;
        let context = properties("context", file.context)?;
        if let Some(bad) = context.keys().find(|k| k.split('.').any(str::is_empty)) {
            return Err(invalid(
                format!("context.{bad}"),
                "a context path has an empty step",
            ));
        }
        let purposes = file.consent.purposes;
        let resolver = Resolver {
            dictionary: &dictionary,
            purposes: &purposes,
        };
        let mut events = BTreeMap::new();
        for (i, e) in file.events.into_iter().enumerate() {
            let at = format!("events[{i}] ({:?})", e.name);
            let shape = resolver.event(&at, e)?;
            if let Some(previous) = events.insert(shape.name.clone(), shape) {
                return Err(invalid(
                    at,
                    format!("event {:?} is planned twice", previous.name),
                ));
            }
        }
        Ok(Plan {
            id,
            version,
            description: file.plan.description,
            owner: file.plan.owner,
            naming: naming(file.naming)?,
            consent_default: file
                .consent
                .default_without_consent_info
                .unwrap_or(ConsentDefault::Granted),
            identify: file.identify.map(|d| resolver.identify(d)).transpose()?,
            page: file.page.map(|d| resolver.view("page", d)).transpose()?,
            screen: file
                .screen
                .map(|d| resolver.view("screen", d))
                .transpose()?,
            consent_paths: purposes
                .keys()
                .map(|p| {
                    let steps = ["consent", "categoryPreferences", p.as_str()];
                    (p.clone(), steps.map(str::to_string).to_vec())
                })
                .collect(),
            purposes,
            dictionary,
            context_steps: context
                .keys()
                .map(|p| p.split('.').map(str::to_string).collect())
                .collect(),
            context,
            events,
        })
    }

    /// The dictionary entry a shape's field names.
    pub fn property(&self, name: &str) -> Option<&Property> {
        self.dictionary.get(name)
    }

    /// Every shape: planned events in name order, then identify, page, screen.
    pub fn shapes(&self) -> impl Iterator<Item = &Shape> {
        self.events
            .values()
            .chain(self.identify.iter())
            .chain(self.page.iter())
            .chain(self.screen.iter())
    }
}

fn regex(at: &str, pattern: &str) -> Result<Regex, PlanError> {
    Regex::new(pattern)
        .map_err(|e| invalid(at, format!("pattern {pattern:?} does not compile: {e}")))
}

fn naming(n: Naming) -> Result<NamingRules, PlanError> {
    let compile = |at: &str, p: &Option<String>| p.as_deref().map(|p| regex(at, p)).transpose();
    Ok(NamingRules {
        events: compile("naming.events", &n.events)?,
        properties: compile("naming.properties", &n.properties)?,
        traits: compile("naming.traits", &n.traits)?,
        description: n.description,
    })
}

fn properties(
    section: &str,
    defs: BTreeMap<String, PropertyDef>,
) -> Result<BTreeMap<String, Property>, PlanError> {
    defs.into_iter()
        .map(|(name, def)| {
            let at = format!("{section}.{name}");
            if name.trim().is_empty() {
                return Err(invalid(section, "a property has an empty name"));
            }
            let pattern = check_property(&at, &def)?;
            Ok((name, Property { def, pattern }))
        })
        .collect()
}

/// Checks that a definition's rules fit its type; returns its compiled pattern.
fn check_property(at: &str, def: &PropertyDef) -> Result<Option<Regex>, PlanError> {
    let numeric = matches!(def.kind, PropertyType::Number | PropertyType::Integer);
    let string = def.kind == PropertyType::String;
    let kind = def.kind.as_str();
    if (def.minimum.is_some() || def.maximum.is_some()) && !numeric {
        return Err(invalid(
            at,
            format!("minimum/maximum apply to numbers, not to a {kind}"),
        ));
    }
    if let (Some(lo), Some(hi)) = (def.minimum, def.maximum) {
        if lo > hi {
            return Err(invalid(at, format!("minimum {lo} is above maximum {hi}")));
        }
    }
    let lengths = def.min_length.is_some() || def.max_length.is_some();
    if (lengths || def.pattern.is_some() || def.format.is_some()) && !string {
        return Err(invalid(
            at,
            format!("pattern, format and lengths apply to strings, not to a {kind}"),
        ));
    }
    if let (Some(lo), Some(hi)) = (def.min_length, def.max_length) {
        if lo > hi {
            return Err(invalid(
                at,
                format!("min_length {lo} is above max_length {hi}"),
            ));
        }
    }
    if let Some(values) = &def.allowed {
        check_enum(at, def, values)?;
    }
    def.pattern.as_deref().map(|p| regex(at, p)).transpose()
}

fn check_enum(at: &str, def: &PropertyDef, values: &[Value]) -> Result<(), PlanError> {
    if values.is_empty() {
        return Err(invalid(at, "enum is empty: no value could ever be valid"));
    }
    if let Some(v) = values.iter().find(|v| !def.kind.admits(v)) {
        return Err(invalid(
            at,
            format!("enum value {v} is not a {}", def.kind.as_str()),
        ));
    }
    for (i, v) in values.iter().enumerate() {
        if values[..i].contains(v) {
            return Err(invalid(at, format!("enum value {v} is listed twice")));
        }
    }
    Ok(())
}

/// Resolves the fields and consent purposes of message kinds against the dictionary.
struct Resolver<'a> {
    dictionary: &'a BTreeMap<String, Property>,
    purposes: &'a BTreeMap<String, String>,
}

impl Resolver<'_> {
    fn fields(
        &self,
        at: &str,
        uses: BTreeMap<String, Option<PropertyUse>>,
    ) -> Result<BTreeMap<String, FieldRule>, PlanError> {
        uses.into_iter()
            .map(|(name, usage)| {
                let Some(p) = self.dictionary.get(&name) else {
                    return Err(invalid(
                        format!("{at}.{name}"),
                        "is not in the property dictionary (`properties:`); define it there first",
                    ));
                };
                let required = usage.and_then(|u| u.required).unwrap_or(p.def.required);
                Ok((name, FieldRule { required }))
            })
            .collect()
    }

    fn consent(&self, at: &str, purpose: Option<String>) -> Result<Option<String>, PlanError> {
        match purpose {
            Some(p) if !self.purposes.contains_key(&p) => Err(invalid(
                format!("{at}.consent"),
                format!("purpose {p:?} is not declared under consent.purposes"),
            )),
            other => Ok(other),
        }
    }

    fn retention(at: &str, days: Option<u32>) -> Result<Option<u32>, PlanError> {
        if days == Some(0) {
            return Err(invalid(
                format!("{at}.retention_days"),
                "must be at least 1",
            ));
        }
        Ok(days)
    }

    fn event(&self, at: &str, e: EventDef) -> Result<Shape, PlanError> {
        if e.name.trim().is_empty() {
            return Err(invalid(at, "an event has an empty name"));
        }
        Ok(Shape {
            fields: self.fields(&format!("{at}.properties"), e.properties)?,
            consent: self.consent(at, e.consent)?,
            retention_days: Self::retention(at, e.retention_days)?,
            name: e.name,
            description: Some(e.description),
            owner: Some(e.owner),
            status: e.status,
            version: e.version,
            additional: e.additional_properties,
            kpis: e.kpis,
        })
    }

    fn identify(&self, d: IdentifyDef) -> Result<Shape, PlanError> {
        Ok(Shape {
            fields: self.fields("identify.traits", d.traits)?,
            consent: self.consent("identify", d.consent)?,
            retention_days: Self::retention("identify", d.retention_days)?,
            additional: d.additional_traits,
            ..Shape::kind("identify", d.description)
        })
    }

    fn view(&self, kind: &str, d: ViewDef) -> Result<Shape, PlanError> {
        Ok(Shape {
            fields: self.fields(&format!("{kind}.properties"), d.properties)?,
            consent: self.consent(kind, d.consent)?,
            retention_days: Self::retention(kind, d.retention_days)?,
            additional: d.additional_properties,
            ..Shape::kind(kind, d.description)
        })
    }
}

impl Shape {
    fn kind(name: &str, description: Option<String>) -> Shape {
        Shape {
            name: name.to_string(),
            description,
            owner: None,
            status: Status::Active,
            version: 1,
            fields: BTreeMap::new(),
            additional: false,
            consent: None,
            retention_days: None,
            kpis: Vec::new(),
        }
    }
}
