//! The table of KPI windows the metrics sink exposes, without IO.
//!
//! Contract: only KPIs, windows and segment dimensions of the catalog are held (a record of
//! anything else is ignored and counted, so a KPI removed from the catalog disappears); each
//! (KPI, window length) is a [`Family`]. The families of one admission class and window length
//! share what each window admits, taken from all their records (recomputed when a record names
//! a segment new to its window), and are merged by it ([`Family::remerge`], ADR 0013). Event-time progress comes from the records: per input
//! partition its watermark and allowed lateness. Every partition of the input topic counts
//! ([`Table::expect_partitions`]), also before its first record: until then its event time is
//! unknown and holds everything back, so the first partition to report cannot finalise windows
//! the others still have records for. The combined watermark is the minimum over partitions
//! that advanced within the idle timeout (when all are idle, the maximum); the event time known
//! complete is the same over `watermark - lateness`. Windows up to it become final
//! ([`Family::advance`]) and expire by their retention ([`Family::expire`]).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use northstar_schemas::catalog::{admission_classes, Admitted, Aggregation, Catalog, Kpi, OTHER};
use northstar_schemas::KpiAggregate;

use super::family::{Family, Rec, Segment, Upsert};

/// What applying a record did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    Applied,
    /// An older or equal source position than what is held.
    Stale,
    /// Applied, but it changed a window already final.
    ChangedFinal,
    /// Not held, with the reason (a metric label).
    Ignored(&'static str),
}

/// One input partition's event-time progress.
#[derive(Debug, Clone)]
pub struct Part {
    pub topic: String,
    pub partition: i32,
    pub watermark_ms: i64,
    pub lateness_ms: i64,
    /// Whether a record of it has arrived (before, its event time is unknown).
    pub seen: bool,
    advanced_at: Instant,
}

/// Event time over all input partitions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventTime {
    /// The combined watermark (ms): the slowest active partition's.
    pub watermark_ms: i64,
    /// Windows ending at or before it are complete: no late event can change them (ms).
    pub complete_until_ms: i64,
    /// The newest event time any partition has reached (ms).
    pub newest_ms: i64,
}

impl EventTime {
    /// The event time whose window is the open one: the newest reached, never past the wall
    /// clock `unix_ms` (a client's clock running ahead cannot open a future window), never
    /// before the combined watermark.
    pub fn open_ms(&self, unix_ms: i64) -> i64 {
        self.newest_ms.min(unix_ms).max(self.watermark_ms)
    }
}

/// The table.
#[derive(Debug)]
pub struct Table {
    catalog: Arc<Catalog>,
    kpi_index: HashMap<String, usize>,
    /// Per KPI, per window (catalog order).
    families: Vec<Vec<Family>>,
    parts: Vec<Part>,
    part_index: HashMap<(String, i32), u16>,
    idle_timeout: Duration,
    /// Per (KPI, window): the families of its admission class with the same window length
    /// (itself included), which admit segment values together.
    class_families: Vec<Vec<Vec<(usize, usize)>>>,
}

impl Table {
    pub fn new(catalog: Arc<Catalog>) -> Self {
        let families = catalog
            .kpis
            .iter()
            .map(|k| {
                let ratio = matches!(k.aggregation, Aggregation::Ratio { .. });
                let suffixed =
                    matches!(k.aggregation, Aggregation::DistinctUsers) && k.segments.len() == 1;
                k.windows
                    .iter()
                    .map(|w| {
                        let mut f = Family::new(w.clone(), ratio);
                        f.suffixed = suffixed;
                        f
                    })
                    .collect()
            })
            .collect();
        let kpi_index = catalog
            .kpis
            .iter()
            .enumerate()
            .map(|(i, k)| (k.name.clone(), i))
            .collect();
        let class_families = class_families(&catalog);
        Self {
            class_families,
            catalog,
            kpi_index,
            families,
            parts: Vec::new(),
            part_index: HashMap::new(),
            idle_timeout: Duration::from_secs(60),
        }
    }

    /// Sets the idle timeout of the combined watermark.
    pub fn with_idle_timeout(mut self, idle_timeout: Duration) -> Self {
        self.idle_timeout = idle_timeout;
        self
    }

    pub fn catalog(&self) -> &Arc<Catalog> {
        &self.catalog
    }

    /// The family of KPI `kpi`, window `window` (catalog indexes).
    pub fn family(&self, kpi: usize, window: usize) -> Option<&Family> {
        self.families.get(kpi)?.get(window)
    }

    /// The input partitions seen, with their progress.
    pub fn parts(&self) -> &[Part] {
        &self.parts
    }

    /// Applies one aggregate record at time `now` (for watermark idleness).
    pub fn apply_at(&mut self, agg: KpiAggregate, now: Instant) -> Applied {
        let Some(&k) = self.kpi_index.get(&agg.kpi) else {
            return Applied::Ignored("kpi_not_in_catalog");
        };
        let kpi = &self.catalog.kpis[k];
        let Some((w, spec)) = kpi.window(&agg.window) else {
            return Applied::Ignored("window_not_in_catalog");
        };
        if spec.start(agg.window_start) != agg.window_start
            || agg.window_end - agg.window_start != spec.millis
        {
            return Applied::Ignored("window_not_aligned");
        }
        let Some(segment) = segment_of(kpi, &agg) else {
            return Applied::Ignored("segments_differ");
        };
        let part = self.progress(&agg, now);
        let rec = Rec {
            value: agg.value,
            numerator: agg.numerator,
            denominator: agg.denominator,
            is_final: agg.is_final,
            source_offset: agg.source_offset,
            others_from: agg.others_from,
        };
        let family = &mut self.families[k][w];
        family.note_full_input_after(part, agg.full_input_after_ms);
        let new_segment = !family.has_segment(agg.window_start, &segment);
        let applied = match family.upsert(agg.window_start, segment, part, rec) {
            Upsert::Applied => Applied::Applied,
            Upsert::Stale => return Applied::Stale,
            Upsert::ChangedFinal => Applied::ChangedFinal,
        };
        self.remerge(k, w, agg.window_start, new_segment);
        applied
    }

    /// Brings the series of KPI `k`, window `w` at `start` up to date after a record; a new
    /// segment can change what the window admits, and then every family of the class sharing
    /// the window is merged again.
    fn remerge(&mut self, k: usize, w: usize, start: i64, new_segment: bool) {
        let kpi = &self.catalog.kpis[k];
        let known = self.families[k][w].admitted(start).cloned();
        if let (Some(admitted), false) = (&known, new_segment) {
            self.families[k][w].remerge(start, admitted.clone());
            self.ratio_others(k, w, start);
            return;
        }
        let members = &self.class_families[k][w];
        let admitted = Admitted::from_segments(
            kpi.segments.len(),
            kpi.max_segment_values,
            members
                .iter()
                .flat_map(|&(j, v)| self.families[j][v].raw_segments(start)),
        );
        if known.as_ref() == Some(&admitted) {
            self.families[k][w].remerge(start, admitted);
        } else {
            for &(j, v) in &self.class_families[k][w] {
                self.families[j][v].remerge(start, admitted.clone());
            }
        }
        self.ratio_others(k, w, start);
    }

    /// A ratio over a distinct-users side with one dimension takes its `__other__` from its
    /// sides' merged `__other__` (each user once, [`Family::remerge`]), not from the sum of its
    /// own records, which would count a user under two folded values twice.
    fn ratio_others(&mut self, k: usize, w: usize, start: i64) {
        let other = vec![OTHER.to_string()];
        for i in 0..self.class_families[k][w].len() {
            let (j, v) = self.class_families[k][w][i];
            let Aggregation::Ratio {
                numerator,
                denominator,
            } = self.catalog.kpis[j].aggregation
            else {
                continue;
            };
            let ms = self.families[j][v].spec.millis;
            let side = |t: &Table, kpi: usize| {
                let f = t.families[kpi].iter().find(|f| f.spec.millis == ms)?;
                Some((f.suffixed, f.merged_value(start, &other)))
            };
            let (Some((sn, num)), Some((sd, den))) =
                (side(self, numerator), side(self, denominator))
            else {
                continue;
            };
            if sn || sd {
                self.families[j][v].set_merged_sides(start, &other, num, den);
            }
        }
    }

    /// Counts `partitions` of input `topic` from `now` on, before any record of theirs (their
    /// event time unknown: they hold back finality until they report or the idle timeout).
    pub fn expect_partitions(&mut self, topic: &str, partitions: &[i32], now: Instant) {
        for &p in partitions {
            self.part(topic, p, now);
        }
    }

    /// The index of a partition, registered unseen if new.
    fn part(&mut self, topic: &str, partition: i32, now: Instant) -> u16 {
        let key = (topic.to_string(), partition);
        if let Some(i) = self.part_index.get(&key) {
            return *i;
        }
        let i = u16::try_from(self.parts.len()).unwrap_or(u16::MAX);
        self.parts.push(Part {
            topic: key.0.clone(),
            partition,
            watermark_ms: i64::MIN,
            lateness_ms: 0,
            seen: false,
            advanced_at: now,
        });
        self.part_index.insert(key, i);
        i
    }

    /// Records the partition's watermark and lateness; returns its index.
    fn progress(&mut self, agg: &KpiAggregate, now: Instant) -> u16 {
        let index = self.part(&agg.source_topic, agg.source_partition, now);
        if let Some(p) = self.parts.get_mut(usize::from(index)) {
            if agg.watermark > p.watermark_ms || !p.seen {
                p.watermark_ms = p.watermark_ms.max(agg.watermark);
                p.advanced_at = now;
            }
            p.seen = true;
            p.lateness_ms = agg.allowed_lateness_ms;
        }
        index
    }

    /// Event time over the partitions: the minimum over partitions that advanced within the
    /// idle timeout; when all are idle, the maximum (nothing is pending anywhere).
    pub fn event_time(&self, now: Instant) -> Option<EventTime> {
        if !self.parts.iter().any(|p| p.seen) {
            return None;
        }
        let combine = |f: &dyn Fn(&Part) -> i64| {
            let active = self
                .parts
                .iter()
                .filter(|p| now.saturating_duration_since(p.advanced_at) < self.idle_timeout)
                .map(f)
                .min();
            active.or_else(|| self.parts.iter().filter(|p| p.seen).map(f).max())
        };
        Some(EventTime {
            watermark_ms: combine(&|p| p.watermark_ms)?,
            complete_until_ms: combine(&|p| p.watermark_ms.saturating_sub(p.lateness_ms))?,
            newest_ms: self
                .parts
                .iter()
                .filter(|p| p.seen)
                .map(|p| p.watermark_ms)
                .max()?,
        })
    }

    /// Marks complete windows final, expires what is past retention and finality marks older
    /// than `exposure`.
    pub fn advance(&mut self, now: Instant, exposure: Duration) {
        let Some(t) = self.event_time(now) else {
            return;
        };
        for f in self.families.iter_mut().flatten() {
            f.advance(t.complete_until_ms, now);
            f.expire(t.complete_until_ms, exposure, now);
        }
    }

    /// Records held, over all families.
    pub fn records(&self) -> usize {
        self.families.iter().flatten().map(Family::records).sum()
    }

    /// Known (KPI, window, segment) series.
    pub fn series(&self) -> usize {
        self.families
            .iter()
            .flatten()
            .map(Family::series_count)
            .sum()
    }
}

/// Per (KPI, window): the (KPI, window) families of its admission class with the same window
/// length.
fn class_families(catalog: &Catalog) -> Vec<Vec<Vec<(usize, usize)>>> {
    let classes = admission_classes(&catalog.kpis);
    catalog
        .kpis
        .iter()
        .enumerate()
        .map(|(k, kpi)| {
            kpi.windows
                .iter()
                .map(|spec| {
                    catalog
                        .kpis
                        .iter()
                        .enumerate()
                        .filter(|(j, _)| classes[*j] == classes[k])
                        .filter_map(|(j, other)| {
                            let v = other.windows.iter().position(|x| x.millis == spec.millis)?;
                            Some((j, v))
                        })
                        .collect()
                })
                .collect()
        })
        .collect()
}

/// The record's segment values in the KPI's dimension order, if it has exactly the KPI's
/// dimensions.
fn segment_of(kpi: &Kpi, agg: &KpiAggregate) -> Option<Segment> {
    if agg.segment.len() != kpi.segments.len() {
        return None;
    }
    kpi.segments
        .iter()
        .map(|d| agg.segment.get(&d.name).cloned())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const CATALOG: &str = r#"
north_star: signups
defaults: {windows: [1m], allowed_lateness: 1m}
kpis:
  - {name: signups, aggregate: count, segments: [context.os.name]}
  - {name: conversion, aggregate: {ratio: {numerator: upgrades, denominator: signups}}, segments: [context.os.name]}
  - {name: upgrades, aggregate: count, segments: [context.os.name]}
"#;

    pub(crate) fn agg(
        kpi: &str,
        os: &str,
        start: i64,
        partition: i32,
        offset: i64,
        value: f64,
    ) -> KpiAggregate {
        KpiAggregate {
            kpi: kpi.into(),
            window: "1m".into(),
            window_start: start,
            window_end: start + 60_000,
            segment: [("context.os.name".to_string(), os.to_string())].into(),
            kind: "count".into(),
            value,
            numerator: 0.0,
            denominator: 0.0,
            is_final: false,
            watermark: start,
            source_topic: "events.raw".into(),
            source_partition: partition,
            source_offset: offset,
            allowed_lateness_ms: 60_000,
            full_input_after_ms: i64::MIN,
            others_from: 0.0,
        }
    }

    fn table() -> Table {
        Table::new(Arc::new(Catalog::parse(CATALOG).expect("catalog")))
    }

    /// Records of three partitions naming more values than the cap (2): the values first by
    /// rank over every partition and KPI of the class have their series, the rest is
    /// `__other__`, whatever the order the records arrive in.
    #[test]
    fn partitions_records_merge_by_the_values_the_window_admits() {
        let catalog = CATALOG.replace(
            "allowed_lateness: 1m}",
            "allowed_lateness: 1m, max_segment_values: 2}",
        );
        let mut r: Vec<&str> = vec!["iOS", "Android", "Windows", "Linux", "macOS"];
        r.sort_by_key(|v| northstar_schemas::catalog::admission::rank(v));
        let ratio = |os: &str, p: i32, num: f64, den: f64| KpiAggregate {
            kind: "ratio".into(),
            numerator: num,
            denominator: den,
            ..agg("conversion", os, 0, p, 1, f64::NAN)
        };
        let records = vec![
            agg("signups", r[1], 0, 0, 1, 1.0),
            agg("signups", r[4], 0, 0, 1, 0.0),
            agg("signups", OTHER, 0, 0, 1, 2.0),
            agg("signups", r[2], 0, 1, 1, 4.0),
            agg("signups", r[3], 0, 1, 1, 1.0),
            // Only upgrades saw r[0]: it is admitted for its class, signups included.
            agg("upgrades", r[0], 0, 2, 1, 1.0),
            ratio(r[0], 2, 1.0, 0.0),
            ratio(r[1], 0, 0.0, 1.0),
            ratio(r[4], 0, 0.0, 0.0),
            ratio(OTHER, 0, 0.0, 2.0),
            ratio(r[2], 1, 0.0, 4.0),
            ratio(r[3], 1, 0.0, 1.0),
        ];
        for order in [records.clone(), records.into_iter().rev().collect()] {
            let mut t = Table::new(Arc::new(Catalog::parse(&catalog).expect("catalog")));
            for a in order {
                t.apply_at(a, Instant::now());
            }
            let s = t.family(0, 0).expect("signups");
            let value = |f: &Family, v: &str| f.value(0, &vec![v.to_string()]);
            assert_eq!(value(s, r[1]), Some(1.0));
            assert_eq!(value(s, OTHER), Some(7.0), "2 + r[2]'s 4 + r[3]'s 1");
            assert_eq!(
                s.segments_at(0),
                vec![&vec![r[1].to_string()], &vec![OTHER.to_string()]]
            );
            let u = t.family(2, 0).expect("upgrades");
            assert_eq!(value(u, r[0]), Some(1.0));
            let c = t.family(1, 0).expect("conversion");
            assert_eq!(value(c, r[0]), None, "no signups for r[0]");
            assert_eq!(value(c, r[1]), Some(0.0));
            assert_eq!(value(c, OTHER), Some(0.0));
            assert_eq!(c.segments_at(0).len(), 3);
        }
    }

    /// Distinct users with one dimension: a partition's `__other__` is the `othersFrom` of its
    /// first value the window does not admit, so a user under several of them counts once.
    #[test]
    fn distinct_users_under_several_folded_values_count_once() {
        let catalog = "north_star: active\ndefaults: {windows: [1m], max_segment_values: 2}\nkpis:\n  - {name: active, aggregate: distinct_users, segments: [context.os.name]}\n";
        let mut r: Vec<&str> = vec!["iOS", "Android", "Windows"];
        r.sort_by_key(|v| northstar_schemas::catalog::admission::rank(v));
        let rec = |os: &str, p: i32, value: f64, others_from: f64| KpiAggregate {
            kind: "distinct_users".into(),
            others_from,
            ..agg("active", os, 0, p, 1, value)
        };
        // Partition 0 keeps r[1] {u1} and r[2] {u1, u2}; its __other__ holds {u1, u3}.
        // Partition 1 saw r[0] {u4}: the window admits r[0] and r[1].
        let records = [
            rec(r[1], 0, 1.0, 3.0),
            rec(r[2], 0, 2.0, 3.0),
            rec(OTHER, 0, 2.0, 0.0),
            rec(r[0], 1, 1.0, 1.0),
        ];
        let mut t = Table::new(Arc::new(Catalog::parse(catalog).expect("catalog")));
        for a in records {
            t.apply_at(a, Instant::now());
        }
        let f = t.family(0, 0).expect("active");
        let value = |v: &str| f.value(0, &vec![v.to_string()]);
        assert_eq!((value(r[0]), value(r[1])), (Some(1.0), Some(1.0)));
        assert_eq!(value(OTHER), Some(3.0), "u1, u2, u3: a sum would say 4");
    }

    /// A ratio over distinct-users sides takes its `__other__` from the sides' (each user
    /// once), not from the sum of its own records.
    #[test]
    fn a_ratio_over_distinct_users_takes_other_from_its_sides() {
        let catalog = "north_star: a\ndefaults: {windows: [1m], max_segment_values: 2}\nkpis:\n  - {name: a, aggregate: distinct_users, segments: [context.os.name]}\n  - {name: b, aggregate: distinct_users, segments: [context.os.name]}\n  - {name: r, aggregate: {ratio: {numerator: a, denominator: b}}, segments: [context.os.name]}\n";
        let mut r: Vec<&str> = vec!["iOS", "Android", "Windows"];
        r.sort_by_key(|v| northstar_schemas::catalog::admission::rank(v));
        let rec = |kpi: &str, os: &str, p: i32, value: f64, others_from: f64| KpiAggregate {
            kind: "distinct_users".into(),
            others_from,
            ..agg(kpi, os, 0, p, 1, value)
        };
        let ratio = |os: &str, p: i32, num: f64, den: f64| KpiAggregate {
            kind: "ratio".into(),
            numerator: num,
            denominator: den,
            ..agg("r", os, 0, p, 1, num / den)
        };
        // a on partition 0: r[1] {u1}, r[2] {u1, u2}, __other__ {u1, u3}: 3 users folded.
        // b on partition 0: r[1] {u1}, r[2] {u1, u2}, __other__ {u1, u3, u5}: 4.
        let records = [
            rec("a", r[1], 0, 1.0, 3.0),
            rec("a", r[2], 0, 2.0, 3.0),
            rec("a", OTHER, 0, 2.0, 0.0),
            rec("b", r[1], 0, 1.0, 4.0),
            rec("b", r[2], 0, 2.0, 4.0),
            rec("b", OTHER, 0, 3.0, 0.0),
            ratio(r[1], 0, 1.0, 1.0),
            ratio(r[2], 0, 2.0, 2.0),
            ratio(OTHER, 0, 2.0, 3.0),
            rec("a", r[0], 1, 1.0, 1.0),
            rec("b", r[0], 1, 1.0, 1.0),
            ratio(r[0], 1, 1.0, 1.0),
        ];
        let mut t = Table::new(Arc::new(Catalog::parse(catalog).expect("catalog")));
        for a in records {
            t.apply_at(a, Instant::now());
        }
        let f = t.family(2, 0).expect("r");
        assert_eq!(
            f.value(0, &vec![OTHER.to_string()]),
            Some(0.75),
            "3 / 4, not (2 + 2) / (2 + 3)"
        );
        assert_eq!(f.value(0, &vec![r[1].to_string()]), Some(1.0));
    }

    #[test]
    fn what_the_catalog_does_not_hold_is_ignored() {
        let now = Instant::now();
        let mut t = table();
        assert_eq!(
            t.apply_at(agg("gone", "iOS", 0, 0, 1, 1.0), now),
            Applied::Ignored("kpi_not_in_catalog")
        );
        let mut a = agg("signups", "iOS", 0, 0, 1, 1.0);
        a.window = "1h".into();
        assert_eq!(
            t.apply_at(a, now),
            Applied::Ignored("window_not_in_catalog")
        );
        let mut a = agg("signups", "iOS", 0, 0, 1, 1.0);
        a.segment.insert("properties.plan".into(), "pro".into());
        assert_eq!(t.apply_at(a, now), Applied::Ignored("segments_differ"));
        let mut a = agg("signups", "iOS", 0, 0, 1, 1.0);
        a.window_start = 30_000;
        a.window_end = 90_000;
        assert_eq!(t.apply_at(a, now), Applied::Ignored("window_not_aligned"));
        assert_eq!(
            t.apply_at(agg("signups", "iOS", 0, 0, 1, 1.0), now),
            Applied::Applied
        );
        assert_eq!(t.records(), 1);
    }

    #[test]
    fn event_time_is_the_slowest_active_partition_minus_lateness() {
        let t0 = Instant::now();
        let mut t = table().with_idle_timeout(Duration::from_secs(60));
        let mut a = agg("signups", "iOS", 0, 0, 1, 1.0);
        a.watermark = 100_000;
        t.apply_at(a, t0);
        let mut b = agg("signups", "iOS", 0, 1, 1, 1.0);
        b.watermark = 500_000;
        t.apply_at(b.clone(), t0);
        assert_eq!(
            t.event_time(t0),
            Some(EventTime {
                watermark_ms: 100_000,
                complete_until_ms: 40_000,
                newest_ms: 500_000,
            })
        );
        let e = t.event_time(t0).expect("event time");
        assert_eq!(e.open_ms(1_000_000), 500_000, "the newest event time");
        assert_eq!(e.open_ms(300_000), 300_000, "never past the wall clock");
        assert_eq!(e.open_ms(50_000), 100_000, "never before the watermark");
        // Partition 1 keeps advancing; partition 0 goes quiet past the idle timeout.
        b.watermark = 900_000;
        b.source_offset = 2;
        t.apply_at(b, t0 + Duration::from_secs(90));
        assert_eq!(
            t.event_time(t0 + Duration::from_secs(90))
                .map(|e| e.watermark_ms),
            Some(900_000)
        );
        assert_eq!(
            t.event_time(t0 + Duration::from_secs(500))
                .map(|e| e.complete_until_ms),
            Some(840_000),
            "all idle: the maximum"
        );
    }

    /// The first partition to report must not finalise windows that another, not yet heard
    /// from, has records for.
    #[test]
    fn an_unseen_partition_holds_finality_back_until_it_is_idle() {
        let t0 = Instant::now();
        let mut t = table().with_idle_timeout(Duration::from_secs(60));
        t.expect_partitions("events.raw", &[0, 1], t0);
        let mut a = agg("signups", "iOS", 0, 0, 1, 2.0);
        a.is_final = true;
        a.watermark = 30 * 60_000;
        t.apply_at(a, t0);
        t.advance(t0, Duration::from_secs(60));
        assert_eq!(
            t.family(0, 0).and_then(Family::final_through),
            None,
            "partition 1 unknown"
        );
        assert!(t.event_time(t0).is_some_and(|e| e.complete_until_ms < 0));
        // Partition 1 reports a record for the same window: both count.
        let mut b = agg("signups", "iOS", 0, 1, 1, 5.0);
        b.is_final = true;
        b.watermark = 20 * 60_000;
        t.apply_at(b, t0 + Duration::from_secs(1));
        t.advance(t0 + Duration::from_secs(1), Duration::from_secs(60));
        let f = t.family(0, 0).expect("family");
        assert!(f.final_through().is_some_and(|s| s >= 0));
        assert_eq!(f.value(0, &vec!["iOS".into()]), Some(7.0));
        // A partition that never reports stops holding back after the idle timeout.
        let mut t = table().with_idle_timeout(Duration::from_secs(60));
        t.expect_partitions("events.raw", &[0, 1], t0);
        let mut a = agg("signups", "iOS", 0, 0, 1, 2.0);
        a.is_final = true;
        a.watermark = 30 * 60_000;
        t.apply_at(a, t0 + Duration::from_secs(59));
        t.advance(t0 + Duration::from_secs(61), Duration::from_secs(60));
        assert_eq!(
            t.family(0, 0).and_then(Family::final_through),
            Some(28 * 60_000)
        );
    }

    #[test]
    fn finality_follows_the_slowest_partition() {
        let t0 = Instant::now();
        let mut t = table();
        let mut a = agg("signups", "iOS", 0, 0, 1, 2.0);
        a.is_final = true;
        a.watermark = 130_000;
        t.apply_at(a, t0);
        let mut b = agg("signups", "iOS", 60_000, 1, 1, 1.0);
        b.watermark = 70_000;
        t.apply_at(b, t0);
        t.advance(t0, Duration::from_secs(60));
        // Partition 1 is at 70 s: complete until 10 s, so window 0 is not final yet.
        assert_eq!(t.family(0, 0).and_then(Family::final_through), None);
        let mut b = agg("signups", "Android", 60_000, 1, 2, 1.0);
        b.watermark = 125_000;
        t.apply_at(b, t0);
        t.advance(t0, Duration::from_secs(60));
        assert_eq!(t.family(0, 0).and_then(Family::final_through), Some(0));
        let f = t.family(0, 0).expect("family");
        assert_eq!(f.value(0, &vec!["iOS".into()]), Some(2.0));
        assert_eq!(
            f.value(0, &vec!["Android".into()]),
            Some(0.0),
            "known, quiet: 0"
        );
    }
}
