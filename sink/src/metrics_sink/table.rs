//! The table of KPI values the metrics sink exposes, without IO.
//!
//! Contract: per upsert key the record with the highest source offset wins (a replayed or
//! reordered older record is skipped and counted); values of the same (KPI, window, segment,
//! window start) from different source partitions are summed; only the newest `retain_windows`
//! windows per KPI and window length are kept. Rendering follows the Prometheus text format.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write;
use std::time::{Duration, Instant};

use northstar_schemas::KpiAggregate;

/// (kpi, window, segment) — one exposed series family member.
type SeriesKey = (String, String, BTreeMap<String, String>);

/// Whether an aggregate was applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    Applied,
    Stale,
}

/// The table.
#[derive(Debug, Default)]
pub struct Table {
    /// upsert key → latest record.
    latest: HashMap<String, KpiAggregate>,
    /// source partition → (watermark ms, when it last advanced).
    watermarks: BTreeMap<(String, i32), (i64, Instant)>,
    retain_windows: usize,
    /// A partition whose watermark has not advanced for this long is idle and does not hold
    /// back the combined watermark.
    idle_timeout: Duration,
}

impl Table {
    pub fn new(retain_windows: usize) -> Self {
        Self {
            retain_windows: retain_windows.max(1),
            idle_timeout: Duration::from_secs(60),
            ..Default::default()
        }
    }

    /// Sets the idle timeout of the combined watermark.
    pub fn with_idle_timeout(mut self, idle_timeout: Duration) -> Self {
        self.idle_timeout = idle_timeout;
        self
    }

    /// Applies one aggregate record.
    pub fn apply(&mut self, agg: KpiAggregate) -> Applied {
        self.apply_at(agg, Instant::now())
    }

    /// [`Table::apply`] at time `now` (for watermark idleness).
    pub fn apply_at(&mut self, agg: KpiAggregate, now: Instant) -> Applied {
        let key = agg.upsert_key();
        if let Some(old) = self.latest.get(&key) {
            if old.source_offset > agg.source_offset
                || (old.source_offset == agg.source_offset && old.is_final)
            {
                return Applied::Stale;
            }
        }
        let wm = self
            .watermarks
            .entry((agg.source_topic.clone(), agg.source_partition))
            .or_insert((i64::MIN, now));
        if agg.watermark > wm.0 {
            *wm = (agg.watermark, now);
        }
        self.latest.insert(key, agg);
        Applied::Applied
    }

    /// Drops all but the newest `retain_windows` window starts per (kpi, window).
    pub fn prune(&mut self) {
        let mut starts: HashMap<(String, String), Vec<i64>> = HashMap::new();
        for a in self.latest.values() {
            starts
                .entry((a.kpi.clone(), a.window.clone()))
                .or_default()
                .push(a.window_start);
        }
        let mut cutoff: HashMap<(String, String), i64> = HashMap::new();
        for (k, mut v) in starts {
            v.sort_unstable();
            v.dedup();
            if v.len() > self.retain_windows {
                cutoff.insert(k, v[v.len() - self.retain_windows]);
            }
        }
        self.latest.retain(|_, a| {
            cutoff
                .get(&(a.kpi.clone(), a.window.clone()))
                .is_none_or(|c| a.window_start >= *c)
        });
    }

    /// Number of (window, segment, partition) values held.
    pub fn len(&self) -> usize {
        self.latest.len()
    }

    pub fn is_empty(&self) -> bool {
        self.latest.is_empty()
    }

    /// Values summed over source partitions: (series, window start) → (value, all final).
    /// Ratios are Σ numerators / Σ denominators (NaN while the denominators sum to 0).
    pub fn windows(&self) -> BTreeMap<(SeriesKey, i64), (f64, bool)> {
        // (value sum, numerator sum, denominator sum, is ratio, all final)
        type Sums = (f64, f64, f64, bool, bool);
        let mut sums: BTreeMap<(SeriesKey, i64), Sums> = BTreeMap::new();
        for a in self.latest.values() {
            let e = sums
                .entry((
                    (a.kpi.clone(), a.window.clone(), a.segment.clone()),
                    a.window_start,
                ))
                .or_insert((0.0, 0.0, 0.0, false, true));
            e.0 += a.value;
            e.1 += a.numerator;
            e.2 += a.denominator;
            e.3 |= a.kind == "ratio";
            e.4 &= a.is_final;
        }
        sums.into_iter()
            .map(|(k, (v, num, den, ratio, fin))| {
                let value = if !ratio {
                    v
                } else if den == 0.0 {
                    f64::NAN
                } else {
                    num / den
                };
                (k, (value, fin))
            })
            .collect()
    }

    /// The combined event-time watermark (ms): the minimum over partitions that advanced within
    /// the idle timeout; when all are idle, the maximum (nothing is pending anywhere).
    pub fn combined_watermark(&self, now: Instant) -> Option<i64> {
        let active = self
            .watermarks
            .values()
            .filter(|(_, at)| now.saturating_duration_since(*at) < self.idle_timeout)
            .map(|(wm, _)| *wm)
            .min();
        active.or_else(|| self.watermarks.values().map(|(wm, _)| *wm).max())
    }

    /// The Prometheus text exposition of the KPI values.
    pub fn render(&self) -> String {
        self.render_at(Instant::now())
    }

    /// [`Table::render`] at time `now`.
    pub fn render_at(&self, now: Instant) -> String {
        let windows = self.windows();
        let mut out = String::new();
        out.push_str("# HELP northstar_kpi_value KPI value of the newest window, summed over input partitions.\n");
        out.push_str("# TYPE northstar_kpi_value gauge\n");
        let mut newest: BTreeMap<&SeriesKey, (i64, f64)> = BTreeMap::new();
        for ((series, start), (value, _)) in &windows {
            let e = newest.entry(series).or_insert((*start, *value));
            if *start >= e.0 {
                *e = (*start, *value);
            }
        }
        for (series, (_, value)) in &newest {
            let _ = writeln!(
                out,
                "northstar_kpi_value{} {}",
                labels(series, None),
                fmt_value(*value)
            );
        }
        out.push_str("# HELP northstar_kpi_window_value KPI value per retained window (window_start in RFC 3339), summed over input partitions.\n");
        out.push_str("# TYPE northstar_kpi_window_value gauge\n");
        for ((series, start), (value, _)) in &windows {
            let _ = writeln!(
                out,
                "northstar_kpi_window_value{} {}",
                labels(series, Some(*start)),
                fmt_value(*value)
            );
        }
        out.push_str("# HELP northstar_kpi_window_final 1 when the window is final (the watermark passed its end plus the allowed lateness).\n");
        out.push_str("# TYPE northstar_kpi_window_final gauge\n");
        for ((series, start), (_, is_final)) in &windows {
            let _ = writeln!(
                out,
                "northstar_kpi_window_final{} {}",
                labels(series, Some(*start)),
                u8::from(*is_final)
            );
        }
        out.push_str("# HELP northstar_kpi_watermark_seconds Event-time watermark of each input partition (unix seconds).\n");
        out.push_str("# TYPE northstar_kpi_watermark_seconds gauge\n");
        for ((topic, partition), (wm, _)) in &self.watermarks {
            let _ = writeln!(
                out,
                "northstar_kpi_watermark_seconds{{topic=\"{}\",partition=\"{partition}\"}} {}",
                escape(topic),
                fmt_value(*wm as f64 / 1000.0)
            );
        }
        if let Some(wm) = self.combined_watermark(now) {
            out.push_str("# HELP northstar_kpi_watermark_combined_seconds Event-time watermark over all input partitions, idle ones excluded (unix seconds): windows ending before it, plus the allowed lateness, are complete.\n");
            out.push_str("# TYPE northstar_kpi_watermark_combined_seconds gauge\n");
            let _ = writeln!(
                out,
                "northstar_kpi_watermark_combined_seconds {}",
                fmt_value(wm as f64 / 1000.0)
            );
        }
        out
    }
}

fn fmt_value(v: f64) -> String {
    if v.is_nan() {
        return "NaN".into();
    }
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v}")
    }
}

/// Escapes a label value (backslash, double quote, newline).
pub fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// A valid label name for a segment dimension (`properties.plan` → `properties_plan`).
pub fn label_name(dim: &str) -> String {
    let mut s: String = dim
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if s.is_empty() || s.starts_with(|c: char| c.is_ascii_digit()) || s.starts_with("__") {
        s.insert_str(0, "dim_");
    }
    if matches!(s.as_str(), "kpi" | "window" | "window_start") {
        s.insert_str(0, "dim_");
    }
    s
}

fn labels((kpi, window, segment): &SeriesKey, start: Option<i64>) -> String {
    let mut s = format!("{{kpi=\"{}\",window=\"{}\"", escape(kpi), escape(window));
    for (k, v) in segment {
        let _ = write!(s, ",{}=\"{}\"", label_name(k), escape(v));
    }
    if let Some(ms) = start {
        let ts = chrono::DateTime::from_timestamp_millis(ms)
            .map(|t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string())
            .unwrap_or_else(|| ms.to_string());
        let _ = write!(s, ",window_start=\"{ts}\"");
    }
    s.push('}');
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn agg(event: &str, start: i64, partition: i32, offset: i64, value: f64) -> KpiAggregate {
        KpiAggregate {
            kpi: "events".into(),
            window: "1m".into(),
            window_start: start,
            window_end: start + 60_000,
            segment: [("event".to_string(), event.to_string())].into(),
            kind: "count".into(),
            value,
            numerator: 0.0,
            denominator: 0.0,
            is_final: false,
            watermark: start,
            source_topic: "events.raw".into(),
            source_partition: partition,
            source_offset: offset,
        }
    }

    #[test]
    fn newest_offset_wins_and_partitions_sum() {
        let mut t = Table::new(10);
        assert_eq!(t.apply(agg("a", 0, 0, 5, 3.0)), Applied::Applied);
        assert_eq!(
            t.apply(agg("a", 0, 0, 4, 2.0)),
            Applied::Stale,
            "older position"
        );
        assert_eq!(t.apply(agg("a", 0, 1, 9, 4.0)), Applied::Applied);
        assert_eq!(t.apply(agg("a", 60_000, 0, 7, 1.0)), Applied::Applied);
        let w = t.windows();
        let series = (
            "events".to_string(),
            "1m".to_string(),
            BTreeMap::from([("event".to_string(), "a".to_string())]),
        );
        assert_eq!(w[&(series.clone(), 0)].0, 7.0);
        assert_eq!(w[&(series, 60_000)].0, 1.0);
        let text = t.render();
        assert!(
            text.contains("northstar_kpi_value{kpi=\"events\",window=\"1m\",event=\"a\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("window_start=\"1970-01-01T00:00:00Z\"} 7\n"),
            "{text}"
        );
    }

    #[test]
    fn ratios_divide_sums_over_partitions() {
        let mut t = Table::new(10);
        for (partition, num, den) in [(0, 1.0, 4.0), (1, 2.0, 2.0)] {
            let mut a = agg("x", 0, partition, 1, num / den);
            a.kpi = "conversion".into();
            a.kind = "ratio".into();
            a.numerator = num;
            a.denominator = den;
            t.apply(a);
        }
        let v: Vec<f64> = t.windows().values().map(|(v, _)| *v).collect();
        assert_eq!(
            v,
            vec![0.5],
            "(1+2)/(4+2), not the sum of per-partition ratios"
        );
        let mut empty = Table::new(10);
        let mut a = agg("x", 0, 0, 1, f64::NAN);
        a.kind = "ratio".into();
        empty.apply(a);
        assert!(empty.render().contains("} NaN\n"));
    }

    #[test]
    fn combined_watermark_ignores_idle_partitions() {
        let t0 = Instant::now();
        let mut t = Table::new(10).with_idle_timeout(Duration::from_secs(60));
        let mut a = agg("a", 0, 0, 1, 1.0);
        a.watermark = 100_000;
        t.apply_at(a, t0);
        let mut b = agg("a", 0, 1, 1, 1.0);
        b.watermark = 500_000;
        t.apply_at(b.clone(), t0);
        assert_eq!(
            t.combined_watermark(t0),
            Some(100_000),
            "the slowest active partition"
        );
        // Partition 1 keeps advancing; partition 0 goes quiet for longer than the timeout.
        b.watermark = 900_000;
        b.source_offset = 2;
        t.apply_at(b, t0 + Duration::from_secs(90));
        assert_eq!(
            t.combined_watermark(t0 + Duration::from_secs(90)),
            Some(900_000)
        );
        assert_eq!(
            t.combined_watermark(t0 + Duration::from_secs(500)),
            Some(900_000),
            "all idle: the maximum"
        );
        assert!(t
            .render_at(t0)
            .contains("northstar_kpi_watermark_combined_seconds 100\n"));
    }

    #[test]
    fn prune_keeps_newest_windows() {
        let mut t = Table::new(2);
        for i in 0..5 {
            t.apply(agg("a", i * 60_000, 0, i, 1.0));
        }
        t.prune();
        assert_eq!(t.len(), 2);
        assert!(t.windows().keys().all(|(_, s)| *s >= 180_000));
    }

    #[test]
    fn labels_are_escaped_and_valid() {
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
        assert_eq!(label_name("context.os.name"), "context_os_name");
        assert_eq!(label_name("9x"), "dim_9x");
        assert_eq!(label_name("window"), "dim_window");
    }
}
