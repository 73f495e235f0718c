//! Test harness: starts the real broker (Tansu on its sqlite storage), the schema registry and
//! the Northstar services as separate processes on free loopback ports, each stack in its own
//! temporary directory with its own broker, so tests never share topics or state.
//!
//! Binaries come from the workspace target directory (`cargo build --bins` first; the README
//! test command does this). Tansu comes from `NORTHSTAR_TANSU` or the cache folder that
//! `deploy/local/install-tansu.sh` fills.

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub mod demo;
pub mod faults;
pub mod kafka;
pub mod lake;
pub mod membership;
pub mod monitor;
pub mod prom;
pub mod proxy;
pub mod s3;
pub mod secured;
pub mod services;
pub mod tls;

pub use demo::{demo_events, repo};
pub use membership::{
    await_assigned, await_counted, await_held_together, await_partitions, signed_up, Membership,
};

/// Ports handed out by [`free_port`]: below Linux's default ephemeral range (32768–60999), so
/// neither the kernel's own `bind(0)` nor the local side of an outgoing connection can take one
/// between the moment it is chosen and the moment the service binds it.
const PORT_RANGE: std::ops::Range<u32> = 20_000..32_000;

/// A free loopback port for a service to listen on, unique within this test process.
///
/// Ports are taken in turn from [`PORT_RANGE`], starting at an offset derived from the process
/// id (test binaries that run one after another do not reuse each other's ports), and skipped if
/// something already listens there. Asking the kernel for an ephemeral port and releasing it was
/// racy: stacks started in parallel could be given the same port, and a service then failed to
/// bind while the test talked to another stack's server.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(u32::MAX);
    let span = PORT_RANGE.end - PORT_RANGE.start;
    let _ = NEXT.compare_exchange(
        u32::MAX,
        std::process::id().wrapping_mul(2_654_435_761) % span,
        Ordering::SeqCst,
        Ordering::SeqCst,
    );
    for _ in 0..span {
        let port = PORT_RANGE.start + NEXT.fetch_add(1, Ordering::SeqCst) % span;
        let port = u16::try_from(port).unwrap_or(0);
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free loopback port in {PORT_RANGE:?}");
}

/// The directory holding the workspace's binaries (`target/<profile>`).
pub fn bin_dir() -> PathBuf {
    if let Ok(d) = std::env::var("NORTHSTAR_BIN_DIR") {
        return PathBuf::from(d);
    }
    let exe = std::env::current_exe().unwrap_or_default();
    // target/<profile>/deps/<test-binary>
    exe.parent()
        .and_then(Path::parent)
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

pub fn bin(name: &str) -> PathBuf {
    let p = bin_dir().join(name);
    assert!(
        p.exists(),
        "{} is missing: run `cargo build --bins` (./tests/run.sh does) first",
        p.display()
    );
    p
}

/// The Tansu binary.
pub fn tansu_bin() -> PathBuf {
    let p = std::env::var("NORTHSTAR_TANSU")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            let home = std::env::var("HOME").unwrap_or_else(|_| "/root".into());
            PathBuf::from(home).join(".cache/northstar/tansu-0.6.0/bin/tansu")
        });
    assert!(
        p.exists(),
        "Tansu not found at {}: run deploy/local/install-tansu.sh",
        p.display()
    );
    p
}

/// One child process with its log file; killed when dropped (a failed test leaves nothing
/// running).
#[derive(Debug)]
pub struct Proc {
    pub name: String,
    child: Child,
    log: PathBuf,
}

impl Drop for Proc {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

impl Proc {
    pub fn spawn(name: &str, mut cmd: Command, dir: &Path) -> Proc {
        let log = dir.join(format!("{name}.log"));
        #[allow(clippy::expect_used)]
        // Append: a restarted process keeps the log of its previous runs.
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .expect("open log file");
        #[allow(clippy::expect_used)]
        let err = file.try_clone().expect("clone log file");
        cmd.stdout(Stdio::from(file))
            .stderr(Stdio::from(err))
            .stdin(Stdio::null());
        #[allow(clippy::expect_used)]
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        Proc {
            name: name.to_string(),
            child,
            log,
        }
    }

    /// SIGTERM, then wait up to `grace` for a clean exit (SIGKILL after that). Returns whether
    /// the process exited successfully on its own.
    pub fn terminate(&mut self, grace: Duration) -> bool {
        if let Ok(Some(status)) = self.child.try_wait() {
            return status.success();
        }
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.success();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        false
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends `signal` (`STOP`, `CONT`, …) to the process.
    pub fn signal(&self, signal: &str) {
        let _ = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.child.id().to_string())
            .status();
    }

    /// SIGKILL.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// The last `n` lines of the log.
    pub fn log_tail(&self, n: usize) -> String {
        let Ok(f) = std::fs::File::open(&self.log) else {
            return String::new();
        };
        let lines: Vec<String> = BufReader::new(f).lines().map_while(Result::ok).collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }
}

/// Waits until `addr` accepts TCP connections.
pub fn wait_for_port(addr: SocketAddr, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}

/// Waits until `url` answers 200.
pub async fn wait_for_http(url: &str, timeout: Duration) -> bool {
    let client = reqwest::Client::new();
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if let Ok(r) = client.get(url).send().await {
            if r.status().is_success() {
                return true;
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    false
}

/// The write key every test stack accepts, and its source id.
pub const WRITE_KEY: &str = "test-write-key";
pub const SOURCE_ID: &str = "test-source";

/// The Python interpreter of the compatibility tests (tests/setup-python.sh: confluent-kafka,
/// DuckDB, pyarrow).
pub fn python() -> String {
    std::env::var("NORTHSTAR_PYTHON").unwrap_or_else(|_| {
        let home = std::env::var("HOME").unwrap_or_else(|_| "/root".into());
        format!("{home}/.cache/northstar/venv/bin/python")
    })
}

/// Runs `tests/compat/<script>` with the test venv's Python and `args`; returns its standard
/// output, or panics with its standard error.
pub fn run_compat_script(script: &str, args: &[&std::ffi::OsStr]) -> Vec<u8> {
    run_compat_script_with_env(script, args, &[])
}

/// [`run_compat_script`] with extra environment variables.
pub fn run_compat_script_with_env(
    script: &str,
    args: &[&std::ffi::OsStr],
    env: &[(String, String)],
) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("compat")
        .join(script);
    let out = Command::new(python())
        .arg(&path)
        .args(args)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .output()
        .unwrap_or_else(|e| panic!("cannot run {} (tests/setup-python.sh): {e}", path.display()));
    assert!(
        out.status.success(),
        "{script} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// Recomputes KPIs from the stack's lake with DuckDB (`tests/compat/kpi_recompute.py`, its
/// `spec` format there): the script's output, `{"windows": [...]}`.
pub fn recompute_from_lake(stack: &Stack, spec: &serde_json::Value) -> serde_json::Value {
    let dir = stack.dir.path();
    #[allow(clippy::expect_used)]
    std::fs::write(dir.join("spec.json"), spec.to_string()).expect("write spec");
    let lake = stack.lake_dir();
    run_compat_script(
        "kpi_recompute.py",
        &[
            lake.as_os_str(),
            dir.join("spec.json").as_os_str(),
            dir.join("recomputed.json").as_os_str(),
        ],
    );
    #[allow(clippy::expect_used)]
    let bytes = std::fs::read(dir.join("recomputed.json")).expect("read the recompute");
    #[allow(clippy::expect_used)]
    serde_json::from_slice(&bytes).expect("the recompute is JSON")
}

/// A PII key for tests (version 2, 36 bytes), `v<version>:<base64>`.
pub const TEST_PII_KEY: &str = "v2:S2V5IG9mIHRoZSBlbmQtdG8tZW5kIHRlc3QsIDMyKyBieXRlcw==";

/// The `Authorization` header value for [`WRITE_KEY`] (HTTP Basic, the write key as user).
pub fn write_key_auth() -> String {
    use base64::Engine;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{WRITE_KEY}:"))
    )
}

/// The windows the metrics sink holds for `kpi` and `window` (its `/api/v1/windows`), `None`
/// while it catches up or does not answer.
pub async fn held_windows(
    metrics_port: u16,
    kpi: &str,
    window: &str,
) -> Option<Vec<serde_json::Value>> {
    let url = format!("http://127.0.0.1:{metrics_port}/api/v1/windows?kpi={kpi}&window={window}");
    let r = reqwest::get(&url).await.ok()?;
    if !r.status().is_success() {
        return None;
    }
    r.json().await.ok()
}

/// A KPI's values summed over every window the metrics sink holds, by the value of the
/// dimension label `label` (the all-segments total left out).
pub async fn held_sums(
    metrics_port: u16,
    kpi: &str,
    window: &str,
    label: &str,
) -> std::collections::BTreeMap<String, f64> {
    let mut out = std::collections::BTreeMap::new();
    for w in held_windows(metrics_port, kpi, window)
        .await
        .unwrap_or_default()
    {
        for v in w["values"].as_array().into_iter().flatten() {
            let key = v["segment"][label].as_str().unwrap_or_default();
            if key == "__all__" {
                continue;
            }
            *out.entry(key.to_string()).or_insert(0.0) += v["value"].as_f64().unwrap_or(0.0);
        }
    }
    out
}

/// The topic settings of a one-broker cluster (the defaults suit three brokers): for every
/// command and service of a test stack.
pub const ONE_BROKER: [(&str, &str); 2] = [
    ("NORTHSTAR_TOPICS__REPLICATION_FACTOR", "1"),
    ("NORTHSTAR_TOPICS__MIN_INSYNC_REPLICAS", "1"),
];

/// Ports of a stack's services.
#[derive(Debug, Clone)]
pub struct Ports {
    pub broker: u16,
    pub registry: u16,
    /// The registry's admin listener (`/metrics`).
    pub registry_admin: u16,
    pub ingest: u16,
    /// The collector's admin listener (`/metrics`).
    pub ingest_admin: u16,
    pub processor: u16,
    pub lake: u16,
    pub metrics: u16,
}

/// A running stack: broker, registry and (optionally) the services.
#[derive(Debug)]
pub struct Stack {
    pub dir: tempfile::TempDir,
    pub ports: Ports,
    pub procs: Vec<Proc>,
    /// Extra environment for every service (e.g. shorter flush intervals).
    pub env: Vec<(String, String)>,
    /// Extra environment for the services whose name starts with the first element
    /// (`"processor"` also matches `"processor2"`), applied after [`Stack::env`].
    pub service_env: Vec<(String, String, String)>,
    /// Another binary for the services whose name starts with the first element (e.g.
    /// `northstar-sink-faulty` for `"lake"`: fault injection, `northstar_e2e::faults`).
    pub service_bin: Vec<(String, String)>,
    /// The lake sink's root (`NORTHSTAR_ROOT`); `file://<dir>/lake` when `None`.
    pub lake_root: Option<String>,
    /// How often the broker compacts and deletes by retention (Tansu's default: 10 minutes).
    pub broker_maintenance: Option<Duration>,
    /// A broker behind TLS with SASL enforced ([`secured`]); `None`: plaintext on
    /// `ports.broker`.
    pub secured: Option<secured::Secured>,
}

impl Stack {
    /// Starts the broker, creates the topics (3 partitions) and starts the registry.
    pub async fn start_core() -> Stack {
        Self::start_core_with(None).await
    }

    /// [`Stack::start_core`] with the broker compacting (and deleting by retention) every
    /// `maintenance` instead of every 10 minutes.
    pub async fn start_core_with(maintenance: Option<Duration>) -> Stack {
        let mut stack = Self::unstarted(maintenance);
        stack.start_broker();
        stack.start_topics_and_registry().await;
        stack
    }

    /// A stack with its directory and ports chosen, nothing started.
    fn unstarted(maintenance: Option<Duration>) -> Stack {
        #[allow(clippy::expect_used)]
        let dir = tempfile::Builder::new()
            .prefix("northstar-e2e-")
            .tempdir()
            .expect("tempdir");
        let ports = Ports {
            broker: free_port(),
            registry: free_port(),
            registry_admin: free_port(),
            ingest: free_port(),
            ingest_admin: free_port(),
            processor: free_port(),
            lake: free_port(),
            metrics: free_port(),
        };
        Stack {
            dir,
            ports,
            procs: Vec::new(),
            env: ONE_BROKER
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            service_env: Vec::new(),
            service_bin: Vec::new(),
            lake_root: None,
            broker_maintenance: maintenance,
            secured: None,
        }
    }

    /// Creates the topics and starts the registry, once the broker is up.
    async fn start_topics_and_registry(&mut self) {
        self.create_topics(&[]);
        self.start_registry();
        assert!(
            wait_for_http(
                &format!("{}/subjects", self.registry_url()),
                Duration::from_secs(60)
            )
            .await,
            "registry did not start:\n{}",
            self.logs()
        );
    }

    /// Runs `northstar-schemas create-topics` (3 partitions) with `env` added (topic names, say).
    pub fn create_topics(&self, env: &[(&str, &str)]) {
        let status = Command::new(bin("northstar-schemas"))
            .args([
                "create-topics",
                "--brokers",
                &self.brokers(),
                "--partitions",
                "3",
            ])
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .envs(env.iter().copied())
            .env("RUST_LOG", "warn")
            .status();
        assert!(status.is_ok_and(|s| s.success()), "create-topics failed");
    }

    /// Starts the broker on its sqlite storage inside the stack directory.
    /// A secured stack's broker listens on its own port behind the TLS front, advertises the
    /// front, and requires SASL once its users exist ([`secured`]).
    pub fn start_broker(&mut self) {
        let advertised = format!("tcp://127.0.0.1:{}", self.ports.broker);
        let (port, authenticate) = match &self.secured {
            Some(s) => (s.broker_port, s.authenticate),
            None => (self.ports.broker, false),
        };
        let listener = format!("tcp://127.0.0.1:{port}");
        let mut cmd = Command::new(tansu_bin());
        cmd.current_dir(self.dir.path())
            .args([
                "broker",
                "--listener-url",
                &listener,
                "--advertised-listener-url",
                &advertised,
            ])
            // Relative: Tansu 0.6.0 mangles absolute sqlite paths.
            .args(["--storage-engine", &self.broker_storage()]);
        if authenticate {
            cmd.arg("--authentication");
        }
        let p = Proc::spawn("tansu", cmd, self.dir.path());
        self.procs.push(p);
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        assert!(
            wait_for_port(addr, Duration::from_secs(30)),
            "broker did not start:\n{}",
            self.logs()
        );
        // Tansu 0.6.0's sqlite schema lacks an index its fetches need: without it the broker's
        // cost grows with the square of the records carrying headers (deploy/local/tansu-index.py).
        let script = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../deploy/local/tansu-index.py"
        );
        let status = Command::new("python3")
            .arg(script)
            .arg(self.dir.path().join("tansu.db"))
            .status();
        assert!(
            status.is_ok_and(|s| s.success()),
            "cannot add the header index to the broker's database"
        );
    }

    fn broker_storage(&self) -> String {
        match self.broker_maintenance {
            None => "sqlite://tansu.db".into(),
            Some(d) => format!(
                "sqlite://tansu.db?maintenance_interval={}s",
                d.as_secs().max(1)
            ),
        }
    }

    pub fn brokers(&self) -> String {
        format!("127.0.0.1:{}", self.ports.broker)
    }

    pub fn registry_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.ports.registry)
    }

    pub fn ingest_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.ports.ingest)
    }

    /// The collector's `/metrics`, on its admin listener (never the public port).
    pub fn ingest_metrics_url(&self) -> String {
        format!("http://127.0.0.1:{}/metrics", self.ports.ingest_admin)
    }

    pub fn metrics_url(&self) -> String {
        format!("http://127.0.0.1:{}/metrics", self.ports.metrics)
    }

    /// The processor's `/metrics` text (empty when it does not answer).
    pub async fn processor_metrics(&self) -> String {
        match reqwest::get(self.processor_metrics_url()).await {
            Ok(r) => r.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        }
    }

    pub fn processor_metrics_url(&self) -> String {
        format!("http://127.0.0.1:{}/metrics", self.ports.processor)
    }

    pub fn lake_dir(&self) -> PathBuf {
        self.dir.path().join("lake")
    }

    /// The lake's events table.
    pub fn events_dir(&self) -> PathBuf {
        self.lake_dir().join("events")
    }

    pub(crate) fn service(&self, name: &str, program: &str, args: &[&str], listen: u16) -> Command {
        let program = self
            .service_bin
            .iter()
            .find(|(s, _)| name.starts_with(s.as_str()))
            .map_or(program, |(_, b)| b.as_str());
        let mut cmd = Command::new(bin(program));
        cmd.args(args)
            .current_dir(self.dir.path())
            .env("NORTHSTAR_KAFKA__BROKERS", self.brokers())
            .env("NORTHSTAR_REGISTRY_URL", self.registry_url())
            .env("NORTHSTAR_LISTEN", format!("127.0.0.1:{listen}"))
            .env(
                "RUST_LOG",
                std::env::var("NORTHSTAR_TEST_RUST_LOG")
                    .unwrap_or_else(|_| "info,librdkafka=warn,rdkafka=warn".into()),
            )
            .env("RUST_BACKTRACE", "1");
        // librdkafka debug contexts for every service, e.g. NORTHSTAR_TEST_KAFKA_DEBUG=cgrp.
        if let Ok(debug) = std::env::var("NORTHSTAR_TEST_KAFKA_DEBUG") {
            cmd.env("NORTHSTAR_KAFKA__PROPERTIES__DEBUG", debug);
        }
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        for (_, k, v) in self
            .service_env
            .iter()
            .filter(|(s, _, _)| name.starts_with(s.as_str()))
        {
            cmd.env(k, v);
        }
        cmd
    }

    pub fn start_registry(&mut self) {
        let mut cmd = self.service(
            "registry",
            "northstar-schemas",
            &["serve"],
            self.ports.registry,
        );
        cmd.env(
            "NORTHSTAR_ADMIN_LISTEN",
            format!("127.0.0.1:{}", self.ports.registry_admin),
        );
        let p = Proc::spawn("registry", cmd, self.dir.path());
        self.procs.push(p);
    }

    /// Flushes lake files after 2 s and emits KPI aggregates every 500 ms, so a test sees its
    /// events in the lake and the KPIs within seconds.
    pub fn fast_output(&mut self) {
        for (k, v) in [
            ("NORTHSTAR_MAX_FILE_AGE_SECS", "2"),
            ("NORTHSTAR_EMIT_INTERVAL_MS", "500"),
        ] {
            self.env.push((k.into(), v.into()));
        }
    }

    /// SIGKILLs the service `name` (no chance to flush or commit).
    pub fn kill9(&mut self, name: &str) {
        if let Some(p) = self.proc(name) {
            p.kill();
        }
        self.procs.retain(|p| p.name != name);
    }

    /// Starts the service `name` again (after [`Stack::kill9`]).
    pub fn restart(&mut self, name: &str) {
        match name {
            "registry" => self.start_registry(),
            "ingest" => self.start_ingest(),
            "processor" => self.start_processor(),
            "lake" => self.start_lake_sink(),
            "metrics" => self.start_metrics_sink(),
            "tansu" => self.start_broker(),
            other => panic!("unknown service {other}"),
        }
    }

    /// The process named `name`.
    pub fn proc(&mut self, name: &str) -> Option<&mut Proc> {
        self.procs.iter_mut().find(|p| p.name == name)
    }

    /// The tails of every log, for failure messages.
    pub fn logs(&self) -> String {
        self.procs
            .iter()
            .map(|p| format!("----- {} -----\n{}\n", p.name, p.log_tail(25)))
            .collect()
    }

    /// Stops the services with SIGTERM (broker last); returns the names of those that did
    /// not exit cleanly.
    pub fn shutdown(&mut self) -> Vec<String> {
        let mut unclean = Vec::new();
        for p in self.procs.iter_mut().rev() {
            if !p.terminate(Duration::from_secs(20)) && p.name != "tansu" {
                unclean.push(p.name.clone());
            }
        }
        unclean
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        if std::thread::panicking() {
            // Keep every log of a failed test for inspection.
            let name = self
                .dir
                .path()
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or("stack")
                .to_string();
            let keep = std::env::temp_dir().join(format!("northstar-e2e-failed-{name}"));
            let _ = std::fs::create_dir_all(&keep);
            if let Ok(entries) = std::fs::read_dir(self.dir.path()) {
                for e in entries.flatten() {
                    let name = e.file_name().to_string_lossy().into_owned();
                    // Logs, and the broker's database (to inspect what the topics hold).
                    if e.path().extension().is_some_and(|x| x == "log")
                        || name.starts_with("tansu.db")
                    {
                        let _ = std::fs::copy(e.path(), keep.join(e.file_name()));
                    }
                }
            }
            eprintln!("logs kept in {}\n{}", keep.display(), self.logs());
        }
        for p in self.procs.iter_mut().rev() {
            p.kill();
        }
    }
}
