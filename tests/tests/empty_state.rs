//! No silent empty state: a processor whose consumer group has read its partitions before but
//! that finds no checkpoint for them (a lost or misconfigured checkpoint root, as when each pod
//! checkpointed to its own disk) refuses to start with an error that says what happened and
//! what to do. With the explicit override it starts empty, and every window that began before
//! its first event is marked as missing input downstream instead of showing a smaller number
//! as if it were exact.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use northstar_e2e::{signed_up, Stack};

/// The open 1m window of the `events` KPI: whether the metrics sink marks it missing input.
async fn open_window_missing_input(port: u16) -> Option<f64> {
    northstar_e2e::prom::scrape(port)
        .await
        .iter()
        .find(|s| {
            s.name == "northstar_kpi_window_missing_input"
                && s.label("kpi") == "events"
                && s.label("window") == "1m"
                && s.label("state") == "open"
        })
        .map(|s| s.value)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_that_read_before_needs_its_checkpoints_or_an_explicit_override() {
    let mut stack = Stack::start_all(&[
        ("NORTHSTAR_EMIT_INTERVAL_MS", "200"),
        ("NORTHSTAR_CHECKPOINT_INTERVAL_MS", "500"),
    ])
    .await;
    stack.send_batches(&signed_up("empty", 0, 300), 100).await;
    // Both must hold before the loss: the processor checkpointed all 300, and the metrics sink
    // read the aggregates it emitted (a checkpoint says they are in Kafka, not yet read).
    let expected = BTreeMap::from([("Signed Up".to_string(), 300.0)]);
    let deadline = Instant::now() + Duration::from_secs(90);
    while (northstar_e2e::prom::metric_sum(
        stack.ports.processor,
        "northstar_processor_checkpoint_offset",
    )
    .await
        < 300.0
        || northstar_e2e::held_sums(stack.ports.metrics, "events", "1m", "event").await
            != expected)
        && Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let sums = northstar_e2e::held_sums(stack.ports.metrics, "events", "1m", "event").await;
    assert_eq!(sums, expected, "{}", stack.logs());
    assert_eq!(
        open_window_missing_input(stack.ports.metrics).await,
        Some(0.0),
        "complete before the loss"
    );

    // The checkpoints are lost; the group's committed offsets are not.
    let ok = stack
        .proc("processor")
        .is_some_and(|p| p.terminate(Duration::from_secs(30)));
    assert!(ok, "processor stopped cleanly\n{}", stack.logs());
    stack.kill9("processor");
    let checkpoints = stack.dir.path().join("data/checkpoints");
    assert!(
        checkpoints.is_dir(),
        "checkpoints at {}",
        checkpoints.display()
    );
    std::fs::remove_dir_all(&checkpoints).expect("remove the checkpoints");

    stack.restart("processor");
    stack.send_batches(&signed_up("empty", 300, 60), 60).await;
    let deadline = Instant::now() + Duration::from_secs(90);
    while stack.proc("processor").is_some_and(|p| p.is_running()) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let log = stack
        .proc("processor")
        .map(|p| p.log_tail(200))
        .unwrap_or_default();
    assert!(
        !stack.proc("processor").is_some_and(|p| p.is_running()),
        "the processor started with empty state instead of refusing\n{}",
        stack.logs()
    );
    for what in [
        "there is no checkpoint for it",
        "--allow-empty-state",
        "checkpoint_root",
    ] {
        assert!(log.contains(what), "the error says {what:?}:\n{log}");
    }
    assert_eq!(
        northstar_e2e::held_sums(stack.ports.metrics, "events", "1m", "event").await,
        expected,
        "nothing emitted from the empty state"
    );

    // The explicit override: empty state, and the windows it cannot know in full are marked.
    stack.kill9("processor");
    stack.service_env.push((
        "processor".into(),
        "NORTHSTAR_ALLOW_EMPTY_STATE".into(),
        "true".into(),
    ));
    stack.restart("processor");
    let deadline = Instant::now() + Duration::from_secs(90);
    while open_window_missing_input(stack.ports.metrics).await != Some(1.0)
        && Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert_eq!(
        open_window_missing_input(stack.ports.metrics).await,
        Some(1.0),
        "the window that began before the loss is marked as missing input\n{}",
        stack.logs()
    );
    let unclean = stack.shutdown();
    assert!(unclean.is_empty(), "did not exit cleanly: {unclean:?}");
}
