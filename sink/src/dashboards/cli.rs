//! The `northstar-sink dashboards` commands: `generate` writes the files, `check` exits 1 when
//! the files on disk differ from a fresh generation.

use std::path::PathBuf;

use anyhow::Context;
use clap::Subcommand;

#[derive(Subcommand)]
pub enum Command {
    /// Write the files below --out.
    Generate(GenerateArgs),
    /// Exit 1, listing them, when the files below --out differ from a fresh generation.
    Check(GenerateArgs),
}

#[derive(clap::Args)]
pub struct GenerateArgs {
    /// The KPI catalog (YAML).
    #[arg(long, env = "NORTHSTAR_CATALOG")]
    catalog: PathBuf,
    /// The output folder (deploy/ in this repository).
    #[arg(long)]
    out: PathBuf,
    /// Where Grafana reaches Prometheus (the provisioned datasource).
    #[arg(long, default_value = "http://prometheus:9090")]
    prometheus_url: String,
    /// Grafana's base URL, for the dashboard links in alerts.
    #[arg(long, default_value = "http://127.0.0.1:3000")]
    grafana_url: String,
    /// Where people read docs/runbooks.md (alerts link to its anchors).
    #[arg(long)]
    docs_url: Option<String>,
    /// Watermark lag tolerated before a window is expected final, in seconds.
    #[arg(long, default_value_t = 300)]
    settle_grace_secs: i64,
    /// The Alertmanager example's webhook for critical alerts.
    #[arg(long, default_value = "http://127.0.0.1:9099/pager")]
    pager_url: String,
    /// The Alertmanager example's webhook for warnings.
    #[arg(long, default_value = "http://127.0.0.1:9099/tickets")]
    tickets_url: String,
}

impl GenerateArgs {
    fn files(&self) -> anyhow::Result<Vec<super::File>> {
        let catalog = northstar_schemas::catalog::Catalog::load(Some(&self.catalog))?;
        let mut o = super::Options {
            prometheus_url: self.prometheus_url.clone(),
            grafana_url: self.grafana_url.trim_end_matches('/').to_string(),
            settle_grace_ms: self.settle_grace_secs.saturating_mul(1000),
            pager_url: self.pager_url.clone(),
            tickets_url: self.tickets_url.clone(),
            ..Default::default()
        };
        if let Some(d) = &self.docs_url {
            o.docs_url = d.clone();
        }
        Ok(super::generate(&catalog, &o))
    }
}

/// Runs one `dashboards` command.
pub fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Generate(a) => {
            let files = a.files()?;
            super::write(&a.out, &files)
                .with_context(|| format!("cannot write below {}", a.out.display()))?;
            for f in &files {
                println!("{}", a.out.join(&f.path).display());
            }
            Ok(())
        }
        Command::Check(a) => {
            let stale = super::stale(&a.out, &a.files()?);
            if stale.is_empty() {
                return Ok(());
            }
            for p in &stale {
                eprintln!(
                    "{} differs from a fresh generation",
                    a.out.join(p).display()
                );
            }
            anyhow::bail!(
                "{} generated files are stale: run `northstar-sink dashboards generate`",
                stale.len()
            )
        }
    }
}
