//! The lake's maintenance commands on a lake the pipeline filled (many small files, three event
//! dates, a dead-letter table), each interrupted by a crash once and run again: the row sets
//! read back by pyarrow are exactly what each command promises.
//!
//! - `compact`: fewer files, the same rows (digest of every column); a second run changes
//!   nothing.
//! - `erase`: the rows of one user id and one anonymous id are gone from the events and the
//!   dead-letter tables, every other row is unchanged, audit records list the rewritten files.
//! - `retention`: the partitions before the cutoff are gone, every other row is unchanged.

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use northstar_e2e::{bin, lake, Stack};
use serde_json::{json, Value};

const WAVES: usize = 6;
const PER_WAVE: usize = 150;
const INVALID_PER_WAVE: usize = 5;
/// Event dates: today, 5 and 12 days ago.
const AGES_DAYS: [i64; 3] = [0, 5, 12];

/// Runs `lake-admin args`; with `env` (fault injection, `northstar_e2e::faults`), the faulty
/// build of the same command line.
fn admin(lake: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let program = if env.is_empty() {
        "northstar-sink"
    } else {
        "northstar-sink-faulty"
    };
    Command::new(bin(program))
        .arg("lake-admin")
        .args(args)
        .env("NORTHSTAR_ROOT", format!("file://{}", lake.display()))
        .env("NORTHSTAR_PII_KEY", northstar_e2e::TEST_PII_KEY)
        .env("RUST_LOG", "warn")
        .envs(env.iter().copied())
        .output()
        .expect("run northstar-sink lake-admin")
}

fn ok_summary(out: &Output) -> Value {
    assert!(
        out.status.success(),
        "lake-admin failed ({:?}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("summary json")
}

fn rowset(stack: &Stack, extra: &[&str]) -> Value {
    let lake = stack.lake_dir();
    let registry = stack.registry_url();
    let mut args: Vec<&std::ffi::OsStr> =
        vec![lake.as_os_str(), "--registry".as_ref(), registry.as_ref()];
    args.extend(extra.iter().map(std::ffi::OsStr::new));
    let out = northstar_e2e::run_compat_script("lake_rowset.py", &args);
    serde_json::from_slice(&out).expect("rowset json")
}

fn files_under(dir: &Path) -> Vec<String> {
    lake::files_below(dir)
        .iter()
        .map(|p| p.display().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compact_erase_and_retention_keep_exact_row_sets_through_crashes() {
    let mut stack = Stack::start_core().await;
    stack
        .env
        .push(("NORTHSTAR_MAX_FILE_AGE_SECS".into(), "1".into()));
    stack.start_services().await;
    let client = reqwest::Client::new();
    let url = format!("{}/v1/batch", stack.ingest_url());
    let now = chrono::Utc::now() - chrono::Duration::minutes(1);
    let names = ["Signed Up", "Viewed Page", "Upgraded"];
    let mut valid = 0usize;
    for w in 0..WAVES {
        let mut batch = Vec::new();
        for i in 0..PER_WAVE {
            let n = w * PER_WAVE + i;
            let ts = now
                - chrono::Duration::days(AGES_DAYS[n % 3])
                - chrono::Duration::seconds(n as i64);
            // Every 4th event is anonymous only.
            let who = if n.is_multiple_of(4) {
                json!({"anonymousId": format!("anon-{}", n % 9)})
            } else {
                json!({"userId": format!("u{}", n % 11), "anonymousId": format!("anon-{}", n % 9)})
            };
            let (plan, revenue) = (["free", "pro"][n % 2], (n % 7) as f64 * 1.5);
            let mut e = json!({
                "type": "track",
                "event": names[(n / 3) % 3],
                "messageId": format!("m-{n}"),
                "timestamp": ts.to_rfc3339(),
                "properties": {"plan": plan, "revenue": revenue},
            });
            e.as_object_mut()
                .expect("object")
                .extend(who.as_object().expect("who").clone());
            batch.push(e);
            valid += 1;
        }
        for i in 0..INVALID_PER_WAVE {
            // Rejected by the processor (empty event name): dead letters carrying a user id.
            batch.push(
                json!({"type": "track", "event": "", "userId": format!("u{}", i % 4),
                              "messageId": format!("bad-{w}-{i}")}),
            );
        }
        let resp = client
            .post(&url)
            .header("authorization", northstar_e2e::write_key_auth())
            .json(&json!({"batch": batch}))
            .send()
            .await
            .expect("send");
        assert_eq!(resp.status(), 200);
        // Separate flushes: many small files per partition.
        tokio::time::sleep(Duration::from_millis(1_600)).await;
    }
    let invalid = WAVES * INVALID_PER_WAVE;
    let lake_dir = stack.lake_dir();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let rows = lake::string_column(&stack.events_dir(), "message_id").map_or(0, |v| v.len());
        let dead = lake::string_column(&lake_dir.join("dlq"), "reason").map_or(0, |v| v.len());
        if rows == valid && dead == invalid {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "lake has {rows}/{valid} events, {dead}/{invalid} dead letters\n{}",
            stack.logs()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // The ledger entries follow the files.
    tokio::time::sleep(Duration::from_secs(3)).await;

    // ---- compact, killed after its output and one input deletion, then completed ----------
    let before = rowset(&stack, &[]);
    assert_eq!(before["events"]["rows"], valid);
    assert_eq!(before["dlq"]["rows"], invalid);
    let crashed = admin(
        &lake_dir,
        &["compact"],
        &[(northstar_e2e::faults::ABORT_AFTER, "2")],
    );
    assert!(
        !crashed.status.success(),
        "the injected fault aborts the run"
    );
    let locked = admin(&lake_dir, &["compact"], &[]);
    assert!(
        !locked.status.success()
            && String::from_utf8_lossy(&locked.stderr).contains("--break-lock"),
        "a killed run's lock is reported: {}",
        String::from_utf8_lossy(&locked.stderr)
    );
    let summary = ok_summary(&admin(&lake_dir, &["--break-lock", "compact"], &[]));
    assert_eq!(summary["resumed_compactions"], 1, "{summary}");
    let after = rowset(&stack, &[]);
    for t in ["events", "dlq"] {
        assert_eq!(
            after[t]["digest"], before[t]["digest"],
            "{t}: same rows after compaction"
        );
        assert_eq!(after[t]["rows"], before[t]["rows"]);
    }
    let (files_before, files_after) = (
        before["events"]["files"].as_u64().expect("n"),
        after["events"]["files"].as_u64().expect("n"),
    );
    // One file per partition directory is left: 3 dates × 3 names (each date's events fall in
    // at most 2 hours).
    assert!(
        files_after < files_before && files_after <= 2 * 9,
        "{files_before} files compacted into {files_after}"
    );
    assert!(
        files_under(&lake_dir.join("_state/maintenance")).is_empty(),
        "no journal or lock left: {:?}",
        files_under(&lake_dir.join("_state/maintenance"))
    );
    let again = ok_summary(&admin(&lake_dir, &["compact"], &[]));
    assert_eq!(
        again["files_in"], 0,
        "a second compaction changes nothing: {again}"
    );
    assert_eq!(
        rowset(&stack, &[])["events"]["files"],
        after["events"]["files"]
    );

    // ---- erase u3 and anon-7, killed after its first rewrite, then completed ---------------
    let subject = [
        "--exclude-user",
        "u3",
        "--exclude-anon",
        "anon-7",
        "--follow-links",
    ];
    let expected = rowset(&stack, &subject);
    let (ev_subject, dl_subject) = (
        expected["events"]["left_out"].as_u64().expect("n"),
        expected["dlq"]["left_out"].as_u64().expect("n"),
    );
    assert!(ev_subject > 0 && dl_subject > 0, "{expected}");
    // The suppression list is the privacy test's; here, the row sets through a crash.
    let args = [
        "erase",
        "--user-id",
        "u3",
        "--anonymous-id",
        "anon-7",
        "--no-suppress",
    ];
    let crashed = admin(
        &lake_dir,
        &args,
        &[(northstar_e2e::faults::ABORT_AFTER, "1")],
    );
    assert!(!crashed.status.success());
    let mut full = vec!["--break-lock"];
    full.extend(args);
    let summary = ok_summary(&admin(&lake_dir, &full, &[]));
    let erased = rowset(&stack, &subject);
    for t in ["events", "dlq"] {
        assert_eq!(
            erased[t]["left_out"], 0,
            "{t}: no row of the subject left: {erased}"
        );
        assert_eq!(
            erased[t]["digest"], expected[t]["digest"],
            "{t}: every other row unchanged"
        );
    }
    // Both runs left an audit record; together they account for every erased row.
    let audits: Vec<Value> = files_under(&lake_dir.join("_audit/erasure"))
        .iter()
        .map(|f| serde_json::from_slice(&std::fs::read(f).expect("audit")).expect("json"))
        .collect();
    assert_eq!(audits.len(), 2, "{audits:?}");
    let removed: u64 = audits
        .iter()
        .map(|a| a["rows_removed"].as_u64().expect("n"))
        .sum();
    assert_eq!(removed, ev_subject + dl_subject, "{audits:?}");
    assert_eq!(summary["status"], "complete");
    let text = serde_json::to_string(&audits).expect("text");
    assert!(
        !text.contains("\"u3\"") && !text.contains("anon-7"),
        "ids only as hashes"
    );
    let again = ok_summary(&admin(&lake_dir, &args, &[]));
    assert_eq!(
        again["rows_removed"], 0,
        "a second erasure finds nothing: {again}"
    );

    // ---- retention of 7 days: the events of 12 days ago go --------------------------------
    let cutoff = (chrono::Utc::now() - chrono::Duration::days(7))
        .format("%Y-%m-%d")
        .to_string();
    let mut excl = subject.to_vec();
    excl.extend(["--min-date", &cutoff]);
    let expected = rowset(&stack, &excl);
    assert!(expected["events"]["left_out"].as_u64().expect("n") > 0);
    let crashed = admin(
        &lake_dir,
        &["retention", "--keep-days", "7"],
        &[(northstar_e2e::faults::ABORT_AFTER, "1")],
    );
    assert!(!crashed.status.success());
    let summary = ok_summary(&admin(
        &lake_dir,
        &["--break-lock", "retention", "--keep-days", "7"],
        &[],
    ));
    assert_eq!(summary["status"], "complete", "{summary}");
    let kept = rowset(&stack, &excl);
    for t in ["events", "dlq"] {
        assert_eq!(
            kept[t]["left_out"], 0,
            "{t}: nothing before {cutoff} left: {kept}"
        );
        assert_eq!(
            kept[t]["digest"], expected[t]["digest"],
            "{t}: every other row unchanged"
        );
    }
    assert!(
        !files_under(&stack.events_dir())
            .iter()
            .any(|f| f.contains(&format!(
                "event_date={}",
                (chrono::Utc::now() - chrono::Duration::days(12)).format("%Y-%m-%d")
            ))),
        "the old partition's directory holds no file"
    );
    assert_eq!(files_under(&lake_dir.join("_audit/retention")).len(), 2);
    let unclean = stack.shutdown();
    assert!(unclean.is_empty(), "did not exit cleanly: {unclean:?}");
}
