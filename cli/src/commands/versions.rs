//! `fnctl versions`, `fnctl rollback` and `fnctl promote`: a function's versions,
//! deploying one of them again without its file (or ending a canary), and making a
//! canary the only version.

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
/// batches, as a deploy does: nothing is lost or handled twice. While a canary runs,
/// rolling back without --to ends it: the version it ran beside runs every partition.
#[derive(Debug, Args)]
pub struct Rollback {
    /// Function name.
    name: String,
    /// The version to go back to [default: the one before the running one].
    #[arg(long)]
    to: Option<u32>,
}

/// Make a function's canary its only version: it runs every partition from the next
/// batch on.
#[derive(Debug, Args)]
pub struct Promote {
    /// Function name.
    name: String,
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
                    match (&v.deployment.canary, v.running) {
                        (Some(canary), true) => format!(
                            "canary on partitions {} beside version {}, running on {}",
                            output::partitions(&canary.partitions),
                            canary.base,
                            v.replicas.join(", ")
                        ),
                        (_, true) => format!("running on {}", v.replicas.join(", ")),
                        _ => v
                            .deployment
                            .cause
                            .clone()
                            .map_or_else(String::new, |cause| format!("made because {cause}")),
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
        let client = globals.client()?;
        // Without --to, a canary's rollback ends it.
        let canary = match self.to {
            None => Some(client.status(&self.name)?.deployment),
            Some(_) => None,
        }
        .filter(|d| d.canary.is_some());
        let deployment = client.rollback(&self.name, self.to)?;
        match globals.format {
            Format::Json => output::json(&deployment),
            Format::Text => {
                match canary {
                    Some(canary) => println!(
                        "ended the canary version {} of {}: the version it ran beside runs every partition again, as version {}",
                        canary.version, deployment.spec.name, deployment.version
                    ),
                    None => println!(
                        "deployed {} version {} again as version {} (sha256 {})",
                        deployment.spec.name,
                        self.to
                            .map_or_else(|| "before the running one".to_owned(), |v| v.to_string()),
                        deployment.version,
                        &deployment.spec.component[..12]
                    ),
                }
                Ok(())
            }
        }
    }
}

impl Promote {
    /// Runs the command.
    pub fn run(self, globals: &Globals) -> Result<()> {
        let deployment = globals.client()?.promote(&self.name)?;
        match globals.format {
            Format::Json => output::json(&deployment),
            Format::Text => {
                println!(
                    "promoted {} version {}: it runs every partition",
                    deployment.spec.name, deployment.version
                );
                Ok(())
            }
        }
    }
}
