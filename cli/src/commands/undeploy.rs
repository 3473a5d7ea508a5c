//! `fnctl undeploy`: stops a function.

use anyhow::Result;
use clap::Args;

use super::Globals;
use crate::output::{self, Format};

/// Stop a function. Its committed offsets, state and history are kept: deploying the same
/// name again continues where it stopped.
#[derive(Debug, Args)]
pub struct Undeploy {
    /// Function name.
    name: String,
}

impl Undeploy {
    /// Runs the command.
    pub fn run(self, globals: &Globals) -> Result<()> {
        let deployment = globals.client()?.undeploy(&self.name)?;
        match globals.format {
            Format::Json => output::json(&deployment),
            Format::Text => {
                println!(
                    "undeployed {} (version {}); offsets and state are kept",
                    deployment.spec.name, deployment.version
                );
                Ok(())
            }
        }
    }
}
