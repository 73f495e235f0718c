//! Who may use the registry's API: HTTP Basic users and bearer tokens, each `read_only` or
//! `read_write`, from a file (a mounted Secret; `auth_file`, `NORTHSTAR_AUTH_FILE`).
//!
//! Contract: without a file the API is open (the registry warns at start). With one, every API
//! request needs a known user or token: none, or a wrong one, is 401 (`error_code` 40101, with a
//! `WWW-Authenticate: Basic` challenge, as Confluent's registry answers); a read-only caller
//! changing state is 403 (40301). State changes are `PUT`/`DELETE` and the registering `POST
//! /subjects/{subject}/versions`; the other `POST`s (lookup, compatibility checks) only read.
//! Secrets are compared as SHA-256 digests in constant time, and the file may hold the digest
//! (`password_sha256`, `token_sha256`) instead of the secret. `/healthz`, `/readyz` and
//! `/metrics` are outside this guard.
//!
//! ```toml
//! [users.northstar-services]
//! password_sha256 = "…"          # or: password = "…"
//! role = "read_write"
//! [users.grafana]
//! password = "…"
//! role = "read_only"
//! [tokens.ci]
//! token_sha256 = "…"             # or: token = "…"
//! role = "read_write"
//! ```

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use serde::Deserialize;
use sha2::{Digest, Sha256};

/// What a caller may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    ReadOnly,
    ReadWrite,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UserEntry {
    password: Option<String>,
    password_sha256: Option<String>,
    role: Role,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenEntry {
    token: Option<String>,
    token_sha256: Option<String>,
    role: Role,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
struct AuthFile {
    users: BTreeMap<String, UserEntry>,
    tokens: BTreeMap<String, TokenEntry>,
}

/// The callers the registry knows: names with the digest of their secret and their role.
#[derive(Clone)]
pub struct Access {
    users: Arc<BTreeMap<String, ([u8; 32], Role)>>,
    tokens: Arc<Vec<(String, [u8; 32], Role)>>,
}

impl std::fmt::Debug for Access {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Access")
            .field("users", &self.users.keys().collect::<Vec<_>>())
            .field(
                "tokens",
                &self.tokens.iter().map(|t| &t.0).collect::<Vec<_>>(),
            )
            .finish()
    }
}

fn digest(secret: &str) -> [u8; 32] {
    Sha256::digest(secret.as_bytes()).into()
}

/// One of `plain` and `hex_digest` (exactly one), as a digest; `what` names it in errors.
fn secret_digest(
    plain: Option<&str>,
    hex_digest: Option<&str>,
    what: &str,
) -> Result<[u8; 32], String> {
    match (plain, hex_digest) {
        (Some(p), None) if !p.is_empty() => Ok(digest(p)),
        (None, Some(h)) => {
            let bytes = hex_decode(h.trim()).ok_or_else(|| format!("{what}: not 64 hex digits"))?;
            <[u8; 32]>::try_from(bytes).map_err(|_| format!("{what}: not 64 hex digits"))
        }
        _ => Err(format!(
            "{what}: give exactly one of the secret and its SHA-256"
        )),
    }
}

fn hex_decode(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

/// Equality of two digests in constant time.
fn same(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Why a request is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Denied {
    /// No credentials, or unknown ones: 401.
    Unauthenticated,
    /// A read-only caller changing state: 403.
    Forbidden,
}

impl Access {
    /// Reads the auth file (TOML, see the module's contract).
    pub fn load(path: &Path) -> Result<Access, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read the auth file {}: {e}", path.display()))?;
        Self::parse(&text).map_err(|e| format!("auth file {}: {e}", path.display()))
    }

    fn parse(text: &str) -> Result<Access, String> {
        let file: AuthFile = toml::from_str(text).map_err(|e| e.to_string())?;
        let mut users = BTreeMap::new();
        for (name, u) in file.users {
            let what = format!("users.{name}");
            let d = secret_digest(u.password.as_deref(), u.password_sha256.as_deref(), &what)?;
            users.insert(name, (d, u.role));
        }
        let mut tokens = Vec::new();
        for (name, t) in file.tokens {
            let what = format!("tokens.{name}");
            let d = secret_digest(t.token.as_deref(), t.token_sha256.as_deref(), &what)?;
            tokens.push((name, d, t.role));
        }
        if users.is_empty() && tokens.is_empty() {
            return Err("no users and no tokens: nobody could use the registry".into());
        }
        Ok(Access {
            users: Arc::new(users),
            tokens: Arc::new(tokens),
        })
    }

    /// The role of the request's caller.
    pub fn role(&self, headers: &HeaderMap) -> Option<Role> {
        let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
        let (scheme, rest) = value.split_once(' ')?;
        if scheme.eq_ignore_ascii_case("basic") {
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(rest.trim())
                .ok()?;
            let text = String::from_utf8(decoded).ok()?;
            let (user, password) = text.split_once(':')?;
            let (want, role) = self.users.get(user)?;
            same(want, &digest(password)).then_some(*role)
        } else if scheme.eq_ignore_ascii_case("bearer") {
            let presented = digest(rest.trim());
            // Every token is compared, so the time taken does not tell which one matched.
            self.tokens.iter().fold(None, |found, (_, d, role)| {
                found.or(same(d, &presented).then_some(*role))
            })
        } else {
            None
        }
    }

    /// Whether the request may proceed.
    pub fn check(&self, method: &Method, path: &str, headers: &HeaderMap) -> Result<(), Denied> {
        match self.role(headers) {
            None => Err(Denied::Unauthenticated),
            Some(Role::ReadWrite) => Ok(()),
            Some(Role::ReadOnly) if changes_state(method, path) => Err(Denied::Forbidden),
            Some(Role::ReadOnly) => Ok(()),
        }
    }
}

/// Whether a request changes the registry's state.
fn changes_state(method: &Method, path: &str) -> bool {
    match *method {
        Method::GET | Method::HEAD | Method::OPTIONS => false,
        Method::POST => {
            path.starts_with("/subjects/") && path.trim_end_matches('/').ends_with("/versions")
        }
        _ => true,
    }
}

impl IntoResponse for Denied {
    fn into_response(self) -> Response {
        let (status, code, message) = match self {
            Denied::Unauthenticated => (
                StatusCode::UNAUTHORIZED,
                40101,
                "Unauthorized: give a registry user (HTTP Basic) or a bearer token",
            ),
            Denied::Forbidden => (
                StatusCode::FORBIDDEN,
                40301,
                "Forbidden: this user may only read",
            ),
        };
        let body = serde_json::json!({ "error_code": code, "message": message }).to_string();
        let mut response = (
            status,
            [(
                header::CONTENT_TYPE,
                "application/vnd.schemaregistry.v1+json",
            )],
            body,
        )
            .into_response();
        if self == Denied::Unauthenticated {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Basic realm=\"northstar-registry\""),
            );
        }
        response
    }
}

/// The guard in front of the API routes (`axum::middleware::from_fn_with_state`).
pub async fn guard(State(access): State<Access>, request: Request, next: Next) -> Response {
    match access.check(request.method(), request.uri().path(), request.headers()) {
        Ok(()) => next.run(request).await,
        Err(denied) => {
            super::metrics_denied(denied);
            denied.into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn basic(user: &str, password: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        let v = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        h.insert(
            header::AUTHORIZATION,
            format!("Basic {v}").parse().expect("header"),
        );
        h
    }

    fn access() -> Access {
        let hashed = hex(&digest("ro-secret"));
        Access::parse(&format!(
            "[users.writer]\npassword = \"w-secret\"\nrole = \"read_write\"\n\
             [users.reader]\npassword_sha256 = \"{hashed}\"\nrole = \"read_only\"\n\
             [tokens.ci]\ntoken = \"tok\"\nrole = \"read_only\"\n"
        ))
        .expect("parses")
    }

    fn hex(d: &[u8; 32]) -> String {
        d.iter().map(|b| format!("{b:02x}")).collect()
    }

    #[test]
    fn roles_decide_what_a_caller_may_do() {
        let a = access();
        let register = "/subjects/events.raw-value/versions";
        assert_eq!(
            a.check(&Method::POST, register, &basic("writer", "w-secret")),
            Ok(())
        );
        assert_eq!(
            a.check(&Method::GET, "/subjects", &basic("reader", "ro-secret")),
            Ok(())
        );
        // A lookup and a compatibility check are POSTs that only read.
        assert_eq!(
            a.check(&Method::POST, "/subjects/s", &basic("reader", "ro-secret")),
            Ok(())
        );
        let compat = "/compatibility/subjects/s/versions/latest";
        assert_eq!(
            a.check(&Method::POST, compat, &basic("reader", "ro-secret")),
            Ok(())
        );
        let forbidden = Err(Denied::Forbidden);
        assert_eq!(
            a.check(&Method::POST, register, &basic("reader", "ro-secret")),
            forbidden
        );
        assert_eq!(
            a.check(&Method::PUT, "/config", &basic("reader", "ro-secret")),
            forbidden
        );
        let mut bearer = HeaderMap::new();
        bearer.insert(header::AUTHORIZATION, "Bearer tok".parse().expect("header"));
        assert_eq!(a.check(&Method::GET, "/subjects", &bearer), Ok(()));
        assert_eq!(a.check(&Method::PUT, "/config", &bearer), forbidden);
    }

    #[test]
    fn unknown_or_missing_credentials_are_unauthenticated() {
        let a = access();
        let no = Err(Denied::Unauthenticated);
        assert_eq!(a.check(&Method::GET, "/subjects", &HeaderMap::new()), no);
        assert_eq!(
            a.check(&Method::GET, "/subjects", &basic("writer", "wrong")),
            no
        );
        assert_eq!(
            a.check(&Method::GET, "/subjects", &basic("nobody", "w-secret")),
            no
        );
        let mut bearer = HeaderMap::new();
        bearer.insert(
            header::AUTHORIZATION,
            "Bearer nope".parse().expect("header"),
        );
        assert_eq!(a.check(&Method::GET, "/subjects", &bearer), no);
    }

    #[test]
    fn a_bad_file_is_refused_with_its_reason() {
        assert!(Access::parse("").expect_err("empty").contains("nobody"));
        let both = "[users.u]\npassword = \"p\"\npassword_sha256 = \"00\"\nrole = \"read_only\"\n";
        assert!(Access::parse(both).expect_err("both").contains("users.u"));
        let role = "[users.u]\npassword = \"p\"\nrole = \"admin\"\n";
        assert!(Access::parse(role).is_err());
        // Debug never shows a digest.
        let shown = format!("{:?}", access());
        assert!(shown.contains("writer") && !shown.contains(&hex(&digest("w-secret"))));
    }
}
