//! `fnctl versions` and `fnctl rollback`: a function's versions, and deploying one of
//! them again without its file.

use anyhow::Result;
use clap::Args;

use super::{Globals, utc};
use crate::output::{self, Format};

/// List every version of a function: when it was deployed, its component, limits and
/// config, and which one runs where.
#[derive(Debug, Args)]
pub struct Versions {
    /// Function name.
    name: String,
}

/// Deploy an earlier version of a function again, as its next version, from the
/// component the replica kept: nothing to upload. The runner swaps it in between two
/// batches, as a deploy does: nothing is lost or handled twice.
#[derive(Debug, Args)]
pub struct Rollback {
    /// Function name.
    name: String,
    /// The version to go back to [default: the one before the running one].
    #[arg(long)]
    to: Option<u32>,
}

impl Versions {
    /// Runs the command.
    pub fn run(self, globals: &Globals) -> Result<()> {
        let versions = globals.client()?.versions(&self.name)?;
        if globals.format == Format::Json {
            return output::json(&versions);
        }
        let rows: Vec<Vec<String>> = versions
            .iter()
            .map(|v| {
                let spec = &v.deployment.spec;
                let config: Vec<String> = spec
                    .config
                    .iter()
                    .map(|(k, val)| format!("{k}={val}"))
                    .collect();
                vec![
                    v.deployment.version.to_string(),
                    utc(v.deployment.deployed_at_ms),
                    spec.component.chars().take(12).collect(),
                    format!(
                        "fuel {} memory {} MiB batch {}",
                        spec.limits.fuel_per_event, spec.limits.memory_mib, spec.limits.max_batch
                    ),
                    if config.is_empty() {
                        "-".to_owned()
                    } else {
                        config.join(",")
                    },
                    if v.running {
                        format!("running on {}", v.replicas.join(", "))
                    } else {
                        String::new()
                    },
                ]
            })
            .collect();
        output::table(
            &["VERSION", "DEPLOYED", "SHA256", "LIMITS", "CONFIG", ""],
            &rows,
        );
        Ok(())
    }
}

impl Rollback {
    /// Runs the command.
    pub fn run(self, globals: &Globals) -> Result<()> {
        let deployment = globals.client()?.rollback(&self.name, self.to)?;
        match globals.format {
            Format::Json => output::json(&deployment),
            Format::Text => {
                println!(
                    "deployed {} version {} again as version {} (sha256 {})",
                    deployment.spec.name,
                    self.to
                        .map_or_else(|| "before the running one".to_owned(), |v| v.to_string()),
                    deployment.version,
                    &deployment.spec.component[..12]
                );
                Ok(())
            }
        }
    }
}
