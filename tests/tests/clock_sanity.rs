//! Bad clocks among normal traffic: a backend producer writes Avro straight to `events.raw` with
//! `receivedAt` in nanoseconds, a record dated 2099 (both clocks), and one dated 1970. None of
//! them may move deduplication time or the watermark: the normal traffic's duplicates sent after
//! them are still dropped, its windows are counted exactly (none finalised early and its events
//! dropped as late), the first two are counted at their record's time, and the 1970 one is a
//! dead letter with its reason.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use northstar_e2e::{kafka, Stack};
use northstar_schemas::event::EventCodec;
use northstar_schemas::{wire, Event};
use serde_json::json;

const NORMAL: usize = 1_200;
const NAMES: [&str; 3] = ["Signed Up", "Activated", "Invited"];

fn normal(i: usize, ts: chrono::DateTime<chrono::Utc>) -> serde_json::Value {
    json!({"type": "track", "event": NAMES[i % 3], "userId": format!("u{}", i % 89),
        "messageId": format!("clock-{i}"),
        "timestamp": ts.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)})
}

/// A `track` event as a backend service would write it, with its own clocks (µs).
fn backend(name: &str, id: &str, timestamp: i64, received_at: i64) -> Event {
    let mut e =
        northstar_schemas::synthetic::track(id, "backend-user", name, 0, "web", "free", 0.0);
    e.timestamp = timestamp;
    e.received_at = received_at;
    e.source_id = "billing-service".into();
    e
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_clocks_cannot_move_dedup_time_or_the_watermark() {
    let mut stack = Stack::start_core().await;
    stack
        .env
        .push(("NORTHSTAR_EMIT_INTERVAL_MS".into(), "200".into()));
    stack.start_services().await;
    let now = chrono::Utc::now();
    let now_us = now.timestamp_micros();
    let first: Vec<_> = (0..NORMAL / 2).map(|i| normal(i, now)).collect();
    stack.send_batches(&first, 100).await;

    // The backend's records, between the two halves of the normal traffic.
    let codec = EventCodec::new();
    let y2099 = 4_070_908_800_000_000; // 2099-01-01 in µs
    let y1970 = 86_400_000_000;
    let bad = [
        backend("Nanosecond Receipt", "ns-1", now_us, now_us * 1000),
        backend("Year 2099", "y2099-1", y2099, y2099),
        backend("Year 1970", "y1970-1", y1970, now_us),
    ];
    for e in &bad {
        let datum = codec.encode(e).expect("encode");
        let payload = wire::frame(1, &datum);
        kafka::produce_raw(&stack.brokers(), "events.raw", "backend-user", &payload)
            .await
            .expect("produce");
    }
    let second: Vec<_> = (NORMAL / 2..NORMAL).map(|i| normal(i, now)).collect();
    stack.send_batches(&second, 100).await;
    // Duplicates of the first half, sent after the bad clocks: still recognised.
    stack.send_batches(&first[..300], 100).await;

    let mut expected: BTreeMap<String, f64> = BTreeMap::new();
    for i in 0..NORMAL {
        *expected.entry(NAMES[i % 3].to_string()).or_default() += 1.0;
    }
    expected.insert("Nanosecond Receipt".into(), 1.0);
    expected.insert("Year 2099".into(), 1.0);
    let deadline = Instant::now() + Duration::from_secs(90);
    while Instant::now() < deadline
        && northstar_e2e::held_sums(stack.ports.metrics, "events", "1m", "event").await != expected
    {
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let settled = northstar_e2e::held_sums(stack.ports.metrics, "events", "1m", "event").await;
    assert_eq!(settled, expected, "window counts\n{}", stack.logs());

    let metrics = reqwest::get(format!(
        "http://127.0.0.1:{}/metrics",
        stack.ports.processor
    ))
    .await
    .expect("processor metrics")
    .text()
    .await
    .unwrap_or_default();
    let sum = |name: &str| -> f64 {
        northstar_e2e::prom::samples(&metrics)
            .iter()
            .filter(|s| s.name == name)
            .map(|s| s.value)
            .sum()
    };
    assert_eq!(sum("northstar_processor_received_at_corrected_total"), 2.0);
    assert_eq!(sum("northstar_processor_duplicates_total"), 300.0);
    assert_eq!(sum("northstar_processor_late_dropped_total"), 0.0);
    let dead = kafka::read_topic(&stack.brokers(), "events.dlq").expect("read dlq");
    let reasons: Vec<&str> = dead
        .iter()
        .filter_map(|r| r.headers.get("northstar.dlq.reason").map(String::as_str))
        .collect();
    assert_eq!(reasons, vec!["invalid_timestamp"], "the 1970 record only");
    let unclean = stack.shutdown();
    assert!(unclean.is_empty(), "did not exit cleanly: {unclean:?}");
}
