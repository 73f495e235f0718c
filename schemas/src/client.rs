//! A minimal Confluent Schema Registry client: register a schema, fetch a schema by id.
//!
//! Contract: speaks only the public Schema Registry REST API, so it works with this project's
//! registry or any compatible one; schemas fetched by id are cached for the process lifetime
//! (ids are immutable).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use apache_avro::Schema;
use serde::Deserialize;

/// A registry call that failed.
#[derive(Debug, thiserror::Error)]
pub enum RegistryClientError {
    #[error("schema registry unreachable at {url}: {reason}")]
    Unreachable { url: String, reason: String },
    #[error("schema registry answered {status} for {url}: {body}")]
    Status {
        url: String,
        status: u16,
        body: String,
    },
    #[error("schema {id} from the registry does not parse: {reason}")]
    BadSchema { id: u32, reason: String },
}

impl RegistryClientError {
    /// Whether retrying later may succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            RegistryClientError::Unreachable { .. } => true,
            RegistryClientError::Status { status, .. } => *status >= 500,
            RegistryClientError::BadSchema { .. } => false,
        }
    }
}

#[derive(Deserialize)]
struct IdResponse {
    id: u32,
}

#[derive(Deserialize)]
struct SchemaResponse {
    schema: String,
}

/// Credentials for the registry, as Confluent's clients take them (`[registry_auth]`,
/// `NORTHSTAR_REGISTRY_AUTH__*`). A URL with `user:password@` in it works too; it is never
/// printed with them.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RegistryAuth {
    /// `user:password` for HTTP Basic (Confluent's `basic.auth.user.info`).
    pub basic_auth_user_info: Option<northstar_runtime::Redacted>,
    /// A bearer token (Confluent's `bearer.auth.token`).
    pub bearer_token: Option<northstar_runtime::Redacted>,
    /// A PEM file of the CA that signed an `https://` registry's certificate, when it is not
    /// in the system's trust store (Confluent's `schema.registry.ssl.ca.location`).
    pub ca_file: Option<std::path::PathBuf>,
}

/// How requests authenticate.
#[derive(Clone)]
enum Credentials {
    None,
    Basic { user: String, password: String },
    Bearer(String),
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Credentials::None => f.write_str("none"),
            Credentials::Basic { user, .. } => write!(f, "basic {user}:<redacted>"),
            Credentials::Bearer(_) => f.write_str("bearer <redacted>"),
        }
    }
}

/// A registry client with a per-id schema cache.
#[derive(Debug, Clone)]
pub struct RegistryClient {
    /// The URL without credentials: what errors print.
    base: String,
    credentials: Credentials,
    http: reqwest::Client,
    cache: Arc<Mutex<HashMap<u32, Arc<Schema>>>>,
}

/// `url` without its `user:password@`, and those credentials.
fn split_credentials(url: &str) -> (String, Credentials) {
    let trimmed = url.trim_end_matches('/');
    let Ok(mut parsed) = reqwest::Url::parse(trimmed) else {
        return (trimmed.to_string(), Credentials::None);
    };
    if parsed.username().is_empty() {
        return (trimmed.to_string(), Credentials::None);
    }
    let decode = |s: &str| percent_decode(s);
    let credentials = Credentials::Basic {
        user: decode(parsed.username()),
        password: decode(parsed.password().unwrap_or_default()),
    };
    let _ = parsed.set_username("");
    let _ = parsed.set_password(None);
    (
        parsed.as_str().trim_end_matches('/').to_string(),
        credentials,
    )
}

/// `%XX` escapes decoded (a URL's user and password are percent-encoded).
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

const CONTENT_TYPE: &str = "application/vnd.schemaregistry.v1+json";

impl RegistryClient {
    /// A client of the registry at `base_url` (credentials in it are used, never printed).
    pub fn new(base_url: &str) -> Self {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap_or_else(|_| reqwest::Client::new());
        let (base, credentials) = split_credentials(base_url);
        Self {
            base,
            credentials,
            http,
            cache: Arc::default(),
        }
    }

    /// A client with `auth`'s credentials (which win over any in the URL); a
    /// `basic_auth_user_info` without a `:` is refused.
    pub fn with_auth(base_url: &str, auth: &RegistryAuth) -> Result<Self, String> {
        let mut client = Self::new(base_url);
        if let Some(path) = &auth.ca_file {
            let pem = std::fs::read(path)
                .map_err(|e| format!("cannot read the registry CA file {}: {e}", path.display()))?;
            let ca = reqwest::Certificate::from_pem(&pem)
                .map_err(|e| format!("the registry CA file {} is not PEM: {e}", path.display()))?;
            client.http = reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .add_root_certificate(ca)
                .build()
                .map_err(|e| e.to_string())?;
        }
        if let Some(info) = &auth.basic_auth_user_info {
            let (user, password) = info.0.split_once(':').ok_or(
                "registry_auth.basic_auth_user_info must be user:password (as Confluent's \
                 basic.auth.user.info)",
            )?;
            client.credentials = Credentials::Basic {
                user: user.into(),
                password: password.into(),
            };
        } else if let Some(token) = &auth.bearer_token {
            client.credentials = Credentials::Bearer(token.0.clone());
        }
        Ok(client)
    }

    /// The registry's URL, without credentials.
    pub fn url(&self) -> &str {
        &self.base
    }

    fn authorized(&self, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.credentials {
            Credentials::None => request,
            Credentials::Basic { user, password } => request.basic_auth(user, Some(password)),
            Credentials::Bearer(token) => request.bearer_auth(token),
        }
    }

    /// Sends `request` to `url` and reads a 200 answer as `T`.
    async fn call<T: serde::de::DeserializeOwned>(
        &self,
        request: reqwest::RequestBuilder,
        url: String,
    ) -> Result<T, RegistryClientError> {
        let unreachable = |e: reqwest::Error| RegistryClientError::Unreachable {
            url: url.clone(),
            reason: e.to_string(),
        };
        let resp = self
            .authorized(request)
            .send()
            .await
            .map_err(|e| unreachable(e.without_url()))?;
        let status = resp.status().as_u16();
        let text = resp.text().await.map_err(unreachable)?;
        if status != 200 {
            return Err(RegistryClientError::Status {
                url,
                status,
                body: text,
            });
        }
        serde_json::from_str(&text).map_err(|e| RegistryClientError::Status {
            url,
            status,
            body: format!("{e}: {text}"),
        })
    }

    /// Registers `schema` (Avro JSON text) under `subject`; returns its global id.
    pub async fn register(&self, subject: &str, schema: &str) -> Result<u32, RegistryClientError> {
        let url = format!("{}/subjects/{}/versions", self.base, subject);
        let body = serde_json::json!({ "schema": schema, "schemaType": "AVRO" });
        let request = self
            .http
            .post(&url)
            .header("content-type", CONTENT_TYPE)
            .body(body.to_string());
        let answer: IdResponse = self.call(request, url).await?;
        Ok(answer.id)
    }

    /// Registers `schema` under `subject`, retrying while the registry is unreachable, until
    /// `attempts` run out.
    pub async fn register_with_retry(
        &self,
        subject: &str,
        schema: &str,
        attempts: u32,
    ) -> Result<u32, RegistryClientError> {
        let mut n = 0;
        loop {
            match self.register(subject, schema).await {
                Ok(id) => return Ok(id),
                Err(e) if e.is_retryable() && n + 1 < attempts => {
                    n += 1;
                    tracing::warn!(subject, attempt = n, error = %e, "schema registration failed, retrying");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// The schema with global id `id` (cached).
    pub async fn schema_by_id(&self, id: u32) -> Result<Arc<Schema>, RegistryClientError> {
        if let Some(s) = self
            .cache
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&id)
        {
            return Ok(s.clone());
        }
        let url = format!("{}/schemas/ids/{}", self.base, id);
        let parsed: SchemaResponse = self.call(self.http.get(&url), url).await?;
        let schema =
            Schema::parse_str(&parsed.schema).map_err(|e| RegistryClientError::BadSchema {
                id,
                reason: e.to_string(),
            })?;
        let schema = Arc::new(schema);
        self.cache
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id, schema.clone());
        Ok(schema)
    }

    /// [`RegistryClient::schema_by_id`], retrying while the registry is unreachable until
    /// `give_up` is cancelled. `None`: the registry does not have the id (or we gave up).
    pub async fn schema_by_id_retrying(
        &self,
        id: u32,
        give_up: &tokio_util::sync::CancellationToken,
    ) -> Option<Arc<Schema>> {
        loop {
            match self.schema_by_id(id).await {
                Ok(s) => return Some(s),
                Err(e) if e.is_retryable() && !give_up.is_cancelled() => {
                    tracing::warn!(schema_id = id, error = %e, "schema registry unavailable, retrying");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
                Err(e) => {
                    tracing::debug!(schema_id = id, error = %e, "writer schema not found");
                    return None;
                }
            }
        }
    }

    /// Seeds the cache, e.g. with a schema this process just registered.
    pub fn remember(&self, id: u32, schema: Schema) {
        self.cache
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id, Arc::new(schema));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_in_the_url_are_used_and_never_shown() {
        let c = RegistryClient::new("https://svc:p%40ss@registry.example:8081/");
        assert_eq!(c.url(), "https://registry.example:8081");
        assert!(
            matches!(&c.credentials, Credentials::Basic { user, password }
            if user == "svc" && password == "p@ss")
        );
        assert!(!format!("{c:?}").contains("p@ss"));
        let plain = RegistryClient::new("http://127.0.0.1:8081/");
        assert_eq!(plain.url(), "http://127.0.0.1:8081");
    }

    #[test]
    fn configured_credentials_win_and_are_checked() {
        let auth = RegistryAuth {
            basic_auth_user_info: Some(northstar_runtime::Redacted("u:secret".into())),
            ..Default::default()
        };
        let c = RegistryClient::with_auth("http://svc:old@h:1", &auth).expect("valid");
        assert!(matches!(&c.credentials, Credentials::Basic { user, .. } if user == "u"));
        assert!(!format!("{c:?} {auth:?}").contains("secret"));
        let bad = RegistryAuth {
            basic_auth_user_info: Some(northstar_runtime::Redacted("nocolon".into())),
            ..Default::default()
        };
        assert!(RegistryClient::with_auth("http://h:1", &bad).is_err());
    }
}
