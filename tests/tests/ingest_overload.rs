//! The collector under overload and failure:
//! - a write key over its rate limit gets 429 with Retry-After while another key is served;
//! - with the broker stalled, in-flight events stay bounded: requests past
//!   `max_in_flight_events` get 503 `overloaded` at once instead of queueing;
//! - a broker SIGKILLed in the middle of concurrent load (Tansu on its persistent sqlite
//!   storage) and restarted: every event answered 200 is in Kafka afterwards, and the collector
//!   recovers by itself.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use northstar_e2e::{kafka, Stack};
use northstar_schemas::event::EventCodec;
use northstar_schemas::wire;
use reqwest::StatusCode;
use serde_json::{json, Value};

fn batch(tag: &str, n: usize) -> (Vec<String>, Value) {
    let ids: Vec<String> = (0..n).map(|i| format!("{tag}-{i}")).collect();
    let events: Vec<Value> = ids
        .iter()
        .map(|id| json!({"type": "track", "event": "Load", "userId": format!("u-{id}"), "messageId": id}))
        .collect();
    (ids, json!({ "batch": events }))
}

/// POSTs `body` to `url` with `authorization`.
async fn post(
    http: &reqwest::Client,
    url: &str,
    authorization: &str,
    body: &Value,
) -> reqwest::Response {
    http.post(url)
        .header("authorization", authorization)
        .json(body)
        .send()
        .await
        .expect("send")
}

fn basic(key: &str) -> String {
    use base64::Engine;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{key}:"))
    )
}

fn message_ids_in_raw(stack: &Stack) -> HashSet<String> {
    let codec = EventCodec::new();
    kafka::read_topic(&stack.brokers(), "events.raw")
        .expect("read raw")
        .iter()
        .filter_map(|r| wire::split(r.payload.as_deref()?).ok())
        .filter_map(|(_, datum)| codec.decode_v1(datum).ok())
        .map(|e| e.message_id)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_over_its_rate_limit_gets_429_while_others_are_served() {
    let mut stack = Stack::start_core().await;
    stack.env.extend([
        (
            "NORTHSTAR_WRITE_KEYS__LIMITEDKEY".to_string(),
            "limited".to_string(),
        ),
        (
            "NORTHSTAR_SOURCES__LIMITED__RATE_LIMIT__EVENTS_PER_SECOND".into(),
            "50".into(),
        ),
        (
            "NORTHSTAR_SOURCES__LIMITED__RATE_LIMIT__BURST".into(),
            "100".into(),
        ),
    ]);
    stack.start_ingest_ready().await;
    let http = reqwest::Client::new();
    let url = format!("{}/v1/batch", stack.ingest_url());
    let (limited, normal) = (basic("limitedkey"), northstar_e2e::write_key_auth());
    let (mut ok, mut limited_429, mut normal_ok) = (0, 0, 0);
    for i in 0..20 {
        let (_, body) = batch(&format!("lim-{i}"), 20);
        let resp = post(&http, &url, &limited, &body).await;
        match resp.status() {
            StatusCode::OK => ok += 1,
            StatusCode::TOO_MANY_REQUESTS => {
                limited_429 += 1;
                let after: u64 = resp.headers()["retry-after"]
                    .to_str()
                    .expect("ascii")
                    .parse()
                    .expect("secs");
                assert!((1..=2).contains(&after), "Retry-After {after}");
                let body: Value = resp.json().await.expect("json");
                assert_eq!(body["code"], "rate_limited");
            }
            other => panic!("unexpected {other}"),
        }
        // The other key, in between, is never limited.
        let (_, body) = batch(&format!("norm-{i}"), 20);
        let resp = post(&http, &url, &normal, &body).await;
        assert_eq!(resp.status(), 200, "the unlimited key is served");
        normal_ok += 1;
    }
    // A burst of 100 events = 5 requests of 20, plus what 50/s refills while the loop runs.
    assert!((5..20).contains(&ok), "{ok} limited requests accepted");
    assert_eq!(ok + limited_429, 20);
    assert_eq!(normal_ok, 20);
    // A batch larger than the burst can never pass: told so.
    let (_, body) = batch("too-big", 150);
    let resp = post(&http, &url, &limited, &body).await;
    assert_eq!(resp.status(), 429);
    let text = resp.text().await.expect("text");
    assert!(text.contains("burst of 100"), "{text}");
    // After a pause the key is served again.
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let (_, body) = batch("after-pause", 20);
    let resp = post(&http, &url, &limited, &body).await;
    assert_eq!(resp.status(), 200);
    let metrics = reqwest::get(stack.ingest_metrics_url())
        .await
        .expect("m")
        .text()
        .await
        .expect("t");
    assert!(metrics.contains("northstar_ingest_events_rejected_total{reason=\"rate_limited\"}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_flight_events_stay_bounded_when_the_broker_stalls() {
    let mut stack = Stack::start_core().await;
    stack.env.extend([
        (
            "NORTHSTAR_MAX_IN_FLIGHT_EVENTS".to_string(),
            "100".to_string(),
        ),
        ("NORTHSTAR_DELIVERY_TIMEOUT_MS".into(), "20000".into()),
    ]);
    stack.start_ingest_ready().await;
    let url = format!("{}/v1/batch", stack.ingest_url());
    // Stall the broker: requests now wait for acknowledgements that do not come.
    stack.proc("tansu").expect("tansu").signal("STOP");
    let http = reqwest::Client::new();
    let mut waiting = Vec::new();
    for i in 0..2 {
        let (ids, body) = batch(&format!("held-{i}"), 50);
        let req = http
            .post(&url)
            .header("authorization", northstar_e2e::write_key_auth())
            .json(&body);
        waiting.push((
            ids,
            tokio::spawn(async move { req.send().await.map(|r| r.status()) }),
        ));
    }
    tokio::time::sleep(Duration::from_millis(800)).await;
    // 100 events are in flight: the next request is refused at once, not queued.
    let (_, body) = batch("refused", 10);
    let started = Instant::now();
    let resp = post(&http, &url, &northstar_e2e::write_key_auth(), &body).await;
    assert_eq!(resp.status(), 503);
    assert!(resp.headers().contains_key("retry-after"));
    let body: Value = resp.json().await.expect("json");
    assert_eq!(body["code"], "overloaded", "{body}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "answered without waiting for the broker"
    );
    let gauge = reqwest::get(stack.ingest_metrics_url())
        .await
        .expect("m")
        .text()
        .await
        .expect("t");
    assert!(
        gauge
            .lines()
            .any(|l| l == "northstar_ingest_in_flight_events 100"),
        "{gauge}"
    );
    // The broker resumes: the held requests complete, each 200 only once acknowledged.
    stack.proc("tansu").expect("tansu").signal("CONT");
    let mut acknowledged = HashSet::new();
    for (ids, task) in waiting {
        let status = task.await.expect("join").expect("send");
        assert!(status == 200 || status == 503, "{status}");
        if status == 200 {
            acknowledged.extend(ids);
        }
    }
    let (ids, body) = batch("after", 10);
    let resp = post(&http, &url, &northstar_e2e::write_key_auth(), &body).await;
    assert_eq!(resp.status(), 200, "permits are given back");
    acknowledged.extend(ids);
    let raw = message_ids_in_raw(&stack);
    assert!(acknowledged.is_subset(&raw), "every 200 is in Kafka");
    assert!(
        !raw.iter().any(|id| id.starts_with("refused")),
        "a refused event never reaches Kafka"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_sigkill_mid_load_loses_no_acknowledged_event_and_ingest_recovers() {
    let mut stack = Stack::start_core().await;
    stack
        .env
        .push(("NORTHSTAR_DELIVERY_TIMEOUT_MS".into(), "3000".into()));
    stack.start_ingest_ready().await;
    let url = format!("{}/v1/batch", stack.ingest_url());
    let acknowledged = Arc::new(Mutex::new(HashSet::new()));
    // (when the request was sent, its status)
    let statuses = Arc::new(Mutex::new(Vec::<(Instant, u16)>::new()));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut senders = Vec::new();
    for w in 0..4 {
        let (url, acknowledged, statuses, stop) = (
            url.clone(),
            acknowledged.clone(),
            statuses.clone(),
            stop.clone(),
        );
        senders.push(tokio::spawn(async move {
            let http = reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .expect("client");
            let mut n = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let (ids, body) = batch(&format!("w{w}-{n}"), 25);
                n += 1;
                let sent = Instant::now();
                let status = match http
                    .post(&url)
                    .header("authorization", northstar_e2e::write_key_auth())
                    .json(&body)
                    .send()
                    .await
                {
                    Ok(r) => r.status().as_u16(),
                    Err(_) => 0,
                };
                statuses.lock().expect("lock").push((sent, status));
                if status == 200 {
                    acknowledged.lock().expect("lock").extend(ids);
                } else {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    stack.kill9("tansu");
    let killed = Instant::now();
    tokio::time::sleep(Duration::from_secs(4)).await;
    stack.restart("tansu");
    let restarted = Instant::now();
    // Load goes on until the collector has answered 200 again for a while.
    let deadline = restarted + Duration::from_secs(90);
    loop {
        let recovered = statuses
            .lock()
            .expect("lock")
            .iter()
            .filter(|(t, s)| *t > restarted && *s == 200)
            .count();
        if recovered >= 20 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "ingest did not recover by itself\n{}",
            stack.logs()
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for s in senders {
        s.await.expect("sender");
    }
    let statuses = statuses.lock().expect("lock").clone();
    let during: Vec<u16> = statuses
        .iter()
        .filter(|(t, _)| *t > killed && *t < restarted)
        .map(|(_, s)| *s)
        .collect();
    let timeline: Vec<(i64, u16)> = statuses
        .iter()
        .map(|(t, s)| {
            let ms = if *t > killed {
                (*t - killed).as_millis() as i64
            } else {
                -((killed - *t).as_millis() as i64)
            };
            (ms, *s)
        })
        .collect();
    assert!(
        during.contains(&503),
        "503 while the broker is down: {during:?}; timeline (ms from the kill, status) {timeline:?}"
    );
    assert!(
        statuses.iter().all(|(_, s)| *s == 200 || *s == 503),
        "only 200 or 503"
    );
    let acknowledged = acknowledged.lock().expect("lock").clone();
    let raw = message_ids_in_raw(&stack);
    let missing: Vec<&String> = acknowledged.difference(&raw).take(10).collect();
    assert!(
        missing.is_empty(),
        "{} acknowledged events not in Kafka, e.g. {missing:?}",
        acknowledged.difference(&raw).count()
    );
    assert!(
        acknowledged.len() > 1_000,
        "{} events acknowledged",
        acknowledged.len()
    );
}
