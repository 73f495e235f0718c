//! When the open windows are emitted: every `emit_interval_ms` while the input is current, and
//! only every `catch_up_emit_interval_ms` while the processor is catching up on a backlog.
//!
//! Contract: [`Cadence`] is pure (the caller passes the wall clock). The input is *behind*
//! when the newest Kafka record timestamp processed so far is more than `catch_up_after_ms`
//! older than the wall clock at the tick; then a tick emits only if the catch-up interval has
//! passed since the last emission. Otherwise every tick emits. Nothing is lost either way: a
//! skipped tick leaves the changed windows for the next emission, which carries their latest
//! values (docs/adr/0010-catch-up-emission.md). Why: freshness cannot beat the backlog, and
//! Prometheus scrapes every 5–15 s, so emitting every 500 ms while minutes behind only adds
//! aggregate records, CPU and broker load to a processor that needs them for catching up.

use std::time::Duration;

/// The emission cadence of one processor.
#[derive(Debug, Clone)]
pub struct Cadence {
    catch_up_after_ms: i64,
    catch_up_interval: Duration,
    /// The newest Kafka record timestamp processed (ms since the epoch), `None` before any.
    newest_record_ms: Option<i64>,
}

impl Cadence {
    /// A cadence that slows to `catch_up_interval` once the input is `catch_up_after_ms` behind.
    pub fn new(catch_up_after_ms: i64, catch_up_interval: Duration) -> Self {
        Self {
            catch_up_after_ms,
            catch_up_interval,
            newest_record_ms: None,
        }
    }

    /// Notes a processed record's Kafka timestamp (`None`: the record has none).
    #[inline]
    pub fn saw(&mut self, record_ms: Option<i64>) {
        if let Some(ms) = record_ms {
            if self.newest_record_ms.is_none_or(|n| ms > n) {
                self.newest_record_ms = Some(ms);
            }
        }
    }

    /// Whether the input is behind at wall-clock time `now_ms`.
    pub fn behind(&self, now_ms: i64) -> bool {
        self.newest_record_ms
            .is_some_and(|n| now_ms.saturating_sub(n) > self.catch_up_after_ms)
    }

    /// Whether a tick at `now_ms`, `since_emission` after the last emission, emits.
    pub fn due(&self, now_ms: i64, since_emission: Duration) -> bool {
        !self.behind(now_ms) || since_emission >= self.catch_up_interval
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SLOW: Duration = Duration::from_secs(5);

    #[test]
    fn current_input_emits_at_every_tick() {
        let mut c = Cadence::new(3_000, SLOW);
        c.saw(Some(10_000));
        assert!(c.due(12_000, Duration::from_millis(500)));
        assert!(c.due(13_000, Duration::ZERO));
    }

    #[test]
    fn a_backlog_emits_at_the_catch_up_interval() {
        let mut c = Cadence::new(3_000, SLOW);
        c.saw(Some(10_000));
        assert!(c.behind(13_001));
        assert!(!c.due(60_000, Duration::from_millis(4_999)));
        assert!(c.due(60_000, SLOW));
    }

    #[test]
    fn catching_up_restores_the_fast_cadence() {
        let mut c = Cadence::new(3_000, SLOW);
        c.saw(Some(10_000));
        assert!(!c.due(60_000, Duration::from_millis(500)));
        c.saw(Some(59_500));
        c.saw(Some(20_000)); // an older record (another partition) does not move it back
        assert!(c.due(60_000, Duration::from_millis(500)));
    }

    #[test]
    fn no_record_or_no_timestamp_is_not_behind() {
        let mut c = Cadence::new(3_000, SLOW);
        assert!(c.due(i64::MAX, Duration::ZERO));
        c.saw(None);
        assert!(!c.behind(i64::MAX));
        c.saw(Some(i64::MIN));
        assert!(c.behind(i64::MAX), "saturating, not overflowing");
    }
}
