//! The KPI dashboards: executive, KPI drill-down and real time.
//!
//! Contract: the big numbers are the open window (partial, with its completeness beside it)
//! or the last final window; trends draw final windows only, each at its start; changes compare
//! a final window with the one a window length earlier, and the open window with the same point
//! of the same window a week earlier (pace); every KPI query takes `max` over replicas.

use northstar_schemas::catalog::{Catalog, Kpi, WindowSpec};

use super::grafana::{unit, Dashboard, Kind, Panel, Query, Variable};
use super::promql::{dedup, duration, history, matchers, sel};

const OPEN: &str = "northstar_kpi_open_value";
const FINAL: &str = "northstar_kpi_final_value";

fn window_of(k: &Kpi, pick: impl Fn(&WindowSpec) -> bool) -> &WindowSpec {
    k.windows
        .iter()
        .rev()
        .find(|w| pick(w))
        .unwrap_or(&k.windows[0])
}

/// The window a KPI is shown by: its longest of at most a day (its shortest if it has none).
fn headline(k: &Kpi) -> &WindowSpec {
    window_of(k, |w| w.millis <= 86_400_000)
}

fn window_labels(k: &Kpi, w: &WindowSpec) -> String {
    format!("kpi=\"{}\",window=\"{}\"", k.name, w.label)
}

/// A ratio of two instant values, undefined (no point) when the second is 0.
fn change(now: &str, before: &str) -> String {
    format!("{now} / ({before} > 0) - 1")
}

/// The executive dashboard: the North Star Metric and the input KPIs.
pub fn executive(c: &Catalog) -> Dashboard {
    let mut d = Dashboard::new(
        "northstar-executive",
        "Northstar — North Star Metric",
        "The North Star Metric for the current period with how complete it is, its trend over complete periods, and the input KPIs that drive it.",
        "now-90d",
        "1m",
    );
    if let Some(nsm) = c.north_star_kpi() {
        north_star(&mut d, nsm);
    }
    for k in c.kpis.iter().filter(|k| k.name != c.north_star) {
        let w = headline(k);
        let m = matchers(k, &w.label, true);
        d.panel(
            Panel::new(
                Kind::Stat,
                format!("{} (last complete {})", k.title(), w.label),
                format!("{}. The value is the last final {} window (all segments); the line, every final window of the time range.", k.description, w.label),
                &unit(k),
            )
            .query(Query::range(history(&m, w), "{{kpi}}").every(&w.label)),
        );
    }
    d
}

fn north_star(d: &mut Dashboard, k: &Kpi) {
    let w = window_of(k, |_| true);
    let m = matchers(k, &w.label, true);
    let len = duration(w.millis);
    let open = dedup(&sel(OPEN, &m));
    let open_week_ago = dedup(&format!("{} offset 1w", sel(OPEN, &m)));
    let last = dedup(&sel(FINAL, &m));
    let last_before = dedup(&format!("{} offset {len}", sel(FINAL, &m)));
    let u = unit(k);
    let stat = |title: String, description: String, unit: &str, q: Query| {
        Panel::new(Kind::Stat, title, description, unit)
            .size(4, 5)
            .query(q)
    };
    d.panel(stat(
        format!("{} — this {} so far", k.title(), w.label),
        format!(
            "{}. The open {} window: partial until it is complete (see completeness).",
            k.description, w.label
        ),
        &u,
        Query::instant(open.clone(), "{{kpi}}"),
    ));
    d.panel(stat(
        format!("Completeness of this {}", w.label),
        "How much of the open window's event time is known complete: the watermark minus the allowed lateness, through the window.".into(),
        "percentunit",
        Query::instant(dedup(&sel("northstar_kpi_open_window_completeness_ratio", &window_labels(k, w))), "{{kpi}}"),
    ));
    d.panel(stat(
        "Pace vs a week earlier".into(),
        format!("The open {} window against the same point of the same window a week earlier (1 = the same).", w.label),
        "percentunit",
        Query::instant(format!("{open} / ({open_week_ago} > 0)"), "{{kpi}}"),
    ));
    d.panel(stat(
        format!("Last complete {}", w.label),
        format!(
            "The last final {} window: complete, it will not change.",
            w.label
        ),
        &u,
        Query::instant(last.clone(), "{{kpi}}"),
    ));
    d.panel(stat(
        format!("Change vs the previous {}", w.label),
        format!("The last complete {} against the one before it.", w.label),
        "percentunit",
        Query::instant(change(&last, &last_before), "{{kpi}}"),
    ));
    d.panel(stat(
        "Event time complete until".into(),
        "The event time up to which every window is final (the combined watermark minus the allowed lateness).".into(),
        "dateTimeFromNow",
        Query::instant(dedup("northstar_kpi_complete_until_seconds") + " * 1000", "complete until"),
    ));
    d.panel(
        Panel::new(
            Kind::Bars,
            format!("{}, complete {} windows", k.title(), w.label),
            format!(
                "Each final {} window at its start (what the lake recomputes).",
                w.label
            ),
            &u,
        )
        .size(24, 8)
        .query(Query::range(history(&m, w), "{{kpi}}").every(&w.label)),
    );
}

/// The real-time dashboard: every KPI's open window against a week earlier.
pub fn realtime(c: &Catalog) -> Dashboard {
    let mut d = Dashboard::new(
        "northstar-realtime",
        "Northstar — Real time",
        "Every KPI's open window as it fills, against the same point of the same window a week earlier.",
        "now-6h",
        "10s",
    );
    for k in &c.kpis {
        let w = &k.windows[0];
        let m = matchers(k, &w.label, true);
        let open = dedup(&sel(OPEN, &m));
        let week_ago = dedup(&format!("{} offset 1w", sel(OPEN, &m)));
        let labels = window_labels(k, w);
        d.panel(
            Panel::new(
                Kind::TimeSeries,
                format!("{} — open {} window", k.title(), w.label),
                format!("{}. The open {} window (all segments) as it fills, and the same window a week earlier at the same point.", k.description, w.label),
                &unit(k),
            )
            .size(16, 7)
            .query(Query::range(open.clone(), "this {{window}}"))
            .query(Query::range(week_ago.clone(), "a week earlier")),
        );
        d.panel(
            Panel::new(
                Kind::Stat,
                format!("{} — pace", k.title()),
                format!(
                    "The open {} window against the same point a week earlier (1 = the same).",
                    w.label
                ),
                "percentunit",
            )
            .size(4, 7)
            .query(Query::instant(
                format!("{open} / ({week_ago} > 0)"),
                "{{kpi}}",
            )),
        );
        d.panel(
            Panel::new(
                Kind::Stat,
                format!("{} — window progress", k.title()),
                "How far the watermark is through the open window.",
                "percentunit",
            )
            .size(4, 7)
            .query(Query::instant(
                dedup(&sel("northstar_kpi_open_window_progress_ratio", &labels)),
                "{{kpi}}",
            )),
        );
    }
    d
}

/// The drill-down dashboard: one KPI and window, by segment.
pub fn drilldown(c: &Catalog) -> Dashboard {
    let mut d = Dashboard::new(
        "northstar-kpi-drilldown",
        "Northstar — KPI drill-down",
        "One KPI and window by segment: final windows, the open window, and each segment's share of the total (the __other__ row is the share of values past the cap).",
        "now-7d",
        "1m",
    );
    d.variables.push(Variable {
        name: "kpi".into(),
        label: "KPI".into(),
        query: "label_values(northstar_kpi_info, kpi)".into(),
        multi: false,
    });
    d.variables.push(Variable {
        name: "window".into(),
        label: "Window".into(),
        query: "label_values(northstar_kpi_open_value{kpi=\"$kpi\"}, window)".into(),
        multi: false,
    });
    let mut labels: Vec<(String, String)> = c
        .kpis
        .iter()
        .flat_map(|k| k.segments.iter().map(|s| (s.label.clone(), s.name.clone())))
        .collect();
    labels.sort();
    labels.dedup();
    for (label, path) in &labels {
        d.variables.push(Variable {
            name: label.clone(),
            label: path.clone(),
            query: format!("label_values(northstar_kpi_open_value{{kpi=\"$kpi\"}}, {label})"),
            multi: true,
        });
    }
    let mut m = "kpi=\"$kpi\",window=\"$window\"".to_string();
    for (label, _) in &labels {
        m.push_str(&format!(",{label}=~\"${label}\""));
    }
    let segments = format!("{m},segment!=\"all\"");
    let total = "kpi=\"$kpi\",window=\"$window\",segment=\"all\"";
    let hist = |m: &str| {
        dedup(&format!(
            "last_over_time(northstar_kpi_final_window_value{{{m}}}[$window])"
        ))
    };
    d.panel(
        Panel::new(
            Kind::TimeSeries,
            "Final windows by segment",
            "Each final window of the selected segments at its start.",
            "short",
        )
        .query(Query::range(hist(&segments), "{{segment}}").every("$window")),
    );
    d.panel(
        Panel::new(Kind::TimeSeries, "Final windows, all segments", "The exact all-segments total computed by the processor (a user in several segments counts once).", "short")
            .query(Query::range(hist(total), "{{segment}}").every("$window")),
    );
    d.panel(
        Panel::new(
            Kind::Table,
            "Segments of the last final window",
            "The last final window's value per segment.",
            "short",
        )
        .query(Query::instant(dedup(&sel(FINAL, &segments)), "{{segment}}")),
    );
    let ignoring: Vec<&str> = std::iter::once("segment")
        .chain(labels.iter().map(|(l, _)| l.as_str()))
        .collect();
    d.panel(
        Panel::new(Kind::Table, "Share of the total", "Each segment's share of the all-segments total in the last final window; for distinct users shares add up to more than 100 % (a user can be in several segments).", "percentunit")
            .query(Query::instant(
                format!("{} / ignoring ({}) group_left {}", dedup(&sel(FINAL, &segments)), ignoring.join(", "), dedup(&sel(FINAL, total))),
                "{{segment}}",
            )),
    );
    d.panel(
        Panel::new(
            Kind::TimeSeries,
            "Open window by segment",
            "The open window's value per segment as it fills (partial).",
            "short",
        )
        .size(18, 8)
        .query(Query::range(dedup(&sel(OPEN, &segments)), "{{segment}}")),
    );
    d.panel(
        Panel::new(
            Kind::Stat,
            "Completeness of the open window",
            "How much of the open window's event time is known complete.",
            "percentunit",
        )
        .size(6, 8)
        .query(Query::instant(
            dedup("northstar_kpi_open_window_completeness_ratio{kpi=\"$kpi\",window=\"$window\"}"),
            "{{window}}",
        )),
    );
    d.panel(
        Panel::new(
            Kind::Stat,
            "Missing input after a catalog edit",
            "1 when the open or the last final window began before this KPI was added or changed in the catalog: its value lacks the events before the edit, and alerts skip it (ADR 0007).",
            "short",
        )
        .size(6, 8)
        .query(Query::instant(
            dedup("northstar_kpi_window_missing_input{kpi=\"$kpi\",window=\"$window\"}"),
            "{{state}}",
        )),
    );
    d
}
