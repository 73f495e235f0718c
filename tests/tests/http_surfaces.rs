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

/// The registry and the collector serving HTTPS from PEM files (no terminating proxy): the
/// collector registers its schema over HTTPS trusting the test CA
/// (`NORTHSTAR_REGISTRY_AUTH__CA_FILE`), an HTTPS client sends it events, plain HTTP on the
/// same ports gets no answer, and the admin listener stays plain on loopback.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_collector_and_the_registry_serve_https() {
    let mut stack = Stack::start_core().await;
    let pki = northstar_e2e::tls::TestPki::create(stack.dir.path()).expect("certificates");
    for service in ["ingest", "registry"] {
        for (k, v) in [
            ("NORTHSTAR_TLS__CERT", &pki.server_cert),
            ("NORTHSTAR_TLS__KEY", &pki.server_key),
        ] {
            let v = v.display().to_string();
            stack.service_env.push((service.into(), k.into(), v));
        }
    }
    let registry = format!("https://127.0.0.1:{}", stack.ports.registry);
    stack
        .env
        .push(("NORTHSTAR_REGISTRY_URL".into(), registry.clone()));
    let ca_file = pki.ca.display().to_string();
    stack
        .env
        .push(("NORTHSTAR_REGISTRY_AUTH__CA_FILE".into(), ca_file));
    stack.kill9("registry");
    stack.restart("registry");

    let ca = reqwest::Certificate::from_pem(&std::fs::read(&pki.ca).expect("ca")).expect("pem");
    let https = reqwest::Client::builder()
        .add_root_certificate(ca)
        .build()
        .expect("client");
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut subjects = None;
    while Instant::now() < deadline && subjects.is_none() {
        subjects = https.get(format!("{registry}/subjects")).send().await.ok();
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let status = subjects.map(|r| r.status().as_u16());
    assert_eq!(status, Some(200), "{}", stack.logs());

    stack.start_ingest();
    let collector = format!("https://127.0.0.1:{}", stack.ports.ingest);
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut ready = false;
    while Instant::now() < deadline && !ready {
        let r = https.get(format!("{collector}/readyz")).send().await;
        ready = r.is_ok_and(|r| r.status() == 200);
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert!(ready, "collector over https\n{}", stack.logs());
    let sent = https
        .post(format!("{collector}/v1/batch"))
        .header("authorization", northstar_e2e::write_key_auth())
        .json(&serde_json::json!({ "batch": signed_up("tls", 0, 10) }))
        .send()
        .await
        .expect("https batch");
    assert_eq!(sent.status(), 200);
    for port in [stack.ports.registry, stack.ports.ingest] {
        let plain = reqwest::get(format!("http://127.0.0.1:{port}/healthz")).await;
        assert!(plain.is_err(), "plain HTTP answered on {port}");
    }
    let admin = reqwest::get(stack.ingest_metrics_url())
        .await
        .expect("admin");
    assert_eq!(admin.status(), 200);
    assert!(stack.shutdown().is_empty());
}
