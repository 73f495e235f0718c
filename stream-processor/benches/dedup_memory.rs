//! Memory per remembered id of the dedup set, measured with a counting allocator.
//!
//! `cargo bench -p northstar-stream-processor --bench dedup_memory` prints, for several set
//! sizes, the heap bytes actually allocated per id (the target is at most 40) and the insert
//! rate. Figures are recorded in docs/benchmarks.md.

// A counting GlobalAlloc is the one unsafe thing here: it forwards to the system allocator.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use northstar_stream_processor::dedup::Dedup;

struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards to the system allocator and only counts bytes.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size(), Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(new_size, Ordering::Relaxed);
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

fn main() {
    println!(
        "{:>10} {:>14} {:>12} {:>12} {:>14}",
        "ids", "heap bytes", "bytes/id", "estimate/id", "inserts/s"
    );
    let mut worst: f64 = 0.0;
    for &n in &[
        10_000u64, 100_000, 458_752, 917_504, 1_000_000, 3_000_000, 5_000_000,
    ] {
        let before = LIVE.load(Ordering::Relaxed);
        let mut d = Dedup::new(86_400);
        let started = Instant::now();
        for i in 0..n {
            // Distinct fingerprints, all within the window.
            d.check_fingerprint(
                i.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xA5A5,
                1_764_000_000 + (i / 1_000) as u32,
            );
        }
        let secs = started.elapsed().as_secs_f64();
        let bytes = LIVE.load(Ordering::Relaxed) - before;
        let per_id = bytes as f64 / d.len() as f64;
        worst = worst.max(per_id);
        println!(
            "{:>10} {:>14} {:>12.1} {:>12.1} {:>14.0}",
            d.len(),
            bytes,
            per_id,
            d.approx_bytes() as f64 / d.len() as f64,
            n as f64 / secs
        );
        drop(d);
    }
    println!("worst bytes per remembered id: {worst:.1} (target ≤ 40)");
}
