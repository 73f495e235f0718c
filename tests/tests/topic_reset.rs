//! Topic identity: topics recreated under a running stack (here: the stack moved to a new,
//! empty cluster) start their offsets again. Neither service skips the new topic's records
//! silently: each refuses to resume, with an error that says what happened and what to do —
//! here after the new topics have grown *past* the old checkpoints and ledger (which offsets
//! alone cannot tell apart: the topic id recorded in the state can), and, in the unit tests of
//! `runtime::resume`, below them.

use std::time::{Duration, Instant};

use northstar_e2e::{lake, signed_up, Stack};

/// Waits until `name` has exited; its whole log.
async fn exited(stack: &mut Stack, name: &str, within: Duration) -> Option<String> {
    let deadline = Instant::now() + within;
    while stack.proc(name).is_some_and(|p| p.is_running()) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let p = stack.proc(name)?;
    (!p.is_running()).then(|| p.log_tail(400))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recreated_topic_is_refused_with_an_explanation_never_skipped() {
    let mut stack = Stack::start_all(&[
        ("NORTHSTAR_EMIT_INTERVAL_MS", "200"),
        ("NORTHSTAR_CHECKPOINT_INTERVAL_MS", "500"),
        ("NORTHSTAR_MAX_FILE_AGE_SECS", "1"),
    ])
    .await;
    stack.send_batches(&signed_up("reset", 0, 300), 100).await;
    let deadline = Instant::now() + Duration::from_secs(90);
    let (mut checkpointed, mut rows) = (0.0, 0);
    while Instant::now() < deadline {
        checkpointed = northstar_e2e::prom::metric_sum(
            stack.ports.processor,
            "northstar_processor_checkpoint_offset",
        )
        .await;
        rows = lake::string_column(&stack.events_dir(), "message_id").map_or(0, |v| v.len());
        if checkpointed >= 300.0 && rows == 300 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert_eq!((checkpointed, rows), (300.0, 300), "{}", stack.logs());
    for name in ["processor", "lake"] {
        let ok = stack
            .proc(name)
            .is_some_and(|p| p.terminate(Duration::from_secs(30)));
        assert!(ok, "{name} stopped cleanly\n{}", stack.logs());
        stack.kill9(name);
    }

    // The topics start again from offset 0: the stack moves to a new, empty cluster (Tansu
    // 0.6.0 cannot delete a topic by name: it resolves DeleteTopics v6 requests by topic id).
    for name in ["ingest", "registry", "tansu"] {
        stack.kill9(name);
    }
    for entry in std::fs::read_dir(stack.dir.path())
        .expect("stack dir")
        .flatten()
    {
        if entry.file_name().to_string_lossy().starts_with("tansu.db") {
            std::fs::remove_file(entry.path()).expect("remove the broker's storage");
        }
    }
    stack.restart("tansu");
    let brokers = stack.brokers();
    let status = std::process::Command::new(northstar_e2e::bin("northstar-schemas"))
        .args(["create-topics", "--brokers", &brokers, "--partitions", "3"])
        .envs(northstar_e2e::ONE_BROKER)
        .env("RUST_LOG", "warn")
        .status();
    assert!(
        status.is_ok_and(|s| s.success()),
        "create-topics on the new cluster"
    );
    stack.restart("registry");
    let subjects = format!("{}/subjects", stack.registry_url());
    assert!(northstar_e2e::wait_for_http(&subjects, Duration::from_secs(60)).await);
    stack.start_ingest_ready().await;

    // More records than before on every partition: the old positions are below the new ends.
    stack
        .send_batches(&signed_up("reset", 300, 1_200), 100)
        .await;
    stack.restart("processor");
    stack.restart("lake");
    let log = exited(&mut stack, "processor", Duration::from_secs(90)).await;
    let log = log.unwrap_or_else(|| panic!("the processor kept running\n{}", stack.logs()));
    for what in [
        "was deleted and recreated",
        "written for the topic with id",
        "move this partition's checkpoints away",
    ] {
        assert!(
            log.contains(what),
            "the processor's error says {what:?}:\n{log}"
        );
    }
    // The lake sink sees nothing until the processor writes to the new clean topic: feed it
    // the way a backend producer would, through a processor started on fresh checkpoints.
    stack.service_env.push((
        "processor".into(),
        "NORTHSTAR_CHECKPOINT_ROOT".into(),
        "file://./data/checkpoints-new".into(),
    ));
    stack.kill9("processor");
    stack.restart("processor");
    let log = exited(&mut stack, "lake", Duration::from_secs(90)).await;
    let log = log.unwrap_or_else(|| panic!("the lake sink kept running\n{}", stack.logs()));
    for what in [
        "was deleted and recreated",
        "the lake ledger was written for the topic with id",
        "new root",
    ] {
        assert!(
            log.contains(what),
            "the lake sink's error says {what:?}:\n{log}"
        );
    }
    let rows = lake::string_column(&stack.events_dir(), "message_id").map_or(0, |v| v.len());
    assert_eq!(rows, 300, "the old lake untouched");
}
