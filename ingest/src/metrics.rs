//! Ingest metrics (`northstar_ingest_*`), registered in the process-wide registry.
//!
//! Contract: labels are route, status and reason codes only — never ids or free text.

use std::sync::LazyLock;

use prometheus::{
    register_histogram_vec, register_int_counter, register_int_counter_vec, register_int_gauge,
    HistogramVec, IntCounter, IntCounterVec, IntGauge,
};

#[allow(clippy::expect_used)]
pub static REQUESTS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        "northstar_ingest_requests_total",
        "HTTP requests by route and status",
        &["route", "status"]
    )
    .expect("metric registers")
});

#[allow(clippy::expect_used)]
pub static REQUEST_SECONDS: LazyLock<HistogramVec> = LazyLock::new(|| {
    register_histogram_vec!(
        "northstar_ingest_request_duration_seconds",
        "Time from request to response, including broker acknowledgement",
        &["route"],
        vec![0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0]
    )
    .expect("metric registers")
});

#[allow(clippy::expect_used)]
pub static EVENTS_ACCEPTED: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        "northstar_ingest_events_accepted_total",
        "Events acknowledged by the broker, by type",
        &["type"]
    )
    .expect("metric registers")
});

#[allow(clippy::expect_used)]
pub static SUPPRESSED_SUBJECTS: LazyLock<IntGauge> = LazyLock::new(|| {
    register_int_gauge!(
        "northstar_ingest_suppressed_subjects",
        "Subjects on the suppression list the collector has read (-1: not consulted, no PII key)"
    )
    .expect("metric registers")
});

#[allow(clippy::expect_used)]
pub static EVENTS_SUPPRESSED: LazyLock<IntCounter> = LazyLock::new(|| {
    register_int_counter!(
        "northstar_ingest_events_suppressed_total",
        "Events refused because their userId or anonymousId is on the suppression list"
    )
    .expect("metric registers")
});

pub static EVENTS_REJECTED: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        "northstar_ingest_events_rejected_total",
        "Requests rejected, by reason (each rejected request answers with an HTTP error)",
        &["reason"]
    )
    .expect("metric registers")
});

#[allow(clippy::expect_used)]
pub static DELIVERY_ERRORS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        "northstar_ingest_delivery_errors_total",
        "Events the broker did not acknowledge",
        &["kind"]
    )
    .expect("metric registers")
});

#[allow(clippy::expect_used)]
pub static IN_FLIGHT: LazyLock<IntGauge> = LazyLock::new(|| {
    register_int_gauge!(
        "northstar_ingest_in_flight_events",
        "Events sent to the broker and not yet acknowledged"
    )
    .expect("metric registers")
});

#[allow(clippy::expect_used)]
pub static CLOCK_FLAGGED: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        "northstar_ingest_timestamps_flagged_total",
        "Events accepted with a timestamp beyond clock.max_future_secs / max_past_secs of their receipt (marked in context.northstar.clock_flag), by direction",
        &["direction"]
    )
    .expect("metric registers")
});
