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

/// A registry client with a per-id schema cache.
#[derive(Debug, Clone)]
pub struct RegistryClient {
    base: String,
    http: reqwest::Client,
    cache: Arc<Mutex<HashMap<u32, Arc<Schema>>>>,
}

const CONTENT_TYPE: &str = "application/vnd.schemaregistry.v1+json";

impl RegistryClient {
    pub fn new(base_url: &str) -> Self {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap_or_else(|_| reqwest::Client::new());
        Self {
            base: base_url.trim_end_matches('/').to_string(),
            http,
            cache: Arc::default(),
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
        let resp = request.send().await.map_err(unreachable)?;
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
