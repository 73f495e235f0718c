use northstar_schemas::Event;
use serde_json::json;

use super::*;
use northstar_schemas::catalog::ALL;

/// The filters the evaluation tests apply (indexes 0, 1 and 2).
const EXAMPLE: &str = r#"
north_star: signups
kpis:
  - {name: signups, filter: {event: Signed Up}, aggregate: count, segments: [context.os.name]}
  - name: upgrades
    filter: {event: Upgraded, where: [{field: properties.plan, op: in, value: [pro, team]}]}
    aggregate: count
    segments: [context.os.name]
  - name: revenue
    filter: {types: [track], where: [{field: properties.revenue, op: gt, value: 0}]}
    aggregate: {sum: properties.revenue}
"#;

fn event(name: &str, props: serde_json::Value, os: &str) -> Event {
    let context = json!({"os": {"name": os}}).to_string();
    let mut e = crate::test_events::track(name, "u", "m", &context, &props.to_string());
    e.source_id = "s".into();
    e
}

#[test]
fn filters_and_segments_evaluate() {
    let c = Catalog::parse(EXAMPLE).expect("valid");
    let up = event("Upgraded", json!({"plan": "team", "revenue": 12.5}), "iOS");
    let mut v = EventView::new(&up);
    assert!(!c.kpis[0].filter.matches(&mut v));
    assert!(c.kpis[1].filter.matches(&mut v));
    assert!(c.kpis[2].filter.matches(&mut v));
    assert_eq!(v.segment_value(&c.kpis[1].segments[0].field), "iOS");
    let free = event("Upgraded", json!({"plan": "free", "revenue": 0}), "Android");
    let mut v = EventView::new(&free);
    assert!(!c.kpis[1].filter.matches(&mut v));
    assert!(!c.kpis[2].filter.matches(&mut v), "revenue > 0");
    assert_eq!(
        v.segment_value(&FieldPath::parse("context.device.type").expect("path")),
        NONE
    );
    // A client cannot forge the total or the fold: marker spellings are escaped.
    let forged = Event {
        properties: r#"{"plan": "__all__", "tier": "__o\u0074her__"}"#.into(),
        ..event("Upgraded", json!({}), ALL)
    };
    let mut v = EventView::new(&forged);
    assert_eq!(v.segment_value(&c.kpis[1].segments[0].field), "___all__");
    let plan = FieldPath::parse("properties.plan").expect("path");
    let tier = FieldPath::parse("properties.tier").expect("path");
    let mut v = EventView::new(&forged);
    assert_eq!(v.segment_value(&plan), "___all__");
    assert_eq!(
        v.segment_value(&tier),
        "___other__",
        "escaped in the JSON text too"
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
