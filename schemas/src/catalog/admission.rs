//! Segment admission: which values of a segment dimension have a series of their own in a
//! window, and which fold into [`OTHER`] (ADR 0013).
//!
//! Contract: in each window (admission class, window length, start) a dimension admits the
//! `max_segment_values` values that come first by [`rank`] (the smallest [`value_hash`], ties
//! by the value) among the values counted in that window on *all* input partitions; every
//! other value is [`OTHER`]. The rule depends on the window's input only: every partition
//! agrees, replays reproduce it, and each window starts with no value admitted. KPIs linked by
//! a ratio form one class ([`admission_classes`]) and admit together, so a ratio and its sides
//! name the same values. The stream processor keeps, per partition, the values that come first
//! locally (a superset of the global ones it saw); [`Admitted`] is the global decision a reader
//! takes from the union of the partitions' records. Pure, no IO.

use std::collections::BTreeSet;

use super::{Aggregation, Kpi, ALL, OTHER};

/// The seed of [`value_hash`]: part of the contract (a change re-admits every window).
const SEED: u64 = 0x7365_676d_656e_7473; // "segments"

/// A segment value's stable 64-bit hash.
pub fn value_hash(value: &str) -> u64 {
    xxhash_rust::xxh3::xxh3_64_with_seed(value.as_bytes(), SEED)
}

/// The order in which values are admitted: smaller first.
pub fn rank(value: &str) -> (u64, &str) {
    (value_hash(value), value)
}

/// The admission class of every KPI, by index: segmented KPIs with the same dimensions and cap
/// share one (a window admits the same values of a dimension for all of them, so they name the
/// same values and an event's admission is decided once for them all), and so do KPIs linked by
/// ratios (the catalog checks that those have the same segments and caps); each is the index of
/// the first KPI of its class.
pub fn admission_classes(kpis: &[Kpi]) -> Vec<usize> {
    let mut class: Vec<usize> = (0..kpis.len()).collect();
    fn root(class: &mut [usize], mut i: usize) -> usize {
        while class[i] != i {
            class[i] = class[class[i]];
            i = class[i];
        }
        i
    }
    fn dims(k: &Kpi) -> Vec<&str> {
        k.segments.iter().map(|d| d.name.as_str()).collect()
    }
    for (i, k) in kpis.iter().enumerate() {
        if k.segments.is_empty() {
            continue;
        }
        let same = kpis[..i]
            .iter()
            .position(|j| j.max_segment_values == k.max_segment_values && dims(j) == dims(k));
        if let Some(j) = same {
            let (a, b) = (root(&mut class, i), root(&mut class, j));
            class[a.max(b)] = a.min(b);
        }
    }
    for (i, k) in kpis.iter().enumerate() {
        if let Aggregation::Ratio {
            numerator,
            denominator,
        } = k.aggregation
        {
            for side in [numerator, denominator] {
                let (a, b) = (root(&mut class, i), root(&mut class, side));
                class[a.max(b)] = a.min(b);
            }
        }
    }
    (0..kpis.len()).map(|i| root(&mut class, i)).collect()
}

/// The values one window admits per dimension, decided from the segments the partitions'
/// records name ([`Admitted::from_segments`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Admitted {
    dims: Vec<BTreeSet<(u64, String)>>,
}

impl Admitted {
    /// The admitted values of `dims` dimensions capped at `cap` each, from every segment that
    /// has a record in the window (any KPI of the class, any partition). [`OTHER`] and [`ALL`]
    /// are never candidates.
    pub fn from_segments<'a, S>(dims: usize, cap: usize, segments: S) -> Self
    where
        S: IntoIterator<Item = &'a [String]>,
    {
        let mut out = vec![BTreeSet::<(u64, String)>::new(); dims];
        for seg in segments {
            for (set, value) in out.iter_mut().zip(seg) {
                if value == OTHER || value == ALL {
                    continue;
                }
                let key = (value_hash(value), value.clone());
                let full = set.len() >= cap;
                if full && set.last().is_none_or(|last| key >= *last) {
                    continue;
                }
                if set.insert(key) && set.len() > cap {
                    set.pop_last();
                }
            }
        }
        Self { dims: out }
    }

    /// Whether `value` has a series of its own in dimension `dim`.
    pub fn admits(&self, dim: usize, value: &str) -> bool {
        value == ALL
            || self
                .dims
                .get(dim)
                .is_some_and(|set| set.contains(&(value_hash(value), value.to_string())))
    }

    /// The series a record of `segment` counts in: each value itself where admitted,
    /// [`OTHER`] where not ([`ALL`] stays).
    pub fn series_of(&self, segment: &[String]) -> Vec<String> {
        segment
            .iter()
            .enumerate()
            .map(|(d, v)| {
                if self.admits(d, v) {
                    v.clone()
                } else {
                    OTHER.to_string()
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::Catalog;

    fn seg(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn the_values_first_by_rank_are_admitted_per_dimension() {
        let values: Vec<String> = (0..20).map(|i| format!("v{i}")).collect();
        let mut by_rank = values.clone();
        by_rank.sort_by(|a, b| rank(a).cmp(&rank(b)));
        let segments: Vec<Vec<String>> = values
            .iter()
            .map(|v| vec![v.clone(), "x".to_string()])
            .chain([seg(&[OTHER, "y"]), seg(&[ALL, ALL])])
            .collect();
        let a = Admitted::from_segments(2, 5, segments.iter().map(Vec::as_slice));
        for (i, v) in by_rank.iter().enumerate() {
            assert_eq!(a.admits(0, v), i < 5, "{v} at rank {i}");
        }
        assert!(a.admits(1, "x") && a.admits(1, "y"));
        assert!(!a.admits(0, OTHER), "the fold is not a candidate");
        assert_eq!(
            a.series_of(&seg(&[&by_rank[7], "x"])),
            seg(&[OTHER, "x"]),
            "each dimension folds on its own"
        );
        assert_eq!(a.series_of(&seg(&[ALL, ALL])), seg(&[ALL, ALL]));
        // The order of the records does not matter.
        let rev = Admitted::from_segments(2, 5, segments.iter().rev().map(Vec::as_slice));
        assert_eq!(a, rev);
    }

    #[test]
    fn ratios_and_their_sides_share_a_class() {
        let c = Catalog::parse(
            "north_star: a\nkpis:\n  - {name: a, aggregate: count, segments: [event]}\n  \
             - {name: b, aggregate: count, segments: [event]}\n  \
             - {name: c, aggregate: count, segments: [event]}\n  \
             - {name: r, aggregate: {ratio: {numerator: b, denominator: c}}, segments: [event]}\n  \
             - {name: s, aggregate: {ratio: {numerator: a, denominator: c}}, segments: [event]}\n",
        )
        .expect("catalog");
        assert_eq!(admission_classes(&c.kpis), vec![0, 0, 0, 0, 0]);
        let c = Catalog::parse(
            "north_star: a\nkpis:\n  - {name: a, aggregate: count}\n  \
             - {name: b, aggregate: count}\n  \
             - {name: c, aggregate: count, segments: [event]}\n  \
             - {name: d, aggregate: count, segments: [event], max_segment_values: 3}\n  \
             - {name: e, aggregate: distinct_users, segments: [event]}\n  \
             - {name: f, aggregate: count, segments: [event, context.os.name]}\n",
        )
        .expect("catalog");
        assert_eq!(
            admission_classes(&c.kpis),
            vec![0, 1, 2, 3, 2, 5],
            "same dimensions and cap: one class; no segments: each its own"
        );
    }
}
