//! The Confluent Schema Registry REST API over [`super::Registry`].
//!
//! Contract: paths, bodies and error JSON (`error_code`, `message`) follow Confluent's API so
//! its clients (Java, Python `confluent-kafka`, Rust `schema_registry_converter`) work unchanged.
//! Request bodies are read as JSON whatever their content type.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde::Deserialize;
use serde_json::{json, Value};

use super::state::{parse_version, Compatibility, RegistryError};
use super::Registry;

const CONTENT_TYPE: &str = "application/vnd.schemaregistry.v1+json";

/// The API routes.
pub fn router(registry: Arc<Registry>) -> Router {
    Router::new()
        .route("/", get(|| async { reply(StatusCode::OK, json!({})) }))
        .route("/schemas/ids/{id}", get(schema_by_id))
        .route("/schemas/ids/{id}/schema", get(raw_schema_by_id))
        .route(
            "/schemas/types",
            get(|| async { reply(StatusCode::OK, json!(["AVRO"])) }),
        )
        .route("/subjects", get(subjects))
        .route("/subjects/{subject}", post(lookup))
        .route("/subjects/{subject}/versions", get(versions).post(register))
        .route("/subjects/{subject}/versions/{version}", get(version))
        .route(
            "/subjects/{subject}/versions/{version}/schema",
            get(raw_version),
        )
        .route(
            "/compatibility/subjects/{subject}/versions/{version}",
            post(compat_version),
        )
        .route(
            "/compatibility/subjects/{subject}/versions",
            post(compat_all),
        )
        .route("/config", get(get_global).put(put_global))
        .route(
            "/config/{subject}",
            get(get_subject_config).put(put_subject_config),
        )
        .with_state(registry)
}

fn reply(status: StatusCode, body: Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, CONTENT_TYPE)],
        body.to_string(),
    )
        .into_response()
}

impl IntoResponse for RegistryError {
    fn into_response(self) -> Response {
        let (status, code) = self.codes();
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        reply(
            status,
            json!({ "error_code": code, "message": self.to_string() }),
        )
    }
}

fn bad_request(message: String) -> Response {
    reply(
        StatusCode::UNPROCESSABLE_ENTITY,
        json!({ "error_code": 422, "message": message }),
    )
}

#[derive(Deserialize)]
struct SchemaBody {
    schema: String,
    #[serde(default, rename = "schemaType")]
    schema_type: Option<String>,
    #[serde(default)]
    references: Option<Vec<Value>>,
}

#[allow(clippy::result_large_err)] // the error is the finished HTTP response
fn parse_body(body: &Bytes) -> Result<SchemaBody, Response> {
    let parsed: SchemaBody = serde_json::from_slice(body)
        .map_err(|e| bad_request(format!("invalid request body: {e}")))?;
    if let Some(t) = &parsed.schema_type {
        if !t.eq_ignore_ascii_case("AVRO") {
            return Err(RegistryError::UnsupportedType(t.clone()).into_response());
        }
    }
    if parsed.references.as_ref().is_some_and(|r| !r.is_empty()) {
        return Err(
            RegistryError::InvalidSchema("schema references are not supported".into())
                .into_response(),
        );
    }
    Ok(parsed)
}

async fn schema_by_id(State(r): State<Arc<Registry>>, Path(id): Path<u32>) -> Response {
    let state = r.read();
    match state.schema(id) {
        Ok(s) => reply(StatusCode::OK, json!({ "schema": s.text })),
        Err(e) => e.into_response(),
    }
}

async fn raw_schema_by_id(State(r): State<Arc<Registry>>, Path(id): Path<u32>) -> Response {
    let state = r.read();
    match state.schema(id) {
        Ok(s) => reply(
            StatusCode::OK,
            serde_json::from_str(&s.text).unwrap_or(Value::String(s.text.clone())),
        ),
        Err(e) => e.into_response(),
    }
}

async fn subjects(State(r): State<Arc<Registry>>) -> Response {
    reply(StatusCode::OK, json!(r.read().subjects()))
}

async fn versions(State(r): State<Arc<Registry>>, Path(subject): Path<String>) -> Response {
    match r.read().versions(&subject) {
        Ok(v) => reply(StatusCode::OK, json!(v)),
        Err(e) => e.into_response(),
    }
}

fn version_json(r: &Registry, subject: &str, selector: &str) -> Result<Value, RegistryError> {
    let selector = parse_version(selector)?;
    let state = r.read();
    let v = state.version(subject, selector)?;
    let s = state.schema(v.id)?;
    Ok(json!({ "subject": subject, "version": v.version, "id": v.id, "schema": s.text }))
}

async fn version(
    State(r): State<Arc<Registry>>,
    Path((subject, version)): Path<(String, String)>,
) -> Response {
    match version_json(&r, &subject, &version) {
        Ok(v) => reply(StatusCode::OK, v),
        Err(e) => e.into_response(),
    }
}

async fn raw_version(
    State(r): State<Arc<Registry>>,
    Path((subject, version)): Path<(String, String)>,
) -> Response {
    match version_json(&r, &subject, &version) {
        Ok(v) => {
            let text = v["schema"].as_str().unwrap_or_default();
            reply(
                StatusCode::OK,
                serde_json::from_str(text).unwrap_or(Value::Null),
            )
        }
        Err(e) => e.into_response(),
    }
}

async fn register(
    State(r): State<Arc<Registry>>,
    Path(subject): Path<String>,
    body: Bytes,
) -> Response {
    let body = match parse_body(&body) {
        Ok(b) => b,
        Err(resp) => return resp,
    };
    match r.register(&subject, &body.schema).await {
        Ok(id) => reply(StatusCode::OK, json!({ "id": id })),
        Err(e) => e.into_response(),
    }
}

async fn lookup(
    State(r): State<Arc<Registry>>,
    Path(subject): Path<String>,
    body: Bytes,
) -> Response {
    let body = match parse_body(&body) {
        Ok(b) => b,
        Err(resp) => return resp,
    };
    let state = r.read();
    match state
        .lookup(&subject, &body.schema)
        .and_then(|v| Ok((v.clone(), state.schema(v.id)?.text.clone())))
    {
        Ok((v, text)) => reply(
            StatusCode::OK,
            json!({ "subject": subject, "version": v.version, "id": v.id, "schema": text }),
        ),
        Err(e) => e.into_response(),
    }
}

async fn compat_version(
    State(r): State<Arc<Registry>>,
    Path((subject, version)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    let body = match parse_body(&body) {
        Ok(b) => b,
        Err(resp) => return resp,
    };
    let selector = match parse_version(&version) {
        Ok(s) => s,
        Err(e) => return e.into_response(),
    };
    let state = r.read();
    let selector = match selector {
        Some(n) => Some(n),
        None => match state.version(&subject, None) {
            Ok(v) => Some(v.version),
            Err(e) => return e.into_response(),
        },
    };
    match state.test_compatibility(&subject, &body.schema, selector) {
        Ok(ok) => reply(StatusCode::OK, json!({ "is_compatible": ok })),
        Err(e) => e.into_response(),
    }
}

async fn compat_all(
    State(r): State<Arc<Registry>>,
    Path(subject): Path<String>,
    body: Bytes,
) -> Response {
    let body = match parse_body(&body) {
        Ok(b) => b,
        Err(resp) => return resp,
    };
    match r.read().test_compatibility(&subject, &body.schema, None) {
        Ok(ok) => reply(StatusCode::OK, json!({ "is_compatible": ok })),
        Err(e) => e.into_response(),
    }
}

async fn get_global(State(r): State<Arc<Registry>>) -> Response {
    reply(
        StatusCode::OK,
        json!({ "compatibilityLevel": r.read().global_compatibility() }),
    )
}

async fn get_subject_config(
    State(r): State<Arc<Registry>>,
    Path(subject): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let state = r.read();
    match state.subject_compatibility(&subject) {
        Some(level) => reply(StatusCode::OK, json!({ "compatibilityLevel": level })),
        None if q.get("defaultToGlobal").is_some_and(|v| v == "true") => reply(
            StatusCode::OK,
            json!({ "compatibilityLevel": state.global_compatibility() }),
        ),
        None => RegistryError::SubjectConfigNotFound(subject).into_response(),
    }
}

fn parse_level(body: &Bytes) -> Result<Compatibility, RegistryError> {
    let v: Value = serde_json::from_slice(body).map_err(|_| RegistryError::InvalidCompatibility)?;
    v.get("compatibility")
        .or_else(|| v.get("compatibilityLevel"))
        .and_then(Value::as_str)
        .and_then(Compatibility::parse)
        .ok_or(RegistryError::InvalidCompatibility)
}

async fn put_global(State(r): State<Arc<Registry>>, body: Bytes) -> Response {
    put_config(r, None, body).await
}

async fn put_subject_config(
    State(r): State<Arc<Registry>>,
    Path(subject): Path<String>,
    body: Bytes,
) -> Response {
    put_config(r, Some(subject), body).await
}

async fn put_config(r: Arc<Registry>, subject: Option<String>, body: Bytes) -> Response {
    let level = match parse_level(&body) {
        Ok(l) => l,
        Err(e) => return e.into_response(),
    };
    match r.set_config(subject, level).await {
        Ok(()) => reply(StatusCode::OK, json!({ "compatibility": level })),
        Err(e) => e.into_response(),
    }
}
