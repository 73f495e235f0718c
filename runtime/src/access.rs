//! An access token in front of HTTP routes that must not be open to whoever reaches the port
//! (the KPI exposition with its revenue figures, the KPI board and its API).
//!
//! Contract: with a token configured, a request passes only with `Authorization: Bearer
//! <token>` (what Prometheus sends with `authorization: {credentials_file: …}`) or HTTP Basic
//! with the token as the password, any user name (what a browser sends once it has asked the
//! person); anything else is 401 with a `WWW-Authenticate: Basic` challenge, so a browser asks.
//! The comparison takes the same time wherever the first difference is. The token is read from a
//! file (a mounted Secret) or the environment and never printed.

use std::path::Path;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine;

/// The token a request must present.
#[derive(Clone)]
pub struct AccessToken(Arc<crate::Redacted>);

impl std::fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AccessToken(<redacted>)")
    }
}

impl AccessToken {
    /// The token from `file` (its content without the trailing newline) or else `inline`;
    /// `None` when neither is set. An empty or unreadable file is an error naming it.
    pub fn load(
        file: Option<&Path>,
        inline: Option<&crate::Redacted>,
    ) -> Result<Option<Self>, String> {
        let token = match (file, inline) {
            (Some(path), _) => {
                let text = std::fs::read_to_string(path).map_err(|e| {
                    format!("cannot read the access token file {}: {e}", path.display())
                })?;
                text.trim_end_matches(['\r', '\n']).to_string()
            }
            (None, Some(t)) => t.0.clone(),
            (None, None) => return Ok(None),
        };
        if token.len() < 16 {
            return Err("the access token must be at least 16 characters".into());
        }
        Ok(Some(AccessToken(Arc::new(crate::Redacted(token)))))
    }

    /// Whether `headers` carry the token (Bearer, or Basic with it as the password).
    pub fn admits(&self, headers: &HeaderMap) -> bool {
        let Some(value) = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
        else {
            return false;
        };
        let Some((scheme, rest)) = value.split_once(' ') else {
            return false;
        };
        let presented = if scheme.eq_ignore_ascii_case("bearer") {
            rest.trim().to_string()
        } else if scheme.eq_ignore_ascii_case("basic") {
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(rest.trim())
                .unwrap_or_default();
            let text = String::from_utf8_lossy(&decoded).into_owned();
            text.split_once(':')
                .map(|(_, p)| p.to_string())
                .unwrap_or_default()
        } else {
            return false;
        };
        same(presented.as_bytes(), self.0 .0.as_bytes())
    }
}

/// Equality in time that depends only on the lengths.
fn same(a: &[u8], b: &[u8]) -> bool {
    let n = a.len().max(b.len());
    let mut diff = u8::from(a.len() != b.len());
    for i in 0..n {
        diff |= a.get(i).copied().unwrap_or(0) ^ b.get(i).copied().unwrap_or(0);
    }
    diff == 0
}

/// The guard (`axum::middleware::from_fn_with_state(token, require_token)`).
pub async fn require_token(
    State(token): State<AccessToken>,
    request: Request,
    next: Next,
) -> Response {
    if token.admits(request.headers()) {
        return next.run(request).await;
    }
    let mut response = (
        StatusCode::UNAUTHORIZED,
        "an access token is required (Authorization: Bearer, or the token as the password)\n",
    )
        .into_response();
    challenge(&mut response);
    response
}

/// Adds the `WWW-Authenticate: Basic` challenge of a 401, so that a browser asks.
pub fn challenge(response: &mut Response) {
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Basic realm=\"northstar\""),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, value.parse().expect("header"));
        h
    }

    #[test]
    fn only_the_token_passes() {
        let token = AccessToken::load(None, Some(&crate::Redacted("s3cret-token-0123456".into())))
            .expect("valid")
            .expect("set");
        assert!(token.admits(&with("Bearer s3cret-token-0123456")));
        let basic = base64::engine::general_purpose::STANDARD.encode("anyone:s3cret-token-0123456");
        assert!(token.admits(&with(&format!("Basic {basic}"))));
        assert!(!token.admits(&with("Bearer s3cret-token-012345")));
        assert!(!token.admits(&with("Bearer s3cret-token-01234567")));
        assert!(!token.admits(&HeaderMap::new()));
        assert!(!format!("{token:?}").contains("s3cret"));
    }

    #[test]
    fn a_short_token_or_a_missing_file_is_refused() {
        assert!(AccessToken::load(None, Some(&crate::Redacted("short".into()))).is_err());
        let missing = Path::new("/nonexistent/token");
        assert!(AccessToken::load(Some(missing), None)
            .expect_err("missing")
            .contains("/nonexistent/token"));
        assert!(AccessToken::load(None, None).expect("none").is_none());
    }
}
