//! Kill -9 of the stream processor and of the lake sink mid-stream neither loses nor duplicates:
//! offsets are committed only after outputs are acknowledged / files are durable, a restored
//! processor's re-emitted records are skipped by the lake sink (source positions), and an
//! interrupted lake flush is repeated with the same file names. Every accepted event is in the
//! lake exactly once.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use northstar_e2e::{lake, Stack};
use serde_json::json;

const EVENTS: usize = 3_000;
const BATCH: usize = 100;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_of_processor_and_lake_sink_loses_no_event() {
    let mut stack = Stack::start_core().await;
    stack
        .env
        .push(("NORTHSTAR_MAX_FILE_AGE_SECS".into(), "1".into()));
    stack
        .env
        .push(("NORTHSTAR_EMIT_INTERVAL_MS".into(), "300".into()));
    // A killed member leaves no LeaveGroup: let the group notice within seconds.
    stack.env.push((
        "NORTHSTAR_KAFKA__PROPERTIES__SESSION_TIMEOUT_MS".into(),
        "6000".into(),
    ));
    stack.start_services().await;

    let auth = northstar_e2e::write_key_auth();
    let client = reqwest::Client::new();
    let url = format!("{}/v1/batch", stack.ingest_url());
    let mut sent = HashSet::new();
    for b in 0..EVENTS / BATCH {
        let batch: Vec<_> = (0..BATCH)
            .map(|i| {
                let id = format!("crash-{b}-{i}");
                sent.insert(id.clone());
                json!({"type": "track", "event": "Crash Test", "userId": format!("u{}", i % 37), "messageId": id})
            })
            .collect();
        let resp = client
            .post(&url)
            .header("authorization", &auth)
            .json(&json!({"batch": batch}))
            .send()
            .await;
        assert_eq!(resp.expect("send").status(), 200);
        match b {
            8 => stack.kill9("processor"),
            10 => stack.restart("processor"),
            16 => stack.kill9("lake"),
            17 => stack.restart("lake"),
            22 => {
                stack.kill9("processor");
                stack.kill9("lake");
            }
            24 => {
                stack.restart("processor");
                stack.restart("lake");
            }
            _ => {}
        }
        tokio::time::sleep(Duration::from_millis(150)).await;
    }

    let deadline = Instant::now() + Duration::from_secs(150);
    let mut in_lake: HashSet<String> = HashSet::new();
    while Instant::now() < deadline {
        in_lake = lake::string_column(&stack.events_dir(), "message_id")
            .unwrap_or_default()
            .into_iter()
            .flatten()
            .collect();
        if in_lake.is_superset(&sent) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // Anything still in flight (a duplicate would be a late extra file) lands within seconds.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let rows: Vec<String> = lake::string_column(&stack.events_dir(), "message_id")
        .expect("lake readable")
        .into_iter()
        .flatten()
        .collect();
    let missing: Vec<_> = sent.difference(&in_lake).take(10).collect();
    assert!(
        missing.is_empty(),
        "{} accepted events never reached the lake, e.g. {missing:?}\n{}",
        sent.len() - in_lake.intersection(&sent).count(),
        stack.logs()
    );
    assert_eq!(in_lake, sent, "the lake holds only events that were sent");
    assert_eq!(
        rows.len(),
        sent.len(),
        "every event is in the lake exactly once ({} rows for {} events)\n{}",
        rows.len(),
        sent.len(),
        stack.logs()
    );
    let unclean = stack.shutdown();
    assert!(
        unclean.is_empty(),
        "did not exit cleanly on SIGTERM: {unclean:?}"
    );
}
