//! A catalog edit under traffic (ADR 0007): a description edited, a KPI's filter changed, a KPI
//! added and one removed, with the processor and the metrics sink restarted on the new catalog
//! while events keep coming. KPIs whose computation did not change keep their state: their
//! open-window values equal a recompute of every event sent, before and after the edit, and
//! never go backwards while the services restart. The changed KPI, the ratio over it and the new
//! KPI restart empty; their open window is flagged as missing input and holds exactly the events
//! read after the edit. The removed KPI disappears.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use chrono::{DateTime, Timelike, Utc};
use northstar_e2e::Stack;
use serde_json::json;

const BEFORE: &str = r#"
north_star: users
defaults: {windows: [1h]}
kpis:
  - {name: signups, filter: {event: Signed Up}, aggregate: count, segments: [context.os.name]}
  - {name: upgrades, filter: {event: Upgraded}, aggregate: count, segments: [context.os.name]}
  - {name: conversion, aggregate: {ratio: {numerator: upgrades, denominator: signups}}, segments: [context.os.name]}
  - {name: revenue, filter: {event: Upgraded}, aggregate: {sum: properties.revenue}}
  - {name: users, aggregate: distinct_users}
"#;

/// The edit: signups' description, upgrades also counting renewals, renewals added, revenue
/// removed (users untouched).
const AFTER: &str = r#"
north_star: users
defaults: {windows: [1h]}
kpis:
  - {name: renewals, filter: {event: Renewed}, aggregate: count}
  - {name: signups, description: Accounts created, owner: growth, filter: {event: Signed Up}, aggregate: count, segments: [context.os.name]}
  - {name: upgrades, filter: {events: [Upgraded, Renewed]}, aggregate: count, segments: [context.os.name]}
  - {name: conversion, aggregate: {ratio: {numerator: upgrades, denominator: signups}}, segments: [context.os.name]}
  - {name: users, aggregate: distinct_users}
"#;

const OSES: [&str; 3] = ["iOS", "Android", "Windows"];

/// (kpi, segment) → value of the open hour.
type Values = BTreeMap<(String, String), f64>;

/// One event sent: (name, OS, user).
type Sent = (&'static str, &'static str, String);

fn events(from: usize, n: usize, names: &[&'static str]) -> Vec<Sent> {
    (from..from + n)
        .map(|i| (names[i % names.len()], OSES[i % 3], format!("u{}", i % 97)))
        .collect()
}

fn payloads(sent: &[Sent], from: usize, ts: DateTime<Utc>) -> Vec<serde_json::Value> {
    sent.iter()
        .enumerate()
        .map(|(i, (name, os, user))| {
            json!({"type": "track", "event": name, "userId": user, "messageId": format!("edit-{}", from + i),
                "timestamp": ts.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                "context": {"os": {"name": os}}, "properties": {"revenue": 2.5}})
        })
        .collect()
}

/// Counts of `kpi_events` per OS and in total, as the exposition keys them.
fn counts(kpi: &str, sent: &[Sent], kpi_events: &[&str], out: &mut Values) {
    for (_, os, _) in sent.iter().filter(|(n, _, _)| kpi_events.contains(n)) {
        *out.entry((kpi.into(), (*os).into())).or_default() += 1.0;
        *out.entry((kpi.into(), "__all__".into())).or_default() += 1.0;
    }
}

fn users(sent: &[Sent]) -> f64 {
    let set: std::collections::BTreeSet<&String> = sent.iter().map(|(_, _, u)| u).collect();
    set.len() as f64
}

/// The open windows' values and the missing-input flags of the open windows, by KPI (empty
/// while the metrics sink restarts).
async fn scrape(stack: &Stack) -> (Values, BTreeMap<String, f64>) {
    let text = match reqwest::get(stack.metrics_url()).await {
        Ok(r) => r.text().await.unwrap_or_default(),
        Err(_) => String::new(),
    };
    let samples = northstar_e2e::prom::samples(&text);
    let mut values = Values::new();
    let mut missing = BTreeMap::new();
    for s in &samples {
        if s.name == "northstar_kpi_open_value" {
            let seg = s.labels.iter().find(|(k, _)| k == "context_os_name");
            let seg = seg.map(|(_, v)| v.clone()).unwrap_or_default();
            values.insert((s.label("kpi"), seg), s.value);
        }
        if s.name == "northstar_kpi_window_missing_input" && s.label("state") == "open" {
            missing.insert(s.label("kpi"), s.value);
        }
    }
    (values, missing)
}

/// Waits until the exposed values of `kpis` equal `want` (the others are not compared).
async fn await_values(
    stack: &Stack,
    want: &Values,
    kpis: &[&str],
) -> (Values, BTreeMap<String, f64>) {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let (got, missing) = scrape(stack).await;
        let pick = |v: &Values| -> Values {
            v.iter()
                .filter(|((k, _), _)| kpis.contains(&k.as_str()))
                .map(|(k, v)| (k.clone(), *v))
                .collect()
        };
        if pick(&got) == pick(want) || Instant::now() > deadline {
            assert_eq!(pick(&got), pick(want), "exposed values\n{}", stack.logs());
            return (got, missing);
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn catalog_edits_keep_unchanged_kpis_exact_under_traffic() {
    // Every event of the test falls in one hour: start at least 5 minutes before its end.
    let now = Utc::now();
    if now.minute() >= 55 {
        let left = 3_600 - i64::from(now.minute() * 60 + now.second()) + 2;
        tokio::time::sleep(Duration::from_secs(left.max(0) as u64)).await;
    }
    let mut stack = Stack::start_core().await;
    let catalog = stack.dir.path().join("catalog.yaml");
    std::fs::write(&catalog, BEFORE).expect("write catalog");
    let path = catalog.display().to_string();
    stack.env.push(("NORTHSTAR_CATALOG".into(), path));
    stack
        .env
        .push(("NORTHSTAR_EMIT_INTERVAL_MS".into(), "200".into()));
    stack.start_services().await;

    let ts = Utc::now();
    let first = events(0, 900, &["Signed Up", "Signed Up", "Upgraded", "Viewed"]);
    stack.send_batches(&payloads(&first, 0, ts), 100).await;
    let mut want = Values::new();
    counts("signups", &first, &["Signed Up"], &mut want);
    counts("upgrades", &first, &["Upgraded"], &mut want);
    want.insert(("users".into(), String::new()), users(&first));
    let (before, _) = await_values(&stack, &want, &["signups", "upgrades", "users"]).await;
    assert!(before.contains_key(&("revenue".into(), String::new())));

    // The edit: both services restart on the new catalog while a second batch is sent.
    std::fs::write(&catalog, AFTER).expect("edit catalog");
    for name in ["processor", "metrics"] {
        let p = stack.proc(name).expect(name);
        assert!(p.terminate(Duration::from_secs(30)), "{name} stops cleanly");
        stack.procs.retain(|p| p.name != name);
        stack.restart(name);
    }
    let second = events(900, 900, &["Signed Up", "Upgraded", "Renewed", "Viewed"]);
    let mut resent = payloads(&second, 900, ts);
    // Phase-one duplicates: deduplication state survives the edit.
    resent.extend(payloads(&first[..50], 0, ts));
    let sender = {
        let url = format!("{}/v1/batch", stack.ingest_url());
        tokio::spawn(async move {
            let client = reqwest::Client::new();
            let auth = northstar_e2e::write_key_auth();
            for chunk in resent.chunks(50) {
                let r = client.post(&url).header("authorization", &auth);
                let r = r.json(&json!({"batch": chunk})).send().await.expect("send");
                assert_eq!(r.status(), 200);
                tokio::time::sleep(Duration::from_millis(60)).await;
            }
        })
    };
    // No unchanged value ever goes backwards while the services restart and catch up.
    let mut last = before.clone();
    while !sender.is_finished() {
        let (got, _) = scrape(&stack).await;
        for (key @ (kpi, _), v) in &got {
            if kpi == "signups" || kpi == "users" {
                let was = last.get(key).copied().unwrap_or(0.0);
                assert!(
                    *v >= was,
                    "{key:?} went back from {was} to {v}\n{}",
                    stack.logs()
                );
                last.insert(key.clone(), *v);
            }
        }
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    sender.await.expect("sender");

    let all: Vec<Sent> = first.iter().chain(&second).cloned().collect();
    let mut want = Values::new();
    counts("signups", &all, &["Signed Up"], &mut want);
    // The changed and the new KPI count what was read after the edit only.
    counts("upgrades", &second, &["Upgraded", "Renewed"], &mut want);
    counts("renewals", &second, &["Renewed"], &mut want);
    want.retain(|(k, seg), _| k != "renewals" || seg == "__all__");
    if let Some(v) = want.remove(&("renewals".into(), "__all__".into())) {
        want.insert(("renewals".into(), String::new()), v);
    }
    want.insert(("users".into(), String::new()), users(&all));
    let kpis = ["signups", "upgrades", "renewals", "users"];
    let (got, missing) = await_values(&stack, &want, &kpis).await;
    assert!(
        !got.keys().any(|(k, _)| k == "revenue"),
        "the removed KPI is gone: {got:?}"
    );
    let flags: BTreeMap<&str, f64> = missing.iter().map(|(k, v)| (k.as_str(), *v)).collect();
    assert_eq!(
        flags,
        BTreeMap::from([
            ("conversion", 1.0),
            ("renewals", 1.0),
            ("signups", 0.0),
            ("upgrades", 1.0),
            ("users", 0.0)
        ]),
        "open windows missing input after the edit"
    );
    let board: serde_json::Value = reqwest::get(format!(
        "http://127.0.0.1:{}/api/v1/kpis",
        stack.ports.metrics
    ))
    .await
    .expect("board api")
    .json()
    .await
    .expect("json");
    let flagged: Vec<&str> = board["kpis"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|k| k["windows"][0]["open"]["missing_input"] == json!(true))
        .filter_map(|k| k["name"].as_str())
        .collect();
    assert_eq!(
        flagged,
        vec!["renewals", "upgrades", "conversion"],
        "{board}"
    );
    let log = stack
        .proc("processor")
        .map(|p| p.log_tail(200))
        .unwrap_or_default();
    assert!(
        log.contains("KPIs new or changed since the checkpoint"),
        "{log}"
    );
    let unclean = stack.shutdown();
    assert!(unclean.is_empty(), "did not exit cleanly: {unclean:?}");
}
