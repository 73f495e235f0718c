//! Segment admission across partitions (ADR 0013): more app versions than the cap, spread over
//! the 3 input partitions (users keyed to partitions by the collector), in two 1-minute
//! windows. The metrics sink's series equal DuckDB's recompute over the lake with the rule
//! applied to each whole window (the cap values first by the contract's rank, the rest
//! `__other__`): for every admitted value, for `__other__` (a count, and distinct users: a user
//! under several folded versions counts once) and for the total. A version that first appears
//! in the second window and ranks first there has its own series in that window only.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use northstar_e2e::Stack;
use northstar_schemas::catalog::admission::rank;
use serde_json::{json, Value};

const CAP: usize = 4;
const PER_WINDOW: usize = 600;
const USERS: usize = 45;
const VERSION: &str = "json_extract_string(properties, '$.version')";

fn catalog() -> String {
    format!(
        "north_star: events\ndefaults: {{windows: [1m], max_segment_values: {CAP}}}\nkpis:\n  \
         - {{name: events, aggregate: count, segments: [properties.version]}}\n  \
         - {{name: users, aggregate: distinct_users, segments: [properties.version]}}\n"
    )
}

fn iso(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_default()
}

/// The version that ranks first among `2.0`..`2.99`: new in the second window.
fn newcomer() -> String {
    (0..100)
        .map(|i| format!("2.{i}"))
        .min_by(|a, b| rank(a).cmp(&rank(b)))
        .unwrap_or_default()
}

/// The events of the window starting at `start`: each user alternates between two of 60
/// versions of the 1.x series (so each partition's share of the users holds its own subset of
/// the versions, and its first values by rank are not all the window's), and in the second
/// window every tenth event is the newcomer.
fn window_events(start: i64, second: bool) -> Vec<Value> {
    (0..PER_WINDOW)
        .map(|i| {
            let user = i % USERS;
            let version = if second && i % 10 == 3 {
                newcomer()
            } else if (i / USERS).is_multiple_of(2) {
                format!("1.{}", user % 60)
            } else {
                format!("1.{}", (user * 7 + 3 + usize::from(second)) % 60)
            };
            json!({"type": "track", "event": "Opened App", "userId": format!("u{user}"),
                "messageId": format!("adm-{start}-{i}"),
                "timestamp": iso(start + 1_000 + i as i64 * 50),
                "properties": {"version": version}})
        })
        .collect()
}

/// Runs tests/compat/kpi_recompute.py over the lake with `segment` as the SQL of the one
/// dimension: (kpi, start, segment value) → value.
fn recompute(stack: &Stack, segment: &str) -> BTreeMap<(String, i64, String), f64> {
    let window = json!([{"label": "1m", "ms": 60_000, "offset_ms": 0}]);
    let spec = json!({"kpis": [
        {"name": "events", "aggregate": "count", "windows": window, "filter": "TRUE", "segments": [segment]},
        {"name": "users", "aggregate": "distinct_users", "windows": window, "filter": "TRUE", "segments": [segment]},
    ]});
    let v = northstar_e2e::recompute_from_lake(stack, &spec);
    v["windows"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|w| {
            let key = (
                w["kpi"].as_str().unwrap_or_default().to_string(),
                w["start_ms"].as_i64().unwrap_or_default(),
                w["segment"][0].as_str().unwrap_or_default().to_string(),
            );
            let value = w["value"]
                .as_str()
                .and_then(|s| s.parse().ok())
                .unwrap_or(f64::NAN);
            (key, value)
        })
        .collect()
}

/// What the metrics sink holds for `kpi`: (kpi, start, version) → value, the series without a
/// value in a window (known from the other window) left out when 0.
async fn held(port: u16, kpi: &str) -> BTreeMap<(String, i64, String), f64> {
    let mut out = BTreeMap::new();
    for w in northstar_e2e::held_windows(port, kpi, "1m")
        .await
        .unwrap_or_default()
    {
        let start = w["start_ms"].as_i64().unwrap_or_default();
        for v in w["values"].as_array().into_iter().flatten() {
            let version = v["segment"]["properties_version"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            let value = v["value"].as_f64().unwrap_or(f64::NAN);
            if value != 0.0 {
                out.insert((kpi.to_string(), start, version), value);
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_partition_agrees_on_the_values_a_window_admits() {
    let mut stack = Stack::start_core().await;
    let path = stack.dir.path().join("catalog.yaml");
    std::fs::write(&path, catalog()).expect("write catalog");
    for (k, v) in [
        ("NORTHSTAR_CATALOG", path.display().to_string()),
        ("NORTHSTAR_EMIT_INTERVAL_MS", "200".into()),
        ("NORTHSTAR_MAX_FILE_AGE_SECS", "2".into()),
    ] {
        stack.env.push((k.into(), v));
    }
    stack.start_services().await;
    let first = (chrono::Utc::now().timestamp_millis() / 60_000 - 3) * 60_000;
    let second = first + 60_000;
    let mut events = window_events(first, false);
    events.extend(window_events(second, true));
    stack.send_batches(&events, 100).await;

    let deadline = Instant::now() + Duration::from_secs(180);
    while northstar_e2e::lake::string_column(&stack.events_dir(), "message_id")
        .map(|v| v.len())
        .unwrap_or(0)
        < events.len()
    {
        assert!(Instant::now() < deadline, "the lake never held every event");
        tokio::time::sleep(Duration::from_secs(1)).await;
    }

    // The rule, applied to each whole window of the lake.
    let raw = recompute(&stack, VERSION);
    let mut admitted: BTreeMap<i64, BTreeSet<String>> = BTreeMap::new();
    for (kpi, start, version) in raw.keys() {
        if kpi == "events" && version != "__all__" {
            admitted.entry(*start).or_default().insert(version.clone());
        }
    }
    for (start, values) in &mut admitted {
        assert!(
            values.len() > CAP,
            "window {start}: more versions than the cap"
        );
        let mut ranked: Vec<String> = values.iter().cloned().collect();
        ranked.sort_by(|a, b| rank(a).cmp(&rank(b)));
        *values = ranked.into_iter().take(CAP).collect();
    }
    let in_list = |s: &BTreeSet<String>| {
        s.iter()
            .map(|v| format!("'{v}'"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let cases: Vec<String> = admitted
        .iter()
        .map(|(start, s)| {
            format!(
                "WHEN ts_ms // 60000 * 60000 = {start} AND {VERSION} IN ({}) THEN {VERSION}",
                in_list(s)
            )
        })
        .collect();
    let admitted_sql = format!("CASE {} ELSE '__other__' END", cases.join(" "));
    let mut expected = recompute(&stack, &admitted_sql);
    expected.retain(|(_, start, _), _| admitted.contains_key(start));
    let newcomer = newcomer();
    assert!(
        admitted[&second].contains(&newcomer) && !admitted[&first].contains(&newcomer),
        "the newcomer ranks among the first in its window"
    );

    let port = stack.ports.metrics;
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut shown = BTreeMap::new();
    while Instant::now() < deadline {
        shown = held(port, "events").await;
        shown.extend(held(port, "users").await);
        if shown == expected {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert_eq!(
        shown,
        expected,
        "the sink's series against the lake's recompute\n{}",
        stack.logs()
    );
    // A user under several folded versions counts once in `__other__`: the sum of the
    // partitions' records would say more.
    let other_users = expected[&("users".to_string(), first, "__other__".to_string())];
    let folded_users: f64 = raw
        .iter()
        .filter(|((k, s, v), _)| {
            k == "users" && *s == first && v != "__all__" && !admitted[&first].contains(v)
        })
        .map(|(_, n)| n)
        .sum();
    assert!(
        other_users < folded_users,
        "users under several folded versions: {other_users} < {folded_users}"
    );
    let unclean = stack.shutdown();
    assert!(unclean.is_empty(), "did not exit cleanly: {unclean:?}");
}
