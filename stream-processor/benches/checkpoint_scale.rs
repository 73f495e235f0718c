//! Checkpoints at scale: a partition holding many remembered ids (default 20 million) and the
//! example catalog's windows, processing rounds of new events with a checkpoint after each,
//! as the pipeline does (drain, then checkpoint).
//!
//! `cargo bench -p northstar-stream-processor --bench checkpoint_scale -- [incremental|full] [IDS [EVENTS_PER_ROUND [ROUNDS]]]`
//!
//! `incremental` (this build): the loop takes the journal and the snapshot without ids, the
//! background writer (`checkpoint::writer`) writes segments, merges and the manifest to a
//! local object store; `full` (before): every checkpoint is the whole state, snapshotted,
//! encoded and written inline (format 4). Printed per mode: the consume loop's time per
//! checkpoint, bytes written per checkpoint and per event processed, the writer's time, peak
//! memory (VmHWM) against the state's size, and the restore time of the newest checkpoint
//! (by this writer, and by another instance, which rebases). Results are in
//! docs/benchmarks.md.

use std::sync::Arc;
use std::time::Instant;

use northstar_runtime::objstore::ObjectRoot;
use northstar_schemas::synthetic;
use northstar_stream_processor::catalog::Catalog;
use northstar_stream_processor::checkpoint::writer::{self, Job, Report};
use northstar_stream_processor::checkpoint::{Base, Checkpoints};
use northstar_stream_processor::state::PartitionState;

const LATENESS_MS: i64 = 600_000;
const WINDOW_SECS: u32 = 86_400;
/// Event time of the benchmark's traffic (ms): 2026-11-25.
const T0_MS: i64 = 1_795_600_000_000;

fn vm_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or(0)
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// Remembers `n` ids received over the 20 hours before the traffic.
fn prefill(state: &mut PartitionState, n: u64) {
    let span_us = 20 * 3_600 * 1_000_000i64;
    for i in 0..n {
        let at = T0_MS * 1_000 - span_us + (i as i64 * span_us / n.max(1) as i64);
        state.is_duplicate("prefill", &format!("p{i}"), at);
    }
}

/// Event `i` of the synthetic traffic, 1 ms apart (a 22-million-event run spans 6 hours: the
/// oldest prefilled ids expire towards the end, as in a steady state).
fn event(i: u64) -> northstar_schemas::Event {
    let mut e = synthetic::event(i, T0_MS);
    let us = (T0_MS + i as i64) * 1_000;
    (e.timestamp, e.received_at) = (us, us);
    e
}

/// Processes events `from..to` of the synthetic traffic, then drains (as an emission does).
fn process(state: &mut PartitionState, from: u64, to: u64) {
    for i in from..to {
        let e = event(i);
        if !state.is_duplicate(&e.source_id, &e.message_id, e.received_at) {
            state.count(&e, e.timestamp / 1000);
        }
    }
    let _ = state.drain();
}

struct Args {
    full: bool,
    ids: u64,
    per_round: u64,
    rounds: u64,
}

fn args() -> Args {
    let mut a = Args {
        full: false,
        ids: 20_000_000,
        per_round: 1_100_000,
        rounds: 20,
    };
    let mut nums = Vec::new();
    for arg in std::env::args().skip(1) {
        match arg.as_str() {
            "full" => a.full = true,
            "incremental" => a.full = false,
            "--bench" => {}
            n => nums.extend(n.replace('_', "").parse::<u64>().ok()),
        }
    }
    let mut it = nums.into_iter();
    a.ids = it.next().unwrap_or(a.ids);
    a.per_round = it.next().unwrap_or(a.per_round);
    a.rounds = it.next().unwrap_or(a.rounds);
    a
}

fn main() {
    let a = args();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(run(a));
}

async fn run(a: Args) {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/kpi-catalog.yaml");
    let text = std::fs::read_to_string(path).expect("example catalog");
    let catalog = Arc::new(Catalog::parse(&text).expect("catalog"));
    let dir = tempfile::tempdir().expect("tempdir");
    let root = ObjectRoot::open(&format!("file://{}", dir.path().display())).expect("root");
    let checkpoints = Checkpoints::new(root.clone(), "bench", "events.raw", 3, catalog.clone());
    let mut state = PartitionState::new(catalog.clone(), LATENESS_MS, WINDOW_SECS);
    let started = Instant::now();
    prefill(&mut state, a.ids);
    process(&mut state, 0, a.per_round);
    println!(
        "state: {} remembered ids (dedup table {:.0} MiB), {} open windows; RSS {:.0} MiB (filled in {:.1} s)",
        state.remembered_ids(),
        state.dedup_bytes() as f64 / 1_048_576.0,
        state.open_windows(),
        mib(vm_kib("VmRSS:")),
        started.elapsed().as_secs_f64()
    );
    let (handle, mut reports) = writer::spawn(checkpoints.clone());
    // The starting checkpoint (not measured): the state as restored from a previous run.
    let mut offset = a.per_round as i64;
    if a.full {
        checkpoints.save_v4(0, offset, &state).await.expect("save");
    } else {
        // As after a restore: the ids so far are this writer's top segment.
        let base = checkpoints.rebase(&state, 0);
        let _ = state.checkpoint_parts();
        handle.send(Job::Open {
            partition: 0,
            generation: 1,
            next_offset: 0,
            base,
        });
        save(&handle, &mut reports, &mut state, offset).await;
    }
    let rss_before = vm_kib("VmRSS:");
    let (mut loop_secs, mut process_cpu, mut written, mut writer_secs) = (0.0, 0.0, 0u64, 0.0);
    let (mut events, mut extra_kib, mut checkpoint_cpu) = (0u64, 0u64, 0.0);
    for round in 1..=a.rounds {
        let from = round * a.per_round;
        let cpu0 = northstar_runtime::process_cpu_seconds();
        process(&mut state, from, from + a.per_round);
        process_cpu += northstar_runtime::process_cpu_seconds() - cpu0;
        events += a.per_round;
        offset += a.per_round as i64;
        // The memory a checkpoint adds: its peak over the RSS just before it.
        let _ = std::fs::write("/proc/self/clear_refs", "5");
        let rss0 = vm_kib("VmRSS:");
        let (t, cpu0) = (Instant::now(), northstar_runtime::process_cpu_seconds());
        if a.full {
            let bytes = checkpoints.save_v4(0, offset, &state).await.expect("save");
            loop_secs += t.elapsed().as_secs_f64();
            writer_secs += t.elapsed().as_secs_f64();
            written += bytes as u64;
        } else {
            let (bytes, secs, in_loop) = save(&handle, &mut reports, &mut state, offset).await;
            loop_secs += in_loop;
            writer_secs += secs;
            written += bytes;
        }
        checkpoint_cpu += northstar_runtime::process_cpu_seconds() - cpu0;
        extra_kib = extra_kib.max(vm_kib("VmHWM:").saturating_sub(rss0));
    }
    let n = a.rounds as f64;
    println!(
        "{1} checkpoints {0}, {2} events each: consume loop {3:.2} ms per checkpoint; written {4:.1} MiB per checkpoint, {5:.1} bytes per event; writer {6:.0} ms per checkpoint",
        if a.full { "full (format 4, inline)" } else { "incremental (format 5, background)" },
        a.rounds,
        a.per_round,
        loop_secs * 1e3 / n,
        written as f64 / n / 1_048_576.0,
        written as f64 / events as f64,
        writer_secs * 1e3 / n,
    );
    println!(
        "CPU: processing {:.0} events per CPU-second; checkpoints {:.3} CPU-s each ({:.2} us per event, {:.1} % of the processing's CPU); with them {:.0} events per CPU-second",
        events as f64 / process_cpu,
        checkpoint_cpu / n,
        checkpoint_cpu * 1e6 / events as f64,
        checkpoint_cpu / process_cpu * 100.0,
        events as f64 / (process_cpu + checkpoint_cpu),
    );
    println!(
        "checkpoint bytes per second of processing: {:.1} MiB/s (at 220,000 events/s: {:.1} MiB/s)",
        written as f64 / process_cpu / 1_048_576.0,
        written as f64 / events as f64 * 220_000.0 / 1_048_576.0,
    );
    let rss_after = vm_kib("VmRSS:");
    println!(
        "memory: RSS {:.0} MiB before the rounds, {:.0} MiB after (dedup table {:.0} MiB); a checkpoint adds at most {:.0} MiB over the RSS before it (VmHWM, reset each time): {:.2}x the dedup table, {:.2}x the RSS",
        mib(rss_before),
        mib(rss_after),
        state.dedup_bytes() as f64 / 1_048_576.0,
        mib(extra_kib),
        extra_kib as f64 * 1024.0 / state.dedup_bytes() as f64,
        extra_kib as f64 / rss_after as f64
    );
    let cutoff = state.dedup_cutoff_secs();
    let ids = state.dedup_entries().filter(|e| e.1 >= cutoff).count();
    drop(state);
    for (label, c) in [
        ("same writer", checkpoints.clone()),
        (
            "another instance",
            Checkpoints::new(root.clone(), "bench", "events.raw", 3, catalog.clone()),
        ),
    ] {
        let t = Instant::now();
        let r = c
            .restore(0, LATENESS_MS, WINDOW_SECS)
            .await
            .expect("restore")
            .expect("a checkpoint");
        assert_eq!(r.state.remembered_ids(), ids);
        println!(
            "restore ({label}): {:.2} s, {:.0} MiB read, {} ids{}",
            t.elapsed().as_secs_f64(),
            r.bytes as f64 / 1_048_576.0,
            r.state.remembered_ids(),
            match r.base {
                Base::Rebase { .. } => ", rebased",
                Base::Own(_) => "",
            }
        );
        if a.full {
            break;
        }
    }
    let stored: u64 = root
        .list_sized("checkpoints")
        .await
        .expect("list")
        .iter()
        .map(|(_, s)| s)
        .sum();
    let manifest = root
        .list_sized("checkpoints")
        .await
        .expect("list")
        .iter()
        .filter(|(k, _)| k.ends_with(".ckpt"))
        .map(|(_, s)| *s)
        .max()
        .unwrap_or(0);
    println!(
        "stored: {:.0} MiB; the largest checkpoint file (manifest, or the full snapshot): {:.1} MiB",
        stored as f64 / 1_048_576.0,
        manifest as f64 / 1_048_576.0
    );
}

/// Hands one checkpoint to the writer and waits for it: (bytes, writer seconds, loop seconds).
async fn save(
    handle: &writer::Handle,
    reports: &mut tokio::sync::mpsc::UnboundedReceiver<Report>,
    state: &mut PartitionState,
    next_offset: i64,
) -> (u64, f64, f64) {
    let t = Instant::now();
    handle.send(Job::save(0, 1, next_offset, state, None));
    let in_loop = t.elapsed().as_secs_f64();
    loop {
        match reports.recv().await.expect("writer") {
            Report::Done {
                next_offset: Some(_),
                bytes,
                seconds,
                ..
            } => return (bytes, seconds, in_loop),
            Report::Done { .. } => {}
            Report::Failed { error, .. } => panic!("checkpoint failed: {error}"),
        }
    }
}
