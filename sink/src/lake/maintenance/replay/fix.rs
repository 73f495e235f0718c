//! Declared fixes of a replay, applied to one decoded event without IO.
//!
//! Contract: a fix names what it changes and nothing else changes. `rename:FROM=TO` moves a
//! value (refused when TO already holds one), `cast:PATH=TYPE` converts a value to `string`,
//! `number`, `integer` or `boolean` (refused when it does not convert exactly: `"12,50"` is not
//! a number), `drop:PATH` removes a value, `event:NAME` renames a track event. Paths start with
//! `properties.`, `traits.` or `context.` and may go deeper (`context.device.id`). A fix whose
//! path holds nothing does not apply to that event (counted as not applied, not an error).

use std::fmt;
use std::str::FromStr;

use northstar_schemas::{Event, EventType};
use serde_json::{Map, Number, Value};

/// Which JSON part of the event a path is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    Properties,
    Traits,
    Context,
}

/// A value's place: its part and the keys below it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldPath {
    pub part: Part,
    pub steps: Vec<String>,
}

/// The type a cast converts to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CastTo {
    String,
    Number,
    Integer,
    Boolean,
}

/// One declared fix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fix {
    Rename { from: FieldPath, to: FieldPath },
    Cast { path: FieldPath, to: CastTo },
    Drop { path: FieldPath },
    Event { name: String },
}

/// A fix that cannot be parsed, or cannot be applied to one event.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FixError {
    #[error("fix {0:?}: expected rename:FROM=TO, cast:PATH=string|number|integer|boolean, drop:PATH or event:NAME")]
    Syntax(String),
    #[error("fix path {0:?}: expected properties.NAME, traits.NAME or context.NAME[.NAME…]")]
    Path(String),
    #[error("{path}: cannot cast {found} to {to}")]
    Cast {
        path: String,
        found: String,
        to: &'static str,
    },
    #[error("{0}: already holds a value, the rename would overwrite it")]
    Occupied(String),
    #[error("{0}: is not a JSON object")]
    NotAnObject(&'static str),
    #[error("event:{0}: only a track event has an event name")]
    NotTrack(String),
}

impl FromStr for FieldPath {
    type Err = FixError;
    fn from_str(s: &str) -> Result<Self, FixError> {
        let bad = || FixError::Path(s.to_string());
        let (part, rest) = s.split_once('.').ok_or_else(bad)?;
        let part = match part {
            "properties" => Part::Properties,
            "traits" => Part::Traits,
            "context" => Part::Context,
            _ => return Err(bad()),
        };
        let steps: Vec<String> = rest.split('.').map(str::to_string).collect();
        if steps.iter().any(String::is_empty) {
            return Err(bad());
        }
        Ok(FieldPath { part, steps })
    }
}

impl fmt::Display for FieldPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let part = match self.part {
            Part::Properties => "properties",
            Part::Traits => "traits",
            Part::Context => "context",
        };
        write!(f, "{part}.{}", self.steps.join("."))
    }
}

impl CastTo {
    fn as_str(self) -> &'static str {
        match self {
            CastTo::String => "string",
            CastTo::Number => "number",
            CastTo::Integer => "integer",
            CastTo::Boolean => "boolean",
        }
    }
}

impl FromStr for Fix {
    type Err = FixError;
    fn from_str(s: &str) -> Result<Self, FixError> {
        let syntax = || FixError::Syntax(s.to_string());
        let (verb, arg) = s.split_once(':').ok_or_else(syntax)?;
        let pair = || arg.split_once('=').ok_or_else(syntax);
        Ok(match verb.trim() {
            "rename" => {
                let (from, to) = pair()?;
                Fix::Rename {
                    from: from.trim().parse()?,
                    to: to.trim().parse()?,
                }
            }
            "cast" => {
                let (path, to) = pair()?;
                let to = match to.trim() {
                    "string" => CastTo::String,
                    "number" => CastTo::Number,
                    "integer" => CastTo::Integer,
                    "boolean" => CastTo::Boolean,
                    _ => return Err(syntax()),
                };
                Fix::Cast {
                    path: path.trim().parse()?,
                    to,
                }
            }
            "drop" => Fix::Drop {
                path: arg.trim().parse()?,
            },
            "event" if !arg.trim().is_empty() => Fix::Event {
                name: arg.trim().to_string(),
            },
            _ => return Err(syntax()),
        })
    }
}

impl fmt::Display for Fix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fix::Rename { from, to } => write!(f, "rename:{from}={to}"),
            Fix::Cast { path, to } => write!(f, "cast:{path}={}", to.as_str()),
            Fix::Drop { path } => write!(f, "drop:{path}"),
            Fix::Event { name } => write!(f, "event:{name}"),
        }
    }
}

/// The event's three JSON parts, parsed once and written back only when changed.
struct Parts {
    values: [Option<Value>; 3],
    changed: [bool; 3],
}

fn index(part: Part) -> usize {
    match part {
        Part::Properties => 0,
        Part::Traits => 1,
        Part::Context => 2,
    }
}

const NAMES: [&str; 3] = ["properties", "traits", "context"];

impl Parts {
    fn new() -> Self {
        Parts {
            values: [None, None, None],
            changed: [false; 3],
        }
    }

    fn root(&mut self, e: &Event, part: Part) -> Result<&mut Map<String, Value>, FixError> {
        let i = index(part);
        if self.values[i].is_none() {
            let text = [&e.properties, &e.traits, &e.context][i];
            let v: Value =
                serde_json::from_str(text).map_err(|_| FixError::NotAnObject(NAMES[i]))?;
            self.values[i] = Some(v);
        }
        self.values[i]
            .as_mut()
            .and_then(Value::as_object_mut)
            .ok_or(FixError::NotAnObject(NAMES[i]))
    }

    /// The object holding `path`'s last step (created on the way when `create`).
    fn parent(
        &mut self,
        e: &Event,
        path: &FieldPath,
        create: bool,
    ) -> Result<Option<&mut Map<String, Value>>, FixError> {
        let Some((_, parents)) = path.steps.split_last() else {
            return Ok(None);
        };
        let mut obj = self.root(e, path.part)?;
        for step in parents {
            if create && !obj.contains_key(step) {
                obj.insert(step.clone(), Value::Object(Map::new()));
            }
            match obj.get_mut(step).and_then(Value::as_object_mut) {
                Some(next) => obj = next,
                None => return Ok(None),
            }
        }
        Ok(Some(obj))
    }

    fn take(&mut self, e: &Event, path: &FieldPath) -> Result<Option<Value>, FixError> {
        let last = path.steps.last().map(String::as_str).unwrap_or_default();
        let taken = self
            .parent(e, path, false)?
            .and_then(|obj| obj.remove(last));
        if taken.is_some() {
            self.changed[index(path.part)] = true;
        }
        Ok(taken)
    }

    fn put(&mut self, e: &Event, path: &FieldPath, v: Value) -> Result<(), FixError> {
        let last = path.steps.last().cloned().unwrap_or_default();
        let Some(obj) = self.parent(e, path, true)? else {
            return Err(FixError::NotAnObject(NAMES[index(path.part)]));
        };
        if obj.contains_key(&last) {
            return Err(FixError::Occupied(path.to_string()));
        }
        obj.insert(last, v);
        self.changed[index(path.part)] = true;
        Ok(())
    }

    fn write_back(self, e: &mut Event) {
        for (i, v) in self.values.into_iter().enumerate() {
            if let (true, Some(v)) = (self.changed[i], v) {
                *[&mut e.properties, &mut e.traits, &mut e.context][i] = v.to_string();
            }
        }
    }
}

fn cast(v: Value, to: CastTo, path: &FieldPath) -> Result<Value, FixError> {
    let fail = |v: &Value| FixError::Cast {
        path: path.to_string(),
        found: shown(v),
        to: to.as_str(),
    };
    let out = match (to, &v) {
        (CastTo::String, Value::String(_)) => Some(v.clone()),
        (CastTo::String, Value::Number(n)) => Some(Value::String(n.to_string())),
        (CastTo::String, Value::Bool(b)) => Some(Value::String(b.to_string())),
        (CastTo::Number, Value::Number(_)) => Some(v.clone()),
        (CastTo::Number, Value::String(s)) => s
            .trim()
            .parse::<f64>()
            .ok()
            .and_then(Number::from_f64)
            .map(|n| match n.as_f64() {
                Some(f) if f.fract() == 0.0 && f.abs() < 9.0e15 => Value::from(f as i64),
                _ => Value::Number(n),
            }),
        (CastTo::Integer, Value::String(s)) => s.trim().parse::<i64>().ok().map(Value::from),
        (CastTo::Integer, Value::Number(n)) => n
            .as_i64()
            .or_else(|| n.as_f64().filter(|f| f.fract() == 0.0).map(|f| f as i64))
            .map(Value::from),
        (CastTo::Boolean, Value::Bool(_)) => Some(v.clone()),
        (CastTo::Boolean, Value::String(s)) => match s.trim() {
            "true" => Some(Value::Bool(true)),
            "false" => Some(Value::Bool(false)),
            _ => None,
        },
        (CastTo::Boolean, Value::Number(n)) => match n.as_i64() {
            Some(0) => Some(Value::Bool(false)),
            Some(1) => Some(Value::Bool(true)),
            _ => None,
        },
        _ => None,
    };
    out.ok_or_else(|| fail(&v))
}

fn shown(v: &Value) -> String {
    let text = v.to_string();
    match text.char_indices().nth(40) {
        Some((i, _)) => format!("{}…", &text[..i]),
        None => text,
    }
}

/// Applies `fixes` in order to `e`; how many applied (a fix whose path holds nothing does not).
/// On an error `e` is left unchanged.
pub fn apply(fixes: &[Fix], e: &mut Event) -> Result<usize, FixError> {
    let mut parts = Parts::new();
    let mut applied = 0;
    let mut event_name = None;
    for fix in fixes {
        match fix {
            Fix::Rename { from, to } => {
                if let Some(v) = parts.take(e, from)? {
                    parts.put(e, to, v)?;
                    applied += 1;
                }
            }
            Fix::Cast { path, to } => {
                if let Some(v) = parts.take(e, path)? {
                    parts.put(e, path, cast(v, *to, path)?)?;
                    applied += 1;
                }
            }
            Fix::Drop { path } => {
                if parts.take(e, path)?.is_some() {
                    applied += 1;
                }
            }
            Fix::Event { name } if e.kind == EventType::Track => {
                event_name = Some(name.clone());
                applied += 1;
            }
            Fix::Event { name } => return Err(FixError::NotTrack(name.clone())),
        }
    }
    parts.write_back(e);
    if let Some(name) = event_name {
        e.event = Some(name);
    }
    Ok(applied)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixes(specs: &[&str]) -> Vec<Fix> {
        specs.iter().map(|s| s.parse().expect("fix")).collect()
    }

    fn event(properties: &str) -> Event {
        let mut e =
            northstar_schemas::synthetic::track("m", "u", "Signed Up", 0, "iOS", "pro", 0.0);
        e.properties = properties.into();
        e
    }

    #[test]
    fn specs_parse_and_print_back() {
        for spec in [
            "rename:properties.total=properties.revenue",
            "cast:properties.revenue=number",
            "drop:context.device.id",
            "event:Signed Up",
        ] {
            assert_eq!(spec.parse::<Fix>().expect("parses").to_string(), spec);
        }
        for bad in [
            "rename:properties.a",
            "cast:properties.a=float",
            "drop:payload.a",
            "drop:properties.",
            "event:",
            "upcase:properties.a",
        ] {
            assert!(bad.parse::<Fix>().is_err(), "{bad}");
        }
    }

    #[test]
    fn rename_cast_and_drop_change_only_what_they_name() {
        let mut e = event(r#"{"total":"12.50","plan":"pro","debug":{"x":1}}"#);
        let context = e.context.clone();
        let n = apply(
            &fixes(&[
                "rename:properties.total=properties.revenue",
                "cast:properties.revenue=number",
                "drop:properties.debug",
                "drop:properties.absent",
            ]),
            &mut e,
        )
        .expect("applies");
        assert_eq!(n, 3, "the absent path does not apply");
        let props: Value = serde_json::from_str(&e.properties).expect("json");
        assert_eq!(props, serde_json::json!({"plan": "pro", "revenue": 12.5}));
        assert_eq!(e.context, context, "untouched parts keep their text");
    }

    #[test]
    fn casts_are_exact_or_refused() {
        let p: FieldPath = "properties.v".parse().expect("path");
        let ok = |v: Value, to| cast(v, to, &p).expect("casts");
        assert_eq!(ok(Value::from("49"), CastTo::Number), Value::from(49));
        assert_eq!(ok(Value::from(" 7 "), CastTo::Integer), Value::from(7));
        assert_eq!(ok(Value::from(7.0), CastTo::Integer), Value::from(7));
        assert_eq!(ok(Value::from(3), CastTo::String), Value::from("3"));
        assert_eq!(ok(Value::from("true"), CastTo::Boolean), Value::from(true));
        for (v, to) in [
            (Value::from("12,50"), CastTo::Number),
            (Value::from(7.5), CastTo::Integer),
            (Value::from("yes"), CastTo::Boolean),
            (serde_json::json!({"a": 1}), CastTo::String),
        ] {
            let e = cast(v, to, &p).expect_err("refused");
            assert!(
                e.to_string().starts_with("properties.v: cannot cast"),
                "{e}"
            );
        }
    }

    #[test]
    fn a_failed_fix_leaves_the_event_unchanged_and_renames_never_overwrite() {
        let mut e = event(r#"{"total":1,"revenue":2}"#);
        let before = e.clone();
        let err = apply(
            &fixes(&["rename:properties.total=properties.revenue"]),
            &mut e,
        )
        .expect_err("occupied");
        assert_eq!(err, FixError::Occupied("properties.revenue".into()));
        assert_eq!(e, before);
        let err = apply(
            &fixes(&["drop:properties.total", "cast:properties.revenue=boolean"]),
            &mut e,
        );
        assert!(err.is_err());
        assert_eq!(e, before);
    }

    #[test]
    fn nested_paths_and_event_names() {
        let mut e = event("{}");
        e.context = r#"{"device":{"id":"d1"}}"#.into();
        apply(
            &fixes(&[
                "rename:context.device.id=context.device.advertisingId",
                "event:Signed Up",
            ]),
            &mut e,
        )
        .expect("applies");
        assert_eq!(e.context, r#"{"device":{"advertisingId":"d1"}}"#);
        assert_eq!(e.event.as_deref(), Some("Signed Up"));
        e.kind = EventType::Identify;
        assert!(matches!(
            apply(&fixes(&["event:X"]), &mut e),
            Err(FixError::NotTrack(_))
        ));
    }
}
