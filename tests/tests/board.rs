//! The KPI board as a person sees it: the stack runs the example catalog with a week of the
//! demo's traffic and an Alertmanager; headless Chromium loads the metrics sink's `/`, runs its
//! script and the test reads the rendered page:
//! - the North Star card comes first, marked as such;
//! - every KPI card shows, for its window, the open window's total and the last final window's
//!   total, formatted as the catalog says (count, currency in EUR, percent), and those numbers
//!   equal what the test recomputes from the events it sent;
//! - a firing KPI alert is listed with its summary and marks its KPI's card; the trend is drawn;
//! - a screenshot is written (to `NORTHSTAR_BOARD_SCREENSHOT` when set, for docs/).

use std::collections::HashSet;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use northstar_e2e::monitor::generate_and_start_alertmanager;
use northstar_e2e::{demo_events, repo, Stack};
use serde_json::{json, Value};

fn demo(end_ms: i64) -> Vec<Value> {
    let end = end_ms.to_string();
    demo_events(&[
        "backfill",
        "--weeks",
        "1.5",
        "--per-hour",
        "30",
        "--users",
        "800",
        "--seed",
        "41",
        "--now-ms",
        &end,
    ])
}

fn event_ms(e: &Value) -> i64 {
    e["timestamp"]
        .as_str()
        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
        .map(|t| t.timestamp_millis())
        .unwrap_or_default()
}

/// What the test expects a card to show for the window `[start, start + len)`.
fn expected(events: &[Value], kpi: &str, start: i64, len: i64) -> Option<f64> {
    let inside: Vec<&Value> = events
        .iter()
        .filter(|e| (start..start + len).contains(&event_ms(e)))
        .collect();
    let named = |name: &str| inside.iter().filter(|e| e["event"] == name).count() as f64;
    let users = |of: &dyn Fn(&Value) -> bool| {
        let ids: HashSet<String> = inside
            .iter()
            .filter(|e| of(e))
            .filter_map(|e| e["userId"].as_str().or(e["anonymousId"].as_str()))
            .map(str::to_string)
            .collect();
        ids.len() as f64
    };
    match kpi {
        "weekly_active_users" | "daily_active_users" => Some(users(&|_| true)),
        "signups" => Some(named("Signed Up")),
        "activations" => Some(named("Activated")),
        "activation_rate" => {
            let s = named("Signed Up");
            (s > 0.0).then(|| named("Activated") / s)
        }
        "revenue" => Some(
            inside
                .iter()
                .filter(|e| e["event"] == "Upgraded Plan")
                .filter_map(|e| e["properties"]["revenue"].as_f64())
                .filter(|r| *r > 0.0)
                .sum(),
        ),
        "events" => Some(inside.len() as f64),
        _ => None,
    }
}

/// The text the board shows for `v` in the KPI's format (what the test reads back).
fn shown(kpi: &str, v: Option<f64>) -> String {
    let Some(v) = v else {
        return "—".into();
    };
    // Rounded half away from zero, as the browser's number formatting does.
    let grouped = |n: f64, decimals: usize| {
        let scale = 10f64.powi(decimals as i32);
        let s = format!("{:.*}", decimals, (n.abs() * scale).round() / scale);
        let (int, frac) = s
            .split_once('.')
            .map_or((s.as_str(), None), |(a, b)| (a, Some(b)));
        let mut out = String::new();
        for (i, c) in int.chars().enumerate() {
            if i > 0 && (int.len() - i) % 3 == 0 {
                out.push(',');
            }
            out.push(c);
        }
        if let Some(f) = frac {
            out.push('.');
            out.push_str(f);
        }
        out
    };
    match kpi {
        "activation_rate" => {
            let p = format!("{:.1}", (v * 1000.0).round() / 10.0);
            format!("{} %", p.trim_end_matches(".0"))
        }
        "revenue" => format!("€{}", grouped(v, 2)),
        _ => grouped(v, 0),
    }
}

/// One card of the rendered page.
#[derive(Debug)]
struct Card {
    kpi: String,
    window: String,
    html: String,
}

impl Card {
    /// (`data-start`, `data-value`, shown text) of the `open` or `final` block.
    fn block(&self, class: &str) -> Option<(i64, Option<f64>, String)> {
        let at = self
            .html
            .find(&format!("class=\"{class}\" data-start=\""))?;
        let rest = &self.html[at..];
        let attr = |s: &str, name: &str| -> Option<String> {
            let v = s.split(&format!("{name}=\"")).nth(1)?.split('"').next()?;
            Some(v.to_string())
        };
        let start = attr(rest, "data-start")?.parse().ok()?;
        let value = rest.split("class=\"value\"").nth(1)?;
        let raw = attr(value, "data-value")?.parse().ok();
        let text = value.split('>').nth(1)?.split('<').next()?;
        Some((start, raw, text.replace("&nbsp;", " ").trim().to_string()))
    }
}

fn cards(dom: &str) -> Vec<Card> {
    dom.split("<section class=\"card")
        .skip(1)
        .filter_map(|s| {
            let attr = |name: &str| {
                s.split(&format!("{name}=\""))
                    .nth(1)
                    .and_then(|v| v.split('"').next())
                    .map(str::to_string)
            };
            Some(Card {
                kpi: attr("data-kpi")?,
                window: attr("data-window")?,
                html: s.split("</section>").next().unwrap_or_default().to_string(),
            })
        })
        .collect()
}

fn chromium(args: &[&str], url: &str) -> String {
    let out = std::process::Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
        ])
        .args(["--virtual-time-budget=4000", "--lang=en-US"])
        .args(args)
        .arg(url)
        .output()
        .expect("chromium (tests/setup-prometheus.sh --with-browser installs it)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn window_ms(label: &str) -> i64 {
    let (n, unit) = label.split_at(label.len() - 1);
    let n: i64 = n.parse().expect("window length");
    n * match unit {
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => 7 * 86_400_000,
    }
}

/// The board matches the recompute when every card's open and final values do.
fn mismatches(dom: &str, events: &[Value]) -> Vec<String> {
    let mut wrong = Vec::new();
    for c in cards(dom) {
        let len = window_ms(&c.window);
        for class in ["open", "final"] {
            match c.block(class) {
                Some((start, raw, text)) => {
                    let value = expected(events, &c.kpi, start, len);
                    let want = shown(&c.kpi, value);
                    let exact = match (raw, value) {
                        (Some(a), Some(b)) => (a - b).abs() <= 1e-9 * b.abs().max(1.0),
                        (a, b) => a.is_none() && b.is_none(),
                    };
                    if text != want || !exact {
                        wrong.push(format!(
                            "{} {} {class} at {start}: shows {text:?} ({raw:?}), recomputed {want:?} ({value:?})",
                            c.kpi, c.window
                        ));
                    }
                }
                None => wrong.push(format!("{} {}: no {class} value", c.kpi, c.window)),
            }
        }
    }
    wrong
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_board_shows_the_recomputed_kpis_the_north_star_first_and_firing_alerts() {
    let catalog = repo().join("deploy/kpi-catalog.yaml");
    let mut stack = Stack::start_core().await;
    let dir = stack.dir.path().to_path_buf();
    let am = generate_and_start_alertmanager(&catalog, &dir, &[]).await;
    for (k, v) in [
        ("NORTHSTAR_CATALOG", catalog.display().to_string()),
        ("NORTHSTAR_EMIT_INTERVAL_MS", "200".into()),
        ("NORTHSTAR_ALERTMANAGER_URL", am.url()),
    ] {
        stack.env.push((k.into(), v));
    }
    stack.start_services().await;
    // A week and a half up to a few seconds ago: every card has an open and a final window.
    let end = chrono::Utc::now().timestamp_millis() - 5_000;
    let events = demo(end);
    stack.send_batches(&events, 500).await;
    am.post(&json!([{
        "labels": {"alertname": "NorthstarKpiBelowThreshold", "severity": "warning", "kpi": "activation_rate", "window": "1h"},
        "annotations": {"summary": "activation_rate (1h, all): the final 1h window is below 0.2"},
    }]))
    .await;

    let url = format!("{}/", stack.metrics_url().trim_end_matches("/metrics"));
    // Until the pipeline has processed everything, the board shows an earlier (consistent)
    // moment: wait for the newest event's time.
    let newest = events.iter().map(event_ms).max().unwrap_or_default();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let view: Value = match reqwest::get(format!("{url}api/v1/kpis")).await {
            Ok(r) => r.json().await.unwrap_or_default(),
            Err(_) => Value::Null,
        };
        if view["event_time_ms"].as_i64().is_some_and(|t| t >= newest) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "event time never reached {newest}: {view}"
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let dom = loop {
        let dom = chromium(&["--dump-dom"], &url);
        let wrong = mismatches(&dom, &events);
        if wrong.is_empty() && dom.contains("data-alert=\"NorthstarKpiBelowThreshold\"") {
            break dom;
        }
        assert!(
            Instant::now() < deadline,
            "the board never showed the recompute:\n{wrong:#?}\n{dom}"
        );
        tokio::time::sleep(Duration::from_secs(3)).await;
    };
    let all = cards(&dom);
    assert_eq!(
        all.first().map(|c| c.kpi.as_str()),
        Some("weekly_active_users"),
        "North Star first"
    );
    assert!(all[0].html.contains("North Star"), "{}", all[0].html);
    assert_eq!(
        all.len(),
        7,
        "one card per KPI: {:?}",
        all.iter().map(|c| &c.kpi).collect::<Vec<_>>()
    );
    let rate = all
        .iter()
        .find(|c| c.kpi == "activation_rate")
        .expect("activation_rate card");
    assert!(
        rate.html.contains("badge warning"),
        "the alert marks its KPI: {}",
        rate.html
    );
    assert!(
        dom.contains("the final 1h window is below 0.2"),
        "the alert's summary is listed"
    );
    assert!(dom.contains("<polyline"), "a trend is drawn");
    assert!(
        dom.contains("event time 20"),
        "the status line shows event time"
    );

    let shot = std::env::var("NORTHSTAR_BOARD_SCREENSHOT")
        .map(PathBuf::from)
        .unwrap_or_else(|_| dir.join("board.png"));
    chromium(
        &[
            "--window-size=1400,1500",
            &format!("--screenshot={}", shot.display()),
        ],
        &url,
    );
    let size = std::fs::metadata(&shot).map(|m| m.len()).unwrap_or(0);
    assert!(
        size > 20_000,
        "screenshot {} is {size} bytes",
        shot.display()
    );
    let unclean = stack.shutdown();
    assert!(unclean.is_empty(), "did not exit cleanly: {unclean:?}");
}
