//! Real SDKs and clients nobody here wrote, pointed at the collector unchanged: Segment's
//! Python SDK, RudderStack's Python SDK (gzip bodies), Segment's Node.js SDK, and a backend
//! producing Avro straight to `events.raw` with Confluent's AvroSerializer against our registry.
//! Every call each SDK reports is found in `events.raw` with the fields the SDK set (its
//! messageId, timestamp, library, ids, names, properties, traits, context), and the backend's
//! records come out of the stream processor in `events.clean` like HTTP events.

use std::collections::{BTreeMap, HashMap};
use std::process::Command;
use std::time::{Duration, Instant};

use northstar_e2e::{kafka, Stack, WRITE_KEY};
use northstar_schemas::event::EventCodec;
use northstar_schemas::{wire, Event};
use serde_json::Value;

const BACKEND_EVENTS: usize = 12;

fn node_dir() -> String {
    let out = Command::new("bash")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/setup-node.sh"))
        .output()
        .expect("tests/setup-node.sh");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Every event of `topic`, decoded, by message id.
fn events_in(stack: &Stack, topic: &str) -> HashMap<String, Event> {
    let codec = EventCodec::new();
    kafka::read_topic(&stack.brokers(), topic)
        .expect("read topic")
        .into_iter()
        .filter_map(|r| {
            let (_, datum) = wire::split(r.payload.as_deref()?).ok()?;
            codec.decode_v1(datum).ok()
        })
        .map(|e| (e.message_id.clone(), e))
        .collect()
}

fn json(text: &str) -> Value {
    serde_json::from_str(text).expect("json text")
}

/// Checks one event against the message the SDK reported sending.
fn check(sdk: &str, m: &Value, e: &Event) {
    let what = format!("{sdk} {} {}", m["type"], m["messageId"]);
    let s = |k: &str| m.get(k).and_then(Value::as_str).filter(|v| !v.is_empty());
    assert_eq!(e.kind.as_str(), m["type"].as_str().expect("type"), "{what}");
    assert_eq!(e.user_id.as_deref(), s("userId"), "{what}: userId");
    assert_eq!(
        e.anonymous_id.as_deref(),
        s("anonymousId"),
        "{what}: anonymousId"
    );
    assert_eq!(e.event.as_deref(), s("event"), "{what}: event");
    assert_eq!(e.name.as_deref(), s("name"), "{what}: name");
    assert_eq!(e.group_id.as_deref(), s("groupId"), "{what}: groupId");
    assert_eq!(
        e.previous_id.as_deref(),
        s("previousId"),
        "{what}: previousId"
    );
    let props = m
        .get("properties")
        .cloned()
        .unwrap_or(Value::Object(Default::default()));
    assert_eq!(json(&e.properties), props, "{what}: properties");
    if let Some(traits) = m.get("traits") {
        assert_eq!(json(&e.traits), *traits, "{what}: traits");
    }
    let ctx = json(&e.context);
    assert_eq!(
        ctx["library"], m["context"]["library"],
        "{what}: context.library"
    );
    assert!(
        ctx["library"]["name"].is_string(),
        "{what}: the SDK names itself"
    );
    if let Some(campaign) = m["context"].get("campaign") {
        assert_eq!(ctx["campaign"], *campaign, "{what}: context.campaign");
    }
    let sent_ts = chrono::DateTime::parse_from_rfc3339(m["timestamp"].as_str().expect("timestamp"))
        .expect("SDK timestamp")
        .timestamp_micros();
    assert_eq!(
        e.original_timestamp,
        Some(sent_ts),
        "{what}: the SDK's timestamp is kept"
    );
    assert!(
        e.received_at > 0 && e.source_id == northstar_e2e::SOURCE_ID,
        "{what}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn segment_and_rudderstack_sdks_and_avro_backends_work_unchanged() {
    let mut stack = Stack::start_core().await;
    stack.start_services().await;
    let run = format!("sdk{}", std::process::id());
    let url = stack.ingest_url();

    let mut sent: BTreeMap<String, Vec<Value>> =
        serde_json::from_slice(&northstar_e2e::run_compat_script(
            "sdk_python.py",
            &[url.as_ref(), WRITE_KEY.as_ref(), run.as_ref()],
        ))
        .expect("python SDK output");
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/compat/sdk_node.mjs");
    let out = Command::new("node")
        .args([script, &url, WRITE_KEY, &run])
        .env("NORTHSTAR_NODE_DIR", node_dir())
        .output()
        .expect("node");
    assert!(
        out.status.success(),
        "node SDK: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let node: BTreeMap<String, Vec<Value>> =
        serde_json::from_slice(&out.stdout).expect("node SDK output");
    sent.extend(node);
    assert_eq!(sent.len(), 3);

    let backend: Vec<String> = serde_json::from_slice(&northstar_e2e::run_compat_script(
        "avro_backend.py",
        &[
            stack.brokers().as_ref(),
            stack.registry_url().as_ref(),
            run.as_ref(),
            BACKEND_EVENTS.to_string().as_ref(),
        ],
    ))
    .expect("backend output");

    // Every SDK message is in events.raw (the 200s were acknowledged: already there).
    let raw = events_in(&stack, "events.raw");
    for (sdk, messages) in &sent {
        assert_eq!(messages.len(), 7, "{sdk}");
        for m in messages {
            let id = m["messageId"].as_str().expect("messageId");
            let e = raw
                .get(id)
                .unwrap_or_else(|| panic!("{sdk}: {id} ({}) not in events.raw", m["type"]));
            check(sdk, m, e);
        }
    }
    for id in &backend {
        assert!(raw.contains_key(id), "backend record {id} in events.raw");
    }

    // The processor accepts the backend's records (and the SDKs') like any HTTP event.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let clean = events_in(&stack, "events.clean");
        let missing: Vec<&String> = backend
            .iter()
            .filter(|id| !clean.contains_key(*id))
            .collect();
        let sdk_missing = sent
            .values()
            .flatten()
            .filter_map(|m| m["messageId"].as_str())
            .filter(|id| !clean.contains_key(*id))
            .count();
        if missing.is_empty() && sdk_missing == 0 {
            let e = &clean[&backend[0]];
            assert_eq!(e.event.as_deref(), Some("Invoice Paid"));
            assert_eq!(e.source_id, "billing");
            assert_eq!(json(&e.properties)["currency"], "EUR");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not in events.clean: {missing:?}, {sdk_missing} SDK messages\n{}",
            stack.logs()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let dlq = kafka::read_topic(&stack.brokers(), "events.dlq").expect("dlq");
    assert!(
        dlq.is_empty(),
        "nothing rejected: {} dead letters",
        dlq.len()
    );
    let unclean = stack.shutdown();
    assert!(unclean.is_empty(), "{unclean:?}");
}
