use northstar_schemas::{Event, EventType};
use serde_json::json;

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

fn event(name: &str, props: serde_json::Value, os: &str) -> Event {
    Event {
        kind: EventType::Track,
        message_id: "m".into(),
        user_id: Some("u".into()),
        anonymous_id: None,
        event: Some(name.into()),
        name: None,
        group_id: None,
        previous_id: None,
        timestamp: 0,
        original_timestamp: None,
        sent_at: None,
        received_at: 0,
        context: json!({"os": {"name": os}}).to_string(),
        properties: props.to_string(),
        traits: "{}".into(),
        integrations: "{}".into(),
        source_id: "s".into(),
    }
}

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
}

#[test]
fn the_shipped_example_catalog_is_valid() {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../deploy/kpi-catalog.yaml"
    ))
    .expect("deploy/kpi-catalog.yaml");
    Catalog::parse(&text).expect("the example catalog validates");
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
fn filters_and_segments_evaluate() {
    let c = Catalog::parse(EXAMPLE).expect("valid");
    let up = event("Upgraded", json!({"plan": "team", "revenue": 12.5}), "iOS");
    let mut v = EventView::new(&up);
    assert!(!c.kpis[0].filter.matches(&mut v));
    assert!(c.kpis[1].filter.matches(&mut v));
    assert!(c.kpis[3].filter.matches(&mut v));
    assert_eq!(v.segment_value(&c.kpis[1].segments[0].field), "iOS");
    let free = event("Upgraded", json!({"plan": "free", "revenue": 0}), "Android");
    let mut v = EventView::new(&free);
    assert!(!c.kpis[1].filter.matches(&mut v));
    assert!(!c.kpis[3].filter.matches(&mut v), "revenue > 0");
    assert_eq!(
        v.segment_value(&FieldPath::parse("context.device.type").expect("path")),
        NONE
    );
}

#[test]
fn fixed_point_is_exact_for_decimals() {
    assert_eq!(fixed_point(&json!(12.5)), Some(12_500_000));
    assert_eq!(fixed_point(&json!("0.1")), Some(100_000));
    assert_eq!(fixed_point(&json!(-3)), Some(-3_000_000));
    assert_eq!(fixed_point(&json!(1.0000005)), Some(1_000_001));
    assert_eq!(fixed_point(&json!("abc")), None);
    assert_eq!(fixed_point(&json!(true)), None);
    let sum: i128 = (0..10).map(|_| fixed_point(&json!(0.1)).expect("n")).sum();
    assert_eq!(fixed_to_f64(sum), 1.0);
    assert_eq!(fixed_to_f64(-1_500_000), -1.5);
}

/// Segment values and sums read from the event's JSON text agree with reading the same field
/// through a full serde_json parse (numbers print as serde_json prints them).
#[test]
fn scalar_reads_agree_with_a_full_parse() {
    let mut props = serde_json::Map::new();
    let values = [
        json!("pro"),
        json!("with \"quotes\" and \\ and é"),
        json!(""),
        json!(42),
        json!(0),
        json!(-7),
        json!(12.5),
        json!(1.0000005),
        json!(-0.25),
        json!(1e21),
        json!(18_446_744_073_709_551_615_u64),
        json!(true),
        json!(false),
        json!({"a": 1}),
        json!([1]),
        json!(null),
        json!(" 3.5 "),
    ];
    for (i, v) in values.iter().enumerate() {
        props.insert(format!("f{i}"), v.clone());
    }
    let e = event("x", serde_json::Value::Object(props), "iOS");
    let fields: Vec<FieldPath> = (0..values.len())
        .map(|i| FieldPath::parse(&format!("properties.f{i}")).expect("path"))
        .collect();
    let mut view = EventView::new(&e);
    for (v, field) in values.iter().zip(&fields) {
        let expected_segment = match v {
            serde_json::Value::String(s) => s.clone(),
            serde_json::Value::Bool(b) => b.to_string(),
            serde_json::Value::Number(n) => n.to_string(),
            _ => NONE.to_string(),
        };
        assert_eq!(
            view.segment_value(field),
            expected_segment,
            "segment of {v}"
        );
        let sum = view.scalar(field).as_ref().and_then(scalar_fixed_point);
        assert_eq!(sum, fixed_point(v), "sum of {v}");
    }
    // Exact from the text: no binary rounding on the way.
    let e = event("x", json!({}), "iOS");
    let e = Event {
        properties: r#"{"r": 0.1234565, "big": 123456789012.345678}"#.into(),
        ..e
    };
    let mut view = EventView::new(&e);
    let r = FieldPath::parse("properties.r").expect("path");
    let big = FieldPath::parse("properties.big").expect("path");
    assert_eq!(
        view.scalar(&r).as_ref().and_then(scalar_fixed_point),
        Some(123_457)
    );
    assert_eq!(
        view.scalar(&big).as_ref().and_then(scalar_fixed_point),
        Some(123_456_789_012_345_678)
    );
}

#[test]
fn window_specs() {
    assert_eq!(WindowSpec::parse("15m").map(|w| w.millis), Some(900_000));
    assert_eq!(WindowSpec::parse("0m"), None);
    assert_eq!(WindowSpec::parse("1w"), None);
    let d = WindowSpec::parse("1d").expect("1d");
    assert_eq!(d.start(86_400_000 + 5), 86_400_000);
}
