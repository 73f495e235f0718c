//! The repository and its demo traffic generator, as the tests use them.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The repository's root.
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The demo generator's events (`deploy/local/demo_traffic.py … --print`): `args` are its
/// command and options.
#[allow(clippy::expect_used)]
pub fn demo_events(args: &[&str]) -> Vec<serde_json::Value> {
    let out = Command::new("python3")
        .arg(repo().join("deploy/local/demo_traffic.py"))
        .args(args)
        .arg("--print")
        .output()
        .expect("run demo_traffic.py");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("event JSON"))
        .collect()
}
