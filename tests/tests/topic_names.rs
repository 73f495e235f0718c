//! One `[topics]` section honoured by every service and command (issue 11, point 8): the whole
//! stack on renamed topics (`NORTHSTAR_TOPICS__*`) — create-topics, the registry's schema log,
//! ingest, the processor, both sinks — and nothing written to the default names.

use std::time::{Duration, Instant};

use northstar_e2e::kafka::read_topic;
use northstar_e2e::lake::string_column;
use northstar_e2e::membership::await_assigned;
use northstar_e2e::prom::metric_sum;
use northstar_e2e::{signed_up, wait_for_http, Stack};

const TOPICS: [(&str, &str); 5] = [
    ("NORTHSTAR_TOPICS__RAW", "t1.events.raw"),
    ("NORTHSTAR_TOPICS__CLEAN", "t1.events.clean"),
    ("NORTHSTAR_TOPICS__DLQ", "t1.events.dlq"),
    ("NORTHSTAR_TOPICS__AGGREGATES", "t1.kpi.aggregates"),
    ("NORTHSTAR_TOPICS__SCHEMAS", "t1._schemas"),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_service_uses_the_topics_section() {
    let mut stack = Stack::start_core().await;
    stack.create_topics(&TOPICS);
    stack
        .env
        .extend(TOPICS.map(|(k, v)| (k.to_string(), v.to_string())));
    stack
        .env
        .push(("NORTHSTAR_EMIT_INTERVAL_MS".into(), "200".into()));
    stack
        .env
        .push(("NORTHSTAR_MAX_FILE_AGE_SECS".into(), "1".into()));
    // The registry of start_core reads `_schemas`; again on the renamed schema log.
    stack.kill9("registry");
    stack.restart("registry");
    let subjects = format!("{}/subjects", stack.registry_url());
    assert!(
        wait_for_http(&subjects, Duration::from_secs(60)).await,
        "{}",
        stack.logs()
    );
    stack.start_services().await;
    assert!(
        await_assigned(stack.ports.processor).await,
        "{}",
        stack.logs()
    );

    stack.send_batches(&signed_up("tn", 0, 30), 10).await;
    let dir = stack.events_dir();
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut ids = Vec::new();
    while Instant::now() < deadline {
        ids = string_column(&dir, "message_id").unwrap_or_default();
        let counted = metric_sum(stack.ports.metrics, "northstar_kpi_open_value").await;
        if ids.len() >= 30 && counted >= 30.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert_eq!(
        ids.len(),
        30,
        "events through renamed topics into the lake\n{}",
        stack.logs()
    );
    assert!(
        metric_sum(stack.ports.metrics, "northstar_kpi_open_value").await >= 30.0,
        "the KPIs through the renamed aggregates topic\n{}",
        stack.logs()
    );

    let brokers = stack.brokers();
    let count = |topic: &str| {
        read_topic(&brokers, topic)
            .map(|r| r.len())
            .unwrap_or(usize::MAX)
    };
    assert_eq!(count("t1.events.raw"), 30);
    assert_eq!(count("t1.events.clean"), 30);
    assert!(count("t1.kpi.aggregates") > 0);
    assert!(
        count("t1._schemas") > 0,
        "the registry stores schemas in the renamed log"
    );
    for default in ["events.raw", "events.clean", "kpi.aggregates", "_schemas"] {
        assert_eq!(
            count(default),
            0,
            "nothing written to {default}\n{}",
            stack.logs()
        );
    }
    stack.shutdown();
}
