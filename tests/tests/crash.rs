//! Kill -9 of the stream processor and of the lake sink mid-stream neither loses nor duplicates:
//! offsets are committed only after outputs are acknowledged / files are durable, a restored
//! processor's re-emitted records are skipped by the lake sink (source positions), and an
//! interrupted lake flush is repeated with the same file names. Every accepted event is in the
//! lake exactly once — on a local lake, and on S3 (moto) with the processor's checkpoints
//! there too.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use northstar_e2e::s3::S3Server;
use northstar_e2e::{lake, Stack};
use northstar_runtime::objstore::ObjectRoot;
use serde_json::json;

const EVENTS: usize = 3_000;
const BATCH: usize = 100;

/// Where the test reads the lake's `message_id`s from.
enum LakeAt<'a> {
    Dir(std::path::PathBuf),
    Store(&'a ObjectRoot),
}

impl LakeAt<'_> {
    async fn message_ids(&self) -> anyhow::Result<Vec<String>> {
        let values = match self {
            LakeAt::Dir(dir) => lake::string_column(dir, "message_id")?,
            LakeAt::Store(root) => lake::string_column_in(root, "events", "message_id").await?,
        };
        Ok(values.into_iter().flatten().collect())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_of_processor_and_lake_sink_loses_no_event() {
    let mut stack = Stack::start_core().await;
    let at = LakeAt::Dir(stack.events_dir());
    run(&mut stack, &at).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_of_processor_and_lake_sink_loses_no_event_on_s3() {
    let s3 = S3Server::start().await;
    s3.create_bucket("northstar").await;
    let mut stack = Stack::start_core().await;
    stack.env.extend(s3.env());
    stack.lake_root = Some("s3://northstar/lake".into());
    stack.service_env.push((
        "processor".into(),
        "NORTHSTAR_CHECKPOINT_ROOT".into(),
        "s3://northstar/checkpoints".into(),
    ));
    let root = ObjectRoot::open_with_env("s3://northstar/lake", s3.env()).expect("s3 root");
    run(&mut stack, &LakeAt::Store(&root)).await;
    let bucket = ObjectRoot::open_with_env("s3://northstar", s3.env()).expect("bucket");
    let keys = bucket.list("").await.expect("list");
    assert!(
        keys.iter().any(|k| k.starts_with("checkpoints/")),
        "the processor kept its checkpoints on S3"
    );
    assert!(
        keys.iter().any(|k| k.starts_with("lake/_state/lake-sink/")),
        "the lake sink kept its ledger on S3"
    );
    assert!(
        !std::fs::exists(stack.lake_dir()).unwrap_or(true),
        "nothing was written to a local lake"
    );
    assert_eq!(s3.pending_uploads("northstar").await, 0);
    // pyarrow reads the same rows straight from S3.
    let endpoint = s3.endpoint();
    let out = northstar_e2e::run_compat_script_with_env(
        "lake_s3_read.py",
        &[endpoint.as_ref(), "northstar/lake/events".as_ref()],
        &s3.env(),
    );
    let seen: serde_json::Value = serde_json::from_slice(&out).expect("json");
    assert_eq!(seen["rows"], EVENTS, "{seen}");
    assert_eq!(seen["distinct_ids"], EVENTS, "{seen}");

    // The maintenance commands work on the S3 lake too: compaction keeps every row.
    let files = |keys: Vec<String>| keys.iter().filter(|k| k.ends_with(".parquet")).count();
    let before = files(root.list("events").await.expect("list"));
    let out = std::process::Command::new(northstar_e2e::bin("northstar-sink"))
        .args(["lake-admin", "compact"])
        .env("NORTHSTAR_ROOT", "s3://northstar/lake")
        .env("RUST_LOG", "warn")
        .envs(s3.env())
        .output()
        .expect("lake-admin");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let after = files(root.list("events").await.expect("list"));
    assert!(
        after < before,
        "compaction on S3: {before} files -> {after}"
    );
    let mut ids = LakeAt::Store(&root).message_ids().await.expect("read");
    assert_eq!(ids.len(), EVENTS, "as many rows after compaction");
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), EVENTS, "every event once after compaction");
    assert_eq!(
        files(root.list("events").await.expect("list")),
        after,
        "stable"
    );
    assert!(
        root.list("_state/maintenance")
            .await
            .expect("list")
            .is_empty(),
        "no journal or lock left on S3"
    );
}

async fn run(stack: &mut Stack, at: &LakeAt<'_>) {
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
        in_lake = at
            .message_ids()
            .await
            .unwrap_or_default()
            .into_iter()
            .collect();
        if in_lake.is_superset(&sent) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // Anything still in flight (a duplicate would be a late extra file) lands within seconds.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let rows: Vec<String> = at.message_ids().await.expect("lake readable");
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
