//! Unit tests of the plan gate (no IO).

use super::*;
use crate::test_events::track;

const PLAN: &str = include_str!("../../../deploy/tracking-plan.yaml");

fn gate(policies: PlanPolicies) -> PlanGate {
    PlanGate::new(Some(Plan::parse(PLAN).expect("plan")), None, policies)
}

#[test]
fn a_key_file_is_read_and_its_errors_never_show_it() {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("pii.key");
    std::fs::write(&path, "v1:short\n").expect("write");
    let e = PlanGate::load(None, None, PlanPolicies::default(), Some(&path), None)
        .err()
        .expect("refused");
    assert!(!e.to_string().contains("short"), "{e}");
}

fn event(name: &str, properties: &str) -> Event {
    track(name, "u1", "m1", "{}", properties)
}

#[test]
fn a_valid_event_passes_with_the_plan_stamp() {
    let g = gate(PlanPolicies::default());
    let v = g.judge(&event("Upgraded Plan", r#"{"plan":"pro","revenue":9}"#));
    assert_eq!(
        v,
        Verdict::Pass {
            stamp: "northstar-demo@1.0.0",
            flags: None
        }
    );
}

#[test]
fn the_strictest_policy_decides_and_every_problem_is_reported() {
    let g = gate(PlanPolicies::default());
    let e = event(
        "Upgraded Plan",
        r#"{"plan":"gold","revenue":9,"coupon":"X"}"#,
    );
    match g.judge(&e) {
        Verdict::Quarantine {
            failure_type,
            reason,
            problems,
        } => {
            assert_eq!(failure_type, FailureType::SchemaViolation);
            assert_eq!(reason, "not_in_enum");
            let paths: Vec<(&str, &str)> = problems
                .iter()
                .map(|p| (p.reason.as_str(), p.path.as_str()))
                .collect();
            assert_eq!(
                paths,
                [
                    ("not_in_enum", "properties.plan"),
                    ("unknown_property", "properties.coupon")
                ]
            );
            assert_eq!(problems[0].rule, "enum");
            assert_eq!(problems[0].actual, "\"gold\"");
        }
        other => panic!("{other:?}"),
    }
    let flagged = g.judge(&event(
        "Upgraded Plan",
        r#"{"plan":"pro","revenue":9,"coupon":"X"}"#,
    ));
    assert_eq!(
        flagged,
        Verdict::Pass {
            stamp: "northstar-demo@1.0.0",
            flags: Some("unknown_property:properties.coupon".into())
        }
    );
    let unknown = g.judge(&event("Exported Report", "{}"));
    assert_eq!(
        unknown,
        Verdict::Pass {
            stamp: "northstar-demo@1.0.0",
            flags: Some("unknown_event:event".into())
        }
    );
    assert!(
        matches!(
            g.judge(&event("signed_up", "{}")),
            Verdict::Quarantine {
                failure_type: FailureType::Naming,
                reason: "invalid_name",
                ..
            }
        ),
        "a typo of an event name is quarantined by default"
    );
}

#[test]
fn policies_are_configurable_per_kind() {
    let strict = PlanPolicies {
        unknown_event: Policy::Quarantine,
        ..PlanPolicies::default()
    };
    assert!(matches!(
        gate(strict).judge(&event("Exported Report", "{}")),
        Verdict::Quarantine {
            failure_type: FailureType::UnknownEvent,
            reason: "unknown_event",
            ..
        }
    ));
    let lax_names = PlanPolicies {
        naming: Policy::Flag,
        ..PlanPolicies::default()
    };
    assert_eq!(
        gate(lax_names).judge(&event("signed_up", "{}")),
        Verdict::Pass {
            stamp: "northstar-demo@1.0.0",
            flags: Some("invalid_name:event".into())
        }
    );
    let lax = PlanPolicies {
        violation: Policy::Allow,
        ..PlanPolicies::default()
    };
    let lax = gate(lax);
    let v = lax.judge(&event("Upgraded Plan", r#"{"plan":"gold","revenue":9}"#));
    assert_eq!(
        v,
        Verdict::Pass {
            stamp: "northstar-demo@1.0.0",
            flags: None
        }
    );
}

#[test]
fn a_shadow_plan_only_counts() {
    let shadow = Plan::parse(PLAN).expect("plan");
    let g = PlanGate::new(None, Some(shadow), PlanPolicies::default());
    let before = metrics::PLAN_SHADOW_EVENTS
        .with_label_values(&["quarantined"])
        .get();
    assert_eq!(
        g.judge(&event("Upgraded Plan", r#"{"plan":"gold"}"#)),
        Verdict::Unchecked
    );
    assert_eq!(
        metrics::PLAN_SHADOW_EVENTS
            .with_label_values(&["quarantined"])
            .get(),
        before + 1
    );
}

#[test]
fn a_plan_that_hashes_needs_a_key_and_hashes_with_it() {
    let plan = || Plan::parse(PLAN).expect("plan");
    let no_key = PlanGate::new(Some(plan()), None, PlanPolicies::default()).with_key(None);
    assert!(
        matches!(no_key, Err(GateError::NoKey(ref f)) if f == "email"),
        "{:?}",
        no_key.err()
    );
    let spec = format!("v7:{}", "A".repeat(44));
    let key = PiiKey::parse(&spec).expect("key");
    let gate = PlanGate::new(Some(plan()), None, PlanPolicies::default())
        .with_key(Some(key.clone()))
        .expect("gate");
    let mut e = event(
        "Invited Teammate",
        r#"{"plan":"pro","invitee_email":"bob@example.com"}"#,
    );
    assert!(gate.pseudonymise(&mut e));
    assert!(!e.properties.contains("bob@"), "{}", e.properties);
    assert!(
        e.properties.contains(&key.hash("bob@example.com")),
        "{}",
        e.properties
    );
    let mut clean = event("Upgraded Plan", r#"{"plan":"pro","revenue":9}"#);
    assert!(!gate.pseudonymise(&mut clean), "no PII: untouched");
    assert_eq!(clean.properties, r#"{"plan":"pro","revenue":9}"#);
}

#[test]
fn an_event_without_consent_for_its_purpose_is_withheld() {
    let g = gate(PlanPolicies::default());
    let mut e = event("Signed Up", r#"{"plan":"gold"}"#);
    e.context = r#"{"consent":{"categoryPreferences":{"analytics":false}}}"#.into();
    assert_eq!(
        g.judge(&e),
        Verdict::Withheld {
            purpose: "analytics",
            said: Some("false".into())
        },
        "withheld before any violation is acted on"
    );
    e.context = r#"{"consent":{"categoryPreferences":{"analytics":true}}}"#.into();
    assert!(matches!(g.judge(&e), Verdict::Quarantine { .. }));
}

#[test]
fn refused_consent_can_anonymise_instead() {
    let g = gate(PlanPolicies {
        consent_refused: ConsentRefused::Anonymise,
        ..PlanPolicies::default()
    });
    let mut e = event(
        "Invited Teammate",
        r#"{"plan":"pro","invitee_email":"bob@example.com"}"#,
    );
    e.context = r#"{"consent":{"categoryPreferences":{"analytics":false}},"ip":"10.0.0.0","os":{"name":"iOS"}}"#.into();
    assert_eq!(
        g.judge(&e),
        Verdict::Anonymise {
            stamp: "northstar-demo@1.0.0",
            purpose: "analytics"
        }
    );
    g.anonymise(&mut e);
    assert_eq!(
        (e.user_id.as_deref(), e.anonymous_id.as_deref()),
        (None, Some("anonymous"))
    );
    assert_eq!(e.properties, r#"{"plan":"pro"}"#);
    assert_eq!(e.context, r#"{"os":{"name":"iOS"}}"#);
    assert_eq!(e.traits, "{}");
}

#[test]
fn labels_are_bounded_by_the_plan() {
    let plan = Plan::parse(PLAN).expect("plan");
    assert_eq!(event_label(&plan, &event("Signed Up", "{}")), "Signed Up");
    assert_eq!(event_label(&plan, &event("x-7f3a", "{}")), "unplanned");
    assert_eq!(property_label(&plan, "properties.plan"), "properties.plan");
    assert_eq!(
        property_label(&plan, "properties.user_42_email"),
        "unplanned"
    );
    assert_eq!(property_label(&plan, "context.os.name"), "context.os.name");
    assert_eq!(property_label(&plan, "event"), "event");
}

#[test]
fn long_details_are_cut_on_a_character_boundary() {
    let text = joined(std::iter::repeat_n("é".repeat(100), 100), "; ");
    assert!(text.len() <= MAX_TEXT + '…'.len_utf8() && text.ends_with('…'));
}
