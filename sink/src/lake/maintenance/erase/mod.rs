//! `lake-admin erase`: removes every event of given people from the lake — their user ids,
//! the anonymous ids asked for, and the ids their `alias` and `identify` rows link to them — by
//! rewriting the files that hold them; adds them to the suppression list first, and leaves an
//! audit record that names them only by keyed hashes.
//!
//! Contract:
//! - Which rows: see `matching` (and `links` for the identity links). Each affected file is
//!   replaced atomically by the same file without those rows (deleted when no row is left); no
//!   other row changes. The rows that link ids to the person go last (the events table in two
//!   passes), so a run that stops part-way finds the same links when it is run again.
//! - Suppression before deletion: unless `--no-suppress`, every id (asked and linked) is added
//!   to the suppression list (`topics.suppressions`) before the first file changes, so the
//!   collector and replays refuse the person's events from then on.
//! - Keyed hashes only: the subjects appear in the audit record and the summary as
//!   HMAC-SHA-256 under the PII key (`hmac-sha256:v<version>:…`, as in the suppression list),
//!   never as ids or plain digests; erase refuses to run without a key.
//! - Audit: `_audit/erasure/<time>-<hash>.json` lists every file rewritten or deleted and the
//!   rows removed; it is rewritten before and after each file (action `rewriting`, then
//!   `rewritten`), status `started` until the run completes: a file still `rewriting` in a
//!   `started` record was being changed when the run stopped, and the next run's record shows
//!   what was left. Files of flushes the sink has not finished hold rows a repeated flush would
//!   write back: they are erased too and listed as `unfinished`, and the run asks to be repeated
//!   once the sink has caught up.

mod links;
mod matching;

use std::collections::HashSet;

use anyhow::Context;
use arrow::compute::filter_record_batch;
use chrono::{DateTime, Utc};
use northstar_runtime::KafkaConfig;
use northstar_schemas::plan::pii::PiiKeyring;
use northstar_schemas::suppression::{self, subject_hash, IdKind};
use serde_json::{json, Value};

use super::{DataFile, Lake, Progress};
use crate::lake::Table;
use matching::{Pass, Subject};

/// Where erased subjects are added to the suppression list.
#[derive(Debug, Clone)]
pub struct SuppressTarget {
    pub kafka: KafkaConfig,
    pub topic: String,
}

/// Options of `erase`.
#[derive(Debug, Clone)]
pub struct EraseOptions {
    pub user_ids: Vec<String>,
    pub anonymous_ids: Vec<String>,
    /// Report the affected files without rewriting them (nothing is suppressed either).
    pub dry_run: bool,
    /// The PII keys: the subjects' keyed hashes (required).
    pub keys: Option<PiiKeyring>,
    /// `None`: delete without suppressing (`--no-suppress`).
    pub suppress: Option<SuppressTarget>,
}

pub(in crate::lake::maintenance) async fn run(
    lake: &Lake,
    o: &EraseOptions,
) -> anyhow::Result<Value> {
    anyhow::ensure!(
        !o.user_ids.is_empty() || !o.anonymous_ids.is_empty(),
        "erase needs at least one --user-id or --anonymous-id"
    );
    let keys = o.keys.as_ref().context(
        "erase names the people it erased only by keyed hashes (audit record, suppression list): \
         set pii_key_file (NORTHSTAR_PII_KEY_FILE) or NORTHSTAR_PII_KEY to the processor's key",
    )?;
    let subject = find_subject(lake, o).await?;
    let mut audit = Audit::new(hashed(keys, &subject, o), o.dry_run);
    if let (Some(target), false) = (&o.suppress, o.dry_run) {
        let ids = subject_ids(&subject);
        suppression::suppress(&target.kafka, &target.topic, keys, &ids)
            .await
            .context("cannot add the subjects to the suppression list; nothing was erased")?;
        audit.suppressed = ids.len();
    }
    for (table, pass) in [
        (Table::Events, Pass::KeepLinks),
        (Table::DeadLetters, Pass::All),
        (Table::Events, Pass::All),
    ] {
        erase_table(lake, table, pass, &subject, &mut audit).await?;
    }
    audit.finish(lake).await
}

/// The ids asked for and those the events table links to them.
async fn find_subject(lake: &Lake, o: &EraseOptions) -> anyhow::Result<Subject> {
    let files = lake.files(Table::Events).await?;
    let mut aliases = links::Aliases::default();
    for f in &files {
        aliases.scan(&read_columns(lake, f, links::COLUMNS).await?);
    }
    let asked: HashSet<String> = o.user_ids.iter().cloned().collect();
    let users = aliases.closure(&asked);
    // A previous id an alias names may be an anonymous id: linked as one too.
    let mut linked: HashSet<String> = users.difference(&asked).cloned().collect();
    for f in &files {
        links::anonymous_ids_of(
            &read_columns(lake, f, links::COLUMNS).await?,
            &users,
            &mut linked,
        );
    }
    let anons: HashSet<String> = o.anonymous_ids.iter().cloned().collect();
    linked.retain(|a| !anons.contains(a));
    Ok(Subject {
        users,
        anons,
        linked,
    })
}

async fn read_columns(
    lake: &Lake,
    f: &DataFile,
    columns: &'static [&'static str],
) -> anyhow::Result<arrow::array::RecordBatch> {
    super::decode(lake.fetch(&f.key).await?, &f.key, Some(columns)).await
}

/// Every id of the subject once, with its kind (an id that is a user id is not also listed as
/// an anonymous id).
fn subject_ids(s: &Subject) -> Vec<(String, IdKind)> {
    let mut ids: Vec<(String, IdKind)> = s
        .users
        .iter()
        .map(|u| (u.clone(), IdKind::UserId))
        .chain(
            s.anons
                .iter()
                .chain(&s.linked)
                .filter(|a| !s.users.contains(*a))
                .map(|a| (a.clone(), IdKind::AnonymousId)),
        )
        .collect();
    ids.sort();
    ids.dedup();
    ids
}

/// The subjects as the audit names them: field, keyed hash, and whether a link found them.
fn hashed(keys: &PiiKeyring, s: &Subject, o: &EraseOptions) -> Vec<Value> {
    let asked: HashSet<&String> = o.user_ids.iter().chain(&o.anonymous_ids).collect();
    let mut out: Vec<Value> = subject_ids(s)
        .into_iter()
        .map(|(id, kind)| {
            json!({
                "field": match kind { IdKind::UserId => "user_id", IdKind::AnonymousId => "anonymous_id" },
                "hmac": subject_hash(keys.current(), &id),
                "linked": !asked.contains(&id),
            })
        })
        .collect();
    out.sort_by_key(|v| {
        (
            v["linked"].as_bool(),
            v["hmac"].as_str().map(str::to_string),
        )
    });
    out
}

/// The audit record of one run, rewritten as it goes.
struct Audit {
    key: String,
    started: DateTime<Utc>,
    subjects: Vec<Value>,
    dry_run: bool,
    files: Vec<Value>,
    scanned: u64,
    rows_removed: u64,
    unfinished: u64,
    suppressed: usize,
}

impl Audit {
    fn new(subjects: Vec<Value>, dry_run: bool) -> Self {
        let started = Utc::now();
        let tag = subjects
            .first()
            .and_then(|s| s["hmac"].as_str())
            .and_then(|h| h.rsplit(':').next())
            .map(|h| h[..12.min(h.len())].to_string())
            .unwrap_or_default();
        Audit {
            key: format!(
                "_audit/erasure/{}-{tag}.json",
                started.format("%Y%m%dT%H%M%S%.6fZ")
            ),
            started,
            subjects,
            dry_run,
            files: Vec::new(),
            scanned: 0,
            rows_removed: 0,
            unfinished: 0,
            suppressed: 0,
        }
    }

    fn record(&self, status: &str) -> Value {
        json!({
            "command": "erase",
            "status": status,
            "dry_run": self.dry_run,
            "started_at": self.started.to_rfc3339(),
            "subjects": self.subjects,
            "subjects_suppressed": self.suppressed,
            "files_scanned": self.scanned,
            "files_changed": self.files.len(),
            "rows_removed": self.rows_removed,
            "unfinished_files": self.unfinished,
            "rerun_needed": self.unfinished > 0,
            "files": self.files,
        })
    }

    async fn save(&self, lake: &Lake, status: &str) -> anyhow::Result<()> {
        let bytes = serde_json::to_vec_pretty(&self.record(status))?;
        lake.root.put_durable(&self.key, bytes).await?;
        Ok(())
    }

    async fn finish(self, lake: &Lake) -> anyhow::Result<Value> {
        let mut out = self.record("complete");
        if !self.dry_run {
            self.save(lake, "complete").await?;
            out["audit_record"] = self.key.clone().into();
        }
        if self.unfinished > 0 {
            eprintln!(
                "{} of the files were written by flushes the lake sink has not finished; a \
                 repeated flush would write the rows back: run erase again once the sink has caught up",
                self.unfinished
            );
        }
        Ok(out)
    }
}

/// Erases the subject's rows from every file of `table`.
async fn erase_table(
    lake: &Lake,
    table: Table,
    pass: Pass,
    subject: &Subject,
    audit: &mut Audit,
) -> anyhow::Result<()> {
    let all = lake.files(table).await?;
    let what = match (table, pass) {
        (Table::Events, Pass::KeepLinks) => "erase: events files",
        (Table::Events, Pass::All) => "erase: events files, identity links",
        (Table::DeadLetters, _) => "erase: dead-letter files",
    };
    let mut progress = Progress::new(what, all.len());
    for (i, f) in all.iter().enumerate() {
        audit.scanned += u64::from(pass == Pass::KeepLinks || table == Table::DeadLetters);
        erase_file(lake, (table, pass), f, subject, audit).await?;
        progress.step(i + 1, || {
            format!(
                "{} files changed, {} rows removed",
                audit.files.len(),
                audit.rows_removed
            )
        });
    }
    Ok(())
}

/// Rewrites (or deletes) one file without the subject's rows, recording it in the audit first.
async fn erase_file(
    lake: &Lake,
    (table, pass): (Table, Pass),
    f: &DataFile,
    subject: &Subject,
    audit: &mut Audit,
) -> anyhow::Result<()> {
    let scan = |batch: &arrow::array::RecordBatch| match table {
        Table::Events => matching::event_rows(batch, subject, pass),
        Table::DeadLetters => matching::dead_letter_rows(batch, subject),
    };
    // Only the columns the match looks at are decoded; a file holding the subject is then
    // decoded whole to be rewritten.
    let bytes = lake.fetch(&f.key).await?;
    let ids = super::decode(bytes.clone(), &f.key, Some(matching::match_columns(table))).await?;
    if scan(&ids).true_count() == 0 {
        return Ok(());
    }
    let batch = super::decode(bytes, &f.key, None).await?;
    let mask = scan(&batch);
    let hits = mask.true_count();
    let is_final = lake.is_final(f);
    let rest = filter_record_batch(&batch, &arrow::compute::not(&mask)?)?;
    let delete = rest.num_rows() == 0;
    audit.rows_removed += hits as u64;
    audit.unfinished += u64::from(!is_final);
    audit.files.push(json!({
        "key": f.key,
        "rows_before": batch.num_rows(),
        "rows_removed": hits,
        "action": match (audit.dry_run, delete) {
            (true, _) => "none (dry run)",
            (false, true) => "deleting",
            (false, false) => "rewriting",
        },
        "unfinished_flush": !is_final,
    }));
    if audit.dry_run {
        return Ok(());
    }
    // The intent first: a crash between it and the change leaves the file listed as
    // "rewriting"/"deleting" in a record still "started".
    audit.save(lake, "started").await?;
    if delete {
        lake.remove(&f.key).await?;
    } else {
        lake.write(&f.key, rest).await?;
    }
    if let Some(last) = audit.files.last_mut() {
        last["action"] = if delete { "deleted" } else { "rewritten" }.into();
    }
    audit.save(lake, "started").await
}
