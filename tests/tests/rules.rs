//! The generated rules, Alertmanager example and dashboards, checked by the tools they are for:
//! `promtool check rules` and `promtool test rules` with the fixtures of tests/rules/ (every kind
//! of alert fires on an injected drop, spike or stall, and stays silent on normal data, on a
//! partial window and on a zero denominator), `amtool check-config`, and Grafana's own dashboard
//! model (grafana-foundation-sdk) parsing and re-serialising every dashboard unchanged.

use std::path::{Path, PathBuf};
use std::process::Command;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn run(cmd: &mut Command) -> (bool, String) {
    let out = cmd.output().unwrap_or_else(|e| {
        panic!("cannot run {cmd:?}: {e} (tests/setup-prometheus.sh installs it)")
    });
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

fn files(dir: &Path, suffix: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    v.retain(|p| p.to_string_lossy().ends_with(suffix));
    v.sort();
    v
}

#[test]
fn generated_rules_pass_promtool_and_their_fixtures() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (ok, out) = run(Command::new(northstar_e2e::bin("northstar-sink")).args([
        "dashboards",
        "generate",
        "--catalog",
        &repo()
            .join("tests/rules/every-alert.yaml")
            .display()
            .to_string(),
        "--out",
        &dir.path().display().to_string(),
        "--docs-url",
        "https://docs.example/runbooks.md",
        "--grafana-url",
        "http://grafana.example",
    ]));
    assert!(ok, "{out}");
    let rules = dir.path().join("prometheus/rules");
    for fixture in files(&repo().join("tests/rules"), ".test.yml") {
        std::fs::copy(&fixture, rules.join(fixture.file_name().expect("name")))
            .expect("copy fixture");
    }
    let (ok, out) = run(Command::new("promtool")
        .arg("check")
        .arg("rules")
        .args(files(&rules, ".rules.yml")));
    assert!(ok, "promtool check rules:\n{out}");
    let fixtures = files(&rules, ".test.yml");
    assert_eq!(fixtures.len(), 3, "{fixtures:?}");
    let (ok, out) = run(Command::new("promtool")
        .arg("test")
        .arg("rules")
        .args(&fixtures));
    assert!(ok, "promtool test rules:\n{out}");
    assert_eq!(out.matches("SUCCESS").count(), 3, "{out}");
}

#[test]
fn committed_rules_and_alertmanager_example_are_valid() {
    let deploy = repo().join("deploy");
    let (ok, out) = run(Command::new("promtool")
        .arg("check")
        .arg("rules")
        .args(files(&deploy.join("prometheus/rules"), ".rules.yml")));
    assert!(ok, "{out}");
    let (ok, out) = run(Command::new("promtool")
        .args(["check", "config"])
        .arg(deploy.join("prometheus/prometheus.yml")));
    assert!(ok, "{out}");
    let (ok, out) = run(Command::new("amtool")
        .args(["check-config"])
        .arg(deploy.join("alertmanager/alertmanager.yml")));
    assert!(ok, "{out}");
    assert!(out.contains("2 inhibit rules"), "{out}");
}

/// The shipped deployments parse as their tools read them: compose (docker-compose 1.29, which
/// refuses what it does not know), both Prometheus configurations with the rules they load, the
/// chart's values, and the scripts of the local stack, the tests and the benchmarks.
#[test]
fn deployments_are_well_formed() {
    let deploy = repo().join("deploy");
    let (ok, out) = run(Command::new("docker-compose")
        .arg("-f")
        .arg(deploy.join("compose/docker-compose.yml"))
        .args(["config", "-q"]));
    assert!(ok, "docker-compose config:\n{out}");
    let (ok, out) = run(Command::new("promtool")
        .args(["check", "config"])
        .arg(deploy.join("compose/prometheus.yml")));
    assert!(ok, "{out}");
    let relaxed = "{extends: relaxed, rules: {line-length: disable}}";
    let (ok, out) = run(Command::new("yamllint")
        .args(["-s", "-d", relaxed])
        .arg(repo().join("helm/northstar/values.yaml"))
        .arg(deploy.join("compose/docker-compose.yml"))
        .arg(deploy.join("kpi-catalog.yaml")));
    assert!(ok, "yamllint:\n{out}");
    let mut scripts = files(&deploy.join("local"), ".sh");
    scripts.extend(files(&repo().join("tests"), ".sh"));
    scripts.extend(files(&repo().join("bench"), ".sh"));
    // From the repository root, following `source`d files (their directives are relative to it).
    let (ok, out) = run(Command::new("shellcheck")
        .current_dir(repo())
        .arg("-x")
        .args(&scripts));
    assert!(ok, "shellcheck:\n{out}");
}

/// The LICENSE file is the license Cargo.toml declares for every crate.
/// The chart ships the same generated rules and dashboards as deploy/ (for the shipped catalog).
#[test]
fn the_chart_ships_the_committed_rules_and_dashboards() {
    for (shipped, chart, suffix) in [
        (
            "deploy/prometheus/rules",
            "helm/northstar/files/rules",
            ".yml",
        ),
        (
            "deploy/grafana/dashboards",
            "helm/northstar/files/dashboards",
            ".json",
        ),
    ] {
        let want = files(&repo().join(shipped), suffix);
        let have = files(&repo().join(chart), suffix);
        let names = |v: &[PathBuf]| -> Vec<String> {
            v.iter()
                .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
                .collect()
        };
        assert_eq!(
            names(&want),
            names(&have),
            "{chart} lists other files than {shipped}"
        );
        for (a, b) in want.iter().zip(&have) {
            let same = std::fs::read(a).ok() == std::fs::read(b).ok();
            assert!(
                same,
                "{} differs from {}: copy it again",
                b.display(),
                a.display()
            );
        }
    }
}

/// The chart's values satisfy its values.schema.json (which Helm applies at install), and the
/// schema refuses the mistakes it is there for (tests/compat/chart_values.py).
#[test]
fn the_chart_values_satisfy_their_schema() {
    let script = repo().join("tests/compat/chart_values.py");
    let (ok, out) = run(Command::new(northstar_e2e::python())
        .arg(script)
        .arg(repo().join("helm/northstar")));
    assert!(ok, "{out}");
}

#[test]
fn the_license_file_matches_the_declared_license() {
    let manifest = std::fs::read_to_string(repo().join("Cargo.toml")).expect("Cargo.toml");
    assert!(
        manifest.contains("license = \"Apache-2.0\""),
        "the workspace declares Apache-2.0"
    );
    let text = std::fs::read_to_string(repo().join("LICENSE")).expect("LICENSE");
    for needle in [
        "Apache License",
        "Version 2.0, January 2004",
        "TERMS AND CONDITIONS FOR USE, REPRODUCTION, AND DISTRIBUTION",
        "END OF TERMS AND CONDITIONS",
    ] {
        assert!(text.contains(needle), "{needle:?} missing from LICENSE");
    }
}

#[test]
fn dashboards_round_trip_through_grafanas_model() {
    let boards = files(&repo().join("deploy/grafana/dashboards"), ".json");
    assert_eq!(boards.len(), 4, "{boards:?}");
    let args: Vec<&std::ffi::OsStr> = boards.iter().map(|p| p.as_os_str()).collect();
    let out = northstar_e2e::run_compat_script("grafana_dashboards.py", &args);
    let text = String::from_utf8_lossy(&out);
    assert_eq!(text.matches(": ok").count(), 4, "{text}");
    // And the check can fail: a field the model does not know, a query of an unknown type.
    let dir = tempfile::tempdir().expect("tempdir");
    let mut d: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&boards[0]).expect("read")).expect("json");
    d["panels"][0]["colour"] = "red".into();
    d["panels"][1]["datasource"]["type"] = "loki".into();
    let bad = dir.path().join("bad.json");
    std::fs::write(&bad, serde_json::to_vec(&d).expect("json")).expect("write");
    let (ok, out) = run(Command::new(northstar_e2e::python())
        .arg(repo().join("tests/compat/grafana_dashboards.py"))
        .arg(&bad));
    assert!(!ok, "a broken dashboard passed:\n{out}");
    assert!(
        out.contains("colour: lost by the model") && out.contains("not a Prometheus query"),
        "{out}"
    );
}
