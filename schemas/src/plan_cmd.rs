//! `northstar-schemas plan …`: the tracking plan's lint and document, for people and CI.
//!
//! Contract: `lint` exits non-zero exactly when [`LintReport::passed`] is false (errors, a
//! breaking change without a new major version, a change without a higher version); `render`
//! writes the same text [`markdown`] returns, to stdout or a file.

use std::path::PathBuf;

use anyhow::Context;
use clap::Subcommand;
use northstar_schemas::catalog::Catalog;
use northstar_schemas::plan::{markdown, LintReport, Plan};

#[derive(Subcommand)]
pub enum PlanCommand {
    /// Lint a plan: naming rules, references, the KPI catalog's fields; with --previous, class
    /// every change as compatible or breaking and check the version. Exits 1 when it fails.
    Lint {
        /// The tracking plan (YAML).
        plan: PathBuf,
        /// The KPI catalog to read against the plan.
        #[arg(long, env = "NORTHSTAR_CATALOG")]
        catalog: Option<PathBuf>,
        /// The previous version of the plan (e.g. `git show main:deploy/tracking-plan.yaml`).
        #[arg(long)]
        previous: Option<PathBuf>,
    },
    /// Render a plan as a Markdown document.
    Render {
        plan: PathBuf,
        /// The KPI catalog (adds each KPI's description to the events that feed it).
        #[arg(long, env = "NORTHSTAR_CATALOG")]
        catalog: Option<PathBuf>,
        /// Write here instead of stdout.
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

fn catalog(path: Option<&PathBuf>) -> anyhow::Result<Option<Catalog>> {
    path.map(|p| Catalog::load(Some(p)).with_context(|| format!("catalog {}", p.display())))
        .transpose()
}

/// Runs a plan command; `Ok(false)` when a lint failed.
pub fn run(command: PlanCommand) -> anyhow::Result<bool> {
    match command {
        PlanCommand::Lint {
            plan,
            catalog: c,
            previous,
        } => {
            let plan = Plan::load(&plan)?;
            let previous = previous
                .as_deref()
                .map(Plan::load)
                .transpose()
                .context("previous plan")?;
            let report = LintReport::new(&plan, catalog(c.as_ref())?.as_ref(), previous.as_ref());
            println!("{report}");
            Ok(report.passed())
        }
        PlanCommand::Render {
            plan,
            catalog: c,
            out,
        } => {
            let text = markdown(&Plan::load(&plan)?, catalog(c.as_ref())?.as_ref());
            match out {
                Some(path) => std::fs::write(&path, text)
                    .with_context(|| format!("writing {}", path.display()))?,
                None => print!("{text}"),
            }
            Ok(true)
        }
    }
}
