//! One (KPI, window length) family of windows in the metrics sink, without IO.
//!
//! Contract:
//! - per (window start, segment, input partition) the record with the highest source offset
//!   wins; a series' value is the sum of the records that count in it (ratios: Σ numerators ÷
//!   Σ denominators, undefined while the denominators sum to 0): a record counts in the series
//!   its segment maps to by the window's [`Admitted`] values ([`Family::remerge`], ADR 0013),
//!   itself when admitted, `__other__` in each dimension where not; for distinct users with one
//!   dimension, a partition's `__other__` is the `othersFrom` of its first non-admitted value
//!   (its users under all of them and `__other__`, each once) rather than a sum of records;
//! - a known series (a segment with a record in a retained window) is 0 in a window where it has
//!   no record, so a segment that goes quiet draws and alerts as 0, not as a gap (ratios: undefined);
//! - windows become final in order: `final_through` is the newest start such that every window
//!   up to it ended at or before the event time known complete and holds only final records;
//!   it never moves back, and a record that changes a window at or before it is reported;
//! - windows and series expire by event time, once a window ended more than its retention
//!   before the event time known complete;
//! - a window misses input when it starts at or before an input partition's newest
//!   `fullInputAfter` (the KPI was added or changed in the catalog while that partition had read
//!   events up to then: its value lacks what came before, and cells not updated since can hold
//!   the previous definition's values); [`Family::has_full_input`] says so per window.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::{Duration, Instant};

use northstar_schemas::catalog::admission::rank;
use northstar_schemas::catalog::{Admitted, WindowSpec, OTHER};
use smallvec::SmallVec;

/// A segment: the values in the KPI's dimension order (empty for a KPI without segments).
pub type Segment = Vec<String>;

/// One input partition's latest record for one window and segment.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rec {
    pub value: f64,
    pub numerator: f64,
    pub denominator: f64,
    pub is_final: bool,
    pub source_offset: i64,
    /// Distinct users with one segment dimension: the record's `othersFrom`.
    pub others_from: f64,
}

/// The records of one window and segment, by input partition index.
#[derive(Debug, Default, Clone)]
struct Cell {
    parts: SmallVec<[(u16, Rec); 4]>,
}

/// What applying a record did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Upsert {
    Applied,
    /// An older or equal position than what is held.
    Stale,
    /// Applied, but it changed a window already final here (and maybe already exposed).
    ChangedFinal,
}

/// A series' value in one window: its records summed.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
struct Merged {
    value: f64,
    numerator: f64,
    denominator: f64,
}

/// The windows of one KPI and window length.
#[derive(Debug)]
pub struct Family {
    pub spec: WindowSpec,
    pub ratio: bool,
    /// Distinct users with one segment dimension (`__other__` from `othersFrom`).
    pub suffixed: bool,
    /// The records, by their own segment.
    windows: BTreeMap<i64, HashMap<Segment, Cell>>,
    /// The series shown, by the values each window admits ([`Family::remerge`]).
    merged: BTreeMap<i64, HashMap<Segment, Merged>>,
    admitted: BTreeMap<i64, Admitted>,
    /// Known series → newest start with a record.
    series: BTreeMap<Segment, i64>,
    final_through: Option<i64>,
    /// Starts that became final and when (wall clock), oldest first, for the history exposure.
    finalized: VecDeque<(i64, Instant)>,
    /// Per input partition index: windows starting at or before this miss input.
    full_input_after: SmallVec<[(u16, i64); 4]>,
}

impl Family {
    pub fn new(spec: WindowSpec, ratio: bool) -> Self {
        Self {
            spec,
            ratio,
            suffixed: false,
            windows: BTreeMap::new(),
            merged: BTreeMap::new(),
            admitted: BTreeMap::new(),
            series: BTreeMap::new(),
            final_through: None,
            finalized: VecDeque::new(),
            full_input_after: SmallVec::new(),
        }
    }

    /// Applies one partition's record for (`start`, `segment`); the series shown change at
    /// the next [`Family::remerge`] of `start`.
    pub fn upsert(&mut self, start: i64, segment: Segment, part: u16, rec: Rec) -> Upsert {
        let cell = self
            .windows
            .entry(start)
            .or_default()
            .entry(segment)
            .or_default();
        match cell.parts.iter_mut().find(|(p, _)| *p == part) {
            Some((_, old)) => {
                if old.source_offset > rec.source_offset
                    || (old.source_offset == rec.source_offset && old.is_final)
                {
                    return Upsert::Stale;
                }
                let changed = old.value.to_bits() != rec.value.to_bits()
                    || old.numerator != rec.numerator
                    || old.denominator != rec.denominator;
                *old = rec;
                if changed && self.final_through.is_some_and(|f| start <= f) {
                    return Upsert::ChangedFinal;
                }
            }
            None => {
                cell.parts.push((part, rec));
                if self.final_through.is_some_and(|f| start <= f) {
                    return Upsert::ChangedFinal;
                }
            }
        }
        Upsert::Applied
    }

    /// Whether a record of `segment` is held in the window at `start`.
    pub fn has_segment(&self, start: i64, segment: &Segment) -> bool {
        self.windows
            .get(&start)
            .is_some_and(|w| w.contains_key(segment))
    }

    /// The segments with records in the window at `start` (candidates for admission).
    pub fn raw_segments(&self, start: i64) -> impl Iterator<Item = &[String]> {
        self.windows
            .get(&start)
            .into_iter()
            .flat_map(|w| w.keys().map(Vec::as_slice))
    }

    /// The values the window at `start` admits (shared by the KPIs of one admission class).
    pub fn admitted(&self, start: i64) -> Option<&Admitted> {
        self.admitted.get(&start)
    }

    /// Sums the records of the window at `start` into the series their segments map to by
    /// `admitted`.
    pub fn remerge(&mut self, start: i64, admitted: Admitted) {
        let mut merged: HashMap<Segment, Merged> = HashMap::new();
        let others = self.others_from(start, &admitted);
        for (segment, cell) in self.windows.get(&start).into_iter().flatten() {
            let series = admitted.series_of(segment);
            let folded = series.first().is_some_and(|v| v == OTHER);
            let m = merged.entry(series).or_default();
            for (part, r) in &cell.parts {
                if folded && others.iter().any(|(p, _)| p == part) {
                    continue;
                }
                m.value += r.value;
                m.numerator += r.numerator;
                m.denominator += r.denominator;
            }
        }
        for (_, n) in others {
            merged.entry(vec![OTHER.to_string()]).or_default().value += n;
        }
        for segment in merged.keys() {
            let newest = self.series.entry(segment.clone()).or_insert(start);
            *newest = (*newest).max(start);
        }
        self.merged.insert(start, merged);
        self.admitted.insert(start, admitted);
    }

    /// For a suffixed family: per partition holding a value the window does not admit, the
    /// `othersFrom` of the first of them by rank (what its records mapped to `__other__` hold,
    /// each user once). A partition whose records carry none (written before `othersFrom`)
    /// is summed instead.
    fn others_from(&self, start: i64, admitted: &Admitted) -> SmallVec<[(u16, f64); 4]> {
        // (partition, rank, othersFrom) of each partition's first non-admitted value.
        type First<'a> = (u16, (u64, &'a str), f64);
        let mut first: SmallVec<[First<'_>; 4]> = SmallVec::new();
        if !self.suffixed {
            return SmallVec::new();
        }
        for (segment, cell) in self.windows.get(&start).into_iter().flatten() {
            let Some(value) = segment.first() else {
                continue;
            };
            if value == OTHER || admitted.admits(0, value) {
                continue;
            }
            let rank = rank(value);
            for (part, r) in &cell.parts {
                // Empty: a value the partition evicted (its users are in its `__other__`).
                if r.value <= 0.0 {
                    continue;
                }
                match first.iter_mut().find(|(p, _, _)| p == part) {
                    Some(f) if rank < f.1 => *f = (*part, rank, r.others_from),
                    Some(_) => {}
                    None => first.push((*part, rank, r.others_from)),
                }
            }
        }
        first
            .into_iter()
            .filter(|(_, _, n)| *n > 0.0)
            .map(|(p, _, n)| (p, n))
            .collect()
    }

    /// The merged value of `segment` at `start` (0 when it has none).
    pub fn merged_value(&self, start: i64, segment: &Segment) -> f64 {
        self.merged
            .get(&start)
            .and_then(|w| w.get(segment))
            .map_or(0.0, |m| m.value)
    }

    /// Sets a ratio's series `segment` at `start` from its sides' merged values.
    pub fn set_merged_sides(&mut self, start: i64, segment: &Segment, num: f64, den: f64) {
        let Some(w) = self.merged.get_mut(&start) else {
            return;
        };
        if let Some(m) = w.get_mut(segment) {
            m.numerator = num;
            m.denominator = den;
        }
    }

    /// Notes a record's `fullInputAfter` from input partition `part` (the newest of a
    /// partition only grows: a later catalog edit restarts the KPI at a later event time).
    pub fn note_full_input_after(&mut self, part: u16, after_ms: i64) {
        match self.full_input_after.iter_mut().find(|(p, _)| *p == part) {
            Some((_, t)) => *t = (*t).max(after_ms),
            None if after_ms != i64::MIN => self.full_input_after.push((part, after_ms)),
            None => {}
        }
    }

    /// Whether the window at `start` saw all its input in every partition (false: the KPI was
    /// added or changed after the window began, its value lacks input).
    pub fn has_full_input(&self, start: i64) -> bool {
        self.full_input_after.iter().all(|(_, t)| start > *t)
    }

    /// The newest final start, if any window is final.
    pub fn final_through(&self) -> Option<i64> {
        self.final_through
    }

    /// The start of the window holding event time `ts_ms`.
    pub fn start_of(&self, ts_ms: i64) -> i64 {
        self.spec.start(ts_ms)
    }

    /// Marks final, in order, every window that ended at or before `complete_until` and holds
    /// only final records.
    pub fn advance(&mut self, complete_until: i64, now: Instant) {
        let len = self.spec.millis;
        let Some(first) = self.windows.keys().next().copied() else {
            return;
        };
        let mut next = self.final_through.map_or(first, |f| f + len);
        // Far behind (a jump of event time): skip what retention would drop anyway.
        let horizon = self.start_of(
            complete_until
                .saturating_sub(self.spec.retention_ms)
                .saturating_sub(len),
        );
        if next < horizon {
            next = horizon;
        }
        while next.saturating_add(len) <= complete_until && self.all_final(next) {
            self.final_through = Some(next);
            self.finalized.push_back((next, now));
            next += len;
        }
    }

    fn all_final(&self, start: i64) -> bool {
        self.windows.get(&start).is_none_or(|cells| {
            cells
                .values()
                .all(|c| c.parts.iter().all(|(_, r)| r.is_final))
        })
    }

    /// Drops windows and series past their retention, and finality marks older than
    /// `exposure` (they have been exposed long enough).
    pub fn expire(&mut self, complete_until: i64, exposure: Duration, now: Instant) {
        let len = self.spec.millis;
        let cutoff = complete_until
            .saturating_sub(self.spec.retention_ms)
            .saturating_sub(len);
        self.windows = self.windows.split_off(&(cutoff + 1));
        self.merged = self.merged.split_off(&(cutoff + 1));
        self.admitted = self.admitted.split_off(&(cutoff + 1));
        self.series.retain(|_, newest| *newest > cutoff);
        while self
            .finalized
            .front()
            .is_some_and(|(start, at)| *start <= cutoff || now.duration_since(*at) > exposure)
        {
            self.finalized.pop_front();
        }
    }

    /// The value of `segment` in the window at `start`: summed over partitions, 0 for a known
    /// series without a record, `None` when undefined (a ratio without denominator, or an
    /// unknown series).
    pub fn value(&self, start: i64, segment: &Segment) -> Option<f64> {
        let cell = self.merged.get(&start).and_then(|w| w.get(segment));
        let Some(cell) = cell else {
            return (!self.ratio && self.series.contains_key(segment)).then_some(0.0);
        };
        if self.ratio {
            return (cell.denominator != 0.0).then(|| cell.numerator / cell.denominator);
        }
        Some(cell.value)
    }

    /// The known series, sorted.
    pub fn series(&self) -> impl Iterator<Item = &Segment> {
        self.series.keys()
    }

    /// Known series.
    pub fn series_count(&self) -> usize {
        self.series.len()
    }

    /// (window, segment, partition) records held.
    pub fn records(&self) -> usize {
        self.windows
            .values()
            .flat_map(|w| w.values())
            .map(|c| c.parts.len())
            .sum()
    }

    /// Starts that became final within `exposure` before `now`, at or after `min_start`,
    /// ascending: the history points to expose.
    pub fn recently_final(&self, now: Instant, exposure: Duration, min_start: i64) -> Vec<i64> {
        self.finalized
            .iter()
            .filter(|(start, at)| *start >= min_start && now.duration_since(*at) <= exposure)
            .map(|(start, _)| *start)
            .collect()
    }

    /// Every retained final start, ascending (the trend of final windows).
    pub fn final_starts(&self) -> Vec<i64> {
        let (Some(first), Some(last)) = (self.windows.keys().next(), self.final_through) else {
            return Vec::new();
        };
        let first = (*first).min(last);
        (0..)
            .map(|i| first + i * self.spec.millis)
            .take_while(|s| *s <= last)
            .collect()
    }

    /// Every held window start, ascending, with whether it is final.
    pub fn held_starts(&self) -> Vec<(i64, bool)> {
        self.windows
            .keys()
            .map(|s| (*s, self.final_through.is_some_and(|f| *s <= f)))
            .collect()
    }

    /// The series with records in the window at `start`.
    pub fn segments_at(&self, start: i64) -> Vec<&Segment> {
        let mut v: Vec<&Segment> = self
            .merged
            .get(&start)
            .map(|w| w.keys().collect())
            .unwrap_or_default();
        v.sort();
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: i64 = 60_000;

    fn family(ratio: bool) -> Family {
        let mut spec = WindowSpec::parse("1m").expect("1m");
        spec.retention_ms = 10 * MIN;
        Family::new(spec, ratio)
    }

    fn rec(value: f64, is_final: bool, offset: i64) -> Rec {
        Rec {
            value,
            numerator: 0.0,
            denominator: 0.0,
            is_final,
            source_offset: offset,
            others_from: 0.0,
        }
    }

    /// Applies a record and merges its window as the table does (every value admitted).
    fn up(f: &mut Family, start: i64, segment: Segment, part: u16, rec: Rec) -> Upsert {
        let u = f.upsert(start, segment, part, rec);
        let admitted = Admitted::from_segments(1, 100, f.raw_segments(start));
        f.remerge(start, admitted);
        u
    }

    fn seg(v: &str) -> Segment {
        vec![v.to_string()]
    }

    #[test]
    fn newest_offset_wins_and_partitions_sum() {
        let mut f = family(false);
        assert_eq!(
            up(&mut f, 0, seg("a"), 0, rec(3.0, false, 5)),
            Upsert::Applied
        );
        assert_eq!(
            up(&mut f, 0, seg("a"), 0, rec(2.0, false, 4)),
            Upsert::Stale
        );
        assert_eq!(
            up(&mut f, 0, seg("a"), 1, rec(4.0, false, 9)),
            Upsert::Applied
        );
        assert_eq!(f.value(0, &seg("a")), Some(7.0));
        assert_eq!(
            up(&mut f, 0, seg("a"), 1, rec(4.0, true, 9)),
            Upsert::Applied,
            "final at the same position"
        );
        assert_eq!(
            up(&mut f, 0, seg("a"), 1, rec(5.0, false, 9)),
            Upsert::Stale,
            "nothing after final at the same position"
        );
    }

    #[test]
    fn known_series_are_zero_where_they_have_no_record() {
        let mut f = family(false);
        up(&mut f, 0, seg("a"), 0, rec(3.0, true, 1));
        up(&mut f, MIN, seg("b"), 0, rec(1.0, true, 2));
        assert_eq!(f.value(MIN, &seg("a")), Some(0.0));
        assert_eq!(f.value(0, &seg("b")), Some(0.0));
        assert_eq!(f.value(0, &seg("never")), None);
        let mut r = family(true);
        up(
            &mut r,
            0,
            seg("a"),
            0,
            Rec {
                numerator: 1.0,
                denominator: 0.0,
                ..rec(f64::NAN, true, 1)
            },
        );
        assert_eq!(r.value(0, &seg("a")), None, "no denominator: undefined");
        assert_eq!(r.value(MIN, &seg("a")), None, "a ratio has no zero");
        up(
            &mut r,
            0,
            seg("a"),
            1,
            Rec {
                numerator: 1.0,
                denominator: 4.0,
                ..rec(0.25, true, 1)
            },
        );
        assert_eq!(
            r.value(0, &seg("a")),
            Some(0.5),
            "(1+1)/(0+4): sums, not a sum of ratios"
        );
    }

    #[test]
    fn windows_become_final_in_order_and_only_when_complete() {
        let t0 = Instant::now();
        let mut f = family(false);
        up(&mut f, 0, seg("a"), 0, rec(1.0, true, 1));
        up(&mut f, MIN, seg("a"), 0, rec(1.0, false, 2));
        up(&mut f, 3 * MIN, seg("a"), 0, rec(1.0, true, 3));
        f.advance(5 * MIN, t0);
        assert_eq!(
            f.final_through(),
            Some(0),
            "the 1m window still has a partial record"
        );
        up(&mut f, MIN, seg("a"), 0, rec(2.0, true, 4));
        f.advance(2 * MIN + 30_000, t0);
        assert_eq!(f.final_through(), Some(MIN), "2m has not ended yet");
        f.advance(4 * MIN, t0);
        assert_eq!(f.final_through(), Some(3 * MIN), "2m is empty and final");
        assert_eq!(f.final_starts(), vec![0, MIN, 2 * MIN, 3 * MIN]);
        assert_eq!(
            f.recently_final(t0, Duration::from_secs(60), MIN),
            vec![MIN, 2 * MIN, 3 * MIN]
        );
        assert_eq!(
            up(&mut f, MIN, seg("a"), 0, rec(9.0, true, 5)),
            Upsert::ChangedFinal
        );
    }

    #[test]
    fn expiry_by_event_time_and_exposure_by_wall_clock() {
        let t0 = Instant::now();
        let mut f = family(false);
        for i in 0..5 {
            up(&mut f, i * MIN, seg("old"), 0, rec(1.0, true, i));
        }
        up(&mut f, 20 * MIN, seg("new"), 0, rec(1.0, true, 9));
        f.advance(21 * MIN, t0);
        f.expire(
            21 * MIN,
            Duration::from_secs(60),
            t0 + Duration::from_secs(30),
        );
        // Retention 10m after the end: windows ending before 11m are gone, and so is `old`.
        assert_eq!(f.held_starts(), vec![(20 * MIN, true)]);
        assert_eq!(f.series().cloned().collect::<Vec<_>>(), vec![seg("new")]);
        assert_eq!(
            f.recently_final(t0 + Duration::from_secs(30), Duration::from_secs(60), 0)
                .len(),
            10,
            "11m..20m"
        );
        f.expire(
            21 * MIN,
            Duration::from_secs(60),
            t0 + Duration::from_secs(90),
        );
        assert!(f
            .recently_final(t0 + Duration::from_secs(90), Duration::from_secs(60), 0)
            .is_empty());
    }

    #[test]
    fn a_jump_of_event_time_does_not_walk_every_window() {
        let t0 = Instant::now();
        let mut f = family(false);
        up(&mut f, 0, seg("a"), 0, rec(1.0, true, 1));
        f.advance(525_600 * MIN, t0);
        // Only the retention's worth of windows is marked, not a year of minutes.
        assert!(f.recently_final(t0, Duration::from_secs(1), 0).len() <= 12);
    }

    #[test]
    fn windows_up_to_a_partitions_edit_time_miss_input() {
        let mut f = family(false);
        assert!(f.has_full_input(0));
        f.note_full_input_after(0, i64::MIN);
        f.note_full_input_after(1, 5 * MIN + 30_000);
        assert!(
            !f.has_full_input(5 * MIN),
            "starts before the edit's event time"
        );
        assert!(f.has_full_input(6 * MIN));
        // An older record of partition 1 (stale, or from before the edit) cannot undo it.
        f.note_full_input_after(1, i64::MIN);
        assert!(!f.has_full_input(5 * MIN));
        f.note_full_input_after(0, 7 * MIN);
        assert!(
            !f.has_full_input(6 * MIN),
            "a later edit seen by partition 0"
        );
        assert!(f.has_full_input(8 * MIN));
    }
}
