//! Starting the pipeline's services of a [`Stack`], each a separate process on its own ports.

use std::time::Duration;

use crate::{free_port, wait_for_http, write_key_auth, Proc, Stack, SOURCE_ID, WRITE_KEY};

impl Stack {
    pub fn start_ingest(&mut self) {
        let mut cmd = self.service("ingest", "northstar-ingest", &[], self.ports.ingest);
        cmd.env(format!("NORTHSTAR_WRITE_KEYS__{WRITE_KEY}"), SOURCE_ID)
            .env(
                "NORTHSTAR_ADMIN_LISTEN",
                format!("127.0.0.1:{}", self.ports.ingest_admin),
            );
        let p = Proc::spawn("ingest", cmd, self.dir.path());
        self.procs.push(p);
    }

    /// Sends `events` to the collector's `/v1/batch` in batches of `per_batch`, asserting a 200
    /// for each.
    pub async fn send_batches(&self, events: &[serde_json::Value], per_batch: usize) {
        let client = reqwest::Client::new();
        let auth = write_key_auth();
        for chunk in events.chunks(per_batch.max(1)) {
            let r = client
                .post(format!("{}/v1/batch", self.ingest_url()))
                .header("authorization", &auth)
                .json(&serde_json::json!({ "batch": chunk }))
                .send()
                .await
                .expect("send a batch to the collector");
            assert_eq!(r.status(), 200, "the collector refused a batch");
        }
    }

    /// Starts ingest and waits until it is ready (the broker answers it).
    pub async fn start_ingest_ready(&mut self) {
        self.start_ingest();
        let ready = format!("{}/readyz", self.ingest_url());
        assert!(
            wait_for_http(&ready, Duration::from_secs(60)).await,
            "ingest not ready:\n{}",
            self.logs()
        );
    }

    pub fn start_processor(&mut self) {
        let cmd = self.service(
            "processor",
            "northstar-stream-processor",
            &[],
            self.ports.processor,
        );
        let p = Proc::spawn("processor", cmd, self.dir.path());
        self.procs.push(p);
    }

    /// Starts another stream-processor instance in the same consumer group, named `name`,
    /// with its metrics on a free port.
    /// Returns the port of its `/metrics`.
    pub fn start_extra_processor(&mut self, name: &str) -> u16 {
        let port = free_port();
        let cmd = self.service(name, "northstar-stream-processor", &[], port);
        let p = Proc::spawn(name, cmd, self.dir.path());
        self.procs.push(p);
        port
    }

    pub fn start_lake_sink(&mut self) {
        let mut cmd = self.service("lake", "northstar-sink", &["lake"], self.ports.lake);
        let root = self
            .lake_root
            .clone()
            .unwrap_or_else(|| format!("file://{}", self.lake_dir().display()));
        cmd.env("NORTHSTAR_ROOT", root);
        let p = Proc::spawn("lake", cmd, self.dir.path());
        self.procs.push(p);
    }

    /// Starts another lake-sink instance in the same consumer group, named `name`, on the same
    /// lake, with its metrics on a free port; returns the port.
    pub fn start_extra_lake_sink(&mut self, name: &str) -> u16 {
        let port = free_port();
        let mut cmd = self.service(name, "northstar-sink", &["lake"], port);
        let root = self
            .lake_root
            .clone()
            .unwrap_or_else(|| format!("file://{}", self.lake_dir().display()));
        cmd.env("NORTHSTAR_ROOT", root);
        let p = Proc::spawn(name, cmd, self.dir.path());
        self.procs.push(p);
        port
    }

    pub fn start_metrics_sink(&mut self) {
        let cmd = self.service(
            "metrics",
            "northstar-sink",
            &["metrics"],
            self.ports.metrics,
        );
        let p = Proc::spawn("metrics", cmd, self.dir.path());
        self.procs.push(p);
    }

    /// Starts another metrics-sink replica named `name` on a free port; returns the port.
    pub fn start_extra_metrics_sink(&mut self, name: &str) -> u16 {
        let port = free_port();
        let cmd = self.service(name, "northstar-sink", &["metrics"], port);
        let p = Proc::spawn(name, cmd, self.dir.path());
        self.procs.push(p);
        port
    }

    /// Starts ingest, processor and both sinks, and waits for their health endpoints.
    pub async fn start_services(&mut self) {
        self.start_ingest();
        self.start_processor();
        self.start_lake_sink();
        self.start_metrics_sink();
        for (port, what) in [
            (self.ports.ingest, "/readyz"),
            (self.ports.processor, "/healthz"),
            (self.ports.lake, "/healthz"),
            (self.ports.metrics, "/healthz"),
        ] {
            let url = format!("http://127.0.0.1:{port}{what}");
            assert!(
                wait_for_http(&url, Duration::from_secs(60)).await,
                "{url} not up:\n{}",
                self.logs()
            );
        }
    }
}
