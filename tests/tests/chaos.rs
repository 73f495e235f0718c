//! Chaos: 200,000 unique events through HTTP with 5 % duplicates and 2 % late events (half
//! within the allowed lateness, half beyond it), while the stream processor is killed with
//! SIGKILL three times at random moments and a second instance joins and later leaves, and the
//! lake sink is killed with SIGKILL three times and crashes once in the middle of a file write.
//!
//! Afterwards, exactly: the lake holds every unique event once, with no staging file left
//! behind; every final KPI window read
//! from `kpi.aggregates` equals the same KPI recomputed from the lake's Parquet files by DuckDB
//! (tests/compat/chaos_recompute.py, none of Northstar's code) — counts, distinct users, sums
//! and ratios — and `late_dropped` per KPI equals what was sent beyond the lateness.
//!
//! The moments are drawn from a seed printed at the start; `NORTHSTAR_CHAOS_SEED=<n>` replays a
//! run, `NORTHSTAR_CHAOS_EVENTS=<n>` changes the size.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, Instant};

use northstar_e2e::{kafka, lake, Stack};
use northstar_schemas::aggregate::AggregateCodec;
use northstar_schemas::{wire, KpiAggregate, RegistryClient};
use serde_json::{json, Value};

const MIN: i64 = 60_000;
const HOUR: i64 = 3_600_000;
const DAY: i64 = 86_400_000;
const LATENESS: i64 = 600_000;
/// Event time advances this much per generated event.
const STEP_MS: i64 = 20;
const BATCH: usize = 500;
const CLOSERS: usize = 64;
/// Session timeout of the processors' group membership.
const SESSION_TIMEOUT_MS: u64 = 10_000;

/// Mirrored by hand, as SQL, in tests/compat/chaos_recompute.py.
const CATALOG: &str = r#"
north_star: active_users
defaults: {windows: [1m, 1h], max_segment_values: 100}
kpis:
  - {name: events, aggregate: count, segments: [event, context.os.name]}
  - {name: active_users, aggregate: distinct_users, windows: [1h, 1d], segments: [context.os.name]}
  - {name: checkouts, filter: {event: Checkout Started}, aggregate: count, segments: [properties.plan]}
  - {name: orders, filter: {event: Order Completed}, aggregate: count, segments: [properties.plan]}
  - {name: revenue, filter: {event: Order Completed}, aggregate: {sum: properties.revenue}, segments: [properties.plan]}
  - {name: conversion, aggregate: {ratio: {numerator: orders, denominator: checkouts}}, segments: [properties.plan]}
"#;

const NAMES: [&str; 4] = [
    "Page Viewed",
    "Checkout Started",
    "Order Completed",
    "Signed Up",
];
const OS: [&str; 3] = ["iOS", "Android", "Web"];
const PLANS: [&str; 3] = ["free", "pro", "team"];

/// (KPI, its windows, its segment dimensions in order, the event name it counts).
type KpiSpec = (
    &'static str,
    Vec<i64>,
    Vec<&'static str>,
    Option<&'static str>,
);

fn kpis() -> Vec<KpiSpec> {
    vec![
        (
            "events",
            vec![MIN, HOUR],
            vec!["event", "context.os.name"],
            None,
        ),
        (
            "active_users",
            vec![HOUR, DAY],
            vec!["context.os.name"],
            None,
        ),
        (
            "checkouts",
            vec![MIN, HOUR],
            vec!["properties.plan"],
            Some("Checkout Started"),
        ),
        (
            "orders",
            vec![MIN, HOUR],
            vec!["properties.plan"],
            Some("Order Completed"),
        ),
        (
            "revenue",
            vec![MIN, HOUR],
            vec!["properties.plan"],
            Some("Order Completed"),
        ),
    ]
}

/// xorshift64*: deterministic from the seed, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// The windows (lengths) in which an event at `ts` is final — hence dropped — when the
/// partition's watermark is about `cur`; `None` when too close to call.
fn final_windows(ts: i64, cur: i64) -> Option<Vec<i64>> {
    let mut out = Vec::new();
    for len in [MIN, HOUR, DAY] {
        let closes = ts.div_euclid(len) * len + len + LATENESS;
        if (closes - cur).abs() < 30_000 {
            return None;
        }
        if closes <= cur {
            out.push(len);
        }
    }
    Some(out)
}

fn iso(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_default()
}

/// What was sent, and what the processor must report about it.
struct Plan {
    /// Every HTTP message in send order (duplicates included).
    messages: Vec<Value>,
    unique: HashSet<String>,
    /// messageId → windows in which it must be dropped as too late.
    dropped: BTreeMap<String, Vec<i64>>,
    /// KPI → events it must count as late-dropped.
    late_dropped: BTreeMap<String, u64>,
    late_within: usize,
    end_ms: i64,
}

fn generate(rng: &mut Rng, unique: usize, t0: i64) -> Plan {
    let mut messages = Vec::with_capacity(unique * 21 / 20);
    let mut ids = HashSet::new();
    let mut dropped = BTreeMap::new();
    let mut late_dropped: BTreeMap<String, u64> = BTreeMap::new();
    let mut late_within = 0;
    for i in 0..unique {
        let cur = t0 + i as i64 * STEP_MS;
        let name = NAMES[rng.below(4) as usize];
        let mut ts = cur;
        let mut windows = Vec::new();
        match i % 100 {
            7 => {
                // Late, within the allowed lateness: updates its (still open) windows.
                ts = cur - 60_000 - rng.below(180_000) as i64;
                late_within += 1;
            }
            57 => {
                // Late beyond the lateness: final at least in its 1-minute window. Near a
                // window's closing time the outcome depends on arrival order: then it stays on
                // time.
                for _ in 0..10 {
                    let candidate = cur - 15 * 60_000 - rng.below(15 * 60_000) as i64;
                    if let Some(w) = final_windows(candidate, cur) {
                        (ts, windows) = (candidate, w);
                        break;
                    }
                }
            }
            _ => {}
        }
        let id = format!("chaos-{i}");
        let mut props = json!({"plan": PLANS[rng.below(3) as usize]});
        if name == "Order Completed" {
            props["revenue"] = json!((rng.below(100_000) as f64) / 100.0);
        }
        let m = json!({
            "type": "track",
            "event": name,
            "userId": format!("user-{}", rng.below(5_000)),
            "messageId": id,
            "timestamp": iso(ts),
            "context": {"os": {"name": OS[rng.below(3) as usize]}},
            "properties": props,
        });
        if !windows.is_empty() {
            for (kpi, kw, _, filter) in kpis() {
                if filter.is_none_or(|f| f == name) && kw.iter().any(|w| windows.contains(w)) {
                    *late_dropped.entry(kpi.to_string()).or_default() += 1;
                }
            }
            dropped.insert(id.clone(), windows);
        }
        ids.insert(id);
        messages.push(m);
        if i % 20 == 3 {
            // A duplicate of a recent message (an SDK retry).
            let back = (rng.below(2_000) as usize).min(messages.len() - 1);
            let dup = messages[messages.len() - 1 - back].clone();
            messages.push(dup);
        }
    }
    Plan {
        messages,
        unique: ids,
        dropped,
        late_dropped,
        late_within,
        end_ms: t0 + unique as i64 * STEP_MS,
    }
}

/// One window of one KPI: (kpi, window ms, start ms, segment values in dimension order).
type WindowId = (String, i64, i64, Vec<String>);

#[derive(Debug, Default, Clone, PartialEq)]
struct Value3 {
    value: f64,
    numerator: f64,
    denominator: f64,
}

/// The final windows in `kpi.aggregates`: per upsert key the record from the highest source
/// offset, summed over input partitions. Returns the windows and the keys not final.
async fn final_windows_in_topic(stack: &Stack) -> (BTreeMap<WindowId, Value3>, usize) {
    let records = kafka::read_topic(&stack.brokers(), "kpi.aggregates").expect("read aggregates");
    let registry = RegistryClient::new(&stack.registry_url());
    let codec = AggregateCodec::new();
    let mut latest: HashMap<String, (i64, KpiAggregate)> = HashMap::new();
    for r in records {
        let payload = r.payload.expect("aggregate payload");
        let (id, datum) = wire::split(&payload).expect("wire format");
        let schema = registry.schema_by_id(id).await.expect("writer schema");
        let agg = codec.decode(&schema, datum).expect("aggregate decodes");
        let key = agg.upsert_key();
        let newer = latest
            .get(&key)
            .is_none_or(|(o, _)| agg.source_offset >= *o);
        if newer {
            latest.insert(key, (agg.source_offset, agg));
        }
    }
    let dims: HashMap<&str, Vec<&str>> = kpis()
        .into_iter()
        .map(|(k, _, d, _)| (k, d))
        .chain([("conversion", vec!["properties.plan"])])
        .collect();
    let mut out: BTreeMap<WindowId, Value3> = BTreeMap::new();
    let mut open = 0;
    for (_, agg) in latest.into_values() {
        if !agg.is_final {
            open += 1;
            continue;
        }
        let segment = dims[agg.kpi.as_str()]
            .iter()
            .map(|d| agg.segment.get(*d).cloned().unwrap_or_default())
            .collect();
        let id = (
            agg.kpi.clone(),
            agg.window_end - agg.window_start,
            agg.window_start,
            segment,
        );
        let v = out.entry(id).or_default();
        v.value += agg.value;
        v.numerator += agg.numerator;
        v.denominator += agg.denominator;
    }
    (out, open)
}

/// Lake sink chaos: `kill` (SIGKILL), `start` (once the killed member's session expired),
/// `start, crashing in its second file write` (the same, as `northstar-sink-faulty` with its store set to abort), `replace the
/// crashed one` (checks it crashed in a write, then starts a clean one after the session expiry).
async fn lake_act(stack: &mut Stack, action: &str, killed_at: &mut Instant) {
    let expiry = Duration::from_millis(SESSION_TIMEOUT_MS + 2_000);
    let hook = northstar_e2e::faults::ABORT_IN_WRITE;
    match action {
        "kill" => {
            stack.kill9("lake");
            *killed_at = Instant::now();
        }
        "start" => {
            tokio::time::sleep(expiry.saturating_sub(killed_at.elapsed())).await;
            stack.restart("lake");
        }
        "start, crashing in its second file write" => {
            tokio::time::sleep(expiry.saturating_sub(killed_at.elapsed())).await;
            stack
                .service_env
                .push(("lake".into(), hook.into(), "2".into()));
            stack
                .service_bin
                .push(("lake".into(), "northstar-sink-faulty".into()));
            stack.restart("lake");
            stack.service_env.retain(|(_, k, _)| k != hook);
            stack.service_bin.clear();
        }
        "replace the crashed one" => {
            let deadline = Instant::now() + Duration::from_secs(60);
            loop {
                let p = stack.proc("lake").expect("lake");
                if !p.is_running() {
                    let log = p.log_tail(50);
                    assert!(
                        log.contains(northstar_e2e::faults::ABORT_IN_WRITE_MESSAGE),
                        "the lake sink stopped, but not in a write:\n{log}"
                    );
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "the lake sink never wrote a second file"
                );
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            stack.procs.retain(|p| p.name != "lake");
            tokio::time::sleep(expiry).await;
            stack.restart("lake");
        }
        other => panic!("unknown lake action {other}"),
    }
}

/// The same windows recomputed from the lake by DuckDB.
fn recompute(
    stack: &Stack,
    dropped: &BTreeMap<String, Vec<i64>>,
) -> (u64, u64, BTreeMap<WindowId, Value3>) {
    let dir = stack.dir.path();
    let dropped_path = dir.join("dropped.json");
    std::fs::write(&dropped_path, serde_json::to_vec(dropped).expect("json")).expect("write");
    let out_path = dir.join("recomputed.json");
    let lake_dir = stack.lake_dir();
    northstar_e2e::run_compat_script(
        "chaos_recompute.py",
        &[
            lake_dir.as_os_str(),
            dropped_path.as_os_str(),
            out_path.as_os_str(),
        ],
    );
    let v: Value = serde_json::from_slice(&std::fs::read(&out_path).expect("read")).expect("json");
    let num = |x: &Value| -> f64 {
        x.as_str()
            .and_then(|s| s.parse::<f64>().ok())
            .unwrap_or(f64::NAN)
    };
    let mut windows = BTreeMap::new();
    for w in v["windows"].as_array().expect("windows") {
        let id = (
            w["kpi"].as_str().unwrap_or_default().to_string(),
            w["window_ms"].as_i64().unwrap_or_default(),
            w["start_ms"].as_i64().unwrap_or_default(),
            w["segment"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .map(|s| s.as_str().unwrap_or_default().to_string())
                        .collect()
                })
                .unwrap_or_default(),
        );
        let value = if w.get("numerator").is_some() {
            let (n, d) = (num(&w["numerator"]), num(&w["denominator"]));
            Value3 {
                value: n / d,
                numerator: n,
                denominator: d,
            }
        } else {
            Value3 {
                value: num(&w["value"]),
                ..Value3::default()
            }
        };
        windows.insert(id, value);
    }
    (
        v["rows"].as_u64().unwrap_or_default(),
        v["distinct_ids"].as_u64().unwrap_or_default(),
        windows,
    )
}

/// Exact comparison at the processor's fixed-point precision (6 decimals).
fn same(a: f64, b: f64) -> bool {
    (a.is_nan() && b.is_nan()) || (a * 1e6).round() == (b * 1e6).round()
}

fn prom_sum(text: &str, metric: &str, label: &str) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix(metric).and_then(|r| r.strip_prefix('{')) else {
            continue;
        };
        let Some((labels, value)) = rest.rsplit_once("} ") else {
            continue;
        };
        let Some(v) = labels
            .split(&format!("{label}=\""))
            .nth(1)
            .and_then(|s| s.split('"').next())
        else {
            continue;
        };
        *out.entry(v.to_string()).or_default() += value.trim().parse::<f64>().unwrap_or(0.0) as u64;
    }
    out
}

async fn scrape(url: &str) -> String {
    match reqwest::get(url).await {
        Ok(r) => r.text().await.unwrap_or_default(),
        Err(_) => String::new(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exact_results_through_sigkills_rebalances_duplicates_and_late_events() {
    let seed: u64 = std::env::var("NORTHSTAR_CHAOS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(7)
                | 1
        });
    let unique: usize = std::env::var("NORTHSTAR_CHAOS_EVENTS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(200_000);
    eprintln!("chaos seed {seed} (NORTHSTAR_CHAOS_SEED), {unique} unique events");
    let mut rng = Rng(seed);

    // Event time: two days ago, inside one UTC day, so that closers sent at "now" close every
    // window (1 m, 1 h and 1 d) the run touches.
    let now = chrono::Utc::now().timestamp_millis();
    let t0 = (now.div_euclid(DAY) - 2) * DAY + HOUR;
    let plan = generate(&mut rng, unique, t0);
    assert!(plan.end_ms < (now.div_euclid(DAY) - 1) * DAY, "one UTC day");
    let batches = plan.messages.len().div_ceil(BATCH);

    // Three SIGKILLs at random moments, a second instance joining and leaving in between.
    let frac = |rng: &mut Rng, lo: f64, hi: f64| {
        ((lo + (hi - lo) * (rng.below(1_000) as f64 / 1_000.0)) * batches as f64) as usize
    };
    // Each membership change waits for the previous rebalance to complete, and a killed
    // instance is replaced only once the broker has expired its session. Both work around
    // Tansu 0.6.0's group coordinator (docs/operations.md): it never reassigns the partitions
    // of a member that dies while others remain (a rejoin within the same generation gets the
    // old assignment back), and a member that leaves mid-rebalance stays the group's leader. So
    // SIGKILLs hit the processor while it is the only instance; the second instance joins and
    // leaves (taking partitions with their state, and handing them back) in between.
    let k1 = frac(&mut rng, 0.05, 0.2);
    let join = frac(&mut rng, 0.25, 0.35).max(k1 + 4);
    let leave = frac(&mut rng, 0.4, 0.5).max(join + 3);
    let k2 = frac(&mut rng, 0.55, 0.7).max(leave + 3);
    let k3 = frac(&mut rng, 0.75, 0.9).max(k2 + 4);
    // The lake sink: three SIGKILLs and one crash in the middle of a file write (the
    // fault-injecting store of `northstar-sink-faulty` aborts the process after leaving a half-written staging file), each replaced once its
    // session expired (the same Tansu caveat as above).
    let l1 = frac(&mut rng, 0.1, 0.3);
    let l2 = frac(&mut rng, 0.4, 0.55).max(l1 + 3);
    let l3 = frac(&mut rng, 0.6, 0.75).max(l2 + 3);
    let l4 = frac(&mut rng, 0.8, 0.95).max(l3 + 3);
    let mut script: Vec<(usize, &str)> = vec![
        (l1, "lake: kill"),
        (l1 + 1, "lake: start, crashing in its second file write"),
        (l2, "lake: replace the crashed one"),
        (l3, "lake: kill"),
        (l3 + 1, "lake: start"),
        (l4, "lake: kill"),
        (l4 + 1, "lake: start"),
    ];
    for k in [k1, k2, k3] {
        script.extend([
            (k, "kill processor"),
            (k + 1, "await session expiry"),
            (k + 1, "start processor"),
            (k + 2, "await first holds all"),
        ]);
    }
    script.extend([
        (join, "start second"),
        (join + 1, "await second"),
        (leave, "stop second"),
        (leave + 1, "await first holds all"),
    ]);
    script.sort_by_key(|(b, _)| *b);
    eprintln!("script over {batches} batches: {script:?}");

    let mut stack = Stack::start_core().await;
    let catalog = stack.dir.path().join("chaos-catalog.yaml");
    std::fs::write(&catalog, CATALOG).expect("catalog");
    for (k, v) in [
        ("NORTHSTAR_CATALOG", catalog.display().to_string()),
        ("NORTHSTAR_EMIT_INTERVAL_MS", "500".into()),
        ("NORTHSTAR_CHECKPOINT_INTERVAL_MS", "1000".into()),
        ("NORTHSTAR_MAX_FILE_AGE_SECS", "2".into()),
    ] {
        stack.env.push((k.into(), v));
    }
    // Processors: a killed member's partitions move after the session timeout; the rebalance
    // timeout of the classic protocol is max.poll.interval.ms (see processor_restart.rs).
    for (k, v) in [
        (
            "NORTHSTAR_KAFKA__PROPERTIES__SESSION_TIMEOUT_MS",
            SESSION_TIMEOUT_MS.to_string(),
        ),
        (
            "NORTHSTAR_KAFKA__PROPERTIES__MAX_POLL_INTERVAL_MS",
            "20000".into(),
        ),
    ] {
        stack
            .service_env
            .push(("processor".into(), k.into(), v.clone()));
        stack.service_env.push(("lake".into(), k.into(), v));
    }
    stack.start_services().await;

    let auth = northstar_e2e::write_key_auth();
    let client = reqwest::Client::new();
    let url = format!("{}/v1/batch", stack.ingest_url());
    let started = Instant::now();
    let mut membership = northstar_e2e::Membership::new(Duration::from_millis(SESSION_TIMEOUT_MS));
    let mut lake_killed_at = Instant::now();
    for (b, chunk) in plan.messages.chunks(BATCH).enumerate() {
        let body = json!({ "batch": chunk });
        let mut attempt = 0;
        loop {
            let r = client
                .post(&url)
                .header("authorization", &auth)
                .json(&body)
                .send()
                .await
                .expect("send");
            if r.status() == 200 {
                break;
            }
            // 503 = the broker is slow: retry the whole batch, as SDKs do (duplicates are fine).
            attempt += 1;
            assert!(
                r.status() == 503 && attempt < 20,
                "batch {b}: {}",
                r.status()
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        for (_, action) in script.iter().filter(|(at, _)| *at == b) {
            eprintln!("batch {b}: {action} ({:?})", started.elapsed());
            match action.strip_prefix("lake: ") {
                Some(lake_action) => lake_act(&mut stack, lake_action, &mut lake_killed_at).await,
                None => membership.act(&mut stack, action).await,
            }
        }
    }
    // Closers: a recent event on every partition moves every watermark past all windows above.
    let closers: Vec<Value> = (0..CLOSERS)
        .map(|i| {
            json!({"type": "track", "event": "Closer", "userId": format!("closer-{i}"),
                   "messageId": format!("closer-{i}"), "timestamp": iso(now - 60_000)})
        })
        .collect();
    let r = client
        .post(&url)
        .header("authorization", &auth)
        .json(&json!({ "batch": closers }))
        .send()
        .await
        .expect("send closers");
    assert_eq!(r.status(), 200);
    eprintln!(
        "sent {} messages in {:?}",
        plan.messages.len() + CLOSERS,
        started.elapsed()
    );

    // Every unique event (and closer) reaches the lake (counted in the files: the lake sink's
    // own counters restart with it).
    let want_rows = (plan.unique.len() + CLOSERS) as u64;
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let rows = lake::string_column(&stack.events_dir(), "message_id")
            .map(|v| v.len() as u64)
            .unwrap_or(0);
        if rows >= want_rows {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "only {rows} of {want_rows} rows reached the lake\n{}",
            stack.logs()
        );
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    eprintln!("lake complete after {:?}", started.elapsed());
    let ids: Vec<String> = lake::string_column(&stack.events_dir(), "message_id")
        .expect("lake readable")
        .into_iter()
        .flatten()
        .collect();
    let distinct: HashSet<&str> = ids.iter().map(String::as_str).collect();
    assert_eq!(
        ids.len() as u64,
        want_rows,
        "lake rows = unique events (no duplicate)"
    );
    assert_eq!(distinct.len() as u64, want_rows);
    assert!(plan.unique.iter().all(|id| distinct.contains(id.as_str())));
    // Nothing half-written is left for directory readers (pyarrow reads every file).
    let leftovers: Vec<_> = lake::files_below(&stack.lake_dir())
        .into_iter()
        .filter(|p| p.to_string_lossy().contains('#'))
        .collect();
    assert!(
        leftovers.is_empty(),
        "staging files left in the lake: {leftovers:?}"
    );

    let (rows, distinct_ids, expected) = recompute(&stack, &plan.dropped);
    assert_eq!(
        (rows, distinct_ids),
        (unique as u64, unique as u64),
        "DuckDB sees the same rows"
    );

    // Every window DuckDB computes must be final in kpi.aggregates with the same value.
    let deadline = Instant::now() + Duration::from_secs(300);
    let mut got;
    loop {
        let (windows, _) = final_windows_in_topic(&stack).await;
        got = windows;
        let missing = expected.keys().filter(|k| !got.contains_key(*k)).count();
        if missing == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{missing} of {} windows never became final\n{}",
            expected.len(),
            stack.logs()
        );
        tokio::time::sleep(Duration::from_secs(3)).await;
    }
    // Stragglers would show up as changes.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (settled, _) = final_windows_in_topic(&stack).await;
    let settled: BTreeMap<WindowId, Value3> = settled
        .into_iter()
        .filter(|(k, _)| k.0 != "events" || k.3.first().is_none_or(|e| e != "Closer"))
        .filter(|(k, _)| k.2 < plan.end_ms)
        .collect();
    let mut wrong = Vec::new();
    for (k, want) in &expected {
        match settled.get(k) {
            None => wrong.push(format!("{k:?}: missing, want {want:?}")),
            Some(have) => {
                // A ratio is Σ numerators ÷ Σ denominators over partitions (what the metrics
                // sink exposes), not a sum of per-partition ratios.
                let ok = if k.0 == "conversion" {
                    same(have.numerator, want.numerator)
                        && same(have.denominator, want.denominator)
                        && same(have.numerator / have.denominator, want.value)
                } else {
                    same(have.value, want.value)
                };
                if !ok {
                    wrong.push(format!("{k:?}: have {have:?}, want {want:?}"));
                }
            }
        }
    }
    for k in settled.keys().filter(|k| !expected.contains_key(*k)) {
        wrong.push(format!("{k:?}: final in the topic, absent from the lake"));
    }
    assert!(
        wrong.is_empty(),
        "{} of {} final windows differ from DuckDB's recompute, e.g.:\n{}",
        wrong.len(),
        expected.len(),
        wrong
            .iter()
            .take(20)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
    eprintln!(
        "{} final windows equal DuckDB's; {} late within lateness, {} beyond",
        expected.len(),
        plan.late_within,
        plan.dropped.len()
    );

    // late_dropped per KPI, summed over partitions (all on the surviving instance).
    let text = scrape(&stack.processor_metrics_url()).await;
    let mut dropped = prom_sum(&text, "northstar_processor_late_dropped_total", "kpi");
    dropped.retain(|_, n| *n > 0);
    assert_eq!(dropped, plan.late_dropped, "late_dropped per KPI");
    let unclean = stack.shutdown();
    assert!(unclean.is_empty(), "did not exit cleanly: {unclean:?}");
}
