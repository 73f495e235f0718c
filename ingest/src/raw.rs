//! JSON text of a request, read and rewritten without building trees: the collector stores an
//! event's `properties`, `traits`, `integrations` and most of its `context` exactly as the
//! client sent them (as slices of the request body), so it never parses them into
//! `serde_json::Value`s only to write them back.
//!
//! Contract: every function here takes text serde_json has already validated as JSON (a
//! `RawValue`), and what it returns is JSON again: [`walk`] (and [`scan`]) measures a message
//! (nesting, key count, whitespace), hands over its top-level entries, and refuses lone UTF-16
//! surrogates and numbers beyond a double, which serde_json lets through when it only skips a
//! value; [`compact`] removes whitespace outside strings; [`Context`] holds the top-level
//! entries of a context object so the collector can read, add, replace and drop a few of them
//! and write the object back with every other entry byte for byte. No IO.

use std::borrow::Cow;

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
/// object keys in all, `\u` escapes that are lone UTF-16 surrogates, and numbers beyond a
/// double (valid syntax no parser downstream reads back). One pass, no recursion.
pub fn scan(text: &str, index: usize, limits: &Limits) -> Result<Shape, RequestError> {
    walk(text, index, limits, |_, _| Ok(()))
}

/// [`scan`], handing each top-level entry of the object to `entry` on the way (key decoded,
/// value as JSON text without the whitespace around it): the message's fields in the same
/// single pass that measures it.
pub fn walk<'a>(
    text: &'a str,
    index: usize,
    limits: &Limits,
    mut entry: impl FnMut(Key<'a>, &'a str) -> Result<(), RequestError>,
) -> Result<Shape, RequestError> {
    let bytes = text.as_bytes();
    let (mut i, mut depth, mut keys) = (0, 0usize, 0usize);
    let mut shape = Shape::default();
    // The current top-level entry: its key (quotes included) and where its value starts.
    let (mut key, mut value): (Option<(usize, usize)>, Option<usize>) = (None, None);
    let mut emit = |key: &mut Option<(usize, usize)>, value: &mut Option<usize>, end: usize| match (
        key.take(),
        value.take(),
    ) {
        (Some((ks, ke)), Some(vs)) => entry(Key::quoted(&text[ks..ke]), trim(&text[vs..end])),
        _ => Ok(()),
    };
    while i < bytes.len() {
        match bytes[i] {
            b'"' => {
                let end = string_end(bytes, i + 1, index)?;
                if depth == 1 && value.is_none() {
                    key = Some((i, end));
                }
                i = end;
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
            b'}' | b']' => {
                if depth == 1 {
                    emit(&mut key, &mut value, i)?;
                }
                depth = depth.saturating_sub(1);
            }
            b',' if depth == 1 => emit(&mut key, &mut value, i)?,
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
                if depth == 1 {
                    value = Some(i + 1);
                }
            }
            b' ' | b'\n' | b'\r' | b'\t' => shape.spaced = true,
            b'-' | b'0'..=b'9' => {
                i = number_end(text, i, index)?;
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    Ok(shape)
}

/// The end of the number starting at `start`, refusing one too large for a double: valid JSON
/// syntax (`1e999`), but no parser downstream (serde_json, DuckDB) reads it back.
fn number_end(text: &str, start: usize, index: usize) -> Result<usize, RequestError> {
    let bytes = text.as_bytes();
    let len = bytes[start..]
        .iter()
        .position(|b| !matches!(b, b'0'..=b'9' | b'-' | b'+' | b'.' | b'e' | b'E'))
        .unwrap_or(bytes.len() - start);
    let number = &text[start..start + len];
    // Only an exponent or more than 308 digits can overflow.
    let may_overflow = len > 300 || number.bytes().any(|b| b == b'e' || b == b'E');
    if may_overflow && !number.parse::<f64>().is_ok_and(f64::is_finite) {
        return Err(RequestError::InvalidJson(format!(
            "event {index}: number {}… is out of range for a double",
            &number[..len.min(24)]
        )));
    }
    Ok(start + len)
}

/// `text` without JSON whitespace around it.
fn trim(text: &str) -> &str {
    text.trim_matches([' ', '\n', '\r', '\t'])
}

/// The position just past the closing quote of the string whose content starts at `start`,
/// refusing lone surrogates in its `\u` escapes.
fn string_end(bytes: &[u8], start: usize, index: usize) -> Result<usize, RequestError> {
    let mut i = start;
    loop {
        let Some(found) = bytes.get(i..).and_then(quote_or_backslash) else {
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

/// The position of the first `"` or `\\` in `bytes`: eight bytes at a time (most strings of an
/// event are short, where a SIMD search's set-up costs more than it saves), then one by one.
fn quote_or_backslash(bytes: &[u8]) -> Option<usize> {
    const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
    const HIGHS: u64 = u64::from_ne_bytes([0x80; 8]);
    const QUOTES: u64 = u64::from_ne_bytes([b'"'; 8]);
    const BACKSLASHES: u64 = u64::from_ne_bytes([b'\\'; 8]);
    let has_zero = |v: u64| v.wrapping_sub(ONES) & !v & HIGHS != 0;
    let mut at = 0;
    for chunk in bytes.chunks_exact(8) {
        let word = u64::from_ne_bytes(chunk.try_into().unwrap_or([0; 8]));
        if has_zero(word ^ QUOTES) || has_zero(word ^ BACKSLASHES) {
            break;
        }
        at += 8;
    }
    bytes[at..]
        .iter()
        .position(|&b| b == b'"' || b == b'\\')
        .map(|p| at + p)
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
pub struct Key<'a>(Cow<'a, str>);

impl<'a> Key<'a> {
    /// The key whose JSON string (quotes included, validated) is `quoted`.
    fn quoted(quoted: &'a str) -> Self {
        let inner = &quoted[1..quoted.len().saturating_sub(1).max(1)];
        if inner.contains('\\') {
            Key(Cow::Owned(serde_json::from_str(quoted).unwrap_or_default()))
        } else {
            Key(Cow::Borrowed(inner))
        }
    }

    /// The decoded key.
    pub fn as_str(&self) -> &str {
        &self.0
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
    /// The entries of `object` (JSON text of an object, already validated and measured).
    pub fn parse(object: &'a str) -> Self {
        let unbounded = Limits {
            max_depth: usize::MAX,
            max_keys: usize::MAX,
            ..Limits::default()
        };
        let mut entries: Vec<(Key<'a>, Cow<'a, str>)> = Vec::new();
        let walked = walk(object, 0, &unbounded, |key, value| {
            match entries.iter_mut().find(|(k, _)| *k == key) {
                Some(entry) => entry.1 = Cow::Borrowed(value),
                None => entries.push((key, Cow::Borrowed(value))),
            }
            Ok(())
        });
        // `object` was measured (`scan`), and without limits only what `scan` refuses (a lone
        // surrogate, a number beyond a double) fails a walk.
        debug_assert!(walked.is_ok());
        entries.retain(|(k, _)| k.0 != "northstar");
        Self {
            entries,
            marks: Vec::new(),
        }
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
    fn walk_hands_over_the_top_level_entries_as_a_parser_sees_them() {
        let text = "{ \"a\" : [1, {\"b\":2}] ,\"c\\\"d\":\"x,}:\" ,\"e\":{\"f\":{}}, \"g\":null}";
        let mut seen = Vec::new();
        walk(text, 0, &Limits::default(), |k, v| {
            seen.push((k.as_str().to_string(), v.to_string()));
            Ok(())
        })
        .expect("valid");
        let parsed: serde_json::Map<String, Value> = serde_json::from_str(text).expect("object");
        assert_eq!(seen.len(), parsed.len());
        for (k, v) in &seen {
            assert_eq!(json(v), parsed[k], "{k}: {v}");
        }
        assert_eq!(seen[0], ("a".into(), "[1, {\"b\":2}]".into()));
        assert_eq!(seen[1].0, "c\"d", "an escaped key is decoded");
        let mut none = 0;
        walk("{}", 0, &Limits::default(), |_, _| {
            none += 1;
            Ok(())
        })
        .expect("valid");
        assert_eq!(none, 0);
    }

    #[test]
    fn quote_or_backslash_finds_the_first_at_any_offset() {
        for len in 0..20 {
            for at in 0..len {
                for c in [b'"', b'\\'] {
                    let mut v = vec![b'a'; len];
                    v[at] = c;
                    if at + 1 < len {
                        v[at + 1] = b'"';
                    }
                    assert_eq!(quote_or_backslash(&v), Some(at), "{len} {at}");
                }
            }
            assert_eq!(quote_or_backslash(&vec![0xC3; len]), None);
        }
    }

    #[test]
    fn numbers_beyond_a_double_are_refused() {
        let l = Limits::default();
        for bad in [
            r#"{"a":[63333e666661]}"#,
            r#"{"a":1E400}"#,
            r#"{"a":-1e309}"#,
        ] {
            assert_eq!(
                scan(bad, 0, &l).unwrap_err().reason(),
                "invalid_json",
                "{bad}"
            );
        }
        let long = format!(r#"{{"a":{}}}"#, "9".repeat(400));
        assert_eq!(scan(&long, 0, &l).unwrap_err().reason(), "invalid_json");
        for good in [
            r#"{"a":1e308,"b":-2.5E-400,"c":0,"d":[1,-0.5e3],"t":true,"f":false}"#,
            r#"{"e":"1e999 in a string"}"#,
        ] {
            assert!(scan(good, 0, &l).is_ok(), "{good}");
            serde_json::from_str::<Value>(good).expect("serde_json agrees");
        }
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
        let mut ctx = Context::parse(text);
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
        let spaced = Context::parse("{ \"a\" : [ 1, 2 ] }");
        assert_eq!(spaced.to_json(Shape { spaced: true }), r#"{"a":[1,2]}"#);
        let empty = Context::default();
        assert_eq!(empty.to_json(Shape::default()), "{}");
    }
}
