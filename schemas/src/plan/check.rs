//! An event's properties, traits and context checked against the plan: every problem at once,
//! each with its path, the rule, what was expected and what was found.
//!
//! Contract: pure (no IO), deterministic, and never lossy — [`Plan::check`] reports, it never
//! changes the event; the caller's policies decide what a [`Violation`] does (allow, flag,
//! quarantine). Values of properties classed as PII never appear in a violation's `actual` (only
//! their JSON type does), so a violation can be logged, counted or dead-lettered without copying
//! personal data. Undeclared `context` fields are not violations (SDKs add their own); declared
//! ones are checked like properties. Group and alias messages have no shape and pass.
//! - Naming: a track event the plan does not define whose name breaks `naming.events`, and a
//!   property or trait the shape does not list whose name breaks `naming.properties` /
//!   `naming.traits`, are [`ViolationKind::InvalidName`] (a typo such as `signed_up`), in place
//!   of `unknown_event` / `unknown_property`; the rest of an unknown event is not checked.
//! - A value of a property the plan hashes that is already a keyed hash
//!   (`hmac-sha256:v<n>:<hex>`, see [`super::pii`]) is accepted as it is: an event the processor
//!   pseudonymised and then dead-lettered can be replayed.

use std::borrow::Cow;
use std::fmt;

use super::model::{Format, PropertyType};
use super::parse::{Plan, Property, Shape};
use crate::json_path::{lookup_raw, top_level};
use crate::EventType;

/// What rule a value broke. The names are stable: metric labels, dead-letter fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ViolationKind {
    /// A track event whose name the plan does not define.
    UnknownEvent,
    /// A property (trait) the shape does not list, where no others are allowed.
    UnknownProperty,
    MissingProperty,
    WrongType,
    NullNotAllowed,
    NotInEnum,
    BelowMinimum,
    AboveMaximum,
    TooShort,
    TooLong,
    PatternMismatch,
    InvalidFormat,
    /// The part (`properties`, `traits`, `context`) is not a JSON object.
    NotAnObject,
    /// An unplanned event, property or trait whose name breaks the plan's naming rules.
    InvalidName,
}

impl ViolationKind {
    pub const ALL: [ViolationKind; 14] = [
        ViolationKind::UnknownEvent,
        ViolationKind::UnknownProperty,
        ViolationKind::MissingProperty,
        ViolationKind::WrongType,
        ViolationKind::NullNotAllowed,
        ViolationKind::NotInEnum,
        ViolationKind::BelowMinimum,
        ViolationKind::AboveMaximum,
        ViolationKind::TooShort,
        ViolationKind::TooLong,
        ViolationKind::PatternMismatch,
        ViolationKind::InvalidFormat,
        ViolationKind::NotAnObject,
        ViolationKind::InvalidName,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ViolationKind::UnknownEvent => "unknown_event",
            ViolationKind::UnknownProperty => "unknown_property",
            ViolationKind::MissingProperty => "missing_property",
            ViolationKind::WrongType => "wrong_type",
            ViolationKind::NullNotAllowed => "null_not_allowed",
            ViolationKind::NotInEnum => "not_in_enum",
            ViolationKind::BelowMinimum => "below_minimum",
            ViolationKind::AboveMaximum => "above_maximum",
            ViolationKind::TooShort => "too_short",
            ViolationKind::TooLong => "too_long",
            ViolationKind::PatternMismatch => "pattern_mismatch",
            ViolationKind::InvalidFormat => "invalid_format",
            ViolationKind::NotAnObject => "not_an_object",
            ViolationKind::InvalidName => "invalid_name",
        }
    }

    /// Which of the processor's four policies applies: `unknown_event`, `unknown_property`,
    /// `naming`, or `violation` for everything else.
    pub fn policy_class(self) -> PolicyClass {
        match self {
            ViolationKind::UnknownEvent => PolicyClass::UnknownEvent,
            ViolationKind::UnknownProperty => PolicyClass::UnknownProperty,
            ViolationKind::InvalidName => PolicyClass::Naming,
            _ => PolicyClass::Violation,
        }
    }
}

/// The four kinds of problems a policy is configured for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PolicyClass {
    UnknownEvent,
    UnknownProperty,
    Naming,
    Violation,
}

/// One problem with one value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    pub kind: ViolationKind,
    /// Where: `properties.revenue`, `traits.email`, `context.os.name`, `event`.
    pub path: String,
    /// The rule as written in the plan: `type: number`, `enum`, `maximum: 100`.
    pub rule: String,
    pub expected: String,
    /// What was found: the value (shortened), or only its JSON type for PII.
    pub actual: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {} ({}): expected {}, got {}",
            self.path,
            self.kind.as_str(),
            self.rule,
            self.expected,
            self.actual
        )
    }
}

impl Violation {
    /// The violation as one problem of a failure record.
    pub fn to_problem(&self) -> crate::failure::Problem {
        crate::failure::Problem {
            reason: self.kind.as_str().to_string(),
            path: self.path.clone(),
            rule: self.rule.clone(),
            expected: self.expected.clone(),
            actual: self.actual.clone(),
        }
    }
}

/// The result of checking one event.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Checked<'p> {
    /// The shape the event was checked against (`None`: unknown event, or a kind without one).
    pub shape: Option<&'p str>,
    pub violations: Vec<Violation>,
}

/// Longest value text shown in a violation.
const SHOWN: usize = 64;

impl Plan {
    /// Checks one event's JSON parts against the plan. Allocates nothing for a valid event
    /// beyond the list of its top-level properties.
    pub fn check(
        &self,
        kind: EventType,
        name: Option<&str>,
        properties: &str,
        traits: &str,
        context: &str,
    ) -> Checked<'_> {
        let mut out = Checked::default();
        let found = match kind {
            EventType::Track => {
                let name = name.unwrap_or("");
                match self.events.get(name) {
                    Some(s) => Some((s, "properties", properties)),
                    None => {
                        out.violations.push(match &self.naming.events {
                            Some(re) if !re.is_match(name) => {
                                invalid_name("event", "naming.events", re, name)
                            }
                            _ => unknown_event(name),
                        });
                        None
                    }
                }
            }
            EventType::Identify => self.identify.as_ref().map(|s| (s, "traits", traits)),
            EventType::Page => self.page.as_ref().map(|s| (s, "properties", properties)),
            EventType::Screen => self.screen.as_ref().map(|s| (s, "properties", properties)),
            EventType::Group | EventType::Alias => None,
        };
        if let Some((shape, part, text)) = found {
            out.shape = Some(shape.name.as_str());
            self.check_shape(shape, part, text, &mut out.violations);
        }
        self.check_context(context, &mut out.violations);
        out
    }

    fn check_shape(&self, shape: &Shape, part: &str, text: &str, out: &mut Vec<Violation>) {
        let Some(entries) = top_level(text) else {
            out.push(not_an_object(part, text));
            return;
        };
        let naming = match part {
            "traits" => (&self.naming.traits, "naming.traits"),
            _ => (&self.naming.properties, "naming.properties"),
        };
        for (key, raw) in &entries {
            match (
                shape.fields.get(key.as_ref()),
                self.dictionary.get(key.as_ref()),
            ) {
                (Some(_), Some(p)) => check_value(p, (part, key), raw.get().trim(), out),
                _ => match naming.0 {
                    Some(re) if !re.is_match(key) => {
                        let path = format!("{part}.{key}");
                        out.push(invalid_name(&path, naming.1, re, key));
                    }
                    _ if shape.additional => {}
                    _ => out.push(unknown_property(&shape.name, format!("{part}.{key}"))),
                },
            }
        }
        for (name, rule) in &shape.fields {
            if rule.required && !entries.iter().any(|(k, _)| k == name) {
                out.push(Violation {
                    kind: ViolationKind::MissingProperty,
                    path: format!("{part}.{name}"),
                    rule: "required".into(),
                    expected: "present".into(),
                    actual: "absent".into(),
                });
            }
        }
    }

    fn check_context(&self, context: &str, out: &mut Vec<Violation>) {
        for ((path, p), steps) in self.context.iter().zip(&self.context_steps) {
            if let Some(raw) = lookup_raw(context, steps) {
                check_value(p, ("context", path), raw, out);
            }
        }
    }
}

fn unknown_event(name: &str) -> Violation {
    Violation {
        kind: ViolationKind::UnknownEvent,
        path: "event".into(),
        rule: "events".into(),
        expected: "an event the plan defines".into(),
        actual: shorten(&format!("{name:?}")),
    }
}

fn invalid_name(path: &str, rule: &str, re: &regex::Regex, name: &str) -> Violation {
    Violation {
        kind: ViolationKind::InvalidName,
        path: path.into(),
        rule: format!("{rule}: {}", re.as_str()),
        expected: format!("a name matching {}", re.as_str()),
        actual: shorten(&format!("{name:?}")),
    }
}

fn unknown_property(shape: &str, path: String) -> Violation {
    Violation {
        kind: ViolationKind::UnknownProperty,
        path,
        rule: "additional_properties: false".into(),
        expected: format!("only the properties {shape:?} lists"),
        actual: "present".into(),
    }
}

fn not_an_object(part: &str, text: &str) -> Violation {
    Violation {
        kind: ViolationKind::NotAnObject,
        path: part.into(),
        rule: "type: object".into(),
        expected: "a JSON object".into(),
        actual: json_type(text.trim()).into(),
    }
}

/// The JSON type of a value's text.
fn json_type(raw: &str) -> &'static str {
    match raw.as_bytes().first() {
        Some(b'"') => "string",
        Some(b'{') => "object",
        Some(b'[') => "array",
        Some(b't' | b'f') => "boolean",
        Some(b'n') => "null",
        Some(_) => "number",
        None => "nothing",
    }
}

fn shorten(text: &str) -> String {
    if text.len() <= SHOWN {
        return text.to_string();
    }
    let mut end = SHOWN;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

/// A value read from its JSON text without building a `serde_json::Value` (strings borrowed
/// when they have no escapes).
enum Scalar<'a> {
    Null,
    Bool(bool),
    Number(f64),
    Str(Cow<'a, str>),
    Object,
    Array,
}

impl<'a> Scalar<'a> {
    /// `None` when the text is not a JSON value (the envelope's validation refused those).
    fn read(raw: &'a str) -> Option<Scalar<'a>> {
        Some(match raw.as_bytes().first()? {
            b'n' => Scalar::Null,
            b't' => Scalar::Bool(true),
            b'f' => Scalar::Bool(false),
            b'{' => Scalar::Object,
            b'[' => Scalar::Array,
            b'"' => match raw.get(1..raw.len() - 1) {
                Some(inner) if !inner.contains('\\') => Scalar::Str(Cow::Borrowed(inner)),
                _ => Scalar::Str(Cow::Owned(serde_json::from_str::<String>(raw).ok()?)),
            },
            _ => Scalar::Number(raw.parse::<f64>().ok().filter(|n| n.is_finite())?),
        })
    }

    fn admitted_by(&self, kind: PropertyType) -> bool {
        match (kind, self) {
            (PropertyType::String, Scalar::Str(_)) => true,
            (PropertyType::Number, Scalar::Number(_)) => true,
            (PropertyType::Integer, Scalar::Number(n)) => n.fract() == 0.0,
            (PropertyType::Boolean, Scalar::Bool(_)) => true,
            (PropertyType::Object, Scalar::Object) => true,
            (PropertyType::Array, Scalar::Array) => true,
            _ => false,
        }
    }

    /// Whether the value is one of `allowed` (numbers by value: 1 and 1.0 are the same).
    fn in_enum(&self, allowed: &[serde_json::Value], raw: &str) -> bool {
        match self {
            Scalar::Str(s) => allowed.iter().any(|a| a.as_str() == Some(s.as_ref())),
            Scalar::Number(n) => allowed.iter().any(|a| a.as_f64() == Some(*n)),
            Scalar::Bool(b) => allowed.iter().any(|a| a.as_bool() == Some(*b)),
            Scalar::Null => allowed.iter().any(serde_json::Value::is_null),
            Scalar::Object | Scalar::Array => {
                serde_json::from_str::<serde_json::Value>(raw).is_ok_and(|v| allowed.contains(&v))
            }
        }
    }
}

/// Where a value is: the part (`properties`, `traits`, `context`) and the name or path in it;
/// joined only when a violation names it.
type At<'a> = (&'a str, &'a str);

/// Checks one value (its JSON text) against its definition.
fn check_value(p: &Property, at: At<'_>, raw: &str, out: &mut Vec<Violation>) {
    let d = &p.def;
    let Some(value) = Scalar::read(raw) else {
        return;
    };
    let hashed = d
        .pii
        .is_some_and(|x| x.action == super::model::PiiAction::Hash);
    if hashed && matches!(&value, Scalar::Str(s) if super::pii::is_keyed_hash(s)) {
        return;
    }
    let v = |kind, rule: String, expected: String| Violation {
        kind,
        path: format!("{}.{}", at.0, at.1),
        rule,
        expected,
        actual: if d.pii.is_some() {
            format!("a {} (PII, not shown)", json_type(raw))
        } else {
            shorten(raw)
        },
    };
    if let Scalar::Null = value {
        if !d.nullable {
            out.push(v(
                ViolationKind::NullNotAllowed,
                "nullable: false".into(),
                "a value".into(),
            ));
        }
        return;
    }
    if !value.admitted_by(d.kind) {
        let expected = format!("a {}", d.kind.as_str());
        out.push(v(
            ViolationKind::WrongType,
            format!("type: {}", d.kind.as_str()),
            expected,
        ));
        return;
    }
    if let Some(allowed) = d.allowed.as_deref().filter(|a| !value.in_enum(a, raw)) {
        let list: Vec<String> = allowed.iter().map(|a| a.to_string()).collect();
        out.push(v(
            ViolationKind::NotInEnum,
            "enum".into(),
            format!("one of {}", list.join(", ")),
        ));
    }
    match &value {
        Scalar::Number(n) => check_bounds(d.minimum, d.maximum, *n, &v, out),
        Scalar::Str(s) => check_string(p, s, &v, out),
        _ => {}
    }
}

type Make<'a> = dyn Fn(ViolationKind, String, String) -> Violation + 'a;

fn check_bounds(
    min: Option<f64>,
    max: Option<f64>,
    n: f64,
    v: &Make<'_>,
    out: &mut Vec<Violation>,
) {
    if let Some(m) = min.filter(|m| n < *m) {
        out.push(v(
            ViolationKind::BelowMinimum,
            format!("minimum: {m}"),
            format!("≥ {m}"),
        ));
    }
    if let Some(m) = max.filter(|m| n > *m) {
        out.push(v(
            ViolationKind::AboveMaximum,
            format!("maximum: {m}"),
            format!("≤ {m}"),
        ));
    }
}

fn check_string(p: &Property, s: &str, v: &Make<'_>, out: &mut Vec<Violation>) {
    let d = &p.def;
    if d.min_length.is_some() || d.max_length.is_some() {
        let len = s.chars().count() as u64;
        if let Some(m) = d.min_length.filter(|m| len < *m) {
            out.push(v(
                ViolationKind::TooShort,
                format!("min_length: {m}"),
                format!("at least {m} characters"),
            ));
        }
        if let Some(m) = d.max_length.filter(|m| len > *m) {
            out.push(v(
                ViolationKind::TooLong,
                format!("max_length: {m}"),
                format!("at most {m} characters"),
            ));
        }
    }
    if let Some(re) = p.pattern.as_ref().filter(|re| !re.is_match(s)) {
        out.push(v(
            ViolationKind::PatternMismatch,
            format!("pattern: {}", re.as_str()),
            format!("a match of {}", re.as_str()),
        ));
    }
    if let Some(f) = d.format.filter(|f| !format_holds(*f, s)) {
        out.push(v(
            ViolationKind::InvalidFormat,
            format!("format: {}", f.as_str()),
            format!("a valid {}", f.as_str()),
        ));
    }
}

/// Whether `s` has the format (the checks a pipeline can afford: shape, not deliverability).
pub fn format_holds(f: Format, s: &str) -> bool {
    match f {
        Format::Email => s.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty()
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
                && !s.contains(char::is_whitespace)
        }),
        Format::Uri => url::Url::parse(s).is_ok(),
        Format::DateTime => chrono::DateTime::parse_from_rfc3339(s).is_ok(),
        Format::Date => chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").is_ok(),
        Format::Uuid => is_uuid(s),
    }
}

fn is_uuid(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 36
        && b.iter().enumerate().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => *c == b'-',
            _ => c.is_ascii_hexdigit(),
        })
}

impl Plan {
    /// Whether the event may be kept for its shape's consent purpose: the purpose's value in
    /// `context.consent.categoryPreferences` (Segment's shape: `{"analytics": true, …}`), else
    /// the plan's `consent.default_without_consent_info`. `None`: the shape has no purpose, or
    /// the event no planned shape.
    pub fn consent<'p, 'c>(
        &'p self,
        kind: EventType,
        name: Option<&str>,
        context: &'c str,
    ) -> Option<Consent<'p, 'c>> {
        let shape = match kind {
            EventType::Track => self.events.get(name?),
            EventType::Identify => self.identify.as_ref(),
            EventType::Page => self.page.as_ref(),
            EventType::Screen => self.screen.as_ref(),
            EventType::Group | EventType::Alias => None,
        }?;
        let purpose = shape.consent.as_deref()?;
        let path = self.consent_paths.get(purpose)?;
        let said = lookup_raw(context, path);
        let given = match said {
            Some("true") => true,
            Some(_) => false, // false, or anything that is not an explicit yes
            None => self.consent_default == super::model::ConsentDefault::Granted,
        };
        Some(Consent {
            purpose,
            given,
            said,
        })
    }
}

/// An event's consent for its purpose.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Consent<'p, 'c> {
    pub purpose: &'p str,
    pub given: bool,
    /// The JSON text found at the purpose's path (`None`: absent, the default applied).
    pub said: Option<&'c str>,
}
