//! Client contexts: what the services' consumers and producers record from librdkafka's
//! callbacks (revoked partitions, statistics as Prometheus gauges).

use std::sync::Mutex;

use rdkafka::consumer::{BaseConsumer, ConsumerContext, Rebalance};
use rdkafka::error::KafkaResult;
use rdkafka::{ClientContext, TopicPartitionList};

/// A consumer context that only records revoked partitions, for the consuming loop to drop
/// their in-memory work; the callback itself stays trivial and commits nothing.
#[derive(Debug, Default)]
pub struct RevokeTracker {
    revoked: Mutex<Vec<i32>>,
    /// Whether `revoked` is non-empty (lets the per-record check skip the lock).
    any_revoked: std::sync::atomic::AtomicBool,
    assigned: std::sync::atomic::AtomicUsize,
}

impl RevokeTracker {
    /// How many partitions the last rebalance assigned to this consumer.
    pub fn assigned(&self) -> usize {
        self.assigned.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The partitions revoked since the last call.
    pub fn take_revoked(&self) -> Vec<i32> {
        use std::sync::atomic::Ordering;
        if !self.any_revoked.load(Ordering::Acquire) {
            return Vec::new();
        }
        let mut revoked = self.revoked.lock().unwrap_or_else(|p| p.into_inner());
        self.any_revoked.store(false, Ordering::Release);
        std::mem::take(&mut *revoked)
    }
}

#[allow(clippy::expect_used)]
static CONSUMER_LAG: std::sync::LazyLock<prometheus::IntGaugeVec> = std::sync::LazyLock::new(
    || {
        prometheus::register_int_gauge_vec!(
        "northstar_consumer_lag_records",
        "Records between the consumer's position and the partition's high watermark (librdkafka statistics)",
        &["topic", "partition"]
    )
    .expect("metric registers")
    },
);

/// librdkafka statistics of a producer, exported as gauges labelled by `client` (its
/// `client.id`) and, per broker, `broker` (set `statistics.interval.ms` to enable): queue depth
/// in messages and bytes, messages and bytes sent so far, and per broker the round-trip time,
/// requests waiting to be sent or answered, transmission errors and request timeouts.
#[derive(Debug, Default)]
pub struct ProducerStats;

macro_rules! gauge_vec {
    ($name:ident, $metric:literal, $help:literal, $labels:expr) => {
        #[allow(clippy::expect_used)]
        static $name: std::sync::LazyLock<prometheus::IntGaugeVec> =
            std::sync::LazyLock::new(|| {
                prometheus::register_int_gauge_vec!($metric, $help, $labels)
                    .expect("metric registers")
            });
    };
}

gauge_vec!(
    PRODUCER_QUEUE_MESSAGES,
    "northstar_producer_queue_messages",
    "Messages in the producer's queue, not yet acknowledged (librdkafka msg_cnt)",
    &["client"]
);
gauge_vec!(
    PRODUCER_QUEUE_BYTES,
    "northstar_producer_queue_bytes",
    "Bytes of the messages in the producer's queue (librdkafka msg_size)",
    &["client"]
);
gauge_vec!(PRODUCER_SENT_MESSAGES, "northstar_producer_sent_messages", "Messages sent to brokers since the producer started (librdkafka txmsgs; a counter's value, exported as a gauge)", &["client"]);
gauge_vec!(
    PRODUCER_SENT_BYTES,
    "northstar_producer_sent_bytes",
    "Message bytes sent to brokers since the producer started (librdkafka txmsg_bytes)",
    &["client"]
);
gauge_vec!(
    BROKER_RTT_US,
    "northstar_kafka_broker_rtt_avg_microseconds",
    "Average broker round-trip time over the last statistics window (librdkafka rtt.avg)",
    &["client", "broker"]
);
gauge_vec!(
    BROKER_OUTBUF,
    "northstar_kafka_broker_outbuf_requests",
    "Requests waiting to be sent to the broker (librdkafka outbuf_cnt)",
    &["client", "broker"]
);
gauge_vec!(
    BROKER_WAITRESP,
    "northstar_kafka_broker_waitresp_requests",
    "Requests sent and waiting for the broker's answer (librdkafka waitresp_cnt)",
    &["client", "broker"]
);
gauge_vec!(
    BROKER_TX_ERRORS,
    "northstar_kafka_broker_tx_errors",
    "Transmission errors with the broker since start (librdkafka txerrs)",
    &["client", "broker"]
);
gauge_vec!(
    BROKER_REQ_TIMEOUTS,
    "northstar_kafka_broker_request_timeouts",
    "Requests to the broker that timed out since start (librdkafka req_timeouts)",
    &["client", "broker"]
);

impl ClientContext for ProducerStats {
    fn stats(&self, s: rdkafka::Statistics) {
        let client = [s.client_id.as_str()];
        let as_i64 = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        PRODUCER_QUEUE_MESSAGES
            .with_label_values(&client)
            .set(as_i64(s.msg_cnt));
        PRODUCER_QUEUE_BYTES
            .with_label_values(&client)
            .set(as_i64(s.msg_size));
        PRODUCER_SENT_MESSAGES
            .with_label_values(&client)
            .set(s.txmsgs);
        PRODUCER_SENT_BYTES
            .with_label_values(&client)
            .set(s.txmsg_bytes);
        for b in s.brokers.values().filter(|b| b.nodeid >= 0) {
            let labels = [s.client_id.as_str(), b.nodename.as_str()];
            if let Some(rtt) = &b.rtt {
                BROKER_RTT_US.with_label_values(&labels).set(rtt.avg);
            }
            BROKER_OUTBUF.with_label_values(&labels).set(b.outbuf_cnt);
            BROKER_WAITRESP
                .with_label_values(&labels)
                .set(b.waitresp_cnt);
            BROKER_TX_ERRORS
                .with_label_values(&labels)
                .set(as_i64(b.txerrs));
            BROKER_REQ_TIMEOUTS
                .with_label_values(&labels)
                .set(as_i64(b.req_timeouts));
        }
    }
}

impl ClientContext for RevokeTracker {
    /// Exports per-partition consumer lag (set `statistics.interval.ms` to enable).
    fn stats(&self, statistics: rdkafka::Statistics) {
        for (topic, t) in &statistics.topics {
            for (partition, p) in &t.partitions {
                if *partition < 0 || p.consumer_lag < 0 {
                    continue;
                }
                CONSUMER_LAG
                    .with_label_values(&[topic.as_str(), &partition.to_string()])
                    .set(p.consumer_lag);
            }
        }
    }
}

impl ConsumerContext for RevokeTracker {
    fn pre_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(tpl) = rebalance {
            let mut revoked = self.revoked.lock().unwrap_or_else(|p| p.into_inner());
            revoked.extend(tpl.elements().iter().map(|e| e.partition()));
            self.any_revoked
                .store(true, std::sync::atomic::Ordering::Release);
        }
    }

    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        let n = match rebalance {
            Rebalance::Assign(tpl) => tpl.count(),
            _ => 0,
        };
        self.assigned.store(n, std::sync::atomic::Ordering::Relaxed);
    }

    fn commit_callback(&self, result: KafkaResult<()>, _offsets: &TopicPartitionList) {
        if let Err(e) = result {
            tracing::warn!(error = %e, "offset commit failed; the next commit covers it");
        }
    }
}
