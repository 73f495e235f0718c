//! End to end: HTTP → ingest → Kafka → stream processor → Parquet lake and Prometheus
//! exposition, on the real broker, every service a separate process.
//!
//! Sends 5,000 unique valid events in batches with 12 % duplicate messageIds and 80 invalid
//! records (60 through HTTP that only the processor can reject, 20 produced straight to the raw
//! topic as a backend service might), then checks exactly: lake rows = unique valid events,
//! DLQ records = invalid records (with reasons and original bytes), windowed counts summed =
//! unique valid events, and the processor's in = out + duplicates + invalid.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, Instant};

use northstar_e2e::{kafka, lake, Stack};
use serde_json::{json, Value};

const UNIQUE: usize = 5_000;
const DUPLICATES: usize = 600;
const EMPTY_NAME: usize = 30;
const NOT_OBJECT: usize = 30;
const RAW_JSON: usize = 10;
const UNKNOWN_SCHEMA: usize = 10;
const EVENT_NAMES: [&str; 8] = [
    "Signed Up",
    "Logged In",
    "Viewed Page",
    "Added To Cart",
    "Checked Out",
    "Invited User",
    "Upgraded",
    // Needs encoding as a directory name (the lake's event_name partition).
    "Plan: changed/ü = yes.",
];

/// A small deterministic generator (no external randomness in tests).
struct Lcg(u64);
impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

fn auth() -> String {
    northstar_e2e::write_key_auth()
}

/// Sums `metric{...} value` lines of a Prometheus exposition, grouped by one label.
async fn get_text(url: &str) -> String {
    match reqwest::get(url).await {
        Ok(r) => r.text().await.unwrap_or_default(),
        Err(_) => String::new(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_flow_exactly_from_http_to_lake_dlq_and_metrics() {
    let mut stack = Stack::start_core().await;
    stack.fast_output();
    stack.start_services().await;

    // --- build the workload ---
    let mut rng = Lcg(42);
    let now = chrono::Utc::now();
    let mut expected_per_name: HashMap<String, usize> = HashMap::new();
    let mut unique_ids = HashSet::new();
    let mut sent_events: Vec<(String, &str, chrono::DateTime<chrono::Utc>)> = Vec::new();
    let (mut revenue_sum, mut per_os, mut per_plan) = (
        0.0_f64,
        BTreeMap::<&str, usize>::new(),
        BTreeMap::<&str, usize>::new(),
    );
    let mut messages: Vec<Value> = Vec::new();
    for i in 0..UNIQUE {
        let name = EVENT_NAMES[rng.below(EVENT_NAMES.len())];
        *expected_per_name.entry(name.to_string()).or_default() += 1;
        let ts = now - chrono::Duration::milliseconds(rng.below(300_000) as i64);
        let id = format!("valid-{i}");
        unique_ids.insert(id.clone());
        let user = format!("user-{}", rng.below(500));
        let (plan, os) = (
            if i % 3 == 0 { "pro" } else { "free" },
            if i % 2 == 0 { "iOS" } else { "Android" },
        );
        revenue_sum += (i % 50) as f64 / 2.0;
        let distinct = if i % 5 == 0 {
            format!("anon-{user}")
        } else {
            user.clone()
        };
        // As the lake holds it: milliseconds (the JSON timestamp below).
        let ts_ms = chrono::DateTime::from_timestamp_millis(ts.timestamp_millis()).expect("ts");
        sent_events.push((distinct, name, ts_ms));
        *per_os.entry(os).or_default() += 1;
        *per_plan.entry(plan).or_default() += 1;
        let mut m = json!({
            "type": "track", "event": name, "messageId": id,
            "timestamp": ts.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            "properties": {"plan": plan, "revenue": (i % 50) as f64 / 2.0},
            "context": {"os": {"name": os}}
        });
        if i % 5 == 0 {
            m["anonymousId"] = json!(format!("anon-{user}"));
        } else {
            m["userId"] = json!(user);
        }
        messages.push(m);
    }
    for i in 0..EMPTY_NAME {
        messages.push(json!({"type": "track", "event": "", "userId": "bad-user", "messageId": format!("bad-name-{i}")}));
    }
    for i in 0..NOT_OBJECT {
        messages.push(
            json!({"type": "track", "event": "Signed Up", "userId": "bad-user",
            "messageId": format!("bad-props-{i}"), "properties": "not an object"}),
        );
    }
    // Shuffle, then insert each duplicate after its original.
    for i in (1..messages.len()).rev() {
        let j = rng.below(i + 1);
        messages.swap(i, j);
    }
    for _ in 0..DUPLICATES {
        let j = loop {
            let j = rng.below(messages.len());
            if messages[j]["messageId"]
                .as_str()
                .is_some_and(|s| s.starts_with("valid-"))
            {
                break j;
            }
        };
        let copy = messages[j].clone();
        let at = j + 1 + rng.below(messages.len() - j);
        messages.insert(at, copy);
    }
    assert_eq!(
        messages.len(),
        UNIQUE + DUPLICATES + EMPTY_NAME + NOT_OBJECT
    );

    // --- send over HTTP in batches of 100 ---
    let client = reqwest::Client::new();
    let batch_url = format!("{}/v1/batch", stack.ingest_url());
    for chunk in messages.chunks(100) {
        let body = json!({"batch": chunk, "sentAt": chrono::Utc::now().to_rfc3339()});
        let resp = client
            .post(&batch_url)
            .header("authorization", auth())
            .json(&body)
            .send()
            .await
            .expect("send");
        assert_eq!(
            resp.status(),
            200,
            "batch rejected: {}",
            resp.text().await.unwrap_or_default()
        );
    }
    // Requests the collector itself must refuse, none of which may reach Kafka.
    let r = client
        .post(&batch_url)
        .header("authorization", "Basic d3Jvbmc6")
        .json(&json!({"batch": []}))
        .send()
        .await;
    assert_eq!(r.expect("send").status(), 401);
    let r = client
        .post(&batch_url)
        .body("{\"batch\":[")
        .send()
        .await
        .expect("send");
    assert_eq!(
        r.status(),
        400,
        "malformed JSON without a key is a 400 before the 401"
    );
    let r = client
        .post(&batch_url)
        .header("authorization", auth())
        .body("{\"batch\":[")
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 400);
    let big = json!({"batch": [{"type": "track", "event": "x", "userId": "u", "properties": {"blob": "x".repeat(40_000)}}]});
    let r = client
        .post(&batch_url)
        .header("authorization", auth())
        .json(&big)
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 413);

    // --- records a backend producer writes straight to the raw topic ---
    let mut raw_payloads = HashSet::new();
    for i in 0..RAW_JSON {
        let payload = format!("{{\"not\":\"avro\",\"i\":{i}}}");
        kafka::produce_raw(
            &stack.brokers(),
            "events.raw",
            "backend",
            payload.as_bytes(),
        )
        .await
        .expect("produce");
        raw_payloads.insert(payload.into_bytes());
    }
    for i in 0..UNKNOWN_SCHEMA {
        let payload = northstar_schemas::wire::frame(999_999, format!("datum-{i}").as_bytes());
        kafka::produce_raw(&stack.brokers(), "events.raw", "backend", &payload)
            .await
            .expect("produce");
        raw_payloads.insert(payload);
    }
    let invalid_total = EMPTY_NAME + NOT_OBJECT + RAW_JSON + UNKNOWN_SCHEMA;
    let raw_total = messages.len() + RAW_JSON + UNKNOWN_SCHEMA;

    // --- wait for the pipeline to settle ---
    let deadline = Instant::now() + Duration::from_secs(180);
    while Instant::now() < deadline {
        let rows = lake::string_column(&stack.events_dir(), "message_id")
            .map(|v| v.len())
            .unwrap_or_default();
        let window_sum: f64 =
            northstar_e2e::held_sums(stack.ports.metrics, "events", "1m", "event")
                .await
                .values()
                .sum();
        let dead = kafka::read_topic(&stack.brokers(), "events.dlq")
            .map(|v| v.len())
            .unwrap_or_default();
        if rows >= UNIQUE && window_sum >= UNIQUE as f64 && dead >= invalid_total {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // Give late extras (there must be none) a chance to show up before asserting exactly.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let lake_ids = lake::string_column(&stack.events_dir(), "message_id").expect("read lake");
    let metrics_text = get_text(&stack.metrics_url()).await;
    let dlq = kafka::read_topic(&stack.brokers(), "events.dlq").expect("read dlq");

    // Lake: exactly the unique valid events.
    assert_eq!(lake_ids.len(), UNIQUE, "lake rows\n{}", stack.logs());
    let lake_set: HashSet<String> = lake_ids.into_iter().flatten().collect();
    assert_eq!(
        lake_set, unique_ids,
        "lake holds exactly the unique valid message ids"
    );

    // Readers nobody here wrote see the same rows, typed, in the right partitions.
    let lake_dir = stack.lake_dir();
    let out = northstar_e2e::run_compat_script("lake_readers.py", &[lake_dir.as_os_str()]);
    let seen: Value = serde_json::from_slice(&out).expect("readers' JSON");
    let mut sorted_ids: Vec<&String> = unique_ids.iter().collect();
    sorted_ids.sort();
    for reader in ["duckdb", "pyarrow"] {
        let r = &seen[reader];
        assert_eq!(r["rows"], json!(UNIQUE), "{reader}: rows");
        assert_eq!(r["ids"], json!(sorted_ids), "{reader}: message ids");
        assert_eq!(
            r["per_name"],
            json!(expected_per_name),
            "{reader}: rows per event name"
        );
        assert_eq!(
            r["partition_mismatches"],
            json!(0),
            "{reader}: rows outside their event_date/event_hour/event_name partition"
        );
        assert_eq!(
            r["revenue_sum"],
            json!(revenue_sum),
            "{reader}: sum(prop_revenue)"
        );
        assert_eq!(
            r["per_os"],
            json!(per_os),
            "{reader}: rows per context_os_name"
        );
        assert_eq!(
            r["per_plan"],
            json!(per_plan),
            "{reader}: rows per prop_plan"
        );
    }
    let types = (&seen["duckdb"]["types"], &seen["pyarrow"]["types"]);
    for (column, duck, arrow) in [
        (
            "timestamp",
            "TIMESTAMP WITH TIME ZONE",
            "timestamp[us, tz=UTC]",
        ),
        (
            "received_at",
            "TIMESTAMP WITH TIME ZONE",
            "timestamp[us, tz=UTC]",
        ),
        ("message_id", "VARCHAR", "string"),
        ("source_offset", "BIGINT", "int64"),
        ("context_os_name", "VARCHAR", "string"),
        ("prop_plan", "VARCHAR", "string"),
        ("prop_revenue", "DOUBLE", "double"),
    ] {
        assert_eq!(types.0[column], json!(duck), "duckdb type of {column}");
        assert_eq!(types.1[column], json!(arrow), "pyarrow type of {column}");
    }

    // The lake sink's own accounting matches what the readers saw.
    let ltext = get_text(&format!("http://127.0.0.1:{}/metrics", stack.ports.lake)).await;
    let by_table = |m: &str| northstar_e2e::prom::sum_by(&ltext, m, "table");
    assert_eq!(
        by_table("northstar_lake_sink_rows_written_total"),
        BTreeMap::from([
            ("events".to_string(), UNIQUE as f64),
            ("dlq".to_string(), invalid_total as f64),
        ]),
        "rows written per table\n{ltext}"
    );
    for m in [
        "northstar_lake_sink_files_written_total",
        "northstar_lake_sink_bytes_written_total",
    ] {
        assert!(
            by_table(m).values().all(|v| *v > 0.0) && by_table(m).len() == 2,
            "{m} per table\n{ltext}"
        );
    }
    for m in [
        "northstar_lake_sink_open_files",
        "northstar_lake_sink_buffered_rows",
        "northstar_lake_sink_oldest_unflushed_seconds",
        "northstar_lake_sink_oldest_unflushed_event_age_seconds",
        "northstar_lake_sink_flush_duration_seconds_count",
        "northstar_lake_sink_upload_errors_total",
        "northstar_lake_sink_replay_skipped_total",
        "northstar_lake_sink_type_conflicts_total",
    ] {
        assert!(
            ltext.lines().any(|l| l.starts_with(m)),
            "lake sink exports {m}\n{ltext}"
        );
    }

    assert!(
        ltext
            .lines()
            .any(|l| l.starts_with("northstar_consumer_lag_records{")
                && l.contains("topic=\"events.clean\"")),
        "consumer lag of events.clean\n{ltext}"
    );

    // The example queries of docs/lake.md, run as written, agree with what was sent.
    let doc = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/lake.md");
    let out = northstar_e2e::run_compat_script(
        "lake_queries.py",
        &[doc.as_os_str(), lake_dir.as_os_str()],
    );
    let answers: Value = serde_json::from_slice(&out).expect("queries' JSON");
    let mut dau: BTreeMap<String, HashSet<&str>> = BTreeMap::new();
    let mut first_signup: HashMap<&str, chrono::DateTime<chrono::Utc>> = HashMap::new();
    for (who, name, ts) in &sent_events {
        dau.entry(ts.format("%Y-%m-%d").to_string())
            .or_default()
            .insert(who);
        if *name == "Signed Up" {
            let t = first_signup.entry(who).or_insert(*ts);
            *t = (*t).min(*ts);
        }
    }
    let expected_dau: Vec<Value> = dau.iter().map(|(d, u)| json!([d, u.len()])).collect();
    assert_eq!(
        answers["daily_active_users"],
        json!(expected_dau),
        "docs/lake.md: DAU"
    );
    let upgraded = first_signup
        .iter()
        .filter(|(who, at)| {
            sent_events
                .iter()
                .any(|(w, n, ts)| w == *who && *n == "Upgraded" && ts >= *at)
        })
        .count();
    assert_eq!(
        answers["signup_to_upgrade_funnel"],
        json!([[first_signup.len(), upgraded]]),
        "docs/lake.md: funnel"
    );
    let week0: u64 = answers["retention_by_signup_week"]
        .as_array()
        .expect("rows")
        .iter()
        .filter(|r| r[1] == json!(0))
        .map(|r| r[2].as_u64().expect("users"))
        .sum();
    assert_eq!(
        week0,
        first_signup.len() as u64,
        "docs/lake.md: every cohort is active in its signup week"
    );

    // DLQ: exactly the invalid records, each with its reason, source position and original bytes.
    assert_eq!(dlq.len(), invalid_total, "dead-letter records");
    let mut reasons: BTreeMap<String, usize> = BTreeMap::new();
    for r in &dlq {
        *reasons
            .entry(
                r.headers
                    .get("northstar.dlq.reason")
                    .cloned()
                    .unwrap_or_default(),
            )
            .or_default() += 1;
        assert!(
            r.headers.contains_key("northstar.source.offset"),
            "source position header"
        );
        assert!(
            r.headers
                .get("northstar.dlq.detail")
                .is_some_and(|d| !d.is_empty()),
            "detail header"
        );
    }
    let expected_reasons: BTreeMap<String, usize> = [
        ("missing_event_name".to_string(), EMPTY_NAME),
        ("not_an_object".to_string(), NOT_OBJECT),
        ("not_wire_format".to_string(), RAW_JSON),
        ("unknown_schema".to_string(), UNKNOWN_SCHEMA),
    ]
    .into();
    assert_eq!(reasons, expected_reasons);
    // … and the lake's dead-letter table holds the same records, each with its position and bytes.
    let lake_dlq = loop {
        let out = northstar_e2e::run_compat_script("lake_readers.py", &[lake_dir.as_os_str()]);
        let seen: Value = serde_json::from_slice(&out).expect("readers' JSON");
        if seen["dlq"]["complete"] == json!(invalid_total) || Instant::now() > deadline {
            break seen["dlq"].clone();
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert_eq!(
        lake_dlq["per_reason"],
        json!(expected_reasons),
        "dlq table reasons"
    );
    assert_eq!(
        lake_dlq["complete"],
        json!(invalid_total),
        "dlq rows with source, payload, detail and date"
    );
    let dlq_backend: HashSet<Vec<u8>> = dlq
        .iter()
        .filter(|r| r.key.as_deref() == Some(b"backend"))
        .filter_map(|r| r.payload.clone())
        .collect();
    assert_eq!(dlq_backend, raw_payloads, "original bytes kept intact");

    // Metrics: the windowed counts sum to the unique valid events, per event name too.
    let per_name = northstar_e2e::held_sums(stack.ports.metrics, "events", "1m", "event").await;
    let expected: BTreeMap<String, f64> = expected_per_name
        .iter()
        .map(|(k, v)| (k.clone(), *v as f64))
        .collect();
    assert_eq!(
        per_name, expected,
        "window counts per event name\n{metrics_text}"
    );
    // The sink caught up and serves the model: no per-window label, the catalog's info series.
    let caught_up =
        northstar_e2e::prom::named(&metrics_text, "northstar_metrics_sink_caught_up").next();
    assert_eq!(caught_up.map(|s| s.value), Some(1.0), "{metrics_text}");
    for needle in [
        "northstar_kpi_open_value{kpi=\"events\",window=\"1m\",event=\"__all__\",segment=\"all\"}",
        "northstar_kpi_info{kpi=\"events\"",
    ] {
        assert!(
            metrics_text.contains(needle),
            "{needle} missing:\n{metrics_text}"
        );
    }
    assert!(
        !metrics_text.contains("window_start="),
        "no per-window series"
    );

    // The clean topic: unique valid events, keys kept, source positions attached.
    let clean = kafka::read_topic(&stack.brokers(), "events.clean").expect("read clean");
    assert_eq!(clean.len(), UNIQUE);
    assert!(clean
        .iter()
        .all(|r| r.headers.contains_key("northstar.source.partition") && r.key.is_some()));

    // The processor's own accounting: in = out + duplicates + invalid.
    let ptext = get_text(&stack.processor_metrics_url()).await;
    let total = |m: &str| {
        northstar_e2e::prom::sum_by(&ptext, m, "partition")
            .values()
            .sum::<f64>() as usize
    };
    let (ins, outs, dups, invalid) = (
        total("northstar_processor_events_in_total"),
        total("northstar_processor_events_out_total"),
        total("northstar_processor_duplicates_total"),
        total("northstar_processor_invalid_total"),
    );
    assert_eq!(ins, raw_total);
    assert_eq!((outs, dups, invalid), (UNIQUE, DUPLICATES, invalid_total));
    assert_eq!(ins, outs + dups + invalid);

    // SIGTERM drains and exits cleanly.
    let unclean = stack.shutdown();
    assert!(
        unclean.is_empty(),
        "did not exit cleanly on SIGTERM: {unclean:?}\n{}",
        stack.logs()
    );
}
