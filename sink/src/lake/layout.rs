//! The lake's layout: table directories, Hive-style partition paths and file names.
//!
//! Contract: a file's key is a pure function of the table, the event time and name of its rows
//! and the source positions it holds (`part-<topic>-p<P>-o<first>-<last>.parquet`), so a flush
//! repeated after a crash replaces its files instead of duplicating them; [`parse_file_name`]
//! is its inverse, used by the maintenance commands to tell which files a flush in progress may
//! still rewrite.

use chrono::DateTime;

/// Which table a lake sink writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Table {
    /// `events.clean` → `events/`.
    Events,
    /// `events.dlq` → `dlq/`.
    DeadLetters,
}

impl Table {
    /// The table's directory under the lake root.
    pub fn dir(self) -> &'static str {
        match self {
            Table::Events => "events",
            Table::DeadLetters => "dlq",
        }
    }

    /// Its label in metrics.
    pub fn label(self) -> &'static str {
        self.dir()
    }
}

/// The file key of one partition path of a flushed range: deterministic from its source
/// positions.
pub fn file_key(
    table: Table,
    path: &str,
    topic: &str,
    partition: i32,
    first: i64,
    last: i64,
) -> String {
    format!(
        "{}/{path}/{}",
        table.dir(),
        file_name(topic, partition, first, last)
    )
}

/// The file name of every file of one flushed range.
pub(super) fn file_name(topic: &str, partition: i32, first: i64, last: i64) -> String {
    format!("part-{topic}-p{partition}-o{first:019}-{last:019}.parquet")
}

/// The `event_date` partition value of an event time in µs (UTC).
pub fn event_date(ts_micros: i64) -> String {
    DateTime::from_timestamp_micros(ts_micros)
        .map(|t| t.format("%Y-%m-%d").to_string())
        .unwrap_or_else(|| "invalid".into())
}

/// The Hive-style directories of an event:
/// `event_date=YYYY-MM-DD/event_hour=HH/event_name=<name>` (event time, UTC; the name as
/// [`name_value`] encodes it).
pub fn partition_path(ts_micros: i64, event_name: &str) -> String {
    let (date, hour) = DateTime::from_timestamp_micros(ts_micros)
        .map(|t| (t.format("%Y-%m-%d").to_string(), t.format("%H").to_string()))
        .unwrap_or_else(|| ("invalid".into(), "invalid".into()));
    format!(
        "event_date={date}/event_hour={hour}/event_name={}",
        name_value(event_name)
    )
}

/// Longest `event_name` directory value, in bytes (path components are limited to 255).
const MAX_NAME_BYTES: usize = 120;

/// The `event_name` partition value: every byte except ASCII letters, digits, `_` and `-`
/// percent-encoded (DuckDB and pyarrow decode it back to the name); `__none__` for an empty
/// name; a name whose encoding is longer than [`MAX_NAME_BYTES`] is cut at a character
/// boundary and suffixed with `~` and the XXH3-64 of the whole name in hex, so distinct long
/// names stay apart. The `event` and `name` columns always hold the exact value.
pub fn name_value(name: &str) -> String {
    if name.is_empty() {
        return "__none__".into();
    }
    let mut out = String::with_capacity(name.len());
    let mut buf = [0u8; 4];
    for c in name.chars() {
        let start = out.len();
        if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
            out.push(c);
        } else {
            for b in c.encode_utf8(&mut buf).bytes() {
                out.push_str(&format!("%{b:02X}"));
            }
        }
        if out.len() > MAX_NAME_BYTES {
            out.truncate(start);
            let hash = xxhash_rust::xxh3::xxh3_64(name.as_bytes());
            return format!("{out}~{hash:016x}");
        }
    }
    out
}

/// The clean-topic range a sink file holds, parsed back from its name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileRange {
    pub topic: String,
    pub partition: i32,
    pub first: i64,
    pub last: i64,
}

/// Parses `part-<topic>-p<P>-o<first>-<last>.parquet` (the inverse of [`file_key`]'s name);
/// `None` for any other name (compacted files, foreign files).
pub fn parse_file_name(name: &str) -> Option<FileRange> {
    let rest = name.strip_prefix("part-")?.strip_suffix(".parquet")?;
    let (rest, last) = rest.rsplit_once('-')?;
    let (rest, first) = rest.rsplit_once("-o")?;
    let (topic, partition) = rest.rsplit_once("-p")?;
    let digits = |s: &str| s.len() == 19 && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(first) || !digits(last) || topic.is_empty() {
        return None;
    }
    Some(FileRange {
        topic: topic.to_string(),
        partition: partition.parse().ok()?,
        first: first.parse().ok()?,
        last: last.parse().ok()?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_hive_style_and_deterministic() {
        assert_eq!(event_date(1_764_028_800_000_000), "2025-11-25");
        let path = partition_path(1_764_028_800_000_000 + 13 * 3_600_000_000 + 5, "Signed Up");
        assert_eq!(
            path,
            "event_date=2025-11-25/event_hour=13/event_name=Signed%20Up"
        );
        assert_eq!(
            file_key(Table::Events, &path, "events.clean", 2, 10, 99),
            "events/event_date=2025-11-25/event_hour=13/event_name=Signed%20Up/part-events.clean-p2-o0000000000000000010-0000000000000000099.parquet"
        );
    }

    #[test]
    fn file_names_parse_back() {
        let key = file_key(
            Table::Events,
            "event_date=2025-11-25",
            "events.clean-v2",
            12,
            7,
            99,
        );
        let name = key.rsplit('/').next().unwrap_or_default();
        assert_eq!(
            parse_file_name(name),
            Some(FileRange {
                topic: "events.clean-v2".into(),
                partition: 12,
                first: 7,
                last: 99
            })
        );
        assert_eq!(parse_file_name("compacted-00ff.parquet"), None);
        assert_eq!(parse_file_name("part-x-p1-o12-13.parquet"), None);
        assert_eq!(
            parse_file_name("part-x-p1-o0000000000000000012-0000000000000000013.parquet#1"),
            None
        );
    }

    #[test]
    fn event_names_are_encoded_safely() {
        assert_eq!(name_value("page_view-2"), "page_view-2");
        assert_eq!(name_value("a/b=c.d"), "a%2Fb%3Dc%2Ed");
        assert_eq!(name_value(".."), "%2E%2E");
        assert_eq!(name_value("é"), "%C3%A9");
        assert_eq!(name_value(""), "__none__");
        let long_a = "x".repeat(300);
        let long_b = format!("{}y", "x".repeat(299));
        let (a, b) = (name_value(&long_a), name_value(&long_b));
        assert!(a.len() <= MAX_NAME_BYTES + 17, "{a}");
        assert_ne!(a, b, "long names stay distinct");
        assert!(a.starts_with(&"x".repeat(MAX_NAME_BYTES)));
        // Never cut inside an escape.
        let wide = name_value(&"é".repeat(100));
        let stem = wide.split('~').next().unwrap_or_default();
        assert_eq!(stem.len() % 6, 0, "{wide}");
    }
}
