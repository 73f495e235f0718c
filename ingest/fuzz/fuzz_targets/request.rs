//! Fuzzes the collector's request decoder: any bytes, as any route's body, with any of the
//! accepted encodings. The first input byte picks the route (one of the six single-message
//! routes, or a batch) and the `Content-Encoding`; the rest is the body.
//!
//! Invariants checked besides "never panics": a request is either rejected with a reason or
//! yields events that all have an identity and a message id, whose stored JSON texts (context,
//! properties, traits, integrations) parse as JSON and carry no whitespace outside strings,
//! and that encode as Avro (what the producer does next), and decompression never yields more
//! than the batch limit (plain bodies are bounded by the HTTP layer and the parsers' own size
//! checks). And differentially: for a body that serde_json reads as an object, `raw::walk`
//! hands over the same top-level entries (the last of a repeated key winning) with the same
//! values — the single pass the collector reads messages and contexts with.

#![no_main]

use libfuzzer_sys::fuzz_target;
use northstar_ingest::config::{ClockBounds, Limits};
use northstar_ingest::enrich::{IpPolicy, RequestInfo};
use northstar_ingest::segment;
use northstar_schemas::event::EventCodec;
use northstar_schemas::EventType;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, body)) = data.split_first() else {
        return;
    };
    let limits = Limits {
        max_event_bytes: 8 * 1024,
        max_batch_bytes: 32 * 1024,
        max_depth: 16,
        max_keys: 200,
    };
    let encoding = match selector & 3 {
        0 => None,
        1 => Some("gzip"),
        2 => Some("deflate"),
        _ => Some("identity"),
    };
    let body = match segment::decode_body(body, encoding, limits.max_batch_bytes) {
        Ok(b) => b,
        Err(e) => {
            assert!(!e.reason().is_empty());
            return;
        }
    };
    if encoding.is_some_and(|e| e != "identity") {
        assert!(
            body.len() <= limits.max_batch_bytes,
            "decompression is bounded"
        );
    }
    walks_like_serde_json(&body);
    let route = (selector >> 2) as usize % (EventType::ALL.len() + 1);
    let parsed = match EventType::ALL.get(route) {
        Some(&kind) => segment::parse_single(&body, kind, &limits),
        None => segment::parse_batch(&body, &limits),
    };
    let request = match parsed {
        Ok(r) => r,
        Err(e) => {
            assert!(!e.reason().is_empty() && !e.to_string().is_empty());
            return;
        }
    };
    let info = RequestInfo {
        ip: Some(std::net::IpAddr::from([192, 0, 2, 1])),
        ip_policy: IpPolicy::Truncate,
    };
    let arrival = segment::Arrival {
        source_id: "fuzz",
        received_at: 1_764_000_000_000_000,
        clock: &ClockBounds::default(),
        info: &info,
    };
    let events = match request.events(&arrival) {
        Ok(events) => events,
        Err(e) => {
            assert!(!e.reason().is_empty());
            return;
        }
    };
    let codec = EventCodec::new();
    for event in events {
        assert!(event.user_id.is_some() || event.anonymous_id.is_some());
        assert!(!event.message_id.is_empty());
        // The JSON texts are stored as the client sent them, not rebuilt: still JSON, compact.
        for text in [
            &event.context,
            &event.properties,
            &event.traits,
            &event.integrations,
        ] {
            serde_json::from_str::<serde_json::Value>(text).expect("a stored JSON text is JSON");
            assert_eq!(
                &northstar_ingest::raw::compact(text),
                text,
                "stored compact"
            );
        }
        codec
            .encode(&event)
            .expect("an accepted event always encodes");
    }
});

/// `raw::walk` sees the entries serde_json sees, when serde_json reads `body` as an object.
fn walks_like_serde_json(body: &[u8]) {
    use serde_json::{Map, Value};
    let Ok(object) = serde_json::from_slice::<Map<String, Value>>(body) else {
        return;
    };
    let text = std::str::from_utf8(body).expect("serde_json read it: UTF-8");
    let unbounded = Limits {
        max_depth: usize::MAX,
        max_keys: usize::MAX,
        ..Limits::default()
    };
    let mut walked: Vec<(String, Value)> = Vec::new();
    northstar_ingest::raw::walk(text.trim(), 0, &unbounded, |key, value| {
        let value: Value = serde_json::from_str(value).expect("a walked value is JSON");
        walked.retain(|(k, _)| k != key.as_str());
        walked.push((key.as_str().to_string(), value));
        Ok(())
    })
    .expect("serde_json read it: no lone surrogate");
    assert_eq!(walked.len(), object.len(), "same keys");
    for (key, value) in &walked {
        assert_eq!(Some(value), object.get(key), "entry {key}");
    }
}
