use super::*;
use crate::catalog::Catalog;
use crate::json_path::top_level;

const EXAMPLE: &str = include_str!("../../../deploy/tracking-plan.yaml");
const EXAMPLE_DOC: &str = include_str!("../../../deploy/tracking-plan.md");
const CATALOG: &str = include_str!("../../../deploy/kpi-catalog.yaml");

fn example() -> Plan {
    Plan::parse(EXAMPLE).expect("the example plan parses")
}

fn catalog() -> Catalog {
    Catalog::parse(CATALOG).expect("the example catalog parses")
}

/// A small plan; tests edit its text.
const BASE: &str = r#"
plan: {id: shop, version: 1.2.0}
naming:
  events: '^[A-Z][a-z]*( [A-Z][a-z]*)+$'
  properties: '^[a-z]+(_[a-z]+)*$'
consent:
  purposes: {analytics: KPIs}
properties:
  plan: {type: string, enum: [free, pro], required: true, description: Plan}
  revenue: {type: number, minimum: 0, description: Amount}
  items: {type: integer, description: Count}
events:
  - name: Order Completed
    description: An order was paid
    owner: shop
    consent: analytics
    properties:
      plan:
      revenue: {required: true}
      items:
"#;

fn plan(text: &str) -> Plan {
    Plan::parse(text).unwrap_or_else(|e| panic!("{e}\n{text}"))
}

fn edited(from: &str, to: &str) -> Plan {
    assert!(BASE.contains(from), "{from:?} is not in the base plan");
    plan(&BASE.replace(from, to))
}

fn invalid(text: &str) -> String {
    Plan::parse(text).expect_err("refused").to_string()
}

#[test]
fn the_example_plan_lints_clean_against_the_example_catalog() {
    let findings = lint(&example(), Some(&catalog()));
    assert!(findings.is_empty(), "{findings:#?}");
}

#[test]
fn the_rendered_example_is_up_to_date() {
    let rendered = markdown(&example(), Some(&catalog()));
    assert!(
        rendered == EXAMPLE_DOC,
        "deploy/tracking-plan.md is stale: run `cargo run -p northstar-schemas -- plan render \
         deploy/tracking-plan.yaml --catalog deploy/kpi-catalog.yaml --out deploy/tracking-plan.md`"
    );
}

#[test]
fn the_example_resolves_required_flags_from_the_dictionary_and_the_event() {
    let p = example();
    let upgraded = &p.events["Upgraded Plan"];
    assert!(upgraded.fields["plan"].required, "the dictionary's default");
    assert!(upgraded.fields["revenue"].required, "the event's own flag");
    assert!(
        !p.identify.as_ref().expect("identify").fields["plan"].required,
        "overridden"
    );
    assert_eq!(
        p.dictionary["email"].def.pii.map(|x| x.action),
        Some(model::PiiAction::Hash)
    );
}

#[test]
fn structural_mistakes_are_refused_with_their_place() {
    let e = invalid(&BASE.replace("      items:\n", "      colour:\n"));
    assert!(e.contains("colour") && e.contains("dictionary"), "{e}");
    let e = invalid(&BASE.replace("consent: analytics", "consent: ads"));
    assert!(
        e.contains("\"ads\"") && e.contains("consent.purposes"),
        "{e}"
    );
    let e = invalid(&BASE.replace("minimum: 0", "minimum: 5, maximum: 1"));
    assert!(
        e.contains("properties.revenue") && e.contains("above maximum"),
        "{e}"
    );
    let e = invalid(&BASE.replace("enum: [free, pro]", "enum: [free, 3]"));
    assert!(
        e.contains("properties.plan") && e.contains("not a string"),
        "{e}"
    );
    let e = invalid(&BASE.replace("type: integer,", "type: integer, pattern: '^1',"));
    assert!(
        e.contains("properties.items") && e.contains("strings"),
        "{e}"
    );
    let e = invalid(&BASE.replace("version: 1.2.0", "version: '1.2'"));
    assert!(
        e.contains("plan.version") && e.contains("semantic version"),
        "{e}"
    );
    let e = invalid(&BASE.replace("minimum: 0,", "minimun: 0,"));
    assert!(e.contains("minimun"), "an unknown key is refused: {e}");
    let twice =
        format!("{BASE}  - name: Order Completed\n    description: again\n    owner: shop\n");
    assert!(invalid(&twice).contains("planned twice"));
    let e = invalid(&BASE.replace("'^[a-z]+(_[a-z]+)*$'", "'^[a-z'"));
    assert!(
        e.contains("naming.properties") && e.contains("does not compile"),
        "{e}"
    );
}

fn errors(p: &Plan, c: Option<&Catalog>) -> Vec<String> {
    lint(p, c)
        .into_iter()
        .filter(|f| f.severity == Severity::Error)
        .map(|f| f.to_string())
        .collect()
}

#[test]
fn names_that_break_the_naming_rules_are_errors() {
    let p = edited("name: Order Completed", "name: order_completed");
    let e = errors(&p, None);
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(
        e[0].contains("\"order_completed\"") && e[0].contains("naming.events"),
        "{e:?}"
    );
    let p = plan(
        &BASE
            .replace("  items:", "  itemCount:")
            .replace("      items:", "      itemCount:"),
    );
    let e = errors(&p, None);
    assert!(
        e.iter()
            .any(|e| e.contains("\"itemCount\"") && e.contains("naming.properties")),
        "{e:?}"
    );
}

const SHOP_CATALOG: &str = r#"
north_star: orders
kpis:
  - name: orders
    description: Paid orders
    owner: shop
    filter: {event: Order Completed}
    aggregate: count
    segments: [properties.plan]
  - name: order_revenue
    description: Revenue
    owner: shop
    filter: {event: Order Completed}
    aggregate: {sum: properties.revenue}
    segments: [context.os.name]
"#;

#[test]
fn the_catalog_is_read_against_the_plan() {
    let listed = BASE.replace(
        "      items:\n",
        "      items:\n    kpis: [orders, order_revenue]\n",
    );
    let shop = Catalog::parse(SHOP_CATALOG).expect("catalog");
    let e = errors(&plan(&listed), Some(&shop));
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(
        e[0].contains("order_revenue")
            && e[0].contains("context.os.name")
            && e[0].contains("`context:`"),
        "{e:?}"
    );

    let with_context = listed.replace(
        "events:\n",
        "context:\n  os.name: {type: string}\nevents:\n",
    );
    assert!(errors(&plan(&with_context), Some(&shop)).is_empty());

    let renamed = with_context.replace("name: Order Completed", "name: Order Paid");
    let e = errors(&plan(&renamed), Some(&shop));
    assert!(
        e.iter().any(|e| e
            .contains("counts event \"Order Completed\", which the tracking plan does not define")),
        "{e:?}"
    );

    let string_revenue = with_context.replace(
        "revenue: {type: number, minimum: 0,",
        "revenue: {type: string,",
    );
    let e = errors(&plan(&string_revenue), Some(&shop));
    assert!(
        e.iter()
            .any(|e| e.contains("sums properties.revenue, a string")),
        "{e:?}"
    );

    let without_plan = with_context.replace("      plan:\n", "");
    let e = errors(&plan(&without_plan), Some(&shop));
    assert!(
        e.iter().any(|e| e.contains(
            "segment field properties.plan is not a property of event \"Order Completed\""
        )),
        "{e:?}"
    );

    let unknown_kpi = with_context.replace(
        "kpis: [orders, order_revenue]",
        "kpis: [orders, order_revenue, refunds]",
    );
    let e = errors(&plan(&unknown_kpi), Some(&shop));
    assert!(
        e.iter().any(|e| e.contains("lists KPI \"refunds\"")),
        "{e:?}"
    );

    let unlisted = with_context.replace("kpis: [orders, order_revenue]", "kpis: [orders]");
    let w = lint(&plan(&unlisted), Some(&shop));
    assert!(
        w.iter()
            .any(|f| f.severity == Severity::Warning && f.message.contains("order_revenue")),
        "{w:?}"
    );
}

fn impacts(old: &Plan, new: &Plan) -> Vec<(Impact, String)> {
    compare(old, new)
        .into_iter()
        .map(|c| (c.impact, format!("{}: {}", c.at, c.what)))
        .collect()
}

fn only(old: &Plan, new: &Plan, impact: Impact, needle: &str) {
    let found = impacts(old, new);
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].0, impact, "{found:?}");
    assert!(found[0].1.contains(needle), "{found:?}");
}

#[test]
fn changes_are_classed_compatible_or_breaking() {
    use Impact::{Breaking, Compatible};
    let old = plan(BASE);
    assert!(compare(&old, &old).is_empty());
    only(
        &old,
        &edited("enum: [free, pro]", "enum: [free, pro, team]"),
        Compatible,
        "enum values added: \"team\"",
    );
    only(
        &old,
        &edited("enum: [free, pro]", "enum: [free]"),
        Breaking,
        "enum values removed: \"pro\"",
    );
    only(
        &old,
        &edited("minimum: 0", "minimum: 1"),
        Breaking,
        "minimum",
    );
    only(
        &old,
        &edited("minimum: 0", "minimum: -1"),
        Compatible,
        "minimum",
    );
    only(
        &old,
        &edited("items: {type: integer", "items: {type: number"),
        Compatible,
        "type integer → number",
    );
    only(
        &old,
        &edited("revenue: {type: number", "revenue: {type: integer"),
        Breaking,
        "type number → integer",
    );
    only(
        &old,
        &edited("items: {type: integer", "items: {type: string"),
        Breaking,
        "type integer → string",
    );
    only(
        &old,
        &edited("description: Amount", "description: Amount paid"),
        Compatible,
        "description",
    );
    only(
        &old,
        &edited("revenue: {required: true}", "revenue:"),
        Compatible,
        "no longer required",
    );
    only(
        &old,
        &edited("      items:\n", "      items: {required: true}\n"),
        Breaking,
        "now required",
    );
    only(&old, &edited("      items:\n", ""), Breaking, "removed");
    only(
        &old,
        &edited(
            "    consent: analytics\n",
            "    consent: analytics\n    additional_properties: true\n",
        ),
        Compatible,
        "now allowed",
    );
    only(
        &old,
        &edited(
            "description: Count}",
            "description: Count, pii: {class: other, action: hash}}",
        ),
        Breaking,
        "PII action none → hash",
    );
    let extra =
        format!("{BASE}  - name: Order Refunded\n    description: refund\n    owner: shop\n");
    only(&old, &plan(&extra), Compatible, "added");
    only(&plan(&extra), &old, Breaking, "removed");
    let added_required = BASE
        .replace(
            "  items: {",
            "  coupon: {type: string, description: Code}\n  items: {",
        )
        .replace(
            "      items:\n",
            "      items:\n      coupon: {required: true}\n",
        );
    let found = impacts(&old, &plan(&added_required));
    assert!(
        found.contains(&(
            Breaking,
            "event \"Order Completed\" property \"coupon\": added as required".into()
        )),
        "{found:?}"
    );
    let added_optional = added_required.replace("coupon: {required: true}", "coupon:");
    let found = impacts(&old, &plan(&added_optional));
    assert!(found.iter().all(|(i, _)| *i == Compatible), "{found:?}");
}

#[test]
fn the_version_must_fit_the_changes() {
    let old = plan(BASE);
    let narrowed = BASE.replace("enum: [free, pro]", "enum: [free]");
    let minor = plan(&narrowed.replace("1.2.0", "1.3.0"));
    let e = check_version(&old, &minor, &compare(&old, &minor)).expect_err("breaking in a minor");
    assert!(e.to_string().contains("new major version"), "{e}");
    let major = plan(&narrowed.replace("1.2.0", "2.0.0"));
    assert_eq!(check_version(&old, &major, &compare(&old, &major)), Ok(()));
    let same = plan(&BASE.replace("description: Amount", "description: Paid"));
    let e = check_version(&old, &same, &compare(&old, &same)).expect_err("unchanged version");
    assert!(matches!(e, VersionError::NotRaised { .. }), "{e}");
    let patch = plan(
        &BASE
            .replace("description: Amount", "description: Paid")
            .replace("1.2.0", "1.2.1"),
    );
    assert_eq!(check_version(&old, &patch, &compare(&old, &patch)), Ok(()));
    let lower = plan(&BASE.replace("1.2.0", "1.1.0"));
    assert!(matches!(
        check_version(&old, &lower, &[]),
        Err(VersionError::Lowered { .. })
    ));
}

#[test]
fn the_report_fails_on_errors_and_version_mismatches_only() {
    let old = plan(BASE);
    let ok = LintReport::new(
        &edited("enum: [free, pro]", "enum: [free, pro, team]"),
        None,
        Some(&old),
    );
    assert!(
        !ok.passed(),
        "compatible change without a higher version: {ok}"
    );
    let bumped = plan(
        &BASE
            .replace("enum: [free, pro]", "enum: [free, pro, team]")
            .replace("1.2.0", "1.3.0"),
    );
    let ok = LintReport::new(&bumped, None, Some(&old));
    assert!(ok.passed(), "{ok}");
    assert!(
        ok.to_string()
            .contains("compatible: properties.plan: enum values added"),
        "{ok}"
    );
    let bad = LintReport::new(
        &edited("name: Order Completed", "name: order completed"),
        None,
        None,
    );
    assert!(!bad.passed() && bad.errors() == 1, "{bad}");
}

#[test]
fn the_document_shows_what_is_enforced() {
    let doc = markdown(&example(), Some(&catalog()));
    for needle in [
        "# Tracking plan `northstar-demo`, version 1.0.0",
        "## Event: Upgraded Plan",
        "| `revenue` | number | yes | ≥ 0; ≤ 100000 |",
        "| `invitee_email` | string | no | format email | email (hash) |",
        "- `revenue`: Revenue from plan upgrades",
        "| `context.device.advertisingId` | string |  | device_id (hash) |",
        "| `analytics` | Product analytics and the KPIs |",
    ] {
        assert!(doc.contains(needle), "{needle:?} missing from:\n{doc}");
    }
}

fn check(p: &Plan, kind: EventType, name: &str, props: &str) -> Vec<(ViolationKind, String)> {
    p.check(kind, Some(name), props, "{}", "{}")
        .violations
        .into_iter()
        .map(|v| (v.kind, v.path))
        .collect()
}

use crate::EventType;
use ViolationKind as K;

#[test]
fn a_valid_event_has_no_violations() {
    let p = example();
    let props = r#"{"plan":"pro","revenue":19.5}"#;
    let c = p.check(
        EventType::Track,
        Some("Upgraded Plan"),
        props,
        "{}",
        r#"{"os":{"name":"iOS"}}"#,
    );
    assert_eq!(c.shape, Some("Upgraded Plan"));
    assert!(c.violations.is_empty(), "{:?}", c.violations);
}

#[test]
fn unlisted_names_breaking_the_naming_rules_are_naming_violations() {
    let p = example();
    let c = p.check(EventType::Track, Some("signed_up"), "{}", "{}", "{}");
    let v = &c.violations[0];
    assert_eq!(
        v.rule,
        format!(
            "naming.events: {}",
            p.naming.events.as_ref().map_or("", |r| r.as_str())
        )
    );
    assert_eq!(v.actual, "\"signed_up\"");
    assert_eq!(v.kind.policy_class(), PolicyClass::Naming);
    // A property the shape does not list: badly named → naming, well named → unknown.
    assert_eq!(
        check(
            &p,
            EventType::Track,
            "Signed Up",
            r#"{"plan":"free","Referrer":"ad","referrer":"ad"}"#
        ),
        [
            (K::InvalidName, "properties.Referrer".into()),
            (K::UnknownProperty, "properties.referrer".into()),
        ]
    );
    // Where other properties are allowed, only the naming rule applies.
    let open = edited(
        "      items:\n",
        "      items:\n    additional_properties: true\n",
    );
    assert_eq!(
        check(
            &open,
            EventType::Track,
            "Order Completed",
            r#"{"plan":"free","revenue":1,"coupon_code":"X","CouponCode":"X"}"#
        ),
        [(K::InvalidName, "properties.CouponCode".into())]
    );
}

#[test]
fn a_keyed_hash_passes_the_rules_of_a_hashed_property_only() {
    let p = example();
    let hashed = format!("hmac-sha256:v2:{}", "ab".repeat(32));
    let props = format!(r#"{{"plan":"pro","invitee_email":"{hashed}"}}"#);
    assert!(check(&p, EventType::Track, "Invited Teammate", &props).is_empty());
    let props = r#"{"plan":"pro","invitee_email":"hmac-sha256:v2:not-hex"}"#;
    assert_eq!(
        check(&p, EventType::Track, "Invited Teammate", props),
        [(K::InvalidFormat, "properties.invitee_email".into())]
    );
    // Not a hashed property: the hash's form is checked like any value.
    let props = format!(r#"{{"plan":"{hashed}"}}"#);
    assert_eq!(
        check(&p, EventType::Track, "Signed Up", &props),
        [(K::NotInEnum, "properties.plan".into())]
    );
}

#[test]
fn every_problem_is_reported_with_its_path() {
    let p = example();
    assert_eq!(
        check(&p, EventType::Track, "signed_up", "{}"),
        [(K::InvalidName, "event".into())],
        "a name breaking naming.events is a naming violation"
    );
    assert_eq!(
        check(&p, EventType::Track, "Exported Report", "{}"),
        [(K::UnknownEvent, "event".into())],
        "a well-named unplanned event is unknown"
    );
    let found = check(
        &p,
        EventType::Track,
        "Upgraded Plan",
        r#"{"plan":"gold","revenue":"12,50","coupon":"X"}"#,
    );
    assert_eq!(
        found,
        [
            (K::NotInEnum, "properties.plan".into()),
            (K::WrongType, "properties.revenue".into()),
            (K::UnknownProperty, "properties.coupon".into()),
        ]
    );
    assert_eq!(
        check(&p, EventType::Track, "Upgraded Plan", r#"{"plan":"pro"}"#),
        [(K::MissingProperty, "properties.revenue".into())]
    );
    assert_eq!(
        check(
            &p,
            EventType::Track,
            "Upgraded Plan",
            r#"{"plan":"pro","revenue":-1}"#
        ),
        [(K::BelowMinimum, "properties.revenue".into())]
    );
    assert_eq!(
        check(
            &p,
            EventType::Track,
            "Upgraded Plan",
            r#"{"plan":"pro","revenue":null}"#
        ),
        [(K::NullNotAllowed, "properties.revenue".into())]
    );
    assert_eq!(
        check(&p, EventType::Track, "Upgraded Plan", r#"[1]"#),
        [(K::NotAnObject, "properties".into())]
    );
    let long = format!(r#"{{"plan":"free","project_id":"{}"}}"#, "x".repeat(65));
    assert_eq!(
        check(&p, EventType::Track, "Created Project", &long),
        [(K::TooLong, "properties.project_id".into())]
    );
    assert_eq!(
        check(&p, EventType::Page, "", r#"{"path":"home"}"#),
        [(K::PatternMismatch, "properties.path".into())]
    );
    let c = p.check(
        EventType::Track,
        Some("Upgraded Plan"),
        r#"{"plan":"pro","revenue":1}"#,
        "{}",
        r#"{"os":{"name":7}}"#,
    );
    assert_eq!(c.violations.len(), 1);
    assert_eq!(
        (c.violations[0].kind, c.violations[0].path.as_str()),
        (K::WrongType, "context.os.name")
    );
}

#[test]
fn pii_values_never_appear_in_a_violation() {
    let p = example();
    let c = p.check(
        EventType::Identify,
        None,
        "{}",
        r#"{"email":"jane.doe@example"}"#,
        "{}",
    );
    assert_eq!(c.violations.len(), 1, "{:?}", c.violations);
    let v = &c.violations[0];
    assert_eq!(
        (v.kind, v.path.as_str()),
        (K::InvalidFormat, "traits.email")
    );
    assert!(!v.to_string().contains("jane"), "{v}");
    assert!(v.actual.contains("PII"), "{v}");
    let shown = p.check(
        EventType::Track,
        Some("Upgraded Plan"),
        r#"{"plan":"gold","revenue":1}"#,
        "{}",
        "{}",
    );
    assert!(
        shown.violations[0].actual.contains("gold"),
        "non-PII values are shown"
    );
}

#[test]
fn formats_check_their_shape() {
    use model::Format as F;
    assert!(
        format_holds(F::Email, "a@b.co")
            && !format_holds(F::Email, "a@b")
            && !format_holds(F::Email, "a b@c.d")
    );
    assert!(format_holds(F::Uri, "https://x.example/a?b") && !format_holds(F::Uri, "/relative"));
    assert!(
        format_holds(F::DateTime, "2026-12-04T10:00:00Z")
            && !format_holds(F::DateTime, "2026-12-04")
    );
    assert!(format_holds(F::Date, "2026-12-04") && !format_holds(F::Date, "2026-13-04"));
    assert!(
        format_holds(F::Uuid, "123e4567-e89b-12d3-a456-426614174000")
            && !format_holds(F::Uuid, "123e4567")
    );
}

#[test]
fn top_level_entries_unescape_keys_and_borrow_values() {
    let e = top_level(r#"{"a":1,"b\u0031":{"c":[2]},"a":null}"#).expect("object");
    let keys: Vec<&str> = e.iter().map(|(k, _)| k.as_ref()).collect();
    assert_eq!(keys, ["a", "b1", "a"]);
    assert_eq!(e[1].1.get(), r#"{"c":[2]}"#);
    assert!(top_level("[1]").is_none() && top_level("{").is_none() && top_level("{} x").is_none());
}

mod pii_tests {
    use super::*;
    use crate::plan::pii::{apply, is_keyed_hash, PiiKey, PiiKeyError};

    fn key(version: u32) -> PiiKey {
        use base64::Engine;
        let bytes = [version as u8; 32];
        PiiKey::parse(&format!(
            "v{version}:{}",
            base64::engine::general_purpose::STANDARD.encode(bytes)
        ))
        .expect("key")
    }

    #[test]
    fn keys_parse_hash_deterministically_and_never_show_themselves() {
        let k = key(1);
        assert!(!format!("{k:?}").contains("AQEB"), "{k:?}");
        let h = k.hash("jane@example.com");
        assert_eq!(h, k.hash("jane@example.com"));
        assert!(
            h.starts_with("hmac-sha256:v1:") && h.len() == "hmac-sha256:v1:".len() + 64,
            "{h}"
        );
        assert_ne!(
            h,
            key(2).hash("jane@example.com"),
            "another key version, another value"
        );
        assert!(!h.contains("jane"));
        assert_eq!(
            PiiKey::parse("v1:c2hvcnQ=").map(|_| ()),
            Err(PiiKeyError::Short(5))
        );
        assert!(matches!(
            PiiKey::parse("secret-in-the-clear"),
            Err(PiiKeyError::Format(_))
        ));
        let e = PiiKey::parse("v1:not base64!")
            .expect_err("refused")
            .to_string();
        assert!(
            !e.contains("not base64"),
            "the error never repeats the key: {e}"
        );
    }

    #[test]
    fn hash_and_drop_reach_properties_traits_and_context() {
        let p = example();
        let k = key(3);
        let props = r#"{"plan":"pro","invitee_email":"bob@example.com"}"#;
        let ctx = r#"{"os":{"name":"iOS"},"device":{"advertisingId":"ad-123","model":"x"}}"#;
        let out = apply(
            &p,
            Some(&k),
            EventType::Track,
            Some("Invited Teammate"),
            props,
            "{}",
            ctx,
        )
        .expect("applied");
        let props: serde_json::Value =
            serde_json::from_str(out.properties.as_deref().expect("changed")).expect("json");
        assert_eq!(props["invitee_email"], k.hash("bob@example.com"));
        assert_eq!(props["plan"], "pro");
        let ctx: serde_json::Value =
            serde_json::from_str(out.context.as_deref().expect("changed")).expect("json");
        assert_eq!(ctx["device"]["advertisingId"], k.hash("ad-123"));
        assert_eq!(ctx["device"]["model"], "x");
        assert_eq!((out.hashed, out.dropped), (2, 0));

        let traits = r#"{"email":"jane@example.com","name":"Jane Doe","company":"ACME"}"#;
        let out =
            apply(&p, Some(&k), EventType::Identify, None, "{}", traits, "{}").expect("applied");
        let t: serde_json::Value =
            serde_json::from_str(out.traits.as_deref().expect("changed")).expect("json");
        assert_eq!(t["email"], k.hash("jane@example.com"));
        assert!(t.get("name").is_none(), "dropped");
        assert_eq!(t["company"], "ACME");
        assert_eq!((out.hashed, out.dropped), (1, 1));
    }

    #[test]
    fn hashing_is_idempotent() {
        let p = example();
        let k = key(4);
        let once = k.hash("bob@example.com");
        assert!(is_keyed_hash(&once));
        assert!(!is_keyed_hash("hmac-sha256:v4:abc"));
        assert!(!is_keyed_hash(&once.replace("v4", "vx")));
        let props = format!(r#"{{"plan":"pro","invitee_email":"{once}"}}"#);
        let out = apply(
            &p,
            Some(&k),
            EventType::Track,
            Some("Invited Teammate"),
            &props,
            "{}",
            "{}",
        )
        .expect("applied");
        assert!(!out.changed(), "an already hashed value is left as it is");
        assert_eq!(out.hashed, 0);
    }

    #[test]
    fn an_event_without_pii_is_untouched_and_hashing_needs_a_key() {
        let p = example();
        let out = apply(
            &p,
            None,
            EventType::Track,
            Some("Upgraded Plan"),
            r#"{"plan":"pro","revenue":9}"#,
            "{}",
            r#"{"os":{"name":"iOS"}}"#,
        )
        .expect("no pii");
        assert!(!out.changed());
        let e = apply(
            &p,
            None,
            EventType::Identify,
            None,
            "{}",
            r#"{"email":"a@b.co"}"#,
            "{}",
        )
        .expect_err("no key");
        assert_eq!(e.path, "traits.email");
        // Dropping needs no key.
        let out = apply(
            &p,
            None,
            EventType::Identify,
            None,
            "{}",
            r#"{"name":"Jane"}"#,
            "{}",
        )
        .expect("dropped");
        assert_eq!(out.traits.as_deref(), Some("{}"));
    }
}

#[test]
fn consent_is_read_per_purpose_with_the_plans_default() {
    let p = example();
    let ctx = |prefs: &str| format!(r#"{{"consent":{{"categoryPreferences":{prefs}}}}}"#);
    let c = |context: &str| {
        p.consent(EventType::Track, Some("Signed Up"), context)
            .map(|c| (c.purpose, c.given))
    };
    assert_eq!(
        c(&ctx(r#"{"analytics":true,"marketing":false}"#)),
        Some(("analytics", true))
    );
    assert_eq!(
        c(&ctx(r#"{"analytics":false}"#)),
        Some(("analytics", false))
    );
    assert_eq!(
        c(&ctx(r#"{"analytics":"yes"}"#)),
        Some(("analytics", false)),
        "only an explicit true"
    );
    assert_eq!(
        c("{}"),
        Some(("analytics", true)),
        "the plan's default: granted"
    );
    let denied = plan(&BASE.replace(
        "purposes: {analytics: KPIs}",
        "purposes: {analytics: KPIs}\n  default_without_consent_info: denied",
    ));
    let d = denied.consent(EventType::Track, Some("Order Completed"), "{}");
    assert_eq!(d.map(|c| c.given), Some(false));
    assert_eq!(p.consent(EventType::Track, Some("unplanned"), "{}"), None);
}
