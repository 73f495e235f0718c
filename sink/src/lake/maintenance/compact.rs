//! `lake-admin compact`: merges the small final files of each partition directory into files
//! of about the target size, without changing the set of rows.
//!
//! Contract: the files of one directory smaller than the target are grouped in key order into
//! groups of at most the target size; each group of two or more becomes one file named
//! `compacted-<hash of the inputs' keys>.parquet` in the same directory (so a repeated run
//! produces the same name), its rows those of the inputs sorted as the sink sorts them
//! ([`super::merge`]). The journal is written before the output, the inputs are deleted after
//! it, the journal last: see the module contract of [`super`] for crashes.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{merge, DataFile, Lake, Progress, STATE};
use crate::lake::Table;

/// File-name prefix of compaction outputs.
pub const OUTPUT_PREFIX: &str = "compacted-";

/// Options of `compact`.
#[derive(Debug, Clone)]
pub struct CompactOptions {
    pub tables: Vec<Table>,
    /// Files at or above this size are left as they are; merged files stay below it.
    pub target_bytes: u64,
    /// Print the plan without changing anything.
    pub dry_run: bool,
}

/// A compaction in progress: written before the output, removed after the inputs.
#[derive(Debug, Serialize, Deserialize)]
struct Journal {
    output: String,
    inputs: Vec<String>,
}

fn journal_key(output: &str) -> String {
    let name = output.rsplit('/').next().unwrap_or(output);
    format!("{STATE}/compact/{}.json", name.trim_end_matches(".parquet"))
}

/// The output key of compacting `inputs` (keys of one directory, sorted).
fn output_key(dir: &str, inputs: &[String]) -> String {
    let hash = xxhash_rust::xxh3::xxh3_128(inputs.join("\n").as_bytes());
    format!("{dir}/{OUTPUT_PREFIX}{hash:032x}.parquet")
}

/// Groups the files of one directory (sorted by key) into merges: files below `target`, in
/// order, each group at most `target` bytes; groups of one file are dropped.
fn plan(files: &[&DataFile], target: u64) -> Vec<Vec<String>> {
    let mut groups = Vec::new();
    let (mut group, mut bytes) = (Vec::new(), 0u64);
    for f in files.iter().filter(|f| f.size < target) {
        if !group.is_empty() && bytes + f.size > target {
            groups.push(std::mem::take(&mut group));
            bytes = 0;
        }
        group.push(f.key.clone());
        bytes += f.size;
    }
    groups.push(group);
    groups.retain(|g| g.len() > 1);
    groups
}

pub(super) async fn run(lake: &Lake, o: &CompactOptions) -> anyhow::Result<serde_json::Value> {
    let mut s = Stats::default();
    for &table in &o.tables {
        let files = lake.files(table).await?;
        let mut dirs: BTreeMap<&str, Vec<&DataFile>> = BTreeMap::new();
        for f in &files {
            if lake.is_final(f) {
                dirs.entry(f.dir()).or_default().push(f);
            } else {
                s.unfinished += 1;
            }
        }
        let mut progress = Progress::new("compact: partitions", dirs.len());
        for (i, (dir, files)) in dirs.iter().enumerate() {
            s.partitions += 1;
            for inputs in plan(files, o.target_bytes) {
                let output = output_key(dir, &inputs);
                s.files_in += inputs.len() as u64;
                s.files_out += 1;
                s.bytes_in += files
                    .iter()
                    .filter(|f| inputs.contains(&f.key))
                    .map(|f| f.size)
                    .sum::<u64>();
                if o.dry_run {
                    eprintln!("would merge {} files into {output}", inputs.len());
                    continue;
                }
                let journal = Journal { output, inputs };
                lake.root
                    .put_durable(&journal_key(&journal.output), serde_json::to_vec(&journal)?)
                    .await?;
                let (rows, bytes, conflicts) = merge_into_output(lake, &journal).await?;
                finish(lake, &journal).await?;
                s.rows += rows;
                s.bytes_out += bytes;
                s.conflicts += conflicts;
            }
            progress.step(i + 1, || {
                format!(
                    "{} files merged into {}, {} → {} bytes",
                    s.files_in, s.files_out, s.bytes_in, s.bytes_out
                )
            });
        }
    }
    Ok(json!({
        "command": "compact",
        "dry_run": o.dry_run,
        "partitions": s.partitions,
        "files_in": s.files_in,
        "files_out": s.files_out,
        "bytes_in": s.bytes_in,
        "bytes_out": s.bytes_out,
        "rows": s.rows,
        "type_conflicts": s.conflicts,
        "unfinished_files_skipped": s.unfinished,
    }))
}

#[derive(Default)]
struct Stats {
    partitions: u64,
    files_in: u64,
    files_out: u64,
    bytes_in: u64,
    bytes_out: u64,
    rows: u64,
    conflicts: u64,
    unfinished: u64,
}

/// Reads the inputs, merges them, writes the output. Returns rows, bytes, type conflicts.
async fn merge_into_output(lake: &Lake, j: &Journal) -> anyhow::Result<(u64, u64, u64)> {
    let mut batches = Vec::with_capacity(j.inputs.len());
    for key in &j.inputs {
        batches.push(lake.read(key).await?);
    }
    let merged = tokio::task::spawn_blocking(move || merge::merge(&batches)).await??;
    let rows = merged.batch.num_rows() as u64;
    let bytes = lake.write(&j.output, merged.batch).await?;
    Ok((rows, bytes, merged.type_conflicts))
}

/// Deletes the inputs of a compaction whose output is durable, then its journal.
async fn finish(lake: &Lake, j: &Journal) -> anyhow::Result<()> {
    for key in &j.inputs {
        lake.remove(key).await?;
    }
    lake.root.delete(&journal_key(&j.output)).await?;
    Ok(())
}

/// Completes the compactions a crashed run left; returns how many.
pub(super) async fn resume_journals(lake: &Lake) -> anyhow::Result<usize> {
    let keys = lake.root.list(&format!("{STATE}/compact")).await?;
    for key in &keys {
        let j: Journal = serde_json::from_slice(&lake.root.get(key).await?)
            .map_err(|e| anyhow::anyhow!("unreadable compaction journal {key}: {e}"))?;
        if !lake.root.exists(&j.output).await? {
            for input in &j.inputs {
                if !lake.root.exists(input).await? {
                    anyhow::bail!(
                        "compaction journal {key}: neither the output {} nor the input {input} \
                         exists; the lake was changed by hand — inspect, then delete the journal",
                        j.output
                    );
                }
            }
            merge_into_output(lake, &j).await?;
        }
        finish(lake, &j).await?;
        eprintln!("completed the interrupted compaction into {}", j.output);
    }
    Ok(keys.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(key: &str, size: u64) -> DataFile {
        DataFile {
            key: key.into(),
            size,
        }
    }

    #[test]
    fn plans_groups_below_the_target_in_key_order() {
        let files = [
            f("d/a", 10),
            f("d/b", 500),
            f("d/c", 30),
            f("d/d", 50),
            f("d/e", 40),
            f("d/f", 95),
        ];
        let refs: Vec<&DataFile> = files.iter().collect();
        // b is at the target: left alone; a+c+d = 90, e would pass 100; e alone, f alone.
        assert_eq!(
            plan(&refs, 100),
            vec![vec!["d/a".to_string(), "d/c".into(), "d/d".into()]]
        );
        assert!(plan(&refs[..1], 100).is_empty(), "one small file stays");
        let out = output_key("d", &["d/a".into(), "d/c".into()]);
        assert!(out.starts_with("d/compacted-") && out.ends_with(".parquet"));
        assert_eq!(
            out,
            output_key("d", &["d/a".into(), "d/c".into()]),
            "deterministic"
        );
        assert_ne!(out, output_key("d", &["d/a".into(), "d/d".into()]));
        assert_eq!(
            journal_key(&out),
            format!(
                "_state/maintenance/compact/{}.json",
                out.trim_start_matches("d/").trim_end_matches(".parquet")
            )
        );
    }
}
