//! Per-row values the lake sink computes once and shares: the tracking-plan stamp of the rows
//! that carry it, and the partition paths by event hour and name.
//!
//! Contract: pure caches — what they return equals what they would compute afresh
//! ([`partition_path`], `Arc::from(stamp)`); they are bounded (10,000 hours, 1,000 names per
//! hour, one stamp).

use std::sync::Arc;

use super::super::layout::partition_path;
use super::LakeSink;

impl LakeSink {
    /// `stamp` as the shared [`Row::plan`] value (one allocation per plan version, not per row).
    pub(super) fn shared_stamp(&mut self, stamp: &str) -> Arc<str> {
        match &self.plan_stamp {
            Some(s) if &**s == stamp => s.clone(),
            _ => self.plan_stamp.insert(Arc::from(stamp)).clone(),
        }
    }

    /// [`partition_path`], cached.
    pub(super) fn path_of(&mut self, ts_micros: i64, name: &str) -> String {
        const HOUR_MICROS: i64 = 3_600_000_000;
        if self.paths.len() > 10_000 {
            self.paths.clear();
        }
        let by_name = self
            .paths
            .entry(ts_micros.div_euclid(HOUR_MICROS))
            .or_default();
        if let Some(p) = by_name.get(name) {
            return p.clone();
        }
        let p = partition_path(ts_micros, name);
        if by_name.len() < 1_000 {
            by_name.insert(name.to_string(), p.clone());
        }
        p
    }
}
