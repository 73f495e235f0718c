//! The data-quality and pipeline-health dashboard.
//!
//! Contract: the accounting identity is shown stage by stage over the dashboard's time range
//! (accepted at ingest, processed, clean, dead-lettered, duplicates, lake rows) with the two
//! differences that must stay 0; then what delays or loses data: dead letters by reason, late
//! updates and drops, watermark and consumer lag, checkpoint age, lake freshness, the metrics
//! sink's catch-up and how far event time is complete.

use super::grafana::{Dashboard, Kind, Panel, Query};
use super::promql::dedup;

fn total(metric: &str) -> String {
    format!("sum(increase({metric}[$__range]))")
}

/// The pipeline dashboard.
pub fn pipeline() -> Dashboard {
    let mut d = Dashboard::new(
        "northstar-pipeline",
        "Northstar — Data quality and pipeline health",
        "Every event accounted for from the collector to the lake, and what delays or rejects events.",
        "now-3h",
        "30s",
    );
    let stages = [
        ("Accepted at ingest", "northstar_ingest_events_accepted_total", "Events the collector acknowledged (HTTP 200) in the time range."),
        ("Processed", "northstar_processor_events_in_total", "Records the processor read from the raw topic (backend producers included; replays after a restart counted again)."),
        ("Clean", "northstar_processor_events_out_total", "Valid, unique events written to the clean topic."),
        ("Dead-lettered", "northstar_processor_invalid_total", "Records sent to the dead-letter topic, with their reason."),
        ("Duplicates", "northstar_processor_duplicates_total", "Events dropped as duplicates of an earlier messageId."),
        ("Rows in the lake", "northstar_lake_sink_rows_written_total{table=\"events\"}", "Rows the lake sink wrote to Parquet (events table)."),
    ];
    for (title, metric, description) in stages {
        d.panel(
            Panel::new(Kind::Stat, title, description, "short")
                .size(4, 4)
                .query(Query::instant(total(metric), title)),
        );
    }
    let balances = [
        (
            "Processed − (clean + dead-lettered + duplicates)",
            "Must stay 0 (up to records in flight at the range's edges): every record read leaves as exactly one of the three.",
            "unaccounted",
            ["northstar_processor_events_in_total", "northstar_processor_events_out_total", "northstar_processor_invalid_total", "northstar_processor_duplicates_total"].as_slice(),
        ),
        (
            "Clean − lake rows − replays skipped",
            "Must stay 0 once files are flushed: clean events re-emitted after a processor restart are skipped by the lake sink, which counts them.",
            "not in the lake",
            ["northstar_processor_events_out_total", "northstar_lake_sink_rows_written_total{table=\"events\"}", "northstar_lake_sink_replay_skipped_total"].as_slice(),
        ),
    ];
    for (title, description, legend, metrics) in balances {
        let expr = metrics
            .iter()
            .map(|m| total(m))
            .collect::<Vec<_>>()
            .join(" - ");
        d.panel(
            Panel::new(Kind::Stat, title, description, "short")
                .size(12, 4)
                .query(Query::instant(expr, legend)),
        );
    }
    let series = [
        ("Dead letters by reason", "sum by (reason) (rate(northstar_processor_invalid_total[$__rate_interval]))", "{{reason}}", "Rejected records per second, by typed reason.", "ops"),
        ("Late updates and drops", "sum(rate(northstar_processor_late_updated_total[$__rate_interval]))", "late, within lateness", "Late events that still updated their window, and (next query) events too late for a KPI's window, by KPI.", "ops"),
        ("Watermark lag", "max by (partition) (northstar_processor_watermark_lag_seconds)", "partition {{partition}}", "Wall clock minus each input partition's event-time watermark.", "s"),
        ("Consumer lag", "sum by (topic) (northstar_consumer_lag_records)", "{{topic}}", "Records between the consumers' positions and the end of their topics.", "short"),
        ("Checkpoint age", "time() - northstar_processor_last_checkpoint_timestamp_seconds", "{{instance}}", "Seconds since each processor's last checkpoint.", "s"),
        ("Lake freshness", "max by (table) (northstar_lake_sink_oldest_unflushed_seconds)", "{{table}}", "How long the oldest row not yet in the lake has waited, by table.", "s"),
        ("Metrics sink catch-up", "northstar_metrics_sink_catch_up_remaining_records", "{{instance}} records left", "Records each metrics-sink replica still has to read before it serves KPI series (0 once caught up).", "short"),
        ("Event time not yet complete", &format!("time() - {}", dedup("northstar_kpi_complete_until_seconds")), "behind wall clock", "How far behind the wall clock the event time known complete is (windows ending after it can still change).", "s"),
    ];
    for (title, expr, legend, description, unit) in series {
        let mut p = Panel::new(Kind::TimeSeries, title, description, unit)
            .query(Query::range(expr, legend));
        if title == "Late updates and drops" {
            p = p.query(Query::range(
                "sum by (kpi) (rate(northstar_processor_late_dropped_total[$__rate_interval]))",
                "dropped for {{kpi}}",
            ));
        }
        d.panel(p);
    }
    d
}
