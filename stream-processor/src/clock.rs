//! Clock sanity: an event's `receivedAt` and `timestamp` bounded against the Kafka record's own
//! timestamp, before either can move deduplication time or the watermark.
//!
//! Contract: pure, and deterministic on replay (the record timestamp is part of the input).
//! `receivedAt` is the collector's clock; a producer writing Avro to the raw topic directly can
//! get it wrong (nanoseconds, seconds, a clock years off). When it is further than
//! `max_received_skew` from the record's timestamp (the producer's create time, or the broker's
//! append time), it is replaced by the record's timestamp and counted. Then the event time:
//! ahead of the (trusted) `receivedAt` by more than `max_future_skew`, it is clamped to
//! `receivedAt` (the client's value stays in `originalTimestamp`); older than `receivedAt` by
//! more than `max_event_age`, the event is refused with reason `timestamp_too_old` (kept in the
//! dead-letter topic, never counted). Records without a timestamp (`NotAvailable`) keep their
//! `receivedAt`. See docs/kpi-catalog.md ("Bad clocks").

use northstar_schemas::Event;

use crate::validate::Invalid;

/// The bounds, in microseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClockBounds {
    pub max_received_skew_micros: i64,
    pub max_future_skew_micros: i64,
    pub max_event_age_micros: i64,
}

/// What [`bound`] changed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Corrected {
    /// `receivedAt` replaced by the record's timestamp.
    pub received_at: bool,
    /// `timestamp` clamped to `receivedAt`.
    pub timestamp: bool,
}

impl Corrected {
    pub fn any(self) -> bool {
        self.received_at || self.timestamp
    }
}

/// Bounds `event`'s clocks against `record_ts_ms` (the Kafka record's timestamp, if any).
pub fn bound(
    event: &mut Event,
    record_ts_ms: Option<i64>,
    b: &ClockBounds,
) -> Result<Corrected, Invalid> {
    let mut corrected = Corrected::default();
    if let Some(ms) = record_ts_ms.filter(|ms| *ms > 0) {
        let record_micros = ms.saturating_mul(1000);
        if event.received_at.abs_diff(record_micros) > b.max_received_skew_micros.unsigned_abs() {
            event.received_at = record_micros;
            corrected.received_at = true;
        }
    }
    if event.timestamp > event.received_at.saturating_add(b.max_future_skew_micros) {
        event.timestamp = event.received_at;
        corrected.timestamp = true;
    }
    let oldest = event.received_at.saturating_sub(b.max_event_age_micros);
    if event.timestamp < oldest {
        let days = b.max_event_age_micros / 86_400_000_000;
        return Err(Invalid::one(
            northstar_schemas::failure::FailureType::Clock,
            "timestamp_too_old",
            "timestamp",
            &format!("max_event_age_days: {days}"),
            &format!(
                "at most {days} days before receivedAt ({} µs)",
                event.received_at
            ),
            format!("{} µs since the epoch", event.timestamp),
        ));
    }
    Ok(corrected)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: i64 = 3_600_000_000;
    const NOW_MS: i64 = 1_764_000_000_000;
    const NOW: i64 = NOW_MS * 1000;

    fn bounds() -> ClockBounds {
        ClockBounds {
            max_received_skew_micros: HOUR,
            max_future_skew_micros: 300_000_000,
            max_event_age_micros: 90 * 24 * HOUR,
        }
    }

    fn event(timestamp: i64, received_at: i64) -> Event {
        let mut e = crate::test_events::track("Signed Up", "u", "m", "{}", "{}");
        e.timestamp = timestamp;
        e.received_at = received_at;
        e
    }

    #[test]
    fn sane_clocks_pass_unchanged() {
        let mut e = event(NOW - 60_000_000, NOW);
        assert_eq!(
            bound(&mut e, Some(NOW_MS), &bounds()),
            Ok(Corrected::default())
        );
        assert_eq!((e.timestamp, e.received_at), (NOW - 60_000_000, NOW));
    }

    #[test]
    fn a_received_at_in_nanoseconds_is_replaced_by_the_record_time() {
        let mut e = event(NOW, NOW * 1000);
        let c = bound(&mut e, Some(NOW_MS), &bounds()).expect("kept");
        assert!(c.received_at && !c.timestamp);
        assert_eq!(e.received_at, NOW);
    }

    #[test]
    fn a_future_event_time_is_clamped_to_the_trusted_receipt() {
        // 2099, and receivedAt 2099 too: both come from the same broken clock.
        let y2099 = 4_070_908_800_000_000;
        let mut e = event(y2099, y2099);
        let c = bound(&mut e, Some(NOW_MS), &bounds()).expect("kept");
        assert!(c.received_at && c.timestamp);
        assert_eq!((e.timestamp, e.received_at), (NOW, NOW));
    }

    #[test]
    fn an_ancient_event_time_is_refused() {
        let mut e = event(NOW - 400 * 24 * HOUR, NOW);
        let err = bound(&mut e, Some(NOW_MS), &bounds()).expect_err("refused");
        assert_eq!(err.reason, "timestamp_too_old");
        // A backfill within the bound is kept as it is.
        let mut e = event(NOW - 30 * 24 * HOUR, NOW);
        assert_eq!(
            bound(&mut e, Some(NOW_MS), &bounds()),
            Ok(Corrected::default())
        );
    }

    /// Without a record time `receivedAt` cannot be checked; the event time is still bounded
    /// by it (here: 50,000 years before a receipt in nanoseconds, refused).
    #[test]
    fn without_a_record_time_received_at_is_kept() {
        let mut e = event(NOW, NOW + 1);
        assert_eq!(bound(&mut e, None, &bounds()), Ok(Corrected::default()));
        let mut e = event(NOW, NOW * 1000);
        let err = bound(&mut e, None, &bounds()).expect_err("refused");
        assert_eq!(
            (err.reason, e.received_at),
            ("timestamp_too_old", NOW * 1000)
        );
    }
}
