//! `lake-admin retention`: deletes the partitions whose `event_date` is before a cutoff.
//!
//! Contract: every final file under `<table>/event_date=D/…` with `D` earlier than today (UTC)
//! minus `keep_days` is deleted; nothing else is. The list of files to delete is written as an
//! audit record (`_audit/retention/<time>.json`, status `started`) before the first deletion
//! and marked `complete` after the last, so an interrupted run is visible and a re-run deletes
//! what is left.

use chrono::{Days, NaiveDate, Utc};
use serde_json::json;

use super::{Lake, Progress};
use crate::lake::Table;

/// Options of `retention`.
#[derive(Debug, Clone)]
pub struct RetentionOptions {
    pub tables: Vec<Table>,
    /// Partitions of the last `keep_days` days (and today) are kept.
    pub keep_days: u64,
    /// Print what would be deleted without deleting.
    pub dry_run: bool,
}

/// The first `event_date` kept.
fn cutoff(today: NaiveDate, keep_days: u64) -> NaiveDate {
    today
        .checked_sub_days(Days::new(keep_days))
        .unwrap_or(NaiveDate::MIN)
}

/// Whether a partition value `event_date=D` is before `cutoff` (unparsable values are kept).
fn expired(date: Option<&str>, cutoff: NaiveDate) -> bool {
    date.and_then(|d| NaiveDate::parse_from_str(d, "%Y-%m-%d").ok())
        .is_some_and(|d| d < cutoff)
}

pub(super) async fn run(lake: &Lake, o: &RetentionOptions) -> anyhow::Result<serde_json::Value> {
    let started = Utc::now();
    let cutoff = cutoff(started.date_naive(), o.keep_days);
    let mut delete = Vec::new();
    let mut unfinished = 0u64;
    for &table in &o.tables {
        for f in lake.files(table).await? {
            if !expired(f.partition_value("event_date"), cutoff) {
                continue;
            }
            if lake.is_final(&f) {
                delete.push(f);
            } else {
                unfinished += 1;
            }
        }
    }
    let bytes: u64 = delete.iter().map(|f| f.size).sum();
    let mut partitions: Vec<&str> = delete.iter().map(|f| f.dir()).collect();
    partitions.dedup();
    let summary = |status: &str| {
        json!({
            "command": "retention",
            "status": status,
            "dry_run": o.dry_run,
            "started_at": started.to_rfc3339(),
            "keep_days": o.keep_days,
            "first_date_kept": cutoff.to_string(),
            "partitions": partitions.len(),
            "files_deleted": delete.len(),
            "bytes_deleted": bytes,
            "unfinished_files_skipped": unfinished,
        })
    };
    if o.dry_run {
        for p in &partitions {
            eprintln!("would delete {p}");
        }
        return Ok(summary("dry-run"));
    }
    let audit = format!(
        "_audit/retention/{}.json",
        started.format("%Y%m%dT%H%M%S%.6fZ")
    );
    let record = |status: &str| {
        let mut r = summary(status);
        r["files"] = delete.iter().map(|f| f.key.clone()).collect();
        r
    };
    lake.root
        .put_durable(&audit, serde_json::to_vec_pretty(&record("started"))?)
        .await?;
    let mut progress = Progress::new("retention: files", delete.len());
    for (i, f) in delete.iter().enumerate() {
        lake.remove(&f.key).await?;
        progress.step(i + 1, || format!("deleted {}", f.dir()));
    }
    let done = record("complete");
    lake.root
        .put_durable(&audit, serde_json::to_vec_pretty(&done)?)
        .await?;
    let mut out = summary("complete");
    out["audit_record"] = audit.into();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cutoff_keeps_the_last_days() {
        let today = NaiveDate::from_ymd_opt(2026, 11, 26).expect("date");
        let c = cutoff(today, 3);
        assert_eq!(c.to_string(), "2026-11-23");
        assert!(expired(Some("2026-11-22"), c));
        assert!(!expired(Some("2026-11-23"), c));
        assert!(!expired(Some("2026-11-26"), c));
        assert!(!expired(Some("invalid"), c), "unparsable dates are kept");
        assert!(!expired(None, c));
        assert!(expired(Some("2026-11-25"), cutoff(today, 0)));
    }
}
