//! The generated files: linted, parsed, and equal to what is committed under deploy/.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::path::Path;

use northstar_schemas::catalog::Catalog;
use serde_json::Value;

use super::rules::{alert_names, kpi_rules, pipeline_rules, Rule, RuleFile};
use super::{generate, stale, Options};

fn example() -> Catalog {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../deploy/kpi-catalog.yaml"
    ))
    .expect("deploy/kpi-catalog.yaml");
    Catalog::parse(&text).expect("example catalog")
}

/// Every kind of alert, on counts, distinct users and ratios, by segment and in total (the
/// catalog of the promtool fixtures in tests/rules/).
pub(crate) const EVERY_ALERT: &str = include_str!("../../../tests/rules/every-alert.yaml");

/// Grafana's variables, substituted for the PromQL parser.
fn substitute(expr: &str) -> String {
    let mut e = expr
        .replace("$__rate_interval", "1m")
        .replace("$__range", "1h")
        .replace("$__interval", "1m")
        .replace("$window", "1h")
        .replace("$kpi", "signups");
    // Multi-value dimension variables take the regex `.*` for "All".
    while let Some(i) = e.find("=~\"$") {
        let end = e[i + 4..].find('"').map_or(e.len(), |j| i + 4 + j);
        e.replace_range(i + 3..end, ".*");
    }
    e
}

/// What is wrong with a dashboard (nothing for a good one).
fn lint(d: &Value) -> Vec<String> {
    let mut problems = Vec::new();
    let uid = d["uid"].as_str().unwrap_or_default();
    if !(8..=40).contains(&uid.len()) {
        problems.push(format!("uid {uid:?} is not 8 to 40 characters"));
    }
    let panels = d["panels"].as_array().cloned().unwrap_or_default();
    let mut cells: Vec<(u64, u64, u64, u64, String)> = Vec::new();
    let mut ids = HashSet::new();
    for p in &panels {
        let title = p["title"].as_str().unwrap_or_default().to_string();
        if !ids.insert(p["id"].as_u64()) {
            problems.push(format!("{title}: duplicate panel id"));
        }
        for field in ["title", "description"] {
            if p[field].as_str().is_none_or(str::is_empty) {
                problems.push(format!("{title:?}: no {field}"));
            }
        }
        if p["fieldConfig"]["defaults"]["unit"]
            .as_str()
            .is_none_or(str::is_empty)
        {
            problems.push(format!("{title}: no unit"));
        }
        if p["datasource"]["uid"] != "${datasource}" {
            problems.push(format!("{title}: datasource is not the variable"));
        }
        let g = &p["gridPos"];
        let (x, y, w, h) = (
            g["x"].as_u64().unwrap_or(99),
            g["y"].as_u64().unwrap_or(0),
            g["w"].as_u64().unwrap_or(0),
            g["h"].as_u64().unwrap_or(0),
        );
        if x + w > 24 || w == 0 || h == 0 {
            problems.push(format!("{title}: grid {x}+{w} outside 24 columns"));
        }
        for (ox, oy, ow, oh, other) in &cells {
            if x < ox + ow && *ox < x + w && y < oy + oh && *oy < y + h {
                problems.push(format!("{title} overlaps {other}"));
            }
        }
        cells.push((x, y, w, h, title.clone()));
        for t in p["targets"].as_array().into_iter().flatten() {
            if t["datasource"]["uid"] != "${datasource}" {
                problems.push(format!("{title}: a query's datasource is not the variable"));
            }
            let expr = t["expr"].as_str().unwrap_or_default();
            if let Err(e) = promql_parser::parser::parse(&substitute(expr)) {
                problems.push(format!("{title}: {expr}: {e}"));
            }
        }
    }
    for v in d["templating"]["list"].as_array().into_iter().flatten() {
        if v["type"] == "query" && v["datasource"]["uid"] != "${datasource}" {
            problems.push(format!(
                "variable {}: datasource is not the variable",
                v["name"]
            ));
        }
    }
    problems
}

fn dashboards(files: &[super::File]) -> Vec<Value> {
    files
        .iter()
        .filter(|f| f.path.extension().is_some_and(|e| e == "json"))
        .map(|f| serde_json::from_str(&f.contents).expect("dashboard JSON"))
        .collect()
}

#[test]
fn dashboards_pass_the_lint() {
    for catalog in [example(), Catalog::parse(EVERY_ALERT).expect("catalog")] {
        let boards = dashboards(&generate(&catalog, &Options::default()));
        assert_eq!(boards.len(), 4);
        let uids: BTreeSet<&str> = boards.iter().filter_map(|d| d["uid"].as_str()).collect();
        assert_eq!(
            uids,
            BTreeSet::from([
                "northstar-executive",
                "northstar-kpi-drilldown",
                "northstar-pipeline",
                "northstar-realtime"
            ]),
            "stable, unique uids"
        );
        for d in &boards {
            let problems = lint(d);
            assert!(problems.is_empty(), "{}: {problems:#?}", d["uid"]);
        }
    }
}

#[test]
fn the_lint_finds_what_is_wrong() {
    let mut d = dashboards(&generate(&example(), &Options::default())).remove(0);
    d["panels"][1]["gridPos"]["x"] = 0.into();
    d["panels"][2]["description"] = "".into();
    d["panels"][3]["targets"][0]["expr"] = "sum(rate(x[5m]) by".into();
    d["panels"][4]["datasource"]["uid"] = "prometheus".into();
    d["panels"][5]["fieldConfig"]["defaults"]["unit"] = "".into();
    let problems = lint(&d).join("\n");
    for needle in [
        "overlaps",
        "no description",
        "sum(rate(x[5m]) by",
        "datasource is not the variable",
        "no unit",
    ] {
        assert!(
            problems.contains(needle),
            "{needle} not found in:\n{problems}"
        );
    }
}

/// (name, expression, labels, annotations) of one alert.
type AlertParts<'a> = (
    &'a String,
    &'a String,
    &'a BTreeMap<String, String>,
    &'a BTreeMap<String, String>,
);

fn alerts(f: &RuleFile) -> Vec<AlertParts<'_>> {
    f.groups
        .iter()
        .flat_map(|g| &g.rules)
        .filter_map(|r| match r {
            Rule::Alert {
                alert,
                expr,
                labels,
                annotations,
                ..
            } => Some((alert, expr, labels, annotations)),
            Rule::Record { .. } => None,
        })
        .collect()
}

#[test]
fn every_rule_parses_and_every_alert_is_documented() {
    let o = Options::default();
    let runbooks =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/runbooks.md"))
            .expect("docs/runbooks.md");
    let headings: HashSet<String> = runbooks
        .lines()
        .filter_map(|l| l.strip_prefix("## "))
        .map(|h| h.trim().to_lowercase())
        .collect();
    for catalog in [example(), Catalog::parse(EVERY_ALERT).expect("catalog")] {
        let (kpis, pipeline) = (kpi_rules(&catalog, &o), pipeline_rules(&o));
        for f in [&kpis, &pipeline] {
            for r in f.groups.iter().flat_map(|g| &g.rules) {
                let expr = match r {
                    Rule::Alert { expr, .. } | Rule::Record { expr, .. } => expr,
                };
                assert!(promql_parser::parser::parse(expr).is_ok(), "{expr}");
            }
            for (name, _, labels, annotations) in alerts(f) {
                assert!(labels.contains_key("severity"), "{name}: severity");
                for a in ["summary", "description", "runbook_url"] {
                    assert!(
                        annotations.get(a).is_some_and(|v| !v.is_empty()),
                        "{name}: {a}"
                    );
                }
                let url = &annotations["runbook_url"];
                if url.starts_with(&o.docs_url) {
                    let anchor = url.rsplit('#').next().unwrap_or_default();
                    assert!(
                        headings.contains(anchor),
                        "{name}: docs/runbooks.md has no section `## {name}`"
                    );
                }
            }
        }
        for name in alert_names(&[&kpis, &pipeline]) {
            assert!(
                headings.contains(&name.to_lowercase()),
                "docs/runbooks.md has no section for {name}"
            );
        }
    }
}

#[test]
fn a_ratio_alert_is_guarded_by_its_denominator() {
    let c = Catalog::parse(EVERY_ALERT).expect("catalog");
    let f = kpi_rules(&c, &Options::default());
    let conversion: Vec<&String> = alerts(&f)
        .into_iter()
        .filter(|(name, expr, _, _)| {
            expr.contains("kpi=\"conversion\"") && *name != "NorthstarKpiSeriesAbsent"
        })
        .map(|(_, expr, _, _)| expr)
        .collect();
    assert_eq!(
        conversion.len(),
        4,
        "below, week over week, anomaly low and high: {conversion:#?}"
    );
    for expr in conversion {
        assert!(
            expr.contains("and ignoring (kpi)") && expr.contains("kpi=\"signups\""),
            "{expr}"
        );
    }
}

/// The files under deploy/ are what the example catalog generates today.
#[test]
fn committed_files_equal_a_fresh_generation() {
    let deploy = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy"));
    let files = generate(&example(), &Options::default());
    let stale = stale(deploy, &files);
    assert!(
        stale.is_empty(),
        "stale generated files {stale:?}: run `cargo run -p northstar-sink -- dashboards generate --catalog deploy/kpi-catalog.yaml --out deploy`"
    );
}
