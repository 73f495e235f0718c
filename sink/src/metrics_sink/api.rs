//! The KPI board (`/`) and its JSON API, served by the metrics sink from the same table that
//! `/metrics` renders, so people and Prometheus read the same numbers.
//!
//! Contract:
//! - `GET /api/v1/kpis`: every KPI of the catalog with its people fields and, per window, the
//!   open window (value per segment, total, progress, completeness), the last final window and
//!   the trend of retained final windows (totals); values are absent until the sink caught up;
//! - `GET /api/v1/windows?kpi=…&window=…`: every window held for that KPI and window, with its
//!   finality and the value of every known series (for inspection and tests);
//! - `GET /api/v1/alerts`: the firing alerts of the configured Alertmanager (`available: false`
//!   without one or when it does not answer);
//! - `GET /`: the board page, which reads the three above.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use northstar_schemas::catalog::{Format, Kpi, ALL};
use serde::{Deserialize, Serialize};

use super::family::{Family, Segment};
use super::table::Table;
use super::{clock, Shared};

/// The board's routes.
pub fn router() -> Router<Arc<Shared>> {
    Router::new()
        .route("/", get(board))
        .route("/board.js", get(board_js))
        .route("/api/v1/kpis", get(kpis))
        .route("/api/v1/windows", get(windows))
        .route("/api/v1/alerts", get(alerts))
}

async fn board() -> Html<&'static str> {
    Html(include_str!("board.html"))
}

async fn board_js() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        include_str!("board.js"),
    )
}

/// The catalog and the current values.
#[derive(Debug, Serialize, Deserialize)]
pub struct KpisView {
    pub caught_up: bool,
    pub north_star: String,
    /// The event time whose windows are open (the newest reached, at most the wall clock),
    /// the combined watermark and the event time known complete (unix ms).
    pub event_time_ms: Option<i64>,
    pub watermark_ms: Option<i64>,
    pub complete_until_ms: Option<i64>,
    pub generated_at_ms: i64,
    pub kpis: Vec<KpiView>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct KpiView {
    pub name: String,
    pub title: String,
    pub description: String,
    pub aggregate: String,
    pub format: String,
    pub unit: Option<String>,
    pub owner: Option<String>,
    pub runbook: Option<String>,
    pub north_star: bool,
    /// Label names of the dimensions, in order.
    pub dimensions: Vec<String>,
    pub windows: Vec<WindowView>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct WindowView {
    pub window: String,
    pub length_ms: i64,
    pub open: Option<SliceView>,
    pub last_final: Option<SliceView>,
    /// (start ms, total) of every retained final window, oldest first.
    pub trend: Vec<(i64, Option<f64>)>,
}

/// One window: its total and the value of each segment.
#[derive(Debug, Serialize, Deserialize)]
pub struct SliceView {
    pub start_ms: i64,
    pub progress: f64,
    pub completeness: f64,
    /// The KPI was added or changed in the catalog after this window began: its value lacks
    /// the events before the edit (ADR 0007).
    pub missing_input: bool,
    pub total: Option<f64>,
    pub segments: Vec<SegmentValue>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct SegmentValue {
    /// Label name → value.
    pub segment: BTreeMap<String, String>,
    pub value: Option<f64>,
}

fn format_name(f: Format) -> &'static str {
    match f {
        Format::Count => "count",
        Format::Currency => "currency",
        Format::Percent => "percent",
        Format::Duration => "duration",
    }
}

/// The segment that is the KPI's total: every dimension `__all__` (none for an unsegmented KPI).
fn total_segment(kpi: &Kpi) -> Segment {
    vec![ALL.to_string(); kpi.segments.len()]
}

fn labelled(kpi: &Kpi, seg: &Segment) -> BTreeMap<String, String> {
    kpi.segments
        .iter()
        .zip(seg)
        .map(|(d, v)| (d.label.clone(), v.clone()))
        .collect()
}

fn slice(kpi: &Kpi, f: &Family, start: i64, watermark: i64, complete: i64) -> SliceView {
    let ratio = |ts: i64| super::render::through(ts, start, f.spec.millis);
    let total = total_segment(kpi);
    SliceView {
        start_ms: start,
        progress: ratio(watermark),
        completeness: ratio(complete),
        missing_input: !f.has_full_input(start),
        total: f.value(start, &total),
        segments: f
            .series()
            .filter(|s| **s != total)
            .map(|s| SegmentValue {
                segment: labelled(kpi, s),
                value: f.value(start, s),
            })
            .collect(),
    }
}

fn kpi_view(
    t: &Table,
    k: usize,
    kpi: &Kpi,
    caught_up: bool,
    clock: super::render::Clock,
) -> KpiView {
    let (now, unix_ms) = (clock.now, clock.unix_ms);
    let c = t.catalog();
    let time = t.event_time(now).filter(|_| caught_up);
    let windows = kpi
        .windows
        .iter()
        .enumerate()
        .filter_map(|(w, spec)| {
            let f = t.family(k, w)?;
            let total = total_segment(kpi);
            let (open, last_final, trend) = match time {
                None => (None, None, Vec::new()),
                Some(e) => (
                    Some(slice(
                        kpi,
                        f,
                        f.start_of(e.open_ms(unix_ms)),
                        e.open_ms(unix_ms),
                        e.complete_until_ms,
                    )),
                    f.final_through()
                        .map(|s| slice(kpi, f, s, e.open_ms(unix_ms), e.complete_until_ms)),
                    f.final_starts()
                        .into_iter()
                        .map(|s| (s, f.value(s, &total)))
                        .collect(),
                ),
            };
            Some(WindowView {
                window: spec.label.clone(),
                length_ms: spec.millis,
                open,
                last_final,
                trend,
            })
        })
        .collect();
    KpiView {
        name: kpi.name.clone(),
        title: kpi.title(),
        description: kpi.description.clone(),
        aggregate: kpi.aggregation.kind().to_string(),
        format: format_name(kpi.presentation.format).to_string(),
        unit: kpi.presentation.unit.clone(),
        owner: kpi.presentation.owner.clone(),
        runbook: kpi.presentation.runbook.clone(),
        north_star: kpi.name == c.north_star,
        dimensions: kpi.segments.iter().map(|d| d.label.clone()).collect(),
        windows,
    }
}

async fn kpis(State(shared): State<Arc<Shared>>) -> Json<KpisView> {
    let clock = clock();
    let caught_up = shared.caught_up();
    let t = shared.table(clock.now);
    let time = t.event_time(clock.now).filter(|_| caught_up);
    let kpis = t
        .catalog()
        .kpis
        .iter()
        .enumerate()
        .map(|(k, kpi)| kpi_view(&t, k, kpi, caught_up, clock))
        .collect();
    Json(KpisView {
        caught_up,
        north_star: t.catalog().north_star.clone(),
        event_time_ms: time.map(|e| e.open_ms(clock.unix_ms)),
        watermark_ms: time.map(|e| e.watermark_ms),
        complete_until_ms: time.map(|e| e.complete_until_ms),
        generated_at_ms: clock.unix_ms,
        kpis,
    })
}

#[derive(Debug, Deserialize)]
struct WindowsQuery {
    kpi: String,
    window: String,
}

/// Every held window of one KPI and window length.
#[derive(Debug, Serialize, Deserialize)]
pub struct HeldWindow {
    pub start_ms: i64,
    pub is_final: bool,
    pub values: Vec<SegmentValue>,
}

async fn windows(State(shared): State<Arc<Shared>>, Query(q): Query<WindowsQuery>) -> Response {
    let clock = clock();
    let t = shared.table(clock.now);
    let found = t.catalog().kpi(&q.kpi).and_then(|(k, kpi)| {
        let (w, _) = kpi.window(&q.window)?;
        Some((kpi, t.family(k, w)?))
    });
    let Some((kpi, f)) = found else {
        let msg = format!(
            "no kpi {:?} with window {:?} in the catalog",
            q.kpi, q.window
        );
        return (StatusCode::NOT_FOUND, msg).into_response();
    };
    if !shared.caught_up() {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "catching up with the aggregates topic",
        )
            .into_response();
    }
    let held: Vec<HeldWindow> = f
        .held_starts()
        .into_iter()
        .map(|(start, is_final)| HeldWindow {
            start_ms: start,
            is_final,
            values: f
                .series()
                .map(|s| SegmentValue {
                    segment: labelled(kpi, s),
                    value: f.value(start, s),
                })
                .collect(),
        })
        .collect();
    Json(held).into_response()
}

/// The firing alerts the board shows.
#[derive(Debug, Serialize, Deserialize)]
pub struct AlertsView {
    pub available: bool,
    pub alerts: Vec<AlertView>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct AlertView {
    pub name: String,
    pub severity: String,
    pub kpi: Option<String>,
    pub summary: String,
    pub starts_at: String,
}

async fn alerts(State(shared): State<Arc<Shared>>) -> Json<AlertsView> {
    let Some(base) = shared.alertmanager_url.as_deref() else {
        return Json(AlertsView {
            available: false,
            alerts: Vec::new(),
        });
    };
    let url = format!(
        "{}/api/v2/alerts?active=true&silenced=false&inhibited=false",
        base.trim_end_matches('/')
    );
    let fetched = async {
        let r = shared.http.get(&url).send().await?.error_for_status()?;
        r.json::<Vec<serde_json::Value>>().await
    }
    .await;
    match fetched {
        Ok(list) => Json(AlertsView {
            available: true,
            alerts: list.iter().map(alert_view).collect(),
        }),
        Err(e) => {
            tracing::warn!(url, error = %e, "cannot read the alertmanager's alerts");
            Json(AlertsView {
                available: false,
                alerts: Vec::new(),
            })
        }
    }
}

fn alert_view(a: &serde_json::Value) -> AlertView {
    let label = |k: &str| a["labels"][k].as_str().map(str::to_string);
    AlertView {
        name: label("alertname").unwrap_or_default(),
        severity: label("severity").unwrap_or_default(),
        kpi: label("kpi"),
        summary: a["annotations"]["summary"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
        starts_at: a["startsAt"].as_str().unwrap_or_default().to_string(),
    }
}
