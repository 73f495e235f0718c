//! The whole pipeline on a broker that enforces TLS and SASL/SCRAM-SHA-512 (Tansu with
//! `--authentication` behind a TLS front whose certificate a CA made by the test signed:
//! northstar_e2e::secured). Every service and command connects with the same settings
//! (`security.protocol=SASL_SSL`, the CA file, the user, the password from a file), events flow
//! HTTP → lake and KPIs; then a client with a wrong password, one trusting another CA and one
//! without TLS are each refused at start-up with a clear error, within seconds, and no log
//! line shows the password.

use std::process::Command;
use std::time::{Duration, Instant};

use northstar_e2e::{bin, signed_up, Stack};

const EVENTS: usize = 300;

/// Runs `program args` with the stack's client settings and `overrides`, for at most 60 s;
/// returns whether it failed, what it printed, and how long it took.
fn run_with(
    stack: &Stack,
    program: &str,
    args: &[&str],
    overrides: &[(&str, String)],
) -> (bool, String, Duration) {
    let t0 = Instant::now();
    let out = Command::new("timeout")
        .arg("60")
        .arg(bin(program))
        .args(args)
        .current_dir(stack.dir.path())
        .envs(stack.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .env("NORTHSTAR_KAFKA__BROKERS", stack.brokers())
        .env("NORTHSTAR_REGISTRY_URL", stack.registry_url())
        .env(
            "NORTHSTAR_LISTEN",
            format!("127.0.0.1:{}", northstar_e2e::free_port()),
        )
        .envs(overrides.iter().map(|(k, v)| (*k, v.as_str())))
        .env("RUST_LOG", "info,librdkafka=warn,rdkafka=warn")
        .output()
        .expect("run");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (!out.status.success(), text, t0.elapsed())
}

/// Each refused client: the command fails within 30 s and says why.
fn assert_refused(stack: &Stack, overrides: &[(&str, String)], says: &str) {
    for (program, args) in [
        (
            "northstar-schemas",
            vec!["create-topics", "--partitions", "3"],
        ),
        ("northstar-stream-processor", vec![]),
    ] {
        let (failed, text, took) = run_with(stack, program, &args, overrides);
        assert!(failed, "{program} with {overrides:?} did not fail:\n{text}");
        assert!(
            text.contains(says),
            "{program} with {overrides:?} did not say {says:?}:\n{text}"
        );
        assert!(
            took < Duration::from_secs(30),
            "{program} took {took:?} to give up:\n{text}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pipeline_runs_on_a_broker_enforcing_tls_and_scram() {
    let mut stack = Stack::start_secured().await;
    stack.fast_output();
    stack.start_services().await;
    stack.send_batches(&signed_up("tls", 0, EVENTS), 50).await;

    let expected = std::collections::BTreeMap::from([("Signed Up".to_string(), EVENTS as f64)]);
    let (sums, rows) = northstar_e2e::await_counted(&stack, EVENTS, Duration::from_secs(120)).await;
    assert_eq!(sums, expected, "KPIs over SASL_SSL\n{}", stack.logs());
    assert_eq!(rows, EVENTS, "lake rows over SASL_SSL\n{}", stack.logs());

    let secured = stack.secured.as_ref().expect("secured");
    let other_ca = secured.pki.other_ca.clone();
    let password = std::fs::read_to_string(&secured.password_file).expect("password");
    let wrong = stack.dir.path().join("wrong-password");
    std::fs::write(&wrong, "not-the-password\n").expect("write");

    assert_refused(
        &stack,
        &[(
            "NORTHSTAR_KAFKA__SECRET_FILES__SASL_PASSWORD",
            wrong.display().to_string(),
        )],
        "refused the SASL credentials of user \"northstar-services\"",
    );
    assert_refused(
        &stack,
        &[(
            "NORTHSTAR_KAFKA__PROPERTIES__SSL_CA_LOCATION",
            other_ca.display().to_string(),
        )],
        "TLS to Kafka at",
    );
    assert_refused(
        &stack,
        &[(
            "NORTHSTAR_KAFKA__PROPERTIES__SECURITY_PROTOCOL",
            "SASL_PLAINTEXT".into(),
        )],
        "does not speak security.protocol=sasl_plaintext",
    );
    // With the right settings the same command goes through (the refusals were the settings'),
    // and says how the one-broker topics fall short of a production cluster's replication.
    let (failed, text, _) = run_with(
        &stack,
        "northstar-schemas",
        &[
            "create-topics",
            "--replication-factor",
            "3",
            "--min-insync-replicas",
            "2",
        ],
        &[],
    );
    assert!(!failed, "create-topics with the right settings:\n{text}");
    assert!(
        text.contains("topic _schemas exists with replication factor=1, not 3"),
        "{text}"
    );

    let logs: String = std::fs::read_dir(stack.dir.path())
        .expect("dir")
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "log"))
        .map(|e| std::fs::read_to_string(e.path()).unwrap_or_default())
        .collect();
    assert!(
        !logs.contains(password.trim()),
        "a log shows the Kafka password"
    );
    let unclean = stack.shutdown();
    assert!(unclean.is_empty(), "unclean exits: {unclean:?}");
}
