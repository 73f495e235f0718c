//! Pre-fills `events.raw` for benchmarks: N synthetic events as Avro v1 in the Confluent wire
//! format, keyed by user like the collector does, through an idempotent producer.
//!
//! `northstar-fill --brokers HOST:PORT --registry URL [--topic events.raw] --events N [--names K]`
//!
//! The events are `northstar_schemas::synthetic`'s (the shape of
//! `../shared/bench/make_events.py`), deterministic. `--names K` renames event `i` to
//! `event_<i mod K>` (K distinct event names: many open lake partitions at once).
//!
//! `--rate R` sends the N synthetic events as live traffic instead: R per second (a slice every
//! 10 ms), each stamped with the wall clock at its send (event time and `receivedAt`), so that
//! consumers that keep up see current input; the producer stays the same.
//!
//! `--from-batch FILE` instead produces the events of a Segment batch body (as the collector
//! turns them into records: `northstar_ingest::segment`), cycling through them, with the
//! collector's producer settings (`acks=all`, no idempotence, `linger.ms=5`): the raw client
//! ceiling of `bench/ingest_wrk.sh`. It then prints its own CPU time per record. With
//! `--connections C --delay-ms D` it instead loads the broker the way wrk loads the collector
//! in that script, for `--seconds S`: C loops, each sending one batch of the file's events,
//! waiting for its last acknowledgement, then pausing D ms (wrk's `delay()`), and prints the
//! percentiles of the time from a batch's first send to its last acknowledgement — the
//! broker's share of the collector's latency under the same arrivals (bursts included: loops
//! that start together stay roughly in step, as wrk's connections do).

use std::time::{Duration, Instant};

use anyhow::Context;
use northstar_schemas::event::EventCodec;
use northstar_schemas::{synthetic, value_subject, wire, RegistryClient, EVENT_SCHEMA_V1};
use rdkafka::config::ClientConfig;
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::util::Timeout;

struct Args {
    brokers: String,
    registry: String,
    topic: String,
    events: usize,
    names: Option<u64>,
    from_batch: Option<String>,
    connections: Option<usize>,
    delay_ms: u64,
    seconds: u64,
    rate: Option<f64>,
}

fn args() -> anyhow::Result<Args> {
    let mut a = Args {
        brokers: "127.0.0.1:9092".into(),
        registry: "http://127.0.0.1:8081".into(),
        topic: "events.raw".into(),
        events: 1_000_000,
        names: None,
        from_batch: None,
        connections: None,
        delay_ms: 0,
        seconds: 15,
        rate: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let v = it.next().with_context(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--brokers" => a.brokers = v,
            "--registry" => a.registry = v,
            "--topic" => a.topic = v,
            "--events" => a.events = v.parse().context("--events")?,
            "--names" => a.names = Some(v.parse().context("--names")?),
            "--from-batch" => a.from_batch = Some(v),
            "--connections" => a.connections = Some(v.parse().context("--connections")?),
            "--delay-ms" => a.delay_ms = v.parse().context("--delay-ms")?,
            "--seconds" => a.seconds = v.parse().context("--seconds")?,
            "--rate" => a.rate = Some(v.parse().context("--rate")?),
            other => anyhow::bail!("unknown flag {other}"),
        }
    }
    Ok(a)
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let a = args()?;
    let registry = RegistryClient::new(&a.registry);
    let id = registry
        .register(&value_subject(&a.topic), EVENT_SCHEMA_V1)
        .await
        .context("cannot register the event schema")?;
    // The same `[kafka]` settings as the services (NORTHSTAR_KAFKA__*: TLS, SASL...).
    let mut cfg =
        northstar_runtime::KafkaConfig::from_env(Some(&a.brokers))?.client_config("northstar-fill");
    cfg.set("enable.idempotence", "true")
        .set("linger.ms", "20")
        .set("batch.size", "1000000")
        .set("compression.type", "none");
    let batch = match &a.from_batch {
        Some(file) => {
            cfg.set("enable.idempotence", "false")
                .set("acks", "all")
                .set("linger.ms", "5")
                .remove("batch.size");
            Some(batch_events(file)?)
        }
        None => None,
    };
    if let (Some(connections), Some(events)) = (a.connections, &batch) {
        let delay = Duration::from_millis(a.delay_ms);
        return like_wrk(&cfg, &a.topic, id, events, (connections, delay), a.seconds).await;
    }
    let producer: ThreadedProducer<DefaultProducerContext> = cfg.create()?;
    let codec = EventCodec::new();
    // Event time starts a day ago so that clamping never applies.
    let t0 = chrono::Utc::now().timestamp_millis() - 86_400_000;
    let started = Instant::now();
    for i in 0..a.events as u64 {
        let mut e = match &batch {
            Some(events) => events[i as usize % events.len()].clone(),
            None => synthetic::event(i, t0),
        };
        if let Some(rate) = a.rate {
            live(&mut e, i, rate, started).await;
        }
        if let Some(k) = a.names {
            e.event = Some(format!("event_{:05}", i % k.max(1)));
        }
        let payload = wire::frame(id, &codec.encode(&e)?);
        let key = e.user_id.clone().unwrap_or_default();
        let rec = BaseRecord::to(&a.topic).key(&key).payload(&payload);
        northstar_e2e::kafka::send_waiting(&producer, rec)?;
    }
    producer
        .flush(Timeout::After(Duration::from_secs(600)))
        .context("not every event was acknowledged")?;
    eprintln!(
        "{} events in {} ({:.1} s)",
        a.events,
        a.topic,
        started.elapsed().as_secs_f64()
    );
    if batch.is_some() {
        let cpu = northstar_runtime::process_cpu_seconds();
        println!(
            "raw client (rdkafka, acks=all): {} records in {cpu:.2} CPU-s ({:.1} s wall): {:.0} records per CPU-second, {:.0} per second",
            a.events,
            started.elapsed().as_secs_f64(),
            a.events as f64 / cpu,
            a.events as f64 / started.elapsed().as_secs_f64()
        );
    }
    Ok(())
}

/// Sends one batch of `records` and waits for every acknowledgement; the time that took.
async fn send_batch(
    producer: &rdkafka::producer::FutureProducer,
    topic: &str,
    records: &[(String, Vec<u8>)],
) -> anyhow::Result<Duration> {
    use rdkafka::producer::FutureRecord;
    let started = Instant::now();
    let acks = records.iter().map(|(k, p)| {
        producer.send(
            FutureRecord::to(topic).key(k).payload(p),
            Timeout::After(Duration::from_secs(30)),
        )
    });
    let all_ok = futures::future::join_all(acks)
        .await
        .iter()
        .all(Result::is_ok);
    anyhow::ensure!(all_ok, "a record was not acknowledged");
    Ok(started.elapsed())
}

/// Waits until event `i` is due at `rate` per second (in 10 ms slices) and stamps it with the
/// wall clock.
async fn live(e: &mut northstar_schemas::Event, i: u64, rate: f64, started: Instant) {
    let due = Duration::from_secs_f64(i as f64 / rate);
    let slice = Duration::from_millis(10);
    let elapsed = started.elapsed();
    if due > elapsed + slice {
        tokio::time::sleep(due - elapsed).await;
    }
    let now = chrono::Utc::now().timestamp_micros();
    e.timestamp = now;
    e.received_at = now;
}

/// The events of a Segment batch body, as the collector turns them into records.
fn batch_events(file: &str) -> anyhow::Result<Vec<northstar_schemas::Event>> {
    use northstar_ingest::config::{ClockBounds, Limits};
    use northstar_ingest::enrich::RequestInfo;
    use northstar_ingest::segment;
    let body = std::fs::read(file).with_context(|| format!("cannot read {file}"))?;
    let request = segment::parse_batch(&body, &Limits::default())?;
    let info = RequestInfo {
        ip: Some(std::net::IpAddr::from([127, 0, 0, 1])),
        ..RequestInfo::default()
    };
    let arrival = segment::Arrival {
        source_id: "bench",
        received_at: chrono::Utc::now().timestamp_micros(),
        clock: &ClockBounds::default(),
        info: &info,
    };
    Ok(request.events(&arrival)?)
}

/// Closed-loop batches like wrk's paced connections: `load.0` loops, each sending a batch of
/// `events`, awaiting every acknowledgement, then pausing `load.1`, for `seconds`; prints the
/// percentiles of each batch's time from first send to last acknowledgement.
async fn like_wrk(
    cfg: &ClientConfig,
    topic: &str,
    schema_id: u32,
    events: &[northstar_schemas::Event],
    (connections, delay): (usize, Duration),
    seconds: u64,
) -> anyhow::Result<()> {
    use rdkafka::producer::FutureProducer;
    let producer: FutureProducer = cfg.create()?;
    let codec = EventCodec::new();
    let records: Vec<(String, Vec<u8>)> = events
        .iter()
        .map(|e| {
            let key = e.distinct_id().unwrap_or(&e.message_id).to_string();
            Ok((key, wire::frame(schema_id, &codec.encode(e)?)))
        })
        .collect::<anyhow::Result<_>>()?;
    let records = std::sync::Arc::new(records);
    let end = Instant::now() + Duration::from_secs(seconds);
    let loops: Vec<_> = (0..connections)
        .map(|_| {
            let (producer, records, topic) = (producer.clone(), records.clone(), topic.to_string());
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                while Instant::now() < end {
                    latencies.push(send_batch(&producer, &topic, &records).await?);
                    tokio::time::sleep(delay).await;
                }
                anyhow::Ok(latencies)
            })
        })
        .collect();
    let mut latencies = Vec::new();
    for l in loops {
        latencies.extend(l.await??);
    }
    anyhow::ensure!(!latencies.is_empty(), "no batch was sent");
    latencies.sort();
    let pct = |p: f64| {
        let i = ((latencies.len() as f64 * p).ceil() as usize).clamp(1, latencies.len()) - 1;
        latencies[i].as_secs_f64() * 1e3
    };
    println!(
        "raw client, {} batches of {} ({connections} loops, delay {} ms: {:.0} batches/s): batch acknowledgement p50 {:.2} ms, p99 {:.2} ms",
        latencies.len(),
        records.len(),
        delay.as_millis(),
        latencies.len() as f64 / seconds as f64,
        pct(0.5),
        pct(0.99)
    );
    Ok(())
}
