//! Typed failed events and their replay. With the example tracking plan enforced (unknown events
//! quarantined too), events breaking each kind of rule arrive through HTTP, from Confluent's
//! AvroSerializer straight to `events.raw`, as bytes that are no event at all, and as a clean
//! record the lake sink cannot read. Every one becomes one dead letter whose failure record
//! reaches the lake's dead-letter table as typed columns (read with DuckDB): exact counts by
//! failure type and reason, every problem with its path, rule, expected and actual value, the
//! plan, the source position and the message id; a consent letter keeps nothing of the event.
//! Then the plan is fixed (a new version defines the unknown event), the processor restarted,
//! and `lake-admin replay` re-submits letters by type and reason, with declared fixes (a cast,
//! an event rename): each replayed event is in the lake once, stamped with the new plan, and in
//! the KPIs once; a replay run again skips what was replayed, `--again` is deduplicated by the
//! processor, and a letter that fails again comes back with its recovery count incremented and
//! supersedes the old one.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use northstar_e2e::{kafka, prom, Stack};
use serde_json::{json, Value};

const PLAN: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/tracking-plan.yaml");

fn track(id: &str, i: usize, name: &str, properties: Value) -> Value {
    json!({"type": "track", "event": name, "userId": format!("u{}", i % 7),
        "messageId": id, "properties": properties, "context": {"os": {"name": "iOS"}}})
}

/// The HTTP traffic: `n` events per kind, message ids `<prefix>-<i>`.
fn http_traffic() -> Vec<Value> {
    let mut out = Vec::new();
    let mut add = |prefix: &str, n: usize, name: &str, props: Value| {
        for i in 0..n {
            out.push(track(&format!("{prefix}-{i}"), i, name, props.clone()));
        }
    };
    add("ok", 20, "Signed Up", json!({"plan": "free"}));
    add(
        "wt",
        4,
        "Upgraded Plan",
        json!({"plan": "pro", "revenue": "12.50"}),
    );
    add("mp", 3, "Upgraded Plan", json!({"plan": "pro"}));
    add("nm", 5, "signed_up", json!({"plan": "free"}));
    add("ue", 3, "Exported Report", json!({"plan": "free"}));
    add(
        "pii",
        1,
        "Invited Teammate",
        json!({"plan": "gold", "invitee_email": "eve.secret@example.com"}),
    );
    for i in 0..2 {
        let mut e = track(&format!("cs-{i}"), i, "Signed Up", json!({"plan": "free"}));
        e["context"]["consent"] = json!({"categoryPreferences": {"analytics": false}});
        out.push(e);
    }
    out
}

/// The records a backend service produces with Confluent's AvroSerializer.
fn avro_records() -> Value {
    let days = 86_400_000_000_i64;
    let now = chrono::Utc::now().timestamp_micros();
    json!([
        {"messageId": "av-env-0", "properties": {"plan": "pro", "revenue": 1}},
        {"messageId": "av-env-1", "properties": {"plan": "pro", "revenue": 1}},
        {"messageId": "av-clk-0", "userId": "b1", "timestamp": now - 400 * days,
         "properties": {"plan": "pro", "revenue": 1}},
        {"messageId": "av-clk-1", "userId": "b1", "timestamp": now - 400 * days,
         "properties": {"plan": "pro", "revenue": 1}},
        {"messageId": "av-big", "userId": "b2", "properties": {"plan": "pro", "revenue": 1},
         "_pad_bytes": 70_000},
        {"messageId": "av-wt", "userId": "b3", "properties": {"plan": "pro", "revenue": "49"}},
        {"messageId": "av-ok", "userId": "b3", "properties": {"plan": "pro", "revenue": 49}},
    ])
}

/// The example plan, version 1.1.0, defining `Exported Report`.
fn fixed_plan() -> String {
    let plan = std::fs::read_to_string(PLAN).expect("plan");
    let event = "  - name: Exported Report
    description: A report was exported
    owner: product
    consent: analytics
    retention_days: 400
    properties:
      plan:

";
    plan.replacen("version: 1.0.0", "version: 1.1.0", 1)
        .replacen(
            "  - name: Activated\n",
            &format!("{event}  - name: Activated\n"),
            1,
        )
}

fn counts(rows: &[Value], key: &str) -> BTreeMap<String, u64> {
    rows.iter()
        .map(|r| {
            (
                r[key].as_str().unwrap_or("null").to_string(),
                r["n"].as_u64().unwrap_or(0),
            )
        })
        .collect()
}

async fn start(stack: &mut Stack, plan: &Path) {
    stack
        .env
        .push(("NORTHSTAR_EMIT_INTERVAL_MS".into(), "200".into()));
    for (k, v) in [
        ("NORTHSTAR_PLAN", plan.display().to_string()),
        ("NORTHSTAR_PII_KEY", northstar_e2e::TEST_PII_KEY.to_string()),
        (
            "NORTHSTAR_PLAN_POLICIES__UNKNOWN_EVENT",
            "quarantine".to_string(),
        ),
    ] {
        stack.service_env.push(("processor".into(), k.into(), v));
    }
    stack.service_env.push((
        "lake".into(),
        "NORTHSTAR_MAX_FILE_AGE_SECS".into(),
        "1".into(),
    ));
    // The lake types planned properties by the plan (a file whose revenues are all whole
    // numbers still gets a DOUBLE column).
    stack.service_env.push((
        "lake".into(),
        "NORTHSTAR_PLAN".into(),
        plan.display().to_string(),
    ));
    stack.start_services().await;
}

async fn send_everything(stack: &Stack) {
    stack.send_batches(&http_traffic(), 20).await;
    let records = stack.dir.path().join("avro-records.json");
    std::fs::write(&records, avro_records().to_string()).expect("write records");
    let (brokers, registry) = (stack.brokers(), stack.registry_url());
    northstar_e2e::run_compat_script(
        "avro_records.py",
        &[
            brokers.as_ref(),
            registry.as_ref(),
            "events.raw".as_ref(),
            records.as_os_str(),
        ],
    );
    for garbage in [&b"{\"not\":\"wire format\"}"[..], &[0x00, 0x00][..]] {
        kafka::produce_raw(&brokers, "events.raw", "g", garbage)
            .await
            .expect("produce");
    }
    // A clean record the lake sink cannot read.
    kafka::produce_raw(
        &brokers,
        "events.clean",
        "g",
        b"\x00\x00\x00\x00\x01garbage",
    )
    .await
    .expect("produce");
}

/// Dead letters by failure type and by reason, exactly.
fn check_types(stack: &Stack) {
    let by_type = counts(
        &stack.lake_sql("SELECT failure_type, count(*) AS n FROM dlq GROUP BY ALL"),
        "failure_type",
    );
    let want: BTreeMap<String, u64> = [
        ("schema_violation", 9),
        ("naming", 5),
        ("unknown_event", 3),
        ("consent", 2),
        ("envelope", 2),
        ("clock", 2),
        ("size", 1),
        ("undecodable", 2),
        ("loader", 1),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    assert_eq!(by_type, want, "dead letters by failure type");
    let by_reason = counts(
        &stack.lake_sql(
            "SELECT reason, count(*) AS n FROM dlq WHERE failure_type = 'schema_violation' GROUP BY ALL",
        ),
        "reason",
    );
    assert_eq!(
        by_reason,
        BTreeMap::from([
            ("missing_property".into(), 3),
            ("not_in_enum".into(), 1),
            ("wrong_type".into(), 5)
        ])
    );
}

/// One letter's failure record, column by column, and the consent letters' emptiness.
fn check_columns(stack: &Stack) {
    let rows = stack.lake_sql(
        "SELECT message_id, event, user_id, plan_id, plan_version, source_topic, component, \
         recovery_count, key IS NOT NULL AS has_key, payload IS NOT NULL AS has_payload, \
         to_json(problems) AS problems FROM dlq WHERE message_id = 'wt-0'",
    );
    assert_eq!(rows.len(), 1, "{rows:?}");
    let r = &rows[0];
    for (k, v) in [
        ("event", json!("Upgraded Plan")),
        ("user_id", json!("u0")),
        ("plan_id", json!("northstar-demo")),
        ("plan_version", json!("1.0.0")),
        ("source_topic", json!("events.raw")),
        ("component", json!("stream-processor")),
        ("recovery_count", json!(0)),
        ("has_key", json!(true)),
        ("has_payload", json!(true)),
    ] {
        assert_eq!(r[k], v, "{k} of {r}");
    }
    let problems: Value =
        serde_json::from_str(r["problems"].as_str().unwrap_or("null")).expect("problems");
    assert_eq!(
        problems,
        json!([{"reason": "wrong_type", "path": "properties.revenue", "rule": "type: number",
                "expected": "a number", "actual": "\"12.50\""}])
    );
    let consent = stack.lake_sql(
        "SELECT count(*) AS n FROM dlq WHERE failure_type = 'consent' AND payload IS NULL \
         AND key IS NULL AND user_id IS NULL AND message_id LIKE 'cs-%'",
    );
    assert_eq!(
        consent[0]["n"], 2,
        "consent letters hold nothing of the event"
    );
    let others = stack.lake_sql(
        "SELECT count(*) AS n FROM dlq WHERE failure_type NOT IN ('consent') \
         AND (payload IS NULL OR problems IS NULL OR len(problems) = 0)",
    );
    assert_eq!(
        others[0]["n"], 0,
        "every other letter has its bytes and problems"
    );
    let big = stack.lake_sql("SELECT to_json(problems) AS p FROM dlq WHERE message_id = 'av-big'");
    let p = big[0]["p"].as_str().unwrap_or_default();
    assert!(p.contains("max_event_bytes: 65536"), "{p}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_dead_letter_is_typed_and_a_fixed_replay_lands_once() {
    let mut stack = Stack::start_core().await;
    let plan = stack.dir.path().join("plan.yaml");
    std::fs::copy(PLAN, &plan).expect("copy the plan");
    start(&mut stack, &plan).await;
    send_everything(&stack).await;
    // 20 + 1 valid events in the lake, 27 dead letters in the table.
    stack.wait_lake_rows("events", "message_id", 21).await;
    wait_rows_dlq(&stack, 27).await;
    check_types(&stack);
    check_columns(&stack);
    let dead = kafka::read_topic(&stack.brokers(), "events.dlq").expect("read the dlq");
    assert!(
        dead.iter().all(|r| !r
            .payload
            .as_deref()
            .is_some_and(|p| String::from_utf8_lossy(p).contains(".secret@"))),
        "no e-mail address in a dead letter"
    );
    let metrics = stack.processor_metrics().await;
    let by_type = prom::sum_by(&metrics, "northstar_processor_invalid_total", "type");
    assert_eq!(by_type.values().sum::<f64>(), 26.0, "{by_type:?}");

    // The plan is fixed: a new version defines the unknown event; the processor restarts on it.
    std::fs::write(&plan, fixed_plan()).expect("write the fixed plan");
    if let Some(p) = stack.proc("processor") {
        assert!(p.terminate(Duration::from_secs(25)), "processor stopped");
    }
    stack.procs.retain(|p| p.name != "processor");
    stack.restart("processor");
    replay_and_check(&mut stack).await;
    let unclean = stack.shutdown();
    assert!(unclean.is_empty(), "did not exit cleanly: {unclean:?}");
}

/// `lake-admin replay args`: its summary.
fn replay(stack: &Stack, args: &[&str]) -> Value {
    stack.lake_admin(&[&["replay"], args].concat())
}

async fn wait_rows_dlq(stack: &Stack, n: usize) {
    stack.wait_lake_rows("dlq", "failure_type", n).await;
}

async fn replay_and_check(stack: &mut Stack) {
    let s = replay(stack, &["--type", "unknown_event"]);
    assert_eq!(s["replayed"], 3, "{s}");
    let cast = [
        "--type",
        "schema_violation",
        "--reason",
        "wrong_type",
        "--fix",
        "cast:properties.revenue=number",
    ];
    let s = replay(stack, &cast);
    assert_eq!(
        (s["replayed"].clone(), s["fixed"].clone()),
        (json!(5), json!(5)),
        "{s}"
    );
    let s = replay(stack, &["--type", "naming", "--fix", "event:Signed Up"]);
    assert_eq!(
        (s["replayed"].clone(), s["fixed"].clone()),
        (json!(5), json!(5)),
        "{s}"
    );
    let s = replay(stack, &["--type", "consent"]);
    assert_eq!(s["replayed"], 0, "{s}");
    assert_eq!(s["skipped"]["no_payload"], 2, "{s}");
    // Still missing its revenue: fails again.
    let s = replay(stack, &["--reason", "missing_property"]);
    assert_eq!(s["replayed"], 3, "{s}");
    // Run again: nothing left; with --again the processor drops the duplicates.
    let s = replay(stack, &cast);
    assert_eq!(s["replayed"], 0, "{s}");
    assert_eq!(s["skipped"]["already_replayed"], 5, "{s}");
    let s = replay(stack, &[&cast[..], &["--again"]].concat());
    assert_eq!(s["replayed"], 5, "{s}");

    // Each replayed event once in the lake (21 + 3 + 5 + 5), stamped with the fixed plan.
    stack.wait_lake_rows("events", "message_id", 34).await;
    // Three letters came back, failing again: 27 + 3.
    wait_rows_dlq(stack, 30).await;
    let replayed = stack.lake_sql(
        "SELECT message_id, count(*) AS n, max(plan_version) AS v FROM events \
         WHERE regexp_matches(message_id, '^(ue|wt|nm|av-wt)') GROUP BY ALL",
    );
    assert_eq!(replayed.len(), 13, "{replayed:?}");
    assert!(
        replayed.iter().all(|r| r["n"] == 1 && r["v"] == "1.1.0"),
        "{replayed:?}"
    );
    let again = stack.lake_sql(
        "SELECT recovery_count, count(*) AS n, count(replay_of) AS r FROM dlq \
         WHERE reason = 'missing_property' GROUP BY ALL ORDER BY recovery_count",
    );
    assert_eq!(
        again,
        vec![
            json!({"recovery_count": 0, "n": 3, "r": 0}),
            json!({"recovery_count": 1, "n": 3, "r": 3})
        ]
    );
    let s = replay(stack, &["--reason", "missing_property", "--dry-run"]);
    assert_eq!(
        (s["replayed"].clone(), s["superseded"].clone()),
        (json!(3), json!(3)),
        "the newest failure of each event is what a replay takes: {s}"
    );

    // The KPIs count each replayed event once, under its fixed name.
    let want = BTreeMap::from([
        ("Exported Report".to_string(), 3.0),
        ("Signed Up".to_string(), 25.0),
        ("Upgraded Plan".to_string(), 6.0),
    ]);
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut kpis = BTreeMap::new();
    while Instant::now() < deadline {
        kpis = northstar_e2e::held_sums(stack.ports.metrics, "events", "1m", "event").await;
        if kpis == want {
            break;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert_eq!(kpis, want, "KPIs\n{}", stack.logs());
    let metrics = stack.processor_metrics().await;
    let duplicates: f64 = prom::named(&metrics, "northstar_processor_duplicates_total")
        .map(|s| s.value)
        .sum();
    assert_eq!(duplicates, 5.0, "the --again replay was deduplicated");
}
