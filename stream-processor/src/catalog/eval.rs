//! Evaluating catalog filters, segment values and numeric fields on one event.
//!
//! Contract: pure; each JSON path is looked up at most once per event ([`EventView`]), and
//! only if a KPI reads it. Missing or mistyped fields never fail: a predicate on them is
//! false, a segment value is `__none__`, a sum skips them.

use northstar_schemas::Event;
use serde_json::Value;

use super::json_path;
use super::model::{FieldPath, Filter, JsonPart, Op, Predicate, NONE};

/// An event with the values of the field paths read so far (each JSON path is looked up once
/// per event, by scanning the JSON text without building the parts it does not need).
#[derive(Debug)]
pub struct EventView<'a> {
    pub event: &'a Event,
    cache: Vec<(&'a FieldPath, Option<Value>)>,
}

impl<'a> EventView<'a> {
    pub fn new(event: &'a Event) -> Self {
        Self {
            event,
            cache: Vec::new(),
        }
    }

    /// The value at `field`, if present and not null.
    pub fn get(&mut self, field: &'a FieldPath) -> Option<Value> {
        match field {
            FieldPath::Envelope(f) => {
                let e = self.event;
                let s: Option<&str> = match *f {
                    "type" => Some(e.kind.as_str()),
                    "event" => Some(e.event_name()),
                    "name" => e.name.as_deref(),
                    "userId" => e.user_id.as_deref(),
                    "anonymousId" => e.anonymous_id.as_deref(),
                    "groupId" => e.group_id.as_deref(),
                    "sourceId" => Some(e.source_id.as_str()),
                    "distinctId" => e.distinct_id(),
                    _ => None,
                };
                s.map(|s| Value::String(s.to_string()))
            }
            FieldPath::Json { part, path } => {
                if let Some((_, v)) = self.cache.iter().find(|(f, _)| *f == field) {
                    return v.clone();
                }
                let text = match part {
                    JsonPart::Properties => &self.event.properties,
                    JsonPart::Context => &self.event.context,
                    JsonPart::Traits => &self.event.traits,
                };
                let v = json_path::lookup(text, path).filter(|v| !v.is_null());
                self.cache.push((field, v.clone()));
                v
            }
        }
    }

    /// The text of a segment dimension's value (`__none__` when missing or not a scalar).
    pub fn segment_value(&mut self, field: &'a FieldPath) -> String {
        match self.get(field) {
            Some(Value::String(s)) => s,
            Some(Value::Bool(b)) => b.to_string(),
            Some(Value::Number(n)) => n.to_string(),
            _ => NONE.to_string(),
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

impl Filter {
    /// Whether the event counts.
    pub fn matches<'a>(&'a self, view: &mut EventView<'a>) -> bool {
        if !self.types.is_empty() && !self.types.contains(&view.event.kind) {
            return false;
        }
        if !self.events.is_empty() && !self.events.iter().any(|e| e == view.event.event_name()) {
            return false;
        }
        self.predicates.iter().all(|p| p.holds(view))
    }
}

impl Predicate {
    fn holds<'a>(&'a self, view: &mut EventView<'a>) -> bool {
        let actual = view.get(&self.field);
        match self.op {
            Op::Exists => actual.is_some(),
            Op::Eq => {
                actual.as_ref() == Some(&self.value) || loosely_equal(actual.as_ref(), &self.value)
            }
            Op::Ne => {
                !(actual.as_ref() == Some(&self.value)
                    || loosely_equal(actual.as_ref(), &self.value))
            }
            Op::In => self.value.as_array().is_some_and(|vs| {
                vs.iter()
                    .any(|v| actual.as_ref() == Some(v) || loosely_equal(actual.as_ref(), v))
            }),
            Op::Gt | Op::Gte | Op::Lt | Op::Lte => {
                let (Some(a), Some(b)) = (actual.as_ref().and_then(as_f64), as_f64(&self.value))
                else {
                    return false;
                };
                match self.op {
                    Op::Gt => a > b,
                    Op::Gte => a >= b,
                    Op::Lt => a < b,
                    _ => a <= b,
                }
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
    let text = match v {
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.trim().to_string(),
        _ => return None,
    };
    parse_fixed(&text)
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
        || !int.chars().all(|c| c.is_ascii_digit())
        || !frac.chars().all(|c| c.is_ascii_digit())
    {
        return None;
    }
    let int_v: i128 = if int.is_empty() { 0 } else { int.parse().ok()? };
    let mut frac6: String = frac.chars().take(6).collect();
    while frac6.len() < 6 {
        frac6.push('0');
    }
    let mut v = int_v
        .checked_mul(1_000_000)?
        .checked_add(frac6.parse::<i128>().ok()?)?;
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
