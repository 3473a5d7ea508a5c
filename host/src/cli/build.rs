//! `fnctl build`: the component of the function project in the current directory.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;

use super::{Format, Globals, output, progress};
use crate::project;

/// Build the function project in the current directory (or --dir) into NAME.wasm with its
/// language's toolchain, installing tools only into the project.
#[derive(Debug, Args)]
pub struct Build {
    /// Project directory [default: the current directory].
    #[arg(long, default_value = ".")]
    dir: PathBuf,
    /// Where to write the component [default: NAME.wasm in the project].
    #[arg(long, short)]
    out: Option<PathBuf>,
}

impl Build {
    /// Runs the command.
    pub fn run(self, globals: &Globals) -> Result<()> {
        let spinner = progress::spinner("building");
        let built = project::build(&self.dir, self.out.as_deref(), &|step| {
            spinner.set_message(step.to_owned())
        });
        spinner.finish_and_clear();
        let out = built?;
        let bytes = std::fs::metadata(&out).map_or(0, |m| m.len());
        match globals.format {
            Format::Json => output::json(&serde_json::json!({ "component": out, "bytes": bytes })),
            Format::Text => {
                println!("built {} ({:.1} MB)", out.display(), bytes as f64 / 1e6);
                Ok(())
            }
        }
    }
}
