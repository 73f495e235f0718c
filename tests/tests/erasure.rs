//! Erasure that reaches every copy. A person browses anonymously on a device, signs up
//! (`identify` joins the device's anonymous id to her user id), is renamed by an `alias`, has a
//! dead-lettered event, and shares the device with someone else. `lake-admin erase --user-id`
//! follows the identity links: every row of hers — the anonymous ones, the identify, the alias,
//! the renamed id's, the dead letter — leaves the lake (DuckDB reads what is left), the other
//! person's rows on the shared device stay, and the audit record names her only by keyed hashes.
//! She is added to the suppression list first: the collector refuses her events from then on
//! (403, or the rest of a batch accepted with the count refused), and a replay leaves a dead
//! letter of hers where it is. The event topics were created with their retention.

use std::process::Command;
use std::time::{Duration, Instant};

use northstar_e2e::{bin, kafka, lake, prom, Stack, TEST_PII_KEY};
use northstar_schemas::event::EventCodec;
use northstar_schemas::wire;
use serde_json::{json, Value};

const PLAN: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/tracking-plan.yaml");

/// A "Signed Up", or with `{"plan": "pro"}` an "Upgraded Plan" without its required revenue
/// (quarantined by the plan).
fn track(id: &str, user: Option<&str>, anon: Option<&str>, props: Value) -> Value {
    let name = if props == json!({"plan": "pro"}) {
        "Upgraded Plan"
    } else {
        "Signed Up"
    };
    json!({"type": "track", "event": name, "messageId": id, "userId": user,
        "anonymousId": anon, "properties": props})
}

fn traffic() -> Vec<Value> {
    let free = || json!({"plan": "free"});
    let mut out = Vec::new();
    for i in 0..3 {
        out.push(track(&format!("before-{i}"), None, Some("anon-j1"), free()));
    }
    out.push(
        json!({"type": "identify", "messageId": "identify-jane", "userId": "jane",
        "anonymousId": "anon-j1", "traits": {"plan": "free"}}),
    );
    for i in 0..4 {
        out.push(track(
            &format!("jane-{i}"),
            Some("jane"),
            Some("anon-j1"),
            free(),
        ));
    }
    out.push(
        json!({"type": "alias", "messageId": "alias-jane", "userId": "jane-2",
        "previousId": "jane"}),
    );
    for i in 0..2 {
        out.push(track(&format!("jane2-{i}"), Some("jane-2"), None, free()));
    }
    // Someone else signed in on the same device.
    for i in 0..2 {
        out.push(track(
            &format!("bob-{i}"),
            Some("bob"),
            Some("anon-j1"),
            free(),
        ));
    }
    // Hers, quarantined (no revenue).
    out.push(track(
        "jane-bad",
        Some("jane"),
        None,
        json!({"plan": "pro"}),
    ));
    for i in 0..10 {
        out.push(track(
            &format!("carl-{i}"),
            Some(&format!("carl-{i}")),
            None,
            free(),
        ));
    }
    out
}

async fn post(stack: &Stack, body: Value) -> (u16, Value) {
    let r = reqwest::Client::new()
        .post(format!("{}/v1/batch", stack.ingest_url()))
        .header("Authorization", northstar_e2e::write_key_auth())
        .json(&json!({ "batch": body }))
        .send()
        .await
        .expect("post");
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

async fn ingest_metrics(stack: &Stack) -> String {
    let url = stack.ingest_metrics_url();
    match reqwest::get(url).await {
        Ok(r) => r.text().await.unwrap_or_default(),
        Err(_) => String::new(),
    }
}

async fn start(stack: &mut Stack) {
    stack
        .env
        .push(("NORTHSTAR_PII_KEY".into(), TEST_PII_KEY.into()));
    stack
        .env
        .push(("NORTHSTAR_EMIT_INTERVAL_MS".into(), "200".into()));
    stack
        .service_env
        .push(("processor".into(), "NORTHSTAR_PLAN".into(), PLAN.into()));
    stack.service_env.push((
        "lake".into(),
        "NORTHSTAR_MAX_FILE_AGE_SECS".into(),
        "1".into(),
    ));
    stack.start_services().await;
}

/// Erases jane and checks the lake, the audit record and the summary.
async fn erase_and_check_the_lake(stack: &Stack) {
    let s = stack.lake_admin(&["erase", "--user-id", "jane"]);
    assert_eq!(s["rows_removed"], 12, "{s}");
    assert_eq!(s["subjects_suppressed"], 3, "jane, jane-2, anon-j1: {s}");
    let linked: Vec<bool> = s["subjects"]
        .as_array()
        .expect("subjects")
        .iter()
        .map(|v| v["linked"].as_bool().unwrap_or(false))
        .collect();
    assert_eq!(linked, [false, true, true], "{s}");
    let left = stack.lake_sql(
        "SELECT coalesce(user_id, '-') AS u, coalesce(anonymous_id, '-') AS a, count(*) AS n \
         FROM events GROUP BY ALL ORDER BY ALL",
    );
    let mut want = vec![json!({"u": "bob", "a": "anon-j1", "n": 2})];
    want.extend((0..10).map(|i| json!({"u": format!("carl-{i}"), "a": "-", "n": 1})));
    want.sort_by_key(|v| v["u"].as_str().map(str::to_string));
    assert_eq!(left, want, "only bob's and carl's rows are left");
    let dlq = stack.lake_sql("SELECT count(*) AS n FROM dlq");
    assert_eq!(dlq[0]["n"], 0, "her dead letter is gone too");
    let audit_dir = stack.lake_dir().join("_audit/erasure");
    let audits: Vec<String> = lake::files_below(&audit_dir)
        .iter()
        .map(|f| std::fs::read_to_string(f).expect("audit"))
        .collect();
    assert_eq!(audits.len(), 1);
    for needle in ["jane", "anon-j1"] {
        assert!(!audits[0].contains(needle), "{needle} in the audit record");
    }
    assert!(audits[0].contains("hmac-sha256:v2:"), "{}", audits[0]);
}

/// The collector refuses her from then on: alone (403), or in a batch (the rest accepted).
async fn check_the_collector_refuses_her(stack: &Stack) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        let m = ingest_metrics(stack).await;
        let n: f64 = prom::named(&m, "northstar_ingest_suppressed_subjects")
            .map(|s| s.value)
            .sum();
        if n >= 3.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let free = || json!({"plan": "free"});
    let (status, body) = post(stack, json!([track("late-1", Some("jane"), None, free())])).await;
    assert_eq!(
        (status, body["code"].clone()),
        (403, json!("suppressed")),
        "{body}"
    );
    let batch = json!([
        track("late-2", Some("jane-2"), None, free()),
        track("dave-1", Some("dave"), None, free())
    ]);
    let (status, body) = post(stack, batch).await;
    assert_eq!(
        (status, body["suppressed"].clone()),
        (200, json!(1)),
        "{body}"
    );
    let (status, _) = post(
        stack,
        json!([track("late-3", None, Some("anon-j1"), free())]),
    )
    .await;
    assert_eq!(status, 403, "the linked device is refused too");
    let m = ingest_metrics(stack).await;
    let refused: f64 = prom::named(&m, "northstar_ingest_events_suppressed_total")
        .map(|s| s.value)
        .sum();
    assert_eq!(refused, 3.0);
}

/// A dead letter of hers that reached the lake after the erasure (a backend service writing to
/// `events.raw` directly) is not replayed.
async fn check_a_replay_leaves_her_letter(stack: &Stack) {
    let mut e = northstar_schemas::synthetic::track(
        "late-bad",
        "jane-2",
        "Upgraded Plan",
        0,
        "iOS",
        "pro",
        0.0,
    );
    let now = chrono::Utc::now().timestamp_micros();
    (e.timestamp, e.received_at, e.properties) = (now, now, r#"{"plan":"pro"}"#.into());
    let payload = wire::frame(1, &EventCodec::new().encode(&e).expect("encode"));
    kafka::produce_raw(&stack.brokers(), "events.raw", "jane-2", &payload)
        .await
        .expect("produce");
    stack.wait_lake_rows("dlq", "failure_type", 1).await;
    let s = stack.lake_admin(&["replay"]);
    assert_eq!(
        (s["replayed"].clone(), s["skipped"]["suppressed"].clone()),
        (json!(0), json!(1)),
        "{s}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_erased_person_is_gone_from_every_table_and_refused_from_then_on() {
    let mut stack = Stack::start_core().await;
    start(&mut stack).await;
    let (status, body) = post(&stack, Value::Array(traffic())).await;
    assert_eq!(status, 200, "{body}");
    stack.wait_lake_rows("events", "message_id", 23).await;
    stack.wait_lake_rows("dlq", "failure_type", 1).await;
    erase_and_check_the_lake(&stack).await;
    check_the_collector_refuses_her(&stack).await;
    // dave's event (the rest of the mixed batch) reached the lake; nothing of hers did.
    stack.wait_lake_rows("events", "message_id", 13).await;
    check_a_replay_leaves_her_letter(&stack).await;

    // The event topics were created with their retention (7 days by default).
    let out = Command::new(bin("northstar-schemas"))
        .args([
            "create-topics",
            "--brokers",
            &stack.brokers(),
            "--raw-retention-hours",
            "24",
        ])
        .envs(northstar_e2e::ONE_BROKER)
        .env("RUST_LOG", "warn")
        .output()
        .expect("create-topics");
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        said.contains("topic events.raw exists with retention.ms=604800000, not 86400000"),
        "{said}"
    );
    let unclean = stack.shutdown();
    assert!(unclean.is_empty(), "did not exit cleanly: {unclean:?}");
}
