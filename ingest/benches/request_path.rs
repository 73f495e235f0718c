//! The collector's own cost per event, without IO: a batch of 100 events as `bench/ingest_body.py`
//! writes them (a product-page track call as analytics.js sends it, ~660 bytes each) parsed,
//! turned into events (enrichment, clock correction) and encoded as wire-format Avro records.
//!
//! `cargo bench -p northstar-ingest --bench request_path` prints microseconds per event and
//! events per CPU-second for each step and for the whole path. What the collector costs beyond
//! this is HTTP and librdkafka (see `bash bench/ingest_wrk.sh`, docs/benchmarks.md).

use std::net::IpAddr;

use northstar_ingest::config::{ClockBounds, Limits};
use northstar_ingest::enrich::{IpPolicy, RequestInfo};
use northstar_ingest::segment;
use northstar_runtime::process_cpu_seconds;
use northstar_schemas::event::EventCodec;
use northstar_schemas::wire;

/// The body of `bench/ingest_body.py` for `n` events (same fields, same sizes).
fn batch_body(n: usize) -> String {
    let events: Vec<String> = (0..n)
        .map(|i| {
            format!(
                concat!(
                    r#"{{"type":"track","event":"Product Viewed","userId":"user-{:06}","#,
                    r#""anonymousId":"anon-{:08}-7f3c","messageId":"bench-{:012}","#,
                    r#""timestamp":"2026-11-26T10:00:00.000Z","properties":{{"product_id":"sku-{:05}","#,
                    r#""name":"Trail Runner 2","price":89.9,"currency":"EUR","category":"shoes","#,
                    r#""quantity":1,"tags":["running","outdoor"]}},"context":{{"library":"#,
                    r#"{{"name":"analytics.js","version":"2.1.0"}},"page":{{"path":"/products/trail-runner-2","#,
                    r#""url":"https://shop.example/products/trail-runner-2","referrer":"https://www.google.com/"}},"#,
                    r#""userAgent":"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36","#,
                    r#""locale":"en-US"}}}}"#
                ),
                i % 5000,
                i,
                i,
                i % 977
            )
        })
        .collect();
    format!(
        r#"{{"batch":[{}],"sentAt":"2026-11-26T10:00:00.050Z"}}"#,
        events.join(",")
    )
}

/// Runs `step` over `rounds` batches of `per` events; prints and returns µs per event.
fn measure(name: &str, rounds: usize, per: usize, mut step: impl FnMut() -> usize) -> f64 {
    let cpu0 = process_cpu_seconds();
    let mut sink = 0usize;
    for _ in 0..rounds {
        sink = sink.wrapping_add(step());
    }
    let cpu = process_cpu_seconds() - cpu0;
    let n = (rounds * per) as f64;
    let us = cpu * 1e6 / n;
    println!(
        "{name:<40} {us:>7.3} µs per event  {:>10.0} events per CPU-second  (checksum {sink})",
        n / cpu.max(1e-9)
    );
    us
}

fn main() {
    let per = 100;
    let rounds: usize = std::env::var("ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3_000);
    let body = batch_body(per);
    let limits = Limits::default();
    let clock = ClockBounds::default();
    let info = RequestInfo {
        ip: Some(IpAddr::from([203, 0, 113, 7])),
        ip_policy: IpPolicy::Truncate,
    };
    let codec = EventCodec::new();
    let received_at = 1_764_151_200_000_000;
    println!(
        "a batch of {per} events, {} bytes; {rounds} batches per measurement",
        body.len()
    );
    let arrival = segment::Arrival {
        source_id: "web",
        received_at,
        clock: &clock,
        info: &info,
    };
    let events_of = |req: &segment::Request<'_>| -> Vec<northstar_schemas::Event> {
        req.events(&arrival).expect("events")
    };
    measure("parse", rounds, per, || {
        segment::parse_batch(body.as_bytes(), &limits)
            .expect("parse")
            .messages
            .len()
    });
    let whole = measure("parse + events", rounds, per, || {
        let req = segment::parse_batch(body.as_bytes(), &limits).expect("parse");
        events_of(&req).len()
    });
    let req = segment::parse_batch(body.as_bytes(), &limits).expect("parse");
    let events = events_of(&req);
    let encode = measure("encode + frame", rounds, per, || {
        events
            .iter()
            .map(|e| wire::frame(1, &codec.encode(e).expect("encode")).len())
            .sum()
    });
    println!(
        "{:<40} {:>7.3} µs per event  {:>10.0} events per CPU-second",
        "whole path (parse + events + encode)",
        whole + encode,
        1e6 / (whole + encode)
    );
}
