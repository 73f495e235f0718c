//! JSON text of a request, read and rewritten without building trees: the collector stores an
//! event's `properties`, `traits`, `integrations` and most of its `context` exactly as the
//! client sent them (as slices of the request body), so it never parses them into
//! `serde_json::Value`s only to write them back.
//!
//! Contract: every function here takes text serde_json has already validated as JSON (a
//! `RawValue`), and what it returns is JSON again: [`scan`] measures a message (nesting, key
//! count, whitespace) and refuses lone UTF-16 surrogates, which serde_json lets through when it
//! only skips a string; [`compact`] removes whitespace outside strings; [`Context`] holds the
//! top-level entries of a context object so the collector can read, add, replace and drop a
//! few of them and write the object back with every other entry byte for byte. No IO.

use std::borrow::Cow;

use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;

use crate::config::Limits;
use crate::segment::RequestError;

/// What [`scan`] found out about a message.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Shape {
    /// Whitespace outside strings: the message's JSON texts are [`compact`]ed when stored.
    pub spaced: bool,
}

/// Measures message `index` (`text`: one JSON object, already validated): refuses nesting
/// deeper than `limits.max_depth` (the message itself is level 1), more than `limits.max_keys`
/// object keys in all, and `\u` escapes that are lone UTF-16 surrogates. One pass, no recursion.
pub fn scan(text: &str, index: usize, limits: &Limits) -> Result<Shape, RequestError> {
    let bytes = text.as_bytes();
    let (mut i, mut depth, mut keys) = (0, 0usize, 0usize);
    let mut shape = Shape::default();
    while i < bytes.len() {
        match bytes[i] {
            b'"' => {
                i = string_end(bytes, i + 1, index)?;
                continue;
            }
            b'{' | b'[' => {
                depth += 1;
                if depth > limits.max_depth {
                    return Err(RequestError::TooDeep {
                        index,
                        limit: limits.max_depth,
                    });
                }
            }
            b'}' | b']' => depth = depth.saturating_sub(1),
            // In valid JSON a colon outside a string follows a key, and only there.
            b':' => {
                keys += 1;
                if keys > limits.max_keys {
                    return Err(RequestError::TooManyKeys {
                        index,
                        count: keys,
                        limit: limits.max_keys,
                    });
                }
            }
            b' ' | b'\n' | b'\r' | b'\t' => shape.spaced = true,
            _ => {}
        }
        i += 1;
    }
    Ok(shape)
}

/// The position just past the closing quote of the string whose content starts at `start`,
/// refusing lone surrogates in its `\u` escapes.
fn string_end(bytes: &[u8], start: usize, index: usize) -> Result<usize, RequestError> {
    let mut i = start;
    loop {
        let Some(found) = memchr::memchr2(b'"', b'\\', &bytes[i.min(bytes.len())..]) else {
            // Validated JSON: unreachable, but never a panic.
            return Ok(bytes.len());
        };
        i += found;
        if bytes[i] == b'"' {
            return Ok(i + 1);
        }
        // An escape: `\u` and four hex digits, or one character.
        if bytes.get(i + 1) != Some(&b'u') {
            i += 2;
            continue;
        }
        let unit = hex4(bytes, i + 2);
        i += 6;
        match unit {
            Some(0xD800..=0xDBFF) => {
                let low = (bytes.get(i) == Some(&b'\\') && bytes.get(i + 1) == Some(&b'u'))
                    .then(|| hex4(bytes, i + 2))
                    .flatten();
                if !matches!(low, Some(0xDC00..=0xDFFF)) {
                    return Err(lone_surrogate(index, unit));
                }
                i += 6;
            }
            Some(0xDC00..=0xDFFF) => return Err(lone_surrogate(index, unit)),
            _ => {}
        }
    }
}

fn hex4(bytes: &[u8], at: usize) -> Option<u16> {
    let digits = std::str::from_utf8(bytes.get(at..at + 4)?).ok()?;
    u16::from_str_radix(digits, 16).ok()
}

fn lone_surrogate(index: usize, unit: Option<u16>) -> RequestError {
    RequestError::InvalidUnicode(format!(
        "event {index}: lone UTF-16 surrogate \\u{:04x} in a string",
        unit.unwrap_or(0)
    ))
}

/// Appends `text` (valid JSON) to `out` without the whitespace outside its strings.
pub fn compact_into(text: &str, out: &mut String) {
    let bytes = text.as_bytes();
    let mut i = 0;
    let mut from = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'"' => {
                // Strings are copied as they are (escapes included).
                i = string_end(bytes, i + 1, 0).unwrap_or(bytes.len());
                continue;
            }
            b' ' | b'\n' | b'\r' | b'\t' => {
                out.push_str(&text[from..i]);
                from = i + 1;
            }
            _ => {}
        }
        i += 1;
    }
    out.push_str(&text[from..]);
}

/// `text` (valid JSON) without the whitespace outside its strings.
pub fn compact(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    compact_into(text, &mut out);
    out
}

/// `text` as stored: compacted when its message had whitespace outside strings.
pub fn stored(text: &str, shape: Shape) -> String {
    if shape.spaced {
        compact(text)
    } else {
        text.to_string()
    }
}

/// The string a JSON string literal denotes (`None`: `text` is not a string). Borrowed when it
/// has no escapes.
pub fn string_value(text: &str) -> Option<Cow<'_, str>> {
    let inner = text.strip_prefix('"')?.strip_suffix('"')?;
    if !inner.contains('\\') {
        return Some(Cow::Borrowed(inner));
    }
    serde_json::from_str::<String>(text).ok().map(Cow::Owned)
}

/// A JSON string literal of `s`.
pub fn quoted(s: &str) -> String {
    // Serializing a &str cannot fail.
    serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into())
}

/// A key of an object: borrowed from the request when it has no escapes (then it can be written
/// back as it is), decoded otherwise.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Key<'a>(Cow<'a, str>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an object key")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(v.to_string())))
            }
        }
        d.deserialize_str(KeyVisitor)
    }
}

impl Key<'_> {
    fn write(&self, out: &mut String) {
        match &self.0 {
            // No escapes in the request, so none needed: `"` and control characters cannot
            // appear unescaped in a JSON string.
            Cow::Borrowed(k) => {
                out.push('"');
                out.push_str(k);
                out.push('"');
            }
            Cow::Owned(k) => out.push_str(&quoted(k)),
        }
    }
}

/// The top-level entries of an event's `context` object, values as JSON text, in the client's
/// order (a key sent twice keeps its last value, as a parser would), plus the collector's own
/// marks, written under `northstar` (a key reserved for the collector: the client's is dropped).
#[derive(Debug, Default)]
pub struct Context<'a> {
    entries: Vec<(Key<'a>, Cow<'a, str>)>,
    marks: Vec<(&'static str, String)>,
}

impl<'a> Context<'a> {
    /// The entries of `object` (JSON text of an object, already validated).
    pub fn parse(object: &'a str) -> Result<Self, serde_json::Error> {
        struct Entries<'a>(Vec<(Key<'a>, Cow<'a, str>)>);
        impl<'de> Deserialize<'de> for Entries<'de> {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                d.deserialize_map(EntriesVisitor)
            }
        }
        struct EntriesVisitor;
        impl<'de> Visitor<'de> for EntriesVisitor {
            type Value = Entries<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<Entries<'de>, M::Error> {
                let mut entries: Vec<(Key<'de>, Cow<'de, str>)> = Vec::new();
                while let Some(key) = map.next_key::<Key<'de>>()? {
                    let value: &'de RawValue = map.next_value()?;
                    match entries.iter_mut().find(|(k, _)| *k == key) {
                        Some(entry) => entry.1 = Cow::Borrowed(value.get()),
                        None => entries.push((key, Cow::Borrowed(value.get()))),
                    }
                }
                Ok(Entries(entries))
            }
        }
        let Entries(mut entries) = serde_json::from_str(object)?;
        entries.retain(|(k, _)| k.0 != "northstar");
        Ok(Self {
            entries,
            marks: Vec::new(),
        })
    }

    /// The JSON text of entry `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.entries
            .iter()
            .find(|(k, _)| k.0 == key)
            .map(|(_, v)| v.as_ref())
    }

    /// Sets entry `key` to the JSON text `json`.
    pub fn set(&mut self, key: &'static str, json: String) {
        match self.entries.iter_mut().find(|(k, _)| k.0 == key) {
            Some(entry) => entry.1 = Cow::Owned(json),
            None => self
                .entries
                .push((Key(Cow::Borrowed(key)), Cow::Owned(json))),
        }
    }

    /// Sets entry `key` to `json` unless the client sent one.
    pub fn set_if_absent(&mut self, key: &'static str, json: &str) {
        if self.get(key).is_none() {
            self.set(key, json.to_string());
        }
    }

    /// Drops entry `key`.
    pub fn remove(&mut self, key: &str) {
        self.entries.retain(|(k, _)| k.0 != key);
    }

    /// Adds `name` (JSON text `json`) to the collector's marks (`context.northstar`).
    pub fn mark(&mut self, name: &'static str, json: String) {
        self.marks.push((name, json));
    }

    /// The context object as JSON text; the client's values compacted when `shape` says so.
    pub fn to_json(&self, shape: Shape) -> String {
        let size: usize = self
            .entries
            .iter()
            .map(|(k, v)| k.0.len() + v.len() + 4)
            .chain(self.marks.iter().map(|(k, v)| k.len() + v.len() + 4))
            .sum();
        let mut out = String::with_capacity(size + 16);
        out.push('{');
        for (i, (key, value)) in self.entries.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            key.write(&mut out);
            out.push(':');
            match value {
                Cow::Borrowed(v) if shape.spaced => compact_into(v, &mut out),
                v => out.push_str(v),
            }
        }
        if !self.marks.is_empty() {
            if !self.entries.is_empty() {
                out.push(',');
            }
            out.push_str("\"northstar\":{");
            for (i, (name, value)) in self.marks.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push('"');
                out.push_str(name);
                out.push_str("\":");
                out.push_str(value);
            }
            out.push('}');
        }
        out.push('}');
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    fn json(text: &str) -> Value {
        serde_json::from_str(text).expect("valid JSON")
    }

    #[test]
    fn scan_counts_keys_and_depth_outside_strings() {
        let l = Limits {
            max_depth: 4,
            max_keys: 4,
            ..Limits::default()
        };
        let ok = r#"{"a":{"b":[1,{"c":"x:{[\"y"}]}}"#;
        assert_eq!(scan(ok, 0, &l), Ok(Shape { spaced: false }));
        let deep = r#"{"a":{"b":[[[1]]]}}"#;
        assert_eq!(scan(deep, 2, &l).unwrap_err().reason(), "too_deep");
        let many = r#"{"a":1,"b":2,"c":{"d":3,"e":4}}"#;
        let err = scan(many, 0, &l).unwrap_err();
        assert_eq!(err.reason(), "too_many_keys");
        assert_eq!(scan("{\"a\" : [1, 2]}", 0, &l), Ok(Shape { spaced: true }));
        assert_eq!(scan(r#"{"a":"b c"}"#, 0, &l), Ok(Shape { spaced: false }));
    }

    #[test]
    fn lone_surrogates_are_refused_pairs_accepted() {
        let l = Limits::default();
        for bad in [
            r#"{"a":"\ud800"}"#,
            r#"{"a":"\ud800x"}"#,
            r#"{"a":"\udc00"}"#,
            r#"{"\ud800":1}"#,
            r#"{"a":"\ud800\u0041"}"#,
        ] {
            assert_eq!(
                scan(bad, 0, &l).unwrap_err().reason(),
                "invalid_unicode",
                "{bad}"
            );
        }
        for good in [
            r#"{"a":"\ud83d\ude00"}"#,
            r#"{"a":"\\ud800"}"#,
            r#"{"a":"\u00e9\n"}"#,
        ] {
            assert!(scan(good, 0, &l).is_ok(), "{good}");
        }
    }

    #[test]
    fn compact_keeps_strings_and_drops_the_rest_of_the_whitespace() {
        let text = "{ \"a b\" : [ 1 ,\n\t2 ], \"c\": \"x \\\" y\" }";
        let out = compact(text);
        assert_eq!(out, r#"{"a b":[1,2],"c":"x \" y"}"#);
        assert_eq!(json(&out), json(text));
    }

    #[test]
    fn strings_decode_borrowed_without_escapes() {
        assert!(matches!(
            string_value(r#""abc""#),
            Some(Cow::Borrowed("abc"))
        ));
        assert_eq!(string_value(r#""a\u00e9\"""#).as_deref(), Some("aé\""));
        assert_eq!(string_value("42"), None);
        assert_eq!(string_value(r#""\ud800""#), None);
        assert_eq!(json(&quoted("a\"\n")), Value::from("a\"\n"));
    }

    #[test]
    fn context_round_trips_and_edits() {
        let text = r#"{"z":1,"a\"b":{"x":[1,2]},"northstar":{"forged":true},"ip":"1.2.3.4","z":2}"#;
        let mut ctx = Context::parse(text).expect("object");
        assert_eq!(ctx.get("z"), Some("2"), "the last of a repeated key");
        assert_eq!(ctx.get("northstar"), None, "reserved");
        assert_eq!(ctx.get("a\"b"), Some(r#"{"x":[1,2]}"#));
        ctx.set("ip", quoted("1.2.3.0"));
        ctx.set_if_absent("z", "3");
        ctx.set_if_absent("os", r#"{"name":"x"}"#);
        ctx.mark("clock_flag", quoted("future"));
        let out = json(&ctx.to_json(Shape::default()));
        assert_eq!(
            out,
            json(
                r#"{"z":2,"a\"b":{"x":[1,2]},"ip":"1.2.3.0","os":{"name":"x"},
                   "northstar":{"clock_flag":"future"}}"#
            )
        );
        ctx.remove("ip");
        assert!(json(&ctx.to_json(Shape::default())).get("ip").is_none());
        let spaced = Context::parse("{ \"a\" : [ 1, 2 ] }").expect("object");
        assert_eq!(spaced.to_json(Shape { spaced: true }), r#"{"a":[1,2]}"#);
        let empty = Context::default();
        assert_eq!(empty.to_json(Shape::default()), "{}");
    }
}
