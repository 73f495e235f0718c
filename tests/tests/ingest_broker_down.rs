//! The collector never answers 200 for an event the broker did not acknowledge: with the broker
//! killed it answers 503 with Retry-After and reports not-ready; after the broker comes back it
//! recovers by itself, and every event answered 200 is in Kafka.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use northstar_e2e::{kafka, Stack};
use northstar_schemas::event::EventCodec;
use northstar_schemas::wire;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_down_means_503_and_recovery_keeps_every_acknowledged_event() {
    let mut stack = Stack::start_core().await;
    stack
        .env
        .push(("NORTHSTAR_DELIVERY_TIMEOUT_MS".into(), "3000".into()));
    stack.start_ingest_ready().await;
    let ready = format!("{}/readyz", stack.ingest_url());

    let auth = northstar_e2e::write_key_auth();
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client");
    let url = format!("{}/v1/batch", stack.ingest_url());
    let mut acknowledged = HashSet::new();
    let send = |n: usize, tag: &str| {
        let batch: Vec<_> = (0..10)
            .map(|i| json!({"type": "track", "event": "E", "userId": format!("u{i}"), "messageId": format!("{tag}-{n}-{i}")}))
            .collect();
        let ids: Vec<String> = (0..10).map(|i| format!("{tag}-{n}-{i}")).collect();
        let req = client
            .post(&url)
            .header("authorization", &auth)
            .json(&json!({"batch": batch}));
        (ids, req)
    };

    let (ids, req) = send(0, "before");
    assert_eq!(req.send().await.expect("send").status(), 200);
    acknowledged.extend(ids);

    stack.kill9("tansu");
    let (_, req) = send(1, "during");
    let resp = req.send().await.expect("send");
    assert_eq!(resp.status(), 503, "broker down must not be acknowledged");
    assert!(
        resp.headers().get("retry-after").is_some(),
        "503 carries Retry-After"
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut saw_not_ready = false;
    while Instant::now() < deadline {
        if reqwest::get(&ready)
            .await
            .map(|r| r.status().as_u16())
            .unwrap_or(0)
            == 503
        {
            saw_not_ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert!(saw_not_ready, "/readyz reports the broker unreachable");

    stack.restart("tansu");
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut recovered = false;
    let mut n = 2;
    while Instant::now() < deadline {
        let (ids, req) = send(n, "after");
        n += 1;
        if let Ok(resp) = req.send().await {
            if resp.status() == 200 {
                acknowledged.extend(ids);
                recovered = true;
                break;
            }
            assert_eq!(resp.status(), 503, "only 503 while recovering");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(recovered, "ingest recovered by itself\n{}", stack.logs());

    let codec = EventCodec::new();
    let in_kafka: HashSet<String> = kafka::read_topic(&stack.brokers(), "events.raw")
        .expect("read raw")
        .iter()
        .filter_map(|r| r.payload.as_deref())
        .filter_map(|p| wire::split(p).ok())
        .filter_map(|(_, datum)| codec.decode(codec.schema(), datum).ok())
        .map(|e| e.message_id)
        .collect();
    let missing: Vec<_> = acknowledged.difference(&in_kafka).collect();
    assert!(
        missing.is_empty(),
        "acknowledged but not in Kafka: {missing:?}"
    );
}
