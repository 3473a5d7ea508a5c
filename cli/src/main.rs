//! `fnctl`, the Streamfn command line: runs replicas, talks to them through their admin
//! API, and builds function projects. One module per command under `commands/`.

mod client;
mod commands;
mod output;
mod progress;
mod schemas;

use clap::Parser;

use crate::commands::Cli;

/// A replica's runner allocates and frees small records, keys and values by the million;
/// glibc's allocator spent a third of a runner's time on them once its heap held a large
/// state.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    match cli.run() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err}");
            for cause in err.chain().skip(1) {
                eprintln!("  caused by: {cause}");
            }
            std::process::ExitCode::FAILURE
        }
    }
}
