//! Stream processor metrics (`northstar_processor_*`), per input partition.
//!
//! Contract: for every partition, `events_in = events_out + duplicates + invalid` once the
//! records in flight are processed, plus the events withheld for want of consent
//! (`consent_withheld_total`, by purpose: counted once over all partitions); labels are partitions and reason codes only.

use std::sync::LazyLock;

use prometheus::{
    register_histogram, register_int_counter, register_int_counter_vec, register_int_gauge,
    register_int_gauge_vec, Histogram, IntCounter, IntCounterVec, IntGauge, IntGaugeVec,
};

macro_rules! counter {
    ($name:ident, $metric:literal, $help:literal, $labels:expr) => {
        #[allow(clippy::expect_used)]
        pub static $name: LazyLock<IntCounterVec> = LazyLock::new(|| {
            register_int_counter_vec!($metric, $help, $labels).expect("metric registers")
        });
    };
}
macro_rules! gauge {
    ($name:ident, $metric:literal, $help:literal, $labels:expr) => {
        #[allow(clippy::expect_used)]
        pub static $name: LazyLock<IntGaugeVec> = LazyLock::new(|| {
            register_int_gauge_vec!($metric, $help, $labels).expect("metric registers")
        });
    };
}

counter!(
    EVENTS_IN,
    "northstar_processor_events_in_total",
    "Records read from the raw topic",
    &["partition"]
);
counter!(
    EVENTS_OUT,
    "northstar_processor_events_out_total",
    "Valid, unique events written to the clean topic",
    &["partition"]
);
counter!(
    DUPLICATES,
    "northstar_processor_duplicates_total",
    "Events dropped as duplicates of an earlier messageId",
    &["partition"]
);
counter!(
    INVALID,
    "northstar_processor_invalid_total",
    "Records sent to the dead-letter topic, by reason and failure type",
    &["partition", "reason", "type"]
);
counter!(
    LATE_UPDATED,
    "northstar_processor_late_updated_total",
    "Late events that updated a window within the allowed lateness",
    &["partition"]
);
counter!(
    LATE_DROPPED,
    "northstar_processor_late_dropped_total",
    "Events too late for their window, per KPI (kept in the lake, not counted in KPIs); totals continue from the partition checkpoint",
    &["partition", "kpi"]
);
counter!(
    AGGREGATES_OUT,
    "northstar_processor_aggregates_out_total",
    "KPI aggregate updates emitted",
    &["partition", "final"]
);
counter!(
    COMMITS,
    "northstar_processor_commits_total",
    "Offset commits after acknowledged output",
    &["partition"]
);
gauge!(
    WATERMARK,
    "northstar_processor_watermark_seconds",
    "Event-time watermark per partition (unix seconds)",
    &["partition"]
);
gauge!(
    STATE_IDS,
    "northstar_processor_state_ids",
    "Message ids remembered for deduplication",
    &["partition"]
);
gauge!(
    OPEN_WINDOWS,
    "northstar_processor_open_windows",
    "Windows not yet final",
    &["partition"]
);
gauge!(
    COMMITTED_OFFSET,
    "northstar_processor_committed_offset",
    "Next offset committed for the partition",
    &["partition"]
);
counter!(
    SEGMENT_FOLDED,
    "northstar_processor_segment_folded_total",
    "Events whose segment value folded into __other__ (dimension cap reached), by KPI",
    &["partition", "kpi"]
);
counter!(
    FUTURE_CLAMPED,
    "northstar_processor_future_clamped_total",
    "Events more than max_future_skew_secs ahead of receivedAt, clamped to receivedAt",
    &["partition"]
);
counter!(
    RECEIVED_AT_CORRECTED,
    "northstar_processor_received_at_corrected_total",
    "Events whose receivedAt was more than max_received_skew_secs from the Kafka record's timestamp, replaced by it (a producer's clock or unit is wrong)",
    &["partition"]
);
gauge!(
    STATE_BYTES,
    "northstar_processor_state_dedup_bytes",
    "Heap bytes of the dedup set",
    &["partition"]
);
counter!(
    REPLAY_SKIPPED,
    "northstar_processor_replay_skipped_total",
    "Records skipped because the restored checkpoint already reflects them",
    &["partition"]
);
gauge!(
    CHECKPOINT_BYTES,
    "northstar_processor_checkpoint_bytes",
    "Bytes the partition's newest checkpoint wrote (its new dedup segment, merges and manifest)",
    &["partition"]
);
counter!(
    CHECKPOINT_WRITTEN,
    "northstar_processor_checkpoint_written_bytes_total",
    "Bytes written by checkpoints (segments, merges, manifests, restore bases)",
    &["partition"]
);
gauge!(
    CHECKPOINT_SEGMENTS,
    "northstar_processor_checkpoint_segments",
    "Dedup segments the partition's newest checkpoint lists",
    &["partition"]
);
gauge!(
    CHECKPOINT_OFFSET,
    "northstar_processor_checkpoint_offset",
    "Input offset of the partition's newest checkpoint",
    &["partition"]
);
#[allow(clippy::expect_used)]
pub static CHECKPOINT_SECONDS: LazyLock<Histogram> = LazyLock::new(|| {
    register_histogram!(
        "northstar_processor_checkpoint_duration_seconds",
        "Time the background writer took to make one partition's checkpoint durable"
    )
    .expect("metric registers")
});
#[allow(clippy::expect_used)]
pub static RESTORE_SECONDS: LazyLock<Histogram> = LazyLock::new(|| {
    register_histogram!(
        "northstar_processor_restore_duration_seconds",
        "Time to restore one partition's state from its checkpoint (reads and rebuild)",
        vec![0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0]
    )
    .expect("metric registers")
});
#[allow(clippy::expect_used)]
pub static CHECKPOINT_FAILURES: LazyLock<IntCounter> = LazyLock::new(|| {
    register_int_counter!(
        "northstar_processor_checkpoint_failures_total",
        "Checkpoint writes or restores that failed against the object store (input paused, retried)"
    )
    .expect("metric registers")
});
#[allow(clippy::expect_used)]
pub static CHECKPOINT_STORE_UNAVAILABLE: LazyLock<IntGauge> = LazyLock::new(|| {
    register_int_gauge!(
        "northstar_processor_checkpoint_store_unavailable",
        "1 while the checkpoint store fails and input is paused, else 0"
    )
    .expect("metric registers")
});
#[allow(clippy::expect_used)]
pub static LAST_CHECKPOINT: LazyLock<IntGauge> = LazyLock::new(|| {
    register_int_gauge!(
        "northstar_processor_last_checkpoint_timestamp_seconds",
        "When the last checkpoint round completed (checkpoint age = time() - this)"
    )
    .expect("metric registers")
});
#[allow(clippy::expect_used)]
pub static ASSIGNED: LazyLock<IntGauge> = LazyLock::new(|| {
    register_int_gauge!(
        "northstar_processor_assigned_partitions",
        "Input partitions assigned to this instance"
    )
    .expect("metric registers")
});
#[allow(clippy::expect_used)]
pub static CATCHING_UP: LazyLock<IntGauge> = LazyLock::new(|| {
    register_int_gauge!(
        "northstar_processor_catching_up",
        "1 while the newest input record processed is older than catch_up_after_ms: open windows are then emitted every catch_up_emit_interval_ms instead of every emit_interval_ms"
    )
    .expect("metric registers")
});
gauge!(
    WATERMARK_LAG,
    "northstar_processor_watermark_lag_seconds",
    "Wall-clock time minus the partition's event-time watermark",
    &["partition"]
);
gauge!(
    CHECKPOINT_TIME,
    "northstar_processor_checkpoint_timestamp_seconds",
    "When the partition's newest checkpoint was written (checkpoint age = time() - this)",
    &["partition"]
);
counter!(
    PLAN_EVENTS,
    "northstar_processor_plan_events_total",
    "Events checked against the enforced tracking plan, by outcome (passed, allowed, flagged, quarantined)",
    &["outcome"]
);
counter!(
    PLAN_VIOLATIONS,
    "northstar_processor_plan_violations_total",
    "Tracking-plan violations by event, property path and violation type, with what happened to the event (labels: names the plan declares, else unplanned)",
    &["event", "property", "violation", "action"]
);
counter!(
    PLAN_SHADOW_EVENTS,
    "northstar_processor_plan_shadow_events_total",
    "Events checked against the shadow plan, by what its policies would have done (nothing is done)",
    &["would"]
);
counter!(
    PLAN_SHADOW_VIOLATIONS,
    "northstar_processor_plan_shadow_violations_total",
    "Shadow-plan violations by event, property path and violation type, with what would have happened to the event",
    &["event", "property", "violation", "would"]
);
gauge!(
    PLAN_INFO,
    "northstar_processor_plan_info",
    "The tracking plans in use: 1 per role (enforced, shadow), plan id and version",
    &["role", "plan", "version"]
);

#[allow(clippy::expect_used)]
pub static PII_HASHED: LazyLock<IntCounter> = LazyLock::new(|| {
    register_int_counter!(
        "northstar_processor_pii_hashed_total",
        "Values the tracking plan classes as PII replaced by their keyed hash before any output"
    )
    .expect("metric registers")
});
#[allow(clippy::expect_used)]
pub static PII_DROPPED: LazyLock<IntCounter> = LazyLock::new(|| {
    register_int_counter!(
        "northstar_processor_pii_dropped_total",
        "Values the tracking plan classes as PII removed before any output"
    )
    .expect("metric registers")
});
counter!(
    CONSENT_ANONYMISED,
    "northstar_processor_consent_anonymised_total",
    "Events kept without what identifies the person because they did not consent to their purpose (plan_policies.consent_refused = anonymise), by purpose",
    &["purpose"]
);

counter!(
    CONSENT_WITHHELD,
    "northstar_processor_consent_withheld_total",
    "Events dropped from every output because the person did not consent to their purpose (context.consent.categoryPreferences, else the plan's default), by purpose",
    &["purpose"]
);
