//! `fnctl list`: the deployed functions.

use anyhow::Result;
use clap::Args;

use super::Globals;
use crate::output::{self, Format};

/// List deployed functions.
#[derive(Debug, Args)]
pub struct List {}

impl List {
    /// Runs the command.
    pub fn run(self, globals: &Globals) -> Result<()> {
        let deployments = globals.client()?.deployments()?;
        if globals.format == Format::Json {
            return output::json(&deployments);
        }
        if deployments.is_empty() {
            println!(
                "no functions deployed; deploy one with `fnctl deploy FILE.wasm --name NAME --input TOPIC`"
            );
            return Ok(());
        }
        let rows: Vec<Vec<String>> = deployments
            .iter()
            .map(|d| {
                vec![
                    d.spec.name.clone(),
                    d.version.to_string(),
                    d.spec
                        .inputs
                        .iter()
                        .cloned()
                        .chain(d.spec.input_pattern.iter().map(|p| format!("/{p}/")))
                        .collect::<Vec<_>>()
                        .join(","),
                    if d.spec.outputs.is_empty() {
                        "-".to_owned()
                    } else {
                        d.spec.outputs.join(",")
                    },
                    d.spec.component.chars().take(12).collect(),
                ]
            })
            .collect();
        output::table(&["NAME", "VERSION", "INPUTS", "OUTPUTS", "SHA256"], &rows);
        Ok(())
    }
}
