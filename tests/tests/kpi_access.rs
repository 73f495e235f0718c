//! The KPI exposition, the KPI board and its API behind an access token (revenue is among the
//! KPIs): without it 401 with a challenge a browser answers by asking; with it as a bearer token
//! (Prometheus' `authorization`) or as the Basic password (a browser) the KPIs are served; the
//! health checks stay open for the orchestrator. And the collector's public port serves no
//! `/metrics`: they are on its admin listener.

use std::time::{Duration, Instant};

use northstar_e2e::{signed_up, Stack};

const TOKEN: &str = "kpi-board-token-271828";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kpis_need_the_token_and_health_checks_do_not() {
    let mut stack = Stack::start_core().await;
    let file = stack.dir.path().join("kpi-token");
    std::fs::write(&file, format!("{TOKEN}\n")).expect("token file");
    stack.service_env.push((
        "metrics".into(),
        "NORTHSTAR_ACCESS_TOKEN_FILE".into(),
        file.display().to_string(),
    ));
    stack
        .env
        .push(("NORTHSTAR_EMIT_INTERVAL_MS".into(), "500".into()));
    stack.start_services().await;
    stack.send_batches(&signed_up("tok", 0, 50), 50).await;

    let http = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{}", stack.ports.metrics);
    for path in ["/metrics", "/", "/api/v1/kpis"] {
        let r = http.get(format!("{base}{path}")).send().await.expect("get");
        assert_eq!(r.status(), 401, "{path} without the token");
        let challenge = r
            .headers()
            .get("www-authenticate")
            .map(|v| v.to_str().unwrap_or(""));
        assert_eq!(challenge, Some("Basic realm=\"northstar\""), "{path}");
        let wrong = http
            .get(format!("{base}{path}"))
            .bearer_auth("nope")
            .send()
            .await;
        assert_eq!(
            wrong.expect("get").status(),
            401,
            "{path} with a wrong token"
        );
    }
    for path in ["/healthz", "/readyz"] {
        let r = http.get(format!("{base}{path}")).send().await.expect("get");
        assert_eq!(r.status(), 200, "{path} stays open");
    }
    let board = http
        .get(format!("{base}/"))
        .basic_auth("someone", Some(TOKEN))
        .send()
        .await;
    let board = board.expect("board");
    assert_eq!(board.status(), 200);
    assert!(
        board.text().await.expect("html").contains("<html"),
        "the board"
    );

    // The 50 events reach the exposition, read with the token as Prometheus would.
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut text = String::new();
    while Instant::now() < deadline {
        let r = http
            .get(format!("{base}/metrics"))
            .bearer_auth(TOKEN)
            .send()
            .await;
        text = r.expect("metrics").text().await.unwrap_or_default();
        if text
            .lines()
            .any(|l| l.starts_with("northstar_kpi_") && l.contains("Signed Up"))
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(
        text.lines()
            .any(|l| l.starts_with("northstar_kpi_") && l.contains("Signed Up")),
        "KPIs with the token:\n{text}\n{}",
        stack.logs()
    );

    // The collector: no /metrics on its public port, all of them on the admin listener.
    let public = http
        .get(format!("{}/metrics", stack.ingest_url()))
        .send()
        .await;
    assert_eq!(public.expect("public").status(), 404);
    let admin = http
        .get(stack.ingest_metrics_url())
        .send()
        .await
        .expect("admin");
    assert!(admin
        .text()
        .await
        .expect("text")
        .contains("northstar_ingest_"));
    assert!(stack.shutdown().is_empty());
}
