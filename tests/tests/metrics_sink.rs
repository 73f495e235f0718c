//! The metrics sink across restarts and replicas, and the size of `kpi.aggregates`:
//! - a SIGKILLed and restarted sink never serves a partial value while it replays the topic
//!   (every scrape shows either no KPI series or exactly the values from before the kill);
//! - two replicas serve the same values;
//! - under compaction the topic keeps at most the ring of retained windows per series and
//!   partition, whatever the span of event time sent, and a restart still shows every window.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use northstar_e2e::{prom, Stack};
use serde_json::json;

/// The KPI series of an exposition (the KPI model only), sorted: name{labels} → value.
fn kpi_lines(text: &str) -> BTreeMap<String, f64> {
    prom::samples(text)
        .into_iter()
        .filter(|s| {
            matches!(
                s.name.as_str(),
                "northstar_kpi_open_value" | "northstar_kpi_final_value"
            )
        })
        .map(|s| (format!("{}{:?}", s.name, s.labels), s.value))
        .collect()
}

/// The sink's `northstar_metrics_sink_caught_up` (None when it does not answer).
fn caught_up(text: &str) -> Option<f64> {
    prom::named(text, "northstar_metrics_sink_caught_up")
        .next()
        .map(|s| s.value)
}

async fn scrape(port: u16) -> String {
    match reqwest::get(format!("http://127.0.0.1:{port}/metrics")).await {
        Ok(r) => r.text().await.unwrap_or_default(),
        Err(_) => String::new(),
    }
}

fn iso(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_default()
}

fn catalog(stack: &mut Stack, yaml: &str) {
    let path = stack.dir.path().join("catalog.yaml");
    std::fs::write(&path, yaml).expect("write catalog");
    stack
        .env
        .push(("NORTHSTAR_CATALOG".into(), path.display().to_string()));
}

/// Waits until two consecutive scrapes a second apart show the same non-empty KPI series.
async fn settled(port: u16) -> BTreeMap<String, f64> {
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut last = BTreeMap::new();
    while Instant::now() < deadline {
        let now = kpi_lines(&scrape(port).await);
        if !now.is_empty() && now == last {
            return now;
        }
        last = now;
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    panic!("the KPI series never settled: {last:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_sink_serves_no_partial_values_and_replicas_agree() {
    let mut stack = Stack::start_core().await;
    catalog(
        &mut stack,
        "north_star: events\ndefaults: {windows: [1h, 1d]}\nkpis:\n  - {name: events, aggregate: count, segments: [event]}\n  - {name: users, aggregate: distinct_users}\n",
    );
    stack
        .env
        .push(("NORTHSTAR_EMIT_INTERVAL_MS".into(), "100".into()));
    stack.start_services().await;
    // Many small batches: many updates of the same windows for the replay to go through.
    let now = chrono::Utc::now().timestamp_millis();
    for round in 0..40 {
        let events: Vec<serde_json::Value> = (0..50)
            .map(|i| {
                json!({"type": "track", "event": format!("E{}", i % 7), "userId": format!("u{}", (round * 50 + i) % 97),
                       "messageId": format!("m-{round}-{i}"), "timestamp": iso(now - 1_000)})
            })
            .collect();
        stack.send_batches(&events, 200).await;
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    let before = settled(stack.ports.metrics).await;
    assert!(before.len() > 10, "{before:?}");
    let replica = stack.start_extra_metrics_sink("metrics2");
    assert_eq!(
        settled(replica).await,
        before,
        "a second replica serves the same values"
    );

    stack.kill9("metrics");
    stack.restart("metrics");
    let (mut empty, mut complete, mut partial) = (0, 0, Vec::new());
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline && complete < 20 {
        let text = scrape(stack.ports.metrics).await;
        if text.is_empty() {
            continue; // not listening yet
        }
        let lines = kpi_lines(&text);
        if lines.is_empty() {
            assert_eq!(caught_up(&text), Some(0.0), "{text}");
            empty += 1;
        } else if lines == before {
            complete += 1;
        } else {
            partial.push(lines);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    eprintln!("during the restart: {empty} scrapes without KPI series, then {complete} complete");
    assert!(
        partial.is_empty(),
        "{} scrapes showed partial values, e.g. {:?}",
        partial.len(),
        partial.first()
    );
    assert!(
        complete >= 20,
        "the restarted sink never served the values\n{}",
        stack.logs()
    );
    let ready = reqwest::get(format!("http://127.0.0.1:{}/readyz", stack.ports.metrics))
        .await
        .map(|r| r.status().as_u16());
    assert_eq!(ready.ok(), Some(200));
    let unclean = stack.shutdown();
    assert!(unclean.is_empty(), "did not exit cleanly: {unclean:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compaction_keeps_the_ring_of_retained_windows() {
    let mut stack = Stack::start_core_with(Some(Duration::from_secs(2))).await;
    // Ring of 1m windows: (retention 5m + window 1m + lateness 1m) / 1m + 2 = 9 slots.
    catalog(
        &mut stack,
        "north_star: signups\ndefaults: {windows: [1m], allowed_lateness: 1m, retention: {1m: 5m}}\nkpis:\n  - {name: signups, aggregate: count, segments: [context.os.name]}\n",
    );
    stack
        .env
        .push(("NORTHSTAR_EMIT_INTERVAL_MS".into(), "200".into()));
    stack.start_services().await;
    // 40 minutes of event time, in order, two OSes, users spread over the 3 partitions.
    let start = (chrono::Utc::now().timestamp_millis() / 60_000 - 45) * 60_000;
    let events: Vec<serde_json::Value> = (0..2_400)
        .map(|i: i64| {
            let os = ["iOS", "Android"][(i % 2) as usize];
            json!({"type": "track", "event": "Signed Up", "userId": format!("u{}", i % 61),
                   "messageId": format!("s-{i}"), "timestamp": iso(start + i * 1_000),
                   "context": {"os": {"name": os}}})
        })
        .collect();
    for chunk in events.chunks(100) {
        stack.send_batches(chunk, 100).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Series: iOS, Android and the total, from 3 partitions, 9 slots each.
    let bound = 9 * 3 * 3;
    // Counted by position: around compaction gaps, rdkafka's consumer can be handed the same
    // record twice by Tansu (docs/operations.md); a repeat changes nothing downstream.
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut held = usize::MAX;
    while Instant::now() < deadline {
        held = northstar_e2e::kafka::read_topic(&stack.brokers(), "kpi.aggregates")
            .map(|r| {
                let positions: std::collections::HashSet<(i32, i64)> =
                    r.iter().map(|r| (r.partition, r.offset)).collect();
                positions.len()
            })
            .unwrap_or(usize::MAX);
        if held <= bound {
            break;
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    assert!(
        held <= bound,
        "kpi.aggregates holds {held} records after compaction, ring bound {bound}"
    );
    eprintln!(
        "kpi.aggregates after compaction: {held} records (40 windows sent, ring bound {bound})"
    );
    // A restart reads only the ring and still shows the retained windows: the last final one
    // equals what the events say (60 per minute, 30 per OS).
    stack.kill9("metrics");
    stack.restart("metrics");
    let text = loop {
        let t = scrape(stack.ports.metrics).await;
        if caught_up(&t) == Some(1.0) {
            break t;
        }
        assert!(
            Instant::now() < deadline + Duration::from_secs(60),
            "no catch-up\n{}",
            stack.logs()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let finals: BTreeMap<String, f64> = prom::named(&text, "northstar_kpi_final_value")
        .map(|s| (s.label("context_os_name"), s.value))
        .collect();
    assert_eq!(
        finals,
        BTreeMap::from([
            ("Android".into(), 30.0),
            ("iOS".into(), 30.0),
            ("__all__".into(), 60.0)
        ]),
        "{text}"
    );
    let windows = northstar_e2e::held_windows(stack.ports.metrics, "signups", "1m")
        .await
        .unwrap_or_default();
    assert!(
        windows.len() >= 5,
        "the retention's windows are back: {windows:?}"
    );
    let unclean = stack.shutdown();
    assert!(unclean.is_empty(), "did not exit cleanly: {unclean:?}");
}
