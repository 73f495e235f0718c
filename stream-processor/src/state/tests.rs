use std::sync::Arc;

use northstar_schemas::{Event, EventType};
use serde_json::json;

use super::*;
use crate::catalog::Catalog;

const MIN: i64 = 60_000;
const LATE: i64 = 10 * MIN;
const T0: i64 = 100 * MIN;

const CATALOG: &str = r#"
north_star: users
defaults: {windows: [1m], max_segment_values: 2}
kpis:
  - {name: events, aggregate: count, segments: [event]}
  - {name: signups, filter: {event: Signed Up}, aggregate: count, segments: [context.os.name]}
  - {name: upgrades, filter: {event: Upgraded}, aggregate: count, segments: [context.os.name]}
  - {name: conversion, aggregate: {ratio: {numerator: upgrades, denominator: signups}}, segments: [context.os.name]}
  - {name: revenue, filter: {event: Upgraded}, aggregate: {sum: properties.revenue}, windows: [1m, 1h]}
  - {name: users, aggregate: distinct_users}
"#;

fn catalog() -> Arc<Catalog> {
    Arc::new(Catalog::parse(CATALOG).expect("catalog"))
}

fn ev(name: &str, user: &str, os: &str, revenue: f64) -> Event {
    Event {
        kind: EventType::Track,
        message_id: format!("{name}-{user}"),
        user_id: Some(user.into()),
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
        properties: json!({"revenue": revenue}).to_string(),
        traits: "{}".into(),
        integrations: "{}".into(),
        source_id: "web".into(),
    }
}

fn find<'a>(u: &'a [Update], kpi: usize, start: i64, segment: &[&str]) -> Option<&'a Update> {
    u.iter()
        .find(|x| x.kpi == kpi && x.start_ms == start && x.segment == segment && x.window_ms == MIN)
}

#[test]
fn duplicates_by_source_and_id() {
    let mut s = PartitionState::new(catalog(), LATE, 86_400);
    assert!(!s.is_duplicate("web", "m1", 0));
    assert!(s.is_duplicate("web", "m1", 1_000_000));
    assert!(!s.is_duplicate("ios", "m1", 0), "scoped by source");
}

#[test]
fn counts_sums_distinct_and_ratios() {
    let mut s = PartitionState::new(catalog(), LATE, 86_400);
    s.count(&ev("Signed Up", "a", "iOS", 0.0), T0 + 1);
    s.count(&ev("Signed Up", "b", "iOS", 0.0), T0 + 2);
    s.count(&ev("Upgraded", "a", "iOS", 12.5), T0 + 3);
    s.count(&ev("Upgraded", "a", "iOS", 0.1), T0 + 4);
    let u = s.drain_updates();
    assert_eq!(find(&u, 0, T0, &["Signed Up"]).map(|x| x.value), Some(2.0));
    assert_eq!(find(&u, 1, T0, &["iOS"]).map(|x| x.value), Some(2.0));
    assert_eq!(find(&u, 2, T0, &["iOS"]).map(|x| x.value), Some(2.0));
    let ratio = find(&u, 3, T0, &["iOS"]).expect("ratio emitted");
    assert_eq!(
        (ratio.value, ratio.numerator, ratio.denominator),
        (1.0, 2.0, 2.0)
    );
    assert_eq!(
        find(&u, 4, T0, &[]).map(|x| x.value),
        Some(12.6),
        "fixed-point sum"
    );
    assert!(u
        .iter()
        .any(|x| x.kpi == 4 && x.window_ms == 3_600_000 && x.value == 12.6));
    assert_eq!(
        find(&u, 5, T0, &[]).map(|x| x.value),
        Some(2.0),
        "distinct users a, b"
    );
    assert!(s.drain_updates().is_empty(), "nothing changed since");
}

#[test]
fn ratio_without_denominator_is_nan() {
    let mut s = PartitionState::new(catalog(), LATE, 86_400);
    s.count(&ev("Upgraded", "a", "Android", 1.0), T0);
    let u = s.drain_updates();
    let r = find(&u, 3, T0, &["Android"]).expect("ratio");
    assert!(r.value.is_nan() && r.numerator == 1.0 && r.denominator == 0.0);
}

#[test]
fn segment_values_past_the_cap_fold_into_other() {
    let mut s = PartitionState::new(catalog(), LATE, 86_400);
    assert!(s
        .count(&ev("Signed Up", "a", "iOS", 0.0), T0)
        .folded
        .is_empty());
    assert!(s
        .count(&ev("Signed Up", "b", "Android", 0.0), T0)
        .folded
        .is_empty());
    let c = s.count(&ev("Signed Up", "c", "Windows", 0.0), T0);
    assert_eq!(c.folded, vec![1], "third OS folds for signups (cap 2)");
    s.count(&ev("Signed Up", "d", "Linux", 0.0), T0);
    s.count(&ev("Signed Up", "e", "iOS", 0.0), T0);
    let u = s.drain_updates();
    assert_eq!(find(&u, 1, T0, &[OTHER]).map(|x| x.value), Some(2.0));
    assert_eq!(find(&u, 1, T0, &["iOS"]).map(|x| x.value), Some(2.0));
}

#[test]
fn late_events_update_within_lateness_then_drop() {
    let mut s = PartitionState::new(catalog(), LATE, 86_400);
    s.count(&ev("Signed Up", "a", "iOS", 0.0), T0 + 1);
    s.count(&ev("Signed Up", "b", "iOS", 0.0), T0 + MIN);
    s.drain_updates();
    let c = s.count(&ev("Signed Up", "c", "iOS", 0.0), T0 + 5);
    assert!(c.late_updated && c.late_dropped.is_empty());
    // Watermark passes T0's end + lateness: the T0 windows become final.
    s.count(&ev("Other", "x", "iOS", 0.0), T0 + MIN + LATE);
    let u = s.drain_updates();
    let fin = find(&u, 1, T0, &["iOS"]).expect("final signups");
    assert!(fin.is_final);
    assert_eq!(fin.value, 2.0);
    let r = find(&u, 3, T0, &["iOS"]).expect("final ratio");
    assert!(r.is_final && r.denominator == 2.0);
    let c = s.count(&ev("Signed Up", "d", "iOS", 0.0), T0 + 7);
    assert!(c.late_dropped.contains(&1) && c.late_dropped.contains(&0));
    assert_eq!((s.late_dropped(0), s.late_dropped(1)), (1, 1));
    assert!(
        s.drain_updates().iter().all(|x| x.start_ms != T0),
        "final windows are forgotten"
    );
    // The 1h revenue window of T0 is still open (its end is later).
    assert!(s.open_windows() > 0);
}

#[test]
fn deterministic_for_the_same_input() {
    let run = || {
        let mut s = PartitionState::new(catalog(), LATE, 86_400);
        let mut all = Vec::new();
        for i in 0..200i64 {
            let name = ["Signed Up", "Upgraded", "Viewed"][(i % 3) as usize];
            let os = ["iOS", "Android", "Windows", "Linux"][(i % 4) as usize];
            s.count(
                &ev(name, &format!("u{}", i % 17), os, (i % 7) as f64 / 4.0),
                T0 + i * 7_919 % (30 * MIN),
            );
            if i % 25 == 0 {
                all.extend(s.drain_updates().into_iter().map(|u| format!("{u:?}")));
            }
        }
        all
    };
    assert_eq!(run(), run());
}

#[test]
fn snapshot_restore_continues_identically() {
    let events: Vec<(Event, i64)> = (0..300i64)
        .map(|i| {
            let name = ["Signed Up", "Upgraded", "Viewed"][(i % 3) as usize];
            let os = ["iOS", "Android", "Windows", "Linux"][(i % 4) as usize];
            let mut e = ev(name, &format!("u{}", i % 23), os, (i % 9) as f64 / 4.0);
            e.message_id = format!("m{}", i % 250);
            e.received_at = (T0 + i * 1000) * 1000;
            (e, T0 + i * 104_729 % (40 * MIN))
        })
        .collect();
    let step = |s: &mut PartitionState, (e, ts): &(Event, i64)| {
        if !s.is_duplicate(&e.source_id, &e.message_id, e.received_at) {
            s.count(e, *ts);
        }
    };
    // Straight through.
    let mut a = PartitionState::new(catalog(), LATE, 86_400);
    let mut out_a = Vec::new();
    for (i, x) in events.iter().enumerate() {
        step(&mut a, x);
        if i % 50 == 49 {
            out_a.extend(a.drain_updates().into_iter().map(|u| format!("{u:?}")));
        }
    }
    // Checkpoint after 150 events (right after an emission), restore, continue.
    let mut b = PartitionState::new(catalog(), LATE, 86_400);
    let mut out_b = Vec::new();
    for (i, x) in events.iter().enumerate().take(150) {
        step(&mut b, x);
        if i % 50 == 49 {
            out_b.extend(b.drain_updates().into_iter().map(|u| format!("{u:?}")));
        }
    }
    let bytes = postcard::to_allocvec(&b.snapshot()).expect("encode");
    let snap: StateSnapshot = postcard::from_bytes(&bytes).expect("decode");
    let mut c = PartitionState::restore(catalog(), LATE, 86_400, snap, true);
    for (i, x) in events.iter().enumerate().skip(150) {
        step(&mut c, x);
        if i % 50 == 49 {
            out_b.extend(c.drain_updates().into_iter().map(|u| format!("{u:?}")));
        }
    }
    assert_eq!(
        out_a, out_b,
        "restored state emits exactly what uninterrupted state emits"
    );
    assert_eq!(a.remembered_ids(), c.remembered_ids());
    let dropped = |s: &PartitionState| (0..4).map(|k| s.late_dropped(k)).collect::<Vec<_>>();
    assert!(
        dropped(&a).iter().sum::<u64>() > 0,
        "the input has late events"
    );
    assert_eq!(
        dropped(&a),
        dropped(&c),
        "late-dropped totals survive a restore"
    );
}
