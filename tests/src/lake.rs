//! Reads the lake back with the parquet crate (not the sink's code).

use std::path::{Path, PathBuf};

use arrow::array::{Array, StringArray};
use northstar_runtime::objstore::ObjectRoot;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::file::reader::ChunkReader;

/// Every file below `dir`, sorted.
pub fn files_below(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(files_below(&p));
        } else {
            out.push(p);
        }
    }
    out.sort();
    out
}

/// Every `*.parquet` file below `dir`, sorted.
pub fn parquet_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = files_below(dir);
    out.retain(|p| p.extension().is_some_and(|x| x == "parquet"));
    out
}

/// The values of string column `column` over all files below `dir`.
pub fn string_column(dir: &Path, column: &str) -> anyhow::Result<Vec<Option<String>>> {
    let mut out = Vec::new();
    for f in parquet_files(dir) {
        let file = std::fs::File::open(&f)?;
        read_strings(file, column, &f.display().to_string(), &mut out)?;
    }
    Ok(out)
}

/// The values of string column `column` over all `*.parquet` objects below `prefix` of `root`
/// (an `s3://` lake, say).
pub async fn string_column_in(
    root: &ObjectRoot,
    prefix: &str,
    column: &str,
) -> anyhow::Result<Vec<Option<String>>> {
    let mut out = Vec::new();
    let mut keys = root.list(prefix).await?;
    keys.retain(|k| k.ends_with(".parquet"));
    keys.sort();
    for key in keys {
        let bytes = bytes::Bytes::from(root.get(&key).await?);
        read_strings(bytes, column, &key, &mut out)?;
    }
    Ok(out)
}

fn read_strings<R: ChunkReader + 'static>(
    file: R,
    column: &str,
    name: &str,
    out: &mut Vec<Option<String>>,
) -> anyhow::Result<()> {
    let reader = ParquetRecordBatchReaderBuilder::try_new(file)?.build()?;
    for batch in reader {
        let batch = batch?;
        let col = batch
            .column_by_name(column)
            .ok_or_else(|| anyhow::anyhow!("{name} has no column {column}"))?;
        let col = col
            .as_any()
            .downcast_ref::<StringArray>()
            .ok_or_else(|| anyhow::anyhow!("{column} is not a string column"))?;
        for i in 0..col.len() {
            out.push(col.is_valid(i).then(|| col.value(i).to_string()));
        }
    }
    Ok(())
}
