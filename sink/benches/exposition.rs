//! The metrics sink without Kafka: the cost of a `/metrics` scrape and of reading records at
//! start-up, for a catalog whose KPI has SERIES series per value family.
//!
//! `cargo bench -p northstar-sink --bench exposition [-- SERIES...]` (default 10000 100000)
//!
//! One KPI with two dimensions and windows 1m, 1h, 1d; for each window, SERIES / 3 segment
//! combinations, each with a final and an open window, plus the totals. For each size it prints:
//! the CPU time of decoding (Avro, the v2 schema) and applying every record to the table (what a
//! restart costs per record besides fetching it), then the CPU time and size of one rendering
//! in each format, best of several. CPU time is read from /proc/self/stat.

use std::sync::Arc;
use std::time::{Duration, Instant};

use northstar_schemas::aggregate::{AggregateCodec, KpiAggregate};
use northstar_schemas::apache_avro::Schema;
use northstar_schemas::catalog::Catalog;
use northstar_sink::metrics_sink::render::{render_kpis, Clock, Exposition, Format, Options};
use northstar_sink::metrics_sink::table::Table;

const CATALOG: &str = r#"
north_star: signups
defaults: {windows: [1m, 1h, 1d], max_segment_values: 100000, allowed_lateness: 1m}
kpis:
  - {name: signups, aggregate: count, segments: [context.os.name, properties.plan]}
"#;

/// CPU seconds of this process (user + system).
fn cpu_secs() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    let ticks: f64 = [11, 12]
        .iter()
        .filter_map(|&i| fields.get(i).and_then(|v| v.parse::<f64>().ok()))
        .sum();
    ticks / 100.0
}

/// The records of `series` series per family (3 windows; a final and an open window each).
fn records(series: usize, now_ms: i64) -> Vec<KpiAggregate> {
    let per_window = (series / 3).max(1);
    let side = (per_window as f64).sqrt().ceil() as usize;
    let mut out = Vec::new();
    let mut offset = 0;
    for (label, len) in [("1m", 60_000), ("1h", 3_600_000), ("1d", 86_400_000)] {
        let open = now_ms - now_ms % len;
        for (start, is_final) in [(open - len, true), (open, false)] {
            for i in 0..per_window {
                let segment = [
                    ("context.os.name".to_string(), format!("os-{}", i / side)),
                    ("properties.plan".to_string(), format!("plan-{}", i % side)),
                ];
                offset += 1;
                out.push(KpiAggregate {
                    kpi: "signups".into(),
                    window: label.into(),
                    window_start: start,
                    window_end: start + len,
                    segment: segment.into(),
                    kind: "count".into(),
                    value: (i % 97) as f64,
                    numerator: 0.0,
                    denominator: 0.0,
                    is_final,
                    watermark: now_ms - 1,
                    source_topic: "events.raw".into(),
                    source_partition: 0,
                    source_offset: offset,
                    allowed_lateness_ms: 0,
                    full_input_after_ms: i64::MIN,
                    others_from: 0.0,
                });
            }
        }
    }
    out
}

fn main() -> anyhow::Result<()> {
    let sizes: Vec<usize> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .filter_map(|a| a.parse().ok())
        .collect();
    let sizes = if sizes.is_empty() {
        vec![10_000, 100_000]
    } else {
        sizes
    };
    let catalog = Arc::new(Catalog::parse(CATALOG)?);
    let codec = AggregateCodec::new();
    let schema = Schema::parse_str(northstar_schemas::KPI_AGGREGATE_SCHEMA)?;
    for series in sizes {
        let now_ms = chrono::Utc::now().timestamp_millis();
        let recs = records(series, now_ms);
        let encoded: Vec<Vec<u8>> = recs
            .iter()
            .map(|r| codec.encode(r))
            .collect::<Result<_, _>>()?;
        let mut table = Table::new(catalog.clone());
        let now = Instant::now();
        let c0 = cpu_secs();
        for datum in &encoded {
            let agg = codec.decode(&schema, datum)?;
            table.apply_at(agg, now);
        }
        table.advance(now, Duration::from_secs(900));
        let read = cpu_secs() - c0;
        println!(
            "{series} series per family: {} records decoded and applied in {read:.3} CPU-s ({:.2} us/record); {} series held",
            encoded.len(),
            read * 1e6 / encoded.len() as f64,
            table.series()
        );
        let opts = Options {
            caught_up: true,
            exposure: Duration::from_secs(900),
            history_max_age_ms: 36 * 86_400_000,
        };
        for format in [Format::OpenMetrics, Format::Text] {
            let (mut best, mut bytes, mut lines) = (f64::MAX, 0, 0);
            for _ in 0..5 {
                let clock = Clock {
                    now,
                    unix_ms: now_ms,
                };
                let c0 = cpu_secs();
                let mut out = Exposition::new(format);
                render_kpis(&table, clock, &opts, &mut out);
                let text = out.finish();
                best = best.min(cpu_secs() - c0);
                bytes = text.len();
                lines = text.lines().filter(|l| !l.starts_with('#')).count();
            }
            println!(
                "  scrape {format:?}: {lines} samples, {:.1} MiB, {:.0} ms CPU (best of 5)",
                bytes as f64 / 1_048_576.0,
                best * 1000.0
            );
        }
    }
    Ok(())
}
