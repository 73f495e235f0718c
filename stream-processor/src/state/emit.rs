//! Emission: which window values leave the partition state at each emit tick.
//!
//! Contract: [`PartitionState::drain_updates`] returns, sorted by (KPI, window length, start,
//! segment): every window that changed since the last call (partial) and every window that
//! became final (then forgotten); for every segmented count or sum KPI, the total of each
//! window group with an emitted member (the sum of the group's segment windows, all still held
//! because a group's windows close together); and every ratio whose numerator or denominator
//! window was emitted, its total included. Deterministic: the same state gives the same list.

use std::collections::{BTreeMap, HashMap, HashSet};

use super::{total_segment, Acc, PartitionState, SegmentIds, Update, WindowKey};
use crate::catalog::Aggregation;

/// (kpi, window length ms, start, segment) of an emitted plain window → whether it is final.
type Touched = BTreeMap<(usize, i64, i64, SegmentIds), bool>;

/// (kpi, window index, start): the windows of one group, one per segment combination.
type Group = (usize, usize, i64);

/// The running total of one count or sum group.
struct GroupTotal {
    group: Group,
    acc: Acc,
    /// A member changed or the group closed: the total goes out too.
    emit: bool,
    is_final: bool,
}

impl PartitionState {
    /// The windows changed since the last call (partial), the windows that became final (then
    /// forgotten), the totals of their groups and the ratios they feed, sorted.
    pub fn drain_updates(&mut self) -> Vec<Update> {
        self.reported_watermark_ms = self.drained_watermark_ms;
        self.drained_watermark_ms = self.watermark_ms;
        let mut keys: Vec<WindowKey> = self.windows.keys().copied().collect();
        keys.sort_unstable();
        let mut out = Vec::new();
        let mut touched = Touched::new();
        let totals = self.emit_plain_and_totals(&keys, &mut out, &mut touched);
        self.emit_ratios(&touched, &totals, &mut out);
        for key in keys {
            let spec = &self.catalog.kpis[key.kpi].windows[key.window];
            if self.is_final(key.start, spec.millis) {
                self.windows.remove(&key);
            }
        }
        for w in self.windows.values_mut() {
            w.dirty = false;
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

    /// Emits changed and closing windows; returns the totals of every count or sum group
    /// (emitted or not: a ratio may need one whose side did not change).
    fn emit_plain_and_totals(
        &self,
        keys: &[WindowKey],
        out: &mut Vec<Update>,
        touched: &mut Touched,
    ) -> HashMap<Group, f64> {
        let mut totals = HashMap::new();
        let mut running: Option<GroupTotal> = None;
        for key in keys {
            let kpi = &self.catalog.kpis[key.kpi];
            let spec = &kpi.windows[key.window];
            let is_final = self.is_final(key.start, spec.millis);
            let Some(w) = self.windows.get(key) else {
                continue;
            };
            if w.dirty || is_final {
                out.push(self.update(key, w.acc.value(), is_final));
                touched.insert((key.kpi, spec.millis, key.start, key.segment), is_final);
            }
            let summed = matches!(kpi.aggregation, Aggregation::Count | Aggregation::Sum(_));
            if !summed || kpi.segments.is_empty() {
                continue;
            }
            let group = (key.kpi, key.window, key.start);
            if running.as_ref().is_some_and(|r| r.group != group) {
                if let Some(done) = running.take() {
                    self.finish_total(done, out, touched, &mut totals);
                }
            }
            let r = running.get_or_insert_with(|| GroupTotal {
                group,
                acc: Acc::empty(&kpi.aggregation),
                emit: false,
                is_final,
            });
            r.acc.merge(&w.acc);
            r.emit |= w.dirty || is_final;
        }
        if let Some(done) = running {
            self.finish_total(done, out, touched, &mut totals);
        }
        totals
    }

    fn finish_total(
        &self,
        total: GroupTotal,
        out: &mut Vec<Update>,
        touched: &mut Touched,
        totals: &mut HashMap<Group, f64>,
    ) {
        let (kpi, window, start) = total.group;
        let k = &self.catalog.kpis[kpi];
        let segment = total_segment(k.segments.len());
        let value = total.acc.value();
        totals.insert(total.group, value);
        if total.emit {
            let key = WindowKey {
                kpi,
                window,
                start,
                segment,
            };
            out.push(self.update(&key, value, total.is_final));
            touched.insert(
                (kpi, k.windows[window].millis, start, segment),
                total.is_final,
            );
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
        }
    }

    /// The value of KPI `kpi`'s window of length `ms` at `start` for `segment` (0 when it has
    /// none): a held window, or a count or sum group's total.
    fn side_value(
        &self,
        kpi: usize,
        ms: i64,
        start: i64,
        segment: &SegmentIds,
        totals: &HashMap<Group, f64>,
    ) -> f64 {
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
        if let Some(w) = self.windows.get(&key) {
            return w.acc.value();
        }
        totals
            .get(&(kpi, window, start))
            .copied()
            .filter(|_| !k.segments.is_empty() && *segment == total_segment(k.segments.len()))
            .unwrap_or(0.0)
    }

    fn emit_ratios(&self, touched: &Touched, totals: &HashMap<Group, f64>, out: &mut Vec<Update>) {
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
                let num = self.side_value(numerator, *ms, *start, segment, totals);
                let den = self.side_value(denominator, *ms, *start, segment, totals);
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
