//! No silent stall: after an unclean stop of the broker and the consumers together (as a user
//! stopping the local stack with SIGKILL and starting it again), Tansu 0.6.0 forms the groups
//! with no assignment for the new members (docs/operations.md). The processor and the lake sink
//! notice that they hold nothing while input waits that nobody consumes, report not ready,
//! leave and rejoin their groups by themselves, and the events sent meanwhile reach the KPIs
//! and the lake exactly once.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use northstar_e2e::{lake, signed_up, Stack};

async fn status(url: &str) -> u16 {
    match reqwest::get(url).await {
        Ok(r) => r.status().as_u16(),
        Err(_) => 0,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consumers_left_without_partitions_rejoin_by_themselves() {
    let mut stack = Stack::start_core().await;
    for (k, v) in [
        ("NORTHSTAR_EMIT_INTERVAL_MS", "200"),
        // The default session timeout (45 s): the new members join while the killed ones'
        // sessions are still open, which is what leaves Tansu's groups without assignment.
        ("NORTHSTAR_KAFKA__PROPERTIES__MAX_POLL_INTERVAL_MS", "60000"),
        ("NORTHSTAR_KAFKA__STALL_GRACE_SECS", "3"),
        ("NORTHSTAR_KAFKA__REJOIN_AFTER_SECS", "20"),
        ("NORTHSTAR_MAX_FILE_AGE_SECS", "2"),
    ] {
        stack.env.push((k.into(), v.into()));
    }
    stack.start_services().await;
    stack.send_batches(&signed_up("stall", 0, 300), 100).await;
    assert!(
        northstar_e2e::await_assigned(stack.ports.processor).await,
        "{}",
        stack.logs()
    );
    tokio::time::sleep(Duration::from_secs(3)).await;

    // The unclean stop: consumers and broker killed together, then started again at once.
    for name in ["processor", "lake", "tansu"] {
        stack.kill9(name);
    }
    stack.restart("tansu");
    stack.restart("processor");
    stack.restart("lake");
    stack.send_batches(&signed_up("stall", 300, 300), 100).await;

    let (proc_ready, lake_ready) = (
        format!("http://127.0.0.1:{}/readyz", stack.ports.processor),
        format!("http://127.0.0.1:{}/readyz", stack.ports.lake),
    );
    let mut seen_not_ready = BTreeMap::from([("processor", false), ("lake", false)]);
    let expected = BTreeMap::from([("Signed Up".to_string(), 600.0)]);
    let deadline = Instant::now() + Duration::from_secs(240);
    let mut rows = 0;
    let mut sums = BTreeMap::new();
    while Instant::now() < deadline {
        for (name, url) in [("processor", &proc_ready), ("lake", &lake_ready)] {
            if status(url).await == 503 {
                seen_not_ready.insert(name, true);
            }
        }
        sums = northstar_e2e::held_sums(stack.ports.metrics, "events", "1m", "event").await;
        rows = lake::string_column(&stack.events_dir(), "message_id").map_or(0, |v| v.len());
        if sums == expected && rows == 600 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert_eq!(sums, expected, "KPIs after the stall\n{}", stack.logs());
    assert_eq!(rows, 600, "lake rows after the stall\n{}", stack.logs());
    // The stall happened and was handled, not avoided by luck: whoever was left without
    // partitions (the processor, in every run so far) said so, was not ready, and rejoined.
    let rejoins = [
        (
            "processor",
            northstar_e2e::prom::metric_sum(
                stack.ports.processor,
                "northstar_consumer_rejoins_total",
            )
            .await,
        ),
        (
            "lake",
            northstar_e2e::prom::metric_sum(stack.ports.lake, "northstar_consumer_rejoins_total")
                .await,
        ),
    ];
    assert!(
        rejoins.iter().any(|(_, n)| *n >= 1.0),
        "no consumer was left without partitions: the broker bug was not reproduced\n{}",
        stack.logs()
    );
    for (name, n) in rejoins {
        if n >= 1.0 {
            assert!(
                seen_not_ready[name],
                "{name} rejoined but never reported not ready"
            );
        }
    }
    // Ready again at the next check (every 5 s) after getting partitions.
    for (port, name) in [
        (stack.ports.processor, "processor"),
        (stack.ports.lake, "lake"),
    ] {
        let url = format!("http://127.0.0.1:{port}/readyz");
        let deadline = Instant::now() + Duration::from_secs(15);
        while status(&url).await != 200 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        assert_eq!(status(&url).await, 200, "{name} ready again");
    }
    let unclean = stack.shutdown();
    assert!(unclean.is_empty(), "did not exit cleanly: {unclean:?}");
}
