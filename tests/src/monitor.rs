//! Real Prometheus and Alertmanager (Debian's packages, tests/setup-prometheus.sh) for a stack,
//! their HTTP APIs, and a webhook receiver for Alertmanager's notifications.

use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::{free_port, wait_for_http, Proc};

/// A running Prometheus.
#[derive(Debug)]
pub struct Prometheus {
    pub port: u16,
    pub proc: Proc,
}

/// One scrape job: its name and targets (`host:port`).
pub type Job<'a> = (&'a str, Vec<String>);

impl Prometheus {
    /// Starts Prometheus in `dir`, scraping `jobs` every second, loading the rule files that
    /// match `rules` (a glob), sending alerts to `alertmanager` (`host:port`), with an
    /// out-of-order window of 40 days (the history of final windows is stamped in the past).
    pub async fn start(
        dir: &Path,
        jobs: &[Job<'_>],
        rules: &str,
        alertmanager: Option<&str>,
    ) -> Prometheus {
        let port = free_port();
        let mut cfg = String::from("global: {scrape_interval: 1s, evaluation_interval: 1s}\nstorage: {tsdb: {out_of_order_time_window: 40d}}\n");
        cfg.push_str(&format!("rule_files: [{rules:?}]\n"));
        if let Some(am) = alertmanager {
            cfg.push_str(&format!(
                "alerting: {{alertmanagers: [{{static_configs: [{{targets: [{am:?}]}}]}}]}}\n"
            ));
        }
        cfg.push_str("scrape_configs:\n");
        for (name, targets) in jobs {
            cfg.push_str(&format!(
                "  - {{job_name: {name}, static_configs: [{{targets: {targets:?}}}]}}\n"
            ));
        }
        let config = dir.join("prometheus.yml");
        std::fs::write(&config, cfg).expect("write prometheus.yml");
        let mut cmd = Command::new("prometheus");
        cmd.arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("prometheus-data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"));
        let proc = Proc::spawn("prometheus", cmd, dir);
        let p = Prometheus { port, proc };
        assert!(
            wait_for_http(&format!("{}/-/ready", p.url()), Duration::from_secs(60)).await,
            "prometheus did not start:\n{}",
            p.proc.log_tail(30)
        );
        p
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// An API call's `data`, panicking on an error answer.
    async fn api(&self, path: &str, params: &[(&str, String)]) -> Value {
        let url =
            url::Url::parse_with_params(&format!("{}{path}", self.url()), params).expect("url");
        let r = reqwest::get(url).await.expect("prometheus answers");
        let v: Value = r.json().await.expect("prometheus JSON");
        assert_eq!(v["status"], "success", "{path} {params:?}: {v}");
        v["data"].clone()
    }

    /// An instant query's result (vector or matrix).
    pub async fn query(&self, expr: &str) -> Vec<Value> {
        let d = self
            .api("/api/v1/query", &[("query", expr.to_string())])
            .await;
        d["result"].as_array().cloned().unwrap_or_default()
    }

    /// A range query's series over the last `range_secs`, with `step_secs`.
    pub async fn query_range(&self, expr: &str, range_secs: i64, step_secs: i64) -> Vec<Value> {
        let end = chrono::Utc::now().timestamp();
        let params = [
            ("query", expr.to_string()),
            ("start", (end - range_secs).to_string()),
            ("end", end.to_string()),
            ("step", step_secs.max(1).to_string()),
        ];
        let d = self.api("/api/v1/query_range", &params).await;
        d["result"].as_array().cloned().unwrap_or_default()
    }

    /// The rule groups' rules (health, last error).
    pub async fn rules(&self) -> Vec<Value> {
        let d = self.api("/api/v1/rules", &[]).await;
        d["groups"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|g| g["rules"].as_array().cloned().unwrap_or_default())
            .collect()
    }

    /// Prometheus's own metric `name` (summed over its labels).
    pub async fn own_metric(&self, name: &str) -> f64 {
        let text = reqwest::get(format!("{}/metrics", self.url()))
            .await
            .expect("metrics")
            .text()
            .await
            .unwrap_or_default();
        crate::prom::named(&text, name).map(|s| s.value).sum()
    }
}

/// Generates the rules, routes and dashboards of `catalog` below `out` (`northstar-sink
/// dashboards generate`, with `extra` options) and starts an Alertmanager on the generated
/// routes.
#[allow(clippy::expect_used)]
pub async fn generate_and_start_alertmanager(
    catalog: &Path,
    out: &Path,
    extra: &[&str],
) -> Alertmanager {
    let generated = Command::new(crate::bin("northstar-sink"))
        .args(["dashboards", "generate", "--catalog"])
        .arg(catalog)
        .arg("--out")
        .arg(out)
        .args(extra)
        .output()
        .expect("generate");
    assert!(
        generated.status.success(),
        "{}",
        String::from_utf8_lossy(&generated.stderr)
    );
    Alertmanager::start(out, &out.join("alertmanager/alertmanager.yml")).await
}

/// A running Alertmanager.
#[derive(Debug)]
pub struct Alertmanager {
    pub port: u16,
    pub proc: Proc,
}

impl Alertmanager {
    pub async fn start(dir: &Path, config: &Path) -> Alertmanager {
        let port = free_port();
        let mut cmd = Command::new("prometheus-alertmanager");
        cmd.arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.path={}",
                dir.join("alertmanager-data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--cluster.listen-address=");
        let proc = Proc::spawn("alertmanager", cmd, dir);
        let a = Alertmanager { port, proc };
        assert!(
            wait_for_http(&format!("{}/-/ready", a.url()), Duration::from_secs(60)).await,
            "alertmanager did not start:\n{}",
            a.proc.log_tail(30)
        );
        a
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Posts alerts to its v2 API (as Prometheus would).
    pub async fn post(&self, alerts: &Value) {
        let r = reqwest::Client::new()
            .post(format!("{}/api/v2/alerts", self.url()))
            .json(alerts)
            .send()
            .await
            .expect("post alerts");
        assert!(r.status().is_success(), "{}", r.status());
    }

    /// Its alerts (all of them, with their status).
    pub async fn alerts(&self) -> Vec<Value> {
        reqwest::get(format!("{}/api/v2/alerts", self.url()))
            .await
            .expect("alerts")
            .json()
            .await
            .unwrap_or_default()
    }
}

/// An HTTP server that keeps the body of every POST it receives, by path.
#[derive(Debug, Clone, Default)]
pub struct Webhook {
    pub port: u16,
    pub received: Arc<Mutex<Vec<(String, Value)>>>,
}

impl Webhook {
    pub async fn start() -> Webhook {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
            .await
            .expect("bind webhook");
        let port = listener.local_addr().expect("address").port();
        let hook = Webhook {
            port,
            received: Arc::default(),
        };
        let received = hook.received.clone();
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let received = received.clone();
                tokio::spawn(async move {
                    if let Some((path, body)) = read_request(&mut socket).await {
                        if let Ok(v) = serde_json::from_slice(&body) {
                            received
                                .lock()
                                .unwrap_or_else(|p| p.into_inner())
                                .push((path, v));
                        }
                    }
                    let _ = socket
                        .write_all(
                            b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
                        )
                        .await;
                });
            }
        });
        hook
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    pub fn received(&self) -> Vec<(String, Value)> {
        self.received
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

/// The path and body of one HTTP/1.1 request with a content-length.
async fn read_request(socket: &mut tokio::net::TcpStream) -> Option<(String, Vec<u8>)> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let head_end = loop {
        let n = socket.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let path = head.split_whitespace().nth(1)?.to_string();
    let length: usize = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-length:")
                .map(|v| v.trim().to_string())
        })
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    while buf.len() < head_end + length {
        let n = socket.read(&mut chunk).await.ok()?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    Some((path, buf[head_end..].to_vec()))
}
