//! Pre-fills `kpi.aggregates` for the metrics sink's restart benchmark: the final windows of a
//! catalog over the last `--days` days, as the processor writes them (schema v2, Confluent wire
//! format, one aggregates partition per input partition).
//!
//! `northstar-fill-aggregates --brokers HOST:PORT --registry URL --catalog FILE [--topic T]
//!  [--days 30] [--input-partitions 3] [--layout ring|window-start] [--limit N] [--count-only]`
//!
//! Every KPI, window and segment has a record in every window (dense: an upper bound), for each
//! input partition, with the segment values below (`__all__` totals included). `--layout ring`
//! writes what a compacted topic under ring-slot keys holds (the windows within each window
//! length's retention, one record each); `window-start` what the older layout's compacted topic
//! held (every window since the start, its start in the key). `--count-only` prints the number
//! of records of the layout without producing them; `--limit` stops after N records (the oldest
//! first, as they were written).

use std::time::{Duration, Instant};

use anyhow::Context;
use northstar_schemas::aggregate::{AggregateCodec, KpiAggregate};
use northstar_schemas::catalog::{Aggregation, Catalog, Kpi, ALL};
use northstar_schemas::{value_subject, wire, RegistryClient, KPI_AGGREGATE_SCHEMA};
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::util::Timeout;

/// The segment values of a dimension: the demo traffic's where known.
fn values(dimension: &str) -> Vec<String> {
    let v: &[&str] = match dimension {
        "context.os.name" => &["iOS", "Android", "Web", "macOS"],
        "properties.plan" => &["free", "pro", "team"],
        "event" => &[
            "Signed Up",
            "Activated",
            "Viewed Page",
            "Created Project",
            "Invited Teammate",
            "Upgraded Plan",
            "identify",
            "page",
        ],
        _ => &["a", "b", "c"],
    };
    v.iter().map(|s| s.to_string()).collect()
}

/// Every segment of a KPI (combinations of its dimensions' values) and its total.
fn segments(kpi: &Kpi) -> Vec<Vec<(String, String)>> {
    let mut out: Vec<Vec<(String, String)>> = vec![Vec::new()];
    for d in &kpi.segments {
        out = out
            .into_iter()
            .flat_map(|prefix| {
                values(&d.name).into_iter().map(move |v| {
                    let mut p = prefix.clone();
                    p.push((d.name.clone(), v));
                    p
                })
            })
            .collect();
    }
    if !kpi.segments.is_empty() {
        out.push(
            kpi.segments
                .iter()
                .map(|d| (d.name.clone(), ALL.to_string()))
                .collect(),
        );
    }
    out
}

struct Args {
    brokers: String,
    registry: String,
    catalog: String,
    topic: String,
    days: i64,
    input_partitions: i32,
    ring: bool,
    limit: Option<u64>,
    count_only: bool,
}

fn args() -> anyhow::Result<Args> {
    let mut a = Args {
        brokers: "127.0.0.1:9092".into(),
        registry: "http://127.0.0.1:8081".into(),
        catalog: "deploy/kpi-catalog.yaml".into(),
        topic: "kpi.aggregates".into(),
        days: 30,
        input_partitions: 3,
        ring: true,
        limit: None,
        count_only: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        if flag == "--count-only" {
            a.count_only = true;
            continue;
        }
        let v = it.next().with_context(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--brokers" => a.brokers = v,
            "--registry" => a.registry = v,
            "--catalog" => a.catalog = v,
            "--topic" => a.topic = v,
            "--days" => a.days = v.parse().context("--days")?,
            "--input-partitions" => a.input_partitions = v.parse().context("--input-partitions")?,
            "--layout" => a.ring = v == "ring",
            "--limit" => a.limit = Some(v.parse().context("--limit")?),
            other => anyhow::bail!("unknown flag {other}"),
        }
    }
    Ok(a)
}

/// One record to write: (window end, KPI index, window index, start, segment index, partition).
type Slot = (i64, usize, usize, i64, usize, i32);

fn slots(c: &Catalog, a: &Args, now_ms: i64) -> Vec<Slot> {
    let lateness = c.lateness_ms();
    let from = now_ms - a.days * 86_400_000;
    let mut out = Vec::new();
    for (k, kpi) in c.kpis.iter().enumerate() {
        let n_segments = segments(kpi).len();
        for (w, spec) in kpi.windows.iter().enumerate() {
            // Final windows only: those that ended the lateness before now.
            let last = spec.start(now_ms - lateness - spec.millis);
            let first = if a.ring {
                spec.start(from)
                    .max(last - (spec.retained_windows(lateness) - 1) * spec.millis)
            } else {
                spec.start(from)
            };
            let mut start = first;
            while start <= last {
                for s in 0..n_segments {
                    for p in 0..a.input_partitions {
                        out.push((start + spec.millis, k, w, start, s, p));
                    }
                }
                start += spec.millis;
            }
        }
    }
    out.sort_unstable();
    out
}

fn record(c: &Catalog, slot: Slot, offset: i64) -> KpiAggregate {
    let (end, k, w, start, s, p) = slot;
    let kpi = &c.kpis[k];
    let spec = &kpi.windows[w];
    let value = ((start / spec.millis) % 50 + s as i64) as f64;
    let (numerator, denominator) = match kpi.aggregation {
        Aggregation::Ratio { .. } => (value, value * 2.0 + 1.0),
        _ => (0.0, 0.0),
    };
    KpiAggregate {
        kpi: kpi.name.clone(),
        window: spec.label.clone(),
        window_start: start,
        window_end: end,
        segment: segments(kpi)[s].iter().cloned().collect(),
        kind: kpi.aggregation.kind().into(),
        value: if denominator > 0.0 {
            numerator / denominator
        } else {
            value
        },
        numerator,
        denominator,
        is_final: true,
        watermark: end + c.lateness_ms(),
        source_topic: "events.raw".into(),
        source_partition: p,
        source_offset: offset,
        allowed_lateness_ms: c.lateness_ms(),
        full_input_after_ms: i64::MIN,
        others_from: 0.0,
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let a = args()?;
    let catalog = Catalog::load(Some(std::path::Path::new(&a.catalog)))?;
    let now_ms = chrono::Utc::now().timestamp_millis();
    let mut all = slots(&catalog, &a, now_ms);
    if let Some(n) = a.limit {
        all.truncate(n as usize);
    }
    if a.count_only {
        println!("{}", all.len());
        return Ok(());
    }
    let id = RegistryClient::new(&a.registry)
        .register(&value_subject(&a.topic), KPI_AGGREGATE_SCHEMA)
        .await
        .context("cannot register the aggregate schema")?;
    // The same `[kafka]` settings as the services (NORTHSTAR_KAFKA__*: TLS, SASL...).
    let producer: ThreadedProducer<DefaultProducerContext> =
        northstar_runtime::KafkaConfig::from_env(Some(&a.brokers))?
            .client_config("northstar-fill-aggregates")
            .set("enable.idempotence", "true")
            .set("linger.ms", "20")
            .set("batch.size", "1000000")
            .create()?;
    let codec = AggregateCodec::new();
    let started = Instant::now();
    let mut offsets = vec![0_i64; a.input_partitions.max(1) as usize];
    for slot in &all {
        let p = slot.5;
        offsets[p as usize] += 1;
        let agg = record(&catalog, *slot, offsets[p as usize]);
        let spec = &catalog.kpis[slot.1].windows[slot.2];
        let slots = if a.ring {
            spec.retained_windows(catalog.lateness_ms())
        } else {
            i64::MAX
        };
        let key = agg.record_key(slots);
        let payload = wire::frame(id, &codec.encode(&agg)?);
        let rec = BaseRecord::to(&a.topic)
            .key(&key)
            .payload(&payload)
            .partition(p % 3);
        northstar_e2e::kafka::send_waiting(&producer, rec)?;
    }
    producer
        .flush(Timeout::After(Duration::from_secs(1200)))
        .context("not every record was acknowledged")?;
    eprintln!(
        "{} aggregate records in {} ({:.1} s)",
        all.len(),
        a.topic,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
