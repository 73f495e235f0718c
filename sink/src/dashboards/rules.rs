//! Prometheus rules generated from the catalog: recording rules named `level:metric:operation`,
//! one alert per catalog alert, a no-data alert per KPI, and the pipeline's alerts.
//!
//! Contract: the KPI rules are one group, recording rules first, so alerts read what they just
//! recorded for the same instant; KPI alerts compare only complete windows (the last final window, or the window
//! holding `now - settle` and its week-earlier twins), except an upper bound on the open window,
//! and never a window that lacks input after a catalog edit (ADR 0007);
//! a ratio alert holds only where its denominator reaches the alert's volume, so a zero
//! denominator never fires it; week-over-week and anomaly rules stay silent below their volume;
//! every alert has `severity` and the annotations `summary`, `description` and `runbook_url`
//! (an anchor of docs/runbooks.md, or the KPI's own runbook link).

use std::collections::{BTreeMap, BTreeSet};

use northstar_schemas::catalog::{
    Aggregation, AlertKind, AlertRule, Catalog, Kpi, WindowSpec, WEEK_MS,
};
use serde::Serialize;

use super::promql::{
    dedup, duration, matchers, sel, settle_ms, settled_at, unless_missing_input, with_kpi,
};
use super::Options;

/// A rule file.
#[derive(Debug, Serialize)]
pub struct RuleFile {
    pub groups: Vec<Group>,
}

#[derive(Debug, Serialize)]
pub struct Group {
    pub name: String,
    pub interval: String,
    pub rules: Vec<Rule>,
}

#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum Rule {
    Record {
        record: String,
        expr: String,
        #[serde(skip_serializing_if = "BTreeMap::is_empty")]
        labels: BTreeMap<String, String>,
    },
    Alert {
        alert: String,
        expr: String,
        #[serde(rename = "for")]
        for_: String,
        labels: BTreeMap<String, String>,
        annotations: BTreeMap<String, String>,
    },
}

/// The recorded final window holding `now - settle`, and the same window one week earlier.
pub const SETTLED: &str = "kpi:northstar_kpi_final_window_value:settled";
pub const SETTLED_1W: &str = "kpi:northstar_kpi_final_window_value:settled_1w";
/// The same window 1..n weeks earlier, one series per `weeks_ago`.
pub const WEEKS_AGO: &str = "kpi:northstar_kpi_final_window_value:weeks_ago";

fn mean(weeks: u32) -> String {
    format!("kpi:northstar_kpi_final_window_value:mean_{weeks}w")
}
fn spread(weeks: u32) -> String {
    format!("kpi:northstar_kpi_final_window_value:spread_{weeks}w")
}
fn count(weeks: u32) -> String {
    format!("kpi:northstar_kpi_final_window_value:count_{weeks}w")
}

/// The rules of the KPIs: recording rules for week-based comparisons, then the alerts.
pub fn kpi_rules(c: &Catalog, o: &Options) -> RuleFile {
    let lateness = c.lateness_ms();
    let mut recording = Vec::new();
    for (w, weeks) in weekly_windows(c) {
        let settle = settle_ms(&w, lateness, o.settle_grace_ms);
        let m = format!("window=\"{}\"", w.label);
        recording.push(record(SETTLED, settled_at(&m, &w, settle), &w));
        recording.push(record(SETTLED_1W, settled_at(&m, &w, settle + WEEK_MS), &w));
        let max_weeks = weeks.iter().max().copied().unwrap_or(0);
        if max_weeks > 0 {
            recording.push(weeks_ago(&m, &w, settle, max_weeks));
            for n in weeks {
                recording.extend(baseline(&m, n, &w));
            }
        }
    }
    let mut alerts = Vec::new();
    for k in &c.kpis {
        for a in &k.alerts {
            alerts.extend(kpi_alert(c, k, a, o));
        }
        alerts.push(absent_alert(k, o));
    }
    // One group: its rules run in order, so the alerts always read what the recording rules
    // just computed for the same instant (separate groups run concurrently).
    recording.extend(alerts);
    RuleFile {
        groups: vec![Group {
            name: "northstar-kpis".into(),
            interval: "30s".into(),
            rules: recording,
        }],
    }
}

/// A recording rule of one window length (labelled with it, as its series are).
fn record(name: &str, expr: String, w: &WindowSpec) -> Rule {
    Rule::Record {
        record: name.into(),
        expr,
        labels: BTreeMap::from([("window".to_string(), w.label.clone())]),
    }
}

/// Windows used by week-over-week or anomaly alerts, with the anomaly baselines' lengths.
fn weekly_windows(c: &Catalog) -> Vec<(WindowSpec, BTreeSet<u32>)> {
    let mut out: BTreeMap<i64, (WindowSpec, BTreeSet<u32>)> = BTreeMap::new();
    for k in &c.kpis {
        for a in &k.alerts {
            let weeks = match a.kind {
                AlertKind::WeekOverWeek { .. } => None,
                AlertKind::Anomaly { weeks, .. } => Some(weeks),
                _ => continue,
            };
            let w = &k.windows[a.window];
            let e = out
                .entry(w.millis)
                .or_insert_with(|| (w.clone(), BTreeSet::new()));
            e.1.extend(weeks);
        }
    }
    out.into_values().collect()
}

fn weeks_ago(m: &str, w: &WindowSpec, settle: i64, weeks: u32) -> Rule {
    let parts: Vec<String> = (1..=i64::from(weeks))
        .map(|n| {
            format!(
                "label_replace({}, \"weeks_ago\", \"{n}\", \"\", \"\")",
                settled_at(m, w, settle + n * WEEK_MS)
            )
        })
        .collect();
    record(WEEKS_AGO, parts.join("\nor\n"), w)
}

/// Mean, spread (the standard deviation, at least a tenth of the mean) and count of the same
/// window over the previous `weeks` weeks.
fn baseline(m: &str, weeks: u32, w: &WindowSpec) -> [Rule; 3] {
    let pick = (1..=weeks)
        .map(|n| n.to_string())
        .collect::<Vec<_>>()
        .join("|");
    let series = format!("{WEEKS_AGO}{{{m},weeks_ago=~\"{pick}\"}}");
    [
        record(&mean(weeks), format!("avg without (weeks_ago) ({series})"), w),
        record(
            &spread(weeks),
            format!(
                "(stddev without (weeks_ago) ({series}) >= 0.1 * avg without (weeks_ago) ({series}))\nor\n0.1 * avg without (weeks_ago) ({series})"
            ),
            w,
        ),
        record(&count(weeks), format!("count without (weeks_ago) ({series})"), w),
    ]
}

/// The ratio's denominator KPI, if `k` is a ratio.
fn denominator<'a>(c: &'a Catalog, k: &Kpi) -> Option<&'a Kpi> {
    match k.aggregation {
        Aggregation::Ratio { denominator, .. } => c.kpis.get(denominator),
        _ => None,
    }
}

fn fmt_num(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v}")
    }
}

/// `and ignoring(kpi) <the denominator's series> >= min_volume` for a ratio, else nothing.
fn volume_guard(
    c: &Catalog,
    k: &Kpi,
    series: impl Fn(&str) -> String,
    m: &str,
    min: f64,
) -> String {
    match denominator(c, k) {
        Some(d) => format!(
            "\nand ignoring (kpi)\n{} >= {}",
            series(&with_kpi(m, &d.name)),
            fmt_num(min.max(f64::MIN_POSITIVE))
        ),
        None => String::new(),
    }
}

/// The Prometheus alert(s) of one catalog alert.
fn kpi_alert(c: &Catalog, k: &Kpi, a: &AlertRule, o: &Options) -> Vec<Rule> {
    let w = &k.windows[a.window];
    let m = matchers(k, &w.label, !a.by_segment);
    let final_value = |m: &str| dedup(&sel("northstar_kpi_final_value", m));
    let vol = a.min_volume;
    let (name, expr, what) = match &a.kind {
        AlertKind::Below { value } => (
            "NorthstarKpiBelowThreshold",
            format!(
                "({} < {}{}){}",
                final_value(&m),
                fmt_num(*value),
                volume_guard(c, k, final_value, &m, vol),
                unless_missing_input("final")
            ),
            format!(
                "the last final {} window is below {}",
                w.label,
                fmt_num(*value)
            ),
        ),
        AlertKind::Above { value, open: false } => (
            "NorthstarKpiAboveThreshold",
            format!(
                "({} > {}{}){}",
                final_value(&m),
                fmt_num(*value),
                volume_guard(c, k, final_value, &m, vol),
                unless_missing_input("final")
            ),
            format!(
                "the last final {} window is above {}",
                w.label,
                fmt_num(*value)
            ),
        ),
        AlertKind::Above { value, open: true } => (
            "NorthstarKpiOpenWindowAboveBound",
            format!(
                "{} > {}{}",
                dedup(&sel("northstar_kpi_open_value", &m)),
                fmt_num(*value),
                unless_missing_input("open")
            ),
            format!(
                "the open {} window is already above {}, before it ends",
                w.label,
                fmt_num(*value)
            ),
        ),
        AlertKind::WeekOverWeek {
            drop_percent,
            rise_percent,
        } => {
            return week_over_week(c, k, a, &m, *drop_percent, *rise_percent, o);
        }
        AlertKind::Anomaly { z, weeks } => return anomaly(c, k, a, &m, *z, *weeks, o),
    };
    vec![alert(k, a, name, expr, &what, o)]
}

fn week_over_week(
    c: &Catalog,
    k: &Kpi,
    a: &AlertRule,
    m: &str,
    drop: Option<f64>,
    rise: Option<f64>,
    o: &Options,
) -> Vec<Rule> {
    let w = &k.windows[a.window].label;
    let now = sel(SETTLED, m);
    let prev = sel(SETTLED_1W, m);
    let guard = |prev: &str| {
        let own = if denominator(c, k).is_some() || a.min_volume <= 0.0 {
            format!("\nand {prev} > 0")
        } else {
            format!("\nand {prev} >= {}", fmt_num(a.min_volume))
        };
        own + &volume_guard(c, k, |m| sel(SETTLED_1W, m), m, a.min_volume)
    };
    let mut out = Vec::new();
    if let Some(p) = drop {
        let expr = format!(
            "(1 - {now} / {prev}) * 100 > {}{}",
            fmt_num(p),
            guard(&prev)
        );
        let what = format!(
            "a final {w} window fell more than {} % below the same window a week earlier",
            fmt_num(p)
        );
        out.push(alert(
            k,
            a,
            "NorthstarKpiDroppedWeekOverWeek",
            expr,
            &what,
            o,
        ));
    }
    if let Some(p) = rise {
        let expr = format!(
            "({now} / {prev} - 1) * 100 > {}{}",
            fmt_num(p),
            guard(&prev)
        );
        let what = format!(
            "a final {w} window rose more than {} % above the same window a week earlier",
            fmt_num(p)
        );
        out.push(alert(k, a, "NorthstarKpiRoseWeekOverWeek", expr, &what, o));
    }
    out
}

fn anomaly(
    c: &Catalog,
    k: &Kpi,
    a: &AlertRule,
    m: &str,
    z: f64,
    weeks: u32,
    o: &Options,
) -> Vec<Rule> {
    let w = &k.windows[a.window].label;
    let score = format!(
        "({} - {}) / {}",
        sel(SETTLED, m),
        sel(&mean(weeks), m),
        sel(&spread(weeks), m)
    );
    // The volume is the KPI's own mean, or for a ratio its denominator's.
    let own = if denominator(c, k).is_some() {
        String::new()
    } else {
        format!(
            "\nand {} >= {}",
            sel(&mean(weeks), m),
            fmt_num(a.min_volume.max(f64::MIN_POSITIVE))
        )
    };
    let guard = format!(
        "{own}\nand {} >= 2{}",
        sel(&count(weeks), m),
        volume_guard(c, k, |m| sel(&mean(weeks), m), m, a.min_volume)
    );
    let z = fmt_num(z);
    let low = format!("{score} < -{z}{guard}");
    let high = format!("{score} > {z}{guard}");
    let what = |dir: &str| {
        format!("a final {w} window is more than {z} standard deviations {dir} the same window of the previous {weeks} weeks")
    };
    vec![
        alert(k, a, "NorthstarKpiAnomalyLow", low, &what("below"), o),
        alert(k, a, "NorthstarKpiAnomalyHigh", high, &what("above"), o),
    ]
}

/// The runbook anchor of an alert in docs/runbooks.md (GitHub's heading anchors).
pub fn anchor(alert: &str) -> String {
    alert.to_lowercase()
}

fn alert(k: &Kpi, a: &AlertRule, name: &str, expr: String, what: &str, o: &Options) -> Rule {
    let window = &k.windows[a.window].label;
    let mut labels = BTreeMap::from([
        ("severity".to_string(), a.severity.as_str().to_string()),
        ("kpi".to_string(), k.name.clone()),
        ("window".to_string(), window.clone()),
    ]);
    if let Some(owner) = &k.presentation.owner {
        labels.insert("team".into(), owner.clone());
    }
    let mut description = format!("{}: {what}.", k.title());
    if !k.description.is_empty() {
        description.push_str(&format!(
            " The KPI: {}.",
            k.description.trim_end_matches('.')
        ));
    }
    let runbook_url = match &k.presentation.runbook {
        Some(r) if k.presentation.runbook_is_url() => r.clone(),
        Some(r) => {
            description.push_str(&format!(" Runbook: {r}"));
            format!("{}#{}", o.docs_url, anchor(name))
        }
        None => format!("{}#{}", o.docs_url, anchor(name)),
    };
    let annotations = BTreeMap::from([
        (
            "summary".to_string(),
            format!("{} ({window}, {{{{ $labels.segment }}}}): {what} — value {{{{ $value | humanize }}}}", k.name),
        ),
        ("description".to_string(), description),
        ("runbook_url".to_string(), runbook_url),
        (
            "dashboard".to_string(),
            format!("{}/d/northstar-kpi-drilldown?var-kpi={}&var-window={window}", o.grafana_url, k.name),
        ),
    ]);
    Rule::Alert {
        alert: name.into(),
        expr,
        for_: duration(a.for_ms),
        labels,
        annotations,
    }
}

fn absent_alert(k: &Kpi, o: &Options) -> Rule {
    let name = "NorthstarKpiSeriesAbsent";
    Rule::Alert {
        alert: name.into(),
        expr: format!("absent(northstar_kpi_open_value{{kpi=\"{}\"}})", k.name),
        for_: "15m".into(),
        labels: BTreeMap::from([
            ("severity".to_string(), "warning".to_string()),
            ("kpi".to_string(), k.name.clone()),
        ]),
        annotations: BTreeMap::from([
            ("summary".to_string(), format!("{}: no value exposed for 15 minutes", k.name)),
            (
                "description".to_string(),
                format!("{} has no open-window value in any metrics-sink replica: no event matched it, or the processor or the metrics sink does not compute or expose it.", k.title()),
            ),
            ("runbook_url".to_string(), format!("{}#{}", o.docs_url, anchor(name))),
        ]),
    }
}

/// A pipeline alert.
fn pipeline_alert(
    name: &str,
    expr: &str,
    for_: &str,
    severity: &str,
    summary: &str,
    description: &str,
    o: &Options,
) -> Rule {
    Rule::Alert {
        alert: name.into(),
        expr: expr.into(),
        for_: for_.into(),
        labels: BTreeMap::from([("severity".to_string(), severity.to_string())]),
        annotations: BTreeMap::from([
            ("summary".to_string(), summary.into()),
            ("description".to_string(), description.into()),
            (
                "runbook_url".to_string(),
                format!("{}#{}", o.docs_url, anchor(name)),
            ),
            (
                "dashboard".to_string(),
                format!("{}/d/northstar-pipeline", o.grafana_url),
            ),
        ]),
    }
}

/// The pipeline's recording rules and alerts.
pub fn pipeline_rules(o: &Options) -> RuleFile {
    let rate = |metric: &str, m: &str| format!("sum(rate({metric}{{{m}}}[5m]))");
    let records = [
        (
            "northstar:ingest_events_accepted:rate5m",
            rate("northstar_ingest_events_accepted_total", ""),
        ),
        (
            "northstar:processor_events_in:rate5m",
            rate("northstar_processor_events_in_total", ""),
        ),
        (
            "northstar:processor_events_out:rate5m",
            rate("northstar_processor_events_out_total", ""),
        ),
        (
            "northstar:processor_duplicates:rate5m",
            rate("northstar_processor_duplicates_total", ""),
        ),
        (
            "northstar:processor_invalid:rate5m",
            rate("northstar_processor_invalid_total", ""),
        ),
        (
            "northstar:lake_rows_written:rate5m",
            rate("northstar_lake_sink_rows_written_total", "table=\"events\""),
        ),
    ];
    let mut rules: Vec<Rule> = records
        .iter()
        .map(|(r, e)| Rule::Record {
            record: (*r).into(),
            expr: e.clone(),
            labels: BTreeMap::new(),
        })
        .collect();
    let accepted = "sum(increase(northstar_ingest_events_accepted_total[15m] offset 5m))";
    let processed = "sum(increase(northstar_processor_events_in_total[15m] offset 5m))";
    let alerts = [
        pipeline_alert(
            "NorthstarPipelineStalled",
            "northstar:processor_events_in:rate5m > 0\nand on ()\nmax without (instance, pod) (delta(northstar_kpi_watermark_combined_seconds[10m])) <= 0",
            "5m", "critical",
            "events arrive but the KPI watermark has not moved for 10 minutes",
            "The processor reads events, yet event time stands still in the metrics sink: windows stop becoming final, KPI alerts are muted (inhibited) while this fires.",
            o,
        ),
        pipeline_alert(
            "NorthstarEventsLostBeforeProcessor",
            &format!("{accepted} - {processed}\n> 0.01 * {accepted} + 10"),
            "15m", "critical",
            "fewer records reached the processor than the collector acknowledged",
            "Over 15 minutes (5 minutes ago), the collector acknowledged more events than the processor read from the raw topic: records are lost or stuck between them.",
            o,
        ),
        pipeline_alert(
            "NorthstarProcessorCountsUnbalanced",
            "abs(sum(increase(northstar_processor_events_in_total[15m])) - sum(increase(northstar_processor_events_out_total[15m])) - sum(increase(northstar_processor_duplicates_total[15m])) - sum(increase(northstar_processor_invalid_total[15m])))\n> 0.01 * sum(increase(northstar_processor_events_in_total[15m])) + 10",
            "15m", "warning",
            "processed ≠ clean + dead-lettered + duplicates",
            "Every record the processor reads must leave as a clean event, a dead letter or a duplicate; over 15 minutes the counts differ by more than 1 %.",
            o,
        ),
        pipeline_alert(
            "NorthstarEventsMissingFromLake",
            "sum(increase(northstar_processor_events_out_total[30m] offset 10m)) - sum(increase(northstar_lake_sink_rows_written_total{table=\"events\"}[30m] offset 10m)) - sum(increase(northstar_lake_sink_replay_skipped_total[30m] offset 10m))\n> 0.01 * sum(increase(northstar_processor_events_out_total[30m] offset 10m)) + 10",
            "15m", "critical",
            "clean events are missing from the Parquet lake",
            "Over 30 minutes (10 minutes ago, past the lake sink's file age), fewer rows reached the lake than clean events left the processor, replays accounted for.",
            o,
        ),
        pipeline_alert(
            "NorthstarDeadLetterRateHigh",
            "northstar:processor_invalid:rate5m / northstar:processor_events_in:rate5m > 0.05\nand northstar:processor_events_in:rate5m > 0",
            "10m", "warning",
            "more than 5 % of events are dead-lettered",
            "Producers send events the processor rejects; the reasons are on the pipeline dashboard and in the lake's dlq table.",
            o,
        ),
        pipeline_alert(
            "NorthstarConsumerLagGrowing",
            "sum by (topic) (northstar_consumer_lag_records) > 10000\nand sum by (topic) (deriv(northstar_consumer_lag_records[10m])) > 0",
            "15m", "warning",
            "consumer lag on {{ $labels.topic }} keeps growing",
            "A consumer falls behind its topic: scale it out (more instances in the group) or find what slows it down.",
            o,
        ),
        pipeline_alert(
            "NorthstarConsumerStalled",
            "max by (group) (northstar_consumer_stalled) == 1",
            "5m", "critical",
            "a consumer of group {{ $labels.group }} holds no partition while input waits",
            "A member of the group was left without partitions while records wait that nobody in the group consumes (a broker that lost track of the group); it leaves and rejoins by itself every rejoin_after_secs. Firing for 5 minutes means rejoining does not help.",
            o,
        ),
        pipeline_alert(
            "NorthstarCheckpointOld",
            "time() - northstar_processor_last_checkpoint_timestamp_seconds > 300",
            "5m", "critical",
            "a processor has not checkpointed for 5 minutes",
            "Checkpoints carry the processor's state and let offsets be committed; without them a restart replays more and offsets stay where they are.",
            o,
        ),
        pipeline_alert(
            "NorthstarLakeStale",
            "max by (table) (northstar_lake_sink_oldest_unflushed_seconds) > 900",
            "5m", "warning",
            "rows of {{ $labels.table }} have waited more than 15 minutes for the lake",
            "The lake sink buffers rows it cannot flush: look for upload errors and the object store's health.",
            o,
        ),
        pipeline_alert(
            "NorthstarMetricsSinkNotCaughtUp",
            "northstar_metrics_sink_caught_up == 0",
            "10m", "warning",
            "a metrics sink has not caught up with kpi.aggregates for 10 minutes",
            "It serves no KPI series until it has read the aggregates topic; check that the topic is compacted and the broker reachable.",
            o,
        ),
        pipeline_alert(
            "NorthstarMetricsSinkFinalChanged",
            "increase(northstar_metrics_sink_changed_final_total[1h]) > 0",
            "0s", "warning",
            "a window changed after it was final",
            "An aggregate changed a window the metrics sink had already exposed as final, so Prometheus's history of it may differ from the lake: recompute it from the lake.",
            o,
        ),
        pipeline_alert(
            "NorthstarTargetDown",
            "up{job=~\"northstar.*\"} == 0",
            "5m", "critical",
            "{{ $labels.job }} on {{ $labels.instance }} cannot be scraped",
            "Prometheus cannot reach a Northstar service's metrics endpoint.",
            o,
        ),
    ];
    rules.extend(alerts);
    RuleFile {
        groups: vec![Group {
            name: "northstar-pipeline".into(),
            interval: "30s".into(),
            rules,
        }],
    }
}

/// Every alert name the rules can fire (for the runbooks and the Alertmanager example).
pub fn alert_names(files: &[&RuleFile]) -> BTreeSet<String> {
    files
        .iter()
        .flat_map(|f| &f.groups)
        .flat_map(|g| &g.rules)
        .filter_map(|r| match r {
            Rule::Alert { alert, .. } => Some(alert.clone()),
            Rule::Record { .. } => None,
        })
        .collect()
}

/// The settle offset of `window` in rules (for documentation and tests).
pub fn settle_text(w: &WindowSpec, c: &Catalog, o: &Options) -> String {
    duration(settle_ms(w, c.lateness_ms(), o.settle_grace_ms))
}
