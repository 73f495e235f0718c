//! Configuration loading: defaults ← optional file (TOML) ← `NORTHSTAR_*` environment.
//!
//! Contract: a service's configuration is one serde struct with `deny_unknown_fields` and a
//! `Default`; nested sections are addressed in the environment with a double underscore, so
//! `kafka.brokers` is `NORTHSTAR_KAFKA__BROKERS`. Any error names the offending key.

use std::path::Path;

use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use serde::de::DeserializeOwned;
use serde::Serialize;

/// Prefix of every environment override.
pub const ENV_PREFIX: &str = "NORTHSTAR_";

/// A configuration that could not be loaded; the message names the file or key at fault.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("configuration file {path} does not exist")]
    MissingFile { path: String },
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

/// Loads `T` from its defaults, then the TOML file at `path` (if any), then `NORTHSTAR_*`
/// environment variables (`__` separates nested keys).
pub fn load_config<T>(path: Option<&Path>) -> Result<T, ConfigError>
where
    T: DeserializeOwned + Serialize + Default,
{
    load_config_from(path, env_for::<T>(ENV_PREFIX))
}

/// The environment provider for `T`: `PREFIX*` variables whose first key segment is one of
/// `T`'s top-level fields. Variables meant for another service (all services share the
/// prefix) are ignored; a misspelt key inside a known section is still an error.
fn env_for<T: Serialize + Default>(prefix: &str) -> Env {
    let known: Vec<String> = match serde_json::to_value(T::default()) {
        Ok(serde_json::Value::Object(map)) => map.keys().map(|k| k.to_ascii_lowercase()).collect(),
        _ => Vec::new(),
    };
    Env::prefixed(prefix).filter_map(move |key| {
        let key = key.as_str().to_ascii_lowercase();
        let top = key.split("__").next().unwrap_or_default();
        known
            .iter()
            .any(|k| k == top)
            .then(|| key.replace("__", ".").into())
    })
}

fn load_config_from<T>(path: Option<&Path>, env: Env) -> Result<T, ConfigError>
where
    T: DeserializeOwned + Serialize + Default,
{
    let mut figment = Figment::from(Serialized::defaults(T::default()));
    if let Some(path) = path {
        if !path.exists() {
            return Err(ConfigError::MissingFile {
                path: path.display().to_string(),
            });
        }
        figment = figment.merge(Toml::file(path));
    }
    figment = figment.merge(env);
    figment.extract().map_err(|e| {
        let msgs: Vec<String> = e.into_iter().map(|e| e.to_string()).collect();
        ConfigError::Invalid(msgs.join("; "))
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::result_large_err)] // figment::Jail closures
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Serialize, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields, default)]
    struct Inner {
        brokers: String,
        retries: u32,
    }
    impl Default for Inner {
        fn default() -> Self {
            Self {
                brokers: "127.0.0.1:9092".into(),
                retries: 3,
            }
        }
    }
    #[derive(Debug, Default, Serialize, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields, default)]
    struct Cfg {
        inner: Inner,
        name: String,
    }

    #[test]
    fn defaults_then_file_then_env() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("c.toml");
        std::fs::write(&file, "name = \"from-file\"\n[inner]\nretries = 7\n").expect("write");
        figment::Jail::expect_with(|jail| {
            jail.set_env("NSTEST_INNER__BROKERS", "b:1");
            jail.set_env("NSTEST_OTHER_SERVICE__X", "ignored");
            let cfg: Cfg = load_config_from(Some(&file), env_for::<Cfg>("NSTEST_")).expect("load");
            assert_eq!(cfg.inner.brokers, "b:1");
            assert_eq!(cfg.inner.retries, 7);
            assert_eq!(cfg.name, "from-file");
            Ok(())
        });
    }

    #[test]
    fn misspelt_env_key_in_a_known_section_is_an_error() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("NSTEST2_INNER__BROKERZ", "x");
            let err = load_config_from::<Cfg>(None, env_for::<Cfg>("NSTEST2_")).unwrap_err();
            assert!(err.to_string().contains("brokerz"), "{err}");
            Ok(())
        });
    }

    #[test]
    fn numeric_kafka_properties_from_env() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("NSTEST3_KAFKA__PROPERTIES__SESSION_TIMEOUT_MS", "6000");
            let cfg: crate::kafka::KafkaConfigHolder =
                load_config_from(None, env_for::<crate::kafka::KafkaConfigHolder>("NSTEST3_"))
                    .expect("load");
            assert_eq!(
                cfg.kafka.client_config("x").get("session.timeout.ms"),
                Some("6000")
            );
            Ok(())
        });
    }

    #[test]
    fn unknown_key_is_named() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("c.toml");
        std::fs::write(&file, "[inner]\nbrokerz = \"x\"\n").expect("write");
        let err = load_config_from::<Cfg>(Some(&file), Env::prefixed("NSTEST_NONE_")).unwrap_err();
        assert!(err.to_string().contains("brokerz"), "{err}");
    }

    #[test]
    fn missing_file_is_an_error() {
        let err =
            load_config_from::<Cfg>(Some(Path::new("/nonexistent/x.toml")), Env::prefixed("X_"))
                .unwrap_err();
        assert!(matches!(err, ConfigError::MissingFile { .. }));
    }
}

/// A secret setting (a key, a password): its `Debug` never shows it, so a configuration can be
/// logged whole.
#[derive(Clone, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct Redacted(pub String);

impl std::fmt::Debug for Redacted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}
