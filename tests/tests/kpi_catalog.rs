//! The KPI catalog end to end: counts, distinct users, sums and ratios per segment and their
//! exact all-segments totals, computed by the processor from a YAML catalog, exposed by the
//! metrics sink as the open window's values, equal to the same KPIs computed here from the
//! events sent (duplicates excluded).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use northstar_e2e::Stack;
use serde_json::json;

const CATALOG: &str = r#"
north_star: users
defaults: {windows: [1h]}
kpis:
  - {name: signups, filter: {event: Signed Up}, aggregate: count, segments: [context.os.name]}
  - {name: upgrades, filter: {event: Upgraded}, aggregate: count, segments: [context.os.name]}
  - {name: conversion, aggregate: {ratio: {numerator: upgrades, denominator: signups}}, segments: [context.os.name]}
  - name: revenue
    filter: {event: Upgraded, where: [{field: properties.plan, op: ne, value: free}]}
    aggregate: {sum: properties.revenue}
  - {name: users, aggregate: distinct_users}
"#;

/// (kpi, hour start, segment label values) → value
type Expected = BTreeMap<(String, String, String), f64>;

/// The open windows' values (`northstar_kpi_open_value`) of the exposition, keyed like
/// [`Expected`] with the open window's start from `northstar_kpi_open_window_start_seconds`.
fn parse_exposition(text: &str) -> Expected {
    let samples = northstar_e2e::prom::samples(text);
    let open_start: BTreeMap<(String, String), f64> = samples
        .iter()
        .filter(|s| s.name == "northstar_kpi_open_window_start_seconds")
        .map(|s| ((s.label("kpi"), s.label("window")), s.value))
        .collect();
    let mut out = Expected::new();
    for s in samples
        .iter()
        .filter(|s| s.name == "northstar_kpi_open_value")
    {
        let (kpi, window) = (s.label("kpi"), s.label("window"));
        let start = open_start
            .get(&(kpi.clone(), window))
            .copied()
            .unwrap_or(f64::NAN);
        let start = DateTime::from_timestamp(start as i64, 0)
            .map(|t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string())
            .unwrap_or_default();
        let segment = s
            .labels
            .iter()
            .filter(|(k, _)| k != "kpi" && k != "window" && k != "segment")
            .map(|(_, v)| v.clone())
            .collect::<Vec<_>>()
            .join(",");
        out.insert((kpi, start, segment), s.value);
    }
    out
}

fn hour_start(t: DateTime<Utc>) -> String {
    let secs = t.timestamp().div_euclid(3600) * 3600;
    DateTime::from_timestamp(secs, 0)
        .map(|t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn catalog_kpis_match_an_independent_computation() {
    let mut stack = Stack::start_core().await;
    let catalog = stack.dir.path().join("catalog.yaml");
    std::fs::write(&catalog, CATALOG).expect("write catalog");
    stack
        .env
        .push(("NORTHSTAR_CATALOG".into(), catalog.display().to_string()));
    stack
        .env
        .push(("NORTHSTAR_EMIT_INTERVAL_MS".into(), "300".into()));
    stack.start_services().await;

    let now = Utc::now();
    let oses = ["iOS", "Android", "Windows"];
    let plans = ["free", "pro", "team"];
    let mut events = Vec::new();
    let mut expected_counts: HashMap<(String, String, String), f64> = HashMap::new();
    let mut revenue: HashMap<String, i64> = HashMap::new(); // cents
    let mut users: HashMap<String, HashSet<String>> = HashMap::new();
    // Within the last 5 minutes (less than the allowed lateness, so no event is late-dropped)
    // and within the current hour: an hour boundary inside the span would leave a sliver of
    // the previous hour with, say, upgrades but no sign-ups for an OS (a ratio over zero).
    let into_hour_ms = now.timestamp_millis().rem_euclid(3_600_000);
    let span_ms = into_hour_ms.min(300_000);
    for i in 0..1_500usize {
        let ts = now - chrono::Duration::milliseconds((i * 7 % 300) as i64 * span_ms / 300);
        let hour = hour_start(ts);
        let os = oses[i % 3];
        let user = format!("user-{}", i % 211);
        let (name, plan) = if i % 4 == 0 {
            ("Upgraded", plans[i % 3])
        } else {
            ("Signed Up", plans[i % 2])
        };
        let cents = (i % 40) as i64 * 25;
        let e = json!({"type": "track", "event": name, "userId": user, "messageId": format!("k-{i}"),
            "timestamp": ts.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            "context": {"os": {"name": os}}, "properties": {"plan": plan, "revenue": cents as f64 / 100.0}});
        events.push(e.clone());
        if i % 10 == 0 {
            events.push(e); // a duplicate, which must not count
        }
        let kpi = if name == "Upgraded" {
            "upgrades"
        } else {
            "signups"
        };
        *expected_counts
            .entry((kpi.into(), hour.clone(), os.into()))
            .or_default() += 1.0;
        if name == "Upgraded" && plan != "free" {
            *revenue.entry(hour.clone()).or_default() += cents;
        }
        users.entry(hour).or_default().insert(user);
    }
    let mut expected: Expected = expected_counts
        .iter()
        .map(|(k, v)| (k.clone(), *v))
        .collect();
    for ((kpi, hour, os), ups) in &expected_counts {
        if kpi == "upgrades" {
            let sign = expected_counts
                .get(&("signups".into(), hour.clone(), os.clone()))
                .copied()
                .unwrap_or(0.0);
            expected.insert(("conversion".into(), hour.clone(), os.clone()), ups / sign);
        }
    }
    // Exact all-segments totals: counts add up, the ratio divides the totals.
    let mut totals: BTreeMap<(String, String), f64> = BTreeMap::new();
    for ((kpi, hour, _), n) in &expected_counts {
        *totals.entry((kpi.clone(), hour.clone())).or_default() += n;
    }
    for ((kpi, hour), n) in &totals {
        expected.insert((kpi.clone(), hour.clone(), "__all__".into()), *n);
        if kpi == "upgrades" {
            let sign = totals
                .get(&("signups".into(), hour.clone()))
                .copied()
                .unwrap_or(0.0);
            expected.insert(
                ("conversion".into(), hour.clone(), "__all__".into()),
                n / sign,
            );
        }
    }
    for (hour, cents) in &revenue {
        expected.insert(
            ("revenue".into(), hour.clone(), String::new()),
            *cents as f64 / 100.0,
        );
    }
    for (hour, set) in &users {
        expected.insert(
            ("users".into(), hour.clone(), String::new()),
            set.len() as f64,
        );
    }

    stack.send_batches(&events, 100).await;

    let deadline = Instant::now() + Duration::from_secs(120);
    let mut got = Expected::new();
    while Instant::now() < deadline {
        let text = reqwest::get(stack.metrics_url())
            .await
            .expect("scrape")
            .text()
            .await
            .unwrap_or_default();
        got = parse_exposition(&text);
        if got == expected {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let close = |a: f64, b: f64| (a - b).abs() <= 1e-9 * b.abs().max(1.0);
    let mismatches: Vec<String> = expected
        .iter()
        .filter(|(k, v)| !got.get(*k).is_some_and(|g| close(*g, **v)))
        .map(|(k, v)| format!("{k:?}: expected {v}, exposed {:?}", got.get(k)))
        .collect();
    assert!(mismatches.is_empty(), "{mismatches:#?}\n{}", stack.logs());
    let extra: Vec<_> = got.keys().filter(|k| !expected.contains_key(*k)).collect();
    assert!(extra.is_empty(), "series that should not exist: {extra:?}");
}
