//! Emission: which window values leave the partition state at each emit tick, and their records.
//!
//! Contract: [`PartitionState::drain`] returns, sorted by (KPI, window length, start,
//! segment value ids): every window that changed since the last call (partial) and every window that
//! became final (then forgotten), all-segments totals included (windows of their own, into
//! which the changed segment windows are folded first, closing with them); and every ratio whose numerator or
//! denominator window was emitted, its total included. Deterministic: the same state gives the
//! same list. Its cost follows the windows that changed or closed, not the state's size: the
//! changed windows are listed as they change, and held windows are indexed by when they close.
//! An [`Emitted`] names its segment by interned ids: [`PartitionState::view`] lends it as the
//! contract's [`AggregateView`] (the strings borrowed from the catalog and the interner, so a
//! record is encoded without building one), [`PartitionState::drain_updates`] resolves it into
//! an owned [`Update`] (tests, tools).

use std::collections::{BTreeMap, HashSet};

use northstar_schemas::aggregate::AggregateView;

use super::{PartitionState, Progress, SegmentIds, Update, WindowKey, NO_VALUE};
use crate::catalog::{Aggregation, MAX_SEGMENTS};

/// One window value to emit, its segment as interned ids (resolved by [`PartitionState::view`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Emitted {
    pub kpi: usize,
    /// The window's index in the KPI's windows.
    pub window: usize,
    /// Window length in ms (ratios use their sides' windows of the same length).
    pub window_ms: i64,
    pub start_ms: i64,
    segment: SegmentIds,
    pub value: f64,
    /// For ratios: the numerator and denominator values (0 otherwise).
    pub numerator: f64,
    pub denominator: f64,
    pub is_final: bool,
    /// Distinct users with one segment dimension: the record's `othersFrom` ([`super::holders`]).
    pub others_from: f64,
}

/// Where the records of one emission come from: the same for all of them.
#[derive(Debug, Clone, Copy)]
pub struct Source<'a> {
    pub topic: &'a str,
    pub partition: i32,
    /// The last input offset the values reflect.
    pub offset: i64,
}

/// (kpi, window length ms, start, segment) of an emitted plain window → whether it is final.
type Touched = BTreeMap<(usize, i64, i64, SegmentIds), bool>;

impl PartitionState {
    /// [`PartitionState::drain`], resolved into owned updates.
    pub fn drain_updates(&mut self) -> Vec<Update> {
        let emitted = self.drain();
        emitted.iter().map(|e| self.resolve(e)).collect()
    }

    /// The windows changed since the last call (partial), the windows that became final (then
    /// forgotten), and the ratios they feed, sorted.
    pub fn drain(&mut self) -> Vec<Emitted> {
        if self.interner.values.len() > self.compact_at {
            self.compact_interner();
        }
        self.reported_watermark_ms = self.drained_watermark_ms;
        self.drained_watermark_ms = self.watermark_ms;
        self.touch_changed_holders();
        self.fold_into_totals();
        let closing = self.take_closing();
        let mut keys = std::mem::take(&mut self.dirty_keys);
        self.unfolded.clear();
        keys.extend(closing.iter().copied());
        keys.sort_unstable();
        keys.dedup();
        let mut out = Vec::new();
        let mut touched = Touched::new();
        for key in &keys {
            let Some(w) = self.windows.get(key) else {
                continue;
            };
            let spec = &self.catalog.kpis[key.kpi].windows[key.window];
            let is_final = self.is_final(key.start, spec.millis);
            out.push(self.update(key, w.acc.value(), is_final));
            touched.insert((key.kpi, spec.millis, key.start, key.segment), is_final);
        }
        self.emit_ratios(&touched, &mut out);
        for key in &closing {
            let gk = self.group_key(key);
            self.groups.remove(&gk);
            self.holders.remove(&(key.kpi, key.window, key.start));
            self.windows.remove(key);
        }
        for key in &keys {
            if let Some(w) = self.windows.get_mut(key) {
                w.dirty = super::CLEAN;
            }
        }
        self.report_progress(&mut out);
        out.sort_unstable_by_key(|u| (u.kpi, u.window_ms, u.start_ms, u.segment));
        out
    }

    /// The held windows that are final at the current watermark, removed from the index.
    fn take_closing(&mut self) -> Vec<WindowKey> {
        if self.watermark_ms == i64::MIN {
            return Vec::new();
        }
        let later = self.closing.split_off(&self.watermark_ms.saturating_add(1));
        let due = std::mem::replace(&mut self.closing, later);
        due.into_values().flatten().collect()
    }

    /// Readers learn event time only from records: when an emission has nothing to say but its
    /// watermark is newer than the last one sent (the input stopped right after a burst),
    /// re-emits the newest held window unchanged so that the watermark reaches them.
    fn report_progress(&mut self, out: &mut Vec<Emitted>) {
        if out.is_empty() && self.reported_watermark_ms > self.sent_watermark_ms {
            let newest = self.windows.iter().max_by_key(|(k, _)| (k.start, **k));
            if let Some((key, w)) = newest {
                out.push(self.update(key, w.acc.value(), false));
            }
        }
        if !out.is_empty() {
            self.sent_watermark_ms = self.reported_watermark_ms;
        }
    }

    fn update(&self, key: &WindowKey, value: f64, is_final: bool) -> Emitted {
        Emitted {
            kpi: key.kpi,
            window: key.window,
            window_ms: self.catalog.kpis[key.kpi].windows[key.window].millis,
            start_ms: key.start,
            segment: key.segment,
            value,
            numerator: 0.0,
            denominator: 0.0,
            is_final,
            others_from: self.others_from(key),
        }
    }

    /// The `othersFrom` of window `key`: for a distinct-users KPI with one segment dimension
    /// and a kept value, the members held by it or a value ranking after it; 0 otherwise.
    fn others_from(&self, key: &WindowKey) -> f64 {
        let id = key.segment[0];
        if !self.suffixed[key.kpi] || id == super::OTHER_ID || id == super::ALL_ID {
            return 0.0;
        }
        let Some(h) = self.holders.get(&(key.kpi, key.window, key.start)) else {
            return 0.0;
        };
        let hash = northstar_schemas::catalog::value_hash(self.interner.value(id));
        h.held_from((hash, id), &self.interner) as f64
    }

    /// Marks every kept window of the groups whose members changed holder as changed: each
    /// one's `othersFrom` may have.
    fn touch_changed_holders(&mut self) {
        let mut touched = Vec::new();
        for (&(kpi, window, start), h) in &mut self.holders {
            if std::mem::take(&mut h.changed) {
                touched.push((kpi, window, start));
            }
        }
        touched.sort_unstable();
        for (kpi, window, start) in touched {
            let gk = self.group_key(&WindowKey {
                kpi,
                window,
                start,
                segment: [NO_VALUE; crate::catalog::MAX_SEGMENTS],
            });
            let live: Vec<WindowKey> = self
                .groups
                .get(&gk)
                .map(|g| g.live_of(kpi, window))
                .unwrap_or_default();
            let aggregation = self.catalog.kpis[kpi].aggregation.clone();
            for key in live {
                self.add_to(key, &aggregation, super::Contribution::None, true);
            }
        }
    }

    /// Calls `f` with the record of `e` from `source`, its strings borrowed.
    pub fn view<T>(
        &self,
        e: &Emitted,
        source: Source<'_>,
        f: impl FnOnce(&AggregateView<'_>) -> T,
    ) -> T {
        let kpi = &self.catalog.kpis[e.kpi];
        let spec = &kpi.windows[e.window];
        let mut pairs = [("", ""); MAX_SEGMENTS];
        for (pair, (dim, &id)) in pairs.iter_mut().zip(kpi.segments.iter().zip(&e.segment)) {
            debug_assert_ne!(id, NO_VALUE, "a segment dimension without a value");
            *pair = (dim.name.as_str(), self.interner.value(id));
        }
        let segment = &mut pairs[..kpi.segments.len()];
        segment.sort_unstable_by_key(|p| p.0);
        let progress: Progress = self.progress();
        f(&AggregateView {
            kpi: &kpi.name,
            kind: kpi.aggregation.kind(),
            window: &spec.label,
            window_start: e.start_ms,
            window_end: e.start_ms + e.window_ms,
            segment,
            value: e.value,
            numerator: e.numerator,
            denominator: e.denominator,
            is_final: e.is_final,
            watermark: progress.watermark_ms.max(0),
            source_topic: source.topic,
            source_partition: source.partition,
            source_offset: source.offset,
            allowed_lateness_ms: progress.lateness_ms,
            full_input_after_ms: self.full_input_after_ms[e.kpi],
            others_from: e.others_from,
        })
    }

    /// `e` with its strings: the label of its window and its segment values.
    fn resolve(&self, e: &Emitted) -> Update {
        let kpi = &self.catalog.kpis[e.kpi];
        Update {
            kpi: e.kpi,
            window_ms: e.window_ms,
            window_label: kpi.windows[e.window].label.clone(),
            start_ms: e.start_ms,
            segment: self.segment_strings(&e.segment, kpi.segments.len()),
            value: e.value,
            numerator: e.numerator,
            denominator: e.denominator,
            is_final: e.is_final,
            full_input_after_ms: self.full_input_after_ms[e.kpi],
            others_from: e.others_from,
        }
    }

    /// The value of KPI `kpi`'s window of length `ms` at `start` for `segment` (its total
    /// included; 0 when it has none).
    fn side_value(&self, kpi: usize, ms: i64, start: i64, segment: &SegmentIds) -> f64 {
        let k = &self.catalog.kpis[kpi];
        let Some(window) = k.windows.iter().position(|w| w.millis == ms) else {
            return 0.0;
        };
        let key = WindowKey {
            kpi,
            window,
            start,
            segment: *segment,
        };
        self.windows.get(&key).map_or(0.0, |w| w.acc.value())
    }

    fn emit_ratios(&self, touched: &Touched, out: &mut Vec<Emitted>) {
        for (ri, r) in self.catalog.kpis.iter().enumerate() {
            let Aggregation::Ratio {
                numerator,
                denominator,
            } = r.aggregation
            else {
                continue;
            };
            let mut emitted = HashSet::new();
            for ((k, ms, start, segment), is_final) in touched {
                if *k != numerator && *k != denominator {
                    continue;
                }
                let Some(window) = r.windows.iter().position(|w| w.millis == *ms) else {
                    continue;
                };
                if !emitted.insert((*ms, *start, *segment)) {
                    continue;
                }
                let num = self.side_value(numerator, *ms, *start, segment);
                let den = self.side_value(denominator, *ms, *start, segment);
                let key = WindowKey {
                    kpi: ri,
                    window,
                    start: *start,
                    segment: *segment,
                };
                let value = if den == 0.0 { f64::NAN } else { num / den };
                out.push(Emitted {
                    numerator: num,
                    denominator: den,
                    ..self.update(&key, value, *is_final)
                });
            }
        }
    }
}
