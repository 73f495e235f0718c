//! Exactly-once KPI results through SIGKILL of the stream processor, without broker
//! transactions: state is restored from checkpoints, input replayed from the checkpointed
//! offsets, and the metrics sink keeps the newest source position per key. Afterwards the
//! window counts equal the unique events sent, per event name, exactly.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use base64::Engine;
use northstar_e2e::{Stack, WRITE_KEY};
use serde_json::json;

const UNIQUE: usize = 6_000;
const NAMES: [&str; 5] = ["Signed Up", "Activated", "Invited", "Upgraded", "Churned"];

fn window_sums(text: &str) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("northstar_kpi_window_value{") else {
            continue;
        };
        let Some((labels, value)) = rest.rsplit_once("} ") else {
            continue;
        };
        let event = labels
            .split("event=\"")
            .nth(1)
            .and_then(|s| s.split('"').next())
            .unwrap_or_default();
        *out.entry(event.to_string()).or_insert(0.0) += value.parse::<f64>().unwrap_or(f64::NAN);
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kpis_stay_exact_through_processor_sigkill() {
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
    stack.start_services().await;

    let auth = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{WRITE_KEY}:"))
    );
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
    for (b, chunk) in messages.chunks(100).enumerate() {
        let r = client
            .post(&url)
            .header("authorization", &auth)
            .json(&json!({"batch": chunk}))
            .send()
            .await;
        assert_eq!(r.expect("send").status(), 200);
        match b {
            12 | 40 => stack.kill9("processor"),
            14 | 42 => stack.restart("processor"),
            25 => {
                let p = stack.proc("processor").expect("processor");
                assert!(p.terminate(Duration::from_secs(20)), "graceful stop");
                stack.procs.retain(|p| p.name != "processor");
                stack.restart("processor");
            }
            _ => {}
        }
        tokio::time::sleep(Duration::from_millis(120)).await;
    }

    let deadline = Instant::now() + Duration::from_secs(150);
    let mut got = BTreeMap::new();
    while Instant::now() < deadline {
        let text = reqwest::get(stack.metrics_url())
            .await
            .expect("scrape")
            .text()
            .await
            .unwrap_or_default();
        got = window_sums(&text);
        if got == expected {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // Let any straggling update arrive, then check again: no over-count either.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let text = reqwest::get(stack.metrics_url())
        .await
        .expect("scrape")
        .text()
        .await
        .unwrap_or_default();
    let settled = window_sums(&text);
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
