//! A Kafka broker that is not the bottleneck, for benchmarks: librdkafka's in-memory mock
//! cluster (`rdkafka::mocking`), in its own process so that its CPU is not the measured one's.
//!
//! `northstar-mock-kafka [--partitions N] TOPIC[:PARTITIONS]...`
//!
//! Creates the topics (the mock has no CreateTopics; `_schemas` always gets 1 partition), prints
//! its bootstrap address on stdout, and serves until it is killed. Nothing is
//! persisted and topic configs (compaction) are ignored: a benchmark instrument, never a test
//! of Kafka semantics (the e2e tests run on Tansu).

use std::io::Write;

use anyhow::Context;
use rdkafka::mocking::MockCluster;

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1).peekable();
    let mut partitions = 3;
    let mut topics = Vec::new();
    while let Some(a) = args.next() {
        if a == "--partitions" {
            partitions = args
                .next()
                .and_then(|v| v.parse().ok())
                .context("--partitions takes a number")?;
        } else {
            topics.push(a);
        }
    }
    let cluster = MockCluster::new(1).context("cannot start the mock cluster")?;
    for t in &topics {
        let (name, n) = match t.split_once(':') {
            Some((name, n)) => (name, n.parse().context("TOPIC:PARTITIONS")?),
            None if t == "_schemas" => (t.as_str(), 1),
            None => (t.as_str(), partitions),
        };
        cluster
            .create_topic(name, n, 1)
            .with_context(|| format!("cannot create {name}"))?;
    }
    println!("{}", cluster.bootstrap_servers());
    std::io::stdout().flush()?;
    // The cluster's threads serve; this one waits for the signal that ends the process.
    loop {
        std::thread::park();
    }
}
