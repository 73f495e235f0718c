//! The Segment tracking API over HTTP.
//!
//! Contract: 200 `{"success":true}` only after the broker acknowledged every event of the
//! request; 400 malformed (message names the problem), 401 unknown or missing write key,
//! 413 over a size limit, 415 an unsupported `Content-Encoding` (gzip and deflate bodies are
//! decompressed, bounded by the batch limit), 503 with `Retry-After` when the broker is
//! unavailable. Events whose userId or anonymousId is on the suppression list (subjects erased
//! on request) are never produced: counted, and named in the answer (`suppressed`: their
//! number), or 403 `suppressed` when the request has no other event. Every rejection is counted
//! by reason. CORS is open to any origin (browser SDKs). The request path is straight: decode →
//! parse → authenticate → enrich and stamp → admit (suppression list, rate limit, in-flight
//! bound) → deliver; every refusal on it is a [`Rejection`], answered in one place
//! (`crate::rejection`).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use base64::Engine;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use northstar_schemas::suppression::Suppressions;
use northstar_schemas::EventType;
use serde_json::json;

use crate::config::IngestConfig;
use crate::enrich::{self, RequestInfo};
use crate::metrics;
use crate::producer::{EventProducer, ProduceError};
use crate::rejection::Rejection;
use crate::segment::{self, Request, RequestError};
use northstar_schemas::Event;

/// Shared state of the handlers.
#[derive(Debug)]
pub struct AppState {
    pub config: IngestConfig,
    pub producer: EventProducer,
    /// One permit per event waiting for its acknowledgement.
    in_flight: Arc<tokio::sync::Semaphore>,
    /// Rate limiters by write key (keys without a limit are absent).
    limiters: HashMap<String, DefaultDirectRateLimiter>,
    /// Subjects erased on request (`None`: no PII key, the list is not consulted).
    pub suppressions: Option<Suppressions>,
}

impl AppState {
    pub fn new(config: IngestConfig, producer: EventProducer) -> Self {
        let limiters = config
            .write_keys
            .0
            .iter()
            .filter_map(|(key, source)| {
                let limit = config.rate_limit_of(source);
                let rate = NonZeroU32::new(limit.events_per_second)?;
                let burst = NonZeroU32::new(limit.burst).unwrap_or(rate);
                let quota = Quota::per_second(rate).allow_burst(burst);
                Some((key.clone(), RateLimiter::direct(quota)))
            })
            .collect();
        Self {
            in_flight: Arc::new(tokio::sync::Semaphore::new(config.max_in_flight_events)),
            limiters,
            suppressions: None,
            config,
            producer,
        }
    }
}

/// Every tracking route: its path, and the message type it implies (`None`: a batch).
pub fn routes() -> Vec<(String, Option<EventType>)> {
    let mut out = vec![
        ("/v1/batch".to_string(), None),
        ("/v1/import".to_string(), None),
    ];
    for kind in EventType::ALL {
        out.push((format!("/v1/{}", kind.as_str()), Some(kind)));
        // analytics.js posts single calls to short paths: /v1/t, /v1/i, /v1/p, /v1/s, /v1/g, /v1/a.
        out.push((format!("/v1/{}", &kind.as_str()[..1]), Some(kind)));
    }
    out
}

/// The tracking API routes.
pub fn router(state: Arc<AppState>) -> Router {
    let mut r = Router::new();
    for (path, kind) in routes() {
        let label = match kind {
            Some(k) => k.as_str(),
            None if path.ends_with("import") => "import",
            None => "batch",
        };
        r = r.route(
            &path,
            post(move |s, c, h, b| handle(s, c, h, b, kind, label)),
        );
    }
    r.with_state(state).layer(cors())
}

/// CORS for browser SDKs (analytics.js and others post from any page): any origin, the
/// tracking API's methods and headers, preflights cached for a day. Credentials are not
/// allowed: the write key travels as HTTP Basic or in the body, never in cookies.
fn cors() -> tower_http::cors::CorsLayer {
    use axum::http::Method;
    tower_http::cors::CorsLayer::new()
        .allow_origin(tower_http::cors::Any)
        .allow_methods([Method::POST, Method::OPTIONS])
        .allow_headers([
            header::CONTENT_TYPE,
            header::AUTHORIZATION,
            header::CONTENT_ENCODING,
        ])
        .max_age(std::time::Duration::from_secs(86_400))
}

/// The write key from HTTP Basic credentials (user = write key, password ignored).
fn basic_write_key(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let encoded = value
        .strip_prefix("Basic ")
        .or_else(|| value.strip_prefix("basic "))?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    Some(
        text.split_once(':')
            .map_or(text.clone(), |(user, _)| user.to_string()),
    )
}

async fn handle(
    State(state): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Body,
    kind: Option<EventType>,
    route: &'static str,
) -> Response {
    let started = Instant::now();
    let forwarded = headers.get("x-forwarded-for").and_then(|v| v.to_str().ok());
    let client = enrich::client_ip(peer.ip(), forwarded, &state.config.trusted_proxies);
    let response = match process(&state, &headers, body, kind, client).await {
        Ok(accepted) => accepted.into_response(),
        Err(rejection) => rejection.into_response(),
    };
    metrics::REQUESTS
        .with_label_values(&[route, response.status().as_str()])
        .inc();
    metrics::REQUEST_SECONDS
        .with_label_values(&[route])
        .observe(started.elapsed().as_secs_f64());
    response
}

/// Whether `key` may send `n` more events now.
fn rate_limit(state: &AppState, key: &str, n: usize) -> Result<(), Rejection> {
    let (Some(limiter), Some(n)) = (
        state.limiters.get(key),
        NonZeroU32::new(u32::try_from(n).unwrap_or(u32::MAX)),
    ) else {
        return Ok(());
    };
    match limiter.check_n(n) {
        Ok(Ok(())) => Ok(()),
        Ok(Err(not_until)) => {
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            Err(Rejection::RateLimited {
                message: format!(
                    "this write key's rate limit is reached; retry in {} ms",
                    wait.as_millis()
                ),
                retry_after: wait,
            })
        }
        Err(governor::InsufficientCapacity(burst)) => Err(Rejection::RateLimited {
            message: format!(
                "{n} events in one request are more than this write key's burst of {burst}; \
                 send smaller batches"
            ),
            retry_after: Duration::from_secs(1),
        }),
    }
}

/// Removes the events of suppressed subjects; how many there were (counted).
fn drop_suppressed(state: &AppState, events: &mut Vec<Event>) -> usize {
    let Some(list) = state.suppressions.as_ref().filter(|l| !l.is_empty()) else {
        return 0;
    };
    let before = events.len();
    events.retain(|e| !list.is_suppressed(e.user_id.as_deref(), e.anonymous_id.as_deref()));
    let n = before - events.len();
    metrics::EVENTS_SUPPRESSED.inc_by(n as u64);
    n
}

/// The source of a known write key.
fn source_of<'a>(state: &'a AppState, key: &str) -> Result<&'a str, Rejection> {
    state
        .config
        .write_keys
        .source(key)
        .ok_or(Rejection::Unauthorized("unknown write key"))
}

/// The body, read up to the batch limit and decompressed.
async fn read_body(body: Body, headers: &HeaderMap, limit: usize) -> Result<Bytes, Rejection> {
    let bytes: Bytes =
        axum::body::to_bytes(body, limit)
            .await
            .map_err(|_| RequestError::BatchTooLarge {
                size: limit + 1,
                limit,
            })?;
    let encoding = headers
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok());
    // A body that needed no decoding is kept as it came, without a copy.
    Ok(match segment::decode_body(&bytes, encoding, limit)? {
        std::borrow::Cow::Borrowed(_) => bytes.clone(),
        std::borrow::Cow::Owned(decoded) => Bytes::from(decoded),
    })
}

/// The request's messages as events: enriched (client IP by the source's policy) and stamped
/// (`receivedAt`, clock correction from `sentAt`).
fn to_events(
    state: &AppState,
    request: &Request<'_>,
    source: &str,
    client: IpAddr,
) -> Result<Vec<Event>, Rejection> {
    let info = RequestInfo {
        ip: Some(client),
        ip_policy: state.config.ip_policy_of(source),
    };
    let arrival = segment::Arrival {
        source_id: source,
        received_at: chrono::Utc::now().timestamp_micros(),
        clock: &state.config.clock,
        info: &info,
    };
    Ok(request.events(&arrival)?)
}

/// Decode → parse → authenticate → enrich and stamp → admit → deliver.
async fn process(
    state: &Arc<AppState>,
    headers: &HeaderMap,
    body: Body,
    kind: Option<EventType>,
    client: IpAddr,
) -> Result<Accepted, Rejection> {
    let limits = &state.config.limits;
    // A key in the header is checked before the body is read.
    let header_key = basic_write_key(headers);
    if let Some(key) = &header_key {
        source_of(state, key)?;
    }
    let bytes = read_body(body, headers, limits.max_batch_bytes).await?;
    let mut request = match kind {
        None => segment::parse_batch(&bytes, limits)?,
        Some(k) => segment::parse_single(&bytes, k, limits)?,
    };
    let key = header_key
        .or(request.write_key.take())
        .ok_or(Rejection::Unauthorized(
            "missing write key: send it as the HTTP Basic user or as writeKey",
        ))?;
    let source = source_of(state, &key)?;
    let mut events = to_events(state, &request, source, client)?;
    let suppressed = drop_suppressed(state, &mut events);
    if suppressed > 0 && events.is_empty() {
        return Err(Rejection::Suppressed(suppressed));
    }
    rate_limit(state, &key, events.len())?;
    let events = deliver(state, events).await?;
    Ok(Accepted {
        events,
        suppressed,
        state: state.clone(),
    })
}

/// Sends `events` and waits for the broker's acknowledgement of every one, within
/// `delivery_timeout_ms`, holding one in-flight permit per event (never more than
/// `max_in_flight_events` waiting) until the broker has answered, whatever the client is told.
async fn deliver(state: &Arc<AppState>, events: Vec<Event>) -> Result<Arc<Vec<Event>>, Rejection> {
    let retry_after = Duration::from_secs(state.config.retry_after_secs);
    let limit = state.config.max_in_flight_events;
    let permits = u32::try_from(events.len().min(limit)).unwrap_or(u32::MAX);
    let permits = state
        .in_flight
        .clone()
        .try_acquire_many_owned(permits)
        .map_err(|_| Rejection::Overloaded { limit, retry_after })?;
    let events = Arc::new(events);
    let sending = {
        let (state, events) = (state.clone(), events.clone());
        tokio::spawn(async move {
            let result = state.producer.send_all(&events).await;
            drop(permits);
            result
        })
    };
    let deadline = Duration::from_millis(state.config.delivery_timeout_ms);
    let result = match tokio::time::timeout(deadline, sending).await {
        Ok(Ok(result)) => result,
        Ok(Err(join)) => Err(ProduceError::Aborted(join.to_string())),
        Err(_) => {
            metrics::DELIVERY_ERRORS
                .with_label_values(&["deadline"])
                .inc();
            Err(ProduceError::Deadline(state.config.delivery_timeout_ms))
        }
    };
    match result {
        Ok(()) => Ok(events),
        Err(ProduceError::Encode(msg)) => Err(Rejection::Encode(msg)),
        Err(reason) => Err(Rejection::BrokerUnavailable {
            reason,
            retry_after,
        }),
    }
}

/// Events the broker acknowledged: counted, and answered 200.
struct Accepted {
    events: Arc<Vec<Event>>,
    suppressed: usize,
    state: Arc<AppState>,
}

impl IntoResponse for Accepted {
    fn into_response(self) -> Response {
        // Counted per kind and flag, then added: one labelled counter lookup per series, not
        // per event.
        let mut kinds = [0u64; EventType::ALL.len()];
        let (mut future, mut past) = (0u64, 0u64);
        let clock = &self.state.config.clock;
        for e in self.events.iter() {
            if let Some(i) = EventType::ALL.iter().position(|k| *k == e.kind) {
                kinds[i] += 1;
            }
            match segment::clock_flag(e.timestamp, e.received_at, clock) {
                Some(segment::ClockFlag::Future) => future += 1,
                Some(segment::ClockFlag::Past) => past += 1,
                None => {}
            }
        }
        for (kind, n) in EventType::ALL.iter().zip(kinds) {
            if n > 0 {
                metrics::EVENTS_ACCEPTED
                    .with_label_values(&[kind.as_str()])
                    .inc_by(n);
            }
        }
        for (flag, n) in [
            (segment::ClockFlag::Future, future),
            (segment::ClockFlag::Past, past),
        ] {
            if n > 0 {
                metrics::CLOCK_FLAGGED
                    .with_label_values(&[flag.as_str()])
                    .inc_by(n);
            }
        }
        let n = self.suppressed;
        let body = if n == 0 {
            r#"{"success":true}"#.to_string()
        } else {
            json!({"success": true, "suppressed": n, "message": format!(
                "{n} events belong to subjects erased on request and were not accepted")})
            .to_string()
        };
        (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/json")],
            body,
        )
            .into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// docs/openapi.yaml documents exactly the routes served, each with its CORS preflight
    /// and every status the handler can answer.
    #[test]
    fn openapi_document_matches_the_routes() {
        let text = include_str!("../../docs/openapi.yaml");
        let doc: serde_yaml_ng::Value = serde_yaml_ng::from_str(text).expect("valid YAML");
        let paths = doc["paths"].as_mapping().expect("paths");
        let documented: std::collections::BTreeSet<String> = paths
            .keys()
            .filter_map(|k| k.as_str().map(str::to_string))
            .collect();
        let served: std::collections::BTreeSet<String> =
            routes().into_iter().map(|(p, _)| p).collect();
        assert_eq!(documented, served);
        for (path, item) in paths {
            assert!(item["options"].is_mapping(), "{path:?}: preflight");
            let responses = item["post"]["responses"].as_mapping().expect("responses");
            for status in ["200", "400", "401", "403", "413", "415", "429", "503"] {
                assert!(
                    responses.contains_key(serde_yaml_ng::Value::from(status)),
                    "{path:?}: {status}"
                );
            }
        }
    }
}
