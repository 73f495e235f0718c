//! Evaluating catalog filters, segment values and numeric fields on one event.
//!
//! Contract: pure; each JSON path is looked up at most once per event ([`EventView`]), and
//! only if a KPI reads it. Missing or mistyped fields never fail: a predicate on them is
//! false, a segment value is `__none__`, a sum skips them. A client's segment value never reads
//! as one of the markers `__other__`, `__none__`, `__all__` ([`escape_value`]).

use std::borrow::Cow;

use northstar_schemas::Event;
use serde_json::Value;

use northstar_schemas::catalog::{escape_value, FieldPath, Filter, JsonPart, Op, Predicate, NONE};

use northstar_schemas::json_path;

/// An event with the values of the field paths read so far (each JSON path is looked up once
/// per event, by scanning the JSON text without building the parts it does not need; values
/// are kept as slices of the event's JSON text).
#[derive(Debug)]
pub struct EventView<'a> {
    pub event: &'a Event,
    cache: Vec<(&'a FieldPath, Option<&'a str>)>,
}

/// A field's value as read for segments and sums, borrowed from the event where possible.
#[derive(Debug, Clone, PartialEq)]
pub enum Scalar<'a> {
    Str(Cow<'a, str>),
    /// A JSON number, as written.
    Num(&'a str),
    Bool(bool),
    /// An object or an array.
    Composite,
}

impl<'a> EventView<'a> {
    pub fn new(event: &'a Event) -> Self {
        Self {
            event,
            cache: Vec::new(),
        }
    }

    fn envelope(&self, f: &str) -> Option<&'a str> {
        let e = self.event;
        match f {
            "type" => Some(e.kind.as_str()),
            "event" => Some(e.event_name()),
            "name" => e.name.as_deref(),
            "userId" => e.user_id.as_deref(),
            "anonymousId" => e.anonymous_id.as_deref(),
            "groupId" => e.group_id.as_deref(),
            "sourceId" => Some(e.source_id.as_str()),
            "distinctId" => e.distinct_id(),
            _ => None,
        }
    }

    /// The JSON text of a JSON field (`None` when missing or null).
    fn raw(&mut self, field: &'a FieldPath, part: JsonPart, path: &[String]) -> Option<&'a str> {
        if let Some((_, v)) = self.cache.iter().find(|(f, _)| *f == field) {
            return *v;
        }
        let text = match part {
            JsonPart::Properties => &self.event.properties,
            JsonPart::Context => &self.event.context,
            JsonPart::Traits => &self.event.traits,
        };
        let v = json_path::lookup_raw(text, path);
        self.cache.push((field, v));
        v
    }

    /// The value at `field`, if present and not null.
    pub fn get(&mut self, field: &'a FieldPath) -> Option<Value> {
        match field {
            FieldPath::Envelope(f) => self.envelope(f).map(|s| Value::String(s.to_string())),
            FieldPath::Json { part, path } => self
                .raw(field, *part, path)
                .and_then(|raw| serde_json::from_str(raw).ok()),
        }
    }

    /// The value at `field` for segments and sums, if present and not null.
    pub fn scalar(&mut self, field: &'a FieldPath) -> Option<Scalar<'a>> {
        let raw = match field {
            FieldPath::Envelope(f) => return self.envelope(f).map(|s| Scalar::Str(s.into())),
            FieldPath::Json { part, path } => self.raw(field, *part, path)?,
        };
        Some(match raw.as_bytes().first()? {
            b'"' => match raw.get(1..raw.len() - 1) {
                Some(inner) if !inner.contains('\\') => Scalar::Str(Cow::Borrowed(inner)),
                _ => Scalar::Str(Cow::Owned(serde_json::from_str(raw).ok()?)),
            },
            b't' => Scalar::Bool(true),
            b'f' => Scalar::Bool(false),
            b'{' | b'[' => Scalar::Composite,
            _ => Scalar::Num(raw),
        })
    }

    /// The text of a segment dimension's value (`__none__` when missing or not a scalar).
    /// Numbers read as serde_json prints them (`1.50` → `1.5`).
    pub fn segment_value(&mut self, field: &'a FieldPath) -> Cow<'a, str> {
        match self.scalar(field) {
            Some(Scalar::Str(Cow::Borrowed(s))) => escape_value(s),
            Some(Scalar::Str(Cow::Owned(s))) => Cow::Owned(escape_value(&s).into_owned()),
            Some(Scalar::Bool(b)) => Cow::Borrowed(if b { "true" } else { "false" }),
            // Plain non-negative integers print as written; other numbers are rare here.
            Some(Scalar::Num(n)) if n.parse::<u64>().is_ok() => Cow::Borrowed(n),
            Some(Scalar::Num(n)) => match serde_json::from_str::<Value>(n) {
                Ok(v @ Value::Number(_)) => Cow::Owned(v.to_string()),
                _ => Cow::Borrowed(NONE),
            },
            Some(Scalar::Composite) | None => Cow::Borrowed(NONE),
        }
    }
}

fn as_f64(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

/// Applying a catalog filter to an event.
pub trait Matches {
    /// Whether the event counts.
    fn matches<'a>(&'a self, view: &mut EventView<'a>) -> bool;
}

impl Matches for Filter {
    fn matches<'a>(&'a self, view: &mut EventView<'a>) -> bool {
        if !self.types.is_empty() && !self.types.contains(&view.event.kind) {
            return false;
        }
        if !self.events.is_empty() && !self.events.iter().any(|e| e == view.event.event_name()) {
            return false;
        }
        self.predicates.iter().all(|p| holds(p, view))
    }
}

/// Whether one predicate holds for the event.
fn holds<'a>(p: &'a Predicate, view: &mut EventView<'a>) -> bool {
    let actual = view.get(&p.field);
    match p.op {
        Op::Exists => actual.is_some(),
        Op::Eq => actual.as_ref() == Some(&p.value) || loosely_equal(actual.as_ref(), &p.value),
        Op::Ne => !(actual.as_ref() == Some(&p.value) || loosely_equal(actual.as_ref(), &p.value)),
        Op::In => p.value.as_array().is_some_and(|vs| {
            vs.iter()
                .any(|v| actual.as_ref() == Some(v) || loosely_equal(actual.as_ref(), v))
        }),
        Op::Gt | Op::Gte | Op::Lt | Op::Lte => {
            let (Some(a), Some(b)) = (actual.as_ref().and_then(as_f64), as_f64(&p.value)) else {
                return false;
            };
            match p.op {
                Op::Gt => a > b,
                Op::Gte => a >= b,
                Op::Lt => a < b,
                _ => a <= b,
            }
        }
    }
}

/// Numbers compare by value (`1` equals `1.0`).
fn loosely_equal(actual: Option<&Value>, expected: &Value) -> bool {
    match (actual.and_then(as_f64), expected) {
        (Some(a), Value::Number(b)) => b.as_f64() == Some(a),
        _ => false,
    }
}

/// Reads a numeric field as fixed point with 6 decimal places (exact for decimal inputs with at
/// most 6 decimals); `None` when missing or not a number.
pub fn fixed_point(v: &Value) -> Option<i128> {
    match v {
        Value::Number(n) => parse_fixed(&n.to_string()),
        Value::String(s) => parse_fixed(s.trim()),
        _ => None,
    }
}

/// [`fixed_point`] of a field read by [`EventView::scalar`]: a number is read from its JSON
/// text, so no digit is lost to binary floating point on the way.
pub fn scalar_fixed_point(v: &Scalar<'_>) -> Option<i128> {
    match v {
        Scalar::Num(n) => parse_fixed(n),
        Scalar::Str(s) => parse_fixed(s.trim()),
        _ => None,
    }
}

fn parse_fixed(text: &str) -> Option<i128> {
    // Exponent forms go through f64 (rare in event payloads).
    if text.contains(['e', 'E']) {
        let f: f64 = text.parse().ok()?;
        return f.is_finite().then(|| (f * 1e6).round() as i128);
    }
    let (neg, digits) = match text.strip_prefix('-') {
        Some(d) => (true, d),
        None => (false, text.strip_prefix('+').unwrap_or(text)),
    };
    let (int, frac) = digits.split_once('.').unwrap_or((digits, ""));
    if int.is_empty() && frac.is_empty()
        || !int.bytes().all(|c| c.is_ascii_digit())
        || !frac.bytes().all(|c| c.is_ascii_digit())
    {
        return None;
    }
    let int_v: i128 = if int.is_empty() { 0 } else { int.parse().ok()? };
    // The first six decimals, right-padded with zeros.
    let frac6 = (0..6).fold(0_i128, |acc, i| {
        acc * 10 + frac.as_bytes().get(i).map_or(0, |d| i128::from(d - b'0'))
    });
    let mut v = int_v.checked_mul(1_000_000)?.checked_add(frac6)?;
    // Round half away from zero on the 7th decimal.
    if frac.len() > 6 && frac.as_bytes()[6] >= b'5' {
        v += 1;
    }
    Some(if neg { -v } else { v })
}

/// Fixed point (6 decimals) → the nearest f64 (through its decimal text, so correctly rounded).
pub fn fixed_to_f64(v: i128) -> f64 {
    let sign = if v < 0 { "-" } else { "" };
    let a = v.unsigned_abs();
    format!("{sign}{}.{:06}", a / 1_000_000, a % 1_000_000)
        .parse()
        .unwrap_or(0.0)
}
