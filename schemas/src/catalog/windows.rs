//! Durations and tumbling windows of the KPI catalog.
//!
//! Contract: windows are tumbling and aligned in UTC: `s`, `m`, `h` and `d` windows to the Unix
//! epoch, `w` windows to Monday 00:00 UTC (ISO weeks; the epoch was a Thursday), so a `1w`
//! window is the same calendar week a data engineer gets from DuckDB's `date_trunc('week', …)`.
//! Every window start is a multiple of the window length away from its alignment point, so
//! shifting a window by a multiple of its length gives another window of the same KPI.

/// Milliseconds per unit.
const SECOND: i64 = 1_000;
const MINUTE: i64 = 60 * SECOND;
const HOUR: i64 = 60 * MINUTE;
const DAY: i64 = 24 * HOUR;
/// A week in milliseconds.
pub const WEEK_MS: i64 = 7 * DAY;
/// Monday 1970-01-05 00:00 UTC: where week windows are aligned.
const FIRST_MONDAY_MS: i64 = 4 * DAY;

/// Parses a duration such as `30s`, `10m`, `1h`, `8d` or `16w` into milliseconds (one number,
/// one unit; more than zero).
pub fn parse_duration(text: &str) -> Option<i64> {
    let text = text.trim();
    let (num, unit) = text.split_at(text.find(|c: char| !c.is_ascii_digit())?);
    let n: i64 = num.parse().ok().filter(|n| *n > 0)?;
    n.checked_mul(unit_millis(unit)?)
}

fn unit_millis(unit: &str) -> Option<i64> {
    Some(match unit {
        "s" => SECOND,
        "m" => MINUTE,
        "h" => HOUR,
        "d" => DAY,
        "w" => WEEK_MS,
        _ => return None,
    })
}

/// A duration in the catalog's notation, with the largest unit that divides it (`90m` → `90m`,
/// `120m` → `2h`); PromQL reads the same notation.
pub fn format_duration(ms: i64) -> String {
    for (unit, len) in [
        ("w", WEEK_MS),
        ("d", DAY),
        ("h", HOUR),
        ("m", MINUTE),
        ("s", SECOND),
    ] {
        if ms > 0 && ms % len == 0 {
            return format!("{}{unit}", ms / len);
        }
    }
    format!("{ms}ms")
}

/// A window length.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct WindowSpec {
    /// As written, e.g. `1m`; the `window` label.
    pub label: String,
    pub millis: i64,
    /// Where windows are aligned: 0 (the epoch) or Monday 1970-01-05 for week windows.
    pub offset_ms: i64,
    /// How long a closed window is kept (in `kpi.aggregates` and the metrics sink), counted
    /// from its end.
    pub retention_ms: i64,
}

impl WindowSpec {
    /// Parses `30s`, `1m`, `15m`, `1h`, `1d`, `1w`, with the default retention for its length.
    pub fn parse(text: &str) -> Option<WindowSpec> {
        let text = text.trim();
        let millis = parse_duration(text)?;
        let offset_ms = if text.ends_with('w') {
            FIRST_MONDAY_MS
        } else {
            0
        };
        Some(WindowSpec {
            label: text.to_string(),
            millis,
            offset_ms,
            retention_ms: default_retention_ms(millis),
        })
    }

    /// The start of the window containing `ts_ms` (clamped to `i64::MIN` for event times so
    /// early that their window would start before it).
    #[inline]
    pub fn start(&self, ts_ms: i64) -> i64 {
        // The hot path (once per event and window): 64-bit unless it would overflow.
        let fast = ts_ms
            .checked_sub(self.offset_ms)
            .and_then(|t| t.div_euclid(self.millis).checked_mul(self.millis))
            .and_then(|floor| floor.checked_add(self.offset_ms));
        if let Some(start) = fast {
            return start;
        }
        let (ts, offset, len) = (
            i128::from(ts_ms),
            i128::from(self.offset_ms),
            i128::from(self.millis),
        );
        let start = (ts - offset).div_euclid(len) * len + offset;
        i64::try_from(start).unwrap_or(i64::MIN)
    }

    /// Whether shifting a window by a week gives another window (week-over-week comparisons
    /// need it).
    pub fn divides_week(&self) -> bool {
        WEEK_MS % self.millis == 0
    }

    /// Closed windows kept per series (the ring of record keys in `kpi.aggregates`): enough
    /// for the retention plus the window that is open and the ones still within lateness.
    pub fn retained_windows(&self, lateness_ms: i64) -> i64 {
        let span = self.retention_ms + self.millis + lateness_ms.max(0);
        span.div_euclid(self.millis) + 2
    }
}

/// The retention of closed windows when the catalog names none: long enough for the dashboards'
/// trends and week-over-week comparisons, short enough to bound the series.
pub fn default_retention_ms(window_ms: i64) -> i64 {
    if window_ms < HOUR {
        3 * HOUR
    } else if window_ms < DAY {
        8 * DAY
    } else if window_ms < WEEK_MS {
        35 * DAY
    } else {
        16 * window_ms
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30s"), Some(30_000));
        assert_eq!(parse_duration("10m"), Some(600_000));
        assert_eq!(parse_duration("16w"), Some(16 * WEEK_MS));
        for bad in ["", "m", "0m", "5 minutes", "1y", "-1h", "1.5h"] {
            assert_eq!(parse_duration(bad), None, "{bad}");
        }
        assert_eq!(format_duration(7_200_000), "2h");
        assert_eq!(format_duration(5_400_000), "90m");
        assert_eq!(format_duration(WEEK_MS), "1w");
        assert_eq!(format_duration(3_599_000), "3599s");
    }

    #[test]
    fn weeks_start_on_monday() {
        let w = WindowSpec::parse("1w").expect("1w");
        // 2026-12-02 (a Wednesday) 15:30 UTC → Monday 2026-11-30 00:00 UTC.
        let wed = 1_796_225_400_000;
        assert_eq!(w.start(wed), 1_795_996_800_000);
        assert_eq!(
            w.start(1_795_996_800_000),
            1_795_996_800_000,
            "inclusive start"
        );
        assert_eq!(w.start(1_795_996_799_999), 1_795_996_800_000 - WEEK_MS);
        // Before the first Monday after the epoch.
        assert_eq!(w.start(0), FIRST_MONDAY_MS - WEEK_MS);
        assert_eq!(w.start(i64::MIN), i64::MIN, "no overflow at the extremes");
        assert!(
            w.start(i64::MAX) > i64::MAX - WEEK_MS,
            "no overflow at the extremes"
        );
        let d = WindowSpec::parse("1d").expect("1d");
        assert_eq!(d.start(wed), 1_796_169_600_000);
        assert!(d.divides_week() && w.divides_week());
        assert!(!WindowSpec::parse("2w").expect("2w").divides_week());
        assert!(!WindowSpec::parse("11m").expect("11m").divides_week());
        assert!(WindowSpec::parse("45m").expect("45m").divides_week());
    }

    proptest::proptest! {
        /// The 64-bit fast path gives the exact window start wherever it does not overflow,
        /// and falls back to the 128-bit one (clamped) where it would.
        #[test]
        fn start_is_the_exact_floor(
            ts in proptest::prop_oneof![
                proptest::num::i64::ANY,
                -4_000_000_000_000i64..4_000_000_000_000,
                (i64::MIN..i64::MIN + 2 * WEEK_MS),
                (i64::MAX - 2 * WEEK_MS..=i64::MAX),
            ],
            label in proptest::sample::select(vec!["1s", "1m", "7m", "1h", "1d", "1w", "3w"]),
        ) {
            let w = WindowSpec::parse(label).expect("window");
            let (t, o, l) = (i128::from(ts), i128::from(w.offset_ms), i128::from(w.millis));
            let exact = (t - o).div_euclid(l) * l + o;
            let start = w.start(ts);
            proptest::prop_assert_eq!(start, i64::try_from(exact).unwrap_or(i64::MIN));
        }
    }

    #[test]
    fn retention_defaults_and_ring() {
        let m = WindowSpec::parse("1m").expect("1m");
        assert_eq!(m.retention_ms, 3 * HOUR);
        // 180 retained + the open one + 10 within lateness + 2 spare.
        assert_eq!(m.retained_windows(600_000), 193);
        assert_eq!(
            WindowSpec::parse("1w").expect("1w").retention_ms,
            16 * WEEK_MS
        );
        assert_eq!(WindowSpec::parse("1d").expect("1d").retention_ms, 35 * DAY);
    }
}
