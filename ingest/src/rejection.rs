//! Every way the collector refuses a request, and the one place each becomes an HTTP answer.
//!
//! Contract: a [`Rejection`] maps to its status, its reason code (the `code` of the JSON body
//! and the `reason` label of `northstar_ingest_events_rejected_total`, counted once when the
//! answer is built), its message, and the headers its status calls for: `Retry-After` (whole
//! seconds, at least 1) on 429 and 503, `WWW-Authenticate` on 401. The body is
//! `{"success":false,"code":…,"message":…}`.

use std::time::Duration;

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::metrics;
use crate::producer::ProduceError;
use crate::segment::RequestError;

/// Why a request is refused.
#[derive(Debug)]
pub enum Rejection {
    /// Malformed, too large, or in an unsupported encoding: 400, 413 or 415.
    Request(RequestError),
    /// No write key, or an unknown one: 401.
    Unauthorized(&'static str),
    /// Every event belongs to a subject erased on request: 403.
    Suppressed(usize),
    /// The write key is over its rate limit: 429.
    RateLimited {
        message: String,
        retry_after: Duration,
    },
    /// The collector's bound of events waiting for the broker is reached: 503.
    Overloaded { limit: usize, retry_after: Duration },
    /// The broker did not acknowledge every event in time: 503.
    BrokerUnavailable {
        reason: ProduceError,
        retry_after: Duration,
    },
    /// An event could not be encoded (a bug, not the client's): 500.
    Encode(String),
}

impl Rejection {
    pub fn status(&self) -> StatusCode {
        match self {
            Rejection::Request(e) if e.is_too_large() => StatusCode::PAYLOAD_TOO_LARGE,
            Rejection::Request(RequestError::UnsupportedEncoding(_)) => {
                StatusCode::UNSUPPORTED_MEDIA_TYPE
            }
            Rejection::Request(_) => StatusCode::BAD_REQUEST,
            Rejection::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Rejection::Suppressed(_) => StatusCode::FORBIDDEN,
            Rejection::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            Rejection::Overloaded { .. } | Rejection::BrokerUnavailable { .. } => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            Rejection::Encode(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The reason code: the body's `code`, the rejection counter's `reason`.
    pub fn code(&self) -> &'static str {
        match self {
            Rejection::Request(e) => e.reason(),
            Rejection::Unauthorized(_) => "unauthorized",
            Rejection::Suppressed(_) => "suppressed",
            Rejection::RateLimited { .. } => "rate_limited",
            Rejection::Overloaded { .. } => "overloaded",
            Rejection::BrokerUnavailable { .. } => "broker_unavailable",
            Rejection::Encode(_) => "encode",
        }
    }

    fn message(&self) -> String {
        match self {
            Rejection::Request(e) => e.to_string(),
            Rejection::Unauthorized(m) => (*m).to_string(),
            Rejection::Suppressed(n) => format!(
                "the {n} events of this request belong to subjects erased on request (the \
                 suppression list); they are not accepted"
            ),
            Rejection::RateLimited { message, .. } => message.clone(),
            Rejection::Overloaded { limit, .. } => format!(
                "{limit} events are already waiting for the broker (max_in_flight_events); \
                 retry later"
            ),
            Rejection::BrokerUnavailable { reason, .. } => reason.to_string(),
            Rejection::Encode(m) => m.clone(),
        }
    }

    fn retry_after(&self) -> Option<Duration> {
        match self {
            Rejection::RateLimited { retry_after, .. }
            | Rejection::Overloaded { retry_after, .. }
            | Rejection::BrokerUnavailable { retry_after, .. } => Some(*retry_after),
            _ => None,
        }
    }
}

impl From<RequestError> for Rejection {
    fn from(e: RequestError) -> Self {
        Rejection::Request(e)
    }
}

impl IntoResponse for Rejection {
    fn into_response(self) -> Response {
        let (status, code) = (self.status(), self.code());
        metrics::EVENTS_REJECTED.with_label_values(&[code]).inc();
        if let Rejection::BrokerUnavailable { reason, .. } = &self {
            tracing::warn!(error = %reason, "events not acknowledged, answering 503");
        }
        let body = json!({ "success": false, "code": code, "message": self.message() });
        let mut resp = (
            status,
            [(header::CONTENT_TYPE, "application/json")],
            body.to_string(),
        )
            .into_response();
        if let Some(after) = self.retry_after() {
            let secs = (after.as_secs() + u64::from(after.subsec_nanos() > 0)).max(1);
            if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
                resp.headers_mut().insert(header::RETRY_AFTER, v);
            }
        }
        if status == StatusCode::UNAUTHORIZED {
            northstar_runtime::access::challenge(&mut resp);
        }
        resp
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(r: Rejection) -> (u16, String, Option<String>) {
        let code = r.code().to_string();
        let resp = r.into_response();
        let after = resp
            .headers()
            .get(header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        (resp.status().as_u16(), code, after)
    }

    #[test]
    fn every_rejection_has_its_status_code_and_headers() {
        let too_large = RequestError::BatchTooLarge { size: 2, limit: 1 };
        assert_eq!(answer(too_large.into()).0, 413);
        let encoding = RequestError::UnsupportedEncoding("br".into());
        assert_eq!(answer(encoding.into()).0, 415);
        assert_eq!(answer(RequestError::InvalidJson("x".into()).into()).0, 400);
        let unauthorized = Rejection::Unauthorized("unknown write key").into_response();
        assert_eq!(unauthorized.status(), 401);
        assert!(unauthorized
            .headers()
            .contains_key(header::WWW_AUTHENTICATE));
        assert_eq!(
            answer(Rejection::Suppressed(3)),
            (403, "suppressed".into(), None)
        );
        let limited = Rejection::RateLimited {
            message: "slow down".into(),
            retry_after: Duration::from_millis(1_200),
        };
        assert_eq!(
            answer(limited),
            (429, "rate_limited".into(), Some("2".into()))
        );
        let overloaded = Rejection::Overloaded {
            limit: 10,
            retry_after: Duration::ZERO,
        };
        assert_eq!(
            answer(overloaded),
            (503, "overloaded".into(), Some("1".into()))
        );
        let broker = Rejection::BrokerUnavailable {
            reason: ProduceError::Deadline(5_000),
            retry_after: Duration::from_secs(2),
        };
        assert_eq!(
            answer(broker),
            (503, "broker_unavailable".into(), Some("2".into()))
        );
        assert_eq!(answer(Rejection::Encode("bug".into())).0, 500);
    }
}
