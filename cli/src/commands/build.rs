//! `fnctl build`: the component of the function project in the current directory.

use std::path::PathBuf;

use anyhow::{Result, bail};
use clap::Args;

use super::Globals;
use crate::output::{self, Format};
use crate::progress;
use streamfn_project as project;

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
    /// JavaScript: compile ahead of time with weval, for faster handlers in a larger
    /// component. Needs weval 0.5 (`cargo install weval --version =0.5.0`), found with
    /// --weval or on PATH.
    #[arg(long)]
    aot: bool,
    /// The weval binary for --aot [default: weval on PATH].
    #[arg(long, requires = "aot")]
    weval: Option<PathBuf>,
    /// The contract version to build against (0.1.0 runs on hosts older than 0.2.0)
    /// [default: `contract` in streamfn.toml, else the newest, 0.2.0].
    #[arg(long, value_name = "VERSION")]
    contract: Option<String>,
}

impl Build {
    /// Runs the command.
    pub fn run(self, globals: &Globals) -> Result<()> {
        let spinner = progress::spinner("building");
        let options = project::BuildOptions {
            out: self.out,
            weval: if self.aot {
                Some(find_weval(self.weval)?)
            } else {
                None
            },
            contract: self.contract,
        };
        let built = project::build(&self.dir, &options, &|step| {
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

/// The weval binary: the one given, else the first on PATH.
fn find_weval(given: Option<PathBuf>) -> Result<PathBuf> {
    let found = given.or_else(|| {
        std::env::var_os("PATH").and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|dir| dir.join("weval"))
                .find(|path| path.is_file())
        })
    });
    match found {
        // The build runs inside the project: the path must not depend on where we are.
        Some(path) if path.is_file() => Ok(std::path::absolute(&path)?),
        Some(path) => bail!("{} is not a weval binary", path.display()),
        None => bail!(
            "--aot needs weval, which is not on PATH: `cargo install weval --version =0.5.0` \
             (it builds for several minutes), then run again (or pass --weval PATH)"
        ),
    }
}
