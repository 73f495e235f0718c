//! An S3-compatible server for tests: moto's server mode (PyPI, installed by
//! `tests/setup-python.sh`), one per test, on a free loopback port, state in memory.

use std::process::Command;
use std::time::Duration;

use crate::{free_port, python, wait_for_http, Proc};

/// A running moto S3 server.
#[derive(Debug)]
pub struct S3Server {
    proc: Proc,
    _dir: tempfile::TempDir,
    pub port: u16,
}

impl S3Server {
    /// Starts moto and waits until it answers.
    pub async fn start() -> S3Server {
        #[allow(clippy::expect_used)]
        let dir = tempfile::Builder::new()
            .prefix("northstar-s3-")
            .tempdir()
            .expect("tempdir");
        let port = free_port();
        let mut cmd = Command::new(python());
        cmd.args([
            "-m",
            "moto.server",
            "-H",
            "127.0.0.1",
            "-p",
            &port.to_string(),
        ]);
        let proc = Proc::spawn("moto", cmd, dir.path());
        let server = S3Server {
            proc,
            _dir: dir,
            port,
        };
        assert!(
            wait_for_http(
                &format!("{}/moto-api/", server.endpoint()),
                Duration::from_secs(60)
            )
            .await,
            "moto did not start (tests/setup-python.sh installs it):\n{}",
            server.proc.log_tail(30)
        );
        server
    }

    /// Its endpoint URL.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The standard AWS variables that point a client at this server.
    pub fn env(&self) -> Vec<(String, String)> {
        [
            ("AWS_ENDPOINT_URL", self.endpoint()),
            ("AWS_ACCESS_KEY_ID", "northstar-test".into()),
            ("AWS_SECRET_ACCESS_KEY", "northstar-test-secret".into()),
            ("AWS_REGION", "us-east-1".into()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    }

    /// [`S3Server::env`] with the endpoint replaced by `endpoint` (a proxy in front of this
    /// server, which a test can cut).
    pub fn env_via(&self, endpoint: &str) -> Vec<(String, String)> {
        let mut env = self.env();
        for (k, v) in env.iter_mut() {
            if k == "AWS_ENDPOINT_URL" {
                *v = endpoint.to_string();
            }
        }
        env
    }

    /// Creates `bucket`.
    pub async fn create_bucket(&self, bucket: &str) {
        let resp = reqwest::Client::new()
            .put(format!("{}/{bucket}", self.endpoint()))
            .send()
            .await;
        assert!(
            resp.as_ref().is_ok_and(|r| r.status().is_success()),
            "cannot create bucket {bucket}: {resp:?}"
        );
    }

    /// Multipart uploads of `bucket` started and neither completed nor aborted
    /// (ListMultipartUploads).
    pub async fn pending_uploads(&self, bucket: &str) -> usize {
        #[allow(clippy::expect_used)]
        let body = reqwest::Client::new()
            .get(format!("{}/{bucket}?uploads", self.endpoint()))
            .send()
            .await
            .expect("ListMultipartUploads")
            .text()
            .await
            .expect("ListMultipartUploads body");
        body.matches("<Upload>").count()
    }

    /// The tail of its log.
    pub fn log_tail(&self) -> String {
        self.proc.log_tail(30)
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        self.proc.kill();
    }
}
