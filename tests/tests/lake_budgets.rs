//! Lake sink budgets (issue 11, point 6), on the real broker: size-triggered flushes while a
//! second lake sink joins and leaves the group keep the lake exact; event names past the cap
//! share `event_name=__other__` with their exact names kept; the global byte budget forces
//! flushes; an object store that goes away pauses the partitions (the sink stays up, says so in
//! a metric) and the lake is exact once it is back.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use northstar_e2e::lake::{files_below, string_column, string_column_in};
use northstar_e2e::prom::metric_sum;
use northstar_e2e::proxy::Proxy;
use northstar_e2e::s3::S3Server;
use northstar_e2e::Stack;
use northstar_runtime::objstore::ObjectRoot;

const NAMES: [&str; 6] = [
    "Signed Up",
    "Order Completed",
    "Page Viewed",
    "Typo One",
    "Typo Two",
    "Typo Three",
];

/// `n` track events from number `from`, names taken in turn from [`NAMES`], distinct users.
fn events(prefix: &str, from: usize, n: usize) -> Vec<serde_json::Value> {
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    (from..from + n)
        .map(|i| {
            serde_json::json!({"type": "track", "event": NAMES[i % NAMES.len()],
                "userId": format!("u{i}"), "messageId": format!("{prefix}-{i}"), "timestamp": now})
        })
        .collect()
}

async fn metric(port: u16, name: &str) -> f64 {
    metric_sum(port, name).await
}

/// Waits until `rows()` returns at least `n` values, for up to `secs`.
async fn await_rows<F, Fut>(n: usize, secs: u64, rows: F) -> Vec<Option<String>>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Vec<Option<String>>>,
{
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let got = rows().await;
        if got.len() >= n || Instant::now() > deadline {
            return got;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

fn assert_exactly_once(ids: &[Option<String>], prefix: &str, n: usize, logs: &str) {
    let mut seen = BTreeMap::<String, usize>::new();
    for id in ids.iter().flatten() {
        *seen.entry(id.clone()).or_default() += 1;
    }
    let dupes: Vec<_> = seen.iter().filter(|(_, &c)| c > 1).take(5).collect();
    assert!(
        dupes.is_empty(),
        "duplicate rows in the lake: {dupes:?}\n{logs}"
    );
    let missing: Vec<String> = (0..n)
        .map(|i| format!("{prefix}-{i}"))
        .filter(|id| !seen.contains_key(id))
        .take(5)
        .collect();
    assert!(
        missing.is_empty(),
        "rows missing from the lake: {missing:?}\n{logs}"
    );
    assert_eq!(ids.len(), n, "{logs}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn size_flushes_during_rebalances_stay_exact_and_names_are_capped() {
    let mut stack = Stack::start_core().await;
    stack.env.extend(
        [
            ("NORTHSTAR_EMIT_INTERVAL_MS", "200"),
            // A flush every few records per partition, and a budget below two of them: a
            // partition can still fill a file alone (size flushes), while rows arriving on one
            // partition as another holds more than 500 bytes overflow the budget. With 5000
            // (below three files), a loaded machine whose lake sink fetched one partition at a
            // time saw only size flushes (CI of fa1da93).
            ("NORTHSTAR_MAX_FILE_BYTES", "3000"),
            ("NORTHSTAR_MAX_BUFFERED_BYTES", "3500"),
            ("NORTHSTAR_MAX_FILE_AGE_SECS", "2"),
            ("NORTHSTAR_MAX_EVENT_NAMES", "3"),
        ]
        .map(|(k, v)| (k.to_string(), v.to_string())),
    );
    stack.start_services().await;
    let lake = stack.ports.lake;

    // Traffic flows all along while a second lake sink joins and leaves the group six times,
    // so partitions move while size- and budget-triggered flushes happen all the time.
    let (per_round, rounds) = (500, 6);
    let n = per_round * rounds;
    let url = format!("{}/v1/batch", stack.ingest_url());
    let sender = tokio::spawn(async move {
        let (client, auth) = (reqwest::Client::new(), northstar_e2e::write_key_auth());
        for chunk in events("rb", 0, n).chunks(10) {
            let r = client
                .post(&url)
                .header("authorization", &auth)
                .json(&serde_json::json!({ "batch": chunk }))
                .send()
                .await
                .expect("send a batch");
            assert_eq!(r.status(), 200);
            tokio::time::sleep(Duration::from_millis(60)).await;
        }
    });
    for _ in 0..rounds {
        let port = stack.start_extra_lake_sink("lake2");
        let deadline = Instant::now() + Duration::from_secs(60);
        while metric(port, "northstar_consumer_assigned_partitions").await < 1.0 {
            assert!(
                Instant::now() < deadline,
                "lake2 never got a partition\n{}",
                stack.logs()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
        let p = stack.proc("lake2").expect("lake2");
        assert!(p.terminate(Duration::from_secs(30)), "lake2 leaves cleanly");
        stack.procs.retain(|p| p.name != "lake2");
    }
    sender.await.expect("sender");
    let dir = stack.events_dir();
    let ids = await_rows(n, 150, || async {
        string_column(&dir, "message_id").unwrap_or_default()
    })
    .await;
    assert_exactly_once(&ids, "rb", n, &stack.logs());

    // Every name's rows are there under their exact name; each clean-topic partition has at
    // most 3 own name directories, the rest went to the catch-all.
    let names = string_column(&dir, "event").expect("event column");
    let mut by_name = BTreeMap::<String, usize>::new();
    for name in names.into_iter().flatten() {
        *by_name.entry(name).or_default() += 1;
    }
    let expected: BTreeMap<String, usize> = NAMES
        .iter()
        .map(|n| (n.to_string(), per_round * rounds / NAMES.len()))
        .collect();
    assert_eq!(by_name, expected, "exact counts by the event column");
    let mut dirs_by_partition = BTreeMap::<String, BTreeSet<String>>::new();
    for f in files_below(&dir) {
        let s = f.display().to_string();
        let Some(name_dir) = s.split('/').find_map(|c| c.strip_prefix("event_name=")) else {
            continue;
        };
        let file = s.rsplit('/').next().unwrap_or_default();
        let partition = file
            .split("-p")
            .nth(1)
            .and_then(|r| r.split('-').next())
            .unwrap_or_default();
        dirs_by_partition
            .entry(partition.to_string())
            .or_default()
            .insert(name_dir.to_string());
    }
    assert!(!dirs_by_partition.is_empty());
    for (p, dirs) in &dirs_by_partition {
        let own: Vec<_> = dirs.iter().filter(|d| *d != "__other__").collect();
        assert!(own.len() <= 3, "partition {p}: {dirs:?}");
        assert!(
            dirs.contains("__other__"),
            "partition {p} saw 6 names: {dirs:?}"
        );
    }
    assert!(metric(lake, "northstar_lake_sink_event_names_capped_total").await > 0.0);
    assert!(
        metric(lake, "northstar_lake_sink_budget_flushes_total").await > 0.0,
        "the byte budget forced flushes"
    );
    stack.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_object_store_outage_pauses_the_lake_sink_and_it_resumes_exactly() {
    let s3 = S3Server::start().await;
    s3.create_bucket("lake").await;
    let proxy = Proxy::start(([127, 0, 0, 1], s3.port).into()).await;
    let mut stack = Stack::start_core().await;
    stack.lake_root = Some("s3://lake/outage".into());
    stack.env.extend(s3.env_via(&proxy.url()));
    stack.env.extend(
        [
            ("NORTHSTAR_EMIT_INTERVAL_MS", "200"),
            ("NORTHSTAR_MAX_FILE_AGE_SECS", "1"),
        ]
        .map(|(k, v)| (k.to_string(), v.to_string())),
    );
    stack.start_services().await;
    let lake_port = stack.ports.lake;
    let direct = ObjectRoot::open_with_env("s3://lake/outage", s3.env()).expect("s3 root");
    let rows = || async {
        string_column_in(&direct, "events", "message_id")
            .await
            .unwrap_or_default()
    };

    stack.send_batches(&events("os", 0, 200), 50).await;
    let ids = await_rows(200, 120, rows).await;
    assert_eq!(ids.len(), 200, "before the outage\n{}", stack.logs());

    // The store goes away: the sink pauses what it cannot write and stays up.
    proxy.down();
    stack.send_batches(&events("os", 200, 200), 50).await;
    let deadline = Instant::now() + Duration::from_secs(120);
    while metric(lake_port, "northstar_lake_sink_paused_partitions").await < 1.0 {
        assert!(
            Instant::now() < deadline,
            "no partition paused\n{}",
            stack.logs()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(metric(lake_port, "northstar_lake_sink_upload_errors_total").await > 0.0);
    tokio::time::sleep(Duration::from_secs(10)).await;
    let running = stack.proc("lake").is_some_and(|p| p.is_running());
    assert!(
        running,
        "the lake sink exited during the outage\n{}",
        stack.logs()
    );
    assert!(
        northstar_e2e::wait_for_http(
            &format!("http://127.0.0.1:{lake_port}/healthz"),
            Duration::from_secs(5)
        )
        .await,
        "the lake sink answers during the outage"
    );

    // Back: every event lands exactly once, nothing stays paused.
    proxy.up();
    let ids = await_rows(400, 180, rows).await;
    assert_exactly_once(&ids, "os", 400, &stack.logs());
    let deadline = Instant::now() + Duration::from_secs(60);
    while metric(lake_port, "northstar_lake_sink_paused_partitions").await > 0.0 {
        assert!(
            Instant::now() < deadline,
            "a partition stayed paused\n{}",
            stack.logs()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    stack.shutdown();
}
