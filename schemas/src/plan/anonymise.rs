//! An event anonymised for want of consent (the processor's `plan_policies.consent_refused =
//! "anonymise"`), without IO.
//!
//! Contract: pure; what is kept cannot tell who the person was, by a whitelist: the shape's
//! planned properties the plan does not class as PII, and the declared `context` fields it does
//! not class as PII (everything else of `context` — IP address, user agent, device ids, library —
//! goes); traits are emptied. The caller removes the user id and replaces the anonymous id by
//! [`ANONYMOUS_ID`] (the envelope needs one; a constant links no two events), and clears group
//! and previous ids. An event without a planned shape keeps no property.

use serde_json::{Map, Value};

use super::parse::{Plan, Shape};
use crate::json_path::lookup_raw;
use crate::EventType;

/// The anonymous id of every anonymised event.
pub const ANONYMOUS_ID: &str = "anonymous";

/// The parts of an anonymised event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Anonymised {
    pub properties: String,
    pub context: String,
}

fn shape<'p>(plan: &'p Plan, kind: EventType, name: Option<&str>) -> Option<&'p Shape> {
    match kind {
        EventType::Track => plan.events.get(name?),
        EventType::Page => plan.page.as_ref(),
        EventType::Screen => plan.screen.as_ref(),
        EventType::Identify => plan.identify.as_ref(),
        EventType::Group | EventType::Alias => None,
    }
}

/// The event's properties and context, anonymised.
pub fn anonymise(
    plan: &Plan,
    kind: EventType,
    name: Option<&str>,
    properties: &str,
    context: &str,
) -> Anonymised {
    let mut props = Map::new();
    if let (Some(shape), Ok(Value::Object(given))) = (
        shape(plan, kind, name).filter(|_| kind != EventType::Identify),
        serde_json::from_str::<Value>(properties),
    ) {
        for (k, v) in given {
            let plain = plan.property(&k).is_some_and(|p| p.def.pii.is_none());
            if shape.fields.contains_key(&k) && plain {
                props.insert(k, v);
            }
        }
    }
    let mut ctx = Value::Object(Map::new());
    for ((_, p), steps) in plan.context.iter().zip(&plan.context_steps) {
        if p.def.pii.is_some() {
            continue;
        }
        let Some(raw) = lookup_raw(context, steps) else {
            continue;
        };
        let Ok(v) = serde_json::from_str::<Value>(raw) else {
            continue;
        };
        insert(&mut ctx, steps, v);
    }
    Anonymised {
        properties: Value::Object(props).to_string(),
        context: ctx.to_string(),
    }
}

/// Puts `v` at `steps` below `root`, making the objects on the way.
fn insert(root: &mut Value, steps: &[String], v: Value) {
    let Some((last, parents)) = steps.split_last() else {
        return;
    };
    let mut obj = root;
    for s in parents {
        let Value::Object(map) = obj else { return };
        obj = map
            .entry(s.clone())
            .or_insert_with(|| Value::Object(Map::new()));
    }
    if let Value::Object(map) = obj {
        map.insert(last.clone(), v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = include_str!("../../../deploy/tracking-plan.yaml");

    #[test]
    fn only_planned_non_personal_values_stay() {
        let plan = Plan::parse(EXAMPLE).expect("plan");
        let out = anonymise(
            &plan,
            EventType::Track,
            Some("Invited Teammate"),
            r#"{"plan":"pro","invitee_email":"bob@example.com","note":"from Jane Doe"}"#,
            r#"{"os":{"name":"iOS","version":"17"},"ip":"10.1.2.0","userAgent":"x",
                "device":{"advertisingId":"ad-1"},"library":{"name":"a"}}"#,
        );
        let props: Value = serde_json::from_str(&out.properties).expect("json");
        assert_eq!(props, serde_json::json!({"plan": "pro"}));
        let ctx: Value = serde_json::from_str(&out.context).expect("json");
        // Declared and not personal (the plan declares library.name too); the rest goes.
        assert_eq!(
            ctx,
            serde_json::json!({"os": {"name": "iOS"}, "library": {"name": "a"}})
        );
        let unplanned = anonymise(&plan, EventType::Track, Some("x"), r#"{"a":1}"#, "{}");
        assert_eq!(unplanned.properties, "{}");
    }
}
