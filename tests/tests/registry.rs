//! The schema registry against real clients: the Rust `schema_registry_converter` crate and
//! Confluent's own Python client (`confluent-kafka`), plus restart durability.

use std::process::Command;
use std::time::Duration;

use northstar_e2e::{wait_for_http, Stack};
use northstar_schemas::apache_avro::types::Value;
use schema_registry_converter::async_impl::avro::{AvroDecoder, AvroEncoder};
use schema_registry_converter::async_impl::schema_registry::SrSettings;
use schema_registry_converter::schema_registry_common::{
    SchemaType, SubjectNameStrategy, SuppliedSchema,
};
use serde_json::{json, Value as Json};

const HEARTBEAT: &str = r#"{"type":"record","name":"Heartbeat","namespace":"test","fields":[{"name":"beat","type":"long"}]}"#;
const HEARTBEAT_V2: &str = r#"{"type":"record","name":"Heartbeat","namespace":"test","fields":[{"name":"beat","type":"long"},{"name":"host","type":"string","default":"?"}]}"#;

async fn json_of(resp: reqwest::Response) -> (u16, Json) {
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Json::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn converter_round_trip_errors_and_restart_durability() {
    let mut stack = Stack::start_core().await;
    let url = stack.registry_url();
    let settings = SrSettings::new(url.clone());
    let encoder = AvroEncoder::new(settings.clone());
    let strategy = SubjectNameStrategy::TopicNameStrategyWithSchema(
        "heartbeats".into(),
        false,
        SuppliedSchema::new(
            Some("test.Heartbeat".into()),
            SchemaType::Avro,
            HEARTBEAT.into(),
        ),
    );
    let bytes = encoder
        .encode(vec![("beat", Value::Long(42))], strategy)
        .await
        .expect("encode registers");
    assert_eq!(bytes[0], 0, "magic byte");
    let id = u32::from_be_bytes([bytes[1], bytes[2], bytes[3], bytes[4]]);
    let decoded = AvroDecoder::new(settings)
        .decode(Some(&bytes))
        .await
        .expect("decode");
    assert_eq!(
        decoded.value,
        Value::Record(vec![("beat".into(), Value::Long(42))])
    );

    let http = reqwest::Client::new();
    let (status, body) = json_of(
        http.get(format!("{url}/subjects/heartbeats-value/versions/latest"))
            .send()
            .await
            .expect("get"),
    )
    .await;
    assert_eq!(
        (status, body["id"].as_u64(), body["version"].as_u64()),
        (200, Some(id as u64), Some(1))
    );
    // Confluent error JSON.
    let (status, body) = json_of(
        http.post(format!("{url}/subjects/x-value/versions"))
            .json(&json!({"schema": "{bad"}))
            .send()
            .await
            .expect("post"),
    )
    .await;
    assert_eq!(
        (status, body["error_code"].as_u64()),
        (422, Some(42201)),
        "{body}"
    );
    assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()));
    let (status, body) = json_of(
        http.get(format!("{url}/subjects/nope/versions"))
            .send()
            .await
            .expect("get"),
    )
    .await;
    assert_eq!((status, body["error_code"].as_u64()), (404, Some(40401)));
    let (status, body) = json_of(
        http.get(format!("{url}/subjects/heartbeats-value/versions/7"))
            .send()
            .await
            .expect("get"),
    )
    .await;
    assert_eq!((status, body["error_code"].as_u64()), (404, Some(40402)));
    let (status, body) = json_of(
        http.get(format!("{url}/config/heartbeats-value"))
            .send()
            .await
            .expect("get"),
    )
    .await;
    assert_eq!((status, body["error_code"].as_u64()), (404, Some(40408)));
    let (status, body) = json_of(
        http.put(format!("{url}/config/heartbeats-value"))
            .json(&json!({"compatibility": "FULL"}))
            .send()
            .await
            .expect("put"),
    )
    .await;
    assert_eq!(
        (status, body["compatibility"].as_str()),
        (200, Some("FULL"))
    );
    let (_, body) = json_of(
        http.post(format!("{url}/subjects/heartbeats-value/versions"))
            .json(&json!({"schema": HEARTBEAT_V2}))
            .send()
            .await
            .expect("post"),
    )
    .await;
    let id2 = body["id"].as_u64().expect("v2 registered");

    // Restart: everything comes back from the _schemas topic, ids stable, no id reused.
    let reg = stack.proc("registry").expect("registry");
    assert!(
        reg.terminate(Duration::from_secs(10)),
        "registry exits cleanly on SIGTERM"
    );
    stack.procs.retain(|p| p.name != "registry");
    stack.start_registry();
    assert!(
        wait_for_http(&format!("{url}/subjects"), Duration::from_secs(60)).await,
        "{}",
        stack.logs()
    );
    let (_, body) = json_of(
        http.get(format!("{url}/subjects/heartbeats-value/versions"))
            .send()
            .await
            .expect("get"),
    )
    .await;
    assert_eq!(body, json!([1, 2]));
    let (_, body) = json_of(
        http.get(format!("{url}/schemas/ids/{id}"))
            .send()
            .await
            .expect("get"),
    )
    .await;
    assert_eq!(body["schema"].as_str(), Some(HEARTBEAT));
    let (_, body) = json_of(
        http.get(format!("{url}/config/heartbeats-value"))
            .send()
            .await
            .expect("get"),
    )
    .await;
    assert_eq!(body["compatibilityLevel"].as_str(), Some("FULL"));
    let (_, body) = json_of(
        http.post(format!("{url}/subjects/heartbeats-value/versions"))
            .json(&json!({"schema": HEARTBEAT}))
            .send()
            .await
            .expect("post"),
    )
    .await;
    assert_eq!(
        body["id"].as_u64(),
        Some(id as u64),
        "same schema, same id after restart"
    );
    let (_, body) = json_of(
        http.post(format!("{url}/subjects/other-value/versions"))
            .json(&json!({"schema": r#"{"type":"record","name":"Other","fields":[{"name":"a","type":"int"}]}"#}))
            .send()
            .await
            .expect("post"),
    )
    .await;
    assert_eq!(
        body["id"].as_u64(),
        Some(id2 + 1),
        "ids continue after the highest one"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn confluent_python_client_works_unchanged() {
    let stack = Stack::start_core().await;
    let dir = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/compat/test_registry_confluent.py"
    );
    let out = Command::new(northstar_e2e::python())
        .args(["-m", "pytest", "-q", "-p", "no:cacheprovider", dir])
        .env("NORTHSTAR_REGISTRY_URL", stack.registry_url())
        .env("NORTHSTAR_BROKERS", stack.brokers())
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run {} (run tests/setup-python.sh): {e}",
                northstar_e2e::python()
            )
        });
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    println!("{text}");
    assert!(
        out.status.success(),
        "confluent-kafka compatibility tests failed:\n{text}\n{}",
        stack.logs()
    );
    assert!(
        text.contains("5 passed"),
        "expected all 5 Python tests to run:\n{text}"
    );
}
