//! The processor with the example tracking plan enforced (default policies: unknown events and
//! properties flagged, other violations quarantined) and a stricter candidate plan in shadow
//! mode. Events violating each kind of rule arrive through HTTP and from a direct Avro producer
//! among valid traffic: each quarantined event is one dead letter with its violation as reason,
//! each flagged one a clean record marked with its flags, every clean record carries the plan's
//! id and version (so does its lake row, with the flags), the KPIs count exactly the valid and flagged events, and the metrics count
//! every outcome and violation — the shadow plan's included, without acting on them. A PII
//! property (`invitee_email`, action `hash`) reaches no output in the clear: the clean topic,
//! the lake and the dead letters hold its keyed hash. Events of people who refused the event's
//! consent purpose reach no output and are counted.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use northstar_e2e::{kafka, lake, prom, Stack};
use northstar_schemas::event::EventCodec;
use northstar_schemas::wire;
use serde_json::{json, Value};

const PLAN: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/tracking-plan.yaml");

fn track(i: usize, name: &str, properties: Value) -> Value {
    json!({"type": "track", "event": name, "userId": format!("u{}", i % 37),
        "messageId": format!("plan-{i}"), "properties": properties,
        "context": {"os": {"name": "iOS"}}})
}

/// The HTTP traffic: (event, expected outcome, dead-letter reason or flags).
fn traffic() -> Vec<(Value, &'static str, &'static str)> {
    let mut out = Vec::new();
    let mut i = 0;
    let mut add = |n: usize, name: &str, props: Value, outcome, why| {
        for _ in 0..n {
            i += 1;
            out.push((track(i, name, props.clone()), outcome, why));
        }
    };
    add(120, "Signed Up", json!({"plan": "free"}), "passed", "");
    add(30, "Signed Up", json!({"plan": "team"}), "passed", ""); // the shadow plan drops "team"
    add(
        40,
        "Upgraded Plan",
        json!({"plan": "pro", "revenue": 19.5}),
        "passed",
        "",
    );
    add(
        7,
        "Signed Up",
        json!({"plan": "gold"}),
        "quarantined",
        "not_in_enum",
    );
    add(
        5,
        "Upgraded Plan",
        json!({"plan": "pro"}),
        "quarantined",
        "missing_property",
    );
    add(
        4,
        "Upgraded Plan",
        json!({"plan": "pro", "revenue": "12,50"}),
        "quarantined",
        "wrong_type",
    );
    add(
        6,
        "Signed Up",
        json!({"plan": "free", "referrer": "ad"}),
        "flagged",
        "unknown_property:properties.referrer",
    );
    // A typo of a planned name breaks the naming rule: quarantined; a well-named unplanned
    // event is only flagged.
    add(
        9,
        "signed_up",
        json!({"plan": "free"}),
        "quarantined",
        "invalid_name",
    );
    add(
        8,
        "Exported Report",
        json!({"plan": "free"}),
        "flagged",
        "unknown_event:event",
    );
    // Personal data: hashed before the clean topic, the lake and the dead letter.
    let email = |who: &str| json!(format!("{who}.secret@example.com"));
    add(
        3,
        "Invited Teammate",
        json!({"plan": "pro", "invitee_email": email("bob")}),
        "passed",
        "",
    );
    add(
        2,
        "Invited Teammate",
        json!({"plan": "gold", "invitee_email": email("eve")}),
        "quarantined",
        "not_in_enum",
    );
    // People who refused analytics: no output at all, even for an invalid event.
    for plan in ["free", "free", "free", "gold"] {
        let mut e = track(1000 + out.len(), "Signed Up", json!({ "plan": plan }));
        e["context"]["consent"] =
            json!({"categoryPreferences": {"analytics": false, "marketing": true}});
        out.push((e, "withheld", ""));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_plan_decides_what_is_quarantined_flagged_or_passed_and_counts_it() {
    let mut stack = Stack::start_core().await;
    let shadow = stack.dir.path().join("candidate-plan.yaml");
    let plan = std::fs::read_to_string(PLAN).expect("plan");
    let candidate = plan
        .replace("version: 1.0.0", "version: 2.0.0")
        .replace("enum: [free, pro, team]", "enum: [free, pro]");
    std::fs::write(&shadow, candidate).expect("write the candidate");
    stack
        .env
        .push(("NORTHSTAR_EMIT_INTERVAL_MS".into(), "200".into()));
    // A key of version 2, 32 bytes or more, base64.
    let key = northstar_e2e::TEST_PII_KEY.to_string();
    for (k, v) in [
        ("NORTHSTAR_PLAN", PLAN.to_string()),
        ("NORTHSTAR_SHADOW_PLAN", shadow.display().to_string()),
        ("NORTHSTAR_PII_KEY", key),
    ] {
        stack.service_env.push(("processor".into(), k.into(), v));
    }
    stack.service_env.push((
        "lake".into(),
        "NORTHSTAR_MAX_FILE_AGE_SECS".into(),
        "2".into(),
    ));
    stack.start_services().await;
    let traffic = traffic();
    let events: Vec<Value> = traffic.iter().map(|(e, _, _)| e.clone()).collect();
    stack.send_batches(&events, 50).await;

    // A backend service writes Avro straight to events.raw: one valid, one with a string revenue.
    let codec = EventCodec::new();
    for (id, props, _outcome) in [
        ("avro-ok", r#"{"plan":"pro","revenue":49}"#, "passed"),
        (
            "avro-bad",
            r#"{"plan":"pro","revenue":"49"}"#,
            "quarantined",
        ),
    ] {
        let mut e = northstar_schemas::synthetic::track(
            id,
            "backend-user",
            "Upgraded Plan",
            0,
            "iOS",
            "pro",
            0.0,
        );
        let now = chrono::Utc::now().timestamp_micros();
        (e.timestamp, e.received_at, e.properties, e.source_id) =
            (now, now, props.into(), "billing".into());
        let payload = wire::frame(1, &codec.encode(&e).expect("encode"));
        kafka::produce_raw(&stack.brokers(), "events.raw", "backend-user", &payload)
            .await
            .expect("produce");
    }

    // Expected: per outcome, per dead-letter reason, per flags, per counted event name.
    // Every outcome is a series from the start ("allowed" and "anonymised" stay 0 under the
    // default policies).
    let mut outcomes: BTreeMap<&str, f64> = BTreeMap::from([
        ("passed", 1.0),
        ("quarantined", 1.0),
        ("allowed", 0.0),
        ("anonymised", 0.0),
    ]);
    let mut reasons: BTreeMap<String, usize> = BTreeMap::from([("wrong_type".to_string(), 1)]);
    let mut flags: BTreeMap<String, usize> = BTreeMap::new();
    let mut counted: BTreeMap<String, f64> = BTreeMap::from([("Upgraded Plan".to_string(), 1.0)]);
    for (e, outcome, why) in &traffic {
        *outcomes.entry(outcome).or_default() += 1.0;
        match *outcome {
            "quarantined" => *reasons.entry(why.to_string()).or_default() += 1,
            "withheld" => *reasons.entry("consent_not_given".into()).or_default() += 1,
            "flagged" => *flags.entry(why.to_string()).or_default() += 1,
            _ => {}
        }
        if !matches!(*outcome, "quarantined" | "withheld") {
            *counted
                .entry(e["event"].as_str().unwrap_or_default().to_string())
                .or_default() += 1.0;
        }
    }

    let deadline = Instant::now() + Duration::from_secs(90);
    while Instant::now() < deadline
        && northstar_e2e::held_sums(stack.ports.metrics, "events", "1m", "event").await != counted
    {
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let kpis = northstar_e2e::held_sums(stack.ports.metrics, "events", "1m", "event").await;
    assert_eq!(
        kpis,
        counted,
        "KPIs count the passed and flagged events only\n{}",
        stack.logs()
    );

    // Every record processed (the quarantined ones do not show in the KPIs), then read the DLQ.
    let total = (traffic.len() + 2) as f64;
    // One dead letter per quarantined event, and an accounting letter per withheld one.
    let letters = (outcomes["quarantined"] + outcomes["withheld"]) as usize;
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut dead = Vec::new();
    while Instant::now() < deadline && dead.len() < letters {
        tokio::time::sleep(Duration::from_millis(300)).await;
        dead = kafka::read_topic(&stack.brokers(), "events.dlq").expect("read the dlq");
    }
    let metrics = stack.processor_metrics().await;
    let checked: f64 = prom::sum_by(&metrics, "northstar_processor_plan_events_total", "outcome")
        .values()
        .sum();
    assert_eq!(checked, total, "every event checked once");
    let mut dead_reasons: BTreeMap<String, usize> = BTreeMap::new();
    for r in &dead {
        *dead_reasons
            .entry(
                r.headers
                    .get("northstar.dlq.reason")
                    .cloned()
                    .unwrap_or_default(),
            )
            .or_default() += 1;
        let detail = r
            .headers
            .get("northstar.dlq.detail")
            .cloned()
            .unwrap_or_default();
        if detail.starts_with("context.consent.categoryPreferences.analytics: consent_not_given") {
            assert!(
                r.payload.is_none() && r.key.is_none(),
                "a consent letter holds nothing of the event"
            );
            continue;
        }
        assert!(
            (detail.contains("properties.") || detail.starts_with("event: invalid_name"))
                && detail.contains("expected"),
            "{detail}"
        );
    }
    assert_eq!(
        dead_reasons, reasons,
        "one dead letter per quarantined or withheld event, by reason"
    );
    let leaked = |records: &[kafka::Record]| {
        records
            .iter()
            .filter(|r| {
                r.payload
                    .as_deref()
                    .is_some_and(|p| String::from_utf8_lossy(p).contains(".secret@"))
            })
            .count()
    };
    assert_eq!(leaked(&dead), 0, "no e-mail address in a dead letter");

    let clean = kafka::read_topic(&stack.brokers(), "events.clean").expect("read clean");
    assert_eq!(clean.len() as f64, outcomes["passed"] + outcomes["flagged"]);
    assert!(clean.iter().all(
        |r| r.headers.get("northstar.plan").map(String::as_str) == Some("northstar-demo@1.0.0")
    ));
    let mut clean_flags: BTreeMap<String, usize> = BTreeMap::new();
    for f in clean
        .iter()
        .filter_map(|r| r.headers.get("northstar.plan.flags"))
    {
        *clean_flags.entry(f.clone()).or_default() += 1;
    }
    assert_eq!(clean_flags, flags, "flagged records are marked");
    assert_eq!(leaked(&clean), 0, "no e-mail address in the clean topic");
    let hashed = clean
        .iter()
        .filter(|r| {
            r.payload
                .as_deref()
                .is_some_and(|p| String::from_utf8_lossy(p).contains("hmac-sha256:v2:"))
        })
        .count();
    assert_eq!(
        hashed, 3,
        "the three addresses are keyed hashes (key version 2)"
    );

    let metrics = stack.processor_metrics().await;
    assert_eq!(
        prom::sum_by(&metrics, "northstar_processor_plan_events_total", "outcome"),
        outcomes.iter().map(|(k, v)| (k.to_string(), *v)).collect()
    );
    let by_violation = prom::sum_by(
        &metrics,
        "northstar_processor_plan_violations_total",
        "violation",
    );
    assert_eq!(
        by_violation.get("not_in_enum"),
        Some(&9.0),
        "{by_violation:?}"
    );
    assert_eq!(
        by_violation.get("wrong_type"),
        Some(&5.0),
        "{by_violation:?}"
    );
    let by_event = prom::sum_by(
        &metrics,
        "northstar_processor_plan_violations_total",
        "event",
    );
    assert_eq!(
        by_event.get("unplanned"),
        Some(&17.0),
        "the unknown events' names are not labels: {by_event:?}"
    );
    let shadow = prom::sum_by(
        &metrics,
        "northstar_processor_plan_shadow_events_total",
        "would",
    );
    assert_eq!(
        shadow.get("quarantined"),
        Some(&(outcomes["quarantined"] + 30.0)),
        "the candidate would also quarantine \"team\": {shadow:?}"
    );

    // The lake's rows say which plan checked them and what it flagged.
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut versions = Vec::new();
    while Instant::now() < deadline && versions.len() < clean.len() {
        tokio::time::sleep(Duration::from_millis(500)).await;
        versions = lake::string_column(&stack.events_dir(), "plan_version").unwrap_or_default();
    }
    assert_eq!(
        versions.len(),
        clean.len(),
        "every clean record in the lake\n{}",
        stack.logs()
    );
    assert!(
        versions.iter().all(|v| v.as_deref() == Some("1.0.0")),
        "{versions:?}"
    );
    let ids = lake::string_column(&stack.events_dir(), "plan_id").expect("plan_id");
    assert!(ids.iter().all(|v| v.as_deref() == Some("northstar-demo")));
    let lake_flags = lake::string_column(&stack.events_dir(), "plan_flags").expect("plan_flags");
    assert_eq!(
        lake_flags.iter().flatten().count(),
        flags.values().sum::<usize>(),
        "flagged rows are marked in the lake"
    );
    let props = lake::string_column(&stack.events_dir(), "properties").expect("properties");
    assert!(
        props.iter().flatten().all(|p| !p.contains(".secret@")),
        "no e-mail address in the lake"
    );
    let metrics = stack.processor_metrics().await;
    let hashed: f64 = prom::named(&metrics, "northstar_processor_pii_hashed_total")
        .map(|s| s.value)
        .sum();
    assert_eq!(
        hashed, 5.0,
        "three passed and two quarantined addresses hashed"
    );
    let withheld = prom::sum_by(
        &metrics,
        "northstar_processor_consent_withheld_total",
        "purpose",
    );
    assert_eq!(withheld.get("analytics"), Some(&4.0), "{withheld:?}");
    let unclean = stack.shutdown();
    assert!(unclean.is_empty(), "did not exit cleanly: {unclean:?}");
}

/// Segment's Python SDK sending the consent context, against a processor enforcing the example
/// plan with `plan_policies.consent_refused = policy`: the message ids it sent by group
/// (granted, refused, unsaid), the clean records and dead letters, the processor's metrics.
async fn consent_run(
    policy: &str,
) -> (
    BTreeMap<String, Vec<String>>,
    Vec<northstar_schemas::Event>,
    Vec<kafka::Record>,
    String,
) {
    let mut stack = Stack::start_core().await;
    for (k, v) in [
        ("NORTHSTAR_PLAN", PLAN),
        ("NORTHSTAR_PII_KEY", northstar_e2e::TEST_PII_KEY),
        ("NORTHSTAR_PLAN_POLICIES__CONSENT_REFUSED", policy),
    ] {
        stack
            .service_env
            .push(("processor".into(), k.into(), v.into()));
    }
    stack.start_services().await;
    let url = stack.ingest_url();
    let sent: BTreeMap<String, Vec<String>> =
        serde_json::from_slice(&northstar_e2e::run_compat_script(
            "sdk_consent.py",
            &[
                url.as_ref(),
                northstar_e2e::WRITE_KEY.as_ref(),
                policy.as_ref(),
            ],
        ))
        .expect("SDK output");
    let (want_clean, want_dead) = if policy == "anonymise" {
        (15, 0)
    } else {
        (10, 5)
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    let (mut clean, mut dead) = (Vec::new(), Vec::new());
    while Instant::now() < deadline && (clean.len() < want_clean || dead.len() < want_dead) {
        tokio::time::sleep(Duration::from_millis(300)).await;
        clean = kafka::read_topic(&stack.brokers(), "events.clean").expect("clean");
        dead = kafka::read_topic(&stack.brokers(), "events.dlq").expect("dlq");
    }
    let codec = EventCodec::new();
    let events = clean
        .iter()
        .filter_map(|r| {
            let (_, datum) = wire::split(r.payload.as_deref()?).ok()?;
            codec.decode_v1(datum).ok()
        })
        .collect();
    let metrics = stack.processor_metrics().await;
    let unclean = stack.shutdown();
    assert!(unclean.is_empty(), "did not exit cleanly: {unclean:?}");
    (sent, events, dead, metrics)
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

/// Refused events reach neither the clean topic nor the KPIs and leave only an accounting dead
/// letter (no key, no bytes); granted ones and those without consent information (the plan's
/// default: granted) pass.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn segments_sdk_consent_context_is_honoured() {
    let (sent, clean, dead, metrics) = consent_run("withhold").await;
    let want = sorted(
        [&sent["granted"], &sent["unsaid"]]
            .into_iter()
            .flatten()
            .cloned()
            .collect(),
    );
    assert_eq!(
        sorted(clean.iter().map(|e| e.message_id.clone()).collect()),
        want,
        "granted and unsaid pass"
    );
    let refused: Vec<String> = dead
        .iter()
        .map(|r| {
            assert!(
                r.key.is_none() && r.payload.is_none(),
                "nothing of the event kept"
            );
            let f: Value = serde_json::from_str(&r.headers["northstar.failure"]).expect("failure");
            assert_eq!(f["type"], "consent");
            assert!(f["event"].get("user_id").is_none(), "{f}");
            f["event"]["message_id"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        })
        .collect();
    assert_eq!(
        sorted(refused),
        sorted(sent["refused"].clone()),
        "one letter per refused event"
    );
    let withheld = prom::sum_by(
        &metrics,
        "northstar_processor_consent_withheld_total",
        "purpose",
    );
    assert_eq!(withheld.get("analytics"), Some(&5.0), "{withheld:?}");
}

/// With `consent_refused = anonymise`, refused events are kept — counted, in the clean topic —
/// without anything that tells who it was: the anonymous id `anonymous`, no user id, no trait,
/// no undeclared context (the SDK's library, the IP), flagged in the plan header.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_consent_can_be_anonymised_instead() {
    let (sent, clean, dead, metrics) = consent_run("anonymise").await;
    assert!(dead.is_empty(), "no dead letter");
    assert_eq!(clean.len(), 15, "every event kept");
    for e in clean
        .iter()
        .filter(|e| sent["refused"].contains(&e.message_id))
    {
        assert_eq!(
            (e.user_id.as_deref(), e.anonymous_id.as_deref()),
            (None, Some("anonymous")),
            "{e:?}"
        );
        let ctx: Value = serde_json::from_str(&e.context).expect("context");
        assert!(
            ctx.get("ip").is_none() && ctx.get("consent").is_none(),
            "{ctx}"
        );
        assert_eq!(e.properties, r#"{"plan":"free"}"#);
    }
    let kept = clean
        .iter()
        .filter(|e| e.anonymous_id.as_deref() == Some("anonymous"))
        .count();
    assert_eq!(kept, 5);
    let anonymised = prom::sum_by(
        &metrics,
        "northstar_processor_consent_anonymised_total",
        "purpose",
    );
    assert_eq!(anonymised.get("analytics"), Some(&5.0), "{anonymised:?}");
}

/// The lake types a planned property by the plan, not by a vote over a file's values: with
/// violations only flagged, a file whose revenues are all text (`"12,50"`) and a later one with
/// numbers both have a DOUBLE `prop_revenue` (DuckDB's `parquet_schema`), the text values kept
/// in the `properties` JSON and counted as type conflicts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lake_columns_have_the_plans_types_in_every_file() {
    let mut stack = Stack::start_core().await;
    for (svc, k, v) in [
        ("processor", "NORTHSTAR_PLAN", PLAN),
        (
            "processor",
            "NORTHSTAR_PII_KEY",
            northstar_e2e::TEST_PII_KEY,
        ),
        ("processor", "NORTHSTAR_PLAN_POLICIES__VIOLATION", "flag"),
        ("lake", "NORTHSTAR_PLAN", PLAN),
        ("lake", "NORTHSTAR_MAX_FILE_AGE_SECS", "1"),
    ] {
        stack.service_env.push((svc.into(), k.into(), v.into()));
    }
    stack.start_services().await;
    for (wave, revenue) in [(0, json!("12,50")), (1, json!(19.5))] {
        let events: Vec<Value> = (0..3)
            .map(|i| {
                track(
                    wave * 10 + i,
                    "Upgraded Plan",
                    json!({"plan": "pro", "revenue": revenue}),
                )
            })
            .collect();
        stack.send_batches(&events, 10).await;
        // One file per wave.
        stack
            .wait_lake_rows("events", "message_id", 3 * (wave + 1))
            .await;
    }
    let types = stack.lake_sql(&format!(
        "SELECT type, count(DISTINCT file_name) AS files \
         FROM parquet_schema('{}/events/**/*.parquet') WHERE name = 'prop_revenue' GROUP BY ALL",
        stack.lake_dir().display()
    ));
    assert_eq!(types.len(), 1, "one column type in every file: {types:?}");
    assert_eq!(types[0]["type"], "DOUBLE", "{types:?}");
    assert!(types[0]["files"].as_u64() >= Some(2), "{types:?}");
    let kept = stack.lake_sql(
        "SELECT count(*) AS n FROM events WHERE prop_revenue IS NULL \
         AND json_extract_string(properties, '$.revenue') = '12,50'",
    );
    assert_eq!(kept[0]["n"], 3, "the text values stay in the JSON");
    let unclean = stack.shutdown();
    assert!(unclean.is_empty(), "did not exit cleanly: {unclean:?}");
}
