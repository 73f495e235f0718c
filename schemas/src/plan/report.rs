//! What `northstar-schemas plan lint` reports: the lint's findings and, against a previous
//! version, the changes and whether the version fits them.
//!
//! Contract: [`LintReport::passed`] is false exactly when there is an error finding, a plan id
//! change, or a [`VersionError`]; warnings and compatible changes never fail it.

use super::compat::{check_version, compare, Change, Impact, VersionError};
use super::lint::{lint, Finding, Severity};
use super::parse::Plan;
use crate::catalog::Catalog;

#[derive(Debug, Clone)]
pub struct LintReport {
    pub plan: String,
    pub findings: Vec<Finding>,
    /// Against the previous version, when one was given.
    pub changes: Option<Vec<Change>>,
    pub version: Option<Result<(), VersionError>>,
    pub previous_id: Option<String>,
}

impl LintReport {
    /// Lints `plan` (against `catalog`) and compares it with `previous`.
    pub fn new(plan: &Plan, catalog: Option<&Catalog>, previous: Option<&Plan>) -> LintReport {
        let changes = previous.map(|old| compare(old, plan));
        let version = previous
            .zip(changes.as_ref())
            .map(|(old, c)| check_version(old, plan, c));
        LintReport {
            plan: format!("{} {}", plan.id, plan.version),
            findings: lint(plan, catalog),
            changes,
            version,
            previous_id: previous.map(|p| format!("{} {}", p.id, p.version)),
        }
    }

    pub fn errors(&self) -> usize {
        self.findings
            .iter()
            .filter(|f| f.severity == Severity::Error)
            .count()
    }

    pub fn breaking(&self) -> usize {
        self.changes
            .iter()
            .flatten()
            .filter(|c| c.impact == Impact::Breaking)
            .count()
    }

    pub fn passed(&self) -> bool {
        let other_plan = self.changes.iter().flatten().any(|c| c.at == "plan.id");
        self.errors() == 0 && !other_plan && !matches!(self.version, Some(Err(_)))
    }
}

impl std::fmt::Display for LintReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for finding in &self.findings {
            writeln!(f, "{finding}")?;
        }
        if let (Some(changes), Some(prev)) = (&self.changes, &self.previous_id) {
            writeln!(
                f,
                "changes from {prev}: {} ({} breaking)",
                changes.len(),
                self.breaking()
            )?;
            for c in changes {
                writeln!(f, "  {c}")?;
            }
        }
        if let Some(Err(e)) = &self.version {
            writeln!(f, "error: plan.version: {e}")?;
        }
        let warnings = self.findings.len() - self.errors();
        let verdict = if self.passed() { "passed" } else { "FAILED" };
        write!(
            f,
            "plan {}: {verdict}: {} errors, {warnings} warnings",
            self.plan,
            self.errors()
        )
    }
}
