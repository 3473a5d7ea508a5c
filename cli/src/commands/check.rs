//! `fnctl check`: verifies a data directory offline, and salvages what is intact.

use std::path::PathBuf;

use anyhow::{Result, bail};
use clap::Args;
use streamfn_host::log::embedded::check;

use super::Globals;
use crate::output::{self, Format};

/// Verify a data directory while no replica runs on it: every record, state entry,
/// deployment and component against its checksum, and the store's pages against their
/// own. Names what is damaged and fails if anything is. With --salvage, copies everything
/// intact into a new data directory that a replica can start on.
#[derive(Debug, Args)]
pub struct Check {
    /// The data directory to check.
    #[arg(long, env = "STREAMFN_DATA_DIR", default_value = "streamfn-data")]
    data_dir: PathBuf,
    /// Copy what is intact into this new data directory.
    #[arg(long, value_name = "NEW_DIR")]
    salvage: Option<PathBuf>,
}

impl Check {
    /// Runs the command.
    pub fn run(self, globals: &Globals) -> Result<()> {
        let spinner = crate::progress::spinner(format!("checking {}", self.data_dir.display()));
        let checked = check(&self.data_dir, self.salvage.as_deref());
        spinner.finish_and_clear();
        let report = checked?;
        match globals.format {
            Format::Json => output::json(&report)?,
            Format::Text => {
                println!(
                    "{}: {} topics, {} records, {} state entries and {} rows of recent state changes, {} deployments, {} components intact",
                    self.data_dir.display(),
                    report.topics,
                    report.records,
                    report.state_entries,
                    report.journal_rows,
                    report.deployments,
                    report.components
                );
                for damage in &report.damaged {
                    println!("  damaged: {damage}");
                }
            }
        }
        if let Some(salvage) = &self.salvage {
            eprintln!(
                "salvaged what is intact into {}; start a replica on it with `fnctl serve --data-dir {}`",
                salvage.display(),
                salvage.display()
            );
        }
        if !report.intact() {
            bail!(
                "{} is damaged ({} findings){}",
                self.data_dir.display(),
                report.damaged.len(),
                if self.salvage.is_some() {
                    ""
                } else {
                    "; `fnctl check --salvage NEW_DIR` copies what is intact into a new data directory"
                }
            );
        }
        Ok(())
    }
}
