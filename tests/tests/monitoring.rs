//! The KPIs as people see them, on real Prometheus and Alertmanager: the stack runs the example
//! catalog (deploy/kpi-catalog.yaml) with two metrics-sink replicas and five weeks of the demo's
//! product-shaped traffic; Prometheus scrapes everything and loads the generated rules.
//! - the history of final windows in Prometheus equals what the metrics sink holds and what
//!   DuckDB recomputes from the Parquet lake, window by window and segment by segment;
//! - every query of every generated dashboard (variables substituted) returns data carrying
//!   the labels its legend uses, with one series per segment although two replicas expose it;
//! - every generated rule evaluates without error; Alertmanager mutes KPI alerts while the
//!   pipeline is stalled; a real sign-up flood fires an alert that reaches a webhook receiver,
//!   routed by severity (warnings to tickets, critical alerts to the pager).

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use northstar_e2e::monitor::{generate_and_start_alertmanager, Alertmanager, Prometheus, Webhook};
use northstar_e2e::{demo_events, held_windows, repo, Stack};
use northstar_schemas::catalog::{Aggregation, Catalog, FieldPath, JsonPart, Kpi, Op};
use serde_json::{json, Value};

fn catalog() -> Catalog {
    Catalog::load(Some(&repo().join("deploy/kpi-catalog.yaml"))).expect("example catalog")
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// The SQL of a field path over the lake's `ev` view.
fn sql(f: &FieldPath) -> String {
    match f {
        FieldPath::Envelope("event") => "event".into(),
        FieldPath::Envelope("userId") => "user_id".into(),
        FieldPath::Envelope(other) => other.to_lowercase(),
        FieldPath::Json { part, path } => {
            let col = match part {
                JsonPart::Properties => "properties",
                JsonPart::Context => "context",
                JsonPart::Traits => "traits",
            };
            format!("json_extract_string({col}, '$.{}')", path.join("."))
        }
    }
}

/// The catalog as DuckDB SQL (tests/compat/kpi_recompute.py): only what the example uses.
fn spec(c: &Catalog) -> Value {
    let kpis: Vec<Value> = c
        .kpis
        .iter()
        .map(|k| {
            let mut filter = vec!["TRUE".to_string()];
            if !k.filter.events.is_empty() {
                let names: Vec<String> = k.filter.events.iter().map(|e| format!("'{e}'")).collect();
                filter.push(format!("event IN ({})", names.join(", ")));
            }
            for p in &k.filter.predicates {
                assert_eq!(p.op, Op::Gt, "the example's predicates");
                filter.push(format!(
                    "TRY_CAST({} AS DOUBLE) > {}",
                    sql(&p.field),
                    p.value
                ));
            }
            let windows: Vec<Value> = k
                .windows
                .iter()
                .map(|w| json!({"label": w.label, "ms": w.millis, "offset_ms": w.offset_ms}))
                .collect();
            let mut v = json!({
                "name": k.name, "aggregate": k.aggregation.kind(), "windows": windows,
                "filter": filter.join(" AND "),
                "segments": k.segments.iter().map(|d| sql(&d.field)).collect::<Vec<_>>(),
            });
            match &k.aggregation {
                Aggregation::Sum(f) => v["sum"] = json!(sql(f)),
                Aggregation::Ratio {
                    numerator,
                    denominator,
                } => {
                    v["numerator"] = json!(c.kpis[*numerator].name);
                    v["denominator"] = json!(c.kpis[*denominator].name);
                }
                _ => {}
            }
            v
        })
        .collect();
    json!({ "kpis": kpis })
}

/// (kpi, window, start, segment values in dimension order) → value (`None`: an undefined ratio).
type Windows = HashMap<(String, String, i64, Vec<String>), Option<f64>>;

/// The window lengths in which an event at `ts` arriving with the watermark at `watermark` is too
/// late (its window final): the processor drops it there.
fn dropped_in(c: &Catalog, ts: i64, watermark: i64) -> Vec<String> {
    let mut labels: Vec<String> = c
        .kpis
        .iter()
        .flat_map(|k| &k.windows)
        .filter(|w| w.start(ts) + w.millis + c.lateness_ms() <= watermark)
        .map(|w| w.label.clone())
        .collect();
    labels.sort();
    labels.dedup();
    labels
}

fn recompute(stack: &Stack, c: &Catalog, dropped: &[(&str, Vec<String>)]) -> Windows {
    let mut spec = spec(c);
    spec["dropped"] = dropped
        .iter()
        .map(|(id, ws)| (id.to_string(), json!(ws)))
        .collect::<serde_json::Map<_, _>>()
        .into();
    let v = northstar_e2e::recompute_from_lake(stack, &spec);
    let num = |x: &Value| {
        x.as_str()
            .and_then(|s| s.parse::<f64>().ok())
            .unwrap_or(f64::NAN)
    };
    v["windows"]
        .as_array()
        .expect("windows")
        .iter()
        .map(|w| {
            let seg = w["segment"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .map(|s| s.as_str().unwrap_or_default().to_string())
                        .collect()
                })
                .unwrap_or_default();
            let value = match w.get("numerator") {
                Some(n) => (num(&w["denominator"]) != 0.0).then(|| num(n) / num(&w["denominator"])),
                None => Some(num(&w["value"])),
            };
            (
                (
                    w["kpi"].as_str().unwrap_or_default().to_string(),
                    w["window"].as_str().unwrap_or_default().to_string(),
                    w["start_ms"].as_i64().unwrap_or_default(),
                    seg,
                ),
                value,
            )
        })
        .collect()
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-6 * b.abs().max(1.0)
}

/// The history points in Prometheus of one KPI and window: (segment label, start) → the values
/// of every replica.
async fn history(prom: &Prometheus, k: &Kpi, window: &str) -> HashMap<(String, i64), Vec<f64>> {
    let mut out: HashMap<(String, i64), Vec<f64>> = HashMap::new();
    let expr = format!(
        "northstar_kpi_final_window_value{{kpi=\"{}\",window=\"{window}\"}}[40d]",
        k.name
    );
    for series in prom.query(&expr).await {
        let segment = series["metric"]["segment"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        for p in series["values"].as_array().into_iter().flatten() {
            let ts = (p[0].as_f64().unwrap_or_default() * 1000.0).round() as i64;
            let v = p[1]
                .as_str()
                .and_then(|s| s.parse().ok())
                .unwrap_or(f64::NAN);
            out.entry((segment.clone(), ts)).or_default().push(v);
        }
    }
    out
}

fn segment_label(k: &Kpi, seg: &BTreeMap<String, String>) -> (Vec<String>, String) {
    let values: Vec<String> = k
        .segments
        .iter()
        .map(|d| seg.get(&d.label).cloned().unwrap_or_default())
        .collect();
    let label = northstar_schemas::catalog::segment_label(&values);
    (values, label)
}

/// Every final window the metrics sink holds is in Prometheus's history (from both replicas,
/// with its value) and equals DuckDB's recompute; DuckDB has no window the sink lacks.
async fn check_history(stack: &Stack, prom: &Prometheus, c: &Catalog, lake: &Windows) -> usize {
    let mut checked = 0;
    let mut problems = Vec::new();
    for k in &c.kpis {
        for w in &k.windows {
            let held = held_windows(stack.ports.metrics, &k.name, &w.label)
                .await
                .expect("held windows");
            let points = history(prom, k, &w.label).await;
            let finals: Vec<&Value> = held.iter().filter(|h| h["is_final"] == true).collect();
            let starts: Vec<i64> = finals
                .iter()
                .filter_map(|h| h["start_ms"].as_i64())
                .collect();
            for h in &finals {
                let start = h["start_ms"].as_i64().unwrap_or_default();
                for v in h["values"].as_array().into_iter().flatten() {
                    let seg: BTreeMap<String, String> =
                        serde_json::from_value(v["segment"].clone()).unwrap_or_default();
                    let (values, label) = segment_label(k, &seg);
                    let sink = v["value"].as_f64();
                    let want = lake
                        .get(&(k.name.clone(), w.label.clone(), start, values.clone()))
                        .copied()
                        .unwrap_or(if matches!(k.aggregation, Aggregation::Ratio { .. }) {
                            None
                        } else {
                            Some(0.0)
                        });
                    let prom_values = points
                        .get(&(label.clone(), start))
                        .cloned()
                        .unwrap_or_default();
                    let ok_lake = match (sink, want) {
                        (Some(a), Some(b)) => close(a, b),
                        (None, None) => true,
                        _ => false,
                    };
                    // Windows older than the sink's history_max_age (36 days) are never exposed
                    // with their timestamp (Prometheus would refuse them): not checked there.
                    let exposed = start >= now_ms() - 36 * 86_400_000 + 600_000;
                    let ok_prom = !exposed
                        || match sink {
                            Some(a) => {
                                prom_values.len() == 2 && prom_values.iter().all(|p| close(*p, a))
                            }
                            None => prom_values.is_empty(),
                        };
                    if !(ok_lake && ok_prom) {
                        problems.push(format!("{} {} {start} {label}: sink {sink:?}, lake {want:?}, prometheus {prom_values:?}", k.name, w.label));
                    }
                    checked += 1;
                }
            }
            let (Some(first), Some(last)) = (starts.iter().min(), starts.iter().max()) else {
                continue;
            };
            for ((kpi, window, start, seg), _) in lake.iter().filter(|((kk, ww, s, _), _)| {
                *kk == k.name && *ww == w.label && s >= first && s <= last
            }) {
                if !starts.contains(start) {
                    problems.push(format!(
                        "{kpi} {window} {start} {seg:?}: in the lake, not held by the sink"
                    ));
                }
            }
        }
    }
    assert!(
        problems.is_empty(),
        "{} differences, e.g.:\n{}",
        problems.len(),
        problems
            .iter()
            .take(25)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
    checked
}

/// Grafana's variables for one query: the KPI and window, every dimension "All".
fn substitute(expr: &str, kpi: &str, window: &str) -> String {
    let mut e = expr
        .replace("$__rate_interval", "1m")
        .replace("$__range", "1h")
        .replace("$__interval", "1m")
        .replace("$window", window)
        .replace("$kpi", kpi);
    while let Some(i) = e.find("=~\"$") {
        let end = e[i + 4..].find('"').map_or(e.len(), |j| i + 4 + j);
        e.replace_range(i + 3..end, ".*");
    }
    // A week (or a window) earlier needs that much Prometheus history: the test compares with
    // 10 seconds earlier instead (the same query, the same labels).
    let mut from = 0;
    while let Some(i) = e[from..].find(" offset ").map(|i| i + from) {
        let end = e[i + 8..]
            .find(|c: char| !c.is_ascii_alphanumeric())
            .map_or(e.len(), |j| i + 8 + j);
        e.replace_range(i..end, " offset 10s");
        from = i + 11;
    }
    e
}

/// A dashboard's time range in seconds (`now-7d`).
fn range_secs(d: &Value) -> i64 {
    let from = d["time"]["from"].as_str().unwrap_or("now-6h");
    northstar_schemas::catalog::parse_duration(from.trim_start_matches("now-"))
        .map_or(21_600, |ms| ms / 1000)
}

/// How a panel's query runs in Grafana: instant, or over the dashboard's range with the
/// query's minimum step (the window's length for histories).
async fn run_query(
    prom: &Prometheus,
    t: &Value,
    expr: &str,
    range: i64,
    window: &str,
) -> Vec<Value> {
    if t["instant"] == true {
        return prom.query(expr).await;
    }
    let step = t["interval"]
        .as_str()
        .map(|i| i.replace("$window", window))
        .and_then(|i| northstar_schemas::catalog::parse_duration(&i))
        .map_or(60, |ms| ms / 1000);
    prom.query_range(expr, range.max(3 * step), step.min(range / 10).max(1))
        .await
}

fn legend_labels(legend: &str) -> Vec<String> {
    legend
        .split("{{")
        .skip(1)
        .filter_map(|s| s.split("}}").next())
        .map(|s| s.trim().to_string())
        .collect()
}

/// Every query of every dashboard answers, with the labels its legend uses, one series per
/// label set (no replica doubles a series).
async fn check_dashboards(prom: &Prometheus, c: &Catalog) -> usize {
    let mut problems = Vec::new();
    let mut queries = 0;
    for path in std::fs::read_dir(repo().join("deploy/grafana/dashboards"))
        .expect("dashboards")
        .flatten()
    {
        let d: Value =
            serde_json::from_slice(&std::fs::read(path.path()).expect("read")).expect("json");
        let uses_vars = d["templating"]["list"]
            .as_array()
            .is_some_and(|l| l.iter().any(|v| v["name"] == "kpi"));
        let subs: Vec<(String, String)> = if uses_vars {
            c.kpis
                .iter()
                .flat_map(|k| {
                    k.windows
                        .iter()
                        .map(move |w| (k.name.clone(), w.label.clone()))
                })
                .collect()
        } else {
            vec![(String::new(), String::new())]
        };
        for p in d["panels"].as_array().into_iter().flatten() {
            for t in p["targets"].as_array().into_iter().flatten() {
                for (kpi, window) in &subs {
                    let expr = substitute(t["expr"].as_str().unwrap_or_default(), kpi, window);
                    let result = run_query(prom, t, &expr, range_secs(&d), window).await;
                    queries += 1;
                    let title = p["title"].as_str().unwrap_or_default();
                    if result.is_empty() {
                        let first = expr
                            .find("northstar_")
                            .map(|i| &expr[i..])
                            .and_then(|s| s.find('}').map(|j| s[..=j].to_string()))
                            .unwrap_or_default();
                        let raw: Vec<Value> = prom
                            .query_range(&first, 120, 5)
                            .await
                            .iter()
                            .map(|r| json!({"m": r["metric"]["instance"], "v": r["values"]}))
                            .collect();
                        problems.push(format!("{} / {title} ({kpi} {window}): no data for {expr}\n    its metrics: {}", d["uid"], serde_json::to_string(&raw).unwrap_or_default().chars().take(400).collect::<String>()));
                        continue;
                    }
                    let legend = legend_labels(t["legendFormat"].as_str().unwrap_or_default());
                    let mut seen = std::collections::HashSet::new();
                    for r in &result {
                        for l in &legend {
                            if r["metric"][l.as_str()].is_null() {
                                problems.push(format!(
                                    "{title} ({kpi} {window}): legend label {l} missing in {}",
                                    r["metric"]
                                ));
                            }
                        }
                        if !seen.insert(r["metric"].to_string()) {
                            problems.push(format!("{title}: {} twice", r["metric"]));
                        }
                    }
                }
            }
        }
    }
    if !problems.is_empty() {
        for q in [
            "northstar_kpi_watermark_seconds",
            "northstar_kpi_open_window_start_seconds{kpi=\"activations\",window=\"1m\"}",
            "sum by (kpi) (northstar_processor_late_dropped_total)",
            "northstar_kpi_complete_until_seconds",
            "sum(northstar_processor_events_in_total)",
        ] {
            problems.push(format!(
                "{q}: {}",
                serde_json::to_string(
                    &prom
                        .query(q)
                        .await
                        .iter()
                        .map(|r| json!([r["metric"], r["value"]]))
                        .collect::<Vec<_>>()
                )
                .unwrap_or_default()
            ));
        }
    }
    assert!(
        problems.is_empty(),
        "{} problems:\n{}",
        problems.len(),
        problems.join("\n")
    );
    queries
}

async fn wait_until<F, Fut>(what: &str, timeout: Duration, ready: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    assert!(waited(timeout, ready).await, "timed out waiting for {what}");
}

/// Whether `ready` turned true within `timeout`.
async fn waited<F, Fut>(timeout: Duration, mut ready: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    while !ready().await {
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    true
}

/// A late event (within the lateness) and a too-late one, after the backfill that ends at `end`.
const LATE_UPDATE_MS: i64 = 300_000;
const LATE_DROP_MS: i64 = 7_200_000;

/// Sends the backfill, then late, too-late and undecodable records (for the pipeline panels).
async fn send_traffic(stack: &Stack, end_ms: i64) -> usize {
    // Five sparse weeks, then three busy hours (every recent minute has sign-ups).
    let dense_from = end_ms - 3 * 3_600_000;
    let mut events = demo_events(&[
        "backfill",
        "--weeks",
        "5",
        "--per-hour",
        "8",
        "--users",
        "300",
        "--seed",
        "11",
        "--now-ms",
        &dense_from.to_string(),
    ]);
    events.extend(demo_events(&[
        "backfill",
        "--weeks",
        "0.017857",
        "--per-hour",
        "2400",
        "--users",
        "100000",
        "--seed",
        "21",
        "--now-ms",
        &end_ms.to_string(),
    ]));
    stack.send_batches(&events, 500).await;
    let iso = |ms: i64| {
        chrono::DateTime::from_timestamp_millis(ms)
            .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
            .unwrap_or_default()
    };
    let late = [("late-update", end_ms - LATE_UPDATE_MS), ("late-drop", end_ms - LATE_DROP_MS)].map(|(id, ts)| {
        json!({"type": "track", "event": "Viewed Page", "userId": "user-1", "messageId": id, "timestamp": iso(ts), "context": {"os": {"name": "iOS"}}, "properties": {"plan": "free"}})
    });
    stack.send_batches(&late, 10).await;
    northstar_e2e::kafka::produce_raw(&stack.brokers(), "events.raw", "backend", b"not avro")
        .await
        .expect("produce");
    events.len() + late.len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_sees_what_the_lake_says_and_alerts_reach_a_receiver() {
    let c = catalog();
    let mut stack = Stack::start_core().await;
    let catalog_path = repo().join("deploy/kpi-catalog.yaml");
    for (k, v) in [
        ("NORTHSTAR_CATALOG", catalog_path.display().to_string()),
        ("NORTHSTAR_EMIT_INTERVAL_MS", "200".into()),
        ("NORTHSTAR_MAX_FILE_AGE_SECS", "2".into()),
        ("NORTHSTAR_HISTORY_EXPOSURE_SECS", "3600".into()),
    ] {
        stack.env.push((k.into(), v));
    }
    stack.start_services().await;
    let replica = stack.start_extra_metrics_sink("metrics2");
    let dir = stack.dir.path().to_path_buf();
    let hook = Webhook::start().await;
    let (pager, tickets) = (hook.url("/pager"), hook.url("/tickets"));
    let extra = ["--pager-url", &pager, "--tickets-url", &tickets];
    let am = generate_and_start_alertmanager(&catalog_path, &dir, &extra).await;
    let p = &stack.ports;
    let jobs = [
        (
            "northstar-kpis",
            vec![
                format!("127.0.0.1:{}", p.metrics),
                format!("127.0.0.1:{replica}"),
            ],
        ),
        (
            "northstar-ingest",
            vec![format!("127.0.0.1:{}", p.ingest_admin)],
        ),
        (
            "northstar-stream-processor",
            vec![format!("127.0.0.1:{}", p.processor)],
        ),
        ("northstar-lake-sink", vec![format!("127.0.0.1:{}", p.lake)]),
    ];
    let rules = format!("{}/prometheus/rules/*.rules.yml", dir.display());
    let prom = Prometheus::start(&dir, &jobs, &rules, Some(&am.address())).await;

    let end = now_ms();
    let sent = send_traffic(&stack, end).await;
    // The lake holds everything sent (but the too-late event, kept too: it is only left out of
    // the KPIs) once its files are flushed.
    wait_until("the lake", Duration::from_secs(180), || async {
        northstar_e2e::lake::string_column(&stack.events_dir(), "message_id")
            .map(|v| v.len())
            .unwrap_or(0)
            >= sent
    })
    .await;
    // Prometheus has the sink's final windows (both replicas scraped): the history stops growing.
    let wau = c.north_star_kpi().expect("north star").clone();
    let (mut last, deadline) = (0, Instant::now() + Duration::from_secs(120));
    loop {
        let points =
            history(&prom, &c.kpis[2], "1h").await.len() + history(&prom, &wau, "1w").await.len();
        if points > 0 && points == last {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the history in Prometheus keeps changing: {points} points"
        );
        last = points;
        tokio::time::sleep(Duration::from_secs(3)).await;
    }
    // The backfill's last event is the watermark when the late ones arrive (the last events of
    // every partition are within seconds of `end`).
    let last_event = end - 1;
    let dropped = [
        ("late-drop", dropped_in(&c, end - LATE_DROP_MS, last_event)),
        (
            "late-update",
            dropped_in(&c, end - LATE_UPDATE_MS, last_event),
        ),
    ];
    let lake = recompute(&stack, &c, &dropped);
    let checked = check_history(&stack, &prom, &c, &lake).await;
    eprintln!("{checked} final window values: sink = Prometheus (both replicas) = DuckDB");
    assert!(checked > 1_000, "{checked}");

    // Live traffic while the dashboards are queried (open windows with sign-ups in them).
    let mut live = std::process::Command::new("python3")
        .arg(repo().join("deploy/local/demo_traffic.py"))
        .args([
            "live",
            "--per-hour",
            "7200",
            "--users",
            "100000",
            "--seed",
            "12",
            "--url",
            &stack.ingest_url(),
            "--write-key",
            northstar_e2e::WRITE_KEY,
            "--control",
        ])
        .arg(dir.join("control"))
        .spawn()
        .expect("live traffic");
    tokio::time::sleep(Duration::from_secs(10)).await;
    // Sign-ups and activations in the open minute, 10 s before its queries run (they compare
    // with 10 s earlier): early in a minute, so that the checks end within it.
    while !(10_000..15_000).contains(&(now_ms() % 60_000)) {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    spike(&stack, 30, 14);
    let iso = |ms: i64| {
        chrono::DateTime::from_timestamp_millis(ms)
            .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
            .unwrap_or_default()
    };
    let upgrades: Vec<Value> = (0..3).map(|i| json!({"type": "track", "event": "Upgraded Plan", "userId": format!("user-{i}"), "messageId": format!("burst-upgrade-{i}"),
        "timestamp": iso(now_ms()), "context": {"os": {"name": "iOS"}}, "properties": {"plan": "pro", "revenue": 49}})).collect();
    stack.send_batches(&upgrades, 10).await;
    tokio::time::sleep(Duration::from_secs(11)).await;
    let queries = check_dashboards(&prom, &c).await;
    eprintln!("{queries} dashboard queries answered with their legends' labels");
    let broken: Vec<String> = prom
        .rules()
        .await
        .iter()
        .filter(|r| r["health"] != "ok")
        .map(|r| format!("{}: {}", r["name"], r["lastError"]))
        .collect();
    assert!(broken.is_empty(), "rules failing: {broken:?}");
    check_alerting(&stack, &prom, &am, &hook).await;
    let _ = live.kill();
    let _ = live.wait();
    let unclean = stack.shutdown();
    assert!(
        unclean
            .iter()
            .all(|n| n == "prometheus" || n == "alertmanager"),
        "did not exit cleanly: {unclean:?}"
    );
}

/// `count` sign-ups (about half of them activating within the minute) now, through the demo's
/// anomaly command.
fn spike(stack: &Stack, count: u32, seed: u32) {
    let out = std::process::Command::new("python3")
        .arg(repo().join("deploy/local/demo_traffic.py"))
        .args([
            "anomaly",
            "spike",
            "--count",
            &count.to_string(),
            "--seed",
            &seed.to_string(),
            "--url",
            &stack.ingest_url(),
            "--write-key",
            northstar_e2e::WRITE_KEY,
        ])
        .output()
        .expect("spike");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A real flood of sign-ups fires the open-window bound (a warning), which reaches the tickets
/// webhook; and
/// Alertmanager mutes KPI alerts while the pipeline is stalled.
async fn check_alerting(stack: &Stack, prom: &Prometheus, am: &Alertmanager, hook: &Webhook) {
    // A flood early in a minute, so the open minute holds it for a whole rule evaluation.
    while now_ms() % 60_000 > 5_000 {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    spike(stack, 400, 13);
    let paged = || {
        hook.received().iter().any(|(path, body)| {
            path == "/tickets"
                && body["alerts"].as_array().is_some_and(|alerts| {
                    alerts.iter().any(|a| {
                        a["labels"]["alertname"] == "NorthstarKpiOpenWindowAboveBound"
                            && a["labels"]["kpi"] == "signups"
                            && a["status"] == "firing"
                            && a["annotations"]["runbook_url"]
                                .as_str()
                                .is_some_and(|u| u.ends_with("#northstarkpiopenwindowabovebound"))
                    })
                })
        })
    };
    if !waited(Duration::from_secs(150), || async { paged() }).await {
        let alerts = reqwest::get(format!("{}/api/v1/alerts", prom.url()))
            .await
            .expect("alerts")
            .text()
            .await
            .unwrap_or_default();
        let open: Vec<Value> = prom
            .query_range(
                "northstar_kpi_open_value{kpi=\"signups\",window=\"1m\",segment=\"all\"}",
                240,
                5,
            )
            .await
            .iter()
            .map(|r| r["values"].clone())
            .collect();
        let rule: Vec<Value> = prom
            .rules()
            .await
            .into_iter()
            .filter(|r| r["name"] == "NorthstarKpiOpenWindowAboveBound")
            .collect();
        eprintln!("the rule: {rule:?}");
        panic!(
            "no alert at the tickets webhook\nwebhook got: {:?}\nalertmanager: {:?}\nprometheus alerts: {alerts}\nopen signups: {open:?}",
            hook.received(),
            am.alerts().await
        );
    }
    // Then a stalled pipeline mutes KPI alerts (after the real alert: it would mute that too).
    am.post(&json!([
        {"labels": {"alertname": "NorthstarPipelineStalled", "severity": "critical"}},
        {"labels": {"alertname": "NorthstarKpiBelowThreshold", "severity": "warning", "kpi": "signups", "window": "1h"}},
    ]))
    .await;
    wait_until("the inhibition", Duration::from_secs(30), || async {
        am.alerts().await.iter().any(|a| {
            a["labels"]["alertname"] == "NorthstarKpiBelowThreshold"
                && a["status"]["inhibitedBy"]
                    .as_array()
                    .is_some_and(|v| !v.is_empty())
        })
    })
    .await;
    // The critical one pages (after the route's group_wait).
    wait_until("the page", Duration::from_secs(90), || async {
        hook.received().iter().any(|(path, body)| {
            path == "/pager"
                && body["alerts"].as_array().is_some_and(|alerts| {
                    alerts
                        .iter()
                        .any(|a| a["labels"]["alertname"] == "NorthstarPipelineStalled")
                })
        })
    })
    .await;
    // The injected KPI alert (not one that Prometheus fired on its own before the stall, which
    // rightly reaches a receiver; those are printed if the check fails).
    let received = hook.received();
    let kpi_alerts: Vec<&Value> = received
        .iter()
        .filter_map(|(_, body)| body["alerts"].as_array())
        .flatten()
        .filter(|a| {
            a["labels"]["alertname"]
                .as_str()
                .is_some_and(|n| n.starts_with("NorthstarKpi"))
        })
        .collect();
    let muted = kpi_alerts.iter().any(|a| {
        a["labels"]["alertname"] == "NorthstarKpiBelowThreshold"
            && a["labels"]["kpi"] == "signups"
            && a["labels"]["window"] == "1h"
            && a["labels"]["severity"] == "warning"
    });
    assert!(
        !muted,
        "an inhibited alert reached a receiver; KPI alerts received: {kpi_alerts:?}"
    );
}
