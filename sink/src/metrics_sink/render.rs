//! The metrics sink's exposition: the KPI data model (ADR 0006) and the sink's own metrics, in
//! OpenMetrics 1.0 (what Prometheus asks for first) or the Prometheus text format 0.0.4.
//!
//! Contract, per KPI, window length and segment, without any per-window label:
//! - `northstar_kpi_open_value`: the open window's value (the window holding the newest event
//!   time reached, at most the wall clock; partial), 0 for a known quiet series;
//! - `northstar_kpi_final_value`: the last final window's value;
//! - `northstar_kpi_final_window_value`: the history of final windows, one point per window
//!   stamped with the window's start, for windows that became final within the exposure period
//!   (several points of one series, in increasing time, as OpenMetrics allows);
//!
//! per KPI and window length: the open and last final windows' starts, the open window's
//! progress (watermark) and completeness (watermark minus the allowed lateness), both 0..1;
//! whether the open and last final windows lack input after a catalog edit (ADR 0007), and
//! the history of final windows that do;
//! `northstar_kpi_info` per KPI; event time per input partition and combined. Ratios without
//! a denominator have no point. Nothing of the KPI model is rendered until the sink has caught
//! up with the aggregates topic (no partial sums while replaying).

use std::fmt::Write;
use std::time::{Duration, Instant};

use northstar_schemas::catalog::{segment_label, Aggregation, Format as Display, Kpi};
use prometheus::proto::{MetricFamily, MetricType};

use super::family::Family;
use super::table::Table;

/// The OpenMetrics content type.
pub const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
/// The Prometheus text format's content type.
pub const TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Which text format to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    OpenMetrics,
    Text,
}

impl Format {
    /// OpenMetrics when the scraper's `Accept` header asks for it.
    pub fn negotiate(accept: Option<&str>) -> Format {
        if accept.is_some_and(|a| a.contains("application/openmetrics-text")) {
            Format::OpenMetrics
        } else {
            Format::Text
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Format::OpenMetrics => OPENMETRICS,
            Format::Text => TEXT,
        }
    }
}

/// Wall-clock time of one rendering.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    pub now: Instant,
    pub unix_ms: i64,
}

/// What a rendering exposes beyond the table.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// Whether the sink has caught up with the topic (else no KPI series at all).
    pub caught_up: bool,
    /// How long a final window stays in the history family after it became final.
    pub exposure: Duration,
    /// Final windows starting longer ago than this are never exposed with their timestamp
    /// (Prometheus refuses samples older than its out-of-order window).
    pub history_max_age_ms: i64,
}

/// Counts of one rendering.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Rendered {
    /// (KPI, window, segment) series with an open or final value.
    pub series: usize,
    /// Points of the history family.
    pub history_points: usize,
}

/// A text exposition being written.
pub struct Exposition {
    format: Format,
    out: String,
}

impl Exposition {
    pub fn new(format: Format) -> Self {
        Self {
            format,
            out: String::with_capacity(64 * 1024),
        }
    }

    /// Starts a metric family (OpenMetrics: `name` without `_total` for counters).
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let help = help.replace('\\', "\\\\").replace('\n', "\\n");
        let kind = match (self.format, kind) {
            (Format::Text, "unknown") => "untyped",
            _ => kind,
        };
        let _ = writeln!(self.out, "# TYPE {name} {kind}\n# HELP {name} {help}");
    }

    /// One sample; `ts_ms` is an explicit timestamp.
    fn sample(&mut self, name: &str, labels: &str, value: f64, ts_ms: Option<i64>) {
        self.out.push_str(name);
        if !labels.is_empty() {
            let _ = write!(self.out, "{{{labels}}}");
        }
        self.out.push(' ');
        push_value(&mut self.out, value);
        if let Some(ms) = ts_ms {
            match self.format {
                Format::OpenMetrics => {
                    let _ = write!(
                        self.out,
                        " {}.{:03}",
                        ms.div_euclid(1000),
                        ms.rem_euclid(1000)
                    );
                }
                Format::Text => {
                    let _ = write!(self.out, " {ms}");
                }
            }
        }
        self.out.push('\n');
    }

    pub fn finish(mut self) -> String {
        if self.format == Format::OpenMetrics {
            self.out.push_str("# EOF\n");
        }
        self.out
    }
}

fn push_value(out: &mut String, v: f64) {
    if v.is_nan() {
        out.push_str("NaN");
    } else if v.is_infinite() {
        out.push_str(if v > 0.0 { "+Inf" } else { "-Inf" });
    } else if v.fract() == 0.0 && v.abs() < 1e15 {
        let _ = write!(out, "{}", v as i64);
    } else {
        let _ = write!(out, "{v}");
    }
}

/// Escapes a label value (backslash, double quote, newline).
pub fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// `kpi="…",window="…"`.
fn window_labels(kpi: &Kpi, window: &str) -> String {
    format!(
        "kpi=\"{}\",window=\"{}\"",
        escape(&kpi.name),
        escape(window)
    )
}

/// The labels of one series: the window's, one per dimension, and `segment` (the values
/// joined, `all` for the total: one label every dashboard legend can use).
fn series_labels(kpi: &Kpi, base: &str, segment: &[String]) -> String {
    let mut s = base.to_string();
    for (d, v) in kpi.segments.iter().zip(segment) {
        let _ = write!(s, ",{}=\"{}\"", d.label, escape(v));
    }
    let _ = write!(s, ",segment=\"{}\"", escape(&segment_label(segment)));
    s
}

/// Renders the KPI model (nothing of it before the sink caught up).
pub fn render_kpis(table: &Table, clock: Clock, opts: &Options, out: &mut Exposition) -> Rendered {
    let mut stats = Rendered::default();
    render_info(table, out);
    render_event_time(table, clock, out);
    if !opts.caught_up {
        return stats;
    }
    let Some(t) = table.event_time(clock.now) else {
        return stats;
    };
    let families: Vec<(&Kpi, &Family)> = table
        .catalog()
        .kpis
        .iter()
        .enumerate()
        .flat_map(|(k, kpi)| {
            (0..kpi.windows.len()).filter_map(move |w| Some((kpi, table.family(k, w)?)))
        })
        .collect();
    let open = t.open_ms(clock.unix_ms);
    out.family("northstar_kpi_open_value", "gauge", "Value of the open window (the one holding the newest event time, at most the wall clock; partial), summed over input partitions; 0 for a known series without events in it.");
    for (kpi, f) in &families {
        let start = f.start_of(open);
        stats.series += render_values(kpi, f, start, "northstar_kpi_open_value", out);
    }
    out.family("northstar_kpi_final_value", "gauge", "Value of the last final window (complete: the watermark minus the allowed lateness passed its end).");
    for (kpi, f) in &families {
        if let Some(start) = f.final_through() {
            render_values(kpi, f, start, "northstar_kpi_final_value", out);
        }
    }
    out.family("northstar_kpi_final_window_value", "gauge", "History of final windows: each window's final value stamped with the window's start (explicit timestamps; Prometheus needs an out-of-order window longer than the longest window plus the allowed lateness).");
    let min_start = clock.unix_ms.saturating_sub(opts.history_max_age_ms);
    for (kpi, f) in &families {
        stats.history_points += render_history(kpi, f, clock, opts, min_start, out);
    }
    render_windows(&families, open, t.complete_until_ms, out);
    render_missing_input(&families, open, clock, opts, min_start, out);
    stats
}

/// Which windows lack input because their KPI was added or changed in the catalog after they
/// began (ADR 0007): per KPI and window length, the open and the last final window (0 or 1),
/// and the history of final windows that lack input (1, stamped like their values).
fn render_missing_input(
    families: &[(&Kpi, &Family)],
    open: i64,
    clock: Clock,
    opts: &Options,
    min_start: i64,
    out: &mut Exposition,
) {
    out.family("northstar_kpi_window_missing_input", "gauge", "1 when the open (state=open) or last final (state=final) window lacks input: its KPI was added or changed in the catalog after the window began, or a partition was started with empty state (allow_empty_state), so its value misses the events before that (alerts skip it).");
    for (kpi, f) in families {
        let base = window_labels(kpi, &f.spec.label);
        let open_start = f.start_of(open);
        let states = [("open", Some(open_start)), ("final", f.final_through())];
        for (state, start) in states {
            if let Some(start) = start {
                let v = if f.has_full_input(start) { 0.0 } else { 1.0 };
                let labels = format!("{base},state=\"{state}\"");
                out.sample("northstar_kpi_window_missing_input", &labels, v, None);
            }
        }
    }
    out.family("northstar_kpi_final_window_missing_input", "gauge", "History of final windows that lack input (1, stamped with the window's start like northstar_kpi_final_window_value): `northstar_kpi_final_window_value unless on (kpi, window) northstar_kpi_final_window_missing_input` keeps the exact windows only.");
    for (kpi, f) in families {
        let base = window_labels(kpi, &f.spec.label);
        for start in f.recently_final(clock.now, opts.exposure, min_start) {
            if !f.has_full_input(start) {
                out.sample(
                    "northstar_kpi_final_window_missing_input",
                    &base,
                    1.0,
                    Some(start),
                );
            }
        }
    }
}

fn render_values(kpi: &Kpi, f: &Family, start: i64, name: &str, out: &mut Exposition) -> usize {
    let base = window_labels(kpi, &f.spec.label);
    let mut n = 0;
    for seg in f.series() {
        if let Some(v) = f.value(start, seg) {
            out.sample(name, &series_labels(kpi, &base, seg), v, None);
            n += 1;
        }
    }
    n
}

fn render_history(
    kpi: &Kpi,
    f: &Family,
    clock: Clock,
    opts: &Options,
    min_start: i64,
    out: &mut Exposition,
) -> usize {
    let starts = f.recently_final(clock.now, opts.exposure, min_start);
    if starts.is_empty() {
        return 0;
    }
    let base = window_labels(kpi, &f.spec.label);
    let mut n = 0;
    for seg in f.series() {
        let labels = series_labels(kpi, &base, seg);
        for &start in &starts {
            if let Some(v) = f.value(start, seg) {
                out.sample("northstar_kpi_final_window_value", &labels, v, Some(start));
                n += 1;
            }
        }
    }
    n
}

/// How far `ts` is through the window starting at `start` of length `len` (0..1). `ts` may be
/// `i64::MIN` (no partition has a watermark yet, so nothing is complete): 0, not an overflow.
pub(super) fn through(ts: i64, start: i64, len: i64) -> f64 {
    (ts.saturating_sub(start) as f64 / len.max(1) as f64).clamp(0.0, 1.0)
}

fn render_windows(
    families: &[(&Kpi, &Family)],
    watermark: i64,
    complete: i64,
    out: &mut Exposition,
) {
    let ratio = |f: &Family, ts: i64, start: i64| through(ts, start, f.spec.millis);
    out.family(
        "northstar_kpi_open_window_start_seconds",
        "gauge",
        "Start of the open window (unix seconds).",
    );
    for (kpi, f) in families {
        let start = f.start_of(watermark);
        out.sample(
            "northstar_kpi_open_window_start_seconds",
            &window_labels(kpi, &f.spec.label),
            start as f64 / 1000.0,
            None,
        );
    }
    out.family(
        "northstar_kpi_open_window_progress_ratio",
        "gauge",
        "How far the newest event time is through the open window (0..1).",
    );
    for (kpi, f) in families {
        let v = ratio(f, watermark, f.start_of(watermark));
        out.sample(
            "northstar_kpi_open_window_progress_ratio",
            &window_labels(kpi, &f.spec.label),
            v,
            None,
        );
    }
    out.family("northstar_kpi_open_window_completeness_ratio", "gauge", "How much of the open window is known complete: the combined watermark minus the allowed lateness, through the window (0..1).");
    for (kpi, f) in families {
        let v = ratio(f, complete, f.start_of(watermark));
        out.sample(
            "northstar_kpi_open_window_completeness_ratio",
            &window_labels(kpi, &f.spec.label),
            v,
            None,
        );
    }
    out.family(
        "northstar_kpi_final_window_start_seconds",
        "gauge",
        "Start of the last final window (unix seconds).",
    );
    for (kpi, f) in families {
        if let Some(start) = f.final_through() {
            out.sample(
                "northstar_kpi_final_window_start_seconds",
                &window_labels(kpi, &f.spec.label),
                start as f64 / 1000.0,
                None,
            );
        }
    }
}

fn render_info(table: &Table, out: &mut Exposition) {
    let c = table.catalog();
    out.family("northstar_kpi_info", "gauge", "One series per KPI of the catalog, with its title, aggregate, display format, unit and owner (value 1).");
    for k in &c.kpis {
        let format = match k.presentation.format {
            Display::Count => "count",
            Display::Currency => "currency",
            Display::Percent => "percent",
            Display::Duration => "duration",
        };
        let aggregate = match k.aggregation {
            Aggregation::Ratio { .. } => "ratio",
            ref a => a.kind(),
        };
        let labels = format!(
            "kpi=\"{}\",title=\"{}\",aggregate=\"{aggregate}\",format=\"{format}\",unit=\"{}\",owner=\"{}\",north_star=\"{}\"",
            escape(&k.name),
            escape(&k.title()),
            escape(k.presentation.unit.as_deref().unwrap_or("")),
            escape(k.presentation.owner.as_deref().unwrap_or("")),
            k.name == c.north_star
        );
        out.sample("northstar_kpi_info", &labels, 1.0, None);
    }
}

fn render_event_time(table: &Table, clock: Clock, out: &mut Exposition) {
    out.family(
        "northstar_kpi_watermark_seconds",
        "gauge",
        "Event-time watermark of each input partition (unix seconds).",
    );
    for p in table.parts().iter().filter(|p| p.seen) {
        let labels = format!(
            "topic=\"{}\",partition=\"{}\"",
            escape(&p.topic),
            p.partition
        );
        out.sample(
            "northstar_kpi_watermark_seconds",
            &labels,
            p.watermark_ms.max(0) as f64 / 1000.0,
            None,
        );
    }
    if let Some(t) = table.event_time(clock.now) {
        out.family(
            "northstar_kpi_watermark_combined_seconds",
            "gauge",
            "Event-time watermark over all input partitions, idle ones excluded (unix seconds).",
        );
        out.sample(
            "northstar_kpi_watermark_combined_seconds",
            "",
            t.watermark_ms.max(0) as f64 / 1000.0,
            None,
        );
        out.family("northstar_kpi_complete_until_seconds", "gauge", "Event time up to which every window is complete: the combined watermark minus the allowed lateness (unix seconds).");
        out.sample(
            "northstar_kpi_complete_until_seconds",
            "",
            t.complete_until_ms.max(0) as f64 / 1000.0,
            None,
        );
    }
}

/// Renders the process's own registry (the sink's health metrics).
pub fn render_registry(families: &[MetricFamily], out: &mut Exposition) {
    for mf in families {
        let name = mf.name();
        let (family, kind) = match (out.format, mf.get_field_type()) {
            (Format::OpenMetrics, MetricType::COUNTER) => match name.strip_suffix("_total") {
                Some(base) => (base, "counter"),
                None => (name, "unknown"),
            },
            (_, MetricType::COUNTER) => (name, "counter"),
            (_, MetricType::GAUGE) => (name, "gauge"),
            (_, MetricType::HISTOGRAM) => (name, "histogram"),
            (_, MetricType::SUMMARY) => (name, "summary"),
            (_, MetricType::UNTYPED) => (name, "unknown"),
        };
        out.family(family, kind, mf.help());
        for m in mf.get_metric() {
            let labels: Vec<String> = m
                .get_label()
                .iter()
                .map(|l| format!("{}=\"{}\"", l.name(), escape(l.value())))
                .collect();
            render_metric(out, name, mf.get_field_type(), &labels, m);
        }
    }
}

fn render_metric(
    out: &mut Exposition,
    name: &str,
    kind: MetricType,
    labels: &[String],
    m: &prometheus::proto::Metric,
) {
    let joined = labels.join(",");
    let with = |extra: String| {
        if joined.is_empty() {
            extra
        } else {
            format!("{joined},{extra}")
        }
    };
    match kind {
        MetricType::COUNTER => out.sample(name, &joined, m.get_counter().get_value(), None),
        MetricType::GAUGE => out.sample(name, &joined, m.get_gauge().get_value(), None),
        #[allow(deprecated)] // no replacement yet for untyped values in prometheus 0.14
        MetricType::UNTYPED => out.sample(name, &joined, m.get_untyped().get_value(), None),
        MetricType::HISTOGRAM => {
            let h = m.get_histogram();
            for b in h
                .get_bucket()
                .iter()
                .filter(|b| b.upper_bound().is_finite())
            {
                let le = format!("{:?}", b.upper_bound());
                out.sample(
                    &format!("{name}_bucket"),
                    &with(format!("le=\"{le}\"")),
                    b.cumulative_count() as f64,
                    None,
                );
            }
            out.sample(
                &format!("{name}_bucket"),
                &with("le=\"+Inf\"".into()),
                h.get_sample_count() as f64,
                None,
            );
            out.sample(&format!("{name}_sum"), &joined, h.get_sample_sum(), None);
            out.sample(
                &format!("{name}_count"),
                &joined,
                h.get_sample_count() as f64,
                None,
            );
        }
        MetricType::SUMMARY => {
            let s = m.get_summary();
            for q in s.get_quantile() {
                out.sample(
                    name,
                    &with(format!("quantile=\"{:?}\"", q.quantile())),
                    q.value(),
                    None,
                );
            }
            out.sample(&format!("{name}_sum"), &joined, s.sample_sum(), None);
            out.sample(
                &format!("{name}_count"),
                &joined,
                s.sample_count() as f64,
                None,
            );
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn progress_is_0_to_1_even_before_any_watermark() {
        assert_eq!(super::through(i64::MIN, 1_795_600_000_000, 60_000), 0.0);
        assert_eq!(super::through(30_000, 0, 60_000), 0.5);
        assert_eq!(super::through(i64::MAX, i64::MIN, 60_000), 1.0);
    }

    use std::sync::Arc;

    use northstar_schemas::catalog::Catalog;
    use northstar_schemas::KpiAggregate;

    use super::*;

    const MIN: i64 = 60_000;

    fn agg(
        kpi: &str,
        os: &str,
        start: i64,
        value: f64,
        is_final: bool,
        watermark: i64,
    ) -> KpiAggregate {
        KpiAggregate {
            kpi: kpi.into(),
            window: "1m".into(),
            window_start: start,
            window_end: start + MIN,
            segment: [("context.os.name".to_string(), os.to_string())].into(),
            kind: "count".into(),
            value,
            numerator: if kpi == "conversion" { value } else { 0.0 },
            denominator: if kpi == "conversion" { 2.0 } else { 0.0 },
            is_final,
            watermark,
            source_topic: "events.raw".into(),
            source_partition: 0,
            source_offset: start / MIN + 1,
            allowed_lateness_ms: MIN,
            full_input_after_ms: i64::MIN,
            others_from: 0.0,
        }
    }

    fn table() -> Table {
        let c = Catalog::parse(
            "north_star: signups\ndefaults: {windows: [1m], allowed_lateness: 1m}\nkpis:\n  - {name: signups, aggregate: count, segments: [context.os.name], owner: growth}\n  - {name: conversion, aggregate: {ratio: {numerator: signups, denominator: signups}}, segments: [context.os.name]}\n",
        )
        .expect("catalog");
        let mut t = Table::new(Arc::new(c));
        let now = Instant::now();
        t.apply_at(agg("signups", "iOS", 0, 3.0, true, 130_000), now);
        t.apply_at(agg("signups", "__all__", 0, 5.0, true, 130_000), now);
        t.apply_at(agg("signups", "Android", 0, 2.0, true, 130_000), now);
        t.apply_at(agg("signups", "iOS", 2 * MIN, 1.0, false, 130_000), now);
        t.apply_at(agg("conversion", "iOS", 0, 1.5, true, 130_000), now);
        t.advance(now, Duration::from_secs(60));
        t
    }

    fn render(t: &Table, format: Format, caught_up: bool) -> String {
        let clock = Clock {
            now: Instant::now(),
            unix_ms: 10 * MIN,
        };
        let opts = Options {
            caught_up,
            exposure: Duration::from_secs(60),
            history_max_age_ms: 3_600_000,
        };
        let mut out = Exposition::new(format);
        render_kpis(t, clock, &opts, &mut out);
        out.finish()
    }

    #[test]
    fn the_kpi_model_without_window_labels() {
        let text = render(&table(), Format::Text, true);
        for line in [
            // Open window (the watermark 130 s is in the 2m window): iOS 1, quiet series 0.
            "northstar_kpi_open_value{kpi=\"signups\",window=\"1m\",context_os_name=\"iOS\",segment=\"iOS\"} 1\n",
            "northstar_kpi_open_value{kpi=\"signups\",window=\"1m\",context_os_name=\"Android\",segment=\"Android\"} 0\n",
            // Complete until 70 s: the 0m window is final.
            "northstar_kpi_final_value{kpi=\"signups\",window=\"1m\",context_os_name=\"__all__\",segment=\"all\"} 5\n",
            "northstar_kpi_final_window_value{kpi=\"signups\",window=\"1m\",context_os_name=\"iOS\",segment=\"iOS\"} 3 0\n",
            "northstar_kpi_final_value{kpi=\"conversion\",window=\"1m\",context_os_name=\"iOS\",segment=\"iOS\"} 0.75\n",
            "northstar_kpi_open_window_start_seconds{kpi=\"signups\",window=\"1m\"} 120\n",
            "northstar_kpi_open_window_completeness_ratio{kpi=\"signups\",window=\"1m\"} 0\n",
            "northstar_kpi_final_window_start_seconds{kpi=\"signups\",window=\"1m\"} 0\n",
            "northstar_kpi_complete_until_seconds 70\n",
        ] {
            assert!(text.contains(line), "missing {line}in\n{text}");
        }
        let progress = "northstar_kpi_open_window_progress_ratio{kpi=\"signups\",window=\"1m\"} 0.16666666666666666\n";
        assert!(text.contains(progress), "{text}");
        assert!(
            text.contains("owner=\"growth\",north_star=\"true\""),
            "{text}"
        );
        assert!(!text.contains("window_start="), "no per-window label");
        // A ratio has no zero: no open value without a denominator.
        assert!(
            !text.contains("northstar_kpi_open_value{kpi=\"conversion\""),
            "{text}"
        );
    }

    #[test]
    fn nothing_of_the_model_before_the_sink_caught_up() {
        let text = render(&table(), Format::Text, false);
        assert!(!text.contains("northstar_kpi_open_value{"), "{text}");
        assert!(!text.contains("northstar_kpi_final_value{"), "{text}");
        assert!(text.contains("northstar_kpi_info{"), "the catalog is known");
    }

    #[test]
    fn openmetrics_timestamps_in_seconds_and_eof() {
        let text = render(&table(), Format::OpenMetrics, true);
        assert!(text.contains("northstar_kpi_final_window_value{kpi=\"signups\",window=\"1m\",context_os_name=\"iOS\",segment=\"iOS\"} 3 0.000\n"), "{text}");
        assert!(text.ends_with("# EOF\n"));
        let mut registry = Exposition::new(Format::OpenMetrics);
        let c = prometheus::IntCounter::new("x_events_total", "events").expect("counter");
        c.inc_by(2);
        let r = prometheus::Registry::new();
        r.register(Box::new(c)).expect("register");
        let h = prometheus::Histogram::with_opts(
            prometheus::HistogramOpts::new("x_seconds", "t").buckets(vec![0.5]),
        )
        .expect("histogram");
        h.observe(0.1);
        r.register(Box::new(h)).expect("register");
        render_registry(&r.gather(), &mut registry);
        let om = registry.finish();
        for line in [
            "# TYPE x_events counter\n",
            "x_events_total 2\n",
            "x_seconds_bucket{le=\"0.5\"} 1\n",
            "x_seconds_bucket{le=\"+Inf\"} 1\n",
            "x_seconds_count 1\n",
        ] {
            assert!(om.contains(line), "missing {line}in\n{om}");
        }
    }

    #[test]
    fn negotiation() {
        let prometheus = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
        assert_eq!(Format::negotiate(Some(prometheus)), Format::OpenMetrics);
        assert_eq!(Format::negotiate(Some("*/*")), Format::Text);
        assert_eq!(Format::negotiate(None), Format::Text);
    }
}
