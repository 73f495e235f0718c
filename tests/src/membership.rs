//! Processor membership in scripted tests (start, kill, stop instances of the consumer group)
//! and waits for partitions to be held.

use std::time::{Duration, Instant};

use crate::Stack;

/// Drives processor membership in scripted tests: one step of a script at a time.
#[derive(Debug)]
pub struct Membership {
    /// Metrics port of the second instance (`processor2`), once started.
    pub second_port: u16,
    /// When the last SIGKILL happened.
    pub killed_at: Instant,
    /// The processors' `session.timeout.ms`.
    pub session_timeout: Duration,
    /// Partitions of `events.raw`.
    pub partitions: i64,
}

impl Membership {
    pub fn new(session_timeout: Duration) -> Self {
        Self {
            second_port: 0,
            killed_at: Instant::now(),
            session_timeout,
            partitions: 3,
        }
    }

    /// Performs `action`: `kill processor` (SIGKILL), `start processor`, `restart processor`
    /// (SIGTERM, then start), `await session expiry` (of the last killed member), `start second`,
    /// `await second`, `stop second` (SIGTERM), `await first` (holds a partition),
    /// `await first holds all`, `await stable group` (the live instances together hold every
    /// partition: no rebalance is pending, a dead member's session has expired). Panics with the
    /// stack's logs when a wait times out.
    pub async fn act(&mut self, stack: &mut Stack, action: &str) {
        let waited = |ok: bool, what: &str, stack: &Stack| {
            assert!(ok, "{what}\n{}", stack.logs());
        };
        match action {
            "kill processor" => {
                stack.kill9("processor");
                self.killed_at = Instant::now();
            }
            "start processor" => stack.restart("processor"),
            "restart processor" => {
                let p = stack.proc("processor").expect("processor");
                assert!(p.terminate(Duration::from_secs(20)), "graceful stop");
                stack.procs.retain(|p| p.name != "processor");
                stack.restart("processor");
            }
            "await session expiry" => {
                let expiry = self.session_timeout + Duration::from_secs(2);
                tokio::time::sleep(expiry.saturating_sub(self.killed_at.elapsed())).await;
            }
            "start second" => self.second_port = stack.start_extra_processor("processor2"),
            "await second" => waited(
                await_assigned(self.second_port).await,
                "the second instance never got partitions",
                stack,
            ),
            "await first" => waited(
                await_assigned(stack.ports.processor).await,
                "the restarted instance never got partitions",
                stack,
            ),
            "await first holds all" => waited(
                await_partitions(stack.ports.processor, self.partitions).await,
                "the first instance never got every partition",
                stack,
            ),
            "await stable group" => {
                let mut ports = Vec::new();
                if stack.proc("processor").is_some() {
                    ports.push(stack.ports.processor);
                }
                if stack.proc("processor2").is_some() {
                    ports.push(self.second_port);
                }
                waited(
                    await_held_together(&ports, self.partitions).await,
                    "the live instances never held every partition together",
                    stack,
                )
            }
            "stop second" => {
                let p = stack.proc("processor2").expect("second processor");
                assert!(
                    p.terminate(Duration::from_secs(30)),
                    "second instance leaves cleanly"
                );
                stack.procs.retain(|p| p.name != "processor2");
            }
            other => panic!("unknown action {other}"),
        }
    }
}

/// Waits until the processor whose metrics are on `port` holds partitions (a rebalance
/// completed).
pub async fn await_assigned(port: u16) -> bool {
    await_partitions(port, 1).await
}

/// Waits until the processor whose metrics are on `port` holds at least `n` partitions.
pub async fn await_partitions(port: u16, n: i64) -> bool {
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if assigned_partitions(port).await.is_some_and(|a| a >= n) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    false
}

/// Waits until the processors whose metrics are on `ports` together hold `n` partitions, on two
/// readings a second apart (a rebalance that completes and is followed by another is not stable).
pub async fn await_held_together(ports: &[u16], n: i64) -> bool {
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut held_before = false;
    while Instant::now() < deadline {
        let mut total = 0;
        for port in ports {
            total += assigned_partitions(*port).await.unwrap_or(0);
        }
        if total == n && held_before {
            return true;
        }
        held_before = total == n;
        tokio::time::sleep(Duration::from_millis(1000)).await;
    }
    false
}

/// The processor's `northstar_processor_assigned_partitions`, if its metrics answer.
async fn assigned_partitions(port: u16) -> Option<i64> {
    let text = reqwest::get(format!("http://127.0.0.1:{port}/metrics"))
        .await
        .ok()?
        .text()
        .await
        .ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("northstar_processor_assigned_partitions "))
        .and_then(|v| v.trim().parse::<i64>().ok())
}

impl Stack {
    /// The whole stack with `env` for every service: broker, registry, the services, and the
    /// processor holding partitions.
    pub async fn start_all(env: &[(&str, &str)]) -> Stack {
        let mut stack = Stack::start_core().await;
        stack
            .env
            .extend(env.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        stack.start_services().await;
        assert!(
            await_assigned(stack.ports.processor).await,
            "the processor holds no partition\n{}",
            stack.logs()
        );
        stack
    }
}

/// `n` `Signed Up` track events of distinct users from number `from`, message ids
/// `{prefix}-{i}`, timestamped now.
pub fn signed_up(prefix: &str, from: usize, n: usize) -> Vec<serde_json::Value> {
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    (from..from + n)
        .map(|i| {
            serde_json::json!({"type": "track", "event": "Signed Up", "userId": format!("u{i}"),
            "messageId": format!("{prefix}-{i}"), "timestamp": now})
        })
        .collect()
}

/// Waits until the 1m `events` KPI and the lake both hold `n` events.
pub async fn await_counted(
    stack: &crate::Stack,
    n: usize,
    within: std::time::Duration,
) -> (std::collections::BTreeMap<String, f64>, usize) {
    let expected = std::collections::BTreeMap::from([("Signed Up".to_string(), n as f64)]);
    let deadline = std::time::Instant::now() + within;
    let (mut sums, mut rows) = (std::collections::BTreeMap::new(), 0);
    while std::time::Instant::now() < deadline {
        sums = crate::held_sums(stack.ports.metrics, "events", "1m", "event").await;
        rows = crate::lake::string_column(&stack.events_dir(), "message_id").map_or(0, |v| v.len());
        if sums == expected && rows == n {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
    (sums, rows)
}
