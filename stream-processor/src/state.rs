//! Per-partition processing state: the dedup set and the event-count windows.
//!
//! Contract: pure and deterministic — the same input records in the same order give the same
//! outputs. Windows are 1-minute tumbling windows by event time; a partition's watermark is the
//! largest event time it has seen; a window is final once the watermark passes its end plus
//! the allowed lateness, and an event for a final window is counted as late-dropped, never
//! silently. The dedup set lives in memory in this version (durable state comes with
//! checkpoints).

use std::collections::{HashMap, HashSet};
use std::hash::{Hash, Hasher};

/// Window length in milliseconds.
pub const WINDOW_MS: i64 = 60_000;
/// The label of [`WINDOW_MS`].
pub const WINDOW_LABEL: &str = "1m";

/// What adding an event to the windows did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Counted {
    /// Counted in an open window.
    OnTime,
    /// Counted in a window whose end the watermark had passed, within the allowed lateness.
    LateUpdated,
    /// Too late: the window is final; not counted.
    LateDropped,
}

/// One window value to emit.
#[derive(Debug, Clone, PartialEq)]
pub struct WindowUpdate {
    pub window_start_ms: i64,
    pub event: String,
    pub count: u64,
    pub is_final: bool,
}

#[derive(Debug, Default)]
struct WindowValue {
    count: u64,
    dirty: bool,
}

/// State of one input partition.
#[derive(Debug)]
pub struct PartitionState {
    seen: HashSet<u64>,
    windows: HashMap<(i64, String), WindowValue>,
    watermark_ms: i64,
    lateness_ms: i64,
}

/// A stable 64-bit fingerprint of (source, messageId).
fn fingerprint(source: &str, message_id: &str) -> u64 {
    // DefaultHasher::new() uses fixed keys, so fingerprints are stable within a build.
    let mut h = std::collections::hash_map::DefaultHasher::new();
    source.hash(&mut h);
    message_id.hash(&mut h);
    h.finish()
}

/// The start of the window containing `ts_ms`.
pub fn window_start(ts_ms: i64) -> i64 {
    ts_ms.div_euclid(WINDOW_MS) * WINDOW_MS
}

impl PartitionState {
    pub fn new(lateness_ms: i64) -> Self {
        Self {
            seen: HashSet::new(),
            windows: HashMap::new(),
            watermark_ms: i64::MIN,
            lateness_ms,
        }
    }

    /// Records (source, messageId); returns true if it was seen before.
    pub fn is_duplicate(&mut self, source: &str, message_id: &str) -> bool {
        !self.seen.insert(fingerprint(source, message_id))
    }

    /// Number of remembered message ids.
    pub fn remembered_ids(&self) -> usize {
        self.seen.len()
    }

    /// The partition's event-time watermark (ms), `i64::MIN` before the first event.
    pub fn watermark_ms(&self) -> i64 {
        self.watermark_ms
    }

    fn is_final(&self, start_ms: i64) -> bool {
        self.watermark_ms != i64::MIN
            && start_ms + WINDOW_MS + self.lateness_ms <= self.watermark_ms
    }

    /// Counts one event named `event` at event time `ts_ms`, then advances the watermark.
    pub fn count(&mut self, ts_ms: i64, event: &str) -> Counted {
        let start = window_start(ts_ms);
        let outcome = if self.is_final(start) {
            Counted::LateDropped
        } else {
            let w = self.windows.entry((start, event.to_string())).or_default();
            w.count += 1;
            w.dirty = true;
            if start + WINDOW_MS <= self.watermark_ms {
                Counted::LateUpdated
            } else {
                Counted::OnTime
            }
        };
        self.watermark_ms = self.watermark_ms.max(ts_ms);
        outcome
    }

    /// The windows changed since the last call (partial), and the windows that became final
    /// (which are then forgotten), in a deterministic order.
    pub fn drain_updates(&mut self) -> Vec<WindowUpdate> {
        let mut out = Vec::new();
        let mut closed = Vec::new();
        for ((start, event), w) in self.windows.iter_mut() {
            let is_final = self.watermark_ms != i64::MIN
                && *start + WINDOW_MS + self.lateness_ms <= self.watermark_ms;
            if w.dirty || is_final {
                out.push(WindowUpdate {
                    window_start_ms: *start,
                    event: event.clone(),
                    count: w.count,
                    is_final,
                });
                w.dirty = false;
            }
            if is_final {
                closed.push((*start, event.clone()));
            }
        }
        for k in closed {
            self.windows.remove(&k);
        }
        out.sort_by(|a, b| (a.window_start_ms, &a.event).cmp(&(b.window_start_ms, &b.event)));
        out
    }

    /// Windows still open.
    pub fn open_windows(&self) -> usize {
        self.windows.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: i64 = 60_000;
    const LATE: i64 = 10 * MIN;

    #[test]
    fn duplicates_by_source_and_id() {
        let mut s = PartitionState::new(LATE);
        assert!(!s.is_duplicate("web", "m1"));
        assert!(s.is_duplicate("web", "m1"));
        assert!(!s.is_duplicate("ios", "m1"), "scoped by source");
        assert_eq!(s.remembered_ids(), 2);
    }

    #[test]
    fn counts_per_window_and_event_then_finalises() {
        let mut s = PartitionState::new(LATE);
        let t0 = 100 * MIN;
        assert_eq!(s.count(t0 + 1, "a"), Counted::OnTime);
        assert_eq!(s.count(t0 + 2, "a"), Counted::OnTime);
        assert_eq!(s.count(t0 + 3, "b"), Counted::OnTime);
        assert_eq!(s.count(t0 + MIN, "a"), Counted::OnTime);
        let u = s.drain_updates();
        assert_eq!(
            u,
            vec![
                WindowUpdate {
                    window_start_ms: t0,
                    event: "a".into(),
                    count: 2,
                    is_final: false
                },
                WindowUpdate {
                    window_start_ms: t0,
                    event: "b".into(),
                    count: 1,
                    is_final: false
                },
                WindowUpdate {
                    window_start_ms: t0 + MIN,
                    event: "a".into(),
                    count: 1,
                    is_final: false
                },
            ]
        );
        assert!(s.drain_updates().is_empty(), "nothing changed");
        // A late event inside the lateness updates its window.
        assert_eq!(s.count(t0 + 5, "a"), Counted::LateUpdated);
        // The watermark passes t0's end + lateness: t0 windows are final.
        s.count(t0 + MIN + LATE, "c");
        let u = s.drain_updates();
        assert!(u.contains(&WindowUpdate {
            window_start_ms: t0,
            event: "a".into(),
            count: 3,
            is_final: true
        }));
        assert!(u.contains(&WindowUpdate {
            window_start_ms: t0,
            event: "b".into(),
            count: 1,
            is_final: true
        }));
        assert_eq!(s.count(t0 + 7, "a"), Counted::LateDropped);
        assert!(
            s.drain_updates().iter().all(|u| u.window_start_ms != t0),
            "final windows are forgotten"
        );
    }

    #[test]
    fn window_start_is_floor() {
        assert_eq!(window_start(59_999), 0);
        assert_eq!(window_start(60_000), 60_000);
        assert_eq!(window_start(-1), -60_000);
    }
}
