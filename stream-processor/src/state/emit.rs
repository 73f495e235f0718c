//! Emission: which window values leave the partition state at each emit tick.
//!
//! Contract: [`PartitionState::drain_updates`] returns, sorted by (KPI, window length, start,
//! segment): every window that changed since the last call (partial) and every window that
//! became final (then forgotten), all-segments totals included (windows of their own, into
//! which the changed segment windows are folded first, closing with them); and every ratio whose numerator or
//! denominator window was emitted, its total included. Deterministic: the same state gives the
//! same list. Its cost follows the windows that changed or closed, not the state's size: the
//! changed windows are listed as they change, and held windows are indexed by when they close.

use std::collections::{BTreeMap, HashSet};

use super::{PartitionState, SegmentIds, Update, WindowKey};
use crate::catalog::Aggregation;

/// (kpi, window length ms, start, segment) of an emitted plain window → whether it is final.
type Touched = BTreeMap<(usize, i64, i64, SegmentIds), bool>;

impl PartitionState {
    /// The windows changed since the last call (partial), the windows that became final (then
    /// forgotten), and the ratios they feed, sorted.
    pub fn drain_updates(&mut self) -> Vec<Update> {
        self.reported_watermark_ms = self.drained_watermark_ms;
        self.drained_watermark_ms = self.watermark_ms;
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
            self.windows.remove(key);
        }
        for key in &keys {
            if let Some(w) = self.windows.get_mut(key) {
                w.dirty = super::CLEAN;
            }
        }
        self.report_progress(&mut out);
        out.sort_by(|a, b| {
            (a.kpi, a.window_ms, a.start_ms, &a.segment).cmp(&(
                b.kpi,
                b.window_ms,
                b.start_ms,
                &b.segment,
            ))
        });
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
    fn report_progress(&mut self, out: &mut Vec<Update>) {
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

    fn update(&self, key: &WindowKey, value: f64, is_final: bool) -> Update {
        let kpi = &self.catalog.kpis[key.kpi];
        let spec = &kpi.windows[key.window];
        Update {
            kpi: key.kpi,
            window_ms: spec.millis,
            window_label: spec.label.clone(),
            start_ms: key.start,
            segment: self.segment_strings(&key.segment, kpi.segments.len()),
            value,
            numerator: 0.0,
            denominator: 0.0,
            is_final,
            full_input_after_ms: self.full_input_after_ms[key.kpi],
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

    fn emit_ratios(&self, touched: &Touched, out: &mut Vec<Update>) {
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
                out.push(Update {
                    numerator: num,
                    denominator: den,
                    ..self.update(&key, value, *is_final)
                });
            }
        }
    }
}
