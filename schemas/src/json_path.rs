//! Looking up one dot path in JSON text without building the rest of the document (the
//! processor's KPI fields, the tracking plan's context fields), and an object's top-level entries
//! (the plan's property checks).
//!
//! Contract: `lookup_raw(text, ["a", "b"])` is the JSON text of
//! `serde_json::from_str::<Value>(text)?["a"]["b"]`, borrowed from `text` (for objects; `None`
//! when a step is missing or not an object, the value is null, or the text is not JSON), except
//! that with duplicate keys the last occurrence wins as well. Values off the path are skipped
//! by the parser, never allocated.

use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;

use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use serde_json::value::RawValue;
#[cfg(test)]
use serde_json::Value;

/// The value at `path` inside the JSON object `text` (the reference [`lookup_raw`] is tested
/// against).
#[cfg(test)]
pub fn lookup(text: &str, path: &[String]) -> Option<Value> {
    find::<Value>(text, path)
}

/// The JSON text of the value at `path` inside the JSON object `text` (borrowed, no
/// allocation; `None` as for [`lookup`], and for `null`).
pub fn lookup_raw<'a>(text: &'a str, path: &[String]) -> Option<&'a str> {
    find::<&'a RawValue>(text, path)
        .map(|raw| raw.get().trim())
        .filter(|raw| *raw != "null")
}

fn find<'de, T: Deserialize<'de>>(text: &'de str, path: &[String]) -> Option<T> {
    let mut de = serde_json::Deserializer::from_str(text);
    let found = PathSeed::<T> {
        path,
        found: PhantomData,
    }
    .deserialize(&mut de)
    .ok()?;
    de.end().ok()?;
    found
}

/// Walks `path`, skipping everything off it; deserializes the value at its end as `T`.
struct PathSeed<'p, T> {
    path: &'p [String],
    found: PhantomData<T>,
}

impl<'de, T: Deserialize<'de>> DeserializeSeed<'de> for PathSeed<'_, T> {
    type Value = Option<T>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        if self.path.is_empty() {
            return T::deserialize(d).map(Some);
        }
        d.deserialize_any(PathVisitor {
            path: self.path,
            found: PhantomData,
        })
    }
}

struct PathVisitor<'p, T> {
    path: &'p [String],
    found: PhantomData<T>,
}

/// An object key, borrowed from the text when it has no escapes.
struct Key<'de>(Cow<'de, str>);

/// The top-level entries of a JSON object's text, in order (keys unescaped, borrowed when they
/// have no escapes; values borrowed); `None` when the text is not one JSON object. Duplicate keys
/// are all returned.
pub fn top_level(text: &str) -> Option<Vec<(Cow<'_, str>, &RawValue)>> {
    struct Entries;
    impl<'de> Visitor<'de> for Entries {
        type Value = Vec<(Cow<'de, str>, &'de RawValue)>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a JSON object")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut out = Vec::new();
            while let Some(Key(k)) = map.next_key::<Key<'de>>()? {
                out.push((k, map.next_value::<&'de RawValue>()?));
            }
            Ok(out)
        }
    }
    let mut de = serde_json::Deserializer::from_str(text);
    let entries = de.deserialize_map(Entries).ok()?;
    de.end().ok()?;
    Some(entries)
}

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object key")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Key(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Key(Cow::Owned(v.to_string())))
            }
            fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
                Ok(Key(Cow::Owned(v)))
            }
        }
        d.deserialize_str(V)
    }
}

impl<'de, T: Deserialize<'de>> Visitor<'de> for PathVisitor<'_, T> {
    type Value = Option<T>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut found = None;
        while let Some(key) = map.next_key::<Key<'de>>()? {
            if key.0 == self.path[0].as_str() {
                found = map.next_value_seed(PathSeed {
                    path: &self.path[1..],
                    found: PhantomData,
                })?;
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(found)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(None)
    }

    fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn p(s: &str) -> Vec<String> {
        s.split('.').map(str::to_string).collect()
    }

    #[test]
    fn agrees_with_a_full_parse() {
        let docs = [
            json!({"os": {"name": "iOS", "version": "17"}, "ip": "1.2.3.4", "list": [1, {"os": 2}]}),
            json!({"plan": "pro", "revenue": 12.5, "nested": {"a": {"b": [1, 2]}}, "nul": null}),
            json!({"we\"ird": {"k\\ey": true}, "é": "ü"}),
            json!({}),
        ];
        let paths = [
            "os.name",
            "os",
            "ip",
            "list",
            "list.os",
            "plan",
            "revenue",
            "nested.a.b",
            "nested.a",
            "nul",
            "we\"ird.k\\ey",
            "é",
            "missing",
            "os.name.deeper",
        ];
        for doc in &docs {
            let text = doc.to_string();
            for path in paths {
                let mut expected = Some(doc);
                for k in p(path) {
                    expected = expected.and_then(|v| v.get(&k));
                }
                assert_eq!(
                    lookup(&text, &p(path)).as_ref(),
                    expected,
                    "{path} in {text}"
                );
            }
        }
    }

    #[test]
    fn raw_lookup_returns_the_value_text() {
        let doc =
            json!({"os": {"name": "iOS"}, "revenue": 12.50, "n": null, "s": "a\"b", "l": [1, 2]});
        for text in [
            doc.to_string(),
            serde_json::to_string_pretty(&doc).expect("json"),
        ] {
            for path in [
                "os.name",
                "os",
                "revenue",
                "s",
                "l",
                "n",
                "missing",
                "os.name.x",
            ] {
                let expected = lookup(&text, &p(path)).filter(|v| !v.is_null());
                let raw = lookup_raw(&text, &p(path));
                let parsed = raw.map(|r| serde_json::from_str::<Value>(r).expect("raw is JSON"));
                assert_eq!(parsed, expected, "{path} in {text}");
                if let Some(r) = raw {
                    assert_eq!(r, r.trim(), "no surrounding whitespace");
                }
            }
        }
        assert_eq!(lookup_raw("{\"x\": 1.50 }", &p("x")), Some("1.50"));
        assert_eq!(lookup_raw("{\"x\": 1", &p("x")), None, "not JSON");
    }

    #[test]
    fn not_json_or_not_an_object_is_none() {
        assert_eq!(lookup("{\"a\":", &p("a")), None);
        assert_eq!(lookup("\"text\"", &p("a")), None);
        assert_eq!(lookup("[{\"a\":1}]", &p("a")), None);
        assert_eq!(lookup("{\"a\":1} trailing", &p("a")), None);
        assert_eq!(
            lookup("{\"a\":1,\"a\":2}", &p("a")),
            Some(json!(2)),
            "the last duplicate wins"
        );
    }
}
