use super::*;

const EXAMPLE: &str = r#"
north_star: weekly_active_teams
defaults:
  windows: [1m, 1h]
  max_segment_values: 3
kpis:
  - name: signups
    description: Accounts created
    filter: {event: Signed Up}
    aggregate: count
    segments: [context.os.name]
  - name: upgrades
    filter:
      event: Upgraded
      where:
        - {field: properties.plan, op: in, value: [pro, team]}
    aggregate: count
    segments: [context.os.name]
  - name: conversion
    aggregate: {ratio: {numerator: upgrades, denominator: signups}}
    segments: [context.os.name]
  - name: revenue
    filter: {types: [track], where: [{field: properties.revenue, op: gt, value: 0}]}
    aggregate: {sum: properties.revenue}
    windows: [1d]
  - name: weekly_active_teams
    aggregate: distinct_users
    windows: [1d]
"#;

#[test]
fn example_parses() {
    let c = Catalog::parse(EXAMPLE).expect("valid");
    assert_eq!(c.north_star, "weekly_active_teams");
    assert_eq!(c.kpis.len(), 5);
    assert_eq!(
        c.kpis[0]
            .windows
            .iter()
            .map(|w| w.millis)
            .collect::<Vec<_>>(),
        vec![60_000, 3_600_000]
    );
    assert_eq!(
        c.kpis[2].aggregation,
        Aggregation::Ratio {
            numerator: 1,
            denominator: 0
        }
    );
    assert_eq!(c.kpis[3].windows[0].millis, 86_400_000);
    assert_eq!(c.kpis[0].max_segment_values, 3);
    assert_eq!(c.kpis[0].segments[0].label, "context_os_name");
    assert_eq!(c.kpis[2].presentation.format, Format::Percent, "ratios");
    assert_eq!(c.kpis[0].presentation.format, Format::Count);
    assert_eq!(c.allowed_lateness_ms, None);
    assert_eq!(c.lateness_ms(), 600_000);
    assert_eq!(c.kpis[4].title(), "Weekly active teams");
}

#[test]
fn the_shipped_example_catalog_is_valid() {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../deploy/kpi-catalog.yaml"
    ))
    .expect("deploy/kpi-catalog.yaml");
    let c = Catalog::parse(&text).expect("the example catalog validates");
    // The bound docs/kpi-catalog.md states for it.
    let bound = c.series_bound();
    assert_eq!((bound.segment_series, bound.total()), (1_969, 6_026));
    let docs = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../docs/kpi-catalog.md"
    ))
    .expect("docs/kpi-catalog.md");
    assert!(
        docs.contains("1,969") && docs.contains("6,026"),
        "docs/kpi-catalog.md states another series bound"
    );
}

fn err_of(yaml: &str) -> String {
    Catalog::parse(yaml).expect_err("invalid").to_string()
}

#[test]
fn errors_name_the_kpi_and_field() {
    let e = err_of("north_star: a\nkpis:\n  - {name: a, aggregate: median}\n");
    assert!(e.contains("\"a\"") && e.contains("aggregate"), "{e}");
    let e = err_of("north_star: a\nkpis:\n  - {name: a, aggregate: count, windows: [5 minutes]}\n");
    assert!(e.contains("windows") && e.contains("5 minutes"), "{e}");
    let e = err_of("north_star: a\nkpis:\n  - {name: a, aggregate: count, segments: [os]}\n");
    assert!(e.contains("segments") && e.contains("os"), "{e}");
    let e = err_of(
        "north_star: a\nkpis:\n  - {name: a, aggregate: count, segments: [event, type, userId, sourceId, name]}\n",
    );
    assert!(e.contains("segments") && e.contains("at most 4"), "{e}");
    let e = err_of(
        "north_star: a\nkpis:\n  - {name: a, aggregate: {ratio: {numerator: a, denominator: b}}}\n",
    );
    assert!(e.contains("ratio"), "{e}");
    let e = err_of("north_star: zz\nkpis:\n  - {name: a, aggregate: count}\n");
    assert!(e.contains("north_star"), "{e}");
    let e = err_of("north_star: a\nkpis:\n  - {name: A, aggregate: count}\n");
    assert!(e.contains("name"), "{e}");
    let e = err_of(
        "north_star: r\nkpis:\n  - {name: a, aggregate: count, segments: [context.os.name]}\n  - {name: b, aggregate: count}\n  - {name: r, aggregate: {ratio: {numerator: a, denominator: b}}}\n",
    );
    assert!(e.contains("\"r\"") && e.contains("segments"), "{e}");
    let e = err_of("north_star: a\nkpis:\n  - {name: a, aggregate: count, filter: {where: [{field: properties.x, op: gt, value: abc}]}}\n");
    assert!(e.contains("filter.where.value"), "{e}");
    let e = err_of("north_star: a\nkpis:\n  - {name: a, aggregate: count, colour: red}\n");
    assert!(e.contains("colour"), "{e}");
}

#[test]
fn label_collisions_are_refused() {
    // Two paths of one KPI with the same label name.
    let e = err_of(
        "north_star: a\nkpis:\n  - {name: a, aggregate: count, segments: [properties.os-name, properties.os_name]}\n",
    );
    assert!(
        e.contains("properties_os_name") && e.contains("rename one"),
        "{e}"
    );
    // And across KPIs: one label, one meaning.
    let e = err_of(
        "north_star: a\nkpis:\n  - {name: a, aggregate: count, segments: [context.os.name]}\n  - {name: b, aggregate: count, segments: [context.os_name]}\n",
    );
    assert!(
        e.contains("\"b\"") && e.contains("kpi \"a\"") && e.contains("context_os_name"),
        "{e}"
    );
    // The same path in several KPIs is fine; reserved names are prefixed, not refused.
    let c = Catalog::parse(
        "north_star: a\nkpis:\n  - {name: a, aggregate: count, segments: [context.os.name, properties.window]}\n  - {name: b, aggregate: count, segments: [context.os.name]}\n",
    )
    .expect("valid");
    assert_eq!(c.kpis[0].segments[1].label, "properties_window");
    let c = Catalog::parse(
        "north_star: a\nkpis:\n  - {name: a, aggregate: count, segments: [event]}\n",
    )
    .expect("valid");
    assert_eq!(c.kpis[0].segments[0].label, "event");
}

#[test]
fn lateness_and_retention() {
    let c = Catalog::parse(
        "north_star: a\ndefaults: {allowed_lateness: 2m, retention: {1m: 1h, 1w: 20w}}\nkpis:\n  - {name: a, aggregate: count, windows: [1m, 1h, 1w]}\n",
    )
    .expect("valid");
    assert_eq!(c.allowed_lateness_ms, Some(120_000));
    let r: Vec<i64> = c.kpis[0].windows.iter().map(|w| w.retention_ms).collect();
    assert_eq!(r, vec![3_600_000, 8 * 86_400_000, 20 * WEEK_MS]);
    assert_eq!(c.kpis[0].windows[2].offset_ms, 4 * 86_400_000, "Monday");
    let e = err_of(
        "north_star: a\ndefaults: {retention: {1h: 2h}}\nkpis:\n  - {name: a, aggregate: count}\n",
    );
    assert!(e.contains("retention") && e.contains("shorter"), "{e}");
    let e = err_of("north_star: a\ndefaults: {allowed_lateness: soon}\nkpis:\n  - {name: a, aggregate: count}\n");
    assert!(e.contains("allowed_lateness"), "{e}");
    let c = Catalog::parse(
        "north_star: a\ndefaults: {allowed_lateness: 0s}\nkpis:\n  - {name: a, aggregate: count}\n",
    )
    .expect("valid");
    assert_eq!(c.allowed_lateness_ms, Some(0));
}

const PEOPLE: &str = r#"
north_star: signups
defaults: {windows: [1m, 1h, 1d]}
kpis:
  - name: signups
    aggregate: count
    filter: {event: Signed Up}
    segments: [context.os.name]
    owner: growth
    runbook: https://wiki.example.com/signups
    alerts:
      - {below: 5, window: 1h}
      - {above: 500, window: 1m, on: open, severity: critical, for: 1m}
      - {week_over_week: {drop_percent: 30}, window: 1d, min_volume: 50}
      - {anomaly: true, window: 1h, min_volume: 20, by_segment: true}
      - {anomaly: false, window: 1h}
  - name: revenue
    aggregate: {sum: properties.revenue}
    format: currency
    unit: EUR
  - name: load_time
    aggregate: {sum: properties.ms}
    format: duration
    unit: ms
"#;

#[test]
fn people_fields_and_alerts() {
    let c = Catalog::parse(PEOPLE).expect("valid");
    let s = &c.kpis[0];
    assert_eq!(s.presentation.owner.as_deref(), Some("growth"));
    assert!(s.presentation.runbook_is_url());
    assert_eq!(s.alerts.len(), 4, "anomaly: false adds nothing");
    assert_eq!(s.alerts[0].kind, AlertKind::Below { value: 5.0 });
    assert_eq!(s.alerts[0].severity, Severity::Warning);
    assert_eq!(s.alerts[0].window, 1);
    assert_eq!(
        s.alerts[1].kind,
        AlertKind::Above {
            value: 500.0,
            open: true
        }
    );
    assert_eq!(s.alerts[1].severity, Severity::Critical);
    assert_eq!(s.alerts[1].for_ms, 60_000);
    assert_eq!(
        s.alerts[2].kind,
        AlertKind::WeekOverWeek {
            drop_percent: Some(30.0),
            rise_percent: None
        }
    );
    assert_eq!(s.alerts[2].min_volume, 50.0);
    assert_eq!(s.alerts[3].kind, AlertKind::Anomaly { z: 3.0, weeks: 4 });
    assert_eq!(
        s.alerts[3].severity,
        Severity::Info,
        "anomalies do not page"
    );
    assert!(s.alerts[3].by_segment);
    assert_eq!(c.kpis[1].presentation.format, Format::Currency);
    assert_eq!(c.kpis[2].presentation.unit.as_deref(), Some("ms"));
}

#[test]
fn invalid_alerts_and_people_fields_are_refused() {
    let kpi = |extra: &str| {
        format!("north_star: a\ndefaults: {{windows: [1m, 1h, 11m]}}\nkpis:\n  - {{name: a, aggregate: count, {extra}}}\n  - {{name: s, aggregate: {{sum: properties.x}}, {extra}}}\n")
    };
    for (extra, needle) in [
        (
            "alerts: [{below: 1, window: 1d}]",
            "not one of the KPI's windows",
        ),
        ("alerts: [{below: 1, above: 2, window: 1h}]", "exactly one"),
        ("alerts: [{window: 1h}]", "exactly one"),
        (
            "alerts: [{below: 1, window: 1h, on: open}]",
            "only for `above`",
        ),
        (
            "alerts: [{below: 1, window: 1h, on: later}]",
            "final or open",
        ),
        (
            "alerts: [{week_over_week: {}, window: 1h}]",
            "drop_percent or rise_percent",
        ),
        (
            "alerts: [{week_over_week: {drop_percent: -3}, window: 1h}]",
            "> 0",
        ),
        (
            "alerts: [{anomaly: true, window: 11m}]",
            "does not divide a week",
        ),
        ("alerts: [{anomaly: {z: 0}, window: 1h}]", "z > 0"),
        (
            "alerts: [{below: 1, window: 1h, by_segment: true}]",
            "by_segment",
        ),
        ("alerts: [{below: 1, window: 1h, for: later}]", "for"),
        (
            "alerts: [{below: 1, window: 1h, severity: page}]",
            "severity",
        ),
        ("format: currency", "ISO 4217"),
        ("format: currency, unit: euro", "ISO 4217"),
        ("format: duration, unit: days", "ms, s, m or h"),
        ("format: fancy", "format"),
    ] {
        let e = err_of(&kpi(extra));
        assert!(e.contains(needle), "{extra}: {e}");
    }
    // An upper bound on the open window needs a value that can only grow.
    let e = err_of(
        "north_star: s\nkpis:\n  - {name: s, aggregate: {sum: properties.x}, windows: [1h], alerts: [{above: 1, window: 1h, on: open}]}\n",
    );
    assert!(e.contains("can only grow"), "{e}");
}

#[test]
fn series_bound_follows_the_caps() {
    let c = Catalog::parse(EXAMPLE).expect("valid");
    let b = c.series_bound();
    // signups: 2 windows × ((3 + 2) + 1 total); revenue: 1 window × 1 (no segments).
    assert_eq!(b.per_kpi[0], ("signups".to_string(), 12));
    assert_eq!(b.per_kpi[3], ("revenue".to_string(), 1));
    assert_eq!(b.segment_series, 12 * 3 + 1 + 1);
    assert_eq!(b.window_series, 2 + 2 + 2 + 1 + 1);
    assert_eq!(b.total(), 38 * 3 + 8 * 7);
}
