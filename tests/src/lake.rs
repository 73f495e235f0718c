//! Reads the lake back with the parquet crate (not the sink's code), queries it with DuckDB,
//! and runs `lake-admin` on a stack's lake.

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

/// The stack's lake, as tests read and maintain it.
impl crate::Stack {
    /// One DuckDB query over the stack's lake (`tests/compat/lake_sql.py`: views `events` and
    /// `dlq`), its rows.
    pub fn lake_sql(&self, query: &str) -> Vec<serde_json::Value> {
        let lake = self.lake_dir();
        let out = crate::run_compat_script("lake_sql.py", &[lake.as_os_str(), query.as_ref()]);
        #[allow(clippy::expect_used)]
        serde_json::from_slice(&out).expect("lake_sql.py prints JSON rows")
    }

    /// Waits (up to 90 s) until the lake's `table` holds `n` rows, counted by a column every row
    /// has; fails the test with the services' logs otherwise.
    pub async fn wait_lake_rows(&self, table: &str, column: &str, n: usize) {
        let dir = self.lake_dir().join(table);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(90);
        let mut rows = 0;
        while std::time::Instant::now() < deadline {
            rows = string_column(&dir, column).map_or(0, |v| v.len());
            if rows >= n {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(400)).await;
        }
        assert_eq!(rows, n, "rows in {table}/\n{}", self.logs());
    }

    /// `northstar-sink lake-admin args` on the stack's lake, broker, registry and test PII key:
    /// its JSON summary (fails the test when the command fails).
    pub fn lake_admin(&self, args: &[&str]) -> serde_json::Value {
        #[allow(clippy::expect_used)]
        let out = std::process::Command::new(crate::bin("northstar-sink"))
            .arg("lake-admin")
            .args(args)
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .env(
                "NORTHSTAR_ROOT",
                format!("file://{}", self.lake_dir().display()),
            )
            .env("NORTHSTAR_KAFKA__BROKERS", self.brokers())
            .env("NORTHSTAR_REGISTRY_URL", self.registry_url())
            .env("NORTHSTAR_PII_KEY", crate::TEST_PII_KEY)
            .env("RUST_LOG", "warn")
            .output()
            .expect("run lake-admin");
        assert!(
            out.status.success(),
            "lake-admin {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        #[allow(clippy::expect_used)]
        serde_json::from_slice(&out.stdout).expect("a JSON summary")
    }
}
