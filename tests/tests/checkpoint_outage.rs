//! The processor's checkpoint store goes away (issue 11, point 5), on the real broker and an S3
//! server behind a cuttable proxy: checkpoint writes fail, the processor pauses its input and
//! says so in a metric instead of exiting; killed and restarted meanwhile, it cannot restore
//! and waits the same way instead of crash-looping; once the store is back it resumes by
//! itself, checkpoints cover every record, and every event reaches the lake exactly once.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use northstar_e2e::lake::string_column;
use northstar_e2e::prom::metric_sum;
use northstar_e2e::proxy::Proxy;
use northstar_e2e::s3::S3Server;
use northstar_e2e::Stack;

fn events(from: usize, n: usize) -> Vec<serde_json::Value> {
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    (from..from + n)
        .map(|i| {
            serde_json::json!({"type": "track", "event": "Signed Up", "userId": format!("u{i}"),
                "messageId": format!("co-{i}"), "timestamp": now})
        })
        .collect()
}

/// Waits until `metric` on the processor satisfies `ok`, for up to `secs`.
async fn await_metric(stack: &Stack, name: &str, secs: u64, ok: impl Fn(f64) -> bool) -> f64 {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let v = metric_sum(stack.ports.processor, name).await;
        if ok(v) {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "{name} stayed at {v}\n{}",
            stack.logs()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Waits until `northstar_processor_checkpoint_store_unavailable` is `want`.
async fn await_unavailable(stack: &Stack, want: f64) {
    let name = "northstar_processor_checkpoint_store_unavailable";
    await_metric(stack, name, 120, |v| v == want).await;
}

async fn assert_alive(stack: &mut Stack) {
    let running = stack.proc("processor").is_some_and(|p| p.is_running());
    assert!(
        running,
        "the processor exited during the outage\n{}",
        stack.logs()
    );
    let url = format!("http://127.0.0.1:{}/healthz", stack.ports.processor);
    assert!(
        northstar_e2e::wait_for_http(&url, Duration::from_secs(5)).await,
        "the processor answers during the outage"
    );
}

fn lake_ids(stack: &Stack) -> Vec<Option<String>> {
    string_column(&stack.events_dir(), "message_id").unwrap_or_default()
}

async fn await_lake(stack: &Stack, n: usize, secs: u64) -> Vec<Option<String>> {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let ids = lake_ids(stack);
        if ids.len() >= n || Instant::now() > deadline {
            return ids;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_checkpoint_store_outage_pauses_the_processor_and_it_resumes_exactly() {
    let s3 = S3Server::start().await;
    s3.create_bucket("ckpt").await;
    let proxy = Proxy::start(([127, 0, 0, 1], s3.port).into()).await;
    let mut stack = Stack::start_core().await;
    stack.env.extend(s3.env_via(&proxy.url()));
    stack.env.extend(
        [
            ("NORTHSTAR_EMIT_INTERVAL_MS", "200"),
            ("NORTHSTAR_MAX_FILE_AGE_SECS", "1"),
            ("NORTHSTAR_CHECKPOINT_INTERVAL_MS", "1000"),
            // A killed member leaves no LeaveGroup: let the group notice within seconds.
            ("NORTHSTAR_KAFKA__PROPERTIES__SESSION_TIMEOUT_MS", "6000"),
        ]
        .map(|(k, v)| (k.to_string(), v.to_string())),
    );
    stack.service_env.push((
        "processor".into(),
        "NORTHSTAR_CHECKPOINT_ROOT".into(),
        "s3://ckpt/checkpoints".into(),
    ));
    stack.start_services().await;

    stack.send_batches(&events(0, 200), 50).await;
    assert_eq!(await_lake(&stack, 200, 120).await.len(), 200);
    await_metric(&stack, "northstar_processor_checkpoint_offset", 60, |v| {
        v >= 200.0
    })
    .await;
    assert_eq!(
        metric_sum(
            stack.ports.processor,
            "northstar_processor_checkpoint_store_unavailable"
        )
        .await,
        0.0,
        "shown as 0 while the store answers"
    );

    // The store goes away: checkpoints fail, input pauses, the processor stays up.
    proxy.down();
    stack.send_batches(&events(200, 200), 50).await;
    await_unavailable(&stack, 1.0).await;
    assert!(
        metric_sum(
            stack.ports.processor,
            "northstar_processor_checkpoint_failures_total"
        )
        .await
            > 0.0
    );
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_alive(&mut stack).await;

    // Killed and started again while the store is still away: it cannot restore, and waits.
    stack.kill9("processor");
    tokio::time::sleep(Duration::from_secs(8)).await;
    stack.restart("processor");
    await_unavailable(&stack, 1.0).await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_alive(&mut stack).await;

    // Back: it resumes by itself, checkpoints cover all 400 records, the lake is exact.
    proxy.up();
    await_unavailable(&stack, 0.0).await;
    await_metric(&stack, "northstar_processor_checkpoint_offset", 120, |v| {
        v >= 400.0
    })
    .await;
    let ids = await_lake(&stack, 400, 120).await;
    let mut seen = BTreeMap::<String, usize>::new();
    for id in ids.iter().flatten() {
        *seen.entry(id.clone()).or_default() += 1;
    }
    let dupes: Vec<_> = seen.iter().filter(|(_, &c)| c > 1).take(5).collect();
    assert!(dupes.is_empty(), "duplicates in the lake: {dupes:?}");
    let missing: Vec<String> = (0..400)
        .map(|i| format!("co-{i}"))
        .filter(|id| !seen.contains_key(id))
        .take(5)
        .collect();
    assert!(
        missing.is_empty(),
        "missing from the lake: {missing:?}\n{}",
        stack.logs()
    );
    assert_eq!(ids.len(), 400);
    stack.shutdown();
}
