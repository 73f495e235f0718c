//! The lake sink's Parquet encoding per row, without Kafka: decoded events → Arrow batch
//! (flattened context, typed properties) → Parquet bytes (zstd 3, dictionary, page statistics).
//!
//! `cargo bench -p northstar-sink --bench encode [-- EVENTS [ROWS_PER_FILE [OUT_DIR]]]`
//!
//! Input: `northstar_schemas::synthetic` (the events `northstar-fill` puts in the end-to-end
//! benchmark's topic), grouped into files the way the sink groups them (event hour and name),
//! at most ROWS_PER_FILE rows each (default 11,111: the sink's files in the end-to-end run).
//! Prints the CPU time per row of the Arrow build and of the Parquet write; with OUT_DIR, also
//! writes the files there (for `bench/lake_encode_vs_pyarrow.sh` to have pyarrow write the same
//! rows). CPU time is read from /proc/self/stat.

use std::collections::BTreeMap;

use northstar_schemas::synthetic;
use northstar_sink::lake::parquet::{build_batch, write_file, Row};
use northstar_sink::lake::partition_path;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let n: u64 = args
        .first()
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let per_file: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(11_111);
    let out = args.get(2).map(std::path::PathBuf::from);
    // Group as the sink does: one buffer per partition path, cut at ROWS_PER_FILE.
    let mut groups: BTreeMap<String, Vec<Vec<Row>>> = BTreeMap::new();
    for i in 0..n {
        let event = synthetic::event(i, 1_795_600_000_000);
        let path = partition_path(event.timestamp, event.event.as_deref().unwrap_or_default());
        let files = groups.entry(path).or_default();
        if files.last().is_none_or(|f| f.len() >= per_file) {
            files.push(Vec::with_capacity(per_file));
        }
        let (p, o) = ((i % 3) as i32, (i / 3) as i64);
        if let Some(f) = files.last_mut() {
            f.push(Row {
                event,
                clean_partition: p,
                clean_offset: o,
                source_partition: p,
                source_offset: o,
                plan: None,
                plan_flags: None,
            });
        }
    }
    let mut files: Vec<Vec<Row>> = groups.into_values().flatten().collect();
    let c0 = northstar_runtime::process_cpu_seconds();
    let mut batches = Vec::with_capacity(files.len());
    for rows in &mut files {
        batches.push(build_batch(rows, None)?.0);
    }
    let c1 = northstar_runtime::process_cpu_seconds();
    let mut bytes = 0usize;
    let mut encoded = Vec::with_capacity(batches.len());
    for batch in &batches {
        let file = write_file(batch)?;
        bytes += file.len();
        encoded.push(file);
    }
    let c2 = northstar_runtime::process_cpu_seconds();
    if let Some(dir) = &out {
        std::fs::create_dir_all(dir)?;
        for (i, file) in encoded.iter().enumerate() {
            std::fs::write(dir.join(format!("part-{i:05}.parquet")), file)?;
        }
    }
    let per_row = |s: f64| s * 1e6 / n as f64;
    println!(
        "lake sink encoding, {n} rows in {} files ({:.1} MB): Arrow build {:.2} us/row, Parquet write {:.2} us/row, total {:.2} us/row ({:.0} rows per CPU-second)",
        batches.len(),
        bytes as f64 / 1e6,
        per_row(c1 - c0),
        per_row(c2 - c1),
        per_row(c2 - c0),
        n as f64 / (c2 - c0)
    );
    Ok(())
}
