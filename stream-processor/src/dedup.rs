//! Bounded deduplication by (source, messageId) within a time window.
//!
//! Contract: deterministic — "now" is the event's `receivedAt`, never the wall clock, so a
//! replay makes the same decisions. An id is a duplicate if seen within `window_secs` of the
//! time remembered for it, and that time is within the window of "now" (by receivedAt); an
//! id's remembered time only moves forward (the newest sighting that was not a duplicate).
//! Older ids expire and are swept out as time advances, so memory holds only the
//! window. Each remembered id costs one 64-bit fingerprint and a 32-bit time in a hash table:
//! at most 40 bytes including the table's spare capacity (see [`Dedup::approx_bytes`] and the
//! `dedup_memory` benchmark). Fingerprint collisions (probability ≈ n²/2⁶⁵) would drop a unique
//! event; at 100 million remembered ids that is about 3·10⁻⁴.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// Fingerprints are already uniformly distributed: the table uses them as their own hash.
#[derive(Debug, Default, Clone, Copy)]
pub struct IdentityHasher(u64);

impl Hasher for IdentityHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

/// A stable 64-bit fingerprint of a tuple of strings: XXH3 (a specified algorithm, so values
/// stored in checkpoints stay valid across builds and Rust versions), each part seeded with
/// the previous hash and its length so that part boundaries count.
pub fn fingerprint_parts(parts: &[&str]) -> u64 {
    let mut h: u64 = 0x6e6f_7274_6873_7461; // "northsta"
    for p in parts {
        h = xxhash_rust::xxh3::xxh3_64_with_seed(p.as_bytes(), h.wrapping_add(p.len() as u64));
    }
    h
}

/// A stable 64-bit fingerprint of (source, messageId).
pub fn fingerprint(source: &str, message_id: &str) -> u64 {
    fingerprint_parts(&[source, message_id])
}

/// The dedup set of one input partition.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Dedup {
    /// fingerprint → receivedAt (unix seconds) when first seen.
    ids: HashMap<u64, u32, BuildHasherDefault<IdentityHasher>>,
    window_secs: u32,
    /// The largest receivedAt seen (unix seconds).
    now_secs: u32,
    last_sweep_secs: u32,
    /// Every (fingerprint, first seen) written since the last [`Dedup::take_journal`]: what
    /// an incremental checkpoint stores (`checkpoint::segments`). Not part of snapshots.
    #[serde(skip)]
    journal: Vec<(u64, u32)>,
}

impl Dedup {
    pub fn new(window_secs: u32) -> Self {
        Self {
            ids: HashMap::default(),
            window_secs: window_secs.max(1),
            now_secs: 0,
            last_sweep_secs: 0,
            journal: Vec::new(),
        }
    }

    /// The writes since the last call (in order; a later write of a fingerprint wins).
    pub fn take_journal(&mut self) -> Vec<(u64, u32)> {
        std::mem::take(&mut self.journal)
    }

    /// This set without its ids and journal: what a checkpoint manifest stores beside the
    /// segments that hold the ids.
    pub fn without_ids(&self) -> Self {
        Self {
            ids: HashMap::default(),
            window_secs: self.window_secs,
            now_secs: self.now_secs,
            last_sweep_secs: self.last_sweep_secs,
            journal: Vec::new(),
        }
    }

    /// Applies restored writes in order (a later write of a fingerprint wins); call
    /// [`Dedup::sweep`] after the last one.
    pub fn apply(&mut self, writes: impl IntoIterator<Item = (u64, u32)>) {
        self.ids.extend(writes);
    }

    /// Reserves room for `n` more ids (restore).
    pub fn reserve(&mut self, n: usize) {
        self.ids.reserve(n);
    }

    /// The remembered ids with their first-seen time (any order).
    pub fn entries(&self) -> impl Iterator<Item = (u64, u32)> + '_ {
        self.ids.iter().map(|(&fp, &at)| (fp, at))
    }

    /// Ids first seen before this time (unix seconds) are expired.
    pub fn cutoff_secs(&self) -> u32 {
        self.now_secs.saturating_sub(self.window_secs)
    }

    /// Changes the window (a restored set keeps its ids; the next sweep applies the new window).
    pub fn set_window(&mut self, window_secs: u32) {
        self.window_secs = window_secs.max(1);
    }

    /// Records the id seen at `received_at_micros`; true if it is a duplicate within the window.
    pub fn check(&mut self, source: &str, message_id: &str, received_at_micros: i64) -> bool {
        let at = (received_at_micros.div_euclid(1_000_000)).clamp(0, i64::from(u32::MAX)) as u32;
        self.check_fingerprint(fingerprint(source, message_id), at)
    }

    /// [`Dedup::check`] on a precomputed fingerprint and time (unix seconds).
    pub fn check_fingerprint(&mut self, fp: u64, at: u32) -> bool {
        self.now_secs = self.now_secs.max(at);
        let (window, now) = (self.window_secs, self.now_secs);
        let duplicate = match self.ids.get_mut(&fp) {
            Some(first)
                if at.abs_diff(*first) <= window && now.saturating_sub(*first) <= window =>
            {
                true
            }
            Some(first) => {
                // Not a duplicate (too far from the time remembered, or expired): remember the
                // newer sighting. Times only move forward, so a later write of a fingerprint
                // is never older than an earlier one (what incremental checkpoints rely on).
                if at > *first {
                    *first = at;
                    self.journal.push((fp, at));
                }
                false
            }
            None => {
                self.ids.insert(fp, at);
                self.journal.push((fp, at));
                false
            }
        };
        // Sweep expired ids each time the clock advances by 1/24 of the window.
        if self.now_secs.saturating_sub(self.last_sweep_secs) >= (self.window_secs / 24).max(1) {
            self.sweep();
        }
        duplicate
    }

    /// Forgets ids older than the window.
    pub fn sweep(&mut self) {
        let cutoff = self.now_secs.saturating_sub(self.window_secs);
        self.ids.retain(|_, first| *first >= cutoff);
        // Give memory back once the table is mostly empty.
        if self.ids.capacity() > 1024 && self.ids.len() * 4 < self.ids.capacity() {
            self.ids.shrink_to(self.ids.len() * 2);
        }
        self.last_sweep_secs = self.now_secs;
    }

    /// Remembered ids.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// Heap bytes of the table: buckets (a power of two ≥ capacity·8/7) × (16-byte entry +
    /// 1 control byte), plus the control group tail.
    pub fn approx_bytes(&self) -> usize {
        let cap = self.ids.capacity();
        if cap == 0 {
            return 0;
        }
        let buckets = if cap < 8 {
            (cap + 1).next_power_of_two()
        } else {
            (cap * 8 / 7).next_power_of_two()
        };
        buckets * (std::mem::size_of::<(u64, u32)>() + 1) + 16
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: u32 = 86_400;
    const T: i64 = 1_764_000_000_000_000;

    #[test]
    fn duplicates_within_the_window_only() {
        let mut d = Dedup::new(DAY);
        assert!(!d.check("web", "m1", T));
        assert!(
            d.check("web", "m1", T + 3_600_000_000),
            "an hour later: duplicate"
        );
        assert!(!d.check("ios", "m1", T), "scoped by source");
        // Two days later the id has expired: the same id is new again.
        assert!(!d.check("web", "m1", T + 2 * i64::from(DAY) * 1_000_000));
        assert!(d.check("web", "m1", T + 2 * i64::from(DAY) * 1_000_000 + 1));
    }

    #[test]
    fn expired_ids_are_swept() {
        let mut d = Dedup::new(3_600);
        for i in 0..10_000i64 {
            d.check("s", &format!("m{i}"), T + i * 1_000_000);
        }
        // Time spans 10,000 s; the window is 3,600 s: only the last hour (plus a sweep step) is held.
        assert!(d.len() <= 3_600 + 150 + 1, "{}", d.len());
        assert!(d.len() >= 3_600);
    }

    #[test]
    fn at_most_40_bytes_per_id_at_any_size() {
        let mut d = Dedup::new(DAY);
        for i in 0..300_000u64 {
            d.check_fingerprint(i.wrapping_mul(0x9E37_79B9_7F4A_7C15), 1_700_000_000);
            let n = d.len();
            if n >= 1_000 && (n.is_power_of_two() || n.is_multiple_of(10_007)) {
                let per_id = d.approx_bytes() as f64 / n as f64;
                assert!(per_id <= 40.0, "{per_id:.1} bytes per id at {n} ids");
            }
        }
    }

    #[test]
    fn replay_makes_the_same_decisions() {
        let run = || {
            let mut d = Dedup::new(600);
            (0..5_000i64)
                .map(|i| {
                    d.check(
                        "s",
                        &format!("m{}", i % 700),
                        T + (i * 37 % 4_000) * 1_000_000,
                    )
                })
                .collect::<Vec<bool>>()
        };
        assert_eq!(run(), run());
    }

    /// The rule of the module header with every id kept forever (no sweeping, no memory
    /// bound): what the bounded set must decide.
    #[derive(Default)]
    struct Model {
        first: std::collections::HashMap<u64, u32>,
        now: u32,
    }

    impl Model {
        fn check(&mut self, fp: u64, at: u32, window: u32) -> bool {
            self.now = self.now.max(at);
            match self.first.get(&fp).copied() {
                Some(first) if at.abs_diff(first) <= window && self.now - first <= window => true,
                first => {
                    self.first.insert(fp, first.map_or(at, |f| f.max(at)));
                    false
                }
            }
        }
    }

    proptest::proptest! {
        /// Whatever the order of times (late, early, repeated), sweeping and a checkpoint
        /// round trip in the middle never change a decision: the bounded set decides as if it
        /// remembered every id.
        #[test]
        fn decides_like_an_unbounded_model(
            window in 1u32..200,
            events in proptest::collection::vec((0u64..40, 0u32..1_000), 1..400),
            restore_at in 0usize..400,
        ) {
            let mut d = Dedup::new(window);
            let mut model = Model::default();
            for (i, &(id, at)) in events.iter().enumerate() {
                if i == restore_at {
                    let bytes = serde_json::to_vec(&d).expect("serialise");
                    d = serde_json::from_slice(&bytes).expect("deserialise");
                }
                let fp = id.wrapping_mul(0x9E37_79B9_7F4A_7C15);
                let at = 1_700_000_000 + at;
                proptest::prop_assert_eq!(d.check_fingerprint(fp, at), model.check(fp, at, window), "event {}", i);
            }
        }
    }
}
