//! The top-level properties of one event, read from its JSON text without building a
//! `serde_json::Value`: scalars are kept (strings borrowed from the text when they have no
//! escapes), nested objects and arrays are skipped by the parser and only marked.
//!
//! Contract: [`Props::parse`] accepts exactly the JSON objects `serde_json` accepts; for a key
//! given twice the last value wins, as in a `serde_json::Map`; numbers read as `f64` the way
//! `Value::as_f64` reads them.

use std::borrow::Cow;
use std::fmt;

use serde::de::{Deserialize, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

/// One property's value.
#[derive(Debug, Clone, PartialEq)]
pub enum PropVal<'a> {
    Null,
    Bool(bool),
    Num(serde_json::Number),
    Str(Cow<'a, str>),
    /// An object or an array (kept in the JSON column only).
    Composite,
}

/// The top-level properties of one event, in order, each key once.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Props<'a>(Vec<(Cow<'a, str>, PropVal<'a>)>);

impl<'a> Props<'a> {
    /// The properties of `text`, or `None` when it is not one JSON object.
    pub fn parse(text: &'a str) -> Option<Self> {
        serde_json::from_str(text).ok()
    }

    /// The value of `key`.
    pub fn get(&self, key: &str) -> Option<&PropVal<'a>> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    /// Every key and value.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &PropVal<'a>)> {
        self.0.iter().map(|(k, v)| (k.as_ref(), v))
    }
}

/// A value one level deep: an object's properties, or anything else as a [`PropVal`].
#[derive(Debug, Clone, PartialEq)]
pub enum Node<'a> {
    Object(Props<'a>),
    Value(PropVal<'a>),
}

/// The flattened `context` of one event: `(top-level key, nested key)` paths (nested key
/// empty for a top-level field) read from the JSON text in one pass.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Context<'a>(Vec<(Cow<'a, str>, Node<'a>)>);

impl<'a> Context<'a> {
    /// The context of `text`, or `None` when it is not one JSON object.
    pub fn parse(text: &'a str) -> Option<Self> {
        serde_json::from_str(text).ok()
    }

    /// The value at `path` (one or two keys), as `serde_json::Value` indexing would find it.
    pub fn get(&self, path: &[&str]) -> Option<&PropVal<'a>> {
        let first = *path.first()?;
        let node = self
            .0
            .iter()
            .rev()
            .find(|(k, _)| k == first)
            .map(|(_, n)| n)?;
        match (node, path.get(1)) {
            (Node::Value(v), None) => Some(v),
            (Node::Object(_), None) => Some(&PropVal::Composite),
            (Node::Object(props), Some(k)) if path.len() == 2 => props.get(k),
            _ => None,
        }
    }
}

impl<'de> Deserialize<'de> for Context<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Context<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut out = Vec::new();
                while let Some(Key(k)) = map.next_key::<Key<'de>>()? {
                    out.push((k, map.next_value::<Node<'de>>()?));
                }
                Ok(Context(out))
            }
        }
        d.deserialize_map(V)
    }
}

impl<'de> Deserialize<'de> for Node<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // Objects become `Props`; everything else a `PropVal`, through serde_json's buffering
        // of one value (borrowed where it can be).
        let raw: &'de serde_json::value::RawValue = Deserialize::deserialize(d)?;
        let text = raw.get();
        if text.trim_start().starts_with('{') {
            serde_json::from_str(text)
                .map(Node::Object)
                .map_err(serde::de::Error::custom)
        } else {
            serde_json::from_str(text)
                .map(Node::Value)
                .map_err(serde::de::Error::custom)
        }
    }
}

struct Key<'a>(Cow<'a, str>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Cow::<'de, str>::deserialize(d).map(Key)
    }
}

impl<'de> Deserialize<'de> for Props<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Props<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut out: Vec<(Cow<'de, str>, PropVal<'de>)> = Vec::new();
                while let Some(Key(k)) = map.next_key::<Key<'de>>()? {
                    let v: PropVal<'de> = map.next_value()?;
                    match out.iter_mut().find(|(have, _)| *have == k) {
                        Some(slot) => slot.1 = v,
                        None => out.push((k, v)),
                    }
                }
                Ok(Props(out))
            }
        }
        d.deserialize_map(V)
    }
}

impl<'de> Deserialize<'de> for PropVal<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = PropVal<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_unit<E>(self) -> Result<Self::Value, E> {
                Ok(PropVal::Null)
            }
            fn visit_none<E>(self) -> Result<Self::Value, E> {
                Ok(PropVal::Null)
            }
            fn visit_bool<E>(self, v: bool) -> Result<Self::Value, E> {
                Ok(PropVal::Bool(v))
            }
            fn visit_i64<E>(self, v: i64) -> Result<Self::Value, E> {
                Ok(PropVal::Num(v.into()))
            }
            fn visit_u64<E>(self, v: u64) -> Result<Self::Value, E> {
                Ok(PropVal::Num(v.into()))
            }
            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Self::Value, E> {
                serde_json::Number::from_f64(v)
                    .map(PropVal::Num)
                    .ok_or_else(|| E::custom("a number that is not finite"))
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(PropVal::Str(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
                Ok(PropVal::Str(Cow::Owned(v.to_string())))
            }
            fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
                Ok(PropVal::Str(Cow::Owned(v)))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(PropVal::Composite)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(PropVal::Composite)
            }
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Map, Value};

    /// The same reading through a full `serde_json::Value` parse.
    fn reference(v: &Value) -> PropVal<'static> {
        match v {
            Value::Null => PropVal::Null,
            Value::Bool(b) => PropVal::Bool(*b),
            Value::Number(n) => PropVal::Num(n.clone()),
            Value::String(s) => PropVal::Str(Cow::Owned(s.clone())),
            _ => PropVal::Composite,
        }
    }

    #[test]
    fn context_paths_agree_with_a_full_parse() {
        let doc = json!({"os": {"name": "iOS", "version": 17, "x": {"y": 1}}, "ip": "1.2.3.4",
                         "app": "not an object", "page": {"url": "https://a/\"b\""},
                         "library": {"name": null}, "locale": ["en"], "device": {"id": 1.5}});
        let text = doc.to_string();
        let ctx = Context::parse(&text).expect("object");
        for path in [
            &["os", "name"][..],
            &["os", "version"],
            &["os", "x"],
            &["ip"],
            &["app", "name"],
            &["page", "url"],
            &["library", "name"],
            &["locale"],
            &["device", "id"],
            &["os"],
            &["missing"],
            &["missing", "x"],
        ] {
            let mut v = Some(&doc);
            for k in path {
                v = v.and_then(|v| v.get(k));
            }
            assert_eq!(ctx.get(path), v.map(reference).as_ref(), "{path:?}");
        }
        assert_eq!(Context::parse("[1]"), None);
    }

    #[test]
    fn agrees_with_a_full_parse() {
        let docs = [
            json!({"plan": "pro", "revenue": 12.5, "n": 3, "big": 18_446_744_073_709_551_615_u64,
                   "neg": -7, "ok": false, "nil": null, "nested": {"a": [1, {"b": 2}]},
                   "list": [1, 2], "esc": "a\"b\\c\né"}),
            json!({}),
        ];
        for doc in &docs {
            let text = doc.to_string();
            let props = Props::parse(&text).expect("an object");
            let map: Map<String, Value> = serde_json::from_str(&text).expect("map");
            assert_eq!(props.iter().count(), map.len());
            for (k, v) in &map {
                assert_eq!(props.get(k), Some(&reference(v)), "{k}");
            }
        }
        let dup = Props::parse(r#"{"a":1,"b":2,"a":"x"}"#).expect("object");
        assert_eq!(
            dup.get("a"),
            Some(&PropVal::Str("x".into())),
            "the last wins"
        );
        assert_eq!(dup.iter().count(), 2);
        for bad in ["[1]", "\"s\"", "{\"a\":", "{} x", "not json"] {
            assert_eq!(Props::parse(bad), None, "{bad}");
        }
        let borrowed = Props::parse(r#"{"s":"plain"}"#).expect("object");
        assert!(matches!(
            borrowed.get("s"),
            Some(PropVal::Str(Cow::Borrowed(_)))
        ));
    }
}
