//! The start-up check of the Kafka settings: one metadata request, so that refused credentials,
//! an untrusted certificate or a plaintext client on a TLS listener end a start with one clear
//! error instead of librdkafka retrying in the background every few milliseconds.
//!
//! Contract: [`preflight`] fails only on what a retry cannot fix (the settings are refused by
//! librdkafka, the brokers refuse the credentials or the TLS handshake, the listener speaks
//! another protocol). Brokers that cannot be reached are not an error: the services ride out
//! outages, so the check gives up after `kafka.startup_check_secs` (or at once when every
//! broker refused the connection) with a warning, and the start goes on.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::error::KafkaError;
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::ClientContext;

use super::KafkaConfig;

/// Why the Kafka settings cannot work; each message says what to check.
#[derive(Debug, thiserror::Error)]
pub enum PreflightError {
    /// librdkafka refused the settings themselves (an unknown property, a missing file).
    #[error("invalid Kafka client settings ({shown}): {reason}")]
    Settings { shown: String, reason: String },
    /// The brokers refused the SASL credentials.
    #[error(
        "Kafka at {brokers} refused the SASL credentials of user {user:?} ({mechanism}): \
         {reason}; check kafka.properties.sasl_username and the password \
         (kafka.secret_files.sasl_password or NORTHSTAR_KAFKA__PROPERTIES__SASL_PASSWORD)"
    )]
    Authentication {
        brokers: String,
        user: String,
        mechanism: String,
        reason: String,
    },
    /// The TLS handshake failed (most often: the brokers' certificate is not signed by the CA
    /// this client trusts, or names another host).
    #[error(
        "TLS to Kafka at {brokers} failed: {reason}; check kafka.properties.ssl_ca_location \
         (the CA that signed the brokers' certificates) and that the broker addresses match \
         the names in their certificates"
    )]
    Tls { brokers: String, reason: String },
    /// The listener speaks another protocol than `security.protocol` says.
    #[error(
        "Kafka at {brokers} does not speak security.protocol={protocol}: {reason}; check \
         kafka.properties.security_protocol against the brokers' listener (a TLS listener \
         closes a plaintext client's first request: SASL_SSL or SSL)"
    )]
    Protocol {
        brokers: String,
        protocol: String,
        reason: String,
    },
}

/// What a failed connection attempt was, as far as the check is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Failure {
    Authentication,
    Tls,
    Protocol,
    /// Every broker is down (connections refused): nothing to wait for.
    AllDown,
}

/// Classifies librdkafka's error callback; `None` for errors a retry may fix.
fn classify(error: &KafkaError, reason: &str) -> Option<Failure> {
    match error.rdkafka_error_code() {
        Some(RDKafkaErrorCode::Authentication) => Some(Failure::Authentication),
        Some(RDKafkaErrorCode::SSL) => Some(Failure::Tls),
        Some(RDKafkaErrorCode::AllBrokersDown) => Some(Failure::AllDown),
        _ if reason.contains("incorrect security.protocol") => Some(Failure::Protocol),
        _ if reason.contains("SSL handshake failed") => Some(Failure::Tls),
        _ => None,
    }
}

/// How long the check waits for a reason once every broker is down.
const ALL_DOWN_GRACE: Duration = Duration::from_secs(2);

/// A context keeping the first failure librdkafka reports, with its reason.
#[derive(Default)]
struct FirstFailure(Mutex<Vec<(Failure, String)>>);

impl FirstFailure {
    /// The most telling failure seen: a definitive one before "all brokers down" (which
    /// librdkafka reports after any of them).
    fn worst(&self) -> Option<(Failure, String)> {
        let seen = self.0.lock().unwrap_or_else(|p| p.into_inner());
        seen.iter()
            .find(|(f, _)| *f != Failure::AllDown)
            .or_else(|| seen.first())
            .cloned()
    }
}

impl FirstFailure {
    fn record(&self, failure: Failure, reason: &str) {
        let mut seen = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if seen.len() < 8 {
            seen.push((failure, reason.to_string()));
        }
    }
}

impl ClientContext for FirstFailure {
    fn error(&self, error: KafkaError, reason: &str) {
        if let Some(failure) = classify(&error, reason) {
            self.record(failure, reason);
        }
    }

    /// A failed TLS handshake reaches only the log (`FAIL`), not the error callback.
    fn log(&self, level: rdkafka::config::RDKafkaLogLevel, fac: &str, message: &str) {
        if fac == "FAIL" {
            if let Some(failure) = classify_log(message) {
                self.record(failure, message);
            }
        }
        rdkafka::client::DefaultClientContext.log(level, fac, message);
    }
}

/// Classifies a connection failure librdkafka logs.
fn classify_log(message: &str) -> Option<Failure> {
    if message.contains("SASL authentication error") {
        Some(Failure::Authentication)
    } else if message.contains("SSL handshake failed")
        || message.contains("certificate verify failed")
    {
        Some(Failure::Tls)
    } else if message.contains("incorrect security.protocol")
        || (message.contains("Disconnected") && message.contains("APIVERSION_QUERY"))
    {
        Some(Failure::Protocol)
    } else {
        None
    }
}

impl ConsumerContext for FirstFailure {}

/// Checks the Kafka settings against the brokers (see the module's contract). Blocking work
/// runs off the async threads.
pub async fn preflight(kafka: &KafkaConfig) -> Result<(), PreflightError> {
    let kafka = kafka.clone();
    match tokio::task::spawn_blocking(move || check(&kafka)).await {
        Ok(result) => result,
        Err(e) => {
            tracing::warn!(error = %e, "the Kafka start-up check did not finish; going on");
            Ok(())
        }
    }
}

fn check(kafka: &KafkaConfig) -> Result<(), PreflightError> {
    let shown = || format!("{:?}", kafka.shown_properties());
    // Info level whatever the log filter says: some failures are only logged, at that level.
    let client: BaseConsumer<FirstFailure> = kafka
        .client_config("northstar-preflight")
        .set_log_level(rdkafka::config::RDKafkaLogLevel::Info)
        .create_with_context(FirstFailure::default())
        .map_err(|e| PreflightError::Settings {
            shown: shown(),
            reason: e.to_string(),
        })?;
    let deadline = Instant::now() + Duration::from_secs(kafka.startup_check_secs.max(1));
    let mut all_down: Option<Instant> = None;
    loop {
        let answered = client.fetch_metadata(None, Duration::from_millis(500));
        if answered.is_ok() {
            tracing::info!(brokers = %kafka.brokers, protocol = %kafka.security_protocol(), "kafka reachable");
            return Ok(());
        }
        // A consumer's error events reach its context only through its queue.
        let _ = client.poll(Duration::ZERO);
        match client.context().worst() {
            // Every broker down: wait a moment for the reason (a TLS listener closing on a
            // plaintext client is logged after the disconnect), then go on without them.
            Some((Failure::AllDown, reason)) => {
                let since = *all_down.get_or_insert_with(Instant::now);
                if since.elapsed() >= ALL_DOWN_GRACE {
                    unreachable(kafka, &reason);
                    return Ok(());
                }
            }
            Some((failure, reason)) => return Err(refused(kafka, failure, reason)),
            None if Instant::now() >= deadline => {
                let reason = answered.err().map(|e| e.to_string()).unwrap_or_default();
                unreachable(kafka, &reason);
                return Ok(());
            }
            None => {}
        }
    }
}

fn unreachable(kafka: &KafkaConfig, reason: &str) {
    tracing::warn!(
        brokers = %kafka.brokers,
        reason,
        "kafka not reachable at start; going on, its clients keep retrying"
    );
}

fn refused(kafka: &KafkaConfig, failure: Failure, reason: String) -> PreflightError {
    let cfg = kafka.client_config("-");
    let brokers = kafka.brokers.clone();
    match failure {
        Failure::Authentication => PreflightError::Authentication {
            brokers,
            user: cfg.get("sasl.username").unwrap_or_default().to_string(),
            mechanism: cfg
                .get("sasl.mechanism")
                .or(cfg.get("sasl.mechanisms"))
                .unwrap_or("GSSAPI")
                .to_string(),
            reason,
        },
        Failure::Tls => PreflightError::Tls { brokers, reason },
        Failure::Protocol | Failure::AllDown => PreflightError::Protocol {
            brokers,
            protocol: kafka.security_protocol(),
            reason,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_are_told_apart() {
        let global = |c| KafkaError::Global(c);
        assert_eq!(
            classify(
                &global(RDKafkaErrorCode::Authentication),
                "SASL authentication error: invalid-proof"
            ),
            Some(Failure::Authentication)
        );
        assert_eq!(
            classify(&global(RDKafkaErrorCode::SSL), "certificate verify failed"),
            Some(Failure::Tls)
        );
        let mismatch = "Disconnected while requesting ApiVersion: might be caused by incorrect \
                        security.protocol configuration (connecting to a SSL listener?)";
        assert_eq!(
            classify(&global(RDKafkaErrorCode::BrokerTransportFailure), mismatch),
            Some(Failure::Protocol)
        );
        assert_eq!(
            classify(
                &global(RDKafkaErrorCode::BrokerTransportFailure),
                "Connection refused"
            ),
            None
        );
    }

    #[test]
    fn logged_failures_are_told_apart() {
        let tls = "sasl_ssl://127.0.0.1:1/bootstrap: SSL handshake failed: error:0A000086:SSL \
                   routines::certificate verify failed: broker certificate could not be verified";
        assert_eq!(classify_log(tls), Some(Failure::Tls));
        let sasl = "SASL authentication error: SASL SCRAM authentication failed: broker \
                    responded with invalid-proof";
        assert_eq!(classify_log(sasl), Some(Failure::Authentication));
        let closed = "Disconnected: connection closed by peer: receive 0 after POLLIN (after 0ms \
                      in state APIVERSION_QUERY)";
        assert_eq!(classify_log(closed), Some(Failure::Protocol));
        assert_eq!(
            classify_log("Connect to ipv4#127.0.0.1:1 failed: Connection refused"),
            None
        );
    }

    #[test]
    fn a_definitive_failure_wins_over_all_brokers_down() {
        let ctx = FirstFailure::default();
        ctx.error(
            KafkaError::Global(RDKafkaErrorCode::AllBrokersDown),
            "1/1 brokers are down",
        );
        ctx.error(
            KafkaError::Global(RDKafkaErrorCode::Authentication),
            "invalid-proof",
        );
        assert_eq!(ctx.worst().map(|w| w.0), Some(Failure::Authentication));
    }

    /// Settings librdkafka refuses are an error at once, and name no secret.
    #[tokio::test]
    async fn refused_settings_are_an_error_without_the_secret() {
        let mut kafka = KafkaConfig::default();
        kafka
            .properties
            .insert("no.such.property".into(), "1".into());
        kafka
            .properties
            .insert("sasl.password".into(), "hunter2".into());
        let err = preflight(&kafka).await.expect_err("refused");
        let text = err.to_string();
        assert!(text.contains("no.such.property"), "{text}");
        assert!(!text.contains("hunter2"), "{text}");
    }

    /// Nothing listening: a warning, not an error, and no wait for the whole check time.
    #[tokio::test]
    async fn unreachable_brokers_are_not_an_error() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .unwrap_or(1);
        let kafka = KafkaConfig {
            brokers: format!("127.0.0.1:{port}"),
            startup_check_secs: 30,
            ..Default::default()
        };
        let started = Instant::now();
        preflight(&kafka).await.expect("not an error");
        assert!(started.elapsed() < Duration::from_secs(20));
    }
}
