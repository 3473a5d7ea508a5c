//! `fnctl new`: a ready function project from a language's template.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;

use super::Globals;
use crate::output::{self, Format};
use streamfn_project::{self as project, Lang};

/// Create a function project: the function, a test, the SDK and the contract, ready for
/// `fnctl build`.
#[derive(Debug, Args)]
pub struct New {
    /// Project (and function) name.
    name: String,
    /// Language of the function.
    #[arg(long, value_enum)]
    lang: Lang,
    /// Directory to create [default: ./NAME].
    #[arg(long)]
    dir: Option<PathBuf>,
}

impl New {
    /// Runs the command.
    pub fn run(self, globals: &Globals) -> Result<()> {
        let dir = self.dir.unwrap_or_else(|| PathBuf::from(&self.name));
        project::create(&dir, &self.name, self.lang)?;
        match globals.format {
            Format::Json => output::json(&serde_json::json!({ "name": self.name, "dir": dir })),
            Format::Text => {
                println!(
                    "created {} in {}; next: cd {} && fnctl build",
                    self.name,
                    dir.display(),
                    dir.display()
                );
                Ok(())
            }
        }
    }
}
