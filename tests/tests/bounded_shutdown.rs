//! Bounded shutdown: SIGTERM to every process of the stack at once, broker included (as a user
//! stopping the local stack), and every service exits within its grace period although the
//! broker is gone, instead of waiting on it for minutes. Started again at once, the stack
//! comes back, and events sent then reach the KPIs and the lake within 150 s, exactly once
//! (what the forced exits could not commit is replayed, never lost).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use northstar_e2e::{lake, signed_up, Stack};

/// Every service's grace period as shipped (runtime::shutdown::DEFAULT_GRACE_SECS).
const GRACE: Duration = Duration::from_secs(25);

/// The services, broker included, in the order they start.
const ALL: [&str; 6] = [
    "tansu",
    "registry",
    "ingest",
    "processor",
    "lake",
    "metrics",
];

/// SIGTERM to every process at once; how long each took to exit (`None`: still running
/// after `limit`).
fn stop_all_at_once(
    stack: &mut Stack,
    limit: Duration,
) -> BTreeMap<&'static str, Option<Duration>> {
    let t0 = Instant::now();
    for name in ALL {
        if let Some(p) = stack.proc(name) {
            p.signal("TERM");
        }
    }
    let mut exited = BTreeMap::new();
    while exited.len() < ALL.len() && t0.elapsed() < limit {
        for name in ALL {
            if !exited.contains_key(name) && stack.proc(name).is_none_or(|p| !p.is_running()) {
                exited.insert(name, t0.elapsed());
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    ALL.iter().map(|n| (*n, exited.get(n).copied())).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_service_exits_within_its_grace_and_the_stack_comes_back_exactly_once() {
    let mut stack = Stack::start_all(&[
        ("NORTHSTAR_EMIT_INTERVAL_MS", "200"),
        ("NORTHSTAR_MAX_FILE_AGE_SECS", "2"),
    ])
    .await;
    stack.send_batches(&signed_up("stop", 0, 300), 100).await;
    let (sums, rows) = northstar_e2e::await_counted(&stack, 300, Duration::from_secs(90)).await;
    assert_eq!(
        (sums.values().sum::<f64>(), rows),
        (300.0, 300),
        "{}",
        stack.logs()
    );
    // Input that is not yet committed when the stop comes (the lake sink's open files).
    stack.send_batches(&signed_up("stop", 300, 200), 100).await;

    let exits = stop_all_at_once(&mut stack, GRACE + Duration::from_secs(10));
    let slow: Vec<_> = exits
        .iter()
        .filter(|(_, t)| t.is_none_or(|t| t > GRACE + Duration::from_secs(3)))
        .collect();
    assert!(
        slow.is_empty(),
        "not exited within the grace period ({GRACE:?}) after a stop of everything at once: \
         {slow:?} (all: {exits:?})\n{}",
        stack.logs()
    );
    eprintln!("exit times after SIGTERM to all at once: {exits:?}");

    // Started again at once, as up.sh does.
    for name in ALL {
        stack.kill9(name);
    }
    stack.restart("tansu");
    stack.restart("registry");
    let subjects = format!("{}/subjects", stack.registry_url());
    assert!(
        northstar_e2e::wait_for_http(&subjects, Duration::from_secs(60)).await,
        "registry back\n{}",
        stack.logs()
    );
    stack.start_services().await;
    stack.send_batches(&signed_up("stop", 500, 100), 100).await;
    let (sums, rows) = northstar_e2e::await_counted(&stack, 600, Duration::from_secs(150)).await;
    let expected = BTreeMap::from([("Signed Up".to_string(), 600.0)]);
    assert_eq!(sums, expected, "KPIs after the restart\n{}", stack.logs());
    assert_eq!(rows, 600, "lake rows after the restart\n{}", stack.logs());
    let ids = lake::string_column(&stack.events_dir(), "message_id").unwrap_or_default();
    let distinct: std::collections::BTreeSet<_> = ids.iter().collect();
    assert_eq!(distinct.len(), 600, "every event once in the lake");
    let unclean = stack.shutdown();
    assert!(unclean.is_empty(), "did not exit cleanly: {unclean:?}");
}
