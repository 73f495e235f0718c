//! The catalog's fields for people: how a KPI is displayed, who owns it, what to do when it
//! alerts, and which alerts it has.
//!
//! Contract: everything here is validated with the rest of the catalog ([`super::Catalog::parse`]),
//! so a generated dashboard or rule never refers to a window the KPI does not compute, an
//! open-window bound is only allowed where a window's value can only grow, and week-over-week
//! and anomaly rules only use windows that a week's shift maps onto windows.

use serde::Deserialize;

use super::model::{kpi_err, Aggregation, CatalogError};
use super::windows::{parse_duration, WindowSpec};

/// How a KPI's values are displayed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    /// A plain number (counts, distinct users, sums without a currency).
    Count,
    /// An amount of money; `unit` is its ISO 4217 code (`EUR`).
    Currency,
    /// A fraction shown as a percentage (ratios: 0.25 is 25 %).
    Percent,
    /// A duration; `unit` is `ms`, `s`, `m` or `h` (what one unit of the value is).
    Duration,
}

/// How urgent an alert is; the Alertmanager example routes `critical` to a pager,
/// `warning` to a ticket queue and `info` nowhere (dashboards only).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Info,
    Warning,
    Critical,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Critical => "critical",
        }
    }
}

/// What an alert compares.
#[derive(Debug, Clone, PartialEq)]
pub enum AlertKind {
    /// A final window below `value`.
    Below { value: f64 },
    /// A final window above `value`, or with `open`, the open window already above it (an
    /// upper bound: only for aggregates that can only grow within a window).
    Above { value: f64, open: bool },
    /// A final window changed by more than these percentages against the same window a week
    /// earlier (either may be absent).
    WeekOverWeek {
        drop_percent: Option<f64>,
        rise_percent: Option<f64>,
    },
    /// A final window more than `z` standard deviations from the same window of the previous
    /// `weeks` weeks.
    Anomaly { z: f64, weeks: u32 },
}

/// One alert of a KPI.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertRule {
    pub kind: AlertKind,
    /// Index into the KPI's windows.
    pub window: usize,
    pub severity: Severity,
    /// Below this volume (the value, or for a ratio its denominator) a week-over-week or
    /// anomaly rule stays silent; for thresholds on ratios, the denominator's minimum.
    pub min_volume: f64,
    /// One alert per segment combination instead of one on the all-segments total.
    pub by_segment: bool,
    /// How long the condition must hold before the alert fires (ms).
    pub for_ms: i64,
}

/// The people fields of one KPI.
#[derive(Debug, Clone, PartialEq)]
pub struct Presentation {
    pub format: Format,
    /// `EUR`, `s`, `users`, …: see [`Format`].
    pub unit: Option<String>,
    pub owner: Option<String>,
    /// What to do when the KPI alerts: a URL, or text shown with the alert.
    pub runbook: Option<String>,
}

impl Presentation {
    /// Whether the runbook is a link rather than text.
    pub fn runbook_is_url(&self) -> bool {
        self.runbook
            .as_deref()
            .is_some_and(|r| r.starts_with("https://") || r.starts_with("http://"))
    }
}

// ---- YAML shape ----

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAlert {
    below: Option<f64>,
    above: Option<f64>,
    week_over_week: Option<RawWeekOverWeek>,
    anomaly: Option<RawAnomaly>,
    window: String,
    /// `final` (default) or `open`.
    on: Option<String>,
    severity: Option<Severity>,
    #[serde(default)]
    min_volume: f64,
    #[serde(default)]
    by_segment: bool,
    #[serde(rename = "for")]
    for_: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWeekOverWeek {
    drop_percent: Option<f64>,
    rise_percent: Option<f64>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum RawAnomaly {
    Enabled(bool),
    Tuned {
        #[serde(default = "default_z")]
        z: f64,
        #[serde(default = "default_weeks")]
        weeks: u32,
    },
}

fn default_z() -> f64 {
    3.0
}

fn default_weeks() -> u32 {
    4
}

/// The people fields as written.
pub(super) struct RawPresentation {
    pub format: Option<Format>,
    pub unit: Option<String>,
    pub owner: Option<String>,
    pub runbook: Option<String>,
}

pub(super) fn build_presentation(
    kpi: &str,
    raw: RawPresentation,
    aggregation: &Aggregation,
) -> Result<Presentation, CatalogError> {
    let format = raw.format.unwrap_or(match aggregation {
        Aggregation::Ratio { .. } => Format::Percent,
        _ => Format::Count,
    });
    match (format, raw.unit.as_deref()) {
        (Format::Currency, Some(u))
            if u.len() == 3 && u.bytes().all(|b| b.is_ascii_uppercase()) => {}
        (Format::Currency, u) => {
            return Err(kpi_err(
                kpi,
                "unit",
                format!("a currency needs its ISO 4217 code (EUR, USD), got {u:?}"),
            ))
        }
        (Format::Duration, None | Some("ms" | "s" | "m" | "h")) => {}
        (Format::Duration, Some(u)) => {
            return Err(kpi_err(
                kpi,
                "unit",
                format!("a duration's unit is ms, s, m or h, got {u:?}"),
            ))
        }
        _ => {}
    }
    Ok(Presentation {
        format,
        unit: raw.unit,
        owner: raw.owner,
        runbook: raw.runbook,
    })
}

/// The alert rules of one KPI, validated against its windows and aggregation.
pub(super) fn build_alerts(
    kpi: &str,
    raw: &[RawAlert],
    windows: &[WindowSpec],
    aggregation: &Aggregation,
    has_segments: bool,
) -> Result<Vec<AlertRule>, CatalogError> {
    raw.iter()
        .enumerate()
        .filter_map(|(i, a)| build_alert(kpi, i, a, windows, aggregation, has_segments).transpose())
        .collect()
}

fn build_alert(
    kpi: &str,
    i: usize,
    a: &RawAlert,
    windows: &[WindowSpec],
    aggregation: &Aggregation,
    has_segments: bool,
) -> Result<Option<AlertRule>, CatalogError> {
    let bad = |problem: String| kpi_err(kpi, "alerts", format!("alert {}: {problem}", i + 1));
    let window = windows
        .iter()
        .position(|w| w.label == a.window.trim())
        .ok_or_else(|| {
            bad(format!(
                "window {:?} is not one of the KPI's windows",
                a.window
            ))
        })?;
    let open = match a.on.as_deref() {
        None | Some("final") => false,
        Some("open") => true,
        Some(other) => return Err(bad(format!("on: {other:?} is not final or open"))),
    };
    let kind = match (a.below, a.above, &a.week_over_week, &a.anomaly) {
        (Some(value), None, None, None) => AlertKind::Below { value },
        (None, Some(value), None, None) => AlertKind::Above { value, open },
        (None, None, Some(w), None) => AlertKind::WeekOverWeek {
            drop_percent: w.drop_percent,
            rise_percent: w.rise_percent,
        },
        (None, None, None, Some(RawAnomaly::Enabled(false))) => return Ok(None),
        (None, None, None, Some(RawAnomaly::Enabled(true))) => AlertKind::Anomaly {
            z: default_z(),
            weeks: default_weeks(),
        },
        (None, None, None, Some(RawAnomaly::Tuned { z, weeks })) => AlertKind::Anomaly {
            z: *z,
            weeks: *weeks,
        },
        _ => {
            return Err(bad(
                "give exactly one of below, above, week_over_week, anomaly".into(),
            ))
        }
    };
    validate_kind(&kind, open, &windows[window], aggregation).map_err(bad)?;
    if a.by_segment && !has_segments {
        return Err(bad("by_segment needs a KPI with segments".into()));
    }
    if a.min_volume.is_nan() || a.min_volume < 0.0 {
        return Err(bad("min_volume must be >= 0".into()));
    }
    let for_ms = match &a.for_ {
        None => 0,
        Some(t) => parse_duration(t).ok_or_else(|| bad(format!("for: {t:?} is not a duration")))?,
    };
    let severity = a.severity.unwrap_or(match kind {
        AlertKind::Anomaly { .. } => Severity::Info,
        _ => Severity::Warning,
    });
    Ok(Some(AlertRule {
        kind,
        window,
        severity,
        min_volume: a.min_volume,
        by_segment: a.by_segment,
        for_ms,
    }))
}

fn validate_kind(
    kind: &AlertKind,
    open: bool,
    window: &WindowSpec,
    aggregation: &Aggregation,
) -> Result<(), String> {
    if open && !matches!(kind, AlertKind::Above { .. }) {
        return Err(
            "on: open is only for `above` (an upper bound the open window can only cross upwards)"
                .into(),
        );
    }
    if open && !matches!(aggregation, Aggregation::Count | Aggregation::DistinctUsers) {
        return Err(format!(
            "on: open needs a count or distinct_users KPI, whose open window can only grow (this one is {})",
            aggregation.kind()
        ));
    }
    match kind {
        AlertKind::WeekOverWeek {
            drop_percent,
            rise_percent,
        } => {
            if drop_percent.is_none() && rise_percent.is_none() {
                return Err("week_over_week needs drop_percent or rise_percent".into());
            }
            if [drop_percent, rise_percent]
                .into_iter()
                .flatten()
                .any(|p| p.is_nan() || *p <= 0.0)
            {
                return Err("percentages must be > 0".into());
            }
        }
        AlertKind::Anomaly { z, weeks } if z.is_nan() || *z <= 0.0 || !(1..=8).contains(weeks) => {
            return Err("anomaly needs z > 0 and weeks between 1 and 8".into());
        }
        _ => {}
    }
    let weekly = matches!(
        kind,
        AlertKind::WeekOverWeek { .. } | AlertKind::Anomaly { .. }
    );
    if weekly && !window.divides_week() {
        return Err(format!(
            "window {} does not divide a week, so it has no same window a week earlier",
            window.label
        ));
    }
    Ok(())
}
