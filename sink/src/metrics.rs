//! Sink health metrics (`northstar_lake_sink_*`, `northstar_metrics_sink_*`).
//!
//! Contract: labels are partitions and reason codes only.

use std::sync::LazyLock;

use prometheus::{
    register_gauge, register_histogram, register_int_counter, register_int_counter_vec,
    register_int_gauge, register_int_gauge_vec, Gauge, Histogram, IntCounter, IntCounterVec,
    IntGauge, IntGaugeVec,
};

macro_rules! metric {
    ($name:ident: $ty:ty = $reg:ident!($($args:tt)*)) => {
        #[allow(clippy::expect_used)]
        pub static $name: LazyLock<$ty> = LazyLock::new(|| $reg!($($args)*).expect("metric registers"));
    };
}

metric!(LAKE_FILES: IntCounterVec = register_int_counter_vec!("northstar_lake_sink_files_written_total", "Parquet files written, by table (events, dlq)", &["table"]));
metric!(LAKE_BYTES: IntCounterVec = register_int_counter_vec!("northstar_lake_sink_bytes_written_total", "Parquet bytes written, by table", &["table"]));
metric!(LAKE_ROWS: IntCounterVec = register_int_counter_vec!("northstar_lake_sink_rows_written_total", "Rows written to Parquet, by table", &["table"]));
metric!(LAKE_FLUSH_SECONDS: Histogram = register_histogram!("northstar_lake_sink_flush_duration_seconds", "Time to encode, upload and commit one flush"));
metric!(LAKE_UPLOAD_ERRORS: IntCounter = register_int_counter!("northstar_lake_sink_upload_errors_total", "Failed writes to the lake: file upload attempts (each file is tried upload_attempts times) and ledger writes; past them the partition pauses and its flush is repeated after a backoff"));
metric!(LAKE_REJECTED: IntCounterVec = register_int_counter_vec!("northstar_lake_sink_rejected_total", "Records sent to the dead-letter topic by the lake sink, by reason", &["reason"]));
metric!(LAKE_OPEN_FILES: IntGaugeVec = register_int_gauge_vec!("northstar_lake_sink_open_files", "Files being buffered, by table", &["table"]));
metric!(LAKE_OPEN_FILES_CAPPED: IntCounter = register_int_counter!("northstar_lake_sink_open_files_capped_total", "Flushes forced because more than max_open_files files were buffered"));
metric!(LAKE_BUDGET_FLUSHES: IntCounter = register_int_counter!("northstar_lake_sink_budget_flushes_total", "Flushes forced because more than max_buffered_bytes were buffered over all partitions (the largest partitions first)"));
metric!(LAKE_NAMES_CAPPED: IntCounter = register_int_counter!("northstar_lake_sink_event_names_capped_total", "Rows written under event_name=__other__ because their partition already had max_event_names event_name directories"));
metric!(LAKE_BUFFERED_BYTES: IntGaugeVec = register_int_gauge_vec!("northstar_lake_sink_buffered_bytes", "Bytes of events buffered, not yet in the lake, by table (bounded by max_buffered_bytes)", &["table"]));
metric!(LAKE_PAUSED_PARTITIONS: IntGaugeVec = register_int_gauge_vec!("northstar_lake_sink_paused_partitions", "Partitions paused after a flush failed against the object store, waiting for their backoff to read and flush their range again, by table", &["table"]));
metric!(LAKE_TYPE_CONFLICTS: IntCounter = register_int_counter!("northstar_lake_sink_type_conflicts_total", "Values left out of a typed column (context_* or prop_*) because their type differs from the column's; they stay in the JSON column"));
metric!(LAKE_BUFFERED_ROWS: IntGaugeVec = register_int_gauge_vec!("northstar_lake_sink_buffered_rows", "Rows buffered, not yet in the lake, by table", &["table"]));
metric!(LAKE_REPLAY_SKIPPED: IntCounter = register_int_counter!("northstar_lake_sink_replay_skipped_total", "Records skipped because their source position is already in the lake (re-emitted by a restored processor)"));
metric!(LAKE_OLDEST_UNFLUSHED: IntGaugeVec = register_int_gauge_vec!("northstar_lake_sink_oldest_unflushed_seconds", "How long the oldest buffered row has waited for its file (wall clock), by table; 0 when nothing is buffered", &["table"]));
metric!(LAKE_OLDEST_UNFLUSHED_EVENT: IntGaugeVec = register_int_gauge_vec!("northstar_lake_sink_oldest_unflushed_event_age_seconds", "Event-time age of the earliest event buffered and not yet in the lake (now minus its timestamp), by table; 0 when nothing is buffered. Late events raise it by their lateness", &["table"]));

/// Registers every lake-sink series at zero, so dashboards and alerts see them before the
/// first event (a counter that was never incremented is otherwise absent).
pub fn register_lake(tables: &[&str]) {
    for c in [
        &*LAKE_UPLOAD_ERRORS,
        &*LAKE_OPEN_FILES_CAPPED,
        &*LAKE_BUDGET_FLUSHES,
        &*LAKE_NAMES_CAPPED,
        &*LAKE_TYPE_CONFLICTS,
        &*LAKE_REPLAY_SKIPPED,
    ] {
        c.inc_by(0);
    }
    LazyLock::force(&LAKE_FLUSH_SECONDS);
    LazyLock::force(&LAKE_REJECTED);
    for t in tables {
        for c in [&*LAKE_FILES, &*LAKE_BYTES, &*LAKE_ROWS] {
            c.with_label_values(&[t]).inc_by(0);
        }
        for g in [
            &*LAKE_OPEN_FILES,
            &*LAKE_BUFFERED_ROWS,
            &*LAKE_BUFFERED_BYTES,
            &*LAKE_PAUSED_PARTITIONS,
            &*LAKE_OLDEST_UNFLUSHED,
            &*LAKE_OLDEST_UNFLUSHED_EVENT,
        ] {
            g.with_label_values(&[t]).set(0);
        }
    }
}

metric!(AGG_RECORDS: IntCounter = register_int_counter!("northstar_metrics_sink_records_total", "Aggregate records read"));
metric!(AGG_STALE: IntCounter = register_int_counter!("northstar_metrics_sink_stale_skipped_total", "Aggregate records skipped because a newer value from the same source position was applied"));
metric!(AGG_REJECTED: IntCounterVec = register_int_counter_vec!("northstar_metrics_sink_rejected_total", "Aggregate records that could not be decoded, by reason", &["reason"]));
metric!(AGG_IGNORED: IntCounterVec = register_int_counter_vec!("northstar_metrics_sink_ignored_total", "Aggregate records of KPIs, windows or dimensions the catalog does not hold, by reason", &["reason"]));
metric!(AGG_CHANGED_FINAL: IntCounter = register_int_counter!("northstar_metrics_sink_changed_final_total", "Aggregate records that changed a window already final here (its history point may be wrong in Prometheus); should stay 0"));
metric!(AGG_WINDOWS: IntGauge = register_int_gauge!("northstar_metrics_sink_windows", "Window records held (window, segment, input partition)"));
metric!(AGG_SERIES: IntGauge = register_int_gauge!("northstar_metrics_sink_series", "Known KPI series (KPI, window, segment)"));
metric!(AGG_HISTORY_POINTS: IntGauge = register_int_gauge!("northstar_metrics_sink_history_points", "Points of northstar_kpi_final_window_value in the last exposition"));
metric!(CAUGHT_UP: IntGauge = register_int_gauge!("northstar_metrics_sink_caught_up", "1 once the aggregates topic was read up to its end as seen at start (KPI series are exposed only then)"));
metric!(CATCH_UP_SECONDS: Gauge = register_gauge!("northstar_metrics_sink_catch_up_seconds", "How long reading the aggregates topic up to its end as seen at start took (set when caught up)"));
metric!(CATCH_UP_REMAINING: IntGauge = register_int_gauge!("northstar_metrics_sink_catch_up_remaining_records", "Records left to read before the sink is caught up"));
metric!(RENDER_SECONDS: Histogram = register_histogram!("northstar_metrics_sink_render_duration_seconds", "Time to render /metrics"));

/// Registers every metrics-sink series at zero.
pub fn register_metrics_sink() {
    for c in [&*AGG_RECORDS, &*AGG_STALE, &*AGG_CHANGED_FINAL] {
        c.inc_by(0);
    }
    for reason in ["not_wire_format", "unknown_schema", "undecodable"] {
        AGG_REJECTED.with_label_values(&[reason]).inc_by(0);
    }
    for reason in [
        "kpi_not_in_catalog",
        "window_not_in_catalog",
        "window_not_aligned",
        "segments_differ",
    ] {
        AGG_IGNORED.with_label_values(&[reason]).inc_by(0);
    }
    for g in [
        &*AGG_WINDOWS,
        &*AGG_SERIES,
        &*AGG_HISTORY_POINTS,
        &*CAUGHT_UP,
        &*CATCH_UP_REMAINING,
    ] {
        g.set(0);
    }
    LazyLock::force(&CATCH_UP_SECONDS);
    LazyLock::force(&RENDER_SECONDS);
}
