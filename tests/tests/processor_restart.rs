//! Exactly-once KPI results through SIGKILL of the stream processor, without broker
//! transactions: state is restored from checkpoints, input replayed from the checkpointed
//! offsets, and the metrics sink keeps the newest source position per key. Afterwards the
//! window counts equal the unique events sent, per event name, exactly.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use northstar_e2e::Stack;
use serde_json::json;

const UNIQUE: usize = 6_000;
const NAMES: [&str; 5] = ["Signed Up", "Activated", "Invited", "Upgraded", "Churned"];

/// What happens to the processors while the batches are sent: (batch index, action).
type Script = &'static [(usize, &'static str)];

async fn run_and_check(script: Script) {
    let mut stack = Stack::start_core().await;
    stack
        .env
        .push(("NORTHSTAR_EMIT_INTERVAL_MS".into(), "200".into()));
    stack
        .env
        .push(("NORTHSTAR_CHECKPOINT_INTERVAL_MS".into(), "700".into()));
    stack.env.push((
        "NORTHSTAR_KAFKA__PROPERTIES__SESSION_TIMEOUT_MS".into(),
        "6000".into(),
    ));
    // The rebalance timeout of the classic group protocol is max.poll.interval.ms: a member that
    // dies in the middle of a rebalance holds the group for that long (default 5 minutes).
    stack.env.push((
        "NORTHSTAR_KAFKA__PROPERTIES__MAX_POLL_INTERVAL_MS".into(),
        "15000".into(),
    ));
    stack.start_services().await;

    let auth = northstar_e2e::write_key_auth();
    let client = reqwest::Client::new();
    let url = format!("{}/v1/batch", stack.ingest_url());
    let now = chrono::Utc::now();
    let mut expected: BTreeMap<String, f64> = BTreeMap::new();
    let mut messages = Vec::new();
    for i in 0..UNIQUE {
        let name = NAMES[i * 7 % NAMES.len()];
        *expected.entry(name.to_string()).or_default() += 1.0;
        let ts = now - chrono::Duration::milliseconds((i * 37 % 240_000) as i64);
        let m = json!({"type": "track", "event": name, "userId": format!("u{}", i % 301), "messageId": format!("x-{i}"),
            "timestamp": ts.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)});
        messages.push(m.clone());
        if i % 9 == 0 {
            messages.push(m); // a duplicate
        }
    }
    let mut membership = northstar_e2e::Membership::new(Duration::from_secs(6));
    for (b, chunk) in messages.chunks(100).enumerate() {
        let r = client
            .post(&url)
            .header("authorization", &auth)
            .json(&json!({"batch": chunk}))
            .send()
            .await;
        assert_eq!(r.expect("send").status(), 200);
        for (_, action) in script.iter().filter(|(at, _)| *at == b) {
            membership.act(&mut stack, action).await;
        }
        tokio::time::sleep(Duration::from_millis(120)).await;
    }

    let deadline = Instant::now() + Duration::from_secs(150);
    let mut got = BTreeMap::new();
    while Instant::now() < deadline {
        got = northstar_e2e::held_sums(stack.ports.metrics, "events", "1m", "event").await;
        if got == expected {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // Let any straggling update arrive, then check again: no over-count either.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let settled = northstar_e2e::held_sums(stack.ports.metrics, "events", "1m", "event").await;
    assert_eq!(
        settled,
        expected,
        "window counts after 2 SIGKILLs and a restart\n{}",
        stack.logs()
    );
    assert_eq!(got, settled);
    let log = stack
        .proc("processor")
        .map(|p| p.log_tail(400))
        .unwrap_or_default();
    assert!(
        log.contains("partition state restored from checkpoint"),
        "the last instance restored state:\n{log}"
    );
    let unclean = stack.shutdown();
    assert!(unclean.is_empty(), "did not exit cleanly: {unclean:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kpis_stay_exact_through_processor_sigkill() {
    run_and_check(&[
        (12, "kill processor"),
        (14, "start processor"),
        (25, "restart processor"),
        (40, "kill processor"),
        (42, "start processor"),
    ])
    .await;
}

/// Scale-out: a second instance joins the group and takes partitions with their state, the
/// first is killed (its partitions move to the second), comes back, and the second leaves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kpis_stay_exact_when_instances_join_die_and_leave() {
    // Each membership change waits for the previous rebalance to complete, and a killed instance
    // comes back after its session expired: Tansu 0.6.0 keeps a member that leaves in the middle
    // of a rebalance as the group leader, which stalls the group, and can leave a member that
    // joins before a dead member's expiry without an assignment (broker bugs, documented in
    // docs/operations.md). Seen here when the killed instance came back at once: the second
    // instance later left while the dead member's expiry still had a rebalance to come, and the
    // group stayed "Forming" with the departed leader for good.
    run_and_check(&[
        (8, "start second"),
        (9, "await second"),
        (20, "kill processor"),
        (30, "await session expiry"),
        (30, "start processor"),
        (31, "await first"),
        (32, "await stable group"),
        (45, "stop second"),
    ])
    .await;
}
