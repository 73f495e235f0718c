//! The collector's HTTP API as clients meet it: Segment's routes and analytics.js's short
//! paths, the write key as HTTP Basic user or in the body, gzip and deflate bodies, CORS
//! preflights, Segment's response shapes, and a clear 4xx with a counter by reason for every
//! kind of bad input — none crashes it, and every event answered 200 is in `events.raw`.

use std::collections::{BTreeMap, HashSet};
use std::io::Write;
use std::time::Duration;

use northstar_e2e::{kafka, Stack, WRITE_KEY};
use northstar_schemas::event::EventCodec;
use northstar_schemas::wire;
use serde_json::{json, Value};

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).expect("gzip");
    e.finish().expect("gzip")
}

fn deflate(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).expect("deflate");
    e.finish().expect("deflate")
}

/// `northstar_ingest_events_rejected_total` by reason.
async fn rejected(metrics_url: &str) -> BTreeMap<String, f64> {
    let text = reqwest::get(metrics_url)
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    text.lines()
        .filter_map(|l| l.strip_prefix("northstar_ingest_events_rejected_total{reason=\""))
        .filter_map(|l| {
            let (reason, rest) = l.split_once("\"}")?;
            Some((reason.to_string(), rest.trim().parse().ok()?))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn segment_api_shapes_encodings_cors_and_every_bad_input_answered() {
    let mut stack = Stack::start_core().await;
    // The test client connects from 127.0.0.1: a trusted proxy here, so X-Forwarded-For counts;
    // addresses are truncated.
    stack.env.extend([
        (
            "NORTHSTAR_TRUSTED_PROXIES".to_string(),
            "[\"127.0.0.0/8\"]".to_string(),
        ),
        ("NORTHSTAR_IP".into(), "truncate".into()),
    ]);
    stack.start_ingest_ready().await;
    let base = stack.ingest_url();
    let http = reqwest::Client::new();
    let auth = northstar_e2e::write_key_auth();
    let mut accepted: HashSet<String> = HashSet::new();

    // CORS preflight, as a browser sends it before a POST with Authorization.
    let pre = http
        .request(reqwest::Method::OPTIONS, format!("{base}/v1/batch"))
        .header("origin", "https://shop.example")
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "content-type,authorization",
        )
        .send()
        .await
        .expect("preflight");
    assert!(pre.status().is_success(), "{}", pre.status());
    let h = |name: &str| {
        pre.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_ascii_lowercase()
    };
    assert_eq!(h("access-control-allow-origin"), "*");
    assert!(h("access-control-allow-methods").contains("post"));
    assert!(h("access-control-allow-headers").contains("authorization"));

    // Accepted: the write key in the body (analytics.js sends text/plain to avoid a preflight),
    // a short path, gzip and deflate bodies; Segment's success shape.
    // (path, Content-Encoding, body, Authorization, message id)
    type Accepted<'a> = (&'a str, Option<&'a str>, Vec<u8>, Option<&'a str>, &'a str);
    let ok_cases: Vec<Accepted<'_>> = vec![
        (
            "/v1/t",
            None,
            json!({"writeKey": WRITE_KEY, "event": "Short Path", "anonymousId": "a1", "messageId": "api-short"}).to_string().into_bytes(),
            None,
            "api-short",
        ),
        (
            "/v1/batch",
            None,
            json!({"writeKey": WRITE_KEY, "batch": [{"type": "identify", "userId": "u1", "traits": {"plan": "pro"}, "messageId": "api-body-key"}]}).to_string().into_bytes(),
            None,
            "api-body-key",
        ),
        (
            "/v1/batch",
            Some("gzip"),
            gzip(json!({"batch": [{"type": "track", "event": "Zipped", "userId": "u2", "messageId": "api-gzip"}]}).to_string().as_bytes()),
            Some(&auth),
            "api-gzip",
        ),
        (
            "/v1/page",
            Some("deflate"),
            deflate(json!({"name": "Home", "userId": "u3", "messageId": "api-deflate"}).to_string().as_bytes()),
            Some(&auth),
            "api-deflate",
        ),
    ];
    for (path, encoding, body, authorization, id) in ok_cases {
        let mut req = http
            .post(format!("{base}{path}"))
            .header("content-type", "text/plain")
            .header("origin", "https://shop.example")
            .body(body);
        if let Some(e) = encoding {
            req = req.header("content-encoding", e);
        }
        if let Some(a) = authorization {
            req = req.header("authorization", a);
        }
        let resp = req.send().await.expect("send");
        let status = resp.status();
        let cors = resp.headers().get("access-control-allow-origin").cloned();
        let body: Value = resp.json().await.expect("json body");
        assert_eq!(status, 200, "{path} {encoding:?}: {body}");
        assert_eq!(body, json!({"success": true}));
        assert_eq!(cors.as_ref().and_then(|v| v.to_str().ok()), Some("*"));
        accepted.insert(id.to_string());
    }

    // Enrichment: the client address from X-Forwarded-For (truncated), the user agent parsed,
    // and the collector's reserved context.northstar not forgeable by clients.
    let chrome = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36";
    let resp = http
        .post(format!("{base}/v1/track"))
        .header("authorization", &auth)
        .header("x-forwarded-for", "203.0.113.50, 127.0.0.1")
        .json(
            &json!({"userId": "u9", "event": "Enriched", "messageId": "api-enriched",
                      "context": {"userAgent": chrome, "northstar": {"clock_flag": "forged"}}}),
        )
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status(), 200);
    accepted.insert("api-enriched".to_string());

    // Rejected: status, reason code, and a message naming the problem.
    let track = |extra: Value| {
        let mut e = json!({"type": "track", "event": "E", "userId": "u"});
        e.as_object_mut()
            .expect("object")
            .extend(extra.as_object().expect("extra").clone());
        json!({"batch": [e]}).to_string().into_bytes()
    };
    let deep = format!(
        r#"{{"batch":[{{"type":"track","userId":"u","properties":{{"a":{}1{}}}}}]}}"#,
        "[".repeat(40),
        "]".repeat(40)
    );
    let many: Vec<String> = (0..1_500).map(|i| format!(r#""k{i}":{i}"#)).collect();
    let huge_map = format!(
        r#"{{"batch":[{{"type":"track","userId":"u","properties":{{{}}}}}]}}"#,
        many.join(",")
    );
    let big_event = track(json!({"properties": {"blob": "x".repeat(40_000)}}));
    let big_batch = json!({"batch": (0..30).map(|i| json!({"type": "track", "userId": "u", "messageId": format!("big-{i}"), "properties": {"blob": "y".repeat(20_000)}})).collect::<Vec<_>>()}).to_string().into_bytes();
    let bomb = gzip(&vec![b' '; 2_000_000]);
    type Case = (
        &'static str,
        Vec<u8>,
        Option<&'static str>,
        u16,
        &'static str,
        &'static str,
    );
    let cases: Vec<Case> = vec![
        (
            "truncated",
            br#"{"batch":[{"type":"track","userId":"#.to_vec(),
            None,
            400,
            "truncated_json",
            "truncated",
        ),
        (
            "malformed",
            br#"{"batch":[{"type":"track",,}]}"#.to_vec(),
            None,
            400,
            "invalid_json",
            "invalid JSON",
        ),
        (
            "not an array",
            br#"{"batch":{"type":"track"}}"#.to_vec(),
            None,
            400,
            "bad_shape",
            "batch",
        ),
        (
            "userId an object",
            track(json!({"userId": {"id": 1}})),
            None,
            400,
            "bad_field",
            "userId",
        ),
        (
            "timestamp a number",
            track(json!({"timestamp": 12})),
            None,
            400,
            "bad_timestamp",
            "timestamp",
        ),
        (
            "no identity",
            json!({"batch": [{"type": "track", "event": "E"}]})
                .to_string()
                .into_bytes(),
            None,
            400,
            "missing_identity",
            "userId or anonymousId",
        ),
        (
            "unknown type",
            track(json!({"type": "click"})),
            None,
            400,
            "unknown_type",
            "click",
        ),
        (
            "deep nesting",
            deep.into_bytes(),
            None,
            400,
            "too_deep",
            "32 levels",
        ),
        (
            "lone surrogate",
            br#"{"batch":[{"type":"track","userId":"\ud800"}]}"#.to_vec(),
            None,
            400,
            "invalid_unicode",
            "surrogate",
        ),
        (
            "huge property map",
            huge_map.into_bytes(),
            None,
            400,
            "too_many_keys",
            "1000-key limit",
        ),
        (
            "event over 32 KB",
            big_event,
            None,
            413,
            "event_too_large",
            "32768-byte event limit",
        ),
        (
            "batch over 500 KB",
            big_batch,
            None,
            413,
            "batch_too_large",
            "512000-byte batch limit",
        ),
        (
            "gzip bomb",
            bomb,
            Some("gzip"),
            413,
            "batch_too_large",
            "512000-byte batch limit",
        ),
        (
            "corrupt gzip",
            b"definitely not gzip".to_vec(),
            Some("gzip"),
            400,
            "bad_compression",
            "gzip",
        ),
        (
            "brotli",
            b"{}".to_vec(),
            Some("br"),
            415,
            "unsupported_encoding",
            "br",
        ),
    ];
    let before = rejected(&stack.ingest_metrics_url()).await;
    let mut expected: BTreeMap<String, f64> = BTreeMap::new();
    for (what, body, encoding, status, code, message) in cases {
        let mut req = http
            .post(format!("{base}/v1/batch"))
            .header("authorization", &auth)
            .body(body);
        if let Some(e) = encoding {
            req = req.header("content-encoding", e);
        }
        let resp = req.send().await.expect("send");
        let got = resp.status().as_u16();
        let body: Value = resp.json().await.unwrap_or(Value::Null);
        assert_eq!(got, status, "{what}: {body}");
        assert_eq!(body["success"], false, "{what}: {body}");
        assert_eq!(body["code"], code, "{what}: {body}");
        let text = body["message"].as_str().unwrap_or_default();
        assert!(
            text.contains(message),
            "{what}: {text:?} should mention {message:?}"
        );
        *expected.entry(code.to_string()).or_default() += 1.0;
    }
    let after = rejected(&stack.ingest_metrics_url()).await;
    for (reason, n) in &expected {
        let delta =
            after.get(reason).copied().unwrap_or(0.0) - before.get(reason).copied().unwrap_or(0.0);
        assert_eq!(delta, *n, "counter for {reason}");
    }

    // Write keys: none, or unknown, is 401 — in the header or in the body.
    for (authorization, body) in [
        (None, json!({"batch": [{"type": "track", "userId": "u"}]})),
        (
            Some("Basic bm9wZTo="),
            json!({"batch": [{"type": "track", "userId": "u"}]}),
        ),
        (
            None,
            json!({"writeKey": "nope", "batch": [{"type": "track", "userId": "u"}]}),
        ),
    ] {
        let mut req = http.post(format!("{base}/v1/batch")).json(&body);
        if let Some(a) = authorization {
            req = req.header("authorization", a);
        }
        let resp = req.send().await.expect("send");
        assert_eq!(resp.status(), 401);
        assert!(resp.headers().contains_key("www-authenticate"));
    }

    // Still serving, and exactly the accepted events are in events.raw.
    assert!(reqwest::get(format!("{base}/healthz"))
        .await
        .expect("health")
        .status()
        .is_success());
    let codec = EventCodec::new();
    let raw: Vec<String> = kafka::read_topic(&stack.brokers(), "events.raw")
        .expect("read")
        .into_iter()
        .filter_map(|r| {
            let (_, datum) = wire::split(r.payload.as_deref()?).ok()?;
            codec.decode_v1(datum).ok().map(|e| e.message_id)
        })
        .collect();
    assert_eq!(raw.iter().cloned().collect::<HashSet<_>>(), accepted);
    let enriched = kafka::read_topic(&stack.brokers(), "events.raw")
        .expect("read")
        .into_iter()
        .filter_map(|r| {
            let (_, datum) = wire::split(r.payload.as_deref()?).ok()?;
            codec.decode_v1(datum).ok()
        })
        .find(|e| e.message_id == "api-enriched")
        .expect("enriched event");
    let ctx: Value = serde_json::from_str(&enriched.context).expect("context");
    assert_eq!(
        ctx["ip"], "203.0.113.0",
        "client address from the trusted proxy, truncated"
    );
    assert_eq!(ctx["northstar"]["user_agent"]["name"], "Chrome");
    assert_eq!(ctx["os"]["name"], "Windows 10");
    assert_eq!(ctx["device"]["type"], "desktop");
    assert!(
        ctx["northstar"].get("clock_flag").is_none(),
        "a client cannot forge flags"
    );
    let other = kafka::read_topic(&stack.brokers(), "events.raw")
        .expect("read")
        .into_iter()
        .filter_map(|r| {
            let (_, datum) = wire::split(r.payload.as_deref()?).ok()?;
            codec.decode_v1(datum).ok()
        })
        .find(|e| e.message_id == "api-gzip")
        .expect("gzip event");
    let ctx: Value = serde_json::from_str(&other.context).expect("context");
    assert_eq!(
        ctx["ip"], "127.0.0.0",
        "no X-Forwarded-For: the connection's address, truncated"
    );
    assert_eq!(raw.len(), accepted.len(), "no rejected event reached Kafka");
    // librdkafka statistics as gauges (every 5 s): queue depth, sent, broker round trips.
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    let wanted = [
        "northstar_producer_queue_messages{client=\"northstar-ingest\"}",
        "northstar_producer_sent_messages{client=\"northstar-ingest\"}",
        "northstar_kafka_broker_rtt_avg_microseconds{",
        "northstar_kafka_broker_waitresp_requests{",
        "northstar_ingest_in_flight_events",
        "northstar_ingest_request_duration_seconds_bucket{",
    ];
    // Metrics are on the admin listener only: the public port does not serve them.
    let public = reqwest::get(format!("{base}/metrics"))
        .await
        .expect("public");
    assert_eq!(public.status(), 404, "the tracking port serves /metrics");
    let ready = reqwest::get(format!("{base}/readyz"))
        .await
        .expect("readyz");
    assert_eq!(
        ready.status(),
        200,
        "the tracking port keeps its health checks"
    );
    loop {
        let text = reqwest::get(stack.ingest_metrics_url())
            .await
            .expect("m")
            .text()
            .await
            .expect("t");
        let missing: Vec<&str> = wanted
            .iter()
            .copied()
            .filter(|w| !text.contains(w))
            .collect();
        if missing.is_empty() {
            let sent: f64 = text
                .lines()
                .find_map(|l| {
                    l.strip_prefix("northstar_producer_sent_messages{client=\"northstar-ingest\"} ")
                })
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0.0);
            assert!(sent >= accepted.len() as f64, "{sent} messages sent");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "missing from /metrics: {missing:?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(stack.shutdown().is_empty());
}
