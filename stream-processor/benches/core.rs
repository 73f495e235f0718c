//! The processing core per event: decode (wire format + Avro) → validate → dedup → KPI windows
//! → encode (clean record + aggregate updates), single-threaded, no Kafka.
//!
//! `cargo bench -p northstar-stream-processor --bench core [-- EVENTS [events.jsonl]] [--emit-every N] [--plan FILE]`
//!
//! With `--plan` (e.g. bench/tracking-plan.yaml), the wide catalog is measured a second time
//! with that tracking plan enforced (`PlanGate::judge` per event, metrics included).
//!
//! The changed windows are drained and encoded every `--emit-every` events (default 10,000): an
//! emission interval replayed at a rate (500 ms at 5,000 events/s is every 2,500 events).
//!
//! Input: the events of `../shared/bench/make_events.py` (read from the JSONL file when given,
//! otherwise `northstar_schemas::synthetic`, the same shape). Two catalogs are measured: the Flink reference
//! job (per event name and OS, 1-minute windows: count, distinct users, sum of revenue, 10 s
//! lateness) and a 10 KPIs × 3 windows × 2 segment dimensions catalog. CPU time is read from
//! /proc/self/stat; results are recorded in docs/benchmarks.md.

use std::sync::Arc;
use std::time::Instant;

use northstar_schemas::aggregate::AggregateCodec;
use northstar_schemas::event::EventCodec;
use northstar_schemas::{synthetic, wire, Event};
use northstar_stream_processor::catalog::Catalog;
use northstar_stream_processor::plan_gate::{PlanGate, PlanPolicies, Verdict};
use northstar_stream_processor::state::{PartitionState, Source};
use northstar_stream_processor::validate::validate;

const FLINK_JOB: &str = r#"
north_star: users
defaults: {windows: [1m], max_segment_values: 100}
kpis:
  - {name: events, aggregate: count, segments: [event, context.os.name]}
  - {name: users, aggregate: distinct_users, segments: [event, context.os.name]}
  - {name: revenue, aggregate: {sum: properties.revenue}, segments: [event, context.os.name]}
"#;

fn wide_catalog() -> String {
    let mut s = String::from(
        "north_star: k0\ndefaults: {windows: [1m, 1h, 1d], max_segment_values: 100}\nkpis:\n",
    );
    let aggs = ["count", "distinct_users", "{sum: properties.revenue}"];
    let names = [
        "signup",
        "page_view",
        "order_completed",
        "checkout_started",
        "feature_used",
    ];
    for i in 0..10 {
        let filter = if i < 5 {
            format!("filter: {{event: {}}}, ", names[i])
        } else {
            String::new()
        };
        s.push_str(&format!(
            "  - {{name: k{i}, {filter}aggregate: {}, segments: [context.os.name, properties.plan]}}\n",
            aggs[i % 3]
        ));
    }
    s
}

fn generate(n: usize) -> Vec<Event> {
    (0..n as u64)
        .map(|i| synthetic::event(i, 1_795_600_000_000))
        .collect()
}

fn read_jsonl(path: &str, n: usize) -> Vec<Event> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("cannot read {path}: {e}"));
    text.lines()
        .take(n)
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .map(|v| {
            let s = |k: &str| v[k].as_str().unwrap_or_default().to_string();
            let ts = chrono::NaiveDateTime::parse_from_str(&s("ts"), "%Y-%m-%d %H:%M:%S%.3f")
                .map(|t| t.and_utc().timestamp_millis())
                .unwrap_or(0);
            synthetic::track(
                &s("message_id"),
                &s("user_id"),
                &s("event"),
                ts,
                &s("os"),
                &s("plan"),
                v["revenue"].as_f64().unwrap_or(0.0),
            )
        })
        .collect()
}

fn run(
    label: &str,
    catalog: &str,
    records: &[Vec<u8>],
    lateness_ms: i64,
    every: usize,
    gate: Option<&PlanGate>,
) {
    let catalog = Arc::new(Catalog::parse(catalog).expect("bench catalog"));
    let codec = EventCodec::new();
    let agg_codec = AggregateCodec::new();
    let mut state = PartitionState::new(catalog.clone(), lateness_ms, 86_400);
    let (mut out_bytes, mut updates) = (0usize, 0usize);
    let mut arena = Vec::new();
    let cpu0 = northstar_runtime::process_cpu_seconds();
    let wall = Instant::now();
    for (i, rec) in records.iter().enumerate() {
        let (_, datum) = wire::split(rec).expect("wire");
        let e = codec.decode(codec.schema(), datum).expect("decode");
        validate(&e).expect("valid");
        if gate.is_some_and(|g| matches!(g.judge(&e), Verdict::Quarantine { .. })) {
            continue;
        }
        if state.is_duplicate(&e.source_id, &e.message_id, e.received_at) {
            continue;
        }
        state.count(&e, e.timestamp / 1000);
        out_bytes += wire::frame(1, &codec.encode(&e).expect("encode")).len();
        if i % every == every - 1 || i + 1 == records.len() {
            // As the pipeline writes them: key and payload into a reused buffer.
            let source = Source {
                topic: "events.raw",
                partition: 0,
                offset: i as i64,
            };
            for e in state.drain() {
                let slots = catalog.kpis[e.kpi].windows[e.window].retained_windows(lateness_ms);
                state.view(&e, source, |agg| {
                    agg.write_record_key(slots, &mut arena);
                    wire::put_header(&mut arena, 2);
                    agg_codec.write(agg, &mut arena);
                });
                out_bytes += arena.len();
                arena.clear();
                updates += 1;
            }
        }
    }
    let cpu = northstar_runtime::process_cpu_seconds() - cpu0;
    let n = records.len() as f64;
    println!(
        "{label}: {} events, {:.2} CPU-s ({:.2} s wall), {:.2} µs/event, {:.0} events per CPU-second; {} aggregate updates, {} output bytes",
        records.len(),
        cpu,
        wall.elapsed().as_secs_f64(),
        cpu * 1e6 / n,
        n / cpu.max(1e-9),
        updates,
        out_bytes
    );
}

fn main() {
    let all: Vec<String> = std::env::args().skip(1).collect();
    let every: usize = all
        .iter()
        .position(|a| a == "--emit-every")
        .and_then(|i| all.get(i + 1))
        .map(|v| v.parse().expect("--emit-every takes a number of events"))
        .unwrap_or(10_000)
        .max(1);
    let args: Vec<String> = all
        .iter()
        .enumerate()
        .filter(|(i, a)| {
            !a.starts_with("--")
                && (*i == 0 || !matches!(all[*i - 1].as_str(), "--emit-every" | "--plan"))
        })
        .map(|(_, a)| a.clone())
        .collect();
    let n: usize = args
        .first()
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let gate = all
        .iter()
        .position(|a| a == "--plan")
        .and_then(|i| all.get(i + 1))
        .map(|path| {
            let plan = northstar_schemas::plan::Plan::load(std::path::Path::new(path))
                .expect("--plan: a valid plan");
            PlanGate::new(Some(plan), None, PlanPolicies::default())
        });
    let events = match args.get(1) {
        Some(path) => read_jsonl(path, n),
        None => generate(n),
    };
    let codec = EventCodec::new();
    // The input as it sits in events.raw: Confluent wire format.
    let records: Vec<Vec<u8>> = events
        .iter()
        .map(|e| wire::frame(1, &codec.encode(e).expect("encode")))
        .collect();
    drop(events);
    run(
        "flink-equivalent job (count, distinct users, sum per event x os, 1m)",
        FLINK_JOB,
        &records,
        10_000,
        every,
        None,
    );
    run(
        "10 KPIs x 3 windows x 2 segment dimensions",
        &wide_catalog(),
        &records,
        600_000,
        every,
        None,
    );
    if let Some(gate) = &gate {
        run(
            "10 KPIs x 3 windows x 2 segment dimensions, tracking plan enforced",
            &wide_catalog(),
            &records,
            600_000,
            every,
            Some(gate),
        );
    }
}
