//! No silent stall: a consumer that holds no partition while its topic has input nobody
//! consumes says so and rejoins its group.
//!
//! Contract: [`GroupWatch`] is pure. Fed an [`Observation`] every few seconds (how many
//! partitions this member holds; the group's committed offsets on the topic and the records
//! between them and the high watermarks), it reports [`Verdict::Stalled`] once the member has
//! held nothing for `grace` while the backlog is positive and the group's committed offsets
//! have not moved (nobody else consumes either: a spare member of a group with more members
//! than partitions is idle, not stalled), and [`Verdict::Rejoin`] once that has lasted
//! `rejoin_after`, then again every `rejoin_after` while it lasts. [`observe`] measures through
//! a consumer, [`rejoin`] leaves and rejoins (a new member: brokers that lose track of a group,
//! such as Tansu 0.6.0 after an unclean stop, assign it again; docs/operations.md).

use std::sync::LazyLock;
use std::time::{Duration, Instant};

use prometheus::{IntCounterVec, IntGaugeVec};
use rdkafka::consumer::{Consumer, ConsumerContext, StreamConsumer};
use rdkafka::error::KafkaResult;
use rdkafka::{Offset, TopicPartitionList};

use crate::admin::Readiness;

#[allow(clippy::expect_used)]
static STALLED: LazyLock<IntGaugeVec> = LazyLock::new(|| {
    prometheus::register_int_gauge_vec!(
        "northstar_consumer_stalled",
        "1 while this consumer holds no partition although its topic has input that nobody in its group consumes",
        &["group"]
    )
    .expect("metric registers")
});

#[allow(clippy::expect_used)]
static ASSIGNED: LazyLock<IntGaugeVec> = LazyLock::new(|| {
    prometheus::register_int_gauge_vec!(
        "northstar_consumer_assigned_partitions",
        "Partitions this consumer holds in its group (updated every few seconds)",
        &["group"]
    )
    .expect("metric registers")
});

#[allow(clippy::expect_used)]
static REJOINS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    prometheus::register_int_counter_vec!(
        "northstar_consumer_rejoins_total",
        "Times this consumer left and rejoined its group after a stall",
        &["group"]
    )
    .expect("metric registers")
});

/// What a member sees of its group on one topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observation {
    /// Partitions this member holds.
    pub assigned: usize,
    /// The group's committed offset per partition (-1: none).
    pub committed: Vec<i64>,
    /// Records between the committed offsets (else the log starts) and the high watermarks.
    pub backlog: i64,
}

/// What to do about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Holding partitions, or nothing waits, or the group is making progress without us.
    Fine,
    /// Holding nothing while input waits and nobody consumes it, for this long: not ready.
    Stalled(Duration),
    /// Stalled for `rejoin_after`: leave and rejoin the group now.
    Rejoin(Duration),
}

/// The stall detector of one consumer.
#[derive(Debug, Clone)]
pub struct GroupWatch {
    grace: Duration,
    rejoin_after: Duration,
    stalled_since: Option<Instant>,
    last_rejoin: Option<Instant>,
    committed: Vec<i64>,
}

impl GroupWatch {
    pub fn new(grace: Duration, rejoin_after: Duration) -> Self {
        Self {
            grace,
            rejoin_after,
            stalled_since: None,
            last_rejoin: None,
            committed: Vec::new(),
        }
    }

    /// Whether `observe` needs an observation: only while nothing is held (the measure costs
    /// broker round trips).
    pub fn wants(&self, assigned: usize) -> bool {
        assigned == 0
    }

    /// Judges one observation made at `now`.
    pub fn judge(&mut self, obs: &Observation, now: Instant) -> Verdict {
        let moved = obs.committed != self.committed;
        self.committed.clone_from(&obs.committed);
        if obs.assigned > 0 || obs.backlog <= 0 || moved {
            self.stalled_since = None;
            self.last_rejoin = None;
            return Verdict::Fine;
        }
        let since = *self.stalled_since.get_or_insert(now);
        let stalled = now.duration_since(since);
        let last = self.last_rejoin.unwrap_or(since);
        if now.duration_since(last) >= self.rejoin_after {
            self.last_rejoin = Some(now);
            return Verdict::Rejoin(stalled);
        }
        if stalled >= self.grace {
            Verdict::Stalled(stalled)
        } else {
            Verdict::Fine
        }
    }

    /// Forgets a stall (this member got partitions).
    pub fn reset(&mut self) {
        self.stalled_since = None;
        self.last_rejoin = None;
    }
}

/// Measures the group's committed offsets and backlog on `topic` (blocking broker round trips,
/// each bounded by `timeout`).
pub fn observe<C: ConsumerContext>(
    consumer: &StreamConsumer<C>,
    topic: &str,
    assigned: usize,
    timeout: Duration,
) -> KafkaResult<Observation> {
    let metadata = consumer.fetch_metadata(Some(topic), timeout)?;
    let mut partitions: Vec<i32> = metadata
        .topics()
        .iter()
        .filter(|t| t.name() == topic)
        .flat_map(|t| t.partitions().iter().map(|p| p.id()))
        .collect();
    partitions.sort_unstable();
    let mut tpl = TopicPartitionList::new();
    for p in &partitions {
        tpl.add_partition(topic, *p);
    }
    let committed = consumer.committed_offsets(tpl, timeout)?;
    let mut offsets = Vec::with_capacity(partitions.len());
    let mut backlog = 0;
    for p in &partitions {
        let (low, high) = consumer.fetch_watermarks(topic, *p, timeout)?;
        let at = match committed.find_partition(topic, *p).map(|e| e.offset()) {
            Some(Offset::Offset(o)) => o,
            _ => -1,
        };
        offsets.push(at);
        backlog += (high - if at >= 0 { at } else { low }).max(0);
    }
    Ok(Observation {
        assigned,
        committed: offsets,
        backlog,
    })
}

/// Leaves the group and joins it again as a new member, subscribed to `topics`.
pub fn rejoin<C: ConsumerContext>(
    consumer: &StreamConsumer<C>,
    topics: &[&str],
) -> KafkaResult<()> {
    consumer.unsubscribe();
    consumer.subscribe(topics)
}

/// One check of a consumer of `topic` in `group` holding `assigned` partitions (call every few
/// seconds): measures only while nothing is held, sets `readiness`, logs a stall once, rejoins
/// when due. Blocking (broker round trips): call from a blocking context.
pub fn check<C: ConsumerContext>(
    watch: &mut GroupWatch,
    consumer: &StreamConsumer<C>,
    topic: &str,
    group: &str,
    assigned: usize,
    readiness: &Readiness,
) {
    let stalled = STALLED.with_label_values(&[group]);
    ASSIGNED
        .with_label_values(&[group])
        .set(i64::try_from(assigned).unwrap_or(i64::MAX));
    if !watch.wants(assigned) {
        watch.reset();
        stalled.set(0);
        readiness.set(true);
        return;
    }
    let obs = match observe(consumer, topic, assigned, Duration::from_secs(5)) {
        Ok(obs) => obs,
        Err(e) => {
            tracing::debug!(error = %e, topic, "cannot measure the group's backlog");
            return;
        }
    };
    match watch.judge(&obs, Instant::now()) {
        Verdict::Fine => {
            stalled.set(0);
            readiness.set(true);
        }
        Verdict::Stalled(d) => {
            if stalled.get() == 0 {
                tracing::warn!(
                    topic,
                    group,
                    backlog = obs.backlog,
                    seconds = d.as_secs(),
                    "holding no partition while input waits and the group commits nothing: not ready"
                );
            }
            stalled.set(1);
            readiness.set(false);
        }
        Verdict::Rejoin(d) => {
            stalled.set(1);
            readiness.set(false);
            REJOINS.with_label_values(&[group]).inc();
            tracing::warn!(
                topic,
                group,
                backlog = obs.backlog,
                seconds = d.as_secs(),
                "still no partition: leaving and rejoining the consumer group"
            );
            if let Err(e) = rejoin(consumer, &[topic]) {
                tracing::error!(error = %e, topic, "cannot rejoin the consumer group");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    fn obs(assigned: usize, committed: &[i64], backlog: i64) -> Observation {
        Observation {
            assigned,
            committed: committed.to_vec(),
            backlog,
        }
    }

    #[test]
    fn a_member_left_without_partitions_stalls_then_rejoins_and_again() {
        let t0 = Instant::now();
        let mut w = GroupWatch::new(10 * S, 60 * S);
        let stuck = obs(0, &[5, 5, 5], 300);
        assert_eq!(
            w.judge(&stuck, t0),
            Verdict::Fine,
            "first sight: the offsets are new"
        );
        assert_eq!(
            w.judge(&stuck, t0 + 5 * S),
            Verdict::Fine,
            "within the grace"
        );
        assert_eq!(w.judge(&stuck, t0 + 16 * S), Verdict::Stalled(11 * S));
        assert_eq!(w.judge(&stuck, t0 + 65 * S), Verdict::Rejoin(60 * S));
        assert_eq!(w.judge(&stuck, t0 + 70 * S), Verdict::Stalled(65 * S));
        assert_eq!(w.judge(&stuck, t0 + 126 * S), Verdict::Rejoin(121 * S));
        // The rejoin worked: partitions held.
        assert_eq!(
            w.judge(&obs(3, &[5, 5, 5], 300), t0 + 130 * S),
            Verdict::Fine
        );
        assert_eq!(
            w.judge(&stuck, t0 + 135 * S),
            Verdict::Fine,
            "a new stall starts over"
        );
    }

    #[test]
    fn a_spare_member_of_a_consuming_group_is_fine() {
        let t0 = Instant::now();
        let mut w = GroupWatch::new(10 * S, 60 * S);
        // More members than partitions: this one holds nothing, the others commit.
        for i in 0..40 {
            let committed = [100 + i * 10, 200 + i * 10, 300];
            let v = w.judge(&obs(0, &committed, 50), t0 + 5 * S * i as u32);
            assert_eq!(v, Verdict::Fine);
        }
    }

    #[test]
    fn nothing_to_consume_is_not_a_stall() {
        let t0 = Instant::now();
        let mut w = GroupWatch::new(10 * S, 60 * S);
        for i in 0..30 {
            assert_eq!(
                w.judge(&obs(0, &[7, 7, 7], 0), t0 + 5 * S * i),
                Verdict::Fine
            );
        }
    }
}
