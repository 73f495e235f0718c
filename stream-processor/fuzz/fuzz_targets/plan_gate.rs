//! Fuzzes plan-driven validation: any event — its kind and the first byte's policies chosen by
//! the input, then its name, properties, traits and context as text separated by `\x01` —
//! judged by the example tracking plan (with itself as the shadow plan) and pseudonymised.
//!
//! Invariants checked besides "never panics":
//! - every event is accounted for exactly once: one increment of one outcome of
//!   `northstar_processor_plan_events_total` (passed, allowed, flagged, quarantined, withheld);
//! - a quarantined event names a reason that is one of its problems, every problem has a path
//!   and a rule, and its failure record survives a JSON round trip;
//! - a withheld or anonymised event is one whose consent purpose the plan says was not given,
//!   and an anonymised one keeps no id and only JSON objects;
//! - a flagged event's flags are not empty;
//! - applying the plan's PII actions is idempotent, keeps JSON objects objects, and leaves no
//!   value of a hashed property in the clear.

#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use northstar_schemas::failure::{Failure, Source};
use northstar_schemas::plan::pii::{is_keyed_hash, PiiKey};
use northstar_schemas::plan::Plan;
use northstar_schemas::EventType;
use northstar_stream_processor::metrics::PLAN_EVENTS;
use northstar_stream_processor::plan_gate::{
    ConsentRefused, PlanGate, PlanPolicies, Policy, Verdict, OUTCOMES,
};

const PLAN: &str = include_str!("../../../deploy/tracking-plan.yaml");
const KEY: &str = "v3:S2V5IG9mIHRoZSBmdXp6IHRhcmdldCwgMzIgb3IgbW9yZSBieXRlcw==";

fn gates() -> &'static [PlanGate; 3] {
    static GATES: OnceLock<[PlanGate; 3]> = OnceLock::new();
    GATES.get_or_init(|| {
        let plan = || Plan::parse(PLAN).expect("the example plan");
        let key = PiiKey::parse(KEY).expect("key");
        let all = |p| PlanPolicies {
            unknown_event: p,
            unknown_property: p,
            naming: p,
            violation: p,
            consent_refused: ConsentRefused::Anonymise,
        };
        [
            PlanPolicies::default(),
            all(Policy::Quarantine),
            all(Policy::Flag),
        ]
        .map(|policies| {
            PlanGate::new(Some(plan()), Some(plan()), policies)
                .with_key(Some(key.clone()))
                .expect("gate")
        })
    })
}

fn outcomes() -> u64 {
    OUTCOMES
        .iter()
        .map(|o| PLAN_EVENTS.with_label_values(&[o]).get())
        .sum()
}

fn is_object(text: &str) -> bool {
    serde_json::from_str::<serde_json::Value>(text).is_ok_and(|v| v.is_object())
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let text = String::from_utf8_lossy(rest);
    let mut parts = text.splitn(4, '\u{1}');
    let name = parts.next().unwrap_or_default().to_string();
    let part = |p: Option<&str>| p.unwrap_or("{}").to_string();
    let (properties, traits, context) =
        (part(parts.next()), part(parts.next()), part(parts.next()));
    let kind = EventType::ALL[usize::from(selector & 7) % EventType::ALL.len()];
    let gate = &gates()[usize::from(selector >> 3) % 3];
    let mut e = northstar_schemas::synthetic::track("m", "u", "x", 0, "iOS", "free", 0.0);
    e.kind = kind;
    e.event = Some(name.clone());
    e.name = Some(name);
    (e.properties, e.traits, e.context) = (properties, traits, context);

    let before = outcomes();
    let verdict = gate.judge(&e);
    // The shadow plan counts in its own family: the enforced outcomes move by exactly one.
    assert_eq!(outcomes(), before + 1, "one outcome per event");
    match &verdict {
        Verdict::Quarantine {
            failure_type,
            reason,
            problems,
        } => {
            assert!(problems.iter().any(|p| p.reason == *reason), "{reason}");
            assert!(problems
                .iter()
                .all(|p| !p.path.is_empty() && !p.rule.is_empty()));
            let source = Source {
                topic: "events.raw".into(),
                partition: 0,
                offset: 0,
            };
            let f = Failure::new(*failure_type, "fuzz", source, problems.clone());
            assert_eq!(Failure::from_json(&f.to_json()).expect("round trip"), f);
        }
        Verdict::Withheld { purpose, .. } => {
            let plan = Plan::parse(PLAN).expect("plan");
            let name = match kind {
                EventType::Track => e.event.as_deref(),
                _ => e.name.as_deref(),
            };
            let consent = plan.consent(kind, name, &e.context).expect("a purpose");
            assert!(!consent.given && consent.purpose == *purpose);
        }
        Verdict::Pass { flags, .. } => assert!(flags.as_deref().is_none_or(|f| !f.is_empty())),
        Verdict::Anonymise { .. } => {
            let mut anon = e.clone();
            gate.anonymise(&mut anon);
            assert!(anon.user_id.is_none() && anon.anonymous_id.as_deref() == Some("anonymous"));
            assert!(is_object(&anon.properties) && is_object(&anon.context));
        }
        Verdict::Unchecked => panic!("a plan is enforced"),
    }
    drop(verdict);

    let objects = [&e.properties, &e.traits, &e.context].map(|t| is_object(t));
    let mut once = e.clone();
    gate.pseudonymise(&mut once);
    for (was, now) in objects
        .iter()
        .zip([&once.properties, &once.traits, &once.context])
    {
        assert!(!was || is_object(now), "an object stays an object: {now}");
    }
    if kind == EventType::Track && e.event.as_deref() == Some("Invited Teammate") {
        let props: serde_json::Value = serde_json::from_str(&once.properties).unwrap_or_default();
        if let Some(v) = props.get("invitee_email").filter(|v| !v.is_null()) {
            assert!(v.as_str().is_some_and(is_keyed_hash), "hashed: {v}");
        }
    }
    let mut twice = once.clone();
    assert!(!gate.pseudonymise(&mut twice), "idempotent");
    assert_eq!(twice, once);
});
