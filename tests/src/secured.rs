//! A stack on a secured broker: SASL/SCRAM-SHA-512 enforced by Tansu, TLS in front of it
//! ([`crate::tls`]), and every service and command configured the way a deployment would be:
//! `security.protocol`, the mechanism and the user as properties, the CA as a file, the
//! password from a file (`kafka.secret_files`).
//!
//! Contract: [`Stack::start_secured`] returns a stack whose only broker address is the TLS
//! front; a client without TLS, without the CA or with another password is refused there.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use crate::tls::{TestPki, TlsFront};
use crate::{free_port, tansu_bin, Stack};

/// The SCRAM user every service connects as.
pub const KAFKA_USER: &str = "northstar-services";

/// What a secured stack adds to a plain one.
#[derive(Debug)]
pub struct Secured {
    /// The broker's own (plaintext) port, reached only through the front.
    pub broker_port: u16,
    /// Whether the broker requires SASL (false only while the users are being created).
    pub authenticate: bool,
    pub pki: TestPki,
    /// The file holding the services' password.
    pub password_file: PathBuf,
    pub front: Option<TlsFront>,
}

impl Stack {
    /// Starts a broker requiring SASL/SCRAM behind TLS, creates the topics and starts the
    /// registry, all through the front with the services' credentials.
    pub async fn start_secured() -> Stack {
        let mut stack = Self::unstarted(None);
        let dir = stack.dir.path().to_path_buf();
        let pki = TestPki::create(&dir).expect("test certificates");
        let password = format!("pw-{}", std::process::id());
        let password_file = dir.join("kafka-password");
        std::fs::write(&password_file, format!("{password}\n")).expect("password file");
        stack.secured = Some(Secured {
            broker_port: free_port(),
            authenticate: false,
            pki: pki.clone(),
            password_file: password_file.clone(),
            front: None,
        });
        // Users can only be created on a broker that does not yet require them.
        stack.start_broker();
        stack.create_scram_user(KAFKA_USER, &password);
        if let Some(p) = stack.proc("tansu") {
            p.terminate(Duration::from_secs(10));
        }
        stack.procs.retain(|p| p.name != "tansu");
        let target = {
            let s = stack.secured.as_mut().expect("secured");
            s.authenticate = true;
            std::net::SocketAddr::from(([127, 0, 0, 1], s.broker_port))
        };
        stack.start_broker();
        let front = TlsFront::start(stack.ports.broker, target, &pki)
            .await
            .expect("TLS front");
        if let Some(s) = stack.secured.as_mut() {
            s.front = Some(front);
        }
        stack.env.extend(client_env(&pki.ca, &password_file));
        stack.start_topics_and_registry().await;
        stack
    }

    /// Creates a SCRAM-SHA-512 user with Tansu's own command (AlterUserScramCredentials).
    pub fn create_scram_user(&self, user: &str, password: &str) {
        let port = self
            .secured
            .as_ref()
            .map_or(self.ports.broker, |s| s.broker_port);
        let out = Command::new(tansu_bin())
            .args(["user", "create", "--broker"])
            .arg(format!("tcp://127.0.0.1:{port}"))
            .args([user, password])
            .output()
            .expect("tansu user create");
        assert!(
            out.status.success(),
            "tansu user create failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// The environment of a client of the secured broker: TLS verified against `ca`, SCRAM with
/// the password read from `password_file`.
pub fn client_env(ca: &std::path::Path, password_file: &std::path::Path) -> Vec<(String, String)> {
    [
        (
            "NORTHSTAR_KAFKA__PROPERTIES__SECURITY_PROTOCOL",
            "SASL_SSL".to_string(),
        ),
        (
            "NORTHSTAR_KAFKA__PROPERTIES__SASL_MECHANISM",
            "SCRAM-SHA-512".into(),
        ),
        (
            "NORTHSTAR_KAFKA__PROPERTIES__SASL_USERNAME",
            KAFKA_USER.into(),
        ),
        (
            "NORTHSTAR_KAFKA__PROPERTIES__SSL_CA_LOCATION",
            ca.display().to_string(),
        ),
        (
            "NORTHSTAR_KAFKA__SECRET_FILES__SASL_PASSWORD",
            password_file.display().to_string(),
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}
