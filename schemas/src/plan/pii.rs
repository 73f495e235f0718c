//! Personal data classed in the tracking plan, applied to one event: values whose action is
//! `hash` are replaced by a keyed HMAC-SHA-256, values whose action is `drop` are removed.
//!
//! Contract:
//! - Pure apart from the key it is given; [`apply`] changes only the fields the plan classes as
//!   PII with `hash` or `drop` (properties and page/screen properties of the planned shape,
//!   identify's traits, declared `context` paths) and returns `None` for a part it did not
//!   change, so an event without PII is passed on byte for byte.
//! - A hashed value is `hmac-sha256:v<key version>:<64 hex digits>` of the value's text (a
//!   string's characters, any other value's JSON text): the same value under the same key always
//!   gives the same text (joins and distinct counts still work), a different key version gives a
//!   different one, and without the key it cannot be reversed by guessing.
//! - Idempotent: a value that is already a keyed hash ([`is_keyed_hash`]) is left as it is, so
//!   a pseudonymised event that was dead-lettered and is replayed is not hashed twice.
//! - [`PiiKey`]'s `Debug` never shows the key; a [`PiiKeyring`] holds every version still
//!   needed after a rotation, the newest hashing new values.

use hmac::{Hmac, Mac};
use serde_json::{Map, Value};
use sha2::Sha256;

use super::model::PiiAction;
use super::parse::{Plan, Shape};
use crate::EventType;

/// A versioned HMAC key.
#[derive(Clone)]
pub struct PiiKey {
    pub version: u32,
    key: Vec<u8>,
}

impl std::fmt::Debug for PiiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PiiKey {{ version: {}, key: <redacted> }}", self.version)
    }
}

/// A key specification that cannot be used (never repeats the key).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PiiKeyError {
    #[error("PII key: expected `v<version>:<base64 key>` (e.g. v1:…), got {0} characters that do not parse")]
    Format(usize),
    #[error("PII key: the key must be at least 32 bytes (decoded), got {0}")]
    Short(usize),
    #[error("PII keys: version {0} is given twice")]
    Duplicate(u32),
    #[error("cannot read the PII key file {path}: {error}")]
    File { path: String, error: String },
}

impl PiiKey {
    /// Parses `v<version>:<base64 key>` (the contents of a key file or environment variable,
    /// surrounding whitespace ignored).
    pub fn parse(spec: &str) -> Result<PiiKey, PiiKeyError> {
        use base64::Engine;
        let spec = spec.trim();
        let bad = || PiiKeyError::Format(spec.len());
        let (version, key) = spec.split_once(':').ok_or_else(bad)?;
        let version: u32 = version
            .strip_prefix('v')
            .and_then(|v| v.parse().ok())
            .ok_or_else(bad)?;
        let key = base64::engine::general_purpose::STANDARD
            .decode(key.trim())
            .map_err(|_| bad())?;
        if key.len() < 32 {
            return Err(PiiKeyError::Short(key.len()));
        }
        Ok(PiiKey { version, key })
    }

    /// The keyed hash of `text`, with the key version.
    pub fn hash(&self, text: &str) -> String {
        use std::fmt::Write;
        #[allow(clippy::expect_used)] // HMAC accepts keys of any length
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key).expect("any key length");
        mac.update(text.as_bytes());
        let mut out = format!("hmac-sha256:v{}:", self.version);
        for b in mac.finalize().into_bytes() {
            let _ = write!(out, "{b:02x}");
        }
        out
    }
}

/// The PII keys a service holds: every version still needed, the newest hashing new values.
///
/// A key file (or variable) holds one `v<version>:<base64 key>` per line (or separated by
/// spaces or commas): after a rotation, keep the old versions listed, so that values hashed
/// under them (the suppression list's subjects) are still recognised.
#[derive(Debug, Clone)]
pub struct PiiKeyring {
    /// By version, ascending; never empty.
    keys: Vec<PiiKey>,
}

impl PiiKeyring {
    /// Parses one or more key specifications; versions must be distinct.
    pub fn parse(text: &str) -> Result<PiiKeyring, PiiKeyError> {
        let mut keys = text
            .split(|c: char| c.is_whitespace() || c == ',')
            .filter(|t| !t.is_empty())
            .map(PiiKey::parse)
            .collect::<Result<Vec<_>, _>>()?;
        if keys.is_empty() {
            return Err(PiiKeyError::Format(0));
        }
        keys.sort_by_key(|k| k.version);
        if let Some(w) = keys.windows(2).find(|w| w[0].version == w[1].version) {
            return Err(PiiKeyError::Duplicate(w[0].version));
        }
        Ok(PiiKeyring { keys })
    }

    /// The key of the highest version: what new values are hashed with.
    pub fn current(&self) -> &PiiKey {
        // `parse` refuses an empty ring.
        &self.keys[self.keys.len() - 1]
    }

    /// Every key, oldest first.
    pub fn all(&self) -> &[PiiKey] {
        &self.keys
    }

    /// Reads the ring from `file` (wins) or `text` (an environment variable's value); `None`
    /// when neither is set. Errors name the file, never the key.
    pub fn load(
        file: Option<&std::path::Path>,
        text: Option<&str>,
    ) -> Result<Option<PiiKeyring>, PiiKeyError> {
        let text = match file {
            Some(path) => std::fs::read_to_string(path).map_err(|e| PiiKeyError::File {
                path: path.display().to_string(),
                error: e.to_string(),
            })?,
            None => match text {
                Some(t) => t.to_string(),
                None => return Ok(None),
            },
        };
        PiiKeyring::parse(&text).map(Some)
    }
}

/// Whether `s` has the form of a keyed hash: `hmac-sha256:v<version>:<64 lowercase hex>`.
pub fn is_keyed_hash(s: &str) -> bool {
    let Some(rest) = s.strip_prefix("hmac-sha256:v") else {
        return false;
    };
    let Some((version, hex)) = rest.split_once(':') else {
        return false;
    };
    !version.is_empty()
        && version.bytes().all(|b| b.is_ascii_digit())
        && hex.len() == 64
        && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// The parts [`apply`] changed (`None`: unchanged), and how many values it hashed and dropped.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Pseudonymised {
    pub properties: Option<String>,
    pub traits: Option<String>,
    pub context: Option<String>,
    pub hashed: u32,
    pub dropped: u32,
}

impl Pseudonymised {
    pub fn changed(&self) -> bool {
        self.properties.is_some() || self.traits.is_some() || self.context.is_some()
    }
}

/// Why PII could not be applied: the plan says to hash but no key was configured.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path} is PII to hash, and no PII key is configured")]
pub struct NoKey {
    pub path: String,
}

/// Applies the plan's PII actions to one event's parts.
pub fn apply(
    plan: &Plan,
    key: Option<&PiiKey>,
    kind: EventType,
    name: Option<&str>,
    properties: &str,
    traits: &str,
    context: &str,
) -> Result<Pseudonymised, NoKey> {
    let mut out = Pseudonymised::default();
    let shape = match kind {
        EventType::Track => name.and_then(|n| plan.events.get(n)),
        EventType::Page => plan.page.as_ref(),
        EventType::Screen => plan.screen.as_ref(),
        EventType::Identify => plan.identify.as_ref(),
        EventType::Group | EventType::Alias => None,
    };
    if let Some(shape) = shape {
        let (part, text) = if kind == EventType::Identify {
            ("traits", traits)
        } else {
            ("properties", properties)
        };
        let changed = top_fields(plan, shape, key, part, text, &mut out)?;
        match part {
            "traits" => out.traits = changed,
            _ => out.properties = changed,
        }
    }
    out.context = context_fields(plan, key, context, &mut out)?;
    Ok(out)
}

/// The PII actions of a shape's fields, in name order.
fn pii_fields<'p>(
    plan: &'p Plan,
    shape: &'p Shape,
) -> impl Iterator<Item = (&'p str, PiiAction)> + 'p {
    shape.fields.keys().filter_map(move |name| {
        let pii = plan.property(name)?.def.pii?;
        (pii.action != PiiAction::Keep).then_some((name.as_str(), pii.action))
    })
}

/// The text a value is hashed from: a string's characters, any other value's JSON text.
fn hash_input(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn act(
    v: &mut Value,
    action: PiiAction,
    key: Option<&PiiKey>,
    path: &str,
    out: &mut Pseudonymised,
) -> Result<bool, NoKey> {
    if v.is_null() {
        return Ok(false);
    }
    match action {
        PiiAction::Keep => Ok(false),
        PiiAction::Drop => Ok(true), // the caller removes it
        PiiAction::Hash if v.as_str().is_some_and(is_keyed_hash) => Ok(false),
        PiiAction::Hash => {
            let key = key.ok_or_else(|| NoKey {
                path: path.to_string(),
            })?;
            *v = Value::String(key.hash(&hash_input(v)));
            out.hashed += 1;
            Ok(false)
        }
    }
}

fn top_fields(
    plan: &Plan,
    shape: &Shape,
    key: Option<&PiiKey>,
    part: &str,
    text: &str,
    out: &mut Pseudonymised,
) -> Result<Option<String>, NoKey> {
    let fields: Vec<(&str, PiiAction)> = pii_fields(plan, shape).collect();
    if fields.is_empty() {
        return Ok(None);
    }
    let Ok(mut map) = serde_json::from_str::<Map<String, Value>>(text) else {
        return Ok(None); // not an object: the plan check reports it
    };
    let mut changed = false;
    for (name, action) in fields {
        let Some(v) = map.get_mut(name) else { continue };
        let path = format!("{part}.{name}");
        let hashed_before = out.hashed;
        if act(v, action, key, &path, out)? {
            map.remove(name);
            out.dropped += 1;
            changed = true;
        }
        changed |= out.hashed != hashed_before;
    }
    Ok(changed.then(|| Value::Object(map).to_string()))
}

fn context_fields(
    plan: &Plan,
    key: Option<&PiiKey>,
    text: &str,
    out: &mut Pseudonymised,
) -> Result<Option<String>, NoKey> {
    let fields: Vec<(&Vec<String>, &str, PiiAction)> = plan
        .context
        .iter()
        .zip(&plan.context_steps)
        .filter_map(|((path, p), steps)| {
            let pii = p.def.pii?;
            (pii.action != PiiAction::Keep).then_some((steps, path.as_str(), pii.action))
        })
        .collect();
    if fields.is_empty() {
        return Ok(None);
    }
    let Ok(mut root) = serde_json::from_str::<Value>(text) else {
        return Ok(None);
    };
    let mut changed = false;
    for (steps, path, action) in fields {
        let Some((last, parents)) = steps.split_last() else {
            continue;
        };
        let Some(parent) = parents
            .iter()
            .try_fold(&mut root, |v, s| v.get_mut(s.as_str()))
        else {
            continue;
        };
        let Some(obj) = parent.as_object_mut() else {
            continue;
        };
        let Some(v) = obj.get_mut(last.as_str()) else {
            continue;
        };
        let hashed_before = out.hashed;
        if act(v, action, key, &format!("context.{path}"), out)? {
            obj.remove(last.as_str());
            out.dropped += 1;
            changed = true;
        }
        changed |= out.hashed != hashed_before;
    }
    Ok(changed.then(|| root.to_string()))
}
