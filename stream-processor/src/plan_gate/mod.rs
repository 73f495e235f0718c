//! The tracking plan applied to events that passed the envelope's validation: each is allowed,
//! flagged or quarantined by the configured policies, and every problem is counted.
//!
//! Contract:
//! - Never a silent drop: [`PlanGate::judge`] returns [`Verdict::Quarantine`] (the caller
//!   dead-letters the record with its failure type and every problem: `naming` when a quarantined
//!   problem is a badly named event or property, `unknown_event` when the event is unplanned,
//!   `schema_violation` otherwise), or [`Verdict::Pass`] with the plan
//!   stamp (`id@version`, a header on the clean record) and, when the event is flagged, the
//!   flagged problems (a header too, so the lake can mark the row).
//! - The outcome of an event is the strictest policy among its violations
//!   (`quarantine` > `flag` > `allow`); each violation is counted once in
//!   `northstar_processor_plan_violations_total` with that outcome, and each event once in
//!   `northstar_processor_plan_events_total`.
//! - An event whose shape's consent purpose the person did not grant
//!   (`context.consent.categoryPreferences`, else the plan's default) is [`Verdict::Withheld`]:
//!   counted by purpose (`northstar_processor_consent_withheld_total`) and as the `withheld`
//!   outcome, and not checked further; the caller writes no clean record and only an
//!   accounting dead letter without the event's bytes, key or identity.
//! - A shadow plan is checked side by side with the same policies and only counted
//!   (`…_plan_shadow_*`): it never changes what happens to an event.
//! - Labels are bounded by the plan: `event` is a planned event's name or the message type,
//!   else `unplanned`; `property` is a path the plan declares, else `unplanned`.

use northstar_schemas::failure::{FailureType, Problem};
use northstar_schemas::plan::model::PiiAction;
use northstar_schemas::plan::pii::{self, PiiKey};
use northstar_schemas::plan::{Plan, PlanError, Violation, ViolationKind};
use northstar_schemas::{headers, Event, EventType};
use rdkafka::message::{Header, OwnedHeaders};
use serde::{Deserialize, Serialize};

use crate::metrics;

/// What a kind of plan problem does to the event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Policy {
    /// Kept as is (still counted).
    Allow,
    /// Kept, counted and marked (the clean record's `northstar.plan.flags` header).
    Flag,
    /// Dead-lettered with the violations, kept out of the KPIs and the lake until replayed.
    Quarantine,
}

/// What happens to an event whose consent purpose was not granted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConsentRefused {
    /// Dropped from the KPIs, the clean topic and the lake; an accounting dead letter only.
    #[default]
    Withhold,
    /// Kept without anything that tells who it was (`northstar_schemas::plan::anonymise`):
    /// counted in the KPIs, written to the lake under the anonymous id `anonymous`.
    Anonymise,
}

/// The policies of the four kinds of problems, and of refused consent (`[plan_policies]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PlanPolicies {
    /// A track event whose name the plan does not define.
    pub unknown_event: Policy,
    /// A property the event's plan does not list, where no others are allowed.
    pub unknown_property: Policy,
    /// An unplanned event, property or trait whose name breaks the plan's naming rules (a
    /// typo such as `signed_up` for `Signed Up`).
    pub naming: Policy,
    /// Every other violation: missing, wrong type, enum, bounds, pattern, format.
    pub violation: Policy,
    /// An event whose consent purpose the person did not grant: `withhold` or `anonymise`.
    pub consent_refused: ConsentRefused,
}

impl Default for PlanPolicies {
    fn default() -> Self {
        Self {
            unknown_event: Policy::Flag,
            unknown_property: Policy::Flag,
            naming: Policy::Quarantine,
            violation: Policy::Quarantine,
            consent_refused: ConsentRefused::Withhold,
        }
    }
}

impl PlanPolicies {
    pub fn of(&self, kind: ViolationKind) -> Policy {
        use northstar_schemas::plan::PolicyClass as C;
        match kind.policy_class() {
            C::UnknownEvent => self.unknown_event,
            C::UnknownProperty => self.unknown_property,
            C::Naming => self.naming,
            C::Violation => self.violation,
        }
    }
}

/// What happens to one event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict<'a> {
    /// No plan is enforced.
    Unchecked,
    Pass {
        /// `id@version` of the plan the event was checked against.
        stamp: &'a str,
        /// `kind:path` of each flagged problem, comma-separated (`None`: nothing flagged).
        flags: Option<String>,
    },
    Quarantine {
        /// `naming`, `unknown_event` or `schema_violation`, by the quarantined violations.
        failure_type: FailureType,
        /// The first quarantined violation's kind (the dead letter's reason code).
        reason: &'static str,
        /// Every violation (the flagged and allowed ones too).
        problems: Vec<Problem>,
    },
    /// The person did not consent to the event's purpose: it is dropped from the KPIs, the
    /// clean topic and the lake, and counted; its dead letter only accounts for it.
    Withheld {
        purpose: &'a str,
        /// What `context.consent.categoryPreferences.<purpose>` said (`None`: nothing, the
        /// plan's default applied).
        said: Option<String>,
    },
    /// The person did not consent and the policy is to anonymise: the caller applies
    /// [`PlanGate::anonymise`] and keeps the event, stamped and flagged
    /// `consent_anonymised:<purpose>`.
    Anonymise { stamp: &'a str, purpose: &'a str },
}

struct Loaded {
    plan: Plan,
    stamp: String,
    /// The outcome counters, looked up once: passed, allowed, flagged, quarantined, withheld,
    /// anonymised.
    outcomes: [prometheus::IntCounter; 6],
}

/// The outcome labels of `northstar_processor_plan_events_total`, in the order of
/// [`Loaded::outcomes`].
pub const OUTCOMES: [&str; 6] = [
    "passed",
    "allowed",
    "flagged",
    "quarantined",
    "withheld",
    "anonymised",
];
/// The index of `withheld` in [`OUTCOMES`].
const WITHHELD: usize = 4;
/// The index of `anonymised` in [`OUTCOMES`].
const ANONYMISED: usize = 5;

fn outcome_index(outcome: Option<Policy>) -> usize {
    match outcome {
        None => 0,
        Some(Policy::Allow) => 1,
        Some(Policy::Flag) => 2,
        Some(Policy::Quarantine) => 3,
    }
}

impl Loaded {
    fn new(plan: Plan, counter: &prometheus::IntCounterVec) -> Self {
        let stamp = format!("{}@{}", plan.id, plan.version);
        let outcomes = OUTCOMES.map(|o| counter.with_label_values(&[o]));
        Self {
            plan,
            stamp,
            outcomes,
        }
    }
}

/// The enforced plan, the shadow plan, the policies and the PII key.
pub struct PlanGate {
    enforced: Option<Loaded>,
    shadow: Option<Loaded>,
    policies: PlanPolicies,
    pii_key: Option<PiiKey>,
    /// The member fingerprints of distinct-user KPIs, from the same key ring.
    members: crate::members::MemberKey,
}

/// A plan and key that cannot be used together.
#[derive(Debug, thiserror::Error)]
pub enum GateError {
    #[error(transparent)]
    Plan(#[from] PlanError),
    #[error(transparent)]
    Key(#[from] pii::PiiKeyError),
    #[error("the tracking plan hashes {0} (pii action `hash`) but no PII key is configured: set pii_key_file (NORTHSTAR_PII_KEY_FILE) or NORTHSTAR_PII_KEY to `v<version>:<base64 key of at least 32 bytes>`")]
    NoKey(String),
}

/// The first field the plan hashes, if any.
fn hashed_field(plan: &Plan) -> Option<String> {
    let hashed = |p: &northstar_schemas::plan::Property| {
        p.def.pii.is_some_and(|x| x.action == PiiAction::Hash)
    };
    let props = plan
        .dictionary
        .iter()
        .filter(|(_, p)| hashed(p))
        .map(|(n, _)| n.clone());
    let ctx = plan
        .context
        .iter()
        .filter(|(_, p)| hashed(p))
        .map(|(n, _)| format!("context.{n}"));
    props.chain(ctx).next()
}

/// Longest flags header, in bytes.
const MAX_TEXT: usize = 4096;

impl PlanGate {
    pub fn new(enforced: Option<Plan>, shadow: Option<Plan>, policies: PlanPolicies) -> Self {
        let gate = Self {
            enforced: enforced.map(|p| Loaded::new(p, &metrics::PLAN_EVENTS)),
            shadow: shadow.map(|p| Loaded::new(p, &metrics::PLAN_SHADOW_EVENTS)),
            policies,
            pii_key: None,
            members: crate::members::MemberKey::UNKEYED,
        };
        for (role, l) in [("enforced", &gate.enforced), ("shadow", &gate.shadow)] {
            if let Some(l) = l {
                let version = l.plan.version.to_string();
                metrics::PLAN_INFO
                    .with_label_values(&[role, &l.plan.id, &version])
                    .set(1);
            }
        }
        gate
    }

    /// The gate with `key` for the enforced plan's `hash` actions; refused when the plan hashes
    /// a field and there is no key.
    pub fn with_key(mut self, key: Option<PiiKey>) -> Result<Self, GateError> {
        if let (Some(field), None) = (
            self.enforced.as_ref().and_then(|l| hashed_field(&l.plan)),
            &key,
        ) {
            return Err(GateError::NoKey(field));
        }
        self.pii_key = key;
        Ok(self)
    }

    /// Loads the plans at these paths and the PII keys (a key file wins over the variable's
    /// text; the newest version hashes).
    pub fn load(
        enforced: Option<&std::path::Path>,
        shadow: Option<&std::path::Path>,
        policies: PlanPolicies,
        key_file: Option<&std::path::Path>,
        key_text: Option<&str>,
    ) -> Result<Self, GateError> {
        let enforced = enforced.map(Plan::load).transpose()?;
        let shadow = shadow.map(Plan::load).transpose()?;
        let ring = pii::PiiKeyring::load(key_file, key_text)?;
        let key = ring.as_ref().map(|r| r.current().clone());
        let mut gate = Self::new(enforced, shadow, policies).with_key(key)?;
        gate.members = crate::members::MemberKey::from_ring(ring.as_ref());
        Ok(gate)
    }

    /// Applies the enforced plan's PII actions to `e` (hash, drop); whether anything changed.
    pub fn pseudonymise(&self, e: &mut Event) -> bool {
        let Some(l) = &self.enforced else {
            return false;
        };
        let name = match e.kind {
            EventType::Track => e.event.as_deref(),
            _ => e.name.as_deref(),
        };
        // `with_key` refused a plan that hashes without a key, so `NoKey` cannot happen here;
        // were it to, nothing would be changed and the event would still be dead-lettered below.
        let Ok(out) = pii::apply(
            &l.plan,
            self.pii_key.as_ref(),
            e.kind,
            name,
            &e.properties,
            &e.traits,
            &e.context,
        ) else {
            return false;
        };
        metrics::PII_HASHED.inc_by(u64::from(out.hashed));
        metrics::PII_DROPPED.inc_by(u64::from(out.dropped));
        let changed = out.changed();
        if let Some(p) = out.properties {
            e.properties = p;
        }
        if let Some(t) = out.traits {
            e.traits = t;
        }
        if let Some(c) = out.context {
            e.context = c;
        }
        changed
    }

    /// How distinct-user KPIs fingerprint user ids (keyed when a PII key is configured).
    pub fn members(&self) -> crate::members::MemberKey {
        self.members
    }

    /// The enforced plan, as a failure record names it.
    pub fn plan_ref(&self) -> Option<northstar_schemas::failure::PlanRef> {
        self.enforced
            .as_ref()
            .map(|l| northstar_schemas::failure::PlanRef {
                id: l.plan.id.clone(),
                version: l.plan.version.to_string(),
            })
    }

    /// Removes from `e` everything that tells who it was (the consent policy `anonymise`): the
    /// user, group and previous ids, traits, and every property and context field the plan
    /// does not declare as not personal; the anonymous id becomes `anonymous`.
    pub fn anonymise(&self, e: &mut Event) {
        use northstar_schemas::plan::anonymise::{anonymise, ANONYMOUS_ID};
        let Some(l) = &self.enforced else {
            return;
        };
        let name = match e.kind {
            EventType::Track => e.event.as_deref(),
            _ => e.name.as_deref(),
        };
        let out = anonymise(&l.plan, e.kind, name, &e.properties, &e.context);
        (e.properties, e.context) = (out.properties, out.context);
        e.traits = "{}".into();
        e.user_id = None;
        e.anonymous_id = Some(ANONYMOUS_ID.into());
        e.group_id = None;
        e.previous_id = None;
    }

    /// The enforced plan's `id@version`.
    pub fn stamp(&self) -> Option<&str> {
        self.enforced.as_ref().map(|l| l.stamp.as_str())
    }

    /// Checks one event against the shadow plan (counted only) and the enforced plan.
    pub fn judge(&self, e: &Event) -> Verdict<'_> {
        let name = match e.kind {
            EventType::Track => e.event.as_deref(),
            _ => e.name.as_deref(),
        };
        let withheld = |plan: &Plan| {
            plan.consent(e.kind, name, &e.context)
                .filter(|c| !c.given)
                .map(|c| c.purpose.to_string())
        };
        if let Some(shadow) = &self.shadow {
            if withheld(&shadow.plan).is_some() {
                shadow.outcomes[WITHHELD].inc();
            } else {
                let (outcome, violations) = self.outcome(&shadow.plan, e);
                let would = OUTCOMES[outcome_index(outcome)];
                shadow.outcomes[outcome_index(outcome)].inc();
                count(
                    &metrics::PLAN_SHADOW_VIOLATIONS,
                    &shadow.plan,
                    e,
                    &violations,
                    would,
                );
            }
        }
        let Some(l) = &self.enforced else {
            return Verdict::Unchecked;
        };
        let name = match e.kind {
            EventType::Track => e.event.as_deref(),
            _ => e.name.as_deref(),
        };
        if let Some(c) = l
            .plan
            .consent(e.kind, name, &e.context)
            .filter(|c| !c.given)
        {
            if self.policies.consent_refused == ConsentRefused::Anonymise {
                l.outcomes[ANONYMISED].inc();
                metrics::CONSENT_ANONYMISED
                    .with_label_values(&[c.purpose])
                    .inc();
                return Verdict::Anonymise {
                    stamp: &l.stamp,
                    purpose: c.purpose,
                };
            }
            l.outcomes[WITHHELD].inc();
            metrics::CONSENT_WITHHELD
                .with_label_values(&[c.purpose])
                .inc();
            return Verdict::Withheld {
                purpose: c.purpose,
                said: c.said.map(str::to_string),
            };
        }
        let (outcome, violations) = self.outcome(&l.plan, e);
        let label = OUTCOMES[outcome_index(outcome)];
        l.outcomes[outcome_index(outcome)].inc();
        count(&metrics::PLAN_VIOLATIONS, &l.plan, e, &violations, label);
        match outcome {
            Some(Policy::Quarantine) => self.quarantine(&violations),
            Some(Policy::Flag) => Verdict::Pass {
                stamp: &l.stamp,
                flags: Some(joined(
                    violations
                        .iter()
                        .filter(|v| self.policies.of(v.kind) == Policy::Flag)
                        .map(|v| format!("{}:{}", v.kind.as_str(), v.path)),
                    ",",
                )),
            },
            Some(Policy::Allow) | None => Verdict::Pass {
                stamp: &l.stamp,
                flags: None,
            },
        }
    }

    /// The verdict on an event with a quarantined violation among `violations`.
    fn quarantine(&self, violations: &[Violation]) -> Verdict<'static> {
        let quarantined = || {
            violations
                .iter()
                .filter(|v| self.policies.of(v.kind) == Policy::Quarantine)
        };
        let failure_type = if quarantined().any(|v| v.kind == ViolationKind::InvalidName) {
            FailureType::Naming
        } else if quarantined().any(|v| v.kind == ViolationKind::UnknownEvent) {
            FailureType::UnknownEvent
        } else {
            FailureType::SchemaViolation
        };
        Verdict::Quarantine {
            failure_type,
            reason: quarantined()
                .next()
                .map_or("plan_violation", |v| v.kind.as_str()),
            problems: violations.iter().map(Violation::to_problem).collect(),
        }
    }

    /// The strictest policy among the event's violations (`None`: no violation), and them.
    fn outcome(&self, plan: &Plan, e: &Event) -> (Option<Policy>, Vec<Violation>) {
        let name = match e.kind {
            EventType::Track => e.event.as_deref(),
            _ => e.name.as_deref(),
        };
        let checked = plan.check(e.kind, name, &e.properties, &e.traits, &e.context);
        let worst = checked
            .violations
            .iter()
            .map(|v| self.policies.of(v.kind))
            .max();
        (worst, checked.violations)
    }
}

/// `base` with the plan headers of a passing verdict ([`headers::PLAN`], [`headers::PLAN_FLAGS`]).
pub fn with_plan_headers(base: OwnedHeaders, verdict: &Verdict<'_>) -> OwnedHeaders {
    let Verdict::Pass { stamp, flags } = verdict else {
        return base;
    };
    let base = base.insert(Header {
        key: headers::PLAN,
        value: Some(*stamp),
    });
    match flags {
        Some(f) => base.insert(Header {
            key: headers::PLAN_FLAGS,
            value: Some(f.as_str()),
        }),
        None => base,
    }
}

/// Texts joined by `sep`, cut at [`MAX_TEXT`] bytes (on a character boundary, with `…`).
fn joined(parts: impl Iterator<Item = String>, sep: &str) -> String {
    let mut out = String::new();
    for part in parts {
        if !out.is_empty() {
            out.push_str(sep);
        }
        out.push_str(&part);
        if northstar_schemas::failure::cut(&mut out, MAX_TEXT) {
            break;
        }
    }
    out
}

/// The `event` label: a planned event's name, the message type for other kinds, else
/// `unplanned`.
fn event_label<'a>(plan: &Plan, e: &'a Event) -> &'a str {
    match e.kind {
        EventType::Track => match e.event.as_deref() {
            Some(n) if plan.events.contains_key(n) => n,
            _ => "unplanned",
        },
        other => other.as_str(),
    }
}

/// The `property` label: a path whose first name the plan declares, else `unplanned`.
fn property_label<'a>(plan: &Plan, path: &'a str) -> &'a str {
    let declared = match path.split_once('.') {
        None => true, // `event`, `properties`, `traits`: the part itself
        Some(("context", rest)) => plan.context.contains_key(rest),
        Some((_, rest)) => plan.dictionary.contains_key(rest),
    };
    if declared {
        path
    } else {
        "unplanned"
    }
}

fn count(
    counter: &prometheus::IntCounterVec,
    plan: &Plan,
    e: &Event,
    violations: &[Violation],
    action: &str,
) {
    let event = event_label(plan, e);
    for v in violations {
        let property = property_label(plan, &v.path);
        counter
            .with_label_values(&[event, property, v.kind.as_str(), action])
            .inc();
    }
}

#[cfg(test)]
mod tests;
