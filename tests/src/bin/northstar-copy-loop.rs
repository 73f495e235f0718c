//! The Kafka client's own cost, the processor's ceiling: a bare rdkafka consume → produce copy
//! loop over a pre-filled topic, with the processor's client settings (consumer group with
//! manual commits, `fetch.wait.max.ms` 250, idempotent producer with `acks=all`,
//! `linger.ms` 5). Each record's key and payload are copied to `--to`, in bursts of 2,000
//! records each flushed (acknowledged) before the next, as the processor sends its outputs
//! (`output_burst`: one send per record with idempotent requests in flight costs librdkafka's
//! broker thread a wake-up per record, 4× the CPU; docs/benchmarks.md); every second the
//! consumed positions are committed (output durable before the commit, like the processor). Stops once `--events` records were copied and acknowledged,
//! and prints its own CPU time per record (getrusage, user + system).
//!
//! `northstar-copy-loop --brokers HOST:PORT [--from events.raw] [--to bench.copy] --events N`

use std::time::{Duration, Instant};

use anyhow::Context;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::util::Timeout;

/// Records sent between two flushes (the processor's default `output_burst`).
const BURST: u64 = 2_000;

fn main() -> anyhow::Result<()> {
    let (mut brokers, mut from, mut to, mut events) = (
        "127.0.0.1:9092".to_string(),
        "events.raw".to_string(),
        "bench.copy".to_string(),
        1_000_000u64,
    );
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let v = it.next().with_context(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--brokers" => brokers = v,
            "--from" => from = v,
            "--to" => to = v,
            "--events" => events = v.parse().context("--events")?,
            other => anyhow::bail!("unknown flag {other}"),
        }
    }
    // The same `[kafka]` settings as the services (NORTHSTAR_KAFKA__*: TLS, SASL...).
    let kafka = northstar_runtime::KafkaConfig::from_env(Some(&brokers))?;
    let consumer: BaseConsumer = kafka
        .client_config("northstar-copy-loop")
        .set("group.id", format!("copy-loop-{}", std::process::id()))
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set("fetch.wait.max.ms", "250")
        .create()?;
    consumer.subscribe(&[from.as_str()])?;
    let producer: ThreadedProducer<DefaultProducerContext> = kafka
        .client_config("northstar-copy-loop")
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", "5")
        .create()?;
    let cpu0 = cpu_secs();
    let (mut copied, mut first) = (0u64, None);
    let mut last_commit = Instant::now();
    let mut last_record = Instant::now();
    while copied < events {
        let Some(msg) = consumer.poll(Duration::from_millis(100)) else {
            if first.is_some() && last_record.elapsed() >= Duration::from_secs(15) {
                eprintln!("no record for 15 s: stopping at {copied} of {events}");
                break;
            }
            continue;
        };
        last_record = Instant::now();
        let msg = msg?;
        first.get_or_insert_with(|| (cpu_secs(), Instant::now()));
        let mut rec = BaseRecord::to(&to).partition(msg.partition());
        if let Some(k) = msg.key() {
            rec = rec.key(k);
        }
        if let Some(p) = msg.payload() {
            rec = rec.payload(p);
        }
        northstar_e2e::kafka::send_waiting(&producer, rec)?;
        consumer.store_offset_from_message(&msg)?;
        copied += 1;
        if copied.is_multiple_of(BURST) {
            producer.flush(Timeout::After(Duration::from_secs(60)))?;
            if last_commit.elapsed() >= Duration::from_secs(1) {
                consumer.commit_consumer_state(CommitMode::Async)?;
                last_commit = Instant::now();
            }
        }
    }
    producer.flush(Timeout::After(Duration::from_secs(60)))?;
    consumer.commit_consumer_state(CommitMode::Sync)?;
    let (cpu_first, wall_first) = first.unwrap_or((cpu0, Instant::now()));
    let cpu = cpu_secs() - cpu_first;
    println!(
        "copy loop: {copied} records in {cpu:.2} CPU-s ({:.1} s wall): {:.0} records per CPU-second, {:.2} us/record",
        wall_first.elapsed().as_secs_f64(),
        copied as f64 / cpu,
        cpu * 1e6 / copied as f64
    );
    Ok(())
}

/// This process's CPU time (user + system), from /proc/self/stat.
fn cpu_secs() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit(')').next().unwrap_or_default();
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // Fields 14 and 15 of stat (utime, stime) are the 12th and 13th after the command.
    (ticks(11) + ticks(12)) / 100.0
}
