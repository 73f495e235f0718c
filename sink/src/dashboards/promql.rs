//! The PromQL the dashboards and rules are built from, in one place.
//!
//! Contract: every query over a KPI family takes `max` over replica labels (two metrics-sink
//! replicas expose the same values, so a sum would double them); the history of final windows
//! is read with `last_over_time` over the window's length (each window's point is stamped with
//! its start, so at any time the query returns the window holding that time); alerts on final
//! windows read the window holding `now - settle`, where `settle` is the window, the allowed
//! lateness and a grace period (so the window is final when the pipeline keeps up), and its
//! week-earlier twins at the same offset plus whole weeks: the same windows, exactly.

use northstar_schemas::catalog::{Kpi, WindowSpec, ALL};

/// The labels that tell metrics-sink replicas apart (`max without` them).
pub const REPLICA_LABELS: &str = "instance, pod";

/// `max without (instance, pod) (expr)`.
pub fn dedup(expr: &str) -> String {
    format!("max without ({REPLICA_LABELS}) ({expr})")
}

/// Label matchers of one KPI series set: the window and, for `total`, every dimension at
/// `__all__`; otherwise every dimension except the total (`!= "__all__"`).
pub fn matchers(kpi: &Kpi, window: &str, total: bool) -> String {
    let mut m = format!("kpi=\"{}\",window=\"{window}\"", kpi.name);
    for d in &kpi.segments {
        let op = if total { "=" } else { "!=" };
        m.push_str(&format!(",{}{op}\"{ALL}\"", d.label));
    }
    m
}

/// A PromQL duration with every unit it needs, largest first (`1w1h15m`, `3599s`).
pub fn duration(ms: i64) -> String {
    if ms <= 0 {
        return "0s".into();
    }
    let mut rest = ms;
    let mut out = String::new();
    for (unit, len) in [
        ("w", 604_800_000),
        ("d", 86_400_000),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1_000),
        ("ms", 1),
    ] {
        if rest >= len {
            out.push_str(&format!("{}{unit}", rest / len));
            rest %= len;
        }
    }
    out
}

/// A metric with matchers.
pub fn sel(metric: &str, matchers: &str) -> String {
    format!("{metric}{{{matchers}}}")
}

/// The history of final windows at any time: the value of the window holding it.
pub fn history(matchers: &str, window: &WindowSpec) -> String {
    dedup(&format!(
        "last_over_time(northstar_kpi_final_window_value{{{matchers}}}[{}])",
        duration(window.millis)
    ))
}

/// How long after a window's start it is surely final when the pipeline keeps up: the window,
/// the allowed lateness and `grace_ms` (watermark lag tolerated).
pub fn settle_ms(window: &WindowSpec, lateness_ms: i64, grace_ms: i64) -> i64 {
    window.millis + lateness_ms + grace_ms
}

/// The final window holding `now - offset_ms`, of every series with `matchers` (the range is
/// one second shorter than the window, so exactly one window start falls in it), unless that
/// window lacks input after a catalog edit (ADR 0007).
pub fn settled_at(matchers: &str, window: &WindowSpec, offset_ms: i64) -> String {
    let range = duration(window.millis - 1_000);
    let offset = duration(offset_ms);
    dedup(&format!(
        "last_over_time(northstar_kpi_final_window_value{{{matchers}}}[{range}] offset {offset})\nunless on (kpi, window) last_over_time(northstar_kpi_final_window_missing_input[{range}] offset {offset})"
    ))
}

/// `unless` the open or last final window (`state`) lacks input after a catalog edit.
pub fn unless_missing_input(state: &str) -> String {
    format!(
        "\nunless on (kpi, window) northstar_kpi_window_missing_input{{state=\"{state}\"}} == 1"
    )
}

/// A ratio's volume guard: the same selection of its denominator KPI.
pub fn with_kpi(matchers: &str, kpi: &str) -> String {
    match matchers.split_once(',') {
        Some((_, rest)) => format!("kpi=\"{kpi}\",{rest}"),
        None => format!("kpi=\"{kpi}\""),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use northstar_schemas::catalog::Catalog;

    #[test]
    fn selections() {
        let c = Catalog::parse("north_star: a\nkpis:\n  - {name: a, aggregate: count, windows: [1h], segments: [context.os.name, properties.plan]}\n").expect("catalog");
        let k = &c.kpis[0];
        assert_eq!(
            matchers(k, "1h", true),
            "kpi=\"a\",window=\"1h\",context_os_name=\"__all__\",properties_plan=\"__all__\""
        );
        assert_eq!(
            matchers(k, "1h", false),
            "kpi=\"a\",window=\"1h\",context_os_name!=\"__all__\",properties_plan!=\"__all__\""
        );
        let w = &k.windows[0];
        assert_eq!(settle_ms(w, 600_000, 300_000), 4_500_000);
        assert_eq!(
            settled_at("kpi=\"a\"", w, 4_500_000 + 604_800_000),
            "max without (instance, pod) (last_over_time(northstar_kpi_final_window_value{kpi=\"a\"}[59m59s] offset 1w1h15m)\nunless on (kpi, window) last_over_time(northstar_kpi_final_window_missing_input[59m59s] offset 1w1h15m))"
        );
        assert_eq!(duration(604_800_000 + 4_500_000), "1w1h15m");
        assert_eq!(duration(86_399_000), "23h59m59s");
        assert_eq!(
            with_kpi("kpi=\"a\",window=\"1h\"", "b"),
            "kpi=\"b\",window=\"1h\""
        );
    }
}
