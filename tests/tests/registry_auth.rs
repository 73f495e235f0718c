//! The registry with authentication on, as a platform team would run it: an auth file (a
//! mounted Secret) with a read-write user for the services, a read-only user for dashboards and
//! a bearer token. Confluent's Python client registers with the read-write user (also given in
//! the URL), reads but cannot write with the read-only one, and is refused without or with wrong
//! credentials; the pipeline's own services register and fetch their schemas with
//! `NORTHSTAR_REGISTRY_AUTH__BASIC_AUTH_USER_INFO`, so events reach the lake and the KPIs; a
//! bearer token works over plain HTTP; no log shows a password.

use std::process::Command;
use std::time::Duration;

use northstar_e2e::{signed_up, Stack};

const RW: &str = "northstar-services:rw-secret-3141";
const RO: &str = "grafana:ro-secret-2718";
const TOKEN: &str = "tok-1618";

/// The auth file: the read-only user by its SHA-256, as an operator who keeps no password in
/// clear would write it.
fn auth_file(stack: &Stack) -> std::path::PathBuf {
    use sha2::Digest;
    let ro_hash: String = sha2::Sha256::digest(b"ro-secret-2718")
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let path = stack.dir.path().join("registry-auth.toml");
    let text = format!(
        "[users.northstar-services]\npassword = \"rw-secret-3141\"\nrole = \"read_write\"\n\
         [users.grafana]\npassword_sha256 = \"{ro_hash}\"\nrole = \"read_only\"\n\
         [tokens.ci]\ntoken = \"{TOKEN}\"\nrole = \"read_write\"\n"
    );
    std::fs::write(&path, text).expect("auth file");
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_known_callers_use_the_registry_and_the_pipeline_still_flows() {
    let mut stack = Stack::start_core().await;
    let file = auth_file(&stack);
    stack.kill9("registry");
    stack.service_env.push((
        "registry".into(),
        "NORTHSTAR_AUTH_FILE".into(),
        file.display().to_string(),
    ));
    stack.env.push((
        "NORTHSTAR_REGISTRY_AUTH__BASIC_AUTH_USER_INFO".into(),
        RW.into(),
    ));
    stack.fast_output();
    stack.restart("registry");
    let health = format!("{}/healthz", stack.registry_url());
    assert!(northstar_e2e::wait_for_http(&health, Duration::from_secs(60)).await);

    // Plain HTTP: 401 with a challenge without credentials, 200 with the token.
    let http = reqwest::Client::new();
    let subjects = format!("{}/subjects", stack.registry_url());
    let open = http.get(&subjects).send().await.expect("get");
    assert_eq!(open.status(), 401);
    assert!(open.headers().contains_key("www-authenticate"));
    let with_token = http
        .get(&subjects)
        .bearer_auth(TOKEN)
        .send()
        .await
        .expect("get");
    assert_eq!(with_token.status(), 200);

    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/compat/test_registry_auth.py");
    let out = Command::new(northstar_e2e::python())
        .args(["-m", "pytest", "-q", "-p", "no:cacheprovider", script])
        .env("NORTHSTAR_REGISTRY_URL", stack.registry_url())
        .env("RW_USER_INFO", RW)
        .env("RO_USER_INFO", RO)
        .output()
        .expect("run pytest");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{text}\n{}", stack.logs());
    assert!(text.contains("6 passed"), "{text}");

    stack.start_services().await;
    stack.send_batches(&signed_up("auth", 0, 200), 50).await;
    let (sums, rows) = northstar_e2e::await_counted(&stack, 200, Duration::from_secs(90)).await;
    let expected = std::collections::BTreeMap::from([("Signed Up".to_string(), 200.0)]);
    assert_eq!(sums, expected, "{}", stack.logs());
    assert_eq!(rows, 200, "{}", stack.logs());

    let logs: String = std::fs::read_dir(stack.dir.path())
        .expect("dir")
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "log"))
        .map(|e| std::fs::read_to_string(e.path()).unwrap_or_default())
        .collect();
    for secret in ["rw-secret-3141", "ro-secret-2718", TOKEN] {
        assert!(!logs.contains(secret), "a log shows {secret}");
    }
    let metrics = http
        .get(format!(
            "http://127.0.0.1:{}/metrics",
            stack.ports.registry_admin
        ))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    assert!(
        metrics.contains("northstar_registry_requests_denied_total{reason=\"unauthenticated\"}"),
        "{metrics}"
    );
    // The API's port serves no /metrics (the admin listener does).
    let public = http
        .get(format!("{}/metrics", stack.registry_url()))
        .bearer_auth(TOKEN)
        .send()
        .await
        .expect("get");
    assert_eq!(public.status(), 404);
}
