//! The registry's in-memory state and rules, without IO.
//!
//! Contract: the state is a pure function of the records applied to it, in log order, so
//! replaying the `_schemas` topic from the beginning rebuilds exactly what was served before a
//! restart (ids and versions included). [`State::plan_register`] decides what a registration
//! must append; nothing changes until the appended record is applied.

use std::collections::{BTreeMap, HashMap};

use apache_avro::schema_compatibility::SchemaCompatibility;
use apache_avro::Schema;
use serde::{Deserialize, Serialize};

/// Compatibility levels, as Confluent names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Compatibility {
    None,
    Backward,
    BackwardTransitive,
    Forward,
    ForwardTransitive,
    Full,
    FullTransitive,
}

impl Compatibility {
    /// Confluent's name of the level.
    pub fn as_str(self) -> &'static str {
        match self {
            Compatibility::None => "NONE",
            Compatibility::Backward => "BACKWARD",
            Compatibility::BackwardTransitive => "BACKWARD_TRANSITIVE",
            Compatibility::Forward => "FORWARD",
            Compatibility::ForwardTransitive => "FORWARD_TRANSITIVE",
            Compatibility::Full => "FULL",
            Compatibility::FullTransitive => "FULL_TRANSITIVE",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        serde_json::from_value(serde_json::Value::String(s.to_ascii_uppercase())).ok()
    }
}

/// One registered version of a subject.
#[derive(Debug, Clone, PartialEq)]
pub struct Version {
    pub version: u32,
    pub id: u32,
}

/// A schema known by id.
#[derive(Debug, Clone)]
pub struct Stored {
    /// The text as first registered.
    pub text: String,
    /// Parsing Canonical Form, for equality.
    pub canonical: String,
    pub parsed: Schema,
}

/// The key of a `_schemas` record (Confluent's format).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "keytype", rename_all = "UPPERCASE")]
pub enum RecordKey {
    Schema {
        subject: String,
        version: u32,
        magic: u8,
    },
    Config {
        subject: Option<String>,
        magic: u8,
    },
    Noop {
        magic: u8,
    },
}

/// The value of a SCHEMA record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SchemaValue {
    pub subject: String,
    pub version: u32,
    pub id: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema_type: Option<String>,
    pub schema: String,
    #[serde(default)]
    pub deleted: bool,
}

/// The value of a CONFIG record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConfigValue {
    pub compatibility_level: Compatibility,
}

/// A record of the log: what the store appends and the state applies.
#[derive(Debug, Clone, PartialEq)]
pub enum Record {
    Schema(SchemaValue),
    Config {
        subject: Option<String>,
        level: Compatibility,
    },
}

impl Record {
    /// The (key, value) JSON texts written to the topic.
    pub fn to_kv(&self) -> (String, String) {
        match self {
            Record::Schema(v) => {
                let key = RecordKey::Schema {
                    subject: v.subject.clone(),
                    version: v.version,
                    magic: 1,
                };
                (json(&key), json(v))
            }
            Record::Config { subject, level } => {
                let key = RecordKey::Config {
                    subject: subject.clone(),
                    magic: 0,
                };
                (
                    json(&key),
                    json(&ConfigValue {
                        compatibility_level: *level,
                    }),
                )
            }
        }
    }

    /// Parses a topic record; `Ok(None)` for records that carry nothing to apply (NOOP,
    /// tombstones of unknown keys).
    pub fn from_kv(key: &[u8], value: Option<&[u8]>) -> Result<Option<Record>, String> {
        let key: RecordKey = serde_json::from_slice(key).map_err(|e| format!("bad key: {e}"))?;
        let Some(value) = value else { return Ok(None) };
        match key {
            RecordKey::Schema { .. } => {
                let v: SchemaValue =
                    serde_json::from_slice(value).map_err(|e| format!("bad schema value: {e}"))?;
                Ok(Some(Record::Schema(v)))
            }
            RecordKey::Config { subject, .. } => {
                let v: ConfigValue =
                    serde_json::from_slice(value).map_err(|e| format!("bad config value: {e}"))?;
                Ok(Some(Record::Config {
                    subject,
                    level: v.compatibility_level,
                }))
            }
            RecordKey::Noop { .. } => Ok(None),
        }
    }
}

fn json<T: Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_default()
}

/// Why a registration or lookup failed; mapped to Confluent's error codes by the API.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RegistryError {
    #[error("Invalid schema: {0}")]
    InvalidSchema(String),
    #[error("Schema being registered is incompatible with an earlier schema for subject \"{subject}\", details: [{details}]")]
    Incompatible { subject: String, details: String },
    #[error("Subject '{0}' not found.")]
    SubjectNotFound(String),
    #[error("Version {0} not found.")]
    VersionNotFound(String),
    #[error("Schema not found")]
    SchemaNotFound,
    #[error("Schema {0} not found")]
    SchemaIdNotFound(u32),
    #[error("Subject '{0}' does not have subject-level compatibility configured")]
    SubjectConfigNotFound(String),
    #[error("The specified version '{0}' is not a valid version id. Allowed values are between [1, 2^31-1] and the string \"latest\"")]
    InvalidVersion(String),
    #[error("Invalid compatibility level. Valid values are none, backward, forward, full, backward_transitive, forward_transitive, and full_transitive")]
    InvalidCompatibility,
    #[error("Unsupported schema type {0}: this registry stores AVRO schemas")]
    UnsupportedType(String),
    #[error("Error in the backend data store: {0}")]
    Store(String),
}

impl RegistryError {
    /// (HTTP status, Confluent error code).
    pub fn codes(&self) -> (u16, u32) {
        match self {
            RegistryError::InvalidSchema(_) | RegistryError::UnsupportedType(_) => (422, 42201),
            RegistryError::Incompatible { .. } => (409, 409),
            RegistryError::SubjectNotFound(_) => (404, 40401),
            RegistryError::VersionNotFound(_) => (404, 40402),
            RegistryError::SchemaNotFound | RegistryError::SchemaIdNotFound(_) => (404, 40403),
            RegistryError::SubjectConfigNotFound(_) => (404, 40408),
            RegistryError::InvalidVersion(_) => (422, 42202),
            RegistryError::InvalidCompatibility => (422, 42203),
            RegistryError::Store(_) => (500, 50001),
        }
    }
}

/// What a registration resolves to.
#[derive(Debug, Clone, PartialEq)]
pub enum Plan {
    /// Already registered under the subject: answer with this id, append nothing.
    Existing { id: u32, version: u32 },
    /// Append this record, then answer with its id.
    Append(SchemaValue),
}

/// A version selector: a number or `latest`.
pub fn parse_version(s: &str) -> Result<Option<u32>, RegistryError> {
    if s == "latest" || s == "-1" {
        return Ok(None);
    }
    match s.parse::<u32>() {
        Ok(v) if v >= 1 && v <= i32::MAX as u32 => Ok(Some(v)),
        _ => Err(RegistryError::InvalidVersion(s.to_string())),
    }
}

/// The registry's state.
#[derive(Debug, Default)]
pub struct State {
    schemas: HashMap<u32, Stored>,
    by_canonical: HashMap<String, u32>,
    subjects: BTreeMap<String, Vec<Version>>,
    global: Option<Compatibility>,
    subject_config: HashMap<String, Compatibility>,
    max_id: u32,
}

/// Parses an Avro schema and returns it with its canonical form.
pub fn parse_schema(text: &str) -> Result<(Schema, String), RegistryError> {
    let parsed =
        Schema::parse_str(text).map_err(|e| RegistryError::InvalidSchema(e.to_string()))?;
    let canonical = parsed.canonical_form();
    Ok((parsed, canonical))
}

impl State {
    /// Applies one record of the log.
    pub fn apply(&mut self, record: Record) {
        match record {
            Record::Schema(v) => {
                if v.deleted {
                    if let Some(vs) = self.subjects.get_mut(&v.subject) {
                        vs.retain(|x| x.version != v.version);
                        if vs.is_empty() {
                            self.subjects.remove(&v.subject);
                        }
                    }
                    return;
                }
                if !self.schemas.contains_key(&v.id) {
                    match parse_schema(&v.schema) {
                        Ok((parsed, canonical)) => {
                            self.by_canonical.entry(canonical.clone()).or_insert(v.id);
                            self.schemas.insert(
                                v.id,
                                Stored {
                                    text: v.schema.clone(),
                                    canonical,
                                    parsed,
                                },
                            );
                        }
                        Err(e) => {
                            tracing::warn!(id = v.id, error = %e, "skipping unparsable schema in the log");
                            return;
                        }
                    }
                }
                self.max_id = self.max_id.max(v.id);
                let versions = self.subjects.entry(v.subject).or_default();
                versions.retain(|x| x.version != v.version);
                versions.push(Version {
                    version: v.version,
                    id: v.id,
                });
                versions.sort_by_key(|x| x.version);
            }
            Record::Config {
                subject: None,
                level,
            } => self.global = Some(level),
            Record::Config {
                subject: Some(s),
                level,
            } => {
                self.subject_config.insert(s, level);
            }
        }
    }

    pub fn global_compatibility(&self) -> Compatibility {
        self.global.unwrap_or(Compatibility::Backward)
    }

    pub fn subject_compatibility(&self, subject: &str) -> Option<Compatibility> {
        self.subject_config.get(subject).copied()
    }

    fn effective_compatibility(&self, subject: &str) -> Compatibility {
        self.subject_compatibility(subject)
            .unwrap_or_else(|| self.global_compatibility())
    }

    pub fn schema(&self, id: u32) -> Result<&Stored, RegistryError> {
        self.schemas
            .get(&id)
            .ok_or(RegistryError::SchemaIdNotFound(id))
    }

    pub fn subjects(&self) -> Vec<String> {
        self.subjects.keys().cloned().collect()
    }

    pub fn versions(&self, subject: &str) -> Result<Vec<u32>, RegistryError> {
        self.subjects
            .get(subject)
            .map(|vs| vs.iter().map(|v| v.version).collect())
            .ok_or_else(|| RegistryError::SubjectNotFound(subject.to_string()))
    }

    /// The version `selector` (`None` = latest) of `subject`.
    pub fn version(&self, subject: &str, selector: Option<u32>) -> Result<Version, RegistryError> {
        let vs = self
            .subjects
            .get(subject)
            .ok_or_else(|| RegistryError::SubjectNotFound(subject.to_string()))?;
        let found = match selector {
            None => vs.last(),
            Some(n) => vs.iter().find(|v| v.version == n),
        };
        found.cloned().ok_or_else(|| {
            RegistryError::VersionNotFound(
                selector
                    .map(|n| n.to_string())
                    .unwrap_or_else(|| "latest".into()),
            )
        })
    }

    /// Finds `text` among the versions of `subject`.
    pub fn lookup(&self, subject: &str, text: &str) -> Result<Version, RegistryError> {
        let (_, canonical) = parse_schema(text)?;
        let vs = self
            .subjects
            .get(subject)
            .ok_or_else(|| RegistryError::SubjectNotFound(subject.to_string()))?;
        vs.iter()
            .find(|v| {
                self.schemas
                    .get(&v.id)
                    .is_some_and(|s| s.canonical == canonical)
            })
            .cloned()
            .ok_or(RegistryError::SchemaNotFound)
    }

    /// Checks `candidate` against the versions of `subject` that `level` requires.
    fn check_compatible(
        &self,
        subject: &str,
        candidate: &Schema,
        level: Compatibility,
    ) -> Result<(), RegistryError> {
        let Some(vs) = self.subjects.get(subject) else {
            return Ok(());
        };
        let against: Vec<&Version> = match level {
            Compatibility::None => return Ok(()),
            Compatibility::Backward | Compatibility::Forward | Compatibility::Full => {
                vs.last().into_iter().collect()
            }
            _ => vs.iter().collect(),
        };
        let backward = matches!(
            level,
            Compatibility::Backward
                | Compatibility::BackwardTransitive
                | Compatibility::Full
                | Compatibility::FullTransitive
        );
        let forward = matches!(
            level,
            Compatibility::Forward
                | Compatibility::ForwardTransitive
                | Compatibility::Full
                | Compatibility::FullTransitive
        );
        for v in against {
            let Some(old) = self.schemas.get(&v.id) else {
                continue;
            };
            if backward {
                // The new schema must read data written with the old one.
                SchemaCompatibility::can_read(&old.parsed, candidate).map_err(|e| {
                    RegistryError::Incompatible {
                        subject: subject.to_string(),
                        details: format!(
                            "{{oldSchemaVersion: {}}}, {{compatibility: '{}'}}, {e}",
                            v.version,
                            level.as_str()
                        ),
                    }
                })?;
            }
            if forward {
                // The old schema must read data written with the new one.
                SchemaCompatibility::can_read(candidate, &old.parsed).map_err(|e| {
                    RegistryError::Incompatible {
                        subject: subject.to_string(),
                        details: format!(
                            "{{oldSchemaVersion: {}}}, {{compatibility: '{}'}}, {e}",
                            v.version,
                            level.as_str()
                        ),
                    }
                })?;
            }
        }
        Ok(())
    }

    /// Whether `text` could be registered under `subject` (against version `selector`, or
    /// against what the subject's level requires when `selector` is `None`).
    pub fn test_compatibility(
        &self,
        subject: &str,
        text: &str,
        selector: Option<u32>,
    ) -> Result<bool, RegistryError> {
        let (parsed, _) = parse_schema(text)?;
        let level = self.effective_compatibility(subject);
        let res = match selector {
            None => self.check_compatible(subject, &parsed, level),
            Some(_) => {
                let v = self.version(subject, selector)?;
                let mut single = State::default();
                if let Ok(s) = self.schema(v.id) {
                    single.apply(Record::Schema(SchemaValue {
                        subject: subject.into(),
                        version: 1,
                        id: v.id,
                        schema_type: None,
                        schema: s.text.clone(),
                        deleted: false,
                    }));
                }
                let level = match level {
                    Compatibility::BackwardTransitive => Compatibility::Backward,
                    Compatibility::ForwardTransitive => Compatibility::Forward,
                    Compatibility::FullTransitive => Compatibility::Full,
                    other => other,
                };
                single.check_compatible(subject, &parsed, level)
            }
        };
        match res {
            Ok(()) => Ok(true),
            Err(RegistryError::Incompatible { .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Decides what registering `text` under `subject` means.
    pub fn plan_register(&self, subject: &str, text: &str) -> Result<Plan, RegistryError> {
        let (parsed, canonical) = parse_schema(text)?;
        if let Some(vs) = self.subjects.get(subject) {
            if let Some(v) = vs.iter().find(|v| {
                self.schemas
                    .get(&v.id)
                    .is_some_and(|s| s.canonical == canonical)
            }) {
                return Ok(Plan::Existing {
                    id: v.id,
                    version: v.version,
                });
            }
        }
        self.check_compatible(subject, &parsed, self.effective_compatibility(subject))?;
        let id = self
            .by_canonical
            .get(&canonical)
            .copied()
            .unwrap_or(self.max_id + 1);
        let version = self
            .subjects
            .get(subject)
            .and_then(|vs| vs.last())
            .map_or(1, |v| v.version + 1);
        Ok(Plan::Append(SchemaValue {
            subject: subject.to_string(),
            version,
            id,
            schema_type: None,
            schema: text.to_string(),
            deleted: false,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const V1: &str = r#"{"type":"record","name":"R","fields":[{"name":"a","type":"string"}]}"#;
    const V2_OK: &str = r#"{"type":"record","name":"R","fields":[{"name":"a","type":"string"},{"name":"b","type":"int","default":0}]}"#;
    const V2_BAD: &str = r#"{"type":"record","name":"R","fields":[{"name":"a","type":"string"},{"name":"b","type":"int"}]}"#;

    fn register(state: &mut State, subject: &str, text: &str) -> Result<u32, RegistryError> {
        match state.plan_register(subject, text)? {
            Plan::Existing { id, .. } => Ok(id),
            Plan::Append(v) => {
                let id = v.id;
                // Through the log format, as the store does.
                let (k, val) = Record::Schema(v).to_kv();
                let rec = Record::from_kv(k.as_bytes(), Some(val.as_bytes()))
                    .expect("parse")
                    .expect("record");
                state.apply(rec);
                Ok(id)
            }
        }
    }

    #[test]
    fn same_schema_same_id_new_schema_new_version() {
        let mut s = State::default();
        let id1 = register(&mut s, "t-value", V1).expect("v1");
        // Same schema again (different whitespace): same id, no new version.
        let again = register(&mut s, "t-value", &V1.replace(',', " , ")).expect("again");
        assert_eq!(id1, again);
        assert_eq!(s.versions("t-value").expect("versions"), vec![1]);
        let id2 = register(&mut s, "t-value", V2_OK).expect("v2");
        assert_ne!(id1, id2);
        assert_eq!(s.versions("t-value").expect("versions"), vec![1, 2]);
        // The same schema under another subject keeps its id.
        assert_eq!(register(&mut s, "other-value", V1).expect("other"), id1);
        assert_eq!(
            s.version("t-value", None).expect("latest"),
            Version {
                version: 2,
                id: id2
            }
        );
        assert_eq!(s.lookup("t-value", V1).expect("lookup").version, 1);
    }

    #[test]
    fn backward_is_default_and_enforced() {
        let mut s = State::default();
        register(&mut s, "t", V1).expect("v1");
        let err = register(&mut s, "t", V2_BAD).unwrap_err();
        assert_eq!(err.codes(), (409, 409));
        assert!(!s.test_compatibility("t", V2_BAD, None).expect("test"));
        assert!(s.test_compatibility("t", V2_OK, None).expect("test"));
        s.apply(Record::Config {
            subject: Some("t".into()),
            level: Compatibility::None,
        });
        assert!(register(&mut s, "t", V2_BAD).is_ok());
    }

    #[test]
    fn forward_checks_the_other_direction() {
        let mut s = State::default();
        s.apply(Record::Config {
            subject: None,
            level: Compatibility::Forward,
        });
        register(&mut s, "t", V2_OK).expect("v2 first");
        // Removing a field without default: old readers (V2_OK, b has default) can still read.
        assert!(register(&mut s, "t", V1).is_ok());
        let mut s = State::default();
        s.apply(Record::Config {
            subject: None,
            level: Compatibility::Forward,
        });
        register(&mut s, "t", V1).expect("v1");
        // Adding a field: old reader V1 ignores it, so forward-compatible.
        assert!(register(&mut s, "t", V2_BAD).is_ok());
    }

    #[test]
    fn errors_and_codes() {
        let s = State::default();
        assert_eq!(
            s.plan_register("t", "{not json").unwrap_err().codes(),
            (422, 42201)
        );
        assert_eq!(s.versions("nope").unwrap_err().codes(), (404, 40401));
        assert_eq!(s.schema(7).unwrap_err().codes(), (404, 40403));
        assert_eq!(parse_version("0").unwrap_err().codes(), (422, 42202));
        assert_eq!(parse_version("latest"), Ok(None));
        assert_eq!(
            Compatibility::parse("full_transitive"),
            Some(Compatibility::FullTransitive)
        );
    }

    #[test]
    fn replay_rebuilds_the_same_state() {
        let mut log = Vec::new();
        let mut s = State::default();
        for (subject, text) in [("a", V1), ("a", V2_OK), ("b", V2_OK)] {
            if let Plan::Append(v) = s.plan_register(subject, text).expect("plan") {
                let rec = Record::Schema(v);
                log.push(rec.to_kv());
                s.apply(rec);
            }
        }
        let mut replayed = State::default();
        for (k, v) in &log {
            replayed.apply(
                Record::from_kv(k.as_bytes(), Some(v.as_bytes()))
                    .expect("ok")
                    .expect("some"),
            );
        }
        assert_eq!(replayed.subjects(), s.subjects());
        assert_eq!(replayed.version("b", None), s.version("b", None));
        assert_eq!(replayed.version("a", Some(2)), s.version("a", Some(2)));
    }

    #[test]
    fn confluent_key_format() {
        let (k, _) = Record::Config {
            subject: None,
            level: Compatibility::Full,
        }
        .to_kv();
        assert_eq!(k, r#"{"keytype":"CONFIG","subject":null,"magic":0}"#);
        let (k, v) = Record::Schema(SchemaValue {
            subject: "s".into(),
            version: 1,
            id: 3,
            schema_type: None,
            schema: "\"string\"".into(),
            deleted: false,
        })
        .to_kv();
        assert_eq!(
            k,
            r#"{"keytype":"SCHEMA","subject":"s","version":1,"magic":1}"#
        );
        assert!(v.contains(r#""id":3"#));
        assert_eq!(
            Record::from_kv(br#"{"keytype":"NOOP","magic":0}"#, Some(b"{}")),
            Ok(None)
        );
    }
}
